/*
 * The quick test (`verify DOMAIN --quick-test ADDRESS`, and the same after
 * a switch): once the configuration checks pass, one real message, sent the
 * way the internet sends it, followed until the message trace shows it in
 * the mailbox having passed through the email-security service exactly
 * once.  A configuration can verify and still lose or double-scan mail (a
 * second region's gateway, a connector that is not used); only mail tells.
 *
 *   1. The recipient domain's MX, through [quicktest] resolver (else the
 *      resolvers of /etc/resolv.conf), in preference order, and the A
 *      records of each host through the same resolver.
 *   2. SMTP with libcurl to the first host that takes the message
 *      ([quicktest] smtp_port, default 25; MAIL FROM [quicktest] sender,
 *      default postmaster@<this host>), with a unique Message-ID.
 *   3. The message trace, read by the plugin with the ABI 1.1 trace
 *      operation that the domain's profile configures, polled with backoff
 *      until a verdict or [quicktest] timeout (default 10m).
 */
#include "quicktest.h"

#include "cli.h"
#include "config.h"
#include "domain.h"
#include "ops.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <ldns/ldns.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_SMTP_PORT 25
#define LOCAL_PART_MAX 64
#define ADDRESS_MAX (LOCAL_PART_MAX + 1 + MM_DOMAIN_MAX + 1)
#define REPLY_MAX 512
#define MX_MAX 16
#define ADDRESSES_PER_HOST 8
#define RESOLVER_TIMEOUT_S 3
#define SMTP_CONNECT_TIMEOUT_MS 15000L
#define SMTP_TIMEOUT_MS 60000L
#define FIRST_WAIT_MS 1000
#define MAX_WAIT_MS 30000
/* A verdict needs two reads that agree (see follow_trace): the second comes
 * this soon after the first that showed the message delivered. */
#define CONFIRM_WAIT_MS 2000

/* [quicktest] */
struct settings {
	char resolver[INET6_ADDRSTRLEN];   /* empty: the resolvers of /etc/resolv.conf */
	uint16_t resolver_port;
	long smtp_port;
	char sender[ADDRESS_MAX];
	char helo[MM_DOMAIN_MAX + 1];      /* EHLO name: this host's */
	long timeout_ms;
};

struct mx_host {
	char name[MM_DOMAIN_MAX + 1];
	unsigned preference;
};

struct mx_list {
	struct mx_host hosts[MX_MAX];
	size_t count;
	int implicit;                      /* no MX: the domain itself (RFC 5321 5.1) */
};

/* Who took the message. */
struct delivery {
	char mx[MM_DOMAIN_MAX + 1];
	char address[INET6_ADDRSTRLEN];
	char reply[REPLY_MAX];             /* the server's last answer */
};

struct quicktest {
	struct mm_ctx *ctx;
	const char *domain;
	const char *profile;
	char recipient[ADDRESS_MAX];
	struct settings settings;
	char uuid[37];
	char message_id[128];
	int sent;
	struct delivery delivery;
	struct mm_plugin *tracer;
	int64_t sent_at_ms;
	int64_t elapsed_ms;
	/* The last read of the trace. */
	int reads;
	int delivered;
	int scans;
	cJSON *hops;
};

/* ------------------------------------------------------------------ */
/* Addresses */

static int is_atext(unsigned char c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* A dot-atom local part (RFC 5321): no quoting, no spaces, nothing that
 * could break an SMTP command line or a header. */
static int local_part_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > LOCAL_PART_MAX || s[0] == '.' || s[len - 1] == '.')
		return 0;
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (s[i + 1] == '.')
				return 0;
		} else if (!is_atext((unsigned char)s[i])) {
			return 0;
		}
	}
	return 1;
}

/* LOCAL@DOMAIN with the domain normalised into out ("local@domain"). */
static int canonical_address(const char *address, char *out, size_t outlen, char *why,
                             size_t whylen)
{
	const char *at = strrchr(address, '@');
	char domain[MM_DOMAIN_MAX + 1];

	if (!at || !local_part_ok(address, (size_t)(at - address))) {
		snprintf(why, whylen, "not an address of the form LOCAL@DOMAIN");
		return -1;
	}
	if (mm_domain_normalize(at + 1, domain, why, whylen) != 0)
		return -1;
	snprintf(out, outlen, "%.*s@%s", (int)(at - address), address, domain);
	return 0;
}

