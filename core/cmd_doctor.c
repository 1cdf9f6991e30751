/* mailmode doctor [DOMAIN...]: everything a switch of each domain needs,
 * checked one by one and listed with its fix.  The checks are the mode
 * plugins' (ABI 1.4 doctor); a check of a shared scope (a tenant, a zone,
 * a service) is the same for every domain that uses it and is shown once,
 * failing when it failed for any of them.  Exit 0 when every check holds,
 * MM_UNVERIFIED (3) when one does not. */
#include "check.h"
#include "cli.h"
#include "ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct doctor_run {
	struct mm_ctx *ctx;
	cJSON *checks;        /* merged, in the order first seen */
	int domains;
};

static cJSON *find_check(const cJSON *checks, const char *scope, const char *check)
{
	cJSON *c;

	cJSON_ArrayForEach(c, checks) {
		const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(c, "scope"));
		const char *k = cJSON_GetStringValue(cJSON_GetObjectItem(c, "check"));

		if (s && k && strcmp(s, scope) == 0 && strcmp(k, check) == 0)
			return c;
	}
	return NULL;
}

static void add_domain(cJSON *check, const char *domain)
{
	cJSON *domains = cJSON_GetObjectItem(check, "domains"), *d;

	if (!domains)
		domains = cJSON_AddArrayToObject(check, "domains");
	cJSON_ArrayForEach(d, domains)
		if (strcmp(cJSON_GetStringValue(d), domain) == 0)
			return;
	cJSON_AddItemToArray(domains, cJSON_CreateString(domain));
}

/* Adds one check (consumed); the same scope and check seen before stays
 * one entry, and a failure replaces a success (its detail and fix are the
 * ones to show). */
static void merge(struct doctor_run *run, cJSON *check, const char *domain)
{
	const char *scope = cJSON_GetStringValue(cJSON_GetObjectItem(check, "scope"));
	const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(check, "check"));
	cJSON *have, *domains;

	if (!scope || !name || !cJSON_IsBool(cJSON_GetObjectItem(check, "ok"))) {
		cJSON_Delete(check);
		return;
	}
	have = find_check(run->checks, scope, name);
	if (have && (cJSON_IsTrue(cJSON_GetObjectItem(check, "ok")) ||
	             cJSON_IsFalse(cJSON_GetObjectItem(have, "ok")))) {
		add_domain(have, domain);
		cJSON_Delete(check);
		return;
	}
	cJSON_DeleteItemFromObject(check, "domains");
	if (have) {
		domains = cJSON_DetachItemFromObject(have, "domains");
		cJSON_ReplaceItemViaPointer(run->checks, have, check);
		if (domains)
			cJSON_AddItemToObject(check, "domains", domains);
	} else {
		cJSON_AddItemToArray(run->checks, check);
	}
	add_domain(check, domain);
}

/* A check the core makes itself (no plugin answer to merge). */
static void merge_new(struct doctor_run *run, const char *domain, const char *name, int ok,
                      int warning, const char *detail, const char *fix)
{
	cJSON *one = cJSON_CreateArray();
	char scope[320];

	snprintf(scope, sizeof(scope), "domain %s", domain);
	if (one && mm_check_addf(one, scope, name, ok, warning, fix, "%s", detail) == 0)
		merge(run, cJSON_DetachItemFromArray(one, 0), domain);
	cJSON_Delete(one);
}

/* A plugin without the doctor operation: its preflight of setup stands
 * for its checks.  A profile it finds nothing of its own in (its
 * validate_config fails) does not use that mode: a warning, not a
 * failure. */
static void doctor_fallback(struct doctor_run *run, const struct mm_op *op)
{
	const char *mode = op->plugin->desc->name;
	struct mailmode_diag diag;
	char name[96];

	snprintf(name, sizeof(name), "%s mode", mode);
	if (mm_op_validate(op, &diag) != MM_OK) {
		merge_new(run, op->domain, name, 1, 1, diag.summary,
		          "configure the mode in the profile to switch the domain to it");
		return;
	}
	if (mm_op_preflight(op, MAILMODE_PLAN_SETUP, &diag) == MM_OK)
		merge_new(run, op->domain, name, 1, 0, "preflight: setup can run", NULL);
	else
		merge_new(run, op->domain, name, 0, 0, diag.summary,
		          diag.detail[0] ? diag.detail : "see the plugin's documentation");
}

