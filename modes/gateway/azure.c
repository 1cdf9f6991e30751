/*
 * The Azure DNS provider (Azure Resource Manager, api-version 2018-05-01).
 *
 * Credentials: an Entra ID app (tenant, client_id) with a client secret or
 * a certificate, signed in with the client credentials grant for
 * https://management.azure.com/.default through lib/ms (the same code as
 * the mailflow plugin's sign-in).  The app needs the built-in role "DNS
 * Zone Contributor" on the zone or its resource group.
 *
 * The MX set is one ARM resource, .../dnsZones/{zone}/MX/{relative name},
 * with an etag that changes on every write.  The replacement is a PUT of
 * the whole set with If-Match: <the etag read> (If-None-Match: * when there
 * was none; a DELETE with If-Match when the replacement is empty): ARM
 * refuses it with 412 PreconditionFailed when the set is no longer the one
 * read, so it is a real compare-and-swap.
 *
 * The zone: the one of resource_group, else found by listing the
 * subscription's dnsZones (nextLink paging): the longest suffix of the
 * domain; two zones of that name (in two resource groups) are refused, and
 * so is a zone whose zoneType is Private.  Azure's private DNS zones proper
 * are another resource type (Microsoft.Network/privateDnsZones) that this
 * listing never shows, so a domain held only there is "no zone".
 */
#include "provider.h"
#include "https.h"

#include "ms/ms.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define API_VERSION "2018-05-01"
#define AUTHZ_API_VERSION "2022-04-01"
#define MAX_PAGES 50
#define MX_WRITE "Microsoft.Network/dnsZones/MX/write"

static const char ROLE[] = "assign it the role \"DNS Zone Contributor\" on the "
                           "zone or its resource group";

struct az {
	struct gw_https api;        /* ARM and the token endpoint */
	struct ms_app app;
	struct ms_token token;
	char *certificate_file;     /* host->config_path'ed, or NULL */
	bool have_zone;
	char zone[GW_NAME_MAX];     /* "example.com", no dot */
	char group[GW_NAME_MAX];    /* its resource group */
	char zone_path[GW_URL_MAX * 2]; /* /subscriptions/../dnsZones/{zone} */
	/* The context's cache (provider.h): the token of this key. */
	char token_key[GW_NAME_MAX * 3 + GW_URL_MAX + 64];
};

/* ---- sign-in ---------------------------------------------------------------- */

static void app_init(struct az *self, const struct gw_config *cfg)
{
	const struct gw_azure_config *a = &cfg->azure;

	self->app = (struct ms_app){
		.section = cfg->dns_section,
		.tenant = a->app.tenant,
		.client_id = a->app.client_id,
		.client_secret_file = a->app.certificate ? NULL : a->app.credentials_file,
		.private_key_file = a->app.certificate ? a->app.credentials_file : NULL,
		.certificate_file = self->certificate_file,
		.login_url = a->app.login_url,
		.scope = MS_SCOPE_ARM,
		.ca_file = self->api.ca_file,
		.assertion_alg = a->app.rs256 ? MS_ASSERTION_RS256 : MS_ASSERTION_PS256,
		.timeout_ms = (long)cfg->timeout_s * 1000,
	};
}

/* The token as the bearer of the next calls: this handle's, the context's
 * cached one for this app, or a new one (ms_token_get renews a token 5
 * minutes before it expires).  The diagnostic names Azure DNS and the
 * section when the sign-in fails. */
static int sign_in(struct gw_provider *provider)
{
	struct az *self = provider->impl;
	const struct gw_op *op = provider->op;
	const struct mailmode_host *host = op->ctx->host;
	char first[MAILMODE_DIAG_SUMMARY_MAX];
	const char *token;
	int64_t had;
	int rc;

	if (!self->token.access_token)
		self->token.access_token = gw_cache_get(op, self->token_key,
		                                        &self->token.expires_at_ms);
	had = self->token.expires_at_ms;
	rc = ms_token_get(host, self->api.session, &self->app, &self->token,
	                  &token, op->diag);
	if (rc == MAILMODE_OK && self->token.expires_at_ms != had)
		gw_cache_put(op, self->token_key, token, self->token.expires_at_ms);
	if (rc == MAILMODE_OK)
		return gw_https_set_bearer(&self->api, token);
	/* ms_not_sent's line names the section already. */
	snprintf(first, sizeof(first), "%s", op->diag->summary);
	if (first[0] == '[')
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, op->diag->retryable,
		               "Azure DNS %.900s", first);
	else
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, op->diag->retryable,
		               "Azure DNS [%s]: %.900s", op->cfg->dns_section, first);
	return rc;
}

