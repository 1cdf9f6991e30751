#!/bin/sh
# The sandbox's DNS-provider domains (sandbox.py PROVIDERS): cloudflare.test
# at the emulated Cloudflare, gcloud.test at the emulated Google Cloud DNS,
# route53.test at the emulated Route 53, azure.test at the emulated Azure
# DNS, each backed by its zone on the sandbox BIND.  For each: the gateway
# plugin passes mailmode-plugin-check on the domain, and a switch gateway
# -> mailflow -> gateway under load loses no message and scans none twice
# (the mail-path oracle); the API calls per switch and the time a change
# takes to reach BIND are printed as TAP comments.
. "$top_srcdir/tests/mailpath/lib.sh"
. "$top_srcdir/tests/sdk/check-lib.sh"

PROVIDERS="cloudflare gcloud route53 azure"
plan 80

# prov NAME FIELD: a field of the provider's entry in sandbox.json.
prov() {
	"$PYTHON3" -c 'import json, sys
print(json.load(open(sys.argv[1]))["providers"][sys.argv[2]][sys.argv[3]])' \
		"$SB/sandbox.json" "$1" "$2"
}

# prov_ctl NAME METHOD PATH: the provider emulator's control API.
prov_ctl() {
	curl -sS --fail-with-body --cacert "$(prov "$1" ca_file)" -X "$2" "$(prov "$1" base_url)$3"
}

# api_calls NAME: the API requests logged since the last reset, counted by
# method and path (ids folded), and the total.
api_calls() {
	prov_ctl "$1" GET /_emu/requests | "$PYTHON3" -c 'import collections, json, re, sys
c = collections.Counter()
for r in json.load(sys.stdin):
    p = re.sub(r"[0-9a-f]{32}", "{id}", r["path"].split("?")[0])
    p = re.sub(r"/changes/[0-9]+$", "/changes/{id}", p)
    c[r["method"] + " " + p] += 1
print("%d (%s)" % (sum(c.values()), "; ".join("%s x%d" % kv for kv in sorted(c.items()))))'
}

# propagated NAME: the emulator's last "accepted -> on BIND" delay.
propagated() {
	sed -n 's/.*propagated .* to BIND \([0-9.]*\) s after.*/\1/p' "$(prov "$1" dir)/emu.log" | tail -1
}

# switch_measured NAME DOMAIN TO: a switch under load (mail 1 s before and
# 2 s after), its API calls and the propagation as TAP comments.
switch_measured() {
	prov_ctl "$1" DELETE /_emu/requests >/dev/null
	sender_start "$1-$3" "alice@$2,bob@$2"
	sleep 1
	start=$(now)
	run mm -q switch "$2" --to "$3" --poll-interval 250ms --verify-timeout 60s
	switch_rc=$rc
	[ "$rc" = 0 ] || diag "switch: $err"
	DONE_AT=$(now)
	sleep 2
	sender_stop "$1-$3"
	diag "$1: switch to $3 took $(awk "BEGIN { printf \"%.1f\", $DONE_AT - $start }") s; API calls: $(api_calls "$1"); accepted -> BIND primary: $(propagated "$1") s"
}

mode_of() { db "SELECT ifnull(mode, '-') FROM domains WHERE domain = '$1'"; }

for P in $PROVIDERS; do
	D=$(prov $P domain)
	ORIG="0 $(echo "$D" | tr . -).mail.protection.outlook.test."
	is "$(mx_both "$D")" "$ORIG | $ORIG" "$P: $D starts with its Microsoft 365 MX on both BIND servers"
	is "$(sed -n "/^\[dns $P-dns\]/,/^\[/s/^provider = //p" "$MAILMODE_CONFIG") $(sed -n "/^\[profile $P\]/,/^\[/s/^dns = //p" "$MAILMODE_CONFIG")" \
		"$P $P-dns" "$P: the sandbox config has [dns $P-dns] (provider = $P) and [profile $P] using it"
	run mm sandbox status --dir "$SB"
	like "$out" "^$P emulator +pid [0-9]+ +running +https://127.0.0.1:[0-9]+" "$P: sandbox status lists its emulator, running"

	# --- mailmode-plugin-check --------------------------------------------
	check_plugin --config "$MAILMODE_CONFIG" --profile $P --domain "$D" \
		--poll-interval 1 --verify-timeout 60 --timeout 30 "$PLUGIN_DIR/gateway.so"
	is "$rc" 0 "$P: mailmode-plugin-check passes the gateway plugin on $D"
	is "$(check_failed)" "" "$P: no check fails"
	is "$(printf '%s\n' "$out" | grep -c '# SKIP')" 0 "$P: none skipped: the live checks ran"
	is "$(mx_both "$D")" "$ORIG | $ORIG" "$P: the checker left the original MX"

	# --- setup, then the switch both ways under load ----------------------
	prov_ctl $P DELETE /_emu/requests >/dev/null
	start=$(now)
	run mm -q setup "$D" --mode gateway --profile $P
	is "$rc" 0 "$P: gateway mode set up on $D"
	[ "$rc" = 0 ] || diag "setup: $err"
	diag "$P: setup took $(awk "BEGIN { printf \"%.1f\", $(now) - $start }") s (verified on every authoritative server); API calls: $(api_calls $P); accepted -> BIND primary: $(propagated $P) s"
	is "$(mx_both "$D")" "$GATEWAY_SET | $GATEWAY_SET" "$P: both BIND servers serve the gateway set"

	switch_measured $P "$D" mailflow
	is "$switch_rc" 0 "$P: switch gateway -> mailflow while mail flows"
	oracle "$P-mailflow" "$DONE_AT"
	show
	is "$rc" 0 "$P: gateway -> mailflow: every message delivered exactly once, scanned once after the switch"
	like "$out" "paths:.* gateway [1-9][0-9]*,.*mailflow [1-9]" "$P: messages came by both paths"
	is "$(mode_of "$D") $(mx_both "$D")" "mailflow $ORIG | $ORIG" \
		"$P: the state holds mailflow mode, BIND serves the original MX again"

	switch_measured $P "$D" gateway
	is "$switch_rc" 0 "$P: switch mailflow -> gateway while mail flows"
	oracle "$P-gateway" "$DONE_AT"
	show
	is "$rc" 0 "$P: mailflow -> gateway: every message delivered exactly once, scanned once after the switch"
	like "$out" "paths:.* gateway [1-9][0-9]*,.*mailflow [1-9]" "$P: messages came by both paths"
	is "$(mode_of "$D") $(mx_both "$D")" "gateway $GATEWAY_SET | $GATEWAY_SET" \
		"$P: the state holds gateway mode, BIND serves the gateway set"

	run mm -q teardown "$D"
	is "$rc" 0 "$P: teardown"
	wait_mx "$D" "$ORIG"
	is "$(mode_of "$D") $(mx_both "$D")" "- $ORIG | $ORIG" \
		"$P: no mode, the original MX is back on both BIND servers"
	is "$(tenant_objects)" "0 0 0 " "$P: no mailflow objects left in the tenant"
done
