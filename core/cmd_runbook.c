/* runbook plan|run FILE, resume RUN, report RUN: many domains in one go,
 * in parallel within the limits of each tenant and DNS zone, resumable,
 * each run recorded with every domain's status and reason. */
#include "cli.h"

#include "limiter.h"
#include "migrate.h"
#include "ops.h"
#include "report.h"
#include "runbook.h"
#include "state_runs.h"

#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* What a parked thread keeps of its stack below its own frame: the calls
 * park makes (the sleep, madvise itself) run there. */
#define PARK_STACK_MARGIN (16 * 1024)

/* One line of the runbook, checked against the config, plugins and state. */
struct job {
	const struct mm_runbook_entry *entry;
	char profile[320];
	char *from_mode;            /* the domain's mode now (NULL: none) */
	int resume;                 /* has an unfinished migration */
	int done;                   /* already in the target mode */
	char tenant[256];           /* the profile's tenant, for per-tenant totals */
	char skip[MM_ERR_MAX];      /* --skip-failed: why it is left out, else "" */
	long long resume_id;        /* the open migration it resumes */
	/* filled by the run */
	int started;
	int rc;
	long long started_ms, finished_ms, migration_id;
	struct mm_switch_report report;
	char error[MM_ERR_MAX];
};

/* A worker: one domain at a time, on its own state connection (SQLite
 * connections are not shared between threads' transactions) and line of
 * the progress board.  Each domain of the run has a thread of its own, but
 * it runs only while it holds a worker: when it waits (a verify poll's
 * next attempt, the settle wait) it gives its worker back and takes a free
 * one when due.  The waits of all domains overlap, while the workers, the
 * tenant cap and the zone locks (held only during calls) bound what is in
 * flight. */
struct worker {
	struct mm_state *state;
	int slot;
	int busy;
};

struct run {
	struct mm_ctx *ctx;
	const struct mm_runbook *rb;
	struct job *jobs;
	size_t count;
	size_t next;
	int failures;               /* this run's, not earlier runs' */
	int stopped;                /* the failure budget is spent */
	long long id, base;         /* the run's number; the newest migration before it */
	struct mm_limiter *limiter;
	struct worker *workers;
	int nworkers;
	int due;                    /* parked domains due again, waiting for a worker */
	size_t canary_end;          /* jobs before it are the canary stage */
	int canary_open;            /* canary domains started, not yet verified
	                               or ended: none after the stage starts
	                               meanwhile */
	int live;                   /* domain threads not ended */
	pthread_mutex_t lock;
	pthread_cond_t changed;     /* a worker was given back, a thread ended */
};

/* One domain's thread. */
struct task {
	struct run *run;
	struct job *job;
	struct worker *worker;      /* held while it runs, NULL while parked */
	struct mm_engine engine;
	int canary;                 /* counted in run->canary_open */
};

static void free_jobs(struct job *jobs, size_t count)
{
	size_t i;

	for (i = 0; jobs && i < count; i++)
		free(jobs[i].from_mode);
	free(jobs);
}

static int check_mode(struct mm_ctx *ctx, struct mm_runbook *rb, const struct job *job,
                      const char *mode)
{
	struct mm_plugin *p = mm_plugins_find(&ctx->plugins, mode);
	struct mm_op op = { .plugin = p, .domain = job->entry->domain, .profile = job->profile };
	struct mailmode_diag diag;

	if (!p) {
		mm_runbook_error(rb, job->entry->line, "%s: unknown mode '%s'", job->entry->domain, mode);
		return -1;
	}
	if (mm_op_validate(&op, &diag) != MM_OK) {
		mm_runbook_error(rb, job->entry->line, "%s: %s", job->entry->domain, diag.summary);
		return -1;
	}
	return 0;
}

/* The Microsoft 365 tenant a profile works in, for per-tenant totals:
 * [tenant NAME] tenant = ..., else NAME, else "(none)" (a gateway-only
 * profile). */
static void find_tenant(const struct mm_config *cfg, const char *profile, char *out, size_t len)
{
	char section[320];
	const char *name, *tenant;

	snprintf(section, sizeof(section), "profile %s", profile);
	if (!(name = mm_config_get(cfg, section, "tenant"))) {
		snprintf(out, len, "(none)");
		return;
	}
	snprintf(section, sizeof(section), "tenant %s", name);
	tenant = mm_config_get(cfg, section, "tenant");
	snprintf(out, len, "%s", tenant ? tenant : name);
}

/* Checks every line against the config, the plugins and the state; every
 * problem is added to rb->errors with its line number. */
