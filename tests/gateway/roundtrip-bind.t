#!/bin/sh
# Gateway mode on BIND 9 (primary + secondary): plan, setup, verify,
# status, idempotent setup, teardown; the original MX set (two records,
# TTL 3600) comes back exactly, on both servers.
. "$top_srcdir/tests/gateway/gateway-lib.sh"

plan 26

D=example.test
serial0=$(dns_serial "$DNS_PRIMARY" $D)

mm plugins
like "$out" "gateway" "the gateway plugin loads through the ABI v1 loader"

mm setup $D --mode gateway --profile lab --dry-run
is "$rc" 0 "setup --dry-run succeeds"
like "$out" "prerequisite: example.test. IN MX 10 mx1.example.test." "plan: prerequisite names the current records"
like "$out" "delete: example.test. ANY MX" "plan: deletes the MX RRset"
like "$out" "add: example.test. 300 IN MX 20 mx-02.gw.test." "plan: adds the gateway records with their TTL"
is "$(dns_serial "$DNS_PRIMARY" $D)" "$serial0" "dry run: the zone is untouched"

mm --json setup $D --mode gateway --profile lab
is "$rc" 0 "setup succeeds"
is "$(json_get "$out" "[(m['pref'], m['host'], m['ttl']) for m in d['receipt']['mx']]")" \
	"[(10, 'mx1.example.test.', 3600), (20, 'mx2.example.test.', 3600)]" \
	"the receipt keeps the original MX set with its TTLs"
is "$(mx_bind $D)" "$GATEWAY_SET" "the primary serves exactly the gateway set"

serial1=$(dns_serial "$DNS_PRIMARY" $D)
dns_wait_serial "$DNS_SECONDARY" $D "$serial1" 10
ok $? "the secondary follows (NOTIFY + IXFR) to serial $serial1"
is "$(dns_mx "$DNS_SECONDARY" $D)" "$GATEWAY_SET" "the secondary serves exactly the gateway set"

mm verify $D
is "$rc" 0 "verify passes on both authoritative servers"

mm --json status $D
is "$(json_get "$out" "sorted((s['address'], s['serial'], len(s['mx'])) for s in d['domains'][0]['observed']['gateway']['report']['servers'])")" \
	"[('127.0.0.11', $serial1, 2), ('127.0.0.12', $serial1, 2)]" \
	"status --json reports each server's serial and MX set"
is "$(json_get "$out" "d['domains'][0]['observed']['gateway']['presence']")" "present" \
	"status: gateway mode is present"

mm setup $D --mode gateway --profile lab
is "$rc" 0 "setup again succeeds (idempotent)"
is "$(dns_serial "$DNS_PRIMARY" $D)" "$serial1" "setup again sends no UPDATE"

mm --json setup $D --mode gateway --profile lab2
is "$rc" 0 "setup again with a new gateway set (profile lab2) succeeds"
is "$(mx_bind $D)" "600 10 mx-01.gw2.test.
600 20 mx-02.gw2.test." "the primary serves the new gateway set"
is "$(json_get "$out" "[(m['host'], m['ttl']) for m in d['receipt']['mx']]")" \
	"[('mx1.example.test.', 3600), ('mx2.example.test.', 3600)]" \
	"the receipt still holds the original MX set, not the old gateway set"

mm teardown $D --dry-run
like "$out" "prerequisite: example.test. IN MX 20 mx-02.gw2.test." "teardown plan: the gateway set is the prerequisite"
like "$out" "add: example.test. 3600 IN MX 10 mx1.example.test." "teardown plan: restores the saved records with TTL 3600"
mm --json teardown $D --dry-run
is "$(json_get "$out" "[(a['change'], a['zone'], [(r['preference'], r['exchange']) for r in a['delete']], [(r['name'], r['type'], r['ttl'], r['preference'], r['exchange']) for r in a['add']]) for a in d['plan'][0]['actions']] + [d['summary']['domains'][0]['text']]")" \
	"[('replace', 'example.test', [(10, 'mx-01.gw2.test.'), (20, 'mx-02.gw2.test.')], [('example.test', 'MX', 3600, 10, 'mx1.example.test.'), ('example.test', 'MX', 3600, 20, 'mx2.example.test.')]), '$D: MX to replace']" \
	"--json teardown plan: the MX change as records deleted and added; the summary"

mm teardown $D
is "$rc" 0 "teardown succeeds"
is "$(mx_bind $D)" "$ORIG_EXAMPLE" "the primary serves the original MX set again, TTLs included"
serial2=$(dns_serial "$DNS_PRIMARY" $D)
dns_wait_serial "$DNS_SECONDARY" $D "$serial2" 10
is "$(dns_mx "$DNS_SECONDARY" $D)" "$ORIG_EXAMPLE" "the secondary serves the original MX set again"

mm --json status $D --profile lab
is "$(json_get "$out" "d['domains'][0]['observed']['gateway']['presence']")" "absent" \
	"status: gateway mode is absent after teardown"
