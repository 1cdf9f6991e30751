/*
 * Gateway mode: the domain's MX records point at the security service's
 * gateway hosts.
 *
 *   setup     read the MX set from the primary, keep it in the receipt, and
 *             swap it for the gateway set in one compare-and-swap UPDATE
 *   verify    every authoritative server serves exactly the gateway set,
 *             with one SOA serial
 *   observe   the same look, as present / absent / partial
 *   teardown  compare-and-swap from the gateway set back to the original
 *             (adopted domains: fallback_mx); refuse on drift unless forced
 *   plan      the UPDATE setup or teardown would send, line by line (and,
 *             plan_actions, the same as values: the records, the cmdlets)
 *   preflight what setup or teardown needs, proven without a change
 *
 * The original MX set is kept by the host (keep_original) before the first
 * UPDATE and every UPDATE is checkpointed before it is sent (swap.c); a
 * set edited by hand is drift for setup as for teardown (decide.c).
 *
 * All DNS writes go through the provider seam (provider.h): RFC 2136,
 * Cloudflare or Google Cloud DNS, as [dns NAME] provider = says.
 */
#include "provider.h"

#include <cjson/cJSON.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GATEWAY_VERSION "1.0"

static int gw_init(const struct mailmode_host *host, const char *section,
                   void **ctx_out, struct mailmode_diag *diag)
{
	(void)diag;
	struct gw_ctx *ctx = NULL;
	int rc;

	(void)section; /* everything lives in the profiles */
	*ctx_out = NULL;
	/* Every v1.0 service is used; a shorter table cannot be trusted with
	 * anything, not even diag_set. */
	if (host->struct_size < offsetof(struct mailmode_host, diag_append) +
	                                sizeof(host->diag_append)) {
		rc = MAILMODE_ERR_FAILED;
		goto out;
	}
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	ctx->host = host;
	ctx->cache = gw_cache_new();
	if (!ctx->cache) {
		free(ctx);
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	*ctx_out = ctx;
	rc = MAILMODE_OK;
out:
	return rc;
}

static void gw_fini(void *vctx)
{
	struct gw_ctx *ctx = vctx;

	if (ctx)
		gw_cache_destroy(ctx->cache);
	free(ctx);
}

/* The original: req->original (ABI 1.2) when the host has one, else the
 * set a receipt saved (receipts from before ABI 1.2, or a host without
 * keep_original). */
static int load_original(struct gw_call *call, const struct mailmode_request *req)
{
	const struct mailmode_host *host = call->op.ctx->host;
	char err[256];

	if (gw_host_keeps_writes(call) && req->original) {
		if (gw_original_parse(req->original, &call->original, err,
		                      sizeof(err)) != MAILMODE_OK) {
			host->diag_set(call->op.diag, MAILMODE_SEV_ERROR, 0,
			               "the original MX set kept for %s %s",
			               req->domain, err);
			return MAILMODE_ERR_FAILED;
		}
		call->has_original = true;
		call->original_kept = true;
	} else if (call->has_receipt && call->receipt.has_saved) {
		call->has_original = true;
		call->original = call->receipt.saved;
	}
	return MAILMODE_OK;
}

int gw_begin_call(const struct gw_ctx *ctx, const struct mailmode_request *req,
                  struct mailmode_diag *diag, bool need_primary,
                  struct gw_call *call)
{
	char err[256];
	int rc;

	memset(call, 0, sizeof(*call));
	call->req = req;
	rc = gw_config_load(ctx, req, &call->cfg, diag);
	if (rc != MAILMODE_OK)
		goto out;
	call->op.ctx = ctx;
	call->op.cfg = &call->cfg;
	call->op.diag = diag;
	call->op.domain = req->domain;
	if (req->receipt) {
		rc = gw_receipt_parse(req->receipt, &call->receipt, err, sizeof(err));
		if (rc != MAILMODE_OK) {
			ctx->host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
			                    "the stored gateway receipt of %s %s",
			                    req->domain, err);
			rc = MAILMODE_ERR_FAILED;
			goto out;
		}
		call->has_receipt = true;
		call->tenant_locked = call->receipt.locked;
	}
	rc = load_original(call, req);
	if (rc != MAILMODE_OK)
		goto out;
	/* Walked again rather than taken from the receipt: the records live
	 * where the zone cut is now (a delegation may have been added). */
	rc = gw_find_zone(&call->op);
	if (rc != MAILMODE_OK)
		goto out;
	/* Only an RFC 2136 primary is found in the DNS; the API providers
	 * find their zone through their API. */
	if (need_primary && call->cfg.provider == GW_PROVIDER_RFC2136)
		rc = gw_find_primary(&call->op);
out:
	return rc;
}

