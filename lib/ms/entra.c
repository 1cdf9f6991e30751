/*
 * Entra ID app-only sign-in: the client credentials grant against
 * {login_url}/{tenant}/oauth2/v2.0/token for the app's scope (Exchange
 * Online: https://outlook.office365.com/.default; Azure Resource Manager:
 * https://management.azure.com/.default), authenticated by a client secret
 * or by a JWT client assertion signed with the app certificate's private
 * key: PS256 with x5t#S256 (the SHA-256 thumbprint of the certificate), as
 * Microsoft's certificate-credentials page describes it now, or, when the
 * app says MS_ASSERTION_RS256, the older RS256 with x5t (SHA-1).
 *
 * Delegated sign-in (auth = device) is the device authorization grant
 * (RFC 8628, as Connect-ExchangeOnline -Device does it) run once by
 * `mailmode tenant login`, which leaves a refresh token in the host's
 * token cache; ms_token_get then refreshes from it (grant_type=
 * refresh_token) and stores the rotated refresh token.
 *
 * The access token's tid claim gives the tenant's GUID (the Exchange
 * client puts it in X-AnchorMailbox even when the tenant is configured by
 * name).  Tokens are cached in the caller's struct ms_token until five
 * minutes before they expire.
 */
#include "ms.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
/* Renew this long before expiry, so a token never dies mid-operation. */
#define TOKEN_REFRESH_MARGIN_MS (5 * 60 * 1000)
/* Lifetime of a client assertion; the platform accepts up to 10 min. */
#define ASSERTION_LIFETIME_S 600

void ms_token_forget(struct ms_token *cache)
{
	if (cache->access_token) {
		OPENSSL_cleanse(cache->access_token, strlen(cache->access_token));
		free(cache->access_token);
		cache->access_token = NULL;
	}
	cache->expires_at_ms = 0;
}


/* ------------------------------------------------------------------ */
/* Encodings */

/* application/x-www-form-urlencoded value (RFC 3986 unreserved kept). */
static void form_escape(struct ms_buf *buf, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char enc[4];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
		    c == '~') {
			enc[0] = (char)c;
			enc[1] = '\0';
		} else {
			enc[0] = '%';
			enc[1] = hex[c >> 4];
			enc[2] = hex[c & 15];
			enc[3] = '\0';
		}
		ms_buf_add(buf, enc);
	}
}

static void form_field(struct ms_buf *buf, const char *name, const char *value)
{
	if (buf->len)
		ms_buf_add(buf, "&");
	ms_buf_add(buf, name);
	ms_buf_add(buf, "=");
	form_escape(buf, value);
}

/* base64url without padding (RFC 7515 section 2). */
static char *base64url(const unsigned char *data, size_t len)
{
	size_t cap = 4 * ((len + 2) / 3) + 1;
	char *out = malloc(cap);
	int n;
	char *p;

	if (!out)
		return NULL;
	n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	if (n < 0) {
		free(out);
		return NULL;
	}
	out[n] = '\0';
	for (p = out; *p; p++) {
		if (*p == '+')
			*p = '-';
		else if (*p == '/')
			*p = '_';
		else if (*p == '=') {
			*p = '\0';
			break;
		}
	}
	return out;
}

static char *base64url_str(const char *s)
{
	return base64url((const unsigned char *)s, strlen(s));
}

/* base64url (padding optional) to a NUL-terminated string; NULL when it
 * is not base64url. */
static char *base64url_decode(const char *in, size_t len)
{
	size_t padded = (len + 3) / 4 * 4, i;
	char *text = malloc(padded + 1);
	unsigned char *out = malloc(padded / 4 * 3 + 1);
	int n = -1;

	if (!text || !out || len % 4 == 1)
		goto out;
	for (i = 0; i < len; i++) {
		char c = in[i];

		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (c == '+' || c == '/' || c == '=')
			goto out;
		text[i] = c;
	}
	for (; i < padded; i++)
		text[i] = '=';
	text[padded] = '\0';
	n = EVP_DecodeBlock(out, (unsigned char *)text, (int)padded);
	if (n >= 0) {
		n -= (int)(padded - len);   /* EVP_DecodeBlock counts the padding */
		out[n] = '\0';
	}
out:
	free(text);
	if (n < 0) {
		free(out);
		return NULL;
	}
	return (char *)out;
}

int ms_token_tid(const char *access_token, char out[37])
{
	const char *payload = strchr(access_token, '.');
	const char *end = payload ? strchr(payload + 1, '.') : NULL;
	char *json = NULL;
	cJSON *claims = NULL;
	const cJSON *tid;
	int rc = -1;

	out[0] = '\0';
	if (!end)
		goto out;
	json = base64url_decode(payload + 1, (size_t)(end - payload - 1));
	claims = json ? cJSON_Parse(json) : NULL;
	tid = cJSON_GetObjectItemCaseSensitive(claims, "tid");
	if (!cJSON_IsString(tid) || !ms_is_guid(tid->valuestring))
		goto out;
	memcpy(out, tid->valuestring, 37);
	rc = 0;
out:
	cJSON_Delete(claims);
	free(json);
	return rc;
}

