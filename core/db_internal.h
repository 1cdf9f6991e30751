#ifndef MM_DB_INTERNAL_H
#define MM_DB_INTERNAL_H

/* Shared by db.c and the back-ends (db_sqlite.c, db_pg.c). */
#include "db.h"

struct mm_db_ops {
	int (*prepare)(struct mm_db *db, const char *sql, struct mm_db_stmt **out);
	int (*bind_text)(struct mm_db_stmt *stmt, int i, const char *text);
	int (*bind_int64)(struct mm_db_stmt *stmt, int i, long long v);
	int (*step)(struct mm_db_stmt *stmt);
	const char *(*column_text)(struct mm_db_stmt *stmt, int col);
	int (*column_is_null)(struct mm_db_stmt *stmt, int col);
	void (*finalize)(struct mm_db_stmt *stmt);
	int (*exec)(struct mm_db *db, const char *sql);
	int (*begin)(struct mm_db *db);
	long long (*changes)(struct mm_db *db);
	long long (*last_id)(struct mm_db *db);
	int (*now_ms)(struct mm_db *db, long long *ms);
	void (*describe_writer)(struct mm_db *db, char *buf, size_t len);
	void (*close)(struct mm_db *db);
};

/* The start of each back-end's connection and statement. */
struct mm_db {
	const struct mm_db_ops *ops;
	char name[256];            /* mm_db_display of the target */
	char errmsg[384];
	int last_rc;               /* of the last step or exec that failed */
};

struct mm_db_stmt {
	struct mm_db *db;
};

void mm_db_set_error(struct mm_db *db, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

int mm_db_sqlite_open(const char *path, long busy_ms, struct mm_db **out, char *err);
int mm_db_pg_open(const char *url, long busy_ms, struct mm_db **out, char *err);

#endif
