/*
 * mailmode-plugin-check: the conformance checker for mode plugins.
 *
 *   mailmode-plugin-check [options] PLUGIN.so
 *
 * Loads the plugin through mailmode's own loader and checks it against the
 * contract in <mailmode/plugin.h>, printing TAP so that an author can run it
 * from their own `make check`.  Every plugin call runs in a forked child
 * (see isolate.c), so a crash, an exit() or a hang fails that check only.
 * With --config, --profile and --domain it also drives the whole lifecycle
 * against a live target (the author's test world or the sandbox).
 *
 * Exit status: 0 every check passed, 1 some failed, 2 usage.
 */
#include "check.h"

#include "config.h"
#include "http.h"
#include "mm.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXIT_PASS 0
#define EXIT_FAILED 1
#define EXIT_USAGE 2

/* Never created: a missing file reads as an empty configuration. */
#define EMPTY_CONFIG "empty.conf"

#define DEFAULT_TIMEOUT_MS (60L * 1000)
#define DEFAULT_VERIFY_TIMEOUT_MS (120L * 1000)
#define DEFAULT_POLL_INTERVAL_MS (2L * 1000)

static void usage(FILE *f)
{
	fputs("usage: mailmode-plugin-check [options] PLUGIN.so\n"
	      "\n"
	      "Checks a mailmode mode plugin against the plugin ABI and prints TAP.\n"
	      "\n"
	      "  --config FILE          live checks: a mailmode configuration for the test world\n"
	      "  --profile P            live checks: the profile to use (default: as mailmode)\n"
	      "  --domain D             live checks: a domain the mode is not set up for\n"
	      "  --timeout DUR          limit per plugin call (default 60s)\n"
	      "  --verify-timeout DUR   how long verify is polled (default 120s)\n"
	      "  --poll-interval DUR    pause between verify attempts (default 2s)\n"
	      "  -v, --verbose          show the plugin's diagnostics and log lines\n"
	      "  -h, --help             this text\n"
	      "  --version              the checker's version and plugin ABI\n"
	      "\n"
	      "Without --config and --domain the live checks are skipped.\n"
	      "DUR: 90, 90s, 500ms, 2m, 1h.  Exit status: 0 all passed, 1 failed, 2 usage.\n",
	      f);
}

/* Matches "--name VALUE" and "--name=VALUE"; 1 matched, 0 not, -1 no value. */
static int option_value(const char *name, int argc, char **argv, int *i, const char **value)
{
	size_t len = strlen(name);

	if (strncmp(argv[*i], name, len) != 0)
		return 0;
	if (argv[*i][len] == '=') {
		*value = argv[*i] + len + 1;
		return 1;
	}
	if (argv[*i][len] != '\0')
		return 0;
	if (*i + 1 >= argc)
		return -1;
	*value = argv[++*i];
	return 1;
}

