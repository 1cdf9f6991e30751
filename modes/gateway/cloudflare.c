/*
 * The Cloudflare provider (API v4, an API token sent as a bearer token).
 *
 * Cloudflare keeps one record per MX rdata, each with an id, and has no
 * precondition on a whole RRset.  The replacement is one batch
 * (POST /zones/{id}/dns_records/batch: the old records deleted by id, the
 * new ones posted, all in one transaction: all or nothing), so the name is
 * never without MX.  What the batch cannot do is refuse when the set
 * changed since it was read: a deleted id that is gone fails the batch,
 * but an added record or an edit in place does not.  So the set is re-read
 * right before the batch (sent only when it is still exactly what was
 * read, ids included) and right after (anything but the new set is
 * reported as a concurrent change).  A change landing between that re-read
 * and the batch can still slip through; plan says so.
 *
 * The zone is the longest suffix of the domain that GET /zones?name=
 * finds; two zones of that name visible to the token are refused.
 */
#include "provider.h"
#include "https.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ZONES_PER_PAGE 50
#define RECORDS_PER_PAGE 100
#define MAX_PAGES 50
/* Never a Cloudflare record id (32 hex digits, never all zero). */
#define PROBE_ID "00000000000000000000000000000000"
/* Cloudflare error codes (dns-providers.md A4, A5). */
#define CF_RECORD_GONE 81044

struct cf {
	struct gw_https https;
	bool have_zone;
	char zone_id[64];
	char zone_name[GW_NAME_MAX];   /* no final dot */
};

/* One record as read, before it joins the sorted set. */
struct cf_record {
	char id[64];
	uint16_t pref;
	uint32_t ttl;
	char host[GW_NAME_MAX];
};

static const char GRANT[] = "grant the API token Zone:Zone:Read and "
                            "Zone:DNS:Edit on the zone";

/* The errors[] of a {"success":false,...} reply, on one line. */
static void error_line(const struct gw_https_answer *answer, char *buf,
                       size_t len)
{
	const cJSON *errors = cJSON_GetObjectItemCaseSensitive(answer->json, "errors");
	const cJSON *e;
	size_t used;

	used = (size_t)snprintf(buf, len, "HTTP %ld", answer->status);
	cJSON_ArrayForEach(e, errors) {
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
		const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");

		if (used >= len)
			break;
		used += (size_t)snprintf(buf + used, len - used, ", code %d: %s",
		                         cJSON_IsNumber(code) ? code->valueint : 0,
		                         cJSON_IsString(msg) ? msg->valuestring : "?");
	}
	if (!answer->json && used < len)
		snprintf(buf + used, len - used, " (no JSON body)");
}

static bool has_error_code(const struct gw_https_answer *answer, int wanted)
{
	const cJSON *errors = cJSON_GetObjectItemCaseSensitive(answer->json, "errors");
	const cJSON *e;

	cJSON_ArrayForEach(e, errors) {
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");

		if (cJSON_IsNumber(code) && code->valueint == wanted)
			return true;
	}
	return false;
}

static bool succeeded(const struct gw_https_answer *answer)
{
	return answer->status >= 200 && answer->status < 300 &&
	       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(answer->json,
	                                                      "success"));
}

/* A refusal of a read, or of the batch when it was not applied.  The
 * diagnostic names what to grant when the token is at fault. */
static enum gw_replace_outcome refused(struct gw_provider *provider,
                                       const char *what,
                                       const struct gw_https_answer *answer)
{
	const struct gw_op *op = provider->op;
	const struct mailmode_host *host = op->ctx->host;
	char errors[MAILMODE_DIAG_SUMMARY_MAX / 2];

	error_line(answer, errors, sizeof(errors));
	if (answer->status == 401 || answer->status == 403) {
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
		               "Cloudflare refused %s with the API token of [%s] "
		               "(%s): %s %s", what, op->cfg->dns_section, errors,
		               GRANT, op->domain);
		return GW_REPLACE_DENIED;
	}
	host->diag_set(op->diag, MAILMODE_SEV_ERROR,
	               answer->status == 429 || answer->status >= 500,
	               "Cloudflare refused %s (%s)%s", what, errors,
	               answer->status == 429 ? ": still throttled after the "
	                                       "retry budget" : "");
	return GW_REPLACE_FAILED;
}

