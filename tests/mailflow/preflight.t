#!/bin/sh
# mailflow: what setup checks before it changes anything: accepted domain,
# conflicting transport rules (refused with exit 4 unless
# --accept-conflict NAME for each), outbound connectors (one for * that is
# not rule-scoped carries mail leaving the organization: only noted; one
# naming the domain or a parent conflicts), dormant tenant, tenant without
# inbound connectors.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/mailflow/lib-mailflow.sh"

plan 42

mf_start
# Seeded rules, in priority order: two conflict for contoso.test, four do
# not (header only, disabled, another domain, audit mode).  Outbound
# connectors: one rule-scoped, one for * (outbound via a SEG).
mf_tenant '{
 "outbound_connectors": [{"Name": "SEG outbound", "ConnectorType": "Partner",
   "SmartHosts": ["seg.example.net"], "UseMXRecord": false, "IsTransportRuleScoped": true},
  {"Name": "Outbound via SEG", "ConnectorType": "Partner", "RecipientDomains": ["*"],
   "SmartHosts": ["seg.example.net"], "UseMXRecord": false, "IsTransportRuleScoped": false}],
 "rules": [
  {"Name": "Route to SEG", "Priority": 0, "RecipientDomainIs": ["contoso.test"],
   "RouteMessageOutboundConnector": "SEG outbound"},
  {"Name": "Avanan - Protect", "Priority": 1, "SentToScope": "InOrganization", "SetSCL": -1},
  {"Name": "Disclaimer", "Priority": 2, "SetHeaderName": "X-Disclaimer", "SetHeaderValue": "yes"},
  {"Name": "Old delete rule", "Priority": 3, "DeleteMessage": true, "State": "Disabled"},
  {"Name": "Fabrikam quarantine", "Priority": 4, "RecipientDomainIs": ["fabrikam.test"],
   "Quarantine": true},
  {"Name": "Audit stop", "Priority": 5, "Mode": "Audit", "StopRuleProcessing": true}]}'
mf_config secret
rules_before=$(mf_state 'names("rules")')

# --- not an accepted domain
run mm setup northwind.test --mode mailflow --profile p1
is "$rc" 1 "a domain the tenant does not accept is refused (exit 1)"
like "$err" "northwind.test is not an accepted domain of tenant contoso.onmicrosoft.com \\(accepted: contoso.test, fabrikam.test, contoso.onmicrosoft.com\\)" \
	"the refusal names the accepted domains"
is "$(mf_counts)" "0 2 6" "nothing was created"
run mm setup contoso.onmicrosoft.com --mode mailflow --profile p1
like "$rc $(printf '%s' "$err" | tr '\n' ' ')" "^1 .*Microsoft-managed domain" \
	"the tenant's onmicrosoft.com domain is refused"

# --- conflicts
run mm setup contoso.test --mode mailflow --profile p1
is "$rc" 4 "conflicting rules refuse setup (exit 4)"
like "$err" "2 existing object\\(s\\) of tenant contoso.onmicrosoft.com conflict with mailflow mode for contoso.test" \
	"the summary counts the conflicts"
like "$err" "transport rule 'Route to SEG' \\(priority 0\\) routes to connector 'SEG outbound' for contoso.test" \
	"a rule routing the domain elsewhere is listed"
like "$err" "transport rule 'Avanan - Protect' .*known mail-routing rule of another service" \
	"another vendor's known rule is listed"
ok $(printf '%s' "$err" | grep -Eq "Disclaimer|Old delete rule|Fabrikam quarantine|Audit stop"; [ $? -ne 0 ]; echo $?) \
	"header-only, disabled, other-domain and audit-mode rules are not conflicts"
unlike "$(printf '%s' "$err" | grep -v "not a conflict")" "Outbound via SEG" \
	"the outbound connector for * (not rule-scoped) is not a conflict"
like "$err" "transport rule 'Route to SEG' .*\(to accept it: --accept-conflict 'Route to SEG'\)" \
	"each conflicting object is named with the option that accepts it"
like "$err" "--accept-conflict NAME" "the way forward is named"
is "$(mf_counts) $(mf_state 'names("rules")')" "0 2 6 $rules_before" "a refused setup changed nothing"

run mm setup contoso.test --mode mailflow --profile p1 --dry-run
is "$rc" 4 "the dry run refuses the same way"

run mm setup contoso.test --mode mailflow --profile p1 --accept-conflicts
like "$rc $(printf "%s" "$err" | tr "\n" " ")" "^2 .*--accept-conflicts is gone: name each conflicting object you accept with --accept-conflict NAME" \
	"the old blanket option is refused with the new one named (usage, exit 2)"
run mm setup contoso.test --mode mailflow --profile p1 --accept-conflict 'route to seg'
is "$rc" 4 "accepting one conflict by name (any case) still refuses for the other"
like "$err" "1 existing object\\(s\\) of tenant contoso.onmicrosoft.com conflict" "only the other one counts"
like "$err" "transport rule 'Avanan - Protect'.*\(to accept it: --accept-conflict 'Avanan - Protect'\)" \
	"and it is named, with the option that accepts it"
