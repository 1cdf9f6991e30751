#ifndef MM_HTTP_H
#define MM_HTTP_H

#include <mailmode/plugin.h>

struct mm_host_ctx;

/* libcurl behind the host's HTTP services (see plugin.h for the contract). */
int mm_http_global_init(void);
void mm_http_global_cleanup(void);

struct mailmode_http_session *mm_http_session_new(void *handle);
void mm_http_session_free(void *handle, struct mailmode_http_session *session);
int mm_http_request(void *handle, struct mailmode_http_session *session,
                    const struct mailmode_http_request *req,
                    struct mailmode_http_response *resp, struct mailmode_diag *diag);
/* ABI 1.4: with options (AWS Signature Version 4 by libcurl). */
int mm_http_request_opts(void *handle, struct mailmode_http_session *session,
                         const struct mailmode_http_request *req,
                         const struct mailmode_http_options *opts,
                         struct mailmode_http_response *resp, struct mailmode_diag *diag);
void mm_http_response_free(void *handle, struct mailmode_http_response *resp);

/* HTTP requests (attempts) made so far by this thread. */
long mm_http_requests_made(void);
/* Counts n requests made for this thread elsewhere (a plugin's helper
 * process, isolate.h). */
void mm_http_requests_count(long n);

/* Seconds to wait from a Retry-After value (delta-seconds or HTTP date),
 * at most MM_HTTP_RETRY_AFTER_MAX, or -1 when absent or unparsable. */
#define MM_HTTP_RETRY_AFTER_MAX 86400L
long mm_http_retry_after(const char *headers, long now_epoch);

#endif
