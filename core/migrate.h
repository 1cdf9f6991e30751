#ifndef MM_MIGRATE_H
#define MM_MIGRATE_H

#include "limiter.h"
#include "loader.h"
#include "mm.h"
#include "state.h"

/* The migration engine: moves a domain from its mode (or none) to another,
 * setting up and verifying the new mode before the old one is torn down,
 * rolling back when verification never passes, and journaling every step so
 * that resume can finish what a crash interrupted. */

/* --accept-conflict NAME: how many, and how long each may be. */
#define MM_ACCEPT_MAX 16
#define MM_ACCEPT_NAME_MAX 256

struct mm_switch_options {
	long verify_timeout_ms;
	long poll_interval_ms;
	/* Names of existing objects the admin accepts as conflicts,
	 * NULL-terminated; borrowed (argv, or the migration's stored options). */
	const char *accept_conflicts[MM_ACCEPT_MAX + 1];
	int force;                /* setup over drift; teardown despite drift */
	int no_wait;              /* setup/teardown/adopt: do not wait for the
	                             change to reach every server or the tenant */
	long max_settle_ms;       /* switch: the longest the old mode stays
	                             after the new one verified, for caches of
	                             the replaced records (0: no cap) */
};

/* What a migration does.  Plain setup, teardown and adopt are journaled
 * like a switch, so resume finishes (or abort undoes) them too. */
enum mm_kind { MM_KIND_SWITCH, MM_KIND_SETUP, MM_KIND_TEARDOWN, MM_KIND_ADOPT };
const char *mm_migrate_kind_name(enum mm_kind kind);

#define MM_DEFAULT_VERIFY_TIMEOUT_MS (15L * 60 * 1000)
#define MM_DEFAULT_POLL_INTERVAL_MS (10L * 1000)

/* What the engine works with; the caller owns all of it.  One engine per
 * thread: each has its own state DB connection. */
struct mm_engine {
	struct mm_state *state;
	const struct mm_plugin_set *plugins;
	struct mm_output *output;
	struct mm_limiter *limiter;   /* NULL: no bound on shared resources */
	int slot;                     /* line on the progress board, -1: none */
	const char *command;          /* named in the domain lock */
	long lock_wait_ms;
	/* Waits until the wall clock reads until_ms (a verify poll's next
	 * attempt, the settle wait).  NULL: sleeps.  A runbook parks the
	 * domain instead: its worker, holding no tenant or zone slot, runs
	 * other domains meanwhile, and the hook may hand the engine another
	 * worker's state connection and board line (state, slot). */
	void (*wait)(struct mm_engine *e, long long until_ms);
	void *wait_arg;
	/* Told around a wait for a tenant's or zone's slot that other domains
	 * hold (limiter.h).  A runbook gives the worker back meanwhile, like
	 * wait, and may hand the engine another state connection.  away NULL:
	 * the wait holds the worker. */
	struct mm_limiter_waiter waiter;
	/* Set by the engine once the new mode verified: a runbook's canary
	 * stage is over when each of its domains verified or ended. */
	int verified;
};

/* How a migration ended, for reports. */
struct mm_switch_report {
	const char *outcome;      /* "switched", "done" (setup, teardown, adopt),
	                             "unchanged", "rolled back", "aborted",
	                             "unfinished"; NULL: refused or failed before
	                             anything changed */
	const char *step;         /* the step that failed, if any */
	int verify_attempts;
	long long elapsed_ms;
	long api_calls;           /* HTTP requests made by the plugins */
	struct mailmode_diag diag;   /* the last plugin diagnostic on failure */
};

/* Runs a setup (mode: the mode to set up; a domain in it already is set
 * up again), teardown (of the domain's mode), or adopt.  Refused
 * (MM_REFUSED) while the domain has an unfinished migration or another
 * mode; checks that the plugins can do it before anything changes
 * (preflight); then locks the domain and migrates. */
int mm_migrate_run(struct mm_engine *e, enum mm_kind kind, const char *domain, const char *mode,
                   const char *profile, const struct mm_switch_options *opts,
                   struct mm_switch_report *report, char *err);
/* Switches a domain: refused (MM_REFUSED) while it has an unfinished
 * migration or, having no mode, another mode is live for it; "unchanged"
 * when it is in to_mode already; otherwise locks it and migrates. */
int mm_migrate_switch(struct mm_engine *e, const char *domain, const char *to_mode,
                      const char *profile, const struct mm_switch_options *opts,
                      struct mm_switch_report *report, char *err);
/* Continues an open migration from its last finished step (locks it). */
int mm_migrate_resume(struct mm_engine *e, const char *domain, int force,
                      struct mm_switch_report *report, char *err);
/* Rolls back an open migration that has not begun tearing down the old
 * mode; MM_REFUSED once it has (locks it). */
int mm_migrate_abort(struct mm_engine *e, const char *domain, struct mm_switch_report *report,
                     char *err);

/* The one-mode invariant against the world: MM_REFUSED when a mode other
 * than `mode`, configured for the profile, is live for the domain. */
int mm_engine_check_other_modes(const struct mm_engine *e, const char *domain,
                                const char *profile, const char *mode, char *err);
/* Shows a progress line for the engine's domain (its board line, if any). */
void mm_engine_progress(const struct mm_engine *e, const char *fmt, ...) MAILMODE_PRINTF(2, 3);

#endif
