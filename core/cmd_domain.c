/* setup, verify, teardown and adopt: one domain, one mode, outside a
 * migration. */
#include "cli.h"

#include "domain.h"
#include "migrate.h"
#include "ops.h"
#include "quicktest.h"
#include "runbook.h"

#include <stdlib.h>
#include <string.h>


struct job {
	char domain[MM_DOMAIN_MAX + 1];
	char profile[320];
	struct mm_domain_row row;      /* the domain's state; empty when not found */
	int found;
};

static void job_clear(struct job *job)
{
	mm_domain_row_clear(&job->row);
}

static int resolve_profile(struct mm_ctx *ctx, const char *given, char *name, size_t len)
{
	char section[320];

	if (mm_config_profile(ctx->config, given, section, sizeof(section), ctx->err,
	                      sizeof(ctx->err)) != 0)
		return MM_ERR;
	snprintf(name, len, "%s", section + strlen("profile "));
	return MM_OK;
}

/* Reads the domain's row (the DB may not exist yet when create == 0). */
static int load_row(struct mm_ctx *ctx, struct job *job, int create)
{
	int rc = mm_open_state(ctx, create);

	if (rc != MM_OK || !ctx->state)
		return rc;
	return mm_state_get_domain(ctx->state, job->domain, &job->row, &job->found, ctx->err);
}

/* Common start: domain, profile (from the state when it has one), plugin,
 * config validation. */
static int prepare(struct mm_ctx *ctx, struct job *job, const char *mode, int create,
                   struct mm_plugin **plugin)
{
	struct mailmode_diag diag;
	struct mm_op op;
	int rc;

	if ((rc = mm_domain_arg(ctx, ctx->args.positional[0], job->domain)) != MM_OK)
		return rc;
	cJSON_AddStringToObject(ctx->doc, "domain", job->domain);
	if ((rc = load_row(ctx, job, create)) != MM_OK)
		return rc;
	if ((rc = mm_refuse_open_migration(ctx, job->domain)) != MM_OK)
		return rc;
	if (!mode) {
		if (!job->found || !job->row.mode)
			return mm_fail(ctx, MM_ERR,
			               "%s has no mode recorded in %s: use 'mailmode setup' or 'mailmode adopt'",
			               job->domain, ctx->state_path);
		mode = job->row.mode;
	}
	if (job->found && job->row.mode && job->row.profile && !ctx->args.profile)
		snprintf(job->profile, sizeof(job->profile), "%s", job->row.profile);
	else if ((rc = resolve_profile(ctx, ctx->args.profile, job->profile,
	                               sizeof(job->profile))) != MM_OK)
		return rc;
	cJSON_AddStringToObject(ctx->doc, "mode", mode);
	cJSON_AddStringToObject(ctx->doc, "profile", job->profile);
	if ((rc = mm_find_plugin(ctx, mode, plugin)) != MM_OK)
		return rc;
	op = (struct mm_op){ .plugin = *plugin, .domain = job->domain, .profile = job->profile };
	rc = mm_op_validate(&op, &diag);
	if (rc != MM_OK)
		return mm_fail_diag(ctx, MM_ERR, &diag);
	return MM_OK;
}

/* setup, teardown and adopt run as journaled migrations of their own kind:
 * one call into the engine, then what it did. */
static int run_journaled(struct mm_ctx *ctx, struct job *job, enum mm_kind kind, const char *mode)
{
	struct mm_switch_options opts;
	struct mm_switch_report report;
	struct mm_engine e;
	int rc;

	mm_switch_options_for(ctx, &opts);
	mm_engine_for(ctx, &e);
	rc = mm_migrate_run(&e, kind, job->domain, mode, job->profile, &opts, &report, ctx->err);
	cJSON_AddStringToObject(ctx->doc, "outcome", report.outcome ? report.outcome : "failed");
	if (report.step)
		cJSON_AddStringToObject(ctx->doc, "failed_step", report.step);
	if (rc != MM_OK && report.diag.summary[0]) {
		char engine_err[MM_ERR_MAX];

		snprintf(engine_err, sizeof(engine_err), "%s", ctx->err);
		mm_fail_diag(ctx, rc, &report.diag);
		return mm_fail(ctx, rc, "%s", engine_err);
	}
	return rc;
}

