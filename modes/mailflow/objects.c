/*
 * The three Exchange objects this mode owns, what the profile wants them to
 * be, how an object read back is compared with that, and which of the
 * tenant's other objects would fight with them.
 *
 *   inbound connector   Partner by default: TLS required, identified by the
 *                       service's certificate name, never restricted;
 *                       SenderDomains * (doc/mailflow-connectors.md)
 *   outbound connector  rule-scoped, the service's smart hosts, TLS with
 *                       domain validation
 *   transport rules     priority 0, shared by the tenant's domains (a
 *                       RecipientDomainIs list, split so that each rule
 *                       stays below Exchange's 8 KB; doc/mailflow-limits.md),
 *                       route to the outbound connector, except mail Exchange
 *                       Online received from the service's addresses (its
 *                       return; doc/mailflow-rule.md) and the accepted
 *                       subdomains of the listed domains that are not listed
 *                       themselves (RecipientDomainIs also matches them)
 */
#include "mailflow.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Other vendors' rule names (prefixes or words) whose rules reroute mail
 * through their own service: running two is double scanning or a loop. */
static const char *const vendor_rule_prefixes[] = {
	"Check Point -", "Avanan -", "[SEPPmail.cloud]", "[SEPPmail]", NULL
};
static const char *const vendor_rule_words[] = {
	"Sophos", "Mimecast", "Proofpoint", "Barracuda", NULL
};

static const char *connector_type_name(const struct mf_profile *profile)
{
	return profile->connector_type == MF_CONNECTOR_PARTNER ? "Partner"
	                                                       : "OnPremises";
}

/* ------------------------------------------------------------------ */
/* Desired parameters */

static cJSON *string_array(const char *const *items)
{
	cJSON *array = cJSON_CreateArray();
	size_t i;

	for (i = 0; array && items[i]; i++) {
		cJSON *s = cJSON_CreateString(items[i]);

		if (!s || !cJSON_AddItemToArray(array, s)) {
			cJSON_Delete(s);
			cJSON_Delete(array);
			return NULL;
		}
	}
	return array;
}

static int add_strings(cJSON *obj, const char *name, const char *const *items)
{
	cJSON *array = string_array(items);

	if (!array || !cJSON_AddItemToObject(obj, name, array)) {
		cJSON_Delete(array);
		return -1;
	}
	return 0;
}

/* The inbound connector: where the service hands mail back.  Each field
 * and why: doc/mailflow-connectors.md.  Never restricted
 * (RestrictDomainsToCertificate, RestrictDomainsToIPAddresses): with
 * SenderDomains * a restricted Partner connector refuses every message that
 * reaches Microsoft 365 without the service's certificate or addresses
 * (5.7.51), and in mailflow mode all inbound mail arrives that way first. */
cJSON *mf_inbound_params(const struct mf_profile *profile)
{
	static const char *const any_sender[] = { "*", NULL };
	cJSON *p = cJSON_CreateObject();
	char *comment = ms_printf("%s: return path of service %s, shared by this tenant's domains",
	                          profile->managed_marker, profile->service);
	int ok = p && comment &&
	         cJSON_AddStringToObject(p, "Name", profile->inbound_name) &&
	         cJSON_AddStringToObject(p, "ConnectorType", connector_type_name(profile)) &&
	         add_strings(p, "SenderDomains", any_sender) == 0 &&
	         cJSON_AddBoolToObject(p, "RequireTls", 1) &&
	         cJSON_AddStringToObject(p, "TlsSenderCertificateName", profile->tls_cert_name) &&
	         cJSON_AddBoolToObject(p, "Enabled", 1) &&
	         cJSON_AddStringToObject(p, "Comment", comment);

	free(comment);
	if (!ok) {
		cJSON_Delete(p);
		return NULL;
	}
	return p;
}

cJSON *mf_outbound_params(const struct mf_profile *profile)
{
	cJSON *p = cJSON_CreateObject();
	char *comment = ms_printf("%s: route to service %s, shared by this tenant's domains",
	                          profile->managed_marker, profile->service);
	int ok = p && comment &&
	         cJSON_AddStringToObject(p, "Name", profile->outbound_name) &&
	         cJSON_AddStringToObject(p, "ConnectorType", connector_type_name(profile)) &&
	         add_strings(p, "SmartHosts", (const char *const *)profile->smart_hosts) == 0 &&
	         cJSON_AddBoolToObject(p, "UseMXRecord", 0) &&
	         cJSON_AddStringToObject(p, "TlsSettings", "DomainValidation") &&
	         cJSON_AddStringToObject(p, "TlsDomain", profile->tls_domain) &&
	         cJSON_AddBoolToObject(p, "IsTransportRuleScoped", 1) &&
	         cJSON_AddBoolToObject(p, "Enabled", 1) &&
	         cJSON_AddStringToObject(p, "Comment", comment);

	free(comment);
	if (!ok) {
		cJSON_Delete(p);
		return NULL;
	}
	return p;
}

/* The rule's one exception: mail Exchange Online received from the
 * service's own addresses, its return.  Exchange matches
 * ExceptIfSenderIpRanges against the address of the last hop before it,
 * which a sender cannot choose.  No header exception beside it: exceptions
 * are OR-ed, and anyone can write a header (doc/mailflow-rule.md). */
