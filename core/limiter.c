#include "limiter.h"

#include "mm.h"
#include "state.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KEY_MAX 320
/* A plugin names a resource or two (plugin.h: resources). */
#define HELD_MAX 8
#define SHARED_POLL_MS 200
/* A slot in the state database outlives its call only when the process
 * died on another host; a call ends within its plugin's call timeout. */
#define SHARED_LEASE_MS (2L * 60 * 1000)
/* Renewed well within the lease, so that a call running longer (a
 * verify that waits for a record) keeps its slots. */
#define SHARED_RENEW_MS (SHARED_LEASE_MS / 4)

struct slot {
	char key[KEY_MAX];
	int limit;
	int used;
	int writing;               /* an exclusive caller holds it */
	unsigned long long held;   /* bit K-1: slot K in the state DB is ours */
};

struct mm_limiter {
	pthread_mutex_t lock;
	pthread_cond_t freed;
	int tenant_cap;
	struct slot *slots;
	size_t count, cap;
	struct mm_state *state;    /* shared: the count in the state DB too */
	pthread_mutex_t state_lock;
	pthread_t renewer;         /* shared: renews the slots held (renew_loop) */
	int stopping;              /* under lock: the renewer is to end */
	pthread_cond_t stop;
};

struct mm_limiter *mm_limiter_new(int tenant_cap)
{
	struct mm_limiter *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	pthread_mutex_init(&l->lock, NULL);
	pthread_mutex_init(&l->state_lock, NULL);
	pthread_cond_init(&l->freed, NULL);
	pthread_cond_init(&l->stop, NULL);
	l->tenant_cap = tenant_cap > 0 ? tenant_cap : 1;
	return l;
}