static int gw_validate_config(void *vctx, const struct mailmode_request *req,
                              struct mailmode_diag *diag)
{
	const struct gw_ctx *ctx = vctx;
	struct gw_config cfg;
	int rc;

	rc = gw_config_load(ctx, req, &cfg, diag);
	if (rc == MAILMODE_OK)
		rc = gw_provider_check_credentials(ctx, &cfg, diag);
	if (rc == MAILMODE_OK && cfg.tenant.enabled)
		rc = gw_tenant_check_credentials(ctx, &cfg, diag);
	return rc;
}

/* ABI 1.1: the zone takes one update at a time.  Without a configured
 * zone the domain stands for it (finding the real one needs the network). */
static int gw_resources(void *vctx, const struct mailmode_request *req, char **resources,
                        struct mailmode_diag *diag)
{
	const struct gw_ctx *ctx = vctx;
	struct gw_config cfg;
	char line[GW_NAME_MAX * 2 + 32];
	int rc;

	*resources = NULL;
	rc = gw_config_load(ctx, req, &cfg, diag);
	if (rc != MAILMODE_OK)
		return rc;
	/* The tenant's admin API throttles per tenant. */
	if ((size_t)snprintf(line, sizeof(line), "dns-zone %s%s%s", cfg.zone[0] ? cfg.zone : req->domain,
	                     cfg.tenant.enabled ? "\ntenant " : "",
	                     cfg.tenant.enabled ? cfg.tenant.app.tenant : "") >= sizeof(line))
		return MAILMODE_ERR_NOMEM;
	*resources = ctx->host->strdup(line);
	return *resources ? MAILMODE_OK : MAILMODE_ERR_NOMEM;
}

/* The receipt setup leaves: the original kept, the configured gateway set,
 * and when the gateway set went live. */
static void setup_receipt(const struct gw_call *call, bool swapping,
                          struct gw_receipt *receipt)
{
	const struct mailmode_host *host = call->op.ctx->host;

	memset(receipt, 0, sizeof(*receipt));
	snprintf(receipt->zone, sizeof(receipt->zone), "%s", call->op.zone);
	receipt->gateway = call->cfg.gateway;
	receipt->has_saved = call->has_original;
	receipt->saved = call->original;
	if (call->has_receipt) {
		receipt->has_replaced_ttl = call->receipt.has_replaced_ttl;
		receipt->replaced_ttl = call->receipt.replaced_ttl;
	}
	if (swapping)
		receipt->swapped_at_ms = host->clock_wall_ms(host->handle);
	else if (call->has_receipt)
		receipt->swapped_at_ms = call->receipt.swapped_at_ms;
	if (call->cfg.tenant.enabled) {
		receipt->has_tenant = true;
		snprintf(receipt->connector, sizeof(receipt->connector), "%s",
		         call->cfg.tenant.connector);
		receipt->locked = call->tenant_locked;
		receipt->outbound = call->has_receipt && call->receipt.outbound;
	}
}

/* The tenant side before the MX swap (doc/gateway-tenant.md): the gateway
 * connector is there before the first message the gateway hands on.  The
 * lock-down only with the gateway MX live and the settle passed
 * (MAILMODE_REQ_SETTLED), or kept when it was on: never while senders may
 * still deliver to the front door by the replaced MX. */
static int setup_tenant(struct gw_call *call, const struct gw_mx_set *current,
                        enum gw_live_kind kind)
{
	struct gw_receipt receipt;
	int rc;

	if (!call->cfg.tenant.enabled)
		return MAILMODE_OK;
	/* The connector is the first write: the original is kept before it,
	 * so that a setup resumed after it still knows what it replaces. */
	if (kind == GW_LIVE_FRESH) {
		call->has_original = true;
		call->original = *current;
	}
	rc = gw_keep_original(call);
	if (rc != MAILMODE_OK)
		return rc;
	call->tenant_locked = call->cfg.tenant.lockdown && kind == GW_LIVE_GATEWAY &&
	                      (call->tenant_locked || (call->req->flags & MAILMODE_REQ_SETTLED));
	setup_receipt(call, false, &receipt);
	return gw_tenant_setup(call, &receipt, call->tenant_locked);
}

/* After a prepare (ABI 1.4 req->prepared) the live TTLs are the lowered
 * ones: the original keeps those before, so that teardown never restores
 * the lowered TTL. */
