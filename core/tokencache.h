#ifndef MM_TOKENCACHE_H
#define MM_TOKENCACHE_H

#include <mailmode/plugin.h>
#include <stddef.h>

/* The token cache host services (plugin.h, ABI 1.4); handle is a struct
 * mm_host_ctx. */
int mm_token_cache_load(void *handle, const char *name, char **text, struct mailmode_diag *diag);
int mm_token_cache_store(void *handle, const char *name, const char *text,
                         struct mailmode_diag *diag);
/* $XDG_STATE_HOME/mailmode, else ~/.local/state/mailmode: 0, or -1. */
int mm_token_cache_dir(char *out, size_t len);
/* The file of entry name (checked): MAILMODE_OK, else diag filled. */
int mm_token_cache_path(const char *name, char *out, size_t len, struct mailmode_diag *diag);

#endif
