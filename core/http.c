#include "http.h"

#include "host.h"

#include <curl/curl.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#define DEFAULT_TIMEOUT_MS 30000L
#define DEFAULT_RETRY_BUDGET_MS 120000L
#define FIRST_BACKOFF_MS 1000L
#define MAX_BACKOFF_MS 30000L

struct mailmode_http_session {
	CURL *curl;
};

/* Requests made on this thread: a runbook's reports count each domain's
 * API calls, and each domain runs on one thread at a time. */
static _Thread_local long requests_made;

long mm_http_requests_made(void)
{
	return requests_made;
}

void mm_http_requests_count(long n)
{
	requests_made += n;
}

struct growbuf {
	char *data;
	size_t len, cap;
};

int mm_http_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void mm_http_global_cleanup(void)
{
	curl_global_cleanup();
}

struct mailmode_http_session *mm_http_session_new(void *handle)
{
	struct mailmode_http_session *s = calloc(1, sizeof(*s));

	(void)handle;
	if (!s)
		return NULL;
	s->curl = curl_easy_init();
	if (!s->curl) {
		free(s);
		return NULL;
	}
	return s;
}

void mm_http_session_free(void *handle, struct mailmode_http_session *session)
{
	(void)handle;
	if (!session)
		return;
	curl_easy_cleanup(session->curl);
	free(session);
}

static int growbuf_add(struct growbuf *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *grown;

		while (cap < b->len + n + 1)
			cap *= 2;
		grown = realloc(b->data, cap);
		if (!grown)
			return -1;
		b->data = grown;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	return growbuf_add(arg, p, size * n) == 0 ? size * n : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct growbuf *b = arg;

	/* A new status line starts the headers of a new response (redirect,
	 * 100-continue): keep only the last block. */
	if (size * n >= 5 && strncmp(p, "HTTP/", 5) == 0)
		b->len = 0;
	return growbuf_add(b, p, size * n) == 0 ? size * n : 0;
}

/* Delta-seconds, at most a day: more digits than a long holds must not
 * saturate or wrap. */
static long delta_seconds(const char *digits)
{
	long secs;

	while (digits[0] == '0' && digits[1])
		digits++;
	if (strlen(digits) > 9)
		return MM_HTTP_RETRY_AFTER_MAX;
	secs = strtol(digits, NULL, 10);
	return secs > MM_HTTP_RETRY_AFTER_MAX ? MM_HTTP_RETRY_AFTER_MAX : secs;
}

long mm_http_retry_after(const char *headers, long now_epoch)
{
	const char *line = headers;

	while (line && *line) {
		const char *eol = strchr(line, '\n');

		if (strncasecmp(line, "Retry-After:", 12) == 0) {
			const char *v = line + 12;
			char value[64];
			size_t len;
			long secs;

			while (*v == ' ' || *v == '\t')
				v++;
			len = eol ? (size_t)(eol - v) : strlen(v);
			while (len && isspace((unsigned char)v[len - 1]))
				len--;
			if (len == 0 || len >= sizeof(value))
				return -1;
			memcpy(value, v, len);
			value[len] = '\0';
			/* Delta-seconds: any number of digits (RFC 9110); more than
			 * a day is taken as a day, so a huge value can neither wrap
			 * into "no wait" nor overflow the caller's milliseconds.
			 * The retry budget then decides. */
			if (strspn(value, "0123456789") == len)
				return delta_seconds(value);
			secs = (long)curl_getdate(value, NULL);
			if (secs < 0)
				return -1;
			return secs > now_epoch ? (secs - now_epoch > MM_HTTP_RETRY_AFTER_MAX
			                           ? MM_HTTP_RETRY_AFTER_MAX : secs - now_epoch) : 0;
		}
		line = eol ? eol + 1 : NULL;
	}
	return -1;
}

/* 408 as the module's clients do: the front end gave up waiting for the
 * request, so it is sent again like a throttle or an unavailable backend. */
static int is_retryable_status(long status)
{
	return status == 408 || status == 429 || status == 503 || status == 504;
}

#define REQUEST_ID_HEADER "client-request-id:"
#define REQUEST_ID_LINE_MAX (sizeof(REQUEST_ID_HEADER) + 1 + 36)

