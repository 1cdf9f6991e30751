/*
 * Exchange Online admin API client: the InvokeCommand transport the
 * ExchangeOnlineManagement module itself uses (see m365-admin-api.md).
 *
 *   POST {api_url}/adminapi/beta/{tenant}/InvokeCommand
 *   {"CmdletInput":{"CmdletName":"Get-X","Parameters":{...}}}
 *
 * Paging: the same body is POSTed again to @odata.nextLink, with a new
 * client-request-id and the same connection-id.  Warnings arrive in
 * @adminapi.warnings.  A failed cmdlet answers 4xx with
 * error.details[0].message = "ErrId|ExceptionType|Text".  408/429/503/504
 * are retried by the host within the request's budget (each attempt with a
 * new client-request-id); a throttle that comes as text in another status
 * is retried here, within the same budget.
 */
#include "ms.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The arbitration mailbox the module anchors app-only calls on. */
#define ANCHOR_MAILBOX "SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}"
#define THROTTLE_TEXT "maximum number of concurrent requests"
#define DEFAULT_RETRY_BUDGET_MS 120000
/* A runaway nextLink chain must end: 1000 pages of up to 1000 objects. */
#define MAX_PAGES 1000

/* ------------------------------------------------------------------ */
/* The tenant's connection */

int ms_session_init(const struct mailmode_host *host, struct ms_session *session)
{
	memset(session, 0, sizeof(*session));
	session->http = host->http_session_new(host->handle);
	if (!session->http || ms_guid(session->connection_id) != 0) {
		ms_session_free(host, session);
		return MAILMODE_ERR_NOMEM;
	}
	return MAILMODE_OK;
}

void ms_session_free(const struct mailmode_host *host, struct ms_session *session)
{
	if (session->http)
		host->http_session_free(host->handle, session->http);
	ms_token_forget(&session->token);
	memset(session, 0, sizeof(*session));
}

/* ------------------------------------------------------------------ */
/* Error classes */

static int contains(const char *haystack, const char *needle)
{
	size_t n = strlen(needle);

	for (; *haystack; haystack++)
		if (strncasecmp(haystack, needle, n) == 0)
			return 1;
	return 0;
}

int ms_exo_error_not_found(const struct ms_exo_error *err)
{
	return err->status == 404 ||
	       contains(err->type, "NotFoundException") ||
	       contains(err->text, "couldn't be found") ||
	       contains(err->text, "could not be found");
}

int ms_exo_error_exists(const struct ms_exo_error *err)
{
	return contains(err->type, "AlreadyExists") ||
	       contains(err->type, "DuplicateObject") ||
	       contains(err->text, "already exists");
}

int ms_exo_error_dehydrated(const struct ms_exo_error *err)
{
	return contains(err->type, "Dehydrated") ||
	       contains(err->text, "Enable-OrganizationCustomization");
}

int ms_exo_error_inbound_restricted(const struct ms_exo_error *err)
{
	/* Microsoft words it several ways; all say the subscription can't
	 * have inbound connectors. */
	return contains(err->text, "inbound connector") &&
	       (contains(err->text, "not allowed") ||
	        contains(err->text, "isn't allowed") ||
	        contains(err->text, "not supported") ||
	        contains(err->text, "isn't supported") ||
	        contains(err->text, "restricted") ||
	        contains(err->text, "can't be created") ||
	        contains(err->text, "cannot be created"));
}

/* ------------------------------------------------------------------ */
/* Requests */