unlike "$err" "Route to SEG" "the accepted one is not among the refusals"
is "$(mf_counts) $(mf_state 'names("rules")')" "0 2 6 $rules_before" "that refusal changed nothing either"
run mm setup contoso.test --mode mailflow --profile p1 --accept-conflict 'Route to SEG' \
	--accept-conflict 'Avanan - Protect'
is "$rc" 0 "accepting both by name lets setup through"
is "$(sqlite3 "$MF_STATE" "select json_extract(options, '\$.accept_conflicts') from migrations order by id desc limit 1")" \
	'["Route to SEG","Avanan - Protect"]' "the migration journals the accepted names, for resume"
like "$err" "accepted conflict: transport rule 'Route to SEG'" "the accepted conflicts are still reported"
like "$err" "warning: outbound connector 'Outbound via SEG' \(RecipientDomains \*, not rule-scoped\) carries mail leaving the organization, not mail for contoso.test: not a conflict" \
	"the * connector is reported as information"
is "$(mf_state 'names("rules")')" "mailmode route contoso.test,$rules_before" \
	"our rule is first; the others keep their order below it"
is "$(mf_state '[r["Priority"] for r in s["rules"]]')" "[0, 1, 2, 3, 4, 5, 6]" "priorities stay contiguous"
run mm verify contoso.test
is "$rc" 0 "verify passes: our rule is above every other rule"
run mm teardown contoso.test
is "$rc" 0 "teardown succeeds"
is "$(mf_counts) $(mf_state 'names("rules")')" "0 2 6 $rules_before" \
	"teardown left the tenant's own rules and connectors as they were"

# --- an outbound connector naming the domain carries its mail: a conflict
mf_invoke New-OutboundConnector '{"Name": "Contoso relay", "ConnectorType": "Partner",
 "RecipientDomains": ["contoso.test"], "SmartHosts": ["relay.example.net"], "UseMXRecord": false,
 "IsTransportRuleScoped": false}' >/dev/null
run mm setup contoso.test --mode mailflow --profile p1 --accept-conflict 'Route to SEG' \
	--accept-conflict 'Avanan - Protect'
is "$rc" 4 "an outbound connector for contoso.test itself refuses setup"
like "$err" "1 existing object\\(s\\) of tenant contoso.onmicrosoft.com conflict" "it is the one conflict"
like "$err" "outbound connector 'Contoso relay' carries all mail for contoso.test \(RecipientDomains, not rule-scoped\) \(to accept it: --accept-conflict 'Contoso relay'\)" \
	"named, with the option that accepts it"
is "$(mf_counts)" "0 3 6" "nothing was created"
mf_invoke Remove-OutboundConnector '{"Identity": "Contoso relay", "Confirm": false}' >/dev/null

# --- dormant tenant
emu_ctl PATCH "/_emu/tenants/$MF_TENANT_ID" '{"dehydrated": true}' >/dev/null
run mm setup fabrikam.test --mode mailflow --profile p1 --accept-conflict 'Avanan - Protect' --accept-conflict 'Fabrikam quarantine'
is "$rc" 1 "a dormant tenant fails setup (exit 1)"
like "$err" "tenant contoso.onmicrosoft.com is dormant \\(dehydrated\\)" "the tenant is named dormant"
like "$err" "Enable-OrganizationCustomization" "and the remedy is given"
emu_ctl PATCH "/_emu/tenants/$MF_TENANT_ID" '{"dehydrated": false}' >/dev/null

# --- a subscription without inbound connectors
emu_ctl PATCH "/_emu/tenants/$MF_TENANT_ID" '{"inbound_connectors_allowed": false}' >/dev/null
run mm setup fabrikam.test --mode mailflow --profile p1 --accept-conflict 'Avanan - Protect' --accept-conflict 'Fabrikam quarantine'
is "$rc" 3 "a tenant that cannot create inbound connectors fails setup (rolled back: exit 3)"
like "$err" "tenant contoso.onmicrosoft.com cannot create inbound connectors" "with a clear message"
is "$(mf_counts)" "0 2 6" "before anything was created"
emu_ctl PATCH "/_emu/tenants/$MF_TENANT_ID" '{"inbound_connectors_allowed": true}' >/dev/null
run mm setup fabrikam.test --mode mailflow --profile p1 --accept-conflict 'Avanan - Protect' --accept-conflict 'Fabrikam quarantine'
is "$rc" 0 "once allowed, setup succeeds"

# --- a cmdlet error: ErrId|ExceptionType|Text in the diagnostic
sed 's/^smart_hosts = .*/smart_hosts = bad_host!/' "$MF_CONF" >"$MF_CONF.new" && mv "$MF_CONF.new" "$MF_CONF"
run mm setup contoso.test --mode mailflow --profile p1 --accept-conflict 'Avanan - Protect' --accept-conflict 'Route to SEG'
like "$rc $(printf '%s' "$err" | tr '\n' ' ')" "^3 .*Set-OutboundConnector 'mailmode outbound to sophos' failed in tenant contoso.onmicrosoft.com: Cannot bind parameter 'SmartHosts'" \
	"a refused cmdlet is named with the object and Exchange's text"
like "$err" "ExceptionType: [A-Za-z.]+Exception" "the exception type is in the details"
