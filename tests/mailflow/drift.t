#!/bin/sh
# mailflow, issue 11 class 7: verify is exact.  Anything changed on
# mailmode's rule or connectors behind its back (an exception, condition
# or action added, a priority changed, a connector disabled or widened)
# is drift: verify fails (exit 3, not retried), status reports it (exit
# 4), each naming the field.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/mailflow/lib-mailflow.sh"

plan 20
RULE="mailmode route #1"

mf_start
mf_tenant
mf_config secret
run mm setup contoso.test --mode mailflow --profile p1
run mm verify contoso.test
is "$rc" 0 "set up and verified"

# drift CHANGE-DESCRIPTION FIELD-REGEX: verify and status name the field
drift() {
	run mm verify contoso.test
	is "$rc" 3 "$1: verify fails (exit 3)"
	like "$err" "$2" "$1: verify names the field"
	run mm --json status contoso.test
	like "$rc $(printf '%s' "$out" | tr '\n\t' '  ')" "^4 .*\"presence\": *\"partial\".*$2" \
		"$1: status exits 4, partial, naming it"
}

mf_invoke Set-TransportRule "{\"Identity\":\"$RULE\",\"ExceptIfSenderDomainIs\":[\"partner.test\"]}"
drift "an exception added to the rule" "ExceptIfSenderDomainIs"
mf_invoke Set-TransportRule "{\"Identity\":\"$RULE\",\"ExceptIfSenderDomainIs\":null}"
run mm verify contoso.test
is "$rc" 0 "the exception removed: verified again"

mf_invoke Set-TransportRule "{\"Identity\":\"$RULE\",\"StopRuleProcessing\":true}"
drift "an action added to the rule" "StopRuleProcessing"
mf_invoke Set-TransportRule "{\"Identity\":\"$RULE\",\"StopRuleProcessing\":false}"

mf_invoke Set-TransportRule "{\"Identity\":\"$RULE\",\"SentToScope\":\"InOrganization\"}"
drift "a condition added to the rule" "SentToScope"
mf_invoke Set-TransportRule "{\"Identity\":\"$RULE\",\"SentToScope\":null}"

mf_invoke New-TransportRule '{"Name":"Disclaimer","Priority":0,"SetHeaderName":"X-Disclaimer","SetHeaderValue":"yes"}'
drift "another rule put above mailmode's" "Priority"
mf_invoke Remove-TransportRule '{"Identity":"Disclaimer","Confirm":false}'

mf_invoke Set-InboundConnector '{"Identity":"mailmode inbound from sophos","SenderIPAddresses":["192.0.2.0/24"]}'
drift "an inbound connector widened to an IP range" "SenderIPAddresses"
mf_invoke Set-InboundConnector '{"Identity":"mailmode inbound from sophos","SenderIPAddresses":[]}'

mf_invoke Set-OutboundConnector '{"Identity":"mailmode outbound to sophos","Enabled":false}'
drift "the outbound connector disabled" "Enabled"
