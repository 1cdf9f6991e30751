#!/bin/sh
# Failures with real servers: verification that never passes is rolled back
# with the old mode intact; the old mode's teardown failing (DNS primary
# down) leaves the migration unfinished until `resume` finishes it.
. "$top_srcdir/tests/migrate/lib.sh"
plan 29
FRONT_DOOR="0 contoso-test.mail.protection.outlook.test."
mm adopt contoso.test --mode gateway >/dev/null 2>&1

# 1. gateway -> mailflow whose rule an admin disables right after setup:
# verify can never pass, so the new mode is removed and gateway stays.
MAILMODE_TEST_CRASH_AT=setup_new:end mm -q switch contoso.test --to mailflow --poll-interval 200ms --verify-timeout 5s >/dev/null 2>&1
is "$?" 137 "interrupted right after the mailflow setup"
is "$(tenant_objects)" "1 1 1 mailmode route #1" "mailflow objects exist"
invoke Disable-TransportRule '{"Identity":"mailmode route #1"}'
run mm resume contoso.test
is "$rc" 3 "verification fails: exit 3"
like "$err" "mailflow mode did not verify .*rolled back, contoso.test stays gateway" "rollback explained"
like "$err" "State|Enabled|Disabled" "the failing field is named"
is "$(tenant_objects)" "0 0 0 " "the new mode's rule and connectors are gone"
is "$(mx_both contoso.test)" "$GATEWAY_SET | $GATEWAY_SET" "gateway MX untouched on both servers"
is "$(db "SELECT mode FROM domains")/$(db "SELECT result FROM migrations ORDER BY id DESC LIMIT 1")" "gateway/rolled_back" "state: gateway; migration rolled back"

# 2. gateway -> mailflow with the DNS primary hung.  Before anything
# changes, the preflight finds that gateway mode could not be torn down.
kill -STOP "$DNS_PRIMARY_PID"
at_exit "kill -CONT $DNS_PRIMARY_PID 2>/dev/null"
run mm switch contoso.test --to mailflow --poll-interval 200ms --verify-timeout 6s
is "$rc" 1 "preflight: gateway teardown cannot run while the primary is hung: exit 1"
like "$err" "preflight: gateway mode cannot be torn down: .*nothing was changed" "refused before any change, saying why"
is "$(tenant_objects)" "0 0 0 " "nothing was made in the tenant"
# The primary hangs after mailflow verified: the gateway teardown cannot
# reach it, so the switch stays unfinished.
kill -CONT "$DNS_PRIMARY_PID"
MAILMODE_TEST_CRASH_AT=verify_new:end mm -q switch contoso.test --to mailflow --poll-interval 200ms --verify-timeout 6s >/dev/null 2>&1
is "$?" 137 "killed right after mailflow verified"
kill -STOP "$DNS_PRIMARY_PID"
run mm resume contoso.test --lock-timeout 1s
is "$rc" 1 "old mode's teardown fails: exit 1"
like "$err" "teardown of the old mode failed: .*the switch is unfinished: fix it, then run 'mailmode resume contoso.test'" "says how to finish"
is "$(tenant_objects)" "1 1 1 mailmode route #1" "mailflow is live and verified"
run mm status contoso.test
like "$out" "UNFINISHED switch gateway -> mailflow .*last step verify_new" "status shows the migration stuck after verify"
isnt_zero() { [ "$1" -ne 0 ]; ok $? "$2"; }
isnt_zero "$rc" "status exits non-zero while a migration is open ($rc)"
run mm abort contoso.test
is "$rc" 4 "abort refused: the old mode's teardown has begun"
kill -CONT "$DNS_PRIMARY_PID"
run mm resume contoso.test
is "$rc" 0 "resume finishes once the primary answers"
wait_mx contoso.test "$FRONT_DOOR"
is "$(mx_both contoso.test)" "$FRONT_DOOR | $FRONT_DOOR" "the original MX is back on both servers"
is "$(db "SELECT mode FROM domains")|$(db "SELECT count(*) FROM migrations WHERE finished_at IS NULL")" "mailflow|0" "state: mailflow, nothing unfinished"

# 3. mailflow -> gateway with the secondary hung from the gateway setup on:
# gateway never verifies on every server; the rollback cannot confirm the
# gateway MX gone from the secondary either, so the migration waits for
# `resume`.
MAILMODE_TEST_CRASH_AT=setup_new:begin mm -q switch contoso.test --to gateway --poll-interval 500ms --verify-timeout 4s >/dev/null 2>&1
kill -STOP "$DNS_SECONDARY_PID"
at_exit "kill -CONT $DNS_SECONDARY_PID 2>/dev/null"
run mm resume contoso.test
is "$rc" 1 "rollback cannot be confirmed while the secondary is hung: exit 1"
like "$err" "rollback: the new mode could not be confirmed gone: .*no answer" "says so, naming the silent server"
is "$(mx "$DNS_PRIMARY" contoso.test)" "$FRONT_DOOR" "the primary already serves the original MX again"
is "$(tenant_objects)" "1 1 1 mailmode route #1" "mailflow untouched"
kill -CONT "$DNS_SECONDARY_PID"
run mm resume contoso.test
is "$rc" 0 "resume confirms the rollback"
wait_mx contoso.test "$FRONT_DOOR"
is "$(mx_both contoso.test)" "$FRONT_DOOR | $FRONT_DOOR" "both servers serve the original MX"
is "$(db "SELECT mode FROM domains")/$(db "SELECT result FROM migrations ORDER BY id DESC LIMIT 1")" "mailflow/rolled_back" "state: mailflow; migration rolled back"
is "$(db "SELECT count(*) FROM locks")" 0 "no lock left"
