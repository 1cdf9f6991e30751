#!/bin/sh
# mailflow, issue 12 point 2: the inbound connector is least privilege.
# By default it is a Partner connector (not OnPremises: the service's mail
# gets no relay and is not the organization's own), identified by the
# service's certificate, and never restricted: a restricted connector with
# SenderDomains * is the gateway-mode lock-down, which refuses every
# message reaching Microsoft 365 directly (5.7.51), that is, in mailflow
# mode, all inbound mail.  A hand-edit of any of these is drift for verify
# and status.  The emulator refuses what Exchange refuses for them.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/mailflow/lib-mailflow.sh"

plan 22
IN="mailmode inbound from sophos"

mf_start
mf_tenant

# conf SERVICE-LINES: the test configuration with connector_type left to
# its default and the given lines added to [service sophos].
conf() {
	mf_config secret
	grep -Ev '^(connector_type|service_ips)' "$MF_CONF" >"$MF_CONF.new" && mv "$MF_CONF.new" "$MF_CONF"
	printf '%s\n' "$@" >>"$MF_CONF"
}

# inbound PYTHON-EXPR: evaluated on the tenant's inbound connector (c).
inbound() {
	emu_ctl GET "/_emu/tenants/$MF_TENANT_ID" | "$PYTHON3" -c '
import json, sys
c = json.load(sys.stdin)["inbound_connectors"][0]
print(eval(sys.argv[1]))' "$1"
}

# --- default: Partner, identified by the certificate, unrestricted
conf "service_ips = 127.0.0.21 198.51.100.0/23 2001:db8:5::/48"
run mm setup contoso.test --mode mailflow --profile p1
is "$rc" 0 "setup with the default connector_type succeeds"
is "$(inbound 'c["ConnectorType"], c["RequireTls"], c["TlsSenderCertificateName"]')" \
	"('Partner', True, '*.prod.hydra.sophos.com')" \
	"inbound connector: Partner, TLS required, the service's certificate"
is "$(inbound 'c["RestrictDomainsToCertificate"], c["RestrictDomainsToIPAddresses"], c["SenderIPAddresses"]')" \
	"(False, False, [])" "not restricted, no addresses: mail reaching the tenant directly is not refused"
is "$(inbound 'c["TreatMessagesAsInternal"], c["CloudServicesMailEnabled"], c["EFSkipIPs"]')" \
	"(False, False, [])" "nothing treats the service's mail as internal"
run mm verify contoso.test
is "$rc" 0 "verify reads the connector back as made"

# drift CHANGE FIELD: verify (exit 3) and status (exit 4) name the field.
drift() {
	run mm verify contoso.test
	like "$rc $(printf '%s' "$err" | tr '\n' ' ')" "^3 .*$2" "$1: verify fails, naming $2"
	run mm --json status contoso.test
	like "$rc $(printf '%s' "$out" | tr '\n\t' '  ')" "^4 .*\"presence\": *\"partial\".*$2" \
		"$1: status exits 4, naming $2"
}

mf_invoke Set-InboundConnector "{\"Identity\":\"$IN\",\"SenderIPAddresses\":[\"203.0.113.0/24\"]}"
drift "an address range added by hand" "SenderIPAddresses"
mf_invoke Set-InboundConnector "{\"Identity\":\"$IN\",\"RestrictDomainsToIPAddresses\":true}"
drift "the IP lock-down set by hand" "RestrictDomainsToIPAddresses: have True, want False \\(a restricted connector refuses every message reaching Microsoft 365 directly"
mf_invoke Set-InboundConnector "{\"Identity\":\"$IN\",\"RestrictDomainsToIPAddresses\":false,\"SenderIPAddresses\":[]}"

mf_invoke Set-InboundConnector "{\"Identity\":\"$IN\",\"RestrictDomainsToCertificate\":true}"
drift "the certificate lock-down set by hand" "RestrictDomainsToCertificate: have True"
mf_invoke Set-InboundConnector "{\"Identity\":\"$IN\",\"RestrictDomainsToCertificate\":false}"

mf_invoke Set-InboundConnector "{\"Identity\":\"$IN\",\"ConnectorType\":\"OnPremises\"}"
drift "the connector made OnPremises by hand" "ConnectorType"
mf_invoke Set-InboundConnector "{\"Identity\":\"$IN\",\"ConnectorType\":\"Partner\"}"
run mm verify contoso.test
is "$rc" 0 "all put back: verified again"
run mm teardown contoso.test
is "$rc" 0 "teardown"

# --- OnPremises, when the profile asks for it
conf "connector_type = OnPremises" "service_ips = 127.0.0.21"
run mm setup contoso.test --mode mailflow --profile p1
is "$rc $(inbound 'c["ConnectorType"], c["SenderIPAddresses"], c["RestrictDomainsToIPAddresses"], c["RestrictDomainsToCertificate"]')" \
	"0 ('OnPremises', [], False, False)" \
	"connector_type = OnPremises: identified by the certificate too (no shared-IP OnPremises connector)"
run mm teardown contoso.test

# --- what Exchange refuses, the emulator refuses
# refused PARAMS-JSON: New-InboundConnector's error text, or "accepted".
refused() {
	_tok=$(curl -sS --cacert "$EMU_CA" --data-urlencode "client_id=$MF_CLIENT_ID" \
		--data-urlencode "client_secret=$MF_SECRET" \
		--data-urlencode "scope=https://outlook.office365.com/.default" \
		--data-urlencode "grant_type=client_credentials" \
		"$EMU_LOGIN/$MF_TENANT/oauth2/v2.0/token" |
		"$PYTHON3" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
	curl -sS --cacert "$EMU_CA" -H "Authorization: Bearer $_tok" -H 'Content-Type: application/json' \
		--data-binary "{\"CmdletInput\":{\"CmdletName\":\"New-InboundConnector\",\"Parameters\":$1}}" \
		"$EMU_BASE/adminapi/beta/$MF_TENANT/InvokeCommand" | "$PYTHON3" -c '
import json, sys
b = json.load(sys.stdin)
print(b["error"]["details"][0]["message"].split("|", 2)[2] if "error" in b else "accepted")'
}
like "$(refused '{"Name":"x1","SenderDomains":["*"],"RestrictDomainsToIPAddresses":true}')" \
	"RestrictDomainsToIPAddresses can only be set to true when SenderIPAddresses" \
	"RestrictDomainsToIPAddresses without SenderIPAddresses is refused"
like "$(refused '{"Name":"x2","SenderDomains":["*"],"SenderIPAddresses":["2001:db8::/48"]}')" \
	"isn't a valid IPv4 address" "an IPv6 SenderIPAddresses entry is refused"
like "$(refused '{"Name":"x3","SenderDomains":["*"],"SenderIPAddresses":["198.51.100.0/23"]}')" \
	"/24 to /32" "a range wider than /24 is refused"
like "$(refused '{"Name":"x4","SenderDomains":["*"],"SenderIPAddresses":["198.51.100.0/33"]}')" \
	"isn't a valid IPv4 address" "an invalid CIDR is refused"
like "$(refused '{"Name":"x5","SenderDomains":["*"],"RestrictDomainsToCertificate":true}')" \
	"RestrictDomainsToCertificate can only be set to true when TlsSenderCertificateName" \
	"RestrictDomainsToCertificate without TlsSenderCertificateName is refused"
is "$(mf_counts)" "0 0 0" "none of them was made"
