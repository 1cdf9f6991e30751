#include "ops.h"

#include "host.h"
#include "isolate.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stddef.h>

static int map_rc(int plugin_rc)
{
	switch (plugin_rc) {
	case MAILMODE_OK: return MM_OK;
	case MAILMODE_ERR_NOT_READY: return MM_UNVERIFIED;
	case MAILMODE_ERR_CONFLICT: return MM_REFUSED;
	default: return MM_ERR;
	}
}

/* Summaries are shown as one line: a plugin's stray newline must not break
 * the CLI's one-line errors. */
static void flatten_summary(struct mailmode_diag *diag)
{
	char *p;

	diag->summary[sizeof(diag->summary) - 1] = '\0';
	diag->detail[sizeof(diag->detail) - 1] = '\0';
	for (p = diag->summary; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}

/* Runs the call where the plugin runs: in a helper process of its own
 * (isolate.h), or in this one without isolation, starting the plugin once
 * and serialising the calls of one that is not thread-safe. */
static int invoke(const struct mm_op *op, const struct mailmode_request *req, struct mm_call *c,
                  const char *resources, struct mailmode_diag *diag)
{
	struct mm_plugin *p = op->plugin;
	int serialise = !(p->desc->caps & MAILMODE_CAP_THREADSAFE);
	int rc;

	if (p->helpers)
		return mm_isolate_call(p, req, c, resources, diag);
	rc = mm_plugin_start(p, diag);
	if (rc != MAILMODE_OK)
		return rc;
	if (serialise)
		pthread_mutex_lock(&p->lock);
	rc = mm_call_invoke(p->desc, p->ctx, req, c, diag);
	if (serialise)
		pthread_mutex_unlock(&p->lock);
	return rc;
}

/* Leaves the blank lines (nothing but spaces, tabs, CRs) out of text, in
 * place; whether a line is left. */
static int drop_blank_lines(char *text)
{
	char *in = text, *out = text;
	size_t len;

	while (*in) {
		len = strcspn(in, "\n");
		if (strspn(in, " \t\r") < len) {
			if (out != text)
				*out++ = '\n';
			memmove(out, in, len);
			out += len;
		}
		in += len + (in[len] == '\n');
	}
	*out = '\0';
	return out != text;
}

/* The resources the plugin names for this domain (ABI 1.1), blank lines
 * left out; *out NULL when it names none deliberately (no resources
 * operation, NULL or "" handed back).  A failed call and a text of blank
 * lines only are errors (diag): the resources are unknown. */
static int plugin_resources(const struct mm_op *op, const struct mailmode_request *req,
                            char **out, struct mailmode_diag *diag)
{
	const struct mailmode_plugin *d = op->plugin->desc;
	struct mm_call c = { .kind = MM_CALL_RESOURCES };
	int rc;

	*out = NULL;
	memset(diag, 0, sizeof(*diag));
	if (d->abi_minor < 1 || !d->resources)
		return MAILMODE_OK;
	rc = invoke(op, req, &c, NULL, diag);
	if (rc == MAILMODE_OK && c.text && c.text[0] && !drop_blank_lines(c.text)) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "its resources text has only blank lines");
		rc = MAILMODE_ERR_FAILED;
	} else if (rc != MAILMODE_OK && !diag->summary[0]) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "resources failed (code %d, no diagnostic)", rc);
	}
	if (rc == MAILMODE_OK && c.text && c.text[0])
		*out = c.text;
	else
		free(c.text);
	return rc;
}

/* Setup and teardown of a migration change what other domains share. */
static int locks_shared(const struct mm_op *op, const struct mm_call *c)
{
	return op->recorder && op->recorder->lock_shared &&
	       (c->kind == MM_CALL_SETUP || c->kind == MM_CALL_TEARDOWN);
}

/* Runs the call within the bounds of its resources: the limiter's slots
 * (in this process; taken before the call's helper: a worker waiting for
 * a tenant must not hold the only helper of a plugin that is not
 * thread-safe), for a setup or teardown with the writer's place of each
 * (so that its wait for another domain's write holds no slot), then the
 * shared locks (across processes).  Without the limiter's slots the call
 * runs unbounded; without the locks, or when the resources to lock are
 * unknown, it does not run. */
static int bounded(const struct mm_op *op, const struct mailmode_request *req,
                   struct mm_call *c, struct mailmode_diag *diag)
{
	int shared = locks_shared(op, c), limit = op->limiter && c->kind != MM_CALL_VALIDATE;
	char *resources = NULL, err[MM_ERR_MAX];
	struct mailmode_diag why;
	int limited = 0, rc = MAILMODE_OK;

