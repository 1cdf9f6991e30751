/*
 * mailmode plugin ABI, version 1: the whole contract between mailmode and a
 * mode plugin.
 *
 * A mode plugin is a shared object exporting ONE symbol, the const
 * descriptor `mailmode_plugin_v1`, made with MAILMODE_PLUGIN_DEFINE().
 * Build it with -fvisibility=hidden so nothing else is exported.
 *
 * Loading.  The host dlopen()s the file (RTLD_NOW|RTLD_LOCAL) and refuses it
 * when abi_major differs from the host's, when abi_minor is newer than the
 * host's, when struct_size is smaller than the v1.0 descriptor, or when the
 * name is invalid or taken.  Fields past struct_size are treated as absent.
 *
 * Lifecycle, per process: init() once, then any number of operations, then
 * fini() once.  Per domain, as the core drives it:
 *
 *     validate_config -> observe -> [plan] -> setup -> verify (polled)
 *                                             ... later ...  teardown
 *
 * Idempotency (required).  setup() run again after a crash or on a domain
 * where it already succeeded must find and reuse what exists (deterministic
 * names) and succeed; teardown() must succeed when the things are already
 * gone.  The core relies on this to resume interrupted migrations.  One
 * exception: where the world is eventually consistent, teardown may refuse
 * with a retryable diagnostic while what setup made is too new to tell
 * "gone" from "not listed yet" (the core retries it); with
 * MAILMODE_REQ_FORCE it must succeed.
 *
 * Receipts.  setup() returns a receipt: JSON text describing what it did
 * (the records it replaced, the ids it created).  The core stores it with the
 * domain and hands it back to verify() and teardown() in req->receipt.  A
 * domain adopted with `mailmode adopt` has no receipt (req->receipt == NULL,
 * MAILMODE_REQ_ADOPTED set).  Never put secrets in a receipt.
 *
 * Writes and their outcomes (ABI 1.2).  Before each write to the world
 * (an UPDATE, a New-/Set-/Remove- cmdlet) a plugin calls host->checkpoint
 * with the receipt as it will be if that write lands, naming the object and
 * what is being done to it ("creating", "removing"); the host stores it
 * durably in the journal before it returns, and the plugin sends nothing
 * when it fails.  A setup or teardown that did not finish (it failed, its
 * answer was lost, the process was killed) is later handed its last
 * checkpoint as req->receipt, so teardown removes everything an attempt may
 * have made and a teardown run again knows what it already removed.  An
 * answer that did not arrive is MAILMODE_ERR_UNKNOWN, never "not applied":
 * a re-read that shows the old state only says the write has not landed
 * yet.  Before its first write, setup hands what it is about to replace to
 * host->keep_original; the host keeps the first snapshot per domain and
 * mode, never overwrites it, and passes it back in req->original until a
 * teardown has put it back.  Teardown restores req->original when it is
 * set.
 *
 * Memory ownership.
 *   - Everything the host passes in (requests, strings, the host table) is
 *     owned by the host and valid only until the call returns, except the
 *     host table itself, which stays valid until fini() returns.
 *   - Strings a plugin hands back through `char **out` parameters must be
 *     allocated with host->alloc / host->strdup; the host frees them.
 *   - The diagnostic is host-owned storage the plugin fills (fixed buffers,
 *     nothing to free); use host->diag_set / host->diag_append.
 *   - The plugin context from init() is the plugin's; the host only passes it
 *     back, and fini() frees it.
 *
 * Conduct.  A plugin never prints, never exits, never installs signal
 * handlers and never keeps pointers to host-owned input after a call.  It
 * reports through return codes, the diagnostic and host->log.
 *
 * Threads.  Without MAILMODE_CAP_THREADSAFE the host never runs two calls of
 * one plugin at the same time.  With it, operations for different domains may
 * run concurrently on the same context.  The host runs each plugin in helper
 * processes of its own (mailmode-plugin(7), ISOLATION): concurrent calls of
 * a thread-safe plugin may then also run in different processes, each with
 * its own context, and calls for one shared resource (what resources names)
 * go to the same one.  Keep nothing between calls that a receipt does not
 * carry, except caches.
 *
 * Versioning.  Minor versions only append: new host services at the end of
 * struct mailmode_host (check host->struct_size before using them), new
 * operations in the reserved slots of the descriptor (the host calls one
 * only when the plugin's abi_minor has it and it is not NULL).  Anything
 * else bumps MAILMODE_ABI_MAJOR.  1.0: the first; 1.1: resources, trace;
 * 1.2: checkpoint, keep_original, preflight, config_keys, request fields
 * call and original, MAILMODE_REQ_FORCE for setup; 1.3: the request field
 * accepted_conflicts (the host no longer sets MAILMODE_REQ_ACCEPT_CONFLICTS);
 * 1.4: the host services http_request_opts (AWS Signature Version 4),
 * token_cache_load and token_cache_store; the operations mx_ttl and
 * doctor; the request field prepared; verify's "finish_after_settle" and
 * MAILMODE_REQ_SETTLED; 1.5: the operation plan_actions (in the first
 * reserved slot); 1.6: MAILMODE_REQ_DEFERRABLE for setup and the
 * request field deferred_since_ms; the host services shared_note_load
 * and shared_note_store.
 */