static int prepare(struct mm_ctx *ctx, struct mm_runbook *rb, struct job **jobs_out)
{
	struct job *jobs = calloc(rb->count ? rb->count : 1, sizeof(*jobs));
	size_t i;
	int rc;

	*jobs_out = jobs;
	if (!jobs)
		return mm_fail(ctx, MM_ERR, "out of memory");
	if ((rc = mm_load_plugins(ctx)) != MM_OK || (rc = mm_open_state(ctx, 0)) != MM_OK)
		return rc;
	for (i = 0; i < rb->count; i++) {
		struct job *job = &jobs[i];
		struct mm_domain_row row = { 0 };
		struct mm_migration m = { 0 };
		char section[320], why[MM_ERR_MAX];
		const char *given = rb->entries[i].profile[0] ? rb->entries[i].profile : NULL;
		int found = 0;

		job->entry = &rb->entries[i];
		if (ctx->state &&
		    (mm_state_get_domain(ctx->state, job->entry->domain, &row, &found, ctx->err) != MM_OK ||
		     mm_state_migration_get(ctx->state, job->entry->domain, &m, &job->resume,
		                            ctx->err) != MM_OK))
			return MM_ERR;
		if (!given && found && row.profile)
			snprintf(job->profile, sizeof(job->profile), "%s", row.profile);
		else if (mm_config_profile(ctx->config, given, section, sizeof(section), why,
		                           sizeof(why)) != 0)
			mm_runbook_error(rb, job->entry->line, "%s: %s", job->entry->domain, why);
		else
			snprintf(job->profile, sizeof(job->profile), "%s", section + strlen("profile "));
		if (found && row.mode)
			job->from_mode = strdup(row.mode);
		job->resume_id = job->resume ? m.id : 0;
		if (job->profile[0])
			find_tenant(ctx->config, job->profile, job->tenant, sizeof(job->tenant));
		job->done = !job->resume && found && row.mode && strcmp(row.mode, job->entry->mode) == 0;
		if (job->profile[0] && check_mode(ctx, rb, job, job->entry->mode) == 0 && job->from_mode)
			check_mode(ctx, rb, job, job->from_mode);
		mm_migration_clear(&m);
		mm_domain_row_clear(&row);
	}
	if (rb->nerrors) {
		fputs(rb->errors, stderr);
		cJSON_AddStringToObject(ctx->doc, "errors", rb->errors);
		return mm_fail(ctx, MM_ERR, "runbook %s: %d error(s); nothing was run", rb->path,
		               rb->nerrors);
	}
	return MM_OK;
}

/* The runbook's switch options; --max-settle overrides its max_settle. */
static struct mm_switch_options switch_options(const struct mm_ctx *ctx,
                                               const struct mm_runbook *rb)
{
	struct mm_switch_options opts = { .verify_timeout_ms = rb->verify_timeout_ms,
	                                  .poll_interval_ms = rb->poll_interval_ms,
	                                  .max_settle_ms = rb->max_settle_ms };

	if (ctx->args.max_settle_ms > 0)
		opts.max_settle_ms = ctx->args.max_settle_ms;
	return opts;
}

/* The prepare phase: the MX TTL of each domain whose switch waits for it
 * (its new mode replaces MX records) lowered ahead of the window, one
 * after another (prepare.h). */
static int prepare_runbook(struct mm_ctx *ctx, const struct mm_runbook *rb, struct job *jobs)
{
	long ttl = ctx->args.ttl > 0 ? ctx->args.ttl : rb->prepare_ttl;
	cJSON *list = cJSON_AddArrayToObject(ctx->doc, "domains");
	size_t i, failed = 0;
	int rc;

	if ((rc = mm_open_state(ctx, 1)) != MM_OK)
		return rc;
	for (i = 0; i < rb->count; i++) {
		const struct job *job = &jobs[i];
		struct mm_plugin *to = mm_plugins_find(&ctx->plugins, job->entry->mode);
		cJSON *item = cJSON_CreateObject();
		const char *skip = job->done ? "already in that mode: skipped"
		                   : job->resume ? "unfinished migration: skipped"
		                   : !mm_plugin_has_mx_ttl(to) ? "its new mode replaces no MX records: no cache wait to shorten"
		                   : NULL;

		cJSON_AddItemToArray(list, item);
		cJSON_AddStringToObject(item, "domain", job->entry->domain);
		if (skip) {
			cJSON_AddStringToObject(item, "action", skip);
			if (!ctx->output.json)
				printf("%s: %s\n", job->entry->domain, skip);
			continue;
		}
		if (mm_prepare_domain(ctx, job->entry->domain, job->profile, ttl, 0, item) == MM_OK)
			continue;
		failed++;
		cJSON_AddStringToObject(item, "error", ctx->err);
		fprintf(stderr, "mailmode: error: %s\n", ctx->err);
	}
	if (failed)
		return mm_fail(ctx, MM_ERR, "runbook %s: %zu of %zu domain(s) not prepared", rb->path,
		               failed, rb->count);
	return MM_OK;
}

/* One domain's switch plan into item; a plan that fails is reported in
 * it (and on stderr) and does not stop the others'. */
static int plan_job(struct mm_ctx *ctx, const struct job *job, cJSON *item,
                    const struct mm_switch_options *opts)
{
	const char *domain = job->entry->domain;
	struct mm_domain_row row = { 0 };
	int found = 0, rc = MM_OK;

	if (ctx->state)
		rc = mm_state_get_domain(ctx->state, domain, &row, &found, ctx->err);
	if (rc == MM_OK)
		rc = mm_show_switch_plan(ctx, cJSON_AddArrayToObject(item, "plan"), domain,
		                         job->profile, mm_plugins_find(&ctx->plugins, job->entry->mode),
		                         job->from_mode ? mm_plugins_find(&ctx->plugins, job->from_mode)
		                                        : NULL,
		                         &row, opts);
	mm_domain_row_clear(&row);
	if (rc != MM_OK) {
		/* The plugin's diagnostic belongs to the domain, not the run. */
		cJSON *diag = cJSON_DetachItemFromObjectCaseSensitive(ctx->doc, "diagnostic");

		cJSON_AddStringToObject(item, "error", ctx->err);
		if (diag)
			cJSON_AddItemToObject(item, "diagnostic", diag);
		fprintf(stderr, "mailmode: error: %s\n", ctx->err);
	}
	return rc;
}

