/* What a command writes to stderr: log lines, the live status line, the
 * runbook's board and a result's diagnostic.  On a terminal a status line is
 * rewritten in place and cut to the terminal's width (a wrapped line could
 * not be erased); elsewhere it becomes a plain line, paced so that a day of
 * waiting is a few thousand lines, not one per second. */
#include "output.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 1024

static FILE *err_of(const struct mm_output *out)
{
	return out->err ? out->err : stderr;
}

static int64_t system_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_ms(const struct mm_output *out)
{
	return out->clock_ms ? out->clock_ms() : system_mono_ms();
}

void mm_output_init(struct mm_output *out, int verbosity, int json)
{
	const char *term = getenv("TERM");

	out->verbosity = verbosity;
	out->json = json;
	out->progress_live = !json && isatty(fileno(err_of(out))) &&
	                     !(term && strcmp(term, "dumb") == 0);
	out->started_ms = now_ms(out);
	out->printed_ms = out->started_ms;
}

const char *mm_log_level_name(enum mailmode_log_level level)
{
	switch (level) {
	case MAILMODE_LOG_DEBUG: return "debug";
	case MAILMODE_LOG_INFO: return "info";
	case MAILMODE_LOG_WARNING: return "warning";
	case MAILMODE_LOG_ERROR: return "error";
	}
	return "log";
}

int mm_log_shown(const struct mm_output *out, enum mailmode_log_level level)
{
	if (out->verbosity < 0)
		return level >= MAILMODE_LOG_ERROR;
	if (out->verbosity == 0)
		return level >= MAILMODE_LOG_WARNING;
	return 1;
}

