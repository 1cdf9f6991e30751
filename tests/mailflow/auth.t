#!/bin/sh
# mailflow: app-only authentication against the emulated identity
# platform: client secret, certificate (JWT client assertion: PS256 +
# x5t#S256 by default, RS256 + x5t with assertion_alg = RS256),
# and the refusals: wrong secret, unregistered key, key not matching the
# certificate, secret file readable by others, expired token mid-run.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/mailflow/lib-mailflow.sh"

plan 27

mf_start
mf_tenant

# --- client secret
mf_config secret
mf_reset_log
run mm setup contoso.test --mode mailflow --profile p1
is "$rc" 0 "setup with a client secret succeeds"
is "$(emu_ctl GET '/_emu/requests?kind=token' | "$PYTHON3" -c '
import json, sys
r = json.load(sys.stdin)[0]
print(r["status"], r["grant"], r["form"]["scope"], r["form"]["grant_type"])')" \
	"200 client_secret https://outlook.office365.com/.default client_credentials" \
	"client credentials grant with the Exchange scope"
run mm teardown contoso.test
is "$rc" 0 "teardown with a client secret succeeds"

# --- certificate: JWT client assertion
mf_config cert
mf_reset_log
run mm setup contoso.test --mode mailflow --profile p1
is "$rc" 0 "setup with a certificate succeeds"
assertion=$(emu_ctl GET '/_emu/requests?kind=token' | "$PYTHON3" -c '
import json, sys
r = json.load(sys.stdin)[0]
h, c = r["assertion_header"], r["assertion_claims"]
print(r["status"], r["grant"], h["alg"], "x5t#S256" in h, "x5t" in h, c["iss"] == c["sub"], c["aud"].endswith("/oauth2/v2.0/token"),
      0 < c["exp"] - c["nbf"] <= 600, bool(c["jti"]), "client_secret" in r["form"])')
is "$assertion" "200 client_assertion PS256 True False True True True True False" \
	"assertion: PS256 with x5t#S256 (the emulator checks the signature); iss = sub, aud = token URL, nbf/exp, jti; no secret sent"
is "$(mf_counts)" "1 1 1" "certificate auth created the objects"
run mm verify contoso.test
is "$rc" 0 "verify with a certificate succeeds"
run mm teardown contoso.test
is "$rc" 0 "teardown with a certificate succeeds"

# --- the older assertion form, still selectable
mf_config cert "assertion_alg = RS256"
mf_reset_log
run mm setup contoso.test --mode mailflow --profile p1 --dry-run
is "$rc $(emu_ctl GET '/_emu/requests?kind=token' | "$PYTHON3" -c '
import json, sys
r = json.load(sys.stdin)[0]
h = r["assertion_header"]
print(r["status"], h["alg"], "x5t" in h, "x5t#S256" in h)')" "0 200 RS256 True False" \
	"assertion_alg = RS256: an RS256 assertion with x5t, accepted"
mf_config cert "assertion_alg = ES256"
run mm setup contoso.test --mode mailflow --profile p1 --dry-run
like "$rc $err" "^1 .*\[tenant contoso\]: 'assertion_alg' must be PS256 or RS256, not 'ES256'" \
	"an unknown assertion_alg is refused, named"

# --- a key the tenant does not know
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=wrong -days 2 \
	-keyout "$TEST_TMP/wrong.key" -out "$TEST_TMP/wrong.pem" 2>/dev/null
chmod 600 "$TEST_TMP/wrong.key" "$TEST_TMP/wrong.pem"
mf_config "$TEST_TMP/wrong.key" "$TEST_TMP/wrong.pem"
run mm setup contoso.test --mode mailflow --profile p1
is "$rc" 1 "an unregistered certificate is refused (exit 1)"
like "$err" "token request for tenant contoso.onmicrosoft.com refused: AADSTS700027: Client assertion failed signature validation" \
	"the AADSTS code and first line are shown"
ok $(printf '%s' "$err" | grep -q 'Trace ID'; [ $? -ne 0 ]; echo $?) "the trace-id lines are left out"
is "$(mf_counts)" "0 0 0" "nothing was created"

# --- a key that is not the certificate's: refused before asking
mf_config "$TEST_TMP/wrong.key" "$TEST_TMP/app-cert.pem"
cp "$EMU_CLIENT_CERT" "$TEST_TMP/app-cert.pem"
chmod 600 "$TEST_TMP/app-cert.pem"
mf_reset_log
run mm setup contoso.test --mode mailflow --profile p1
is "$rc" 1 "a private key that does not match the certificate is refused"
like "$err" "certificate does not belong to the private key" "and named as such"
is "$(mf_stat token_requests)" 0 "without a token request"

# --- a wrong secret
mf_config secret
printf 'not-the-secret\n' >"$TEST_TMP/client-secret"
run mm setup contoso.test --mode mailflow --profile p1
like "$rc $(printf '%s' "$err" | tr '\n' ' ')" "^1 .*AADSTS7000215: Invalid client secret provided" \
	"a wrong secret: exit 1 with AADSTS7000215"

# --- a secret file others can read
mf_config secret
chmod 640 "$TEST_TMP/client-secret"
run mm setup contoso.test --mode mailflow --profile p1
like "$rc $(printf '%s' "$err" | tr '\n' ' ')" "^1 .*(group or others|0?640)" \
	"a group-readable secret file is refused"
chmod 600 "$TEST_TMP/client-secret"

# --- a token that expires is renewed once
mf_config secret
emu_ctl POST /_emu/config '{"token_lifetime_s": 1}' >/dev/null
mf_reset_log
run mm setup contoso.test --mode mailflow --profile p1
is "$rc" 0 "setup succeeds with tokens that live 1 s (renewed before expiry)"
is "$(mf_requests 'sum(1 for x in r if x["status"] == 401)')" 0 "no request was sent with an expired token"
emu_ctl POST /_emu/config '{"token_lifetime_s": 3599}' >/dev/null

# --- a token revoked mid-run: one 401, a new token, the call again
run mm teardown contoso.test
emu_ctl POST /_emu/faults '{"kind":"slow","count":1,"cmdlet":"Get-AcceptedDomain","delay_ms":1500}' >/dev/null
mf_reset_log
mm setup contoso.test --mode mailflow --profile p1 >"$TEST_TMP/bg.out" 2>&1 &
setup_pid=$!
waited=0
while [ "$(emu_ctl GET /_emu/stats | "$PYTHON3" -c 'import json,sys; print(json.load(sys.stdin)["requests_by_cmdlet"].get("Get-AcceptedDomain", 0))')" = 0 ] &&
	[ $waited -lt 100 ]; do
	sleep 0.1
	waited=$((waited + 1))
done
emu_ctl POST /_emu/tokens/expire '{}' >/dev/null
wait $setup_pid
is "$?" 0 "setup succeeds although its token was revoked mid-run"
is "$(mf_requests 'sum(1 for x in r if x["status"] == 401)')" 1 "the admin API refused the old token once"
is "$(mf_stat token_requests)" 2 "and a new token was fetched for the retry"

# --- an app without the Exchange role: 403, reason from x-ms-diagnostics
run mm teardown contoso.test
emu_ctl PATCH "/_emu/tenants/$MF_TENANT_ID" '{"forbidden": true}' >/dev/null
run mm setup contoso.test --mode mailflow --profile p1
is "$rc" 1 "a 403 from the admin API fails setup"
like "$(printf '%s' "$err" | tr '\n' ' ')" "does not have the required role or permission .*Exchange.ManageAsApp" \
	"with the reason the service gave and what the app needs"
emu_ctl PATCH "/_emu/tenants/$MF_TENANT_ID" '{"forbidden": false}' >/dev/null

# --- a profile missing a key is refused before any request
grep -v '^service_ips' "$MF_CONF" >"$MF_CONF.new" && mv "$MF_CONF.new" "$MF_CONF"
run mm setup contoso.test --mode mailflow --profile p1
like "$rc $err" "^1 .*\[service sophos\]: missing key 'service_ips'" "a missing service key is named"
