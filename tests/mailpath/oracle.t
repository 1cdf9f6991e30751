#!/bin/sh
# The proof that a switch loses no message and scans none twice: while
# `mailmode switch` moves contoso.test gateway -> mailflow and back, an
# internet sender delivers a message every 100-200 ms to three mailboxes
# (resolving the MX in the sandbox DNS per message) until 2 s after the
# switch; the oracle then checks every message was delivered exactly once,
# scanned at least once, and scanned exactly once when sent after the switch
# finished.  Negative controls, which the oracle must fail: (a) both modes
# live (a switch killed right after verify) with gateway hosts sending from
# addresses the profile's service_ips does not list: mail is scanned twice;
# (b) the gateway torn down with no mailflow rule: mail reaches the
# mailboxes unscanned.
. "$top_srcdir/tests/mailpath/lib.sh"
plan 26
RCPTS=alice@contoso.test,bob@contoso.test,carol@contoso.test

# Objects become visible 2 s after they are made (eventual consistency): the
# switch then spans more messages, and the rule's delay is the front door's.
emu_config '{"consistency_delay_s": 2}'
run mm adopt contoso.test --mode gateway
is "$rc" 0 "contoso.test adopted in gateway mode"


# --- gateway -> mailflow -----------------------------------------------------
switch_under_load g2m mailflow
is "$switch_rc" 0 "switch gateway -> mailflow while mail flows"
oracle g2m "$DONE_AT"
show
is "$rc" 0 "gateway -> mailflow: every message delivered exactly once, scanned at least once, once after the switch"
like "$out" "paths:.* gateway [1-9][0-9]*,.*mailflow [1-9]" "messages came by both paths (the switch happened under load)"
ok "$([ "$(count sent)" -ge 15 ]; echo $?)" "at least 15 messages sent ($(count sent))"
is "$(tenant_objects)" "1 1 1 mailmode route #1" "tenant: the rule and both connectors"

# --- mailflow -> gateway -----------------------------------------------------
switch_under_load m2g gateway
is "$switch_rc" 0 "switch mailflow -> gateway while mail flows"
oracle m2g "$DONE_AT"
show
is "$rc" 0 "mailflow -> gateway: every message delivered exactly once, scanned at least once, once after the switch"
like "$out" "paths:.* gateway [1-9][0-9]*,.*mailflow [1-9]" "messages came by both paths"
ok "$([ "$(count sent)" -ge 15 ]; echo $?)" "at least 15 messages sent ($(count sent))"
is "$(tenant_objects)" "0 0 0 " "tenant: rule and connectors gone"

# --- both modes live (a switch killed after verify, before the teardown) -----
MAILMODE_TEST_CRASH_AT=verify_new:end mm -q switch contoso.test --to mailflow --poll-interval 250ms --verify-timeout 30s >/dev/null 2>&1
is "$?" 137 "switch to mailflow killed right after verify"
BOTH_AT=$(now)
is "$(mx_both contoso.test)" "$GATEWAY_SET | $GATEWAY_SET" "the MX still points at the gateway hosts"
is "$(tenant_objects)" "1 1 1 mailmode route #1" "and the mailflow rule is live"

# The gateway hosts deliver from the service's addresses: the rule's
# exception (ExceptIfSenderIpRanges = service_ips) lets gateway mail through,
# scanned once although both modes are live.
sender_start both "$RCPTS"
sleep 2
sender_stop both
oracle both "$BOTH_AT"
show
is "$rc" 0 "both modes live, gateway hosts at the service's addresses: still scanned exactly once"

# (a) Gateway hosts at an address service_ips does not list (another
# region's): the rule routes gateway mail through the service a second time.
service_config '{"gateway_source": "127.0.0.25"}'
DOUBLE_AT=$(now)
sender_start double "$RCPTS"
sleep 2
sender_stop double
oracle double "$DOUBLE_AT"
show
is "$rc" 1 "negative control (a): the oracle fails"
like "$out" "VIOLATION scanned twice after the switch: [1-9]" "(a): it reports messages scanned twice"
is "$(count "scanned twice")" "$(count sent)" "(a): every message scanned twice ($(count sent))"
like "$out" "paths: gateway\+mailflow [1-9][0-9]*$" "(a): each by the gateway and by mailflow"
like "$out" "delivered exactly once [1-9][0-9]*, duplicated 0, lost 0" "(a): still delivered exactly once"
service_config '{"gateway_source": null}'

run mm -q abort contoso.test
is "$rc" 0 "abort rolls the half-done switch back"
is "$(tenant_objects)" "0 0 0 " "tenant: the mailflow objects are gone again"

# (b) The gateway torn down while no mailflow rule exists: mail goes
# straight to the front door, unscanned.
run mm -q teardown contoso.test
is "$rc" 0 "gateway mode torn down (MX back at the front door), no mailflow"
wait_mx contoso.test "$FRONT_DOOR"
sender_start unscanned "$RCPTS"
sleep 2
sender_stop unscanned
oracle unscanned
show
is "$rc" 1 "negative control (b): the oracle fails"
like "$out" "VIOLATION unscanned: [1-9]" "(b): it reports unscanned messages"
is "$(count unscanned)" "$(count sent)" "(b): every message unscanned ($(count sent))"