/* ------------------------------------------------------------------ */
/* JWT client assertion */

/* Reads the certificate and key.  The certificate comes from
 * certificate_file, else from the key file (a combined PEM). */
static int load_credentials(const struct mailmode_host *host, const struct ms_app *app,
                            X509 **cert, EVP_PKEY **key,
                            struct mailmode_diag *diag)
{
	char *key_pem = NULL;
	BIO *bio = NULL;
	int rc;

	*cert = NULL;
	*key = NULL;
	rc = host->secret_load(host->handle, app->private_key_file, &key_pem,
	                       diag);
	if (rc != MAILMODE_OK)
		goto out;
	bio = BIO_new_mem_buf(key_pem, -1);
	if (!bio)
		goto nomem;
	*key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	bio = NULL;
	if (!*key || EVP_PKEY_get_base_id(*key) != EVP_PKEY_RSA) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "[%s]: private_key_file '%s' holds no unencrypted PEM RSA private key",
		               app->section, app->private_key_file);
		rc = MAILMODE_ERR_CONFIG;
		goto out;
	}
	if (app->certificate_file) {
		bio = BIO_new_file(app->certificate_file, "r");
		if (!bio) {
			host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
			               "[%s]: certificate_file %s cannot be read",
			               app->section, app->certificate_file);
			rc = MAILMODE_ERR_CONFIG;
			goto out;
		}
	} else {
		bio = BIO_new_mem_buf(key_pem, -1);
	}
	if (!bio)
		goto nomem;
	*cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (!*cert) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "[%s]: no PEM certificate in '%s'",
		               app->section,
		               app->certificate_file ? app->certificate_file
		                                         : app->private_key_file);
		rc = MAILMODE_ERR_CONFIG;
		goto out;
	}
	if (X509_check_private_key(*cert, *key) != 1) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "[%s]: the certificate does not belong to the private key in '%s'",
		               app->section, app->private_key_file);
		rc = MAILMODE_ERR_CONFIG;
		goto out;
	}
	rc = MAILMODE_OK;
	goto out;
nomem:
	host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory reading the certificate");
	rc = MAILMODE_ERR_NOMEM;
out:
	BIO_free(bio);
	if (key_pem)
		host->secret_free(host->handle, key_pem);
	if (rc != MAILMODE_OK) {
		X509_free(*cert);
		EVP_PKEY_free(*key);
		*cert = NULL;
		*key = NULL;
	}
	return rc;
}

/* x5t (SHA-1) or x5t#S256 (SHA-256): base64url of the digest of the
 * certificate's DER. */
static char *thumbprint(X509 *cert, const EVP_MD *md)
{
	unsigned char *der = NULL;
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;
	int len = i2d_X509(cert, &der);
	char *out = NULL;

	if (len <= 0)
		return NULL;
	if (EVP_Digest(der, (size_t)len, digest, &digest_len, md, NULL) == 1)
		out = base64url(digest, digest_len);
	OPENSSL_free(der);
	return out;
}

/* RS256 (RSASSA-PKCS1-v1_5) or PS256 (RSASSA-PSS, MGF1 with SHA-256 and a
 * salt as long as the digest, RFC 7518 section 3.5) over input. */
static char *jws_sign(EVP_PKEY *key, enum ms_assertion_alg alg, const char *input)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *sig = NULL;
	size_t siglen = 0;
	char *out = NULL;

	if (!md || EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, key) != 1)
		goto out;
	if (alg == MS_ASSERTION_PS256 &&
	    (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
	     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0 ||
	     EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) <= 0))
		goto out;
	if (EVP_DigestSign(md, NULL, &siglen, (const unsigned char *)input,
	                   strlen(input)) != 1)
		goto out;
	sig = malloc(siglen);
	if (!sig ||
	    EVP_DigestSign(md, sig, &siglen, (const unsigned char *)input,
	                   strlen(input)) != 1)
		goto out;
	out = base64url(sig, siglen);
out:
	free(sig);
	EVP_MD_CTX_free(md);
	return out;
}

int ms_jwt_assertion(const struct mailmode_host *host, const struct ms_app *app,
                     const char *token_url, char **assertion,
                     struct mailmode_diag *diag)
{
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	cJSON *header = NULL, *claims = NULL;
	char *x5t = NULL, *header_json = NULL, *claims_json = NULL;
	char *header_b64 = NULL, *claims_b64 = NULL, *signing_input = NULL;
	char *signature = NULL;
	char jti[37];
	int ps256 = app->assertion_alg == MS_ASSERTION_PS256;
	double now_s;
	int rc;

