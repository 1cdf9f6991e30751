#!/bin/sh
# A switch with delegated sign-in, in the sandbox (BIND 9 and the
# emulator): the sandbox's tenant turned to auth = device, a person signs
# in with `mailmode tenant login`, then contoso.test switches gateway ->
# mailflow -> gateway with tokens refreshed from the cache alone: the DNS
# servers serve the new MX, the tenant holds the objects, and no client
# credentials were asked for.
. "$top_srcdir/tests/migrate/lib.sh"
plan 9
FRONT_DOOR="0 contoso-test.mail.protection.outlook.test."
XDG_STATE_HOME=$TEST_TMP/state-home
export XDG_STATE_HOME
ctl() {
	if [ $# -ge 3 ]; then
		curl -s --cacert "$EMU_CA" -X "$1" -H 'Content-Type: application/json' -d "$3" "$EMU$2"
	else
		curl -s --cacert "$EMU_CA" -X "$1" "$EMU$2"
	fi
}
grants() {
	ctl GET '/_emu/requests?kind=token' | "$PYTHON3" -c '
import json, sys
print(" ".join(sorted({r["form"].get("grant_type", "?") for r in json.load(sys.stdin)})))'
}

# [tenant sandbox-tenant]: no secret, no client id (Microsoft's public
# client), auth = device.
"$PYTHON3" - "$MAILMODE_CONFIG" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
head, sep, rest = text.partition("[tenant sandbox-tenant]\n")
body, nxt, tail = rest.partition("\n[")
body = re.sub(r"(?m)^(client_id|client_secret_file) = .*\n", "", body)
open(path, "w").write(head + sep + "auth = device\n" + body + nxt + tail)
PY
ctl POST /_emu/config '{"device_interval_s": 1, "device_expires_s": 60}' >/dev/null

run mm switch contoso.test --to mailflow --dry-run
like "$rc $err" "^1 .*tenant sandbox-tenant: not signed in: run 'mailmode tenant login sandbox-tenant'" \
	"before the sign-in: not signed in, in one line"

mm tenant login sandbox-tenant >"$TEST_TMP/login.out" 2>&1 &
login_pid=$!
at_exit "kill $login_pid 2>/dev/null"
n=0
while [ "$(ctl GET /_emu/device | "$PYTHON3" -c 'import json,sys; print(sum(c["polls"] for c in json.load(sys.stdin)["codes"]))')" = 0 ] &&
	[ $n -lt 200 ]; do
	sleep 0.1
	n=$((n + 1))
done
ctl POST /_emu/device/approve '{}' >/dev/null
wait $login_pid
is "$?" 0 "tenant login sandbox-tenant, approved in the emulator"

mm adopt contoso.test --mode gateway >/dev/null 2>&1
ctl DELETE /_emu/requests >/dev/null
run mm switch contoso.test --to mailflow --poll-interval 500ms
is "$rc" 0 "switch gateway -> mailflow with auth = device"
is "$(tenant_objects)" "1 1 1 mailmode route #1" "tenant: the rule and a connector each way"
wait_mx contoso.test "$FRONT_DOOR"
is "$(mx_both contoso.test)" "$FRONT_DOOR | $FRONT_DOOR" "both servers: MX at the Microsoft 365 front door"
run mm switch contoso.test --to gateway --poll-interval 500ms
is "$rc" 0 "switch mailflow -> gateway with auth = device"
is "$(tenant_objects)" "0 0 0 " "tenant: rule and connectors removed"
is "$(grants)" "refresh_token" "every token came from the refresh token: no client credentials"
is "$(db "SELECT group_concat(result) FROM migrations WHERE kind='switch'")" "done,done" \
	"state: two switches, both done"
