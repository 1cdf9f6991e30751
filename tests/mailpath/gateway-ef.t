#!/bin/sh
# The front door's side of gateway mode for a Microsoft 365 domain
# (doc/gateway-tenant.md), through the real mail path: contoso.test's MX
# is the service's gateway hosts, and its gateway connector (Partner, the
# service's certificate, scoped to contoso.test by AssociatedAcceptedDomains)
# is made here as an admin would.  (a) Without Enhanced Filtering, SPF of a
# sender whose SPF record allows only its own address is judged on the
# gateway's address: fail.  (b) With EFSkipIPs listing the gateway hosts it
# is judged on the real sender's address: pass, and the skip-listing headers
# are stamped; (c) EFSkipLastIP does the same; (d) EFUsers not listing the
# recipient keeps the judgement on the gateway.  (e) With the lock-down
# (RestrictDomainsToCertificate), mail sent around the gateway straight to
# contoso.test's front door is refused with 5.7.51, mail through the gateway
# is delivered and scanned once (the oracle), and fabrikam.test, outside the
# connector's scope, still takes direct mail; (f) unscoped, the same
# connector refuses fabrikam.test's direct mail too (the scope is what
# spares it).
. "$top_srcdir/tests/mailpath/lib.sh"
plan 20
GW="mailmode gateway for contoso.test from sandbox-service"
SENDER=alice@internet.sandbox.test
REFUSAL="550 5.7.51 TenantInboundAttribution"

# The sender's domain publishes SPF for the internet sender's address only.
{
	echo "server $DNS_PRIMARY $DNS_PORT"
	echo "zone sandbox.test"
	echo 'update add internet.sandbox.test. 60 TXT "v=spf1 ip4:127.0.0.41 -all"'
	echo "send"
} | knsupdate -t 5 -y "hmac-sha256:$TSIG_KEY:$TSIG_SECRET"
i=0
while [ $i -lt 50 ] && ! kdig @"$DNS_SECONDARY" -p "$DNS_PORT" +norec +short internet.sandbox.test TXT |
	grep -q spf1; do
	sleep 0.1
	i=$((i + 1))
done
like "$(kdig @"$DNS_SECONDARY" -p "$DNS_PORT" +norec +short internet.sandbox.test TXT)" "v=spf1 ip4:127.0.0.41 -all" \
	"the sender's SPF record is served"

# gw_connector JSON-FIELDS: Set-InboundConnector on the gateway connector.
gw_connector() { invoke Set-InboundConnector "{\"Identity\":\"$GW\",$1}"; }

invoke New-InboundConnector "{\"Name\":\"$GW\",\"ConnectorType\":\"Partner\",\"SenderDomains\":[\"*\"],\"RequireTls\":true,\"TlsSenderCertificateName\":\"mf-return.sandbox.test\",\"AssociatedAcceptedDomains\":[\"contoso.test\"],\"Comment\":\"managed by mailmode: gateway\"}"
is "$(emu_get "/_emu/tenants/$TENANT" | jpy "[(c['ConnectorType'], c['AssociatedAcceptedDomains']) for c in d['inbound_connectors'] if c['Name'] == '$GW']")" \
	'[["Partner", ["contoso.test"]]]' "the gateway connector exists, scoped to contoso.test"

# header MESSAGE-ID NAME: the values of header NAME on the delivered copy.
header() {
	emu_get "/_emu/tenants/$TENANT/messages" | "$PYTHON3" -c 'import json, sys
want = sys.argv[1].strip("<>").lower()
got = [m for m in json.load(sys.stdin) if m["message_id"].strip("<>").lower() == want]
print(" | ".join(v for k, v in (got[-1]["headers"] if got else []) if k.lower() == sys.argv[2].lower()))' "$1" "$2"
}

# through_gateway NAME: one message from the sender to contoso.test by its
# MX (the gateway), waited for until delivered; $mid is its Message-ID.
through_gateway() {
	AT=$(now)
	send_one "$1" bob@contoso.test --from "$SENDER"
	mid=$(sent_field "$1" message_id)
	oracle "$1" "$AT"
}

