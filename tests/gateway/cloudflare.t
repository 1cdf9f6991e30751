#!/bin/sh
# Gateway mode on a zone hosted at Cloudflare (tests/servers/cfemu.py, the
# API emulator, backed by the real BIND zone cloudflare.test: a change the
# API accepts is served by BIND after the propagation delay).  Round trip
# restoring the exact originals, a concurrent change (before and right
# after the batch), wrong and under-privileged tokens, throttling, an
# unreachable API, and a lost answer (unknown, then resumed).
EMU_PY=$top_srcdir/tests/servers/cfemu.py
PROVIDER_ZONE=cloudflare.test
. "$top_srcdir/tests/gateway/provider-lib.sh"

plan 51

Z=cloudflare.test
ORIG="3600 10 mx1.cloudflare.test.
3600 20 mx2.cloudflare.test."
GATEWAY_SET="300 10 mx-01.gw.test.
300 20 mx-02.gw.test."

printf '%s\n' "cf-token-edit-0123456789abcdefABCDEF_-x" >"$TEST_TMP/edit.token"
printf '%s\n' "cf-token-read-0123456789abcdefABCDEF_-x" >"$TEST_TMP/read.token"
printf '%s\n' "cf-token-wrong-123456789abcdefABCDEF_-x" >"$TEST_TMP/wrong.token"
chmod 600 "$TEST_TMP"/*.token
cp "$TEST_TMP/edit.token" "$TEST_TMP/open.token"
chmod 644 "$TEST_TMP/open.token"

# Names in the zone, one per part of the test, each with two MX records.
records=
for n in "" race. after. throttle. lost.; do
	records="$records{\"type\":\"MX\",\"name\":\"${n}$Z\",\"content\":\"mx1.$Z\",\"priority\":10,\"ttl\":3600},
{\"type\":\"MX\",\"name\":\"${n}$Z\",\"content\":\"mx2.$Z\",\"priority\":20,\"ttl\":3600},"
done
cat >"$TEST_TMP/spec.json" <<SPEC
{"zones": [{"name": "$Z", "records": [${records%,}]},
           {"name": "other.test", "records": []}],
 "tokens": [{"value": "$(cat "$TEST_TMP/edit.token")",
             "zones": {"$Z": ["zone_read", "dns_read", "dns_edit"]}},
            {"value": "$(cat "$TEST_TMP/read.token")",
             "zones": {"$Z": ["zone_read", "dns_read"]}}]}
SPEC
at_exit "emu_stop '$TEST_TMP/emu'"
emu_start "$TEST_TMP/emu" --spec "$TEST_TMP/spec.json" --dns "$BIND_SPEC" \
	--propagation-delay 1 || { echo "Bail out! cfemu.py did not start"; exit 1; }
CF_API=$(_emu_json_field "$EMU_DIR/emu.json" api_url)
# Pages of 5 records (Cloudflare's smallest): the zone's 10 MX records
# are read in pages.
emu_ctl POST /_emu/config '{"page_size": 5}' >/dev/null

section() { # NAME TOKEN-FILE [EXTRA LINE] [API URL]
	cat <<SEC
[dns $1]
provider = cloudflare
api_url = ${4:-$CF_API}
ca_file = $EMU_CA
api_token_file = $2
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
	section cf "$TEST_TMP/edit.token"
	section cf-slow "$TEST_TMP/edit.token" "debug_pause_before_update_ms = 3000"
	section cf-read "$TEST_TMP/read.token"
	section cf-wrong "$TEST_TMP/wrong.token"
	section cf-open "$TEST_TMP/open.token"
	section cf-down "$TEST_TMP/edit.token" "" https://127.0.0.1:9/client/v4
	printf '[dns bogus]\nprovider = nsone\n[profile bogus]\ndns = bogus\nservice = gw\n'
} >"$CONF"

wait_mx $Z "$ORIG"
ok $? "BIND serves what the emulated Cloudflare zone holds (two MX, TTL 3600)"

# --- config -------------------------------------------------------------------
mm setup $Z --mode gateway --profile bogus --dry-run
like "$err" "\[dns bogus\] provider: 'nsone' is not a DNS provider \(use rfc2136, cloudflare, gcloud, route53 or azure\)" \
	"an unknown provider: one line naming the section and the allowed values"
mm setup $Z --mode gateway --profile cf-open
is "$rc" 1 "a world-readable token file: exit 1"
like "$err" "open.token" "the message names the token file"
is "$(mx_bind $Z)" "$ORIG" "the zone is unchanged"

# --- round trip -----------------------------------------------------------------
mm setup $Z --mode gateway --profile cf --dry-run
is "$rc" 0 "setup --dry-run succeeds"
like "$out" "delete: record id [0-9a-f]{32} \(cloudflare.test. 3600 MX 10 mx1.cloudflare.test.\)" \
	"plan: deletes the records by id"
like "$out" "post: cloudflare.test. 300 MX 20 mx-02.gw.test." "plan: posts the gateway records"
like "$out" "guarantee: weaker than a compare-and-swap" "plan: says the guarantee is weaker"

round_trip_setup $Z cf
setup_batches=$(emu_requests 'POST .*/batch')
is "$setup_batches" 2 "setup sent two batches: preflight's no-op probe and the swap"
is "$(emu_requests 'GET .*/zones\?name=')" 1 "one zone lookup for the whole setup (the provider handles share it)"
round_trip_teardown $Z
diag "API calls: setup $setup_calls, teardown $teardown_calls"

