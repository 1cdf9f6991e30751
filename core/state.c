#include "state.h"
#include "state_internal.h"

#include "host.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOCK_POLL_MS 200
/* A plugin names a resource or two (plugin.h: resources). */
#define SHARED_KEYS_MAX 8


void mm_state_now_iso(char *buf, size_t len)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int mm_state_db_error(struct mm_state *st, int src, const char *what, char *err)
{
	if (src == MM_DB_BUSY) {
		char who[320];

		mm_db_describe_writer(st->db, who, sizeof(who));
		snprintf(err, MM_ERR_MAX, "state DB %s is locked by %s; gave up waiting", st->path, who);
	} else {
		snprintf(err, MM_ERR_MAX, "state DB %s: %s: %s", st->path, what, mm_db_errmsg(st->db));
	}
	return MM_ERR;
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
	/* MAILMODE_HOST_ID: the name this host goes by in a shared state, where
	 * two hosts' names may be alike (and two test processes on one host
	 * stand for two hosts: neither judges the other's pid). */
	if (getenv("MAILMODE_HOST_ID") && *getenv("MAILMODE_HOST_ID"))
		snprintf(st->host, sizeof(st->host), "%s", getenv("MAILMODE_HOST_ID"));
	else if (gethostname(st->host, sizeof(st->host)) != 0)
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

	if (mm_db_is_url(path)) {
		free(copy);
		return MM_OK;
	}
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
	char name[512];
	int rc = MM_ERR;

	*out = NULL;
	mm_db_display(path, name, sizeof(name));
	if (!st || !(st->path = strdup(name))) {
		snprintf(err, MM_ERR_MAX, "out of memory");
		goto fail;
	}
	/* SQLite would only say "unable to open database file". */
	if (mm_state_check_path(path, err) != MM_OK)
		goto fail;
	set_actor(st);
	st->holder = __atomic_add_fetch(&last_holder, 1, __ATOMIC_RELAXED);
	if ((rc = mm_db_open(path, busy_ms, &st->db, err)) != MM_OK)
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
	mm_db_close(st->db);
	free(st->path);
	free(st);
}

const char *mm_state_actor(const struct mm_state *st)
{
	return st->actor;
}

