#!/bin/sh
# Plain setup, teardown and adopt are journaled migrations: interrupted at
# any step they are listed by status and finished by resume (or undone by
# abort), they wait until every authoritative server agrees (--no-wait
# skips it), the first snapshot of what a mode replaced is kept in the
# state DB, and a kill right after a migration closes leaves no lock.
# Against the sandbox: BIND 9 primary + secondary and the emulator.
. "$top_srcdir/tests/migrate/lib.sh"
plan 49
D=fabrikam.test
FRONT_DOOR="0 fabrikam-test.mail.protection.outlook.test."
FAST="--poll-interval 200ms --verify-timeout 10s"

open_migrations() { db "SELECT count(*) FROM migrations WHERE finished_at IS NULL"; }
last() { db "SELECT kind || '/' || result FROM migrations WHERE domain='$D' ORDER BY id DESC LIMIT 1"; }

is "$(mx_both $D)" "$FRONT_DOOR | $FRONT_DOOR" "$D starts at its Microsoft 365 front door"

# 1. setup killed before its UPDATE: status says so, resume finishes it.
MAILMODE_TEST_CRASH_AT=setup_new:begin mm -q setup $D --mode gateway $FAST >/dev/null 2>&1
is "$?" 137 "setup killed before its change"
run mm status $D
is "$rc" 4 "status exits 4 while the setup is unfinished"
like "$out" "UNFINISHED setup none -> gateway .*last step planned: mailmode resume $D" "status names the unfinished setup"
run mm resume
is "$rc" 0 "resume finishes it"
like "$out" "$D: resuming the setup none -> gateway" "resume lists the setup"
is "$(mx_both $D)" "$GATEWAY_SET | $GATEWAY_SET" "both servers serve the gateway set"
is "$(db "SELECT mode FROM domains WHERE domain='$D'")|$(last)|$(open_migrations)" "gateway|setup/done|0" \
   "state: gateway, the setup done, nothing open"
run mm status $D
is "$rc" 0 "status right after: exit 0"

# 2. The first snapshot of what gateway mode replaced is kept, with TTLs.
run mm --json status $D
is "$(printf '%s' "$out" | "$PYTHON3" -c '
import json, sys
o = json.load(sys.stdin)["domains"][0]["originals"]["gateway"]
print(" ".join("%d %s %d" % (m["pref"], m["host"], m["ttl"]) for m in o["mx"]))')" \
   "0 fabrikam-test.mail.protection.outlook.test. 2" \
   "status --json shows the kept original with its TTL"
run mm log $D
like "$out" "original-kept .*fabrikam-test.mail.protection.outlook.test" "mailmode log shows it"
is "$(db "SELECT count(*) FROM originals WHERE domain='$D' AND restored_at IS NULL")" 1 "one kept original"

# 3. teardown killed after its change, before the confirmation: resume
# confirms it on every server.
MAILMODE_TEST_CRASH_AT=teardown_old:end mm -q teardown $D $FAST >/dev/null 2>&1
is "$?" 137 "teardown killed after its change"
run mm status $D
like "$out" "UNFINISHED teardown gateway -> none" "status names the unfinished teardown"
run mm abort $D
is "$rc" 4 "abort of a teardown that changed the world is refused"
like "$err" "can only go forward: run 'mailmode resume $D'" "and says how to finish"
run mm resume $D
is "$rc" 0 "resume finishes the teardown"
is "$(mx_both $D)" "$FRONT_DOOR | $FRONT_DOOR" "the original is back on both servers"
is "$(db "SELECT coalesce(mode, 'none') FROM domains WHERE domain='$D'")|$(last)" "none|teardown/done" "state: no mode"
is "$(db "SELECT count(*) FROM originals WHERE domain='$D' AND restored_at IS NULL")" 0 "the original is released once put back"
run mm status $D
is "$rc" 0 "status right after the teardown: no drift"

# 4. A plain teardown waits for every server: status right after is clean.
mm -q setup $D --mode gateway $FAST >/dev/null 2>&1
run mm -v teardown $D $FAST
is "$rc" 0 "teardown"
like "$err" "waiting until gateway mode is gone from every server" "says what it waits for"
is "$(mx_both $D)" "$FRONT_DOOR | $FRONT_DOOR" "both servers serve the original when teardown returns"
run mm status $D
is "$rc" 0 "status right after teardown: exit 0, no drift"