	*assertion = NULL;
	rc = load_credentials(host, app, &cert, &key, diag);
	if (rc != MAILMODE_OK)
		goto out;
	rc = MAILMODE_ERR_NOMEM;
	x5t = thumbprint(cert, ps256 ? EVP_sha256() : EVP_sha1());
	if (!x5t || ms_guid(jti) != 0)
		goto fail;
	now_s = (double)(host->clock_wall_ms(host->handle) / 1000);
	header = cJSON_CreateObject();
	claims = cJSON_CreateObject();
	if (!header || !claims ||
	    !cJSON_AddStringToObject(header, "alg", ps256 ? "PS256" : "RS256") ||
	    !cJSON_AddStringToObject(header, "typ", "JWT") ||
	    !cJSON_AddStringToObject(header, ps256 ? "x5t#S256" : "x5t", x5t) ||
	    !cJSON_AddStringToObject(claims, "aud", token_url) ||
	    !cJSON_AddStringToObject(claims, "iss", app->client_id) ||
	    !cJSON_AddStringToObject(claims, "sub", app->client_id) ||
	    !cJSON_AddStringToObject(claims, "jti", jti) ||
	    !cJSON_AddNumberToObject(claims, "nbf", now_s) ||
	    !cJSON_AddNumberToObject(claims, "iat", now_s) ||
	    !cJSON_AddNumberToObject(claims, "exp", now_s + ASSERTION_LIFETIME_S))
		goto fail;
	header_json = cJSON_PrintUnformatted(header);
	claims_json = cJSON_PrintUnformatted(claims);
	if (!header_json || !claims_json)
		goto fail;
	header_b64 = base64url_str(header_json);
	claims_b64 = base64url_str(claims_json);
	if (!header_b64 || !claims_b64)
		goto fail;
	signing_input = ms_printf("%s.%s", header_b64, claims_b64);
	if (!signing_input)
		goto fail;
	signature = jws_sign(key, app->assertion_alg, signing_input);
	if (!signature) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "signing the client assertion with '%s' failed",
		               app->private_key_file);
		rc = MAILMODE_ERR_FAILED;
		goto out;
	}
	*assertion = ms_printf("%s.%s", signing_input, signature);
	if (!*assertion)
		goto fail;
	rc = MAILMODE_OK;
	goto out;
fail:
	host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
	               "out of memory building the client assertion");
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	cJSON_Delete(header);
	cJSON_Delete(claims);
	free(x5t);
	free(header_json);
	free(claims_json);
	free(header_b64);
	free(claims_b64);
	free(signing_input);
	free(signature);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Token request */

/* What to do about a refusal of delegated sign-in (no secret or
 * certificate to check then). */
static void delegated_hint(const struct mailmode_host *host, const struct ms_app *app,
                           const char *text, struct mailmode_diag *diag)
{
	if (strstr(text, "AADSTS7000218"))
		host->diag_append(diag, "the app registration must allow public client flows (Authentication: 'Allow public client flows' = Yes) for auth = device");
	else if (strstr(text, "AADSTS65001"))
		host->diag_append(diag, "an admin must consent to the app in the tenant first: see 'mailmode tenant consent-url %s'",
		                  app->token_cache);
	else if (strstr(text, "AADSTS53003"))
		host->diag_append(diag, "Conditional Access blocks this sign-in (device code flow may be blocked in the tenant): use auth = app");
}

/* Fills diag from the identity platform's error body: the AADSTS code and
 * the first line of error_description (the rest is trace ids). */
static int token_error(const struct mailmode_host *host,
                       const struct ms_app *app,
                       const struct mailmode_http_response *resp,
                       struct mailmode_diag *diag)
{
	cJSON *body = cJSON_Parse(resp->body ? resp->body : "");
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(body, "error");
	const cJSON *description =
		cJSON_GetObjectItemCaseSensitive(body, "error_description");
	int rc;

	if (cJSON_IsString(description)) {
		const char *text = description->valuestring;
		int line_len = (int)strcspn(text, "\r\n");

		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "token request for tenant %s refused: %.*s",
		               app->tenant, line_len, text);
		host->diag_append(diag, "error: %s (HTTP %ld)",
		                  cJSON_IsString(error) ? error->valuestring : "?",
		                  resp->status);
		host->diag_append(diag, "client_id: %s", app->client_id);
		if (strstr(text, "AADSTS700016") || strstr(text, "AADSTS90002"))
			host->diag_append(diag, "check 'tenant' and 'client_id' in [%s]",
			                  app->section);
		else if (app->token_cache)
			delegated_hint(host, app, text, diag);
		else if (app->client_secret_file)
			host->diag_append(diag, "check the secret in '%s'",
			                  app->client_secret_file);
		else
			host->diag_append(diag, "check that the certificate is uploaded to the app registration");
		rc = resp->status >= 500 ? MAILMODE_ERR_FAILED : MAILMODE_ERR_DENIED;
		diag->retryable = resp->status >= 500;
	} else {
		host->diag_set(diag, MAILMODE_SEV_ERROR, resp->status >= 500,
		               "token endpoint for tenant %s answered HTTP %ld",
		               app->tenant, resp->status);
		rc = MAILMODE_ERR_FAILED;
	}
	cJSON_Delete(body);
	return rc;
}

/* What a grant wants back from token_post besides the access token. */
struct grant_answer {
	char error[64];                 /* the OAuth error code of a refusal */
	char *refresh_token;            /* a 200's refresh_token, or NULL */
};

