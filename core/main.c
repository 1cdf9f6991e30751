#include "cli.h"
#include "db.h"

#include "http.h"
#include "isolate.h"
#include "num.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_CONFIG MM_SYSCONFDIR "/mailmode/mailmode.conf"
#define DEFAULT_STATE MM_LOCALSTATEDIR "/lib/mailmode/state.db"

/* A path from the config file is taken from the file's directory; a
 * database URL (state = postgresql://...) as it is. */
static char *config_path_value(const struct mm_config *cfg, const char *value)
{
	char *full = NULL;

	if (value[0] == '/' || mm_db_is_url(value))
		return strdup(value);
	if (asprintf(&full, "%s/%s", mm_config_dir(cfg), value) < 0)
		return NULL;
	return full;
}

static int resolve_paths(struct mm_ctx *ctx)
{
	const char *cfg_state = mm_config_get(ctx->config, "mailmode", "state");
	const char *cfg_plugins = mm_config_get(ctx->config, "mailmode", "plugin_dir");
	const char *cfg_lock = mm_config_get(ctx->config, "mailmode", "lock_timeout");

	if (ctx->args.state_path)
		ctx->state_path = strdup(ctx->args.state_path);
	else if (cfg_state)
		ctx->state_path = config_path_value(ctx->config, cfg_state);
	else
		ctx->state_path = strdup(DEFAULT_STATE);
	if (ctx->args.plugin_dir)
		ctx->plugin_dir = strdup(ctx->args.plugin_dir);
	else if (cfg_plugins)
		ctx->plugin_dir = config_path_value(ctx->config, cfg_plugins);
	else
		ctx->plugin_dir = strdup(MM_PLUGIN_DIR);
	if (!ctx->state_path || !ctx->plugin_dir)
		return mm_fail(ctx, MM_ERR, "out of memory");
	if (cfg_lock) {
		long secs;

		if (mm_num_parse_long(cfg_lock, 0, MM_NUM_DURATION_MAX_MS / 1000, &secs) != 0)
			return mm_fail(ctx, MM_ERR, "config %s: [mailmode] lock_timeout '%s' is not a number of seconds (at most a year)",
			               mm_config_path(ctx->config), cfg_lock);
		ctx->args.lock_timeout_ms = secs * 1000;
	}
	return MM_OK;
}

/* Where the config is when neither --config nor MAILMODE_CONFIG names
 * one: the user's, then the system's; the first that exists.  0 when
 * neither does (path is then the system's); searched lists both. */
static int find_default_config(char *path, size_t len, char *searched, size_t slen)
{
	const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	char user[4096] = "";

	if (xdg && xdg[0] == '/')
		snprintf(user, sizeof(user), "%s/mailmode/mailmode.conf", xdg);
	else if (home && home[0] == '/')
		snprintf(user, sizeof(user), "%s/.config/mailmode/mailmode.conf", home);
	snprintf(searched, slen, "%s%s%s", user, user[0] ? " and " : "", DEFAULT_CONFIG);
	if (user[0] && access(user, F_OK) == 0) {
		snprintf(path, len, "%s", user);
		return 1;
	}
	snprintf(path, len, "%s", DEFAULT_CONFIG);
	return access(DEFAULT_CONFIG, F_OK) == 0;
}

static int load_config(struct mm_ctx *ctx)
{
	const char *named = ctx->args.config_path;
	/* The sandbox writes the config it is then used with; listing the
	 * plugins needs none, nor a run's report from a copy of the state DB
	 * (--state). */
	int optional = strcmp(ctx->args.command, "sandbox") == 0 ||
	               strcmp(ctx->args.command, "plugins") == 0 ||
	               (strcmp(ctx->args.command, "runbook") == 0 && ctx->args.state_path &&
	                ctx->args.npositional && strcmp(ctx->args.positional[0], "report") == 0);
	char path[4096], searched[8192];

	if (strcmp(ctx->args.command, "config") == 0 && ctx->args.npositional > 1)
		named = ctx->args.positional[1];
	if (!named)
		named = getenv("MAILMODE_CONFIG");
	if (named)
		snprintf(path, sizeof(path), "%s", named);
	else if (!find_default_config(path, sizeof(path), searched, sizeof(searched)) && !optional)
		return mm_fail(ctx, MM_ERR,
		               "no config file: looked for %s; write one (see mailmode.conf(5)) or name it with --config FILE or MAILMODE_CONFIG",
		               searched);
	ctx->config = mm_config_load(path, named && !optional ? MM_CONFIG_REQUIRED
	                                                      : MM_CONFIG_OPTIONAL,
	                             ctx->err, sizeof(ctx->err));
	return ctx->config ? MM_OK : MM_ERR;
}

