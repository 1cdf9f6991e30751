/*
 * MX sets and the receipt.
 *
 * Sets are kept sorted by (preference, host) so that two sets compare
 * element by element.  TTLs travel with the records (the receipt restores
 * them exactly) but are not part of an RRset's identity: the RFC 2136
 * prerequisite that guards the swap ignores them too.
 */
#include "gateway.h"

#include "num.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

int gw_name_normalise(const char *in, char *out, size_t out_len)
{
	size_t len = strlen(in), label = 0, i;
	int rc = MAILMODE_ERR_CONFIG;

	if (len > 0 && in[len - 1] == '.')
		len--;
	/* 253 characters plus the final dot is the longest name there is. */
	if (len == 0 || len > 253 || len + 2 > out_len)
		goto out;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '.') {
			if (label == 0)
				goto out;
			label = 0;
		} else if (isalnum(c) || c == '-' || c == '_') {
			if (++label > 63)
				goto out;
		} else {
			goto out;
		}
		out[i] = (char)tolower(c);
	}
	if (label == 0)
		goto out;
	out[len] = '.';
	out[len + 1] = '\0';
	rc = MAILMODE_OK;
out:
	return rc;
}

static int mx_compare(const struct gw_mx *a, const struct gw_mx *b)
{
	if (a->pref != b->pref)
		return a->pref < b->pref ? -1 : 1;
	return strcmp(a->host, b->host);
}

int gw_mx_set_add(struct gw_mx_set *set, uint16_t pref, uint32_t ttl,
                  const char *host)
{
	struct gw_mx record = { .pref = pref, .ttl = ttl };
	size_t at;
	int rc;

	rc = gw_name_normalise(host, record.host, sizeof(record.host));
	if (rc != MAILMODE_OK)
		goto out;
	if (set->count == GW_MX_MAX) {
		rc = MAILMODE_ERR_FAILED;
		goto out;
	}
	for (at = 0; at < set->count; at++) {
		int cmp = mx_compare(&record, &set->mx[at]);

		if (cmp == 0)
			goto out; /* an RRset holds each record once */
		if (cmp < 0)
			break;
	}
	memmove(&set->mx[at + 1], &set->mx[at],
	        (set->count - at) * sizeof(set->mx[0]));
	set->mx[at] = record;
	set->count++;
	rc = MAILMODE_OK;
out:
	return rc;
}

