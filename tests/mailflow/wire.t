#!/bin/sh
# mailflow: what the plugin puts on the wire, captured by a listener of our
# own (tests/servers/capture.py, not the emulator) and compared with
# Microsoft's references: the certificate client assertion (PS256, header
# x5t#S256 = base64url(SHA-256(DER)), aud = the token URL, iss = sub =
# client_id, exp), a fresh client-request-id on every retry of 408 and 429,
# X-AnchorMailbox APP:SystemMailbox{...}@<tid> although the tenant is
# configured by name, HTTPS:// in any case, and a certificate that does not
# verify named in one line with ca_file and the host.
. "$top_srcdir/tests/lib.sh"

plan 17

TID=5b1d7c3e-8a2f-4e6b-9c0d-1f2e3a4b5c6d
CLIENT_ID=0f6c1a84-2b7d-4d6e-8a0f-5b2e9d1c3a77
CAP=$TEST_TMP/capture
CONF=$TEST_TMP/mailmode.conf
STATE=$TEST_TMP/state.db

# cap_start SCRIPT: (re)starts the listener answering the first
# InvokeCommand requests with the statuses of SCRIPT.
cap_pid=
cap_stop() {
	[ -n "$cap_pid" ] || return 0
	kill "$cap_pid" 2>/dev/null
	wait "$cap_pid" 2>/dev/null
	cap_pid=
}
at_exit cap_stop
cap_start() {
	cap_stop
	rm -rf "$CAP"
	"$PYTHON3" "$top_srcdir/tests/servers/capture.py" --dir "$CAP" --tid "$TID" \
		--script "$1" --domain contoso.test >"$TEST_TMP/capture.log" 2>&1 &
	cap_pid=$!
	_waited=0
	while [ ! -s "$CAP/capture.json" ] && [ $_waited -lt 200 ]; do
		sleep 0.05
		_waited=$((_waited + 1))
	done
	[ -s "$CAP/capture.json" ] || { cat "$TEST_TMP/capture.log"; return 1; }
	PORT=$("$PYTHON3" -c 'import json,sys; print(json.load(open(sys.argv[1]))["port"])' "$CAP/capture.json")
}

