#include "state.h"
#include "state_internal.h"

#include "host.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pwd.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* 'MMOD': marks the file as a mailmode state database. */
#define APPLICATION_ID 0x4d4d4f44
/* SQLite's WAL write lock: byte 120 of the -shm file (see sqlite's os_unix.c). */
#define WAL_WRITE_LOCK_OFFSET 120
#define LOCK_POLL_MS 200
/* A plugin names a resource or two (plugin.h: resources). */
#define SHARED_KEYS_MAX 8


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

/* Schema migrations: entry i brings version i to i + 1. */
static const char *const migrations[] = { schema_v1, schema_v2, schema_v3, schema_v4, schema_v5 };

void mm_state_now_iso(char *buf, size_t len)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Who holds the write lock of a WAL database: the pid from fcntl(F_GETLK)
 * on the -shm file, and its command line. */
static void describe_writer(const char *path, char *buf, size_t len)
{
	char shm[4096], proc[64], cmd[256] = "";
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
	                    .l_start = WAL_WRITE_LOCK_OFFSET, .l_len = 1 };
	size_t n = 0, i;
	FILE *f;
	int fd;

	snprintf(buf, len, "another process");
	snprintf(shm, sizeof(shm), "%s-shm", path);
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

int mm_state_db_error(struct mm_state *st, int src, const char *what, char *err)
{
	if (src == SQLITE_BUSY || src == SQLITE_LOCKED) {
		char who[320];

		describe_writer(st->path, who, sizeof(who));
		snprintf(err, MM_ERR_MAX, "state DB %s is locked by %s; gave up waiting", st->path, who);
	} else {
		snprintf(err, MM_ERR_MAX, "state DB %s: %s: %s", st->path, what, sqlite3_errmsg(st->db));
	}
	return MM_ERR;
}

static int exec(struct mm_state *st, const char *sql, char *err)
{
	int src = sqlite3_exec(st->db, sql, NULL, NULL, NULL);

	return src == SQLITE_OK ? MM_OK : mm_state_db_error(st, src, sql, err);
}

static int pragma_int(struct mm_state *st, const char *sql, int *value, char *err)
{
	sqlite3_stmt *stmt = NULL;
	int src = sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL);

	if (src == SQLITE_OK) {
		src = sqlite3_step(stmt);
		if (src == SQLITE_ROW) {
			*value = sqlite3_column_int(stmt, 0);
			src = SQLITE_OK;
		}
	}
	sqlite3_finalize(stmt);
	return src == SQLITE_OK ? MM_OK : mm_state_db_error(st, src, "reading its header", err);
}

static int upgrade_schema(struct mm_state *st, char *err)
{
	int version, app_id, tables, rc;
	char sql[128];

	rc = exec(st, "BEGIN IMMEDIATE", err);
	if (rc != MM_OK)
		return rc;
	if ((rc = pragma_int(st, "PRAGMA user_version", &version, err)) != MM_OK ||
	    (rc = pragma_int(st, "PRAGMA application_id", &app_id, err)) != MM_OK ||
	    (rc = pragma_int(st, "SELECT count(*) FROM sqlite_master", &tables, err)) != MM_OK)
		goto out;
	if (app_id != APPLICATION_ID && tables > 0) {
		snprintf(err, MM_ERR_MAX, "state DB %s is an SQLite file of another program, not mailmode's",
		         st->path);
		rc = MM_ERR;
		goto out;
	}
	if (version > MM_STATE_SCHEMA_VERSION) {
		snprintf(err, MM_ERR_MAX,
		         "state DB %s has schema version %d, newer than this mailmode's (%d): use a newer mailmode",
		         st->path, version, MM_STATE_SCHEMA_VERSION);
		rc = MM_ERR;
		goto out;
	}
	/* Foreign keys are still off (mm_state_open turns them on after this):
	 * a version may rebuild a table others refer to. */
	for (; version < MM_STATE_SCHEMA_VERSION; version++) {
		if ((rc = exec(st, migrations[version], err)) != MM_OK)
			goto out;
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d; PRAGMA application_id = %d",
		         version + 1, APPLICATION_ID);
		if ((rc = exec(st, sql, err)) != MM_OK)
			goto out;
	}
	if ((rc = pragma_int(st, "SELECT count(*) FROM pragma_foreign_key_check", &tables, err)) != MM_OK)
		goto out;
	if (tables > 0) {
		snprintf(err, MM_ERR_MAX, "state DB %s: %d rows refer to missing rows after the schema upgrade; left unchanged",
		         st->path, tables);
		rc = MM_ERR;
		goto out;
	}
	rc = exec(st, "COMMIT", err);
