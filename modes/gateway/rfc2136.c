/*
 * The RFC 2136 provider: reads from the primary (authoritative answers
 * only) and one TSIG-signed UPDATE per replacement, over TCP.
 *
 * The compare-and-swap is a single message: the prerequisite section holds
 * the exact MX set that was read ("RRset exists, value dependent": the
 * server compares the whole set), the update section deletes the MX RRset
 * and adds the new records.  The server applies all of it or none of it,
 * so the name is never without MX.  The version token is the set itself.
 */
#include "provider.h"
#include "dns.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rfc2136 {
	ldns_resolver *reader;   /* TCP to the primary, unsigned queries */
	ldns_resolver *updater;  /* TCP, one try, TSIG key set (also used by
	                            ldns to verify the reply's signature) */
	char *secret;            /* host->secret_load'ed; NULL for plan */
};

/* TSIG extended errors (RFC 8945) in the reply's TSIG record. */
static const char *tsig_error_text(uint16_t error)
{
	switch (error) {
	case 16: return "BADSIG: the key's secret does not match";
	case 17: return "BADKEY: the server does not know this key (name or "
	                "algorithm) or does not accept it for this zone";
	case 18: return "BADTIME: the clocks differ by more than the fudge";
	case 22: return "BADTRUNC";
	default: return NULL;
	}
}

static uint16_t reply_tsig_error(const ldns_pkt *reply)
{
	const ldns_rr *tsig = ldns_pkt_tsig(reply);

	/* rdata: algorithm, time, fudge, MAC, original id, error, other */
	if (!tsig || ldns_rr_rd_count(tsig) < 6)
		return 0;
	return ldns_rdf2native_int16(ldns_rr_rdf(tsig, 5));
}

static ldns_rr *bare_rr(const ldns_rdf *owner, ldns_rr_class klass)
{
	ldns_rr *rr = ldns_rr_new();

	if (!rr)
		return NULL;
	ldns_rr_set_owner(rr, ldns_rdf_clone(owner));
	ldns_rr_set_type(rr, LDNS_RR_TYPE_MX);
	ldns_rr_set_class(rr, klass);
	ldns_rr_set_ttl(rr, 0);
	return rr;
}

static ldns_rr *mx_rr(const char *name, uint32_t ttl, const struct gw_mx *mx)
{
	char text[2 * GW_NAME_MAX + 64];
	ldns_rr *rr = NULL;

	snprintf(text, sizeof(text), "%s. %u IN MX %u %s", name, ttl, mx->pref,
	         mx->host);
	if (ldns_rr_new_frm_str(&rr, text, 0, NULL, NULL) != LDNS_STATUS_OK)
		return NULL;
	return rr;
}

/* Builds the UPDATE (into *pkt when pkt is not NULL) and describes it line
 * by line (into lines when not NULL): one code path for plan and setup, so
 * the plan is exactly what would be sent. */
