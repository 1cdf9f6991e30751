/*
 * Gateway mode, the tenant side, outgoing mail (outbound = yes;
 * doc/gateway-tenant.md, "Outgoing mail"): the domain's outgoing mail
 * leaves Microsoft 365 through the service's outbound smart hosts, never
 * straight to the recipients' MX.  Two objects, both named
 * "<name_prefix> outbound of D via <service>", both gateway mode's own:
 *
 *   outbound connector  Partner, SmartHosts = outbound_smart_hosts,
 *                       UseMXRecord $false, TlsSettings DomainValidation +
 *                       TlsDomain, IsTransportRuleScoped $true: it carries
 *                       only what the rule sends it
 *   transport rule      FromScope InOrganization, SentToScope
 *                       NotInOrganization, SenderDomainIs D -> the
 *                       connector; priority 0
 *
 * Made connector first (the rule must name a connector Exchange lists),
 * removed rule first (a rule naming a missing connector is skipped by
 * Exchange: the mail would go out directly while the rule still exists).
 * Every write is checkpointed (gw_tenant_write); a lost answer is
 * MAILMODE_ERR_UNKNOWN, and the next call reads both objects first.
 */
#include "tenant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long setup waits for a new connector to be usable in a rule. */
#define VISIBLE_TRIES 30
#define VISIBLE_WAIT_MS 1000

struct kind {
	const char *what;           /* "outbound connector" */
	const char *noun;           /* "OutboundConnector" */
	const char *comment;        /* its comment field */
};

static const struct kind connector_kind = { "outbound connector", "OutboundConnector", "Comment" };
static const struct kind rule_kind = { "transport rule", "TransportRule", "Comments" };

static int get(struct gw_tenant *t, const struct kind *k, cJSON **obj)
{
	char cmdlet[40];

	snprintf(cmdlet, sizeof(cmdlet), "Get-%s", k->noun);
	return gw_tenant_get(t, cmdlet, t->call->cfg.tenant.out_name, obj);
}

static cJSON *connector_params(const struct gw_call *call, bool create)
{
	const struct gw_tenant_config *tc = &call->cfg.tenant;
	const char *hosts[GW_OUT_HOSTS_MAX];
	cJSON *p = cJSON_CreateObject();
	char comment[GW_NAME_MAX * 2];
	size_t i;

	for (i = 0; i < tc->out_host_count; i++)
		hosts[i] = tc->out_hosts[i];
	snprintf(comment, sizeof(comment), "%s: gateway mode of %s: its outgoing mail to the service",
	         GW_MANAGED_MARKER, call->op.domain);
	if (!p || !cJSON_AddStringToObject(p, create ? "Name" : "Identity", tc->out_name) ||
	    !cJSON_AddStringToObject(p, "ConnectorType", "Partner") ||
	    !gw_tenant_add_list(p, "SmartHosts", hosts, tc->out_host_count) ||
	    !cJSON_AddBoolToObject(p, "UseMXRecord", 0) ||
	    !cJSON_AddStringToObject(p, "TlsSettings", "DomainValidation") ||
	    !cJSON_AddStringToObject(p, "TlsDomain", tc->out_tls_domain) ||
	    !cJSON_AddBoolToObject(p, "IsTransportRuleScoped", 1) ||
	    !gw_tenant_add_list(p, "RecipientDomains", hosts, 0) ||
	    !cJSON_AddBoolToObject(p, "Enabled", 1) ||
	    !cJSON_AddStringToObject(p, "Comment", comment)) {
		cJSON_Delete(p);
		return NULL;
	}
	return p;
}

