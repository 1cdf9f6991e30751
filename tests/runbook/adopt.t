#!/bin/sh
# adopt --all FILE against the sandbox: the domains a runbook lists are
# observed in every mode, each one live in exactly one mode (that its
# plugin can adopt) is recorded as adopted, the rest are listed with the
# reason.  The world is set up by mailmode with one state DB, then adopted
# into a fresh one, as if it had been set up by hand; d004.test is given
# the gateway MX by hand as well (a DNS UPDATE), so both modes are live.
. "$top_srcdir/tests/runbook/lib.sh"
start_sandbox --tenants 2 --domains 6
NEW="$TEST_TMP/new.db"
plan 10

cat >"$TEST_TMP/setup.ini" <<'RUNBOOK'
[runbook]
verify_timeout = 30s
poll_interval = 300ms

[domains]
d001.test = gateway tenant01
d002.test = gateway tenant02
d003.test = gateway tenant01
d004.test = mailflow tenant02
d005.test = mailflow tenant01
RUNBOOK
run "$MAILMODE" runbook run "$TEST_TMP/setup.ini"
is "$rc" 0 "the world: d001-d003 in gateway mode, d004 and d005 in mailflow mode"
printf 'server %s %s\nzone d004.test\nupdate delete d004.test MX\nupdate add d004.test 60 MX 10 mx-01.gw.sandbox.test.\nupdate add d004.test 60 MX 20 mx-02.gw.sandbox.test.\nsend\n' \
	"$DNS_PRIMARY" "$DNS_PORT" | nsupdate -y "$TSIG_ALGORITHM:$TSIG_KEY:$TSIG_SECRET"
ok $? "d004.test: the gateway MX added by hand"

# The inventory: every domain, no profile on d006's line (--profile).
cat >"$TEST_TMP/all.ini" <<'RUNBOOK'
[domains]
d001.test = gateway tenant01
d002.test = gateway tenant02
d003.test = gateway
d004.test = mailflow tenant02
d005.test = mailflow tenant01
d006.test = mailflow
RUNBOOK
run "$MAILMODE" --json --state "$NEW" adopt --all "$TEST_TMP/all.ini" --profile tenant01
is "$rc" 4 "some domains are not adoptable: exit 4"
is "$(json '" ".join("%s=%s" % (x["domain"], x["result"]) for x in d["domains"])')" \
   "d001.test=adopted d002.test=adopted d003.test=adopted d004.test=not adopted d005.test=not adopted d006.test=not adopted" \
   "the domains live in exactly one adoptable mode are adopted"
is "$(json '"|".join(x["reason"] for x in d["domains"][3:])')" \
   "not live in exactly one mode: gateway mode is live, mailflow mode is live|mailflow mode is live, but its plugin cannot adopt a domain set up by hand|no mode is live" \
   "the rest listed with the reason"
is "$(sqlite3 "$NEW" "SELECT domain || '=' || mode || '/' || profile || '/' || adopted FROM domains WHERE mode IS NOT NULL ORDER BY domain" | tr '\n' ' ')" \
   "d001.test=gateway/tenant01/1 d002.test=gateway/tenant02/1 d003.test=gateway/tenant01/1 " \
   "state: the three recorded as adopted, each with its line's profile or --profile"
is "$(sqlite3 "$NEW" "SELECT count(*) FROM migrations WHERE kind = 'adopt' AND result = 'done'")" 3 "state: three journaled adopt migrations"

run "$MAILMODE" --state "$NEW" adopt --all "$TEST_TMP/all.ini" --profile tenant01
like "$out" "6 domains: 0 adopted, 3 already recorded, 1 with no mode live, 2 not adoptable, 0 failed" "again: the adopted ones are already recorded"

run "$MAILMODE" --state "$NEW" adopt --all
is "$rc:$err" "2:mailmode: error: adopt --all needs the runbook FILE listing the domains" "--all without FILE: usage error"
run "$MAILMODE" --state "$NEW" adopt --all "$TEST_TMP/all.ini" --mode gateway
is "$rc:$err" "2:mailmode: error: adopt --all observes every mode: drop --mode gateway" "--all with --mode: usage error"