static void grant_answer_clear(struct grant_answer *answer)
{
	if (answer->refresh_token) {
		OPENSSL_cleanse(answer->refresh_token, strlen(answer->refresh_token));
		free(answer->refresh_token);
		answer->refresh_token = NULL;
	}
}

/* Takes the access token of a 200 answer into cache (and the refresh
 * token into answer, when one is wanted). */
static int token_take(const struct mailmode_host *host, const struct ms_app *app,
                      const char *text, int64_t now, struct ms_token *cache,
                      struct grant_answer *answer, struct mailmode_diag *diag)
{
	cJSON *body = cJSON_Parse(text ? text : "");
	const cJSON *access = cJSON_GetObjectItemCaseSensitive(body, "access_token");
	const cJSON *expires = cJSON_GetObjectItemCaseSensitive(body, "expires_in");
	const cJSON *refresh = cJSON_GetObjectItemCaseSensitive(body, "refresh_token");
	double lifetime_s;
	int rc = MAILMODE_OK;

	if (!cJSON_IsString(access) || !*access->valuestring) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 1,
		               "token endpoint for tenant %s sent no access_token",
		               app->tenant);
		rc = MAILMODE_ERR_FAILED;
		goto out;
	}
	/* v2 sends a number, v1 sent a string: take both. */
	lifetime_s = cJSON_IsNumber(expires) ? expires->valuedouble
	           : cJSON_IsString(expires) ? atof(expires->valuestring) : 3599;
	/* A lifetime past a day (1e300, inf, NaN) or below zero is not one:
	 * the token is used for this call only, and the cast stays defined. */
	if (!(lifetime_s >= 0 && lifetime_s <= 86400))
		lifetime_s = 0;
	cache->access_token = ms_strdup(access->valuestring);
	if (!cache->access_token) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "out of memory requesting a token for tenant %s",
		               app->tenant);
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	if (answer && cJSON_IsString(refresh) && *refresh->valuestring &&
	    !(answer->refresh_token = ms_strdup(refresh->valuestring))) {
		ms_token_forget(cache);
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	cache->expires_at_ms = now + (int64_t)(lifetime_s * 1000);
	if (ms_token_tid(cache->access_token, cache->tid) != 0)
		host->log(host->handle, MAILMODE_LOG_DEBUG,
		          "the access token for tenant %s names no tid", app->tenant);
	host->log(host->handle, MAILMODE_LOG_DEBUG,
	          "token for tenant %s valid for %.0f s", app->tenant, lifetime_s);
out:
	if (cJSON_IsString(access))
		OPENSSL_cleanse(access->valuestring, strlen(access->valuestring));
	if (cJSON_IsString(refresh))
		OPENSSL_cleanse(refresh->valuestring, strlen(refresh->valuestring));
	cJSON_Delete(body);
	return rc;
}

/* The OAuth error code of a refusal into answer->error. */
static void grant_error_code(const struct mailmode_http_response *resp,
                             struct grant_answer *answer)
{
	cJSON *body = cJSON_Parse(resp->body ? resp->body : "");
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(body, "error");

	if (cJSON_IsString(error))
		snprintf(answer->error, sizeof(answer->error), "%s", error->valuestring);
	cJSON_Delete(body);
}

/* POSTs a form to url (a token or devicecode endpoint of the app's
 * login_url).  MAILMODE_OK when an answer arrived (resp is the caller's
 * then); the diagnostic names the request when none did. */
static int form_post(const struct mailmode_host *host,
                     struct mailmode_http_session *session,
                     const struct ms_app *app, const char *url,
                     const struct ms_buf *form,
                     struct mailmode_http_response *resp,
                     struct mailmode_diag *diag)
{
	struct mailmode_http_request req = { 0 };
	static const char *const headers[] = {
		"Content-Type: application/x-www-form-urlencoded",
		"Accept: application/json", NULL
	};
	int rc;

	req.method = "POST";
	req.url = url;
	req.headers = headers;
	req.body = form->data;
	req.body_len = form->len;
	req.ca_file = app->ca_file;
	req.timeout_ms = app->timeout_ms;
	req.retry_budget_ms = app->retry_budget_ms;
	rc = host->http_request(host->handle, session, &req, resp, diag);
	if (rc == MAILMODE_ERR_FAILED)
		ms_not_sent(host, app, "token request", diag);
	return rc;
}

/* POSTs a token request (form: the grant's fields) to the app's token
 * endpoint and takes the answer into cache; answer (may be NULL) gets
 * the error code of a refusal and the refresh token of a success.  Every
 * grant goes through here. */
static int token_post(const struct mailmode_host *host,
                      struct mailmode_http_session *session,
                      const struct ms_app *app, const char *token_url,
                      const struct ms_buf *form, struct ms_token *cache,
                      struct grant_answer *answer, struct mailmode_diag *diag)
{
	struct mailmode_http_response resp = { 0 };
	int64_t now = host->clock_wall_ms(host->handle);
	int rc;

