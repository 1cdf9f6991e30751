#!/bin/sh
# `mailmode plugins`: lists the good plugins, refuses each bad one with one
# line naming the file, and exits non-zero when any was refused.
. "$top_srcdir/tests/cli/setup.sh"
plan 18

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