#ifndef MAILMODE_PLUGIN_H
#define MAILMODE_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MAILMODE_ABI_MAJOR 1
#define MAILMODE_ABI_MINOR 6

/* The one symbol the loader looks up. */
#define MAILMODE_PLUGIN_SYMBOL "mailmode_plugin_v1"

#if defined(__GNUC__)
#define MAILMODE_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define MAILMODE_EXPORT __attribute__((visibility("default")))
#else
#define MAILMODE_PRINTF(fmt, args)
#define MAILMODE_EXPORT
#endif

/* Return codes of every operation.  The CLI maps them to exit codes. */
enum mailmode_rc {
	MAILMODE_OK = 0,
	MAILMODE_ERR_FAILED = -1,     /* failed; the diagnostic says why (exit 1) */
	MAILMODE_ERR_CONFIG = -2,     /* configuration or input at fault (exit 1) */
	MAILMODE_ERR_NOT_READY = -3,  /* verify: not (yet) in effect (exit 3) */
	MAILMODE_ERR_CONFLICT = -4,   /* world changed, drift, conflicting
	                                 objects: refused (exit 4) */
	MAILMODE_ERR_DENIED = -5,     /* credentials or policy refused (exit 1) */
	MAILMODE_ERR_UNKNOWN = -6,    /* outcome unknown: the change may or may
	                                 not have happened (exit 1) */
	MAILMODE_ERR_NOMEM = -7
};

enum mailmode_severity {
	MAILMODE_SEV_NONE = 0,  /* diagnostic not filled */
	MAILMODE_SEV_INFO = 1,
	MAILMODE_SEV_WARNING = 2,
	MAILMODE_SEV_ERROR = 3
};

/*
 * Filled by the plugin when an operation fails (and optionally to warn when
 * it succeeds).  summary: one line naming the thing at fault, no trailing
 * newline.  detail: as many lines as useful (per-server answers, the fields
 * that differ).  retryable: trying the same call later may succeed.
 */
#define MAILMODE_DIAG_SUMMARY_MAX 512
#define MAILMODE_DIAG_DETAIL_MAX 8192
struct mailmode_diag {
	enum mailmode_severity severity;
	int retryable;
	char summary[MAILMODE_DIAG_SUMMARY_MAX];
	char detail[MAILMODE_DIAG_DETAIL_MAX];
};

enum mailmode_log_level {
	MAILMODE_LOG_DEBUG = 0,
	MAILMODE_LOG_INFO = 1,
	MAILMODE_LOG_WARNING = 2,
	MAILMODE_LOG_ERROR = 3
};

/* An HTTP request run by the host with libcurl.  TLS is always verified
 * (against ca_file when set, the system store otherwise); a certificate
 * that does not verify fails with MAILMODE_ERR_FAILED (nothing was sent).
 * The host retries 408, 429, 503 and 504 answers, honouring Retry-After,
 * within retry_budget_ms; each retry carries a fresh GUID in place of the
 * value of a client-request-id header.  It never logs Authorization headers
 * or bodies. */
