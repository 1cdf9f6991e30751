/*
 * Gateway mode: the domain's MX records point at the security service's
 * gateway hosts.
 *
 *   setup     read the MX set from the primary, keep it in the receipt, and
 *             swap it for the gateway set in one compare-and-swap UPDATE
 *   verify    every authoritative server serves exactly the gateway set,
 *             with one SOA serial
 *   observe   the same look, as present / absent / partial
 *   teardown  compare-and-swap from the gateway set back to the saved set
 *             (adopted domains: fallback_mx); refuse on drift unless forced
 *   plan      the UPDATE setup or teardown would send, line by line
 *
 * All DNS writes go through the provider seam (provider.h).
 */
#include "provider.h"

#include <cjson/cJSON.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GATEWAY_VERSION "1.0"

/* Everything an operation carries: the config and where the zone lives. */
struct gw_call {
	struct gw_config cfg;
	struct gw_op op;
	bool has_receipt;
	struct gw_receipt receipt;
};

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
	*ctx_out = ctx;
	rc = MAILMODE_OK;
out:
	return rc;
}

static void gw_fini(void *ctx)
{
	free(ctx);
}

/* Loads the config and the receipt, finds the zone and, for operations
 * that read from or write to it, the primary. */
static int begin_call(const struct gw_ctx *ctx, const struct mailmode_request *req,
                      struct mailmode_diag *diag, bool need_primary,
                      struct gw_call *call)
{
	char err[256];
	int rc;

	memset(call, 0, sizeof(*call));
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
	}
	/* Walked again rather than taken from the receipt: the records live
	 * where the zone cut is now (a delegation may have been added). */
	rc = gw_find_zone(&call->op);
	if (rc != MAILMODE_OK)
		goto out;
	if (need_primary)
		rc = gw_find_primary(&call->op);
out:
	return rc;
}

/* Re-reads the MX set after a refused or unanswered UPDATE.  Errors go to
 * the detail, never over the diagnostic's summary. */
static bool reread(struct gw_op *op, struct gw_provider *provider,
                   struct gw_mx_set *live)
{
	struct mailmode_diag scratch = { 0 };
	struct mailmode_diag *saved = op->diag;
	struct gw_rrset_version version;
	int rc;

	op->diag = &scratch;
	rc = provider->ops->get_rrset(provider, op->domain, &version);
	op->diag = saved;
	if (rc != MAILMODE_OK) {
		op->ctx->host->diag_append(op->diag, "re-reading the MX set failed: %s",
		                           scratch.summary);
		return false;
	}
	*live = version.rrset;
	return true;
}

static void append_set(const struct gw_op *op, const char *label,
                       const struct gw_mx_set *set)
{
	char text[2048];

	gw_mx_set_format(set, true, text, sizeof(text));
	op->ctx->host->diag_append(op->diag, "%s: %s", label, text);
}

/* The compare-and-swap with the outcome turned into a result code.  An
 * unanswered UPDATE is settled by re-reading: its effect is either visible
 * or not. */
static int swap_mx(struct gw_op *op, struct gw_provider *provider,
                   const struct gw_rrset_version *expected,
                   const struct gw_mx_set *replacement)
{
	const struct mailmode_host *host = op->ctx->host;
	enum gw_replace_outcome outcome;
	struct gw_mx_set live;
	int rc;

	if (op->cfg->debug_pause_before_update_ms > 0) {
		host->log(host->handle, MAILMODE_LOG_WARNING,
		          "%s: debug_pause_before_update_ms=%lld in [%s]: pausing "
		          "before the UPDATE (testing aid)", op->domain,
		          (long long)op->cfg->debug_pause_before_update_ms,
		          op->cfg->dns_section);
		host->sleep_ms(host->handle, op->cfg->debug_pause_before_update_ms);
	}
	outcome = provider->ops->replace_rrset(provider, op->domain, expected,
	                                       replacement);
	switch (outcome) {
	case GW_REPLACE_OK:
		rc = MAILMODE_OK;
		break;
	case GW_REPLACE_CONFLICT:
		/* Report, never retry blindly: whoever changed it may be right. */
		append_set(op, "MX read before the UPDATE", &expected->rrset);
		if (reread(op, provider, &live))
			append_set(op, "MX live now", &live);
		rc = MAILMODE_ERR_CONFLICT;
		break;
	case GW_REPLACE_DENIED:
		rc = MAILMODE_ERR_DENIED;
		break;
	case GW_REPLACE_FAILED:
		rc = MAILMODE_ERR_FAILED;
		break;
	case GW_REPLACE_UNKNOWN:
	default:
		/* If the UPDATE landed after all, this is what it replaced. */
		append_set(op, "MX read before the UPDATE", &expected->rrset);
		if (!reread(op, provider, &live)) {
			rc = MAILMODE_ERR_UNKNOWN;
		} else if (gw_mx_set_equal(&live, replacement)) {
			host->diag_set(op->diag, MAILMODE_SEV_WARNING, 0,
			               "the answer to the UPDATE of %s was lost, but a "
			               "re-read shows the new MX set live", op->domain);
			rc = MAILMODE_OK;
		} else if (gw_mx_set_equal(&live, &expected->rrset)) {
			host->diag_append(op->diag, "a re-read shows the MX set "
			                  "unchanged: the UPDATE was not applied");
			op->diag->retryable = 1;
			rc = MAILMODE_ERR_FAILED;
		} else {
			append_set(op, "MX live now (neither the old nor the new set)",
			           &live);
			rc = MAILMODE_ERR_UNKNOWN;
		}
		break;
	}
	return rc;
}

