/*
 * A mode plugin that breaks the conduct rules on purpose, chosen by the
 * domain's name, to show that plugin isolation (core/isolate.h) keeps the
 * command and the run going (the tests in tests/isolation):
 *
 *   crash-observe.*   observe calls abort()
 *   hang-setup.*      setup checkpoints, makes its change, then never
 *                     returns (the first time: a marker file remembers)
 *   huge-receipt.*    setup hands back a receipt of 20 MiB
 *   huge-report.*     observe hands back a report of 20 MiB
 *   huge-diag.*       observe fails with a summary and detail far past the
 *                     diagnostic's size
 *   exit-verify.*     verify calls exit(7)
 *   fail-resources.*  resources fails
 *   crash-resources.* resources calls abort()
 *   blank-resources.* resources hands back blank lines only
 *   crash-doctor.*    doctor calls abort()
 *   note-*            shared resource "tenant notes": setup adds the
 *                     domain to the resource's note (ABI 1.6 shared
 *                     notes), its receipt says what the note held; it
 *                     and verify fail when the host lets them write a
 *                     note of another resource or read one in verify
 *   anything else     behaves: set up when its file exists
 *
 * Every call prints to stdout and stderr first.  Built with
 * -DMISBEHAVE_EXIT_IN_INIT (mode "initexit") its init calls exit(1).
 *
 * Its world is a directory: DIR/DOMAIN exists while the mode is set up.
 * Profile key:  misbehave_dir = PATH
 */
#include <mailmode/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef MISBEHAVE_EXIT_IN_INIT
#define MODE_NAME "initexit"
#else
#define MODE_NAME "misbehave"
#endif

#define HUGE_BYTES (20u * 1024 * 1024)

struct misbehave {
	const struct mailmode_host *host;
};

static void stray(const char *op)
{
	printf("misbehave: %s: stray output on stdout {\n", op);
	fflush(stdout);
	fprintf(stderr, "misbehave: %s: stray output on stderr\n", op);
}

static int is(const struct mailmode_request *req, const char *prefix)
{
	return strncmp(req->domain, prefix, strlen(prefix)) == 0;
}

static int mb_init(const struct mailmode_host *host, const char *section, void **ctx,
                   struct mailmode_diag *diag)
{
	struct misbehave *m = calloc(1, sizeof(*m));

	(void)section;
	stray("init");
#ifdef MISBEHAVE_EXIT_IN_INIT
	exit(1);
#endif
	if (!m) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "misbehave: out of memory");
		return MAILMODE_ERR_NOMEM;
	}
	m->host = host;
	*ctx = m;
	return MAILMODE_OK;
}

static void mb_fini(void *ctx)
{
	free(ctx);
}

/* DIR/DOMAIN[suffix], or NULL without the key. */
static char *path_of(const struct misbehave *m, const struct mailmode_request *req,
                     const char *suffix)
{
	const char *dir = m->host->config_get(m->host->handle, req->section, "misbehave_dir");
	char *full, *path;
	size_t len;

	if (!dir || !*dir || !(full = m->host->config_path(m->host->handle, dir)))
		return NULL;
	len = strlen(full) + strlen(req->domain) + strlen(suffix) + 2;
	path = malloc(len);
	if (path)
		snprintf(path, len, "%s/%s%s", full, req->domain, suffix);
	m->host->free(full);
	return path;
}

static int exists(const struct misbehave *m, const struct mailmode_request *req,
                  const char *suffix)
{
	char *path = path_of(m, req, suffix);
	int there = path && access(path, F_OK) == 0;

	free(path);
	return there;
}

static int touch(const struct misbehave *m, const struct mailmode_request *req, const char *suffix)
{
	char *path = path_of(m, req, suffix);
	FILE *f = path ? fopen(path, "w") : NULL;

	free(path);
	if (!f)
		return -1;
	fclose(f);
	return 0;
}

static int mb_validate(void *ctx, const struct mailmode_request *req, struct mailmode_diag *diag)
{
	const struct misbehave *m = ctx;
	const char *dir = m->host->config_get(m->host->handle, req->section, "misbehave_dir");

	stray("validate_config");
	if (!dir || !*dir) {
		m->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "[%s]: missing key misbehave_dir",
		                  req->section);
		return MAILMODE_ERR_CONFIG;
	}
	return MAILMODE_OK;
}

