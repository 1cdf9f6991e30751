# Shared by the tests of gateway mode's tenant side (gateway-switch.t,
# gateway-crash.t): the sandbox, and its profile with gateway_tenant and the
# lock-down; mailflow's connector left to its default type (Partner).
. "$top_srcdir/tests/mailpath/lib.sh"
D=fabrikam.test
GW="mailmode gateway for $D from sandbox-service"
FAST="--poll-interval 200ms --verify-timeout 30s"
FRONT="0 fabrikam-test.mail.protection.outlook.test."
sed -e '/^connector_type *=/d' -e '/^tenant = sandbox-tenant$/a\
gateway_tenant = sandbox-tenant\
lockdown = yes' "$MAILMODE_CONFIG" >"$SB/gwtenant.conf"
export MAILMODE_CONFIG="$SB/gwtenant.conf"
