/* Notes kept with a shared resource (state.h, plugin.h ABI 1.6
 * shared_note_*): what a plugin call on a tenant leaves for the next one,
 * in the state every process sharing the tenant's lock reads.  Only the
 * holder of the resource's lock reads or writes them: the lock, not the
 * database, orders the calls. */
#include "state.h"
#include "state_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int held_or_refuse(const struct mm_state *st, const char *resource, char *err)
{
	if (mm_state_holds_shared(st, resource))
		return MM_OK;
	snprintf(err, MM_ERR_MAX, "the note of %s is read and written only under its lock, and"
	         " this call does not hold it", resource);
	return MM_ERR;
}

int mm_state_note_load(struct mm_state *st, const char *resource, const char *key, char **text,
                       char *err)
{
	struct mm_db_stmt *stmt = NULL;
	int src;

	*text = NULL;
	if (held_or_refuse(st, resource, err) != MM_OK)
		return MM_ERR;
	src = mm_db_prepare(st->db, "SELECT note FROM shared_notes WHERE resource = ? AND name = ?",
	                    &stmt);
	if (src == MM_DB_OK) {
		mm_db_bind_text(stmt, 1, resource);
		mm_db_bind_text(stmt, 2, key);
		src = mm_db_step(stmt);
	}
	if (src == MM_DB_ROW)
		src = (*text = mm_state_column_dup(stmt, 0)) ? MM_DB_DONE : MM_DB_ERROR;
	mm_db_finalize(stmt);
	return src == MM_DB_DONE ? MM_OK : mm_state_db_error(st, src, "reading a shared note", err);
}

int mm_state_note_store(struct mm_state *st, const char *resource, const char *key,
                        const char *text, const char *domain, char *err)
{
	char at[32];
	const char *params[] = { resource, key, text, domain, at };

	if (held_or_refuse(st, resource, err) != MM_OK)
		return MM_ERR;
	mm_state_now_iso(at, sizeof(at));
	if (!text)
		return mm_state_run(st, "DELETE FROM shared_notes WHERE resource = ? AND name = ?", 2,
		                    params, err);
	return mm_state_run(st, "INSERT INTO shared_notes(resource, name, note, domain, stored_at)"
	                    " VALUES(?,?,?,?,?) ON CONFLICT(resource, name) DO UPDATE SET"
	                    " note = excluded.note, domain = excluded.domain,"
	                    " stored_at = excluded.stored_at", 5, params, err);
}
