#!/bin/sh
# setup -> verify -> teardown with the example plugin, asserting the world
# file, the state DB rows and the audit log at each step.
. "$top_srcdir/tests/cli/setup.sh"
plan 30
W="$TEST_TMP/example.json"
cat >"$W" <<JSON
{"domains": {"contoso.test": {"route": "direct"}}}
JSON

run mm setup contoso.test --mode example --dry-run
is "$rc" 0 "dry-run exits 0"
like "$out" "set route of contoso.test to scanner \(now direct\)" "dry-run prints the change"
is "$(world_route "$W" contoso.test)" "direct" "dry-run left the world alone"
ok "$([ ! -e "$DB" ]; echo $?)" "dry-run created no state DB"

run mm setup Contoso.Test. --mode example
is "$rc" 0 "setup exits 0"
like "$out" "contoso.test: example mode set up \(profile lab\)" "setup reports the canonical domain"
is "$(world_route "$W" contoso.test)" "scanner" "the world routes through the scanner"
is "$(db "SELECT mode, profile, receipt FROM domains WHERE domain='contoso.test'")" \
   'example|lab|{"previous":"direct","route":"scanner"}' "state row: mode, profile, receipt"
is "$(db "SELECT count(*) FROM locks")" 0 "the domain lock was released"

run mm setup contoso.test --mode example
is "$rc" 0 "setup again is idempotent"
is "$(db "SELECT receipt FROM domains WHERE domain='contoso.test'")" \
   '{"previous":"direct","route":"scanner"}' "the original receipt is kept"

run mm verify contoso.test
is "$rc" 0 "verify passes"
like "$out" "contoso.test: example mode verified" "verify says so"

run mm --json verify contoso.test
is "$("$PYTHON3" -c 'import json,sys; d=json.load(sys.stdin); print(d["verified"], d["report"]["route"], d["exit"])' <<JSON
$out
JSON
)" "True scanner 0" "verify --json carries the plugin's report"

"$PYTHON3" -c 'import json,sys; p=sys.argv[1]; d=json.load(open(p)); d["domains"]["contoso.test"]["ready"]=False; json.dump(d, open(p,"w"))' "$W"
run mm verify contoso.test
is "$rc" 3 "not ready: verify exits 3"
like "$err" "route scanner is not ready yet" "the plugin's reason is shown"

run mm status
is "$rc" 0 "status exits 0 without drift"
like "$out" "contoso.test +example +profile lab" "status shows mode and profile"
like "$out" "example +present" "status shows what observe saw"

run mm teardown contoso.test --dry-run
like "$out" "set route of contoso.test to direct \(now scanner\)" "teardown dry-run prints the restore"
is "$(world_route "$W" contoso.test)" "scanner" "teardown dry-run changed nothing"

"$PYTHON3" -c 'import json,sys; p=sys.argv[1]; json.dump({"domains":{"contoso.test":{"route":"someone-else"}}}, open(p,"w"))' "$W"
run mm teardown contoso.test
is "$rc" 4 "teardown on drift: exit 4"
like "$err" "route is someone-else, neither this mode's scanner nor the saved direct" "drift explained"
is "$(db "SELECT mode FROM domains WHERE domain='contoso.test'")" "example" "state still says example"

run mm teardown contoso.test --force
is "$rc" 0 "teardown --force restores"
is "$(world_route "$W" contoso.test)" "direct" "the saved route is back"
is "$(db "SELECT coalesce(mode, 'none') FROM domains WHERE domain='contoso.test'")" "none" "state: no mode"

run mm teardown contoso.test
is "$rc" 1 "teardown of a domain with no mode: exit 1"
like "$err" "contoso.test has no mode recorded" "and says why"

is "$(db "SELECT group_concat(action, ',') FROM (SELECT action FROM audit WHERE domain='contoso.test' ORDER BY id)")" \
   "setup-start,setup,setup-start,setup,teardown-start,teardown-failed,teardown-start,teardown" "audit log: every change and the failure"