/* GET base+path; MAILMODE_OK only for a successful envelope. */
static int api_get(struct gw_provider *provider, const char *path,
                   const char *what, struct gw_https_answer *answer)
{
	struct cf *self = provider->impl;
	const struct gw_op *op = provider->op;
	char url[GW_URL_MAX * 2], why[MAILMODE_DIAG_SUMMARY_MAX / 2];
	int rc;

	snprintf(url, sizeof(url), "%s%s", op->cfg->api_url, path);
	rc = gw_https_call(&self->https, "GET", url, NULL, NULL, answer, why,
	                   sizeof(why));
	if (rc != MAILMODE_OK) {
		op->ctx->host->diag_set(op->diag, MAILMODE_SEV_ERROR, 1,
		                        "no answer from Cloudflare (%s) to %s: %s",
		                        op->cfg->api_url, what, why);
		return MAILMODE_ERR_FAILED;
	}
	if (succeeded(answer))
		return MAILMODE_OK;
	rc = refused(provider, what, answer) == GW_REPLACE_DENIED
	             ? MAILMODE_ERR_DENIED : MAILMODE_ERR_FAILED;
	gw_https_answer_free(answer);
	return rc;
}

static int total_pages(const struct gw_https_answer *answer)
{
	const cJSON *info = cJSON_GetObjectItemCaseSensitive(answer->json,
	                                                     "result_info");
	const cJSON *pages = cJSON_GetObjectItemCaseSensitive(info, "total_pages");

	return cJSON_IsNumber(pages) ? pages->valueint : 1;
}

/* The zones named exactly `candidate`: *count of them, the first one's id
 * in self->zone_id. */
static int zones_named(struct gw_provider *provider, const char *candidate,
                       int *count, char *ids, size_t ids_len)
{
	struct cf *self = provider->impl;
	struct gw_https_answer answer;
	char path[GW_URL_MAX * 2], what[GW_NAME_MAX + 64];
	const cJSON *zone;
	int page = 1, pages, rc;

	*count = 0;
	ids[0] = '\0';
	snprintf(what, sizeof(what), "the zone lookup of %s", candidate);
	do {
		snprintf(path, sizeof(path), "/zones?name=");
		gw_https_escape(path, sizeof(path), candidate);
		snprintf(path + strlen(path), sizeof(path) - strlen(path),
		         "&per_page=%d&page=%d", ZONES_PER_PAGE, page);
		rc = api_get(provider, path, what, &answer);
		if (rc != MAILMODE_OK)
			return rc;
		cJSON_ArrayForEach(zone, cJSON_GetObjectItemCaseSensitive(answer.json,
		                                                          "result")) {
			const cJSON *id = cJSON_GetObjectItemCaseSensitive(zone, "id");
			const cJSON *name = cJSON_GetObjectItemCaseSensitive(zone, "name");

			if (!cJSON_IsString(id) || !cJSON_IsString(name) ||
			    strcasecmp(name->valuestring, candidate) != 0)
				continue;
			if (++*count == 1)
				snprintf(self->zone_id, sizeof(self->zone_id), "%s",
				         id->valuestring);
			snprintf(ids + strlen(ids), ids_len - strlen(ids), "%s%s",
			         ids[0] ? ", " : "", id->valuestring);
		}
		pages = total_pages(&answer);
		gw_https_answer_free(&answer);
	} while (++page <= pages && page <= MAX_PAGES);
	return MAILMODE_OK;
}

static void use_zone(struct gw_provider *provider, const char *id,
                     const char *name)
{
	struct cf *self = provider->impl;

	snprintf(self->zone_id, sizeof(self->zone_id), "%s", id);
	snprintf(self->zone_name, sizeof(self->zone_name), "%s", name);
	snprintf(provider->where, sizeof(provider->where), "Cloudflare zone %s "
	         "(id %s)", name, id);
	self->have_zone = true;
}

/* The longest suffix of `name` that is a Cloudflare zone: its id and
 * name. */
