/*
 * tests/unit/test-log.c - the library's log: nothing without a sink,
 * levels, context, one line per message; and the one-line excerpt that
 * its statement lines (and error messages) use (core/excerpt.h).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "core/excerpt.h"
#include "core/log.h"
#include "core/strbuf.h"
#include "testlib.h"

/* What the test sink received: "level|context|message\n" per message. */
static struct strbuf got = STRBUF_INIT;

static void
capture(void *arg, enum log_level level, const char *context, const char *message)
{
	strbuf_addf(&got, "%s|%s|%s\n", log_level_name(level), context ? context : "-", message);
	*(int *)arg += 1;
}

static void
reset(void)
{
	log_set_sink(NULL, NULL, LOG_LEVEL_TRACE);
	strbuf_release(&got);
}

Test(log, nothing_is_written_without_a_sink, .fini = reset)
{
	log_set_sink(NULL, NULL, LOG_LEVEL_TRACE);
	cr_assert_not(log_enabled(LOG_LEVEL_ERROR));
	cr_assert_not(log_enabled(LOG_LEVEL_TRACE));
	log_error("ctx", "dropped %d", 1);
	cr_assert_eq(got.len, 0);
}

Test(log, levels_above_the_sinks_are_dropped_before_formatting, .fini = reset)
{
	int calls = 0;

	log_set_sink(capture, &calls, LOG_LEVEL_DEBUG);
	cr_assert(log_enabled(LOG_LEVEL_ERROR));
	cr_assert(log_enabled(LOG_LEVEL_DEBUG));
	cr_assert_not(log_enabled(LOG_LEVEL_TRACE));
	log_debug("main pg#7", "%.1f ms: %s", 3.25, "SELECT 1");
	log_trace("main pg#7", "poll %d", 2);
	log_warning(NULL, "no context");
	log_msg(LOG_LEVEL_INFO, "c", "info");
	cr_assert_eq(calls, 3);
	cr_assert_str_eq(got.buf, "debug|main pg#7|3.2 ms: SELECT 1\n"
				  "warning|-|no context\n"
				  "info|c|info\n");
	/* Raised: trace goes through too. */
	log_set_sink(capture, &calls, LOG_LEVEL_TRACE);
	log_trace("w", "poll");
	cr_assert_eq(calls, 4);
	log_set_sink(capture, &calls, LOG_LEVEL_ERROR);
	log_warning("w", "dropped");
	cr_assert_eq(calls, 4);
}

Test(log, every_message_is_one_line, .fini = reset)
{
	int calls = 0;

	log_set_sink(capture, &calls, LOG_LEVEL_DEBUG);
	log_debug("x", "first\nsecond\r\tthird");
	cr_assert_str_eq(got.buf, "debug|x|first second  third\n");
}

Test(log, level_names)
{
	cr_assert_str_eq(log_level_name(LOG_LEVEL_ERROR), "error");
	cr_assert_str_eq(log_level_name(LOG_LEVEL_WARNING), "warning");
	cr_assert_str_eq(log_level_name(LOG_LEVEL_INFO), "info");
	cr_assert_str_eq(log_level_name(LOG_LEVEL_DEBUG), "debug");
	cr_assert_str_eq(log_level_name(LOG_LEVEL_TRACE), "trace");
}

static void
expect_excerpt(const char *text, size_t max, const char *want)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_addstr(&sb, "<");
	excerpt_add_oneline(&sb, text, max);
	cr_expect_str_eq(sb.buf, want, "excerpt of \"%s\" at %zu: %s", text, max, sb.buf);
	strbuf_release(&sb);
}

Test(log, excerpt_is_one_line_and_cut)
{
	expect_excerpt("SELECT 1", 200, "<SELECT 1");
	expect_excerpt("  ALTER TABLE t\n\tADD COLUMN c int;\r\n  ", 200,
		       "<ALTER TABLE t ADD COLUMN c int;");
	expect_excerpt("", 10, "<");
	expect_excerpt(" \n\t ", 10, "<");
	/* Exactly max fits; one more is cut. */
	expect_excerpt("abcdef", 6, "<abcdef");
	expect_excerpt("abcdefg", 6, "<abcdef...");
	expect_excerpt("abc   def", 4, "<abc ...");
	expect_excerpt("abc   ", 3, "<abc");
	/* Other control bytes are shown, not passed on. */
	expect_excerpt("a\x01" "b\x7f" "c", 20, "<a?b?c");
	/* A UTF-8 character is never split: "é" is two bytes, "€" three. */
	expect_excerpt("caf\xc3\xa9", 4, "<caf...");
	expect_excerpt("caf\xc3\xa9", 5, "<caf\xc3\xa9");
	expect_excerpt("x\xe2\x82\xac", 3, "<x...");
	expect_excerpt("x\xe2\x82\xacy", 4, "<x\xe2\x82\xac...");
}
