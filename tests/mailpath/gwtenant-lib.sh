# Shared by the tests of gateway mode's tenant side (gateway-switch.t,
# gateway-crash.t): the sandbox, and its profile with gateway_tenant and the
# lock-down; mailflow's connector left to its default type (Partner).
. "$top_srcdir/tests/mailpath/lib.sh"
D=fabrikam.test
GW="mailmode gateway for $D from sandbox-service"
FAST="--poll-interval 200ms --verify-timeout 30s"
FRONT="0 fabrikam-test.mail.protection.outlook.test."
sed -e '/^connector_type *=/d' -e '/^tenant = sandbox-tenant$/a\
gateway_tenant = sandbox-tenant\
lockdown = yes' "$MAILMODE_CONFIG" >"$SB/gwtenant.conf"
export MAILMODE_CONFIG="$SB/gwtenant.conf"

# crash_switches MAX WANT_GATEWAY WANT_MAILFLOW: $D switches mailflow ->
# gateway -> mailflow ..., each switch killing itself (SIGKILL) after its Nth
# journal write (MAILMODE_TEST_CRASH_AFTER), N = 1, 2, ... (at most MAX)
# until both directions run through; `resume` after each kill.  After each
# switch "STATE MX WORLD" (world: the test's function) must be
# "gateway|0|0 $GATEWAY_SET | $GATEWAY_SET WANT_GATEWAY", or the same for
# mailflow.  Each case is a line of $TEST_TMP/cases ("BAD" when not);
# $cases counts them.
crash_switches() {
	N=1
	from=mailflow
	cases=0
	done_both=0
	: >"$TEST_TMP/cases"
	while [ $N -le "$1" ] && [ $done_both -lt 2 ]; do
		for to in gateway mailflow; do
			MAILMODE_TEST_CRASH_AFTER=$N mm -q switch $D --to $to $FAST >/dev/null 2>&1
			code=$?
			if [ $code -eq 0 ]; then
				done_both=$((done_both + 1))
			else
				done_both=0
				run mm -q resume $D
				echo "$N $from->$to $code resume=$rc" >>"$TEST_TMP/cases"
			fi
			state="$(db "SELECT mode FROM domains WHERE domain='$D'")|$(db "SELECT count(*) FROM migrations WHERE finished_at IS NULL")|$(db "SELECT count(*) FROM locks")"
			if [ $to = gateway ]; then
				wait_mx $D "$GATEWAY_SET"
				want="gateway|0|0 $GATEWAY_SET | $GATEWAY_SET $2"
			else
				wait_mx $D "$FRONT"
				want="mailflow|0|0 $FRONT | $FRONT $3"
			fi
			got="$state $(mx_both $D) $(world)"
			if [ "$got" != "$want" ]; then
				echo "# N=$N $from -> $to (exit $code): got '$got', want '$want'"
				echo "$N $from->$to BAD" >>"$TEST_TMP/cases"
			fi
			cases=$((cases + 1))
			from=$to
		done
		N=$((N + 1))
	done
}
