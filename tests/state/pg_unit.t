#!/bin/sh
# The state store on PostgreSQL: a real server (tests/servers/pg.sh), the
# state's unit tests run against it (tests/unit/state_test with
# MAILMODE_TEST_STATE: one-mode trigger, locks and their takeovers, shared
# locks, shared notes and the upgrade from schema 5, a busy database naming
# its writer, prepares, a newer schema refused), and what only PostgreSQL has: the one-mode rule refusing a
# second mode by SQL from another client, another program's database
# refused, a password in the URL refused and never echoed.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/servers/pg.sh"
pg_start || { echo "Bail out! PostgreSQL did not start"; exit 1; }
plan 12

MAILMODE_TEST_STATE=$PG_URL "$top_builddir/tests/unit/state_test" >"$TEST_TMP/unit.out" 2>&1
urc=$?
grep '^not ok' "$TEST_TMP/unit.out" | sed 's/^/# /'
is "$urc/$(grep -c '^ok' "$TEST_TMP/unit.out")" "0/92" "the state's unit tests pass on PostgreSQL (92 of 92)"

# --- the one-mode rule is the database's: psql, not mailmode, is refused
pg_sql "DROP SCHEMA public CASCADE; CREATE SCHEMA public" >/dev/null 2>&1
cat >"$TEST_TMP/mailmode.conf" <<CONF
[mailmode]
state = $PG_URL
plugin_dir = $PLUGIN_DIR
CONF
export MAILMODE_CONFIG="$TEST_TMP/mailmode.conf"
run "$MAILMODE" status
is "$rc" 0 "status with state = postgresql://... in [mailmode] creates the schema ($err)"
is "$(pg_sql 'SELECT version FROM mailmode_schema')" 6 "the schema is at version 6"
pg_sql "INSERT INTO domains(domain, mode, updated_at) VALUES('one.test', 'gateway', 'now')"
pg_sql "UPDATE domains SET mode = 'mailflow' WHERE domain = 'one.test'" 2>"$TEST_TMP/psql.err"
like "$(cat "$TEST_TMP/psql.err")" "one-mode invariant" "a second mode for a domain is refused by the database itself"
is "$(pg_sql "SELECT mode FROM domains WHERE domain = 'one.test'")" gateway "the domain keeps its one mode"
pg_sql "INSERT INTO migrations(domain, from_mode, to_mode, step, started_at) VALUES('one.test', 'gateway', 'mailflow', 'setup', 'now')"
pg_sql "INSERT INTO migrations(domain, from_mode, to_mode, step, started_at) VALUES('one.test', 'gateway', 'mailflow', 'setup', 'now')" 2>"$TEST_TMP/psql.err"
like "$(cat "$TEST_TMP/psql.err")" "one_open_migration" "a second open migration of a domain is refused too"
pg_sql "UPDATE domains SET mode = 'mailflow' WHERE domain = 'one.test'"
is "$(pg_sql "SELECT mode FROM domains WHERE domain = 'one.test'")" mailflow "inside its open migration the mode may change"

# --- not mailmode's database, or a password in the URL
pg_sql "CREATE DATABASE other" postgres
pg_sql "CREATE TABLE invoices(id int)" other
other=$(printf '%s' "$PG_URL" | sed 's|/state$|/other|')
run "$MAILMODE" --state "$other" status
like "$rc: $err" "^1: .*state DB $other holds tables of another program, not mailmode's" \
	"another program's database is refused, named"
is "$(pg_sql "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'" other)" 1 "and left as it was"
secret="postgresql://mailmode:pg-test-secret@127.0.0.1:$PG_PORT/state"
run "$MAILMODE" --state "$secret" status
like "$rc: $err" "^1: .*a password in the URL is refused: put it in ~/.pgpass" "a password in the URL is refused"
unlike "$out$err" "pg-test-secret" "and not echoed"
run env PGPASSFILE=/nonexistent "$MAILMODE" --state "$PG_URL" status
like "$rc: $err" "^1: .*state DB $PG_URL: cannot connect: .*password" \
	"without the passfile the connection fails, naming the database"