int gw_mx_set_parse(const char *text, uint32_t ttl, struct gw_mx_set *set,
                    char *err, size_t err_len)
{
	char *copy = strdup(text), *item, *save = NULL;
	int rc = MAILMODE_ERR_CONFIG;

	memset(set, 0, sizeof(*set));
	if (!copy) {
		snprintf(err, err_len, "cannot be parsed: out of memory");
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	for (item = strtok_r(copy, ",", &save); item;
	     item = strtok_r(NULL, ",", &save)) {
		char host[GW_NAME_MAX + 1], extra[2];
		unsigned long pref;
		char *end;

		while (isspace((unsigned char)*item))
			item++;
		if (*item == '\0')
			continue;
		errno = 0;
		pref = strtoul(item, &end, 10);
		if (end == item || errno != 0 || pref > 65535 ||
		    !isspace((unsigned char)*end) ||
		    sscanf(end, " %256s %1s", host, extra) != 1) {
			snprintf(err, err_len,
			         "is not a list of 'PREFERENCE HOST' items "
			         "separated by commas");
			goto out;
		}
		if (gw_mx_set_add(set, (uint16_t)pref, ttl, host) != MAILMODE_OK) {
			snprintf(err, err_len, "has a bad host name or more than %d "
			         "records", GW_MX_MAX);
			goto out;
		}
	}
	rc = MAILMODE_OK;
out:
	free(copy);
	return rc;
}

bool gw_mx_set_equal(const struct gw_mx_set *a, const struct gw_mx_set *b)
{
	size_t i;

	if (a->count != b->count)
		return false;
	for (i = 0; i < a->count; i++) {
		if (mx_compare(&a->mx[i], &b->mx[i]) != 0)
			return false;
	}
	return true;
}

bool gw_mx_set_same(const struct gw_mx_set *a, const struct gw_mx_set *b)
{
	size_t i;

	if (!gw_mx_set_equal(a, b))
		return false;
	for (i = 0; i < a->count; i++) {
		if (a->mx[i].ttl != b->mx[i].ttl)
			return false;
	}
	return true;
}

/* The record of `set` with the pref and host of `mx`, or NULL. */
static const struct gw_mx *mx_find(const struct gw_mx_set *set,
                                   const struct gw_mx *mx)
{
	size_t i;

	for (i = 0; i < set->count; i++) {
		if (mx_compare(&set->mx[i], mx) == 0)
			return &set->mx[i];
	}
	return NULL;
}

/* Appends item to buf, after "; LABEL: " for the first of its kind and
 * ", " for the others. */
static void diff_add(char *buf, size_t len, const char *label, bool *labelled,
                     const char *item)
{
	size_t used = strlen(buf);

	if (used + 1 >= len)
		return;
	if (!*labelled)
		snprintf(buf + used, len - used, "%s%s: %s", used ? "; " : "",
		         label, item);
	else
		snprintf(buf + used, len - used, ", %s", item);
	*labelled = true;
}

void gw_mx_set_diff(const struct gw_mx_set *live, const struct gw_mx_set *want,
                    char *buf, size_t len)
{
	bool extra = false, missing = false, ttl = false;
	const struct gw_mx *other;
	char item[GW_NAME_MAX + 64];
	size_t i;

	if (len == 0)
		return;
	buf[0] = '\0';
	for (i = 0; i < live->count; i++) {
		if (mx_find(want, &live->mx[i]))
			continue;
		snprintf(item, sizeof(item), "%u %s (ttl %u)", live->mx[i].pref,
		         live->mx[i].host, live->mx[i].ttl);
		diff_add(buf, len, "extra", &extra, item);
	}
	for (i = 0; i < want->count; i++) {
		if (mx_find(live, &want->mx[i]))
			continue;
		snprintf(item, sizeof(item), "%u %s (ttl %u)", want->mx[i].pref,
		         want->mx[i].host, want->mx[i].ttl);
		diff_add(buf, len, "missing", &missing, item);
	}
	for (i = 0; i < live->count; i++) {
		other = mx_find(want, &live->mx[i]);
		if (!other || other->ttl == live->mx[i].ttl)
			continue;
		snprintf(item, sizeof(item), "%u %s %u instead of %u",
		         live->mx[i].pref, live->mx[i].host, live->mx[i].ttl,
		         other->ttl);
		diff_add(buf, len, "ttl", &ttl, item);
	}
}

bool gw_mx_set_overlap(const struct gw_mx_set *a, const struct gw_mx_set *b)
{
	size_t i, j;

	for (i = 0; i < a->count; i++) {
		for (j = 0; j < b->count; j++) {
			if (mx_compare(&a->mx[i], &b->mx[j]) == 0)
				return true;
		}
	}
	return false;
}

void gw_mx_set_format(const struct gw_mx_set *set, bool with_ttl, char *buf,
                      size_t len)
{
	size_t used = 0, i;

	if (len == 0)
		return;
	buf[0] = '\0';
	if (set->count == 0) {
		snprintf(buf, len, "(no MX records)");
		return;
	}
	for (i = 0; i < set->count && used < len; i++) {
		int n;

		if (with_ttl)
			n = snprintf(buf + used, len - used, "%s%u %s (ttl %u)",
			             i ? ", " : "", set->mx[i].pref, set->mx[i].host,
			             set->mx[i].ttl);
		else
			n = snprintf(buf + used, len - used, "%s%u %s",
			             i ? ", " : "", set->mx[i].pref, set->mx[i].host);
		if (n < 0)
			break;
		used += (size_t)n;
	}
}

uint32_t gw_mx_set_max_ttl(const struct gw_mx_set *set)
{
	uint32_t ttl = 0;
	size_t i;

	for (i = 0; i < set->count; i++)
		if (set->mx[i].ttl > ttl)
			ttl = set->mx[i].ttl;
	return ttl;
}

/* ---- receipt ------------------------------------------------------------ */

cJSON *gw_mx_set_json(const struct gw_mx_set *set)
{
	cJSON *array = cJSON_CreateArray(), *item;
	size_t i;

	if (!array)
		return NULL;
	for (i = 0; i < set->count; i++) {
		item = cJSON_CreateObject();
		if (!item || !cJSON_AddItemToArray(array, item) ||
		    !cJSON_AddNumberToObject(item, "pref", set->mx[i].pref) ||
		    !cJSON_AddStringToObject(item, "host", set->mx[i].host) ||
		    !cJSON_AddNumberToObject(item, "ttl", set->mx[i].ttl)) {
			cJSON_Delete(array);
			return NULL;
		}
	}
	return array;
}

/* A whole JSON number in [0, max]; anything else (1e999, 1.5, -1) is not
 * one, rather than an undefined cast. */
static bool json_uint(const cJSON *item, int64_t max, int64_t *out)
{
	return cJSON_IsNumber(item) &&
	       mm_num_from_double(item->valuedouble, 0, max, out) == 0;
}

int gw_mx_set_from_json(const cJSON *array, struct gw_mx_set *set)
{
	const cJSON *item;
	int rc = MAILMODE_ERR_CONFIG;

	memset(set, 0, sizeof(*set));
	if (!cJSON_IsArray(array))
		goto out;
	cJSON_ArrayForEach(item, array) {
		const cJSON *host = cJSON_GetObjectItemCaseSensitive(item, "host");
		int64_t pref, ttl;

		if (!json_uint(cJSON_GetObjectItemCaseSensitive(item, "pref"), 65535,
		               &pref) ||
		    !json_uint(cJSON_GetObjectItemCaseSensitive(item, "ttl"),
		               2147483647, &ttl) ||
		    !cJSON_IsString(host) ||
		    gw_mx_set_add(set, (uint16_t)pref, (uint32_t)ttl,
		                  host->valuestring) != MAILMODE_OK)
			goto out;
	}
	rc = MAILMODE_OK;
out:
	return rc;
}

/* "tenant": {"connector": NAME, "locked": bool, "outbound": bool}, or
 * absent. */
static int tenant_from_json(const cJSON *tenant, struct gw_receipt *receipt)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(tenant, "connector");
	const cJSON *locked = cJSON_GetObjectItemCaseSensitive(tenant, "locked");
	const cJSON *outbound = cJSON_GetObjectItemCaseSensitive(tenant, "outbound");

	if (!tenant)
		return MAILMODE_OK;
	if (!cJSON_IsString(name) || !name->valuestring[0] ||
	    strlen(name->valuestring) >= sizeof(receipt->connector) ||
	    (locked && !cJSON_IsBool(locked)) || (outbound && !cJSON_IsBool(outbound)))
		return MAILMODE_ERR_CONFIG;
	receipt->has_tenant = true;
	snprintf(receipt->connector, sizeof(receipt->connector), "%s", name->valuestring);
	receipt->locked = cJSON_IsTrue(locked);
	receipt->outbound = cJSON_IsTrue(outbound);
	return MAILMODE_OK;
}

