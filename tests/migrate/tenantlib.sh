# Shared by the tenant lock tests (tenantlock.t, tenantcrash.t): the
# sandbox's tenant with a third accepted domain, northwind.test, set up in
# mailflow mode so that its shared rule exists, and contoso.test and
# fabrikam.test in gateway mode, ready to join and leave that rule.
# Source after tests/migrate/lib.sh.

TENANT_URL="$EMU/_emu/tenants/sandbox.onmicrosoft.com"
TENANT_KEY="tenant sandbox.onmicrosoft.com"

# emu METHOD PATH [JSON]: the emulator's control API.
emu() { curl -s --max-time 10 --cacert "$EMU_CA" -X "$1" -H 'Content-Type: application/json' ${3:+-d "$3"} "$EMU$2"; }

# members: the domains mailmode's shared rules list (pending writes
# included), sorted, one line.
members() {
	curl -s --cacert "$EMU_CA" "$TENANT_URL" | "$PYTHON3" -c '
import json, sys
t = json.load(sys.stdin)
print(",".join(sorted(d for r in t["rules"] if r["Name"].startswith("mailmode route #")
                      for d in r["RecipientDomainIs"] or [])))'
}

# mode_shown DOMAIN: the modes `mailmode status` shows present for it.
mode_shown() {
	mm status "$1" 2>/dev/null | awk '$2 == "present" { print $1 }' | sort | tr '\n' ' ' | sed 's/ $//'
}

# tenant_world: northwind.test in mailflow mode (a profile without DNS:
# the sandbox serves no zone for it), contoso.test adopted and
# fabrikam.test set up in gateway mode; one test point each.
tenant_world() {
	cat >>"$MAILMODE_CONFIG" <<EOC

[profile tenant-only]
service = sandbox-service
tenant = sandbox-tenant
EOC
	emu PATCH /_emu/tenants/sandbox.onmicrosoft.com \
		'{"accepted_domains":[{"DomainName":"contoso.test","Default":true},"fabrikam.test","northwind.test"]}' >/dev/null
	run mm setup northwind.test --mode mailflow --profile tenant-only
	is "$rc" 0 "northwind.test set up in mailflow mode: the shared rule exists"
	run mm adopt contoso.test --mode gateway
	is "$rc" 0 "contoso.test adopted in gateway mode"
	run mm setup fabrikam.test --mode gateway
	is "$rc" 0 "fabrikam.test set up in gateway mode"
}
