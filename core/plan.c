/* Plans as values: the steps of a dry run, each with its actions (JSON
 * objects, plugin.h plan_actions), and the summary that ends a plan. */
#include "cli.h"

#include "ops.h"
#include "prepare.h"

#include <stdarg.h>

#include <stdlib.h>
#include <string.h>

/* The plugin's actions, checked: an array of objects each with a "text". */
static cJSON *parse_actions(const struct mm_op *op, const char *text, char *why, size_t len)
{
	cJSON *actions = text ? cJSON_Parse(text) : cJSON_CreateArray();
	const cJSON *a;

	if (!cJSON_IsArray(actions)) {
		snprintf(why, len, "its plan_actions of %s is not a JSON array", op->domain);
		goto bad;
	}
	cJSON_ArrayForEach(a, actions)
		if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(a, "text"))) {
			snprintf(why, len, "an action of its plan_actions of %s has no \"text\"",
			         op->domain);
			goto bad;
		}
	return actions;
bad:
	cJSON_Delete(actions);
	return NULL;
}

/* A warning of the plan, as an action. */
static void add_warning(cJSON *actions, const char *line, size_t len)
{
	cJSON *w = cJSON_CreateObject();
	char *copy = strndup(line, len);

	cJSON_AddStringToObject(w, "change", "warning");
	cJSON_AddStringToObject(w, "text", copy ? copy : "");
	cJSON_AddItemToArray(actions, w);
	free(copy);
}

/* A plugin that succeeded with warnings says so in its diagnostic: each
 * line of the detail (the summary when there is none) becomes a warning
 * of the plan. */
static void add_warnings(cJSON *actions, const struct mailmode_diag *diag)
{
	const char *line, *eol;

	if (diag->severity != MAILMODE_SEV_WARNING || !diag->summary[0])
		return;
	if (!diag->detail[0])
		add_warning(actions, diag->summary, strlen(diag->summary));
	for (line = diag->detail; *line; line = eol ? eol + 1 : "") {
		eol = strchr(line, '\n');
		if ((eol ? (size_t)(eol - line) : strlen(line)) > 0)
			add_warning(actions, line, eol ? (size_t)(eol - line) : strlen(line));
	}
}

/* An action's text, each of its lines indented under the step. */
static void print_action(const cJSON *a)
{
	const char *change = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "change"));
	const char *line = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "text")), *eol;

	if (change && strcmp(change, "warning") == 0)
		printf("  warning: ");
	else
		printf("  ");
	for (; (eol = strchr(line, '\n')); line = eol + 1)
		printf("%.*s\n  ", (int)(eol - line), line);
	printf("%s\n", line);
}

int mm_show_plan(struct mm_ctx *ctx, cJSON *plan, const struct mm_op *op,
                 enum mailmode_plan_op which)
{
	struct mailmode_diag diag;
	const char *what = which == MAILMODE_PLAN_SETUP ? "setup" : "teardown";
	char *text = NULL, why[MM_ERR_MAX];
	cJSON *step, *actions = NULL;
	const cJSON *a;
	int rc = mm_op_plan_actions(op, which, &text, &diag);

	if (rc != MM_OK)
		return mm_fail_diag(ctx, rc, &diag);
	actions = parse_actions(op, text, why, sizeof(why));
	free(text);
	if (!actions)
		return mm_fail(ctx, MM_ERR, "plugin %s: %s", op->plugin->desc->name, why);
	add_warnings(actions, &diag);
	step = cJSON_CreateObject();
	cJSON_AddItemToArray(plan, step);
	cJSON_AddStringToObject(step, "step", what);
	cJSON_AddStringToObject(step, "mode", op->plugin->desc->name);
	cJSON_AddItemToObject(step, "actions", actions);
	mm_progress_end(&ctx->output);
	if (ctx->output.json)
		return MM_OK;
	printf("%s of %s in %s mode would:\n", what, op->domain, op->plugin->desc->name);
	cJSON_ArrayForEach(a, actions)
		print_action(a);
	if (cJSON_GetArraySize(actions) == 0)
		printf("  (nothing: already done)\n");
	return MM_OK;
}

cJSON *mm_add_plan_step(struct mm_ctx *ctx, cJSON *plan, const char *step, const char *mode,
                        const char *action)
{
	cJSON *item = cJSON_CreateObject(), *a = cJSON_CreateObject();

	cJSON_AddStringToObject(item, "step", step);
	cJSON_AddStringToObject(item, "mode", mode);
	cJSON_AddStringToObject(a, "text", action);
	cJSON_AddItemToArray(cJSON_AddArrayToObject(item, "actions"), a);
	cJSON_AddItemToArray(plan, item);
	if (!ctx->output.json)
		printf("%s %s mode: %s\n", step, mode, action);
	return item;
}

/* ------------------------------------------------------------------ */
/* The summary. */

