#!/bin/sh
# mailmode-plugin-check on the mailflow plugin against the Microsoft 365
# emulator (tests/servers/m365emu.py): every check passes, and the tenant
# is left without any object of the mode.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/mailflow/lib-mailflow.sh"
. "$top_srcdir/tests/sdk/check-lib.sh"

[ -f "$PLUGIN_DIR/mailflow.so" ] || skip_all "mailflow.so is not built ($PLUGIN_DIR)"

plan 9

mf_start
mf_tenant
mf_config secret

check_plugin --config "$MF_CONF" --profile p1 --domain contoso.test \
	--poll-interval 1 --verify-timeout 60 --timeout 30 "$PLUGIN_DIR/mailflow.so"
# Known conflict: the mailflow plugin refuses a second teardown within 30
# minutes of setup unless forced (it cannot tell a rule already removed from
# one Exchange does not list yet), while plugin.h requires teardown to
# succeed when things are already gone.  Until the plugin or the contract
# changes, exactly that failure is a TODO; any other fails the test.
is "$rc" 0 "the checker passes the mailflow plugin"
is "$(check_count ok)" "$(check_planned)" "every check ok"
is "$(check_failed)" "" "no check fails"
like "$(check_block '^teardown again')" "refused retryably .*forced, it succeeded" "a second teardown right after setup is refused retryably, then forced"
is "$(printf '%s\n' "$out" | grep -c '# SKIP')" 0 "none skipped: the live checks ran"
like "$out" "optional operations: plan_actions \\(ABI 1\\.5\\)" \
	"it has plan_actions, checked against its plan"
like "$(check_block '^config keys')" "^ok .* [0-9]+ distinct key\\(s\\) read during the checks, [1-9][0-9]* declared" \
	"every configuration key it read is one its config_keys declares"
like "$(check_block '^resources')" "resource: tenant contoso\\.onmicrosoft\\.com" "it names the tenant as its resource"
is "$(mf_counts)" "0 0 0" "the tenant has no connector or rule left"
