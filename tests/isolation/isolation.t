#!/bin/sh
# Plugin isolation: a plugin that aborts in observe, exits in init or in
# verify, hangs in setup, hands back a huge receipt, report or diagnostic,
# fails, crashes or names only blank lines in resources, aborts in doctor,
# and prints to stdout and stderr in every call costs that call only: the
# command goes on for the other domains and modes, names the plugin, the
# call and what happened in one line, --json stays one JSON document, the
# domain lock is released and the journal says the outcome is unknown,
# which resume then finishes.
. "$top_srcdir/tests/isolation/setup.sh"
plan 56
MS="$PLUGINS/misbehave.so"

run mm setup ok1.test --mode example
is "$rc" 0 "setup in example mode with the broken modes loaded"
run mm setup ok2.test --mode misbehave
is "$rc/$(test -e "$TEST_TMP/world/ok2.test" && echo made)" "0/made" \
   "setup in the misbehaving mode (stray output, checkpoint forwarded)"
is "$(db "SELECT mode FROM domains WHERE domain='ok2.test'")" misbehave "state: ok2.test in misbehave mode"

# --- abort() in observe: status goes on for the other domains and modes
run mm --json status ok1.test crash-observe.test ok2.test
is "$rc" 1 "status with a crashing observe: exit 1 (a mode could not be observed)"
is "$(json 'len(d["domains"])')" 3 "--json: one document, every domain in it, despite the stray output"
is "$(json '[x["observed"]["example"]["presence"] for x in d["domains"]]')" \
   "['present', 'absent', 'absent']" "example mode observed for every domain"
is "$(json '[x["observed"]["misbehave"]["presence"] for x in d["domains"]]')" \
   "['absent', 'unknown', 'present']" "misbehave mode observed for the other domains"
is "$(json 'd["domains"][1]["observed"]["misbehave"]["error"]')" \
   "plugin misbehave ($MS): observe of crash-observe.test crashed (signal 6, SIGABRT)" \
   "the crash named: plugin, file, call, domain, signal"
unlike "$out" "stray output" "the plugin's stdout is not in the command's"
unlike "$err" "stray output" "nor its stderr"
run mm status ok1.test crash-observe.test ok2.test
like "$out" "ok2.test +misbehave" "human status goes on past the crash"
is "$(printf '%s\n' "$out" | grep -c 'observe of crash-observe.test crashed')" 1 \
   "one line names the crash"

# --- exit(1) in init: the mode is unavailable, the others work
run mm setup ok3.test --mode initexit
is "$rc" 1 "a mode whose init exits: exit 1"
like "$err" "plugin initexit \\($PLUGINS/initexit.so\\): init exited with status 1" \
     "one line names the plugin and the exit status"
is "$(db "SELECT count(*) FROM migrations WHERE domain='ok3.test'")" 0 "nothing was opened"
run mm setup ok3.test --mode example
is "$rc" 0 "the same command in another mode works"

# --- setup that never returns: killed at the deadline, outcome unknown
run mm setup hang-setup.test --mode misbehave
is "$rc" 1 "a hanging setup ends the command at the deadline (exit 1, not 124)"
like "$err" "plugin misbehave \\($MS\\): setup of hang-setup.test killed after deadline 3s: outcome unknown" \
     "one line names the plugin, the call and the deadline"
like "$err" "run 'mailmode resume hang-setup.test'" "and says how to go on"
is "$(db "SELECT count(*) FROM locks")" 0 "the domain lock is released"
is "$(db "SELECT j.phase FROM journal j JOIN migrations m ON m.id = j.migration_id WHERE m.domain = 'hang-setup.test' AND j.step = 'setup_new' ORDER BY j.seq" | tr '\n' ' ')" \
   "begin unknown " "the journal says the setup's outcome is unknown"
is "$(db "SELECT count(*) FROM migrations WHERE domain='hang-setup.test' AND finished_at IS NULL")" 1 \
   "the migration stays open for resume"
is "$(helpers_left)" 0 "the hung helper is gone"
run mm status hang-setup.test
like "$out" "UNFINISHED setup none -> misbehave" "a following command does not wait for the lock"
run mm resume hang-setup.test
is "$rc/$(db "SELECT mode FROM domains WHERE domain='hang-setup.test'")" "0/misbehave" \
   "resume reconciles: the setup finishes in a fresh helper"

