/*
 * The Amazon Route 53 provider (API 2013-04-01, XML, AWS Signature
 * Version 4 computed by libcurl in the host: ABI 1.4 http_request_opts).
 *
 * Credentials: an IAM access key id and its secret (secret_access_key_file,
 * optionally session_token_file for temporary credentials), or a section
 * of an AWS shared credentials file.  The files are read with the host's
 * permission checks; the secret and the token live only in the https
 * session (wiped on close) and are never logged.
 *
 * The replacement is one ChangeResourceRecordSets batch: DELETE of the MX
 * RRset exactly as read (TTL and every value) plus CREATE of the new one.
 * Route 53 applies all of it or none, and refuses it (InvalidChangeBatch)
 * when the DELETE does not match the live set: a real compare-and-swap.
 * The change is then followed (GetChange) until it is INSYNC.  Throttling
 * (400 Throttling, PriorRequestNotComplete) is retried here; 429, 503 and
 * 504 by the host.
 *
 * The hosted zone is the public one whose name is the longest suffix of
 * the domain (ListHostedZonesByName); a private one alone is refused (the
 * world does not see it), two public ones too.
 */
#include "provider.h"
#include "https.h"
#include "xml.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define API "/2013-04-01"
#define XMLNS "https://route53.amazonaws.com/doc/2013-04-01/"
#define PAGE_ITEMS 100              /* ListHostedZonesByName's maximum */
#define MAX_PAGES 50
#define THROTTLE_TRIES 5
#define THROTTLE_FIRST_MS 500
#define THROTTLE_MAX_MS 4000
#define POLL_PAUSE_MS 1000
#define BODY_MAX 16384
/* A DELETE that matches no MX set anyone keeps: the probe batch. */
#define PROBE_HOST "mailmode-probe.invalid."
/* Never a Route 53 change id (they are C and upper-case alphanumerics). */
#define PROBE_CHANGE "C0MAILMODEPROBE"

static const char GRANT[] = "grant it route53:ListHostedZonesByName, "
                            "route53:ListResourceRecordSets, "
                            "route53:ChangeResourceRecordSets and "
                            "route53:GetChange";

struct r53 {
	struct gw_https https;
	char key_id[128];           /* the access key id, for messages */
	bool have_zone;
	char zone_id[80];           /* "Z..." (without "/hostedzone/") */
	char zone_name[GW_NAME_MAX]; /* "example.com." */
};

/* What a refusal said: ErrorResponse/Error/Code or the root element
 * (InvalidChangeBatch), and the first Message. */
struct r53_error {
	char code[64];
	char message[1024];
};

/* ---- answers and errors ------------------------------------------------- */

static void parse_error(const struct gw_https_answer *answer,
                        struct r53_error *e)
{
	struct gw_xml doc = gw_xml_doc(answer->text);

	if (!gw_xml_text(&doc, "Code", e->code, sizeof(e->code)) &&
	    !gw_xml_root(&doc, e->code, sizeof(e->code)))
		snprintf(e->code, sizeof(e->code), "(no XML error body)");
	if (!gw_xml_text(&doc, "Message", e->message, sizeof(e->message)))
		e->message[0] = '\0';
}

static bool is_code(const struct r53_error *e, const char *code)
{
	return strcmp(e->code, code) == 0;
}

static bool throttled(const struct gw_https_answer *answer)
{
	struct r53_error e;

	if (answer->status != 400)
		return false;
	parse_error(answer, &e);
	return is_code(&e, "Throttling") || is_code(&e, "ThrottlingException") ||
	       is_code(&e, "PriorRequestNotComplete");
}

/* Why the credentials were refused, when that is what a code says. */
static const char *credential_hint(const struct r53_error *e)
{
	if (is_code(e, "SignatureDoesNotMatch") && strstr(e->message, "expired"))
		return "the request's time is off (is the clock right?); ";
	if (is_code(e, "SignatureDoesNotMatch"))
		return "the secret access key does not match the access key id; ";
	if (is_code(e, "InvalidClientTokenId"))
		return "AWS does not know the access key id; ";
	if (is_code(e, "ExpiredToken"))
		return "the session token has expired; renew session_token_file and ";
	if (is_code(e, "IncompleteSignature") ||
	    is_code(e, "MissingAuthenticationToken"))
		return "the request was not signed as AWS expects; ";
	return "";
}