static cJSON *rule_params(const struct gw_call *call, bool create)
{
	const struct gw_tenant_config *tc = &call->cfg.tenant;
	const char *domain = call->op.domain;
	cJSON *p = cJSON_CreateObject();
	char comment[GW_NAME_MAX * 2];

	snprintf(comment, sizeof(comment), "%s: gateway mode of %s: its outgoing mail to the service",
	         GW_MANAGED_MARKER, domain);
	if (!p || !cJSON_AddStringToObject(p, create ? "Name" : "Identity", tc->out_name) ||
	    (create && !cJSON_AddNumberToObject(p, "Priority", 0)) ||
	    !cJSON_AddStringToObject(p, "FromScope", "InOrganization") ||
	    !cJSON_AddStringToObject(p, "SentToScope", "NotInOrganization") ||
	    !gw_tenant_add_list(p, "SenderDomainIs", &domain, 1) ||
	    !cJSON_AddStringToObject(p, "RouteMessageOutboundConnector", tc->out_name) ||
	    !cJSON_AddStringToObject(p, "Mode", "Enforce") ||
	    (create && !cJSON_AddBoolToObject(p, "Enabled", 1)) ||
	    !cJSON_AddStringToObject(p, "Comments", comment)) {
		cJSON_Delete(p);
		return NULL;
	}
	return p;
}

/* The first field of the connector not as wanted, in why; false when
 * every field is. */
static bool connector_differs(const struct gw_call *call, const cJSON *c, char *why, size_t len)
{
	const struct gw_tenant_config *tc = &call->cfg.tenant;
	const char *hosts[GW_OUT_HOSTS_MAX];
	size_t i;

	for (i = 0; i < tc->out_host_count; i++)
		hosts[i] = tc->out_hosts[i];
	if (!ms_strcaseeq(ms_field_str(c, "ConnectorType"), "Partner"))
		snprintf(why, len, "ConnectorType is not Partner");
	else if (!gw_tenant_list_is(c, "SmartHosts", hosts, tc->out_host_count))
		snprintf(why, len, "SmartHosts is not the service's outbound_smart_hosts");
	else if (ms_field_bool(c, "UseMXRecord") != 0)
		snprintf(why, len, "UseMXRecord is not $false");
	else if (!ms_strcaseeq(ms_field_str(c, "TlsSettings"), "DomainValidation"))
		snprintf(why, len, "TlsSettings is not DomainValidation");
	else if (!ms_strcaseeq(ms_field_str(c, "TlsDomain"), tc->out_tls_domain))
		snprintf(why, len, "TlsDomain is not %s", tc->out_tls_domain);
	else if (ms_field_bool(c, "IsTransportRuleScoped") != 1)
		snprintf(why, len, "IsTransportRuleScoped is not $true");
	else if (!gw_tenant_list_is(c, "RecipientDomains", hosts, 0))
		snprintf(why, len, "RecipientDomains is not empty");
	else if (ms_field_bool(c, "Enabled") != 1)
		snprintf(why, len, "it is disabled");
	else
		return false;
	return true;
}

static bool rule_differs(const struct gw_call *call, const cJSON *r, char *why, size_t len)
{
	const char *domain = call->op.domain;

	if (!ms_strcaseeq(ms_field_str(r, "FromScope"), "InOrganization"))
		snprintf(why, len, "FromScope is not InOrganization");
	else if (!ms_strcaseeq(ms_field_str(r, "SentToScope"), "NotInOrganization"))
		snprintf(why, len, "SentToScope is not NotInOrganization");
	else if (!gw_tenant_list_is(r, "SenderDomainIs", &domain, 1))
		snprintf(why, len, "SenderDomainIs is not %s", domain);
	else if (!ms_strcaseeq(ms_field_str(r, "RouteMessageOutboundConnector"),
	                       call->cfg.tenant.out_name))
		snprintf(why, len, "RouteMessageOutboundConnector is not '%s'", call->cfg.tenant.out_name);
	else if (!ms_strcaseeq(ms_field_str(r, "Mode"), "Enforce"))
		snprintf(why, len, "Mode is not Enforce");
	else if (!ms_strcaseeq(ms_field_str(r, "State"), "Enabled"))
		snprintf(why, len, "it is disabled");
	else
		return false;
	return true;
}

