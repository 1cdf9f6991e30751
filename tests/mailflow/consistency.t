#!/bin/sh
# mailflow: eventual consistency between domains of one tenant.  The
# first domain's setup makes the shared rule; the second, set up before
# that rule is listed, gets "already exists" from New-TransportRule: the
# rule is not ready yet, so setup waits for it to be listed and joins it
# (never a failure rolled back, never a second rule).
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/mailflow/lib-mailflow.sh"

plan 10

mf_start
mf_tenant '{"accepted_domains": ["contoso.test", "fabrikam.test", "adatum.test"]}'
mf_config secret

# --- two commands, one right after the other, every change 3 s late
emu_ctl POST /_emu/config '{"consistency_delay_s": 3}' >/dev/null
run mm setup contoso.test --mode mailflow --profile p1 --no-wait
is "$rc" 0 "the first domain's setup makes the connectors and the rule"
is "$(mf_requests 'sum(1 for x in r if x["cmdlet"] == "New-InboundConnector")') $(mf_requests 'sum(1 for x in r if x["cmdlet"] == "New-OutboundConnector")') $(sqlite3 "$MF_STATE" "SELECT count(*) > 0 FROM journal WHERE step = 'setup_new' AND phase = 'attempt'")" \
	"1 1 1" "it waited for the connectors (setup called again), but sent each New- once"
mf_reset_log
run mm setup fabrikam.test --mode mailflow --profile p1 --no-wait
is "$rc" 0 "the second domain's setup, while the rule is not listed yet, succeeds"
is "$(mf_requests 'sum(1 for x in r if x["cmdlet"] == "New-TransportRule" and x["status"] == 200)') $(mf_requests 'min(1, sum(1 for x in r if x["cmdlet"] == "New-TransportRule"))') $(mf_requests 'sum(1 for x in r if x["cmdlet"] == "Set-TransportRule")')" \
	"0 1 1" "it tried to make the rule (refused: it exists), then joined it once listed"
is "$(mf_counts) $(mf_members 'mailmode route #1')" "1 1 1 contoso.test,fabrikam.test" \
	"one rule of each, listing both domains"
is "$(sqlite3 "$MF_STATE" "SELECT coalesce(mode, '') FROM domains WHERE domain='fabrikam.test'")" \
	mailflow "the second domain is switched, not rolled back"

sleep 3
emu_ctl POST /_emu/config '{"consistency_delay_s": 0}' >/dev/null
run mm teardown fabrikam.test
run mm teardown contoso.test
is "$(mf_counts)" "0 0 0" "both torn down"

# --- a runbook: the two domains one after the other (parallel = 1)
cat >"$TEST_TMP/rb.ini" <<'RUNBOOK'
[runbook]
parallel = 1
verify_timeout = 60s
poll_interval = 200ms

[domains]
fabrikam.test = mailflow p1
adatum.test = mailflow p1
RUNBOOK
emu_ctl POST /_emu/config '{"consistency_delay_s": 3}' >/dev/null
run mm runbook run "$TEST_TMP/rb.ini"
is "$rc" 0 "a runbook of two domains of the tenant, each change late to show, succeeds"
sleep 3
is "$(mf_counts) $(mf_members 'mailmode route #1' | tr , '\n' | sort | paste -sd, -)" "1 1 1 adatum.test,fabrikam.test" \
	"one rule listing both (in either order: the waits overlap)"
is "$(sqlite3 "$MF_STATE" "SELECT count(*) FROM domains WHERE mode='mailflow'")" 2 \
	"both domains are switched"
