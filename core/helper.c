/* The helper process's side of plugin isolation (isolate.h): the plugin
 * loaded as the loader loads it, its init, then one call after another as
 * the core sends them.  The host
 * services run here as in the core, but for those that need the core's
 * state or output: log lines, progress, checkpoints and originals, shared
 * notes are sent to the core over the socket. */
#include "isolate.h"

#include "config.h"
#include "http.h"
#include "loader.h"
#include "mm.h"
#include "wire.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A log or progress line is cut here: it is one line for a person. */
#define LINE_MAX_BYTES 4096

struct helper {
	struct mm_host_ctx host;   /* first: the host services take it as handle */
	int fd;
};

/* The core is gone (or broke the protocol): nothing more may happen here,
 * above all no write a checkpoint did not make durable. */
static _Noreturn void vanish(void)
{
	_exit(0);
}

static void send_or_vanish(int fd, uint32_t type, struct mm_wire_buf *b)
{
	if (mm_wire_send(fd, type, b) != 0)
		vanish();
	mm_wire_buf_free(b);
}

static void helper_log(void *handle, enum mailmode_log_level level, const char *fmt, ...)
{
	struct helper *h = handle;
	struct mm_wire_buf b = { 0 };
	char line[LINE_MAX_BYTES];
	va_list ap;

	if (!mm_log_shown(h->host.output, level))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	mm_wire_put_u32(&b, (uint32_t)level);
	mm_wire_put_str(&b, line);
	send_or_vanish(h->fd, MM_MSG_LOG, &b);
}

static void helper_progress(void *handle, const char *fmt, ...)
{
	struct helper *h = handle;
	struct mm_wire_buf b = { 0 };
	char line[LINE_MAX_BYTES];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	mm_wire_put_str(&b, line);
	send_or_vanish(h->fd, MM_MSG_PROGRESS, &b);
}

/* The core's diagnostic of a record or note answered rc.  As in the
 * core's own process, one that succeeded leaves the plugin's diagnostic
 * as it was (it may hold what setup is waiting for). */
static void answered_diag(struct mm_wire_rd *rd, int rc, struct mailmode_diag *diag)
{
	struct mailmode_diag said;

	mm_wire_get_bytes(rd, &said, sizeof(said));
	if (rc != MAILMODE_OK && !rd->bad)
		*diag = said;
}

/* The core journals the text and answers once it is durable; the plugin
 * sends its write only after this returns MAILMODE_OK. */
static int record(struct helper *h, int original, const char *text, struct mailmode_diag *diag)
{
	struct mm_wire_buf b = { 0 };
	struct mm_wire_msg m;
	struct mm_wire_rd rd;
	int rc;

	mm_wire_put_u32(&b, (uint32_t)original);
	mm_wire_put_str(&b, text);
	send_or_vanish(h->fd, MM_MSG_RECORD, &b);
	if (mm_wire_recv(h->fd, -1, sizeof(*diag) + 64, &m) != MM_WIRE_OK ||
	    m.type != MM_MSG_RECORDED)
		vanish();
	mm_wire_rd_init(&rd, &m);
	rc = (int32_t)mm_wire_get_u32(&rd);
	answered_diag(&rd, rc, diag);
	free(m.data);
	if (rd.bad)
		vanish();
	return rc;
}

static int helper_checkpoint(void *handle, const struct mailmode_request *req,
                             const char *receipt, struct mailmode_diag *diag)
{
	(void)req;     /* one call at a time: the core knows which */
	return record(handle, 0, receipt, diag);
}

static int helper_keep_original(void *handle, const struct mailmode_request *req,
                                const char *original, struct mailmode_diag *diag)
{
	(void)req;
	return record(handle, 1, original, diag);
}

/* A shared note (ABI 1.6) lives in the core's state: the core loads or
 * stores it under the call's lock and answers. */
static int note(struct helper *h, int store, const char *resource, const char *key,
                const char *text, char **loaded, struct mailmode_diag *diag)
{
	struct mm_wire_buf b = { 0 };
	struct mm_wire_msg m;
	struct mm_wire_rd rd;
	char *got;
	int rc;

	mm_wire_put_u32(&b, (uint32_t)store);
	mm_wire_put_str(&b, resource);
	mm_wire_put_str(&b, key);
	mm_wire_put_str(&b, text);
	send_or_vanish(h->fd, MM_MSG_NOTE, &b);
	if (mm_wire_recv(h->fd, -1, MM_WIRE_MESSAGE_MAX, &m) != MM_WIRE_OK || m.type != MM_MSG_NOTED)
		vanish();
	mm_wire_rd_init(&rd, &m);
	rc = (int32_t)mm_wire_get_u32(&rd);
	got = mm_wire_get_str(&rd);
	answered_diag(&rd, rc, diag);
	free(m.data);
	if (rd.bad)
		vanish();
	if (loaded)
		*loaded = got;
	else
		free(got);
	return rc;
}

static int helper_note_load(void *handle, const struct mailmode_request *req,
                            const char *resource, const char *key, char **text,
                            struct mailmode_diag *diag)
{
	(void)req;     /* one call at a time: the core knows which */
	*text = NULL;
	return note(handle, 0, resource, key, NULL, text, diag);
}

static int helper_note_store(void *handle, const struct mailmode_request *req,
                             const char *resource, const char *key, const char *text,
                             struct mailmode_diag *diag)
{
	(void)req;
	return note(handle, 1, resource, key, text, NULL, diag);
}

