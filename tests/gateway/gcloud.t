#!/bin/sh
# Gateway mode on a zone hosted at Google Cloud DNS
# (tests/servers/gcloudemu.py: the API and its OAuth token endpoint, backed
# by the real BIND zone gcloud.test: an accepted change is served by BIND
# after the propagation delay, and its status is "done" only then).  Round
# trip restoring the exact originals, a concurrent change refused by the
# change's deletions (412), a wrong key and an under-privileged account, a
# private zone, throttling, an unreachable API, and a lost answer.
EMU_PY=$top_srcdir/tests/servers/gcloudemu.py
PROVIDER_ZONE=gcloud.test
. "$top_srcdir/tests/gateway/provider-lib.sh"

plan 52

Z=gcloud.test
ORIG="3600 10 mx1.gcloud.test.
3600 20 mx2.gcloud.test."
GATEWAY_SET="300 10 mx-01.gw.test.
300 20 mx-02.gw.test."

rrsets=
for n in "" race. throttle. lost.; do
	rrsets="$rrsets{\"name\":\"${n}$Z.\",\"type\":\"MX\",\"ttl\":3600,\"rrdatas\":[\"10 mx1.$Z.\",\"20 mx2.$Z.\"]},"
done
cat >"$TEST_TMP/spec.json" <<SPEC
{"project": "mm-test",
 "zones": [{"name": "gcloud-test", "dnsName": "$Z.", "rrsets": [${rrsets%,}]},
           {"name": "private-test", "dnsName": "private.$Z.", "visibility": "private",
            "rrsets": []}],
 "accounts": [{"name": "dns-admin", "roles": {"gcloud-test": "admin", "private-test": "admin"}},
              {"name": "dns-reader", "roles": {"gcloud-test": "reader"}}]}
SPEC
at_exit "emu_stop '$TEST_TMP/emu'"
emu_start "$TEST_TMP/emu" --spec "$TEST_TMP/spec.json" --dns "$BIND_SPEC" \
	--propagation-delay 1 || { echo "Bail out! gcloudemu.py did not start"; exit 1; }
GC_API=$(_emu_json_field "$EMU_DIR/emu.json" api_url)
# The admin's key with another private key: a signature Google rejects.
"$PYTHON3" - "$EMU_DIR/dns-admin.json" "$TEST_TMP/wrong.json" <<'PY'
import json, sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
k = json.load(open(sys.argv[1]))
k["private_key"] = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption()).decode()
open(sys.argv[2], "w").write(json.dumps(k))
PY
chmod 600 "$TEST_TMP/wrong.json"

section() { # NAME KEY-FILE [EXTRA LINE] [API URL]
	cat <<SEC
[dns $1]
provider = gcloud
api_url = ${4:-$GC_API}
ca_file = $EMU_CA
service_account_file = $2
port = $DNS_PORT
resolver = $DNS_PRIMARY
resolver_port = $DNS_PORT
timeout = 2
${3:-}
[profile $1]
dns = $1
service = gw
SEC
}
{
	printf '[mailmode]\nstate = state.db\nplugin_dir = plugins\n\n'
	printf '[service gw]\ngateway_mx = 10 mx-01.gw.test, 20 mx-02.gw.test\ngateway_ttl = 300\n\n'
	section gc "$EMU_DIR/dns-admin.json"
	section gc-slow "$EMU_DIR/dns-admin.json" "debug_pause_before_update_ms = 3000"
	section gc-reader "$EMU_DIR/dns-reader.json"
	section gc-wrong "$TEST_TMP/wrong.json"
	section gc-down "$EMU_DIR/dns-admin.json" "" https://127.0.0.1:9/dns/v1
} >"$CONF"

wait_mx $Z "$ORIG"
ok $? "BIND serves what the emulated managed zone holds (two MX, TTL 3600)"

# --- round trip -----------------------------------------------------------------
mm setup $Z --mode gateway --profile gc --dry-run
is "$rc" 0 "setup --dry-run succeeds"
[ "$rc" = 0 ] || diag "$err"
like "$out" "changes.create in managed zone gcloud-test \(gcloud.test.\) of project mm-test" \
	"plan: names the managed zone and the project"
like "$out" "deletion \(must match the live rrset exactly.*\): gcloud.test. 3600 MX 10 mx1.gcloud.test." \
	"plan: deletes the exact live rrset"
like "$out" "addition: gcloud.test. 300 MX 20 mx-02.gw.test." "plan: adds the gateway set"