static int add_service_exception(cJSON *p, const struct mf_profile *profile)
{
	cJSON *ranges = cJSON_CreateArray();
	size_t i;

	for (i = 0; ranges && i < profile->nservice_ips; i++) {
		char text[MF_IP_RANGE_TEXT];
		cJSON *s;

		mf_ip_range_format(&profile->service_ips[i], text);
		s = cJSON_CreateString(text);
		if (!s || !cJSON_AddItemToArray(ranges, s)) {
			cJSON_Delete(s);
			cJSON_Delete(ranges);
			return -1;
		}
	}
	if (!ranges || !cJSON_AddItemToObject(p, "ExceptIfSenderIpRanges", ranges)) {
		cJSON_Delete(ranges);
		return -1;
	}
	return 0;
}

int mf_rule_unset_retired(cJSON *set_params)
{
	return cJSON_AddNullToObject(set_params, "ExceptIfHeaderMatchesMessageHeader") &&
	       cJSON_AddNullToObject(set_params, "ExceptIfHeaderMatchesPatterns") ? 0 : -1;
}

void mf_shared_rule_name(const struct mf_profile *profile, unsigned index,
                         char name[MF_NAME_MAX])
{
	/* '#' is in no domain name: never the name of a per-domain rule of
	 * the previous version ("<prefix> route <domain>"). */
	snprintf(name, MF_NAME_MAX, "%s route #%u", profile->name_prefix, index);
}

unsigned mf_shared_rule_index(const struct mf_profile *profile, const cJSON *rule)
{
	const char *name = ms_field_str(rule, "Name");
	size_t prefix_len = strlen(profile->name_prefix);
	char *end;
	unsigned long index;

	if (!name || !mf_rule_is_ours(profile, rule) ||
	    strncasecmp(name + prefix_len, " route #", 8) != 0)
		return 0;
	index = strtoul(name + prefix_len + 8, &end, 10);
	return *end || index == 0 || index > 100000 ? 0 : (unsigned)index;
}

cJSON *mf_rule_params(const struct mf_profile *profile,
                      const struct mf_rule_want *want, long priority)
{
	cJSON *p = cJSON_CreateObject();
	char *comments = ms_printf("%s: routes mail for its recipient domains through service %s; do not edit by hand",
	                           profile->managed_marker, profile->service);
	int ok;

	ok = p && comments &&
	     cJSON_AddStringToObject(p, "Name", want->name) &&
	     cJSON_AddNumberToObject(p, "Priority", (double)priority) &&
	     add_strings(p, "RecipientDomainIs", want->domains) == 0 &&
	     cJSON_AddStringToObject(p, "RouteMessageOutboundConnector", profile->outbound_name) &&
	     add_service_exception(p, profile) == 0 &&
	     cJSON_AddStringToObject(p, "Mode", "Enforce") &&
	     cJSON_AddBoolToObject(p, "Enabled", 1) &&
	     cJSON_AddStringToObject(p, "Comments", comments);
	/* Always sent, empty or not: Set-TransportRule replaces the list, and
	 * an empty one clears exceptions no longer needed. */
	if (ok)
		ok = want->excepted[0]
		   ? add_strings(p, "ExceptIfRecipientDomainIs", want->excepted) == 0
		   : cJSON_AddNullToObject(p, "ExceptIfRecipientDomainIs") != NULL;
	free(comments);
	if (!ok) {
		cJSON_Delete(p);
		return NULL;
	}
	return p;
}

/* A string as it is stored in the rule's XML: markup characters become
 * entities (at most 6 characters), and so, counted high, does every byte
 * that is not ASCII. */
static long xml_text_size(const char *s)
{
	long n = 0;

	for (; *s; s++)
		n += strchr("&<>\"'", *s) || (unsigned char)*s >= 0x80 ? 6 : 1;
	return n;
}

long mf_rule_size(const cJSON *params)
{
	const cJSON *field, *value;
	long size = MF_RULE_XML_BASE;

	cJSON_ArrayForEach(field, params) {
		size += 2 * (long)strlen(field->string) + MF_RULE_XML_PER_FIELD;
		if (cJSON_IsString(field)) {
			size += xml_text_size(field->valuestring) + MF_RULE_XML_PER_VALUE;
		} else if (cJSON_IsArray(field)) {
			cJSON_ArrayForEach(value, field)
				if (cJSON_IsString(value))
					size += xml_text_size(value->valuestring) +
					        MF_RULE_XML_PER_VALUE;
		} else {
			size += MF_RULE_XML_PER_VALUE;   /* a number or a boolean */
		}
	}
	return size;
}

/* ------------------------------------------------------------------ */
/* Comparison */

const cJSON *mf_find_by_name(const cJSON *array, const char *name)
{
	const cJSON *item;

	cJSON_ArrayForEach(item, array) {
		const char *have = ms_field_str(item, "Name");

		if (!have)
			have = ms_field_str(item, "Identity");
		if (have && ms_strcaseeq(have, name))
			return item;
	}
	return NULL;
}

static const char *shown(const char *s)
{
	return s ? s : "(absent)";
}

static int want_str(struct ms_buf *out, const cJSON *obj, const char *field,
                    const char *want)
{
	const char *have = ms_field_str(obj, field);

	if (have && ms_strcaseeq(have, want))
		return 0;
	ms_buf_addf(out, "%s: have '%s', want '%s'\n", field, shown(have), want);
	return 1;
}

static int want_bool(struct ms_buf *out, const cJSON *obj, const char *field,
                     int want)
{
	int have = ms_field_bool(obj, field);

	if (have == want)
		return 0;
	ms_buf_addf(out, "%s: have %s, want %s\n", field,
	            have < 0 ? "(absent)" : have ? "True" : "False",
	            want ? "True" : "False");
	return 1;
}