/* The Authorization header holds the bearer token: wiped before free. */
static void free_secret(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

/* "https://host:port" of a URL, for checking where nextLink points. */
static size_t origin_len(const char *url)
{
	const char *p = strstr(url, "://");

	if (!p)
		return 0;
	p += 3;
	return (size_t)(p - url) + strcspn(p, "/?#");
}

/* The value of header `name` in a raw header block, or NULL. */
static char *header_value(const char *headers, const char *name)
{
	size_t n = strlen(name);
	const char *line = headers;

	if (!headers)
		return NULL;
	while (*line) {
		const char *end = line + strcspn(line, "\r\n");

		if ((size_t)(end - line) > n && strncasecmp(line, name, n) == 0 &&
		    line[n] == ':') {
			const char *v = line + n + 1;

			while (v < end && (*v == ' ' || *v == '\t'))
				v++;
			return ms_printf("%.*s", (int)(end - v), v);
		}
		line = end;
		while (*line == '\r' || *line == '\n')
			line++;
	}
	return NULL;
}

/* The reason="..." of an x-ms-diagnostics or WWW-Authenticate header (what
 * the service says is missing), else the whole header. */
static void diagnostics_reason(const char *header, char *out, size_t size)
{
	const char *reason = strstr(header, "reason=\"");
	const char *end = reason ? strchr(reason + 8, '"') : NULL;

	if (reason && end)
		snprintf(out, size, "%.*s", (int)(end - reason - 8), reason + 8);
	else
		snprintf(out, size, "%s", header);
}

/* The object a cmdlet is about, for messages: Identity or Name. */
static const char *params_subject(const cJSON *params)
{
	const char *subject = ms_field_str(params, "Identity");

	return subject ? subject : ms_field_str(params, "Name");
}

static int is_write_cmdlet(const char *cmdlet)
{
	return strncmp(cmdlet, "Get-", 4) != 0;
}

/* Fills err and diag from a failed answer. */
static int map_error(struct ms_exo *exo, const char *cmdlet,
                     const cJSON *params,
                     const struct mailmode_http_response *resp,
                     struct ms_exo_error *err, struct mailmode_diag *diag)
{
	const struct mailmode_host *host = exo->host;
	cJSON *body = cJSON_Parse(resp->body ? resp->body : "");
	const cJSON *error = cJSON_GetObjectItem(body, "error");
	const cJSON *details = cJSON_GetObjectItem(error, "details");
	const cJSON *inner = cJSON_GetObjectItem(error, "innererror");
	const cJSON *internal = cJSON_GetObjectItem(inner, "internalexception");
	const char *message = NULL;
	const char *subject = params_subject(params);
	char *auth_header = NULL;
	int rc;

	memset(err, 0, sizeof(*err));
	err->status = resp->status;
	if (cJSON_IsArray(details) && cJSON_GetArraySize(details) > 0)
		message = ms_field_str(cJSON_GetArrayItem(details, 0), "message");
	if (message) {
		/* ErrId|ExceptionType|Text; the text may hold '|' itself. */
		const char *bar1 = strchr(message, '|');
		const char *bar2 = bar1 ? strchr(bar1 + 1, '|') : NULL;

		if (bar1 && bar2) {
			snprintf(err->errid, sizeof(err->errid), "%.*s",
			         (int)(bar1 - message), message);
			snprintf(err->type, sizeof(err->type), "%.*s",
			         (int)(bar2 - bar1 - 1), bar1 + 1);
			snprintf(err->text, sizeof(err->text), "%s", bar2 + 1);
		} else {
			snprintf(err->text, sizeof(err->text), "%s", message);
		}
	} else if ((message = ms_field_str(error, "message")) != NULL) {
		snprintf(err->text, sizeof(err->text), "%s", message);
	} else if (resp->body && resp->body_len > 0 && !body) {
		snprintf(err->text, sizeof(err->text), "%.300s", resp->body);
	}
	if (resp->status == 401)
		auth_header = header_value(resp->headers, "WWW-Authenticate");
	else if (resp->status == 403)
		auth_header = header_value(resp->headers, "x-ms-diagnostics");
	if (!err->text[0] && auth_header)
		diagnostics_reason(auth_header, err->text, sizeof(err->text));
	if (!err->text[0])
		snprintf(err->text, sizeof(err->text), "HTTP %ld", resp->status);

	host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "%s%s%s%s failed in tenant %s: %.*s",
	               cmdlet, subject ? " '" : "", subject ? subject : "",
	               subject ? "'" : "", exo->app->tenant,
	               (int)strcspn(err->text, "\r\n"), err->text);
	host->diag_append(diag, "HTTP status: %ld", resp->status);
	if (err->errid[0])
		host->diag_append(diag, "ErrId: %s", err->errid);
	if (err->type[0])
		host->diag_append(diag, "ExceptionType: %s", err->type);
	if (strcspn(err->text, "\r\n") != strlen(err->text))
		host->diag_append(diag, "Text: %s", err->text);
	if (ms_field_str(internal, "message"))
		host->diag_append(diag, "InternalException: %s",
		                  ms_field_str(internal, "message"));
	if (auth_header)
		host->diag_append(diag, "%s: %s",
		                  resp->status == 401 ? "WWW-Authenticate"
		                                      : "x-ms-diagnostics",
		                  auth_header);

	if (resp->status == 401 || resp->status == 403) {
		host->diag_append(diag, "the app needs the Exchange.ManageAsApp permission (admin consent) and the Exchange Administrator role; new grants can take a while to apply");
		rc = MAILMODE_ERR_DENIED;
	} else if (resp->status == 429 || resp->status == 503) {
		/* Refused before the cmdlet ran. */
		host->diag_append(diag, "still throttled or unavailable after %d attempt(s)",
		                  resp->attempts);
		diag->retryable = 1;
		rc = MAILMODE_ERR_FAILED;
	} else if (resp->status >= 500 || resp->status == 408) {
		/* A gateway timeout or a server error: the backend may have
		 * acted all the same. */
		diag->retryable = 1;
		rc = MAILMODE_ERR_FAILED;
		if (is_write_cmdlet(cmdlet)) {
			host->diag_set(diag, MAILMODE_SEV_ERROR, 1,
			               "%s%s%s%s in tenant %s: outcome unknown, the change may or may not have been made (HTTP %ld: %.*s)",
			               cmdlet, subject ? " '" : "", subject ? subject : "",
			               subject ? "'" : "", exo->app->tenant, resp->status,
			               (int)strcspn(err->text, "\r\n"), err->text);
			rc = MAILMODE_ERR_UNKNOWN;
		}
	} else {
		rc = MAILMODE_ERR_FAILED;
	}
	free(auth_header);
	cJSON_Delete(body);
	return rc;
}

