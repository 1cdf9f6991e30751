/*
 * DNS plumbing for the gateway plugin: resolvers aimed at one server,
 * queries, answer parsing, and the discovery of the zone (SOA walk), its
 * primary (configured or SOA MNAME) and its NS set.
 */
#include "dns.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int gw_dns_resolver_new(const struct gw_op *op, const char *addr,
                        uint16_t port, unsigned flags, ldns_resolver **res)
{
	const struct mailmode_host *host = op->ctx->host;
	unsigned char buf[16];
	ldns_rdf *ns = NULL;
	ldns_resolver *made = NULL;
	struct timeval timeout = { .tv_sec = op->cfg->timeout_s, .tv_usec = 0 };
	int rc;

	*res = NULL;
	if (inet_pton(AF_INET, addr, buf) == 1)
		ns = ldns_rdf_new_frm_str(LDNS_RDF_TYPE_A, addr);
	else if (inet_pton(AF_INET6, addr, buf) == 1)
		ns = ldns_rdf_new_frm_str(LDNS_RDF_TYPE_AAAA, addr);
	if (!ns) {
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
		               "'%s' is not an IP address", addr);
		rc = MAILMODE_ERR_CONFIG;
		goto out;
	}
	made = ldns_resolver_new();
	if (!made || ldns_resolver_push_nameserver(made, ns) != LDNS_STATUS_OK) {
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	ldns_resolver_set_port(made, port);
	ldns_resolver_set_timeout(made, timeout);
	ldns_resolver_set_retrans(made, 1);
	ldns_resolver_set_random(made, false);
	ldns_resolver_set_recursive(made, (flags & GW_DNS_RECURSE) != 0);
	ldns_resolver_set_usevc(made, (flags & GW_DNS_TCP) != 0);
	/* Over UDP one lost datagram should not make a server look dead; an
	 * UPDATE is never resent (a resend of an applied UPDATE would come
	 * back NXRRSET and hide the real outcome). */
	ldns_resolver_set_retry(made, (flags & (GW_DNS_ONE_TRY | GW_DNS_TCP)) ? 1 : 2);
	ldns_resolver_set_fallback(made, true);
	if (flags & GW_DNS_DNSSEC) {
		ldns_resolver_set_dnssec(made, true);
		ldns_resolver_set_edns_udp_size(made, 1232);
	}
	*res = made;
	made = NULL;
	rc = MAILMODE_OK;
out:
	ldns_rdf_deep_free(ns);
	if (made)
		ldns_resolver_deep_free(made);
	return rc;
}

int gw_dns_lookup_resolver(const struct gw_op *op, ldns_resolver **res,
                           char *where, size_t where_len)
{
	const struct mailmode_host *host = op->ctx->host;
	struct timeval timeout = { .tv_sec = op->cfg->timeout_s, .tv_usec = 0 };
	ldns_status status;
	int rc;

	*res = NULL;
	if (op->cfg->resolver[0]) {
		snprintf(where, where_len, "resolver %s port %u", op->cfg->resolver,
		         op->cfg->resolver_port);
		rc = gw_dns_resolver_new(op, op->cfg->resolver, op->cfg->resolver_port,
		                         GW_DNS_RECURSE, res);
		goto out;
	}
	snprintf(where, where_len, "the resolvers of /etc/resolv.conf");
	status = ldns_resolver_new_frm_file(res, NULL);
	if (status != LDNS_STATUS_OK) {
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
		               "cannot use /etc/resolv.conf (%s): set resolver = in "
		               "[%s]", ldns_get_errorstr_by_id(status),
		               op->cfg->dns_section);
		*res = NULL;
		rc = MAILMODE_ERR_CONFIG;
		goto out;
	}
	ldns_resolver_set_timeout(*res, timeout);
	ldns_resolver_set_retry(*res, 2);
	ldns_resolver_set_retrans(*res, 1);
	ldns_resolver_set_recursive(*res, true);
	ldns_resolver_set_fallback(*res, true);
	rc = MAILMODE_OK;
out:
	return rc;
}

