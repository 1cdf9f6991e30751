#!/bin/sh
# The mailflow rule cannot be bypassed: its exception rests on the address
# that delivered the message to Exchange Online (ExceptIfSenderIpRanges = the
# profile's service_ips), not on a header a sender can write.  Through the
# real mail path: an internet sender forging the service's loop header (any
# value, any case) is still routed through the service, scanned exactly once
# and delivered; the service's return is not looped, stamped or not; a
# service node that service_ips does not list loops (the exception really is
# the address); a service with no service_ips is refused before anything
# changes.
. "$top_srcdir/tests/mailpath/lib.sh"
plan 21
RULE="mailmode route #1"
RCPT=bob@fabrikam.test
LOOP_HEADER=$(emu_url loop_header)

run mm -q setup fabrikam.test --mode mailflow
is "$rc" 0 "fabrikam.test set up in mailflow mode"

# --- the rule as Exchange holds it ---------------------------------------------
rule() {
	emu_get "/_emu/tenants/$TENANT" | jpy "[r for r in d['rules'] if r['Name'] == '$RULE'][0]$1"
}
is "$(rule "['ExceptIfSenderIpRanges']")" '["127.0.0.21", "127.0.0.22", "127.0.0.24"]' \
	"the rule excepts the service's addresses (service_ips)"
is "$(rule ".get('ExceptIfHeaderMatchesMessageHeader')") $(rule ".get('ExceptIfHeaderContainsMessageHeader')")" \
	"null null" "and no header"
is "$(rule "['Exceptions']")" '["Microsoft.Exchange.MessagingPolicies.Rules.Tasks.SenderIpRangesPredicate"]' \
	"its only exception is the sender IP ranges"

# --- an internet sender forging the loop header --------------------------------
FORGED_AT=$(now)
send_one forged "$RCPT" --header "$LOOP_HEADER: forged"
send_one forged "$RCPT" --header "$(printf '%s' "$LOOP_HEADER" | tr 'A-Z' 'a-z'): 1"
send_one forged "$RCPT" --header "$(printf '%s' "$LOOP_HEADER" | tr 'a-z' 'A-Z'): $(cat /proc/sys/kernel/random/uuid)"
send_one forged "$RCPT" --header "$LOOP_HEADER: "
oracle forged "$FORGED_AT"
show
is "$rc" 0 "forged loop header: the oracle holds"
like "$out" "after switch \(sent at/after [^)]*\): 4 sent, 4 scanned exactly once, 0 violations" \
	"all 4 forged messages scanned exactly once"
like "$out" "delivered exactly once 4, duplicated 0, lost 0" "and delivered exactly once"
like "$out" "paths: mailflow 4$" "each through the service's mailflow smart host"
mid=$(sent_field forged message_id)
is "$(scans_of "$mid")" "mailflow@mf-outbound.sandbox.test" "the last one: one scan, by the smart host"
like "$(trace "$mid" --detail | jpy '[e["Detail"] for r in sorted(d, key=lambda r: r["Received"]) for e in r["Detail"] if e["Event"] == "Transport rule"]')" \
	"'$RULE'.*actions: RouteMessageOutboundConnector.*'$RULE'.*not applied, exception: sender IP 127.0.0.24 in" \
	"trace: routed from the internet; the return from 127.0.0.24 skipped the rule"

# --- the service's return: not looped, whatever its headers --------------------
RETURN_AT=$(now)
send_one ret "$RCPT"
service_config '{"mailflow_loop_header": false}'
send_one ret "$RCPT"
oracle ret "$RETURN_AT"
service_config '{"mailflow_loop_header": true}'
show
is "$rc" 0 "the return from the service is not routed again"
like "$out" "after switch \(sent at/after [^)]*\): 2 sent, 2 scanned exactly once, 0 violations" \
	"scanned exactly once, with and without the service's loop header"
like "$out" "delivered exactly once 2, duplicated 0, lost 0" "delivered exactly once"
is "$(copies "$(sent_field ret message_id)")" "1 $RCPT scans=1 loop=0" \
	"the unstamped one: one copy, one scan stamp, no loop header"

# --- negative control: a service node service_ips does not list ----------------
# The same service, its certificate and its stamps, sending back from
# 127.0.0.25: Exchange sees an address outside the exception and routes the
# message again, until the hop limit.
service_config '{"mailflow_source": "127.0.0.25"}'
send_one unlisted "$RCPT"
sleep 2
service_config '{"mailflow_source": null}'
mid=$(sent_field unlisted message_id)
n=$(scans_of "$mid" | wc -w)
ok "$([ "$n" -ge 10 ]; echo $?)" "negative control: returned from an unlisted address, the message loops ($n scans)"
is "$(copies "$mid")" "0" "and is never delivered"
is "$(emu_get "/_emu/tenants/$TENANT/trace" | jpy "sorted({r['FromIP'] for r in d if r['MessageId'] == '$mid'})")" \
	'["127.0.0.25", "127.0.0.41"]' "the front door saw it from the sender and from the unlisted node only"

# --- a service with no service_ips: refused, nothing changed -------------------
run mm -q teardown fabrikam.test
is "$rc" 0 "fabrikam.test torn down"
sed '/^service_ips *=/d' "$MAILMODE_CONFIG" >"$SB/noips.conf"
before="$(tenant_objects) $(db_digest "$DB")"
run mm -q --config "$SB/noips.conf" setup fabrikam.test --mode mailflow
is "$rc" 1 "setup with a service that has no service_ips: refused (exit 1)"
like "$(printf '%s\n' "$err" | grep -c .) $err" \
	"^1 mailmode: error: .*\[service sandbox-service\]: missing key 'service_ips'" \
	"one line naming the section and the key"
is "$(tenant_objects) $(db_digest "$DB")" "$before" \
	"nothing changed: no object made, the state database as it was"
