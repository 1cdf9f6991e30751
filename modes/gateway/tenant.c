/*
 * Gateway mode, the tenant side (doc/gateway-tenant.md): the domain's
 * gateway inbound connector in the Microsoft 365 tenant the profile names
 * (gateway_tenant = T), through the Exchange Online client the mailflow
 * plugin uses too (lib/ms).
 *
 *   gw_tenant_setup   before the MX swap: the connector made, or put right,
 *                     with Enhanced Filtering; restricted to the service's
 *                     certificate (the lock-down) only once the settle has
 *                     passed (MAILMODE_REQ_SETTLED) or it was before
 *   gw_tenant_check   verify and observe: the connector as it is
 *   gw_tenant_lift    teardown, before the MX goes back: the lock-down
 *                     lifted, and read back lifted
 *   gw_tenant_remove  teardown, once the MX is back
 *   gw_tenant_plan    the cmdlets setup or teardown would run (plan actions)
 *
 * Every write is checkpointed first (the receipt's "tenant" plus "write":
 * {"object": "inbound connector NAME", ...}); a write whose answer was
 * lost is MAILMODE_ERR_UNKNOWN (lib/ms), and the next call reads the
 * connector before anything else.
 */
#include "tenant.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MANAGED_MARKER GW_MANAGED_MARKER
#define INBOUND "inbound connector"

void gw_tenant_close(struct gw_tenant *t)
{
	if (t->exo.warnings.data)
		t->host->log(t->host->handle, MAILMODE_LOG_WARNING, "%s: tenant %s: %s",
		             t->call->op.domain, t->app.tenant, t->exo.warnings.data);
	ms_buf_free(&t->exo.warnings);
	if (t->session.http)
		ms_session_free(t->host, &t->session);
	t->host->free(t->certificate_file);
	t->host->free(t->ca_file);
}

/* Paths relative to the configuration file's directory made absolute. */
static int abs_path(const struct mailmode_host *host, const char *path, char **out)
{
	*out = NULL;
	if (!path[0])
		return MAILMODE_OK;
	*out = host->config_path(host->handle, path);
	return *out ? MAILMODE_OK : MAILMODE_ERR_NOMEM;
}

/* The sign-in of [tenant T] (its paths made absolute into t), in the
 * cloud it names: the app's own credentials, or (auth = device) the
 * refresh token `mailmode tenant login T` keeps in the host's token cache
 * under T, as mailflow mode signs in (lib/ms). */
static int tenant_app(const struct mailmode_host *host, const struct gw_tenant_config *tc,
                      struct gw_tenant *t)
{
	const struct gw_entra *e = &tc->app;
	int rc = MAILMODE_OK;

	if (!e->device)
		rc = abs_path(host, e->certificate_file, &t->certificate_file);
	if (rc == MAILMODE_OK)
		rc = abs_path(host, tc->ca_file, &t->ca_file);
	t->app = (struct ms_app){
		.section = tc->section,
		.tenant = e->tenant,
		.client_id = e->client_id,
		.client_secret_file = e->device || e->certificate ? NULL : e->credentials_file,
		.private_key_file = !e->device && e->certificate ? e->credentials_file : NULL,
		.certificate_file = t->certificate_file,
		.login_url = e->login_url,
		.scope = tc->scope,
		.ca_file = t->ca_file,
		.assertion_alg = e->rs256 ? MS_ASSERTION_RS256 : MS_ASSERTION_PS256,
		/* The cache entry is the section's NAME ("tenant NAME"). */
		.token_cache = e->device ? tc->section + strlen("tenant ") : NULL,
	};
	return rc;
}

int gw_tenant_open(struct gw_call *call, struct gw_tenant *t)
{
	const struct mailmode_host *host = call->op.ctx->host;
	const struct gw_tenant_config *tc = &call->cfg.tenant;
	int rc;

	memset(t, 0, sizeof(*t));
	t->call = call;
	t->host = host;
	rc = tenant_app(host, tc, t);
	if (rc == MAILMODE_OK)
		rc = ms_session_init(host, &t->session);
	if (rc != MAILMODE_OK) {
		gw_tenant_close(t);
		return rc;
	}
	t->exo.host = host;
	t->exo.app = &t->app;
	t->exo.api_url = tc->api_url;
	t->exo.session = &t->session;
	return MAILMODE_OK;
}

int gw_tenant_check_credentials(const struct gw_ctx *ctx, const struct gw_config *cfg,
                                struct mailmode_diag *diag)
{
	struct gw_tenant t;
	int rc;