out:
	if (rc != MM_OK)
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static void set_actor(struct mm_state *st)
{
	const char *user = getenv("SUDO_USER");
	struct passwd pw, *found = NULL;
	char buf[1024];

	/* getpwuid_r: runbook workers open their connections at once. */
	if (!user) {
		getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &found);
		user = found ? found->pw_name : "unknown";
	}
	if (gethostname(st->host, sizeof(st->host)) != 0)
		snprintf(st->host, sizeof(st->host), "localhost");
	st->host[sizeof(st->host) - 1] = '\0';
	snprintf(st->actor, sizeof(st->actor), "%s@%s", user, st->host);
}

/* Why a directory cannot take the DB and its -wal/-shm files, or NULL. */
static const char *dir_unusable(const char *dir)
{
	struct stat st;

	if (stat(dir, &st) != 0)
		return errno == ENOENT ? "does not exist" : strerror(errno);
	if (!S_ISDIR(st.st_mode))
		return "is not a directory";
	if (access(dir, W_OK | X_OK) != 0)
		return errno == EROFS ? "is on a read-only file system" : "is not writable";
	return NULL;
}

int mm_state_check_path(const char *path, char *err)
{
	char *copy = strdup(path);
	const char *why, *dir;
	struct stat st;
	int rc = MM_ERR;

	if (!copy) {
		snprintf(err, MM_ERR_MAX, "out of memory");
		return MM_ERR;
	}
	dir = dirname(copy);
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		snprintf(err, MM_ERR_MAX, "state DB %s: is a directory, not a file", path);
	else if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
		snprintf(err, MM_ERR_MAX, "state DB %s: is not a regular file", path);
	else if ((why = dir_unusable(dir)))
		snprintf(err, MM_ERR_MAX, "state DB %s: its directory %s %s", path, dir, why);
	else if (stat(path, &st) == 0 && access(path, W_OK) != 0)
		snprintf(err, MM_ERR_MAX, "state DB %s: %s", path,
		         errno == EROFS ? "is on a read-only file system" : "is not writable");
	else
		rc = MM_OK;
	free(copy);
	return rc;
}

/* Numbers this process's connections: a holder of shared locks. */
static long last_holder;

int mm_state_open(const char *path, long busy_ms, struct mm_state **out, char *err)
{
	struct mm_state *st = calloc(1, sizeof(*st));
	int src, rc = MM_ERR;
	char busy[64];

	*out = NULL;
	if (!st || !(st->path = strdup(path))) {
		snprintf(err, MM_ERR_MAX, "out of memory");
		goto fail;
	}
	/* SQLite would only say "unable to open database file". */
	if (mm_state_check_path(path, err) != MM_OK)
		goto fail;
	set_actor(st);
	st->holder = __atomic_add_fetch(&last_holder, 1, __ATOMIC_RELAXED);
	src = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	                      SQLITE_OPEN_NOFOLLOW, NULL);
	if (src != SQLITE_OK) {
		snprintf(err, MM_ERR_MAX, "state DB %s: cannot open: %s", path,
		         st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(src));
		goto fail;
	}
	sqlite3_extended_result_codes(st->db, 0);
	snprintf(busy, sizeof(busy), "PRAGMA busy_timeout = %ld", busy_ms);
	if ((rc = exec(st, busy, err)) != MM_OK ||
	    (rc = exec(st, "PRAGMA journal_mode = WAL", err)) != MM_OK ||
	    (rc = exec(st, "PRAGMA synchronous = FULL", err)) != MM_OK ||
	    (rc = upgrade_schema(st, err)) != MM_OK ||
	    (rc = exec(st, "PRAGMA foreign_keys = ON", err)) != MM_OK)
		goto fail;
	*out = st;
	return MM_OK;
fail:
	mm_state_close(st);
	return rc == MM_OK ? MM_ERR : rc;
}

void mm_state_close(struct mm_state *st)
{
	if (!st)
		return;
	sqlite3_close(st->db);
	free(st->path);
	free(st);
}

