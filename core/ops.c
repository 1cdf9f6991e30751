#include "ops.h"

#include "host.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stddef.h>

enum op_kind { OP_VALIDATE, OP_OBSERVE, OP_PLAN, OP_SETUP, OP_VERIFY, OP_TEARDOWN, OP_TRACE,
	       OP_PREFLIGHT };

static const char *const op_names[] = {
	"validate_config", "observe", "plan", "setup", "verify", "teardown", "trace", "preflight"
};

struct op_args {
	enum mailmode_presence *presence;
	enum mailmode_plan_op which;
	char **text;
	const char *message_id;   /* trace */
	const char *recipient;    /* trace */
};

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

/* Takes the resources the plugin names for this domain (ABI 1.1); a plugin
 * that names none, or fails to, runs unbounded. */
static void take_resources(const struct mm_op *op, const struct mailmode_request *req,
                           char **resources)
{
	const struct mailmode_plugin *d = op->plugin->desc;
	struct mailmode_diag diag;

	*resources = NULL;
	if (d->abi_minor < 1 || !d->resources)
		return;
	memset(&diag, 0, sizeof(diag));
	if (d->resources(op->plugin->ctx, req, resources, &diag) != MAILMODE_OK || !*resources)
		return;
	if (mm_limiter_acquire(op->limiter, *resources) != 0) {
		free(*resources);
		*resources = NULL;
	}
}

static int call(const struct mm_op *op, enum op_kind kind, const struct op_args *args,
                struct mailmode_diag *diag)
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
	};
	int serialise = !(d->caps & MAILMODE_CAP_THREADSAFE);
	char *resources = NULL;
	int rc;

	memset(diag, 0, sizeof(*diag));
	snprintf(section, sizeof(section), "profile %s", op->profile);
	rc = mm_plugin_start(op->plugin, diag);
	if (rc != MAILMODE_OK)
		goto out;
	if (op->limiter && kind != OP_VALIDATE)
		take_resources(op, &req, &resources);
	if (serialise)
		pthread_mutex_lock(&op->plugin->lock);
	switch (kind) {
	case OP_VALIDATE: rc = d->validate_config(op->plugin->ctx, &req, diag); break;
	case OP_OBSERVE: rc = d->observe(op->plugin->ctx, &req, args->presence, args->text, diag); break;
	case OP_PLAN: rc = d->plan(op->plugin->ctx, &req, args->which, args->text, diag); break;
	case OP_SETUP: rc = d->setup(op->plugin->ctx, &req, args->text, diag); break;
	case OP_VERIFY: rc = d->verify(op->plugin->ctx, &req, args->text, diag); break;
	case OP_TEARDOWN: rc = d->teardown(op->plugin->ctx, &req, diag); break;
	case OP_TRACE:
		rc = d->trace(op->plugin->ctx, &req, args->message_id, args->recipient, args->text,
		              diag);
		break;
	case OP_PREFLIGHT: rc = d->preflight(op->plugin->ctx, &req, args->which, diag); break;
	}
	if (serialise)
		pthread_mutex_unlock(&op->plugin->lock);
	if (resources) {
		mm_limiter_release(op->limiter, resources);
		free(resources);
	}
out:
	if (rc == MAILMODE_ERR_UNKNOWN && op->unknown)
		*op->unknown = 1;
	flatten_summary(diag);
	if (rc != MAILMODE_OK && diag->summary[0] == '\0')
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "%s: %s of %s failed (code %d, no diagnostic)",
		            d->name, op_names[kind], op->domain, rc);
	if (rc != MAILMODE_OK && diag->severity == MAILMODE_SEV_NONE)
		diag->severity = MAILMODE_SEV_ERROR;
	return map_rc(rc);
}

int mm_op_validate(const struct mm_op *op, struct mailmode_diag *diag)
{
	struct op_args args = { 0 };

	return call(op, OP_VALIDATE, &args, diag);
}

int mm_op_observe(const struct mm_op *op, enum mailmode_presence *presence, char **report,
                  struct mailmode_diag *diag)
{
	struct op_args args = { .presence = presence, .text = report };

	*presence = MAILMODE_ABSENT;
	*report = NULL;
	return call(op, OP_OBSERVE, &args, diag);
}

int mm_op_plan(const struct mm_op *op, enum mailmode_plan_op which, char **plan,
               struct mailmode_diag *diag)
{
	struct op_args args = { .which = which, .text = plan };

	*plan = NULL;
	return call(op, OP_PLAN, &args, diag);
}

int mm_op_setup(const struct mm_op *op, char **receipt, struct mailmode_diag *diag)
{
	struct op_args args = { .text = receipt };

	*receipt = NULL;
	return call(op, OP_SETUP, &args, diag);
}

int mm_op_verify(const struct mm_op *op, char **report, struct mailmode_diag *diag)
{
	struct op_args args = { .text = report };

	*report = NULL;
	return call(op, OP_VERIFY, &args, diag);
}

int mm_op_teardown(const struct mm_op *op, struct mailmode_diag *diag)
{
	struct op_args args = { 0 };

	return call(op, OP_TEARDOWN, &args, diag);
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
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "%s: only setup and teardown may call %s",
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

int mm_op_preflight(const struct mm_op *op, enum mailmode_plan_op which,
                    struct mailmode_diag *diag)
{
	struct op_args args = { .which = which };
	char *plan = NULL;
	int rc;

	/* A slot past what the plugin's minor defines is not an operation. */
	if (op->plugin->desc->abi_minor >= 2 && op->plugin->desc->preflight)
		return call(op, OP_PREFLIGHT, &args, diag);
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

int mm_op_trace(const struct mm_op *op, const char *message_id, const char *recipient,
                char **report, struct mailmode_diag *diag)
{
	struct op_args args = { .text = report, .message_id = message_id, .recipient = recipient };

	*report = NULL;
	if (!mm_plugin_has_trace(op->plugin)) {
		memset(diag, 0, sizeof(*diag));
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0,
		            "plugin %s reads no message trace (no ABI 1.1 trace operation)",
		            op->plugin->desc->name);
		return MM_ERR;
	}
	return call(op, OP_TRACE, &args, diag);
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
