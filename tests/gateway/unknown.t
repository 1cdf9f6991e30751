#!/bin/sh
# An UPDATE whose answer did not arrive has an unknown outcome (issue 11,
# class 2), never "not applied": it may sit in the primary's queue and land
# later.  Three ways to lose the answer, each followed until the UPDATE
# lands:
#   - BIND stopped (SIGSTOP) while the UPDATE is in flight;
#   - Knot stopped the same way;
#   - a forwarder holding the UPDATE longer than the timeout while reads
#     pass: the re-read answers with the old set, then the UPDATE lands.
# The window before the UPDATE comes from debug_pause_before_update_ms.
. "$top_srcdir/tests/gateway/gateway-lib.sh"

plan 22

M=mail.example.test
ORIG_MAIL="1800 5 mx-a.mail.example.test.
1800 15 mx-b.mail.example.test."

# setup_in_background PROFILE DOMAIN: starts setup, waits for its pause.
setup_in_background() {
	: >"$TEST_TMP/setup.err"
	"$MAILMODE" --config "$CONF" setup "$2" --mode gateway --profile "$1" \
		>"$TEST_TMP/setup.out" 2>"$TEST_TMP/setup.err" &
	setup_pid=$!
	wait_until 10 grep -q "pausing before the UPDATE" "$TEST_TMP/setup.err"
}

gateway_live() { [ "$(dns_mx "$1" "$2")" = "$GATEWAY_SET" ]; }

# --- BIND stopped with the UPDATE in flight -------------------------------
at_exit "kill -CONT $DNS_PRIMARY_PID 2>/dev/null"
setup_in_background slow $M
ok $? "BIND: setup read the MX set and pauses before its UPDATE"
kill -STOP "$DNS_PRIMARY_PID"
wait $setup_pid
rc=$?
err=$(cat "$TEST_TMP/setup.err")
is "$rc" 1 "BIND stopped: setup fails (exit 1)"
like "$err" "no answer from the primary 127.0.0.11 port $DNS_PORT to the UPDATE of mail.example.test \(no answer within 2 s\): outcome unknown; the UPDATE may still be applied: the primary did not answer the re-reads either" \
	"the outcome is reported unknown: the UPDATE may still be applied"
like "$err" "re-reading the MX set failed \([0-9]+ tries in 6 s\)" "the re-reads were bounded and shown"
unlike "$err" "not applied" "never reported as not applied"
kill -CONT "$DNS_PRIMARY_PID"
wait_until 20 gateway_live "$DNS_PRIMARY" $M
ok $? "BIND runs again: the queued UPDATE lands (the gateway set is live)"
mm status $M --profile lab
like "$out" "mail.example.test +- " "no mode is recorded by a setup that failed"
ckpt=$(sqlite3 "$DB" "SELECT new_receipt FROM migrations WHERE domain = '$M' ORDER BY id DESC LIMIT 1")
is "$(json_get "$ckpt" "(d['write']['object'], d['write']['doing'], [m['host'] for m in d['write']['from']], [m['host'] for m in d['write']['to']])")" \
	"('MX mail.example.test', 'swapping to the gateway set', ['mx-a.mail.example.test.', 'mx-b.mail.example.test.'], ['mx-01.gw.test.', 'mx-02.gw.test.'])" \
	"the checkpoint names the swap in flight, from the original to the gateway set"
is "$(json_get "$(sqlite3 "$DB" "SELECT snapshot FROM originals WHERE domain = '$M'")" "d['mx']")" \
	"[{'pref': 5, 'host': 'mx-a.mail.example.test.', 'ttl': 1800}, {'pref': 15, 'host': 'mx-b.mail.example.test.', 'ttl': 1800}]" \
	"the original was kept before the UPDATE"

mm resume $M
is "$rc" 0 "resume finishes the setup (the late UPDATE's gateway set is ours)"
[ "$rc" = 0 ] || diag "resume: $err"
is "$(json_get "$(receipt_of $M)" "d['mx']")" \
	"[{'pref': 5, 'host': 'mx-a.mail.example.test.', 'ttl': 1800}, {'pref': 15, 'host': 'mx-b.mail.example.test.', 'ttl': 1800}]" \
	"the receipt holds the original the late UPDATE replaced"
mm teardown $M
is "$(mx_bind $M)" "$ORIG_MAIL" "teardown puts the original back"

# --- Knot stopped with the UPDATE in flight -------------------------------
at_exit "kill -CONT $DNS_KNOT_PID 2>/dev/null"
setup_in_background knot-slow knot.test
ok $? "Knot: setup read the MX set and pauses before its UPDATE"
kill -STOP "$DNS_KNOT_PID"
wait $setup_pid
rc=$?
err=$(cat "$TEST_TMP/setup.err")
is "$rc" 1 "Knot stopped: setup fails (exit 1)"
like "$err" "to the UPDATE of knot.test \(no answer within 2 s\): outcome unknown; the UPDATE may still be applied" \
	"the outcome is reported unknown"
unlike "$err" "not applied" "never reported as not applied"
kill -CONT "$DNS_KNOT_PID"
wait_until 20 gateway_live "$DNS_KNOT" knot.test
ok $? "Knot runs again: the queued UPDATE lands"

# --- the answer lost, the re-read answered, the UPDATE late ----------------
"$PYTHON3" "$top_srcdir/tests/servers/dnsdelay.py" --listen "127.0.0.15:$DNS_PORT" \
	--to "$DNS_PRIMARY:$DNS_PORT" --update-ms 5000 --pass-updates 1 --stats "$TEST_TMP/delay.json" \
	--owner-pid $$ >"$TEST_TMP/delay.log" 2>&1 &
delay_pid=$!
at_exit "kill $delay_pid 2>/dev/null"
wait_until 10 test -s "$TEST_TMP/delay.json"
D=example.test
mm setup $D --mode gateway --profile late
is "$rc" 1 "UPDATE held past the timeout: setup fails (exit 1)"
like "$err" "outcome unknown; the UPDATE may still be applied: a re-read shows the old MX set, so it has not landed yet" \
	"a re-read showing the old set is not taken for 'not applied'"
unlike "$err" "not applied" "never reported as not applied"
wait_until 20 gateway_live "$DNS_PRIMARY" $D
ok $? "the held UPDATE lands later (the gateway set is live)"
is "$(json_get "$(cat "$TEST_TMP/delay.json")" "d.get('update')")" 2 "two UPDATEs were sent: the preflight's no-op probe (passed at once) and the swap"
