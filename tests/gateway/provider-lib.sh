# Shared set-up of the API-provider tests (cloudflare.t, gcloud.t,
# route53.t, azure.t): real BIND 9 (primary + secondary,
# tests/servers/dns-harness) serving the zone PROVIDER_ZONE behind the
# provider's emulator, a plugin directory holding only the gateway plugin,
# and helpers.  Set PROVIDER_ZONE, then source it:
#
#   PROVIDER_ZONE=cloudflare.test
#   . "$top_srcdir/tests/gateway/provider-lib.sh"
#
# It defines:
#   mm ARGS...        run mailmode with $CONF ($rc, $out, $err)
#   mx_bind NAME      the MX set the BIND primary serves (dns_mx lines)
#   wait_mx NAME SET  waits (20 s at most) until both BIND servers serve SET
#   emu_requests FILTER  how many API requests the emulator logged whose
#                     "METHOD PATH" matches the grep -E FILTER
#   BIND_SPEC         ADDR:PORT:KEY:SECRETFILE for the emulator's --dns
#   round_trip_setup NAME PROFILE [MAILMODE-OPTIONS]
#                     setup with the emulator's request log cleared first:
#                     it succeeds, both BIND servers serve $GATEWAY_SET;
#                     $setup_calls and a TAP comment of the requests (3 tests)
#   round_trip_teardown NAME
#                     verify, then teardown (request log cleared): both BIND
#                     servers serve $ORIG again; $teardown_calls (4 tests)
#   setup_racing NAME PROFILE CONTROL-PATH JSON
#                     setup of NAME with PROFILE (one that pauses before its
#                     change) while someone else changes the MX set through
#                     the emulator's control API; $rc and $err as `mm` sets
#                     them (2 tests)
#   setup_token_refused NAME PROFILE CHANGE-FILTER TOKEN-FILTER
#                     setup of NAME with PROFILE (one that pauses before its
#                     change) while the emulator expires every access token
#                     (POST /_emu/tokens/expire): it succeeds, the change
#                     refused 401 is sent once more, and the token endpoint
#                     is asked once for all the handles (3 tests)
#   lost_answer NAME PROFILE FAULT-JSON ERROR-REGEX
#                     setup whose change is applied but whose answer is lost
#                     (the fault), then resume and teardown: unknown outcome,
#                     the journal, the change landing, reconciled, the
#                     original back (7 tests; $GATEWAY_SET and $ORIG)
#   prepare_round_trip PROFILE NAME API  5 tests: prepare --ttl 60 of NAME
#                     (MX 10 mx1.ZONE, 20 mx2.ZONE, TTL 3600 = $ORIG)
#                     served by BIND, then --undo
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/servers/dns.sh"
. "$top_srcdir/tests/servers/emu.sh"

dns_skip_unless_usable
command -v nsupdate >/dev/null 2>&1 || skip_all "nsupdate is not installed"
"$PYTHON3" -c 'import cryptography' 2>/dev/null || skip_all "python3-cryptography is missing"
[ -x "$MAILMODE" ] || skip_all "mailmode is not built ($MAILMODE)"
[ -f "$PLUGIN_DIR/gateway.so" ] || skip_all "gateway.so is not built ($PLUGIN_DIR)"

PLUGINS="$TEST_TMP/plugins"
mkdir -m 755 "$PLUGINS"
cp "$PLUGIN_DIR/gateway.so" "$PLUGINS/"
chmod 755 "$PLUGINS/gateway.so"

DNS="$TEST_TMP/dns"
at_exit "dns_stop '$DNS' >/dev/null 2>&1"
"$DNS_HARNESS" start "$DNS" --owner-pid $$ --domains "$PROVIDER_ZONE"
case $? in
0) . "$DNS/dns.env" ;;
77) skip_all "BIND needs 127.0.0.11-13 on lo (run the tests as root once)" ;;
*)
	echo "Bail out! the DNS test servers did not start (see $DNS/*.log)"
	exit 1 ;;
esac
BIND_SPEC="$DNS_PRIMARY:$DNS_PORT:$TSIG_KEY:$TSIG_SECRET_FILE"
DB="$TEST_TMP/state.db"
CONF="$TEST_TMP/mailmode.conf"

mm() { run "$MAILMODE" --config "$CONF" "$@"; }

mx_bind() { dns_mx "$DNS_PRIMARY" "$1"; }

# wait_until SECONDS CMD...: retries CMD every 0.2 s until it succeeds.
wait_until() {
	_wu_tries=$(( $1 * 5 ))
	shift
	while [ "$_wu_tries" -gt 0 ]; do
		"$@" && return 0
		sleep 0.2
		_wu_tries=$((_wu_tries - 1))
	done
	return 1
}

_both_serve() {
	[ "$(dns_mx "$DNS_PRIMARY" "$1")" = "$2" ] && [ "$(dns_mx "$DNS_SECONDARY" "$1")" = "$2" ]
}
wait_mx() { wait_until 20 _both_serve "$1" "$2"; }

json_get() {
	"$PYTHON3" -c 'import json, sys
d = json.loads(sys.argv[1])
print(eval(sys.argv[2]))' "$1" "$2" 2>&1
}

