#ifndef MM_NUM_H
#define MM_NUM_H

#include <stdint.h>

/*
 * Strict numbers, shared by the core and the plugins: the whole text must
 * be the number, and a value out of range is refused instead of wrapping,
 * saturating or (for a double cast to an integer) being undefined.
 * Each returns 0, or -1 leaving *out untouched.
 */

/* Decimal digits with an optional '-', within [min, max]. */
int mm_num_parse_long(const char *s, long min, long max, long *out);

/* The longest duration any setting takes: a year.  Anything longer is a
 * typo, and timestamps computed from it would overflow. */
#define MM_NUM_DURATION_MAX_MS (366LL * 24 * 3600 * 1000)

/* "90" or "90s", "500ms", "15m", "2h" -> milliseconds, at most
 * MM_NUM_DURATION_MAX_MS. */
int mm_num_parse_duration(const char *s, long *ms);

/* The last millisecond of year 9999: a timestamp past it is no timestamp,
 * and adding durations to it cannot overflow. */
#define MM_NUM_EPOCH_MS_MAX 253402300799999LL

/* A JSON number (cJSON's valuedouble) as an integer within [min, max]:
 * finite, whole, in range. */
int mm_num_from_double(double v, int64_t min, int64_t max, int64_t *out);

#endif