/* A refused call; the diagnostic names what to grant when it is access. */
static int refused(struct gw_provider *provider, const char *what,
                   const struct gw_https_answer *answer)
{
	struct r53 *self = provider->impl;
	const struct gw_op *op = provider->op;
	const struct mailmode_host *host = op->ctx->host;
	const char *hint;
	struct r53_error e;

	parse_error(answer, &e);
	hint = credential_hint(&e);
	if (answer->status == 403 || hint[0] || is_code(&e, "AccessDenied")) {
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
		               "Route 53 refused %s to access key %s of [%s]: %s%s "
		               "(HTTP %ld %s: %.200s)", what, self->key_id,
		               op->cfg->dns_section, hint, GRANT, answer->status,
		               e.code, e.message);
		return MAILMODE_ERR_DENIED;
	}
	host->diag_set(op->diag, MAILMODE_SEV_ERROR,
	               throttled(answer) || answer->status == 429 ||
	                       answer->status >= 500,
	               "Route 53 refused %s (HTTP %ld %s: %.200s)%s", what,
	               answer->status, e.code, e.message,
	               throttled(answer) || answer->status == 429
	                       ? ": still throttled after the retries" : "");
	return MAILMODE_ERR_FAILED;
}

/* One API call, throttling retried.  MAILMODE_OK when an answer came (any
 * status; a throttled one only after THROTTLE_TRIES); MAILMODE_ERR_UNKNOWN
 * when the request may have gone out and no answer came; another error
 * when nothing was sent.  The diagnostic is set unless OK. */
static int api_call(struct gw_provider *provider, const char *method,
                    const char *path, const char *body, const char *what,
                    struct gw_https_answer *answer)
{
	struct r53 *self = provider->impl;
	const struct gw_op *op = provider->op;
	const struct mailmode_host *host = op->ctx->host;
	int64_t pause = THROTTLE_FIRST_MS;
	int tries, rc;

	for (tries = 1;; tries++) {
		rc = gw_https_api_call(&self->https, "Route 53", method, path,
		                       body ? "text/xml" : NULL, body, what, answer);
		if (rc != MAILMODE_OK)
			return rc == MAILMODE_ERR_UNKNOWN ? rc : MAILMODE_ERR_FAILED;
		if (!throttled(answer) || tries >= THROTTLE_TRIES)
			return MAILMODE_OK;
		host->log(host->handle, MAILMODE_LOG_INFO, "%s: Route 53 throttled "
		          "%s: retrying in %lld ms", op->domain, what,
		          (long long)pause);
		gw_https_answer_free(answer);
		host->sleep_ms(host->handle, pause);
		pause = pause * 2 > THROTTLE_MAX_MS ? THROTTLE_MAX_MS : pause * 2;
	}
}

/* GET; MAILMODE_OK only with a 200 answer. */
static int api_get(struct gw_provider *provider, const char *path,
                   const char *what, struct gw_https_answer *answer)
{
	int rc = api_call(provider, "GET", path, NULL, what, answer);

	if (rc != MAILMODE_OK)
		return MAILMODE_ERR_FAILED; /* a read: nothing to be unsure of */
	if (answer->status == 200)
		return MAILMODE_OK;
	rc = refused(provider, what, answer);
	gw_https_answer_free(answer);
	return rc;
}

/* "true" in an element of the answer. */
static bool xml_true(const struct gw_xml *in, const char *tag)
{
	char text[8];

	return gw_xml_text(in, tag, text, sizeof(text)) &&
	       strcmp(text, "true") == 0;
}

/* ---- the hosted zone ------------------------------------------------------ */

struct zone_match {
	int public_count, private_count;
	char id[80];                /* the public one's */
	char ids[256];              /* every match, for the message */
	char next_name[GW_NAME_MAX], next_id[64]; /* the next page; "" = none */
};

static void note_zone(const struct gw_xml *zone, const char *dns_name,
                      struct zone_match *m)
{
	char name[GW_NAME_MAX], id[80];
	const char *bare;

	if (!gw_xml_text(zone, "Name", name, sizeof(name)) ||
	    !gw_xml_text(zone, "Id", id, sizeof(id)) ||
	    strcasecmp(name, dns_name) != 0)
		return;
	bare = strncmp(id, "/hostedzone/", 12) == 0 ? id + 12 : id;
	snprintf(m->ids + strlen(m->ids), sizeof(m->ids) - strlen(m->ids),
	         "%s%s", m->ids[0] ? ", " : "", bare);
	if (xml_true(zone, "PrivateZone")) {
		m->private_count++;
		return;
	}
	if (++m->public_count == 1)
		snprintf(m->id, sizeof(m->id), "%s", bare);
}

/* One page of ListHostedZonesByName from (name, id) on. */
static int zones_page(struct gw_provider *provider, const char *dns_name,
                      const char *from_name, const char *from_id,
                      struct zone_match *m)
{
	struct gw_https_answer answer;
	struct gw_xml doc, it, zone;
	char path[GW_URL_MAX * 2], what[GW_NAME_MAX + 64];
	int rc;

