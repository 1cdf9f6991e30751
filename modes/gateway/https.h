/*
 * HTTPS for the API providers (cloudflare.c, gcloud.c, route53.c, azure.c),
 * through the host's http_request (libcurl; it retries 429, 503 and 504
 * within the retry budget, honouring Retry-After).  The bearer token lives here only,
 * in one header the host never logs, and is wiped on close.
 */
#ifndef GATEWAY_HTTPS_H
#define GATEWAY_HTTPS_H

#include "gateway.h"

struct cJSON;

struct gw_https {
	struct gw_op *op;           /* op->write_attempts is kept here */
	bool token_endpoint;        /* its POSTs change nothing: not writes */
	struct mailmode_http_session *session;
	char *ca_file;              /* host->config_path'ed; NULL: system store */
	char *auth;                 /* "Authorization: Bearer ..."; NULL: none */
	/* AWS Signature Version 4 (route53.c), signed by the host (ABI 1.4);
	 * aws_sigv4 NULL: not signed.  The strings are owned and wiped. */
	struct mailmode_http_options sigv4;
	const char *accept;         /* the Accept header; NULL: application/json */
	const char *condition;      /* one more request header, as the caller
	                               sets it ("If-Match: ..."); NULL: none */
};

/* What came back: any HTTP status.  json is the parsed body (NULL when
 * the body is not JSON); text the body as it came (XML for Route 53). */
struct gw_https_answer {
	long status;
	int attempts;               /* 1 + the host's retries */
	struct cJSON *json;
	char *text;
};

int gw_https_open(struct gw_op *op, struct gw_https *https);
/* Sets the bearer token (copied; the old one is wiped). */
int gw_https_set_bearer(struct gw_https *https, const char *token);
/* The bearer token set (NULL: none), for the provider's token cache. */
const char *gw_https_bearer(const struct gw_https *https);
void gw_https_close(struct gw_https *https);
/* Signs every request with AWS SigV4 ("aws:amz:REGION:SERVICE"); the
 * strings are copied (session_token may be NULL).  MAILMODE_ERR_CONFIG
 * with the diagnostic filled when the host predates ABI 1.4. */
int gw_https_set_sigv4(struct gw_https *https, const char *provider,
                       const char *key_id, const char *secret,
                       const char *session_token, struct mailmode_diag *diag);

/* One request.  GET is idempotent: a 500 or 502 (which the host does not
 * retry) is tried again twice.  Any other method is a write: its
 * attempts go to op->write_attempts (provider.h, gw_swap).  MAILMODE_OK when an answer arrived; else
 * `why` says why none did (no answer means: outcome unknown for a write).
 * content_type NULL: application/json when there is a body. */
int gw_https_call(struct gw_https *https, const char *method, const char *url,
                  const char *content_type, const char *body,
                  struct gw_https_answer *answer, char *why, size_t why_len);
void gw_https_answer_free(struct gw_https_answer *answer);

/* gw_https_call to path below op->cfg->api_url (an https:// URL is taken
 * whole: a nextLink) for the API `who` ("Route 53").  Without an answer
 * the diagnostic says "no answer from WHO (API_URL) to WHAT: why" and the
 * host's code is returned (MAILMODE_ERR_UNKNOWN: an attempt may have been
 * acted on). */
int gw_https_api_call(struct gw_https *https, const char *who,
                      const char *method, const char *path,
                      const char *content_type, const char *body,
                      const char *what, struct gw_https_answer *answer);

/* Appends `text` to `url` (of size len) with %-escapes for anything but
 * unreserved characters (RFC 3986). */
int gw_https_escape(char *url, size_t len, const char *text);

#endif /* GATEWAY_HTTPS_H */