static int gw_validate_config(void *vctx, const struct mailmode_request *req,
                              struct mailmode_diag *diag)
{
	const struct gw_ctx *ctx = vctx;
	struct gw_config cfg;
	char *secret = NULL;
	int rc;

	rc = gw_config_load(ctx, req, &cfg, diag);
	if (rc != MAILMODE_OK)
		goto out;
	rc = gw_config_load_secret(ctx, &cfg, &secret, diag);
out:
	if (secret)
		ctx->host->secret_free(ctx->host->handle, secret);
	return rc;
}

/* ABI 1.1: the zone takes one update at a time.  Without a configured
 * zone the domain stands for it (finding the real one needs the network). */
static int gw_resources(void *vctx, const struct mailmode_request *req, char **resources,
                        struct mailmode_diag *diag)
{
	const struct gw_ctx *ctx = vctx;
	struct gw_config cfg;
	char line[GW_NAME_MAX + 16];
	int rc;

	*resources = NULL;
	rc = gw_config_load(ctx, req, &cfg, diag);
	if (rc != MAILMODE_OK)
		return rc;
	snprintf(line, sizeof(line), "dns-zone %s", cfg.zone[0] ? cfg.zone : req->domain);
	*resources = ctx->host->strdup(line);
	return *resources ? MAILMODE_OK : MAILMODE_ERR_NOMEM;
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
	bool swapped;
	int rc;

	*receipt_out = NULL;
	if (!call) {
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	rc = begin_call(ctx, req, diag, true, call);
	if (rc != MAILMODE_OK)
		goto out;
	rc = gw_rfc2136_open(&call->op, true, &provider);
	if (rc != MAILMODE_OK)
		goto out;
	rc = provider->ops->get_rrset(provider, req->domain, &current);
	if (rc != MAILMODE_OK)
		goto out;

	swapped = !gw_mx_set_equal(&current.rrset, &call->cfg.gateway);
	if (swapped) {
		rc = swap_mx(&call->op, provider, &current, &call->cfg.gateway);
		if (rc != MAILMODE_OK)
			goto out;
		host->log(host->handle, MAILMODE_LOG_INFO,
		          "%s: MX swapped to the gateway set on %s port %u (zone %s)",
		          req->domain, call->op.primary_addr, call->cfg.port,
		          call->op.zone);
	}
	/* Otherwise idempotent: the gateway set is live already (an earlier
	 * run, maybe one that crashed before the core stored its receipt). */

	memset(&receipt, 0, sizeof(receipt));
	snprintf(receipt.zone, sizeof(receipt.zone), "%s", call->op.zone);
	receipt.gateway = call->cfg.gateway;
	if (call->has_receipt &&
	    (!swapped || gw_mx_set_equal(&current.rrset, &call->receipt.gateway))) {
		/* Set up again (same or a new gateway set): the set to restore
		 * one day is still the one the first setup saved. */
		receipt.has_saved = call->receipt.has_saved;
		receipt.saved = call->receipt.saved;
		receipt.swapped_at_ms = swapped ? host->clock_wall_ms(host->handle)
		                                : call->receipt.swapped_at_ms;
	} else if (swapped) {
		receipt.has_saved = true;
		receipt.saved = current.rrset;
		receipt.swapped_at_ms = host->clock_wall_ms(host->handle);
	} else {
		host->diag_set(diag, MAILMODE_SEV_WARNING, 0,
		               "the gateway MX set is already live at %s and there "
		               "is no earlier receipt: the original MX set is "
		               "unknown, teardown will restore fallback_mx%s",
		               req->domain, call->cfg.has_fallback ? "" :
		               " (set it in the profile before teardown)");
	}
	*receipt_out = gw_receipt_render(ctx, &receipt);
	rc = *receipt_out ? MAILMODE_OK : MAILMODE_ERR_NOMEM;
out:
	if (provider)
		provider->ops->close(provider);
	free(call);
	return rc;
}

/* What teardown puts back, and what it expects to find. */
static int teardown_sets(struct gw_call *call, const struct mailmode_request *req,
                         struct gw_mx_set *restore, const char **restore_label,
                         struct gw_mx_set *gateway)
{
	const struct mailmode_host *host = call->op.ctx->host;
	int rc;

