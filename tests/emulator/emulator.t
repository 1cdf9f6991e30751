#!/bin/sh
# Self-test of the Microsoft 365 emulator (tests/servers/m365emu.py): token
# endpoint (secret, JWT assertion, errors), InvokeCommand cmdlets, priorities,
# paging, faults, eventual consistency, tenant flags, control API.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/servers/emu.sh"

command -v curl >/dev/null 2>&1 || skip_all "curl not installed"
"$PYTHON3" -c 'import cryptography' 2>/dev/null || skip_all "python3-cryptography missing"

plan 92

D=$TEST_TMP/emu
at_exit 'emu_stop "$D"'

TID=8f1c7a52-3b1e-4d7a-9a43-0c5f2e6b1d01
DOM=contoso.onmicrosoft.com
CID=5a0e2f9c-7d1b-4c3e-8f6a-2b9d4e1c3a77
SECRET='s3cr3t~value.for_tests'

# --- helpers ---------------------------------------------------------------
# jget EXPR [FILE]: evaluate a Python expression on the JSON body (d).
jget() {
	"$PYTHON3" -c 'import json,sys
d = json.load(open(sys.argv[2]))
v = eval(sys.argv[1])
print(json.dumps(v) if isinstance(v, (dict, list, bool)) or v is None else v)' \
		"$1" "${2:-$TEST_TMP/body}"
}

# post_token TENANT CURL-FORM-ARGS...: sets $code, body in $TEST_TMP/body
post_token() {
	_t=$1
	shift
	code=$(curl -sS --cacert "$EMU_CA" -o "$TEST_TMP/body" -D "$TEST_TMP/hdrs" \
		-w '%{http_code}' "$@" "$EMU_LOGIN/$_t/oauth2/v2.0/token")
}

# cmd CMDLET PARAMS-JSON [TENANT]: InvokeCommand with $TOKEN; sets $code
cmd() {
	code=$(curl -sS --cacert "$EMU_CA" -o "$TEST_TMP/body" -D "$TEST_TMP/hdrs" \
		-w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
		-H 'Content-Type: application/json' -H 'Accept: application/json' \
		-H "X-CmdletName: $1" -H "X-AnchorMailbox: APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@$TID" \
		-H 'X-ResponseFormat: json' -H 'Prefer: odata.maxpagesize=1000' \
		-H "client-request-id: $("$PYTHON3" -c 'import uuid; print(uuid.uuid4())')" \
		-H 'connection-id: 0b0c5f3e-1111-4222-8333-944455556666' \
		--data-binary "{\"CmdletInput\":{\"CmdletName\":\"$1\",\"Parameters\":${2:-{\}}}}" \
		"${URL:-$EMU_BASE/adminapi/beta/${3:-$DOM}/InvokeCommand}")
}

hdr() { tr -d '\r' <"$TEST_TMP/hdrs" | sed -n "s/^$1: *//Ip" | tail -n 1; }
errmsg() { jget 'd["error"]["details"][0]["message"]'; }

# jwt ALG HEADER-KIND AUD [EXP-OFFSET] [KEY]: a client assertion signed with
# the emulator's client key (or KEY).
jwt() {
	"$PYTHON3" - "$1" "$2" "$3" "${4:-300}" "${5:-$EMU_CLIENT_KEY}" "$EMU_CLIENT_CERT" "$CID" <<'EOF'
import base64, hashlib, json, sys, time, uuid
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
alg, kind, aud, expoff, keyf, certf, cid = sys.argv[1:]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
der = x509.load_pem_x509_certificate(open(certf, "rb").read()).public_bytes(
    serialization.Encoding.DER)
h = {"alg": alg, "typ": "JWT"}
if kind == "x5t":
    h["x5t"] = b64(hashlib.sha1(der).digest())
else:
    h["x5t#S256"] = b64(hashlib.sha256(der).digest())
now = int(time.time())
c = {"aud": aud, "iss": cid, "sub": cid, "jti": str(uuid.uuid4()), "nbf": now - 10,
     "iat": now - 10, "exp": now + int(expoff)}
si = (b64(json.dumps(h).encode()) + "." + b64(json.dumps(c).encode())).encode()
key = serialization.load_pem_private_key(open(keyf, "rb").read(), None)
if alg == "RS256":
    sig = key.sign(si, padding.PKCS1v15(), hashes.SHA256())
else:
    sig = key.sign(si, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                   hashes.SHA256())
print(si.decode() + "." + b64(sig))
EOF
}