/* Appends the page's objects to all and its warnings to exo->warnings;
 * *next is the nextLink (copy) or NULL. */
static int take_page(struct ms_exo *exo, const char *cmdlet, cJSON *page,
                     cJSON *all, char **next, struct mailmode_diag *diag)
{
	const struct mailmode_host *host = exo->host;
	cJSON *value = cJSON_GetObjectItemCaseSensitive(page, "value");
	const cJSON *warnings = cJSON_GetObjectItemCaseSensitive(page, "@adminapi.warnings");
	const cJSON *link = cJSON_GetObjectItemCaseSensitive(page, "@odata.nextLink");
	const cJSON *warning;

	*next = NULL;
	if (cJSON_IsArray(value)) {
		while (value->child) {
			cJSON *item = cJSON_DetachItemViaPointer(value, value->child);

			cJSON_AddItemToArray(all, item);
		}
	} else if (value && !cJSON_IsNull(value)) {
		/* One object in place of a collection. */
		cJSON_AddItemToArray(all, cJSON_DetachItemViaPointer(page, value));
	}
	if (cJSON_IsArray(warnings)) {
		cJSON_ArrayForEach(warning, warnings) {
			if (!cJSON_IsString(warning) || !*warning->valuestring)
				continue;
			host->log(host->handle, MAILMODE_LOG_WARNING,
			          "%s: %s", cmdlet, warning->valuestring);
			ms_buf_addf(&exo->warnings, "%s: %s\n", cmdlet,
			            warning->valuestring);
		}
	} else if (cJSON_IsString(warnings) && *warnings->valuestring) {
		ms_buf_addf(&exo->warnings, "%s: %s\n", cmdlet, warnings->valuestring);
	}
	if (cJSON_IsString(link) && *link->valuestring) {
		*next = ms_strdup(link->valuestring);
		if (!*next) {
			host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
			return MAILMODE_ERR_NOMEM;
		}
	}
	return MAILMODE_OK;
}

/* The request headers of one cmdlet call; auth, request_id and anchor are
 * made anew for each request. */
struct call_headers {
	char *auth, *cmdlet, *anchor, *request_id, *connection;
	const char *list[12];
};

static void call_headers_free(struct call_headers *h)
{
	free_secret(h->auth);
	free(h->cmdlet);
	free(h->anchor);
	free(h->request_id);
	free(h->connection);
}

/* X-AnchorMailbox routes the call to the tenant's arbitration mailbox: the
 * module's app-only form names the tenant by GUID, which the token's tid
 * gives when the app names the tenant by domain.  The older UPN form
 * is kept only for a token without tid. */
static char *anchor_header(const struct ms_exo *exo)
{
	const char *guid = exo->session->token.tid[0] ? exo->session->token.tid
	                 : ms_is_guid(exo->app->tenant) ? exo->app->tenant : NULL;

	return guid ? ms_printf("X-AnchorMailbox: APP:%s@%s", ANCHOR_MAILBOX, guid)
	            : ms_printf("X-AnchorMailbox: UPN:%s@%s", ANCHOR_MAILBOX,
	                        exo->app->tenant);
}

