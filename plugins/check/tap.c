/* TAP output of mailmode-plugin-check (see tap.h). */
#include "tap.h"

#include <stdarg.h>
#include <string.h>

void tap_start(struct tap *tap, FILE *out, int planned)
{
	tap->out = out;
	tap->planned = planned;
	tap->count = 0;
	tap->failed = 0;
	fprintf(out, "1..%d\n", planned);
	fflush(out);
}

/* A description must stay on one line and must not contain '#', which TAP
 * would read as the start of a directive. */
static void print_description(FILE *out, const char *text)
{
	for (; *text; text++)
		fputc(*text == '\n' || *text == '\r' ? ' ' : *text == '#' ? '_' : *text, out);
}

static void print_notes(FILE *out, const char *notes)
{
	const char *line = notes;

	while (line && *line) {
		const char *eol = strchr(line, '\n');
		int len = eol ? (int)(eol - line) : (int)strlen(line);

		fprintf(out, "# %.*s\n", len, line);
		line = eol ? eol + 1 : NULL;
	}
}

void tap_report(struct tap *tap, const struct verdict *verdict, const char *fmt, ...)
{
	char description[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(description, sizeof(description), fmt, ap);
	va_end(ap);
	tap->count++;
	if (verdict->failed)
		tap->failed++;
	fprintf(tap->out, "%sok %d - ", verdict->failed ? "not " : "", tap->count);
	print_description(tap->out, description);
	fputc('\n', tap->out);
	print_notes(tap->out, verdict->notes);
	/* Flushed per check: an author watching a slow verify sees progress, and
	 * a forked child never inherits unwritten TAP lines. */
	fflush(tap->out);
}

void tap_skip(struct tap *tap, const char *reason, const char *fmt, ...)
{
	char description[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(description, sizeof(description), fmt, ap);
	va_end(ap);
	tap->count++;
	fprintf(tap->out, "ok %d - ", tap->count);
	print_description(tap->out, description);
	fputs(" # SKIP ", tap->out);
	print_description(tap->out, reason);
	fputc('\n', tap->out);
	fflush(tap->out);
}

int tap_all_passed(const struct tap *tap)
{
	return tap->failed == 0 && tap->count == tap->planned;
}

void verdict_init(struct verdict *verdict)
{
	verdict->failed = 0;
	verdict->used = 0;
	verdict->notes[0] = '\0';
}

static void add_line(struct verdict *verdict, const char *prefix, const char *fmt, va_list ap)
{
	size_t room = sizeof(verdict->notes) - verdict->used;
	int n;

	if (room < 2)
		return;
	n = snprintf(verdict->notes + verdict->used, room, "%s", prefix);
	if (n < 0 || (size_t)n >= room)
		goto full;
	verdict->used += (size_t)n;
	room -= (size_t)n;
	n = vsnprintf(verdict->notes + verdict->used, room, fmt, ap);
	if (n < 0 || (size_t)n >= room - 1)
		goto full;
	verdict->used += (size_t)n;
	verdict->notes[verdict->used++] = '\n';
	verdict->notes[verdict->used] = '\0';
	return;
full:
	/* Truncated: keep what fits, always ending the text with a newline. */
	verdict->used = sizeof(verdict->notes) - 1;
	verdict->notes[verdict->used - 1] = '\n';
	verdict->notes[verdict->used] = '\0';
}

void verdict_fail(struct verdict *verdict, const char *fmt, ...)
{
	va_list ap;

	verdict->failed = 1;
	va_start(ap, fmt);
	add_line(verdict, "", fmt, ap);
	va_end(ap);
}

void verdict_note(struct verdict *verdict, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_line(verdict, "", fmt, ap);
	va_end(ap);
}

void verdict_block(struct verdict *verdict, const char *prefix, const char *text)
{
	const char *line = text;

	while (line && *line) {
		const char *eol = strchr(line, '\n');
		int len = eol ? (int)(eol - line) : (int)strlen(line);

		verdict_note(verdict, "%s%.*s", prefix, len, line);
		line = eol ? eol + 1 : NULL;
	}
}
