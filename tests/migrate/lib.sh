# Shared by the migration tests against the sandbox: real BIND 9 primary +
# secondary and the Microsoft 365 emulator, started through
# `mailmode sandbox start` and stopped at exit (also when the test dies).
. "$top_srcdir/tests/lib.sh"

SB="$TEST_TMP/sandbox"
export MAILMODE_DATADIR="$top_srcdir/tests/servers"
export MAILMODE_SANDBOX_OWNER_PID=$$
if ! "$MAILMODE" --plugin-dir "$PLUGIN_DIR" sandbox start --dir "$SB" >"$TEST_TMP/sandbox.out" 2>&1; then
	if grep -q "loopback" "$TEST_TMP/sandbox.out"; then
		skip_all "no loopback addresses 127.0.0.11-12 (needs root)"
	fi
	cat "$TEST_TMP/sandbox.out" | sed 's/^/# /'
	echo "Bail out! the sandbox did not start"
	exit 1
fi
at_exit "'$MAILMODE' sandbox stop --dir '$SB' >/dev/null 2>&1"
export MAILMODE_CONFIG="$SB/mailmode.conf"
DB="$SB/state.db"
. "$SB/dns/dns.env"
GATEWAY_SET="10 mx-01.gw.sandbox.test. 20 mx-02.gw.sandbox.test."

mm() { "$MAILMODE" "$@"; }
db() { sqlite3 "$DB" "$1"; }

# mx SERVER DOMAIN: the MX set a server answers authoritatively, one line.
mx() {
	kdig @"$1" -p "$DNS_PORT" +norec +short "$2" MX | sort -n | tr '\n' ' ' | sed 's/ $//'
}

# mx_both DOMAIN: "primary-set | secondary-set".
mx_both() {
	echo "$(mx "$DNS_PRIMARY" "$1") | $(mx "$DNS_SECONDARY" "$1")"
}

# wait_mx DOMAIN SET: until both servers serve SET (NOTIFY and transfer take a moment).
wait_mx() {
	i=0
	while [ $i -lt 50 ] && [ "$(mx_both "$1")" != "$2 | $2" ]; do
		sleep 0.1
		i=$((i + 1))
	done
}

emu_url() { "$PYTHON3" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$SB/sandbox.json" "$1"; }
EMU=$(emu_url emulator_url)
EMU_CA="$SB/emu/ca.pem"

# tenant_objects: "rules inbound outbound" counted in the emulator, with
# the rule names.
tenant_objects() {
	curl -s --cacert "$EMU_CA" "$EMU/_emu/tenants/sandbox.onmicrosoft.com" | "$PYTHON3" -c '
import json, sys
t = json.load(sys.stdin)
print(len(t["rules"]), len(t["inbound_connectors"]), len(t["outbound_connectors"]),
      ",".join(sorted(r["Name"] for r in t["rules"])))'
}

# invoke CMDLET JSON-PARAMETERS: runs a cmdlet in the tenant as an admin
# would (the app's own credentials), to change the world behind mailmode.
invoke() {
	secret=$(cat "$SB/client.secret")
	client=$(emu_url client_id)
	token=$(curl -s --cacert "$EMU_CA" "$EMU/login/sandbox.onmicrosoft.com/oauth2/v2.0/token" \
		--data-urlencode "client_id=$client" --data-urlencode "client_secret=$secret" \
		--data-urlencode "grant_type=client_credentials" \
		--data-urlencode "scope=https://outlook.office365.com/.default" |
		"$PYTHON3" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
	curl -s --cacert "$EMU_CA" -H "Authorization: Bearer $token" -H "Content-Type: application/json" \
		"$EMU/adminapi/beta/sandbox.onmicrosoft.com/InvokeCommand" \
		-d "{\"CmdletInput\":{\"CmdletName\":\"$1\",\"Parameters\":$2}}" >/dev/null
}
