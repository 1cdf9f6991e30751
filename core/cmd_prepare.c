/* prepare DOMAIN... --ttl SECONDS | --undo: the MX TTL lowered ahead of a
 * change window (prepare.h), what status says of it, and the cache wait a
 * switch's plan states. */
#include "cli.h"

#include "domain.h"
#include "ops.h"
#include "prepare.h"

#include <stdlib.h>
#include <string.h>

#define PREPARE_LOCK_LEASE_MS (30L * 60 * 1000)
/* Above this a wait is worth a prepare: the one the plan suggests. */
#define SUGGEST_ABOVE_S 900L
#define SUGGESTED_TTL 300L

/* One domain being prepared or undone. */
struct prep {
	struct mm_ctx *ctx;
	const char *domain;
	const char *profile;
	struct mm_domain_row row;
	int found;
	struct mm_prepare_row prep;
	int prepared;
	struct mm_plugin *plugin;
	char *original;
	struct mm_op_recorder rec;
	int recorded;              /* this call checkpointed or kept something */
	int unknown;
	cJSON *item;
};

static int record_checkpoint(const struct mm_op *op, const char *text, char *err)
{
	struct prep *p = op->recorder->arg;
	int rc = mm_state_prepare_record(p->ctx->state, op->domain, text, err);

	p->recorded |= rc == MM_OK;
	return rc;
}

static int record_original(const struct mm_op *op, const char *snapshot, char *err)
{
	struct prep *p = op->recorder->arg;
	int rc = mm_state_prepare_keep_original(p->ctx->state, op->domain, op->plugin->desc->name,
	                                        snapshot, err);

	p->recorded |= rc == MM_OK;
	return rc;
}

/* The mode whose records hold the TTL: the one a prepare began with, else
 * the domain's own, else the first of the profile's modes that can. */
static int choose_plugin(struct prep *p)
{
	struct mm_ctx *ctx = p->ctx;
	struct mailmode_diag diag;
	size_t i;

	if (p->prepared)
		return mm_find_plugin(ctx, p->prep.mode, &p->plugin);
	if (p->found && p->row.mode && mm_find_plugin(ctx, p->row.mode, &p->plugin) == MM_OK &&
	    mm_plugin_has_mx_ttl(p->plugin))
		return MM_OK;
	for (i = 0; i < ctx->plugins.count; i++) {
		struct mm_op op = { .plugin = ctx->plugins.plugins[i], .domain = p->domain,
		                    .profile = p->profile };

		if (mm_plugin_has_mx_ttl(op.plugin) && mm_op_validate(&op, &diag) == MM_OK) {
			p->plugin = op.plugin;
			return MM_OK;
		}
	}
	return mm_fail(ctx, MM_ERR,
	               "%s: no mode of profile %s manages its MX records (a mode whose plugin has the ABI 1.4 mx_ttl operation, configured for the profile: gateway mode's [dns] names the zone)",
	               p->domain, p->profile);
}

/* The request the plugin gets: the receipt when the domain is in its mode,
 * the original kept for its mode, the prepare's record. */
static struct mm_op prep_op(struct prep *p)
{
	int in_mode = p->found && p->row.mode && strcmp(p->row.mode, p->plugin->desc->name) == 0;
	struct mm_op op = {
		.plugin = p->plugin, .domain = p->domain, .profile = p->profile,
		.receipt = in_mode ? p->row.receipt : NULL, .original = p->original,
		.flags = in_mode && p->row.adopted ? MAILMODE_REQ_ADOPTED : 0,
		.recorder = &p->rec, .unknown = &p->unknown,
		.prepared = p->prepared ? p->prep.record : NULL,
	};

	return op;
}

/* Reads what the domain has, under its lock: nothing else may change its
 * MX meanwhile. */
