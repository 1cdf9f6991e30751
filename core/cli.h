#ifndef MM_CLI_H
#define MM_CLI_H

#include "config.h"
#include "host.h"
#include "loader.h"
#include "migrate.h"
#include "mm.h"
#include "state.h"

#include <cjson/cJSON.h>

#define MM_MAX_ARGS 256

/* The parsed command line. */
struct mm_args {
	const char *config_path;
	const char *state_path;
	const char *plugin_dir;
	const char *command;
	const char *mode;
	const char *to;
	const char *dir;
	const char *profile;
	const char *keys;          /* plugins --keys MODE */
	const char *positional[MM_MAX_ARGS];
	int npositional;
	int json;
	int verbosity;
	int dry_run;
	int force;
	const char *accept_conflicts[MM_ACCEPT_MAX + 1];   /* NULL-terminated */
	int naccept_conflicts;
	int no_wait;
	int help;
	int version;
	long lock_timeout_ms;
	long verify_timeout_ms;   /* -1: default */
	long poll_interval_ms;    /* -1: default */
	int parallel;             /* 0: the runbook's */
	const char *only[MM_MAX_ARGS];   /* runbook --only DOMAIN[,DOMAIN...], repeatable */
	int nonly;
	int skip_failed;          /* runbook: skip the previous run's failures */
	const char *html, *csv, *markdown;   /* runbook report: output files */
	int all;                  /* adopt --all */
	const char *quick_test;   /* --quick-test ADDRESS (checked), or NULL */
	long quick_test_timeout_ms;   /* -1: [quicktest] timeout, else default */
	long ttl;                 /* prepare --ttl, seconds; -1: not given */
	int undo;                 /* prepare --undo */
	long max_settle_ms;       /* --max-settle; -1: not given */
};

/* Everything a command works with.  Commands report through ctx: they add
 * their result to ctx->doc (printed as one JSON document with --json) and
 * print human text only when !ctx->output.json. */
struct mm_ctx {
	struct mm_args args;
	struct mm_output output;
	struct mm_config *config;
	char *plugin_dir;
	char *state_path;
	struct mm_plugin_set plugins;
	int plugins_loaded;
	struct mm_state *state;
	cJSON *doc;
	char err[MM_ERR_MAX];
	char err_detail[MAILMODE_DIAG_DETAIL_MAX];
};

/* Parses argv; returns MM_OK or MM_USAGE with ctx->err filled. */
int mm_cli_parse(struct mm_args *args, int argc, char **argv, char *err);
/* The whole usage, or one command's (command NULL: the whole). */
void mm_cli_usage(FILE *f, const char *command);
int mm_cli_is_command(const char *name);

/* The migration engine for this command, and the options its flags give. */
void mm_engine_for(struct mm_ctx *ctx, struct mm_engine *e);
void mm_switch_options_for(const struct mm_ctx *ctx, struct mm_switch_options *opts);

/* Records a failure: the one-line message goes to ctx->err; returns rc. */
int mm_fail(struct mm_ctx *ctx, int rc, const char *fmt, ...) MAILMODE_PRINTF(3, 4);
/* Records a plugin's failure with its diagnostic. */
int mm_fail_diag(struct mm_ctx *ctx, int rc, const struct mailmode_diag *diag);

/* Shared steps of the commands. */
int mm_load_plugins(struct mm_ctx *ctx);
int mm_find_plugin(struct mm_ctx *ctx, const char *mode, struct mm_plugin **out);
/* Opens the state DB; with create == 0 a missing file leaves ctx->state
 * NULL (an empty state) instead of creating it. */
int mm_open_state(struct mm_ctx *ctx, int create);
int mm_domain_arg(struct mm_ctx *ctx, const char *arg, char *domain);
/* The domains a command is about: each DOMAIN argument (row: its state
 * row, or NULL when the state has none) or, with none, every domain in the
 * state.  Stops at the first fn that does not return MM_OK. */
int mm_each_domain(struct mm_ctx *ctx,
                   int (*fn)(const char *domain, const struct mm_domain_row *row, void *arg),
                   void *arg);
/* MM_REFUSED, with the way out, when the domain has an unfinished
 * migration: only resume and abort may touch it then. */
