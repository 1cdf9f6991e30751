/* config check [FILE]: the file checked as every command checks it, then
 * each profile's settings validated by each mode the profile configures
 * (files readable, secrets private, values well-formed), without asking
 * any server and without opening the state DB. */
#include "cli.h"

#include "ops.h"

#include <string.h>

/* Validation needs a domain; this one is reserved never to exist. */
#define CHECK_DOMAIN "config-check.invalid"

struct config_check {
	struct mm_ctx *ctx;
	cJSON *results;
	int problems;
};

static int declares(const struct mailmode_plugin *d, const char *key)
{
	const struct mailmode_config_key *k;

	for (k = mm_declared_keys(d); k && k->name; k++)
		if (strcmp(k->section, "profile") == 0 && strcmp(k->name, key) == 0)
			return 1;
	return 0;
}

/* The profile configures the mode when it sets a profile key only that
 * mode declares ("dns", "tenant"), or, when it sets none of those, any
 * key the mode declares ("service" is both modes'). */
static int configures(const struct mm_ctx *ctx, const char *section, size_t mode)
{
	const struct mm_plugin_set *set = &ctx->plugins;
	const struct mailmode_config_key *k;
	int shared = 0, own = 0, others_own = 0;
	size_t i, j;

	for (i = 0; i < set->count; i++)
		for (k = mm_declared_keys(set->plugins[i]->desc); k && k->name; k++) {
			int alone = 1;

			if (strcmp(k->section, "profile") != 0 || !mm_config_get(ctx->config, section, k->name))
				continue;
			for (j = 0; j < set->count; j++)
				if (j != i && declares(set->plugins[j]->desc, k->name))
					alone = 0;
			if (alone && i == mode)
				own = 1;
			else if (alone)
				others_own = 1;
			else if (i == mode)
				shared = 1;
		}
	return own || (shared && !others_own);
}

static void check_one(struct config_check *c, const char *profile, struct mm_plugin *p)
{
	struct mm_op op = { .plugin = p, .domain = CHECK_DOMAIN, .profile = profile };
	struct mailmode_diag diag;
	cJSON *item = cJSON_CreateObject();
	int ok = mm_op_validate(&op, &diag) == MM_OK;

	cJSON_AddStringToObject(item, "profile", profile);
	cJSON_AddStringToObject(item, "mode", p->desc->name);
	cJSON_AddBoolToObject(item, "ok", ok);
	if (!ok) {
		cJSON_AddStringToObject(item, "error", diag.summary);
		c->problems++;
	}
	cJSON_AddItemToArray(c->results, item);
	if (c->ctx->output.json)
		return;
	if (ok)
		printf("profile %s: %s mode: ok\n", profile, p->desc->name);
	else
		printf("profile %s: %s mode: %s\n", profile, p->desc->name, diag.summary);
}

static void check_profile(const char *name, void *arg)
{
	struct config_check *c = arg;
	char section[320];
	size_t i;
	int any = 0;

	snprintf(section, sizeof(section), "profile %s", name);
	for (i = 0; i < c->ctx->plugins.count; i++)
		if (configures(c->ctx, section, i)) {
			check_one(c, name, c->ctx->plugins.plugins[i]);
			any = 1;
		}
	if (!any) {
		mm_log(&c->ctx->output, MAILMODE_LOG_WARNING,
		       "config %s: [profile %s] configures no loaded mode",
		       mm_config_path(c->ctx->config), name);
	}
}

int mm_cmd_config(struct mm_ctx *ctx)
{
	struct config_check c = { ctx, NULL, 0 };
	int rc;

	if (strcmp(ctx->args.positional[0], "check") != 0)
		return mm_fail(ctx, MM_USAGE, "unknown config command '%s': usage: mailmode config check [FILE]",
		               ctx->args.positional[0]);
	cJSON_AddStringToObject(ctx->doc, "config", mm_config_path(ctx->config));
	if ((rc = mm_load_plugins(ctx)) != MM_OK)
		return rc;
	c.results = cJSON_AddArrayToObject(ctx->doc, "profiles");
	mm_config_each_profile(ctx->config, check_profile, &c);
	if (c.problems)
		return mm_fail(ctx, MM_ERR, "config %s: %d profile setting(s) do not validate",
		               mm_config_path(ctx->config), c.problems);
	if (!ctx->output.json)
		printf("config %s: ok\n", mm_config_path(ctx->config));
	return MM_OK;
}
