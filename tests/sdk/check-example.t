#!/bin/sh
# mailmode-plugin-check on the example plugin: without a target (the live
# checks skipped), against a world file (every check runs and passes, the
# world is left as it was), and its command line.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/sdk/check-lib.sh"

plan 16

cat >"$TEST_TMP/mailmode.conf" <<CONF
[profile lab]
example_world = world.json
example_route = scanner
CONF
W=$TEST_TMP/world.json
echo '{"domains": {"contoso.test": {"route": "direct"}}}' >"$W"
world() { "$PYTHON3" -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])), sort_keys=True))' "$W"; }
world0=$(world)

check_plugin "$PLUGIN_DIR/example.so"
is "$rc" 0 "no target: the checker passes"
is "$(printf '%s\n' "$out" | head -1)" "1..21" "TAP plan first: 21 checks"
is "$(check_count ok)" 21 "21 result lines, all ok"
is "$(printf '%s\n' "$out" | grep -c '# SKIP no live target')" 12 "the 12 live checks are skipped, saying why"

check_plugin --config "$TEST_TMP/mailmode.conf" --profile lab --domain Contoso.Test. \
	"$PLUGIN_DIR/example.so"
is "$rc" 0 "live: the checker passes"
is "$(check_count ok) $(check_failed)" "21 " "live: all 21 checks ok"
is "$(printf '%s\n' "$out" | grep -c '# SKIP')" 0 "live: nothing skipped"
like "$(check_line 13)" "^ok 13 - setup: succeeds" "the live setup ran"
like "$out" "receipt: \\{\"previous\":\"direct\",\"route\":\"scanner\"\\}" "its receipt is shown"
is "$(world)" "$world0" "the world is as it was"
is "$err" "" "nothing on stderr"

# The profile is found as mailmode finds it: the only one.
check_plugin --config "$TEST_TMP/mailmode.conf" --domain contoso.test "$PLUGIN_DIR/example.so"
is "$rc" 0 "live without --profile: the only profile is used"

run "$CHECKER"
is "$rc" 2 "no plugin: usage error (exit 2)"
run "$CHECKER" --domain contoso.test "$PLUGIN_DIR/example.so"
like "$rc:$err" "^2:mailmode-plugin-check: the live checks need both --config and --domain" \
	"--domain without --config: exit 2, says why"
run "$CHECKER" --timeout soon "$PLUGIN_DIR/example.so"
like "$rc:$err" "^2:.*--timeout 'soon': not a duration" "a bad duration: exit 2"
run "$CHECKER" "$TEST_TMP/missing.so"
like "$rc:$err" "^2:.*missing.so: No such file" "a missing plugin file: exit 2"
