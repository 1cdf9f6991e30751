/*
 * The Google Cloud DNS provider (API v1, a service account).
 *
 * Credentials: the service account's JSON key file (client_email,
 * private_key, token_uri, project_id).  A JWT signed RS256 with the key
 * (OpenSSL) is exchanged at token_uri for an access token with the
 * ndev.clouddns.readwrite scope, kept until a minute before it expires in
 * the context's cache (provider.h), so every handle of one command uses
 * it; a token the API refuses (401) is dropped and replaced once.
 *
 * The replacement is one changes.create whose deletions are the exact MX
 * RRset read (TTL and every rdata) and whose additions are the new one:
 * Google applies all of it or none, and refuses it (412 conditionNotMet,
 * 404 notFound, 409 alreadyExists) when the set is no longer the one read:
 * a real compare-and-swap.  The change is then followed (changes.get)
 * until its status is "done".
 *
 * The managed zone is configured (managed_zone) or the public zone whose
 * dnsName is the longest suffix of the domain; a private zone is refused
 * (the world does not see it), two public ones too.
 */
#include "provider.h"
#include "https.h"

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SCOPE "https://www.googleapis.com/auth/ndev.clouddns.readwrite"
#define DEFAULT_TOKEN_URI "https://oauth2.googleapis.com/token"
#define JWT_LIFETIME_S 3600
#define TOKEN_MARGIN_MS 60000
#define MAX_PAGES 50
#define POLL_PAUSE_MS 500

static const char GRANT[] = "grant it roles/dns.admin on the managed zone "
                            "(or dns.changes.create, dns.changes.get and "
                            "dns.resourceRecordSets.create/delete/update/list)";

/* What the zone-level probe asks for: everything a swap uses. */
static const char *const PERMISSIONS[] = {
	"dns.changes.create", "dns.changes.get", "dns.resourceRecordSets.create",
	"dns.resourceRecordSets.delete", "dns.resourceRecordSets.update",
	"dns.resourceRecordSets.list", NULL
};

struct gc_key {
	char email[GW_NAME_MAX];
	char key_id[128];
	char token_uri[GW_URL_MAX];
	char project[GW_NAME_MAX];
	EVP_PKEY *pkey;
};

struct gc {
	struct gw_https api;        /* carries the access token */
	struct gw_https oauth;      /* the token endpoint: no bearer */
	struct gc_key key;
	int64_t token_expires_ms;   /* 0: no token yet */
	/* The context's cache (provider.h): the token of this key, the zone
	 * of a name. */
	char token_key[GW_NAME_MAX * 2 + GW_URL_MAX + 64];
	bool have_zone;
	char zone[GW_NAME_MAX];     /* the managed zone's name */
	char dns_name[GW_NAME_MAX]; /* its dnsName, "example.com." */
};

/* ---- the key file -------------------------------------------------------- */

static bool copy_field(const cJSON *root, const char *field, char *out,
                       size_t len)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, field);

	return cJSON_IsString(item) && item->valuestring[0] &&
	       (size_t)snprintf(out, len, "%s", item->valuestring) < len;
}

static int bad_key(const struct gw_ctx *ctx, const struct gw_config *cfg,
                   struct mailmode_diag *diag, const char *why)
{
	ctx->host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
	                    "[%s] service_account_file: '%s' is not a Google "
	                    "service-account JSON key: %s", cfg->dns_section,
	                    cfg->credentials_file, why);
	return MAILMODE_ERR_CONFIG;
}

static int parse_key(const struct gw_ctx *ctx, const struct gw_config *cfg,
                     cJSON *root, struct gc_key *key, struct mailmode_diag *diag)
{
	cJSON *pem = cJSON_GetObjectItemCaseSensitive(root, "private_key");
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "type");
	BIO *bio;

	if (!root)
		return bad_key(ctx, cfg, diag, "not JSON");
	if (!cJSON_IsString(type) || strcmp(type->valuestring, "service_account"))
		return bad_key(ctx, cfg, diag, "\"type\" is not \"service_account\"");
	if (!copy_field(root, "client_email", key->email, sizeof(key->email)))
		return bad_key(ctx, cfg, diag, "no \"client_email\"");
	if (!copy_field(root, "token_uri", key->token_uri, sizeof(key->token_uri)))
		snprintf(key->token_uri, sizeof(key->token_uri), "%s",
		         DEFAULT_TOKEN_URI);
	if (strncmp(key->token_uri, "https://", 8) != 0)
		return bad_key(ctx, cfg, diag, "\"token_uri\" is not https://");
	copy_field(root, "private_key_id", key->key_id, sizeof(key->key_id));
	copy_field(root, "project_id", key->project, sizeof(key->project));
	if (!cJSON_IsString(pem))
		return bad_key(ctx, cfg, diag, "no \"private_key\"");
	bio = BIO_new_mem_buf(pem->valuestring, -1);
	key->pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	/* The PEM copy in the parsed tree is wiped before it is freed. */
	explicit_bzero(pem->valuestring, strlen(pem->valuestring));
	if (!key->pkey || EVP_PKEY_get_base_id(key->pkey) != EVP_PKEY_RSA) {
		EVP_PKEY_free(key->pkey);
		key->pkey = NULL;
		return bad_key(ctx, cfg, diag, "\"private_key\" is not an "
		               "unencrypted PEM RSA key");
	}
	return MAILMODE_OK;
}

