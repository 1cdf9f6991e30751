/*
 * The provider [dns NAME] provider = names (config.c has parsed it).
 */
#include "provider.h"
#include "https.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int gw_provider_new(struct gw_op *op, const struct gw_provider_ops *ops,
                    size_t impl_size, const char *who,
                    struct gw_provider **provider)
{
	struct gw_provider *p = calloc(1, sizeof(*p));
	void *impl = calloc(1, impl_size);

	*provider = NULL;
	if (!p || !impl) {
		free(impl);
		free(p);
		return MAILMODE_ERR_NOMEM;
	}
	p->ops = ops;
	p->op = op;
	p->impl = impl;
	snprintf(p->where, sizeof(p->where), "%s (%.400s)", who, op->cfg->api_url);
	*provider = p;
	return MAILMODE_OK;
}

void gw_provider_free(struct gw_provider *provider)
{
	if (!provider)
		return;
	free(provider->impl);
	free(provider);
}

int gw_provider_open(struct gw_op *op, bool need_secret,
                     struct gw_provider **provider)
{
	switch (op->cfg->provider) {
	case GW_PROVIDER_CLOUDFLARE:
		return gw_cloudflare_open(op, provider);
	case GW_PROVIDER_GCLOUD:
		return gw_gcloud_open(op, provider);
	case GW_PROVIDER_ROUTE53:
		return gw_route53_open(op, provider);
	case GW_PROVIDER_AZURE:
		return gw_azure_open(op, provider);
	case GW_PROVIDER_RFC2136:
	default:
		return gw_rfc2136_open(op, need_secret, provider);
	}
}

int gw_provider_check_credentials(const struct gw_ctx *ctx,
                                  const struct gw_config *cfg,
                                  struct mailmode_diag *diag)
{
	char *secret = NULL;
	int rc;

	switch (cfg->provider) {
	case GW_PROVIDER_CLOUDFLARE:
		return gw_cloudflare_check_credentials(ctx, cfg, diag);
	case GW_PROVIDER_GCLOUD:
		return gw_gcloud_check_credentials(ctx, cfg, diag);
	case GW_PROVIDER_ROUTE53:
		return gw_route53_check_credentials(ctx, cfg, diag);
	case GW_PROVIDER_AZURE:
		return gw_azure_check_credentials(ctx, cfg, diag);
	case GW_PROVIDER_RFC2136:
	default:
		rc = gw_config_load_secret(ctx, cfg, &secret, diag);
		if (secret)
			ctx->host->secret_free(ctx->host->handle, secret);
		return rc;
	}
}

void gw_append_line(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;

	if (used + 1 >= len)
		return;
	if (used > 0) {
		buf[used++] = '\n';
		buf[used] = '\0';
	}
	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}


bool gw_mx_set_one_ttl(const struct gw_mx_set *set, uint32_t *ttl)
{
	size_t i;

	*ttl = set->count ? set->mx[0].ttl : 0;
	for (i = 1; i < set->count; i++)
		if (set->mx[i].ttl != *ttl)
			return false;
	return true;
}

bool gw_need_one_ttl(const struct gw_op *op, const char *who, const char *name,
                     const struct gw_mx_set *set)
{
	uint32_t ttl;

	if (gw_mx_set_one_ttl(set, &ttl))
		return true;
	op->ctx->host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0, "%s keeps one TTL "
	                        "per record set, and the MX set for %s has "
	                        "several", who, name);
	return false;
}

void gw_diag_outcome_unknown(const struct gw_op *op)
{
	char first[MAILMODE_DIAG_SUMMARY_MAX];

	snprintf(first, sizeof(first), "%s", op->diag->summary);
	op->ctx->host->diag_set(op->diag, MAILMODE_SEV_ERROR, 1,
	                        "%.400s: outcome unknown", first);
}

