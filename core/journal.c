/* Migrations and their journal in the state database. */
#include "state.h"
#include "state_internal.h"

#include "host.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIGRATION_COLUMNS \
	"id, domain, from_mode, to_mode, profile, step, old_receipt, old_adopted, new_receipt," \
	" options, verify_deadline, started_at, kind"
#define LOCK_LEASE_RENEW_MS (30LL * 60 * 1000)

void mm_migration_clear(struct mm_migration *m)
{
	free(m->domain);
	free(m->from_mode);
	free(m->to_mode);
	free(m->profile);
	free(m->step);
	free(m->old_receipt);
	free(m->new_receipt);
	free(m->options);
	free(m->started_at);
	free(m->kind);
	memset(m, 0, sizeof(*m));
}

static void read_migration(struct mm_db_stmt *stmt, struct mm_migration *m)
{
	m->id = mm_db_column_int64(stmt, 0);
	m->domain = mm_state_column_dup(stmt, 1);
	m->from_mode = mm_state_column_dup(stmt, 2);
	m->to_mode = mm_state_column_dup(stmt, 3);
	m->profile = mm_state_column_dup(stmt, 4);
	m->step = mm_state_column_dup(stmt, 5);
	m->old_receipt = mm_state_column_dup(stmt, 6);
	m->old_adopted = (int)mm_db_column_int64(stmt, 7);
	m->new_receipt = mm_state_column_dup(stmt, 8);
	m->options = mm_state_column_dup(stmt, 9);
	m->verify_deadline = mm_db_column_int64(stmt, 10);
	m->started_at = mm_state_column_dup(stmt, 11);
	m->kind = mm_state_column_dup(stmt, 12);
}

/* Crash hooks (see state.h): counted per process, or at a named row. */
static void maybe_crash_at(struct mm_state *st, const char *step, const char *phase)
{
	const char *after = getenv("MAILMODE_TEST_CRASH_AFTER");
	const char *at = getenv("MAILMODE_TEST_CRASH_AT");
	size_t len = strlen(step);

	if (after && ++st->journal_writes == atol(after))
		raise(SIGKILL);
	if (at && strncmp(at, step, len) == 0 && at[len] == ':' && strcmp(at + len + 1, phase) == 0)
		raise(SIGKILL);
}

static void maybe_crash(struct mm_state *st)
{
	maybe_crash_at(st, "", "");
}

static int append_journal(struct mm_state *st, long long id, const char *step, const char *phase,
                          const char *detail, char *err)
{
	char at[32], mid[24], ms[24];
	const char *params[] = { mid, mid, step, phase, detail, at, ms };

	mm_state_now_iso(at, sizeof(at));
	snprintf(ms, sizeof(ms), "%lld", (long long)mm_host_wall_ms(NULL));
	snprintf(mid, sizeof(mid), "%lld", id);
	return mm_state_run(st, "INSERT INTO journal(migration_id, seq, step, phase, detail, at, at_ms)"
	                        " VALUES(?1, (SELECT coalesce(max(seq), 0) + 1 FROM journal"
	                        "            WHERE migration_id = ?2), ?3, ?4, ?5, ?6, ?7)",
	                    7, params, err);
}

int mm_state_migration_open(struct mm_state *st, struct mm_migration *m, char *err)
{
	char at[32], adopted[4], deadline[24];
	const char *row_params[] = { m->domain, at };
	const char *kind = m->kind ? m->kind : "switch";
	const char *params[] = { m->domain, m->from_mode, m->to_mode, m->profile, m->old_receipt,
	                         adopted, m->options, deadline, at, kind };
	char action[48];
	int rc;

	mm_state_now_iso(at, sizeof(at));
	snprintf(adopted, sizeof(adopted), "%d", m->old_adopted);
	snprintf(deadline, sizeof(deadline), "%lld", m->verify_deadline);
	if ((rc = mm_state_begin(st, err)) != MM_OK)
		return rc;
	rc = mm_state_run(st, "INSERT INTO domains(domain, updated_at) VALUES(?, ?)"
	                      " ON CONFLICT DO NOTHING", 2,
	                  row_params, err);
	if (rc == MM_OK) {
		rc = mm_state_run(st, "INSERT INTO migrations(domain, from_mode, to_mode, profile, step,"
		                      " old_receipt, old_adopted, new_receipt, options, verify_deadline,"
		                      " started_at, kind) VALUES(?,?,?,?,'planned',?,?,NULL,?,?,?,?)",
		                  10, params, err);
		if (rc != MM_OK && mm_db_last_rc(st->db) == MM_DB_UNIQUE)
			snprintf(err, MM_ERR_MAX, "%s has an unfinished migration: run 'mailmode resume %s' or 'mailmode abort %s'",
			         m->domain, m->domain, m->domain), rc = MM_REFUSED;
	}
	if (rc == MM_OK) {
		m->id = mm_db_last_id(st->db);
		rc = append_journal(st, m->id, "planned", "end", m->to_mode ? m->to_mode : "none", err);
	}
	snprintf(action, sizeof(action), "%s-start", kind);
	if (rc == MM_OK)
		rc = mm_state_insert_audit(st, m->domain, action,
		                           m->to_mode ? m->to_mode : m->from_mode, err);
	rc = mm_state_finish(st, rc, err);
	if (rc == MM_OK)
		maybe_crash_at(st, "planned", "end");
	return rc;
}