	/* Parameters in canonical (sorted) order: the URL is what is signed. */
	snprintf(path, sizeof(path), API "/hostedzonesbyname?dnsname=");
	gw_https_escape(path, sizeof(path), from_name);
	if (from_id[0]) {
		strcat(path, "&hostedzoneid=");
		gw_https_escape(path, sizeof(path), from_id);
	}
	snprintf(path + strlen(path), sizeof(path) - strlen(path),
	         "&maxitems=%d", PAGE_ITEMS);
	snprintf(what, sizeof(what), "the hosted-zone lookup of %s", dns_name);
	rc = api_get(provider, path, what, &answer);
	if (rc != MAILMODE_OK)
		return rc;
	doc = it = gw_xml_doc(answer.text);
	while (gw_xml_next(&it, "HostedZone", &zone))
		note_zone(&zone, dns_name, m);
	m->next_name[0] = m->next_id[0] = '\0';
	/* Zones come sorted by name: later pages matter only while they can
	 * still hold this name. */
	if (xml_true(&doc, "IsTruncated") &&
	    gw_xml_text(&doc, "NextDNSName", m->next_name, sizeof(m->next_name)) &&
	    strcasecmp(m->next_name, dns_name) == 0)
		gw_xml_text(&doc, "NextHostedZoneId", m->next_id, sizeof(m->next_id));
	else
		m->next_name[0] = '\0';
	gw_https_answer_free(&answer);
	return MAILMODE_OK;
}

static int zones_named(struct gw_provider *provider, const char *dns_name,
                       struct zone_match *m)
{
	int pages = 0, rc;

	memset(m, 0, sizeof(*m));
	rc = zones_page(provider, dns_name, dns_name, "", m);
	while (rc == MAILMODE_OK && m->next_name[0] && ++pages < MAX_PAGES) {
		char name[GW_NAME_MAX], id[64];

		snprintf(name, sizeof(name), "%s", m->next_name);
		snprintf(id, sizeof(id), "%s", m->next_id);
		rc = zones_page(provider, dns_name, name, id, m);
	}
	return rc;
}

static void use_zone(struct gw_provider *provider, const char *id,
                     const char *name)
{
	struct r53 *self = provider->impl;

	snprintf(self->zone_id, sizeof(self->zone_id), "%s", id);
	snprintf(self->zone_name, sizeof(self->zone_name), "%s", name);
	snprintf(provider->where, sizeof(provider->where), "Route 53 hosted zone "
	         "%.200s (id %s)", name, id);
	self->have_zone = true;
}

/* The longest suffix of fqdn that is one public hosted zone: its id and
 * name. */
static int look_zone_up(struct gw_provider *provider, const char *fqdn,
                        char *id, char *name)
{
	struct r53 *self = provider->impl;
	const struct gw_op *op = provider->op;
	const struct mailmode_host *host = op->ctx->host;
	const char *candidate = fqdn;
	struct zone_match m;
	int rc;

	/* Down to two labels: a zone is never a bare TLD here. */
	for (; strchr(candidate, '.') != candidate + strlen(candidate) - 1;
	     candidate = strchr(candidate, '.') + 1) {
		rc = zones_named(provider, candidate, &m);
		if (rc != MAILMODE_OK)
			return rc;
		if (m.public_count > 1 || (m.public_count == 0 && m.private_count)) {
			host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
			               "Route 53 shows %s named %s to access key %s "
			               "(ids %s): refusing it", m.public_count > 1 ?
			               "more than one public hosted zone" :
			               "only a private hosted zone", candidate,
			               self->key_id, m.ids);
			return MAILMODE_ERR_FAILED;
		}
		if (m.public_count == 1) {
			snprintf(id, GW_NAME_MAX, "%s", m.id);
			snprintf(name, GW_NAME_MAX, "%s", candidate);
			return MAILMODE_OK;
		}
	}
	host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
	               "no Route 53 hosted zone holds %s for access key %s of "
	               "[%s]: is it the right AWS account, and may the key list "
	               "hosted zones (route53:ListHostedZonesByName)?", op->domain,
	               self->key_id, op->cfg->dns_section);
	return MAILMODE_ERR_FAILED;
}

/* The hosted zone of fqdn: this handle's, or the context's (provider.h). */
static int find_zone(struct gw_provider *provider, const char *fqdn)
{
	struct r53 *self = provider->impl;

	if (self->have_zone)
		return MAILMODE_OK;
	return gw_zone_cached(provider, fqdn, look_zone_up, use_zone);
}

/* ---- reading -------------------------------------------------------------- */

static int unusable(const struct gw_op *op, const char *fqdn, const char *why)
{
	op->ctx->host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0, "Route 53 "
	                        "returned an MX record set of %s that mailmode "
	                        "cannot use (%s)", fqdn, why);
	return MAILMODE_ERR_FAILED;
}

