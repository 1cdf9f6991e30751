#!/bin/sh
# Why mailmode's inbound connector is never restricted, through the real mail
# path.  On a Partner connector with SenderDomains *, RestrictDomainsToCertificate
# or RestrictDomainsToIPAddresses is Microsoft's MX-bypass lock-down: the
# front door refuses, at RCPT TO with 550 5.7.51 TenantInboundAttribution,
# every message that reaches the tenant without that certificate or from
# other addresses (reference notes, identity and limits section 6).  (a) In
# mailflow mode as mailmode sets it up, internet mail sent straight to the
# front door is routed through the service once and delivered once; (b) the
# certificate lock-down set by hand on that connector refuses it (the sender
# sees the 550, nothing is delivered) and `status` reports the drift; (c) the
# same for the address lock-down; (d) under either lock-down the service's
# own return (from its address, with its certificate) is still accepted, and
# a return from an address the connector does not list is refused; so is a
# gateway presenting no certificate, and an OnPremises connector does not
# restrict at all.
. "$top_srcdir/tests/mailpath/lib.sh"
plan 31
IN="mailmode inbound from sandbox-service"
RCPT=bob@fabrikam.test
REFUSAL="550 5.7.51 TenantInboundAttribution; There is a partner connector configured that matched the message's recipient domain. The connector had either the RestrictDomainsToIPAddresses or RestrictDomainsToCertificate set"

# The restrictions apply only to Partner connectors, mailmode's default:
# this test's profile leaves connector_type to it, whatever the sandbox's
# says.
sed '/^connector_type *=/d' "$MAILMODE_CONFIG" >"$SB/partner.conf"
export MAILMODE_CONFIG="$SB/partner.conf"
run mm -q setup fabrikam.test --mode mailflow
is "$rc" 0 "fabrikam.test set up in mailflow mode (connector_type left to its default)"

# inbound PYTHON-EXPR: evaluated on mailmode's inbound connector (c).
inbound() {
	emu_get "/_emu/tenants/$TENANT" |
		jpy "[c for c in d['inbound_connectors'] if c['Name'] == '$IN'][0]" | jpy "$1"
}
is "$(inbound '(d["ConnectorType"], d["SenderDomains"], d["TlsSenderCertificateName"], d["RestrictDomainsToCertificate"], d["RestrictDomainsToIPAddresses"])')" \
	'["Partner", ["smtp:*;1"], "mf-return.sandbox.test", false, false]' \
	"the inbound connector: Partner, SenderDomains *, the service's certificate, not restricted"

# set_inbound JSON-FIELDS: Set-InboundConnector on it, as an admin would.
set_inbound() { invoke Set-InboundConnector "{\"Identity\":\"$IN\",$1}"; }

# direct NAME: one message from the internet straight to fabrikam.test's
# MX, the front door (no TLS, no certificate, from 127.0.0.41).
direct() { send_one "$1" "$RCPT"; }

# refused NAME WHAT: NAME's last message was refused at RCPT TO with 5.7.51
# and is nowhere.
refused() {
	_mid=$(sent_field "$1" message_id)
	is "$(sent_field "$1" result)" "failed" "$2: the sender's message is refused"
	like "$(sent_field "$1" error)" "RCPT TO: $REFUSAL" "$2: at RCPT TO, with 550 5.7.51 TenantInboundAttribution"
	is "$(copies "$_mid") $(scans_of "$_mid" | wc -w)" "0 0" "$2: nothing delivered, nothing scanned"
}

# wait_for COMMAND VALUE: until COMMAND prints VALUE (at most 5 s; the
# service delivers in the background).
wait_for() {
	i=0
	while [ $i -lt 50 ] && [ "$(eval "$1")" != "$2" ]; do
		sleep 0.1
		i=$((i + 1))
	done
}

# status_drift FIELD: `mailmode status` exits 4 and names FIELD.
status_drift() {
	run mm --json status fabrikam.test
	like "$rc $(printf '%s %s' "$out" "$err" | tr '\n\t' '  ')" "^4 .*$1" \
		"status reports the lock-down as drift (exit 4, naming $1)"
}

# --- (a) as mailmode sets it up: direct mail is taken and scanned once -------
AT=$(now)
direct open
direct open
oracle open "$AT"
show
is "$rc" 0 "unrestricted: the oracle holds for mail sent straight to the front door"
like "$out" "after switch \(sent at/after [^)]*\): 2 sent, 2 scanned exactly once, 0 violations" \
	"both messages routed through the service exactly once"
like "$out" "delivered exactly once 2, duplicated 0, lost 0" "and delivered exactly once"
like "$out" "paths: mailflow 2$" "by the mailflow smart host"

# --- (b) the certificate lock-down, set by hand --------------------------------
set_inbound '"RestrictDomainsToCertificate":true'
is "$(inbound 'd["RestrictDomainsToCertificate"]')" "true" "RestrictDomainsToCertificate set by hand"
direct cert
refused cert "certificate lock-down, internet mail without a certificate"
status_drift RestrictDomainsToCertificate

