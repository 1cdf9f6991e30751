/*
 * The DNS-provider seam of the gateway plugin.
 *
 * The mode logic (gateway.c) never speaks a DNS protocol itself: it reads
 * the MX RRset together with a version token and asks for a replacement
 * that only happens if the RRset still is what was read (compare-and-swap).
 * The providers, one file each, chosen by [dns NAME] provider:
 *   rfc2136.c   RFC 2136 + TSIG: one UPDATE whose prerequisite is the old
 *               RRset; the token is the RRset itself.
 *   gcloud.c    Google Cloud DNS: one changes.create whose deletions are
 *               the exact old RRset (the server refuses any other: 412);
 *               the token is the RRset itself.
 *   cloudflare.c Cloudflare: no whole-set precondition; the token is the
 *               record ids, re-read right before and after the batch, and
 *               the plan says the guarantee is weaker.
 *   route53.c   Amazon Route 53: one ChangeResourceRecordSets batch whose
 *               DELETE is the exact old RRset (the server refuses any
 *               other: InvalidChangeBatch) plus the CREATE of the new one;
 *               the token is the RRset itself.
 *   azure.c     Azure DNS: a PUT of the record set with If-Match on its
 *               etag (If-None-Match: * when there is none); the token is
 *               the etag.
 * Only MX matters to this mode, so the RRset type is fixed to MX.
 */
#ifndef GATEWAY_PROVIDER_H
#define GATEWAY_PROVIDER_H

#include "gateway.h"

/* What a read returned, to make the following replace conditional. */
struct gw_rrset_version {
	struct gw_mx_set rrset;     /* the RRset as read */
	char token[GW_MX_MAX * 40]; /* provider-specific (etag, record ids);
	                               empty for RFC 2136, whose token is the
	                               RRset itself */
};

enum gw_replace_outcome {
	GW_REPLACE_OK = 0,          /* applied */
	GW_REPLACE_CONFLICT,        /* not applied: the RRset is no longer the
	                               expected one (someone changed it) */
	GW_REPLACE_DENIED,          /* not applied: credentials or policy */
	GW_REPLACE_FAILED,          /* not applied: any other refusal */
	GW_REPLACE_UNKNOWN          /* no (trustworthy) answer: may or may not
	                               have been applied; re-read */
};

struct gw_provider;
struct gw_https_answer;

struct gw_provider_ops {
	const char *name;

	/* Reads the MX RRset of `name` (no trailing dot) from the provider's
	 * source of truth.  A name without MX gives an empty set.  On error
	 * the diagnostic says why. */
	int (*get_rrset)(struct gw_provider *provider, const char *name,
	                 struct gw_rrset_version *version);

	/* Replaces the MX RRset of `name` with `replacement` (empty: delete
	 * it) if, and only if, it still is `expected`.  All or nothing: the
	 * name is never left without MX in between.  The diagnostic says why
	 * when the outcome is not GW_REPLACE_OK.  The outcome is what the
	 * answer says; gw_swap adds what it cannot: a write the host sent
	 * more than once (op->write_attempts, kept by gw_https_call; a
	 * provider sending its write otherwise sets it from
	 * mailmode_http_response.attempts) is unknown whatever the refusal,
	 * and a CONFLICT with `replacement` live is an earlier copy of this
	 * write that landed. */
	enum gw_replace_outcome (*replace_rrset)(
		struct gw_provider *provider, const char *name,
		const struct gw_rrset_version *expected,
		const struct gw_mx_set *replacement);

	/* Proves that the provider accepts a change of the MX RRset of `name`
	 * now (credentials and policy) without making one.  GW_REPLACE_OK:
	 * accepted; DENIED: refused, the diagnostic naming what to grant;
	 * FAILED or UNKNOWN: no verdict (the diagnostic says why). */
	enum gw_replace_outcome (*probe_update)(struct gw_provider *provider,
	                                        const char *name);

	/* The exact change replace_rrset would send, one line per element,
	 * appended to buf (NUL-terminated) without sending anything. */
	int (*describe_replace)(struct gw_provider *provider, const char *name,
	                        const struct gw_rrset_version *expected,
	                        const struct gw_mx_set *replacement, char *buf,
	                        size_t len);

	void (*close)(struct gw_provider *provider);
};

struct gw_provider {
	const struct gw_provider_ops *ops;
	struct gw_op *op;           /* the operation it serves */
	void *impl;
	/* Where the changes go, for messages: "the primary 192.0.2.1 port
	 * 53", "Cloudflare zone example.com (id ...)". */
	char where[GW_URL_MAX];
	/* After probe_update returned GW_REPLACE_OK: what it proved and what
	 * it could not prove without a change, one line. */
	char proven[MAILMODE_DIAG_SUMMARY_MAX];
};