# --- start --------------------------------------------------------------------
emu_start "$D"
ok $? "emulator starts"
like "$EMU_PORT" '^[0-9]+$' "emu.json gives a port"
is "$EMU_BASE" "https://127.0.0.1:$EMU_PORT" "base_url"
is "$(stat -c %a "$EMU_CLIENT_KEY")" 600 "client key is mode 0600"
openssl x509 -in "$D/server.pem" -noout -ext subjectAltName 2>/dev/null |
	grep -q 'IP Address:127.0.0.1' && openssl verify -CAfile "$EMU_CA" "$D/server.pem" >/dev/null
ok $? "server certificate has an IP SAN and is signed by the test CA"
run curl -sS --cacert "$EMU_CA" "https://localhost:$EMU_PORT/_emu/health"
like "$out" '"ok": true' "TLS verified with --cacert (host name localhost)"

run emu_ctl POST /_emu/tenants "{\"tenant_id\":\"$TID\",\"initial_domain\":\"$DOM\",
 \"client_id\":\"$CID\",\"client_secret\":\"$SECRET\",\"certificate_file\":\"$EMU_CLIENT_CERT\",
 \"accepted_domains\":[{\"DomainName\":\"contoso.test\",\"DomainType\":\"Authoritative\",\"Default\":true},
                       {\"DomainName\":\"fabrikam.test\",\"DomainType\":\"Authoritative\"}],
 \"outbound_connectors\":[{\"Name\":\"Seeded Out\",\"UseMXRecord\":false,\"SmartHosts\":[\"a.example.net\",\"b.example.net\"]}],
 \"rules\":[{\"Name\":\"Vendor rule\",\"FromScope\":\"NotInOrganization\",\"SetSCL\":-1,\"State\":\"Disabled\"}]}"
is "$rc" 0 "tenant created through the control API"

# --- token endpoint -----------------------------------------------------------
SCOPE=https://outlook.office365.com/.default
post_token "$DOM" -d grant_type=client_credentials -d "client_id=$CID" \
	--data-urlencode "client_secret=$SECRET" --data-urlencode "scope=$SCOPE"
is "$code" 200 "token with client secret"
is "$(jget '[d["token_type"], d["expires_in"], d["ext_expires_in"]]')" '["Bearer", 3599, 3599]' \
	"token response fields"
TOKEN=$(jget 'd["access_token"]')

post_token "$TID" -d grant_type=client_credentials -d "client_id=$CID" \
	--data-urlencode "client_secret=wrong" --data-urlencode "scope=$SCOPE"
is "$code" 401 "wrong secret rejected"
is "$(jget '[d["error"], d["error_codes"]]')" '["invalid_client", [7000215]]' "AADSTS7000215"
like "$(jget 'd["error_description"].replace("\r\n", "<CRLF>")')" '^AADSTS7000215: Invalid client secret provided.*<CRLF>Trace ID: .*<CRLF>Correlation ID: .*<CRLF>Timestamp: ' \
	"error_description in Microsoft's shape"

post_token "$DOM" -d grant_type=client_credentials -d "client_id=00000000-0000-0000-0000-00000000abcd" \
	--data-urlencode "client_secret=$SECRET" --data-urlencode "scope=$SCOPE"
is "$code:$(jget 'd["error_codes"][0]')" "400:700016" "unknown client id: AADSTS700016"
post_token "nosuch.onmicrosoft.com" -d grant_type=client_credentials -d "client_id=$CID" \
	--data-urlencode "client_secret=$SECRET" --data-urlencode "scope=$SCOPE"
is "$code:$(jget 'd["error_codes"][0]')" "400:90002" "unknown tenant: AADSTS90002"
post_token "$DOM" -d grant_type=client_credentials -d "client_id=$CID" \
	--data-urlencode "client_secret=$SECRET" --data-urlencode "scope=https://graph.microsoft.com/.default"
is "$code:$(jget 'd["error"]'):$(jget 'd["error_codes"][0]')" "400:invalid_scope:70011" "bad scope: AADSTS70011"

TURL=$EMU_LOGIN/$DOM/oauth2/v2.0/token
A=$(jwt RS256 x5t "$TURL")
post_token "$DOM" -d grant_type=client_credentials -d "client_id=$CID" --data-urlencode "scope=$SCOPE" \
	-d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \
	--data-urlencode "client_assertion=$A"
is "$code" 200 "token with an RS256 client assertion (x5t)"
A=$(jwt PS256 x5t256 "$TURL")
post_token "$DOM" -d grant_type=client_credentials -d "client_id=$CID" --data-urlencode "scope=$SCOPE" \
	-d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \
	--data-urlencode "client_assertion=$A"
is "$code" 200 "token with a PS256 client assertion (x5t#S256)"
A=$(jwt RS256 x5t "$EMU_LOGIN/$TID/oauth2/v2.0/token")
post_token "$DOM" -d grant_type=client_credentials -d "client_id=$CID" --data-urlencode "scope=$SCOPE" \
	-d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \
	--data-urlencode "client_assertion=$A"
is "$code:$(jget 'd["error"]')" "401:invalid_client" "assertion whose aud is another URL is rejected"
A=$(jwt RS256 x5t "$TURL" -60)
post_token "$DOM" -d grant_type=client_credentials -d "client_id=$CID" --data-urlencode "scope=$SCOPE" \
	-d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \
	--data-urlencode "client_assertion=$A"
is "$(jget 'd["error_codes"][0]')" 700024 "expired assertion: AADSTS700024"
A=$(jwt RS256 x5t "$TURL" 300 "$D/ca.key")
post_token "$DOM" -d grant_type=client_credentials -d "client_id=$CID" --data-urlencode "scope=$SCOPE" \
	-d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \
	--data-urlencode "client_assertion=$A"
is "$(jget 'd["error_codes"][0]')" 700027 "assertion signed by another key: AADSTS700027"

# --- InvokeCommand basics -----------------------------------------------------
SAVED=$TOKEN
TOKEN=not-a-token
cmd Get-AcceptedDomain
is "$code" 401 "InvokeCommand with a bad token: 401"
like "$(hdr WWW-Authenticate)" '^Bearer ' "401 carries WWW-Authenticate: Bearer"
TOKEN=$SAVED

cmd Get-AcceptedDomain
is "$code" 200 "Get-AcceptedDomain"
is "$(hdr Content-Type)" "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8" \
	"OData content type"
is "$(hdr OData-Version)" "4.0" "OData-Version header"
like "$(hdr Rate-Limit-Remaining)" '^[0-9]+$' "Rate-Limit headers"
is "$(jget '[x["DomainName"] for x in d["value"] if x["Default"]]')" '["contoso.test"]' "default accepted domain"
is "$(jget 'd["adminapi.warnings@odata.type"]')" '#Collection(String)' "warnings annotation"
cmd Get-OrganizationConfig
is "$(jget 'd["value"][0]["IsDehydrated"]')" false "Get-OrganizationConfig: IsDehydrated false"

# --- connectors ---------------------------------------------------------------
cmd New-OutboundConnector '{"Name":"Svc Out","ConnectorType":"OnPremises","UseMXRecord":false,
	"SmartHosts":["relay.example.net"],"TlsSettings":"DomainValidation","TlsDomain":"relay.example.net",
	"IsTransportRuleScoped":true,"Comment":"managed by mailmode"}'
