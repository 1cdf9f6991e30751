#include "cli.h"

#include "num.h"
#include "quicktest.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_LOCK_TIMEOUT_MS 10000L

enum opt_flag {
	O_MODE = 1 << 0,
	O_PROFILE = 1 << 1,
	O_DRY_RUN = 1 << 2,
	O_FORCE = 1 << 3,
	O_ACCEPT = 1 << 4,
	O_TO = 1 << 5,
	O_TIMING = 1 << 6,
	O_DIR = 1 << 7,
	O_PARALLEL = 1 << 8,
	O_QUICK_TEST = 1 << 9,
	O_NO_WAIT = 1 << 10,
	O_KEYS = 1 << 11
};

struct command_spec {
	const char *name;
	unsigned opts;
	int min_args, max_args;
	const char *synopsis;
};

static const struct command_spec commands[] = {
	{ "plugins", O_KEYS, 0, 0, "plugins [--keys MODE]" },
	{ "status", O_PROFILE, 0, MM_MAX_ARGS, "status [DOMAIN...] [--profile P]" },
	{ "setup", O_MODE | O_PROFILE | O_DRY_RUN | O_ACCEPT | O_FORCE | O_TIMING | O_NO_WAIT, 1, 1,
	  "setup DOMAIN --mode M [--profile P] [--dry-run] [--accept-conflicts] [--force]\n"
	  "                  [--no-wait | --verify-timeout DUR] [--poll-interval DUR]" },
	{ "verify", O_QUICK_TEST, 1, 1,
	  "verify DOMAIN [--quick-test ADDRESS [--quick-test-timeout DUR]]" },
	{ "teardown", O_DRY_RUN | O_FORCE | O_TIMING | O_NO_WAIT, 1, 1,
	  "teardown DOMAIN [--dry-run] [--force] [--no-wait | --verify-timeout DUR]\n"
	  "                  [--poll-interval DUR]" },
	{ "adopt", O_MODE | O_PROFILE, 1, 1, "adopt DOMAIN --mode M [--profile P]" },
	{ "switch", O_TO | O_PROFILE | O_DRY_RUN | O_ACCEPT | O_TIMING | O_QUICK_TEST, 1, 1,
	  "switch DOMAIN --to MODE [--profile P] [--verify-timeout DUR] [--poll-interval DUR]\n"
	  "                  [--accept-conflict NAME]... [--dry-run]\n"
	  "                  [--quick-test ADDRESS [--quick-test-timeout DUR]]" },
	{ "resume", O_FORCE, 0, 1, "resume [DOMAIN] [--force]" },
	{ "abort", 0, 1, 1, "abort DOMAIN" },
	{ "log", 0, 0, 1, "log [DOMAIN]" },
	{ "sandbox", O_DIR, 1, MM_MAX_ARGS, "sandbox start|stop|status [--dir DIR] [-- DRIVER-OPTIONS]" },
	{ "runbook", O_PARALLEL, 2, 2, "runbook plan|run FILE [--parallel N]" },
	{ NULL, 0, 0, 0, NULL }
};

void mm_cli_usage(FILE *f)
{
	size_t i;

	fputs("usage: mailmode [--config FILE] [--state FILE] [--plugin-dir DIR] [--json]\n"
	      "                [--lock-timeout DUR] [-v|-q] COMMAND [ARGS]\n\ncommands:\n", f);
	for (i = 0; commands[i].name; i++)
		fprintf(f, "  mailmode %s\n", commands[i].synopsis);
	fputs("\nexit codes: 0 ok, 1 error (also: unfinished, outcome unknown), 2 usage,\n"
	      "            3 not verified or rolled back, 4 refused (one-mode invariant,\n"
	      "            conflict, drift; status: drift or an unfinished migration)\n"
	      "See mailmode(1).\n", f);
}

