/*
 * mailflow mode plugin: internal interfaces shared by its source files.
 *
 *   config.c  the profile: tenant, credentials, service values, names
 *   tenant.c  the tenant entries: the connection (lib/ms ms_session)
 *             and the cached reads of each tenant
 *   objects.c the desired connectors and rule, read-back comparison,
 *             conflict detection
 *   shared.c  the rules shared by the tenant's domains: membership,
 *             subdomain exceptions
 *   trace.c   the message trace of a test message (ABI 1.1 trace)
 *   doctor.c  the checks of `mailmode doctor` (ABI 1.4 doctor)
 *   mode.c    the plugin operations and the descriptor
 *
 * The token (Entra ID client credentials) and the Exchange Online admin
 * API client (InvokeCommand) are the shared lib/ms (ms/ms.h).
 */
#ifndef MAILFLOW_H
#define MAILFLOW_H

#include <mailmode/plugin.h>

#include "ms/ms.h"

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
	enum ms_assertion_alg assertion_alg;
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

	/* The sign-in and the admin API, for lib/ms: the strings above. */
	struct ms_app app;
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

/* The name the previous version gave the domain's own rule (one rule per
 * domain), at most 64 characters: such a rule is folded into the shared
 * rules by setup and removed by teardown. */
void mf_rule_name(const struct mf_profile *profile, const char *domain,
                  char name[MF_NAME_MAX]);

/* ------------------------------------------------------------------ */
/* Tenant entries (tenant.c) */

struct mf_tenant {
	struct mf_tenant *next;
	char *key;                 /* token URL + client id: one cache entry */
	pthread_mutex_t lock;      /* held for a whole operation on the tenant */
	struct ms_session session; /* HTTP session, token, connection-id */
	/* The tenant's standing checks, read once per TENANT_FACTS_MS within a
	 * run (a runbook switches many of its domains): dormancy and the
	 * accepted domains change rarely, unlike rules and connectors, which
	 * are read every time. */
	int64_t organization_checked_ms;
	struct cJSON *accepted;        /* Get-AcceptedDomain's answer, or NULL */
	int64_t accepted_read_ms;
	/* The tenant's rules and connectors as last read, for read-only
	 * operations (status: observe) within MF_WORLD_CACHE_MS; dropped by
	 * every write of the plugin (mode.c read_world says who may use it). */
	struct cJSON *rules, *outbound, *inbound;
	int64_t world_read_ms;         /* 0: nothing cached */
};

#define MF_WORLD_CACHE_MS (60 * 1000)

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

/* ------------------------------------------------------------------ */
/* Desired state, comparison and conflicts (objects.c) */

/* The parameters of New-InboundConnector / New-OutboundConnector /
 * New-TransportRule for the profile and domain. */
cJSON *mf_inbound_params(const struct mf_profile *profile);
cJSON *mf_outbound_params(const struct mf_profile *profile);

/* One of the transport rules the tenant's domains share, as wanted. */
struct mf_rule_want {
	const char *name;
	const char *const *domains;   /* RecipientDomainIs; NULL-terminated */
	const char *const *excepted;  /* ExceptIfRecipientDomainIs; may be empty */
};

cJSON *mf_rule_params(const struct mf_profile *profile,
                      const struct mf_rule_want *want, long priority);

/* "<prefix> route #<index>", the name of a shared rule. */
void mf_shared_rule_name(const struct mf_profile *profile, unsigned index,
                         char name[MF_NAME_MAX]);
/* The index of a shared rule of ours, 0 when the rule is not one. */
unsigned mf_shared_rule_index(const struct mf_profile *profile, const cJSON *rule);

/* Exchange Online's limits (m365-identity-and-limits.md section 4). */
#define MF_TENANT_RULE_LIMIT 300
#define MF_RULE_SIZE_LIMIT 8192
/* Exchange measures a rule by the length of its XML (msExchTransportRuleXml):
 * element and attribute names around every value.  mf_rule_size estimates
 * that from the New-TransportRule parameters, high: a base for the rule's
 * skeleton (name, version, tags), per parameter its name twice plus
 * markup, per value its escaped text plus markup; the budget leaves 1 KB
 * more below the limit (doc/mailflow-limits.md). */
