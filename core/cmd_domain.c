/* setup, verify, teardown and adopt: one domain, one mode, outside a
 * migration. */
#include "cli.h"

#include "domain.h"
#include "ops.h"
#include "quicktest.h"

#include <stdlib.h>
#include <string.h>


struct job {
	char domain[MM_DOMAIN_MAX + 1];
	char profile[320];
	struct mm_domain_row row;      /* the domain's state; empty when not found */
	int found;
	int locked;
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

static int refuse_other_mode(struct mm_ctx *ctx, const struct job *job, const char *mode)
{
	return mm_fail(ctx, MM_REFUSED,
	               "%s is already in %s mode: a domain has one mode; use 'mailmode switch %s --to %s'",
	               job->domain, job->row.mode, job->domain, mode);
}

int mm_cmd_setup(struct mm_ctx *ctx)
{
	struct job job = { 0 };
	struct mm_plugin *plugin;
	struct mailmode_diag diag;
	struct mm_op op;
	char *receipt = NULL;
	int rc, again;

	rc = prepare(ctx, &job, ctx->args.mode, !ctx->args.dry_run, &plugin);
	if (rc != MM_OK)
		goto out;
	if (job.found && job.row.mode && strcmp(job.row.mode, ctx->args.mode) != 0) {
		rc = refuse_other_mode(ctx, &job, ctx->args.mode);
		goto out;
	}
	again = job.found && job.row.mode;
	op = (struct mm_op){ .plugin = plugin, .domain = job.domain, .profile = job.profile,
	                     .receipt = again ? job.row.receipt : NULL,
	                     .flags = ctx->args.accept_conflicts ? MAILMODE_REQ_ACCEPT_CONFLICTS : 0 };
	if (!again && (rc = mm_check_other_modes(ctx, job.domain, job.profile, ctx->args.mode)) != MM_OK)
		goto out;
	if (ctx->args.dry_run) {
		rc = mm_show_plan(ctx, cJSON_AddArrayToObject(ctx->doc, "plan"), &op, MAILMODE_PLAN_SETUP);
		goto out;
	}
	if ((rc = mm_lock_domain(ctx, job.domain, &job.locked)) != MM_OK)
		goto out;
	rc = mm_op_setup(&op, &receipt, &diag);
	if (rc != MM_OK) {
		char err[MM_ERR_MAX];

		if (mm_state_audit(ctx->state, job.domain, "setup-failed", diag.summary, err) != MM_OK)
			mm_log(&ctx->output, MAILMODE_LOG_WARNING, "%s", err);
		rc = mm_fail_diag(ctx, rc, &diag);
		goto out;
	}
	mm_print_diag(&ctx->output, &diag);
	rc = mm_state_set_mode(ctx->state, job.domain, ctx->args.mode, job.profile, receipt,
	                       again ? job.row.adopted : 0, "setup", ctx->args.mode, ctx->err);
	if (rc != MM_OK)
		goto out;
	cJSON_AddItemToObject(ctx->doc, "receipt", mm_json_from_text(receipt));
	if (!ctx->output.json)
		printf("%s: %s mode set up%s (profile %s)\n", job.domain, ctx->args.mode,
		       again ? " again" : "", job.profile);
out:
	mm_unlock_domain(ctx, job.domain, &job.locked);
	free(receipt);
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
	struct mailmode_diag diag;
	struct mm_op op;
	int rc;

	rc = prepare(ctx, &job, NULL, 0, &plugin);
	if (rc != MM_OK)
		goto out;
	op = (struct mm_op){ .plugin = plugin, .domain = job.domain, .profile = job.profile,
	                     .receipt = job.row.receipt,
	                     .flags = (job.row.adopted ? MAILMODE_REQ_ADOPTED : 0) |
	                              (ctx->args.force ? MAILMODE_REQ_FORCE : 0) };
	if (ctx->args.dry_run) {
		rc = mm_show_plan(ctx, cJSON_AddArrayToObject(ctx->doc, "plan"), &op, MAILMODE_PLAN_TEARDOWN);
		goto out;
	}
	if ((rc = mm_lock_domain(ctx, job.domain, &job.locked)) != MM_OK)
		goto out;
	rc = mm_op_teardown(&op, &diag);
	if (rc != MM_OK) {
		char err[MM_ERR_MAX];

		if (mm_state_audit(ctx->state, job.domain, "teardown-failed", diag.summary, err) != MM_OK)
			mm_log(&ctx->output, MAILMODE_LOG_WARNING, "%s", err);
		rc = mm_fail_diag(ctx, rc, &diag);
		goto out;
	}
	mm_print_diag(&ctx->output, &diag);
	rc = mm_state_clear_mode(ctx->state, job.domain, "teardown", plugin->desc->name, ctx->err);
	if (rc == MM_OK && !ctx->output.json)
		printf("%s: %s mode torn down\n", job.domain, plugin->desc->name);
out:
	mm_unlock_domain(ctx, job.domain, &job.locked);
	job_clear(&job);
	return rc;
}

int mm_cmd_adopt(struct mm_ctx *ctx)
{
	struct job job = { 0 };
	struct mm_plugin *plugin;
	struct mailmode_diag diag;
	enum mailmode_presence presence;
	struct mm_op op;
	char *report = NULL;
	int rc;

	rc = prepare(ctx, &job, ctx->args.mode, 1, &plugin);
	if (rc != MM_OK)
		goto out;
	if (job.found && job.row.mode) {
		if (strcmp(job.row.mode, ctx->args.mode) != 0)
			rc = refuse_other_mode(ctx, &job, ctx->args.mode);
		else if (!ctx->output.json)
			printf("%s: already recorded in %s mode\n", job.domain, job.row.mode);
		goto out;
	}
	if (!(plugin->desc->caps & MAILMODE_CAP_ADOPT)) {
		rc = mm_fail(ctx, MM_ERR, "plugin %s cannot adopt a domain set up by hand", plugin->desc->name);
		goto out;
	}
	if ((rc = mm_check_other_modes(ctx, job.domain, job.profile, ctx->args.mode)) != MM_OK)
		goto out;
	op = (struct mm_op){ .plugin = plugin, .domain = job.domain, .profile = job.profile,
	                     .flags = MAILMODE_REQ_ADOPTED };
	rc = mm_op_observe(&op, &presence, &report, &diag);
	cJSON_AddItemToObject(ctx->doc, "report", mm_json_from_text(report));
	if (rc != MM_OK) {
		rc = mm_fail_diag(ctx, rc, &diag);
		goto out;
	}
	if (presence != MAILMODE_PRESENT) {
		rc = mm_fail(ctx, MM_UNVERIFIED, "%s mode is %s for %s: nothing to adopt", plugin->desc->name,
		             mm_presence_name(presence), job.domain);
		goto out;
	}
	if ((rc = mm_lock_domain(ctx, job.domain, &job.locked)) != MM_OK)
		goto out;
	rc = mm_state_set_mode(ctx->state, job.domain, ctx->args.mode, job.profile, NULL, 1, "adopt",
	                       ctx->args.mode, ctx->err);
	if (rc == MM_OK && !ctx->output.json)
		printf("%s: adopted in %s mode (profile %s)\n", job.domain, ctx->args.mode, job.profile);
out:
	mm_unlock_domain(ctx, job.domain, &job.locked);
	free(report);
	job_clear(&job);
	return rc;
}