static const struct command_spec *find_command(const char *name)
{
	size_t i;

	for (i = 0; commands[i].name; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* Matches "--name VALUE" and "--name=VALUE"; advances *i past the value. */
static int take_value(const char *name, int argc, char **argv, int *i, const char **value,
                      char *err)
{
	size_t len = strlen(name);
	const char *arg = argv[*i];

	if (strncmp(arg, name, len) != 0)
		return 0;
	if (arg[len] == '=') {
		*value = arg + len + 1;
		return 1;
	}
	if (arg[len] != '\0')
		return 0;
	if (*i + 1 >= argc) {
		snprintf(err, MM_ERR_MAX, "option %s needs a value", name);
		return -1;
	}
	*value = argv[++*i];
	return 1;
}

struct value_opt {
	const char *name;
	unsigned flag;           /* 0: global */
	size_t offset;           /* into struct mm_args */
};

static const struct value_opt value_opts[] = {
	{ "--config", 0, offsetof(struct mm_args, config_path) },
	{ "--state", 0, offsetof(struct mm_args, state_path) },
	{ "--plugin-dir", 0, offsetof(struct mm_args, plugin_dir) },
	{ "--mode", O_MODE, offsetof(struct mm_args, mode) },
	{ "--profile", O_PROFILE, offsetof(struct mm_args, profile) },
	{ "--to", O_TO, offsetof(struct mm_args, to) },
	{ "--dir", O_DIR, offsetof(struct mm_args, dir) },
	{ "--quick-test", O_QUICK_TEST, offsetof(struct mm_args, quick_test) },
	{ "--keys", O_KEYS, offsetof(struct mm_args, keys) },
};

struct duration_opt {
	const char *name;
	unsigned flag;
	size_t offset;
};

static const struct duration_opt duration_opts[] = {
	{ "--lock-timeout", 0, offsetof(struct mm_args, lock_timeout_ms) },
	{ "--verify-timeout", O_TIMING, offsetof(struct mm_args, verify_timeout_ms) },
	{ "--poll-interval", O_TIMING, offsetof(struct mm_args, poll_interval_ms) },
	{ "--quick-test-timeout", O_QUICK_TEST, offsetof(struct mm_args, quick_test_timeout_ms) },
};

struct flag_opt {
	const char *name;
	unsigned flag;
	size_t offset;
	int value;
};

static const struct flag_opt flag_opts[] = {
	{ "--json", 0, offsetof(struct mm_args, json), 1 },
	{ "--verbose", 0, offsetof(struct mm_args, verbosity), 1 },
	{ "-v", 0, offsetof(struct mm_args, verbosity), 1 },
	{ "--quiet", 0, offsetof(struct mm_args, verbosity), -1 },
	{ "-q", 0, offsetof(struct mm_args, verbosity), -1 },
	{ "--help", 0, offsetof(struct mm_args, help), 1 },
	{ "-h", 0, offsetof(struct mm_args, help), 1 },
	{ "--version", 0, offsetof(struct mm_args, version), 1 },
	{ "--dry-run", O_DRY_RUN, offsetof(struct mm_args, dry_run), 1 },
	{ "--force", O_FORCE, offsetof(struct mm_args, force), 1 },
	{ "--no-wait", O_NO_WAIT, offsetof(struct mm_args, no_wait), 1 },
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int take_parallel(struct mm_args *args, int argc, char **argv, int *i, char *err)
{
	const char *value;
	long n;
	int r = take_value("--parallel", argc, argv, i, &value, err);

	if (r <= 0)
		return r;
	if (mm_num_parse_long(value, 1, 64, &n) != 0) {
		snprintf(err, MM_ERR_MAX, "--parallel '%s': want a number from 1 to 64", value);
		return -1;
	}
	args->parallel = (int)n;
	return 1;
}

/* --accept-conflict NAME, repeatable: accepting one object must not
 * silence the others, so the plugin gets the names. */
static int take_accepted_conflict(struct mm_args *args, int argc, char **argv, int *i,
                                  char *err)
{
	const char *value, *p;
	int r;

	if (strcmp(argv[*i], "--accept-conflicts") == 0) {
		snprintf(err, MM_ERR_MAX,
		         "--accept-conflicts is gone: name each conflicting object you accept with --accept-conflict NAME (repeatable)");
		return -1;
	}
	r = take_value("--accept-conflict", argc, argv, i, &value, err);
	if (r <= 0)
		return r;
	for (p = value; *p && (unsigned char)*p >= 0x20 && *p != 0x7f; p++)
		;
	if (!*value || *p || p - value >= MM_ACCEPT_NAME_MAX) {
		snprintf(err, MM_ERR_MAX,
		         "--accept-conflict '%.64s': want the name of an object, 1 to %d printable characters",
		         value, MM_ACCEPT_NAME_MAX - 1);
		return -1;
	}
	if (args->naccept_conflicts >= MM_ACCEPT_MAX) {
		snprintf(err, MM_ERR_MAX, "--accept-conflict: at most %d names", MM_ACCEPT_MAX);
		return -1;
	}
	args->accept_conflicts[args->naccept_conflicts++] = value;
	return 1;
}

int mm_cli_parse(struct mm_args *args, int argc, char **argv, char *err)
{
	unsigned seen = 0;
	const struct command_spec *spec = NULL;
	int i, only_positional = 0;
	size_t k;

	memset(args, 0, sizeof(*args));
	args->lock_timeout_ms = DEFAULT_LOCK_TIMEOUT_MS;
	args->verify_timeout_ms = -1;
	args->poll_interval_ms = -1;
	args->quick_test_timeout_ms = -1;
	for (i = 1; i < argc; i++) {
		const char *arg = argv[i], *value = NULL;
		int matched = 0, r;

		if (only_positional || arg[0] != '-' || strcmp(arg, "-") == 0) {
			if (!args->command)
				args->command = arg;
			else if (args->npositional < MM_MAX_ARGS)
				args->positional[args->npositional++] = arg;
			else {
				snprintf(err, MM_ERR_MAX, "too many arguments");
				return MM_USAGE;
			}
			continue;
		}
		if (strcmp(arg, "--") == 0) {
			only_positional = 1;
			continue;
		}
		for (k = 0; k < COUNT(value_opts) && !matched; k++) {
			r = take_value(value_opts[k].name, argc, argv, &i, &value, err);
			if (r < 0)
				return MM_USAGE;
			if (r > 0) {
				*(const char **)((char *)args + value_opts[k].offset) = value;
				seen |= value_opts[k].flag;
				matched = 1;
			}
		}
		for (k = 0; k < COUNT(duration_opts) && !matched; k++) {
			r = take_value(duration_opts[k].name, argc, argv, &i, &value, err);
			if (r < 0)
				return MM_USAGE;
			if (r > 0) {
				long *ms = (long *)((char *)args + duration_opts[k].offset);

				if (mm_config_duration(value, ms) != 0) {
					snprintf(err, MM_ERR_MAX,
					         "%s '%s': not a duration of at most a year (e.g. 30s, 2m, 500ms)",
					         duration_opts[k].name, value);
					return MM_USAGE;
				}
				seen |= duration_opts[k].flag;
				matched = 1;
			}
		}
		if (!matched) {
			r = take_parallel(args, argc, argv, &i, err);
			if (r < 0)
				return MM_USAGE;
			seen |= r > 0 ? O_PARALLEL : 0;
			matched = r > 0;
		}
		if (!matched) {
			r = take_accepted_conflict(args, argc, argv, &i, err);
			if (r < 0)
				return MM_USAGE;
			seen |= r > 0 ? O_ACCEPT : 0;
			matched = r > 0;
		}
		for (k = 0; k < COUNT(flag_opts) && !matched; k++) {
			if (strcmp(arg, flag_opts[k].name) == 0) {
				*(int *)((char *)args + flag_opts[k].offset) = flag_opts[k].value;
				seen |= flag_opts[k].flag;
				matched = 1;
			}
		}
		if (!matched) {
			snprintf(err, MM_ERR_MAX, "unknown option '%s' (see mailmode --help)", arg);
			return MM_USAGE;
		}
	}
	if (args->help || args->version)
		return MM_OK;
	if (!args->command) {
		snprintf(err, MM_ERR_MAX, "no command given (see mailmode --help)");
		return MM_USAGE;
	}
	spec = find_command(args->command);
	if (!spec) {
		snprintf(err, MM_ERR_MAX, "unknown command '%s' (see mailmode --help)", args->command);
		return MM_USAGE;
	}
	if (seen & ~spec->opts) {
		snprintf(err, MM_ERR_MAX, "an option given is not valid for '%s': usage: mailmode %s",
		         spec->name, spec->synopsis);
		return MM_USAGE;
	}
	if (args->npositional < spec->min_args || args->npositional > spec->max_args) {
		snprintf(err, MM_ERR_MAX, "usage: mailmode %s", spec->synopsis);
		return MM_USAGE;
	}
	if ((spec->opts & O_TO) && !args->to) {
		snprintf(err, MM_ERR_MAX, "'%s' needs --to: usage: mailmode %s", spec->name,
		         spec->synopsis);
		return MM_USAGE;
	}
	if ((spec->opts & O_MODE) && !args->mode) {
		snprintf(err, MM_ERR_MAX, "'%s' needs --mode: usage: mailmode %s", spec->name,
		         spec->synopsis);
		return MM_USAGE;
	}
	if (args->quick_test_timeout_ms >= 0 && !args->quick_test) {
		snprintf(err, MM_ERR_MAX, "--quick-test-timeout needs --quick-test: usage: mailmode %s",
		         spec->synopsis);
		return MM_USAGE;
	}
	/* Before anything runs: a switch must not happen for a quick test
	 * that cannot. */
	if (args->quick_test &&
	    mm_quicktest_check_address(args->quick_test, args->positional[0], spec->name, err,
	                               MM_ERR_MAX) != 0)
		return MM_USAGE;
	return MM_OK;
}