/* "smtp:*;1" (how Get-InboundConnector returns SenderDomains) -> "*". */
static int sender_domain_is(const char *value, const char *want)
{
	size_t len;

	if (strncasecmp(value, "smtp:", 5) == 0)
		value += 5;
	len = strcspn(value, ";");
	return strlen(want) == len && strncasecmp(value, want, len) == 0;
}

/* The multi-valued field equals want as a set (case-insensitive). */
static int want_set(struct ms_buf *out, const cJSON *obj, const char *field,
                    const char *const *want)
{
	size_t count = 0, nwant = 0, i, j;
	const char **have = ms_field_strs(obj, field, &count);
	int equal;

	if (!have) {
		out->failed = 1;
		return 1;
	}
	while (want[nwant])
		nwant++;
	equal = count == nwant;
	for (i = 0; equal && i < nwant; i++) {
		int found = 0;

		for (j = 0; j < count && !found; j++)
			found = ms_strcaseeq(have[j], want[i]) ||
			        sender_domain_is(have[j], want[i]);
		equal = found;
	}
	if (!equal) {
		ms_buf_addf(out, "%s: have [", field);
		for (i = 0; i < count; i++)
			ms_buf_addf(out, "%s'%s'", i ? ", " : "", have[i]);
		ms_buf_add(out, "], want [");
		for (i = 0; i < nwant; i++)
			ms_buf_addf(out, "%s'%s'", i ? ", " : "", want[i]);
		ms_buf_add(out, "]\n");
	}
	free(have);
	return !equal;
}

/* ------------------------------------------------------------------ */
/* Exactness: nothing but what setup makes */

/* Fields of every object that say nothing about where mail goes. */
static const char *const metadata_fields[] = {
	"Name", "Identity", "Id", "Guid", "ImmutableId", "DistinguishedName",
	"WhenChanged", "WhenCreated", "WhenChangedUTC", "WhenCreatedUTC", "IsValid",
	"ObjectState", "ExchangeVersion", "OrganizationId", "OriginatingServer",
	"ObjectCategory", "ObjectClass", "AdminDisplayName", "ExchangeObjectId",
	"PSComputerName", "PSShowComputerName", "RunspaceId", "Comment", "Comments", NULL
};

/* A field the service sets to this unless someone changes it. */
struct field_default {
	const char *field, *value;
};

static int in_list(const char *const *list, const char *name)
{
	for (; list && *list; list++)
		if (ms_strcaseeq(*list, name))
			return 1;
	return 0;
}

/* Null, false, "", "False", [] and {} set nothing. */
static int is_unset(const cJSON *v)
{
	if (cJSON_IsNull(v) || cJSON_IsFalse(v))
		return 1;
	if (cJSON_IsString(v))
		return !*v->valuestring || ms_strcaseeq(v->valuestring, "False");
	if (cJSON_IsArray(v) || cJSON_IsObject(v))
		return v->child == NULL;
	return 0;
}

static void show_value(struct ms_buf *out, const cJSON *v)
{
	char *text = cJSON_PrintUnformatted(v);

	ms_buf_add(out, text ? text : "?");
	free(text);
}

/* Every field of obj that setup neither sets (compared) nor leaves at the
 * service's default, and that holds a value, is a difference: an
 * exception, condition, action or setting added behind mailmode's back
 * changes where mail goes.  Annotations (Field@odata.type) are skipped. */
static int extra_fields(struct ms_buf *out, const cJSON *obj,
                        const char *const *compared,
                        const struct field_default *defaults)
{
	const cJSON *field;
	int n = 0;

	cJSON_ArrayForEach(field, obj) {
		const struct field_default *d;
		const char *name = field->string;

		if (!name || strchr(name, '@') || in_list(metadata_fields, name) ||
		    in_list(compared, name))
			continue;
		for (d = defaults; d && d->field && !ms_strcaseeq(d->field, name); d++)
			;
		if (d && d->field) {
			if (cJSON_IsString(field) && ms_strcaseeq(field->valuestring, d->value))
				continue;
			ms_buf_addf(out, "%s: have ", name);
			show_value(out, field);
			ms_buf_addf(out, ", want '%s'\n", d->value);
			n++;
			continue;
		}
		if (is_unset(field))
			continue;
		ms_buf_addf(out, "%s: have ", name);
		show_value(out, field);
		ms_buf_add(out, ", want it not set (mailmode does not set it)\n");
		n++;
	}
	return n;
}

/* The rule's Conditions/Exceptions/Actions (class names of its
 * predicates) are exactly want, compared by the last dotted part.
 * Skipped when the service does not list them. */
static int want_classes(struct ms_buf *out, const cJSON *rule, const char *field,
                        const char *const *want)
{
	const cJSON *item = cJSON_GetObjectItem(rule, field);
	size_t count = 0, i;
	const char **have;
	int differ = 0;

	if (!item || cJSON_IsNull(item))
		return 0;
	have = ms_field_strs(rule, field, &count);
	if (!have) {
		out->failed = 1;
		return 1;
	}
	for (i = 0; i < count && !differ; i++) {
		const char *dot = strrchr(have[i], '.');

		differ = !in_list(want, dot ? dot + 1 : have[i]);
	}
	for (i = 0; want[i] && !differ; i++) {
		size_t j;
		int found = 0;

		for (j = 0; j < count && !found; j++) {
			const char *dot = strrchr(have[j], '.');

			found = ms_strcaseeq(dot ? dot + 1 : have[j], want[i]);
		}
		differ = !found;
	}
	if (differ) {
		ms_buf_addf(out, "%s: have ", field);
		show_value(out, item);
		ms_buf_add(out, ", want [");
		for (i = 0; want[i]; i++)
			ms_buf_addf(out, "%s'%s'", i ? ", " : "", want[i]);
		ms_buf_add(out, "]\n");
	}
	free(have);
	return differ;
}

