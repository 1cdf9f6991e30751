#!/bin/sh
# mailflow: domains of one tenant join its shared rule one right after the
# other while Exchange shows each write only 5 s late.  Set-TransportRule
# replaces the rule's whole list, so the next domain must not write on
# the old one: each setup (and teardown) leaves its write in the tenant's
# shared note (the state DB, plugin ABI 1.6) and the next, under the
# tenant's lock, builds on it, instead of each waiting for its own write
# to show.  No domain is lost, the rule is made once, and each write is
# read back once (Get-TransportRule -Identity), not again and again while
# it is late.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/mailflow/lib-mailflow.sh"

plan 24

mf_start
mf_tenant '{"accepted_domains": ["contoso.test", "d1.test", "d2.test", "d3.test", "d4.test", "d5.test", "d6.test"]}'
mf_config secret 'visibility_window_ms = 8000'

# The rule's members as they are (not as shown), sorted.
members() {
	mf_state '",".join(sorted(next(r for r in s["rules"] if r["Name"] == "mailmode route #1")["RecipientDomainIs"] or []))'
}
read_backs() { mf_rule_io | cut -d' ' -f2; }
# The note's last list written, sorted, and how many writes it holds.
note_last() {
	sqlite3 "$MF_STATE" "SELECT note FROM shared_notes WHERE resource = 'tenant $MF_TENANT'" |
		"$PYTHON3" -c '
import json, sys
w = json.load(sys.stdin)["rules"]["mailmode route #1"]["writes"]
print(len(w) > 0, ",".join(sorted(w[-1]["list"])))'
}

emu_ctl POST /_emu/config '{"consistency_delay_s": 5}' >/dev/null
run mm setup contoso.test --mode mailflow --profile p1 --no-wait
is "$rc" 0 "the first domain makes the connectors and the shared rule"
mf_settled

# --- five commands, one right after the other
mf_reset_log
rcs=
for d in d1 d2 d3 d4 d5; do
	run mm setup $d.test --mode mailflow --profile p1 --no-wait
	rcs=$rcs$rc
done
is "$rcs" 00000 "five more domains set up back to back, each write 5 s late to show"
is "$(mf_rule_io)" "5 5" "each joined the rule with one write, read back once"
is "$(note_last)" "True contoso.test,d1.test,d2.test,d3.test,d4.test,d5.test" \
	"the tenant's note holds the writes not shown yet, the last listing all six"
is "$(members) $(mf_counts)" "contoso.test,d1.test,d2.test,d3.test,d4.test,d5.test 1 1 1" \
	"the rule holds all six, none lost: one rule, made once"
mf_settled
run mm verify d1.test
is "$rc" 0 "once shown, the first of them verifies"

# --- the joined domain's verify waits until its membership shows
mf_reset_log
run mm setup d6.test --mode mailflow --profile p1 --verify-timeout 60s
is "$rc:$(members)" "0:contoso.test,d1.test,d2.test,d3.test,d4.test,d5.test,d6.test" \
	"a setup that waits for its verify succeeds"
is "$(mf_requests 'sum(1 for x in r if x["cmdlet"] == "Get-TransportRule") > 3') $(read_backs)" "True 1" \
	"its verify read the rules again and again until the domain was listed (one read-back)"

# --- all torn down, then a runbook of five at once
emu_ctl POST /_emu/config '{"consistency_delay_s": 0}' >/dev/null
mf_settled
for d in d1 d2 d3 d4 d5 d6; do
	run mm teardown $d.test --no-wait
done
is "$(members)" "contoso.test" "five torn down, one by one, contoso.test left"
cat >"$TEST_TMP/rb.ini" <<'RUNBOOK'
[runbook]
parallel = 5
verify_timeout = 60s
poll_interval = 200ms

