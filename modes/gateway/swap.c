/*
 * The write path of setup and teardown (plugin.h, "Writes and their
 * outcomes").  Before the first UPDATE the original MX set goes to
 * host->keep_original; before every UPDATE the receipt as it will be if
 * the UPDATE lands goes to host->checkpoint, and nothing is sent when
 * either fails.  An UPDATE whose answer did not arrive may still be
 * applied (it can sit in the primary's queue while the primary is paused
 * or slow): a re-read that shows the old set only says it has not landed
 * yet, so that outcome stays unknown.  So does a refusal of a write the
 * host had sent more than once: the refusal is the last attempt's, and an
 * earlier one may have been applied (a provider that applied it, then
 * answered 503).  Every provider gets these rules here, once.
 */
#include "provider.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

bool gw_host_keeps_writes(const struct gw_call *call)
{
	const struct mailmode_host *host = call->op.ctx->host;
	const struct mailmode_request *req = call->req;

	return host->struct_size >= offsetof(struct mailmode_host, keep_original) +
	                                    sizeof(host->keep_original) &&
	       host->checkpoint && host->keep_original &&
	       req->struct_size >= offsetof(struct mailmode_request, original) +
	                                   sizeof(req->original);
}

void gw_append_set(const struct gw_op *op, const char *label,
                   const struct gw_mx_set *set)
{
	char text[2048];

	gw_mx_set_format(set, true, text, sizeof(text));
	op->ctx->host->diag_append(op->diag, "%s: %s", label, text);
}

