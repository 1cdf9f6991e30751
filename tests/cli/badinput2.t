#!/bin/sh
# Bad input that used to pass silently (issue 11, class 9): each is one
# error line naming the file:line or the thing at fault, a non-zero exit,
# and the state DB (and, against the emulator, the tenant) unchanged.
. "$top_srcdir/tests/cli/setup.sh"
plan 114

run mm setup a.test --mode example --profile lab
is "$rc" 0 "a.test set up (the state to keep intact)"
before=$(db_digest "$DB")

# check EXIT REGEX DESCRIPTION: the last command failed with EXIT, printed
# one error line matching REGEX, and left the state DB as it was.
check() {
	check_msg "$@"
	is "$(db_digest "$DB")" "$before" "$3: state DB unchanged"
}
# check_msg EXIT REGEX DESCRIPTION: the same but for the state DB (a
# failed operation is journaled).
check_msg() {
	is "$rc" "$1" "$3: exit $1"
	like "$err" "$2" "$3: message"
	is "$(printf '%s\n' "$err" | grep -c '^mailmode: error:')" 1 "$3: one error line"
}

# with_conf TEXT ARGS...: runs mailmode on the CLI config plus TEXT.
with_conf() {
	{ cat "$CONF"; printf '%s\n' "$1"; } >"$TEST_TMP/extra.conf"
	shift
	run "$MAILMODE" --config "$TEST_TMP/extra.conf" "$@"
}
X=$TEST_TMP/extra.conf
l=$(($(wc -l <"$CONF") + 1))   # the first line of TEXT

# --- unknown keys and sections, the nearest known one named
with_conf "example_wrold = w.json" setup b.test --mode example --profile lab
check 1 "$X:$l: unknown key 'example_wrold' in \[profile lab\] \(did you mean 'example_world'\?\)" \
	"misspelt plugin key in a profile"
with_conf "[quicktset]
timeout = 5m" setup b.test --mode example --profile lab
check 1 "$X:$l: unknown section \[quicktset\] \(did you mean \[quicktest\]\?\)" "misspelt section"
with_conf "[quicktest]
timout = 5m" setup b.test --mode example --profile lab
check 1 "$X:$((l + 1)): unknown key 'timout' in \[quicktest\] \(did you mean 'timeout'\?\)" "misspelt core key"
with_conf "[mode exampel]" status a.test
check 1 "$X:$l: \[mode exampel\]: no loaded plugin provides mode 'exampel' \(did you mean \[mode example\]\?\)" \
	"[mode NAME] of no plugin"

# --- a plugin that declares no keys (the example built against the frozen
# ABI 1.0 header): its sections are not checked, and mailmode says so once
V10=$TEST_TMP/v1.0
mkdir -p "$V10/include/mailmode" && mkdir -m 755 "$V10/plugins"
cp "$top_srcdir/tests/abi/plugin-v1.0.h" "$V10/include/mailmode/plugin.h"
run "${CC:-cc}" -fPIC -shared -fvisibility=hidden -I"$V10/include" \
	$(pkg-config --cflags libcjson) -o "$V10/plugins/example.so" \
	"$top_srcdir/plugins/example/example.c" $(pkg-config --libs libcjson)
is "$rc" 0 "the example plugin builds against the v1.0 header"
chmod 755 "$V10/plugins/example.so"
{ sed '/^twin_/d' "$CONF"; printf 'example_unchecked = 1\n'; } >"$X"
run "$MAILMODE" --config "$X" --plugin-dir "$V10/plugins" status a.test
is "$rc" 0 "status with a key no plugin declared: accepted"
is "$(printf '%s\n' "$err" | grep -c "warning: config $X: plugin example declares no configuration keys (plugin ABI before 1.2): only \[mailmode\] and \[quicktest\] are checked")" 1 \
	"one warning line says so"
{ cat "$X"; printf '[quicktset]\n'; } >"$X.2" && mv "$X.2" "$X"
run "$MAILMODE" --config "$X" --plugin-dir "$V10/plugins" status a.test
is "$rc" 0 "a section not of a core kind is not checked then"
{ cat "$X"; printf '[quicktest]\ntimout = 1\n'; } >"$X.2" && mv "$X.2" "$X"
run "$MAILMODE" --config "$X" --plugin-dir "$V10/plugins" status a.test
like "$err" "unknown key 'timout' in \[quicktest\]" "[quicktest] still is"

# --- a line of 200 bytes or more is read whole
long=$(printf '%0250d' 0 | tr 0 r)
with_conf "[profile long]
example_world = example.json
example_route = $long" setup b.test --mode example --profile long
is "$rc" 0 "a 250-byte value: setup works"
is "$(world_route "$TEST_TMP/example.json" b.test)" "$long" "and the whole value was used"
before=$(db_digest "$DB")