static int look_zone_up(struct gw_provider *provider, const char *name,
                        char *zone_id, char *zone_name)
{
	struct cf *self = provider->impl;
	const struct gw_op *op = provider->op;
	const struct mailmode_host *host = op->ctx->host;
	const char *candidate = name;
	char ids[256];
	int count, rc;

	/* Down to two labels: a zone is never a bare TLD here. */
	while (candidate && strchr(candidate, '.')) {
		rc = zones_named(provider, candidate, &count, ids, sizeof(ids));
		if (rc != MAILMODE_OK)
			return rc;
		if (count > 1) {
			host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
			               "Cloudflare shows %d zones named %s to the API "
			               "token of [%s] (ids %s): refusing to guess; scope "
			               "the token to one of them", count, candidate,
			               op->cfg->dns_section, ids);
			return MAILMODE_ERR_FAILED;
		}
		if (count == 1) {
			snprintf(zone_id, GW_NAME_MAX, "%s", self->zone_id);
			snprintf(zone_name, GW_NAME_MAX, "%s", candidate);
			return MAILMODE_OK;
		}
		candidate = strchr(candidate, '.') + 1;
	}
	host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
	               "no Cloudflare zone holds %s for the API token of [%s]: is "
	               "the zone in the token's account, and may the token read "
	               "it (Zone:Zone:Read)?", name, op->cfg->dns_section);
	return MAILMODE_ERR_FAILED;
}

/* The zone of `name`: this handle's, or the context's (provider.h). */
static int find_zone(struct gw_provider *provider, const char *name)
{
	struct cf *self = provider->impl;

	if (self->have_zone)
		return MAILMODE_OK;
	return gw_zone_cached(provider, name, look_zone_up, use_zone);
}

/* Adds one JSON record to the list read so far. */
static int take_record(const struct gw_op *op, const cJSON *rec,
                       struct cf_record *records, size_t *count)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
	const cJSON *content = cJSON_GetObjectItemCaseSensitive(rec, "content");
	const cJSON *prio = cJSON_GetObjectItemCaseSensitive(rec, "priority");
	const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(rec, "ttl");
	struct cf_record *r = &records[*count];

	if (*count >= GW_MX_MAX || !cJSON_IsString(id) ||
	    !cJSON_IsString(content) || !cJSON_IsNumber(prio) ||
	    !cJSON_IsNumber(ttl) || prio->valuedouble < 0 ||
	    prio->valuedouble > 65535 || ttl->valuedouble < 1 ||
	    gw_name_normalise(content->valuestring, r->host, sizeof(r->host)) !=
	            MAILMODE_OK) {
		op->ctx->host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
		                        "Cloudflare returned an MX record of %s that "
		                        "mailmode cannot use (or more than %d)",
		                        op->domain, GW_MX_MAX);
		return MAILMODE_ERR_FAILED;
	}
	snprintf(r->id, sizeof(r->id), "%s", id->valuestring);
	r->pref = (uint16_t)prio->valueint;
	r->ttl = (uint32_t)ttl->valuedouble;
	(*count)++;
	return MAILMODE_OK;
}

/* The set, sorted, and its token: the ids in the set's order. */
static int make_version(const struct gw_op *op, const struct cf_record *records,
                        size_t count, struct gw_rrset_version *version)
{
	size_t i, j;

	for (i = 0; i < count; i++)
		if (gw_mx_set_add(&version->rrset, records[i].pref, records[i].ttl,
		                  records[i].host) != MAILMODE_OK)
			break;
	/* A record twice would leave one copy behind a batch. */
	if (version->rrset.count != count) {
		op->ctx->host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
		                        "Cloudflare holds the same MX record of %s "
		                        "twice: remove one in the dashboard",
		                        op->domain);
		return MAILMODE_ERR_FAILED;
	}
	for (i = 0; i < version->rrset.count; i++) {
		const struct gw_mx *mx = &version->rrset.mx[i];

		for (j = 0; j < count; j++)
			if (records[j].pref == mx->pref &&
			    strcmp(records[j].host, mx->host) == 0)
				break;
		snprintf(version->token + strlen(version->token),
		         sizeof(version->token) - strlen(version->token), "%s%s",
		         i ? "," : "", records[j].id);
	}
	return MAILMODE_OK;
}

static int cf_get_rrset(struct gw_provider *provider, const char *name,
                        struct gw_rrset_version *version)
{
	struct cf *self = provider->impl;
	struct cf_record records[GW_MX_MAX];
	struct gw_https_answer answer;
	char path[GW_URL_MAX * 2], what[GW_NAME_MAX + 64];
	const cJSON *rec;
	size_t count = 0;
	int page = 1, pages, rc;

