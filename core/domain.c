#include "domain.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define LABEL_MAX 63

static int is_ldh(unsigned char c)
{
	return isalnum(c) || c == '-';
}

int mm_domain_normalize(const char *in, char *out, char *err, size_t errlen)
{
	size_t len = strlen(in);
	size_t label_len = 0, labels = 0, i;

	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len == 0) {
		snprintf(err, errlen, "invalid domain '%s': empty name", in);
		return -1;
	}
	if (len > MM_DOMAIN_MAX) {
		snprintf(err, errlen, "invalid domain '%.40s...': %zu characters, at most %d allowed",
		         in, len, MM_DOMAIN_MAX);
		return -1;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c >= 0x80) {
			snprintf(err, errlen,
			         "invalid domain '%s': non-ASCII characters; give the IDNA A-label form (xn--...)",
			         in);
			return -1;
		}
		if (c == '.') {
			if (label_len == 0) {
				snprintf(err, errlen, "invalid domain '%s': empty label", in);
				return -1;
			}
			if (in[i - 1] == '-') {
				snprintf(err, errlen, "invalid domain '%s': a label ends with '-'", in);
				return -1;
			}
			labels++;
			label_len = 0;
			out[i] = '.';
			continue;
		}
		if (!is_ldh(c)) {
			snprintf(err, errlen,
			         "invalid domain '%s': character '%c' is not allowed (letters, digits, '-' and '.' only)",
			         in, isprint(c) ? c : '?');
			return -1;
		}
		if (label_len == 0 && c == '-') {
			snprintf(err, errlen, "invalid domain '%s': a label starts with '-'", in);
			return -1;
		}
		if (++label_len > LABEL_MAX) {
			snprintf(err, errlen, "invalid domain '%s': a label is longer than %d characters",
			         in, LABEL_MAX);
			return -1;
		}
		out[i] = (char)tolower(c);
	}
	/* "a.b.." is "a.b." with an empty last label, not a.b: only one final
	 * dot is the root. */
	if (label_len == 0) {
		snprintf(err, errlen, "invalid domain '%s': empty label", in);
		return -1;
	}
	if (in[len - 1] == '-') {
		snprintf(err, errlen, "invalid domain '%s': a label ends with '-'", in);
		return -1;
	}
	labels++;
	if (labels < 2) {
		snprintf(err, errlen, "invalid domain '%s': a mail domain needs at least two labels", in);
		return -1;
	}
	out[len] = '\0';
	return 0;
}
