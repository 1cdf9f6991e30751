#include "loader.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/mm-loader-test.XXXXXX";

static void copy(const char *from, const char *name, mode_t mode)
{
	char cmd[2048], to[600];

	snprintf(to, sizeof(to), "%s/%s", dir, name);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
	if (system(cmd) != 0)
		printf("# cannot copy %s\n", from);
	chmod(to, mode);
}

static const char *reason_of(const struct mm_plugin_set *set, const char *name)
{
	char path[600];
	size_t i;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	for (i = 0; i < set->nrefused; i++)
		if (strcmp(set->refused[i].path, path) == 0)
			return set->refused[i].reason;
	return NULL;
}

int main(void)
{
#define STR(x) #x
#define XSTR(x) STR(x)
#define CURRENT XSTR(MAILMODE_ABI_MAJOR) "." XSTR(MAILMODE_ABI_MINOR)
	static const struct {
		const char *file;
		const char *reason;
	} bad[] = {
		{ "abi_major.so", "built for plugin ABI 2." XSTR(MAILMODE_ABI_MINOR)
		                  ", this mailmode implements " CURRENT ": rebuild it" },
		{ "abi_minor.so", ", this mailmode implements " CURRENT ": upgrade mailmode" },
		{ "small_struct.so", "descriptor is 16 bytes" },
		{ "no_descriptor.so", "no mailmode_plugin_v1 descriptor" },
		{ "missing_op.so", "no 'teardown' operation" },
		{ "bad_name.so", "mode name 'Bad Name' is invalid" },
		{ "zz-duplicate.so", "mode 'example' is already provided by" },
		{ "garbage.so", "cannot load" },
		{ "writable.so", "is writable by group or others (mode 664)" },
	};
	const char *builddir = getenv("top_builddir");
	struct tap t = { 0 };
	struct mm_output output = { .verbosity = -1 };
	struct mm_plugin_set set;
	struct mailmode_diag diag;
	char src[1024], err[512], cmd[700];
	size_t i;
	FILE *f;

	if (!builddir || !mkdtemp(dir))
		return 1;
	chmod(dir, 0755);
	tap_plan((int)(sizeof(bad) / sizeof(bad[0])) + 7);
	snprintf(src, sizeof(src), "%s/plugins.d/example.so", builddir);
	copy(src, "example.so", 0755);
	copy(src, "writable.so", 0664);
	/* Files load in name order, so the duplicate must sort after example.so. */
	for (i = 0; i < 7; i++) {
		snprintf(src, sizeof(src), "%s/tests/fixtures/.libs/%s", builddir,
		         strcmp(bad[i].file, "zz-duplicate.so") == 0 ? "duplicate.so" : bad[i].file);
		copy(src, bad[i].file, 0755);
	}
	snprintf(src, sizeof(src), "%s/garbage.so", dir);
	f = fopen(src, "w");
	fputs("not an ELF file\n", f);
	fclose(f);

	pthread_mutex_init(&output.lock, NULL);
	tap_is_int(&t, mm_plugins_load(&set, dir, NULL, &output, err, sizeof(err)), 0,
	           "directory loads despite bad files");
	tap_is_int(&t, (long)set.count, 1, "one plugin loaded");
	tap_ok(&t, mm_plugins_find(&set, "example") != NULL, "the example plugin is the one");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		tap_contains(&t, reason_of(&set, bad[i].file), bad[i].reason, bad[i].file);
	tap_is_int(&t, mm_plugin_start(mm_plugins_find(&set, "example"), &diag), MAILMODE_OK,
	           "the loaded plugin starts");
	tap_ok(&t, mm_plugins_refusal_for(&set, "bad_name") != NULL, "a refusal is found by file name");
	mm_plugins_unload(&set);

	chmod(dir, 0775);
	tap_is_int(&t, mm_plugins_load(&set, dir, NULL, &output, err, sizeof(err)), -1,
	           "group-writable directory refused");
	tap_contains(&t, err, "is writable by group or others (mode 775): refusing to load plugins",
	             "directory refusal explained");
	mm_plugins_unload(&set);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? tap_done(&t) : 1;
}
