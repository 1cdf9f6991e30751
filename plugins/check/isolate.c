/* Forked, captured, time-limited calls (see isolate.h). */
#include "isolate.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A plugin that floods the channel is stopped rather than allowed to eat
 * the checker's memory. */
#define MESSAGES_MAX (64u * 1024 * 1024)
/* After the child exits, how long to wait for its pipes to close: a
 * grandchild it left behind may hold them open. */
#define DRAIN_GRACE_MS 500
#define POLL_SLICE_MS 100

struct isolate_channel {
	int fd;
	pthread_mutex_t lock;
};

struct frame_header {
	uint32_t type;
	uint32_t len;
};

int64_t isolate_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int isolate_send(struct isolate_channel *channel, uint32_t type, const void *data, size_t len)
{
	struct frame_header header = { .type = type, .len = (uint32_t)len };
	int rc;

	if (len > MESSAGES_MAX)
		return -1;
	pthread_mutex_lock(&channel->lock);
	rc = write_all(channel->fd, &header, sizeof(header));
	if (rc == 0 && len > 0)
		rc = write_all(channel->fd, data, len);
	pthread_mutex_unlock(&channel->lock);
	return rc;
}

int isolate_next(const struct isolate_outcome *outcome, size_t *pos, uint32_t *type,
                 const char **data, size_t *len)
{
	struct frame_header header;

	if (outcome->messages_len - *pos < sizeof(header))
		return 0;
	memcpy(&header, outcome->messages + *pos, sizeof(header));
	if (outcome->messages_len - *pos - sizeof(header) < header.len)
		return 0;
	*type = header.type;
	*data = outcome->messages + *pos + sizeof(header);
	*len = header.len;
	*pos += sizeof(header) + header.len;
	return 1;
}

/* The child: wires its standard streams to the pipes, runs fn, and leaves
 * with _exit so that nothing inherited from the parent (stdio buffers,
 * atexit handlers, the leak checker of a sanitizer build) runs twice. */
