#!/bin/sh
# Kill tests over gateway mode's tenant steps (doc/gateway-tenant.md):
# fabrikam.test switches mailflow -> gateway -> mailflow ... with
# gateway_tenant and lockdown = yes, and the process kills itself (SIGKILL)
# after its Nth journal write (MAILMODE_TEST_CRASH_AFTER: every step row and
# every checkpoint before a write: the connector made, the MX swapped, the
# lock-down, mailflow's objects removed; the lock-down lifted, the MX
# restored, the connector removed), N = 1, 2, ... until a switch runs
# through.  After each kill `resume` must leave the domain in exactly one
# working mode: the state, both DNS servers and the tenant agree, the
# gateway connector exists once and is locked down in gateway mode and is
# gone in mailflow mode, nothing is duplicated.
. "$top_srcdir/tests/mailpath/gwtenant-lib.sh"

# world: "rules inbound-names outbound" of the tenant, and the gateway
# connector's lock-down ("-" without one).
world() {
	emu_get "/_emu/tenants/$TENANT" | "$PYTHON3" -c 'import json, sys
t = json.load(sys.stdin)
gw = [c for c in t["inbound_connectors"] if c["Name"] == sys.argv[1]]
print(len(t["rules"]), ",".join(sorted(c["Name"] for c in t["inbound_connectors"])),
      len(t["outbound_connectors"]), gw[0]["RestrictDomainsToCertificate"] if gw else "-")' "$GW"
}

mm -q setup $D --mode mailflow $FAST >/dev/null 2>&1 || echo "Bail out! setup in mailflow mode failed"
# Two directions per N; each case 4 assertions; at most 40 writes a switch.
crash_switches 40 "0 $GW 0 True" \
	"1 mailmode inbound from sandbox-service 1 -"
plan 3
killed=$(grep -c 'resume=' "$TEST_TMP/cases")
like "$killed" "^[1-9][0-9]*$" "$killed switches killed at a journal write, each resumed (of $cases run)"
is "$(grep -c 'resume=[^0]' "$TEST_TMP/cases")" 0 "every resume finished"
is "$(grep -c BAD "$TEST_TMP/cases")" 0 "after every kill and resume: one mode, DNS and tenant agree, the gateway connector locked down once or gone"
