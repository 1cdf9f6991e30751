# Helpers of the randomized kill test (randomkill.t): a seeded random
# stream, the world as the servers show it (both DNS servers, the
# emulator's tenants, the state DB), and a hard reset of one domain that
# puts the world back to "no mode" when a trial left it broken, so that the
# trials after it start from a known world.  Source it after tests/lib.sh,
# once the sandbox runs and SB, DB, EMU, EMU_CA and dns.env are set.

# --- the random stream: Park-Miller (minimal standard), 31 bits, so
# that a seed gives the same choices in every POSIX shell.
rng_seed() { rng=$(( $1 % 2147483646 + 1 )); }
rng_next() { rng=$(( rng * 48271 % 2147483647 )); }

db() { sqlite3 "$DB" "$1"; }

# mode_of DOMAIN: the recorded mode, "none" when there is none.
mode_of() {
	_m=$(db "SELECT coalesce(mode, 'none') FROM domains WHERE domain = '$1'")
	echo "${_m:-none}"
}

front_door() { echo "0 $(echo "$1" | tr . -).mail.protection.outlook.test."; }

# expected_mx MODE DOMAIN: the MX set the servers must serve in MODE.
expected_mx() {
	if [ "$1" = gateway ]; then echo "$GATEWAY_SET"; else front_door "$2"; fi
}

mx() {
	kdig @"$1" -p "$DNS_PORT" +norec +time=2 +retry=0 +short "$2" MX | sort -n | tr '\n' ' ' | sed 's/ $//'
}
mx_both() { echo "$(mx "$DNS_PRIMARY" "$1") | $(mx "$DNS_SECONDARY" "$1")"; }

# wait_mx DOMAIN SET: until both servers serve SET, at most 5 s (NOTIFY and
# the transfer take a moment; what is served then is what is asserted).
wait_mx() {
	_i=0
	while [ $_i -lt 50 ] && [ "$(mx_both "$1")" != "$2 | $2" ]; do
		sleep 0.1
		_i=$((_i + 1))
	done
}

emu_get() { curl -s --max-time 10 --cacert "$EMU_CA" "$EMU$1"; }

# tenant_problems TENANT: what differs between the tenant's objects
# (pending ones included) and what the state DB says should be there: the
# domains recorded in mailflow mode listed, each once, by mailmode's shared
# rules ("mailmode route #N", a RecipientDomainIs list each, none empty),
# no other domain listed, the shared connectors (one each way) while there
# is any, none otherwise, and no name twice.  Prints nothing when they agree.
tenant_problems() {
	# shellcheck disable=SC2046 # one argument per domain
	emu_get "/_emu/tenants/$1.onmicrosoft.com" | "$PYTHON3" -c '
import json, re, sqlite3, sys
db, domains = sys.argv[1], sys.argv[2:]
t = json.load(sys.stdin)
con = sqlite3.connect(db)
mailflow = sorted(d for (d,) in con.execute(
    "SELECT domain FROM domains WHERE mode = ? AND domain IN (%s)" % ",".join("?" * len(domains)),
    ["mailflow"] + domains))
problems = []
for key in ("rules", "inbound_connectors", "outbound_connectors"):
    names = [o["Name"] for o in t[key]]
    twice = sorted(set(n for n in names if names.count(n) > 1))
    if twice:
        problems.append("%s named twice: %s" % (key, ", ".join(twice)))
listed = {}
for o in t["rules"]:
    if not re.fullmatch(r"mailmode route #[0-9]+", o["Name"]):
        problems.append("rule %r is not a shared rule of mailmode" % o["Name"])
        continue
    members = o.get("RecipientDomainIs") or []
    members = [members] if isinstance(members, str) else members
    if not members:
        problems.append("rule %r lists no domain" % o["Name"])
    for d in members:
        listed.setdefault(d.lower(), []).append(o["Name"])
for d, names in sorted(listed.items()):
    if len(names) > 1:
        problems.append("%s listed by %d rules: %s" % (d, len(names), ", ".join(names)))
for d in sorted(set(listed) - set(mailflow)):
    problems.append("%s listed by %s but not in mailflow mode" % (d, ", ".join(listed[d])))
for d in sorted(set(mailflow) - set(listed)):
    problems.append("no rule lists %s, a domain in mailflow mode" % d)
for key in ("inbound_connectors", "outbound_connectors"):
    n, need = len(t[key]), 1 if mailflow else 0
    if n != need:
        problems.append("%d %s, expected %d (%d domain(s) in mailflow mode)"
                        % (n, key, need, len(mailflow)))
print("; ".join(problems))' "$DB" $(tenant_domains "$1")
}

# tenant_pending TENANT: how many of its objects are not visible yet.
tenant_pending() {
	emu_get "/_emu/tenants/$1.onmicrosoft.com" | "$PYTHON3" -c '
import json, sys
t = json.load(sys.stdin)
print(sum(1 for k in ("rules", "inbound_connectors", "outbound_connectors")
          for o in t[k] if o["_pending"]))'
}

