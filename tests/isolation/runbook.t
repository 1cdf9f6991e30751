#!/bin/sh
# A runbook over several domains goes on past a plugin that hangs in setup
# and one that aborts in observe: each costs its domain, the others are
# switched, and the hung setup is journaled with its outcome unknown and
# rolled back.
. "$top_srcdir/tests/isolation/setup.sh"
plan 6
RB="$TEST_TMP/rb.ini"
cat >"$RB" <<'RUNBOOK'
[runbook]
parallel = 2
verify_timeout = 10s
poll_interval = 100ms
failure_budget = 10

[domains]
rb1.test = misbehave
hang-setup.rb.test = misbehave
crash-observe.rb.test = example
rb2.test = example
rb3.test = misbehave
RUNBOOK

run mm --json runbook run "$RB"
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]; ok $? "the runbook ends and reports its failures (exit $rc)"
is "$(json '" ".join("%s=%s" % (x["domain"], x["result"]) for x in sorted(d["domains"], key=lambda x: x["domain"]))')" \
   "crash-observe.rb.test=failed hang-setup.rb.test=rolled back rb1.test=switched rb2.test=switched rb3.test=switched" \
   "every domain ran: the broken ones failed, the others were switched"
is "$(db "SELECT domain || '=' || coalesce(mode, '-') FROM domains ORDER BY domain" | tr '\n' ' ')" \
   "hang-setup.rb.test=- rb1.test=misbehave rb2.test=example rb3.test=misbehave " \
   "state: the switched domains in their modes, the hung one in none"
is "$(db "SELECT j.phase FROM journal j JOIN migrations m ON m.id = j.migration_id WHERE m.domain = 'hang-setup.rb.test' AND j.step = 'setup_new' ORDER BY j.seq" | tr '\n' ' ')" \
   "begin fail " "the hung setup's failure is journaled"
is "$(db "SELECT count(*) FROM locks")" 0 "no lock left"
is "$(helpers_left)" 0 "no helper outlives the runbook"
