/*
 * Gateway mode plugin: internal declarations shared by its files.
 *
 *   config.c    the INI keys, parsed and validated into struct gw_config
 *   mxset.c     MX sets: parsing, comparing, formatting, the receipt (JSON)
 *   dns.c       ldns helpers: resolvers, queries, zone/primary discovery
 *   provider.h  the DNS-provider seam (get RRset + version, replace if
 *               unchanged); provider.c picks one: rfc2136.c (RFC 2136 +
 *               TSIG), cloudflare.c, gcloud.c, route53.c, azure.c (their
 *               APIs over https.c; route53.c parses XML with xml.c and
 *               is signed by the host; azure.c signs in through lib/ms)
 *   authcheck.c every authoritative server asked directly, answers compared
 *   swap.c      the write path: the original kept, a checkpoint before each
 *               UPDATE, an unanswered UPDATE settled by re-reading
 *   preflight.c the ABI 1.2 preflight: reads and a no-op signed UPDATE
 *   doctor.c    the ABI 1.4 doctor: the checks of `mailmode doctor`
 *   tenant.c    the tenant side of a Microsoft 365 domain (lib/ms): the
 *               gateway inbound connector; outbound.c its outgoing mail
 *               (outbound = yes); tenant.h what the two share
 *   gateway.c   the mode's operations and the exported descriptor
 */
#ifndef GATEWAY_H
#define GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mailmode/plugin.h>

/* A presentation-format domain name, trailing dot included, plus NUL. */
#define GW_NAME_MAX 256
/* A textual IPv4/IPv6 address (INET6_ADDRSTRLEN without <netinet/in.h>). */
#define GW_ADDR_MAX 64
/* More MX records than this in one set is not a mail domain we manage. */
#define GW_MX_MAX 16
/* Authoritative server addresses checked per zone. */
#define GW_SERVERS_MAX 16

/* The plugin context made by init(): the host table and nothing mutable, so
 * operations on different domains can run at the same time. */
struct gw_ctx {
	const struct mailmode_host *host;
	/* Tokens and zone ids for the whole command (provider.c); NULL: none
	 * kept. */
	struct gw_cache *cache;
};

/* One MX record.  host is lower-case and absolute ("mx1.example.test."). */
struct gw_mx {
	uint16_t pref;
	uint32_t ttl;
	char host[GW_NAME_MAX];
};

/* An MX RRset, kept sorted by (pref, host) so sets compare element-wise. */
struct gw_mx_set {
	size_t count;
	struct gw_mx mx[GW_MX_MAX];
};

/* ---- config.c ----------------------------------------------------------- */

#define GW_TSIG_SECRET_FILE_MAX 4096
#define GW_URL_MAX 512

/* [dns NAME] provider: who holds the zone and how it is changed. */
enum gw_provider_kind {
	GW_PROVIDER_RFC2136 = 0,            /* a primary taking RFC 2136 UPDATEs */
	GW_PROVIDER_CLOUDFLARE,             /* Cloudflare API v4 (cloudflare.c) */
	GW_PROVIDER_GCLOUD,                 /* Google Cloud DNS v1 (gcloud.c) */
	GW_PROVIDER_ROUTE53,                /* Amazon Route 53 (route53.c) */
	GW_PROVIDER_AZURE                   /* Azure DNS, ARM (azure.c) */
};

/* An Entra ID app's client credentials as a section gives them (tenant,
 * client_id, client_secret_file or private_key_file + certificate_file,
 * login_url, assertion_alg): the tenant side's [tenant NAME] (and any
 * other section naming an Entra ID app). */
struct gw_entra {
	char tenant[GW_NAME_MAX];
	char client_id[GW_NAME_MAX];
	bool certificate;                   /* credentials_file is a key */
	char credentials_file[GW_TSIG_SECRET_FILE_MAX]; /* the secret or key */
	char certificate_file[GW_TSIG_SECRET_FILE_MAX]; /* "" = in the key file */
	char login_url[GW_URL_MAX];         /* without a final slash */
	bool rs256;                         /* assertion_alg = RS256 */
	bool device;                        /* [tenant] auth = device: no
	                                       credentials, the token cache */
};