static int load(struct prep *p)
{
	struct mm_ctx *ctx = p->ctx;
	struct mm_state *st = ctx->state;
	int rc;

	/* The MX set is the domain's own: its domain lock is enough. */
	p->rec = (struct mm_op_recorder){ .checkpoint = record_checkpoint,
	                                  .keep_original = record_original, .arg = p };
	if ((rc = mm_refuse_open_migration(ctx, p->domain)) != MM_OK ||
	    (rc = mm_state_get_domain(st, p->domain, &p->row, &p->found, ctx->err)) != MM_OK ||
	    (rc = mm_state_prepare_get(st, p->domain, &p->prep, &p->prepared, ctx->err)) != MM_OK)
		return rc;
	/* Finished or undone where it began, unless told otherwise. */
	if (p->prepared && !ctx->args.profile)
		p->profile = p->prep.profile;
	if ((rc = choose_plugin(p)) != MM_OK)
		return rc;
	return mm_state_get_original(st, p->domain, p->plugin->desc->name, &p->original, ctx->err);
}

static void prep_clear(struct prep *p)
{
	mm_domain_row_clear(&p->row);
	mm_prepare_row_clear(&p->prep);
	free(p->original);
}

static long long json_number(const cJSON *root, const char *name, long long fallback)
{
	const cJSON *v = cJSON_GetObjectItem(root, name);

	return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e15
	       ? (long long)v->valuedouble : fallback;
}

/* A failed call: when it may have written, the row stays unfinished (run
 * it again, or undo); else the domain is as it was. */
static int call_failed(struct prep *p, int rc, const struct mailmode_diag *diag, int undo)
{
	struct mm_ctx *ctx = p->ctx;
	char err[MM_ERR_MAX];
	int wrote = p->recorded || p->unknown;

	mm_fail_diag(ctx, rc, diag);
	if (!wrote && !p->prepared)
		mm_state_prepare_drop(ctx->state, p->domain, "prepare-failed", NULL, NULL, err);
	else if (!wrote && strcmp(p->prep.phase, "lowered") == 0)
		mm_state_prepare_done(ctx->state, p->domain, p->prep.ttl, p->prep.ttl_before,
		                      p->prep.ready_at_ms, p->prep.record, NULL, err);
	if (!wrote)
		return mm_fail(ctx, rc, "%s: %s; nothing was changed", p->domain, diag->summary);
	return mm_fail(ctx, rc == MM_OK ? MM_ERR : rc,
	               "%s: %s; the MX TTL change may have landed: run 'mailmode prepare %s%s' again to finish it",
	               p->domain, diag->summary, undo ? "--undo " : "", p->domain);
}

static void report_ready(struct prep *p, long long ttl, long long before, int changed,
                         long long ready_at, const char *zone)
{
	struct mm_ctx *ctx = p->ctx;
	long long left = ready_at - mm_host_wall_ms(NULL);
	char when[64], wait[32];

	mm_prepare_format_time(ready_at, when, sizeof(when));
	mm_prepare_format_wait(left, wait, sizeof(wait));
	cJSON_AddStringToObject(p->item, "mode", p->plugin->desc->name);
	cJSON_AddStringToObject(p->item, "zone", zone ? zone : "");
	cJSON_AddNumberToObject(p->item, "ttl", (double)ttl);
	cJSON_AddNumberToObject(p->item, "ttl_before", (double)before);
	cJSON_AddBoolToObject(p->item, "changed", changed);
	cJSON_AddNumberToObject(p->item, "ready_at_ms", (double)ready_at);
	cJSON_AddStringToObject(p->item, "ready_at", when);
	cJSON_AddBoolToObject(p->item, "ready", left <= 0);
	if (ctx->output.json)
		return;
	printf("%s: MX TTL of %s mode's records (zone %s) %s %lld s (before: %lld s)\n", p->domain,
	       p->plugin->desc->name, zone ? zone : "?", changed ? "lowered to" : "already at most",
	       ttl, before);
	if (left > 0)
		printf("%s: ready for the switch at %s (in %s): until then caches may hold the MX records with TTL %lld s\n",
		       p->domain, when, wait, before);
	else
		printf("%s: ready for the switch now\n", p->domain);
}

