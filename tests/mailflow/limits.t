#!/bin/sh
# mailflow within Exchange Online's limits (issue 12 points 3 and 4): the
# tenant's domains share transport rules ('<prefix> route #N', a
# RecipientDomainIs list each); a rule is split below 8 KB; a new rule that
# would cross 300 rules per tenant is refused with the count before
# anything is written; the emulator enforces both limits with Exchange's
# errors; rules of the previous version (one per domain) are folded on
# setup and removed on teardown; accepted subdomains of a rule's domains
# are excepted (RecipientDomainIs matches subdomains too); and a second
# writer between a shared rule's write and its read-back loses no domain.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/mailflow/lib-mailflow.sh"

plan 37

mf_start
mf_config secret
R1="mailmode route #1"
R2="mailmode route #2"
writes() { mf_requests '",".join(x["cmdlet"] for x in r if not x["cmdlet"].startswith("Get-"))'; }
rules_of() { mf_state '[(r["Name"], r["Priority"]) for r in s["rules"] if r["Name"].startswith("mailmode")]'; }

# --- 300 rules per tenant: 299 of the organization's own
org_rules=$("$PYTHON3" -c 'import json; print(json.dumps({"rules": [{"Name": "Org rule %03d" % i, "SetHeaderName": "X-Org", "SetHeaderValue": str(i)} for i in range(299)], "accepted_domains": ["contoso.test", "fabrikam.test", "adatum.test"]}))')
mf_tenant "$org_rules"
run mm setup contoso.test --mode mailflow --profile p1
is "$rc $(mf_counts)" "0 1 1 300" "setup with 299 rules of the tenant makes the 300th"
run mm setup fabrikam.test --mode mailflow --profile p1
is "$rc $(mf_counts) $(mf_members "$R1")" "0 1 1 300 contoso.test,fabrikam.test" \
	"a second domain joins the shared rule: no new rule at the limit"
mf_fill_rule "$R1" 150
mf_reset_log
run mm setup adatum.test --mode mailflow --profile p1 --dry-run
is "$rc" 4 "a plan that would need a 301st rule is refused (exit 4)"
run mm setup adatum.test --mode mailflow --profile p1
is "$rc" 4 "so is the setup"
like "$err" "tenant contoso.onmicrosoft.com has 300 transport rules \\(1 of them mailmode's\\): a new rule for adatum.test would cross Exchange Online's limit of 300 rules per organization" \
	"naming the count, mailmode's share and the limit"
is "$(writes)|$(mf_counts)" "|1 1 300" "nothing was written"
MF_INVOKE_OUT=$TEST_TMP/invoke.out
export MF_INVOKE_OUT
mf_invoke New-TransportRule '{"Name":"One too many","SetHeaderName":"X-A","SetHeaderValue":"1"}'
is "$?" 22 "the emulator refuses a 301st rule (HTTP 400)"
like "$(cat "$MF_INVOKE_OUT")" "RuleLimitExceededException\\|The transport rule can't be created because the maximum number of transport rules \\(300\\)" \
	"with an error in Exchange's shape"

# --- 8 KB per rule
big=$("$PYTHON3" -c 'import json; print(json.dumps(["f%03d.example.net" % i for i in range(300)]))')
mf_invoke Set-TransportRule "{\"Identity\":\"$R1\",\"RecipientDomainIs\":$big}"
is "$?" 22 "the emulator refuses a rule over 8 KB"
like "$(cat "$MF_INVOKE_OUT")" "RuleTooLargeException\\|The rule cannot be created because it is too large. It has [0-9]+ characters and the maximum number of characters is 8192" \
	"with KB 3003043's text"
unset MF_INVOKE_OUT

mf_tenant
run mm setup contoso.test --mode mailflow --profile p1
mf_fill_rule "$R1" 100
run mm setup fabrikam.test --mode mailflow --profile p1
is "$rc $(mf_counts) $(mf_state 'len(s["rules"][0]["RecipientDomainIs"])')" "0 1 1 1 102" \
	"a rule with room takes another domain (the emulator, measuring the XML, accepts it)"
