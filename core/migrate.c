/* The steps of a migration and how they are journaled, resumed and rolled
 * back.  The public entries (and their checks before anything changes)
 * are in migrate_entry.c. */
#include "migrate_internal.h"

#include "http.h"
#include "num.h"
#include "prepare.h"
#include "state_runs.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const step_names[] = {
	"setup_new", "verify_new", "finish_new", "teardown_old", "confirm_old_gone",
	"rollback_teardown_new", "rollback_confirm_new_gone", "adopt_confirm"
};

static const char *const kind_names[] = { "switch", "setup", "teardown", "adopt" };

/* The first re-check comes this soon: a change usually reaches every
 * server within a NOTIFY and a transfer, so waiting a whole poll interval
 * first would only add latency.  Waits then double up to the interval. */
#define FIRST_RECHECK_MS 100L
/* A setup not ready yet waits for writes to show, seconds at least: each
 * call reads the tenant's objects again. */
#define FIRST_SETUP_RECHECK_MS 1000L
/* The engine's bound on a plugin that keeps deferring its setup. */
#define SETUP_DEFER_MAX_MS (60L * 60 * 1000)

/* A shared lock outlives the call holding it by at most this much: an
 * isolated call ends at the plugin's call_timeout (its helper is killed),
 * and the lock goes with it.  Checkpoints renew it (a call run without
 * isolation has no deadline). */
#define SHARED_LEASE_MARGIN_MS (60L * 1000)

/* Wall-clock milliseconds: deadlines are stored and outlive the process. */
long long mm_migrate_now_ms(void)
{
	return mm_host_wall_ms(NULL);
}

const char *mm_migrate_kind_name(enum mm_kind kind)
{
	return kind_names[kind];
}

int mm_migrate_kind_parse(const char *name, enum mm_kind *kind)
{
	size_t i;

	for (i = 0; i < sizeof(kind_names) / sizeof(kind_names[0]); i++)
		if (name && strcmp(name, kind_names[i]) == 0) {
			*kind = (enum mm_kind)i;
			return MM_OK;
		}
	return MM_ERR;
}

void mm_engine_progress(const struct mm_engine *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (e->slot >= 0)
		mm_board_vset(e->output, e->slot, fmt, ap);
	else
		mm_vprogress(e->output, fmt, ap);
	va_end(ap);
}

static void engine_progress_end(const struct mm_engine *e)
{
	if (e->slot < 0)
		mm_progress_end(e->output);
}

static int journal(struct mm_run *r, enum mm_step step, const char *phase, const char *detail)
{
	return mm_state_journal(r->e->state, r->m->id, step_names[step], phase, detail, r->err);
}

static int journal_has(struct mm_run *r, const char *step, const char *phase, int *has)
{
	return mm_state_journal_has(r->e->state, r->m->id, step, phase, has, r->err);
}

static int step_done(struct mm_run *r, enum mm_step step, int *done)
{
	return journal_has(r, step_names[step], "end", done);
}

/* ------------------------------------------------------------------ */
/* Plugin calls, with what they record (ABI 1.2 checkpoint and
 * keep_original) kept aside until the call returns: the plugin may read
 * req->receipt and req->original until then. */

static long shared_lease_ms(const struct mm_op *op)
{
	return op->plugin->call_timeout_ms + SHARED_LEASE_MARGIN_MS;
}

/* Until the wall clock reads until: parked by the engine's wait hook (a
 * runbook's worker runs other domains meanwhile), else asleep. */
static void wait_until(struct mm_run *r, long long until)
{
	long long now = mm_migrate_now_ms();

	if (now >= until)
		return;
	if (r->e->wait)
		r->e->wait(r->e, until);
	else
		mm_host_sleep_ms(NULL, until - now);
}

static void waiting_shared(void *arg, const char *resource, const char *holder)
{
	const struct mm_run *r = arg;

	mm_engine_progress(r->e, "%s: waiting for %s, held by %s", r->m->domain, resource, holder);
}

/* Between two tries for a lock another process holds: parked like a
 * verify poll, and back on whichever connection the wait hook hands over. */
static struct mm_state *pause_shared(void *arg, long ms)
{
	struct mm_run *r = arg;

	wait_until(r, mm_migrate_now_ms() + ms);
	return r->e->state;
}

static int lock_shared(const struct mm_op *op, const char *resources, char *err)
{
	struct mm_run *r = op->recorder->arg;
	const struct mm_lock_waiter waiter = { waiting_shared, r->e->wait ? pause_shared : NULL, r };
	char notice[1024];
	int rc = mm_state_lock_shared(r->e->state, resources, r->m->domain, r->e->command,
	                              shared_lease_ms(op), r->e->lock_wait_ms, &waiter, notice,
	                              sizeof(notice), err);

	if (rc == MM_OK && notice[0])
		mm_log(r->e->output, MAILMODE_LOG_WARNING, "%s", notice);
	return rc;
}

static void unlock_shared(const struct mm_op *op, const char *resources)
{
	struct mm_run *r = op->recorder->arg;
	char err[MM_ERR_MAX];

	/* A lock that could not be let go is taken over once this process
	 * is gone or its lease ran out. */
	if (mm_state_unlock_shared(r->e->state, resources, err) != MM_OK)
		mm_log(r->e->output, MAILMODE_LOG_WARNING, "%s", err);
}

static int record_checkpoint(const struct mm_op *op, const char *receipt, char *err)
{
	struct mm_run *r = op->recorder->arg;
	int old = op->recorder == &r->rec_old;
	char *copy = strdup(receipt);
	int rc;

	if (!copy) {
		snprintf(err, MM_ERR_MAX, "out of memory");
		return MM_ERR;
	}
	/* The lease first: once the lock was taken over the plugin must not
	 * write, and the journal must not keep a checkpoint of a write that
	 * never happened. */
	rc = mm_state_renew_shared(r->e->state, shared_lease_ms(op), err);
	if (rc == MM_OK)
		rc = mm_state_migration_set_receipt(r->e->state, r->m->id, old, receipt,
		                                    "checkpoint", err);
	if (rc != MM_OK) {
		free(copy);
		return rc;
	}
	free(r->pending_receipt);
	r->pending_receipt = copy;
	r->call_recorded = 1;
	return MM_OK;
}

