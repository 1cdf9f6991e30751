#!/bin/sh
# libFuzzer, one target per parser (config, runbook, domain, receipts, API
# answers, DNS answers, Route 53 XML), each built with clang under ASan + UBSan and run
# for a fixed time (MAILMODE_FUZZ_SECONDS, default 15) from a few seeds.
# Any finding (crash, undefined behaviour, leak, timeout) fails the test
# and leaves its reproducer in tests/fuzz/findings/.
. "$top_srcdir/tests/lib.sh"

if [ -z "${CLANG:-}" ]; then
	CLANG=clang
	command -v clang >/dev/null 2>&1 || CLANG=clang-14
fi
SECONDS_EACH=${MAILMODE_FUZZ_SECONDS:-15}
TARGETS="config runbook domain receipt api dns xml"
command -v "$CLANG" >/dev/null 2>&1 || skip_all "clang is not installed"
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
	>"$TEST_TMP/probe.c"
"$CLANG" -fsanitize=fuzzer "$TEST_TMP/probe.c" -o "$TEST_TMP/probe" 2>/dev/null ||
	skip_all "$CLANG has no libFuzzer (Debian: libclang-rt-14-dev)"
plan 14

S=$top_srcdir
GW="$S/modes/gateway/config.c $S/modes/gateway/mxset.c $S/modes/gateway/dns.c $S/modes/gateway/authcheck.c"
# The gateway's config reads the tenant side's sign-in keys through lib/ms.
MS="$S/lib/ms/util.c $S/lib/ms/entra.c $S/lib/ms/exo.c"
MF="$S/modes/mailflow/config.c $S/modes/mailflow/tenant.c $S/modes/mailflow/objects.c \
$S/modes/mailflow/trace.c $S/modes/mailflow/keys.c"
sources() {
	case $1 in
	config) echo "$S/core/config.c $S/core/config_check.c $S/modes/gateway/keys.c $S/modes/mailflow/keys.c" ;;
	runbook) echo "$S/core/runbook.c $S/core/config.c $S/core/domain.c" ;;
	domain) echo "$S/core/domain.c" ;;
	receipt) echo "$S/tests/fuzz/fakehost.c $GW $MF $MS" ;;
	api) echo "$S/tests/fuzz/fakehost.c $MF $MS" ;;
	dns) echo "$GW $MS" ;;
	xml) echo "$S/modes/gateway/xml.c" ;;
	esac
}
CFLAGS="-g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined,float-cast-overflow \
-fno-sanitize-recover=all -I$S/plugins/include -I$S/core -I$S/lib -I$S/modes/gateway \
-I$S/modes/mailflow -I$S/tests/fuzz $(pkg-config --cflags libcjson) \
-DMM_LOCALSTATEDIR=\"/var\" -DMM_PLUGIN_DIR=\"/usr/lib/mailmode/modes\""
LIBS="$(pkg-config --libs libcjson ldns openssl) -lpthread -lm"

