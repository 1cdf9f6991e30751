#!/bin/sh
# mailmode-plugin-check on plugins that break the rules: exactly the checks
# for each defect fail, with the reason, and the checker itself survives
# crashes, exit(), hangs and stray output (exit 1, complete TAP).
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/sdk/check-lib.sh"

BROKEN=$top_builddir/tests/sdk/.libs/broken.so
FIXTURES=$top_builddir/tests/fixtures/.libs
[ -f "$BROKEN" ] || skip_all "the broken fixture is not built ($BROKEN)"

plan 22

printf '[profile lab]\nbroken_state = state\n' >"$TEST_TMP/mailmode.conf"

start=$(date +%s)
check_plugin --config "$TEST_TMP/mailmode.conf" --profile lab --domain contoso.test \
	--timeout 2 --verify-timeout 4 --poll-interval 1 "$BROKEN"
elapsed=$(( $(date +%s) - start ))
is "$rc" 1 "the checker fails the broken plugin (exit 1)"
is "$(check_count ok) $(check_count 'not ok')" "12 9" "all 21 checks reported: 12 ok, 9 not ok"
is "$(check_failed)" "9 13 14 15 17 18 19 20 21" "exactly the checks for its defects fail"
like "$(printf '%s\n' "$out" | sed -n '/^not ok 9 /,/^ok 10 /p')" \
	"failed \\(MAILMODE_ERR_CONFIG\\) with no diagnostic summary" \
	"validate_config: the empty diagnostic is named"
like "$(printf '%s\n' "$out" | sed -n '/^not ok 13 /,/^not ok 14 /p')" \
	"wrote 24 byte\\(s\\) to stdout: \"setting up contoso.test\"" "setup: the stray output is shown"
like "$(printf '%s\n' "$out" | sed -n '/^not ok 14 /,/^not ok 15 /p')" \
	"setup again returned MAILMODE_ERR_FAILED, want MAILMODE_OK: contoso.test is already set up" \
	"setup again: not idempotent"
like "$(printf '%s\n' "$out" | sed -n '/^not ok 15 /,/^ok 16 /p')" \
	"hung in verify: no answer within 2.[0-9] s, killed" "verify: the hang is cut at --timeout"
like "$(printf '%s\n' "$out" | sed -n '/^not ok 18 /,/^not ok 19 /p')" \
	"the process exited \\(status [0-9]+\\) in plan without returning" "plan teardown: exit() caught"
like "$(printf '%s\n' "$out" | sed -n '/^not ok 19 /,/^not ok 20 /p')" \
	"(crashed in teardown: signal 11|exited \\(status [0-9]+\\) in teardown)" "teardown: the crash caught"
like "$(printf '%s\n' "$out" | sed -n '/^not ok 21 /,$p')" "observe says present, want absent" \
	"observe after teardown: still present"
ok "$([ "$elapsed" -lt 30 ]; echo $?)" "the hang did not hold the checker up ($elapsed s)"
is "$err" "" "the checker wrote nothing on stderr (the plugin's output was captured)"

# Without a target only validate_config's diagnostic fails.
check_plugin "$BROKEN"
is "$rc:$(check_failed)" "1:9" "no target: only check 9 fails"

# Plugins the loader refuses: check 1 fails with the loader's reason, the
# descriptor check for the defect fails, and the rest is skipped.
check_plugin "$FIXTURES/abi_major.so"
is "$rc:$(check_failed)" "1:1 2" "ABI major 2: load and ABI checks fail"
like "$(check_line 1; printf '%s\n' "$out" | sed -n '/^not ok 1 /,/^not ok 2 /p')" \
	"refused: built for plugin ABI 2.0, this mailmode implements 1.0" "the loader's reason is shown"
is "$(printf '%s\n' "$out" | grep -c '# SKIP the plugin did not load cleanly')" 14 \
	"the 14 checks that run the plugin are skipped"

check_plugin "$FIXTURES/missing_op.so"
is "$rc:$(check_failed)" "1:1 6" "no teardown: load and required-operations checks fail"
like "$out" "missing: teardown" "the missing operation is named"

check_plugin "$FIXTURES/bad_name.so"
is "$rc:$(check_failed)" "1:1 4" "bad name: load and naming checks fail"

check_plugin "$FIXTURES/small_struct.so"
like "$rc:$(check_failed)" "^1:1 3( |$)" "struct_size 16: load and size checks fail"

check_plugin "$FIXTURES/no_descriptor.so"
is "$rc:$(check_failed)" "1:1 2 3 4 5 6 7" "no descriptor: every descriptor check fails"
like "$out" "no mailmode_plugin_v1 descriptor: not a mailmode plugin" "and says why"