static int original_ttls_before(struct gw_call *call)
{
	struct gw_mx_set before;
	bool has_before;
	int rc = gw_prepared_before(call, &before, &has_before);

	if (rc == MAILMODE_OK && has_before && gw_mx_set_equal(&before, &call->original))
		call->original = before;
	return rc;
}

/* The swap setup decided on, after the original is kept. */
static int setup_swap(struct gw_call *call, struct gw_provider *provider,
                      const struct gw_rrset_version *current,
                      enum gw_live_kind kind, struct gw_receipt *receipt)
{
	const struct mailmode_host *host = call->op.ctx->host;
	const char *domain = call->op.domain;
	int rc;

	if (kind == GW_LIVE_FRESH) {
		call->has_original = true;
		call->original = current->rrset;
		rc = original_ttls_before(call);
		if (rc != MAILMODE_OK)
			return rc;
	} else if (kind == GW_LIVE_DRIFT) {
		/* Forced: the edited set is not kept, the first original is. */
		host->log(host->handle, MAILMODE_LOG_WARNING,
		          "%s: MX set edited by hand; --force: replacing it with the "
		          "gateway set, the original MX set stays the one teardown "
		          "restores", domain);
	}
	rc = gw_keep_original(call);
	if (rc != MAILMODE_OK)
		return rc;
	setup_receipt(call, true, receipt);
	/* Caches hold what was live, not the original: after a prepare its
	 * TTL is the lowered one. */
	if (kind != GW_LIVE_OURS) {
		receipt->has_replaced_ttl = true;
		receipt->replaced_ttl = gw_mx_set_max_ttl(&current->rrset);
	}
	rc = gw_swap(call, provider, current, &call->cfg.gateway, receipt,
	             "swapping to the gateway set");
	if (rc != MAILMODE_OK)
		return rc;
	host->log(host->handle, MAILMODE_LOG_INFO,
	          "%s: MX swapped to the gateway set on %s (zone %s)",
	          domain, provider->where, call->op.zone);
	return MAILMODE_OK;
}