/* The values of one ResourceRecordSet, if it is the MX set of fqdn. */
static int take_rrset(const struct gw_op *op, const struct gw_xml *rrset,
                      const char *fqdn, struct gw_mx_set *set)
{
	struct gw_xml it = *rrset, rr;
	char name[GW_NAME_MAX], type[16], ttl_text[16], value[GW_NAME_MAX + 8];
	char host[GW_NAME_MAX], extra;
	unsigned pref;
	unsigned long ttl;
	char *end;

	if (!gw_xml_text(rrset, "Name", name, sizeof(name)) ||
	    !gw_xml_text(rrset, "Type", type, sizeof(type)) ||
	    strcasecmp(name, fqdn) != 0 || strcmp(type, "MX") != 0)
		return MAILMODE_OK;
	if (gw_xml_text(rrset, "SetIdentifier", value, sizeof(value)))
		return unusable(op, fqdn, "a routing policy: mailmode swaps only "
		                "simple record sets");
	if (!gw_xml_text(rrset, "TTL", ttl_text, sizeof(ttl_text)) ||
	    (ttl = strtoul(ttl_text, &end, 10), *end != '\0') || ttl > 2147483647UL)
		return unusable(op, fqdn, "no TTL");
	while (gw_xml_next(&it, "ResourceRecord", &rr)) {
		if (!gw_xml_text(&rr, "Value", value, sizeof(value)) ||
		    sscanf(value, "%u %255s %c", &pref, host, &extra) != 2 ||
		    pref > 65535 ||
		    gw_mx_set_add(set, (uint16_t)pref, (uint32_t)ttl, host) !=
		            MAILMODE_OK)
			return unusable(op, fqdn, "a value that is not 'PREF HOST', "
			                "or too many of them");
	}
	return MAILMODE_OK;
}

/* ListResourceRecordSets from (name, MX) on: the first set listed is the
 * MX set when the name has one.  A simple set is one element, so one page
 * holds it; the next page starting with the same name and type means a
 * routing policy (several sets), which mailmode does not swap. */
static int r53_get_rrset(struct gw_provider *provider, const char *name,
                         struct gw_rrset_version *version)
{
	struct r53 *self = provider->impl;
	struct gw_https_answer answer;
	struct gw_xml doc, it, rrset;
	char fqdn[GW_NAME_MAX + 1], path[GW_URL_MAX * 2], what[GW_NAME_MAX + 64];
	char next[GW_NAME_MAX], type[16];
	int rc;

	memset(version, 0, sizeof(*version));
	snprintf(fqdn, sizeof(fqdn), "%s.", name);
	rc = find_zone(provider, fqdn);
	if (rc != MAILMODE_OK)
		return rc;
	/* Parameters in canonical (sorted) order: the URL is what is signed. */
	snprintf(path, sizeof(path), API "/hostedzone/%s/rrset?maxitems=%d&name=",
	         self->zone_id, PAGE_ITEMS);
	gw_https_escape(path, sizeof(path), fqdn);
	strcat(path, "&type=MX");
	snprintf(what, sizeof(what), "the read of the MX record set of %s", name);
	rc = api_get(provider, path, what, &answer);
	if (rc != MAILMODE_OK)
		return rc;
	doc = it = gw_xml_doc(answer.text);
	while (rc == MAILMODE_OK && gw_xml_next(&it, "ResourceRecordSet", &rrset))
		rc = take_rrset(provider->op, &rrset, fqdn, &version->rrset);
	if (rc == MAILMODE_OK && xml_true(&doc, "IsTruncated") &&
	    gw_xml_text(&doc, "NextRecordName", next, sizeof(next)) &&
	    gw_xml_text(&doc, "NextRecordType", type, sizeof(type)) &&
	    strcasecmp(next, fqdn) == 0 && strcmp(type, "MX") == 0)
		rc = unusable(provider->op, fqdn, "more than one set: a routing "
		              "policy; mailmode swaps only simple record sets");
	gw_https_answer_free(&answer);
	return rc;
}

/* ---- the change ------------------------------------------------------------ */

/* Appends printf output to body (BODY_MAX); false when it does not fit. */
static bool put(char *body, const char *fmt, ...) MAILMODE_PRINTF(2, 3);
static bool put(char *body, const char *fmt, ...)
{
	size_t used = strlen(body);
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(body + used, BODY_MAX - used, fmt, ap);
	va_end(ap);
	return n >= 0 && (size_t)n < BODY_MAX - used;
}

/* One <Change>.  Names and hosts are LDH (checked on the way in), so they
 * need no XML escaping. */