static const char *str_of(const cJSON *o, const char *key)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* Counts the action in changes, an array of {"change", "object", "count"}. */
static void count_change(cJSON *changes, const char *change, const char *object)
{
	cJSON *c;

	cJSON_ArrayForEach(c, changes)
		if (strcmp(str_of(c, "change"), change) == 0 &&
		    strcmp(str_of(c, "object"), object) == 0) {
			cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(c, "count"),
			                     cJSON_GetObjectItemCaseSensitive(c, "count")->valuedouble + 1);
			return;
		}
	c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "change", change);
	cJSON_AddStringToObject(c, "object", object);
	cJSON_AddNumberToObject(c, "count", 1);
	cJSON_AddItemToArray(changes, c);
}

/* What a summary counts: changes, not reuses, notes or warnings. */
static int counted(const char *change)
{
	static const char *const kinds[] = { "create", "update", "remove", "replace" };
	size_t i;

	for (i = 0; change && i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(change, kinds[i]) == 0)
			return 1;
	return 0;
}

/* The scope's entry in shared ({"scope", "domains": [...], "changes",
 * "seen": [identities]}), made on first use. */
static cJSON *scope_of(cJSON *shared, const char *scope)
{
	cJSON *s;

	cJSON_ArrayForEach(s, shared)
		if (strcmp(str_of(s, "scope"), scope) == 0)
			return s;
	s = cJSON_CreateObject();
	cJSON_AddStringToObject(s, "scope", scope);
	cJSON_AddArrayToObject(s, "domains");
	cJSON_AddArrayToObject(s, "changes");
	cJSON_AddArrayToObject(s, "seen");
	cJSON_AddItemToArray(shared, s);
	return s;
}

static int has_string(const cJSON *list, const char *s)
{
	const cJSON *i;

	cJSON_ArrayForEach(i, list)
		if (strcmp(cJSON_GetStringValue(i), s) == 0)
			return 1;
	return 0;
}

static void add_unique(cJSON *list, const char *s)
{
	if (!has_string(list, s))
		cJSON_AddItemToArray(list, cJSON_CreateString(s));
}

/* One action of a domain's plan: a shared object once per scope (its
 * change, object and name), the rest in the domain's own counts. */
static void summarise_action(cJSON *sum, cJSON *shared, const char *domain, const cJSON *a)
{
	const char *change = str_of(a, "change"), *object = str_of(a, "object");
	const char *scope = str_of(a, "shared"), *name = str_of(a, "name");
	char id[1024];
	cJSON *s;

	if (change && strcmp(change, "warning") == 0) {
		cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(sum, "warnings"),
		                     cJSON_GetObjectItemCaseSensitive(sum, "warnings")->valuedouble + 1);
		return;
	}
	if (!counted(change) || !object)
		return;
	if (strcmp(object, "mx") == 0) {
		cJSON_DeleteItemFromObjectCaseSensitive(sum, "mx");
		cJSON_AddStringToObject(sum, "mx", change);
		return;
	}
	if (!scope) {
		count_change(cJSON_GetObjectItemCaseSensitive(sum, "changes"), change, object);
		return;
	}
	s = scope_of(shared, scope);
	add_unique(cJSON_GetObjectItemCaseSensitive(s, "domains"), domain);
	add_unique(cJSON_GetObjectItemCaseSensitive(sum, "shared"), scope);
	snprintf(id, sizeof(id), "%s\n%s\n%s", change, object, name ? name : "");
	if (has_string(cJSON_GetObjectItemCaseSensitive(s, "seen"), id))
		return;
	add_unique(cJSON_GetObjectItemCaseSensitive(s, "seen"), id);
	count_change(cJSON_GetObjectItemCaseSensitive(s, "changes"), change, object);
	if (!cJSON_GetObjectItemCaseSensitive(s, "first"))
		cJSON_AddStringToObject(s, "first", domain);
}

/* A domain's summary from the steps of its plan. */
static cJSON *summarise_domain(cJSON *shared, const cJSON *entry)
{
	const char *domain = str_of(entry, "domain"), *error = str_of(entry, "error");
	cJSON *sum = cJSON_CreateObject();
	const cJSON *step, *a, *wait;

	cJSON_AddStringToObject(sum, "domain", domain);
	cJSON_AddArrayToObject(sum, "changes");
	cJSON_AddArrayToObject(sum, "shared");
	cJSON_AddNumberToObject(sum, "warnings", 0);
	cJSON_ArrayForEach(step, cJSON_GetObjectItemCaseSensitive(entry, "plan")) {
		wait = cJSON_GetObjectItemCaseSensitive(step, "wait_ms");
		if (cJSON_IsNumber(wait))
			cJSON_AddNumberToObject(sum, "wait_ms", wait->valuedouble);
		cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(step, "actions"))
			summarise_action(sum, shared, domain, a);
	}
	if (error)
		cJSON_AddStringToObject(sum, "error", error);
	else if (str_of(entry, "action"))
		cJSON_AddStringToObject(sum, "skipped", str_of(entry, "action"));
	return sum;
}