int mm_quicktest_check_address(const char *address, const char *domain, const char *command,
                               char *err, size_t errlen)
{
	char want[MM_DOMAIN_MAX + 1], canonical[ADDRESS_MAX], why[MM_ERR_MAX];
	const char *got;

	if (!domain || mm_domain_normalize(domain, want, why, sizeof(why)) != 0)
		return 0;
	if (canonical_address(address, canonical, sizeof(canonical), why, sizeof(why)) != 0) {
		snprintf(err, errlen, "--quick-test '%s': %s (want LOCAL@%s)", address, why, want);
		return -1;
	}
	got = strrchr(canonical, '@') + 1;
	if (strcmp(got, want) != 0) {
		snprintf(err, errlen,
		         "--quick-test '%s': the address must be in %s, the domain given to %s (not %s)",
		         address, want, command, got);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Settings */

static int settings_fail(struct quicktest *qt, const char *key, const char *value,
                         const char *want)
{
	return mm_fail(qt->ctx, MM_ERR, "config %s: [quicktest] %s '%s': %s",
	               mm_config_path(qt->ctx->config), key, value, want);
}

static int parse_port(const char *text, long *port)
{
	char *end;

	errno = 0;
	*port = strtol(text, &end, 10);
	return end != text && *end == '\0' && errno == 0 && *port >= 1 && *port <= 65535 ? 0 : -1;
}

/* "ADDRESS" or "ADDRESS@PORT". */
static int parse_resolver(const char *text, struct settings *s)
{
	const char *at = strrchr(text, '@');
	size_t len = at ? (size_t)(at - text) : strlen(text);
	unsigned char buf[16];
	long port = 53;

	if (len == 0 || len >= sizeof(s->resolver))
		return -1;
	memcpy(s->resolver, text, len);
	s->resolver[len] = '\0';
	if (inet_pton(AF_INET, s->resolver, buf) != 1 && inet_pton(AF_INET6, s->resolver, buf) != 1)
		return -1;
	if (at && parse_port(at + 1, &port) != 0)
		return -1;
	s->resolver_port = (uint16_t)port;
	return 0;
}

/* This host's name, for EHLO and the default sender; only LDH characters,
 * since it goes into a URL and an SMTP command. */
static void local_host_name(char *out, size_t outlen)
{
	char name[256] = "";
	size_t i;

	if (gethostname(name, sizeof(name) - 1) != 0 || !name[0])
		snprintf(name, sizeof(name), "localhost");
	for (i = 0; name[i]; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '-' && name[i] != '.')
			name[i] = '-';
	snprintf(out, outlen, "%s", name);
}

static int read_settings(struct quicktest *qt)
{
	const struct mm_config *cfg = qt->ctx->config;
	struct settings *s = &qt->settings;
	const char *value;
	char domain[MM_DOMAIN_MAX + 1], why[MM_ERR_MAX];

	memset(s, 0, sizeof(*s));
	local_host_name(s->helo, sizeof(s->helo));
	value = mm_config_get(cfg, "quicktest", "resolver");
	if (value && *value && parse_resolver(value, s) != 0)
		return settings_fail(qt, "resolver", value,
		                     "want an IP address, optionally @PORT (192.0.2.53@5353)");
	s->smtp_port = DEFAULT_SMTP_PORT;
	value = mm_config_get(cfg, "quicktest", "smtp_port");
	if (value && *value && parse_port(value, &s->smtp_port) != 0)
		return settings_fail(qt, "smtp_port", value, "want a port number from 1 to 65535");
	value = mm_config_get(cfg, "quicktest", "sender");
	if (value && *value) {
		const char *at = strrchr(value, '@');

		if (!at || !local_part_ok(value, (size_t)(at - value)) ||
		    mm_domain_normalize(at + 1, domain, why, sizeof(why)) != 0 ||
		    strlen(value) >= sizeof(s->sender))
			return settings_fail(qt, "sender", value, "not an address of the form LOCAL@DOMAIN");
		snprintf(s->sender, sizeof(s->sender), "%s", value);
	} else {
		snprintf(s->sender, sizeof(s->sender), "postmaster@%.*s", MM_DOMAIN_MAX, s->helo);
	}
	s->timeout_ms = MM_QUICKTEST_DEFAULT_TIMEOUT_MS;
	value = mm_config_get(cfg, "quicktest", "timeout");
	if (value && *value && mm_config_duration(value, &s->timeout_ms) != 0)
		return settings_fail(qt, "timeout", value, "not a duration (e.g. 90s, 10m)");
	if (qt->ctx->args.quick_test_timeout_ms >= 0)
		s->timeout_ms = qt->ctx->args.quick_test_timeout_ms;
	return MM_OK;
}

/* ------------------------------------------------------------------ */
/* DNS: the MX hosts and their addresses */

static int make_resolver(const struct settings *s, ldns_resolver **out, char *why, size_t whylen)
{
	struct timeval timeout = { .tv_sec = RESOLVER_TIMEOUT_S };
	ldns_resolver *res = NULL;
	ldns_rdf *server = NULL;
	unsigned char buf[16];
	ldns_status status;
	int rc = -1;

	*out = NULL;
	if (s->resolver[0]) {
		server = ldns_rdf_new_frm_str(inet_pton(AF_INET, s->resolver, buf) == 1
		                              ? LDNS_RDF_TYPE_A : LDNS_RDF_TYPE_AAAA, s->resolver);
		res = ldns_resolver_new();
		if (!server || !res || ldns_resolver_push_nameserver(res, server) != LDNS_STATUS_OK) {
			snprintf(why, whylen, "out of memory");
			goto out;
		}
		ldns_resolver_set_port(res, s->resolver_port);
	} else {
		status = ldns_resolver_new_frm_file(&res, NULL);
		if (status != LDNS_STATUS_OK) {
			snprintf(why, whylen, "cannot use the resolvers of /etc/resolv.conf: %s",
			         ldns_get_errorstr_by_id(status));
			res = NULL;
			goto out;
		}
	}
	ldns_resolver_set_timeout(res, timeout);
	ldns_resolver_set_retry(res, 2);
	ldns_resolver_set_recursive(res, true);
	ldns_resolver_set_dnssec(res, false);
	*out = res;
	res = NULL;
	rc = 0;
out:
	ldns_rdf_deep_free(server);
	if (res)
		ldns_resolver_deep_free(res);
	return rc;
}

static void describe_resolver(const struct settings *s, char *out, size_t outlen)
{
	if (s->resolver[0])
		snprintf(out, outlen, "resolver %s port %u", s->resolver, s->resolver_port);
	else
		snprintf(out, outlen, "the resolvers of /etc/resolv.conf");
}

/* One query; NOERROR and NXDOMAIN are answers, anything else is not. */
static int ask(ldns_resolver *res, const char *name, ldns_rr_type type, ldns_pkt **answer,
               char *why, size_t whylen)
{
	ldns_rdf *qname = ldns_dname_new_frm_str(name);
	ldns_pkt_rcode rcode;
	ldns_status status;
	int rc = -1;

	*answer = NULL;
	if (!qname) {
		snprintf(why, whylen, "'%s' is not a domain name", name);
		goto out;
	}
	status = ldns_resolver_send(answer, res, qname, type, LDNS_RR_CLASS_IN, LDNS_RD);
	if (status != LDNS_STATUS_OK || !*answer) {
		snprintf(why, whylen, "no answer: %s", ldns_get_errorstr_by_id(status));
		goto out;
	}
	rcode = ldns_pkt_get_rcode(*answer);
	if (rcode != LDNS_RCODE_NOERROR && rcode != LDNS_RCODE_NXDOMAIN) {
		const ldns_lookup_table *entry = ldns_lookup_by_id(ldns_rcodes, (int)rcode);

		snprintf(why, whylen, "answered %s", entry ? entry->name : "an error");
		goto out;
	}
	rc = 0;
out:
	if (rc != 0) {
		ldns_pkt_free(*answer);
		*answer = NULL;
	}
	ldns_rdf_deep_free(qname);
	return rc;
}

/* A name from an rdf: lower case, no final dot ("" for the root). */
static void rdf_name(const ldns_rdf *rdf, char *out, size_t outlen)
{
	char *text = rdf ? ldns_rdf2str(rdf) : NULL;
	size_t len, i;

	snprintf(out, outlen, "%s", text ? text : "");
	free(text);
	len = strlen(out);
	if (len > 0 && out[len - 1] == '.')
		out[--len] = '\0';
	for (i = 0; i < len; i++)
		out[i] = (char)tolower((unsigned char)out[i]);
}

/* The MX hosts of domain in preference order (stable among equals). */
static int resolve_mx(ldns_resolver *res, const char *domain, struct mx_list *mx, char *why,
                      size_t whylen)
{
	ldns_pkt *answer = NULL;
	ldns_rr_list *rrs;
	size_t i, j;
	int null_mx = 0, rc = -1;

	memset(mx, 0, sizeof(*mx));
	if (ask(res, domain, LDNS_RR_TYPE_MX, &answer, why, whylen) != 0)
		goto out;
	if (ldns_pkt_get_rcode(answer) == LDNS_RCODE_NXDOMAIN) {
		snprintf(why, whylen, "%s does not exist (NXDOMAIN)", domain);
		goto out;
	}
	rrs = ldns_pkt_answer(answer);
	for (i = 0; i < ldns_rr_list_rr_count(rrs); i++) {
		const ldns_rr *rr = ldns_rr_list_rr(rrs, i);
		struct mx_host host;

		if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_MX || ldns_rr_rd_count(rr) != 2)
			continue;
		host.preference = ldns_rdf2native_int16(ldns_rr_mx_preference(rr));
		rdf_name(ldns_rr_mx_exchange(rr), host.name, sizeof(host.name));
		if (!host.name[0]) {
			null_mx = 1;
			continue;
		}
		if (mx->count == MX_MAX)
			continue;
		/* Insertion keeps equal preferences in the order served. */
		for (j = mx->count; j > 0 && mx->hosts[j - 1].preference > host.preference; j--)
			mx->hosts[j] = mx->hosts[j - 1];
		mx->hosts[j] = host;
		mx->count++;
	}
	if (mx->count == 0 && null_mx) {
		snprintf(why, whylen, "%s publishes a null MX (RFC 7505): it accepts no mail", domain);
		goto out;
	}
	if (mx->count == 0) {
		snprintf(mx->hosts[0].name, sizeof(mx->hosts[0].name), "%s", domain);
		mx->count = 1;
		mx->implicit = 1;
	}
	rc = 0;
out:
	ldns_pkt_free(answer);
	return rc;
}

/* The A records of host (a CNAME chain answered by the resolver is
 * followed: every A in the answer counts). */
static int resolve_addresses(ldns_resolver *res, const char *host,
                             char addresses[][INET6_ADDRSTRLEN], size_t *count, char *why,
                             size_t whylen)
{
	ldns_pkt *answer = NULL;
	ldns_rr_list *rrs;
	size_t i;
	int rc = -1;

	*count = 0;
	if (ask(res, host, LDNS_RR_TYPE_A, &answer, why, whylen) != 0)
		goto out;
	rrs = ldns_pkt_answer(answer);
	for (i = 0; i < ldns_rr_list_rr_count(rrs) && *count < ADDRESSES_PER_HOST; i++) {
		const ldns_rr *rr = ldns_rr_list_rr(rrs, i);
		const ldns_rdf *rdf = ldns_rr_get_type(rr) == LDNS_RR_TYPE_A ? ldns_rr_a_address(rr)
		                                                             : NULL;

		if (rdf && ldns_rdf_size(rdf) == 4 &&
		    inet_ntop(AF_INET, ldns_rdf_data(rdf), addresses[*count], INET6_ADDRSTRLEN))
			(*count)++;
	}
	if (*count == 0) {
		snprintf(why, whylen, "%s has no A record%s", host,
		         ldns_pkt_get_rcode(answer) == LDNS_RCODE_NXDOMAIN ? " (NXDOMAIN)" : "");
		goto out;
	}
	rc = 0;
out:
	ldns_pkt_free(answer);
	return rc;
}

/* ------------------------------------------------------------------ */
/* SMTP */

struct upload {
	const char *data;
	size_t len, sent;
};

static size_t read_message(char *buf, size_t size, size_t n, void *arg)
{
	struct upload *up = arg;
	size_t room = size * n, left = up->len - up->sent;
	size_t chunk = left < room ? left : room;

	memcpy(buf, up->data + up->sent, chunk);
	up->sent += chunk;
	return chunk;
}

/* The server's answers, from the response lines libcurl hands to the
 * header callback. */
struct replies {
	char last[REPLY_MAX];        /* to what came last: DATA's "250 ... queued" */
	char refusal[REPLY_MAX];     /* the first 4xx or 5xx: why it was refused */
};

static size_t keep_reply(char *line, size_t size, size_t n, void *arg)
{
	struct replies *replies = arg;
	size_t len = size * n;

	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	/* After a refusal libcurl says QUIT: its "221" explains nothing. */
	if (len == 0 || strncmp(line, "221", 3) == 0)
		return size * n;
	if ((line[0] == '4' || line[0] == '5') && !replies->refusal[0])
		snprintf(replies->refusal, REPLY_MAX, "%.*s", (int)len, line);
	snprintf(replies->last, REPLY_MAX, "%.*s", (int)len, line);
	return size * n;
}

static char *build_message(const struct quicktest *qt)
{
	time_t now = (time_t)(mm_host_wall_ms(NULL) / 1000);
	char date[64];
	char *text = NULL;
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	/* Auto-Submitted keeps auto-responders from answering a machine. */
	if (asprintf(&text,
	             "Date: %s\r\n"
	             "From: mailmode quick test <%s>\r\n"
	             "To: <%s>\r\n"
	             "Message-ID: %s\r\n"
	             "Subject: mailmode quick test %s\r\n"
	             "MIME-Version: 1.0\r\n"
	             "Content-Type: text/plain; charset=us-ascii\r\n"
	             "Auto-Submitted: auto-generated\r\n"
	             "\r\n"
	             "This message was sent by mailmode's quick test, to check that mail\r\n"
	             "for %s reaches its mailboxes through the email-security\r\n"
	             "service exactly once.  It needs no answer and can be deleted.\r\n",
	             date, qt->settings.sender, qt->recipient, qt->message_id, qt->uuid,
	             qt->domain) < 0)
		return NULL;
	return text;
}

enum send_result { SEND_ACCEPTED, SEND_REFUSED, SEND_NO_ANSWER };

/* One attempt at one address.  TLS is opportunistic and unauthenticated,
 * as between MTAs on the internet (RFC 7435): what is tested is the path
 * the domain's mail takes, and the message carries nothing secret. */
static enum send_result send_to(const struct quicktest *qt, const char *address,
                                const char *message, char *reply, char *why, size_t whylen)
{
	CURL *curl = curl_easy_init();
	struct curl_slist *rcpt = NULL;
	struct upload up = { .data = message, .len = strlen(message) };
	struct replies replies = { "", "" };
	char url[512], from[ADDRESS_MAX + 2], to[ADDRESS_MAX + 2];
	char errbuf[CURL_ERROR_SIZE] = "";
	enum send_result result = SEND_NO_ANSWER;
	CURLcode cc = CURLE_OK;
	long code = 0;

	reply[0] = '\0';
	/* The URL's path is the EHLO name. */
	snprintf(url, sizeof(url), "smtp://%.*s:%ld/%.*s", INET6_ADDRSTRLEN - 1, address,
	         qt->settings.smtp_port, MM_DOMAIN_MAX, qt->settings.helo);
	snprintf(from, sizeof(from), "<%s>", qt->settings.sender);
	snprintf(to, sizeof(to), "<%s>", qt->recipient);
	if (!curl || !(rcpt = curl_slist_append(NULL, to))) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	cc |= curl_easy_setopt(curl, CURLOPT_URL, url);
	cc |= curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "smtp");
	cc |= curl_easy_setopt(curl, CURLOPT_MAIL_FROM, from);
	cc |= curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, rcpt);
	cc |= curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
	cc |= curl_easy_setopt(curl, CURLOPT_READFUNCTION, read_message);
	cc |= curl_easy_setopt(curl, CURLOPT_READDATA, &up);
	cc |= curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, keep_reply);
	cc |= curl_easy_setopt(curl, CURLOPT_HEADERDATA, &replies);
	cc |= curl_easy_setopt(curl, CURLOPT_USE_SSL, (long)CURLUSESSL_TRY);
	cc |= curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
	cc |= curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
	cc |= curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, SMTP_CONNECT_TIMEOUT_MS);
	cc |= curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, SMTP_TIMEOUT_MS);
	cc |= curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	cc |= curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	if (cc != CURLE_OK) {
		snprintf(why, whylen, "cannot set up the SMTP transfer");
		goto out;
	}
	cc = curl_easy_perform(curl);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
	if (cc == CURLE_OK) {
		snprintf(reply, REPLY_MAX, "%s", replies.last);
		result = SEND_ACCEPTED;
	} else if (code >= 400 || replies.refusal[0]) {
		/* An answer: the server refused (MAIL, RCPT or DATA). */
		snprintf(why, whylen, "%s", replies.refusal[0] ? replies.refusal : errbuf);
		result = SEND_REFUSED;
	} else {
		snprintf(why, whylen, "%s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
	}
out:
	curl_slist_free_all(rcpt);
	curl_easy_cleanup(curl);
	return result;
}

