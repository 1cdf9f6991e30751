#!/bin/sh
# The randomized kill test against real servers (BIND 9 primary +
# secondary, the Microsoft 365 emulator with a consistency delay): 40
# switches (20 each way) and 20 plain setups and teardowns (5 of each mode)
# on 8 domains over 2 tenants, in a seeded random order.  Each command is
# killed (SIGKILL) at a moment drawn uniformly from [0, its uninterrupted
# duration] (measured once per kind at the start), so the kills land
# anywhere, not at journal boundaries.  Then `mailmode resume` runs (a few
# tries, until it exits 0) and, per trial:
#   1. resume finishes (and a command that ended before its kill succeeded);
#   2. the state DB records one mode for the domain, one of the two the
#      operation may end in, with no open migration, no lock, and the other
#      domains unchanged;
#   3. `mailmode status` exits 0;
#   4. both DNS servers serve that mode's MX (the gateway set in gateway
#      mode, the domain's original Microsoft 365 MX otherwise);
#   5. each tenant holds exactly the objects of its domains' recorded modes
#      (each mailflow domain listed by one shared rule, the shared
#      connectors while there is one), no name twice.
# The seed is printed first and in every failure: MAILMODE_TEST_SEED=N
# replays the same plan (the kinds, their order, the domain choices and the
# kill fractions; where a kill lands in the program still varies).  A
# trial that left the world broken is reported, then its domain is reset
# to no mode behind mailmode's back, so the next trials start clean.
. "$top_srcdir/tests/lib.sh"
SB="$TEST_TMP/sandbox"
export MAILMODE_DATADIR="$top_srcdir/tests/servers"
export MAILMODE_SANDBOX_OWNER_PID=$$
if ! "$MAILMODE" --plugin-dir "$PLUGIN_DIR" sandbox start --dir "$SB" -- \
	--tenants 2 --domains 8 >"$TEST_TMP/sandbox.out" 2>&1; then
	if grep -q "loopback" "$TEST_TMP/sandbox.out"; then
		skip_all "no loopback addresses 127.0.0.11-12 (needs root)"
	fi
	sed 's/^/# /' "$TEST_TMP/sandbox.out"
	echo "Bail out! the sandbox did not start"
	exit 1
fi
at_exit "'$MAILMODE' sandbox stop --dir '$SB' >/dev/null 2>&1"
export MAILMODE_CONFIG="$SB/mailmode.conf"
DB="$SB/state.db"
. "$SB/dns/dns.env"
GATEWAY_SET="10 mx-01.gw.sandbox.test. 20 mx-02.gw.sandbox.test."
EMU=$("$PYTHON3" -c 'import json,sys; print(json.load(open(sys.argv[1]))["emulator_url"])' "$SB/sandbox.json")
CLIENT_ID=$("$PYTHON3" -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_id"])' "$SB/sandbox.json")
EMU_CA="$SB/emu/ca.pem"
. "$top_srcdir/tests/migrate/killlib.sh"
LAYOUT=$(layout)
DOMAINS=$(printf '%s\n' "$LAYOUT" | awk '{ print $1 }')
NDOMAINS=$(printf '%s\n' "$DOMAINS" | wc -l)
FAST="--poll-interval 200ms --verify-timeout 8s"
SWITCHES_EACH_WAY=20
PLAIN_EACH=5           # setups and teardowns of each mode
KINDS="setup-gateway switch-to-mailflow switch-to-gateway teardown-gateway setup-mailflow teardown-mailflow"
TRIALS=$((2 * SWITCHES_EACH_WAY + 4 * PLAIN_EACH))
plan $((6 + TRIALS * 5))

if [ -n "${MAILMODE_TEST_SEED:-}" ]; then
	SEED=$MAILMODE_TEST_SEED
else
	SEED=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
fi
diag "seed $SEED: rerun with MAILMODE_TEST_SEED=$SEED"
started=$(date +%s)
rng_seed "$SEED"

# Objects become visible 1 s after they are made, as in Exchange Online
# (minutes there); the zones' TTLs are 2 s.
emu_get /_emu/config >/dev/null
curl -s --cacert "$EMU_CA" -X POST -H 'Content-Type: application/json' \
	-d '{"consistency_delay_s": 1}' "$EMU/_emu/config" >/dev/null

# The command line of KIND on DOMAIN; the mode it starts from and the
# modes it may end in.
command_of() {
	case $1 in
	switch-to-*) echo "switch $2 --to ${1#switch-to-} --profile $(tenant_of "$2") $FAST" ;;
	setup-*) echo "setup $2 --mode ${1#setup-} --profile $(tenant_of "$2")" ;;
	teardown-*) echo "teardown $2" ;;
	esac
}
start_of() {
	case $1 in
	switch-to-mailflow | teardown-gateway) echo gateway ;;
	switch-to-gateway | teardown-mailflow) echo mailflow ;;
	setup-*) echo none ;;
	esac
}
outcomes_of() {
	case $1 in
	switch-to-*) echo "$(start_of "$1") ${1#switch-to-}" ;;
	setup-*) echo "none ${1#setup-}" ;;
	teardown-*) echo "${1#teardown-} none" ;;
	esac
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# timed KIND DOMAIN: runs it uninterrupted; T_RC, T_MS.
timed() {
	_s=$(now_ms)
	# shellcheck disable=SC2046 # the command line is split on purpose
	"$MAILMODE" $(command_of "$1" "$2") >"$TEST_TMP/timed.out" 2>&1
	T_RC=$?
	T_MS=$(( $(now_ms) - _s ))
}