const char *mm_state_actor(const struct mm_state *st)
{
	return st->actor;
}

char *mm_state_column_dup(sqlite3_stmt *stmt, int col)
{
	const unsigned char *v = sqlite3_column_text(stmt, col);

	return v ? strdup((const char *)v) : NULL;
}

void mm_domain_row_clear(struct mm_domain_row *row)
{
	free(row->domain);
	free(row->mode);
	free(row->profile);
	free(row->receipt);
	free(row->updated_at);
	memset(row, 0, sizeof(*row));
}

static void read_domain_row(sqlite3_stmt *stmt, struct mm_domain_row *row)
{
	row->domain = mm_state_column_dup(stmt, 0);
	row->mode = mm_state_column_dup(stmt, 1);
	row->profile = mm_state_column_dup(stmt, 2);
	row->receipt = mm_state_column_dup(stmt, 3);
	row->adopted = sqlite3_column_int(stmt, 4);
	row->updated_at = mm_state_column_dup(stmt, 5);
}

#define DOMAIN_COLUMNS "domain, mode, profile, receipt, adopted, updated_at"

int mm_state_get_domain(struct mm_state *st, const char *domain, struct mm_domain_row *row,
                        int *found, char *err)
{
	sqlite3_stmt *stmt = NULL;
	int src, rc = MM_ERR;

	memset(row, 0, sizeof(*row));
	*found = 0;
	src = sqlite3_prepare_v2(st->db, "SELECT " DOMAIN_COLUMNS " FROM domains WHERE domain = ?",
	                         -1, &stmt, NULL);
	if (src != SQLITE_OK)
		goto out;
	sqlite3_bind_text(stmt, 1, domain, -1, SQLITE_STATIC);
	src = sqlite3_step(stmt);
	if (src == SQLITE_ROW) {
		read_domain_row(stmt, row);
		*found = 1;
		src = SQLITE_DONE;
	}
out:
	if (src == SQLITE_DONE)
		rc = MM_OK;
	else
		mm_state_db_error(st, src, "reading domain", err);
	sqlite3_finalize(stmt);
	return rc;
}

int mm_state_each_domain(struct mm_state *st,
                         int (*fn)(const struct mm_domain_row *row, void *arg), void *arg,
                         char *err)
{
	sqlite3_stmt *stmt = NULL;
	struct mm_domain_row row;
	int src, rc = MM_OK;

	src = sqlite3_prepare_v2(st->db, "SELECT " DOMAIN_COLUMNS " FROM domains ORDER BY domain",
	                         -1, &stmt, NULL);
	while (src == SQLITE_OK || src == SQLITE_ROW) {
		src = sqlite3_step(stmt);
		if (src != SQLITE_ROW)
			break;
		read_domain_row(stmt, &row);
		rc = fn(&row, arg);
		mm_domain_row_clear(&row);
		if (rc != MM_OK)
			goto out;
	}
	if (src != SQLITE_DONE)
		rc = mm_state_db_error(st, src, "listing domains", err);
out:
	sqlite3_finalize(stmt);
	return rc;
}

/* Runs one statement with text parameters (NULL binds NULL). */
int mm_state_run(struct mm_state *st, const char *sql, int nparams, const char *const *params,
               char *err)
{
	sqlite3_stmt *stmt = NULL;
	int src, i;

	src = sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL);
	for (i = 0; src == SQLITE_OK && i < nparams; i++)
		src = sqlite3_bind_text(stmt, i + 1, params[i], -1, SQLITE_STATIC);
	if (src == SQLITE_OK)
		src = sqlite3_step(stmt);
	sqlite3_finalize(stmt);
	if (src == SQLITE_DONE || src == SQLITE_ROW)
		return MM_OK;
	return mm_state_db_error(st, src, "writing", err);
}

int mm_state_insert_audit(struct mm_state *st, const char *domain, const char *action,
                        const char *detail, char *err)
{
	char at[32];
	const char *params[] = { at, st->actor, domain, action, detail };

	mm_state_now_iso(at, sizeof(at));
	return mm_state_run(st, "INSERT INTO audit(at, actor, domain, action, detail) VALUES(?,?,?,?,?)",
	           5, params, err);
}

