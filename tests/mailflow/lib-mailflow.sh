# Helpers for the mailflow tests: the Microsoft 365 emulator, a tenant, a
# configuration wired to them, and readers of the emulator's state.
# Source after tests/lib.sh:   . "$top_srcdir/tests/mailflow/lib-mailflow.sh"

. "$top_srcdir/tests/servers/emu.sh"

MF_TENANT_ID=7d3b0e52-4c1f-4f0e-9a55-2f6c1c0b7e11
MF_TENANT=contoso.onmicrosoft.com
MF_CLIENT_ID=0f6c1a84-2b7d-4d6e-8a0f-5b2e9d1c3a77
MF_SECRET='emu-secret-Value~42'
MF_CONF=$TEST_TMP/mailmode.conf
MF_STATE=$TEST_TMP/state.db

# mf_start [m365emu.py args]: starts the emulator, stopped at exit.
mf_start() {
	at_exit "emu_stop '$TEST_TMP/emu'"
	if ! emu_start "$TEST_TMP/emu" "$@"; then
		echo "Bail out! the Microsoft 365 emulator did not start"
		exit 1
	fi
}

# mf_tenant [JSON-OBJECT]: creates the contoso tenant (accepted domains
# contoso.test and fabrikam.test, client secret and test certificate);
# the object's fields are merged over those defaults.
mf_tenant() {
	_mf_extra=${1:-}
	[ -n "$_mf_extra" ] || _mf_extra='{}'
	_mf_spec=$("$PYTHON3" -c '
import json, sys
spec = {"tenant_id": sys.argv[1], "initial_domain": sys.argv[2],
        "client_id": sys.argv[3], "client_secret": sys.argv[4],
        "certificate_file": sys.argv[5],
        "accepted_domains": [{"DomainName": "contoso.test", "Default": True},
                             "fabrikam.test"]}
spec.update(json.loads(sys.argv[6]))
print(json.dumps(spec))' "$MF_TENANT_ID" "$MF_TENANT" "$MF_CLIENT_ID" "$MF_SECRET" \
		"$EMU_CLIENT_CERT" "$_mf_extra") || return 1
	emu_ctl POST /_emu/tenants "$_mf_spec" >/dev/null
}

# mf_config [secret|cert|KEY CERT] [EXTRA-TENANT-LINES]: writes the
# configuration: profile p1 -> tenant contoso -> service sophos.
mf_config() {
	_mf_auth=${1:-secret}
	printf '%s\n' "$MF_SECRET" >"$TEST_TMP/client-secret"
	chmod 600 "$TEST_TMP/client-secret"
	case $_mf_auth in
	secret)
		_mf_cred="client_secret_file = client-secret" ;;
	cert)
		# A public file: readable by all is fine, and the relative path
		# starts at the config file's directory.
		cp "$EMU_CLIENT_CERT" "$TEST_TMP/app-cert.pem"
		chmod 644 "$TEST_TMP/app-cert.pem"
		_mf_cred="private_key_file = $EMU_CLIENT_KEY
certificate_file = app-cert.pem" ;;
	*)
		_mf_cred="private_key_file = $1
certificate_file = $2"
		shift ;;
	esac
	cat >"$MF_CONF" <<EOF
[mailmode]
state = $MF_STATE

[profile p1]
tenant = contoso
service = sophos

[tenant contoso]
tenant = $MF_TENANT
client_id = $MF_CLIENT_ID
$_mf_cred
login_url = $EMU_LOGIN
api_url = $EMU_BASE
ca_file = $EMU_CA
${2:-}

[service sophos]
smart_hosts = mf-outbound-eu-west-1.prod.hydra.sophos.com
tls_domain = mf-outbound-eu-west-1.prod.hydra.sophos.com
connector_type = OnPremises
tls_cert_name = *.prod.hydra.sophos.com
loop_header = X-Sophos-Mailflow-Processing-Id
name_prefix = mailmode
service_ips = 192.0.2.0/24 2001:db8::/32
EOF
}

# mm ARGS: runs mailmode on the test configuration (use with `run`).
mm() {
	"$MAILMODE" --config "$MF_CONF" --state "$MF_STATE" --plugin-dir "$PLUGIN_DIR" "$@"
}

# mf_state PYTHON-EXPR: evaluates the expression on the tenant's state
# (s = GET /_emu/tenants/T: inbound_connectors, outbound_connectors, rules).
mf_state() {
	emu_ctl GET "/_emu/tenants/$MF_TENANT_ID" | "$PYTHON3" -c '
import json, sys
s = json.load(sys.stdin)
names = lambda k: ",".join(o["Name"] for o in s[k])
print(eval(sys.argv[1]))' "$1"
}