	memset(version, 0, sizeof(*version));
	rc = find_zone(provider, name);
	if (rc != MAILMODE_OK)
		return rc;
	snprintf(what, sizeof(what), "the read of the MX records of %s", name);
	do {
		snprintf(path, sizeof(path), "/zones/%s/dns_records?type=MX&name=",
		         self->zone_id);
		gw_https_escape(path, sizeof(path), name);
		snprintf(path + strlen(path), sizeof(path) - strlen(path),
		         "&per_page=%d&page=%d", RECORDS_PER_PAGE, page);
		rc = api_get(provider, path, what, &answer);
		if (rc != MAILMODE_OK)
			return rc;
		cJSON_ArrayForEach(rec, cJSON_GetObjectItemCaseSensitive(answer.json,
		                                                         "result")) {
			rc = take_record(provider->op, rec, records, &count);
			if (rc != MAILMODE_OK)
				break;
		}
		pages = total_pages(&answer);
		gw_https_answer_free(&answer);
	} while (rc == MAILMODE_OK && ++page <= pages && page <= MAX_PAGES);
	if (rc != MAILMODE_OK)
		return rc;
	return make_version(provider->op, records, count, version);
}

/* The batch body: deletes by the ids in `ids` ("a,b"), posts of the new
 * set.  NULL when out of memory. */
static char *batch_body(const char *name, const char *ids,
                        const struct gw_mx_set *replacement)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *deletes = cJSON_AddArrayToObject(root, "deletes");
	cJSON *posts = cJSON_AddArrayToObject(root, "posts");
	char id[64], host[GW_NAME_MAX];
	const char *p = ids;
	char *text = NULL;
	size_t i, n;

	if (!root || !deletes || !posts)
		goto out;
	while (*p) {
		cJSON *del = cJSON_CreateObject();

		n = strcspn(p, ",");
		snprintf(id, sizeof(id), "%.*s", (int)n, p);
		if (!del || !cJSON_AddStringToObject(del, "id", id)) {
			cJSON_Delete(del);
			goto out;
		}
		cJSON_AddItemToArray(deletes, del);
		p += n + (p[n] == ',');
	}
	for (i = 0; i < replacement->count; i++) {
		const struct gw_mx *mx = &replacement->mx[i];
		cJSON *post = cJSON_CreateObject();

		/* Cloudflare spells names without the final dot. */
		snprintf(host, sizeof(host), "%.*s", (int)strlen(mx->host) - 1,
		         mx->host);
		if (!post || !cJSON_AddStringToObject(post, "type", "MX") ||
		    !cJSON_AddStringToObject(post, "name", name) ||
		    !cJSON_AddStringToObject(post, "content", host) ||
		    !cJSON_AddNumberToObject(post, "priority", mx->pref) ||
		    !cJSON_AddNumberToObject(post, "ttl", mx->ttl)) {
			cJSON_Delete(post);
			goto out;
		}
		cJSON_AddItemToArray(posts, post);
	}
	text = cJSON_PrintUnformatted(root);
out:
	cJSON_Delete(root);
	return text;
}

/* POST the batch; the answer is classified by the caller. */
static int post_batch(struct gw_provider *provider, const char *body,
                      struct gw_https_answer *answer, char *why, size_t len)
{
	struct cf *self = provider->impl;
	char url[GW_URL_MAX * 2];

	snprintf(url, sizeof(url), "%s/zones/%s/dns_records/batch",
	         provider->op->cfg->api_url, self->zone_id);
	return gw_https_call(&self->https, "POST", url, NULL, body, answer, why,
	                     len);
}

/* Reads the set into *live with errors kept off the diagnostic. */
static bool quiet_read(struct gw_provider *provider, const char *name,
                       struct gw_rrset_version *live, char *why, size_t len)
{
	struct gw_op *op = provider->op;
	struct mailmode_diag scratch = { 0 }, *saved = op->diag;
	int rc;

	op->diag = &scratch;
	rc = cf_get_rrset(provider, name, live);
	op->diag = saved;
	snprintf(why, len, "%s", scratch.summary);
	return rc == MAILMODE_OK;
}