static int parse_args(int argc, char **argv, struct check_options *opt, int *help,
                      int *version, char *err, size_t errlen)
{
	static const struct {
		const char *name;
		size_t offset;
	} texts[] = {
		{ "--config", offsetof(struct check_options, config_path) },
		{ "--profile", offsetof(struct check_options, profile) },
		{ "--domain", offsetof(struct check_options, domain) },
	}, durations[] = {
		{ "--timeout", offsetof(struct check_options, timeout_ms) },
		{ "--verify-timeout", offsetof(struct check_options, verify_timeout_ms) },
		{ "--poll-interval", offsetof(struct check_options, poll_interval_ms) },
	};
	int i, only_files = 0;
	size_t k;

	memset(opt, 0, sizeof(*opt));
	opt->timeout_ms = DEFAULT_TIMEOUT_MS;
	opt->verify_timeout_ms = DEFAULT_VERIFY_TIMEOUT_MS;
	opt->poll_interval_ms = DEFAULT_POLL_INTERVAL_MS;
	for (i = 1; i < argc; i++) {
		const char *arg = argv[i], *value = NULL;
		int matched = 0, r;

		if (only_files || arg[0] != '-') {
			if (opt->plugin) {
				snprintf(err, errlen, "one plugin at a time (got %s and %s)", opt->plugin, arg);
				return -1;
			}
			opt->plugin = arg;
			continue;
		}
		if (strcmp(arg, "--") == 0) {
			only_files = 1;
			continue;
		}
		if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
			*help = 1;
			continue;
		}
		if (strcmp(arg, "--version") == 0) {
			*version = 1;
			continue;
		}
		if (strcmp(arg, "-v") == 0 || strcmp(arg, "--verbose") == 0) {
			opt->verbose = 1;
			continue;
		}
		for (k = 0; k < sizeof(texts) / sizeof(texts[0]) && !matched; k++) {
			r = option_value(texts[k].name, argc, argv, &i, &value);
			if (r < 0)
				goto needs_value;
			if (r > 0) {
				*(const char **)((char *)opt + texts[k].offset) = value;
				matched = 1;
			}
		}
		for (k = 0; k < sizeof(durations) / sizeof(durations[0]) && !matched; k++) {
			r = option_value(durations[k].name, argc, argv, &i, &value);
			if (r < 0)
				goto needs_value;
			if (r == 0)
				continue;
			if (mm_config_duration(value, (long *)((char *)opt + durations[k].offset)) != 0) {
				snprintf(err, errlen, "%s '%s': not a duration (e.g. 30s, 2m, 500ms)",
				         durations[k].name, value);
				return -1;
			}
			matched = 1;
		}
		if (!matched) {
			snprintf(err, errlen, "unknown option '%s'", arg);
			return -1;
		}
		continue;
needs_value:
		snprintf(err, errlen, "option %s needs a value", arg);
		return -1;
	}
	if (*help || *version)
		return 0;
	if (!opt->plugin) {
		snprintf(err, errlen, "no plugin given");
		return -1;
	}
	if ((opt->config_path || opt->profile || opt->domain) &&
	    (!opt->config_path || !opt->domain)) {
		snprintf(err, errlen, "the live checks need both --config and --domain");
		return -1;
	}
	if (opt->timeout_ms <= 0 || opt->poll_interval_ms <= 0) {
		snprintf(err, errlen, "--timeout and --poll-interval must be more than 0");
		return -1;
	}
	return 0;
}

/* Error texts may be cut short; through vsnprintf the compiler lets them. */
static void set_error(char *err, size_t errlen, const char *fmt, ...) MAILMODE_PRINTF(3, 4);
static void set_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* The loader takes a directory and loads every *.so in it: give it one
 * holding only a copy of the plugin, private to this run. */
