#ifndef MM_CONFIG_H
#define MM_CONFIG_H

#include <stddef.h>

/* The INI configuration, read once.  Sections: [mailmode] (the core's own
 * keys), [profile NAME], [mode NAME], and any section a plugin names. */
struct mm_config;

/* Loads path; a missing file is an error when required, an empty config
 * otherwise.  On error returns NULL with "FILE:LINE: reason" in err. */
struct mm_config *mm_config_load(const char *path, int required, char *err, size_t errlen);
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

/* A duration: "90" or "90s", "500ms", "15m", "2h" -> milliseconds.
 * Returns 0, or -1 when s is not one. */
int mm_config_duration(const char *s, long *ms);

#endif