static int query_migrations(struct mm_state *st, const char *domain,
                            int (*fn)(const struct mm_migration *m, void *arg), void *arg,
                            char *err)
{
	struct mm_db_stmt *stmt = NULL;
	struct mm_migration m;
	int src, rc = MM_OK;

	src = mm_db_prepare(st->db, "SELECT " MIGRATION_COLUMNS " FROM migrations"
	                         " WHERE finished_at IS NULL AND (CAST(?1 AS TEXT) IS NULL OR domain = ?1)"
	                         " ORDER BY id", &stmt);
	if (src == MM_DB_OK)
		src = mm_db_bind_text(stmt, 1, domain);
	while (src == MM_DB_OK || src == MM_DB_ROW) {
		src = mm_db_step(stmt);
		if (src != MM_DB_ROW)
			break;
		memset(&m, 0, sizeof(m));
		read_migration(stmt, &m);
		rc = fn(&m, arg);
		mm_migration_clear(&m);
		if (rc != MM_OK)
			goto out;
	}
	if (src != MM_DB_DONE)
		rc = mm_state_db_error(st, src, "reading migrations", err);
out:
	mm_db_finalize(stmt);
	return rc;
}

int mm_state_each_open_migration(struct mm_state *st,
                                 int (*fn)(const struct mm_migration *m, void *arg), void *arg,
                                 char *err)
{
	return query_migrations(st, NULL, fn, arg, err);
}

struct first_match {
	struct mm_migration *out;
	int found;
};

static int take_first(const struct mm_migration *m, void *arg)
{
	struct first_match *match = arg;

	/* Hand the strings over instead of copying them. */
	*match->out = *m;
	memset((struct mm_migration *)m, 0, sizeof(*m));
	match->found = 1;
	return MM_OK;
}

int mm_state_migration_get(struct mm_state *st, const char *domain, struct mm_migration *m,
                           int *found, char *err)
{
	struct first_match match = { .out = m };
	int rc;

	memset(m, 0, sizeof(*m));
	rc = query_migrations(st, domain, take_first, &match, err);
	*found = match.found;
	return rc;
}

/* A retry loop writes one row per step, however often it tries: the row
 * counts the attempts and keeps the last one's detail and time. */
static int coalesce_attempt(struct mm_state *st, long long id, const char *step,
                            const char *detail, int *done, char *err)
{
	char mid[24], at[32], ms[24];
	const char *params[] = { detail, at, mid, step, ms };
	int rc;

	*done = 0;
	mm_state_now_iso(at, sizeof(at));
	snprintf(ms, sizeof(ms), "%lld", (long long)mm_host_wall_ms(NULL));
	snprintf(mid, sizeof(mid), "%lld", id);
	rc = mm_state_run(st, "UPDATE journal SET attempts = attempts + 1, detail = ?1, last_at = ?2,"
	                      " last_ms = ?5"
	                      " WHERE migration_id = ?3 AND step = ?4 AND phase = 'attempt'"
	                      " AND seq = (SELECT max(seq) FROM journal WHERE migration_id = ?3)",
	                  5, params, err);
	if (rc == MM_OK)
		*done = mm_db_changes(st->db) > 0;
	return rc;
}

int mm_state_journal(struct mm_state *st, long long id, const char *step, const char *phase,
                     const char *detail, char *err)
{
	char mid[24], lease[24], pid[24];
	const char *step_params[] = { step, mid };
	const char *lease_params[] = { lease, mid, pid, st->host };
	int coalesced = 0, rc = MM_OK;
	long long now;

	snprintf(mid, sizeof(mid), "%lld", id);
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	if ((rc = mm_state_begin(st, err)) != MM_OK)
		return rc;
	rc = mm_state_now_ms(st, &now, err);
	snprintf(lease, sizeof(lease), "%lld", now + LOCK_LEASE_RENEW_MS);
	if (rc == MM_OK && strcmp(phase, "attempt") == 0)
		rc = coalesce_attempt(st, id, step, detail, &coalesced, err);
	if (rc == MM_OK && !coalesced)
		rc = append_journal(st, id, step, phase, detail, err);
	if (rc == MM_OK && strcmp(phase, "end") == 0)
		rc = mm_state_run(st, "UPDATE migrations SET step = ? WHERE id = ?", 2, step_params, err);
	if (rc == MM_OK)
		rc = mm_state_run(st, "UPDATE locks SET lease_until = ?1 WHERE pid = ?3 AND host = ?4"
		                      " AND domain = (SELECT domain FROM migrations WHERE id = ?2)",
		                  4, lease_params, err);
	rc = mm_state_finish(st, rc, err);
	if (rc == MM_OK && strcmp(phase, "attempt") != 0)
		maybe_crash_at(st, step, phase);
	return rc;
}

