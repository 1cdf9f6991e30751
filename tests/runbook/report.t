#!/bin/sh
# A runbook run's summary, state rows and report, against the sandbox: 40
# domains over 10 tenants; d001.test and d002.test have a secondary that
# never receives changes, so their switches to gateway never verify.
# - With a failure budget of 2 the run stops after them: 2 failed, the
#   domains never started are "not started" with the reason, not "failed".
# - --only narrows a run; resume RUN --skip-failed leaves the failures out
#   and the budget counts only that run's failures.
# - runbook report RUN --html/--csv/--markdown: one self-contained HTML
#   file (rendered by headless Chromium: a screenshot that is not blank and
#   shows the timeline's colours), CSV and Markdown, every string from the
#   state escaped; from a copy of the state DB without a config; journal
#   rows older than schema 3 (no ms times) and a schema 2 DB upgraded.
# - A run killed midway: its report shows the domains it was switching as
#   interrupted, and resume finishes them.
# REPORT_KEEP=DIR keeps the HTML and the screenshot there, to look at.
. "$top_srcdir/tests/runbook/lib.sh"
start_sandbox --tenants 10 --domains 40 --stale d001.test,d002.test
plan 40

skip() { tap_n=$((tap_n + 1)); echo "ok $tap_n # SKIP $*"; }

# --- the failure budget stops the run: 2 failed, the rest never started
# (4 workers: at most 4 domains not yet verified at once, parked or not)
# a canary stage of 2: d001 and d002 (stale) fail in it and spend the budget
write_runbook "$TEST_TMP/gateway.ini" gateway 4 2s 2 2
run "$MAILMODE" --json runbook run "$TEST_TMP/gateway.ini"
is "$rc" 1 "budget spent: exit 1"
RUN1=$(json 'd["run"]')
total=$(json 'd["totals"]["switched"] + d["totals"]["failed"] + d["totals"]["not_started"]')
is "$(json 'd["totals"]["failed"]')/$total" "2/40" "totals: 2 failed (not the domains never started), 40 in all"
not_started=$(json 'd["totals"]["not_started"]')
ok "$([ "$not_started" -gt 0 ]; echo $?)" "some domains were never started ($not_started)"
is "$(json '" ".join(sorted(set(x["status"] + ":" + x["reason"][:27] for x in d["domains"] if x["status"] != "switched")))')" \
   "failed:d001.test: gateway mode did failed:d002.test: gateway mode did not started:failure budget of 2 reached" \
   "each domain has its own status and reason"
is "$(db "SELECT status, count(*) FROM runbook_run_domains WHERE run_id = $RUN1 GROUP BY status ORDER BY status" | tr '\n' ' ')" \
   "failed|2 not started|38 " "state: the run's rows have the same statuses: the canary's two failed, none of the rest started"
is "$(db "SELECT count(*) FROM runbook_run_domains WHERE run_id = $RUN1 AND status = 'not started' AND reason LIKE 'failure budget of 2 reached%' AND migration_id IS NULL")" \
   "$not_started" "state: not started for the failure budget, no migration"
is "$(db "SELECT count(*) FROM runbook_runs WHERE id = $RUN1 AND finished_ms >= started_ms")" 1 "state: the run's start and end"
run "$MAILMODE" runbook report "$RUN1" --markdown "$TEST_TMP/run1.md"
like "$(cat "$TEST_TMP/run1.md")" "40 domains: [0-9]* switched, 0 unchanged, 0 skipped, 2 failed, 0 interrupted, $not_started not started" "the report's summary counts"

# --- --only: a narrowed run, and a name the runbook does not list
run "$MAILMODE" --json runbook run "$TEST_TMP/gateway.ini" --only d040.test,d039.test --only d038.test
is "$rc" 0 "--only: exit 0"
is "$(json '" ".join(x["domain"] + "=" + x["status"] for x in d["domains"])')" \
   "d038.test=switched d039.test=switched d040.test=switched" "--only: just those three, switched"
run "$MAILMODE" runbook run "$TEST_TMP/gateway.ini" --only d041.test
is "$rc:$err" "2:mailmode: error: --only d041.test: runbook $TEST_TMP/gateway.ini does not list it" "--only: a domain the runbook does not list is named"

