#include "config.h"
#include "tap.h"

#include <stdio.h>
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

int main(void)
{
	struct tap t = { 0 };
	struct mm_config *cfg;
	char err[512], section[320], path[600];

	if (!mkdtemp(dir))
		return 1;
	tap_plan(22);

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
	return tap_done(&t);
}
