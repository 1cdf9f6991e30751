#!/bin/sh
# `mailmode config check [FILE]` and where the config is found: each
# profile validated by each mode it configures, nothing else touched.
. "$top_srcdir/tests/cli/setup.sh"
plan 12

run mm --state "$TEST_TMP/none.db" config check
is "$rc" 0 "a good config: exit 0"
is "$out" "profile lab: example mode: ok
profile lab: twin mode: ok
config $CONF: ok" "one line per profile and mode it configures, then the verdict"
test ! -e "$TEST_TMP/none.db"
ok $? "the state DB is not opened (not even made)"

cat >>"$CONF" <<'CONF'

[profile half]
twin_route = somewhere

[profile empty]
CONF
run mm config check
is "$rc" 1 "a profile that does not validate: exit 1"
like "$out" "^profile half: twin mode: \\[profile half\\]: missing key twin_world" \
	"the profile, the mode and the mode's own reason"
ok $(printf '%s' "$out" | grep -q "profile half: example"; [ $? -ne 0 ]; echo $?) \
	"a profile is checked only for the modes it configures"
like "$err" "warning: config $CONF: \\[profile empty\\] configures no loaded mode" \
	"a profile that configures nothing is said"
like "$err" "error: config $CONF: 1 profile setting\\(s\\) do not validate" "and the count ends it"

run mm --json config check
is "$("$PYTHON3" -c 'import json,sys; d=json.load(sys.stdin); print(d["ok"], [(p["profile"], p["mode"], p["ok"]) for p in d["profiles"]])' <<JSON
$out
JSON
)" "False [('lab', 'example', True), ('lab', 'twin', True), ('half', 'twin', False)]" "--json: one document"

# FILE overrides --config; a misspelt key is the config check's error.
sed 's/^twin_route = somewhere/twin_rout = somewhere/' "$CONF" >"$TEST_TMP/typo.conf"
run mm config check "$TEST_TMP/typo.conf"
like "$rc:$err" "^1:.*typo.conf:[0-9]+: unknown key 'twin_rout' in \\[profile half\\] \\(did you mean 'twin_route'\\?\\)" \
	"the file named is checked, a misspelt key named with the nearest"

# The search path: the user's config under XDG_CONFIG_HOME (or ~/.config).
mkdir -p "$TEST_TMP/xdg/mailmode" "$TEST_TMP/home/.config/mailmode"
sed "s|^plugin_dir = .*|plugin_dir = $PLUGINS|; /^\[profile half\]/,\$d" "$CONF" >"$TEST_TMP/xdg/mailmode/mailmode.conf"
run env -u MAILMODE_CONFIG XDG_CONFIG_HOME="$TEST_TMP/xdg" "$MAILMODE" config check
like "$rc:$out" "config $TEST_TMP/xdg/mailmode/mailmode.conf: ok" "\$XDG_CONFIG_HOME/mailmode/mailmode.conf is found"
cp "$TEST_TMP/xdg/mailmode/mailmode.conf" "$TEST_TMP/home/.config/mailmode/"
run env -u MAILMODE_CONFIG -u XDG_CONFIG_HOME HOME="$TEST_TMP/home" "$MAILMODE" config check
like "$rc:$out" "config $TEST_TMP/home/.config/mailmode/mailmode.conf: ok" "else ~/.config/mailmode/mailmode.conf"