# Seeds, so that 15 s reach past the first syntax checks.
seed() { mkdir -p "$TEST_TMP/corpus/$1"; printf '%b' "$2" >"$TEST_TMP/corpus/$1/$3"; }
seed config '[mailmode]\nstate = s.db\n[profile p]\ndns = lab\nservice = s\ntenant = t\nfallback_ttl = 60\n[dns lab]\ntsig_key = k\nprimray = 1\n[service s]\ngateway_mx = 10 mx.test\n[tenant t]\nclient_id = x\n[mode gateway]\n[quicktset]\n' a
seed runbook '\357\273\277[runbook]\nparallel = 4\nverify_timeout = 15m\npoll_interval = 10s\n[domains]\na.test = gateway eu\nb.test = mailflow\n' a
seed domain 'Mail.Example.TEST.' a
seed domain 'a.b..' b
seed receipt '{"version":1,"zone":"example.test","mx":[{"pref":10,"host":"mx.example.test.","ttl":3600}],"gateway":[{"pref":10,"host":"gw.test.","ttl":300}],"swapped_at_ms":1700000000000,"rule":{"name":"mailmode route a.test"},"set_up_at_ms":1e999}' a
seed api '200\n{"access_token":"tok","expires_in":3599}\n--\n200\n{"value":[{"Name":"mailmode route contoso.test","Priority":0,"State":"Enabled","Mode":"Enforce","RecipientDomainIs":["contoso.test"],"RouteMessageOutboundConnector":"mailmode outbound to s","ExceptIfHeaderContainsMessageHeader":"X-Scanned","Comments":"managed by mailmode"}],"@odata.nextLink":"https://api.test/adminapi/beta/x/InvokeCommand?$skiptoken=1"}\n--\n400\n{"error":{"code":"x","message":"y","details":[{"message":"ErrId|Microsoft.Exchange.Management.Tasks.ManagementObjectNotFoundException|not found"}]}}\n' a
seed api '200\n{"access_token":"tok","expires_in":1e300}\n--\n200\n{"value":[{"Name":"r","Priority":1e300}]}\n' b
# An authoritative answer: example.test. MX 10 mx.example.test.
seed dns '\0\1\204\0\0\1\0\1\0\0\0\0\7example\4test\0\0\17\0\1\300\14\0\17\0\1\0\0\16\20\0\7\0\12\2mx\300\14' a
# A packet ldns_wire2pkt refuses and leaks on (ldns's bug, suppressed).
seed dns '\00\00\00\00\00\00\00\00\00\00\02\00\00\00\02\00\00\00\00\00\00\00\00\00\00\020\00\07\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\0372\00\00\00\00\00\00\00\00\00\00\0372\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\02\00\00\00\00\012\02' b

seed xml '<?xml version="1.0"?>\n<ListResourceRecordSetsResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ResourceRecordSets><ResourceRecordSet><Name>a.test.</Name><Type>MX</Type><TTL>3600</TTL><ResourceRecords><ResourceRecord><Value>10 mx1.a.test.</Value></ResourceRecord></ResourceRecords></ResourceRecordSet></ResourceRecordSets><IsTruncated>true</IsTruncated><NextRecordName>b.a.test.</NextRecordName></ListResourceRecordSetsResponse>' a
seed xml '<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: a &amp; b &#65; &#x42; &lt;c&gt;</Message></Error></ErrorResponse>' b
seed xml '<HostedZones><HostedZone><Id>/hostedzone/Z1</Id><Name>a.test.</Name><Config a="x>y"><PrivateZone/></Config></HostedZone></HostedZones>' c
mkdir -p "$top_builddir/tests/fuzz/findings"
total=0
for t in $TARGETS; do
	bin=$TEST_TMP/fuzz_$t
	# shellcheck disable=SC2046,SC2086
	run "$CLANG" $CFLAGS -o "$bin" "$S/tests/fuzz/fuzz_$t.c" $(sources "$t") "$S/lib/num.c" "$S/lib/nearest.c" $LIBS
	is "$rc" 0 "fuzz_$t builds with clang -fsanitize=fuzzer,address,undefined"
	[ "$rc" -eq 0 ] || { printf '%s\n' "$err" | head -20 | sed 's/^/# /'; continue; }
	mkdir -p "$TEST_TMP/work/$t"
	# ldns leaks inside ldns_wire2pkt on some malformed packets (lsan-ldns.supp);
	# the slow unwinder sees through ldns, which has no frame pointers.
	opts=
	[ "$t" = dns ] && opts="ASAN_OPTIONS=fast_unwind_on_malloc=0 LSAN_OPTIONS=suppressions=$S/tests/fuzz/lsan-ldns.supp"
	# shellcheck disable=SC2086
	run env $opts "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
		-artifact_prefix="$top_builddir/tests/fuzz/findings/$t-" \
		"$TEST_TMP/work/$t" "$TEST_TMP/corpus/$t"
	runs=$(printf '%s\n' "$err" | sed -n 's/^Done \([0-9]*\) runs.*/\1/p' | tail -1)
	total=$((total + ${runs:-0}))
	is "$rc:${runs:+ran}" "0:ran" "fuzz_$t: no finding in ${SECONDS_EACH}s (${runs:-0} runs)"
	[ "$rc" -eq 0 ] || printf '%s\n' "$err" | grep -E 'ERROR|runtime error|SUMMARY|#0|#1|#2|#3|#4' | head -20 | sed 's/^/# /'
done
diag "$total inputs run in all"
rmdir "$top_builddir/tests/fuzz/findings" 2>/dev/null || diag "reproducers kept in tests/fuzz/findings/"
