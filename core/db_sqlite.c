/* The state store in an SQLite file (WAL): the default back-end.  Its
 * schema and the upgrades from each older version live here. */
#include "db.h"
#include "db_internal.h"

#include "host.h"
#include "mm.h"
#include "state.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* 'MMOD': marks the file as a mailmode state database. */
#define APPLICATION_ID 0x4d4d4f44
/* SQLite's WAL write lock: byte 120 of the -shm file (see sqlite's os_unix.c). */
#define WAL_WRITE_LOCK_OFFSET 120

struct sqlite_db {
	struct mm_db base;
	sqlite3 *handle;
	char *path;
};

struct sqlite_stmt {
	struct mm_db_stmt base;
	sqlite3_stmt *handle;
};

/* The one-mode invariant, kept by the database itself: a domain's mode
 * changes from one mode to another only inside an open migration. */
#define ONE_MODE_TRIGGER \
	"CREATE TRIGGER one_mode BEFORE UPDATE OF mode ON domains" \
	" WHEN OLD.mode IS NOT NULL AND NEW.mode IS NOT NULL AND OLD.mode <> NEW.mode" \
	"  AND NOT EXISTS (SELECT 1 FROM migrations" \
	"                  WHERE domain = NEW.domain AND finished_at IS NULL)" \
	" BEGIN SELECT RAISE(ABORT, 'one-mode invariant'); END;"

static const char schema_v1[] =
	"CREATE TABLE domains("
	"  domain TEXT PRIMARY KEY,"
	"  mode TEXT,"
	"  profile TEXT,"
	"  receipt TEXT,"
	"  adopted INTEGER NOT NULL DEFAULT 0,"
	"  updated_at TEXT NOT NULL);"
	"CREATE TABLE migrations("
	"  id INTEGER PRIMARY KEY,"
	"  domain TEXT NOT NULL REFERENCES domains(domain),"
	"  from_mode TEXT,"
	"  to_mode TEXT NOT NULL,"
	"  profile TEXT,"
	"  step TEXT NOT NULL,"
	"  old_receipt TEXT,"
	"  old_adopted INTEGER NOT NULL DEFAULT 0,"
	"  new_receipt TEXT,"
	"  options TEXT,"
	"  verify_deadline INTEGER,"
	"  started_at TEXT NOT NULL,"
	"  finished_at TEXT,"
	"  result TEXT);"
	"CREATE UNIQUE INDEX one_open_migration ON migrations(domain) WHERE finished_at IS NULL;"
	"CREATE TABLE journal("
	"  migration_id INTEGER NOT NULL REFERENCES migrations(id),"
	"  seq INTEGER NOT NULL,"
	"  step TEXT NOT NULL,"
	"  phase TEXT NOT NULL,"
	"  detail TEXT,"
	"  at TEXT NOT NULL,"
	"  PRIMARY KEY(migration_id, seq));"
	"CREATE TABLE locks("
	"  domain TEXT PRIMARY KEY,"
	"  owner TEXT NOT NULL,"
	"  pid INTEGER NOT NULL,"
	"  host TEXT NOT NULL,"
	"  command TEXT NOT NULL,"
	"  acquired_at TEXT NOT NULL,"
	"  lease_until INTEGER NOT NULL);"
	"CREATE TABLE audit("
	"  id INTEGER PRIMARY KEY,"
	"  at TEXT NOT NULL,"
	"  actor TEXT NOT NULL,"
	"  domain TEXT,"
	"  action TEXT NOT NULL,"
	"  detail TEXT);"
	"CREATE INDEX audit_domain ON audit(domain, id);"
	ONE_MODE_TRIGGER;

/* Version 2: plain setup, teardown and adopt are migrations too (kind;
 * to_mode NULL for a teardown), the first snapshot of what a mode replaced
 * is kept apart from any receipt, and repeated attempts share one journal
 * row.  SQLite cannot drop a NOT NULL, so migrations is rebuilt (with
 * foreign keys off, see upgrade_schema). */