static int load_key(const struct gw_ctx *ctx, const struct gw_config *cfg,
                    struct gc_key *key, struct mailmode_diag *diag)
{
	const struct mailmode_host *host = ctx->host;
	char *text = NULL;
	cJSON *root = NULL;
	int rc;

	memset(key, 0, sizeof(*key));
	rc = host->secret_load(host->handle, cfg->credentials_file, &text, diag);
	if (rc != MAILMODE_OK) {
		host->diag_append(diag, "[%s] service_account_file: '%s' (Google "
		                  "service-account key)", cfg->dns_section,
		                  cfg->credentials_file);
		goto out;
	}
	root = cJSON_Parse(text);
	rc = parse_key(ctx, cfg, root, key, diag);
	if (rc == MAILMODE_OK && cfg->project[0])
		snprintf(key->project, sizeof(key->project), "%s", cfg->project);
	if (rc == MAILMODE_OK && !key->project[0])
		rc = bad_key(ctx, cfg, diag, "no \"project_id\" (or set project = "
		             "in the section)");
out:
	cJSON_Delete(root);
	if (text)
		host->secret_free(host->handle, text);
	if (rc != MAILMODE_OK) {
		EVP_PKEY_free(key->pkey);
		key->pkey = NULL;
	}
	return rc;
}

int gw_gcloud_check_credentials(const struct gw_ctx *ctx,
                                const struct gw_config *cfg,
                                struct mailmode_diag *diag)
{
	struct gc_key key;
	int rc = load_key(ctx, cfg, &key, diag);

	EVP_PKEY_free(key.pkey);
	return rc;
}

/* ---- the access token ---------------------------------------------------- */

/* base64url without padding (RFC 7515 section 2) appended to out. */
static int b64url_append(char *out, size_t len, const unsigned char *data,
                         size_t n)
{
	size_t used = strlen(out);
	char *p;
	int made;

	if (used + 4 * ((n + 2) / 3) + 1 > len)
		return MAILMODE_ERR_FAILED;
	made = EVP_EncodeBlock((unsigned char *)out + used, data, (int)n);
	if (made < 0)
		return MAILMODE_ERR_FAILED;
	for (p = out + used; *p; p++) {
		if (*p == '+')
			*p = '-';
		else if (*p == '/')
			*p = '_';
		else if (*p == '=')
			*p = '\0';
	}
	return MAILMODE_OK;
}

/* header.claims.signature into jwt. */
static int make_jwt(const struct gc_key *key, int64_t now_s, char *jwt,
                    size_t len)
{
	char header[256], claims[1024];
	unsigned char sig[1024];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int rc = MAILMODE_ERR_FAILED;

	snprintf(header, sizeof(header), "{\"alg\":\"RS256\",\"typ\":\"JWT\"%s%s%s}",
	         key->key_id[0] ? ",\"kid\":\"" : "", key->key_id,
	         key->key_id[0] ? "\"" : "");
	snprintf(claims, sizeof(claims), "{\"iss\":\"%s\",\"scope\":\"%s\","
	         "\"aud\":\"%s\",\"iat\":%lld,\"exp\":%lld}", key->email, SCOPE,
	         key->token_uri, (long long)now_s,
	         (long long)(now_s + JWT_LIFETIME_S));
	jwt[0] = '\0';
	if (!md ||
	    b64url_append(jwt, len, (unsigned char *)header, strlen(header)) ||
	    strlen(jwt) + 2 > len)
		goto out;
	strcat(jwt, ".");
	if (b64url_append(jwt, len, (unsigned char *)claims, strlen(claims)) ||
	    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key->pkey) != 1 ||
	    EVP_DigestSign(md, NULL, &siglen, (unsigned char *)jwt, strlen(jwt)) != 1 ||
	    siglen > sizeof(sig) ||
	    EVP_DigestSign(md, sig, &siglen, (unsigned char *)jwt, strlen(jwt)) != 1 ||
	    strlen(jwt) + 2 > len)
		goto out;
	strcat(jwt, ".");
	rc = b64url_append(jwt, len, sig, siglen);
out:
	EVP_MD_CTX_free(md);
	return rc;
}