static int build_update(struct gw_provider *provider, const char *name,
                        const struct gw_rrset_version *expected,
                        const struct gw_mx_set *replacement, ldns_pkt **pkt,
                        char *lines, size_t lines_len)
{
	const struct gw_op *op = provider->op;
	ldns_rdf *owner = ldns_dname_new_frm_str(name);
	ldns_rdf *zone = ldns_dname_new_frm_str(op->zone);
	ldns_rr_list *prereq = ldns_rr_list_new(), *update = ldns_rr_list_new();
	ldns_rr *rr;
	size_t i;
	int rc = MAILMODE_ERR_NOMEM;

	if (pkt)
		*pkt = NULL;
	if (!owner || !zone || !prereq || !update)
		goto out;
	if (lines)
		gw_append_line(lines, lines_len,
		            "UPDATE zone %s. at primary %s port %u over TCP, signed "
		            "with TSIG key %s (%s):", op->zone, op->primary_addr,
		            op->cfg->port, op->cfg->tsig_key, op->cfg->tsig_algorithm);
	if (expected->rrset.count == 0) {
		rr = bare_rr(owner, LDNS_RR_CLASS_NONE);
		if (!rr || !ldns_rr_list_push_rr(prereq, rr)) {
			ldns_rr_free(rr);
			goto out;
		}
		if (lines)
			gw_append_line(lines, lines_len, "  prerequisite: %s. has no MX "
			            "records (RRset does not exist)", name);
	}
	for (i = 0; i < expected->rrset.count; i++) {
		/* Value-dependent "RRset exists": TTL 0, class IN. */
		rr = mx_rr(name, 0, &expected->rrset.mx[i]);
		if (!rr || !ldns_rr_list_push_rr(prereq, rr)) {
			ldns_rr_free(rr);
			goto out;
		}
		if (lines)
			gw_append_line(lines, lines_len, "  prerequisite: %s. IN MX %u %s "
			            "(the MX set must be exactly these %zu records)", name,
			            expected->rrset.mx[i].pref, expected->rrset.mx[i].host,
			            expected->rrset.count);
	}
	if (expected->rrset.count > 0) {
		rr = bare_rr(owner, LDNS_RR_CLASS_ANY);
		if (!rr || !ldns_rr_list_push_rr(update, rr)) {
			ldns_rr_free(rr);
			goto out;
		}
		if (lines)
			gw_append_line(lines, lines_len, "  delete: %s. ANY MX (the whole "
			            "MX RRset)", name);
	}
	for (i = 0; i < replacement->count; i++) {
		rr = mx_rr(name, replacement->mx[i].ttl, &replacement->mx[i]);
		if (!rr || !ldns_rr_list_push_rr(update, rr)) {
			ldns_rr_free(rr);
			goto out;
		}
		if (lines)
			gw_append_line(lines, lines_len, "  add: %s. %u IN MX %u %s", name,
			            replacement->mx[i].ttl, replacement->mx[i].pref,
			            replacement->mx[i].host);
	}
	if (pkt) {
		/* Takes the zone rdf, clones the lists. */
		*pkt = ldns_update_pkt_new(zone, LDNS_RR_CLASS_IN, prereq, update,
		                           NULL);
		zone = NULL;
		if (!*pkt)
			goto out;
		ldns_pkt_set_rd(*pkt, false);
		ldns_pkt_set_random_id(*pkt);
	}
	rc = MAILMODE_OK;
out:
	ldns_rdf_deep_free(owner);
	ldns_rdf_deep_free(zone);
	ldns_rr_list_deep_free(prereq);
	ldns_rr_list_deep_free(update);
	return rc;
}

static int rfc2136_get_rrset(struct gw_provider *provider, const char *name,
                             struct gw_rrset_version *version)
{
	struct rfc2136 *self = provider->impl;
	const struct gw_op *op = provider->op;
	const struct mailmode_host *host = op->ctx->host;
	ldns_pkt *answer = NULL;
	char why[256];
	int rc;

	memset(version, 0, sizeof(*version));
	rc = gw_dns_ask(self->reader, name, LDNS_RR_TYPE_MX, &answer, why,
	                sizeof(why));
	if (rc != MAILMODE_OK) {
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 1,
		               "cannot read the MX set of %s from the primary %s port "
		               "%u (zone %s): %s", name, op->primary_addr,
		               op->cfg->port, op->zone, why);
		goto out;
	}
	if (ldns_pkt_get_rcode(answer) == LDNS_RCODE_NXDOMAIN && ldns_pkt_aa(answer)) {
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
		               "%s does not exist in zone %s on the primary %s port %u "
		               "(NXDOMAIN)", name, op->zone, op->primary_addr,
		               op->cfg->port);
		rc = MAILMODE_ERR_FAILED;
		goto out;
	}
	if (!gw_dns_is_authoritative(answer, why, sizeof(why))) {
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
		               "the primary %s port %u is not authoritative for %s: it "
		               "%s; is zone %s served there?", op->primary_addr,
		               op->cfg->port, name, why, op->zone);
		rc = MAILMODE_ERR_FAILED;
		goto out;
	}
	rc = gw_dns_mx_from_answer(answer, name, &version->rrset, why, sizeof(why));
	if (rc != MAILMODE_OK) {
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
		               "the primary %s port %u: %s", op->primary_addr,
		               op->cfg->port, why);
		goto out;
	}
