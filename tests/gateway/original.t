#!/bin/sh
# The original MX set is never lost (issue 11, class 1).  A domain in
# gateway mode whose MX set is edited by hand is drift: setting it up again
# is refused (exit 4) naming the records that differ, and nothing is sent;
# --force puts the gateway set back but keeps the FIRST original, so
# teardown restores that one, with its TTLs, on every server.
. "$top_srcdir/tests/gateway/gateway-lib.sh"

plan 19

D=example.test

mm setup $D --mode gateway --profile lab
is "$rc" 0 "setup succeeds"
is "$(mx_bind $D)" "$GATEWAY_SET" "the gateway set is live"

# Someone edits the gateway set by hand: one record added, one removed.
dns_update "$DNS_PRIMARY" $D "update add $D. 300 MX 30 rogue.example.test." \
	"update delete $D. MX 20 mx-02.gw.test." >/dev/null
ok $? "the MX set is edited by hand (nsupdate)"
EDITED="300 10 mx-01.gw.test.
300 30 rogue.example.test."
is "$(mx_bind $D)" "$EDITED" "the edit is live"
serial=$(dns_serial "$DNS_PRIMARY" $D)

mm setup $D --mode gateway --profile lab
is "$rc" 4 "setup again over the edit is refused (exit 4: drift)"
like "$err" "the MX set of example.test has drifted" "the refusal says drift"
like "$err" "extra: 30 rogue.example.test. \(ttl 300\)" "it names the extra record"
like "$err" "missing: 20 mx-02.gw.test. \(ttl 300\)" "it names the missing record"
like "$err" "--force" "it says how to override"
is "$(mx_bind $D)" "$EDITED" "the zone is unchanged"
is "$(dns_serial "$DNS_PRIMARY" $D)" "$serial" "no UPDATE was sent"

is "$(json_get "$(receipt_of $D)" "d['mx']")" \
	"[{'pref': 10, 'host': 'mx1.example.test.', 'ttl': 3600}, {'pref': 20, 'host': 'mx2.example.test.', 'ttl': 3600}]" \
	"the receipt still holds the first original"

mm setup $D --mode gateway --profile lab --force
is "$rc" 0 "setup --force over the edit succeeds"
is "$(mx_bind $D)" "$GATEWAY_SET" "the gateway set is live again"

is "$(json_get "$(receipt_of $D)" "d['mx']")" \
	"[{'pref': 10, 'host': 'mx1.example.test.', 'ttl': 3600}, {'pref': 20, 'host': 'mx2.example.test.', 'ttl': 3600}]" \
	"forced, the receipt keeps the first original (not the edited set)"

mm teardown $D
is "$rc" 0 "teardown succeeds"
is "$(mx_bind $D)" "$ORIG_EXAMPLE" "the primary serves the first original with its TTLs"
serial=$(dns_serial "$DNS_PRIMARY" $D)
dns_wait_serial "$DNS_SECONDARY" $D "$serial" 20
ok $? "the secondary catches up"
is "$(dns_mx "$DNS_SECONDARY" $D)" "$ORIG_EXAMPLE" "the secondary serves the first original with its TTLs"
