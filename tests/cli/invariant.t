#!/bin/sh
# The one-mode invariant: a domain in one mode is refused a second one
# (exit 4, state DB and worlds unchanged); a mode found live in the world
# but not in the state blocks setup of another mode; adopt and status.
. "$top_srcdir/tests/cli/setup.sh"
plan 22
E="$TEST_TMP/example.json"
T="$TEST_TMP/twin.json"

run mm setup a.test --mode example
is "$rc" 0 "a.test set up in example mode"

before=$(db_digest "$DB")
run mm setup a.test --mode twin
is "$rc" 4 "a second mode is refused with exit 4"
like "$err" "a.test is already in example mode: a domain has one mode; use 'mailmode switch a.test --to twin'" "message names the current mode and switch"
is "$(db_digest "$DB")" "$before" "state DB unchanged"
is "$(world_route "$T" a.test)" "-" "the twin world was not touched"
run mm adopt a.test --mode twin
is "$rc" 4 "adopt into a second mode is refused too"
is "$(db_digest "$DB")" "$before" "state DB still unchanged"

run mm --json setup a.test --mode twin
is "$("$PYTHON3" -c 'import json,sys; d=json.load(sys.stdin); print(d["ok"], d["exit"], "already in example mode" in d["error"])' <<JSON
$out
JSON
)" "False 4 True" "--json reports the refusal"

# b.test is routed through the twin by hand: the state knows nothing.
"$PYTHON3" -c 'import json,sys; json.dump({"domains":{"b.test":{"route":"twin-scanner"}}}, open(sys.argv[1],"w"))' "$T"
before=$(db_digest "$DB")
run mm setup b.test --mode example
is "$rc" 4 "setup refused while another mode is live in the world"
like "$err" "twin mode is present for b.test although the state records no mode: adopt it" "message says what is live and what to do"
is "$(world_route "$E" b.test)" "-" "example world untouched"
is "$(db_digest "$DB")" "$before" "state DB unchanged"

run mm status b.test
is "$rc" 4 "status flags the unrecorded live mode (exit 4)"
like "$out" "DRIFT: state says no mode, but twin mode is also live" "drift line"

run mm adopt b.test --mode twin
is "$rc" 0 "adopt records the hand-made twin mode"
is "$(db "SELECT mode, adopted, coalesce(receipt, 'null') FROM domains WHERE domain='b.test'")" "twin|1|null" "adopted row, no receipt"

run mm adopt c.test --mode twin
is "$rc" 3 "adopt of a domain where the mode is absent: exit 3"
like "$err" "twin mode is absent for c.test: nothing to adopt" "explained"

# Someone adds the example route for a.test's twin behind our back.
"$PYTHON3" -c 'import json,sys; d=json.load(open(sys.argv[1])); d["domains"]["a.test"]={"route":"twin-scanner"}; json.dump(d, open(sys.argv[1],"w"))' "$T"
run mm --json status
is "$rc" 4 "status: drift is exit 4"
is "$("$PYTHON3" -c 'import json,sys; d=json.load(sys.stdin); print([x["drift"] for x in d["domains"] if x["domain"]=="a.test"][0])' <<JSON
$out
JSON
)" "['state says example, but twin mode is also live']" "status --json names the drift"

run mm teardown b.test
is "$rc" 0 "teardown of an adopted domain"
is "$(world_route "$T" b.test)" "-" "adopted domain: twin route removed (no saved route)"
