#ifndef MM_OUTPUT_H
#define MM_OUTPUT_H

#include <mailmode/plugin.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#define MM_BOARD_MAX 64
#define MM_SEEN_MAX 64
/* Off a terminal a status line is a new line of a log someone reads later:
 * one every 30 s says the command is alive without drowning the log. */
#define MM_PROGRESS_QUIET_MS 30000

/* What the core prints and how: shared by the host services and the CLI. */
struct mm_output {
	int verbosity;        /* -1 quiet, 0 normal, 1 verbose */
	int json;             /* --json: stdout carries one JSON document */
	int progress_live;    /* a terminal: progress rewrites a line */
	FILE *err;            /* where everything goes; NULL: stderr */
	int64_t (*clock_ms)(void); /* monotonic; NULL: the system's */
	int columns;          /* terminal width; 0: asked of the terminal */
	/* stderr is shared by every thread of a runbook: lines must not
	 * interleave, and a live progress line is cleared before a log line. */
	pthread_mutex_t lock;
	int progress_shown;
	int64_t started_ms;   /* when the command began */
	int64_t printed_ms;   /* when a plain (not live) status line was last written */
	/* Warnings already written: the same one from preflight and setup,
	 * or again in the result's detail, is said once. */
	uint32_t seen[MM_SEEN_MAX];
	int seen_count;
	/* The runbook's board: one line per worker (see mm_board_open). */
	int board_slots;
	int board_drawn;
	char board[MM_BOARD_MAX][160];
};

/* Sets up out for a command: live progress only on a terminal that can
 * rewrite a line (not TERM=dumb) and not under --json. */
void mm_output_init(struct mm_output *out, int verbosity, int json);

/* "debug", "info", "warning", "error". */
const char *mm_log_level_name(enum mailmode_log_level level);

/* Whether a line of this level is shown at the output's verbosity. */
int mm_log_shown(const struct mm_output *out, enum mailmode_log_level level);
/* A log line; prefix (a plugin's name, or "") comes before the level. */
void mm_output_vlog(struct mm_output *out, const char *prefix, enum mailmode_log_level level,
                    const char *fmt, va_list ap);
/* Core-side log lines (no plugin name). */
void mm_log(struct mm_output *out, enum mailmode_log_level level, const char *fmt, ...)
	MAILMODE_PRINTF(3, 4);
/* A status line: on a terminal rewritten in place, cut to its width; off
 * one, every line with -v, else at most one per MM_PROGRESS_QUIET_MS with
 * the time elapsed.  mm_progress_end clears it. */
void mm_output_vprogress(struct mm_output *out, const char *prefix, const char *fmt,
                         va_list ap);
void mm_progress(struct mm_output *out, const char *fmt, ...) MAILMODE_PRINTF(2, 3);
void mm_vprogress(struct mm_output *out, const char *fmt, va_list ap);
/* A board of live lines, one per slot (a runbook's workers): on a terminal
 * they are redrawn in place below the log; otherwise paced like status
 * lines. */
void mm_board_open(struct mm_output *out, int slots);
void mm_board_vset(struct mm_output *out, int slot, const char *fmt, va_list ap);
void mm_board_close(struct mm_output *out);
void mm_progress_end(struct mm_output *out);
/* Shows a plugin's diagnostic (a warning on success, say) with its detail. */
void mm_print_diag(struct mm_output *out, const struct mailmode_diag *diag);
/* Writes text to stderr, each line indented. */
void mm_print_block(const char *text, const char *indent);

#endif