/* Smart hosts of the outbound connector. */
#define GW_OUT_HOSTS_MAX 8

/* Addresses of the service listed in EFSkipIPs. */
#define GW_SERVICE_IPS_MAX 32

struct gw_tenant_config {
	bool enabled;                       /* gateway_tenant = T given */
	char section[GW_NAME_MAX];          /* "tenant T" */
	bool enhanced_filtering;            /* EFSkipIPs = service_ips */
	bool lockdown;                      /* RestrictDomainsToCertificate
	                                       after the settle */
	char tls_cert_name[GW_NAME_MAX];    /* [service] tls_cert_name */
	char connector[GW_NAME_MAX];        /* "<name_prefix> gateway for D
	                                       from <service>" */
	struct gw_entra app;                /* [tenant T]: the sign-in */
	char api_url[GW_URL_MAX];           /* [tenant T] api_url, no final / */
	char scope[GW_URL_MAX];             /* the cloud's Exchange scope */
	char ca_file[GW_TSIG_SECRET_FILE_MAX]; /* [tenant T] ca_file, "" = system */
	/* outbound = yes (outbound.c): the outbound connector and its rule,
	 * both "<name_prefix> outbound of D via <service>". */
	bool outbound;
	char out_name[GW_NAME_MAX];
	size_t out_host_count;              /* [service] outbound_smart_hosts */
	char out_hosts[GW_OUT_HOSTS_MAX][GW_NAME_MAX];
	char out_tls_domain[GW_NAME_MAX];   /* [service] outbound_tls_domain */
	size_t ip_count;                    /* [service] service_ips */
	char ips[GW_SERVICE_IPS_MAX][GW_ADDR_MAX + 4];
};

struct gw_config {
	/* [profile NAME] */
	char dns_section[GW_NAME_MAX];      /* "dns NAME" */
	char service_section[GW_NAME_MAX];  /* "service NAME" */
	char zone[GW_NAME_MAX];             /* "" when discovered (SOA walk) */
	bool has_fallback;
	struct gw_mx_set fallback;          /* restored for adopted domains */

	/* [dns NAME] */
	enum gw_provider_kind provider;
	char primary[GW_NAME_MAX];          /* address or host name; "" = MNAME */
	uint16_t port;
	char resolver[GW_ADDR_MAX];         /* "" = /etc/resolv.conf */
	uint16_t resolver_port;
	char tsig_key[GW_NAME_MAX];
	char tsig_algorithm[32];            /* as configured: "hmac-sha256" */
	char tsig_secret_file[GW_TSIG_SECRET_FILE_MAX];
	int timeout_s;
	int64_t debug_pause_before_update_ms;
	/* HTTPS providers (cloudflare, gcloud, route53, azure) */
	char api_url[GW_URL_MAX];           /* without a final slash */
	char ca_file[GW_TSIG_SECRET_FILE_MAX];       /* "" = system store */
	char credentials_file[GW_TSIG_SECRET_FILE_MAX]; /* api_token_file or
	                                       service_account_file */
	char project[GW_NAME_MAX];          /* gcloud; "" = the key's project_id */
	char managed_zone[GW_NAME_MAX];     /* gcloud; "" = discovered */
	/* route53: credentials_file is secret_access_key_file, or with
	 * aws_credentials_file set the AWS shared credentials file */
	bool aws_credentials_file;
	char aws_profile[128];              /* its section; default "default" */
	char access_key_id[128];            /* "" with aws_credentials_file */
	char session_token_file[GW_TSIG_SECRET_FILE_MAX]; /* "" = none */
	char region[64];                    /* signing region, us-east-1 */
	struct gw_azure_config {            /* azure */
		char subscription[GW_NAME_MAX];
		char resource_group[GW_NAME_MAX]; /* "" = the zone's, found */
		struct gw_entra app;        /* the Entra ID app that may change it */
	} azure;

	/* [service NAME] */
	struct gw_mx_set gateway;           /* gateway_ttl applied to each */