# --- a concurrent change before the batch ------------------------------------
R=race.$Z
# Someone adds an MX record in the dashboard meanwhile.
setup_racing $R cf-slow /_emu/zones/$Z/records \
	"{\"type\":\"MX\",\"name\":\"$R\",\"content\":\"mx3.$Z\",\"priority\":30,\"ttl\":3600}"
is "$rc" 3 "setup is refused (exit 3: rolled back, nothing of ours applied)"
like "$err" "the MX set of $R changed at Cloudflare between our read and our batch \(extra: 30 mx3.cloudflare.test. \(ttl 3600\)\)" \
	"the error names the change"
wait_mx $R "$ORIG
3600 30 mx3.cloudflare.test."
ok $? "BIND serves the hand-made record and nothing of ours"

# --- a concurrent change right after the batch -------------------------------
A=after.$Z
emu_ctl POST /_emu/faults "{\"method\":\"POST\",\"path\":\"/batch\",\"skip\":1,\"kind\":\"concurrent_after\",\"zone\":\"$Z\",\"record\":{\"type\":\"MX\",\"name\":\"$A\",\"content\":\"mx3.$Z\",\"priority\":30,\"ttl\":3600}}" >/dev/null
mm -v setup $A --mode gateway --profile cf
[ "$rc" != 0 ]
ok $? "a record added right after the batch: setup does not succeed (exit $rc)"
unlike "$err" "waiting until gateway mode is in effect" \
	"setup itself refused (the re-read right after the batch), before any verify"
wait_until 20 sh -c "dig +short @$DNS_PRIMARY -p $DNS_PORT $A MX | grep -q mx3"
ok $? "the hand-made record is kept (BIND serves it)"

# --- wrong and under-privileged tokens -----------------------------------------
T=throttle.$Z
mm setup $T --mode gateway --profile cf-wrong
is "$rc" 1 "an unknown token: exit 1"
like "$err" "Cloudflare refused the zone lookup of throttle.cloudflare.test with the API token of \[dns cf-wrong\] \(HTTP 401, code 10000: Authentication error\): grant the API token Zone:Zone:Read and Zone:DNS:Edit" \
	"one line naming Cloudflare and the scope to grant"
mm setup $T --mode gateway --profile cf-read
is "$rc" 1 "a token that may only read: exit 1"
like "$err" "Cloudflare refused a batch edit of the zone's records with the API token of \[dns cf-read\] \(HTTP 403, code 10000: Authentication error\): grant the API token Zone:Zone:Read and Zone:DNS:Edit" \
	"one line naming what to grant"
unlike "$err" "cf-token-" "no token in the messages"
is "$(mx_bind $T)" "$ORIG" "the zone is unchanged"

# --- throttling -----------------------------------------------------------------
emu_ctl POST /_emu/faults '{"method":"GET","path":"/dns_records","kind":429,"count":2,"retry_after":1}' >/dev/null
emu_ctl DELETE /_emu/requests >/dev/null
mm setup $T --mode gateway --profile cf
is "$rc" 0 "two 429 answers (Retry-After: 1): setup still succeeds"
is "$(emu_ctl GET /_emu/faults)" "[]" "both 429 answers were served (and retried by the host)"
wait_mx $T "$GATEWAY_SET"
ok $? "the gateway set is served"
mm teardown $T
wait_mx $T "$ORIG"
ok $? "and the teardown restores the original"

# --- unreachable ------------------------------------------------------------------
mm setup $T --mode gateway --profile cf-down
is "$rc" 1 "API unreachable: exit 1"
like "$err" "no answer from Cloudflare \(https://127.0.0.1:9/client/v4\)" "one line naming Cloudflare and its URL"
is "$(mx_bind $T)" "$ORIG" "the zone is unchanged"

# --- the answer lost, the batch applied late ----------------------------------
lost_answer lost.$Z cf '{"method":"POST","path":"/batch","skip":1,"kind":"acted_late","delay_ms":9000}' \
	"no answer from Cloudflare to the batch for lost.$Z .*outcome unknown; the UPDATE may still be applied: a re-read shows the old MX set"

# --- the TTL plan (mailmode prepare, issue 13) ---------------------------------
prepare_round_trip cf lost.$Z "the Cloudflare API"