/* When no cache holds the records with the TTL before any more.  Lowered
 * again: no earlier than the last prepare said, nor than the TTL that
 * one set allows. */
static long long ready_time(const struct prep *p, long long before, int changed)
{
	long long now = mm_host_wall_ms(NULL), ready = now + before * 1000;

	if (p->prepared && strcmp(p->prep.phase, "lowered") == 0) {
		ready = p->prep.ready_at_ms;
		if (changed && now + p->prep.ttl * 1000 > ready)
			ready = now + p->prep.ttl * 1000;
	}
	return ready;
}

static int lower(struct prep *p, long ttl)
{
	struct mm_ctx *ctx = p->ctx;
	struct mailmode_diag diag;
	struct mm_op op;
	char *report = NULL;
	cJSON *root = NULL;
	long long before, ready;
	int changed, rc;

	if (p->prepared && strcmp(p->prep.phase, "restoring") == 0)
		return mm_fail(ctx, MM_REFUSED,
		               "%s: an undo of its prepare is unfinished: run 'mailmode prepare --undo %s' first",
		               p->domain, p->domain);
	rc = mm_state_prepare_begin(ctx->state, p->domain, p->plugin->desc->name, p->profile, ttl,
	                            "lowering", ctx->err);
	if (rc != MM_OK)
		return rc;
	op = prep_op(p);
	rc = mm_op_mx_ttl(&op, MAILMODE_TTL_LOWER, (uint32_t)ttl, &report, &diag);
	if (rc != MM_OK) {
		free(report);
		return call_failed(p, rc, &diag, 0);
	}
	root = cJSON_Parse(report);
	before = json_number(root, "ttl_before", 0);
	changed = cJSON_IsTrue(cJSON_GetObjectItem(root, "changed"));
	ready = ready_time(p, before, changed);
	rc = mm_state_prepare_done(ctx->state, p->domain, ttl, before, ready, report,
	                           cJSON_GetStringValue(cJSON_GetObjectItem(root, "receipt")),
	                           ctx->err);
	if (rc == MM_OK)
		report_ready(p, ttl, before, changed, ready,
		             cJSON_GetStringValue(cJSON_GetObjectItem(root, "zone")));
	cJSON_Delete(root);
	free(report);
	return rc;
}

/* Undo: the TTLs before put back, the original a prepare kept released. */
static int undo(struct prep *p)
{
	struct mm_ctx *ctx = p->ctx;
	int in_mode = p->found && p->row.mode && strcmp(p->row.mode, p->plugin->desc->name) == 0;
	const char *release = in_mode ? NULL : p->plugin->desc->name;
	struct mailmode_diag diag;
	struct mm_op op;
	char *report = NULL;
	cJSON *root = NULL;
	int rc;

	rc = mm_state_prepare_begin(ctx->state, p->domain, p->plugin->desc->name, p->profile,
	                            p->prep.ttl, "restoring", ctx->err);
	if (rc != MM_OK)
		return rc;
	/* Killed before its checkpoint: the prepare wrote nothing. */
	if (p->prep.record) {
		op = prep_op(p);
		rc = mm_op_mx_ttl(&op, MAILMODE_TTL_RESTORE, 0, &report, &diag);
		if (rc != MM_OK) {
			free(report);
			return call_failed(p, rc, &diag, 1);
		}
		root = cJSON_Parse(report);
	}
	rc = mm_state_prepare_drop(ctx->state, p->domain, "prepare-undone",
	                           cJSON_GetStringValue(cJSON_GetObjectItem(root, "receipt")), release,
	                           ctx->err);
	cJSON_AddStringToObject(p->item, "mode", p->plugin->desc->name);
	cJSON_AddNumberToObject(p->item, "ttl", (double)json_number(root, "ttl_now", 0));
	if (rc == MM_OK && !ctx->output.json)
		printf("%s: MX TTL of %s mode's records put back to %lld s\n", p->domain,
		       p->plugin->desc->name, json_number(root, "ttl_now", 0));
	cJSON_Delete(root);
	free(report);
	return rc;
}