# --- resume the first run without its failures: the budget counts this run's
run "$MAILMODE" --json runbook resume "$RUN1" --skip-failed
is "$rc" 0 "resume --skip-failed: exit 0 though run $RUN1 spent the budget"
is "$(json '" ".join(x["domain"] + "=" + x["reason"][:30] for x in d["domains"] if x["status"] == "skipped" and "failed" in x["reason"])')" \
   "d001.test=--skip-failed: failed in run $RUN1 d002.test=--skip-failed: failed in run $RUN1" "the failed domains are left out, naming the run"
is "$(json 'd["totals"]["failed"], d["totals"]["not_started"]')" "0 0" "nothing failed or left unstarted"
is "$(db "SELECT count(*) FROM domains WHERE mode = 'gateway'")" 38 "state: the 38 others in gateway mode"

# --- to mailflow and back to gateway: every step of a switch on the timeline
write_runbook "$TEST_TMP/mailflow.ini" mailflow 8 30s 10
run "$MAILMODE" --json runbook run "$TEST_TMP/mailflow.ini"
is "$rc" 0 "all 40 to mailflow"
write_runbook "$TEST_TMP/back.ini" gateway 8 3s 10
run "$MAILMODE" --json runbook run "$TEST_TMP/back.ini"
is "$rc:$(json 'd["totals"]["switched"], d["totals"]["failed"]')" "1:38 2" "back to gateway: 38 switched, d001 and d002 rolled back"
RUN=$(json 'd["run"]')
is "$(db "SELECT count(*) FROM journal WHERE at_ms IS NULL AND migration_id IN (SELECT migration_id FROM runbook_run_domains WHERE run_id = $RUN)")" 0 \
   "state: every journal row of the run has its time in ms"
run "$MAILMODE" --json runbook report "$RUN"
# A domain that waited for a worker until the caches of its replaced MX
# had expired (their TTL is 2 s) verified with no settle wait left.
settled=$(db "SELECT count(DISTINCT migration_id) FROM journal WHERE phase = 'settle' AND migration_id IN (SELECT migration_id FROM runbook_run_domains WHERE run_id = $RUN)")
ok "$([ "$settled" -gt 0 ]; echo $?)" "some domains waited for caches after they verified ($settled)"
is "$(json '" ".join(sorted(set("-".join(p["phase"] for p in x["phases"]) for x in d["domains"])))' | sed 's/ setup-verify-teardown$//'):$(json 'sum(1 for x in d["domains"] if "settle" in [p["phase"] for p in x["phases"]])')" \
   "setup-verify-rollback setup-verify-settle-teardown:$settled" "timelines: setup, verify, settle (where journaled), teardown; rollback for the failures"
is "$(json '" ".join("%s:%d/%d/%d" % (t["tenant"], t["domains"], t["switched"], t["failed"]) for t in d["tenants"])')" \
   "tenant01.onmicrosoft.com:4/3/1 tenant02.onmicrosoft.com:4/3/1 tenant03.onmicrosoft.com:4/4/0 tenant04.onmicrosoft.com:4/4/0 tenant05.onmicrosoft.com:4/4/0 tenant06.onmicrosoft.com:4/4/0 tenant07.onmicrosoft.com:4/4/0 tenant08.onmicrosoft.com:4/4/0 tenant09.onmicrosoft.com:4/4/0 tenant10.onmicrosoft.com:4/4/0" \
   "per-tenant totals"

# The change board's copy of the state DB, without the config.
sqlite3 "$DB" ".backup '$TEST_TMP/copy.db'"
run env -u MAILMODE_CONFIG HOME="$TEST_TMP" "$MAILMODE" --state "$TEST_TMP/copy.db" runbook report "$RUN" --csv "$TEST_TMP/copy.csv"
is "$rc:$(wc -l <"$TEST_TMP/copy.csv")" "0:41" "a report from a copy of the state DB, with no config"

