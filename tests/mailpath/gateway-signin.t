#!/bin/sh
# Gateway mode's tenant side signs in as mailflow mode does (lib/ms; the
# [tenant NAME] keys auth and cloud, doc/gateway-tenant.md): (a) auth =
# device: `mailmode tenant login` (the person approves in the emulator),
# then setup and teardown of gateway mode get their tokens by refreshing
# that sign-in, no client secret in the section; (b) cloud = gcc-high: the
# token is asked for GCC High's Exchange scope, which the emulator, playing
# a GCC High tenant, accepts (and refuses from a global-cloud section);
# (c) a bad auth value is refused in one line naming the key.
. "$top_srcdir/tests/mailpath/gwtenant-lib.sh"
plan 9
XDG_STATE_HOME=$TEST_TMP/state-home
export XDG_STATE_HOME

# tenant_conf LINES: gwtenant.conf with LINES added to [tenant
# sandbox-tenant] (first the lines given in $DROP removed from it).
tenant_conf() {
	"$PYTHON3" - "$SB/gwtenant.conf" "$SB/signin.conf" "$1" "${DROP:-}" <<'PY'
import sys
src, dst, add, drop = sys.argv[1:5]
out, inside = [], False
for line in open(src).read().splitlines():
    if line.startswith("["):
        inside = line.strip() == "[tenant sandbox-tenant]"
        out.append(line)
        if inside and add:
            out.extend(add.split("\n"))
        continue
    if inside and drop and any(line.startswith(k + " ") or line.startswith(k + "=")
                               for k in drop.split()):
        continue
    out.append(line)
open(dst, "w").write("\n".join(out) + "\n")
PY
	export MAILMODE_CONFIG="$SB/signin.conf"
}
conn() {
	emu_get "/_emu/tenants/$TENANT" | "$PYTHON3" -c 'import json, sys
c = [c for c in json.load(sys.stdin)["inbound_connectors"] if c["Name"] == sys.argv[1]]
print(c[0]["RestrictDomainsToCertificate"] if c else "none")' "$GW"
}
# grants: the grant types of the token requests since mark (emulator log).
grants() {
	emu_get "/_emu/requests?kind=token" | "$PYTHON3" -c 'import json, sys
print(" ".join(sorted({r["form"].get("grant_type", "?").split(":")[-1] + "/" + r["form"].get("scope", "?").split()[0]
                       for r in json.load(sys.stdin) if r["t"] >= float(sys.argv[1])})))' "$1"
}

# --- (a) auth = device --------------------------------------------------------
DROP="client_id client_secret_file" tenant_conf "auth = device"
emu_config '{"device_interval_s": 1, "device_expires_s": 60}'
mm tenant login sandbox-tenant >"$TEST_TMP/login.out" 2>&1 &
login=$!
i=0
until emu_get /_emu/device 2>/dev/null | jpy '[c["state"] for c in d["codes"]]' | grep -q pending ||
	[ $i -ge 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
emu_get /_emu/device >/dev/null && curl -sS --cacert "$EMU_CA" -X POST -H 'Content-Type: application/json' \
	--data-binary '{}' "$EMU/_emu/device/approve" >/dev/null
wait $login
is "$?" 0 "tenant login: the person signed in"
AT=$(now)
run mm -q setup $D --mode gateway $FAST
is "$rc $(conn)" "0 True" "auth = device: gateway mode set up, its connector made and locked down"
is "$(grants "$AT")" "refresh_token/https://outlook.office365.com/.default" \
	"every token by refreshing the person's sign-in, none by client credentials"
run mm -q teardown $D $FAST
is "$rc $(conn)" "0 none" "auth = device: torn down, the connector removed"

# --- (b) cloud = gcc-high -----------------------------------------------------
DROP= tenant_conf "cloud = gcc-high"
emu_config '{"cloud": "gcc-high"}'
AT=$(now)
run mm -q setup $D --mode gateway $FAST
is "$rc $(conn)" "0 True" "cloud = gcc-high: gateway mode set up in the GCC High tenant"
is "$(grants "$AT")" "client_credentials/https://outlook.office365.us/.default" \
	"the token asked for GCC High's Exchange scope"
run mm -q teardown $D $FAST
is "$rc $(conn)" "0 none" "and torn down"
DROP= tenant_conf ""
run mm -q setup $D --mode gateway $FAST
like "$rc $err" "^[1-9].*invalid_scope|^[1-9].*70011" \
	"a global-cloud section against the GCC High tenant is refused (the scope is the cloud's)"
emu_config '{"cloud": "global"}'

# --- (c) a bad value ----------------------------------------------------------
DROP= tenant_conf "auth = password"
run mm setup $D --mode gateway $FAST
is "$rc $err" "1 mailmode: error: [tenant sandbox-tenant]: 'auth' must be app or device, not 'password'" \
	"auth = password: one line naming the key"
