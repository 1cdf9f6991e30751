#!/bin/sh
# A domain waiting for its tenant's lock gives its worker back meanwhile:
# another process (another host) holds the lock on tenant t1 for 8 s
# (less than the 10 s a lock is waited for); with parallel = 2, d001 and d003 (tenant t1) wait for it, one for the
# lock, the other for the tenant's writer place, and d002 (another tenant)
# runs from start to end on one of their workers before the lock is free.
# Held through the waits, the two workers would keep d002 out until then.
# Asserted on the order of recorded times, never a duration.
. "$top_srcdir/tests/runbook/lib.sh"
start_sandbox --tenants 2 --domains 4
plan 6

tenant_of() {
	"$PYTHON3" -c 'import json,sys
layout = json.load(open(sys.argv[1]))["extra_tenants"]
print([t for t, ds in layout.items() if sys.argv[2] in ds][0])' "$SB/sandbox.json" "$1"
}
t1=$(tenant_of d001.test)
t2=$(tenant_of d002.test)
is "$(tenant_of d003.test)" "$t1" "d001.test and d003.test share a tenant, d002.test has another"

cat >"$TEST_TMP/mailflow.ini" <<INI
[runbook]
parallel = 2
tenant_cap = 2
verify_timeout = 60s
poll_interval = 300ms

[domains]
d001.test = mailflow $t1
d003.test = mailflow $t1
d002.test = mailflow $t2
INI
# The state must exist before the lock is put in: d004.test switched first.
printf '[runbook]\nparallel = 1\n\n[domains]\nd004.test = mailflow %s\n' "$t2" >"$TEST_TMP/first.ini"
"$MAILMODE" runbook run "$TEST_TMP/first.ini" >/dev/null 2>&1
is "$(db "SELECT mode FROM domains WHERE domain = 'd004.test'")" mailflow "the state made, d004.test switched"
lease_end=$(( $(date +%s) * 1000 + 8000 ))
db "INSERT INTO shared_locks VALUES('tenant $t1.onmicrosoft.com', 'admin@elsewhere', 4242, 'elsewhere.example',
    'runbook run', '2026-01-01T00:00:00Z', $lease_end, 1, 'other.test')"
run "$MAILMODE" --json runbook run "$TEST_TMP/mailflow.ini"
is "$rc:$(json 'd["totals"]["switched"]')" "0:3" "the three domains switched"

setup_end() {
	db "SELECT min(j.at_ms) FROM journal j JOIN migrations m ON m.id = j.migration_id
	    WHERE m.domain = '$1' AND j.step = 'setup_new' AND j.phase IN ('end', 'attempt')"
}
d001_end=$(setup_end d001.test)
d003_end=$(setup_end d003.test)
d002_end=$(db "SELECT finished_ms FROM runbook_run_domains WHERE domain = 'd002.test'")
ok "$([ "$d001_end" -ge "$lease_end" ] && [ "$d003_end" -ge "$lease_end" ]; echo $?)" \
   "d001.test and d003.test waited for the other host's lock ($d001_end, $d003_end >= $lease_end)"
ok "$([ -n "$d002_end" ] && [ "$d002_end" -lt "$lease_end" ]; echo $?)" \
   "d002.test was switched meanwhile: their waits held no worker ($d002_end < $lease_end)"
is "$(db "SELECT count(*) FROM shared_locks")" 0 "no lock is left behind"