int mm_prepare_domain(struct mm_ctx *ctx, const char *domain, const char *profile, long ttl,
                      int undoing, cJSON *item)
{
	struct prep p = { .ctx = ctx, .domain = domain, .profile = profile, .item = item };
	char notice[768];
	int rc;

	rc = mm_state_lock_domain(ctx->state, domain, undoing ? "prepare --undo" : "prepare",
	                          PREPARE_LOCK_LEASE_MS, ctx->args.lock_timeout_ms, notice,
	                          sizeof(notice), ctx->err);
	if (rc != MM_OK)
		return rc;
	if (notice[0])
		mm_log(&ctx->output, MAILMODE_LOG_WARNING, "%s", notice);
	rc = load(&p);
	if (rc == MM_OK && undoing && !p.prepared)
		rc = mm_fail(ctx, MM_ERR, "%s: no prepared MX TTL to undo (see 'mailmode status %s')",
		             domain, domain);
	if (rc == MM_OK)
		rc = undoing ? undo(&p) : lower(&p, ttl);
	if (mm_state_unlock_domain(ctx->state, domain, notice) != MM_OK)
		mm_log(&ctx->output, MAILMODE_LOG_WARNING, "%s", notice);
	prep_clear(&p);
	return rc;
}

int mm_cmd_prepare(struct mm_ctx *ctx)
{
	cJSON *list = cJSON_AddArrayToObject(ctx->doc, "domains");
	char first_err[MM_ERR_MAX] = "";
	int i, failed = 0, worst = MM_OK, rc;

	if ((rc = mm_load_plugins(ctx)) != MM_OK || (rc = mm_open_state(ctx, 1)) != MM_OK)
		return rc;
	for (i = 0; i < ctx->args.npositional; i++) {
		char domain[MM_DOMAIN_MAX + 1], profile[320];
		struct mm_domain_row row = { 0 };
		cJSON *item = cJSON_CreateObject();
		int found = 0;

		cJSON_AddItemToArray(list, item);
		rc = mm_domain_arg(ctx, ctx->args.positional[i], domain);
		if (rc == MM_OK)
			rc = mm_state_get_domain(ctx->state, domain, &row, &found, ctx->err);
		if (rc == MM_OK)
			rc = mm_domain_profile(ctx, &row, found, profile, sizeof(profile));
		mm_domain_row_clear(&row);
		cJSON_AddStringToObject(item, "domain", rc == MM_OK ? domain : ctx->args.positional[i]);
		if (rc == MM_OK)
			rc = mm_prepare_domain(ctx, domain, profile, ctx->args.ttl, ctx->args.undo, item);
		if (rc == MM_OK)
			continue;
		cJSON_AddStringToObject(item, "error", ctx->err);
		if (!failed++)
			snprintf(first_err, sizeof(first_err), "%s", ctx->err);
		if (ctx->args.npositional > 1)
			fprintf(stderr, "mailmode: error: %s\n", ctx->err);
		worst = worst == MM_OK || rc == MM_REFUSED ? rc : worst;
	}
	if (!failed)
		return MM_OK;
	if (ctx->args.npositional == 1)
		return mm_fail(ctx, worst, "%s", first_err);
	return mm_fail(ctx, worst, "prepare: %d of %d domain(s) failed", failed, ctx->args.npositional);
}

/* ------------------------------------------------------------------ */
/* status and plans */

