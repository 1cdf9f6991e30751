#!/bin/sh
# Gateway mode on a zone hosted at Azure DNS (tests/servers/azureemu.py:
# Azure Resource Manager and its Entra ID token endpoint, backed by the real
# BIND zone azure.test: an accepted change is served by BIND after the
# propagation delay).  Round trip restoring the exact originals with a
# client secret and with a certificate (PS256 and RS256 assertions), a
# concurrent change refused by If-Match on the etag (412), a wrong secret,
# under-privileged apps, private and ambiguous zones, throttling, an
# unreachable API, and a lost answer.
EMU_PY=$top_srcdir/tests/servers/azureemu.py
PROVIDER_ZONE=azure.test
. "$top_srcdir/tests/gateway/provider-lib.sh"

plan 69

Z=azure.test
SUB=0b1f6471-1bf0-4dda-aec3-cb9272f09590
TENANT=72f988bf-86f1-41af-91ab-2d7cd011db47
ORIG="3600 10 mx1.azure.test.
3600 20 mx2.azure.test."
GATEWAY_SET="300 10 mx-01.gw.test.
300 20 mx-02.gw.test."

sets=
for n in @ race throttle lost cert; do
	sets="$sets{\"name\":\"$n\",\"TTL\":3600,\"MXRecords\":[{\"preference\":10,\"exchange\":\"mx1.$Z\"},{\"preference\":20,\"exchange\":\"mx2.$Z\"}]},"
done
ZC='{"": "Reader", "/resourceGroups/rg-dns": "DNS Zone Contributor"}'
cat >"$TEST_TMP/spec.json" <<SPEC
{"subscription": "$SUB", "tenant": "$TENANT",
 "zones": [{"resource_group": "rg-dns", "name": "$Z", "recordsets": [${sets%,}]},
           {"resource_group": "rg-dns", "name": "private.$Z", "zoneType": "Private",
            "recordsets": []},
           {"resource_group": "rg-dns", "name": "dup.$Z", "recordsets": []},
           {"resource_group": "rg-two", "name": "dup.$Z", "recordsets": []}],
 "apps": [{"name": "admin", "roles": $ZC},
          {"name": "cert", "credential": "certificate", "roles": $ZC},
          {"name": "rgonly", "roles": {"/resourceGroups/rg-dns": "DNS Zone Contributor"}},
          {"name": "reader", "roles": {"": "Reader"}}]}
SPEC
at_exit "emu_stop '$TEST_TMP/emu'"
emu_start "$TEST_TMP/emu" --spec "$TEST_TMP/spec.json" --dns "$BIND_SPEC" \
	--propagation-delay 1 || { echo "Bail out! azureemu.py did not start"; exit 1; }
AZ_API=$(_emu_json_field "$EMU_DIR/emu.json" api_url)
id() { _emu_json_field "$EMU_DIR/emu.json" "client_id_$1"; }
printf 'not-the-secret\n' >"$TEST_TMP/wrong.secret"
chmod 600 "$TEST_TMP/wrong.secret"

section() { # NAME APP CREDENTIAL-LINES [EXTRA LINE] [API URL]
	cat <<SEC
[dns $1]
provider = azure
api_url = ${5:-$AZ_API}
login_url = $AZ_API
ca_file = $EMU_CA
subscription = $SUB
tenant = $TENANT
client_id = $(id "$2")
$3
port = $DNS_PORT
resolver = $DNS_PRIMARY
resolver_port = $DNS_PORT
timeout = 2
${4:-}
[profile $1]
dns = $1
service = gw
SEC
}
SECRET="client_secret_file = $EMU_DIR/admin.secret"
{
	printf '[mailmode]\nstate = state.db\nplugin_dir = plugins\n\n'
	printf '[service gw]\ngateway_mx = 10 mx-01.gw.test, 20 mx-02.gw.test\ngateway_ttl = 300\n\n'
	section az admin "$SECRET"
	section az-slow admin "$SECRET" "debug_pause_before_update_ms = 3000"
	section az-cert cert "private_key_file = $EMU_DIR/cert.key
certificate_file = $EMU_DIR/cert.crt"
	section az-rs256 cert "private_key_file = $EMU_DIR/cert.key
certificate_file = $EMU_DIR/cert.crt" "assertion_alg = RS256"
	section az-rgonly rgonly "client_secret_file = $EMU_DIR/rgonly.secret"
	section az-rg rgonly "client_secret_file = $EMU_DIR/rgonly.secret" "resource_group = rg-dns"
	section az-reader reader "client_secret_file = $EMU_DIR/reader.secret"
	section az-wrong admin "client_secret_file = $TEST_TMP/wrong.secret"
	section az-down admin "$SECRET" "" https://127.0.0.1:9
} >"$CONF"