struct mailmode_http_request {
	const char *method;              /* "GET", "POST", ... */
	const char *url;
	const char *const *headers;      /* "Name: value" strings, NULL-terminated;
	                                    may be NULL */
	const char *body;                /* may be NULL */
	size_t body_len;
	const char *ca_file;             /* NULL: system trust store */
	long timeout_ms;                 /* whole request; 0: host default (30 s) */
	long retry_budget_ms;            /* 0: host default (120 s); -1: no retry */
};

/* Filled by the host; free with host->http_response_free. */
struct mailmode_http_response {
	long status;                     /* HTTP status of the last attempt */
	char *body;                      /* NUL-terminated, body_len bytes */
	size_t body_len;
	char *headers;                   /* raw header block of the last attempt */
	int attempts;                    /* 1 + retries made */
};

/* ABI 1.4: what host->http_request_opts adds to a request (struct
 * mailmode_http_request has no struct_size, so it cannot grow: a host
 * would read past the end of an older plugin's struct).  Set
 * struct_size to sizeof(struct mailmode_http_options): the host reads no
 * field past it, so a plugin built against this minor keeps working with
 * hosts that know more fields.  Zero-initialise what you do not use.
 *
 * aws_sigv4: sign the request with AWS Signature Version 4, libcurl's
 * CURLOPT_AWS_SIGV4 ("aws:amz:REGION:SERVICE", e.g.
 * "aws:amz:us-east-1:route53"), with the access key id and secret access
 * key; each retry is signed afresh (new X-Amz-Date).  With a session token
 * (temporary credentials) the host sends it as X-Amz-Security-Token, a
 * signed header.  Method, path, query, the headers passed and the body are
 * all signed, so give the query string in the canonical form AWS expects
 * (parameters sorted by name, RFC 3986 %-escapes).  The host never logs
 * the secret, the token or the Authorization header it computes. */
struct mailmode_http_options {
	size_t struct_size;
	const char *aws_sigv4;           /* NULL: not signed */
	const char *aws_access_key_id;
	const char *aws_secret_access_key;
	const char *aws_session_token;   /* NULL: none (long-term keys) */
};

struct mailmode_request;

/* Opaque: a connection cache.  Requests made through the same session reuse
 * connections.  A session must not be used by two threads at once. */
struct mailmode_http_session;

/*
 * Services the host hands to the plugin in init().  Append-only: a plugin
 * built against a newer minor checks struct_size before using a field past
 * the v1.0 end.
 */
struct mailmode_host {
	size_t struct_size;
	unsigned abi_major;
	unsigned abi_minor;
	void *handle;                    /* pass back as the first argument */

	/* Logging; the host decides where it goes.  No trailing newline. */
	void (*log)(void *handle, enum mailmode_log_level level,
	            const char *fmt, ...) MAILMODE_PRINTF(3, 4);

	/* Configuration: the value of `key` in INI section `section`, or NULL.
	 * The string lives as long as the host table. */
	const char *(*config_get)(void *handle, const char *section,
	                          const char *key);

	/* Reads a secret from a file.  Refused (MAILMODE_ERR_CONFIG, diagnostic
	 * filled) when the file is missing, empty, or group/world-readable.
	 * A relative path is taken from the configuration file's directory.
	 * Trailing white space is removed.  Free *secret with host->secret_free,
	 * which wipes it. */
	int (*secret_load)(void *handle, const char *path, char **secret,
	                   struct mailmode_diag *diag);
	void (*secret_free)(void *handle, char *secret);

	/* A path from the configuration, made absolute: a relative path is taken
	 * from the configuration file's directory.  Free with host->free. */
	char *(*config_path)(void *handle, const char *path);

	/* HTTP.  session may be NULL (one-off connection).  Returns MAILMODE_OK
	 * when an HTTP answer arrived (any status: check resp->status), an error
	 * with the diagnostic filled when none did (DNS, connect, TLS,
	 * timeout). */
	struct mailmode_http_session *(*http_session_new)(void *handle);
	void (*http_session_free)(void *handle,
	                          struct mailmode_http_session *session);
	int (*http_request)(void *handle, struct mailmode_http_session *session,
	                    const struct mailmode_http_request *req,
	                    struct mailmode_http_response *resp,
	                    struct mailmode_diag *diag);
	void (*http_response_free)(void *handle,
	                           struct mailmode_http_response *resp);

