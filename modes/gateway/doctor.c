/*
 * Gateway mode: the ABI 1.4 doctor operation.  What a switch to or from
 * gateway mode needs of the DNS, checked one by one (plugin.h): the zone
 * and its primary found, the credentials accepted for a change of the
 * domain's MX (the provider's probe_update, as preflight: RFC 2136 a
 * signed UPDATE whose prerequisite fails, the API providers their
 * read-only permission check), every authoritative server answering
 * alike, the MX TTL and the cache wait it implies; of the service, the
 * gateway hosts and the smart hosts resolving through the lookup resolver
 * (Exchange Online resolves the smart hosts on the public DNS).
 */
#include "provider.h"

#include "check.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An MX TTL longer than this makes a switch wait long: worth a warning. */
#define LONG_TTL_S 3600

struct doctor {
	const struct gw_ctx *ctx;
	struct gw_call *call;
	char zone_scope[GW_NAME_MAX + 8];
	cJSON *checks;
};

static void credentials(struct doctor *d, struct gw_provider *provider)
{
	const struct gw_config *cfg = &d->call->cfg;
	const char *domain = d->call->op.domain;
	char fix[GW_NAME_MAX * 4 + GW_TSIG_SECRET_FILE_MAX];

	if (cfg->provider == GW_PROVIDER_RFC2136)
		snprintf(fix, sizeof(fix),
		         "let TSIG key %s update %s MX on the primary (BIND: update-policy { grant %s name %s. MX; };) and check that %s holds that key's secret",
		         cfg->tsig_key, domain, cfg->tsig_key, domain, cfg->tsig_secret_file);
	else
		snprintf(fix, sizeof(fix),
		         "give the credentials of [%s] the right to edit the DNS records of zone %s",
		         cfg->dns_section, d->call->op.zone);
	if (provider->ops->probe_update(provider, domain) == GW_REPLACE_OK)
		mm_check_addf(d->checks, d->zone_scope, "credentials can update", 1, 0, NULL, "%s",
		      cfg->provider == GW_PROVIDER_RFC2136 ? "the primary accepts a signed UPDATE of the MX (its prerequisite failed: nothing changed)"
		                                           : provider->proven);
	else
		mm_check_addf(d->checks, d->zone_scope, "credentials can update", 0, 0, fix, "%s",
		      d->call->op.diag->summary);
}

/* Every server of the NS set, the same serial and MX set; the longest
 * TTL of the live set is how long resolvers may keep it after a switch. */
static void servers(struct doctor *d)
{
	struct gw_auth_view *view = calloc(1, sizeof(*view));
	struct gw_auth_verdict verdict;
	const struct gw_server_view *first = NULL;
	char detail[MAILMODE_DIAG_SUMMARY_MAX * 2] = "", scope[GW_NAME_MAX + 8], set[512];
	uint32_t ttl = 0;
	size_t i, used = 0;

	if (!view || gw_auth_collect(&d->call->op, view) != MAILMODE_OK) {
		mm_check_addf(d->checks, d->zone_scope, "all NS answer alike", 0, 0,
		      "check the zone's NS records and that the lookup resolver ([dns] resolver) answers",
		      "%s", view ? d->call->op.diag->summary : "out of memory");
		free(view);
		return;
	}
	gw_auth_judge(view, &d->call->cfg.gateway, &verdict);
	for (i = 0; i < view->count && used < sizeof(detail) - 1; i++) {
		const struct gw_server_view *sv = &view->servers[i];

		if (sv->answered && !first)
			first = sv;
		if (sv->answered)
			gw_mx_set_format(&sv->mx, false, set, sizeof(set));
		used += (size_t)snprintf(detail + used, sizeof(detail) - used,
		                         "%s%s (%s) %s%u, %s", i ? "; " : "", sv->ns_name, sv->address,
		                         sv->answered ? "serial " : "", sv->answered ? sv->serial : 0,
		                         sv->answered ? set : sv->error);
	}
	mm_check_addf(d->checks, d->zone_scope, "all NS answer alike", verdict.consistent, 0,
	      "bring every authoritative server to the primary's zone: check the zone transfers to the secondaries (allow-transfer, also-notify) and wait until their serials match",
	      "%zu server(s): %s", view->count, detail);
	snprintf(scope, sizeof(scope), "domain %s", d->call->op.domain);
	for (i = 0; first && i < first->mx.count; i++)
		if (first->mx.mx[i].ttl > ttl)
			ttl = first->mx.mx[i].ttl;
	if (first)
		mm_check_addf(d->checks, scope, "MX TTL", 1, ttl > LONG_TTL_S,
		      "lower the MX TTL (say to 300 s) at least one old TTL before the switch",
		      "%u s: resolvers may keep the old MX that long after a switch, so the switch keeps the old mode for %u s (%.1f h) before tearing it down",
		      ttl, ttl, ttl / 3600.0);
	free(view);
}

/* The hosts of one list resolve through the lookup resolver. */
static void resolve(struct doctor *d, const char *name, const char *const *hosts, size_t n)
{
	char addrs[4][GW_ADDR_MAX], failed[1024] = "", resolved[1024] = "";
	size_t i, count;

	for (i = 0; i < n; i++) {
		char *list = gw_lookup_addresses(&d->call->op, hosts[i], addrs, 4, &count) ==
		             MAILMODE_OK && count ? resolved : failed;
		size_t used = strlen(list);

		snprintf(list + used, sizeof(resolved) - used, "%s%s", used ? ", " : "", hosts[i]);
	}
	if (failed[0])
		mm_check_addf(d->checks, d->call->cfg.service_section, name, 0, 0,
		      "publish A or AAAA records for them, or correct the names in the service section",
		      "%s do(es) not resolve", failed);
	else
		mm_check_addf(d->checks, d->call->cfg.service_section, name, 1, 0, NULL, "%s", resolved);
}

