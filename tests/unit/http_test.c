/* The host's ABI 1.4 service http_request_opts (core/http.c): options
 * smaller than 1.4's or incomplete are refused before anything is sent; a
 * signed request carries libcurl's SigV4 Authorization and the session
 * token, never the secret; the next request on the same session is not
 * signed.  A one-shot HTTP server in a child process records what came. */
#include "host.h"
#include "http.h"
#include "tap.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

/* Answers `count` requests on one connection with 200; writes what it read
 * to fd out. */
static void serve(int listener, int out, int count)
{
	char buf[8192];
	int conn = accept(listener, NULL, NULL);
	ssize_t n;

	while (conn >= 0 && count > 0 && (n = read(conn, buf, sizeof(buf))) > 0) {
		if (write(out, buf, (size_t)n) != n)
			break;
		if (memmem(buf, (size_t)n, "\r\n\r\n", 4) == NULL)
			continue;
		count--;
		if (write(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 40) != 40)
			break;
	}
	_exit(0);
}

static int listen_loopback(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(s, 1) != 0 ||
	    getsockname(s, (struct sockaddr *)&a, &len) != 0)
		return -1;
	*port = ntohs(a.sin_port);
	return s;
}

int main(void)
{
	struct tap t = { 0 };
	struct mm_output output = { .verbosity = -1, .lock = PTHREAD_MUTEX_INITIALIZER };
	struct mm_host_ctx host;
	struct mailmode_http_options opts = {
		.struct_size = sizeof(opts),
		.aws_sigv4 = "aws:amz:us-east-1:route53",
		.aws_access_key_id = "AKIDEXAMPLE",
		.aws_secret_access_key = SECRET,
		.aws_session_token = "SESSIONTOKEN123",
	};
	struct mailmode_http_options small = opts;
	struct mailmode_http_response resp;
	struct mailmode_diag diag = { 0 };
	struct mailmode_http_session *session;
	char url[64], seen[16384] = "";
	int fds[2], listener, port, rc, status;
	long before;
	ssize_t n, got = 0;
	pid_t child;

	tap_plan(12);
	mm_http_global_init();
	mm_host_init(&host, NULL, &output, "test");
	tap_ok(&t, host.table.struct_size >= offsetof(struct mailmode_host, http_request_opts) +
	                                         sizeof(host.table.http_request_opts) &&
	               host.table.http_request_opts == mm_http_request_opts,
	       "the host table has http_request_opts, and its size covers it");
	tap_is_int(&t, host.table.abi_minor, 6, "the host implements ABI 1.6");

	struct mailmode_http_request req = { .method = "POST", .url = "http://127.0.0.1:9/x",
	                                     .body = "<a/>", .body_len = 4, .retry_budget_ms = -1 };
	before = mm_http_requests_made();
	small.struct_size = offsetof(struct mailmode_http_options, aws_session_token);
	rc = mm_http_request_opts(&host, NULL, &req, &small, &resp, &diag);
	tap_is_int(&t, rc, MAILMODE_ERR_CONFIG, "options smaller than 1.4's: refused");
	tap_contains(&t, diag.summary, "smaller", "the diagnostic says why");
	small = opts;
	small.aws_secret_access_key = NULL;
	rc = mm_http_request_opts(&host, NULL, &req, &small, &resp, &diag);
	tap_is_int(&t, rc, MAILMODE_ERR_CONFIG, "SigV4 without a secret: refused");
	tap_is_int(&t, mm_http_requests_made() - before, 0, "and nothing was sent");

	listener = listen_loopback(&port);
	if (listener < 0 || pipe(fds) != 0)
		return 1;
	child = fork();
	if (child == 0) {
		close(fds[0]);
		serve(listener, fds[1], 2);
	}
	close(fds[1]);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/2013-04-01/change/C1", port);
	req.url = url;
	session = mm_http_session_new(&host);
	rc = mm_http_request_opts(&host, session, &req, &opts, &resp, &diag);
	tap_is_int(&t, rc == MAILMODE_OK ? resp.status : rc, 200, "a signed request is answered");
	mm_http_response_free(&host, &resp);
	rc = mm_http_request(&host, session, &req, &resp, &diag);
	tap_is_int(&t, rc == MAILMODE_OK ? resp.status : rc, 200, "then one without options");
	mm_http_response_free(&host, &resp);
	mm_http_session_free(&host, session);
	while (got < (ssize_t)sizeof(seen) - 1 &&
	       (n = read(fds[0], seen + got, sizeof(seen) - 1 - (size_t)got)) > 0)
		got += n;
	seen[got] = '\0';
	waitpid(child, &status, 0);
	tap_contains(&t, seen, "Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/",
	             "libcurl signed it with the access key id");
	tap_contains(&t, seen, "X-Amz-Security-Token: SESSIONTOKEN123",
	             "the session token went as X-Amz-Security-Token");
	tap_ok(&t, strstr(seen, "MDENG") == NULL, "the secret never left");
	{
		const char *second = strstr(seen + 1, "POST /2013-04-01");

		tap_ok(&t, second && !strstr(second, "Authorization") &&
		               !strstr(second, "X-Amz-Security-Token"),
		       "the next request on the session is not signed");
	}
	mm_http_global_cleanup();
	return tap_done(&t);
}
