/* runbook plan|run FILE: many domains in one go, in parallel within the
 * limits of each tenant and DNS zone, resumable, with a report. */
#include "cli.h"

#include "limiter.h"
#include "migrate.h"
#include "ops.h"
#include "runbook.h"

#include <stdlib.h>
#include <string.h>

/* One line of the runbook, checked against the config, plugins and state. */
struct job {
	const struct mm_runbook_entry *entry;
	char profile[320];
	char *from_mode;            /* the domain's mode now (NULL: none) */
	int resume;                 /* has an unfinished migration */
	int done;                   /* already in the target mode */
	/* filled by the run */
	int started;
	int rc;
	struct mm_switch_report report;
	char error[MM_ERR_MAX];
};

struct run {
	struct mm_ctx *ctx;
	const struct mm_runbook *rb;
	struct job *jobs;
	size_t count;
	size_t next;
	int failures;
	int stopped;                /* the failure budget is spent */
	struct mm_limiter *limiter;
	pthread_mutex_t lock;
};

struct worker {
	struct run *run;
	int slot;
	pthread_t thread;
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

static int plan_runbook(struct mm_ctx *ctx, const struct mm_runbook *rb, struct job *jobs)
{
	struct mm_switch_options opts = switch_options(ctx, rb);
	cJSON *list = cJSON_AddArrayToObject(ctx->doc, "domains");
	size_t i;
	int rc;

	for (i = 0; i < rb->count; i++) {
		struct job *job = &jobs[i];
		const char *domain = job->entry->domain;
		struct mm_domain_row row = { 0 };
		cJSON *item = cJSON_CreateObject();
		int found = 0;

		cJSON_AddItemToArray(list, item);
		cJSON_AddNumberToObject(item, "line", job->entry->line);
		cJSON_AddStringToObject(item, "domain", domain);
		cJSON_AddStringToObject(item, "to", job->entry->mode);
		cJSON_AddStringToObject(item, "profile", job->profile);
		if (!ctx->output.json)
			printf("\nline %d: %s: %s -> %s (profile %s)\n", job->entry->line, domain,
			       job->from_mode ? job->from_mode : "none", job->entry->mode, job->profile);
		if (job->done || job->resume) {
			const char *what = job->done ? "already in that mode: skipped"
			                             : "unfinished migration: resumed";

			cJSON_AddStringToObject(item, "action", what);
			if (!ctx->output.json)
				printf("  %s\n", what);
			continue;
		}
		if (ctx->state &&
		    mm_state_get_domain(ctx->state, domain, &row, &found, ctx->err) != MM_OK)
			return MM_ERR;
		rc = mm_show_switch_plan(ctx, cJSON_AddArrayToObject(item, "plan"), domain, job->profile,
		                         mm_plugins_find(&ctx->plugins, job->entry->mode),
		                         job->from_mode ? mm_plugins_find(&ctx->plugins, job->from_mode)
		                                        : NULL,
		                         &row, &opts);
		mm_domain_row_clear(&row);
		if (rc != MM_OK)
			return rc;
	}
	return MM_OK;
}

/* The next job to start, or NULL when all started or the budget is spent. */
static struct job *take_job(struct run *run)
{
	struct job *job = NULL;

