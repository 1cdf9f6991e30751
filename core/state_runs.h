#ifndef MM_STATE_RUNS_H
#define MM_STATE_RUNS_H

/* Runbook runs in the state database: one row per run, and one per domain
 * of the run with its status and the reason, for the run's summary and
 * report: "pending" and "running" while the run goes, then "switched",
 * "unchanged", "failed", "not started" or "skipped".  Same conventions as
 * state.h. */
#include "state.h"

#include <stddef.h>

struct mm_run_row {
	long long id;
	const char *runbook, *actor, *options, *started_at, *finished_at;
	long long started_ms, finished_ms;   /* finished_ms 0: did not finish */
};

struct mm_run_domain {
	const char *domain;
	int line;
	const char *from_mode, *to_mode, *profile, *tenant;
	const char *status, *reason, *outcome;
	long long migration_id;              /* 0: none was opened */
	long long started_ms, finished_ms;   /* 0: not started */
	int verify_attempts;
	long api_calls;
};

/* A journal row with its times in ms since the epoch (rows older than
 * schema 3 have only second-resolution times). */
struct mm_journal_row {
	const char *step, *phase, *detail;
	int attempts;
	long long at_ms, last_ms;            /* last_ms: the last attempt, or at_ms */
};

/* Opens a run of the runbook at path with its n domains' first rows (in
 * one transaction: a run killed at once still lists them); *id is its
 * number and *base the newest migration id before it (a migration above
 * it is the run's). */
int mm_runs_open(struct mm_state *st, const char *runbook, const char *options,
                 const struct mm_run_domain *rows, size_t n, long long *id, long long *base,
                 char *err);
int mm_runs_finish(struct mm_state *st, long long id, char *err);
/* Records (or replaces) one domain's row of the run. */
int mm_runs_record(struct mm_state *st, long long id, const struct mm_run_domain *d, char *err);
/* The newest migration of domain above base, or *migration = 0. */
int mm_runs_migration_of(struct mm_state *st, const char *domain, long long base,
                         long long *migration, char *err);
/* The newest run of the runbook before run `before` (0: any), or *id = 0. */
int mm_runs_previous(struct mm_state *st, const char *runbook, long long before, long long *id,
                     char *err);
/* The run's row; *found = 0 when there is none.  Strings are valid during
 * fn only. */
int mm_runs_get(struct mm_state *st, long long id,
                int (*fn)(const struct mm_run_row *row, void *arg), void *arg, int *found,
                char *err);
/* The newest run, or *id = 0. */
int mm_runs_last(struct mm_state *st, long long *id, char *err);
/* The run's domains in runbook order. */
int mm_runs_each_domain(struct mm_state *st, long long id,
                        int (*fn)(const struct mm_run_domain *d, void *arg), void *arg, char *err);
/* A migration's journal in order. */
int mm_runs_each_journal(struct mm_state *st, long long migration,
                         int (*fn)(const struct mm_journal_row *row, void *arg), void *arg,
                         char *err);

#endif
