#include "runbook.h"

#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_PARALLEL 4
#define DEFAULT_TENANT_CAP 2
#define DEFAULT_VERIFY_TIMEOUT_MS (15L * 60 * 1000)
#define DEFAULT_POLL_INTERVAL_MS (10L * 1000)
#define DEFAULT_FAILURE_BUDGET 3
#define MAX_PARALLEL 64

/* inih reads through us, so we know the line each entry stands on. */
struct reader {
	FILE *f;
	char *text;                 /* the line being read (getline) */
	size_t textlen;
	int line;
	struct mm_runbook *rb;
};

void mm_runbook_error(struct mm_runbook *rb, int line, const char *fmt, ...)
{
	char reason[MM_ERR_MAX], *grown;
	size_t used = rb->errors ? strlen(rb->errors) : 0;
	int n;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	n = line > 0 ? snprintf(NULL, 0, "%s:%d: %s\n", rb->path, line, reason)
	             : snprintf(NULL, 0, "%s: %s\n", rb->path, reason);
	grown = realloc(rb->errors, used + (size_t)n + 1);
	if (!grown)
		return;
	rb->errors = grown;
	if (line > 0)
		snprintf(grown + used, (size_t)n + 1, "%s:%d: %s\n", rb->path, line, reason);
	else
		snprintf(grown + used, (size_t)n + 1, "%s: %s\n", rb->path, reason);
	rb->nerrors++;
}

/* inih skips lines it cannot parse after noting only the first; each one
 * is named here instead. */
static void check_syntax(struct reader *r, const char *text)
{
	while (isspace((unsigned char)*text))
		text++;
	if (*text == '\0' || *text == ';' || *text == '#')
		return;
	if (*text == '[') {
		if (!strchr(text, ']'))
			mm_runbook_error(r->rb, r->line, "a [section] header without its ']'");
		return;
	}
	if (!strchr(text, '='))
		mm_runbook_error(r->rb, r->line,
		                 "expected 'DOMAIN = MODE [PROFILE]', 'KEY = VALUE' or '[section]'");
}

/* One whole line per call, so line numbers stay right: inih's buffer is
 * INI_MAX_LINE bytes, and a longer line (a long comment, say) would come
 * back in pieces that look like lines of their own. */
static char *read_line(char *buf, int size, void *stream)
{
	struct reader *r = stream;
	ssize_t len = getline(&r->text, &r->textlen, r->f);
	const char *p;

	if (len < 0)
		return NULL;
	r->line++;
	for (p = r->text; isspace((unsigned char)*p); p++)
		;
	if (*p == ';' || *p == '#') {
		snprintf(buf, (size_t)size, "\n");
		return buf;
	}
	if (len >= size) {
		mm_runbook_error(r->rb, r->line, "line longer than %d characters", size - 1);
		snprintf(buf, (size_t)size, "\n");
		return buf;
	}
	check_syntax(r, r->text);
	memcpy(buf, r->text, (size_t)len + 1);
	return buf;
}

static int read_int(struct mm_runbook *rb, int line, const char *key, const char *value,
                    int min, int max, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(value, &end, 10);
	if (end == value || *end != '\0' || errno || v < min || v > max) {
		mm_runbook_error(rb, line, "%s = %s: want a whole number from %d to %d", key, value,
		                 min, max);
		return -1;
	}
	*out = (int)v;
	return 0;
}

static void read_option(struct mm_runbook *rb, int line, const char *key, const char *value)
{
	if (strcmp(key, "parallel") == 0)
		read_int(rb, line, key, value, 1, MAX_PARALLEL, &rb->parallel);
	else if (strcmp(key, "tenant_cap") == 0)
		read_int(rb, line, key, value, 1, MAX_PARALLEL, &rb->tenant_cap);
	else if (strcmp(key, "failure_budget") == 0)
		read_int(rb, line, key, value, 0, 1000000, &rb->failure_budget);
	else if (strcmp(key, "verify_timeout") == 0 || strcmp(key, "poll_interval") == 0) {
		long *ms = key[0] == 'v' ? &rb->verify_timeout_ms : &rb->poll_interval_ms;

		if (mm_config_duration(value, ms) != 0 || *ms <= 0)
			mm_runbook_error(rb, line, "%s = %s: not a duration (e.g. 15m, 30s, 500ms)", key,
			                 value);
	} else
		mm_runbook_error(rb, line,
		                 "unknown option '%s' in [runbook] (known: parallel, tenant_cap, verify_timeout, poll_interval, failure_budget)",
		                 key);
}

static void read_domain(struct mm_runbook *rb, int line, const char *name, const char *value)
{
	struct mm_runbook_entry entry = { .line = line }, *grown;
	char why[MM_ERR_MAX], extra[2];
	size_t i;
	int fields;

	if (mm_domain_normalize(name, entry.domain, why, sizeof(why)) != 0) {
		mm_runbook_error(rb, line, "%s", why);
		return;
	}
	fields = sscanf(value, "%63s %255s %1s", entry.mode, entry.profile, extra);
	if (fields < 1 || fields > 2) {
		mm_runbook_error(rb, line, "%s = %s: want MODE [PROFILE]", entry.domain, value);
		return;
	}
	for (i = 0; i < rb->count; i++)
		if (strcmp(rb->entries[i].domain, entry.domain) == 0) {
			mm_runbook_error(rb, line, "%s is listed twice (first on line %d)", entry.domain,
			                 rb->entries[i].line);
			return;
		}
	grown = realloc(rb->entries, (rb->count + 1) * sizeof(*grown));
	if (!grown) {
		mm_runbook_error(rb, line, "out of memory");
		return;
	}
	rb->entries = grown;
	rb->entries[rb->count++] = entry;
}

static int on_entry(void *user, const char *section, const char *key, const char *value)
{
	struct reader *r = user;

	if (strcmp(section, "runbook") == 0)
		read_option(r->rb, r->line, key, value);
	else if (strcmp(section, "domains") == 0)
		read_domain(r->rb, r->line, key, value);
	else if (section[0] == '\0')
		mm_runbook_error(r->rb, r->line, "'%s' is outside [runbook] and [domains]", key);
	else
		mm_runbook_error(r->rb, r->line, "unknown section [%s] (known: [runbook], [domains])",
		                 section);
	return 1;      /* go on: every problem is reported, not just the first */
}

int mm_runbook_load(const char *path, struct mm_runbook *rb)
{
	struct reader r = { .rb = rb };

	memset(rb, 0, sizeof(*rb));
	rb->parallel = DEFAULT_PARALLEL;
	rb->tenant_cap = DEFAULT_TENANT_CAP;
	rb->verify_timeout_ms = DEFAULT_VERIFY_TIMEOUT_MS;
	rb->poll_interval_ms = DEFAULT_POLL_INTERVAL_MS;
	rb->failure_budget = DEFAULT_FAILURE_BUDGET;
	rb->path = strdup(path);
	if (!rb->path)
		return MM_ERR;
	r.f = fopen(path, "r");
	if (!r.f) {
		mm_runbook_error(rb, 0, "%s", strerror(errno));
		return MM_ERR;
	}
	ini_parse_stream(read_line, &r, on_entry, &r);
	free(r.text);
	fclose(r.f);
	if (rb->count == 0 && rb->nerrors == 0)
		mm_runbook_error(rb, 0, "no domains: list them in a [domains] section");
	return rb->nerrors ? MM_ERR : MM_OK;
}

void mm_runbook_free(struct mm_runbook *rb)
{
	free(rb->path);
	free(rb->entries);
	free(rb->errors);
	memset(rb, 0, sizeof(*rb));
}