static const char *const inbound_fields[] = {
	"ConnectorType", "SenderDomains", "RequireTls", "TlsSenderCertificateName",
	"Enabled", "RestrictDomainsToCertificate", "RestrictDomainsToIPAddresses",
	"SenderIPAddresses", "ConnectorSource", NULL
};
static const char *const outbound_fields[] = {
	"ConnectorType", "SmartHosts", "UseMXRecord", "TlsSettings", "TlsDomain",
	"IsTransportRuleScoped", "Enabled", "TestMode", "ConnectorSource",
	/* Validate-OutboundConnector's results */
	"IsValidated", "LastValidationTimestamp", "ValidationRecipients", NULL
};
static const struct field_default outbound_defaults[] = {
	{ "MtaStsMode", "None" }, { "SmtpDaneMode", "Opportunistic" }, { NULL, NULL }
};
static const char *const rule_fields[] = {
	"State", "Enabled", "Mode", "Priority", "RecipientDomainIs",
	"RouteMessageOutboundConnector", "ExceptIfSenderIpRanges", "ExceptIfRecipientDomainIs",
	"Conditions", "Exceptions", "Actions", "Size", "RegexSize", "Description", "CreatedBy",
	"LastModifiedBy", "ManuallyModified", "RuleVersion",
	NULL
};
static const struct field_default rule_defaults[] = {
	{ "RuleErrorAction", "Ignore" }, { "SenderAddressLocation", "Header" },
	{ "RuleSubType", "None" }, { NULL, NULL }
};

/* A restriction set by hand turns the connector into the gateway-mode
 * lock-down, which refuses all mail arriving directly: drift, said so. */
static int want_unrestricted(struct ms_buf *out, const cJSON *conn, const char *field)
{
	if (ms_field_bool(conn, field) != 1)
		return 0;
	ms_buf_addf(out, "%s: have True, want False (a restricted connector refuses every message reaching Microsoft 365 directly, 5.7.51: in mailflow mode, all inbound mail)\n",
	            field);
	return 1;
}

int mf_inbound_compare(const struct mf_profile *profile, const cJSON *conn,
                       struct ms_buf *mismatches)
{
	static const char *const any_sender[] = { "*", NULL };
	size_t count = 0;
	const char **ips = ms_field_strs(conn, "SenderIPAddresses", &count);
	int n = 0;

	n += want_str(mismatches, conn, "ConnectorType", connector_type_name(profile));
	n += want_set(mismatches, conn, "SenderDomains", any_sender);
	n += want_bool(mismatches, conn, "RequireTls", 1);
	n += want_str(mismatches, conn, "TlsSenderCertificateName", profile->tls_cert_name);
	n += want_bool(mismatches, conn, "Enabled", 1);
	n += want_unrestricted(mismatches, conn, "RestrictDomainsToCertificate");
	n += want_unrestricted(mismatches, conn, "RestrictDomainsToIPAddresses");
	/* Addresses added by hand make other senders' mail the service's. */
	if (count > 0) {
		ms_buf_addf(mismatches, "SenderIPAddresses: have %zu address(es) starting '%s', want none (the connector is identified by the service's certificate)\n",
		            count, ips[0]);
		n++;
	}
	free(ips);
	n += extra_fields(mismatches, conn, inbound_fields, NULL);
	return n;
}

int mf_outbound_compare(const struct mf_profile *profile, const cJSON *conn,
                        struct ms_buf *mismatches)
{
	int n = 0;

	n += want_str(mismatches, conn, "ConnectorType", connector_type_name(profile));
	n += want_set(mismatches, conn, "SmartHosts",
	              (const char *const *)profile->smart_hosts);
	n += want_bool(mismatches, conn, "UseMXRecord", 0);
	n += want_str(mismatches, conn, "TlsSettings", "DomainValidation");
	n += want_str(mismatches, conn, "TlsDomain", profile->tls_domain);
	n += want_bool(mismatches, conn, "IsTransportRuleScoped", 1);
	n += want_bool(mismatches, conn, "Enabled", 1);
	/* A connector in test mode does not carry mail. */
	if (ms_field_bool(conn, "TestMode") == 1)
		n += want_bool(mismatches, conn, "TestMode", 0);
	n += extra_fields(mismatches, conn, outbound_fields, outbound_defaults);
	return n;
}

/* 1 when the rule acts on mail: enabled and enforced. */
static int rule_active(const cJSON *rule)
{
	const char *state = ms_field_str(rule, "State");
	const char *mode = ms_field_str(rule, "Mode");

	if (state && !ms_strcaseeq(state, "Enabled"))
		return 0;
	if (!state && ms_field_bool(rule, "Enabled") == 0)
		return 0;
	return !mode || ms_strcaseeq(mode, "Enforce");
}

