#!/bin/sh
# ABI stability.  tests/abi/plugin-v1.0.h is the v1.0 contract, frozen: a
# byte-for-byte copy of <mailmode/plugin.h> as released with ABI 1.0.  Never
# edit it.  While MAILMODE_ABI_MAJOR is 1:
#   - the current header lays out every v1.0 type, field and constant the
#     same (tests/abi/layout.c, built against both and compared);
#   - a plugin built against the frozen header (the example plugin) loads
#     into the current mailmode as ABI 1.0 and passes mailmode-plugin-check.
# A change that breaks this has to bump MAILMODE_ABI_MAJOR on purpose; this
# test then expects the v1.0 plugin to be refused with a "rebuild" message,
# until the new major's header is frozen next to this one.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/sdk/check-lib.sh"

: "${CC:=cc}"
: "${PKG_CONFIG:=pkg-config}"
command -v "$PKG_CONFIG" >/dev/null 2>&1 || skip_all "pkg-config is not installed"

plan 10

abi_of() {
	sed -n 's/^#define MAILMODE_ABI_\(MAJOR\|MINOR\) \([0-9]*\)$/\2/p' "$1" | paste -sd. -
}
FROZEN_INC=$TEST_TMP/v1.0/include
mkdir -p "$FROZEN_INC/mailmode"
cp "$top_srcdir/tests/abi/plugin-v1.0.h" "$FROZEN_INC/mailmode/plugin.h"
CURRENT=$(abi_of "$top_srcdir/plugins/include/mailmode/plugin.h")
CURRENT_MAJOR=${CURRENT%%.*}
is "$(abi_of "$FROZEN_INC/mailmode/plugin.h")" "1.0" "the frozen header is ABI 1.0"
diag "current header: ABI $CURRENT"

# --- the layout, field by field
probe() {
	run "$CC" -std=c11 -Wall -Wextra -Werror -I"$1" -o "$TEST_TMP/layout-$2" \
		"$top_srcdir/tests/abi/layout.c"
	[ "$rc" -eq 0 ] || printf '%s\n' "$err" | head -20 | sed 's/^/# /'
	[ "$rc" -ne 0 ] || "$TEST_TMP/layout-$2" >"$TEST_TMP/layout-$2.txt"
}
probe "$FROZEN_INC" v1.0
is "$rc" 0 "the layout probe builds against the frozen header"
probe "$top_srcdir/plugins/include" current
is "$rc" 0 "the layout probe builds against the current header: no v1.0 name is gone"
# Minors append: every line the frozen header gives must still come out the
# same; lines only the current header gives are what later minors added.
(cd "$TEST_TMP" && sort layout-v1.0.txt >v1.0.sorted && sort layout-current.txt >current.sorted)
changed=$(cd "$TEST_TMP" && comm -23 v1.0.sorted current.sorted | paste -sd';' -)
diag "added since 1.0: $(cd "$TEST_TMP" && comm -13 v1.0.sorted current.sorted | paste -sd';' -)"
if [ "$CURRENT_MAJOR" = 1 ]; then
	is "$changed" "" "under ABI major 1 every v1.0 type, field and constant is laid out the same"
else
	like "$changed" "abi major 1" "the layout changed with the ABI major bumped to $CURRENT_MAJOR"
fi

# --- a plugin built against the frozen header, loaded by today's mailmode
# (the compiler's default C dialect: example.c uses POSIX and BSD calls that
# -std=c11 hides unless a feature macro is defined)
PLUGINS=$TEST_TMP/plugins
mkdir -m 755 "$PLUGINS"
run "$CC" -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden \
	-I"$FROZEN_INC" $("$PKG_CONFIG" --cflags libcjson) -MD -MF "$TEST_TMP/example.d" \
	-o "$PLUGINS/example.so" "$top_srcdir/plugins/example/example.c" \
	$("$PKG_CONFIG" --libs libcjson)
is "$rc" 0 "the example plugin builds against the frozen v1.0 header"
like "$(cat "$TEST_TMP/example.d" 2>/dev/null)" "v1\\.0/include/mailmode/plugin\\.h" \
	"it was compiled with the frozen header"
chmod 755 "$PLUGINS/example.so"

cat >"$TEST_TMP/mailmode.conf" <<CONF
[profile lab]
example_world = world.json
example_route = scanner
CONF
echo '{"domains": {"contoso.test": {"route": "direct"}}}' >"$TEST_TMP/world.json"

run "$MAILMODE" --plugin-dir "$PLUGINS" plugins
if [ "$CURRENT_MAJOR" = 1 ]; then
	is "$rc" 0 "the current mailmode loads the v1.0 plugin"
	like "$out" "^example +ABI 1\\.0 " "mailmode plugins lists it with ABI 1.0"
	check_plugin --config "$TEST_TMP/mailmode.conf" --profile lab --domain contoso.test \
		"$PLUGINS/example.so"
	is "$rc" 0 "mailmode-plugin-check passes it against a live world"
	is "$(check_count ok):$(check_failed)" "$(check_planned):" "every check ok"
else
	is "$rc" 1 "ABI major $CURRENT_MAJOR: the v1.0 plugin is refused"
	like "$err" "built for plugin ABI 1\\.0, this mailmode implements $CURRENT_MAJOR\\.[0-9]+: rebuild it" \
		"with a message that says to rebuild it"
	check_plugin "$PLUGINS/example.so"
	is "$rc" 1 "mailmode-plugin-check fails it"
	is "$(check_failed)" "loads through the mailmode plugin loader; descriptor: ABI version is one this mailmode accepts" \
		"on loading and on the ABI version"
fi
