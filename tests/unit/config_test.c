#include "config.h"
#include "tap.h"

#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/mm-config-test.XXXXXX";

static const char *write_file(const char *name, const char *text)
{
	static char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

static struct mm_config *load(const char *name, const char *text, char *err)
{
	return mm_config_load(write_file(name, text), 1, err, 512);
}

static const struct mailmode_config_key dns_keys[] = {
	{ "profile", "dns", MAILMODE_KEY_STRING, NULL, "the [dns NAME] section" },
	{ "profile", "fallback_ttl", MAILMODE_KEY_INT, "3600", "TTL" },
	{ "dns", "primary", MAILMODE_KEY_STRING, NULL, "primary" },
	{ "dns", "tsig_algorithm", MAILMODE_KEY_STRING, NULL, "algorithm" },
	{ "mode", "timeout_ms", MAILMODE_KEY_INT, NULL, "timeout" },
	{ NULL, NULL, MAILMODE_KEY_STRING, NULL, NULL }
};

/* Loads text and checks it against dns_keys (plugin "gw") and, when
 * legacy, a plugin that declares nothing; returns the check's result. */
static int check(const char *text, int legacy, int *unchecked, char *err)
{
	struct mm_config_keyset sets[2] = { { "gw", dns_keys }, { "old", NULL } };
	struct mm_config *cfg = load("check.conf", text, err);
	int rc;

	if (!cfg)
		return -2;
	rc = mm_config_check(cfg, sets, legacy ? 2 : 1, unchecked, err, 512);
	mm_config_free(cfg);
	return rc;
}

static void check_tests(struct tap *t)
{
	char err[512], long_text[600], want[400];
	int unchecked;
	long ms;

	tap_is_int(t, check("[profile a]\ndns = x\nfallback_ttl = 5\n[dns x]\nprimary = p\n"
	                    "[mode gw]\ntimeout_ms = 5\n[quicktest]\ntimeout = 5m\n", 0,
	                    &unchecked, err), 0, "declared keys pass");
	tap_is_int(t, check("[profile a]\nfallback_tll = 5\n", 0, &unchecked, err), -1,
	           "misspelt key refused");
	tap_contains(t, err, "check.conf:2: unknown key 'fallback_tll' in [profile a] (did you mean 'fallback_ttl'?)",
	             "line and nearest key named");
	tap_is_int(t, check("[dns x]\ntsig_algoritm = a\n", 0, &unchecked, err), -1,
	           "misspelt key of a plugin section refused");
	tap_contains(t, err, "did you mean 'tsig_algorithm'?", "nearest key of that kind");
	check("[quicktset]\n", 0, &unchecked, err);
	tap_contains(t, err, ":1: unknown section [quicktset] (did you mean [quicktest]?)",
	             "section without keys named with its line");
	check("[dsn x]\nprimary = p\n", 0, &unchecked, err);
	tap_contains(t, err, "unknown section [dsn x] (did you mean [dns x]?)", "plugin kind suggested");
	check("[mode gx]\n", 0, &unchecked, err);
	tap_contains(t, err, "no loaded plugin provides mode 'gx' (did you mean [mode gw]?)",
	             "mode of no plugin");
	check("[profile a]\ndns = y\n[dns x]\nprimary = p\n", 0, &unchecked, err);
	tap_contains(t, err, ":2: [profile a] dns = y: there is no [dns y] section (did you mean dns = x?)",
	             "profile naming a missing section");
	tap_is_int(t, check("[profile a]\nanything = 1\n[whatever x]\n", 1, &unchecked, err), 0,
	           "a plugin declaring nothing: plugin sections unchecked");
	tap_is_int(t, unchecked, 1, "and the caller is told");
	tap_is_int(t, check("[quicktest]\ntimout = 1\n", 1, &unchecked, err), -1,
	           "core sections still checked then");

	memset(want, 'v', 300);
	want[300] = '\0';
	snprintf(long_text, sizeof(long_text), "[profile a]\ndns = %s\nfallback_ttl = 1\n", want);
	{
		struct mm_config *cfg = load("long.conf", long_text, err);

		tap_is_str(t, cfg ? mm_config_get(cfg, "profile a", "dns") : NULL, want,
		           "a 300-byte line is read whole");
		tap_is_str(t, cfg ? mm_config_get(cfg, "profile a", "fallback_ttl") : NULL, "1",
		           "and the next line is a line of its own");
		mm_config_free(cfg);
		cfg = load("bom.conf", "\xEF\xBB\xBF[profile a]\ndns = x\n", err);
		tap_is_str(t, cfg ? mm_config_get(cfg, "profile a", "dns") : err, "x",
		           "a UTF-8 BOM at the start is skipped");
		mm_config_free(cfg);
		cfg = load("junk.conf", "[profile a] junk\n", err);
		tap_contains(t, cfg ? "" : err, "junk.conf:1: text after a [section] header",
		             "text after a header refused");
		mm_config_free(cfg);
		cfg = load("indent.conf", "[profile a]\ndns = x\n  fallback_ttl = 2\n", err);
		tap_is_str(t, cfg ? mm_config_get(cfg, "profile a", "fallback_ttl") : err, "2",
		           "an indented line is a key of its own, not a continuation");
		mm_config_free(cfg);
	}
	tap_is_int(t, mm_config_duration("18446744073709552", &ms), -1,
	           "a duration that overflows is refused");
	tap_is_int(t, mm_config_duration("8785h", &ms), -1, "so is one over a year");
	tap_is_int(t, mm_config_duration("15m", &ms) == 0 && ms == 900000, 1, "15m is 900000 ms");
	tap_is_int(t, mm_config_duration(" 5s", &ms), -1, "leading space refused");
}

int main(void)
{
	struct tap t = { 0 };
	struct mm_config *cfg;
	char err[512], section[320], path[600];

	if (!mkdtemp(dir))
		return 1;
	tap_plan(43);

	cfg = load("good.conf",
	           "; comment\n[mailmode]\nstate = s.db\n\n[profile eu]\ndns = main\n"
	           "[profile us]\ndns = other ; inline comment\n", err);
	tap_ok(&t, cfg != NULL, "valid config loads");
	tap_is_str(&t, mm_config_get(cfg, "profile eu", "dns"), "main", "value read");
	tap_is_str(&t, mm_config_get(cfg, "profile us", "dns"), "other", "inline comment stripped");
	tap_is_str(&t, mm_config_get(cfg, "profile eu", "nope"), NULL, "missing key is NULL");
	tap_is_str(&t, mm_config_dir(cfg), dir, "relative paths start at the file's directory");
	tap_is_int(&t, mm_config_profile(cfg, NULL, section, sizeof(section), err, sizeof(err)), -1,
	           "two profiles and no default: refused");
	tap_contains(&t, err, "eu, us", "the profiles are listed");
	tap_is_int(&t, mm_config_profile(cfg, "us", section, sizeof(section), err, sizeof(err)), 0,
	           "named profile found");
	tap_is_str(&t, section, "profile us", "its section");
	tap_is_int(&t, mm_config_profile(cfg, "asia", section, sizeof(section), err, sizeof(err)), -1,
	           "unknown profile refused");
	tap_contains(&t, err, "unknown profile 'asia'", "named in the error");
	mm_config_free(cfg);

	cfg = load("one.conf", "[mailmode]\ndefault_profile = b\n[profile a]\nx=1\n[profile b]\nx=2\n", err);
	tap_is_int(&t, mm_config_profile(cfg, NULL, section, sizeof(section), err, sizeof(err)), 0,
	           "default_profile used");
	tap_is_str(&t, section, "profile b", "the default one");
	mm_config_free(cfg);

	cfg = load("syntax.conf", "[mailmode]\nstate = x\nthis line is wrong\n", err);
	tap_ok(&t, cfg == NULL, "syntax error refused");
	snprintf(path, sizeof(path), "%s/syntax.conf:3:", dir);
	tap_contains(&t, err, path, "file and line named");

	cfg = load("unknown.conf", "[mailmode]\nstat = x\n", err);
	tap_ok(&t, cfg == NULL, "unknown core key refused");
	tap_contains(&t, err, ":2: unknown key 'stat' in [mailmode]", "key and line named");

	cfg = load("dup.conf", "[profile a]\nx = 1\nx = 2\n", err);
	tap_ok(&t, cfg == NULL, "duplicate key refused");
	tap_contains(&t, err, ":3: key 'x' given twice in [profile a]", "duplicate named");

	snprintf(path, sizeof(path), "%s/missing.conf", dir);
	cfg = mm_config_load(path, 1, err, sizeof(err));
	tap_ok(&t, cfg == NULL && strstr(err, "No such file") != NULL, "missing required config refused");
	cfg = mm_config_load(path, 0, err, sizeof(err));
	tap_ok(&t, cfg != NULL && mm_config_get(cfg, "mailmode", "state") == NULL,
	       "missing optional config is empty");
	mm_config_free(cfg);

	cfg = load("nokey.conf", "x = 1\n[profile a]\n", err);
	tap_contains(&t, cfg ? "" : err, "outside any [section]", "key before any section refused");
	mm_config_free(cfg);

	check_tests(&t);
	return tap_done(&t);
}
