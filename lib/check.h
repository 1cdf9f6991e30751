#ifndef MM_CHECK_H
#define MM_CHECK_H

#include <cjson/cJSON.h>
#include <mailmode/plugin.h>

/*
 * One check of `mailmode doctor`, in the shape the ABI 1.4 doctor
 * operation hands back (plugin.h): {"scope", "check", "ok", "warning"
 * (only when set), "detail", "fix" (only for a failure or a warning)},
 * appended to the array checks.  The detail is printf-formatted.  0, or
 * -1 when out of memory.
 */
int mm_check_addf(cJSON *checks, const char *scope, const char *check, int ok, int warning,
                  const char *fix, const char *fmt, ...) MAILMODE_PRINTF(7, 8);

#endif
