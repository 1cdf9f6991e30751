/* A host table for the fuzz targets: no output, a clock that only moves
 * when slept on, and HTTP answers taken from the fuzz input. */
#ifndef FUZZ_FAKEHOST_H
#define FUZZ_FAKEHOST_H

#include <mailmode/plugin.h>

#include <stddef.h>

/* The answers http_request hands out, in order; "STATUS\nBODY" parts of
 * the input separated by "\n--\n".  After the last: no answer. */
void fake_answers(const char *input, size_t len);
void fake_answers_free(void);
extern const struct mailmode_host fake_host;

#endif
