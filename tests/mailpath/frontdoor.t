#!/bin/sh
# The mail path of the sandbox, piece by piece: the outlook.test zone, the
# internet sender (MX order, fallback), the security service (scan stamps,
# loop header, gateway and mailflow paths), the emulator's SMTP front door
# (accepted domains, live transport rules and connectors at the admin API's
# visibility, inbound connector by certificate, hop limit) and the message
# trace through the admin API (Get-MessageTraceV2 / Get-MessageTraceDetailV2):
# what `mailmode verify --quick-test` will rely on.
. "$top_srcdir/tests/mailpath/lib.sh"
plan 40
RULE="mailmode route fabrikam.test"
OUTBOUND="mailmode outbound to sandbox-service"
INBOUND="mailmode inbound from sandbox-service"

# --- the world ---------------------------------------------------------------
is "$(kdig @"$DNS_PRIMARY" -p "$DNS_PORT" +norec +short contoso-test.mail.protection.outlook.test A) $(kdig @"$DNS_SECONDARY" -p "$DNS_PORT" +norec +short fabrikam-test.mail.protection.outlook.test A)" \
	"127.0.0.31 127.0.0.31" "front door names resolve on both servers (zone outlook.test)"
run mm sandbox status --dir "$SB"
like "$out" "front door .*running .*127.0.0.31:$SMTP_PORT" "status: the front door runs"
like "$out" "mail-path simulator .*running .*127.0.0.21 127.0.0.22 127.0.0.23:$SMTP_PORT" "status: the service runs"
like "$(tr '\n' ' ' <"$SB/mailmode.conf")" "\[quicktest\] smtp_port = $SMTP_PORT " "mailmode.conf: the [quicktest] hint"

# --- a plain Microsoft 365 domain: straight to the mailbox -------------------
send_one plain bob@fabrikam.test
is "$(sent_field plain mx) $(sent_field plain ip)" "fabrikam-test.mail.protection.outlook.test 127.0.0.31" "fabrikam.test: the sender delivers to its MX, the front door"
mid=$(sent_field plain message_id)
is "$(copies "$mid")" "1 bob@fabrikam.test scans=0 loop=0" "delivered to the mailbox, unscanned"
is "$(scans_of "$mid")" "" "the service never saw it"
is "$(trace "$mid" | jpy '" ".join("%s %s %s %s" % (r["Status"], r["FromIP"], r["ToIP"], r["EmuRoute"]) for r in d)')" \
	"Delivered 127.0.0.41 None Mailbox" "trace: one row, Delivered from the sender to the mailbox"

# --- a domain in gateway mode ------------------------------------------------
send_one gw alice@contoso.test
is "$(sent_field gw mx)" "mx-01.gw.sandbox.test" "contoso.test: the sender takes the preferred MX, mx-01.gw"
mid=$(sent_field gw message_id)
is "$(scans_of "$mid")" "gateway@mx-01.gw.sandbox.test" "scanned once, by the gateway"
is "$(copies "$mid")" "1 alice@contoso.test scans=1 loop=1" "delivered with the scan stamp and the loop header"
is "$(trace "$mid" | jpy '" ".join("%s %s %s" % (r["Status"], r["FromIP"], r["EmuRoute"]) for r in d)')" \
	"Delivered 127.0.0.21 Mailbox" "trace: received from the gateway host, delivered"

service_config '{"tempfail": ["mx-01.gw.sandbox.test"]}'
send_one gw2 alice@contoso.test
service_config '{"tempfail": []}'
is "$(sent_field gw2 mx)" "mx-02.gw.sandbox.test" "mx-01 answering 451: the sender falls back to mx-02"
is "$(scans_of "$(sent_field gw2 message_id)")" "gateway@mx-02.gw.sandbox.test" "scanned once, by mx-02"

run "$PYTHON3" -c 'import smtplib, sys
s = smtplib.SMTP("127.0.0.31", int(sys.argv[1]), timeout=10)
s.ehlo("mta.internet.test")
s.mail("x@internet.test")
print(*s.rcpt("nobody@example.org"))' "$SMTP_PORT"
like "$out" "^550 b?'?5\.4\.1 Recipient address rejected" "front door: a domain no tenant accepts is refused (550 5.4.1)"

# --- mailflow mode (set up by mailmode): out to the service and back ---------
run mm -q setup fabrikam.test --mode mailflow
is "$rc" 0 "fabrikam.test set up in mailflow mode"
send_one mf bob@fabrikam.test
mid=$(sent_field mf message_id)
is "$(sent_field mf ip)" "127.0.0.31" "the sender still delivers to the front door (DNS untouched)"
is "$(scans_of "$mid")" "mailflow@mf-outbound.sandbox.test" "scanned once, by the service's smart host"
is "$(copies "$mid")" "1 bob@fabrikam.test scans=1 loop=1" "delivered once, stamped"
trace "$mid" >"$TEST_TMP/mf.trace"
is "$(jpy '" | ".join("%s %s %s %s" % (r["Status"], r["FromIP"], r["ToIP"], r["EmuRoute"]) for r in sorted(d, key=lambda r: r["Received"]))' <"$TEST_TMP/mf.trace")" \
	"Delivered 127.0.0.41 127.0.0.23 Connector:$OUTBOUND | Delivered 127.0.0.24 None Mailbox" \
	"trace: routed by the rule to the smart host, then back from the return host to the mailbox"
