#include "cli.h"

#include "nearest.h"
#include "num.h"
#include "prepare.h"
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
	O_KEYS = 1 << 11,
	O_ONLY = 1 << 12,
	O_SKIP_FAILED = 1 << 13,
	O_REPORT = 1 << 14,
	O_ALL = 1 << 15,
	O_TTL = 1 << 16,
	O_UNDO = 1 << 17,
	O_MAX_SETTLE = 1 << 18
};

struct command_spec {
	const char *name;
	unsigned opts;
	int min_args, max_args;
	const char *synopsis;
	const char *summary;       /* for 'mailmode help COMMAND' */
};

static const struct command_spec commands[] = {
	{ "plugins", O_KEYS, 0, 0, "plugins [--keys MODE]",
	  "List the mode plugins that load and refuse each bad one, naming it;\n"
	  "--keys MODE: the configuration keys the mode reads." },
	{ "status", O_PROFILE, 0, MM_MAX_ARGS, "status [DOMAIN...] [--profile P]",
	  "For each domain: its mode in the state and what is live in the world.\n"
	  "Exit 4 on drift or an unfinished migration." },
	{ "setup", O_MODE | O_PROFILE | O_DRY_RUN | O_ACCEPT | O_FORCE | O_TIMING | O_NO_WAIT, 1, 1,
	  "setup DOMAIN --mode M [--profile P] [--dry-run] [--force]\n"
	  "                  [--accept-conflict NAME]... [--no-wait | --verify-timeout DUR]\n"
	  "                  [--poll-interval DUR]",
	  "Set the domain up in mode M and wait until it is in effect; journaled,\n"
	  "rolled back when it fails after changing something.  Refused (exit 4)\n"
	  "over another mode, drift (unless --force) or conflicting objects (each\n"
	  "accepted by name with --accept-conflict)." },
	{ "verify", O_QUICK_TEST, 1, 1,
	  "verify DOMAIN [--quick-test ADDRESS [--quick-test-timeout DUR]]",
	  "Check that the domain's mode is in effect everywhere (exit 3 if not);\n"
	  "--quick-test: follow a real message through the service." },
	{ "teardown", O_DRY_RUN | O_FORCE | O_TIMING | O_NO_WAIT, 1, 1,
	  "teardown DOMAIN [--dry-run] [--force] [--no-wait | --verify-timeout DUR]\n"
	  "                  [--poll-interval DUR]",
	  "Remove the domain's mode, restoring what it replaced; journaled." },
	{ "adopt", O_MODE | O_PROFILE | O_ALL, 0, 1,
	  "adopt DOMAIN --mode M [--profile P]\n"
	  "       mailmode adopt --all FILE [--profile P]",
	  "Record a mode that was set up by hand, after checking it is live;\n"
	  "--all: each domain the runbook FILE lists that is live in exactly one\n"
	  "mode, listing the others with the reason." },
	{ "switch", O_TO | O_PROFILE | O_DRY_RUN | O_ACCEPT | O_TIMING | O_QUICK_TEST | O_MAX_SETTLE,
	  1, 1,
	  "switch DOMAIN --to MODE [--profile P] [--verify-timeout DUR] [--poll-interval DUR]\n"
	  "                  [--accept-conflict NAME]... [--max-settle DUR] [--dry-run]\n"
	  "                  [--quick-test ADDRESS [--quick-test-timeout DUR]]",
	  "Move the domain to another mode: set the new one up and verify it\n"
	  "before the old one is torn down; rolled back if it never verifies.\n"
	  "The old mode stays while caches may hold the replaced MX records (their\n"
	  "TTL: see prepare); --max-settle caps that wait, at a risk it names." },
	{ "prepare", O_PROFILE | O_TTL | O_UNDO, 1, MM_MAX_ARGS,
	  "prepare DOMAIN... --ttl SECONDS [--profile P] | prepare --undo DOMAIN...",
	  "Lower the MX TTL of each domain ahead of a change window, so that the\n"
	  "switch waits that long for caches instead of the TTL before; says when\n"
	  "the domain is ready (the TTL before has run out).  Journaled: run it\n"
	  "again to finish one a kill interrupted.  The switch restores the normal\n"
	  "TTL; --undo puts back the TTL before without a switch." },
	{ "resume", O_FORCE, 0, 1, "resume [DOMAIN] [--force]",
	  "Finish the migrations a crash or a lost answer left open." },
	{ "abort", 0, 1, 1, "abort DOMAIN",
	  "Undo the domain's open migration, back to where it started." },
	{ "log", 0, 0, 1, "log [DOMAIN]", "The audit log: every change, who made it and when." },
	{ "sandbox", O_DIR, 1, MM_MAX_ARGS, "sandbox start|stop|status [--dir DIR] [-- DRIVER-OPTIONS]",
	  "A rehearsal world on loopback: BIND, a Microsoft 365 emulator, the\n"
	  "mail path, and a config wired to them." },
	{ "runbook", O_PARALLEL | O_ONLY | O_SKIP_FAILED | O_REPORT | O_TTL | O_MAX_SETTLE, 1, 2,
	  "runbook plan|prepare|run FILE [--parallel N] [--only DOMAIN]... [--skip-failed]\n"
	  "       [--ttl SECONDS] [--max-settle DUR]\n"
	  "       mailmode runbook resume RUN [--parallel N] [--only DOMAIN]... [--skip-failed]\n"
	  "       mailmode runbook report [RUN] [--html FILE] [--csv FILE] [--markdown FILE]",
	  "Plan, prepare (lower the MX TTLs ahead of the window) or run the\n"
	  "switches a runbook file lists, many domains at once; each run is\n"
	  "recorded with every domain's status and reason.  resume: run RUN's\n"
	  "runbook again; --skip-failed leaves out the domains that failed in the\n"
	  "previous run.  report: the run (default: the last) for a change board,\n"
	  "as one self-contained HTML file, CSV or Markdown." },
	{ "config", 0, 1, 2, "config check [FILE]",
	  "Check the configuration and validate each profile for each mode it\n"
	  "configures, asking no server." },
	{ "doctor", O_PROFILE, 0, MM_MAX_ARGS, "doctor [DOMAIN...] [--profile P]",
	  "Check everything a switch of each domain needs (default: every domain\n"
	  "in the state), one line per check with its fix.  Exit 3 if one fails." },
	{ "tenant", 0, 2, 2, "tenant login|logout|consent-url TENANT",
	  "Sign in to a [tenant TENANT] with auth = device (a code to enter at\n"
	  "Microsoft's sign-in page; the refresh token is kept in\n"
	  "$XDG_STATE_HOME/mailmode, mode 0600), sign out, or print the URL an\n"
	  "admin opens to consent to the app in the tenant." },
	{ "help", 0, 0, 1, "help [COMMAND]", "This text, or one command's." },
	{ NULL, 0, 0, 0, NULL, NULL }
};

