#include "num.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int mm_num_parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	/* strtol skips leading white space and takes '+': neither is a number
	 * an admin wrote on purpose. */
	if (!s || !(isdigit((unsigned char)s[0]) || (s[0] == '-' && isdigit((unsigned char)s[1]))))
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int mm_num_parse_duration(const char *s, long *ms)
{
	static const struct {
		const char *suffix;
		long long scale;
	} units[] = { { "", 1000 }, { "s", 1000 }, { "ms", 1 }, { "m", 60000 }, { "h", 3600000 } };
	char *end;
	long long v;
	size_t i;

	if (!s || !isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0)
		return -1;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].suffix) != 0)
			continue;
		/* Compared before multiplying, so nothing can wrap. */
		if (v > MM_NUM_DURATION_MAX_MS / units[i].scale || v * units[i].scale > LONG_MAX)
			return -1;
		*ms = (long)(v * units[i].scale);
		return 0;
	}
	return -1;
}

int mm_num_from_double(double v, int64_t min, int64_t max, int64_t *out)
{
	/* 2^63 is exact as a double; INT64_MAX is not, and would round up to
	 * it, letting 2^63 through to an undefined cast. */
	const double two63 = 9223372036854775808.0;

	if (!isfinite(v) || v != floor(v) || v < -two63 || v >= two63)
		return -1;
	if ((int64_t)v < min || (int64_t)v > max)
		return -1;
	*out = (int64_t)v;
	return 0;
}