/* Appends one line to the detail shown under the error. */
static void detail_line(struct quicktest *qt, const char *fmt, ...) MAILMODE_PRINTF(2, 3);
static void detail_line(struct quicktest *qt, const char *fmt, ...)
{
	char *detail = qt->ctx->err_detail;
	size_t size = sizeof(qt->ctx->err_detail);
	size_t used = strnlen(detail, size);
	va_list ap;

	if (used > 0 && used + 1 < size)
		detail[used++] = '\n';
	if (used + 1 >= size)
		return;
	va_start(ap, fmt);
	vsnprintf(detail + used, size - used, fmt, ap);
	va_end(ap);
}

/* Sends the message to the MX hosts in turn until one takes it.  A refusal
 * (an SMTP answer) by every host is a failed test; no answer from any is an
 * error (this host's network, a blocked port 25). */
static int send_message(struct quicktest *qt)
{
	struct mm_ctx *ctx = qt->ctx;
	ldns_resolver *res = NULL;
	struct mx_list mx;
	char where[128], why[MM_ERR_MAX];
	char *message = NULL;
	int refused = 0, tried = 0, rc = MM_ERR;
	size_t i, j;

	describe_resolver(&qt->settings, where, sizeof(where));
	mm_progress(&ctx->output, "quick test: asking %s for the MX of %s", where, qt->domain);
	if (make_resolver(&qt->settings, &res, why, sizeof(why)) != 0 ||
	    resolve_mx(res, qt->domain, &mx, why, sizeof(why)) != 0) {
		rc = mm_fail(ctx, MM_ERR, "quick test: MX of %s (%s): %s", qt->domain, where, why);
		goto out;
	}
	message = build_message(qt);
	if (!message) {
		rc = mm_fail(ctx, MM_ERR, "quick test: out of memory");
		goto out;
	}
	ctx->err_detail[0] = '\0';
	for (i = 0; i < mx.count; i++) {
		const struct mx_host *host = &mx.hosts[i];
		char addresses[ADDRESSES_PER_HOST][INET6_ADDRSTRLEN];
		size_t naddresses;

		if (resolve_addresses(res, host->name, addresses, &naddresses, why, sizeof(why)) != 0) {
			detail_line(qt, "MX %u %s: %s", host->preference, host->name, why);
			continue;
		}
		for (j = 0; j < naddresses; j++) {
			char reply[REPLY_MAX];
			enum send_result result;

			mm_progress(&ctx->output, "quick test: sending %s to %s [%s] port %ld",
			            qt->message_id, host->name, addresses[j], qt->settings.smtp_port);
			tried++;
			result = send_to(qt, addresses[j], message, reply, why, sizeof(why));
			if (result == SEND_ACCEPTED) {
				snprintf(qt->delivery.mx, sizeof(qt->delivery.mx), "%s", host->name);
				snprintf(qt->delivery.address, sizeof(qt->delivery.address), "%.*s",
				         (int)sizeof(qt->delivery.address) - 1, addresses[j]);
				snprintf(qt->delivery.reply, sizeof(qt->delivery.reply), "%s", reply);
				qt->sent = 1;
				qt->sent_at_ms = mm_host_mono_ms(NULL);
				ctx->err_detail[0] = '\0';
				rc = MM_OK;
				goto out;
			}
			refused += result == SEND_REFUSED;
			detail_line(qt, "MX %u %s [%s]: %s", host->preference, host->name, addresses[j],
			            why);
		}
	}
	if (refused)
		rc = mm_fail(ctx, MM_UNVERIFIED,
		             "%s: quick test failed: no MX of %s took the message to %s (%d refused)",
		             qt->domain, qt->domain, qt->recipient, refused);
	else if (!tried)
		rc = mm_fail(ctx, MM_ERR, "quick test: no MX host of %s has an address (%s)",
		             qt->domain, where);
	else
		rc = mm_fail(ctx, MM_ERR,
		             "quick test: no MX of %s could be reached on port %ld (%d address%s tried)",
		             qt->domain, qt->settings.smtp_port, tried, tried == 1 ? "" : "es");
out:
	free(message);
	if (res)
		ldns_resolver_deep_free(res);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The message trace */

static struct mm_op trace_op(const struct quicktest *qt, struct mm_plugin *plugin)
{
	return (struct mm_op){ .plugin = plugin, .domain = qt->domain, .profile = qt->profile };
}

/* A plugin that reads message traces and is configured for the profile:
 * the domain's own mode's first (it knows the profile best), then any. */
static int choose_tracer(struct quicktest *qt, const char *mode)
{
	struct mm_ctx *ctx = qt->ctx;
	struct mailmode_diag diag, first = { 0 };
	const char *first_name = NULL;
	int pass, candidates = 0;
	size_t i;

	ctx->err_detail[0] = '\0';
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < ctx->plugins.count; i++) {
			struct mm_plugin *p = ctx->plugins.plugins[i];
			struct mm_op op = trace_op(qt, p);

			if ((strcmp(p->desc->name, mode) == 0) != (pass == 0) || !mm_plugin_has_trace(p))
				continue;
			candidates++;
			if (mm_op_validate(&op, &diag) == MM_OK) {
				qt->tracer = p;
				ctx->err_detail[0] = '\0';
				return MM_OK;
			}
			if (!first_name) {
				first = diag;
				first_name = p->desc->name;
			}
			detail_line(qt, "%s: %s", p->desc->name, diag.summary);
		}
	}
	if (!candidates)
		return mm_fail(ctx, MM_ERR,
		               "quick test: no mode plugin in %s reads message traces (the ABI 1.1 trace operation)",
		               ctx->plugin_dir);
	/* One candidate: its own words say best what to fix. */
	if (candidates == 1) {
		snprintf(ctx->err_detail, sizeof(ctx->err_detail), "%s", first.detail);
		return mm_fail(ctx, MM_ERR, "quick test: %s: %s", first_name, first.summary);
	}
	return mm_fail(ctx, MM_ERR,
	               "quick test: no plugin that reads message traces is configured for profile %s",
	               qt->profile);
}