void gw_dns_status_text(ldns_status status, const ldns_resolver *res,
                        char *buf, size_t len)
{
	switch (status) {
	case LDNS_STATUS_NETWORK_ERR:
	case LDNS_STATUS_RES_NO_NS:
		/* ldns 1.8 ends a UDP exchange that timed out with RES_NO_NS
		 * ("every server written off"), a TCP one with NETWORK_ERR. */
		snprintf(buf, len, "no answer within %ld s",
		         (long)ldns_resolver_timeout(res).tv_sec);
		break;
	case LDNS_STATUS_ERR:
	case LDNS_STATUS_SOCKET_ERROR:
		/* ldns reports a refused TCP connection as a general error. */
		snprintf(buf, len, "no answer: could not connect or send");
		break;
	default:
		snprintf(buf, len, "no answer: %s", ldns_get_errorstr_by_id(status));
		break;
	}
}

int gw_dns_ask(ldns_resolver *res, const char *name, ldns_rr_type type,
               ldns_pkt **answer, char *why, size_t why_len)
{
	ldns_rdf *qname = ldns_dname_new_frm_str(name);
	uint16_t flags = ldns_resolver_recursive(res) ? LDNS_RD : 0;
	ldns_status status;
	int rc;

	*answer = NULL;
	if (!qname) {
		snprintf(why, why_len, "'%s' is not a domain name", name);
		rc = MAILMODE_ERR_FAILED;
		goto out;
	}
	status = ldns_resolver_send(answer, res, qname, type, LDNS_RR_CLASS_IN,
	                            flags);
	if (status != LDNS_STATUS_OK || !*answer) {
		gw_dns_status_text(status, res, why, why_len);
		ldns_pkt_free(*answer);
		*answer = NULL;
		rc = MAILMODE_ERR_FAILED;
		goto out;
	}
	rc = MAILMODE_OK;
out:
	ldns_rdf_deep_free(qname);
	return rc;
}

const char *gw_dns_rcode_name(ldns_pkt_rcode rcode)
{
	const ldns_lookup_table *entry = ldns_lookup_by_id(ldns_rcodes, (int)rcode);

	return entry ? entry->name : "unknown rcode";
}

bool gw_dns_is_authoritative(const ldns_pkt *answer, char *why, size_t why_len)
{
	ldns_pkt_rcode rcode = ldns_pkt_get_rcode(answer);

	if (rcode != LDNS_RCODE_NOERROR) {
		snprintf(why, why_len, "answered %s%s", gw_dns_rcode_name(rcode),
		         ldns_pkt_aa(answer) ? "" : " (not authoritative)");
		return false;
	}
	if (!ldns_pkt_aa(answer)) {
		snprintf(why, why_len, "answered without the AA flag (not "
		         "authoritative for the zone)");
		return false;
	}
	return true;
}

static bool owner_is(const ldns_rr *rr, const ldns_rdf *name)
{
	return ldns_dname_compare(ldns_rr_owner(rr), name) == 0;
}

ldns_rr *gw_dns_answer_rr(const ldns_pkt *answer, const char *name,
                          ldns_rr_type type)
{
	ldns_rdf *owner = ldns_dname_new_frm_str(name);
	ldns_rr_list *rrs = ldns_pkt_answer(answer);
	ldns_rr *found = NULL;
	size_t i;

	if (!owner)
		goto out;
	for (i = 0; i < ldns_rr_list_rr_count(rrs); i++) {
		ldns_rr *rr = ldns_rr_list_rr(rrs, i);

		if (ldns_rr_get_type(rr) == type && owner_is(rr, owner)) {
			found = rr;
			break;
		}
	}
out:
	ldns_rdf_deep_free(owner);
	return found;
}

int gw_dns_rdf_name(const ldns_rdf *rdf, char *out, size_t out_len)
{
	char *text = rdf ? ldns_rdf2str(rdf) : NULL;
	int rc;

	rc = text ? gw_name_normalise(text, out, out_len) : MAILMODE_ERR_FAILED;
	free(text);
	return rc;
}

int gw_dns_mx_from_answer(const ldns_pkt *answer, const char *name,
                          struct gw_mx_set *set, char *why, size_t why_len)
{
	ldns_rdf *owner = ldns_dname_new_frm_str(name);
	ldns_rr_list *rrs = ldns_pkt_answer(answer);
	size_t i;
	int rc = MAILMODE_ERR_FAILED;

