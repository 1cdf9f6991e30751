/* The pacing of status lines off a terminal (at most one per 30 s, with
 * the time elapsed; every one with -v), the runbook board's the same way,
 * a warning said once, and status lines cut to the terminal's width
 * without splitting a UTF-8 character.  A fake clock drives the time. */
#include "output.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

static int64_t fake_now;

static int64_t fake_clock(void)
{
	return fake_now;
}

static void setup(struct mm_output *out, int verbosity, FILE *f)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_init(&out->lock, NULL);
	out->err = f;
	out->clock_ms = fake_clock;
	fake_now = 1000000;
	mm_output_init(out, verbosity, 0);
}

/* What was written to f, as a NUL-terminated string (caller frees). */
static char *written(FILE *f)
{
	long size;
	char *text;

	fflush(f);
	size = ftell(f);
	text = calloc(1, (size_t)size + 1);
	rewind(f);
	if (fread(text, 1, (size_t)size, f) != (size_t)size)
		text[0] = '\0';
	return text;
}

static int count(const char *text, const char *what)
{
	int n = 0;

	while ((text = strstr(text, what)) != NULL) {
		n++;
		text += strlen(what);
	}
	return n;
}

/* A day-long cache wait reporting every second, as the engine does. */
static void day_of_waiting(struct tap *t)
{
	struct mm_output out;
	FILE *f = tmpfile();
	char *text;
	int s;

	setup(&out, 0, f);
	for (s = 0; s < 86400; s++) {
		mm_progress(&out, "a.test: keeping gateway mode %d s more", 86400 - s);
		fake_now += 1000;
	}
	text = written(f);
	tap_is_int(t, count(text, "\n"), 2879, "a day of waiting off a terminal: one line per 30 s");
	tap_ok(t, strstr(text, "mailmode: a.test: keeping gateway mode 86370 s more (30s)\n") != NULL,
	       "the first after 30 s, with the time elapsed");
	tap_ok(t, strstr(text, "(1h00m)\n") != NULL, "elapsed in hours and minutes later on");
	free(text);
	fclose(f);
}

static void verbose_shows_all(struct tap *t)
{
	struct mm_output out;
	FILE *f = tmpfile();
	char *text;
	int s;

	setup(&out, 1, f);
	for (s = 0; s < 100; s++) {
		mm_progress(&out, "step %d", s);
		fake_now += 1000;
	}
	text = written(f);
	tap_is_int(t, count(text, "\n"), 100, "-v: every status line");
	tap_ok(t, strstr(text, "mailmode: step 0\n") != NULL, "-v: without the elapsed time");
	free(text);
	fclose(f);
}

static void board_set(struct mm_output *out, int slot, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mm_board_vset(out, slot, fmt, ap);
	va_end(ap);
}

static void board_paced(struct tap *t)
{
	struct mm_output out;
	FILE *f = tmpfile();
	char *text;
	int s;

	setup(&out, 0, f);
	mm_board_open(&out, 3);
	for (s = 0; s < 61; s++) {
		board_set(&out, s % 2, "worker %d", s % 2);
		fake_now += 1000;
	}
	mm_board_close(&out);
	text = written(f);
	tap_is_int(t, count(text, "\n"), 4, "the board off a terminal: the slots in use once per 30 s");
	free(text);
	fclose(f);
}

static void warning_once(struct tap *t)
{
	struct mm_output out;
	struct mailmode_diag diag = { 0 };
	FILE *f = tmpfile();
	char *text;

	setup(&out, 0, f);
	mm_log(&out, MAILMODE_LOG_WARNING, "mail to %s is not covered", "x.onmicrosoft.com");
	mm_log(&out, MAILMODE_LOG_WARNING, "mail to %s is not covered", "x.onmicrosoft.com");
	mm_log(&out, MAILMODE_LOG_WARNING, "mail to %s is not covered", "y.onmicrosoft.com");
	diag.severity = MAILMODE_SEV_WARNING;
	snprintf(diag.summary, sizeof(diag.summary), "setup of a.test done with 2 warning(s)");
	snprintf(diag.detail, sizeof(diag.detail),
	         "mail to x.onmicrosoft.com is not covered\nsomething new");
	mm_print_diag(&out, &diag);
	text = written(f);
	tap_is_int(t, count(text, "x.onmicrosoft.com"), 1, "a repeated warning is said once");
	tap_is_int(t, count(text, "y.onmicrosoft.com"), 1, "another warning is said");
	tap_ok(t, strstr(text, "  something new\n") != NULL, "the result's new detail is said");
	free(text);
	fclose(f);
}

static void cut_to_width(struct tap *t)
{
	struct mm_output out;
	FILE *f = tmpfile();
	char *text;

	setup(&out, 0, f);
	out.progress_live = 1;
	out.columns = 20;
	/* "mailmode: " is 10 bytes; each "é" two. */
	mm_progress(&out, "%s", "ééééééééé");
	mm_progress_end(&out);
	text = written(f);
	tap_is_str(t, text, "\r\033[Kmailmode: éééé\r\033[K",
	           "cut to 19 columns, not inside a character");
	free(text);
	fclose(f);
}

int main(void)
{
	struct tap t = { 0 };

	tap_plan(10);
	day_of_waiting(&t);
	verbose_shows_all(&t);
	board_paced(&t);
	warning_once(&t);
	cut_to_width(&t);
	return t.failed ? 1 : 0;
}