static int call_headers_set(const struct ms_exo *exo, struct call_headers *h,
                            const char *token)
{
	char request_id[37];

	free_secret(h->auth);
	free(h->request_id);
	free(h->anchor);
	h->auth = ms_printf("Authorization: Bearer %s", token);
	h->request_id = ms_guid(request_id) == 0
	              ? ms_printf("client-request-id: %s", request_id) : NULL;
	h->anchor = anchor_header(exo);
	if (!h->auth || !h->request_id || !h->anchor || !h->cmdlet || !h->connection)
		return -1;
	h->list[0] = h->auth;
	h->list[1] = "Content-Type: application/json";
	h->list[2] = "Accept: application/json";
	h->list[3] = h->cmdlet;
	h->list[4] = h->anchor;
	h->list[5] = "X-ResponseFormat: json";
	h->list[6] = "X-SerializationLevel: Partial";
	h->list[7] = "Prefer: odata.maxpagesize=1000";
	h->list[8] = h->request_id;
	h->list[9] = h->connection;
	h->list[10] = "X-ClientApplication: mailmode";
	h->list[11] = NULL;
	return 0;
}

/* The request did not get an answer.  The host's MAILMODE_ERR_FAILED means
 * nothing was sent (a certificate that did not verify); anything else may
 * have reached the service, so a write's outcome is unknown. */
static int no_answer(struct ms_exo *exo, const char *cmdlet, int rc,
                     struct mailmode_diag *diag)
{
	const struct mailmode_host *host = exo->host;
	char cause[MAILMODE_DIAG_SUMMARY_MAX];

	if (rc == MAILMODE_ERR_FAILED) {
		ms_not_sent(host, exo->app, cmdlet, diag);
		return rc;
	}
	snprintf(cause, sizeof(cause), "%s", diag->summary);
	host->diag_set(diag, MAILMODE_SEV_ERROR, 1,
	               "%s: no answer from the admin API of tenant %s%s",
	               cmdlet, exo->app->tenant,
	               is_write_cmdlet(cmdlet) ? " (the change may or may not have been made)" : "");
	host->diag_append(diag, "%s", cause);
	return is_write_cmdlet(cmdlet) ? MAILMODE_ERR_UNKNOWN : rc;
}

/* The InvokeCommand body of the cmdlet. */
static char *invoke_body(const char *cmdlet, const cJSON *params)
{
	cJSON *body = cJSON_CreateObject();
	cJSON *input = cJSON_AddObjectToObject(body, "CmdletInput");
	char *text = NULL;

	if (input && cJSON_AddStringToObject(input, "CmdletName", cmdlet) &&
	    cJSON_AddItemToObject(input, "Parameters",
	                          params ? cJSON_Duplicate(params, 1) : cJSON_CreateObject()))
		text = cJSON_PrintUnformatted(body);
	cJSON_Delete(body);
	return text;
}

/* The nextLink may be followed: the bearer token goes wherever it points,
 * so only to the admin API's own origin, and a chain must end. */
static int next_allowed(struct ms_exo *exo, const char *cmdlet, const char *next,
                        const char *first_url, int pages, struct mailmode_diag *diag)
{
	const struct mailmode_host *host = exo->host;

	if (origin_len(next) != origin_len(first_url) ||
	    strncasecmp(next, first_url, origin_len(first_url)) != 0) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "%s: @odata.nextLink points outside %s: %s",
		               cmdlet, exo->api_url, next);
		return 0;
	}
	if (pages >= MAX_PAGES) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "%s: more than %d pages; giving up", cmdlet, MAX_PAGES);
		return 0;
	}
	return 1;
}

int ms_exo_invoke(struct ms_exo *exo, const char *cmdlet, const cJSON *params,
                  cJSON **value, struct ms_exo_error *err,
                  struct mailmode_diag *diag)
{
	const struct ms_app *app = exo->app;
	const struct mailmode_host *host = exo->host;
	struct ms_exo_error local_err;
	struct mailmode_http_request req = { 0 };
	struct mailmode_http_response resp = { 0 };
	struct call_headers h = { 0 };
	cJSON *all = NULL, *page = NULL;
	char *body_text = NULL, *first_url = NULL, *url = NULL, *next = NULL;
	const char *token;
	long budget_ms = app->retry_budget_ms > 0 ? app->retry_budget_ms
	                                              : DEFAULT_RETRY_BUDGET_MS;
	int64_t started = host->clock_mono_ms(host->handle);
	int64_t throttle_wait_ms = 2000;
	int have_response = 0, reauthenticated = 0, pages = 0;
	int rc = MAILMODE_ERR_NOMEM;

