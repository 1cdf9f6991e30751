#!/bin/sh
# Runbooks with the example mode and its twin: every malformed line named
# with its number and nothing run; the plan; a run where one domain fails
# verification (rolled back, the others finish); the failure budget; and a
# run killed midway, finished by running the runbook again.
. "$top_srcdir/tests/cli/setup.sh"
plan 37
E="$TEST_TMP/example.json"
T="$TEST_TMP/twin.json"
"$PYTHON3" -c '
import json, sys
d = {"domains": {"d%02d.test" % i: {"route": "direct"} for i in range(10)}}
json.dump(d, open(sys.argv[1], "w")); json.dump(d, open(sys.argv[2], "w"))' "$E" "$T"
for i in 00 01 02 03 04 05 06 07 08 09; do mm setup d$i.test --mode example >/dev/null; done
routes() { for i in 00 01 02 03 04 05 06 07 08 09; do printf '%s ' "$(world_route "$1" d$i.test)"; done; }
RB="$TEST_TMP/rb.ini"

# --- every malformed line is reported with its number; nothing runs
cat >"$RB" <<'RUNBOOK'
; a runbook with one mistake per line
[runbook]
parallel = lots
tenant_cap = 2
verify_timeout = soon
colour = blue
this line is not ini

[domains]
d00.test = twin
bad_domain.test = twin
d01.test = teleport
d02.test = twin nowhere
d03.test = twin lab extra
d00.test = twin

[extras]
x = y
RUNBOOK
before=$(db_digest "$DB")
run mm runbook run "$RB"
is "$rc" 1 "malformed runbook: exit 1"
for expect in "rb.ini:3: parallel = lots: want a whole number from 1 to 64" \
              "rb.ini:5: verify_timeout = soon: not a duration" \
              "rb.ini:6: unknown option 'colour' in \[runbook\]" \
              "rb.ini:7: expected 'DOMAIN = MODE \[PROFILE\]'" \
              "rb.ini:11: invalid domain 'bad_domain.test'" \
              "rb.ini:12: d01.test: unknown mode 'teleport'" \
              "rb.ini:13: d02.test: unknown profile 'nowhere'" \
              "rb.ini:14: d03.test = twin lab extra: want MODE \[PROFILE\]" \
              "rb.ini:15: d00.test is listed twice \(first on line 10\)" \
              "rb.ini:18: unknown section \[extras\]"; do
	like "$err" "$expect" "reported: ${expect#rb.ini:}"
done
like "$err" "10 error\(s\); nothing was run" "the count, and nothing run"
is "$(db_digest "$DB")" "$before" "state DB unchanged"
is "$(routes "$T")" "direct direct direct direct direct direct direct direct direct direct " "no world changed"

# --- lines longer than inih's buffer: a long comment is fine, a long
# entry is named; line numbers after them stay right
long=$(printf '%0300d' 0 | tr 0 x)
printf '[domains]\n; %s\nd00.test = twin %s\nd01.test = nosuch\n' "$long" "$long" >"$RB"
run mm runbook plan "$RB"
like "$err" "rb.ini:3: d00.test = twin x*: the profile name is longer than 255 characters" "an over-long entry is named by its line"
like "$err" "rb.ini:4: d01.test: unknown mode 'nosuch'" "a long comment does not shift the line numbers"

# --- plan: every plugin call in order, nothing changed
cat >"$RB" <<'RUNBOOK'
[runbook]
parallel = 3
verify_timeout = 2s
poll_interval = 100ms
failure_budget = 5

[domains]
d00.test = twin
d01.test = twin
d02.test = twin lab
d03.test = twin
d04.test = twin
d05.test = twin
d06.test = twin
d07.test = twin
RUNBOOK
run mm runbook plan "$RB"
is "$rc" 0 "plan exits 0"
like "$(printf '%s' "$out" | tr '\n' ' ')" "line 8: d00.test: example -> twin \(profile lab\) setup of d00.test in twin mode would: .*verify twin mode.*teardown of d00.test in example mode would:.*line 9: d01.test" "plan: each domain's calls in order"
is "$(db_digest "$DB")" "$before" "plan changed nothing"

