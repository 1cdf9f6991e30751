#!/bin/sh
# setup --no-wait with lockdown = yes (doc/gateway-tenant.md, "--no-wait"):
# the setup waits for nothing, so the lock-down, which must wait until caches
# of the replaced MX expired, is not applied.  The admin is told so in the
# output and in the journal (finish_new: skipped, naming the command that
# applies it), the gateway connector stays unrestricted (a sender with the
# old MX cached is not refused), and `mailmode setup D` run afterwards
# applies it.
. "$top_srcdir/tests/mailpath/gwtenant-lib.sh"
plan 6

locked() {
	emu_get "/_emu/tenants/$TENANT" | "$PYTHON3" -c 'import json, sys
c = [c for c in json.load(sys.stdin)["inbound_connectors"] if c["Name"] == sys.argv[1]]
print(c[0]["RestrictDomainsToCertificate"] if c else "none")' "$GW"
}

run mm setup $D --mode gateway --no-wait
is "$rc" 0 "setup --no-wait in gateway mode"
like "$err" "warning: .*$D: gateway mode's last stage .*lock-down.* was not run: --no-wait waits for nothing; run 'mailmode setup $D' once they have expired to apply it" \
	"the output says the lock-down was not applied and how to apply it"
is "$(db "SELECT step || ':' || phase FROM journal WHERE migration_id=(SELECT max(id) FROM migrations) AND phase='skipped'")" \
	"finish_new:skipped" "the journal says so too"
is "$(db "SELECT mode FROM domains WHERE domain='$D'") $(locked)" "gateway False" \
	"in gateway mode, the gateway connector not locked down"

send_one cached bob@$D --from alice@internet.test --via fabrikam-test.mail.protection.outlook.test --retry-for 0
is "$(sent_field cached result)" "accepted" "a sender with the old MX cached is not refused"

wait_mx $D "$GATEWAY_SET"
run mm -q setup $D --mode gateway $FAST
is "$rc $(locked)" "0 True" "setup run afterwards applies the lock-down"
