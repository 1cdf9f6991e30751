/*
 * The example mode: a complete, small mailmode plugin whose "world" is a
 * JSON file instead of DNS or a tenant, so mailmode can be tried and tested
 * with no network.  Read it as a template for a real plugin.
 *
 * The world file maps each domain to the route its mail takes:
 *
 *     { "domains": { "contoso.test": { "route": "direct" } } }
 *
 * Setting the mode up points the domain's route at the profile's
 * example_route and remembers the old route in the receipt; teardown puts
 * the old route back.  An entry with "ready": false makes verify answer
 * "not yet", as a slow real system would.
 *
 * Profile keys (prefixed with the mode name, so that one profile can hold
 * several copies of this plugin built under other names):
 *     example_world = PATH     the world file (relative: to the config file)
 *     example_route = NAME     the route this mode sets (default: the mode name)
 */
/* flock, fileno and O_CLOEXEC are POSIX/BSD, outside strict C11. */
#define _DEFAULT_SOURCE

#include <mailmode/plugin.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* The test suite builds a second copy under another name. */
#ifndef EXAMPLE_MODE_NAME
#define EXAMPLE_MODE_NAME "example"
#endif
#define KEY_WORLD EXAMPLE_MODE_NAME "_world"
#define KEY_ROUTE EXAMPLE_MODE_NAME "_route"
#define WORLD_MAX (16 * 1024 * 1024)

struct example {
	const struct mailmode_host *host;
};

/* What one operation works on: the parsed world, locked against other
 * writers until world_close. */
struct world {
	char *path;
	int lock_fd;
	cJSON *root;
	cJSON *domains;
	const char *route;
};

static int example_init(const struct mailmode_host *host, const char *section, void **ctx,
                        struct mailmode_diag *diag)
{
	struct example *ex;

	(void)section;
	ex = calloc(1, sizeof(*ex));
	if (!ex) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "example: out of memory");
		return MAILMODE_ERR_NOMEM;
	}
	ex->host = host;
	*ctx = ex;
	return MAILMODE_OK;
}

static void example_fini(void *ctx)
{
	free(ctx);
}

static const char *route_of(const struct example *ex, const struct mailmode_request *req)
{
	const char *route = ex->host->config_get(ex->host->handle, req->section, KEY_ROUTE);

	return route && *route ? route : EXAMPLE_MODE_NAME;
}

static int example_validate(void *ctx, const struct mailmode_request *req,
                            struct mailmode_diag *diag)
{
	const struct example *ex = ctx;
	const char *world = ex->host->config_get(ex->host->handle, req->section, KEY_WORLD);

	if (!world || !*world) {
		ex->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "[%s]: missing key " KEY_WORLD,
		                   req->section);
		return MAILMODE_ERR_CONFIG;
	}
	return MAILMODE_OK;
}

static char *read_file(const char *path, struct mailmode_diag *diag, const struct mailmode_host *h)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	long size;

	if (!f) {
		if (errno == ENOENT)
			return h->strdup("{}");
		h->diag_set(diag, MAILMODE_SEV_ERROR, 0, "example world %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || size > WORLD_MAX ||
	    fseek(f, 0, SEEK_SET) != 0) {
		h->diag_set(diag, MAILMODE_SEV_ERROR, 0, "example world %s: cannot read", path);
		goto out;
	}
	buf = calloc(1, (size_t)size + 1);
	if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) {
		free(buf);
		buf = NULL;
		h->diag_set(diag, MAILMODE_SEV_ERROR, 0, "example world %s: short read", path);
	}
out:
	fclose(f);
	return buf;
}

static void world_close(struct world *w)
{
	cJSON_Delete(w->root);
	if (w->lock_fd >= 0)
		close(w->lock_fd);   /* releases the flock */
	free(w->path);
	memset(w, 0, sizeof(*w));
	w->lock_fd = -1;
}

/* Opens and parses the world; exclusive lock when writing, shared when only
 * reading, so concurrent runs never see half a file. */
