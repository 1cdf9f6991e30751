/* tenant login|logout|consent-url NAME: the sign-in of a [tenant NAME].
 *
 * login runs the device authorization grant (RFC 8628, lib/ms) in this
 * process with the core's own host table: the person opens the URL and
 * enters the code, the refresh token lands in the token cache
 * (tokencache.c), where the plugins' helpers find it through the same
 * host service.  logout removes the entry.  consent-url prints the URL an
 * admin of the customer tenant opens to consent to the app (app-only
 * sign-in, one multitenant app for many tenants).  mailmode.conf(5),
 * SIGNING IN; doc/ms-client.md. */
#include "cli.h"
#include "http.h"
#include "tokencache.h"

#include "ms/ms.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct tenant_conf {
	char section[512];              /* "tenant NAME" */
	const char *name;
	enum ms_auth auth;
	const struct ms_cloud *cloud;
	char login_url[1024];           /* no trailing slash */
	char ca_file[4096];
	struct ms_app app;
};

/* What the commands need of [tenant NAME]; the mailflow plugin reads the
 * same keys (modes/mailflow/config.c) and both take auth and cloud from
 * lib/ms (ms_signin_keys). */
static int tenant_conf_read(struct mm_ctx *ctx, struct mm_host_ctx *host, const char *name,
                            struct tenant_conf *t)
{
	const char *tenant, *client_id, *login_url, *ca_file;
	struct mailmode_diag diag = { 0 };
	size_t len;

	memset(t, 0, sizeof(*t));
	t->name = name;
	snprintf(t->section, sizeof(t->section), "tenant %s", name);
	if (!mm_config_has_section(ctx->config, t->section))
		return mm_fail(ctx, MM_ERR, "tenant %s: no [%s] section in %s", name, t->section,
		               mm_config_path(ctx->config));
	if (ms_signin_keys(&host->table, t->section, &t->auth, &t->cloud, &diag) != MAILMODE_OK)
		return mm_fail_diag(ctx, MM_ERR, &diag);
	tenant = mm_config_get(ctx->config, t->section, "tenant");
	client_id = mm_config_get(ctx->config, t->section, "client_id");
	login_url = mm_config_get(ctx->config, t->section, "login_url");
	ca_file = mm_config_get(ctx->config, t->section, "ca_file");
	if (!client_id || !*client_id)
		client_id = t->auth == MS_AUTH_DEVICE ? MS_DEVICE_CLIENT_ID : NULL;
	snprintf(t->login_url, sizeof(t->login_url), "%s",
	         login_url && *login_url ? login_url : t->cloud->login_url);
	len = strlen(t->login_url);
	while (len > 0 && t->login_url[len - 1] == '/')
		t->login_url[--len] = '\0';
	if (strncasecmp(t->login_url, "https://", 8) != 0)
		return mm_fail(ctx, MM_ERR, "[%s]: 'login_url' must be an https:// URL (tokens travel on it)",
		               t->section);
	if (ca_file && *ca_file)
		snprintf(t->ca_file, sizeof(t->ca_file), "%s%s%s",
		         ca_file[0] == '/' ? "" : mm_config_dir(ctx->config),
		         ca_file[0] == '/' ? "" : "/", ca_file);
	t->app = (struct ms_app){
		.section = t->section,
		.tenant = tenant && *tenant ? tenant : name,
		.client_id = client_id,
		.login_url = t->login_url,
		.scope = t->cloud->exo_scope,
		.ca_file = t->ca_file[0] ? t->ca_file : NULL,
		.token_cache = name,
	};
	return MM_OK;
}

/* The code and where to enter it, at once: the person is waiting.  With
 * --json it goes to stderr, stdout carrying the one JSON document. */
static void show_code(struct mm_ctx *ctx, const struct tenant_conf *t,
                      const struct ms_device_code *dc)
{
	FILE *f = ctx->output.json ? stderr : stdout;
	int64_t left_s = (dc->expires_at_ms - mm_host_wall_ms(NULL)) / 1000;

	mm_progress_end(&ctx->output);
	fprintf(f, "tenant %s: to sign in, open %s and enter the code %s (within %lld min)\n",
	        t->name, dc->verification_uri, dc->user_code, (long long)(left_s + 59) / 60);
	fflush(f);
}