run mm teardown fabrikam.test
mf_fill_rule "$R1" 50
run mm setup fabrikam.test --mode mailflow --profile p1
is "$rc $(mf_counts)" "0 1 1 2" "a full rule is not grown: the domain gets a new rule"
is "$(rules_of) $(mf_members "$R2")" "[('$R2', 0), ('$R1', 1)] fabrikam.test" \
	"'#2' at priority 0, '#1' right below it"
run mm verify contoso.test
is "$rc" 0 "contoso.test verifies (below our own rule is fine)"
run mm verify fabrikam.test
is "$rc" 0 "fabrikam.test verifies"
run mm teardown fabrikam.test
is "$rc $(mf_counts) $(mf_state 'names("rules")')" "0 1 1 1 $R1" \
	"teardown of the last domain of '#2' removes '#2' only"

# --- rules of the previous version: one per domain
mf_tenant
run mm setup contoso.test --mode mailflow --profile p1
mf_invoke Set-TransportRule "{\"Identity\":\"$R1\",\"Name\":\"mailmode route contoso.test\"}"
run mm --json status contoso.test
like "$out" "a rule of the previous version, for this domain alone" "status names a rule of the previous version"
run mm setup contoso.test --mode mailflow --profile p1 --dry-run
like "$out" "transport rule 'mailmode route contoso.test' of the previous version \\(one rule per domain\\) is folded into '$R1'" \
	"the plan folds it into a shared rule"
run mm setup contoso.test --mode mailflow --profile p1
is "$rc $(mf_counts) $(mf_state 'names("rules")') $(mf_members "$R1")" "0 1 1 1 $R1 contoso.test" \
	"setup folds it: the shared rule made, the old one removed"
# fabrikam.test set up by the previous version: its own rule, in no shared one
run mm setup fabrikam.test --mode mailflow --profile p1
mf_invoke Set-TransportRule "{\"Identity\":\"$R1\",\"RecipientDomainIs\":[\"contoso.test\"]}"
mf_invoke New-TransportRule '{"Name":"mailmode route fabrikam.test","Priority":0,"RecipientDomainIs":"fabrikam.test","RouteMessageOutboundConnector":"mailmode outbound to sophos","Comments":"managed by mailmode: routes mail for fabrikam.test through service sophos; do not edit by hand"}'
run mm teardown fabrikam.test
is "$rc $(mf_counts) $(mf_state 'names("rules")')" "0 1 1 1 $R1" \
	"teardown removes a domain's rule of the previous version and keeps what others use"
run mm teardown contoso.test
is "$rc $(mf_counts)" "0 0 0 0" "and the last domain's teardown the rest"

# --- subdomains: RecipientDomainIs contoso.test matches sub.contoso.test
mf_tenant '{"accepted_domains": ["contoso.test", "sub.contoso.test", "deep.sub.contoso.test", "fabrikam.test"]}'
run mm setup contoso.test --mode mailflow --profile p1
is "$rc $(mf_state 's["rules"][0]["RecipientDomainIs"], s["rules"][0]["ExceptIfRecipientDomainIs"]')" \
	"0 (['contoso.test'], ['sub.contoso.test', 'deep.sub.contoso.test'])" \
	"the rule excepts the accepted subdomains it would route too"
run mm verify contoso.test
is "$rc" 0 "and verifies"
run mm setup sub.contoso.test --mode mailflow --profile p1
is "$rc $(mf_counts) $(mf_state 's["rules"][0]["RecipientDomainIs"], s["rules"][0]["ExceptIfRecipientDomainIs"]')" \
	"0 1 1 1 (['contoso.test', 'sub.contoso.test'], ['deep.sub.contoso.test'])" \
	"a subdomain set up joins the rule, and is no longer excepted"
run mm setup deep.sub.contoso.test --mode mailflow --profile p1
is "$rc $(mf_counts) $(mf_members "$R1") $(mf_members "$R2")" "0 1 1 1 contoso.test,sub.contoso.test,deep.sub.contoso.test " \
	"so does its own subdomain"
run mm teardown sub.contoso.test
is "$rc $(mf_state '[(r["Name"], r["RecipientDomainIs"], r["ExceptIfRecipientDomainIs"]) for r in s["rules"]]')" \
	"0 [('$R1', ['contoso.test', 'deep.sub.contoso.test'], ['sub.contoso.test'])]" \
	"a subdomain torn down is excepted again"