void mm_prepare_status(struct mm_ctx *ctx, cJSON *item, const char *domain)
{
	struct mm_prepare_row row;
	char when[64], wait[32];
	long long left;
	cJSON *o;
	int found = 0;

	if (!ctx->state || mm_state_prepare_get(ctx->state, domain, &row, &found, ctx->err) != MM_OK ||
	    !found) {
		ctx->err[0] = '\0';
		return;
	}
	left = row.ready_at_ms - mm_host_wall_ms(NULL);
	mm_prepare_format_time(row.ready_at_ms, when, sizeof(when));
	mm_prepare_format_wait(left, wait, sizeof(wait));
	o = cJSON_AddObjectToObject(item, "prepared");
	cJSON_AddStringToObject(o, "mode", row.mode);
	cJSON_AddStringToObject(o, "phase", row.phase);
	cJSON_AddNumberToObject(o, "ttl", (double)row.ttl);
	cJSON_AddNumberToObject(o, "ttl_before", (double)row.ttl_before);
	if (strcmp(row.phase, "lowered") == 0) {
		cJSON_AddNumberToObject(o, "ready_at_ms", (double)row.ready_at_ms);
		cJSON_AddStringToObject(o, "ready_at", when);
		cJSON_AddBoolToObject(o, "ready", left <= 0);
	}
	if (!ctx->output.json && strcmp(row.phase, "lowered") == 0 && left > 0)
		printf("    PREPARED: %s mode's MX TTL %lld s (before: %lld s): ready at %s (in %s)\n",
		       row.mode, row.ttl, row.ttl_before, when, wait);
	else if (!ctx->output.json && strcmp(row.phase, "lowered") == 0)
		printf("    PREPARED: %s mode's MX TTL %lld s (before: %lld s): ready now\n", row.mode,
		       row.ttl, row.ttl_before);
	else if (!ctx->output.json)
		printf("    UNFINISHED prepare (%s) of %s mode's MX TTL: mailmode prepare %s%s\n",
		       row.phase, row.mode, strcmp(row.phase, "restoring") == 0 ? "--undo " : "", domain);
	mm_prepare_row_clear(&row);
}

/* The live MX TTL of the records of mode p (READ): -1 when it cannot be
 * read (why in diag). */
static long long read_ttl(struct mm_ctx *ctx, struct mm_plugin *p, const char *domain,
                          const char *profile, const char *receipt, struct mailmode_diag *diag)
{
	struct mm_op op = { .plugin = p, .domain = domain, .profile = profile, .receipt = receipt };
	char *report = NULL, *original = NULL, err[MM_ERR_MAX];
	long long ttl = -1;
	cJSON *root;

	if (ctx->state && mm_state_get_original(ctx->state, domain, p->desc->name, &original,
	                                        err) == MM_OK)
		op.original = original;
	if (mm_op_mx_ttl(&op, MAILMODE_TTL_READ, 0, &report, diag) == MM_OK) {
		root = cJSON_Parse(report);
		ttl = json_number(root, "ttl_now", -1);
		cJSON_Delete(root);
	}
	free(report);
	free(original);
	return ttl;
}

/* The prepared records' ready time when they are mode's (0: none). */
static long long ready_of(struct mm_ctx *ctx, const char *domain, const char *mode)
{
	struct mm_prepare_row row;
	long long ready = 0;
	int found = 0;

	if (ctx->state && mm_state_prepare_get(ctx->state, domain, &row, &found, ctx->err) == MM_OK &&
	    found && strcmp(row.mode, mode) == 0 && strcmp(row.phase, "lowered") == 0)
		ready = row.ready_at_ms;
	ctx->err[0] = '\0';
	if (found)
		mm_prepare_row_clear(&row);
	return ready;
}

