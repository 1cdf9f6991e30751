#!/bin/sh
# The TTL plan of a change window (issue 13): the cache wait of a switch is
# the TTL of the MX records it replaces.  `prepare --ttl` lowers the TTL of
# the records the gateway mode manages, in BIND, whatever mode the domain
# is in, records the TTL before in the state DB and says when the window is
# ready; the dry run says the wait before anything runs; the switch keeps
# the old mode until the TTL before has run out (or --max-settle, with a
# warning naming the bypass it risks) and leaves the records with their
# normal TTL; a prepare killed before its UPDATE is finished by running it
# again, a re-lower that fails keeps the TTL before, and --undo puts the
# TTL back.  The other mode is the example mode
# (a JSON world), so the MX records are the gateway's only.
. "$top_srcdir/tests/gateway/gateway-lib.sh"

plan 69

cp "$PLUGIN_DIR/example.so" "$PLUGINS/"
chmod 755 "$PLUGINS/example.so"
cat >>"$CONF" <<CONF

[profile ttl]
dns = bind
service = gw
example_world = example.json

[profile ttl-slow]
dns = bind-slow
service = gw
example_world = example.json
CONF

D=example.test
db() { sqlite3 "$DB" "$1"; }
prepared() { db "SELECT phase, ttl, coalesce(ttl_before, '-') FROM prepares WHERE domain = '$D'"; }
LOWERED="2 10 mx1.example.test.
2 20 mx2.example.test."

mm setup $D --mode example --profile ttl
is "$rc" 0 "the domain is set up in the example mode (the MX records are not its)"

# The dry run states the wait, from the TTL the plugin reads in BIND.
mm switch $D --to gateway --dry-run
is "$rc" 0 "switch --dry-run succeeds"
like "$out" "wait example mode: keep example mode ~60 min after gateway mode verifies, while caches may hold the replaced MX records \(TTL 3600 s\)" \
	"the dry run states the wait: the MX TTL 3600 s"
like "$out" "run 'mailmode prepare example.test --ttl 300' at least 60 min ahead" \
	"it says to prepare a TTL's time ahead"
mm --json switch $D --to gateway --dry-run --max-settle 30s
is "$(json_get "$out" "[s['step'] for s in d['plan']]")" "['setup', 'verify', 'wait', 'teardown', 'confirm']" \
	"--json: the wait comes between verify and teardown"
is "$(json_get "$out" "(d['plan'][2]['mode'], d['plan'][2]['mx_ttl'], d['plan'][2]['wait_ms'])")" "('example', 3600, 30000)" \
	"--json: the mode kept, the TTL read, the capped wait"
like "$(json_get "$out" "d['plan'][2]['actions'][0]")" "max-settle cuts it to 30 s: for up to 60 min after example mode is torn down, mail that resolvers still send to the replaced MX records reaches example mode's path without it and is not scanned" \
	"the dry run with --max-settle names the risk"

# A kill between the checkpoint and the UPDATE: the row says so.
# kill_mid_prepare: starts a prepare that pauses before its UPDATE, kills
# it once its checkpoint is stored.
kill_mid_prepare() {
	"$MAILMODE" --config "$CONF" prepare $D --ttl 2 --profile ttl-slow >"$TEST_TMP/slow.out" 2>&1 &
	slow=$!
	wait_until 20 sh -c "[ -n \"\$(sqlite3 '$DB' \"SELECT record FROM prepares WHERE domain = '$D'\")\" ]"
	_kmp=$?
	kill -9 $slow
	wait $slow 2>/dev/null
	return $_kmp
}
kill_mid_prepare
ok $? "the prepare checkpoints before its UPDATE"
is "$(prepared)" "lowering|2|-" "killed mid-prepare: the state DB holds an unfinished prepare"
is "$(mx_bind $D)" "$ORIG_EXAMPLE" "the UPDATE was not sent"
mm prepare --undo $D --profile ttl
is "$rc:$(db "SELECT count(*) FROM prepares")" "0:0" "a killed prepare can be undone"
is "$(mx_bind $D)" "$ORIG_EXAMPLE" "undone, the TTL is still 3600"
kill_mid_prepare
ok $? "killed mid-prepare again"
mm switch $D --to gateway
is "$rc" 4 "a switch is refused while the prepare is unfinished"
like "$err" "unfinished prepare of its MX TTL .*run 'mailmode prepare example.test' to finish it" "the refusal names the way out"
mm status $D
like "$out" "UNFINISHED prepare \(lowering\) of gateway mode's MX TTL" "status shows the unfinished prepare"