	host->progress(host->handle, "getting a token for tenant %s", app->tenant);
	rc = form_post(host, session, app, token_url, form, &resp, diag);
	if (rc != MAILMODE_OK)
		return rc;
	if (resp.status != 200) {
		rc = token_error(host, app, &resp, diag);
		if (answer)
			grant_error_code(&resp, answer);
	} else {
		rc = token_take(host, app, resp.body, now, cache, answer, diag);
	}
	host->http_response_free(host->handle, &resp);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Delegated sign-in: the device authorization grant (RFC 8628), the
 * refresh token grant, and the token cache entry between them.  The entry
 * is JSON: the refresh token and what it was issued for (tenant, client
 * id, login URL), so a [tenant NAME] edited since the sign-in is "not
 * signed in" rather than a token sent to the wrong place. */

#define DEVICE_GRANT "urn:ietf:params:oauth:grant-type:device_code"
/* RFC 8628 section 3.5: slow_down adds 5 seconds to the interval. */
#define SLOW_DOWN_S 5
/* RFC 8628 section 3.2: the interval when the answer gives none. */
#define DEFAULT_INTERVAL_S 5

static int have_token_cache(const struct mailmode_host *host)
{
	return host->struct_size >= offsetof(struct mailmode_host, token_cache_store) +
	                            sizeof(host->token_cache_store) &&
	       host->token_cache_load && host->token_cache_store;
}

/* "<scope> offline_access": offline_access gets the refresh token. */
static char *delegated_scope(const struct ms_app *app)
{
	return ms_printf("%s offline_access", app->scope);
}

static int not_signed_in(const struct mailmode_host *host, const struct ms_app *app,
                         const char *why, struct mailmode_diag *diag)
{
	char cause[MAILMODE_DIAG_SUMMARY_MAX];

	snprintf(cause, sizeof(cause), "%s", why);
	host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
	               "tenant %s: not signed in: run 'mailmode tenant login %s'",
	               app->token_cache, app->token_cache);
	host->diag_append(diag, "%s", cause);
	return MAILMODE_ERR_DENIED;
}

static int cache_store(const struct mailmode_host *host, const struct ms_app *app,
                       const char *refresh_token, struct mailmode_diag *diag)
{
	cJSON *entry = cJSON_CreateObject();
	char *text = NULL;
	int rc = MAILMODE_ERR_NOMEM;

	if (!entry || !cJSON_AddStringToObject(entry, "tenant", app->tenant) ||
	    !cJSON_AddStringToObject(entry, "client_id", app->client_id) ||
	    !cJSON_AddStringToObject(entry, "login_url", app->login_url) ||
	    !cJSON_AddStringToObject(entry, "refresh_token", refresh_token) ||
	    !(text = cJSON_PrintUnformatted(entry))) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "out of memory storing the sign-in of tenant %s", app->token_cache);
		goto out;
	}
	rc = host->token_cache_store(host->handle, app->token_cache, text, diag);
out:
	if (text) {
		OPENSSL_cleanse(text, strlen(text));
		free(text);
	}
	if (entry) {
		const cJSON *rt = cJSON_GetObjectItemCaseSensitive(entry, "refresh_token");

		if (cJSON_IsString(rt))
			OPENSSL_cleanse(rt->valuestring, strlen(rt->valuestring));
	}
	cJSON_Delete(entry);
	return rc;
}

/* The refresh token of the entry when it was issued for this app. */
static const char *entry_refresh_token(const cJSON *entry, const struct ms_app *app)
{
	const char *rt = ms_field_str(entry, "refresh_token");

	if (!rt || !*rt || !ms_strcaseeq(ms_field_str(entry, "tenant"), app->tenant) ||
	    !ms_strcaseeq(ms_field_str(entry, "client_id"), app->client_id) ||
	    !ms_strcaseeq(ms_field_str(entry, "login_url"), app->login_url))
		return NULL;
	return rt;
}

/* grant_type=refresh_token with the cached refresh token; the rotated
 * one replaces it (the platform does not revoke the old one, so a store
 * that fails costs nothing but a warning). */
static int refresh_grant(const struct mailmode_host *host,
                         struct mailmode_http_session *session,
                         const struct ms_app *app, const char *token_url,
                         struct ms_token *cache, struct mailmode_diag *diag)
{
	struct grant_answer answer = { 0 };
	struct ms_buf form = { 0 };
	char *text = NULL, *scope = NULL;
	cJSON *entry = NULL;
	const char *rt;
	int rc;