static int world_open(const struct example *ex, const struct mailmode_request *req, int write,
                      struct world *w, struct mailmode_diag *diag)
{
	const struct mailmode_host *h = ex->host;
	const char *configured = h->config_get(h->handle, req->section, KEY_WORLD);
	char lock_path[4096];
	char *text = NULL;
	int rc = MAILMODE_ERR_FAILED;

	memset(w, 0, sizeof(*w));
	w->lock_fd = -1;
	w->route = route_of(ex, req);
	w->path = h->config_path(h->handle, configured ? configured : "");
	if (!w->path) {
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	snprintf(lock_path, sizeof(lock_path), "%s.lock", w->path);
	w->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (w->lock_fd < 0 || flock(w->lock_fd, write ? LOCK_EX : LOCK_SH) != 0) {
		h->diag_set(diag, MAILMODE_SEV_ERROR, 1, "example world %s: cannot lock: %s", w->path,
		            strerror(errno));
		goto out;
	}
	text = read_file(w->path, diag, h);
	if (!text)
		goto out;
	w->root = cJSON_Parse(text);
	if (!w->root || !cJSON_IsObject(w->root)) {
		h->diag_set(diag, MAILMODE_SEV_ERROR, 0, "example world %s: not a JSON object", w->path);
		goto out;
	}
	w->domains = cJSON_GetObjectItem(w->root, "domains");
	if (!w->domains)
		w->domains = cJSON_AddObjectToObject(w->root, "domains");
	if (!cJSON_IsObject(w->domains)) {
		h->diag_set(diag, MAILMODE_SEV_ERROR, 0, "example world %s: \"domains\" is not an object",
		            w->path);
		goto out;
	}
	rc = MAILMODE_OK;
out:
	free(text);
	if (rc != MAILMODE_OK)
		world_close(w);
	return rc;
}

/* Writes the world atomically: a reader sees the old file or the new one. */
static int world_save(const struct example *ex, const struct world *w, struct mailmode_diag *diag)
{
	char tmp[4096];
	char *text = cJSON_Print(w->root);
	FILE *f = NULL;
	int rc = MAILMODE_ERR_UNKNOWN;

	if (!text)
		return MAILMODE_ERR_NOMEM;
	snprintf(tmp, sizeof(tmp), "%s.tmp", w->path);
	f = fopen(tmp, "w");
	if (!f || fputs(text, f) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
		ex->host->diag_set(diag, MAILMODE_SEV_ERROR, 1, "example world %s: cannot write: %s",
		                   w->path, strerror(errno));
		goto out;
	}
	if (fclose(f) != 0 || rename(tmp, w->path) != 0) {
		f = NULL;
		ex->host->diag_set(diag, MAILMODE_SEV_ERROR, 1, "example world %s: cannot replace: %s",
		                   w->path, strerror(errno));
		goto out;
	}
	f = NULL;
	rc = MAILMODE_OK;
out:
	if (f)
		fclose(f);
	free(text);
	return rc;
}

static const char *live_route(const struct world *w, const char *domain)
{
	cJSON *entry = cJSON_GetObjectItem(w->domains, domain);

	return cJSON_GetStringValue(cJSON_GetObjectItem(entry, "route"));
}

static int entry_ready(const struct world *w, const char *domain)
{
	cJSON *ready = cJSON_GetObjectItem(cJSON_GetObjectItem(w->domains, domain), "ready");

	return !cJSON_IsFalse(ready);
}

/* The route teardown restores: the receipt's, or none for an adopted domain. */
static const char *saved_route(cJSON *receipt)
{
	return cJSON_GetStringValue(cJSON_GetObjectItem(receipt, "previous"));
}

static char *report_json(const struct example *ex, const struct world *w, const char *domain)
{
	cJSON *r = cJSON_CreateObject();
	const char *live = live_route(w, domain);
	char *text, *out;

	cJSON_AddStringToObject(r, "world", w->path);
	if (live)
		cJSON_AddStringToObject(r, "route", live);
	else
		cJSON_AddNullToObject(r, "route");
	cJSON_AddBoolToObject(r, "ready", entry_ready(w, domain));
	text = cJSON_PrintUnformatted(r);
	cJSON_Delete(r);
	out = text ? ex->host->strdup(text) : NULL;
	free(text);
	return out;
}

static int example_observe(void *ctx, const struct mailmode_request *req,
                           enum mailmode_presence *presence, char **report,
                           struct mailmode_diag *diag)
{
	const struct example *ex = ctx;
	struct world w;
	const char *live;
	int rc = world_open(ex, req, 0, &w, diag);