# --- (d) ... the service's return, with its certificate, is still taken -------
AT=$(now)
send_one cert_ret "$RCPT" --via mf-outbound.sandbox.test
oracle cert_ret "$AT"
show
is "$rc" 0 "certificate lock-down: mail handed to the service returns and is delivered (the oracle holds)"
like "$out" "delivered exactly once 1, duplicated 0, lost 0" "delivered exactly once"
is "$(scans_of "$(sent_field cert_ret message_id)")" "mailflow@mf-outbound.sandbox.test" \
	"scanned once, by the smart host"
is "$(emu_get "/_emu/tenants/$TENANT/trace" | jpy "[(r['FromIP'], r['InboundConnector']) for r in d if r['MessageId'] == '$(sent_field cert_ret message_id)']")" \
	"[[\"127.0.0.24\", \"$IN\"]]" "the front door took it from the return host, through the connector"

# A gateway in front of the tenant (contoso.test's MX: the service's gateway
# hosts) presents the service's certificate: under the lock-down its mail is
# taken, for every domain of the tenant; a gateway that presents none is
# refused like the internet (the service bounces it).
AT=$(now)
send_one gw alice@contoso.test
oracle gw "$AT"
is "$rc $(scans_of "$(sent_field gw message_id)")" "0 gateway@mx-01.gw.sandbox.test" \
	"certificate lock-down: contoso.test's mail through the gateway, with the certificate, is delivered, scanned once"
service_config '{"gateway_certificate": false}'
before=$(curl -sS "$SERVICE/queue" | jpy 'd["bounced"]')
refusals=$(emu_get "/_emu/smtp" | jpy 'd["lockdown_refused"]')
send_one gw_nocert alice@contoso.test
wait_for 'curl -sS "$SERVICE/queue" | jpy "d[\"bounced\"]"' "$((before + 1))"
service_config '{"gateway_certificate": true}'
is "$(copies "$(sent_field gw_nocert message_id)") $(curl -sS "$SERVICE/queue" | jpy 'd["bounced"]') $(emu_get "/_emu/smtp" | jpy 'd["lockdown_refused"]')" \
	"0 $((before + 1)) $((refusals + 1))" \
	"a gateway presenting no certificate is refused (5.7.51): the service bounces the message"

# The flags restrict Partner connectors only: made OnPremises, the connector
# no longer refuses direct mail.
set_inbound '"ConnectorType":"OnPremises"'
direct onprem
is "$(sent_field onprem result) $(copies "$(sent_field onprem message_id)" | cut -d' ' -f1)" "accepted 1" \
	"the same flag on an OnPremises connector: direct mail is taken"
set_inbound '"ConnectorType":"Partner"'

set_inbound '"RestrictDomainsToCertificate":false'
direct back
is "$(sent_field back result) $(copies "$(sent_field back message_id)" | cut -d' ' -f1)" "accepted 1" \
	"the certificate lock-down removed: direct mail is taken again"

# --- (c) the address lock-down, set by hand ------------------------------------
set_inbound '"SenderIPAddresses":["127.0.0.24"],"RestrictDomainsToIPAddresses":true'
is "$(inbound '(d["SenderIPAddresses"], d["RestrictDomainsToIPAddresses"])')" '[["127.0.0.24"], true]' \
	"RestrictDomainsToIPAddresses with SenderIPAddresses 127.0.0.24 set by hand"
direct ip
refused ip "address lock-down, internet mail from 127.0.0.41"
status_drift RestrictDomainsToIPAddresses

# --- (d) ... the service's return from its listed address is still taken -------
AT=$(now)
send_one ip_ret "$RCPT" --via mf-outbound.sandbox.test
oracle ip_ret "$AT"
show
is "$rc" 0 "address lock-down: mail handed to the service returns from 127.0.0.24 and is delivered"
like "$out" "delivered exactly once 1, duplicated 0, lost 0" "delivered exactly once"

# Negative control: the same service, its certificate and stamps, returning
# from 127.0.0.25, which the connector does not list: refused at RCPT TO
# (the service bounces it), never delivered.
service_config '{"mailflow_source": "127.0.0.25"}'
before=$(emu_get "/_emu/smtp" | jpy 'd["lockdown_refused"]')
send_one unlisted "$RCPT" --via mf-outbound.sandbox.test
mid=$(sent_field unlisted message_id)
wait_for 'emu_get "/_emu/smtp" | jpy "d[\"lockdown_refused\"]"' "$((before + 1))"
service_config '{"mailflow_source": null}'
is "$(emu_get "/_emu/smtp" | jpy 'd["lockdown_refused"]')" "$((before + 1))" \
	"negative control: the return from an unlisted address is refused at the front door"
is "$(copies "$mid")" "0" "and never delivered"

set_inbound '"RestrictDomainsToIPAddresses":false,"SenderIPAddresses":[]'
run mm verify fabrikam.test
is "$rc" 0 "all put back: verify passes"
direct open2
oracle open2
is "$rc $(count "delivered exactly once")" "0 1" "and direct mail is taken and scanned once again"
run mm -q teardown fabrikam.test
is "$rc" 0 "teardown"