/* setup or teardown --dry-run: the plan, then its summary. */
static int dry_run(struct mm_ctx *ctx, const struct mm_op *op, enum mailmode_plan_op which)
{
	cJSON *plan = cJSON_AddArrayToObject(ctx->doc, "plan");
	int rc = mm_show_plan(ctx, plan, op, which);

	if (rc == MM_OK)
		mm_plan_summary_one(ctx, op->domain, plan);
	return rc;
}

int mm_cmd_setup(struct mm_ctx *ctx)
{
	struct job job = { 0 };
	struct mm_plugin *plugin;
	struct mm_op op;
	int rc, again;

	rc = prepare(ctx, &job, ctx->args.mode, !ctx->args.dry_run, &plugin);
	if (rc != MM_OK)
		goto out;
	again = job.found && job.row.mode && strcmp(job.row.mode, ctx->args.mode) == 0;
	if (ctx->args.dry_run) {
		op = (struct mm_op){ .plugin = plugin, .domain = job.domain, .profile = job.profile,
		                     .receipt = again ? job.row.receipt : NULL,
		                     .accepted_conflicts = ctx->args.accept_conflicts };
		rc = dry_run(ctx, &op, MAILMODE_PLAN_SETUP);
		goto out;
	}
	rc = run_journaled(ctx, &job, MM_KIND_SETUP, ctx->args.mode);
	if (rc != MM_OK)
		goto out;
	mm_domain_row_clear(&job.row);
	rc = mm_state_get_domain(ctx->state, job.domain, &job.row, &job.found, ctx->err);
	if (rc != MM_OK)
		goto out;
	cJSON_AddItemToObject(ctx->doc, "receipt", mm_json_from_text(job.row.receipt));
	if (!ctx->output.json)
		printf("%s: %s mode set up%s (profile %s)\n", job.domain, ctx->args.mode,
		       again ? " again" : "", job.profile);
out:
	job_clear(&job);
	return rc;
}

int mm_cmd_verify(struct mm_ctx *ctx)
{
	struct job job = { 0 };
	struct mm_plugin *plugin;
	struct mailmode_diag diag;
	struct mm_op op;
	char *report = NULL;
	int rc;

	rc = prepare(ctx, &job, NULL, 0, &plugin);
	if (rc != MM_OK)
		goto out;
	op = (struct mm_op){ .plugin = plugin, .domain = job.domain, .profile = job.profile,
	                     .receipt = job.row.receipt,
	                     .flags = job.row.adopted ? MAILMODE_REQ_ADOPTED : 0 };
	rc = mm_op_verify(&op, &report, &diag);
	cJSON_AddBoolToObject(ctx->doc, "verified", rc == MM_OK);
	cJSON_AddItemToObject(ctx->doc, "report", mm_json_from_text(report));
	if (rc != MM_OK) {
		rc = mm_fail_diag(ctx, rc, &diag);
		goto out;
	}
	mm_print_diag(&ctx->output, &diag);
	if (!ctx->output.json)
		printf("%s: %s mode verified\n", job.domain, plugin->desc->name);
	/* Only a configuration that verified is worth a message. */
	if (ctx->args.quick_test)
		rc = mm_quicktest_run(ctx, job.domain, job.profile, plugin->desc->name);
out:
	free(report);
	job_clear(&job);
	return rc;
}

int mm_cmd_teardown(struct mm_ctx *ctx)
{
	struct job job = { 0 };
	struct mm_plugin *plugin;
	struct mm_op op;
	int rc;

	rc = prepare(ctx, &job, NULL, 0, &plugin);
	if (rc != MM_OK)
		goto out;
	if (ctx->args.dry_run) {
		op = (struct mm_op){ .plugin = plugin, .domain = job.domain, .profile = job.profile,
		                     .receipt = job.row.receipt,
		                     .flags = (job.row.adopted ? MAILMODE_REQ_ADOPTED : 0) |
		                              (ctx->args.force ? MAILMODE_REQ_FORCE : 0) };
		rc = dry_run(ctx, &op, MAILMODE_PLAN_TEARDOWN);
		goto out;
	}
	rc = run_journaled(ctx, &job, MM_KIND_TEARDOWN, plugin->desc->name);
	if (rc == MM_OK && !ctx->output.json)
		printf("%s: %s mode torn down\n", job.domain, plugin->desc->name);
out:
	job_clear(&job);
	return rc;
}

