/* Steps shared by the commands: plugins, state, arguments, reporting. */
#include "cli.h"
#include "db.h"

#include "domain.h"
#include "migrate.h"
#include "ops.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int mm_fail(struct mm_ctx *ctx, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ctx->err, sizeof(ctx->err), fmt, ap);
	va_end(ap);
	return rc;
}

static void add_diag_json(cJSON *doc, const struct mailmode_diag *diag)
{
	static const char *const severities[] = { "none", "info", "warning", "error" };
	cJSON *d = cJSON_AddObjectToObject(doc, "diagnostic");

	if (!d)
		return;
	cJSON_AddStringToObject(d, "severity",
	                        severities[diag->severity <= MAILMODE_SEV_ERROR ? diag->severity : 3]);
	cJSON_AddStringToObject(d, "summary", diag->summary);
	cJSON_AddStringToObject(d, "detail", diag->detail);
	cJSON_AddBoolToObject(d, "retryable", diag->retryable);
}

int mm_fail_diag(struct mm_ctx *ctx, int rc, const struct mailmode_diag *diag)
{
	snprintf(ctx->err, sizeof(ctx->err), "%s", diag->summary);
	/* Shown under the error line when the command ends. */
	snprintf(ctx->err_detail, sizeof(ctx->err_detail), "%s", diag->detail);
	add_diag_json(ctx->doc, diag);
	return rc;
}

int mm_load_plugins(struct mm_ctx *ctx)
{
	int listing = strcmp(ctx->args.command, "plugins") == 0;
	char warning[MM_ERR_MAX];
	size_t i;

	if (ctx->plugins_loaded)
		return MM_OK;
	if (mm_plugins_load(&ctx->plugins, ctx->plugin_dir, ctx->config, &ctx->output, ctx->err,
	                    sizeof(ctx->err)) != 0)
		return MM_ERR;
	ctx->plugins_loaded = 1;
	/* Only now are the plugins' keys known.  'plugins' is how an admin
	 * finds the right key: a misspelt one must not stop it. */
	if (mm_config_check_plugins(ctx->config, &ctx->plugins, warning, sizeof(warning), ctx->err,
	                            sizeof(ctx->err)) != 0) {
		if (!listing)
			return MM_ERR;
		mm_log(&ctx->output, MAILMODE_LOG_WARNING, "%s", ctx->err);
		ctx->err[0] = '\0';
	}
	if (warning[0])
		mm_log(&ctx->output, MAILMODE_LOG_WARNING, "%s", warning);
	if (!listing)
		for (i = 0; i < ctx->plugins.nrefused; i++)
			mm_log(&ctx->output, MAILMODE_LOG_WARNING, "plugin %s refused: %s",
			       ctx->plugins.refused[i].path, ctx->plugins.refused[i].reason);
	return MM_OK;
}

int mm_find_plugin(struct mm_ctx *ctx, const char *mode, struct mm_plugin **out)
{
	const struct mm_refusal *refusal;
	char names[512] = "";
	size_t i, used = 0;
	int rc = mm_load_plugins(ctx);

	if (rc != MM_OK)
		return rc;
	*out = mm_plugins_find(&ctx->plugins, mode);
	if (*out)
		return MM_OK;
	refusal = mm_plugins_refusal_for(&ctx->plugins, mode);
	if (refusal)
		return mm_fail(ctx, MM_ERR, "mode '%s' is unavailable: plugin %s refused: %s", mode,
		               refusal->path, refusal->reason);
	for (i = 0; i < ctx->plugins.count && used < sizeof(names); i++)
		used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "",
		                         ctx->plugins.plugins[i]->desc->name);
	return mm_fail(ctx, MM_ERR, "unknown mode '%s' (plugins in %s provide: %s)", mode,
	               ctx->plugin_dir, ctx->plugins.count ? names : "none");
}

int mm_open_state(struct mm_ctx *ctx, int create)
{
	struct stat st;

	if (ctx->state)
		return MM_OK;
	/* A missing DB is an empty state, a DB that cannot be is an error. */
	if (mm_state_check_path(ctx->state_path, ctx->err) != MM_OK)
		return MM_ERR;
	if (!create && !mm_db_is_url(ctx->state_path) && stat(ctx->state_path, &st) != 0 &&
	    errno == ENOENT)
		return MM_OK;
	return mm_state_open(ctx->state_path, ctx->args.lock_timeout_ms, &ctx->state, ctx->err);
}