static int plan_runbook(struct mm_ctx *ctx, const struct mm_runbook *rb, struct job *jobs)
{
	struct mm_switch_options opts = switch_options(ctx, rb);
	cJSON *list = cJSON_AddArrayToObject(ctx->doc, "domains");
	size_t i, failed = 0;

	for (i = 0; i < rb->count; i++) {
		struct job *job = &jobs[i];
		const char *domain = job->entry->domain;
		cJSON *item = cJSON_CreateObject();

		cJSON_AddItemToArray(list, item);
		cJSON_AddNumberToObject(item, "line", job->entry->line);
		cJSON_AddStringToObject(item, "domain", domain);
		cJSON_AddStringToObject(item, "to", job->entry->mode);
		cJSON_AddStringToObject(item, "profile", job->profile);
		if (!ctx->output.json)
			printf("\nline %d: %s: %s -> %s (profile %s)\n", job->entry->line, domain,
			       job->from_mode ? job->from_mode : "none", job->entry->mode, job->profile);
		if (job->done || job->resume || job->skip[0]) {
			const char *what = job->skip[0] ? job->skip
			                   : job->done ? "already in that mode: skipped"
			                               : "unfinished migration: resumed";

			cJSON_AddStringToObject(item, "action", what);
			if (!ctx->output.json)
				printf("  %s\n", what);
			continue;
		}
		if (plan_job(ctx, job, item, &opts) != MM_OK)
			failed++;
	}
	if (!ctx->output.json)
		printf("\n");
	mm_plan_summary(ctx, list);
	if (failed)
		return mm_fail(ctx, MM_ERR, "runbook %s: the plan of %zu of %zu domain(s) failed",
		               rb->path, failed, rb->count);
	return MM_OK;
}

/* The next job to start, or NULL when all started or the budget is spent
 * (run->lock held). */
static struct job *take_job(struct run *run)
{
	struct job *job = NULL;

	if (!run->stopped && run->next < run->count) {
		job = &run->jobs[run->next++];
		job->started = 1;
	}
	return job;
}

/* A free worker, waited for (run->lock held).  A parked domain due again
 * goes before a new one: chains already begun finish first. */
static struct worker *take_worker(struct run *run, int due)
{
	int i;

	run->due += due;
	for (;;) {
		for (i = 0; (due || !run->due) && i < run->nworkers; i++)
			if (!run->workers[i].busy) {
				run->workers[i].busy = 1;
				run->due -= due;
				return &run->workers[i];
			}
		pthread_cond_wait(&run->changed, &run->lock);
	}
}

static void give_worker(struct run *run, struct worker *w)
{
	w->busy = 0;
	pthread_cond_broadcast(&run->changed);
}

/* A canary domain verified or ended (run->lock held). */
static void leave_canary(struct run *run, struct task *t)
{
	if (!t->canary)
		return;
	t->canary = 0;
	run->canary_open--;
	pthread_cond_broadcast(&run->changed);
}

/* A parked thread's stack below its frame holds nothing until it runs
 * again: given back to the system while it waits (36 KiB a thread, of 500
 * parked domains 18 MiB of the run's peak RSS, bench/runbook).  Touched
 * again, the pages come back zeroed.  Where the frame is not on the
 * thread's stack (a sanitizer's fake stack), nothing is given back. */
static void release_stack(void)
{
#ifdef __GLIBC__
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), low, end;
	pthread_attr_t attr;
	size_t size = 0;
	void *base = NULL;
	char here;

	if (pthread_getattr_np(pthread_self(), &attr) != 0)
		return;
	if (pthread_attr_getstack(&attr, &base, &size) == 0) {
		low = ((uintptr_t)base + page - 1) & ~(page - 1);
		end = ((uintptr_t)&here - PARK_STACK_MARGIN) & ~(page - 1);
		if ((uintptr_t)&here > (uintptr_t)base + PARK_STACK_MARGIN &&
		    (uintptr_t)&here < (uintptr_t)base + size && end > low)
			madvise((void *)low, end - low, MADV_DONTNEED);
	}
	pthread_attr_destroy(&attr);
#endif
}

/* The engine's waiter (limiter.h): away, the domain gives its worker back
 * so that it runs others meanwhile; back, it takes a free one again, with
 * its state connection and board line. */
static void away_from_worker(void *arg, int away)
{
	struct task *t = arg;
	struct run *run = t->run;
	struct mm_engine *e = &t->engine;

	if (away) {
		if (run->ctx->output.progress_live)
			mm_engine_progress(e, "(idle)");
		pthread_mutex_lock(&run->lock);
		give_worker(run, t->worker);
		t->worker = NULL;
		if (e->verified)
			leave_canary(run, t);
		pthread_mutex_unlock(&run->lock);
		return;
	}
	pthread_mutex_lock(&run->lock);
	t->worker = take_worker(run, 1);
	pthread_mutex_unlock(&run->lock);
	e->state = t->worker->state;
	e->slot = t->worker->slot;
}

