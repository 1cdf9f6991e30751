#!/bin/sh
# The tenant lock when its holder dies: a `mailmode switch` SIGKILLed
# while it holds the lock (its Set-TransportRule made, the answer not come
# yet) leaves the lock row behind.  A second switch on this
# host takes it over at once (that pid is gone); one held by a process on
# another host is waited for, with its holder named, and taken over when
# its lease runs out; a live holder is waited for no longer than
# --lock-timeout, naming the tenant and the holder, with nothing changed.
# `mailmode resume` then finishes the killed switch.
. "$top_srcdir/tests/migrate/lib.sh"
. "$top_srcdir/tests/migrate/tenantlib.sh"

plan 22

now_ms() { "$PYTHON3" -c 'import time; print(int(time.time() * 1000))'; }
lock_row() { db "SELECT domain || ' ' || pid || ' ' || host FROM shared_locks WHERE resource = '$TENANT_KEY'"; }

# kill_while_holding MODE: runs `switch contoso.test --to MODE` and
# SIGKILLs it once it holds the tenant lock and its rule write is made
# (contoso.test listed for mailflow, not listed for gateway), its answer
# held back (a write not shown yet no longer keeps the lock: it goes into
# the tenant's note); $killed is its pid.
kill_while_holding() {
	emu POST /_emu/faults '{"kind":"acted_hang","count":1,"cmdlet":"Set-TransportRule","delay_ms":30000}' >/dev/null
	"$MAILMODE" -v --lock-timeout 60s switch contoso.test --to "$1" --poll-interval 200ms \
		--verify-timeout 60s >"$TEST_TMP/killed.out" 2>&1 &
	killed=$!
	_want=1
	[ "$1" = mailflow ] && _want=0
	_i=0
	while [ $_i -lt 600 ]; do
		if [ "$(lock_row | cut -d' ' -f1)" = contoso.test ]; then
			members | grep -q contoso.test
			[ $? -eq $_want ] && break
		fi
		sleep 0.1
		_i=$((_i + 1))
	done
	kill -KILL $killed
	wait $killed 2>/dev/null
	emu DELETE /_emu/faults >/dev/null
}

tenant_world

# --- the holder is a process on another host: only its lease frees the
# lock.  Made by hand: a row as another host's mailmode leaves it.
db "INSERT INTO shared_locks(resource, owner, pid, host, command, acquired_at, lease_until, holder, domain)
    VALUES('$TENANT_KEY', 'admin@elsewhere', 4242, 'elsewhere.example', 'switch',
           '2026-01-01T00:00:00Z', $(($(now_ms) + 600000)), 1, 'other.test')"
run mm -v --lock-timeout 2s switch fabrikam.test --to mailflow --poll-interval 200ms
ok $([ "$rc" -ne 0 ]; echo $?) "a switch waiting for a live holder gives up after --lock-timeout (exit $rc)"
like "$err" "$TENANT_KEY is locked by admin@elsewhere \\(pid 4242 on elsewhere.example, 'switch' of other.test since 2026-01-01T00:00:00Z\\); gave up after 2 s" \
	"the error names the tenant and its holder"
like "$err" "waiting for $TENANT_KEY, held by admin@elsewhere \\(pid 4242 on elsewhere.example" \
	"while it waited, it said for what and whom"
is "$(members) $(db "SELECT mode FROM domains WHERE domain = 'fabrikam.test'")" "northwind.test gateway" \
	"nothing was changed: the rule as it was, fabrikam.test in gateway mode"
db "DELETE FROM shared_locks"

# --- SIGKILL while holding the lock: new rule versions take 5 s to show,
# and contoso.test's switch holds the lock while its write's answer is
# held back.
emu POST /_emu/config '{"consistency_delay_s": 5}' >/dev/null
kill_while_holding mailflow
is "$(lock_row | cut -d' ' -f1,2)" "contoso.test $killed" "killed while holding the tenant lock: its row stays"
is "$(db "SELECT step FROM migrations WHERE domain = 'contoso.test' AND finished_at IS NULL")" "planned" \
	"its switch is open, setup of mailflow mode unfinished"

# The same row, as if its holder ran on another host (no pid to check):
# taken over once its lease runs out, 6 s from now (by then the killed
# switch's write shows).
emu POST /_emu/config '{"consistency_delay_s": 0}' >/dev/null
db "UPDATE shared_locks SET host = 'elsewhere.example', lease_until = $(($(now_ms) + 6000))"
start=$(now_ms)
run mm -v --lock-timeout 60s switch fabrikam.test --to mailflow --poll-interval 200ms --verify-timeout 60s
waited_ms=$(($(now_ms) - start))
is "$rc" 0 "fabrikam.test switches to mailflow"
like "$err" "waiting for $TENANT_KEY, held by .*\\(pid $killed on elsewhere.example, 'switch' of contoso.test since" \
	"it waited for the lock, naming the killed holder"
like "$err" "took over the lock on $TENANT_KEY from .*pid $killed on elsewhere.example.*: its lease expired" \
	"and took it over when the lease expired"
ok $([ "$waited_ms" -ge 5500 ]; echo $?) "not before the lease ran out (${waited_ms} ms)"
is "$(members)" "contoso.test,fabrikam.test,northwind.test" \
	"the rule keeps contoso.test (the killed switch's write) and lists fabrikam.test"
is "$(lock_row)" "" "the lock is let go"

# --- resume finishes the killed switch.
run mm --lock-timeout 60s resume contoso.test
is "$rc" 0 "resume finishes contoso.test's switch ($(printf '%s' "$err" | tail -1))"
is "$(db "SELECT result FROM migrations WHERE domain = 'contoso.test' ORDER BY id DESC LIMIT 1")" "done" \
	"its migration is done"
is "$(mode_shown contoso.test) $(mode_shown fabrikam.test)" "mailflow mailflow" \
	"status shows both domains in mailflow"
is "$(members)" "contoso.test,fabrikam.test,northwind.test" "the shared rule lists all three"

# --- the holder on this host is gone: taken over at once.
emu POST /_emu/config '{"consistency_delay_s": 5}' >/dev/null
kill_while_holding gateway
emu POST /_emu/config '{"consistency_delay_s": 0}' >/dev/null
sleep 5    # the killed switch's write shows
run mm -v --lock-timeout 60s switch fabrikam.test --to gateway --poll-interval 200ms --verify-timeout 60s
like "$err" "took over the lock on $TENANT_KEY from .*pid $killed on [^ ]*, 'switch' of contoso.test .*: that process is gone" \
	"a holder on this host that is gone: taken over at once"
run mm --lock-timeout 60s resume contoso.test
is "$rc $(mode_shown contoso.test) $(mode_shown fabrikam.test)" "0 gateway gateway" \
	"resume finishes contoso.test's switch to gateway; both in gateway mode"
is "$(members)" "northwind.test" "the shared rule shrank to northwind.test"
