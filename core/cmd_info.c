/* plugins, status and log: the read-only commands. */
#include "cli.h"

#include "domain.h"
#include "ops.h"

#include <stdlib.h>
#include <string.h>

static const char *key_type_name(enum mailmode_key_type type)
{
	switch (type) {
	case MAILMODE_KEY_STRING: return "string";
	case MAILMODE_KEY_INT: return "int";
	case MAILMODE_KEY_DURATION: return "duration";
	case MAILMODE_KEY_BOOL: return "bool";
	case MAILMODE_KEY_PATH: return "path";
	case MAILMODE_KEY_LIST: return "list";
	}
	return "unknown";
}

static void add_key(struct mm_ctx *ctx, cJSON *keys, const struct mailmode_config_key *k)
{
	cJSON *item = cJSON_CreateObject();
	const char *type = key_type_name(k->type), *description = k->description ? k->description : "";

	cJSON_AddStringToObject(item, "section", k->section ? k->section : "");
	cJSON_AddStringToObject(item, "name", k->name);
	cJSON_AddStringToObject(item, "type", type);
	if (k->default_value)
		cJSON_AddStringToObject(item, "default", k->default_value);
	else
		cJSON_AddNullToObject(item, "default");
	cJSON_AddStringToObject(item, "description", description);
	cJSON_AddItemToArray(keys, item);
	if (!ctx->output.json)
		printf("%-10s %-30s %-8s %-14s %s\n", k->section ? k->section : "", k->name, type,
		       k->default_value ? k->default_value : "-", description);
}

/* plugins --keys MODE: the keys the mode declares it reads (ABI 1.2), one
 * a line: section kind, key, type, default ("-": none), description. */
static int list_keys(struct mm_ctx *ctx, const char *mode)
{
	const struct mailmode_config_key *k = NULL;
	const struct mailmode_plugin *d;
	struct mm_plugin *p;
	cJSON *keys;
	int rc = mm_find_plugin(ctx, mode, &p);

	if (rc != MM_OK)
		return rc;
	d = p->desc;
	k = mm_declared_keys(d);
	cJSON_AddStringToObject(ctx->doc, "mode", d->name);
	cJSON_AddBoolToObject(ctx->doc, "declared", k != NULL);
	keys = cJSON_AddArrayToObject(ctx->doc, "keys");
	if (!k && !ctx->output.json)
		printf("mode %s declares no configuration keys (plugin ABI %u.%u; config_keys is ABI 1.2): its sections are not checked\n",
		       d->name, d->abi_major, d->abi_minor);
	for (; k && k->name; k++)
		add_key(ctx, keys, k);
	return MM_OK;
}

int mm_cmd_plugins(struct mm_ctx *ctx)
{
	cJSON *list, *refused;
	size_t i;
	int rc;

	if (ctx->args.keys)
		return list_keys(ctx, ctx->args.keys);
	list = cJSON_AddArrayToObject(ctx->doc, "plugins");
	refused = cJSON_AddArrayToObject(ctx->doc, "refused");
	rc = mm_load_plugins(ctx);
	if (rc != MM_OK)
		return rc;
	for (i = 0; i < ctx->plugins.count; i++) {
		const struct mailmode_plugin *d = ctx->plugins.plugins[i]->desc;
		cJSON *item = cJSON_CreateObject();
		char abi[32];

		snprintf(abi, sizeof(abi), "%u.%u", d->abi_major, d->abi_minor);
		cJSON_AddStringToObject(item, "name", d->name);
		cJSON_AddStringToObject(item, "abi", abi);
		cJSON_AddStringToObject(item, "version", d->version ? d->version : "");
		cJSON_AddStringToObject(item, "path", ctx->plugins.plugins[i]->path);
		cJSON_AddStringToObject(item, "description", d->description ? d->description : "");
		cJSON_AddBoolToObject(item, "threadsafe", (d->caps & MAILMODE_CAP_THREADSAFE) != 0);
		cJSON_AddBoolToObject(item, "adopt", (d->caps & MAILMODE_CAP_ADOPT) != 0);
		cJSON_AddItemToArray(list, item);
		if (!ctx->output.json)
			printf("%-12s ABI %-5s %-40s %s\n", d->name, abi, ctx->plugins.plugins[i]->path,
			       d->description ? d->description : "");
	}
	for (i = 0; i < ctx->plugins.nrefused; i++) {
		const struct mm_refusal *r = &ctx->plugins.refused[i];
		cJSON *item = cJSON_CreateObject();

		cJSON_AddStringToObject(item, "path", r->path);
		cJSON_AddStringToObject(item, "reason", r->reason);
		cJSON_AddItemToArray(refused, item);
		fprintf(stderr, "mailmode: error: plugin %s refused: %s\n", r->path, r->reason);
	}
	if (ctx->plugins.nrefused)
		return mm_fail(ctx, MM_ERR, "%zu plugin file(s) refused in %s", ctx->plugins.nrefused,
		               ctx->plugin_dir);
	return MM_OK;
}

struct status_run {
	struct mm_ctx *ctx;
	cJSON *domains;
	int drift;
	int errors;
	int open;                 /* unfinished migrations */
};