	/* Time.  Use these, not time()/sleep(): tests may run time faster. */
	int64_t (*clock_wall_ms)(void *handle);      /* ms since the epoch */
	int64_t (*clock_mono_ms)(void *handle);      /* monotonic ms */
	void (*sleep_ms)(void *handle, int64_t ms);

	/* A short status line for the person waiting ("waiting for 2 of 3
	 * servers").  The host shows it live on a terminal. */
	void (*progress)(void *handle, const char *fmt, ...) MAILMODE_PRINTF(2, 3);

	/* Memory for strings handed back to the host. */
	void *(*alloc)(size_t size);
	char *(*strdup)(const char *s);
	void (*free)(void *p);

	/* Diagnostic helpers: diag_set overwrites severity, retryable and
	 * summary and clears detail; diag_append adds one line to detail.
	 * Both truncate safely. */
	void (*diag_set)(struct mailmode_diag *diag,
	                 enum mailmode_severity severity, int retryable,
	                 const char *fmt, ...) MAILMODE_PRINTF(4, 5);
	void (*diag_append)(struct mailmode_diag *diag, const char *fmt, ...)
		MAILMODE_PRINTF(2, 3);

	/* ABI 1.2 (see "Writes and their outcomes").  Both take the request
	 * of the call in progress and return MAILMODE_OK once the text is
	 * stored durably; on failure the diagnostic is filled and the plugin
	 * must not make the change.  Outside setup, teardown and (ABI 1.4)
	 * mx_ttl LOWER and RESTORE they refuse. */
	int (*checkpoint)(void *handle, const struct mailmode_request *req,
	                  const char *receipt, struct mailmode_diag *diag);
	int (*keep_original)(void *handle, const struct mailmode_request *req,
	                     const char *original, struct mailmode_diag *diag);

	/* ABI 1.4: http_request with options (struct mailmode_http_options:
	 * AWS Signature Version 4).  opts may be NULL (then it is
	 * http_request).  Present only when host->struct_size covers it:
	 *   host->struct_size >= offsetof(struct mailmode_host,
	 *                                 http_request_opts) +
	 *                        sizeof(host->http_request_opts)
	 * An opts->struct_size smaller than the 1.4 options, or options the
	 * host cannot honour (a libcurl without SigV4), are refused with
	 * MAILMODE_ERR_CONFIG before anything is sent. */
	int (*http_request_opts)(void *handle,
	                         struct mailmode_http_session *session,
	                         const struct mailmode_http_request *req,
	                         const struct mailmode_http_options *opts,
	                         struct mailmode_http_response *resp,
	                         struct mailmode_diag *diag);

	/* ABI 1.4: the token cache of delegated sign-in (a refresh token
	 * kept between runs), one private entry per name (letters, digits,
	 * '.', '_', '-'; not starting with '.').  Each entry is a file of mode
	 * 0600 in $XDG_STATE_HOME/mailmode (default ~/.local/state/mailmode,
	 * created 0700).  token_cache_load: MAILMODE_OK with *text NULL when
	 * there is no entry; refused (MAILMODE_ERR_CONFIG) when the file or
	 * the directory is not the user's or is open to group or others, as
	 * secret_load refuses.  Free *text with host->secret_free.
	 * token_cache_store replaces the entry atomically (a reader sees the
	 * old text or the new, never a part); text NULL removes it. */
	int (*token_cache_load)(void *handle, const char *name, char **text,
	                        struct mailmode_diag *diag);
	int (*token_cache_store)(void *handle, const char *name, const char *text,
	                         struct mailmode_diag *diag);