static char *huge(const struct misbehave *m)
{
	char *text = m->host->alloc(HUGE_BYTES + 3);

	if (!text)
		return NULL;
	text[0] = '"';
	memset(text + 1, 'x', HUGE_BYTES);
	text[HUGE_BYTES + 1] = '"';
	text[HUGE_BYTES + 2] = '\0';
	return text;
}

static int mb_observe(void *ctx, const struct mailmode_request *req,
                      enum mailmode_presence *presence, char **report, struct mailmode_diag *diag)
{
	const struct misbehave *m = ctx;
	int i;

	stray("observe");
	if (is(req, "crash-observe."))
		abort();
	if (is(req, "huge-report.")) {
		*report = huge(m);
		return MAILMODE_OK;
	}
	if (is(req, "huge-diag.")) {
		char *line = huge(m);

		m->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "huge diagnostic %s", line ? line : "");
		for (i = 0; i < 10000; i++)
			m->host->diag_append(diag, "detail line %d %.100s", i, line ? line : "");
		m->host->free(line);
		return MAILMODE_ERR_FAILED;
	}
	*presence = exists(m, req, "") ? MAILMODE_PRESENT : MAILMODE_ABSENT;
	return MAILMODE_OK;
}

static int mb_plan(void *ctx, const struct mailmode_request *req, enum mailmode_plan_op op,
                   char **plan, struct mailmode_diag *diag)
{
	const struct misbehave *m = ctx;

	(void)diag;
	stray("plan");
	*plan = m->host->strdup(op == MAILMODE_PLAN_SETUP ? "create the file" : "remove the file");
	(void)req;
	return *plan ? MAILMODE_OK : MAILMODE_ERR_NOMEM;
}

/* note-*: the note of "tenant notes" gets the domain; what it held
 * goes into *made (host->alloc).  A note stored on a resource the call
 * does not hold fails the setup. */
static int add_to_note(const struct misbehave *m, const struct mailmode_request *req,
                       char **made, struct mailmode_diag *diag)
{
	const struct mailmode_host *h = m->host;
	char *text = NULL, *next = NULL;
	int rc = h->shared_note_load(h->handle, req, "tenant notes", "k", &text, diag);

	if (rc == MAILMODE_OK &&
	    h->shared_note_store(h->handle, req, "tenant other", "k", "x", diag) == MAILMODE_OK) {
		h->diag_set(diag, MAILMODE_SEV_ERROR, 0, "misbehave: a note of a resource not held was stored");
		rc = MAILMODE_ERR_FAILED;
	}
	if (rc == MAILMODE_OK && (!(next = malloc(strlen(text ? text : "") + strlen(req->domain) + 2)) ||
	                          !(*made = h->alloc(strlen(text ? text : "") + 32))))
		rc = MAILMODE_ERR_NOMEM;
	if (rc == MAILMODE_OK) {
		sprintf(next, "%s%s%s", text ? text : "", text ? "," : "", req->domain);
		sprintf(*made, "{\"note\":\"%s\"}", text ? text : "");
		memset(diag, 0, sizeof(*diag));
		rc = h->shared_note_store(h->handle, req, "tenant notes", "k", next, diag);
	}
	h->free(text);
	free(next);
	return rc;
}

static int mb_setup(void *ctx, const struct mailmode_request *req, char **receipt,
                    struct mailmode_diag *diag)
{
	const struct misbehave *m = ctx;
	const char *made = "{\"file\":\"made\"}";
	int rc;

