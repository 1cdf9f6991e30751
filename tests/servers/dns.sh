# Shell helpers around tests/servers/dns-harness.  Source it after lib.sh:
#
#   . "$top_srcdir/tests/servers/dns.sh"
#   dns_start "$TEST_TMP/dns" || bail out
#   at_exit "dns_stop $TEST_TMP/dns"
#
# dns_start sources DIR/dns.env (DNS_PORT, DNS_PRIMARY, DNS_SECONDARY,
# DNS_KNOT, TSIG_KEY, TSIG_SECRET_FILE, TSIG_SECRET, OTHER_KEY, *_PID) and
# ties the servers to this shell: if it dies, the harness stops them.

DNS_HARNESS="${top_srcdir:?}/tests/servers/dns-harness"

# Returns the harness's status: 77 when this machine cannot run them.
dns_start() {
	"$DNS_HARNESS" start "$1" --owner-pid $$ || return $?
	. "$1/dns.env"
}

dns_stop() {
	"$DNS_HARNESS" stop "$1"
}

# dns_skip_unless_usable: skips the whole test when the DNS servers or the
# tools the tests use are missing.
dns_skip_unless_usable() {
	for tool in named knotd kdig knsupdate tsig-keygen ip; do
		command -v "$tool" >/dev/null 2>&1 ||
			PATH="$PATH:/usr/sbin:/sbin" command -v "$tool" >/dev/null 2>&1 ||
			skip_all "$tool is not installed"
	done
	PATH="$PATH:/usr/sbin:/sbin"
	export PATH
}

# dns_mx SERVER NAME: the MX set SERVER serves for NAME, as sorted
# "TTL PREF HOST" lines, asked without recursion.  Prints
# "not authoritative (RCODE)" unless the answer is authoritative NOERROR.
dns_mx() {
	_dns_out=$(kdig @"$1" -p "$DNS_PORT" +norec +time=2 +retry=0 "$2" MX 2>&1)
	_dns_hdr=$(printf '%s\n' "$_dns_out" | grep -- '->>HEADER<<-')
	_dns_flags=$(printf '%s\n' "$_dns_out" | grep '^;; Flags:')
	case "$_dns_hdr" in
	*"status: NOERROR"*) ;;
	*) echo "not authoritative (${_dns_hdr:-no answer})"; return 1 ;;
	esac
	case "$_dns_flags" in
	*" aa"*) ;;
	*) echo "not authoritative (no AA)"; return 1 ;;
	esac
	kdig @"$1" -p "$DNS_PORT" +norec +time=2 +retry=0 +noall +answer "$2" MX |
		awk '$4 == "MX" { print $2, $5, tolower($6) }' | sort -n -k2 -k3
}

# dns_serial SERVER ZONE: the SOA serial SERVER serves (empty if none).
dns_serial() {
	kdig @"$1" -p "$DNS_PORT" +norec +time=2 +retry=0 +short "$2" SOA |
		awk '{ print $3 }'
}

# dns_rrsig SERVER NAME TYPE: the RRSIG lines covering TYPE at NAME.
dns_rrsig() {
	kdig @"$1" -p "$DNS_PORT" +norec +dnssec +time=2 +retry=0 +noall +answer "$2" "$3" |
		awk -v t="$3" '$4 == "RRSIG" && $5 == t'
}

# dns_update [-k KEY -s SECRET] SERVER ZONE LINE...: one signed UPDATE sent
# with knsupdate (the "other client" of the race tests).  Each LINE is a
# knsupdate command such as "update add x.test. 300 MX 10 a.test.".
dns_update() {
	_dns_key=$TSIG_KEY
	_dns_secret=$TSIG_SECRET
	while [ $# -gt 0 ]; do
		case "$1" in
		-k) _dns_key=$2; shift 2 ;;
		-s) _dns_secret=$2; shift 2 ;;
		*) break ;;
		esac
	done
	_dns_server=$1
	_dns_zone=$2
	shift 2
	{
		echo "server $_dns_server $DNS_PORT"
		echo "zone $_dns_zone"
		for _dns_line in "$@"; do echo "$_dns_line"; done
		echo "send"
	} | knsupdate -t 5 -y "hmac-sha256:$_dns_key:$_dns_secret"
}

# dns_wait_serial SERVER ZONE SERIAL [SECONDS]: waits until SERVER serves
# ZONE with SERIAL.
dns_wait_serial() {
	_dns_tries=$(( ${4:-10} * 10 ))
	while [ "$_dns_tries" -gt 0 ]; do
		[ "$(dns_serial "$1" "$2")" = "$3" ] && return 0
		sleep 0.1
		_dns_tries=$((_dns_tries - 1))
	done
	return 1
}