# mf_counts: "inbound outbound rules" object counts of the tenant.
mf_counts() {
	mf_state '"%d %d %d" % (len(s["inbound_connectors"]), len(s["outbound_connectors"]), len(s["rules"]))'
}

# mf_requests PYTHON-EXPR: evaluates the expression on the recorded
# InvokeCommand requests (r = list of records).
mf_requests() {
	emu_ctl GET "/_emu/requests?kind=invoke" | "$PYTHON3" -c '
import json, sys
r = json.load(sys.stdin)
print(eval(sys.argv[1]))' "$1"
}

# mf_stat KEY: a top-level number from /_emu/stats.
mf_stat() {
	emu_ctl GET /_emu/stats | "$PYTHON3" -c '
import json, sys
print(json.load(sys.stdin).get(sys.argv[1], 0))' "$1"
}

# mf_wait_fault: waits (up to 10 s) until the emulator injected a fault
# (a cmdlet made slow is in flight).
mf_wait_fault() {
	_mf_n=0
	while [ "$(mf_stat faults_injected)" = 0 ] && [ $_mf_n -lt 100 ]; do
		sleep 0.1
		_mf_n=$((_mf_n + 1))
	done
}

# mf_settled: waits (up to 30 s) until every write shows in the emulator.
mf_settled() {
	_mf_n=0
	while [ "$(mf_state 'any(o["_pending"] for k in ("inbound_connectors", "outbound_connectors", "rules") for o in s[k])')" = True ] &&
	      [ $_mf_n -lt 150 ]; do
		sleep 0.2
		_mf_n=$((_mf_n + 1))
	done
}

# mf_rule_io: "WRITES READ-BACKS": the Set-TransportRule requests, and the
# Get-TransportRule requests of one rule by name.
mf_rule_io() {
	mf_requests '"%d %d" % (sum(1 for x in r if x["cmdlet"] == "Set-TransportRule"), sum(1 for x in r if x["cmdlet"] == "Get-TransportRule" and (x["body"]["CmdletInput"].get("Parameters") or {}).get("Identity")))'
}

# mf_reset_log: forgets recorded requests and statistics.
mf_reset_log() {
	emu_ctl DELETE /_emu/requests >/dev/null && emu_ctl DELETE /_emu/stats >/dev/null
}

# mf_invoke CMDLET PARAMS-JSON: runs a cmdlet as another admin would (to
# change the tenant behind mailmode's back); the answer goes to the file
# $MF_INVOKE_OUT when set.
mf_invoke() {
	_mf_token=$(curl -sS --cacert "$EMU_CA" \
		--data-urlencode "client_id=$MF_CLIENT_ID" \
		--data-urlencode "client_secret=$MF_SECRET" \
		--data-urlencode "scope=https://outlook.office365.com/.default" \
		--data-urlencode "grant_type=client_credentials" \
		"$EMU_LOGIN/$MF_TENANT/oauth2/v2.0/token" |
		"$PYTHON3" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])') || return 1
	curl -sS --fail-with-body --cacert "$EMU_CA" -H "Authorization: Bearer $_mf_token" \
		-H 'Content-Type: application/json' \
		--data-binary "{\"CmdletInput\":{\"CmdletName\":\"$1\",\"Parameters\":$2}}" \
		"$EMU_BASE/adminapi/beta/$MF_TENANT/InvokeCommand" >"${MF_INVOKE_OUT:-/dev/null}"
}

# mf_members RULE: the RecipientDomainIs list of one rule, comma-separated.
mf_members() {
	mf_state "\",\".join(next(r for r in s[\"rules\"] if r[\"Name\"] == \"$1\")[\"RecipientDomainIs\"] or [])"
}

# mf_fill_rule RULE N: adds N filler domains (fNNN.example.net, not
# accepted) to a rule's RecipientDomainIs, as another admin would, so that
# the rule has no room left for another domain in mailmode's estimate
# (each costs 40 of the 7168 budget, 31 of Exchange's 8 KB): 150 fill a
# rule, 100 leave room for another.
mf_fill_rule() {
	_mf_list=$(mf_state "__import__('json').dumps((next(r for r in s['rules'] if r['Name'] == '$1')['RecipientDomainIs'] or []) + ['f%03d.example.net' % i for i in range($2)])")
	mf_invoke Set-TransportRule "{\"Identity\":\"$1\",\"RecipientDomainIs\":$_mf_list}"
}
