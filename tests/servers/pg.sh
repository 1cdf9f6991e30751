# A PostgreSQL server of its own for a test (Debian's postgresql package):
# initdb into the test's scratch directory, a free loopback port, the unix
# socket in the scratch directory too, a password (scram) that the client
# reads from a passfile, stopped when the test exits.  Source after
# tests/lib.sh, then `pg_start`; it exports
#   PG_URL       postgresql://mailmode@127.0.0.1:PORT/state (no password)
#   PGPASSFILE   the passfile libpq reads the password from
#   PG_DIR, PG_PORT, PG_BIN
# pg_sql SQL: runs SQL in the state database, prints rows (psql -At).
# postgres refuses to run as root: as root (CI), it runs as nobody.

: "${PG_BIN:=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}"

_pg_as() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u nobody -- "$@"
	else
		"$@"
	fi
}

_pg_free_port() {
	"$PYTHON3" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pg_stop() {
	[ -n "$PG_DIR" ] && [ -f "$PG_DIR/data/postmaster.pid" ] &&
		_pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1
	return 0
}

pg_start() {
	[ -x "$PG_BIN/initdb" ] || skip_all "no PostgreSQL server (apt-get install postgresql)"
	PG_DIR=$TEST_TMP/pg
	mkdir -p "$PG_DIR"
	printf 'pg-test-secret\n' >"$PG_DIR/pw"
	[ "$(id -u)" = 0 ] && chown -R nobody "$PG_DIR"
	_pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -U mailmode --auth=scram-sha-256 \
		--pwfile="$PG_DIR/pw" -E UTF8 --no-sync >"$PG_DIR/initdb.log" 2>&1 ||
		{ cat "$PG_DIR/initdb.log" >&2; return 1; }
	at_exit pg_stop
	for _pg_try in 1 2 3; do
		PG_PORT=$(_pg_free_port)
		_pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 \
			-o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$PG_DIR -c fsync=off" \
			start >/dev/null 2>&1 && break
		PG_PORT=
	done
	[ -n "$PG_PORT" ] || { cat "$PG_DIR/server.log" >&2; return 1; }
	PGPASSFILE=$TEST_TMP/pgpass
	echo "127.0.0.1:$PG_PORT:*:mailmode:pg-test-secret" >"$PGPASSFILE"
	chmod 600 "$PGPASSFILE"
	PG_URL="postgresql://mailmode@127.0.0.1:$PG_PORT/state"
	export PG_URL PGPASSFILE PG_DIR PG_PORT PG_BIN
	PGPASSWORD= "$PG_BIN/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U mailmode -d postgres \
		-c 'CREATE DATABASE state' >/dev/null
}

# pg_sql SQL [DB]
pg_sql() {
	"$PG_BIN/psql" -X -At -q -h 127.0.0.1 -p "$PG_PORT" -U mailmode -d "${2:-state}" -c "$1"
}
