#!/bin/sh
# Failures with a clear message, a non-zero exit and nothing changed:
# wrong TSIG secret, unknown key, a key the policy does not allow (BIND
# REFUSED, Knot NOTAUTH), a secret file others can read, a zone not served,
# a primary that is down or hangs.
. "$top_srcdir/tests/gateway/gateway-lib.sh"

plan 29

D=mail.example.test
ORIG_MAIL="1800 5 mx-a.mail.example.test.
1800 15 mx-b.mail.example.test."
serial0=$(dns_serial "$DNS_PRIMARY" example.test)
kserial0=$(dns_serial "$DNS_KNOT" knot.test)

unchanged() {
	[ "$(mx_bind $D)" = "$ORIG_MAIL" ] &&
		[ "$(dns_serial "$DNS_PRIMARY" example.test)" = "$serial0" ]
}

mm setup $D --mode gateway --profile wrong-secret
is "$rc" 1 "wrong secret: exit 1"
like "$err" "rejected TSIG key gw-key for zone example.test: NOTAUTH, BADSIG" "wrong secret: NOTAUTH/BADSIG, key and zone named"
unchanged
ok $? "wrong secret: the zone is unchanged"

mm setup $D --mode gateway --profile unknown-key
is "$rc" 1 "unknown key: exit 1"
like "$err" "rejected TSIG key nobody-key for zone example.test: NOTAUTH, BADKEY" "unknown key: NOTAUTH/BADKEY, key and zone named"
unchanged
ok $? "unknown key: the zone is unchanged"

mm setup $D --mode gateway --profile policy
is "$rc" 1 "key not allowed by the BIND update-policy: exit 1"
like "$err" "refused the UPDATE of mail.example.test MX in zone example.test with TSIG key other-key: REFUSED" "BIND policy: REFUSED, key and zone named"
unchanged
ok $? "BIND policy: the zone is unchanged"

mm setup knot.test --mode gateway --profile knot-policy
is "$rc" 1 "key not in the Knot ACL: exit 1"
like "$err" "TSIG key other-key for zone knot.test: NOTAUTH" "Knot policy: NOTAUTH, key and zone named"
is "$(dns_serial "$DNS_KNOT" knot.test)" "$kserial0" "Knot policy: the zone is unchanged"

mm setup $D --mode gateway --profile open-secret
is "$rc" 1 "group/world-readable secret file: exit 1"
like "$err" "open.secret is accessible by group or others" "the secret file is refused, named"
unchanged
ok $? "readable secret: the zone is unchanged"

mm setup unserved.test --mode gateway --profile unserved
is "$rc" 1 "zone not served: exit 1"
like "$err" "primary 127.0.0.11 port $DNS_PORT is not authoritative for unserved.test: it answered REFUSED" "zone not served: the primary's refusal is named"

mm setup $D --mode gateway --profile down
is "$rc" 1 "primary down: exit 1"
like "$err" "cannot read the MX set of mail.example.test from the primary 127.0.0.14 port $DNS_PORT .*no answer" "primary down: no answer, primary named"
unchanged
ok $? "primary down: the zone is unchanged"

kill -STOP "$DNS_PRIMARY_PID"
mm setup $D --mode gateway --profile hidden
kill -CONT "$DNS_PRIMARY_PID"
is "$rc" 1 "primary hangs: exit 1"
like "$err" "cannot read the MX set of mail.example.test from the primary 127.0.0.11 port $DNS_PORT \(zone example.test\): no answer within 2 s" "primary hangs: the timeout is reported"
unchanged
ok $? "primary hangs: the zone is unchanged"

kill -STOP "$DNS_PRIMARY_PID"
mm setup $D --mode gateway --profile lab
kill -CONT "$DNS_PRIMARY_PID"
is "$rc" 1 "resolver hangs: exit 1"
like "$err" "cannot find the zone of mail.example.test: .*no answer within 2 s" "resolver hangs: the SOA walk stops and says so"
unchanged
ok $? "resolver hangs: the zone is unchanged"

mm status
is "$rc" 0 "no failed setup left drift or a mode: status exits 0"
unlike "$out" "gateway  *present|DRIFT|UNFINISHED" "no failed setup left a mode, drift or an open migration"

mm setup $D --mode gateway --profile lab
is "$rc" 0 "with the right key the same setup succeeds"
