#!/bin/sh
# Every bad input: one line naming the thing at fault, a non-zero exit, and
# the state DB unchanged.
. "$top_srcdir/tests/cli/setup.sh"
plan 63
cat >>"$CONF" <<CONF

[profile bare]
twin_route = bare-route
CONF
run mm setup a.test --mode example --profile lab
is "$rc" 0 "a.test set up (the state to keep intact)"
before=$(db_digest "$DB")

# check EXIT REGEX DESCRIPTION: the last command failed with EXIT, printed
# one error line matching REGEX, and left the state DB as it was.
check() {
	is "$rc" "$1" "$3: exit $1"
	like "$err" "$2" "$3: message"
	is "$(printf '%s\n' "$err" | grep -c '^mailmode: error:')" 1 "$3: one error line"
	is "$(db_digest "$DB")" "$before" "$3: state DB unchanged"
}

run "$MAILMODE" --config "$TEST_TMP/nope.conf" status
check 1 "config $TEST_TMP/nope.conf: No such file or directory" "missing config"

printf '[mailmode]\nstate = %s\nthis is not ini\n' "$DB" >"$TEST_TMP/broken.conf"
run "$MAILMODE" --config "$TEST_TMP/broken.conf" setup b.test --mode example
check 1 "$TEST_TMP/broken.conf:3: syntax error" "malformed config"

printf '[mailmode]\nstate = %s\nplugins = x\n' "$DB" >"$TEST_TMP/unknown.conf"
run "$MAILMODE" --config "$TEST_TMP/unknown.conf" status
check 1 "$TEST_TMP/unknown.conf:3: unknown key 'plugins' in \[mailmode\]" "unknown config key"

run mm --plugin-dir "$TEST_TMP/none" setup b.test --mode example --profile lab
check 1 "plugin directory $TEST_TMP/none: No such file or directory" "missing plugin directory"

run mm setup b.test --mode nope --profile lab
check 1 "unknown mode 'nope' \(plugins in .* provide: example, twin\)" "unknown mode"

run mm setup b_c.test --mode example --profile lab
check 2 "invalid domain 'b_c.test': character '_' is not allowed" "invalid domain"

run mm setup "bücher.test" --mode example --profile lab
check 2 "non-ASCII characters; give the IDNA A-label form" "non-ASCII domain"

run mm setup b.test --mode example --profile asia
check 1 "unknown profile 'asia' \(config .* defines: lab, bare\)" "unknown profile"

run mm setup b.test --mode example --profile bare
check 1 "\[profile bare\]: missing key example_world" "profile without the mode's keys"

run mm setup b.test --profile lab
check 2 "'setup' needs --mode" "missing --mode"

run mm setup b.test --mode example --frobnicate
check 2 "unknown option '--frobnicate'" "unknown option"

# Another process holds the state DB's write lock.
"$PYTHON3" -c '
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("held", flush=True)
time.sleep(30)' "$DB" >"$TEST_TMP/holder.out" &
holder=$!
at_exit "kill $holder 2>/dev/null"
for i in 1 2 3 4 5 6 7 8 9 10; do grep -q held "$TEST_TMP/holder.out" && break; sleep 0.2; done
run mm --lock-timeout 1s setup b.test --mode example --profile lab
check 1 "state DB .*state.db is locked by pid $holder \(.*python.*\); gave up waiting" "state DB locked"
kill $holder; wait $holder 2>/dev/null

# Another live mailmode holds the domain.
sleep 30 &
owner=$!
at_exit "kill $owner 2>/dev/null"
db "INSERT INTO locks VALUES('a.test', 'alice@$(hostname)', $owner, '$(hostname)', 'teardown', '2026-01-01T00:00:00Z', 99999999999999)"
before=$(db_digest "$DB")
run mm --lock-timeout 1s teardown a.test
check 1 "a.test is locked by alice@.* \(pid $owner on .*, 'teardown' since 2026-01-01T00:00:00Z\); gave up after 1 s" "domain locked"
kill $owner; wait $owner 2>/dev/null
db "DELETE FROM locks"
before=$(db_digest "$DB")

echo "definitely not an SQLite database, just text long enough for a header" >"$TEST_TMP/garbage.db"
cp "$TEST_TMP/garbage.db" "$TEST_TMP/garbage.orig"
run mm --state "$TEST_TMP/garbage.db" status
check 1 "state DB $TEST_TMP/garbage.db: .*file is not a database" "unreadable state DB"
cmp -s "$TEST_TMP/garbage.db" "$TEST_TMP/garbage.orig"
ok $? "the unreadable file was not touched"

cp "$DB" "$TEST_TMP/newer.db"
sqlite3 "$TEST_TMP/newer.db" "PRAGMA user_version = 9"
newer=$(db_digest "$TEST_TMP/newer.db")
run mm --state "$TEST_TMP/newer.db" setup b.test --mode example --profile lab
check 1 "has schema version 9, newer than this mailmode's \(6\): use a newer mailmode" "newer schema"
is "$(db_digest "$TEST_TMP/newer.db")" "$newer" "newer DB unchanged"
