/* switch, resume and abort: the commands of the migration engine. */
#include "cli.h"

#include "domain.h"
#include "migrate.h"
#include "ops.h"
#include "quicktest.h"

#include <stdlib.h>
#include <string.h>

static void report_json(struct mm_ctx *ctx, cJSON *to, const char *domain, const char *from_mode,
                        const char *to_mode, const struct mm_switch_report *report)
{
	cJSON_AddStringToObject(to, "domain", domain);
	if (from_mode)
		cJSON_AddStringToObject(to, "from", from_mode);
	else
		cJSON_AddNullToObject(to, "from");
	if (to_mode)
		cJSON_AddStringToObject(to, "to", to_mode);
	else
		cJSON_AddNullToObject(to, "to");
	cJSON_AddStringToObject(to, "outcome", report->outcome ? report->outcome : "failed");
	if (report->step)
		cJSON_AddStringToObject(to, "failed_step", report->step);
	cJSON_AddNumberToObject(to, "verify_attempts", report->verify_attempts);
	cJSON_AddNumberToObject(to, "elapsed_ms", (double)report->elapsed_ms);
	mm_progress_end(&ctx->output);
	if (!ctx->output.json && report->outcome && strcmp(report->outcome, "unfinished") != 0)
		printf("%s: %s %s -> %s in %.1f s (%d verify attempt%s)\n", domain, report->outcome,
		       from_mode ? from_mode : "none", to_mode ? to_mode : "none",
		       (double)report->elapsed_ms / 1000.0, report->verify_attempts,
		       report->verify_attempts == 1 ? "" : "s");
}

static void add_quick_test_step(struct mm_ctx *ctx, cJSON *plan, const struct mm_plugin *to)
{
	char action[512];

	snprintf(action, sizeof(action),
	         "send a test message to %s through the domain's MX and follow it in the message trace until it is delivered, scanned once (a failure is reported, not rolled back)",
	         ctx->args.quick_test);
	mm_add_plan_step(ctx, plan, "quick-test", to->desc->name, action);
}

/* A cache wait that --max-settle cuts below the MX TTL leaves a window in
 * which mail bypasses the new mode: a warning of the plan. */
static void mark_capped_wait(cJSON *step, const struct mm_switch_options *opts)
{
	const cJSON *wait = cJSON_GetObjectItemCaseSensitive(step, "wait_ms");
	const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(step, "mx_ttl");
	cJSON *action = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(step, "actions"), 0);

	if (opts->max_settle_ms > 0 && cJSON_IsNumber(wait) && cJSON_IsNumber(ttl) && action &&
	    wait->valuedouble == (double)opts->max_settle_ms &&
	    ttl->valuedouble * 1000 > (double)opts->max_settle_ms)
		cJSON_AddStringToObject(action, "change", "warning");
}

int mm_show_switch_plan(struct mm_ctx *ctx, cJSON *plan, const char *domain, const char *profile,
                        struct mm_plugin *to, struct mm_plugin *from,
                        const struct mm_domain_row *row, const struct mm_switch_options *opts)
{
	struct mm_op setup = { .plugin = to, .domain = domain, .profile = profile,
	                       .accepted_conflicts = opts->accept_conflicts };
	struct mm_op teardown = { .plugin = from, .domain = domain, .profile = profile,
	                          .receipt = row->receipt,
	                          .flags = row->adopted ? MAILMODE_REQ_ADOPTED : 0 };
	char verify[256];
	int rc;

	rc = mm_show_plan(ctx, plan, &setup, MAILMODE_PLAN_SETUP);
	if (rc != MM_OK)
		return rc;
	snprintf(verify, sizeof(verify),
	         "poll (from 0.1s, backing off to every %.1fs) for up to %.1fs; roll back if it never passes",
	         (double)opts->poll_interval_ms / 1000, (double)opts->verify_timeout_ms / 1000);
	mm_add_plan_step(ctx, plan, "verify", to->desc->name, verify);
	if (from) {
		mm_show_settle_wait(ctx, plan, domain, profile, to, from, row, opts);
		mark_capped_wait(cJSON_GetArrayItem(plan, cJSON_GetArraySize(plan) - 1), opts);
	}
	if (!from) {
		if (ctx->args.quick_test)
			add_quick_test_step(ctx, plan, to);
		return MM_OK;
	}
	rc = mm_show_plan(ctx, plan, &teardown, MAILMODE_PLAN_TEARDOWN);
	if (rc == MM_OK)
		mm_add_plan_step(ctx, plan, "confirm", from->desc->name,
		                "wait until it is gone on every server");
	if (rc == MM_OK && ctx->args.quick_test)
		add_quick_test_step(ctx, plan, to);
	return rc;
}