/* The token endpoint's refusal: {"error":..,"error_description":..}. */
static int token_refused(struct gw_provider *provider,
                         const struct gw_https_answer *answer)
{
	struct gc *self = provider->impl;
	const struct gw_op *op = provider->op;
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(answer->json, "error");
	const cJSON *desc = cJSON_GetObjectItemCaseSensitive(answer->json,
	                                                     "error_description");
	bool denied = answer->status == 400 || answer->status == 401 ||
	              answer->status == 403;

	op->ctx->host->diag_set(op->diag, MAILMODE_SEV_ERROR, !denied,
	                        "Google refused the service-account key of [%s] "
	                        "(%s) at %s: HTTP %ld %s: %s%s", op->cfg->dns_section,
	                        self->key.email, self->key.token_uri,
	                        answer->status,
	                        cJSON_IsString(err) ? err->valuestring : "",
	                        cJSON_IsString(desc) ? desc->valuestring : "",
	                        denied ? " (is the key deleted or disabled, or the "
	                                 "clock wrong?)" : "");
	return denied ? MAILMODE_ERR_DENIED : MAILMODE_ERR_FAILED;
}

static int fetch_token(struct gw_provider *provider)
{
	struct gc *self = provider->impl;
	const struct gw_op *op = provider->op;
	const struct mailmode_host *host = op->ctx->host;
	struct gw_https_answer answer = { 0 };
	const cJSON *token, *expires;
	char jwt[4096], body[4200], why[MAILMODE_DIAG_SUMMARY_MAX / 2];
	int64_t now = host->clock_wall_ms(host->handle);
	int rc;

	if (make_jwt(&self->key, now / 1000, jwt, sizeof(jwt)) != MAILMODE_OK) {
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0, "cannot sign the "
		               "JWT for the service account %s", self->key.email);
		return MAILMODE_ERR_FAILED;
	}
	snprintf(body, sizeof(body), "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth"
	         "%%3Agrant-type%%3Ajwt-bearer&assertion=%s", jwt);
	rc = gw_https_call(&self->oauth, "POST", self->key.token_uri,
	                   "application/x-www-form-urlencoded", body, &answer,
	                   why, sizeof(why));
	explicit_bzero(body, sizeof(body));
	if (rc != MAILMODE_OK) {
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 1, "no answer from the "
		               "Google token endpoint %s: %s", self->key.token_uri, why);
		return MAILMODE_ERR_FAILED;
	}
	token = cJSON_GetObjectItemCaseSensitive(answer.json, "access_token");
	expires = cJSON_GetObjectItemCaseSensitive(answer.json, "expires_in");
	if (answer.status != 200 || !cJSON_IsString(token)) {
		rc = token_refused(provider, &answer);
		goto out;
	}
	rc = gw_https_set_bearer(&self->api, token->valuestring);
	self->token_expires_ms = now + (int64_t)(cJSON_IsNumber(expires) ?
	                                         expires->valuedouble : 3600) * 1000;
	if (rc == MAILMODE_OK)
		gw_cache_put(op, self->token_key, token->valuestring,
		             self->token_expires_ms);
	explicit_bzero(token->valuestring, strlen(token->valuestring));
out:
	gw_https_answer_free(&answer);
	return rc;
}

/* A token valid for TOKEN_MARGIN_MS more as the bearer: this handle's, the
 * context's cached one for this key, or a new one. */
static int have_token(struct gw_provider *provider)
{
	struct gc *self = provider->impl;
	const struct gw_op *op = provider->op;
	const struct mailmode_host *host = op->ctx->host;
	int64_t now = host->clock_wall_ms(host->handle), expires = 0;
	char *cached;
	int rc;

	if (now + TOKEN_MARGIN_MS < self->token_expires_ms)
		return MAILMODE_OK;
	cached = gw_cache_get(op, self->token_key, &expires);
	if (!cached || now + TOKEN_MARGIN_MS >= expires) {
		gw_cache_free(cached);
		return fetch_token(provider);
	}
	rc = gw_https_set_bearer(&self->api, cached);
	if (rc == MAILMODE_OK)
		self->token_expires_ms = expires;
	gw_cache_free(cached);
	return rc;
}

/* ---- API calls ------------------------------------------------------------ */

/* One API call.  MAILMODE_OK when an answer arrived (any status);
 * MAILMODE_ERR_UNKNOWN when the request went out and none came; anything
 * else when it was not sent (token).  The diagnostic is set unless OK. */
static int api_call(struct gw_provider *provider, const char *method,
                    const char *path, const char *body, const char *what,
                    struct gw_https_answer *answer)
{
	struct gc *self = provider->impl;
	const struct gw_op *op = provider->op;
	int reauth = 0, rc;

	memset(answer, 0, sizeof(*answer));
	for (;;) {
		rc = have_token(provider);
		if (rc != MAILMODE_OK)
			return rc;
		rc = gw_https_api_call(&self->api, "Google Cloud DNS", method, path,
		                       NULL, body, what, answer);
		if (rc != MAILMODE_OK)
			return MAILMODE_ERR_UNKNOWN;
		/* A token revoked or expired early (Google checks it before
		 * anything else): once more with a new one. */
		if (answer->status != 401 || reauth++)
			return MAILMODE_OK;
		gw_cache_drop(op, self->token_key, gw_https_bearer(&self->api));
		self->token_expires_ms = 0;
		gw_https_answer_free(answer);
	}
}