is "$code" 200 "New-OutboundConnector"
OUTGUID=$(jget 'd["value"][0]["Guid"]')
like "$OUTGUID" '^[0-9a-f-]{36}$' "new connector has a Guid"
cmd Get-OutboundConnector "{\"Identity\":\"$OUTGUID\"}"
is "$(jget '[d["value"][0]["Name"], d["value"][0]["SmartHosts"], d["value"][0]["Guid@odata.type"]]')" \
	'["Svc Out", "relay.example.net", "#Guid"]' "Get by Guid; a single smart host comes back as a bare string"
is "$(jget '"RequireTls" in d["value"][0] or "SenderDomains" in d["value"][0]')" false \
	"outbound shape has no RequireTls/Sender* fields"
cmd Get-OutboundConnector '{"Identity":"Seeded Out"}'
is "$(jget 'd["value"][0]["SmartHosts@odata.type"]')" '#Collection(String)' "two smart hosts: an annotated array"
cmd New-OutboundConnector '{"Name":"Bad Out","UseMXRecord":false,"SmartHosts":"x.example.net",
	"TlsSettings":"EncryptionOnly","TlsDomain":"x.example.net"}'
is "$code" 400 "TlsDomain without DomainValidation is refused"
cmd New-OutboundConnector '{"Name":"Bad Out","UseMXRecord":false}'
like "$code:$(errmsg)" '^400:.*SmartHosts' "UseMXRecord false without SmartHosts is refused"
cmd New-OutboundConnector '{"Name":"Test Out","UseMXRecord":false,"SmartHosts":"t.example.net","TestMode":true}'
cmd Get-OutboundConnector
is "$(jget '[x["Name"] for x in d["value"]]'):$(jget 'len(d["@adminapi.warnings"])')" \
	'["Seeded Out", "Svc Out"]:1' "test-mode connector hidden, with a warning"
