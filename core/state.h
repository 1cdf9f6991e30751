#ifndef MM_STATE_H
#define MM_STATE_H

#include "mm.h"

#include <stddef.h>

/* The state database: which domain is in which mode, migrations and
 * their journal, domain locks, locks on shared resources (tenants, zones)
 * and the audit log.  An SQLite file by default, or a PostgreSQL database
 * a team shares from several hosts (path "postgresql://...": db.h); the
 * same rules hold in both, kept by the database.  Every function returns an enum mm_rc and, on
 * failure, a one-line reason in err[MM_ERR_MAX]. */
struct mm_state;

#define MM_STATE_SCHEMA_VERSION 6

struct mm_domain_row {
	char *domain;
	char *mode;          /* NULL: no mode */
	char *profile;
	char *receipt;
	int adopted;
	char *updated_at;
};

/* Opens (creating when missing) the database at path (a file, or a
 * postgresql:// URL without a password).  busy_ms: how long to wait for
 * another writer before giving up with its name. */
int mm_state_open(const char *path, long busy_ms, struct mm_state **out, char *err);
/* MM_OK when path can hold the state DB (a file or nothing, in a writable
 * directory); else MM_ERR naming what is wrong: a directory, a missing
 * directory, a read-only file system.  A URL: MM_OK (its server says). */
int mm_state_check_path(const char *path, char *err);
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
/* Removes the locks (of domain, or all when NULL) that no open migration
 * needs and whose owner is gone or whose lease ran out (a process killed
 * before its migration opened); notice gets one line per lock removed. */
int mm_state_drop_stale_locks(struct mm_state *st, const char *domain,
                              void (*notice)(void *arg, const char *line), void *arg, char *err);

/* Shared-resource locks: the resources several domains' objects live in
 * (plugin.h: resources, one "KIND NAME" per line: a Microsoft 365 tenant
 * whose transport rules list many domains, a DNS zone), changed by one
 * plugin call at a time across processes on this state DB.  All of them
 * are taken or none (no two callers hold half of each other's set).  The
 * holder is this connection (pid, host, and which connection of the
 * process); a lock whose holder is gone (same host) or whose lease ran out
 * is taken over, with a notice naming the old holder.  Waits up to
 * wait_ms for a live one (see mm_lock_waiter); on timeout err names the
 * resource and its holder. */
struct mm_lock_waiter {
	/* Told of each new holder waited for ("user@host (pid N on H, 'CMD'
	 * of DOMAIN since T)"); may be NULL. */
	void (*waiting)(void *arg, const char *resource, const char *holder);
	/* Waits ms between two attempts and hands back the connection to
	 * make the next one on (a runbook's domain, parked meanwhile, comes
	 * back on another worker's); the lock is then that connection's.
	 * NULL: sleeps, and tries again on st. */
	struct mm_state *(*pause)(void *arg, long ms);
	void *arg;
};
int mm_state_lock_shared(struct mm_state *st, const char *resources, const char *domain,
                         const char *command, long lease_ms, long wait_ms,
                         const struct mm_lock_waiter *waiter, char *notice, size_t noticelen,
                         char *err);
/* Extends the lease of every shared lock this connection took.  MM_ERR,
 * renewing none, when one is no longer its own (its lease ran out and
 * another took it over): the caller must stop writing. */
int mm_state_renew_shared(struct mm_state *st, long lease_ms, char *err);
/* Lets go of this connection's locks on resources. */
int mm_state_unlock_shared(struct mm_state *st, const char *resources, char *err);

/* Notes kept with a shared resource (plugin.h, ABI 1.6 shared_note_*):
 * one text per resource and key, read and replaced only while this
 * connection holds the resource's lock (MM_ERR, err naming it, when it
 * does not).  load: *text NULL (MM_OK) when there is none; store: text
 * NULL removes it; domain is the one whose call stores it. */
int mm_state_note_load(struct mm_state *st, const char *resource, const char *key, char **text,
                       char *err);
int mm_state_note_store(struct mm_state *st, const char *resource, const char *key,
                        const char *text, const char *domain, char *err);

/* Counted locks across processes and hosts (the runbook's tenant cap and
 * zone limit, limiter.c): resource i has limits[i] slots, rows "RESOURCE
 * #K" in the shared locks; one of each is taken, or none (*taken = 0:
 * one is full).  slots[i] gets the K taken.  A slot whose holder is gone
 * (same host) or whose lease ran out is free again. */
int mm_state_take_slots(struct mm_state *st, const char *const *resources, const int *limits,
                        size_t n, long lease_ms, int *slots, int *taken, char *err);
int mm_state_give_slots(struct mm_state *st, const char *const *resources, const int *slots,
                        size_t n, char *err);
/* Extends the lease of slots[i] of resource i (this connection's) while
 * their calls run.  MM_ERR naming the first one no longer its own (its
 * lease ran out and another took it over); the others are renewed. */
int mm_state_renew_slots(struct mm_state *st, const char *const *resources, const int *slots,
                         size_t n, long lease_ms, char *err);

struct mm_audit_row {
	long long id;
	const char *at, *actor, *domain, *action, *detail;
};
int mm_state_each_audit(struct mm_state *st, const char *domain,
                        int (*fn)(const struct mm_audit_row *row, void *arg), void *arg,
                        char *err);

const char *mm_state_actor(const struct mm_state *st);


/* Migrations: a domain moving from one mode to another, journaled step by
 * step so that `resume` can finish it after a crash. */
