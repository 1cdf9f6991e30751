/*
 * Writes of the tenant's shared rules not visible yet, kept in the host's
 * shared note of the tenant (plugin.h, ABI 1.6 shared_note_*).
 * Set-TransportRule replaces a rule's whole RecipientDomainIs list and
 * Exchange shows a write only some time after it is made: the next
 * domain's setup or teardown under the tenant's lock would write on the
 * old list and drop this domain.  The note tells it what the rule holds:
 *
 *   {"rules": {NAME: {"before": [the list last seen],
 *                     "writes": [{"list": [...], "at_ms": N}, ...]}}}
 *
 * "writes" are the lists written since "before" was seen, oldest first;
 * the last is what the rule holds.  Exchange shows them in that order, so
 * a rule showing "before" or one of the earlier writes holds the last;
 * one showing the last is up to date (the entry is done); any other list
 * is another writer's.
 *
 * A rule made by New-TransportRule is not listed for a while either: its
 * entry says "created": "creating" before the cmdlet is sent and "created"
 * once it answered, with "before" [] and the list it was made with as its
 * one write.  Domains whose setup waits for a rule that is not there yet
 * (its connector not visible yet, or made moments ago without them) wait
 * in "joiners":
 *
 *   {"joiners": {NAME: {DOMAIN: at_ms, ...}}}
 *
 * and the setup that makes the rule makes it with them in it, so that
 * they need not wait for it to be listed to join it.
 */
#include "mailflow.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOTE_KEY "shared rules"

int mf_notes_kept(const struct mailmode_host *host)
{
	return host->struct_size >= offsetof(struct mailmode_host, shared_note_store) +
	                            sizeof(host->shared_note_store) &&
	       host->shared_note_load && host->shared_note_store;
}

static cJSON *rules_of(cJSON *notes)
{
	cJSON *rules = cJSON_GetObjectItemCaseSensitive(notes, "rules");

	if (cJSON_IsObject(rules))
		return rules;
	cJSON_DeleteItemFromObjectCaseSensitive(notes, "rules");
	return cJSON_AddObjectToObject(notes, "rules");
}

int mf_notes_load(const struct mailmode_host *host, const struct mailmode_request *req,
                  const char *resource, cJSON **notes, struct mailmode_diag *diag)
{
	char *text = NULL;
	int rc = host->shared_note_load(host->handle, req, resource, NOTE_KEY, &text, diag);

	*notes = NULL;
	if (rc != MAILMODE_OK)
		return rc;
	/* A note this version cannot read is no note: the rules as read. */
	*notes = text ? cJSON_Parse(text) : NULL;
	host->free(text);
	if (!cJSON_IsObject(*notes)) {
		cJSON_Delete(*notes);
		*notes = cJSON_CreateObject();
	}
	if (*notes && rules_of(*notes))
		return MAILMODE_OK;
	cJSON_Delete(*notes);
	*notes = NULL;
	host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
	return MAILMODE_ERR_NOMEM;
}

int mf_notes_store(const struct mailmode_host *host, const struct mailmode_request *req,
                   const char *resource, cJSON *notes, struct mailmode_diag *diag)
{
	cJSON *rules = rules_of(notes), *joiners = cJSON_GetObjectItemCaseSensitive(notes, "joiners");
	int kept = (rules && rules->child) || (joiners && joiners->child);
	char *text = kept ? cJSON_PrintUnformatted(notes) : NULL;
	int rc;

	if (kept && !text) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory");
		return MAILMODE_ERR_NOMEM;
	}
	/* No entry left: the note goes. */
	rc = host->shared_note_store(host->handle, req, resource, NOTE_KEY, text, diag);
	free(text);
	return rc;
}

cJSON *mf_note_of(cJSON *notes, const char *rule)
{
	return cJSON_GetObjectItemCaseSensitive(rules_of(notes), rule);
}

void mf_note_drop(cJSON *notes, const char *rule)
{
	cJSON_DeleteItemFromObjectCaseSensitive(rules_of(notes), rule);
}

static int list_is(const cJSON *holder, const char *field, const char *const *visible)
{
	size_t count = 0;
	const char **list = ms_field_strs(holder, field, &count);
	int same = list && mf_lists_equal(list, visible);

	free(list);
	return same;
}