int mm_state_journal_has(struct mm_state *st, long long id, const char *step, const char *phase,
                         int *has, char *err)
{
	struct mm_db_stmt *stmt = NULL;
	int src;

	*has = 0;
	src = mm_db_prepare(st->db, "SELECT 1 FROM journal WHERE migration_id = ? AND step = ?"
	                         " AND phase = ? LIMIT 1", &stmt);
	if (src == MM_DB_OK) {
		mm_db_bind_int64(stmt, 1, id);
		mm_db_bind_text(stmt, 2, step);
		mm_db_bind_text(stmt, 3, phase);
		src = mm_db_step(stmt);
		if (src == MM_DB_ROW) {
			*has = 1;
			src = MM_DB_DONE;
		}
	}
	mm_db_finalize(stmt);
	return src == MM_DB_DONE ? MM_OK : mm_state_db_error(st, src, "reading the journal", err);
}

int mm_state_migration_set_receipt(struct mm_state *st, long long id, int old_mode,
                                   const char *receipt, const char *why, char *err)
{
	char mid[24];
	const char *params[] = { receipt, mid };
	int rc;

	snprintf(mid, sizeof(mid), "%lld", id);
	if ((rc = mm_state_begin(st, err)) != MM_OK)
		return rc;
	rc = mm_state_run(st, old_mode ? "UPDATE migrations SET old_receipt = ? WHERE id = ?"
	                               : "UPDATE migrations SET new_receipt = ? WHERE id = ?",
	                  2, params, err);
	if (rc == MM_OK && why)
		rc = append_journal(st, id, why, old_mode ? "old" : "new", receipt, err);
	rc = mm_state_finish(st, rc, err);
	if (rc == MM_OK && why)
		maybe_crash_at(st, why, old_mode ? "old" : "new");
	return rc;
}

int mm_state_keep_original(struct mm_state *st, long long id, const char *domain,
                           const char *mode, const char *snapshot, int *kept, char *err)
{
	char mid[24], at[32];
	const char *params[] = { domain, mode, snapshot, at, mid };
	int rc;

	*kept = 0;
	snprintf(mid, sizeof(mid), "%lld", id);
	mm_state_now_iso(at, sizeof(at));
	if ((rc = mm_state_begin(st, err)) != MM_OK)
		return rc;
	rc = mm_state_run(st, "INSERT INTO originals(domain, mode, snapshot, taken_at,"
	                      " migration_id) VALUES(?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", 5, params, err);
	if (rc == MM_OK && (*kept = mm_db_changes(st->db) > 0))
		rc = append_journal(st, id, "original", "kept", snapshot, err);
	if (rc == MM_OK && *kept)
		rc = mm_state_insert_audit(st, domain, "original-kept", snapshot, err);
	rc = mm_state_finish(st, rc, err);
	if (rc == MM_OK && *kept)
		maybe_crash(st);
	return rc;
}

static int read_text_row(struct mm_state *st, const char *sql, const char *a, const char *b,
                         char **out, char *err)
{
	struct mm_db_stmt *stmt = NULL;
	const char *v;
	int src;

	*out = NULL;
	src = mm_db_prepare(st->db, sql, &stmt);
	if (src == MM_DB_OK) {
		mm_db_bind_text(stmt, 1, a);
		mm_db_bind_text(stmt, 2, b);
		src = mm_db_step(stmt);
	}
	if (src == MM_DB_ROW) {
		v = mm_db_column_text(stmt, 0);
		if (v && !(*out = strdup(v)))
			src = MM_DB_ERROR;
		else
			src = MM_DB_DONE;
	}
	mm_db_finalize(stmt);
	return src == MM_DB_DONE ? MM_OK : mm_state_db_error(st, src, "reading", err);
}

int mm_state_get_original(struct mm_state *st, const char *domain, const char *mode,
                          char **snapshot, char *err)
{
	return read_text_row(st, "SELECT snapshot FROM originals WHERE domain = ? AND mode = ?"
	                         " AND restored_at IS NULL", domain, mode, snapshot, err);
}

