/* Runbook runs and their domains' outcomes in the state database. */
#include "state_runs.h"
#include "state_internal.h"

#include "host.h"

#include <stdio.h>
#include <string.h>

/* Runs one query with integer/text parameters and calls row_fn per row. */
struct query {
	const char *sql;
	const char *what;            /* for errors: "reading the runs" */
	const char *text[4];         /* bound to ?1.. when not NULL */
	long long num[4];            /* bound where text[i] is NULL and i < nnum */
	int nnum;
	int (*row_fn)(struct mm_db_stmt *stmt, void *arg);
	void *arg;
};

static int query(struct mm_state *st, const struct query *q, char *err)
{
	struct mm_db_stmt *stmt = NULL;
	int src, rc = MM_OK, i;

	src = mm_db_prepare(st->db, q->sql, &stmt);
	for (i = 0; src == MM_DB_OK && i < 4; i++)
		if (q->text[i])
			src = mm_db_bind_text(stmt, i + 1, q->text[i]);
		else if (i < q->nnum)
			src = mm_db_bind_int64(stmt, i + 1, q->num[i]);
	while (src == MM_DB_OK || src == MM_DB_ROW) {
		src = mm_db_step(stmt);
		if (src != MM_DB_ROW)
			break;
		if ((rc = q->row_fn(stmt, q->arg)) != MM_OK)
			goto out;
	}
	if (src != MM_DB_DONE)
		rc = mm_state_db_error(st, src, q->what, err);
out:
	mm_db_finalize(stmt);
	return rc;
}

static const char *text_at(struct mm_db_stmt *stmt, int col)
{
	return mm_db_column_text(stmt, col);
}

static int take_int64(struct mm_db_stmt *stmt, void *arg)
{
	*(long long *)arg = mm_db_column_int64(stmt, 0);
	return MM_OK;
}

int mm_runs_open(struct mm_state *st, const char *runbook, const char *options,
                 const struct mm_run_domain *rows, size_t n, long long *id, long long *base,
                 char *err)
{
	char at[32], ms[24];
	const char *params[] = { runbook, st->actor, options, at, ms };
	struct query q = { .sql = "SELECT coalesce(max(id), 0) FROM migrations",
	                   .what = "reading the migrations", .row_fn = take_int64, .arg = base };
	size_t i;
	int rc;

	mm_state_now_iso(at, sizeof(at));
	snprintf(ms, sizeof(ms), "%lld", (long long)mm_host_wall_ms(NULL));
	if ((rc = mm_state_begin(st, err)) != MM_OK)
		return rc;
	rc = query(st, &q, err);
	if (rc == MM_OK)
		rc = mm_state_run(st, "INSERT INTO runbook_runs(runbook, actor, options, started_at,"
		                      " started_ms) VALUES(?, ?, ?, ?, ?)", 5, params, err);
	if (rc == MM_OK)
		*id = mm_db_last_id(st->db);
	for (i = 0; rc == MM_OK && i < n; i++)
		rc = mm_runs_record(st, *id, &rows[i], err);
	return mm_state_finish(st, rc, err);
}

int mm_runs_finish(struct mm_state *st, long long id, char *err)
{
	char at[32], ms[24], rid[24];
	const char *params[] = { at, ms, rid };

	mm_state_now_iso(at, sizeof(at));
	snprintf(ms, sizeof(ms), "%lld", (long long)mm_host_wall_ms(NULL));
	snprintf(rid, sizeof(rid), "%lld", id);
	return mm_state_run(st, "UPDATE runbook_runs SET finished_at = ?, finished_ms = ? WHERE id = ?",
	                    3, params, err);
}

int mm_runs_record(struct mm_state *st, long long id, const struct mm_run_domain *d, char *err)
{
	char rid[24], line[16], mig[24], start[24], end[24], attempts[16], calls[24];
	const char *params[] = { rid, d->domain, line, d->from_mode, d->to_mode, d->profile,
	                         d->tenant, d->status, d->reason, d->outcome,
	                         d->migration_id ? mig : NULL, d->started_ms ? start : NULL,
	                         d->finished_ms ? end : NULL, attempts, calls };

	snprintf(rid, sizeof(rid), "%lld", id);
	snprintf(line, sizeof(line), "%d", d->line);
	snprintf(mig, sizeof(mig), "%lld", d->migration_id);
	snprintf(start, sizeof(start), "%lld", d->started_ms);
	snprintf(end, sizeof(end), "%lld", d->finished_ms);
	snprintf(attempts, sizeof(attempts), "%d", d->verify_attempts);
	snprintf(calls, sizeof(calls), "%ld", d->api_calls);
	return mm_state_run(st, "INSERT INTO runbook_run_domains(run_id, domain, line,"
	                        " from_mode, to_mode, profile, tenant, status, reason, outcome,"
	                        " migration_id, started_ms, finished_ms, verify_attempts, api_calls)"
	                        " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(run_id, domain)"
	                        " DO UPDATE SET line = excluded.line, from_mode = excluded.from_mode,"
	                        " to_mode = excluded.to_mode, profile = excluded.profile,"
	                        " tenant = excluded.tenant, status = excluded.status,"
	                        " reason = excluded.reason, outcome = excluded.outcome,"
	                        " migration_id = excluded.migration_id,"
	                        " started_ms = excluded.started_ms, finished_ms = excluded.finished_ms,"
	                        " verify_attempts = excluded.verify_attempts,"
	                        " api_calls = excluded.api_calls", 15, params, err);
}

