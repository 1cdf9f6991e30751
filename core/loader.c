#include "loader.h"

#include "config.h"
#include "isolate.h"

#include <dirent.h>
#include <errno.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MODE_NAME_MAX 32

/* The v1.0 descriptor ends with the reserved slots; a plugin must at least
 * carry everything up to there. */
#define DESCRIPTOR_V1_0_SIZE sizeof(struct mailmode_plugin)

int mm_mode_name_valid(const char *name)
{
	size_t i;

	if (!name || name[0] < 'a' || name[0] > 'z')
		return 0;
	for (i = 1; name[i]; i++) {
		char c = name[i];

		if (i >= MODE_NAME_MAX)
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

static int add_refusal(struct mm_plugin_set *set, const char *path, const char *reason)
{
	struct mm_refusal *grown = realloc(set->refused, (set->nrefused + 1) * sizeof(*grown));

	if (!grown)
		return -1;
	set->refused = grown;
	grown[set->nrefused].path = strdup(path);
	grown[set->nrefused].reason = strdup(reason);
	set->nrefused++;
	return 0;
}

/* Reasons may be cut short (paths are long); through vsnprintf the
 * compiler lets them. */
static void say(char *why, size_t whylen, const char *fmt, ...) MAILMODE_PRINTF(3, 4);
static void say(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

/* Files that others could replace would let them run code as us. */
static int check_ownership(const struct stat *st, const char *what, const char *path,
                           char *why, size_t whylen)
{
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		say(why, whylen, "%s %s is writable by group or others (mode %03o)", what, path,
		    (unsigned)(st->st_mode & 0777));
		return -1;
	}
	if (st->st_uid != 0 && st->st_uid != geteuid()) {
		say(why, whylen, "%s %s is owned by uid %u, neither root nor the current user",
		    what, path, (unsigned)st->st_uid);
		return -1;
	}
	return 0;
}

/* A directory on the way to a plugin: whoever can write to it can put
 * something else in place of what lies below.  A sticky one owned by root
 * or us (/tmp) is the exception admins expect: there only an entry's owner
 * may rename or remove it, and the entry we go through is checked next. */
static int check_on_path(const struct stat *st, const char *path, char *why, size_t whylen)
{
	if ((st->st_mode & (S_IWGRP | S_IWOTH)) && (st->st_mode & S_ISVTX) &&
	    (st->st_uid == 0 || st->st_uid == geteuid()))
		return 0;
	return check_ownership(st, "directory", path, why, whylen);
}

/* Kernel's limit on symbolic links in one lookup. */
#define SYMLINKS_MAX 40

/* A path being resolved: done is what is resolved (physical, no symbolic
 * links; "" is the root), todo what is left. */
struct walk {
	char done[PATH_MAX];
	char todo[2 * PATH_MAX];
	int links;
};

/* Takes the next component off todo: 1 with it in comp, 0 when none is
 * left, -1 when it is longer than a file name can be. */
static int next_component(struct walk *w, char *comp, size_t complen)
{
	char *p = w->todo;
	size_t len;

	while (*p == '/')
		p++;
	if (!*p)
		return 0;
	len = strcspn(p, "/");
	if (len >= complen)
		return -1;
	memcpy(comp, p, len);
	comp[len] = '\0';
	memmove(w->todo, p + len, strlen(p + len) + 1);
	return 1;
}

/* Whether a component is left in todo: then what was just looked up is a
 * directory on the way, not the end. */
static int more_to_walk(const struct walk *w)
{
	return w->todo[strspn(w->todo, "/")] != '\0';
}

/* Puts the target of symbolic link `link` in front of todo. */
static int follow_link(struct walk *w, const char *link, const struct stat *st, char *why,
                       size_t whylen)
{
	char target[PATH_MAX];
	size_t rest = strlen(w->todo);
	ssize_t n;

	/* Only root or we could have made a link in a directory that passed;
	 * in a sticky one anybody could, and it would send us anywhere. */
	if (st->st_uid != 0 && st->st_uid != geteuid()) {
		say(why, whylen, "symbolic link %s is owned by uid %u, neither root nor the current user",
		    link, (unsigned)st->st_uid);
		return -1;
	}
	if (++w->links > SYMLINKS_MAX) {
		say(why, whylen, "too many symbolic links at %s", link);
		return -1;
	}
	n = readlink(link, target, sizeof(target));
	if (n < 0 || (size_t)n >= sizeof(target) || (size_t)n + 1 + rest >= sizeof(w->todo)) {
		say(why, whylen, "symbolic link %s cannot be followed: %s", link,
		    n < 0 ? strerror(errno) : "target too long");
		return -1;
	}
	memmove(w->todo + n + 1, w->todo, rest + 1);
	memcpy(w->todo, target, (size_t)n);
	w->todo[n] = '/';
	if (target[0] == '/')
		w->done[0] = '\0';
	return 0;
}

/* Looks up one component below done: a directory on the way is checked
 * and entered, a symbolic link followed. */
static int walk_step(struct walk *w, const char *comp, char *why, size_t whylen)
{
	char next[PATH_MAX + NAME_MAX + 2];
	size_t used = strlen(w->done), len = strlen(comp);
	struct stat st;

	if (strcmp(comp, ".") == 0)
		return 0;
	if (strcmp(comp, "..") == 0) {
		/* done is physical: its parent is what the kernel would take. */
		char *slash = strrchr(w->done, '/');

		if (slash)
			*slash = '\0';
		return 0;
	}
	if (used + 1 + len >= sizeof(w->done)) {
		say(why, whylen, "path too long at %s", comp);
		return -1;
	}
	memcpy(next, w->done, used);
	next[used] = '/';
	memcpy(next + used + 1, comp, len + 1);
	if (lstat(next, &st) != 0) {
		say(why, whylen, "cannot resolve %s: %s", next, strerror(errno));
		return -1;
	}
	if (S_ISLNK(st.st_mode))
		return follow_link(w, next, &st, why, whylen);
	if (S_ISDIR(st.st_mode) && more_to_walk(w) && check_on_path(&st, next, why, whylen) != 0)
		return -1;
	memcpy(w->done, next, used + 1 + len + 1);
	return 0;
}

/* Resolves path as the kernel would (real: the result), checking every
 * directory on the way and every symbolic link followed: a plugin is only
 * as safe as the directories that lead to it.  The last component is the
 * caller's to check. */
static int check_path(const char *path, char *real, size_t reallen, char *why, size_t whylen)
{
	struct walk w = { .done = "", .links = 0 };
	char comp[NAME_MAX + 1];
	size_t len = strlen(path);
	struct stat st;
	int r;

	if (len >= PATH_MAX) {
		say(why, whylen, "path too long: %s", path);
		return -1;
	}
	/* A relative path: the directories to the working one count too. */
	if (path[0] != '/' && !getcwd(w.todo, sizeof(w.todo) - PATH_MAX - 1)) {
		say(why, whylen, "cannot resolve %s: %s", path, strerror(errno));
		return -1;
	}
	strcat(w.todo, "/");
	strcat(w.todo, path);
	if (lstat("/", &st) != 0 || check_on_path(&st, "/", why, whylen) != 0)
		return -1;
	while ((r = next_component(&w, comp, sizeof(comp))) > 0)
		if (walk_step(&w, comp, why, whylen) != 0)
			return -1;
	if (r < 0) {
		say(why, whylen, "cannot resolve %s: a component is too long", path);
		return -1;
	}
	snprintf(real, reallen, "%s", w.done[0] ? w.done : "/");
	return 0;
}

static int has_required_ops(const struct mailmode_plugin *d, char *why, size_t whylen)
{
	const char *missing = !d->init ? "init" : !d->fini ? "fini" :
	                      !d->validate_config ? "validate_config" : !d->observe ? "observe" :
	                      !d->plan ? "plan" : !d->setup ? "setup" : !d->verify ? "verify" :
	                      !d->teardown ? "teardown" : NULL;

	if (missing) {
		snprintf(why, whylen, "descriptor has no '%s' operation", missing);
		return -1;
	}
	return 0;
}

static int check_descriptor(const struct mailmode_plugin *d, char *why, size_t whylen)
{
	if (d->abi_major != MAILMODE_ABI_MAJOR) {
		snprintf(why, whylen,
		         "built for plugin ABI %u.%u, this mailmode implements %d.%d: rebuild it against mailmode %s",
		         d->abi_major, d->abi_minor, MAILMODE_ABI_MAJOR, MAILMODE_ABI_MINOR,
		         PACKAGE_VERSION);
		return -1;
	}
	if (d->abi_minor > MAILMODE_ABI_MINOR) {
		snprintf(why, whylen,
		         "needs plugin ABI %u.%u, this mailmode implements %d.%d: upgrade mailmode",
		         d->abi_major, d->abi_minor, MAILMODE_ABI_MAJOR, MAILMODE_ABI_MINOR);
		return -1;
	}
	if (d->struct_size < DESCRIPTOR_V1_0_SIZE) {
		snprintf(why, whylen, "descriptor is %u bytes, ABI %d.0 needs at least %zu",
		         (unsigned)d->struct_size, MAILMODE_ABI_MAJOR, DESCRIPTOR_V1_0_SIZE);
		return -1;
	}
	if (!mm_mode_name_valid(d->name)) {
		snprintf(why, whylen, "mode name '%s' is invalid (want [a-z][a-z0-9_-], at most %d)",
		         d->name ? d->name : "(null)", MODE_NAME_MAX);
		return -1;
	}
	return has_required_ops(d, why, whylen);
}

/* Loads one file; on refusal fills why and returns NULL. */
static struct mm_plugin *load_one(const struct mm_plugin_set *set, const char *path,
                                  char *why, size_t whylen)
{
	struct mm_plugin *p = NULL;
	const struct mailmode_plugin *d;
	const struct mm_plugin *clash;
	char real[PATH_MAX];
	struct stat st;
	void *dl = NULL;

	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "not a regular file");
		goto fail;
	}
	if (check_path(path, real, sizeof(real), why, whylen) != 0 || stat(real, &st) != 0 ||
	    check_ownership(&st, "file", path, why, whylen) != 0)
		goto fail;
	/* What was checked, not what a symbolic link may say by now. */
	dl = dlopen(real, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		snprintf(why, whylen, "cannot load: %s", dlerror());
		goto fail;
	}
	d = dlsym(dl, MAILMODE_PLUGIN_SYMBOL);
	if (!d) {
		snprintf(why, whylen, "no %s descriptor: not a mailmode plugin", MAILMODE_PLUGIN_SYMBOL);
		goto fail;
	}
	if (check_descriptor(d, why, whylen) != 0)
		goto fail;
	clash = mm_plugins_find(set, d->name);
	if (clash) {
		snprintf(why, whylen, "mode '%s' is already provided by %s", d->name, clash->path);
		goto fail;
	}
	p = calloc(1, sizeof(*p));
	if (!p || !(p->path = strdup(path))) {
		snprintf(why, whylen, "out of memory");
		goto fail;
	}
	pthread_mutex_init(&p->lock, NULL);
	p->desc = d;
	p->dl = dl;
	return p;
fail:
	if (p)
		free(p->path);
	free(p);
	if (dl)
		dlclose(dl);
	return NULL;
}

