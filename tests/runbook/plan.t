#!/bin/sh
# runbook plan and --dry-run as values (issue 14 item 5), against the
# sandbox (BIND 9 primary + secondary, the Microsoft 365 emulator): JSON
# actions with a cmdlet and a parameters object, DNS changes as records,
# the summary counting a tenant's shared objects once, a tenant refusing
# access that fails its domains' plans but not the others', and a plan
# that changes nothing (the emulator's objects, the records BIND serves).
. "$top_srcdir/tests/runbook/lib.sh"
start_sandbox --tenants 2 --domains 6
plan 15

# objects: "inbound outbound rules" summed over both tenants.
objects() {
	for t in 01 02; do emu /_emu/tenants/tenant$t.onmicrosoft.com; echo; done | "$PYTHON3" -c '
import json, sys
ts = [json.loads(l) for l in sys.stdin if l.strip()]
print(*(sum(len(t[k]) for t in ts) for k in ("inbound_connectors", "outbound_connectors", "rules")))'
}
mx_all() {
	for d in $(sed -n 's/^\(d[0-9]*\.test\) = .*/\1/p' "$TEST_TMP/mailflow.ini"); do
		kdig @"$DNS_PRIMARY" -p "$DNS_PORT" +norec +short "$d" MX
		kdig @"$DNS_SECONDARY" -p "$DNS_PORT" +norec +short "$d" MX
	done | sort | tr '\n' ' '
}

write_runbook "$TEST_TMP/mailflow.ini" mailflow 4 30s 5
write_runbook "$TEST_TMP/gateway.ini" gateway 4 30s 5
before_mx=$(mx_all)
before_db=$(db_digest "$DB")

# --- to mailflow: the cmdlets as values, the shared objects once a tenant
run "$MAILMODE" --json runbook plan "$TEST_TMP/mailflow.ini"
is "$rc" 0 "runbook plan to mailflow: exit 0"
first=$(json "d['domains'][0]['domain']")
is "$(json "[(a['change'], a['object'], a['cmdlet'], sorted(a['parameters'])[:3], a['shared']) for s in d['domains'][0]['plan'] if s['step'] == 'setup' for a in s['actions'] if 'cmdlet' in a][0]")" \
	"('create', 'inbound connector', 'New-InboundConnector', ['Comment', 'ConnectorType', 'Enabled'], 'tenant tenant01.onmicrosoft.com')" \
	"an action: change, object, cmdlet and a parameters object, shared by the tenant"
is "$(json "[a['parameters']['RecipientDomainIs'] for s in d['domains'][0]['plan'] if s['step'] == 'setup' for a in s['actions'] if a.get('cmdlet') == 'New-TransportRule']")" \
	"[['$first']]" "the rule's parameters: the domain as a list, not PowerShell text"
is "$(json "[(s['scope'], len(s['domains']), [(c['change'], c['object'], c['count']) for c in s['changes']]) for s in d['summary']['shared']]")" \
	"[('tenant tenant01.onmicrosoft.com', 3, [('create', 'inbound connector', 1), ('create', 'outbound connector', 1), ('create', 'transport rule', 1)]), ('tenant tenant02.onmicrosoft.com', 3, [('create', 'inbound connector', 1), ('create', 'outbound connector', 1), ('create', 'transport rule', 1)])]" \
	"summary: each tenant's connectors and rule counted once, shared by its 3 domains"
run "$MAILMODE" runbook plan "$TEST_TMP/mailflow.ini"
like "$out" "summary:
  $first: 1 inbound connector to create, 1 outbound connector to create, 1 transport rule to create \\(shared by 3 domains of tenant tenant01.onmicrosoft.com\\)" \
	"text summary: the first domain of a tenant lists its shared objects"
is "$(printf '%s\n' "$out" | grep -c 'shared by 3 domains')" 2 "and they appear once per tenant"
like "$out" "the objects of tenant tenant01.onmicrosoft.com shared with $first" \
	"the tenant's other domains point back at them"
like "$out" "warning: mail to the tenant's Microsoft domain .* is not covered" \
	"the plugin's warnings are part of the plan text"

# --- to gateway: the MX change as records
run "$MAILMODE" --json runbook plan "$TEST_TMP/gateway.ini"
is "$rc" 0 "runbook plan to gateway: exit 0"
is "$(json "[(a['change'], a['object'], a['zone'], [(r['type'], r['exchange']) for r in a['delete']], [(r['type'], r['preference'], r['exchange']) for r in a['add']]) for s in d['domains'][0]['plan'] if s['step'] == 'setup' for a in s['actions'] if a.get('object') == 'mx']")" \
	"[('replace', 'mx', '$first', [('MX', '${first%%.test}-test.mail.protection.outlook.test.')], [('MX', 10, 'mx-01.gw.sandbox.test.'), ('MX', 20, 'mx-02.gw.sandbox.test.')])]" \
	"the DNS change: the zone, the records it deletes and adds"
is "$(json "d['summary']['domains'][0]['mx']")" "replace" "summary: MX to replace"

# --- a tenant refusing access fails its domains' plans, not the others'
emu /_emu/tenants/tenant02.onmicrosoft.com -X PATCH -H 'Content-Type: application/json' \
	-d '{"forbidden": true}' >/dev/null
run "$MAILMODE" --json runbook plan "$TEST_TMP/mailflow.ini"
is "$rc" 1 "a tenant refusing access: exit 1"
is "$(json "' '.join(('E' if 'error' in x else 'P' if x.get('plan') else '?') for x in d['domains'])")" \
	"$(json "' '.join('E' if x['profile'] == 'tenant02' else 'P' for x in d['domains'])")" \
	"its domains' entries hold the error, the other tenant's their plans"
is "$(json "sum(1 for x in d['summary']['domains'] if 'error' in x)")" 3 "summary: 3 domains whose plan failed"
emu /_emu/tenants/tenant02.onmicrosoft.com -X PATCH -H 'Content-Type: application/json' \
	-d '{"forbidden": false}' >/dev/null

# --- nothing changed
is "$(objects) | $(mx_all) | $(db_digest "$DB")" "0 0 0 | $before_mx | $before_db" \
	"the plans changed nothing: no tenant object, the same records on both servers, the same state"
