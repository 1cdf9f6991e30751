#!/bin/sh
# The crash matrix against real servers: for each journal step of a
# gateway -> mailflow and a mailflow -> gateway switch (and the plugins'
# first checkpoint before a write, of the new mode and of the old), the
# process kills itself (SIGKILL) right after that journal row; `resume`
# must then leave contoso.test in exactly one working mode, as the DNS
# servers and the tenant show, with nothing duplicated.  The cases
# alternate direction, each starting from where the previous one ended.
. "$top_srcdir/tests/migrate/lib.sh"
POINTS="planned:end setup_new:begin checkpoint:new setup_new:end verify_new:begin verify_new:end
teardown_old:begin checkpoint:old teardown_old:end confirm_old_gone:begin confirm_old_gone:end close:end"
plan $(( $(echo $POINTS | wc -w) * 2 * 5))
FRONT_DOOR="0 contoso-test.mail.protection.outlook.test."
FAST="--poll-interval 200ms --verify-timeout 30s"

mm adopt contoso.test --mode gateway >/dev/null
from=gateway
for n in $POINTS; do
	for to in mailflow gateway; do
		MAILMODE_TEST_CRASH_AT=$n mm -q switch contoso.test --to $to $FAST >/dev/null 2>&1
		is "$?" 137 "$from -> $to, killed after journal row $n"
		run mm -q resume contoso.test
		is "$rc" 0 "$from -> $to, step $n: resume finishes"
		is "$(db "SELECT mode FROM domains")|$(db "SELECT count(*) FROM migrations WHERE finished_at IS NULL")|$(db "SELECT count(*) FROM locks")" \
		   "$to|0|0" "$from -> $to, step $n: state says $to, migration closed, lock gone"
		if [ $to = mailflow ]; then
			wait_mx contoso.test "$FRONT_DOOR"
			is "$(mx_both contoso.test)" "$FRONT_DOOR | $FRONT_DOOR" "step $n: both servers serve the original (front door) MX"
			is "$(tenant_objects)" "1 1 1 mailmode route #1" "step $n: one rule, one connector each way (nothing duplicated)"
		else
			wait_mx contoso.test "$GATEWAY_SET"
			is "$(mx_both contoso.test)" "$GATEWAY_SET | $GATEWAY_SET" "step $n: both servers serve the gateway MX"
			is "$(tenant_objects)" "0 0 0 " "step $n: no rule or connector left in the tenant"
		fi
		from=$to
	done
done