#define MF_RULE_XML_BASE 1024
#define MF_RULE_XML_PER_FIELD 48
#define MF_RULE_XML_PER_VALUE 24
#define MF_RULE_SIZE_BUDGET 7168
long mf_rule_size(const cJSON *params);

/* Adds to Set-TransportRule's parameters the clearing of what older
 * versions set and this one does not (the loop-header exception), so that
 * setup repairs such a rule.  0, or -1 when out of memory. */
int mf_rule_unset_retired(cJSON *set_params);

/* Compares an object read back with what the profile wants; appends one
 * "Field: have X, want Y" line per difference to mismatches.  Returns the
 * number of differences. */
int mf_inbound_compare(const struct mf_profile *profile, const cJSON *conn,
                       struct ms_buf *mismatches);
int mf_outbound_compare(const struct mf_profile *profile, const cJSON *conn,
                        struct ms_buf *mismatches);
int mf_rule_compare(const struct mf_profile *profile,
                    const struct mf_rule_want *want, const cJSON *rule,
                    const cJSON *all_rules, struct ms_buf *mismatches);

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
	struct ms_buf *lines;
	struct ms_buf *accepted_lines;
	struct ms_buf *notes;
};

/* Returns how many conflicts were not accepted. */
int mf_find_conflicts(const struct mf_profile *profile, const char *domain,
                      const cJSON *rules, const cJSON *outbound_connectors,
                      const cJSON *inbound_connectors, const struct mf_conflicts *c);

/* The element of array whose Name (or Identity) is name, or NULL. */
const cJSON *mf_find_by_name(const cJSON *array, const char *name);

/* One cmdlet as PowerShell would take it, for plan(). */
void mf_cmdlet_line(struct ms_buf *out, const char *cmdlet,
                    const cJSON *params);

/* A plan being written: its lines (plan()) and the same changes as JSON
 * actions (ABI 1.5 plan_actions, plugin.h).  scope: what a shared object
 * serves ("tenant T"). */
struct mf_plan {
	struct ms_buf text;
	cJSON *actions;
	char scope[320];
	int failed;
};

int mf_plan_init(struct mf_plan *plan, const char *tenant);
void mf_plan_free(struct mf_plan *plan);
/* A cmdlet of the plan: its line and the action {"change", "object",
 * "name", "shared" (when shared), "cmdlet", "parameters", "text"}, both
 * from the one parameters object setup sends. */
void mf_plan_cmdlet(struct mf_plan *plan, const char *change, const char *object,
                    const char *name, int shared, const char *cmdlet, const cJSON *params);
/* A line of the plan that is not a cmdlet ("# ..."): change "reuse" for
 * an object left as it is, "note" otherwise (object and name may be
 * NULL). */
void mf_plan_note(struct mf_plan *plan, const char *change, const char *object,
                  const char *name, int shared, const char *fmt, ...) MAILMODE_PRINTF(6, 7);

/* ------------------------------------------------------------------ */
/* Shared rules (shared.c) */

/* 1 when sub is strictly below domain (RecipientDomainIs domain matches
 * it). */
int mf_domain_below(const char *sub, const char *domain);
/* 1 when the rule's RecipientDomainIs lists the domain. */
int mf_rule_lists(const cJSON *rule, const char *domain);
/* The next shared rule of ours (after `after`, or from the first) that
 * lists the domain, or NULL. */
const cJSON *mf_shared_rule_of(const struct mf_profile *profile, const cJSON *rules,
                               const char *domain, const cJSON *after);
/* The accepted domains strictly below one of members and not members
 * themselves: RecipientDomainIs would route them too.  NULL-terminated,
 * strings borrowed from accepted; free the array.  NULL: out of memory. */
const char **mf_subdomain_exceptions(const char *const *members, const cJSON *accepted);
/* 1 when an exception would also except one of the members. */
int mf_exceptions_cover_member(const char *const *members, const char *const *excepted);
/* A copy of list (borrowed strings) less drop, plus add when not listed;
 * either may be NULL.  Free the array.  NULL: out of memory. */
const char **mf_list_with(const char *const *list, const char *add, const char *drop);
/* 1 when both lists hold the same domains (any order, any case). */
int mf_lists_equal(const char *const *a, const char *const *b);
/* A copy of list that owns its strings: one allocation, free() it.
 * NULL: out of memory. */
const char **mf_list_copy(const char *const *list);
/* The lowest shared rule index not in use. */
unsigned mf_shared_rule_free_index(const struct mf_profile *profile, const cJSON *rules);