	/* ABI 1.6: a note kept with a shared resource (one that resources
	 * names for the domain, e.g. "tenant contoso.onmicrosoft.com"), one
	 * text per key, in the host's state: every process and machine
	 * sharing that state reads the same note.  Only setup and teardown
	 * (req is theirs) may call these, and only on a resource of theirs:
	 * the host holds its lock for the whole call, so the note is read
	 * and written by one call at a time, as the world behind the
	 * resource is.  The host renews its lock first: a call whose lock
	 * was taken over (its lease ran out) is refused, as checkpoint
	 * refuses it.  What a note is for: a write the world shows only
	 * some time after it is made, which the next call on the resource
	 * must build on.  shared_note_load: MAILMODE_OK with *text NULL when
	 * there is no note; free *text with host->free.  shared_note_store
	 * replaces the note (text NULL removes it) durably before it
	 * returns.  A text is at most 1 MiB.  Present only when
	 * host->struct_size covers shared_note_store; refused
	 * (MAILMODE_ERR_FAILED, diagnostic filled) otherwise. */
	int (*shared_note_load)(void *handle, const struct mailmode_request *req,
	                        const char *resource, const char *key, char **text,
	                        struct mailmode_diag *diag);
	int (*shared_note_store)(void *handle, const struct mailmode_request *req,
	                         const char *resource, const char *key, const char *text,
	                         struct mailmode_diag *diag);
};

/* Flags in mailmode_request.flags. */
#define MAILMODE_REQ_FORCE            (1u << 0) /* teardown despite drift or
                                                   doubt; setup (1.2) over
                                                   drift of its own records */
#define MAILMODE_REQ_ACCEPT_CONFLICTS (1u << 1) /* setup despite every conflict;
                                                 a 1.3 host never sets it: it
                                                 names what it accepts in
                                                 accepted_conflicts */
#define MAILMODE_REQ_ADOPTED          (1u << 2) /* adopted: no receipt */
#define MAILMODE_REQ_SETTLED          (1u << 3) /* setup (1.4): settle_until_ms
                                                 has passed; do the stage
                                                 verify asked to wait for
                                                 (finish_after_settle) */
#define MAILMODE_REQ_DEFERRABLE       (1u << 4) /* setup (1.6): instead of
                                                 waiting for what it made a
                                                 moment ago to become
                                                 visible, setup may return
                                                 MAILMODE_ERR_NOT_READY with
                                                 a retryable diagnostic once
                                                 its writes are checkpointed:
                                                 the host calls it again
                                                 later (with that receipt),
                                                 holding no slot or lock
                                                 meanwhile, until it
                                                 succeeds or fails; the
                                                 plugin bounds the wait
                                                 (deferred_since_ms) */

/* What an operation is about.  Host-owned, valid for the call only. */
struct mailmode_request {
	size_t struct_size;
	const char *domain;        /* validated: lower-case LDH, no final dot */
	const char *profile;       /* profile name */
	const char *section;       /* its INI section, for host->config_get */
	const char *receipt;       /* JSON from setup, or NULL */
	unsigned flags;            /* MAILMODE_REQ_* */
	/* ABI 1.2: check struct_size before reading these. */
	void *call;                /* host-owned: identifies the call to
	                              checkpoint and keep_original */
	const char *original;      /* JSON: the first snapshot of what this
	                              mode replaced for the domain, or NULL */
	/* ABI 1.3: check struct_size before reading it. */
	const char *const *accepted_conflicts;
	                           /* setup and preflight: NULL-terminated
	                              names of existing objects the admin
	                              accepts as conflicts (--accept-conflict
	                              NAME), or NULL for none */
	/* ABI 1.4: check struct_size before reading it. */
	const char *prepared;      /* mx_ttl: what the last MAILMODE_TTL_LOWER
	                              of the domain checkpointed or reported
	                              (its JSON), or NULL; setup: the report
	                              of a finished one of this mode's
	                              records, so that an original it keeps
	                              has the TTLs before */
	/* ABI 1.6: check struct_size before reading it. */
	int64_t deferred_since_ms; /* setup with MAILMODE_REQ_DEFERRABLE: the
	                              wall time of this setup's first
	                              MAILMODE_ERR_NOT_READY answer, 0 on its
	                              first call; against the plugin's own
	                              budget for the wait */
};

/* observe(): is the mode in effect for the domain right now? */
enum mailmode_presence {
	MAILMODE_ABSENT = 0,       /* nothing of this mode is there */
	MAILMODE_PRESENT = 1,      /* the mode is fully in effect */
	MAILMODE_PARTIAL = 2       /* some of it is there, or servers disagree */
};