/* A random RFC 4122 version-4 GUID. */
static int make_guid(char out[37])
{
	unsigned char b[16];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return -1;
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37,
	         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	         b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
	         b[12], b[13], b[14], b[15]);
	return 0;
}

#define SECURITY_TOKEN_HEADER "X-Amz-Security-Token: "

/* Temporary AWS credentials: the session token travels as a header, which
 * libcurl's SigV4 signs with the others. */
static int security_token_header(struct curl_slist **headers, const char *token)
{
	size_t len = sizeof(SECURITY_TOKEN_HEADER) + strlen(token);
	char *line = malloc(len);
	struct curl_slist *grown;

	if (!line)
		return -1;
	snprintf(line, len, "%s%s", SECURITY_TOKEN_HEADER, token);
	grown = curl_slist_append(*headers, line);
	explicit_bzero(line, len);
	free(line);
	if (!grown)
		return -1;
	*headers = grown;
	return 0;
}

/* Frees the header list, wiping the session token's copy first. */
static void free_headers(struct curl_slist *headers)
{
	struct curl_slist *h;

	for (h = headers; h; h = h->next)
		if (strncmp(h->data, SECURITY_TOKEN_HEADER,
		            sizeof(SECURITY_TOKEN_HEADER) - 1) == 0)
			explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(headers);
}

/* The request's headers for one attempt.  A retry is a new request to the
 * service, so from the second attempt on a client-request-id header gets a
 * fresh GUID (Microsoft's services correlate each request by it). */
static int attempt_headers(const struct mailmode_http_request *req,
                           const struct mailmode_http_options *opts, int attempt,
                           struct curl_slist **out)
{
	struct curl_slist *headers = NULL;
	char line[REQUEST_ID_LINE_MAX], guid[37];
	size_t i;

	*out = NULL;
	if (opts && opts->aws_sigv4 && opts->aws_session_token &&
	    security_token_header(&headers, opts->aws_session_token) != 0)
		goto fail;
	for (i = 0; req->headers && req->headers[i]; i++) {
		const char *header = req->headers[i];
		struct curl_slist *grown;

		if (attempt > 1 &&
		    strncasecmp(header, REQUEST_ID_HEADER, strlen(REQUEST_ID_HEADER)) == 0) {
			if (make_guid(guid) != 0)
				goto fail;
			snprintf(line, sizeof(line), "%.*s %s", (int)strlen(REQUEST_ID_HEADER),
			         header, guid);
			header = line;
		}
		grown = curl_slist_append(headers, header);
		if (!grown)
			goto fail;
		headers = grown;
	}
	*out = headers;
	return 0;
fail:
	free_headers(headers);
	return -1;
}

/* A certificate that did not verify: the request never left, so the outcome
 * is known (nothing done), and the person needs the host and the trust
 * anchors it was checked against. */
static int is_tls_verify_error(CURLcode cc)
{
	return cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE ||
	       cc == CURLE_SSL_ISSUER_ERROR;
}

static void tls_error(struct mailmode_diag *diag, const struct mailmode_http_request *req,
                      CURLcode cc, const char *detail)
{
	CURLU *u = curl_url();
	char *host = NULL;

	if (u && curl_url_set(u, CURLUPART_URL, req->url, 0) == CURLUE_OK)
		curl_url_get(u, CURLUPART_HOST, &host, 0);
	mm_diag_set(diag, MAILMODE_SEV_ERROR, 0,
	            "TLS: the certificate of %s was not verified against %s%s: %s",
	            host ? host : req->url, req->ca_file ? "ca_file " : "",
	            req->ca_file ? req->ca_file : "the system trust store (no ca_file set)",
	            *detail ? detail : curl_easy_strerror(cc));
	curl_free(host);
	curl_url_cleanup(u);
}

/* SigV4 by libcurl (CURLOPT_AWS_SIGV4): it signs method, path, query,
 * the headers set and the body, and adds X-Amz-Date and Authorization. */
static CURLcode configure_sigv4(CURL *curl, const struct mailmode_http_options *opts)
{
	CURLcode rc;

	rc = curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, opts->aws_sigv4);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_USERNAME, opts->aws_access_key_id);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_PASSWORD, opts->aws_secret_access_key);
	return rc;
}