# --- the config file itself
run "$MAILMODE" --config "$TEST_TMP" status
check 1 "config $TEST_TMP: a directory, not a file" "--config names a directory"
run env -u MAILMODE_CONFIG -u XDG_CONFIG_HOME HOME="$TEST_TMP/home" "$MAILMODE" --state "$DB" \
	--plugin-dir "$PLUGINS" status
check 1 "no config file: looked for $TEST_TMP/home/\.config/mailmode/mailmode\.conf and /.*/mailmode/mailmode\.conf; write one \(see mailmode\.conf\(5\)\) or name it with --config FILE or MAILMODE_CONFIG" \
	"missing config: both places searched are named"

# --- the state path
run mm --state "$TEST_TMP/nodir/state.db" setup b.test --mode example --profile lab
check 1 "state DB $TEST_TMP/nodir/state.db: its directory $TEST_TMP/nodir does not exist" \
	"state in a missing directory"
run mm --state "$TEST_TMP/nodir/state.db" status
check 1 "its directory $TEST_TMP/nodir does not exist" "state in a missing directory (status)"
test ! -e "$TEST_TMP/nodir"
ok $? "the directory was not made"
mkdir "$TEST_TMP/adir"
run mm --state "$TEST_TMP/adir" status
check 1 "state DB $TEST_TMP/adir: is a directory, not a file" "state path is a directory"
# A read-only mount, in a mount namespace of our own (root only).
mkdir "$TEST_TMP/ro"
cp "$DB" "$TEST_TMP/ro/state.db"
if unshare -m sh -c "mount --bind '$TEST_TMP/ro' '$TEST_TMP/ro' && mount -o remount,bind,ro '$TEST_TMP/ro'" 2>/dev/null; then
	run unshare -m sh -c "mount --bind '$TEST_TMP/ro' '$TEST_TMP/ro' && mount -o remount,bind,ro '$TEST_TMP/ro' && exec \"\$0\" \"\$@\"" \
		"$MAILMODE" --config "$CONF" --state "$TEST_TMP/ro/state.db" teardown a.test
	check 1 "state DB $TEST_TMP/ro/state.db: its directory $TEST_TMP/ro is on a read-only file system" \
		"state on a read-only mount"
else
	for i in 1 2 3 4; do ok 0 "# SKIP no mount namespace (not root)"; done
fi

# --- numbers and durations that overflow
run mm switch a.test --to twin --verify-timeout 18446744073709552
check 2 "--verify-timeout '18446744073709552': not a duration of at most a year" \
	"--verify-timeout that overflows"
with_conf "[quicktest]
timeout = 18446744073709552" verify a.test --quick-test postmaster@a.test
check 1 "\[quicktest\] timeout '18446744073709552': not a duration" "[quicktest] timeout that overflows"
sed 's/^\[mailmode\]$/[mailmode]\nlock_timeout = 18446744073709552/' "$CONF" >"$X"
run "$MAILMODE" --config "$X" status
check 1 "\[mailmode\] lock_timeout '18446744073709552' is not a number of seconds" \
	"lock_timeout that overflows"
printf '[runbook]\nverify_timeout = 18446744073709552\n[domains]\na.test = twin\n' >"$TEST_TMP/rb.ini"
run mm runbook run "$TEST_TMP/rb.ini"
check 1 "rb.ini:2: verify_timeout = 18446744073709552: not a duration" "runbook verify_timeout that overflows"
is "$(world_route "$TEST_TMP/twin.json" a.test)" "-" "the runbook changed no world"

# --- domains and runbooks
run mm setup a.b.. --mode example --profile lab
check 2 "invalid domain 'a.b..': empty label" "a.b.. is not a.b."
printf '\357\273\277; a runbook saved with a byte order mark\n[domains]\nc.test = twin lab\n' \
	>"$TEST_TMP/bom.ini"
run mm runbook plan "$TEST_TMP/bom.ini"
is "$rc" 0 "a runbook starting with a UTF-8 BOM is read"
like "$out" "c\.test" "its domain is planned"

# --- against the Microsoft 365 emulator: mailflow and gateway keys
. "$top_srcdir/tests/mailflow/lib-mailflow.sh"
mf_start
mf_tenant
mf_config secret
DB=$MF_STATE
run mm setup contoso.test --mode mailflow --profile p1
is "$rc" 0 "mailflow setup with the test config"
before=$(db_digest "$DB")
objects=$(mf_counts)