round_trip_setup $Z gc
is "$(emu_requests 'POST .*/changes$')" 1 "one changes.create"
is "$(emu_requests 'POST /token')" 1 "one token request for the whole setup (the provider handles share it)"
is "$(emu_requests 'managedZones\?dnsName=')" 1 "and one managed-zone lookup"
round_trip_teardown $Z
is "$(emu_requests 'POST /token')" 1 "one token request for the whole teardown"
diag "API calls: setup $setup_calls, teardown $teardown_calls"

# --- a concurrent change between read and change --------------------------------
R=race.$Z
setup_racing $R gc-slow /_emu/zones/gcloud-test/rrset \
	"{\"name\":\"$R.\",\"type\":\"MX\",\"ttl\":3600,\"rrdatas\":[\"10 mx1.$Z.\",\"20 mx2.$Z.\",\"30 mx3.$Z.\"]}"
is "$rc" 3 "setup is refused (exit 3: rolled back, nothing of ours applied)"
like "$err" "the MX set of $R changed at Google Cloud DNS between our read and our change \(HTTP 412 conditionNotMet" \
	"the error names the refused precondition"
wait_mx $R "$ORIG
3600 30 mx3.gcloud.test."
ok $? "BIND serves the other change and nothing of ours"

# --- the token refused between the read and the change: one new token --------------
setup_token_refused $R gc-slow 'POST .*/changes$' 'POST /token'
wait_mx $R "$GATEWAY_SET"
ok $? "BIND serves the gateway set"

# --- wrong key, under-privileged account, private zone ---------------------------
T=throttle.$Z
mm setup $T --mode gateway --profile gc-wrong
is "$rc" 1 "a key Google does not know: exit 1"
like "$err" "Google refused the service-account key of \[dns gc-wrong\] \(dns-admin@mm-test.iam.gserviceaccount.test\) at https://127.0.0.1:[0-9]+/token: HTTP 400 invalid_grant: Invalid JWT Signature." \
	"one line naming Google and the refusal"
mm setup $T --mode gateway --profile gc-reader
is "$rc" 1 "an account with roles/dns.reader only: exit 1"
like "$err" "the service account dns-reader@mm-test.iam.gserviceaccount.test lacks dns.changes.create, dns.resourceRecordSets.create, dns.resourceRecordSets.delete, dns.resourceRecordSets.update on managed zone gcloud-test of project mm-test: grant it roles/dns.admin" \
	"one line naming the missing permissions and the role to grant"
unlike "$err" "PRIVATE KEY" "no key material in the messages"
is "$(mx_bind $T)" "$ORIG" "the zone is unchanged"
mm setup private.$Z --mode gateway --profile gc --dry-run
is "$rc" 1 "a domain whose managed zone is private: exit 1"
like "$err" "has only a private managed zone for private.gcloud.test. \(private-test\)" \
	"the private zone is refused"

# --- throttling -------------------------------------------------------------------
emu_ctl POST /_emu/faults '{"method":"GET","path":"/rrsets","kind":429,"count":2,"retry_after":1}' >/dev/null
mm setup $T --mode gateway --profile gc
is "$rc" 0 "two 429 answers (Retry-After: 1): setup still succeeds"
is "$(emu_ctl GET /_emu/faults)" "[]" "both 429 answers were served (and retried by the host)"
is "$(mx_bind $T)" "$GATEWAY_SET" "the gateway set is served"
mm teardown $T
is "$(mx_bind $T)" "$ORIG" "and the teardown restores the original"

# --- unreachable -----------------------------------------------------------------
mm setup $T --mode gateway --profile gc-down
is "$rc" 1 "API unreachable: exit 1"
like "$err" "no answer from Google Cloud DNS \(https://127.0.0.1:9/dns/v1\)" "one line naming the provider and its URL"
is "$(mx_bind $T)" "$ORIG" "the zone is unchanged"

# --- the answer lost, the change applied late ------------------------------------
lost_answer lost.$Z gc '{"method":"POST","path":"/changes","kind":"acted_late","delay_ms":9000}' \
	"no answer from Google Cloud DNS .* to the change of the MX rrset: .*outcome unknown; the UPDATE may still be applied: a re-read shows the old MX set"

# --- the TTL plan (mailmode prepare, issue 13) ---------------------------------
prepare_round_trip gc lost.$Z "the Google Cloud DNS API"
