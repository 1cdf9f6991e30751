#!/bin/sh
# A team's state on PostgreSQL: two mailmode processes standing for two
# hosts (MAILMODE_HOST_ID host-a and host-b: neither can see the other's
# pid) run overlapping runbooks against one database and the sandbox
# (BIND 9 primary + secondary, the Microsoft 365 emulator, 100 ms per
# request so that calls overlap).  No domain is switched twice: of a
# domain both runbooks list, the host that comes second finds it changed
# and says so; and the tenant cap holds for both together: 1 call at a
# time per tenant, where each host alone has 3 domains of each tenant and
# 4 workers (counted per process, 2 at once), by the emulator's own
# record of concurrent requests.
# Then host-a is SIGKILLed mid-run: its locks stay until their leases run
# out (brought forward here: minutes for the tenant locks and call slots,
# 30 minutes for a domain), and host-b's run of the runbook then finishes
# every domain, host-a's too.
. "$top_srcdir/tests/runbook/lib.sh"
. "$top_srcdir/tests/servers/pg.sh"
pg_start || { echo "Bail out! PostgreSQL did not start"; exit 1; }
start_sandbox --tenants 2 --domains 8 --latency-ms 100
plan 15

mx() { kdig @"$1" -p "$DNS_PORT" +norec +short "$2" MX | sort -n | tr '\n' ' ' | sed 's/ $//'; }
# on HOST ARGS...: mailmode as HOST on the shared state
on() {
	_host=$1
	shift
	MAILMODE_HOST_ID=$_host "$MAILMODE" --state "$PG_URL" "$@"
}
# part FILE FROM TO: the runbook FILE with only domains dFROM..dTO
part() {
	"$PYTHON3" - "$@" <<'PY'
import re, sys
path, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = []
for line in open(path):
    m = re.match(r"d(\d+)\.test = ", line)
    if not m or lo <= int(m.group(1)) <= hi:
        out.append(line)
open(path, "w").writelines(out)
PY
}
GATEWAY_SET="10 mx-01.gw.sandbox.test. 20 mx-02.gw.sandbox.test."

# --- two hosts, overlapping runbooks (d003..d006 in both), 4 workers each,
# tenant cap 1
write_runbook "$TEST_TMP/a.ini" mailflow 4 30s 5
write_runbook "$TEST_TMP/b.ini" mailflow 4 30s 5
part "$TEST_TMP/a.ini" 1 6
part "$TEST_TMP/b.ini" 3 8
sed -i 's/^tenant_cap = .*/tenant_cap = 1/' "$TEST_TMP/a.ini" "$TEST_TMP/b.ini"
emu /_emu/stats -X DELETE >/dev/null
on host-a --lock-timeout 120s --json runbook run "$TEST_TMP/a.ini" >"$TEST_TMP/a.out" 2>"$TEST_TMP/a.err" &
pid_a=$!
on host-b --lock-timeout 120s --json runbook run "$TEST_TMP/b.ini" >"$TEST_TMP/b.out" 2>"$TEST_TMP/b.err" &
pid_b=$!
wait $pid_a; rc_a=$?
wait $pid_b; rc_b=$?
# failures FILE: "DOMAIN=ERROR" of each failed domain of a run's JSON
failures() {
	"$PYTHON3" -c 'import json,sys; d=json.load(open(sys.argv[1])); print("\n".join(x["domain"] + "=" + x.get("error", "") for x in d["domains"] if x["result"] == "failed"))' "$1"
}
lost=$( (failures "$TEST_TMP/a.out"; failures "$TEST_TMP/b.out") | grep .)
# A domain both list: the second host finds it switched, or its switch
# open on the other host.
printf '%s\n' "$lost" | grep . | grep -Ev '^d00[3-6]\.test=.*(changed while this command checked it \(now mailflow\)|has an unfinished switch \(none -> mailflow)' >/dev/null
ok $((1 - $?)) "the runs exit $rc_a and $rc_b: a failure only where the other host had switched a domain both list, or was switching it, said so ($lost)"
run on host-a --json runbook run "$TEST_TMP/a.ini"
is "$rc/$(json 'sum(1 for x in d["domains"] if x["status"] == "skipped")')" "0/6" "host-a's runbook again: exit 0, all 6 already in mailflow mode"
is "$(pg_sql "SELECT count(*) FROM domains WHERE mode = 'mailflow'")" 8 "the shared state: all 8 domains in mailflow mode"
is "$(pg_sql "SELECT count(*) FROM (SELECT domain FROM migrations WHERE to_mode = 'mailflow' AND result = 'done' GROUP BY domain HAVING count(*) > 1) AS twice")/$(pg_sql "SELECT count(DISTINCT domain) FROM migrations WHERE to_mode = 'mailflow' AND result = 'done'")" \
	"0/8" "no domain switched twice: one done migration each"
