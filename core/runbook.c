#include "runbook.h"

#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_PARALLEL 4
#define DEFAULT_TENANT_CAP 2
#define DEFAULT_VERIFY_TIMEOUT_MS (15L * 60 * 1000)
#define DEFAULT_POLL_INTERVAL_MS (10L * 1000)
#define DEFAULT_FAILURE_BUDGET 3
#define DEFAULT_PREPARE_TTL 300
#define MAX_PREPARE_TTL 86400
#define MAX_PARALLEL 64

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

/* Every line that is not INI is named; reading goes on. */
static int on_bad_line(void *user, int line, enum mm_ini_error what)
{
	if (what == MM_INI_NO_EQUALS)
		mm_runbook_error(user, line,
		                 "expected 'DOMAIN = MODE [PROFILE]', 'KEY = VALUE' or '[section]'");
	else
		mm_runbook_error(user, line, "%s", mm_ini_error_text(what));
	return 1;
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
	else if (strcmp(key, "canary") == 0)
		read_int(rb, line, key, value, 0, 1000000, &rb->canary);
	else if (strcmp(key, "prepare_ttl") == 0) {
		int ttl;

		if (read_int(rb, line, key, value, 1, MAX_PREPARE_TTL, &ttl) == 0)
			rb->prepare_ttl = ttl;
	} else if (strcmp(key, "verify_timeout") == 0 || strcmp(key, "poll_interval") == 0 ||
	           strcmp(key, "max_settle") == 0) {
		long *ms = key[0] == 'v' ? &rb->verify_timeout_ms
		           : key[0] == 'p' ? &rb->poll_interval_ms : &rb->max_settle_ms;

		if (mm_config_duration(value, ms) != 0 || *ms <= 0)
			mm_runbook_error(rb, line, "%s = %s: not a duration (e.g. 15m, 30s, 500ms)", key,
			                 value);
	} else
		mm_runbook_error(rb, line,
		                 "unknown option '%s' in [runbook] (known: parallel, tenant_cap, verify_timeout, poll_interval, failure_budget, canary, prepare_ttl, max_settle)",
		                 key);
}

/* "MODE [PROFILE]": one or two words, each fitting its field. */
static int split_words(const char *value, char *mode, size_t modelen, char *profile,
                       size_t profilelen, char *why, size_t whylen)
{
	char *words[2] = { mode, profile };
	size_t lens[2] = { modelen, profilelen }, n = 0, len;
	const char *p = value;

	for (;;) {
		while (isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		for (len = 0; p[len] && !isspace((unsigned char)p[len]); len++)
			;
		if (n == 2) {
			snprintf(why, whylen, "want MODE [PROFILE]");
			return -1;
		}
		if (len >= lens[n]) {
			snprintf(why, whylen, "the %s name is longer than %zu characters",
			         n ? "profile" : "mode", lens[n] - 1);
			return -1;
		}
		memcpy(words[n], p, len);
		words[n++][len] = '\0';
		p += len;
	}
	if (n == 0) {
		snprintf(why, whylen, "want MODE [PROFILE]");
		return -1;
	}
	return 0;
}

static void read_domain(struct mm_runbook *rb, int line, const char *name, const char *value)
{
	struct mm_runbook_entry entry = { .line = line }, *grown;
	char why[MM_ERR_MAX];
	size_t i;

	if (mm_domain_normalize(name, entry.domain, why, sizeof(why)) != 0) {
		mm_runbook_error(rb, line, "%s", why);
		return;
	}
	if (split_words(value, entry.mode, sizeof(entry.mode), entry.profile,
	                sizeof(entry.profile), why, sizeof(why)) != 0) {
		mm_runbook_error(rb, line, "%s = %.80s: %s", entry.domain, value, why);
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

static int on_entry(void *user, int line, const char *section, const char *key,
                    const char *value)
{
	struct mm_runbook *rb = user;

	if (!key)
		return 1;
	if (strcmp(section, "runbook") == 0)
		read_option(rb, line, key, value);
	else if (strcmp(section, "domains") == 0)
		read_domain(rb, line, key, value);
	else if (section[0] == '\0')
		mm_runbook_error(rb, line, "'%s' is outside [runbook] and [domains]", key);
	else
		mm_runbook_error(rb, line, "unknown section [%s] (known: [runbook], [domains])",
		                 section);
	return 1;      /* go on: every problem is reported, not just the first */
}

int mm_runbook_load(const char *path, struct mm_runbook *rb)
{
	FILE *f = fopen(path, "r");
	int rc;

	if (!f) {
		memset(rb, 0, sizeof(*rb));
		rb->path = strdup(path);
		if (rb->path)
			mm_runbook_error(rb, 0, "%s", strerror(errno));
		return MM_ERR;
	}
	rc = mm_runbook_read(f, path, rb);
	fclose(f);
	return rc;
}

int mm_runbook_read(FILE *f, const char *path, struct mm_runbook *rb)
{
	struct mm_ini_handler h = { .entry = on_entry, .error = on_bad_line, .user = rb };

	memset(rb, 0, sizeof(*rb));
	rb->parallel = DEFAULT_PARALLEL;
	rb->tenant_cap = DEFAULT_TENANT_CAP;
	rb->verify_timeout_ms = DEFAULT_VERIFY_TIMEOUT_MS;
	rb->poll_interval_ms = DEFAULT_POLL_INTERVAL_MS;
	rb->failure_budget = DEFAULT_FAILURE_BUDGET;
	rb->prepare_ttl = DEFAULT_PREPARE_TTL;
	rb->path = strdup(path);
	if (!rb->path)
		return MM_ERR;
	if (mm_ini_parse(f, &h) != 0)
		mm_runbook_error(rb, 0, "cannot read: %s", strerror(errno));
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
