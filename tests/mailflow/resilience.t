#!/bin/sh
# mailflow: throttling (429 storm, throttle text, exhausted budget),
# eventual consistency (setup waits for its connector, verify reports "not
# yet" and then passes), and setup interrupted after the connectors and
# before the rule (dropped answer; process killed), resumed without
# duplicates.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/mailflow/lib-mailflow.sh"

plan 25

mf_start
mf_tenant
mf_config secret

# --- a storm of 429s, within the retry budget
emu_ctl POST /_emu/faults '{"kind":"429","count":4,"retry_after":1}' >/dev/null
mf_reset_log
run mm setup contoso.test --mode mailflow --profile p1
is "$rc" 0 "setup survives four 429 answers"
is "$(mf_stat faults_injected) $(mf_requests 'sum(1 for x in r if x["status"] == 429)')" "4 4" \
	"all four were answered with 429 and Retry-After"
is "$(mf_counts)" "1 1 1" "and the objects exist once"

emu_ctl POST /_emu/faults '{"kind":"throttle_text","count":1,"cmdlet":"Get-TransportRule"}' >/dev/null
run mm verify contoso.test
is "$rc" 0 "a throttle told in the body text (HTTP 400) is waited out too"
run mm teardown contoso.test
is "$rc" 0 "teardown"

# --- the budget runs out
mf_config secret "retry_budget_ms = 2500"
emu_ctl POST /_emu/faults '{"kind":"503","count":50,"retry_after":1,"cmdlet":"Get-OrganizationConfig"}' >/dev/null
run mm setup contoso.test --mode mailflow --profile p1
is "$rc" 1 "setup gives up when the retry budget is spent"
like "$err" "Get-OrganizationConfig failed in tenant contoso.onmicrosoft.com" "naming the cmdlet"
like "$err" "still throttled or unavailable after [0-9]+ attempt" "and the retries made"
is "$(mf_counts)" "0 0 0" "nothing was created"
emu_ctl DELETE /_emu/faults >/dev/null
mf_config secret

# --- eventual consistency
emu_ctl POST /_emu/config '{"consistency_delay_s": 3}' >/dev/null
mf_reset_log
run mm setup contoso.test --mode mailflow --profile p1 --no-wait
is "$rc" 0 "setup succeeds while new objects take 3 s to become visible"
ok $([ "$(mf_requests 'sum(1 for x in r if x["cmdlet"] == "New-TransportRule")')" -gt 1 ]; echo $?) \
	"the rule was retried until its connector became visible"
run mm verify contoso.test
is "$rc" 3 "verify right after setup: not in effect yet (exit 3)"
like "$err" "not in effect yet: [0-9] of 3 objects not visible" "reported as not visible yet, not as a mismatch"
tries=1
while [ "$rc" -eq 3 ] && [ $tries -lt 20 ]; do
	sleep 1
	run mm verify contoso.test
	tries=$((tries + 1))
done
is "$rc" 0 "verify passes once the objects are visible ($tries tries)"
run mm teardown contoso.test
is "$rc" 0 "teardown"
sleep 3
emu_ctl POST /_emu/config '{"consistency_delay_s": 0}' >/dev/null
is "$(mf_counts)" "0 0 0" "teardown removed everything"

# --- interrupted: the rule's answer is lost
# Twice: libcurl itself resends once when a reused connection dies.
emu_ctl POST /_emu/faults '{"kind":"drop","count":2,"cmdlet":"New-TransportRule"}' >/dev/null
run mm setup contoso.test --mode mailflow --profile p1
emu_ctl DELETE /_emu/faults >/dev/null
is "$rc" 1 "setup fails when New-TransportRule gets no answer"
like "$err" "New-TransportRule: no answer from the admin API .*may or may not have been made" \
	"the outcome is reported as unknown"
is "$(mf_counts)" "1 1 0" "the connectors exist, the rule does not"
# The rule's outcome is unknown: resume finishes the setup (or rolls it
# back, calling the rule gone only after the visibility window, 3 s here).
mf_config secret "visibility_window_ms = 3000"
run mm resume contoso.test
mf_reset_log
run mm setup contoso.test --mode mailflow --profile p1
is "$rc" 0 "resume finishes it; setup run again succeeds"
is "$(mf_counts)" "1 1 1" "one of each object: nothing duplicated"
run mm teardown contoso.test

# --- interrupted: the process is killed while the rule is being made
emu_ctl POST /_emu/faults '{"kind":"slow","count":1,"cmdlet":"New-TransportRule","delay_ms":3000}' >/dev/null
mf_reset_log
mm setup contoso.test --mode mailflow --profile p1 >"$TEST_TMP/bg.out" 2>&1 &
setup_pid=$!
waited=0
while [ "$(emu_ctl GET /_emu/stats | "$PYTHON3" -c 'import json,sys; print(json.load(sys.stdin)["requests_by_cmdlet"].get("New-TransportRule", 0))')" = 0 ] &&
	[ $waited -lt 100 ]; do
	sleep 0.1
	waited=$((waited + 1))
done
kill -9 $setup_pid 2>/dev/null
wait $setup_pid 2>/dev/null
killed_rc=$?
is "$killed_rc" 137 "setup killed while New-TransportRule was in flight"
sleep 3.5   # the emulator finishes the slow request
run mm resume contoso.test
[ "$(sqlite3 "$MF_STATE" "SELECT coalesce(mode, '') FROM domains WHERE domain='contoso.test'")" = mailflow ] ||
	run mm setup contoso.test --mode mailflow --profile p1
is "$rc" 0 "resume (and setup, when resume rolled back) after the kill succeeds"
is "$(mf_counts)" "1 1 1" "one connector of each and one rule: nothing duplicated"
run mm verify contoso.test
is "$rc" 0 "and verifies"