	memset(&t, 0, sizeof(t));
	t.host = ctx->host;
	rc = tenant_app(ctx->host, &cfg->tenant, &t);
	if (rc == MAILMODE_OK)
		rc = ms_credentials_check(ctx->host, &t.app, diag);
	ctx->host->free(t.certificate_file);
	ctx->host->free(t.ca_file);
	return rc;
}

int gw_tenant_get(struct gw_tenant *t, const char *cmdlet, const char *name, cJSON **obj)
{
	cJSON *params = cJSON_CreateObject(), *value = NULL;
	struct ms_exo_error err;
	int rc;

	*obj = NULL;
	if (!params || !cJSON_AddStringToObject(params, "Identity", name)) {
		cJSON_Delete(params);
		return MAILMODE_ERR_NOMEM;
	}
	memset(&err, 0, sizeof(err));
	rc = ms_exo_invoke(&t->exo, cmdlet, params, &value, &err, t->call->op.diag);
	cJSON_Delete(params);
	if (rc != MAILMODE_OK && ms_exo_error_not_found(&err)) {
		t->call->op.diag->severity = MAILMODE_SEV_NONE;
		return MAILMODE_OK;
	}
	if (rc == MAILMODE_OK && cJSON_GetArraySize(value) > 0)
		*obj = cJSON_DetachItemFromArray(value, 0);
	cJSON_Delete(value);
	return rc;
}

/* Get-InboundConnector: *conn is the domain's gateway connector, NULL when
 * the tenant has none (free with cJSON_Delete). */
static int read_connector(struct gw_tenant *t, cJSON **conn)
{
	return gw_tenant_get(t, "Get-InboundConnector", t->call->cfg.tenant.connector, conn);
}

bool gw_tenant_add_list(cJSON *obj, const char *key, const char *const *items, size_t n)
{
	cJSON *list = cJSON_AddArrayToObject(obj, key);
	size_t i;

	for (i = 0; list && i < n; i++)
		if (!cJSON_AddItemToArray(list, cJSON_CreateString(items[i])))
			return false;
	return list != NULL;
}

/* The connector's fields as New-/Set-InboundConnector parameters. */
static cJSON *connector_params(const struct gw_call *call, bool locked, bool create)
{
	const struct gw_tenant_config *tc = &call->cfg.tenant;
	const char *star = "*", *domain = call->op.domain;
	const char *ips[GW_SERVICE_IPS_MAX];
	cJSON *p = cJSON_CreateObject();
	char comment[GW_NAME_MAX * 2];
	size_t i;

	for (i = 0; i < tc->ip_count; i++)
		ips[i] = tc->ips[i];
	snprintf(comment, sizeof(comment), "%s: gateway mode of %s: mail from the service's gateway",
	         MANAGED_MARKER, domain);
	if (!p || !cJSON_AddStringToObject(p, create ? "Name" : "Identity", tc->connector) ||
	    !cJSON_AddStringToObject(p, "ConnectorType", "Partner") ||
	    !gw_tenant_add_list(p, "SenderDomains", &star, 1) ||
	    !cJSON_AddBoolToObject(p, "RequireTls", 1) ||
	    !cJSON_AddStringToObject(p, "TlsSenderCertificateName", tc->tls_cert_name) ||
	    !gw_tenant_add_list(p, "AssociatedAcceptedDomains", &domain, 1) ||
	    !gw_tenant_add_list(p, "EFSkipIPs", ips, tc->enhanced_filtering ? tc->ip_count : 0) ||
	    !cJSON_AddBoolToObject(p, "RestrictDomainsToCertificate", locked) ||
	    !cJSON_AddBoolToObject(p, "Enabled", 1) ||
	    !cJSON_AddStringToObject(p, "Comment", comment)) {
		cJSON_Delete(p);
		return NULL;
	}
	return p;
}

/* The list field holds exactly the wanted values (any order, any case;
 * SenderDomains come back as "smtp:*;1"). */
bool gw_tenant_list_is(const cJSON *conn, const char *key, const char *const *want, size_t n)
{
	size_t count = 0, i, j;
	const char **have = ms_field_strs(conn, key, &count);
	bool same = count == n;

	for (i = 0; same && i < count; i++) {
		const char *v = have[i];
		char bare[GW_NAME_MAX];

		if (strncmp(v, "smtp:", 5) == 0) {
			snprintf(bare, sizeof(bare), "%s", v + 5);
			bare[strcspn(bare, ";")] = '\0';
			v = bare;
		}
		for (j = 0; j < n && !ms_strcaseeq(v, want[j]); j++)
			;
		same = j < n;
	}
	free(have);
	return same;
}