int mf_rule_is_ours(const struct mf_profile *profile, const cJSON *rule)
{
	const char *name = ms_field_str(rule, "Name");
	const char *comments = ms_field_str(rule, "Comments");
	size_t prefix_len = strlen(profile->name_prefix);

	if (!name)
		name = ms_field_str(rule, "Identity");
	return name && comments &&
	       strncasecmp(name, profile->name_prefix, prefix_len) == 0 &&
	       strncasecmp(name + prefix_len, " route ", 7) == 0 &&
	       strstr(comments, profile->managed_marker) != NULL;
}

int mf_rule_routes_to(const cJSON *rule, const char *connector_name,
                      const char *connector_guid)
{
	const char *target = ms_field_str(rule, "RouteMessageOutboundConnector");

	return target && (ms_strcaseeq(target, connector_name) ||
	                  (connector_guid && ms_strcaseeq(target, connector_guid)));
}

/* 1 when range (as Exchange returns it) is one of the profile's. */
static int is_profile_range(const struct mf_profile *profile, const char *text)
{
	struct mf_ip_range range;
	size_t i;

	if (mf_ip_range_parse(text, &range) != 0)
		return 0;   /* "a-b" or garbage: not what setup writes */
	for (i = 0; i < profile->nservice_ips; i++)
		if (mf_ip_range_equal(&range, &profile->service_ips[i]))
			return 1;
	return 0;
}

/* ExceptIfSenderIpRanges is exactly the profile's service_ips, compared as
 * ranges ("192.0.2.0/24" = "192.0.2.7/24").  A header exception (a rule
 * made by an older mailmode, or edited) is a difference too, found by
 * extra_fields: it would let a forged header skip the service. */
static int want_service_exception(struct ms_buf *out, const struct mf_profile *profile,
                                  const cJSON *rule)
{
	size_t count = 0, i, j;
	const char **have = ms_field_strs(rule, "ExceptIfSenderIpRanges", &count);
	int equal = 1;

	if (!have) {
		out->failed = 1;
		return 1;
	}
	for (i = 0; i < count && equal; i++)
		equal = is_profile_range(profile, have[i]);
	for (i = 0; i < profile->nservice_ips && equal; i++) {
		struct mf_ip_range range;
		int found = 0;

		for (j = 0; j < count && !found; j++)
			found = mf_ip_range_parse(have[j], &range) == 0 &&
			        mf_ip_range_equal(&range, &profile->service_ips[i]);
		equal = found;
	}
	if (!equal) {
		ms_buf_add(out, "ExceptIfSenderIpRanges: have [");
		for (i = 0; i < count; i++)
			ms_buf_addf(out, "%s'%s'", i ? ", " : "", have[i]);
		ms_buf_add(out, "], want [");
		for (i = 0; i < profile->nservice_ips; i++) {
			char text[MF_IP_RANGE_TEXT];

			mf_ip_range_format(&profile->service_ips[i], text);
			ms_buf_addf(out, "%s'%s'", i ? ", " : "", text);
		}
		ms_buf_add(out, "] (the service's addresses, service_ips)\n");
	}
	free(have);
	return !equal;
}

int mf_rule_compare(const struct mf_profile *profile,
                    const struct mf_rule_want *want, const cJSON *rule,
                    const cJSON *all_rules, struct ms_buf *mismatches)
{
	static const char *const conditions[] = { "RecipientDomainIsPredicate", NULL };
	static const char *const exceptions[] = { "SenderIpRangesPredicate", NULL };
	static const char *const exceptions_subdomains[] = {
		"SenderIpRangesPredicate", "RecipientDomainIsPredicate", NULL
	};
	static const char *const actions[] = { "RouteMessageOutboundConnectorAction", NULL };
	const char *state = ms_field_str(rule, "State");
	long priority = ms_field_long(rule, "Priority", -1);
	const cJSON *other;
	const char *blocking = NULL;
	long blocking_priority = 0;
	int n = 0;

	if (state)
		n += want_str(mismatches, rule, "State", "Enabled");
	else
		n += want_bool(mismatches, rule, "Enabled", 1);
	n += want_str(mismatches, rule, "Mode", "Enforce");
	n += want_set(mismatches, rule, "RecipientDomainIs", want->domains);
	n += want_set(mismatches, rule, "ExceptIfRecipientDomainIs", want->excepted);
	n += want_str(mismatches, rule, "RouteMessageOutboundConnector", profile->outbound_name);
	n += want_service_exception(mismatches, profile, rule);
	if (!ms_field_str(rule, "Comments") ||
	    !strstr(ms_field_str(rule, "Comments"), profile->managed_marker)) {
		ms_buf_addf(mismatches, "Comments: have '%s', want it to contain '%s'\n",
		            shown(ms_field_str(rule, "Comments")), profile->managed_marker);
		n++;
	}
	n += want_classes(mismatches, rule, "Conditions", conditions);
	n += want_classes(mismatches, rule, "Exceptions",
	                  want->excepted[0] ? exceptions_subdomains : exceptions);
	n += want_classes(mismatches, rule, "Actions", actions);
	n += extra_fields(mismatches, rule, rule_fields, rule_defaults);
	/* Above every rule that is not ours (our other domains' rules may
	 * sit in between: they route other recipients). */
	cJSON_ArrayForEach(other, all_rules) {
		long p = ms_field_long(other, "Priority", -1);

		if (other == rule || mf_rule_is_ours(profile, other))
			continue;
		if (priority < 0 || (p >= 0 && p <= priority)) {
			if (!blocking || p < blocking_priority) {
				blocking = ms_field_str(other, "Name");
				blocking_priority = p;
			}
		}
	}
	if (blocking || priority < 0) {
		ms_buf_addf(mismatches, "Priority: have %ld, want above every other rule (rule '%s' has %ld)\n",
		            priority, shown(blocking), blocking_priority);
		n++;
	}
	return n;
}