	*gateway = call->has_receipt ? call->receipt.gateway : call->cfg.gateway;
	if (call->has_receipt && call->receipt.has_saved) {
		*restore = call->receipt.saved;
		*restore_label = "the MX set saved by setup";
		rc = MAILMODE_OK;
		goto out;
	}
	if (!call->cfg.has_fallback) {
		host->diag_set(call->op.diag, MAILMODE_SEV_ERROR, 0,
		               "[%s] fallback_mx: missing (%s has no saved MX set%s, "
		               "so teardown needs the MX set to restore)", req->section,
		               req->domain,
		               (req->flags & MAILMODE_REQ_ADOPTED) ? ": it was adopted"
		                                                   : "");
		rc = MAILMODE_ERR_CONFIG;
		goto out;
	}
	*restore = call->cfg.fallback;
	*restore_label = "fallback_mx";
	rc = MAILMODE_OK;
out:
	return rc;
}

static void refuse_drift(const struct gw_call *call,
                         const struct gw_mx_set *live,
                         const struct gw_mx_set *gateway,
                         const struct gw_mx_set *restore,
                         const char *restore_label)
{
	const struct gw_op *op = &call->op;
	char label[128];

	op->ctx->host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
	                        "the MX set of %s has drifted: it is neither the "
	                        "gateway set nor %s; refusing to overwrite it "
	                        "(--force restores anyway)", op->domain,
	                        restore_label);
	append_set(op, "live", live);
	append_set(op, "gateway set", gateway);
	snprintf(label, sizeof(label), "to restore (%s)", restore_label);
	append_set(op, label, restore);
}

static int gw_teardown(void *vctx, const struct mailmode_request *req,
                       struct mailmode_diag *diag)
{
	const struct gw_ctx *ctx = vctx;
	const struct mailmode_host *host = ctx->host;
	struct gw_call *call = calloc(1, sizeof(*call));
	struct gw_provider *provider = NULL;
	struct gw_rrset_version live;
	struct gw_mx_set restore, gateway;
	const char *restore_label = NULL;
	int rc;

	if (!call) {
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	rc = begin_call(ctx, req, diag, true, call);
	if (rc != MAILMODE_OK)
		goto out;
	rc = teardown_sets(call, req, &restore, &restore_label, &gateway);
	if (rc != MAILMODE_OK)
		goto out;
	rc = gw_rfc2136_open(&call->op, true, &provider);
	if (rc != MAILMODE_OK)
		goto out;
	rc = provider->ops->get_rrset(provider, req->domain, &live);
	if (rc != MAILMODE_OK)
		goto out;
	if (gw_mx_set_equal(&live.rrset, &restore)) {
		host->log(host->handle, MAILMODE_LOG_INFO,
		          "%s: %s is already live, nothing to restore", req->domain,
		          restore_label);
		rc = MAILMODE_OK;
		goto out;
	}
	if (!gw_mx_set_equal(&live.rrset, &gateway)) {
		if (!(req->flags & MAILMODE_REQ_FORCE)) {
			refuse_drift(call, &live.rrset, &gateway, &restore, restore_label);
			rc = MAILMODE_ERR_CONFLICT;
			goto out;
		}
		/* Still a compare-and-swap: against what was just read. */
		host->log(host->handle, MAILMODE_LOG_WARNING,
		          "%s: MX set drifted from the gateway set; --force: "
		          "replacing it with %s", req->domain, restore_label);
	}
	rc = swap_mx(&call->op, provider, &live, &restore);
	if (rc != MAILMODE_OK)
		goto out;
	host->log(host->handle, MAILMODE_LOG_INFO,
	          "%s: MX restored to %s on %s port %u (zone %s)", req->domain,
	          restore_label, call->op.primary_addr, call->cfg.port,
	          call->op.zone);
out:
	if (provider)
		provider->ops->close(provider);
	free(call);
	return rc;
}

static int gw_plan(void *vctx, const struct mailmode_request *req,
                   enum mailmode_plan_op which, char **plan_out,
                   struct mailmode_diag *diag)
{
	const struct gw_ctx *ctx = vctx;
	const struct mailmode_host *host = ctx->host;
	struct gw_call *call = calloc(1, sizeof(*call));
	struct gw_provider *provider = NULL;
	struct gw_rrset_version live;
	struct gw_mx_set restore, gateway;
	const struct gw_mx_set *target;
	const char *restore_label = NULL;
	char text[8192] = "";
	int rc;