static int record_original(const struct mm_op *op, const char *snapshot, char *err)
{
	struct mm_run *r = op->recorder->arg;
	int kept = 0, rc;

	rc = mm_state_keep_original(r->e->state, r->m->id, r->m->domain, op->plugin->desc->name,
	                            snapshot, &kept, err);
	if (rc == MM_OK)
		rc = mm_state_renew_shared(r->e->state, shared_lease_ms(op), err);
	if (rc == MM_OK && kept && !r->pending_original && !(r->pending_original = strdup(snapshot))) {
		snprintf(err, MM_ERR_MAX, "out of memory");
		rc = MM_ERR;
	}
	r->call_recorded = 1;
	return rc;
}

/* Shared notes: the lease first, as for a checkpoint: a call whose lock
 * was taken over must neither build on a note nor leave one. */
static int note_load(const struct mm_op *op, const char *resource, const char *key, char **text,
                     char *err)
{
	struct mm_run *r = op->recorder->arg;
	int rc = mm_state_renew_shared(r->e->state, shared_lease_ms(op), err);

	return rc == MM_OK ? mm_state_note_load(r->e->state, resource, key, text, err) : rc;
}

static int note_store(const struct mm_op *op, const char *resource, const char *key,
                      const char *text, char *err)
{
	struct mm_run *r = op->recorder->arg;
	int rc = mm_state_renew_shared(r->e->state, shared_lease_ms(op), err);

	return rc == MM_OK ? mm_state_note_store(r->e->state, resource, key, text, r->m->domain, err)
	                   : rc;
}

struct mm_op mm_run_op(struct mm_run *r, int old, unsigned flags, int recording)
{
	struct mm_op op = {
		.plugin = old ? r->old_plugin : r->new_plugin,
		.domain = r->m->domain,
		.profile = r->m->profile,
		.receipt = old ? r->m->old_receipt : r->m->new_receipt,
		.original = old ? r->original_old : r->original_new,
		.flags = flags,
		.limiter = r->e->limiter,
		.waiter = r->e->waiter.away ? &r->e->waiter : NULL,
		.recorder = recording ? (old ? &r->rec_old : &r->rec_new) : NULL,
		.unknown = &r->call_unknown,
		.accepted_conflicts = old ? NULL : r->opts.accept_conflicts,
		.prepared = old ? NULL : r->prepared_new,
	};

	if (old && r->m->old_adopted)
		op.flags |= MAILMODE_REQ_ADOPTED;
	return op;
}

static void call_begin(struct mm_run *r)
{
	r->call_recorded = 0;
	r->call_unknown = 0;
}

/* A plugin built before ABI 1.2 records nothing, so any failed call of it
 * may have changed something. */
static int call_may_have_changed(const struct mm_run *r, const struct mm_plugin *p)
{
	return r->call_recorded || r->call_unknown || p->desc->abi_minor < 2;
}

static void call_end(struct mm_run *r, int old)
{
	char **receipt = old ? &r->m->old_receipt : &r->m->new_receipt;
	char **original = old ? &r->original_old : &r->original_new;

	if (r->pending_receipt) {
		free(*receipt);
		*receipt = r->pending_receipt;
		r->pending_receipt = NULL;
	}
	if (r->pending_original) {
		free(*original);
		*original = r->pending_original;
		r->pending_original = NULL;
	}
	if (r->call_recorded || r->call_unknown)
		r->step_changed = 1;
}