	/* The tenant side (tenant.c; doc/gateway-tenant.md): set when the
	 * profile names gateway_tenant. */
	struct gw_tenant_config tenant;
};

/* Reads and validates every key the profile in req->section needs.  On
 * error the diagnostic names the section and key. */
int gw_config_load(const struct gw_ctx *ctx, const struct mailmode_request *req,
                   struct gw_config *cfg, struct mailmode_diag *diag);

/* The provider's name as configured ("rfc2136", "cloudflare", "gcloud",
 * "route53", "azure"). */
const char *gw_config_provider_name(enum gw_provider_kind kind);

/* Loads the TSIG secret (host->secret_load: refuses group/world-readable
 * files) and checks it is base64.  Free with host->secret_free. */
int gw_config_load_secret(const struct gw_ctx *ctx, const struct gw_config *cfg,
                          char **secret, struct mailmode_diag *diag);

/* ldns spells TSIG algorithms as absolute names ("hmac-sha256."). */
const char *gw_config_tsig_algorithm_ldns(const struct gw_config *cfg);

/* ---- mxset.c ------------------------------------------------------------ */

/* Parses "10 mx1.example.test, 20 mx2.example.test" giving every record
 * ttl.  On error writes a one-line reason to err. */
int gw_mx_set_parse(const char *text, uint32_t ttl, struct gw_mx_set *set,
                    char *err, size_t err_len);
/* Adds one record keeping the set sorted; host is normalised. */
int gw_mx_set_add(struct gw_mx_set *set, uint16_t pref, uint32_t ttl,
                  const char *host);
/* Same records (pref and host); TTLs are not part of an RRset's identity. */
bool gw_mx_set_equal(const struct gw_mx_set *a, const struct gw_mx_set *b);
/* Same records with the same TTLs: what verify requires of the live set. */
bool gw_mx_set_same(const struct gw_mx_set *a, const struct gw_mx_set *b);
/* How `live` differs from `want`, on one line: "extra: 30 x. (ttl 300);
 * missing: 20 y. (ttl 300); ttl: 10 z. 60 instead of 300", or "" when
 * they are the same. */
void gw_mx_set_diff(const struct gw_mx_set *live, const struct gw_mx_set *want,
                    char *buf, size_t len);
/* True when a and b have at least one record (pref and host) in common. */
bool gw_mx_set_overlap(const struct gw_mx_set *a, const struct gw_mx_set *b);
/* The largest TTL in the set (0 for an empty one). */
uint32_t gw_mx_set_max_ttl(const struct gw_mx_set *set);
/* "10 mx1.example.test. (ttl 3600), 20 ..." or "(no MX records)". */
void gw_mx_set_format(const struct gw_mx_set *set, bool with_ttl, char *buf,
                      size_t len);
/* Lower-case and absolute: "MX1.Example.test" -> "mx1.example.test.". */
int gw_name_normalise(const char *in, char *out, size_t out_len);

/* The set as a JSON array of {"pref","host","ttl"}, or NULL (no memory). */
struct cJSON;
struct cJSON *gw_mx_set_json(const struct gw_mx_set *set);
/* The set from such an array; MAILMODE_ERR_CONFIG when it is not one. */
int gw_mx_set_from_json(const struct cJSON *array, struct gw_mx_set *set);

/* What setup did, stored by the core and handed back to verify/teardown:
 * {"version":1,"zone":"example.test","mx":[{"pref":10,"host":"...",
 *  "ttl":3600}],"gateway":[...]}.  "mx" is absent when setup found the
 * gateway set already live and had no earlier receipt: then the saved set
 * is unknown and teardown restores fallback_mx instead. */
