/*
 * Gateway mode plugin: internal declarations shared by its files.
 *
 *   config.c    the INI keys, parsed and validated into struct gw_config
 *   mxset.c     MX sets: parsing, comparing, formatting, the receipt (JSON)
 *   dns.c       ldns helpers: resolvers, queries, zone/primary discovery
 *   provider.h  the DNS-provider seam (get RRset + version, replace if
 *               unchanged); rfc2136.c is its RFC 2136 + TSIG implementation
 *   authcheck.c every authoritative server asked directly, answers compared
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

struct gw_config {
	/* [profile NAME] */
	char dns_section[GW_NAME_MAX];      /* "dns NAME" */
	char service_section[GW_NAME_MAX];  /* "service NAME" */
	char zone[GW_NAME_MAX];             /* "" when discovered (SOA walk) */
	bool has_fallback;
	struct gw_mx_set fallback;          /* restored for adopted domains */

	/* [dns NAME] */
	char primary[GW_NAME_MAX];          /* address or host name; "" = MNAME */
	uint16_t port;
	char resolver[GW_ADDR_MAX];         /* "" = /etc/resolv.conf */
	uint16_t resolver_port;
	char tsig_key[GW_NAME_MAX];
	char tsig_algorithm[32];            /* as configured: "hmac-sha256" */
	char tsig_secret_file[GW_TSIG_SECRET_FILE_MAX];
	int timeout_s;
	int64_t debug_pause_before_update_ms;

	/* [service NAME] */
	struct gw_mx_set gateway;           /* gateway_ttl applied to each */
};

/* Reads and validates every key the profile in req->section needs.  On
 * error the diagnostic names the section and key. */
int gw_config_load(const struct gw_ctx *ctx, const struct mailmode_request *req,
                   struct gw_config *cfg, struct mailmode_diag *diag);

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
/* True when a and b have at least one record (pref and host) in common. */
bool gw_mx_set_overlap(const struct gw_mx_set *a, const struct gw_mx_set *b);
/* "10 mx1.example.test. (ttl 3600), 20 ..." or "(no MX records)". */
void gw_mx_set_format(const struct gw_mx_set *set, bool with_ttl, char *buf,
                      size_t len);
/* Lower-case and absolute: "MX1.Example.test" -> "mx1.example.test.". */
int gw_name_normalise(const char *in, char *out, size_t out_len);

/* The set as a JSON array of {"pref","host","ttl"}, or NULL (no memory). */
struct cJSON;
struct cJSON *gw_mx_set_json(const struct gw_mx_set *set);

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
};

int gw_receipt_parse(const char *json, struct gw_receipt *receipt, char *err,
                     size_t err_len);
/* Returns a host->alloc'ed JSON string, or NULL when out of memory. */
char *gw_receipt_render(const struct gw_ctx *ctx,
                        const struct gw_receipt *receipt);

/* ---- dns.c -------------------------------------------------------------- */

/* Everything one operation on one domain needs, passed down the helpers. */
struct gw_op {
	const struct gw_ctx *ctx;
	const struct gw_config *cfg;
	struct mailmode_diag *diag;
	const char *domain;                /* "mail.example.test", no dot */
	char zone[GW_NAME_MAX];            /* found by gw_find_zone, no dot */
	char primary_addr[GW_ADDR_MAX];    /* found by gw_find_primary */
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

#endif /* GATEWAY_H */