	*plan_out = NULL;
	if (!call) {
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	rc = begin_call(ctx, req, diag, true, call);
	if (rc != MAILMODE_OK)
		goto out;
	if (which == MAILMODE_PLAN_TEARDOWN) {
		rc = teardown_sets(call, req, &restore, &restore_label, &gateway);
		if (rc != MAILMODE_OK)
			goto out;
		target = &restore;
	} else {
		gateway = call->cfg.gateway;
		target = &gateway;
	}
	/* Reading needs no secret; nothing is signed or sent. */
	rc = gw_rfc2136_open(&call->op, false, &provider);
	if (rc != MAILMODE_OK)
		goto out;
	rc = provider->ops->get_rrset(provider, req->domain, &live);
	if (rc != MAILMODE_OK)
		goto out;
	if (gw_mx_set_equal(&live.rrset, target)) {
		snprintf(text, sizeof(text), "no change: %s already has %s", req->domain,
		         which == MAILMODE_PLAN_SETUP ? "the gateway MX set"
		                                      : restore_label);
	} else if (which == MAILMODE_PLAN_TEARDOWN &&
	           !gw_mx_set_equal(&live.rrset, &gateway) &&
	           !(req->flags & MAILMODE_REQ_FORCE)) {
		/* The same refusal teardown would give. */
		refuse_drift(call, &live.rrset, &gateway, &restore, restore_label);
		rc = MAILMODE_ERR_CONFLICT;
		goto out;
	} else {
		rc = provider->ops->describe_replace(provider, req->domain, &live,
		                                     target, text, sizeof(text));
		if (rc != MAILMODE_OK)
			goto out;
	}
	*plan_out = host->strdup(text);
	rc = *plan_out ? MAILMODE_OK : MAILMODE_ERR_NOMEM;
out:
	if (provider)
		provider->ops->close(provider);
	free(call);
	return rc;
}

/* Resolvers may hold the replaced MX set for its TTL after the swap, and
 * mail they send goes where it used to: the old mode must stay until then
 * (plugin.h: settle_until_ms in verify's report). */
static int add_settle_time(const struct gw_ctx *ctx, const struct gw_call *call,
                           char **report)
{
	const struct mailmode_host *host = ctx->host;
	cJSON *root;
	char *text, *copy;
	uint32_t ttl = 0;
	size_t i;

	if (!call->has_receipt || !call->receipt.has_saved || !call->receipt.swapped_at_ms)
		return MAILMODE_OK;
	for (i = 0; i < call->receipt.saved.count; i++)
		if (call->receipt.saved.mx[i].ttl > ttl)
			ttl = call->receipt.saved.mx[i].ttl;
	root = cJSON_Parse(*report);
	if (!root || !cJSON_AddNumberToObject(root, "settle_until_ms",
	                                      (double)(call->receipt.swapped_at_ms +
	                                               (int64_t)ttl * 1000))) {
		cJSON_Delete(root);
		return MAILMODE_ERR_NOMEM;
	}
	text = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	copy = text ? host->strdup(text) : NULL;
	cJSON_free(text);
	if (!copy)
		return MAILMODE_ERR_NOMEM;
	host->free(*report);
	*report = copy;
	return MAILMODE_OK;
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
	rc = begin_call(ctx, req, diag, false, call);
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

		if (!gw_mx_set_equal(&sv->mx, expected)) {
			snprintf(buf, len, "%s (%s) serves other MX records",
			         sv->ns_name, sv->address);
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
		rc = add_settle_time(ctx, call, report);
		goto out;
	}
	first_problem(view, expected, problem, sizeof(problem));
	host->diag_set(diag, MAILMODE_SEV_ERROR, 1,
	               "gateway MX of %s not yet served by every authoritative "
	               "server of zone %s (%zu of %zu answered): %s", req->domain,
	               call->op.zone, verdict.answered, view->count, problem);
	gw_auth_describe(&call->op, view, expected);
	rc = MAILMODE_ERR_NOT_READY;
out:
	free(view);
	free(call);
	return rc;
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
	               "(RFC 2136 + TSIG, checked on every authoritative server)",
	.version = GATEWAY_VERSION,
	.caps = MAILMODE_CAP_THREADSAFE | MAILMODE_CAP_ADOPT | MAILMODE_CAP_FORCE,
	.init = gw_init,
	.fini = gw_fini,
	.validate_config = gw_validate_config,
	.observe = gw_observe,
	.plan = gw_plan,
	.setup = gw_setup,
	.verify = gw_verify,
	.teardown = gw_teardown,
	.resources = gw_resources,
	.config_keys = gw_config_keys);