is "$(pg_sql "SELECT count(DISTINCT actor) FROM audit WHERE action = 'switch'")" 2 "both hosts switched domains"
peaks=$(emu /_emu/stats | "$PYTHON3" -c 'import json,sys; print(" ".join(str(v) for v in json.load(sys.stdin)["max_concurrent_by_tenant"].values()))')
capped=1
[ -n "$peaks" ] && capped=0
for p in $peaks; do [ "$p" -le 1 ] || capped=1; done
ok $capped \
	"no tenant ever had more than 1 request at once from both hosts together (peaks: $peaks)"
is "$(pg_sql "SELECT count(*) FROM shared_locks")/$(pg_sql "SELECT count(*) FROM locks")" "0/0" \
	"no lock or tenant slot left behind"
is "$(mx "$DNS_PRIMARY" d004.test)" "0 d004-test.mail.protection.outlook.test." "d004.test (in both runbooks): its original MX served"

# --- host-a killed mid-run; host-b finishes after the lease
write_runbook "$TEST_TMP/gw.ini" gateway 4 30s 8
marker=$(pg_sql "SELECT max(id) FROM migrations")
MAILMODE_TEST_CRASH_AFTER=12 on host-a runbook run "$TEST_TMP/gw.ini" >/dev/null 2>&1
is "$?" 137 "host-a is killed midway through its run"
held=$(pg_sql "SELECT count(*) FROM locks WHERE host = 'host-a'")
ok "$([ "$held" -gt 0 ]; echo $?)" "it leaves domain locks behind ($held)"
# Minutes on: host-a's tenant locks and call slots ran out.
pg_sql "UPDATE shared_locks SET lease_until = 1 WHERE host = 'host-a'"
run on host-b --lock-timeout 2s --json runbook run "$TEST_TMP/gw.ini"
like "$rc $(json '" ".join(x.get("error", "") for x in d["domains"])')" "^1 .*d00[1-8]\.test is locked by root@host-a \(pid [0-9]+ on host-a, 'runbook run' since .*; gave up after 2 s" "host-b waits for host-a's live-looking domain locks, then names them"
# 30 minutes on: the leases ran out (by the database's clock).
pg_sql "UPDATE locks SET lease_until = 1 WHERE host = 'host-a'"
run on host-b -v --lock-timeout 2s --json runbook run "$TEST_TMP/gw.ini"
is "$rc" 0 "after the lease host-b's run finishes ($(printf '%s' "$err" | tail -1))"
like "$err" "took over the lock on d[0-9]*\\.test from .*on host-a.*its lease expired" "taking host-a's locks over, naming it"
is "$(pg_sql "SELECT count(*) FROM domains WHERE mode = 'gateway'")/$(pg_sql "SELECT count(*) FROM migrations WHERE finished_at IS NULL")" \
	"8/0" "all 8 domains in gateway mode, no migration left open"
is "$(pg_sql "SELECT count(*) FROM (SELECT domain FROM migrations WHERE id > $marker AND result = 'done' GROUP BY domain HAVING count(*) > 1) AS twice")/$(mx "$DNS_SECONDARY" d001.test)" \
	"0/$GATEWAY_SET" "no domain switched twice; d001.test's gateway MX served by the secondary"