	pthread_mutex_lock(&run->lock);
	if (!run->stopped && run->next < run->count) {
		job = &run->jobs[run->next++];
		job->started = 1;
	}
	pthread_mutex_unlock(&run->lock);
	return job;
}

static void job_finished(struct run *run, struct job *job)
{
	pthread_mutex_lock(&run->lock);
	if (job->rc != MM_OK && ++run->failures >= run->rb->failure_budget &&
	    run->rb->failure_budget > 0 && !run->stopped) {
		run->stopped = 1;
		mm_log(&run->ctx->output, MAILMODE_LOG_WARNING,
		       "failure budget of %d spent: no new switch starts; running ones finish",
		       run->rb->failure_budget);
	}
	pthread_mutex_unlock(&run->lock);
}

static void run_job(struct mm_engine *e, struct run *run, struct job *job)
{
	const struct mm_ctx *ctx = run->ctx;
	const struct mm_runbook *rb = run->rb;
	struct mm_switch_options opts = switch_options(ctx, rb);

	if (job->done)
		return;
	if (job->resume) {
		job->rc = mm_migrate_resume(e, job->entry->domain, 0, &job->report, job->error);
	} else {
		job->rc = mm_migrate_switch(e, job->entry->domain, job->entry->mode, job->profile,
		                            &opts, &job->report, job->error);
	}
	mm_engine_progress(e, "%s: %s", job->entry->domain,
	                   job->rc == MM_OK ? job->report.outcome : job->error);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct run *run = w->run;
	struct mm_ctx *ctx = run->ctx;
	struct mm_engine e = { .plugins = &ctx->plugins, .output = &ctx->output,
	                       .limiter = run->limiter, .slot = w->slot, .command = "runbook run",
	                       .lock_wait_ms = ctx->args.lock_timeout_ms };
	char err[MM_ERR_MAX];
	struct job *job;

	/* SQLite connections are not shared between threads' transactions. */
	if (mm_state_open(ctx->state_path, ctx->args.lock_timeout_ms, &e.state, err) != MM_OK) {
		mm_log(&ctx->output, MAILMODE_LOG_ERROR, "%s", err);
		return NULL;
	}
	while ((job = take_job(run)) != NULL) {
		if (!job->done)
			mm_engine_progress(&e, "%s: starting (%s -> %s)", job->entry->domain,
			                   job->from_mode ? job->from_mode : "none", job->entry->mode);
		run_job(&e, run, job);
		job_finished(run, job);
	}
	if (ctx->output.progress_live)
		mm_engine_progress(&e, "(idle)");
	mm_state_close(e.state);
	return NULL;
}

static const char *result_of(const struct job *job)
{
	if (!job->started)
		return "not started";
	if (job->rc != MM_OK)
		return job->report.outcome && strcmp(job->report.outcome, "unfinished") == 0
		       ? "unfinished" : job->report.outcome ? job->report.outcome : "failed";
	return job->done ? "skipped" : job->report.outcome ? job->report.outcome : "done";
}

static int report(struct mm_ctx *ctx, const struct run *run, long long wall_ms)
{
	cJSON *list = cJSON_AddArrayToObject(ctx->doc, "domains");
	cJSON *totals = cJSON_AddObjectToObject(ctx->doc, "totals");
	long calls = 0;
	int failed = 0, switched = 0, skipped = 0;
	size_t i;

	if (!ctx->output.json)
		printf("%-32s %-10s %-10s %-14s %9s %8s %6s\n", "DOMAIN", "FROM", "TO", "RESULT",
		       "SECONDS", "ATTEMPTS", "CALLS");
	for (i = 0; i < run->count; i++) {
		const struct job *job = &run->jobs[i];
		const char *result = result_of(job);
		cJSON *item = cJSON_CreateObject();

		calls += job->report.api_calls;
		failed += job->rc != MM_OK || !job->started;
		switched += job->started && job->rc == MM_OK && !job->done &&
		            strcmp(result, "unchanged") != 0;
		skipped += job->done;
		cJSON_AddItemToArray(list, item);
		cJSON_AddStringToObject(item, "domain", job->entry->domain);
		cJSON_AddNumberToObject(item, "line", job->entry->line);
		if (job->from_mode)
			cJSON_AddStringToObject(item, "from", job->from_mode);
		else
			cJSON_AddNullToObject(item, "from");
		cJSON_AddStringToObject(item, "to", job->entry->mode);
		cJSON_AddStringToObject(item, "result", result);
		cJSON_AddNumberToObject(item, "elapsed_ms", (double)job->report.elapsed_ms);
		cJSON_AddNumberToObject(item, "verify_attempts", job->report.verify_attempts);
		cJSON_AddNumberToObject(item, "api_calls", (double)job->report.api_calls);
		if (job->rc != MM_OK)
			cJSON_AddStringToObject(item, "error", job->error);
		if (!ctx->output.json)
			printf("%-32s %-10s %-10s %-14s %9.1f %8d %6ld%s%s\n", job->entry->domain,
			       job->from_mode ? job->from_mode : "-", job->entry->mode, result,
			       (double)job->report.elapsed_ms / 1000.0, job->report.verify_attempts,
			       job->report.api_calls, job->rc != MM_OK ? "  " : "",
			       job->rc != MM_OK ? job->error : "");
	}
	cJSON_AddNumberToObject(totals, "domains", (double)run->count);
	cJSON_AddNumberToObject(totals, "switched", switched);
	cJSON_AddNumberToObject(totals, "skipped", skipped);
	cJSON_AddNumberToObject(totals, "failed", failed);
	cJSON_AddNumberToObject(totals, "api_calls", (double)calls);
	cJSON_AddNumberToObject(totals, "wall_ms", (double)wall_ms);
	if (!ctx->output.json)
		printf("\n%zu domains: %d switched, %d skipped (already done), %d failed; %ld API calls; %.1f s\n",
		       run->count, switched, skipped, failed, calls, (double)wall_ms / 1000.0);
	if (failed)
		return mm_fail(ctx, MM_ERR, "runbook %s: %d of %zu domain(s) did not switch",
		               run->rb->path, failed, run->count);
	return MM_OK;
}

static int run_runbook(struct mm_ctx *ctx, const struct mm_runbook *rb, struct job *jobs)
{
	struct run run = { .ctx = ctx, .rb = rb, .jobs = jobs, .count = rb->count };
	int parallel = ctx->args.parallel > 0 ? ctx->args.parallel : rb->parallel;
	struct worker *workers = NULL;
	long long started = mm_host_mono_ms(NULL);
	int i, launched = 0, rc;

	if ((rc = mm_open_state(ctx, 1)) != MM_OK)
		return rc;
	if ((size_t)parallel > rb->count)
		parallel = (int)rb->count;
	run.limiter = mm_limiter_new(rb->tenant_cap);
	workers = calloc((size_t)parallel, sizeof(*workers));
	if (!run.limiter || !workers) {
		rc = mm_fail(ctx, MM_ERR, "out of memory");
		goto out;
	}
	pthread_mutex_init(&run.lock, NULL);
	mm_board_open(&ctx->output, parallel);
	for (i = 0; i < parallel; i++) {
		workers[i] = (struct worker){ .run = &run, .slot = i };
		if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0)
			break;
		launched++;
	}
	for (i = 0; i < launched; i++)
		pthread_join(workers[i].thread, NULL);
	mm_board_close(&ctx->output);
	pthread_mutex_destroy(&run.lock);
	rc = launched ? report(ctx, &run, mm_host_mono_ms(NULL) - started)
	              : mm_fail(ctx, MM_ERR, "cannot start worker threads");
out:
	free(workers);
	mm_limiter_free(run.limiter);
	return rc;
}

int mm_cmd_runbook(struct mm_ctx *ctx)
{
	const char *action = ctx->args.positional[0];
	struct mm_runbook rb;
	struct job *jobs = NULL;
	int rc;

	if (strcmp(action, "plan") != 0 && strcmp(action, "run") != 0 &&
	    strcmp(action, "prepare") != 0)
		return mm_fail(ctx, MM_USAGE, "runbook: unknown action '%s' (plan, prepare or run)",
		               action);
	cJSON_AddStringToObject(ctx->doc, "runbook", ctx->args.positional[1]);
	mm_runbook_load(ctx->args.positional[1], &rb);
	rc = prepare(ctx, &rb, &jobs);
	if (rc == MM_OK)
		rc = strcmp(action, "plan") == 0      ? plan_runbook(ctx, &rb, jobs)
		     : strcmp(action, "prepare") == 0 ? prepare_runbook(ctx, &rb, jobs)
		                                      : run_runbook(ctx, &rb, jobs);
	free_jobs(jobs, rb.count);
	mm_runbook_free(&rb);
	return rc;
}