static bool put_change(char *body, const char *action, const char *fqdn,
                       const struct gw_mx_set *set)
{
	uint32_t ttl;
	size_t i;
	bool ok;

	gw_mx_set_one_ttl(set, &ttl);
	ok = put(body, "<Change><Action>%s</Action><ResourceRecordSet><Name>%s"
	         "</Name><Type>MX</Type><TTL>%u</TTL><ResourceRecords>", action,
	         fqdn, ttl);
	for (i = 0; ok && i < set->count; i++)
		ok = put(body, "<ResourceRecord><Value>%u %s</Value>"
		         "</ResourceRecord>", set->mx[i].pref, set->mx[i].host);
	return ok && put(body, "</ResourceRecords></ResourceRecordSet></Change>");
}

/* ChangeResourceRecordSetsRequest: DELETE old (if any), CREATE new (if
 * any).  NULL when out of memory. */
static char *change_body(const char *fqdn, const struct gw_mx_set *old,
                         const struct gw_mx_set *new, const char *comment)
{
	char *body = calloc(1, BODY_MAX);
	bool ok;

	if (!body)
		return NULL;
	ok = put(body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	         "<ChangeResourceRecordSetsRequest xmlns=\"" XMLNS "\">"
	         "<ChangeBatch><Comment>%s</Comment><Changes>", comment);
	if (ok && old->count)
		ok = put_change(body, "DELETE", fqdn, old);
	if (ok && new->count)
		ok = put_change(body, "CREATE", fqdn, new);
	if (ok)
		ok = put(body, "</Changes></ChangeBatch>"
		         "</ChangeResourceRecordSetsRequest>");
	if (!ok) {
		free(body);
		return NULL;
	}
	return body;
}

/* GetChange: the change's status (left as it was without an answer). */
static void poll_change(struct gw_provider *provider, const char *id,
                        char *status, size_t len)
{
	struct gw_https_answer answer;
	struct gw_xml doc;
	char path[GW_URL_MAX];

	snprintf(path, sizeof(path), API "/change/%s", id);
	if (api_get(provider, path, "GetChange", &answer) != MAILMODE_OK)
		return;
	doc = gw_xml_doc(answer.text);
	if (!gw_xml_text(&doc, "Status", status, len))
		snprintf(status, len, "?");
	gw_https_answer_free(&answer);
}

/* A batch Route 53 answered with an error. */
static enum gw_replace_outcome change_refused(struct gw_provider *provider,
                                              const char *name,
                                              const struct gw_https_answer *answer)
{
	const struct gw_op *op = provider->op;
	const struct mailmode_host *host = op->ctx->host;
	struct r53_error e;

	parse_error(answer, &e);
	if (answer->status >= 500) {
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 1, "Route 53 answered "
		               "the change of %s with a server error (HTTP %ld %s): "
		               "outcome unknown", name, answer->status, e.code);
		return GW_REPLACE_UNKNOWN;
	}
	if (answer->status == 400 && is_code(&e, "InvalidChangeBatch")) {
		char detail[MAILMODE_DIAG_SUMMARY_MAX / 2];

		snprintf(detail, sizeof(detail), "InvalidChangeBatch: %.200s",
		         e.message);
		return gw_precondition_refused(provider, name, "Route 53", "change", detail);
	}
	return refused(provider, "the change of the MX record set", answer) ==
	               MAILMODE_ERR_DENIED ? GW_REPLACE_DENIED : GW_REPLACE_FAILED;
}

/* POST the batch; the answer is classified by the caller. */
static int post_change(struct gw_provider *provider, const char *body,
                       struct gw_https_answer *answer)
{
	struct r53 *self = provider->impl;
	char path[GW_URL_MAX];

	snprintf(path, sizeof(path), API "/hostedzone/%s/rrset", self->zone_id);
	return api_call(provider, "POST", path, body,
	                "the change of the MX record set", answer);
}

