/*
 * tests/unit/test-dialect.c - core/dialect: each backend's quoting of names
 * and literals, and the rewriting of $n placeholders, which must leave a
 * $n inside a string, a quoted name or a comment alone.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "core/dialect.h"
#include "core/strbuf.h"
#include "testlib.h"

#define PG DB_BACKEND_POSTGRESQL
#define MY DB_BACKEND_MYSQL
#define SL DB_BACKEND_SQLITE

static void
expect_ident(enum db_backend b, const char *name, const char *want)
{
	struct strbuf sb = STRBUF_INIT;

	dialect_quote_ident(b, &sb, name);
	cr_expect_str_eq(sb.buf, want, "%s: ident [%s] -> [%s], want [%s]",
			 db_backend_name(b), name, sb.buf, want);
	strbuf_release(&sb);
}

static void
expect_literal(enum db_backend b, const char *text, const char *want)
{
	struct strbuf sb = STRBUF_INIT;

	dialect_quote_literal(b, &sb, text);
	cr_expect_str_eq(sb.buf, want, "%s: literal [%s] -> [%s], want [%s]",
			 db_backend_name(b), text, sb.buf, want);
	strbuf_release(&sb);
}

/* Rewrite sql for b; want the text and (MariaDB) the order as "1,2,...". */
static void
expect_rewrite(enum db_backend b, const char *sql, const char *want, const char *want_order)
{
	struct strbuf sb = STRBUF_INIT, ord = STRBUF_INIT;
	int *order = NULL;
	size_t n = 0, i;

	dialect_rewrite_params(b, sql, &sb, &order, &n);
	for (i = 0; i < n; i++)
		strbuf_addf(&ord, "%s%d", i ? "," : "", order[i]);
	cr_expect_str_eq(sb.buf, want, "%s: [%s] -> [%s], want [%s]", db_backend_name(b), sql,
			 sb.buf, want);
	cr_expect_str_eq(ord.buf, want_order ? want_order : "", "%s: [%s] order [%s], want [%s]",
			 db_backend_name(b), sql, ord.buf, want_order ? want_order : "");
	free(order);
	strbuf_release(&sb);
	strbuf_release(&ord);
}

Test(dialect, quote_ident)
{
	expect_ident(PG, "users", "\"users\"");
	expect_ident(SL, "users", "\"users\"");
	expect_ident(MY, "users", "`users`");
	/* The dialect's own quote is doubled; the others are plain characters. */
	expect_ident(PG, "we\"ird`", "\"we\"\"ird`\"");
	expect_ident(SL, "we\"ird`", "\"we\"\"ird`\"");
	expect_ident(MY, "we`ird\"", "`we``ird\"`");
	/* A backslash in a quoted name is just a character, even on MariaDB. */
	expect_ident(MY, "a\\b", "`a\\b`");
	expect_ident(PG, "a\\b", "\"a\\b\"");
	expect_ident(PG, "", "\"\"");
}

Test(dialect, quote_literal)
{
	expect_literal(PG, "it's", "'it''s'");
	expect_literal(SL, "it's", "'it''s'");
	expect_literal(MY, "it's", "'it''s'");
	/* MariaDB reads backslash escapes in a literal: a backslash is doubled there only. */
	expect_literal(MY, "a\\'b\\", "'a\\\\''b\\\\'");
	expect_literal(PG, "a\\'b\\", "'a\\''b\\'");
	expect_literal(SL, "a\\'b\\", "'a\\''b\\'");
	/* UTF-8 passes through untouched. */
	expect_literal(MY, "caf\xc3\xa9 \"x\"", "'caf\xc3\xa9 \"x\"'");
	expect_literal(PG, "", "''");
}

Test(dialect, rewrite_numbers_each_dialect)
{
	const char *sql = "UPDATE t SET a = $1, b = $2 WHERE k > $12 AND k <= $3 AND c=$1";

	expect_rewrite(MY, sql, "UPDATE t SET a = ?, b = ? WHERE k > ? AND k <= ? AND c=?",
		       "1,2,12,3,1");
	expect_rewrite(SL, sql, "UPDATE t SET a = ?1, b = ?2 WHERE k > ?12 AND k <= ?3 AND c=?1",
		       NULL);
	expect_rewrite(PG, sql, sql, NULL);
	expect_rewrite(MY, "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
		       "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", "1,2,3,4,5,6,7,8,9,10,11,12");
	expect_rewrite(SL, "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
		       "VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)", NULL);
	expect_rewrite(MY, "SELECT 1", "SELECT 1", NULL);
	expect_rewrite(SL, "", "", NULL);
}

Test(dialect, rewrite_leaves_strings_comments_and_names)
{
	/* In a string literal, with the dialect's escapes. */
	expect_rewrite(MY, "SELECT '$1', 'it''s $2', 'a\\' $3', $4",
		       "SELECT '$1', 'it''s $2', 'a\\' $3', ?", "4");
	expect_rewrite(MY, "SELECT \"$1\", $2", "SELECT \"$1\", ?", "2");
	expect_rewrite(SL, "SELECT '$1', 'it''s $2', $3", "SELECT '$1', 'it''s $2', ?3", NULL);
	/* SQLite has no backslash escape: 'a\' ends the literal before $1. */
	expect_rewrite(SL, "SELECT 'a\\', $1", "SELECT 'a\\', ?1", NULL);
	/* In comments. */
	expect_rewrite(MY, "SELECT $1 -- $2\n, /* $3 */ $4 # $5\n",
		       "SELECT ? -- $2\n, /* $3 */ ? # $5\n", "1,4");
	expect_rewrite(SL, "SELECT $1 -- $2\n, /* $3 */ $4", "SELECT ?1 -- $2\n, /* $3 */ ?4", NULL);
	/* In quoted identifiers. */
	expect_rewrite(MY, "SELECT `$1`, `a``$2`, $3", "SELECT `$1`, `a``$2`, ?", "3");
	expect_rewrite(SL, "SELECT \"$1\", [$2], $3", "SELECT \"$1\", [$2], ?3", NULL);
	/* Part of a name. */
	expect_rewrite(MY, "SELECT a$1, $1", "SELECT a$1, ?", "1");
	expect_rewrite(SL, "SELECT a$1, $1", "SELECT a$1, ?1", NULL);
	/* An unterminated string goes through as it is, for the server to refuse. */
	expect_rewrite(MY, "SELECT $1, '$2", "SELECT ?, '$2", "1");
}

Test(dialect, session_statements)
{
	char *s;

	s = dialect_lock_timeout_sql(MY, 1500);
	cr_expect_str_eq(s, "SET SESSION lock_wait_timeout = 2, "
			    "SESSION innodb_lock_wait_timeout = 2");
	free(s);
	s = dialect_lock_timeout_sql(PG, 0);
	cr_expect_str_eq(s, "SET lock_timeout = '0ms'");
	free(s);
	s = dialect_lock_timeout_sql(SL, 250);
	cr_expect_str_eq(s, "PRAGMA busy_timeout = 250");
	free(s);
	cr_expect_null(dialect_session_sql(PG)[0]);
	cr_expect_null(dialect_session_sql(SL)[0]);
	cr_expect_str_eq(dialect_session_sql(MY)[0], "SET NAMES utf8mb4");
	cr_expect_str_eq(dialect_session_id_sql(MY), "CONNECTION_ID()");
	cr_expect_str_eq(dialect_now_epoch_sql(MY), "UNIX_TIMESTAMP()");
}