static void doctor_mode(struct doctor_run *run, struct mm_plugin *p, const char *domain,
                        const char *profile)
{
	struct mm_op op = { .plugin = p, .domain = domain, .profile = profile };
	struct mailmode_diag diag;
	char *text = NULL, name[96];
	cJSON *checks = NULL, *c;

	if (!mm_plugin_has_doctor(p)) {
		doctor_fallback(run, &op);
		return;
	}
	if (mm_op_doctor(&op, &text, &diag) == MM_OK && text)
		checks = cJSON_Parse(text);
	free(text);
	if (!cJSON_IsArray(checks)) {
		snprintf(name, sizeof(name), "%s checks", p->desc->name);
		merge_new(run, domain, name, 0, 0,
		          diag.summary[0] ? diag.summary : "the plugin handed back no JSON array of checks",
		          diag.detail[0] ? diag.detail : "run with -v for the plugin's log");
		cJSON_Delete(checks);
		return;
	}
	while ((c = cJSON_DetachItemFromArray(checks, 0)) != NULL)
		merge(run, c, domain);
	cJSON_Delete(checks);
}

static void doctor_domain(struct doctor_run *run, const char *domain,
                          const struct mm_domain_row *row)
{
	struct mm_ctx *ctx = run->ctx;
	char section[320], profile[320] = "", err[MM_ERR_MAX];
	size_t i;

	run->domains++;
	if (row && row->profile)
		snprintf(profile, sizeof(profile), "%s", row->profile);
	else if (mm_config_profile(ctx->config, ctx->args.profile, section, sizeof(section), err,
	                           sizeof(err)) == 0)
		snprintf(profile, sizeof(profile), "%s", section + strlen("profile "));
	if (!profile[0]) {
		merge_new(run, domain, "profile", 0, 0, err,
		          "name the domain's profile with --profile P, or add a [profile P] section");
		return;
	}
	mm_progress(&ctx->output, "checking %s (profile %s)", domain, profile);
	for (i = 0; i < ctx->plugins.count; i++)
		doctor_mode(run, ctx->plugins.plugins[i], domain, profile);
}

static int doctor_arg(const char *domain, const struct mm_domain_row *row, void *arg)
{
	doctor_domain(arg, domain, row);
	return MM_OK;
}

static void print_check(const cJSON *c)
{
	const char *detail = cJSON_GetStringValue(cJSON_GetObjectItem(c, "detail"));
	const char *fix = cJSON_GetStringValue(cJSON_GetObjectItem(c, "fix"));
	int ok = cJSON_IsTrue(cJSON_GetObjectItem(c, "ok"));
	int warning = cJSON_IsTrue(cJSON_GetObjectItem(c, "warning"));

	printf("%-4s %s: %s%s%s", !ok ? "FAIL" : warning ? "warn" : "ok",
	       cJSON_GetStringValue(cJSON_GetObjectItem(c, "scope")),
	       cJSON_GetStringValue(cJSON_GetObjectItem(c, "check")),
	       detail && detail[0] ? ": " : "", detail ? detail : "");
	if ((!ok || warning) && fix && fix[0])
		printf(" \u2014 fix: %s", fix);
	putchar('\n');
}

int mm_cmd_doctor(struct mm_ctx *ctx)
{
	struct doctor_run run = { .ctx = ctx };
	const cJSON *c;
	int rc, failed = 0, warnings = 0, total = 0;

	run.checks = cJSON_AddArrayToObject(ctx->doc, "checks");
	if ((rc = mm_load_plugins(ctx)) != MM_OK || (rc = mm_open_state(ctx, 0)) != MM_OK)
		return rc;
	if ((rc = mm_each_domain(ctx, doctor_arg, &run)) != MM_OK)
		return rc;
	if (run.domains == 0)
		return mm_fail(ctx, MM_USAGE,
		               "doctor: no domain in the state %s: name the domains to check (mailmode doctor DOMAIN... [--profile P])",
		               ctx->state_path);
	mm_progress_end(&ctx->output);
	cJSON_ArrayForEach(c, run.checks) {
		total++;
		failed += !cJSON_IsTrue(cJSON_GetObjectItem(c, "ok"));
		warnings += cJSON_IsTrue(cJSON_GetObjectItem(c, "ok")) &&
		            cJSON_IsTrue(cJSON_GetObjectItem(c, "warning"));
		if (!ctx->output.json)
			print_check(c);
	}
	c = cJSON_AddObjectToObject(ctx->doc, "summary");
	cJSON_AddNumberToObject((cJSON *)c, "domains", run.domains);
	cJSON_AddNumberToObject((cJSON *)c, "checks", total);
	cJSON_AddNumberToObject((cJSON *)c, "failed", failed);
	cJSON_AddNumberToObject((cJSON *)c, "warnings", warnings);
	if (!ctx->output.json)
		printf("%d check(s) for %d domain(s): %d failed, %d warning(s)\n", total, run.domains,
		       failed, warnings);
	if (failed)
		return mm_fail(ctx, MM_UNVERIFIED, "doctor: %d of %d check(s) failed: a switch would not succeed",
		               failed, total);
	return MM_OK;
}
