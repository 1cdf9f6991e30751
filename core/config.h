#ifndef MM_CONFIG_H
#define MM_CONFIG_H

#include <mailmode/plugin.h>

#include <stddef.h>
#include <stdio.h>

/*
 * INI files, read whole lines at a time (inih's 200-byte buffer would split
 * a longer line into pieces that look like lines of their own), so every
 * entry knows its line.  Used for the configuration and for runbooks.
 *
 * Syntax: "[section]", "key = value" (a ';' after white space starts a
 * comment), lines starting with ';' or '#' are comments.  A UTF-8 byte
 * order mark at the start of the file is skipped, as editors on some
 * systems write one.
 */
enum mm_ini_error {
	MM_INI_NO_BRACKET,     /* "[section" without its ']' */
	MM_INI_AFTER_BRACKET,  /* text after "[section]" */
	MM_INI_EMPTY_SECTION,  /* "[]" */
	MM_INI_NO_EQUALS,      /* neither a section nor key = value */
	MM_INI_EMPTY_KEY,      /* "= value" */
	MM_INI_NUL             /* a NUL byte in the line */
};

struct mm_ini_handler {
	/* A section header (key NULL) or an entry.  Returns 0 to stop. */
	int (*entry)(void *user, int line, const char *section, const char *key,
	             const char *value);
	/* A line that is not INI.  Returns 0 to stop. */
	int (*error)(void *user, int line, enum mm_ini_error what);
	void *user;
};

/* Reads f to its end (or until a handler stops).  Returns 0, or -1 when
 * the file cannot be read (errno set). */
int mm_ini_parse(FILE *f, const struct mm_ini_handler *h);
/* The reason text for an error code ("a [section] header without its ']'"). */
const char *mm_ini_error_text(enum mm_ini_error what);

/* The INI configuration, read once.  Sections: [mailmode] (the core's own
 * keys), [quicktest], [profile NAME], [mode NAME], and the kinds of section
 * plugins declare ([dns NAME], [service NAME], [tenant NAME]). */
struct mm_config;

enum mm_config_need {
	MM_CONFIG_OPTIONAL = 0,    /* a missing file is an empty config */
	MM_CONFIG_REQUIRED = 1     /* named by the user: it must exist */
};

/* Loads path.  On error returns NULL with "FILE:LINE: reason" or "config
 * FILE: reason" in err. */
struct mm_config *mm_config_load(const char *path, enum mm_config_need need, char *err,
                                 size_t errlen);
/* The same from an open stream; path is only the name shown in errors and
 * the base of relative paths. */
struct mm_config *mm_config_read(FILE *f, const char *path, char *err, size_t errlen);
void mm_config_free(struct mm_config *cfg);

const char *mm_config_get(const struct mm_config *cfg, const char *section, const char *key);
int mm_config_has_section(const struct mm_config *cfg, const char *section);
/* The directory relative paths in the file are taken from. */
const char *mm_config_dir(const struct mm_config *cfg);
const char *mm_config_path(const struct mm_config *cfg);

/* Calls fn for each "profile NAME" section, in file order. */
void mm_config_each_profile(const struct mm_config *cfg,
                            void (*fn)(const char *name, void *arg), void *arg);

/* Resolves the profile to use: the given name, else [mailmode]
 * default_profile, else the only profile.  Writes its section name
 * ("profile NAME") to section.  Returns 0 or -1 with err. */
int mm_config_profile(const struct mm_config *cfg, const char *name,
                      char *section, size_t sectionlen, char *err, size_t errlen);

/* A duration: "90" or "90s", "500ms", "15m", "2h" -> milliseconds, at
 * most a year.  Returns 0, or -1 when s is not one. */
int mm_config_duration(const char *s, long *ms);

/* For the key check: the i-th section and entry, in file order (NULL past
 * the end). */
const char *mm_config_section_at(const struct mm_config *cfg, size_t i, int *line);
const char *mm_config_entry_at(const struct mm_config *cfg, size_t i, const char **section,
                               const char **value, int *line);

/* The keys one loaded plugin declares (ABI 1.2 config_keys), or keys NULL
 * when it declares none (an older plugin). */
struct mm_config_keyset {
	const char *mode;                         /* the plugin's mode name */
	const struct mailmode_config_key *keys;   /* ends with name == NULL */
};

/*
 * Checks every section and key of the file against the core's own keys
 * ([mailmode], [quicktest]) and what the plugins declare, naming the
 * nearest known key or section.  [mode NAME] takes the keys plugin NAME
 * declares for "mode"; [profile NAME] and the plugins' kinds ([dns NAME])
 * take the keys any plugin declares for them.  A profile key named like a
 * declared kind ("tenant = T") refers to that section, which must exist.
 * When a plugin declares nothing, only [mailmode] and [quicktest] are
 * checked and *unchecked is set (the caller warns once).  Returns 0, or -1
 * with "FILE:LINE: reason" in err.
 */
int mm_config_check(const struct mm_config *cfg, const struct mm_config_keyset *sets,
                    size_t nsets, int *unchecked, char *err, size_t errlen);

/* What a plugin declares it reads (ABI 1.2 config_keys), or NULL. */
const struct mailmode_config_key *mm_declared_keys(const struct mailmode_plugin *d);

struct mm_plugin_set;
/* mm_config_check with the declarations of the loaded plugins.  warning:
 * the one line to show when a plugin declares nothing, else "". */
int mm_config_check_plugins(const struct mm_config *cfg, const struct mm_plugin_set *plugins,
                            char *warning, size_t warninglen, char *err, size_t errlen);

#endif
