#!/bin/sh
# mailmode-plugin-check on the example plugin: without a target (the live
# checks skipped), against a world file (every check runs and passes, the
# world is left as it was), and its command line.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/sdk/check-lib.sh"

plan 18

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
like "$(printf '%s\n' "$out" | head -1)" "^1\\.\\.[0-9]+$" "TAP plan first"
is "$(check_count ok)" "$(check_planned)" "every planned check reported, all ok"
is "$(printf '%s\n' "$out" | grep -c '# SKIP no live target')" \
	"$(( $(check_planned) - 10 ))" \
	"only the live checks are skipped (all but the 9 descriptor and start-up checks and the config keys check), saying why"

check_plugin --config "$TEST_TMP/mailmode.conf" --profile lab --domain Contoso.Test. \
	"$PLUGIN_DIR/example.so"
is "$rc" 0 "live: the checker passes"
is "$(check_count ok):$(check_failed)" "$(check_planned):" "live: every check ok"
is "$(printf '%s\n' "$out" | grep -c '# SKIP')" 1 "live: only the resources check is skipped"
like "$(check_block '^config keys')" "^ok .* 3 distinct key\\(s\\) read during the checks, 3 declared" \
	"live: the keys it read (example_world, example_route) are declared"
like "$(check_block '^resources')" "# SKIP the plugin has no resources operation" \
	"(the example plugin is ABI 1.0-style: no resources operation)"
like "$(check_block '^setup: ')" "^ok [0-9]+ - setup: succeeds" "the live setup ran"
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