/* The engine's wait hook: the domain's worker runs others until it is due. */
static void park(struct mm_engine *e, long long until_ms)
{
	long long now;

	away_from_worker(e->wait_arg, 1);
	release_stack();
	while ((now = mm_host_wall_ms(NULL)) < until_ms)
		mm_host_sleep_ms(NULL, until_ms - now);
	away_from_worker(e->wait_arg, 0);
}

static void job_finished(struct run *run, struct job *job)
{
	if (job->rc != MM_OK && ++run->failures >= run->rb->failure_budget &&
	    run->rb->failure_budget > 0 && !run->stopped) {
		run->stopped = 1;
		mm_log(&run->ctx->output, MAILMODE_LOG_WARNING,
		       "failure budget of %d spent: no new switch starts; running ones finish",
		       run->rb->failure_budget);
	}
}

/* A domain's status in the run and why: switched, unchanged, failed,
 * not started or skipped. */
static const char *job_status(const struct run *run, const struct job *job, char *reason,
                              size_t len)
{
	reason[0] = '\0';
	if (job->skip[0]) {
		snprintf(reason, len, "%s", job->skip);
		return "skipped";
	}
	if (job->done) {
		snprintf(reason, len, "already in %s mode", job->entry->mode);
		return "skipped";
	}
	if (!job->started) {
		if (run->stopped)
			snprintf(reason, len, "failure budget of %d reached (%d failure(s) in this run)",
			         run->rb->failure_budget, run->failures);
		else
			snprintf(reason, len, "no worker could take it (see the errors above)");
		return "not started";
	}
	if (job->rc != MM_OK) {
		snprintf(reason, len, "%s", job->error);
		return "failed";
	}
	if (job->report.outcome && strcmp(job->report.outcome, "unchanged") == 0) {
		snprintf(reason, len, "already in %s mode", job->entry->mode);
		return "unchanged";
	}
	return "switched";
}

/* What the engine said, kept as the JSON "result" of earlier versions. */
static const char *result_of(const struct job *job)
{
	if (!job->started)
		return "not started";
	if (job->skip[0] || job->done)
		return "skipped";
	if (job->rc != MM_OK)
		return job->report.outcome ? job->report.outcome : "failed";
	return job->report.outcome ? job->report.outcome : "done";
}

/* The domain's row of the run before it ends: what the runbook says. */
static struct mm_run_domain job_row(const struct job *job, const char *status)
{
	return (struct mm_run_domain){
		.domain = job->entry->domain, .line = job->entry->line, .from_mode = job->from_mode,
		.to_mode = job->entry->mode, .profile = job->profile, .tenant = job->tenant,
		.status = status, .started_ms = job->started_ms, .migration_id = job->resume_id
	};
}

/* The domain's row of the run once it ended, on the caller's connection. */
static int record_job(struct mm_state *st, const struct run *run, const struct job *job,
                      char *err)
{
	char reason[MM_ERR_MAX];
	struct mm_run_domain d = job_row(job, job_status(run, job, reason, sizeof(reason)));

	d.reason = reason[0] ? reason : NULL;
	d.outcome = job->skip[0] ? "failed earlier" : result_of(job);
	d.migration_id = job->migration_id;
	d.finished_ms = job->finished_ms;
	d.verify_attempts = job->report.verify_attempts;
	d.api_calls = job->report.api_calls;
	return mm_runs_record(st, run->id, &d, err);
}

static void run_job(struct mm_engine *e, struct run *run, struct job *job)
{
	const struct mm_ctx *ctx = run->ctx;
	const struct mm_runbook *rb = run->rb;
	struct mm_switch_options opts = switch_options(ctx, rb);
	char err[MM_ERR_MAX];

	if (job->done || job->skip[0])
		return;
	if (job->resume) {
		job->rc = mm_migrate_resume(e, job->entry->domain, 0, &job->report, job->error);
	} else {
		job->rc = mm_migrate_switch(e, job->entry->domain, job->entry->mode, job->profile,
		                            &opts, &job->report, job->error);
	}
	job->finished_ms = mm_host_wall_ms(NULL);
	job->migration_id = job->resume_id;
	if (!job->resume &&
	    mm_runs_migration_of(e->state, job->entry->domain, run->base, &job->migration_id,
	                         err) != MM_OK)
		mm_log(e->output, MAILMODE_LOG_ERROR, "%s", err);
	mm_engine_progress(e, "%s: %s", job->entry->domain,
	                   job->rc == MM_OK ? job->report.outcome : job->error);
}

/* A domain's thread: its switch (or resume), recorded in the run as it
 * starts and as it ends (a run killed midway keeps what it did). */
static void *domain_main(void *arg)
{
	struct task *t = arg;
	struct run *run = t->run;
	struct job *job = t->job;
	struct mm_engine *e = &t->engine;
	char err[MM_ERR_MAX];

	if (!job->done && !job->skip[0]) {
		struct mm_run_domain d;

		mm_engine_progress(e, "%s: starting (%s -> %s)", job->entry->domain,
		                   job->from_mode ? job->from_mode : "none", job->entry->mode);
		job->started_ms = mm_host_wall_ms(NULL);
		d = job_row(job, "running");
		if (mm_runs_record(e->state, run->id, &d, err) != MM_OK)
			mm_log(&run->ctx->output, MAILMODE_LOG_ERROR, "%s", err);
	}
	run_job(e, run, job);
	pthread_mutex_lock(&run->lock);
	job_finished(run, job);
	pthread_mutex_unlock(&run->lock);
	if (record_job(e->state, run, job, err) != MM_OK)
		mm_log(&run->ctx->output, MAILMODE_LOG_ERROR, "%s", err);
	if (run->ctx->output.progress_live)
		mm_engine_progress(e, "(idle)");
	pthread_mutex_lock(&run->lock);
	give_worker(run, t->worker);
	leave_canary(run, t);
	run->live--;
	pthread_mutex_unlock(&run->lock);
	free(t);
	return NULL;
}

