#!/bin/sh
# mailflow, issue 11 class 6: after a kill just after Remove-TransportRule
# (the tenant removed the rule, the process died before hearing so), a
# plain re-run of teardown and a `resume` of the rollback finish without
# --force and without looping: the checkpoint says the rule was being
# removed, so not listed means gone.  The protection for the genuine case
# (made recently, never removed by mailmode) is in lifecycle.t.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/mailflow/lib-mailflow.sh"

plan 10

mf_start
mf_tenant
mf_config secret
CAP=120    # a safety cap on each run: a loop until the verify timeout fails here

# kill_after_remove CMDLET -- MAILMODE-ARGS: runs mailmode while CMDLET's
# answer hangs; kills it (SIGKILL) once the tenant has carried CMDLET out.
kill_after_remove() {
	_cmdlet=$1
	shift 2
	emu_ctl POST /_emu/faults "{\"kind\":\"acted_hang\",\"cmdlet\":\"$_cmdlet\",\"delay_ms\":30000}" >/dev/null
	mm "$@" >"$TEST_TMP/killed.out" 2>&1 &
	_pid=$!
	_i=0
	while [ $_i -lt 200 ] && [ "$(mf_requests "sum(1 for x in r if x['cmdlet'] == '$_cmdlet')")" -eq 0 ]; do
		sleep 0.1
		_i=$((_i + 1))
	done
	sleep 0.3
	kill -KILL $_pid 2>/dev/null
	wait $_pid 2>/dev/null
	emu_ctl DELETE /_emu/faults >/dev/null
}

# --- plain teardown killed just after Remove-TransportRule
run mm setup contoso.test --mode mailflow --profile p1
mf_reset_log
kill_after_remove Remove-TransportRule -- teardown contoso.test
is "$(mf_counts)" "1 1 0" "killed after the tenant removed the rule"
run timeout $CAP "$MAILMODE" --config "$MF_CONF" --state "$MF_STATE" --plugin-dir "$PLUGIN_DIR" teardown contoso.test
is "$rc" 0 "teardown run again succeeds without --force"
is "$(mf_counts)" "0 0 0" "and removes the connectors"
is "$(sqlite3 "$MF_STATE" "SELECT count(*) FROM domains WHERE mode IS NOT NULL")" 0 "no mode recorded"

# --- a rollback killed just after Remove-TransportRule, then resume
mf_tenant
rm -f "$MF_STATE"    # a fresh start, whatever the case above left
MAILMODE_TEST_CRASH_AFTER=3 mm -q switch contoso.test --to mailflow --poll-interval 200ms --verify-timeout 5s >/dev/null 2>&1
is "$?.$(mf_counts)" "137.1 1 1" "a switch to mailflow killed right after setup"
mf_invoke Disable-TransportRule '{"Identity":"mailmode route contoso.test"}'
mf_reset_log
kill_after_remove Remove-TransportRule -- -q resume contoso.test
is "$(mf_counts)" "1 1 0" "its resume (verify fails: the rule is disabled) was killed after the tenant removed the rule"
run timeout $CAP "$MAILMODE" --config "$MF_CONF" --state "$MF_STATE" --plugin-dir "$PLUGIN_DIR" resume contoso.test
diag "resume: $(printf "%s" "$err" | tail -3)"
ok $([ "$rc" -ne 124 ] && [ "$rc" -ne 1 ]; echo $?) "resume finishes the rollback (exit $rc), no loop, no --force"
is "$(mf_counts)" "0 0 0" "nothing is left in the tenant"
is "$(sqlite3 "$MF_STATE" "SELECT result FROM migrations ORDER BY id DESC LIMIT 1")" "rolled_back" "the migration is rolled back"
last=$(sqlite3 "$MF_STATE" "SELECT max(id) FROM migrations")
ok $([ "$(sqlite3 "$MF_STATE" "SELECT count(*) FROM journal WHERE migration_id=$last AND step='rollback_teardown_new' AND phase='attempt'")" -le 2 ]; echo $?) \
	"the rollback's teardown was not retried over and over"
