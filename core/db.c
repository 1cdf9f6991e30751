/* The state store's SQL, dispatched to the back-end that keeps it. */
#include "db.h"
#include "db_internal.h"

#include "mm.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mm_db_is_url(const char *target)
{
	return strncmp(target, "postgresql://", 13) == 0 || strncmp(target, "postgres://", 11) == 0;
}

/* scheme://user:password@host...: the password becomes ***. */
void mm_db_display(const char *target, char *buf, size_t len)
{
	const char *auth = strstr(target, "://"), *at, *colon;

	at = auth ? strchr(auth + 3, '@') : NULL;
	colon = at ? memchr(auth + 3, ':', (size_t)(at - auth - 3)) : NULL;
	if (!mm_db_is_url(target) || !colon)
		snprintf(buf, len, "%s", target);
	else
		snprintf(buf, len, "%.*s***%s", (int)(colon + 1 - target), target, at);
	/* A password given as a parameter (?password=...) goes too. */
	if (mm_db_is_url(target) && (at = strstr(buf, "password=")) != NULL)
		snprintf((char *)at, len - (size_t)(at - buf), "password=***");
}

/* Whether the URL carries a password (user:PASSWORD@ or password=). */
static int has_password(const char *url)
{
	const char *auth = strstr(url, "://") + 3;
	size_t end = strcspn(auth, "/?");
	const char *at = memchr(auth, '@', end);

	return (at && memchr(auth, ':', (size_t)(at - auth))) || strstr(url, "password=");
}

int mm_db_open(const char *target, long busy_ms, struct mm_db **out, char *err)
{
	char name[256];

	*out = NULL;
	/* The URL is named in messages, shown by ps and kept in config files:
	 * the password goes where libpq finds it without the URL. */
	if (mm_db_is_url(target) && has_password(target)) {
		mm_db_display(target, name, sizeof(name));
		snprintf(err, MM_ERR_MAX, "state DB %s: a password in the URL is refused: put it in ~/.pgpass, PGPASSFILE or a file named by passfile=",
		         name);
		return MM_ERR;
	}
	if (mm_db_is_url(target))
		return mm_db_pg_open(target, busy_ms, out, err);
	return mm_db_sqlite_open(target, busy_ms, out, err);
}

void mm_db_close(struct mm_db *db)
{
	if (db)
		db->ops->close(db);
}

void mm_db_set_error(struct mm_db *db, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(db->errmsg, sizeof(db->errmsg), fmt, ap);
	va_end(ap);
}

int mm_db_prepare(struct mm_db *db, const char *sql, struct mm_db_stmt **out)
{
	*out = NULL;
	return db->ops->prepare(db, sql, out);
}

int mm_db_bind_text(struct mm_db_stmt *stmt, int i, const char *text)
{
	return stmt->db->ops->bind_text(stmt, i, text);
}

int mm_db_bind_int64(struct mm_db_stmt *stmt, int i, long long v)
{
	return stmt->db->ops->bind_int64(stmt, i, v);
}

/* Keeps what a failure was, for mm_db_last_rc. */
static int note(struct mm_db *db, int rc)
{
	if (rc != MM_DB_OK && rc != MM_DB_ROW && rc != MM_DB_DONE)
		db->last_rc = rc;
	return rc;
}

int mm_db_step(struct mm_db_stmt *stmt)
{
	return note(stmt->db, stmt->db->ops->step(stmt));
}

const char *mm_db_column_text(struct mm_db_stmt *stmt, int col)
{
	return stmt->db->ops->column_text(stmt, col);
}

long long mm_db_column_int64(struct mm_db_stmt *stmt, int col)
{
	const char *v = stmt->db->ops->column_text(stmt, col);

	return v ? strtoll(v, NULL, 10) : 0;
}

int mm_db_column_is_null(struct mm_db_stmt *stmt, int col)
{
	return stmt->db->ops->column_is_null(stmt, col);
}

void mm_db_finalize(struct mm_db_stmt *stmt)
{
	if (stmt)
		stmt->db->ops->finalize(stmt);
}

int mm_db_exec(struct mm_db *db, const char *sql)
{
	return note(db, db->ops->exec(db, sql));
}

int mm_db_begin(struct mm_db *db)
{
	return note(db, db->ops->begin(db));
}

int mm_db_commit(struct mm_db *db)
{
	return note(db, db->ops->exec(db, "COMMIT"));
}

void mm_db_rollback(struct mm_db *db)
{
	char keep[sizeof(db->errmsg)];

	/* The failure that led here is the one to report. */
	memcpy(keep, db->errmsg, sizeof(keep));
	db->ops->exec(db, "ROLLBACK");
	memcpy(db->errmsg, keep, sizeof(keep));
}

long long mm_db_changes(struct mm_db *db)
{
	return db->ops->changes(db);
}

long long mm_db_last_id(struct mm_db *db)
{
	return db->ops->last_id(db);
}

int mm_db_now_ms(struct mm_db *db, long long *ms)
{
	return db->ops->now_ms(db, ms);
}

int mm_db_last_rc(struct mm_db *db)
{
	return db->last_rc;
}

const char *mm_db_errmsg(struct mm_db *db)
{
	return db->errmsg;
}

void mm_db_describe_writer(struct mm_db *db, char *buf, size_t len)
{
	db->ops->describe_writer(db, buf, len);
}

const char *mm_db_name(struct mm_db *db)
{
	return db->name;
}