# --- run: d03 never verifies (its twin route is not ready)
"$PYTHON3" -c 'import json,sys; p=sys.argv[1]; d=json.load(open(p)); d["domains"]["d03.test"]["ready"]=False; json.dump(d, open(p,"w"))' "$T"
run mm --json runbook run "$RB"
is "$rc" 1 "one failure: exit 1"
is "$("$PYTHON3" -c 'import json,sys; d=json.load(sys.stdin); print(" ".join(x["result"] for x in d["domains"]), d["totals"]["switched"], d["totals"]["failed"])' <<JSON
$out
JSON
)" "switched switched switched rolled back switched switched switched switched 7 1" "report: d03 rolled back, the others switched"
is "$(routes "$T")" "twin-scanner twin-scanner twin-scanner direct twin-scanner twin-scanner twin-scanner twin-scanner direct direct " "twin live for the switched domains only"
is "$(routes "$E")" "direct direct direct scanner direct direct direct direct scanner scanner " "example kept where it was not switched"
is "$(db "SELECT count(*) FROM domains WHERE mode='twin'")" 7 "state: 7 in twin mode"

# --- waits overlap: while d03 waits to verify, its worker switches the
# next domains, so they are done before its failure spends the budget
# budget_runbook CANARY DOMAIN...: a runbook of one worker, a budget of 1.
budget_runbook() {
	printf '[runbook]\nparallel = 1\nverify_timeout = 1s\npoll_interval = 100ms\nfailure_budget = 1\ncanary = %s\n\n[domains]\n' "$1" >"$RB"
	shift
	for d in "$@"; do printf '%s = twin\n' "$d" >>"$RB"; done
}
results() { printf '%s' "$out" | "$PYTHON3" -c 'import json,sys; print(" ".join(x["result"] for x in json.load(sys.stdin)["domains"]))'; }
budget_runbook 0 d03.test d08.test
run mm --json runbook run "$RB"
is "$(results)|$(world_route "$T" d08.test)" "rolled back switched|twin-scanner" "without a canary stage the next domain does not wait for the first's verify"
run mm switch d08.test --to example
is "$rc|$(world_route "$E" d08.test)" "0|scanner" "switched back to example for the next runs"

# --- the failure budget with a canary stage: no new switch after the
# first failure
budget_runbook 1 d03.test d08.test d09.test
run mm --json runbook run "$RB"
is "$rc" 1 "budget spent: exit 1"
like "$err" "failure budget of 1 spent" "says so"
is "$(results)" "rolled back not started not started" "the rest were not started"

# --- killed midway; running the runbook again finishes it
"$PYTHON3" -c 'import json,sys; p=sys.argv[1]; d=json.load(open(p)); d["domains"]["d03.test"]["ready"]=True; json.dump(d, open(p,"w"))' "$T"
cat >"$RB" <<'RUNBOOK'
[runbook]
parallel = 1
verify_timeout = 2s
poll_interval = 100ms

[domains]
d03.test = twin
d08.test = twin
d09.test = twin
d00.test = twin
RUNBOOK
migrations_before=$(db "SELECT count(*) FROM migrations")
MAILMODE_TEST_CRASH_AFTER=15 mm runbook run "$RB" >/dev/null 2>&1
is "$?" 137 "runbook killed during the second domain"
is "$(db "SELECT mode FROM domains WHERE domain='d03.test'")|$(db "SELECT step FROM migrations WHERE finished_at IS NULL")" "twin|verify_new" "first done, second stopped after verify"
run mm runbook run "$RB"
is "$rc" 0 "the rerun finishes"
like "$out" "d03.test .* skipped" "done domain skipped"
like "$out" "d08.test .* switched" "interrupted domain resumed"
like "$out" "d00.test .* skipped" "domain done by an earlier runbook skipped"
is "$(db "SELECT count(*) FROM migrations") $(db "SELECT count(*) FROM migrations WHERE finished_at IS NULL")" "$((migrations_before + 3)) 0" "one migration per domain, none repeated or left open"
is "$(routes "$T")" "twin-scanner twin-scanner twin-scanner twin-scanner twin-scanner twin-scanner twin-scanner twin-scanner twin-scanner twin-scanner " "every domain in twin mode"
