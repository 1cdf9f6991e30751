/*
 * Unit tests of the gateway write path (swap.c) and of setup's decision
 * (decide.c) against a mock host with the ABI 1.2 services and a fake DNS
 * provider: the original is kept before anything is sent, the checkpoint
 * comes before the UPDATE and a failed one stops it, an unanswered UPDATE
 * is never "not applied", and a hand-edited set is drift.
 */
#include "provider.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"

/* ---- the mock host: records what the plugin asked of it ------------------ */

static char events[4096];        /* "keep,checkpoint,replace,read,..." */
static char last_checkpoint[4096];
static char last_original[4096];
static int fail_checkpoint, fail_keep;
static int64_t now_ms;

static void event(const char *what)
{
	size_t used = strlen(events);

	snprintf(events + used, sizeof(events) - used, "%s%s", used ? "," : "", what);
}

static void mock_log(void *handle, enum mailmode_log_level level, const char *fmt, ...)
{
	(void)handle;
	(void)level;
	(void)fmt;
}

static void mock_progress(void *handle, const char *fmt, ...)
{
	(void)handle;
	(void)fmt;
}

static void mock_diag_set(struct mailmode_diag *diag, enum mailmode_severity severity,
                          int retryable, const char *fmt, ...)
{
	va_list ap;

	diag->severity = severity;
	diag->retryable = retryable;
	diag->detail[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(diag->summary, sizeof(diag->summary), fmt, ap);
	va_end(ap);
}

static void mock_diag_append(struct mailmode_diag *diag, const char *fmt, ...)
{
	size_t used = strlen(diag->detail);
	va_list ap;

	if (used + 2 >= sizeof(diag->detail))
		return;
	if (used)
		diag->detail[used++] = '\n';
	va_start(ap, fmt);
	vsnprintf(diag->detail + used, sizeof(diag->detail) - used, fmt, ap);
	va_end(ap);
}

static int64_t mock_mono(void *handle)
{
	(void)handle;
	return now_ms;
}

static void mock_sleep(void *handle, int64_t ms)
{
	(void)handle;
	now_ms += ms;
}

static char *mock_strdup(const char *s)
{
	return strdup(s);
}

static int mock_checkpoint(void *handle, const struct mailmode_request *req,
                           const char *receipt, struct mailmode_diag *diag)
{
	(void)handle;
	(void)req;
	event("checkpoint");
	snprintf(last_checkpoint, sizeof(last_checkpoint), "%s", receipt);
	if (fail_checkpoint) {
		mock_diag_set(diag, MAILMODE_SEV_ERROR, 0, "journal: disk full");
		return MAILMODE_ERR_FAILED;
	}
	return MAILMODE_OK;
}

static int mock_keep(void *handle, const struct mailmode_request *req,
                     const char *original, struct mailmode_diag *diag)
{
	(void)handle;
	(void)req;
	event("keep");
	snprintf(last_original, sizeof(last_original), "%s", original);
	if (fail_keep) {
		mock_diag_set(diag, MAILMODE_SEV_ERROR, 0, "state: read-only");
		return MAILMODE_ERR_FAILED;
	}
	return MAILMODE_OK;
}

static struct mailmode_host host = {
	.struct_size = sizeof(struct mailmode_host),
	.log = mock_log,
	.progress = mock_progress,
	.clock_mono_ms = mock_mono,
	.sleep_ms = mock_sleep,
	.strdup = mock_strdup,
	.free = free,
	.diag_set = mock_diag_set,
	.diag_append = mock_diag_append,
	.checkpoint = mock_checkpoint,
	.keep_original = mock_keep,
};

static const struct gw_ctx ctx = { .host = &host };

/* ---- the fake provider --------------------------------------------------- */

static enum gw_replace_outcome replace_outcome;
static int replace_attempts;            /* the write's attempts, as https.c keeps them */
static struct gw_mx_set served;         /* what reads return */
static int reads_fail;                  /* reads failing before one answers */

static int fake_get(struct gw_provider *provider, const char *name,
                    struct gw_rrset_version *version)
{
	(void)name;
	event("read");
	memset(version, 0, sizeof(*version));
	if (reads_fail) {
		reads_fail--;
		mock_diag_set(provider->op->diag, MAILMODE_SEV_ERROR, 1, "no answer within 2 s");
		return MAILMODE_ERR_FAILED;
	}
	version->rrset = served;
	return MAILMODE_OK;
}

static enum gw_replace_outcome fake_replace(struct gw_provider *provider, const char *name,
                                            const struct gw_rrset_version *expected,
                                            const struct gw_mx_set *replacement)
{
	(void)name;
	(void)expected;
	(void)replacement;
	event("replace");
	provider->op->write_attempts = replace_attempts;
	if (replace_outcome == GW_REPLACE_FAILED)
		mock_diag_set(provider->op->diag, MAILMODE_SEV_ERROR, 0,
		              "the provider refused the change (HTTP 400)");
	if (replace_outcome == GW_REPLACE_CONFLICT)
		mock_diag_set(provider->op->diag, MAILMODE_SEV_ERROR, 0,
		              "the MX set changed between our read and our change");
	if (replace_outcome == GW_REPLACE_UNKNOWN)
		mock_diag_set(provider->op->diag, MAILMODE_SEV_ERROR, 1,
		              "no answer from the primary to the UPDATE: outcome unknown");
	return replace_outcome;
}

static const struct gw_provider_ops fake_ops = {
	.name = "fake",
	.get_rrset = fake_get,
	.replace_rrset = fake_replace,
};

/* ---- fixtures ------------------------------------------------------------ */

struct fixture {
	struct mailmode_request req;
	struct mailmode_diag diag;
	struct gw_call call;
	struct gw_provider provider;
	struct gw_rrset_version old;
	struct gw_receipt intent;
};

static void fixture(struct fixture *f, unsigned flags)
{
	char err[128];

	memset(f, 0, sizeof(*f));
	events[0] = last_checkpoint[0] = last_original[0] = '\0';
	fail_checkpoint = fail_keep = reads_fail = 0;
	replace_attempts = 1;
	replace_outcome = GW_REPLACE_OK;
	f->req = (struct mailmode_request){ .struct_size = sizeof(f->req),
	                                    .domain = "example.test", .flags = flags };
	f->call.req = &f->req;
	f->call.op.ctx = &ctx;
	f->call.op.cfg = &f->call.cfg;
	f->call.op.diag = &f->diag;
	f->call.op.domain = "example.test";
	snprintf(f->call.op.zone, sizeof(f->call.op.zone), "example.test");
	f->call.cfg.timeout_s = 2;
	gw_mx_set_parse("10 mx-01.gw.test, 20 mx-02.gw.test", 300, &f->call.cfg.gateway, err,
	                sizeof(err));
	gw_mx_set_parse("10 mx1.example.test, 20 mx2.example.test", 3600, &f->old.rrset, err,
	                sizeof(err));
	f->provider = (struct gw_provider){ .ops = &fake_ops, .op = &f->call.op };
	snprintf(f->intent.zone, sizeof(f->intent.zone), "example.test");
	f->intent.gateway = f->call.cfg.gateway;
	served = f->old.rrset;
}

static int swap(struct fixture *f)
{
	return gw_swap(&f->call, &f->provider, &f->old, &f->call.cfg.gateway, &f->intent,
	               "swapping to the gateway set");
}

/* ---- tests --------------------------------------------------------------- */

static void test_keep_and_checkpoint(struct tap *t)
{
	struct fixture f;

	fixture(&f, 0);
	f.call.has_original = true;
	f.call.original = f.old.rrset;
	tap_is_int(t, gw_keep_original(&f.call), MAILMODE_OK, "the original is kept");
	tap_contains(t, last_original, "\"mx\":[{\"pref\":10,\"host\":\"mx1.example.test.\",\"ttl\":3600}",
	             "the host gets the original with its TTLs");
	tap_is_int(t, swap(&f), MAILMODE_OK, "the swap succeeds");
	tap_is_str(t, events, "keep,checkpoint,replace", "kept, then checkpointed, then sent");
	tap_contains(t, last_checkpoint, "\"write\":{\"object\":\"MX example.test\",\"doing\":\"swapping",
	             "the checkpoint names the UPDATE in flight");
	events[0] = '\0';
	tap_is_int(t, gw_keep_original(&f.call), MAILMODE_OK, "keeping it again");
	tap_is_str(t, events, "", "is not asked of the host twice");

	fixture(&f, 0);
	f.call.has_original = true;
	fail_keep = 1;
	tap_ok(t, gw_keep_original(&f.call) != MAILMODE_OK, "a host that cannot keep the original fails it");

	fixture(&f, 0);
	fail_checkpoint = 1;
	tap_ok(t, swap(&f) != MAILMODE_OK, "a failed checkpoint fails the swap");
	tap_is_str(t, events, "checkpoint", "and nothing is sent");

	fixture(&f, 0);
	host.struct_size = offsetof(struct mailmode_host, checkpoint);
	tap_is_int(t, swap(&f), MAILMODE_OK, "a host from before ABI 1.2: the swap still runs");
	tap_is_str(t, events, "replace", "without a checkpoint");
	host.struct_size = sizeof(struct mailmode_host);
}

static void test_unknown(struct tap *t)
{
	struct fixture f;

	fixture(&f, 0);
	replace_outcome = GW_REPLACE_UNKNOWN;
	tap_is_int(t, swap(&f), MAILMODE_ERR_UNKNOWN, "no answer, the re-read shows the old set: unknown");
	tap_contains(t, f.diag.summary, "the UPDATE may still be applied: a re-read shows the old MX set",
	             "it says the UPDATE may still land");
	tap_ok(t, !strstr(f.diag.summary, "not applied") && !strstr(f.diag.detail, "not applied"),
	       "never 'not applied'");

	fixture(&f, 0);
	replace_outcome = GW_REPLACE_UNKNOWN;
	served = f.call.cfg.gateway;
	tap_is_int(t, swap(&f), MAILMODE_OK, "no answer, the re-read shows the new set: ours");

	fixture(&f, 0);
	replace_outcome = GW_REPLACE_UNKNOWN;
	reads_fail = 2;
	tap_is_int(t, swap(&f), MAILMODE_ERR_UNKNOWN, "re-reads failing, then answering the old set: unknown");
	tap_is_str(t, events, "checkpoint,replace,read,read,read", "re-read until the primary answers");

	fixture(&f, 0);
	replace_outcome = GW_REPLACE_UNKNOWN;
	reads_fail = 1000000;
	now_ms = 0;
	tap_is_int(t, swap(&f), MAILMODE_ERR_UNKNOWN, "the primary silent: unknown");
	tap_ok(t, now_ms >= 6000 && now_ms < 6500, "the re-reads stop after 3 timeouts");
	tap_contains(t, f.diag.summary, "the primary did not answer the re-reads either", "and say so");
}

/* A fixture whose replace answers `outcome` after `attempts` (https.c's
 * count), reads serving the new set when `new_live`. */
static void answered(struct fixture *f, enum gw_replace_outcome outcome, int attempts,
                     bool new_live)
{
	fixture(f, 0);
	replace_outcome = outcome;
	replace_attempts = attempts;
	if (new_live)
		served = f->call.cfg.gateway;
}

/* A refusal of a write sent more than once, and a conflict with our own
 * set live (the seam's rules for every provider). */
static void test_retried(struct tap *t)
{
	struct fixture f;

	answered(&f, GW_REPLACE_FAILED, 1, false);
	tap_is_int(t, swap(&f), MAILMODE_ERR_FAILED, "a refusal of a write sent once: failed");

	answered(&f, GW_REPLACE_FAILED, 2, false);
	tap_is_int(t, swap(&f), MAILMODE_ERR_UNKNOWN,
	           "refused after a retry, the re-read shows the old set: unknown");
	tap_contains(t, f.diag.summary, "refused the change (HTTP 400), but the host had sent it 2 "
	             "times and an earlier attempt may have been applied: outcome unknown",
	             "it keeps the refusal and says why it is not trusted");
	tap_is_str(t, events, "checkpoint,replace,read", "it re-read the set");

	answered(&f, GW_REPLACE_DENIED, 3, true);
	tap_is_int(t, swap(&f), MAILMODE_OK, "refused after retries, the new set live: ours");
	tap_is_int(t, f.diag.severity, MAILMODE_SEV_WARNING, "with a warning");

	answered(&f, GW_REPLACE_CONFLICT, 1, true);
	tap_is_int(t, swap(&f), MAILMODE_OK, "a conflict with our own set live: an earlier copy landed");
	tap_contains(t, f.diag.summary, "an earlier copy of this write landed", "and says so");

	answered(&f, GW_REPLACE_CONFLICT, 1, false);
	tap_is_int(t, swap(&f), MAILMODE_ERR_CONFLICT, "a conflict with another set live: conflict");

	answered(&f, GW_REPLACE_CONFLICT, 0, true);
	tap_is_int(t, swap(&f), MAILMODE_ERR_CONFLICT,
	           "an RFC 2136 UPDATE (sent once, no attempts counted) refused with our set live: conflict");
}

static void test_decide(struct tap *t)
{
	struct fixture f;
	enum gw_live_kind kind;
	struct gw_mx_set live;
	char err[128];

	fixture(&f, 0);
	tap_ok(t, gw_setup_decide(&f.call, &f.old.rrset, &kind) == MAILMODE_OK && kind == GW_LIVE_FRESH,
	       "no receipt, no original: the live set is the original");

	f.call.has_receipt = true;
	f.call.receipt.gateway = f.call.cfg.gateway;
	f.call.has_original = true;
	f.call.original = f.old.rrset;
	tap_ok(t, gw_setup_decide(&f.call, &f.old.rrset, &kind) == MAILMODE_OK &&
	              kind == GW_LIVE_ORIGINAL,
	       "the original live again: swap");
	tap_ok(t, gw_setup_decide(&f.call, &f.call.cfg.gateway, &kind) == MAILMODE_OK &&
	              kind == GW_LIVE_GATEWAY,
	       "the gateway set live: no change");
	gw_mx_set_parse("10 mx-01.gw.test, 20 mx-02.gw.test", 60, &live, err, sizeof(err));
	tap_ok(t, gw_setup_decide(&f.call, &live, &kind) == MAILMODE_OK && kind == GW_LIVE_OURS,
	       "the gateway records with other TTLs: ours, swapped back");
	gw_mx_set_parse("10 mx-01.gw.test, 30 rogue.example.test", 300, &live, err, sizeof(err));
	tap_is_int(t, gw_setup_decide(&f.call, &live, &kind), MAILMODE_ERR_CONFLICT,
	           "a hand-edited set is drift: refused");
	tap_contains(t, f.diag.summary, "(extra: 30 rogue.example.test. (ttl 300); missing: 20 mx-02.gw.test. (ttl 300))",
	             "the refusal names the difference");
	f.req.flags = MAILMODE_REQ_FORCE;
	tap_ok(t, gw_setup_decide(&f.call, &live, &kind) == MAILMODE_OK && kind == GW_LIVE_DRIFT,
	       "forced: allowed, still drift (the original is not replaced)");
}

int main(void)
{
	struct tap t = { 0 };

	tap_plan(38);
	test_keep_and_checkpoint(&t);
	test_unknown(&t);
	test_retried(&t);
	test_decide(&t);
	return tap_done(&t);
}
