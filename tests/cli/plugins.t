#!/bin/sh
# `mailmode plugins`: lists the good plugins, refuses each bad one with one
# line naming the file, and exits non-zero when any was refused.
. "$top_srcdir/tests/cli/setup.sh"
plan 39

abi=$("$MAILMODE" --version | sed -n 's/.*plugin ABI \([0-9.]*\)).*/\1/p')
run mm plugins
is "$rc" 0 "clean directory: exit 0"
like "$out" "^example +ABI $abi +$PLUGINS/example.so" "example listed with ABI and path"
like "$out" "^twin +ABI $abi" "twin listed"

run mm --json plugins
is "$("$PYTHON3" -c 'import json,sys; d=json.load(sys.stdin); print(",".join(p["name"] for p in d["plugins"]), d["ok"])' <<JSON
$out
JSON
)" "example,twin True" "--json prints one document with both plugins"

fx="$top_builddir/tests/fixtures/.libs"
for f in abi_major abi_minor small_struct no_descriptor missing_op bad_name; do
	cp "$fx/$f.so" "$PLUGINS/$f.so"
done
cp "$fx/duplicate.so" "$PLUGINS/zz-duplicate.so"
echo "not a shared object" >"$PLUGINS/garbage.so"
cp "$PLUGINS/example.so" "$PLUGINS/writable.so"
chmod 755 "$PLUGINS"/*.so
chmod 664 "$PLUGINS/writable.so"

run mm plugins
is "$rc" 1 "bad plugins present: exit 1"
like "$out" "^example " "example still loads"
like "$out" "^twin " "twin still loads"
like "$err" "plugin $PLUGINS/abi_major.so refused: built for plugin ABI 2\\.[0-9]+, this mailmode implements $abi: rebuild it against mailmode" "ABI major mismatch"
like "$err" "plugin $PLUGINS/abi_minor.so refused: needs plugin ABI 1\\.[0-9]+, this mailmode implements $abi: upgrade mailmode" "newer ABI minor"
like "$err" "plugin $PLUGINS/small_struct.so refused: descriptor is 16 bytes" "struct too small"
like "$err" "plugin $PLUGINS/no_descriptor.so refused: no mailmode_plugin_v1 descriptor" "missing descriptor"
like "$err" "plugin $PLUGINS/missing_op.so refused: descriptor has no 'teardown' operation" "required operation missing"
like "$err" "plugin $PLUGINS/bad_name.so refused: mode name 'Bad Name' is invalid" "invalid mode name"
like "$err" "plugin $PLUGINS/garbage.so refused: cannot load: .*(invalid ELF header|file too short)" "not a shared object"
like "$err" "plugin $PLUGINS/zz-duplicate.so refused: mode 'example' is already provided by $PLUGINS/example.so" "duplicate mode name"
like "$err" "plugin $PLUGINS/writable.so refused: file $PLUGINS/writable.so is writable by group or others" "group-writable file"

chmod 775 "$PLUGINS"
run mm plugins
is "$rc" 1 "group-writable directory: exit 1"
like "$err" "plugin directory $PLUGINS is writable by group or others \(mode 775\): refusing to load plugins from it" "directory refused with one line"
chmod 755 "$PLUGINS"

# Symbolic links are followed, and every directory on the way counts: one
# that group or others can write to, or below such a one, is refused like
# a writable file, naming the directory.  A sticky one (as /tmp) passes:
# there only an entry's owner can rename it.
T=$(cd "$TEST_TMP" && pwd -P)
P2=$TEST_TMP/linked
mkdir -m 755 "$P2" "$TEST_TMP/open" "$TEST_TMP/outer" "$TEST_TMP/outer/inner" "$TEST_TMP/safe" \
	"$TEST_TMP/sticky"
chmod 777 "$TEST_TMP/open"
chmod 775 "$TEST_TMP/outer"
chmod 1777 "$TEST_TMP/sticky"
for d in open outer/inner safe sticky; do
	cp "$PLUGIN_DIR/example.so" "$TEST_TMP/$d/example.so"
	chmod 755 "$TEST_TMP/$d/example.so"
done
# A configuration naming no mode's keys: only the plugin at test loads.
printf '[mailmode]\nstate = state.db\n' >"$TEST_TMP/bare.conf"
bare() { "$MAILMODE" --config "$TEST_TMP/bare.conf" "$@"; }
linked() { rm -f "$P2/example.so"; ln -s "$1" "$P2/example.so"; run bare --plugin-dir "$P2" plugins; }

linked "$TEST_TMP/safe/example.so"
is "$rc" 0 "a symbolic link to a plugin in a safe directory loads"
like "$out" "^example +ABI $abi +$P2/example.so" "listed under the link's name"
linked "$TEST_TMP/open/example.so"
is "$rc" 1 "a link into a 0777 directory: exit 1"
like "$err" "plugin $P2/example.so refused: directory $T/open is writable by group or others \(mode 777\)" \
	"the refusal names the directory the link leads into"
linked "../outer/inner/example.so"
is "$rc" 1 "a (relative) link below a group-writable directory: exit 1"
like "$err" "plugin $P2/example.so refused: directory $T/outer is writable by group or others \(mode 775\)" \
	"the refusal names the group-writable parent"
linked "$TEST_TMP/sticky/example.so"
is "$rc:$err" "0:" "a plugin in a sticky world-writable directory (like /tmp) loads"

run bare --plugin-dir "$TEST_TMP/outer/inner" plugins
is "$rc" 1 "a plugin directory whose parent is group-writable: exit 1"
like "$err" "plugin directory $TEST_TMP/outer/inner: directory $T/outer is writable by group or others \(mode 775\): refusing to load plugins from it" \
	"refused with one line naming the parent"
mkdir -m 755 "$TEST_TMP/open/plugins"
ln -s "$TEST_TMP/open/plugins" "$TEST_TMP/dirlink"
run bare --plugin-dir "$TEST_TMP/dirlink" plugins
like "$rc:$err" "^1:.*plugin directory $TEST_TMP/dirlink: directory $T/open is writable by group or others" \
	"a plugin directory that is a link into a 0777 directory: refused"

# --keys MODE: what the mode declares it reads, one key a line.
run mm plugins --keys example
is "$rc" 0 "plugins --keys example: exit 0"
is "$out" "$(printf '%-10s %-30s %-8s %-14s %s\n' \
	profile example_world path - "the world file (relative: to the config file)" \
	profile example_route string example "the route this mode sets")" \
	"section kind, key, type, default and description, one a line"
run mm --json plugins --keys twin
is "$("$PYTHON3" -c 'import json,sys; d=json.load(sys.stdin); print(d["mode"], d["declared"], [(k["section"], k["name"], k["type"], k["default"]) for k in d["keys"]])' <<JSON
$out
JSON
)" "twin True [('profile', 'twin_world', 'path', None), ('profile', 'twin_route', 'string', 'twin')]" \
	"--json: the same keys in one document"
run mm plugins --keys nosuch
like "$rc:$err" "^1:mailmode: error: unknown mode 'nosuch' \(plugins in .* provide: example, twin\)" \
	"an unknown mode: exit 1 naming the modes there are"
P3=$TEST_TMP/undeclared
mkdir -m 755 "$P3"
cp "$fx/duplicate.so" "$P3/example.so"
chmod 755 "$P3/example.so"
run bare --plugin-dir "$P3" plugins --keys example
is "$rc" 0 "a mode without declarations: exit 0"
like "$out" "^mode example declares no configuration keys" "and says so"
run bare --plugin-dir "$P3" --json plugins --keys example
is "$("$PYTHON3" -c 'import json,sys; d=json.load(sys.stdin); print(d["declared"], d["keys"])' <<JSON
$out
JSON
)" "False []" "--json: declared false, no keys"
# A misspelt key stops every command but the one that lists the right keys.
sed 's/^example_route = /example_rout = /' "$CONF" >"$TEST_TMP/typo.conf"
run "$MAILMODE" --config "$TEST_TMP/typo.conf" plugins --keys example
like "$rc:$(printf "%s" "$out" | tr "\n" " ")" "^0:.*example_route" "plugins --keys still lists the keys of a config with a misspelt key"
like "$err" "warning: .*unknown key 'example_rout' in \\[profile lab\\].*example_route" \
	"and warns about the misspelt key, naming the nearest"
run "$MAILMODE" --config "$TEST_TMP/typo.conf" status
like "$rc:$err" "^1:.*unknown key 'example_rout'" "any other command refuses that config"
run mm status --keys example
is "$rc" 2 "--keys is for the plugins command only (usage error)"
