#!/bin/sh
# National clouds: `cloud = global | gcc-high | dod | china` in
# [tenant NAME] chooses the login host and the Exchange Online scope
# (and admin API host: unit_test checks the table).  What the plugin puts
# on the wire is captured by tests/servers/capture.py (login_url and
# api_url pointed at it), for app-only and for delegated sign-in (a
# refresh grant from a token cache entry written here); the login host
# shows in `mailmode tenant consent-url`, which needs no network.
. "$top_srcdir/tests/lib.sh"

plan 14

TID=5b1d7c3e-8a2f-4e6b-9c0d-1f2e3a4b5c6d
CLIENT_ID=0f6c1a84-2b7d-4d6e-8a0f-5b2e9d1c3a77
PUBLIC_ID=fb78d390-0c51-40cd-8e17-fdbfab77341b
CAP=$TEST_TMP/capture
CONF=$TEST_TMP/mailmode.conf
STATE=$TEST_TMP/state.db
XDG_STATE_HOME=$TEST_TMP/state-home
export XDG_STATE_HOME

cap_pid=
cap_stop() { [ -z "$cap_pid" ] || { kill "$cap_pid" 2>/dev/null; wait "$cap_pid" 2>/dev/null; }; }
at_exit cap_stop
"$PYTHON3" "$top_srcdir/tests/servers/capture.py" --dir "$CAP" --tid "$TID" \
	--domain contoso.test >"$TEST_TMP/capture.log" 2>&1 &
cap_pid=$!
_n=0
while [ ! -s "$CAP/capture.json" ] && [ $_n -lt 200 ]; do
	sleep 0.05
	_n=$((_n + 1))
done
[ -s "$CAP/capture.json" ] || { echo "Bail out! the capture listener did not start"; exit 1; }
PORT=$("$PYTHON3" -c 'import json,sys; print(json.load(open(sys.argv[1]))["port"])' "$CAP/capture.json")
LOGIN=https://127.0.0.1:$PORT/login

printf 'emu-secret\n' >"$TEST_TMP/secret"
chmod 600 "$TEST_TMP/secret"

# write_conf CLOUD AUTH-LINES [URL-LINES]
write_conf() {
	cat >"$CONF" <<EOF
[mailmode]
state = $STATE

[profile p1]
tenant = contoso
service = svc

[tenant contoso]
tenant = contoso.onmicrosoft.com
cloud = $1
$2
${3:-}
ca_file = $CAP/ca.pem

[service svc]
smart_hosts = relay.svc.example
tls_cert_name = *.svc.example
service_ips = 192.0.2.10
EOF
}
mm() {
	"$MAILMODE" --config "$CONF" --state "$STATE" --plugin-dir "$PLUGIN_DIR" "$@"
}
# last_token: "grant_type scope" of the last captured token request.
last_token() {
	"$PYTHON3" -c '
import json, sys, urllib.parse
r = [json.loads(l) for l in open(sys.argv[1]) if json.loads(l)["kind"] == "token"][-1]
f = urllib.parse.parse_qs(r["body"])
print(f["grant_type"][0], f["scope"][0])' "$CAP/requests.jsonl"
}

# A sign-in cached as `mailmode tenant login` leaves it.
mkdir -p "$XDG_STATE_HOME/mailmode"
chmod 700 "$XDG_STATE_HOME/mailmode"
printf '{"tenant":"contoso.onmicrosoft.com","client_id":"%s","login_url":"%s","refresh_token":"0.Acached"}\n' \
	"$PUBLIC_ID" "$LOGIN" >"$XDG_STATE_HOME/mailmode/token-contoso.json"
chmod 600 "$XDG_STATE_HOME/mailmode/token-contoso.json"

urls="login_url = $LOGIN
api_url = https://127.0.0.1:$PORT"
for pair in global=outlook.office365.com gcc-high=outlook.office365.us \
	dod=outlook-dod.office365.us china=partner.outlook.cn; do
	cloud=${pair%%=*}
	scope=https://${pair#*=}/.default
	write_conf "$cloud" "client_id = $CLIENT_ID
client_secret_file = $TEST_TMP/secret" "$urls"
	run mm setup contoso.test --mode mailflow --profile p1 --dry-run
	is "$rc $(last_token)" "0 client_credentials $scope" "cloud = $cloud, app-only: the token is asked for $scope"
	write_conf "$cloud" "auth = device" "$urls"
	run mm setup contoso.test --mode mailflow --profile p1 --dry-run
	is "$rc $(last_token)" "0 refresh_token $scope offline_access" \
		"cloud = $cloud, auth = device: refreshed for $scope offline_access"
done

# --- the login host of each cloud, in the admin-consent URL
for pair in global=login.microsoftonline.com=outlook.office365.com \
	gcc-high=login.microsoftonline.us=outlook.office365.us \
	dod=login.microsoftonline.us=outlook-dod.office365.us \
	china=login.partner.microsoftonline.cn=partner.outlook.cn; do
	cloud=${pair%%=*}
	rest=${pair#*=}
	write_conf "$cloud" "client_id = $CLIENT_ID"
	run mm tenant consent-url contoso
	is "$rc $out" "0 https://${rest%%=*}/contoso.onmicrosoft.com/adminconsent?client_id=$CLIENT_ID&scope=https://${rest#*=}/.default" \
		"consent-url, cloud = $cloud"
done
write_conf gcc-high "client_id = $CLIENT_ID
redirect_uri = https://portal.example/consented?x=1"
run mm tenant consent-url contoso
is "$rc $out" "0 https://login.microsoftonline.us/contoso.onmicrosoft.com/adminconsent?client_id=$CLIENT_ID&scope=https://outlook.office365.us/.default&redirect_uri=https%3A%2F%2Fportal.example%2Fconsented%3Fx%3D1" \
	"consent-url with the app's redirect_uri, escaped"
write_conf global ""
run mm tenant consent-url contoso
is "$rc $err" "1 mailmode: error: [tenant contoso]: missing key 'client_id' (the app to consent to)" \
	"consent-url without a client_id: one line"