# bring DOMAIN MODE: into MODE ("none" too) with uninterrupted commands,
# when a trial needs a domain there and none is.
bring() {
	_from=$(mode_of "$1")
	[ "$_from" = "$2" ] && return 0
	if [ "$2" = none ]; then
		_kind=teardown-$_from
	elif [ "$_from" = none ]; then
		_kind=setup-$2
	else
		_kind=switch-to-$2
	fi
	settle "$(tenant_of "$1")"
	timed "$_kind" "$1"
	if [ "$T_RC" -ne 0 ]; then
		diag "seed $SEED: preparing $1 ($_kind) failed with exit $T_RC: $(tail -n 1 "$TEST_TMP/timed.out")"
		reset_domain "$1"
		[ "$2" = none ] && return 0
		timed "setup-$2" "$1"
		if [ "$T_RC" -ne 0 ]; then
			echo "Bail out! seed $SEED: cannot bring $1 into $2 mode: $(tail -n 1 "$TEST_TMP/timed.out")"
			exit 1
		fi
	fi
	wait_mx "$1" "$(expected_mx "$2" "$1")"
	settle "$(tenant_of "$1")"
}

# --- calibration: each kind once, uninterrupted, on the first domain.
CAL=$(printf '%s\n' "$DOMAINS" | head -n 1)
for kind in $KINDS; do
	bring "$CAL" "$(start_of "$kind")"
	timed "$kind" "$CAL"
	is "$T_RC" 0 "calibration: $kind of $CAL, uninterrupted, exits 0 ($T_MS ms)"
	[ "$T_RC" -eq 0 ] || diag "seed $SEED: $(tail -n 3 "$TEST_TMP/timed.out")"
	eval "DUR_$(echo "$kind" | tr - _)=$T_MS"
	wait_mx "$CAL" "$(expected_mx "$(mode_of "$CAL")" "$CAL")"
	settle "$(tenant_of "$CAL")"
done
bring "$CAL" none

# --- the plan, drawn before anything runs so that the seed alone fixes
# it: "KIND KILL-FRACTION DOMAIN-DRAW" lines in a random order.
{
	for kind in switch-to-mailflow switch-to-gateway; do
		n=0
		while [ $n -lt $SWITCHES_EACH_WAY ]; do echo "$kind"; n=$((n + 1)); done
	done
	for kind in setup-gateway setup-mailflow teardown-gateway teardown-mailflow; do
		n=0
		while [ $n -lt $PLAIN_EACH ]; do echo "$kind"; n=$((n + 1)); done
	done
} | while read -r kind; do
	rng_next; order=$rng
	rng_next; frac=$rng
	rng_next; draw=$rng
	echo "$order $kind $frac $draw"
done | sort -n -k1,1 -k2,2 | cut -d' ' -f2- >"$TEST_TMP/plan"

# check PROBLEMS DESCRIPTION: a test point that fails when PROBLEMS is not
# empty, saying what was wrong, with the seed and the trial.
check() {
	if [ -z "$1" ]; then
		ok 0 "$2"
	else
		ok 1 "$2"
		diag "seed $SEED, trial $trial ($what): $1"
		broken=1
	fi
}

# state_problems DOMAIN "MODE MODE" BEFORE: what is wrong in the state DB.
state_problems() {
	_p=
	_rows=$(db "SELECT count(*) FROM domains WHERE domain = '$1'")
	[ "$_rows" -le 1 ] || _p="$_p$_rows rows for the domain; "
	_m=$(mode_of "$1")
	case " $2 " in *" $_m "*) ;; *) _p="${_p}mode '$_m', expected one of: $2; " ;; esac
	_open=$(db "SELECT group_concat(coalesce(from_mode, 'none') || ' -> ' || to_mode || ' at ' || step, ', ')
	            FROM migrations WHERE domain = '$1' AND finished_at IS NULL")
	[ -z "$_open" ] || _p="${_p}open migration: $_open; "
	_locks=$(db "SELECT group_concat(domain || ' by ' || command || ' pid ' || pid, ', ') FROM locks")
	[ -z "$_locks" ] || _p="${_p}lock left: $_locks; "
	_after=$(for _d in $DOMAINS; do [ "$_d" = "$1" ] || echo "$_d=$(mode_of "$_d")"; done)
	[ "$_after" = "$3" ] || _p="${_p}other domains changed: $(echo "$_after" | tr '\n' ' ')(were $(echo "$3" | tr '\n' ' ')); "
	echo "${_p%; }"
}

