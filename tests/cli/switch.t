#!/bin/sh
# The migration engine with the example mode and its twin: switch, no-op,
# switch from no mode, rollback when verification never passes, teardown
# failure left unfinished then resumed, abort, and locks.
. "$top_srcdir/tests/cli/setup.sh"
plan 47
E="$TEST_TMP/example.json"
T="$TEST_TMP/twin.json"
world() { printf '%s\n' "$2" >"$1"; }
json_get() { printf '%s' "$1" | "$PYTHON3" -c "import json,sys; d=json.load(sys.stdin); print($2)"; }
FAST="--poll-interval 100ms --verify-timeout 2s"

world "$E" '{"domains":{"a.test":{"route":"direct"},"b.test":{"route":"direct"}}}'
world "$T" '{"domains":{"a.test":{"route":"direct"},"b.test":{"route":"direct"}}}'
mm setup a.test --mode example >/dev/null

run mm switch a.test --to twin --dry-run $FAST
is "$rc" 0 "dry-run exits 0"
like "$(printf '%s' "$out" | tr '\n' ' ')" "^setup of a.test in twin mode would: .*set route of a.test to twin-scanner" "dry-run: the new mode's setup first"
like "$(printf '%s' "$out" | tr '\n' ' ')" "setup of a.test in twin.*verify twin mode.*teardown of a.test in example mode" "dry-run: in order setup, verify, teardown"
is "$(world_route "$T" a.test)" "direct" "dry-run changed nothing"
run mm --json switch a.test --to twin --dry-run $FAST
is "$(json_get "$out" "[(s['step'], s['actions'][0]) for s in d['plan'] if s['step'] in ('setup', 'teardown')]")" \
   "[('setup', {'text': '$T: set route of a.test to twin-scanner (now direct)'}), ('teardown', {'text': '$E: set route of a.test to direct (now scanner)'})]" \
   "JSON: a plugin without plan_actions: each line of its plan an action {\"text\"}"
is "$(json_get "$out" "d['summary']['domains'][0]['text']")" "a.test: nothing to change" \
   "its summary counts nothing it cannot name"

run mm switch a.test --to twin $FAST
is "$rc" 0 "switch example -> twin"
like "$out" "a.test: switched example -> twin in [0-9.]+ s \(1 verify attempt\)" "switch reports the outcome"
is "$(world_route "$T" a.test)/$(world_route "$E" a.test)" "twin-scanner/direct" "new mode live, old mode restored"
is "$(db "SELECT mode, receipt FROM domains WHERE domain='a.test'")" 'twin|{"previous":"direct","route":"twin-scanner"}' "state: new mode and its receipt"
is "$(db "SELECT result FROM migrations WHERE kind='switch'")" "done" "migration closed as done"
is "$(db "SELECT group_concat(step || ':' || phase, ' ') FROM (SELECT step, phase FROM journal WHERE migration_id = (SELECT id FROM migrations WHERE kind='switch') ORDER BY seq)")" \
   "planned:end setup_new:begin setup_new:end verify_new:begin verify_new:end teardown_old:begin teardown_old:end confirm_old_gone:begin confirm_old_gone:end close:end" \
   "every step journaled before and after"
is "$(db "SELECT count(*) FROM locks")" 0 "lock released"

run mm switch a.test --to twin
is "$rc" 0 "switch to the current mode is a no-op"
like "$out" "already in twin mode: nothing to do" "and says so"
is "$(db "SELECT count(*) FROM migrations WHERE kind='switch'")" 1 "no migration recorded for the no-op"

run mm switch b.test --to example $FAST
is "$rc" 0 "a domain with no mode is switched into one"
like "$out" "switched none -> example" "from none"
is "$(db "SELECT mode FROM domains WHERE domain='b.test'")" "example" "state: example"

