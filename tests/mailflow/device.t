#!/bin/sh
# mailflow: delegated sign-in (auth = device).  `mailmode tenant login`
# runs the device authorization grant against the emulated identity
# platform (pending, slow_down, approved by the test as the person would;
# declined; expired; an app without public client flows; no consent), the
# refresh token lands in $XDG_STATE_HOME/mailmode (file 0600, directory
# 0700) and never in any output or the state; a setup then gets its token
# by refresh and stores the rotated refresh token, refreshes again after
# its access token dies mid-run, and says "not signed in" in one line once
# the refresh token is revoked or `tenant logout` removed it; a role
# granted a moment ago is named as such.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/mailflow/lib-mailflow.sh"

plan 50

mf_start
mf_tenant
# Codes live a minute: a test that goes wrong does not wait 15.
emu_ctl POST /_emu/config '{"device_interval_s": 1, "device_expires_s": 60}' >/dev/null
XDG_STATE_HOME=$TEST_TMP/state-home
export XDG_STATE_HOME
CACHE=$XDG_STATE_HOME/mailmode/token-contoso.json
PUBLIC_ID=fb78d390-0c51-40cd-8e17-fdbfab77341b

# device_config [TENANT-LINES]: the test config with auth = device and
# no credentials (client_id: Microsoft's public client unless given).
device_config() {
	mf_config secret "auth = device
$1"
	# mf_config's own lines go, the ones given after them stay.
	sed -i '0,/^client_secret_file/{/^client_secret_file/d}; 0,/^client_id/{/^client_id/d}' "$MF_CONF"
}

# dev PYTHON-EXPR: evaluated on GET /_emu/device (d; c: the newest code).
dev() {
	emu_ctl GET /_emu/device | "$PYTHON3" -c '
import json, sys
d = json.load(sys.stdin)
c = max(d["codes"], key=lambda x: x["created"]) if d["codes"] else {"polls": 0}
print(eval(sys.argv[1]))' "$1"
}

# The sign-in runs in the background while the test plays the person.
login_pid=
login_stop() { [ -z "$login_pid" ] || { kill "$login_pid" 2>/dev/null; wait "$login_pid" 2>/dev/null; }; }
at_exit login_stop
login_bg() {
	mm tenant login contoso >"$TEST_TMP/login.out" 2>"$TEST_TMP/login.err" &
	login_pid=$!
}
# wait_polls N: until the newest code is pending and was polled N times
# (20 s at most).
wait_polls() {
	_n=0
	while [ "$(dev 'c["polls"] if c.get("state") == "pending" else 0')" -lt "$1" ] &&
		[ $_n -lt 200 ]; do
		sleep 0.1
		_n=$((_n + 1))
	done
}
login_wait() {
	wait "$login_pid"
	login_rc=$?
	login_pid=
	login_out=$(cat "$TEST_TMP/login.out")
	login_err=$(cat "$TEST_TMP/login.err")
}
# login_now: a sign-in approved at its first poll.
login_now() {
	login_bg
	wait_polls 1
	emu_ctl POST /_emu/device/approve '{}' >/dev/null
	login_wait
}
sha() { "$PYTHON3" -c 'import hashlib,json,sys; print(hashlib.sha256(json.load(open(sys.argv[1]))["refresh_token"].encode()).hexdigest())' "$1"; }
newest_rt() { dev 'max(d["refresh_tokens"], key=lambda r: r["issued"])["sha256"]'; }
rt_value() { "$PYTHON3" -c 'import json,sys; print(json.load(open(sys.argv[1]))["refresh_token"])' "$CACHE"; }

# --- auth = app has nothing to sign in to
mf_config secret
run mm tenant login contoso
like "$rc $err" "^1 mailmode: error: tenant contoso: auth = app signs in with the app's own credentials; set 'auth = device' in \[tenant contoso\]" \
	"tenant login refuses a tenant with auth = app, in one line"