static int configure(CURL *curl, const struct mailmode_http_request *req,
                     const struct mailmode_http_options *opts,
                     struct curl_slist *headers, struct growbuf *body, struct growbuf *head,
                     char *errbuf)
{
	long timeout = req->timeout_ms > 0 ? req->timeout_ms : DEFAULT_TIMEOUT_MS;
	CURLcode rc = CURLE_OK;

	curl_easy_reset(curl);
	rc |= curl_easy_setopt(curl, CURLOPT_URL, req->url);
	rc |= curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req->method);
	if (req->body) {
		rc |= curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req->body);
		rc |= curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
	}
	rc |= curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	rc |= curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	rc |= curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
	if (req->ca_file)
		rc |= curl_easy_setopt(curl, CURLOPT_CAINFO, req->ca_file);
	rc |= curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout);
	rc |= curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, timeout < 10000 ? timeout : 10000L);
	rc |= curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	rc |= curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https,http");
	rc |= curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	rc |= curl_easy_setopt(curl, CURLOPT_WRITEDATA, body);
	rc |= curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
	rc |= curl_easy_setopt(curl, CURLOPT_HEADERDATA, head);
	rc |= curl_easy_setopt(curl, CURLOPT_USERAGENT, "mailmode/" PACKAGE_VERSION);
	rc |= curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	errbuf[0] = '\0';
	if (rc == CURLE_OK && opts && opts->aws_sigv4)
		rc = configure_sigv4(curl, opts);
	return rc == CURLE_OK ? 0 : -1;
}

/* One attempt: *status is the answer's status, or the attempt failed
 * without one (the result code says whether it may have been acted on). */
static int attempt(struct mm_host_ctx *host, struct mailmode_http_session *session,
                   const struct mailmode_http_request *req,
                   const struct mailmode_http_options *opts, int number,
                   struct growbuf *body, struct growbuf *head, long *status,
                   struct mailmode_diag *diag)
{
	struct curl_slist *headers = NULL;
	char errbuf[CURL_ERROR_SIZE];
	CURLcode cc;
	int rc = MAILMODE_ERR_FAILED;

	body->len = 0;
	head->len = 0;
	if (attempt_headers(req, opts, number, &headers) != 0) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "HTTP: out of memory");
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	if (configure(session->curl, req, opts, headers, body, head, errbuf) != 0) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "HTTP: cannot set up request to %s", req->url);
		goto out;
	}
	requests_made++;
	cc = curl_easy_perform(session->curl);
	if (cc != CURLE_OK) {
		mm_host_log(host, MAILMODE_LOG_DEBUG, "HTTP %s %s failed: %s", req->method, req->url,
		            curl_easy_strerror(cc));
		if (is_tls_verify_error(cc)) {
			tls_error(diag, req, cc, errbuf);
			goto out;
		}
		/* No answer: the request may or may not have been acted on, so
		 * the caller decides whether repeating it is safe. */
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 1, "HTTP %s %s: %s", req->method, req->url,
		            curl_easy_strerror(cc));
		rc = cc == CURLE_OUT_OF_MEMORY ? MAILMODE_ERR_NOMEM : MAILMODE_ERR_UNKNOWN;
		goto out;
	}
	curl_easy_getinfo(session->curl, CURLINFO_RESPONSE_CODE, status);
	mm_host_log(host, MAILMODE_LOG_DEBUG, "HTTP %s %s -> %ld (attempt %d)", req->method,
	            req->url, *status, number);
	rc = MAILMODE_OK;
out:
	free_headers(headers);
	return rc;
}

/* How long to wait before the next attempt, or -1 when the budget does not
 * allow one. */
static long next_wait(struct mm_host_ctx *host, const struct mailmode_http_request *req,
                      const char *headers, long status, int64_t started, long *backoff)
{
	long budget = req->retry_budget_ms ? req->retry_budget_ms : DEFAULT_RETRY_BUDGET_MS;
	long wait;

	if (budget < 0)
		return -1;
	wait = mm_http_retry_after(headers, (long)(mm_host_wall_ms(host) / 1000));
	wait = wait >= 0 ? wait * 1000 : *backoff;
	*backoff = *backoff * 2 > MAX_BACKOFF_MS ? MAX_BACKOFF_MS : *backoff * 2;
	if (mm_host_mono_ms(host) - started + wait > budget) {
		mm_host_log(host, MAILMODE_LOG_DEBUG, "HTTP %s: %ld again, retry budget of %ld ms spent",
		            req->url, status, budget);
		return -1;
	}
	return wait;
}