static int trace_failed(struct quicktest *qt, const struct mailmode_diag *diag)
{
	snprintf(qt->ctx->err_detail, sizeof(qt->ctx->err_detail), "%s", diag->detail);
	return mm_fail(qt->ctx, MM_ERR, "quick test: %s: %s", qt->tracer->desc->name,
	               diag->summary);
}

/* One read of the trace into qt.  Returns the plugin's verdict (MM_OK
 * delivered, MM_UNVERIFIED not yet) or MM_ERR with ctx->err filled. */
static int read_trace(struct quicktest *qt, struct mailmode_diag *diag)
{
	struct mm_op op = trace_op(qt, qt->tracer);
	char *text = NULL;
	cJSON *report = NULL, *hops;
	int rc = mm_op_trace(&op, qt->message_id, qt->recipient, &text, diag);

	qt->reads++;
	if (rc != MM_OK && rc != MM_UNVERIFIED) {
		rc = trace_failed(qt, diag);
		goto out;
	}
	/* Not listed yet may come without a report: nothing seen. */
	if (!text && rc == MM_UNVERIFIED)
		text = strdup("{\"delivered\": false, \"scans\": 0, \"hops\": []}");
	report = text ? cJSON_Parse(text) : NULL;
	hops = cJSON_GetObjectItemCaseSensitive(report, "hops");
	if (!cJSON_IsObject(report) || !cJSON_IsArray(hops)) {
		rc = mm_fail(qt->ctx, MM_ERR, "quick test: plugin %s returned no trace report",
		             qt->tracer->desc->name);
		goto out;
	}
	qt->delivered = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(report, "delivered"));
	qt->scans = (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(report, "scans"));
	cJSON_Delete(qt->hops);
	qt->hops = cJSON_DetachItemViaPointer(report, hops);
