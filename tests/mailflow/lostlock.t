#!/bin/sh
# mailflow: the tenant lock taken over while setup waits for an answer
# (its lease ran out, another host's process holds it now).  Setup stops
# before its next write, and the journal keeps no checkpoint of that
# write: the lease is renewed before a checkpoint is saved.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/mailflow/lib-mailflow.sh"

plan 4

mf_start
mf_tenant
mf_config secret

db() { sqlite3 "$MF_STATE" "$1"; }

emu_ctl POST /_emu/faults '{"kind":"slow","count":1,"cmdlet":"New-InboundConnector","delay_ms":3000}' >/dev/null
mm setup contoso.test --mode mailflow --profile p1 >"$TEST_TMP/bg.out" 2>"$TEST_TMP/bg.err" &
setup_pid=$!
mf_wait_fault
# The lock is another host's now, as after a takeover once the lease ran
# out; that holder is done once the answer in flight came (3 s), and the
# stopped setup rolls back.
db "UPDATE shared_locks SET host = 'elsewhere.example', pid = 4242"
sleep 5
db "DELETE FROM shared_locks"
wait $setup_pid
rc=$?
emu_ctl DELETE /_emu/faults >/dev/null
ok $([ "$rc" -ne 0 ]; echo $?) "setup whose lock was taken over stops (exit $rc)"
like "$(cat "$TEST_TMP/bg.err")" "no longer this process's.*stopped before the next write" \
	"saying the lock is no longer its own"
is "$(mf_requests 'sum(1 for x in r if x["cmdlet"] in ("New-OutboundConnector", "New-TransportRule"))')" 0 \
	"nothing after the write in flight was sent"
is "$(db "SELECT count(*) FROM journal WHERE step = 'checkpoint' AND detail LIKE '%outbound_connector%'")" 0 \
	"no checkpoint of the write that was never made"
