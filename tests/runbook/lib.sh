# Shared by the runbook tests against the sandbox (real BIND 9 primary +
# secondary and the Microsoft 365 emulator).  Source it, then call
# start_sandbox with the driver's options (--tenants N --domains N ...);
# the sandbox is stopped at exit, also when the test dies.
. "$top_srcdir/tests/lib.sh"

SB="$TEST_TMP/sandbox"
DB="$SB/state.db"
export MAILMODE_DATADIR="$top_srcdir/tests/servers"
export MAILMODE_SANDBOX_OWNER_PID=$$
export MAILMODE_CONFIG="$SB/mailmode.conf"

start_sandbox() {
	if ! "$MAILMODE" --plugin-dir "$PLUGIN_DIR" sandbox start --dir "$SB" -- "$@" \
		>"$TEST_TMP/sandbox.out" 2>&1; then
		if grep -q "loopback" "$TEST_TMP/sandbox.out"; then
			skip_all "no loopback addresses 127.0.0.11-12 (needs root)"
		fi
		sed 's/^/# /' "$TEST_TMP/sandbox.out"
		echo "Bail out! the sandbox did not start"
		exit 1
	fi
	at_exit "'$MAILMODE' sandbox stop --dir '$SB' >/dev/null 2>&1"
	. "$SB/dns/dns.env"
}

db() { sqlite3 "$DB" "$1"; }
# emu PATH [CURL ARGS]: the sandbox emulator's control API.
emu() {
	_path=$1
	shift
	curl -s --cacert "$SB/emu/ca.pem" "$@" \
		"$("$PYTHON3" -c 'import json,sys; print(json.load(open(sys.argv[1]))["emulator_url"])' "$SB/sandbox.json")$_path"
}
# json EXPR: EXPR over the JSON document d in $out.
json() { printf '%s' "$out" | "$PYTHON3" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# write_runbook FILE MODE PARALLEL VERIFY_TIMEOUT BUDGET [CANARY]: every sandbox
# domain to MODE, each with its tenant's profile, in name order.
write_runbook() {
	"$PYTHON3" - "$SB/sandbox.json" "$@" <<'PY'
import json, sys
state, path, mode, parallel, timeout, budget = sys.argv[1:7]
canary = sys.argv[7] if len(sys.argv) > 7 else "0"
layout = json.load(open(state))["extra_tenants"]
lines = sorted((d, t) for t, ds in layout.items() for d in ds)
with open(path, "w") as f:
    f.write("[runbook]\nparallel = %s\ntenant_cap = 2\nverify_timeout = %s\n"
            "poll_interval = 300ms\nfailure_budget = %s\ncanary = %s\n\n[domains]\n"
            % (parallel, timeout, budget, canary))
    f.writelines("%s = %s %s\n" % (d, mode, t) for d, t in lines)
PY
}
