#ifndef MM_ISOLATE_H
#define MM_ISOLATE_H

/* Plugin isolation: every plugin call runs in a helper process of the
 * plugin's own, under a deadline, so that a plugin that crashes, exits or
 * hangs costs that call only, never the command or the run.
 *
 * A helper is the mailmode program run again in helper mode (a fork, then
 * an exec of /proc/self/exe): it loads the plugin file with the loader's
 * checks and the configuration file, and runs the host services
 * (configuration, secrets, HTTP, DNS, clock) itself, so what the plugin
 * does runs there.  A fork alone (the plugin mapped already) is not safe:
 * the core has threads (a runbook's workers), and a child forked while
 * another thread holds a lock (the allocator's: seen with ASan) waits for
 * it forever; between fork and exec only async-signal-safe calls are
 * made.  What needs the core (log lines, progress, checkpoints and
 * originals, which go to the state DB's journal, shared notes, kept in
 * the state DB) is sent to the core over
 * the helper's socket while the call runs.  A helper is long-lived: token
 * caches and connections survive from call to call. */
#include <mailmode/plugin.h>

#include <stdint.h>

struct mm_plugin;

/* Default of [mode NAME] call_timeout: long enough for a setup of the
 * mailflow mode that waits, within its retry budgets, for new objects to
 * become visible (it makes a handful of cmdlet calls of up to two minutes
 * each); the long waits (verify, teardown in the visibility window) are
 * polled by the core with short calls. */
#define MM_DEFAULT_CALL_TIMEOUT_MS (30L * 60 * 1000)

/* The operations, as the core calls them and a helper serves them. */
enum mm_call_kind {
	MM_CALL_VALIDATE, MM_CALL_OBSERVE, MM_CALL_PLAN, MM_CALL_SETUP, MM_CALL_VERIFY,
	MM_CALL_TEARDOWN, MM_CALL_TRACE, MM_CALL_PREFLIGHT, MM_CALL_RESOURCES, MM_CALL_DOCTOR,
	MM_CALL_MX_TTL, MM_CALL_PLAN_ACTIONS
};

const char *mm_call_name(enum mm_call_kind kind);
struct mm_call;
/* Whether the call may change the world: its outcome is then unknown when
 * it does not answer. */
int mm_call_writes(const struct mm_call *c);

/* One call: what it takes and what it hands back. */
struct mm_call {
	enum mm_call_kind kind;
	enum mailmode_plan_op which;     /* plan, preflight, plan_actions */
	const char *message_id;          /* trace */
	const char *recipient;           /* trace */
	enum mailmode_ttl_action ttl_action;   /* mx_ttl */
	uint32_t ttl;                    /* mx_ttl */
	enum mailmode_presence presence; /* out: observe */
	char *text;                      /* out, malloc'd: the receipt, report,
	                                    plan, resources, checks or actions */
};

/* Runs the call in this process (the plugin's context ctx). */
int mm_call_invoke(const struct mailmode_plugin *d, void *ctx, const struct mailmode_request *req,
                   struct mm_call *c, struct mailmode_diag *diag);

/* A plugin's helper processes: one for a plugin that is not thread-safe,
 * one per call running at once for a MAILMODE_CAP_THREADSAFE one (a
 * runbook's workers keep their parallelism, and a helper killed at its
 * deadline takes no other call with it), calls on one shared resource (a
 * tenant) in the helpers that serve it, as many as run at once. */
struct mm_helpers;

/* NULL when out of memory. */
struct mm_helpers *mm_helpers_new(int threadsafe);
/* Ends every helper: each is asked to run its fini and exit; one that
 * does not exit soon is killed. */
void mm_helpers_free(struct mm_helpers *h);

/* Runs the call in one of the plugin's helpers (started, with the
 * plugin's init, when none is free), within the plugin's call_timeout;
 * resources (the ones the call holds, or NULL) go to a free helper that
 * serves them, else one of their own, so that the plugin's caches of a
 * tenant are read once per helper.
 * Returns the plugin's result, or, when the helper crashed, exited, hung
 * past the deadline or broke the protocol (it is then killed and the next
 * call starts a fresh one): MAILMODE_ERR_UNKNOWN for a call that may
 * write (mm_call_writes), MAILMODE_ERR_FAILED for the others, with the
 * diagnostic naming the plugin, the call and what happened. */
int mm_isolate_call(struct mm_plugin *p, const struct mailmode_request *req, struct mm_call *c,
                    const char *resources, struct mailmode_diag *diag);

/* The helper's side: `mailmode --plugin-helper FD PLUGIN CONFIG
 * VERBOSITY`, as mm_isolate_call starts it, loads the plugin file as the
 * loader does and serves calls on FD until the core asks it to quit or is
 * gone.  main() hands such a command line here; returns its exit code. */
#define MM_HELPER_ARG "--plugin-helper"
int mm_helper_main(int argc, char **argv);

/* Messages between the core and a helper (wire.h). */
enum mm_helper_msg {
	MM_MSG_READY = 1,   /* helper: init's rc, diag */
	MM_MSG_CALL,        /* core: a call */
	MM_MSG_RESULT,      /* helper: rc, presence, text, HTTP requests, diag */
	MM_MSG_LOG,         /* helper: level, line */
	MM_MSG_PROGRESS,    /* helper: line */
	MM_MSG_RECORD,      /* helper: original?, text: checkpoint or keep_original */
	MM_MSG_RECORDED,    /* core: rc, diag, once the record is durable */
	MM_MSG_QUIT,        /* core: run fini and exit */
	MM_MSG_NOTE,        /* helper: store?, resource, key, text: a shared
	                       note to load or store (ABI 1.6) */
	MM_MSG_NOTED        /* core: rc, text (load), diag, once done */
};

/* A call as the helper receives it: the request and the call, with the
 * strings they point to. */
struct mm_call_msg {
	struct mailmode_request req;
	struct mm_call call;
	char *strings[8];
	char **conflicts;     /* req.accepted_conflicts */
};

/* The most names a list in a call may hold. */
#define MM_CALL_LIST_MAX 1024

struct mm_wire_buf;
struct mm_wire_rd;
void mm_call_encode(struct mm_wire_buf *b, const struct mailmode_request *req,
                    const struct mm_call *c);
/* 0, or -1 when the message does not hold a call. */
int mm_call_decode(struct mm_wire_rd *rd, struct mm_call_msg *m);
void mm_call_msg_clear(struct mm_call_msg *m);

#endif