out:
	cJSON_Delete(report);
	free(text);
	return rc;
}

static const char *plural(int n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

/* Polls the trace until a verdict: delivered, confirmed by a second read
 * that agrees (the rows of one message are written as it travels, and one
 * read can catch the delivery before an earlier pass is listed), or a
 * failure the plugin calls final, or the deadline.  *final_diag keeps the
 * plugin's word on an undelivered message. */
static int follow_trace(struct quicktest *qt, struct mailmode_diag *final_diag)
{
	struct mm_output *out = &qt->ctx->output;
	int64_t wait_ms = FIRST_WAIT_MS, left_ms;
	int seen_delivered = 0, seen_scans = -1, rc;

	for (;;) {
		left_ms = qt->settings.timeout_ms - (mm_host_mono_ms(NULL) - qt->sent_at_ms);
		mm_host_sleep_ms(NULL, wait_ms < left_ms ? wait_ms : left_ms);
		rc = read_trace(qt, final_diag);
		if (rc == MM_ERR)
			return rc;
		qt->elapsed_ms = mm_host_mono_ms(NULL) - qt->sent_at_ms;
		if (qt->delivered && seen_delivered && seen_scans == qt->scans)
			return MM_OK;
		if (!qt->delivered && !final_diag->retryable)
			return MM_OK;
		if (qt->elapsed_ms >= qt->settings.timeout_ms)
			return MM_OK;
		seen_delivered = qt->delivered;
		seen_scans = qt->scans;
		if (qt->delivered) {
			wait_ms = CONFIRM_WAIT_MS;
			mm_progress(out, "quick test: %.0f s: delivered, %d %s by the service; confirming",
			            (double)qt->elapsed_ms / 1000, qt->scans, plural(qt->scans, "pass", "passes"));
		} else {
			mm_progress(out, "quick test: %.0f s of %.0f s: %d %s in the trace, not delivered yet",
			            (double)qt->elapsed_ms / 1000, (double)qt->settings.timeout_ms / 1000,
			            cJSON_GetArraySize(qt->hops),
			            plural(cJSON_GetArraySize(qt->hops), "hop", "hops"));
			wait_ms = wait_ms * 2 > MAX_WAIT_MS ? MAX_WAIT_MS : wait_ms * 2;
		}
	}
}

/* ------------------------------------------------------------------ */
/* The result */

static void add_json(struct quicktest *qt, int passed)
{
	cJSON *doc = cJSON_AddObjectToObject(qt->ctx->doc, "quick_test");
	cJSON *sent_to;

	if (!doc)
		return;
	cJSON_AddStringToObject(doc, "recipient", qt->recipient);
	cJSON_AddStringToObject(doc, "message_id", qt->message_id);
	if (qt->sent) {
		sent_to = cJSON_AddObjectToObject(doc, "sent_to");
		cJSON_AddStringToObject(sent_to, "mx", qt->delivery.mx);
		cJSON_AddStringToObject(sent_to, "address", qt->delivery.address);
		cJSON_AddNumberToObject(sent_to, "port", qt->settings.smtp_port);
		cJSON_AddStringToObject(sent_to, "reply", qt->delivery.reply);
	} else {
		cJSON_AddNullToObject(doc, "sent_to");
	}
	if (qt->tracer)
		cJSON_AddStringToObject(doc, "trace_by", qt->tracer->desc->name);
	else
		cJSON_AddNullToObject(doc, "trace_by");
	cJSON_AddBoolToObject(doc, "delivered", qt->delivered);
	cJSON_AddNumberToObject(doc, "scans", qt->scans);
	cJSON_AddItemToObject(doc, "hops", qt->hops ? cJSON_Duplicate(qt->hops, 1)
	                                            : cJSON_CreateArray());
	cJSON_AddNumberToObject(doc, "trace_reads", qt->reads);
	cJSON_AddNumberToObject(doc, "elapsed_ms", (double)qt->elapsed_ms);
	cJSON_AddBoolToObject(doc, "passed", passed);
}

/* What was sent and each hop: under the result line, or under the error. */
static void describe(struct quicktest *qt, int to_stdout)
{
	const cJSON *hop;
	int n = 0;

	if (to_stdout)
		printf("  message %s sent to %s [%s] port %ld\n", qt->message_id, qt->delivery.mx,
		       qt->delivery.address, qt->settings.smtp_port);
	else
		detail_line(qt, "message %s sent to %s [%s] port %ld", qt->message_id,
		            qt->delivery.mx, qt->delivery.address, qt->settings.smtp_port);
	cJSON_ArrayForEach(hop, qt->hops) {
		if (!cJSON_IsString(hop))
			continue;
		n++;
		if (to_stdout)
			printf("  hop %d: %s\n", n, hop->valuestring);
		else
			detail_line(qt, "hop %d: %s", n, hop->valuestring);
	}
	if (!n && !to_stdout)
		detail_line(qt, "the message trace (read by %s) lists no hop", qt->tracer->desc->name);
}

static int verdict(struct quicktest *qt, const struct mailmode_diag *diag)
{
	struct mm_ctx *ctx = qt->ctx;
	double seconds = (double)qt->elapsed_ms / 1000;
	int rc;

	mm_progress_end(&ctx->output);
	ctx->err_detail[0] = '\0';
	if (qt->delivered && qt->scans == 1) {
		if (!ctx->output.json) {
			printf("%s: quick test passed in %.1f s: %s got the message, scanned once by the service\n",
			       qt->domain, seconds, qt->recipient);
			describe(qt, 1);
		}
		return MM_OK;
	}
	if (qt->delivered)
		rc = mm_fail(ctx, MM_UNVERIFIED,
		             "%s: quick test failed: the message reached %s but was scanned %d %s by the service (want exactly once)",
		             qt->domain, qt->recipient, qt->scans, plural(qt->scans, "time", "times"));
	else if (!diag->retryable)
		rc = mm_fail(ctx, MM_UNVERIFIED, "%s: quick test failed: %s", qt->domain,
		             diag->summary);
	else
		rc = mm_fail(ctx, MM_UNVERIFIED,
		             "%s: quick test failed: the message was not delivered to %s within %.0f s (scanned %d %s so far)",
		             qt->domain, qt->recipient, (double)qt->settings.timeout_ms / 1000,
		             qt->scans, plural(qt->scans, "time", "times"));
	describe(qt, 0);
	return rc;
}

static int make_uuid(char out[37])
{
	unsigned char b[16];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return -1;
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);  /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);  /* RFC 4122 variant */
	snprintf(out, 37,
	         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	         b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
	         b[12], b[13], b[14], b[15]);
	return 0;
}