int gw_azure_check_credentials(const struct gw_ctx *ctx,
                               const struct gw_config *cfg,
                               struct mailmode_diag *diag)
{
	struct az self = { 0 };
	int rc = MAILMODE_OK;

	if (cfg->azure.app.certificate_file[0]) {
		self.certificate_file = ctx->host->config_path(ctx->host->handle,
		                                               cfg->azure.app.certificate_file);
		if (!self.certificate_file)
			return MAILMODE_ERR_NOMEM;
	}
	app_init(&self, cfg);
	rc = ms_credentials_check(ctx->host, &self.app, diag);
	ctx->host->free(self.certificate_file);
	return rc;
}

/* ---- API calls ----------------------------------------------------------------- */

/* One ARM call to path (below api_url; a nextLink is passed whole).
 * MAILMODE_OK when an answer arrived (any status); MAILMODE_ERR_UNKNOWN
 * when the request went out and none came; anything else when it was not
 * sent (sign-in).  The diagnostic is set unless OK. */
static int api_call(struct gw_provider *provider, const char *method,
                    const char *path, const char *condition, const char *body,
                    const char *what, struct gw_https_answer *answer)
{
	struct az *self = provider->impl;
	const struct gw_op *op = provider->op;
	int reauth = 0, rc;

	memset(answer, 0, sizeof(*answer));
	for (;;) {
		rc = sign_in(provider);
		if (rc != MAILMODE_OK)
			return rc;
		self->api.condition = condition;
		rc = gw_https_api_call(&self->api, "Azure DNS", method, path, NULL,
		                       body, what, answer);
		self->api.condition = NULL;
		if (rc != MAILMODE_OK)
			return MAILMODE_ERR_UNKNOWN;
		/* A token revoked or expired early: once more with a new one. */
		if (answer->status != 401 || reauth++)
			return MAILMODE_OK;
		gw_cache_drop(op, self->token_key, self->token.access_token);
		ms_token_forget(&self->token);
		gw_https_answer_free(answer);
	}
}

/* ARM's error: {"error":{"code","message"}}, or bare {"code","message"}
 * (the DNS resource provider's own). */
static void error_of(const struct gw_https_answer *answer, const char **code,
                     const char **message)
{
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(answer->json, "error");
	const cJSON *c, *m;

	if (!cJSON_IsObject(err))
		err = answer->json;
	c = cJSON_GetObjectItemCaseSensitive(err, "code");
	m = cJSON_GetObjectItemCaseSensitive(err, "message");
	*code = cJSON_IsString(c) ? c->valuestring : "";
	*message = cJSON_IsString(m) ? m->valuestring : "(no JSON error body)";
}

/* A refused call; the diagnostic names the role to grant when it is
 * access. */
static int refused(struct gw_provider *provider, const char *what,
                   const struct gw_https_answer *answer)
{
	struct az *self = provider->impl;
	const struct gw_op *op = provider->op;
	const struct mailmode_host *host = op->ctx->host;
	const char *code, *message;

	error_of(answer, &code, &message);
	if (answer->status == 401 || answer->status == 403) {
		/* The role first: ARM's message is long and may be cut. */
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
		               "Azure DNS refused %s to the app %s of tenant %s: %s "
		               "(HTTP %ld %s: %.300s)", what, self->app.client_id,
		               self->app.tenant, ROLE, answer->status, code, message);
		return MAILMODE_ERR_DENIED;
	}
	host->diag_set(op->diag, MAILMODE_SEV_ERROR,
	               answer->status == 429 || answer->status >= 500,
	               "Azure DNS refused %s in subscription %s (HTTP %ld %s: "
	               "%.300s)%s", what, op->cfg->azure.subscription,
	               answer->status, code, message, answer->status == 429 ?
	               ": still throttled after the retry budget" : "");
	return MAILMODE_ERR_FAILED;
}

