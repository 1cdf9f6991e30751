/*
 * mailflow mode: the ABI 1.4 doctor operation.  Everything a switch to or
 * from mailflow mode needs of the tenant, checked one by one (plugin.h):
 * the token, the Exchange.ManageAsApp permission in it, the Exchange
 * Administrator role (a 403), the dormant tenant, inbound connectors, the
 * accepted domains, conflicting objects and the room for a rule; and of
 * the service, its service_ips.  Read-only: Get-* cmdlets only.  The
 * smart hosts are resolved by the gateway plugin's doctor, which has the
 * lookup resolver ([dns NAME] resolver).
 */
#include "mailflow.h"

#include "check.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A rule count this close to the limit is worth a warning. */
#define RULES_NEAR_LIMIT (MF_TENANT_RULE_LIMIT - 30)

#define ROLE_OK "Exchange Online answers the app's cmdlets"
#define NOT_DORMANT "the tenant is not dehydrated"

struct doctor {
	const struct mailmode_host *host;
	const struct mailmode_request *req;
	struct mf_profile *profile;
	struct mf_tenant *tenant;
	struct ms_exo exo;
	struct ms_exo_error err;
	char tenant_scope[300];
	cJSON *checks;
};

static void domain_check(struct doctor *d, const char *name, int ok, const char *fix,
                         const char *detail)
{
	char scope[300];

	snprintf(scope, sizeof(scope), "domain %s", d->req->domain);
	mm_check_addf(d->checks, scope, name, ok, 0, fix, "%s", detail);
}

/* Without a profile nothing else can be asked; a missing service_ips is
 * named as the service's. */
static void profile_failed(struct doctor *d, const struct mailmode_diag *diag)
{
	const struct mailmode_host *host = d->host;
	const char *service = host->config_get(host->handle, d->req->section, "service");
	char section[300], scope[300];

	snprintf(section, sizeof(section), "service %s", service ? service : "");
	if (service && !host->config_get(host->handle, section, "service_ips")) {
		snprintf(scope, sizeof(scope), "service %s", service);
		mm_check_addf(d->checks, scope, "service_ips set", 0, 0,
		      "add service_ips = the addresses the service sends mail from (its vendor publishes them) to [service S]: the transport rule lets mail from them through",
		      "[%s] has no service_ips", section);
		return;
	}
	domain_check(d, "mailflow configuration", 0, "correct the key the message names (mailmode.conf(5))",
	             diag->summary);
}

static char *consent_fix(const struct doctor *d, const char *what)
{
	char *url = ms_admin_consent_url(&d->profile->app, NULL);
	char *fix = ms_printf("%s; admin consent: %s (then wait a few minutes and run doctor again)",
	                      what, url ? url : "mailmode tenant consent-url TENANT");

	free(url);
	return fix;
}

/* The token, and the Exchange.ManageAsApp role in it: a token issued
 * without admin consent carries no roles claim. */
static int check_token(struct doctor *d)
{
	const struct mf_profile *p = d->profile;
	struct mailmode_diag diag = { 0 };
	const char *token = NULL, *scp;
	cJSON *claims, *role;
	char *fix;
	int granted = 0;

	if (ms_token_get(d->host, d->tenant->session.http, &p->app, &d->tenant->session.token,
	                 &token, &diag) != MAILMODE_OK) {
		fix = consent_fix(d, "check client_id and the secret or certificate in [tenant ...]; a multi-tenant app must be consented in this tenant");
		mm_check_addf(d->checks, d->tenant_scope, "token", 0, 0, fix, "%s", diag.summary);
		free(fix);
		return -1;
	}
	mm_check_addf(d->checks, d->tenant_scope, "token", 1, 0, NULL, "%s signed in",
	              p->app.token_cache ? "the person (auth = device)" : "the app");
	claims = ms_token_claims(token);
	/* A person's token (auth = device) carries delegated permissions in
	 * scp, space-separated; the app's its application roles. */
	scp = cJSON_GetStringValue(cJSON_GetObjectItem(claims, "scp"));
	if (p->app.token_cache)
		granted = scp && strstr(scp, "Exchange.Manage") != NULL;
	cJSON_ArrayForEach(role, cJSON_GetObjectItem(claims, "roles"))
		if (cJSON_IsString(role) && strcmp(role->valuestring, "Exchange.ManageAsApp") == 0)
			granted = 1;
	cJSON_Delete(claims);
	if (granted) {
		mm_check_addf(d->checks, d->tenant_scope, "permission", 1, 0, NULL, "the token carries %s",
		              p->app.token_cache ? "Exchange.Manage" : "Exchange.ManageAsApp");
		return 0;
	}
	if (p->app.token_cache)
		fix = consent_fix(d, "sign in again with mailmode tenant login, consenting to Exchange.Manage");
	else
		fix = consent_fix(d, "add the application permission Exchange.ManageAsApp (Office 365 Exchange Online) to the app and grant admin consent");
	mm_check_addf(d->checks, d->tenant_scope, "permission", 0, 0, fix,
	              "the token carries no %s: the permission is missing or not consented",
	              p->app.token_cache ? "Exchange.Manage scope" : "Exchange.ManageAsApp role");
	free(fix);
	return -1;
}

