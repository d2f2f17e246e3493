/*
 * core/excerpt.c - bounded excerpts of outside values for messages.
 */
#include "core/excerpt.h"

#include <string.h>

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
