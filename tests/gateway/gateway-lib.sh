# Shared set-up of the gateway-mode tests: real BIND 9 (primary +
# secondary) and Knot on loopback (tests/servers/dns-harness), a plugin
# directory holding only the gateway plugin, a config with one profile per
# situation, and helpers.  Source it from a test after nothing else:
#
#   . "$top_srcdir/tests/gateway/gateway-lib.sh"
#
# It defines:
#   mm ARGS...       run mailmode with the test config ($rc, $out, $err)
#   mx_bind NAME     the MX set the BIND primary serves (dns_mx lines)
#   ORIG_EXAMPLE     "3600 10 mx1.example.test." + "3600 20 mx2..." lines
#   GATEWAY_SET      the gateway set as dns_mx prints it (TTL 300)
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/servers/dns.sh"

dns_skip_unless_usable
[ -x "$MAILMODE" ] || skip_all "mailmode is not built ($MAILMODE)"
[ -f "$PLUGIN_DIR/gateway.so" ] || skip_all "gateway.so is not built ($PLUGIN_DIR)"

PLUGINS="$TEST_TMP/plugins"
mkdir -m 755 "$PLUGINS"
cp "$PLUGIN_DIR/gateway.so" "$PLUGINS/"
chmod 755 "$PLUGINS/gateway.so"