# A state DB of schema 2 (made from a copy: the new tables and columns dropped) is upgraded.
sqlite3 "$DB" ".backup '$TEST_TMP/v2.db'"
sqlite3 "$TEST_TMP/v2.db" "DROP TABLE shared_notes; DROP TABLE prepares; DROP TABLE shared_locks; DROP TABLE runbook_run_domains; DROP TABLE runbook_runs; ALTER TABLE journal DROP COLUMN at_ms; ALTER TABLE journal DROP COLUMN last_ms; PRAGMA user_version = 2"
run env -u MAILMODE_CONFIG HOME="$TEST_TMP" "$MAILMODE" --state "$TEST_TMP/v2.db" runbook report
is "$rc:$err:$(sqlite3 "$TEST_TMP/v2.db" "PRAGMA user_version; SELECT count(*) FROM journal WHERE at_ms IS NULL" | tr '\n' ' ' | sed 's/ $//')" \
   "1:mailmode: error: no runbook has been run with $TEST_TMP/v2.db:6 $(db "SELECT count(*) FROM journal")" \
   "schema 2 upgraded to 6: no runs yet, the old journal rows kept without ms times"

# --- the files
H="$TEST_TMP/run.html"
run "$MAILMODE" runbook report "$RUN" --html "$H" --csv "$TEST_TMP/run.csv" --markdown "$TEST_TMP/run.md"
is "$rc" 0 "report: HTML, CSV and Markdown written"
is "$(grep -c '<rect [^>]*fill="#9b59b6"' "$H") $(grep -o 'd0[0-9][0-9]\.test</text>' "$H" | sort -u | wc -l)" "$settled 40" \
   "HTML: a settle bar for each domain that waited, a timeline row for each of the 40"
is "$(grep -io '<link\|<script\|<img\|<iframe\|src=\|url(\|@import\|href=' "$H" | wc -l)" 0 "HTML: self-contained, nothing fetched"
like "$(tr '\n' ' ' <"$H")" "<h3>d001.test</h3>.*did not verify within 3s: gateway MX of d001.test not yet served.*<h3>d002.test</h3>" "HTML: every failure with its diagnostic"
is "$("$PYTHON3" -c 'import csv,sys,collections; r=list(csv.DictReader(open(sys.argv[1]))); c=collections.Counter(x["status"] for x in r); print(len(r), c["switched"], c["failed"], sum(1 for x in r if x["status"] == "switched" and int(x["settle_ms"]) > 0))' "$TEST_TMP/run.csv")" \
   "40 38 2 $settled" "CSV: one row per domain, its status and phase times"
like "$(cat "$TEST_TMP/run.md")" '\| 3[0-9] \| d03[0-9]\.test \| tenant[0-9]+\.onmicrosoft\.com \| mailflow \| gateway \| switched \|' "Markdown: the domains' table"

