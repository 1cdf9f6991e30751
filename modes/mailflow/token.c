/*
 * App-only OAuth2 for the Exchange Online admin API: the client credentials
 * grant against {login_url}/{tenant}/oauth2/v2.0/token with the scope
 * https://outlook.office365.com/.default, authenticated by a client secret
 * or by a JWT client assertion signed with the app certificate's private
 * key: PS256 with x5t#S256 (the SHA-256 thumbprint of the certificate), as
 * Microsoft's certificate-credentials page describes it now, or, when the
 * profile says assertion_alg = RS256, the older RS256 with x5t (SHA-1).
 *
 * The access token's tid claim gives the tenant's GUID, which the admin API
 * client puts in X-AnchorMailbox even when the tenant is configured by name.
 *
 * Tokens are cached per tenant entry (token URL + client id) until five
 * minutes before they expire, and each tenant entry keeps one HTTP session
 * so connections are reused across calls.
 */
#include "mailflow.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_SCOPE "https://outlook.office365.com/.default"
#define ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
/* Renew this long before expiry, so a token never dies mid-operation. */
#define TOKEN_REFRESH_MARGIN_MS (5 * 60 * 1000)
/* Lifetime of a client assertion; the platform accepts up to 10 min. */
#define ASSERTION_LIFETIME_S 600

/* ------------------------------------------------------------------ */
/* Tenant entries */

static void tenant_free(const struct mailmode_host *host, struct mf_tenant *t)
{
	if (!t)
		return;
	if (t->session)
		host->http_session_free(host->handle, t->session);
	if (t->access_token) {
		OPENSSL_cleanse(t->access_token, strlen(t->access_token));
		free(t->access_token);
	}
	pthread_mutex_destroy(&t->lock);
	cJSON_Delete(t->accepted);
	free(t->key);
	free(t);
}

int mf_tenant_acquire(struct mf_ctx *ctx, const struct mf_profile *profile,
                      struct mf_tenant **out, struct mailmode_diag *diag)
{
	const struct mailmode_host *host = ctx->host;
	struct mf_tenant *t = NULL;
	char *key;
	int rc = MAILMODE_ERR_NOMEM;

	*out = NULL;
	key = mf_printf("%s/%s\n%s", profile->login_url, profile->tenant,
	                profile->client_id);
	if (!key)
		goto nomem;
	pthread_mutex_lock(&ctx->lock);
	for (t = ctx->tenants; t; t = t->next)
		if (strcmp(t->key, key) == 0)
			break;
	if (!t) {
		t = calloc(1, sizeof(*t));
		if (!t || pthread_mutex_init(&t->lock, NULL) != 0) {
			free(t);
			pthread_mutex_unlock(&ctx->lock);
			goto nomem;
		}
		t->key = key;
		key = NULL;
		t->session = host->http_session_new(host->handle);
		if (!t->session || mf_guid(t->connection_id) != 0) {
			tenant_free(host, t);
			pthread_mutex_unlock(&ctx->lock);
			goto nomem;
		}
		t->next = ctx->tenants;
		ctx->tenants = t;
	}
	pthread_mutex_unlock(&ctx->lock);
	/* Held for the whole operation: the tenant's connectors and rule
	 * priorities are shared by its domains, and the session must not be
	 * used by two threads at once. */
	pthread_mutex_lock(&t->lock);
	*out = t;
	rc = MAILMODE_OK;
	goto out;
nomem:
	host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
	               "out of memory preparing the connection to tenant %s",
	               profile->tenant);
out:
	free(key);
	return rc;
}

void mf_tenant_release(struct mf_tenant *tenant)
{
	if (tenant)
		pthread_mutex_unlock(&tenant->lock);
}

void mf_tenants_free(struct mf_ctx *ctx)
{
	while (ctx->tenants) {
		struct mf_tenant *next = ctx->tenants->next;

		tenant_free(ctx->host, ctx->tenants);
		ctx->tenants = next;
	}
}

void mf_token_forget(struct mf_ctx *ctx, struct mf_tenant *tenant)
{
	(void)ctx;
	if (tenant->access_token) {
		OPENSSL_cleanse(tenant->access_token, strlen(tenant->access_token));
		free(tenant->access_token);
		tenant->access_token = NULL;
	}
	tenant->expires_at_ms = 0;
}

/* ------------------------------------------------------------------ */
/* Encodings */

/* application/x-www-form-urlencoded value (RFC 3986 unreserved kept). */
static void form_escape(struct mf_buf *buf, const char *s)
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
		mf_buf_add(buf, enc);
	}
}