/* A summary line being written; what does not fit is cut. */
struct line {
	char text[2048];
	size_t len;
};

MAILMODE_PRINTF(2, 3) static void addf(struct line *out, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (out->len >= sizeof(out->text) - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(out->text + out->len, sizeof(out->text) - out->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		out->len += (size_t)n < sizeof(out->text) - out->len ? (size_t)n
		                                                   : sizeof(out->text) - 1 - out->len;
}

/* "2 inbound connectors to create, 1 transport rule to update" */
static void say_changes(struct line *out, const cJSON *changes, const char **sep)
{
	const cJSON *c;

	cJSON_ArrayForEach(c, changes) {
		int n = (int)cJSON_GetObjectItemCaseSensitive(c, "count")->valuedouble;

		addf(out, "%s%d %s%s to %s", *sep, n, str_of(c, "object"), n == 1 ? "" : "s",
		            str_of(c, "change"));
		*sep = ", ";
	}
}

/* A shared scope's objects in the line of the first domain that lists
 * them; later domains point back at them. */
static void say_shared(struct line *out, const cJSON *shared, const cJSON *sum,
                       const char **sep)
{
	const char *domain = str_of(sum, "domain");
	const cJSON *scope;

	cJSON_ArrayForEach(scope, cJSON_GetObjectItemCaseSensitive(sum, "shared")) {
		const cJSON *s = NULL;
		int n;

		cJSON_ArrayForEach(s, shared)
			if (strcmp(str_of(s, "scope"), cJSON_GetStringValue(scope)) == 0)
				break;
		n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(s, "domains"));
		if (strcmp(str_of(s, "first"), domain) != 0) {
			addf(out, "%sthe objects of %s shared with %s", *sep, str_of(s, "scope"),
			            str_of(s, "first"));
		} else {
			say_changes(out, cJSON_GetObjectItemCaseSensitive(s, "changes"), sep);
			addf(out, " (shared by %d domain%s of %s)", n, n == 1 ? "" : "s",
			            str_of(s, "scope"));
		}
		*sep = ", ";
	}
}

/* The domain's line of the summary. */
static void say_domain(struct line *out, const cJSON *shared, const cJSON *sum)
{
	const cJSON *wait = cJSON_GetObjectItemCaseSensitive(sum, "wait_ms");
	int warnings = (int)cJSON_GetObjectItemCaseSensitive(sum, "warnings")->valuedouble;
	const char *sep = "";

	addf(out, "%s: ", str_of(sum, "domain"));
	if (str_of(sum, "error")) {
		addf(out, "plan failed: %s", str_of(sum, "error"));
		return;
	}
	if (str_of(sum, "skipped")) {
		addf(out, "%s", str_of(sum, "skipped"));
		return;
	}
	say_changes(out, cJSON_GetObjectItemCaseSensitive(sum, "changes"), &sep);
	say_shared(out, shared, sum, &sep);
	if (str_of(sum, "mx")) {
		addf(out, "%sMX to %s", sep, str_of(sum, "mx"));
		sep = ", ";
	}
	if (!*sep)
		addf(out, "nothing to change");
	if (cJSON_IsNumber(wait) && wait->valuedouble > 0) {
		char when[32];

		mm_prepare_format_wait((long long)wait->valuedouble, when, sizeof(when));
		addf(out, ", waits ~%s", when);
	}
	if (warnings)
		addf(out, ", %d warning%s", warnings, warnings == 1 ? "" : "s");
}

void mm_plan_summary(struct mm_ctx *ctx, const cJSON *entries)
{
	cJSON *summary = cJSON_AddObjectToObject(ctx->doc, "summary");
	cJSON *domains = cJSON_AddArrayToObject(summary, "domains");
	cJSON *shared = cJSON_AddArrayToObject(summary, "shared"), *sum, *s;
	const cJSON *entry;

	cJSON_ArrayForEach(entry, entries)
		cJSON_AddItemToArray(domains, summarise_domain(shared, entry));
	if (!ctx->output.json)
		printf("summary:\n");
	cJSON_ArrayForEach(sum, domains) {
		struct line line = { .len = 0 };

		line.text[0] = '\0';
		say_domain(&line, shared, sum);
		if (!ctx->output.json)
			printf("  %s\n", line.text);
		cJSON_AddStringToObject(sum, "text", line.text);
	}
	/* The identities were the summary's bookkeeping only. */
	cJSON_ArrayForEach(s, shared)
		cJSON_DeleteItemFromObjectCaseSensitive(s, "seen");
}

void mm_plan_summary_one(struct mm_ctx *ctx, const char *domain, cJSON *plan)
{
	cJSON *entries = cJSON_CreateArray(), *entry = cJSON_CreateObject();

	cJSON_AddStringToObject(entry, "domain", domain);
	cJSON_AddItemReferenceToObject(entry, "plan", plan);
	cJSON_AddItemToArray(entries, entry);
	mm_plan_summary(ctx, entries);
	cJSON_Delete(entries);
}