static enum gw_replace_outcome r53_replace_rrset(
	struct gw_provider *provider, const char *name,
	const struct gw_rrset_version *expected,
	const struct gw_mx_set *replacement)
{
	const struct gw_op *op = provider->op;
	struct gw_https_answer answer = { 0 };
	enum gw_replace_outcome outcome = GW_REPLACE_FAILED;
	char fqdn[GW_NAME_MAX + 1], id[64], status[32];
	struct gw_xml doc;
	char *body = NULL;
	int rc;

	snprintf(fqdn, sizeof(fqdn), "%s.", name);
	if (!gw_need_one_ttl(op, "Route 53", name, replacement))
		goto out;
	body = change_body(fqdn, &expected->rrset, replacement, "mailmode");
	if (!body || find_zone(provider, fqdn) != MAILMODE_OK)
		goto out;
	rc = post_change(provider, body, &answer);
	if (rc == MAILMODE_ERR_UNKNOWN) {
		gw_diag_outcome_unknown(op);
		outcome = GW_REPLACE_UNKNOWN;
		goto out;
	}
	if (rc != MAILMODE_OK)
		goto out;
	if (answer.status != 200) {
		outcome = change_refused(provider, name, &answer);
		goto out;
	}
	doc = gw_xml_doc(answer.text);
	if (!gw_xml_text(&doc, "Id", id, sizeof(id)))
		snprintf(id, sizeof(id), "?");
	if (!gw_xml_text(&doc, "Status", status, sizeof(status)))
		snprintf(status, sizeof(status), "PENDING");
	if (strcmp(id, "?") != 0)
		gw_follow_change(provider, "Route 53",
		                 strncmp(id, "/change/", 8) == 0 ? id + 8 : id,
		                 status, "INSYNC", POLL_PAUSE_MS, poll_change);
	outcome = GW_REPLACE_OK;
out:
	gw_https_answer_free(&answer);
	free(body);
	return outcome;
}

/* ---- probe and plan ---------------------------------------------------- */

/* A batch that cannot apply: it DELETEs an MX set nobody has (and
 * CREATEs it back), so Route 53 refuses all of it as InvalidChangeBatch,
 * after checking that the key may change the zone's MX records (IAM
 * conditions on names and types included: it is the same name and type). */
static enum gw_replace_outcome probe_change(struct gw_provider *provider,
                                            const char *name)
{
	const struct gw_op *op = provider->op;
	const struct mailmode_host *host = op->ctx->host;
	struct gw_https_answer answer = { 0 };
	struct gw_mx_set probe = { 0 };
	enum gw_replace_outcome outcome = GW_REPLACE_FAILED;
	char fqdn[GW_NAME_MAX + 1], *body;
	struct r53_error e;
	int rc;

	snprintf(fqdn, sizeof(fqdn), "%s.", name);
	gw_mx_set_add(&probe, 0, 1, PROBE_HOST);
	body = change_body(fqdn, &probe, &probe, "mailmode probe: never applies");
	if (!body)
		return GW_REPLACE_FAILED;
	rc = post_change(provider, body, &answer);
	free(body);
	if (rc != MAILMODE_OK)
		return rc == MAILMODE_ERR_UNKNOWN ? GW_REPLACE_UNKNOWN
		                                  : GW_REPLACE_FAILED;
	parse_error(&answer, &e);
	if (answer.status == 400 && is_code(&e, "InvalidChangeBatch")) {
		outcome = GW_REPLACE_OK;
	} else if (answer.status == 403 || credential_hint(&e)[0]) {
		outcome = refused(provider, "a change of the MX record set",
		                  &answer) == MAILMODE_ERR_DENIED ? GW_REPLACE_DENIED
		                                                  : GW_REPLACE_FAILED;
	} else {
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, throttled(&answer),
		               "Route 53 answered the probe batch (a DELETE of an MX "
		               "set that does not exist) unexpectedly (HTTP %ld %s: "
		               "%.200s): whether the key may change records is not "
		               "proven", answer.status, e.code, e.message);
	}
	gw_https_answer_free(&answer);
	return outcome;
}

/* GetChange of a change that does not exist: NoSuchChange proves the
 * permission, a refusal names it. */
static enum gw_replace_outcome probe_get_change(struct gw_provider *provider)
{
	struct gw_https_answer answer = { 0 };
	enum gw_replace_outcome outcome = GW_REPLACE_OK;
	struct r53_error e;
	int rc;

	rc = api_call(provider, "GET", API "/change/" PROBE_CHANGE,
	              NULL, "GetChange", &answer);
	if (rc != MAILMODE_OK)
		return GW_REPLACE_FAILED;
	parse_error(&answer, &e);
	if (!(answer.status == 404 && is_code(&e, "NoSuchChange")))
		outcome = refused(provider, "GetChange", &answer) ==
		                  MAILMODE_ERR_DENIED ? GW_REPLACE_DENIED
		                                      : GW_REPLACE_FAILED;
	gw_https_answer_free(&answer);
	return outcome;
}

static enum gw_replace_outcome r53_probe_update(struct gw_provider *provider,
                                                const char *name)
{
	struct gw_rrset_version live;
	enum gw_replace_outcome outcome;
	int rc;

	rc = r53_get_rrset(provider, name, &live);
	if (rc != MAILMODE_OK)
		return rc == MAILMODE_ERR_DENIED ? GW_REPLACE_DENIED : GW_REPLACE_FAILED;
	outcome = probe_change(provider, name);
	if (outcome == GW_REPLACE_OK)
		outcome = probe_get_change(provider);
	if (outcome == GW_REPLACE_OK)
		snprintf(provider->proven, sizeof(provider->proven),
		         "the access key is valid, lists the hosted zone, reads its "
		         "MX record set, may change it (a batch deleting an MX set "
		         "that does not exist was refused for that reason only) and "
		         "may follow changes (GetChange); the change itself is a "
		         "compare-and-swap, so nothing else is left unproven");
	return outcome;
}