static int run_teardown_call(struct mm_run *r, int old, unsigned flags, struct mailmode_diag *diag)
{
	struct mm_op op = mm_run_op(r, old, flags, 1);
	int rc;

	call_begin(r);
	rc = mm_op_teardown(&op, diag);
	if (rc != MM_OK && call_may_have_changed(r, op.plugin))
		r->step_changed = 1;
	call_end(r, old);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Polled conditions */

/* One poll of a condition: MM_OK when met, MM_UNVERIFIED when not yet,
 * anything else when it cannot be met by waiting. */
typedef int (*check_fn)(struct mm_run *r, int old, struct mailmode_diag *diag);

static int check_verified(struct mm_run *r, int old, struct mailmode_diag *diag)
{
	struct mm_op op = mm_run_op(r, old, 0, 0);
	char *report = NULL;
	int rc = mm_op_verify(&op, &report, diag);

	/* A verify not passed yet may still say what its mode waits for. */
	if (report) {
		cJSON *root = cJSON_Parse(report);
		cJSON *settle = cJSON_GetObjectItem(root, "settle_until_ms");

		int64_t until = 0;

		/* An out-of-range double cast to an integer is undefined. */
		if (!cJSON_IsNumber(settle) ||
		    mm_num_from_double(settle->valuedouble, 0, MM_NUM_EPOCH_MS_MAX, &until) != 0)
			until = 0;
		r->settle_until_ms = until;
		r->finish_wanted = cJSON_IsTrue(cJSON_GetObjectItem(root, "finish_after_settle"));
		cJSON_Delete(root);
	}
	free(report);
	if (rc == MM_OK || rc == MM_UNVERIFIED || diag->retryable)
		return rc == MM_OK ? MM_OK : MM_UNVERIFIED;
	return rc;
}

/* Gone from every server or from the tenant.  When the world disagrees
 * with the journal (a change whose answer was lost landed after the
 * teardown read the world), the teardown runs again. */
static int check_gone(struct mm_run *r, int old, struct mailmode_diag *diag)
{
	struct mm_op op = mm_run_op(r, old, 0, 0);
	enum mailmode_presence presence;
	struct mailmode_diag again;
	char *report = NULL, seen[MAILMODE_DIAG_SUMMARY_MAX];
	int rc = mm_op_observe(&op, &presence, &report, diag);

	free(report);
	if (rc != MM_OK) {
		diag->retryable = 1;
		return MM_UNVERIFIED;      /* cannot see it: keep asking */
	}
	if (presence == MAILMODE_ABSENT)
		return MM_OK;
	snprintf(seen, sizeof(seen), "%s", diag->summary);
	rc = run_teardown_call(r, old, 0, &again);
	mm_diag_set(diag, MAILMODE_SEV_WARNING, 1, "%s mode is still %s for %s%s%s: tearing it down again (%s)",
	            op.plugin->desc->name, mm_presence_name(presence), r->m->domain,
	            seen[0] ? ": " : "", seen, rc == MM_OK ? "done" : again.summary);
	return MM_UNVERIFIED;
}

/* Teardown as a condition: a retryable failure (an answer that did not
 * come, an object not listed yet) is tried again until the deadline. */
static int check_torn_down(struct mm_run *r, int old, struct mailmode_diag *diag)
{
	unsigned flags = old && r->opts.force ? MAILMODE_REQ_FORCE : 0;
	int rc = run_teardown_call(r, old, flags, diag);

	if (rc == MM_OK)
		return MM_OK;
	return diag->retryable ? MM_UNVERIFIED : rc;
}

static void show_attempt(struct mm_run *r, const char *what, int attempt, const char *summary)
{
	long long elapsed = (mm_migrate_now_ms() - r->started_ms) / 1000;

	if (elapsed < 0)
		elapsed = 0;
	mm_engine_progress(r->e, "%s: %s: attempt %d, %lld:%02lld elapsed: %s", r->m->domain, what,
	                   attempt, elapsed / 60, elapsed % 60, summary);
}

/* Polls check until it passes or the deadline passes, waiting 100 ms,
 * then twice as long each time up to the poll interval; the last attempt
 * is made at the deadline.  Attempts share one journal row. */
static int poll(struct mm_run *r, enum mm_step step, check_fn check, int old, long long deadline,
                const char *what, struct mailmode_diag *diag)
{
	long long max_interval = r->opts.poll_interval_ms;
	long long interval = FIRST_RECHECK_MS < max_interval ? FIRST_RECHECK_MS : max_interval;
	int attempt = 0, rc;

	for (;;) {
		long long now;

		attempt++;
		if (step == MM_STEP_VERIFY_NEW)
			r->report->verify_attempts++;
		rc = check(r, old, diag);
		now = mm_migrate_now_ms();
		if (rc == MM_OK) {
			engine_progress_end(r->e);
			return MM_OK;
		}
		if (journal(r, step, "attempt", diag->summary) != MM_OK)
			return MM_ERR;
		show_attempt(r, what, attempt, diag->summary);
		if (rc != MM_UNVERIFIED || now >= deadline) {
			engine_progress_end(r->e);
			return rc;
		}
		wait_until(r, now + interval < deadline ? now + interval : deadline);
		interval = interval * 2 > max_interval ? max_interval : interval * 2;
	}
}

/* ------------------------------------------------------------------ */
/* Ends */

static const char *none_if_null(const char *mode)
{
	return mode ? mode : "none";
}

static int close_migration(struct mm_run *r, const char *result, const char *outcome)
{
	char detail[256];

	snprintf(detail, sizeof(detail), "%s -> %s", none_if_null(r->m->from_mode),
	         none_if_null(r->m->to_mode));
	if (mm_state_migration_close(r->e->state, r->m->id, result, detail, r->err) != MM_OK)
		return MM_ERR;
	r->report->outcome = outcome;
	return MM_OK;
}

/* The step failed before the plugin changed anything: the migration is
 * closed and the domain stays as it was. */
static int nothing_changed(struct mm_run *r, enum mm_step step, int rc,
                           const struct mailmode_diag *diag, const char *what)
{
	char err[MM_ERR_MAX];

	r->report->step = step_names[step];
	r->report->diag = *diag;
	if (journal(r, step, "fail", diag->summary) != MM_OK ||
	    close_migration(r, "failed", NULL) != MM_OK)
		return MM_ERR;
	snprintf(err, sizeof(err), "%s: %s: %s; nothing was changed", r->m->domain, what,
	         diag->summary);
	snprintf(r->err, MM_ERR_MAX, "%s", err);
	return rc == MM_OK ? MM_ERR : rc;
}

static int unfinished(struct mm_run *r, enum mm_step step, int rc, const struct mailmode_diag *diag,
                      const char *what)
{
	if (journal(r, step, "fail", diag->summary) != MM_OK)
		return MM_ERR;
	r->report->outcome = "unfinished";
	r->report->step = step_names[step];
	r->report->diag = *diag;
	snprintf(r->err, MM_ERR_MAX, "%s: %s: %s; the %s is unfinished: fix it, then run 'mailmode resume %s'",
	         r->m->domain, what, diag->summary, kind_names[r->kind], r->m->domain);
	return rc == MM_OK || rc == MM_UNVERIFIED ? MM_ERR : rc;
}

/* ------------------------------------------------------------------ */
/* Rollback */

static int rollback_teardown(struct mm_run *r, struct mailmode_diag *diag)
{
	enum mailmode_presence presence = MAILMODE_PRESENT;
	struct mm_op op = mm_run_op(r, 0, 0, 0);
	char *report = NULL;
	int rc;

	if ((rc = journal(r, MM_STEP_ROLLBACK_TEARDOWN_NEW, "begin", NULL)) != MM_OK)
		return rc;
	mm_engine_progress(r->e, "%s: rolling back %s mode", r->m->domain, r->m->to_mode);
	/* A setup that failed before it changed anything left nothing to
	 * undo (and no receipt to undo it with); anything else is torn
	 * down, even when it looks absent: a new object may not be listed
	 * yet. */
	rc = mm_op_observe(&op, &presence, &report, diag);
	free(report);
	if (r->m->new_receipt || rc != MM_OK || presence != MAILMODE_ABSENT)
		rc = poll(r, MM_STEP_ROLLBACK_TEARDOWN_NEW, check_torn_down, 0,
		          mm_migrate_now_ms() + r->opts.verify_timeout_ms, "rolling back", diag);
	if (rc != MM_OK)
		return unfinished(r, MM_STEP_ROLLBACK_TEARDOWN_NEW, rc, diag,
		                  "rollback: teardown of the new mode failed");
	return journal(r, MM_STEP_ROLLBACK_TEARDOWN_NEW, "end", NULL);
}

static int rollback_confirm(struct mm_run *r, struct mailmode_diag *diag)
{
	int rc;

	if ((rc = journal(r, MM_STEP_ROLLBACK_CONFIRM_NEW_GONE, "begin", NULL)) != MM_OK)
		return rc;
	rc = poll(r, MM_STEP_ROLLBACK_CONFIRM_NEW_GONE, check_gone, 0,
	          mm_migrate_now_ms() + r->opts.verify_timeout_ms,
	          "waiting for the new mode to be gone", diag);
	if (rc != MM_OK)
		return unfinished(r, MM_STEP_ROLLBACK_CONFIRM_NEW_GONE, rc, diag,
		                  "rollback: the new mode could not be confirmed gone");
	return journal(r, MM_STEP_ROLLBACK_CONFIRM_NEW_GONE, "end", NULL);
}

/* Undoes the new mode; the domain keeps its old one.  "rolled back" is
 * said only once observe confirms nothing of the new mode is left; the
 * result is then rc_after. */
/* A rollback that cannot finish says so, and what it was undoing: the
 * admin needs both to decide. */
static int rollback_steps(struct mm_run *r, struct mailmode_diag *diag)
{
	int done, rc;

	if ((rc = step_done(r, MM_STEP_ROLLBACK_TEARDOWN_NEW, &done)) != MM_OK)
		return rc;
	if (!done && (rc = rollback_teardown(r, diag)) != MM_OK)
		return rc;
	if ((rc = step_done(r, MM_STEP_ROLLBACK_CONFIRM_NEW_GONE, &done)) != MM_OK)
		return rc;
	return done ? MM_OK : rollback_confirm(r, diag);
}

int mm_run_rollback(struct mm_run *r, int rc_after)
{
	struct mailmode_diag diag = { 0 };
	char cause[MAILMODE_DIAG_SUMMARY_MAX];
	size_t len;
	int aborted, rc;

	snprintf(cause, sizeof(cause), "%s", r->report->diag.summary);
	if ((rc = rollback_steps(r, &diag)) != MM_OK) {
		len = strlen(r->err);
		if (cause[0] && len < MM_ERR_MAX - 1)
			snprintf(r->err + len, MM_ERR_MAX - len, " (it was rolling back after: %s)", cause);
		return rc;
	}
	if ((rc = journal_has(r, "abort", "end", &aborted)) != MM_OK)
		return rc;
	rc = close_migration(r, aborted ? "aborted" : "rolled_back", aborted ? "aborted" : "rolled back");
	return rc == MM_OK ? rc_after : rc;
}

/* ------------------------------------------------------------------ */
/* Forward steps */

/* A plain setup whose write went unanswered stays open: finishing it
 * (resume) or undoing it (abort) waits for the world to answer, and that
 * is the admin's call, not a wait of many minutes here. */
static int setup_unknown(struct mm_run *r, int rc)
{
	const struct mailmode_diag *diag = &r->report->diag;

	if (journal(r, MM_STEP_SETUP_NEW, "unknown", diag->summary) != MM_OK)
		return MM_ERR;
	r->report->outcome = "unfinished";
	r->report->step = step_names[MM_STEP_SETUP_NEW];
	snprintf(r->err, MM_ERR_MAX,
	         "%s: setup of %s mode: the outcome is unknown: %s; run 'mailmode resume %s' to finish it or 'mailmode abort %s' to undo it",
	         r->m->domain, r->m->to_mode, diag->summary, r->m->domain, r->m->domain);
	return rc == MM_OK || rc == MM_UNVERIFIED ? MM_ERR : rc;
}

static int setup_failed(struct mm_run *r, int rc)
{
	const struct mailmode_diag *diag = &r->report->diag;

	if (!r->step_changed)
		return nothing_changed(r, MM_STEP_SETUP_NEW, rc, diag, "setup failed");
	if (r->kind == MM_KIND_SETUP && r->call_unknown)
		return setup_unknown(r, rc);
	if (r->kind == MM_KIND_SETUP && r->m->from_mode)
		/* Set up again over a live mode: undoing it would remove the
		 * mode the domain has. */
		return unfinished(r, MM_STEP_SETUP_NEW, rc, diag, "setting it up again failed");
	r->report->step = step_names[MM_STEP_SETUP_NEW];
	snprintf(r->err, MM_ERR_MAX, "%s: setup of %s mode failed%s: %s; rolled back, %s stays %s",
	         r->m->domain, r->m->to_mode, r->call_unknown ? " (outcome unknown)" : "",
	         diag->summary, r->m->domain,
	         r->m->from_mode ? r->m->from_mode : "without a mode");
	if (journal(r, MM_STEP_SETUP_NEW, "fail", diag->summary) != MM_OK)
		return MM_ERR;
	return mm_run_rollback(r, MM_UNVERIFIED);
}

/* One call of the new mode's setup; *receipt: its receipt on success. */
static int setup_once(struct mm_run *r, long long deferred_since, char **receipt)
{
	unsigned flags = MAILMODE_REQ_DEFERRABLE | (r->opts.force ? MAILMODE_REQ_FORCE : 0);
	struct mm_op op = mm_run_op(r, 0, flags, 1);
	int rc;

	op.deferred_since_ms = deferred_since;
	call_begin(r);
	rc = mm_op_setup(&op, receipt, &r->report->diag);
	if (rc != MM_OK && call_may_have_changed(r, op.plugin))
		r->step_changed = 1;
	call_end(r, 0);
	return rc;
}

/* Setup, called again while it says what it made is not visible yet
 * (MAILMODE_REQ_DEFERRABLE; the plugin bounds that wait): between calls
 * the domain waits like a verify poll (parked in a runbook, its tenant
 * slot and lock let go); each call gets the receipt of the last one's
 * writes.  A plugin deferring for longer than SETUP_DEFER_MAX_MS fails. */
static int run_setup(struct mm_run *r)
{
	long long interval = FIRST_SETUP_RECHECK_MS, since = 0, now;
	char *receipt = NULL;
	int attempt = 0, rc;

	if ((rc = journal(r, MM_STEP_SETUP_NEW, "begin", NULL)) != MM_OK)
		return rc;
	mm_engine_progress(r->e, "%s: setting up %s mode", r->m->domain, r->m->to_mode);
	r->step_changed = 0;
	for (;;) {
		rc = setup_once(r, since, &receipt);
		now = mm_migrate_now_ms();
		if (rc != MM_UNVERIFIED || !r->report->diag.retryable ||
		    (since && now - since >= SETUP_DEFER_MAX_MS))
			break;
		if (!since)
			since = now;
		if (journal(r, MM_STEP_SETUP_NEW, "attempt", r->report->diag.summary) != MM_OK)
			return MM_ERR;
		show_attempt(r, "setting up", ++attempt, r->report->diag.summary);
		wait_until(r, now + interval);
		interval = interval * 2 > r->opts.poll_interval_ms ? r->opts.poll_interval_ms
		                                                  : interval * 2;
	}
	engine_progress_end(r->e);
	if (rc != MM_OK) {
		free(receipt);
		return setup_failed(r, rc);
	}
	mm_print_diag(r->e->output, &r->report->diag);
	free(r->m->new_receipt);
	r->m->new_receipt = receipt;
	if ((rc = mm_state_migration_set_receipt(r->e->state, r->m->id, 0, receipt, NULL,
	                                         r->err)) != MM_OK)
		return rc;
	return journal(r, MM_STEP_SETUP_NEW, "end", NULL);
}

struct settle_scan {
	long long until;   /* the last settle row's deadline, 0: none */
};

static int scan_settle(const struct mm_journal_row *row, void *arg)
{
	struct settle_scan *scan = arg;
	long until;

	/* Stored text is input: a deadline that is no timestamp is none. */
	if (strcmp(row->phase, "settle") == 0 && row->detail &&
	    strncmp(row->detail, "until ", 6) == 0 &&
	    mm_num_parse_long(row->detail + 6, 1, (long)MM_NUM_EPOCH_MS_MAX, &until) == 0)
		scan->until = until;
	return MM_OK;
}

/* What the journal says of the settle wait: *over when it is behind (a
 * switch's wait comes before verify_new's end, and the last stage does not
 * wait it again), else *until its recorded deadline (0: none recorded), so
 * that a resumed wait continues where it stopped: a --max-settle cap is
 * not waited whole again. */
static int settle_recorded(struct mm_run *r, int finishing, int *over, long long *until)
{
	struct settle_scan scan = { 0 };
	int rc;

	*over = 0;
	*until = 0;
	if (finishing && r->kind == MM_KIND_SWITCH && r->m->from_mode &&
	    ((rc = step_done(r, MM_STEP_VERIFY_NEW, over)) != MM_OK || *over))
		return rc;
	if ((rc = mm_runs_each_journal(r->e->state, r->m->id, scan_settle, &scan, r->err)) != MM_OK)
		return rc;
	*until = scan.until;
	return MM_OK;
}

/* The old mode stays while the world may still act on what the new mode's
 * setup replaced (plugin.h: settle_until_ms; prepare.h: a prepared TTL,
 * --max-settle); so does the new mode's last stage (finish_after_settle),
 * with or without an old mode.  Once per migration: a capped wait is not
 * waited again before the last stage, nor after a restart.  Its deadline
 * is journaled with it. */
static int settle(struct mm_run *r, int finishing)
{
	long long now, until;
	char detail[64];
	int over, rc;

	r->e->verified = 1;
	if (!(finishing || (r->kind == MM_KIND_SWITCH && r->m->from_mode)))
		return MM_OK;
	if ((rc = settle_recorded(r, finishing, &over, &until)) != MM_OK || over)
		return rc;
	if (!until)
		until = r->m->from_mode ? mm_prepare_settle_until(r) : r->settle_until_ms;
	if (mm_migrate_now_ms() >= until)
		return MM_OK;
	/* Journaled: a run's report shows the wait apart from verification. */
	snprintf(detail, sizeof(detail), "until %lld", until);
	if ((rc = journal(r, finishing ? MM_STEP_FINISH_NEW : MM_STEP_VERIFY_NEW, "settle",
	                  detail)) != MM_OK)
		return rc;
	while ((now = mm_migrate_now_ms()) < until) {
		long long left = until - now;

		if (r->m->from_mode)
			mm_engine_progress(r->e, "%s: %s mode verified; keeping %s mode %lld s more while caches of the replaced records expire",
			                   r->m->domain, r->m->to_mode, r->m->from_mode, (left + 999) / 1000);
		else
			mm_engine_progress(r->e, "%s: %s mode verified; its last stage waits %lld s more while caches of the replaced records expire",
			                   r->m->domain, r->m->to_mode, (left + 999) / 1000);
		/* Parked, a domain waits it whole; asleep, the count goes down. */
		wait_until(r, r->e->wait || left < 1000 ? until : now + 1000);
	}
	return MM_OK;
}

/* A plain setup that is not in effect everywhere yet stays open: waiting
 * longer (resume) or undoing it (abort) is the admin's choice. */
static int setup_not_in_effect(struct mm_run *r)
{
	if (journal(r, MM_STEP_VERIFY_NEW, "timeout", r->report->diag.summary) != MM_OK)
		return MM_ERR;
	r->report->outcome = "unfinished";
	r->report->step = step_names[MM_STEP_VERIFY_NEW];
	snprintf(r->err, MM_ERR_MAX,
	         "%s: %s mode is set up but not in effect everywhere after %lds: %s; run 'mailmode resume %s' to wait again or 'mailmode abort %s' to undo it",
	         r->m->domain, r->m->to_mode, r->opts.verify_timeout_ms / 1000,
	         r->report->diag.summary, r->m->domain, r->m->domain);
	return MM_UNVERIFIED;
}

/* --no-wait waits for nothing, so a last stage that must wait for the
 * settle (the gateway's lock-down) is not run: one verify read says
 * whether the new mode has one, and the admin is told, in the output and
 * the journal, how to run it later. */
static int no_wait_finish(struct mm_run *r)
{
	struct mailmode_diag diag = { 0 };
	char line[MM_ERR_MAX];

	r->finish_wanted = 0;
	(void)check_verified(r, 0, &diag);
	if (!r->finish_wanted)
		return MM_OK;
	snprintf(line, sizeof(line),
	         "%s mode's last stage (applied once caches of the replaced records expire: gateway mode's lock-down) was not run: --no-wait waits for nothing; run 'mailmode setup %s' once they have expired to apply it",
	         r->m->to_mode, r->m->domain);
	mm_log(r->e->output, MAILMODE_LOG_WARNING, "%s: %s", r->m->domain, line);
	return journal(r, MM_STEP_FINISH_NEW, "skipped", line);
}

static int run_verify(struct mm_run *r)
{
	long long deadline = r->m->verify_deadline;
	int rc;

	if (r->opts.no_wait)
		return no_wait_finish(r);
	if (r->resumed || deadline <= mm_migrate_now_ms())
		deadline = mm_migrate_now_ms() + r->opts.verify_timeout_ms;
	if ((rc = journal(r, MM_STEP_VERIFY_NEW, "begin", NULL)) != MM_OK)
		return rc;
	mm_engine_progress(r->e, "%s: waiting until %s mode is in effect on every server", r->m->domain,
	                   r->m->to_mode);
	rc = poll(r, MM_STEP_VERIFY_NEW, check_verified, 0, deadline, "verifying", &r->report->diag);
	if (rc != MM_OK && r->kind == MM_KIND_SETUP)
		return setup_not_in_effect(r);
	if (rc != MM_OK) {
		r->report->step = step_names[MM_STEP_VERIFY_NEW];
		snprintf(r->err, MM_ERR_MAX,
		         "%s: %s mode did not verify within %lds: %s; rolled back, %s stays %s",
		         r->m->domain, r->m->to_mode, r->opts.verify_timeout_ms / 1000,
		         r->report->diag.summary, r->m->domain,
		         r->m->from_mode ? r->m->from_mode : "without a mode");
		if (journal(r, MM_STEP_VERIFY_NEW, "fail", r->report->diag.summary) != MM_OK)
			return MM_ERR;
		return mm_run_rollback(r, MM_UNVERIFIED);
	}
	if ((rc = settle(r, 0)) != MM_OK)
		return rc;
	/* Remembered across a restart: the finish step runs only when asked. */
	if (r->finish_wanted && (rc = journal(r, MM_STEP_FINISH_NEW, "wanted", NULL)) != MM_OK)
		return rc;
	return journal(r, MM_STEP_VERIFY_NEW, "end", NULL);
}

/* Polls the new mode's verify from now for the verify timeout. */
static int poll_verified(struct mm_run *r, enum mm_step step, struct mailmode_diag *diag)
{
	return poll(r, step, check_verified, 0, mm_migrate_now_ms() + r->opts.verify_timeout_ms,
	            "verifying", diag);
}

/* ABI 1.4: the new mode's stage that had to wait for the settle (plugin.h:
 * finish_after_settle; the gateway's lock-down), run before the old mode
 * goes, so that the domain is never without both.  It is setup again, with
 * MAILMODE_REQ_SETTLED, and so journaled, checkpointed and undone (abort)
 * like setup.  Verified first (which also reads the settle time again
 * after a restart): nothing waits for caches of a mode not in effect. */
static int run_finish(struct mm_run *r)
{
	struct mailmode_diag *diag = &r->report->diag;
	struct mm_op op;
	char *receipt = NULL;
	int wanted, begun, rc;

	if ((rc = journal_has(r, step_names[MM_STEP_FINISH_NEW], "wanted", &wanted)) != MM_OK ||
	    !wanted)
		return rc;
	/* Begun before a restart: verified and settled then, and the receipt
	 * may already be the last stage's (it checkpointed). */
	if ((rc = journal_has(r, step_names[MM_STEP_FINISH_NEW], "begin", &begun)) != MM_OK)
		return rc;
	if (!begun) {
		if ((rc = poll_verified(r, MM_STEP_FINISH_NEW, diag)) != MM_OK)
			return unfinished(r, MM_STEP_FINISH_NEW, rc, diag,
			                  "the new mode is not in effect before its last stage");
		if ((rc = settle(r, 1)) != MM_OK ||
		    (rc = journal(r, MM_STEP_FINISH_NEW, "begin", NULL)) != MM_OK)
			return rc;
	}
	mm_engine_progress(r->e, "%s: %s mode: its last stage", r->m->domain, r->m->to_mode);
	op = mm_run_op(r, 0, MAILMODE_REQ_SETTLED | (r->opts.force ? MAILMODE_REQ_FORCE : 0), 1);
	call_begin(r);
	rc = mm_op_setup(&op, &receipt, diag);
	call_end(r, 0);
	if (rc != MM_OK) {
		free(receipt);
		return unfinished(r, MM_STEP_FINISH_NEW, rc, diag, "the last stage of the new mode failed");
	}
	mm_print_diag(r->e->output, diag);
	free(r->m->new_receipt);
	r->m->new_receipt = receipt;
	if ((rc = mm_state_migration_set_receipt(r->e->state, r->m->id, 0, receipt, NULL,
	                                         r->err)) != MM_OK)
		return rc;
	if ((rc = poll_verified(r, MM_STEP_FINISH_NEW, diag)) != MM_OK)
		return unfinished(r, MM_STEP_FINISH_NEW, rc, diag,
		                  "the last stage of the new mode did not verify");
	return journal(r, MM_STEP_FINISH_NEW, "end", NULL);
}

static int run_teardown_old(struct mm_run *r)
{
	struct mailmode_diag diag = { 0 };
	int rc;

	if ((rc = journal(r, MM_STEP_TEARDOWN_OLD, "begin", NULL)) != MM_OK)
		return rc;
	mm_engine_progress(r->e, "%s: tearing down %s mode", r->m->domain, r->m->from_mode);
	r->step_changed = 0;
	rc = poll(r, MM_STEP_TEARDOWN_OLD, check_torn_down, 1,
	          mm_migrate_now_ms() + r->opts.verify_timeout_ms, "tearing down the old mode", &diag);
	if (rc != MM_OK && r->kind == MM_KIND_TEARDOWN && !r->step_changed && !r->resumed)
		return nothing_changed(r, MM_STEP_TEARDOWN_OLD, rc, &diag, "teardown refused");
	if (rc != MM_OK)
		return unfinished(r, MM_STEP_TEARDOWN_OLD, rc, &diag,
		                  r->kind == MM_KIND_SWITCH
		                  ? "the new mode is live and verified, but teardown of the old mode failed"
		                  : "teardown failed");
	return journal(r, MM_STEP_TEARDOWN_OLD, "end", NULL);
}

static int run_confirm_old_gone(struct mm_run *r)
{
	struct mailmode_diag diag = { 0 };
	int rc;

	if (r->opts.no_wait)
		return MM_OK;
	if ((rc = journal(r, MM_STEP_CONFIRM_OLD_GONE, "begin", NULL)) != MM_OK)
		return rc;
	mm_engine_progress(r->e, "%s: waiting until %s mode is gone from every server", r->m->domain,
	                   r->m->from_mode);
	rc = poll(r, MM_STEP_CONFIRM_OLD_GONE, check_gone, 1,
	          mm_migrate_now_ms() + r->opts.verify_timeout_ms,
	          "waiting for the old mode to be gone", &diag);
	if (rc != MM_OK)
		return unfinished(r, MM_STEP_CONFIRM_OLD_GONE, rc, &diag,
		                  "the old mode could not be confirmed gone after its teardown");
	return journal(r, MM_STEP_CONFIRM_OLD_GONE, "end", NULL);
}

/* adopt: the hand-made setup must be fully in effect. */
static int run_adopt_confirm(struct mm_run *r)
{
	struct mm_op op = mm_run_op(r, 0, MAILMODE_REQ_ADOPTED, 0);
	enum mailmode_presence presence;
	char *report = NULL;
	int rc;

	if ((rc = journal(r, MM_STEP_ADOPT_CONFIRM, "begin", NULL)) != MM_OK)
		return rc;
	rc = mm_op_observe(&op, &presence, &report, &r->report->diag);
	free(report);
	if (rc == MM_OK && presence != MAILMODE_PRESENT) {
		mm_diag_set(&r->report->diag, MAILMODE_SEV_ERROR, 0, "%s mode is %s for %s: nothing to adopt",
		            r->m->to_mode, mm_presence_name(presence), r->m->domain);
		rc = MM_UNVERIFIED;
	}
	if (rc != MM_OK)
		return nothing_changed(r, MM_STEP_ADOPT_CONFIRM, rc, &r->report->diag, "adopt refused");
	return journal(r, MM_STEP_ADOPT_CONFIRM, "end", NULL);
}

typedef int (*step_fn)(struct mm_run *r);

struct step_entry {
	enum mm_step step;
	step_fn fn;
};

static const struct step_entry switch_steps[] = {
	{ MM_STEP_SETUP_NEW, run_setup }, { MM_STEP_VERIFY_NEW, run_verify },
	{ MM_STEP_FINISH_NEW, run_finish },
	{ MM_STEP_TEARDOWN_OLD, run_teardown_old }, { MM_STEP_CONFIRM_OLD_GONE, run_confirm_old_gone },
};
static const struct step_entry setup_steps[] = {
	{ MM_STEP_SETUP_NEW, run_setup }, { MM_STEP_VERIFY_NEW, run_verify },
	{ MM_STEP_FINISH_NEW, run_finish },
};
static const struct step_entry teardown_steps[] = {
	{ MM_STEP_TEARDOWN_OLD, run_teardown_old }, { MM_STEP_CONFIRM_OLD_GONE, run_confirm_old_gone },
};
static const struct step_entry adopt_steps[] = { { MM_STEP_ADOPT_CONFIRM, run_adopt_confirm } };

/* The forward path from the first step not yet finished. */
int mm_run_forward(struct mm_run *r)
{
	static const struct { const struct step_entry *steps; size_t count; } plans[] = {
		[MM_KIND_SWITCH] = { switch_steps, 5 }, [MM_KIND_SETUP] = { setup_steps, 3 },
		[MM_KIND_TEARDOWN] = { teardown_steps, 2 }, [MM_KIND_ADOPT] = { adopt_steps, 1 },
	};
	size_t i;
	int done, rc;

	for (i = 0; i < plans[r->kind].count; i++) {
		const struct step_entry *s = &plans[r->kind].steps[i];

		if (r->kind == MM_KIND_SWITCH && s->step >= MM_STEP_TEARDOWN_OLD && !r->m->from_mode)
			break;
		if ((rc = step_done(r, s->step, &done)) != MM_OK)
			return rc;
		if (!done && (rc = s->fn(r)) != MM_OK)
			return rc;
		if (r->report->outcome)      /* closed inside the step */
			return MM_OK;
	}
	return close_migration(r, "done", r->kind == MM_KIND_SWITCH ? "switched" : "done");
}

/* Whether the journal says the migration is on its way back. */
int mm_run_rolling_back(struct mm_run *r, int *back)
{
	static const char *const markers[][2] = {
		{ "setup_new", "fail" }, { "verify_new", "fail" }, { "abort", "end" },
		{ "rollback_teardown_new", "begin" },
	};
	size_t i;
	int rc;

	*back = 0;
	for (i = 0; i < sizeof(markers) / sizeof(markers[0]) && !*back; i++)
		if ((rc = journal_has(r, markers[i][0], markers[i][1], back)) != MM_OK)
			return rc;
	/* A setup over a live mode that failed is finished, never undone. */
	if (*back && r->kind == MM_KIND_SETUP && r->m->from_mode)
		*back = 0;
	return MM_OK;
}

/* The stored options are input too: a value out of range falls back to
 * its default, a name that is not a string is dropped. */
static void parse_accepted(const cJSON *list, struct mm_switch_options *opts)
{
	const cJSON *v;
	int n = 0;

	cJSON_ArrayForEach(v, list)
		if (cJSON_IsString(v) && v->valuestring[0] && n < MM_ACCEPT_MAX &&
		    strlen(v->valuestring) < MM_ACCEPT_NAME_MAX)
			opts->accept_conflicts[n++] = v->valuestring;
	opts->accept_conflicts[n] = NULL;
}

static void parse_options(struct mm_run *r)
{
	struct mm_switch_options *opts = &r->opts;
	cJSON *o = r->m->options ? cJSON_Parse(r->m->options) : NULL;
	cJSON *v;
	int64_t ms;

	r->options_doc = o;
	opts->verify_timeout_ms = MM_DEFAULT_VERIFY_TIMEOUT_MS;
	opts->poll_interval_ms = MM_DEFAULT_POLL_INTERVAL_MS;
	if ((v = cJSON_GetObjectItem(o, "verify_timeout_ms")) && cJSON_IsNumber(v) &&
	    mm_num_from_double(v->valuedouble, 0, MM_NUM_DURATION_MAX_MS, &ms) == 0)
		opts->verify_timeout_ms = (long)ms;
	if ((v = cJSON_GetObjectItem(o, "poll_interval_ms")) && cJSON_IsNumber(v) &&
	    mm_num_from_double(v->valuedouble, 1, MM_NUM_DURATION_MAX_MS, &ms) == 0)
		opts->poll_interval_ms = (long)ms;
	parse_accepted(cJSON_GetObjectItem(o, "accept_conflicts"), opts);
	opts->no_wait = cJSON_IsTrue(cJSON_GetObjectItem(o, "no_wait"));
	if ((v = cJSON_GetObjectItem(o, "max_settle_ms")) && cJSON_IsNumber(v) &&
	    mm_num_from_double(v->valuedouble, 0, MM_NUM_DURATION_MAX_MS, &ms) == 0)
		opts->max_settle_ms = (long)ms;
	opts->force = opts->force || cJSON_IsTrue(cJSON_GetObjectItem(o, "force"));
}

char *mm_migrate_format_options(const struct mm_switch_options *opts)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *accepted = cJSON_AddArrayToObject(o, "accept_conflicts");
	char *text;
	int i;

	cJSON_AddNumberToObject(o, "verify_timeout_ms", (double)opts->verify_timeout_ms);
	cJSON_AddNumberToObject(o, "poll_interval_ms", (double)opts->poll_interval_ms);
	for (i = 0; i < MM_ACCEPT_MAX && opts->accept_conflicts[i]; i++)
		cJSON_AddItemToArray(accepted, cJSON_CreateString(opts->accept_conflicts[i]));
	cJSON_AddBoolToObject(o, "no_wait", opts->no_wait);
	if (opts->max_settle_ms > 0)
		cJSON_AddNumberToObject(o, "max_settle_ms", (double)opts->max_settle_ms);
	cJSON_AddBoolToObject(o, "force", opts->force);
	text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

static int find_plugin(struct mm_run *r, const char *mode, struct mm_plugin **p)
{
	*p = mm_plugins_find(r->e->plugins, mode);
	if (*p)
		return MM_OK;
	snprintf(r->err, MM_ERR_MAX, "%s: mode '%s' is not available (no plugin)", r->m->domain, mode);
	return MM_ERR;
}

static int load_original(struct mm_run *r, struct mm_plugin *p, char **out)
{
	*out = NULL;
	return p ? mm_state_get_original(r->e->state, r->m->domain, p->desc->name, out, r->err) : MM_OK;
}

int mm_run_init(struct mm_run *r, struct mm_engine *e, struct mm_migration *m,
                struct mm_switch_report *report, int force, char *err)
{
	int rc;

	memset(r, 0, sizeof(*r));
	r->e = e;
	r->m = m;
	r->report = report;
	r->err = err;
	r->started_ms = mm_migrate_now_ms();
	r->rec_new = (struct mm_op_recorder){ .checkpoint = record_checkpoint,
	                                      .keep_original = record_original,
	                                      .lock_shared = lock_shared,
	                                      .unlock_shared = unlock_shared,
	                                      .note_load = note_load, .note_store = note_store,
	                                      .arg = r };
	r->rec_old = r->rec_new;
	r->opts.force = force;
	parse_options(r);
	if (mm_migrate_kind_parse(m->kind, &r->kind) != MM_OK) {
		snprintf(err, MM_ERR_MAX, "%s: migration %lld is of an unknown kind '%s'", m->domain,
		         m->id, m->kind ? m->kind : "");
		return MM_ERR;
	}
	if ((m->to_mode && (rc = find_plugin(r, m->to_mode, &r->new_plugin)) != MM_OK) ||
	    (m->from_mode && (rc = find_plugin(r, m->from_mode, &r->old_plugin)) != MM_OK))
		return rc;
	if ((rc = load_original(r, r->new_plugin, &r->original_new)) != MM_OK ||
	    (r->new_plugin && (rc = mm_prepare_record(e->state, m->domain, r->new_plugin->desc->name,
	                                              &r->prepared_new, err)) != MM_OK))
		return rc;
	return load_original(r, r->old_plugin, &r->original_old);
}

void mm_run_clear(struct mm_run *r)
{
	cJSON_Delete(r->options_doc);
	free(r->original_new);
	free(r->original_old);
	free(r->prepared_new);
	free(r->pending_receipt);
	free(r->pending_original);
}