/* The wait of a switch whose new mode replaces MX records (TTL ttl). */
static void say_wait(char *text, size_t len, const char *domain,
                     const char *to, const char *from, long long ttl, long long wait_ms,
                     long long ready, const struct mm_switch_options *opts)
{
	char wait[32], cut[32], when[64], ahead[32];
	size_t used;

	mm_prepare_format_wait(wait_ms, wait, sizeof(wait));
	if (ready > 0 && wait_ms > ttl * 1000) {
		mm_prepare_format_time(ready, when, sizeof(when));
		snprintf(text, len, "keep %s mode ~%s after %s mode verifies: the MX TTL is %lld s since a prepare, but caches may hold the records with the TTL before until %s",
		         from, wait, to, ttl, when);
	} else {
		snprintf(text, len, "keep %s mode ~%s after %s mode verifies, while caches may hold the replaced MX records (TTL %lld s)",
		         from, wait, to, ttl);
	}
	used = strlen(text);
	if (ready <= 0 && ttl > SUGGEST_ABOVE_S) {
		mm_prepare_format_wait(ttl * 1000, ahead, sizeof(ahead));
		snprintf(text + used, len - used, "; run 'mailmode prepare %s --ttl %ld' at least %s ahead to make it ~%ld s",
		         domain, SUGGESTED_TTL, ahead, SUGGESTED_TTL);
		used = strlen(text);
	}
	if (opts->max_settle_ms > 0 && opts->max_settle_ms < wait_ms) {
		mm_prepare_format_wait(wait_ms - opts->max_settle_ms, cut, sizeof(cut));
		mm_prepare_format_wait(opts->max_settle_ms, wait, sizeof(wait));
		snprintf(text + used, len - used, "; --max-settle cuts it to %s: for up to %s after %s mode is torn down, mail that resolvers still send to the replaced MX records reaches %s mode's path without it and is not scanned",
		         wait, cut, from, from);
	}
}

void mm_show_settle_wait(struct mm_ctx *ctx, cJSON *plan, const char *domain, const char *profile,
                         struct mm_plugin *to, struct mm_plugin *from,
                         const struct mm_domain_row *row, const struct mm_switch_options *opts)
{
	struct mailmode_diag diag;
	char text[1024], wait[32];
	long long ttl, ready, wait_ms;
	cJSON *step;

	if (mm_plugin_has_mx_ttl(to)) {
		ttl = read_ttl(ctx, to, domain, profile, NULL, &diag);
		if (ttl < 0) {
			snprintf(text, sizeof(text), "cache wait unknown: the MX TTL cannot be read: %s",
			         diag.summary);
			mm_add_plan_step(ctx, plan, "wait", from->desc->name, text);
			return;
		}
		ready = ready_of(ctx, domain, to->desc->name);
		wait_ms = ttl * 1000;
		if (ready - mm_host_wall_ms(NULL) > wait_ms)
			wait_ms = ready - mm_host_wall_ms(NULL);
		say_wait(text, sizeof(text), domain, to->desc->name, from->desc->name, ttl, wait_ms,
		         ready, opts);
		step = mm_add_plan_step(ctx, plan, "wait", from->desc->name, text);
		cJSON_AddNumberToObject(step, "mx_ttl", (double)ttl);
		cJSON_AddNumberToObject(step, "wait_ms", (double)(opts->max_settle_ms > 0 &&
		                                                  opts->max_settle_ms < wait_ms
		                                                  ? opts->max_settle_ms : wait_ms));
		return;
	}
	if (!mm_plugin_has_mx_ttl(from) ||
	    (ttl = read_ttl(ctx, from, domain, profile, row->receipt, &diag)) < 0)
		return;
	mm_prepare_format_wait(ttl * 1000, wait, sizeof(wait));
	snprintf(text, sizeof(text), "no cache wait: for up to %s after the switch resolvers may still send mail to %s mode's MX records (TTL %lld s); they still take it and it is scanned as before",
	         wait, from->desc->name, ttl);
	step = mm_add_plan_step(ctx, plan, "wait", to->desc->name, text);
	cJSON_AddNumberToObject(step, "mx_ttl", (double)ttl);
	cJSON_AddNumberToObject(step, "wait_ms", 0);
}