emu_requests() {
	emu_ctl GET /_emu/requests | "$PYTHON3" -c 'import json, re, sys
print(sum(1 for r in json.load(sys.stdin) if re.search(sys.argv[1], r["method"] + " " + r["path"])))' "$1"
}

# emu_summary: the API requests logged, counted by method and path (ids
# and queries folded), on one line.
emu_summary() {
	emu_ctl GET /_emu/requests | "$PYTHON3" -c 'import collections, json, re, sys
c = collections.Counter()
for r in json.load(sys.stdin):
    p = re.sub(r"[0-9a-f]{32}", "{id}", r["path"].split("?")[0])
    p = re.sub(r"/changes/[0-9]+$", "/changes/{id}", p)
    c[r["method"] + " " + p] += 1
print("; ".join("%s x%d" % kv for kv in sorted(c.items())))'
}

round_trip_setup() {
	_rt_name=$1
	_rt_profile=$2
	shift 2
	emu_ctl DELETE /_emu/requests >/dev/null
	mm "$@" setup "$_rt_name" --mode gateway --profile "$_rt_profile"
	is "$rc" 0 "setup succeeds"
	[ "$rc" = 0 ] || diag "$err"
	is "$(mx_bind "$_rt_name")" "$GATEWAY_SET" "BIND serves exactly the gateway set once it has propagated"
	is "$(dns_mx "$DNS_SECONDARY" "$_rt_name")" "$GATEWAY_SET" "so does the secondary"
	setup_calls=$(emu_requests .)
	diag "setup: $(emu_summary)"
}

round_trip_teardown() {
	mm verify "$1"
	is "$rc" 0 "verify passes on both authoritative servers"
	emu_ctl DELETE /_emu/requests >/dev/null
	mm teardown "$1"
	is "$rc" 0 "teardown succeeds"
	teardown_calls=$(emu_requests .)
	diag "teardown: $(emu_summary)"
	diag "$(grep -c propagated "$EMU_DIR/emu.log") propagations so far, the last: $(grep propagated "$EMU_DIR/emu.log" | tail -1)"
	is "$(mx_bind "$1")" "$ORIG" "BIND serves the original MX records again, TTLs included"
	is "$(dns_mx "$DNS_SECONDARY" "$1")" "$ORIG" "so does the secondary"
}

# _setup_paused NAME PROFILE: setup in the background until it pauses
# before its change (non-zero: it did not); _setup_done: its $rc and $err.
_setup_paused() {
	"$MAILMODE" --config "$CONF" setup "$1" --mode gateway --profile "$2" \
		>"$TEST_TMP/setup.out" 2>"$TEST_TMP/setup.err" &
	_sp_pid=$!
	wait_until 15 grep -q "pausing before the UPDATE" "$TEST_TMP/setup.err"
}

_setup_done() {
	wait $_sp_pid
	rc=$?
	err=$(cat "$TEST_TMP/setup.err")
}

setup_racing() {
	_setup_paused "$1" "$2"
	ok $? "setup read the MX set and pauses before its change"
	emu_ctl POST "$3" "$4" >/dev/null
	ok $? "someone else changes the MX set meanwhile"
	_setup_done
}

setup_token_refused() {
	_setup_paused "$1" "$2"
	emu_ctl POST /_emu/tokens/expire >/dev/null
	emu_ctl DELETE /_emu/requests >/dev/null
	_setup_done
	is "$rc" 0 "setup succeeds after its token was refused (401, then a new token)"
	[ "$rc" = 0 ] || diag "$err"
	is "$(emu_requests "$3")" 2 "the change was sent again once, with the new token"
	is "$(emu_requests "$4")" 1 \
		"the refused token was dropped: one new token, shared by the handles after it"
}

lost_answer() {
	emu_ctl POST /_emu/faults "$3" >/dev/null
	mm setup "$1" --mode gateway --profile "$2"
	is "$rc" 1 "no answer to the change: setup fails (exit 1)"
	like "$err" "$4" "the outcome is unknown, not 'not applied'"
	_la_ckpt=$(sqlite3 "$DB" "SELECT new_receipt FROM migrations WHERE domain = '$1' ORDER BY id DESC LIMIT 1")
	is "$(json_get "$_la_ckpt" "d['write']['doing']")" "swapping to the gateway set" \
		"the journal holds the change in flight"
	wait_mx "$1" "$GATEWAY_SET"
	ok $? "the change lands later"
	mm resume "$1"
	is "$rc" 0 "resume reconciles: the gateway set is ours"
	mm teardown "$1"
	is "$rc" 0 "teardown"
	wait_mx "$1" "$ORIG"
	ok $? "teardown puts the original back"
}

prepare_round_trip() {
	mm prepare "$2" --ttl 60 --profile "$1"
	is "$rc" 0 "prepare lowers the MX TTL through $3"
	[ "$rc" = 0 ] || diag "$err"
	like "$out" "lowered to 60 s \(before: 3600 s\)" "it names the TTL before"
	wait_mx "$2" "60 10 mx1.$PROVIDER_ZONE.
60 20 mx2.$PROVIDER_ZONE."
	ok $? "both BIND servers serve the records with TTL 60 once it has propagated"
	mm prepare --undo "$2" --profile "$1"
	is "$rc" 0 "prepare --undo"
	wait_mx "$2" "$ORIG"
	ok $? "the TTL 3600 is back"
}