/* The first field of conn that is not as wanted, named in why; false when
 * every field is. */
static bool connector_differs(const struct gw_call *call, const cJSON *conn, bool locked,
                              char *why, size_t len)
{
	const struct gw_tenant_config *tc = &call->cfg.tenant;
	const char *star = "*", *domain = call->op.domain;
	const char *ips[GW_SERVICE_IPS_MAX];
	size_t i;

	for (i = 0; i < tc->ip_count; i++)
		ips[i] = tc->ips[i];
	if (!ms_strcaseeq(ms_field_str(conn, "ConnectorType"), "Partner"))
		snprintf(why, len, "ConnectorType is not Partner");
	else if (!gw_tenant_list_is(conn, "SenderDomains", &star, 1))
		snprintf(why, len, "SenderDomains is not *");
	else if (ms_field_bool(conn, "RequireTls") != 1)
		snprintf(why, len, "RequireTls is not $true");
	else if (!ms_strcaseeq(ms_field_str(conn, "TlsSenderCertificateName"), tc->tls_cert_name))
		snprintf(why, len, "TlsSenderCertificateName is not %s", tc->tls_cert_name);
	else if (!gw_tenant_list_is(conn, "AssociatedAcceptedDomains", &domain, 1))
		snprintf(why, len, "AssociatedAcceptedDomains is not %s", domain);
	else if (!gw_tenant_list_is(conn, "EFSkipIPs", ips, tc->enhanced_filtering ? tc->ip_count : 0))
		snprintf(why, len, "EFSkipIPs is not %s", tc->enhanced_filtering ?
		         "the service's addresses (service_ips)" : "empty");
	else if (ms_field_bool(conn, "RestrictDomainsToCertificate") != (locked ? 1 : 0))
		snprintf(why, len, "RestrictDomainsToCertificate is not %s%s", locked ? "$true" : "$false",
		         locked ? " (the lock-down)" : "");
	else if (ms_field_bool(conn, "Enabled") != 1)
		snprintf(why, len, "it is disabled");
	else
		return false;
	return true;
}

bool gw_tenant_ours(const cJSON *obj, const char *field)
{
	const char *comment = ms_field_str(obj, field);

	return comment && strstr(comment, MANAGED_MARKER);
}

static bool ours(const cJSON *conn)
{
	return gw_tenant_ours(conn, "Comment");
}

int gw_tenant_not_ours(struct gw_call *call, const char *object)
{
	const struct mailmode_host *host = call->op.ctx->host;

	host->diag_set(call->op.diag, MAILMODE_SEV_ERROR, 0,
	               "%s of tenant [%s] is not mailmode's (no '%s' in its comment): "
	               "refusing to change it", object, call->cfg.tenant.section, MANAGED_MARKER);
	return MAILMODE_ERR_CONFLICT;
}

static int not_ours(struct gw_call *call)
{
	char object[GW_NAME_MAX + 24];

	snprintf(object, sizeof(object), "inbound connector '%s'", call->cfg.tenant.connector);
	return gw_tenant_not_ours(call, object);
}

/* Signs in and reads the connector (*conn NULL: none).  mine: one that is
 * not mailmode's is refused (unless forced).  On success the caller
 * closes t; on failure it is closed. */
static int open_read(struct gw_call *call, struct gw_tenant *t, cJSON **conn, bool mine)
{
	int rc = gw_tenant_open(call, t);

	*conn = NULL;
	if (rc != MAILMODE_OK)
		return rc;
	rc = read_connector(t, conn);
	if (rc == MAILMODE_OK && mine && *conn && !ours(*conn) &&
	    !(call->req->flags & MAILMODE_REQ_FORCE))
		rc = not_ours(call);
	if (rc != MAILMODE_OK) {
		cJSON_Delete(*conn);
		*conn = NULL;
		gw_tenant_close(t);
	}
	return rc;
}

int gw_tenant_write(struct gw_tenant *t, struct gw_receipt *intent, const char *object,
                    const char *doing, const char *cmdlet, const cJSON *params,
                    struct ms_exo_error *err)
{
	struct gw_call *call = t->call;
	const struct mailmode_host *host = t->host;
	cJSON *value = NULL;
	char *text;
	int rc = MAILMODE_OK;