/* ------------------------------------------------------------------ */
/* Conflicts */

/* recipient in domain `rule_domain` (RecipientDomainIs also matches
 * subdomains). */
static int domain_covers(const char *rule_domain, const char *domain)
{
	size_t rl = strlen(rule_domain), dl = strlen(domain);

	if (ms_strcaseeq(rule_domain, domain) || strcmp(rule_domain, "*") == 0)
		return 1;
	return dl > rl && domain[dl - rl - 1] == '.' &&
	       strcasecmp(domain + dl - rl, rule_domain) == 0;
}

static int any_domain_covers(const cJSON *rule, const char *field,
                             const char *domain, int *present)
{
	size_t count = 0, i;
	const char **values = ms_field_strs(rule, field, &count);
	int covers = 0;

	*present = count > 0;
	for (i = 0; values && i < count && !covers; i++)
		covers = domain_covers(values[i], domain);
	free(values);
	return covers;
}

/* Does the rule apply to mail for the domain?  *how says why; when the
 * rule selects recipients by something we cannot resolve (groups,
 * patterns), it may: counted as covering. */
static int rule_covers(const cJSON *rule, const char *domain, const char **how)
{
	static const char *const unresolvable[] = {
		"SentToMemberOf", "RecipientAddressMatchesPatterns",
		"RecipientAddressContainsWords", "AnyOfToHeader",
		"AnyOfToHeaderMemberOf", "AnyOfToCcHeader", "AnyOfRecipientAddressMatchesPatterns",
		"AnyOfRecipientAddressContainsWords", "RecipientInSenderList", NULL
	};
	const char *scope = ms_field_str(rule, "SentToScope");
	size_t count = 0, i;
	const char **sent_to;
	int present = 0;

	if (any_domain_covers(rule, "ExceptIfRecipientDomainIs", domain, &present))
		return 0;
	if (scope && ms_strcaseeq(scope, "NotInOrganization"))
		return 0;   /* an accepted domain's recipients are inside */
	if (any_domain_covers(rule, "RecipientDomainIs", domain, &present)) {
		*how = "its recipient domains include it";
		return 1;
	}
	if (present)
		return 0;
	sent_to = ms_field_strs(rule, "SentTo", &count);
	if (count > 0) {
		int covers = 0;

		for (i = 0; sent_to && i < count && !covers; i++) {
			const char *at = strrchr(sent_to[i], '@');

			covers = !at || ms_strcaseeq(at + 1, domain);
		}
		free(sent_to);
		*how = "it is sent to recipients there";
		return covers;
	}
	free(sent_to);
	for (i = 0; unresolvable[i]; i++) {
		if (cJSON_GetObjectItem(rule, unresolvable[i]) &&
		    !cJSON_IsNull(cJSON_GetObjectItem(rule, unresolvable[i]))) {
			*how = "its recipient condition may include it";
			return 1;
		}
	}
	*how = "it has no recipient condition";
	return 1;
}

/* The rule's actions that take mail away from the normal path, as words;
 * empty when none. */
static void rule_diversions(const cJSON *rule, struct ms_buf *out)
{
	size_t count = 0, i;
	const char **actions = ms_field_strs(rule, "Actions", &count);
	const char *target;
	int route = 0, redirect = 0, delete_ = 0, quarantine = 0, stop = 0;

	for (i = 0; actions && i < count; i++) {
		route |= strstr(actions[i], "RouteMessageOutboundConnector") != NULL;
		redirect |= strstr(actions[i], "RedirectMessage") != NULL;
		delete_ |= strstr(actions[i], "DeleteMessage") != NULL;
		quarantine |= strstr(actions[i], "Quarantine") != NULL;
		stop |= strstr(actions[i], "StopRuleProcessing") != NULL;
	}
	free(actions);
	target = ms_field_str(rule, "RouteMessageOutboundConnector");
	if (target && *target)
		ms_buf_addf(out, "%sroutes to connector '%s'", out->len ? ", " : "", target);
	else if (route)
		ms_buf_addf(out, "%sroutes to a connector", out->len ? ", " : "");
	target = ms_field_str(rule, "RedirectMessageTo");
	if ((target && *target) || redirect)
		ms_buf_addf(out, "%sredirects%s%s", out->len ? ", " : "",
		            target ? " to " : "", target ? target : "");
	if (ms_field_bool(rule, "DeleteMessage") == 1 || delete_)
		ms_buf_addf(out, "%sdeletes", out->len ? ", " : "");
	if (ms_field_bool(rule, "Quarantine") == 1 || quarantine)
		ms_buf_addf(out, "%squarantines", out->len ? ", " : "");
	if (ms_field_bool(rule, "StopRuleProcessing") == 1 || stop)
		ms_buf_addf(out, "%sstops rule processing", out->len ? ", " : "");
}

static const char *vendor_rule(const char *name)
{
	size_t i;

	for (i = 0; vendor_rule_prefixes[i]; i++)
		if (strncasecmp(name, vendor_rule_prefixes[i],
		                strlen(vendor_rule_prefixes[i])) == 0)
			return vendor_rule_prefixes[i];
	for (i = 0; vendor_rule_words[i]; i++) {
		const char *p;
		size_t n = strlen(vendor_rule_words[i]);

		for (p = name; *p; p++)
			if (strncasecmp(p, vendor_rule_words[i], n) == 0)
				return vendor_rule_words[i];
	}
	return NULL;
}