/* GET; MAILMODE_OK only with a 200 answer (a 404 too when *not_found is
 * given: then it is set). */
static int api_get(struct gw_provider *provider, const char *path,
                   const char *what, bool *not_found,
                   struct gw_https_answer *answer)
{
	const char *code, *message;
	int rc = api_call(provider, "GET", path, NULL, NULL, what, answer);

	if (rc == MAILMODE_ERR_UNKNOWN)
		return MAILMODE_ERR_FAILED; /* a read: nothing to be unsure of */
	if (rc != MAILMODE_OK || answer->status == 200)
		return rc;
	error_of(answer, &code, &message);
	/* The record set is absent ("NotFound"), not its zone or group
	 * (ResourceNotFound, ParentResourceNotFound, ResourceGroupNotFound). */
	if (not_found && answer->status == 404 && strcmp(code, "NotFound") == 0) {
		*not_found = true;
		return MAILMODE_OK;
	}
	rc = refused(provider, what, answer);
	gw_https_answer_free(answer);
	return rc;
}

/* ---- the zone ------------------------------------------------------------------- */

struct zone_match {
	size_t best_len;
	int count;                  /* zones of the best length */
	bool private_zone;
	char zone[GW_NAME_MAX], group[GW_NAME_MAX];
	char names[512];            /* every best match, for the message */
};

/* "/subscriptions/S/resourceGroups/RG/providers/..." -> RG. */
static void group_of(const char *id, char *out, size_t len)
{
	const char *p = strcasestr(id, "/resourceGroups/");
	size_t n;

	out[0] = '\0';
	if (!p)
		return;
	p += strlen("/resourceGroups/");
	n = strcspn(p, "/");
	if (n < len)
		snprintf(out, len, "%.*s", (int)n, p);
}

static void note_zone(const cJSON *zone, const char *domain, struct zone_match *m)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(zone, "name");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(zone, "id");
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(zone, "properties"), "zoneType");
	size_t zl, dl = strlen(domain);
	char group[GW_NAME_MAX];

	if (!cJSON_IsString(name) || !cJSON_IsString(id))
		return;
	zl = strlen(name->valuestring);
	if (zl == 0 || zl > dl || zl < m->best_len ||
	    strcasecmp(domain + dl - zl, name->valuestring) != 0 ||
	    (zl < dl && domain[dl - zl - 1] != '.'))
		return;
	group_of(id->valuestring, group, sizeof(group));
	if (zl > m->best_len) {
		m->best_len = zl;
		m->count = 0;
		m->private_zone = false;
		m->names[0] = '\0';
	}
	m->count++;
	if (cJSON_IsString(type) && strcasecmp(type->valuestring, "Private") == 0)
		m->private_zone = true;
	snprintf(m->zone, sizeof(m->zone), "%s", name->valuestring);
	snprintf(m->group, sizeof(m->group), "%s", group);
	snprintf(m->names + strlen(m->names), sizeof(m->names) - strlen(m->names),
	         "%s%s in resource group %s", m->names[0] ? ", " : "",
	         name->valuestring, group);
}

/* The subscription's (or resource group's) DNS zones, every page. */
static int list_zones(struct gw_provider *provider, struct zone_match *m)
{
	const struct gw_op *op = provider->op;
	const struct gw_azure_config *a = &op->cfg->azure;
	struct gw_https_answer answer;
	char path[GW_URL_MAX * 3];
	const cJSON *zone, *next;
	int pages = 0, rc;

	memset(m, 0, sizeof(*m));
	if (a->resource_group[0])
		snprintf(path, sizeof(path), "/subscriptions/%s/resourceGroups/%s/"
		         "providers/Microsoft.Network/dnsZones?api-version="
		         API_VERSION, a->subscription, a->resource_group);
	else
		snprintf(path, sizeof(path), "/subscriptions/%s/providers/"
		         "Microsoft.Network/dnszones?api-version=" API_VERSION,
		         a->subscription);
	for (;;) {
		rc = api_get(provider, path, a->resource_group[0] ? "the list of the "
		             "resource group's DNS zones" : "the list of the "
		             "subscription's DNS zones (with a role on the resource "
		             "group only, set resource_group =)", NULL, &answer);
		if (rc != MAILMODE_OK)
			return rc;
		cJSON_ArrayForEach(zone, cJSON_GetObjectItemCaseSensitive(answer.json,
		                                                          "value"))
			note_zone(zone, op->domain, m);
		next = cJSON_GetObjectItemCaseSensitive(answer.json, "nextLink");
		path[0] = '\0';
		/* The bearer token goes where nextLink points: only to the API. */
		if (cJSON_IsString(next) &&
		    strncmp(next->valuestring, op->cfg->api_url,
		            strlen(op->cfg->api_url)) == 0 &&
		    next->valuestring[strlen(op->cfg->api_url)] == '/')
			snprintf(path, sizeof(path), "%s", next->valuestring);
		else if (cJSON_IsString(next) && next->valuestring[0])
			op->ctx->host->log(op->ctx->host->handle, MAILMODE_LOG_WARNING,
			                   "Azure DNS: nextLink outside %s ignored: %s",
			                   op->cfg->api_url, next->valuestring);
		gw_https_answer_free(&answer);
		if (!path[0] || ++pages >= MAX_PAGES)
			return MAILMODE_OK;
	}
}