static bool differs(const struct gw_call *call, const struct kind *k, const cJSON *obj,
                    char *why, size_t len)
{
	return k == &connector_kind ? connector_differs(call, obj, why, len)
	                            : rule_differs(call, obj, why, len);
}

static int write(struct gw_tenant *t, struct gw_receipt *intent, const struct kind *k,
                 const char *verb, const char *doing, const cJSON *params,
                 struct ms_exo_error *err)
{
	char object[GW_NAME_MAX + 24], cmdlet[40];

	snprintf(object, sizeof(object), "%s %s", k->what, t->call->cfg.tenant.out_name);
	snprintf(cmdlet, sizeof(cmdlet), "%s-%s", verb, k->noun);
	return gw_tenant_write(t, intent, object, doing, cmdlet, params, err);
}

static int refuse_foreign(struct gw_call *call, const struct kind *k, const cJSON *obj)
{
	char object[GW_NAME_MAX + 24];

	if (!obj || gw_tenant_ours(obj, k->comment) || (call->req->flags & MAILMODE_REQ_FORCE))
		return MAILMODE_OK;
	snprintf(object, sizeof(object), "%s '%s'", k->what, call->cfg.tenant.out_name);
	return gw_tenant_not_ours(call, object);
}

/* A rule naming a connector Exchange does not list yet is refused as
 * "couldn't be found": the connector was made a moment ago. */
static int wait_visible(struct gw_tenant *t, int tries)
{
	const struct mailmode_host *host = t->host;

	if (tries >= VISIBLE_TRIES) {
		host->diag_set(t->call->op.diag, MAILMODE_SEV_ERROR, 1,
		               "outbound connector '%s' is not usable in a transport rule of tenant [%s] yet: run setup again later, it resumes",
		               t->call->cfg.tenant.out_name, t->call->cfg.tenant.section);
		return MAILMODE_ERR_NOT_READY;
	}
	t->call->op.diag->severity = MAILMODE_SEV_NONE;
	host->progress(host->handle, "waiting for outbound connector '%s' to become visible",
	               t->call->cfg.tenant.out_name);
	host->sleep_ms(host->handle, VISIBLE_WAIT_MS);
	return MAILMODE_OK;
}

/* One object made, or put right: New- (an "already exists" after a lost
 * answer is read back and taken as its own when it is mailmode's), or
 * Set- with every field. */
static int make(struct gw_tenant *t, struct gw_receipt *receipt, const struct kind *k)
{
	struct gw_call *call = t->call;
	struct ms_exo_error err;
	cJSON *obj = NULL, *params = NULL;
	char why[600];
	int rc, tries = 0;

	rc = get(t, k, &obj);
	if (rc == MAILMODE_OK)
		rc = refuse_foreign(call, k, obj);
	while (rc == MAILMODE_OK && !(obj && !differs(call, k, obj, why, sizeof(why)))) {
		params = k == &connector_kind ? connector_params(call, !obj) : rule_params(call, !obj);
		if (!params) {
			rc = MAILMODE_ERR_NOMEM;
			break;
		}
		if (obj) {
			rc = write(t, receipt, k, "Set", "setting", params, &err);
			if (rc == MAILMODE_OK && k == &rule_kind && strstr(why, "disabled")) {
				cJSON_Delete(params);
				params = cJSON_CreateObject();
				rc = params && cJSON_AddStringToObject(params, "Identity",
				                                       call->cfg.tenant.out_name)
				     ? write(t, receipt, k, "Enable", "enabling", params, &err)
				     : MAILMODE_ERR_NOMEM;
			}
			break;
		}
		rc = write(t, receipt, k, "New", "creating", params, &err);
		cJSON_Delete(params);
		params = NULL;
		if (rc == MAILMODE_OK)
			break;
		if (k == &rule_kind && ms_exo_error_not_found(&err)) {
			rc = wait_visible(t, ++tries);
			continue;
		}
		if (!ms_exo_error_exists(&err))
			break;
		call->op.diag->severity = MAILMODE_SEV_NONE;
		rc = get(t, k, &obj);
		if (rc == MAILMODE_OK && (!obj || !gw_tenant_ours(obj, k->comment)))
			rc = obj ? refuse_foreign(call, k, obj) : MAILMODE_ERR_UNKNOWN;
	}
	cJSON_Delete(params);
	cJSON_Delete(obj);
	return rc;
}

