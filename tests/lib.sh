# Shared helpers for the shell tests: TAP output and a scratch directory.
# Source it from a test script:   . "$top_srcdir/tests/lib.sh"
# Environment set by `make check`: top_srcdir, top_builddir, MAILMODE,
# PLUGIN_DIR, PYTHON3.  Run by hand, it falls back to the source tree.

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${MAILMODE:=$top_builddir/mailmode}"
: "${PLUGIN_DIR:=$top_builddir/plugins.d}"
: "${PYTHON3:=/usr/bin/python3}"
export top_srcdir top_builddir MAILMODE PLUGIN_DIR PYTHON3

tap_n=0
tap_failed=0

# plan N
plan() { echo "1..$1"; }

# ok COND-STATUS DESCRIPTION: `ok $? "text"` or `cmd; ok $? "text"`
ok() {
	tap_n=$((tap_n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $tap_n - $2"
	else
		echo "not ok $tap_n - $2"
		tap_failed=$((tap_failed + 1))
	fi
}

# is GOT EXPECTED DESCRIPTION
is() {
	if [ "$1" = "$2" ]; then
		ok 0 "$3"
	else
		ok 1 "$3"
		diag "got:      '$1'"
		diag "expected: '$2'"
	fi
}

# like GOT EXTENDED-REGEX DESCRIPTION
like() {
	if printf '%s' "$1" | grep -Eq -- "$2"; then
		ok 0 "$3"
	else
		ok 1 "$3"
		diag "got:          '$1'"
		diag "expected like '$2'"
	fi
}

# unlike GOT EXTENDED-REGEX DESCRIPTION
unlike() {
	if printf '%s' "$1" | grep -Eq -- "$2"; then
		ok 1 "$3"
		diag "got:            '$1'"
		diag "expected unlike '$2'"
	else
		ok 0 "$3"
	fi
}

diag() { printf '# %s\n' "$*"; }

skip_all() { echo "1..0 # SKIP $*"; exit 0; }

# A scratch directory removed at exit; `at_exit CMD` adds cleanup commands
# that run first (stopping servers), also when the test fails.
TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/mailmode-test.XXXXXX")
chmod 755 "$TEST_TMP"
tap_cleanup_cmds=
at_exit() { tap_cleanup_cmds="$1; $tap_cleanup_cmds"; }
tap_exit() {
	eval "$tap_cleanup_cmds"
	rm -rf "$TEST_TMP"
}
trap tap_exit EXIT
trap 'exit 130' INT TERM

# run CMD...: runs a command, keeps its exit code in $rc, stdout in $out and
# stderr in $err.
run() {
	"$@" >"$TEST_TMP/.out" 2>"$TEST_TMP/.err"
	rc=$?
	out=$(cat "$TEST_TMP/.out")
	err=$(cat "$TEST_TMP/.err")
	return 0
}

# db_digest DB: a digest of the state database's content, to prove a
# command changed nothing.
db_digest() {
	if [ -f "$1" ]; then
		sqlite3 "$1" .dump | sha256sum | cut -d' ' -f1
	else
		echo absent
	fi
}
