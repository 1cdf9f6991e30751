#!/bin/sh
# Gateway mode's outgoing mail (outbound = yes; doc/gateway-tenant.md,
# "Outgoing mail"), through the emulator and the mail-path simulator:
# fabrikam.test switches mailflow -> gateway -> mailflow while a mailbox of
# the domain sends to the internet.  The plan names the outbound connector
# and its rule; in gateway mode both are there as set up (Partner, the
# service's outbound smart host, DomainValidation, rule-scoped; the rule
# FromScope InOrganization, SentToScope NotInOrganization, SenderDomainIs
# the domain), and every message sent then leaves through the service's
# outbound host, scanned once, never straight from the tenant; mailflow's
# own connectors go with its teardown, the gateway's outgoing objects with
# gateway mode's.  No outgoing message is lost, duplicated or scanned twice
# across both switches.  The emulator refuses an outbound connector
# without smart hosts when UseMXRecord is $false, as Exchange does.
. "$top_srcdir/tests/mailpath/outbound-lib.sh"
plan 16

# tenant EXPR: EXPR over the tenant's state (d).
tenant() { emu_get "/_emu/tenants/$TENANT" | jpy "$1"; }
out_conn() {
	tenant "[[c['ConnectorType'], c['SmartHosts'], c['UseMXRecord'], c['TlsSettings'], c['TlsDomain'], c['IsTransportRuleScoped']] for c in d['outbound_connectors'] if c['Name'] == '$OUT']"
}
out_rule() {
	tenant "[[r['FromScope'], r['SentToScope'], r['SenderDomainIs'], r['RouteMessageOutboundConnector'], r['State']] for r in d['rules'] if r['Name'] == '$OUT']"
}

run mm -q setup $D --mode mailflow $FAST
is "$rc" 0 "$D set up in mailflow mode"

run mm switch $D --to gateway --dry-run
like "$out" "before the MX: New-OutboundConnector -Name '$OUT' -ConnectorType Partner -SmartHosts out.gw.sandbox.test -UseMXRecord .false -TlsSettings DomainValidation -TlsDomain out.gw.sandbox.test -IsTransportRuleScoped .true" \
	"the plan makes the outbound connector"
like "$out" "before the MX: New-TransportRule -Name '$OUT' -Priority 0 -FromScope InOrganization -SentToScope NotInOrganization -SenderDomainIs $D -RouteMessageOutboundConnector '$OUT'" \
	"and the rule that routes the domain's outgoing mail to it"

out_sender_start out
sleep 1
run mm -q switch $D --to gateway $FAST
is "$rc" 0 "mailflow -> gateway with outbound = yes: switched"
VIA_FROM=$(now)
is "$(out_conn)" '[["Partner", ["out.gw.sandbox.test"], false, "DomainValidation", "out.gw.sandbox.test", true]]' \
	"the outbound connector: Partner, the service's outbound host, no MX, DomainValidation, rule-scoped"
is "$(out_rule)" "[[\"InOrganization\", \"NotInOrganization\", [\"$D\"], \"$OUT\", \"Enabled\"]]" \
	"the rule: the domain's mail to outside the organization, to that connector"
is "$(tenant "sorted(c['Name'] for c in d['outbound_connectors'])")" "[\"$OUT\"]" \
	"mailflow's outbound connector went with its teardown; the gateway's stays"
run mm status $D
is "$rc" 0 "status: one mode, no drift"
run mm doctor $D
like "$out" "ok +service sandbox-service: outbound smart hosts resolve" "doctor: the outbound smart hosts resolve"
like "$out" "ok +\[tenant sandbox-tenant\]: gateway tenant answers.*outbound connector and rule '$OUT'" \
	"doctor: the tenant answers for the gateway's objects"
sleep 2
VIA_UNTIL=$(now)

run mm -q switch $D --to mailflow $FAST
is "$rc" 0 "gateway -> mailflow: switched"
is "$(out_conn) $(out_rule)" "[] []" "gateway mode's outbound connector and rule are gone"
is "$(tenant "sorted(c['Name'] for c in d['outbound_connectors'])")" '["mailmode outbound to sandbox-service"]' \
	"mailflow's own outbound connector is back"
sleep 1
out_sender_stop out
verdict=$(out_oracle out "$VIA_FROM" "$VIA_UNTIL")
diag "$verdict"
via=$("$PYTHON3" -c 'import json, sys
print(sum(1 for x in open(sys.argv[1]) if json.loads(x)["path"] == "outbound"))' "$SCANS")
diag "scanned on the outbound host: $via"
like "$verdict" \
	"^sent [1-9][0-9]* lost 0 duplicated 0 scanned-twice 0 direct-while-gateway 0 errors 0$" \
	"outgoing mail: none lost, none duplicated or scanned twice; in gateway mode all through the service"

# The emulator as Exchange: no smart host with UseMXRecord $false.
out=$(mailsim invoke --sandbox "$SB" New-OutboundConnector '{"Name":"x","UseMXRecord":false}' 2>&1)
like "$out" "SmartHosts can't be empty when UseMXRecord is false" \
	"New-OutboundConnector without SmartHosts and UseMXRecord \$false is refused"

run mm -q teardown $D $FAST
is "$rc $(tenant "len(d['outbound_connectors'])")" "0 0" "teardown: nothing left"
