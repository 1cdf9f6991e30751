/*
 * The Microsoft client shared by the plugins (linked into each as the
 * convenience library lib/ms/libms.la, hidden, so a plugin still exports
 * only its descriptor; doc/ms-client.md says why it is a library and not
 * a host service):
 *
 *   entra.c  Entra ID (the Microsoft identity platform): the client
 *            credentials grant with a client secret or a certificate
 *            (JWT client assertion, PS256 + x5t#S256 or RS256 + x5t), for
 *            any scope (Exchange Online, Azure Resource Manager, ...),
 *            a token cache and the token's tid claim.
 *   exo.c    the Exchange Online admin API (InvokeCommand): paging,
 *            warnings, X-AnchorMailbox, error bodies and their classes.
 *   util.c   small helpers both use (growable string, GUIDs, field access
 *            for the shapes Exchange answers in).
 *
 * Everything goes through the host's HTTP and secret services (struct
 * mailmode_host), so TLS, retries of 408/429/503/504 with Retry-After,
 * the file permission checks on secrets and the redaction of logs are the
 * host's, as for any other request of a plugin.
 */
#ifndef MAILMODE_MS_H
#define MAILMODE_MS_H

#include <mailmode/plugin.h>

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ */
/* Helpers (util.c) */

char *ms_strdup(const char *s);
char *ms_printf(const char *fmt, ...) MAILMODE_PRINTF(1, 2);
/* ASCII case-insensitive equality; two NULLs are equal. */
int ms_strcaseeq(const char *a, const char *b);
/* A random RFC 4122 version-4 GUID, 36 characters plus NUL: 0, or -1. */
int ms_guid(char out[37]);
/* 1 when s is a GUID in its 8-4-4-4-12 hex form. */
int ms_is_guid(const char *s);

/* A growable string. */
struct ms_buf {
	char *data;
	size_t len, cap;
	int failed;    /* an allocation failed; data is incomplete */
};
void ms_buf_add(struct ms_buf *buf, const char *s);
void ms_buf_addf(struct ms_buf *buf, const char *fmt, ...) MAILMODE_PRINTF(2, 3);
void ms_buf_free(struct ms_buf *buf);

/* Field access that accepts both shapes the services use: multi-valued
 * properties arrive as an array or as a bare string; booleans as JSON
 * booleans or "True"/"False"; numbers as numbers or strings. */
const char *ms_field_str(const cJSON *obj, const char *name);
/* NULL-terminated array of borrowed strings; free the array with free(). */
const char **ms_field_strs(const cJSON *obj, const char *name, size_t *count);
/* 1, 0, or -1 when absent or not a boolean. */
int ms_field_bool(const cJSON *obj, const char *name);
/* The value, or dflt when absent or not a number. */
long ms_field_long(const cJSON *obj, const char *name, long dflt);

/* ------------------------------------------------------------------ */
/* Entra ID app-only sign-in (entra.c) */

#define MS_LOGIN_URL "https://login.microsoftonline.com"
#define MS_SCOPE_EXO "https://outlook.office365.com/.default"
#define MS_SCOPE_ARM "https://management.azure.com/.default"

/* How the certificate client assertion is signed. */
enum ms_assertion_alg {
	MS_ASSERTION_PS256 = 0,    /* RSASSA-PSS, header x5t#S256 (current) */
	MS_ASSERTION_RS256 = 1     /* PKCS#1 v1.5, header x5t (older form) */
};

/* Who signs in, where, and for what.  Every string is borrowed from the
 * caller (its parsed configuration) and must outlive the calls. */
struct ms_app {
	const char *section;            /* config section, for messages:
	                                   "tenant T", "dns NAME" */
	const char *tenant;             /* GUID or x.onmicrosoft.com */
	const char *client_id;
	const char *client_secret_file; /* either this (host->secret_load) */
	const char *private_key_file;   /* or this: PEM RSA key, and ... */
	const char *certificate_file;   /* ... its certificate (NULL: a
	                                   CERTIFICATE block in the key file) */
	const char *login_url;          /* no trailing slash: MS_LOGIN_URL */
	const char *scope;              /* MS_SCOPE_EXO, MS_SCOPE_ARM, ... */
	const char *ca_file;            /* NULL: the system trust store */
	enum ms_assertion_alg assertion_alg;
	long timeout_ms;                /* per attempt; 0: host default */
	long retry_budget_ms;           /* per request; 0: host default */
};