struct gw_receipt {
	char zone[GW_NAME_MAX];
	bool has_saved;
	struct gw_mx_set saved;
	struct gw_mx_set gateway;
	int64_t swapped_at_ms;              /* when setup swapped; 0: unknown */
	/* The largest TTL of the set the swap replaced, as it was live then
	 * (lower than the saved set's after `mailmode prepare`): how long
	 * caches may hold it.  Unknown in receipts from before it. */
	bool has_replaced_ttl;
	int64_t replaced_ttl;
	/* In a checkpoint only (rendered, never parsed back): the UPDATE in
	 * flight, "write": {"object": "MX NAME", "doing": ..., "from": [...],
	 * "to": [...]}.  NULL: none. */
	const char *write_doing;            /* "swapping to the gateway set",
	                                       "restoring the original set" */
	struct gw_mx_set write_from, write_to;
	/* The tenant side (tenant.c): "tenant": {"connector": NAME,
	 * "locked": bool}, the domain's gateway connector and whether the
	 * lock-down was applied.  A connector write in flight is "write":
	 * {"object": "inbound connector NAME", "doing": ...}. */
	bool has_tenant;
	char connector[GW_NAME_MAX];
	bool locked;
	const char *write_object;           /* a tenant object's write:
	                                       "inbound connector NAME" */
	/* outbound = yes (outbound.c): "tenant": {..., "outbound": true}, the
	 * outbound connector and rule (named by the profile) were made. */
	bool outbound;
};

int gw_receipt_parse(const char *json, struct gw_receipt *receipt, char *err,
                     size_t err_len);
/* Returns a host->alloc'ed JSON string, or NULL when out of memory.  name
 * is the domain (it names the object of "write"). */
char *gw_receipt_render(const struct gw_ctx *ctx, const char *name,
                        const struct gw_receipt *receipt);

/* The original handed to host->keep_original (ABI 1.2) and read back from
 * req->original: {"version":1,"zone":"example.test","mx":[...]}, the MX
 * set setup replaced first, TTLs included. */
char *gw_original_render(const struct gw_ctx *ctx, const char *zone,
                         const struct gw_mx_set *set);
int gw_original_parse(const char *json, struct gw_mx_set *set, char *err,
                      size_t err_len);

/* ---- dns.c -------------------------------------------------------------- */

/* Everything one operation on one domain needs, passed down the helpers. */
struct gw_op {
	const struct gw_ctx *ctx;
	const struct gw_config *cfg;
	struct mailmode_diag *diag;
	const char *domain;                /* "mail.example.test", no dot */
	char zone[GW_NAME_MAX];            /* found by gw_find_zone, no dot */
	char primary_addr[GW_ADDR_MAX];    /* found by gw_find_primary */
	/* How many times the last write went out: 1 + the host's retries
	 * (mailmode_http_response.attempts; gw_https_call keeps it for
	 * every call but a GET).  gw_swap zeroes it before a replace: above
	 * 1, the answer is the last attempt's, and an earlier attempt may
	 * have been applied whatever it says. */
	int write_attempts;
};

/* The zone the domain lives in: configured, or found by an SOA walk through
 * the lookup resolver.  Fills op->zone. */
int gw_find_zone(struct gw_op *op);
/* The primary: configured (address or name), or the SOA MNAME.  Fills
 * op->primary_addr.  Needs op->zone. */
int gw_find_primary(struct gw_op *op);

/* Addresses of a host name, through the lookup resolver (A, then AAAA). */
int gw_lookup_addresses(struct gw_op *op, const char *name,
                        char addrs[][GW_ADDR_MAX], size_t max, size_t *count);

/* The NS names of op->zone, through the lookup resolver. */
int gw_lookup_ns(struct gw_op *op, char names[][GW_NAME_MAX], size_t max,
                 size_t *count);

/* ---- authcheck.c -------------------------------------------------------- */

/* One authoritative server's answers. */
struct gw_server_view {
	char ns_name[GW_NAME_MAX];
	char address[GW_ADDR_MAX];
	bool answered;              /* authoritative NOERROR for SOA and MX */
	char error[MAILMODE_DIAG_SUMMARY_MAX]; /* why not, when !answered */
	uint32_t serial;
	bool zone_signed;           /* the SOA came with an RRSIG */
	bool mx_signed;             /* the MX set came with an RRSIG */
	struct gw_mx_set mx;
};

struct gw_auth_view {
	size_t count;
	struct gw_server_view servers[GW_SERVERS_MAX];
};