# --- sign-in: pending, then slow_down, then approved
device_config
mf_reset_log
login_bg
wait_polls 1
emu_ctl POST /_emu/device/slow_down '{"count": 1}' >/dev/null
wait_polls 2
emu_ctl POST /_emu/device/approve '{}' >/dev/null
login_wait
is "$login_rc" 0 "tenant login succeeds once the person approves"
code=$(dev 'c["user_code"]')
like "$login_out" "^tenant contoso: to sign in, open https://microsoft.com/devicelogin and enter the code $code \(within 1 min\)" \
	"it prints the verification URL and the user code first"
like "$login_out" "signed in; the refresh token is kept in $CACHE" "and where the refresh token is kept"
is "$(dev '(c["state"], c["polls"], c["interval"], c["too_fast"])')" "('redeemed', 3, 6, 0)" \
	"polled every interval, 5 s slower after slow_down, never too soon; the code redeemed"
is "$(emu_ctl GET '/_emu/requests?kind=devicecode' | "$PYTHON3" -c '
import json, sys
r = json.load(sys.stdin)[0]
print(r["status"], r["path"].split("/")[2], r["form"]["client_id"], r["form"]["scope"])')" \
	"200 $MF_TENANT $PUBLIC_ID https://outlook.office365.com/.default offline_access" \
	"devicecode request: the tenant, Exchange Online PowerShell's public client, the Exchange scope with offline_access"
is "$(emu_ctl GET '/_emu/requests?kind=token' | "$PYTHON3" -c '
import json, sys
r = json.load(sys.stdin)
print(" ".join("%s:%s" % (x["status"], x["form"].get("error", x["form"]["grant_type"].split(":")[-1])) for x in r))')" \
	"400:device_code 400:device_code 200:device_code" "token polls: pending, slow_down, success"
is "$(stat -c %a "$CACHE") $(stat -c %a "$XDG_STATE_HOME/mailmode")" "600 700" \
	"token cache: file mode 0600 in a directory of mode 0700"
is "$(sha "$CACHE")" "$(newest_rt)" "the cache holds the refresh token the platform issued"
rt=$(rt_value)
unlike "$login_out $login_err" "$rt" "the refresh token is not printed"

# --- a switch with auth = device: the token comes from the cache
first=$(sha "$CACHE")
mf_reset_log
run mm -v setup contoso.test --mode mailflow --profile p1
is "$rc" 0 "setup with auth = device succeeds"
is "$(mf_counts)" "1 1 1" "and made the connectors and the rule"
is "$(emu_ctl GET '/_emu/requests?kind=token' | "$PYTHON3" -c '
import json, sys
r = json.load(sys.stdin)
print(" ".join("%s:%s:%s" % (x["status"], x["form"]["grant_type"], x["form"].get("scope")) for x in r))')" \
	"200:refresh_token:https://outlook.office365.com/.default offline_access" \
	"one refresh grant, no client credentials"
is "$(mf_requests 'sorted({x["status"] for x in r})')" "[200]" "every admin API call was accepted"
second=$(sha "$CACHE")
ok "$([ "$second" != "$first" ] && [ "$second" = "$(newest_rt)" ]; echo $?)" \
	"the rotated refresh token replaced the old one in the cache"
unlike "$out $err" "$rt|$(rt_value)|eyJ0eXAi" "no refresh or access token in the output, even with -v"
unlike "$(sqlite3 "$MF_STATE" .dump)" "$(rt_value)|eyJ0eXAi" "nor in the state database"

# --- the access token dies mid-run: refreshed silently
emu_ctl POST /_emu/faults '{"kind":"slow","count":1,"cmdlet":"Get-AcceptedDomain","delay_ms":1500}' >/dev/null
mf_reset_log
mm teardown contoso.test >"$TEST_TMP/bg.out" 2>&1 &
bg_pid=$!
_n=0
while [ "$(emu_ctl GET /_emu/stats | "$PYTHON3" -c 'import json,sys; print(json.load(sys.stdin)["requests_by_cmdlet"].get("Get-AcceptedDomain", 0))')" = 0 ] &&
	[ $_n -lt 100 ]; do
	sleep 0.1
	_n=$((_n + 1))
