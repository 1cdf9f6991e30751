#include "fakehost.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ANSWERS 8

static char *answers[MAX_ANSWERS];
static size_t nanswers, next_answer;
static int64_t now_ms = 1700000000000LL;

void fake_answers(const char *input, size_t len)
{
	const char *p = input, *end = input + len;

	fake_answers_free();
	while (p < end && nanswers < MAX_ANSWERS) {
		const char *sep = memmem(p, (size_t)(end - p), "\n--\n", 4);
		size_t n = sep ? (size_t)(sep - p) : (size_t)(end - p);

		answers[nanswers] = strndup(p, n);
		if (!answers[nanswers])
			break;
		nanswers++;
		p = sep ? sep + 4 : end;
	}
}

void fake_answers_free(void)
{
	size_t i;

	for (i = 0; i < nanswers; i++)
		free(answers[i]);
	nanswers = next_answer = 0;
}

static void fake_log(void *h, enum mailmode_log_level level, const char *fmt, ...)
{
	(void)h, (void)level, (void)fmt;
}

static void fake_progress(void *h, const char *fmt, ...)
{
	(void)h, (void)fmt;
}

static const char *const config[][3] = {
	{ "profile p", "tenant", "t" },
	{ "profile p", "service", "s" },
	{ "tenant t", "tenant", "contoso.onmicrosoft.com" },
	{ "tenant t", "client_id", "0f6c1a84-2b7d-4d6e-8a0f-5b2e9d1c3a77" },
	{ "tenant t", "client_secret_file", "secret" },
	{ "tenant t", "login_url", "https://login.test" },
	{ "tenant t", "api_url", "https://api.test" },
	{ "service s", "smart_hosts", "relay.example.net" },
	{ "service s", "tls_cert_name", "*.example.net" },
	{ "service s", "loop_header", "X-Scanned" },
	{ "service s", "service_ips", "192.0.2.0/24 2001:db8::/32" },
};

static const char *fake_config_get(void *h, const char *section, const char *key)
{
	size_t i;

	(void)h;
	for (i = 0; i < sizeof(config) / sizeof(config[0]); i++)
		if (strcmp(config[i][0], section) == 0 && strcmp(config[i][1], key) == 0)
			return config[i][2];
	return NULL;
}

static int fake_secret_load(void *h, const char *path, char **secret, struct mailmode_diag *d)
{
	(void)h, (void)path, (void)d;
	*secret = strdup("secret");
	return *secret ? MAILMODE_OK : MAILMODE_ERR_NOMEM;
}

static void fake_free_secret(void *h, char *secret)
{
	(void)h;
	free(secret);
}

static char *fake_config_path(void *h, const char *path)
{
	(void)h;
	return strdup(path);
}

static struct mailmode_http_session *fake_session_new(void *h)
{
	(void)h;
	return (struct mailmode_http_session *)calloc(1, 1);
}

static void fake_session_free(void *h, struct mailmode_http_session *s)
{
	(void)h;
	free(s);
}

static int fake_http(void *h, struct mailmode_http_session *s,
                     const struct mailmode_http_request *req, struct mailmode_http_response *resp,
                     struct mailmode_diag *diag)
{
	const char *answer, *nl;

	(void)h, (void)s, (void)req;
	memset(resp, 0, sizeof(*resp));
	if (next_answer >= nanswers) {
		snprintf(diag->summary, sizeof(diag->summary), "no answer");
		return MAILMODE_ERR_FAILED;
	}
	answer = answers[next_answer++];
	resp->status = strtol(answer, NULL, 10);
	nl = strchr(answer, '\n');
	resp->body = strdup(nl ? nl + 1 : "");
	resp->headers = strdup("HTTP/1.1 200 OK\r\n\r\n");
	resp->body_len = resp->body ? strlen(resp->body) : 0;
	resp->attempts = 1;
	return MAILMODE_OK;
}

static void fake_response_free(void *h, struct mailmode_http_response *resp)
{
	(void)h;
	free(resp->body);
	free(resp->headers);
	memset(resp, 0, sizeof(*resp));
}

static int64_t fake_clock(void *h)
{
	(void)h;
	return now_ms;
}

static void fake_sleep(void *h, int64_t ms)
{
	(void)h;
	now_ms += ms > 0 ? ms : 0;
}

static void *fake_alloc(size_t n)
{
	return malloc(n);
}

static char *fake_strdup(const char *s)
{
	return strdup(s);
}

static void fake_diag_set(struct mailmode_diag *diag, enum mailmode_severity severity,
                          int retryable, const char *fmt, ...)
{
	va_list ap;

	diag->severity = severity;
	diag->retryable = retryable;
	diag->detail[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(diag->summary, sizeof(diag->summary), fmt, ap);
	va_end(ap);
}

static void fake_diag_append(struct mailmode_diag *diag, const char *fmt, ...)
{
	size_t used = strlen(diag->detail);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(diag->detail + used, sizeof(diag->detail) - used, fmt, ap);
	va_end(ap);
}

const struct mailmode_host fake_host = {
	.struct_size = sizeof(struct mailmode_host),
	.abi_major = MAILMODE_ABI_MAJOR,
	.abi_minor = MAILMODE_ABI_MINOR,
	.log = fake_log,
	.config_get = fake_config_get,
	.secret_load = fake_secret_load,
	.secret_free = fake_free_secret,
	.config_path = fake_config_path,
	.http_session_new = fake_session_new,
	.http_session_free = fake_session_free,
	.http_request = fake_http,
	.http_response_free = fake_response_free,
	.clock_wall_ms = fake_clock,
	.clock_mono_ms = fake_clock,
	.sleep_ms = fake_sleep,
	.progress = fake_progress,
	.alloc = fake_alloc,
	.strdup = fake_strdup,
	.free = free,
	.diag_set = fake_diag_set,
	.diag_append = fake_diag_append,
};
