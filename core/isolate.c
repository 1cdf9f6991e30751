/* The core's side of plugin isolation (isolate.h): a plugin's helper
 * processes, the calls sent to them under a deadline, and what a helper
 * that does not answer costs: its call, never the command. */
#include "isolate.h"

#include "http.h"
#include "loader.h"
#include "ops.h"
#include "wire.h"

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* The helper's end of its socket, in the helper. */
#define HELPER_FD 3
#define HELPER_FD_ARG "3"

/* How long a helper whose socket closed gets to exit on its own (fini runs
 * then) before it is killed. */
#define EXIT_GRACE_MS 2000

static const char *const call_names[] = {
	"validate_config", "observe", "plan", "setup", "verify", "teardown", "trace", "preflight",
	"resources", "doctor", "mx_ttl", "plan_actions"
};

const char *mm_call_name(enum mm_call_kind kind)
{
	return call_names[kind];
}

int mm_call_writes(const struct mm_call *c)
{
	return c->kind == MM_CALL_SETUP || c->kind == MM_CALL_TEARDOWN ||
	       (c->kind == MM_CALL_MX_TTL && c->ttl_action != MAILMODE_TTL_READ);
}

int mm_call_invoke(const struct mailmode_plugin *d, void *ctx, const struct mailmode_request *req,
                   struct mm_call *c, struct mailmode_diag *diag)
{
	char **text = &c->text;

	switch (c->kind) {
	case MM_CALL_VALIDATE: return d->validate_config(ctx, req, diag);
	case MM_CALL_OBSERVE: return d->observe(ctx, req, &c->presence, text, diag);
	case MM_CALL_PLAN: return d->plan(ctx, req, c->which, text, diag);
	case MM_CALL_SETUP: return d->setup(ctx, req, text, diag);
	case MM_CALL_VERIFY: return d->verify(ctx, req, text, diag);
	case MM_CALL_TEARDOWN: return d->teardown(ctx, req, diag);
	case MM_CALL_TRACE:
		if (d->abi_minor >= 1 && d->trace)
			return d->trace(ctx, req, c->message_id, c->recipient, text, diag);
		break;
	case MM_CALL_PREFLIGHT:
		if (d->abi_minor >= 2 && d->preflight)
			return d->preflight(ctx, req, c->which, diag);
		break;
	case MM_CALL_RESOURCES:
		if (d->abi_minor >= 1 && d->resources)
			return d->resources(ctx, req, text, diag);
		break;
	case MM_CALL_DOCTOR:
		if (d->abi_minor >= 4 && d->doctor)
			return d->doctor(ctx, req, text, diag);
		break;
	case MM_CALL_MX_TTL:
		if (d->abi_minor >= 4 && d->mx_ttl)
			return d->mx_ttl(ctx, req, c->ttl_action, c->ttl, text, diag);
		break;
	case MM_CALL_PLAN_ACTIONS:
		if (d->abi_minor >= 5 && d->plan_actions)
			return d->plan_actions(ctx, req, c->which, text, diag);
		break;
	}
	mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "%s: no %s operation", d->name,
	            mm_call_name(c->kind));
	return MAILMODE_ERR_FAILED;
}

/* ------------------------------------------------------------------ */
/* The call on the wire (the helper decodes it in the same order). */

/* A NULL-terminated list: its length (UINT32_MAX for NULL), then each. */
static void put_list(struct mm_wire_buf *b, const char *const *list)
{
	uint32_t n = 0;

	while (list && list[n])
		n++;
	mm_wire_put_u32(b, list ? n : UINT32_MAX);
	while (list && *list)
		mm_wire_put_str(b, *list++);
}

static char **get_list(struct mm_wire_rd *rd)
{
	uint32_t n = mm_wire_get_u32(rd), i;
	char **list;

	if (rd->bad || n == UINT32_MAX)
		return NULL;
	if (n > MM_CALL_LIST_MAX || !(list = calloc((size_t)n + 1, sizeof(*list)))) {
		rd->bad = 1;
		return NULL;
	}
	/* No NULL inside: it would end the list early. */
	for (i = 0; i < n && !rd->bad; i++)
		if (!(list[i] = mm_wire_get_str(rd)))
			rd->bad = 1;
	return list;
}

