/*
 * core/log.h - the library's level-tagged log, after pgbouncer's slog_*.
 *
 * The library never prints: a message goes to the one sink the program
 * installed with log_set_sink, and nowhere while none is (the default).
 * Each message has a level and an optional context, a short name of what
 * it is about (drivers pass the connection: "main pg#12345"), which the
 * sink puts in front of the text.  Messages above the sink's level are
 * dropped before they are formatted; log_enabled lets a caller skip work
 * whose only use is a message nobody would see.
 *
 * The sink is set once, before any other thread starts, and may be called
 * from any thread (SQLite statements run on libuv's thread pool): it must
 * write each message whole.
 */
#ifndef DBPHASE_CORE_LOG_H
#define DBPHASE_CORE_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARNING,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,	/* every statement sent, each lock wait and retry */
	LOG_LEVEL_TRACE,	/* what debug leaves out: each poll of a lock wait */
};

/* One message: context may be NULL; message is one line, without '\n'. */
typedef void log_sink_fn(void *arg, enum log_level level, const char *context,
			 const char *message);

/* Send messages up to max_level (inclusive) to sink; NULL: nowhere. */
void log_set_sink(log_sink_fn *sink, void *arg, enum log_level max_level);

/* Whether a message at level would reach a sink. */
bool log_enabled(enum log_level level);

/* "error", "warning", "info", "debug", "trace". */
const char *log_level_name(enum log_level level);

void log_msg(enum log_level level, const char *context, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void log_vmsg(enum log_level level, const char *context, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

#define log_error(ctx, ...) log_msg(LOG_LEVEL_ERROR, (ctx), __VA_ARGS__)
#define log_warning(ctx, ...) log_msg(LOG_LEVEL_WARNING, (ctx), __VA_ARGS__)
#define log_info(ctx, ...) log_msg(LOG_LEVEL_INFO, (ctx), __VA_ARGS__)
#define log_debug(ctx, ...) log_msg(LOG_LEVEL_DEBUG, (ctx), __VA_ARGS__)
#define log_trace(ctx, ...) log_msg(LOG_LEVEL_TRACE, (ctx), __VA_ARGS__)

#endif