/* "HTTP 412 conditionNotMet: Precondition not met for ..." */
static void error_line(const struct gw_https_answer *answer, char *buf,
                       size_t len, const char **reason)
{
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(answer->json, "error");
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
	const cJSON *first = cJSON_GetArrayItem(
		cJSON_GetObjectItemCaseSensitive(err, "errors"), 0);
	const cJSON *why = cJSON_GetObjectItemCaseSensitive(first, "reason");

	*reason = cJSON_IsString(why) ? why->valuestring : "";
	snprintf(buf, len, "HTTP %ld %s: %s", answer->status, *reason,
	         cJSON_IsString(msg) ? msg->valuestring : "(no JSON error body)");
}

/* A refused call; the diagnostic names what to grant when it is access. */
static int refused(struct gw_provider *provider, const char *what,
                   const struct gw_https_answer *answer)
{
	struct gc *self = provider->impl;
	const struct gw_op *op = provider->op;
	const struct mailmode_host *host = op->ctx->host;
	char errors[MAILMODE_DIAG_SUMMARY_MAX / 2];
	const char *reason;

	error_line(answer, errors, sizeof(errors), &reason);
	if (answer->status == 401 ||
	    (answer->status == 403 && strcmp(reason, "quotaExceeded") != 0)) {
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
		               "Google Cloud DNS refused %s to the service account "
		               "%s in project %s (%s): %s", what, self->key.email,
		               self->key.project, errors, GRANT);
		return MAILMODE_ERR_DENIED;
	}
	host->diag_set(op->diag, MAILMODE_SEV_ERROR,
	               answer->status == 429 || answer->status >= 500,
	               "Google Cloud DNS refused %s in project %s (%s)%s", what,
	               self->key.project, errors, answer->status == 429 ?
	               ": still throttled after the retry budget" : "");
	return MAILMODE_ERR_FAILED;
}

/* GET; MAILMODE_OK only with a 200 answer. */
static int api_get(struct gw_provider *provider, const char *path,
                   const char *what, struct gw_https_answer *answer)
{
	int rc = api_call(provider, "GET", path, NULL, what, answer);

	if (rc == MAILMODE_ERR_UNKNOWN)
		return MAILMODE_ERR_FAILED; /* a read: nothing to be unsure of */
	if (rc != MAILMODE_OK || answer->status == 200)
		return rc;
	rc = refused(provider, what, answer);
	gw_https_answer_free(answer);
	return rc;
}

static const char *next_page(const struct gw_https_answer *answer)
{
	const cJSON *token = cJSON_GetObjectItemCaseSensitive(answer->json,
	                                                      "nextPageToken");

	return cJSON_IsString(token) && token->valuestring[0] ? token->valuestring
	                                                      : NULL;
}

/* ---- the managed zone ---------------------------------------------------- */

struct zone_match {
	int public_count, private_count;
	char name[GW_NAME_MAX];
	char names[256];            /* every match, for the message */
};

static void note_zone(const cJSON *zone, const char *dns_name,
                      struct zone_match *m)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(zone, "name");
	const cJSON *dn = cJSON_GetObjectItemCaseSensitive(zone, "dnsName");
	const cJSON *vis = cJSON_GetObjectItemCaseSensitive(zone, "visibility");

	if (!cJSON_IsString(name) || !cJSON_IsString(dn) ||
	    strcasecmp(dn->valuestring, dns_name) != 0)
		return;
	snprintf(m->names + strlen(m->names), sizeof(m->names) - strlen(m->names),
	         "%s%s", m->names[0] ? ", " : "", name->valuestring);
	if (cJSON_IsString(vis) && strcmp(vis->valuestring, "private") == 0) {
		m->private_count++;
		return;
	}
	if (++m->public_count == 1)
		snprintf(m->name, sizeof(m->name), "%s", name->valuestring);
}

static int zones_named(struct gw_provider *provider, const char *dns_name,
                       struct zone_match *m)
{
	struct gc *self = provider->impl;
	struct gw_https_answer answer;
	char path[GW_URL_MAX * 2], what[GW_NAME_MAX + 64], token[512] = "";
	const cJSON *zone;
	int pages = 0, rc;

	memset(m, 0, sizeof(*m));
	snprintf(what, sizeof(what), "the managed-zone lookup of %s", dns_name);
	do {
		snprintf(path, sizeof(path), "/projects/%s/managedZones?dnsName=",
		         self->key.project);
		gw_https_escape(path, sizeof(path), dns_name);
		if (token[0]) {
			strcat(path, "&pageToken=");
			gw_https_escape(path, sizeof(path), token);
		}
		rc = api_get(provider, path, what, &answer);
		if (rc != MAILMODE_OK)
			return rc;
		cJSON_ArrayForEach(zone, cJSON_GetObjectItemCaseSensitive(
		                                 answer.json, "managedZones"))
			note_zone(zone, dns_name, m);
		snprintf(token, sizeof(token), "%s",
		         next_page(&answer) ? next_page(&answer) : "");
		gw_https_answer_free(&answer);
	} while (token[0] && ++pages < MAX_PAGES);
	return MAILMODE_OK;
}

