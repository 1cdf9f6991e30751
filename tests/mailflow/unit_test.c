/* Unit test of the mailflow plugin's pure parts: fields that come as an
 * array or a bare string, read-back comparison, conflict detection, object
 * names, PowerShell rendering, error classes and the JWT client assertion
 * (verified here with OpenSSL).  A small fake host stands in for mailmode. */
#include "../unit/tap.h"
#include "mailflow.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Fake host */

static void fake_log(void *handle, enum mailmode_log_level level, const char *fmt, ...)
{
	(void)handle;
	(void)level;
	(void)fmt;
}

static const char *fake_config_get(void *handle, const char *section, const char *key)
{
	(void)handle;
	(void)section;
	(void)key;
	return NULL;
}

static int fake_secret_load(void *handle, const char *path, char **secret,
                            struct mailmode_diag *diag)
{
	FILE *f = fopen(path, "r");
	long len;

	(void)handle;
	(void)diag;
	*secret = NULL;
	if (!f)
		return MAILMODE_ERR_CONFIG;
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	*secret = calloc(1, (size_t)len + 1);
	if (*secret && fread(*secret, 1, (size_t)len, f) != (size_t)len) {
		free(*secret);
		*secret = NULL;
	}
	fclose(f);
	return *secret ? MAILMODE_OK : MAILMODE_ERR_CONFIG;
}

static void fake_secret_free(void *handle, char *secret)
{
	(void)handle;
	free(secret);
}

static int64_t fake_clock(void *handle)
{
	(void)handle;
	return (int64_t)time(NULL) * 1000;
}

