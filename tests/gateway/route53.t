#!/bin/sh
# Gateway mode on a zone hosted at Amazon Route 53 (tests/servers/r53emu.py:
# the API with SigV4 checked against each user's secret, backed by the real
# BIND zone route53.test: an accepted change is served by BIND after the
# propagation delay, and GetChange says INSYNC only then).  Round trip
# restoring the exact originals, a concurrent change refused by the batch's
# DELETE (InvalidChangeBatch), temporary credentials from an AWS credentials
# file, a wrong secret, an unknown key and an under-privileged user, a
# private zone, throttling (400 Throttling, 429), an unreachable API, and a
# lost answer.
EMU_PY=$top_srcdir/tests/servers/r53emu.py
PROVIDER_ZONE=route53.test
. "$top_srcdir/tests/gateway/provider-lib.sh"

plan 67

Z=route53.test
ORIG="3600 10 mx1.route53.test.
3600 20 mx2.route53.test."
GATEWAY_SET="300 10 mx-01.gw.test.
300 20 mx-02.gw.test."
ADMIN_KEY=AKIAMAILMODETEST0001
ADMIN_SECRET='wJalrXUtnFEMI/K7MDENG+bPxRfiCYmailmode01'
READER_KEY=AKIAMAILMODETEST0002
READER_SECRET='readerXUtnFEMI/K7MDENG+bPxRfiCYmailmode2'
TEMP_KEY=ASIAMAILMODETEST0003
TEMP_SECRET='tempXUtnFEMI/K7MDENG+bPxRfiCYmailmode003'
TEMP_TOKEN='IQoJb3JpZ2luX2VjEMailmodeTestSessionToken//////////AQ=='

printf '%s\n' "$ADMIN_SECRET" >"$TEST_TMP/admin.secret"
printf '%s\n' "$READER_SECRET" >"$TEST_TMP/reader.secret"
printf '%s\n' 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYWRONGWRONG01' >"$TEST_TMP/wrong.secret"
cat >"$TEST_TMP/credentials" <<CRED
[default]
aws_access_key_id = $ADMIN_KEY
aws_secret_access_key = not-this-one

[mailmode-temp]
aws_access_key_id = $TEMP_KEY
aws_secret_access_key = $TEMP_SECRET
aws_session_token = $TEMP_TOKEN
CRED
chmod 600 "$TEST_TMP/admin.secret" "$TEST_TMP/reader.secret" "$TEST_TMP/wrong.secret" \
	"$TEST_TMP/credentials"
cp "$TEST_TMP/admin.secret" "$TEST_TMP/open.secret"
chmod 644 "$TEST_TMP/open.secret"

rrsets=
for n in "" race. throttle. lost. temp.; do
	rrsets="$rrsets{\"name\":\"${n}$Z.\",\"type\":\"MX\",\"ttl\":3600,\"values\":[\"10 mx1.$Z.\",\"20 mx2.$Z.\"]},"
done
cat >"$TEST_TMP/spec.json" <<SPEC
{"zones": [{"name": "$Z.", "rrsets": [${rrsets%,}]},
           {"name": "private.$Z.", "private": true, "rrsets": []},
           {"name": "twice.$Z.", "rrsets": []},
           {"name": "twice.$Z.", "rrsets": []}],
 "users": [{"name": "dns-admin", "access_key_id": "$ADMIN_KEY",
            "secret_access_key": "$ADMIN_SECRET",
            "actions": ["route53:ListHostedZonesByName", "route53:ListResourceRecordSets",
                        "route53:ChangeResourceRecordSets", "route53:GetChange"]},
           {"name": "dns-reader", "access_key_id": "$READER_KEY",
            "secret_access_key": "$READER_SECRET",
            "actions": ["route53:ListHostedZonesByName", "route53:ListResourceRecordSets",
                        "route53:GetChange"]},
           {"name": "dns-temp", "access_key_id": "$TEMP_KEY",
            "secret_access_key": "$TEMP_SECRET", "session_token": "$TEMP_TOKEN",
            "actions": ["route53:*"]}]}
