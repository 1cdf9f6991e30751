#!/bin/sh
# The sandbox and real switches in both directions: contoso.test adopted in
# gateway mode, switched to mailflow and back, asserting what the DNS
# servers serve, what the tenant holds and what the state DB records.
. "$top_srcdir/tests/migrate/lib.sh"
plan 21
FRONT_DOOR="0 contoso-test.mail.protection.outlook.test."

run mm sandbox status --dir "$SB"
is "$rc" 0 "sandbox status: everything runs"
like "$out" "BIND 9 secondary .*running" "status lists the servers"
is "$(mx_both contoso.test)" "$GATEWAY_SET | $GATEWAY_SET" "contoso.test starts with MX at the gateway hosts"
is "$(mx_both fabrikam.test)" "0 fabrikam-test.mail.protection.outlook.test. | 0 fabrikam-test.mail.protection.outlook.test." "fabrikam.test starts with Microsoft 365 MX"

run mm adopt contoso.test --mode gateway
is "$rc" 0 "contoso.test adopted in gateway mode"

run mm switch contoso.test --to mailflow --dry-run
like "$(printf '%s' "$out" | tr '\n' ' ')" "setup of contoso.test in mailflow mode would: .*New-TransportRule.*verify mailflow mode.*teardown of contoso.test in gateway mode would:.*$FRONT_DOOR" "dry-run: the cmdlets, then the UPDATE restoring the front door"

start=$(date +%s%N)
run mm switch contoso.test --to mailflow --poll-interval 500ms
to_mailflow=$(( ($(date +%s%N) - start) / 1000000 ))
is "$rc" 0 "switch gateway -> mailflow"
is "$(tenant_objects)" "1 1 1 mailmode route #1" "tenant: one rule for the domain, one connector each way"
wait_mx contoso.test "$FRONT_DOOR"
is "$(mx_both contoso.test)" "$FRONT_DOOR | $FRONT_DOOR" "both servers: MX back at the Microsoft 365 front door"
is "$(db "SELECT mode FROM domains WHERE domain='contoso.test'")" "mailflow" "state: mailflow"
run mm status contoso.test
is "$rc" 0 "status: no drift"
like "$out" "gateway +absent" "status: gateway absent"
like "$out" "mailflow +present" "status: mailflow present"

start=$(date +%s%N)
run mm switch contoso.test --to gateway --poll-interval 500ms
to_gateway=$(( ($(date +%s%N) - start) / 1000000 ))
is "$rc" 0 "switch mailflow -> gateway"
is "$(mx_both contoso.test)" "$GATEWAY_SET | $GATEWAY_SET" "both servers: MX at the gateway hosts"
is "$(tenant_objects)" "0 0 0 " "tenant: rule and connectors removed"
is "$(db "SELECT mode FROM domains WHERE domain='contoso.test'")" "gateway" "state: gateway"
is "$(db "SELECT receipt LIKE '%contoso-test.mail.protection%' FROM domains WHERE domain='contoso.test'")" "1" "the gateway receipt saved the front door MX"
is "$(db "SELECT group_concat(result) FROM migrations WHERE kind='switch'")" "done,done" "two migrations, both done"

run mm sandbox stop --dir "$SB"
is "$rc" 0 "sandbox stop"
ok "$(pgrep -f "$SB" >/dev/null; [ $? -ne 0 ]; echo $?)" "no sandbox process left"
diag "switch gateway -> mailflow took ${to_mailflow} ms, mailflow -> gateway ${to_gateway} ms"