cmd Get-OutboundConnector '{"IncludeTestModeConnectors":true}'
is "$(jget 'len(d["value"]) + ("@odata.nextLink" in d)')" 3 "IncludeTestModeConnectors shows it (paged)"

cmd New-InboundConnector '{"Name":"Svc In","ConnectorType":"Partner","SenderDomains":["*"],
	"RequireTls":true,"TlsSenderCertificateName":"*.relay.example.net","RestrictDomainsToCertificate":true}'
is "$code" 200 "New-InboundConnector"
cmd Get-InboundConnector '{"Identity":"Svc In"}'
is "$(jget '[d["value"][0][k] for k in ("SenderDomains","RequireTls","ConnectorSource","TlsSenderCertificateName")]')" \
	'["smtp:*;1", true, "AdminUI", "*.relay.example.net"]' "Get-InboundConnector fields (SenderDomains as smtp:*;1)"
cmd New-InboundConnector '{"Name":"Svc In","SenderDomains":"*"}'
like "$code:$(errmsg)" '^400:.*already exists' "duplicate connector name refused"
cmd New-InboundConnector '{"Name":"X","SenderDomains":"*","Bogus":1}'
like "$code:$(errmsg)" "^400:[^|]*\|System.Management.Automation.ParameterBindingException\|.*'Bogus'" \
	"unknown parameter: ParameterBindingException"
cmd New-InboundConnector '{"Name":"X","SenderDomains":"*","ConnectorType":"Sideways"}'
like "$code:$(errmsg)" 'ParameterBindingException' "bad enum value: ParameterBindingException"

# --- transport rules, priorities ------------------------------------------------
cmd New-TransportRule '{"Name":"r-a","RecipientDomainIs":["contoso.test"],"RouteMessageOutboundConnector":"Svc Out",
	"ExceptIfHeaderContainsMessageHeader":"X-Svc-Loop","ExceptIfHeaderContainsWords":["yes"],"StopRuleProcessing":true}'
is "$code:$(jget 'd["value"][0]["Priority"]')" "200:1" "New-TransportRule without Priority appends"
is "$(jget 'd["value"][0]["Actions"]')" \
	'["Microsoft.Exchange.MessagingPolicies.Rules.Tasks.RouteMessageOutboundConnectorAction", "Microsoft.Exchange.MessagingPolicies.Rules.Tasks.StopRuleProcessingAction"]' \
	"Actions as .NET class names"
is "$(jget '[d["value"][0]["Conditions"], d["value"][0]["RecipientDomainIs"], d["value"][0]["Priority@data.type"]]')" \
	'["Microsoft.Exchange.MessagingPolicies.Rules.Tasks.RecipientDomainIsPredicate", "contoso.test", "System.Int32"]' \
	"single-valued lists come back as bare strings; Priority annotated"
