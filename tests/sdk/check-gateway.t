#!/bin/sh
# mailmode-plugin-check on the gateway plugin against real DNS servers
# (BIND primary + secondary, tests/servers/dns-harness): every check passes,
# and the zone is left as it was.
. "$top_srcdir/tests/gateway/gateway-lib.sh"
. "$top_srcdir/tests/sdk/check-lib.sh"

plan 9

D=example.test
check_plugin --config "$CONF" --profile lab --domain $D \
	--poll-interval 1 --verify-timeout 60 --timeout 30 "$PLUGIN_DIR/gateway.so"
is "$rc" 0 "the checker passes the gateway plugin"
is "$(check_count ok)" "$(check_planned)" "every check ok"
is "$(check_failed)" "" "no check fails"
is "$(printf '%s\n' "$out" | grep -c '# SKIP')" 0 "none skipped: the live checks ran"
like "$(check_block '^config keys')" "^ok .* [0-9]+ distinct key\\(s\\) read during the checks, [1-9][0-9]* declared" \
	"every configuration key it read is one its config_keys declares"
like "$out" "optional operations: mx_ttl \\(ABI 1\\.4\\)" "it has the ABI 1.4 mx_ttl operation"
like "$out" "optional operations: plan_actions \\(ABI 1\\.5\\)" "and plan_actions, checked against its plan"
like "$(check_block '^resources')" "resource: dns-zone example\\.test" "it names the zone as its resource"
is "$(mx_bind $D)" "$ORIG_EXAMPLE" "the zone serves the original MX set again"
