#ifndef MM_STATE_H
#define MM_STATE_H

#include "mm.h"

#include <stddef.h>

/* The state database (SQLite): which domain is in which mode, migrations
 * and their journal, domain locks and the audit log.  Every function returns
 * an enum mm_rc and, on failure, a one-line reason in err[MM_ERR_MAX]. */
struct mm_state;

#define MM_STATE_SCHEMA_VERSION 1

struct mm_domain_row {
	char *domain;
	char *mode;          /* NULL: no mode */
	char *profile;
	char *receipt;
	int adopted;
	char *updated_at;
};

/* Opens (creating when missing) the database at path.  busy_ms: how long
 * to wait for another writer before giving up with its name. */
int mm_state_open(const char *path, long busy_ms, struct mm_state **out, char *err);
void mm_state_close(struct mm_state *st);

/* *found = 0 when the domain has no row. */
int mm_state_get_domain(struct mm_state *st, const char *domain, struct mm_domain_row *row,
                        int *found, char *err);
void mm_domain_row_clear(struct mm_domain_row *row);
int mm_state_each_domain(struct mm_state *st,
                         int (*fn)(const struct mm_domain_row *row, void *arg), void *arg,
                         char *err);

/* Records that the domain is now in `mode`.  Refused (MM_REFUSED) when the
 * domain has another mode and no migration is open for it.  Writes the
 * audit row in the same transaction. */
int mm_state_set_mode(struct mm_state *st, const char *domain, const char *mode,
                      const char *profile, const char *receipt, int adopted,
                      const char *action, const char *detail, char *err);
/* Records that the domain has no mode any more, with its audit row. */
int mm_state_clear_mode(struct mm_state *st, const char *domain, const char *action,
                        const char *detail, char *err);
int mm_state_audit(struct mm_state *st, const char *domain, const char *action,
                   const char *detail, char *err);

/* Domain locks: one command at a time per domain.  A lock whose owner is
 * gone or whose lease ran out is taken over, with a notice naming the old
 * owner.  Waits up to wait_ms for a live owner. */
int mm_state_lock_domain(struct mm_state *st, const char *domain, const char *command,
                         long lease_ms, long wait_ms, char *notice, size_t noticelen,
                         char *err);
int mm_state_unlock_domain(struct mm_state *st, const char *domain, char *err);

struct mm_audit_row {
	long long id;
	const char *at, *actor, *domain, *action, *detail;
};
int mm_state_each_audit(struct mm_state *st, const char *domain,
                        int (*fn)(const struct mm_audit_row *row, void *arg), void *arg,
                        char *err);

const char *mm_state_actor(const struct mm_state *st);

#endif