/* The quick test after a switch that succeeded: a failure is reported
 * (exit 3) but not rolled back, since the new mode verified and the old one
 * is gone already; undoing it is a decision for a person. */
static int quick_test_after_switch(struct mm_ctx *ctx, const char *domain, const char *profile)
{
	char result[MM_ERR_MAX];
	int rc = mm_quicktest_run(ctx, domain, profile, ctx->args.to);

	if (rc == MM_OK)
		return rc;
	snprintf(result, sizeof(result), "%s", ctx->err);
	return mm_fail(ctx, rc, "%s; the switch to %s mode stands (a quick test does not roll it back)",
	               result, ctx->args.to);
}

/* A failed switch: the engine's message, with the plugin's detail shown
 * under it. */
static int switch_failed(struct mm_ctx *ctx, int rc, const struct mm_switch_report *report)
{
	char engine_err[MM_ERR_MAX];

	if (!report->diag.summary[0])
		return rc;
	snprintf(engine_err, sizeof(engine_err), "%s", ctx->err);
	mm_fail_diag(ctx, rc, &report->diag);
	return mm_fail(ctx, rc, "%s", engine_err);
}

int mm_cmd_switch(struct mm_ctx *ctx)
{
	char domain[MM_DOMAIN_MAX + 1], profile[320];
	struct mm_domain_row row = { 0 };
	struct mm_plugin *to = NULL, *from = NULL;
	struct mm_switch_options opts;
	struct mm_switch_report report;
	struct mm_engine e;
	int found = 0, rc;

	if ((rc = mm_domain_arg(ctx, ctx->args.positional[0], domain)) != MM_OK)
		return rc;
	mm_switch_options_for(ctx, &opts);
	if ((rc = mm_load_plugins(ctx)) != MM_OK ||
	    (rc = mm_open_state(ctx, !ctx->args.dry_run)) != MM_OK)
		goto out;
	if (ctx->state &&
	    (rc = mm_state_get_domain(ctx->state, domain, &row, &found, ctx->err)) != MM_OK)
		goto out;
	if ((rc = mm_domain_profile(ctx, &row, found, profile, sizeof(profile))) != MM_OK)
		goto out;
	cJSON_AddStringToObject(ctx->doc, "domain", domain);
	cJSON_AddStringToObject(ctx->doc, "profile", profile);
	if ((rc = mm_find_plugin(ctx, ctx->args.to, &to)) != MM_OK ||
	    (found && row.mode && (rc = mm_find_plugin(ctx, row.mode, &from)) != MM_OK))
		goto out;
	if (ctx->args.dry_run) {
		rc = mm_refuse_open_migration(ctx, domain);
		if (rc == MM_OK && !(found && row.mode && strcmp(row.mode, ctx->args.to) == 0)) {
			cJSON *plan = cJSON_AddArrayToObject(ctx->doc, "plan");

			rc = mm_show_switch_plan(ctx, plan, domain, profile, to, from, &row, &opts);
			if (rc == MM_OK)
				mm_plan_summary_one(ctx, domain, plan);
		}
		goto out;
	}
	mm_engine_for(ctx, &e);
	rc = mm_migrate_switch(&e, domain, ctx->args.to, profile, &opts, &report, ctx->err);
	report_json(ctx, ctx->doc, domain, from ? row.mode : NULL, ctx->args.to, &report);
	if (rc == MM_OK && report.outcome && strcmp(report.outcome, "unchanged") == 0 &&
	    !ctx->output.json)
		printf("%s: already in %s mode: nothing to do\n", domain, ctx->args.to);
	if (rc != MM_OK)
		rc = switch_failed(ctx, rc, &report);
	else if (ctx->args.quick_test)
		rc = quick_test_after_switch(ctx, domain, profile);
out:
	mm_domain_row_clear(&row);
	return rc;
}

