/*
 * The authoritative check behind verify and observe.
 *
 * A change is in effect only when every server the world may ask serves
 * it: so every address of every NS of the zone is asked directly, without
 * recursion (a resolver's cache would hide a lagging secondary), and only
 * authoritative NOERROR answers count.  All of them must show the same SOA
 * serial and the same MX set.
 */
#include "dns.h"

#include <stdio.h>
#include <string.h>

#include <cJSON.h>

static void ask_one_server(const struct gw_op *op, struct gw_server_view *sv)
{
	ldns_resolver *res = NULL;
	ldns_pkt *answer = NULL;
	ldns_rr *soa;
	char why[256];

	sv->answered = false;
	if (gw_dns_resolver_new(op, sv->address, op->cfg->port, GW_DNS_DNSSEC,
	                        &res) != MAILMODE_OK) {
		snprintf(sv->error, sizeof(sv->error), "cannot make a resolver for "
		         "this address");
		goto out;
	}
	if (gw_dns_ask(res, op->zone, LDNS_RR_TYPE_SOA, &answer, why,
	               sizeof(why)) != MAILMODE_OK) {
		snprintf(sv->error, sizeof(sv->error), "SOA: %s", why);
		goto out;
	}
	soa = gw_dns_answer_rr(answer, op->zone, LDNS_RR_TYPE_SOA);
	if (!gw_dns_is_authoritative(answer, why, sizeof(why)) || !soa ||
	    ldns_rr_rd_count(soa) < 3) {
		snprintf(sv->error, sizeof(sv->error), "SOA: %s",
		         soa ? why : "no SOA record in the answer");
		goto out;
	}
	sv->serial = ldns_rdf2native_int32(ldns_rr_rdf(soa, 2));
	sv->zone_signed = gw_dns_has_rrsig(answer, op->zone, LDNS_RR_TYPE_SOA);

	ldns_pkt_free(answer);
	if (gw_dns_ask(res, op->domain, LDNS_RR_TYPE_MX, &answer, why,
	               sizeof(why)) != MAILMODE_OK) {
		snprintf(sv->error, sizeof(sv->error), "MX: %s", why);
		goto out;
	}
	if (!gw_dns_is_authoritative(answer, why, sizeof(why))) {
		snprintf(sv->error, sizeof(sv->error), "MX: %s", why);
		goto out;
	}
	if (gw_dns_mx_from_answer(answer, op->domain, &sv->mx, why, sizeof(why)) !=
	    MAILMODE_OK) {
		snprintf(sv->error, sizeof(sv->error), "MX: %s", why);
		goto out;
	}
	sv->mx_signed = gw_dns_has_rrsig(answer, op->domain, LDNS_RR_TYPE_MX);
	sv->answered = true;
out:
	ldns_pkt_free(answer);
	if (res)
		ldns_resolver_deep_free(res);
}

int gw_auth_collect(struct gw_op *op, struct gw_auth_view *view)
{
	const struct mailmode_host *host = op->ctx->host;
	char ns_names[GW_SERVERS_MAX][GW_NAME_MAX];
	char addrs[GW_SERVERS_MAX][GW_ADDR_MAX];
	size_t ns_count, addr_count, i, j;
	int rc;

	memset(view, 0, sizeof(*view));
	rc = gw_lookup_ns(op, ns_names, GW_SERVERS_MAX, &ns_count);
	if (rc != MAILMODE_OK)
		goto out;
	for (i = 0; i < ns_count && view->count < GW_SERVERS_MAX; i++) {
		struct mailmode_diag scratch = { 0 };
		struct mailmode_diag *saved = op->diag;

		/* A server without an address is one failed server, not a
		 * failed check: keep its reason in the view. */
		op->diag = &scratch;
		rc = gw_lookup_addresses(op, ns_names[i], addrs, GW_SERVERS_MAX,
		                         &addr_count);
		op->diag = saved;
		if (rc != MAILMODE_OK) {
			struct gw_server_view *sv = &view->servers[view->count++];

			snprintf(sv->ns_name, sizeof(sv->ns_name), "%s", ns_names[i]);
			snprintf(sv->address, sizeof(sv->address), "-");
			snprintf(sv->error, sizeof(sv->error), "%s", scratch.summary);
			continue;
		}
		for (j = 0; j < addr_count && view->count < GW_SERVERS_MAX; j++) {
			struct gw_server_view *sv = &view->servers[view->count++];

			snprintf(sv->ns_name, sizeof(sv->ns_name), "%s", ns_names[i]);
			snprintf(sv->address, sizeof(sv->address), "%s", addrs[j]);
			host->progress(host->handle, "asking %s (%s) for %s MX",
			               sv->ns_name, sv->address, op->domain);
			ask_one_server(op, sv);
		}
	}
	rc = MAILMODE_OK;
out:
	return rc;
}

void gw_auth_served_ttls(const struct gw_auth_view *view, struct gw_mx_set *set)
{
	size_t i, j, k;
	bool found;

	for (i = 0; i < set->count; i++) {
		found = false;
		for (j = 0; j < view->count && !found; j++) {
			const struct gw_server_view *sv = &view->servers[j];

			for (k = 0; sv->answered && k < sv->mx.count && !found; k++) {
				found = sv->mx.mx[k].pref == set->mx[i].pref &&
				        strcmp(sv->mx.mx[k].host, set->mx[i].host) == 0;
				if (found)
					set->mx[i].ttl = sv->mx.mx[k].ttl;
			}
		}
	}
}

void gw_auth_judge(const struct gw_auth_view *view,
                   const struct gw_mx_set *expected,
                   struct gw_auth_verdict *verdict)
{
	const struct gw_server_view *first = NULL;
	bool same = true, any_expected = false;
	size_t i;