	if (limit || shared)
		rc = plugin_resources(op, req, &resources, &why);
	if (rc != MAILMODE_OK && shared) {
		flatten_summary(&why);
		mm_diag_set(diag, MAILMODE_SEV_ERROR, why.retryable,
		            "%s: %s of %s not started: its shared resources are unknown, so they"
		            " cannot be locked: %s", op->plugin->desc->name, mm_call_name(c->kind),
		            op->domain, why.summary);
		rc = MAILMODE_ERR_FAILED;
		goto out;
	}
	if (resources && limit)
		limited = mm_limiter_acquire(op->limiter, resources, shared, op->waiter) == 0;
	if (resources && shared && op->recorder->lock_shared(op, resources, err) != MM_OK) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 1, "%s: %s of %s not started: %s",
		            op->plugin->desc->name, mm_call_name(c->kind), op->domain, err);
		rc = MAILMODE_ERR_FAILED;
	} else {
		rc = invoke(op, req, c, limited ? resources : NULL, diag);
		if (resources && shared)
			op->recorder->unlock_shared(op, resources);
	}
	if (limited)
		mm_limiter_release(op->limiter, resources, shared);
out:
	free(resources);
	return rc;
}

static int call(const struct mm_op *op, struct mm_call *c, struct mailmode_diag *diag)
{
	const struct mailmode_plugin *d = op->plugin->desc;
	char section[512];
	struct mailmode_request req = {
		.struct_size = sizeof(req),
		.domain = op->domain,
		.profile = op->profile,
		.section = section,
		.receipt = op->receipt,
		.flags = op->flags,
		.call = (void *)op,
		.original = op->original,
		.accepted_conflicts = op->accepted_conflicts,
		.prepared = op->prepared,
		.deferred_since_ms = op->deferred_since_ms,
	};
	int rc;

	memset(diag, 0, sizeof(*diag));
	snprintf(section, sizeof(section), "profile %s", op->profile);
	rc = bounded(op, &req, c, diag);
	if (rc == MAILMODE_ERR_UNKNOWN && op->unknown)
		*op->unknown = 1;
	flatten_summary(diag);
	if (rc != MAILMODE_OK && diag->summary[0] == '\0')
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "%s: %s of %s failed (code %d, no diagnostic)",
		            d->name, mm_call_name(c->kind), op->domain, rc);
	if (rc != MAILMODE_OK && diag->severity == MAILMODE_SEV_NONE)
		diag->severity = MAILMODE_SEV_ERROR;
	return map_rc(rc);
}

/* A call that hands no text back: whatever came is dropped. */
static int call_no_text(const struct mm_op *op, struct mm_call *c, struct mailmode_diag *diag)
{
	int rc = call(op, c, diag);

	free(c->text);
	return rc;
}

int mm_op_validate(const struct mm_op *op, struct mailmode_diag *diag)
{
	struct mm_call c = { .kind = MM_CALL_VALIDATE };

	return call_no_text(op, &c, diag);
}

int mm_op_observe(const struct mm_op *op, enum mailmode_presence *presence, char **report,
                  struct mailmode_diag *diag)
{
	struct mm_call c = { .kind = MM_CALL_OBSERVE, .presence = MAILMODE_ABSENT };
	int rc = call(op, &c, diag);

	*presence = c.presence;
	*report = c.text;
	return rc;
}

int mm_op_plan(const struct mm_op *op, enum mailmode_plan_op which, char **plan,
               struct mailmode_diag *diag)
{
	struct mm_call c = { .kind = MM_CALL_PLAN, .which = which };
	int rc = call(op, &c, diag);

	*plan = c.text;
	return rc;
}

int mm_op_setup(const struct mm_op *op, char **receipt, struct mailmode_diag *diag)
{
	struct mm_call c = { .kind = MM_CALL_SETUP };
	int rc = call(op, &c, diag);

	*receipt = c.text;
	return rc;
}

int mm_op_verify(const struct mm_op *op, char **report, struct mailmode_diag *diag)
{
	struct mm_call c = { .kind = MM_CALL_VERIFY };
	int rc = call(op, &c, diag);

	*report = c.text;
	return rc;
}

int mm_op_teardown(const struct mm_op *op, struct mailmode_diag *diag)
{
	struct mm_call c = { .kind = MM_CALL_TEARDOWN };

	return call_no_text(op, &c, diag);
}