int mm_state_audit(struct mm_state *st, const char *domain, const char *action,
                   const char *detail, char *err)
{
	return mm_state_insert_audit(st, domain, action, detail, err);
}

int mm_state_begin(struct mm_state *st, char *err)
{
	return exec(st, "BEGIN IMMEDIATE", err);
}

int mm_state_finish(struct mm_state *st, int rc, char *err)
{
	if (rc == MM_OK)
		return exec(st, "COMMIT", err);
	sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int mm_state_set_mode(struct mm_state *st, const char *domain, const char *mode,
                      const char *profile, const char *receipt, int adopted,
                      const char *action, const char *detail, char *err)
{
	struct mm_domain_row row;
	char at[32];
	const char *params[] = { domain, mode, profile, receipt, adopted ? "1" : "0", at };
	int found, rc;

	mm_state_now_iso(at, sizeof(at));
	rc = mm_state_begin(st, err);
	if (rc != MM_OK)
		return rc;
	rc = mm_state_get_domain(st, domain, &row, &found, err);
	if (rc == MM_OK && found && row.mode && strcmp(row.mode, mode) != 0) {
		snprintf(err, MM_ERR_MAX,
		         "%s is already in %s mode: a domain has one mode; use 'mailmode switch %s --to %s'",
		         domain, row.mode, domain, mode);
		rc = MM_REFUSED;
	}
	mm_domain_row_clear(&row);
	if (rc == MM_OK)
		rc = mm_state_run(st, "INSERT INTO domains(domain, mode, profile, receipt, adopted, updated_at)"
		             " VALUES(?,?,?,?,?,?)"
		             " ON CONFLICT(domain) DO UPDATE SET mode = excluded.mode,"
		             " profile = excluded.profile, receipt = excluded.receipt,"
		             " adopted = excluded.adopted, updated_at = excluded.updated_at",
		         6, params, err);
	if (rc == MM_OK)
		rc = mm_state_insert_audit(st, domain, action, detail, err);
	return mm_state_finish(st, rc, err);
}

int mm_state_clear_mode(struct mm_state *st, const char *domain, const char *action,
                        const char *detail, char *err)
{
	char at[32];
	const char *params[] = { at, domain };
	int rc;

	mm_state_now_iso(at, sizeof(at));
	rc = mm_state_begin(st, err);
	if (rc != MM_OK)
		return rc;
	rc = mm_state_run(st, "UPDATE domains SET mode = NULL, receipt = NULL, adopted = 0, updated_at = ?"
	             " WHERE domain = ?", 2, params, err);
	if (rc == MM_OK)
		rc = mm_state_insert_audit(st, domain, action, detail, err);
	return mm_state_finish(st, rc, err);
}

static int process_gone(const char *host, const char *our_host, long long pid)
{
	return strcmp(host, our_host) == 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* A table of locks: the domain locks (one command at a time per domain)
 * and the shared-resource locks (one plugin call at a time per tenant or
 * zone, across processes).  Both SELECT owner, pid, host, command,
 * acquired_at, lease_until, holder, domain of one key; INSERT takes the
 * parameters of struct lock_claim in order, as many as it uses. */
struct lock_table {
	const char *select_sql;
	const char *insert_sql;
	int nparams;
};

static const struct lock_table domain_locks = {
	"SELECT owner, pid, host, command, acquired_at, lease_until, NULL, NULL"
	" FROM locks WHERE domain = ?",
	"INSERT OR REPLACE INTO locks(domain, owner, pid, host, command, acquired_at,"
	" lease_until) VALUES(?,?,?,?,?,?,?)",
	7
};

static const struct lock_table shared_locks = {
	"SELECT owner, pid, host, command, acquired_at, lease_until, holder, domain"
	" FROM shared_locks WHERE resource = ?",
	"INSERT OR REPLACE INTO shared_locks(resource, owner, pid, host, command, acquired_at,"
	" lease_until, holder, domain) VALUES(?,?,?,?,?,?,?,?,?)",
	9
};

/* What one attempt claims; keys are taken all or none. */
struct lock_claim {
	const struct lock_table *table;
	const char *const *keys;
	size_t nkeys;
	const char *command, *domain;
	long lease_ms;
};

/* Who holds a lock, seen from this connection. */
enum holder_kind { HELD_ELSEWHERE, HELD_BY_THIS_PROCESS, HELD_HERE };

/* The lock row at stmt: how its holder is named, and why it may be taken
 * over (NULL: its holder is alive and within its lease). */
static const char *judge_lock(struct mm_state *st, sqlite3_stmt *stmt, char *who, size_t wholen,
                              enum holder_kind *kind)
{
	const char *owner = (const char *)sqlite3_column_text(stmt, 0);
	long long pid = sqlite3_column_int64(stmt, 1);
	const char *host = (const char *)sqlite3_column_text(stmt, 2);
	const char *command = (const char *)sqlite3_column_text(stmt, 3);
	const char *since = (const char *)sqlite3_column_text(stmt, 4);
	const char *domain = (const char *)sqlite3_column_text(stmt, 7);

	/* Domain locks name no connection: this process's is held all the
	 * same (one command at a time per domain). */
	*kind = HELD_ELSEWHERE;
	if (sqlite3_column_type(stmt, 6) != SQLITE_NULL && pid == (long long)getpid() &&
	    strcmp(host, st->host) == 0)
		*kind = sqlite3_column_int64(stmt, 6) == st->holder ? HELD_HERE : HELD_BY_THIS_PROCESS;
	snprintf(who, wholen, "%s (pid %lld on %s, '%s'%s%s since %s)", owner, pid, host, command,
	         domain ? " of " : "", domain ? domain : "", since);
	if (sqlite3_column_int64(stmt, 5) < mm_host_wall_ms(NULL))
		return "its lease expired";
	if (process_gone(host, st->host, pid))
		return "that process is gone";
	return NULL;
}

/* Whether key can be taken: 1 yes (a takeover is added to notice), 0 held
 * (holder names who; *kind whether by this process), -1 error. */
static int lock_free(struct mm_state *st, const struct lock_table *t, const char *key,
                     char *holder, size_t holderlen, enum holder_kind *kind, char *notice,
                     size_t noticelen, char *err)
{
	sqlite3_stmt *stmt = NULL;
	const char *why;
	char who[512];
	int src, rc = 1;

	src = sqlite3_prepare_v2(st->db, t->select_sql, -1, &stmt, NULL);
	if (src == SQLITE_OK) {
		sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
		src = sqlite3_step(stmt);
	}
	if (src == SQLITE_ROW) {
		why = judge_lock(st, stmt, who, sizeof(who), kind);
		if (*kind != HELD_HERE && why) {
			size_t used = strlen(notice);

			snprintf(notice + used, noticelen - used, "%stook over the lock on %s from %s: %s",
			         used ? "; " : "", key, who, why);
		} else if (*kind != HELD_HERE) {
			snprintf(holder, holderlen, "%s", who);
			rc = 0;
		}
		src = SQLITE_DONE;
	}
	sqlite3_finalize(stmt);
	if (src != SQLITE_DONE) {
		mm_state_db_error(st, src, "reading locks", err);
		rc = -1;
	}
	return rc;
}

/* One attempt: 1 = taken, 0 = a key is held by a live owner (named in
 * blocked and holder, *kind), -1 = error. */
static int try_lock(struct mm_state *st, const struct lock_claim *claim, const char **blocked,
                    char *holder, size_t holderlen, enum holder_kind *kind, char *notice,
                    size_t noticelen, char *err)
{
	char at[32], pid[24], lease[24], serial[24];
	const char *params[] = { NULL, st->actor, pid, st->host, claim->command, at, lease, serial,
	                         claim->domain };
	size_t i;
	int rc, taken = 1;

	mm_state_now_iso(at, sizeof(at));
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	snprintf(lease, sizeof(lease), "%lld", (long long)(mm_host_wall_ms(NULL) + claim->lease_ms));
	snprintf(serial, sizeof(serial), "%ld", st->holder);
	if (mm_state_begin(st, err) != MM_OK)
		return -1;
	notice[0] = '\0';
	for (i = 0; i < claim->nkeys && taken == 1; i++) {
		taken = lock_free(st, claim->table, claim->keys[i], holder, holderlen, kind, notice,
		                  noticelen, err);
		*blocked = claim->keys[i];
	}
	rc = taken < 0 ? MM_ERR : MM_OK;
	for (i = 0; taken == 1 && rc == MM_OK && i < claim->nkeys; i++) {
		params[0] = claim->keys[i];
		rc = mm_state_run(st, claim->table->insert_sql, claim->table->nparams, params, err);
	}
	if (mm_state_finish(st, rc, err) != MM_OK)
		return -1;
	return taken;
}

/* Tries until taken or wait_ms ran out; waiting (may be NULL) hears of
 * each new holder waited for.  Another connection of this process (a
 * runbook's worker on the same tenant) is waited for beyond wait_ms: its
 * call ends within the plugin's call timeout, and its lease bounds the
 * wait all the same. */
static int lock_wait(struct mm_state *st, const struct lock_claim *claim, long wait_ms,
                     void (*waiting)(void *arg, const char *key, const char *holder), void *arg,
                     char *notice, size_t noticelen, char *err)
{
	char holder[512] = "", told[512] = "";
	long long deadline = mm_host_wall_ms(NULL) + wait_ms;
	enum holder_kind kind = HELD_ELSEWHERE;
	const char *blocked = NULL;
	int taken;

	for (;;) {
		taken = try_lock(st, claim, &blocked, holder, sizeof(holder), &kind, notice, noticelen,
		                 err);
		if (taken < 0)
			return MM_ERR;
		if (taken)
			return MM_OK;
		if (kind != HELD_BY_THIS_PROCESS && mm_host_wall_ms(NULL) >= deadline)
			break;
		if (waiting && strcmp(told, holder) != 0) {
			waiting(arg, blocked, holder);
			snprintf(told, sizeof(told), "%s", holder);
		}
		usleep(LOCK_POLL_MS * 1000);
	}
	snprintf(err, MM_ERR_MAX, "%s is locked by %s; gave up after %ld s", blocked, holder,
	         wait_ms / 1000);
	return MM_ERR;
}

int mm_state_lock_domain(struct mm_state *st, const char *domain, const char *command,
                         long lease_ms, long wait_ms, char *notice, size_t noticelen,
                         char *err)
{
	const struct lock_claim claim = { &domain_locks, &domain, 1, command, NULL, lease_ms };

	return lock_wait(st, &claim, wait_ms, NULL, NULL, notice, noticelen, err);
}

/* Splits resources ("KIND NAME" lines) into keys[]; the text is kept in
 * buf.  MM_ERR when there are more than max or one is too long. */
static int split_resources(const char *resources, char *buf, size_t buflen, const char **keys,
                           size_t max, size_t *n, char *err)
{
	char *line, *save = NULL;

	*n = 0;
	if (strlen(resources) >= buflen) {
		snprintf(err, MM_ERR_MAX, "shared resources too long to lock: %.80s...", resources);
		return MM_ERR;
	}
	memcpy(buf, resources, strlen(resources) + 1);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (*n == max) {
			snprintf(err, MM_ERR_MAX, "more than %zu shared resources to lock: %.80s", max,
			         resources);
			return MM_ERR;
		}
		keys[(*n)++] = line;
	}
	return MM_OK;
}

/* Whether key is one of the n keys. */
static int has_key(const char *const *keys, size_t n, const char *key)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(keys[i], key) == 0)
			return 1;
	return 0;
}