done
emu_ctl POST /_emu/tokens/expire '{}' >/dev/null
wait $bg_pid
is "$?" 0 "teardown succeeds although its access token expired mid-run"
is "$(mf_requests 'sum(1 for x in r if x["status"] == 401)') $(emu_ctl GET '/_emu/requests?kind=token' | "$PYTHON3" -c '
import json, sys
print(" ".join(x["form"]["grant_type"] for x in json.load(sys.stdin)))')" "1 refresh_token refresh_token" \
	"one 401, then a second refresh grant, no sign-in asked for"
is "$(mf_counts)" "0 0 0" "and removed the objects"

# --- the refresh token revoked: one line, the way out
emu_ctl POST /_emu/device/revoke "{\"tenant\": \"$MF_TENANT\"}" >/dev/null
run mm setup contoso.test --mode mailflow --profile p1 --dry-run
like "$rc $err" "^1 mailmode: error: .*tenant contoso: not signed in: run 'mailmode tenant login contoso'" \
	"a revoked refresh token: not signed in, with the command to run"
like "$err" "AADSTS50173" "the platform's reason underneath"

# --- logout
login_now
is "$login_rc" 0 "a new sign-in"
run mm tenant logout contoso
is "$rc $out" "0 tenant contoso: signed out (removed $CACHE)" "tenant logout removes the cache entry"
ok "$([ ! -e "$CACHE" ]; echo $?)" "the file is gone"
run mm setup contoso.test --mode mailflow --profile p1 --dry-run
like "$rc $err" "^1 mailmode: error: .*tenant contoso: not signed in: run 'mailmode tenant login contoso'" \
	"signed out: not signed in"
run mm tenant logout contoso
is "$rc $out" "0 tenant contoso: was not signed in" "logout again: nothing to remove"

# --- --json: the code on stderr, stdout one JSON document
mm --json tenant login contoso >"$TEST_TMP/login.out" 2>"$TEST_TMP/login.err" &
login_pid=$!
wait_polls 1
emu_ctl POST /_emu/device/approve '{}' >/dev/null
login_wait
is "$login_rc $("$PYTHON3" -c 'import json,sys; d = json.load(open(sys.argv[1])); print(d["ok"], d["tenant"], d["token_cache"])' "$TEST_TMP/login.out")" \
	"0 True contoso $CACHE" "--json: stdout is one JSON document naming the cache"
like "$login_err" "^tenant contoso: to sign in, open https://microsoft.com/devicelogin and enter the code" \
	"--json: the code goes to stderr, for the person"
mm tenant logout contoso >/dev/null

# --- declined, expired
login_bg
wait_polls 1
emu_ctl POST /_emu/device/decline '{}' >/dev/null
login_wait
is "$login_rc $login_err" "1 mailmode: error: tenant contoso: the sign-in was declined at https://microsoft.com/devicelogin" \
	"declined: one line"
ok "$([ ! -e "$CACHE" ]; echo $?)" "and nothing cached"
login_bg
wait_polls 1
emu_ctl POST /_emu/device/expire '{}' >/dev/null
login_wait
is "$login_rc $login_err" "1 mailmode: error: tenant contoso: the code expired before the sign-in: run 'mailmode tenant login contoso' again" \
	"expired: one line with the way out"

# --- the tenant's own app: public client flows, consent
device_config "client_id = $MF_CLIENT_ID"
login_now
like "$login_rc $login_err" "^1 mailmode: error: token request for tenant $MF_TENANT refused: AADSTS7000218" \
	"an app without public client flows is refused by the platform"
