#!/bin/sh
# Preflight (issue 11, class 4; ABI 1.2): before anything changes, the
# gateway plugin proves setup or teardown can run: the zone is found, the
# MX set reads from the primary and every authoritative server, and the
# primary accepts a signed UPDATE of the domain's MX from the key (a no-op
# UPDATE).  The zone never changes.  Against BIND and Knot.
. "$top_srcdir/tests/gateway/gateway-lib.sh"

plan 28

PF="$top_builddir/tests/gateway/gw_preflight"
[ -x "$PF" ] || { echo "Bail out! $PF is not built"; exit 1; }

# preflight DOMAIN PROFILE setup|teardown [RECEIPT]
preflight() { run "$PF" "$CONF" "$PLUGINS" "$@"; }

D=mail.example.test
serial=$(dns_serial "$DNS_PRIMARY" example.test)
kserial=$(dns_serial "$DNS_KNOT" knot.test)
unchanged() {
	[ "$(dns_serial "$DNS_PRIMARY" example.test)" = "$serial" ] &&
		[ "$(dns_serial "$DNS_KNOT" knot.test)" = "$kserial" ]
}

preflight $D lab setup
is "$out" "OK retryable=0" "BIND, right key: setup preflight OK"
like "$err" "gateway setup of mail.example.test can run: zone example.test read from the primary 127.0.0.11 and every authoritative server, TSIG key gw-key may update" "it says what it proved"
unchanged
ok $? "BIND: the zone's SOA serial is unchanged"

preflight knot.test knot setup
is "$out" "OK retryable=0" "Knot, right key: setup preflight OK"
unchanged
ok $? "Knot: the zone's SOA serial is unchanged"

preflight signed.test lab setup
is "$out" "OK retryable=0" "BIND, signed zone: setup preflight OK"
is "$(dns_serial "$DNS_PRIMARY" signed.test)" "$(dns_serial "$DNS_SECONDARY" signed.test)" "the signed zone is not re-signed (serials agree)"

preflight $D wrong-secret setup
is "$out" "DENIED retryable=0" "wrong secret: DENIED"
like "$err" "rejected TSIG key gw-key for zone example.test: NOTAUTH, BADSIG.*grant TSIG key gw-key" "wrong secret: key and zone named, one line"

preflight $D unknown-key setup
is "$out" "DENIED retryable=0" "unknown key: DENIED"
like "$err" "TSIG key nobody-key for zone example.test: NOTAUTH, BADKEY" "unknown key: named"

preflight $D policy setup
is "$out" "DENIED retryable=0" "key the BIND update-policy does not allow: DENIED"
like "$err" "REFUSED .*; grant TSIG key other-key \(hmac-sha256, this secret\) updates of mail.example.test. MX in zone example.test on the primary" \
	"BIND policy: what to grant is named"

preflight knot.test knot-policy setup
is "$out" "DENIED retryable=0" "key not in the Knot ACL: DENIED"
like "$err" "TSIG key other-key for zone knot.test: NOTAUTH.*grant TSIG key other-key" "Knot policy: named"
unchanged
ok $? "after every refusal the zones are unchanged"

preflight $D down setup
is "$out" "FAILED retryable=1" "primary unreachable: a retryable failure"
like "$err" "127.0.0.14" "the primary is named"

at_exit "kill -CONT $DNS_SECONDARY_PID 2>/dev/null"
kill -STOP "$DNS_SECONDARY_PID"
preflight $D lab setup
kill -CONT "$DNS_SECONDARY_PID"
is "$out" "FAILED retryable=1" "a secondary that does not answer: a retryable failure"
like "$err" "authoritative server ns2.example.test. \(127.0.0.12\) of zone example.test cannot be read" "the server is named"

# Teardown, once set up: the receipt says what is restored.
mm setup $D --mode gateway --profile lab
is "$rc" 0 "setup"
serial=$(dns_serial "$DNS_PRIMARY" example.test)
preflight $D lab teardown "$(receipt_of $D)"
is "$out" "OK retryable=0" "teardown preflight OK"
preflight $D policy teardown "$(receipt_of $D)"
is "$out" "DENIED retryable=0" "teardown preflight with a key the policy refuses: DENIED"
unchanged
ok $? "the zone is unchanged by the teardown preflights"

# Drift: setup and teardown would refuse, so preflight refuses.
dns_update "$DNS_PRIMARY" example.test "update add $D. 300 MX 30 rogue.example.test." >/dev/null
serial=$(dns_serial "$DNS_PRIMARY" example.test)
preflight $D lab setup "$(receipt_of $D)"
is "$out" "CONFLICT retryable=0" "setup preflight over a hand-edited set: CONFLICT"
like "$err" "extra: 30 rogue.example.test." "it names the extra record"
preflight $D lab teardown "$(receipt_of $D)"
is "$out" "CONFLICT retryable=0" "teardown preflight over a hand-edited set: CONFLICT"
unchanged
ok $? "the zone is unchanged"
