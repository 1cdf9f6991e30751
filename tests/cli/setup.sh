# Shared set-up of the CLI tests: a plugin directory with the example mode
# and its twin, a config with one profile using both, and `mm` to run
# mailmode against them.
. "$top_srcdir/tests/lib.sh"

PLUGINS="$TEST_TMP/plugins"
mkdir -m 755 "$PLUGINS"
cp "$PLUGIN_DIR/example.so" "$top_builddir/tests/fixtures/.libs/twin.so" "$PLUGINS/"
chmod 755 "$PLUGINS"/*.so
CONF="$TEST_TMP/mailmode.conf"
DB="$TEST_TMP/state.db"
cat >"$CONF" <<CONF
[mailmode]
state = state.db
plugin_dir = plugins

[profile lab]
example_world = example.json
example_route = scanner
twin_world = twin.json
twin_route = twin-scanner
CONF

mm() { "$MAILMODE" --config "$CONF" "$@"; }

# world_route FILE DOMAIN: the route a world file gives the domain.
world_route() {
	"$PYTHON3" -c 'import json,sys
try: d = json.load(open(sys.argv[1]))
except FileNotFoundError: d = {}
print(d.get("domains", {}).get(sys.argv[2], {}).get("route", "-"))' "$1" "$2"
}

db() { sqlite3 "$DB" "$1"; }