/* Asks every authoritative server of op->zone (NS set, each address)
 * directly, without recursion.  Fails only when no server could be named;
 * per-server failures are recorded in the view. */
int gw_auth_collect(struct gw_op *op, struct gw_auth_view *view);

/* Gives each record of `set` the TTL the first answering server serves it
 * with (records no server serves keep theirs): the expectation for a
 * domain without a receipt, whose TTLs mailmode did not choose. */
void gw_auth_served_ttls(const struct gw_auth_view *view, struct gw_mx_set *set);

/* The verdict over a view, against the expected MX set. */
struct gw_auth_verdict {
	size_t answered;            /* servers that answered authoritatively */
	bool consistent;            /* all answered, same serial and MX set */
	bool expected_live;         /* consistent and the MX set == expected */
	bool expected_absent;       /* all answered and none serves any of it */
	enum mailmode_presence presence;
};

void gw_auth_judge(const struct gw_auth_view *view,
                   const struct gw_mx_set *expected,
                   struct gw_auth_verdict *verdict);
/* One detail line per server into the diagnostic. */
void gw_auth_describe(const struct gw_op *op, const struct gw_auth_view *view,
                      const struct gw_mx_set *expected);
/* The JSON report (host->alloc'ed) or NULL when out of memory. */
char *gw_auth_report(const struct gw_op *op, const struct gw_auth_view *view,
                     const struct gw_mx_set *expected,
                     const struct gw_auth_verdict *verdict);

/* ---- keys.c ------------------------------------------------------------- */

/* The keys config.c reads (the descriptor's config_keys). */
const struct mailmode_config_key *gw_config_keys(void);

/* ---- gateway.c: one operation ------------------------------------------ */

/* Everything an operation carries: the config, where the zone lives, and
 * what the host handed in. */
struct gw_call {
	struct gw_config cfg;
	struct gw_op op;
	const struct mailmode_request *req;
	bool has_receipt;
	struct gw_receipt receipt;
	/* The first MX set setup replaced: req->original (ABI 1.2), else the
	 * receipt's saved set.  original_kept: the host holds it already. */
	bool has_original;
	bool original_kept;
	struct gw_mx_set original;
	/* The tenant side: the lock-down is (to be) on, from the receipt or
	 * once setup applied it. */
	bool tenant_locked;
};

/* Loads the config, the receipt and the original, finds the zone and, when
 * need_primary, the primary. */
int gw_begin_call(const struct gw_ctx *ctx, const struct mailmode_request *req,
                  struct mailmode_diag *diag, bool need_primary,
                  struct gw_call *call);

struct gw_provider;
struct gw_rrset_version;

/* What plan and preflight start with: the call begun, a teardown's
 * target checked, the provider opened (signing: with the TSIG secret; the
 * caller closes *provider) and the live MX set read from the primary. */
int gw_read_live(const struct gw_ctx *ctx, const struct mailmode_request *req,
                 enum mailmode_plan_op which, bool signing, struct mailmode_diag *diag,
                 struct gw_call *call, struct gw_provider **provider,
                 struct gw_rrset_version *live);

/* ---- decide.c: what setup and teardown would do -------------------------- */

/* What setup finds live. */
enum gw_live_kind {
	GW_LIVE_GATEWAY,     /* exactly the configured gateway set: no change */
	GW_LIVE_OURS,        /* a gateway set of ours (receipt's or the
	                        configured records with other TTLs): swap */
	GW_LIVE_ORIGINAL,    /* the original MX set (a setup not finished) */
	GW_LIVE_FRESH,       /* no receipt, no original: this is the original */
	GW_LIVE_DRIFT        /* neither ours nor the original: edited by hand */
};

/* Classifies the live set; GW_LIVE_DRIFT without MAILMODE_REQ_FORCE is
 * refused: MAILMODE_ERR_CONFLICT, the diagnostic naming the records that
 * differ. */
int gw_setup_decide(const struct gw_call *call, const struct gw_mx_set *live,
                    enum gw_live_kind *kind);