is "$(jpy '" | ".join(str(r["EmuInboundConnector"]) + ":" + ",".join(r["EmuTransportRules"]) for r in sorted(d, key=lambda r: r["Received"]))' <"$TEST_TMP/mf.trace")" \
	"None:$RULE | $INBOUND:" "trace: the rule applied going out; the return came through the inbound connector"
is "$(trace "$mid" --detail | jpy '" | ".join(",".join(e["Event"] for e in r["Detail"]) for r in sorted(d, key=lambda r: r["Received"]))')" \
	"Receive,Transport rule,Send external | Receive,Transport rule,Deliver" \
	"Get-MessageTraceDetailV2: the events of both rows"
like "$(trace "$mid" --detail | jpy '[e["Detail"] for r in d for e in r["Detail"] if e["Event"] == "Transport rule" and "exception" in e["Detail"]][0]')" \
	"not applied, exception: sender IP 127.0.0.24 in 127.0.0.21, 127.0.0.22, 127.0.0.24" \
	"the return skipped the rule by its exception: it came from the service's address"

# A rule change counts for the next message once the admin API shows it.
emu_config '{"consistency_delay_s": 3}'
mailsim invoke --sandbox "$SB" Disable-TransportRule "{\"Identity\":\"$RULE\"}" >/dev/null
send_one dis1 bob@fabrikam.test
is "$(scans_of "$(sent_field dis1 message_id)")" "mailflow@mf-outbound.sandbox.test" "rule disabled but not visible yet: still routed"
sleep 3
send_one dis2 bob@fabrikam.test
is "$(scans_of "$(sent_field dis2 message_id)")" "" "3 s later the disabled rule is what the API shows: not routed"
emu_config '{"consistency_delay_s": 0}'
mailsim invoke --sandbox "$SB" Enable-TransportRule "{\"Identity\":\"$RULE\"}" >/dev/null
send_one en bob@fabrikam.test
is "$(scans_of "$(sent_field en message_id)")" "mailflow@mf-outbound.sandbox.test" "enabled again (no delay): routed"

# The message trace lags behind like Exchange Online's when told to.
emu_config '{"trace_delay_s": 2}'
send_one lag bob@fabrikam.test
mid=$(sent_field lag message_id)
is "$(trace "$mid" | jpy 'len(d)')" "0" "trace_delay_s 2: nothing traced yet"
sleep 2.2
is "$(trace "$mid" | jpy 'len(d)')" "2" "2 s later: both rows"
emu_config '{"trace_delay_s": 0}'
is "$(trace "$mid" | jpy 'len(d)')" "$(emu_get "/_emu/tenants/$TENANT/trace" | jpy "len([r for r in d if r['MessageId'] == '$mid'])")" "the control API shows the same rows"
run mailsim invoke --sandbox "$SB" Get-MessageTraceV2 "{\"RecipientAddress\":\"bob@fabrikam.test\",\"Status\":\"Delivered\",\"ResultSize\":3}"
is "$(printf '%s' "$out" | jpy 'len(d)')" "3" "Get-MessageTraceV2 -RecipientAddress -Status -ResultSize 3: three rows"
run mailsim invoke --sandbox "$SB" Get-MessageTraceV2 '{"Status":"Bogus"}'
like "$rc $err" "^1 .*Unable to match the identifier name Bogus" "a bad -Status is refused"
run mailsim invoke --sandbox "$SB" Get-MessageTraceV2 '{"StartDate":"2030-01-02","EndDate":"2030-01-01"}'
like "$rc $err" "^1 .*StartDate can't be later than the EndDate" "StartDate after EndDate is refused"
run mailsim invoke --sandbox "$SB" Get-MessageTraceDetailV2 '{"MessageTraceId":"nope","RecipientAddress":"bob@fabrikam.test"}'
like "$rc $err" "^1 .*System.Guid" "Get-MessageTraceDetailV2 wants a GUID"

# A service node the rule's exception does not list (its return comes from
# 127.0.0.25): the rule routes the message again and again; the hop limit
# (30 Received headers) ends the loop.
service_config '{"mailflow_source": "127.0.0.25"}'
send_one loop bob@fabrikam.test
sleep 2
service_config '{"mailflow_source": null}'
mid=$(sent_field loop message_id)
n=$(scans_of "$mid" | wc -w)
ok "$([ "$n" -ge 10 ] && [ "$n" -le 20 ]; echo $?)" "a return from an address the rule does not except: the message loops ($n scans)"
is "$(copies "$mid")" "0" "until the hop limit: never delivered"
is "$(emu_get "/_emu/tenants/$TENANT/trace" | jpy "len([r for r in d if r['MessageId'] == '$mid' and r['Route'] == 'Connector:$OUTBOUND'])")" "$n" "the front door traced each round (the last, over the limit, refused)"

run mm -q teardown fabrikam.test
is "$rc" 0 "fabrikam.test mailflow torn down"
is "$(tenant_objects)" "0 0 0 " "tenant: nothing left"
send_one after bob@fabrikam.test
is "$(copies "$(sent_field after message_id)")" "1 bob@fabrikam.test scans=0 loop=0" "mail for fabrikam.test goes straight to the mailbox again"
is "$(emu_get "/_emu/tenants/$TENANT/mailboxes" | jpy 'sorted(d)')" '["alice@contoso.test", "bob@fabrikam.test"]' "mailboxes: the two addresses used"
