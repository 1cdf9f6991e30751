#include "check.h"

#include <stdarg.h>
#include <stdio.h>

int mm_check_addf(cJSON *checks, const char *scope, const char *check, int ok, int warning,
                  const char *fix, const char *fmt, ...)
{
	cJSON *c = cJSON_CreateObject();
	char detail[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	if (!c || !cJSON_AddStringToObject(c, "scope", scope) ||
	    !cJSON_AddStringToObject(c, "check", check) || !cJSON_AddBoolToObject(c, "ok", ok) ||
	    (warning && !cJSON_AddBoolToObject(c, "warning", 1)) ||
	    !cJSON_AddStringToObject(c, "detail", detail) ||
	    (fix && (!ok || warning) && !cJSON_AddStringToObject(c, "fix", fix)) ||
	    !cJSON_AddItemToArray(checks, c)) {
		cJSON_Delete(c);
		return -1;
	}
	return 0;
}