wait_mx $Z "$ORIG"
ok $? "BIND serves what the emulated zone holds (two MX, TTL 3600)"

# --- round trip with a client secret --------------------------------------------
mm setup $Z --mode gateway --profile az --dry-run
is "$rc" 0 "setup --dry-run succeeds"
[ "$rc" = 0 ] || diag "$err"
like "$out" "Azure DNS PUT /subscriptions/$SUB/resourceGroups/rg-dns/providers/Microsoft.Network/dnsZones/azure.test/MX/@\?api-version=2018-05-01" \
	"plan: the record set's URL, api-version included"
like "$out" "precondition: If-Match: [0-9a-f-]{36} \(the etag read" "plan: If-Match on the etag read"
like "$out" "with: azure.test. 300 MX 20 mx-02.gw.test." "plan: the gateway set"

emu_ctl DELETE /_emu/requests >/dev/null
mm setup $Z --mode gateway --profile az
is "$rc" 0 "setup succeeds"
[ "$rc" = 0 ] || diag "$err"
is "$(mx_bind $Z)" "$GATEWAY_SET" "BIND serves exactly the gateway set"
is "$(dns_mx "$DNS_SECONDARY" $Z)" "$GATEWAY_SET" "so does the secondary"
setup_calls=$(emu_requests .)
diag "setup: $(emu_summary)"
is "$(emu_requests 'PUT .*/MX/@\?api-version=2018-05-01$')" 1 "one record-set PUT"
is "$(emu_requests 'POST /'"$TENANT"'/oauth2/v2.0/token')" 1 \
	"one token request for the whole setup (the provider handles share it)"