cmd New-TransportRule '{"Name":"r-b","RecipientDomainIs":["contoso.test","fabrikam.test"],"SetSCL":-1}'
cmd New-TransportRule '{"Name":"r-top","Priority":0,"RecipientDomainIs":"fabrikam.test","RouteMessageOutboundConnector":"Svc Out"}'
is "$code" 200 "New-TransportRule at priority 0"
run emu_ctl GET "/_emu/tenants/$TID"
printf '%s' "$out" >"$TEST_TMP/state"
is "$(jget '[(r["Priority"], r["Name"]) for r in d["rules"]]' "$TEST_TMP/state")" \
	'[[0, "r-top"], [1, "Vendor rule"], [2, "r-a"], [3, "r-b"]]' "inserting at 0 shifts the others down"
cmd New-TransportRule '{"Name":"r-far","Priority":5,"SetSCL":1}'
like "$code:$(errmsg)" '^400:.*ArgumentOutOfRange.*Priority' "priority beyond the end is refused"
cmd New-TransportRule '{"Name":"r-a","SetSCL":1}'
like "$code:$(errmsg)" '^400:.*already exists' "duplicate rule name refused"
cmd New-TransportRule '{"Name":"r-c","SetSCL":1,"RouteMessageOutboundConnector":"No Such"}'
like "$code:$(errmsg)" "^400:.*'No Such'" "routing to an unknown connector is refused"
cmd Set-TransportRule '{"Identity":"r-b","Priority":0}'
is "$code" 200 "Set-TransportRule Priority 0"
cmd Disable-TransportRule '{"Identity":"r-a"}'
is "$code" 200 "Disable-TransportRule"

# paging: 4 rules, page size 2
cmd Get-TransportRule
NEXT=$(jget 'd.get("@odata.nextLink")')
is "$(jget '[(r["Priority"], r["Name"], r["State"]) for r in d["value"]]')" \
	'[[0, "r-b", "Enabled"], [1, "r-top", "Enabled"]]' "first page: two rules in priority order"
like "$NEXT" "^$EMU_BASE/adminapi/beta/$DOM/InvokeCommand\?\\\$skiptoken=" "nextLink present"
URL=$NEXT cmd Get-TransportRule
is "$(jget '[(r["Priority"], r["Name"], r["State"]) for r in d["value"]]'):$(jget '"@odata.nextLink" in d')" \
	'[[2, "Vendor rule", "Disabled"], [3, "r-a", "Disabled"]]:false' "second page via nextLink (same body), last"

cmd Remove-TransportRule '{"Identity":"r-top"}'
is "$(jget 'd.get("@adminapi.confirmationmessage") is not None')" true "Remove without Confirm:false asks for confirmation"
cmd Remove-TransportRule '{"Identity":"r-top","Confirm":false}'
is "$code" 200 "Remove-TransportRule"
run emu_ctl GET "/_emu/tenants/$DOM"
printf '%s' "$out" >"$TEST_TMP/state"
is "$(jget '[(r["Priority"], r["Name"]) for r in d["rules"]]' "$TEST_TMP/state")" \
	'[[0, "r-b"], [1, "Vendor rule"], [2, "r-a"]]' "Remove closes the priority gap"
cmd Get-TransportRule '{"Identity":"r-top"}'
like "$code:$(errmsg)" '^400:Ex[0-9A-F]{6}\|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException\|' \
	"Get of a removed rule: ManagementObjectNotFoundException"
cmd Remove-OutboundConnector '{"Identity":"Svc Out","Confirm":false}'
like "$code:$(errmsg)" "^400:.*r-a" "an outbound connector used by a rule can't be removed"
cmd Get-NoSuchThing
is "$code" 400 "unknown cmdlet: 400"