static void use_zone(struct gw_provider *provider, const char *zone,
                     const char *dns_name)
{
	struct gc *self = provider->impl;

	snprintf(self->zone, sizeof(self->zone), "%s", zone);
	snprintf(self->dns_name, sizeof(self->dns_name), "%s", dns_name);
	snprintf(provider->where, sizeof(provider->where), "Google Cloud DNS "
	         "managed zone %.150s (%.150s) of project %.150s", zone, dns_name,
	         self->key.project);
	self->have_zone = true;
}

/* The configured managed zone: it must be public and hold the domain. */
static int configured_zone(struct gw_provider *provider, const char *fqdn,
                           char *zone, char *dns_name)
{
	struct gc *self = provider->impl;
	const struct gw_op *op = provider->op;
	struct gw_https_answer answer;
	char path[GW_URL_MAX * 2], dn[GW_NAME_MAX] = "";
	const cJSON *vis;
	size_t dl, fl = strlen(fqdn);
	int rc;

	snprintf(path, sizeof(path), "/projects/%s/managedZones/%s",
	         self->key.project, op->cfg->managed_zone);
	rc = api_get(provider, path, "the read of the managed zone", &answer);
	if (rc != MAILMODE_OK)
		return rc;
	copy_field(answer.json, "dnsName", dn, sizeof(dn));
	vis = cJSON_GetObjectItemCaseSensitive(answer.json, "visibility");
	dl = strlen(dn);
	if (cJSON_IsString(vis) && strcmp(vis->valuestring, "private") == 0)
		rc = MAILMODE_ERR_FAILED;
	else if (dl == 0 || dl > fl || strcasecmp(fqdn + fl - dl, dn) != 0 ||
	         (dl < fl && fqdn[fl - dl - 1] != '.'))
		rc = MAILMODE_ERR_CONFIG;
	gw_https_answer_free(&answer);
	if (rc == MAILMODE_OK) {
		snprintf(zone, GW_NAME_MAX, "%s", op->cfg->managed_zone);
		snprintf(dns_name, GW_NAME_MAX, "%s", dn);
		return MAILMODE_OK;
	}
	op->ctx->host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
	                        rc == MAILMODE_ERR_FAILED
	                                ? "[%s] managed_zone: '%s' is a private "
	                                  "zone (%s); the world does not see it"
	                                : "[%s] managed_zone: '%s' (%s) does not "
	                                  "hold %s",
	                        op->cfg->dns_section, op->cfg->managed_zone, dn,
	                        op->domain);
	return rc;
}

/* The longest public suffix of the domain that is a managed zone: its
 * name and dnsName. */
static int look_zone_up(struct gw_provider *provider, const char *fqdn,
                        char *zone, char *dns_name)
{
	struct gc *self = provider->impl;
	const struct gw_op *op = provider->op;
	const struct mailmode_host *host = op->ctx->host;
	const char *candidate = fqdn;
	struct zone_match m;
	int rc;

	if (op->cfg->managed_zone[0])
		return configured_zone(provider, fqdn, zone, dns_name);
	for (; strchr(candidate, '.') != candidate + strlen(candidate) - 1;
	     candidate = strchr(candidate, '.') + 1) {
		rc = zones_named(provider, candidate, &m);
		if (rc != MAILMODE_OK)
			return rc;
		if (m.public_count == 1) {
			snprintf(zone, GW_NAME_MAX, "%s", m.name);
			snprintf(dns_name, GW_NAME_MAX, "%s", candidate);
			return MAILMODE_OK;
		}
		if (m.public_count > 1 || m.private_count > 0) {
			host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
			               "Google Cloud DNS project %s has %s for %s (%s): "
			               "refusing it; set managed_zone = in [%s]",
			               self->key.project, m.public_count > 1 ?
			               "more than one public managed zone" :
			               "only a private managed zone", candidate, m.names,
			               op->cfg->dns_section);
			return MAILMODE_ERR_FAILED;
		}
	}
	host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
	               "no managed zone of Google Cloud DNS project %s holds %s: "
	               "is it the right project, and may the service account %s "
	               "list its zones (dns.managedZones.list)?", self->key.project,
	               op->domain, self->key.email);
	return MAILMODE_ERR_FAILED;
}

/* The managed zone of fqdn: this handle's, or the context's (provider.h). */
static int find_zone(struct gw_provider *provider, const char *fqdn)
{
	struct gc *self = provider->impl;

	if (self->have_zone)
		return MAILMODE_OK;
	return gw_zone_cached(provider, fqdn, look_zone_up, use_zone);
}