static const struct command_spec *find_command(const char *name);

void mm_cli_usage(FILE *f, const char *command)
{
	const struct command_spec *spec = command ? find_command(command) : NULL;
	size_t i;

	if (spec) {
		fprintf(f, "usage: mailmode %s\n\n%s\n\nSee mailmode(1).\n", spec->synopsis,
		        spec->summary);
		return;
	}
	fputs("usage: mailmode [--config FILE] [--state FILE] [--plugin-dir DIR] [-j|--json]\n"
	      "                [--lock-timeout DUR] [-v|-q] COMMAND [ARGS]\n\ncommands:\n", f);
	for (i = 0; commands[i].name; i++)
		fprintf(f, "  mailmode %s\n", commands[i].synopsis);
	fputs("\nexit codes: 0 ok, 1 error (also: unfinished, outcome unknown), 2 usage,\n"
	      "            3 not verified or rolled back, 4 refused (one-mode invariant,\n"
	      "            conflict, drift; status: drift or an unfinished migration)\n"
	      "            doctor: 3 when a check failed\n"
	      "'mailmode help COMMAND' describes one.  See mailmode(1).\n", f);
}

int mm_cli_is_command(const char *name)
{
	return name && find_command(name) != NULL;
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
	{ "--html", O_REPORT, offsetof(struct mm_args, html) },
	{ "--csv", O_REPORT, offsetof(struct mm_args, csv) },
	{ "--markdown", O_REPORT, offsetof(struct mm_args, markdown) },
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
	{ "--max-settle", O_MAX_SETTLE, offsetof(struct mm_args, max_settle_ms) },
};

struct flag_opt {
	const char *name;
	unsigned flag;
	size_t offset;
	int value;
};

