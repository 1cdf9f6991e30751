# Shared set-up of the API-provider tests (cloudflare.t, gcloud.t): real
# BIND 9 (primary + secondary, tests/servers/dns-harness) serving the zone
# PROVIDER_ZONE behind the provider's emulator, a plugin directory holding
# only the gateway plugin, and helpers.  Set PROVIDER_ZONE, then source it:
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