	memset(err, 0, sizeof(*err));
	if (gw_host_keeps_writes(call)) {
		intent->write_doing = doing;
		intent->write_object = object;
		text = gw_receipt_render(call->op.ctx, call->op.domain, intent);
		intent->write_doing = NULL;
		intent->write_object = NULL;
		if (!text)
			return MAILMODE_ERR_NOMEM;
		rc = host->checkpoint(host->handle, call->req, text, call->op.diag);
		host->free(text);
		if (rc != MAILMODE_OK) {
			host->diag_append(call->op.diag, "%s was not sent: its checkpoint could not be stored",
			                  cmdlet);
			return rc;
		}
	}
	rc = ms_exo_invoke(&t->exo, cmdlet, params, &value, err, call->op.diag);
	cJSON_Delete(value);
	if (rc == MAILMODE_OK)
		host->log(host->handle, MAILMODE_LOG_INFO, "%s: %s %s (%s)", call->op.domain, doing,
		          object, cmdlet);
	return rc;
}

/* A write of the inbound connector. */
static int write_connector(struct gw_tenant *t, struct gw_receipt *intent, const char *doing,
                           const char *cmdlet, const cJSON *params, struct ms_exo_error *err)
{
	char object[GW_NAME_MAX + 24];

	snprintf(object, sizeof(object), "inbound connector %s", t->call->cfg.tenant.connector);
	return gw_tenant_write(t, intent, object, doing, cmdlet, params, err);
}

/* The inbound connector made or put right (conn: as read; consumed). */
static int setup_inbound(struct gw_tenant *t, struct gw_receipt *receipt, bool locked,
                         cJSON *conn)
{
	struct gw_call *call = t->call;
	struct ms_exo_error err;
	cJSON *params = NULL;
	char why[256];
	int pass, rc = MAILMODE_OK;

	for (pass = 0; pass < 2; pass++) {
		if (conn && !connector_differs(call, conn, locked, why, sizeof(why)))
			break;
		cJSON_Delete(params);
		params = connector_params(call, locked, !conn);
		if (!params) {
			rc = MAILMODE_ERR_NOMEM;
			break;
		}
		if (conn) {
			rc = write_connector(t, receipt, locked && strstr(why, "Restrict") ?
			                     "locking down" : "setting", "Set-InboundConnector", params,
			                     &err);
			break;
		}
		rc = write_connector(t, receipt, "creating", "New-InboundConnector", params, &err);
		if (rc == MAILMODE_OK || !ms_exo_error_exists(&err))
			break;
		/* "Already exists": a New- of ours whose answer was lost (and
		 * that the client sent again) landed.  Read it and put it
		 * right instead. */
		call->op.diag->severity = MAILMODE_SEV_NONE;
		rc = read_connector(t, &conn);
		if (rc == MAILMODE_OK && (!conn || !ours(conn)))
			rc = conn ? not_ours(call) : MAILMODE_ERR_UNKNOWN;
		if (rc != MAILMODE_OK)
			break;
	}
	cJSON_Delete(params);
	cJSON_Delete(conn);
	return rc;
}

int gw_tenant_setup(struct gw_call *call, struct gw_receipt *receipt, bool locked)
{
	struct gw_tenant t;
	cJSON *conn = NULL;
	int rc;

	rc = open_read(call, &t, &conn, true);
	if (rc != MAILMODE_OK)
		return rc;
	/* The receipt names the connector before it is made: a teardown of
	 * an attempt that crashed must look for it. */
	receipt->has_tenant = true;
	snprintf(receipt->connector, sizeof(receipt->connector), "%s", call->cfg.tenant.connector);
	receipt->locked = locked;
	rc = setup_inbound(&t, receipt, locked, conn);
	/* Outgoing mail after the inbound connector: both before the MX. */
	if (rc == MAILMODE_OK)
		rc = gw_outbound_setup(&t, receipt);
	gw_tenant_close(&t);
	return rc;
}

