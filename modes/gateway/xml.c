/*
 * The little XML Route 53 speaks (see xml.h).
 */
#include "xml.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

struct gw_xml gw_xml_doc(const char *text)
{
	struct gw_xml doc = { text ? text : "", NULL };

	doc.end = doc.p + strlen(doc.p);
	return doc;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The first n bytes at s in [p, end), or NULL. */
static const char *find(const char *p, const char *end, const char *s, size_t n)
{
	for (; p && (size_t)(end - p) >= n; p++) {
		p = memchr(p, s[0], (size_t)(end - p));
		if (!p || (size_t)(end - p) < n)
			return NULL;
		if (memcmp(p, s, n) == 0)
			return p;
	}
	return NULL;
}

/* The '>' ending the tag that starts at p, skipping quoted attribute
 * values; NULL when the tag is not closed. */
static const char *tag_end(const char *p, const char *end)
{
	char quote = 0;

	for (; p < end; p++) {
		if (quote)
			quote = *p == quote ? 0 : quote;
		else if (*p == '"' || *p == '\'')
			quote = *p;
		else if (*p == '>')
			return p;
	}
	return NULL;
}

/* After "<tag": the name ends there (not a longer name). */
static bool name_ends(const char *p, const char *end)
{
	return p < end && (*p == '>' || *p == '/' || is_space(*p));
}

bool gw_xml_next(struct gw_xml *it, const char *tag, struct gw_xml *out)
{
	size_t n = strlen(tag);
	const char *p = it->p, *gt, *close;

	while ((p = find(p, it->end, "<", 1)) != NULL) {
		if ((size_t)(it->end - p) > n && memcmp(p + 1, tag, n) == 0 &&
		    name_ends(p + 1 + n, it->end))
			break;
		p++;
	}
	if (!p || !(gt = tag_end(p + 1 + n, it->end)))
		return false;
	if (gt[-1] == '/') {                        /* <tag/> */
		out->p = out->end = gt;
		it->p = gt + 1;
		return true;
	}
	for (close = gt + 1;; close += 2) {
		close = find(close, it->end, "</", 2);
		if (!close)
			return false;
		if ((size_t)(it->end - close) > n + 2 &&
		    memcmp(close + 2, tag, n) == 0) {
			const char *q = close + 2 + n;

			while (q < it->end && is_space(*q))
				q++;
			if (q < it->end && *q == '>') {
				out->p = gt + 1;
				out->end = close;
				it->p = q + 1;
				return true;
			}
		}
	}
}

/* One entity at p (after the '&'): its character in *c, its length. */
static size_t entity(const char *p, const char *end, char *c)
{
	static const struct { const char *name; char c; } named[] = {
		{ "amp;", '&' }, { "lt;", '<' }, { "gt;", '>' },
		{ "quot;", '"' }, { "apos;", '\'' },
	};
	const char *semi = memchr(p, ';', (size_t)(end - p) < 12 ? (size_t)(end - p) : 12);
	size_t i;
	long v;
	char *stop;

	if (!semi)
		return 0;
	for (i = 0; i < sizeof(named) / sizeof(named[0]); i++)
		if ((size_t)(semi + 1 - p) == strlen(named[i].name) &&
		    memcmp(p, named[i].name, strlen(named[i].name)) == 0) {
			*c = named[i].c;
			return strlen(named[i].name);
		}
	if (*p != '#' || semi - p < 2 ||
	    !isxdigit((unsigned char)p[p[1] == 'x' ? 2 : 1]))
		return 0;
	/* Only ASCII by number: nothing Route 53 sends mailmode needs more. */
	v = p[1] == 'x' ? strtol(p + 2, &stop, 16) : strtol(p + 1, &stop, 10);
	if (stop != semi || v < 0x20 || v > 0x7e)
		return 0;
	*c = (char)v;
	return (size_t)(semi + 1 - p);
}

bool gw_xml_text(const struct gw_xml *in, const char *tag, char *buf,
                 size_t len)
{
	struct gw_xml it = *in, el;
	const char *p;
	size_t used = 0, n;
	char c;

	if (len == 0 || !gw_xml_next(&it, tag, &el))
		return false;
	while (el.p < el.end && is_space(*el.p))
		el.p++;
	while (el.end > el.p && is_space(el.end[-1]))
		el.end--;
	for (p = el.p; p < el.end; p += n) {
		n = 1;
		c = *p;
		if (c == '<' || c == '\0')
			return false;
		if (c == '&' && (n = entity(p + 1, el.end, &c) + 1) == 1)
			return false;
		if (used + 1 >= len)
			return false;
		buf[used++] = c;
	}
	buf[used] = '\0';
	return true;
}

bool gw_xml_root(const struct gw_xml *doc, char *buf, size_t len)
{
	const char *p = doc->p;
	size_t n;

	/* Past the declaration and any processing instruction. */
	while ((p = find(p, doc->end, "<", 1)) != NULL && p + 1 < doc->end &&
	       (p[1] == '?' || p[1] == '!'))
		p++;
	if (!p || p + 1 >= doc->end)
		return false;
	p++;
	for (n = 0; p + n < doc->end && !name_ends(p + n, doc->end); n++)
		;
	if (n == 0 || n >= len || p + n >= doc->end)
		return false;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return true;
}
