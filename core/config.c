#include "config.h"

#include "num.h"

#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------ */
/* The INI reader */

static const char *const ini_errors[] = {
	[MM_INI_NO_BRACKET] = "a [section] header without its ']'",
	[MM_INI_AFTER_BRACKET] = "text after a [section] header",
	[MM_INI_EMPTY_SECTION] = "an empty [] section name",
	[MM_INI_NO_EQUALS] = "syntax error (expected [section] or key = value)",
	[MM_INI_EMPTY_KEY] = "a value without a key",
	[MM_INI_NUL] = "a NUL byte in the line",
};

const char *mm_ini_error_text(enum mm_ini_error what)
{
	return ini_errors[what];
}

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

/* A ';' after white space starts a comment (as inih has it, so that
 * values may hold ';' otherwise). */
static void strip_comment(char *s)
{
	char *p;

	for (p = s; *p; p++)
		if (*p == ';' && p > s && isspace((unsigned char)p[-1])) {
			*p = '\0';
			return;
		}
}

/* One line; returns what the handler returned (0: stop), -1 when out of
 * memory. */
static int ini_line(const struct mm_ini_handler *h, int line, char *text, char **section)
{
	char *eq, *close, *name, *rest;

	text = trim(text);
	if (*text == '\0' || *text == ';' || *text == '#')
		return 1;
	if (*text == '[') {
		close = strchr(text, ']');
		if (!close)
			return h->error(h->user, line, MM_INI_NO_BRACKET);
		*close = '\0';
		rest = trim(close + 1);
		if (*rest != '\0' && *rest != ';' && *rest != '#')
			return h->error(h->user, line, MM_INI_AFTER_BRACKET);
		name = trim(text + 1);
		if (*name == '\0')
			return h->error(h->user, line, MM_INI_EMPTY_SECTION);
		free(*section);
		if (!(*section = strdup(name)))
			return -1;
		return h->entry(h->user, line, *section, NULL, NULL);
	}
	eq = strchr(text, '=');
	if (!eq)
		return h->error(h->user, line, MM_INI_NO_EQUALS);
	*eq = '\0';
	strip_comment(eq + 1);
	if (*trim(text) == '\0')
		return h->error(h->user, line, MM_INI_EMPTY_KEY);
	return h->entry(h->user, line, *section ? *section : "", trim(text), trim(eq + 1));
}

