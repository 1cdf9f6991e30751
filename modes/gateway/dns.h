/*
 * ldns helpers of the gateway plugin (the ldns-facing half of gateway.h).
 * Every resolver made here asks exactly one server, so that an answer can
 * be attributed to that server and timeouts do not silently fall through
 * to another one.
 */
#ifndef GATEWAY_DNS_H
#define GATEWAY_DNS_H

#include <ldns/ldns.h>

#include "gateway.h"

/* Flags of gw_dns_resolver_new. */
#define GW_DNS_TCP       (1u << 0) /* TCP only (reads and UPDATEs) */
#define GW_DNS_RECURSE   (1u << 1) /* a resolver: ask with RD set */
#define GW_DNS_DNSSEC    (1u << 2) /* set DO to see RRSIGs */
#define GW_DNS_ONE_TRY   (1u << 3) /* never resend (UPDATEs) */

/* A resolver for one server.  Free with ldns_resolver_deep_free. */
int gw_dns_resolver_new(const struct gw_op *op, const char *addr,
                        uint16_t port, unsigned flags, ldns_resolver **res);

/* The resolver for the SOA walk and the NS/address lookups: [dns] resolver
 * or /etc/resolv.conf.  *where describes it for messages. */
int gw_dns_lookup_resolver(const struct gw_op *op, ldns_resolver **res,
                           char *where, size_t where_len);

/* One query (RD as the resolver says).  MAILMODE_OK when a reply came, of
 * any rcode; otherwise why says what happened ("no answer within 5 s"). */
int gw_dns_ask(ldns_resolver *res, const char *name, ldns_rr_type type,
               ldns_pkt **answer, char *why, size_t why_len);

/* Why an ldns send failed, in words. */
void gw_dns_status_text(ldns_status status, const ldns_resolver *res,
                        char *buf, size_t len);

/* "NOERROR", "NXRRSET", ... */
const char *gw_dns_rcode_name(ldns_pkt_rcode rcode);

/* True when the answer is NOERROR with AA; otherwise why says what it was. */
bool gw_dns_is_authoritative(const ldns_pkt *answer, char *why, size_t why_len);

/* The MX records for `name` in the answer section (other owners ignored). */
int gw_dns_mx_from_answer(const ldns_pkt *answer, const char *name,
                          struct gw_mx_set *set, char *why, size_t why_len);

/* Whether the answer section holds an RRSIG covering `type` at `name`. */
bool gw_dns_has_rrsig(const ldns_pkt *answer, const char *name,
                      ldns_rr_type type);

/* The RR of `type` owned by `name` in the answer section, or NULL. */
ldns_rr *gw_dns_answer_rr(const ldns_pkt *answer, const char *name,
                          ldns_rr_type type);

/* An rdf domain name as a normalised string ("ns1.example.test."). */
int gw_dns_rdf_name(const ldns_rdf *rdf, char *out, size_t out_len);

#endif /* GATEWAY_DNS_H */
