/*
 * mailflow mode plugin: internal interfaces shared by its source files.
 *
 *   config.c  the profile: tenant, credentials, service values, names
 *   token.c   app-only OAuth2 (client secret or JWT client assertion)
 *   exo.c     the Exchange Online admin API client (InvokeCommand)
 *   objects.c the desired connectors and rule, read-back comparison,
 *             conflict detection
 *   trace.c   the message trace of a test message (ABI 1.1 trace)
 *   mode.c    the plugin operations and the descriptor
 */
#ifndef MAILFLOW_H
#define MAILFLOW_H

#include <mailmode/plugin.h>

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ */
/* Profile (config.c) */

enum mf_connector_type {
	MF_CONNECTOR_ONPREMISES = 0,
	MF_CONNECTOR_PARTNER = 1
};

/* How the certificate client assertion is signed (assertion_alg). */
enum mf_assertion_alg {
	MF_ASSERTION_PS256 = 0,    /* RSASSA-PSS, header x5t#S256 (current) */
	MF_ASSERTION_RS256 = 1     /* PKCS#1 v1.5, header x5t (older form) */
};

/* Real Exchange lists new objects within 30 minutes. */
#define MF_DEFAULT_VISIBILITY_WINDOW_MS (30L * 60 * 1000)

/* Exchange object names are at most 64 characters. */
#define MF_NAME_MAX 65

/* One range of addresses the service sends mail from (service_ips). */
struct mf_ip_range {
	int family;                /* AF_INET or AF_INET6 */
	unsigned char addr[16];    /* network order; the first 4 for AF_INET */
	unsigned prefix;           /* bits that must match */
};

struct mf_profile {
	/* [tenant T] */
	char *tenant_section;      /* "tenant T" */
	char *tenant;              /* GUID or x.onmicrosoft.com */
	char *client_id;
	char *client_secret_file;  /* either this ... */
	char *certificate_file;    /* ... or a private key (+ certificate) */
	char *private_key_file;
	char *login_url;           /* no trailing slash */
	char *api_url;             /* no trailing slash */
	char *ca_file;             /* NULL: system trust store */
	enum mf_assertion_alg assertion_alg;
	long retry_budget_ms;      /* per request; 0: host default */
	long timeout_ms;           /* per request; 0: host default */
	long visibility_window_ms; /* a new object may stay unlisted this long */

	/* [service S] */
	char *service;             /* S */
	char **smart_hosts;        /* NULL-terminated */
	char *tls_domain;
	enum mf_connector_type connector_type;
	char *tls_cert_name;
	char *name_prefix;
	/* Where the service's mail comes from (at least one): the rule's
	 * exception and the message trace rest on it. */
	struct mf_ip_range *service_ips;
	size_t nservice_ips;

	/* Derived, deterministic object names. */
	char outbound_name[MF_NAME_MAX];
	char inbound_name[MF_NAME_MAX];
	/* Marks objects as ours in Comment/Comments. */
	char *managed_marker;      /* "managed by mailmode" */
};

/* Reads the profile of req (req->section).  Touches no network; reads no
 * secret.  On error fills diag and returns MAILMODE_ERR_CONFIG. */
int mf_profile_load(const struct mailmode_host *host, const char *mode_section,
                    const char *profile_section, struct mf_profile **out,
                    struct mailmode_diag *diag);
void mf_profile_free(struct mf_profile *profile);

/* 1 when address (as text, IPv4 or IPv6) is in one of the profile's
 * service_ips. */
int mf_is_service_ip(const struct mf_profile *profile, const char *address);

/* An IP range as text: "192.0.2.10", "192.0.2.0/24", "2001:db8::/32"
 * (host bits cleared).  Parse: 0, or -1 when text is none. */
#define MF_IP_RANGE_TEXT 50        /* INET6_ADDRSTRLEN + "/128" */
int mf_ip_range_parse(const char *text, struct mf_ip_range *range);
void mf_ip_range_format(const struct mf_ip_range *range, char out[MF_IP_RANGE_TEXT]);
int mf_ip_range_equal(const struct mf_ip_range *a, const struct mf_ip_range *b);

/* The deterministic name of the domain's rule, at most 64 characters. */
void mf_rule_name(const struct mf_profile *profile, const char *domain,
                  char name[MF_NAME_MAX]);

/* ------------------------------------------------------------------ */
/* Small helpers (util in config.c) */

char *mf_strdup(const char *s);
char *mf_printf(const char *fmt, ...) MAILMODE_PRINTF(1, 2);
int mf_strcaseeq(const char *a, const char *b);
/* A random RFC 4122 version-4 GUID, 36 characters plus NUL. */
int mf_guid(char out[37]);
/* 1 when s is a GUID in its 8-4-4-4-12 hex form (token.c). */
int mf_is_guid(const char *s);