like "$login_err" "Allow public client flows" "and the fix is named"
emu_ctl PATCH "/_emu/tenants/$MF_TENANT_ID" '{"public_client": true, "delegated_consent": false}' >/dev/null
login_now
like "$login_rc $login_err" "^1 mailmode: error: token request for tenant $MF_TENANT refused: AADSTS65001" \
	"no consent: the platform's AADSTS65001"
like "$login_err" "an admin must consent to the app in the tenant first: see 'mailmode tenant consent-url contoso'" \
	"and where to get the consent URL"
emu_ctl PATCH "/_emu/tenants/$MF_TENANT_ID" '{"delegated_consent": true}' >/dev/null
login_now
is "$login_rc" 0 "the app allowing public client flows, consented: signed in"
is "$(dev 'max(d["refresh_tokens"], key=lambda r: r["issued"])["client_id"]')" "$MF_CLIENT_ID" \
	"the refresh token is the app's"

device_config
mf_reset_log
run mm setup contoso.test --mode mailflow --profile p1 --dry-run
like "$rc $err" "^1 mailmode: error: .*tenant contoso: not signed in: run 'mailmode tenant login contoso'" \
	"a [tenant] whose client_id changed since the sign-in: not signed in"
like "$err" "^  the cached sign-in is unreadable, or for another tenant, client_id or cloud" \
	"saying why"
is "$(mf_stat token_requests)" 0 "and its refresh token was not sent"
device_config "client_id = $MF_CLIENT_ID"

# --- a cache open to others is refused, like a secret file
chmod 644 "$CACHE"
run mm setup contoso.test --mode mailflow --profile p1 --dry-run
like "$rc $err" "^1 .*secret file $CACHE is accessible by group or others \(mode 644\): chmod 600 it" \
	"a token cache file readable by others is refused"
chmod 600 "$CACHE"
chmod 755 "$XDG_STATE_HOME/mailmode"
run mm setup contoso.test --mode mailflow --profile p1 --dry-run
like "$rc $err" "^1 .*token cache directory $XDG_STATE_HOME/mailmode is accessible by group or others \(mode 755\): chmod 700 it" \
	"so is a token cache directory open to others"
chmod 700 "$XDG_STATE_HOME/mailmode"

# --- a role granted a moment ago: Exchange refuses until it applies
emu_ctl POST /_emu/roles "{\"tenant\": \"$MF_TENANT\", \"delay_s\": 3}" >/dev/null
run mm setup contoso.test --mode mailflow --profile p1 --dry-run
like "$rc $err" "^1 mailmode: error: .*Get-OrganizationConfig failed in tenant $MF_TENANT: The application does not have the required role" \
	"403 right after the grant"
like "$err" "role granted recently\? it can take up to 2 hours to apply" \
	"the message says a new role takes a while to apply"
like "$err" "the person signed in needs an Exchange admin role" "naming the role the person needs"
sleep 3
run mm setup contoso.test --mode mailflow --profile p1 --dry-run
is "$rc" 0 "once applied, the same command succeeds"

# --- bad configuration
device_config "client_secret_file = client-secret"
run mm config check
like "$rc $out $err" "\[tenant contoso\]: auth = device signs in as a person: drop 'client_secret_file'" \
	"auth = device with a client secret is refused, naming the key"
device_config
sed -i 's|^\[tenant contoso\]|[tenant ../x]|' "$MF_CONF"
run mm tenant login ../x
is "$rc $err" "1 mailmode: error: token cache: '../x' is not a name it keeps (letters, digits, '.', '_', '-')" \
	"a tenant name that would leave the cache directory is refused"
device_config "cloud = germany"
run mm tenant login contoso
is "$rc $err" "1 mailmode: error: [tenant contoso]: 'cloud' must be one of global, gcc-high, dod, china, not 'germany'" \
	"an unknown cloud is refused in one line"
