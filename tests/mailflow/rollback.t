#!/bin/sh
# mailflow, issue 11 class 5: a setup that fails part way is rolled back
# completely.  The plugin checkpoints each object before it creates it, so
# the rollback's teardown knows the connectors this attempt made and
# removes them, unless another of the tenant's rules still routes through
# them; it reports success only when they are gone.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/mailflow/lib-mailflow.sh"

plan 12

mf_start
mf_tenant
mf_config secret
FAST="--poll-interval 200ms --verify-timeout 10s"
REFUSED='{"kind":"error","cmdlet":"New-TransportRule","etype":"Microsoft.Exchange.Management.Tasks.InvalidTransportRuleException","text":"The transport rule could not be created: the action RouteMessageOutboundConnector is not valid for this organization."}'

# --- the rule is refused after both connectors were made
emu_ctl POST /_emu/faults "$REFUSED" >/dev/null
run mm switch contoso.test --to mailflow $FAST
emu_ctl DELETE /_emu/faults >/dev/null
ok $([ "$rc" -ne 0 ]; echo $?) "a switch whose rule is refused fails (exit $rc)"
like "$err" "New-TransportRule .*failed .*not valid for this organization" "naming the refused cmdlet and Exchange's reason"
is "$(mf_counts)" "0 0 0" "the rollback removed both connectors it had made (the inbound one trusts the service)"
is "$(sqlite3 "$MF_STATE" "SELECT count(*) FROM domains WHERE mode IS NOT NULL")" "0" "no mode recorded"
is "$(sqlite3 "$MF_STATE" "SELECT result FROM migrations ORDER BY id DESC LIMIT 1")" "rolled_back" "the migration is rolled back"

# --- the outbound connector is refused after the inbound one was made
mf_tenant    # each case starts from an empty tenant
emu_ctl POST /_emu/faults '{"kind":"error","cmdlet":"New-OutboundConnector","text":"The smart host could not be validated."}' >/dev/null
run mm switch contoso.test --to mailflow $FAST
emu_ctl DELETE /_emu/faults >/dev/null
ok $([ "$rc" -ne 0 ]; echo $?) "a switch whose outbound connector is refused fails"
is "$(mf_counts)" "0 0 0" "the inbound connector it had made is removed"

# --- shared connectors stay while another domain's rule uses them; the
# domain joins fabrikam.test's rule, and that write is refused
mf_tenant
run mm setup fabrikam.test --mode mailflow --profile p1
is "$rc" 0 "fabrikam.test set up in mailflow mode"
emu_ctl POST /_emu/faults "$(printf '%s' "$REFUSED" | sed 's/New-TransportRule/Set-TransportRule/')" >/dev/null
run mm switch contoso.test --to mailflow $FAST
emu_ctl DELETE /_emu/faults >/dev/null
ok $([ "$rc" -ne 0 ]; echo $?) "contoso.test's switch fails on its rule"
is "$(mf_counts) $(mf_state 'names("rules")') $(mf_state 's["rules"][0]["RecipientDomainIs"]')" \
	"1 1 1 mailmode route #1 ['fabrikam.test']" \
	"the connectors and the rule fabrikam.test uses stay; nothing of contoso.test is left"
run mm verify fabrikam.test
is "$rc" 0 "fabrikam.test still verifies"
run mm teardown fabrikam.test
is "$(mf_counts)" "0 0 0" "and its teardown removes the connectors"