/* Makes out (outlen bytes) the locks this connection holds with the n
 * keys added (add) or taken away. */
static int held_with(const struct mm_state *st, const char *const *keys, size_t n, int add,
                     char *out, size_t outlen, char *err)
{
	char buf[MM_SHARED_TEXT_MAX];
	const char *held[SHARED_KEYS_MAX];
	size_t nheld, i, used = 0, count = 0;

	if (split_resources(st->held, buf, sizeof(buf), held, SHARED_KEYS_MAX, &nheld, err) != MM_OK)
		return MM_ERR;
	out[0] = '\0';
	for (i = 0; i < nheld + (add ? n : 0); i++) {
		const char *key = i < nheld ? held[i] : keys[i - nheld];
		int dup = i < nheld ? !add && has_key(keys, n, key)
		                    : has_key(held, nheld, key) || has_key(keys, i - nheld, key);

		if (dup)
			continue;
		if (++count > SHARED_KEYS_MAX || used + strlen(key) + 2 > outlen) {
			snprintf(err, MM_ERR_MAX, "too many shared resources held at once to lock %s too", key);
			return MM_ERR;
		}
		used += (size_t)snprintf(out + used, outlen - used, "%s\n", key);
	}
	return MM_OK;
}

int mm_state_lock_shared(struct mm_state *st, const char *resources, const char *domain,
                         const char *command, long lease_ms, long wait_ms,
                         void (*waiting)(void *arg, const char *resource, const char *holder),
                         void *arg, char *notice, size_t noticelen, char *err)
{
	char buf[MM_SHARED_TEXT_MAX], held[MM_SHARED_TEXT_MAX];
	const char *keys[SHARED_KEYS_MAX];
	struct lock_claim claim = { &shared_locks, keys, 0, command, domain, lease_ms };

	notice[0] = '\0';
	if (split_resources(resources, buf, sizeof(buf), keys, SHARED_KEYS_MAX, &claim.nkeys,
	                    err) != MM_OK ||
	    held_with(st, keys, claim.nkeys, 1, held, sizeof(held), err) != MM_OK ||
	    lock_wait(st, &claim, wait_ms, waiting, arg, notice, noticelen, err) != MM_OK)
		return MM_ERR;
	memcpy(st->held, held, sizeof(held));
	return MM_OK;
}