# settle TENANT: until every object of the tenant is visible (at most 5 s),
# so that a trial starts from a world that has caught up.
settle() {
	_i=0
	while [ $_i -lt 25 ] && [ "$(tenant_pending "$1")" != 0 ]; do
		sleep 0.2
		_i=$((_i + 1))
	done
}

# invoke_in TENANT CMDLET JSON-PARAMETERS: a cmdlet run in the tenant as an
# admin would (with the app's credentials), to repair the world.
invoke_in() {
	_token=$(curl -s --cacert "$EMU_CA" "$EMU/login/$1.onmicrosoft.com/oauth2/v2.0/token" \
		--data-urlencode "client_id=$CLIENT_ID" --data-urlencode "client_secret=$(cat "$SB/client.secret")" \
		--data-urlencode "grant_type=client_credentials" \
		--data-urlencode "scope=https://outlook.office365.com/.default" |
		"$PYTHON3" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
	curl -s --cacert "$EMU_CA" -H "Authorization: Bearer $_token" -H "Content-Type: application/json" \
		"$EMU/adminapi/beta/$1.onmicrosoft.com/InvokeCommand" \
		-d "{\"CmdletInput\":{\"CmdletName\":\"$2\",\"Parameters\":$3}}" >/dev/null
}

# tenant_names TENANT KEY: the names of the tenant's objects of one kind.
tenant_names() {
	emu_get "/_emu/tenants/$1.onmicrosoft.com" |
		"$PYTHON3" -c 'import json,sys; [print(o["Name"]) for o in json.load(sys.stdin)[sys.argv[1]]]' "$2"
}

# reset_domain DOMAIN: the domain back to no mode behind mailmode's back:
# its rows gone from the state DB (every lock too: no mailmode runs now),
# the tenant holding the objects of the other domains' recorded modes only,
# the original MX on both servers.
reset_domain() {
	_t=$(tenant_of "$1")
	sleep 1.2   # objects made in the last second become visible (and removable)
	db "DELETE FROM journal WHERE migration_id IN (SELECT id FROM migrations WHERE domain = '$1');
	    DELETE FROM migrations WHERE domain = '$1'; DELETE FROM locks;
	    DELETE FROM domains WHERE domain = '$1';"
	# each shared rule keeps the domains recorded in mailflow mode
	_keep=$(db "SELECT domain FROM domains WHERE mode = 'mailflow'")
	emu_get "/_emu/tenants/$_t.onmicrosoft.com" | "$PYTHON3" -c '
import json, sys
keep = set(sys.argv[1].split())
for o in json.load(sys.stdin)["rules"]:
    members = o.get("RecipientDomainIs") or []
    members = [members] if isinstance(members, str) else members
    left = [d for d in members if d.lower() in keep]
    if not left:
        print("Remove-TransportRule", json.dumps({"Identity": o["Name"], "Confirm": False}))
    elif len(left) != len(members):
        print("Set-TransportRule", json.dumps({"Identity": o["Name"], "RecipientDomainIs": left}))
' "$_keep" | while read -r _cmdlet _params; do
		invoke_in "$_t" "$_cmdlet" "$_params"
	done
	if [ -z "$(tenant_names "$_t" rules)" ]; then
		for _kind in Outbound Inbound; do
			_key=$(echo "$_kind" | tr OI oi)_connectors
			tenant_names "$_t" "$_key" | while IFS= read -r _c; do
				invoke_in "$_t" "Remove-${_kind}Connector" "{\"Identity\":\"$_c\",\"Confirm\":false}"
			done
		done
	fi
	_fd=$(front_door "$1")
	if [ "$(mx "$DNS_PRIMARY" "$1")" != "$_fd" ]; then
		{
			echo "server $DNS_PRIMARY $DNS_PORT"
			echo "zone $1"
			echo "update delete $1. MX"
			echo "update add $1. 2 MX $_fd"
			echo "send"
		} | knsupdate -t 5 -y "hmac-sha256:$TSIG_KEY:$TSIG_SECRET" >/dev/null 2>&1
	fi
	wait_mx "$1" "$_fd"
}

# The sandbox's extra domains and their tenants, "DOMAIN TENANT" lines.
layout() {
	"$PYTHON3" -c '
import json, sys
for t, ds in sorted(json.load(open(sys.argv[1]))["extra_tenants"].items()):
    for d in ds:
        print(d, t)' "$SB/sandbox.json" | sort
}
tenant_of() { printf '%s\n' "$LAYOUT" | awk -v d="$1" '$1 == d { print $2 }'; }
tenant_domains() { printf '%s\n' "$LAYOUT" | awk -v t="$1" '$2 == t { print $1 }'; }