SPEC
at_exit "emu_stop '$TEST_TMP/emu'"
emu_start "$TEST_TMP/emu" --spec "$TEST_TMP/spec.json" --dns "$BIND_SPEC" \
	--propagation-delay 1 || { echo "Bail out! r53emu.py did not start"; exit 1; }
R53_API=$(_emu_json_field "$EMU_DIR/emu.json" api_url)
# One item per page: the two zones named twice.route53.test are on two
# pages, and every list is read through its pagination.
emu_ctl POST /_emu/config '{"page_size": 1}' >/dev/null

section() { # NAME CREDENTIAL-LINES [EXTRA LINE] [API URL]
	cat <<SEC
[dns $1]
provider = route53
api_url = ${4:-$R53_API}
ca_file = $EMU_CA
$2
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
admin="access_key_id = $ADMIN_KEY
secret_access_key_file = $TEST_TMP/admin.secret"
{
	printf '[mailmode]\nstate = state.db\nplugin_dir = plugins\n\n'
	printf '[service gw]\ngateway_mx = 10 mx-01.gw.test, 20 mx-02.gw.test\ngateway_ttl = 300\n\n'
	section r53 "$admin"
	section r53-slow "$admin" "debug_pause_before_update_ms = 3000"
	section r53-reader "access_key_id = $READER_KEY
secret_access_key_file = $TEST_TMP/reader.secret"
	section r53-wrong "access_key_id = $ADMIN_KEY
secret_access_key_file = $TEST_TMP/wrong.secret"
	section r53-unknown "access_key_id = AKIANOBODYKNOWSTHIS0
secret_access_key_file = $TEST_TMP/admin.secret"
	section r53-open "access_key_id = $ADMIN_KEY
secret_access_key_file = $TEST_TMP/open.secret"
	section r53-temp "aws_credentials_file = $TEST_TMP/credentials
aws_profile = mailmode-temp"
	section r53-notoken "access_key_id = $TEMP_KEY
secret_access_key_file = $TEST_TMP/admin.secret"
	section r53-down "$admin" "" https://127.0.0.1:9
	section r53-nokey "secret_access_key_file = $TEST_TMP/admin.secret"
	section r53-noshared "$admin
aws_profile = mailmode-temp"
} >"$CONF"

wait_mx $Z "$ORIG"
ok $? "BIND serves what the emulated hosted zone holds (two MX, TTL 3600)"

# --- config -------------------------------------------------------------------
mm setup $Z --mode gateway --profile r53-nokey --dry-run
is "$rc" 1 "no access_key_id: exit 1"
like "$err" "\[dns r53-nokey\] access_key_id: missing" "one line naming the section and key"
mm setup $Z --mode gateway --profile r53-noshared --dry-run
is "$rc" 1 "aws_profile without aws_credentials_file: exit 1"
like "$err" "\[dns r53-noshared\] aws_profile: 'mailmode-temp' names a section of aws_credentials_file, which is not set" \
	"one line naming the key"
mm setup $Z --mode gateway --profile r53-open
is "$rc" 1 "a world-readable secret file: exit 1"
like "$err" "open.secret" "the message names the secret file"
is "$(mx_bind $Z)" "$ORIG" "the zone is unchanged"

# --- round trip -----------------------------------------------------------------
mm setup $Z --mode gateway --profile r53 --dry-run
is "$rc" 0 "setup --dry-run succeeds"
[ "$rc" = 0 ] || diag "$err"
like "$out" "ChangeResourceRecordSets to hosted zone route53.test. \(id Z0+1\)" \
	"plan: names the hosted zone"
like "$out" "DELETE \(must match the live set exactly.*\): route53.test. 3600 MX 10 mx1.route53.test." \
	"plan: deletes the exact live set"
like "$out" "CREATE: route53.test. 300 MX 20 mx-02.gw.test." "plan: creates the gateway set"

start=$(date +%s%N)
round_trip_setup $Z r53 -v
setup_s=$(( ($(date +%s%N) - start) / 1000000 ))
is "$(emu_requests 'POST .*/rrset$')" 2 "two ChangeResourceRecordSets: preflight's probe (never applies) and the swap"
insync=$(printf '%s\n' "$err" | sed -n 's/.*Route 53 change \(C[0-9A-Z]*\) INSYNC after \([0-9]*\) ms.*/\2/p' | tail -1)
ok "$([ -n "$insync" ] && echo 0 || echo 1)" "setup followed the change until INSYNC"
is "$(emu_requests 'GET .*/hostedzonesbyname\?')" 1 "one hosted-zone lookup for the whole setup (the provider handles share it)"
round_trip_teardown $Z
diag "API calls: setup $setup_calls, teardown $teardown_calls; setup took ${setup_s} ms, the change INSYNC after ${insync} ms (propagation delay 1 s)"

# --- a concurrent change between read and change --------------------------------
R=race.$Z
setup_racing $R r53-slow /_emu/zones/$Z/rrset \
	"{\"name\":\"$R.\",\"type\":\"MX\",\"ttl\":3600,\"values\":[\"10 mx1.$Z.\",\"20 mx2.$Z.\",\"30 mx3.$Z.\"]}"
is "$rc" 3 "setup is refused (exit 3: rolled back, nothing of ours applied)"
like "$err" "the MX set of $R changed at Route 53 between our read and our change \(InvalidChangeBatch: \[Tried to delete resource record set \[name='$R.', type='MX'\] but the values provided do not match the current values" \
	"the error names the refused DELETE"
wait_mx $R "$ORIG
3600 30 mx3.route53.test."
ok $? "BIND serves the other change and nothing of ours"

# --- credentials -------------------------------------------------------------------
T=throttle.$Z
GRANT="grant it route53:ListHostedZonesByName, route53:ListResourceRecordSets, route53:ChangeResourceRecordSets and route53:GetChange"
mm setup $T --mode gateway --profile r53-wrong
is "$rc" 1 "a wrong secret: exit 1"
like "$err" "Route 53 refused the hosted-zone lookup of throttle.route53.test. to access key $ADMIN_KEY of \[dns r53-wrong\]: the secret access key does not match the access key id; $GRANT \(HTTP 403 SignatureDoesNotMatch" \
	"one line naming Route 53, the key, the cause and the IAM actions"
mm setup $T --mode gateway --profile r53-unknown
is "$rc" 1 "an unknown access key: exit 1"
like "$err" "Route 53 refused .* to access key AKIANOBODYKNOWSTHIS0 of \[dns r53-unknown\]: AWS does not know the access key id; $GRANT \(HTTP 403 InvalidClientTokenId" \
	"one line saying AWS does not know the key"
mm setup $T --mode gateway --profile r53-notoken
is "$rc" 1 "temporary credentials without their session token: exit 1"
like "$err" "InvalidClientTokenId" "refused as an invalid token"
mm setup $T --mode gateway --profile r53-reader
is "$rc" 1 "a user without route53:ChangeResourceRecordSets: exit 1"
like "$err" "Route 53 refused a change of the MX record set to access key $READER_KEY of \[dns r53-reader\]: $GRANT \(HTTP 403 AccessDenied: User: arn:aws:iam::123456789012:user/dns-reader is not authorized to perform: route53:ChangeResourceRecordSets" \
	"one line naming the missing action and what to grant"
all_err=$(cat "$TEST_TMP"/*.err 2>/dev/null; printf '%s' "$err")
unlike "$all_err$(cat "$EMU_DIR/emu.log")" "MDENG|$TEMP_TOKEN" "no secret or token in the messages or the emulator's log"
is "$(mx_bind $T)" "$ORIG" "the zone is unchanged"

# --- temporary credentials from an AWS credentials file -------------------------
P=temp.$Z
mm setup $P --mode gateway --profile r53-temp
is "$rc" 0 "the credentials file's profile with a session token: setup succeeds"
[ "$rc" = 0 ] || diag "$err"
is "$(mx_bind $P)" "$GATEWAY_SET" "the gateway set is served"
mm teardown $P
is "$(mx_bind $P)" "$ORIG" "teardown restores the original"
chmod 644 "$TEST_TMP/credentials"
mm setup $P --mode gateway --profile r53-temp --dry-run
is "$rc" 1 "a group/world-readable credentials file: exit 1"
like "$err" "credentials" "the message names the credentials file"
chmod 600 "$TEST_TMP/credentials"

# --- zones: private, twice --------------------------------------------------------
mm setup private.$Z --mode gateway --profile r53 --dry-run
is "$rc" 1 "a domain whose hosted zone is private: exit 1"
like "$err" "Route 53 shows only a private hosted zone named private.route53.test. to access key $ADMIN_KEY \(ids Z0+2\): refusing it" \
	"the private zone is refused"
mm setup twice.$Z --mode gateway --profile r53 --dry-run
is "$rc" 1 "two public hosted zones of the same name: exit 1"
like "$err" "more than one public hosted zone named twice.route53.test. to access key $ADMIN_KEY \(ids Z0+3, Z0+4\)" \
	"both are named (found across two pages)"

# --- throttling -------------------------------------------------------------------
emu_ctl POST /_emu/faults '{"method":"GET","path":"/rrset","kind":"throttling","count":2}' >/dev/null
emu_ctl POST /_emu/faults '{"method":"POST","path":"/rrset","kind":"prior","count":1,"skip":1}' >/dev/null
emu_ctl POST /_emu/faults '{"method":"GET","path":"/hostedzonesbyname","kind":429,"count":1,"retry_after":1}' >/dev/null
mm setup $T --mode gateway --profile r53
is "$rc" 0 "Throttling twice, PriorRequestNotComplete once and a 429: setup still succeeds"
[ "$rc" = 0 ] || diag "$err"
is "$(emu_ctl GET /_emu/faults)" "[]" "every throttling answer was served (and retried)"
is "$(mx_bind $T)" "$GATEWAY_SET" "the gateway set is served"
emu_ctl POST /_emu/faults '{"method":"GET","path":"/rrset","kind":"throttling","count":10}' >/dev/null
mm teardown $T
is "$rc" 1 "throttled on every try: teardown fails (exit 1)"
like "$err" "Route 53 refused the read of the MX record set of $T \(HTTP 400 Throttling: Rate exceeded\): still throttled after the retries" \
	"one line saying Route 53 still throttles"
emu_ctl DELETE /_emu/faults >/dev/null
mm teardown $T
is "$(mx_bind $T)" "$ORIG" "once it stops, the teardown restores the original"

# --- unreachable -----------------------------------------------------------------
mm setup $T --mode gateway --profile r53-down
is "$rc" 1 "API unreachable: exit 1"
like "$err" "no answer from Route 53 \(https://127.0.0.1:9\)" "one line naming the provider and its URL"
is "$(mx_bind $T)" "$ORIG" "the zone is unchanged"

# --- the answer lost, the change applied late ------------------------------------
# (skip 1: preflight's probe batch passes; the swap's answer is lost)
lost_answer lost.$Z r53 '{"method":"POST","path":"/rrset","kind":"acted_late","delay_ms":9000,"skip":1}' \
	"no answer from Route 53 .* to the change of the MX record set: .*outcome unknown; the UPDATE may still be applied: a re-read shows the old MX set"

# --- the TTL plan (mailmode prepare, issue 13) ---------------------------------
prepare_round_trip r53 lost.$Z "the Route 53 API"