static int gw_setup(void *vctx, const struct mailmode_request *req,
                    char **receipt_out, struct mailmode_diag *diag)
{
	const struct gw_ctx *ctx = vctx;
	const struct mailmode_host *host = ctx->host;
	struct gw_call *call = calloc(1, sizeof(*call));
	struct gw_provider *provider = NULL;
	struct gw_rrset_version current;
	struct gw_receipt receipt;
	enum gw_live_kind kind;
	int rc;

	*receipt_out = NULL;
	if (!call) {
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	rc = gw_begin_call(ctx, req, diag, true, call);
	if (rc != MAILMODE_OK)
		goto out;
	rc = gw_provider_open(&call->op, true, &provider);
	if (rc != MAILMODE_OK)
		goto out;
	rc = provider->ops->get_rrset(provider, req->domain, &current);
	if (rc != MAILMODE_OK)
		goto out;
	rc = gw_setup_decide(call, &current.rrset, &kind);
	if (rc != MAILMODE_OK)
		goto out;
	rc = setup_tenant(call, &current.rrset, kind);
	if (rc != MAILMODE_OK)
		goto out;
	if (kind != GW_LIVE_GATEWAY) {
		rc = setup_swap(call, provider, &current, kind, &receipt);
		if (rc != MAILMODE_OK)
			goto out;
	} else {
		/* Idempotent: the gateway set is live already (an earlier run,
		 * maybe one that crashed before the core stored its receipt).
		 * A receipt from before ABI 1.2 hands its original over. */
		rc = gw_keep_original(call);
		if (rc != MAILMODE_OK)
			goto out;
		setup_receipt(call, false, &receipt);
		if (!call->has_original)
			host->diag_set(diag, MAILMODE_SEV_WARNING, 0,
			               "the gateway MX set is already live at %s and "
			               "there is no earlier receipt: the original MX set "
			               "is unknown, teardown will restore fallback_mx%s",
			               req->domain, call->cfg.has_fallback ? "" :
			               " (set it in the profile before teardown)");
	}
	*receipt_out = gw_receipt_render(ctx, req->domain, &receipt);
	rc = *receipt_out ? MAILMODE_OK : MAILMODE_ERR_NOMEM;
out:
	if (provider)
		provider->ops->close(provider);
	free(call);
	return rc;
}

/* The receipt a teardown checkpoints: the one it was given (or, adopted,
 * the configured gateway set). */
static void teardown_receipt(const struct gw_call *call, struct gw_receipt *receipt)
{
	if (call->has_receipt) {
		*receipt = call->receipt;
		receipt->has_saved = call->has_original;
		receipt->saved = call->original;
		return;
	}
	memset(receipt, 0, sizeof(*receipt));
	snprintf(receipt->zone, sizeof(receipt->zone), "%s", call->op.zone);
	receipt->gateway = call->cfg.gateway;
	if (call->cfg.tenant.enabled) {
		receipt->has_tenant = true;
		snprintf(receipt->connector, sizeof(receipt->connector), "%s",
		         call->cfg.tenant.connector);
	}
}

static int gw_teardown(void *vctx, const struct mailmode_request *req,
                       struct mailmode_diag *diag)
{
	const struct gw_ctx *ctx = vctx;
	const struct mailmode_host *host = ctx->host;
	struct gw_call *call = calloc(1, sizeof(*call));
	struct gw_provider *provider = NULL;
	struct gw_rrset_version live;
	struct gw_mx_set restore;
	struct gw_receipt intent;
	const char *restore_label = NULL;
	bool done;
	int rc;

	if (!call) {
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	rc = gw_begin_call(ctx, req, diag, true, call);
	if (rc != MAILMODE_OK)
		goto out;
	rc = gw_teardown_target(call, &restore, &restore_label);
	if (rc != MAILMODE_OK)
		goto out;
	rc = gw_provider_open(&call->op, true, &provider);
	if (rc != MAILMODE_OK)
		goto out;
	rc = provider->ops->get_rrset(provider, req->domain, &live);
	if (rc != MAILMODE_OK)
		goto out;
	rc = gw_teardown_decide(call, &live.rrset, &restore, &restore_label, &done);
	if (rc != MAILMODE_OK)
		goto out;
	teardown_receipt(call, &intent);
	/* The lock-down goes before the MX points back at the front door
	 * (doc/gateway-tenant.md). */
	if (call->cfg.tenant.enabled && (rc = gw_tenant_lift(call, &intent)) != MAILMODE_OK)
		goto out;
	if (done) {
		host->log(host->handle, MAILMODE_LOG_INFO, "%s: %s, nothing "
		          "to restore", req->domain,
		          gw_mx_set_equal(&live.rrset, &restore) ?
		          "the set to restore is already live" :
		          "no gateway MX record is live");
	} else {
		rc = gw_swap(call, provider, &live, &restore, &intent,
		             "restoring the original set");
		if (rc != MAILMODE_OK)
			goto out;
		host->log(host->handle, MAILMODE_LOG_INFO,
		          "%s: MX restored to %s on %s (zone %s)", req->domain,
		          restore_label, provider->where, call->op.zone);
	}
	if (call->cfg.tenant.enabled)
		rc = gw_tenant_remove(call, &intent);
out:
	if (provider)
		provider->ops->close(provider);
	free(call);
	return rc;
}

cJSON *gw_plan_action(cJSON *actions, const char *change, const char *object,
                      const char *name, const char *text)
{
	cJSON *a = cJSON_CreateObject();

	if (!a || !cJSON_AddStringToObject(a, "change", change) ||
	    (object && !cJSON_AddStringToObject(a, "object", object)) ||
	    (name && !cJSON_AddStringToObject(a, "name", name)) ||
	    !cJSON_AddStringToObject(a, "text", text) || !cJSON_AddItemToArray(actions, a)) {
		cJSON_Delete(a);
		return NULL;
	}
	return a;
}

/* The records of an MX set as a plan shows them. */
static cJSON *mx_records(const char *name, const struct gw_mx_set *set)
{
	cJSON *list = cJSON_CreateArray(), *r;
	size_t i;

	for (i = 0; list && i < set->count; i++) {
		r = cJSON_CreateObject();
		if (!cJSON_AddItemToArray(list, r)) {
			cJSON_Delete(r);
			goto fail;
		}
		if (!cJSON_AddStringToObject(r, "name", name) ||
		    !cJSON_AddStringToObject(r, "type", "MX") ||
		    !cJSON_AddNumberToObject(r, "ttl", set->mx[i].ttl) ||
		    !cJSON_AddNumberToObject(r, "preference", set->mx[i].pref) ||
		    !cJSON_AddStringToObject(r, "exchange", set->mx[i].host))
			goto fail;
	}
	return list;
fail:
	cJSON_Delete(list);
	return NULL;
}

/* The MX change: the provider's description and the records. */
static int plan_replace(struct gw_call *call, struct gw_provider *provider,
                        const struct gw_rrset_version *live, const struct gw_mx_set *target,
                        cJSON *actions)
{
	const char *domain = call->op.domain;
	char text[8192] = "";
	cJSON *a;
	int rc = provider->ops->describe_replace(provider, domain, live, target, text,
	                                         sizeof(text));

	if (rc != MAILMODE_OK)
		return rc;
	a = gw_plan_action(actions, "replace", "mx", domain, text);
	if (!a || !cJSON_AddStringToObject(a, "zone", call->op.zone) ||
	    !cJSON_AddItemToObject(a, "delete", mx_records(domain, &live->rrset)) ||
	    !cJSON_AddItemToObject(a, "add", mx_records(domain, target)))
		return MAILMODE_ERR_NOMEM;
	return MAILMODE_OK;
}

/* The plan over the live set, refusing as setup or teardown would. */
static int plan_dns(struct gw_call *call, struct gw_provider *provider,
                    enum mailmode_plan_op which, const struct gw_rrset_version *live,
                    cJSON *actions)
{
	const char *domain = call->op.domain, *restore_label = NULL;
	struct gw_mx_set restore;
	const struct gw_mx_set *target = &call->cfg.gateway;
	enum gw_live_kind kind;
	bool done = false;
	char text[512];
	int rc;

	if (which == MAILMODE_PLAN_TEARDOWN) {
		rc = gw_teardown_decide(call, &live->rrset, &restore,
		                        &restore_label, &done);
		target = &restore;
	} else {
		rc = gw_setup_decide(call, &live->rrset, &kind);
		done = kind == GW_LIVE_GATEWAY;
	}
	if (rc != MAILMODE_OK)
		return rc;
	if (!done)
		return plan_replace(call, provider, live, target, actions);
	if (which == MAILMODE_PLAN_TEARDOWN && !gw_mx_set_equal(&live->rrset, &restore))
		snprintf(text, sizeof(text), "no change: no gateway MX record is live at %s", domain);
	else
		snprintf(text, sizeof(text), "no change: %s already has %s", domain,
		         which == MAILMODE_PLAN_SETUP ? "the gateway MX set" : restore_label);
	return gw_plan_action(actions, "reuse", "mx", domain, text) ? MAILMODE_OK
	                                                            : MAILMODE_ERR_NOMEM;
}

int gw_read_live(const struct gw_ctx *ctx, const struct mailmode_request *req,
                 enum mailmode_plan_op which, bool signing, struct mailmode_diag *diag,
                 struct gw_call *call, struct gw_provider **provider,
                 struct gw_rrset_version *live)
{
	struct gw_mx_set restore;
	const char *restore_label;
	int rc;

	*provider = NULL;
	rc = gw_begin_call(ctx, req, diag, true, call);
	if (rc != MAILMODE_OK)
		return rc;
	/* A teardown with nothing to restore is refused before any read. */
	if (which == MAILMODE_PLAN_TEARDOWN) {
		rc = gw_teardown_target(call, &restore, &restore_label);
		if (rc != MAILMODE_OK)
			return rc;
	}
	rc = gw_provider_open(&call->op, signing, provider);
	if (rc != MAILMODE_OK)
		return rc;
	return (*provider)->ops->get_rrset(*provider, req->domain, live);
}

/* plan() and plan_actions(): the MX change, then the tenant side. */
static int build_plan(const struct gw_ctx *ctx, const struct mailmode_request *req,
                      enum mailmode_plan_op which, cJSON *actions, struct mailmode_diag *diag)
{
	struct gw_call *call = calloc(1, sizeof(*call));
	struct gw_provider *provider = NULL;
	struct gw_rrset_version live;
	int rc = MAILMODE_ERR_NOMEM;

	if (!call || !actions)
		goto out;
	/* Reading needs no secret; nothing is signed or sent. */
	rc = gw_read_live(ctx, req, which, false, diag, call, &provider, &live);
	if (rc == MAILMODE_OK)
		rc = plan_dns(call, provider, which, &live, actions);
	if (rc == MAILMODE_OK && call->cfg.tenant.enabled)
		rc = gw_tenant_plan(call, which, call->tenant_locked, actions);
out:
	if (provider)
		provider->ops->close(provider);
	free(call);
	return rc;
}

/* plan()'s text: the actions' lines. */
static char *plan_lines(const struct mailmode_host *host, const cJSON *actions)
{
	const cJSON *a;
	char text[16384] = "";
	size_t used = 0;

	cJSON_ArrayForEach(a, actions)
		used += (size_t)snprintf(text + used, used < sizeof(text) ? sizeof(text) - used : 0,
		                         "%s%s", used ? "\n" : "",
		                         cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "text")));
	return used < sizeof(text) ? host->strdup(text) : NULL;
}