# requests PYTHON-EXPR: evaluated on the captured requests (r).
requests() {
	"$PYTHON3" -c '
import base64, hashlib, json, sys, time, urllib.parse
r = [json.loads(l) for l in open(sys.argv[1])]
def b64d(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
code = sys.argv[2].strip()
if "\n" in code:
    exec(code)
else:
    print(eval(code))' "$CAP/requests.jsonl" "$@"
}

openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=mailmode-app -days 2 \
	-keyout "$TEST_TMP/app.key" -out "$TEST_TMP/app.pem" 2>/dev/null
chmod 600 "$TEST_TMP/app.key"

# write_conf CA-FILE: the tenant by name, URLs with upper-case schemes.
write_conf() {
	cat >"$CONF" <<EOF
[mailmode]
state = $STATE

[profile p1]
tenant = contoso
service = svc

[tenant contoso]
tenant = contoso.onmicrosoft.com
client_id = $CLIENT_ID
private_key_file = $TEST_TMP/app.key
certificate_file = $TEST_TMP/app.pem
login_url = HTTPS://127.0.0.1:$PORT/login
api_url = Https://127.0.0.1:$PORT
ca_file = $1
retry_budget_ms = 20000

[service svc]
smart_hosts = relay.svc.example
tls_cert_name = *.svc.example
loop_header = X-Svc-Processed
service_ips = 192.0.2.10 198.51.100.0/24
EOF
}
mm() {
	"$MAILMODE" --config "$CONF" --state "$STATE" --plugin-dir "$PLUGIN_DIR" "$@"
}

# --- a plan: one token, then reads, the first answered 408, then 429
cap_start 408,429 || { echo "Bail out! the capture listener did not start"; exit 1; }
write_conf "$CAP/ca.pem"
run mm setup contoso.test --mode mailflow --profile p1 --dry-run
is "$rc" 0 "setup --dry-run against the capture listener succeeds (HTTPS:// and Https:// taken)"

# The client assertion, decoded and checked independently.
is "$(requests '
[t] = [x for x in r if x["kind"] == "token"]
form = dict(urllib.parse.parse_qsl(t["body"]))
h, c, sig = [p for p in form["client_assertion"].split(".")]
h, c = json.loads(b64d(h)), json.loads(b64d(c))
print(form["client_assertion_type"], h["alg"], h.get("typ"), "x5t" in h)')" \
	"urn:ietf:params:oauth:client-assertion-type:jwt-bearer PS256 JWT False" \
	"assertion: jwt-bearer, PS256, typ JWT, no SHA-1 x5t"
der_s256=$(openssl x509 -in "$TEST_TMP/app.pem" -outform DER | "$PYTHON3" -c '
import base64, hashlib, sys
print(base64.urlsafe_b64encode(hashlib.sha256(sys.stdin.buffer.read()).digest()).rstrip(b"=").decode())')
is "$(requests '
[t] = [x for x in r if x["kind"] == "token"]
a = dict(urllib.parse.parse_qsl(t["body"]))["client_assertion"]
print(json.loads(b64d(a.split(".")[0]))["x5t#S256"])')" "$der_s256" \
	"x5t#S256 is base64url(SHA-256) of the certificate's DER"
is "$(requests '
[t] = [x for x in r if x["kind"] == "token"]
c = json.loads(b64d(dict(urllib.parse.parse_qsl(t["body"]))["client_assertion"].split(".")[1]))
print(c["aud"], c["iss"], c["sub"], 0 < c["exp"] - time.time() <= 600, c["nbf"] <= time.time() + 5, len(c["jti"]) == 36)')" \
	"https://127.0.0.1:$PORT/login/contoso.onmicrosoft.com/oauth2/v2.0/token $CLIENT_ID $CLIENT_ID True True True" \
	"claims: aud = the token URL (scheme canonical), iss = sub = client_id, exp within 10 min, nbf, jti"
is "$(openssl x509 -in "$TEST_TMP/app.pem" -pubkey -noout | "$PYTHON3" -c '
import base64, json, sys, urllib.parse
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
key = serialization.load_pem_public_key(sys.stdin.buffer.read())
r = [json.loads(l) for l in open(sys.argv[1]) if "\"token\"" in l]
a = dict(urllib.parse.parse_qsl(r[0]["body"]))["client_assertion"]
h, c, s = a.split(".")
sig = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
key.verify(sig, (h + "." + c).encode(), padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
print("verified")' "$CAP/requests.jsonl")" verified \
	"the PS256 signature verifies (RSASSA-PSS, MGF1-SHA256, 32-byte salt) with the certificate's key"
is "$(requests '
[t] = [x for x in r if x["kind"] == "token"]
f = dict(urllib.parse.parse_qsl(t["body"]))
print(t["path"], f["grant_type"], f["scope"], f["client_id"] == sys.argv[3], "client_secret" in f)' "$CLIENT_ID")" \
	"/login/contoso.onmicrosoft.com/oauth2/v2.0/token client_credentials https://outlook.office365.com/.default True False" \
	"token request: the tenant's token URL, client credentials with the Exchange scope"

# The retries: 408, then 429, then the answer; each attempt a new id.
inv='[x for x in r if x["kind"] == "invoke"]'
is "$(requests "[x['status'] for x in $inv][:3]")" "[408, 429, 200]" \
	"408 is retried like 429, until the answer"
is "$(requests "len({x['body'] for x in $inv[:3]}) == 1 and len({x['headers']['connection-id'] for x in $inv[:3]}) == 1")" True \
	"the retries repeat the same body on the same connection-id"
is "$(requests "len({x['headers']['client-request-id'] for x in $inv[:3]})")" 3 \
	"each of the three attempts has its own client-request-id"
is "$(requests "len({x['headers']['client-request-id'] for x in $inv}) == len($inv) and len($inv) > 3")" True \
	"no client-request-id is used twice in the run"
is "$(requests "all(len(x['headers']['client-request-id']) == 36 and x['headers']['client-request-id'][14] == '4' for x in $inv)")" True \
	"client-request-id values are version-4 GUIDs"
is "$(requests "sorted({x['headers']['X-AnchorMailbox'] for x in $inv})")" \
	"['APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@$TID']" \
	"X-AnchorMailbox: APP:SystemMailbox{...}@<tid from the token>, though the tenant is named by domain"
is "$(requests "all(x['path'] == '/adminapi/beta/contoso.onmicrosoft.com/InvokeCommand' and x['headers']['Authorization'].startswith('Bearer ') and x['headers']['X-CmdletName'] == x['cmdlet'] for x in $inv)")" True \
	"InvokeCommand path, bearer token and X-CmdletName on every request"

# The plan names a Partner connector identified by the certificate and
# never restricted (the restriction would refuse all inbound mail).
like "$out" "New-InboundConnector .*-ConnectorType 'Partner' .*-TlsSenderCertificateName '\\*\\.svc\\.example' -Enabled:\\\$true" \
	"plan: a Partner inbound connector identified by the service's certificate"
unlike "$out" "RestrictDomainsTo|SenderIPAddresses" "and not restricted, though service_ips are given"

# --- a CA that did not sign the listener's certificate
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=other-ca -days 2 \
	-keyout "$TEST_TMP/other.key" -out "$TEST_TMP/other-ca.pem" 2>/dev/null
cap_start ""
write_conf "$TEST_TMP/other-ca.pem"
run mm setup contoso.test --mode mailflow --profile p1 --dry-run
like "$rc $(printf '%s\n' "$err" | grep '^mailmode: error:')" \
	"^1 mailmode: error: .*\\[tenant contoso\\]: token request: TLS: the certificate of 127\\.0\\.0\\.1 was not verified against ca_file $TEST_TMP/other-ca\\.pem" \
	"a certificate that does not verify: one line naming the host and ca_file"
diag "$(printf "%s\n" "$err" | grep "^mailmode: error:")"
is "$(wc -l <"$CAP/requests.jsonl" 2>/dev/null || echo 0)" 0 "and nothing reached the listener"
