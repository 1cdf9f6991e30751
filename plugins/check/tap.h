#ifndef MMCHECK_TAP_H
#define MMCHECK_TAP_H

#include <mailmode/plugin.h>

#include <stddef.h>
#include <stdio.h>

/* TAP on a stream: the plan first, then one line per check, each failure
 * followed by its reasons as "# " lines. */
struct tap {
	FILE *out;
	int planned;
	int count;
	int failed;
};

/* What one check found: whether it failed, and lines explaining why (or
 * notes worth showing even when it passed).  Collected first so that the
 * reasons print under the result line, where TAP readers expect them. */
#define VERDICT_NOTES_MAX 16384
struct verdict {
	int failed;
	size_t used;
	char notes[VERDICT_NOTES_MAX];
};

void tap_start(struct tap *tap, FILE *out, int planned);
/* Prints "ok N - ..." or "not ok N - ..." and the verdict's notes. */
void tap_report(struct tap *tap, const struct verdict *verdict, const char *fmt, ...)
	MAILMODE_PRINTF(3, 4);
/* Prints "ok N - ... # SKIP reason". */
void tap_skip(struct tap *tap, const char *reason, const char *fmt, ...) MAILMODE_PRINTF(3, 4);
/* 0 when every check passed or was skipped, and all planned ones ran. */
int tap_all_passed(const struct tap *tap);

void verdict_init(struct verdict *verdict);
/* A reason the check fails (one line). */
void verdict_fail(struct verdict *verdict, const char *fmt, ...) MAILMODE_PRINTF(2, 3);
/* A line shown with the result without failing it. */
void verdict_note(struct verdict *verdict, const char *fmt, ...) MAILMODE_PRINTF(2, 3);
/* Adds text of any number of lines, each prefixed. */
void verdict_block(struct verdict *verdict, const char *prefix, const char *text);

#endif
