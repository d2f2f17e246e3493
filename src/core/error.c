/*
 * core/error.c - error texts and the context-carrying error object.
 */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"

struct err_entry {
	int code;
	const char *name;
	const char *text;
};

static const struct err_entry err_table[] = {
#define DBPHASE_ERR_ROW(name, text) { DBPHASE_E##name, #name, text },
	DBPHASE_ERR_MAP(DBPHASE_ERR_ROW)
#undef DBPHASE_ERR_ROW
};

static const struct err_entry *
err_lookup(int code)
{
	size_t i;

	for (i = 0; i < sizeof(err_table) / sizeof(err_table[0]); i++)
		if (err_table[i].code == code)
			return &err_table[i];
	return NULL;
}

const char *
dbphase_strerror(int code)
{
	const struct err_entry *e;

	if (code == DBPHASE_OK)
		return "success";
	e = err_lookup(code);
	return e ? e->text : "unknown error";
}

const char *
dbphase_err_name(int code)
{
	const struct err_entry *e;

	if (code == DBPHASE_OK)
		return "OK";
	e = err_lookup(code);
	return e ? e->name : "UNKNOWN";
}

int
err_setf(struct dbphase_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	if (err == NULL)
		return code;
	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	free(err->message);
	err->message = msg;
	err->code = code;
	err->sqlstate[0] = '\0';
	err->server_code = 0;
	err->retryable = false;
	return code;
}

int
err_prefixf(struct dbphase_error *err, const char *fmt, ...)
{
	va_list ap;
	char *prefix, *msg;

	if (err == NULL)
		return DBPHASE_EERROR;
	va_start(ap, fmt);
	prefix = xvasprintf(fmt, ap);
	va_end(ap);
	msg = xasprintf("%s: %s", prefix,
			err->message ? err->message : dbphase_strerror(err->code));
	free(prefix);
	free(err->message);
	err->message = msg;
	if (err->code == DBPHASE_OK)
		err->code = DBPHASE_EERROR;
	return err->code;
}

void
err_move(struct dbphase_error *dst, struct dbphase_error *src)
{
	if (dst == src)
		return;
	err_release(dst);
	*dst = *src;
	src->message = NULL;
	err_release(src);
}

void
err_release(struct dbphase_error *err)
{
	if (err == NULL)
		return;
	free(err->message);
	err->message = NULL;
	err->code = DBPHASE_OK;
	err->sqlstate[0] = '\0';
	err->server_code = 0;
	err->retryable = false;
}