/* The plan as plan() hands it back (its lines) or plan_actions() (the
 * JSON actions). */
static int plan_as(const struct gw_ctx *ctx, const struct mailmode_request *req,
                   enum mailmode_plan_op which, bool as_actions, char **out,
                   struct mailmode_diag *diag)
{
	cJSON *actions = cJSON_CreateArray();
	char *json = NULL;
	int rc = build_plan(ctx, req, which, actions, diag);

	*out = NULL;
	if (rc == MAILMODE_OK && as_actions && (json = cJSON_PrintUnformatted(actions)))
		*out = ctx->host->strdup(json);
	else if (rc == MAILMODE_OK && !as_actions)
		*out = plan_lines(ctx->host, actions);
	if (rc == MAILMODE_OK && !*out) {
		ctx->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
		rc = MAILMODE_ERR_NOMEM;
	}
	free(json);
	cJSON_Delete(actions);
	return rc;
}

static int gw_plan(void *vctx, const struct mailmode_request *req,
                   enum mailmode_plan_op which, char **plan_out,
                   struct mailmode_diag *diag)
{
	return plan_as(vctx, req, which, false, plan_out, diag);
}

static int gw_plan_actions(void *vctx, const struct mailmode_request *req,
                           enum mailmode_plan_op which, char **actions_out,
                           struct mailmode_diag *diag)
{
	return plan_as(vctx, req, which, true, actions_out, diag);
}

