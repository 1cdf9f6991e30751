#!/bin/sh
# The quick test against the sandbox's mail path: `verify --quick-test` and
# `switch --quick-test` send a real message to the domain's MX and follow it
# in the message trace (the mailflow plugin's Get-MessageTraceV2) until it
# is delivered, then judge it by how many times it passed through the
# security service.  Passes in gateway and mailflow mode and with a lagging
# trace; fails (exit 3) on mail scanned twice (both modes live, a rule that
# does not except the gateway hosts' addresses), on unscanned mail (a gateway
# profile whose MX is the tenant's own front door), on mail no MX takes and
# on mail that never arrives; usage and configuration errors send nothing.
. "$top_srcdir/tests/mailpath/lib.sh"
plan 70
RCPT=someone@contoso.test
OUTBOUND="mailmode outbound to sandbox-service"

# What the sandbox may not write itself: where the quick test asks for MX
# records, and the addresses the service sends from (its gateway hosts and
# its return host).
conf_has() {
	awk -v s="[$1]" -v k="$2" '/^\[/ { in_s = ($0 == s) }
		in_s && $1 == k { found = 1 } END { exit !found }' "$MAILMODE_CONFIG"
}
SERVICE_IPS=$("$PYTHON3" -c 'import json, sys
s = json.load(open(sys.argv[1]))
print(" ".join([h["address"] for h in s["gateway_hosts"]] + [s["return_host"]["address"]]))' "$SB/sandbox.json")
conf_has quicktest resolver ||
	printf '\n[quicktest]\nresolver = %s@%s\n' "$DNS_PRIMARY" "$DNS_PORT" >>"$MAILMODE_CONFIG"
conf_has "service sandbox-service" service_ips ||
	printf '\n[service sandbox-service]\nservice_ips = %s\n' "$SERVICE_IPS" >>"$MAILMODE_CONFIG"

# qt EXPR: a value of the last --json run's "quick_test" (d is the document).
qt() { printf '%s' "$out" | jpy "d['quick_test']$1"; }
# mailbox_count ADDRESS: messages in the mailbox (0 when none).
mailbox_count() { emu_get "/_emu/tenants/$TENANT/mailboxes" | jpy "d.get('$1', 0)"; }
# side_config NAME SED TEXT: a copy of the sandbox config (in its directory,
# for its relative paths) with its own state DB, edited by the sed script
# SED, with TEXT appended.
side_config() {
	{ sed -e "s/^state = .*/state = $1.db/" -e "$2" "$MAILMODE_CONFIG"; printf '%s\n' "$3"; } \
		>"$SB/$1.conf"
}
# errline: the error line of the last run.
errline() { printf '%s\n' "$err" | grep '^mailmode: error:' | tail -1; }

# --- the command line ----------------------------------------------------------
run mm verify contoso.test --quick-test someone@fabrikam.test
is "$rc" 2 "an address outside the domain: usage error"
like "$err" "--quick-test 'someone@fabrikam.test': the address must be in contoso.test, the domain given to verify" \
	"the error names the domain the address must be in"
run mm switch contoso.test --to mailflow --quick-test nobody
like "$rc $(errline)" "^2 .*--quick-test 'nobody': not an address" "not an address: usage error"
run mm verify contoso.test --quick-test 'a b@contoso.test'
is "$rc" 2 "a local part with a space: usage error"
run mm verify contoso.test --quick-test-timeout 5s
like "$rc $(errline)" "^2 .*--quick-test-timeout needs --quick-test" "--quick-test-timeout alone: usage error"
run mm setup contoso.test --mode gateway --quick-test "$RCPT"
like "$rc $(errline)" "^2 .*not valid for 'setup'" "setup has no --quick-test"
is "$(mailbox_count "$RCPT")" 0 "nothing was sent"

run mm adopt contoso.test --mode gateway
is "$rc" 0 "contoso.test adopted in gateway mode"

# --- configuration errors stop it before any mail goes out ---------------------
side_config noips '/^service_ips *=/d' ""
run mm --config "$SB/noips.conf" --state "$DB" verify contoso.test --quick-test "$RCPT"
is "$rc" 1 "no service_ips: error (exit 1)"
like "$err" "quick test: mailflow: \[service sandbox-service\]: missing key 'service_ips'" \
	"it names the missing key and its section"
side_config badips 's/^service_ips *=.*/service_ips = 127.0.0.21 127.0.0.300/' ""
run mm --config "$SB/badips.conf" --state "$DB" verify contoso.test --quick-test "$RCPT"
like "$rc $(errline)" "^1 .*\[service sandbox-service\]: 'service_ips': '127.0.0.300' is not an IP address or CIDR range" \
	"a malformed service_ips entry is named"
side_config badqt '/^\[quicktest\]/,/^\[/{/^timeout *=/d}' "[quicktest]
timeout = soon"
run mm --config "$SB/badqt.conf" --state "$DB" verify contoso.test --quick-test "$RCPT"
like "$rc $(errline)" "^1 .*\[quicktest\] timeout 'soon': not a duration" "a bad [quicktest] timeout is named"
is "$(mailbox_count "$RCPT")" 0 "still nothing sent"

# --- gateway mode: through the gateway host, once ------------------------------
run mm --json verify contoso.test --quick-test "$RCPT"
is "$rc" 0 "gateway mode: the quick test passes"
is "$(qt "['passed']") $(qt "['delivered']") $(qt "['scans']")" "true true 1" "delivered, scanned once"
is "$(qt "['sent_to']['mx']") $(qt "['sent_to']['address']")" "mx-01.gw.sandbox.test 127.0.0.21" \
	"sent to the preferred MX, the first gateway host"
is "$(qt "['hops']")" '["received from 127.0.0.21 (service sandbox-service), delivered to someone@contoso.test"]' \
	"one hop: from the gateway host to the mailbox"
is "$(qt "['trace_by']")" "mailflow" "the mailflow plugin read the trace"
like "$(qt "['message_id']")" "^<mailmode-quicktest-[0-9a-f-]{36}@mailmode.invalid>$" "a unique Message-ID"
mid=$(qt "['message_id']")
is "$(copies "$mid")" "1 someone@contoso.test scans=1 loop=1" "the mailbox holds it once, stamped by the service"
is "$(scans_of "$mid")" "gateway@mx-01.gw.sandbox.test" "the service scanned it once, on the gateway"
delivered=1

run mm -v verify contoso.test --quick-test SomeOne@Contoso.Test
is "$rc" 0 "human output: passes (the domain part is matched case-insensitively)"
like "$out" "^contoso.test: gateway mode verified" "verify's own line first"
like "$out" "contoso.test: quick test passed in [0-9.]+ s: SomeOne@contoso.test got the message, scanned once by the service" \
	"then the result"
like "$out" "hop 1: received from 127.0.0.21 \(service sandbox-service\), delivered to SomeOne@contoso.test" "and the hop"
like "$err" "quick test: mx-01.gw.sandbox.test \[127.0.0.21\] took the message: 250 " "progress: who took it"
delivered=$((delivered + 1))

# --- switch to mailflow: out to the smart host, back from the return host ------
run mm switch contoso.test --to mailflow --poll-interval 250ms --quick-test "$RCPT"
is "$rc" 0 "switch to mailflow with --quick-test passes"
like "$out" "switched gateway -> mailflow" "the switch is done first"
like "$out" "sent to contoso-test.mail.protection.outlook.test \[127.0.0.31\]" "the MX is the front door now"
like "$out" "hop 1: received from [0-9.]+, sent on to mf-outbound.sandbox.test \[127.0.0.23\] via outbound connector '$OUTBOUND'" \
	"hop 1: the rule sends it to the service's smart host"
like "$out" "hop 2: received from 127.0.0.24 \(service sandbox-service\), delivered to someone@contoso.test" \
	"hop 2: back from the service's return host to the mailbox"
mid=$(printf '%s\n' "$out" | sed -n 's/.*message \(<[^>]*>\) sent to.*/\1/p')
is "$(copies "$mid")" "1 someone@contoso.test scans=1 loop=1" "the mailbox holds it once"
is "$(scans_of "$mid")" "mailflow@mf-outbound.sandbox.test" "scanned once, by the smart host"
delivered=$((delivered + 1))

# A trace that lags like Exchange Online's: polled until it shows up.
emu_config '{"trace_delay_s": 3}'
run mm -v --json verify contoso.test --quick-test "$RCPT"
emu_config '{"trace_delay_s": 0}'
is "$rc" 0 "trace lagging by 3 s: still passes"
ok "$([ "$(qt "['trace_reads']")" -ge 3 ]; echo $?)" "after polling ($(qt "['trace_reads']") reads)"
like "$err" "quick test: [0-9]+ s of [0-9]+ s: 0 hops in the trace, not delivered yet" "progress while nothing is listed"
ok "$([ "$(qt "['elapsed_ms']")" -ge 3000 ]; echo $?)" "elapsed_ms counts the wait ($(qt "['elapsed_ms']") ms)"
delivered=$((delivered + 1))

# Mail that never arrives: a service node the profile's service_ips does not
# list (its return comes from 127.0.0.25) is not excepted by the rule, which
# loops the message (until the hop limit); the deadline ends the wait.  The
# trace cannot count passes by an address it does not know: 0 scans.
service_config '{"mailflow_source": "127.0.0.25"}'
run mm --json verify contoso.test --quick-test "$RCPT" --quick-test-timeout 4s
service_config '{"mailflow_source": null}'
is "$rc" 3 "never delivered: exit 3"
like "$(printf '%s' "$out" | jpy 'd["error"]')" "quick test failed: the message was not delivered to someone@contoso.test within 4 s \(scanned 0 times so far\)" \
	"the error says so, with the passes seen (none from the service's listed addresses)"
like "$(qt "['hops'][0]")" "sent on to mf-outbound.sandbox.test \[127.0.0.23\]" "the hops show where it went"
like "$(qt "['hops'][1]")" "received from 127.0.0.25, sent on to mf-outbound.sandbox.test" "and that it came back from the unlisted address"
is "$(qt "['delivered']") $(qt "['passed']")" "false false" "JSON: not delivered, not passed"
sleep 2

# --- both modes live: scanned twice --------------------------------------------
run mm -q switch contoso.test --to gateway --poll-interval 250ms
is "$rc" 0 "back to gateway mode"
# The mailflow objects made again through a second config whose profile
# configures mailflow only (the one-mode invariant checks the profile's
# modes) and its own state: both modes are live, as after a switch killed
# between verify and teardown.
side_config side "" "[profile mailflow-only]
tenant = sandbox-tenant
service = sandbox-service"
run mm --config "$SB/side.conf" -q setup contoso.test --mode mailflow --profile mailflow-only
is "$rc" 0 "mailflow objects for contoso.test live beside the gateway"
is "$(tenant_objects)" "1 1 1 mailmode route #1" "tenant: the rule and both connectors"

run mm -q verify contoso.test --quick-test "$RCPT"
is "$rc" 0 "both live, the rule excepts the gateway hosts' addresses: still scanned once"
delivered=$((delivered + 1))

# The rule edited (by an admin) to except the return host only: gateway mail
# goes through the service again.
rule_except() {
	mailsim invoke --sandbox "$SB" Set-TransportRule \
		"{\"Identity\":\"mailmode route #1\",\"ExceptIfSenderIpRanges\":$1}" >/dev/null
}
rule_except '["127.0.0.24"]'
run mm --json verify contoso.test --quick-test "$RCPT"
rule_except '["127.0.0.21","127.0.0.22","127.0.0.24"]'
is "$rc" 3 "a rule that does not except the gateway hosts' addresses: exit 3"
like "$err" "quick test failed: the message reached someone@contoso.test but was scanned 2 times by the service" \
	"the error says scanned 2 times"
is "$(qt "['delivered']") $(qt "['scans']") $(qt "['passed']")" "true 2 false" "JSON: delivered, 2 scans, not passed"
is "$(qt "['hops']")" "[\"received from 127.0.0.21 (service sandbox-service), sent on to mf-outbound.sandbox.test [127.0.0.23] via outbound connector '$OUTBOUND'\", \"received from 127.0.0.24 (service sandbox-service), delivered to someone@contoso.test\"]" \
	"the hops: gateway, then the rule to the smart host, then back"
mid=$(qt "['message_id']")
is "$(copies "$mid")" "1 someone@contoso.test scans=2 loop=2" "the mailbox holds it once, with two scan stamps"
is "$(scans_of "$mid")" "gateway@mx-01.gw.sandbox.test mailflow@mf-outbound.sandbox.test" \
	"the service scanned it on the gateway and on mailflow"
delivered=$((delivered + 1))

# --- no MX takes it ------------------------------------------------------------
service_config '{"tempfail": ["mx-01.gw.sandbox.test", "mx-02.gw.sandbox.test"]}'
run mm verify contoso.test --quick-test "$RCPT"
service_config '{"tempfail": []}'
is "$rc" 3 "every MX answers 451: exit 3"
like "$err" "quick test failed: no MX of contoso.test took the message to someone@contoso.test \(2 refused\)" \
	"the error says no MX took it"
like "$err" "MX 10 mx-01.gw.sandbox.test \[127.0.0.21\]: 451" "each MX's answer is listed (mx-01)"
like "$err" "MX 20 mx-02.gw.sandbox.test \[127.0.0.22\]: 451" "each MX's answer is listed (mx-02)"

run mm --config "$SB/side.conf" -q teardown contoso.test
is "$rc" 0 "the second set of mailflow objects torn down"
run mm -q teardown contoso.test
is "$rc" 0 "gateway torn down: the MX is the tenant's front door again"
wait_mx contoso.test "$FRONT_DOOR"

# --- unscanned: a gateway profile whose MX is the front door -------------------
# It verifies (the MX is what the profile says), yet mail bypasses the
# service: only mail shows it.  A switch with a failing quick test stands.
side_config frontdoor "" "[profile frontdoor]
dns = sandbox-dns
tenant = sandbox-tenant
service = frontdoor-service

[service frontdoor-service]
gateway_mx = 0 contoso-test.mail.protection.outlook.test
gateway_ttl = 300
smart_hosts = mf-outbound.sandbox.test
tls_cert_name = mf-return.sandbox.test
loop_header = X-Sandbox-Mailflow-Processing-Id
service_ips = $SERVICE_IPS"
run mm --config "$SB/frontdoor.conf" switch contoso.test --to gateway --profile frontdoor \
	--poll-interval 250ms --quick-test "$RCPT"
is "$rc" 3 "switch into a gateway that is not the service: the quick test fails (exit 3)"
like "$err" "scanned 0 times by the service \(want exactly once\); the switch to gateway mode stands \(a quick test does not roll it back\)" \
	"scanned 0 times, and the switch is not rolled back"
like "$err" "hop 1: received from [0-9.]+, delivered to someone@contoso.test" "the hop: straight to the mailbox"
is "$(sqlite3 "$SB/frontdoor.db" "SELECT mode FROM domains WHERE domain = 'contoso.test'")" "gateway" \
	"the state records the switch"
delivered=$((delivered + 1))

run mm --config "$SB/frontdoor.conf" --json verify contoso.test --quick-test "$RCPT"
is "$rc" 3 "verify: unscanned mail fails the quick test (exit 3)"
like "$(printf '%s' "$out" | jpy 'd["error"]')" "quick test failed: the message reached someone@contoso.test but was scanned 0 times" \
	"the error says scanned 0 times"
is "$(qt "['scans']") $(qt "['sent_to']['mx']")" "0 contoso-test.mail.protection.outlook.test" \
	"JSON: 0 scans, sent to the front door"
mid=$(qt "['message_id']")
is "$(copies "$mid")" "1 someone@contoso.test scans=0 loop=0" "the mailbox holds it, unstamped"
is "$(scans_of "$mid")" "" "the service never saw it"
delivered=$((delivered + 1))

# --- the mailbox: every message the quick tests delivered, once ----------------
is "$(mailbox_count "$RCPT")" "$delivered" "$RCPT holds the $delivered delivered quick-test messages"
is "$(emu_get "/_emu/tenants/$TENANT/messages" | jpy 'len([m for m in d if not m["message_id"].startswith("<mailmode-quicktest-")])')" \
	"0" "and nothing else"
is "$(emu_get "/_emu/tenants/$TENANT/messages" | jpy 'len({m["message_id"] for m in d}) == len(d)')" "true" \
	"no message delivered twice"