/* After a batch Cloudflare accepted: anything but the new set live now is
 * someone else's change made at the same time. */
static enum gw_replace_outcome check_after(struct gw_provider *provider,
                                           const char *name,
                                           const struct gw_mx_set *replacement)
{
	const struct gw_op *op = provider->op;
	const struct mailmode_host *host = op->ctx->host;
	struct gw_rrset_version live;
	char diff[MAILMODE_DIAG_SUMMARY_MAX / 2], why[MAILMODE_DIAG_SUMMARY_MAX];

	if (!quiet_read(provider, name, &live, why, sizeof(why))) {
		host->log(host->handle, MAILMODE_LOG_WARNING,
		          "%s: Cloudflare applied the batch, but the re-read after "
		          "it failed (%s): a concurrent change could not be ruled "
		          "out; verify checks every authoritative server", name, why);
		return GW_REPLACE_OK;
	}
	if (gw_mx_set_same(&live.rrset, replacement))
		return GW_REPLACE_OK;
	gw_mx_set_diff(&live.rrset, replacement, diff, sizeof(diff));
	host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
	               "Cloudflare applied the batch for %s, but a re-read right "
	               "after shows other MX records (%s): someone changed them at "
	               "the same time (Cloudflare has no whole-set precondition); "
	               "mailmode changes nothing more", name, diff);
	return GW_REPLACE_CONFLICT;
}

/* A batch Cloudflare answered with an error.  The seam (gw_swap) knows
 * when the host had sent it more than once, and when a conflict is an
 * earlier copy of it that landed. */
static enum gw_replace_outcome batch_refused(struct gw_provider *provider,
                                             const char *name,
                                             const struct gw_https_answer *answer)
{
	const struct gw_op *op = provider->op;
	const struct mailmode_host *host = op->ctx->host;
	char errors[MAILMODE_DIAG_SUMMARY_MAX / 2];

	error_line(answer, errors, sizeof(errors));
	if (answer->status >= 500) {
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 1,
		               "Cloudflare answered the batch for %s with a server "
		               "error (%s): outcome unknown", name, errors);
		return GW_REPLACE_UNKNOWN;
	}
	if (has_error_code(answer, CF_RECORD_GONE))
		return gw_precondition_refused(provider, name, "Cloudflare", "batch", errors);
	return refused(provider, "the batch replacing the MX records", answer);
}

static enum gw_replace_outcome cf_replace_rrset(
	struct gw_provider *provider, const char *name,
	const struct gw_rrset_version *expected,
	const struct gw_mx_set *replacement)
{
	const struct gw_op *op = provider->op;
	const struct mailmode_host *host = op->ctx->host;
	struct gw_rrset_version now;
	struct gw_https_answer answer = { 0 };
	enum gw_replace_outcome outcome = GW_REPLACE_FAILED;
	char why[MAILMODE_DIAG_SUMMARY_MAX / 2], diff[MAILMODE_DIAG_SUMMARY_MAX / 2];
	char *body = NULL;

	/* The precondition Cloudflare does not have, checked just before. */
	if (cf_get_rrset(provider, name, &now) != MAILMODE_OK)
		goto out;
	if (!gw_mx_set_same(&now.rrset, &expected->rrset) ||
	    strcmp(now.token, expected->token) != 0) {
		gw_mx_set_diff(&now.rrset, &expected->rrset, diff, sizeof(diff));
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
		               "the MX set of %s changed at Cloudflare between our "
		               "read and our batch (%s): someone else is editing it; "
		               "nothing was sent", name,
		               diff[0] ? diff : "the same records, other record ids");
		outcome = GW_REPLACE_CONFLICT;
		goto out;
	}
	body = batch_body(name, now.token, replacement);
	if (!body) {
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0, "out of memory "
		               "building the Cloudflare batch for %s", name);
		goto out;
	}
	if (post_batch(provider, body, &answer, why, sizeof(why)) != MAILMODE_OK) {
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 1,
		               "no answer from Cloudflare to the batch for %s (%s): "
		               "outcome unknown", name, why);
		outcome = GW_REPLACE_UNKNOWN;
		goto out;
	}
	outcome = succeeded(&answer) ? check_after(provider, name, replacement)
	                             : batch_refused(provider, name, &answer);