static void use_zone(struct gw_provider *provider, const char *zone,
                     const char *group)
{
	struct az *self = provider->impl;
	const char *sub = provider->op->cfg->azure.subscription;

	snprintf(self->zone, sizeof(self->zone), "%s", zone);
	snprintf(self->group, sizeof(self->group), "%s", group);
	snprintf(self->zone_path, sizeof(self->zone_path), "/subscriptions/%s/"
	         "resourceGroups/%s/providers/Microsoft.Network/dnsZones/%s",
	         sub, group, zone);
	snprintf(provider->where, sizeof(provider->where), "Azure DNS zone %.150s "
	         "(resource group %.150s, subscription %.100s)", zone, group, sub);
	self->have_zone = true;
}

/* The one public zone that is the longest suffix of the domain (name:
 * the domain): its name and resource group. */
static int look_zone_up(struct gw_provider *provider, const char *name,
                        char *zone, char *group)
{
	const struct gw_op *op = provider->op;
	const struct mailmode_host *host = op->ctx->host;
	const struct gw_azure_config *a = &op->cfg->azure;
	struct zone_match m;
	int rc;

	rc = list_zones(provider, &m);
	if (rc != MAILMODE_OK)
		return rc;
	if (m.count == 0) {
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
		               "no DNS zone of Azure subscription %s%s%s holds %s "
		               "(private zones, Microsoft.Network/privateDnsZones, "
		               "are not listed and cannot serve the world): is it "
		               "the right subscription, and may the app %s read its "
		               "zones? %s", a->subscription,
		               a->resource_group[0] ? " resource group " : "",
		               a->resource_group, op->domain, a->app.client_id, ROLE);
		return MAILMODE_ERR_FAILED;
	}
	if (m.count > 1 || m.private_zone) {
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
		               "Azure subscription %s has %s for %s (%s): refusing "
		               "it%s", a->subscription, m.count > 1 ?
		               "more than one DNS zone" : "only a private DNS zone",
		               op->domain, m.names, m.count > 1 ?
		               "; set resource_group = in the section" : "");
		return MAILMODE_ERR_FAILED;
	}
	(void)name;
	snprintf(zone, GW_NAME_MAX, "%s", m.zone);
	snprintf(group, GW_NAME_MAX, "%s", m.group);
	return MAILMODE_OK;
}

/* The zone of the domain: this handle's, or the context's (provider.h). */
static int find_zone(struct gw_provider *provider)
{
	struct az *self = provider->impl;

	if (self->have_zone)
		return MAILMODE_OK;
	return gw_zone_cached(provider, provider->op->domain, look_zone_up,
	                      use_zone);
}

/* .../dnsZones/{zone}/MX/{relative name}?api-version=...: "@" at the apex. */
static void rrset_path(const struct az *self, const char *name, char *path,
                       size_t len)
{
	size_t nl = strlen(name), zl = strlen(self->zone);

	if (nl == zl)
		snprintf(path, len, "%s/MX/@?api-version=" API_VERSION,
		         self->zone_path);
	else
		snprintf(path, len, "%s/MX/%.*s?api-version=" API_VERSION,
		         self->zone_path, (int)(nl - zl - 1), name);
}

/* ---- reading -------------------------------------------------------------------- */

