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
	" options, verify_deadline, started_at"
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
	memset(m, 0, sizeof(*m));
}

static char *dup_column(sqlite3_stmt *stmt, int col)
{
	const unsigned char *v = sqlite3_column_text(stmt, col);

	return v ? strdup((const char *)v) : NULL;
}

static void read_migration(sqlite3_stmt *stmt, struct mm_migration *m)
{
	m->id = sqlite3_column_int64(stmt, 0);
	m->domain = dup_column(stmt, 1);
	m->from_mode = dup_column(stmt, 2);
	m->to_mode = dup_column(stmt, 3);
	m->profile = dup_column(stmt, 4);
	m->step = dup_column(stmt, 5);
	m->old_receipt = dup_column(stmt, 6);
	m->old_adopted = sqlite3_column_int(stmt, 7);
	m->new_receipt = dup_column(stmt, 8);
	m->options = dup_column(stmt, 9);
	m->verify_deadline = sqlite3_column_int64(stmt, 10);
	m->started_at = dup_column(stmt, 11);
}

/* Crash hook (see state.h): counted per process. */
static void maybe_crash(struct mm_state *st)
{
	const char *after = getenv("MAILMODE_TEST_CRASH_AFTER");

	if (after && ++st->journal_writes == atol(after))
		raise(SIGKILL);
}

static int append_journal(struct mm_state *st, long long id, const char *step, const char *phase,
                          const char *detail, char *err)
{
	char at[32], mid[24];
	const char *params[] = { mid, mid, step, phase, detail, at };

	mm_state_now_iso(at, sizeof(at));
	snprintf(mid, sizeof(mid), "%lld", id);
	return mm_state_run(st, "INSERT INTO journal(migration_id, seq, step, phase, detail, at)"
	                        " VALUES(?1, (SELECT coalesce(max(seq), 0) + 1 FROM journal"
	                        "            WHERE migration_id = ?2), ?3, ?4, ?5, ?6)",
	                    6, params, err);
}

int mm_state_migration_open(struct mm_state *st, struct mm_migration *m, char *err)
{
	char at[32], adopted[4], deadline[24];
	const char *row_params[] = { m->domain, at };
	const char *params[] = { m->domain, m->from_mode, m->to_mode, m->profile, m->old_receipt,
	                         adopted, m->options, deadline, at };
	int rc;

	mm_state_now_iso(at, sizeof(at));
	snprintf(adopted, sizeof(adopted), "%d", m->old_adopted);
	snprintf(deadline, sizeof(deadline), "%lld", m->verify_deadline);
	if ((rc = mm_state_begin(st, err)) != MM_OK)
		return rc;
	rc = mm_state_run(st, "INSERT OR IGNORE INTO domains(domain, updated_at) VALUES(?, ?)", 2,
	                  row_params, err);
	if (rc == MM_OK) {
		rc = mm_state_run(st, "INSERT INTO migrations(domain, from_mode, to_mode, profile, step,"
		                      " old_receipt, old_adopted, new_receipt, options, verify_deadline,"
		                      " started_at) VALUES(?,?,?,?,'planned',?,?,NULL,?,?,?)",
		                  9, params, err);
		if (rc != MM_OK && strstr(err, "UNIQUE"))
			snprintf(err, MM_ERR_MAX, "%s has an unfinished migration: run 'mailmode resume %s' or 'mailmode abort %s'",
			         m->domain, m->domain, m->domain), rc = MM_REFUSED;
	}
	if (rc == MM_OK) {
		m->id = sqlite3_last_insert_rowid(st->db);
		rc = append_journal(st, m->id, "planned", "end", m->to_mode, err);
	}
	if (rc == MM_OK)
		rc = mm_state_insert_audit(st, m->domain, "switch-start", m->to_mode, err);
	rc = mm_state_finish(st, rc, err);
	if (rc == MM_OK)
		maybe_crash(st);
	return rc;
}

