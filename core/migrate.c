#include "migrate.h"
#include "num.h"

#include "http.h"
#include "ops.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Journal steps, in the order a migration runs them. */
enum step {
	STEP_SETUP_NEW,
	STEP_VERIFY_NEW,
	STEP_TEARDOWN_OLD,
	STEP_CONFIRM_OLD_GONE,
	STEP_ROLLBACK_TEARDOWN_NEW,
	STEP_ROLLBACK_CONFIRM_NEW_GONE
};

static const char *const step_names[] = {
	"setup_new", "verify_new", "teardown_old", "confirm_old_gone",
	"rollback_teardown_new", "rollback_confirm_new_gone"
};

/* The first re-check comes this soon: a change usually reaches every
 * server within a NOTIFY and a transfer, so waiting a whole poll interval
 * first would only add latency.  Waits then double up to the interval. */
#define FIRST_RECHECK_MS 100L
#define LOCK_LEASE_MS (30L * 60 * 1000)

struct run {
	struct mm_engine *e;
	struct mm_migration *m;
	struct mm_plugin *new_plugin;
	struct mm_plugin *old_plugin;    /* NULL when the domain had no mode */
	struct mm_switch_options opts;
	struct mm_switch_report *report;
	long long started_ms;
	long long settle_until_ms;      /* from the new mode's verify report */
	char *err;
};

