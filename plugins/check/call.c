/* One plugin operation in a forked child (see call.h). */
#include "call.h"

#include "config.h"
#include "host.h"
#include "loader.h"
#include "ops.h"

#include <dlfcn.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What the child sends back, in this order. */
enum message_type {
	MSG_STAGE = 1,       /* entering: "load", "init", the operation, "fini" */
	MSG_LOG,             /* one host->log or host->progress line */
	MSG_LOAD_ERROR,      /* the loader refused the plugin */
	MSG_FACTS,           /* struct descriptor_facts */
	MSG_INIT_RESULT,     /* struct wire_result */
	MSG_OP_RESULT,       /* struct wire_result */
	MSG_TEXT,            /* the string the operation handed back */
	MSG_CONDUCT,         /* signal handlers changed */
	MSG_KEY_READ,        /* one host->config_get: "KIND [SECTION] KEY" */
	MSG_DONE             /* fini returned, output flushed */
};

/* Parent and child are the same program: plain structs are fine. */
struct wire_result {
	int32_t rc;
	int32_t presence;
	struct mailmode_diag diag;
};

/* Not a valid presence: tells whether observe set *presence at all. */
#define PRESENCE_UNSET 0x7e57

static const char *const op_names[] = {
	"load", "init", "validate_config", "observe", "plan", "setup", "verify", "teardown",
	"resources", "plan_actions"
};

/* The host table the plugin gets: the core's own services, except that log
 * and progress lines travel to the checker instead of stderr, so that the
 * checker can tell them from stray output, and that every configuration
 * key asked for is reported, to be held against config_keys. */
struct checker_host {
	struct mm_host_ctx core;    /* first: host->handle points at it */
	struct isolate_channel *channel;
	const char *(*config_get)(void *handle, const char *section, const char *key);
	const struct mailmode_config_key *keys;    /* NULL: none declared */
};

/* Whether keys declares key for a section of this one's kind: its first
 * word ("profile", "mode", "dns" of [dns lab]). */
static enum key_read_kind key_kind(const struct mailmode_config_key *keys, const char *section,
                                   const char *key)
{
	size_t kindlen = strcspn(section, " ");
	const struct mailmode_config_key *k;

	if (!keys)
		return KEY_UNCHECKED;
	for (k = keys; k->name; k++)
		if (k->section && strlen(k->section) == kindlen &&
		    strncmp(k->section, section, kindlen) == 0 && strcmp(k->name, key) == 0)
			return KEY_DECLARED;
	return KEY_UNDECLARED;
}