struct mm_migration {
	long long id;
	char *domain;
	char *from_mode;          /* NULL: the domain had no mode */
	char *to_mode;
	char *profile;
	char *step;               /* the last step that finished */
	char *old_receipt;
	int old_adopted;
	char *new_receipt;
	char *options;            /* JSON: the switch's options, for resume */
	long long verify_deadline; /* ms since the epoch */
	char *started_at;
	char *kind;               /* "switch", "setup", "teardown", "adopt" */
};
void mm_migration_clear(struct mm_migration *m);

/* Opens a migration for m->domain (creating its row if needed) and
 * journals step "planned".  MM_REFUSED when one is open already. */
int mm_state_migration_open(struct mm_state *st, struct mm_migration *m, char *err);
/* The open migration of a domain; *found = 0 when there is none. */
int mm_state_migration_get(struct mm_state *st, const char *domain, struct mm_migration *m,
                           int *found, char *err);
int mm_state_each_open_migration(struct mm_state *st,
                                 int (*fn)(const struct mm_migration *m, void *arg), void *arg,
                                 char *err);
/* Appends a journal row in its own transaction; phase "end" also records
 * the step as the migration's last finished one.  Renews the domain lock. */
int mm_state_journal(struct mm_state *st, long long id, const char *step, const char *phase,
                     const char *detail, char *err);
/* Whether the journal has a row for step in phase. */
int mm_state_journal_has(struct mm_state *st, long long id, const char *step, const char *phase,
                         int *has, char *err);
/* Stores the receipt of the new (old_mode 0) or the old mode.  why (may be
 * NULL): journal it as a step of that name, in the same transaction (a
 * plugin's checkpoint before a write). */
int mm_state_migration_set_receipt(struct mm_state *st, long long id, int old_mode,
                                   const char *receipt, const char *why, char *err);
/* Keeps snapshot as what mode replaced for domain unless one is kept
 * already (*kept = 0 then): the first one stays until a migration that
 * leaves the mode closes. */
int mm_state_keep_original(struct mm_state *st, long long id, const char *domain,
                           const char *mode, const char *snapshot, int *kept, char *err);
/* The kept snapshot, or *snapshot = NULL. */
int mm_state_get_original(struct mm_state *st, const char *domain, const char *mode,
                          char **snapshot, char *err);
/* Closes the migration in one transaction.  result "done" gives the domain
 * the new mode (none for a teardown) and receipt, and releases the
 * original of the mode it left; "rolled_back" and "aborted" release the
 * original of the mode that was rolled back; anything else ("failed")
 * leaves the domain as it was.  Writes the audit row and drops the
 * caller's lock on the domain. */
int mm_state_migration_close(struct mm_state *st, long long id, const char *result,
                             const char *detail, char *err);

/* A domain's MX TTL lowered ahead of a change window (`mailmode prepare`):
 * one row per domain.  phase "lowering" or "restoring" while the plugin
 * may be writing (a kill leaves it so: prepare again finishes it, prepare
 * --undo undoes it), "lowered" once done. */
struct mm_prepare_row {
	char *domain;
	char *mode;               /* the plugin whose records were lowered */
	char *profile;
	char *phase;
	long long ttl;            /* lowered to */
	long long ttl_before;     /* the largest TTL before; -1: not known yet */
	char *record;             /* the plugin's checkpoint or report (JSON) */
	long long ready_at_ms;    /* no cache holds the TTL before after this;
	                             0: not known yet */
};
void mm_prepare_row_clear(struct mm_prepare_row *row);
int mm_state_prepare_get(struct mm_state *st, const char *domain, struct mm_prepare_row *row,
                         int *found, char *err);
/* Starts (or restarts) the row in phase ("lowering", "restoring"),
 * creating the domain's row when it has none; the record stays. */
int mm_state_prepare_begin(struct mm_state *st, const char *domain, const char *mode,
                           const char *profile, long long ttl, const char *phase, char *err);
/* The plugin's checkpoint before its write, durable when this returns. */
int mm_state_prepare_record(struct mm_state *st, const char *domain, const char *record,
                            char *err);
/* LOWER finished: phase "lowered", the records at ttl, with the plugin's
 * report; receipt (may be NULL): the domain's new receipt, stored in the
 * same transaction.  Also puts a lowered row back as it was after a LOWER
 * again that wrote nothing. */
int mm_state_prepare_done(struct mm_state *st, const char *domain, long long ttl,
                          long long ttl_before,
                          long long ready_at_ms, const char *report, const char *receipt,
                          char *err);
/* Drops the row, with an audit row (action); receipt as for _done;
 * release_mode (may be NULL): the original of that mode a prepare kept
 * (outside any migration) is released. */
int mm_state_prepare_drop(struct mm_state *st, const char *domain, const char *action,
                          const char *receipt, const char *release_mode, char *err);
/* keep_original outside a migration (prepare of a domain not in mode). */
int mm_state_prepare_keep_original(struct mm_state *st, const char *domain, const char *mode,
                                   const char *snapshot, char *err);

/* Test hooks: MAILMODE_TEST_CRASH_AFTER=N makes the process SIGKILL itself
 * right after the N-th journal write on one state connection (a runbook's
 * workers each have theirs), MAILMODE_TEST_CRASH_AT=STEP:PHASE right after
 * that journal row, to prove that resume finishes any interrupted step. */

#endif