/* A shared lock this connection took and no longer holds: its lease ran
 * out and another took it over (or took it and let go). */
static int lost_lock(struct mm_state *st, const char *key, char *err)
{
	sqlite3_stmt *stmt = NULL;
	enum holder_kind kind;
	char who[512] = "nobody now";
	int src;

	src = sqlite3_prepare_v2(st->db, shared_locks.select_sql, -1, &stmt, NULL);
	if (src == SQLITE_OK) {
		sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
		src = sqlite3_step(stmt);
	}
	if (src == SQLITE_ROW)
		judge_lock(st, stmt, who, sizeof(who), &kind);
	else if (src != SQLITE_DONE)
		mm_state_db_error(st, src, "reading locks", err);
	sqlite3_finalize(stmt);
	if (src == SQLITE_ROW || src == SQLITE_DONE)
		snprintf(err, MM_ERR_MAX, "the lock on %s is no longer this process's (its lease ran out;"
		         " held by %s): stopped before the next write", key, who);
	return MM_ERR;
}

int mm_state_renew_shared(struct mm_state *st, long lease_ms, char *err)
{
	char buf[MM_SHARED_TEXT_MAX], lease[24], pid[24], serial[24];
	const char *keys[SHARED_KEYS_MAX];
	const char *params[] = { lease, NULL, st->host, pid, serial };
	size_t n, i;
	int rc;

	snprintf(lease, sizeof(lease), "%lld", (long long)(mm_host_wall_ms(NULL) + lease_ms));
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	snprintf(serial, sizeof(serial), "%ld", st->holder);
	if (split_resources(st->held, buf, sizeof(buf), keys, SHARED_KEYS_MAX, &n, err) != MM_OK ||
	    mm_state_begin(st, err) != MM_OK)
		return MM_ERR;
	for (i = 0, rc = MM_OK; rc == MM_OK && i < n; i++) {
		params[1] = keys[i];
		rc = mm_state_run(st, "UPDATE shared_locks SET lease_until = ? WHERE resource = ?"
		                  " AND host = ? AND pid = ? AND holder = ?", 5, params, err);
		if (rc == MM_OK && sqlite3_changes(st->db) == 0)
			rc = lost_lock(st, keys[i], err);
	}
	return mm_state_finish(st, rc, err);
}

