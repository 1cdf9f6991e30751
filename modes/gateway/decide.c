/*
 * What setup and teardown would do with the MX set they find live, shared
 * by plan, preflight, setup and teardown so that all four agree.
 *
 * The original MX set (the first one setup replaced) is never given up:
 * a live set that is neither a gateway set of ours nor the original was
 * edited by hand, and setting up over it is refused unless forced; even
 * forced, the original stays the one to restore.
 */
#include "gateway.h"

#include <stdio.h>
#include <string.h>

static bool setup_ours(const struct gw_call *call, const struct gw_mx_set *live)
{
	/* TTLs aside: gateway records with other TTLs are still ours, and
	 * setup puts the configured TTLs back. */
	return gw_mx_set_equal(live, &call->cfg.gateway) ||
	       (call->has_receipt && gw_mx_set_equal(live, &call->receipt.gateway));
}

static void refuse_setup_drift(const struct gw_call *call,
                               const struct gw_mx_set *live)
{
	const struct gw_op *op = &call->op;
	const struct gw_mx_set *ref = call->has_receipt ? &call->receipt.gateway
	                                                : &call->cfg.gateway;
	char diff[MAILMODE_DIAG_SUMMARY_MAX];

	gw_mx_set_diff(live, ref, diff, sizeof(diff));
	op->ctx->host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
	                        "the MX set of %s has drifted from the gateway set "
	                        "(%s) and is not the original either; refusing to "
	                        "replace it (--force sets the gateway set up anyway "
	                        "and keeps the original)", op->domain, diff);
	gw_append_set(op, "live", live);
	gw_append_set(op, "gateway set", ref);
	if (call->has_original)
		gw_append_set(op, "original (teardown restores it)", &call->original);
}

int gw_setup_decide(const struct gw_call *call, const struct gw_mx_set *live,
                    enum gw_live_kind *kind)
{
	if (gw_mx_set_same(live, &call->cfg.gateway))
		*kind = GW_LIVE_GATEWAY;
	else if (setup_ours(call, live))
		*kind = GW_LIVE_OURS;
	else if (call->has_original && gw_mx_set_equal(live, &call->original))
		*kind = GW_LIVE_ORIGINAL;
	else if (!call->has_receipt && !call->has_original)
		*kind = GW_LIVE_FRESH;
	else
		*kind = GW_LIVE_DRIFT;
	if (*kind == GW_LIVE_DRIFT && !(call->req->flags & MAILMODE_REQ_FORCE)) {
		refuse_setup_drift(call, live);
		return MAILMODE_ERR_CONFLICT;
	}
	return MAILMODE_OK;
}

int gw_teardown_target(const struct gw_call *call, struct gw_mx_set *restore,
                       const char **restore_label)
{
	const struct mailmode_request *req = call->req;

	if (call->has_original) {
		*restore = call->original;
		*restore_label = "the original MX set";
		return MAILMODE_OK;
	}
	if (!call->cfg.has_fallback) {
		call->op.ctx->host->diag_set(
			call->op.diag, MAILMODE_SEV_ERROR, 0,
			"[%s] fallback_mx: missing (%s has no saved MX set%s, so "
			"teardown needs the MX set to restore)", req->section,
			req->domain,
			(req->flags & MAILMODE_REQ_ADOPTED) ? ": it was adopted" : "");
		return MAILMODE_ERR_CONFIG;
	}
	*restore = call->cfg.fallback;
	*restore_label = "fallback_mx";
	return MAILMODE_OK;
}

static void refuse_teardown_drift(const struct gw_call *call,
                                  const struct gw_mx_set *live,
                                  const struct gw_mx_set *gateway,
                                  const struct gw_mx_set *restore,
                                  const char *restore_label)
{
	const struct gw_op *op = &call->op;
	char label[128], diff[MAILMODE_DIAG_SUMMARY_MAX];

	gw_mx_set_diff(live, gateway, diff, sizeof(diff));
	op->ctx->host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
	                        "the MX set of %s has drifted: it is neither the "
	                        "gateway set nor %s (%s); refusing to overwrite it "
	                        "(--force restores anyway)", op->domain,
	                        restore_label, diff);
	gw_append_set(op, "live", live);
	gw_append_set(op, "gateway set", gateway);
	snprintf(label, sizeof(label), "to restore (%s)", restore_label);
	gw_append_set(op, label, restore);
}

int gw_teardown_decide(const struct gw_call *call, const struct gw_mx_set *live,
                       struct gw_mx_set *restore, const char **restore_label,
                       bool *done)
{
	const struct gw_mx_set *gateway = call->has_receipt ? &call->receipt.gateway
	                                                    : &call->cfg.gateway;
	int rc;

	*done = false;
	rc = gw_teardown_target(call, restore, restore_label);
	if (rc != MAILMODE_OK)
		return rc;
	/* Done when the set to restore is live, or when no gateway record
	 * is: then nothing of this mode is there to remove (an UPDATE that
	 * was refused, say), and what is live is someone else's. */
	if (gw_mx_set_equal(live, restore) ||
	    (!gw_mx_set_overlap(live, gateway) &&
	     !gw_mx_set_overlap(live, &call->cfg.gateway))) {
		*done = true;
		return MAILMODE_OK;
	}
	/* TTLs aside, as for setup: the records are what drift protects. */
	if (!gw_mx_set_equal(live, gateway) &&
	    !gw_mx_set_equal(live, &call->cfg.gateway) &&
	    !(call->req->flags & MAILMODE_REQ_FORCE)) {
		refuse_teardown_drift(call, live, gateway, restore, *restore_label);
		return MAILMODE_ERR_CONFLICT;
	}
	return MAILMODE_OK;
}