static int make_workdir(struct check_run *run, const char *plugin, char *err, size_t errlen)
{
	const char *tmp = getenv("TMPDIR"), *base = strrchr(plugin, '/');
	size_t baselen;
	char buf[65536];
	int in = -1, out = -1, rc = -1;
	ssize_t n;

	base = base ? base + 1 : plugin;
	baselen = strlen(base);
	snprintf(run->workdir, sizeof(run->workdir), "%s/mailmode-plugin-check.XXXXXX",
	         tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(run->workdir)) {
		set_error(err, errlen, "cannot create a directory in %s: %s", tmp && *tmp ? tmp : "/tmp",
		         strerror(errno));
		run->workdir[0] = '\0';
		goto out;
	}
	/* Keep the file name, so the loader's messages name it; the loader only
	 * looks at *.so files. */
	if ((size_t)snprintf(run->plugin_copy, sizeof(run->plugin_copy), "%s/%s%s", run->workdir,
	                     base, baselen > 3 && strcmp(base + baselen - 3, ".so") == 0 ? "" : ".so")
	    >= sizeof(run->plugin_copy)) {
		set_error(err, errlen, "%s: the name is too long", plugin);
		goto out;
	}
	in = open(plugin, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		set_error(err, errlen, "%s: %s", plugin, strerror(errno));
		goto out;
	}
	out = open(run->plugin_copy, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	if (out < 0) {
		set_error(err, errlen, "%s: %s", run->plugin_copy, strerror(errno));
		goto out;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			break;
	if (n != 0) {
		set_error(err, errlen, "cannot copy %s: %s", plugin, strerror(errno));
		goto out;
	}
	/* The loader refuses group- or world-writable files; the umask decides
	 * what open() gave. */
	if (fchmod(out, 0755) != 0) {
		set_error(err, errlen, "%s: %s", run->plugin_copy, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (in >= 0)
		close(in);
	if (out >= 0 && close(out) != 0 && rc == 0) {
		set_error(err, errlen, "%s: %s", run->plugin_copy, strerror(errno));
		rc = -1;
	}
	return rc;
}

static void remove_workdir(struct check_run *run)
{
	char path[PATH_MAX];

	if (!run->workdir[0])
		return;
	if (run->plugin_copy[0])
		unlink(run->plugin_copy);
	if ((size_t)snprintf(path, sizeof(path), "%s/" EMPTY_CONFIG, run->workdir) < sizeof(path))
		unlink(path);
	rmdir(run->workdir);
}

/* The configurations: an empty one for the checks that need no target, and
 * the author's for the live checks, with the profile resolved as mailmode
 * resolves it. */
static int load_configs(struct check_run *run, char *err, size_t errlen)
{
	char empty[PATH_MAX], section[512];
	const struct check_options *opt = run->opt;

	/* A file that does not exist reads as an empty configuration. */
	if ((size_t)snprintf(empty, sizeof(empty), "%s/" EMPTY_CONFIG, run->workdir) >= sizeof(empty)) {
		set_error(err, errlen, "%s: the name is too long", run->workdir);
		return -1;
	}
	run->empty_config = mm_config_load(empty, 0, err, errlen);
	if (!run->empty_config)
		return -1;
	if (!opt->config_path)
		return 0;
	run->config = mm_config_load(opt->config_path, 1, err, errlen);
	if (!run->config)
		return -1;
	if (mm_config_profile(run->config, opt->profile, section, sizeof(section), err, errlen) != 0)
		return -1;
	/* The section is "profile NAME": the request carries NAME. */
	if ((size_t)snprintf(run->profile, sizeof(run->profile), "%s", section + strlen("profile "))
	    >= sizeof(run->profile)) {
		set_error(err, errlen, "profile name too long: %s", section);
		return -1;
	}
	if (mm_domain_normalize(opt->domain, run->domain, err, errlen) != 0)
		return -1;
	return 0;
}

void check_call(struct check_run *run, enum call_op op, int live, const char *receipt,
                unsigned flags,
                enum mailmode_plan_op plan_op, struct call_result *result)
{
	struct call_spec spec = {
		.op = op,
		.plugin_dir = run->workdir,
		.plugin_file = run->plugin_copy,
		.config = live ? run->config : run->empty_config,
		.domain = live ? run->domain : EMPTY_DOMAIN,
		.profile = live ? run->profile : EMPTY_PROFILE,
		.receipt = receipt,
		.flags = flags,
		.plan_op = plan_op,
		.timeout_ms = run->opt->timeout_ms,
	};

	call_run(&spec, result);
	keys_collect(run, op, result);
}

int main(int argc, char **argv)
{
	struct check_options opt;
	struct check_run run;
	char err[MM_ERR_MAX] = "";
	int help = 0, version = 0, rc = EXIT_USAGE;

	memset(&run, 0, sizeof(run));
	run.opt = &opt;
	if (parse_args(argc, argv, &opt, &help, &version, err, sizeof(err)) != 0) {
		fprintf(stderr, "mailmode-plugin-check: %s\n", err);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (help) {
		usage(stdout);
		return EXIT_PASS;
	}
	if (version) {
		printf("mailmode-plugin-check %s (plugin ABI %d.%d)\n", PACKAGE_VERSION,
		       MAILMODE_ABI_MAJOR, MAILMODE_ABI_MINOR);
		return EXIT_PASS;
	}
	/* Children use the host's HTTP service: libcurl is set up once, here. */
	if (mm_http_global_init() != 0) {
		fprintf(stderr, "mailmode-plugin-check: cannot initialise libcurl\n");
		return EXIT_FAILED;
	}
	if (make_workdir(&run, opt.plugin, err, sizeof(err)) != 0 ||
	    load_configs(&run, err, sizeof(err)) != 0) {
		fprintf(stderr, "mailmode-plugin-check: %s\n", err);
		goto out;
	}
	tap_start(&run.tap, stdout, CHECKS_TOTAL);
	printf("# %s, mailmode %s, plugin ABI %d.%d\n", opt.plugin, PACKAGE_VERSION,
	       MAILMODE_ABI_MAJOR, MAILMODE_ABI_MINOR);
	check_descriptor(&run);
	check_startup(&run);
	check_lifecycle(&run);
	check_config_reads(&run);
	rc = tap_all_passed(&run.tap) ? EXIT_PASS : EXIT_FAILED;
out:
	free(run.key_reads);
	mm_config_free(run.config);
	mm_config_free(run.empty_config);
	remove_workdir(&run);
	mm_http_global_cleanup();
	return rc;
}
