#!/bin/sh
# mailmode-plugin-check on plugins that break the rules: exactly the checks
# for each defect fail, with the reason, and the checker itself survives
# crashes, exit(), hangs and stray output (exit 1, complete TAP).
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/sdk/check-lib.sh"

BROKEN=$top_builddir/tests/sdk/.libs/broken.so
FIXTURES=$top_builddir/tests/fixtures/.libs
[ -f "$BROKEN" ] || skip_all "the broken fixture is not built ($BROKEN)"

plan 27

printf '[profile lab]\nbroken_state = state\n' >"$TEST_TMP/mailmode.conf"

start=$(date +%s)
check_plugin --config "$TEST_TMP/mailmode.conf" --profile lab --domain contoso.test \
	--timeout 2 --verify-timeout 4 --poll-interval 1 "$BROKEN"
elapsed=$(( $(date +%s) - start ))
is "$rc" 1 "the checker fails the broken plugin (exit 1)"
is "$(( $(check_count ok) + $(check_count 'not ok') ))" "$(check_planned)" \
	"every planned check is reported"
is "$(check_failed)" "validate_config rejects a profile with none of the mode's keys; \
plan setup: lists the changes and changes nothing; \
setup: succeeds with a JSON receipt; \
setup again: succeeds, receipt of the same meaning (idempotent); \
verify: in effect within the verify timeout (polled); \
setup on the verified domain: changes nothing (receipt and observe unchanged); \
plan teardown: lists the changes and changes nothing; \
teardown: succeeds; \
teardown again: succeeds (idempotent); \
observe after teardown: absent (polled); \
config keys: every key read is declared in config_keys (ABI 1.2)" "exactly the checks for its defects fail"
like "$(check_block '^validate_config rejects')" \
	"failed \\(MAILMODE_ERR_CONFIG\\) with no diagnostic summary" \
	"validate_config: the empty diagnostic is named"
like "$(check_block '^setup: ')" \
	"wrote 24 byte\\(s\\) to stdout: \"setting up contoso.test\"" "setup: the stray output is shown"
like "$(check_block '^setup again')" \
	"setup again returned MAILMODE_ERR_FAILED, want MAILMODE_OK: contoso.test is already set up" \
	"setup again: not idempotent"
like "$(check_block '^verify')" \
	"hung in verify: no answer within [0-9.]+ s, killed" "verify: the hang is cut at --timeout"
like "$(check_block '^plan setup')" \
	"action 0 of plan_actions has no \"text\" string" "plan_actions: an action without its text is named"
like "$(check_block '^plan teardown')" \
	"the process exited \\(status [0-9]+\\) in plan without returning" "plan teardown: exit() caught"
like "$(check_block '^teardown: ')" \
	"(crashed in teardown: signal 11|exited \\(status [0-9]+\\) in teardown)" "teardown: the crash caught"
like "$(check_block '^observe after teardown')" "observe says present, want absent" \
	"observe after teardown: still present"
like "$(check_block '^config keys')" \
	"observe read key 'broken_verbose' in \\[profile lab\\], which config_keys does not declare for \\[profile\\] sections" \
	"config keys: the undeclared key, its section and the call reading it are named"
like "$(check_block '^config keys')" "3 distinct key\\(s\\) read during the checks, 2 declared" \
	"the declared key reads are counted, not held against it"
like "$(check_block '^resources')" "^ok .*# SKIP the plugin has no resources operation" \
	"no resources operation: that optional check is skipped"
ok "$([ "$elapsed" -lt 30 ]; echo $?)" "the hang did not hold the checker up ($elapsed s)"
is "$err" "" "the checker wrote nothing on stderr (the plugin's output was captured)"

# Without a target only validate_config's diagnostic fails.
check_plugin "$BROKEN"
is "$rc:$(check_failed)" "1:validate_config rejects a profile with none of the mode's keys" \
	"no target: only the validate_config check fails"

# A plugin without config_keys: that check is skipped, saying why.
check_plugin "$FIXTURES/duplicate.so"
like "$(check_block '^config keys')" \
	"^ok [0-9]+ - config keys: .* # SKIP the plugin declares no configuration keys" \
	"no config_keys: the config keys check is skipped with a note"

# Plugins the loader refuses: the load check fails with the loader's
# reason, so does the descriptor check for the defect, and the checks that
# would run the plugin are skipped.
check_plugin "$FIXTURES/abi_major.so"
is "$rc:$(check_failed)" \
	"1:loads through the mailmode plugin loader; descriptor: ABI version is one this mailmode accepts" \
	"ABI major 2: the load and ABI checks fail"
like "$(check_block '^loads through')" \
	"refused: built for plugin ABI 2\\.[0-9]+, this mailmode implements 1\\.[0-9]+: rebuild it" \
	"the loader's reason is shown"
is "$(printf '%s\n' "$out" | grep -c '# SKIP the plugin did not load cleanly')" \
	"$(( $(check_planned) - 7 ))" "every check that runs the plugin is skipped"

check_plugin "$FIXTURES/missing_op.so"
is "$rc:$(check_failed)" \
	"1:loads through the mailmode plugin loader; descriptor: every required operation is present" \
	"no teardown: the load and required-operations checks fail"
like "$(check_block '^descriptor: every required')" "missing: teardown" "the missing operation is named"

check_plugin "$FIXTURES/bad_name.so"
is "$rc:$(check_failed)" \
	"1:loads through the mailmode plugin loader; descriptor: mode name follows the naming rules" \
	"bad name: the load and naming checks fail"

check_plugin "$FIXTURES/small_struct.so"
like "$rc:$(check_failed)" \
	"^1:loads through the mailmode plugin loader; descriptor: struct_size covers the v1.0 descriptor" \
	"struct_size 16: the load and size checks fail"

check_plugin "$FIXTURES/no_descriptor.so"
is "$rc:$(check_count 'not ok')" "1:7" "no descriptor: the load and every descriptor check fail"
like "$(check_block '^loads through')" "no mailmode_plugin_v1 descriptor: not a mailmode plugin" \
	"and says why"