/* Which change plan() describes. */
enum mailmode_plan_op {
	MAILMODE_PLAN_SETUP = 0,
	MAILMODE_PLAN_TEARDOWN = 1
};

/* ABI 1.4: what mx_ttl() does. */
enum mailmode_ttl_action {
	MAILMODE_TTL_READ = 0,     /* read-only: report the TTLs live now */
	MAILMODE_TTL_LOWER = 1,    /* lower them to the ttl given */
	MAILMODE_TTL_RESTORE = 2   /* put back those req->prepared recorded */
};

/* ABI 1.2: a configuration key a plugin reads.  section is the kind of
 * INI section: "profile" ([profile NAME]), "mode" (the plugin's own
 * [mode NAME]) or the first word of another section ("dns" for
 * [dns NAME]).  The core rejects keys that no loaded plugin (and not the
 * core) declares for a section of that kind, naming the nearest one. */
enum mailmode_key_type {
	MAILMODE_KEY_STRING = 0,
	MAILMODE_KEY_INT = 1,
	MAILMODE_KEY_DURATION = 2,     /* "30s", "5m", "2h", or milliseconds */
	MAILMODE_KEY_BOOL = 3,
	MAILMODE_KEY_PATH = 4,         /* relative to the config file */
	MAILMODE_KEY_LIST = 5          /* white-space separated */
};

struct mailmode_config_key {
	const char *section;
	const char *name;
	enum mailmode_key_type type;
	const char *default_value;     /* NULL: no default */
	const char *description;       /* one line */
};

/* Capability flags. */
#define MAILMODE_CAP_THREADSAFE (1u << 0) /* see "Threads" above */
#define MAILMODE_CAP_ADOPT      (1u << 1) /* observe can confirm a hand-made
                                             setup, teardown works without a
                                             receipt */
#define MAILMODE_CAP_FORCE      (1u << 2) /* teardown honours REQ_FORCE */

struct mailmode_plugin {
	uint16_t abi_major;
	uint16_t abi_minor;
	uint32_t struct_size;
	const char *name;          /* [a-z][a-z0-9_-]{0,31}: the mode's name */
	const char *description;   /* one line */
	const char *version;       /* the plugin's own version */
	uint64_t caps;             /* MAILMODE_CAP_* */

	/* Required.  `section` is the plugin's global INI section
	 * ("mode NAME"; may be absent from the file).  host stays valid until
	 * fini().  On success *ctx is the plugin's context. */
	int (*init)(const struct mailmode_host *host, const char *section,
	            void **ctx, struct mailmode_diag *diag);
	void (*fini)(void *ctx);

	/* Required.  Checks the keys this mode needs in the profile's section
	 * (and what they point to) without touching the network.  A profile
	 * that has none of this mode's keys gets MAILMODE_ERR_CONFIG with a
	 * summary naming the first missing key. */
	int (*validate_config)(void *ctx, const struct mailmode_request *req,
	                       struct mailmode_diag *diag);

	/* Required.  Read-only.  *report (optional, may stay NULL) is a JSON
	 * object describing what was seen, shown by `status --json`. */
	int (*observe)(void *ctx, const struct mailmode_request *req,
	               enum mailmode_presence *presence, char **report,
	               struct mailmode_diag *diag);

	/* Required.  Read-only.  *plan: the exact changes setup or teardown
	 * would make, one per line, human-readable.  (A plugin with ABI 1.5
	 * plan_actions is asked that instead for a dry run.) */
	int (*plan)(void *ctx, const struct mailmode_request *req,
	            enum mailmode_plan_op op, char **plan,
	            struct mailmode_diag *diag);

	/* Required.  Idempotent.  *receipt: JSON text (see "Receipts"). */
	int (*setup)(void *ctx, const struct mailmode_request *req,
	             char **receipt, struct mailmode_diag *diag);