static bool add_tenant(cJSON *root, const struct gw_receipt *receipt)
{
	cJSON *tenant = cJSON_AddObjectToObject(root, "tenant");

	return tenant && cJSON_AddStringToObject(tenant, "connector", receipt->connector) &&
	       cJSON_AddBoolToObject(tenant, "locked", receipt->locked) &&
	       (!receipt->outbound || cJSON_AddBoolToObject(tenant, "outbound", 1));
}

int gw_receipt_parse(const char *json, struct gw_receipt *receipt, char *err,
                     size_t err_len)
{
	cJSON *root = cJSON_Parse(json);
	const cJSON *zone, *saved, *gateway, *swapped, *replaced;
	int rc = MAILMODE_ERR_CONFIG;

	memset(receipt, 0, sizeof(*receipt));
	if (!cJSON_IsObject(root)) {
		snprintf(err, err_len, "is not a JSON object");
		goto out;
	}
	zone = cJSON_GetObjectItemCaseSensitive(root, "zone");
	if (!cJSON_IsString(zone) ||
	    gw_name_normalise(zone->valuestring, receipt->zone,
	                      sizeof(receipt->zone)) != MAILMODE_OK) {
		snprintf(err, err_len, "has no valid \"zone\"");
		goto out;
	}
	receipt->zone[strlen(receipt->zone) - 1] = '\0';
	saved = cJSON_GetObjectItemCaseSensitive(root, "mx");
	if (saved) {
		if (gw_mx_set_from_json(saved, &receipt->saved) != MAILMODE_OK) {
			snprintf(err, err_len, "has an invalid \"mx\" list");
			goto out;
		}
		receipt->has_saved = true;
	}
	replaced = cJSON_GetObjectItemCaseSensitive(root, "replaced_ttl");
	if (replaced && !json_uint(replaced, 2147483647, &receipt->replaced_ttl)) {
		snprintf(err, err_len, "has an invalid \"replaced_ttl\"");
		goto out;
	}
	receipt->has_replaced_ttl = replaced != NULL;
	swapped = cJSON_GetObjectItemCaseSensitive(root, "swapped_at_ms");
	if (swapped && !json_uint(swapped, MM_NUM_EPOCH_MS_MAX, &receipt->swapped_at_ms)) {
		snprintf(err, err_len, "has an invalid \"swapped_at_ms\"");
		goto out;
	}
	if (tenant_from_json(cJSON_GetObjectItemCaseSensitive(root, "tenant"), receipt) !=
	    MAILMODE_OK) {
		snprintf(err, err_len, "has an invalid \"tenant\"");
		goto out;
	}
	gateway = cJSON_GetObjectItemCaseSensitive(root, "gateway");
	if (gw_mx_set_from_json(gateway, &receipt->gateway) != MAILMODE_OK ||
	    receipt->gateway.count == 0) {
		snprintf(err, err_len, "has no valid \"gateway\" list");
		goto out;
	}
	rc = MAILMODE_OK;
out:
	cJSON_Delete(root);
	return rc;
}