	if (!have_token_cache(host))
		return ms_credentials_check(host, app, diag);
	rc = host->token_cache_load(host->handle, app->token_cache, &text, diag);
	if (rc != MAILMODE_OK)
		return rc;
	if (!text) {
		rc = not_signed_in(host, app, "no sign-in is cached for it", diag);
		goto out;
	}
	entry = cJSON_Parse(text);
	rt = entry_refresh_token(entry, app);
	if (!rt) {
		rc = not_signed_in(host, app,
		                   "the cached sign-in is unreadable, or for another tenant, client_id or cloud",
		                   diag);
		goto out;
	}
	scope = delegated_scope(app);
	form_field(&form, "client_id", app->client_id);
	form_field(&form, "grant_type", "refresh_token");
	form_field(&form, "refresh_token", rt);
	form_field(&form, "scope", scope ? scope : "");
	if (!scope || form.failed) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "out of memory refreshing the token of tenant %s", app->token_cache);
		rc = MAILMODE_ERR_NOMEM;
		goto out;
	}
	rc = token_post(host, session, app, token_url, &form, cache, &answer, diag);
	if (rc == MAILMODE_ERR_DENIED && strcmp(answer.error, "invalid_grant") == 0) {
		/* Expired, revoked, or a new MFA / Conditional Access demand:
		 * only a new sign-in helps. */
		rc = not_signed_in(host, app, diag->summary, diag);
	} else if (rc == MAILMODE_OK && answer.refresh_token &&
	           cache_store(host, app, answer.refresh_token, diag) != MAILMODE_OK) {
		host->log(host->handle, MAILMODE_LOG_WARNING,
		          "tenant %s: the rotated refresh token was not stored (%s); the old one stays",
		          app->token_cache, diag->summary);
		memset(diag, 0, sizeof(*diag));
	}
out:
	grant_answer_clear(&answer);
	if (form.data)
		OPENSSL_cleanse(form.data, form.len);
	ms_buf_free(&form);
	if (entry) {
		const cJSON *item = cJSON_GetObjectItemCaseSensitive(entry, "refresh_token");

		if (cJSON_IsString(item))
			OPENSSL_cleanse(item->valuestring, strlen(item->valuestring));
	}
	cJSON_Delete(entry);
	if (text)
		host->secret_free(host->handle, text);
	free(scope);
	return rc;
}

void ms_device_code_free(struct ms_device_code *dc)
{
	if (dc->device_code)
		OPENSSL_cleanse(dc->device_code, strlen(dc->device_code));
	free(dc->device_code);
	free(dc->user_code);
	free(dc->verification_uri);
	free(dc->message);
	memset(dc, 0, sizeof(*dc));
}

/* The devicecode endpoint's 200 answer into dc. */
static int device_code_take(const struct mailmode_host *host, const struct ms_app *app,
                            const char *text, struct ms_device_code *dc,
                            struct mailmode_diag *diag)
{
	cJSON *body = cJSON_Parse(text ? text : "");
	const char *device_code = ms_field_str(body, "device_code");
	const char *user_code = ms_field_str(body, "user_code");
	const char *uri = ms_field_str(body, "verification_uri");
	const char *message = ms_field_str(body, "message");
	long expires_in = ms_field_long(body, "expires_in", 900);
	int rc = MAILMODE_OK;

	if (!device_code || !user_code || !uri) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "devicecode endpoint for tenant %s sent no device_code, user_code or verification_uri",
		               app->tenant);
		rc = MAILMODE_ERR_FAILED;
		goto out;
	}
	dc->device_code = ms_strdup(device_code);
	dc->user_code = ms_strdup(user_code);
	dc->verification_uri = ms_strdup(uri);
	dc->message = message ? ms_strdup(message) : NULL;
	dc->interval_s = ms_field_long(body, "interval", DEFAULT_INTERVAL_S);
	if (dc->interval_s < 1 || dc->interval_s > 60)
		dc->interval_s = DEFAULT_INTERVAL_S;
	if (expires_in < 1 || expires_in > 86400)
		expires_in = 900;
	dc->expires_at_ms = host->clock_wall_ms(host->handle) + (int64_t)expires_in * 1000;
	if (!dc->device_code || !dc->user_code || !dc->verification_uri ||
	    (message && !dc->message)) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory signing in to tenant %s",
		               app->tenant);
		rc = MAILMODE_ERR_NOMEM;
	}
out:
	if (device_code)
		OPENSSL_cleanse((char *)device_code, strlen(device_code));
	cJSON_Delete(body);
	if (rc != MAILMODE_OK)
		ms_device_code_free(dc);
	return rc;
}

int ms_device_code_start(const struct mailmode_host *host,
                         struct mailmode_http_session *session,
                         const struct ms_app *app, struct ms_device_code *dc,
                         struct mailmode_diag *diag)
{
	struct mailmode_http_response resp = { 0 };
	struct ms_buf form = { 0 };
	char *url, *scope;
	int rc = MAILMODE_ERR_NOMEM;

	memset(dc, 0, sizeof(*dc));
	url = ms_printf("%s/%s/oauth2/v2.0/devicecode", app->login_url, app->tenant);
	scope = delegated_scope(app);
	form_field(&form, "client_id", app->client_id);
	form_field(&form, "scope", scope ? scope : "");
	if (!url || !scope || form.failed) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory signing in to tenant %s",
		               app->tenant);
		goto out;
	}
	host->progress(host->handle, "asking tenant %s for a sign-in code", app->tenant);
	rc = form_post(host, session, app, url, &form, &resp, diag);
	if (rc != MAILMODE_OK)
		goto out;
	if (resp.status != 200)
		rc = token_error(host, app, &resp, diag);
	else
		rc = device_code_take(host, app, resp.body, dc, diag);
	host->http_response_free(host->handle, &resp);