/* Starts job's thread on worker w (run->lock held); MM_ERR when it cannot. */
static int start_domain(struct run *run, struct job *job, struct worker *w)
{
	struct mm_ctx *ctx = run->ctx;
	struct task *t = calloc(1, sizeof(*t));
	pthread_attr_t attr;
	pthread_t thread;
	int rc = MM_ERR;

	if (!t || pthread_attr_init(&attr) != 0) {
		free(t);
		return MM_ERR;
	}
	*t = (struct task){ .run = run, .job = job, .worker = w,
	                    .canary = job < run->jobs + run->canary_end };
	t->engine = (struct mm_engine){ .state = w->state, .plugins = &ctx->plugins,
	                                .output = &ctx->output, .limiter = run->limiter,
	                                .slot = w->slot, .command = "runbook run",
	                                .lock_wait_ms = ctx->args.lock_timeout_ms, .wait = park,
	                                .wait_arg = t, .waiter = { away_from_worker, t } };
	if (pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
	    pthread_create(&thread, &attr, domain_main, t) == 0) {
		run->live++;
		run->canary_open += t->canary;
		rc = MM_OK;
	} else {
		free(t);
	}
	pthread_attr_destroy(&attr);
	return rc;
}

/* Where the canary stage ends: after the first rb->canary jobs that
 * switch (skipped ones do not count). */
static size_t canary_end(const struct run *run)
{
	size_t k;
	int left = run->rb->canary;

	for (k = 0; k < run->count && left > 0; k++)
		if (!run->jobs[k].done && !run->jobs[k].skip[0])
			left--;
	return k;
}

/* Gives each job a worker as one is free, then waits for every domain's
 * thread to end.  The canary stage first: no domain after it starts until
 * each of its domains verified or ended.  MM_ERR when no thread could be
 * started. */
static int schedule(struct run *run)
{
	struct worker *w;
	struct job *job;
	int launched = 0;

	pthread_mutex_lock(&run->lock);
	run->canary_end = canary_end(run);
	for (;;) {
		while (!run->stopped && run->next >= run->canary_end && run->canary_open > 0)
			pthread_cond_wait(&run->changed, &run->lock);
		w = take_worker(run, 0);
		if (!(job = take_job(run))) {
			give_worker(run, w);
			break;
		}
		if (start_domain(run, job, w) != MM_OK) {
			job->started = 0;
			give_worker(run, w);
			mm_log(&run->ctx->output, MAILMODE_LOG_ERROR,
			       "cannot start a thread for %s: it and the domains after it are not started",
			       job->entry->domain);
			break;
		}
		launched++;
	}
	while (run->live > 0)
		pthread_cond_wait(&run->changed, &run->lock);
	pthread_mutex_unlock(&run->lock);
	return launched || !run->count ? MM_OK : MM_ERR;
}

struct totals {
	int switched, unchanged, skipped, failed, not_started;
	long calls;
};

static void count_status(struct totals *t, const char *status, long calls)
{
	t->calls += calls;
	if (strcmp(status, "switched") == 0)
		t->switched++;
	else if (strcmp(status, "unchanged") == 0)
		t->unchanged++;
	else if (strcmp(status, "skipped") == 0)
		t->skipped++;
	else if (strcmp(status, "failed") == 0)
		t->failed++;
	else
		t->not_started++;
}

static void report_job(struct mm_ctx *ctx, const struct run *run, const struct job *job,
                       cJSON *list, struct totals *t)
{
	char reason[MM_ERR_MAX];
	const char *status = job_status(run, job, reason, sizeof(reason));
	cJSON *item = cJSON_CreateObject();

	count_status(t, status, job->report.api_calls);
	cJSON_AddItemToArray(list, item);
	cJSON_AddStringToObject(item, "domain", job->entry->domain);
	cJSON_AddNumberToObject(item, "line", job->entry->line);
	if (job->from_mode)
		cJSON_AddStringToObject(item, "from", job->from_mode);
	else
		cJSON_AddNullToObject(item, "from");
	cJSON_AddStringToObject(item, "to", job->entry->mode);
	cJSON_AddStringToObject(item, "tenant", job->tenant);
	cJSON_AddStringToObject(item, "status", status);
	cJSON_AddStringToObject(item, "reason", reason);
	cJSON_AddStringToObject(item, "result", result_of(job));
	cJSON_AddNumberToObject(item, "elapsed_ms", (double)job->report.elapsed_ms);
	cJSON_AddNumberToObject(item, "verify_attempts", job->report.verify_attempts);
	cJSON_AddNumberToObject(item, "api_calls", (double)job->report.api_calls);
	if (job->rc != MM_OK)
		cJSON_AddStringToObject(item, "error", job->error);
	if (!ctx->output.json)
		printf("%-32s %-10s %-10s %-12s %9.1f %8d %6ld%s%s\n", job->entry->domain,
		       job->from_mode ? job->from_mode : "-", job->entry->mode, status,
		       (double)job->report.elapsed_ms / 1000.0, job->report.verify_attempts,
		       job->report.api_calls, reason[0] ? "  " : "", reason);
}

