/* The configuration's sections and keys, checked against what the core and
 * the loaded plugins declare: a misspelt key would otherwise be ignored and
 * its default used without a word. */
#include "config.h"

#include "loader.h"
#include "nearest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct mailmode_config_key core_keys[] = {
	{ "mailmode", "state", MAILMODE_KEY_PATH, MM_LOCALSTATEDIR "/lib/mailmode/state.db",
	  "the state DB (domains, migrations, journal, locks)" },
	{ "mailmode", "plugin_dir", MAILMODE_KEY_PATH, MM_PLUGIN_DIR,
	  "the directory the mode plugins are loaded from" },
	{ "mailmode", "default_profile", MAILMODE_KEY_STRING, NULL,
	  "the profile used when --profile is not given and there are several" },
	{ "mailmode", "lock_timeout", MAILMODE_KEY_INT, "10",
	  "seconds to wait for a domain or the state DB held by another run" },
	{ "mode", "call_timeout", MAILMODE_KEY_DURATION, "30m",
	  "deadline of each call into the mode's plugin: a helper that misses it is killed" },
	{ "quicktest", "resolver", MAILMODE_KEY_STRING, NULL,
	  "ADDRESS[@PORT] asked for the MX of the test address (default: the system's)" },
	{ "quicktest", "smtp_port", MAILMODE_KEY_INT, "25",
	  "port the test message is delivered to" },
	{ "quicktest", "sender", MAILMODE_KEY_STRING, NULL,
	  "envelope sender of the test message (default: postmaster@this host)" },
	{ "quicktest", "timeout", MAILMODE_KEY_DURATION, "10m",
	  "how long to wait for the message to show in the trace" },
	{ NULL, NULL, MAILMODE_KEY_STRING, NULL, NULL }
};

struct checker {
	const struct mm_config *cfg;
	const struct mm_config_keyset *sets;
	size_t nsets;
	char *err;
	size_t errlen;
};

/* The first word of a section name ("dns" of "dns lab"); *name is the rest
 * or NULL. */
static void split_kind(const char *section, char *kind, size_t kindlen, const char **name)
{
	const char *space = strchr(section, ' ');
	size_t len = space ? (size_t)(space - section) : strlen(section);

	snprintf(kind, kindlen, "%.*s", (int)len, section);
	*name = NULL;
	if (space) {
		while (*space == ' ')
			space++;
		*name = *space ? space : NULL;
	}
}

static const struct mm_config_keyset *set_of(const struct checker *c, const char *mode)
{
	size_t i;

	for (i = 0; i < c->nsets; i++)
		if (strcmp(c->sets[i].mode, mode) == 0)
			return &c->sets[i];
	return NULL;
}

/* Whether some plugin declares keys for [KIND NAME] sections. */
static int plugin_kind(const struct checker *c, const char *kind)
{
	const struct mailmode_config_key *k;
	size_t i;

	if (strcmp(kind, "profile") == 0 || strcmp(kind, "mode") == 0)
		return 0;
	for (i = 0; i < c->nsets; i++)
		for (k = c->sets[i].keys; k && k->name; k++)
			if (strcmp(k->section, kind) == 0)
				return 1;
	return 0;
}

static void each_kind(const struct checker *c, struct mm_nearest *n)
{
	static const char *const core_kinds[] = { "mailmode", "quicktest", "profile", "mode" };
	const struct mailmode_config_key *k;
	size_t i;

	for (i = 0; i < sizeof(core_kinds) / sizeof(core_kinds[0]); i++)
		mm_nearest_consider(n, core_kinds[i]);
	for (i = 0; i < c->nsets; i++)
		for (k = c->sets[i].keys; k && k->name; k++)
			mm_nearest_consider(n, k->section);
}