void mm_limiter_free(struct mm_limiter *l)
{
	if (!l)
		return;
	if (l->state) {
		pthread_mutex_lock(&l->lock);
		l->stopping = 1;
		pthread_cond_signal(&l->stop);
		pthread_mutex_unlock(&l->lock);
		pthread_join(l->renewer, NULL);
	}
	mm_state_close(l->state);
	pthread_mutex_destroy(&l->lock);
	pthread_mutex_destroy(&l->state_lock);
	pthread_cond_destroy(&l->freed);
	pthread_cond_destroy(&l->stop);
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

/* arg: whether the caller is exclusive (int). */
static int is_full(struct slot *s, void *arg)
{
	return s->used >= s->limit || (*(const int *)arg && s->writing);
}

static int take(struct slot *s, void *arg)
{
	s->used++;
	s->writing |= *(const int *)arg;
	return 0;
}

static int give_back(struct slot *s, void *arg)
{
	s->used--;
	if (*(const int *)arg)
		s->writing = 0;
	return 0;
}

static void give_local(struct mm_limiter *l, const char *resources, int exclusive)
{
	pthread_mutex_lock(&l->lock);
	each_slot(l, resources, give_back, &exclusive);
	pthread_cond_broadcast(&l->freed);
	pthread_mutex_unlock(&l->lock);
}

/* The slots of the calls in flight, renewed.  Under state_lock, so that
 * none is given back (its row deleted) between being listed and renewed. */
static void renew_held_slots(struct mm_limiter *l)
{
	const char **names = NULL;
	char (*keys)[KEY_MAX] = NULL;
	char err[MM_ERR_MAX];
	int *ks = NULL, k;
	size_t i, n = 0;

	pthread_mutex_lock(&l->state_lock);
	pthread_mutex_lock(&l->lock);
	for (i = 0; i < l->count; i++)
		n += (size_t)__builtin_popcountll(l->slots[i].held);
	if (n && (names = calloc(n, sizeof(*names))) && (keys = calloc(n, sizeof(*keys))) &&
	    (ks = calloc(n, sizeof(*ks))))
		for (i = 0, n = 0; i < l->count; i++)
			for (k = 0; k < 64; k++)
				if (l->slots[i].held & (1ULL << k)) {
					memcpy(keys[n], l->slots[i].key, KEY_MAX);
					names[n] = keys[n];
					ks[n++] = k + 1;
				}
	pthread_mutex_unlock(&l->lock);
	/* A slot lost (this process stalled past its lease) is another's
	 * now: its call runs on to its end, the others keep theirs. */
	if (ks)
		mm_state_renew_slots(l->state, names, ks, n, SHARED_LEASE_MS, err);
	pthread_mutex_unlock(&l->state_lock);
	free(names);
	free(keys);
	free(ks);
}

/* Until mm_limiter_free: every SHARED_RENEW_MS, the slots held renewed. */
static void *renew_loop(void *arg)
{
	struct mm_limiter *l = arg;
	struct timespec at;
	long ns;

	pthread_mutex_lock(&l->lock);
	while (!l->stopping) {
		clock_gettime(CLOCK_REALTIME, &at);
		ns = at.tv_nsec + SHARED_RENEW_MS % 1000 * 1000000L;
		at.tv_sec += SHARED_RENEW_MS / 1000 + ns / 1000000000L;
		at.tv_nsec = ns % 1000000000L;
		while (!l->stopping && pthread_cond_timedwait(&l->stop, &l->lock, &at) == 0)
			;
		if (l->stopping)
			break;
		pthread_mutex_unlock(&l->lock);
		renew_held_slots(l);
		pthread_mutex_lock(&l->lock);
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

int mm_limiter_share(struct mm_limiter *l, const char *state, long busy_ms, char *err)
{
	int rc = mm_state_open(state, busy_ms, &l->state, err), e = 0;

	if (rc == MM_OK && (e = pthread_create(&l->renewer, NULL, renew_loop, l)) != 0) {
		snprintf(err, MM_ERR_MAX, "cannot start the renewal of the tenant slots: %s",
		         strerror(e));
		mm_state_close(l->state);
		l->state = NULL;
		rc = MM_ERR;
	}
	return rc;
}

/* A call's resources as the state database counts them: copies, since
 * the slots move when the table grows.  ks[i]: the slot K held. */
struct held {
	char keys[HELD_MAX][KEY_MAX];
	const char *names[HELD_MAX];
	int limits[HELD_MAX];
	int ks[HELD_MAX];
	size_t n;
	int giving;                /* 1: pick (and clear) a K that is ours */
};

static int collect(struct slot *s, void *arg)
{
	struct held *h = arg;
	int k;

	if (h->n == HELD_MAX)
		return -1;
	memcpy(h->keys[h->n], s->key, KEY_MAX);
	h->names[h->n] = h->keys[h->n];
	h->limits[h->n] = s->limit < 64 ? s->limit : 64;
	for (k = 0; h->giving && k < 64 && !(s->held & (1ULL << k)); k++)
		;
	if (h->giving && k < 64) {
		h->ks[h->n] = k + 1;
		s->held &= ~(1ULL << k);
	}
	h->n++;
	return 0;
}

static int mark(struct slot *s, void *arg)
{
	struct held *h = arg;

	s->held |= 1ULL << (h->ks[h->n++] - 1);
	return 0;
}

/* Tells the waiter, once, that the caller waits. */
static void go_away(const struct mm_limiter_waiter *waiter, int *away)
{
	if (waiter && !*away)
		waiter->away(waiter->arg, 1);
	*away = 1;
}

/* The state database's slots, once those of this process are taken:
 * polls until one of each resource is free; 0, or -1 (none taken). */
static int take_shared(struct mm_limiter *l, const char *resources,
                       const struct mm_limiter_waiter *waiter, int *away)
{
	struct held h = { .n = 0 };
	char err[MM_ERR_MAX];
	int taken = 0, rc;

	pthread_mutex_lock(&l->lock);
	rc = each_slot(l, resources, collect, &h);
	pthread_mutex_unlock(&l->lock);
	while (rc == 0 && !taken) {
		pthread_mutex_lock(&l->state_lock);
		rc = mm_state_take_slots(l->state, h.names, h.limits, h.n, SHARED_LEASE_MS, h.ks,
		                         &taken, err) == MM_OK ? 0 : -1;
		pthread_mutex_unlock(&l->state_lock);
		if (rc == 0 && !taken) {
			go_away(waiter, away);
			usleep(SHARED_POLL_MS * 1000);
		}
	}
	if (rc != 0)
		return -1;
	pthread_mutex_lock(&l->lock);
	h.n = 0;
	each_slot(l, resources, mark, &h);
	pthread_mutex_unlock(&l->lock);
	return 0;
}

/* Any of this process's slots is as good as another: they name the same
 * holder.  One that cannot be let go runs out with its lease. */
static void give_shared(struct mm_limiter *l, const char *resources)
{
	struct held h = { .n = 0, .giving = 1 };
	char err[MM_ERR_MAX];

	pthread_mutex_lock(&l->lock);
	each_slot(l, resources, collect, &h);
	pthread_mutex_unlock(&l->lock);
	pthread_mutex_lock(&l->state_lock);
	mm_state_give_slots(l->state, h.names, h.ks, h.n, err);
	pthread_mutex_unlock(&l->state_lock);
}

int mm_limiter_acquire(struct mm_limiter *l, const char *resources, int exclusive,
                       const struct mm_limiter_waiter *waiter)
{
	int full, rc = 0, away = 0;

	pthread_mutex_lock(&l->lock);
	while ((full = each_slot(l, resources, is_full, &exclusive)) > 0) {
		if (waiter && !away) {
			/* The waiter may block on its own lock: not under ours. */
			pthread_mutex_unlock(&l->lock);
			go_away(waiter, &away);
			pthread_mutex_lock(&l->lock);
			continue;
		}
		pthread_cond_wait(&l->freed, &l->lock);
	}
	if (full < 0)
		rc = -1;
	else
		each_slot(l, resources, take, &exclusive);
	pthread_mutex_unlock(&l->lock);
	if (rc == 0 && l->state && take_shared(l, resources, waiter, &away) != 0) {
		give_local(l, resources, exclusive);
		rc = -1;
	}
	if (waiter && away)
		waiter->away(waiter->arg, 0);
	return rc;
}

void mm_limiter_release(struct mm_limiter *l, const char *resources, int exclusive)
{
	if (l->state)
		give_shared(l, resources);
	give_local(l, resources, exclusive);
}
