/*
 * JSON over HTTPS through the host (see https.h).
 */
#include "https.h"

#include <cjson/cJSON.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GET_TRIES 3
#define GET_PAUSE_MS 1000

int gw_https_open(struct gw_op *op, struct gw_https *https)
{
	const struct mailmode_host *host = op->ctx->host;

	memset(https, 0, sizeof(*https));
	https->op = op;
	if (op->cfg->ca_file[0]) {
		https->ca_file = host->config_path(host->handle, op->cfg->ca_file);
		if (!https->ca_file)
			return MAILMODE_ERR_NOMEM;
	}
	https->session = host->http_session_new(host->handle);
	return https->session ? MAILMODE_OK : MAILMODE_ERR_NOMEM;
}

static void wipe_auth(struct gw_https *https)
{
	if (!https->auth)
		return;
	explicit_bzero(https->auth, strlen(https->auth));
	free(https->auth);
	https->auth = NULL;
}

int gw_https_set_bearer(struct gw_https *https, const char *token)
{
	size_t len = strlen(token) + sizeof("Authorization: Bearer ");

	wipe_auth(https);
	https->auth = malloc(len);
	if (!https->auth)
		return MAILMODE_ERR_NOMEM;
	snprintf(https->auth, len, "Authorization: Bearer %s", token);
	return MAILMODE_OK;
}

const char *gw_https_bearer(const struct gw_https *https)
{
	return https->auth ? https->auth + strlen("Authorization: Bearer ") : NULL;
}

static void wipe_string(const char **s)
{
	char *p = (char *)*s;

	if (p) {
		explicit_bzero(p, strlen(p));
		free(p);
	}
	*s = NULL;
}

static void wipe_sigv4(struct gw_https *https)
{
	wipe_string(&https->sigv4.aws_sigv4);
	wipe_string(&https->sigv4.aws_access_key_id);
	wipe_string(&https->sigv4.aws_secret_access_key);
	wipe_string(&https->sigv4.aws_session_token);
}

int gw_https_set_sigv4(struct gw_https *https, const char *provider,
                       const char *key_id, const char *secret,
                       const char *session_token, struct mailmode_diag *diag)
{
	const struct mailmode_host *host = https->op->ctx->host;
	struct mailmode_http_options *o = &https->sigv4;

	if (host->struct_size < offsetof(struct mailmode_host, http_request_opts) +
	                        sizeof(host->http_request_opts) ||
	    !host->http_request_opts) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "this mailmode (plugin ABI "
		               "%u.%u) cannot sign AWS requests: Route 53 needs ABI 1.4",
		               host->abi_major, host->abi_minor);
		return MAILMODE_ERR_CONFIG;
	}
	wipe_sigv4(https);
	o->struct_size = sizeof(*o);
	o->aws_sigv4 = strdup(provider);
	o->aws_access_key_id = strdup(key_id);
	o->aws_secret_access_key = strdup(secret);
	o->aws_session_token = session_token ? strdup(session_token) : NULL;
	if (!o->aws_sigv4 || !o->aws_access_key_id || !o->aws_secret_access_key ||
	    (session_token && !o->aws_session_token)) {
		wipe_sigv4(https);
		return MAILMODE_ERR_NOMEM;
	}
	return MAILMODE_OK;
}

void gw_https_close(struct gw_https *https)
{
	const struct mailmode_host *host;

	if (!https->op)
		return;
	host = https->op->ctx->host;
	wipe_auth(https);
	wipe_sigv4(https);
	if (https->session)
		host->http_session_free(host->handle, https->session);
	host->free(https->ca_file);
	memset(https, 0, sizeof(*https));
}

void gw_https_answer_free(struct gw_https_answer *answer)
{
	cJSON_Delete(answer->json);
	answer->json = NULL;
	free(answer->text);
	answer->text = NULL;
}