/* The first snapshot of what a mode replaced, as the state keeps it. */
static void add_original(struct mm_ctx *ctx, cJSON *item, const char *domain, const char *mode)
{
	char err[MM_ERR_MAX], *snapshot = NULL;
	cJSON *originals;

	if (!mode || !ctx->state ||
	    mm_state_get_original(ctx->state, domain, mode, &snapshot, err) != MM_OK || !snapshot)
		return;
	originals = cJSON_GetObjectItem(item, "originals");
	if (!originals)
		originals = cJSON_AddObjectToObject(item, "originals");
	cJSON_AddItemToObject(originals, mode, mm_json_from_text(snapshot));
	if (!ctx->output.json)
		printf("    original (%s): %s\n", mode, snapshot);
	free(snapshot);
}

/* Observes one mode for the domain; records drift against the state. */
static void observe_mode(struct status_run *run, struct mm_plugin *p, const char *domain,
                         const char *profile, const struct mm_domain_row *row,
                         const char *migrating_to, cJSON *observed, cJSON *drift)
{
	const char *state_mode = row ? row->mode : NULL;
	struct mm_op op = { .plugin = p, .domain = domain, .profile = profile };
	enum mailmode_presence presence;
	struct mailmode_diag diag;
	cJSON *item;
	char *report = NULL, line[1024] = "";
	int is_state_mode = state_mode && strcmp(state_mode, p->desc->name) == 0;

	/* The domain's own mode is observed against what its setup recorded. */
	if (is_state_mode) {
		op.receipt = row->receipt;
		op.flags = row->adopted ? MAILMODE_REQ_ADOPTED : 0;
	}

	if (mm_op_validate(&op, &diag) != MM_OK) {
		if (is_state_mode) {
			snprintf(line, sizeof(line), "state says %s, but profile %s no longer configures it: %s",
			         state_mode, profile, diag.summary);
			run->errors++;
			cJSON_AddItemToArray(drift, cJSON_CreateString(line));
		}
		return;
	}
	item = cJSON_AddObjectToObject(observed, p->desc->name);
	if (mm_op_observe(&op, &presence, &report, &diag) != MM_OK) {
		cJSON_AddStringToObject(item, "presence", "unknown");
		cJSON_AddStringToObject(item, "error", diag.summary);
		snprintf(line, sizeof(line), "%s: cannot observe: %s", p->desc->name, diag.summary);
		run->errors++;
	} else {
		cJSON_AddStringToObject(item, "presence", mm_presence_name(presence));
		if (is_state_mode && presence != MAILMODE_PRESENT)
			snprintf(line, sizeof(line), "state says %s, but %s mode is %s", state_mode,
			         p->desc->name, mm_presence_name(presence));
		else if (!is_state_mode && presence != MAILMODE_ABSENT &&
		         !(migrating_to && strcmp(migrating_to, p->desc->name) == 0))
			snprintf(line, sizeof(line), "state says %s, but %s mode is also %s",
			         state_mode ? state_mode : "no mode", p->desc->name,
			         presence == MAILMODE_PRESENT ? "live" : "partly live");
		if (line[0]) {
			run->drift++;
			cJSON_AddItemToArray(drift, cJSON_CreateString(line));
		}
	}
	if (report)
		cJSON_AddItemToObject(item, "report", mm_json_from_text(report));
	free(report);
}