struct mm_plugin *mm_plugin_open(const char *path, const struct mm_config *config,
                                 struct mm_output *output, char *why, size_t whylen)
{
	const struct mm_plugin_set none = { 0 };
	struct mm_plugin *p = load_one(&none, path, why, whylen);

	if (p)
		mm_host_init(&p->host, config, output, p->desc->name);
	return p;
}

/* The deadline of the plugin's calls and, unless isolation is off for
 * debugging, its helper processes. */
static int prepare_calls(struct mm_plugin *p, const struct mm_config *config, char *why,
                         size_t whylen)
{
	char section[96];
	const char *timeout, *off = getenv("MAILMODE_NO_ISOLATION");

	snprintf(section, sizeof(section), "mode %s", p->desc->name);
	timeout = config ? mm_config_get(config, section, "call_timeout") : NULL;
	p->call_timeout_ms = MM_DEFAULT_CALL_TIMEOUT_MS;
	if (timeout && (mm_config_duration(timeout, &p->call_timeout_ms) != 0 ||
	                p->call_timeout_ms <= 0)) {
		snprintf(why, whylen, "[%s] call_timeout '%s' is not a duration (\"30s\", \"10m\")",
		         section, timeout);
		return -1;
	}
	if (off && strcmp(off, "1") == 0)
		return 0;
	p->helpers = mm_helpers_new((p->desc->caps & MAILMODE_CAP_THREADSAFE) != 0);
	if (!p->helpers) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	return 0;
}