void mm_call_encode(struct mm_wire_buf *b, const struct mailmode_request *req,
                    const struct mm_call *c)
{
	mm_wire_put_u32(b, (uint32_t)c->kind);
	mm_wire_put_u32(b, (uint32_t)c->which);
	mm_wire_put_str(b, c->message_id);
	mm_wire_put_str(b, c->recipient);
	mm_wire_put_str(b, req->domain);
	mm_wire_put_str(b, req->profile);
	mm_wire_put_str(b, req->section);
	mm_wire_put_str(b, req->receipt);
	mm_wire_put_u32(b, req->flags);
	mm_wire_put_str(b, req->original);
	put_list(b, req->accepted_conflicts);
	mm_wire_put_u32(b, (uint32_t)c->ttl_action);
	mm_wire_put_u32(b, c->ttl);
	mm_wire_put_str(b, req->prepared);
	mm_wire_put_u32(b, (uint32_t)((uint64_t)req->deferred_since_ms >> 32));
	mm_wire_put_u32(b, (uint32_t)req->deferred_since_ms);
}

int mm_call_decode(struct mm_wire_rd *rd, struct mm_call_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->call.kind = (enum mm_call_kind)mm_wire_get_u32(rd);
	m->call.which = (enum mailmode_plan_op)mm_wire_get_u32(rd);
	m->call.message_id = m->strings[0] = mm_wire_get_str(rd);
	m->call.recipient = m->strings[1] = mm_wire_get_str(rd);
	m->req.struct_size = sizeof(m->req);
	m->req.domain = m->strings[2] = mm_wire_get_str(rd);
	m->req.profile = m->strings[3] = mm_wire_get_str(rd);
	m->req.section = m->strings[4] = mm_wire_get_str(rd);
	m->req.receipt = m->strings[5] = mm_wire_get_str(rd);
	m->req.flags = mm_wire_get_u32(rd);
	m->req.original = m->strings[6] = mm_wire_get_str(rd);
	m->conflicts = get_list(rd);
	m->req.accepted_conflicts = (const char *const *)m->conflicts;
	m->call.ttl_action = (enum mailmode_ttl_action)mm_wire_get_u32(rd);
	m->call.ttl = mm_wire_get_u32(rd);
	m->req.prepared = m->strings[7] = mm_wire_get_str(rd);
	m->req.deferred_since_ms = (int64_t)((uint64_t)mm_wire_get_u32(rd) << 32);
	m->req.deferred_since_ms |= mm_wire_get_u32(rd);
	/* The helper serves one call at a time: any non-NULL value names it. */
	m->req.call = m;
	if (rd->bad || m->call.kind > MM_CALL_PLAN_ACTIONS || m->call.ttl_action > MAILMODE_TTL_RESTORE) {
		mm_call_msg_clear(m);
		return -1;
	}
	return 0;
}

void mm_call_msg_clear(struct mm_call_msg *m)
{
	size_t i;

	for (i = 0; i < sizeof(m->strings) / sizeof(m->strings[0]); i++)
		free(m->strings[i]);
	for (i = 0; m->conflicts && m->conflicts[i]; i++)
		free(m->conflicts[i]);
	free(m->conflicts);
	free(m->call.text);
	memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------------ */
/* The pool */

struct mm_helper {
	pid_t pid;      /* 0: not started */
	int fd;
	int busy;
};

/* The shared resources (a tenant, a zone) a helper serves: calls on them
 * go to a helper that serves them, so that what the plugin caches of a
 * tenant (its token, its accepted domains) is read once per helper.  A
 * call on a tenant whose helpers are all busy (the limiter lets as many
 * calls run at once as its tenant cap) gets a helper of its own, serving
 * only that tenant: one helper would run them one after another, and a
 * helper shared with other tenants would keep them waiting for each
 * other. */
struct mm_binding {
	char *resources;
	struct mm_helper *helper;
};

struct mm_helpers {
	pthread_mutex_t lock;
	pthread_cond_t freed;
	struct mm_helper **all;
	size_t count;
	size_t max;     /* 1 for a plugin that is not thread-safe */
	struct mm_binding *bound;
	size_t nbound;
};

struct mm_helpers *mm_helpers_new(int threadsafe)
{
	struct mm_helpers *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->freed, NULL);
	h->max = threadsafe ? (size_t)-1 : 1;
	return h;
}

/* Whether the helper one serves resources (NULL: whether it serves any). */
static int serves(const struct mm_helpers *h, const char *resources, const struct mm_helper *one)
{
	size_t i;

	for (i = 0; i < h->nbound; i++)
		if (h->bound[i].helper == one &&
		    (!resources || strcmp(h->bound[i].resources, resources) == 0))
			return 1;
	return 0;
}

