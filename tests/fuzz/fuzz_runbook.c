/* libFuzzer target: the runbook reader (INI lines, options, domains). */
#include "runbook.h"

#include <stdint.h>
#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FILE *f = fmemopen((void *)data, size, "r");
	struct mm_runbook rb;

	if (!f)
		return 0;
	mm_runbook_read(f, "/fuzz/runbook.ini", &rb);
	fclose(f);
	mm_runbook_free(&rb);
	return 0;
}