	if (rc != MAILMODE_OK)
		return rc;
	live = live_route(&w, req->domain);
	*presence = live && strcmp(live, w.route) == 0 ? MAILMODE_PRESENT : MAILMODE_ABSENT;
	*report = report_json(ex, &w, req->domain);
	world_close(&w);
	return MAILMODE_OK;
}

static int example_plan(void *ctx, const struct mailmode_request *req, enum mailmode_plan_op op,
                        char **plan, struct mailmode_diag *diag)
{
	const struct example *ex = ctx;
	cJSON *receipt = req->receipt ? cJSON_Parse(req->receipt) : NULL;
	const char *live, *target;
	char line[1024] = "";
	struct world w;
	int rc = world_open(ex, req, 0, &w, diag);

	if (rc != MAILMODE_OK)
		goto out;
	live = live_route(&w, req->domain);
	target = op == MAILMODE_PLAN_SETUP ? w.route : saved_route(receipt);
	if (!(live == target || (live && target && strcmp(live, target) == 0)))
		snprintf(line, sizeof(line), "%s: set route of %s to %s (now %s)", w.path, req->domain,
		         target ? target : "(none)", live ? live : "(none)");
	*plan = ex->host->strdup(line);
	rc = *plan ? MAILMODE_OK : MAILMODE_ERR_NOMEM;
	world_close(&w);
out:
	cJSON_Delete(receipt);
	return rc;
}

/* Sets or removes the domain's route; other fields of the entry (such as
 * "ready") are the world's own and stay. */
static int set_route(const struct world *w, const char *domain, const char *route)
{
	cJSON *entry = cJSON_GetObjectItem(w->domains, domain);

	if (!route) {
		cJSON_DeleteItemFromObject(entry, "route");
		if (!entry || cJSON_GetArraySize(entry) == 0)
			cJSON_DeleteItemFromObject(w->domains, domain);
		return 0;
	}
	if (!entry)
		entry = cJSON_AddObjectToObject(w->domains, domain);
	if (!entry)
		return -1;
	cJSON_DeleteItemFromObject(entry, "route");
	return cJSON_AddStringToObject(entry, "route", route) ? 0 : -1;
}

static int example_setup(void *ctx, const struct mailmode_request *req, char **receipt,
                         struct mailmode_diag *diag)
{
	const struct example *ex = ctx;
	cJSON *r = NULL;
	char *text = NULL;
	const char *live;
	struct world w;
	int rc = world_open(ex, req, 1, &w, diag);

	if (rc != MAILMODE_OK)
		return rc;
	live = live_route(&w, req->domain);
	if (live && strcmp(live, w.route) == 0) {
		/* Already done: keep the receipt that recorded the original route. */
		*receipt = ex->host->strdup(req->receipt ? req->receipt : "{\"previous\":null}");
		rc = *receipt ? MAILMODE_OK : MAILMODE_ERR_NOMEM;
		goto out;
	}
	r = cJSON_CreateObject();
	if (!r || !(live ? cJSON_AddStringToObject(r, "previous", live) :
	                   cJSON_AddNullToObject(r, "previous")) ||
	    !cJSON_AddStringToObject(r, "route", w.route) || !(text = cJSON_PrintUnformatted(r)) ||
	    set_route(&w, req->domain, w.route) != 0) {
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	rc = world_save(ex, &w, diag);
	if (rc == MAILMODE_OK) {
		*receipt = ex->host->strdup(text);
		rc = *receipt ? MAILMODE_OK : MAILMODE_ERR_NOMEM;
	}
out:
	cJSON_Delete(r);
	free(text);
	world_close(&w);
	return rc;
}

static int example_verify(void *ctx, const struct mailmode_request *req, char **report,
                          struct mailmode_diag *diag)
{
	const struct example *ex = ctx;
	const char *live;
	struct world w;
	int rc = world_open(ex, req, 0, &w, diag);

