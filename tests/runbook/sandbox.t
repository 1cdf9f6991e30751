#!/bin/sh
# Runbooks against real servers: 20 domains over 4 Microsoft 365 tenants in
# the sandbox (BIND 9 primary + secondary, the emulator).  d020.test's
# secondary never receives changes, so its switch to gateway never
# verifies: it is rolled back while the others finish.  The tenant cap is
# checked in the emulator's own record of concurrent requests.  A run
# killed midway is finished by running the runbook again, repeating no
# domain that was done.
. "$top_srcdir/tests/runbook/lib.sh"
start_sandbox --tenants 4 --domains 20 --stale d020.test
plan 19

mx() { kdig @"$1" -p "$DNS_PORT" +norec +short "$2" MX | sort -n | tr '\n' ' ' | sed 's/ $//'; }
results() { "$PYTHON3" -c 'import json,sys; d=json.load(sys.stdin); print(" ".join(x["domain"] + "=" + x["result"] for x in d["domains"] if x["result"] != sys.argv[1]))' "$1"; }
GATEWAY_SET="10 mx-01.gw.sandbox.test. 20 mx-02.gw.sandbox.test."

# --- 20 domains with no mode to gateway; d020 never verifies
write_runbook "$TEST_TMP/gateway.ini" gateway 4 5s 5
run "$MAILMODE" --json runbook run "$TEST_TMP/gateway.ini"
is "$rc" 1 "to gateway: one domain failed, exit 1"
is "$(printf '%s' "$out" | results switched)" "d020.test=rolled back" "19 switched, d020.test rolled back"
is "$(mx "$DNS_PRIMARY" d007.test) | $(mx "$DNS_SECONDARY" d007.test)" "$GATEWAY_SET | $GATEWAY_SET" "d007.test: both servers serve the gateway MX"
is "$(mx "$DNS_PRIMARY" d020.test)" "0 d020-test.mail.protection.outlook.test." "d020.test: its original MX is back on the primary"
is "$(db "SELECT count(*) FROM domains WHERE mode='gateway'")/$(db "SELECT coalesce(mode,'none') FROM domains WHERE domain='d020.test'")" "19/none" "state: 19 in gateway mode, d020.test in none"

# --- all 20 to mailflow, 8 at once, at most 2 calls at once per tenant
emu /_emu/stats -X DELETE >/dev/null
# Exchange Online's page size (the sandbox's is 2, to exercise paging), so
# that requests count reads.
emu /_emu/config -X POST -H 'Content-Type: application/json' -d '{"page_size": 1000}' >/dev/null
write_runbook "$TEST_TMP/mailflow.ini" mailflow 8 30s 5
run "$MAILMODE" --json runbook run "$TEST_TMP/mailflow.ini"
is "$rc" 0 "to mailflow: every domain switched"
is "$(printf '%s' "$out" | results switched)" "" "nothing else than switched"
# tenant_objects: "tenant rules domains-listed inbound outbound;" for
# tenant01..tenant04
tenant_objects() {
	for t in 01 02 03 04; do
		emu /_emu/tenants/tenant$t.onmicrosoft.com | "$PYTHON3" -c '
import json, sys
t = json.load(sys.stdin)
listed = sum(len(r.get("RecipientDomainIs") or []) for r in t["rules"])
print("%s %d %d %d %d;" % (sys.argv[1], len(t["rules"]), listed, len(t["inbound_connectors"]),
                           len(t["outbound_connectors"])), end="")' tenant$t.onmicrosoft.com
	done
}
is "$(tenant_objects)" \
   "tenant01.onmicrosoft.com 1 5 1 1;tenant02.onmicrosoft.com 1 5 1 1;tenant03.onmicrosoft.com 1 5 1 1;tenant04.onmicrosoft.com 1 5 1 1;" \
   "each tenant: one shared rule listing its 5 domains, one connector each way"
# Once per helper serving a tenant: a tenant's calls at once (the cap, 2)
# each have a helper, so 4 to 8 for the 4 tenants.
reads=$(emu /_emu/stats | "$PYTHON3" -c 'import json,sys; c=json.load(sys.stdin)["requests_by_cmdlet"]; print(c.get("Get-AcceptedDomain"), c.get("Get-OrganizationConfig"))')
ok "$(for n in $reads; do [ "$n" -ge 4 ] && [ "$n" -le 8 ] || exit 1; done; echo $?)" \
   "the tenants' accepted domains and organization read at most once per helper of a tenant, at most 2 per tenant ($reads)"
peaks=$(emu /_emu/stats | "$PYTHON3" -c 'import json,sys; print(" ".join(str(v) for v in json.load(sys.stdin)["max_concurrent_by_tenant"].values()))')
ok "$(for p in $peaks; do [ "$p" -le 2 ] || exit 1; done; echo $?)" "no tenant ever had more than 2 requests at once (peaks: $peaks)"
is "$(mx "$DNS_PRIMARY" d007.test) | $(mx "$DNS_SECONDARY" d007.test)" "0 d007-test.mail.protection.outlook.test. | 0 d007-test.mail.protection.outlook.test." "d007.test: the original MX back on both servers"

# --- back to gateway, killed midway, then run again
marker=$(db "SELECT max(id) FROM migrations")
# (as the first domain is done: the domains run side by side, each giving
# its worker to others while it waits, so the others are under way)
MAILMODE_TEST_CRASH_AT=close:end "$MAILMODE" runbook run "$TEST_TMP/gateway.ini" >/dev/null 2>&1
is "$?" 137 "the runbook is killed midway"
done_before=$(db "SELECT count(*) FROM migrations WHERE id > $marker AND result = 'done'")
ok "$([ "$done_before" -gt 0 ] && [ "$done_before" -lt 19 ]; echo $?)" "some domains were done before the kill ($done_before)"
run "$MAILMODE" --json runbook run "$TEST_TMP/gateway.ini"
is "$rc" 1 "the rerun finishes (d020.test fails again)"
is "$(printf '%s' "$out" | "$PYTHON3" -c 'import json,sys; d=json.load(sys.stdin); print(sum(1 for x in d["domains"] if x["result"] == "skipped"))')" "$done_before" "the domains done before the kill are skipped"
is "$(db "SELECT count(*) FROM migrations WHERE id > $marker AND domain <> 'd020.test'")" 19 "one migration per domain: none repeated"
is "$(db "SELECT count(*) FROM migrations WHERE finished_at IS NULL")" 0 "no migration left open"
is "$(db "SELECT count(*) FROM domains WHERE mode='gateway'")/$(db "SELECT mode FROM domains WHERE domain='d020.test'")" "19/mailflow" "19 in gateway mode, d020.test still in mailflow"
is "$(tenant_objects)" \
   "tenant01.onmicrosoft.com 0 0 0 0;tenant02.onmicrosoft.com 0 0 0 0;tenant03.onmicrosoft.com 0 0 0 0;tenant04.onmicrosoft.com 1 1 1 1;" \
   "only d020.test's rule (and its tenant's connectors) are left"
