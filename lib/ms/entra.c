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

/* Takes the access token of a 200 answer into cache. */
static int token_take(const struct mailmode_host *host, const struct ms_app *app,
                      const char *answer, int64_t now, struct ms_token *cache,
                      struct mailmode_diag *diag)
{
	cJSON *body = cJSON_Parse(answer ? answer : "");
	const cJSON *access = cJSON_GetObjectItemCaseSensitive(body, "access_token");
	const cJSON *expires = cJSON_GetObjectItemCaseSensitive(body, "expires_in");
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
	cache->expires_at_ms = now + (int64_t)(lifetime_s * 1000);
	if (ms_token_tid(cache->access_token, cache->tid) != 0)
		host->log(host->handle, MAILMODE_LOG_DEBUG,
		          "the access token for tenant %s names no tid", app->tenant);
	host->log(host->handle, MAILMODE_LOG_DEBUG,
	          "token for tenant %s valid for %.0f s", app->tenant, lifetime_s);
out:
	if (cJSON_IsString(access))
		OPENSSL_cleanse(access->valuestring, strlen(access->valuestring));
	cJSON_Delete(body);
	return rc;
}

/* POSTs a token request (form: the grant's fields) to the app's token
 * endpoint and takes the answer into cache.  Every grant goes through
 * here. */
static int token_post(const struct mailmode_host *host,
                      struct mailmode_http_session *session,
                      const struct ms_app *app, const char *token_url,
                      const struct ms_buf *form, struct ms_token *cache,
                      struct mailmode_diag *diag)
{
	struct mailmode_http_request req = { 0 };
	struct mailmode_http_response resp = { 0 };
	static const char *const headers[] = {
		"Content-Type: application/x-www-form-urlencoded",
		"Accept: application/json", NULL
	};
	int64_t now = host->clock_wall_ms(host->handle);
	int rc;

	req.method = "POST";
	req.url = token_url;
	req.headers = headers;
	req.body = form->data;
	req.body_len = form->len;
	req.ca_file = app->ca_file;
	req.timeout_ms = app->timeout_ms;
	req.retry_budget_ms = app->retry_budget_ms;
	host->progress(host->handle, "getting a token for tenant %s", app->tenant);
	rc = host->http_request(host->handle, session, &req, &resp, diag);
	if (rc != MAILMODE_OK) {
		if (rc == MAILMODE_ERR_FAILED)
			ms_not_sent(host, app, "token request", diag);
		return rc;
	}
	if (resp.status != 200)
		rc = token_error(host, app, &resp, diag);
	else
		rc = token_take(host, app, resp.body, now, cache, diag);
	host->http_response_free(host->handle, &resp);
	return rc;
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
	rc = token_post(host, session, app, token_url, &form, cache, diag);
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