static const char schema_v2[] =
	"DROP TRIGGER one_mode;"
	"CREATE TABLE migrations_v2("
	"  id INTEGER PRIMARY KEY,"
	"  domain TEXT NOT NULL REFERENCES domains(domain),"
	"  kind TEXT NOT NULL DEFAULT 'switch',"
	"  from_mode TEXT,"
	"  to_mode TEXT,"
	"  profile TEXT,"
	"  step TEXT NOT NULL,"
	"  old_receipt TEXT,"
	"  old_adopted INTEGER NOT NULL DEFAULT 0,"
	"  new_receipt TEXT,"
	"  options TEXT,"
	"  verify_deadline INTEGER,"
	"  started_at TEXT NOT NULL,"
	"  finished_at TEXT,"
	"  result TEXT,"
	"  CHECK (from_mode IS NOT NULL OR to_mode IS NOT NULL));"
	"INSERT INTO migrations_v2(id, domain, from_mode, to_mode, profile, step, old_receipt,"
	"  old_adopted, new_receipt, options, verify_deadline, started_at, finished_at, result)"
	" SELECT id, domain, from_mode, to_mode, profile, step, old_receipt, old_adopted,"
	"  new_receipt, options, verify_deadline, started_at, finished_at, result FROM migrations;"
	"DROP TABLE migrations;"
	"ALTER TABLE migrations_v2 RENAME TO migrations;"
	"CREATE UNIQUE INDEX one_open_migration ON migrations(domain) WHERE finished_at IS NULL;"
	ONE_MODE_TRIGGER
	"ALTER TABLE journal ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;"
	"ALTER TABLE journal ADD COLUMN last_at TEXT;"
	"CREATE TABLE originals("
	"  id INTEGER PRIMARY KEY,"
	"  domain TEXT NOT NULL REFERENCES domains(domain),"
	"  mode TEXT NOT NULL,"
	"  snapshot TEXT NOT NULL,"
	"  taken_at TEXT NOT NULL,"
	"  migration_id INTEGER REFERENCES migrations(id),"
	"  restored_at TEXT);"
	/* The first snapshot wins: a second one for the same domain and mode is
	 * ignored until a teardown has put the first back. */
	"CREATE UNIQUE INDEX one_kept_original ON originals(domain, mode)"
	" WHERE restored_at IS NULL;";

/* Version 3: runbook runs, each domain's status and reason in a run, and
 * journal times in milliseconds (a step of a sandbox switch takes less
 * than a second; older rows keep only `at`). */
static const char schema_v3[] =
	"CREATE TABLE runbook_runs("
	"  id INTEGER PRIMARY KEY,"
	"  runbook TEXT NOT NULL,"
	"  actor TEXT NOT NULL,"
	"  options TEXT,"
	"  started_at TEXT NOT NULL,"
	"  started_ms INTEGER NOT NULL,"
	"  finished_at TEXT,"
	"  finished_ms INTEGER);"
	"CREATE TABLE runbook_run_domains("
	"  run_id INTEGER NOT NULL REFERENCES runbook_runs(id),"
	"  domain TEXT NOT NULL,"
	"  line INTEGER NOT NULL,"
	"  from_mode TEXT,"
	"  to_mode TEXT NOT NULL,"
	"  profile TEXT,"
	"  tenant TEXT,"
	"  status TEXT NOT NULL,"
	"  reason TEXT,"
	"  outcome TEXT,"
	"  migration_id INTEGER REFERENCES migrations(id),"
	"  started_ms INTEGER,"
	"  finished_ms INTEGER,"
	"  verify_attempts INTEGER NOT NULL DEFAULT 0,"
	"  api_calls INTEGER NOT NULL DEFAULT 0,"
	"  PRIMARY KEY(run_id, domain));"
	"ALTER TABLE journal ADD COLUMN at_ms INTEGER;"
	"ALTER TABLE journal ADD COLUMN last_ms INTEGER;";

/* Version 4: locks on the resources several domains share (a tenant's
 * transport rules, a DNS zone), held by one plugin call at a time across
 * processes.  holder: the connection (a runbook's workers share a pid). */
static const char schema_v4[] =
	"CREATE TABLE shared_locks("
	"  resource TEXT PRIMARY KEY,"
	"  owner TEXT NOT NULL,"
	"  pid INTEGER NOT NULL,"
	"  host TEXT NOT NULL,"
	"  command TEXT NOT NULL,"
	"  acquired_at TEXT NOT NULL,"
	"  lease_until INTEGER NOT NULL,"
	"  holder INTEGER NOT NULL,"
	"  domain TEXT NOT NULL);";

