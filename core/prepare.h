#ifndef MM_PREPARE_H
#define MM_PREPARE_H

/* The MX TTL plan of a change window (`mailmode prepare`, the plugins'
 * ABI 1.4 mx_ttl).  The cache wait of a switch is the TTL of the MX
 * records its new mode replaces: a TTL of a day keeps the old mode a day.
 * prepare lowers the TTL ahead of the window, in the records of the mode
 * that manages them (whether or not the domain is in it), and records
 * what it was (state.h: prepares); the window is ready once the TTL before
 * has run out in every cache.  The switch that replaces or restores the
 * records consumes the row: what it leaves behind carries the normal TTL
 * (the new mode's own, or the original kept with the TTLs before). */
#include "migrate.h"
#include "ops.h"

#include <stdint.h>

struct mm_run;

/* The longest TTL prepare --ttl takes: a lowered TTL is short. */
#define MM_PREPARE_TTL_MAX 86400L

/* MM_REFUSED (err says the way out) while a prepare or its undo of the
 * domain is unfinished: a switch must not replace records whose TTL
 * change may still land. */
int mm_prepare_refuse_unfinished(struct mm_state *st, const char *domain, char *err);

/* Until when a switch keeps its old mode after the new one verified: the
 * new mode's settle time, no earlier than the prepared records' ready
 * time, cut to --max-settle (with a warning that says what that risks). */
long long mm_prepare_settle_until(struct mm_run *r);

/* The record of a finished prepare of mode's records for the domain
 * (handed to its setup as req->prepared), or *record = NULL. */
int mm_prepare_record(struct mm_state *st, const char *domain, const char *mode, char **record,
                      char *err);

/* After a migration of m ended with outcome: the prepare of the records it
 * replaced or restored is consumed. */
void mm_prepare_after_migration(struct mm_engine *e, const struct mm_migration *m,
                                const char *outcome);

/* "24 h", "5 min", "40 s": a wait for a person. */
void mm_prepare_format_wait(long long ms, char *buf, size_t len);
/* "2026-12-03 05:55 UTC". */
void mm_prepare_format_time(long long epoch_ms, char *buf, size_t len);

#endif