# Verification never passes: the twin world holds b.test "not ready".
world "$T" '{"domains":{"b.test":{"route":"direct","ready":false}}}'
run mm switch b.test --to twin $FAST
is "$rc" 3 "verification never passes: exit 3"
like "$err" "twin mode did not verify within 2s: .*rolled back, b.test stays example" "rollback explained"
is "$(world_route "$T" b.test)/$(world_route "$E" b.test)" "direct/scanner" "new mode undone, old mode intact"
is "$(db "SELECT mode FROM domains WHERE domain='b.test'")" "example" "state still example"
is "$(db "SELECT result FROM migrations WHERE domain='b.test' ORDER BY id DESC LIMIT 1")" "rolled_back" "migration closed as rolled back"
ok "$([ "$(db "SELECT max(attempts) FROM journal WHERE phase='attempt' AND step='verify_new'")" -ge 2 ]; echo $?)" "each verify attempt counted in one journal row"

# The old mode's teardown fails (drift): the migration stays unfinished.
world "$T" '{"domains":{"b.test":{"route":"direct"}}}'
MAILMODE_TEST_CRASH_AFTER=5 mm switch b.test --to twin $FAST >/dev/null 2>&1
is "$?" 137 "killed right after verification (SIGKILL)"
world "$E" '{"domains":{"b.test":{"route":"someone-else"}}}'
run mm resume b.test
is "$rc" 4 "resume: the old mode's teardown is refused on drift (exit 4)"
like "$err" "teardown of the old mode failed: .*someone-else.*the switch is unfinished: fix it, then run 'mailmode resume b.test'" "says how to finish"
like "$err" "took over the lock on b.test .*that process is gone" "the dead owner's lock was taken over, naming it"
run mm status b.test
like "$out" "UNFINISHED switch example -> twin .* last step verify_new" "status shows the unfinished migration and its step"
run mm teardown b.test
is "$rc" 4 "other commands are refused during the migration"
run mm abort b.test
is "$rc" 4 "abort refused once the old mode's teardown began"
like "$err" "can only go forward: run 'mailmode resume b.test'" "abort explains why"
world "$E" '{"domains":{"b.test":{"route":"scanner"}}}'
run mm resume b.test
is "$rc" 0 "resume finishes once the world is fixed"
is "$(world_route "$T" b.test)/$(world_route "$E" b.test)" "twin-scanner/direct" "b.test in twin mode only"
is "$(db "SELECT mode FROM domains WHERE domain='b.test'")" "twin" "state: twin"
run mm resume
like "$out" "no unfinished migration" "nothing left to resume"

# Abort before the old mode is touched.
world "$E" '{"domains":{"c.test":{"route":"direct"}}}'
world "$T" '{"domains":{"c.test":{"route":"direct"}}}'
mm setup c.test --mode example >/dev/null
MAILMODE_TEST_CRASH_AFTER=3 mm switch c.test --to twin $FAST >/dev/null 2>&1
is "$?" 137 "killed right after the new mode's setup"
is "$(world_route "$T" c.test)/$(world_route "$E" c.test)" "twin-scanner/scanner" "both modes live while interrupted"
run mm status c.test
unlike "$out" "DRIFT" "status: both modes live inside a migration is not drift"
is "$rc" 4 "status: but an open migration is exit 4"
run mm abort c.test
is "$rc" 0 "abort rolls back"
is "$(world_route "$T" c.test)/$(world_route "$E" c.test)" "direct/scanner" "new mode undone, old mode intact"
is "$(db "SELECT mode FROM domains WHERE domain='c.test'")/$(db "SELECT result FROM migrations WHERE domain='c.test' AND kind='switch'")" "example/aborted" "state: example; migration aborted"

# Bad input to switch.
run mm switch c.test --to nope
is "$rc" 1 "unknown target mode: exit 1"
run mm switch c.test
is "$rc" 2 "missing --to: exit 2"
run mm switch c.test --to twin --verify-timeout soon
is "$rc" 2 "bad duration: exit 2"
