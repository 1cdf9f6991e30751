#ifndef MM_HOST_H
#define MM_HOST_H

#include <mailmode/plugin.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "output.h"

struct mm_config;

/* The context behind one plugin's host table (host->handle). */
struct mm_host_ctx {
	struct mailmode_host table;
	const struct mm_config *config;
	struct mm_output *output;
	char name[64];        /* the plugin's mode name, prefixed to its log lines */
};

void mm_host_init(struct mm_host_ctx *ctx, const struct mm_config *config,
                  struct mm_output *output, const char *name);

/* The host's log service; handle is a struct mm_host_ctx. */
void mm_host_log(void *handle, enum mailmode_log_level level, const char *fmt, ...)
	MAILMODE_PRINTF(3, 4);
/* The host's clock services (handle unused: one clock for all). */
int64_t mm_host_wall_ms(void *handle);
int64_t mm_host_mono_ms(void *handle);
void mm_host_sleep_ms(void *handle, int64_t ms);

/* Shared with the core, which fills diagnostics of its own. */
void mm_diag_set(struct mailmode_diag *diag, enum mailmode_severity severity, int retryable,
                 const char *fmt, ...) MAILMODE_PRINTF(4, 5);
void mm_diag_append(struct mailmode_diag *diag, const char *fmt, ...) MAILMODE_PRINTF(2, 3);

#endif