/* One cached access token (for one app and scope); zero-initialise. */
struct ms_token {
	char *access_token;             /* NULL: none cached */
	int64_t expires_at_ms;          /* wall clock */
	char tid[37];                   /* the token's tid claim (the tenant's
	                                   GUID); "" until a token said it */
};

/* A valid access token (cached until 5 minutes before it expires), from
 * {login_url}/{tenant}/oauth2/v2.0/token over the caller's HTTP session.
 * *token points into cache.  MAILMODE_ERR_DENIED with the AADSTS code and
 * the first line of the platform's description when it refuses (wrong
 * secret, unknown app or tenant, certificate not uploaded);
 * MAILMODE_ERR_FAILED when nothing was sent (ms_not_sent's line). */
int ms_token_get(const struct mailmode_host *host,
                 struct mailmode_http_session *session,
                 const struct ms_app *app, struct ms_token *cache,
                 const char **token, struct mailmode_diag *diag);
/* Forgets (and wipes) the cached token, after a 401. */
void ms_token_forget(struct ms_token *cache);

/* validate_config: the secret, or key and certificate, are readable (not
 * group/world-readable) and usable, without asking the network. */
int ms_credentials_check(const struct mailmode_host *host,
                         const struct ms_app *app, struct mailmode_diag *diag);

/* The tid claim of an access token (a JWT) when it is a GUID: 0, else -1. */
int ms_token_tid(const char *access_token, char out[37]);

/* The signed JWT client assertion for token_url (its aud). */
int ms_jwt_assertion(const struct mailmode_host *host, const struct ms_app *app,
                     const char *token_url, char **assertion,
                     struct mailmode_diag *diag);

/* Rewrites the diagnostic of a request the host did not send (it returned
 * MAILMODE_ERR_FAILED: a TLS certificate that did not verify) to one line
 * "[SECTION]: WHAT: <the host's line naming the host and ca_file>". */
void ms_not_sent(const struct mailmode_host *host, const struct ms_app *app,
                 const char *what, struct mailmode_diag *diag);

/* ------------------------------------------------------------------ */
/* Exchange Online admin API (exo.c) */

#define MS_EXO_API_URL "https://outlook.office365.com"

/* One tenant's connection: the HTTP session reused across calls, the
 * token, and the connection-id the module sends on every call.  Not for
 * two threads at once. */
struct ms_session {
	struct mailmode_http_session *http;
	struct ms_token token;
	char connection_id[37];
};
int ms_session_init(const struct mailmode_host *host, struct ms_session *session);
void ms_session_free(const struct mailmode_host *host, struct ms_session *session);

/* One run of cmdlets: where they go and the warnings the service returned
 * so far (one per line; surfaced by the caller on success). */
struct ms_exo {
	const struct mailmode_host *host;
	const struct ms_app *app;       /* scope MS_SCOPE_EXO */
	const char *api_url;            /* no trailing slash: MS_EXO_API_URL */
	struct ms_session *session;
	struct ms_buf warnings;         /* the caller frees it */
	int calls;                      /* HTTP requests made to the admin API */
};

/* What failed, from the error body's details[0].message
 * "ErrId|ExceptionType|Text", or the status line and headers. */
struct ms_exo_error {
	long status;                    /* 0: no HTTP answer */
	char errid[64];
	char type[256];                 /* exception type, e.g. ...NotFoundException */
	char text[1024];
};

/* Runs one cmdlet.  params: a cJSON object (not consumed; may be NULL).
 * On success *value is a cJSON array with every page's objects merged
 * (free with cJSON_Delete).  On failure err is filled (when not NULL) and
 * the diagnostic names the cmdlet and the error; a write (any cmdlet but
 * Get-*) without a trustworthy answer is MAILMODE_ERR_UNKNOWN. */
int ms_exo_invoke(struct ms_exo *exo, const char *cmdlet, const cJSON *params,
                  cJSON **value, struct ms_exo_error *err,
                  struct mailmode_diag *diag);

/* Error classes, from the exception type and text. */
int ms_exo_error_not_found(const struct ms_exo_error *err);
int ms_exo_error_exists(const struct ms_exo_error *err);
int ms_exo_error_dehydrated(const struct ms_exo_error *err);
int ms_exo_error_inbound_restricted(const struct ms_exo_error *err);

#endif /* MAILMODE_MS_H */