/* The first cmdlet tells the role: Exchange answers 403 to an app
 * without the Exchange Administrator role.  Then the dormant tenant. */
static int check_organization(struct doctor *d)
{
	int64_t now = d->host->clock_wall_ms(d->host->handle);
	struct mf_tenant *t = d->tenant;
	struct mailmode_diag diag = { 0 };
	cJSON *config = NULL;
	int rc;

	/* Proven within TENANT_FACTS_MS (an earlier domain of the run): the
	 * app was answered and the tenant was not dormant. */
	if (t->organization_checked_ms && now - t->organization_checked_ms < TENANT_FACTS_MS) {
		mm_check_addf(d->checks, d->tenant_scope, "role", 1, 0, NULL, ROLE_OK);
		mm_check_addf(d->checks, d->tenant_scope, "organization customization", 1, 0, NULL,
		              NOT_DORMANT);
		return 0;
	}
	rc = ms_exo_invoke(&d->exo, "Get-OrganizationConfig", NULL, &config, &d->err, &diag);
	if (rc != MAILMODE_OK && (d->err.status == 403 || d->err.status == 401)) {
		mm_check_addf(d->checks, d->tenant_scope, "role", 0, 0,
		      "assign the Exchange Administrator role to the app (Entra admin center, Roles and administrators, Exchange Administrator, add the app); a new role takes up to an hour to apply",
		      "Exchange Online refused the app (HTTP %ld): %s", d->err.status, d->err.text);
		return -1;
	}
	if (rc != MAILMODE_OK) {
		mm_check_addf(d->checks, d->tenant_scope, "admin API", 0, 0, "see the detail; run with -v for the requests",
		      "%s", diag.summary);
		return -1;
	}
	mm_check_addf(d->checks, d->tenant_scope, "role", 1, 0, NULL, ROLE_OK);
	if (ms_field_bool(cJSON_GetArrayItem(config, 0), "IsDehydrated") == 1)
		mm_check_addf(d->checks, d->tenant_scope, "organization customization", 0, 0,
		      "run Enable-OrganizationCustomization once in Exchange Online PowerShell; Microsoft can take up to an hour to apply it",
		      "the tenant is dormant (dehydrated): connectors and transport rules cannot be created");
	else {
		mm_check_addf(d->checks, d->tenant_scope, "organization customization", 1, 0, NULL,
		              NOT_DORMANT);
		t->organization_checked_ms = now;
	}
	cJSON_Delete(config);
	return 0;
}

static void check_accepted(struct doctor *d, const cJSON *accepted)
{
	const char *domain = d->req->domain;
	const cJSON *item;
	char detail[MAILMODE_DIAG_SUMMARY_MAX];
	struct ms_buf names = { 0 };
	int found = 0;

	cJSON_ArrayForEach(item, accepted) {
		const char *name = ms_field_str(item, "DomainName");

		if (!name)
			continue;
		ms_buf_addf(&names, "%s%s", names.len ? ", " : "", name);
		found |= ms_strcaseeq(name, domain);
	}
	if (found)
		snprintf(detail, sizeof(detail), "%s is an accepted domain of tenant %s", domain,
		         d->profile->tenant);
	else
		snprintf(detail, sizeof(detail), "%s is not an accepted domain of tenant %s (accepted: %s)",
		         domain, d->profile->tenant, names.data ? names.data : "none");
	domain_check(d, "accepted domain", found,
	             "add and verify the domain in the Microsoft 365 admin center, or use the profile of the tenant that owns it",
	             detail);
	ms_buf_free(&names);
}

