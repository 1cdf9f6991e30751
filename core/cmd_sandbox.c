/* sandbox start|stop|status: the local rehearsal environment (BIND 9,
 * the Microsoft 365 emulator, the mail path) is run by a Python driver
 * installed with the program; this command finds it and hands over, with
 * any driver options given after "--" (sandbox start -- --help). */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *default_dir(char *buf, size_t len)
{
	const char *runtime = getenv("XDG_RUNTIME_DIR");

	snprintf(buf, len, "%s/mailmode-sandbox", runtime && *runtime ? runtime : "/tmp");
	return buf;
}

/* Where the driver is: $MAILMODE_DATADIR, else next to a binary run from
 * its source tree (not installed yet), else the installed data directory. */
static void find_driver(const char *self, char *driver, size_t len)
{
	const char *datadir = getenv("MAILMODE_DATADIR");
	const char *slash = strrchr(self, '/');

	if (datadir && *datadir) {
		snprintf(driver, len, "%s/sandbox.py", datadir);
		return;
	}
	snprintf(driver, len, "%.*s/tests/servers/sandbox.py", slash ? (int)(slash - self) : 1,
	         slash ? self : ".");
	if (access(driver, R_OK) != 0)
		snprintf(driver, len, "%s/sandbox/sandbox.py", MM_PKGDATADIR);
}

int mm_cmd_sandbox(struct mm_ctx *ctx)
{
	const char *action = ctx->args.positional[0];
	char driver[4200], dirbuf[4096];
	const char *dir = ctx->args.dir ? ctx->args.dir : default_dir(dirbuf, sizeof(dirbuf));
	char *argv[MM_MAX_ARGS + 16] = { (char *)MM_PYTHON3, driver, (char *)action,
	                                  (char *)"--dir", (char *)dir, (char *)"--plugin-dir",
	                                  ctx->plugin_dir, (char *)"--mailmode", NULL };
	char self[4096];
	ssize_t n;
	int i, argc = 9;

	if (strcmp(action, "start") != 0 && strcmp(action, "stop") != 0 &&
	    strcmp(action, "status") != 0)
		return mm_fail(ctx, MM_USAGE, "sandbox: unknown action '%s' (start, stop or status)",
		               action);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return mm_fail(ctx, MM_ERR, "cannot find the mailmode binary: %s", strerror(errno));
	self[n] = '\0';
	find_driver(self, driver, sizeof(driver));
	if (access(driver, R_OK) != 0)
		return mm_fail(ctx, MM_ERR, "sandbox driver %s: %s (set MAILMODE_DATADIR to the directory holding sandbox.py)",
		               driver, strerror(errno));
	argv[8] = self;
	/* The driver's own options (after "--"): extra tenants, latency... */
	for (i = 1; i < ctx->args.npositional; i++)
		argv[argc++] = (char *)ctx->args.positional[i];
	argv[argc] = NULL;
	fflush(stdout);
	fflush(stderr);
	execv(MM_PYTHON3, argv);
	return mm_fail(ctx, MM_ERR, "cannot run %s: %s", MM_PYTHON3, strerror(errno));
}
