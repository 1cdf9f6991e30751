#!/bin/sh
# The main job: in the local sandbox (BIND 9 primary + secondary and the
# Microsoft 365 emulator, all on loopback), adopt contoso.test in gateway
# mode, switch it to mailflow with progress shown, show the status, and stop
# the sandbox again.
set -eu
MAILMODE=${MAILMODE:-./mailmode}
PLUGIN_DIR=${PLUGIN_DIR:-./plugins.d}
dir=$(mktemp -d "${TMPDIR:-/tmp}/mailmode-demo.XXXXXX")
export MAILMODE_CONFIG="$dir/mailmode.conf"

stop() {
	"$MAILMODE" sandbox stop --dir "$dir" >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap stop EXIT
mm() {
	echo
	echo "\$ mailmode $*"
	"$MAILMODE" "$@"
}

mm --plugin-dir "$PLUGIN_DIR" sandbox start --dir "$dir"
mm plugins
mm status contoso.test fabrikam.test || true
mm adopt contoso.test --mode gateway
mm switch contoso.test --to mailflow --dry-run
mm switch contoso.test --to mailflow --poll-interval 1s --verbose
mm status
mm log
mm sandbox stop --dir "$dir"