/* A handle for op with its ops and a zeroed impl of impl_size bytes;
 * where is "WHO (api_url)" until the provider knows more.
 * MAILMODE_ERR_NOMEM, or MAILMODE_OK with *provider set. */
int gw_provider_new(struct gw_op *op, const struct gw_provider_ops *ops,
                    size_t impl_size, const char *who,
                    struct gw_provider **provider);
/* Frees the handle and its impl (what impl points to is the caller's to
 * release first); NULL: nothing. */
void gw_provider_free(struct gw_provider *provider);

/* The provider [dns NAME] names.  need_secret: RFC 2136 loads its TSIG
 * secret only then (plan and reads do without); the API providers always
 * load their credential (they cannot read without it).  On success
 * *provider is ready; release it with provider->ops->close(provider). */
int gw_provider_open(struct gw_op *op, bool need_secret,
                     struct gw_provider **provider);

/* validate_config: the provider's credential file loads and looks right
 * (no network). */
int gw_provider_check_credentials(const struct gw_ctx *ctx,
                                  const struct gw_config *cfg,
                                  struct mailmode_diag *diag);

/* RFC 2136 UPDATE + TSIG to op->primary_addr, over TCP (rfc2136.c). */
int gw_rfc2136_open(struct gw_op *op, bool need_secret,
                    struct gw_provider **provider);
/* Cloudflare API v4 with an API token (cloudflare.c). */
int gw_cloudflare_open(struct gw_op *op, struct gw_provider **provider);
int gw_cloudflare_check_credentials(const struct gw_ctx *ctx,
                                    const struct gw_config *cfg,
                                    struct mailmode_diag *diag);
/* Google Cloud DNS v1 with a service-account key (gcloud.c). */
int gw_gcloud_open(struct gw_op *op, struct gw_provider **provider);
int gw_gcloud_check_credentials(const struct gw_ctx *ctx,
                                const struct gw_config *cfg,
                                struct mailmode_diag *diag);

/* Amazon Route 53 with AWS SigV4 signed by the host (route53.c). */
int gw_route53_open(struct gw_op *op, struct gw_provider **provider);
int gw_route53_check_credentials(const struct gw_ctx *ctx,
                                 const struct gw_config *cfg,
                                 struct mailmode_diag *diag);

/* Azure DNS through Azure Resource Manager, Entra ID app credentials
 * (azure.c). */
int gw_azure_open(struct gw_op *op, struct gw_provider **provider);
int gw_azure_check_credentials(const struct gw_ctx *ctx,
                               const struct gw_config *cfg,
                               struct mailmode_diag *diag);

/* ---- provider.c: what provider handles of one plugin context share ------ */

/* A switch opens several provider handles (plan, probe, swap, verify,
 * settle); without a cache each one would sign in and look its zone up
 * again.  The cache belongs to the plugin context (op->ctx) and lives as
 * long as it: within one mailmode process, or one isolation helper, for
 * the whole command.  Entries are strings under a key the provider makes
 * (its name, the [dns NAME] section and what names the credential or the
 * zone); values are wiped when replaced or dropped.  Safe to call from
 * concurrent operations (the plugin is MAILMODE_CAP_THREADSAFE). */

/* A copy of the value under key (free it with gw_cache_free), with its
 * expiry (wall clock ms; 0: none) in *expires_ms when not NULL; NULL when
 * there is none, it expired, or memory ran out. */
char *gw_cache_get(const struct gw_op *op, const char *key, int64_t *expires_ms);
/* Stores a copy of value under key (replacing what was there) until
 * expires_ms (wall clock; 0: for as long as the context).  Failing to
 * store only costs a later lookup: nothing is returned. */
void gw_cache_put(const struct gw_op *op, const char *key, const char *value,
                  int64_t expires_ms);
/* Drops the entry under key if it still holds `value` (NULL: whatever it
 * holds): a token refused (401) is dropped unless a concurrent call has
 * already replaced it with a fresh one. */
void gw_cache_drop(const struct gw_op *op, const char *key, const char *value);
/* A context's cache, and its end (every entry wiped). */
struct gw_cache *gw_cache_new(void);
void gw_cache_destroy(struct gw_cache *cache);
/* Wipes and frees what gw_cache_get returned (NULL: nothing). */
void gw_cache_free(char *value);
/* The zone holding `name` for this handle, looked up once per command:
 * two strings (an id and a name, a zone and its group) kept in the
 * context's cache under the provider, the [dns NAME] section and name.
 * look_up finds them (GW_NAME_MAX bytes each; the diagnostic set when it
 * fails); use gives them to the handle, from the cache or from look_up. */
