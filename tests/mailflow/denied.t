#!/bin/sh
# mailflow, issue 11 class 4 (plugin side): the ABI 1.2 preflight.  A
# tenant that answers 403 (the app lacks its role) is found before a
# switch changes anything, in both directions: the switch is refused
# (MAILMODE_ERR_DENIED naming the missing permission), the DNS servers
# still serve the old mode's MX, the tenant holds what it held, no write
# reached it, and the state keeps the old mode.  Uses the sandbox.
. "$top_srcdir/tests/migrate/lib.sh"
plan 12
FRONT_DOOR="0 contoso-test.mail.protection.outlook.test."
TENANT_URL="$EMU/_emu/tenants/sandbox.onmicrosoft.com"
forbid() {
	curl -s --cacert "$EMU_CA" -X PATCH -H 'Content-Type: application/json' \
		-d "{\"forbidden\": $1}" "$TENANT_URL" >/dev/null
}
writes() {
	curl -s --cacert "$EMU_CA" "$EMU/_emu/requests?kind=invoke" | "$PYTHON3" -c '
import json, sys
print(sum(1 for r in json.load(sys.stdin) if r.get("cmdlet") and not r["cmdlet"].startswith("Get-")))'
}
clear_log() { curl -s --cacert "$EMU_CA" -X DELETE "$EMU/_emu/requests" >/dev/null; }

mm adopt contoso.test --mode gateway >/dev/null 2>&1

# --- gateway -> mailflow, the tenant refuses the app
forbid true
clear_log
run mm switch contoso.test --to mailflow --poll-interval 200ms --verify-timeout 10s
is "$rc" 1 "gateway -> mailflow refused while the tenant answers 403"
like "$err" "Exchange.ManageAsApp" "the missing permission is named"
is "$(mx_both contoso.test)|$(tenant_objects)|$(writes)" "$GATEWAY_SET | $GATEWAY_SET|0 0 0 |0" \
	"nothing changed: gateway MX on both servers, no object, no write sent"
is "$(db "SELECT mode FROM domains WHERE domain='contoso.test'")|$(db "SELECT count(*) FROM migrations WHERE finished_at IS NULL")" \
	"gateway|0" "state: gateway, no migration left open"

forbid false
run mm switch contoso.test --to mailflow --poll-interval 200ms --verify-timeout 20s
is "$rc" 0 "with the role back the switch to mailflow goes through"
wait_mx contoso.test "$FRONT_DOOR"

# --- mailflow -> gateway, the tenant refuses the app: teardown could not
# remove the rule, so gateway must not go up
forbid true
clear_log
run mm switch contoso.test --to gateway --poll-interval 200ms --verify-timeout 10s
is "$rc" 1 "mailflow -> gateway refused while the tenant answers 403"
like "$err" "Exchange.ManageAsApp" "the missing permission is named"
is "$(mx_both contoso.test)" "$FRONT_DOOR | $FRONT_DOOR" "the DNS servers still serve the front door (gateway never went up)"
is "$(tenant_objects)|$(writes)" "1 1 1 mailmode route #1|0" "the mailflow objects are untouched, no write sent"
is "$(db "SELECT mode FROM domains WHERE domain='contoso.test'")|$(db "SELECT count(*) FROM migrations WHERE finished_at IS NULL")" \
	"mailflow|0" "state: mailflow, no migration left open"

forbid false
run mm switch contoso.test --to gateway --poll-interval 200ms --verify-timeout 20s
is "$rc" 0 "with the role back the switch to gateway goes through"
wait_mx contoso.test "$GATEWAY_SET"
is "$(mx_both contoso.test)|$(tenant_objects)" "$GATEWAY_SET | $GATEWAY_SET|0 0 0 " "gateway MX served, tenant empty"