/* A growable string. */
struct mf_buf {
	char *data;
	size_t len, cap;
	int failed;    /* an allocation failed; data is incomplete */
};
void mf_buf_add(struct mf_buf *buf, const char *s);
void mf_buf_addf(struct mf_buf *buf, const char *fmt, ...) MAILMODE_PRINTF(2, 3);
void mf_buf_free(struct mf_buf *buf);

/* ------------------------------------------------------------------ */
/* Tenant connection: token cache and HTTP session (token.c) */

struct mf_tenant {
	struct mf_tenant *next;
	char *key;                 /* token URL + client id: one cache entry */
	pthread_mutex_t lock;      /* held for a whole operation on the tenant */
	struct mailmode_http_session *session;
	char connection_id[37];    /* one GUID per session, as the module does */
	/* The directory (tenant) GUID from the access token's tid claim, for
	 * X-AnchorMailbox; "" until a token has said it. */
	char tenant_guid[37];
	char *access_token;        /* NULL: none cached */
	int64_t expires_at_ms;     /* wall clock */
	/* The tenant's standing checks, read once per TENANT_FACTS_MS within a
	 * run (a runbook switches many of its domains): dormancy and the
	 * accepted domains change rarely, unlike rules and connectors, which
	 * are read every time. */
	int64_t organization_checked_ms;
	struct cJSON *accepted;        /* Get-AcceptedDomain's answer, or NULL */
	int64_t accepted_read_ms;
};

#define TENANT_FACTS_MS (5 * 60 * 1000)

struct mf_ctx {
	const struct mailmode_host *host;
	char *mode_section;        /* "mode mailflow" */
	pthread_mutex_t lock;      /* protects the tenant list */
	struct mf_tenant *tenants;
};

/* Finds or makes the tenant entry for the profile and locks it. */
int mf_tenant_acquire(struct mf_ctx *ctx, const struct mf_profile *profile,
                      struct mf_tenant **out, struct mailmode_diag *diag);
void mf_tenant_release(struct mf_tenant *tenant);
void mf_tenants_free(struct mf_ctx *ctx);

/* A valid access token for the tenant (cached until 5 minutes before it
 * expires).  *token points into the tenant entry.  MAILMODE_ERR_DENIED with
 * the AADSTS code and first line when the identity platform refuses. */
int mf_token_get(struct mf_ctx *ctx, struct mf_tenant *tenant,
                 const struct mf_profile *profile, const char **token,
                 struct mailmode_diag *diag);
/* validate_config: the secret, or key and certificate, are readable
 * (not group/world-readable) and usable, without asking the network. */
int mf_credentials_check(struct mf_ctx *ctx, const struct mf_profile *profile,
                         struct mailmode_diag *diag);
/* Forgets the cached token (after a 401). */
void mf_token_forget(struct mf_ctx *ctx, struct mf_tenant *tenant);

/* The tid claim of an access token (a JWT) when it is a GUID: 0, else -1.
 * Exposed for the unit test. */
int mf_token_tid(const char *access_token, char out[37]);

/* The signed JWT client assertion (exposed for the unit test). */
int mf_jwt_assertion(struct mf_ctx *ctx, const struct mf_profile *profile,
                     const char *token_url, char **assertion,
                     struct mailmode_diag *diag);

/* ------------------------------------------------------------------ */
/* Exchange Online admin API (exo.c) */

/* One cmdlet call's session: the tenant, the profile, and the warnings the
 * service returned so far (surfaced on success). */
struct mf_exo {
	struct mf_ctx *ctx;
	struct mf_tenant *tenant;
	const struct mf_profile *profile;
	struct mf_buf warnings;    /* one per line */
	int calls;                 /* HTTP requests made to the admin API */
};

/* What failed, from the error body's details[0].message
 * "ErrId|ExceptionType|Text", or the status line and headers. */
struct mf_exo_error {
	long status;               /* 0: no HTTP answer */
	char errid[64];
	char type[256];            /* exception type, e.g. ...NotFoundException */
	char text[1024];
};

/* Runs one cmdlet.  params: a cJSON object (not consumed; may be NULL).
 * On success *value is a cJSON array with every page's objects merged
 * (free with cJSON_Delete).  On failure err is filled (when not NULL) and
 * the diagnostic names the cmdlet and the error. */
int mf_exo_invoke(struct mf_exo *exo, const char *cmdlet, const cJSON *params,
                  cJSON **value, struct mf_exo_error *err,
                  struct mailmode_diag *diag);