enum mf_note_seen mf_note_see(cJSON *entry, const char *const *visible, int *trimmed)
{
	cJSON *writes = cJSON_GetObjectItemCaseSensitive(entry, "writes");
	int n = cJSON_GetArraySize(writes), i;

	*trimmed = 0;
	if (n == 0 || list_is(cJSON_GetArrayItem(writes, n - 1), "list", visible))
		return MF_NOTE_SHOWN;
	if (list_is(entry, "before", visible))
		return MF_NOTE_PENDING;
	for (i = n - 2; i >= 0; i--)
		if (list_is(cJSON_GetArrayItem(writes, i), "list", visible))
			break;
	if (i < 0)
		return MF_NOTE_FOREIGN;
	/* Seen up to write i: it is the new "before". */
	cJSON_ReplaceItemInObjectCaseSensitive(entry, "before",
	                                       cJSON_DetachItemFromObjectCaseSensitive(
	                                       cJSON_GetArrayItem(writes, i), "list"));
	while (i-- >= 0)
		cJSON_DeleteItemFromArray(writes, 0);
	*trimmed = 1;
	return MF_NOTE_PENDING;
}

int64_t mf_note_oldest_ms(const cJSON *entry)
{
	const cJSON *writes = cJSON_GetObjectItemCaseSensitive(entry, "writes");

	return (int64_t)ms_field_long(cJSON_GetArrayItem(writes, 0), "at_ms", 0);
}

int mf_note_writes(const cJSON *entry)
{
	return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(entry, "writes"));
}

int mf_note_hold(const cJSON *entry, cJSON *rule)
{
	const cJSON *writes = cJSON_GetObjectItemCaseSensitive(entry, "writes");
	const cJSON *last = cJSON_GetArrayItem(writes, cJSON_GetArraySize(writes) - 1);
	cJSON *list = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(last, "list"), 1);

	if (list && cJSON_ReplaceItemInObjectCaseSensitive(rule, "RecipientDomainIs", list))
		return 0;
	cJSON_Delete(list);
	return -1;
}

static cJSON *list_json(const char *const *list)
{
	int n = 0;

	while (list && list[n])
		n++;
	return n ? cJSON_CreateStringArray(list, n) : cJSON_CreateArray();
}

int mf_note_add(cJSON *notes, const char *rule, const char *const *base,
                const char *const *wrote, int64_t at_ms)
{
	cJSON *rules = rules_of(notes), *entry = mf_note_of(notes, rule), *writes, *write;

	if (!rules)
		return -1;
	if (!entry && (!(entry = cJSON_AddObjectToObject(rules, rule)) ||
	               !cJSON_AddItemToObject(entry, "before", list_json(base)) ||
	               !cJSON_AddArrayToObject(entry, "writes")))
		return -1;
	writes = cJSON_GetObjectItemCaseSensitive(entry, "writes");
	write = cJSON_CreateObject();
	if (!write || !cJSON_AddItemToArray(writes, write)) {
		cJSON_Delete(write);
		return -1;
	}
	return cJSON_AddItemToObject(write, "list", list_json(wrote)) &&
	       cJSON_AddNumberToObject(write, "at_ms", (double)at_ms) ? 0 : -1;
}

const char *mf_note_creation(const cJSON *entry)
{
	const char *state = ms_field_str(entry, "created");

	return state && (strcmp(state, "creating") == 0 || strcmp(state, "created") == 0) ? state
	                                                                                  : NULL;
}

int mf_note_creating(cJSON *notes, const char *rule, const char *const *list, int64_t at_ms)
{
	cJSON *entry;

	mf_note_drop(notes, rule);
	if (mf_note_add(notes, rule, NULL, list, at_ms) != 0 || !(entry = mf_note_of(notes, rule)))
		return -1;
	return cJSON_AddStringToObject(entry, "created", "creating") ? 0 : -1;
}

