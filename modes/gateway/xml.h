/*
 * The little XML Route 53 speaks (route53.c): find elements by name and
 * read their text.  Not a general parser, and it need not be: the answers
 * are flat documents of known elements, none nested in one of its own
 * name, with no CDATA, comments or namespace prefixes.  Anything else
 * reads as absent or malformed, never past the end of the span: every
 * function looks only at [p, end), so a hostile or cut-short body can do
 * no harm (tests/fuzz/fuzz_xml.c).
 */
#ifndef GATEWAY_XML_H
#define GATEWAY_XML_H

#include <stdbool.h>
#include <stddef.h>

/* A piece of a document: the bytes [p, end). */
struct gw_xml {
	const char *p, *end;
};

/* The whole of a NUL-terminated text (NULL: empty). */
struct gw_xml gw_xml_doc(const char *text);

/* The next element named `tag` (at any depth) from it->p on: its content
 * in *out, and it->p moved past its end tag, so that repeated calls walk
 * the elements in order.  false when there is none (or it is not
 * closed). */
bool gw_xml_next(struct gw_xml *it, const char *tag, struct gw_xml *out);

/* The text of the first element `tag` in `in`, entities decoded and white
 * space trimmed, into buf.  false when absent, when it holds markup, or
 * when it does not fit. */
bool gw_xml_text(const struct gw_xml *in, const char *tag, char *buf,
                 size_t len);

/* The name of the document's root element into buf ("ErrorResponse");
 * false when there is none. */
bool gw_xml_root(const struct gw_xml *doc, char *buf, size_t len);

#endif /* GATEWAY_XML_H */