/* ---- reading -------------------------------------------------------------- */

static int take_rrset(const struct gw_op *op, const cJSON *rrset,
                      const char *fqdn, struct gw_mx_set *set)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(rrset, "name");
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(rrset, "type");
	const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(rrset, "ttl");
	const cJSON *rdata;
	char host[GW_NAME_MAX];
	unsigned pref;

	if (!cJSON_IsString(name) || !cJSON_IsString(type) ||
	    strcasecmp(name->valuestring, fqdn) != 0 ||
	    strcmp(type->valuestring, "MX") != 0)
		return MAILMODE_OK;
	cJSON_ArrayForEach(rdata, cJSON_GetObjectItemCaseSensitive(rrset, "rrdatas")) {
		if (!cJSON_IsString(rdata) || !cJSON_IsNumber(ttl) ||
		    sscanf(rdata->valuestring, "%u %255s", &pref, host) != 2 ||
		    pref > 65535 ||
		    gw_mx_set_add(set, (uint16_t)pref, (uint32_t)ttl->valuedouble,
		                  host) != MAILMODE_OK) {
			op->ctx->host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
			                        "Google Cloud DNS returned an MX rrset "
			                        "of %s that mailmode cannot use", fqdn);
			return MAILMODE_ERR_FAILED;
		}
	}
	return MAILMODE_OK;
}

static int gc_get_rrset(struct gw_provider *provider, const char *name,
                        struct gw_rrset_version *version)
{
	struct gc *self = provider->impl;
	struct gw_https_answer answer;
	char fqdn[GW_NAME_MAX + 1], path[GW_URL_MAX * 2], token[512] = "";
	char what[GW_NAME_MAX + 64];
	const cJSON *rrset;
	int pages = 0, rc;

	memset(version, 0, sizeof(*version));
	snprintf(fqdn, sizeof(fqdn), "%s.", name);
	rc = find_zone(provider, fqdn);
	if (rc != MAILMODE_OK)
		return rc;
	snprintf(what, sizeof(what), "the read of the MX rrset of %s", name);
	do {
		snprintf(path, sizeof(path), "/projects/%s/managedZones/%s/rrsets?"
		         "name=", self->key.project, self->zone);
		gw_https_escape(path, sizeof(path), fqdn);
		strcat(path, "&type=MX");
		if (token[0]) {
			strcat(path, "&pageToken=");
			gw_https_escape(path, sizeof(path), token);
		}
		rc = api_get(provider, path, what, &answer);
		if (rc != MAILMODE_OK)
			return rc;
		cJSON_ArrayForEach(rrset, cJSON_GetObjectItemCaseSensitive(answer.json,
		                                                           "rrsets"))
			if (rc == MAILMODE_OK)
				rc = take_rrset(provider->op, rrset, fqdn, &version->rrset);
		snprintf(token, sizeof(token), "%s",
		         next_page(&answer) ? next_page(&answer) : "");
		gw_https_answer_free(&answer);
	} while (rc == MAILMODE_OK && token[0] && ++pages < MAX_PAGES);
	return rc;
}

/* ---- the change ------------------------------------------------------------ */

static cJSON *rrset_json(const char *fqdn, const struct gw_mx_set *set)
{
	cJSON *rrset = cJSON_CreateObject();
	cJSON *rrdatas = cJSON_AddArrayToObject(rrset, "rrdatas");
	char text[GW_NAME_MAX + 8];
	uint32_t ttl;
	size_t i;

	gw_mx_set_one_ttl(set, &ttl);
	if (!rrset || !rrdatas ||
	    !cJSON_AddStringToObject(rrset, "kind", "dns#resourceRecordSet") ||
	    !cJSON_AddStringToObject(rrset, "name", fqdn) ||
	    !cJSON_AddStringToObject(rrset, "type", "MX") ||
	    !cJSON_AddNumberToObject(rrset, "ttl", ttl))
		goto fail;
	for (i = 0; i < set->count; i++) {
		cJSON *item;

		snprintf(text, sizeof(text), "%u %s", set->mx[i].pref, set->mx[i].host);
		item = cJSON_CreateString(text);
		if (!item)
			goto fail;
		cJSON_AddItemToArray(rrdatas, item);
	}
	return rrset;
fail:
	cJSON_Delete(rrset);
	return NULL;
}

/* {"kind":"dns#change","deletions":[old],"additions":[new]}; NULL: no
 * memory. */
