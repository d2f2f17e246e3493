/*
 * tests/unit/test-sqllex.c - the SQL lexer: each dialect's strings, quoted
 * names and comments, and the roles of the names in an expression.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "core/sqllex.h"
#include "core/strbuf.h"
#include "testlib.h"

#define PG DB_BACKEND_POSTGRESQL
#define MY DB_BACKEND_MYSQL
#define SL DB_BACKEND_SQLITE

/* "KIND:text|KIND:text|..." for the significant tokens of sql. */
static char *
tokens(enum db_backend d, const char *sql)
{
	static const char *const names[] = { "end", "space", "comment", "word", "quoted", "string",
					     "number", "param", "op", "punct", "error" };
	struct strbuf sb = STRBUF_INIT;
	struct sqllex lx;
	struct sqllex_token t;

	sqllex_init(&lx, d, sql);
	while (sqllex_next_significant(&lx, &t) != SQLLEX_END) {
		strbuf_addf(&sb, "%s%s:%.*s", sb.len ? "|" : "", names[t.kind], (int)t.len,
			    sql + t.pos);
		if (t.kind == SQLLEX_ERROR)
			break;
	}
	return strbuf_detach(&sb);
}

static void
expect_tokens(enum db_backend d, const char *sql, const char *want)
{
	char *got = tokens(d, sql);

	cr_expect_str_eq(got, want, "%s: got %s", sql, got);
	free(got);
}

Test(sqllex, plain_tokens_and_positions)
{
	struct sqllex lx;
	struct sqllex_token t;

	expect_tokens(SL, "a + 12.5e3, f(x)", "word:a|op:+|number:12.5e3|punct:,|word:f|punct:(|"
		      "word:x|punct:)");
	sqllex_init(&lx, PG, "a\n  bc");
	cr_assert_eq(sqllex_next_significant(&lx, &t), SQLLEX_WORD);
	cr_assert_eq(sqllex_next_significant(&lx, &t), SQLLEX_WORD);
	cr_assert_eq(t.pos, 4);
	cr_assert_eq(t.len, 2);
	cr_assert_eq(t.line, 2);
	cr_assert_eq(t.column, 3);
	cr_assert_eq(sqllex_next(&lx, &t), SQLLEX_END);
}

Test(sqllex, postgresql_quoting)
{
	expect_tokens(PG, "'it''s' || E'a\\'b' || $$x'y$$ || $f$ $$ $f$ || $1",
		      "string:'it''s'|op:|||string:E'a\\'b'|op:|||string:$$x'y$$|op:|||"
		      "string:$f$ $$ $f$|op:|||param:$1");
	/* Standard strings: a backslash is a character, the quote ends the string. */
	expect_tokens(PG, "'a\\' x", "string:'a\\'|word:x");
	expect_tokens(PG, "\"a\"\"b\" U&\"c\" U&'d'", "quoted:\"a\"\"b\"|quoted:U&\"c\"|string:U&'d'");
	expect_tokens(PG, "x::date::\"T\"", "word:x|punct:::|word:date|punct:::|quoted:\"T\"");
	expect_tokens(PG, "/* a /* nested */ still */ y", "word:y");
	expect_tokens(PG, "a -- note\n+ b", "word:a|op:+|word:b");
	expect_tokens(PG, "j ? 'k' # 1", "word:j|op:?|string:'k'|op:#|number:1");
	expect_tokens(PG, "$dbphase$ body $dbphase$", "string:$dbphase$ body $dbphase$");
	expect_tokens(PG, "'open", "error:'open");
	expect_tokens(PG, "$t$ never closed", "error:$t$ never closed");
	expect_tokens(PG, "/* open", "error:/* open");
}

Test(sqllex, mariadb_quoting)
{
	expect_tokens(MY, "'a\\'b' \"c\\\"d\" `e``f`", "string:'a\\'b'|string:\"c\\\"d\"|quoted:`e``f`");
	expect_tokens(MY, "a # comment\n- b", "word:a|op:-|word:b");
	/* "--" is a comment only before a space: a--1 is a minus minus one. */
	expect_tokens(MY, "a--1", "word:a|op:--|number:1");
	expect_tokens(MY, "a -- c\n", "word:a");
	expect_tokens(MY, "_utf8mb4'x' X'0A' @v @@sql_mode ?", "word:_utf8mb4|string:'x'|string:X'0A'|"
		      "param:@v|param:@@sql_mode|param:?");
	expect_tokens(MY, "$x 1st", "word:$x|word:1st");
	expect_tokens(MY, "'a\\", "error:'a\\");
}

Test(sqllex, sqlite_quoting)
{
	expect_tokens(SL, "\"a\" `b` [c d] 'e''f'", "quoted:\"a\"|quoted:`b`|quoted:[c d]|string:'e''f'");
	expect_tokens(SL, "?1 :n $v @w", "param:?1|param::n|param:$v|param:@w");
	expect_tokens(SL, "'a\\' x", "string:'a\\'|word:x");
	expect_tokens(SL, "[open", "error:[open");
}

Test(sqllex, ident_unquotes)
{
	struct sqllex lx;
	struct sqllex_token t;
	char *s;

	sqllex_init(&lx, PG, "\"a\"\"b\"");
	sqllex_next(&lx, &t);
	s = sqllex_ident(&lx, &t);
	cr_assert_str_eq(s, "a\"b");
	free(s);
	sqllex_init(&lx, MY, "`x``y`");
	sqllex_next(&lx, &t);
	s = sqllex_ident(&lx, &t);
	cr_assert_str_eq(s, "x`y");
	free(s);
	sqllex_init(&lx, SL, "[sp ace]");
	sqllex_next(&lx, &t);
	s = sqllex_ident(&lx, &t);
	cr_assert_str_eq(s, "sp ace");
	free(s);
	sqllex_init(&lx, SL, "'lit'");
	sqllex_next(&lx, &t);
	cr_assert_null(sqllex_ident(&lx, &t));
}