int mm_domain_arg(struct mm_ctx *ctx, const char *arg, char *domain)
{
	char why[MM_ERR_MAX];

	if (mm_domain_normalize(arg, domain, why, sizeof(why)) != 0)
		return mm_fail(ctx, MM_USAGE, "%s", why);
	return MM_OK;
}

struct each_domain {
	int (*fn)(const char *domain, const struct mm_domain_row *row, void *arg);
	void *arg;
};

static int each_row(const struct mm_domain_row *row, void *arg)
{
	const struct each_domain *each = arg;

	return each->fn(row->domain, row, each->arg);
}

int mm_each_domain(struct mm_ctx *ctx,
                   int (*fn)(const char *domain, const struct mm_domain_row *row, void *arg),
                   void *arg)
{
	struct each_domain each = { fn, arg };
	int rc = MM_OK, i;

	if (ctx->args.npositional == 0)
		return ctx->state ? mm_state_each_domain(ctx->state, each_row, &each, ctx->err) : MM_OK;
	for (i = 0; i < ctx->args.npositional && rc == MM_OK; i++) {
		char domain[MM_DOMAIN_MAX + 1];
		struct mm_domain_row row = { 0 };
		int found = 0;

		if ((rc = mm_domain_arg(ctx, ctx->args.positional[i], domain)) != MM_OK)
			return rc;
		if (ctx->state &&
		    (rc = mm_state_get_domain(ctx->state, domain, &row, &found, ctx->err)) != MM_OK)
			return rc;
		rc = fn(domain, found ? &row : NULL, arg);
		mm_domain_row_clear(&row);
	}
	return rc;
}

cJSON *mm_json_from_text(const char *text)
{
	cJSON *v;

	if (!text)
		return cJSON_CreateNull();
	v = cJSON_Parse(text);
	return v ? v : cJSON_CreateString(text);
}

int mm_refuse_open_migration(struct mm_ctx *ctx, const char *domain)
{
	struct mm_migration m;
	int found, rc;

	if (!ctx->state)
		return MM_OK;
	rc = mm_state_migration_get(ctx->state, domain, &m, &found, ctx->err);
	if (rc == MM_OK && found) {
		rc = mm_fail(ctx, MM_REFUSED,
		             "%s has an unfinished migration to %s mode (last step: %s): run 'mailmode resume %s' or 'mailmode abort %s'",
		             domain, m.to_mode, m.step, domain, domain);
	}
	mm_migration_clear(&m);
	return rc;
}

int mm_domain_profile(struct mm_ctx *ctx, const struct mm_domain_row *row, int found,
                      char *profile, size_t len)
{
	char section[320];

	if (!ctx->args.profile && found && row->profile) {
		snprintf(profile, len, "%s", row->profile);
		return MM_OK;
	}
	if (mm_config_profile(ctx->config, ctx->args.profile, section, sizeof(section), ctx->err,
	                      sizeof(ctx->err)) != 0)
		return MM_ERR;
	snprintf(profile, len, "%s", section + strlen("profile "));
	return MM_OK;
}

void mm_engine_for(struct mm_ctx *ctx, struct mm_engine *e)
{
	*e = (struct mm_engine){ .state = ctx->state, .plugins = &ctx->plugins,
	                         .output = &ctx->output, .slot = -1,
	                         .command = ctx->args.command,
	                         .lock_wait_ms = ctx->args.lock_timeout_ms };
}

void mm_switch_options_for(const struct mm_ctx *ctx, struct mm_switch_options *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->verify_timeout_ms = ctx->args.verify_timeout_ms >= 0 ? ctx->args.verify_timeout_ms
	                                                          : MM_DEFAULT_VERIFY_TIMEOUT_MS;
	opts->poll_interval_ms = ctx->args.poll_interval_ms > 0 ? ctx->args.poll_interval_ms
	                                                        : MM_DEFAULT_POLL_INTERVAL_MS;
	memcpy(opts->accept_conflicts, ctx->args.accept_conflicts, sizeof(opts->accept_conflicts));
	opts->force = ctx->args.force;
	opts->no_wait = ctx->args.no_wait;
	opts->max_settle_ms = ctx->args.max_settle_ms > 0 ? ctx->args.max_settle_ms : 0;
}