	if (rc != MAILMODE_OK)
		return rc;
	*report = report_json(ex, &w, req->domain);
	live = live_route(&w, req->domain);
	if (!live || strcmp(live, w.route) != 0) {
		ex->host->diag_set(diag, MAILMODE_SEV_ERROR, 1, "%s: route is %s, expected %s",
		                   req->domain, live ? live : "(none)", w.route);
		ex->host->diag_append(diag, "world file: %s", w.path);
		rc = MAILMODE_ERR_NOT_READY;
	} else if (!entry_ready(&w, req->domain)) {
		ex->host->diag_set(diag, MAILMODE_SEV_WARNING, 1, "%s: route %s is not ready yet",
		                   req->domain, w.route);
		rc = MAILMODE_ERR_NOT_READY;
	}
	world_close(&w);
	return rc;
}

static int example_teardown(void *ctx, const struct mailmode_request *req,
                            struct mailmode_diag *diag)
{
	const struct example *ex = ctx;
	cJSON *receipt = req->receipt ? cJSON_Parse(req->receipt) : NULL;
	const char *live, *saved;
	struct world w;
	int rc = world_open(ex, req, 1, &w, diag);

	if (rc != MAILMODE_OK)
		goto out_receipt;
	live = live_route(&w, req->domain);
	saved = saved_route(receipt);
	if (live == saved || (live && saved && strcmp(live, saved) == 0))
		goto out;   /* already torn down */
	if ((!live || strcmp(live, w.route) != 0) && !(req->flags & MAILMODE_REQ_FORCE)) {
		ex->host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		                   "%s: route is %s, neither this mode's %s nor the saved %s: refusing (drift; --force restores)",
		                   req->domain, live ? live : "(none)", w.route, saved ? saved : "(none)");
		rc = MAILMODE_ERR_CONFLICT;
		goto out;
	}
	rc = set_route(&w, req->domain, saved) == 0 ? world_save(ex, &w, diag) : MAILMODE_ERR_NOMEM;
out:
	world_close(&w);
out_receipt:
	cJSON_Delete(receipt);
	return rc;
}

/* ABI 1.2: the keys read above, so that mailmode refuses a misspelt one.
 * (Guarded: the ABI test builds this file against the v1.0 header too.) */
#if MAILMODE_ABI_MINOR >= 2
static const struct mailmode_config_key example_keys[] = {
	{ "profile", KEY_WORLD, MAILMODE_KEY_PATH, NULL,
	  "the world file (relative: to the config file)" },
	{ "profile", KEY_ROUTE, MAILMODE_KEY_STRING, EXAMPLE_MODE_NAME, "the route this mode sets" },
	{ NULL, NULL, MAILMODE_KEY_STRING, NULL, NULL }
};

static const struct mailmode_config_key *example_config_keys(void)
{
	return example_keys;
}
#define EXAMPLE_CONFIG_KEYS .config_keys = example_config_keys,
#else
#define EXAMPLE_CONFIG_KEYS
#endif

MAILMODE_PLUGIN_DEFINE(
	.name = EXAMPLE_MODE_NAME,
	.description = "example mode: routes kept in a JSON file (no network)",
	.version = "1.0",
	.caps = MAILMODE_CAP_THREADSAFE | MAILMODE_CAP_ADOPT | MAILMODE_CAP_FORCE,
	EXAMPLE_CONFIG_KEYS
	.init = example_init,
	.fini = example_fini,
	.validate_config = example_validate,
	.observe = example_observe,
	.plan = example_plan,
	.setup = example_setup,
	.verify = example_verify,
	.teardown = example_teardown);
