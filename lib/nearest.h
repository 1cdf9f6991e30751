#ifndef MM_NEAREST_H
#define MM_NEAREST_H

#include <stddef.h>

/*
 * "Did you mean": the known word nearest to a mistyped one, by optimal
 * string alignment distance (a swapped pair counts as one edit, as typos
 * usually are), within a limit that grows with the word's length (1 up to
 * 4 characters, 2 up to 8, 3 beyond), so that an unrelated word is never
 * suggested.
 */
struct mm_nearest {
	const char *word;          /* the mistyped word */
	const char *best;          /* the nearest candidate so far, or NULL */
	size_t dist;
};

#define MM_NEAREST_INIT(w) { (w), NULL, (size_t)-1 }

void mm_nearest_consider(struct mm_nearest *n, const char *candidate);

#endif