static const char *watch_config_get(void *handle, const char *section, const char *key)
{
	struct checker_host *host = handle;
	char line[1024];
	int n;

	n = snprintf(line, sizeof(line), "%c [%s] %s",
	             section && key ? key_kind(host->keys, section, key) : KEY_UNDECLARED,
	             section ? section : "(null)", key ? key : "(null)");
	if (n > 0)
		isolate_send(host->channel, MSG_KEY_READ, line,
		             (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	return host->config_get(handle, section, key);
}


static void send_line(struct checker_host *host, const char *prefix, const char *fmt, va_list ap)
	MAILMODE_PRINTF(3, 0);
static void send_line(struct checker_host *host, const char *prefix, const char *fmt, va_list ap)
{
	char line[2048];
	int used = snprintf(line, sizeof(line), "%s: ", prefix);

	if (used < 0 || (size_t)used >= sizeof(line))
		return;
	vsnprintf(line + used, sizeof(line) - (size_t)used, fmt, ap);
	isolate_send(host->channel, MSG_LOG, line, strlen(line));
}

static void sink_log(void *handle, enum mailmode_log_level level, const char *fmt, ...)
	MAILMODE_PRINTF(3, 4);
static void sink_log(void *handle, enum mailmode_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	send_line(handle, mm_log_level_name(level), fmt, ap);
	va_end(ap);
}

static void sink_progress(void *handle, const char *fmt, ...) MAILMODE_PRINTF(2, 3);
static void sink_progress(void *handle, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	send_line(handle, "progress", fmt, ap);
	va_end(ap);
}

static void send_stage(struct isolate_channel *channel, const char *stage)
{
	isolate_send(channel, MSG_STAGE, stage, strlen(stage));
}

static void send_result(struct isolate_channel *channel, enum message_type type, int rc,
                        int presence, const struct mailmode_diag *diag)
{
	struct wire_result wire = { .rc = rc, .presence = presence };

	wire.diag = *diag;
	isolate_send(channel, type, &wire, sizeof(wire));
}

/* Signals whose handlers a plugin must leave alone ("Conduct" in plugin.h). */
static const int watched_signals[] = {
	SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGCHLD, SIGALRM, SIGPIPE,
	SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT
};
#define NWATCHED (sizeof(watched_signals) / sizeof(watched_signals[0]))

struct signal_snapshot {
	struct sigaction act[NWATCHED];
};

static void snapshot_signals(struct signal_snapshot *snap)
{
	size_t i;

	for (i = 0; i < NWATCHED; i++)
		sigaction(watched_signals[i], NULL, &snap->act[i]);
}

static void compare_signals(const struct signal_snapshot *before,
                            const struct signal_snapshot *after, char *out, size_t outlen)
{
	size_t i, used = 0;

	out[0] = '\0';
	for (i = 0; i < NWATCHED && used < outlen; i++) {
		const struct sigaction *a = &before->act[i], *b = &after->act[i];
		const char *abbrev;

		/* sa_handler and sa_sigaction share storage: one compare covers both. */
		if (a->sa_handler == b->sa_handler &&
		    (a->sa_flags & SA_SIGINFO) == (b->sa_flags & SA_SIGINFO))
			continue;
		abbrev = sigabbrev_np(watched_signals[i]);
		used += (size_t)snprintf(out + used, outlen - used, "%sSIG%s", used ? ", " : "",
		                         abbrev ? abbrev : "?");
	}
}

/* Copies a descriptor string; the pointer may be anything a broken plugin
 * put there, which is why this runs in the child. */
static void copy_text(char *dst, const char *src, int *present)
{
	*present = src != NULL;
	snprintf(dst, FACT_TEXT_MAX, "%s", src ? src : "");
}

/* Whether the descriptor's struct_size covers a field: fields past it are
 * absent (plugin.h, "Loading"). */
#define COVERS(d, field) \
	((d)->struct_size >= offsetof(struct mailmode_plugin, field) + sizeof((d)->field))

static void add_missing(struct descriptor_facts *facts, const char *op)
{
	size_t used = strlen(facts->missing_ops);

	snprintf(facts->missing_ops + used, sizeof(facts->missing_ops) - used, "%s%s",
	         used ? ", " : "", op);
}

static void read_facts(const struct mailmode_plugin *d, struct descriptor_facts *facts)
{
	size_t i;

	facts->readable = 1;
	facts->abi_major = d->abi_major;
	facts->abi_minor = d->abi_minor;
	facts->struct_size = d->struct_size;
	if (COVERS(d, name)) {
		copy_text(facts->name, d->name, &facts->has_name);
		facts->name_valid = mm_mode_name_valid(d->name);
	}
	if (COVERS(d, description)) {
		copy_text(facts->description, d->description, &facts->has_description);
		facts->description_multiline = d->description && strpbrk(d->description, "\r\n");
	}
	if (COVERS(d, version))
		copy_text(facts->version, d->version, &facts->has_version);
#define REQUIRE_OP(field) \
	if (!COVERS(d, field) || !d->field) \
		add_missing(facts, #field)
	REQUIRE_OP(init);
	REQUIRE_OP(fini);
	REQUIRE_OP(validate_config);
	REQUIRE_OP(observe);
	REQUIRE_OP(plan);
	REQUIRE_OP(setup);
	REQUIRE_OP(verify);
	REQUIRE_OP(teardown);
#undef REQUIRE_OP
	/* An operation a later minor added is a reserved slot to a plugin built
	 * for an earlier one: the host does not call it (plugin.h). */
	if (COVERS(d, resources) && d->resources) {
		if (d->abi_minor >= 1)
			facts->has_resources = 1;
		else
			facts->reserved_used++;
	}
	/* trace (1.1) is optional and has no lifecycle step: the checker runs
	 * no mail to follow. */
	if (COVERS(d, trace) && d->trace && d->abi_minor < 1)
		facts->reserved_used++;
	if (COVERS(d, doctor) && d->doctor && d->abi_minor < 4)
		facts->reserved_used++;
	if (COVERS(d, mx_ttl) && d->mx_ttl) {
		if (d->abi_minor >= 4)
			facts->has_mx_ttl = 1;
		else
			facts->reserved_used++;
	}
	if (COVERS(d, plan_actions) && d->plan_actions) {
		if (d->abi_minor >= 5)
			facts->has_plan_actions = 1;
		else
			facts->reserved_used++;
	}
	if (COVERS(d, config_keys) && d->config_keys && d->abi_minor >= 2)
		facts->has_config_keys = 1;
	if (COVERS(d, reserved))
		for (i = 0; i < sizeof(d->reserved) / sizeof(d->reserved[0]); i++)
			if (d->reserved[i])
				facts->reserved_used++;
}

/* A refused file still has a descriptor worth describing; the loader does
 * not hand it out, so look it up the same way the loader does. */
static void read_refused_facts(const char *path, struct descriptor_facts *facts)
{
	void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	const struct mailmode_plugin *d;

	if (!dl)
		return;
	d = dlsym(dl, MAILMODE_PLUGIN_SYMBOL);
	if (d)
		read_facts(d, facts);
}

static int accept_record(const struct mm_op *op, const char *text, char *err)
{
	(void)op;
	(void)text;
	(void)err;
	return MM_OK;
}

/* Shared notes (ABI 1.6) are taken too, and none is there to read:
 * each check is one call, under no lock of anyone else's. */
static int no_note(const struct mm_op *op, const char *resource, const char *key, char **text,
                   char *err)
{
	(void)op;
	(void)resource;
	(void)key;
	(void)err;
	*text = NULL;
	return MM_OK;
}

static int accept_note(const struct mm_op *op, const char *resource, const char *key,
                       const char *text, char *err)
{
	(void)op;
	(void)resource;
	(void)key;
	(void)text;
	(void)err;
	return MM_OK;
}

static const struct mm_op_recorder accept_records = {
	.checkpoint = accept_record, .keep_original = accept_record,
	.note_load = no_note, .note_store = accept_note
};

static void child_load_only(const struct call_spec *spec, const struct mm_plugin_set *set,
                            struct isolate_channel *channel)
{
	struct descriptor_facts facts;

	memset(&facts, 0, sizeof(facts));
	if (set->count == 1) {
		facts.loaded = 1;
		read_facts(set->plugins[0]->desc, &facts);
	} else {
		snprintf(facts.refusal, sizeof(facts.refusal), "%s",
		         set->nrefused ? set->refused[0].reason : "the loader found no plugin file");
		read_refused_facts(spec->plugin_file, &facts);
	}
	isolate_send(channel, MSG_FACTS, &facts, sizeof(facts));
}

/* Runs the operation itself; returns its code, fills presence and text. */
static int child_operation(const struct call_spec *spec, const struct mailmode_plugin *d,
                           void *ctx, const struct mailmode_request *req, int *presence,
                           char **text, struct mailmode_diag *diag)
{
	enum mailmode_presence seen = (enum mailmode_presence)PRESENCE_UNSET;
	int rc = MAILMODE_ERR_FAILED;

	switch (spec->op) {
	case CALL_LOAD:
	case CALL_INIT:
		break;
	case CALL_VALIDATE: rc = d->validate_config(ctx, req, diag); break;
	case CALL_OBSERVE: rc = d->observe(ctx, req, &seen, text, diag); break;
	case CALL_PLAN: rc = d->plan(ctx, req, spec->plan_op, text, diag); break;
	case CALL_SETUP: rc = d->setup(ctx, req, text, diag); break;
	case CALL_VERIFY: rc = d->verify(ctx, req, text, diag); break;
	case CALL_TEARDOWN: rc = d->teardown(ctx, req, diag); break;
	case CALL_RESOURCES:
		/* As the host does: only for a plugin whose minor has it. */
		if (d->abi_minor >= 1 && d->resources)
			rc = d->resources(ctx, req, text, diag);
		break;
	case CALL_PLAN_ACTIONS:
		if (d->abi_minor >= 5 && d->plan_actions)
			rc = d->plan_actions(ctx, req, spec->plan_op, text, diag);
		break;
	}
	*presence = (int)seen;
	return rc;
}

static void call_child(void *arg, struct isolate_channel *channel)
{
	const struct call_spec *spec = arg;
	const struct mailmode_plugin *d;
	struct mm_output output;
	struct mm_plugin_set set;
	struct checker_host host;
	struct signal_snapshot before, after;
	struct mailmode_diag diag;
	char err[512], mode_section[128], profile_section[512], changed[512];
	char *text = NULL;
	void *ctx = NULL;
	int rc, presence = PRESENCE_UNSET;

	memset(&output, 0, sizeof(output));
	pthread_mutex_init(&output.lock, NULL);
	/* Only the core's own errors may reach stderr; the plugin's lines go
	 * through the channel. */
	output.verbosity = -1;
	send_stage(channel, "load");
	if (mm_plugins_load(&set, spec->plugin_dir, spec->config, &output, err, sizeof(err)) != 0) {
		isolate_send(channel, MSG_LOAD_ERROR, err, strlen(err));
		return;
	}
	if (spec->op == CALL_LOAD) {
		child_load_only(spec, &set, channel);
		goto done;
	}
	if (set.count != 1) {
		snprintf(err, sizeof(err), "%s",
		         set.nrefused ? set.refused[0].reason : "the loader found no plugin file");
		isolate_send(channel, MSG_LOAD_ERROR, err, strlen(err));
		return;
	}
	d = set.plugins[0]->desc;
	memset(&host, 0, sizeof(host));
	mm_host_init(&host.core, spec->config, &output, d->name);
	host.core.table.log = sink_log;
	host.core.table.progress = sink_progress;
	host.config_get = host.core.table.config_get;
	host.core.table.config_get = watch_config_get;
	host.channel = channel;
	/* As the core does: the slot is a reserved one before 1.2. */
	if (d->abi_minor >= 2 && COVERS(d, config_keys) && d->config_keys)
		host.keys = d->config_keys();
	snprintf(mode_section, sizeof(mode_section), "mode %s", d->name);
	snprintf(profile_section, sizeof(profile_section), "profile %s", spec->profile);

	snapshot_signals(&before);
	send_stage(channel, "init");
	memset(&diag, 0, sizeof(diag));
	rc = d->init(&host.core.table, mode_section, &ctx, &diag);
	send_result(channel, MSG_INIT_RESULT, rc, 0, &diag);
	if (rc != MAILMODE_OK)
		goto conduct;
	if (spec->op != CALL_INIT) {
		/* A plugin's checkpoints are taken (checked to be JSON) but kept
		 * nowhere: each check is one call. */
		struct mm_op op = { .plugin = set.plugins[0], .domain = spec->domain,
		                    .recorder = &accept_records };
		struct mailmode_request req = {
			.struct_size = sizeof(req),
			.domain = spec->domain,
			.profile = spec->profile,
			.section = profile_section,
			.receipt = spec->receipt,
			.flags = spec->flags,
			.call = &op,
		};

		send_stage(channel, op_names[spec->op]);
		memset(&diag, 0, sizeof(diag));
		rc = child_operation(spec, d, ctx, &req, &presence, &text, &diag);
		send_result(channel, MSG_OP_RESULT, rc, presence, &diag);
		if (text) {
			isolate_send(channel, MSG_TEXT, text, strlen(text));
			host.core.table.free(text);
		}
	}
	send_stage(channel, "fini");
	d->fini(ctx);
conduct:
	snapshot_signals(&after);
	compare_signals(&before, &after, changed, sizeof(changed));
	if (changed[0])
		isolate_send(channel, MSG_CONDUCT, changed, strlen(changed));
done:
	/* Output the plugin buffered counts too: flush before saying done. */
	fflush(stdout);
	fflush(stderr);
	isolate_send(channel, MSG_DONE, NULL, 0);
}

static void append_log_to(char **text, const char *line, size_t len)
{
	size_t have = *text ? strlen(*text) : 0;
	char *grown = realloc(*text, have + len + 2);

	if (!grown)
		return;
	memcpy(grown + have, line, len);
	grown[have + len] = '\n';
	grown[have + len + 1] = '\0';
	*text = grown;
}

/* Each key once, in the order first asked for. */
static void add_key_read(struct call_result *result, const char *line, size_t len)
{
	const char *p = result->key_reads;

	while (p && *p) {
		size_t linelen = strcspn(p, "\n");

		if (linelen == len && memcmp(p, line, len) == 0)
			return;
		p += linelen + (p[linelen] == '\n');
	}
	append_log_to(&result->key_reads, line, len);
}

static void copy_bytes(char *dst, size_t dstlen, const char *src, size_t len)
{
	snprintf(dst, dstlen, "%.*s", (int)(len < dstlen ? len : dstlen - 1), src);
}

static void decode(struct call_result *result)
{
	struct wire_result wire;
	const char *data;
	uint32_t type;
	size_t pos = 0, len;

	while (isolate_next(&result->outcome, &pos, &type, &data, &len)) {
		switch (type) {
		case MSG_STAGE:
			copy_bytes(result->stage, sizeof(result->stage), data, len);
			break;
		case MSG_LOG:
			append_log_to(&result->log, data, len);
			break;
		case MSG_KEY_READ:
			add_key_read(result, data, len);
			break;
		case MSG_LOAD_ERROR:
			copy_bytes(result->load_error, sizeof(result->load_error), data, len);
			break;
		case MSG_FACTS:
			if (len == sizeof(result->facts)) {
				memcpy(&result->facts, data, len);
				result->has_facts = 1;
			}
			break;
		case MSG_INIT_RESULT:
		case MSG_OP_RESULT:
			if (len != sizeof(wire))
				break;
			memcpy(&wire, data, len);
			if (type == MSG_INIT_RESULT) {
				result->init_returned = 1;
				result->init_rc = wire.rc;
				result->init_diag = wire.diag;
			} else {
				result->op_returned = 1;
				result->rc = wire.rc;
				result->presence = wire.presence;
				result->diag = wire.diag;
			}
			break;
		case MSG_TEXT:
			free(result->text);
			result->text = strndup(data, len);
			break;
		case MSG_CONDUCT:
			copy_bytes(result->conduct, sizeof(result->conduct), data, len);
			break;
		case MSG_DONE:
			result->finished = 1;
			break;
		}
	}
}

void call_run(const struct call_spec *spec, struct call_result *result)
{
	memset(result, 0, sizeof(*result));
	if (isolate_run(call_child, (void *)spec, spec->timeout_ms, &result->outcome) != 0)
		return;
	result->ran = 1;
	decode(result);
}

void call_result_free(struct call_result *result)
{
	isolate_outcome_free(&result->outcome);
	free(result->text);
	free(result->log);
	free(result->key_reads);
	result->text = NULL;
	result->log = NULL;
	result->key_reads = NULL;
}

const char *call_op_name(enum call_op op)
{
	return op_names[op];
}

const char *call_rc_name(int rc)
{
	switch (rc) {
	case MAILMODE_OK: return "MAILMODE_OK";
	case MAILMODE_ERR_FAILED: return "MAILMODE_ERR_FAILED";
	case MAILMODE_ERR_CONFIG: return "MAILMODE_ERR_CONFIG";
	case MAILMODE_ERR_NOT_READY: return "MAILMODE_ERR_NOT_READY";
	case MAILMODE_ERR_CONFLICT: return "MAILMODE_ERR_CONFLICT";
	case MAILMODE_ERR_DENIED: return "MAILMODE_ERR_DENIED";
	case MAILMODE_ERR_UNKNOWN: return "MAILMODE_ERR_UNKNOWN";
	case MAILMODE_ERR_NOMEM: return "MAILMODE_ERR_NOMEM";
	}
	return NULL;
}

const char *call_presence_name(int presence)
{
	switch (presence) {
	case MAILMODE_ABSENT: return "absent";
	case MAILMODE_PRESENT: return "present";
	case MAILMODE_PARTIAL: return "partial";
	case PRESENCE_UNSET: return "not set";
	}
	return "invalid";
}

/* The first line of captured output, for the one-line reason. */
static void first_line(const struct isolate_capture *cap, char *out, size_t outlen)
{
	size_t len = strcspn(cap->head, "\r\n");

	snprintf(out, outlen, "%.*s", (int)(len < 120 ? len : 120), cap->head);
}

static void judge_output(const struct call_result *result, const char *what,
                         struct verdict *verdict)
{
	char line[128];

	if (result->outcome.out.bytes) {
		first_line(&result->outcome.out, line, sizeof(line));
		verdict_fail(verdict, "%s: the plugin wrote %zu byte(s) to stdout: \"%s\"", what,
		             result->outcome.out.bytes, line);
	}
	if (result->outcome.err.bytes) {
		first_line(&result->outcome.err, line, sizeof(line));
		verdict_fail(verdict, "%s: the plugin wrote %zu byte(s) to stderr: \"%s\"", what,
		             result->outcome.err.bytes, line);
	}
}

/* How the child ended when it did not finish normally. */
static void judge_end(const struct call_result *result, const char *what,
                      struct verdict *verdict)
{
	const struct isolate_outcome *o = &result->outcome;
	const char *stage = result->stage[0] ? result->stage : "start-up";

	if (o->timed_out)
		verdict_fail(verdict, "%s: hung in %s: no answer within %.1f s, killed", what, stage,
		             (double)o->elapsed_ms / 1000);
	else if (o->signaled)
		verdict_fail(verdict, "%s: crashed in %s: signal %d (%s)", what, stage, o->signal,
		             strsignal(o->signal));
	else if (o->exited && !result->finished)
		/* exit() from the plugin, or a sanitizer ending the process. */
		verdict_fail(verdict, "%s: the process exited (status %d) in %s without returning",
		             what, o->exit_status, stage);
	else if (!result->finished)
		verdict_fail(verdict, "%s: the child ended in %s without reporting", what, stage);
}

static void judge_diag(const struct mailmode_diag *diag, int rc, const char *what,
                       struct verdict *verdict)
{
	size_t summary_len = strnlen(diag->summary, sizeof(diag->summary));
	size_t detail_len = strnlen(diag->detail, sizeof(diag->detail));
	int severity = (int)diag->severity;

	if (severity < MAILMODE_SEV_NONE || severity > MAILMODE_SEV_ERROR)
		verdict_fail(verdict, "%s: diagnostic severity %d is not a mailmode_severity", what,
		             severity);
	if (summary_len == sizeof(diag->summary))
		verdict_fail(verdict, "%s: diagnostic summary is not NUL-terminated", what);
	if (detail_len == sizeof(diag->detail))
		verdict_fail(verdict, "%s: diagnostic detail is not NUL-terminated", what);
	if (rc != MAILMODE_OK && severity == MAILMODE_SEV_NONE)
		verdict_fail(verdict, "%s: failed (%s) with the diagnostic's severity unset", what,
		             call_rc_name(rc) ? call_rc_name(rc) : "?");
	if (rc != MAILMODE_OK && summary_len == 0)
		verdict_fail(verdict, "%s: failed (%s) with no diagnostic summary", what,
		             call_rc_name(rc) ? call_rc_name(rc) : "?");
	if (rc == MAILMODE_OK && severity != MAILMODE_SEV_NONE && summary_len == 0)
		verdict_fail(verdict, "%s: diagnostic has a severity but no summary", what);
	if (summary_len < sizeof(diag->summary) && strpbrk(diag->summary, "\r\n"))
		verdict_fail(verdict, "%s: diagnostic summary is more than one line", what);
}

static void judge_rc(int rc, const char *what, struct verdict *verdict)
{
	if (!call_rc_name(rc))
		verdict_fail(verdict, "%s: returned %d, which is not a mailmode_rc", what, rc);
}

void call_judge(const struct call_result *result, const char *what, struct verdict *verdict)
{
	char init_what[160];

	if (!result->ran) {
		verdict_fail(verdict, "%s: the checker could not run the call: %s", what,
		             result->outcome.error);
		return;
	}
	if (result->outcome.error[0])
		verdict_fail(verdict, "%s: %s", what, result->outcome.error);
	if (result->load_error[0])
		verdict_fail(verdict, "%s: the plugin did not load: %s", what, result->load_error);
	judge_end(result, what, verdict);
	judge_output(result, what, verdict);
	if (result->conduct[0])
		verdict_fail(verdict, "%s: the plugin changed signal handlers: %s", what,
		             result->conduct);
	snprintf(init_what, sizeof(init_what), "%s: init", what);
	if (result->init_returned) {
		judge_rc(result->init_rc, init_what, verdict);
		judge_diag(&result->init_diag, result->init_rc, init_what, verdict);
		if (result->init_rc != MAILMODE_OK)
			verdict_fail(verdict, "%s: init failed (%s): %.*s", what,
			             call_rc_name(result->init_rc) ? call_rc_name(result->init_rc) : "?",
			             (int)strnlen(result->init_diag.summary,
			                          sizeof(result->init_diag.summary) - 1),
			             result->init_diag.summary);
	}
	if (result->op_returned) {
		judge_rc(result->rc, what, verdict);
		judge_diag(&result->diag, result->rc, what, verdict);
	}
}

void call_explain(const struct call_result *result, int verbose, struct verdict *verdict)
{
	const struct mailmode_diag *diag = &result->diag;
	int severity = (int)diag->severity;
	static const char *const severities[] = { "none", "info", "warning", "error" };

	if (result->op_returned && (diag->summary[0] || severity != MAILMODE_SEV_NONE)) {
		verdict_note(verdict, "diagnostic (%s%s): %.*s",
		             severity >= 0 && severity <= 3 ? severities[severity] : "invalid",
		             diag->retryable ? ", retryable" : "",
		             (int)strnlen(diag->summary, sizeof(diag->summary) - 1), diag->summary);
		if (verbose || verdict->failed)
			verdict_block(verdict, "  ",
			              strnlen(diag->detail, sizeof(diag->detail)) < sizeof(diag->detail) ?
			              diag->detail : "(not NUL-terminated)");
	}
	if (!verbose && !verdict->failed)
		return;
	if (result->outcome.err.head_len)
		verdict_block(verdict, "stderr: ", result->outcome.err.head);
	if (result->outcome.out.head_len)
		verdict_block(verdict, "stdout: ", result->outcome.out.head);
	if (result->log)
		verdict_block(verdict, "log: ", result->log);
}