/* A free helper that serves resources, or (NULL) one that serves none;
 * NULL when there is none. */
static struct mm_helper *free_serving(const struct mm_helpers *h, const char *resources)
{
	size_t i;

	for (i = 0; i < h->count; i++)
		if (!h->all[i]->busy && (resources ? serves(h, resources, h->all[i])
		                                   : !serves(h, NULL, h->all[i])))
			return h->all[i];
	return NULL;
}

/* Without memory the binding is skipped: the call still runs. */
static void bind_helper(struct mm_helpers *h, const char *resources, struct mm_helper *one)
{
	struct mm_binding *grown = realloc(h->bound, (h->nbound + 1) * sizeof(*grown));
	char *copy = strdup(resources);

	if (grown)
		h->bound = grown;
	if (!grown || !copy) {
		free(copy);
		return;
	}
	h->bound[h->nbound++] = (struct mm_binding){ copy, one };
}

static void unbind_helper(struct mm_helpers *h, const struct mm_helper *one)
{
	size_t i = 0;

	while (i < h->nbound)
		if (h->bound[i].helper == one) {
			free(h->bound[i].resources);
			h->bound[i] = h->bound[--h->nbound];
		} else {
			i++;
		}
}

static struct mm_helper *new_helper(struct mm_helpers *h)
{
	struct mm_helper *got = calloc(1, sizeof(*got)), **grown;

	grown = got ? realloc(h->all, (h->count + 1) * sizeof(*grown)) : NULL;
	if (!grown) {
		free(got);
		return NULL;
	}
	got->fd = -1;
	h->all = grown;
	h->all[h->count++] = got;
	return got;
}

/* A free helper that serves the call's resources, else one that serves
 * none, else a new (not yet started) one while the plugin may run one
 * more call at once, else (a plugin that is not thread-safe) any free
 * one; waits otherwise.  NULL: out of memory. */
static struct mm_helper *acquire(struct mm_helpers *h, const char *resources)
{
	struct mm_helper *got = NULL;
	size_t i;

	pthread_mutex_lock(&h->lock);
	for (;;) {
		if (resources)
			got = free_serving(h, resources);
		if (!got)
			got = free_serving(h, NULL);
		for (i = 0; i < h->count && !got && h->count >= h->max; i++)
			if (!h->all[i]->busy)
				got = h->all[i];
		if (got || h->count < h->max)
			break;
		pthread_cond_wait(&h->freed, &h->lock);
	}
	if (!got)
		got = new_helper(h);
	if (got && resources && !serves(h, resources, got))
		bind_helper(h, resources, got);
	if (got)
		got->busy = 1;
	pthread_mutex_unlock(&h->lock);
	return got;
}

/* Gives the helper back; one that is gone (pid 0) leaves the pool with
 * its resources, and the next call starts a fresh one. */
static void release(struct mm_helpers *h, struct mm_helper *one)
{
	size_t i;

	pthread_mutex_lock(&h->lock);
	one->busy = 0;
	if (one->pid == 0) {
		unbind_helper(h, one);
		for (i = 0; i < h->count; i++)
			if (h->all[i] == one) {
				h->all[i] = h->all[--h->count];
				break;
			}
		free(one);
	}
	/* Waiters wait for different helpers. */
	pthread_cond_broadcast(&h->freed);
	pthread_mutex_unlock(&h->lock);
}

/* Waits for the helper to exit, at most grace_ms (0: kills it at once),
 * then kills it, and closes its socket: it sees the socket close only
 * after it is gone, so a helper asked to quit runs its fini (helper.c).
 * Returns its wait status, or -1 when it was reaped elsewhere. */
static int reap(struct mm_helper *one, long grace_ms)
{
	int64_t until = mm_host_mono_ms(NULL) + grace_ms;
	int status = 0;
	pid_t got = 0;

	while (grace_ms > 0 && (got = waitpid(one->pid, &status, WNOHANG)) == 0 &&
	       mm_host_mono_ms(NULL) < until)
		mm_host_sleep_ms(NULL, 1);
	if (got == 0) {
		kill(one->pid, SIGKILL);
		while ((got = waitpid(one->pid, &status, 0)) < 0 && errno == EINTR)
			;
	}
	close(one->fd);
	one->fd = -1;
	one->pid = 0;
	return got < 0 ? -1 : status;
}

