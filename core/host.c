#include "host.h"
#include "ops.h"

#include "config.h"
#include "http.h"
#include "tokencache.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SECRET_MAX 65536

void mm_host_log(void *handle, enum mailmode_log_level level, const char *fmt, ...)
{
	struct mm_host_ctx *ctx = handle;
	va_list ap;

	va_start(ap, fmt);
	mm_output_vlog(ctx->output, ctx->name, level, fmt, ap);
	va_end(ap);
}

static void host_progress(void *handle, const char *fmt, ...)
{
	struct mm_host_ctx *ctx = handle;
	va_list ap;

	va_start(ap, fmt);
	mm_output_vprogress(ctx->output, ctx->name, fmt, ap);
	va_end(ap);
}

static const char *host_config_get(void *handle, const char *section, const char *key)
{
	struct mm_host_ctx *ctx = handle;

	return mm_config_get(ctx->config, section, key);
}

static char *resolve_path(const struct mm_host_ctx *ctx, const char *path)
{
	char *full = NULL;

	if (path[0] == '/' || !ctx->config)
		return strdup(path);
	if (asprintf(&full, "%s/%s", mm_config_dir(ctx->config), path) < 0)
		return NULL;
	return full;
}

/* What the secret file itself (a symlink's target: secret mounts are made
 * of them) must be: a regular file of ours, for nobody else to read. */
static int secret_file_ok(const char *full, const struct stat *st, struct mailmode_diag *diag)
{
	struct passwd pw, *owner = NULL;
	char names[512];

	if (!S_ISREG(st->st_mode)) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "secret file %s is not a regular file", full);
		return -1;
	}
	if (st->st_uid != geteuid()) {
		if (getpwuid_r(st->st_uid, &pw, names, sizeof(names), &owner) != 0)
			owner = NULL;
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0,
		            "secret file %s is owned by %s (uid %u), not by the user mailmode runs as (uid %u)",
		            full, owner ? owner->pw_name : "another user", (unsigned)st->st_uid,
		            (unsigned)geteuid());
		return -1;
	}
	if (st->st_mode & (S_IRWXG | S_IRWXO)) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0,
		            "secret file %s is accessible by group or others (mode %03o): chmod 600 it",
		            full, (unsigned)(st->st_mode & 0777));
		return -1;
	}
	if (st->st_size > SECRET_MAX) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "secret file %s is larger than %d bytes",
		            full, SECRET_MAX);
		return -1;
	}
	return 0;
}

static int host_secret_load(void *handle, const char *path, char **secret,
                            struct mailmode_diag *diag)
{
	struct mm_host_ctx *ctx = handle;
	char *full = NULL, *buf = NULL;
	struct stat st;
	ssize_t n;
	size_t len = 0;
	int fd = -1, rc = MAILMODE_ERR_CONFIG;

	*secret = NULL;
	full = resolve_path(ctx, path);
	if (!full) {
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	/* Symlinks are followed; the checks are on what was opened (fstat),
	 * so a link swapped in between changes nothing. */
	fd = open(full, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) != 0) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "secret file %s: %s", full, strerror(errno));
		goto out;
	}
	if (secret_file_ok(full, &st, diag) != 0)
		goto out;
	buf = calloc(1, (size_t)st.st_size + 1);
	if (!buf) {
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	while (len < (size_t)st.st_size && (n = read(fd, buf + len, (size_t)st.st_size - len)) > 0)
		len += (size_t)n;
	if (len < (size_t)st.st_size) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "secret file %s: cannot read it", full);
		goto out;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
	                   buf[len - 1] == '\t'))
		buf[--len] = '\0';
	if (len == 0) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "secret file %s is empty", full);
		goto out;
	}
	*secret = buf;
	buf = NULL;
	rc = MAILMODE_OK;
out:
	if (fd >= 0)
		close(fd);
	if (buf)
		explicit_bzero(buf, len);
	free(buf);
	free(full);
	return rc;
}

static char *host_config_path(void *handle, const char *path)
{
	return resolve_path(handle, path);
}

static void host_secret_free(void *handle, char *secret)
{
	(void)handle;
	if (!secret)
		return;
	explicit_bzero(secret, strlen(secret));
	free(secret);
}

int64_t mm_host_wall_ms(void *handle)
{
	struct timespec ts;

	(void)handle;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mm_host_mono_ms(void *handle)
{
	struct timespec ts;

	(void)handle;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mm_host_sleep_ms(void *handle, int64_t ms)
{
	struct timespec ts;

	(void)handle;
	if (ms <= 0)
		return;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void *host_alloc(size_t size)
{
	return malloc(size);
}

static char *host_strdup(const char *s)
{
	return strdup(s);
}

static void diag_vset(struct mailmode_diag *diag, enum mailmode_severity severity,
                      int retryable, const char *fmt, va_list ap)
{
	diag->severity = severity;
	diag->retryable = retryable;
	vsnprintf(diag->summary, sizeof(diag->summary), fmt, ap);
	diag->detail[0] = '\0';
}

void mm_diag_set(struct mailmode_diag *diag, enum mailmode_severity severity, int retryable,
                 const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vset(diag, severity, retryable, fmt, ap);
	va_end(ap);
}

static void diag_vappend(struct mailmode_diag *diag, const char *fmt, va_list ap)
{
	size_t used = strnlen(diag->detail, sizeof(diag->detail));

	if (used > 0 && used + 1 < sizeof(diag->detail))
		diag->detail[used++] = '\n';
	if (used + 1 < sizeof(diag->detail))
		vsnprintf(diag->detail + used, sizeof(diag->detail) - used, fmt, ap);
	else
		diag->detail[sizeof(diag->detail) - 1] = '\0';
}

void mm_diag_append(struct mailmode_diag *diag, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vappend(diag, fmt, ap);
	va_end(ap);
}

static void host_diag_set(struct mailmode_diag *diag, enum mailmode_severity severity,
                          int retryable, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vset(diag, severity, retryable, fmt, ap);
	va_end(ap);
}

static void host_diag_append(struct mailmode_diag *diag, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vappend(diag, fmt, ap);
	va_end(ap);
}

void mm_host_init(struct mm_host_ctx *ctx, const struct mm_config *config,
                  struct mm_output *output, const char *name)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->config = config;
	ctx->output = output;
	snprintf(ctx->name, sizeof(ctx->name), "%s", name);
	ctx->table = (struct mailmode_host){
		.struct_size = sizeof(struct mailmode_host),
		.abi_major = MAILMODE_ABI_MAJOR,
		.abi_minor = MAILMODE_ABI_MINOR,
		.handle = ctx,
		.log = mm_host_log,
		.config_get = host_config_get,
		.secret_load = host_secret_load,
		.secret_free = host_secret_free,
		.config_path = host_config_path,
		.http_session_new = mm_http_session_new,
		.http_session_free = mm_http_session_free,
		.http_request = mm_http_request,
		.http_response_free = mm_http_response_free,
		.clock_wall_ms = mm_host_wall_ms,
		.clock_mono_ms = mm_host_mono_ms,
		.sleep_ms = mm_host_sleep_ms,
		.progress = host_progress,
		.alloc = host_alloc,
		.strdup = host_strdup,
		.free = free,
		.diag_set = host_diag_set,
		.diag_append = host_diag_append,
		.checkpoint = mm_host_checkpoint,
		.keep_original = mm_host_keep_original,
		.http_request_opts = mm_http_request_opts,
		.token_cache_load = mm_token_cache_load,
		.token_cache_store = mm_token_cache_store,
		.shared_note_load = mm_host_shared_note_load,
		.shared_note_store = mm_host_shared_note_store,
	};
}