# --- rendered by a browser: not blank, the timeline's colours are there
if command -v chromium >/dev/null 2>&1; then
	PNG="$TEST_TMP/run.png"
	timeout 120 chromium --headless --no-sandbox --disable-gpu --user-data-dir="$TEST_TMP/chromium" \
		--screenshot="$PNG" --window-size=1200,800 "file://$H" >"$TEST_TMP/chromium.out" 2>&1
	ok $? "headless Chromium renders the HTML"
	# colours COLOUR...: how many pixels are near each, then the share of
	# non-white pixels (per mille) and the distinct colours; PNG read with
	# zlib (8-bit RGB or RGBA, all five filters).
	colours() {
		"$PYTHON3" - "$PNG" "$@" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n"
pos, idat, w = 8, b"", 0
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
        assert depth == 8 and ctype in (2, 6), (depth, ctype)
        bpp = 3 if ctype == 2 else 4
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
raw, stride, prev, pixels = zlib.decompress(idat), w * bpp, None, []
for y in range(h):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    prev = prev or bytearray(stride)
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    pixels += [tuple(line[i:i + 3]) for i in range(0, stride, bpp)]
    prev = line
near = lambda p, q: all(abs(x - y) <= 8 for x, y in zip(p, q))
wanted = [tuple(int(c[i:i + 2], 16) for i in (0, 2, 4)) for c in sys.argv[2:]]
print(" ".join(str(sum(1 for p in pixels if near(p, q))) for q in wanted),
      sum(1 for p in pixels if p != (255, 255, 255)) * 1000 // len(pixels), len(set(pixels)))
PY
	}
	# setup, verify, settle, teardown
	set -- $(colours 1f77b4 ff9f1c 9b59b6 2ca02c)
	ok "$([ "$1" -gt 20 ] && [ "$2" -gt 500 ] && [ "$3" -gt 500 ] && [ "$4" -gt 500 ]; echo $?)" \
	   "the screenshot shows the timeline's bars (pixels of setup $1, verify $2, settle $3, teardown $4)"
	ok "$([ "$5" -ge 50 ] && [ "$6" -ge 50 ]; echo $?)" "the screenshot is not blank ($5 per mille not white, $6 colours)"
	if [ -n "${REPORT_KEEP:-}" ]; then
		cp "$H" "$REPORT_KEEP/report-40.html" && cp "$PNG" "$REPORT_KEEP/report-40.png"
	fi
else
	skip "chromium is not installed"
	skip "chromium is not installed"
	skip "chromium is not installed"
fi

# --- Rows from before schema 3 have only second-resolution times: still a timeline.
db "UPDATE journal SET at_ms = NULL, last_ms = NULL WHERE migration_id = (SELECT migration_id FROM runbook_run_domains WHERE run_id = $RUN AND domain = 'd010.test')"
run "$MAILMODE" --json runbook report "$RUN"
is "$(json '" ".join("%s:%d" % (p["phase"], p["start_ms"] % 1000) for x in d["domains"] if x["domain"] == "d010.test" for p in x["phases"])')" \
   "setup:0 verify:0 settle:0 teardown:0" "journal rows without ms times: the timeline from their ISO times"

# --- strings from the state are escaped
db "UPDATE runbook_run_domains SET reason = '</pre><script>alert(1)</script> & \"q\"' WHERE run_id = $RUN AND domain = 'd001.test'"
db "UPDATE runbook_run_domains SET reason = '=HYPERLINK(\"http://x\") | **b**' WHERE run_id = $RUN AND domain = 'd002.test'"
db "UPDATE runbook_run_domains SET domain = '<i>d003</i>.test' WHERE run_id = $RUN AND domain = 'd003.test'"
run "$MAILMODE" runbook report "$RUN" --html "$H" --csv "$TEST_TMP/run.csv" --markdown "$TEST_TMP/run.md"
is "$(grep -c '<script' "$H"):$(grep -c '&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot;' "$H")" "0:2" \
   "HTML: a diagnostic cannot inject markup (escaped in the failures and the table)"
escaped=$(grep -c '&lt;i&gt;d003&lt;/i&gt;.test' "$H")
ok "$([ "$(grep -c '<i>' "$H")" -eq 0 ] && [ "$escaped" -ge 3 ]; echo $?)" \
   "HTML: nor can a domain name (escaped in its row, its bars' titles and the table: $escaped)"
is "$(grep -c ",\"'=HYPERLINK(\"\"http://x\"\") | \*\*b\*\*\"," "$TEST_TMP/run.csv"):$(grep -c '=HYPERLINK("http://x") \\| \\\*\\\*b\\\*\\\*' "$TEST_TMP/run.md")" "1:2" \
   "CSV: no formula; Markdown: no cell break or markup"

# --- a run killed midway: its rows say so, and resume finishes it
MAILMODE_TEST_CRASH_AFTER=25 "$MAILMODE" runbook run "$TEST_TMP/mailflow.ini" >/dev/null 2>&1
is "$?" 137 "a run to mailflow is killed midway"
run "$MAILMODE" --json runbook report last
is "$(json 'd["run"]["finished"], d["totals"]["domains"], d["totals"]["interrupted"] > 0, d["totals"]["switched"] + d["totals"]["interrupted"] + d["totals"]["not_started"] + d["totals"]["skipped"]')" \
   "False 40 True 40" "the killed run's report: not finished, the domains it was switching interrupted"
KILLED=$(json 'd["run"]["id"]')
run "$MAILMODE" --json runbook resume last
is "$rc:$(db "SELECT count(*) FROM domains WHERE mode = 'mailflow'")" "0:40" "resume finishes it: all 40 in mailflow mode"
is "$(db "SELECT count(*) FROM runbook_run_domains r JOIN runbook_run_domains k ON k.domain = r.domain AND k.run_id = $KILLED AND k.status = 'running' WHERE r.run_id = $(json 'd["run"]') AND r.status IN ('switched', 'skipped') AND r.to_mode = 'mailflow'")" \
   "$(db "SELECT count(*) FROM runbook_run_domains WHERE run_id = $KILLED AND status = 'running'")" \
   "the interrupted domains were finished by the resumed run (or had finished just before the kill)"
