#!/bin/sh
# Crash matrix with the example mode and its twin: the process is killed
# (SIGKILL) right after each journal write of a switch, then `resume` must
# end with the domain in exactly one working mode.  Then the same for a
# switch whose verification never passes (the rollback path).
. "$top_srcdir/tests/cli/setup.sh"
FORWARD_STEPS=9    # planned, then begin/end of setup, verify, teardown, confirm
ROLLBACK_STEPS=9   # planned, setup b/e, verify begin/fail, rollback teardown b/e, confirm b/e
plan $((FORWARD_STEPS * 4 + (ROLLBACK_STEPS - 4) * 3))
E="$TEST_TMP/example.json"
T="$TEST_TMP/twin.json"
FAST="--poll-interval 100ms --verify-timeout 1s"

fresh() {
	rm -f "$DB" "$DB-wal" "$DB-shm"
	printf '{"domains":{"a.test":{"route":"direct"%s}}}\n' "$1" >"$T"
	printf '{"domains":{"a.test":{"route":"direct"}}}\n' >"$E"
	mm setup a.test --mode example >/dev/null
}

n=1
while [ $n -le $FORWARD_STEPS ]; do
	fresh ""
	MAILMODE_TEST_CRASH_AFTER=$n mm switch a.test --to twin $FAST >/dev/null 2>&1
	is "$?" 137 "forward, killed after journal write $n"
	run mm resume a.test
	is "$rc" 0 "forward $n: resume exits 0"
	is "$(world_route "$T" a.test)/$(world_route "$E" a.test)" "twin-scanner/direct" \
	   "forward $n: twin live, example restored to the original route"
	is "$(db "SELECT mode FROM domains")|$(db "SELECT count(*) FROM migrations WHERE finished_at IS NULL")|$(db "SELECT count(*) FROM locks")" \
	   "twin|0|0" "forward $n: state says twin, migration closed, no lock"
	n=$((n + 1))
done

# Journal writes 1-4 of this path are the same as the forward path's.
n=5
while [ $n -le $ROLLBACK_STEPS ]; do
	fresh ',"ready":false'
	MAILMODE_TEST_CRASH_AFTER=$n mm switch a.test --to twin $FAST >/dev/null 2>&1
	is "$?" 137 "rollback, killed after journal write $n"
	run mm resume a.test
	is "$(world_route "$T" a.test)/$(world_route "$E" a.test)" "direct/scanner" \
	   "rollback $n: twin undone, example intact"
	is "$(db "SELECT mode FROM domains")|$(db "SELECT result FROM migrations WHERE kind='switch'")|$(db "SELECT count(*) FROM locks")" \
	   "example|rolled_back|0" "rollback $n: state says example, migration rolled back"
	n=$((n + 1))
done