static int call_once(struct gw_https *https, const char *method,
                     const char *url, const char *content_type,
                     const char *body, struct gw_https_answer *answer,
                     char *why, size_t why_len)
{
	struct gw_op *op = https->op;
	const struct mailmode_host *host = op->ctx->host;
	struct mailmode_diag scratch = { 0 };
	struct mailmode_http_response resp = { 0 };
	char type_header[128], accept_header[128];
	const char *headers[5];
	size_t n = 0;
	int rc;

	snprintf(accept_header, sizeof(accept_header), "Accept: %s",
	         https->accept ? https->accept : "application/json");
	headers[n++] = accept_header;
	if (body) {
		snprintf(type_header, sizeof(type_header), "Content-Type: %s",
		         content_type ? content_type : "application/json");
		headers[n++] = type_header;
	}
	if (https->auth)
		headers[n++] = https->auth;
	if (https->condition)
		headers[n++] = https->condition;
	headers[n] = NULL;
	struct mailmode_http_request req = {
		.method = method,
		.url = url,
		.headers = headers,
		.body = body,
		.body_len = body ? strlen(body) : 0,
		.ca_file = https->ca_file,
		.timeout_ms = (long)op->cfg->timeout_s * 1000,
	};
	if (https->sigv4.aws_sigv4)
		rc = host->http_request_opts(host->handle, https->session, &req,
		                             &https->sigv4, &resp, &scratch);
	else
		rc = host->http_request(host->handle, https->session, &req, &resp,
		                        &scratch);
	/* Counted with or without an answer: the seam needs to know that
	 * an earlier attempt went out. */
	if (strcmp(method, "GET") != 0 && !https->token_endpoint)
		op->write_attempts = resp.attempts;
	if (rc != MAILMODE_OK) {
		snprintf(why, why_len, "%s", scratch.summary[0] ? scratch.summary
		                                                : "no answer");
		goto out;
	}
	answer->status = resp.status;
	answer->attempts = resp.attempts;
	answer->json = resp.body ? cJSON_Parse(resp.body) : NULL;
	answer->text = resp.body ? strdup(resp.body) : NULL;
	if (resp.body && !answer->text) {
		gw_https_answer_free(answer);
		rc = MAILMODE_ERR_NOMEM;
	}
out:
	host->http_response_free(host->handle, &resp);
	return rc;
}

int gw_https_call(struct gw_https *https, const char *method, const char *url,
                  const char *content_type, const char *body,
                  struct gw_https_answer *answer, char *why, size_t why_len)
{
	const struct mailmode_host *host = https->op->ctx->host;
	bool idempotent = strcmp(method, "GET") == 0;
	int tries = 0, rc;

	memset(answer, 0, sizeof(*answer));
	for (;;) {
		rc = call_once(https, method, url, content_type, body, answer, why,
		               why_len);
		if (rc != MAILMODE_OK || !idempotent || ++tries >= GET_TRIES ||
		    (answer->status != 500 && answer->status != 502))
			return rc;
		gw_https_answer_free(answer);
		host->sleep_ms(host->handle, GET_PAUSE_MS);
	}
}

int gw_https_api_call(struct gw_https *https, const char *who,
                      const char *method, const char *path,
                      const char *content_type, const char *body,
                      const char *what, struct gw_https_answer *answer)
{
	const struct gw_op *op = https->op;
	char url[GW_URL_MAX * 3], why[MAILMODE_DIAG_SUMMARY_MAX / 2];
	int rc;

	if (strncmp(path, "https://", 8) == 0)
		snprintf(url, sizeof(url), "%s", path);
	else
		snprintf(url, sizeof(url), "%s%s", op->cfg->api_url, path);
	rc = gw_https_call(https, method, url, content_type, body, answer, why,
	                   sizeof(why));
	if (rc != MAILMODE_OK)
		op->ctx->host->diag_set(op->diag, MAILMODE_SEV_ERROR, 1, "no answer "
		                        "from %s (%s) to %s: %s", who,
		                        op->cfg->api_url, what, why);
	return rc;
}

int gw_https_escape(char *url, size_t len, const char *text)
{
	size_t used = strlen(url);
	const unsigned char *p;

	for (p = (const unsigned char *)text; *p; p++) {
		bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		             (*p >= '0' && *p <= '9') || strchr("-._~", *p);

		if (used + (plain ? 1 : 3) + 1 > len)
			return MAILMODE_ERR_FAILED;
		if (plain)
			url[used++] = (char)*p;
		else
			used += (size_t)snprintf(url + used, len - used, "%%%02X", *p);
	}
	url[used] = '\0';
	return MAILMODE_OK;
}