/* Options this host cannot honour are refused before anything is sent. */
static int check_options(const struct mailmode_http_options *opts, struct mailmode_diag *diag)
{
	const curl_version_info_data *curl = curl_version_info(CURLVERSION_NOW);

	if (!opts)
		return MAILMODE_OK;
	if (opts->struct_size < sizeof(struct mailmode_http_options)) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0,
		            "HTTP: the plugin's request options are smaller (%zu bytes) "
		            "than ABI 1.4's (%zu)", opts->struct_size,
		            sizeof(struct mailmode_http_options));
		return MAILMODE_ERR_CONFIG;
	}
	if (!opts->aws_sigv4)
		return MAILMODE_OK;
	if (!opts->aws_access_key_id || !opts->aws_secret_access_key) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0,
		            "HTTP: AWS Signature Version 4 without an access key id and secret");
		return MAILMODE_ERR_CONFIG;
	}
	if (curl->version_num < 0x074b00) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0,
		            "HTTP: libcurl %s cannot sign with AWS Signature Version 4 "
		            "(7.75.0 or later needed)", curl->version);
		return MAILMODE_ERR_CONFIG;
	}
	return MAILMODE_OK;
}

int mm_http_request(void *handle, struct mailmode_http_session *session,
                    const struct mailmode_http_request *req,
                    struct mailmode_http_response *resp, struct mailmode_diag *diag)
{
	return mm_http_request_opts(handle, session, req, NULL, resp, diag);
}

int mm_http_request_opts(void *handle, struct mailmode_http_session *session,
                         const struct mailmode_http_request *req,
                         const struct mailmode_http_options *opts,
                         struct mailmode_http_response *resp, struct mailmode_diag *diag)
{
	struct mm_host_ctx *host = handle;
	struct mailmode_http_session *own = NULL;
	struct growbuf body = { 0 }, head = { 0 };
	long backoff = FIRST_BACKOFF_MS;
	int64_t started = mm_host_mono_ms(host);
	int rc = MAILMODE_ERR_FAILED;

	memset(resp, 0, sizeof(*resp));
	rc = check_options(opts, diag);
	if (rc != MAILMODE_OK)
		goto out;
	if (!session) {
		own = mm_http_session_new(handle);
		if (!own) {
			mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "HTTP: out of memory");
			rc = MAILMODE_ERR_NOMEM;
			goto out;
		}
		session = own;
	}
	for (;;) {
		long wait;

		resp->attempts++;
		rc = attempt(host, session, req, opts, resp->attempts, &body, &head, &resp->status,
		             diag);
		/* An earlier attempt was answered 408 or 504, which the service
		 * may have acted on: this one sending nothing does not make the
		 * outcome known. */
		if (rc == MAILMODE_ERR_FAILED && resp->attempts > 1)
			rc = MAILMODE_ERR_UNKNOWN;
		if (rc != MAILMODE_OK)
			goto out;
		if (!is_retryable_status(resp->status))
			break;
		wait = next_wait(host, req, head.data, resp->status, started, &backoff);
		if (wait < 0)
			break;
		mm_host_log(host, MAILMODE_LOG_INFO, "HTTP %ld from %s: retrying in %ld ms",
		            resp->status, req->url, wait);
		mm_host_sleep_ms(host, wait);
	}
	resp->body = body.data ? body.data : calloc(1, 1);
	resp->body_len = body.len;
	resp->headers = head.data ? head.data : calloc(1, 1);
	body.data = head.data = NULL;
	if (!resp->body || !resp->headers) {
		mm_http_response_free(handle, resp);
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	rc = MAILMODE_OK;
out:
	free(body.data);
	free(head.data);
	mm_http_session_free(handle, own);
	return rc;
}

void mm_http_response_free(void *handle, struct mailmode_http_response *resp)
{
	(void)handle;
	if (!resp)
		return;
	free(resp->body);
	free(resp->headers);
	resp->body = resp->headers = NULL;
	resp->body_len = 0;
}