int mm_refuse_open_migration(struct mm_ctx *ctx, const char *domain);
/* A JSON value from plugin text: parsed JSON, or the text as a string. */
cJSON *mm_json_from_text(const char *text);

struct mm_op;
/* Prints the plugin's plan for one operation and adds it to the JSON plan
 * array as {"step", "mode", "actions": [...]}: the plugin's actions
 * (plugin.h plan_actions; {"text": line} for a plugin with plan() only),
 * then its warnings ({"change": "warning", "text"}). */
int mm_show_plan(struct mm_ctx *ctx, cJSON *plan, const struct mm_op *op,
                 enum mailmode_plan_op which);

/* Ends a plan: one line per domain (its changes counted by change and
 * object, the objects a scope shares, a tenant's, counted once, in the
 * line of the first domain listing them; MX; the cache wait; warnings;
 * the error of a plan that failed), printed and added to the document as
 * "summary": {"domains": [{"domain", "changes": [{"change", "object",
 * "count"}], "shared": [scopes], "mx", "wait_ms", "warnings", "error",
 * "text"}], "shared": [{"scope", "domains", "changes", "first"}]}.
 * entries: an array of {"domain", "plan": [steps], "error", "action"}. */
void mm_plan_summary(struct mm_ctx *ctx, const cJSON *entries);
/* The summary of one domain's plan (the array of its steps). */
void mm_plan_summary_one(struct mm_ctx *ctx, const char *domain, cJSON *plan);

struct mm_switch_options;
/* Prints the plan of a switch (setup, verify, teardown, confirm) and adds
 * its steps to the JSON array plan. */
int mm_show_switch_plan(struct mm_ctx *ctx, cJSON *plan, const char *domain, const char *profile,
                        struct mm_plugin *to, struct mm_plugin *from,
                        const struct mm_domain_row *row, const struct mm_switch_options *opts);

int mm_cmd_plugins(struct mm_ctx *ctx);
int mm_cmd_status(struct mm_ctx *ctx);
int mm_cmd_setup(struct mm_ctx *ctx);
int mm_cmd_verify(struct mm_ctx *ctx);
int mm_cmd_teardown(struct mm_ctx *ctx);
int mm_cmd_adopt(struct mm_ctx *ctx);
int mm_cmd_log(struct mm_ctx *ctx);
int mm_cmd_switch(struct mm_ctx *ctx);
int mm_cmd_resume(struct mm_ctx *ctx);
int mm_cmd_abort(struct mm_ctx *ctx);
int mm_cmd_sandbox(struct mm_ctx *ctx);
int mm_cmd_runbook(struct mm_ctx *ctx);
int mm_cmd_config(struct mm_ctx *ctx);
int mm_cmd_doctor(struct mm_ctx *ctx);
int mm_cmd_tenant(struct mm_ctx *ctx);
int mm_cmd_prepare(struct mm_ctx *ctx);

/* prepare (or, undo, its undo) of one domain: the MX TTL of the records of
 * the mode that manages them, to ttl seconds; reports into item. */
int mm_prepare_domain(struct mm_ctx *ctx, const char *domain, const char *profile, long ttl,
                      int undo, cJSON *item);
/* The profile of a domain: --profile, else the one its state row names,
 * else the configuration's default. */
int mm_domain_profile(struct mm_ctx *ctx, const struct mm_domain_row *row, int found,
                      char *profile, size_t len);
/* A plain step of a plan that no plugin describes (verify, wait): printed,
 * and added to the JSON array plan with the one action {"text": action};
 * returns the item. */
cJSON *mm_add_plan_step(struct mm_ctx *ctx, cJSON *plan, const char *step, const char *mode,
                        const char *action);
/* What `status` says of a domain's prepared MX TTL. */
void mm_prepare_status(struct mm_ctx *ctx, cJSON *item, const char *domain);
/* Adds the cache wait of a switch to its plan (prepare.h). */
void mm_show_settle_wait(struct mm_ctx *ctx, cJSON *plan, const char *domain, const char *profile,
                         struct mm_plugin *to, struct mm_plugin *from,
                         const struct mm_domain_row *row, const struct mm_switch_options *opts);

#endif
