/*
 * The transport rules the tenant's domains share: which rule lists a
 * domain, which accepted subdomains a rule must except, and which rule a
 * domain being set up joins (doc/mailflow-limits.md).  Pure functions over
 * what Get-TransportRule and Get-AcceptedDomain returned.
 */
#include "mailflow.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

int mf_domain_below(const char *sub, const char *domain)
{
	size_t ls = strlen(sub), ld = strlen(domain);

	return ls > ld + 1 && sub[ls - ld - 1] == '.' &&
	       strcasecmp(sub + ls - ld, domain) == 0;
}

static int listed(const char *const *list, const char *domain)
{
	for (; list && *list; list++)
		if (ms_strcaseeq(*list, domain))
			return 1;
	return 0;
}

int mf_rule_lists(const cJSON *rule, const char *domain)
{
	size_t count = 0;
	const char **members = ms_field_strs(rule, "RecipientDomainIs", &count);
	int found = members && listed(members, domain);

	free(members);
	return found;
}

const cJSON *mf_shared_rule_of(const struct mf_profile *profile, const cJSON *rules,
                               const char *domain, const cJSON *after)
{
	const cJSON *rule = after ? after->next : rules ? rules->child : NULL;

	for (; rule; rule = rule->next)
		if (mf_shared_rule_index(profile, rule) && mf_rule_lists(rule, domain))
			return rule;
	return NULL;
}

const char **mf_subdomain_exceptions(const char *const *members, const cJSON *accepted)
{
	const cJSON *item;
	const char **out = calloc((size_t)cJSON_GetArraySize(accepted) + 1, sizeof(*out));
	size_t n = 0;

	if (!out)
		return NULL;
	cJSON_ArrayForEach(item, accepted) {
		const char *name = ms_field_str(item, "DomainName");
		const char *const *m;

		if (!name)
			name = ms_field_str(item, "Name");
		if (!name || listed(members, name) || listed(out, name))
			continue;
		for (m = members; *m; m++)
			if (mf_domain_below(name, *m)) {
				out[n++] = name;
				break;
			}
	}
	out[n] = NULL;
	return out;
}

int mf_exceptions_cover_member(const char *const *members, const char *const *excepted)
{
	const char *const *m, *const *e;

	for (m = members; *m; m++)
		for (e = excepted; *e; e++)
			if (mf_domain_below(*m, *e))
				return 1;
	return 0;
}

const char **mf_list_with(const char *const *list, const char *add, const char *drop)
{
	size_t n = 0, i = 0;
	const char **out;

	while (list && list[n])
		n++;
	out = calloc(n + 2, sizeof(*out));
	if (!out)
		return NULL;
	for (; list && *list; list++)
		if (!drop || !ms_strcaseeq(*list, drop))
			out[i++] = *list;
	if (add && !listed(out, add))
		out[i++] = add;
	out[i] = NULL;
	return out;
}

unsigned mf_shared_rule_free_index(const struct mf_profile *profile, const cJSON *rules)
{
	unsigned index = 1;
	const cJSON *rule;
	int taken = 1;

	/* The lowest index no listed rule of ours has. */
	while (taken) {
		taken = 0;
		cJSON_ArrayForEach(rule, rules)
			if (mf_shared_rule_index(profile, rule) == index)
				taken = 1;
		if (taken)
			index++;
	}
	return index;
}

int mf_lists_equal(const char *const *a, const char *const *b)
{
	const char *const *p;

	for (p = a; p && *p; p++)
		if (!listed(b, *p))
			return 0;
	for (p = b; p && *p; p++)
		if (!listed(a, *p))
			return 0;
	return 1;
}

const char **mf_list_copy(const char *const *list)
{
	size_t n = 0, bytes = 0, i;
	const char **out;
	char *text;

	for (; list && list[n]; n++)
		bytes += strlen(list[n]) + 1;
	out = malloc((n + 1) * sizeof(*out) + bytes);
	if (!out)
		return NULL;
	text = (char *)(out + n + 1);
	for (i = 0; i < n; i++) {
		size_t len = strlen(list[i]) + 1;

		memcpy(text, list[i], len);
		out[i] = text;
		text += len;
	}
	out[n] = NULL;
	return out;
}