	memset(set, 0, sizeof(*set));
	if (!owner) {
		snprintf(why, why_len, "'%s' is not a domain name", name);
		goto out;
	}
	for (i = 0; i < ldns_rr_list_rr_count(rrs); i++) {
		ldns_rr *rr = ldns_rr_list_rr(rrs, i);
		char exchange[GW_NAME_MAX];

		if (!owner_is(rr, owner))
			continue;
		if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME) {
			snprintf(why, why_len, "%s is a CNAME: it cannot hold MX "
			         "records of its own", name);
			goto out;
		}
		if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_MX)
			continue;
		if (ldns_rr_rd_count(rr) != 2 ||
		    gw_dns_rdf_name(ldns_rr_mx_exchange(rr), exchange,
		                    sizeof(exchange)) != MAILMODE_OK ||
		    gw_mx_set_add(set, ldns_rdf2native_int16(ldns_rr_mx_preference(rr)),
		                  ldns_rr_ttl(rr), exchange) != MAILMODE_OK) {
			snprintf(why, why_len, "an MX record of %s could not be read "
			         "(odd host name, or more than %d records)", name,
			         GW_MX_MAX);
			goto out;
		}
	}
	rc = MAILMODE_OK;
out:
	ldns_rdf_deep_free(owner);
	return rc;
}

bool gw_dns_has_rrsig(const ldns_pkt *answer, const char *name,
                      ldns_rr_type type)
{
	ldns_rdf *owner = ldns_dname_new_frm_str(name);
	ldns_rr_list *rrs = ldns_pkt_answer(answer);
	bool found = false;
	size_t i;

	if (!owner)
		goto out;
	for (i = 0; i < ldns_rr_list_rr_count(rrs) && !found; i++) {
		ldns_rr *rr = ldns_rr_list_rr(rrs, i);

		found = ldns_rr_get_type(rr) == LDNS_RR_TYPE_RRSIG &&
		        owner_is(rr, owner) && ldns_rr_rrsig_typecovered(rr) &&
		        ldns_rdf2rr_type(ldns_rr_rrsig_typecovered(rr)) == type;
	}
out:
	ldns_rdf_deep_free(owner);
	return found;
}

/* ---- discovery ---------------------------------------------------------- */

/* The SOA in the authority section of a negative answer: its owner is the
 * apex of the zone the name belongs to. */
static ldns_rr *authority_soa(const ldns_pkt *answer)
{
	ldns_rr_list *rrs = ldns_pkt_authority(answer);
	size_t i;

	for (i = 0; i < ldns_rr_list_rr_count(rrs); i++) {
		if (ldns_rr_get_type(ldns_rr_list_rr(rrs, i)) == LDNS_RR_TYPE_SOA)
			return ldns_rr_list_rr(rrs, i);
	}
	return NULL;
}

static bool name_within(const char *name, const char *zone)
{
	size_t nlen = strlen(name), zlen = strlen(zone);

	return (nlen == zlen && strcmp(name, zone) == 0) ||
	       (nlen > zlen && name[nlen - zlen - 1] == '.' &&
	        strcmp(name + nlen - zlen, zone) == 0);
}