/* A plugin's stray output must not reach the command's (stdout carries
 * the --json document): stdout goes to /dev/null, and so does stderr but
 * with -v, where it helps whoever debugs the plugin. */
static void quiet_output(int verbosity)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (null < 0)
		return;
	dup2(null, STDOUT_FILENO);
	if (verbosity <= 0)
		dup2(null, STDERR_FILENO);
	close(null);
}

/* The helper must not outlive the core: a call left running would go on
 * writing to the world while `mailmode resume` runs.  The core's end of
 * the socket closes when the core dies (it is close-on-exec: no other
 * helper holds it), and this thread, waiting for just that, ends the
 * helper at once, whatever the plugin is doing.  The core closes it on
 * purpose only once the helper has exited. */
static void *watchdog(void *arg)
{
	struct pollfd pfd = { .fd = *(int *)arg, .events = 0 };

	for (;;)
		if (poll(&pfd, 1, -1) > 0 && (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)))
			vanish();
	return NULL;
}

static void send_diag_rc(int fd, uint32_t type, int rc, const struct mailmode_diag *diag)
{
	struct mm_wire_buf b = { 0 };

	mm_wire_put_u32(&b, (uint32_t)rc);
	mm_wire_put_bytes(&b, diag, sizeof(*diag));
	send_or_vanish(fd, type, &b);
}

static void serve_call(struct helper *h, const struct mailmode_plugin *d, void *ctx,
                       const struct mm_wire_msg *msg)
{
	struct mailmode_diag diag;
	struct mm_wire_buf b = { 0 };
	struct mm_call_msg m;
	struct mm_wire_rd rd;
	long before = mm_http_requests_made();
	int rc;

	memset(&diag, 0, sizeof(diag));
	mm_wire_rd_init(&rd, msg);
	if (msg->type != MM_MSG_CALL || mm_call_decode(&rd, &m) != 0)
		vanish();
	rc = mm_call_invoke(d, ctx, &m.req, &m.call, &diag);
	mm_wire_put_u32(&b, (uint32_t)rc);
	mm_wire_put_u32(&b, (uint32_t)m.call.presence);
	mm_wire_put_str(&b, m.call.text);
	mm_wire_put_u32(&b, (uint32_t)(mm_http_requests_made() - before));
	mm_wire_put_bytes(&b, &diag, sizeof(diag));
	mm_call_msg_clear(&m);
	send_or_vanish(h->fd, MM_MSG_RESULT, &b);
}

static _Noreturn void serve(struct mm_plugin *p, int fd)
{
	struct helper h = { .host = p->host, .fd = fd };
	struct mailmode_diag diag;
	struct mm_wire_msg msg;
	char section[96];
	pthread_t guard;
	void *ctx = NULL;
	int rc;

	if (pthread_create(&guard, NULL, watchdog, &h.fd) != 0)
		vanish();
	quiet_output(p->host.output ? p->host.output->verbosity : 0);
	h.host.table.handle = &h;
	h.host.table.log = helper_log;
	h.host.table.progress = helper_progress;
	h.host.table.checkpoint = helper_checkpoint;
	h.host.table.keep_original = helper_keep_original;
	h.host.table.shared_note_load = helper_note_load;
	h.host.table.shared_note_store = helper_note_store;
	memset(&diag, 0, sizeof(diag));
	snprintf(section, sizeof(section), "mode %s", p->desc->name);
	rc = p->desc->init(&h.host.table, section, &ctx, &diag);
	send_diag_rc(fd, MM_MSG_READY, rc, &diag);
	if (rc != MAILMODE_OK)
		vanish();
	/* The core sends calls of bounded size: it is trusted. */
	while (mm_wire_recv(fd, -1, MM_WIRE_MESSAGE_MAX + MM_WIRE_STRING_MAX, &msg) == MM_WIRE_OK &&
	       msg.type != MM_MSG_QUIT) {
		serve_call(&h, p->desc, ctx, &msg);
		free(msg.data);
	}
	free(msg.data);
	p->desc->fini(ctx);
	_exit(0);
}

/* A helper that cannot even load its plugin says why as init's answer. */
static int refuse(int fd, const char *plugin, const char *why)
{
	struct mailmode_diag diag;

	memset(&diag, 0, sizeof(diag));
	mm_diag_set(&diag, MAILMODE_SEV_ERROR, 0, "the helper of plugin %s cannot start: %s", plugin,
	            why);
	send_diag_rc(fd, MM_MSG_READY, MAILMODE_ERR_FAILED, &diag);
	return 1;
}

int mm_helper_main(int argc, char **argv)
{
	struct mm_config *config = NULL;
	struct mm_output output;
	struct mm_plugin *p;
	char why[MM_ERR_MAX];
	int fd;

	if (argc != 6)
		return MM_USAGE;
	fd = atoi(argv[2]);
	memset(&output, 0, sizeof(output));
	pthread_mutex_init(&output.lock, NULL);
	output.verbosity = atoi(argv[5]);
	if (argv[4][0] &&
	    !(config = mm_config_load(argv[4], MM_CONFIG_OPTIONAL, why, sizeof(why))))
		return refuse(fd, argv[3], why);
	if (mm_http_global_init() != 0)
		return refuse(fd, argv[3], "cannot initialise libcurl");
	p = mm_plugin_open(argv[3], config, &output, why, sizeof(why));
	if (!p)
		return refuse(fd, argv[3], why);
	serve(p, fd);
}
