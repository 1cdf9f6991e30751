#!/bin/sh
# The compare-and-swap: another client changes the MX set between
# mailmode's read and its UPDATE.  The UPDATE's prerequisite fails
# (NXRRSET), nothing of ours lands, the change of the other client stays,
# and the error shows both sets.
# (Stopping the primary in that window instead: unknown.t.)
#
# The window is made deterministic with the [dns] key
# debug_pause_before_update_ms (a documented testing aid: the plugin
# sleeps through the host between read and UPDATE and logs a warning).
. "$top_srcdir/tests/gateway/gateway-lib.sh"

plan 9

D=example.test

"$MAILMODE" --config "$CONF" setup $D --mode gateway --profile slow \
	>"$TEST_TMP/setup.out" 2>"$TEST_TMP/setup.err" &
setup_pid=$!

# Wait until the plugin has read the MX set and is pausing.
wait_until 10 grep -q "pausing before the UPDATE" "$TEST_TMP/setup.err"
ok $? "setup read the MX set and pauses before its UPDATE"

dns_update "$DNS_PRIMARY" $D "update add $D. 3600 MX 30 mx3.example.test." >"$TEST_TMP/nsupdate.out" 2>&1
ok $? "another client (knsupdate) adds an MX record meanwhile"
serial_other=$(dns_serial "$DNS_PRIMARY" $D)

wait $setup_pid
rc=$?
err=$(cat "$TEST_TMP/setup.err")
is "$rc" 3 "setup is refused and rolled back (exit 3; the world changed)"
like "$err" "changed on the primary between our read and our UPDATE \(NXRRSET\)" "the error names NXRRSET"
like "$err" "MX read before the UPDATE: 10 mx1.example.test. \(ttl 3600\), 20 mx2.example.test. \(ttl 3600\)" "the error shows the set that was read"
like "$err" "MX live now: .*30 mx3.example.test." "the error shows the set live now"

is "$(mx_bind $D)" "3600 10 mx1.example.test.
3600 20 mx2.example.test.
3600 30 mx3.example.test." "the zone holds the other client's change and nothing of ours"
is "$(dns_serial "$DNS_PRIMARY" $D)" "$serial_other" "no further change after the other client's"

mm status $D --profile lab
like "$out" "example.test +- " "the state records no mode for the domain"