/* Wall-clock milliseconds: deadlines are stored and outlive the process. */
static long long now_ms(void)
{
	return mm_host_wall_ms(NULL);
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

static int journal(struct run *r, enum step step, const char *phase, const char *detail)
{
	return mm_state_journal(r->e->state, r->m->id, step_names[step], phase, detail, r->err);
}

static int journal_has(struct run *r, const char *step, const char *phase, int *has)
{
	return mm_state_journal_has(r->e->state, r->m->id, step, phase, has, r->err);
}

static int step_done(struct run *r, enum step step, int *done)
{
	return journal_has(r, step_names[step], "end", done);
}

static struct mm_op op_for(const struct run *r, int new_mode, unsigned flags)
{
	struct mm_op op = {
		.plugin = new_mode ? r->new_plugin : r->old_plugin,
		.domain = r->m->domain,
		.profile = r->m->profile,
		.receipt = new_mode ? r->m->new_receipt : r->m->old_receipt,
		.flags = flags,
		.limiter = r->e->limiter,
	};

	if (!new_mode && r->m->old_adopted)
		op.flags |= MAILMODE_REQ_ADOPTED;
	return op;
}

/* One poll of a condition: MM_OK when met, MM_UNVERIFIED when not yet,
 * anything else when it cannot be met by waiting. */
typedef int (*check_fn)(struct run *r, int new_mode, struct mailmode_diag *diag);

static int check_verified(struct run *r, int new_mode, struct mailmode_diag *diag)
{
	struct mm_op op = op_for(r, new_mode, 0);
	char *report = NULL;
	int rc = mm_op_verify(&op, &report, diag);

	if (rc == MM_OK && report) {
		cJSON *root = cJSON_Parse(report);
		cJSON *settle = cJSON_GetObjectItem(root, "settle_until_ms");

		int64_t until = 0;

		/* An out-of-range double cast to an integer is undefined. */
		if (cJSON_IsNumber(settle) &&
		    mm_num_from_double(settle->valuedouble, 0, INT64_MAX, &until) != 0)
			until = 0;
		r->settle_until_ms = until;
		cJSON_Delete(root);
	}
	free(report);
	if (rc == MM_OK || rc == MM_UNVERIFIED || diag->retryable)
		return rc == MM_OK ? MM_OK : MM_UNVERIFIED;
	return rc;
}

static int check_gone(struct run *r, int new_mode, struct mailmode_diag *diag)
{
	struct mm_op op = op_for(r, new_mode, 0);
	enum mailmode_presence presence;
	char *report = NULL;
	int rc = mm_op_observe(&op, &presence, &report, diag);

	free(report);
	if (rc != MM_OK)
		return MM_UNVERIFIED;      /* cannot see it: keep asking */
	if (presence == MAILMODE_ABSENT)
		return MM_OK;
	mm_diag_set(diag, MAILMODE_SEV_WARNING, 1, "%s mode is still %s for %s",
	            op.plugin->desc->name, mm_presence_name(presence), r->m->domain);
	return MM_UNVERIFIED;
}

/* Teardown as a condition: a retryable failure (an answer that did not
 * come, an object not listed yet) is tried again until the deadline. */
static int check_torn_down(struct run *r, int new_mode, struct mailmode_diag *diag)
{
	unsigned flags = !new_mode && r->opts.force ? MAILMODE_REQ_FORCE : 0;
	struct mm_op op = op_for(r, new_mode, flags);
	int rc = mm_op_teardown(&op, diag);

	if (rc == MM_OK)
		return MM_OK;
	return diag->retryable ? MM_UNVERIFIED : rc;
}

/* Polls check until it passes or the deadline passes, waiting 100 ms,
 * then twice as long each time up to the poll interval; the last attempt
 * is made at the deadline.  Each attempt is journaled. */
static int poll(struct run *r, enum step step, check_fn check, int new_mode, long long deadline,
                const char *what, struct mailmode_diag *diag)
{
	long long max_interval = r->opts.poll_interval_ms;
	long long interval = FIRST_RECHECK_MS < max_interval ? FIRST_RECHECK_MS : max_interval;
	int attempt = 0, rc;

	for (;;) {
		long long now, elapsed;

		attempt++;
		if (step == STEP_VERIFY_NEW)
			r->report->verify_attempts++;
		rc = check(r, new_mode, diag);
		now = now_ms();
		elapsed = (now - r->started_ms) / 1000;
		if (rc == MM_OK) {
			engine_progress_end(r->e);
			return MM_OK;
		}
		if (journal(r, step, "attempt", diag->summary) != MM_OK)
			return MM_ERR;
		mm_engine_progress(r->e, "%s: %s: attempt %d, %lld:%02lld elapsed: %s", r->m->domain,
		            what, attempt, elapsed / 60, elapsed % 60, diag->summary);
		if (rc != MM_UNVERIFIED || now >= deadline) {
			engine_progress_end(r->e);
			return rc == MM_UNVERIFIED ? MM_UNVERIFIED : rc;
		}
		mm_host_sleep_ms(NULL, now + interval < deadline ? interval : deadline - now);
		interval = interval * 2 > max_interval ? max_interval : interval * 2;
	}
}

static int close_migration(struct run *r, const char *result, const char *outcome)
{
	char detail[256];

	snprintf(detail, sizeof(detail), "%s -> %s", r->m->from_mode ? r->m->from_mode : "none",
	         r->m->to_mode);
	if (mm_state_migration_close(r->e->state, r->m->id, result, detail, r->err) != MM_OK)
		return MM_ERR;
	r->report->outcome = outcome;
	return MM_OK;
}

static int unfinished(struct run *r, enum step step, int rc, const struct mailmode_diag *diag,
                      const char *what)
{
	if (journal(r, step, "fail", diag->summary) != MM_OK)
		return MM_ERR;
	r->report->outcome = "unfinished";
	r->report->step = step_names[step];
	r->report->diag = *diag;
	snprintf(r->err, MM_ERR_MAX, "%s: %s: %s; the migration is unfinished: fix it, then run 'mailmode resume %s'",
	         r->m->domain, what, diag->summary, r->m->domain);
	return rc == MM_OK || rc == MM_UNVERIFIED ? MM_ERR : rc;
}

/* Undoes the new mode; the domain keeps its old one.  Returns rc_after
 * once the rollback is complete. */
static int rollback(struct run *r, int rc_after)
{
	struct mailmode_diag diag = { 0 };
	long long deadline;
	int done, aborted, rc;

	if ((rc = step_done(r, STEP_ROLLBACK_TEARDOWN_NEW, &done)) != MM_OK)
		return rc;
	if (!done) {
		enum mailmode_presence presence = MAILMODE_PRESENT;
		struct mm_op op = op_for(r, 1, 0);
		char *report = NULL;

		if ((rc = journal(r, STEP_ROLLBACK_TEARDOWN_NEW, "begin", NULL)) != MM_OK)
			return rc;
		mm_engine_progress(r->e, "%s: rolling back %s mode", r->m->domain, r->m->to_mode);
		/* A setup that failed before it changed anything left nothing to
		 * undo (and no receipt to undo it with); anything else is torn
		 * down, even when it looks absent: a new object may not be
		 * listed yet. */
		rc = mm_op_observe(&op, &presence, &report, &diag);
		free(report);
		if (r->m->new_receipt || rc != MM_OK || presence != MAILMODE_ABSENT)
			rc = poll(r, STEP_ROLLBACK_TEARDOWN_NEW, check_torn_down, 1,
			          now_ms() + r->opts.verify_timeout_ms, "rolling back", &diag);
		if (rc != MM_OK)
			return unfinished(r, STEP_ROLLBACK_TEARDOWN_NEW, rc, &diag,
			                  "rollback: teardown of the new mode failed");
		if ((rc = journal(r, STEP_ROLLBACK_TEARDOWN_NEW, "end", NULL)) != MM_OK)
			return rc;
	}
	if ((rc = step_done(r, STEP_ROLLBACK_CONFIRM_NEW_GONE, &done)) != MM_OK)
		return rc;
	if (!done) {
		if ((rc = journal(r, STEP_ROLLBACK_CONFIRM_NEW_GONE, "begin", NULL)) != MM_OK)
			return rc;
		deadline = now_ms() + r->opts.verify_timeout_ms;
		rc = poll(r, STEP_ROLLBACK_CONFIRM_NEW_GONE, check_gone, 1, deadline,
		          "waiting for the new mode to be gone", &diag);
		if (rc != MM_OK)
			return unfinished(r, STEP_ROLLBACK_CONFIRM_NEW_GONE, rc, &diag,
			                  "rollback: the new mode is still visible");
		if ((rc = journal(r, STEP_ROLLBACK_CONFIRM_NEW_GONE, "end", NULL)) != MM_OK)
			return rc;
	}
	if ((rc = journal_has(r, "abort", "end", &aborted)) != MM_OK)
		return rc;
	rc = close_migration(r, aborted ? "aborted" : "rolled_back", aborted ? "aborted" : "rolled back");
	return rc == MM_OK ? rc_after : rc;
}

static int run_setup(struct run *r)
{
	struct mm_op op = op_for(r, 1, r->opts.accept_conflicts ? MAILMODE_REQ_ACCEPT_CONFLICTS : 0);
	char *receipt = NULL;
	int rc;

	if ((rc = journal(r, STEP_SETUP_NEW, "begin", NULL)) != MM_OK)
		return rc;
	mm_engine_progress(r->e, "%s: setting up %s mode", r->m->domain, r->m->to_mode);
	rc = mm_op_setup(&op, &receipt, &r->report->diag);
	if (rc != MM_OK) {
		r->report->step = step_names[STEP_SETUP_NEW];
		snprintf(r->err, MM_ERR_MAX, "%s: setup of %s mode failed: %s; rolled back, %s stays %s",
		         r->m->domain, r->m->to_mode, r->report->diag.summary, r->m->domain,
		         r->m->from_mode ? r->m->from_mode : "without a mode");
		if (journal(r, STEP_SETUP_NEW, "fail", r->report->diag.summary) != MM_OK)
			return MM_ERR;
		return rollback(r, rc);
	}
	mm_print_diag(r->e->output, &r->report->diag);
	free(r->m->new_receipt);
	r->m->new_receipt = receipt;
	if ((rc = mm_state_migration_set_receipt(r->e->state, r->m->id, receipt, r->err)) != MM_OK)
		return rc;
	return journal(r, STEP_SETUP_NEW, "end", NULL);
}

/* The old mode stays while the world may still act on what the new mode's
 * setup replaced (plugin.h: settle_until_ms). */
static void settle(struct run *r)
{
	long long now;

	while (r->m->from_mode && (now = now_ms()) < r->settle_until_ms) {
		long long left = r->settle_until_ms - now;

		mm_engine_progress(r->e, "%s: %s mode verified; keeping %s mode %lld s more while caches of the replaced records expire",
		                   r->m->domain, r->m->to_mode, r->m->from_mode, (left + 999) / 1000);
		mm_host_sleep_ms(NULL, left < 1000 ? left : 1000);
	}
}

static int run_verify(struct run *r)
{
	int rc;

	if ((rc = journal(r, STEP_VERIFY_NEW, "begin", NULL)) != MM_OK)
		return rc;
	rc = poll(r, STEP_VERIFY_NEW, check_verified, 1, r->m->verify_deadline,
	          "verifying", &r->report->diag);
	if (rc != MM_OK) {
		r->report->step = step_names[STEP_VERIFY_NEW];
		snprintf(r->err, MM_ERR_MAX,
		         "%s: %s mode did not verify within %lds: %s; rolled back, %s stays %s",
		         r->m->domain, r->m->to_mode, r->opts.verify_timeout_ms / 1000,
		         r->report->diag.summary, r->m->domain,
		         r->m->from_mode ? r->m->from_mode : "without a mode");
		if (journal(r, STEP_VERIFY_NEW, "fail", r->report->diag.summary) != MM_OK)
			return MM_ERR;
		return rollback(r, rc == MM_UNVERIFIED ? MM_UNVERIFIED : rc);
	}
	settle(r);
	return journal(r, STEP_VERIFY_NEW, "end", NULL);
}

static int run_teardown_old(struct run *r)
{
	struct mailmode_diag diag = { 0 };
	int rc;

	if ((rc = journal(r, STEP_TEARDOWN_OLD, "begin", NULL)) != MM_OK)
		return rc;
	mm_engine_progress(r->e, "%s: tearing down %s mode", r->m->domain, r->m->from_mode);
	rc = poll(r, STEP_TEARDOWN_OLD, check_torn_down, 0, now_ms() + r->opts.verify_timeout_ms,
	          "tearing down the old mode", &diag);
	if (rc != MM_OK)
		return unfinished(r, STEP_TEARDOWN_OLD, rc, &diag,
		                  "the new mode is live and verified, but teardown of the old mode failed");
	return journal(r, STEP_TEARDOWN_OLD, "end", NULL);
}

static int run_confirm_old_gone(struct run *r)
{
	struct mailmode_diag diag = { 0 };
	int rc;

	if ((rc = journal(r, STEP_CONFIRM_OLD_GONE, "begin", NULL)) != MM_OK)
		return rc;
	rc = poll(r, STEP_CONFIRM_OLD_GONE, check_gone, 0, now_ms() + r->opts.verify_timeout_ms,
	          "waiting for the old mode to be gone", &diag);
	if (rc != MM_OK)
		return unfinished(r, STEP_CONFIRM_OLD_GONE, rc, &diag,
		                  "the old mode is still visible after its teardown");
	return journal(r, STEP_CONFIRM_OLD_GONE, "end", NULL);
}

/* The forward path from the first step not yet finished. */
static int run_forward(struct run *r)
{
	static int (*const steps[])(struct run *r) = {
		run_setup, run_verify, run_teardown_old, run_confirm_old_gone
	};
	enum step s;
	int done, rc;

	for (s = STEP_SETUP_NEW; s <= STEP_CONFIRM_OLD_GONE; s++) {
		if (s >= STEP_TEARDOWN_OLD && !r->m->from_mode)
			break;
		if ((rc = step_done(r, s, &done)) != MM_OK)
			return rc;
		if (!done && (rc = steps[s](r)) != MM_OK)
			return rc;
		if (r->report->outcome)      /* rolled back inside the step */
			return MM_OK;
	}
	return close_migration(r, "done", "switched");
}

static void parse_options(const char *json, struct mm_switch_options *opts)
{
	cJSON *o = json ? cJSON_Parse(json) : NULL;
	cJSON *v;
	int64_t ms;

	opts->verify_timeout_ms = MM_DEFAULT_VERIFY_TIMEOUT_MS;
	opts->poll_interval_ms = MM_DEFAULT_POLL_INTERVAL_MS;
	if ((v = cJSON_GetObjectItem(o, "verify_timeout_ms")) && cJSON_IsNumber(v) &&
	    mm_num_from_double(v->valuedouble, 0, MM_NUM_DURATION_MAX_MS, &ms) == 0)
		opts->verify_timeout_ms = (long)ms;
	if ((v = cJSON_GetObjectItem(o, "poll_interval_ms")) && cJSON_IsNumber(v) &&
	    mm_num_from_double(v->valuedouble, 0, MM_NUM_DURATION_MAX_MS, &ms) == 0)
		opts->poll_interval_ms = (long)ms;
	opts->accept_conflicts = cJSON_IsTrue(cJSON_GetObjectItem(o, "accept_conflicts"));
	cJSON_Delete(o);
}

static char *format_options(const struct mm_switch_options *opts)
{
	cJSON *o = cJSON_CreateObject();
	char *text;

	cJSON_AddNumberToObject(o, "verify_timeout_ms", (double)opts->verify_timeout_ms);
	cJSON_AddNumberToObject(o, "poll_interval_ms", (double)opts->poll_interval_ms);
	cJSON_AddBoolToObject(o, "accept_conflicts", opts->accept_conflicts);
	text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

static int find_plugins(struct run *r)
{
	r->new_plugin = mm_plugins_find(r->e->plugins, r->m->to_mode);
	if (!r->new_plugin) {
		snprintf(r->err, MM_ERR_MAX, "%s: mode '%s' is not available (no plugin)", r->m->domain,
		         r->m->to_mode);
		return MM_ERR;
	}
	if (r->m->from_mode) {
		r->old_plugin = mm_plugins_find(r->e->plugins, r->m->from_mode);
		if (!r->old_plugin) {
			snprintf(r->err, MM_ERR_MAX, "%s: mode '%s' is not available (no plugin)",
			         r->m->domain, r->m->from_mode);
			return MM_ERR;
		}
	}
	return MM_OK;
}

static void run_init(struct run *r, struct mm_engine *e, struct mm_migration *m,
                     struct mm_switch_report *report, char *err)
{
	memset(r, 0, sizeof(*r));
	r->e = e;
	r->m = m;
	r->report = report;
	r->err = err;
	parse_options(m->options, &r->opts);
}

/* Every public entry starts and ends a report the same way; calls are
 * counted on this thread (each engine has its own). */
static void report_begin(struct mm_switch_report *report, long long *started, long *calls)
{
	memset(report, 0, sizeof(*report));
	*started = now_ms();
	*calls = mm_http_requests_made();
}

static void report_end(struct mm_switch_report *report, long long started, long calls)
{
	report->elapsed_ms = now_ms() - started;
	report->api_calls = mm_http_requests_made() - calls;
}

static int lock(struct mm_engine *e, const char *domain, char *err)
{
	char notice[768];
	int rc = mm_state_lock_domain(e->state, domain, e->command, LOCK_LEASE_MS, e->lock_wait_ms,
	                              notice, sizeof(notice), err);

	if (rc == MM_OK && notice[0])
		mm_log(e->output, MAILMODE_LOG_WARNING, "%s", notice);
	return rc;
}

static void unlock(struct mm_engine *e, const char *domain)
{
	char err[MM_ERR_MAX];

	if (mm_state_unlock_domain(e->state, domain, err) != MM_OK)
		mm_log(e->output, MAILMODE_LOG_WARNING, "%s", err);
}

/* A new migration of a locked domain. */
static int migrate_start(struct mm_engine *e, const char *domain, const char *to_mode,
                         const char *profile, const struct mm_switch_options *opts,
                         struct mm_switch_report *report, char *err)
{
	struct mm_domain_row row;
	struct mm_migration m = { 0 };
	struct run r;
	int found, rc;

	rc = mm_state_get_domain(e->state, domain, &row, &found, err);
	if (rc != MM_OK)
		return rc;
	m.domain = strdup(domain);
	m.from_mode = found && row.mode ? strdup(row.mode) : NULL;
	m.to_mode = strdup(to_mode);
	m.profile = strdup(profile);
	m.old_receipt = found && row.receipt ? strdup(row.receipt) : NULL;
	m.old_adopted = found && row.adopted;
	m.options = format_options(opts);
	m.verify_deadline = now_ms() + opts->verify_timeout_ms;
	mm_domain_row_clear(&row);
	run_init(&r, e, &m, report, err);
	r.opts.force = opts->force;
	if (!m.domain || !m.to_mode || !m.profile || !m.options) {
		snprintf(err, MM_ERR_MAX, "out of memory");
		rc = MM_ERR;
		goto out;
	}
	if ((rc = find_plugins(&r)) != MM_OK ||
	    (rc = mm_state_migration_open(e->state, &m, err)) != MM_OK)
		goto out;
	rc = run_forward(&r);
out:
	mm_migration_clear(&m);
	return rc;
}

/* Whether the journal says the migration is on its way back. */
static int rolling_back(struct run *r, int *back)
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
	return MM_OK;
}

/* Locks the domain and re-reads its open migration (another run may have
 * finished it meanwhile), then runs fn on it. */
static int with_open_migration(struct mm_engine *e, const char *domain, int force,
                               int (*fn)(struct run *r), struct mm_switch_report *report,
                               char *err)
{
	struct mm_migration m = { 0 };
	long long started;
	long calls;
	struct run r;
	int found = 0, rc;

	report_begin(report, &started, &calls);
	if ((rc = lock(e, domain, err)) != MM_OK)
		return rc;
	rc = mm_state_migration_get(e->state, domain, &m, &found, err);
	if (rc == MM_OK && !found) {
		report->outcome = "unchanged";
		goto out;
	}
	run_init(&r, e, &m, report, err);
	r.opts.force = force;
	if (rc == MM_OK)
		rc = find_plugins(&r);
	if (rc == MM_OK)
		rc = fn(&r);
out:
	unlock(e, domain);
	report_end(report, started, calls);
	mm_migration_clear(&m);
	return rc;
}

static int resume_run(struct run *r)
{
	int back = 0, rc = rolling_back(r, &back);

	if (rc == MM_OK)
		rc = back ? rollback(r, MM_OK) : run_forward(r);
	return rc;
}

int mm_migrate_resume(struct mm_engine *e, const char *domain, int force,
                      struct mm_switch_report *report, char *err)
{
	return with_open_migration(e, domain, force, resume_run, report, err);
}

static int abort_run(struct run *r)
{
	int began = 0, rc = journal_has(r, step_names[STEP_TEARDOWN_OLD], "begin", &began);

	if (rc == MM_OK && began) {
		snprintf(r->err, MM_ERR_MAX,
		         "%s: the migration to %s mode has begun tearing down %s mode, so it can only go forward: run 'mailmode resume %s'",
		         r->m->domain, r->m->to_mode, r->m->from_mode, r->m->domain);
		rc = MM_REFUSED;
	}
	if (rc == MM_OK)
		rc = mm_state_journal(r->e->state, r->m->id, "abort", "end", NULL, r->err);
	if (rc == MM_OK)
		rc = rollback(r, MM_OK);
	return rc;
}

int mm_migrate_abort(struct mm_engine *e, const char *domain, struct mm_switch_report *report,
                     char *err)
{
	return with_open_migration(e, domain, 0, abort_run, report, err);
}

int mm_engine_check_other_modes(const struct mm_engine *e, const char *domain,
                                const char *profile, const char *mode, char *err)
{
	size_t i;

	for (i = 0; i < e->plugins->count; i++) {
		struct mm_plugin *p = e->plugins->plugins[i];
		struct mm_op op = { .plugin = p, .domain = domain, .profile = profile,
		                    .limiter = e->limiter };
		enum mailmode_presence presence;
		struct mailmode_diag diag;
		char *report = NULL;
		int rc;

		if (strcmp(p->desc->name, mode) == 0 || mm_op_validate(&op, &diag) != MM_OK)
			continue;
		rc = mm_op_observe(&op, &presence, &report, &diag);
		free(report);
		if (rc != MM_OK) {
			snprintf(err, MM_ERR_MAX, "cannot confirm that %s mode is not live for %s: %s",
			         p->desc->name, domain, diag.summary);
			return MM_ERR;
		}
		if (presence != MAILMODE_ABSENT) {
			snprintf(err, MM_ERR_MAX,
			         "%s mode is %s for %s although the state records no mode: adopt it (mailmode adopt %s --mode %s) or remove it first",
			         p->desc->name, mm_presence_name(presence), domain, domain, p->desc->name);
			return MM_REFUSED;
		}
	}
	return MM_OK;
}

static int validate(const struct mm_engine *e, struct mm_plugin *p, const char *domain,
                    const char *profile, struct mm_switch_report *report, char *err)
{
	struct mm_op op = { .plugin = p, .domain = domain, .profile = profile };
	int rc = mm_op_validate(&op, &report->diag);

	(void)e;
	if (rc != MM_OK)
		snprintf(err, MM_ERR_MAX, "%s", report->diag.summary);
	return rc == MM_OK ? MM_OK : MM_ERR;
}

static int find_mode(const struct mm_engine *e, const char *domain, const char *mode,
                     struct mm_plugin **p, char *err)
{
	*p = mm_plugins_find(e->plugins, mode);
	if (*p)
		return MM_OK;
	snprintf(err, MM_ERR_MAX, "%s: mode '%s' is not available (no plugin)", domain, mode);
	return MM_ERR;
}

int mm_migrate_switch(struct mm_engine *e, const char *domain, const char *to_mode,
                      const char *profile, const struct mm_switch_options *opts,
                      struct mm_switch_report *report, char *err)
{
	struct mm_domain_row row = { 0 };
	struct mm_migration open = { 0 };
	struct mm_plugin *to = NULL, *from = NULL;
	long long started;
	long calls;
	int found = 0, migrating = 0, locked = 0, rc;

	report_begin(report, &started, &calls);
	rc = mm_state_migration_get(e->state, domain, &open, &migrating, err);
	if (rc == MM_OK && migrating) {
		snprintf(err, MM_ERR_MAX,
		         "%s has an unfinished migration to %s mode (last step: %s): run 'mailmode resume %s' or 'mailmode abort %s'",
		         domain, open.to_mode, open.step, domain, domain);
		rc = MM_REFUSED;
	}
	if (rc == MM_OK)
		rc = mm_state_get_domain(e->state, domain, &row, &found, err);
	if (rc != MM_OK)
		goto out;
	if (found && row.mode && strcmp(row.mode, to_mode) == 0) {
		report->outcome = "unchanged";
		goto out;
	}
	if ((rc = find_mode(e, domain, to_mode, &to, err)) != MM_OK ||
	    (found && row.mode && (rc = find_mode(e, domain, row.mode, &from, err)) != MM_OK) ||
	    (rc = validate(e, to, domain, profile, report, err)) != MM_OK ||
	    (from && (rc = validate(e, from, domain, profile, report, err)) != MM_OK))
		goto out;
	if (!from && (rc = mm_engine_check_other_modes(e, domain, profile, to_mode, err)) != MM_OK)
		goto out;
	if ((rc = lock(e, domain, err)) != MM_OK)
		goto out;
	locked = 1;
	rc = migrate_start(e, domain, to_mode, profile, opts, report, err);
out:
	if (locked)
		unlock(e, domain);
	report_end(report, started, calls);
	mm_migration_clear(&open);
	mm_domain_row_clear(&row);
	return rc;
}
