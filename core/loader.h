#ifndef MM_LOADER_H
#define MM_LOADER_H

#include "host.h"

#include <mailmode/plugin.h>
#include <pthread.h>
#include <stddef.h>

/* One loaded mode plugin. */
struct mm_plugin {
	char *path;
	const struct mailmode_plugin *desc;
	void *dl;
	struct mm_host_ctx host;
	void *ctx;                /* from desc->init, once started */
	int started;
	pthread_mutex_t lock;     /* start once; serialises a non-thread-safe plugin */
	/* Its helper processes (isolate.h); NULL: calls run in this process
	 * (MAILMODE_NO_ISOLATION=1, for debugging). */
	struct mm_helpers *helpers;
	long call_timeout_ms;     /* [mode NAME] call_timeout */
};

/* A plugin file that was refused, and why (one line). */
struct mm_refusal {
	char *path;
	char *reason;
};

struct mm_plugin_set {
	struct mm_plugin **plugins;   /* sorted by file name */
	size_t count;
	struct mm_refusal *refused;
	size_t nrefused;
};

/* Loads every *.so in dir.  A file that fails a check is recorded in
 * set->refused and the others still load.  Returns -1 (err filled) only
 * when the directory itself is unusable. */
int mm_plugins_load(struct mm_plugin_set *set, const char *dir, const struct mm_config *config,
                    struct mm_output *output, char *err, size_t errlen);
void mm_plugins_unload(struct mm_plugin_set *set);

struct mm_plugin *mm_plugins_find(const struct mm_plugin_set *set, const char *mode);
/* The refusal of the file that would have provided `mode`, if any. */
const struct mm_refusal *mm_plugins_refusal_for(const struct mm_plugin_set *set, const char *mode);

/* One plugin file, checked as mm_plugins_load checks each, for a helper
 * process (isolate.h) to run; NULL with why filled when refused. */
struct mm_plugin *mm_plugin_open(const char *path, const struct mm_config *config,
                                 struct mm_output *output, char *why, size_t whylen);

/* Calls the plugin's init once in this process (thread-safe), when it
 * runs without isolation. */
int mm_plugin_start(struct mm_plugin *p, struct mailmode_diag *diag);

/* Whether a mode name follows the rules: [a-z][a-z0-9_-]{0,31}. */
int mm_mode_name_valid(const char *name);

#endif