static int dispatch(struct mm_ctx *ctx)
{
	static const struct {
		const char *name;
		int (*run)(struct mm_ctx *ctx);
	} table[] = {
		{ "plugins", mm_cmd_plugins }, { "status", mm_cmd_status },
		{ "setup", mm_cmd_setup },     { "verify", mm_cmd_verify },
		{ "teardown", mm_cmd_teardown }, { "adopt", mm_cmd_adopt },
		{ "log", mm_cmd_log },         { "switch", mm_cmd_switch },
		{ "resume", mm_cmd_resume },   { "abort", mm_cmd_abort },
		{ "sandbox", mm_cmd_sandbox },    { "runbook", mm_cmd_runbook },
		{ "config", mm_cmd_config },   { "doctor", mm_cmd_doctor },
		{ "tenant", mm_cmd_tenant },   { "prepare", mm_cmd_prepare },
	};
	size_t i;

	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (strcmp(table[i].name, ctx->args.command) == 0)
			return table[i].run(ctx);
	return mm_fail(ctx, MM_USAGE, "unknown command '%s'", ctx->args.command);
}

static void finish_output(struct mm_ctx *ctx, int rc)
{
	mm_progress_end(&ctx->output);
	if (rc != MM_OK && ctx->err[0]) {
		fprintf(stderr, "mailmode: error: %s\n", ctx->err);
		if (!ctx->output.json && ctx->err_detail[0])
			mm_print_block(ctx->err_detail, "  ");
	}
	if (ctx->output.json) {
		char *text;

		cJSON_AddBoolToObject(ctx->doc, "ok", rc == MM_OK);
		cJSON_AddNumberToObject(ctx->doc, "exit", rc);
		if (rc != MM_OK && ctx->err[0])
			cJSON_AddStringToObject(ctx->doc, "error", ctx->err);
		text = cJSON_Print(ctx->doc);
		if (text)
			printf("%s\n", text);
		free(text);
	}
}

int main(int argc, char **argv)
{
	struct mm_ctx ctx;
	int rc;

	/* A plugin's helper process (isolate.h) is this program too. */
	if (argc > 1 && strcmp(argv[1], MM_HELPER_ARG) == 0)
		return mm_helper_main(argc, argv);
	memset(&ctx, 0, sizeof(ctx));
	pthread_mutex_init(&ctx.output.lock, NULL);
	ctx.doc = cJSON_CreateObject();
	if (!ctx.doc || mm_http_global_init() != 0) {
		fprintf(stderr, "mailmode: error: cannot initialise\n");
		return MM_ERR;
	}
	rc = mm_cli_parse(&ctx.args, argc, argv, ctx.err);
	mm_output_init(&ctx.output, ctx.args.verbosity, ctx.args.json);
	if (rc != MM_OK) {
		/* One line says what is wrong; the hint says where to look. */
		if (mm_cli_is_command(ctx.args.command))
			snprintf(ctx.err_detail, sizeof(ctx.err_detail), "see 'mailmode help %s'",
			         ctx.args.command);
		else
			snprintf(ctx.err_detail, sizeof(ctx.err_detail), "see 'mailmode --help'");
		goto out;
	}
	if (ctx.args.help) {
		mm_cli_usage(stdout, ctx.args.command);
		goto out;
	}
	if (ctx.args.version) {
		printf("mailmode %s (plugin ABI %d.%d)\n", PACKAGE_VERSION, MAILMODE_ABI_MAJOR,
		       MAILMODE_ABI_MINOR);
		goto out;
	}
	cJSON_AddStringToObject(ctx.doc, "command", ctx.args.command);
	rc = load_config(&ctx);
	if (rc == MM_OK)
		rc = resolve_paths(&ctx);
	if (rc == MM_OK)
		rc = dispatch(&ctx);
out:
	if (!ctx.args.help && !ctx.args.version)
		finish_output(&ctx, rc);
	mm_state_close(ctx.state);
	if (ctx.plugins_loaded)
		mm_plugins_unload(&ctx.plugins);
	mm_config_free(ctx.config);
	free(ctx.plugin_dir);
	free(ctx.state_path);
	cJSON_Delete(ctx.doc);
	mm_http_global_cleanup();
	pthread_mutex_destroy(&ctx.output.lock);
	return rc;
}
