/* The state store's unit tests, on an SQLite file or, with
 * MAILMODE_TEST_STATE=postgresql://... (tests/state/pg_unit.t), on a
 * fresh PostgreSQL database: the same rules hold in both. */
#include "db.h"
#include "state.h"
#include "state_internal.h"
#include "tap.h"

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[] = "/tmp/mm-state-test.XXXXXX";

/* SQL straight to the database, past the state's rules: 0 when it ran. */
static int sql_rc(const char *target, const char *text)
{
	char err[1024];
	struct mm_db *db;
	int rc;

	if (mm_db_open(target, 200, &db, err) != 0)
		return -1;
	rc = mm_db_exec(db, text);
	mm_db_close(db);
	return rc;
}

static void sql(const char *target, const char *text)
{
	sql_rc(target, text);
}

/* SQLite only: a file of another program, without mailmode's schema. */
static void sqlite_sql(const char *path, const char *text)
{
	sqlite3 *db;

	sqlite3_open(path, &db);
	sqlite3_exec(db, text, NULL, NULL, NULL);
	sqlite3_close(db);
}

static pid_t sleeper(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		pause();
		_exit(0);
	}
	return pid;
}

static void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* A child that holds the database's write lock until killed. */
static pid_t writer(const char *path)
{
	int fds[2];
	char c;
	pid_t pid;

	if (pipe(fds) != 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		struct mm_db *db;
		char err[1024];

		if (mm_db_open(path, 200, &db, err) != 0 || mm_db_begin(db) != MM_DB_OK ||
		    mm_db_exec(db, "INSERT INTO audit(at, actor, action) VALUES('x','y','z')") != MM_DB_OK)
			_exit(1);
		if (write(fds[1], "x", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(fds[1]);
	if (read(fds[0], &c, 1) != 1)
		pid = -1;
	close(fds[0]);
	return pid;
}

static int count_rows(struct mm_state *st, const char *domain)
{
	struct mm_domain_row row;
	int found = 0;
	char err[MM_ERR_MAX];

	mm_state_get_domain(st, domain, &row, &found, err);
	mm_domain_row_clear(&row);
	return found;
}

static void count_waits(void *arg, const char *resource, const char *holder)
{
	(void)resource;
	(void)holder;
	++*(int *)arg;
}

/* The rows of table that match where, or -1. */
static long long count_in(const char *path, const char *table, const char *where)
{
	char q[512], err[1024];
	struct mm_db *db;
	struct mm_db_stmt *stmt = NULL;
	long long n = -1;

	snprintf(q, sizeof(q), "SELECT count(*) FROM %s WHERE %s", table, where);
	if (mm_db_open(path, 200, &db, err) != 0)
		return -1;
	if (mm_db_prepare(db, q, &stmt) == MM_DB_OK && mm_db_step(stmt) == MM_DB_ROW)
		n = mm_db_column_int64(stmt, 0);
	mm_db_finalize(stmt);
	mm_db_close(db);
	return n;
}

static long long shared_count(const char *path, const char *where)
{
	return count_in(path, "shared_locks", where);
}

static void shared_locks(struct tap *t, struct mm_state *st, const char *path)
{
	char err[MM_ERR_MAX], notice[1024], buf[1024];
	struct mm_state *second = NULL;
	int waits = 0;
	const struct mm_lock_waiter counter = { count_waits, NULL, &waits };
	pid_t pid;

	tap_is_int(t, mm_state_lock_shared(st, "tenant t1\ndns-zone z.test", "a.test", "switch",
	                                   60000, 0, NULL, notice, sizeof(notice), err),
	           MM_OK, "shared lock on two resources taken");
	tap_is_int(t, shared_count(path, "resource IN ('tenant t1', 'dns-zone z.test') AND domain = 'a.test'"),
	           2, "one row each, naming the domain");
	tap_is_int(t, mm_state_open(path, 200, &second, err), MM_OK, "a second connection");
	sql(path, "UPDATE shared_locks SET host = 'elsewhere.example' WHERE resource = 'tenant t1'");
	tap_is_int(t, mm_state_lock_shared(second, "dns-zone other.test\ntenant t1", "b.test",
	                                   "runbook run", 60000, 400, &counter, notice,
	                                   sizeof(notice), err),
	           MM_ERR, "held by another host's process: waited for, then refused");
	tap_contains(t, err, "tenant t1 is locked by", "the error names the resource");
	tap_contains(t, err, "(pid ", "and its holder");
	tap_contains(t, err, " on elsewhere.example, 'switch' of a.test since ",
	             "with its host, command and domain");
	tap_is_int(t, waits, 1, "the wait was told once, not at every poll");
	tap_is_int(t, shared_count(path, "resource = 'dns-zone other.test'"), 0,
	           "none of the set was taken (all or none)");
	sql(path, "DELETE FROM shared_locks WHERE resource = 'tenant t1'");
	tap_is_int(t, mm_state_lock_shared(st, "tenant t1", "a.test", "switch", 500, 0, NULL,
	                                   notice, sizeof(notice), err),
	           MM_OK, "taken again, with a 0.5 s lease");
	tap_is_int(t, mm_state_lock_shared(second, "tenant t1", "b.test", "switch", 60000, 0, NULL, notice, sizeof(notice), err),
	           MM_OK, "another connection of this process waits beyond its wait, up to the lease");
	tap_contains(t, notice, "its lease expired", "then takes it over");
	/* The first connection's checkpoint comes late: it must stop writing,
	 * not renew nothing and carry on. */
	sql(path, "UPDATE shared_locks SET lease_until = 1 WHERE resource = 'dns-zone z.test'");
	tap_is_int(t, mm_state_renew_shared(st, 3600000, err), MM_ERR,
	           "a renewal after the lock was taken over fails");
	tap_contains(t, err, "tenant t1", "naming the resource");
	tap_contains(t, err, "'switch' of b.test", "and who holds it now");
	tap_is_int(t, shared_count(path, "resource = 'tenant t1' AND domain = 'b.test' AND holder <> 0"
	                                 " AND lease_until < strftime('%s','now') * 1000 + 3000000"),
	           1, "the new holder's row is left as it was");
	tap_is_int(t, shared_count(path, "resource = 'dns-zone z.test' AND lease_until = 1"), 1,
	           "and nothing of the failed renewal is written");
	tap_is_int(t, mm_state_unlock_shared(st, "tenant t1\ndns-zone z.test", err), MM_OK,
	           "the first connection's unlock");
	tap_is_int(t, shared_count(path, "resource = 'tenant t1' AND domain = 'b.test'"), 1,
	           "leaves the lock the second one holds");
	tap_is_int(t, mm_state_renew_shared(st, 3600000, err), MM_OK,
	           "a renewal holding no shared lock renews nothing, and succeeds");
	tap_is_int(t, mm_state_renew_shared(second, 3600000, err), MM_OK, "its lease renewed");
	tap_is_int(t, shared_count(path, "resource = 'tenant t1' AND lease_until > strftime('%s','now') * 1000 + 3000000"),
	           1, "to an hour from now");
	mm_state_close(second);

	/* A dead holder on this host, a live one whose lease ran out. */
	pid = sleeper();
	reap(pid);
	snprintf(buf, sizeof(buf), "UPDATE shared_locks SET pid = %d", (int)pid);
	sql(path, buf);
	tap_is_int(t, mm_state_lock_shared(st, "tenant t1", "c.test", "switch", 60000, 0, NULL,
	                                   notice, sizeof(notice), err),
	           MM_OK, "a dead holder's lock taken over");
	tap_contains(t, notice, "took over the lock on tenant t1 from", "takeover explained");
	sql(path, "UPDATE shared_locks SET host = 'elsewhere.example', lease_until = 1");
	tap_is_int(t, mm_state_lock_shared(st, "tenant t1", "c.test", "switch", 60000, 0, NULL,
	                                   notice, sizeof(notice), err),
	           MM_OK, "another host's lock taken over once its lease ran out");
	tap_contains(t, notice, "on elsewhere.example, 'switch' of c.test since", "its holder named");
	mm_state_unlock_shared(st, "tenant t1", err);
}

/* A lock waiter's pauses: the second one sees the holder gone, and the
 * wait goes on on another connection. */
struct pauses {
	const char *path;
	struct mm_state *next;
	int count;
};

static struct mm_state *pause_then_switch(void *arg, long ms)
{
	struct pauses *p = arg;

	(void)ms;
	if (++p->count == 2)
		sql(p->path, "DELETE FROM shared_locks WHERE resource = 'tenant p1'");
	return p->next;
}

/* A wait for a lock that pauses (a runbook's parked domain) goes on on
 * the connection the pause hands back, and the lock is that one's. */
static void shared_lock_pause(struct tap *t, struct mm_state *st, const char *path)
{
	char err[MM_ERR_MAX], notice[1024];
	struct pauses p = { path, NULL, 0 };
	const struct mm_lock_waiter waiter = { NULL, pause_then_switch, &p };
	struct mm_state *second = NULL;

	mm_state_open(path, 200, &second, err);
	p.next = second;
	mm_state_lock_shared(st, "tenant p1", "a.test", "switch", 60000, 0, NULL, notice,
	                     sizeof(notice), err);
	sql(path, "UPDATE shared_locks SET host = 'elsewhere.example' WHERE resource = 'tenant p1'");
	mm_state_unlock_shared(st, "tenant p1", err);   /* held elsewhere now: its row stays */
	tap_is_int(t, mm_state_lock_shared(st, "tenant p1", "b.test", "runbook run", 60000, 60000,
	                                   &waiter, notice, sizeof(notice), err),
	           MM_OK, "a paused wait for another host's lock ends when it is let go");
	tap_is_int(t, p.count, 2, "paused between the tries, not slept");
	tap_ok(t, mm_state_holds_shared(second, "tenant p1") && !mm_state_holds_shared(st, "tenant p1"),
	       "the lock is the connection's the pause handed back");
	tap_is_int(t, mm_state_unlock_shared(second, "tenant p1", err), MM_OK, "which lets it go");
	tap_is_int(t, shared_count(path, "resource = 'tenant p1'"), 0, "its row gone");
	mm_state_close(second);
}

/* A call's slots k of both (tenant t9, dns-zone z9) held by st: renewed
 * while it runs; one taken over (by b) after its lease is named, and the
 * other renewed all the same.  b gives its slot back. */
static void renew_slots(struct tap *t, struct mm_state *st, struct mm_state *b, const char *path,
                        const char *const *both, const int *k)
{
	const int one[] = { 1 };
	char err[MM_ERR_MAX];
	int kb = 0, tb = 0;

	sql(path, "UPDATE shared_locks SET lease_until = 5 WHERE resource IN ('tenant t9 #2',"
	          " 'dns-zone z9 #1')");
	tap_is_int(t, mm_state_renew_slots(st, both, k, 2, 60000, err), MM_OK, "a call's slots renewed");
	tap_is_int(t, shared_count(path, "resource IN ('tenant t9 #2', 'dns-zone z9 #1')"
	                                 " AND lease_until > 5"), 2, "both leases extended");
	sql(path, "UPDATE shared_locks SET lease_until = 1 WHERE resource = 'dns-zone z9 #1'");
	sql(path, "UPDATE shared_locks SET lease_until = 5 WHERE resource = 'tenant t9 #2'");
	mm_state_take_slots(b, &both[1], one, 1, 60000, &kb, &tb, err);
	tap_ok(t, tb && kb == 1, "a slot whose lease ran out is taken by another");
	tap_is_int(t, mm_state_renew_slots(st, both, k, 2, 60000, err), MM_ERR,
	           "renewing it then fails");
	tap_contains(t, err, "dns-zone z9 #1 is no longer this process's", "naming the slot lost");
	tap_is_int(t, shared_count(path, "resource = 'tenant t9 #2' AND lease_until > 5"), 1,
	           "the call's other slot renewed all the same");
	mm_state_give_slots(b, &both[1], &kb, 1, err);
}

/* Counted slots (a runbook's tenant cap across processes and hosts): each
 * connection stands for another process. */
static void slots(struct tap *t, struct mm_state *st, const char *path)
{
	const char *tenant[] = { "tenant t9" }, *both[] = { "tenant t9", "dns-zone z9" };
	const int cap[] = { 2 }, caps[] = { 2, 1 };
	struct mm_state *b = NULL, *c = NULL;
	char err[MM_ERR_MAX];
	int k[2] = { 0, 0 }, kb = 0, kc = 0, taken = 0, tb = 0, tc = 0;

	mm_state_open(path, 200, &b, err);
	mm_state_open(path, 200, &c, err);
	mm_state_take_slots(st, tenant, cap, 1, 60000, k, &taken, err);
	mm_state_take_slots(b, tenant, cap, 1, 60000, &kb, &tb, err);
	tap_ok(t, taken && tb && k[0] == 1 && kb == 2, "two holders take the tenant's 2 slots");
	tap_is_int(t, mm_state_take_slots(c, tenant, cap, 1, 60000, &kc, &tc, err), MM_OK,
	           "a third asks");
	tap_ok(t, !tc && shared_count(path, "resource LIKE 'tenant t9 #%'") == 2,
	       "and gets none: the cap is counted in the database");
	mm_state_give_slots(st, tenant, k, 1, err);
	mm_state_take_slots(c, tenant, cap, 1, 60000, &kc, &tc, err);
	tap_ok(t, tc && kc == 1, "a slot given back is taken by the next");
	mm_state_take_slots(st, both, caps, 2, 60000, k, &taken, err);
	tap_ok(t, !taken && shared_count(path, "resource = 'dns-zone z9 #1'") == 0,
	       "all or none: the zone's free slot is not taken while the tenant is full");
	sql(path, "UPDATE shared_locks SET host = 'elsewhere.example', lease_until = 1"
	          " WHERE resource = 'tenant t9 #2'");
	mm_state_take_slots(st, both, caps, 2, 60000, k, &taken, err);
	tap_ok(t, taken && k[0] == 2 && k[1] == 1,
	       "another host's slot is free once its lease ran out");
	renew_slots(t, st, b, path, both, k);
	mm_state_give_slots(st, both, k, 2, err);
	mm_state_give_slots(c, tenant, &kc, 1, err);
	tap_is_int(t, shared_count(path, "resource LIKE 'tenant t9 #%' OR resource LIKE 'dns-zone z9 #%'"),
	           0, "given back, no slot row is left");
	mm_state_close(b);
	mm_state_close(c);
}

/* A prepare's row through its phases: the checkpoint is there after a
 * "kill" (nothing else happens), done records the TTL before and the new
 * receipt, drop releases only the original a prepare kept. */
/* Shared notes: kept per resource and key, read and written only by the
 * holder of the resource's lock. */
static void shared_notes(struct tap *t, struct mm_state *st, const char *path)
{
	char err[MM_ERR_MAX], notice[1024];
	struct mm_state *second = NULL;
	char *text = NULL;

	tap_is_int(t, mm_state_note_store(st, "tenant n1", "k", "{\"a\":1}", "a.test", err), MM_ERR,
	           "a note is not stored without the resource's lock");
	tap_contains(t, err, "the note of tenant n1 is read and written only under its lock",
	             "the refusal says why");
	mm_state_lock_shared(st, "tenant n1", "a.test", "switch", 60000, 0, NULL, notice,
	                     sizeof(notice), err);
	tap_is_int(t, mm_state_note_load(st, "tenant n1", "k", &text, err), MM_OK,
	           "under the lock, no note yet");
	tap_ok(t, text == NULL, "is no text");
	tap_is_int(t, mm_state_note_store(st, "tenant n1", "k", "{\"a\":1}", "a.test", err), MM_OK,
	           "a note stored under the lock");
	mm_state_note_store(st, "tenant n1", "k", "{\"a\":2}", "b.test", err);
	mm_state_note_store(st, "tenant n1", "other", "x", "b.test", err);
	tap_is_int(t, count_in(path, "shared_notes", "resource = 'tenant n1' AND name = 'k'"
	                                             " AND note = '{\"a\":2}' AND domain = 'b.test'"),
	           1, "stored again: one row per resource and key, replaced, naming the domain");
	tap_is_int(t, mm_state_note_load(st, "tenant n1", "k", &text, err), MM_OK, "read back");
	tap_is_str(t, text, "{\"a\":2}", "the last text stored");
	free(text);
	mm_state_open(path, 200, &second, err);
	tap_is_int(t, mm_state_note_load(second, "tenant n1", "k", &text, err), MM_ERR,
	           "another connection, not holding the lock, is refused");
	mm_state_close(second);
	tap_is_int(t, mm_state_note_store(st, "tenant n1", "k", NULL, "b.test", err), MM_OK,
	           "stored as NULL");
	mm_state_note_load(st, "tenant n1", "k", &text, err);
	tap_ok(t, text == NULL && count_in(path, "shared_notes", "name = 'other'") == 1,
	       "the note is gone, the other key's kept");
	mm_state_unlock_shared(st, "tenant n1", err);
	tap_is_int(t, mm_state_note_load(st, "tenant n1", "other", &text, err), MM_ERR,
	           "once unlocked, reading is refused too");
}

static void test_prepares(struct tap *t, struct mm_state *st)
{
	struct mm_prepare_row row;
	struct mm_domain_row dom;
	char err[MM_ERR_MAX], *snapshot = NULL;
	int found = 0;

	tap_is_int(t, mm_state_prepare_begin(st, "p.test", "gateway", "lab", 300, "lowering", err),
	           MM_OK, "prepare begins for a domain the state does not know");
	tap_is_int(t, mm_state_prepare_record(st, "p.test", "{\"before\":[]}", err), MM_OK,
	           "its checkpoint is stored");
	tap_is_int(t, mm_state_prepare_keep_original(st, "p.test", "gateway", "{\"mx\":[]}", err),
	           MM_OK, "an original is kept outside a migration");
	mm_state_prepare_get(st, "p.test", &row, &found, err);
	tap_ok(t, found && strcmp(row.phase, "lowering") == 0 && row.ttl == 300 &&
	          row.ttl_before == -1 && row.record && strstr(row.record, "before"),
	       "unfinished: phase lowering, the checkpoint, no TTL before yet");
	mm_prepare_row_clear(&row);
	tap_is_int(t, mm_state_prepare_done(st, "p.test", 300, 86400, 1234, "{\"ttl_now\":300}",
	                                    "{\"zone\":\"p.test\"}", err),
	           MM_OK, "done");
	mm_state_prepare_get(st, "p.test", &row, &found, err);
	tap_ok(t, found && strcmp(row.phase, "lowered") == 0 && row.ttl_before == 86400 &&
	          row.ready_at_ms == 1234, "lowered, with the TTL before and the ready time");
	mm_prepare_row_clear(&row);
	mm_state_get_domain(st, "p.test", &dom, &found, err);
	tap_is_str(t, dom.receipt, "{\"zone\":\"p.test\"}", "the new receipt is stored with it");
	mm_domain_row_clear(&dom);
	tap_is_int(t, mm_state_prepare_drop(st, "p.test", "prepare-undone", NULL, "gateway", err),
	           MM_OK, "dropped");
	mm_state_prepare_get(st, "p.test", &row, &found, err);
	mm_state_get_original(st, "p.test", "gateway", &snapshot, err);
	tap_ok(t, !found && !snapshot, "the row and the original it kept are gone");
	free(snapshot);
}

int main(void)
{
	struct tap t = { 0 };
	struct mm_state *st = NULL;
	struct mm_domain_row row;
	const char *url = getenv("MAILMODE_TEST_STATE");
	char path[512], other[512], err[MM_ERR_MAX], notice[768], buf[2048], cmd[256];
	int found;
	pid_t pid;

	if (!mkdtemp(dir))
		return 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	tap_plan(url ? 92 : 96);
	snprintf(path, sizeof(path), "%s", url ? url : dir);
	if (!url)
		strncat(path, "/state.db", sizeof(path) - strlen(path) - 1);

	tap_is_int(&t, mm_state_open(path, 200, &st, err), MM_OK, "new state DB created");
	if (!st)
		printf("# %s\n", err);
	tap_is_int(&t, mm_state_set_mode(st, "a.test", "example", "p", "{\"r\":1}", 0, "setup",
	                                 "example", err), MM_OK, "a.test set to example mode");
	tap_is_int(&t, mm_state_set_mode(st, "a.test", "example", "p", "{\"r\":2}", 0, "setup",
	                                 "example", err), MM_OK, "same mode again is fine");
	tap_is_int(&t, mm_state_set_mode(st, "a.test", "twin", "p", NULL, 0, "setup", "twin", err),
	           MM_REFUSED, "a second mode is refused");
	tap_contains(&t, err, "a.test is already in example mode", "current mode named");
	tap_contains(&t, err, "mailmode switch a.test --to twin", "switch suggested");
	mm_state_get_domain(st, "a.test", &row, &found, err);
	tap_is_str(&t, row.mode, "example", "mode unchanged after the refusal");
	tap_is_str(&t, row.receipt, "{\"r\":2}", "receipt unchanged after the refusal");
	mm_domain_row_clear(&row);

	/* The database keeps the invariant even against direct writes. */
	tap_ok(&t, sql_rc(path, "UPDATE domains SET mode = 'twin' WHERE domain = 'a.test'") != MM_DB_OK,
	       "trigger refuses a direct second mode");
	sql(path, "INSERT INTO migrations(domain, from_mode, to_mode, step, started_at)"
	          " VALUES('a.test', 'example', 'twin', 'setup', 'now')");
	tap_is_int(&t, sql_rc(path, "UPDATE domains SET mode = 'twin' WHERE domain = 'a.test'"),
	           MM_DB_OK, "inside an open migration the mode may change");
	sql(path, "UPDATE migrations SET finished_at = 'now'");

	tap_is_int(&t, mm_state_clear_mode(st, "a.test", "teardown", "twin", err), MM_OK, "mode cleared");
	mm_state_get_domain(st, "a.test", &row, &found, err);
	tap_ok(&t, found && row.mode == NULL, "row kept, without a mode");
	mm_domain_row_clear(&row);
	tap_is_int(&t, count_rows(st, "b.test"), 0, "unknown domain has no row");

	/* Domain locks. */
	pid = sleeper();
	gethostname(cmd, sizeof(cmd));
	snprintf(buf, sizeof(buf), "INSERT INTO locks VALUES('c.test', 'someone@%s', %d, '%s', 'setup',"
	         " 'earlier', 99999999999999)", cmd, (int)pid, cmd);
	sql(path, buf);
	tap_is_int(&t, mm_state_lock_domain(st, "c.test", "teardown", 60000, 300, notice,
	                                    sizeof(notice), err), MM_ERR, "lock of a live owner waited for, then refused");
	snprintf(buf, sizeof(buf), "pid %d", (int)pid);
	tap_contains(&t, err, buf, "the owner's pid is named");
	reap(pid);
	tap_is_int(&t, mm_state_lock_domain(st, "c.test", "teardown", 60000, 300, notice,
	                                    sizeof(notice), err), MM_OK, "lock of a dead owner taken over");
	tap_contains(&t, notice, "that process is gone", "takeover explained");
	tap_is_int(&t, mm_state_unlock_domain(st, "c.test", err), MM_OK, "unlocked");
	pid = sleeper();
	snprintf(buf, sizeof(buf), "INSERT INTO locks VALUES('d.test', 'x', %d, '%s', 'setup',"
	         " 'earlier', 1)", (int)pid, cmd);
	sql(path, buf);
	tap_is_int(&t, mm_state_lock_domain(st, "d.test", "setup", 60000, 0, notice, sizeof(notice), err),
	           MM_OK, "expired lease taken over");
	tap_contains(&t, notice, "lease expired", "expiry explained");
	reap(pid);

	/* Shared-resource locks: all or none, per connection, taken over
	 * from a dead holder or after the lease. */
	shared_locks(&t, st, path);
	shared_lock_pause(&t, st, path);
	slots(&t, st, path);
	shared_notes(&t, st, path);

	/* Another process writing: wait, then name it. */
	pid = writer(path);
	tap_is_int(&t, mm_state_set_mode(st, "e.test", "example", "p", NULL, 0, "setup", "x", err),
	           MM_ERR, "busy database refused after the timeout");
	snprintf(buf, sizeof(buf), "locked by %spid %d", url ? "mailmode " : "", (int)pid);
	tap_contains(&t, err, buf, "the writer is named");
	reap(pid);
	test_prepares(&t, st);
	mm_state_close(st);

	/* A state of schema 5 gets the shared notes. */
	sql(path, url ? "DROP TABLE shared_notes; UPDATE mailmode_schema SET version = 5"
	              : "DROP TABLE shared_notes; PRAGMA user_version = 5");
	tap_is_int(&t, mm_state_open(path, 200, &st, err), MM_OK, "a schema 5 state opened");
	mm_state_close(st);
	tap_is_int(&t, count_in(path, "shared_notes", "1 = 1"), 0, "has the table of shared notes");
	tap_is_int(&t, count_in(path, url ? "mailmode_schema" : "pragma_user_version",
	                        url ? "version = 6" : "user_version = 6"),
	           1, "at schema version 6");

	/* Databases that are not ours, or too new. */
	sql(path, url ? "UPDATE mailmode_schema SET version = 7" : "PRAGMA user_version = 7");
	tap_is_int(&t, mm_state_open(path, 200, &st, err), MM_ERR, "newer schema refused");
	tap_contains(&t, err, "schema version 7, newer than this mailmode's (6)", "versions named");
	if (url) {
		/* Another program's database: pg_unit.t. */
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		return system(cmd) == 0 ? tap_done(&t) : 1;
	}
	snprintf(other, sizeof(other), "%s/other.db", dir);
	sqlite_sql(other, "CREATE TABLE t(x)");
	tap_is_int(&t, mm_state_open(other, 200, &st, err), MM_ERR, "foreign SQLite file refused");
	tap_contains(&t, err, "another program", "explained");
	snprintf(other, sizeof(other), "%s/garbage.db", dir);
	{
		FILE *f = fopen(other, "w");

		fputs("this is not a database, it is a text file that is long enough to matter\n", f);
		fclose(f);
	}
	tap_is_int(&t, mm_state_open(other, 200, &st, err), MM_ERR, "garbage file refused");
	tap_contains(&t, err, "not a database", "explained");
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? tap_done(&t) : 1;
}