# --- the core killed while its helper hangs: the helper goes with it
# (a call left running would go on writing while resume runs)
timeout 120 "$MAILMODE" --config "$CONF" setup hang-setup.2.test --mode misbehave >/dev/null 2>&1 &
core=$!
i=0
while [ ! -e "$TEST_TMP/world/hang-setup.2.test.hung" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
pkill -KILL -P "$core"          # the mailmode under timeout(1)
wait "$core"
i=0
while [ "$(helpers_left)" -gt 0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
is "$(helpers_left)" 0 "a helper does not outlive a core killed with SIGKILL"

# --- a receipt past the 16 MiB bound: a protocol error, the helper killed
run mm setup huge-receipt.test --mode misbehave
like "$err" "plugin misbehave \\($MS\\): setup of huge-receipt.test broke the helper protocol \\(a message longer than 16 MiB\\): killed: outcome unknown" \
     "a huge receipt ends the helper, named in one line"
is "$(db "SELECT count(*) FROM locks WHERE domain='huge-receipt.test'")" 0 "the lock is released"

# --- a huge report and a huge diagnostic: bounded, the others go on
run mm --json status huge-report.test huge-diag.test ok1.test
like "$(json 'd["domains"][0]["observed"]["misbehave"]["error"]')" \
     "observe of huge-report.test broke the helper protocol \\(a message longer than 16 MiB\\)" \
     "a huge report is refused"
is "$(json 'len(d["domains"][1]["observed"]["misbehave"]["error"]) < 600')" True \
   "a huge diagnostic arrives cut to the summary's size"
is "$(json 'd["domains"][2]["observed"]["example"]["presence"]')" present "the next domain is observed"

# --- exit() in verify
run mm setup exit-verify.test --mode misbehave
like "$err" "plugin misbehave \\($MS\\): verify of exit-verify.test exited with status 7" \
     "an exit in verify is named with its status"

# --- resources failing, crashing or naming blank lines only: the shared
# locks cannot be taken, so setup does not start (nothing written)
for d in fail-resources crash-resources blank-resources; do
	run mm setup $d.test --mode misbehave
	is "$rc" 1 "$d: setup refused (exit 1)"
	like "$err" "misbehave: setup of $d.test not started: its shared resources are unknown" \
	     "$d: one line names the plugin, the call, the domain and why"
	is "$(test -e "$TEST_TMP/world/$d.test" && echo made)" "" "$d: nothing was made"
	is "$(db "SELECT count(*) FROM domains WHERE domain='$d.test' AND mode IS NOT NULL")" 0 \
	   "$d: the state has no mode for it"
done
like "$err" "its resources text has only blank lines" "blank lines only are not taken for no resources"

# --- abort() in doctor: its FAIL line names the crash, the others are checked
run mm doctor crash-doctor.test ok4.test --profile lab
is "$rc" 3 "doctor with a crashing plugin: exit 3 (a check failed)"
like "$out" "FAIL domain crash-doctor.test: misbehave checks: plugin misbehave \\($MS\\): doctor of crash-doctor.test crashed \\(signal 6, SIGABRT\\)" \
     "one FAIL line names the plugin, the call, the domain and the signal"
like "$out" "ok   domain ok4.test: files: misbehave_dir set" "the next domain's doctor runs in a fresh helper"
like "$out" "ok4.test: example mode" "a plugin without doctor is checked by validate and preflight"

# --- shared notes (ABI 1.6): kept in the state for the calls holding the
# resource's lock, forwarded from the helpers; refused in verify and for a
# resource the call does not hold
run mm setup note-a.test --mode misbehave
is "$rc" 0 "a setup adds its domain to the note (verify cannot read it; another resource's is refused)"
run mm setup note-b.test --mode misbehave
is "$rc:$(db "SELECT receipt FROM domains WHERE domain='note-b.test'")" '0:{"note":"note-a.test"}' \
   "the next setup, another command and helper, reads what the first left"
run mm setup note-c.test --mode misbehave
is "$rc:$(db "SELECT note FROM shared_notes WHERE resource = 'tenant notes' AND name = 'k'")" \
   "0:note-a.test,note-b.test,note-c.test" "the state holds all three"
is "$(db "SELECT count(*) FROM shared_notes WHERE resource = 'tenant other'")" 0 \
   "no note of a resource not held"
run mm setup note-d.test --mode misbehave --dry-run
is "$(db "SELECT domain FROM shared_notes WHERE resource = 'tenant notes'")" note-c.test \
   "a dry run leaves the note as it was"

# --- the debugging knob runs plugins in this process, stray output and all
run env MAILMODE_NO_ISOLATION=1 "$MAILMODE" --config "$CONF" --json status ok1.test
like "$out" "stray output on stdout" "MAILMODE_NO_ISOLATION=1 calls the plugin in the command's process"
is "$(helpers_left)" 0 "no helper outlives its command"
