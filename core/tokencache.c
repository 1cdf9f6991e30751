/* The token cache host service (ABI 1.4, plugin.h): one private file per
 * entry, token-NAME.json in $XDG_STATE_HOME/mailmode (default
 * ~/.local/state/mailmode), the directory 0700 and the files 0600, each
 * replaced atomically (a temporary file, fsync, rename, fsync of the
 * directory).  It runs in whichever process calls it (a plugin's helper
 * does its own file I/O, as for secret_load): concurrent writers of one
 * entry leave the last one's text whole, which is enough for refresh
 * tokens, since the platform does not revoke the one a refresh replaces.
 * doc/ms-client.md says why this is a host service. */
#include "host.h"
#include "tokencache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME_MAX_LEN 128

static int name_ok(const char *name)
{
	size_t i;

	if (!name || !name[0] || name[0] == '.' || strlen(name) > NAME_MAX_LEN)
		return 0;
	for (i = 0; name[i]; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
		      (name[i] >= '0' && name[i] <= '9') || strchr("._-", name[i])))
			return 0;
	return 1;
}

int mm_token_cache_dir(char *out, size_t len)
{
	const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	int n;

	/* XDG: a relative XDG_STATE_HOME is invalid and ignored. */
	if (xdg && xdg[0] == '/')
		n = snprintf(out, len, "%s/mailmode", xdg);
	else if (home && home[0] == '/')
		n = snprintf(out, len, "%s/.local/state/mailmode", home);
	else
		return -1;
	return n > 0 && (size_t)n < len ? 0 : -1;
}

int mm_token_cache_path(const char *name, char *out, size_t len, struct mailmode_diag *diag)
{
	char dir[4096];
	int n;

	if (!name_ok(name)) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0,
		            "token cache: '%s' is not a name it keeps (letters, digits, '.', '_', '-')",
		            name ? name : "");
		return MAILMODE_ERR_CONFIG;
	}
	if (mm_token_cache_dir(dir, sizeof(dir)) != 0) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0,
		            "token cache: neither XDG_STATE_HOME nor HOME is an absolute path");
		return MAILMODE_ERR_CONFIG;
	}
	n = snprintf(out, len, "%s/token-%s.json", dir, name);
	if (n < 0 || (size_t)n >= len) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "token cache: the path is too long");
		return MAILMODE_ERR_CONFIG;
	}
	return MAILMODE_OK;
}

/* The directory is ours alone, or it is refused (it may not exist: 1). */
static int dir_check(const char *dir, struct mailmode_diag *diag)
{
	struct stat st;

	if (lstat(dir, &st) != 0) {
		if (errno == ENOENT)
			return 1;
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "token cache directory %s: %s", dir,
		            strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0,
		            "token cache directory %s is not a directory of the user mailmode runs as (uid %u)",
		            dir, (unsigned)geteuid());
		return -1;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0,
		            "token cache directory %s is accessible by group or others (mode %03o): chmod 700 it",
		            dir, (unsigned)(st.st_mode & 0777));
		return -1;
	}
	return 0;
}

/* mkdir -p, each new directory 0700 (XDG: "should be created with
 * permissions 0700"). */
static int dir_make(char *dir, struct mailmode_diag *diag)
{
	char *p;

	for (p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
			mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "token cache: cannot create %s: %s",
			            dir, strerror(errno));
			*p = '/';
			return -1;
		}
		*p = '/';
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "token cache: cannot create %s: %s", dir,
		            strerror(errno));
		return -1;
	}
	return dir_check(dir, diag) == 0 ? 0 : -1;
}

int mm_token_cache_load(void *handle, const char *name, char **text, struct mailmode_diag *diag)
{
	struct mm_host_ctx *ctx = handle;
	char path[4200], dir[4200];
	int rc;

	*text = NULL;
	rc = mm_token_cache_path(name, path, sizeof(path), diag);
	if (rc != MAILMODE_OK)
		return rc;
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	switch (dir_check(dir, diag)) {
	case 1: return MAILMODE_OK;
	case 0: break;
	default: return MAILMODE_ERR_CONFIG;
	}
	if (access(path, F_OK) != 0 && errno == ENOENT)
		return MAILMODE_OK;
	/* secret_load's checks: a regular file of ours, mode 0600. */
	return ctx->table.secret_load(handle, path, text, diag);
}

static int write_all(int fd, const char *text)
{
	size_t len = strlen(text), done = 0;
	ssize_t n;

	while (done < len) {
		n = write(fd, text + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

static int replace(const char *dir, const char *path, const char *text,
                   struct mailmode_diag *diag)
{
	char tmp[4300];
	int fd, dfd, rc = MAILMODE_ERR_FAILED;

	snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
	fd = mkstemp(tmp);     /* 0600 */
	if (fd < 0) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "token cache: cannot create a file in %s: %s",
		            dir, strerror(errno));
		return rc;
	}
	if (write_all(fd, text) != 0 || write_all(fd, "\n") != 0 || fsync(fd) != 0) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "token cache: cannot write %s: %s", tmp,
		            strerror(errno));
		close(fd);
		unlink(tmp);
		return rc;
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "token cache: cannot replace %s: %s", path,
		            strerror(errno));
		unlink(tmp);
		return rc;
	}
	/* The rename itself survives a crash only once the directory is on
	 * disk. */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return MAILMODE_OK;
}

int mm_token_cache_store(void *handle, const char *name, const char *text,
                         struct mailmode_diag *diag)
{
	char path[4200], dir[4200];
	int rc;

	(void)handle;
	rc = mm_token_cache_path(name, path, sizeof(path), diag);
	if (rc != MAILMODE_OK)
		return rc;
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	if (!text) {
		if (unlink(path) != 0 && errno != ENOENT) {
			mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "token cache: cannot remove %s: %s",
			            path, strerror(errno));
			return MAILMODE_ERR_FAILED;
		}
		return MAILMODE_OK;
	}
	if (dir_make(dir, diag) != 0)
		return MAILMODE_ERR_CONFIG;
	return replace(dir, path, text, diag);
}
