/*
 * Preflight (ABI 1.2): proves, without changing anything, that setup or
 * teardown can run now.  The zone and its primary are found, the MX set
 * reads from the primary and from every authoritative server, setup or
 * teardown would not refuse the live set (drift), and the primary accepts
 * a change of the domain's MX: the provider's probe_update (RFC 2136: a
 * no-op signed UPDATE that must come back NOERROR; the API providers say
 * what they could prove).
 */
#include "provider.h"

#include <stdio.h>
#include <stdlib.h>

/* Every authoritative server answers: verify will need all of them. */
static int all_servers_answer(struct gw_op *op)
{
	const struct mailmode_host *host = op->ctx->host;
	struct gw_auth_view *view = calloc(1, sizeof(*view));
	size_t i;
	int rc;

	if (!view)
		return MAILMODE_ERR_NOMEM;
	rc = gw_auth_collect(op, view);
	for (i = 0; rc == MAILMODE_OK && i < view->count; i++) {
		const struct gw_server_view *sv = &view->servers[i];

		if (sv->answered)
			continue;
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 1,
		               "authoritative server %s (%s) of zone %s cannot be "
		               "read: %s", sv->ns_name, sv->address, op->zone,
		               sv->error);
		rc = MAILMODE_ERR_FAILED;
	}
	free(view);
	return rc;
}

/* Would setup or teardown refuse what is live? */
static int decide(struct gw_call *call, enum mailmode_plan_op which,
                  const struct gw_mx_set *live)
{
	struct gw_mx_set restore;
	const char *label;
	enum gw_live_kind kind;
	bool done;

	if (which == MAILMODE_PLAN_TEARDOWN)
		return gw_teardown_decide(call, live, &restore, &label, &done);
	return gw_setup_decide(call, live, &kind);
}

static int probe(struct gw_call *call, struct gw_provider *provider)
{
	const struct mailmode_host *host = call->op.ctx->host;

	switch (provider->ops->probe_update(provider, call->op.domain)) {
	case GW_REPLACE_OK:
		return MAILMODE_OK;
	case GW_REPLACE_DENIED:
		return MAILMODE_ERR_DENIED;
	case GW_REPLACE_UNKNOWN:
		/* The probe changes nothing either way: just not proven yet. */
		call->op.diag->retryable = 1;
		return MAILMODE_ERR_FAILED;
	default:
		host->diag_append(call->op.diag, "the probe UPDATE (a no-op) of %s "
		                  "MX was not accepted", call->op.domain);
		return MAILMODE_ERR_FAILED;
	}
}

int gw_preflight(void *vctx, const struct mailmode_request *req,
                 enum mailmode_plan_op which, struct mailmode_diag *diag)
{
	const struct gw_ctx *ctx = vctx;
	const struct mailmode_host *host = ctx->host;
	struct gw_call *call = calloc(1, sizeof(*call));
	struct gw_provider *provider = NULL;
	struct gw_rrset_version live;
	int rc;

	if (!call) {
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	rc = gw_read_live(ctx, req, which, true, diag, call, &provider, &live);
	if (rc != MAILMODE_OK)
		goto out;
	rc = decide(call, which, &live.rrset);
	if (rc != MAILMODE_OK)
		goto out;
	rc = all_servers_answer(&call->op);
	if (rc != MAILMODE_OK)
		goto out;
	rc = probe(call, provider);
	if (rc == MAILMODE_OK && call->cfg.tenant.enabled)
		rc = gw_tenant_preflight(call);
	if (rc != MAILMODE_OK)
		goto out;
	if (call->cfg.provider == GW_PROVIDER_RFC2136)
		host->diag_set(diag, MAILMODE_SEV_INFO, 0,
		               "%s of %s can run: zone %s read from the primary %s "
		               "and every authoritative server, TSIG key %s may "
		               "update %s MX", which == MAILMODE_PLAN_SETUP ?
		               "gateway setup" : "gateway teardown", req->domain,
		               call->op.zone, call->op.primary_addr,
		               call->cfg.tsig_key, req->domain);
	else
		host->diag_set(diag, MAILMODE_SEV_INFO, 0,
		               "%s of %s can run: MX read from %s and every "
		               "authoritative server of zone %s; %s",
		               which == MAILMODE_PLAN_SETUP ? "gateway setup" :
		               "gateway teardown", req->domain, provider->where,
		               call->op.zone, provider->proven);
	if (call->cfg.tenant.enabled)
		host->diag_append(diag, "[%s]: signed in, Get-InboundConnector '%s' answered (its "
		                  "New-/Set-/Remove- cannot be proven without a change)",
		                  call->cfg.tenant.section, call->cfg.tenant.connector);
out:
	if (provider)
		provider->ops->close(provider);
	free(call);
	return rc;
}
