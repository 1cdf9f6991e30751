/* A domain's MX TTL lowered ahead of a change window (state.h: prepares).
 * The row is written before the plugin writes (phase "lowering"), the
 * plugin's checkpoint goes into it before its UPDATE, and it says "lowered"
 * only once the plugin answered: a kill in between leaves the row and its
 * checkpoint for prepare (again) or prepare --undo. */
#include "state.h"
#include "state_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mm_prepare_row_clear(struct mm_prepare_row *row)
{
	free(row->domain);
	free(row->mode);
	free(row->profile);
	free(row->phase);
	free(row->record);
	memset(row, 0, sizeof(*row));
}

int mm_state_prepare_get(struct mm_state *st, const char *domain, struct mm_prepare_row *row,
                         int *found, char *err)
{
	struct mm_db_stmt *stmt = NULL;
	int src;

	memset(row, 0, sizeof(*row));
	*found = 0;
	src = mm_db_prepare(st->db, "SELECT domain, mode, profile, phase, ttl,"
	                         " coalesce(ttl_before, -1), record, coalesce(ready_at_ms, 0)"
	                         " FROM prepares WHERE domain = ?", &stmt);
	if (src == MM_DB_OK) {
		mm_db_bind_text(stmt, 1, domain);
		src = mm_db_step(stmt);
	}
	if (src == MM_DB_ROW) {
		row->domain = mm_state_column_dup(stmt, 0);
		row->mode = mm_state_column_dup(stmt, 1);
		row->profile = mm_state_column_dup(stmt, 2);
		row->phase = mm_state_column_dup(stmt, 3);
		row->ttl = mm_db_column_int64(stmt, 4);
		row->ttl_before = mm_db_column_int64(stmt, 5);
		row->record = mm_state_column_dup(stmt, 6);
		row->ready_at_ms = mm_db_column_int64(stmt, 7);
		*found = 1;
		src = row->domain && row->mode && row->profile && row->phase ? MM_DB_DONE
		                                                              : MM_DB_ERROR;
	}
	mm_db_finalize(stmt);
	if (src != MM_DB_DONE)
		mm_prepare_row_clear(row);
	return src == MM_DB_DONE ? MM_OK : mm_state_db_error(st, src, "reading the prepare", err);
}

int mm_state_prepare_begin(struct mm_state *st, const char *domain, const char *mode,
                           const char *profile, long long ttl, const char *phase, char *err)
{
	char at[32], ttl_text[24], detail[128];
	const char *domain_params[] = { domain, at };
	const char *params[] = { domain, mode, profile, phase, ttl_text, at };
	int rc;

	mm_state_now_iso(at, sizeof(at));
	snprintf(ttl_text, sizeof(ttl_text), "%lld", ttl);
	snprintf(detail, sizeof(detail), "%s mode: MX TTL %s %lld", mode,
	         strcmp(phase, "restoring") == 0 ? "back from" : "to", ttl);
	if ((rc = mm_state_begin(st, err)) != MM_OK)
		return rc;
	rc = mm_state_run(st, "INSERT INTO domains(domain, updated_at) VALUES(?, ?)"
	                      " ON CONFLICT DO NOTHING", 2,
	                  domain_params, err);
	if (rc == MM_OK)
		rc = mm_state_run(st, "INSERT INTO prepares(domain, mode, profile, phase, ttl, started_at)"
		                      " VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(domain) DO UPDATE"
		                      " SET phase = ?4, ttl = CASE WHEN ?4 = 'restoring' THEN prepares.ttl"
		                      " ELSE ?5 END", 6, params, err);
	if (rc == MM_OK)
		rc = mm_state_insert_audit(st, domain, strcmp(phase, "restoring") == 0
		                                       ? "prepare-undo-begin" : "prepare-begin",
		                           detail, err);
	return mm_state_finish(st, rc, err);
}

int mm_state_prepare_record(struct mm_state *st, const char *domain, const char *record,
                            char *err)
{
	const char *params[] = { record, domain };

	return mm_state_run(st, "UPDATE prepares SET record = ? WHERE domain = ?", 2, params, err);
}

/* The domain's receipt, when the plugin's call changed it. */
static int set_receipt(struct mm_state *st, const char *domain, const char *receipt, char *err)
{
	char at[32];
	const char *params[] = { receipt, at, domain };

	if (!receipt)
		return MM_OK;
	mm_state_now_iso(at, sizeof(at));
	return mm_state_run(st, "UPDATE domains SET receipt = ?, updated_at = ? WHERE domain = ?",
	                    3, params, err);
}

int mm_state_prepare_done(struct mm_state *st, const char *domain, long long ttl,
                          long long ttl_before, long long ready_at_ms, const char *report,
                          const char *receipt, char *err)
{
	char ttl_text[24], before[24], ready[24], detail[160];
	const char *params[] = { ttl_text, before, ready, report, domain };
	int rc;

	snprintf(ttl_text, sizeof(ttl_text), "%lld", ttl);
	snprintf(before, sizeof(before), "%lld", ttl_before);
	snprintf(ready, sizeof(ready), "%lld", ready_at_ms);
	snprintf(detail, sizeof(detail), "MX TTL lowered from %lld; ready at %lld ms", ttl_before,
	         ready_at_ms);
	if ((rc = mm_state_begin(st, err)) != MM_OK)
		return rc;
	rc = mm_state_run(st, "UPDATE prepares SET phase = 'lowered', ttl = ?, ttl_before = ?,"
	                      " ready_at_ms = ?, record = ? WHERE domain = ?", 5, params, err);
	if (rc == MM_OK)
		rc = set_receipt(st, domain, receipt, err);
	if (rc == MM_OK)
		rc = mm_state_insert_audit(st, domain, "prepare", detail, err);
	return mm_state_finish(st, rc, err);
}

int mm_state_prepare_drop(struct mm_state *st, const char *domain, const char *action,
                          const char *receipt, const char *release_mode, char *err)
{
	char at[32];
	const char *params[] = { domain };
	const char *release[] = { at, domain, release_mode };
	int rc;

	mm_state_now_iso(at, sizeof(at));
	if ((rc = mm_state_begin(st, err)) != MM_OK)
		return rc;
	rc = mm_state_run(st, "DELETE FROM prepares WHERE domain = ?", 1, params, err);
	if (rc == MM_OK)
		rc = set_receipt(st, domain, receipt, err);
	/* Only what a prepare kept: a migration's original is its own. */
	if (rc == MM_OK && release_mode)
		rc = mm_state_run(st, "UPDATE originals SET restored_at = ? WHERE domain = ?"
		                      " AND mode = ? AND migration_id IS NULL AND restored_at IS NULL",
		                  3, release, err);
	if (rc == MM_OK)
		rc = mm_state_insert_audit(st, domain, action, NULL, err);
	return mm_state_finish(st, rc, err);
}

int mm_state_prepare_keep_original(struct mm_state *st, const char *domain, const char *mode,
                                   const char *snapshot, char *err)
{
	char at[32];
	const char *params[] = { domain, mode, snapshot, at };
	int rc;

	mm_state_now_iso(at, sizeof(at));
	if ((rc = mm_state_begin(st, err)) != MM_OK)
		return rc;
	rc = mm_state_run(st, "INSERT INTO originals(domain, mode, snapshot, taken_at)"
	                      " VALUES(?, ?, ?, ?) ON CONFLICT DO NOTHING", 4, params, err);
	if (rc == MM_OK && mm_db_changes(st->db) > 0)
		rc = mm_state_insert_audit(st, domain, "original-kept", snapshot, err);
	return mm_state_finish(st, rc, err);
}