static int take_rrset(const struct gw_op *op, const cJSON *rrset,
                      struct gw_rrset_version *version)
{
	const cJSON *props = cJSON_GetObjectItemCaseSensitive(rrset, "properties");
	const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(props, "TTL");
	const cJSON *etag = cJSON_GetObjectItemCaseSensitive(rrset, "etag");
	const cJSON *mx, *pref, *exchange;

	if (!cJSON_IsString(etag) || !cJSON_IsNumber(ttl) ||
	    strlen(etag->valuestring) >= sizeof(version->token))
		goto bad;
	snprintf(version->token, sizeof(version->token), "%s", etag->valuestring);
	cJSON_ArrayForEach(mx, cJSON_GetObjectItemCaseSensitive(props, "MXRecords")) {
		pref = cJSON_GetObjectItemCaseSensitive(mx, "preference");
		exchange = cJSON_GetObjectItemCaseSensitive(mx, "exchange");
		if (!cJSON_IsNumber(pref) || !cJSON_IsString(exchange) ||
		    pref->valuedouble < 0 || pref->valuedouble > 65535 ||
		    ttl->valuedouble < 0 || ttl->valuedouble > 2147483647 ||
		    gw_mx_set_add(&version->rrset, (uint16_t)pref->valuedouble,
		                  (uint32_t)ttl->valuedouble,
		                  exchange->valuestring) != MAILMODE_OK)
			goto bad;
	}
	return MAILMODE_OK;
bad:
	op->ctx->host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
	                        "Azure DNS returned an MX record set of %s that "
	                        "mailmode cannot use", op->domain);
	return MAILMODE_ERR_FAILED;
}

static int az_get_rrset(struct gw_provider *provider, const char *name,
                        struct gw_rrset_version *version)
{
	struct az *self = provider->impl;
	struct gw_https_answer answer;
	char path[GW_URL_MAX * 3], what[GW_NAME_MAX + 64];
	bool absent = false;
	int rc;

	memset(version, 0, sizeof(*version));
	rc = find_zone(provider);
	if (rc != MAILMODE_OK)
		return rc;
	rrset_path(self, name, path, sizeof(path));
	snprintf(what, sizeof(what), "the read of the MX record set of %s", name);
	rc = api_get(provider, path, what, &absent, &answer);
	if (rc == MAILMODE_OK && !absent)
		rc = take_rrset(provider->op, answer.json, version);
	gw_https_answer_free(&answer);
	return rc;
}

/* ---- the change -------------------------------------------------------------------- */

/* {"properties":{"TTL":T,"MXRecords":[{"preference":P,"exchange":H}]}}
 * of a set with one TTL (gw_need_one_ttl); NULL when out of memory. */
static char *rrset_body(const struct gw_mx_set *set)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *props = cJSON_AddObjectToObject(root, "properties");
	cJSON *records = props ? cJSON_AddArrayToObject(props, "MXRecords") : NULL;
	char host[GW_NAME_MAX], *text = NULL;
	uint32_t ttl;
	size_t i;

	gw_mx_set_one_ttl(set, &ttl);
	if (!records || !cJSON_AddNumberToObject(props, "TTL", ttl))
		goto out;
	for (i = 0; i < set->count; i++) {
		cJSON *mx = cJSON_CreateObject();

		/* Azure's own examples name the exchange without the final dot. */
		snprintf(host, sizeof(host), "%.*s", (int)strlen(set->mx[i].host) - 1,
		         set->mx[i].host);
		if (!mx || !cJSON_AddItemToArray(records, mx) ||
		    !cJSON_AddNumberToObject(mx, "preference", set->mx[i].pref) ||
		    !cJSON_AddStringToObject(mx, "exchange", host))
			goto out;
	}
	text = cJSON_PrintUnformatted(root);
out:
	cJSON_Delete(root);
	return text;
}

/* A refused change.  412: the etag is no longer the one read.  That an
 * earlier copy of this PUT landed (its answer lost, the request sent
 * again) is the seam's to settle (gw_swap), as for every provider. */