int gw_keep_original(struct gw_call *call)
{
	const struct mailmode_host *host = call->op.ctx->host;
	char *text = NULL;
	int rc = MAILMODE_OK;

	if (!call->has_original || call->original_kept || !gw_host_keeps_writes(call))
		goto out;
	text = gw_original_render(call->op.ctx, call->op.zone, &call->original);
	if (!text) {
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	rc = host->keep_original(host->handle, call->req, text, call->op.diag);
	if (rc != MAILMODE_OK) {
		host->diag_append(call->op.diag, "the original MX set of %s could "
		                  "not be kept, so nothing was sent",
		                  call->op.domain);
		goto out;
	}
	call->original_kept = true;
out:
	host->free(text);
	return rc;
}

static int checkpoint(struct gw_call *call, struct gw_receipt *intent,
                      const struct gw_mx_set *from, const struct gw_mx_set *to,
                      const char *doing)
{
	const struct mailmode_host *host = call->op.ctx->host;
	char *text = NULL;
	int rc = MAILMODE_OK;

	if (!gw_host_keeps_writes(call))
		goto out;
	intent->write_doing = doing;
	intent->write_from = *from;
	intent->write_to = *to;
	text = gw_receipt_render(call->op.ctx, call->op.domain, intent);
	intent->write_doing = NULL;
	if (!text) {
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	rc = host->checkpoint(host->handle, call->req, text, call->op.diag);
	if (rc != MAILMODE_OK)
		host->diag_append(call->op.diag, "the UPDATE of %s MX was not sent: "
		                  "its checkpoint could not be stored",
		                  call->op.domain);
out:
	host->free(text);
	return rc;
}

/* Reads the MX set once.  Errors go to `why`, never over the diagnostic. */
static bool read_once(struct gw_op *op, struct gw_provider *provider,
                      struct gw_mx_set *live, char *why, size_t why_len)
{
	struct mailmode_diag scratch = { 0 };
	struct mailmode_diag *saved = op->diag;
	struct gw_rrset_version version;
	int rc;

	op->diag = &scratch;
	rc = provider->ops->get_rrset(provider, op->domain, &version);
	op->diag = saved;
	if (rc != MAILMODE_OK) {
		snprintf(why, why_len, "%s", scratch.summary);
		return false;
	}
	*live = version.rrset;
	return true;
}

/* Where re-reads go, for messages. */
static const char *source_name(const struct gw_op *op)
{
	return op->cfg->provider == GW_PROVIDER_RFC2136 ? "the primary"
	                                                : "the provider's API";
}

/* Re-reads until the primary answers or GW_REREAD_TIMEOUTS timeouts have
 * passed (a refused connection fails at once: pause between tries).  On
 * failure `why` holds the last reason and *tries the count. */
static bool reread(struct gw_op *op, struct gw_provider *provider,
                   struct gw_mx_set *live, char *why, size_t why_len,
                   int *tries)
{
	const struct mailmode_host *host = op->ctx->host;
	int64_t until = host->clock_mono_ms(host->handle) +
	                (int64_t)op->cfg->timeout_s * 1000 * GW_REREAD_TIMEOUTS;

	host->progress(host->handle, "%s: no answer to the UPDATE; re-reading "
	               "the MX set from %s for up to %d s", op->domain,
	               source_name(op), op->cfg->timeout_s * GW_REREAD_TIMEOUTS);
	for (*tries = 1;; (*tries)++) {
		if (read_once(op, provider, live, why, why_len))
			return true;
		if (host->clock_mono_ms(host->handle) >= until)
			return false;
		host->sleep_ms(host->handle, 200);
	}
}

/* After an UPDATE without a trustworthy answer.  The diagnostic's summary
 * is rewritten, so the detail lines come after it. */
static int settle_unknown(struct gw_op *op, struct gw_provider *provider,
                          const struct gw_rrset_version *expected,
                          const struct gw_mx_set *replacement)
{
	const struct mailmode_host *host = op->ctx->host;
	char first[MAILMODE_DIAG_SUMMARY_MAX], why[MAILMODE_DIAG_SUMMARY_MAX];
	const char *seen;
	struct gw_mx_set live;
	bool answered;
	int tries;

	snprintf(first, sizeof(first), "%s", op->diag->summary);
	answered = reread(op, provider, &live, why, sizeof(why), &tries);
	if (answered && gw_mx_set_equal(&live, replacement)) {
		host->diag_set(op->diag, MAILMODE_SEV_WARNING, 0, "%.400s; but a "
		               "re-read shows the new MX set live", first);
		gw_append_set(op, "MX live now", &live);
		return MAILMODE_OK;
	}
	if (!answered)
		seen = op->cfg->provider == GW_PROVIDER_RFC2136
		               ? "the primary did not answer the re-reads either"
		               : "the provider's API did not answer the re-reads "
		                 "either";
	else if (gw_mx_set_equal(&live, &expected->rrset))
		seen = "a re-read shows the old MX set, so it has not landed yet";
	else
		seen = "a re-read shows neither the old nor the new MX set";
	host->diag_set(op->diag, MAILMODE_SEV_ERROR, 1, "%s; the UPDATE may still "
	               "be applied: %s", first, seen);
	gw_append_set(op, "MX read before the UPDATE", &expected->rrset);
	gw_append_set(op, "MX the UPDATE sets", replacement);
	if (answered)
		gw_append_set(op, "MX live now", &live);
	else
		host->diag_append(op->diag, "re-reading the MX set failed (%d tries "
		                  "in %d s): %s", tries,
		                  op->cfg->timeout_s * GW_REREAD_TIMEOUTS, why);
	return MAILMODE_ERR_UNKNOWN;
}

/* A refusal after the host had sent the write more than once: unknown,
 * with the refusal kept in the summary (settle_unknown re-reads). */
static enum gw_replace_outcome retried_refusal(struct gw_op *op)
{
	char refusal[MAILMODE_DIAG_SUMMARY_MAX];

	snprintf(refusal, sizeof(refusal), "%s", op->diag->summary);
	op->ctx->host->diag_set(op->diag, MAILMODE_SEV_ERROR, 1, "%.300s, but the "
	                        "host had sent it %d times and an earlier attempt "
	                        "may have been applied: outcome unknown", refusal,
	                        op->write_attempts);
	return GW_REPLACE_UNKNOWN;
}

/* A conflict: someone else's change, unless the write went out over HTTP
 * (op->write_attempts counted it) and the set live is ours, which only an
 * earlier copy of it can have made (its answer lost and the request sent
 * again, by the host or by libcurl on a fresh connection; an RFC 2136
 * UPDATE is sent once).  Reports the set live either way. */
static int conflict(struct gw_op *op, struct gw_provider *provider,
                    const struct gw_rrset_version *expected,
                    const struct gw_mx_set *replacement)
{
	const struct mailmode_host *host = op->ctx->host;
	char why[MAILMODE_DIAG_SUMMARY_MAX];
	struct gw_mx_set live;

	if (!read_once(op, provider, &live, why, sizeof(why))) {
		gw_append_set(op, "MX read before the UPDATE", &expected->rrset);
		host->diag_append(op->diag, "re-reading the MX set failed: %s", why);
		return MAILMODE_ERR_CONFLICT;
	}
	if (op->write_attempts > 0 && gw_mx_set_same(&live, replacement)) {
		snprintf(why, sizeof(why), "%s", op->diag->summary);
		host->diag_set(op->diag, MAILMODE_SEV_WARNING, 0, "%.300s; but the "
		               "new MX set is live: an earlier copy of this write "
		               "landed", why);
		gw_append_set(op, "MX live now", &live);
		return MAILMODE_OK;
	}
	/* Report, never retry blindly: whoever changed it may be right. */
	gw_append_set(op, "MX read before the UPDATE", &expected->rrset);
	gw_append_set(op, "MX live now", &live);
	return MAILMODE_ERR_CONFLICT;
}

int gw_swap(struct gw_call *call, struct gw_provider *provider,
            const struct gw_rrset_version *expected,
            const struct gw_mx_set *replacement, struct gw_receipt *intent,
            const char *doing)
{
	struct gw_op *op = &call->op;
	const struct mailmode_host *host = op->ctx->host;
	enum gw_replace_outcome outcome;
	int rc;

	rc = checkpoint(call, intent, &expected->rrset, replacement, doing);
	if (rc != MAILMODE_OK)
		goto out;
	if (op->cfg->debug_pause_before_update_ms > 0) {
		host->log(host->handle, MAILMODE_LOG_WARNING,
		          "%s: debug_pause_before_update_ms=%lld in [%s]: pausing "
		          "before the UPDATE (testing aid)", op->domain,
		          (long long)op->cfg->debug_pause_before_update_ms,
		          op->cfg->dns_section);
		host->sleep_ms(host->handle, op->cfg->debug_pause_before_update_ms);
	}
	op->write_attempts = 0;
	outcome = provider->ops->replace_rrset(provider, op->domain, expected,
	                                       replacement);
	if (outcome != GW_REPLACE_OK && outcome != GW_REPLACE_UNKNOWN &&
	    op->write_attempts > 1)
		outcome = retried_refusal(op);
	switch (outcome) {
	case GW_REPLACE_OK:
		rc = MAILMODE_OK;
		break;
	case GW_REPLACE_CONFLICT:
		rc = conflict(op, provider, expected, replacement);
		break;
	case GW_REPLACE_DENIED:
		rc = MAILMODE_ERR_DENIED;
		break;
	case GW_REPLACE_FAILED:
		rc = MAILMODE_ERR_FAILED;
		break;
	case GW_REPLACE_UNKNOWN:
	default:
		rc = settle_unknown(op, provider, expected, replacement);
		break;
	}
out:
	return rc;
}