/* What is live for a domain, mode by mode: *live the one mode fully in
 * effect when it is the only thing there; otherwise why (rc MM_REFUSED:
 * more than one mode or a mode partly there; MM_ERR: cannot tell). */
static int live_mode(struct mm_ctx *ctx, const char *domain, const char *profile,
                     struct mm_plugin **live, char *why, size_t len)
{
	char seen[512] = "";
	size_t i, used = 0;
	int n = 0, partial = 0;

	*live = NULL;
	for (i = 0; i < ctx->plugins.count; i++) {
		struct mm_plugin *p = ctx->plugins.plugins[i];
		struct mm_op op = { .plugin = p, .domain = domain, .profile = profile };
		enum mailmode_presence presence;
		struct mailmode_diag diag;
		char *report = NULL;
		int rc;

		if (mm_op_validate(&op, &diag) != MM_OK)
			continue;      /* the profile does not configure this mode */
		rc = mm_op_observe(&op, &presence, &report, &diag);
		free(report);
		if (rc != MM_OK) {
			snprintf(why, len, "cannot observe %s mode: %s", p->desc->name, diag.summary);
			return MM_ERR;
		}
		if (presence == MAILMODE_ABSENT)
			continue;
		n++;
		partial += presence == MAILMODE_PARTIAL;
		*live = presence == MAILMODE_PRESENT ? p : *live;
		if (used < sizeof(seen))
			used += (size_t)snprintf(seen + used, sizeof(seen) - used, "%s%s mode is %s",
			                         used ? ", " : "", p->desc->name,
			                         presence == MAILMODE_PRESENT ? "live" : "partly live");
	}
	if (n == 1 && !partial && ((*live)->desc->caps & MAILMODE_CAP_ADOPT))
		return MM_OK;
	if (n == 0)
		snprintf(why, len, "no mode is live");
	else if (n == 1 && !partial)
		snprintf(why, len, "%s, but its plugin cannot adopt a domain set up by hand", seen);
	else
		snprintf(why, len, "not live in exactly one mode: %s", seen);
	*live = NULL;
	return n == 0 ? MM_OK : MM_REFUSED;
}

struct adopt_totals {
	int adopted, recorded, none, refused, failed;
};

/* One domain of adopt --all: adopted, or listed with the reason. */
static void adopt_one(struct mm_ctx *ctx, const struct mm_runbook_entry *entry, cJSON *list,
                      struct adopt_totals *t)
{
	struct mm_domain_row row = { 0 };
	struct mm_switch_report report;
	struct mm_switch_options opts;
	struct mm_plugin *live = NULL;
	struct mm_engine e;
	char profile[320], why[MM_ERR_MAX] = "";
	const char *result = "not adopted";
	cJSON *item = cJSON_CreateObject();
	int found = 0, rc;

	cJSON_AddItemToArray(list, item);
	cJSON_AddStringToObject(item, "domain", entry->domain);
	rc = mm_state_get_domain(ctx->state, entry->domain, &row, &found, why);
	if (rc == MM_OK && found && row.mode) {
		snprintf(why, sizeof(why), "already recorded in %s mode", row.mode);
		result = "recorded";
		t->recorded++;
	} else if (rc == MM_OK &&
	           (rc = resolve_profile(ctx, entry->profile[0] ? entry->profile : ctx->args.profile,
	                                 profile, sizeof(profile))) != MM_OK) {
		snprintf(why, sizeof(why), "%s", ctx->err);
	} else if (rc == MM_OK &&
	           (rc = live_mode(ctx, entry->domain, profile, &live, why, sizeof(why))) == MM_OK &&
	           live) {
		mm_switch_options_for(ctx, &opts);
		mm_engine_for(ctx, &e);
		rc = mm_migrate_run(&e, MM_KIND_ADOPT, entry->domain, live->desc->name, profile, &opts,
		                    &report, why);
		if (rc == MM_OK) {
			snprintf(why, sizeof(why), "adopted in %s mode (profile %s)", live->desc->name, profile);
			result = "adopted";
			t->adopted++;
		}
	}
	if (rc == MM_OK && !live && strcmp(result, "recorded") != 0)
		t->none++;
	else if (rc == MM_REFUSED)
		t->refused++;
	else if (rc != MM_OK)
		t->failed++;
	cJSON_AddStringToObject(item, "result", result);
	cJSON_AddStringToObject(item, "reason", why);
	if (!ctx->output.json)
		printf("%-32s %-12s %s\n", entry->domain, result, why);
	mm_domain_row_clear(&row);
}

