#!/bin/sh
# mailflow: two domains of one tenant share the connectors and one
# transport rule (its RecipientDomainIs list); teardown of one keeps them;
# verify reports drift field by field and setup repairs it.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/mailflow/lib-mailflow.sh"

plan 25

mf_start
mf_tenant
mf_config secret

run mm setup contoso.test --mode mailflow --profile p1
is "$rc" 0 "setup of contoso.test"
run mm setup fabrikam.test --mode mailflow --profile p1
is "$rc" 0 "setup of fabrikam.test"
is "$(mf_counts)" "1 1 1" "the second domain shares the connectors and the rule: one of each"
is "$(mf_state '[(r["Name"], r["Priority"], r["RecipientDomainIs"]) for r in s["rules"]]')" \
	"[('mailmode route #1', 0, ['contoso.test', 'fabrikam.test'])]" \
	"the shared rule lists both domains, at priority 0"
run mm verify contoso.test
is "$rc" 0 "contoso.test verifies"
run mm verify fabrikam.test
is "$rc" 0 "fabrikam.test verifies"

run mm teardown contoso.test --dry-run
like "$out" "connectors 'mailmode outbound to sophos' and 'mailmode inbound from sophos' stay: still used by 'mailmode route #1'" \
	"the teardown plan keeps the connectors in use"
like "$out" "^  Set-TransportRule -RecipientDomainIs 'fabrikam.test' .*-Identity 'mailmode route #1'$" \
	"and takes the domain out of the shared rule, not the rule away"
run mm teardown contoso.test
is "$rc" 0 "teardown of contoso.test"
is "$(mf_counts) $(mf_state 'names("rules")') $(mf_state 's["rules"][0]["RecipientDomainIs"]')" "1 1 1 mailmode route #1 ['fabrikam.test']" \
	"teardown of the first domain kept the connectors and the rule, without the domain"
run mm verify fabrikam.test
is "$rc" 0 "fabrikam.test still verifies"

# --- drift, made by another admin
mf_invoke Set-TransportRule '{"Identity":"mailmode route #1","Mode":"Audit"}'
mf_invoke Set-OutboundConnector '{"Identity":"mailmode outbound to sophos","TlsDomain":"other.example.net"}'
mf_invoke Set-InboundConnector '{"Identity":"mailmode inbound from sophos","RequireTls":false}'
run mm verify fabrikam.test
is "$rc" 3 "verify fails on drift (exit 3)"
like "$err" "differs from profile p1 in 3 field\\(s\\)" "the summary counts the differing fields"
like "$err" "transport rule 'mailmode route #1' Mode: have 'Audit', want 'Enforce'" \
	"the rule's Mode is named"
like "$err" "outbound connector 'mailmode outbound to sophos' TlsDomain: have 'other.example.net', want 'mf-outbound-eu-west-1.prod.hydra.sophos.com'" \
	"the outbound connector's TlsDomain is named"
like "$err" "inbound connector 'mailmode inbound from sophos' RequireTls: have False, want True" \
	"the inbound connector's RequireTls is named"
run mm --json status fabrikam.test
like "$out" '"presence":[[:space:]]*"partial"' "status shows the mode as partial"

mf_invoke Disable-TransportRule '{"Identity":"mailmode route #1"}'
mf_invoke New-TransportRule '{"Name":"Admin banner","Priority":0,"SetHeaderName":"X-Banner","SetHeaderValue":"1"}'
run mm verify fabrikam.test
like "$err" "State: have 'Disabled', want 'Enabled'" "a disabled rule is named"
like "$err" "Priority: have 1, want above every other rule \\(rule 'Admin banner' has 0\\)" \
	"a rule put above ours is named"

mf_reset_log
run mm setup fabrikam.test --mode mailflow --profile p1
is "$rc" 0 "setup again repairs the drift"
is "$(mf_requests '",".join(x["cmdlet"] for x in r if not x["cmdlet"].startswith("Get-"))')" \
	"Set-InboundConnector,Set-OutboundConnector,Set-TransportRule,Enable-TransportRule" \
	"by updating the objects in place"
run mm verify fabrikam.test
is "$rc" 0 "and verify passes again"
is "$(mf_state '[(r["Name"], r["Priority"]) for r in s["rules"]]')" \
	"[('mailmode route #1', 0), ('Admin banner', 1)]" "our rule is back on top"

run mm teardown fabrikam.test
is "$rc" 0 "teardown of the last domain"
is "$(mf_counts) $(mf_state 'names("rules")')" "0 0 1 Admin banner" \
	"removes the connectors with the last rule, and only what is ours"