out:
	ldns_pkt_free(answer);
	return rc;
}

/* Classifies a reply whose TSIG verified (or that had none to verify). */
static enum gw_replace_outcome classify_rcode(struct gw_provider *provider,
                                              const char *name,
                                              const ldns_pkt *reply,
                                              bool signature_ok)
{
	const struct gw_op *op = provider->op;
	const struct mailmode_host *host = op->ctx->host;
	ldns_pkt_rcode rcode = ldns_pkt_get_rcode(reply);
	const char *tsig_text = tsig_error_text(reply_tsig_error(reply));
	const char *rname = gw_dns_rcode_name(rcode);

	switch (rcode) {
	case LDNS_RCODE_NOERROR:
		if (signature_ok)
			return GW_REPLACE_OK;
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 1,
		               "the primary %s port %u answered NOERROR to the UPDATE "
		               "of %s, but the answer's TSIG signature does not "
		               "verify: outcome unknown", op->primary_addr,
		               op->cfg->port, name);
		return GW_REPLACE_UNKNOWN;
	case LDNS_RCODE_NXRRSET:
	case LDNS_RCODE_YXRRSET:
	case LDNS_RCODE_NXDOMAIN:
	case LDNS_RCODE_YXDOMAIN:
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
		               "the MX set of %s changed on the primary between our "
		               "read and our UPDATE (%s): someone else is editing it; "
		               "nothing was changed by mailmode", name, rname);
		return GW_REPLACE_CONFLICT;
	case LDNS_RCODE_NOTAUTH:
		if (tsig_text)
			host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
			               "the primary %s port %u rejected TSIG key %s for "
			               "zone %s: NOTAUTH, %s", op->primary_addr,
			               op->cfg->port, op->cfg->tsig_key, op->zone,
			               tsig_text);
		else
			host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
			               "the primary %s port %u refused the UPDATE of zone "
			               "%s with TSIG key %s: NOTAUTH (not authoritative "
			               "for the zone, or the key may not update it)",
			               op->primary_addr, op->cfg->port, op->zone,
			               op->cfg->tsig_key);
		return GW_REPLACE_DENIED;
	case LDNS_RCODE_REFUSED:
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
		               "the primary %s port %u refused the UPDATE of %s MX in "
		               "zone %s with TSIG key %s: REFUSED (the server's "
		               "update policy does not allow this key)",
		               op->primary_addr, op->cfg->port, name, op->zone,
		               op->cfg->tsig_key);
		return GW_REPLACE_DENIED;
	default:
		host->diag_set(op->diag, MAILMODE_SEV_ERROR,
		               rcode == LDNS_RCODE_SERVFAIL,
		               "the primary %s port %u rejected the UPDATE of %s in "
		               "zone %s: %s; nothing was changed", op->primary_addr,
		               op->cfg->port, name, op->zone, rname);
		return GW_REPLACE_FAILED;
	}
}

/* Signs and sends one UPDATE and classifies the answer. */
static enum gw_replace_outcome send_update(struct gw_provider *provider,
                                           const char *name, ldns_pkt *update)
{
	struct rfc2136 *self = provider->impl;
	const struct gw_op *op = provider->op;
	const struct mailmode_host *host = op->ctx->host;
	ldns_pkt *reply = NULL;
	enum gw_replace_outcome outcome = GW_REPLACE_FAILED;
	ldns_status status;
	char why[256];

	status = ldns_update_pkt_tsig_add(update, self->updater);
	if (status != LDNS_STATUS_OK) {
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
		               "cannot sign the UPDATE with TSIG key %s (%s): %s",
		               op->cfg->tsig_key, op->cfg->tsig_algorithm,
		               ldns_get_errorstr_by_id(status));
		goto out;
	}
	/* ldns_send (not ldns_resolver_send_pkt): on a TSIG failure it still
	 * hands back the reply, whose rcode and TSIG error say what is wrong. */
	status = ldns_send(&reply, self->updater, update);
	if (!reply) {
		gw_dns_status_text(status, self->updater, why, sizeof(why));
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 1,
		               "no answer from the primary %s port %u to the UPDATE of "
		               "%s (%s): outcome unknown", op->primary_addr,
		               op->cfg->port, name, why);
		outcome = GW_REPLACE_UNKNOWN;
		goto out;
	}
	if (status == LDNS_STATUS_OK) {
		outcome = classify_rcode(provider, name, reply, true);
	} else if (status == LDNS_STATUS_CRYPTO_TSIG_BOGUS) {
		outcome = classify_rcode(provider, name, reply, false);
	} else {
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 1,
		               "unreadable answer from the primary %s port %u to the "
		               "UPDATE of %s (%s): outcome unknown", op->primary_addr,
		               op->cfg->port, name, ldns_get_errorstr_by_id(status));
		outcome = GW_REPLACE_UNKNOWN;
	}
