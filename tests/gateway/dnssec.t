#!/bin/sh
# A DNSSEC-signed zone (BIND dnssec-policy default, inline-signing yes):
# the swap goes through the signer and the new MX set is signed on both
# servers; teardown brings back the original, signed.
. "$top_srcdir/tests/gateway/gateway-lib.sh"

plan 11

D=signed.test
ORIG_SIGNED="3600 10 mx1.signed.test.
3600 20 mx2.signed.test."

[ -n "$(dns_rrsig "$DNS_PRIMARY" $D MX)" ]
ok $? "the zone is signed: the original MX set has an RRSIG"

mm setup $D --mode gateway --profile lab
is "$rc" 0 "setup succeeds"
is "$(mx_bind $D)" "$GATEWAY_SET" "the primary serves the gateway set"
like "$(dns_rrsig "$DNS_PRIMARY" $D MX)" "RRSIG[[:space:]]+MX 13 2 300 " "the new MX set has an RRSIG (TTL 300) on the primary"

serial=$(dns_serial "$DNS_PRIMARY" $D)
dns_wait_serial "$DNS_SECONDARY" $D "$serial" 10
like "$(dns_rrsig "$DNS_SECONDARY" $D MX)" "RRSIG[[:space:]]+MX 13 2 300 " "and on the secondary"

mm --json verify $D
is "$rc" 0 "verify passes"
is "$(json_get "$out" "sorted((s['address'], s['zone_signed'], s['mx_signed']) for s in d['report']['servers'])")" \
	"[('127.0.0.11', True, True), ('127.0.0.12', True, True)]" \
	"verify reports a signed zone and a signed MX set on each server"

mm teardown $D
is "$rc" 0 "teardown succeeds"
is "$(mx_bind $D)" "$ORIG_SIGNED" "the original MX set is back"
like "$(dns_rrsig "$DNS_PRIMARY" $D MX)" "RRSIG[[:space:]]+MX 13 2 3600 " "signed again (TTL 3600)"
serial=$(dns_serial "$DNS_PRIMARY" $D)
dns_wait_serial "$DNS_SECONDARY" $D "$serial" 10
is "$(dns_mx "$DNS_SECONDARY" $D)" "$ORIG_SIGNED" "the secondary serves it too"
