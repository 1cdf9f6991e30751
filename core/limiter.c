#include "limiter.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX 320

struct slot {
	char key[KEY_MAX];
	int limit;
	int used;
};

struct mm_limiter {
	pthread_mutex_t lock;
	pthread_cond_t freed;
	int tenant_cap;
	struct slot *slots;
	size_t count, cap;
};

struct mm_limiter *mm_limiter_new(int tenant_cap)
{
	struct mm_limiter *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->freed, NULL);
	l->tenant_cap = tenant_cap > 0 ? tenant_cap : 1;
	return l;
}

void mm_limiter_free(struct mm_limiter *l)
{
	if (!l)
		return;
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->freed);
	free(l->slots);
	free(l);
}

/* Tenants take the configured cap; a DNS zone and anything unknown one. */
static int limit_of(const struct mm_limiter *l, const char *key)
{
	return strncmp(key, "tenant ", 7) == 0 ? l->tenant_cap : 1;
}

static struct slot *slot_of(struct mm_limiter *l, const char *key, size_t len)
{
	size_t i;

	if (len == 0 || len >= KEY_MAX)
		return NULL;
	for (i = 0; i < l->count; i++)
		if (strlen(l->slots[i].key) == len && strncmp(l->slots[i].key, key, len) == 0)
			return &l->slots[i];
	if (l->count == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct slot *grown = realloc(l->slots, cap * sizeof(*grown));

		if (!grown)
			return NULL;
		l->slots = grown;
		l->cap = cap;
	}
	memset(&l->slots[l->count], 0, sizeof(l->slots[0]));
	memcpy(l->slots[l->count].key, key, len);
	l->slots[l->count].limit = limit_of(l, l->slots[l->count].key);
	return &l->slots[l->count++];
}

/* Calls fn on each line's slot; stops at the first non-zero result. */
static int each_slot(struct mm_limiter *l, const char *resources,
                     int (*fn)(struct slot *s, void *arg), void *arg)
{
	const char *line = resources;
	int rc = 0;

	while (line && *line && rc == 0) {
		const char *eol = strchr(line, '\n');
		size_t len = eol ? (size_t)(eol - line) : strlen(line);
		struct slot *s = len ? slot_of(l, line, len) : NULL;

		if (len && !s)
			return -1;
		if (s)
			rc = fn(s, arg);
		line = eol ? eol + 1 : NULL;
	}
	return rc;
}

static int is_full(struct slot *s, void *arg)
{
	(void)arg;
	return s->used >= s->limit;
}

static int take(struct slot *s, void *arg)
{
	(void)arg;
	s->used++;
	return 0;
}

static int give_back(struct slot *s, void *arg)
{
	(void)arg;
	s->used--;
	return 0;
}

int mm_limiter_acquire(struct mm_limiter *l, const char *resources)
{
	int full, rc = 0;

	pthread_mutex_lock(&l->lock);
	while ((full = each_slot(l, resources, is_full, NULL)) > 0)
		pthread_cond_wait(&l->freed, &l->lock);
	if (full < 0)
		rc = -1;
	else
		each_slot(l, resources, take, NULL);
	pthread_mutex_unlock(&l->lock);
	return rc;
}

void mm_limiter_release(struct mm_limiter *l, const char *resources)
{
	pthread_mutex_lock(&l->lock);
	each_slot(l, resources, give_back, NULL);
	pthread_cond_broadcast(&l->freed);
	pthread_mutex_unlock(&l->lock);
}
