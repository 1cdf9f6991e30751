# Helpers to run the Microsoft 365 emulator (tests/servers/m365emu.py) from a
# shell test.  Source it:   . "$top_srcdir/tests/servers/emu.sh"
#
#   emu_start DIR [m365emu.py args...]
#       start the emulator in the background (it exits by itself when this
#       shell is gone), wait up to 10 s for DIR/emu.json, then export
#       EMU_DIR EMU_PORT EMU_BASE EMU_LOGIN EMU_CA EMU_CLIENT_CERT EMU_CLIENT_KEY.
#       Returns non-zero (and prints the log) if it did not come up.
#   emu_stop DIR
#       SIGTERM, wait for the exit (SIGKILL after 5 s).
#   emu_ctl METHOD PATH [JSON]
#       call the control API (PATH like /_emu/tenants) of the emulator last
#       started; prints the body; non-zero exit status on HTTP >= 400.
#
# Control API (https, same port, no auth, JSON):
#   POST   /_emu/tenants            create (or replace) a tenant:
#          {"tenant_id":GUID,"initial_domain":"x.onmicrosoft.com","client_id":GUID,
#           "client_secret":S,"certificate_pem":PEM | "certificate_file":PATH,
#           "accepted_domains":[{"DomainName":D,"DomainType":"Authoritative","Default":true}],
#           "dehydrated":false,"inbound_connectors_allowed":true,"forbidden":false,
#           "outbound_connectors":[New-OutboundConnector params...],
#           "inbound_connectors":[New-InboundConnector params...],
#           "rules":[New-TransportRule params (+ "State","CreatedBy")...]}
#   GET    /_emu/tenants            list tenants (summaries)
#   GET    /_emu/tenants/T          full state (T = GUID or initial domain);
#                                   objects carry _pending/_visible/_visible_at
#   PATCH  /_emu/tenants/T          flags: dehydrated, inbound_connectors_allowed,
#                                   forbidden, client_secret, certificate_pem, ...
#   DELETE /_emu/tenants/T
#   GET|POST /_emu/config           {"consistency_delay_s","page_size","latency_ms",
#                                    "token_lifetime_s","bare_string_singletons",
#                                    "invalid_client_status"}
#   GET|POST|DELETE /_emu/faults    {"tenant","cmdlet","writes","skip","kind","count",
#                                    "retry_after","delay_ms","etype","text"}: the next
#                                    `count` InvokeCommand calls matching tenant, cmdlet
#                                    and (writes: true) non-Get- cmdlets, after letting
#                                    `skip` of them pass, get kind: 429|503|504 (Retry-
#                                    After), drop|reset (closed before the cmdlet runs),
#                                    slow, throttle_text, error (400, CmdletError body
#                                    of etype/text), acted_reset (the cmdlet runs, then
#                                    the connection closes), acted_hang (runs, hangs
#                                    delay_ms, closes)
#   GET|DELETE /_emu/requests       recorded token + InvokeCommand requests
#                                   (?tenant=&cmdlet=&kind=token|invoke filters)
#   GET|DELETE /_emu/stats          requests_by_cmdlet, token_requests,
#                                   max_concurrent_by_tenant, faults_injected
#   POST   /_emu/tokens/expire      {"tenant":optional}: expire issued tokens
#   GET|POST /_emu/clock            {"advance_s":N}: move the emulator's clock
#                                   (consistency delay, token expiry) forward
#   GET    /_emu/health

: "${PYTHON3:=/usr/bin/python3}"
if [ -z "${EMU_PY:-}" ]; then
	if [ -n "${top_srcdir:-}" ]; then
		EMU_PY=$top_srcdir/tests/servers/m365emu.py
	else
		EMU_PY=$(dirname "$0")/../servers/m365emu.py
	fi
fi

# _emu_json_field FILE KEY: a scalar from emu.json (written by m365emu.py,
# one key per line, so sed is enough).
_emu_json_field() {
	sed -n 's/^ *"'"$2"'": *"\{0,1\}\([^",]*\)"\{0,1\},\{0,1\} *$/\1/p' "$1"
}

# _emu_alive PID: the process exists and is not a zombie.
_emu_alive() {
	kill -0 "$1" 2>/dev/null || return 1
	if [ -r "/proc/$1/stat" ]; then
		case $(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) in
		Z* | X*) return 1 ;;
		esac
	fi
	return 0
}

emu_start() {
	_emu_dir=$1
	shift
	mkdir -p "$_emu_dir" || return 1
	_emu_dir=$(cd "$_emu_dir" && pwd)
	rm -f "$_emu_dir/emu.json"
	"$PYTHON3" "$EMU_PY" --dir "$_emu_dir" --owner-pid $$ "$@" \
		>"$_emu_dir/emu.log" 2>&1 &
	echo $! >"$_emu_dir/emu.pid"
	_emu_i=0
	while [ ! -s "$_emu_dir/emu.json" ]; do
		if ! _emu_alive "$(cat "$_emu_dir/emu.pid")"; then
			echo "emu_start: m365emu.py exited:" >&2
			sed 's/^/# /' "$_emu_dir/emu.log" >&2
			return 1
		fi
		_emu_i=$((_emu_i + 1))
		if [ $_emu_i -gt 100 ]; then
			kill -KILL "$(cat "$_emu_dir/emu.pid")" 2>/dev/null
			echo "emu_start: no emu.json after 10 s" >&2
			sed 's/^/# /' "$_emu_dir/emu.log" >&2
			return 1
		fi
		sleep 0.1
	done
	EMU_DIR=$_emu_dir
	EMU_PORT=$(_emu_json_field "$_emu_dir/emu.json" port)
	EMU_BASE=$(_emu_json_field "$_emu_dir/emu.json" base_url)
	EMU_LOGIN=$(_emu_json_field "$_emu_dir/emu.json" login_url)
	EMU_CA=$(_emu_json_field "$_emu_dir/emu.json" ca_file)
	EMU_CLIENT_CERT=$(_emu_json_field "$_emu_dir/emu.json" client_cert)
	EMU_CLIENT_KEY=$(_emu_json_field "$_emu_dir/emu.json" client_key)
	export EMU_DIR EMU_PORT EMU_BASE EMU_LOGIN EMU_CA EMU_CLIENT_CERT EMU_CLIENT_KEY
}

emu_stop() {
	[ -f "$1/emu.pid" ] || return 0
	_emu_pid=$(cat "$1/emu.pid")
	if kill -TERM "$_emu_pid" 2>/dev/null; then
		_emu_i=0
		while _emu_alive "$_emu_pid"; do
			_emu_i=$((_emu_i + 1))
			if [ $_emu_i -gt 50 ]; then
				kill -KILL "$_emu_pid" 2>/dev/null
				break
			fi
			sleep 0.1
		done
	fi
	wait "$_emu_pid" 2>/dev/null
	rm -f "$1/emu.pid"
	return 0
}

emu_ctl() {
	if [ $# -ge 3 ]; then
		curl -sS --fail-with-body --cacert "$EMU_CA" -X "$1" \
			-H 'Content-Type: application/json' --data-binary "$3" "$EMU_BASE$2"
	else
		curl -sS --fail-with-body --cacert "$EMU_CA" -X "$1" "$EMU_BASE$2"
	fi
}
