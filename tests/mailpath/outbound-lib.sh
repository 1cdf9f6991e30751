# Shared by the tests of gateway mode's outgoing mail (outbound = yes;
# gateway-outbound.t, gateway-outcrash.t): the gateway tenant profile with
# outbound = yes, and a sender inside the tenant (a mailbox of the domain
# sending to the internet through the emulator's submission endpoint).
. "$top_srcdir/tests/mailpath/gwtenant-lib.sh"
OUT="mailmode outbound of $D via sandbox-service"
OUT_RCPT=carol@internet.sandbox.test
sed '/^lockdown = yes$/a\
outbound = yes' "$SB/gwtenant.conf" >"$SB/outbound.conf"
export MAILMODE_CONFIG="$SB/outbound.conf"

# out_sender_start NAME: alice@$D sends to $OUT_RCPT every 100-200 ms
# until out_sender_stop NAME; one JSON line per message in NAME.out.
out_sender_start() {
	rm -f "$TEST_TMP/$1.stop"
	"$PYTHON3" - "$EMU" "$EMU_CA" "$TENANT" "alice@$D" "$OUT_RCPT" "$TEST_TMP/$1.stop" \
		"$TEST_TMP/$1.out" <<'PY' &
import json, os, random, ssl, sys, time, urllib.request
emu, ca, tenant, sender, rcpt, stop, log = sys.argv[1:8]
ctx = ssl.create_default_context(cafile=ca)
with open(log, "a") as f:
    seq = 0
    while not os.path.exists(stop):
        seq += 1
        body = json.dumps({"from": sender, "to": [rcpt], "subject": "out %d" % seq}).encode()
        req = urllib.request.Request("%s/_emu/tenants/%s/submit" % (emu, tenant), body,
                                     {"Content-Type": "application/json"})
        t = time.time()
        try:
            mid = json.load(urllib.request.urlopen(req, context=ctx, timeout=10))["message_id"]
            f.write(json.dumps({"seq": seq, "t": t, "message_id": mid}) + "\n")
        except Exception as e:  # noqa: BLE001
            f.write(json.dumps({"seq": seq, "t": t, "error": str(e)}) + "\n")
        f.flush()
        time.sleep(random.uniform(0.1, 0.2))
PY
	echo $! >"$TEST_TMP/$1.pid"
}
out_sender_stop() {
	touch "$TEST_TMP/$1.stop"
	wait "$(cat "$TEST_TMP/$1.pid")" 2>/dev/null
}

# out_oracle NAME [VIA_FROM VIA_UNTIL]: over NAME's messages, once every one
# reached the internet (at most 20 s): "sent N lost N duplicated N
# scanned-twice N direct-while-gateway N"; messages submitted between
# VIA_FROM and VIA_UNTIL (epoch s: gateway mode live with outbound) must have
# come through the service's outbound host (127.0.0.25), scanned once.
out_oracle() {
	"$PYTHON3" - "$TEST_TMP/$1.out" "$SERVICE" "$SCANS" "${2:-0}" "${3:-0}" <<'PY'
import json, sys, time, urllib.request
log, service, scans_path, via_from, via_until = sys.argv[1:6]
via_from, via_until = float(via_from), float(via_until)
sent = [json.loads(x) for x in open(log) if x.strip()]
key = lambda m: (m or "").strip("<>").lower()
want = {key(s["message_id"]) for s in sent if "message_id" in s}
deadline = time.time() + 20
while True:
    got = {}
    for r in json.load(urllib.request.urlopen(service + "/internet")):
        got.setdefault(key(r["message_id"]), []).append(r)
    if want <= set(got) or time.time() > deadline:
        break
    time.sleep(0.3)
time.sleep(1)
got = {}
for r in json.load(urllib.request.urlopen(service + "/internet")):
    got.setdefault(key(r["message_id"]), []).append(r)
scans = {}
for line in open(scans_path):
    s = json.loads(line)
    scans.setdefault(key(s["message_id"]), []).append(s)
lost = dup = twice = direct = errors = 0
for s in sent:
    if "message_id" not in s:
        errors += 1
        continue
    k = key(s["message_id"])
    copies = got.get(k, [])
    lost += not copies
    dup += len(copies) > 1
    twice += len(scans.get(k, [])) > 1
    if via_from <= s["t"] <= via_until and copies and not (
            copies[0]["peer"] == "127.0.0.25" and len(scans.get(k, [])) == 1 and
            scans[k][0]["path"] == "outbound"):
        direct += 1
print("sent %d lost %d duplicated %d scanned-twice %d direct-while-gateway %d errors %d" % (
    len(sent), lost, dup, twice, direct, errors))
PY
}