static void
collect(void *arg, const struct sqllex *lx, const struct sqllex_token *t, enum sqllex_role role)
{
	static const char roles[] = "nfqmkta";
	struct strbuf *sb = arg;
	char *name = sqllex_ident(lx, t);

	strbuf_addf(sb, "%s%c:%s", sb->len ? " " : "", roles[role], name);
	free(name);
}

/* "r:name ..." for each name of expr, r the role's letter (n f q m k t a). */
static void
expect_roles(enum db_backend d, const char *expr, const char *want)
{
	struct strbuf sb = STRBUF_INIT;
	const char *why;

	cr_assert_eq(sqllex_expr_scan(d, expr, collect, &sb, &why, NULL), 0, "%s: %s", expr, why);
	cr_expect_str_eq(sb.buf, want, "%s: got %s", expr, sb.buf);
	strbuf_release(&sb);
}

Test(sqllex, types_are_not_columns)
{
	expect_roles(PG, "CAST(created_at AS date)", "f:CAST n:created_at k:AS t:date");
	expect_roles(PG, "created_at::date + time", "n:created_at t:date n:time");
	expect_roles(PG, "x::timestamp with time zone = y", "n:x t:timestamp t:with t:time t:zone n:y");
	expect_roles(PG, "CAST(v AS double precision) * 2", "f:CAST n:v k:AS t:double t:precision");
	expect_roles(PG, "CAST(v AS numeric(10, 2))", "f:CAST n:v k:AS t:numeric");
	expect_roles(PG, "v::pg_catalog.text", "n:v t:pg_catalog t:text");
	expect_roles(PG, "DATE '2024-01-01' < date", "t:DATE n:date");
	expect_roles(PG, "INTERVAL '1 day' + time", "t:INTERVAL n:time");
	expect_roles(PG, "text COLLATE \"C\" = key", "n:text k:COLLATE t:C n:key");
	expect_roles(MY, "CONVERT(value, date)", "f:CONVERT n:value t:date");
	expect_roles(MY, "CONVERT(text USING utf8mb4)", "f:CONVERT n:text k:USING t:utf8mb4");
	expect_roles(MY, "CAST(type AS CHAR(10) CHARACTER SET utf8mb4)",
		     "f:CAST n:type k:AS t:CHAR t:CHARACTER t:SET t:utf8mb4");
	expect_roles(MY, "_utf8mb4'x' = text", "t:_utf8mb4 n:text");
	expect_roles(SL, "CAST(\"end\" AS date)", "f:CAST n:end k:AS t:date");
}

Test(sqllex, keywords_are_not_columns)
{
	expect_roles(PG, "CASE WHEN value > 0 THEN 1 ELSE 0 END + end",
		     "k:CASE k:WHEN n:value k:THEN k:ELSE k:END n:end");
	expect_roles(MY, "DATE_ADD(date, INTERVAL 1 DAY) > day",
		     "f:DATE_ADD n:date k:INTERVAL k:DAY n:day");
	expect_roles(MY, "date + INTERVAL year YEAR", "n:date k:INTERVAL n:year k:YEAR");
	expect_roles(MY, "EXTRACT(YEAR FROM date) = year", "f:EXTRACT k:YEAR k:FROM n:date n:year");
	expect_roles(MY, "DATE_FORMAT(date, GET_FORMAT(DATE, 'EUR'))",
		     "f:DATE_FORMAT n:date f:GET_FORMAT k:DATE");
	expect_roles(PG, "ts AT TIME ZONE 'UTC' AND time IS NOT NULL",
		     "n:ts k:AT k:TIME k:ZONE k:AND n:time k:IS k:NOT k:NULL");
	expect_roles(PG, "(SELECT max(t.v) AS date FROM t WHERE t.k = key)",
		     "k:SELECT f:max q:t m:v k:AS a:date k:FROM n:t k:WHERE q:t m:k n:key");
	expect_roles(PG, "upper(\"Name\") || 'date'", "f:upper n:Name");
}

Test(sqllex, not_one_expression)
{
	const char *why;
	struct sqllex_token at;

	cr_assert_eq(sqllex_expr_scan(PG, "a + (b", NULL, NULL, &why, &at), -1);
	cr_assert_str_eq(why, "a '(' is not closed");
	cr_assert_eq(sqllex_expr_scan(PG, "a) + (b", NULL, NULL, &why, &at), -1);
	cr_assert_str_eq(why, "a ')' closes no '('");
	cr_assert_eq(at.column, 2);
	cr_assert_eq(sqllex_expr_scan(MY, "1; DROP TABLE t", NULL, NULL, &why, &at), -1);
	cr_assert_str_eq(why, "a ';' ends the statement inside the expression");
	cr_assert_eq(sqllex_expr_scan(MY, "'x\\'", NULL, NULL, &why, &at), -1);
	cr_assert_str_eq(why, "a string is not closed");
	cr_assert_eq(sqllex_expr_scan(SL, "  -- nothing\n", NULL, NULL, &why, &at), -1);
	cr_assert_str_eq(why, "the expression is empty");
	cr_assert_eq(sqllex_expr_scan(PG, "$$;$$ || ';'", NULL, NULL, &why, &at), 0);
}

Test(sqllex, line_comments)
{
	cr_assert(sqllex_has_line_comment(PG, "a -- b"));
	cr_assert(sqllex_has_line_comment(MY, "a # b"));
	cr_assert_not(sqllex_has_line_comment(PG, "a # b"));
	cr_assert_not(sqllex_has_line_comment(SL, "'--' /* -- */"));
}