static int fail(const struct checker *c, int line, const char *fmt, ...) MAILMODE_PRINTF(3, 4);
static int fail(const struct checker *c, int line, const char *fmt, ...)
{
	int n = snprintf(c->err, c->errlen, "%s:%d: ", mm_config_path(c->cfg), line);
	va_list ap;

	va_start(ap, fmt);
	if (n > 0 && (size_t)n < c->errlen)
		vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

static int unknown_section(const struct checker *c, int line, const char *section,
                           const char *kind, const char *name)
{
	struct mm_nearest n = MM_NEAREST_INIT(kind);
	char hint[160] = "";

	each_kind(c, &n);
	if (n.best)
		snprintf(hint, sizeof(hint), " (did you mean [%s%s%s]?)", n.best, name ? " " : "",
		         name ? name : "");
	return fail(c, line, "unknown section [%s]%s", section, hint);
}

static int check_mode_section(const struct checker *c, int line, const char *name)
{
	struct mm_nearest n = MM_NEAREST_INIT(name);
	char hint[96] = "";
	size_t i;

	if (set_of(c, name))
		return 0;
	for (i = 0; i < c->nsets; i++)
		mm_nearest_consider(&n, c->sets[i].mode);
	if (n.best)
		snprintf(hint, sizeof(hint), " (did you mean [mode %s]?)", n.best);
	return fail(c, line, "[mode %s]: no loaded plugin provides mode '%s'%s", name, name, hint);
}

static int check_section(const struct checker *c, int line, const char *section)
{
	const char *name;
	char kind[64];

	split_kind(section, kind, sizeof(kind), &name);
	if (strcmp(kind, "mailmode") == 0 || strcmp(kind, "quicktest") == 0) {
		if (name)
			return fail(c, line, "[%s] takes no name: write [%s]", section, kind);
		return 0;
	}
	if (strcmp(kind, "profile") != 0 && strcmp(kind, "mode") != 0 && !plugin_kind(c, kind))
		return unknown_section(c, line, section, kind, name);
	if (!name)
		return fail(c, line, "[%s] needs a name: write [%s NAME]", kind, kind);
	if (strcmp(kind, "mode") == 0)
		return check_mode_section(c, line, name);
	return 0;
}

/* Whether key is declared for a section of this kind (for [mode NAME]:
 * by plugin NAME); the nearest declared one goes to n. */
static int key_known(const struct checker *c, const char *kind, const char *mode,
                     const char *key, struct mm_nearest *n)
{
	const struct mailmode_config_key *k;
	size_t i;
	int found = 0;

	for (k = core_keys; k->name; k++)
		if (strcmp(k->section, kind) == 0) {
			found |= strcmp(k->name, key) == 0;
			mm_nearest_consider(n, k->name);
		}
	for (i = 0; i < c->nsets; i++) {
		if (mode && strcmp(c->sets[i].mode, mode) != 0)
			continue;
		for (k = c->sets[i].keys; k && k->name; k++)
			if (strcmp(k->section, kind) == 0) {
				found |= strcmp(k->name, key) == 0;
				mm_nearest_consider(n, k->name);
			}
	}
	return found;
}

/* "tenant = T" in a profile names [tenant T]: it must be there. */
static int check_reference(const struct checker *c, int line, const char *section,
                           const char *key, const char *value)
{
	struct mm_nearest n = MM_NEAREST_INIT(value);
	char target[512], what[512], why[700];
	const char *other, *name;
	char kind[64];
	size_t i;
	int l, used;

	if (!plugin_kind(c, key) || !*value)
		return 0;
	snprintf(target, sizeof(target), "%s %s", key, value);
	if (mm_config_has_section(c->cfg, target))
		return 0;
	for (i = 0; (other = mm_config_section_at(c->cfg, i, &l)); i++) {
		split_kind(other, kind, sizeof(kind), &name);
		if (name && strcmp(kind, key) == 0)
			mm_nearest_consider(&n, name);
	}
	snprintf(what, sizeof(what), "%s = %s", key, value);
	used = snprintf(why, sizeof(why), "there is no [%s] section", target);
	if (n.best && used > 0 && (size_t)used < sizeof(why))
		snprintf(why + used, sizeof(why) - (size_t)used, " (did you mean %s = %s?)", key,
		         n.best);
	return fail(c, line, "[%s] %s: %s", section, what, why);
}

static int check_entry(const struct checker *c, int line, const char *section, const char *key,
                       const char *value)
{
	struct mm_nearest n = MM_NEAREST_INIT(key);
	const char *name;
	char kind[64], hint[160] = "";

	split_kind(section, kind, sizeof(kind), &name);
	if (key_known(c, kind, strcmp(kind, "mode") == 0 ? name : NULL, key, &n))
		return strcmp(kind, "profile") == 0 ? check_reference(c, line, section, key, value) : 0;
	if (n.best)
		snprintf(hint, sizeof(hint), " (did you mean '%s'?)", n.best);
	return fail(c, line, "unknown key '%s' in [%s]%s", key, section, hint);
}

static int core_kind(const char *section)
{
	char kind[64];
	const char *name;

	split_kind(section, kind, sizeof(kind), &name);
	return strcmp(kind, "mailmode") == 0 || strcmp(kind, "quicktest") == 0;
}

int mm_config_check(const struct mm_config *cfg, const struct mm_config_keyset *sets,
                    size_t nsets, int *unchecked, char *err, size_t errlen)
{
	struct checker c = { .cfg = cfg, .sets = sets, .nsets = nsets, .err = err,
	                     .errlen = errlen };
	const char *section, *key, *value;
	size_t i;
	int line;

	*unchecked = 0;
	for (i = 0; i < nsets; i++)
		if (!sets[i].keys)
			*unchecked = 1;
	for (i = 0; (section = mm_config_section_at(cfg, i, &line)); i++)
		if ((!*unchecked || core_kind(section)) && check_section(&c, line, section) != 0)
			return -1;
	for (i = 0; (key = mm_config_entry_at(cfg, i, &section, &value, &line)); i++)
		if ((!*unchecked || core_kind(section)) &&
		    check_entry(&c, line, section, key, value) != 0)
			return -1;
	return 0;
}

const struct mailmode_config_key *mm_declared_keys(const struct mailmode_plugin *d)
{
	/* The slot is a reserved one before 1.2: only read it then. */
	return d->abi_minor >= 2 && d->config_keys ? d->config_keys() : NULL;
}

int mm_config_check_plugins(const struct mm_config *cfg, const struct mm_plugin_set *plugins,
                            char *warning, size_t warninglen, char *err, size_t errlen)
{
	struct mm_config_keyset *sets = calloc(plugins->count + 1, sizeof(*sets));
	const char *undeclared = NULL;
	size_t i;
	int unchecked = 0, rc;

	warning[0] = '\0';
	if (!sets) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < plugins->count; i++) {
		const struct mailmode_plugin *d = plugins->plugins[i]->desc;

		sets[i].mode = d->name;
		sets[i].keys = mm_declared_keys(d);
		if (!sets[i].keys && !undeclared)
			undeclared = d->name;
	}
	rc = mm_config_check(cfg, sets, plugins->count, &unchecked, err, errlen);
	if (rc == 0 && unchecked && mm_config_path(cfg)[0])
		snprintf(warning, warninglen,
		         "config %s: plugin %s declares no configuration keys (plugin ABI before 1.2): only [mailmode] and [quicktest] are checked",
		         mm_config_path(cfg), undeclared);
	free(sets);
	return rc;
}