const struct mm_op *mm_op_of_request(const struct mailmode_request *req)
{
	if (!req || req->struct_size < offsetof(struct mailmode_request, call) + sizeof(req->call))
		return NULL;
	return req->call;
}

/* A plugin's record of a write it is about to make: refused outside setup
 * and teardown, and for text that is not JSON (it is handed back to the
 * plugin as its receipt). */
static int record(const struct mailmode_request *req, const char *text, int original,
                  struct mailmode_diag *diag)
{
	const struct mm_op *op = mm_op_of_request(req);
	const char *what = original ? "keep_original" : "checkpoint";
	char err[MM_ERR_MAX];
	cJSON *parsed;
	int rc;

	if (!op || !op->recorder) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "%s: only setup, teardown and mx_ttl may call %s",
		            op ? op->plugin->desc->name : "plugin", what);
		return MAILMODE_ERR_FAILED;
	}
	parsed = text ? cJSON_Parse(text) : NULL;
	if (!parsed) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "%s: %s of %s: the text is not JSON",
		            op->plugin->desc->name, what, op->domain);
		return MAILMODE_ERR_FAILED;
	}
	cJSON_Delete(parsed);
	rc = original ? op->recorder->keep_original(op, text, err)
	              : op->recorder->checkpoint(op, text, err);
	if (rc != MM_OK) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 1, "%s of %s could not be journaled, so nothing was changed: %s",
		            what, op->domain, err);
		return MAILMODE_ERR_FAILED;
	}
	return MAILMODE_OK;
}

int mm_host_checkpoint(void *handle, const struct mailmode_request *req, const char *receipt,
                       struct mailmode_diag *diag)
{
	(void)handle;
	return record(req, receipt, 0, diag);
}

int mm_host_keep_original(void *handle, const struct mailmode_request *req,
                          const char *original, struct mailmode_diag *diag)
{
	(void)handle;
	return record(req, original, 1, diag);
}

/* The most text a shared note holds (plugin.h). */
#define NOTE_MAX (1024 * 1024)

/* A shared note loaded (into *loaded) or, loaded NULL, stored: only by
 * setup and teardown of a migration (their recorder keeps notes), naming
 * a resource and a key, a text not too long. */
static int shared_note(const struct mailmode_request *req, const char *resource,
                       const char *key, char **loaded, const char *text,
                       struct mailmode_diag *diag)
{
	const struct mm_op *op = mm_op_of_request(req);
	const char *name = op ? op->plugin->desc->name : "plugin";
	const char *what = loaded ? "shared_note_load" : "shared_note_store";
	char err[MM_ERR_MAX];
	int rc;

	if (loaded)
		*loaded = NULL;
	if (!op || !op->recorder || !op->recorder->note_load) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "%s: only setup and teardown may call %s",
		            name, what);
		return MAILMODE_ERR_FAILED;
	}
	if (!resource || !resource[0] || !key || !key[0] || (text && strlen(text) > NOTE_MAX)) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0,
		            "%s: %s of %s: no resource, no key, or a note longer than %d bytes", name,
		            what, op->domain, NOTE_MAX);
		return MAILMODE_ERR_FAILED;
	}
	rc = loaded ? op->recorder->note_load(op, resource, key, loaded, err)
	            : op->recorder->note_store(op, resource, key, text, err);
	if (rc == MM_OK)
		return MAILMODE_OK;
	mm_diag_set(diag, MAILMODE_SEV_ERROR, 1, "%s: the note '%s' of %s could not be %s: %s",
	            op->domain, key, resource, loaded ? "read" : "stored", err);
	return MAILMODE_ERR_FAILED;
}

int mm_host_shared_note_load(void *handle, const struct mailmode_request *req,
                             const char *resource, const char *key, char **text,
                             struct mailmode_diag *diag)
{
	(void)handle;
	return shared_note(req, resource, key, text, NULL, diag);
}

int mm_host_shared_note_store(void *handle, const struct mailmode_request *req,
                              const char *resource, const char *key, const char *text,
                              struct mailmode_diag *diag)
{
	(void)handle;
	return shared_note(req, resource, key, NULL, text, diag);
}

int mm_op_preflight(const struct mm_op *op, enum mailmode_plan_op which,
                    struct mailmode_diag *diag)
{
	struct mm_call c = { .kind = MM_CALL_PREFLIGHT, .which = which };
	char *plan = NULL;
	int rc;

	/* A slot past what the plugin's minor defines is not an operation. */
	if (op->plugin->desc->abi_minor >= 2 && op->plugin->desc->preflight)
		return call_no_text(op, &c, diag);
	rc = mm_op_plan(op, which, &plan, diag);
	free(plan);
	return rc;
}

