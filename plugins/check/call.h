#ifndef MMCHECK_CALL_H
#define MMCHECK_CALL_H

#include "isolate.h"
#include "tap.h"

#include <mailmode/plugin.h>
#include <stdint.h>

struct mm_config;

/* What one forked call does.  Every call is a fresh child that loads the
 * plugin through the core loader, runs init, the operation and fini, and
 * reports back: so the plugin cannot keep state in memory between calls
 * (receipts must carry it), and nothing it does can harm the checker. */
enum call_op {
	CALL_LOAD,       /* load only; report what the descriptor says */
	CALL_INIT,       /* init and fini */
	CALL_VALIDATE,
	CALL_OBSERVE,
	CALL_PLAN,
	CALL_SETUP,
	CALL_VERIFY,
	CALL_TEARDOWN,
	CALL_RESOURCES,  /* ABI 1.1, optional */
	CALL_PLAN_ACTIONS   /* ABI 1.5, optional */
};

struct call_spec {
	enum call_op op;
	const char *plugin_dir;      /* a private directory holding only the plugin */
	const char *plugin_file;     /* the plugin's path in it */
	const struct mm_config *config;
	const char *domain;
	const char *profile;         /* the request's profile; section "profile P" */
	const char *receipt;
	unsigned flags;
	enum mailmode_plan_op plan_op;
	long timeout_ms;
};

/* The descriptor as the child read it, within its struct_size. */
#define FACT_TEXT_MAX 256
struct descriptor_facts {
	int loaded;                    /* the core loader accepted the file */
	char refusal[512];             /* the loader's reason otherwise */
	int readable;                  /* the descriptor symbol was found */
	unsigned abi_major, abi_minor;
	uint32_t struct_size;
	int has_name, name_valid;
	char name[FACT_TEXT_MAX];
	int has_description, description_multiline;
	char description[FACT_TEXT_MAX];
	int has_version;
	char version[FACT_TEXT_MAX];
	char missing_ops[256];         /* "setup, verify", empty when none */
	int has_resources;             /* ABI 1.1 resources, for abi_minor >= 1 */
	int reserved_used;             /* non-NULL slots its ABI minor reserves */
	int has_config_keys;           /* ABI 1.2 config_keys, for abi_minor >= 2 */
	int has_mx_ttl;                /* ABI 1.4 mx_ttl, for abi_minor >= 4 */
	int has_plan_actions;          /* ABI 1.5 plan_actions, for abi_minor >= 5 */
};

/* One configuration key the plugin asked host->config_get for. */
enum key_read_kind {
	KEY_DECLARED = 'd',            /* config_keys lists it for that section kind */
	KEY_UNDECLARED = 'u',
	KEY_UNCHECKED = '-'            /* the plugin has no config_keys */
};

struct call_result {
	struct isolate_outcome outcome;
	int ran;                       /* the child was started */
	char stage[32];                /* the last stage the child entered */
	char load_error[512];          /* the plugin did not load in the child */
	int has_facts;
	struct descriptor_facts facts;
	int init_returned, init_rc;
	struct mailmode_diag init_diag;
	int op_returned, rc, presence;
	struct mailmode_diag diag;
	char *text;                    /* receipt, report or plan; NULL if none */
	int finished;                  /* fini returned and the child reported */
	char *log;                     /* the plugin's host->log and progress lines */
	char conduct[512];             /* signal handlers the plugin changed */
	char *key_reads;               /* "KIND [SECTION] KEY" lines, KIND a key_read_kind */
};

/* Runs the call; result is filled in any case (free it). */
void call_run(const struct call_spec *spec, struct call_result *result);
void call_result_free(struct call_result *result);

/* The failures every call can show, whatever it was for: the checker could
 * not run it, the plugin did not load or start, crashed, exited, hung,
 * printed, installed signal handlers, returned an unknown code, or filled
 * the diagnostic badly.  `what` names the call in the reasons. */
void call_judge(const struct call_result *result, const char *what, struct verdict *verdict);
/* Adds the plugin's diagnostic, and its log lines when the check failed or
 * when verbose, as notes. */
void call_explain(const struct call_result *result, int verbose, struct verdict *verdict);

const char *call_op_name(enum call_op op);
const char *call_rc_name(int rc);
const char *call_presence_name(int presence);

#endif