[domains]
d1.test = mailflow p1
d2.test = mailflow p1
d3.test = mailflow p1
d4.test = mailflow p1
d5.test = mailflow p1
RUNBOOK
emu_ctl POST /_emu/config '{"consistency_delay_s": 5}' >/dev/null
mf_reset_log
run mm runbook run "$TEST_TMP/rb.ini"
is "$rc" 0 "a runbook of five domains of the tenant, parallel 5, each write 5 s late, succeeds"
is "$(mf_rule_io)" "5 5" "each joined the rule with one write, read back once"
is "$(members) $(mf_counts)" "contoso.test,d1.test,d2.test,d3.test,d4.test,d5.test 1 1 1" \
	"the rule holds all six: none lost"
is "$(sqlite3 "$MF_STATE" "SELECT count(*) FROM domains WHERE mode = 'mailflow'")" 6 \
	"all are switched"

# --- one domain leaves while another joins, two processes at once
mf_settled
mf_reset_log
mm teardown d1.test --no-wait >"$TEST_TMP/td.out" 2>&1 &
tpid=$!
mm setup d6.test --mode mailflow --profile p1 --no-wait >"$TEST_TMP/su.out" 2>&1
src=$?
wait $tpid
trc=$?
is "$trc $src" "0 0" "a teardown and a setup of the tenant at once both succeed"
is "$(members)" "contoso.test,d2.test,d3.test,d4.test,d5.test,d6.test" \
	"the rule lost the domain torn down and kept the one joining"
is "$(mf_rule_io)" "2 2" "one write each, read back once"

# --- the lock taken over while the rule's write is in flight: its note
# is refused (the lease is renewed first), so no later writer builds on
# a write whose lock was lost; the rollback takes the domain out again
mf_settled
emu_ctl POST /_emu/faults '{"kind":"slow","count":1,"cmdlet":"Set-TransportRule","delay_ms":3000}' >/dev/null
mm setup d1.test --mode mailflow --profile p1 --no-wait >"$TEST_TMP/bg.out" 2>"$TEST_TMP/bg.err" &
setup_pid=$!
mf_wait_fault
sqlite3 "$MF_STATE" "UPDATE shared_locks SET host = 'elsewhere.example', pid = 4242"
sleep 4
sqlite3 "$MF_STATE" "DELETE FROM shared_locks"
wait $setup_pid
rc=$?
emu_ctl DELETE /_emu/faults >/dev/null
ok $([ "$rc" -ne 0 ]; echo $?) "the setup whose lock was taken over stops (exit $rc)"
like "$(cat "$TEST_TMP/bg.err")" "could not be stored: .*no longer this process's" \
	"its note is refused: the lock is no longer its own"
unlike "$(note_last 2>/dev/null)" "d1.test" "no note of its write for the next writer"
mf_settled
is "$(members)" "contoso.test,d2.test,d3.test,d4.test,d5.test,d6.test" \
	"and the rollback took the domain out of the rule again"

# --- a list no noted write made (an admin's edit, seen before the note's
# write shows): that writer's list is written on; the note does not
# overwrite the admin's edit
mf_settled
emu_ctl POST /_emu/config '{"consistency_delay_s": 5}' >/dev/null
run mm setup d1.test --mode mailflow --profile p1 --no-wait
is "$rc" 0 "d1.test joins again, its write 5 s late to show"
emu_ctl POST /_emu/config '{"consistency_delay_s": 0}' >/dev/null
mf_invoke Set-TransportRule '{"Identity": "mailmode route #1", "RecipientDomainIs": ["contoso.test", "d2.test", "d3.test", "d4.test", "d5.test", "d6.test", "hand.example.net"]}'
mf_reset_log
run mm teardown d2.test --no-wait
like "$rc $err" "^0 .*transport rule 'mailmode route #1' shows a list no write of mailmode's made" \
	"a teardown seeing an admin's list says so"
is "$(members)" "contoso.test,d3.test,d4.test,d5.test,d6.test,hand.example.net" \
	"and writes on that list: the admin's edit is kept (it dropped d1.test)"
is "$(read_backs)" 1 "that write is read back once"