static enum gw_replace_outcome change_refused(struct gw_provider *provider,
                                              const char *name,
                                              const struct gw_https_answer *answer)
{
	const char *code, *message;
	char detail[400];

	error_of(answer, &code, &message);
	snprintf(detail, sizeof(detail), "HTTP %ld %s: %.300s", answer->status,
	         code, message);
	return gw_change_refused(provider, name, "Azure DNS", answer,
	                         answer->status == 412, detail,
	                         "the change of the MX record set", refused);
}

static enum gw_replace_outcome az_replace_rrset(
	struct gw_provider *provider, const char *name,
	const struct gw_rrset_version *expected,
	const struct gw_mx_set *replacement)
{
	struct az *self = provider->impl;
	const struct gw_op *op = provider->op;
	struct gw_https_answer answer = { 0 };
	enum gw_replace_outcome outcome = GW_REPLACE_FAILED;
	char path[GW_URL_MAX * 3], condition[sizeof(expected->token) + 16];
	char *body = NULL;
	int rc;

	if (!gw_need_one_ttl(op, "Azure DNS", name, replacement))
		goto out;
	if (replacement->count && !(body = rrset_body(replacement)))
		goto out;
	if (find_zone(provider) != MAILMODE_OK)
		goto out;
	rrset_path(self, name, path, sizeof(path));
	if (expected->token[0])
		snprintf(condition, sizeof(condition), "If-Match: %s", expected->token);
	else
		snprintf(condition, sizeof(condition), "If-None-Match: *");
	if (!replacement->count && !expected->token[0]) {
		outcome = GW_REPLACE_OK;    /* nothing there, nothing wanted */
		goto out;
	}
	rc = api_call(provider, replacement->count ? "PUT" : "DELETE", path,
	              condition, body, "the change of the MX record set", &answer);
	if (rc == MAILMODE_ERR_UNKNOWN) {
		gw_diag_outcome_unknown(op);
		outcome = GW_REPLACE_UNKNOWN;
		goto out;
	}
	if (rc != MAILMODE_OK)
		goto out;
	if (answer.status == 200 || answer.status == 201 || answer.status == 204)
		outcome = GW_REPLACE_OK;
	else
		outcome = change_refused(provider, name, &answer);
out:
	gw_https_answer_free(&answer);
	cJSON_free(body);
	return outcome;
}

/* ---- probe and plan ------------------------------------------------------------ */

/* An action pattern of a role (Microsoft.Network/dnsZones/ and a star) covers
 * action; '*' matches any run of characters, case does not matter. */
static bool action_matches(const char *pattern, const char *action)
{
	const char *star = strchr(pattern, '*');
	size_t head;

	if (!star)
		return strcasecmp(pattern, action) == 0;
	head = (size_t)(star - pattern);
	if (strncasecmp(pattern, action, head) != 0)
		return false;
	for (action += head; ; action++) {
		if (action_matches(star + 1, action))
			return true;
		if (!*action)
			return false;
	}
}

static bool listed(const cJSON *patterns, const char *action)
{
	const cJSON *p;

	cJSON_ArrayForEach(p, patterns)
		if (cJSON_IsString(p) && action_matches(p->valuestring, action))
			return true;
	return false;
}

/* Microsoft.Authorization/permissions of the zone: the actions the app
 * has there (every role assignment at or above it). */
static enum gw_replace_outcome may_write_mx(struct gw_provider *provider,
                                            bool *granted)
{
	struct az *self = provider->impl;
	struct gw_https_answer answer;
	char path[GW_URL_MAX * 3];
	const cJSON *perm;
	int rc;

	*granted = false;
	snprintf(path, sizeof(path), "%s/providers/Microsoft.Authorization/"
	         "permissions?api-version=" AUTHZ_API_VERSION, self->zone_path);
	rc = api_get(provider, path, "the read of the app's permissions on the zone",
	             NULL, &answer);
	if (rc != MAILMODE_OK)
		return rc == MAILMODE_ERR_DENIED ? GW_REPLACE_DENIED : GW_REPLACE_FAILED;
	cJSON_ArrayForEach(perm, cJSON_GetObjectItemCaseSensitive(answer.json, "value"))
		if (listed(cJSON_GetObjectItemCaseSensitive(perm, "actions"), MX_WRITE) &&
		    !listed(cJSON_GetObjectItemCaseSensitive(perm, "notActions"), MX_WRITE))
			*granted = true;
	gw_https_answer_free(&answer);
	return GW_REPLACE_OK;
}