int gw_tenant_check(struct gw_call *call, bool locked, bool *present, char *why, size_t len)
{
	struct gw_tenant t;
	cJSON *conn = NULL;
	int rc;

	*present = false;
	why[0] = '\0';
	rc = gw_tenant_open(call, &t);
	if (rc != MAILMODE_OK)
		return rc;
	rc = read_connector(&t, &conn);
	if (rc == MAILMODE_OK && !conn)
		snprintf(why, len, "inbound connector '%s' is not in tenant [%s]%s",
		         call->cfg.tenant.connector, call->cfg.tenant.section,
		         call->has_receipt ? " (or not listed yet)" : "");
	else if (rc == MAILMODE_OK) {
		*present = true;
		connector_differs(call, conn, locked, why, len);
	}
	/* Outgoing mail: its connector and rule are part of the mode. */
	if (rc == MAILMODE_OK && call->cfg.tenant.outbound) {
		bool out_present;
		char out_why[256];

		rc = gw_outbound_check(&t, &out_present, out_why, sizeof(out_why));
		if (rc == MAILMODE_OK && !why[0] && out_why[0])
			snprintf(why, len, "%s", out_why);
		/* A leftover of them is gateway mode partly live too. */
		*present = *present || out_present;
	}
	cJSON_Delete(conn);
	gw_tenant_close(&t);
	return rc;
}

/* {"Identity": the connector, key: value}. */
static cJSON *identity_params(const struct gw_call *call, const char *key, bool value)
{
	cJSON *p = cJSON_CreateObject();

	if (!p || !cJSON_AddStringToObject(p, "Identity", call->cfg.tenant.connector) ||
	    !cJSON_AddBoolToObject(p, key, value)) {
		cJSON_Delete(p);
		return NULL;
	}
	return p;
}