static int is_accepted(const char *const *accepted, const char *name)
{
	size_t i;

	for (i = 0; accepted && accepted[i]; i++)
		if (ms_strcaseeq(accepted[i], name))
			return 1;
	return 0;
}

/* The object's name as the shell takes it: 'Route to SEG', 'O'\''Brien'. */
static void shell_quote(struct ms_buf *out, const char *s)
{
	ms_buf_add(out, "'");
	for (; *s; s++) {
		char c[2] = { *s, '\0' };

		ms_buf_add(out, *s == '\'' ? "'\\''" : c);
	}
	ms_buf_add(out, "'");
}

/* Where the line about the object goes; counts the refusing ones.  The
 * line is written without its newline; conflict_end closes it. */
static struct ms_buf *conflict_out(const struct mf_conflicts *c, const char *name, int *n)
{
	if (is_accepted(c->accepted, name))
		return c->accepted_lines;
	(*n)++;
	return c->lines;
}

/* Ends a conflict line; a refusing one says how to accept that object
 * alone. */
static void conflict_end(const struct mf_conflicts *c, struct ms_buf *out, const char *name)
{
	if (out == c->lines) {
		ms_buf_add(out, " (to accept it: --accept-conflict ");
		shell_quote(out, name);
		ms_buf_add(out, ")");
	}
	ms_buf_add(out, "\n");
}

static int rule_conflicts(const struct mf_profile *profile, const char *domain,
                          const cJSON *rules, const struct mf_conflicts *c)
{
	const cJSON *item;
	int n = 0;

	cJSON_ArrayForEach(item, rules) {
		const char *name = ms_field_str(item, "Name");
		const char *vendor, *how = "";
		struct ms_buf what = { 0 }, *out = NULL;

		if (!name)
			name = ms_field_str(item, "Identity");
		if (!name || mf_rule_is_ours(profile, item) || !rule_active(item))
			continue;
		vendor = vendor_rule(name);
		rule_diversions(item, &what);
		if (vendor) {
			out = conflict_out(c, name, &n);
			ms_buf_addf(out, "transport rule '%s' (priority %ld): a known mail-routing rule of another service ('%s')%s%s",
			            name, ms_field_long(item, "Priority", -1), vendor,
			            what.len ? "; it " : "", what.len ? what.data : "");
		} else if (what.len && rule_covers(item, domain, &how)) {
			out = conflict_out(c, name, &n);
			ms_buf_addf(out, "transport rule '%s' (priority %ld) %s for %s: %s",
			            name, ms_field_long(item, "Priority", -1), what.data,
			            domain, how);
		}
		if (out)
			conflict_end(c, out, name);
		if (what.failed)
			c->lines->failed = 1;
		ms_buf_free(&what);
	}
	return n;
}

/* 1 when one of the connector's RecipientDomains names the domain or a
 * parent of it ("contoso.com", "*.contoso.com"): "*" alone does not. */
static int names_domain(const cJSON *conn, const char *domain, int *any)
{
	size_t count = 0, i;
	const char **values = ms_field_strs(conn, "RecipientDomains", &count);
	int names = 0;

	*any = 0;
	for (i = 0; values && i < count && !names; i++) {
		const char *v = values[i];

		if (strcmp(v, "*") == 0) {
			*any = 1;
			continue;
		}
		if (strncmp(v, "*.", 2) == 0)
			v += 2;   /* a wildcard names its parent's subdomains */
		names = domain_covers(v, domain) &&
		        (v == values[i] || !ms_strcaseeq(v, domain));
	}
	free(values);
	return names;
}

/* An outbound connector that is not rule-scoped carries mail to the
 * domains it names.  One for "*" is how mail leaving the organization goes
 * out through a gateway: it carries no mail for an accepted domain, so it
 * is only noted. */
static int outbound_conflicts(const struct mf_profile *profile, const char *domain,
                              const cJSON *connectors, const struct mf_conflicts *c)
{
	const cJSON *item;
	int n = 0;

	cJSON_ArrayForEach(item, connectors) {
		const char *name = ms_field_str(item, "Name");
		struct ms_buf *out;
		int any = 0;

		if (!name || ms_strcaseeq(name, profile->outbound_name) ||
		    ms_field_bool(item, "Enabled") == 0 ||
		    ms_field_bool(item, "IsTransportRuleScoped") == 1)
			continue;
		if (names_domain(item, domain, &any)) {
			out = conflict_out(c, name, &n);
			ms_buf_addf(out, "outbound connector '%s' carries all mail for %s (RecipientDomains, not rule-scoped)",
			            name, domain);
			conflict_end(c, out, name);
		} else if (any && c->notes) {
			ms_buf_addf(c->notes, "outbound connector '%s' (RecipientDomains *, not rule-scoped) carries mail leaving the organization, not mail for %s: not a conflict\n",
			            name, domain);
		}
	}
	return n;
}

/* Gateway mode's own connector for one of the tenant's domains
 * (doc/gateway-tenant.md): marked as mailmode's and scoped to accepted
 * domains.  It takes the same certificate on purpose (both modes are live
 * during a switch) and is not a conflict. */
