/*
 * core/xmalloc.h - allocation that cannot fail.
 *
 * Out of memory is the one condition dbphase does not carry up as an error:
 * these wrappers print a message and abort, as tmux, git and pg_repack do.
 * Every other failure is returned.
 */
#ifndef DBPHASE_CORE_XMALLOC_H
#define DBPHASE_CORE_XMALLOC_H

#include <stdarg.h>
#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *ptr, size_t size);
/* Grow an array of n elements of size bytes to hold at least want elements. */
void *xgrow(void *ptr, size_t size, size_t want, size_t *alloc);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* strdup that passes NULL through. */
char *xstrdup_or_null(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

#define XNEW(type) ((type *)xcalloc(1, sizeof(type)))

/* Make room for element n of a growable array: XGROW(arr, n, alloc); arr[n++] = v; */
#define XGROW(arr, n, alloc) \
	((arr) = xgrow((arr), sizeof(*(arr)), (n) + 1, &(alloc)))

#endif