int mm_quicktest_run(struct mm_ctx *ctx, const char *domain, const char *profile,
                     const char *mode)
{
	struct quicktest qt = { .ctx = ctx, .domain = domain, .profile = profile };
	struct mailmode_diag diag;
	char why[MM_ERR_MAX];
	int rc;

	memset(&diag, 0, sizeof(diag));
	if (canonical_address(ctx->args.quick_test, qt.recipient, sizeof(qt.recipient), why,
	                      sizeof(why)) != 0) {
		rc = mm_fail(ctx, MM_USAGE, "--quick-test '%s': %s", ctx->args.quick_test, why);
		goto out;
	}
	if (make_uuid(qt.uuid) != 0) {
		rc = mm_fail(ctx, MM_ERR, "quick test: no random numbers: %s", strerror(errno));
		goto out;
	}
	snprintf(qt.message_id, sizeof(qt.message_id), "<mailmode-quicktest-%s@mailmode.invalid>",
	         qt.uuid);
	if ((rc = read_settings(&qt)) != MM_OK || (rc = choose_tracer(&qt, mode)) != MM_OK)
		goto out;
	/* Before any mail goes out: a trace that cannot be read (credentials,
	 * a profile without service_ips) would leave a message sent for
	 * nothing.  Nothing is listed yet for a Message-ID never used. */
	mm_progress(&ctx->output, "quick test: checking that %s can read the message trace",
	            qt.tracer->desc->name);
	rc = read_trace(&qt, &diag);
	if (rc == MM_ERR)
		goto out;
	qt.reads = qt.delivered = qt.scans = 0;
	cJSON_Delete(qt.hops);
	qt.hops = NULL;
	if ((rc = send_message(&qt)) != MM_OK)
		goto out;
	mm_progress(&ctx->output, "quick test: %s [%s] took the message: %s", qt.delivery.mx,
	            qt.delivery.address, qt.delivery.reply);
	if ((rc = follow_trace(&qt, &diag)) != MM_OK)
		goto out;
	rc = verdict(&qt, &diag);
out:
	mm_progress_end(&ctx->output);
	add_json(&qt, rc == MM_OK);
	cJSON_Delete(qt.hops);
	return rc;
}
