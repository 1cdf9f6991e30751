#include "config.h"

#include <errno.h>
#include <ini.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mm_config_entry {
	char *section;
	char *key;
	char *value;
};

struct mm_config {
	char *path;
	char *dir;
	struct mm_config_entry *entries;
	size_t count, cap;
	char **sections;          /* in file order, each once */
	size_t nsections, capsections;
	char first_error[256];    /* set by the handler; inih gives the line */
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

static int remember_section(struct mm_config *cfg, const char *section)
{
	size_t i;
	char **grown;

	for (i = 0; i < cfg->nsections; i++)
		if (strcmp(cfg->sections[i], section) == 0)
			return 0;
	if (cfg->nsections == cfg->capsections) {
		size_t cap = cfg->capsections ? cfg->capsections * 2 : 8;

		grown = realloc(cfg->sections, cap * sizeof(*grown));
		if (!grown)
			return -1;
		cfg->sections = grown;
		cfg->capsections = cap;
	}
	cfg->sections[cfg->nsections] = strdup(section);
	if (!cfg->sections[cfg->nsections])
		return -1;
	cfg->nsections++;
	return 0;
}

static int on_entry(void *user, const char *section, const char *key, const char *value)
{
	struct mm_config *cfg = user;
	struct mm_config_entry *e;

	if (cfg->first_error[0])
		return 1;
	if (section[0] == '\0') {
		snprintf(cfg->first_error, sizeof(cfg->first_error),
		         "key '%s' is outside any [section]", key);
		return 0;
	}
	if (remember_section(cfg, section) != 0)
		goto nomem;
	if (strcmp(section, "mailmode") == 0 && !is_core_key(key)) {
		snprintf(cfg->first_error, sizeof(cfg->first_error),
		         "unknown key '%s' in [mailmode] (known: state, plugin_dir, default_profile, lock_timeout)",
		         key);
		return 0;
	}
	if (mm_config_get(cfg, section, key)) {
		snprintf(cfg->first_error, sizeof(cfg->first_error),
		         "key '%s' given twice in [%s]", key, section);
		return 0;
	}
	if (cfg->count == cfg->cap) {
		size_t cap = cfg->cap ? cfg->cap * 2 : 32;
		struct mm_config_entry *grown = realloc(cfg->entries, cap * sizeof(*grown));

		if (!grown)
			goto nomem;
		cfg->entries = grown;
		cfg->cap = cap;
	}
	e = &cfg->entries[cfg->count];
	e->section = strdup(section);
	e->key = strdup(key);
	e->value = strdup(value ? value : "");
	if (!e->section || !e->key || !e->value) {
		free(e->section);
		free(e->key);
		free(e->value);
		goto nomem;
	}
	cfg->count++;
	return 1;
nomem:
	snprintf(cfg->first_error, sizeof(cfg->first_error), "out of memory");
	return 0;
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

struct mm_config *mm_config_load(const char *path, int required, char *err, size_t errlen)
{
	struct mm_config *cfg = config_new(path);
	FILE *f = NULL;
	int line;

	if (!cfg) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	f = fopen(path, "r");
	if (!f) {
		if (errno == ENOENT && !required)
			return cfg;
		snprintf(err, errlen, "config %s: %s", path, strerror(errno));
		goto fail;
	}
	line = ini_parse_file(f, on_entry, cfg);
	if (line != 0) {
		if (line < 0)
			snprintf(err, errlen, "config %s: cannot read", path);
		else if (cfg->first_error[0])
			snprintf(err, errlen, "%s:%d: %s", path, line, cfg->first_error);
		else
			snprintf(err, errlen, "%s:%d: syntax error (expected [section] or key = value)",
			         path, line);
		goto fail;
	}
	fclose(f);
	return cfg;
fail:
	if (f)
		fclose(f);
	mm_config_free(cfg);
	return NULL;
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
		free(cfg->sections[i]);
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
		if (strcmp(cfg->sections[i], section) == 0)
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

#define PROFILE_PREFIX "profile "

void mm_config_each_profile(const struct mm_config *cfg,
                            void (*fn)(const char *name, void *arg), void *arg)
{
	size_t i, plen = strlen(PROFILE_PREFIX);

	for (i = 0; i < cfg->nsections; i++)
		if (strncmp(cfg->sections[i], PROFILE_PREFIX, plen) == 0)
			fn(cfg->sections[i] + plen, arg);
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

/* "90", "90s", "15m", "2h", "500ms" -> milliseconds. */
int mm_config_duration(const char *s, long *ms)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (end == s || v < 0)
		return -1;
	if (*end == '\0' || strcmp(end, "s") == 0)
		*ms = v * 1000;
	else if (strcmp(end, "ms") == 0)
		*ms = v;
	else if (strcmp(end, "m") == 0)
		*ms = v * 60000;
	else if (strcmp(end, "h") == 0)
		*ms = v * 3600000;
	else
		return -1;
	return 0;
}