static int status_one(struct status_run *run, const char *domain, const struct mm_domain_row *row)
{
	struct mm_ctx *ctx = run->ctx;
	cJSON *item = cJSON_CreateObject(), *observed, *drift;
	char section[320], profile[320] = "";
	const char *mode = row ? row->mode : NULL;
	struct mm_migration migration = { 0 };
	int migrating = 0;
	size_t i;

	cJSON_AddItemToArray(run->domains, item);
	cJSON_AddStringToObject(item, "domain", domain);
	if (mode)
		cJSON_AddStringToObject(item, "mode", mode);
	else
		cJSON_AddNullToObject(item, "mode");
	if (row && row->profile)
		snprintf(profile, sizeof(profile), "%s", row->profile);
	else if (mm_config_profile(ctx->config, ctx->args.profile, section, sizeof(section),
	                           ctx->err, sizeof(ctx->err)) == 0)
		snprintf(profile, sizeof(profile), "%s", section + strlen("profile "));
	cJSON_AddStringToObject(item, "profile", profile);
	cJSON_AddBoolToObject(item, "adopted", row && row->adopted);
	if (row && row->updated_at)
		cJSON_AddStringToObject(item, "updated_at", row->updated_at);
	/* During a migration both modes are live by design: not drift. */
	if (ctx->state &&
	    mm_state_migration_get(ctx->state, domain, &migration, &migrating, ctx->err) == MM_OK &&
	    migrating) {
		cJSON *m = cJSON_AddObjectToObject(item, "migration");

		cJSON_AddStringToObject(m, "kind", migration.kind);
		if (migration.to_mode)
			cJSON_AddStringToObject(m, "to", migration.to_mode);
		else
			cJSON_AddNullToObject(m, "to");
		cJSON_AddStringToObject(m, "step", migration.step);
		cJSON_AddStringToObject(m, "started_at", migration.started_at);
		run->open++;
	}
	observed = cJSON_AddObjectToObject(item, "observed");
	drift = cJSON_AddArrayToObject(item, "drift");
	if (profile[0])
		for (i = 0; i < ctx->plugins.count; i++)
			observe_mode(run, ctx->plugins.plugins[i], domain, profile, row,
			             migrating ? migration.to_mode : NULL, observed, drift);
	if (!ctx->output.json) {
		cJSON *d;

		mm_progress_end(&ctx->output);
		printf("%-32s %-10s profile %-12s%s\n", domain, mode ? mode : "-",
		       profile[0] ? profile : "-", row && row->adopted ? " (adopted)" : "");
		cJSON_ArrayForEach(d, observed) {
			const char *error = cJSON_GetStringValue(cJSON_GetObjectItem(d, "error"));

			printf("    %-10s %s%s%s\n", d->string,
			       cJSON_GetStringValue(cJSON_GetObjectItem(d, "presence")),
			       error ? ": " : "", error ? error : "");
		}
		cJSON_ArrayForEach(d, drift)
			printf("    DRIFT: %s\n", d->valuestring);
		if (migrating)
			printf("    UNFINISHED %s %s -> %s since %s, last step %s: mailmode resume %s\n",
			       migration.kind, migration.from_mode ? migration.from_mode : "none",
			       migration.to_mode ? migration.to_mode : "none", migration.started_at,
			       migration.step, domain);
	}
	add_original(ctx, item, domain, mode);
	if (migrating && migration.to_mode && (!mode || strcmp(mode, migration.to_mode) != 0))
		add_original(ctx, item, domain, migration.to_mode);
	mm_migration_clear(&migration);
	return MM_OK;
}

static int status_row(const struct mm_domain_row *row, void *arg)
{
	return status_one(arg, row->domain, row);
}

int mm_cmd_status(struct mm_ctx *ctx)
{
	struct status_run run = { .ctx = ctx };
	int rc, i;

	run.domains = cJSON_AddArrayToObject(ctx->doc, "domains");
	if ((rc = mm_load_plugins(ctx)) != MM_OK || (rc = mm_open_state(ctx, 0)) != MM_OK)
		return rc;
	if (ctx->args.npositional == 0) {
		if (ctx->state &&
		    (rc = mm_state_each_domain(ctx->state, status_row, &run, ctx->err)) != MM_OK)
			return rc;
	}
	for (i = 0; i < ctx->args.npositional; i++) {
		char domain[MM_DOMAIN_MAX + 1];
		struct mm_domain_row row = { 0 };
		int found = 0;

		if ((rc = mm_domain_arg(ctx, ctx->args.positional[i], domain)) != MM_OK)
			return rc;
		if (ctx->state &&
		    (rc = mm_state_get_domain(ctx->state, domain, &row, &found, ctx->err)) != MM_OK)
			return rc;
		status_one(&run, domain, found ? &row : NULL);
		mm_domain_row_clear(&row);
	}
	ctx->err[0] = '\0';
	if (run.drift)
		return mm_fail(ctx, MM_REFUSED, "drift: the world differs from the state for %d mode(s)",
		               run.drift);
	if (run.errors)
		return mm_fail(ctx, MM_ERR, "%d mode(s) could not be observed", run.errors);
	if (run.open)
		return mm_fail(ctx, MM_REFUSED, "%d unfinished migration(s): run 'mailmode resume'",
		               run.open);
	return MM_OK;
}

static int print_audit(const struct mm_audit_row *row, void *arg)
{
	struct mm_ctx *ctx = arg;
	cJSON *item = cJSON_CreateObject();

	cJSON_AddNumberToObject(item, "id", (double)row->id);
	cJSON_AddStringToObject(item, "at", row->at);
	cJSON_AddStringToObject(item, "actor", row->actor);
	cJSON_AddStringToObject(item, "domain", row->domain ? row->domain : "");
	cJSON_AddStringToObject(item, "action", row->action);
	cJSON_AddStringToObject(item, "detail", row->detail ? row->detail : "");
	cJSON_AddItemToArray(cJSON_GetObjectItem(ctx->doc, "log"), item);
	if (!ctx->output.json)
		printf("%s  %-24s %-28s %-16s %s\n", row->at, row->actor, row->domain ? row->domain : "-",
		       row->action, row->detail ? row->detail : "");
	return MM_OK;
}

int mm_cmd_log(struct mm_ctx *ctx)
{
	char domain[MM_DOMAIN_MAX + 1];
	int rc;

	cJSON_AddArrayToObject(ctx->doc, "log");
	if (ctx->args.npositional == 1 &&
	    (rc = mm_domain_arg(ctx, ctx->args.positional[0], domain)) != MM_OK)
		return rc;
	if ((rc = mm_open_state(ctx, 0)) != MM_OK || !ctx->state)
		return rc;
	return mm_state_each_audit(ctx->state, ctx->args.npositional ? domain : NULL, print_audit,
	                           ctx, ctx->err);
}