out:
	gw_https_answer_free(&answer);
	cJSON_free(body);
	return outcome;
}

/* GET /user/tokens/verify: the token exists and is active. */
static enum gw_replace_outcome verify_token(struct gw_provider *provider)
{
	const struct gw_op *op = provider->op;
	struct gw_https_answer answer;
	const cJSON *status;
	enum gw_replace_outcome outcome = GW_REPLACE_OK;
	int rc;

	rc = api_get(provider, "/user/tokens/verify", "the API token check",
	             &answer);
	if (rc != MAILMODE_OK)
		return rc == MAILMODE_ERR_DENIED ? GW_REPLACE_DENIED
		                                 : GW_REPLACE_FAILED;
	status = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(answer.json, "result"), "status");
	if (!cJSON_IsString(status) || strcmp(status->valuestring, "active") != 0) {
		op->ctx->host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
		                        "the Cloudflare API token of [%s] is %s, not "
		                        "active: make a new one and %s %s",
		                        op->cfg->dns_section,
		                        cJSON_IsString(status) ? status->valuestring
		                                               : "of unknown status",
		                        GRANT, op->domain);
		outcome = GW_REPLACE_DENIED;
	}
	gw_https_answer_free(&answer);
	return outcome;
}

/* A batch that cannot apply: it deletes a record id that does not exist,
 * so Cloudflare refuses all of it (81044), after checking that the token
 * may edit the zone's DNS (403 otherwise). */
static enum gw_replace_outcome probe_edit(struct gw_provider *provider)
{
	const struct gw_op *op = provider->op;
	const struct mailmode_host *host = op->ctx->host;
	struct gw_https_answer answer = { 0 };
	enum gw_replace_outcome outcome;
	char why[MAILMODE_DIAG_SUMMARY_MAX / 2], errors[MAILMODE_DIAG_SUMMARY_MAX / 2];

	if (post_batch(provider, "{\"deletes\":[{\"id\":\"" PROBE_ID "\"}]}",
	               &answer, why, sizeof(why)) != MAILMODE_OK) {
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 1, "no answer from "
		               "Cloudflare to the probe batch (%s)", why);
		return GW_REPLACE_UNKNOWN;
	}
	if (answer.status == 401 || answer.status == 403) {
		outcome = refused(provider, "a batch edit of the zone's records",
		                  &answer);
	} else if (has_error_code(&answer, CF_RECORD_GONE)) {
		outcome = GW_REPLACE_OK;
	} else {
		error_line(&answer, errors, sizeof(errors));
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, answer.status == 429,
		               "Cloudflare answered the probe batch (deleting a "
		               "record id that does not exist) unexpectedly (%s): "
		               "whether the token may edit DNS is not proven", errors);
		outcome = GW_REPLACE_FAILED;
	}
	gw_https_answer_free(&answer);
	return outcome;
}

static enum gw_replace_outcome cf_probe_update(struct gw_provider *provider,
                                               const char *name)
{
	struct gw_rrset_version live;
	enum gw_replace_outcome outcome;
	int rc;

	outcome = verify_token(provider);
	if (outcome != GW_REPLACE_OK)
		return outcome;
	rc = cf_get_rrset(provider, name, &live);
	if (rc != MAILMODE_OK)
		return rc == MAILMODE_ERR_DENIED ? GW_REPLACE_DENIED
		                                 : GW_REPLACE_FAILED;
	outcome = probe_edit(provider);
	if (outcome == GW_REPLACE_OK)
		snprintf(provider->proven, sizeof(provider->proven),
		         "the API token is active, reads the zone and its MX records "
		         "and may edit DNS records (a batch deleting a record id that "
		         "does not exist was refused for that reason only); not "
		         "provable in advance: that nobody changes the MX set "
		         "between the re-read and the batch (Cloudflare has no "
		         "whole-set precondition)");
	return outcome;
}