/* Version 5: a domain's MX TTL lowered ahead of a change window
 * (`mailmode prepare`, state_prepare.c): what was lowered, from what, and
 * when the lowered TTL is the only one left in caches. */
static const char schema_v5[] =
	"CREATE TABLE prepares("
	"  domain TEXT PRIMARY KEY REFERENCES domains(domain),"
	"  mode TEXT NOT NULL,"
	"  profile TEXT NOT NULL,"
	"  phase TEXT NOT NULL,"
	"  ttl INTEGER NOT NULL,"
	"  ttl_before INTEGER,"
	"  record TEXT,"
	"  ready_at_ms INTEGER,"
	"  started_at TEXT NOT NULL);";

/* Version 6: notes kept with a shared resource (state_notes.c, plugin.h
 * ABI 1.6 shared_note_*), one per resource and name, written only by the
 * holder of the resource's shared lock. */
static const char schema_v6[] =
	"CREATE TABLE shared_notes("
	"  resource TEXT NOT NULL,"
	"  name TEXT NOT NULL,"
	"  note TEXT NOT NULL,"
	"  domain TEXT,"
	"  stored_at TEXT NOT NULL,"
	"  PRIMARY KEY(resource, name));";

/* Schema migrations: entry i brings version i to i + 1. */
static const char *const migrations[] = { schema_v1, schema_v2, schema_v3, schema_v4, schema_v5,
                                           schema_v6 };

static struct sqlite_db *sdb(struct mm_db *db)
{
	return (struct sqlite_db *)db;
}

static struct sqlite_stmt *sstmt(struct mm_db_stmt *stmt)
{
	return (struct sqlite_stmt *)stmt;
}

/* An SQLite result as ours, keeping SQLite's message for errmsg. */
static int result(struct mm_db *db, int src)
{
	int ext;

	switch (src) {
	case SQLITE_OK:
		return MM_DB_OK;
	case SQLITE_ROW:
		return MM_DB_ROW;
	case SQLITE_DONE:
		return MM_DB_DONE;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		mm_db_set_error(db, "%s", sqlite3_errmsg(sdb(db)->handle));
		return MM_DB_BUSY;
	}
	mm_db_set_error(db, "%s", sqlite3_errmsg(sdb(db)->handle));
	ext = sqlite3_extended_errcode(sdb(db)->handle);
	if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY)
		return MM_DB_UNIQUE;
	return MM_DB_ERROR;
}

static int sq_prepare(struct mm_db *db, const char *sql, struct mm_db_stmt **out)
{
	struct sqlite_stmt *stmt = calloc(1, sizeof(*stmt));
	int src;

	if (!stmt) {
		mm_db_set_error(db, "out of memory");
		return MM_DB_ERROR;
	}
	stmt->base.db = db;
	src = sqlite3_prepare_v2(sdb(db)->handle, sql, -1, &stmt->handle, NULL);
	if (src != SQLITE_OK) {
		src = result(db, src);
		sqlite3_finalize(stmt->handle);
		free(stmt);
		return src;
	}
	*out = &stmt->base;
	return MM_DB_OK;
}

static int sq_bind_text(struct mm_db_stmt *stmt, int i, const char *text)
{
	return result(stmt->db, sqlite3_bind_text(sstmt(stmt)->handle, i, text, -1, SQLITE_TRANSIENT));
}

static int sq_bind_int64(struct mm_db_stmt *stmt, int i, long long v)
{
	return result(stmt->db, sqlite3_bind_int64(sstmt(stmt)->handle, i, v));
}

static int sq_step(struct mm_db_stmt *stmt)
{
	return result(stmt->db, sqlite3_step(sstmt(stmt)->handle));
}

static const char *sq_column_text(struct mm_db_stmt *stmt, int col)
{
	return (const char *)sqlite3_column_text(sstmt(stmt)->handle, col);
}

static int sq_column_is_null(struct mm_db_stmt *stmt, int col)
{
	return sqlite3_column_type(sstmt(stmt)->handle, col) == SQLITE_NULL;
}

