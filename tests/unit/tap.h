/* Minimal TAP output for the C unit tests. */
#ifndef MM_TEST_TAP_H
#define MM_TEST_TAP_H

#include <stdio.h>
#include <string.h>

struct tap {
	int n;
	int failed;
};

static inline void tap_plan(int count)
{
	printf("1..%d\n", count);
}

static inline int tap_ok(struct tap *t, int cond, const char *what)
{
	t->n++;
	if (!cond)
		t->failed++;
	printf("%sok %d - %s\n", cond ? "" : "not ", t->n, what);
	return cond;
}

static inline void tap_is_int(struct tap *t, long got, long want, const char *what)
{
	if (!tap_ok(t, got == want, what))
		printf("# got %ld, expected %ld\n", got, want);
}

static inline void tap_is_str(struct tap *t, const char *got, const char *want, const char *what)
{
	int same = (got == NULL && want == NULL) || (got && want && strcmp(got, want) == 0);

	if (!tap_ok(t, same, what))
		printf("# got '%s', expected '%s'\n", got ? got : "(null)", want ? want : "(null)");
}

static inline void tap_contains(struct tap *t, const char *got, const char *needle,
                                const char *what)
{
	if (!tap_ok(t, got && strstr(got, needle) != NULL, what))
		printf("# '%s' does not contain '%s'\n", got ? got : "(null)", needle);
}

static inline int tap_done(const struct tap *t)
{
	return t->failed ? 1 : 0;
}

#endif
