#!/bin/sh
# Shared notes across hosts on PostgreSQL: two mailmode processes standing
# for two hosts (MAILMODE_HOST_ID host-a and host-b) share one state
# database and join the domains of one tenant to its shared rule one right
# after the other while Exchange shows each write only 5 s late.  The
# tenant's note (plugin ABI 1.6 shared notes, table shared_notes) carries
# each write not shown yet from one host to the next: no domain is lost,
# no write waited for (one read-back each), and a teardown on one host
# while a setup runs on the other keeps the joining domain.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/mailflow/lib-mailflow.sh"
. "$top_srcdir/tests/servers/pg.sh"
pg_start || { echo "Bail out! PostgreSQL did not start"; exit 1; }
plan 7

MF_STATE=$PG_URL
mf_start
mf_tenant '{"accepted_domains": ["contoso.test", "d1.test", "d2.test", "d3.test", "d4.test", "d5.test", "d6.test"]}'
mf_config secret

# on HOST ARGS...: mailmode as HOST on the shared state
on() {
	_host=$1
	shift
	MAILMODE_HOST_ID=$_host mm "$@"
}
members() {
	mf_state '",".join(sorted(next(r for r in s["rules"] if r["Name"] == "mailmode route #1")["RecipientDomainIs"] or []))'
}

emu_ctl POST /_emu/config '{"consistency_delay_s": 5}' >/dev/null
run on host-a setup contoso.test --mode mailflow --profile p1 --no-wait
is "$rc" 0 "host-a makes the shared rule (the schema is created at version $(pg_sql 'SELECT version FROM mailmode_schema'))"
mf_settled
mf_reset_log
rcs=
for d in d1 d2 d3 d4 d5; do
	case $d in d1|d3|d5) h=host-b ;; *) h=host-a ;; esac
	run on $h setup $d.test --mode mailflow --profile p1 --no-wait
	rcs=$rcs$rc
done
is "$rcs $(mf_rule_io)" "00000 5 5" "five setups back to back, the hosts taking turns: one write each, read back once"
is "$(pg_sql "SELECT count(*) FROM shared_notes WHERE resource = 'tenant $MF_TENANT' AND domain = 'd5.test'")" 1 \
	"the tenant's note in the shared state holds the last write"
is "$(members)" "contoso.test,d1.test,d2.test,d3.test,d4.test,d5.test" "the rule holds all six: none lost"

mf_settled
mf_reset_log
on host-a teardown d1.test --no-wait >"$TEST_TMP/td.out" 2>&1 &
tpid=$!
on host-b setup d6.test --mode mailflow --profile p1 --no-wait >"$TEST_TMP/su.out" 2>&1
src=$?
wait $tpid
trc=$?
is "$trc $src" "0 0" "a teardown on host-a and a setup on host-b at once both succeed"
is "$(members)" "contoso.test,d2.test,d3.test,d4.test,d5.test,d6.test" \
	"the rule lost the domain torn down and kept the one joining"
is "$(mf_rule_io)" "2 2" "one write each, read back once"
