#!/bin/sh
# A provider write the host retried, whose later attempt was refused: the
# first attempt may have been applied (it was: the emulator applies it,
# then answers 503, and refuses the retry with a 400 that is not the
# provider's conflict answer).  The refusal says nothing about the first
# attempt, so the outcome is unknown unless a re-read proves the state:
#   - the re-read shows the new set: setup succeeds;
#   - the re-reads fail too: unknown (journal "unknown"), and
#     `mailmode resume` re-reads and finishes it.
#   - without the 400, the retry meets the provider's own answer to a set
#     that changed (Cloudflare 81044, Google 412): the same, never a
#     conflict.
# Both API providers, each emulator backed by the same real BIND
# (cloudflare.test, gcloud.test).
PROVIDER_ZONE=cloudflare.test,gcloud.test
. "$top_srcdir/tests/gateway/provider-lib.sh"

plan 34

GATEWAY_SET="300 10 mx-01.gw.test.
300 20 mx-02.gw.test."

# --- the two emulators ------------------------------------------------------
printf '%s\n' "cf-token-edit-0123456789abcdefABCDEF_-x" >"$TEST_TMP/edit.token"
chmod 600 "$TEST_TMP/edit.token"
cf=cloudflare.test
records=
for n in retry unknown natural; do
	records="$records{\"type\":\"MX\",\"name\":\"$n.$cf\",\"content\":\"mx1.$cf\",\"priority\":10,\"ttl\":3600},
{\"type\":\"MX\",\"name\":\"$n.$cf\",\"content\":\"mx2.$cf\",\"priority\":20,\"ttl\":3600},"
done
cat >"$TEST_TMP/cf.json" <<SPEC
{"zones": [{"name": "$cf", "records": [${records%,}]}],
 "tokens": [{"value": "$(cat "$TEST_TMP/edit.token")",
             "zones": {"$cf": ["zone_read", "dns_read", "dns_edit"]}}]}
SPEC
gc=gcloud.test
cat >"$TEST_TMP/gc.json" <<SPEC
{"project": "mm-test",
 "zones": [{"name": "gcloud-test", "dnsName": "$gc.", "rrsets": [
   {"name": "retry.$gc.", "type": "MX", "ttl": 3600, "rrdatas": ["10 mx1.$gc.", "20 mx2.$gc."]},
   {"name": "unknown.$gc.", "type": "MX", "ttl": 3600, "rrdatas": ["10 mx1.$gc.", "20 mx2.$gc."]},
   {"name": "natural.$gc.", "type": "MX", "ttl": 3600, "rrdatas": ["10 mx1.$gc.", "20 mx2.$gc."]}]}],
 "accounts": [{"name": "dns-admin", "roles": {"gcloud-test": "admin"}}]}
SPEC
at_exit "emu_stop '$TEST_TMP/cfemu'; emu_stop '$TEST_TMP/gcemu'"
EMU_PY=$top_srcdir/tests/servers/cfemu.py
emu_start "$TEST_TMP/cfemu" --spec "$TEST_TMP/cf.json" --dns "$BIND_SPEC" \
	--propagation-delay 0.5 || { echo "Bail out! cfemu.py did not start"; exit 1; }
CF_BASE=$EMU_BASE CF_CA=$EMU_CA
CF_API=$(_emu_json_field "$EMU_DIR/emu.json" api_url)
EMU_PY=$top_srcdir/tests/servers/gcloudemu.py
emu_start "$TEST_TMP/gcemu" --spec "$TEST_TMP/gc.json" --dns "$BIND_SPEC" \
	--propagation-delay 0.5 || { echo "Bail out! gcloudemu.py did not start"; exit 1; }
GC_BASE=$EMU_BASE GC_CA=$EMU_CA
GC_API=$(_emu_json_field "$EMU_DIR/emu.json" api_url)
# emu_ctl talks to the emulator chosen last.
use_cf() { EMU_BASE=$CF_BASE EMU_CA=$CF_CA; }
use_gc() { EMU_BASE=$GC_BASE EMU_CA=$GC_CA; }

common() {
	printf 'port = %s\nresolver = %s\nresolver_port = %s\ntimeout = 2\n' \
		"$DNS_PORT" "$DNS_PRIMARY" "$DNS_PORT"
}
{
	printf '[mailmode]\nstate = state.db\nplugin_dir = plugins\n\n'
	printf '[service gw]\ngateway_mx = 10 mx-01.gw.test, 20 mx-02.gw.test\ngateway_ttl = 300\n\n'
	printf '[dns cf]\nprovider = cloudflare\napi_url = %s\nca_file = %s\napi_token_file = %s\n' \
		"$CF_API" "$CF_CA" "$TEST_TMP/edit.token"
	common
	printf '[profile cf]\ndns = cf\nservice = gw\n\n'
	printf '[dns gc]\nprovider = gcloud\napi_url = %s\nca_file = %s\nservice_account_file = %s\n' \
		"$GC_API" "$GC_CA" "$TEST_TMP/gcemu/dns-admin.json"
	common
	printf '[profile gc]\ndns = gc\nservice = gw\n'
} >"$CONF"

mode_of() { sqlite3 "$DB" "SELECT ifnull(mode, '-') FROM domains WHERE domain = '$1'"; }
last_phase() {
	sqlite3 "$DB" "SELECT j.step || ' ' || j.phase FROM journal j JOIN migrations m ON m.id = j.migration_id WHERE m.domain = '$1' ORDER BY m.id DESC, j.seq DESC LIMIT 1"
}
gateway_live() { [ "$(mx_bind "$1")" = "$GATEWAY_SET" ]; }

# retried PROFILE NAME WRITE-PATH: the write applied, answered 503 (the
# host retries it), the retry refused with 400; a setup meets it.
retried() {
	emu_ctl POST /_emu/faults "{\"method\":\"POST\",\"path\":\"$3\",\"skip\":$4,\"kind\":\"acted_503\",\"retry_after\":1,\"then\":[{\"kind\":400}]}" >/dev/null
	mm setup "$2" --mode gateway --profile "$1"
}

# unknown PROFILE NAME WRITE-PATH SKIP READ-PATH: the same, and every re-read
# of the MX set after the refusal loses its answer.
unknown() {
	emu_ctl POST /_emu/faults "{\"method\":\"POST\",\"path\":\"$3\",\"skip\":$4,\"kind\":\"acted_503\",\"retry_after\":1,\"then\":[{\"kind\":400,\"then\":[{\"method\":\"GET\",\"path\":\"$5\",\"kind\":\"drop\",\"count\":40}]}]}" >/dev/null
	mm setup "$2" --mode gateway --profile "$1"
	emu_ctl DELETE /_emu/faults >/dev/null
}

for provider in cf gc; do
	case $provider in
	cf) use_cf; Z=$cf; write=/dns_records/batch; skip=1; read=/dns_records?
	    name=Cloudflare; refusal="code 81044: Record does not exist" ;;
	gc) use_gc; Z=$gc; write=/changes; skip=0; read=/rrsets?
	    name="Google Cloud DNS"; refusal="HTTP 412 conditionNotMet" ;;
	esac
	R=retry.$Z
	retried $provider $R $write $skip
	is "$rc" 0 "$name: a retried write refused after its first attempt landed: setup succeeds (a re-read proves the new set)"
	[ "$rc" = 0 ] || diag "$err"
	like "$err" "refused .*HTTP 400.*, but the host had sent it 2 times and an earlier attempt may have been applied: outcome unknown" \
		"$name: the refusal is not taken for 'not applied'"
	like "$err" "a re-read shows the new MX set live" "$name: the re-read settles it"
	is "$(mode_of $R)" gateway "$name: the state holds gateway mode"
	wait_until 20 gateway_live $R
	ok $? "$name: BIND serves the gateway set"
	is "$(emu_ctl GET /_emu/faults)" "[]" "$name: the script ran: applied + 503, then 400"

	N=natural.$Z
	emu_ctl POST /_emu/faults "{\"method\":\"POST\",\"path\":\"$write\",\"skip\":$skip,\"kind\":\"acted_503\",\"retry_after\":1}" >/dev/null
	mm setup $N --mode gateway --profile $provider
	is "$rc" 0 "$name: the retry meets the provider's own answer to a changed set: setup succeeds"
	[ "$rc" = 0 ] || diag "$err"
	like "$err" "$refusal.*but the host had sent it 2 times.*; but a re-read shows the new MX set live" \
		"$name: not taken for a conflict: the re-read shows the first attempt landed"
	wait_until 20 gateway_live $N
	ok $? "$name: BIND serves the gateway set"

	U=unknown.$Z
	unknown $provider $U $write $skip "$read"
	is "$rc" 1 "$name: the re-reads lose their answers too: setup fails (exit 1)"
	like "$err" "outcome is unknown: .*the host had sent it 2 times.*the provider's API did not answer the re-reads either; run 'mailmode resume $U'" \
		"$name: outcome unknown, resume named"
	unlike "$err" "rolled back|not applied" "$name: never 'rolled back' nor 'not applied'"
	is "$(last_phase $U)" "setup_new unknown" "$name: the journal says unknown"
	wait_until 20 gateway_live $U
	ok $? "$name: BIND serves the gateway set the first attempt set"
	mm resume $U
	is "$rc" 0 "$name: resume re-reads and finishes the setup"
	[ "$rc" = 0 ] || diag "$err"
	is "$(mode_of $U)" gateway "$name: the state holds gateway mode"
	mm teardown $U
	wait_mx $U "3600 10 mx1.$Z.
3600 20 mx2.$Z."
	ok $? "$name: teardown puts the original back"
done