/* What teardown restores (the original, else fallback_mx) and whether it
 * may: *done when it is live already or no gateway record is live;
 * MAILMODE_ERR_CONFLICT (diagnostic
 * filled) when the live set is not ours and MAILMODE_REQ_FORCE is not set;
 * MAILMODE_ERR_CONFIG when there is nothing to restore. */
int gw_teardown_decide(const struct gw_call *call, const struct gw_mx_set *live,
                       struct gw_mx_set *restore, const char **restore_label,
                       bool *done);

/* Only the restore set and its label (plan, no live set yet). */
int gw_teardown_target(const struct gw_call *call, struct gw_mx_set *restore,
                       const char **restore_label);

/* ---- tenant.c: the tenant side (doc/gateway-tenant.md) ------------------- */

/* The domain's gateway connector made or put right, restricted to the
 * service's certificate when locked, then (outbound) the outbound
 * connector and rule; receipt gets "tenant" (named before the first
 * write, so that a teardown of a crashed attempt looks for them). */
int gw_tenant_setup(struct gw_call *call, struct gw_receipt *receipt, bool locked);
/* The connector: *present (it, or with outbound its connector or rule, is
 * there), and in why the first field not as wanted (or what is missing);
 * "" when all is as wanted. */
int gw_tenant_check(struct gw_call *call, bool locked, bool *present, char *why, size_t len);
/* Teardown, before the MX goes back: the lock-down lifted and read back
 * lifted (MAILMODE_ERR_NOT_READY, retryable, until it reads so). */
int gw_tenant_lift(struct gw_call *call, struct gw_receipt *intent);
/* Teardown, after the MX went back: the outbound rule and connector (when
 * configured or in the receipt), then the connector removed. */
int gw_tenant_remove(struct gw_call *call, struct gw_receipt *intent);
/* validate_config: the [tenant T] credentials readable, no network. */
int gw_tenant_check_credentials(const struct gw_ctx *ctx, const struct gw_config *cfg,
                                struct mailmode_diag *diag);
/* preflight: the tenant signs in and answers Get-InboundConnector (and,
 * with outbound, the outbound connector and rule); an object of that name
 * that is not mailmode's is refused. */
int gw_tenant_preflight(struct gw_call *call);
/* Appends the tenant's actions to a plan (after the MX change's). */
int gw_tenant_plan(struct gw_call *call, enum mailmode_plan_op which, bool locked,
                   struct cJSON *actions);
/* Adds a plan action {"change", "object", "name", "text"} (plugin.h
 * plan_actions) to actions; NULL when out of memory. */
struct cJSON *gw_plan_action(struct cJSON *actions, const char *change, const char *object,
                             const char *name, const char *text);

/* ---- ttl.c -------------------------------------------------------------- */

/* What req->prepared (ABI 1.4) says: the set before the first LOWER, TTLs
 * included; *has_before false when there is none. */
struct gw_call;
int gw_prepared_before(const struct gw_call *call, struct gw_mx_set *before, bool *has_before);

/* The ABI 1.4 mx_ttl operation (plugin.h). */
int gw_mx_ttl(void *ctx, const struct mailmode_request *req,
              enum mailmode_ttl_action action, uint32_t ttl, char **report,
              struct mailmode_diag *diag);

/* ---- preflight.c --------------------------------------------------------- */

/* The ABI 1.2 preflight operation (plugin.h). */
int gw_preflight(void *ctx, const struct mailmode_request *req,
                 enum mailmode_plan_op which, struct mailmode_diag *diag);

/* ---- doctor.c ------------------------------------------------------------ */

/* The ABI 1.4 doctor operation (plugin.h). */
int gw_doctor(void *ctx, const struct mailmode_request *req, char **checks,
              struct mailmode_diag *diag);

/* One detail line "LABEL: 10 a. (ttl 300), ..." (swap.c). */
void gw_append_set(const struct gw_op *op, const char *label,
                   const struct gw_mx_set *set);

/* Whether the host offers checkpoint and keep_original (ABI 1.2) and the
 * request carries the call they need. */
bool gw_host_keeps_writes(const struct gw_call *call);

#endif /* GATEWAY_H */