void mm_helpers_free(struct mm_helpers *h)
{
	size_t i;

	if (!h)
		return;
	/* All are asked first: they run their fini at once. */
	for (i = 0; i < h->count; i++)
		if (h->all[i]->pid > 0)
			mm_wire_send(h->all[i]->fd, MM_MSG_QUIT, NULL);
	for (i = 0; i < h->count; i++) {
		if (h->all[i]->pid > 0)
			reap(h->all[i], EXIT_GRACE_MS);
		free(h->all[i]);
	}
	free(h->all);
	for (i = 0; i < h->nbound; i++)
		free(h->bound[i].resources);
	free(h->bound);
	pthread_cond_destroy(&h->freed);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* ------------------------------------------------------------------ */
/* What went wrong with a helper, in one line */

enum failure { HELPER_GONE, HELPER_DEADLINE, HELPER_PROTOCOL };

static const char *signal_name(int sig)
{
	const char *abbrev = sigabbrev_np(sig);

	return abbrev ? abbrev : "?";
}

static void format_duration(char *buf, size_t len, long ms)
{
	if (ms % 60000 == 0)
		snprintf(buf, len, "%ldm", ms / 60000);
	else if (ms % 1000 == 0)
		snprintf(buf, len, "%lds", ms / 1000);
	else
		snprintf(buf, len, "%ldms", ms);
}

/* "plugin NAME (PATH): setup of DOMAIN killed after deadline 30s: outcome
 * unknown"; what is named "init" when the helper was starting. */
static void describe(const struct mm_plugin *p, const char *what, const char *domain,
                     enum failure why, int status, const char *problem, int unknown,
                     struct mailmode_diag *diag)
{
	char happened[160], timeout[32];

	if (why == HELPER_DEADLINE) {
		format_duration(timeout, sizeof(timeout), p->call_timeout_ms);
		snprintf(happened, sizeof(happened), "killed after deadline %s", timeout);
	} else if (why == HELPER_PROTOCOL) {
		snprintf(happened, sizeof(happened), "broke the helper protocol (%s): killed", problem);
	} else if (status < 0) {
		snprintf(happened, sizeof(happened), "ended (exit status unknown)");
	} else if (WIFSIGNALED(status)) {
		snprintf(happened, sizeof(happened), "crashed (signal %d, SIG%s)", WTERMSIG(status),
		         signal_name(WTERMSIG(status)));
	} else {
		snprintf(happened, sizeof(happened), "exited with status %d",
		         WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	}
	mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "plugin %s (%s): %s%s%s %s%s", p->desc->name,
	            p->path, what, domain ? " of " : "", domain ? domain : "", happened,
	            unknown ? ": outcome unknown" : "");
	mm_diag_append(diag, "the plugin's helper process is gone; the next call starts a new one");
}

/* Ends a helper that failed: killed at once unless it is gone already. */
static void fail(const struct mm_plugin *p, struct mm_helper *one, const char *what,
                 const char *domain, enum failure why, const char *problem, int unknown,
                 struct mailmode_diag *diag)
{
	int status = reap(one, why == HELPER_GONE ? EXIT_GRACE_MS : 0);

	describe(p, what, domain, why, status, problem, unknown, diag);
}

static enum failure failure_of(enum mm_wire_status st, const char **problem)
{
	*problem = st == MM_WIRE_TOO_BIG ? "a message longer than 16 MiB" : "a malformed message";
	return st == MM_WIRE_TIMEOUT ? HELPER_DEADLINE : st == MM_WIRE_EOF ? HELPER_GONE
	                                                                   : HELPER_PROTOCOL;
}

/* ------------------------------------------------------------------ */
/* Starting a helper */

static int read_rc_diag(const struct mm_wire_msg *m, struct mailmode_diag *diag, int *rc)
{
	struct mm_wire_rd rd;

	mm_wire_rd_init(&rd, m);
	*rc = (int32_t)mm_wire_get_u32(&rd);
	mm_wire_get_bytes(&rd, diag, sizeof(*diag));
	return rd.bad || rd.left ? -1 : 0;
}

/* The helper's command line (isolate.h), made before the fork: the child
 * may not allocate. */
static int helper_command(const struct mm_plugin *p, char *exe, size_t exelen,
                          const char *argv[7])
{
	static const char *const verbosity[] = { "-1", "0", "1" };
	int v = p->host.output ? p->host.output->verbosity : 0;
	ssize_t n = readlink("/proc/self/exe", exe, exelen - 1);

	if (n < 0)
		return -1;
	exe[n] = '\0';
	argv[0] = exe;
	argv[1] = MM_HELPER_ARG;
	argv[2] = HELPER_FD_ARG;
	argv[3] = p->path;
	argv[4] = p->host.config ? mm_config_path(p->host.config) : "";
	argv[5] = verbosity[v < 0 ? 0 : v > 0 ? 2 : 1];
	argv[6] = NULL;
	return 0;
}

/* Starts the helper and waits for its init.  The plugin's own failure of
 * init is its diagnostic, as without isolation. */
static int start(struct mm_plugin *p, struct mm_helper *one, struct mailmode_diag *diag)
{
	int64_t deadline = mm_host_mono_ms(NULL) + p->call_timeout_ms;
	struct mm_wire_msg m = { 0 };
	const char *problem = NULL, *argv[7];
	char exe[PATH_MAX];
	enum mm_wire_status st;
	int sv[2], rc = MAILMODE_ERR_FAILED;

	if (helper_command(p, exe, sizeof(exe), argv) != 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 1, "plugin %s: cannot start its helper: %s",
		            p->desc->name, strerror(errno));
		return MAILMODE_ERR_FAILED;
	}
	one->pid = fork();
	if (one->pid == 0) {
		/* Async-signal-safe calls only, up to the exec: another thread
		 * may hold any lock.  dup2 clears close-on-exec. */
		if (sv[1] == HELPER_FD)
			fcntl(sv[1], F_SETFD, 0);
		else
			dup2(sv[1], HELPER_FD);
		execv(exe, (char *const *)argv);
		_exit(127);
	}
	close(sv[1]);
	one->fd = sv[0];
	if (one->pid < 0) {
		one->pid = 0;
		close(one->fd);
		one->fd = -1;
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 1, "plugin %s: cannot start its helper: %s",
		            p->desc->name, strerror(errno));
		return MAILMODE_ERR_FAILED;
	}
	st = mm_wire_recv(one->fd, deadline, sizeof(*diag) + 64, &m);
	if (st == MM_WIRE_OK && (m.type != MM_MSG_READY || read_rc_diag(&m, diag, &rc) != 0))
		st = MM_WIRE_BAD;
	free(m.data);
	if (st != MM_WIRE_OK) {
		enum failure why = failure_of(st, &problem);

		fail(p, one, "init", NULL, why, problem, 0, diag);
		return MAILMODE_ERR_FAILED;
	}
	if (rc != MAILMODE_OK) {
		reap(one, EXIT_GRACE_MS);
		if (diag->severity == MAILMODE_SEV_NONE)
			mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "plugin %s failed to start (code %d)",
			            p->desc->name, rc);
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* A call */