static void sq_finalize(struct mm_db_stmt *stmt)
{
	sqlite3_finalize(sstmt(stmt)->handle);
	free(stmt);
}

static int sq_exec(struct mm_db *db, const char *sql)
{
	return result(db, sqlite3_exec(sdb(db)->handle, sql, NULL, NULL, NULL));
}

static int sq_begin(struct mm_db *db)
{
	return sq_exec(db, "BEGIN IMMEDIATE");
}

static long long sq_changes(struct mm_db *db)
{
	return sqlite3_changes(sdb(db)->handle);
}

static long long sq_last_id(struct mm_db *db)
{
	return sqlite3_last_insert_rowid(sdb(db)->handle);
}

/* One file on one machine: the host's clock is the only one. */
static int sq_now_ms(struct mm_db *db, long long *ms)
{
	(void)db;
	*ms = (long long)mm_host_wall_ms(NULL);
	return MM_DB_OK;
}

/* Who holds the write lock of a WAL database: the pid from fcntl(F_GETLK)
 * on the -shm file, and its command line. */
static void sq_describe_writer(struct mm_db *db, char *buf, size_t len)
{
	char shm[4096], proc[64], cmd[256] = "";
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
	                    .l_start = WAL_WRITE_LOCK_OFFSET, .l_len = 1 };
	size_t n = 0, i;
	FILE *f;
	int fd;

	snprintf(buf, len, "another process");
	snprintf(shm, sizeof(shm), "%s-shm", sdb(db)->path);
	fd = open(shm, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) {
		snprintf(proc, sizeof(proc), "/proc/%d/cmdline", (int)fl.l_pid);
		f = fopen(proc, "r");
		if (f) {
			n = fread(cmd, 1, sizeof(cmd) - 1, f);
			fclose(f);
		}
		/* One line: argument separators and any control character. */
		for (i = 0; i + 1 < n; i++)
			if ((unsigned char)cmd[i] < ' ')
				cmd[i] = ' ';
		cmd[n] = '\0';
		snprintf(buf, len, "pid %d (%s)", (int)fl.l_pid, n ? cmd : "command unknown");
	}
	close(fd);
}

static int pragma_int(struct mm_db *db, const char *sql, int *value, char *err)
{
	sqlite3_stmt *stmt = NULL;
	int src = sqlite3_prepare_v2(sdb(db)->handle, sql, -1, &stmt, NULL);

	if (src == SQLITE_OK) {
		src = sqlite3_step(stmt);
		if (src == SQLITE_ROW) {
			*value = sqlite3_column_int(stmt, 0);
			src = SQLITE_OK;
		}
	}
	sqlite3_finalize(stmt);
	if (src == SQLITE_OK)
		return MM_OK;
	snprintf(err, MM_ERR_MAX, "state DB %s: reading its header: %s", db->name,
	         sqlite3_errmsg(sdb(db)->handle));
	return MM_ERR;
}

/* The upgrade at open runs before the state's own error path exists, so
 * a DB another writer holds is said here as mm_state_db_error says it. */
static int exec_or_fail(struct mm_db *db, const char *sql, char *err)
{
	char who[320];
	int src = sq_exec(db, sql);

	if (src == MM_DB_OK)
		return MM_OK;
	if (src == MM_DB_BUSY) {
		sq_describe_writer(db, who, sizeof(who));
		snprintf(err, MM_ERR_MAX, "state DB %s is locked by %s; gave up waiting", db->name,
		         who);
	} else {
		snprintf(err, MM_ERR_MAX, "state DB %s: %s: %s", db->name, sql, db->errmsg);
	}
	return MM_ERR;
}