static void form_field(struct mf_buf *buf, const char *name, const char *value)
{
	if (buf->len)
		mf_buf_add(buf, "&");
	mf_buf_add(buf, name);
	mf_buf_add(buf, "=");
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

int mf_is_guid(const char *s)
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

int mf_token_tid(const char *access_token, char out[37])
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
	if (!cJSON_IsString(tid) || !mf_is_guid(tid->valuestring))
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
static int load_credentials(struct mf_ctx *ctx, const struct mf_profile *profile,
                            X509 **cert, EVP_PKEY **key,
                            struct mailmode_diag *diag)
{
	const struct mailmode_host *host = ctx->host;
	char *key_pem = NULL;
	BIO *bio = NULL;
	int rc;

	*cert = NULL;
	*key = NULL;
	rc = host->secret_load(host->handle, profile->private_key_file, &key_pem,
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
		               profile->tenant_section, profile->private_key_file);
		rc = MAILMODE_ERR_CONFIG;
		goto out;
	}
	if (profile->certificate_file) {
		bio = BIO_new_file(profile->certificate_file, "r");
		if (!bio) {
			host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
			               "[%s]: certificate_file %s cannot be read",
			               profile->tenant_section, profile->certificate_file);
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
		               profile->tenant_section,
		               profile->certificate_file ? profile->certificate_file
		                                         : profile->private_key_file);
		rc = MAILMODE_ERR_CONFIG;
		goto out;
	}
	if (X509_check_private_key(*cert, *key) != 1) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "[%s]: the certificate does not belong to the private key in '%s'",
		               profile->tenant_section, profile->private_key_file);
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
static char *jws_sign(EVP_PKEY *key, enum mf_assertion_alg alg, const char *input)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *sig = NULL;
	size_t siglen = 0;
	char *out = NULL;

	if (!md || EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, key) != 1)
		goto out;
	if (alg == MF_ASSERTION_PS256 &&
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

int mf_jwt_assertion(struct mf_ctx *ctx, const struct mf_profile *profile,
                     const char *token_url, char **assertion,
                     struct mailmode_diag *diag)
{
	const struct mailmode_host *host = ctx->host;
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	cJSON *header = NULL, *claims = NULL;
	char *x5t = NULL, *header_json = NULL, *claims_json = NULL;
	char *header_b64 = NULL, *claims_b64 = NULL, *signing_input = NULL;
	char *signature = NULL;
	char jti[37];
	int ps256 = profile->assertion_alg == MF_ASSERTION_PS256;
	double now_s;
	int rc;

	*assertion = NULL;
	rc = load_credentials(ctx, profile, &cert, &key, diag);
	if (rc != MAILMODE_OK)
		goto out;
	rc = MAILMODE_ERR_NOMEM;
	x5t = thumbprint(cert, ps256 ? EVP_sha256() : EVP_sha1());
	if (!x5t || mf_guid(jti) != 0)
		goto fail;
	now_s = (double)(host->clock_wall_ms(host->handle) / 1000);
	header = cJSON_CreateObject();
	claims = cJSON_CreateObject();
	if (!header || !claims ||
	    !cJSON_AddStringToObject(header, "alg", ps256 ? "PS256" : "RS256") ||
	    !cJSON_AddStringToObject(header, "typ", "JWT") ||
	    !cJSON_AddStringToObject(header, ps256 ? "x5t#S256" : "x5t", x5t) ||
	    !cJSON_AddStringToObject(claims, "aud", token_url) ||
	    !cJSON_AddStringToObject(claims, "iss", profile->client_id) ||
	    !cJSON_AddStringToObject(claims, "sub", profile->client_id) ||
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
	signing_input = mf_printf("%s.%s", header_b64, claims_b64);
	if (!signing_input)
		goto fail;
	signature = jws_sign(key, profile->assertion_alg, signing_input);
	if (!signature) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
		               "signing the client assertion with '%s' failed",
		               profile->private_key_file);
		rc = MAILMODE_ERR_FAILED;
		goto out;
	}
	*assertion = mf_printf("%s.%s", signing_input, signature);
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
                       const struct mf_profile *profile,
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
		               profile->tenant, line_len, text);
		host->diag_append(diag, "error: %s (HTTP %ld)",
		                  cJSON_IsString(error) ? error->valuestring : "?",
		                  resp->status);
		host->diag_append(diag, "client_id: %s", profile->client_id);
		if (strstr(text, "AADSTS700016") || strstr(text, "AADSTS90002"))
			host->diag_append(diag, "check 'tenant' and 'client_id' in [%s]",
			                  profile->tenant_section);
		else if (profile->client_secret_file)
			host->diag_append(diag, "check the secret in '%s'",
			                  profile->client_secret_file);
		else
			host->diag_append(diag, "check that the certificate is uploaded to the app registration");
		rc = resp->status >= 500 ? MAILMODE_ERR_FAILED : MAILMODE_ERR_DENIED;
		diag->retryable = resp->status >= 500;
	} else {
		host->diag_set(diag, MAILMODE_SEV_ERROR, resp->status >= 500,
		               "token endpoint for tenant %s answered HTTP %ld",
		               profile->tenant, resp->status);
		rc = MAILMODE_ERR_FAILED;
	}
	cJSON_Delete(body);
	return rc;
}

