#!/bin/sh
# The fault test (issue 11): every admin API call of a switch, in turn,
# gets each fault kind, in both directions (gateway -> mailflow and back):
#   429 and 503 (throttled or unavailable: the host waits and retries),
#   error (400 with an Exchange CmdletError body: refused),
#   reset (the connection closes before the cmdlet runs: no answer),
#   acted_hang (the cmdlet runs, its answer hangs past the client's
#   timeout: no answer, but the change was made).
# The calls are those a clean switch makes, from the emulator's request
# log.  After each faulted switch (and `mailmode resume` when it left the
# migration open), every time: one mode in the state DB, no migration
# open, the tenant holds exactly that mode's objects (no leftovers, no
# duplicates, objects not listed yet included), and both DNS servers serve
# that mode's MX.  --force is never used.
# FAULT_KINDS (environment) narrows the kinds, e.g. FAULT_KINDS="error".
. "$top_srcdir/tests/migrate/lib.sh"
FRONT_DOOR="0 contoso-test.mail.protection.outlook.test."
KINDS=${FAULT_KINDS:-429 503 error reset acted_hang}
FAST="--poll-interval 200ms --verify-timeout 20s"

# Short client timeout so an answer that hangs is a lost answer; a short
# visibility window so a rollback does not wait 30 minutes for a create
# whose answer was lost and that never happened.
cat >>"$MAILMODE_CONFIG" <<'CONF'

[mode mailflow]
timeout_ms = 1500
visibility_window_ms = 4000
CONF

ctl() {
	curl -s --cacert "$EMU_CA" -X "$1" -H 'Content-Type: application/json' \
		${3:+-d "$3"} "$EMU$2"
}
# calls: the InvokeCommand cmdlets recorded since the log was cleared.
calls() {
	ctl GET "/_emu/requests?kind=invoke" | "$PYTHON3" -c '
import json, sys
print(" ".join(r["cmdlet"] or "?" for r in json.load(sys.stdin)))'
}

# expect_mode MODE: the state DB, the tenant and both DNS servers agree
# on MODE; one TAP line.
expect_mode() {
	if [ "$1" = mailflow ]; then
		wait_mx contoso.test "$FRONT_DOOR"
		want="mailflow|0|1 1 1 mailmode route #1|$FRONT_DOOR | $FRONT_DOOR"
	else
		wait_mx contoso.test "$GATEWAY_SET"
		want="gateway|0|0 0 0 |$GATEWAY_SET | $GATEWAY_SET"
	fi
	is "$(db "SELECT group_concat(mode) FROM domains WHERE mode IS NOT NULL")|$(db "SELECT count(*) FROM migrations WHERE finished_at IS NULL")|$(tenant_objects)|$(mx_both contoso.test)" \
		"$want" "$2"
}

mm adopt contoso.test --mode gateway >/dev/null 2>&1
ctl DELETE /_emu/requests >/dev/null
mm -q switch contoso.test --to mailflow $FAST >/dev/null 2>&1
TO_MAILFLOW=$(calls)
ctl DELETE /_emu/requests >/dev/null
mm -q switch contoso.test --to gateway $FAST >/dev/null 2>&1
TO_GATEWAY=$(calls)
n_mf=$(echo $TO_MAILFLOW | wc -w)
n_gw=$(echo $TO_GATEWAY | wc -w)
n_kinds=$(echo $KINDS | wc -w)
plan $(( 2 + (n_mf + n_gw) * n_kinds ))
diag "gateway -> mailflow: $n_mf calls: $TO_MAILFLOW"
diag "mailflow -> gateway: $n_gw calls: $TO_GATEWAY"
ok $([ "$n_mf" -gt 0 ] && [ "$n_gw" -gt 0 ]; echo $?) "clean switches make admin API calls both ways"
expect_mode gateway "after the clean switches: gateway"

# fault_case FROM TO INDEX CMDLET KIND
fault_case() {
	ctl DELETE /_emu/faults >/dev/null
	ctl POST /_emu/faults "{\"kind\":\"$5\",\"skip\":$(($3 - 1)),\"delay_ms\":2500,\"retry_after\":1}" >/dev/null
	ctl DELETE /_emu/requests >/dev/null
	mm -q switch contoso.test --to "$2" $FAST >"$TEST_TMP/case.out" 2>&1
	src=$?
	ctl DELETE /_emu/faults >/dev/null
	hit=$(ctl GET "/_emu/requests?kind=invoke" | "$PYTHON3" -c '
import json, sys
print(",".join(r["cmdlet"] or "?" for r in json.load(sys.stdin) if r.get("fault")) or "none")')
	resumed=""
	if [ "$(db "SELECT count(*) FROM migrations WHERE finished_at IS NULL")" -gt 0 ]; then
		mm -q resume contoso.test >>"$TEST_TMP/case.out" 2>&1
		resumed=", resumed (exit $?)"
	fi
	mode=$(db "SELECT mode FROM domains WHERE domain='contoso.test'")
	case $mode in
	mailflow|gateway) ;;
	*) mode=none ;;
	esac
	expect_mode "$mode" "$1 -> $2, call $3 ($4) $5 (faulted: $hit): switch exit $src$resumed, ends in $mode"
	if [ "$mode" = none ]; then
		sed 's/^/#   /' "$TEST_TMP/case.out"
	fi
	# The next case starts from FROM again.
	if [ "$mode" = "$2" ]; then
		mm -q switch contoso.test --to "$1" $FAST >/dev/null 2>&1
	fi
}

for dir in "gateway mailflow" "mailflow gateway"; do
	set -- $dir
	from=$1 to=$2
	if [ "$from" = mailflow ]; then
		mm -q switch contoso.test --to mailflow $FAST >/dev/null 2>&1
		list=$TO_GATEWAY
	else
		list=$TO_MAILFLOW
	fi
	call_no=1
	for cmdlet in $list; do
		for kind in $KINDS; do
			fault_case "$from" "$to" "$call_no" "$cmdlet" "$kind"
		done
		call_no=$((call_no + 1))
	done
done