	/* Required.  Read-only.  MAILMODE_OK when the mode is in effect as set
	 * up; MAILMODE_ERR_NOT_READY (retryable) when not yet.  *report as for
	 * observe; it may hold "settle_until_ms" (ms since the epoch): until
	 * then the world may still act on what setup replaced (DNS caches of
	 * the old records), so a switch keeps the old mode until that time.
	 * ABI 1.4: "finish_after_settle": true says setup has a stage that
	 * must wait until then (a lock-down that would refuse the mail of
	 * senders with the replaced records cached): once that time has
	 * passed, before the old mode's teardown, the host calls setup again
	 * with MAILMODE_REQ_SETTLED and polls verify again. */
	int (*verify)(void *ctx, const struct mailmode_request *req,
	              char **report, struct mailmode_diag *diag);

	/* Required.  Idempotent.  Puts back what setup replaced. */
	int (*teardown)(void *ctx, const struct mailmode_request *req,
	                struct mailmode_diag *diag);

	/* ABI 1.1, optional (NULL: none).  The shared resources the domain's
	 * operations use, so that a host running many domains at once can bound
	 * the load on each.  *resources: one per line, "KIND NAME", KIND being
	 * "tenant" (an API that throttles per tenant: at most the runbook's
	 * tenant cap of calls at once) or "dns-zone" (a zone taking one update
	 * at a time); other kinds get one call at a time.  Blank lines are
	 * left out; NULL or "" means no shared resource.  A failure, or a
	 * text of blank lines only, leaves them unknown: setup and teardown
	 * of a migration (which lock them) are then refused.  No network. */
	int (*resources)(void *ctx, const struct mailmode_request *req, char **resources,
	                 struct mailmode_diag *diag);

	/* ABI 1.1, optional (NULL: the plugin reads no message trace).  Where
	 * the test message with this Message-ID to recipient went, for
	 * `--quick-test`.  *report: JSON {"delivered": bool, "scans": N,
	 * "hops": ["...", ...]}: delivered to the mailbox; how many times it
	 * arrived from the service (the service profile names its sending
	 * addresses); each hop of the trace in order.  MAILMODE_ERR_NOT_READY
	 * while the trace does not list the message delivered yet.
	 * Read-only. */
	int (*trace)(void *ctx, const struct mailmode_request *req, const char *message_id,
	             const char *recipient, char **report, struct mailmode_diag *diag);

	/* ABI 1.2, optional (NULL: the host runs plan() instead).  Read-only:
	 * proves, before anything changes, that setup (op
	 * MAILMODE_PLAN_SETUP) or teardown (MAILMODE_PLAN_TEARDOWN) can run
	 * now: credentials accepted, reads succeed, and writes allowed where
	 * that can be checked without a change (RFC 2136: a signed UPDATE
	 * whose prerequisite fails).  MAILMODE_ERR_DENIED names what to
	 * grant. */
	int (*preflight)(void *ctx, const struct mailmode_request *req,
	                 enum mailmode_plan_op op, struct mailmode_diag *diag);

	/* ABI 1.2, optional (NULL: undeclared, the core does not check the
	 * plugin's sections).  The keys the plugin reads, ending with an
	 * entry whose name is NULL.  Static data; no network. */
	const struct mailmode_config_key *(*config_keys)(void);

	/* ABI 1.4, optional (NULL: the mode has no MX records whose TTL it
	 * could lower).  The cache wait of a switch is the TTL of the MX
	 * records it replaces, so an admin lowers it ahead of the change
	 * window (`mailmode prepare`).  The records are those the mode's
	 * plugin manages for the domain, whether or not the domain is in the
	 * mode (the gateway mode: the MX set in the zone the profile names,
	 * Microsoft's while the domain is in another mode).
	 *   READ     read-only: *report says what is live.
	 *   LOWER    gives every record the TTL ttl, records unchanged
	 *            otherwise, in one compare-and-swap; records already at
	 *            or below it are left alone.  Idempotent: handed its own
	 *            checkpoint in req->prepared after a crash, it keeps the
	 *            TTLs that checkpoint names as the ones before.  Before
	 *            the write: host->checkpoint with the JSON req->prepared
	 *            will carry (the records and their TTLs before); while the
	 *            domain is not in this mode, host->keep_original with the
	 *            set a later setup replaces, its TTLs the ones before, so
	 *            that a teardown restores them and not the lowered ones.
	 *   RESTORE  puts back the TTLs req->prepared names as the ones
	 *            before (undo); ttl is 0.
	 * *report: JSON {"zone": ..., "ttl": N (the ttl asked for),
	 * "ttl_now": N (the largest TTL live after the call), "ttl_before": N
	 * (the largest before the first LOWER, from req->prepared when set),
	 * "before": [...] (those records), "changed": bool (this call
	 * wrote), "records": [...] (live now)} and, when the domain is in
	 * this mode and its receipt names the TTLs, "receipt": the receipt as
	 * it is now (the host stores it).  A lost answer is
	 * MAILMODE_ERR_UNKNOWN, as for setup. */
	int (*mx_ttl)(void *ctx, const struct mailmode_request *req,
	              enum mailmode_ttl_action action, uint32_t ttl, char **report,
	              struct mailmode_diag *diag);