int mf_token_get(struct mf_ctx *ctx, struct mf_tenant *tenant,
                 const struct mf_profile *profile, const char **token,
                 struct mailmode_diag *diag)
{
	const struct mailmode_host *host = ctx->host;
	struct mailmode_http_request req = { 0 };
	struct mailmode_http_response resp = { 0 };
	struct mf_buf form = { 0 };
	char *token_url = NULL, *secret = NULL, *assertion = NULL;
	cJSON *body = NULL;
	const cJSON *access, *expires;
	static const char *const headers[] = {
		"Content-Type: application/x-www-form-urlencoded",
		"Accept: application/json", NULL
	};
	int64_t now = host->clock_wall_ms(host->handle);
	double lifetime_s;
	int have_response = 0;
	int rc;

	*token = NULL;
	if (tenant->access_token &&
	    now < tenant->expires_at_ms - TOKEN_REFRESH_MARGIN_MS) {
		*token = tenant->access_token;
		return MAILMODE_OK;
	}
	mf_token_forget(ctx, tenant);

	token_url = mf_printf("%s/%s/oauth2/v2.0/token", profile->login_url,
	                      profile->tenant);
	if (!token_url)
		goto nomem;
	form_field(&form, "client_id", profile->client_id);
	form_field(&form, "scope", TOKEN_SCOPE);
	form_field(&form, "grant_type", "client_credentials");
	if (profile->client_secret_file) {
		rc = host->secret_load(host->handle, profile->client_secret_file,
		                       &secret, diag);
		if (rc != MAILMODE_OK)
			goto out;
		form_field(&form, "client_secret", secret);
	} else {
		rc = mf_jwt_assertion(ctx, profile, token_url, &assertion, diag);
		if (rc != MAILMODE_OK)
			goto out;
		form_field(&form, "client_assertion_type", ASSERTION_TYPE);
		form_field(&form, "client_assertion", assertion);
	}
	if (form.failed)
		goto nomem;

	req.method = "POST";
	req.url = token_url;
	req.headers = headers;
	req.body = form.data;
	req.body_len = form.len;
	req.ca_file = profile->ca_file;
	req.timeout_ms = profile->timeout_ms;
	req.retry_budget_ms = profile->retry_budget_ms;
	host->progress(host->handle, "getting a token for tenant %s",
	               profile->tenant);
	rc = host->http_request(host->handle, tenant->session, &req, &resp, diag);
	if (rc != MAILMODE_OK) {
		if (rc == MAILMODE_ERR_FAILED)
			mf_not_sent(host, profile, "token request", diag);
		goto out;
	}
	have_response = 1;
	if (resp.status != 200) {
		rc = token_error(host, profile, &resp, diag);
		goto out;
	}
	body = cJSON_Parse(resp.body ? resp.body : "");
	access = cJSON_GetObjectItemCaseSensitive(body, "access_token");
	expires = cJSON_GetObjectItemCaseSensitive(body, "expires_in");
	if (!cJSON_IsString(access) || !*access->valuestring) {
		host->diag_set(diag, MAILMODE_SEV_ERROR, 1,
		               "token endpoint for tenant %s sent no access_token",
		               profile->tenant);
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
	tenant->access_token = mf_strdup(access->valuestring);
	if (!tenant->access_token)
		goto nomem;
	tenant->expires_at_ms = now + (int64_t)(lifetime_s * 1000);
	if (mf_token_tid(tenant->access_token, tenant->tenant_guid) != 0)
		host->log(host->handle, MAILMODE_LOG_DEBUG,
		          "the access token for tenant %s names no tid", profile->tenant);
	*token = tenant->access_token;
	host->log(host->handle, MAILMODE_LOG_DEBUG,
	          "token for tenant %s valid for %.0f s",
	          profile->tenant, lifetime_s);
	rc = MAILMODE_OK;
	goto out;
nomem:
	host->diag_set(diag, MAILMODE_SEV_ERROR, 0,
	               "out of memory requesting a token for tenant %s",
	               profile->tenant);
	rc = MAILMODE_ERR_NOMEM;
out:
	if (have_response)
		host->http_response_free(host->handle, &resp);
	if (body) {
		access = cJSON_GetObjectItemCaseSensitive(body, "access_token");
		if (cJSON_IsString(access))
			OPENSSL_cleanse(access->valuestring, strlen(access->valuestring));
		cJSON_Delete(body);
	}
	if (form.data)
		OPENSSL_cleanse(form.data, form.len);
	mf_buf_free(&form);
	if (secret)
		host->secret_free(host->handle, secret);
	free(assertion);
	free(token_url);
	return rc;
}

int mf_credentials_check(struct mf_ctx *ctx, const struct mf_profile *profile,
                         struct mailmode_diag *diag)
{
	const struct mailmode_host *host = ctx->host;
	char *secret = NULL;
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	int rc;

	if (profile->client_secret_file) {
		rc = host->secret_load(host->handle, profile->client_secret_file,
		                       &secret, diag);
		if (secret)
			host->secret_free(host->handle, secret);
		return rc;
	}
	rc = load_credentials(ctx, profile, &cert, &key, diag);
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}