int mm_runs_migration_of(struct mm_state *st, const char *domain, long long base,
                         long long *migration, char *err)
{
	struct query q = { .sql = "SELECT coalesce(max(id), 0) FROM migrations"
	                          " WHERE domain = ?1 AND id > ?2",
	                   .what = "reading the migrations", .text = { domain }, .num = { 0, base },
	                   .nnum = 2, .row_fn = take_int64, .arg = migration };

	*migration = 0;
	return query(st, &q, err);
}

int mm_runs_previous(struct mm_state *st, const char *runbook, long long before, long long *id,
                     char *err)
{
	struct query q = { .sql = "SELECT coalesce(max(id), 0) FROM runbook_runs"
	                          " WHERE runbook = ?1 AND (?2 = 0 OR id < ?2)",
	                   .what = "reading the runs", .text = { runbook }, .num = { 0, before },
	                   .nnum = 2, .row_fn = take_int64, .arg = id };

	*id = 0;
	return query(st, &q, err);
}

int mm_runs_last(struct mm_state *st, long long *id, char *err)
{
	struct query q = { .sql = "SELECT coalesce(max(id), 0) FROM runbook_runs",
	                   .what = "reading the runs", .row_fn = take_int64, .arg = id };

	*id = 0;
	return query(st, &q, err);
}

struct run_cb {
	int (*fn)(const struct mm_run_row *row, void *arg);
	void *arg;
	int *found;
};

static int run_row(struct mm_db_stmt *stmt, void *arg)
{
	struct run_cb *cb = arg;
	struct mm_run_row row = {
		.id = mm_db_column_int64(stmt, 0), .runbook = text_at(stmt, 1),
		.actor = text_at(stmt, 2), .options = text_at(stmt, 3),
		.started_at = text_at(stmt, 4), .started_ms = mm_db_column_int64(stmt, 5),
		.finished_at = text_at(stmt, 6), .finished_ms = mm_db_column_int64(stmt, 7)
	};

	*cb->found = 1;
	return cb->fn(&row, cb->arg);
}

int mm_runs_get(struct mm_state *st, long long id,
                int (*fn)(const struct mm_run_row *row, void *arg), void *arg, int *found,
                char *err)
{
	struct run_cb cb = { fn, arg, found };
	struct query q = { .sql = "SELECT id, runbook, actor, options, started_at, started_ms,"
	                          " finished_at, finished_ms FROM runbook_runs WHERE id = ?1",
	                   .what = "reading the runs", .num = { id }, .nnum = 1,
	                   .row_fn = run_row, .arg = &cb };

	*found = 0;
	return query(st, &q, err);
}

struct domain_cb {
	int (*fn)(const struct mm_run_domain *d, void *arg);
	void *arg;
};

static int domain_row(struct mm_db_stmt *stmt, void *arg)
{
	struct domain_cb *cb = arg;
	struct mm_run_domain d = {
		.domain = text_at(stmt, 0), .line = (int)mm_db_column_int64(stmt, 1),
		.from_mode = text_at(stmt, 2), .to_mode = text_at(stmt, 3),
		.profile = text_at(stmt, 4), .tenant = text_at(stmt, 5),
		.status = text_at(stmt, 6), .reason = text_at(stmt, 7), .outcome = text_at(stmt, 8),
		.migration_id = mm_db_column_int64(stmt, 9),
		.started_ms = mm_db_column_int64(stmt, 10),
		.finished_ms = mm_db_column_int64(stmt, 11),
		.verify_attempts = (int)mm_db_column_int64(stmt, 12),
		.api_calls = (long)mm_db_column_int64(stmt, 13)
	};

	return cb->fn(&d, cb->arg);
}

int mm_runs_each_domain(struct mm_state *st, long long id,
                        int (*fn)(const struct mm_run_domain *d, void *arg), void *arg, char *err)
{
	struct domain_cb cb = { fn, arg };
	struct query q = { .sql = "SELECT domain, line, from_mode, to_mode, profile, tenant, status,"
	                          " reason, outcome, migration_id, started_ms, finished_ms,"
	                          " verify_attempts, api_calls FROM runbook_run_domains"
	                          " WHERE run_id = ?1 ORDER BY line",
	                   .what = "reading the run's domains", .num = { id }, .nnum = 1,
	                   .row_fn = domain_row, .arg = &cb };

	return query(st, &q, err);
}

struct journal_cb {
	int (*fn)(const struct mm_journal_row *row, void *arg);
	void *arg;
};

static int journal_row(struct mm_db_stmt *stmt, void *arg)
{
	struct journal_cb *cb = arg;
	struct mm_journal_row row = {
		.step = text_at(stmt, 0), .phase = text_at(stmt, 1), .detail = text_at(stmt, 2),
		.attempts = (int)mm_db_column_int64(stmt, 3), .at_ms = mm_db_column_int64(stmt, 4),
		.last_ms = mm_db_column_int64(stmt, 5)
	};

	return cb->fn(&row, cb->arg);
}

int mm_runs_each_journal(struct mm_state *st, long long migration,
                         int (*fn)(const struct mm_journal_row *row, void *arg), void *arg,
                         char *err)
{
	struct journal_cb cb = { fn, arg };
	/* Rows from before schema 3 have second-resolution ISO times only. */
	struct query q = { .sql = "SELECT step, phase, detail, attempts,"
	                          " coalesce(at_ms, CAST(strftime('%s', at) AS BIGINT) * 1000),"
	                          " coalesce(last_ms, CAST(strftime('%s', last_at) AS BIGINT) * 1000,"
	                          "          at_ms, CAST(strftime('%s', at) AS BIGINT) * 1000)"
	                          " FROM journal WHERE migration_id = ?1 ORDER BY seq",
	                   .what = "reading the journal", .num = { migration }, .nnum = 1,
	                   .row_fn = journal_row, .arg = &cb };

	return query(st, &q, err);
}