int mf_note_created(cJSON *notes, const char *rule, int64_t at_ms)
{
	cJSON *entry = mf_note_of(notes, rule);
	cJSON *write = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(entry, "writes"), 0);
	cJSON *state = cJSON_CreateString("created"), *at = cJSON_CreateNumber((double)at_ms);

	if (entry && write && state && at &&
	    cJSON_ReplaceItemInObjectCaseSensitive(entry, "created", state)) {
		state = NULL;
		if (cJSON_ReplaceItemInObjectCaseSensitive(write, "at_ms", at))
			return 0;
	}
	cJSON_Delete(state);
	cJSON_Delete(at);
	return -1;
}

/* How many domains the entry's last list has, and whether domain is one. */
static int last_list(const cJSON *entry, const char *domain, int *listed)
{
	const cJSON *writes = cJSON_GetObjectItemCaseSensitive(entry, "writes");
	const cJSON *last = cJSON_GetArrayItem(writes, cJSON_GetArraySize(writes) - 1);
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(last, "list"), *item;

	*listed = 0;
	cJSON_ArrayForEach(item, list)
		if (cJSON_IsString(item) && ms_strcaseeq(item->valuestring, domain))
			*listed = 1;
	return cJSON_GetArraySize(list);
}

int mf_note_lists(const cJSON *entry, const char *domain)
{
	int listed;

	last_list(entry, domain, &listed);
	return listed;
}

int mf_note_lists_only(const cJSON *entry, const char *domain)
{
	int listed;

	return last_list(entry, domain, &listed) == 1 && listed;
}

static cJSON *joiners_of(cJSON *notes, const char *rule, int make)
{
	cJSON *all = cJSON_GetObjectItemCaseSensitive(notes, "joiners"), *one;

	if (!cJSON_IsObject(all)) {
		cJSON_DeleteItemFromObjectCaseSensitive(notes, "joiners");
		if (!make || !(all = cJSON_AddObjectToObject(notes, "joiners")))
			return NULL;
	}
	one = cJSON_GetObjectItemCaseSensitive(all, rule);
	if (!cJSON_IsObject(one)) {
		cJSON_DeleteItemFromObjectCaseSensitive(all, rule);
		one = make ? cJSON_AddObjectToObject(all, rule) : NULL;
	}
	return one;
}

int mf_note_join_wait(cJSON *notes, const char *rule, const char *domain, int64_t at_ms)
{
	cJSON *joiners = joiners_of(notes, rule, 1);

	if (!joiners)
		return -1;
	cJSON_DeleteItemFromObjectCaseSensitive(joiners, domain);
	return cJSON_AddNumberToObject(joiners, domain, (double)at_ms) ? 0 : -1;
}

int mf_note_join_leave(cJSON *notes, const char *domain)
{
	cJSON *all = cJSON_GetObjectItemCaseSensitive(notes, "joiners"), *one, *next;
	int changed = 0;

	for (one = cJSON_IsObject(all) ? all->child : NULL; one; one = next) {
		next = one->next;
		if (cJSON_GetObjectItemCaseSensitive(one, domain)) {
			cJSON_DeleteItemFromObjectCaseSensitive(one, domain);
			changed = 1;
		}
		if (!one->child)
			cJSON_DeleteItemFromObjectCaseSensitive(all, one->string);
	}
	if (cJSON_IsObject(all) && !all->child)
		cJSON_DeleteItemFromObjectCaseSensitive(notes, "joiners");
	return changed;
}

const char **mf_note_joiners(cJSON *notes, const char *rule, const char *except,
                             int64_t since_ms)
{
	cJSON *joiners = joiners_of(notes, rule, 0), *item;
	const char **out = calloc((size_t)cJSON_GetArraySize(joiners) + 1, sizeof(*out));
	size_t n = 0;

	cJSON_ArrayForEach(item, (out ? joiners : NULL))
		if (cJSON_IsNumber(item) && item->valuedouble >= (double)since_ms &&
		    !ms_strcaseeq(item->string, except))
			out[n++] = item->string;
	return out;
}

void mf_note_joiners_drop(cJSON *notes, const char *rule, const char *const *domains)
{
	cJSON *joiners = joiners_of(notes, rule, 0);

	for (; joiners && domains && *domains; domains++)
		cJSON_DeleteItemFromObjectCaseSensitive(joiners, *domains);
	if (joiners && !joiners->child)
		cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(notes, "joiners"),
		                                        rule);
}
