#ifndef MM_DB_H
#define MM_DB_H

/* The SQL the state store speaks, whatever keeps it: an SQLite file
 * (db_sqlite.c, the default) or a PostgreSQL database (db_pg.c) that the
 * admins of a team share from several machines.  The state's files write
 * one SQL for both: ? or ?N parameters, ON CONFLICT upserts, and the
 * schema each back-end creates and upgrades on open (the same tables,
 * constraints and one-mode trigger in each dialect). */
#include <stddef.h>

struct mm_db;
struct mm_db_stmt;

/* What a statement or a call came to. */
enum mm_db_rc {
	MM_DB_OK = 0,
	MM_DB_ROW,        /* step: a row is ready */
	MM_DB_DONE,       /* step: no (more) rows */
	MM_DB_BUSY,       /* another writer held the database past busy_ms */
	MM_DB_UNIQUE,     /* a unique key or index refused the row */
	MM_DB_ERROR       /* anything else: mm_db_errmsg says what */
};

/* Whether target names a PostgreSQL database (postgresql:// or
 * postgres:// URL) rather than an SQLite file. */
int mm_db_is_url(const char *target);
/* target for messages: a URL without its password (user:***@host). */
void mm_db_display(const char *target, char *buf, size_t len);

/* Connects, creating the schema when the database has none and upgrading
 * an older one; a database of a newer schema or of another program is
 * refused.  busy_ms: how long a statement waits for another writer.
 * err (MM_ERR_MAX) names the database as mm_db_display does. */
int mm_db_open(const char *target, long busy_ms, struct mm_db **out, char *err);
void mm_db_close(struct mm_db *db);

/* One statement; parameters are numbered from 1. */
int mm_db_prepare(struct mm_db *db, const char *sql, struct mm_db_stmt **out);
/* text NULL binds NULL. */
int mm_db_bind_text(struct mm_db_stmt *stmt, int i, const char *text);
int mm_db_bind_int64(struct mm_db_stmt *stmt, int i, long long v);
/* MM_DB_ROW, MM_DB_DONE or a failure. */
int mm_db_step(struct mm_db_stmt *stmt);
/* Of the current row: text (NULL for NULL), valid until the next step. */
const char *mm_db_column_text(struct mm_db_stmt *stmt, int col);
long long mm_db_column_int64(struct mm_db_stmt *stmt, int col);
int mm_db_column_is_null(struct mm_db_stmt *stmt, int col);
void mm_db_finalize(struct mm_db_stmt *stmt);

/* Statements without parameters or rows, ;-separated. */
int mm_db_exec(struct mm_db *db, const char *sql);
/* A write transaction: one writer at a time on the whole database, as
 * SQLite's BEGIN IMMEDIATE; waits up to busy_ms for the writer before. */
int mm_db_begin(struct mm_db *db);
int mm_db_commit(struct mm_db *db);
void mm_db_rollback(struct mm_db *db);
/* Rows the last INSERT, UPDATE or DELETE changed, and the id the last
 * INSERT gave its row. */
long long mm_db_changes(struct mm_db *db);
long long mm_db_last_id(struct mm_db *db);
/* The database's clock in ms since the epoch: the one clock every host
 * of a shared database judges leases by. */
int mm_db_now_ms(struct mm_db *db, long long *ms);

/* The last failure, one line, and what it was (MM_DB_UNIQUE...). */
int mm_db_last_rc(struct mm_db *db);
const char *mm_db_errmsg(struct mm_db *db);
/* Who holds the database while it is busy ("pid N (CMD)"). */
void mm_db_describe_writer(struct mm_db *db, char *buf, size_t len);
/* The database as mm_db_display names it. */
const char *mm_db_name(struct mm_db *db);

#endif