/* adopt --all FILE: every domain the runbook FILE lists (the plugins have
 * no way to list a tenant's or a zone's domains), each with its line's
 * profile or --profile; its target mode plays no part. */
static int adopt_all(struct mm_ctx *ctx)
{
	struct adopt_totals t = { 0 };
	struct mm_runbook rb;
	cJSON *list = cJSON_AddArrayToObject(ctx->doc, "domains");
	size_t i;
	int rc;

	if (ctx->args.mode)
		return mm_fail(ctx, MM_USAGE, "adopt --all observes every mode: drop --mode %s",
		               ctx->args.mode);
	if (ctx->args.npositional != 1)
		return mm_fail(ctx, MM_USAGE, "adopt --all needs the runbook FILE listing the domains");
	if (mm_runbook_load(ctx->args.positional[0], &rb) != MM_OK) {
		fputs(rb.errors ? rb.errors : "", stderr);
		rc = mm_fail(ctx, MM_ERR, "runbook %s: %d error(s); nothing was adopted",
		             ctx->args.positional[0], rb.nerrors);
		goto out;
	}
	if ((rc = mm_load_plugins(ctx)) != MM_OK || (rc = mm_open_state(ctx, 1)) != MM_OK)
		goto out;
	for (i = 0; i < rb.count; i++)
		adopt_one(ctx, &rb.entries[i], list, &t);
	cJSON_AddNumberToObject(ctx->doc, "adopted", t.adopted);
	cJSON_AddNumberToObject(ctx->doc, "already_recorded", t.recorded);
	cJSON_AddNumberToObject(ctx->doc, "no_mode_live", t.none);
	cJSON_AddNumberToObject(ctx->doc, "not_adoptable", t.refused);
	cJSON_AddNumberToObject(ctx->doc, "failed", t.failed);
	if (!ctx->output.json)
		printf("\n%zu domains: %d adopted, %d already recorded, %d with no mode live, %d not adoptable, %d failed\n",
		       rb.count, t.adopted, t.recorded, t.none, t.refused, t.failed);
	ctx->err[0] = '\0';
	if (t.failed)
		rc = mm_fail(ctx, MM_ERR, "adopt --all: %d domain(s) could not be observed or adopted",
		             t.failed);
	else if (t.refused)
		rc = mm_fail(ctx, MM_REFUSED,
		             "adopt --all: %d domain(s) not adoptable (more than one mode, partly live, or a plugin that cannot adopt)",
		             t.refused);
out:
	mm_runbook_free(&rb);
	return rc;
}

int mm_cmd_adopt(struct mm_ctx *ctx)
{
	struct job job = { 0 };
	struct mm_plugin *plugin;
	int rc;

	if (ctx->args.all)
		return adopt_all(ctx);
	if (ctx->args.npositional != 1)
		return mm_fail(ctx, MM_USAGE, "usage: mailmode adopt DOMAIN --mode M [--profile P]");
	rc = prepare(ctx, &job, ctx->args.mode, 1, &plugin);
	if (rc != MM_OK)
		goto out;
	if (job.found && job.row.mode && strcmp(job.row.mode, ctx->args.mode) == 0) {
		if (!ctx->output.json)
			printf("%s: already recorded in %s mode\n", job.domain, job.row.mode);
		goto out;
	}
	rc = run_journaled(ctx, &job, MM_KIND_ADOPT, ctx->args.mode);
	if (rc == MM_OK && !ctx->output.json)
		printf("%s: adopted in %s mode (profile %s)\n", job.domain, ctx->args.mode, job.profile);
out:
	job_clear(&job);
	return rc;
}
