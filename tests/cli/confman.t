#!/bin/sh
# mailmode.conf(5) against what is declared: every key the core and each
# shipped mode declare is documented in the section of its kind, nothing
# documented is undeclared, and the page's example config and the
# installed annotated example pass the config check.
. "$top_srcdir/tests/lib.sh"
plan 6

page="$top_srcdir/man/mailmode.conf.5"
for mode in gateway mailflow; do
	"$MAILMODE" --plugin-dir "$PLUGIN_DIR" --json plugins --keys "$mode" >"$TEST_TMP/$mode.json"
done

# kind key lines: documented (from .SS [kind ...] headings and the key that
# opens each .TP) and declared (core_keys in config_check.c, the modes'
# --keys).
"$PYTHON3" - "$page" "$top_srcdir/core/config_check.c" "$TEST_TMP" >"$TEST_TMP/compare" <<'PY'
import json, re, sys
page, core_src, tmp = sys.argv[1:]
documented, kind, after_tp = set(), None, False
for line in open(page):
    if line.startswith(".SH"):
        kind = None
    m = re.match(r'\.SS \[(\w+)', line)
    if m:
        kind = m.group(1)
    elif line.startswith(".SS"):
        kind = None
    if after_tp and kind:
        m = re.match(r'\\fB(\w+)\\fR', line)
        if m:
            documented.add((kind, m.group(1)))
    after_tp = line.startswith(".TP")
declared = {}
for m in re.finditer(r'\{ "(\w+)", "(\w+)", MAILMODE_KEY_', open(core_src).read()):
    declared[(m.group(1), m.group(2))] = "core"
for mode in ("gateway", "mailflow"):
    for k in json.load(open("%s/%s.json" % (tmp, mode)))["keys"]:
        declared[(k["section"], k["name"])] = mode
print("declared %d" % len(declared))
for who in ("core", "gateway", "mailflow"):
    missing = sorted("[%s] %s" % k for k, w in declared.items() if w == who and k not in documented)
    print("undocumented-%s %s" % (who, ", ".join(missing) or "none"))
print("stale %s" % (", ".join(sorted("[%s] %s" % k for k in documented - set(declared))) or "none"))
PY
like "$(cat "$TEST_TMP/compare")" "^declared [4-9][0-9]" "the keys declared by the core and both modes are read"
for who in core gateway mailflow; do
	is "$(sed -n "s/^undocumented-$who //p" "$TEST_TMP/compare")" "none" \
		"mailmode.conf(5) documents every key $who declares, in its section"
done

# The example, with its secret files and plugin directory pointed here.
sed -n '/^\.SH EXAMPLE/,/^\.fi/p' "$page" | sed '1,/^\.nf/d; /^\.fi/d' >"$TEST_TMP/example.conf"
run "$MAILMODE" --config "$TEST_TMP/example.conf" --state "$TEST_TMP/state.db" \
	--plugin-dir "$PLUGIN_DIR" status
is "$rc:$err:$(sed -n 's/^stale //p' "$TEST_TMP/compare")" "0::none" \
	"the page's example config passes the config check, and the page documents no undeclared key"
run "$MAILMODE" --config "$top_srcdir/doc/examples/mailmode.conf" --state "$TEST_TMP/state2.db" \
	--plugin-dir "$PLUGIN_DIR" status
is "$rc:$err" "0:" "the installed annotated example passes the config check"