void gw_append_rrset(char *buf, size_t len, const char *label, const char *name,
                   const struct gw_mx_set *set)
{
	size_t i;

	for (i = 0; i < set->count; i++)
		gw_append_line(buf, len, "  %s: %s. %u MX %u %s", label, name,
		               set->mx[i].ttl, set->mx[i].pref, set->mx[i].host);
}

enum gw_replace_outcome gw_precondition_refused(struct gw_provider *provider,
                                               const char *name, const char *who,
                                               const char *change, const char *detail)
{
	const struct gw_op *op = provider->op;
	const struct mailmode_host *host = op->ctx->host;

	host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0, "the MX set of %s changed "
	               "at %s between our read and our %s (%s): someone else is "
	               "editing it; nothing was changed by mailmode", name, who,
	               change, detail);
	return GW_REPLACE_CONFLICT;
}

enum gw_replace_outcome gw_change_refused(
	struct gw_provider *provider, const char *name, const char *who,
	const struct gw_https_answer *answer, bool conflict, const char *detail,
	const char *what,
	int (*refused)(struct gw_provider *provider, const char *what,
	               const struct gw_https_answer *answer))
{
	const struct gw_op *op = provider->op;

	if (answer->status >= 500) {
		op->ctx->host->diag_set(op->diag, MAILMODE_SEV_ERROR, 1, "%s "
		                        "answered the change of %s with a server "
		                        "error (%s): outcome unknown", who, name,
		                        detail);
		return GW_REPLACE_UNKNOWN;
	}
	if (conflict)
		return gw_precondition_refused(provider, name, who, "change", detail);
	return refused(provider, what, answer) == MAILMODE_ERR_DENIED
	               ? GW_REPLACE_DENIED : GW_REPLACE_FAILED;
}

void gw_follow_change(struct gw_provider *provider, const char *who,
                      const char *id, const char *status, const char *done,
                      int64_t pause_ms,
                      void (*poll)(struct gw_provider *provider,
                                   const char *id, char *status, size_t len))
{
	struct gw_op *op = provider->op;
	const struct mailmode_host *host = op->ctx->host;
	struct mailmode_diag scratch = { 0 }, *saved = op->diag;
	char now[32];
	int64_t started = host->clock_mono_ms(host->handle);
	int64_t until = started + (int64_t)op->cfg->timeout_s * 1000 *
	                                  GW_REREAD_TIMEOUTS * 4;

	snprintf(now, sizeof(now), "%s", status);
	op->diag = &scratch;
	while (strcmp(now, done) != 0 && host->clock_mono_ms(host->handle) < until) {
		host->sleep_ms(host->handle, pause_ms);
		poll(provider, id, now, sizeof(now));
	}
	op->diag = saved;
	if (strcmp(now, done) != 0)
		host->log(host->handle, MAILMODE_LOG_WARNING, "%s: %s change %s is "
		          "still %s; verify waits for every authoritative server",
		          op->domain, who, id, now);
	else
		host->log(host->handle, MAILMODE_LOG_INFO, "%s: %s change %s %s "
		          "after %lld ms", op->domain, who, id, done,
		          (long long)(host->clock_mono_ms(host->handle) - started));
}

/* ---- the cache of a plugin context -------------------------------------- */

struct cache_entry {
	struct cache_entry *next;
	char *key;
	char *value;
	int64_t expires_ms;         /* wall clock; 0: none */
};

/* One plugin context's cache (gw_ctx.cache): the calls of a THREADSAFE
 * plugin share it, hence the lock. */
struct gw_cache {
	pthread_mutex_t lock;
	struct cache_entry *entries;
};

void gw_cache_free(char *value)
{
	if (!value)
		return;
	explicit_bzero(value, strlen(value));
	free(value);
}

static void entry_free(struct cache_entry *e)
{
	free(e->key);
	gw_cache_free(e->value);
	free(e);
}

/* The link pointing at key's entry (at the end of the list when none).
 * Called with c->lock held. */