/* ------------------------------------------------------------------ */
/* Shared rule writes not visible yet (notes.c), in the host's shared note
 * of the tenant (ABI 1.6): the next setup or teardown under the tenant's
 * lock builds on them instead of each write being waited for. */

/* What a rule's visible list says of its entry's writes. */
enum mf_note_seen {
	MF_NOTE_SHOWN,      /* the last write (the entry is done) */
	MF_NOTE_PENDING,    /* "before" or an earlier write: the rule holds the
	                       last one, not visible yet */
	MF_NOTE_FOREIGN     /* a list no write of the entry made: another
	                       writer's (a hand edit, a killed holder's) */
};

/* 1 when the host keeps shared notes. */
int mf_notes_kept(const struct mailmode_host *host);
/* The tenant's note (resource: "tenant NAME"), an empty one when there
 * is none. */
int mf_notes_load(const struct mailmode_host *host, const struct mailmode_request *req,
                  const char *resource, cJSON **notes, struct mailmode_diag *diag);
/* Replaces the tenant's note (removed when no entry is left). */
int mf_notes_store(const struct mailmode_host *host, const struct mailmode_request *req,
                   const char *resource, cJSON *notes, struct mailmode_diag *diag);
/* The entry of a rule, or NULL. */
cJSON *mf_note_of(cJSON *notes, const char *rule);
void mf_note_drop(cJSON *notes, const char *rule);
/* Judges the visible list; PENDING after an earlier write drops the
 * writes up to it (*trimmed = 1). */
enum mf_note_seen mf_note_see(cJSON *entry, const char *const *visible, int *trimmed);
/* When the oldest write not seen was made (wall ms), and how many. */
int64_t mf_note_oldest_ms(const cJSON *entry);
int mf_note_writes(const cJSON *entry);
/* Makes the rule's RecipientDomainIs the last list written.  -1: out
 * of memory. */
int mf_note_hold(const cJSON *entry, cJSON *rule);
/* Adds a write of wrote on base (the entry made with base as "before"
 * when the rule has none).  -1: out of memory. */
int mf_note_add(cJSON *notes, const char *rule, const char *const *base,
                const char *const *wrote, int64_t at_ms);
/* A rule made by New-TransportRule: "creating" (sent, no answer yet) or
 * "created" (answered); NULL for an entry of writes of a listed rule. */
const char *mf_note_creation(const cJSON *entry);
/* The rule's entry, replaced: made with list, being sent now.  -1: out
 * of memory. */
int mf_note_creating(cJSON *notes, const char *rule, const char *const *list, int64_t at_ms);
/* ... answered: made at at_ms.  -1: out of memory or no such entry. */
int mf_note_created(cJSON *notes, const char *rule, int64_t at_ms);
/* 1 when the entry's last list has domain (only domain). */
int mf_note_lists(const cJSON *entry, const char *domain);
int mf_note_lists_only(const cJSON *entry, const char *domain);
/* domain waits (since at_ms) to be in the rule once it is made. */
int mf_note_join_wait(cJSON *notes, const char *rule, const char *domain, int64_t at_ms);
/* domain waits for no rule any more: 1 when it waited for one. */
int mf_note_join_leave(cJSON *notes, const char *domain);
/* The domains waiting for the rule since since_ms or later, but except,
 * NULL-terminated (the strings are the note's); NULL: out of memory. */
const char **mf_note_joiners(cJSON *notes, const char *rule, const char *except,
                             int64_t since_ms);
/* They wait no more: the rule was made with them. */
void mf_note_joiners_drop(cJSON *notes, const char *rule, const char *const *domains);

/* ------------------------------------------------------------------ */
/* Message trace (trace.c) */

/* The plugin's ABI 1.1 trace operation (see plugin.h). */
int mf_trace(void *ctx, const struct mailmode_request *req, const char *message_id,
             const char *recipient, char **report, struct mailmode_diag *diag);

/* doctor.c: the plugin's ABI 1.4 doctor operation (see plugin.h). */
int mf_doctor(void *ctx, const struct mailmode_request *req, char **checks,
              struct mailmode_diag *diag);

/* keys.c: the keys config.c reads (the descriptor's config_keys). */
const struct mailmode_config_key *mf_config_keys(void);

#endif /* MAILFLOW_H */