# 5. abort undoes an interrupted setup.
MAILMODE_TEST_CRASH_AT=setup_new:end mm -q setup $D --mode gateway $FAST >/dev/null 2>&1
is "$?" 137 "setup killed after its change"
run mm abort $D
is "$rc" 0 "abort undoes it"
wait_mx $D "$FRONT_DOOR"
is "$(mx_both $D)" "$FRONT_DOOR | $FRONT_DOOR" "the original is back"
is "$(db "SELECT coalesce(mode, 'none') FROM domains WHERE domain='$D'")|$(last)" "none|setup/aborted" "state: no mode, setup aborted"

# 6. --no-wait: recorded at once, nothing waited for.
run mm setup $D --mode gateway --no-wait
is "$rc" 0 "setup --no-wait"
is "$(db "SELECT count(*) FROM journal WHERE step='verify_new' AND migration_id=(SELECT max(id) FROM migrations)")" 0 \
   "no verification step journaled"
is "$(db "SELECT mode FROM domains WHERE domain='$D'")" gateway "recorded"
wait_mx $D "$GATEWAY_SET"

# 7. A kill right after the close leaves no lock row.
MAILMODE_TEST_CRASH_AT=close:end mm -q teardown $D $FAST >/dev/null 2>&1
is "$?" 137 "teardown killed right after the migration closed"
is "$(db "SELECT count(*) FROM locks")|$(open_migrations)" "0|0" "no lock row and nothing open left behind"
run mm status $D
is "$rc" 0 "status: exit 0"

# A process killed after taking the lock and before opening its migration
# (during its preflight) leaves a lock that resume removes, naming it.
sh -c 'exit 0' & dead=$!; wait $dead
db "INSERT INTO locks VALUES('$D', 'someone@$(hostname)', $dead, '$(hostname)', 'setup', '2026-01-01T00:00:00Z', 9999999999999)"
run mm resume
is "$rc|$(db "SELECT count(*) FROM locks")" "0|0" "resume removes a lock whose owner is gone"
like "$err" "removed the lock on $D left by someone@.* that process is gone" "and says whose it was"

# 8. Honest progress: a wait shows minutes:seconds of this run, not of 1970.
# (A silent secondary before the setup is refused by its preflight; here
# it falls silent after the preflight.)
kill -STOP "$DNS_SECONDARY_PID"
at_exit "kill -CONT $DNS_SECONDARY_PID 2>/dev/null"
run mm setup $D --mode gateway --poll-interval 200ms --verify-timeout 3s
is "$rc" 1 "setup refused by its preflight while the secondary is silent: exit 1"
like "$err" "preflight: gateway mode cannot be set up: .*nothing was changed" "and says nothing was changed"
kill -CONT "$DNS_SECONDARY_PID"
MAILMODE_TEST_CRASH_AT=setup_new:begin mm -q setup $D --mode gateway --poll-interval 200ms --verify-timeout 3s >/dev/null 2>&1
kill -STOP "$DNS_SECONDARY_PID"
run mm -v resume $D
is "$rc" 3 "setup not in effect on every server in time: exit 3"
like "$err" "attempt [0-9]+, 0:0[0-9] elapsed" "progress shows the time since this run began"
like "$err" "set up but not in effect everywhere after 3s: .*ns2.* run 'mailmode resume $D' to wait again or 'mailmode abort $D' to undo it" \
     "names the silent server and what to do"
kill -CONT "$DNS_SECONDARY_PID"
wait_mx $D "$GATEWAY_SET"
run mm resume $D
is "$rc" 0 "resume waits again and finishes"
is "$(db "SELECT mode FROM domains WHERE domain='$D'")|$(open_migrations)" "gateway|0" "state: gateway"
run mm --json status $D
is "$rc" 0 "status: clean"

# 9. adopt is journaled too (contoso.test starts with the gateway set and no
# mode recorded).
MAILMODE_TEST_CRASH_AT=adopt_confirm:begin mm -q adopt contoso.test --mode gateway >/dev/null 2>&1
is "$?" 137 "adopt killed"
run mm status contoso.test
like "$out" "UNFINISHED adopt none -> gateway" "status names the unfinished adopt"
run mm resume contoso.test
is "$rc" 0 "resume finishes the adopt"
is "$(db "SELECT mode || '/' || adopted FROM domains WHERE domain='contoso.test'")" "gateway/1" "adopted"
