#include "nearest.h"

#include <string.h>

static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j;
	size_t d[3][65];
	size_t *prev2 = d[0], *prev = d[1], *cur = d[2], *t;

	if (la > 64 || lb > 64)
		return (size_t)-1;
	for (j = 0; j <= lb; j++)
		prev[j] = j;
	for (i = 1; i <= la; i++) {
		cur[0] = i;
		for (j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] != b[j - 1], best = prev[j - 1] + cost;

			if (prev[j] + 1 < best)
				best = prev[j] + 1;
			if (cur[j - 1] + 1 < best)
				best = cur[j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    prev2[j - 2] + 1 < best)
				best = prev2[j - 2] + 1;
			cur[j] = best;
		}
		t = prev2, prev2 = prev, prev = cur, cur = t;
	}
	return prev[lb];
}

void mm_nearest_consider(struct mm_nearest *n, const char *candidate)
{
	size_t d = distance(n->word, candidate), len = strlen(n->word);
	size_t limit = len <= 4 ? 1 : len <= 8 ? 2 : 3;

	if (d <= limit && d < n->dist) {
		n->best = candidate;
		n->dist = d;
	}
}