static const struct flag_opt flag_opts[] = {
	{ "--json", 0, offsetof(struct mm_args, json), 1 },
	{ "-j", 0, offsetof(struct mm_args, json), 1 },
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
	{ "--skip-failed", O_SKIP_FAILED, offsetof(struct mm_args, skip_failed), 1 },
	{ "--all", O_ALL, offsetof(struct mm_args, all), 1 },
	{ "--undo", O_UNDO, offsetof(struct mm_args, undo), 1 },
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

/* --only DOMAIN[,DOMAIN...], repeatable; the runbook checks the names. */
static int take_only(struct mm_args *args, int argc, char **argv, int *i, char *err)
{
	const char *value;
	int r = take_value("--only", argc, argv, i, &value, err);

	if (r <= 0)
		return r;
	if (!*value) {
		snprintf(err, MM_ERR_MAX, "--only: want a domain name");
		return -1;
	}
	if (args->nonly >= MM_MAX_ARGS) {
		snprintf(err, MM_ERR_MAX, "--only: at most %d times (list domains with commas)",
		         MM_MAX_ARGS);
		return -1;
	}
	args->only[args->nonly++] = value;
	return 1;
}

/* --ttl: seconds ("300"), or a duration with its unit ("5m"); a TTL is
 * whole seconds. */
static int take_ttl(struct mm_args *args, int argc, char **argv, int *i, char *err)
{
	const char *value;
	long n, ms;
	int r = take_value("--ttl", argc, argv, i, &value, err);

	if (r <= 0)
		return r;
	if (mm_num_parse_long(value, 1, MM_PREPARE_TTL_MAX, &n) == 0) {
		args->ttl = n;
		return 1;
	}
	if (value[0] >= '0' && value[0] <= '9' && value[strspn(value, "0123456789")] != '\0' &&
	    mm_config_duration(value, &ms) == 0 && ms >= 1000 && ms % 1000 == 0 &&
	    ms / 1000 <= MM_PREPARE_TTL_MAX) {
		args->ttl = ms / 1000;
		return 1;
	}
	snprintf(err, MM_ERR_MAX, "--ttl '%s': want whole seconds from 1 to %ld (300, or 5m)", value,
	         MM_PREPARE_TTL_MAX);
	return -1;
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

static int take_flag(struct mm_args *args, const char *arg, unsigned *seen)
{
	size_t k;

	for (k = 0; k < COUNT(flag_opts); k++)
		if (strcmp(arg, flag_opts[k].name) == 0) {
			*(int *)((char *)args + flag_opts[k].offset) = flag_opts[k].value;
			*seen |= flag_opts[k].flag;
			return 1;
		}
	return 0;
}

/* Short flags bundle: "-qj" is "-q -j". */
static int take_bundle(struct mm_args *args, const char *arg, unsigned *seen)
{
	const char *c;
	char one[3] = "-";

	if (arg[0] != '-' || arg[1] == '-' || strlen(arg) < 3 || strspn(arg + 1, "vqhj") != strlen(arg + 1))
		return 0;
	for (c = arg + 1; *c; c++) {
		one[1] = *c;
		take_flag(args, one, seen);
	}
	return 1;
}

static int take_duration(struct mm_args *args, int argc, char **argv, int *i, unsigned *seen,
                         char *err)
{
	const char *value;
	size_t k;
	int r;

	for (k = 0; k < COUNT(duration_opts); k++) {
		r = take_value(duration_opts[k].name, argc, argv, i, &value, err);
		if (r < 0)
			return r;
		if (r == 0)
			continue;
		if (mm_config_duration(value, (long *)((char *)args + duration_opts[k].offset)) != 0) {
			snprintf(err, MM_ERR_MAX,
			         "%s '%s': not a duration of at most a year (e.g. 30s, 2m, 500ms)",
			         duration_opts[k].name, value);
			return -1;
		}
		*seen |= duration_opts[k].flag;
		return 1;
	}
	return 0;
}

static int take_named_value(struct mm_args *args, int argc, char **argv, int *i, unsigned *seen,
                            char *err)
{
	const char *value;
	size_t k;
	int r;

	for (k = 0; k < COUNT(value_opts); k++) {
		r = take_value(value_opts[k].name, argc, argv, i, &value, err);
		if (r < 0)
			return r;
		if (r > 0) {
			*(const char **)((char *)args + value_opts[k].offset) = value;
			*seen |= value_opts[k].flag;
			return 1;
		}
	}
	return 0;
}

/* "unknown option '--dryrun' (did you mean '--dry-run'?)". */
static void unknown_option(const char *arg, char *err)
{
	char word[64];
	struct mm_nearest n = MM_NEAREST_INIT(word);
	size_t k;

	snprintf(word, sizeof(word), "%.*s", (int)strcspn(arg, "="), arg);
	for (k = 0; k < COUNT(value_opts); k++)
		mm_nearest_consider(&n, value_opts[k].name);
	for (k = 0; k < COUNT(duration_opts); k++)
		mm_nearest_consider(&n, duration_opts[k].name);
	for (k = 0; k < COUNT(flag_opts); k++)
		mm_nearest_consider(&n, flag_opts[k].name);
	mm_nearest_consider(&n, "--parallel");
	mm_nearest_consider(&n, "--ttl");
	mm_nearest_consider(&n, "--accept-conflict");
	mm_nearest_consider(&n, "--only");
	if (n.best)
		snprintf(err, MM_ERR_MAX, "unknown option '%s' (did you mean '%s'?)", arg, n.best);
	else
		snprintf(err, MM_ERR_MAX, "unknown option '%s'", arg);
}

/* One option at argv[*i]: 1 taken, -1 a usage error in err. */
static int take_option(struct mm_args *args, int argc, char **argv, int *i, unsigned *seen,
                       char *err)
{
	int r;

	if ((r = take_named_value(args, argc, argv, i, seen, err)) != 0 ||
	    (r = take_duration(args, argc, argv, i, seen, err)) != 0)
		return r;
	if ((r = take_parallel(args, argc, argv, i, err)) != 0) {
		*seen |= r > 0 ? O_PARALLEL : 0;
		return r;
	}
	if ((r = take_ttl(args, argc, argv, i, err)) != 0) {
		*seen |= r > 0 ? O_TTL : 0;
		return r;
	}
	if ((r = take_accepted_conflict(args, argc, argv, i, err)) != 0) {
		*seen |= r > 0 ? O_ACCEPT : 0;
		return r;
	}
	if ((r = take_only(args, argc, argv, i, err)) != 0) {
		*seen |= r > 0 ? O_ONLY : 0;
		return r;
	}
	if (take_flag(args, argv[*i], seen) || take_bundle(args, argv[*i], seen))
		return 1;
	unknown_option(argv[*i], err);
	return -1;
}

static int unknown_command(const char *name, char *err)
{
	struct mm_nearest n = MM_NEAREST_INIT(name);
	size_t i;

	for (i = 0; commands[i].name; i++)
		mm_nearest_consider(&n, commands[i].name);
	if (n.best)
		snprintf(err, MM_ERR_MAX, "unknown command '%s' (did you mean '%s'?)", name, n.best);
	else
		snprintf(err, MM_ERR_MAX, "unknown command '%s'", name);
	return MM_USAGE;
}

/* The command's options and arguments, once all are read. */
static int check_command(const struct mm_args *args, const struct command_spec *spec,
                         unsigned seen, char *err)
{
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
	if ((spec->opts & O_MODE) && !args->mode && !args->all) {
		snprintf(err, MM_ERR_MAX, "'%s' needs --mode: usage: mailmode %s", spec->name,
		         spec->synopsis);
		return MM_USAGE;
	}
	if (strcmp(spec->name, "prepare") == 0 && (args->ttl > 0) == (args->undo != 0)) {
		snprintf(err, MM_ERR_MAX, "'prepare' needs --ttl SECONDS or --undo (one of them): usage: mailmode %s",
		         spec->synopsis);
		return MM_USAGE;
	}
	if (args->max_settle_ms == 0) {
		snprintf(err, MM_ERR_MAX, "--max-settle 0: want a wait longer than 0 (the old mode must outlive the new one's verification)");
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

int mm_cli_parse(struct mm_args *args, int argc, char **argv, char *err)
{
	const struct command_spec *spec;
	unsigned seen = 0;
	int i, only_positional = 0;

	memset(args, 0, sizeof(*args));
	args->lock_timeout_ms = DEFAULT_LOCK_TIMEOUT_MS;
	args->verify_timeout_ms = -1;
	args->poll_interval_ms = -1;
	args->quick_test_timeout_ms = -1;
	args->ttl = -1;
	args->max_settle_ms = -1;
	for (i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (only_positional || arg[0] != '-' || strcmp(arg, "-") == 0) {
			if (!args->command)
				args->command = arg;
			else if (args->npositional < MM_MAX_ARGS)
				args->positional[args->npositional++] = arg;
			else {
				snprintf(err, MM_ERR_MAX, "too many arguments");
				return MM_USAGE;
			}
		} else if (strcmp(arg, "--") == 0) {
			only_positional = 1;
		} else if (take_option(args, argc, argv, &i, &seen, err) < 0) {
			return MM_USAGE;
		}
	}
	if (args->version || (args->help && !args->command))
		return MM_OK;
	if (!args->command) {
		snprintf(err, MM_ERR_MAX, "no command given");
		return MM_USAGE;
	}
	if (!(spec = find_command(args->command)))
		return unknown_command(args->command, err);
	if (strcmp(spec->name, "help") == 0) {
		/* 'help COMMAND' is 'COMMAND --help'. */
		args->command = args->npositional ? args->positional[0] : NULL;
		if (args->command && !find_command(args->command))
			return unknown_command(args->command, err);
		args->help = 1;
	}
	return args->help ? MM_OK : check_command(args, spec, seen, err);
}
