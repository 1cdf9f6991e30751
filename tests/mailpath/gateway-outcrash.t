#!/bin/sh
# Kill tests over gateway mode's outgoing-mail steps (outbound = yes;
# doc/gateway-tenant.md): as gateway-crash.t, fabrikam.test switches
# mailflow -> gateway -> mailflow ... and the process kills itself (SIGKILL)
# after its Nth journal write (every step row and every checkpoint before a
# write: now also the outbound connector and its rule made, and removed),
# N = 1, 2, ... until a switch runs through.  After each kill `resume` must
# leave exactly one working mode: in gateway mode the gateway's inbound
# connector (locked down), its outbound connector and rule, once each, and
# nothing of mailflow's; in mailflow mode mailflow's rule and connectors and
# nothing of gateway mode's.
. "$top_srcdir/tests/mailpath/outbound-lib.sh"

# world: "rules | inbound connectors | outbound connectors | lock-down" of
# the tenant (names, sorted).
world() {
	emu_get "/_emu/tenants/$TENANT" | "$PYTHON3" -c 'import json, sys
t = json.load(sys.stdin)
gw = [c for c in t["inbound_connectors"] if c["Name"] == sys.argv[1]]
names = lambda k: ",".join(sorted(x["Name"] for x in t[k]))
print("%s | %s | %s | %s" % (names("rules"), names("inbound_connectors"),
      names("outbound_connectors"), gw[0]["RestrictDomainsToCertificate"] if gw else "-"))' "$GW"
}

mm -q setup $D --mode mailflow $FAST >/dev/null 2>&1 || echo "Bail out! setup in mailflow mode failed"
MF_RULE=$(emu_get "/_emu/tenants/$TENANT" | jpy 'd["rules"][0]["Name"]')
crash_switches 50 "$OUT | $GW | $OUT | True" \
	"$MF_RULE | mailmode inbound from sandbox-service | mailmode outbound to sandbox-service | -"
plan 3
killed=$(grep -c 'resume=' "$TEST_TMP/cases")
like "$killed" "^[1-9][0-9]*$" "$killed switches killed at a journal write, each resumed (of $cases run)"
is "$(grep -c 'resume=[^0]' "$TEST_TMP/cases")" 0 "every resume finished"
is "$(grep -c BAD "$TEST_TMP/cases")" 0 "after every kill and resume: one mode; in gateway mode its connectors and outbound rule once each, in mailflow mode nothing of gateway mode's"