out:
	ldns_pkt_free(reply);
	return outcome;
}

static bool have_updater(struct gw_provider *provider)
{
	struct rfc2136 *self = provider->impl;
	const struct gw_op *op = provider->op;

	if (self->updater)
		return true;
	op->ctx->host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
	                        "internal error: the RFC 2136 provider was opened "
	                        "without its TSIG secret");
	return false;
}

static enum gw_replace_outcome rfc2136_replace_rrset(
	struct gw_provider *provider, const char *name,
	const struct gw_rrset_version *expected,
	const struct gw_mx_set *replacement)
{
	const struct gw_op *op = provider->op;
	ldns_pkt *update = NULL;
	enum gw_replace_outcome outcome = GW_REPLACE_FAILED;

	if (!have_updater(provider))
		goto out;
	if (build_update(provider, name, expected, replacement, &update, NULL, 0) !=
	    MAILMODE_OK) {
		op->ctx->host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
		                        "cannot build the UPDATE for %s (out of "
		                        "memory?)", name);
		goto out;
	}
	outcome = send_update(provider, name, update);
out:
	ldns_pkt_free(update);
	return outcome;
}

/* The probe: an UPDATE deleting one MX record of `name` that cannot exist
 * (an exchange under .invalid with a random label).  Deleting an absent RR
 * is a no-op (RFC 2136 3.4.2.4), yet the server checks the key and its
 * policy for NAME MX exactly as for the real swap.  A prerequisite made to
 * fail would not do: BIND answers prerequisites before it consults
 * update-policy, so a key the policy refuses would pass. */
static ldns_pkt *build_probe(const struct gw_op *op, const char *name)
{
	char text[GW_NAME_MAX + 96];
	ldns_rdf *zone = ldns_dname_new_frm_str(op->zone);
	ldns_rr_list *update = ldns_rr_list_new();
	ldns_rr *rr = NULL;
	ldns_pkt *pkt = NULL;

	snprintf(text, sizeof(text), "%s. 0 IN MX 0 mailmode-preflight-%04x%04x.invalid.",
	         name, ldns_get_random(), ldns_get_random());
	if (!zone || !update || ldns_rr_new_frm_str(&rr, text, 0, NULL, NULL) !=
	                                LDNS_STATUS_OK)
		goto out;
	ldns_rr_set_class(rr, LDNS_RR_CLASS_NONE);
	ldns_rr_set_ttl(rr, 0);
	if (!ldns_rr_list_push_rr(update, rr))
		goto out;
	rr = NULL;
	pkt = ldns_update_pkt_new(zone, LDNS_RR_CLASS_IN, NULL, update, NULL);
	zone = NULL;
	if (pkt) {
		ldns_pkt_set_rd(pkt, false);
		ldns_pkt_set_random_id(pkt);
	}
out:
	ldns_rr_free(rr);
	ldns_rdf_deep_free(zone);
	ldns_rr_list_deep_free(update);
	return pkt;
}

