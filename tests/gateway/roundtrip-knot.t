#!/bin/sh
# Gateway mode on Knot DNS: setup, verify, teardown; the primary comes from
# the SOA MNAME; the original MX set (two records, TTL 3600) comes back
# exactly.
. "$top_srcdir/tests/gateway/gateway-lib.sh"

plan 11

D=knot.test
ORIG_KNOT="3600 10 mx1.knot.test.
3600 20 mx2.knot.test."
knot_mx() { dns_mx "$DNS_KNOT" "$1"; }

is "$(knot_mx $D)" "$ORIG_KNOT" "Knot serves the original MX set"
serial0=$(dns_serial "$DNS_KNOT" $D)

mm setup $D --mode gateway --profile knot --dry-run
like "$out" "UPDATE zone knot.test. at primary 127.0.0.13 " "plan: the primary is the SOA MNAME's address"

mm setup $D --mode gateway --profile knot
is "$rc" 0 "setup succeeds"
is "$(knot_mx $D)" "$GATEWAY_SET" "Knot serves exactly the gateway set"
[ "$(dns_serial "$DNS_KNOT" $D)" -gt "$serial0" ]
ok $? "the serial went up"

mm verify $D
is "$rc" 0 "verify passes"
like "$err" "ns1.knot.test. \(127.0.0.13\)" "verify asked ns1.knot.test directly"

mm setup $D --mode gateway --profile knot
is "$rc" 0 "setup again succeeds (idempotent)"

mm teardown $D
is "$rc" 0 "teardown succeeds"
is "$(knot_mx $D)" "$ORIG_KNOT" "Knot serves the original MX set again, TTLs included"

mm verify $D
is "$rc" 1 "verify of a torn-down domain fails (no mode recorded)"