static int cf_describe_replace(struct gw_provider *provider, const char *name,
                               const struct gw_rrset_version *expected,
                               const struct gw_mx_set *replacement, char *buf,
                               size_t len)
{
	struct cf *self = provider->impl;
	const char *id = expected->token;
	size_t i, n;

	gw_append_line(buf, len, "Cloudflare batch to zone %s (id %s) at %s, API "
	            "token from [%s] api_token_file:", self->zone_name,
	            self->zone_id, provider->op->cfg->api_url,
	            provider->op->cfg->dns_section);
	gw_append_line(buf, len, "  check: re-read the MX records of %s right "
	            "before; the batch is sent only if they still are exactly "
	            "these %zu (the same ids)", name, expected->rrset.count);
	for (i = 0; i < expected->rrset.count; i++) {
		const struct gw_mx *mx = &expected->rrset.mx[i];

		n = strcspn(id, ",");
		gw_append_line(buf, len, "  delete: record id %.*s (%s. %u MX %u %s)",
		            (int)n, id, name, mx->ttl, mx->pref, mx->host);
		id += n + (id[n] == ',');
	}
	for (i = 0; i < replacement->count; i++)
		gw_append_line(buf, len, "  post: %s. %u MX %u %s", name,
		            replacement->mx[i].ttl, replacement->mx[i].pref,
		            replacement->mx[i].host);
	gw_append_line(buf, len, "  check: re-read right after; any other MX record "
	            "there is reported as a concurrent change");
	gw_append_line(buf, len, "  guarantee: weaker than a compare-and-swap: the "
	            "batch is all or nothing, but Cloudflare has no whole-set "
	            "precondition, so a change made between the re-read and the "
	            "batch is not refused (it is reported afterwards)");
	return MAILMODE_OK;
}

static void cf_close(struct gw_provider *provider)
{
	struct cf *self;

	if (!provider)
		return;
	self = provider->impl;
	gw_https_close(&self->https);
	gw_provider_free(provider);
}

static const struct gw_provider_ops cf_ops = {
	.name = "cloudflare",
	.get_rrset = cf_get_rrset,
	.replace_rrset = cf_replace_rrset,
	.probe_update = cf_probe_update,
	.describe_replace = cf_describe_replace,
	.close = cf_close,
};

/* An API token is one word of letters, digits, '-' and '_'. */
static int load_token(const struct gw_ctx *ctx, const struct gw_config *cfg,
                      char **token, struct mailmode_diag *diag)
{
	const struct mailmode_host *host = ctx->host;
	const char *p;
	int rc;

	rc = host->secret_load(host->handle, cfg->credentials_file, token, diag);
	if (rc != MAILMODE_OK) {
		host->diag_append(diag, "[%s] api_token_file: '%s' (Cloudflare API "
		                  "token)", cfg->dns_section, cfg->credentials_file);
		return rc;
	}
	for (p = *token; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			break;
	if (*p == '\0')
		return MAILMODE_OK;
	host->secret_free(host->handle, *token);
	*token = NULL;
	host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
	               "[%s] api_token_file: '%s' does not hold a Cloudflare API "
	               "token (one word of letters, digits, '-' and '_')",
	               cfg->dns_section, cfg->credentials_file);
	return MAILMODE_ERR_CONFIG;
}

int gw_cloudflare_check_credentials(const struct gw_ctx *ctx,
                                    const struct gw_config *cfg,
                                    struct mailmode_diag *diag)
{
	char *token = NULL;
	int rc = load_token(ctx, cfg, &token, diag);

	if (token)
		ctx->host->secret_free(ctx->host->handle, token);
	return rc;
}

int gw_cloudflare_open(struct gw_op *op, struct gw_provider **out)
{
	const struct mailmode_host *host = op->ctx->host;
	struct gw_provider *provider;
	struct cf *self;
	char *token = NULL;
	int rc;

	*out = NULL;
	rc = gw_provider_new(op, &cf_ops, sizeof(*self), "Cloudflare", &provider);
	if (rc != MAILMODE_OK)
		return rc;
	self = provider->impl;
	rc = load_token(op->ctx, op->cfg, &token, op->diag);
	if (rc != MAILMODE_OK)
		goto out;
	rc = gw_https_open(op, &self->https);
	if (rc != MAILMODE_OK)
		goto out;
	rc = gw_https_set_bearer(&self->https, token);
	if (rc != MAILMODE_OK)
		goto out;
	*out = provider;
	provider = NULL;
out:
	if (token)
		host->secret_free(host->handle, token);
	cf_close(provider);
	return rc;
}