static int terminal_columns(const struct mm_output *out)
{
	struct winsize ws;
	const char *env;

	if (out->columns > 0)
		return out->columns;
	if (ioctl(fileno(err_of(out)), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	env = getenv("COLUMNS");
	if (env && atoi(env) > 0)
		return atoi(env);
	return 80;
}

/* Cuts line to fit one row (the last column is left free: some terminals
 * wrap on it), never inside a UTF-8 sequence. */
static void fit_width(const struct mm_output *out, char *line)
{
	size_t width = (size_t)terminal_columns(out) - 1, len = strlen(line);

	if (len <= width)
		return;
	while (width > 0 && ((unsigned char)line[width] & 0xC0) == 0x80)
		width--;
	line[width] = '\0';
}

static void elapsed_text(int64_t ms, char *out, size_t size)
{
	long long s = ms / 1000;

	if (s >= 3600)
		snprintf(out, size, "%lldh%02lldm", s / 3600, s / 60 % 60);
	else if (s >= 60)
		snprintf(out, size, "%lldm%02llds", s / 60, s % 60);
	else
		snprintf(out, size, "%llds", s);
}

static uint32_t text_hash(const char *text)
{
	uint32_t h = 2166136261u;

	while (*text)
		h = (h ^ (unsigned char)*text++) * 16777619u;
	return h;
}

static int seen(const struct mm_output *out, uint32_t h)
{
	int i;

	for (i = 0; i < out->seen_count; i++)
		if (out->seen[i] == h)
			return 1;
	return 0;
}

/* Remembers a warning; returns 1 when it was written before. */
static int seen_before(struct mm_output *out, const char *text)
{
	uint32_t h = text_hash(text);

	if (seen(out, h))
		return 1;
	if (out->seen_count < MM_SEEN_MAX)
		out->seen[out->seen_count++] = h;
	return 0;
}

static void status_clear(struct mm_output *out)
{
	if (out->progress_shown && out->progress_live)
		fputs("\r\033[K", err_of(out));
	out->progress_shown = 0;
}

/* The board: one live line per worker while a runbook runs.  Drawn below
 * the log lines; erased before a log line is written and drawn again. */
static void board_erase(struct mm_output *out)
{
	if (out->board_drawn > 0)
		fprintf(err_of(out), "\033[%dA\033[J", out->board_drawn);
	out->board_drawn = 0;
}

static void board_draw(struct mm_output *out)
{
	char line[sizeof(out->board[0])];
	int i;

	for (i = 0; i < out->board_slots; i++) {
		memcpy(line, out->board[i], sizeof(line));
		fit_width(out, line);
		fprintf(err_of(out), "\033[K%s\n", line);
	}
	out->board_drawn = out->board_slots;
	fflush(err_of(out));
}

void mm_output_vlog(struct mm_output *out, const char *prefix, enum mailmode_log_level level,
                    const char *fmt, va_list ap)
{
	char text[LINE_MAX_BYTES];

	if (!mm_log_shown(out, level))
		return;
	vsnprintf(text, sizeof(text), fmt, ap);
	pthread_mutex_lock(&out->lock);
	if (level == MAILMODE_LOG_WARNING && seen_before(out, text))
		goto out;
	status_clear(out);
	if (out->progress_live)
		board_erase(out);
	fprintf(err_of(out), "mailmode: %s%s%s: %s\n", prefix, prefix[0] ? ": " : "",
	        mm_log_level_name(level), text);
	if (out->progress_live && out->board_slots)
		board_draw(out);
out:
	pthread_mutex_unlock(&out->lock);
}

void mm_log(struct mm_output *out, enum mailmode_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mm_output_vlog(out, "", level, fmt, ap);
	va_end(ap);
}

/* Off a terminal and without -v: whether a plain status line is due now
 * (the caller holds the lock); fills elapsed for its suffix. */
static int plain_line_due(struct mm_output *out, char *elapsed, size_t size)
{
	int64_t now = now_ms(out);

	elapsed[0] = '\0';
	if (out->verbosity >= 1)
		return 1;
	if (now - out->printed_ms < MM_PROGRESS_QUIET_MS)
		return 0;
	out->printed_ms = now;
	elapsed_text(now - out->started_ms, elapsed, size);
	return 1;
}

void mm_board_open(struct mm_output *out, int slots)
{
	pthread_mutex_lock(&out->lock);
	out->board_slots = slots < MM_BOARD_MAX ? slots : MM_BOARD_MAX;
	memset(out->board, 0, sizeof(out->board));
	pthread_mutex_unlock(&out->lock);
}

void mm_board_close(struct mm_output *out)
{
	pthread_mutex_lock(&out->lock);
	if (out->progress_live)
		board_erase(out);
	out->board_slots = 0;
	pthread_mutex_unlock(&out->lock);
}

/* Off a terminal the whole board is one batch of lines: with -v each
 * update, else every slot in use once per MM_PROGRESS_QUIET_MS. */
static void board_plain(struct mm_output *out, int slot)
{
	char elapsed[32];
	int i;

	if (!plain_line_due(out, elapsed, sizeof(elapsed)))
		return;
	if (!elapsed[0]) {
		fprintf(err_of(out), "mailmode: %s\n", out->board[slot]);
		return;
	}
	for (i = 0; i < out->board_slots; i++)
		if (out->board[i][0])
			fprintf(err_of(out), "mailmode: %s (%s)\n", out->board[i], elapsed);
	fflush(err_of(out));
}

void mm_board_vset(struct mm_output *out, int slot, const char *fmt, va_list ap)
{
	if (out->verbosity < 0 || slot < 0 || slot >= out->board_slots)
		return;
	pthread_mutex_lock(&out->lock);
	vsnprintf(out->board[slot], sizeof(out->board[slot]), fmt, ap);
	if (out->progress_live) {
		board_erase(out);
		board_draw(out);
	} else {
		board_plain(out, slot);
	}
	pthread_mutex_unlock(&out->lock);
}

void mm_output_vprogress(struct mm_output *out, const char *prefix, const char *fmt,
                         va_list ap)
{
	char line[LINE_MAX_BYTES], elapsed[32];
	int len;

	/* On the board only the engine's lines are shown: a plugin's cannot be
	 * told apart between the domains running at once. */
	if (out->verbosity < 0 || (out->board_slots && prefix[0]))
		return;
	len = snprintf(line, sizeof(line), "mailmode: %s%s", prefix, prefix[0] ? ": " : "");
	vsnprintf(line + len, sizeof(line) - (size_t)len, fmt, ap);
	pthread_mutex_lock(&out->lock);
	if (out->progress_live) {
		fit_width(out, line);
		fprintf(err_of(out), "\r\033[K%s", line);
		out->progress_shown = 1;
	} else if (plain_line_due(out, elapsed, sizeof(elapsed))) {
		fprintf(err_of(out), elapsed[0] ? "%s (%s)\n" : "%s\n", line, elapsed);
	}
	fflush(err_of(out));
	pthread_mutex_unlock(&out->lock);
}

void mm_vprogress(struct mm_output *out, const char *fmt, va_list ap)
{
	mm_output_vprogress(out, "", fmt, ap);
}

void mm_progress(struct mm_output *out, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mm_output_vprogress(out, "", fmt, ap);
	va_end(ap);
}

void mm_progress_end(struct mm_output *out)
{
	pthread_mutex_lock(&out->lock);
	status_clear(out);
	fflush(err_of(out));
	pthread_mutex_unlock(&out->lock);
}

/* Each line of text, indented; a warning already written is not repeated. */
static void print_block(struct mm_output *out, const char *text, const char *indent,
                        int skip_seen)
{
	const char *line = text;
	char one[LINE_MAX_BYTES];

	while (line && *line) {
		const char *eol = strchr(line, '\n');
		int len = eol ? (int)(eol - line) : (int)strlen(line);

		snprintf(one, sizeof(one), "%.*s", len, line);
		if (!skip_seen || !seen_before(out, one))
			fprintf(err_of(out), "%s%s\n", indent, one);
		line = eol ? eol + 1 : NULL;
	}
}

void mm_print_diag(struct mm_output *out, const struct mailmode_diag *diag)
{
	if (diag->severity == MAILMODE_SEV_NONE || out->json || out->verbosity < 0)
		return;
	pthread_mutex_lock(&out->lock);
	status_clear(out);
	fprintf(err_of(out), "mailmode: %s: %s\n",
	        diag->severity == MAILMODE_SEV_ERROR ? "error" :
	        diag->severity == MAILMODE_SEV_WARNING ? "warning" : "info", diag->summary);
	print_block(out, diag->detail, "  ", diag->severity == MAILMODE_SEV_WARNING);
	pthread_mutex_unlock(&out->lock);
}

void mm_print_block(const char *text, const char *indent)
{
	struct mm_output plain = { .err = stderr };

	print_block(&plain, text, indent, 0);
}