/* *report becomes root rendered (host->alloc'ed); root is consumed. */
static int report_replace(const struct mailmode_host *host, cJSON *root, char **report)
{
	char *text = cJSON_PrintUnformatted(root), *copy;

	cJSON_Delete(root);
	copy = text ? host->strdup(text) : NULL;
	cJSON_free(text);
	if (!copy)
		return MAILMODE_ERR_NOMEM;
	host->free(*report);
	*report = copy;
	return MAILMODE_OK;
}

/* Resolvers may hold the replaced MX set for its TTL after the swap, and
 * mail they send goes where it used to: the old mode must stay until then
 * (plugin.h: settle_until_ms in verify's report). */
static int add_settle_time(const struct gw_ctx *ctx, const struct gw_call *call,
                           char **report)
{
	const struct mailmode_host *host = ctx->host;
	bool settle = call->has_receipt && call->receipt.has_saved && call->receipt.swapped_at_ms;
	/* The lock-down waits for the same caches (ABI 1.4). */
	bool finish = call->cfg.tenant.enabled && call->cfg.tenant.lockdown && !call->tenant_locked;
	cJSON *root;
	int64_t ttl = 0;

	if (!settle && !finish)
		return MAILMODE_OK;
	/* The TTL live when the records were replaced (a prepared, lowered
	 * one), else the saved set's own. */
	if (settle)
		ttl = call->receipt.has_replaced_ttl ? call->receipt.replaced_ttl
		                                      : (int64_t)gw_mx_set_max_ttl(&call->receipt.saved);
	root = cJSON_Parse(*report);
	if (!root || (settle && !cJSON_AddNumberToObject(root, "settle_until_ms",
	                                                 (double)(call->receipt.swapped_at_ms +
	                                                          ttl * 1000))) ||
	    (finish && !cJSON_AddBoolToObject(root, "finish_after_settle", 1))) {
		cJSON_Delete(root);
		return MAILMODE_ERR_NOMEM;
	}
	return report_replace(host, root, report);
}

/* The check shared by verify and observe.  *view is allocated here (it is
 * large); free it with free(). */
static int look(const struct gw_ctx *ctx, const struct mailmode_request *req,
                struct mailmode_diag *diag, struct gw_call *call,
                struct gw_auth_view **view, const struct gw_mx_set **expected,
                struct gw_auth_verdict *verdict, char **report)
{
	int rc;

