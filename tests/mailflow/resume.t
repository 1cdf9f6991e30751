#!/bin/sh
# mailflow, issue 11 class 6: after a kill just after Remove-TransportRule
# (the tenant removed the rule, the process died before hearing so), a
# `resume` of the killed teardown and of the killed rollback finish without
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

# kill_after_remove -- MAILMODE-ARGS: runs mailmode while the answer to
# Remove-TransportRule hangs; kills it (SIGKILL) once the tenant has
# removed the rule.
kill_after_remove() {
	shift
	emu_ctl POST /_emu/faults '{"kind":"acted_hang","cmdlet":"Remove-TransportRule","delay_ms":30000}' >/dev/null
	"$MAILMODE" --config "$MF_CONF" --state "$MF_STATE" --plugin-dir "$PLUGIN_DIR" "$@" \
		>"$TEST_TMP/killed.out" 2>&1 &
	_pid=$!
	_i=0
	while [ $_i -lt 600 ] && [ "$(mf_state 'sum(1 for r in s["rules"] if r["Name"] == "mailmode route #1")')" -ne 0 ]; do
		sleep 0.1
		_i=$((_i + 1))
	done
	kill -KILL $_pid 2>/dev/null
	wait $_pid 2>/dev/null
	emu_ctl DELETE /_emu/faults >/dev/null
}

# --- plain teardown killed just after Remove-TransportRule
run mm setup contoso.test --mode mailflow --profile p1
mf_reset_log
kill_after_remove -- teardown contoso.test
is "$(mf_counts)" "1 1 0" "killed after the tenant removed the rule"
# A plain teardown is a journaled operation: the killed one is finished
# with resume (a plain re-run is refused while it is open).
run timeout $CAP "$MAILMODE" --config "$MF_CONF" --state "$MF_STATE" --plugin-dir "$PLUGIN_DIR" resume contoso.test
is "$rc" 0 "resume finishes the teardown without --force"
is "$(mf_counts)" "0 0 0" "and removes the connectors"
is "$(sqlite3 "$MF_STATE" "SELECT count(*) FROM domains WHERE mode IS NOT NULL")" 0 "no mode recorded"

# --- a rollback killed just after Remove-TransportRule, then resume.  New
# objects take 3 s to be listed, so verify cannot pass within 1 s and the
# rollback cannot remove the rule yet: the switch is left unfinished.
mf_tenant
rm -f "$MF_STATE"    # a fresh start, whatever the case above left
emu_ctl POST /_emu/config '{"consistency_delay_s": 3}' >/dev/null
run mm switch contoso.test --to mailflow --poll-interval 200ms --verify-timeout 1s
is "$(mf_counts)" "1 1 1" "a switch to mailflow that could not verify in time (exit $rc)"
sleep 3
kill_after_remove -- -q resume contoso.test
is "$(mf_counts)" "1 1 0" "its resume (the rollback) was killed after the tenant removed the rule"
run timeout $CAP "$MAILMODE" --config "$MF_CONF" --state "$MF_STATE" --plugin-dir "$PLUGIN_DIR" resume contoso.test
diag "resume: $(printf "%s" "$err" | tail -3)"
ok $([ "$rc" -ne 124 ] && [ "$rc" -ne 1 ]; echo $?) "resume finishes the rollback (exit $rc), no loop, no --force"
is "$(mf_counts)" "0 0 0" "nothing is left in the tenant"
is "$(sqlite3 "$MF_STATE" "SELECT result FROM migrations ORDER BY id DESC LIMIT 1")" "rolled_back" "the migration is rolled back"
last=$(sqlite3 "$MF_STATE" "SELECT max(id) FROM migrations")
ok $([ "$(sqlite3 "$MF_STATE" "SELECT count(*) FROM journal WHERE migration_id=$last AND step='rollback_teardown_new' AND phase='attempt'")" -le 2 ]; echo $?) \
	"the rollback's teardown was not retried over and over"