static struct cache_entry **entry_link(struct gw_cache *c, const char *key)
{
	struct cache_entry **link = &c->entries;

	while (*link && strcmp((*link)->key, key) != 0)
		link = &(*link)->next;
	return link;
}

char *gw_cache_get(const struct gw_op *op, const char *key, int64_t *expires_ms)
{
	const struct mailmode_host *host = op->ctx->host;
	int64_t now = host->clock_wall_ms(host->handle);
	struct gw_cache *c = op->ctx->cache;
	struct cache_entry *e;
	char *value = NULL;

	if (!c)
		return NULL;
	pthread_mutex_lock(&c->lock);
	e = *entry_link(c, key);
	if (e && (e->expires_ms == 0 || e->expires_ms > now)) {
		value = strdup(e->value);
		if (expires_ms)
			*expires_ms = e->expires_ms;
	}
	pthread_mutex_unlock(&c->lock);
	return value;
}

void gw_cache_put(const struct gw_op *op, const char *key, const char *value,
                  int64_t expires_ms)
{
	struct gw_cache *c = op->ctx->cache;
	struct cache_entry **link, *e;

	if (!c || !(e = calloc(1, sizeof(*e))))
		return;
	if (!(e->key = strdup(key)) || !(e->value = strdup(value))) {
		entry_free(e);
		return;
	}
	e->expires_ms = expires_ms;
	pthread_mutex_lock(&c->lock);
	link = entry_link(c, key);
	if (*link) {
		e->next = (*link)->next;
		entry_free(*link);
	}
	*link = e;
	pthread_mutex_unlock(&c->lock);
}

void gw_cache_drop(const struct gw_op *op, const char *key, const char *value)
{
	struct gw_cache *c = op->ctx->cache;
	struct cache_entry **link, *e = NULL;

	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	link = entry_link(c, key);
	if (*link && (!value || strcmp((*link)->value, value) == 0)) {
		e = *link;
		*link = e->next;
	}
	pthread_mutex_unlock(&c->lock);
	if (e)
		entry_free(e);
}

int gw_zone_cached(struct gw_provider *provider, const char *name,
                   int (*look_up)(struct gw_provider *provider,
                                  const char *name, char *first, char *second),
                   void (*use)(struct gw_provider *provider, const char *first,
                               const char *second))
{
	const struct gw_op *op = provider->op;
	char key[GW_NAME_MAX * 2 + 64], first[GW_NAME_MAX], second[GW_NAME_MAX];
	char *value, *cut;
	int rc = MAILMODE_OK;

	snprintf(key, sizeof(key), "%s zone\n%s\n%s", provider->ops->name,
	         op->cfg->dns_section, name);
	value = gw_cache_get(op, key, NULL);
	cut = value ? strchr(value, '\n') : NULL;
	if (cut) {
		*cut = '\0';
		use(provider, value, cut + 1);
		goto out;
	}
	first[0] = second[0] = '\0';
	rc = look_up(provider, name, first, second);
	if (rc != MAILMODE_OK)
		goto out;
	use(provider, first, second);
	gw_cache_free(value);
	value = malloc(strlen(first) + strlen(second) + 2);
	if (value) {
		sprintf(value, "%s\n%s", first, second);
		gw_cache_put(op, key, value, 0);
	}
out:
	gw_cache_free(value);
	return rc;
}

struct gw_cache *gw_cache_new(void)
{
	struct gw_cache *c = calloc(1, sizeof(*c));

	if (c && pthread_mutex_init(&c->lock, NULL) != 0) {
		free(c);
		c = NULL;
	}
	return c;
}

void gw_cache_destroy(struct gw_cache *c)
{
	struct cache_entry *e;

	if (!c)
		return;
	while ((e = c->entries)) {
		c->entries = e->next;
		entry_free(e);
	}
	pthread_mutex_destroy(&c->lock);
	free(c);
}
