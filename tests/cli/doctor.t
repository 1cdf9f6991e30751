#!/bin/sh
# mailmode doctor against the sandbox (BIND 9 primary and secondary, the
# Microsoft 365 emulator): every check passing exits 0 and shows a tenant's
# and a zone's checks once for two domains; each failure a switch would
# meet is one FAIL line with its fix and exit 3 (the tenant dormant, the
# role or the consent missing, the domain not accepted, the rules near and
# at the limit, a wrong TSIG key, a secondary serving another zone,
# service_ips missing); with no domain named, the state's domains.
. "$top_srcdir/tests/lib.sh"
SB="$TEST_TMP/sandbox"
export MAILMODE_DATADIR="$top_srcdir/tests/servers"
export MAILMODE_SANDBOX_OWNER_PID=$$
if ! "$MAILMODE" --plugin-dir "$PLUGIN_DIR" sandbox start --dir "$SB" -- \
	--stale fabrikam.test >"$TEST_TMP/sandbox.out" 2>&1; then
	sed 's/^/# /' "$TEST_TMP/sandbox.out"
	echo "Bail out! the sandbox did not start"
	exit 1
fi
at_exit "'$MAILMODE' sandbox stop --dir '$SB' >/dev/null 2>&1"
export MAILMODE_CONFIG="$SB/mailmode.conf"
. "$SB/dns/dns.env"
plan 31