/* A shared note the helper's call loads or stores (ABI 1.6): done here,
 * in the state of the call's locks, and answered. */
static int serve_note(struct mm_helper *one, const struct mailmode_request *req,
                      struct mm_wire_rd *rd)
{
	uint32_t store = mm_wire_get_u32(rd);
	char *resource = mm_wire_get_str(rd), *key = mm_wire_get_str(rd);
	char *text = mm_wire_get_str(rd), *loaded = NULL;
	struct mm_wire_buf b = { 0 };
	struct mailmode_diag diag;
	int rc, bad = rd->bad || rd->left;

	memset(&diag, 0, sizeof(diag));
	if (!bad) {
		rc = store ? mm_host_shared_note_store(NULL, req, resource, key, text, &diag)
		           : mm_host_shared_note_load(NULL, req, resource, key, &loaded, &diag);
		mm_wire_put_u32(&b, (uint32_t)rc);
		mm_wire_put_str(&b, loaded);
		mm_wire_put_bytes(&b, &diag, sizeof(diag));
		/* A helper gone meanwhile is seen at the next read. */
		mm_wire_send(one->fd, MM_MSG_NOTED, &b);
		mm_wire_buf_free(&b);
	}
	free(resource);
	free(key);
	free(text);
	free(loaded);
	return bad ? -1 : 0;
}