static int r53_describe_replace(struct gw_provider *provider, const char *name,
                                const struct gw_rrset_version *expected,
                                const struct gw_mx_set *replacement,
                                char *buf, size_t len)
{
	struct r53 *self = provider->impl;
	const struct gw_op *op = provider->op;

	gw_append_line(buf, len, "Route 53 ChangeResourceRecordSets to hosted zone "
	               "%s (id %s) at %s, access key %s of [%s]:", self->zone_name,
	               self->zone_id, op->cfg->api_url, self->key_id,
	               op->cfg->dns_section);
	if (!expected->rrset.count)
		gw_append_line(buf, len, "  precondition: %s. has no MX record set "
		               "(the CREATE fails if one exists)", name);
	gw_append_rrset(buf, len, "DELETE (must match the live set exactly, TTL "
	              "included, or Route 53 refuses the whole batch)", name,
	              &expected->rrset);
	gw_append_rrset(buf, len, "CREATE", name, replacement);
	gw_append_line(buf, len, "  then: GetChange until the change is INSYNC");
	return MAILMODE_OK;
}

static void r53_close(struct gw_provider *provider)
{
	struct r53 *self;

	if (!provider)
		return;
	self = provider->impl;
	gw_https_close(&self->https);
	gw_provider_free(provider);
}

static const struct gw_provider_ops r53_ops = {
	.name = "route53",
	.get_rrset = r53_get_rrset,
	.replace_rrset = r53_replace_rrset,
	.probe_update = r53_probe_update,
	.describe_replace = r53_describe_replace,
	.close = r53_close,
};

/* ---- credentials ------------------------------------------------------------ */

struct r53_creds {
	char key_id[128];
	char *secret;               /* malloc'ed, wiped by creds_free */
	char *token;                /* NULL: none */
};

static void wipe_free(char **s)
{
	if (*s) {
		explicit_bzero(*s, strlen(*s));
		free(*s);
	}
	*s = NULL;
}

static void creds_free(struct r53_creds *c)
{
	wipe_free(&c->secret);
	wipe_free(&c->token);
}

/* A secret or token: printable, no blanks.  An AWS key id: upper-case
 * letters and digits. */
