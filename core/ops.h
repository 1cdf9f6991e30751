#ifndef MM_OPS_H
#define MM_OPS_H

#include "limiter.h"
#include "loader.h"
#include "mm.h"

/* Calls into a mode plugin, the same way for every command and the
 * migration engine: starts the plugin, builds the request, serialises calls
 * of a plugin that is not thread-safe, and maps the plugin's result to an
 * enum mm_rc.  diag always holds a summary on failure. */
struct mm_op;

/* Where a plugin's checkpoints and original snapshots go while it runs
 * setup or teardown (ABI 1.2): the journal of the migration in progress.
 * lock_shared takes, across processes, the shared resources the plugin
 * names (plugin.h: resources) for the whole of the setup or teardown
 * call: a read-modify-write of a tenant's shared rule must not interleave
 * with another process's.  All but unlock_shared return an enum mm_rc and
 * fill err. */
struct mm_op_recorder {
	int (*checkpoint)(const struct mm_op *op, const char *receipt, char *err);
	int (*keep_original)(const struct mm_op *op, const char *snapshot, char *err);
	int (*lock_shared)(const struct mm_op *op, const char *resources, char *err);
	void (*unlock_shared)(const struct mm_op *op, const char *resources);
	/* ABI 1.6 shared notes (plugin.h: shared_note_*), in the state with
	 * the locks lock_shared took; NULL where a call keeps none. */
	int (*note_load)(const struct mm_op *op, const char *resource, const char *key,
	                 char **text, char *err);
	int (*note_store)(const struct mm_op *op, const char *resource, const char *key,
	                  const char *text, char *err);
	void *arg;
};

struct mm_op {
	struct mm_plugin *plugin;
	const char *domain;
	const char *profile;      /* name */
	const char *receipt;
	const char *original;     /* the kept snapshot of what the mode replaced */
	unsigned flags;           /* MAILMODE_REQ_* */
	struct mm_limiter *limiter;   /* NULL: no bound on shared resources */
	const struct mm_limiter_waiter *waiter;   /* told around a wait for
	                                             the limiter; may be NULL */
	const struct mm_op_recorder *recorder;   /* NULL: nothing may be written */
	int *unknown;             /* set to 1 when the plugin says the outcome of
	                             a write is unknown; may be NULL */
	const char *const *accepted_conflicts;   /* NULL-terminated, or NULL */
	const char *prepared;     /* mx_ttl: the JSON of the last LOWER, or NULL */
	long long deferred_since_ms;   /* req->deferred_since_ms */
};

/* The host services checkpoint and keep_original (plugin.h). */
int mm_host_checkpoint(void *handle, const struct mailmode_request *req, const char *receipt,
                       struct mailmode_diag *diag);
int mm_host_keep_original(void *handle, const struct mailmode_request *req,
                          const char *original, struct mailmode_diag *diag);

/* The host services shared_note_load and shared_note_store (plugin.h,
 * ABI 1.6). */
int mm_host_shared_note_load(void *handle, const struct mailmode_request *req,
                             const char *resource, const char *key, char **text,
                             struct mailmode_diag *diag);
int mm_host_shared_note_store(void *handle, const struct mailmode_request *req,
                              const char *resource, const char *key, const char *text,
                              struct mailmode_diag *diag);

/* The operation a plugin's request belongs to (ABI 1.2 req->call), or NULL. */
const struct mm_op *mm_op_of_request(const struct mailmode_request *req);

int mm_op_validate(const struct mm_op *op, struct mailmode_diag *diag);
int mm_op_observe(const struct mm_op *op, enum mailmode_presence *presence, char **report,
                  struct mailmode_diag *diag);
int mm_op_plan(const struct mm_op *op, enum mailmode_plan_op which, char **plan,
               struct mailmode_diag *diag);
int mm_op_setup(const struct mm_op *op, char **receipt, struct mailmode_diag *diag);
int mm_op_verify(const struct mm_op *op, char **report, struct mailmode_diag *diag);
int mm_op_teardown(const struct mm_op *op, struct mailmode_diag *diag);
/* ABI 1.2 preflight, or plan() for a plugin without it: read-only proof
 * that setup or teardown can run now. */
int mm_op_preflight(const struct mm_op *op, enum mailmode_plan_op which,
                    struct mailmode_diag *diag);

/* Whether the plugin reads message traces (the ABI 1.1 trace operation). */
int mm_plugin_has_trace(const struct mm_plugin *plugin);
/* Where the message went (ABI 1.1 trace): MM_OK delivered, MM_UNVERIFIED
 * not (yet); *report is the plugin's JSON, also when not delivered.  MM_ERR
 * for a plugin without the operation. */
int mm_op_trace(const struct mm_op *op, const char *message_id, const char *recipient,
                char **report, struct mailmode_diag *diag);

/* Whether the plugin has the ABI 1.4 doctor operation. */
int mm_plugin_has_doctor(const struct mm_plugin *plugin);
/* ABI 1.4 doctor: *checks is the plugin's JSON array of checks (MM_OK
 * whenever it handed one back, failed checks included).  MM_ERR for a
 * plugin without the operation. */
int mm_op_doctor(const struct mm_op *op, char **checks, struct mailmode_diag *diag);

/* Whether the plugin has the ABI 1.4 mx_ttl operation. */
int mm_plugin_has_mx_ttl(const struct mm_plugin *plugin);
/* ABI 1.4 mx_ttl; *report is the plugin's JSON.  MM_ERR for a plugin
 * without the operation.  LOWER and RESTORE need op->recorder. */
int mm_op_mx_ttl(const struct mm_op *op, enum mailmode_ttl_action action, uint32_t ttl,
                 char **report, struct mailmode_diag *diag);

/* Whether the plugin has the ABI 1.5 plan_actions operation. */
int mm_plugin_has_plan_actions(const struct mm_plugin *plugin);
/* The plan as values: ABI 1.5 plan_actions, or plan() for a plugin
 * without it, each line an action {"text": line}.  *actions is a JSON
 * array (the plugin's text, unchecked). */
int mm_op_plan_actions(const struct mm_op *op, enum mailmode_plan_op which, char **actions,
                       struct mailmode_diag *diag);

const char *mm_presence_name(enum mailmode_presence presence);

#endif
