#!/bin/sh
# Domains of one tenant switched to mailflow together, while Exchange shows
# a new object only 4 s after it is made: their setups wait for the new
# connectors, each waiting in the tenant's note for the shared rule to be
# made, and the setup that makes it makes it with all of them in it.  None
# has to wait for the new rule to be listed and then join it (no
# Set-TransportRule at all), none is lost.  Back to
# gateway, every object goes and the note is left with no domain waiting.
# Switched again with a verify that cannot pass (1 s), each is rolled back
# while the rule made with all three is not listed yet: each teardown
# knows it is in that rule (and waits, resumable, until it shows), and
# none is left in it.
. "$top_srcdir/tests/runbook/lib.sh"
start_sandbox --tenants 1 --domains 3
plan 12

cmdlets() {
	emu /_emu/stats | "$PYTHON3" -c 'import json,sys
c = json.load(sys.stdin)["requests_by_cmdlet"]
print(" ".join("%s=%d" % (k, c.get(k, 0)) for k in sys.argv[1:]))' "$@"
}
# rules: "NAME: sorted domains;" of the tenant, connectors each way
objects() {
	emu /_emu/tenants/tenant01.onmicrosoft.com | "$PYTHON3" -c 'import json,sys
t = json.load(sys.stdin)
print("".join("%s: %s; " % (r["Name"], ",".join(sorted(r.get("RecipientDomainIs") or [])))
              for r in t["rules"]) + "%d %d" % (len(t["inbound_connectors"]), len(t["outbound_connectors"])))'
}
waiting() {
	db "SELECT note FROM shared_notes" | "$PYTHON3" -c 'import json,sys
print(sum(len(v) for line in sys.stdin for v in json.loads(line).get("joiners", {}).values()))'
}

emu /_emu/config -X POST -H 'Content-Type: application/json' -d '{"consistency_delay_s": 4}' >/dev/null
emu /_emu/stats -X DELETE >/dev/null
write_runbook "$TEST_TMP/mailflow.ini" mailflow 3 60s 5
run "$MAILMODE" --json runbook run "$TEST_TMP/mailflow.ini"
is "$rc:$(json 'd["totals"]["switched"]')" "0:3" "the three domains switched to mailflow together"
is "$(objects)" "mailmode route #1: d001.test,d002.test,d003.test; 1 1" \
   "one shared rule listing the three, one connector each way"
is "$(cmdlets Set-TransportRule)" "Set-TransportRule=0" \
   "the rule was made with all three in it: none joined it later"
is "$(waiting)" 0 "no domain is left waiting in the tenant's note"

write_runbook "$TEST_TMP/gateway.ini" gateway 3 60s 5
run "$MAILMODE" --json runbook run "$TEST_TMP/gateway.ini"
is "$rc:$(json 'd["totals"]["switched"]')" "0:3" "back to gateway"
is "$(objects)" "0 0" "the rule and the connectors are gone"
is "$(db "SELECT count(*) FROM domains WHERE mode = 'gateway'")" 3 "the state: all three in gateway mode"

# --- again, with a verify that cannot see the new objects in time
write_runbook "$TEST_TMP/short.ini" mailflow 3 1s 5
run "$MAILMODE" --json runbook run "$TEST_TMP/short.ini"
is "$rc:$(json 'd["totals"]["failed"]')" "1:3" "verify never passes in 1 s: the three fail"
is "$(json '" ".join(sorted(x["result"] for x in d["domains"]))')" "unfinished unfinished unfinished" \
   "each rollback is left for resume: the rule made with it in it is not listed yet"
run_id=$(db "SELECT max(id) FROM runbook_runs")
# Resumed until the rule is listed (4 s) and the sandbox's visibility
# window (10 s) has passed: each leaves the rule, the last removes it.
for i in 1 2 3 4 5 6 7 8 9 10; do
	run "$MAILMODE" --json runbook resume "$run_id"
	[ "$rc" = 0 ] && break
	sleep 3
done
is "$rc:$(json '" ".join(sorted(x["result"] for x in d["domains"]))')" \
   "0:rolled back rolled back rolled back" "resumed: each rolled back"
is "$(objects)" "0 0" "no rule lists any of them, no connector is left"
is "$(db "SELECT count(*) FROM domains WHERE mode = 'gateway'"):$(db "SELECT count(*) FROM migrations WHERE finished_at IS NULL"):$(waiting)" \
   "3:0:0" "the state: all three in gateway mode, no migration left open, none waiting"