static void check_inbound(struct doctor *d, const cJSON *inbound)
{
	int n = cJSON_GetArraySize(inbound);

	/* Exchange has no read that says whether the subscription allows
	 * them (Microsoft 365 E5 developer subscriptions do not): a tenant
	 * that has one proves it, an empty one proves nothing. */
	if (n > 0)
		mm_check_addf(d->checks, d->tenant_scope, "inbound connectors allowed", 1, 0, NULL,
		      "the tenant has %d inbound connector(s)", n);
	else
		mm_check_addf(d->checks, d->tenant_scope, "inbound connectors allowed", 1, 1,
		      "if setup is refused with \"Your subscription doesn't allow creating inbound connectors\", use a tenant with a production subscription (a developer subscription cannot have them)",
		      "not known until the first inbound connector is made: the tenant has none");
}

static void check_conflicts(struct doctor *d, const cJSON *rules, const cJSON *outbound,
                            const cJSON *inbound)
{
	struct ms_buf refused = { 0 }, accepted = { 0 };
	struct mf_conflicts c = { NULL, &refused, &accepted, NULL };
	int n = mf_find_conflicts(d->profile, d->req->domain, rules, outbound, inbound, &c);
	char detail[MAILMODE_DIAG_SUMMARY_MAX * 2], *p;

	if (n == 0) {
		domain_check(d, "conflicts", 1, NULL, "no rule or connector of the tenant fights ours");
		goto out;
	}
	snprintf(detail, sizeof(detail), "%d object(s) conflict: %s", n,
	         refused.data ? refused.data : "");
	for (p = detail; *p; p++)
		if (*p == '\n')
			*p = p[1] ? ';' : '\0';
	domain_check(d, "conflicts", 0,
	             "disable, remove or scope them away from the domain, or accept each by name with --accept-conflict NAME when switching",
	             detail);
out:
	ms_buf_free(&refused);
	ms_buf_free(&accepted);
}

static void check_rules(struct doctor *d, const cJSON *rules)
{
	const cJSON *rule;
	int total = cJSON_GetArraySize(rules), shared = 0;
	const char *fix = "remove transport rules of the tenant that are no longer needed";

	cJSON_ArrayForEach(rule, rules)
		shared += mf_shared_rule_index(d->profile, rule) != 0;
	if (total >= MF_TENANT_RULE_LIMIT &&
	    !mf_shared_rule_of(d->profile, rules, d->req->domain, NULL) && !shared)
		mm_check_addf(d->checks, d->tenant_scope, "rule count", 0, 0, fix,
		      "%d of Exchange Online's %d transport rules: no room for mailmode's rule",
		      total, MF_TENANT_RULE_LIMIT);
	else
		mm_check_addf(d->checks, d->tenant_scope, "rule count", 1, total >= RULES_NEAR_LIMIT, fix,
		      "%d of Exchange Online's %d transport rules%s", total, MF_TENANT_RULE_LIMIT,
		      total >= RULES_NEAR_LIMIT ? ": near the limit" : "");
}

/* One read of a collection, or the tenant's copy of it when fresh: a
 * doctor run over many domains of a tenant reads it once (the caches of
 * tenant.c, which the read-only operations share). */
static int read_cached(struct doctor *d, const char *cmdlet, int fresh, cJSON **cache,
                       cJSON **out, struct mailmode_diag *diag)
{
	cJSON *params = NULL;
	int rc;

	if (fresh) {
		*out = cJSON_Duplicate(*cache, 1);
		return *out ? MAILMODE_OK : MAILMODE_ERR_NOMEM;
	}
	/* Test-mode outbound connectors are hidden without it. */
	if (strcmp(cmdlet, "Get-OutboundConnector") == 0 &&
	    (!(params = cJSON_CreateObject()) ||
	     !cJSON_AddBoolToObject(params, "IncludeTestModeConnectors", 1))) {
		cJSON_Delete(params);
		return MAILMODE_ERR_NOMEM;
	}
	rc = ms_exo_invoke(&d->exo, cmdlet, params, out, &d->err, diag);
	cJSON_Delete(params);
	if (rc == MAILMODE_OK) {
		cJSON_Delete(*cache);
		*cache = cJSON_Duplicate(*out, 1);
	}
	return rc;
}