out:
	ms_buf_free(&form);
	free(scope);
	free(url);
	return rc;
}

/* One poll's refusal: 1 to poll again (the interval maybe longer), 0 to
 * stop with the diagnostic a line of its own. */
static int poll_again(const struct mailmode_host *host, const struct ms_app *app,
                      const char *error, struct ms_device_code *dc,
                      struct mailmode_diag *diag)
{
	if (strcmp(error, "authorization_pending") == 0)
		return 1;
	if (strcmp(error, "slow_down") == 0) {
		dc->interval_s += SLOW_DOWN_S;
		host->log(host->handle, MAILMODE_LOG_DEBUG,
		          "tenant %s: slow_down: polling every %ld s", app->token_cache,
		          dc->interval_s);
		return 1;
	}
	if (strcmp(error, "expired_token") == 0)
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "tenant %s: the code expired before the sign-in: run 'mailmode tenant login %s' again",
		               app->token_cache, app->token_cache);
	else if (strcmp(error, "authorization_declined") == 0 ||
	         strcmp(error, "access_denied") == 0)
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "tenant %s: the sign-in was declined at %s", app->token_cache,
		               dc->verification_uri);
	else if (strcmp(error, "bad_verification_code") == 0)
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "tenant %s: the platform does not know the device code it issued: run 'mailmode tenant login %s' again",
		               app->token_cache, app->token_cache);
	return 0;
}

int ms_device_code_poll(const struct mailmode_host *host,
                        struct mailmode_http_session *session,
                        const struct ms_app *app, struct ms_device_code *dc,
                        struct ms_token *cache, struct mailmode_diag *diag)
{
	struct grant_answer answer = { 0 };
	struct ms_buf form = { 0 };
	char *url = ms_printf("%s/%s/oauth2/v2.0/token", app->login_url, app->tenant);
	int rc = MAILMODE_ERR_NOMEM;

	form_field(&form, "grant_type", DEVICE_GRANT);
	form_field(&form, "client_id", app->client_id);
	form_field(&form, "device_code", dc->device_code);
	if (!url || form.failed) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "out of memory signing in to tenant %s",
		               app->tenant);
		goto out;
	}
	for (;;) {
		if (host->clock_wall_ms(host->handle) + dc->interval_s * 1000 >= dc->expires_at_ms) {
			poll_again(host, app, "expired_token", dc, diag);
			rc = MAILMODE_ERR_DENIED;
			break;
		}
		host->progress(host->handle, "waiting for the sign-in at %s with code %s",
		               dc->verification_uri, dc->user_code);
		host->sleep_ms(host->handle, dc->interval_s * 1000);
		grant_answer_clear(&answer);
		answer.error[0] = '\0';
		ms_token_forget(cache);
		rc = token_post(host, session, app, url, &form, cache, &answer, diag);
		if (rc != MAILMODE_ERR_DENIED || !poll_again(host, app, answer.error, dc, diag))
			break;
	}
	if (rc == MAILMODE_OK && !answer.refresh_token) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "tenant %s: the sign-in gave no refresh token (offline_access not granted)",
		               app->token_cache);
		rc = MAILMODE_ERR_DENIED;
	} else if (rc == MAILMODE_OK) {
		rc = cache_store(host, app, answer.refresh_token, diag);
	}
out:
	grant_answer_clear(&answer);
	if (form.data)
		OPENSSL_cleanse(form.data, form.len);
	ms_buf_free(&form);
	free(url);
	return rc;
}

/* ------------------------------------------------------------------ */
/* National clouds and admin consent */

/* Hosts from /work/shared/ref/m365-identity-and-limits.md section 3:
 * login hosts per Microsoft's national-cloud page (NATC; China: the
 * login.partner.microsoftonline.cn it names), admin API hosts and scopes
 * as the EXO REST clients use them (ScubaGear for GCC High and DoD: DoD's
 * admin API is outlook-dod.office365.us, webmail.apps.mil being only its
 * PowerShell ConnectionUri; China: partner.outlook.cn). */
static const struct ms_cloud clouds[] = {
	{ "global", MS_LOGIN_URL, MS_EXO_API_URL, MS_SCOPE_EXO },
	{ "gcc-high", "https://login.microsoftonline.us", "https://outlook.office365.us",
	  "https://outlook.office365.us/.default" },
	{ "dod", "https://login.microsoftonline.us", "https://outlook-dod.office365.us",
	  "https://outlook-dod.office365.us/.default" },
	{ "china", "https://login.partner.microsoftonline.cn", "https://partner.outlook.cn",
	  "https://partner.outlook.cn/.default" },
};

const struct ms_cloud *ms_cloud_find(const char *name)
{
	size_t i;

	if (!name || !*name)
		return &clouds[0];
	for (i = 0; i < sizeof(clouds) / sizeof(clouds[0]); i++)
		if (ms_strcaseeq(clouds[i].name, name))
			return &clouds[i];
	return NULL;
}