	stray("setup");
	if (is(req, "huge-receipt.")) {
		*receipt = huge(m);
		return MAILMODE_OK;
	}
	if (is(req, "note-"))
		return add_to_note(m, req, receipt, diag);
	if ((rc = m->host->checkpoint(m->host->handle, req, made, diag)) != MAILMODE_OK)
		return rc;
	if (touch(m, req, "") != 0) {
		m->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "misbehave: cannot create the file of %s",
		                  req->domain);
		return MAILMODE_ERR_UNKNOWN;
	}
	m->host->log(m->host->handle, MAILMODE_LOG_INFO, "created the file of %s", req->domain);
	if (is(req, "hang-setup.") && !exists(m, req, ".hung")) {
		touch(m, req, ".hung");
		for (;;)
			pause();
	}
	*receipt = m->host->strdup(made);
	return *receipt ? MAILMODE_OK : MAILMODE_ERR_NOMEM;
}

static int mb_verify(void *ctx, const struct mailmode_request *req, char **report,
                     struct mailmode_diag *diag)
{
	const struct misbehave *m = ctx;

	(void)report;
	stray("verify");
	if (is(req, "exit-verify."))
		exit(7);
	if (is(req, "note-")) {
		char *text = NULL;

		if (m->host->shared_note_load(m->host->handle, req, "tenant notes", "k", &text,
		                              diag) != MAILMODE_OK)
			return MAILMODE_OK;
		m->host->free(text);
		m->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "misbehave: verify read a note");
		return MAILMODE_ERR_FAILED;
	}
	if (exists(m, req, ""))
		return MAILMODE_OK;
	m->host->diag_set(diag, MAILMODE_SEV_ERROR, 1, "the file of %s is not there", req->domain);
	return MAILMODE_ERR_NOT_READY;
}

static int mb_teardown(void *ctx, const struct mailmode_request *req, struct mailmode_diag *diag)
{
	const struct misbehave *m = ctx;
	char *path = path_of(m, req, "");
	int rc;

	stray("teardown");
	rc = m->host->checkpoint(m->host->handle, req, "{\"file\":\"removing\"}", diag);
	if (rc == MAILMODE_OK && path)
		unlink(path);
	free(path);
	return rc;
}

/* No shared resource (NULL, deliberately) but for the domains above. */
static int mb_resources(void *ctx, const struct mailmode_request *req, char **resources,
                        struct mailmode_diag *diag)
{
	const struct misbehave *m = ctx;

	stray("resources");
	*resources = NULL;
	if (is(req, "crash-resources."))
		abort();
	if (is(req, "fail-resources.")) {
		m->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "misbehave: cannot name the resources of %s",
		                  req->domain);
		return MAILMODE_ERR_FAILED;
	}
	if (is(req, "blank-resources."))
		*resources = m->host->strdup("\n \n\t\r\n");
	if (is(req, "note-"))
		*resources = m->host->strdup("tenant notes");
	return MAILMODE_OK;
}

/* One check: the directory of its files is configured. */
static int mb_doctor(void *ctx, const struct mailmode_request *req, char **checks,
                     struct mailmode_diag *diag)
{
	const struct misbehave *m = ctx;
	char text[512];

	(void)diag;
	stray("doctor");
	if (is(req, "crash-doctor."))
		abort();
	snprintf(text, sizeof(text), "[{\"scope\":\"domain %s\",\"check\":\"files\",\"ok\":true,"
	         "\"detail\":\"misbehave_dir set\"}]", req->domain);
	*checks = m->host->strdup(text);
	return *checks ? MAILMODE_OK : MAILMODE_ERR_NOMEM;
}

static const struct mailmode_config_key mb_keys[] = {
	{ "profile", "misbehave_dir", MAILMODE_KEY_PATH, NULL, "the directory of its files" },
	{ NULL, NULL, MAILMODE_KEY_STRING, NULL, NULL }
};

static const struct mailmode_config_key *mb_config_keys(void)
{
	return mb_keys;
}

MAILMODE_PLUGIN_DEFINE(
	.name = MODE_NAME,
	.description = "breaks the conduct rules on purpose (tests)",
	.version = "1.0",
	.caps = MAILMODE_CAP_THREADSAFE,
	.init = mb_init,
	.fini = mb_fini,
	.validate_config = mb_validate,
	.observe = mb_observe,
	.plan = mb_plan,
	.setup = mb_setup,
	.verify = mb_verify,
	.teardown = mb_teardown,
	.resources = mb_resources,
	.doctor = mb_doctor,
	.config_keys = mb_config_keys);