# with_mf TEXT ARGS...: the mailflow config with TEXT appended.
with_mf() {
	{ cat "$MF_CONF"; printf '%s\n' "$1"; } >"$TEST_TMP/mf.conf"
	shift
	run "$MAILMODE" --config "$TEST_TMP/mf.conf" --state "$MF_STATE" --plugin-dir "$PLUGIN_DIR" "$@"
}
Y=$TEST_TMP/mf.conf
# gw PROFILE-LINE DNS-LINE: a gateway profile and its [dns lab].
gw() {
	printf '[profile gw]\ndns = lab\nservice = sophos\n%s\n[dns lab]\ntsig_key = k\n%s\n' "$1" "$2"
}
n=$(($(wc -l <"$MF_CONF") + 1))
with_mf "$(gw "fallback_tll = 60" "tsig_secret_file = k.secret")" status contoso.test
check 1 "$Y:$((n + 3)): unknown key 'fallback_tll' in \[profile gw\] \(did you mean 'fallback_ttl'\?\)" \
	"misspelt gateway key in a profile"
with_mf "$(gw "zone = contoso.test" "tsig_algoritm = hmac-sha512")" status contoso.test
check 1 "$Y:$((n + 6)): unknown key 'tsig_algoritm' in \[dns lab\] \(did you mean 'tsig_algorithm'\?\)" \
	"misspelt gateway key in [dns X]"
with_mf "$(gw "zone = contoso.test" "primray = 127.0.0.1")" status contoso.test
check 1 "$Y:$((n + 6)): unknown key 'primray' in \[dns lab\] \(did you mean 'primary'\?\)" "primray"
with_mf "$(gw "zone = contoso.test" "tsig_secret_file = k.secret")
[dsn other]" status contoso.test
check 1 "$Y:$((n + 7)): unknown section \[dsn other\] \(did you mean \[dns other\]\?\)" \
	"misspelt plugin section kind"
with_mf "[tenant other]
client_secret_flie = s" status contoso.test
check 1 "unknown key 'client_secret_flie' in \[tenant other\] \(did you mean 'client_secret_file'\?\)" \
	"misspelt mailflow key"
sed 's/^tenant = contoso$/tenant = contso/' "$MF_CONF" >"$Y"
run "$MAILMODE" --config "$Y" --state "$MF_STATE" --plugin-dir "$PLUGIN_DIR" status contoso.test
check 1 "$Y:[0-9]+: \[profile p1\] tenant = contso: there is no \[tenant contso\] section \(did you mean tenant = contoso\?\)" \
	"a profile naming a missing [tenant X]: status does not skip mailflow"
is "$(mf_counts)" "$objects" "the tenant is unchanged"

# --- Retry-After that would overflow: waited as a day, so the retry budget
# ends the call at once instead of resending without a pause
run mm teardown contoso.test
is "$rc" 0 "teardown"
before=$(db_digest "$DB")
mf_reset_log
emu_ctl POST /_emu/faults '{"kind":"429","count":20,"retry_after":9223372036854775807}' >/dev/null
run mm setup contoso.test --mode mailflow --profile p1
emu_ctl DELETE /_emu/faults >/dev/null
check_msg 1 "still throttled|retry budget" "Retry-After: 9223372036854775807"
is "$(mf_requests 'sum(1 for x in r if x["status"] == 429)')" 1 "no resend without the wait"
is "$(mf_counts)" "0 0 0" "nothing was created"

# --- secret files: a symlink to our 0600 file is fine, another user's file
# is refused naming its owner
mv "$TEST_TMP/client-secret" "$TEST_TMP/real-secret"
ln -s real-secret "$TEST_TMP/client-secret"
run mm setup contoso.test --mode mailflow --profile p1
is "$rc" 0 "a symlink to a 0600 secret file of ours is accepted"
is "$(mf_counts)" "1 1 1" "setup made the objects"
run mm teardown contoso.test
before=$(db_digest "$DB")
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
	chown nobody "$TEST_TMP/real-secret"
	run mm setup contoso.test --mode mailflow --profile p1
	check_msg 1 "secret file $TEST_TMP/client-secret is owned by nobody \(uid [0-9]+\), not by the user mailmode runs as" \
		"a secret file of another user"
	is "$(mf_counts)" "0 0 0" "nothing was created"
else
	for i in 1 2 3 4; do ok 0 "# SKIP not root: cannot give a file away"; done
fi
chown "$(id -u)" "$TEST_TMP/real-secret"
chmod 640 "$TEST_TMP/real-secret"
run mm setup contoso.test --mode mailflow --profile p1
check_msg 1 "secret file $TEST_TMP/client-secret is accessible by group or others \(mode 640\)" \
	"the symlink's target is what is checked"
is "$(mf_counts)" "0 0 0" "nothing was created"