run mm verify contoso.test
is "$rc" 0 "contoso.test verifies"
run mm verify deep.sub.contoso.test
is "$rc" 0 "deep.sub.contoso.test verifies: listed, so not hidden by sub.contoso.test's exception"
mf_invoke Set-TransportRule "{\"Identity\":\"$R1\",\"ExceptIfRecipientDomainIs\":null}"
run mm verify contoso.test
is "$rc" 3 "verify fails when the subdomain exception is gone"
like "$err" "ExceptIfRecipientDomainIs" "naming the field"
run mm teardown deep.sub.contoso.test
run mm teardown contoso.test
is "$(mf_counts)" "0 0 0" "teardown of all leaves nothing"

# --- another writer between a shared rule's write and its read-back
mf_tenant '{"accepted_domains": ["contoso.test", "fabrikam.test", "adatum.test"]}'
run mm setup contoso.test --mode mailflow --profile p1
other="{\"cmdlet\":\"Set-TransportRule\",\"params\":{\"Identity\":\"$R1\",\"RecipientDomainIs\":[\"contoso.test\",\"adatum.test\"]}}"
emu_ctl POST /_emu/faults "{\"kind\":\"interleave\",\"cmdlet\":\"Set-TransportRule\",\"then\":$other}" >/dev/null
mf_reset_log
run mm setup fabrikam.test --mode mailflow --profile p1
emu_ctl DELETE /_emu/faults >/dev/null
is "$rc $(mf_members "$R1")" "0 contoso.test,adatum.test,fabrikam.test" \
	"a join overwritten by another writer's list (read before it) is made again on that list"
like "$err" "transport rule '$R1' was written by another writer meanwhile: adding fabrikam.test again" \
	"and says so"
# the other writer read the list before this teardown's write and adds a
# domain of its own
other="{\"cmdlet\":\"Set-TransportRule\",\"params\":{\"Identity\":\"$R1\",\"RecipientDomainIs\":[\"contoso.test\",\"adatum.test\",\"fabrikam.test\",\"northwind.test\"]}}"
emu_ctl POST /_emu/faults "{\"kind\":\"interleave\",\"cmdlet\":\"Set-TransportRule\",\"then\":$other}" >/dev/null
run mm teardown fabrikam.test
emu_ctl DELETE /_emu/faults >/dev/null
is "$rc $(mf_members "$R1")" "0 contoso.test,adatum.test,northwind.test" \
	"a leave overwritten by another writer is made again too, keeping the other's change"
is "$(mf_requests 'sum(1 for x in r if x["cmdlet"] == "Get-TransportRule" and (x["body"]["CmdletInput"].get("Parameters") or {}).get("Identity") == "mailmode route #1")')" "4" \
	"every write of a shared rule was read back (two writes each)"

# --- eventual consistency within one process: a runbook joins two domains
# to the shared rule one right after the other while every change takes 2 s
# to show; the second must not write on the list without the first
mf_tenant '{"accepted_domains": ["contoso.test", "fabrikam.test", "adatum.test"]}'
run mm setup contoso.test --mode mailflow --profile p1
emu_ctl POST /_emu/config '{"consistency_delay_s": 2}' >/dev/null
cat >"$TEST_TMP/rb.ini" <<'RUNBOOK'
[runbook]
parallel = 2
tenant_cap = 2
verify_timeout = 60s
poll_interval = 200ms

[domains]
fabrikam.test = mailflow p1
adatum.test = mailflow p1
RUNBOOK
run mm runbook run "$TEST_TMP/rb.ini"
emu_ctl POST /_emu/config '{"consistency_delay_s": 0}' >/dev/null
is "$rc" 0 "a runbook of two domains joining the rule, each change late to show, succeeds"
is "$(mf_state 'sorted(s["rules"][0]["RecipientDomainIs"])') $(mf_counts)" \
	"['adatum.test', 'contoso.test', 'fabrikam.test'] 1 1 1" \
	"and the rule lists all three: the second join waited for the first to show"