/* Rewrites the diagnostic of a request the host did not send (it returned
 * MAILMODE_ERR_FAILED: a TLS certificate that did not verify) to one line
 * "[tenant T]: WHAT: <the host's line naming the host and ca_file>". */
void mf_not_sent(const struct mailmode_host *host, const struct mf_profile *profile,
                 const char *what, struct mailmode_diag *diag);

/* Error classes, from the exception type and text. */
int mf_exo_error_not_found(const struct mf_exo_error *err);
int mf_exo_error_exists(const struct mf_exo_error *err);
int mf_exo_error_dehydrated(const struct mf_exo_error *err);
int mf_exo_error_inbound_restricted(const struct mf_exo_error *err);

/* Field access that accepts both shapes the service uses: multi-valued
 * properties arrive as an array or as a bare string; booleans as JSON
 * booleans or "True"/"False"; numbers as numbers or strings. */
const char *mf_field_str(const cJSON *obj, const char *name);
/* NULL-terminated array of borrowed strings; free the array with free(). */
const char **mf_field_strs(const cJSON *obj, const char *name, size_t *count);
/* 1, 0, or -1 when absent or not a boolean. */
int mf_field_bool(const cJSON *obj, const char *name);
/* The value, or dflt when absent or not a number. */
long mf_field_long(const cJSON *obj, const char *name, long dflt);

/* ------------------------------------------------------------------ */
/* Desired state, comparison and conflicts (objects.c) */

/* The parameters of New-InboundConnector / New-OutboundConnector /
 * New-TransportRule for the profile and domain. */
cJSON *mf_inbound_params(const struct mf_profile *profile);
cJSON *mf_outbound_params(const struct mf_profile *profile);
cJSON *mf_rule_params(const struct mf_profile *profile, const char *domain,
                      long priority);
/* Adds to Set-TransportRule's parameters the clearing of what older
 * versions set and this one does not (the loop-header exception), so that
 * setup repairs such a rule.  0, or -1 when out of memory. */
int mf_rule_unset_retired(cJSON *set_params);

/* Compares an object read back with what the profile wants; appends one
 * "Field: have X, want Y" line per difference to mismatches.  Returns the
 * number of differences. */
int mf_inbound_compare(const struct mf_profile *profile, const cJSON *conn,
                       struct mf_buf *mismatches);
int mf_outbound_compare(const struct mf_profile *profile, const cJSON *conn,
                        struct mf_buf *mismatches);
int mf_rule_compare(const struct mf_profile *profile, const char *domain,
                    const cJSON *rule, const cJSON *all_rules,
                    struct mf_buf *mismatches);

/* 1 when the rule is one of ours (any domain): our name prefix and our
 * marker in Comments. */
int mf_rule_is_ours(const struct mf_profile *profile, const cJSON *rule);
/* 1 when the rule routes to the named outbound connector. */
int mf_rule_routes_to(const cJSON *rule, const char *connector_name,
                      const char *connector_guid);

/* Where mf_find_conflicts puts its lines: one per conflicting object, in
 * accepted_lines when the object's name is one of accepted (the admin's
 * --accept-conflict NAME; NULL-terminated, may be NULL), else in lines
 * (each saying the --accept-conflict 'NAME' that would accept it).  notes
 * (may be NULL) gets objects worth knowing that are no conflict. */
struct mf_conflicts {
	const char *const *accepted;
	struct mf_buf *lines;
	struct mf_buf *accepted_lines;
	struct mf_buf *notes;
};

/* Returns how many conflicts were not accepted. */
int mf_find_conflicts(const struct mf_profile *profile, const char *domain,
                      const cJSON *rules, const cJSON *outbound_connectors,
                      const cJSON *inbound_connectors, const struct mf_conflicts *c);

/* The element of array whose Name (or Identity) is name, or NULL. */
const cJSON *mf_find_by_name(const cJSON *array, const char *name);

/* One cmdlet as PowerShell would take it, for plan(). */
void mf_cmdlet_line(struct mf_buf *out, const char *cmdlet,
                    const cJSON *params);

/* ------------------------------------------------------------------ */
/* Message trace (trace.c) */

/* The plugin's ABI 1.1 trace operation (see plugin.h). */
int mf_trace(void *ctx, const struct mailmode_request *req, const char *message_id,
             const char *recipient, char **report, struct mailmode_diag *diag);

/* keys.c: the keys config.c reads (the descriptor's config_keys). */
const struct mailmode_config_key *mf_config_keys(void);

#endif /* MAILFLOW_H */