int gw_zone_cached(struct gw_provider *provider, const char *name,
                   int (*look_up)(struct gw_provider *provider,
                                  const char *name, char *first, char *second),
                   void (*use)(struct gw_provider *provider, const char *first,
                               const char *second));

/* ---- swap.c: the write path of setup and teardown ----------------------- */

/* Hands call->original to host->keep_original unless the host holds it
 * already (or predates ABI 1.2).  On failure nothing may be sent. */
int gw_keep_original(struct gw_call *call);

/* Checkpoints `intent` (the receipt as it will be if the UPDATE lands,
 * with the swap from expected to replacement named as `doing`), then sends
 * the compare-and-swap.  An UPDATE without an answer is settled by
 * re-reading the primary until it answers (at most GW_REREAD_TIMEOUTS
 * timeouts): the new set live is success; anything else is
 * MAILMODE_ERR_UNKNOWN (the UPDATE may still land), never "not applied".
 * A refusal of a write sent more than once is settled the same way. */
#define GW_REREAD_TIMEOUTS 3
int gw_swap(struct gw_call *call, struct gw_provider *provider,
            const struct gw_rrset_version *expected,
            const struct gw_mx_set *replacement, struct gw_receipt *intent,
            const char *doing);

/* gw_swap after its checkpoint: the compare-and-swap and its outcome
 * settled as above.  For a write whose checkpoint the caller stored
 * (mx_ttl, ttl.c). */
int gw_replace_checkpointed(struct gw_call *call, struct gw_provider *provider,
                            const struct gw_rrset_version *expected,
                            const struct gw_mx_set *replacement);

/* Appends one line to the NUL-terminated buf (describe_replace's output),
 * a newline before it when buf is not empty; drops what does not fit. */
void gw_append_line(char *buf, size_t len, const char *fmt, ...) MAILMODE_PRINTF(3, 4);

/* One TTL for the whole set in *ttl (the first record's; 0 when empty):
 * false when the records disagree (providers that keep one TTL per RRset
 * cannot hold such a set). */
bool gw_mx_set_one_ttl(const struct gw_mx_set *set, uint32_t *ttl);

/* The same, as a check before a change: false, with the diagnostic
 * naming `who` (the provider), when the records disagree. */
bool gw_need_one_ttl(const struct gw_op *op, const char *who, const char *name,
                     const struct gw_mx_set *set);

/* A change sent whose answer never came: the diagnostic (which says why)
 * gets ": outcome unknown" and is marked retryable. */
void gw_diag_outcome_unknown(const struct gw_op *op);

/* Appends "  LABEL: NAME. TTL MX PREF HOST" for each record of set. */
void gw_append_rrset(char *buf, size_t len, const char *label, const char *name,
                   const struct gw_mx_set *set);

/* A change `who` (the provider, "Route 53") refused because the MX set is
 * not the expected one (detail: the refusal, for the message; `change`
 * names the request, "change" or "batch"): someone else changed the set.
 * When the host had sent the change more than once, the seam (gw_swap)
 * turns this into an unknown outcome or, the new set live, success. */
enum gw_replace_outcome gw_precondition_refused(struct gw_provider *provider,
                                               const char *name, const char *who,
                                               const char *change, const char *detail);

/* A change `who` answered with a refusal (detail: its status and error,
 * for the message): a server error (5xx) is an unknown outcome; conflict
 * (the status says the set is not the expected one) is
 * gw_precondition_refused; anything else is what refused(provider, what,
 * answer) says (it sets the diagnostic; MAILMODE_ERR_DENIED: credentials
 * or policy). */
enum gw_replace_outcome gw_change_refused(
	struct gw_provider *provider, const char *name, const char *who,
	const struct gw_https_answer *answer, bool conflict, const char *detail,
	const char *what,
	int (*refused)(struct gw_provider *provider, const char *what,
	               const struct gw_https_answer *answer));

/* Follows an accepted change until its status is `done`: every pause_ms,
 * poll() updates the status (leaving it when no answer came), for at most
 * GW_REREAD_TIMEOUTS * 4 timeouts.  The change is applied either way (the
 * provider took it); one still pending when the wait ends is logged and
 * left to verify, which asks every authoritative server. */
void gw_follow_change(struct gw_provider *provider, const char *who,
                      const char *id, const char *status, const char *done,
                      int64_t pause_ms,
                      void (*poll)(struct gw_provider *provider,
                                   const char *id, char *status, size_t len));

#endif /* GATEWAY_PROVIDER_H */
