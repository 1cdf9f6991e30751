/* libFuzzer target: domain names.  What is accepted must be canonical:
 * normalising it again gives the same name. */
#include "domain.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size + 1);
	char out[MM_DOMAIN_MAX + 1], again[MM_DOMAIN_MAX + 1], err[512];

	if (!in)
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';
	if (mm_domain_normalize(in, out, err, sizeof(err)) == 0) {
		if (mm_domain_normalize(out, again, err, sizeof(err)) != 0 || strcmp(out, again) != 0)
			abort();
		if (strlen(out) > MM_DOMAIN_MAX || strstr(out, "..") || out[0] == '.' ||
		    out[strlen(out) - 1] == '.')
			abort();
	}
	free(in);
	return 0;
}
