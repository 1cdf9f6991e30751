#ifndef MM_HOST_H
#define MM_HOST_H

#include <mailmode/plugin.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

struct mm_config;

#define MM_BOARD_MAX 64

/* What the core prints and how: shared by the host services and the CLI. */
struct mm_output {
	int verbosity;        /* -1 quiet, 0 normal, 1 verbose */
	int json;             /* --json: stdout carries one JSON document */
	int progress_live;    /* stderr is a terminal: progress rewrites a line */
	/* stderr is shared by every thread of a runbook: lines must not
	 * interleave, and a live progress line is cleared before a log line. */
	pthread_mutex_t lock;
	int progress_shown;
	/* The runbook's board: one line per worker (see mm_board_open). */
	int board_slots;
	int board_drawn;
	char board[MM_BOARD_MAX][160];
};

/* The context behind one plugin's host table (host->handle). */
struct mm_host_ctx {
	struct mailmode_host table;
	const struct mm_config *config;
	struct mm_output *output;
	char name[64];        /* the plugin's mode name, prefixed to its log lines */
};

void mm_host_init(struct mm_host_ctx *ctx, const struct mm_config *config,
                  struct mm_output *output, const char *name);

/* The host's log service; handle is a struct mm_host_ctx. */
void mm_host_log(void *handle, enum mailmode_log_level level, const char *fmt, ...)
	MAILMODE_PRINTF(3, 4);
/* The host's clock services (handle unused: one clock for all). */
int64_t mm_host_wall_ms(void *handle);
int64_t mm_host_mono_ms(void *handle);
void mm_host_sleep_ms(void *handle, int64_t ms);

/* Shared with the core, which fills diagnostics of its own. */
void mm_diag_set(struct mailmode_diag *diag, enum mailmode_severity severity, int retryable,
                 const char *fmt, ...) MAILMODE_PRINTF(4, 5);
void mm_diag_append(struct mailmode_diag *diag, const char *fmt, ...) MAILMODE_PRINTF(2, 3);

/* "debug", "info", "warning", "error". */
const char *mm_log_level_name(enum mailmode_log_level level);

/* Whether a line of this level is shown at the output's verbosity. */
int mm_log_shown(const struct mm_output *out, enum mailmode_log_level level);
/* Core-side log lines (no plugin name). */
void mm_log(struct mm_output *out, enum mailmode_log_level level, const char *fmt, ...)
	MAILMODE_PRINTF(3, 4);
/* A live status line (rewritten in place on a terminal, one line each
 * otherwise); mm_progress_end clears it. */
void mm_progress(struct mm_output *out, const char *fmt, ...) MAILMODE_PRINTF(2, 3);
void mm_vprogress(struct mm_output *out, const char *fmt, va_list ap);
/* A board of live lines, one per slot (a runbook's workers): on a terminal
 * they are redrawn in place below the log, otherwise each update is one
 * plain line. */
void mm_board_open(struct mm_output *out, int slots);
void mm_board_vset(struct mm_output *out, int slot, const char *fmt, va_list ap);
void mm_board_close(struct mm_output *out);
void mm_progress_end(struct mm_output *out);
/* Shows a plugin's diagnostic (a warning on success, say) with its detail. */
void mm_print_diag(struct mm_output *out, const struct mailmode_diag *diag);
/* Writes text to stderr, each line indented. */
void mm_print_block(const char *text, const char *indent);

#endif