static int report(struct mm_ctx *ctx, const struct run *run, long long wall_ms)
{
	cJSON *list = cJSON_AddArrayToObject(ctx->doc, "domains");
	cJSON *totals = cJSON_AddObjectToObject(ctx->doc, "totals");
	struct totals t = { 0 };
	size_t i;

	if (!ctx->output.json)
		printf("%-32s %-10s %-10s %-12s %9s %8s %6s\n", "DOMAIN", "FROM", "TO", "STATUS",
		       "SECONDS", "ATTEMPTS", "CALLS");
	for (i = 0; i < run->count; i++)
		report_job(ctx, run, &run->jobs[i], list, &t);
	cJSON_AddNumberToObject(ctx->doc, "run", (double)run->id);
	cJSON_AddNumberToObject(totals, "domains", (double)run->count);
	cJSON_AddNumberToObject(totals, "switched", t.switched);
	cJSON_AddNumberToObject(totals, "unchanged", t.unchanged);
	cJSON_AddNumberToObject(totals, "skipped", t.skipped);
	cJSON_AddNumberToObject(totals, "failed", t.failed);
	cJSON_AddNumberToObject(totals, "not_started", t.not_started);
	cJSON_AddNumberToObject(totals, "api_calls", (double)t.calls);
	cJSON_AddNumberToObject(totals, "wall_ms", (double)wall_ms);
	if (!ctx->output.json)
		printf("\nrun %lld, %zu domains: %d switched, %d unchanged, %d skipped, %d failed, %d not started; %ld API calls; %.1f s\n",
		       run->id, run->count, t.switched, t.unchanged, t.skipped, t.failed,
		       t.not_started, t.calls, (double)wall_ms / 1000.0);
	if (t.failed || t.not_started)
		return mm_fail(ctx, MM_ERR, "runbook %s: %d failed, %d not started (run %lld)",
		               run->rb->path, t.failed, t.not_started, run->id);
	return MM_OK;
}

