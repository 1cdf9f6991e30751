/* libFuzzer target: Route 53's XML answers as route53.c reads them
 * (xml.c): the root, error codes and messages, and every walk it makes
 * (hosted zones, record sets and their values, the change). */
#include "xml.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The nested walk of a list: each `outer` element, and in it each
 * `inner` element's text `field`. */
static void walk(const struct gw_xml *doc, const char *outer, const char *inner,
                 const char *field)
{
	struct gw_xml it = *doc, el, it2, el2;
	char text[256];

	while (gw_xml_next(&it, outer, &el)) {
		gw_xml_text(&el, "Name", text, sizeof(text));
		gw_xml_text(&el, "Id", text, sizeof(text));
		gw_xml_text(&el, "PrivateZone", text, sizeof(text));
		gw_xml_text(&el, "TTL", text, sizeof(text));
		it2 = el;
		while (gw_xml_next(&it2, inner, &el2))
			gw_xml_text(&el2, field, text, sizeof(text));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), small[8], buf[1024];
	struct gw_xml doc;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';          /* the host's answers are NUL-terminated */
	doc = gw_xml_doc(text);
	gw_xml_root(&doc, small, sizeof(small));
	gw_xml_root(&doc, buf, sizeof(buf));
	gw_xml_text(&doc, "Code", buf, sizeof(buf));
	gw_xml_text(&doc, "Message", buf, sizeof(buf));
	gw_xml_text(&doc, "IsTruncated", small, sizeof(small));
	gw_xml_text(&doc, "NextDNSName", buf, sizeof(buf));
	gw_xml_text(&doc, "Status", small, sizeof(small));
	walk(&doc, "HostedZone", "Config", "PrivateZone");
	walk(&doc, "ResourceRecordSet", "ResourceRecord", "Value");
	free(text);
	return 0;
}