static enum gw_replace_outcome rfc2136_probe_update(struct gw_provider *provider,
                                                    const char *name)
{
	const struct gw_op *op = provider->op;
	const struct mailmode_host *host = op->ctx->host;
	char refusal[MAILMODE_DIAG_SUMMARY_MAX];
	enum gw_replace_outcome outcome = GW_REPLACE_FAILED;
	ldns_pkt *probe = NULL;

	if (!have_updater(provider))
		goto out;
	probe = build_probe(op, name);
	if (!probe) {
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
		               "cannot build the probe UPDATE for %s (out of memory?)",
		               name);
		goto out;
	}
	outcome = send_update(provider, name, probe);
	if (outcome == GW_REPLACE_DENIED) {
		snprintf(refusal, sizeof(refusal), "%s", op->diag->summary);
		host->diag_set(op->diag, MAILMODE_SEV_ERROR, 0,
		               "%s; grant TSIG key %s (%s, this secret) updates of "
		               "%s. MX in zone %s on the primary", refusal,
		               op->cfg->tsig_key, op->cfg->tsig_algorithm, name,
		               op->zone);
	}
out:
	ldns_pkt_free(probe);
	return outcome;
}

static int rfc2136_describe_replace(struct gw_provider *provider,
                                    const char *name,
                                    const struct gw_rrset_version *expected,
                                    const struct gw_mx_set *replacement,
                                    char *buf, size_t len)
{
	return build_update(provider, name, expected, replacement, NULL, buf, len);
}

/* The secret is copied into the resolver by ldns; wipe that copy too. */
static void free_resolver_wiping_secret(ldns_resolver *res)
{
	char *keydata;

	if (!res)
		return;
	keydata = (char *)ldns_resolver_tsig_keydata(res);
	if (keydata)
		explicit_bzero(keydata, strlen(keydata));
	ldns_resolver_deep_free(res);
}

static void rfc2136_close(struct gw_provider *provider)
{
	struct rfc2136 *self;
	const struct mailmode_host *host;

	if (!provider)
		return;
	self = provider->impl;
	host = provider->op->ctx->host;
	if (self) {
		if (self->reader)
			ldns_resolver_deep_free(self->reader);
		free_resolver_wiping_secret(self->updater);
		if (self->secret)
			host->secret_free(host->handle, self->secret);
		free(self);
	}
	free(provider);
}

static const struct gw_provider_ops rfc2136_ops = {
	.name = "rfc2136",
	.get_rrset = rfc2136_get_rrset,
	.replace_rrset = rfc2136_replace_rrset,
	.probe_update = rfc2136_probe_update,
	.describe_replace = rfc2136_describe_replace,
	.close = rfc2136_close,
};

int gw_rfc2136_open(struct gw_op *op, bool need_secret,
                    struct gw_provider **out)
{
	struct gw_provider *provider = calloc(1, sizeof(*provider));
	struct rfc2136 *self = calloc(1, sizeof(*self));
	int rc = MAILMODE_ERR_NOMEM;

	*out = NULL;
	if (!provider || !self)
		goto out;
	provider->ops = &rfc2136_ops;
	provider->op = op;
	provider->impl = self;
	snprintf(provider->where, sizeof(provider->where), "%s port %u",
	         op->primary_addr, op->cfg->port);
	rc = gw_dns_resolver_new(op, op->primary_addr, op->cfg->port, GW_DNS_TCP,
	                         &self->reader);
	if (rc != MAILMODE_OK)
		goto out;
	if (need_secret) {
		rc = gw_config_load_secret(op->ctx, op->cfg, &self->secret, op->diag);
		if (rc != MAILMODE_OK)
			goto out;
		rc = gw_dns_resolver_new(op, op->primary_addr, op->cfg->port,
		                         GW_DNS_TCP | GW_DNS_ONE_TRY, &self->updater);
		if (rc != MAILMODE_OK)
			goto out;
		ldns_resolver_set_tsig_keyname(self->updater, op->cfg->tsig_key);
		ldns_resolver_set_tsig_algorithm(self->updater,
		                                 gw_config_tsig_algorithm_ldns(op->cfg));
		ldns_resolver_set_tsig_keydata(self->updater, self->secret);
	}
	*out = provider;
	provider = NULL;
	self = NULL;
	rc = MAILMODE_OK;
out:
	if (provider) {
		provider->impl = self;
		rfc2136_close(provider);
	} else {
		free(self);
	}
	return rc;
}