int mm_plugin_has_trace(const struct mm_plugin *plugin)
{
	/* A slot past what the plugin's minor defines is reserved to it, not
	 * an operation (plugin.h, "Versioning"). */
	return plugin->desc->abi_minor >= 1 && plugin->desc->trace != NULL;
}

/* An operation a later minor added: refused, naming what the plugin
 * lacks, when it does not have it. */
static int call_optional(const struct mm_op *op, int has, const char *lacks, struct mm_call *c,
                         char **report, struct mailmode_diag *diag)
{
	int rc;

	*report = NULL;
	if (!has) {
		memset(diag, 0, sizeof(*diag));
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "plugin %s %s", op->plugin->desc->name, lacks);
		return MM_ERR;
	}
	rc = call(op, c, diag);
	*report = c->text;
	return rc;
}

int mm_op_trace(const struct mm_op *op, const char *message_id, const char *recipient,
                char **report, struct mailmode_diag *diag)
{
	struct mm_call c = { .kind = MM_CALL_TRACE, .message_id = message_id,
	                     .recipient = recipient };

	return call_optional(op, mm_plugin_has_trace(op->plugin),
	                     "reads no message trace (no ABI 1.1 trace operation)", &c, report, diag);
}

int mm_plugin_has_mx_ttl(const struct mm_plugin *plugin)
{
	return plugin->desc->abi_minor >= 4 && plugin->desc->mx_ttl != NULL;
}

int mm_op_mx_ttl(const struct mm_op *op, enum mailmode_ttl_action action, uint32_t ttl,
                 char **report, struct mailmode_diag *diag)
{
	struct mm_call c = { .kind = MM_CALL_MX_TTL, .ttl_action = action, .ttl = ttl };

	return call_optional(op, mm_plugin_has_mx_ttl(op->plugin),
	                     "cannot change MX TTLs (no ABI 1.4 mx_ttl operation)", &c, report, diag);
}

int mm_plugin_has_doctor(const struct mm_plugin *plugin)
{
	return plugin->desc->abi_minor >= 4 && plugin->desc->doctor != NULL;
}

int mm_op_doctor(const struct mm_op *op, char **checks, struct mailmode_diag *diag)
{
	struct mm_call c = { .kind = MM_CALL_DOCTOR };

	return call_optional(op, mm_plugin_has_doctor(op->plugin),
	                     "has no ABI 1.4 doctor operation", &c, checks, diag);
}

int mm_plugin_has_plan_actions(const struct mm_plugin *plugin)
{
	return plugin->desc->abi_minor >= 5 && plugin->desc->plan_actions != NULL;
}

/* plan()'s text as actions: each line {"text": line}. */
static char *actions_of_text(const char *text)
{
	cJSON *actions = cJSON_CreateArray(), *item;
	const char *line, *eol;
	char *out = NULL, *copy;
	int ok = actions != NULL;

	for (line = text; ok && line && *line; line = eol ? eol + 1 : NULL) {
		eol = strchr(line, '\n');
		copy = strndup(line, eol ? (size_t)(eol - line) : strlen(line));
		item = cJSON_CreateObject();
		ok = copy && item && cJSON_AddStringToObject(item, "text", copy) &&
		     cJSON_AddItemToArray(actions, item);
		if (!ok)
			cJSON_Delete(item);
		free(copy);
	}
	if (ok)
		out = cJSON_PrintUnformatted(actions);
	cJSON_Delete(actions);
	return out;
}

int mm_op_plan_actions(const struct mm_op *op, enum mailmode_plan_op which, char **actions,
                       struct mailmode_diag *diag)
{
	struct mm_call c = { .kind = MM_CALL_PLAN_ACTIONS, .which = which };
	char *text = NULL;
	int rc;

	*actions = NULL;
	if (mm_plugin_has_plan_actions(op->plugin)) {
		rc = call(op, &c, diag);
		*actions = c.text;
		return rc;
	}
	rc = mm_op_plan(op, which, &text, diag);
	if (rc == MM_OK && !(*actions = actions_of_text(text))) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
		rc = MM_ERR;
	}
	free(text);
	return rc;
}

const char *mm_presence_name(enum mailmode_presence presence)
{
	switch (presence) {
	case MAILMODE_ABSENT: return "absent";
	case MAILMODE_PRESENT: return "present";
	case MAILMODE_PARTIAL: return "partial";
	}
	return "unknown";
}