int mm_state_unlock_shared(struct mm_state *st, const char *resources, char *err)
{
	char buf[MM_SHARED_TEXT_MAX], held[MM_SHARED_TEXT_MAX], pid[24], serial[24];
	const char *keys[SHARED_KEYS_MAX];
	const char *params[] = { NULL, st->host, pid, serial };
	size_t n, i;
	int rc;

	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	snprintf(serial, sizeof(serial), "%ld", st->holder);
	if (split_resources(resources, buf, sizeof(buf), keys, SHARED_KEYS_MAX, &n, err) != MM_OK ||
	    mm_state_begin(st, err) != MM_OK)
		return MM_ERR;
	for (i = 0, rc = MM_OK; rc == MM_OK && i < n; i++) {
		params[0] = keys[i];
		rc = mm_state_run(st, "DELETE FROM shared_locks WHERE resource = ? AND host = ?"
		                  " AND pid = ? AND holder = ?", 4, params, err);
	}
	if (rc == MM_OK)
		rc = held_with(st, keys, n, 0, held, sizeof(held), err);
	if ((rc = mm_state_finish(st, rc, err)) == MM_OK)
		memcpy(st->held, held, sizeof(held));
	return rc;
}

/* One stale lock, removed in the caller's transaction. */
static int drop_stale_lock(struct mm_state *st, sqlite3_stmt *row, char *line, size_t len,
                           char *err)
{
	const char *domain = (const char *)sqlite3_column_text(row, 8);
	char who[512], pidtext[24];
	const char *params[] = { domain, pidtext };
	enum holder_kind kind;
	const char *why;

	line[0] = '\0';
	if (!(why = judge_lock(st, row, who, sizeof(who), &kind)))
		return MM_OK;
	snprintf(pidtext, sizeof(pidtext), "%lld", sqlite3_column_int64(row, 1));
	snprintf(line, len, "removed the lock on %s left by %s: %s", domain, who, why);
	return mm_state_run(st, "DELETE FROM locks WHERE domain = ? AND pid = ?", 2, params, err);
}

