#!/bin/sh
# Lost answers on gateway mode's outgoing-mail writes (outbound = yes): the
# emulator runs the cmdlet and closes the connection before answering
# (acted_reset).  (a) New-OutboundConnector and New-TransportRule of a
# setup: each is sent again, refused ("already exists"), read back and
# taken as mailmode's own: one connector, one rule, as set up.  (b)
# Remove-TransportRule and Remove-OutboundConnector of the teardown: sent
# again, answered "not found", which is done: both gone, the domain
# without a mode.  Every one of these writes was checkpointed first.
. "$top_srcdir/tests/mailpath/outbound-lib.sh"
plan 8

fault() {
	curl -sS --fail-with-body --cacert "$EMU_CA" -X POST -H 'Content-Type: application/json' \
		--data-binary "$1" "$EMU/_emu/faults" >/dev/null
}
nofault() { curl -sS --fail-with-body --cacert "$EMU_CA" -X DELETE "$EMU/_emu/faults" >/dev/null; }
# objects: "connectors rules" named $OUT.
objects() {
	emu_get "/_emu/tenants/$TENANT" |
		jpy "'%d %d' % (sum(c['Name'] == '$OUT' for c in d['outbound_connectors']), sum(r['Name'] == '$OUT' for r in d['rules']))"
}
# sent CMDLET: how often the emulator received it.
sent() { emu_get "/_emu/requests?cmdlet=$1" | jpy 'len(d)'; }
checkpoints() {
	db "SELECT count(*) FROM journal WHERE step='checkpoint' AND detail LIKE '%\"object\":\"$1 $OUT\"%' AND detail LIKE '%\"doing\":\"$2\"%'"
}

# --- (a) setup ----------------------------------------------------------------------
fault '{"kind":"acted_reset","count":1,"cmdlet":"New-OutboundConnector"}'
fault '{"kind":"acted_reset","count":1,"cmdlet":"New-TransportRule"}'
run mm -q setup $D --mode gateway $FAST
nofault
[ "$rc" = 0 ] || run mm -q resume $D
is "$rc $(objects) $(db "SELECT mode FROM domains WHERE domain='$D'")" "0 1 1 gateway" \
	"setup goes through: the connector and rule its lost writes made are its own, once each"
is "$(sent New-OutboundConnector) $(sent New-TransportRule)" "2 2" \
	"each creation was answered by a reset once and sent again"
run mm status $D
is "$rc" 0 "status: as set up, no drift"
ok "$([ "$(checkpoints 'outbound connector' creating)" -ge 1 ] && [ "$(checkpoints 'transport rule' creating)" -ge 1 ]; echo $?)" \
	"both creations were checkpointed before they were sent"

# --- (b) teardown -------------------------------------------------------------------
fault '{"kind":"acted_reset","count":1,"cmdlet":"Remove-TransportRule"}'
fault '{"kind":"acted_reset","count":1,"cmdlet":"Remove-OutboundConnector"}'
run mm -q teardown $D $FAST
nofault
[ "$rc" = 0 ] || run mm -q resume $D
is "$rc $(objects)" "0 0 0" "teardown finishes: the rule and the connector are gone"
ok "$([ "$(sent Remove-TransportRule)" -ge 2 ] && [ "$(sent Remove-OutboundConnector)" -ge 2 ]; echo $?)" \
	"each removal was answered by a reset once and sent again"
is "$(db "SELECT count(*) FROM domains WHERE domain='$D' AND mode IS NOT NULL")" 0 "no mode recorded"
ok "$([ "$(checkpoints 'transport rule' removing)" -ge 1 ] && [ "$(checkpoints 'outbound connector' removing)" -ge 1 ]; echo $?)" \
	"both removals were checkpointed before they were sent"
