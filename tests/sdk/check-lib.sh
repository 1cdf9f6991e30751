# Shared by the SDK tests: runs mailmode-plugin-check and reads its TAP.
# Source after tests/lib.sh.
#
#   check_plugin ARGS...   runs the checker ($rc, $out, $err as `run` sets
#                          them) and shows its output as TAP comments
#   check_failed           the numbers of its "not ok" lines, space-separated
#   check_count WORD       how many of its lines start with WORD ("ok", "not ok")
#   check_line N           its result line number N

CHECKER="${CHECKER:-$top_builddir/mailmode-plugin-check}"

check_plugin() {
	run "$CHECKER" "$@"
	# Nested TAP would confuse the driver: show it as comments.
	printf '%s\n' "$out" | sed 's/^/#   /'
	[ -z "$err" ] || printf '%s\n' "$err" | sed 's/^/#   stderr: /'
}

check_failed() {
	printf '%s\n' "$out" | sed -n 's/^not ok \([0-9]*\) - .*/\1/p' | tr '\n' ' ' | sed 's/ $//'
}

check_count() {
	printf '%s\n' "$out" | grep -c "^$1 [0-9]"
}

check_line() {
	printf '%s\n' "$out" | grep -E "^(not )?ok $1 - "
}

# is_known GOT EXPECTED DESCRIPTION KNOWN: like `is`, but when KNOWN is not
# empty the line carries "# TODO KNOWN": a failure already understood and
# tracked, shown without failing the suite.
is_known() {
	if [ -z "$4" ]; then
		is "$1" "$2" "$3"
		return
	fi
	tap_n=$((tap_n + 1))
	if [ "$1" = "$2" ]; then
		echo "ok $tap_n - $3 # TODO $4"
	else
		echo "not ok $tap_n - $3 # TODO $4"
		diag "got:      '$1'"
		diag "expected: '$2'"
	fi
}
