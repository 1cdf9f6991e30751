# Shared set-up of the isolation tests: a plugin directory with the example
# mode, the misbehaving mode (misbehave.c) and the one whose init exits, a
# profile using all three, and short call deadlines for the two broken ones.
. "$top_srcdir/tests/lib.sh"

PLUGINS="$TEST_TMP/plugins"
mkdir -m 755 "$PLUGINS" "$TEST_TMP/world"
cp "$PLUGIN_DIR/example.so" "$top_builddir/tests/isolation/.libs/misbehave.so" \
   "$top_builddir/tests/isolation/.libs/initexit.so" "$PLUGINS/"
chmod 755 "$PLUGINS"/*.so
CONF="$TEST_TMP/mailmode.conf"
DB="$TEST_TMP/state.db"
cat >"$CONF" <<CONF
[mailmode]
state = state.db
plugin_dir = plugins

[mode misbehave]
call_timeout = 3s

[mode initexit]
call_timeout = 3s

[profile lab]
example_world = example.json
misbehave_dir = world
CONF

# A command that hangs is stopped here (exit 124) rather than hanging the
# suite: without isolation, a setup that never returns never ends.
mm() { timeout 120 "$MAILMODE" --config "$CONF" "$@"; }
db() { sqlite3 "$DB" "$1"; }
# json EXPR: evaluates EXPR on the JSON document in $out (d), or says why not.
json() {
	printf '%s' "$out" | "$PYTHON3" -c 'import json,sys
try: d = json.load(sys.stdin)
except ValueError as e: print("not JSON: %s" % e); sys.exit(0)
print(eval(sys.argv[1]))' "$1"
}
# No helper process may outlive its command.
helpers_left() { pgrep -f -- "--config $CONF" | wc -l; }
