#ifndef MM_STATE_INTERNAL_H
#define MM_STATE_INTERNAL_H

/* Shared by the state store's files; not for the rest of the core. */
#include "state.h"

#include "db.h"

/* The most text of shared resources one connection locks. */
#define MM_SHARED_TEXT_MAX 2048

struct mm_state {
	struct mm_db *db;
	char *path;              /* for messages: no password */
	char actor[320];
	char host[256];
	long journal_writes;     /* for the crash test hook */
	long holder;             /* this connection, in shared_locks */
	/* The shared locks this connection took, one per line: a renewal
	 * that finds one no longer its own fails (state.c). */
	char held[MM_SHARED_TEXT_MAX];
};

void mm_state_now_iso(char *buf, size_t len);
/* Whether this connection took the shared lock on resource (its lease is
 * not checked: mm_state_renew_shared does). */
int mm_state_holds_shared(const struct mm_state *st, const char *resource);
/* Fills err from the database error (naming the writer when busy); MM_ERR. */
int mm_state_db_error(struct mm_state *st, int src, const char *what, char *err);
/* Runs one statement with text parameters (NULL binds NULL). */
int mm_state_run(struct mm_state *st, const char *sql, int nparams, const char *const *params,
                 char *err);
/* A text column as a malloc'd string, or NULL. */
char *mm_state_column_dup(struct mm_db_stmt *stmt, int col);
/* The clock leases are judged by: the database's (db.h: mm_db_now_ms). */
int mm_state_now_ms(struct mm_state *st, long long *ms, char *err);
int mm_state_insert_audit(struct mm_state *st, const char *domain, const char *action,
                          const char *detail, char *err);
int mm_state_begin(struct mm_state *st, char *err);
/* COMMIT when rc is MM_OK, ROLLBACK otherwise; returns the outcome. */
int mm_state_finish(struct mm_state *st, int rc, char *err);

#endif