int gw_find_zone(struct gw_op *op)
{
	const struct mailmode_host *host = op->ctx->host;
	ldns_resolver *res = NULL;
	ldns_pkt *answer = NULL;
	char where[128], last[256] = "no answer", apex[GW_NAME_MAX];
	const char *name = op->domain;
	int rc;

	if (op->cfg->zone[0]) {
		snprintf(op->zone, sizeof(op->zone), "%s", op->cfg->zone);
		rc = MAILMODE_OK;
		goto out;
	}
	rc = gw_dns_lookup_resolver(op, &res, where, sizeof(where));
	if (rc != MAILMODE_OK)
		goto out;
	/* Walk up from the domain until a server names the zone's apex: an
	 * SOA owned by the name itself, or the SOA of a negative answer. */
	while (name && *name) {
		ldns_rr *soa = NULL;
		ldns_pkt_rcode rcode;

		ldns_pkt_free(answer);
		if (gw_dns_ask(res, name, LDNS_RR_TYPE_SOA, &answer, last,
		               sizeof(last)) == MAILMODE_OK) {
			rcode = ldns_pkt_get_rcode(answer);
			if (rcode == LDNS_RCODE_NOERROR)
				soa = gw_dns_answer_rr(answer, name, LDNS_RR_TYPE_SOA);
			if (!soa && (rcode == LDNS_RCODE_NOERROR ||
			             rcode == LDNS_RCODE_NXDOMAIN))
				soa = authority_soa(answer);
			if (soa && gw_dns_rdf_name(ldns_rr_owner(soa), apex,
			                           sizeof(apex)) == MAILMODE_OK) {
				apex[strlen(apex) - 1] = '\0';
				if (name_within(op->domain, apex)) {
					snprintf(op->zone, sizeof(op->zone), "%s", apex);
					rc = MAILMODE_OK;
					goto out;
				}
			}
			snprintf(last, sizeof(last), "%s for %s SOA",
			         gw_dns_rcode_name(rcode), name);
		} else {
			/* A resolver that does not answer will not answer for
			 * the parent either (and ldns has written it off). */
			break;
		}
		name = strchr(name, '.');
		if (name)
			name++;
	}
	host->diag_set(op->diag, MAILMODE_SEV_ERROR, 1,
	               "cannot find the zone of %s: no SOA found walking up from "
	               "it via %s (last: %s); set zone = in the profile",
	               op->domain, where, last);
	rc = MAILMODE_ERR_FAILED;
out:
	ldns_pkt_free(answer);
	if (res)
		ldns_resolver_deep_free(res);
	return rc;
}

int gw_lookup_addresses(struct gw_op *op, const char *name,
                        char addrs[][GW_ADDR_MAX], size_t max, size_t *count)
{
	static const ldns_rr_type types[] = { LDNS_RR_TYPE_A, LDNS_RR_TYPE_AAAA };
	const struct mailmode_host *host = op->ctx->host;
	ldns_resolver *res = NULL;
	ldns_pkt *answer = NULL;
	char where[128], why[256] = "";
	size_t t, i;
	int rc;

	*count = 0;
	rc = gw_dns_lookup_resolver(op, &res, where, sizeof(where));
	if (rc != MAILMODE_OK)
		goto out;
	for (t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		ldns_rr_list *rrs;
		ldns_rdf *owner;

		ldns_pkt_free(answer);
		if (gw_dns_ask(res, name, types[t], &answer, why, sizeof(why)) !=
		    MAILMODE_OK)
			break; /* no answer: the next query would not get one */
		rrs = ldns_pkt_answer(answer);
		owner = ldns_dname_new_frm_str(name);
		for (i = 0; owner && i < ldns_rr_list_rr_count(rrs) && *count < max;
		     i++) {
			ldns_rr *rr = ldns_rr_list_rr(rrs, i);
			char *text;

			/* Follow nothing: a CNAME'd NS is a broken delegation. */
			if (ldns_rr_get_type(rr) != types[t] || !owner_is(rr, owner))
				continue;
			text = ldns_rdf2str(ldns_rr_rdf(rr, 0));
			if (text)
				snprintf(addrs[(*count)++], GW_ADDR_MAX, "%s", text);
			free(text);
		}
		ldns_rdf_deep_free(owner);
	}
	if (*count == 0) {
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 1,
		               "cannot find an address of %s via %s%s%s", name, where,
		               why[0] ? ": " : "", why);
		rc = MAILMODE_ERR_FAILED;
		goto out;
	}
	rc = MAILMODE_OK;
out:
	ldns_pkt_free(answer);
	if (res)
		ldns_resolver_deep_free(res);
	return rc;
}