# --- (a) no Enhanced Filtering -----------------------------------------------
through_gateway noef
is "$rc $(count "delivered exactly once")" "0 1" "(a) through the gateway: delivered once"
like "$(header "$mid" Authentication-Results)" "^spf=fail \(sender IP is 127\.0\.0\.2[12]\) smtp\.mailfrom=internet\.sandbox\.test$" \
	"(a) without EF, SPF is judged on the gateway's address: fail"
is "$(header "$mid" X-MS-Exchange-SkipListedInternetSender)" "" "(a) and nothing is skip-listed"
is "$(emu_get "/_emu/tenants/$TENANT/trace" | jpy "sorted({r['InboundConnector'] for r in d if r['MessageId'] == '$mid'})")" \
	"[\"$GW\"]" "(a) attributed to the gateway connector"

# --- (b) EFSkipIPs: the gateway hosts ------------------------------------------
gw_connector '"EFSkipIPs":["127.0.0.21","127.0.0.22"]'
through_gateway ef
is "$rc $(count "delivered exactly once")" "0 1" "(b) with EF: delivered once"
is "$(header "$mid" Authentication-Results)" "spf=pass (sender IP is 127.0.0.41) smtp.mailfrom=internet.sandbox.test" \
	"(b) with the gateway skip-listed, SPF is judged on the real sender: pass"
is "$(header "$mid" X-MS-Exchange-SkipListedInternetSender)" "ip=[127.0.0.41];domain=mta.internet.test" \
	"(b) X-MS-Exchange-SkipListedInternetSender names the true source"
is "$(header "$mid" X-MS-Exchange-ExternalOriginalInternetSender)" "ip=[127.0.0.41];domain=mta.internet.test" \
	"(b) and X-MS-Exchange-ExternalOriginalInternetSender"

# --- (c) EFSkipLastIP ---------------------------------------------------------
gw_connector '"EFSkipIPs":[],"EFSkipLastIP":true'
through_gateway lastip
is "$(header "$mid" Authentication-Results)" "spf=pass (sender IP is 127.0.0.41) smtp.mailfrom=internet.sandbox.test" \
	"(c) EFSkipLastIP: the last hop skipped, SPF passes"

# --- (d) EFUsers not listing the recipient --------------------------------------
gw_connector '"EFUsers":["carol@contoso.test"]'
through_gateway users
like "$(header "$mid" Authentication-Results)" "^spf=fail \(sender IP is 127\.0\.0\.2[12]\)" \
	"(d) EFUsers without the recipient: judged on the gateway again"
gw_connector '"EFUsers":[],"EFSkipLastIP":false,"EFSkipIPs":["127.0.0.21","127.0.0.22"]'

# --- (e) the lock-down -----------------------------------------------------------
gw_connector '"RestrictDomainsToCertificate":true'
send_one bypass bob@contoso.test --from "$SENDER" --via contoso-test.mail.protection.outlook.test
is "$(sent_field bypass result)" "failed" "(e) locked down: mail sent straight to contoso.test's front door is refused"
like "$(sent_field bypass error)" "RCPT TO: $REFUSAL" "(e) at RCPT TO, with 5.7.51"
is "$(copies "$(sent_field bypass message_id)")" "0" "(e) and is nowhere"
through_gateway locked
is "$rc $(count "delivered exactly once") $(scans_of "$mid" | wc -w)" "0 1 1" \
	"(e) mail through the gateway is still delivered, scanned once"
like "$(header "$mid" Authentication-Results)" "^spf=pass \(sender IP is 127\.0\.0\.41\)" "(e) with EF"
send_one other bob@fabrikam.test --from "$SENDER"
is "$(sent_field other result) $(copies "$(sent_field other message_id)" | cut -d' ' -f1)" "accepted 1" \
	"(e) fabrikam.test, outside the connector's scope, still takes direct mail"

# --- (f) negative control: the same lock-down, unscoped ---------------------------
gw_connector '"AssociatedAcceptedDomains":[]'
send_one other2 bob@fabrikam.test --from "$SENDER"
is "$(sent_field other2 result)" "failed" "(f) unscoped, the lock-down refuses fabrikam.test's direct mail too"
gw_connector '"AssociatedAcceptedDomains":["contoso.test"]'
send_one other3 bob@fabrikam.test --from "$SENDER"
is "$(sent_field other3 result)" "accepted" "(f) scoped again: taken"
