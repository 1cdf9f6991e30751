#!/bin/sh
# Senders that cache MX answers for their TTL: after a switch to gateway
# mode they keep delivering to the old MX (the Microsoft 365 front door)
# until the TTL runs out, so the mailflow rule must stay until then.  The
# gateway plugin reports when the replaced records' TTL has passed
# (settle_until_ms) and the switch keeps the old mode until that time: the
# oracle finds every message scanned exactly once.
. "$top_srcdir/tests/mailpath/lib.sh"
plan 6
RCPTS=alice@contoso.test,bob@contoso.test
TTL=4

# The front door MX that gateway teardown restores gets a 4 s TTL.
sed -i "s/^fallback_ttl = .*/fallback_ttl = $TTL/" "$MAILMODE_CONFIG"
mm -q adopt contoso.test --mode gateway >/dev/null
run mm -q switch contoso.test --to mailflow --poll-interval 250ms
is "$rc" 0 "contoso.test in mailflow mode (front door MX, TTL $TTL s)"

sender_start cached "$RCPTS" --cache-mx
sleep 1
start=$(now)
run mm -v switch contoso.test --to gateway --poll-interval 250ms --verify-timeout 30s
DONE_AT=$(now)
took=$(awk "BEGIN { printf \"%.1f\", $DONE_AT - $start }")
sleep $((TTL + 2))
sender_stop cached
is "$rc" 0 "switch mailflow -> gateway while caching senders deliver"
ok "$(awk "BEGIN { exit !($took >= $TTL) }"; echo $?)" "the switch kept mailflow mode for the MX TTL (took $took s)"
like "$err" "keeping mailflow mode .* while caches of the replaced records expire" "and said so"
oracle cached "$DONE_AT"
show
is "$rc" 0 "every message delivered exactly once and scanned exactly once, also from caching senders"
like "$out" "paths:.* mailflow [1-9]" "cached senders kept using the front door (mailflow path) during the switch"