/* Whether the file is mailmode's and not newer than this mailmode. */
static int check_header(struct mm_db *db, int *version, char *err)
{
	int app_id, tables, rc;

	if ((rc = pragma_int(db, "PRAGMA user_version", version, err)) != MM_OK ||
	    (rc = pragma_int(db, "PRAGMA application_id", &app_id, err)) != MM_OK ||
	    (rc = pragma_int(db, "SELECT count(*) FROM sqlite_master", &tables, err)) != MM_OK)
		return rc;
	if (app_id != APPLICATION_ID && tables > 0) {
		snprintf(err, MM_ERR_MAX, "state DB %s is an SQLite file of another program, not mailmode's",
		         db->name);
		return MM_ERR;
	}
	if (*version > MM_STATE_SCHEMA_VERSION) {
		snprintf(err, MM_ERR_MAX,
		         "state DB %s has schema version %d, newer than this mailmode's (%d): use a newer mailmode",
		         db->name, *version, MM_STATE_SCHEMA_VERSION);
		return MM_ERR;
	}
	return MM_OK;
}

static int upgrade_schema(struct mm_db *db, char *err)
{
	int version, dangling, rc;
	char sql[128];

	if ((rc = exec_or_fail(db, "BEGIN IMMEDIATE", err)) != MM_OK)
		return rc;
	if ((rc = check_header(db, &version, err)) != MM_OK)
		goto out;
	/* Foreign keys are still off (sqlite_open turns them on after this):
	 * a version may rebuild a table others refer to. */
	for (; version < MM_STATE_SCHEMA_VERSION; version++) {
		if ((rc = exec_or_fail(db, migrations[version], err)) != MM_OK)
			goto out;
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d; PRAGMA application_id = %d",
		         version + 1, APPLICATION_ID);
		if ((rc = exec_or_fail(db, sql, err)) != MM_OK)
			goto out;
	}
	if ((rc = pragma_int(db, "SELECT count(*) FROM pragma_foreign_key_check", &dangling, err)) != MM_OK)
		goto out;
	if (dangling > 0) {
		snprintf(err, MM_ERR_MAX, "state DB %s: %d rows refer to missing rows after the schema upgrade; left unchanged",
		         db->name, dangling);
		rc = MM_ERR;
		goto out;
	}
	rc = exec_or_fail(db, "COMMIT", err);
out:
	if (rc != MM_OK)
		sqlite3_exec(sdb(db)->handle, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static void sq_close(struct mm_db *db)
{
	sqlite3_close(sdb(db)->handle);
	free(sdb(db)->path);
	free(db);
}

static const struct mm_db_ops sqlite_ops = {
	sq_prepare, sq_bind_text, sq_bind_int64, sq_step, sq_column_text, sq_column_is_null,
	sq_finalize, sq_exec, sq_begin, sq_changes, sq_last_id, sq_now_ms, sq_describe_writer,
	sq_close
};

int mm_db_sqlite_open(const char *path, long busy_ms, struct mm_db **out, char *err)
{
	struct sqlite_db *db = calloc(1, sizeof(*db));
	char busy[64];
	int src, rc = MM_ERR;

	if (!db || !(db->path = strdup(path))) {
		free(db);
		snprintf(err, MM_ERR_MAX, "out of memory");
		return MM_ERR;
	}
	db->base.ops = &sqlite_ops;
	mm_db_display(path, db->base.name, sizeof(db->base.name));
	src = sqlite3_open_v2(path, &db->handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	                      SQLITE_OPEN_NOFOLLOW, NULL);
	if (src != SQLITE_OK) {
		snprintf(err, MM_ERR_MAX, "state DB %s: cannot open: %s", path,
		         db->handle ? sqlite3_errmsg(db->handle) : sqlite3_errstr(src));
		goto fail;
	}
	sqlite3_extended_result_codes(db->handle, 0);
	snprintf(busy, sizeof(busy), "PRAGMA busy_timeout = %ld", busy_ms);
	if ((rc = exec_or_fail(&db->base, busy, err)) != MM_OK ||
	    (rc = exec_or_fail(&db->base, "PRAGMA journal_mode = WAL", err)) != MM_OK ||
	    (rc = exec_or_fail(&db->base, "PRAGMA synchronous = FULL", err)) != MM_OK ||
	    (rc = upgrade_schema(&db->base, err)) != MM_OK ||
	    (rc = exec_or_fail(&db->base, "PRAGMA foreign_keys = ON", err)) != MM_OK)
		goto fail;
	*out = &db->base;
	return MM_OK;
fail:
	sq_close(&db->base);
	return rc == MM_OK ? MM_ERR : rc;
}