DNS="$TEST_TMP/dns"
# Registered before the start: a half-started harness is stopped too.
at_exit "dns_stop '$DNS' >/dev/null 2>&1"
dns_start "$DNS"
case $? in
0) ;;
77) skip_all "BIND needs 127.0.0.11-13 on lo (run the tests as root once)" ;;
*)
	echo "Bail out! the DNS test servers did not start (see $DNS/*.log)"
	tail -n 20 "$DNS"/*.log >&2 2>/dev/null
	exit 1 ;;
esac

# A secret that is valid base64 but not gw-key's.
printf '%s\n' "c29tZXRoaW5nIGVsc2UgZW50aXJlbHkgZGlmZmVyZW50IQ==" >"$TEST_TMP/wrong.secret"
chmod 600 "$TEST_TMP/wrong.secret"
# The right secret, readable by everyone: must be refused.
cp "$TSIG_SECRET_FILE" "$TEST_TMP/open.secret"
chmod 644 "$TEST_TMP/open.secret"

CONF="$TEST_TMP/mailmode.conf"
DB="$TEST_TMP/state.db"
cat >"$CONF" <<CONF
[mailmode]
state = state.db
plugin_dir = plugins

; BIND: example.test, mail.example.test, signed.test (primary + secondary)
[profile lab]
dns = bind
service = gw
fallback_mx = 5 fallback.example.test

[dns bind]
port = $DNS_PORT
resolver = $DNS_PRIMARY
resolver_port = $DNS_PORT
tsig_key = $TSIG_KEY
tsig_algorithm = hmac-sha256
tsig_secret_file = $TSIG_SECRET_FILE
timeout = 2

[service gw]
gateway_mx = 10 mx-01.gw.test, 20 mx-02.gw.test
gateway_ttl = 300

; The same DNS, another gateway set (the service moved its gateways).
[profile lab2]
dns = bind
service = gw2

[service gw2]
gateway_mx = 10 mx-01.gw2.test, 20 mx-02.gw2.test
gateway_ttl = 600

; Knot: knot.test (the primary is found from the SOA MNAME)
[profile knot]
dns = knot
service = gw

[dns knot]
port = $DNS_PORT
resolver = $DNS_KNOT
resolver_port = $DNS_PORT
tsig_key = $TSIG_KEY
tsig_secret_file = $TSIG_SECRET_FILE
timeout = 2

; The race test: a pause between reading the MX set and the UPDATE.
[profile slow]
dns = bind-slow
service = gw

[dns bind-slow]
port = $DNS_PORT
resolver = $DNS_PRIMARY
resolver_port = $DNS_PORT
tsig_key = $TSIG_KEY
tsig_secret_file = $TSIG_SECRET_FILE
timeout = 2
debug_pause_before_update_ms = 3000

; Unknown outcomes: Knot with the same pause, and BIND behind a forwarder
; (127.0.0.15, tests/servers/dnsdelay.py) that holds UPDATEs longer than
; the timeout, so their answer is lost and they land late.
[profile knot-slow]
dns = knot-slow
service = gw

[dns knot-slow]
port = $DNS_PORT
resolver = $DNS_KNOT
resolver_port = $DNS_PORT
tsig_key = $TSIG_KEY
tsig_secret_file = $TSIG_SECRET_FILE
timeout = 2
debug_pause_before_update_ms = 3000

[profile late]
dns = bind-late
service = gw
zone = example.test

[dns bind-late]
primary = 127.0.0.15
port = $DNS_PORT
resolver = $DNS_PRIMARY
resolver_port = $DNS_PORT
tsig_key = $TSIG_KEY
tsig_secret_file = $TSIG_SECRET_FILE
timeout = 2

; Failures, one profile each.
[profile wrong-secret]
dns = bind-wrong-secret
service = gw
[dns bind-wrong-secret]
port = $DNS_PORT
resolver = $DNS_PRIMARY
resolver_port = $DNS_PORT
tsig_key = $TSIG_KEY
tsig_secret_file = $TEST_TMP/wrong.secret
timeout = 2

[profile unknown-key]
dns = bind-unknown-key
service = gw
[dns bind-unknown-key]
port = $DNS_PORT
resolver = $DNS_PRIMARY
resolver_port = $DNS_PORT
tsig_key = nobody-key
tsig_secret_file = $TSIG_SECRET_FILE
timeout = 2

[profile policy]
dns = bind-other-key
service = gw
[dns bind-other-key]
port = $DNS_PORT
resolver = $DNS_PRIMARY
resolver_port = $DNS_PORT
tsig_key = $OTHER_KEY
tsig_secret_file = $OTHER_SECRET_FILE
timeout = 2

[profile knot-policy]
dns = knot-other-key
service = gw
[dns knot-other-key]
port = $DNS_PORT
resolver = $DNS_KNOT
resolver_port = $DNS_PORT
tsig_key = $OTHER_KEY
tsig_secret_file = $OTHER_SECRET_FILE
timeout = 2

[profile open-secret]
dns = bind-open-secret
service = gw
[dns bind-open-secret]
port = $DNS_PORT
resolver = $DNS_PRIMARY
resolver_port = $DNS_PORT
tsig_key = $TSIG_KEY
tsig_secret_file = $TEST_TMP/open.secret

; A zone no server serves (the walk is skipped: zone is configured), at a
; configured primary (a hidden primary is configured the same way).
[profile unserved]
dns = bind-primary
service = gw
zone = unserved.test
[dns bind-primary]
primary = $DNS_PRIMARY
port = $DNS_PORT
resolver = $DNS_PRIMARY
resolver_port = $DNS_PORT
tsig_key = $TSIG_KEY
tsig_secret_file = $TSIG_SECRET_FILE
timeout = 2

; Zone and primary configured: no lookups before the primary is asked.
[profile hidden]
dns = bind-primary
service = gw
zone = example.test

; A primary nobody answers on (127.0.0.14: no server there).
[profile down]
dns = bind-down
service = gw
[dns bind-down]
primary = 127.0.0.14
port = $DNS_PORT
resolver = $DNS_PRIMARY
resolver_port = $DNS_PORT
tsig_key = $TSIG_KEY
tsig_secret_file = $TSIG_SECRET_FILE
timeout = 2
CONF

mm() { run "$MAILMODE" --config "$CONF" "$@"; }

mx_bind() { dns_mx "$DNS_PRIMARY" "$1"; }

ORIG_EXAMPLE="3600 10 mx1.example.test.
3600 20 mx2.example.test."
GATEWAY_SET="300 10 mx-01.gw.test.
300 20 mx-02.gw.test."

# json_get JSON PYTHON-EXPR: evaluates EXPR with `d` bound to the parsed
# document, prints the result (for status --json and receipts).
json_get() {
	"$PYTHON3" -c 'import json, sys
d = json.loads(sys.argv[1])
print(eval(sys.argv[2]))' "$1" "$2" 2>&1
}

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

# receipt_of DOMAIN: the receipt the state DB holds for DOMAIN.
receipt_of() {
	sqlite3 "$DB" "SELECT receipt FROM domains WHERE domain = '$1'"
}