	memset(verdict, 0, sizeof(*verdict));
	for (i = 0; i < view->count; i++) {
		const struct gw_server_view *sv = &view->servers[i];

		if (!sv->answered)
			continue;
		verdict->answered++;
		if (gw_mx_set_overlap(&sv->mx, expected))
			any_expected = true;
		if (!first) {
			first = sv;
			continue;
		}
		if (sv->serial != first->serial || !gw_mx_set_same(&sv->mx, &first->mx))
			same = false;
	}
	verdict->consistent = view->count > 0 && verdict->answered == view->count &&
	                      same;
	/* Exact, TTLs included: a longer TTL keeps resolvers on the gateway
	 * set longer than the switch waits for.  In a signed zone an unsigned
	 * MX set has not been signed yet. */
	verdict->expected_live = verdict->consistent &&
	                         gw_mx_set_same(&first->mx, expected);
	for (i = 0; verdict->expected_live && i < view->count; i++) {
		if (view->servers[i].zone_signed && !view->servers[i].mx_signed)
			verdict->expected_live = false;
	}
	verdict->expected_absent = view->count > 0 &&
	                           verdict->answered == view->count && !any_expected;
	if (verdict->expected_live)
		verdict->presence = MAILMODE_PRESENT;
	else if (verdict->expected_absent)
		verdict->presence = MAILMODE_ABSENT; /* serials may differ: any
		                                        change propagating is not
		                                        ours */
	else
		verdict->presence = MAILMODE_PARTIAL;
}

void gw_auth_describe(const struct gw_op *op, const struct gw_auth_view *view,
                      const struct gw_mx_set *expected)
{
	const struct mailmode_host *host = op->ctx->host;
	char text[2048], diff[1024];
	size_t i;

	gw_mx_set_format(expected, false, text, sizeof(text));
	host->diag_append(op->diag, "expected MX at %s: %s", op->domain, text);
	for (i = 0; i < view->count; i++) {
		const struct gw_server_view *sv = &view->servers[i];

		if (!sv->answered) {
			host->diag_append(op->diag, "%s (%s): FAILED: %s", sv->ns_name,
			                  sv->address, sv->error);
			continue;
		}
		gw_mx_set_format(&sv->mx, false, text, sizeof(text));
		gw_mx_set_diff(&sv->mx, expected, diff, sizeof(diff));
		host->diag_append(op->diag, "%s (%s): serial %u, MX %s%s%s%s%s",
		                  sv->ns_name, sv->address, sv->serial, text,
		                  diff[0] ? " (not the expected set: " : "", diff,
		                  diff[0] ? ")" : "",
		                  sv->zone_signed ? (sv->mx_signed ? ", signed" :
		                                     ", zone signed but MX has no "
		                                     "RRSIG") : "");
	}
}

char *gw_auth_report(const struct gw_op *op, const struct gw_auth_view *view,
                     const struct gw_mx_set *expected,
                     const struct gw_auth_verdict *verdict)
{
	static const char *const presence_names[] = {
		[MAILMODE_ABSENT] = "absent",
		[MAILMODE_PRESENT] = "present",
		[MAILMODE_PARTIAL] = "partial",
	};
	cJSON *root = cJSON_CreateObject(), *servers, *item, *mx;
	char *text = NULL, *copy = NULL, diff[1024];
	size_t i;

	if (!root || !cJSON_AddStringToObject(root, "mode", "gateway") ||
	    !cJSON_AddStringToObject(root, "domain", op->domain) ||
	    !cJSON_AddStringToObject(root, "zone", op->zone) ||
	    !cJSON_AddStringToObject(root, "presence",
	                             presence_names[verdict->presence]) ||
	    !cJSON_AddBoolToObject(root, "consistent", verdict->consistent))
		goto out;
	mx = gw_mx_set_json(expected);
	if (!mx || !cJSON_AddItemToObject(root, "expected", mx)) {
		cJSON_Delete(mx);
		goto out;
	}
	servers = cJSON_AddArrayToObject(root, "servers");
	if (!servers)
		goto out;
	for (i = 0; i < view->count; i++) {
		const struct gw_server_view *sv = &view->servers[i];

		item = cJSON_CreateObject();
		if (!item || !cJSON_AddItemToArray(servers, item) ||
		    !cJSON_AddStringToObject(item, "ns", sv->ns_name) ||
		    !cJSON_AddStringToObject(item, "address", sv->address) ||
		    !cJSON_AddBoolToObject(item, "answered", sv->answered))
			goto out;
		if (!sv->answered) {
			if (!cJSON_AddStringToObject(item, "error", sv->error))
				goto out;
			continue;
		}
		gw_mx_set_diff(&sv->mx, expected, diff, sizeof(diff));
		if (diff[0] && !cJSON_AddStringToObject(item, "difference", diff))
			goto out;
		mx = gw_mx_set_json(&sv->mx);
		if (!cJSON_AddNumberToObject(item, "serial", sv->serial) ||
		    !mx || !cJSON_AddItemToObject(item, "mx", mx) ||
		    !cJSON_AddBoolToObject(item, "zone_signed", sv->zone_signed) ||
		    !cJSON_AddBoolToObject(item, "mx_signed", sv->mx_signed)) {
			if (mx && !cJSON_GetObjectItemCaseSensitive(item, "mx"))
				cJSON_Delete(mx);
			goto out;
		}
	}
	text = cJSON_PrintUnformatted(root);
	if (text)
		copy = op->ctx->host->strdup(text);
out:
	cJSON_free(text);
	cJSON_Delete(root);
	return copy;
}
