#!/bin/sh
# A mail domain below its zone apex: mail.example.test lives in zone
# example.test (found by the SOA walk).  Only its MX set changes; the
# apex's MX set is left alone.
. "$top_srcdir/tests/gateway/gateway-lib.sh"

plan 11

D=mail.example.test
ORIG_MAIL="1800 5 mx-a.mail.example.test.
1800 15 mx-b.mail.example.test."

mm setup $D --mode gateway --profile lab --dry-run
like "$out" "UPDATE zone example.test. at primary 127.0.0.11 " "plan: the UPDATE goes to zone example.test"
like "$out" "delete: mail.example.test. ANY MX" "plan: the MX RRset of mail.example.test is replaced"

mm --json setup $D --mode gateway --profile lab
is "$rc" 0 "setup succeeds"
is "$(json_get "$out" "d['receipt']['zone']")" "example.test" "the receipt names the zone"
is "$(mx_bind $D)" "$GATEWAY_SET" "mail.example.test serves the gateway set"
is "$(mx_bind example.test)" "$ORIG_EXAMPLE" "the apex MX set is untouched"

serial=$(dns_serial "$DNS_PRIMARY" example.test)
dns_wait_serial "$DNS_SECONDARY" example.test "$serial" 10
mm verify $D
is "$rc" 0 "verify passes on both servers"

mm teardown $D
is "$rc" 0 "teardown succeeds"
is "$(mx_bind $D)" "$ORIG_MAIL" "mail.example.test serves its original MX set (TTL 1800)"
is "$(mx_bind example.test)" "$ORIG_EXAMPLE" "the apex MX set is still untouched"
serial=$(dns_serial "$DNS_PRIMARY" example.test)
dns_wait_serial "$DNS_SECONDARY" example.test "$serial" 10
is "$(dns_mx "$DNS_SECONDARY" $D)" "$ORIG_MAIL" "the secondary serves the original set too"
