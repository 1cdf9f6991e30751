#ifndef MM_MIGRATE_H
#define MM_MIGRATE_H

#include "loader.h"
#include "mm.h"
#include "state.h"

/* The migration engine: moves a domain from its mode (or none) to another,
 * setting up and verifying the new mode before the old one is torn down,
 * rolling back when verification never passes, and journaling every step so
 * that resume can finish what a crash interrupted. */

struct mm_switch_options {
	long verify_timeout_ms;
	long poll_interval_ms;
	int accept_conflicts;
	int force;                /* resume: tear the old mode down despite drift */
};

#define MM_DEFAULT_VERIFY_TIMEOUT_MS (15L * 60 * 1000)
#define MM_DEFAULT_POLL_INTERVAL_MS (10L * 1000)

/* What the engine works with; the caller owns all of it. */
struct mm_engine {
	struct mm_state *state;
	const struct mm_plugin_set *plugins;
	struct mm_output *output;
};

/* How a migration ended, for reports. */
struct mm_switch_report {
	const char *outcome;      /* "switched", "unchanged", "rolled back", "aborted",
	                             "unfinished" */
	const char *step;         /* the step that failed, if any */
	int verify_attempts;
	long long elapsed_ms;
	struct mailmode_diag diag;   /* the last plugin diagnostic on failure */
};

/* A new migration.  The domain must be locked by the caller. */
int mm_migrate_start(struct mm_engine *e, const char *domain, const char *to_mode,
                     const char *profile, const struct mm_switch_options *opts,
                     struct mm_switch_report *report, char *err);
/* Continues an open migration from its last finished step. */
int mm_migrate_resume(struct mm_engine *e, const struct mm_migration *m, int force,
                      struct mm_switch_report *report, char *err);
/* Rolls back an open migration that has not begun tearing down the old
 * mode; MM_REFUSED once it has. */
int mm_migrate_abort(struct mm_engine *e, const struct mm_migration *m,
                     struct mm_switch_report *report, char *err);

#endif
