#!/bin/sh
# Lost answers on gateway mode's tenant writes (plugin.h, "Writes and their
# outcomes"): the emulator runs the cmdlet and closes the connection before
# answering (acted_reset).  (a) New-InboundConnector of a plain setup: the
# write is sent again and refused ("already exists"); setup reads the
# connector, recognises it as its own, and goes on: the MX swapped, locked
# down after the settle, one connector.  (b) The Set-InboundConnector that lifts the
# lock-down in a teardown: the teardown reads the connector again and goes
# on; the MX is restored only with the lock-down lifted, and the connector
# is gone.  (c) A tenant that refuses the sign-in is refused in preflight,
# before anything changes.
. "$top_srcdir/tests/mailpath/gwtenant-lib.sh"
plan 10

fault() {
	curl -sS --fail-with-body --cacert "$EMU_CA" -X POST -H 'Content-Type: application/json' \
		--data-binary "$1" "$EMU/_emu/faults" >/dev/null
}
nofault() { curl -sS --fail-with-body --cacert "$EMU_CA" -X DELETE "$EMU/_emu/faults" >/dev/null; }
# gw: the gateway connectors' lock-down, one word each ("" when none).
gw() {
	emu_get "/_emu/tenants/$TENANT" |
		jpy "' '.join(str(c['RestrictDomainsToCertificate']) for c in d['inbound_connectors'] if c['Name'] == '$GW')"
}

# --- (a) the connector's creation, answer lost ------------------------------------
fault '{"kind":"acted_reset","count":1,"cmdlet":"New-InboundConnector"}'
run mm -q setup $D --mode gateway $FAST
nofault
is "$rc" 0 "setup goes through: the connector its lost write made is recognised as its own"
wait_mx $D "$GATEWAY_SET"
is "$(mx_both $D)|$(gw)|$(db "SELECT mode FROM domains WHERE domain='$D'")" \
	"$GATEWAY_SET | $GATEWAY_SET|True|gateway" \
	"the gateway MX, one connector, locked down after the settle, gateway mode"
n=$(db "SELECT count(*) FROM journal WHERE step='checkpoint' AND detail LIKE '%\"doing\":\"creating\"%'")
ok "$([ "$n" -ge 1 ]; echo $?)" "the creation was checkpointed before it was sent ($n)"

# --- (b) lifting the lock-down, answer lost ------------------------------------------
fault '{"kind":"acted_reset","count":1,"cmdlet":"Set-InboundConnector"}'
run mm -q teardown $D $FAST
nofault
if [ "$rc" != 0 ]; then
	run mm -q resume $D
fi
is "$rc" 0 "teardown finishes (after resume when the engine left it unfinished)"
wait_mx $D "$FRONT"
is "$(mx_both $D)" "$FRONT | $FRONT" "the front door MX is back"
is "$(gw)" "" "the gateway connector is gone"
is "$(db "SELECT count(*) FROM domains WHERE domain='$D' AND mode IS NOT NULL")" 0 "no mode recorded"
n=$(db "SELECT count(*) FROM journal WHERE step='checkpoint' AND detail LIKE '%lifting the lock-down%'")
ok "$([ "$n" -ge 1 ]; echo $?)" "the lift was checkpointed before it was sent ($n)"

# --- (c) the tenant refuses the sign-in: refused before anything changes ------------
printf 'wrong-secret\n' >"$SB/wrong.secret"
chmod 600 "$SB/wrong.secret"
# gateway_tenant names a copy of the tenant's section with another secret
# (mailflow mode, observed by the core first, keeps the right one).
sed 's#^gateway_tenant = .*#gateway_tenant = gw-wrong#' "$MAILMODE_CONFIG" >"$SB/wrong.conf"
sed -n '/^\[tenant sandbox-tenant\]/,/^\[/p' "$MAILMODE_CONFIG" | sed '$d' |
	sed 's#^\[tenant sandbox-tenant\]#[tenant gw-wrong]#; s#^client_secret_file = .*#client_secret_file = wrong.secret#; s#^tenant = .*#tenant = sandbox.onmicrosoft.com#' >>"$SB/wrong.conf"
MAILMODE_CONFIG="$SB/wrong.conf" run mm -q setup $D --mode gateway $FAST
like "$rc $err" "^1 .*preflight: gateway mode cannot be set up: token request for tenant sandbox.onmicrosoft.com refused: AADSTS7000215.*nothing was changed" "a wrong client secret of gateway_tenant: refused in preflight, naming the tenant and the platform's answer"
is "$(mx_both $D)|$(gw)" "$FRONT | $FRONT|" "nothing changed: the MX and the tenant as they were"