/* What the helper asks of the core while its call runs. */
static int serve_request(struct mm_plugin *p, struct mm_helper *one,
                         const struct mailmode_request *req, const struct mm_wire_msg *m)
{
	struct mm_wire_buf b = { 0 };
	struct mailmode_diag diag;
	struct mm_wire_rd rd;
	uint32_t level, original;
	char *text;
	int rc;

	mm_wire_rd_init(&rd, m);
	if (m->type == MM_MSG_NOTE)
		return serve_note(one, req, &rd);
	if (m->type == MM_MSG_LOG) {
		level = mm_wire_get_u32(&rd);
		text = mm_wire_get_str(&rd);
		if (!rd.bad && level <= MAILMODE_LOG_ERROR)
			mm_host_log(&p->host, (enum mailmode_log_level)level, "%s", text ? text : "");
	} else if (m->type == MM_MSG_PROGRESS) {
		text = mm_wire_get_str(&rd);
		if (!rd.bad)
			p->host.table.progress(p->host.table.handle, "%s", text ? text : "");
	} else if (m->type == MM_MSG_RECORD) {
		original = mm_wire_get_u32(&rd);
		text = mm_wire_get_str(&rd);
		if (rd.bad)
			return -1;
		memset(&diag, 0, sizeof(diag));
		rc = original ? mm_host_keep_original(NULL, req, text, &diag)
		              : mm_host_checkpoint(NULL, req, text, &diag);
		free(text);
		mm_wire_put_u32(&b, (uint32_t)rc);
		mm_wire_put_bytes(&b, &diag, sizeof(diag));
		/* A helper gone meanwhile is seen at the next read. */
		mm_wire_send(one->fd, MM_MSG_RECORDED, &b);
		mm_wire_buf_free(&b);
		return 0;
	} else {
		return -1;
	}
	free(text);
	return rd.bad ? -1 : 0;
}

static int read_result(const struct mm_wire_msg *m, struct mm_call *c, struct mailmode_diag *diag,
                       int *rc)
{
	struct mm_wire_rd rd;
	uint32_t presence;

	mm_wire_rd_init(&rd, m);
	*rc = (int32_t)mm_wire_get_u32(&rd);
	presence = mm_wire_get_u32(&rd);
	c->text = mm_wire_get_str(&rd);
	mm_http_requests_count(mm_wire_get_u32(&rd));
	mm_wire_get_bytes(&rd, diag, sizeof(*diag));
	c->presence = presence <= MAILMODE_PARTIAL ? (enum mailmode_presence)presence
	                                            : MAILMODE_PARTIAL;
	if (rd.bad || rd.left) {
		free(c->text);
		c->text = NULL;
		return -1;
	}
	return 0;
}

/* Sends the call and serves the helper's requests until its result. */
static int run(struct mm_plugin *p, struct mm_helper *one, const struct mailmode_request *req,
               struct mm_call *c, struct mailmode_diag *diag)
{
	int64_t deadline = mm_host_mono_ms(NULL) + p->call_timeout_ms;
	int unknown = mm_call_writes(c);
	const char *what = mm_call_name(c->kind), *problem;
	struct mm_wire_buf b = { 0 };
	enum mm_wire_status st;
	struct mm_wire_msg m;
	enum failure why;
	int rc = MAILMODE_ERR_FAILED;

	mm_call_encode(&b, req, c);
	if (mm_wire_send(one->fd, MM_MSG_CALL, &b) != 0) {
		mm_wire_buf_free(&b);
		/* Not sent, so not run. */
		fail(p, one, what, req->domain, HELPER_GONE, NULL, 0, diag);
		return MAILMODE_ERR_FAILED;
	}
	mm_wire_buf_free(&b);
	for (;;) {
		st = mm_wire_recv(one->fd, deadline, MM_WIRE_MESSAGE_MAX, &m);
		if (st != MM_WIRE_OK)
			break;
		if (m.type == MM_MSG_RESULT) {
			if (read_result(&m, c, diag, &rc) != 0)
				st = MM_WIRE_BAD;
			break;
		}
		if (serve_request(p, one, req, &m) != 0) {
			st = MM_WIRE_BAD;
			break;
		}
		free(m.data);
	}
	free(m.data);
	if (st == MM_WIRE_OK)
		return rc;
	why = failure_of(st, &problem);
	fail(p, one, what, req->domain, why, problem, unknown, diag);
	return unknown ? MAILMODE_ERR_UNKNOWN : MAILMODE_ERR_FAILED;
}

int mm_isolate_call(struct mm_plugin *p, const struct mailmode_request *req, struct mm_call *c,
                    const char *resources, struct mailmode_diag *diag)
{
	struct mm_helper *one = acquire(p->helpers, resources);
	int rc = MAILMODE_OK;

	if (!one) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 1, "plugin %s: out of memory", p->desc->name);
		return MAILMODE_ERR_NOMEM;
	}
	if (one->pid == 0)
		rc = start(p, one, diag);
	if (rc == MAILMODE_OK)
		rc = run(p, one, req, c, diag);
	release(p->helpers, one);
	return rc;
}
