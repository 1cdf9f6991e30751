# Shared by the mail-path tests: the sandbox (tests/migrate/lib.sh starts it:
# BIND 9, the Microsoft 365 emulator with its SMTP front door, the mail-path
# simulator) plus helpers to send mail through it and to ask the oracle.
. "$top_srcdir/tests/migrate/lib.sh"

grep -q '"smtp_port"' "$SB/sandbox.json" ||
	skip_all "the sandbox has no mail path ($(grep -o 'no mail path.*' "$TEST_TMP/sandbox.out"))"
MAILSIM="$top_srcdir/tests/servers/mailsim.py"
TENANT=sandbox.onmicrosoft.com
SMTP_PORT=$(emu_url smtp_port)
SCANS=$(emu_url scan_log)
SERVICE=$(emu_url mailsim_control_url)
DNS_SERVERS="$DNS_PRIMARY:$DNS_PORT,$DNS_SECONDARY:$DNS_PORT"
FRONT_DOOR="0 contoso-test.mail.protection.outlook.test."

mailsim() { "$PYTHON3" "$MAILSIM" "$@"; }

# service_config JSON: settings of the security service (mailsim.py).
service_config() {
	curl -sS --fail-with-body -X POST -H 'Content-Type: application/json' \
		--data-binary "$1" "$SERVICE/config" >/dev/null
}

# emu_config JSON: settings of the emulator (consistency delay...).
emu_config() {
	curl -sS --fail-with-body --cacert "$EMU_CA" -X POST -H 'Content-Type: application/json' \
		--data-binary "$1" "$EMU/_emu/config" >/dev/null
}

# emu_get PATH: a control API answer.
emu_get() { curl -sS --fail-with-body --cacert "$EMU_CA" "$EMU$1"; }

# now: epoch seconds with nanoseconds.
now() { date +%s.%N; }

# sender_start NAME RECIPIENTS [mailsim send options]: an internet sender in
# the background, one message every 100-200 ms to RECIPIENTS (comma list)
# until sender_stop NAME; its log is $TEST_TMP/NAME.sent.
sender_start() {
	_name=$1
	_rcpts=$2
	shift 2
	rm -f "$TEST_TMP/$_name.stop"
	mailsim send --dns "$DNS_SERVERS" --smtp-port "$SMTP_PORT" --to "$_rcpts" \
		--interval-ms 100-200 --until-file "$TEST_TMP/$_name.stop" \
		--log "$TEST_TMP/$_name.sent" --owner-pid $$ "$@" >/dev/null 2>"$TEST_TMP/$_name.err" &
	echo $! >"$TEST_TMP/$_name.pid"
}

sender_stop() {
	touch "$TEST_TMP/$1.stop"
	wait "$(cat "$TEST_TMP/$1.pid")" 2>/dev/null
	rm -f "$TEST_TMP/$1.pid"
}

# switch_under_load NAME TO [DOMAIN]: NAME's sender (to $RCPTS) for 1 s, the
# switch of DOMAIN (contoso.test) to TO, 2 s more; $switch_rc, $DONE_AT.
switch_under_load() {
	sender_start "$1" "$RCPTS"
	sleep 1
	start=$(now)
	run mm -q switch "${3:-contoso.test}" --to "$2" --poll-interval 250ms --verify-timeout 30s
	switch_rc=$rc
	DONE_AT=$(now)
	diag "switch to $2 took $(awk "BEGIN { printf \"%.1f\", $DONE_AT - $start }") s"
	sleep 2
	sender_stop "$1"
}

# oracle NAME [SWITCH_DONE_AT]: the oracle over NAME's messages; output in
# $out, exit status in $rc (run).
oracle() {
	run mailsim oracle --sent "$TEST_TMP/$1.sent" --emu "$EMU" --ca "$EMU_CA" \
		--tenant "$TENANT" --scans "$SCANS" ${2:+--switch-done-at "$2"}
}

# show: the last command's output as TAP diagnostics.
show() {
	printf '%s\n' "$out" | sed 's/^/# /'
	[ -z "$err" ] || printf '%s\n' "$err" | sed 's/^/# stderr: /'
}

# count LABEL: a number from the oracle's output ("scanned twice" -> N).
count() {
	printf '%s\n' "$out" | sed -n "s/.*[ ,]$1 \([0-9][0-9]*\).*/\1/p;s/^$1 \([0-9][0-9]*\).*/\1/p" | head -1
}

# send_one NAME RECIPIENT [mailsim send options]: one message, now; its log
# line is appended to $TEST_TMP/NAME.sent.
send_one() {
	_name=$1
	_rcpt=$2
	shift 2
	mailsim send --dns "$DNS_SERVERS" --smtp-port "$SMTP_PORT" --to "$_rcpt" --count 1 \
		--log "$TEST_TMP/$_name.sent" --retry-for 5 "$@" 2>/dev/null
}

# sent_field NAME FIELD: FIELD of the last message NAME sent.
sent_field() {
	"$PYTHON3" -c 'import json, sys
lines = [json.loads(x) for x in open(sys.argv[1]) if x.strip()]
print(lines[-1].get(sys.argv[2]))' "$TEST_TMP/$1.sent" "$2"
}

# jpy EXPR: a Python expression over the JSON on stdin (as d).
jpy() {
	"$PYTHON3" -c 'import json, sys
d = json.load(sys.stdin)
v = eval(sys.argv[1])
print(v if isinstance(v, str) else json.dumps(v))' "$1"
}

# copies MESSAGE-ID: "N MAILBOX scans=S loop=L" of the delivered copies
# (S scan headers, L loop headers in the last copy), "0" when none.
copies() {
	emu_get "/_emu/tenants/$TENANT/messages" | "$PYTHON3" -c 'import json, sys
want = sys.argv[1].strip("<>").lower()
got = [m for m in json.load(sys.stdin) if m["message_id"].strip("<>").lower() == want]
if not got:
    print(0)
else:
    h = [k.lower() for k, v in got[-1]["headers"]]
    print(len(got), " ".join(sorted({m["mailbox"] for m in got})),
          "scans=%d" % h.count("x-sandbox-scan"),
          "loop=%d" % h.count("x-sandbox-mailflow-processing-id"))' "$1"
}

# scans_of MESSAGE-ID: "path@host" of each scan, in order.
scans_of() {
	"$PYTHON3" -c 'import json, sys
want = sys.argv[2].strip("<>").lower()
out = []
for line in open(sys.argv[1]):
    s = json.loads(line)
    if s["message_id"].strip("<>").lower() == want:
        out.append("%s@%s" % (s["path"], s["host"]))
print(" ".join(out))' "$SCANS" "$1"
}

# trace MESSAGE-ID [--detail]: Get-MessageTraceV2 through the admin API.
trace() {
	_mid=$1
	shift
	mailsim trace --sandbox "$SB" --message-id "$_mid" "$@"
}
