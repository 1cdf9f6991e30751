/* The shape of an ABI 1.5 plan_actions answer (plugin.h): a JSON array of
 * actions, each with its text and a known change; a cmdlet with its
 * parameters object; a DNS change with its records; and the same lines
 * as plan() says. */
#include "actions.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

static int known_change(const char *change)
{
	static const char *const changes[] = { "create", "update", "remove", "reuse",
		                               "replace", "note" };
	size_t i;

	for (i = 0; change && i < sizeof(changes) / sizeof(changes[0]); i++)
		if (strcmp(change, changes[i]) == 0)
			return 1;
	return 0;
}

static int bad_records(const cJSON *records)
{
	const cJSON *r;

	if (!cJSON_IsArray(records))
		return 1;
	cJSON_ArrayForEach(r, records)
		if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(r, "name")) ||
		    !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(r, "type")) ||
		    !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(r, "ttl")))
			return 1;
	return 0;
}

/* What is wrong with one action, or NULL. */
static const char *action_problem(const cJSON *a)
{
	const cJSON *cmdlet = cJSON_GetObjectItemCaseSensitive(a, "cmdlet");
	const cJSON *zone = cJSON_GetObjectItemCaseSensitive(a, "zone");

	if (!cJSON_IsObject(a))
		return "is not an object";
	if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(a, "text")))
		return "has no \"text\" string";
	if (!known_change(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "change"))))
		return "has no \"change\" of create, update, remove, reuse, replace or note";
	if (cmdlet && (!cJSON_IsString(cmdlet) ||
	               !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(a, "parameters"))))
		return "has a \"cmdlet\" without a \"parameters\" object";
	if (zone && (!cJSON_IsString(zone) ||
	             bad_records(cJSON_GetObjectItemCaseSensitive(a, "delete")) ||
	             bad_records(cJSON_GetObjectItemCaseSensitive(a, "add"))))
		return "has a \"zone\" without \"delete\" and \"add\" arrays of records {name, type, ttl}";
	return NULL;
}

/* Whether the actions' texts, line by line, are plan()'s lines. */
static int same_lines(const cJSON *actions, const char *plan)
{
	const cJSON *a;
	const char *p = plan ? plan : "";
	size_t len;

	cJSON_ArrayForEach(a, actions) {
		const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "text"));

		len = strlen(text);
		if (strncmp(p, text, len) != 0 || (p[len] && p[len] != '\n'))
			return 0;
		p += len + (p[len] == '\n');
	}
	return *p == '\0';
}

int plan_actions_problem(const char *json, const char *plan, char *why, size_t len)
{
	cJSON *actions = json ? cJSON_Parse(json) : NULL;
	const cJSON *a;
	const char *problem = NULL;
	int i = 0;

	if (!cJSON_IsArray(actions)) {
		snprintf(why, len, "plan_actions did not return a JSON array");
		cJSON_Delete(actions);
		return 1;
	}
	cJSON_ArrayForEach(a, actions) {
		if ((problem = action_problem(a)))
			break;
		i++;
	}
	if (problem)
		snprintf(why, len, "action %d of plan_actions %s", i, problem);
	else if (!same_lines(actions, plan))
		snprintf(why, len, "the texts of plan_actions are not the lines of plan");
	cJSON_Delete(actions);
	return problem || why[0];
}
