/*
 * core/excerpt.h - a bounded excerpt of an outside value, for messages.
 *
 * Names, keys and values from migration files, config files and the
 * command line may be any length; a message quotes at most EXCERPT_MAX
 * bytes of one, cut on a UTF-8 character boundary and followed by "..."
 * when cut, so that a 50 MB name makes a short error, not a 50 MB one.
 * Use it wherever a message echoes such a value:
 *
 *	err_setf(err, code, "unknown key '" EXCERPT_FMT "'", EXCERPT(key));
 *
 * EXCERPT(s) evaluates s three times: pass a plain pointer, never NULL.
 */
#ifndef DBPHASE_CORE_EXCERPT_H
#define DBPHASE_CORE_EXCERPT_H

#include <stddef.h>

#define EXCERPT_MAX 80

#define EXCERPT_FMT "%.*s%s"
#define EXCERPT(s) excerpt_len(s), (s), excerpt_ellipsis(s)

/* How many bytes of s to print: all of it, or at most EXCERPT_MAX. */
int excerpt_len(const char *s);

/* "..." when s is longer than its excerpt, else "". */
const char *excerpt_ellipsis(const char *s);

/* The excerpt as an allocated string (with its "..."); caller frees. */
char *excerpt_dup(const char *s);

struct strbuf;

/*
 * Append text to sb on one line, for a message or a log line (a statement,
 * a server's message): each run of blanks and line breaks becomes one
 * space (none at either end), other control bytes show as '?', and text
 * longer than max bytes is cut, never inside a UTF-8 character, with "..."
 * appended.
 */
void excerpt_add_oneline(struct strbuf *sb, const char *text, size_t max);

#endif