/* The options of the run, kept with it: what a change board is shown. */
static char *run_options(const struct mm_ctx *ctx, const struct mm_runbook *rb, int parallel,
                         long long previous)
{
	cJSON *o = cJSON_CreateObject(), *only = cJSON_AddArrayToObject(o, "only");
	char *text;
	int i;

	for (i = 0; i < ctx->args.nonly; i++)
		cJSON_AddItemToArray(only, cJSON_CreateString(ctx->args.only[i]));
	cJSON_AddBoolToObject(o, "skip_failed", ctx->args.skip_failed);
	cJSON_AddNumberToObject(o, "parallel", parallel);
	cJSON_AddNumberToObject(o, "tenant_cap", rb->tenant_cap);
	cJSON_AddNumberToObject(o, "failure_budget", rb->failure_budget);
	cJSON_AddNumberToObject(o, "canary", rb->canary);
	if (previous)
		cJSON_AddNumberToObject(o, "after_run", (double)previous);
	text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

/* Opens the workers and runs the jobs on them; records the jobs none
 * started. */
static int run_workers(struct mm_ctx *ctx, struct run *run, int parallel)
{
	int i, started, rc = MM_OK;
	size_t k;

	run->workers = calloc((size_t)parallel, sizeof(*run->workers));
	if (!run->workers)
		return mm_fail(ctx, MM_ERR, "out of memory");
#ifdef M_ARENA_MAX
	/* Each domain has a thread, and glibc gives threads arenas of their
	 * own (up to 8 a core), each keeping what its calls freed: at 500
	 * domains most of the memory (measured by bench/runbook: 95 MiB).
	 * The threads mostly wait, so one arena serves them all. */
	mallopt(M_ARENA_MAX, 1);
#endif
	/* The run goes on with the workers that could connect; with none,
	 * every domain is recorded as not started. */
	for (i = 0; i < parallel; i++) {
		char err[MM_ERR_MAX];

		if (mm_state_open(ctx->state_path, ctx->args.lock_timeout_ms,
		                  &run->workers[run->nworkers].state, err) != MM_OK) {
			mm_log(&ctx->output, MAILMODE_LOG_ERROR, "%s", err);
			continue;
		}
		run->workers[run->nworkers].slot = run->nworkers;
		run->nworkers++;
	}
	mm_board_open(&ctx->output, run->nworkers);
	started = run->nworkers && schedule(run) == MM_OK;
	mm_board_close(&ctx->output);
	for (i = 0; i < run->nworkers; i++)
		mm_state_close(run->workers[i].state);
	free(run->workers);
	for (k = 0; k < run->count && rc == MM_OK; k++)
		if (!run->jobs[k].started)
			rc = record_job(ctx->state, run, &run->jobs[k], ctx->err);
	if (rc == MM_OK)
		rc = mm_runs_finish(ctx->state, run->id, ctx->err);
	if (rc == MM_OK && !started)
		rc = mm_fail(ctx, MM_ERR, "cannot start threads for the domains");
	return rc;
}

static int run_runbook(struct mm_ctx *ctx, const struct mm_runbook *rb, const char *key,
                       long long previous, struct job *jobs)
{
	struct run run = { .ctx = ctx, .rb = rb, .jobs = jobs, .count = rb->count };
	int parallel = ctx->args.parallel > 0 ? ctx->args.parallel : rb->parallel;
	long long started = mm_host_mono_ms(NULL);
	struct mm_run_domain *rows = NULL;
	char *options = NULL;
	size_t i;
	int rc;

	if ((rc = mm_open_state(ctx, 1)) != MM_OK)
		return rc;
	if ((size_t)parallel > rb->count)
		parallel = rb->count ? (int)rb->count : 1;
	run.limiter = mm_limiter_new(rb->tenant_cap);
	options = run_options(ctx, rb, parallel, previous);
	rows = calloc(rb->count ? rb->count : 1, sizeof(*rows));
	if (!run.limiter || !options || !rows) {
		rc = mm_fail(ctx, MM_ERR, "out of memory");
		goto out;
	}
	/* The tenant cap and zone limit hold for every process on the state. */
	if ((rc = mm_limiter_share(run.limiter, ctx->state_path, ctx->args.lock_timeout_ms,
	                           ctx->err)) != MM_OK)
		goto out;
	for (i = 0; i < rb->count; i++)
		rows[i] = job_row(&jobs[i], "pending");
	if ((rc = mm_runs_open(ctx->state, key, options, rows, rb->count, &run.id, &run.base,
	                       ctx->err)) != MM_OK)
		goto out;
	pthread_mutex_init(&run.lock, NULL);
	pthread_cond_init(&run.changed, NULL);
	rc = run_workers(ctx, &run, parallel);
	pthread_cond_destroy(&run.changed);
	pthread_mutex_destroy(&run.lock);
	if (rc == MM_OK)
		rc = report(ctx, &run, mm_host_mono_ms(NULL) - started);
out:
	free(rows);
	free(options);
	mm_limiter_free(run.limiter);
	return rc;
}

/* --only: keeps the listed domains of the runbook, in its order; a name it
 * does not list is an error. */
static int select_only(struct mm_ctx *ctx, struct mm_runbook *rb)
{
	char *keep = calloc(rb->count ? rb->count : 1, 1), name[MM_DOMAIN_MAX + 1], word[512];
	size_t i, n = 0;
	int k, rc = MM_OK;

	if (!keep)
		return mm_fail(ctx, MM_ERR, "out of memory");
	for (k = 0; k < ctx->args.nonly && rc == MM_OK; k++) {
		const char *p = ctx->args.only[k];

		while (*p && rc == MM_OK) {
			size_t len = strcspn(p, ",");

			snprintf(word, sizeof(word), "%.*s", (int)len, p);
			p += len + (p[len] == ',');
			if ((rc = mm_domain_arg(ctx, word, name)) != MM_OK)
				break;
			for (i = 0; i < rb->count && strcmp(rb->entries[i].domain, name) != 0; i++)
				;
			if (i == rb->count)
				rc = mm_fail(ctx, MM_USAGE, "--only %s: runbook %s does not list it", name,
				             rb->path);
			else
				keep[i] = 1;
		}
	}
	for (i = 0; rc == MM_OK && i < rb->count; i++)
		if (keep[i])
			rb->entries[n++] = rb->entries[i];
	if (rc == MM_OK)
		rb->count = n;
	free(keep);
	return rc;
}

struct skip_scan {
	struct job *jobs;
	size_t count;
	long long previous;
};

/* A domain that failed in the previous run (or was left out there for an
 * earlier failure) is left out again. */
static int mark_failed(const struct mm_run_domain *d, void *arg)
{
	struct skip_scan *scan = arg;
	size_t i;

	if (strcmp(d->status, "failed") != 0 &&
	    !(d->outcome && strcmp(d->outcome, "failed earlier") == 0))
		return MM_OK;
	for (i = 0; i < scan->count; i++) {
		char *skip = scan->jobs[i].skip;

		if (strcmp(scan->jobs[i].entry->domain, d->domain) != 0)
			continue;
		if (strcmp(d->status, "failed") == 0)
			snprintf(skip, MM_ERR_MAX, "--skip-failed: failed in run %lld: %s",
			         scan->previous, d->reason ? d->reason : "no reason recorded");
		else    /* left out there already: the reason names the run it failed in */
			snprintf(skip, MM_ERR_MAX, "%s", d->reason ? d->reason : "--skip-failed");
	}
	return MM_OK;
}

static int skip_failed(struct mm_ctx *ctx, const struct mm_runbook *rb, struct job *jobs,
                       long long previous)
{
	struct skip_scan scan = { jobs, rb->count, previous };

	if (!ctx->args.skip_failed || !previous)
		return MM_OK;
	return mm_runs_each_domain(ctx->state, previous, mark_failed, &scan, ctx->err);
}

/* RUN: a run's number or "last". */
static int run_arg(struct mm_ctx *ctx, const char *arg, long long *id)
{
	char *end;
	int rc;

	if ((rc = mm_open_state(ctx, 0)) != MM_OK)
		return rc;
	if (!ctx->state)
		return mm_fail(ctx, MM_ERR, "run %s: no state DB at %s, so no run", arg, ctx->state_path);
	if (strcmp(arg, "last") == 0) {
		if ((rc = mm_runs_last(ctx->state, id, ctx->err)) != MM_OK)
			return rc;
		return *id ? MM_OK : mm_fail(ctx, MM_ERR, "no runbook has been run with %s",
		                             ctx->state_path);
	}
	*id = strtoll(arg, &end, 10);
	if (end == arg || *end || *id <= 0)
		return mm_fail(ctx, MM_USAGE, "run '%s': want a run's number or 'last'", arg);
	return MM_OK;
}

static int runbook_of(const struct mm_run_row *row, void *arg)
{
	snprintf(arg, PATH_MAX, "%s", row->runbook);
	return MM_OK;
}

/* plan, run, resume: the runbook (for resume, the one RUN ran), narrowed
 * by --only, checked, with the previous run's failures left out by
 * --skip-failed. */
static int plan_or_run(struct mm_ctx *ctx, const char *action, const char *path,
                       long long previous)
{
	struct mm_runbook rb;
	struct job *jobs = NULL;
	char key[PATH_MAX];
	int rc;

	cJSON_AddStringToObject(ctx->doc, "runbook", path);
	mm_runbook_load(path, &rb);
	/* One runbook, one name, however it is reached. */
	if (!realpath(path, key))
		snprintf(key, sizeof(key), "%s", path);
	rc = rb.nerrors || !ctx->args.nonly ? MM_OK : select_only(ctx, &rb);
	if (rc == MM_OK)
		rc = prepare(ctx, &rb, &jobs);
	if (rc == MM_OK && !previous && ctx->state)
		rc = mm_runs_previous(ctx->state, key, 0, &previous, ctx->err);
	if (rc == MM_OK)
		rc = skip_failed(ctx, &rb, jobs, previous);
	if (rc == MM_OK)
		rc = strcmp(action, "plan") == 0      ? plan_runbook(ctx, &rb, jobs)
		     : strcmp(action, "prepare") == 0 ? prepare_runbook(ctx, &rb, jobs)
		                                      : run_runbook(ctx, &rb, key, previous, jobs);
	free_jobs(jobs, rb.count);
	mm_runbook_free(&rb);
	return rc;
}

static int resume_run(struct mm_ctx *ctx, const char *arg)
{
	char path[PATH_MAX];
	long long id;
	int found, rc;

	if ((rc = run_arg(ctx, arg, &id)) != MM_OK ||
	    (rc = mm_runs_get(ctx->state, id, runbook_of, path, &found, ctx->err)) != MM_OK)
		return rc;
	if (!found)
		return mm_fail(ctx, MM_ERR, "run %lld: no such run in %s", id, ctx->state_path);
	return plan_or_run(ctx, "run", path, id);
}

static int report_run(struct mm_ctx *ctx, const char *arg)
{
	const struct { const char *path; enum mm_report_format fmt; } out[] = {
		{ ctx->args.html, MM_REPORT_HTML }, { ctx->args.csv, MM_REPORT_CSV },
		{ ctx->args.markdown, MM_REPORT_MARKDOWN }
	};
	struct mm_report *r = NULL;
	long long id;
	size_t i;
	int rc, written = 0;

	if ((rc = run_arg(ctx, arg ? arg : "last", &id)) != MM_OK ||
	    (rc = mm_report_load(ctx->state, id, &r, ctx->err)) != MM_OK)
		goto out;
	mm_report_json(r, ctx->doc);
	for (i = 0; i < sizeof(out) / sizeof(out[0]) && rc == MM_OK; i++) {
		if (!out[i].path)
			continue;
		rc = mm_report_write(r, out[i].fmt, out[i].path, ctx->err);
		if (rc == MM_OK && !ctx->output.json)
			printf("run %lld: wrote %s\n", id, out[i].path);
		written++;
	}
	/* Nothing asked for: the Markdown on stdout, readable in a terminal. */
	if (rc == MM_OK && !written && !ctx->output.json)
		rc = mm_report_write(r, MM_REPORT_MARKDOWN, "-", ctx->err);
out:
	mm_report_free(r);
	return rc;
}

int mm_cmd_runbook(struct mm_ctx *ctx)
{
	const char *action = ctx->args.positional[0], *arg = ctx->args.positional[1];
	int reporting = strcmp(action, "report") == 0;

	if (strcmp(action, "plan") != 0 && strcmp(action, "run") != 0 &&
	    strcmp(action, "resume") != 0 && strcmp(action, "prepare") != 0 && !reporting)
		return mm_fail(ctx, MM_USAGE,
		               "runbook: unknown action '%s' (plan, prepare, run, resume or report)",
		               action);
	if (!arg && !reporting)
		return mm_fail(ctx, MM_USAGE, "runbook %s: needs %s", action,
		               strcmp(action, "resume") == 0 ? "RUN" : "FILE");
	if (reporting && (ctx->args.nonly || ctx->args.skip_failed || ctx->args.parallel))
		return mm_fail(ctx, MM_USAGE,
		               "runbook report: --only, --skip-failed and --parallel are for run and resume");
	if (!reporting && (ctx->args.html || ctx->args.csv || ctx->args.markdown))
		return mm_fail(ctx, MM_USAGE,
		               "runbook %s: --html, --csv and --markdown are for 'runbook report RUN'",
		               action);
	if (reporting)
		return report_run(ctx, arg);
	if (strcmp(action, "resume") == 0)
		return resume_run(ctx, arg);
	return plan_or_run(ctx, action, arg, 0);
}
