#ifndef MM_DOMAIN_H
#define MM_DOMAIN_H

#include <stddef.h>

#define MM_DOMAIN_MAX 253

/* Validates a mail domain name and writes its canonical form (lower-case,
 * no trailing dot) to out[MM_DOMAIN_MAX + 1].  Returns 0, or -1 with a
 * one-line reason in err. */
int mm_domain_normalize(const char *in, char *out, char *err, size_t errlen);

#endif