static bool is_word(const char *s, bool key_id)
{
	if (!s || !*s)
		return false;
	for (; *s; s++)
		if (key_id ? !((*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9'))
		           : (*s <= ' ' || *s > '~'))
			return false;
	return true;
}

static int bad_creds(const struct gw_ctx *ctx, const struct gw_config *cfg,
                     const char *key, const char *file, const char *why,
                     struct mailmode_diag *diag)
{
	ctx->host->diag_set(diag, MAILMODE_SEV_ERROR, 0, "[%s] %s: '%s' %s",
	                    cfg->dns_section, key, file, why);
	return MAILMODE_ERR_CONFIG;
}

/* A secret file through the host (permission-checked), copied into *out. */
static int load_file(const struct gw_ctx *ctx, const struct gw_config *cfg,
                     const char *key, const char *file, const char *what,
                     char **out, struct mailmode_diag *diag)
{
	const struct mailmode_host *host = ctx->host;
	char *text = NULL;
	int rc;

	rc = host->secret_load(host->handle, file, &text, diag);
	if (rc != MAILMODE_OK) {
		host->diag_append(diag, "[%s] %s: '%s' (%s)", cfg->dns_section, key,
		                  file, what);
		return rc;
	}
	*out = strdup(text);
	host->secret_free(host->handle, text);
	return *out ? MAILMODE_OK : MAILMODE_ERR_NOMEM;
}

/* The value of `key` in section [profile] of an AWS credentials file
 * (INI), copied into a malloc'ed string; NULL when absent. */
static char *ini_value(const char *text, const char *profile, const char *key)
{
	const char *line = text, *eol, *v, *e;
	bool in = false;
	size_t n, kl = strlen(key), pl = strlen(profile);

	for (; line && *line; line = eol ? eol + 1 : NULL) {
		eol = strchr(line, '\n');
		n = eol ? (size_t)(eol - line) : strlen(line);
		while (n && (*line == ' ' || *line == '\t'))
			line++, n--;
		while (n && (line[n - 1] == ' ' || line[n - 1] == '\t' ||
		             line[n - 1] == '\r'))
			n--;
		if (n && line[0] == '[') {
			in = n == pl + 2 && line[n - 1] == ']' &&
			     strncmp(line + 1, profile, pl) == 0;
			continue;
		}
		if (!in || n <= kl || strncmp(line, key, kl) != 0)
			continue;
		for (v = line + kl, e = line + n; v < e && (*v == ' ' || *v == '\t');)
			v++;
		if (v >= e || *v != '=')
			continue;
		for (v++; v < e && (*v == ' ' || *v == '\t');)
			v++;
		return strndup(v, (size_t)(e - v));
	}
	return NULL;
}

/* [profile] of an AWS shared credentials file. */
static int load_shared(const struct gw_ctx *ctx, const struct gw_config *cfg,
                       struct r53_creds *c, struct mailmode_diag *diag)
{
	char *text = NULL, *id = NULL;
	int rc;

	rc = load_file(ctx, cfg, "aws_credentials_file", cfg->credentials_file,
	               "AWS credentials", &text, diag);
	if (rc != MAILMODE_OK)
		return rc;
	id = ini_value(text, cfg->aws_profile, "aws_access_key_id");
	c->secret = ini_value(text, cfg->aws_profile, "aws_secret_access_key");
	c->token = ini_value(text, cfg->aws_profile, "aws_session_token");
	wipe_free(&text);
	if (!is_word(id, true) || strlen(id) >= sizeof(c->key_id) ||
	    !is_word(c->secret, false) || (c->token && !is_word(c->token, false)))
		rc = bad_creds(ctx, cfg, "aws_credentials_file", cfg->credentials_file,
		               "has no usable aws_access_key_id and "
		               "aws_secret_access_key in its profile section",
		               diag);
	else
		snprintf(c->key_id, sizeof(c->key_id), "%s", id);
	free(id);
	return rc;
}

static int load_creds(const struct gw_ctx *ctx, const struct gw_config *cfg,
                      struct r53_creds *c, struct mailmode_diag *diag)
{
	int rc;

	memset(c, 0, sizeof(*c));
	if (cfg->aws_credentials_file)
		rc = load_shared(ctx, cfg, c, diag);
	else {
		snprintf(c->key_id, sizeof(c->key_id), "%s", cfg->access_key_id);
		rc = load_file(ctx, cfg, "secret_access_key_file",
		               cfg->credentials_file, "IAM secret access key",
		               &c->secret, diag);
		if (rc == MAILMODE_OK && !is_word(c->secret, false))
			rc = bad_creds(ctx, cfg, "secret_access_key_file",
			               cfg->credentials_file, "does not hold a secret "
			               "access key (one word)", diag);
		if (rc == MAILMODE_OK && !is_word(c->key_id, true))
			rc = bad_creds(ctx, cfg, "access_key_id", c->key_id, "is not "
			               "an AWS access key id (upper-case letters and "
			               "digits)", diag);
	}
	if (rc == MAILMODE_OK && cfg->session_token_file[0]) {
		wipe_free(&c->token);
		rc = load_file(ctx, cfg, "session_token_file", cfg->session_token_file,
		               "AWS session token", &c->token, diag);
		if (rc == MAILMODE_OK && !is_word(c->token, false))
			rc = bad_creds(ctx, cfg, "session_token_file",
			               cfg->session_token_file, "does not hold a session "
			               "token (one word)", diag);
	}
	if (rc != MAILMODE_OK)
		creds_free(c);
	return rc;
}

int gw_route53_check_credentials(const struct gw_ctx *ctx,
                                 const struct gw_config *cfg,
                                 struct mailmode_diag *diag)
{
	struct r53_creds c;
	int rc = load_creds(ctx, cfg, &c, diag);

	creds_free(&c);
	return rc;
}

int gw_route53_open(struct gw_op *op, struct gw_provider **out)
{
	struct gw_provider *provider;
	struct r53 *self;
	struct r53_creds c = { 0 };
	char signing[128];
	int rc;

	*out = NULL;
	rc = gw_provider_new(op, &r53_ops, sizeof(*self), "Route 53", &provider);
	if (rc != MAILMODE_OK)
		return rc;
	self = provider->impl;
	snprintf(signing, sizeof(signing), "aws:amz:%s:route53", op->cfg->region);
	rc = load_creds(op->ctx, op->cfg, &c, op->diag);
	if (rc == MAILMODE_OK)
		rc = gw_https_open(op, &self->https);
	if (rc == MAILMODE_OK) {
		snprintf(self->key_id, sizeof(self->key_id), "%s", c.key_id);
		self->https.accept = "text/xml";
		rc = gw_https_set_sigv4(&self->https, signing, c.key_id, c.secret,
		                        c.token, op->diag);
	}
	creds_free(&c);
	if (rc != MAILMODE_OK) {
		r53_close(provider);
		return rc;
	}
	*out = provider;
	return MAILMODE_OK;
}
