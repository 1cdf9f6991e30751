#!/bin/sh
# Gateway mode with its tenant side (gateway_tenant, lockdown = yes;
# doc/gateway-tenant.md), switched both ways under mail, through BIND, the
# emulator and the mail-path simulator.  fabrikam.test starts in mailflow
# mode.  Two senders run throughout: one by the MX, one around the gateway
# straight to the tenant's front door (the bypass).  mailflow -> gateway:
# the plan names the tenant steps; the gateway connector is made before the
# MX changes and locked down only after the settle, before mailflow's rule
# goes; afterwards the bypass is refused with 5.7.51 and mailflow's own
# connector is gone while the gateway's stays.  gateway -> mailflow: the
# lock-down is lifted before the MX points back, the gateway connector goes,
# the bypass is taken (and scanned by the rule) again.  The oracle holds over
# the MX sender's messages: none lost, none scanned twice; every bypass
# message taken was scanned exactly once, and none was refused while
# fabrikam.test was not locked down.
. "$top_srcdir/tests/mailpath/gwtenant-lib.sh"
plan 27
MF_IN="mailmode inbound from sandbox-service"

# conn NAME EXPR: EXPR over the inbound connector NAME (as d), "none" when
# the tenant has none.
conn() {
	emu_get "/_emu/tenants/$TENANT" | "$PYTHON3" -c 'import json, sys
t = json.load(sys.stdin)
c = [c for c in t["inbound_connectors"] if c["Name"] == sys.argv[1]]
print(json.dumps(eval(sys.argv[2], {"d": c[0]})) if c else "none")' "$1" "$2"
}
rules() { emu_get "/_emu/tenants/$TENANT" | jpy 'len(d["rules"])'; }

run mm -q setup $D --mode mailflow $FAST
is "$rc" 0 "$D set up in mailflow mode"

# --- the plan -----------------------------------------------------------------
run mm switch $D --to gateway --dry-run
is "$rc" 0 "the switch plan exits 0"
like "$out" "before the MX: New-InboundConnector -Name '$GW' -ConnectorType Partner .*-AssociatedAcceptedDomains $D -EFSkipIPs" \
	"the plan makes the gateway connector before the MX"
like "$out" "after the cache wait .*: Set-InboundConnector -Identity '$GW' -RestrictDomainsToCertificate .true \(the lock-down\)" \
	"and locks it down after the cache wait"
is "$(conn "$GW" 'd["Name"]')" "none" "the plan changed nothing"

sender_start mx bob@$D --from alice@internet.test
sender_start bypass bob@$D --from alice@internet.test --via fabrikam-test.mail.protection.outlook.test --retry-for 0

# --- mailflow -> gateway ---------------------------------------------------------
run mm -q switch $D --to gateway $FAST
is "$rc" 0 "mailflow -> gateway: switched"
wait_mx $D "$GATEWAY_SET"
is "$(mx_both $D)" "$GATEWAY_SET | $GATEWAY_SET" "both servers serve the gateway MX"
is "$(conn "$GW" '[d["ConnectorType"], d["TlsSenderCertificateName"], d["AssociatedAcceptedDomains"], d["EFSkipIPs"], d["RestrictDomainsToCertificate"]]')" \
	'["Partner", "mf-return.sandbox.test", ["fabrikam.test"], ["127.0.0.21", "127.0.0.22", "127.0.0.24"], true]' \
	"the gateway connector: Partner, the service's certificate, scoped, EF on service_ips, locked down"
is "$(conn "$MF_IN" 'd["Name"]') $(rules)" "none 0" "mailflow's rule and its own connector are gone"
is "$(db "SELECT mode FROM domains WHERE domain='$D'")" "gateway" "the state says gateway"
steps=$(db "SELECT group_concat(step || ':' || phase, ' ') FROM journal WHERE migration_id=(SELECT max(id) FROM migrations) AND phase IN ('begin','end','wanted')")
like "$steps" "verify_new:end finish_new:begin finish_new:end teardown_old:begin" \
	"the journal: the lock-down step after verify (and its settle), before mailflow's teardown"
run mm status $D
is "$rc" 0 "status: one mode, no drift"