int gw_find_primary(struct gw_op *op)
{
	const struct mailmode_host *host = op->ctx->host;
	ldns_resolver *res = NULL;
	ldns_pkt *answer = NULL;
	ldns_rr *soa;
	char where[128], why[256], mname[GW_NAME_MAX];
	char addrs[GW_SERVERS_MAX][GW_ADDR_MAX];
	unsigned char buf[16];
	size_t count;
	int rc;

	if ((inet_pton(AF_INET, op->cfg->primary, buf) == 1 ||
	     inet_pton(AF_INET6, op->cfg->primary, buf) == 1) &&
	    strlen(op->cfg->primary) < sizeof(op->primary_addr)) {
		memcpy(op->primary_addr, op->cfg->primary,
		       strlen(op->cfg->primary) + 1);
		rc = MAILMODE_OK;
		goto out;
	}
	if (op->cfg->primary[0]) {
		snprintf(mname, sizeof(mname), "%s", op->cfg->primary);
	} else {
		/* The SOA MNAME names the primary, unless it is hidden (then
		 * the profile names it). */
		rc = gw_dns_lookup_resolver(op, &res, where, sizeof(where));
		if (rc != MAILMODE_OK)
			goto out;
		rc = gw_dns_ask(res, op->zone, LDNS_RR_TYPE_SOA, &answer, why,
		                sizeof(why));
		if (rc == MAILMODE_OK) {
			soa = gw_dns_answer_rr(answer, op->zone, LDNS_RR_TYPE_SOA);
			if (!soa || gw_dns_rdf_name(ldns_rr_rdf(soa, 0), mname,
			                            sizeof(mname)) != MAILMODE_OK) {
				snprintf(why, sizeof(why), "%s without an SOA record",
				         gw_dns_rcode_name(ldns_pkt_get_rcode(answer)));
				rc = MAILMODE_ERR_FAILED;
			}
		}
		if (rc != MAILMODE_OK) {
			host->diag_set(op->diag, MAILMODE_SEV_ERROR, 1,
			               "cannot read the SOA of zone %s via %s (%s) to "
			               "find its primary; or set primary = in [%s]",
			               op->zone, where, why, op->cfg->dns_section);
			goto out;
		}
	}
	rc = gw_lookup_addresses(op, mname, addrs, GW_SERVERS_MAX, &count);
	if (rc != MAILMODE_OK) {
		host->diag_append(op->diag, "the primary of zone %s is %s (%s)",
		                  op->zone, mname,
		                  op->cfg->primary[0] ? "configured" : "SOA MNAME");
		goto out;
	}
	snprintf(op->primary_addr, sizeof(op->primary_addr), "%s", addrs[0]);
	rc = MAILMODE_OK;
out:
	ldns_pkt_free(answer);
	if (res)
		ldns_resolver_deep_free(res);
	return rc;
}

int gw_lookup_ns(struct gw_op *op, char names[][GW_NAME_MAX], size_t max,
                 size_t *count)
{
	const struct mailmode_host *host = op->ctx->host;
	ldns_resolver *res = NULL;
	ldns_pkt *answer = NULL;
	ldns_rdf *owner = NULL;
	ldns_rr_list *rrs;
	char where[128], why[256];
	size_t i;
	int rc;

	*count = 0;
	rc = gw_dns_lookup_resolver(op, &res, where, sizeof(where));
	if (rc != MAILMODE_OK)
		goto out;
	rc = gw_dns_ask(res, op->zone, LDNS_RR_TYPE_NS, &answer, why, sizeof(why));
	if (rc == MAILMODE_OK) {
		owner = ldns_dname_new_frm_str(op->zone);
		rrs = ldns_pkt_answer(answer);
		for (i = 0; owner && i < ldns_rr_list_rr_count(rrs) && *count < max;
		     i++) {
			ldns_rr *rr = ldns_rr_list_rr(rrs, i);

			if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_NS &&
			    owner_is(rr, owner) &&
			    gw_dns_rdf_name(ldns_rr_rdf(rr, 0), names[*count],
			                    GW_NAME_MAX) == MAILMODE_OK)
				(*count)++;
		}
		if (*count == 0) {
			snprintf(why, sizeof(why), "%s without NS records",
			         gw_dns_rcode_name(ldns_pkt_get_rcode(answer)));
			rc = MAILMODE_ERR_FAILED;
		}
	}
	if (rc != MAILMODE_OK)
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 1,
		               "cannot read the NS set of zone %s via %s: %s", op->zone,
		               where, why);
out:
	ldns_rdf_deep_free(owner);
	ldns_pkt_free(answer);
	if (res)
		ldns_resolver_deep_free(res);
	return rc;
}
