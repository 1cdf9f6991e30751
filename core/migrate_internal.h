#ifndef MM_MIGRATE_INTERNAL_H
#define MM_MIGRATE_INTERNAL_H

/* Shared by the engine's two files; not for the rest of the core. */
#include "migrate.h"
#include "ops.h"

/* Journal steps, in the order a migration runs them. */
enum mm_step {
	MM_STEP_SETUP_NEW,
	MM_STEP_VERIFY_NEW,
	MM_STEP_FINISH_NEW,
	MM_STEP_TEARDOWN_OLD,
	MM_STEP_CONFIRM_OLD_GONE,
	MM_STEP_ROLLBACK_TEARDOWN_NEW,
	MM_STEP_ROLLBACK_CONFIRM_NEW_GONE,
	MM_STEP_ADOPT_CONFIRM
};

/* One migration being run by this process. */
struct mm_run {
	struct mm_engine *e;
	struct mm_migration *m;
	enum mm_kind kind;
	struct mm_plugin *new_plugin;    /* NULL for a teardown */
	struct mm_plugin *old_plugin;    /* NULL when the domain had no mode */
	struct mm_switch_options opts;   /* parsed from m->options */
	struct cJSON *options_doc;       /* holds opts.accept_conflicts */
	struct mm_switch_report *report;
	struct mm_op_recorder rec_new, rec_old;
	char *original_new, *original_old;   /* kept snapshots (state DB) */
	char *prepared_new;              /* a prepare of the new mode's records
	                                    (prepare.h), or NULL */
	char *pending_receipt, *pending_original;   /* recorded during a call */
	int call_recorded;               /* the call in progress checkpointed */
	int call_unknown;                /* ... or lost an answer */
	int step_changed;                /* the step may have changed the world */
	int resumed;
	long long started_ms;
	long long settle_until_ms;       /* from the new mode's verify report */
	int finish_wanted;               /* ... and its finish_after_settle */
	char *err;
};

long long mm_migrate_now_ms(void);
int mm_migrate_kind_parse(const char *name, enum mm_kind *kind);
char *mm_migrate_format_options(const struct mm_switch_options *opts);

/* Fills r for m (the caller keeps m) and finds its plugins. */
int mm_run_init(struct mm_run *r, struct mm_engine *e, struct mm_migration *m,
                struct mm_switch_report *report, int force, char *err);
void mm_run_clear(struct mm_run *r);
/* A call for the new (old == 0) or the old mode; recording: the plugin may
 * checkpoint (setup, teardown). */
struct mm_op mm_run_op(struct mm_run *r, int old, unsigned flags, int recording);
int mm_run_forward(struct mm_run *r);
int mm_run_rollback(struct mm_run *r, int rc_after);
int mm_run_rolling_back(struct mm_run *r, int *back);

#endif