static enum gw_replace_outcome az_probe_update(struct gw_provider *provider,
                                               const char *name)
{
	struct az *self = provider->impl;
	const struct gw_op *op = provider->op;
	struct gw_rrset_version live;
	enum gw_replace_outcome outcome;
	bool granted;
	int rc;

	rc = az_get_rrset(provider, name, &live);
	if (rc != MAILMODE_OK)
		return rc == MAILMODE_ERR_DENIED ? GW_REPLACE_DENIED : GW_REPLACE_FAILED;
	outcome = may_write_mx(provider, &granted);
	if (outcome != GW_REPLACE_OK)
		return outcome;
	if (!granted) {
		op->ctx->host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
		                        "the app %s of tenant %s may not write MX "
		                        "record sets (%s) in Azure DNS zone %s of "
		                        "resource group %s: %s", self->app.client_id,
		                        self->app.tenant, MX_WRITE, self->zone,
		                        self->group, ROLE);
		return GW_REPLACE_DENIED;
	}
	snprintf(provider->proven, sizeof(provider->proven),
	         "the app signs in, reads the zone's MX record set, and its "
	         "permissions on the zone include %s; the change itself is a "
	         "compare-and-swap (If-Match on the etag), so nothing else is "
	         "left unproven", MX_WRITE);
	return GW_REPLACE_OK;
}

static int az_describe_replace(struct gw_provider *provider, const char *name,
                               const struct gw_rrset_version *expected,
                               const struct gw_mx_set *replacement, char *buf,
                               size_t len)
{
	struct az *self = provider->impl;
	char path[GW_URL_MAX * 3];

	rrset_path(self, name, path, sizeof(path));
	gw_append_line(buf, len, "Azure DNS %s %s (zone %s, resource group %s, "
	               "subscription %s), as app %s of tenant %s:",
	               replacement->count ? "PUT" : "DELETE", path, self->zone,
	               self->group, provider->op->cfg->azure.subscription,
	               self->app.client_id, self->app.tenant);
	if (expected->token[0])
		gw_append_line(buf, len, "  precondition: If-Match: %s (the etag "
		               "read; Azure refuses with 412 if the set changed)",
		               expected->token);
	else
		gw_append_line(buf, len, "  precondition: If-None-Match: * (%s. has "
		               "no MX record set; Azure refuses with 412 if one "
		               "appears)", name);
	gw_append_rrset(buf, len, "replaces", name, &expected->rrset);
	gw_append_rrset(buf, len, "with", name, replacement);
	return MAILMODE_OK;
}

static void az_close(struct gw_provider *provider)
{
	struct az *self;

	if (!provider)
		return;
	self = provider->impl;
	ms_token_forget(&self->token);
	provider->op->ctx->host->free(self->certificate_file);
	gw_https_close(&self->api);
	gw_provider_free(provider);
}

static const struct gw_provider_ops az_ops = {
	.name = "azure",
	.get_rrset = az_get_rrset,
	.replace_rrset = az_replace_rrset,
	.probe_update = az_probe_update,
	.describe_replace = az_describe_replace,
	.close = az_close,
};

int gw_azure_open(struct gw_op *op, struct gw_provider **out)
{
	const struct mailmode_host *host = op->ctx->host;
	struct gw_provider *provider;
	struct az *self;
	int rc;

	*out = NULL;
	rc = gw_provider_new(op, &az_ops, sizeof(*self), "Azure DNS", &provider);
	if (rc != MAILMODE_OK)
		return rc;
	self = provider->impl;
	rc = gw_https_open(op, &self->api);
	if (rc == MAILMODE_OK && op->cfg->azure.app.certificate_file[0] &&
	    !(self->certificate_file = host->config_path(host->handle,
	                                                 op->cfg->azure.app.certificate_file)))
		rc = MAILMODE_ERR_NOMEM;
	if (rc != MAILMODE_OK) {
		az_close(provider);
		return rc;
	}
	app_init(self, op->cfg);
	snprintf(self->token_key, sizeof(self->token_key), "azure token\n%s\n"
	         "%s\n%s\n%s\n%s", op->cfg->dns_section, self->app.login_url,
	         self->app.tenant, self->app.client_id, self->app.scope);
	*out = provider;
	return MAILMODE_OK;
}