is "$(emu_requests '[dD]ns[zZ]ones\?api-version')" 1 "and one zone lookup"
mm verify $Z
is "$rc" 0 "verify passes on both authoritative servers"
emu_ctl DELETE /_emu/requests >/dev/null
mm teardown $Z
is "$rc" 0 "teardown succeeds"
diag "teardown: $(emu_summary) ($(emu_requests .) calls; setup $setup_calls)"
is "$(mx_bind $Z)" "$ORIG" "BIND serves the original MX records again, TTLs included"
is "$(dns_mx "$DNS_SECONDARY" $Z)" "$ORIG" "so does the secondary"
etag=$(emu_ctl GET /_emu/zones | "$PYTHON3" -c 'import json, sys
z = [z for z in json.load(sys.stdin) if z["name"] == "azure.test"][0]
print([r for r in z["recordsets"] if r["name"] == "@"][0]["TTL"])')
is "$etag" 3600 "the emulated record set has its TTL 3600 back"

# --- a certificate instead of a secret (PS256 and RS256) -----------------------------
C=cert.$Z
mm setup $C --mode gateway --profile az-cert
is "$rc" 0 "setup with a certificate (PS256 assertion, x5t#S256) succeeds"
[ "$rc" = 0 ] || diag "$err"
is "$(mx_bind $C)" "$GATEWAY_SET" "BIND serves the gateway set"
mm teardown $C
is "$(mx_bind $C)" "$ORIG" "teardown restores the originals"
mm setup $C --mode gateway --profile az-rs256 --dry-run
is "$rc" 0 "assertion_alg = RS256 (x5t) signs in too"
[ "$rc" = 0 ] || diag "$err"

# --- a concurrent change between read and PUT -------------------------------------
R=race.$Z
"$MAILMODE" --config "$CONF" setup $R --mode gateway --profile az-slow \
	>"$TEST_TMP/setup.out" 2>"$TEST_TMP/setup.err" &
setup_pid=$!
wait_until 15 grep -q "pausing before the UPDATE" "$TEST_TMP/setup.err"
ok $? "setup read the record set and pauses before its PUT"
emu_ctl POST /_emu/zones/rg-dns/$Z/rrset "{\"name\":\"race\",\"TTL\":3600,\"MXRecords\":[{\"preference\":10,\"exchange\":\"mx1.$Z\"},{\"preference\":20,\"exchange\":\"mx2.$Z\"},{\"preference\":30,\"exchange\":\"mx3.$Z\"}]}" >/dev/null
ok $? "someone else adds an MX record meanwhile (a new etag)"
wait $setup_pid
rc=$?
err=$(cat "$TEST_TMP/setup.err")
is "$rc" 3 "setup is refused (exit 3: rolled back, nothing of ours applied)"
like "$err" "the MX set of $R changed at Azure DNS between our read and our change \(HTTP 412 PreconditionFailed: The condition '[0-9a-f-]+' in the If-Match header was not satisfied" \
	"the error names the refused If-Match"
wait_mx $R "$ORIG
3600 30 mx3.azure.test."
ok $? "BIND serves the other change and nothing of ours"

# --- the token expires between the read and the PUT: signed in again once ----------------
setup_token_refused $R az-slow 'PUT .*/MX/race' 'POST /'"$TENANT"'/oauth2/v2.0/token'
wait_mx $R "$GATEWAY_SET"
ok $? "BIND serves the gateway set"

# --- a world-readable secret, a wrong secret, under-privileged apps -----------------------
T=throttle.$Z
cp "$EMU_DIR/admin.secret" "$TEST_TMP/open.secret"
chmod 644 "$TEST_TMP/open.secret"
section az-open admin "client_secret_file = $TEST_TMP/open.secret" >>"$CONF"
mm setup $T --mode gateway --profile az-open --dry-run
is "$rc" 1 "a group/world-readable secret file: exit 1"
like "$err" "secret file .*/open.secret is accessible by group or others \(mode 644\): chmod 600 it" \
	"the message names the file and the fix"
unlike "$err" "emu~" "and not the secret"
mm setup $T --mode gateway --profile az-wrong
is "$rc" 1 "a wrong client secret: exit 1"
like "$err" "Azure DNS \[dns az-wrong\]: token request for tenant $TENANT refused: AADSTS7000215: Invalid client secret provided" \
	"one line naming Azure DNS, the section and the refusal"
unlike "$err" "not-the-secret|emu~" "no secret in the messages"
mm setup $T --mode gateway --profile az-reader
is "$rc" 1 "an app with Reader only: exit 1"
like "$err" "the app $(id reader) of tenant $TENANT may not write MX record sets \(Microsoft.Network/dnsZones/MX/write\) in Azure DNS zone azure.test of resource group rg-dns: assign it the role \"DNS Zone Contributor\" on the zone or its resource group" \
	"one line naming the missing action and the role to grant"
mm setup $T --mode gateway --profile az-rgonly --dry-run
is "$rc" 1 "a role on the resource group only, no resource_group: exit 1"
like "$err" "Azure DNS refused the list of the subscription's DNS zones \(with a role on the resource group only, set resource_group =\) to the app $(id rgonly) of tenant $TENANT: assign it the role \"DNS Zone Contributor\" on the zone or its resource group \(HTTP 403 AuthorizationFailed: The client" \
	"the 403 names the listing, what to set and the role"
mm setup $T --mode gateway --profile az-rg --dry-run
is "$rc" 0 "with resource_group = rg-dns the same app finds the zone"
[ "$rc" = 0 ] || diag "$err"
is "$(mx_bind $T)" "$ORIG" "the zone is unchanged"

# --- bad configuration: one line naming the section and key ----------------------------
cp "$CONF" "$TEST_TMP/good.conf"
section az-both admin "$SECRET
private_key_file = $EMU_DIR/cert.key" >>"$CONF"
mm setup $T --mode gateway --profile az-both --dry-run
is "$rc" 1 "a secret and a key both given: exit 1"
like "$err" "\[dns az-both\] private_key_file: '.*cert.key' and client_secret_file are both set: give one" \
	"one line naming the section and the keys"
section az-nosub admin "$SECRET" | sed '/^subscription = /d' >>"$CONF"
mm setup $T --mode gateway --profile az-nosub --dry-run
like "$err" "\[dns az-nosub\] subscription: missing \(the Azure subscription id holding the DNS zone\)" \
	"a missing subscription is named"
cp "$TEST_TMP/good.conf" "$CONF"

# --- private and ambiguous zones ------------------------------------------------------
mm setup private.$Z --mode gateway --profile az --dry-run
is "$rc" 1 "a domain whose zone is private: exit 1"
like "$err" "has only a private DNS zone for private.azure.test \(private.azure.test in resource group rg-dns\)" \
	"the private zone is refused"
mm setup dup.$Z --mode gateway --profile az --dry-run
is "$rc" 1 "two zones of the domain's name: exit 1"
like "$err" "has more than one DNS zone for dup.azure.test \(dup.azure.test in resource group rg-dns, dup.azure.test in resource group rg-two\): refusing it; set resource_group =" \
	"both zones are named, and what to set"

# --- throttling and paging --------------------------------------------------------------
emu_ctl POST /_emu/config '{"page_size": 1}' >/dev/null
emu_ctl DELETE /_emu/requests >/dev/null
emu_ctl POST /_emu/faults '{"method":"GET","path":"/MX/throttle","kind":429,"count":2,"retry_after":1}' >/dev/null
mm setup $T --mode gateway --profile az
is "$rc" 0 "two 429 answers (Retry-After: 1) and one zone per page: setup still succeeds"
[ "$rc" = 0 ] || diag "$err"
is "$(emu_ctl GET /_emu/faults)" "[]" "both 429 answers were served (and retried by the host)"
ok "$([ "$(emu_requests 'skipToken=')" -ge 3 ] && echo 0 || echo 1)" "the zone list was followed through nextLink"
is "$(mx_bind $T)" "$GATEWAY_SET" "the gateway set is served"
mm teardown $T
is "$(mx_bind $T)" "$ORIG" "and the teardown restores the original"
emu_ctl POST /_emu/config '{"page_size": 0}' >/dev/null

# --- a server error on the PUT: the outcome is unknown, resume settles it ---------------
emu_ctl POST /_emu/faults '{"method":"PUT","path":"/MX/throttle","kind":500}' >/dev/null
mm setup $T --mode gateway --profile az
is "$rc" 1 "HTTP 500 to the PUT: setup fails (exit 1)"
like "$err" "Azure DNS answered the change of $T with a server error \(HTTP 500 InternalServerError: .*\): outcome unknown" \
	"a 5xx to a write is an unknown outcome, not 'not applied'"
mm resume $T
is "$rc" 0 "resume re-reads and finishes the switch"
[ "$rc" = 0 ] || diag "$err"
is "$(mx_bind $T)" "$GATEWAY_SET" "the gateway set is served"
mm teardown $T
is "$(mx_bind $T)" "$ORIG" "and the teardown restores the original"

# --- unreachable ---------------------------------------------------------------------------
mm setup $T --mode gateway --profile az-down
is "$rc" 1 "API unreachable: exit 1"
like "$err" "no answer from Azure DNS \(https://127.0.0.1:9\)" "one line naming the provider and its URL"
is "$(mx_bind $T)" "$ORIG" "the zone is unchanged"

# --- a certificate that does not verify: nothing sent ------------------------------------
section az-noca admin "$SECRET" | sed "s|^ca_file = .*|ca_file = $DNS/ca-other.pem|" >>"$CONF"
"$PYTHON3" - "$DNS/ca-other.pem" <<'PY'
import datetime, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
n = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "another CA")])
now = datetime.datetime.now(datetime.timezone.utc)
c = (x509.CertificateBuilder().subject_name(n).issuer_name(n).public_key(k.public_key())
     .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
     .sign(k, hashes.SHA256()))
