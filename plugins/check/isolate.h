#ifndef MMCHECK_ISOLATE_H
#define MMCHECK_ISOLATE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Runs a function in a forked child so that whatever the plugin does there
 * (crash, exit(), hang, stray output) is observed instead of suffered.
 *
 * The child's stdout and stderr are pipes the parent reads; its stdin is
 * /dev/null; it leads its own process group so a timeout kills everything
 * it started.  The function talks back through a message channel: framed
 * messages (type, length, bytes) on a third pipe.
 */

/* The first bytes of what the child wrote to one of its streams. */
#define ISOLATE_HEAD_MAX 2048
struct isolate_capture {
	size_t bytes;               /* everything written */
	size_t head_len;
	char head[ISOLATE_HEAD_MAX + 1];
};

struct isolate_outcome {
	int exited;                 /* exit status known */
	int exit_status;
	int signaled;
	int signal;
	int timed_out;              /* killed after the time limit */
	long elapsed_ms;
	struct isolate_capture out, err;
	char *messages;             /* the raw message stream */
	size_t messages_len;
	char error[256];            /* the checker's own trouble (fork, pipes) */
};

/* A message channel end in the child; sends are serialised because a
 * plugin may log from several threads. */
struct isolate_channel;

typedef void (*isolate_fn)(void *arg, struct isolate_channel *channel);

/* Runs fn(arg, channel) in a child for at most timeout_ms.  Returns 0 when
 * the child was run (whatever became of it: see the outcome), -1 when it
 * could not be (outcome->error says why). */
int isolate_run(isolate_fn fn, void *arg, long timeout_ms, struct isolate_outcome *outcome);
void isolate_outcome_free(struct isolate_outcome *outcome);

/* In the child: sends one message.  Returns 0 or -1 (parent gone). */
int isolate_send(struct isolate_channel *channel, uint32_t type, const void *data, size_t len);

/* In the parent: walks the messages; *pos starts at 0.  Returns 1 with the
 * next message, 0 at the end (a truncated last message is ignored). */
int isolate_next(const struct isolate_outcome *outcome, size_t *pos, uint32_t *type,
                 const char **data, size_t *len);

/* Monotonic milliseconds, for the callers' own deadlines. */
int64_t isolate_now_ms(void);

#endif