	*view = NULL;
	*report = NULL;
	rc = gw_begin_call(ctx, req, diag, false, call);
	if (rc != MAILMODE_OK)
		goto out;
	*expected = call->has_receipt ? &call->receipt.gateway : &call->cfg.gateway;
	*view = calloc(1, sizeof(**view));
	if (!*view) {
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	rc = gw_auth_collect(&call->op, *view);
	if (rc != MAILMODE_OK)
		goto out;
	/* Exact, TTLs included, for what mailmode set up; a domain adopted
	 * (or not set up) has whatever TTLs it was given by hand. */
	if (!call->has_receipt)
		gw_auth_served_ttls(*view, &call->cfg.gateway);
	gw_auth_judge(*view, *expected, verdict);
	*report = gw_auth_report(&call->op, *view, *expected, verdict);
	rc = *report ? MAILMODE_OK : MAILMODE_ERR_NOMEM;
out:
	return rc;
}

/* "ns2.example.test. (127.0.0.12): no answer within 2 s" for the summary. */
static void first_problem(const struct gw_auth_view *view,
                          const struct gw_mx_set *expected, char *buf,
                          size_t len)
{
	const struct gw_server_view *first_ok = NULL;
	size_t i;

	snprintf(buf, len, "no authoritative server found");
	for (i = 0; i < view->count; i++) {
		const struct gw_server_view *sv = &view->servers[i];

		if (!sv->answered) {
			snprintf(buf, len, "%s (%s): %s", sv->ns_name, sv->address,
			         sv->error);
			return;
		}
		if (!first_ok)
			first_ok = sv;
	}
	for (i = 0; i < view->count; i++) {
		const struct gw_server_view *sv = &view->servers[i];

		if (!gw_mx_set_same(&sv->mx, expected)) {
			char diff[MAILMODE_DIAG_SUMMARY_MAX];

			gw_mx_set_diff(&sv->mx, expected, diff, sizeof(diff));
			/* A long difference is cut: the summary is one line. */
			if (snprintf(buf, len, "%s (%s) serves other MX records (%s)",
			             sv->ns_name, sv->address, diff) >= (int)len)
				buf[len - 1] = '\0';
			return;
		}
		if (sv->serial != first_ok->serial) {
			snprintf(buf, len, "%s (%s) has serial %u, %s (%s) has %u",
			         sv->ns_name, sv->address, sv->serial, first_ok->ns_name,
			         first_ok->address, first_ok->serial);
			return;
		}
		if (sv->zone_signed && !sv->mx_signed) {
			snprintf(buf, len, "%s (%s): the MX set has no RRSIG yet",
			         sv->ns_name, sv->address);
			return;
		}
	}
}

/* The gateway connector as setup left it (verify), once the MX is live. */
static int verify_tenant(struct gw_call *call)
{
	const struct mailmode_host *host = call->op.ctx->host;
	char why[256];
	bool present;
	int rc;

	if (!call->cfg.tenant.enabled)
		return MAILMODE_OK;
	rc = gw_tenant_check(call, call->tenant_locked, &present, why, sizeof(why));
	if (rc != MAILMODE_OK || !why[0])
		return rc;
	host->diag_set(call->op.diag, MAILMODE_SEV_ERROR, 1,
	               "gateway MX of %s is live, but inbound connector '%s' is not ready: %s",
	               call->op.domain, call->cfg.tenant.connector, why);
	return MAILMODE_ERR_NOT_READY;
}

static int gw_verify(void *vctx, const struct mailmode_request *req,
                     char **report, struct mailmode_diag *diag)
{
	const struct gw_ctx *ctx = vctx;
	const struct mailmode_host *host = ctx->host;
	struct gw_call *call = calloc(1, sizeof(*call));
	struct gw_auth_view *view = NULL;
	const struct gw_mx_set *expected = NULL;
	struct gw_auth_verdict verdict;
	char problem[512];
	int rc;

	*report = NULL;
	if (!call) {
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	rc = look(ctx, req, diag, call, &view, &expected, &verdict, report);
	if (rc != MAILMODE_OK)
		goto out;
	if (verdict.expected_live) {
		host->diag_set(diag, MAILMODE_SEV_INFO, 0,
		               "gateway MX of %s served by all %zu authoritative "
		               "servers of zone %s, serial %u", req->domain,
		               view->count, call->op.zone, view->servers[0].serial);
		gw_auth_describe(&call->op, view, expected);
		rc = verify_tenant(call);
	} else {
		first_problem(view, expected, problem, sizeof(problem));
		host->diag_set(diag, MAILMODE_SEV_ERROR, 1,
		               "gateway MX of %s not yet served by every authoritative "
		               "server of zone %s (%zu of %zu answered): %s", req->domain,
		               call->op.zone, verdict.answered, view->count, problem);
		gw_auth_describe(&call->op, view, expected);
		rc = MAILMODE_ERR_NOT_READY;
	}
	/* Said before it passes too: a --no-wait run reads one verify to
	 * learn of the lock-down it does not wait for. */
	if (add_settle_time(ctx, call, report) != MAILMODE_OK)
		rc = MAILMODE_ERR_NOMEM;
out:
	free(view);
	free(call);
	return rc;
}

/* Gateway mode is fully there only with its connector as well; the
 * connector without the MX, or not as set up, is part of it. */
/* "tenant": {"connector", "present", "locked", "problem"} in the report
 * (status --json shows it). */
static int report_tenant(struct gw_call *call, bool present, const char *why, char **report)
{
	const struct mailmode_host *host = call->op.ctx->host;
	cJSON *root = cJSON_Parse(*report), *t = root ? cJSON_AddObjectToObject(root, "tenant") : NULL;

	if (!t || !cJSON_AddStringToObject(t, "connector", call->cfg.tenant.connector) ||
	    !cJSON_AddBoolToObject(t, "present", present) ||
	    !cJSON_AddBoolToObject(t, "locked", call->tenant_locked) ||
	    (why[0] && !cJSON_AddStringToObject(t, "problem", why))) {
		cJSON_Delete(root);
		return MAILMODE_ERR_NOMEM;
	}
	return report_replace(host, root, report);
}

static int observe_tenant(struct gw_call *call, enum mailmode_presence *presence, char **report)
{
	const struct mailmode_host *host = call->op.ctx->host;
	char why[512];
	bool present;
	int rc;

	if (!call->cfg.tenant.enabled)
		return MAILMODE_OK;
	rc = gw_tenant_check(call, call->tenant_locked, &present, why, sizeof(why));
	if (rc == MAILMODE_OK)
		rc = report_tenant(call, present, why, report);
	if (rc != MAILMODE_OK)
		return rc;
	if ((*presence == MAILMODE_ABSENT && present) ||
	    (*presence == MAILMODE_PRESENT && why[0])) {
		*presence = MAILMODE_PARTIAL;
		host->diag_set(call->op.diag, MAILMODE_SEV_WARNING, 1,
		               "gateway mode of %s only partly in effect: %s", call->op.domain,
		               present && !why[0] ? "its inbound connector is there without the gateway MX"
		                                  : why);
	}
	return MAILMODE_OK;
}

static int gw_observe(void *vctx, const struct mailmode_request *req,
                      enum mailmode_presence *presence, char **report,
                      struct mailmode_diag *diag)
{
	const struct gw_ctx *ctx = vctx;
	const struct mailmode_host *host = ctx->host;
	struct gw_call *call = calloc(1, sizeof(*call));
	struct gw_auth_view *view = NULL;
	const struct gw_mx_set *expected = NULL;
	struct gw_auth_verdict verdict;
	char problem[512];
	int rc;

	*presence = MAILMODE_ABSENT;
	*report = NULL;
	if (!call) {
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	rc = look(ctx, req, diag, call, &view, &expected, &verdict, report);
	if (rc != MAILMODE_OK)
		goto out;
	*presence = verdict.presence;
	rc = observe_tenant(call, presence, report);
	if (rc != MAILMODE_OK)
		goto out;
	if (verdict.presence == MAILMODE_PARTIAL) {
		first_problem(view, expected, problem, sizeof(problem));
		host->diag_set(diag, MAILMODE_SEV_WARNING, 1,
		               "gateway MX of %s only partly in effect in zone %s: %s",
		               req->domain, call->op.zone, problem);
		gw_auth_describe(&call->op, view, expected);
	}
out:
	free(view);
	free(call);
	return rc;
}

MAILMODE_PLUGIN_DEFINE(
	.name = "gateway",
	.description = "MX records point at the service's gateway hosts "
	               "(RFC 2136 + TSIG, Cloudflare or Google Cloud DNS; checked "
	               "on every authoritative server)",
	.version = GATEWAY_VERSION,
	.caps = MAILMODE_CAP_THREADSAFE | MAILMODE_CAP_ADOPT | MAILMODE_CAP_FORCE,
	.init = gw_init,
	.fini = gw_fini,
	.validate_config = gw_validate_config,
	.observe = gw_observe,
	.plan = gw_plan,
	.plan_actions = gw_plan_actions,
	.setup = gw_setup,
	.verify = gw_verify,
	.teardown = gw_teardown,
	.resources = gw_resources,
	.preflight = gw_preflight,
	.config_keys = gw_config_keys,
	.doctor = gw_doctor,
	.mx_ttl = gw_mx_ttl);
