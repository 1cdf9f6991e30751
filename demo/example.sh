#!/bin/sh
# The main job until the sandbox exists: mailmode with the example mode,
# whose "world" is a JSON file, end to end.
set -eu
MAILMODE=${MAILMODE:-./mailmode}
PLUGIN_DIR=${PLUGIN_DIR:-./plugins.d}
dir=$(mktemp -d "${TMPDIR:-/tmp}/mailmode-demo.XXXXXX")
trap 'rm -rf "$dir"' EXIT
cat >"$dir/mailmode.conf" <<CONF
[mailmode]
state = state.db
plugin_dir = $(cd "$PLUGIN_DIR" && pwd)

[profile demo]
example_world = world.json
example_route = scanner.example
CONF
echo '{"domains": {"contoso.test": {"route": "direct"}}}' >"$dir/world.json"
mm() { echo "\$ mailmode $*"; "$MAILMODE" --config "$dir/mailmode.conf" "$@"; }

mm plugins
mm setup contoso.test --mode example --dry-run
mm setup contoso.test --mode example
mm verify contoso.test
mm status
mm teardown contoso.test
echo "world after teardown: $(cat "$dir/world.json" | tr -d ' \n\t')"
mm log
