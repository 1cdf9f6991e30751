#!/bin/sh
# Verification asks every authoritative server: a stopped secondary
# (SIGSTOP) is reported by name and fails verify (exit 3) and makes status
# show the mode as partial; once it runs again (SIGCONT) it catches up
# (NOTIFY + IXFR) and verify passes.
. "$top_srcdir/tests/gateway/gateway-lib.sh"

plan 12

D=example.test
at_exit "kill -CONT $DNS_SECONDARY_PID 2>/dev/null"

kill -STOP "$DNS_SECONDARY_PID"
mm setup $D --mode gateway --profile lab --no-wait
is "$rc" 0 "setup --no-wait succeeds with the secondary stopped (it only needs the primary)"
is "$(mx_bind $D)" "$GATEWAY_SET" "the primary serves the gateway set"

mm verify $D
is "$rc" 3 "verify fails (exit 3) while the secondary is stopped"
like "$err" "not yet served by every authoritative server of zone example.test \(1 of 2 answered\): ns2.example.test. \(127.0.0.12\): SOA: no answer within 2 s" "the summary names the silent server"
like "$err" "ns1.example.test. \(127.0.0.11\): serial [0-9]+, MX 10 mx-01.gw.test., 20 mx-02.gw.test." "the detail shows the primary's answer"

mm --json verify $D
is "$(json_get "$out" "[(s['address'], s['answered'], s.get('error')) for s in sorted(d['report']['servers'], key=lambda s: s['address'])]")" \
	"[('127.0.0.11', True, None), ('127.0.0.12', False, 'SOA: no answer within 2 s')]" \
	"verify --json reports each server's answer or failure"

mm --json status $D
is "$rc" 4 "status reports drift while the secondary is stopped"
is "$(json_get "$out" "d['domains'][0]['observed']['gateway']['presence']")" "partial" \
	"status: gateway mode is partial"

kill -CONT "$DNS_SECONDARY_PID"
serial=$(dns_serial "$DNS_PRIMARY" $D)
dns_wait_serial "$DNS_SECONDARY" $D "$serial" 20
ok $? "the secondary catches up to serial $serial after SIGCONT"
is "$(dns_mx "$DNS_SECONDARY" $D)" "$GATEWAY_SET" "the secondary serves the gateway set"

mm verify $D
is "$rc" 0 "verify passes once the secondary caught up"

mm status $D
is "$rc" 0 "status shows no drift"
