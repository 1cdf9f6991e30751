#!/bin/sh
# A plugin built out of tree with nothing but the installed SDK: `make
# install` into a scratch DESTDIR; plugins/example copied to a directory of
# its own and compiled with the installed header through
# `pkg-config --cflags --libs mailmode-plugin`; installed into the plugindir
# the .pc file names; then the installed mailmode lists it and runs setup,
# verify and teardown with it, and the installed checker passes it.
#
# The .pc file names the configured prefix; the files are under DESTDIR, so
# pkg-config is told where the prefix went (--define-variable=prefix=...).
# That relocates only mailmode-plugin, unlike PKG_CONFIG_SYSROOT_DIR, which
# would also send libcjson's flags into DESTDIR.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/sdk/check-lib.sh"

: "${CC:=cc}"
: "${MAKE:=make}"
: "${PKG_CONFIG:=pkg-config}"
command -v "$PKG_CONFIG" >/dev/null 2>&1 || skip_all "pkg-config is not installed"
[ -f "$top_builddir/Makefile" ] || skip_all "no configured build tree at $top_builddir"

plan 18

DEST=$TEST_TMP/dest
# A make of its own: not the outer make's command-line variables (TESTS=...)
# nor its jobserver.
run env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL "$MAKE" -s -C "$top_builddir" install DESTDIR="$DEST"
is "$rc" 0 "make install DESTDIR=... succeeds"
[ "$rc" -eq 0 ] || printf '%s\n' "$err" | tail -20 | sed 's/^/# /'

pc=$(find "$DEST" -name mailmode-plugin.pc -type f | head -1)
installed_mailmode=$(find "$DEST" -path '*/bin/mailmode' -type f | head -1)
installed_checker=$(find "$DEST" -path '*/bin/mailmode-plugin-check' -type f | head -1)
ok "$([ -n "$pc" ] && [ -n "$(find "$DEST" -path '*/include/mailmode/plugin.h')" ]; echo $?)" \
	"the header and mailmode-plugin.pc are installed"
ok "$([ -x "$installed_mailmode" ] && [ -x "$installed_checker" ]; echo $?)" \
	"mailmode and mailmode-plugin-check are installed"
ok "$([ -f "$(find "$DEST" -path '*/man7/mailmode-plugin.7' | head -1)" ]; echo $?)" \
	"the mailmode-plugin(7) manual is installed"

PKG_CONFIG_PATH=$(dirname "${pc:-/nonexistent/x}")
export PKG_CONFIG_PATH
prefix=$("$PKG_CONFIG" --variable=prefix mailmode-plugin)
sdk() { "$PKG_CONFIG" --define-variable=prefix="$DEST$prefix" "$@" mailmode-plugin; }
plugindir=$(sdk --variable=plugindir)
is "${plugindir#"$DEST"}" "$prefix/lib/mailmode/modes" "the .pc names the plugindir"
# The ABI the installed header declares.
abi=$(sed -n 's/^#define MAILMODE_ABI_\(MAJOR\|MINOR\) \([0-9]*\)$/\2/p' \
	"$(find "$DEST" -path '*/include/mailmode/plugin.h' | head -1)" | paste -sd. -)
is "$(sdk --variable=abi_major).$(sdk --variable=abi_minor)" "$abi" "the .pc publishes the header's ABI ($abi)"
like "$(sdk --cflags)" "-I$DEST$prefix/include( |$)" "its Cflags point at the installed header"

# The plugin's own directory: a copy of plugins/example, nothing else.
SRC=$TEST_TMP/my-plugin
mkdir -p "$SRC"
cp "$top_srcdir/plugins/example/example.c" "$SRC/"
run "$CC" -Wall -Wextra -Werror $(sdk --cflags) $("$PKG_CONFIG" --cflags libcjson) \
	-MD -MF "$SRC/example.d" -o "$SRC/example.so" "$SRC/example.c" \
	$(sdk --libs) $("$PKG_CONFIG" --libs libcjson)
is "$rc" 0 "the example builds out of tree with pkg-config mailmode-plugin"
[ "$rc" -eq 0 ] || printf '%s\n' "$err" | head -20 | sed 's/^/# /'
like "$(cat "$SRC/example.d" 2>/dev/null)" "$DEST$prefix/include/mailmode/plugin\\.h" \
	"with the installed header, not the source tree's"
is "$(nm -D --defined-only "$SRC/example.so" 2>/dev/null | awk '$2 != "A" { print $3 }' | grep -v '^_' | tr '\n' ' ')" \
	"mailmode_plugin_v1 " "it exports the descriptor and nothing else (Cflags hide the rest)"

run install -m 755 "$SRC/example.so" "$plugindir/example.so"
is "$rc" 0 "installed into the plugindir"

run "$installed_mailmode" --plugin-dir "$plugindir" plugins
is "$rc" 0 "the installed mailmode loads every plugin in the plugindir"
like "$out" "^example +ABI $abi +$plugindir/example\\.so " "and lists the out-of-tree example with ABI $abi"

cat >"$TEST_TMP/mailmode.conf" <<CONF
[mailmode]
state = state.db

[profile lab]
example_world = world.json
example_route = scanner
CONF
W=$TEST_TMP/world.json
echo '{"domains": {"contoso.test": {"route": "direct"}}}' >"$W"
route() {
	"$PYTHON3" -c 'import json,sys; print(json.load(open(sys.argv[1]))["domains"].get("contoso.test", {}).get("route", "-"))' "$W"
}
mm() { run "$installed_mailmode" --config "$TEST_TMP/mailmode.conf" --plugin-dir "$plugindir" "$@"; }

mm setup contoso.test --mode example
is "$rc:$(route)" "0:scanner" "setup with the out-of-tree plugin routes through the scanner"
mm verify contoso.test
is "$rc" 0 "verify passes"
mm teardown contoso.test
is "$rc:$(route)" "0:direct" "teardown puts the old route back"

CHECKER=$installed_checker
check_plugin --config "$TEST_TMP/mailmode.conf" --profile lab --domain contoso.test \
	"$plugindir/example.so"
is "$rc" 0 "the installed mailmode-plugin-check passes it"
is "$(check_count ok)" "$(check_planned)" "every check ok"
