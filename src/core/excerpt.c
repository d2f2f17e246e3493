/*
 * core/excerpt.c - bounded excerpts of outside values for messages, and
 * text (SQL, a server's message) on one line for a message or a log line.
 */
#include "core/excerpt.h"

#include <string.h>

#include "core/strbuf.h"
#include "core/xmalloc.h"

int
excerpt_len(const char *s)
{
	size_t n = strnlen(s, EXCERPT_MAX + 1);

	if (n <= EXCERPT_MAX)
		return (int)n;
	/* Back up over continuation bytes so that no character is cut in two. */
	n = EXCERPT_MAX;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return (int)n;
}

const char *
excerpt_ellipsis(const char *s)
{
	return strnlen(s, EXCERPT_MAX + 1) > EXCERPT_MAX ? "..." : "";
}

char *
excerpt_dup(const char *s)
{
	return xasprintf(EXCERPT_FMT, EXCERPT(s));
}

static int
excerpt_is_blank(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

void
excerpt_add_oneline(struct strbuf *sb, const char *text, size_t max)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t used = 0, len;

	while (excerpt_is_blank(*p))
		p++;
	while (*p) {
		if (excerpt_is_blank(*p)) {
			while (excerpt_is_blank(*p))
				p++;
			if (*p == '\0')
				break;
			if (used + 1 > max)
				goto cut;
			strbuf_addch(sb, ' ');
			used++;
			continue;
		}
		/* A UTF-8 character is added whole or not at all. */
		len = 1;
		if (*p >= 0xc0)
			while (len < 4 && (p[len] & 0xc0) == 0x80)
				len++;
		if (used + len > max)
			goto cut;
		if (*p < 0x20 || *p == 0x7f)
			strbuf_addch(sb, '?');
		else
			strbuf_add(sb, p, len);
		used += len;
		p += len;
	}
	return;
cut:
	strbuf_addstr(sb, "...");
}