/* Ends the plugin's helpers (or its in-process context) and unloads it. */
static void free_plugin(struct mm_plugin *p)
{
	mm_helpers_free(p->helpers);
	if (p->started)
		p->desc->fini(p->ctx);
	pthread_mutex_destroy(&p->lock);
	dlclose(p->dl);
	free(p->path);
	free(p);
}

/* The plugin directory's own path: each file's is checked again as it
 * loads, but one line for the directory says it better than one a file. */
static int check_dir_path(const char *dir, char *err, size_t errlen)
{
	char real[PATH_MAX], why[512];

	if (check_path(dir, real, sizeof(real), why, sizeof(why)) == 0)
		return 0;
	snprintf(err, errlen, "plugin directory %s: %s", dir, why);
	return -1;
}

static int has_so_suffix(const char *name)
{
	size_t len = strlen(name);

	return len > 3 && strcmp(name + len - 3, ".so") == 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int mm_plugins_load(struct mm_plugin_set *set, const char *dir, const struct mm_config *config,
                    struct mm_output *output, char *err, size_t errlen)
{
	DIR *dh = NULL;
	struct dirent *de;
	struct stat st;
	char **names = NULL;
	size_t nnames = 0, i;
	int rc = -1;

	memset(set, 0, sizeof(*set));
	if (stat(dir, &st) != 0) {
		snprintf(err, errlen, "plugin directory %s: %s", dir, strerror(errno));
		goto out;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "plugin directory %s: not a directory", dir);
		goto out;
	}
	if (check_ownership(&st, "plugin directory", dir, err, errlen) != 0 ||
	    check_dir_path(dir, err, errlen) != 0) {
		size_t used = strlen(err);

		snprintf(err + used, errlen - used, ": refusing to load plugins from it");
		goto out;
	}
	dh = opendir(dir);
	if (!dh) {
		snprintf(err, errlen, "plugin directory %s cannot be read", dir);
		goto out;
	}
	while ((de = readdir(dh)) != NULL) {
		char **grown;

		if (!has_so_suffix(de->d_name))
			continue;
		grown = realloc(names, (nnames + 1) * sizeof(*names));
		if (!grown)
			goto nomem;
		names = grown;
		if (!(names[nnames] = strdup(de->d_name)))
			goto nomem;
		nnames++;
	}
	qsort(names, nnames, sizeof(*names), by_name);
	for (i = 0; i < nnames; i++) {
		char path[4096], why[512];
		struct mm_plugin *p, **grown;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		p = load_one(set, path, why, sizeof(why));
		if (!p) {
			if (add_refusal(set, path, why) != 0)
				goto nomem;
			continue;
		}
		grown = realloc(set->plugins, (set->count + 1) * sizeof(*grown));
		if (!grown) {
			free_plugin(p);
			goto nomem;
		}
		set->plugins = grown;
		mm_host_init(&p->host, config, output, p->desc->name);
		if (prepare_calls(p, config, why, sizeof(why)) != 0) {
			free_plugin(p);
			if (add_refusal(set, path, why) != 0)
				goto nomem;
			continue;
		}
		set->plugins[set->count++] = p;
	}
	rc = 0;
	goto out;
nomem:
	snprintf(err, errlen, "out of memory while loading plugins");
out:
	for (i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	if (dh)
		closedir(dh);
	return rc;
}

void mm_plugins_unload(struct mm_plugin_set *set)
{
	size_t i;

	/* Reverse order: a later plugin may have been started after an earlier one. */
	for (i = set->count; i-- > 0;)
		free_plugin(set->plugins[i]);
	for (i = 0; i < set->nrefused; i++) {
		free(set->refused[i].path);
		free(set->refused[i].reason);
	}
	free(set->plugins);
	free(set->refused);
	memset(set, 0, sizeof(*set));
}

struct mm_plugin *mm_plugins_find(const struct mm_plugin_set *set, const char *mode)
{
	size_t i;

	for (i = 0; i < set->count; i++)
		if (strcmp(set->plugins[i]->desc->name, mode) == 0)
			return set->plugins[i];
	return NULL;
}

const struct mm_refusal *mm_plugins_refusal_for(const struct mm_plugin_set *set, const char *mode)
{
	size_t i, len = strlen(mode);

	/* A refused file has no trustworthy name: match on its file name. */
	for (i = 0; i < set->nrefused; i++) {
		const char *base = strrchr(set->refused[i].path, '/');

		base = base ? base + 1 : set->refused[i].path;
		if (strncmp(base, mode, len) == 0 && strcmp(base + len, ".so") == 0)
			return &set->refused[i];
	}
	return NULL;
}

int mm_plugin_start(struct mm_plugin *p, struct mailmode_diag *diag)
{
	char section[96];
	int rc = MAILMODE_OK;

	pthread_mutex_lock(&p->lock);
	if (p->started)
		goto out;
	snprintf(section, sizeof(section), "mode %s", p->desc->name);
	rc = p->desc->init(&p->host.table, section, &p->ctx, diag);
	if (rc == MAILMODE_OK)
		p->started = 1;
	else if (diag->severity == MAILMODE_SEV_NONE)
		mm_diag_set(diag, MAILMODE_SEV_ERROR, 0, "plugin %s failed to start (code %d)",
		            p->desc->name, rc);
out:
	pthread_mutex_unlock(&p->lock);
	return rc;
}