int gw_tenant_lift(struct gw_call *call, struct gw_receipt *intent)
{
	const struct mailmode_host *host = call->op.ctx->host;
	struct ms_exo_error err;
	struct gw_tenant t;
	cJSON *conn = NULL, *params = NULL;
	int rc;

	rc = open_read(call, &t, &conn, true);
	if (rc != MAILMODE_OK)
		return rc;
	if (!conn || ms_field_bool(conn, "RestrictDomainsToCertificate") != 1)
		goto out;
	params = identity_params(call, "RestrictDomainsToCertificate", false);
	if (!params) {
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	intent->locked = false;
	rc = write_connector(&t, intent, "lifting the lock-down of", "Set-InboundConnector", params,
	                     &err);
	if (rc != MAILMODE_OK)
		goto out;
	cJSON_Delete(conn);
	rc = read_connector(&t, &conn);
	if (rc == MAILMODE_OK && conn && ms_field_bool(conn, "RestrictDomainsToCertificate") == 1) {
		/* Not shown lifted yet: the MX must not point back at the front
		 * door before it is (the engine retries the teardown). */
		host->diag_set(call->op.diag, MAILMODE_SEV_ERROR, 1,
		               "the lock-down of inbound connector '%s' is lifted but not shown lifted yet: "
		               "the MX of %s stays at the gateway until it is",
		               call->cfg.tenant.connector, call->op.domain);
		rc = MAILMODE_ERR_NOT_READY;
	}
out:
	cJSON_Delete(params);
	cJSON_Delete(conn);
	gw_tenant_close(&t);
	return rc;
}

int gw_tenant_remove(struct gw_call *call, struct gw_receipt *intent)
{
	struct ms_exo_error err;
	struct gw_tenant t;
	cJSON *conn = NULL, *params = NULL;
	int rc;

	rc = open_read(call, &t, &conn, true);
	if (rc != MAILMODE_OK)
		return rc;
	/* Outgoing mail's objects, the rule first (outbound.c). */
	if (call->cfg.tenant.outbound || intent->outbound)
		rc = gw_outbound_remove(&t, intent);
	if (rc != MAILMODE_OK || !conn)
		goto out;
	params = identity_params(call, "Confirm", false);
	if (!params) {
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	rc = write_connector(&t, intent, "removing", "Remove-InboundConnector", params, &err);
	/* Not found: a Remove- whose answer was lost (sent again) landed. */
	if (rc != MAILMODE_OK && ms_exo_error_not_found(&err)) {
		call->op.diag->severity = MAILMODE_SEV_NONE;
		rc = MAILMODE_OK;
	}
out:
	cJSON_Delete(params);
	cJSON_Delete(conn);
	gw_tenant_close(&t);
	return rc;
}

int gw_tenant_preflight(struct gw_call *call)
{
	struct gw_tenant t;
	cJSON *conn = NULL;
	int rc;

	rc = open_read(call, &t, &conn, true);
	if (rc != MAILMODE_OK)
		return rc;
	if (call->cfg.tenant.outbound)
		rc = gw_outbound_preflight(&t);
	cJSON_Delete(conn);
	gw_tenant_close(&t);
	return rc;
}

int gw_tenant_plan_cmdlet(cJSON *actions, const char *change, const char *object,
                          const char *name, const char *cmdlet, cJSON *params,
                          const char *fmt, ...)
{
	char text[1024];
	va_list ap;
	cJSON *a;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	a = gw_plan_action(actions, change, object, name, text);
	if (a && !cmdlet)
		return MAILMODE_OK;
	if (a && params && cJSON_AddStringToObject(a, "cmdlet", cmdlet) &&
	    cJSON_AddItemToObject(a, "parameters", params))
		return MAILMODE_OK;
	cJSON_Delete(params);
	return MAILMODE_ERR_NOMEM;
}

static int plan_setup(struct gw_call *call, const cJSON *conn, bool locked, cJSON *actions)
{
	const struct gw_tenant_config *tc = &call->cfg.tenant;
	char why[256] = "";
	int rc;

	if (!conn)
		rc = gw_tenant_plan_cmdlet(actions, "create", INBOUND, tc->connector, "New-InboundConnector",
		                           connector_params(call, locked, true),
		                           "before the MX: New-InboundConnector -Name '%s' -ConnectorType Partner -SenderDomains * -RequireTls $true -TlsSenderCertificateName %s -AssociatedAcceptedDomains %s%s%s (tenant [%s])",
		                           tc->connector, tc->tls_cert_name, call->op.domain,
		                           tc->enhanced_filtering ? " -EFSkipIPs " : "",
		                           tc->enhanced_filtering ? "<service_ips>" : "", tc->section);
	else if (connector_differs(call, conn, locked, why, sizeof(why)))
		rc = gw_tenant_plan_cmdlet(actions, "update", INBOUND, tc->connector, "Set-InboundConnector",
		                           connector_params(call, locked, false),
		                           "before the MX: Set-InboundConnector -Identity '%s' (%s)", tc->connector,
		                           why);
	else
		rc = gw_tenant_plan_cmdlet(actions, "reuse", INBOUND, tc->connector, NULL, NULL,
		                           "no change: inbound connector '%s' as wanted", tc->connector);
	if (rc == MAILMODE_OK && tc->lockdown && !locked)
		rc = gw_tenant_plan_cmdlet(actions, "update", INBOUND, tc->connector, "Set-InboundConnector",
		                           connector_params(call, true, false),
		                           "after the cache wait (the replaced MX's TTL): Set-InboundConnector -Identity '%s' -RestrictDomainsToCertificate $true (the lock-down)",
		                           tc->connector);
	return rc;
}

static int plan_teardown(struct gw_call *call, const cJSON *conn, cJSON *actions)
{
	const char *name = call->cfg.tenant.connector;
	int rc = MAILMODE_OK;

	if (!conn)
		return gw_tenant_plan_cmdlet(actions, "reuse", INBOUND, name, NULL, NULL,
		                             "no change: inbound connector '%s' is not there", name);
	if (ms_field_bool(conn, "RestrictDomainsToCertificate") == 1)
		rc = gw_tenant_plan_cmdlet(actions, "update", INBOUND, name, "Set-InboundConnector",
		                           identity_params(call, "RestrictDomainsToCertificate", false),
		                           "before the MX: Set-InboundConnector -Identity '%s' -RestrictDomainsToCertificate $false (lifting the lock-down)",
		                           name);
	if (rc == MAILMODE_OK)
		rc = gw_tenant_plan_cmdlet(actions, "remove", INBOUND, name, "Remove-InboundConnector",
		                           identity_params(call, "Confirm", false),
		                           "after the MX: Remove-InboundConnector -Identity '%s' -Confirm:$false",
		                           name);
	return rc;
}

int gw_tenant_plan(struct gw_call *call, enum mailmode_plan_op which, bool locked,
                   cJSON *actions)
{
	struct gw_tenant t;
	cJSON *conn = NULL;
	int rc;

	rc = gw_tenant_open(call, &t);
	if (rc != MAILMODE_OK)
		return rc;
	rc = read_connector(&t, &conn);
	if (rc == MAILMODE_OK)
		rc = which == MAILMODE_PLAN_SETUP ? plan_setup(call, conn, locked, actions)
		                                  : plan_teardown(call, conn, actions);
	if (rc == MAILMODE_OK)
		rc = gw_outbound_plan(&t, which, actions);
	gw_tenant_close(&t);
	cJSON_Delete(conn);
	return rc;
}
