#!/bin/sh
# mailflow: plan, setup, verify and teardown against the Microsoft 365
# emulator; the tenant's resulting objects, the wire format, paging, and
# the number of admin API calls of one setup+verify+teardown.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/mailflow/lib-mailflow.sh"

plan 37

mf_start --page-size 1
mf_tenant
mf_config secret

# --- plan: the exact cmdlets, nothing changed
run mm setup contoso.test --mode mailflow --profile p1 --dry-run
is "$rc" 0 "setup --dry-run succeeds"
like "$out" "New-InboundConnector -Name 'mailmode inbound from sophos' -ConnectorType 'OnPremises' -SenderDomains '\\*' -RequireTls:\\\$true -TlsSenderCertificateName '\\*.prod.hydra.sophos.com'" \
	"plan: the inbound connector with its parameters"
like "$out" "New-OutboundConnector -Name 'mailmode outbound to sophos' .*-SmartHosts 'mf-outbound-eu-west-1.prod.hydra.sophos.com' .*-TlsSettings 'DomainValidation' .*-IsTransportRuleScoped:\\\$true" \
	"plan: the outbound connector with its parameters"
like "$out" "New-TransportRule -Name 'mailmode route #1' -Priority 0 -RecipientDomainIs 'contoso.test' -RouteMessageOutboundConnector 'mailmode outbound to sophos' -ExceptIfSenderIpRanges '192.0.2.0/24','2001:db8::/32'" \
	"plan: the rule at priority 0, excepting the service's addresses"
is "$(mf_counts)" "0 0 0" "plan changed nothing in the tenant"
run mm --json setup contoso.test --mode mailflow --profile p1 --dry-run
plan_json=$out
is "$(printf '%s' "$plan_json" | "$PYTHON3" -c '
import json, sys
d = json.load(sys.stdin)
print([(a["change"], a["object"], a["cmdlet"], a["shared"]) for a in d["plan"][0]["actions"] if "cmdlet" in a],
      [(c["change"], c["object"], c["count"]) for s in d["summary"]["shared"] for c in s["changes"]])')" \
	"[('create', 'inbound connector', 'New-InboundConnector', 'tenant $MF_TENANT'), ('create', 'outbound connector', 'New-OutboundConnector', 'tenant $MF_TENANT'), ('create', 'transport rule', 'New-TransportRule', 'tenant $MF_TENANT')] [('create', 'inbound connector', 1), ('create', 'outbound connector', 1), ('create', 'transport rule', 1)]" \
	"--json plan: each cmdlet an action of the tenant's shared objects; the summary counts them"

# --- setup
mf_reset_log
run mm --json setup contoso.test --mode mailflow --profile p1
is "$rc" 0 "setup succeeds"
setup_out=$out
# What setup sent, cmdlet by cmdlet, is what the plan said it would send.
is "$(printf '%s' "$plan_json" | "$PYTHON3" -c '
import json, sys
planned = [(a["cmdlet"], a["parameters"]) for a in json.load(sys.stdin)["plan"][0]["actions"] if "cmdlet" in a]
sent = [(b["CmdletInput"]["CmdletName"], b["CmdletInput"].get("Parameters") or {})
        for b in (x["body"] if isinstance(x["body"], dict) else json.loads(x["body"]) for x in json.loads(sys.argv[1]))
        if not b["CmdletInput"]["CmdletName"].startswith("Get-")]
print("same" if planned == sent else "planned %r, sent %r" % (planned, sent))' "$(emu_ctl GET '/_emu/requests?kind=invoke')")" \
	"same" "setup sent exactly the cmdlets and parameters objects of the JSON plan"
like "$err" "contoso.onmicrosoft.com\\) is not covered" "setup warns that the onmicrosoft.com domain is not covered"
is "$(mf_counts)" "1 1 1" "tenant has one inbound, one outbound connector and one rule"
is "$(mf_state '[(o["ConnectorType"], o["SmartHosts"], o["UseMXRecord"], o["TlsSettings"], o["TlsDomain"], o["IsTransportRuleScoped"], o["Enabled"]) for o in s["outbound_connectors"]]')" \
	"[('OnPremises', ['mf-outbound-eu-west-1.prod.hydra.sophos.com'], False, 'DomainValidation', 'mf-outbound-eu-west-1.prod.hydra.sophos.com', True, True)]" \
	"outbound connector: OnPremises, smart host, TLS domain validation, rule-scoped"
is "$(mf_state '[(o["ConnectorType"], o["SenderDomains"], o["RequireTls"], o["TlsSenderCertificateName"], o["Enabled"]) for o in s["inbound_connectors"]]')" \
	"[('OnPremises', ['smtp:*;1'], True, '*.prod.hydra.sophos.com', True)]" \
	"inbound connector: TLS required, the service's certificate name"
is "$(mf_state '[(o["Name"], o["Priority"], o["State"], o["Mode"], o["RecipientDomainIs"], o["RouteMessageOutboundConnector"], o["ExceptIfSenderIpRanges"], o["ExceptIfHeaderMatchesMessageHeader"], "managed by mailmode" in o["Comments"]) for o in s["rules"]]')" \
	"[('mailmode route #1', 0, 'Enabled', 'Enforce', ['contoso.test'], 'mailmode outbound to sophos', ['192.0.2.0/24', '2001:db8::/32'], None, True)]" \
	"rule: priority 0, enabled, enforced, the domain, routed, the service's addresses excepted (no header), marked managed"