static void service_hosts(struct doctor *d)
{
	const struct mailmode_host *host = d->ctx->host;
	const struct gw_mx_set *gw = &d->call->cfg.gateway;
	const char *hosts[GW_MX_MAX], *smart;
	char copy[1024], *tok, *save = NULL;
	size_t i, n = 0;

	for (i = 0; i < gw->count; i++)
		hosts[i] = gw->mx[i].host;
	resolve(d, "gateway hosts resolve", hosts, gw->count);
	if (d->call->cfg.tenant.outbound) {
		for (i = 0; i < d->call->cfg.tenant.out_host_count; i++)
			hosts[i] = d->call->cfg.tenant.out_hosts[i];
		resolve(d, "outbound smart hosts resolve", hosts, i);
	}
	/* mailflow mode's key of the same [service NAME]. */
	smart = host->config_get(host->handle, d->call->cfg.service_section, "smart_hosts");
	if (!smart)
		return;
	snprintf(copy, sizeof(copy), "%s", smart);
	for (tok = strtok_r(copy, " \t,", &save); tok && n < GW_MX_MAX;
	     tok = strtok_r(NULL, " \t,", &save))
		hosts[n++] = tok;
	resolve(d, "smart hosts resolve", hosts, n);
}

/* With gateway_tenant: the tenant signs in and answers for the objects the
 * tenant side makes (none there that is not mailmode's). */
static void tenant(struct doctor *d, struct mailmode_diag *diag)
{
	const struct gw_tenant_config *tc = &d->call->cfg.tenant;
	char scope[GW_NAME_MAX + 8];

	if (!tc->enabled)
		return;
	snprintf(scope, sizeof(scope), "[%s]", tc->section);
	if (gw_tenant_preflight(d->call) != MAILMODE_OK)
		mm_check_addf(d->checks, scope, "gateway tenant answers", 0, 0,
		      "fix what the message names ([tenant] sign-in, or the object of that name)",
		      "%s", diag->summary);
	else
		mm_check_addf(d->checks, scope, "gateway tenant answers", 1, 0, NULL,
		      "signed in; inbound connector '%s'%s%s%s", tc->connector,
		      tc->outbound ? ", outbound connector and rule '" : "",
		      tc->outbound ? tc->out_name : "", tc->outbound ? "'" : "");
}

static void run_checks(struct doctor *d, const struct mailmode_request *req,
                       struct mailmode_diag *diag)
{
	struct gw_provider *provider = NULL;
	char scope[GW_NAME_MAX + 8];

	snprintf(scope, sizeof(scope), "domain %s", req->domain);
	if (gw_begin_call(d->ctx, req, diag, true, d->call) != MAILMODE_OK) {
		if (!d->call->op.ctx)
			mm_check_addf(d->checks, scope, "gateway configuration", 0, 0,
			      "correct the key the message names (mailmode.conf(5))", "%s", diag->summary);
		else
			mm_check_addf(d->checks, scope, "zone found", 0, 0,
			      "set zone = in the profile, or check that the lookup resolver finds the zone's SOA and its primary",
			      "%s", diag->summary);
		return;
	}
	snprintf(d->zone_scope, sizeof(d->zone_scope), "zone %s", d->call->op.zone);
	mm_check_addf(d->checks, d->zone_scope, "zone found", 1, 0, NULL, "%s%s",
	      d->call->op.primary_addr[0] ? "primary " : "provider ",
	      d->call->op.primary_addr[0] ? d->call->op.primary_addr
	                                  : gw_config_provider_name(d->call->cfg.provider));
	if (gw_provider_open(&d->call->op, true, &provider) != MAILMODE_OK)
		mm_check_addf(d->checks, d->zone_scope, "credentials can update", 0, 0,
		      "fix the credential file the message names", "%s", diag->summary);
	else
		credentials(d, provider);
	if (provider)
		provider->ops->close(provider);
	servers(d);
	service_hosts(d);
	tenant(d, diag);
}

int gw_doctor(void *vctx, const struct mailmode_request *req, char **checks,
              struct mailmode_diag *diag)
{
	struct doctor d = { .ctx = vctx };
	char *text = NULL;
	int rc = MAILMODE_ERR_NOMEM;

	*checks = NULL;
	d.call = calloc(1, sizeof(*d.call));
	d.checks = cJSON_CreateArray();
	if (d.call && d.checks) {
		run_checks(&d, req, diag);
		/* The failures are in the checks, not the call's result. */
		memset(diag, 0, sizeof(*diag));
		text = cJSON_PrintUnformatted(d.checks);
		*checks = text ? d.ctx->host->strdup(text) : NULL;
		rc = *checks ? MAILMODE_OK : MAILMODE_ERR_NOMEM;
	}
	if (rc != MAILMODE_OK)
		d.ctx->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
	cJSON_free(text);
	cJSON_Delete(d.checks);
	free(d.call);
	return rc;
}