/* The reads setup starts with, each its own check. */
static void check_objects(struct doctor *d)
{
	struct mf_tenant *t = d->tenant;
	cJSON *accepted = NULL, *rules = NULL, *outbound = NULL, *inbound = NULL;
	struct mailmode_diag diag = { 0 };
	int64_t now = d->host->clock_wall_ms(d->host->handle);
	int accepted_fresh = t->accepted && now - t->accepted_read_ms < TENANT_FACTS_MS;
	int world_fresh = t->world_read_ms && now - t->world_read_ms < MF_WORLD_CACHE_MS;
	int rc;

	rc = read_cached(d, "Get-AcceptedDomain", accepted_fresh, &t->accepted, &accepted, &diag);
	if (rc == MAILMODE_OK && !accepted_fresh)
		t->accepted_read_ms = t->accepted ? now : 0;
	/* The three are one cached read (world_read_ms). */
	if (rc == MAILMODE_OK)
		rc = read_cached(d, "Get-TransportRule", world_fresh, &t->rules, &rules, &diag);
	if (rc == MAILMODE_OK)
		rc = read_cached(d, "Get-OutboundConnector", world_fresh, &t->outbound, &outbound,
		                 &diag);
	if (rc == MAILMODE_OK)
		rc = read_cached(d, "Get-InboundConnector", world_fresh, &t->inbound, &inbound, &diag);
	if (!world_fresh)
		t->world_read_ms = rc == MAILMODE_OK && t->rules && t->outbound && t->inbound ? now : 0;
	if (rc != MAILMODE_OK) {
		mm_check_addf(d->checks, d->tenant_scope, "admin API", 0, 0,
		              "see the detail; run with -v for the requests", "%s",
		              rc == MAILMODE_ERR_NOMEM ? "out of memory" : diag.summary);
		goto out;
	}
	check_accepted(d, accepted);
	check_inbound(d, inbound);
	check_conflicts(d, rules, outbound, inbound);
	check_rules(d, rules);
out:
	cJSON_Delete(accepted);
	cJSON_Delete(rules);
	cJSON_Delete(outbound);
	cJSON_Delete(inbound);
}

static void run_checks(struct doctor *d, void *ctx)
{
	struct mailmode_diag diag = { 0 };
	char scope[300];

	snprintf(scope, sizeof(scope), "service %s", d->profile->service);
	mm_check_addf(d->checks, scope, "service_ips set", 1, 0, NULL, "%zu address range(s)",
	      d->profile->nservice_ips);
	if (mf_tenant_acquire(ctx, d->profile, &d->tenant, &diag) != MAILMODE_OK) {
		mm_check_addf(d->checks, d->tenant_scope, "token", 0, 0, "see the detail", "%s", diag.summary);
		return;
	}
	d->exo = (struct ms_exo){ .host = d->host, .app = &d->profile->app,
	                          .api_url = d->profile->api_url, .session = &d->tenant->session };
	d->host->progress(d->host->handle, "checking tenant %s", d->profile->tenant);
	if (check_token(d) == 0 && check_organization(d) == 0)
		check_objects(d);
	ms_buf_free(&d->exo.warnings);
	mf_tenant_release(d->tenant);
}

int mf_doctor(void *opaque, const struct mailmode_request *req, char **checks,
              struct mailmode_diag *diag)
{
	struct mf_ctx *ctx = opaque;
	struct doctor d = { .host = ctx->host, .req = req };
	struct mailmode_diag load = { 0 };
	char *text = NULL;

	*checks = NULL;
	d.checks = cJSON_CreateArray();
	if (!d.checks)
		goto nomem;
	if (mf_profile_load(ctx->host, ctx->mode_section, req->section, &d.profile, &load) !=
	    MAILMODE_OK)
		profile_failed(&d, &load);
	else if (snprintf(d.tenant_scope, sizeof(d.tenant_scope), "tenant %s", d.profile->tenant) &&
	         ms_credentials_check(ctx->host, &d.profile->app, &load) != MAILMODE_OK)
		mm_check_addf(d.checks, d.tenant_scope, "credentials readable", 0, 0,
		      "fix the file the message names (mode 0600, the secret or key it should hold)",
		      "%s", load.summary);
	else
		run_checks(&d, ctx);
	text = cJSON_PrintUnformatted(d.checks);
	if (!text || !(*checks = ctx->host->strdup(text)))
		goto nomem;
	free(text);
	cJSON_Delete(d.checks);
	mf_profile_free(d.profile);
	return MAILMODE_OK;
nomem:
	free(text);
	cJSON_Delete(d.checks);
	mf_profile_free(d.profile);
	ctx->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
	return MAILMODE_ERR_NOMEM;
}