int mm_state_drop_stale_locks(struct mm_state *st, const char *domain,
                              void (*notice)(void *arg, const char *line), void *arg, char *err)
{
	sqlite3_stmt *stmt = NULL;
	char line[768];
	int src, rc;

	if ((rc = mm_state_begin(st, err)) != MM_OK)
		return rc;
	src = sqlite3_prepare_v2(st->db, "SELECT owner, pid, host, command, acquired_at,"
	                         " lease_until, NULL, NULL, domain FROM locks"
	                         " WHERE (?1 IS NULL OR domain = ?1) AND domain NOT IN (SELECT domain FROM migrations WHERE finished_at IS NULL)",
	                         -1, &stmt, NULL);
	if (src == SQLITE_OK)
		src = sqlite3_bind_text(stmt, 1, domain, -1, SQLITE_STATIC);
	while (rc == MM_OK && (src == SQLITE_OK || src == SQLITE_ROW) &&
	       (src = sqlite3_step(stmt)) == SQLITE_ROW) {
		rc = drop_stale_lock(st, stmt, line, sizeof(line), err);
		if (rc == MM_OK && line[0])
			notice(arg, line);
	}
	if (rc == MM_OK && src != SQLITE_DONE)
		rc = mm_state_db_error(st, src, "reading locks", err);
	sqlite3_finalize(stmt);
	return mm_state_finish(st, rc, err);
}

int mm_state_unlock_domain(struct mm_state *st, const char *domain, char *err)
{
	char pid[24];
	const char *params[] = { domain, pid };

	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	return mm_state_run(st, "DELETE FROM locks WHERE domain = ? AND pid = ?", 2, params, err);
}

int mm_state_each_audit(struct mm_state *st, const char *domain,
                        int (*fn)(const struct mm_audit_row *row, void *arg), void *arg,
                        char *err)
{
	sqlite3_stmt *stmt = NULL;
	int src, rc = MM_OK;

	src = sqlite3_prepare_v2(st->db, "SELECT id, at, actor, domain, action, detail FROM audit"
	                         " WHERE ?1 IS NULL OR domain = ?1 ORDER BY id", -1, &stmt, NULL);
	if (src == SQLITE_OK)
		src = sqlite3_bind_text(stmt, 1, domain, -1, SQLITE_STATIC);
	while (src == SQLITE_OK || src == SQLITE_ROW) {
		struct mm_audit_row row;

		src = sqlite3_step(stmt);
		if (src != SQLITE_ROW)
			break;
		row.id = sqlite3_column_int64(stmt, 0);
		row.at = (const char *)sqlite3_column_text(stmt, 1);
		row.actor = (const char *)sqlite3_column_text(stmt, 2);
		row.domain = (const char *)sqlite3_column_text(stmt, 3);
		row.action = (const char *)sqlite3_column_text(stmt, 4);
		row.detail = (const char *)sqlite3_column_text(stmt, 5);
		rc = fn(&row, arg);
		if (rc != MM_OK)
			goto out;
	}
	if (src != SQLITE_DONE)
		rc = mm_state_db_error(st, src, "reading the audit log", err);
out:
	sqlite3_finalize(stmt);
	return rc;
}