# --- faults -------------------------------------------------------------------
emu_ctl POST /_emu/faults '{"cmdlet":"Get-TransportRule","kind":"429","count":1,"retry_after":7}' >/dev/null
cmd Get-TransportRule '{"Identity":"r-a"}'
is "$code:$(hdr Retry-After)" "429:7" "429 fault with Retry-After"
cmd Get-TransportRule '{"Identity":"r-a"}'
is "$code" 200 "the fault is used up after count requests"
emu_ctl POST /_emu/faults "{\"tenant\":\"$TID\",\"kind\":\"throttle_text\"}" >/dev/null
cmd Get-InboundConnector
like "$code:$(errmsg)" '^400:.*maximum number of concurrent requests per tenant' "throttle_text fault"
emu_ctl POST /_emu/faults '{"kind":"drop"}' >/dev/null
cmd Get-InboundConnector 2>/dev/null
like "$code" '^0+$' "drop fault closes the connection without an answer"
emu_ctl POST /_emu/faults '{"kind":"503","retry_after":2}' >/dev/null
cmd Get-InboundConnector
is "$code:$(hdr Retry-After)" "503:2" "503 fault"
emu_ctl POST /_emu/faults '{"kind":"error","cmdlet":"New-InboundConnector","etype":"X.Y.ZException","text":"refused here"}' >/dev/null
cmd New-InboundConnector '{"Name":"Err In","SenderDomains":"*"}'
like "$code:$(errmsg)" '^400:Ex[0-9A-F]+\|X\.Y\.ZException\|refused here$' "error fault: 400 with a CmdletError body"
cmd Get-InboundConnector '{"Identity":"Err In"}'
is "$code" 400 "and the cmdlet did not run"
emu_ctl POST /_emu/faults '{"kind":"acted_reset","writes":true,"skip":1}' >/dev/null
cmd Get-InboundConnector
is "$code" 200 "writes: true leaves reads alone"
cmd New-InboundConnector '{"Name":"Skip In","SenderDomains":"*"}'
is "$code" 200 "skip: 1 lets the first matching call through"
cmd New-InboundConnector '{"Name":"Acted In","SenderDomains":"*"}' 2>/dev/null
like "$code" '^0+$' "acted_reset: the second write gets no answer"
cmd Get-InboundConnector '{"Identity":"Acted In"}'
is "$code" 200 "but the tenant carried it out"
emu_ctl POST /_emu/faults '{"kind":"reset","cmdlet":"Remove-InboundConnector"}' >/dev/null
cmd Remove-InboundConnector '{"Identity":"Acted In","Confirm":false}' 2>/dev/null
cmd Get-InboundConnector '{"Identity":"Acted In"}'
is "$code" 200 "reset: the connection closes before the cmdlet runs"
emu_ctl POST /_emu/faults '{"kind":"acted_hang","cmdlet":"Remove-InboundConnector","delay_ms":1500}' >/dev/null
cmd Remove-InboundConnector '{"Identity":"Acted In","Confirm":false}' 2>/dev/null
like "$code" '^0+$' "acted_hang: the answer hangs, then the connection closes"
cmd Get-InboundConnector '{"Identity":"Acted In"}'
is "$code" 400 "and the cmdlet was carried out"
cmd Remove-InboundConnector '{"Identity":"Skip In","Confirm":false}'
emu_ctl POST /_emu/faults '{"kind":"bogus"}' >/dev/null 2>&1
ok $([ "$(emu_ctl GET /_emu/faults)" = "[]" ]; echo $?) "an unknown kind is refused"

# --- eventual consistency -------------------------------------------------------
emu_ctl POST /_emu/config '{"consistency_delay_s":60}' >/dev/null
cmd New-InboundConnector '{"Name":"Late In","SenderDomains":"*","Comment":"v1"}'
is "$code" 200 "New-InboundConnector with a consistency delay"
cmd Get-InboundConnector '{"Identity":"Late In"}'
like "$code:$(errmsg)" 'ManagementObjectNotFoundException' "the new object is not found yet"
cmd New-InboundConnector '{"Name":"Late In","SenderDomains":"*"}'
like "$code:$(errmsg)" '^400:.*already exists' "but a second New with the same name is a duplicate"
run emu_ctl GET "/_emu/tenants/$TID"
printf '%s' "$out" >"$TEST_TMP/state"
is "$(jget '[(c["_pending"], c["_visible"]) for c in d["inbound_connectors"] if c["Name"] == "Late In"]' "$TEST_TMP/state")" \
	'[[true, false]]' "control state shows it as pending"
