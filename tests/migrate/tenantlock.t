#!/bin/sh
# The tenant lock across processes: two `mailmode switch` processes (one
# state DB, two domains of one tenant) change the tenant's shared transport
# rule at once.  Set-TransportRule replaces the whole RecipientDomainIs
# list, so without a lock across processes the second writer drops the
# first one's domain: the emulator delays Set-TransportRule (a slow admin
# API) so that both read the list before either write lands.  Both
# directions, a few rounds each; asserted are the tenant's rule (in the
# emulator) and what `mailmode status` shows.  The delays are the ones
# that lost a domain most often without the lock: to mailflow the first
# write waits 6 s (the other's read and write come meanwhile, and the late
# one lands last); back to gateway the first two wait 8 s each (the two
# processes reach teardown seconds apart, after the gateway verify).
. "$top_srcdir/tests/migrate/lib.sh"
. "$top_srcdir/tests/migrate/tenantlib.sh"

ROUNDS=3
plan $((ROUNDS * 10 + 3))

# both_switch MODE DELAY-MS COUNT: switches contoso.test and fabrikam.test
# to MODE in two processes at once, the tenant's next COUNT
# Set-TransportRule delayed by DELAY-MS each.  Sets rc_c, rc_f; stderr in
# $TEST_TMP/{contoso,fabrikam}.err.
both_switch() {
	emu DELETE /_emu/faults >/dev/null
	emu POST /_emu/faults "{\"kind\":\"slow\",\"cmdlet\":\"Set-TransportRule\",\"delay_ms\":$2,\"count\":$3}" >/dev/null
	for d in contoso fabrikam; do
		mm -v --lock-timeout 120s switch $d.test --to "$1" --poll-interval 200ms --verify-timeout 40s \
			>"$TEST_TMP/$d.out" 2>"$TEST_TMP/$d.err" &
		eval "pid_$d=\$!"
	done
	wait "$pid_contoso"; rc_c=$?
	wait "$pid_fabrikam"; rc_f=$?
	emu DELETE /_emu/faults >/dev/null
}

# waited: whether one of the two waited for the other's tenant lock.
waited() {
	grep -h "waiting for $TENANT_KEY, held by .*pid [0-9]* on .*'switch' of [a-z]*\\.test" \
		"$TEST_TMP/contoso.err" "$TEST_TMP/fabrikam.err" >/dev/null
	echo $?
}

last_lines() { echo "$(tail -1 "$TEST_TMP/contoso.err"); $(tail -1 "$TEST_TMP/fabrikam.err")"; }

tenant_world

round=1
while [ $round -le $ROUNDS ]; do
	both_switch mailflow 6000 1
	is "$rc_c $rc_f" "0 0" "round $round: both switches to mailflow exit 0 ($(last_lines))"
	is "$(members)" "contoso.test,fabrikam.test,northwind.test" \
		"round $round: the shared rule lists both domains (and northwind.test)"
	is "$(mode_shown contoso.test)" "mailflow" "round $round: status shows contoso.test in mailflow"
	is "$(mode_shown fabrikam.test)" "mailflow" "round $round: status shows fabrikam.test in mailflow"
	ok "$(waited)" "round $round: one waited for the other's tenant lock, naming its holder"
	# A domain lost on the way there is put back (setup again repairs
	# it), so that the way back races on both domains.
	for d in contoso fabrikam; do
		mm setup $d.test --mode mailflow >/dev/null 2>&1
	done

	both_switch gateway 8000 2
	is "$rc_c $rc_f" "0 0" "round $round: both switches back to gateway exit 0 ($(last_lines))"
	is "$(members)" "northwind.test" "round $round: the shared rule shrank to northwind.test"
	is "$(mode_shown contoso.test)" "gateway" "round $round: status shows contoso.test in gateway"
	is "$(mode_shown fabrikam.test)" "gateway" "round $round: status shows fabrikam.test in gateway"
	ok "$(waited)" "round $round: one waited for the other's tenant lock, naming its holder"
	round=$((round + 1))
done
