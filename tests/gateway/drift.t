#!/bin/sh
# Teardown is a compare-and-swap from the gateway set: when the live set is
# neither the gateway set nor the saved one it refuses (exit 4) and shows
# both; --force restores.  Teardown is idempotent when the saved set is
# already live.  An adopted domain (no receipt) gets fallback_mx.
. "$top_srcdir/tests/gateway/gateway-lib.sh"

plan 19

D=example.test

mm setup $D --mode gateway --profile lab
is "$rc" 0 "setup succeeds"
dns_update "$DNS_PRIMARY" $D "update add $D. 300 MX 30 rogue.example.test." >/dev/null
ok $? "someone adds an MX record by hand"
DRIFTED="300 10 mx-01.gw.test.
300 20 mx-02.gw.test.
300 30 rogue.example.test."
serial=$(dns_serial "$DNS_PRIMARY" $D)

mm teardown $D --dry-run
is "$rc" 4 "teardown --dry-run is refused on drift too (exit 4)"

mm teardown $D
is "$rc" 4 "teardown is refused (exit 4)"
like "$err" "the MX set of example.test has drifted: it is neither the gateway set nor the original MX set" "the refusal says why"
like "$err" "live: 10 mx-01.gw.test. \(ttl 300\), 20 mx-02.gw.test. \(ttl 300\), 30 rogue.example.test." "it shows the live set"
like "$err" "to restore \(the original MX set\): 10 mx1.example.test. \(ttl 3600\), 20 mx2.example.test. \(ttl 3600\)" "it shows the saved set"
is "$(mx_bind $D)" "$DRIFTED" "the zone is untouched"
is "$(dns_serial "$DNS_PRIMARY" $D)" "$serial" "no UPDATE was sent"

mm teardown $D --force
is "$rc" 0 "teardown --force succeeds"
is "$(mx_bind $D)" "$ORIG_EXAMPLE" "the original MX set is back exactly"

# Idempotent: the saved set restored by someone else already.
mm setup $D --mode gateway --profile lab
is "$rc" 0 "setup again"
dns_update "$DNS_PRIMARY" $D "update delete $D. MX" \
	"update add $D. 3600 MX 10 mx1.example.test." \
	"update add $D. 3600 MX 20 mx2.example.test." >/dev/null
serial=$(dns_serial "$DNS_PRIMARY" $D)
mm teardown $D
is "$rc" 0 "teardown succeeds when the saved set is already live"
is "$(dns_serial "$DNS_PRIMARY" $D)" "$serial" "and sends no UPDATE"

# Adopted: configured by hand, no receipt; teardown restores fallback_mx.
A=mail.example.test
dns_update "$DNS_PRIMARY" example.test "update delete $A. MX" \
	"update add $A. 300 MX 10 mx-01.gw.test." \
	"update add $A. 300 MX 20 mx-02.gw.test." >/dev/null
serial=$(dns_serial "$DNS_PRIMARY" example.test)
dns_wait_serial "$DNS_SECONDARY" example.test "$serial" 10
mm adopt $A --mode gateway --profile lab
is "$rc" 0 "a domain switched by hand is adopted (observe: present)"
mm teardown $A --dry-run
like "$out" "add: mail.example.test. 3600 IN MX 5 fallback.example.test." "teardown plan of the adopted domain restores fallback_mx"
mm teardown $A
is "$rc" 0 "teardown of the adopted domain succeeds"
is "$(mx_bind $A)" "3600 5 fallback.example.test." "fallback_mx is live (TTL 3600)"

mm adopt example.test --mode gateway --profile lab
is "$rc" 3 "adopting a domain without the gateway set is refused (observe: absent)"
