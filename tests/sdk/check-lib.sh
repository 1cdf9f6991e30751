# Shared by the SDK tests: runs mailmode-plugin-check and reads its TAP.
# Source after tests/lib.sh.
#
#   check_plugin ARGS...   runs the checker ($rc, $out, $err as `run` sets
#                          them) and shows its output as TAP comments
#   check_planned          the number of checks its plan announces
#   check_count WORD       how many of its result lines start with WORD
#                          ("ok", "not ok")
#   check_failed           the titles of its "not ok" lines, joined by "; "
#   check_block REGEX      the first result line whose title matches the
#                          extended REGEX, with its "# " lines, on one line
#                          joined by " | " (one line: safe in `like`)

CHECKER="${CHECKER:-$top_builddir/mailmode-plugin-check}"

check_plugin() {
	# Its private directory goes in the test's scratch space, which is
	# removed even when the checker is killed.
	run env TMPDIR="$TEST_TMP" "$CHECKER" "$@"
	# Nested TAP would confuse the driver: show it as comments.
	printf '%s\n' "$out" | sed 's/^/#   /'
	[ -z "$err" ] || printf '%s\n' "$err" | sed 's/^/#   stderr: /'
}

check_planned() {
	printf '%s\n' "$out" | sed -n 's/^1\.\.\([0-9]*\)$/\1/p'
}

check_count() {
	printf '%s\n' "$out" | grep -c "^$1 [0-9]"
}

check_failed() {
	printf '%s\n' "$out" | sed -n 's/^not ok [0-9]* - //p' | sed 's/ # .*//' |
		awk 'NR > 1 { printf "; " } { printf "%s", $0 } END { print "" }'
}

check_block() {
	printf '%s\n' "$out" | CHECK_TITLE="$1" awk '
		/^(not )?ok [0-9]+ - / {
			inside = 0
			if (!found) {
				title = $0
				sub(/^(not )?ok [0-9]+ - /, "", title)
				if (title ~ ENVIRON["CHECK_TITLE"]) {
					found = inside = 1
					block = $0
				}
			}
			next
		}
		inside && /^# / { block = block " | " substr($0, 3) }
		END { print block }'
}