static int gateway_connector(const struct mf_profile *profile, const cJSON *conn)
{
	const char *comment = ms_field_str(conn, "Comment");
	size_t count = 0;
	const char **scope = ms_field_strs(conn, "AssociatedAcceptedDomains", &count);
	int ours = comment && strstr(comment, profile->managed_marker) &&
	           strstr(comment, ": gateway mode of ") && count > 0;

	free(scope);
	return ours;
}

static int inbound_conflicts(const struct mf_profile *profile, const cJSON *connectors,
                             const struct mf_conflicts *c)
{
	const cJSON *item;
	int n = 0;

	cJSON_ArrayForEach(item, connectors) {
		const char *name = ms_field_str(item, "Name");
		const char *cert = ms_field_str(item, "TlsSenderCertificateName");
		struct ms_buf *out;

		if (!name || ms_strcaseeq(name, profile->inbound_name) ||
		    ms_field_bool(item, "Enabled") == 0 || !cert || gateway_connector(profile, item))
			continue;
		if (ms_strcaseeq(cert, profile->tls_cert_name)) {
			out = conflict_out(c, name, &n);
			ms_buf_addf(out, "inbound connector '%s' also accepts certificate '%s'", name, cert);
			conflict_end(c, out, name);
		}
	}
	return n;
}

int mf_find_conflicts(const struct mf_profile *profile, const char *domain,
                      const cJSON *rules, const cJSON *outbound_connectors,
                      const cJSON *inbound_connectors, const struct mf_conflicts *c)
{
	return rule_conflicts(profile, domain, rules, c) +
	       outbound_conflicts(profile, domain, outbound_connectors, c) +
	       inbound_conflicts(profile, inbound_connectors, c);
}

/* ------------------------------------------------------------------ */
/* PowerShell rendering for plan() */

static void ps_quote(struct ms_buf *out, const char *s)
{
	ms_buf_add(out, "'");
	for (; *s; s++) {
		char c[2] = { *s, '\0' };

		ms_buf_add(out, *s == '\'' ? "''" : c);
	}
	ms_buf_add(out, "'");
}

static void ps_value(struct ms_buf *out, const cJSON *v)
{
	const cJSON *e;
	int first = 1;

	if (cJSON_IsString(v)) {
		ps_quote(out, v->valuestring);
	} else if (cJSON_IsNumber(v)) {
		ms_buf_addf(out, "%g", v->valuedouble);
	} else if (cJSON_IsArray(v)) {
		cJSON_ArrayForEach(e, v) {
			if (!first)
				ms_buf_add(out, ",");
			ps_value(out, e);
			first = 0;
		}
	} else {
		ms_buf_add(out, "$null");
	}
}

void mf_cmdlet_line(struct ms_buf *out, const char *cmdlet, const cJSON *params)
{
	const cJSON *p;

	ms_buf_add(out, cmdlet);
	cJSON_ArrayForEach(p, params) {
		if (cJSON_IsBool(p)) {
			ms_buf_addf(out, " -%s:%s", p->string,
			            cJSON_IsTrue(p) ? "$true" : "$false");
		} else {
			ms_buf_addf(out, " -%s ", p->string);
			ps_value(out, p);
		}
	}
	ms_buf_add(out, "\n");
}

int mf_plan_init(struct mf_plan *plan, const char *tenant)
{
	memset(plan, 0, sizeof(*plan));
	snprintf(plan->scope, sizeof(plan->scope), "tenant %s", tenant);
	plan->actions = cJSON_CreateArray();
	return plan->actions ? 0 : -1;
}

void mf_plan_free(struct mf_plan *plan)
{
	ms_buf_free(&plan->text);
	cJSON_Delete(plan->actions);
	plan->actions = NULL;
}

/* The action of one line (line without its newline). */
static cJSON *plan_action(struct mf_plan *plan, const char *change, const char *object,
                          const char *name, int shared, struct ms_buf *line)
{
	cJSON *a = cJSON_CreateObject();
	int ok = a && line->data && !line->failed &&
	         cJSON_AddStringToObject(a, "change", change) &&
	         (!object || cJSON_AddStringToObject(a, "object", object)) &&
	         (!name || cJSON_AddStringToObject(a, "name", name)) &&
	         (!shared || cJSON_AddStringToObject(a, "shared", plan->scope));

	if (ok) {
		ms_buf_add(&plan->text, line->data);
		line->data[line->len - 1] = '\0';
		ok = cJSON_AddStringToObject(a, "text", line->data) &&
		     cJSON_AddItemToArray(plan->actions, a);
	}
	if (!ok) {
		cJSON_Delete(a);
		plan->failed = 1;
		return NULL;
	}
	return a;
}

void mf_plan_cmdlet(struct mf_plan *plan, const char *change, const char *object,
                    const char *name, int shared, const char *cmdlet, const cJSON *params)
{
	struct ms_buf line = { 0 };
	cJSON *a;

	mf_cmdlet_line(&line, cmdlet, params);
	a = plan_action(plan, change, object, name, shared, &line);
	if (!a || !cJSON_AddStringToObject(a, "cmdlet", cmdlet) ||
	    !cJSON_AddItemToObject(a, "parameters", cJSON_Duplicate(params, 1)))
		plan->failed = 1;
	ms_buf_free(&line);
}

void mf_plan_note(struct mf_plan *plan, const char *change, const char *object,
                  const char *name, int shared, const char *fmt, ...)
{
	struct ms_buf line = { 0 };
	char text[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	ms_buf_addf(&line, "# %s\n", text);
	plan_action(plan, change, object, name, shared, &line);
	ms_buf_free(&line);
}