	if (!err)
		err = &local_err;
	memset(err, 0, sizeof(*err));
	*value = NULL;

	body_text = invoke_body(cmdlet, params);
	all = cJSON_CreateArray();
	first_url = ms_printf("%s/adminapi/beta/%s/InvokeCommand",
	                      exo->api_url, app->tenant);
	h.cmdlet = ms_printf("X-CmdletName: %s", cmdlet);
	h.connection = ms_printf("connection-id: %s", exo->session->connection_id);
	url = ms_strdup(first_url);
	if (!body_text || !all || !first_url || !url)
		goto nomem;

	for (;;) {
		rc = ms_token_get(host, exo->session->http, exo->app,
		                  &exo->session->token, &token, diag);
		if (rc != MAILMODE_OK)
			goto out;
		if (call_headers_set(exo, &h, token) != 0)
			goto nomem;

		req.method = "POST";
		req.url = url;
		req.headers = h.list;
		req.body = body_text;
		req.body_len = strlen(body_text);
		req.ca_file = app->ca_file;
		req.timeout_ms = app->timeout_ms;
		req.retry_budget_ms = budget_ms - (long)(host->clock_mono_ms(host->handle) - started);
		if (req.retry_budget_ms <= 0)
			req.retry_budget_ms = -1;
		if (have_response) {
			host->http_response_free(host->handle, &resp);
			have_response = 0;
		}
		host->log(host->handle, MAILMODE_LOG_DEBUG, "%s%s (tenant %s)",
		          cmdlet, pages ? " next page" : "", app->tenant);
		exo->calls++;
		rc = host->http_request(host->handle, exo->session->http, &req,
		                        &resp, diag);
		if (rc != MAILMODE_OK) {
			rc = no_answer(exo, cmdlet, rc, diag);
			goto out;
		}
		have_response = 1;
		exo->calls += resp.attempts > 1 ? resp.attempts - 1 : 0;

		if (resp.status == 401 && !reauthenticated) {
			/* The token may have been revoked or rolled: once more
			 * with a fresh one. */
			ms_token_forget(&exo->session->token);
			reauthenticated = 1;
			continue;
		}
		if (resp.status != 200 && resp.body && strstr(resp.body, THROTTLE_TEXT) &&
		    host->clock_mono_ms(host->handle) - started + throttle_wait_ms < budget_ms) {
			host->progress(host->handle, "%s: tenant %s is throttling, waiting %lld ms",
			               cmdlet, app->tenant, (long long)throttle_wait_ms);
			host->sleep_ms(host->handle, throttle_wait_ms);
			throttle_wait_ms *= 2;
			continue;
		}
		if (resp.status != 200) {
			rc = map_error(exo, cmdlet, params, &resp, err, diag);
			if (pages > 0)
				host->diag_append(diag, "while following @odata.nextLink (page %d)",
				                  pages + 1);
			goto out;
		}
		cJSON_Delete(page);
		page = cJSON_Parse(resp.body ? resp.body : "");
		if (!cJSON_IsObject(page)) {
			host->diag_set(diag, MAILMODE_SEV_ERROR, 1,
			               "%s: the admin API of tenant %s answered with no JSON object",
			               cmdlet, app->tenant);
			rc = is_write_cmdlet(cmdlet) ? MAILMODE_ERR_UNKNOWN : MAILMODE_ERR_FAILED;
			goto out;
		}
		free(next);
		rc = take_page(exo, cmdlet, page, all, &next, diag);
		if (rc != MAILMODE_OK)
			goto out;
		pages++;
		if (!next)
			break;
		if (!next_allowed(exo, cmdlet, next, first_url, pages, diag)) {
			rc = MAILMODE_ERR_FAILED;
			goto out;
		}
		free(url);
		url = next;
		next = NULL;
		reauthenticated = 0;
	}
	*value = all;
	all = NULL;
	rc = MAILMODE_OK;
	goto out;
nomem:
	host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory calling %s", cmdlet);
	rc = MAILMODE_ERR_NOMEM;
out:
	if (have_response)
		host->http_response_free(host->handle, &resp);
	cJSON_Delete(page);
	cJSON_Delete(all);
	free(body_text);
	free(first_url);
	free(url);
	free(next);
	call_headers_free(&h);
	return rc;
}
