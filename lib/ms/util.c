/*
 * Small helpers of the Microsoft client (see ms.h).
 */
#include "ms.h"

#include "num.h"

#include <ctype.h>
#include <limits.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *ms_strdup(const char *s)
{
	size_t len;
	char *copy;

	if (!s)
		return NULL;
	len = strlen(s) + 1;
	copy = malloc(len);
	if (copy)
		memcpy(copy, s, len);
	return copy;
}

char *ms_printf(const char *fmt, ...)
{
	va_list ap;
	int len;
	char *out;

	va_start(ap, fmt);
	len = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (len < 0)
		return NULL;
	out = malloc((size_t)len + 1);
	if (!out)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(out, (size_t)len + 1, fmt, ap);
	va_end(ap);
	return out;
}

int ms_strcaseeq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	while (*a && *b) {
		if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
			return 0;
		a++;
		b++;
	}
	return *a == *b;
}

int ms_guid(char out[37])
{
	unsigned char b[16];

	if (RAND_bytes(b, sizeof(b)) != 1)
		return -1;
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);  /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);  /* RFC 4122 variant */
	snprintf(out, 37,
	         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	         b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
	         b[10], b[11], b[12], b[13], b[14], b[15]);
	return 0;
}

static int buf_reserve(struct ms_buf *buf, size_t more)
{
	size_t cap;
	char *grown;

	if (buf->failed)
		return -1;
	if (buf->len + more + 1 <= buf->cap)
		return 0;
	cap = buf->cap ? buf->cap : 256;
	while (cap < buf->len + more + 1)
		cap *= 2;
	grown = realloc(buf->data, cap);
	if (!grown) {
		buf->failed = 1;
		return -1;
	}
	buf->data = grown;
	buf->cap = cap;
	return 0;
}

void ms_buf_add(struct ms_buf *buf, const char *s)
{
	size_t len = strlen(s);

	if (buf_reserve(buf, len) != 0)
		return;
	memcpy(buf->data + buf->len, s, len + 1);
	buf->len += len;
}

void ms_buf_addf(struct ms_buf *buf, const char *fmt, ...)
{
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (len < 0) {
		buf->failed = 1;
		return;
	}
	if (buf_reserve(buf, (size_t)len) != 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf->data + buf->len, (size_t)len + 1, fmt, ap);
	va_end(ap);
	buf->len += (size_t)len;
}

void ms_buf_free(struct ms_buf *buf)
{
	free(buf->data);
	buf->data = NULL;
	buf->len = buf->cap = 0;
	buf->failed = 0;
}

/* ------------------------------------------------------------------ */

int ms_is_guid(const char *s)
{
	size_t i;

	if (strlen(s) != 36)
		return 0;
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!strchr("0123456789abcdefABCDEF", s[i])) {
			return 0;
		}
	}
	return 1;
}

/* ------------------------------------------------------------------ */
/* Fields that come as an array or as a bare string */

const char *ms_field_str(const cJSON *obj, const char *name)
{
	const cJSON *item = cJSON_GetObjectItem(obj, name);

	if (cJSON_IsString(item))
		return item->valuestring;
	if (cJSON_IsArray(item) && cJSON_GetArraySize(item) == 1 &&
	    cJSON_IsString(item->child))
		return item->child->valuestring;
	return NULL;
}

const char **ms_field_strs(const cJSON *obj, const char *name, size_t *count)
{
	const cJSON *item = cJSON_GetObjectItem(obj, name);
	const cJSON *element;
	const char **list;
	size_t n = 0;

	*count = 0;
	list = calloc((size_t)(cJSON_IsArray(item) ? cJSON_GetArraySize(item) : 1) + 1,
	              sizeof(*list));
	if (!list)
		return NULL;
	if (cJSON_IsString(item) && *item->valuestring) {
		list[n++] = item->valuestring;
	} else if (cJSON_IsArray(item)) {
		cJSON_ArrayForEach(element, item)
			if (cJSON_IsString(element))
				list[n++] = element->valuestring;
	}
	list[n] = NULL;
	*count = n;
	return list;
}

int ms_field_bool(const cJSON *obj, const char *name)
{
	const cJSON *item = cJSON_GetObjectItem(obj, name);

	if (cJSON_IsBool(item))
		return cJSON_IsTrue(item);
	if (cJSON_IsString(item)) {
		if (ms_strcaseeq(item->valuestring, "true"))
			return 1;
		if (ms_strcaseeq(item->valuestring, "false"))
			return 0;
	}
	return -1;
}

long ms_field_long(const cJSON *obj, const char *name, long dflt)
{
	const cJSON *item = cJSON_GetObjectItem(obj, name);
	int64_t number;
	long value;

	/* Out of range ("Priority": 1e300) is as unreadable as absent: a cast
	 * would be undefined. */
	if (cJSON_IsNumber(item) &&
	    mm_num_from_double(item->valuedouble, LONG_MIN, LONG_MAX, &number) == 0)
		return (long)number;
	if (cJSON_IsString(item) &&
	    mm_num_parse_long(item->valuestring, LONG_MIN, LONG_MAX, &value) == 0)
		return value;
	return dflt;
}