static int tenant_login(struct mm_ctx *ctx, struct mm_host_ctx *host, struct tenant_conf *t)
{
	const struct mailmode_host *h = &host->table;
	struct mailmode_http_session *session = NULL;
	struct ms_device_code dc = { 0 };
	struct ms_token token = { 0 };
	struct mailmode_diag diag = { 0 };
	char path[4200];
	int rc;

	if (t->auth != MS_AUTH_DEVICE)
		return mm_fail(ctx, MM_ERR,
		               "tenant %s: auth = app signs in with the app's own credentials; set 'auth = device' in [%s] to sign in as a person",
		               t->name, t->section);
	if (mm_token_cache_path(t->name, path, sizeof(path), &diag) != MAILMODE_OK)
		return mm_fail_diag(ctx, MM_ERR, &diag);
	session = h->http_session_new(h->handle);
	if (!session)
		return mm_fail(ctx, MM_ERR, "out of memory");
	rc = ms_device_code_start(h, session, &t->app, &dc, &diag);
	if (rc == MAILMODE_OK) {
		show_code(ctx, t, &dc);
		rc = ms_device_code_poll(h, session, &t->app, &dc, &token, &diag);
	}
	mm_progress_end(&ctx->output);
	ms_device_code_free(&dc);
	ms_token_forget(&token);
	h->http_session_free(h->handle, session);
	if (rc != MAILMODE_OK)
		return mm_fail_diag(ctx, MM_ERR, &diag);
	if (!ctx->output.json)
		printf("tenant %s: signed in; the refresh token is kept in %s\n", t->name, path);
	cJSON_AddStringToObject(ctx->doc, "token_cache", path);
	return MM_OK;
}

static int tenant_logout(struct mm_ctx *ctx, struct mm_host_ctx *host, struct tenant_conf *t)
{
	struct mailmode_diag diag = { 0 };
	char path[4200], *text = NULL;
	int had;

	if (mm_token_cache_path(t->name, path, sizeof(path), &diag) != MAILMODE_OK ||
	    mm_token_cache_load(host, t->name, &text, &diag) != MAILMODE_OK)
		return mm_fail_diag(ctx, MM_ERR, &diag);
	had = text != NULL;
	host->table.secret_free(host, text);
	if (mm_token_cache_store(host, t->name, NULL, &diag) != MAILMODE_OK)
		return mm_fail_diag(ctx, MM_ERR, &diag);
	if (!ctx->output.json)
		printf(had ? "tenant %s: signed out (removed %s)\n" : "tenant %s: was not signed in\n",
		       t->name, path);
	cJSON_AddBoolToObject(ctx->doc, "removed", had);
	return MM_OK;
}

static int tenant_consent_url(struct mm_ctx *ctx, struct tenant_conf *t)
{
	const char *redirect = mm_config_get(ctx->config, t->section, "redirect_uri");
	char *url;

	if (!t->app.client_id)
		return mm_fail(ctx, MM_ERR, "[%s]: missing key 'client_id' (the app to consent to)",
		               t->section);
	url = ms_admin_consent_url(&t->app, redirect && *redirect ? redirect : NULL);
	if (!url)
		return mm_fail(ctx, MM_ERR, "out of memory");
	if (!ctx->output.json)
		printf("%s\n", url);
	cJSON_AddStringToObject(ctx->doc, "url", url);
	free(url);
	return MM_OK;
}

int mm_cmd_tenant(struct mm_ctx *ctx)
{
	const char *action = ctx->args.positional[0], *name = ctx->args.positional[1];
	struct mm_host_ctx host;
	struct tenant_conf t;
	int rc;

	if (strcmp(action, "login") != 0 && strcmp(action, "logout") != 0 &&
	    strcmp(action, "consent-url") != 0)
		return mm_fail(ctx, MM_USAGE, "tenant: unknown action '%s' (login, logout or consent-url)",
		               action);
	mm_host_init(&host, ctx->config, &ctx->output, "tenant");
	rc = tenant_conf_read(ctx, &host, name, &t);
	if (rc != MM_OK)
		return rc;
	cJSON_AddStringToObject(ctx->doc, "tenant", name);
	if (strcmp(action, "login") == 0)
		return tenant_login(ctx, &host, &t);
	if (strcmp(action, "logout") == 0)
		return tenant_logout(ctx, &host, &t);
	return tenant_consent_url(ctx, &t);
}
