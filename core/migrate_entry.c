/* The engine's public entries: what is checked before a migration opens
 * (one mode per domain, the plugins' configuration, preflight), locking,
 * resume and abort. */
#include "migrate_internal.h"

#include "http.h"
#include "prepare.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOCK_LEASE_MS (30L * 60 * 1000)

/* Every public entry starts and ends a report the same way; calls are
 * counted on this thread (each engine has its own). */
static void report_begin(struct mm_switch_report *report, long long *started, long *calls)
{
	memset(report, 0, sizeof(*report));
	*started = mm_migrate_now_ms();
	*calls = mm_http_requests_made();
}

static void report_end(struct mm_switch_report *report, long long started, long calls)
{
	report->elapsed_ms = mm_migrate_now_ms() - started;
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

/* Proves both ends can run before anything changes (plugin.h:
 * preflight): a switch whose old mode cannot be torn down must not set
 * the new one up. */
static int preflight(struct mm_run *r)
{
	struct mailmode_diag *diag = &r->report->diag;
	int rc = MM_OK;

	if (r->new_plugin && r->kind != MM_KIND_ADOPT) {
		/* The flags setup will get: a forced setup is not refused here. */
		struct mm_op op = mm_run_op(r, 0, r->opts.force ? MAILMODE_REQ_FORCE : 0, 0);

		mm_engine_progress(r->e, "%s: checking that %s mode can be set up", r->m->domain,
		                   r->m->to_mode);
		if ((rc = mm_op_preflight(&op, MAILMODE_PLAN_SETUP, diag)) != MM_OK)
			snprintf(r->err, MM_ERR_MAX, "%s: preflight: %s mode cannot be set up: %s; nothing was changed",
			         r->m->domain, r->m->to_mode, diag->summary);
	}
	if (rc == MM_OK && r->old_plugin && r->kind != MM_KIND_SETUP) {
		struct mm_op op = mm_run_op(r, 1, r->opts.force ? MAILMODE_REQ_FORCE : 0, 0);

		mm_engine_progress(r->e, "%s: checking that %s mode can be torn down", r->m->domain,
		                   r->m->from_mode);
		if ((rc = mm_op_preflight(&op, MAILMODE_PLAN_TEARDOWN, diag)) != MM_OK)
			snprintf(r->err, MM_ERR_MAX, "%s: preflight: %s mode cannot be torn down: %s; nothing was changed",
			         r->m->domain, r->m->from_mode, diag->summary);
	}
	mm_progress_end(r->e->output);
	if (rc != MM_OK)
		r->report->step = "preflight";
	return rc;
}

static int validate(struct mm_plugin *p, const char *domain, const char *profile,
                    struct mm_switch_report *report, char *err)
{
	struct mm_op op = { .plugin = p, .domain = domain, .profile = profile };
	int rc = mm_op_validate(&op, &report->diag);

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

int mm_engine_check_other_modes(const struct mm_engine *e, const char *domain,
                                const char *profile, const char *mode, char *err)
{
	size_t i;

	for (i = 0; i < e->plugins->count; i++) {
		struct mm_plugin *p = e->plugins->plugins[i];
		struct mm_op op = { .plugin = p, .domain = domain, .profile = profile,
		                    .limiter = e->limiter,
		                    .waiter = e->waiter.away ? &e->waiter : NULL };
		enum mailmode_presence presence;
		struct mailmode_diag diag;
		char *report = NULL;
		int rc;

		if ((mode && strcmp(p->desc->name, mode) == 0) || mm_op_validate(&op, &diag) != MM_OK)
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

/* The migration a request makes of the domain's row; "unchanged" (*same)
 * when there is nothing to do. */
static int plan_migration(enum mm_kind kind, const char *domain, const char *mode,
                          const struct mm_domain_row *row, int found, struct mm_migration *m,
                          int *same, char *err)
{
	const char *current = found ? row->mode : NULL;

	*same = 0;
	if (kind == MM_KIND_TEARDOWN && !current) {
		snprintf(err, MM_ERR_MAX, "%s has no mode recorded: nothing to tear down (use 'mailmode status' to look)",
		         domain);
		return MM_ERR;
	}
	if (kind != MM_KIND_TEARDOWN && current && strcmp(current, mode) != 0 && kind != MM_KIND_SWITCH) {
		snprintf(err, MM_ERR_MAX,
		         "%s is already in %s mode: a domain has one mode; use 'mailmode switch %s --to %s'",
		         domain, current, domain, mode);
		return MM_REFUSED;
	}
	if ((kind == MM_KIND_SWITCH || kind == MM_KIND_ADOPT) && current && strcmp(current, mode) == 0) {
		*same = 1;
		return MM_OK;
	}
	m->kind = strdup(mm_migrate_kind_name(kind));
	m->domain = strdup(domain);
	m->from_mode = current ? strdup(current) : NULL;
	m->to_mode = kind == MM_KIND_TEARDOWN ? NULL : strdup(mode);
	m->old_receipt = found && row->receipt ? strdup(row->receipt) : NULL;
	/* Set up again: setup starts from what the first one recorded. */
	m->new_receipt = kind == MM_KIND_SETUP && m->old_receipt ? strdup(m->old_receipt) : NULL;
	m->old_adopted = found && row->adopted;
	if (!m->kind || !m->domain || (current && !m->from_mode) ||
	    (kind != MM_KIND_TEARDOWN && !m->to_mode) || (row->receipt && !m->old_receipt)) {
		snprintf(err, MM_ERR_MAX, "out of memory");
		return MM_ERR;
	}
	return MM_OK;
}

static int refuse_open(struct mm_engine *e, const char *domain, char *err)
{
	struct mm_migration open = { 0 };
	int migrating = 0, rc;

	rc = mm_state_migration_get(e->state, domain, &open, &migrating, err);
	if (rc == MM_OK && migrating) {
		snprintf(err, MM_ERR_MAX,
		         "%s has an unfinished %s (%s -> %s, last step: %s): run 'mailmode resume %s' or 'mailmode abort %s'",
		         domain, open.kind ? open.kind : "migration", open.from_mode ? open.from_mode : "none",
		         open.to_mode ? open.to_mode : "none", open.step, domain, domain);
		rc = MM_REFUSED;
	}
	mm_migration_clear(&open);
	return rc;
}

static int refuse_changed(struct mm_engine *e, const struct mm_migration *m, char *err)
{
	struct mm_domain_row row = { 0 };
	int found = 0, rc = refuse_open(e, m->domain, err);

	if (rc == MM_OK)
		rc = mm_state_get_domain(e->state, m->domain, &row, &found, err);
	if (rc == MM_OK && !((!m->from_mode && !(found && row.mode)) ||
	                     (m->from_mode && found && row.mode && strcmp(m->from_mode, row.mode) == 0))) {
		snprintf(err, MM_ERR_MAX, "%s changed while this command checked it (now %s): run it again",
		         m->domain, found && row.mode ? row.mode : "no mode");
		rc = MM_REFUSED;
	}
	mm_domain_row_clear(&row);
	return rc;
}

/* Preflight (read-only: no lock needed), then the migration itself on the
 * locked domain. */
static int start(struct mm_engine *e, struct mm_migration *m, const struct mm_switch_options *opts,
                 struct mm_switch_report *report, char *err)
{
	struct mm_run r;
	int locked = 0, rc;

	m->options = mm_migrate_format_options(opts);
	m->verify_deadline = mm_migrate_now_ms() + opts->verify_timeout_ms;
	if (!m->options) {
		snprintf(err, MM_ERR_MAX, "out of memory");
		return MM_ERR;
	}
	rc = mm_run_init(&r, e, m, report, opts->force, err);
	if (rc == MM_OK)
		rc = preflight(&r);
	if (rc == MM_OK && (rc = lock(e, m->domain, err)) == MM_OK)
		locked = 1;
	/* Another process may have changed the domain while this one checked. */
	if (rc == MM_OK)
		rc = refuse_changed(e, m, err);
	if (rc == MM_OK)
		rc = mm_state_migration_open(e->state, m, err);
	if (rc == MM_OK)
		rc = mm_run_forward(&r);
	if (m->id)
		mm_prepare_after_migration(e, m, report->outcome);
	if (locked)
		unlock(e, m->domain);
	mm_run_clear(&r);
	return rc;
}

static int check_modes(struct mm_engine *e, enum mm_kind kind, const struct mm_migration *m,
                       const char *profile, struct mm_switch_report *report, char *err)
{
	struct mm_plugin *to = NULL, *from = NULL;
	int rc;

	if ((m->to_mode && (rc = find_mode(e, m->domain, m->to_mode, &to, err)) != MM_OK) ||
	    (m->from_mode && (rc = find_mode(e, m->domain, m->from_mode, &from, err)) != MM_OK) ||
	    (to && (rc = validate(to, m->domain, profile, report, err)) != MM_OK) ||
	    (from && from != to && (rc = validate(from, m->domain, profile, report, err)) != MM_OK))
		return rc;
	if (kind == MM_KIND_ADOPT && !(to->desc->caps & MAILMODE_CAP_ADOPT)) {
		snprintf(err, MM_ERR_MAX, "plugin %s cannot adopt a domain set up by hand", to->desc->name);
		return MM_ERR;
	}
	if (!m->from_mode && to)
		return mm_engine_check_other_modes(e, m->domain, profile, m->to_mode, err);
	return MM_OK;
}

int mm_migrate_run(struct mm_engine *e, enum mm_kind kind, const char *domain, const char *mode,
                   const char *profile, const struct mm_switch_options *opts,
                   struct mm_switch_report *report, char *err)
{
	struct mm_domain_row row = { 0 };
	struct mm_migration m = { 0 };
	long long started;
	long calls;
	int found = 0, same = 0, rc;

	report_begin(report, &started, &calls);
	rc = refuse_open(e, domain, err);
	if (rc == MM_OK)
		rc = mm_prepare_refuse_unfinished(e->state, domain, err);
	if (rc == MM_OK)
		rc = mm_state_get_domain(e->state, domain, &row, &found, err);
	if (rc == MM_OK)
		rc = plan_migration(kind, domain, mode, &row, found, &m, &same, err);
	if (rc != MM_OK || same) {
		report->outcome = same ? "unchanged" : NULL;
		goto out;
	}
	m.profile = strdup(profile);
	if (!m.profile) {
		snprintf(err, MM_ERR_MAX, "out of memory");
		rc = MM_ERR;
		goto out;
	}
	if ((rc = check_modes(e, kind, &m, profile, report, err)) != MM_OK)
		goto out;
	rc = start(e, &m, opts, report, err);
out:
	report_end(report, started, calls);
	mm_migration_clear(&m);
	mm_domain_row_clear(&row);
	return rc;
}

int mm_migrate_switch(struct mm_engine *e, const char *domain, const char *to_mode,
                      const char *profile, const struct mm_switch_options *opts,
                      struct mm_switch_report *report, char *err)
{
	return mm_migrate_run(e, MM_KIND_SWITCH, domain, to_mode, profile, opts, report, err);
}

/* Locks the domain and re-reads its open migration (another run may have
 * finished it meanwhile), then runs fn on it. */
static int with_open_migration(struct mm_engine *e, const char *domain, int force,
                               int (*fn)(struct mm_run *r), struct mm_switch_report *report,
                               char *err)
{
	struct mm_migration m = { 0 };
	long long started;
	long calls;
	struct mm_run r;
	int found = 0, rc;

	report_begin(report, &started, &calls);
	memset(&r, 0, sizeof(r));
	if ((rc = lock(e, domain, err)) != MM_OK)
		return rc;
	rc = mm_state_migration_get(e->state, domain, &m, &found, err);
	if (rc == MM_OK && !found) {
		report->outcome = "unchanged";
		goto out;
	}
	if (rc == MM_OK)
		rc = mm_run_init(&r, e, &m, report, force, err);
	r.resumed = 1;
	if (rc == MM_OK)
		rc = fn(&r);
	if (r.m)
		mm_prepare_after_migration(e, &m, report->outcome);
out:
	unlock(e, domain);
	report_end(report, started, calls);
	mm_run_clear(&r);
	mm_migration_clear(&m);
	return rc;
}

static int resume_run(struct mm_run *r)
{
	int back = 0, rc = mm_run_rolling_back(r, &back);

	if (rc == MM_OK)
		rc = back ? mm_run_rollback(r, MM_OK) : mm_run_forward(r);
	return rc;
}

int mm_migrate_resume(struct mm_engine *e, const char *domain, int force,
                      struct mm_switch_report *report, char *err)
{
	return with_open_migration(e, domain, force, resume_run, report, err);
}

static int abort_run(struct mm_run *r)
{
	int began = 0, rc = mm_state_journal_has(r->e->state, r->m->id, "teardown_old", "begin",
	                                         &began, r->err);

	if (rc == MM_OK && (began || r->kind == MM_KIND_TEARDOWN ||
	                    (r->kind == MM_KIND_SETUP && r->m->from_mode))) {
		snprintf(r->err, MM_ERR_MAX,
		         "%s: the %s %s -> %s has changed what it cannot undo, so it can only go forward: run 'mailmode resume %s'",
		         r->m->domain, mm_migrate_kind_name(r->kind),
		         r->m->from_mode ? r->m->from_mode : "none",
		         r->m->to_mode ? r->m->to_mode : "none", r->m->domain);
		rc = MM_REFUSED;
	}
	if (rc == MM_OK)
		rc = mm_state_journal(r->e->state, r->m->id, "abort", "end", NULL, r->err);
	if (rc == MM_OK && r->kind == MM_KIND_ADOPT)
		rc = mm_state_migration_close(r->e->state, r->m->id, "aborted", "adopt aborted", r->err);
	else if (rc == MM_OK)
		rc = mm_run_rollback(r, MM_OK);
	if (rc == MM_OK)
		r->report->outcome = "aborted";
	return rc;
}

int mm_migrate_abort(struct mm_engine *e, const char *domain, struct mm_switch_report *report,
                     char *err)
{
	return with_open_migration(e, domain, 0, abort_run, report, err);
}
