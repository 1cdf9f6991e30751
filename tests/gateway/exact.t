#!/bin/sh
# Verify is exact (issue 11, class 7, gateway side): the gateway records
# with another TTL, or an extra MX record next to them, is drift: verify
# fails (exit 3) and status shows the mode partial (exit 4), both naming
# the difference.  Setup run again puts the configured TTLs back.
. "$top_srcdir/tests/gateway/gateway-lib.sh"

plan 18

D=example.test
caught_up() {
	dns_wait_serial "$DNS_SECONDARY" $D "$(dns_serial "$DNS_PRIMARY" $D)" 20
}

mm setup $D --mode gateway --profile lab
is "$rc" 0 "setup succeeds"
caught_up
mm verify $D
is "$rc" 0 "verify passes"

# The gateway records with a TTL of 60 instead of 300.
dns_update "$DNS_PRIMARY" $D "update delete $D. MX" \
	"update add $D. 60 MX 10 mx-01.gw.test." \
	"update add $D. 60 MX 20 mx-02.gw.test." >/dev/null
caught_up
ok $? "the TTLs are changed by hand and the secondary has it"
mm verify $D
is "$rc" 3 "verify fails (exit 3) on a changed TTL"
like "$err" "ttl: 10 mx-01.gw.test. 60 instead of 300, 20 mx-02.gw.test. 60 instead of 300" "the TTLs are named"
mm --json status $D
is "$rc" 4 "status reports drift (exit 4)"
is "$(json_get "$out" "d['domains'][0]['observed']['gateway']['presence']")" "partial" "observe: partial"

mm setup $D --mode gateway --profile lab
is "$rc" 0 "setup run again"
is "$(mx_bind $D)" "$GATEWAY_SET" "it puts the configured TTLs back"
caught_up
mm verify $D
is "$rc" 0 "verify passes again"

# An extra MX record next to the gateway set.
dns_update "$DNS_PRIMARY" $D "update add $D. 300 MX 30 rogue.example.test." >/dev/null
caught_up
ok $? "an MX record is added by hand"
mm verify $D
is "$rc" 3 "verify fails (exit 3) on an extra record"
like "$err" "extra: 30 rogue.example.test. \(ttl 300\)" "the extra record is named"
mm --json status $D
is "$rc" 4 "status reports drift (exit 4)"
is "$(json_get "$out" "d['domains'][0]['observed']['gateway']['presence']")" "partial" "observe: partial"
like "$(json_get "$out" "d['domains'][0]['observed']['gateway']")" "extra: 30 rogue.example.test." "status names the extra record"

# Adopted (set up by hand, no receipt): mailmode chose no TTL, so the
# TTLs served are the ones expected.
A=mail.example.test
dns_update "$DNS_PRIMARY" example.test "update delete $A. MX" \
	"update add $A. 1800 MX 10 mx-01.gw.test." \
	"update add $A. 1800 MX 20 mx-02.gw.test." >/dev/null
caught_up
mm adopt $A --mode gateway --profile lab
is "$rc" 0 "a hand-made gateway set with its own TTLs is adopted"
mm verify $A
is "$rc" 0 "and verifies"
