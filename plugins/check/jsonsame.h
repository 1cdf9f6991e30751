#ifndef MMCHECK_JSONSAME_H
#define MMCHECK_JSONSAME_H

/* Whether two JSON texts say the same thing: objects compared key by key
 * whatever the order, arrays as multisets (a plugin may list servers in the
 * order they answered; a duplicate still counts), numbers by value.
 * Returns 1 same, 0 different, -1 when either text is not JSON. */
int json_same(const char *a, const char *b);

/* Whether text parses as JSON (1) or not (0). */
int json_valid(const char *text);

#endif
