#!/bin/sh
# A waiting domain does not occupy a worker: with parallel = 1, a runbook's
# domains wait for the caches of their replaced MX records (the settle
# wait, the sandbox's MX TTL) at the same time, while no two of them are
# ever in a call at once (the emulator's own record of concurrent requests
# of their one tenant).  Asserted on the journal's timestamps: the order of
# rows, never a duration.
# A switch killed in its settle wait with --max-settle continues the wait
# where it stopped on resume (the deadline is journaled with it) instead
# of waiting the whole cap again.
. "$top_srcdir/tests/runbook/lib.sh"
start_sandbox --tenants 1 --domains 4
plan 9


# --- to mailflow first (not asserted), then back to gateway one worker
write_runbook "$TEST_TMP/mailflow.ini" mailflow 4 30s 5
run "$MAILMODE" --json runbook run "$TEST_TMP/mailflow.ini"
is "$rc" 0 "every domain in mailflow mode"
emu /_emu/stats -X DELETE >/dev/null
marker=$(db "SELECT coalesce(max(id), 0) FROM migrations")
write_runbook "$TEST_TMP/gateway.ini" gateway 1 30s 5
run "$MAILMODE" --json runbook run "$TEST_TMP/gateway.ini"
is "$rc:$(json 'd["totals"]["switched"]')" "0:4" "parallel = 1: every domain switched to gateway"

# The settle wait of each domain: from its settle row to its verify_new end.
intervals() {
	db "SELECT m.domain, s.at_ms, e.at_ms FROM migrations m
	    JOIN journal s ON s.migration_id = m.id AND s.step = 'verify_new' AND s.phase = 'settle'
	    JOIN journal e ON e.migration_id = m.id AND e.step = 'verify_new' AND e.phase = 'end'
	    WHERE m.id > $marker ORDER BY s.at_ms"
}
is "$(intervals | wc -l)" 4 "each domain journaled its settle wait"
is "$(db "SELECT count(*) FROM journal j JOIN migrations m ON m.id = j.migration_id
          WHERE m.id > $marker AND j.phase = 'settle' AND j.detail LIKE 'until %'")" 4 \
   "each settle row records its deadline"
# Overlap: some domain's settle wait begins before another's has ended.
overlapping=$(intervals | "$PYTHON3" -c '
import sys
rows = [tuple(int(x) for x in line.split("|")[1:]) for line in sys.stdin if line.strip()]
print(sum(1 for a in rows for b in rows if a != b and a[0] <= b[0] < a[1]))')
ok "$([ "$overlapping" -gt 0 ]; echo $?)" "settle waits overlap with one worker ($overlapping pairs)"
# A domain began its setup while an earlier one was still waiting.
started_during=$(db "SELECT count(*) FROM migrations a JOIN migrations b ON b.id > a.id
    JOIN journal ae ON ae.migration_id = a.id AND ae.step = 'verify_new' AND ae.phase = 'end'
    JOIN journal bs ON bs.migration_id = b.id AND bs.step = 'setup_new' AND bs.phase = 'begin'
    WHERE a.id > $marker AND bs.at_ms < ae.at_ms")
ok "$([ "$started_during" -gt 0 ]; echo $?)" "a domain started while another waited ($started_during)"
peak=$(emu /_emu/stats | "$PYTHON3" -c 'import json,sys; print(max(json.load(sys.stdin)["max_concurrent_by_tenant"].values()))')
is "$peak" 1 "one worker: never two requests at once, though all four domains were in flight"

# --- a capped settle wait, killed, resumed: the same deadline
D=$(db "SELECT domain FROM domains ORDER BY domain LIMIT 1")
run "$MAILMODE" switch "$D" --to mailflow
MAILMODE_TEST_CRASH_AT=verify_new:settle "$MAILMODE" switch "$D" --to gateway --max-settle 1s \
	>/dev/null 2>&1
is "$?" 137 "killed in its settle wait"
run "$MAILMODE" resume "$D"
id=$(db "SELECT max(id) FROM migrations WHERE domain = '$D'")
is "$rc:$(db "SELECT result FROM migrations WHERE id = $id"):$(db "SELECT count(DISTINCT coalesce(detail, '')) || '/' || (SELECT count(*) FROM journal WHERE migration_id = $id AND phase = 'settle_capped') FROM journal WHERE migration_id = $id AND phase = 'settle'")" \
   "0:done:1/1" "resumed: the wait continued to the journaled deadline, capped once"