sleep 1
send_one probe bob@$D --from alice@internet.test --via fabrikam-test.mail.protection.outlook.test --retry-for 0
like "$(sent_field probe error)" "RCPT TO: 550 5.7.51" "locked down: a message around the gateway is refused with 5.7.51"

# The lock-down lifted by hand is drift (and opens the bypass: the bypass
# sender pauses meanwhile); setup puts it back.
sender_stop bypass
invoke Set-InboundConnector "{\"Identity\":\"$GW\",\"RestrictDomainsToCertificate\":false}"
run mm --json status $D
like "$rc $(printf '%s %s' "$out" "$err" | tr '\n\t' '  ')" "^4 .*RestrictDomainsToCertificate is not .true" \
	"status reports the lifted lock-down as drift (exit 4)"
run mm -q setup $D --mode gateway $FAST
is "$rc $(conn "$GW" 'd["RestrictDomainsToCertificate"]')" "0 true" "setup again restores the lock-down"
sender_start bypass2 bob@$D --from alice@internet.test --via fabrikam-test.mail.protection.outlook.test --retry-for 0

run mm teardown $D --dry-run
like "$out" "before the MX: Set-InboundConnector -Identity '$GW' -RestrictDomainsToCertificate .false \(lifting the lock-down\)" \
	"the teardown plan lifts the lock-down before the MX"
like "$out" "after the MX: Remove-InboundConnector -Identity '$GW'" "and removes the connector after it"

# --- gateway -> mailflow -----------------------------------------------------------
run mm -q switch $D --to mailflow $FAST
is "$rc" 0 "gateway -> mailflow: switched"
UNLOCKED_AT=$(now)
wait_mx $D "$FRONT"
is "$(mx_both $D)" "$FRONT | $FRONT" "both servers serve the front door MX again"
is "$(conn "$GW" 'd["Name"]') $(rules)" "none 1" "the gateway connector is gone, mailflow's rule is there"
is "$(conn "$MF_IN" 'd["RestrictDomainsToCertificate"]')" "false" "mailflow's connector, never restricted"
sleep 2
sender_stop mx
sender_stop bypass2

oracle mx
show
is "$rc" 0 "the oracle holds for the MX sender over both switches"
like "$out" "duplicated 0, lost 0" "no message lost, none delivered twice"
like "$out" "scanned twice 0, unscanned 0" "every message scanned exactly once"

# The bypass sender: what was taken was scanned once; what was refused was
# refused while locked down.
cat "$TEST_TMP/bypass.sent" "$TEST_TMP/bypass2.sent" >"$TEST_TMP/bypass-all.sent"
"$PYTHON3" - "$TEST_TMP/bypass-all.sent" "$SCANS" "$UNLOCKED_AT" >"$TEST_TMP/bypass.check" <<'PY'
import json, sys
sent = [json.loads(x) for x in open(sys.argv[1]) if x.strip()]
scans = {}
for line in open(sys.argv[2]):
    s = json.loads(line)
    scans.setdefault(s["message_id"].strip("<>").lower(), []).append(s)
unlocked = float(sys.argv[3])
taken = [s for s in sent if s["result"] == "accepted"]
refused = [s for s in sent if s["result"] != "accepted"]
twice = [s for s in taken if len(scans.get(s["message_id"].strip("<>").lower(), [])) != 1]
early = [s for s in refused if "5.7.51" not in (s.get("error") or "") or
         s["t"] > unlocked + 1]
print("taken %d refused %d not-scanned-once %d refused-wrongly %d" % (
    len(taken), len(refused), len(twice), len(early)))
PY
like "$(cat "$TEST_TMP/bypass.check")" "^taken [1-9][0-9]* refused [1-9][0-9]* not-scanned-once 0 refused-wrongly 0$" \
	"bypass: taken and scanned once by the rule in mailflow mode, refused (5.7.51) only while locked down"

run mm -q teardown $D $FAST
is "$rc" 0 "teardown"
is "$(conn "$MF_IN" 'd["Name"]') $(conn "$GW" 'd["Name"]') $(rules)" "none none 0" "nothing left in the tenant"
