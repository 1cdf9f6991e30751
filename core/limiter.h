#ifndef MM_LIMITER_H
#define MM_LIMITER_H

/* Bounds the calls in flight per shared resource (a tenant's API, a DNS
 * zone) when many domains are migrated at once.  Resources are named by
 * the plugins ("KIND NAME" lines, see plugin.h: resources). */
struct mm_limiter;

struct mm_limiter *mm_limiter_new(int tenant_cap);
void mm_limiter_free(struct mm_limiter *limiter);
/* Counts the calls in the state database too (its own connection to
 * state, a path or URL), so that the bounds hold across the processes and
 * hosts sharing it: a tenant's cap is for all of them together.  A
 * thread renews the slots of the calls in flight within their lease (a
 * call may outlast it) until mm_limiter_free.  MM_OK, or MM_ERR with err. */
int mm_limiter_share(struct mm_limiter *limiter, const char *state, long busy_ms, char *err);

/* Told around a wait for room: away(arg, 1) before the caller waits,
 * away(arg, 0) once it has its slots.  A runbook's domain gives its worker
 * back meanwhile and takes one again after. */
struct mm_limiter_waiter {
	void (*away)(void *arg, int away);
	void *arg;
};

/* Takes every resource listed (one "KIND NAME" per line), waiting until all
 * of them have room (here and, when shared, in the state database), so
 * that two callers never hold half of each other's set.  exclusive: the
 * call writes what the resources share (a setup or teardown), so it also
 * takes each one's writer's place in this process, which one caller holds
 * at a time.  waiter may be NULL.  Returns 0, or -1 when out of memory or
 * the state database failed (nothing taken). */
int mm_limiter_acquire(struct mm_limiter *limiter, const char *resources, int exclusive,
                       const struct mm_limiter_waiter *waiter);
void mm_limiter_release(struct mm_limiter *limiter, const char *resources, int exclusive);

#endif