open(sys.argv[1], "wb").write(c.public_bytes(serialization.Encoding.PEM))
PY
mm setup $T --mode gateway --profile az-noca --dry-run
is "$rc" 1 "the API's certificate does not verify against ca_file: exit 1"
like "$err" "Azure DNS \[dns az-noca\]: token request: .*ca-other.pem" \
	"one line naming the provider, the section and the CA file"

# --- the answer lost, the change applied late ---------------------------------------------
L=lost.$Z
emu_ctl POST /_emu/faults '{"method":"PUT","path":"/MX/lost","kind":"acted_late","delay_ms":9000}' >/dev/null
mm setup $L --mode gateway --profile az
is "$rc" 1 "no answer to the PUT: setup fails (exit 1)"
like "$err" "no answer from Azure DNS .* to the change of the MX record set: .*outcome unknown" \
	"the outcome is unknown, not 'not applied'"
ckpt=$(sqlite3 "$DB" "SELECT new_receipt FROM migrations WHERE domain = '$L' ORDER BY id DESC LIMIT 1")
is "$(json_get "$ckpt" "d['write']['doing']")" "swapping to the gateway set" "the journal holds the change in flight"
wait_mx $L "$GATEWAY_SET"
ok $? "the change lands later"
mm resume $L
is "$rc" 0 "resume reconciles: the gateway set is ours"
mm teardown $L
wait_mx $L "$ORIG"
ok $? "teardown puts the original back"
