/* libFuzzer target: DNS answers (wire format) as the gateway reads them:
 * authority, the MX set, RRSIGs, SOA and NS records of the answer. */
#include "dns.h"
#include "gateway.h"

#include <ldns/ldns.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ldns_pkt *pkt = NULL;
	ldns_rr_list *answer;
	struct gw_mx_set set;
	char name[GW_NAME_MAX] = "example.test.", why[512], text[2048];

	if (ldns_wire2pkt(&pkt, data, size) != LDNS_STATUS_OK)
		return 0;
	answer = ldns_pkt_answer(pkt);
	/* The first answer's owner, so that the lookups below can match. */
	if (answer && ldns_rr_list_rr_count(answer) > 0)
		gw_dns_rdf_name(ldns_rr_owner(ldns_rr_list_rr(answer, 0)), name, sizeof(name));
	gw_dns_is_authoritative(pkt, why, sizeof(why));
	if (gw_dns_mx_from_answer(pkt, name, &set, why, sizeof(why)) == MAILMODE_OK)
		gw_mx_set_format(&set, true, text, sizeof(text));
	gw_dns_has_rrsig(pkt, name, LDNS_RR_TYPE_MX);
	gw_dns_answer_rr(pkt, name, LDNS_RR_TYPE_SOA);
	gw_dns_answer_rr(pkt, name, LDNS_RR_TYPE_NS);
	gw_dns_rcode_name(ldns_pkt_get_rcode(pkt));
	ldns_pkt_free(pkt);
	return 0;
}