static void run_child(isolate_fn fn, void *arg, int msg_fd, int out_fd, int err_fd,
                      pid_t parent)
{
	struct isolate_channel channel = { .fd = msg_fd };
	int null_fd;

	setpgid(0, 0);
	/* In its own process group the child misses the terminal's Ctrl-C: make
	 * it die with the checker instead of hanging on as an orphan. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
		_exit(125);
	null_fd = open("/dev/null", O_RDONLY);
	if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 ||
	    dup2(err_fd, STDERR_FILENO) < 0)
		_exit(125);
	close(null_fd);
	close(out_fd);
	close(err_fd);
	pthread_mutex_init(&channel.lock, NULL);
	fn(arg, &channel);
	_exit(0);
}

static void capture(struct isolate_capture *cap, const char *data, size_t len)
{
	size_t room = ISOLATE_HEAD_MAX - cap->head_len;
	size_t take = len < room ? len : room;

	memcpy(cap->head + cap->head_len, data, take);
	cap->head_len += take;
	cap->head[cap->head_len] = '\0';
	cap->bytes += len;
}

static int append_messages(struct isolate_outcome *outcome, const char *data, size_t len)
{
	char *grown;

	if (outcome->messages_len + len > MESSAGES_MAX)
		return -1;
	grown = realloc(outcome->messages, outcome->messages_len + len);
	if (!grown)
		return -1;
	memcpy(grown + outcome->messages_len, data, len);
	outcome->messages = grown;
	outcome->messages_len += len;
	return 0;
}

/* Reads what is there on one pipe; returns 1 while open, 0 at EOF, -1
 * when the channel overflowed. */
static int drain(int fd, int which, struct isolate_outcome *outcome)
{
	char buf[8192];
	ssize_t n = read(fd, buf, sizeof(buf));

	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 1 : 0;
	if (n == 0)
		return 0;
	if (which == 0)
		return append_messages(outcome, buf, (size_t)n) == 0 ? 1 : -1;
	capture(which == 1 ? &outcome->out : &outcome->err, buf, (size_t)n);
	return 1;
}

static void record_status(struct isolate_outcome *outcome, int status)
{
	if (WIFEXITED(status)) {
		outcome->exited = 1;
		outcome->exit_status = WEXITSTATUS(status);
	} else if (WIFSIGNALED(status)) {
		outcome->signaled = 1;
		outcome->signal = WTERMSIG(status);
	}
}

/* The parent: reads the three pipes until they close, the child is gone
 * and the time is up, whichever decides first. */
static void watch(pid_t pid, int fds[3], long timeout_ms, struct isolate_outcome *outcome)
{
	int64_t start = isolate_now_ms(), deadline = start + timeout_ms, drain_until = 0;
	int open_count = 3, reaped = 0, status, i;

	while (open_count > 0) {
		struct pollfd pfd[3];
		int64_t now = isolate_now_ms();
		int nfds = 0, map[3];

		if (!reaped && waitpid(pid, &status, WNOHANG) == pid) {
			reaped = 1;
			record_status(outcome, status);
			drain_until = now + DRAIN_GRACE_MS;
		}
		if (now >= deadline && !reaped) {
			outcome->timed_out = 1;
			break;
		}
		if (reaped && now >= drain_until)
			break;
		for (i = 0; i < 3; i++) {
			if (fds[i] < 0)
				continue;
			pfd[nfds].fd = fds[i];
			pfd[nfds].events = POLLIN;
			map[nfds++] = i;
		}
		if (poll(pfd, (nfds_t)nfds, POLL_SLICE_MS) < 0 && errno != EINTR)
			break;
		for (i = 0; i < nfds; i++) {
			int r;

			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = drain(fds[map[i]], map[i], outcome);
			if (r < 0) {
				snprintf(outcome->error, sizeof(outcome->error),
				         "the plugin sent more than %u bytes of results: stopped",
				         MESSAGES_MAX);
				kill(-pid, SIGKILL);
			}
			if (r <= 0) {
				close(fds[map[i]]);
				fds[map[i]] = -1;
				open_count--;
			}
		}
	}
	/* The pipes closed but the child lives on (it closed them itself): it
	 * still has until the deadline to finish. */
	while (!reaped && !outcome->timed_out) {
		struct timespec slice = { 0, 10 * 1000000 };

		if (waitpid(pid, &status, WNOHANG) == pid) {
			reaped = 1;
			record_status(outcome, status);
		} else if (isolate_now_ms() >= deadline) {
			outcome->timed_out = 1;
		} else {
			nanosleep(&slice, NULL);
		}
	}
	/* Whatever the child left running goes with it. */
	kill(-pid, SIGKILL);
	if (!reaped)
		waitpid(pid, &status, 0);
	outcome->elapsed_ms = (long)(isolate_now_ms() - start);
}

int isolate_run(isolate_fn fn, void *arg, long timeout_ms, struct isolate_outcome *outcome)
{
	int msg[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
	int fds[3], i, rc = -1;
	pid_t pid, parent = getpid();

	memset(outcome, 0, sizeof(*outcome));
	if (pipe2(msg, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 ||
	    pipe2(err, O_CLOEXEC) != 0) {
		snprintf(outcome->error, sizeof(outcome->error), "pipe: %s", strerror(errno));
		goto out;
	}
	/* The child inherits stdio buffers: empty them first. */
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		snprintf(outcome->error, sizeof(outcome->error), "fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		close(msg[0]);
		close(out[0]);
		close(err[0]);
		run_child(fn, arg, msg[1], out[1], err[1], parent);
	}
	/* Both sides set the group, so a kill right after fork still finds it. */
	setpgid(pid, pid);
	close(msg[1]);
	close(out[1]);
	close(err[1]);
	msg[1] = out[1] = err[1] = -1;
	fds[0] = msg[0];
	fds[1] = out[0];
	fds[2] = err[0];
	msg[0] = out[0] = err[0] = -1;
	watch(pid, fds, timeout_ms, outcome);
	for (i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	rc = 0;
out:
	for (i = 0; i < 2; i++) {
		if (msg[i] >= 0)
			close(msg[i]);
		if (out[i] >= 0)
			close(out[i]);
		if (err[i] >= 0)
			close(err[i]);
	}
	return rc;
}

void isolate_outcome_free(struct isolate_outcome *outcome)
{
	free(outcome->messages);
	outcome->messages = NULL;
	outcome->messages_len = 0;
}