static void fake_diag_set(struct mailmode_diag *diag, enum mailmode_severity severity,
                          int retryable, const char *fmt, ...)
{
	va_list ap;

	diag->severity = severity;
	diag->retryable = retryable;
	diag->detail[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(diag->summary, sizeof(diag->summary), fmt, ap);
	va_end(ap);
}

static void fake_diag_append(struct mailmode_diag *diag, const char *fmt, ...)
{
	(void)diag;
	(void)fmt;
}

static const struct mailmode_host fake_host = {
	.struct_size = sizeof(struct mailmode_host),
	.abi_major = MAILMODE_ABI_MAJOR,
	.log = fake_log,
	.config_get = fake_config_get,
	.secret_load = fake_secret_load,
	.secret_free = fake_secret_free,
	.clock_wall_ms = fake_clock,
	.clock_mono_ms = fake_clock,
	.alloc = malloc,
	.strdup = strdup,
	.free = free,
	.diag_set = fake_diag_set,
	.diag_append = fake_diag_append,
};

/* ------------------------------------------------------------------ */

static char *smart_hosts[] = { "relay.example.net", NULL };
static struct mf_ip_range service_ips[2];

static void profile_init(struct mf_profile *p)
{
	memset(p, 0, sizeof(*p));
	p->tenant = "contoso.onmicrosoft.com";
	p->tenant_section = "tenant contoso";
	p->client_id = "0f6c1a84-2b7d-4d6e-8a0f-5b2e9d1c3a77";
	p->service = "svc";
	p->smart_hosts = smart_hosts;
	p->tls_domain = "relay.example.net";
	p->connector_type = MF_CONNECTOR_ONPREMISES;
	p->tls_cert_name = "*.example.net";
	p->name_prefix = "mailmode";
	mf_ip_range_parse("192.0.2.0/24", &service_ips[0]);
	mf_ip_range_parse("2001:db8::/32", &service_ips[1]);
	p->service_ips = service_ips;
	p->nservice_ips = 2;
	p->managed_marker = "managed by mailmode";
	snprintf(p->outbound_name, sizeof(p->outbound_name), "mailmode outbound to svc");
	snprintf(p->inbound_name, sizeof(p->inbound_name), "mailmode inbound from svc");
}

static void test_fields(struct tap *t)
{
	cJSON *o = cJSON_Parse("{\"A\":\"one\",\"B\":[\"x\",\"y\"],\"C\":\"True\",\"D\":false,"
	                       "\"E\":\"7\",\"F\":3,\"G\":null,\"H\":[\"solo\"]}");
	size_t n = 0;
	const char **list;

	list = ms_field_strs(o, "A", &n);
	tap_ok(t, n == 1 && strcmp(list[0], "one") == 0, "a bare string is a one-element list");
	free(list);
	list = ms_field_strs(o, "B", &n);
	tap_ok(t, n == 2 && strcmp(list[1], "y") == 0 && !list[2], "an array is a list");
	free(list);
	list = ms_field_strs(o, "G", &n);
	tap_ok(t, n == 0 && list && !list[0], "null is an empty list");
	free(list);
	tap_is_str(t, ms_field_str(o, "H"), "solo", "a one-element array reads as a string");
	tap_is_int(t, ms_field_bool(o, "C"), 1, "\"True\" is true");
	tap_is_int(t, ms_field_bool(o, "D"), 0, "false is false");
	tap_is_int(t, ms_field_bool(o, "Z"), -1, "absent is neither");
	tap_is_int(t, ms_field_long(o, "E", -1) + ms_field_long(o, "F", -1), 10,
	           "numbers as strings and as numbers");
	cJSON_Delete(o);
}

static void test_compare(struct tap *t)
{
	static const char *const a_domains[] = { "a.test", NULL };
	static const char *const none[] = { NULL };
	const struct mf_rule_want a_want = { "mailmode route a.test", a_domains, none };
	struct mf_profile p;
	struct ms_buf m = { 0 };
	cJSON *out, *in, *rules;
	int n;

	profile_init(&p);
	/* As Get-OutboundConnector returns it, singletons as bare strings. */
	out = cJSON_Parse("{\"Name\":\"mailmode outbound to svc\",\"ConnectorType\":\"OnPremises\","
	                  "\"SmartHosts\":\"RELAY.example.net\",\"UseMXRecord\":false,"
	                  "\"TlsSettings\":\"DomainValidation\",\"TlsDomain\":\"relay.example.net\","
	                  "\"IsTransportRuleScoped\":true,\"Enabled\":true,\"TestMode\":false}");
	tap_is_int(t, mf_outbound_compare(&p, out, &m), 0, "outbound connector as set up matches");
	cJSON_ReplaceItemInObject(out, "TlsDomain", cJSON_CreateString("evil.example.org"));
	n = mf_outbound_compare(&p, out, &m);
	tap_ok(t, n == 1 && strstr(m.data, "TlsDomain: have 'evil.example.org'"),
	       "a changed TlsDomain is named");
	ms_buf_free(&m);

	in = cJSON_Parse("{\"ConnectorType\":\"OnPremises\",\"SenderDomains\":\"smtp:*;1\","
	                 "\"RequireTls\":true,\"TlsSenderCertificateName\":\"*.example.net\","
	                 "\"Enabled\":true}");
	tap_is_int(t, mf_inbound_compare(&p, in, &m), 0, "SenderDomains smtp:*;1 is *");
	ms_buf_free(&m);

	rules = cJSON_Parse("[{\"Name\":\"mailmode route b.test\",\"Priority\":0,"
	                    "\"Comments\":\"managed by mailmode: x\"},"
	                    "{\"Name\":\"mailmode route a.test\",\"Priority\":1,\"State\":\"Enabled\","
	                    "\"Mode\":\"Enforce\",\"RecipientDomainIs\":\"a.test\","
	                    "\"RouteMessageOutboundConnector\":\"mailmode outbound to svc\","
	                    "\"ExceptIfSenderIpRanges\":[\"2001:db8::/32\",\"192.0.2.0/24\"],"
	                    "\"Comments\":\"managed by mailmode: routes a.test\"},"
	                    "{\"Name\":\"Other\",\"Priority\":2}]");
	tap_is_int(t, mf_rule_compare(&p, &a_want, cJSON_GetArrayItem(rules, 1), rules, &m), 0,
	           "our rule below our other rule but above the rest is fine");
	ms_buf_free(&m);
	cJSON_ReplaceItemInObject(cJSON_GetArrayItem(rules, 2), "Priority", cJSON_CreateNumber(1));
	cJSON_ReplaceItemInObject(cJSON_GetArrayItem(rules, 1), "Priority", cJSON_CreateNumber(2));
	n = mf_rule_compare(&p, &a_want, cJSON_GetArrayItem(rules, 1), rules, &m);
	tap_ok(t, n == 1 && strstr(m.data, "Priority: have 2") && strstr(m.data, "'Other'"),
	       "a foreign rule above ours is named");
	ms_buf_free(&m);
	cJSON_Delete(out);
	cJSON_Delete(in);
	cJSON_Delete(rules);
}

/* The rule's exception: the service's addresses, nothing else. */
static void test_exception(struct tap *t)
{
	static const char *const a_domains[] = { "a.test", NULL };
	static const char *const none[] = { NULL };
	const struct mf_rule_want want = { "mailmode route a.test", a_domains, none };
	struct mf_profile p;
	struct ms_buf m = { 0 };
	cJSON *params, *rules, *rule, *set;
	char text[MF_IP_RANGE_TEXT], *printed;
	struct mf_ip_range r;
	int n;

	profile_init(&p);
	params = mf_rule_params(&p, &want, 0);
	printed = cJSON_PrintUnformatted(cJSON_GetObjectItem(params, "ExceptIfSenderIpRanges"));
	tap_is_str(t, printed, "[\"192.0.2.0/24\",\"2001:db8::/32\"]",
	           "the rule excepts service_ips (IPv4 and IPv6)");
	free(printed);
	tap_ok(t, !cJSON_GetObjectItem(params, "ExceptIfHeaderMatchesMessageHeader") &&
	          !cJSON_GetObjectItem(params, "ExceptIfHeaderContainsMessageHeader"),
	       "and no header");
	set = cJSON_CreateObject();
	tap_ok(t, mf_rule_unset_retired(set) == 0 &&
	          cJSON_IsNull(cJSON_GetObjectItem(set, "ExceptIfHeaderMatchesMessageHeader")) &&
	          cJSON_IsNull(cJSON_GetObjectItem(set, "ExceptIfHeaderMatchesPatterns")),
	       "Set-TransportRule clears an older version's header exception");
	mf_ip_range_parse("198.51.100.77/20", &r);
	mf_ip_range_format(&r, text);
	tap_is_str(t, text, "198.51.96.0/20", "a range is written with its host bits cleared");
	mf_ip_range_parse("2001:db8::1", &r);
	mf_ip_range_format(&r, text);
	tap_is_str(t, text, "2001:db8::1", "a single address without a prefix");

	rules = cJSON_Parse("[{\"Name\":\"mailmode route a.test\",\"Priority\":0,"
	                    "\"State\":\"Enabled\",\"Mode\":\"Enforce\",\"RecipientDomainIs\":\"a.test\","
	                    "\"RouteMessageOutboundConnector\":\"mailmode outbound to svc\","
	                    "\"ExceptIfSenderIpRanges\":[\"192.0.2.9/24\",\"2001:DB8::/32\"],"
	                    "\"Exceptions\":[\"Microsoft.Exchange.MessagingPolicies.Rules.Tasks.SenderIpRangesPredicate\"],"
	                    "\"Comments\":\"managed by mailmode: routes a.test\"}]");
	rule = cJSON_GetArrayItem(rules, 0);
	tap_is_int(t, mf_rule_compare(&p, &want, rule, rules, &m), 0,
	           "ranges compare as ranges (host bits, case)");
	ms_buf_free(&m);
	cJSON_AddStringToObject(rule, "ExceptIfHeaderMatchesMessageHeader", "X-Svc-Processed");
	cJSON_AddStringToObject(rule, "ExceptIfHeaderMatchesPatterns", ".");
	cJSON_ReplaceItemInObject(rule, "Exceptions", cJSON_Parse(
		"[\"Microsoft.Exchange.MessagingPolicies.Rules.Tasks.HeaderMatchesPredicate\","
		"\"Microsoft.Exchange.MessagingPolicies.Rules.Tasks.SenderIpRangesPredicate\"]"));
	n = mf_rule_compare(&p, &want, rule, rules, &m);
	tap_ok(t, n == 3 && strstr(m.data, "ExceptIfHeaderMatchesMessageHeader: have \"X-Svc-Processed\", want it not set") &&
	          strstr(m.data, "Exceptions: have"),
	       "a header exception beside the ranges is drift");
	ms_buf_free(&m);
	cJSON_DeleteItemFromObject(rule, "ExceptIfHeaderMatchesMessageHeader");
	cJSON_DeleteItemFromObject(rule, "ExceptIfHeaderMatchesPatterns");
	cJSON_DeleteItemFromObject(rule, "Exceptions");
	cJSON_ReplaceItemInObject(rule, "ExceptIfSenderIpRanges", cJSON_Parse("[\"192.0.2.0/24\"]"));
	n = mf_rule_compare(&p, &want, rule, rules, &m);
	tap_ok(t, n == 1 && strstr(m.data, "ExceptIfSenderIpRanges: have ['192.0.2.0/24'], want ['192.0.2.0/24', '2001:db8::/32']"),
	       "a missing range is drift, named");
	ms_buf_free(&m);
	cJSON_ReplaceItemInObject(rule, "ExceptIfSenderIpRanges",
	                          cJSON_Parse("[\"192.0.2.0/24\",\"2001:db8::/32\",\"203.0.113.5\"]"));
	tap_is_int(t, mf_rule_compare(&p, &want, rule, rules, &m), 1, "an extra range is drift");
	ms_buf_free(&m);
	cJSON_ReplaceItemInObject(rule, "ExceptIfSenderIpRanges",
	                          cJSON_Parse("[\"192.0.2.0-192.0.2.255\",\"2001:db8::/32\"]"));
	tap_is_int(t, mf_rule_compare(&p, &want, rule, rules, &m), 1,
	           "a range written a-b is not what setup writes: drift");
	ms_buf_free(&m);
	cJSON_DeleteItemFromObject(rule, "ExceptIfSenderIpRanges");
	tap_is_int(t, mf_rule_compare(&p, &want, rule, rules, &m), 1, "no ranges at all: drift");
	ms_buf_free(&m);
	cJSON_Delete(params);
	cJSON_Delete(set);
	cJSON_Delete(rules);
}

static void test_conflicts(struct tap *t)
{
	struct mf_profile p;
	static const char *const accepted[] = { "GROUP", NULL };
	struct ms_buf c = { 0 }, ok = { 0 };
	cJSON *rules;
	int n;

	profile_init(&p);
	rules = cJSON_Parse(
		"[{\"Name\":\"parent\",\"State\":\"Enabled\",\"RecipientDomainIs\":\"contoso.test\","
		"\"DeleteMessage\":true},"
		"{\"Name\":\"excepted\",\"RecipientDomainIs\":\"contoso.test\","
		"\"ExceptIfRecipientDomainIs\":[\"sub.contoso.test\"],\"Quarantine\":\"True\"},"
		"{\"Name\":\"outside only\",\"SentToScope\":\"NotInOrganization\","
		"\"RedirectMessageTo\":\"x@y.test\"},"
		"{\"Name\":\"by class name\",\"Actions\":[\"Microsoft.Exchange.MessagingPolicies.Rules.Tasks.StopRuleProcessingAction\"]},"
		"{\"Name\":\"group\",\"SentToMemberOf\":\"g@contoso.test\",\"Quarantine\":true},"
		"{\"Name\":\"Check Point - Protect\",\"SetSCL\":-1},"
		"{\"Name\":\"mailmode route other.test\",\"Comments\":\"managed by mailmode\","
		"\"RouteMessageOutboundConnector\":\"mailmode outbound to svc\"}]");
	n = mf_find_conflicts(&p, "sub.contoso.test", rules, NULL, NULL,
	                      &(struct mf_conflicts){ accepted, &c, &ok, NULL });
	tap_is_int(t, n, 3, "three refusing conflicts for sub.contoso.test, one accepted by name");
	tap_contains(t, c.data, "'parent' (priority -1) deletes", "a parent-domain rule covers the subdomain");
	tap_ok(t, !strstr(c.data, "'excepted'") && !strstr(c.data, "'outside only'") &&
	          !strstr(c.data, "mailmode route"),
	       "excepted, outside-only and our own rules are not conflicts");
	tap_contains(t, c.data, "'by class name' (priority -1) stops rule processing",
	             "actions known by class name only");
	tap_contains(t, ok.data, "'group' (priority -1) quarantines for sub.contoso.test: its recipient condition may include it",
	             "an unresolvable recipient condition counts, listed apart when accepted (any case)");
	tap_ok(t, !strstr(c.data, "'group'"), "the accepted one is not among the refusing ones");
	tap_contains(t, c.data, "'Check Point - Protect'", "another vendor's rule counts");
	ms_buf_free(&c);
	ms_buf_free(&ok);
	cJSON_Delete(rules);
}

/* Outbound connectors that are not rule-scoped: "*" is mail leaving the
 * organization (noted), the domain or a parent named is a conflict. */
static void test_outbound_conflicts(struct tap *t)
{
	struct mf_profile p;
	struct ms_buf c = { 0 }, ok = { 0 }, notes = { 0 };
	cJSON *conns;
	int n;

	profile_init(&p);
	conns = cJSON_Parse(
		"[{\"Name\":\"Outbound via SEG\",\"RecipientDomains\":[\"*\"],\"IsTransportRuleScoped\":false},"
		"{\"Name\":\"scoped\",\"RecipientDomains\":\"*\",\"IsTransportRuleScoped\":true},"
		"{\"Name\":\"Partner's link\",\"RecipientDomains\":[\"*\",\"SUB.contoso.test\"]},"
		"{\"Name\":\"parent wildcard\",\"RecipientDomains\":\"*.contoso.test\"},"
		"{\"Name\":\"other\",\"RecipientDomains\":[\"fabrikam.test\",\"*.sub.contoso.test\"]},"
		"{\"Name\":\"off\",\"RecipientDomains\":\"sub.contoso.test\",\"Enabled\":false}]");
	n = mf_find_conflicts(&p, "sub.contoso.test", NULL, conns, NULL,
	                      &(struct mf_conflicts){ NULL, &c, &ok, &notes });
	tap_is_int(t, n, 2, "two outbound connectors carry the domain's mail");
	tap_contains(t, c.data, "outbound connector 'Partner's link' carries all mail for sub.contoso.test",
	             "one naming the domain (any case) beside *");
	tap_contains(t, c.data, "(to accept it: --accept-conflict 'Partner'\\''s link')",
	             "each refusing line gives the option that accepts it, shell-quoted");
	tap_contains(t, c.data, "'parent wildcard' carries all mail", "one naming a parent (*.contoso.test)");
	tap_ok(t, !strstr(c.data, "'Outbound via SEG'") && !strstr(c.data, "'other'") &&
	          !strstr(c.data, "'scoped'") && !strstr(c.data, "'off'"),
	       "*, another domain, a subdomain's wildcard, rule-scoped and disabled are not conflicts");
	tap_is_str(t, notes.data, "outbound connector 'Outbound via SEG' (RecipientDomains *, not rule-scoped) carries mail leaving the organization, not mail for sub.contoso.test: not a conflict\n",
	           "the * connector is noted, once");
	ms_buf_free(&c);
	ms_buf_free(&ok);
	ms_buf_free(&notes);
	cJSON_Delete(conns);
}

/* Shared rule names and the size estimate. */
static void test_shared_rules(struct tap *t, const struct mf_profile *p)
{
	static const char *const one[] = { "contoso.test", NULL };
	static const char *const none[] = { NULL };
	const struct mf_rule_want want = { "mailmode route #7", one, none };
	char name[MF_NAME_MAX];
	cJSON *rule, *params;
	long small;

	mf_shared_rule_name(p, 7, name);
	tap_is_str(t, name, "mailmode route #7", "shared rule name");
	rule = cJSON_Parse("{\"Name\":\"mailmode route #7\",\"Comments\":\"managed by mailmode: x\"}");
	tap_is_int(t, (int)mf_shared_rule_index(p, rule), 7, "shared rule index");
	cJSON_ReplaceItemInObject(rule, "Name", cJSON_CreateString("mailmode route contoso.test"));
	tap_is_int(t, (int)mf_shared_rule_index(p, rule), 0, "a per-domain rule is not a shared one");
	cJSON_Delete(rule);
	params = mf_rule_params(p, &want, 0);
	small = mf_rule_size(params);
	tap_ok(t, small > MF_RULE_XML_BASE && small < MF_RULE_SIZE_BUDGET / 2, "one domain's rule is small");
	cJSON_AddItemToArray(cJSON_GetObjectItem(params, "RecipientDomainIs"),
	                     cJSON_CreateString("a&b.test"));
	tap_is_int(t, (int)(mf_rule_size(params) - small), (int)(6 + 7 + MF_RULE_XML_PER_VALUE),
	           "a value costs its escaped text and its markup");
	cJSON_Delete(params);
}

/* shared.c: which accepted subdomains a rule excepts, and the lists. */
static void test_shared_lists(struct tap *t)
{
	static const char *const members[] = { "contoso.test", "fabrikam.test", NULL };
	static const char *const with_sub[] = { "contoso.test", "deep.sub.contoso.test", NULL };
	static const char *const sub[] = { "sub.contoso.test", NULL };
	static const char *const same[] = { "FABRIKAM.test", "contoso.test", NULL };
	cJSON *accepted = cJSON_Parse("[{\"DomainName\":\"contoso.test\"},"
	                              "{\"DomainName\":\"sub.contoso.test\"},"
	                              "{\"DomainName\":\"notcontoso.test\"},"
	                              "{\"DomainName\":\"fabrikam.test\"}]");
	const char **ex = mf_subdomain_exceptions(members, accepted);
	const char **copy = mf_list_copy(members);

	tap_ok(t, ex && ex[0] && strcmp(ex[0], "sub.contoso.test") == 0 && !ex[1],
	       "an accepted subdomain not listed is excepted; a look-alike suffix is not");
	tap_ok(t, mf_exceptions_cover_member(with_sub, sub) && !mf_exceptions_cover_member(members, sub),
	       "an exception that would hide a member is found");
	tap_ok(t, mf_lists_equal(members, same) && !mf_lists_equal(members, sub) &&
	          !mf_lists_equal(with_sub, members),
	       "lists compare as sets, in any case");
	tap_ok(t, copy && copy != (const char **)members && mf_lists_equal(copy, members) &&
	          copy[0] != members[0],
	       "a list copy owns its strings");
	free(ex);
	free(copy);
	cJSON_Delete(accepted);
}

/* The tenant's note of shared rule writes not visible yet: a rule
 * showing the list before, or an earlier write, holds the last write; the
 * last ends the note; any other list is another writer's. */
static void test_shared_notes(struct tap *t)
{
	static const char *const l0[] = { "a.test", NULL };
	static const char *const l1[] = { "a.test", "b.test", NULL };
	static const char *const l2[] = { "b.test", "a.test", "c.test", NULL };
	static const char *const other[] = { "a.test", "x.test", NULL };
	cJSON *notes = cJSON_CreateObject(), *rule = cJSON_Parse("{\"RecipientDomainIs\":\"a.test\"}");
	cJSON *entry = NULL;
	const char **held;
	size_t count = 0;
	int trimmed = 0;

	tap_ok(t, mf_note_add(notes, "R", l0, l1, 1000) == 0 && mf_note_add(notes, "R", l1, l2, 2000) == 0 &&
	          (entry = mf_note_of(notes, "R")) && mf_note_writes(entry) == 2,
	       "two writes of one rule noted, the entry made with the list before");
	tap_ok(t, mf_note_see(entry, l0, &trimmed) == MF_NOTE_PENDING && !trimmed &&
	          mf_note_oldest_ms(entry) == 1000,
	       "the list before: both writes pending, the oldest at 1000");
	tap_ok(t, mf_note_see(entry, other, &trimmed) == MF_NOTE_FOREIGN && mf_note_writes(entry) == 2,
	       "a list no write made is another writer's");
	tap_ok(t, mf_note_see(entry, l1, &trimmed) == MF_NOTE_PENDING && trimmed &&
	          mf_note_writes(entry) == 1 && mf_note_oldest_ms(entry) == 2000,
	       "the first write shown: it becomes the list before, the second pending");
	tap_ok(t, mf_note_see(entry, l0, &trimmed) == MF_NOTE_FOREIGN,
	       "once the first write showed, the list before it is no longer expected");
	mf_note_hold(entry, rule);
	held = ms_field_strs(rule, "RecipientDomainIs", &count);
	tap_ok(t, held && count == 3 && mf_lists_equal(held, l2),
	       "the rule is taken to hold the last write");
	tap_ok(t, mf_note_see(entry, l2, &trimmed) == MF_NOTE_SHOWN, "the last write shown ends it");
	mf_note_drop(notes, "R");
	tap_ok(t, !mf_note_of(notes, "R"), "dropped");
	free(held);
	cJSON_Delete(rule);
	cJSON_Delete(notes);
}

static void test_names_and_plan(struct tap *t)
{
	struct mf_profile p;
	char name[MF_NAME_MAX], again[MF_NAME_MAX];
	const char *longdomain =
		"a-very-long-label-for-testing.another-long-label-here.example.test";
	struct ms_buf b = { 0 };
	cJSON *params = cJSON_Parse("{\"Name\":\"O'Brien\",\"Priority\":0,\"Enabled\":false,"
	                            "\"SmartHosts\":[\"a\",\"b\"]}");

	profile_init(&p);
	mf_rule_name(&p, "contoso.test", name);
	tap_is_str(t, name, "mailmode route contoso.test", "rule name");
	mf_rule_name(&p, longdomain, name);
	mf_rule_name(&p, longdomain, again);
	tap_ok(t, strlen(name) <= 64 && strcmp(name, again) == 0 && strstr(name, " ~"),
	       "a long domain gives a deterministic name of at most 64 characters");
	test_shared_rules(t, &p);
	mf_cmdlet_line(&b, "New-X", params);
	tap_is_str(t, b.data, "New-X -Name 'O''Brien' -Priority 0 -Enabled:$false -SmartHosts 'a','b'\n",
	           "PowerShell rendering quotes, switches and lists");
	ms_buf_free(&b);
	cJSON_Delete(params);
}

static void test_errors(struct tap *t)
{
	struct ms_exo_error e;

	memset(&e, 0, sizeof(e));
	snprintf(e.type, sizeof(e.type), "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException");
	tap_ok(t, ms_exo_error_not_found(&e) && !ms_exo_error_exists(&e), "not found");
	memset(&e, 0, sizeof(e));
	snprintf(e.text, sizeof(e.text), "The command you tried to run isn't currently allowed in your organization. To run this command, you first need to run the command: Enable-OrganizationCustomization.");
	tap_ok(t, ms_exo_error_dehydrated(&e), "dehydrated tenant");
	memset(&e, 0, sizeof(e));
	snprintf(e.text, sizeof(e.text), "A transport rule with the name 'x' already exists.");
	tap_ok(t, ms_exo_error_exists(&e), "already exists");
}

/* Makes a key and a self-signed certificate in files, signs an assertion
 * with them and checks it. */
static void test_jwt(struct tap *t)
{
	char dir[] = "/tmp/mailflow-unit.XXXXXX";
	char key_path[64], cert_path[64];
	EVP_PKEY *key = EVP_RSA_gen(2048);
	X509 *cert = X509_new();
	struct ms_app p = { .section = "tenant contoso",
	                    .tenant = "contoso.onmicrosoft.com",
	                    .client_id = "0f6c1a84-2b7d-4d6e-8a0f-5b2e9d1c3a77" };
	struct mailmode_diag diag;
	char *jwt = NULL, *dot1, *dot2;
	FILE *f;
	int rc;

	if (!mkdtemp(dir) || !key || !cert) {
		tap_ok(t, 0, "test key and certificate");
		return;
	}
	snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
	snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir);
	X509_set_version(cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
	X509_gmtime_adj(X509_getm_notBefore(cert), 0);
	X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
	X509_set_pubkey(cert, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
	                           (const unsigned char *)"unit", -1, -1, 0);
	X509_set_issuer_name(cert, X509_get_subject_name(cert));
	X509_sign(cert, key, EVP_sha256());
	f = fopen(key_path, "w");
	PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	f = fopen(cert_path, "w");
	PEM_write_X509(f, cert);
	fclose(f);

	p.private_key_file = key_path;
	p.certificate_file = cert_path;
	/* The older form, still selectable; PS256 (the default) is checked
	 * from a capture in tests/mailflow/wire.t. */
	p.assertion_alg = MS_ASSERTION_RS256;
	rc = ms_jwt_assertion(&fake_host, &p, "https://login.example/t/oauth2/v2.0/token", &jwt, &diag);
	tap_is_int(t, rc, MAILMODE_OK, "assertion made");
	dot1 = jwt ? strchr(jwt, '.') : NULL;
	dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	if (!tap_ok(t, dot1 && dot2 && !strchr(dot2 + 1, '.'), "three parts")) {
		free(jwt);
		return;
	}
	{
		/* Decode header and claims (base64url). */
		unsigned char der_digest[SHA_DIGEST_LENGTH], *der = NULL, sig[512];
		char b64[1024], decoded[1024], x5t[64];
		int len, i, der_len, siglen;
		cJSON *header, *claims;
		EVP_MD_CTX *md = EVP_MD_CTX_new();

		len = (int)(dot1 - jwt);
		memcpy(b64, jwt, (size_t)len);
		while (len % 4)
			b64[len++] = '=';
		for (i = 0; i < len; i++)
			b64[i] = b64[i] == '-' ? '+' : b64[i] == '_' ? '/' : b64[i];
		b64[len] = '\0';
		len = EVP_DecodeBlock((unsigned char *)decoded, (unsigned char *)b64, len);
		decoded[len > 0 ? len : 0] = '\0';
		header = cJSON_Parse(decoded);

		len = (int)(dot2 - dot1 - 1);
		memcpy(b64, dot1 + 1, (size_t)len);
		while (len % 4)
			b64[len++] = '=';
		for (i = 0; i < len; i++)
			b64[i] = b64[i] == '-' ? '+' : b64[i] == '_' ? '/' : b64[i];
		b64[len] = '\0';
		len = EVP_DecodeBlock((unsigned char *)decoded, (unsigned char *)b64, len);
		decoded[len > 0 ? len : 0] = '\0';
		claims = cJSON_Parse(decoded);

		der_len = i2d_X509(cert, &der);
		SHA1(der, (size_t)der_len, der_digest);
		OPENSSL_free(der);
		len = EVP_EncodeBlock((unsigned char *)x5t, der_digest, sizeof(der_digest));
		while (len > 0 && x5t[len - 1] == '=')
			x5t[--len] = '\0';
		for (i = 0; i < len; i++)
			x5t[i] = x5t[i] == '+' ? '-' : x5t[i] == '/' ? '_' : x5t[i];

		tap_is_str(t, ms_field_str(header, "alg"), "RS256", "alg RS256");
		tap_is_str(t, ms_field_str(header, "x5t"), x5t, "x5t is the SHA-1 thumbprint");
		tap_ok(t, ms_strcaseeq(ms_field_str(claims, "iss"), p.client_id) &&
		          ms_strcaseeq(ms_field_str(claims, "sub"), p.client_id) &&
		          ms_strcaseeq(ms_field_str(claims, "aud"), "https://login.example/t/oauth2/v2.0/token") &&
		          ms_field_str(claims, "jti") &&
		          ms_field_long(claims, "exp", 0) > ms_field_long(claims, "nbf", 0),
		       "claims iss, sub, aud, jti, nbf < exp");

		len = (int)strlen(dot2 + 1);
		memcpy(b64, dot2 + 1, (size_t)len);
		while (len % 4)
			b64[len++] = '=';
		for (i = 0; i < len; i++)
			b64[i] = b64[i] == '-' ? '+' : b64[i] == '_' ? '/' : b64[i];
		b64[len] = '\0';
		siglen = EVP_DecodeBlock(sig, (unsigned char *)b64, len);
		while (b64[--len] == '=')
			siglen--;
		tap_ok(t, md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
		          EVP_DigestVerify(md, sig, (size_t)siglen, (unsigned char *)jwt,
		                           (size_t)(dot2 - jwt)) == 1,
		       "the signature verifies with the certificate's key");
		EVP_MD_CTX_free(md);
		cJSON_Delete(header);
		cJSON_Delete(claims);
	}
	free(jwt);
	unlink(key_path);
	unlink(cert_path);
	rmdir(dir);
	X509_free(cert);
	EVP_PKEY_free(key);
}

/* National clouds: each one's login host, admin API host and scope
 * (/work/shared/ref/m365-identity-and-limits.md section 3). */
static void test_clouds(struct tap *t)
{
	static const struct {
		const char *name, *login, *exo, *scope;
	} want[] = {
		{ "global", "https://login.microsoftonline.com", "https://outlook.office365.com",
		  "https://outlook.office365.com/.default" },
		{ "GCC-High", "https://login.microsoftonline.us", "https://outlook.office365.us",
		  "https://outlook.office365.us/.default" },
		{ "dod", "https://login.microsoftonline.us", "https://outlook-dod.office365.us",
		  "https://outlook-dod.office365.us/.default" },
		{ "china", "https://login.partner.microsoftonline.cn", "https://partner.outlook.cn",
		  "https://partner.outlook.cn/.default" },
	};
	size_t i;

	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct ms_cloud *c = ms_cloud_find(want[i].name);
		char what[128];

		snprintf(what, sizeof(what), "cloud %s: login, Exchange host and scope", want[i].name);
		tap_ok(t, c && strcmp(c->login_url, want[i].login) == 0 &&
		          strcmp(c->exo_url, want[i].exo) == 0 &&
		          strcmp(c->exo_scope, want[i].scope) == 0, what);
	}
	tap_ok(t, ms_cloud_find(NULL) == ms_cloud_find("global") &&
	          ms_cloud_find("") == ms_cloud_find("global"), "no cloud: the global one");
	tap_ok(t, ms_cloud_find("germany") == NULL, "a cloud that closed is unknown");
}

int main(void)
{
	struct tap t = { 0 };

	tap_plan(72);
	test_fields(&t);
	test_compare(&t);
	test_exception(&t);
	test_conflicts(&t);
	test_outbound_conflicts(&t);
	test_shared_lists(&t);
	test_shared_notes(&t);
	test_names_and_plan(&t);
	test_errors(&t);
	test_jwt(&t);
	test_clouds(&t);
	return tap_done(&t);
}
