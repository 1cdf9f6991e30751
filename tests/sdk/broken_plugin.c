/*
 * A plugin that loads fine and breaks the rules mailmode-plugin-check is
 * there to catch, one per operation (tests/sdk/check-broken.t asserts which
 * checks fail):
 *
 *   validate_config  an empty profile: MAILMODE_ERR_CONFIG, diagnostic empty
 *   setup            prints to stdout; not idempotent (fails when done)
 *   verify           hangs
 *   plan teardown    calls exit()
 *   plan_actions     an action without its text, a cmdlet without parameters
 *   teardown         crashes
 *   observe          reads a key its config_keys does not declare
 *
 * Its world is one file: the mode is present when the file exists.
 * Profile key:  broken_state = PATH
 */
#include <mailmode/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define KEY_STATE "broken_state"
#define KEY_UNDECLARED "broken_verbose"

struct broken {
	const struct mailmode_host *host;
};

static int broken_init(const struct mailmode_host *host, const char *section, void **ctx,
                       struct mailmode_diag *diag)
{
	struct broken *b = calloc(1, sizeof(*b));

	(void)section;
	if (!b) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "broken: out of memory");
		return MAILMODE_ERR_NOMEM;
	}
	b->host = host;
	*ctx = b;
	return MAILMODE_OK;
}

static void broken_fini(void *ctx)
{
	free(ctx);
}

/* The state file's path, or NULL when the profile does not name one. */
static char *state_path(const struct broken *b, const struct mailmode_request *req)
{
	const char *value = b->host->config_get(b->host->handle, req->section, KEY_STATE);

	return value && *value ? b->host->config_path(b->host->handle, value) : NULL;
}

static int is_set_up(const char *path)
{
	return path && access(path, F_OK) == 0;
}

static int broken_validate(void *ctx, const struct mailmode_request *req,
                           struct mailmode_diag *diag)
{
	char *path = state_path(ctx, req);
	const struct broken *b = ctx;

	(void)diag;
	if (!path)
		return MAILMODE_ERR_CONFIG;     /* defect: says nothing about why */
	b->host->free(path);
	return MAILMODE_OK;
}

static int broken_observe(void *ctx, const struct mailmode_request *req,
                          enum mailmode_presence *presence, char **report,
                          struct mailmode_diag *diag)
{
	const struct broken *b = ctx;
	char *path = state_path(b, req);

	(void)report;
	(void)diag;
	/* defect: config_keys does not list it */
	(void)b->host->config_get(b->host->handle, req->section, KEY_UNDECLARED);
	*presence = is_set_up(path) ? MAILMODE_PRESENT : MAILMODE_ABSENT;
	b->host->free(path);
	return MAILMODE_OK;
}

static int broken_plan(void *ctx, const struct mailmode_request *req, enum mailmode_plan_op op,
                       char **plan, struct mailmode_diag *diag)
{
	const struct broken *b = ctx;

	(void)diag;
	if (op == MAILMODE_PLAN_TEARDOWN)
		exit(3);                        /* defect: ends the host process */
	*plan = b->host->strdup(req->domain);
	return *plan ? MAILMODE_OK : MAILMODE_ERR_NOMEM;
}

static int broken_plan_actions(void *ctx, const struct mailmode_request *req,
                               enum mailmode_plan_op op, char **actions,
                               struct mailmode_diag *diag)
{
	const struct broken *b = ctx;

	(void)req;
	(void)op;
	(void)diag;
	/* defect: no "text", and a cmdlet without its parameters object */
	*actions = b->host->strdup("[{\"change\": \"create\", \"cmdlet\": \"New-Route\"}]");
	return *actions ? MAILMODE_OK : MAILMODE_ERR_NOMEM;
}

static int broken_setup(void *ctx, const struct mailmode_request *req, char **receipt,
                        struct mailmode_diag *diag)
{
	const struct broken *b = ctx;
	char *path = state_path(b, req);
	FILE *f = NULL;
	int rc = MAILMODE_ERR_FAILED;

	printf("setting up %s\n", req->domain);     /* defect: prints */
	if (!path) {
		b->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "no " KEY_STATE);
		goto out;
	}
	if (is_set_up(path)) {                      /* defect: not idempotent */
		b->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "%s is already set up", req->domain);
		goto out;
	}
	f = fopen(path, "w");
	if (!f || fclose(f) != 0) {
		b->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "cannot create %s", path);
		goto out;
	}
	*receipt = b->host->strdup("{\"created\":true}");
	rc = *receipt ? MAILMODE_OK : MAILMODE_ERR_NOMEM;
out:
	b->host->free(path);
	return rc;
}

static int broken_verify(void *ctx, const struct mailmode_request *req, char **report,
                         struct mailmode_diag *diag)
{
	const struct broken *b = ctx;

	(void)req;
	(void)report;
	(void)diag;
	for (;;)                                    /* defect: never answers */
		b->host->sleep_ms(b->host->handle, 1000);
	return MAILMODE_OK;
}

static int broken_teardown(void *ctx, const struct mailmode_request *req,
                           struct mailmode_diag *diag)
{
	volatile int *nowhere = NULL;

	(void)ctx;
	(void)req;
	(void)diag;
	*nowhere = 1;                               /* defect: crashes */
	return MAILMODE_OK;
}

static const struct mailmode_config_key broken_keys[] = {
	{ "profile", KEY_STATE, MAILMODE_KEY_PATH, NULL, "the file whose presence is the mode" },
	{ NULL, NULL, MAILMODE_KEY_STRING, NULL, NULL }
};

static const struct mailmode_config_key *broken_config_keys(void)
{
	return broken_keys;
}

MAILMODE_PLUGIN_DEFINE(
	.name = "broken",
	.description = "breaks the plugin rules on purpose (tests of mailmode-plugin-check)",
	.version = "1.0",
	.init = broken_init,
	.fini = broken_fini,
	.validate_config = broken_validate,
	.observe = broken_observe,
	.plan = broken_plan,
	.plan_actions = broken_plan_actions,
	.setup = broken_setup,
	.verify = broken_verify,
	.teardown = broken_teardown,
	.config_keys = broken_config_keys);