int ms_signin_keys(const struct mailmode_host *host, const char *section,
                   enum ms_auth *auth, const struct ms_cloud **cloud,
                   struct mailmode_diag *diag)
{
	const char *value = host->config_get(host->handle, section, "auth");

	if (!value || !*value || ms_strcaseeq(value, "app")) {
		*auth = MS_AUTH_APP;
	} else if (ms_strcaseeq(value, "device")) {
		*auth = MS_AUTH_DEVICE;
	} else {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "[%s]: 'auth' must be app or device, not '%s'", section, value);
		return MAILMODE_ERR_CONFIG;
	}
	value = host->config_get(host->handle, section, "cloud");
	*cloud = ms_cloud_find(value);
	if (!*cloud) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "[%s]: 'cloud' must be one of %s, not '%s'", section,
		               MS_CLOUD_NAMES, value);
		return MAILMODE_ERR_CONFIG;
	}
	return MAILMODE_OK;
}

char *ms_admin_consent_url(const struct ms_app *app, const char *redirect_uri)
{
	struct ms_buf url = { 0 };

	/* Query values as Microsoft prints them (':' and '/' are allowed in
	 * a query, RFC 3986 section 3.4); the redirect URI escaped. */
	ms_buf_addf(&url, "%s/%s/adminconsent?client_id=%s&scope=%s", app->login_url,
	            app->tenant, app->client_id, app->scope);
	if (redirect_uri) {
		ms_buf_add(&url, "&redirect_uri=");
		form_escape(&url, redirect_uri);
	}
	if (url.failed) {
		ms_buf_free(&url);
		return NULL;
	}
	return url.data;
}

int ms_token_get(const struct mailmode_host *host,
                 struct mailmode_http_session *session,
                 const struct ms_app *app, struct ms_token *cache,
                 const char **token, struct mailmode_diag *diag)
{
	struct ms_buf form = { 0 };
	char *token_url = NULL, *secret = NULL, *assertion = NULL;
	int64_t now = host->clock_wall_ms(host->handle);
	int rc;

	*token = NULL;
	if (cache->access_token &&
	    now < cache->expires_at_ms - TOKEN_REFRESH_MARGIN_MS) {
		*token = cache->access_token;
		return MAILMODE_OK;
	}
	ms_token_forget(cache);

	token_url = ms_printf("%s/%s/oauth2/v2.0/token", app->login_url, app->tenant);
	if (!token_url)
		goto nomem;
	if (app->token_cache) {
		rc = refresh_grant(host, session, app, token_url, cache, diag);
		if (rc == MAILMODE_OK)
			*token = cache->access_token;
		goto out;
	}
	form_field(&form, "client_id", app->client_id);
	form_field(&form, "scope", app->scope);
	form_field(&form, "grant_type", "client_credentials");
	if (app->client_secret_file) {
		rc = host->secret_load(host->handle, app->client_secret_file,
		                       &secret, diag);
		if (rc != MAILMODE_OK)
			goto out;
		form_field(&form, "client_secret", secret);
	} else {
		rc = ms_jwt_assertion(host, app, token_url, &assertion, diag);
		if (rc != MAILMODE_OK)
			goto out;
		form_field(&form, "client_assertion_type", ASSERTION_TYPE);
		form_field(&form, "client_assertion", assertion);
	}
	if (form.failed)
		goto nomem;
	rc = token_post(host, session, app, token_url, &form, cache, NULL, diag);
	if (rc == MAILMODE_OK)
		*token = cache->access_token;
	goto out;
nomem:
	host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
	               "out of memory requesting a token for tenant %s",
	               app->tenant);
	rc = MAILMODE_ERR_NOMEM;
out:
	if (form.data)
		OPENSSL_cleanse(form.data, form.len);
	ms_buf_free(&form);
	if (secret)
		host->secret_free(host->handle, secret);
	free(assertion);
	free(token_url);
	return rc;
}

int ms_credentials_check(const struct mailmode_host *host, const struct ms_app *app,
                         struct mailmode_diag *diag)
{
	char *secret = NULL;
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	int rc;

	if (app->token_cache) {
		/* Delegated: nothing to read until the token is wanted. */
		if (have_token_cache(host))
			return MAILMODE_OK;
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "[%s]: auth = device needs a mailmode with the token cache (plugin ABI 1.4)",
		               app->section);
		return MAILMODE_ERR_CONFIG;
	}
	if (app->client_secret_file) {
		rc = host->secret_load(host->handle, app->client_secret_file,
		                       &secret, diag);
		if (secret)
			host->secret_free(host->handle, secret);
		return rc;
	}
	rc = load_credentials(host, app, &cert, &key, diag);
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}

void ms_not_sent(const struct mailmode_host *host, const struct ms_app *app,
                 const char *what, struct mailmode_diag *diag)
{
	char cause[MAILMODE_DIAG_SUMMARY_MAX];

	snprintf(cause, sizeof(cause), "%s", diag->summary);
	host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "[%s]: %s: %s", app->section,
	               what, cause);
}