static int query_migrations(struct mm_state *st, const char *domain,
                            int (*fn)(const struct mm_migration *m, void *arg), void *arg,
                            char *err)
{
	sqlite3_stmt *stmt = NULL;
	struct mm_migration m;
	int src, rc = MM_OK;

	src = sqlite3_prepare_v2(st->db, "SELECT " MIGRATION_COLUMNS " FROM migrations"
	                         " WHERE finished_at IS NULL AND (?1 IS NULL OR domain = ?1)"
	                         " ORDER BY id", -1, &stmt, NULL);
	if (src == SQLITE_OK)
		src = sqlite3_bind_text(stmt, 1, domain, -1, SQLITE_STATIC);
	while (src == SQLITE_OK || src == SQLITE_ROW) {
		src = sqlite3_step(stmt);
		if (src != SQLITE_ROW)
			break;
		memset(&m, 0, sizeof(m));
		read_migration(stmt, &m);
		rc = fn(&m, arg);
		mm_migration_clear(&m);
		if (rc != MM_OK)
			goto out;
	}
	if (src != SQLITE_DONE)
		rc = mm_state_db_error(st, src, "reading migrations", err);
out:
	sqlite3_finalize(stmt);
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

int mm_state_journal(struct mm_state *st, long long id, const char *step, const char *phase,
                     const char *detail, char *err)
{
	char mid[24], lease[24], pid[24];
	const char *step_params[] = { step, mid };
	const char *lease_params[] = { lease, mid, pid };
	int rc;

	snprintf(mid, sizeof(mid), "%lld", id);
	snprintf(lease, sizeof(lease), "%lld", (long long)(mm_host_wall_ms(NULL) + LOCK_LEASE_RENEW_MS));
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	if ((rc = mm_state_begin(st, err)) != MM_OK)
		return rc;
	rc = append_journal(st, id, step, phase, detail, err);
	if (rc == MM_OK && strcmp(phase, "end") == 0)
		rc = mm_state_run(st, "UPDATE migrations SET step = ? WHERE id = ?", 2, step_params, err);
	if (rc == MM_OK)
		rc = mm_state_run(st, "UPDATE locks SET lease_until = ?1 WHERE pid = ?3 AND domain ="
		                      " (SELECT domain FROM migrations WHERE id = ?2)",
		                  3, lease_params, err);
	rc = mm_state_finish(st, rc, err);
	if (rc == MM_OK && strcmp(phase, "attempt") != 0)
		maybe_crash(st);
	return rc;
}

int mm_state_journal_has(struct mm_state *st, long long id, const char *step, const char *phase,
                         int *has, char *err)
{
	sqlite3_stmt *stmt = NULL;
	int src;

	*has = 0;
	src = sqlite3_prepare_v2(st->db, "SELECT 1 FROM journal WHERE migration_id = ? AND step = ?"
	                         " AND phase = ? LIMIT 1", -1, &stmt, NULL);
	if (src == SQLITE_OK) {
		sqlite3_bind_int64(stmt, 1, id);
		sqlite3_bind_text(stmt, 2, step, -1, SQLITE_STATIC);
		sqlite3_bind_text(stmt, 3, phase, -1, SQLITE_STATIC);
		src = sqlite3_step(stmt);
		if (src == SQLITE_ROW) {
			*has = 1;
			src = SQLITE_DONE;
		}
	}
	sqlite3_finalize(stmt);
	return src == SQLITE_DONE ? MM_OK : mm_state_db_error(st, src, "reading the journal", err);
}

int mm_state_migration_set_receipt(struct mm_state *st, long long id, const char *receipt,
                                   char *err)
{
	char mid[24];
	const char *params[] = { receipt, mid };

	snprintf(mid, sizeof(mid), "%lld", id);
	return mm_state_run(st, "UPDATE migrations SET new_receipt = ? WHERE id = ?", 2, params, err);
}

int mm_state_migration_close(struct mm_state *st, long long id, const char *result,
                             const char *detail, char *err)
{
	struct mm_migration m;
	char mid[24], at[32];
	const char *commit_params[] = { at, mid };
	const char *close_params[] = { at, result, mid };
	int found = 0, rc;

	snprintf(mid, sizeof(mid), "%lld", id);
	mm_state_now_iso(at, sizeof(at));
	memset(&m, 0, sizeof(m));
	if ((rc = mm_state_begin(st, err)) != MM_OK)
		return rc;
	{
		sqlite3_stmt *stmt = NULL;
		int src = sqlite3_prepare_v2(st->db, "SELECT " MIGRATION_COLUMNS " FROM migrations"
		                             " WHERE id = ? AND finished_at IS NULL", -1, &stmt, NULL);

		if (src == SQLITE_OK) {
			sqlite3_bind_int64(stmt, 1, id);
			src = sqlite3_step(stmt);
		}
		if (src == SQLITE_ROW) {
			read_migration(stmt, &m);
			found = 1;
		} else if (src != SQLITE_DONE) {
			rc = mm_state_db_error(st, src, "reading the migration", err);
		}
		sqlite3_finalize(stmt);
	}
	if (rc == MM_OK && !found) {
		snprintf(err, MM_ERR_MAX, "migration %lld is not open", id);
		rc = MM_ERR;
	}
	/* The domain takes its new mode while the migration is still open: the
	 * one-mode trigger allows the change only then. */
	if (rc == MM_OK && strcmp(result, "done") == 0)
		rc = mm_state_run(st, "UPDATE domains SET mode = m.to_mode, profile = m.profile,"
		                      " receipt = m.new_receipt, adopted = 0, updated_at = ?1"
		                      " FROM (SELECT to_mode, profile, new_receipt, domain FROM migrations"
		                      "       WHERE id = ?2) AS m WHERE domains.domain = m.domain",
		                  2, commit_params, err);
	if (rc == MM_OK)
		rc = append_journal(st, id, "close", "end", result, err);
	if (rc == MM_OK)
		rc = mm_state_run(st, "UPDATE migrations SET finished_at = ?, result = ?, step = 'closed'"
		                      " WHERE id = ?", 3, close_params, err);
	if (rc == MM_OK)
		rc = mm_state_insert_audit(st, m.domain, strcmp(result, "done") == 0 ? "switch" :
		                           strcmp(result, "rolled_back") == 0 ? "switch-rolled-back" :
		                           "switch-aborted", detail, err);
	rc = mm_state_finish(st, rc, err);
	mm_migration_clear(&m);
	return rc;
}