	/* ABI 1.4, optional (NULL: `mailmode doctor` runs validate_config
	 * and preflight instead).  Read-only: everything a switch of the
	 * domain to or from this mode needs, checked one by one without
	 * stopping at the first failure.  *checks: a JSON array of
	 *   {"scope": "tenant T" | "zone Z" | "service S" | "domain D",
	 *    "check": "token", "ok": bool, "detail": "...", "fix": "..."}
	 * ("fix" may be absent when ok; "warning": true marks an ok check
	 * that could not be fully made).  A check whose scope is shared by
	 * many domains (a tenant, a zone) must be worded the same for each:
	 * the host shows checks with the same scope and check once.
	 * MAILMODE_OK whenever *checks is set, failed checks included; an
	 * error only when no checks could be made at all. */
	int (*doctor)(void *ctx, const struct mailmode_request *req, char **checks,
	              struct mailmode_diag *diag);

	/* ABI 1.5, optional (NULL: the host runs plan() and makes each line
	 * an action {"text": line}).  Read-only.  What plan() says, as
	 * values: *actions is a JSON array, one object per change setup (op
	 * MAILMODE_PLAN_SETUP) or teardown would make, in order:
	 *   "change"  "create" | "update" | "remove" | "reuse" (exists and
	 *             matches: nothing to do) | "replace" | "note"
	 *   "object"  what it is: "inbound connector", "transport rule",
	 *             "mx" (the domain's MX set), ...; absent for a note
	 *   "name"    the object's name, when it has one
	 *   "text"    required: the line plan() would print for it
	 *   "shared"  the scope when the object serves many domains
	 *             ("tenant T", "zone Z"): the host counts it once there
	 *   "cmdlet", "parameters"  a change made by a cmdlet: its name and
	 *             its parameters as a JSON object (strings, numbers,
	 *             booleans, arrays, null), exactly those setup sends
	 *   "zone", "delete", "add"  a DNS change: the zone and the records
	 *             ({"name", "type", "ttl", and per type: "preference" and
	 *             "exchange" for MX, "data" otherwise})
	 * Warnings go in the diagnostic (MAILMODE_SEV_WARNING with
	 * MAILMODE_OK), as for plan(): the host shows them in the plan. */
	int (*plan_actions)(void *ctx, const struct mailmode_request *req,
	                    enum mailmode_plan_op op, char **actions,
	                    struct mailmode_diag *diag);

	/* For operations added by later minor versions. */
	void (*reserved[1])(void);
};

/*
 * Declares the plugin's descriptor.  Use once per plugin, with designated
 * initializers for everything but the version fields:
 *
 *   MAILMODE_PLUGIN_DEFINE(
 *       .name = "example",
 *       .description = "keeps its world in a JSON file",
 *       .version = "1.0",
 *       .init = example_init, ...);
 */
#define MAILMODE_PLUGIN_DEFINE(...)                                          \
	MAILMODE_EXPORT extern const struct mailmode_plugin mailmode_plugin_v1; \
	MAILMODE_EXPORT const struct mailmode_plugin mailmode_plugin_v1 = {     \
		.abi_major = MAILMODE_ABI_MAJOR,                                   \
		.abi_minor = MAILMODE_ABI_MINOR,                                   \
		.struct_size = sizeof(struct mailmode_plugin),                     \
		__VA_ARGS__                                                        \
	}

#ifdef __cplusplus
}
#endif

#endif /* MAILMODE_PLUGIN_H */
