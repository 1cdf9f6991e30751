#!/bin/sh
# What a switch writes to stderr, against the sandbox (BIND 9 primary and
# secondary, the Microsoft 365 emulator): quiet on success off a terminal
# (no per-query lines, each warning once), every status line with -v, and
# on a terminal (a pty) status lines rewritten in place, cut to its width,
# with no escape sequences at all under TERM=dumb.
. "$top_srcdir/tests/lib.sh"
SB="$TEST_TMP/sandbox"
export MAILMODE_DATADIR="$top_srcdir/tests/servers"
export MAILMODE_SANDBOX_OWNER_PID=$$
if ! "$MAILMODE" --plugin-dir "$PLUGIN_DIR" sandbox start --dir "$SB" >"$TEST_TMP/sandbox.out" 2>&1; then
	sed 's/^/# /' "$TEST_TMP/sandbox.out"
	echo "Bail out! the sandbox did not start"
	exit 1
fi
at_exit "'$MAILMODE' sandbox stop --dir '$SB' >/dev/null 2>&1"
export MAILMODE_CONFIG="$SB/mailmode.conf"
plan 18
D=contoso.test
FAST="--poll-interval 250ms"
WARNING="mail to the tenant's Microsoft domain"

# pty COLUMNS TERM OUT ARGS...: runs mailmode on a pseudo-terminal of that
# width; OUT gets the raw bytes it wrote, escapes and all.
pty() {
	_cols=$1 _term=$2 _out=$3
	shift 3
	"$PYTHON3" - "$_cols" "$_term" "$_out" "$MAILMODE" "$@" <<'PY'
import fcntl, os, pty, struct, sys, termios
cols, term, out, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
pid, fd = pty.fork()
if pid == 0:
    os.environ["TERM"] = term
    os.environ.pop("COLUMNS", None)
    os.execv(argv[0], argv)
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
data = b""
while True:
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        break
    if not chunk:
        break
    data += chunk
_, status = os.waitpid(pid, 0)
open(out, "wb").write(data)
sys.exit(os.waitstatus_to_exitcode(status))
PY
}
# widest FILE: the widest status line a terminal shows (what follows a
# "\r ESC[K" and is rewritten, not ended by a newline as a log line is).
widest() {
	"$PYTHON3" -c 'import re, sys
d = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
rows = [m.group(1) for m in (re.match(r"([^\r\n]*)(\r\n|\n|\r|$)", s) for s in d.split("\r\x1b[K")[1:]) if m.group(2) in ("\r", "")]
print(max([len(r) for r in rows] or [0]))' "$1"
}

run "$MAILMODE" adopt $D --mode gateway --profile sandbox
is "$rc" 0 "$D adopted in gateway mode"

run "$MAILMODE" switch $D --to mailflow $FAST
is "$rc" 0 "switch to mailflow off a terminal"
like "$out" "^$D: switched gateway -> mailflow" "the result on stdout"
unlike "$err" "asking ns" "no per-query lines without -v"
unlike "$err" "setting up|tearing down|waiting until" "no status lines within the first 30 s"
is "$(printf '%s\n' "$err" | grep -c "$WARNING")" 1 "the tenant's warning is said once (preflight, setup and the result all carry it)"

run "$MAILMODE" -v switch $D --to gateway $FAST
is "$rc" 0 "switch back with -v"
like "$err" "gateway: asking ns1\.$D\. \(127\.0\.0\.11\) for $D MX" "-v: the per-query lines"
like "$err" "$D: tearing down mailflow mode" "-v: every status line"

pty 40 xterm "$TEST_TMP/tty.out" switch $D --to mailflow $FAST
is "$?" 0 "switch on a 40-column terminal"
ok "$(grep -q "$(printf '\r\033\\[K')" "$TEST_TMP/tty.out"; echo $?)" "status lines are rewritten in place"
w=$(widest "$TEST_TMP/tty.out")
ok "$([ "$w" -gt 0 ] && [ "$w" -le 39 ]; echo $?)" "no status line wider than the terminal (widest $w)"
like "$(tr '\r' '\n' <"$TEST_TMP/tty.out")" "$D: switched gateway -> mailflow" "the result line, whole"

pty 40 dumb "$TEST_TMP/dumb.out" switch $D --to gateway $FAST
is "$?" 0 "switch under TERM=dumb"
ok "$(grep -q "$(printf '\033')" "$TEST_TMP/dumb.out"; [ $? -ne 0 ]; echo $?)" "TERM=dumb: no escape sequence written"
like "$(cat "$TEST_TMP/dumb.out")" "$D: switched mailflow -> gateway" "and the result"

pty 60 xterm "$TEST_TMP/status.out" status
is "$?" 0 "status on a terminal"
rows=$("$PYTHON3" -c 'import re, sys
d = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
d = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", d)
print(" ".join("ok" if r.startswith(sys.argv[2]) else "BAD:" + r for r in re.split(r"[\r\n]", d) if "profile sandbox" in r))' "$TEST_TMP/status.out" "$D ")
is "$rows" "ok" "the status line is cleared before the table is printed"