mm prepare $D --ttl 2 --profile ttl
is "$rc" 0 "prepare again finishes it"
is "$(mx_bind $D)" "$LOWERED" "BIND serves the MX records with TTL 2"
dns_wait_serial "$DNS_SECONDARY" $D "$(dns_serial "$DNS_PRIMARY" $D)" 20
is "$(dns_mx "$DNS_SECONDARY" $D)" "$LOWERED" "so does the secondary (NOTIFY)"
like "$out" "lowered to 2 s \(before: 3600 s\)" "it names the TTL before (from its checkpoint)"
like "$out" "ready for the switch at [0-9-]+ [0-9:]+ UTC \(in 60 min\): until then caches may hold the MX records with TTL 3600 s" \
	"it says when the window is ready (now + the TTL before)"
is "$(prepared)" "lowered|2|3600" "the state DB records the TTL before"
ready=$(db "SELECT ready_at_ms FROM prepares WHERE domain = '$D'")
now=$(date +%s)
ok "$([ $((ready / 1000 - now)) -ge 3590 ] && [ $((ready / 1000 - now)) -le 3600 ]; echo $?)" \
	"ready at is now + 3600 s"
like "$(db "SELECT snapshot FROM originals WHERE domain = '$D' AND mode = 'gateway' AND restored_at IS NULL")" \
	'"host":"mx1.example.test.","ttl":3600' "the original kept for the gateway's teardown has the TTL before"
mm status $D
like "$out" "PREPARED: gateway mode's MX TTL 2 s \(before: 3600 s\): ready at .* \(in 60 min\)" "status says when it is ready"

# A re-lower that fails keeps the prepare as it was: one that wrote
# nothing (BIND not answering its read) leaves the row as before, one
# refused after its checkpoint keeps the TTL before; the undo below then
# still puts back 3600.
kill -STOP "$DNS_PRIMARY_PID"
mm prepare $D --ttl 1 --profile ttl
kill -CONT "$DNS_PRIMARY_PID"
is "$rc" 1 "a re-lower that cannot read the zone fails"
like "$err" "nothing was changed" "and says nothing was changed"
is "$(prepared)" "lowered|2|3600" "the state DB holds the prepare as it was (TTL 2, before 3600)"
mm prepare $D --ttl 1 --profile wrong-secret
is "$rc" 1 "a re-lower refused by BIND (wrong TSIG secret) fails"
is "$(prepared)" "lowering|1|3600" "the state DB keeps the TTL before"
is "$(mx_bind $D)" "$LOWERED" "BIND still serves TTL 2"

# Undo puts the TTL before back, and a prepare after it starts afresh.
mm prepare --undo $D --profile ttl
is "$rc" 0 "prepare --undo succeeds"
is "$(mx_bind $D)" "$ORIG_EXAMPLE" "BIND serves the TTL 3600 again"
is "$(db "SELECT count(*) FROM prepares")" "0" "the prepare is gone from the state DB"
is "$(db "SELECT count(*) FROM originals WHERE domain = '$D' AND mode = 'gateway' AND restored_at IS NULL")" "0" \
	"the original it kept is released"
mm prepare --undo $D
is "$rc" 1 "undo without a prepare fails"
like "$err" "example.test: no prepared MX TTL to undo" "naming the domain"

# A lost answer: the outcome is unknown, never "not applied"; running the
# prepare again once the UPDATE landed finishes it with the TTL before.
at_exit "kill -CONT $DNS_PRIMARY_PID 2>/dev/null"
"$MAILMODE" --config "$CONF" prepare $D --ttl 2 --profile ttl-slow >/dev/null 2>"$TEST_TMP/lost.err" &
lost=$!
wait_until 10 grep -q "pausing before the UPDATE" "$TEST_TMP/lost.err"
kill -STOP "$DNS_PRIMARY_PID"
wait $lost
rc=$?
kill -CONT "$DNS_PRIMARY_PID"
is "$rc" 1 "BIND stopped during the UPDATE: prepare fails"
like "$(cat "$TEST_TMP/lost.err")" "outcome unknown; the UPDATE may still be applied.*the MX TTL change may have landed: run 'mailmode prepare example.test' again to finish it" \
	"the outcome is unknown, and the way on is named"
is "$(prepared)" "lowering|2|-" "the prepare stays unfinished"
lowered_live() { [ "$(mx_bind $D)" = "$LOWERED" ]; }
wait_until 20 lowered_live
ok $? "the queued UPDATE lands: TTL 2"
mm prepare $D --ttl 2 --profile ttl
is "$rc" 0 "prepare again finishes it"
like "$out" "already at most 2 s \(before: 3600 s\)" "with the TTL before from its checkpoint"
mm switch $D --to gateway --dry-run
like "$out" "the MX TTL is 2 s since a prepare, but caches may hold the records with the TTL before until" \
	"the dry run waits for the TTL before, not the lowered one"

