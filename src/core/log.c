/*
 * core/log.c - the level-tagged log: one sink, installed by the program.
 */
#include "core/log.h"

#include <stddef.h>

#include "core/strbuf.h"

static log_sink_fn *log_sink;
static void *log_sink_arg;
static enum log_level log_max_level;

void
log_set_sink(log_sink_fn *sink, void *arg, enum log_level max_level)
{
	log_sink = sink;
	log_sink_arg = arg;
	log_max_level = max_level;
}

bool
log_enabled(enum log_level level)
{
	return log_sink != NULL && level <= log_max_level;
}

const char *
log_level_name(enum log_level level)
{
	static const char *const names[] = { "error", "warning", "info", "debug", "trace" };

	if ((size_t)level < sizeof(names) / sizeof(names[0]))
		return names[level];
	return "log";
}

void
log_vmsg(enum log_level level, const char *context, const char *fmt, va_list ap)
{
	struct strbuf sb = STRBUF_INIT;
	unsigned char *p;

	if (!log_enabled(level))
		return;
	strbuf_vaddf(&sb, fmt, ap);
	/* One message, one line, whatever an error message held. */
	for (p = (unsigned char *)sb.buf; *p; p++)
		if (*p < 0x20)
			*p = ' ';
	log_sink(log_sink_arg, level, context, sb.buf);
	strbuf_release(&sb);
}

void
log_msg(enum log_level level, const char *context, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, context, fmt, ap);
	va_end(ap);
}