static char *change_body(const char *fqdn, const struct gw_mx_set *old,
                         const struct gw_mx_set *new)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *dels = cJSON_AddArrayToObject(root, "deletions");
	cJSON *adds = cJSON_AddArrayToObject(root, "additions");
	cJSON *item;
	char *text = NULL;

	if (!root || !dels || !adds ||
	    !cJSON_AddStringToObject(root, "kind", "dns#change"))
		goto out;
	if (old->count) {
		item = rrset_json(fqdn, old);
		if (!item)
			goto out;
		cJSON_AddItemToArray(dels, item);
	}
	if (new->count) {
		item = rrset_json(fqdn, new);
		if (!item)
			goto out;
		cJSON_AddItemToArray(adds, item);
	}
	text = cJSON_PrintUnformatted(root);
out:
	cJSON_Delete(root);
	return text;
}

/* changes.get: the change's status (left as it was without an answer). */
static void poll_change(struct gw_provider *provider, const char *id,
                        char *status, size_t len)
{
	struct gc *self = provider->impl;
	struct gw_https_answer answer;
	char path[GW_URL_MAX * 2];

	snprintf(path, sizeof(path), "/projects/%s/managedZones/%s/changes/%s",
	         self->key.project, self->zone, id);
	if (api_get(provider, path, "changes.get", &answer) != MAILMODE_OK)
		return;
	if (!copy_field(answer.json, "status", status, len))
		snprintf(status, len, "?");
	gw_https_answer_free(&answer);
}

/* The seam (gw_swap) knows when the host had sent the change more than
 * once, and when a conflict is an earlier copy of it that landed. */
static enum gw_replace_outcome change_refused(struct gw_provider *provider,
                                              const char *name,
                                              const struct gw_https_answer *answer)
{
	char errors[MAILMODE_DIAG_SUMMARY_MAX / 2];
	const char *reason;

	error_line(answer, errors, sizeof(errors), &reason);
	return gw_change_refused(provider, name, "Google Cloud DNS", answer,
	                         answer->status == 412 || answer->status == 409 ||
	                                 answer->status == 404,
	                         errors, "the change of the MX rrset", refused);
}

static enum gw_replace_outcome gc_replace_rrset(
	struct gw_provider *provider, const char *name,
	const struct gw_rrset_version *expected,
	const struct gw_mx_set *replacement)
{
	struct gc *self = provider->impl;
	const struct gw_op *op = provider->op;
	struct gw_https_answer answer = { 0 };
	enum gw_replace_outcome outcome = GW_REPLACE_FAILED;
	char fqdn[GW_NAME_MAX + 1], path[GW_URL_MAX * 2], id[64], status[32];
	char *body = NULL;
	int rc;

	snprintf(fqdn, sizeof(fqdn), "%s.", name);
	if (!gw_need_one_ttl(op, "Google Cloud DNS", name, replacement))
		goto out;
	body = change_body(fqdn, &expected->rrset, replacement);
	if (!body || find_zone(provider, fqdn) != MAILMODE_OK)
		goto out;
	snprintf(path, sizeof(path), "/projects/%s/managedZones/%s/changes",
	         self->key.project, self->zone);
	rc = api_call(provider, "POST", path, body, "the change of the MX rrset",
	              &answer);
	if (rc == MAILMODE_ERR_UNKNOWN) {
		gw_diag_outcome_unknown(op);
		outcome = GW_REPLACE_UNKNOWN;
		goto out;
	}
	if (rc != MAILMODE_OK)
		goto out;
	if (answer.status != 200) {
		outcome = change_refused(provider, name, &answer);
		goto out;
	}
	if (!copy_field(answer.json, "id", id, sizeof(id)))
		snprintf(id, sizeof(id), "?");
	if (!copy_field(answer.json, "status", status, sizeof(status)))
		snprintf(status, sizeof(status), "pending");
	if (strcmp(id, "?") != 0)
		gw_follow_change(provider, "Google Cloud DNS", id, status, "done",
		                 POLL_PAUSE_MS, poll_change);
	outcome = GW_REPLACE_OK;
out:
	gw_https_answer_free(&answer);
	cJSON_free(body);
	return outcome;
}

/* ---- probe and plan ---------------------------------------------------- */

/* managedZones.testIamPermissions: which of PERMISSIONS the account has
 * on the zone.  Missing ones are listed in `missing`. */
