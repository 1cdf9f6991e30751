/* Comparing plugin JSON by meaning rather than by bytes (see jsonsame.h). */
#include "jsonsame.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static int same_value(const cJSON *a, const cJSON *b);

static int same_object(const cJSON *a, const cJSON *b)
{
	const cJSON *item;

	if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b))
		return 0;
	cJSON_ArrayForEach(item, a) {
		const cJSON *other = cJSON_GetObjectItemCaseSensitive(b, item->string);

		if (!other || !same_value(item, other))
			return 0;
	}
	return 1;
}

/* Each element of a pairs with a distinct equal element of b. */
static int same_multiset(const cJSON *a, const cJSON *b)
{
	int n = cJSON_GetArraySize(a), i, j, rc = 0;
	char *used;

	if (n != cJSON_GetArraySize(b))
		return 0;
	if (n == 0)
		return 1;
	used = calloc((size_t)n, 1);
	if (!used)
		return 0;
	for (i = 0; i < n; i++) {
		const cJSON *item = cJSON_GetArrayItem(a, i);

		for (j = 0; j < n; j++)
			if (!used[j] && same_value(item, cJSON_GetArrayItem(b, j)))
				break;
		if (j == n)
			goto out;
		used[j] = 1;
	}
	rc = 1;
out:
	free(used);
	return rc;
}

static int same_value(const cJSON *a, const cJSON *b)
{
	if ((a->type & 0xff) != (b->type & 0xff))
		return 0;
	if (cJSON_IsObject(a))
		return same_object(a, b);
	if (cJSON_IsArray(a))
		return same_multiset(a, b);
	if (cJSON_IsString(a))
		return strcmp(a->valuestring, b->valuestring) == 0;
	if (cJSON_IsNumber(a))
		return a->valuedouble == b->valuedouble;
	return 1;   /* true, false, null: the type says it all */
}

int json_same(const char *a, const char *b)
{
	cJSON *ja = cJSON_Parse(a), *jb = cJSON_Parse(b);
	int rc = !ja || !jb ? -1 : same_value(ja, jb);

	cJSON_Delete(ja);
	cJSON_Delete(jb);
	return rc;
}

int json_valid(const char *text)
{
	cJSON *json = cJSON_Parse(text);
	int rc = json != NULL;

	cJSON_Delete(json);
	return rc;
}