receipt_guids=$(printf '%s' "$setup_out" | "$PYTHON3" -c '
import json, sys
r = json.load(sys.stdin)["receipt"]
print(" ".join(r[k]["guid"] for k in ("inbound_connector", "outbound_connector", "rule")))')
is "$receipt_guids" "$(mf_state '" ".join([s["inbound_connectors"][0]["Guid"], s["outbound_connectors"][0]["Guid"], s["rules"][0]["Guid"]])')" \
	"receipt holds the names and GUIDs of the three objects"
is "$(mf_stat token_requests)" 1 "one token for the whole setup (cached)"
is "$(mf_requests 'len(set(x["headers"].get("connection-id") for x in r))')" 1 \
	"one connection-id for the session"
is "$(mf_requests 'len(set(x["headers"]["client-request-id"] for x in r)) == len(r)')" True \
	"a new client-request-id per request"
is "$(mf_requests 'all(x["headers"].get("X-CmdletName") == x["cmdlet"] and x["headers"].get("X-AnchorMailbox") == "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@'"$MF_TENANT_ID"'" and x["headers"].get("X-ResponseFormat") == "json" for x in r)')" True \
	"X-CmdletName, X-AnchorMailbox and X-ResponseFormat on every request"
is "$(mf_requests 'sum(1 for x in r if x["cmdlet"] == "Get-AcceptedDomain" and "skiptoken" in x["path"])')" 2 \
	"paging: @odata.nextLink followed for the accepted domains (3 domains, page size 1)"
is "$(mf_requests 'all(x["body"]["CmdletInput"]["Parameters"].get("Confirm") is False for x in r if x["cmdlet"].startswith("Remove-"))')" True \
	"removals (if any) pass Confirm:false"

# --- setup again: idempotent
mf_reset_log
run mm setup contoso.test --mode mailflow --profile p1
is "$rc" 0 "setup again succeeds"
is "$(mf_counts) $(mf_requests 'sum(1 for x in r if not x["cmdlet"].startswith("Get-"))')" "1 1 1 0" \
	"setup again reuses everything: no write cmdlet"

# --- verify, teardown
run mm verify contoso.test
is "$rc" 0 "verify succeeds"
run mm teardown contoso.test --dry-run
like "$out" "Remove-TransportRule -Identity 'mailmode route #1' -Confirm:\\\$false" \
	"teardown plan removes the rule"
like "$out" "Remove-OutboundConnector -Identity 'mailmode outbound to sophos' -Confirm:\\\$false" \
	"teardown plan removes the unused connectors"
run mm teardown contoso.test
is "$rc" 0 "teardown succeeds"
is "$(mf_counts)" "0 0 0" "teardown removed the rule and both connectors"

# --- teardown when the objects are already gone
run mm setup contoso.test --mode mailflow --profile p1
mf_invoke Remove-TransportRule '{"Identity":"mailmode route #1","Confirm":false}'
mf_invoke Remove-OutboundConnector '{"Identity":"mailmode outbound to sophos","Confirm":false}'
run mm teardown contoso.test --verify-timeout 5s --poll-interval 500ms
is "$rc" 3 "teardown refuses to call a rule made minutes ago gone: it may just not be listed yet (exit 3: not finished in time)"
like "$err" "transport rule 'mailmode route #1' was created less than 30 minutes ago and is not listed yet.*--force" \
	"and says why and how to go on"
run mm teardown contoso.test --force
is "$rc" 0 "teardown --force succeeds when the rule and a connector are already gone"
like "$err" "transport rule 'mailmode route #1' was not found; it was created less than 30 minutes ago" \
	"and warns that a recently made rule may just not be listed yet"
is "$(mf_counts)" "0 0 0" "and removes what was left"

# --- multi-valued fields as arrays instead of bare strings
emu_ctl POST /_emu/config '{"bare_string_singletons": false}' >/dev/null
run mm setup contoso.test --mode mailflow --profile p1
run mm verify contoso.test
is "$rc" 0 "verify reads one-element lists sent as arrays too"
run mm teardown contoso.test
is "$rc" 0 "and teardown"
emu_ctl POST /_emu/config '{"bare_string_singletons": true}' >/dev/null

# --- the cost of one setup + verify + teardown, at Microsoft's page size
emu_ctl POST /_emu/config '{"page_size": 1000}' >/dev/null
mf_reset_log
run mm setup contoso.test --mode mailflow --profile p1
setup_rc=$rc
setup_calls=$(mf_requests 'len(r)')
run mm verify contoso.test
verify_rc=$rc
verify_calls=$(($(mf_requests 'len(r)') - setup_calls))
run mm teardown contoso.test
teardown_rc=$rc
total=$(mf_requests 'len(r)')
by_cmdlet=$(mf_requests '" ".join("%s=%d" % (c, n) for c, n in sorted(__import__("collections").Counter(x["cmdlet"] for x in r).items()))')
diag "admin API calls: setup $setup_calls, verify $verify_calls, teardown $((total - setup_calls - verify_calls)), total $total"
diag "by cmdlet: $by_cmdlet"
diag "token requests: $(mf_stat token_requests) (one per mailmode process)"
is "$setup_rc $verify_rc $teardown_rc" "0 0 0" "setup, verify and teardown succeed"
# Setup and teardown each start with a preflight (5 reads) and wait for
# the tenant to show the result (3 reads).
ok $([ "$total" -le 32 ]; echo $?) "one setup+verify+teardown takes at most 32 admin API calls (took $total)"
is "$(mf_counts)" "0 0 0" "nothing left behind"