sb() { "$PYTHON3" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$SB/sandbox.json" "$1"; }
EMU=$(sb emulator_url)
TENANT=$(sb tenant)
TENANT_ID=$(sb tenant_id)
emu() { curl -sS --fail-with-body --cacert "$SB/emu/ca.pem" -X "$1" -H 'Content-Type: application/json' ${3:+--data-binary "$3"} "$EMU$2" >/dev/null; }
patch() { emu PATCH "/_emu/tenants/$TENANT_ID" "$1"; }
line() { printf '%s\n' "$out" | grep -F -- "$1"; }
count() { printf '%s\n' "$out" | grep -cF -- "$1"; }

# --- no domain in the state, none named
run "$MAILMODE" doctor
is "$rc" 2 "no domain to check: exit 2"
like "$err" "no domain in the state .*state\\.db: name the domains" "the error says where it looked"

# --- everything holds
emu DELETE /_emu/stats
# Exchange Online's page size (the sandbox's is 2), so that requests count reads.
emu POST /_emu/config '{"page_size": 1000}'
run "$MAILMODE" doctor contoso.test fabrikam.test
is "$rc" 0 "every check passes: exit 0"
is "$(count "ok   tenant $TENANT: token")/$(count "ok   zone contoso.test: credentials can update")" "1/1" \
	"the tenant's token and a zone's credentials are shown once for two domains"
like "$(line "domain fabrikam.test: accepted domain")" "^ok   " "each domain's own checks are listed"
like "$out" "check\\(s\\) for 2 domain\\(s\\): 0 failed" "the summary line"
unlike "$out" "FAIL" "no FAIL line"
is "$(curl -sS --cacert "$SB/emu/ca.pem" "$EMU/_emu/stats" | "$PYTHON3" -c '
import json, sys
n = json.load(sys.stdin)["requests_by_cmdlet"]
print(" ".join("%s=%d" % (c, n.get(c, 0)) for c in ("Get-OrganizationConfig", "Get-AcceptedDomain", "Get-TransportRule", "Get-InboundConnector")))')" \
	"Get-OrganizationConfig=1 Get-AcceptedDomain=1 Get-TransportRule=1 Get-InboundConnector=1" \
	"the tenant is read once for its two domains"

run "$MAILMODE" --json doctor contoso.test fabrikam.test
is "$(printf '%s' "$out" | "$PYTHON3" -c '
import json, sys
d = json.load(sys.stdin)
token = [c for c in d["checks"] if c["scope"] == "tenant " + sys.argv[1] and c["check"] == "token"]
shape = all(isinstance(c["ok"], bool) and c["scope"] and c["check"] and "detail" in c for c in d["checks"])
print(d["ok"], d["exit"], len(token), token[0]["domains"], shape, d["summary"]["failed"])' "$TENANT")" \
	"True 0 1 ['contoso.test', 'fabrikam.test'] True 0" \
	"--json: checks of {scope, check, ok, detail}, the tenant's token once with both domains"

# fail FIX-PATTERN CHECK-LINE DESCRIPTION [DOMAIN]: doctor exits 3 with
# that check failed and its fix.
fail() {
	run "$MAILMODE" doctor "${4:-contoso.test}"
	is "$rc" 3 "$3: exit 3"
	like "$(line "FAIL $2")" "— fix: .*$1" "$3: FAIL line with its fix"
}

# --- the tenant
patch '{"dehydrated": true}'
fail "Enable-OrganizationCustomization" "tenant $TENANT: organization customization:" "dormant tenant"
patch '{"dehydrated": false, "forbidden": true}'
fail "Exchange Administrator role" "tenant $TENANT: role: Exchange Online refused the app (HTTP 403)" "role missing"
patch '{"forbidden": false, "consented": false}'
fail "Exchange.ManageAsApp .*adminconsent\\?client_id=" "tenant $TENANT: permission: the token carries no Exchange.ManageAsApp" "consent missing"
patch '{"consented": true, "accepted_domains": ["contoso.test"]}'
fail "add and verify the domain" "domain fabrikam.test: accepted domain: fabrikam.test is not an accepted domain" \
	"domain not accepted" fabrikam.test
patch '{"accepted_domains": [{"DomainName": "contoso.test", "Default": true}, "fabrikam.test"]}'

# Developer subscriptions refuse inbound connectors, which no read tells:
# a tenant without one is a warning (exit 0), naming the refusal.
patch '{"inbound_connectors_allowed": false}'
run "$MAILMODE" doctor contoso.test
like "$rc $(line "inbound connectors allowed")" "^0 warn .*— fix: .*developer subscription" \
	"no inbound connector yet: a warning with what a refusal would mean"
patch '{"inbound_connectors_allowed": true}'

# rules: the tenant re-made with its own rules (POST replaces it)
rules() {
	"$PYTHON3" - "$TENANT_ID" "$TENANT" "$(sb client_id)" "$(cat "$SB/client.secret")" "$1" <<'PY' >"$TEST_TMP/tenant.json"
import json, sys
tid, dom, cid, secret, n = sys.argv[1:]
print(json.dumps({"tenant_id": tid, "initial_domain": dom, "client_id": cid, "client_secret": secret,
                  "accepted_domains": [{"DomainName": "contoso.test", "Default": True}, "fabrikam.test"],
                  "rules": [{"Name": "Org rule %03d" % i, "SetHeaderName": "X-Org",
                             "SetHeaderValue": str(i)} for i in range(int(n))]}))
PY
	emu POST /_emu/tenants "$(cat "$TEST_TMP/tenant.json")"
}
rules 280
run "$MAILMODE" doctor contoso.test
like "$rc $(line "rule count")" "^0 warn .*280 of Exchange Online's 300 transport rules: near the limit — fix: remove transport rules" \
	"280 rules: near the limit, a warning with its fix"
rules 300
fail "remove transport rules" "tenant $TENANT: rule count: 300 of Exchange Online's 300" "rules at the limit"
rules 0

# --- the DNS
mx_before=$(kdig @"$DNS_PRIMARY" -p "$DNS_PORT" +short contoso.test MX | sort | tr '\n' ' ')
sed -e "s/^tsig_key = .*/tsig_key = $OTHER_KEY/" -e "s|^tsig_secret_file = .*|tsig_secret_file = $OTHER_SECRET_FILE|" \
	"$SB/mailmode.conf" >"$TEST_TMP/other-key.conf"
MAILMODE_CONFIG="$TEST_TMP/other-key.conf" run "$MAILMODE" --state "$SB/state.db" doctor contoso.test
is "$rc" 3 "a TSIG key the primary does not let update: exit 3"
like "$(line "FAIL zone contoso.test: credentials can update")" "— fix: let TSIG key $OTHER_KEY update contoso.test MX .*update-policy" \
	"wrong TSIG key: FAIL with the grant to add"
is "$(kdig @"$DNS_PRIMARY" -p "$DNS_PORT" +short contoso.test MX | sort | tr '\n' ' ')" \
	"$mx_before" "the probes changed no record"

# The secondary never receives fabrikam.test's changes (--stale).
printf 'server %s %s\nkey hmac-sha256:%s %s\nupdate add fabrikam.test. 300 TXT "doctor"\nsend\n' \
	"$DNS_PRIMARY" "$DNS_PORT" "$TSIG_KEY" "$TSIG_SECRET" | nsupdate
fail "zone transfers to the secondaries" "zone fabrikam.test: all NS answer alike: 2 server(s)" \
	"a secondary behind the primary" fabrikam.test

# --- the service
grep -v '^service_ips' "$SB/mailmode.conf" >"$TEST_TMP/no-ips.conf"
MAILMODE_CONFIG="$TEST_TMP/no-ips.conf" run "$MAILMODE" --state "$SB/state.db" doctor contoso.test
is "$rc" 3 "service_ips missing: exit 3"
like "$(line "FAIL service sandbox-service: service_ips set")" "— fix: add service_ips = " \
	"service_ips missing: FAIL with the key to add"

# --- no domain named: the state's domains
"$MAILMODE" adopt contoso.test --mode gateway >/dev/null 2>&1
run "$MAILMODE" switch contoso.test --to mailflow
is "$rc" 0 "contoso.test (adopted in gateway mode) switched to mailflow"
run "$MAILMODE" doctor
like "$rc $(line "check(s) for")" "^0 16 check\\(s\\) for 1 domain\\(s\\): 0 failed" "doctor checks the state's one domain: exit 0"
like "$(line "inbound connectors allowed")" "^ok   .*the tenant has 1 inbound connector" \
	"with mailmode's inbound connector made, the subscription allows them"
