#include "loader.h"

#include <dirent.h>
#include <errno.h>
#include <dlfcn.h>
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

/* Files that others could replace would let them run code as us. */
static int check_ownership(const struct stat *st, const char *what, const char *path,
                           char *why, size_t whylen)
{
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(why, whylen, "%s %s is writable by group or others (mode %03o)", what, path,
		         (unsigned)(st->st_mode & 0777));
		return -1;
	}
	if (st->st_uid != 0 && st->st_uid != geteuid()) {
		snprintf(why, whylen, "%s %s is owned by uid %u, neither root nor the current user",
		         what, path, (unsigned)st->st_uid);
		return -1;
	}
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
	struct stat st;
	void *dl = NULL;

	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "not a regular file");
		goto fail;
	}
	if (check_ownership(&st, "file", path, why, whylen) != 0)
		goto fail;
	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
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
	if (check_ownership(&st, "plugin directory", dir, err, errlen) != 0) {
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
			dlclose(p->dl);
			free(p->path);
			free(p);
			goto nomem;
		}
		set->plugins = grown;
		mm_host_init(&p->host, config, output, p->desc->name);
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
	for (i = set->count; i-- > 0;) {
		struct mm_plugin *p = set->plugins[i];

		if (p->started)
			p->desc->fini(p->ctx);
		pthread_mutex_destroy(&p->lock);
		dlclose(p->dl);
		free(p->path);
		free(p);
	}
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