/* "write": the UPDATE a checkpoint is taken for. */
static bool add_write(cJSON *root, const char *name,
                      const struct gw_receipt *receipt)
{
	cJSON *write = cJSON_AddObjectToObject(root, "write"), *set;
	char object[GW_NAME_MAX + 24];

	snprintf(object, sizeof(object), "MX %s", name);
	if (!write || !cJSON_AddStringToObject(write, "object", receipt->write_object ?
	                                       receipt->write_object : object) ||
	    !cJSON_AddStringToObject(write, "doing", receipt->write_doing))
		return false;
	if (receipt->write_object)
		return true;
	set = gw_mx_set_json(&receipt->write_from);
	if (!set || !cJSON_AddItemToObject(write, "from", set)) {
		cJSON_Delete(set);
		return false;
	}
	set = gw_mx_set_json(&receipt->write_to);
	if (!set || !cJSON_AddItemToObject(write, "to", set)) {
		cJSON_Delete(set);
		return false;
	}
	return true;
}

char *gw_original_render(const struct gw_ctx *ctx, const char *zone,
                         const struct gw_mx_set *set)
{
	cJSON *root = cJSON_CreateObject(), *mx = NULL;
	char *text = NULL, *copy = NULL;

	if (!root || !cJSON_AddNumberToObject(root, "version", 1) ||
	    !cJSON_AddStringToObject(root, "zone", zone))
		goto out;
	mx = gw_mx_set_json(set);
	if (!mx || !cJSON_AddItemToObject(root, "mx", mx)) {
		cJSON_Delete(mx);
		goto out;
	}
	text = cJSON_PrintUnformatted(root);
	if (text)
		copy = ctx->host->strdup(text);
out:
	cJSON_free(text);
	cJSON_Delete(root);
	return copy;
}

int gw_original_parse(const char *json, struct gw_mx_set *set, char *err,
                      size_t err_len)
{
	cJSON *root = cJSON_Parse(json);
	int rc = MAILMODE_ERR_CONFIG;

	memset(set, 0, sizeof(*set));
	if (!cJSON_IsObject(root) ||
	    gw_mx_set_from_json(cJSON_GetObjectItemCaseSensitive(root, "mx"), set) !=
	            MAILMODE_OK) {
		snprintf(err, err_len, "has no valid \"mx\" list");
		goto out;
	}
	rc = MAILMODE_OK;
out:
	cJSON_Delete(root);
	return rc;
}

char *gw_receipt_render(const struct gw_ctx *ctx, const char *name,
                        const struct gw_receipt *receipt)
{
	cJSON *root = cJSON_CreateObject(), *saved = NULL, *gateway = NULL;
	char *text = NULL, *copy = NULL;

	if (!root || !cJSON_AddNumberToObject(root, "version", 1) ||
	    !cJSON_AddStringToObject(root, "zone", receipt->zone))
		goto out;
	if (receipt->has_saved) {
		saved = gw_mx_set_json(&receipt->saved);
		if (!saved || !cJSON_AddItemToObject(root, "mx", saved)) {
			cJSON_Delete(saved);
			goto out;
		}
	}
	gateway = gw_mx_set_json(&receipt->gateway);
	if (!gateway || !cJSON_AddItemToObject(root, "gateway", gateway)) {
		cJSON_Delete(gateway);
		goto out;
	}
	if (receipt->swapped_at_ms &&
	    !cJSON_AddNumberToObject(root, "swapped_at_ms", (double)receipt->swapped_at_ms))
		goto out;
	if (receipt->has_tenant && !add_tenant(root, receipt))
		goto out;
	if (receipt->has_replaced_ttl &&
	    !cJSON_AddNumberToObject(root, "replaced_ttl", (double)receipt->replaced_ttl))
		goto out;
	if (receipt->write_doing && !add_write(root, name, receipt))
		goto out;
	text = cJSON_PrintUnformatted(root);
	if (text)
		copy = ctx->host->strdup(text);
out:
	cJSON_free(text);
	cJSON_Delete(root);
	return copy;
}