static enum gw_replace_outcome test_permissions(struct gw_provider *provider,
                                                char *missing, size_t len)
{
	struct gc *self = provider->impl;
	const struct gw_op *op = provider->op;
	struct gw_https_answer answer;
	char path[GW_URL_MAX * 2], body[1024] = "{\"permissions\":[";
	const cJSON *granted, *g;
	size_t i;
	bool have;
	int rc;

	for (i = 0; PERMISSIONS[i]; i++)
		snprintf(body + strlen(body), sizeof(body) - strlen(body),
		         "%s\"%s\"", i ? "," : "", PERMISSIONS[i]);
	strcat(body, "]}");
	snprintf(path, sizeof(path), "/projects/%s/managedZones/%s:"
	         "testIamPermissions", self->key.project, self->zone);
	rc = api_call(provider, "POST", path, body, "testIamPermissions", &answer);
	if (rc != MAILMODE_OK)
		return rc == MAILMODE_ERR_DENIED ? GW_REPLACE_DENIED : GW_REPLACE_FAILED;
	if (answer.status != 200) {
		rc = refused(provider, "testIamPermissions on the managed zone",
		             &answer);
		gw_https_answer_free(&answer);
		return rc == MAILMODE_ERR_DENIED ? GW_REPLACE_DENIED : GW_REPLACE_FAILED;
	}
	granted = cJSON_GetObjectItemCaseSensitive(answer.json, "permissions");
	missing[0] = '\0';
	for (i = 0; PERMISSIONS[i]; i++) {
		have = false;
		cJSON_ArrayForEach(g, granted)
			if (cJSON_IsString(g) && strcmp(g->valuestring, PERMISSIONS[i]) == 0)
				have = true;
		if (!have)
			snprintf(missing + strlen(missing), len - strlen(missing),
			         "%s%s", missing[0] ? ", " : "", PERMISSIONS[i]);
	}
	gw_https_answer_free(&answer);
	(void)op;
	return GW_REPLACE_OK;
}

static enum gw_replace_outcome gc_probe_update(struct gw_provider *provider,
                                               const char *name)
{
	struct gc *self = provider->impl;
	const struct gw_op *op = provider->op;
	struct gw_rrset_version live;
	enum gw_replace_outcome outcome;
	char missing[512];
	int rc;

	rc = gc_get_rrset(provider, name, &live);
	if (rc != MAILMODE_OK)
		return rc == MAILMODE_ERR_DENIED ? GW_REPLACE_DENIED : GW_REPLACE_FAILED;
	outcome = test_permissions(provider, missing, sizeof(missing));
	if (outcome != GW_REPLACE_OK)
		return outcome;
	if (missing[0]) {
		op->ctx->host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
		                        "the service account %s lacks %s on managed "
		                        "zone %s of project %s: %s", self->key.email,
		                        missing, self->zone, self->key.project, GRANT);
		return GW_REPLACE_DENIED;
	}
	snprintf(provider->proven, sizeof(provider->proven),
	         "the service-account key gets a token, reads the zone's MX rrset, "
	         "and testIamPermissions grants every permission a change needs "
	         "(%s, ...); the change itself is a compare-and-swap, so nothing "
	         "else is left unproven", PERMISSIONS[0]);
	return GW_REPLACE_OK;
}

static int gc_describe_replace(struct gw_provider *provider, const char *name,
                               const struct gw_rrset_version *expected,
                               const struct gw_mx_set *replacement, char *buf,
                               size_t len)
{
	struct gc *self = provider->impl;

	gw_append_line(buf, len, "Google Cloud DNS changes.create in managed zone %s "
	            "(%s) of project %s, as %s:", self->zone, self->dns_name,
	            self->key.project, self->key.email);
	if (!expected->rrset.count)
		gw_append_line(buf, len, "  precondition: %s. has no MX rrset (the "
		            "addition fails if one exists)", name);
	gw_append_rrset(buf, len, "deletion (must match the live rrset exactly, or "
	             "Google refuses the whole change)", name, &expected->rrset);
	gw_append_rrset(buf, len, "addition", name, replacement);
	gw_append_line(buf, len, "  then: changes.get until the change is done");
	return MAILMODE_OK;
}

static void gc_close(struct gw_provider *provider)
{
	struct gc *self;

	if (!provider)
		return;
	self = provider->impl;
	gw_https_close(&self->api);
	gw_https_close(&self->oauth);
	EVP_PKEY_free(self->key.pkey);
	gw_provider_free(provider);
}

static const struct gw_provider_ops gc_ops = {
	.name = "gcloud",
	.get_rrset = gc_get_rrset,
	.replace_rrset = gc_replace_rrset,
	.probe_update = gc_probe_update,
	.describe_replace = gc_describe_replace,
	.close = gc_close,
};

int gw_gcloud_open(struct gw_op *op, struct gw_provider **out)
{
	struct gw_provider *provider;
	struct gc *self;
	int rc;

	*out = NULL;
	rc = gw_provider_new(op, &gc_ops, sizeof(*self), "Google Cloud DNS",
	                     &provider);
	if (rc != MAILMODE_OK)
		return rc;
	self = provider->impl;
	rc = load_key(op->ctx, op->cfg, &self->key, op->diag);
	snprintf(self->token_key, sizeof(self->token_key), "gcloud token\n%s\n"
	         "%s\n%s\n%s", op->cfg->dns_section, self->key.email,
	         self->key.key_id, self->key.token_uri);
	if (rc == MAILMODE_OK)
		rc = gw_https_open(op, &self->api);
	if (rc == MAILMODE_OK)
		rc = gw_https_open(op, &self->oauth);
	self->oauth.token_endpoint = true;
	if (rc != MAILMODE_OK) {
		gc_close(provider);
		return rc;
	}
	*out = provider;
	return MAILMODE_OK;
}