emu_ctl POST /_emu/clock '{"advance_s":61}' >/dev/null
cmd Get-InboundConnector '{"Identity":"Late In"}'
is "$code:$(jget 'd["value"][0]["Comment"]')" "200:v1" "visible after the delay"
cmd Set-InboundConnector '{"Identity":"Late In","Comment":"v2"}'
cmd Get-InboundConnector '{"Identity":"Late In"}'
is "$(jget 'd["value"][0]["Comment"]')" "v1" "Set: Get shows the old value during the delay"
emu_ctl POST /_emu/clock '{"advance_s":61}' >/dev/null
cmd Get-InboundConnector '{"Identity":"Late In"}'
is "$(jget 'd["value"][0]["Comment"]')" "v2" "and the new value after it"
emu_ctl POST /_emu/config '{"consistency_delay_s":0}' >/dev/null

# --- tenant flags ---------------------------------------------------------------
emu_ctl PATCH "/_emu/tenants/$TID" '{"dehydrated":true}' >/dev/null
cmd New-TransportRule '{"Name":"r-d","SetSCL":1}'
like "$code:$(errmsg)" '^400:Cmdlet-InvalidOperationInDehydratedContextException\|.*Enable-OrganizationCustomization' \
	"dehydrated tenant: New-* refused with the Enable-OrganizationCustomization text"
cmd Get-OrganizationConfig
is "$(jget 'd["value"][0]["IsDehydrated"]')" true "Get-OrganizationConfig: IsDehydrated true"
emu_ctl PATCH "/_emu/tenants/$TID" '{"dehydrated":false,"inbound_connectors_allowed":false}' >/dev/null
cmd New-InboundConnector '{"Name":"Nope In","SenderDomains":"*"}'
like "$code:$(errmsg)" "^400:.*subscription doesn't allow creating inbound connectors" \
	"inbound connectors not allowed by the subscription"
emu_ctl PATCH "/_emu/tenants/$TID" '{"forbidden":true}' >/dev/null
cmd Get-AcceptedDomain
like "$code:$(hdr x-ms-diagnostics)" '^403:.+' "forbidden tenant: 403 with x-ms-diagnostics"
emu_ctl PATCH "/_emu/tenants/$TID" '{"forbidden":false,"inbound_connectors_allowed":true}' >/dev/null

# --- records and stats ----------------------------------------------------------
run emu_ctl GET '/_emu/requests?cmdlet=Get-AcceptedDomain'
printf '%s' "$out" >"$TEST_TMP/reqs"
is "$(jget '[[r["headers"].get("X-CmdletName"), r["auth"], r["headers"]["Authorization"].startswith("Bearer "), r["headers"].get("connection-id") is not None] for r in d if r["status"] == 200][0]' "$TEST_TMP/reqs")" \
	'["Get-AcceptedDomain", "valid", true, true]' "requests recorded with their headers"
run emu_ctl GET /_emu/stats
printf '%s' "$out" >"$TEST_TMP/stats"
is "$(jget '[d["token_requests"] >= 9, d["requests_by_cmdlet"]["New-TransportRule"] >= 5, d["max_concurrent_by_tenant"]["'"$TID"'"] >= 1]' "$TEST_TMP/stats")" \
	'[true, true, true]' "stats"

# --- owner pid and stop -----------------------------------------------------------
D2=$TEST_TMP/emu2
mkdir -p "$D2" && cp "$D"/ca.pem "$D"/ca.key "$D"/server.pem "$D"/server.key \
	"$D"/client.pem "$D"/client.key "$D2"/
sleep 30 &
owner=$!
"$PYTHON3" "$EMU_PY" --dir "$D2" --owner-pid "$owner" >"$D2/log" 2>&1 &
emu2=$!
i=0
while [ ! -s "$D2/emu.json" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
up=$(test -s "$D2/emu.json" && echo up)
kill "$owner"
wait "$owner" 2>/dev/null
i=0
while _emu_alive "$emu2" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
_emu_alive "$emu2"
is "$up:$?" "up:1" "the emulator exits by itself when its owner is gone"
kill -KILL "$emu2" 2>/dev/null
wait "$emu2" 2>/dev/null

pid=$(cat "$D/emu.pid")
emu_stop "$D"
_emu_alive "$pid"
is "$?:$(test -e "$D/emu.json" && echo json)" "1:" "emu_stop ends it and emu.json is removed"