# The switch keeps example mode until the TTL before has run out; capped.
start=$(date +%s)
mm switch $D --to gateway --max-settle 3s --verify-timeout 30s --poll-interval 1s
is "$rc" 0 "the switch succeeds"
elapsed=$(( $(date +%s) - start ))
ok "$([ $elapsed -ge 3 ] && [ $elapsed -lt 60 ]; echo $?)" "it waited the capped 3 s (took ${elapsed}s)"
like "$err" "--max-settle cuts the cache wait short by 60 min: resolvers that cached the MX records gateway mode replaced may send mail for example.test to them \(the example mode's path\) until .*, but example mode is torn down at .*; mail arriving that way in between is delivered without passing through the service \(not scanned\): a bypass window of up to 60 min" \
	"the warning says what the cap risks"
is "$(db "SELECT count(*) FROM journal WHERE phase = 'settle_capped'")" "1" "the cap is journaled"
is "$(mx_bind $D)" "$GATEWAY_SET" "the gateway set is live with its own TTL (300)"
is "$(db "SELECT count(*) FROM prepares")" "0" "the switch consumed the prepare"
like "$(receipt_of $D)" '"replaced_ttl":2' "the receipt records the TTL that was live when replaced"

# In gateway mode the gateway set is lowered; the way back restores the
# original with its own TTL, never the lowered one.
mm prepare $D --ttl 2
is "$rc" 0 "prepare in gateway mode succeeds"
is "$(mx_bind $D)" "2 10 mx-01.gw.test.
2 20 mx-02.gw.test." "BIND serves the gateway set with TTL 2"
mm verify $D
is "$rc" 0 "the gateway mode still verifies (its receipt has the lowered TTL)"
mm switch $D --to example --dry-run
like "$out" "no cache wait: for up to 2 s after the switch resolvers may still send mail to gateway mode's MX records \(TTL 2 s\)" \
	"to a mode that replaces no MX: no wait, and why that is safe"
mm switch $D --to example --verify-timeout 30s --poll-interval 1s
is "$rc" 0 "the switch back succeeds"
is "$(mx_bind $D)" "$ORIG_EXAMPLE" "the original MX set is back with its normal TTL 3600"
is "$(db "SELECT count(*) FROM prepares")" "0" "the switch consumed the prepare"

# Without the original a prepare kept (a rollback releases it), the setup
# keeps the TTLs the prepare recorded as the original, not the live ones.
mm prepare $D --ttl 2 --profile ttl
sqlite3 "$DB" "UPDATE originals SET restored_at = 'test' WHERE domain = '$D' AND restored_at IS NULL"
mm switch $D --to gateway --max-settle 1s --verify-timeout 30s --poll-interval 1s
is "$rc" 0 "switched to gateway with no original kept"
like "$(db "SELECT snapshot FROM originals WHERE domain = '$D' AND mode = 'gateway' AND restored_at IS NULL")" \
	'"host":"mx1.example.test.","ttl":3600' "the original setup kept has the TTL before the prepare, not 2"
mm switch $D --to example --verify-timeout 30s --poll-interval 1s
is "$rc:$(mx_bind $D)" "0:$ORIG_EXAMPLE" "back: the original with TTL 3600, never the lowered one"

# The runbook: plan states the wait, the prepare phase lowers the TTL of
# each domain whose switch waits for it, run keeps to its max_settle.
cat >"$TEST_TMP/window.rb" <<RB
[runbook]
prepare_ttl = 2
max_settle = 2s
verify_timeout = 30s
poll_interval = 1s

[domains]
example.test = gateway ttl
RB
mm runbook plan "$TEST_TMP/window.rb"
is "$rc" 0 "runbook plan succeeds"
like "$out" "keep example mode ~60 min after gateway mode verifies.*--max-settle cuts it to 2 s" \
	"runbook plan states the wait and its cap"
mm runbook prepare "$TEST_TMP/window.rb"
is "$rc" 0 "runbook prepare succeeds"
is "$(mx_bind $D)" "$LOWERED" "runbook prepare lowered the TTL in BIND to its prepare_ttl"
is "$(prepared)" "lowered|2|3600" "and recorded the TTL before"
mm runbook run "$TEST_TMP/window.rb"
is "$rc" 0 "runbook run switches"
like "$err" "--max-settle cuts the cache wait short by 60 min" "its max_settle caps the wait, with the warning"
is "$(mx_bind $D):$(db "SELECT count(*) FROM prepares")" "$GATEWAY_SET:0" \
	"the gateway set is live with its own TTL, the prepare consumed"