char *mm_state_column_dup(struct mm_db_stmt *stmt, int col)
{
	const char *v = mm_db_column_text(stmt, col);

	return v ? strdup(v) : NULL;
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

static void read_domain_row(struct mm_db_stmt *stmt, struct mm_domain_row *row)
{
	row->domain = mm_state_column_dup(stmt, 0);
	row->mode = mm_state_column_dup(stmt, 1);
	row->profile = mm_state_column_dup(stmt, 2);
	row->receipt = mm_state_column_dup(stmt, 3);
	row->adopted = (int)mm_db_column_int64(stmt, 4);
	row->updated_at = mm_state_column_dup(stmt, 5);
}

#define DOMAIN_COLUMNS "domain, mode, profile, receipt, adopted, updated_at"

int mm_state_get_domain(struct mm_state *st, const char *domain, struct mm_domain_row *row,
                        int *found, char *err)
{
	struct mm_db_stmt *stmt = NULL;
	int src, rc = MM_ERR;

	memset(row, 0, sizeof(*row));
	*found = 0;
	src = mm_db_prepare(st->db, "SELECT " DOMAIN_COLUMNS " FROM domains WHERE domain = ?", &stmt);
	if (src != MM_DB_OK)
		goto out;
	mm_db_bind_text(stmt, 1, domain);
	src = mm_db_step(stmt);
	if (src == MM_DB_ROW) {
		read_domain_row(stmt, row);
		*found = 1;
		src = MM_DB_DONE;
	}
out:
	if (src == MM_DB_DONE)
		rc = MM_OK;
	else
		mm_state_db_error(st, src, "reading domain", err);
	mm_db_finalize(stmt);
	return rc;
}

int mm_state_each_domain(struct mm_state *st,
                         int (*fn)(const struct mm_domain_row *row, void *arg), void *arg,
                         char *err)
{
	struct mm_db_stmt *stmt = NULL;
	struct mm_domain_row row;
	int src, rc = MM_OK;

	src = mm_db_prepare(st->db, "SELECT " DOMAIN_COLUMNS " FROM domains ORDER BY domain", &stmt);
	while (src == MM_DB_OK || src == MM_DB_ROW) {
		src = mm_db_step(stmt);
		if (src != MM_DB_ROW)
			break;
		read_domain_row(stmt, &row);
		rc = fn(&row, arg);
		mm_domain_row_clear(&row);
		if (rc != MM_OK)
			goto out;
	}
	if (src != MM_DB_DONE)
		rc = mm_state_db_error(st, src, "listing domains", err);
out:
	mm_db_finalize(stmt);
	return rc;
}

/* Runs one statement with text parameters (NULL binds NULL). */
int mm_state_run(struct mm_state *st, const char *sql, int nparams, const char *const *params,
               char *err)
{
	struct mm_db_stmt *stmt = NULL;
	int src, i;

	src = mm_db_prepare(st->db, sql, &stmt);
	for (i = 0; src == MM_DB_OK && i < nparams; i++)
		src = mm_db_bind_text(stmt, i + 1, params[i]);
	if (src == MM_DB_OK)
		src = mm_db_step(stmt);
	mm_db_finalize(stmt);
	if (src == MM_DB_DONE || src == MM_DB_ROW)
		return MM_OK;
	return mm_state_db_error(st, src, "writing", err);
}

int mm_state_now_ms(struct mm_state *st, long long *ms, char *err)
{
	int src = mm_db_now_ms(st->db, ms);

	return src == MM_DB_OK ? MM_OK : mm_state_db_error(st, src, "reading its clock", err);
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
	int src = mm_db_begin(st->db);

	return src == MM_DB_OK ? MM_OK : mm_state_db_error(st, src, "BEGIN", err);
}

int mm_state_finish(struct mm_state *st, int rc, char *err)
{
	int src;

	if (rc == MM_OK) {
		src = mm_db_commit(st->db);
		if (src == MM_DB_OK)
			return MM_OK;
		rc = mm_state_db_error(st, src, "COMMIT", err);
	}
	mm_db_rollback(st->db);
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
	"INSERT INTO locks(domain, owner, pid, host, command, acquired_at, lease_until)"
	" VALUES(?,?,?,?,?,?,?) ON CONFLICT(domain) DO UPDATE SET owner = excluded.owner,"
	" pid = excluded.pid, host = excluded.host, command = excluded.command,"
	" acquired_at = excluded.acquired_at, lease_until = excluded.lease_until",
	7
};

static const struct lock_table shared_locks = {
	"SELECT owner, pid, host, command, acquired_at, lease_until, holder, domain"
	" FROM shared_locks WHERE resource = ?",
	"INSERT INTO shared_locks(resource, owner, pid, host, command, acquired_at,"
	" lease_until, holder, domain) VALUES(?,?,?,?,?,?,?,?,?) ON CONFLICT(resource) DO UPDATE"
	" SET owner = excluded.owner, pid = excluded.pid, host = excluded.host,"
	" command = excluded.command, acquired_at = excluded.acquired_at,"
	" lease_until = excluded.lease_until, holder = excluded.holder, domain = excluded.domain",
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
static const char *judge_lock(struct mm_state *st, struct mm_db_stmt *stmt, long long now,
                              char *who, size_t wholen, enum holder_kind *kind)
{
	const char *owner = mm_db_column_text(stmt, 0);
	long long pid = mm_db_column_int64(stmt, 1);
	const char *host = mm_db_column_text(stmt, 2);
	const char *command = mm_db_column_text(stmt, 3);
	const char *since = mm_db_column_text(stmt, 4);
	const char *domain = mm_db_column_text(stmt, 7);

	/* Domain locks name no connection: this process's is held all the
	 * same (one command at a time per domain). */
	*kind = HELD_ELSEWHERE;
	if (!mm_db_column_is_null(stmt, 6) && pid == (long long)getpid() &&
	    strcmp(host, st->host) == 0)
		*kind = mm_db_column_int64(stmt, 6) == st->holder ? HELD_HERE : HELD_BY_THIS_PROCESS;
	snprintf(who, wholen, "%s (pid %lld on %s, '%s'%s%s since %s)", owner, pid, host, command,
	         domain ? " of " : "", domain ? domain : "", since);
	if (mm_db_column_int64(stmt, 5) < now)
		return "its lease expired";
	if (process_gone(host, st->host, pid))
		return "that process is gone";
	return NULL;
}

/* The lock row of key (sql selects it as judge_lock reads it), judged:
 * 1 there is one (who, *kind and *why as judge_lock says), 0 none, -1
 * error. */
static int read_lock(struct mm_state *st, const char *sql, const char *key, long long now,
                     char *who, size_t wholen, enum holder_kind *kind, const char **why,
                     char *err)
{
	struct mm_db_stmt *stmt = NULL;
	int src, rc = 0;

	src = mm_db_prepare(st->db, sql, &stmt);
	if (src == MM_DB_OK && (src = mm_db_bind_text(stmt, 1, key)) == MM_DB_OK)
		src = mm_db_step(stmt);
	if (src == MM_DB_ROW) {
		*why = judge_lock(st, stmt, now, who, wholen, kind);
		rc = 1;
		src = MM_DB_DONE;
	}
	mm_db_finalize(stmt);
	if (src != MM_DB_DONE) {
		mm_state_db_error(st, src, "reading locks", err);
		rc = -1;
	}
	return rc;
}

/* Whether key can be taken: 1 yes (a takeover is added to notice), 0 held
 * (holder names who; *kind whether by this process), -1 error. */
static int lock_free(struct mm_state *st, const struct lock_table *t, const char *key,
                     long long now, char *holder, size_t holderlen, enum holder_kind *kind,
                     char *notice, size_t noticelen, char *err)
{
	const char *why = NULL;
	char who[512];
	size_t used = strlen(notice);
	int found = read_lock(st, t->select_sql, key, now, who, sizeof(who), kind, &why, err);

	if (found <= 0)
		return found < 0 ? -1 : 1;
	if (*kind == HELD_HERE)
		return 1;
	if (why) {
		snprintf(notice + used, noticelen - used, "%stook over the lock on %s from %s: %s",
		         used ? "; " : "", key, who, why);
		return 1;
	}
	snprintf(holder, holderlen, "%s", who);
	return 0;
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
	long long now;
	size_t i;
	int rc, taken = 1;

	mm_state_now_iso(at, sizeof(at));
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	snprintf(serial, sizeof(serial), "%ld", st->holder);
	if (mm_state_begin(st, err) != MM_OK)
		return -1;
	if (mm_state_now_ms(st, &now, err) != MM_OK) {
		mm_state_finish(st, MM_ERR, err);
		return -1;
	}
	snprintf(lease, sizeof(lease), "%lld", now + claim->lease_ms);
	notice[0] = '\0';
	for (i = 0; i < claim->nkeys && taken == 1; i++) {
		taken = lock_free(st, claim->table, claim->keys[i], now, holder, holderlen, kind,
		                  notice, noticelen, err);
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

/* Tries until taken or wait_ms ran out, on *stp: the connection the
 * waiter's pause hands back, if any (waiter may be NULL).  Another
 * connection of this process (a runbook's worker on the same tenant) is
 * waited for beyond wait_ms: its call ends within the plugin's call
 * timeout, and its lease bounds the wait all the same. */
static int lock_wait(struct mm_state **stp, const struct lock_claim *claim, long wait_ms,
                     const struct mm_lock_waiter *waiter, char *notice, size_t noticelen,
                     char *err)
{
	char holder[512] = "", told[512] = "";
	long long deadline = mm_host_wall_ms(NULL) + wait_ms;
	enum holder_kind kind = HELD_ELSEWHERE;
	const char *blocked = NULL;
	int taken;

	for (;;) {
		taken = try_lock(*stp, claim, &blocked, holder, sizeof(holder), &kind, notice,
		                 noticelen, err);
		if (taken < 0)
			return MM_ERR;
		if (taken)
			return MM_OK;
		if (kind != HELD_BY_THIS_PROCESS && mm_host_wall_ms(NULL) >= deadline)
			break;
		if (waiter && waiter->waiting && strcmp(told, holder) != 0) {
			waiter->waiting(waiter->arg, blocked, holder);
			snprintf(told, sizeof(told), "%s", holder);
		}
		if (waiter && waiter->pause)
			*stp = waiter->pause(waiter->arg, LOCK_POLL_MS);
		else
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

	return lock_wait(&st, &claim, wait_ms, NULL, notice, noticelen, err);
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

int mm_state_holds_shared(const struct mm_state *st, const char *resource)
{
	char buf[MM_SHARED_TEXT_MAX], err[MM_ERR_MAX];
	const char *held[SHARED_KEYS_MAX];
	size_t n;

	return split_resources(st->held, buf, sizeof(buf), held, SHARED_KEYS_MAX, &n, err) == MM_OK &&
	       has_key(held, n, resource);
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
                         const struct mm_lock_waiter *waiter, char *notice, size_t noticelen,
                         char *err)
{
	char buf[MM_SHARED_TEXT_MAX], held[MM_SHARED_TEXT_MAX], why[MM_ERR_MAX];
	const char *keys[SHARED_KEYS_MAX];
	struct lock_claim claim = { &shared_locks, keys, 0, command, domain, lease_ms };

	notice[0] = '\0';
	if (split_resources(resources, buf, sizeof(buf), keys, SHARED_KEYS_MAX, &claim.nkeys,
	                    err) != MM_OK ||
	    held_with(st, keys, claim.nkeys, 1, held, sizeof(held), err) != MM_OK ||
	    lock_wait(&st, &claim, wait_ms, waiter, notice, noticelen, err) != MM_OK)
		return MM_ERR;
	/* Taken on the connection the wait ended on, which may hold others. */
	if (held_with(st, keys, claim.nkeys, 1, held, sizeof(held), err) != MM_OK) {
		mm_state_unlock_shared(st, resources, why);
		return MM_ERR;
	}
	memcpy(st->held, held, sizeof(held));
	return MM_OK;
}

/* A shared lock this connection took and no longer holds: its lease ran
 * out and another took it over (or took it and let go). */
static int lost_lock(struct mm_state *st, const char *key, long long now, char *err)
{
	enum holder_kind kind;
	const char *why = NULL;
	char who[512] = "nobody now";

	if (read_lock(st, shared_locks.select_sql, key, now, who, sizeof(who), &kind, &why, err) < 0)
		return MM_ERR;
	snprintf(err, MM_ERR_MAX, "the lock on %s is no longer this process's (its lease ran out;"
	         " held by %s): stopped before the next write", key, who);
	return MM_ERR;
}

/* Extends this connection's lease of key (a shared lock or a slot) to
 * lease: MM_OK, or MM_ERR (*gone = 1 and its holder now named when it is
 * no longer ours). */
static int renew_held(struct mm_state *st, const char *key, const char *lease, long long now,
                      int *gone, char *err)
{
	char pid[24], serial[24];
	const char *params[] = { lease, key, st->host, pid, serial };
	int rc;

	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	snprintf(serial, sizeof(serial), "%ld", st->holder);
	rc = mm_state_run(st, "UPDATE shared_locks SET lease_until = ? WHERE resource = ?"
	                  " AND host = ? AND pid = ? AND holder = ?", 5, params, err);
	*gone = rc == MM_OK && mm_db_changes(st->db) == 0;
	return *gone ? lost_lock(st, key, now, err) : rc;
}

int mm_state_renew_shared(struct mm_state *st, long lease_ms, char *err)
{
	char buf[MM_SHARED_TEXT_MAX], lease[24];
	const char *keys[SHARED_KEYS_MAX];
	long long now;
	size_t n, i;
	int rc, gone;

	if (split_resources(st->held, buf, sizeof(buf), keys, SHARED_KEYS_MAX, &n, err) != MM_OK ||
	    mm_state_begin(st, err) != MM_OK)
		return MM_ERR;
	rc = mm_state_now_ms(st, &now, err);
	snprintf(lease, sizeof(lease), "%lld", now + lease_ms);
	for (i = 0; rc == MM_OK && i < n; i++)
		rc = renew_held(st, keys[i], lease, now, &gone, err);
	return mm_state_finish(st, rc, err);
}

/* Deletes this connection's row of key (a shared lock or a slot). */
static int drop_held(struct mm_state *st, const char *key, char *err)
{
	char pid[24], serial[24];
	const char *params[] = { key, st->host, pid, serial };

	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	snprintf(serial, sizeof(serial), "%ld", st->holder);
	return mm_state_run(st, "DELETE FROM shared_locks WHERE resource = ? AND host = ?"
	                    " AND pid = ? AND holder = ?", 4, params, err);
}

int mm_state_unlock_shared(struct mm_state *st, const char *resources, char *err)
{
	char buf[MM_SHARED_TEXT_MAX], held[MM_SHARED_TEXT_MAX];
	const char *keys[SHARED_KEYS_MAX];
	size_t n, i;
	int rc;

	if (split_resources(resources, buf, sizeof(buf), keys, SHARED_KEYS_MAX, &n, err) != MM_OK ||
	    mm_state_begin(st, err) != MM_OK)
		return MM_ERR;
	for (i = 0, rc = MM_OK; rc == MM_OK && i < n; i++)
		rc = drop_held(st, keys[i], err);
	if (rc == MM_OK)
		rc = held_with(st, keys, n, 0, held, sizeof(held), err);
	if ((rc = mm_state_finish(st, rc, err)) == MM_OK)
		memcpy(st->held, held, sizeof(held));
	return rc;
}

/* Whether slot k of resource is free (1), held (0) or unknown (-1). */
static int slot_free(struct mm_state *st, const char *resource, int k, long long now,
                     char *key, size_t keylen, char *err)
{
	enum holder_kind kind;
	const char *why = NULL;
	char who[512];
	int found;

	snprintf(key, keylen, "%s #%d", resource, k);
	found = read_lock(st, shared_locks.select_sql, key, now, who, sizeof(who), &kind, &why, err);
	return found < 0 ? -1 : !found || why;
}

int mm_state_take_slots(struct mm_state *st, const char *const *resources, const int *limits,
                        size_t n, long lease_ms, int *slots, int *taken, char *err)
{
	char at[32], pid[24], lease[24], serial[24], key[MM_SHARED_TEXT_MAX + 16];
	const char *params[] = { key, st->actor, pid, st->host, "call", at, lease, serial, "" };
	long long now;
	int rc, k, free_;
	size_t i;

	*taken = 0;
	mm_state_now_iso(at, sizeof(at));
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	snprintf(serial, sizeof(serial), "%ld", st->holder);
	if ((rc = mm_state_begin(st, err)) != MM_OK)
		return rc;
	if ((rc = mm_state_now_ms(st, &now, err)) != MM_OK)
		return mm_state_finish(st, rc, err);
	snprintf(lease, sizeof(lease), "%lld", now + lease_ms);
	for (i = 0, free_ = 1; i < n && free_ == 1; i++)
		for (k = 1, free_ = 0, slots[i] = 0; k <= limits[i] && free_ == 0; k++)
			if ((free_ = slot_free(st, resources[i], k, now, key, sizeof(key), err)) == 1)
				slots[i] = k;
	if (free_ < 0)
		return mm_state_finish(st, MM_ERR, err);
	for (i = 0; free_ == 1 && rc == MM_OK && i < n; i++) {
		snprintf(key, sizeof(key), "%s #%d", resources[i], slots[i]);
		rc = mm_state_run(st, shared_locks.insert_sql, shared_locks.nparams, params, err);
	}
	rc = mm_state_finish(st, rc, err);
	*taken = rc == MM_OK && free_ == 1;
	return rc;
}

int mm_state_give_slots(struct mm_state *st, const char *const *resources, const int *slots,
                        size_t n, char *err)
{
	char key[MM_SHARED_TEXT_MAX + 16];
	size_t i;
	int rc;

	if ((rc = mm_state_begin(st, err)) != MM_OK)
		return rc;
	for (i = 0; rc == MM_OK && i < n; i++) {
		snprintf(key, sizeof(key), "%s #%d", resources[i], slots[i]);
		rc = drop_held(st, key, err);
	}
	return mm_state_finish(st, rc, err);
}

int mm_state_renew_slots(struct mm_state *st, const char *const *resources, const int *slots,
                         size_t n, long lease_ms, char *err)
{
	char key[MM_SHARED_TEXT_MAX + 16], lease[24], why[MM_ERR_MAX], lost[MM_ERR_MAX] = "";
	long long now;
	size_t i;
	int rc, gone;

	if ((rc = mm_state_begin(st, err)) != MM_OK)
		return rc;
	rc = mm_state_now_ms(st, &now, err);
	snprintf(lease, sizeof(lease), "%lld", now + lease_ms);
	for (i = 0; rc == MM_OK && i < n; i++) {
		snprintf(key, sizeof(key), "%s #%d", resources[i], slots[i]);
		/* The first lost slot is named; the others are renewed all the
		 * same: their calls are still within the cap. */
		rc = renew_held(st, key, lease, now, &gone, why);
		if (gone && !lost[0])
			memcpy(lost, why, sizeof(lost));
		if (gone)
			rc = MM_OK;
		else if (rc != MM_OK)
			memcpy(err, why, sizeof(why));
	}
	if ((rc = mm_state_finish(st, rc, err)) == MM_OK && lost[0]) {
		snprintf(err, MM_ERR_MAX, "%s", lost);
		rc = MM_ERR;
	}
	return rc;
}

/* One stale lock, removed in the caller's transaction. */
static int drop_stale_lock(struct mm_state *st, struct mm_db_stmt *row, long long now, char *line,
                           size_t len, char *err)
{
	const char *domain = mm_db_column_text(row, 8);
	char who[512], pidtext[24];
	const char *params[] = { domain, pidtext, mm_db_column_text(row, 2) };
	enum holder_kind kind;
	const char *why;

	line[0] = '\0';
	if (!(why = judge_lock(st, row, now, who, sizeof(who), &kind)))
		return MM_OK;
	snprintf(pidtext, sizeof(pidtext), "%lld", mm_db_column_int64(row, 1));
	snprintf(line, len, "removed the lock on %s left by %s: %s", domain, who, why);
	return mm_state_run(st, "DELETE FROM locks WHERE domain = ? AND pid = ? AND host = ?", 3,
	                    params, err);
}

int mm_state_drop_stale_locks(struct mm_state *st, const char *domain,
                              void (*notice)(void *arg, const char *line), void *arg, char *err)
{
	struct mm_db_stmt *stmt = NULL;
	char line[768];
	long long now;
	int src, rc;

	if ((rc = mm_state_begin(st, err)) != MM_OK)
		return rc;
	if ((rc = mm_state_now_ms(st, &now, err)) != MM_OK)
		return mm_state_finish(st, rc, err);
	src = mm_db_prepare(st->db, "SELECT owner, pid, host, command, acquired_at,"
	                         " lease_until, NULL, NULL, domain FROM locks"
	                         " WHERE (CAST(?1 AS TEXT) IS NULL OR domain = ?1) AND domain NOT IN (SELECT domain FROM migrations WHERE finished_at IS NULL)", &stmt);
	if (src == MM_DB_OK)
		src = mm_db_bind_text(stmt, 1, domain);
	while (rc == MM_OK && (src == MM_DB_OK || src == MM_DB_ROW) &&
	       (src = mm_db_step(stmt)) == MM_DB_ROW) {
		rc = drop_stale_lock(st, stmt, now, line, sizeof(line), err);
		if (rc == MM_OK && line[0])
			notice(arg, line);
	}
	if (rc == MM_OK && src != MM_DB_DONE)
		rc = mm_state_db_error(st, src, "reading locks", err);
	mm_db_finalize(stmt);
	return mm_state_finish(st, rc, err);
}

int mm_state_unlock_domain(struct mm_state *st, const char *domain, char *err)
{
	char pid[24];
	const char *params[] = { domain, pid, st->host };

	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	return mm_state_run(st, "DELETE FROM locks WHERE domain = ? AND pid = ? AND host = ?", 3,
	                    params, err);
}

int mm_state_each_audit(struct mm_state *st, const char *domain,
                        int (*fn)(const struct mm_audit_row *row, void *arg), void *arg,
                        char *err)
{
	struct mm_db_stmt *stmt = NULL;
	int src, rc = MM_OK;

	src = mm_db_prepare(st->db, "SELECT id, at, actor, domain, action, detail FROM audit"
	                         " WHERE CAST(?1 AS TEXT) IS NULL OR domain = ?1 ORDER BY id", &stmt);
	if (src == MM_DB_OK)
		src = mm_db_bind_text(stmt, 1, domain);
	while (src == MM_DB_OK || src == MM_DB_ROW) {
		struct mm_audit_row row;

		src = mm_db_step(stmt);
		if (src != MM_DB_ROW)
			break;
		row.id = mm_db_column_int64(stmt, 0);
		row.at = mm_db_column_text(stmt, 1);
		row.actor = mm_db_column_text(stmt, 2);
		row.domain = mm_db_column_text(stmt, 3);
		row.action = mm_db_column_text(stmt, 4);
		row.detail = mm_db_column_text(stmt, 5);
		rc = fn(&row, arg);
		if (rc != MM_OK)
			goto out;
	}
	if (src != MM_DB_DONE)
		rc = mm_state_db_error(st, src, "reading the audit log", err);
out:
	mm_db_finalize(stmt);
	return rc;
}