static int read_open_migration(struct mm_state *st, long long id, struct mm_migration *m,
                               char *err)
{
	struct mm_db_stmt *stmt = NULL;
	int src, rc = MM_OK;

	src = mm_db_prepare(st->db, "SELECT " MIGRATION_COLUMNS " FROM migrations"
	                         " WHERE id = ? AND finished_at IS NULL", &stmt);
	if (src == MM_DB_OK) {
		mm_db_bind_int64(stmt, 1, id);
		src = mm_db_step(stmt);
	}
	if (src == MM_DB_ROW) {
		read_migration(stmt, m);
	} else if (src == MM_DB_DONE) {
		snprintf(err, MM_ERR_MAX, "migration %lld is not open", id);
		rc = MM_ERR;
	} else {
		rc = mm_state_db_error(st, src, "reading the migration", err);
	}
	mm_db_finalize(stmt);
	return rc;
}

/* What closing does to the domain's row: a migration that finished gives
 * it the new mode (none after a teardown); any other result leaves it. */
static int commit_domain(struct mm_state *st, const struct mm_migration *m, long long id,
                         char *err)
{
	char mid[24], at[32], adopted[4];
	const char *params[] = { at, mid, adopted };

	snprintf(mid, sizeof(mid), "%lld", id);
	snprintf(adopted, sizeof(adopted), "%d", strcmp(m->kind, "adopt") == 0);
	mm_state_now_iso(at, sizeof(at));
	/* The domain takes its new mode while the migration is still open: the
	 * one-mode trigger allows the change only then. */
	return mm_state_run(st, "UPDATE domains SET mode = m.to_mode,"
	                        " profile = CASE WHEN m.to_mode IS NULL THEN NULL ELSE m.profile END,"
	                        " receipt = m.new_receipt, adopted = ?3, updated_at = ?1"
	                        " FROM (SELECT to_mode, profile, new_receipt, domain FROM migrations"
	                        "       WHERE id = ?2) AS m WHERE domains.domain = m.domain",
	                    3, params, err);
}

/* The mode that is gone once the migration closes has had its original
 * put back: the next setup of it takes a new snapshot. */
static int release_original(struct mm_state *st, const struct mm_migration *m, int done,
                            char *err)
{
	const char *gone = done ? m->from_mode : m->to_mode;
	char at[32];
	const char *params[] = { at, m->domain, gone };

	if (!gone || (m->from_mode && m->to_mode && strcmp(m->from_mode, m->to_mode) == 0))
		return MM_OK;
	mm_state_now_iso(at, sizeof(at));
	return mm_state_run(st, "UPDATE originals SET restored_at = ? WHERE domain = ? AND mode = ?"
	                        " AND restored_at IS NULL", 3, params, err);
}

int mm_state_migration_close(struct mm_state *st, long long id, const char *result,
                             const char *detail, char *err)
{
	struct mm_migration m;
	char mid[24], at[32], action[64], pid[24];
	const char *close_params[] = { at, result, mid };
	const char *lock_params[] = { mid, pid, st->host };
	int done = strcmp(result, "done") == 0, rc;

	snprintf(mid, sizeof(mid), "%lld", id);
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	mm_state_now_iso(at, sizeof(at));
	memset(&m, 0, sizeof(m));
	if ((rc = mm_state_begin(st, err)) != MM_OK)
		return rc;
	rc = read_open_migration(st, id, &m, err);
	if (rc == MM_OK && done)
		rc = commit_domain(st, &m, id, err);
	if (rc == MM_OK && (done || strcmp(result, "rolled_back") == 0 ||
	                    strcmp(result, "aborted") == 0))
		rc = release_original(st, &m, done, err);
	if (rc == MM_OK)
		rc = append_journal(st, id, "close", "end", result, err);
	if (rc == MM_OK)
		rc = mm_state_run(st, "UPDATE migrations SET finished_at = ?, result = ?, step = 'closed'"
		                      " WHERE id = ?", 3, close_params, err);
	/* The lock goes with the migration: a kill right after the close must
	 * not leave a lock row for nobody. */
	if (rc == MM_OK)
		rc = mm_state_run(st, "DELETE FROM locks WHERE pid = ?2 AND host = ?3 AND domain ="
		                      " (SELECT domain FROM migrations WHERE id = ?1)",
		                  3, lock_params, err);
	if (done)
		snprintf(action, sizeof(action), "%s", m.kind ? m.kind : "switch");
	else
		snprintf(action, sizeof(action), "%s-%s", m.kind ? m.kind : "switch",
		         strcmp(result, "rolled_back") == 0 ? "rolled-back" : result);
	if (rc == MM_OK)
		rc = mm_state_insert_audit(st, m.domain, action, detail, err);
	rc = mm_state_finish(st, rc, err);
	mm_migration_clear(&m);
	if (rc == MM_OK)
		maybe_crash_at(st, "close", "end");
	return rc;
}