int mm_ini_parse(FILE *f, const struct mm_ini_handler *h)
{
	char *text = NULL, *section = NULL, *start;
	size_t cap = 0;
	ssize_t len;
	int line = 0, go = 1;

	errno = 0;
	while (go > 0 && (len = getline(&text, &cap, f)) >= 0) {
		line++;
		start = text;
		/* A byte order mark some editors write at the very start. */
		if (line == 1 && len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
			start += 3;
		if (strlen(text) != (size_t)len)
			go = h->error(h->user, line, MM_INI_NUL);
		else
			go = ini_line(h, line, start, &section);
	}
	free(text);
	free(section);
	if (go < 0)
		errno = ENOMEM;
	return go < 0 || ferror(f) ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* The configuration */

struct mm_config_entry {
	char *section;
	char *key;
	char *value;
	int line;
};

struct mm_config_section {
	char *name;
	int line;                 /* of its first header */
};

struct mm_config {
	char *path;
	char *dir;
	struct mm_config_entry *entries;
	size_t count, cap;
	struct mm_config_section *sections;   /* in file order, each once */
	size_t nsections, capsections;
	char first_error[512];    /* "LINE: reason", set by the handlers */
};

static const char *const core_keys[] = {
	"state", "plugin_dir", "default_profile", "lock_timeout", NULL
};

static int is_core_key(const char *key)
{
	size_t i;

	for (i = 0; core_keys[i]; i++)
		if (strcmp(core_keys[i], key) == 0)
			return 1;
	return 0;
}

static int remember_section(struct mm_config *cfg, const char *section, int line)
{
	struct mm_config_section *grown;
	size_t i;

	for (i = 0; i < cfg->nsections; i++)
		if (strcmp(cfg->sections[i].name, section) == 0)
			return 0;
	if (cfg->nsections == cfg->capsections) {
		size_t cap = cfg->capsections ? cfg->capsections * 2 : 8;

		grown = realloc(cfg->sections, cap * sizeof(*grown));
		if (!grown)
			return -1;
		cfg->sections = grown;
		cfg->capsections = cap;
	}
	cfg->sections[cfg->nsections].name = strdup(section);
	cfg->sections[cfg->nsections].line = line;
	if (!cfg->sections[cfg->nsections].name)
		return -1;
	cfg->nsections++;
	return 0;
}

static int entry_error(struct mm_config *cfg, int line, const char *fmt, ...)
	MAILMODE_PRINTF(3, 4);
static int entry_error(struct mm_config *cfg, int line, const char *fmt, ...)
{
	int n = snprintf(cfg->first_error, sizeof(cfg->first_error), "%d: ", line);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cfg->first_error + n, sizeof(cfg->first_error) - (size_t)n, fmt, ap);
	va_end(ap);
	return 0;
}

static int add_entry(struct mm_config *cfg, int line, const char *section, const char *key,
                     const char *value)
{
	struct mm_config_entry *e;

	if (cfg->count == cfg->cap) {
		size_t cap = cfg->cap ? cfg->cap * 2 : 32;
		struct mm_config_entry *grown = realloc(cfg->entries, cap * sizeof(*grown));

		if (!grown)
			return -1;
		cfg->entries = grown;
		cfg->cap = cap;
	}
	e = &cfg->entries[cfg->count];
	e->section = strdup(section);
	e->key = strdup(key);
	e->value = strdup(value);
	e->line = line;
	if (!e->section || !e->key || !e->value) {
		free(e->section);
		free(e->key);
		free(e->value);
		return -1;
	}
	cfg->count++;
	return 0;
}

static int on_entry(void *user, int line, const char *section, const char *key,
                    const char *value)
{
	struct mm_config *cfg = user;

	if (section[0] == '\0')
		return entry_error(cfg, line, "key '%s' is outside any [section]", key);
	if (remember_section(cfg, section, line) != 0)
		goto nomem;
	if (!key)
		return 1;
	if (strcmp(section, "mailmode") == 0 && !is_core_key(key))
		return entry_error(cfg, line,
		                   "unknown key '%s' in [mailmode] (known: state, plugin_dir, default_profile, lock_timeout)",
		                   key);
	if (mm_config_get(cfg, section, key))
		return entry_error(cfg, line, "key '%s' given twice in [%s]", key, section);
	if (add_entry(cfg, line, section, key, value) != 0)
		goto nomem;
	return 1;
nomem:
	snprintf(cfg->first_error, sizeof(cfg->first_error), "%d: out of memory", line);
	return 0;
}

static int on_error(void *user, int line, enum mm_ini_error what)
{
	return entry_error(user, line, "%s", mm_ini_error_text(what));
}

static struct mm_config *config_new(const char *path)
{
	struct mm_config *cfg = calloc(1, sizeof(*cfg));
	char *copy = NULL;
	char *absolute = path ? realpath(path, NULL) : NULL;

	if (!cfg) {
		free(absolute);
		return NULL;
	}
	/* Absolute, so that paths shown in reports and errors are unambiguous. */
	if (absolute)
		path = absolute;
	cfg->path = strdup(path ? path : "");
	copy = strdup(path ? path : ".");
	if (!cfg->path || !copy) {
		free(copy);
		free(absolute);
		mm_config_free(cfg);
		return NULL;
	}
	cfg->dir = strdup(dirname(copy));
	free(copy);
	free(absolute);
	if (!cfg->dir) {
		mm_config_free(cfg);
		return NULL;
	}
	return cfg;
}

struct mm_config *mm_config_read(FILE *f, const char *path, char *err, size_t errlen)
{
	struct mm_config *cfg = config_new(path);
	struct mm_ini_handler h = { .entry = on_entry, .error = on_error };

	if (!cfg) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h.user = cfg;
	if (mm_ini_parse(f, &h) != 0) {
		snprintf(err, errlen, "config %s: cannot read: %s", path, strerror(errno));
		goto fail;
	}
	if (cfg->first_error[0]) {
		snprintf(err, errlen, "%s:%s", path, cfg->first_error);
		goto fail;
	}
	return cfg;
fail:
	mm_config_free(cfg);
	return NULL;
}

struct mm_config *mm_config_load(const char *path, enum mm_config_need need, char *err,
                                 size_t errlen)
{
	struct mm_config *cfg = NULL;
	struct stat st;
	FILE *f = fopen(path, "r");

	if (!f && errno == ENOENT && need == MM_CONFIG_OPTIONAL)
		return config_new(path);
	if (!f) {
		snprintf(err, errlen, "config %s: %s", path, strerror(errno));
		return NULL;
	}
	/* fopen() opens a directory for reading; only reading it fails. */
	if (fstat(fileno(f), &st) == 0 && !S_ISREG(st.st_mode))
		snprintf(err, errlen, "config %s: %s, not a file", path,
		         S_ISDIR(st.st_mode) ? "a directory" : "a special file");
	else
		cfg = mm_config_read(f, path, err, errlen);
	fclose(f);
	return cfg;
}

void mm_config_free(struct mm_config *cfg)
{
	size_t i;

	if (!cfg)
		return;
	for (i = 0; i < cfg->count; i++) {
		free(cfg->entries[i].section);
		free(cfg->entries[i].key);
		free(cfg->entries[i].value);
	}
	for (i = 0; i < cfg->nsections; i++)
		free(cfg->sections[i].name);
	free(cfg->sections);
	free(cfg->entries);
	free(cfg->path);
	free(cfg->dir);
	free(cfg);
}

const char *mm_config_get(const struct mm_config *cfg, const char *section, const char *key)
{
	size_t i;

	if (!cfg || !section || !key)
		return NULL;
	for (i = 0; i < cfg->count; i++)
		if (strcmp(cfg->entries[i].section, section) == 0 &&
		    strcmp(cfg->entries[i].key, key) == 0)
			return cfg->entries[i].value;
	return NULL;
}

int mm_config_has_section(const struct mm_config *cfg, const char *section)
{
	size_t i;

	for (i = 0; cfg && i < cfg->nsections; i++)
		if (strcmp(cfg->sections[i].name, section) == 0)
			return 1;
	return 0;
}

const char *mm_config_dir(const struct mm_config *cfg)
{
	return cfg->dir;
}

const char *mm_config_path(const struct mm_config *cfg)
{
	return cfg->path;
}

const char *mm_config_section_at(const struct mm_config *cfg, size_t i, int *line)
{
	if (i >= cfg->nsections)
		return NULL;
	*line = cfg->sections[i].line;
	return cfg->sections[i].name;
}

const char *mm_config_entry_at(const struct mm_config *cfg, size_t i, const char **section,
                               const char **value, int *line)
{
	if (i >= cfg->count)
		return NULL;
	*section = cfg->entries[i].section;
	*value = cfg->entries[i].value;
	*line = cfg->entries[i].line;
	return cfg->entries[i].key;
}

#define PROFILE_PREFIX "profile "

void mm_config_each_profile(const struct mm_config *cfg,
                            void (*fn)(const char *name, void *arg), void *arg)
{
	size_t i, plen = strlen(PROFILE_PREFIX);

	for (i = 0; i < cfg->nsections; i++)
		if (strncmp(cfg->sections[i].name, PROFILE_PREFIX, plen) == 0)
			fn(cfg->sections[i].name + plen, arg);
}
struct profile_list {
	char names[512];
	size_t count;
	const char *only;
};

static void collect_profile(const char *name, void *arg)
{
	struct profile_list *list = arg;
	size_t used = strlen(list->names);

	snprintf(list->names + used, sizeof(list->names) - used, "%s%s",
	         list->count ? ", " : "", name);
	list->only = name;
	list->count++;
}

int mm_config_profile(const struct mm_config *cfg, const char *name,
                      char *section, size_t sectionlen, char *err, size_t errlen)
{
	struct profile_list list = { .names = "", .count = 0, .only = NULL };

	mm_config_each_profile(cfg, collect_profile, &list);
	if (!name)
		name = mm_config_get(cfg, "mailmode", "default_profile");
	if (!name && list.count == 1)
		name = list.only;
	if (!name) {
		if (list.count == 0)
			snprintf(err, errlen, "config %s defines no [profile NAME] section",
			         cfg->path[0] ? cfg->path : "(none)");
		else
			snprintf(err, errlen,
			         "no profile given: use --profile (config %s defines: %s)",
			         cfg->path, list.names);
		return -1;
	}
	snprintf(section, sectionlen, PROFILE_PREFIX "%s", name);
	if (!mm_config_has_section(cfg, section)) {
		snprintf(err, errlen, "unknown profile '%s' (config %s defines: %s)", name,
		         cfg->path[0] ? cfg->path : "(none)", list.count ? list.names : "none");
		return -1;
	}
	return 0;
}

int mm_config_duration(const char *s, long *ms)
{
	return mm_num_parse_duration(s, ms);
}