static cJSON *remove_params(const struct gw_call *call)
{
	cJSON *p = cJSON_CreateObject();

	if (!p || !cJSON_AddStringToObject(p, "Identity", call->cfg.tenant.out_name) ||
	    !cJSON_AddBoolToObject(p, "Confirm", 0)) {
		cJSON_Delete(p);
		return NULL;
	}
	return p;
}

/* One object removed (gone already is done; a Remove- answered "not
 * found" after a lost answer landed). */
static int unmake(struct gw_tenant *t, struct gw_receipt *intent, const struct kind *k)
{
	struct gw_call *call = t->call;
	struct ms_exo_error err;
	cJSON *obj = NULL, *params = NULL;
	int rc;

	rc = get(t, k, &obj);
	if (rc == MAILMODE_OK)
		rc = refuse_foreign(call, k, obj);
	if (rc != MAILMODE_OK || !obj)
		goto out;
	params = remove_params(call);
	if (!params) {
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	rc = write(t, intent, k, "Remove", "removing", params, &err);
	if (rc != MAILMODE_OK && ms_exo_error_not_found(&err)) {
		call->op.diag->severity = MAILMODE_SEV_NONE;
		rc = MAILMODE_OK;
	}
out:
	cJSON_Delete(params);
	cJSON_Delete(obj);
	return rc;
}

int gw_outbound_remove(struct gw_tenant *t, struct gw_receipt *intent)
{
	int rc = unmake(t, intent, &rule_kind);

	if (rc == MAILMODE_OK)
		rc = unmake(t, intent, &connector_kind);
	if (rc == MAILMODE_OK)
		intent->outbound = false;
	return rc;
}

int gw_outbound_setup(struct gw_tenant *t, struct gw_receipt *receipt)
{
	int rc;

	if (!t->call->cfg.tenant.outbound)
		return receipt->outbound ? gw_outbound_remove(t, receipt) : MAILMODE_OK;
	/* Named in the receipt before the first write: the teardown of an
	 * attempt that crashed looks for them. */
	receipt->outbound = true;
	rc = make(t, receipt, &connector_kind);
	if (rc == MAILMODE_OK)
		rc = make(t, receipt, &rule_kind);
	return rc;
}

int gw_outbound_preflight(struct gw_tenant *t)
{
	const struct kind *kinds[] = { &connector_kind, &rule_kind };
	size_t i;
	int rc = MAILMODE_OK;

	for (i = 0; rc == MAILMODE_OK && i < 2; i++) {
		cJSON *obj = NULL;

		rc = get(t, kinds[i], &obj);
		if (rc == MAILMODE_OK)
			rc = refuse_foreign(t->call, kinds[i], obj);
		cJSON_Delete(obj);
	}
	return rc;
}

int gw_outbound_check(struct gw_tenant *t, bool *present, char *why, size_t len)
{
	const struct kind *kinds[] = { &connector_kind, &rule_kind };
	struct gw_call *call = t->call;
	char field[600];
	size_t i;
	int rc = MAILMODE_OK;

	*present = false;
	why[0] = '\0';
	for (i = 0; rc == MAILMODE_OK && i < 2; i++) {
		cJSON *obj = NULL;

		rc = get(t, kinds[i], &obj);
		if (rc == MAILMODE_OK && obj)
			*present = true;
		if (rc == MAILMODE_OK && !why[0] && !obj)
			snprintf(why, len, "%s '%s' is not in tenant [%s]", kinds[i]->what,
			         call->cfg.tenant.out_name, call->cfg.tenant.section);
		else if (rc == MAILMODE_OK && !why[0] && differs(call, kinds[i], obj, field, sizeof(field)))
			snprintf(why, len, "%s '%s': %s", kinds[i]->what, call->cfg.tenant.out_name, field);
		cJSON_Delete(obj);
	}
	return rc;
}

/* One outbound object's setup action: New- or Set- with what make()
 * sends, or none when it is as wanted. */
static int plan_make(struct gw_tenant *t, const struct kind *k, const cJSON *obj,
                     cJSON *actions)
{
	struct gw_call *call = t->call;
	const char *name = call->cfg.tenant.out_name;
	cJSON *params;
	char why[600], cmdlet[40];

	if (obj && !differs(call, k, obj, why, sizeof(why)))
		return gw_tenant_plan_cmdlet(actions, "reuse", k->what, name, NULL, NULL,
		                             "no change: %s '%s' as wanted", k->what, name);
	params = k == &connector_kind ? connector_params(call, !obj) : rule_params(call, !obj);
	snprintf(cmdlet, sizeof(cmdlet), "%s-%s", obj ? "Set" : "New", k->noun);
	if (obj)
		return gw_tenant_plan_cmdlet(actions, "update", k->what, name, cmdlet, params,
		                             "before the MX: %s -Identity '%s' (%s)", cmdlet, name,
		                             why);
	if (k == &connector_kind)
		return gw_tenant_plan_cmdlet(actions, "create", k->what, name, cmdlet, params,
		                             "before the MX: %s -Name '%s' -ConnectorType Partner -SmartHosts %s%s -UseMXRecord $false -TlsSettings DomainValidation -TlsDomain %s -IsTransportRuleScoped $true",
		                             cmdlet, name, call->cfg.tenant.out_hosts[0],
		                             call->cfg.tenant.out_host_count > 1 ? ",..." : "",
		                             call->cfg.tenant.out_tls_domain);
	return gw_tenant_plan_cmdlet(actions, "create", k->what, name, cmdlet, params,
	                             "before the MX: %s -Name '%s' -Priority 0 -FromScope InOrganization -SentToScope NotInOrganization -SenderDomainIs %s -RouteMessageOutboundConnector '%s' (the domain's outgoing mail to the service)",
	                             cmdlet, name, call->op.domain, name);
}

/* One outbound object's removal, as unmake() sends it. */
static int plan_unmake(struct gw_tenant *t, const struct kind *k, const char *when,
                       cJSON *actions)
{
	const char *name = t->call->cfg.tenant.out_name;
	char cmdlet[40];

	snprintf(cmdlet, sizeof(cmdlet), "Remove-%s", k->noun);
	return gw_tenant_plan_cmdlet(actions, "remove", k->what, name, cmdlet,
	                             remove_params(t->call),
	                             "%s the MX: %s -Identity '%s' -Confirm:$false", when, cmdlet,
	                             name);
}

int gw_outbound_plan(struct gw_tenant *t, enum mailmode_plan_op which, cJSON *actions)
{
	/* Teardown (after the MX), or setup with outbound = no (before it). */
	const char *when = which == MAILMODE_PLAN_SETUP ? "before" : "after";
	cJSON *conn = NULL, *rule = NULL;
	int rc = get(t, &connector_kind, &conn);

	if (rc == MAILMODE_OK)
		rc = get(t, &rule_kind, &rule);
	if (rc != MAILMODE_OK)
		goto out;
	if (which == MAILMODE_PLAN_SETUP && t->call->cfg.tenant.outbound) {
		rc = plan_make(t, &connector_kind, conn, actions);
		if (rc == MAILMODE_OK)
			rc = plan_make(t, &rule_kind, rule, actions);
		goto out;
	}
	if (rule)
		rc = plan_unmake(t, &rule_kind, when, actions);
	if (rc == MAILMODE_OK && conn)
		rc = plan_unmake(t, &connector_kind, when, actions);
out:
	cJSON_Delete(conn);
	cJSON_Delete(rule);
	return rc;
}