struct resume_run {
	struct mm_ctx *ctx;
	int abort;                 /* abort instead of resume */
	const char *only;          /* a domain, or NULL for all */
	cJSON *list;
	int worst;
	int count;
	char last_err[MM_ERR_MAX];
};

/* The exit code that says most: a refusal or error over a rollback. */
static int worse(int a, int b)
{
	static const int rank[] = { [MM_OK] = 0, [MM_UNVERIFIED] = 1, [MM_ERR] = 2, [MM_USAGE] = 2,
	                            [MM_REFUSED] = 3 };

	return rank[b] > rank[a] ? b : a;
}

static int resume_one(const struct mm_migration *m, void *arg)
{
	struct resume_run *run = arg;
	struct mm_ctx *ctx = run->ctx;
	struct mm_switch_report report;
	struct mm_engine e;
	cJSON *item;
	int rc;

	if (run->only && strcmp(run->only, m->domain) != 0)
		return MM_OK;
	run->count++;
	if (!ctx->output.json)
		printf("%s: %s the %s %s -> %s (last step: %s)\n", m->domain,
		       run->abort ? "aborting" : "resuming", m->kind ? m->kind : "migration",
		       m->from_mode ? m->from_mode : "none", m->to_mode ? m->to_mode : "none", m->step);
	mm_engine_for(ctx, &e);
	rc = run->abort ? mm_migrate_abort(&e, m->domain, &report, ctx->err)
	                : mm_migrate_resume(&e, m->domain, ctx->args.force, &report, ctx->err);
	item = cJSON_CreateObject();
	report_json(ctx, item, m->domain, m->from_mode, m->to_mode, &report);
	if (rc != MM_OK) {
		cJSON_AddStringToObject(item, "error", ctx->err);
		snprintf(run->last_err, sizeof(run->last_err), "%s", ctx->err);
		snprintf(ctx->err_detail, sizeof(ctx->err_detail), "%s", report.diag.detail);
		if (!run->only)
			fprintf(stderr, "mailmode: error: %s\n", ctx->err);
	}
	cJSON_AddItemToArray(run->list, item);
	run->worst = worse(run->worst, rc);
	return MM_OK;
}

static void warn_line(void *arg, const char *line)
{
	struct mm_ctx *ctx = arg;

	mm_log(&ctx->output, MAILMODE_LOG_WARNING, "%s", line);
}

/* resume [DOMAIN] and abort DOMAIN share the walk over open migrations. */
static int each_open(struct mm_ctx *ctx, int abort)
{
	char domain[MM_DOMAIN_MAX + 1];
	struct resume_run run = { .ctx = ctx, .abort = abort };
	int rc;

	if (ctx->args.npositional == 1) {
		if ((rc = mm_domain_arg(ctx, ctx->args.positional[0], domain)) != MM_OK)
			return rc;
		run.only = domain;
	}
	run.list = cJSON_AddArrayToObject(ctx->doc, "migrations");
	if ((rc = mm_load_plugins(ctx)) != MM_OK || (rc = mm_open_state(ctx, 0)) != MM_OK)
		return rc;
	if (ctx->state && !abort &&
	    (rc = mm_state_drop_stale_locks(ctx->state, run.only, warn_line, ctx, ctx->err)) != MM_OK)
		return rc;
	if (ctx->state &&
	    (rc = mm_state_each_open_migration(ctx->state, resume_one, &run, ctx->err)) != MM_OK)
		return rc;
	if (run.count == 0) {
		if (run.only && abort)
			return mm_fail(ctx, MM_ERR, "%s has no unfinished migration to abort", run.only);
		if (!ctx->output.json)
			printf("no unfinished migration%s%s\n", run.only ? " for " : "",
			       run.only ? run.only : "");
		return MM_OK;
	}
	if (run.worst == MM_OK)
		return MM_OK;
	if (run.only)
		return mm_fail(ctx, run.worst, "%s", run.last_err);
	return mm_fail(ctx, run.worst, "%s: %d migration(s), not all finished cleanly",
	               abort ? "abort" : "resume", run.count);
}

int mm_cmd_resume(struct mm_ctx *ctx)
{
	return each_open(ctx, 0);
}

int mm_cmd_abort(struct mm_ctx *ctx)
{
	return each_open(ctx, 1);
}
