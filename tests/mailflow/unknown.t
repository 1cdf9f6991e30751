#!/bin/sh
# mailflow, issue 11 class 2: an answer that did not arrive is an unknown
# outcome, never a known one.  A New-TransportRule that the tenant carried
# out but whose answer was lost appears later (the emulator hides new
# objects for consistency_delay_s); the rollback must not call it gone
# because it is not listed yet, and must remove it once it shows.  A
# create answered "already exists" was created.  fabrikam.test is set up
# first, so the shared connectors are visible, and its shared rule is
# filled up (by another admin), so that contoso.test's setup makes a rule of
# its own (New-TransportRule, '#2') instead of joining '#1'.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/mailflow/lib-mailflow.sh"

plan 14

mf_start
mf_tenant
mf_config secret "timeout_ms = 2000
visibility_window_ms = 4000"
FAST="--poll-interval 200ms --verify-timeout 30s"
rule_seen() { mf_state 'len(s["rules"])'; }
ONLY_FABRIKAM="1 1 1 mailmode route #1"
run mm setup fabrikam.test --mode mailflow --profile p1
mf_fill_rule "mailmode route #1" 150

# --- plain setup: the rule is made, its answer is lost
emu_ctl POST /_emu/config '{"consistency_delay_s": 3}' >/dev/null
emu_ctl POST /_emu/faults '{"kind":"acted_reset","count":2,"cmdlet":"New-TransportRule"}' >/dev/null
run mm setup contoso.test --mode mailflow --profile p1
emu_ctl DELETE /_emu/faults >/dev/null
is "$rc" 1 "setup whose New-TransportRule answer is lost fails"
like "$err" "New-TransportRule: no answer from the admin API .*may or may not have been made" \
	"the summary says the outcome is unknown"
ok $(printf '%s' "$err" | grep -Eq "not applied|rolled back"; [ $? -ne 0 ]; echo $?) \
	"and does not call it not applied"
is "$(rule_seen)" 2 "the tenant did make the rule (not listed yet)"
run mm resume contoso.test
is "$rc" 0 "resume finishes the setup"
is "$(sqlite3 "$MF_STATE" "SELECT json_extract(receipt, '\$.rule.action') FROM domains WHERE domain='contoso.test'")" \
	"created" "New-TransportRule answered 'already exists': the receipt says created (it is ours)"
is "$(mf_counts)" "1 1 2" "nothing duplicated"
sleep 3
run mm teardown contoso.test
is "$rc.$(mf_counts) $(mf_state 'names("rules")')" "0.$ONLY_FABRIKAM" "teardown removes the rule"

# --- a switch: the rule's answer is lost, the rule appears 3 s later
emu_ctl POST /_emu/faults '{"kind":"acted_hang","count":2,"cmdlet":"New-TransportRule","delay_ms":3000}' >/dev/null
run mm switch contoso.test --to mailflow $FAST
emu_ctl DELETE /_emu/faults >/dev/null
ok $([ "$rc" -ne 0 ]; echo $?) "the switch does not go through (exit $rc)"
like "$err" "New-TransportRule.*(no answer|outcome unknown)" "the lost answer is named"
sleep 4
is "$(mf_counts) $(mf_state 'names("rules")')" "$ONLY_FABRIKAM" "once the late rule is visible it is not there: the rollback waited for it and removed it"
is "$(sqlite3 "$MF_STATE" "SELECT result FROM migrations ORDER BY id DESC LIMIT 1")" "rolled_back" \
	"the migration is rolled back, without --force"

# --- the server did not act (reset before the cmdlet ran): the rollback
# waits out the visibility window, then calls the rule gone
emu_ctl POST /_emu/faults '{"kind":"reset","count":2,"cmdlet":"New-TransportRule"}' >/dev/null
run mm switch contoso.test --to mailflow $FAST
emu_ctl DELETE /_emu/faults >/dev/null
is "$(mf_counts) $(mf_state 'names("rules")').$(sqlite3 "$MF_STATE" "SELECT result FROM migrations ORDER BY id DESC LIMIT 1")" \
	"$ONLY_FABRIKAM.rolled_back" "a rule that never appears stops blocking once the window has passed"
ok $([ "$(sqlite3 "$MF_STATE" "SELECT count(*) FROM domains WHERE domain='contoso.test' AND mode IS NOT NULL")" -eq 0 ]; echo $?) \
	"no mode recorded"
