#!/bin/sh
# route53.test in the sandbox: its zone at the emulated Amazon Route 53
# (r53emu.py, SigV4 checked, BIND behind it; [dns sandbox-route53], profile
# route53).  mailmode-plugin-check passes the gateway plugin on it; then
# setup in gateway mode from no mode and a switch to mailflow and back
# while mail flows, proved by the oracle (every message delivered exactly
# once, scanned at least once, and once when sent after the switch);
# teardown restores the front door MX.
. "$top_srcdir/tests/mailpath/lib.sh"
. "$top_srcdir/tests/sdk/check-lib.sh"
plan 16
D=route53.test
R53_FRONT="0 route53-test.mail.protection.outlook.test."
RCPTS=alice@route53.test,bob@route53.test
R53_URL=$(jpy 'd["route53"]["api_url"]' <"$SB/sandbox.json")
R53_CA=$(jpy 'd["route53"]["ca_file"]' <"$SB/sandbox.json")
# r53_calls WHAT: a TAP comment with the Route 53 API calls since the last
# one (then forgotten) and the last propagation to BIND.
r53_calls() {
	diag "$1: $(curl -sS --cacert "$R53_CA" "$R53_URL/_emu/requests" | jpy 'len(d)') Route 53 API calls; $(grep propagated "$SB/route53/emu.log" | tail -1 | sed 's/.*r53emu: //')"
	curl -sS --cacert "$R53_CA" -X DELETE "$R53_URL/_emu/requests" >/dev/null
}

is "$(mx_both $D)" "$R53_FRONT | $R53_FRONT" "route53.test starts with Microsoft 365 MX, as the Route 53 zone holds"
run mm sandbox status --dir "$SB"
like "$out" "Route 53 emulator +pid [0-9]+ +running" "sandbox status lists the Route 53 emulator"

check_plugin --config "$MAILMODE_CONFIG" --profile route53 --domain $D --poll-interval 500ms \
	"$PLUGIN_DIR/gateway.so"
is "$rc" 0 "mailmode-plugin-check passes the gateway plugin on route53.test"
is "$(check_count ok):$(check_failed)" "$(check_planned):" "every check ok"
is "$(mx_both $D)" "$R53_FRONT | $R53_FRONT" "the checks left the front door MX"

r53_calls "mailmode-plugin-check"
run mm setup $D --mode gateway --profile route53
is "$rc" 0 "setup in gateway mode through Route 53"
[ "$rc" = 0 ] || show
wait_mx $D "$GATEWAY_SET"
is "$(mx_both $D)" "$GATEWAY_SET | $GATEWAY_SET" "both servers serve the gateway MX"


r53_calls "setup"
switch_under_load g2m mailflow $D
r53_calls "switch to mailflow"
is "$switch_rc" 0 "switch gateway -> mailflow while mail flows"
wait_mx $D "$R53_FRONT"
is "$(mx_both $D)" "$R53_FRONT | $R53_FRONT" "the front door MX is back (restored through Route 53)"
oracle g2m "$DONE_AT"
show
is "$rc" 0 "gateway -> mailflow: every message delivered exactly once, scanned at least once, once after the switch"
ok "$([ "$(count sent)" -ge 10 ]; echo $?)" "at least 10 messages sent ($(count sent))"

switch_under_load m2g gateway $D
r53_calls "switch to gateway"
is "$switch_rc" 0 "switch mailflow -> gateway while mail flows"
wait_mx $D "$GATEWAY_SET"
is "$(mx_both $D)" "$GATEWAY_SET | $GATEWAY_SET" "the gateway MX again"
oracle m2g "$DONE_AT"
show
is "$rc" 0 "mailflow -> gateway: every message delivered exactly once, scanned at least once, once after the switch"

run mm teardown $D
is "$rc" 0 "teardown"
wait_mx $D "$R53_FRONT"
is "$(mx_both $D)" "$R53_FRONT | $R53_FRONT" "the original front door MX, through Route 53"