trial=0
killed=0
failed_trials=
while read -r kind frac draw <&3; do
	trial=$((trial + 1))
	need=$(start_of "$kind")
	cands=$(for d in $DOMAINS; do [ "$(mode_of "$d")" = "$need" ] && echo "$d"; done)
	if [ -n "$cands" ]; then
		domain=$(printf '%s\n' "$cands" | sed -n "$((draw % $(printf '%s\n' "$cands" | wc -l) + 1))p")
	else
		domain=$(printf '%s\n' "$DOMAINS" | sed -n "$((draw % NDOMAINS + 1))p")
		bring "$domain" "$need"
	fi
	tenant=$(tenant_of "$domain")
	settle "$tenant"
	before=$(for d in $DOMAINS; do [ "$d" = "$domain" ] || echo "$d=$(mode_of "$d")"; done)
	dur=$(eval echo "\$DUR_$(echo "$kind" | tr - _)")
	kill_ms=$(( (frac - 1) * (dur + 1) / 2147483646 ))
	what="$kind of $domain killed at $kill_ms of $dur ms"
	broken=

	# shellcheck disable=SC2046 # the command line is split on purpose
	"$MAILMODE" $(command_of "$kind" "$domain") >"$TEST_TMP/cmd.out" 2>&1 &
	pid=$!
	sleep "$((kill_ms / 1000)).$(printf '%03d' $((kill_ms % 1000)))"
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null   # no "Killed" from the shell in the TAP stream
	crc=$?
	problems=
	if [ "$crc" -eq 137 ]; then
		killed=$((killed + 1))
	elif [ "$crc" -ne 0 ]; then
		problems="ended before the kill with exit $crc: $(tail -n 1 "$TEST_TMP/cmd.out"); "
		what="$kind of $domain, ended before its kill at $kill_ms of $dur ms"
	else
		what="$kind of $domain, ended before its kill at $kill_ms of $dur ms"
	fi

	# resume, a few times until it exits 0, each bounded (a hung one is
	# stopped after 30 s: exit 124).
	tries=0
	resumes=
	: >"$TEST_TMP/resume.all"
	while :; do
		tries=$((tries + 1))
		s=$(now_ms)
		timeout -k 5 30 "$MAILMODE" resume >"$TEST_TMP/resume.out" 2>&1
		rrc=$?
		resumes="$resumes, exit $rrc after $(( $(now_ms) - s )) ms"
		sed "s/^/try $tries: /" "$TEST_TMP/resume.out" >>"$TEST_TMP/resume.all"
		[ "$rrc" -eq 0 ] || [ $tries -ge 3 ] && break
	done
	[ "$rrc" -eq 0 ] ||
		problems="${problems}resume failed $tries times (${resumes#, }): $(grep 'error' "$TEST_TMP/resume.out" | tail -n 1)"
	check "${problems%; }" "trial $trial: $what: resume finishes"

	check "$(state_problems "$domain" "$(outcomes_of "$kind")" "$before")" \
	      "trial $trial: $what: state DB has one mode ($(mode_of "$domain")), nothing open"
	mode=$(mode_of "$domain")

	run "$MAILMODE" status "$domain" --profile "$tenant"
	check "$([ "$rc" -eq 0 ] || echo "status exited $rc: $(printf '%s\n' "$out" "$err" | grep -E 'DRIFT|UNFINISHED|partly|error' | head -n 3 | tr '\n' ' ')")" \
	      "trial $trial: $what: status exits 0"

	want=$(expected_mx "$mode" "$domain")
	wait_mx "$domain" "$want"
	got=$(mx_both "$domain")
	check "$([ "$got" = "$want | $want" ] || echo "primary | secondary serve '$got', $mode mode needs '$want'")" \
	      "trial $trial: $what: both DNS servers serve the $mode MX"

	check "$(tenant_problems "$tenant")" \
	      "trial $trial: $what: tenant $tenant holds exactly the recorded modes' objects"

	if [ -n "$broken" ]; then
		failed_trials="$failed_trials $trial"
		grep -E 'resuming|error|warning' "$TEST_TMP/resume.all" | head -n 8 |
			while IFS= read -r line; do diag "seed $SEED, trial $trial: resume said: $line"; done
		reset_domain "$domain"
		diag "seed $SEED, trial $trial: $domain reset to no mode for the next trials"
	fi
done 3<"$TEST_TMP/plan"

diag "seed $SEED: $trial trials in $(( $(date +%s) - started )) s, $killed killed mid-run, the rest ended before their kill"
[ -z "$failed_trials" ] || diag "seed $SEED: trials that failed:$failed_trials"
