/*
 * core/dialect.c - quoting, placeholder rewriting and the other per-backend
 * spellings of SQL (see dialect.h); placeholders are found with the one
 * SQL lexer, core/sqllex.
 */
#include "core/dialect.h"

#include <stdbool.h>
#include <stdlib.h>

#include "core/sqllex.h"
#include "core/xmalloc.h"

/*
 * Wrap s in q, doubling q (and a backslash, if backslash) inside.  The
 * text is UTF-8, so a byte equal to q or '\\' is always that character,
 * never the tail of another.
 */
static void
quote_with(struct strbuf *out, const char *s, char q, bool backslash)
{
	strbuf_addch(out, q);
	for (; *s; s++) {
		if (*s == q || (backslash && *s == '\\'))
			strbuf_addch(out, *s);
		strbuf_addch(out, *s);
	}
	strbuf_addch(out, q);
}

void
dialect_quote_ident(enum db_backend backend, struct strbuf *out, const char *ident)
{
	quote_with(out, ident, backend == DB_BACKEND_MYSQL ? '`' : '"', false);
}

void
dialect_quote_literal(enum db_backend backend, struct strbuf *out, const char *text)
{
	quote_with(out, text, '\'', backend == DB_BACKEND_MYSQL);
}

/*
 * The number of a $n placeholder token (a PARAM on PostgreSQL and SQLite,
 * a WORD on MariaDB, where $ is a name character), or 0 if tok is not one.
 */
static long
placeholder_number(const char *text, const struct sqllex_token *tok)
{
	const char *p = text + tok->pos;
	long n = 0;
	size_t i;

	if ((tok->kind != SQLLEX_PARAM && tok->kind != SQLLEX_WORD) || tok->len < 2 ||
	    p[0] != '$')
		return 0;
	for (i = 1; i < tok->len; i++) {
		if (p[i] < '0' || p[i] > '9' || n > 100000)
			return 0;
		n = n * 10 + (p[i] - '0');
	}
	return n;
}

void
dialect_rewrite_params(enum db_backend backend, const char *sql, struct strbuf *out,
		       int **order, size_t *n_order)
{
	struct sqllex lx;
	struct sqllex_token tok;
	size_t alloc = 0;
	long n;

	if (order) {
		*order = NULL;
		*n_order = 0;
	}
	if (backend == DB_BACKEND_POSTGRESQL) {
		strbuf_addstr(out, sql);
		return;
	}
	sqllex_init(&lx, backend, sql);
	while (sqllex_next(&lx, &tok) != SQLLEX_END) {
		if (tok.kind == SQLLEX_ERROR) {
			/* Unterminated: the server says what is wrong with the rest. */
			strbuf_addstr(out, sql + tok.pos);
			return;
		}
		n = placeholder_number(sql, &tok);
		if (n == 0) {
			strbuf_add(out, sql + tok.pos, tok.len);
		} else if (backend == DB_BACKEND_SQLITE) {
			strbuf_addf(out, "?%ld", n);
		} else {
			strbuf_addch(out, '?');
			if (order) {
				XGROW(*order, *n_order, alloc);
				(*order)[(*n_order)++] = (int)n;
			}
		}
	}
}

const char *
dialect_now_epoch_sql(enum db_backend backend)
{
	switch (backend) {
	case DB_BACKEND_POSTGRESQL:
		return "CAST(extract(epoch FROM clock_timestamp()) AS bigint)";
	case DB_BACKEND_MYSQL:
		return "UNIX_TIMESTAMP()";
	case DB_BACKEND_SQLITE:
		return "CAST(strftime('%s', 'now') AS INTEGER)";
	}
	return "0";
}

const char *
dialect_session_id_sql(enum db_backend backend)
{
	switch (backend) {
	case DB_BACKEND_POSTGRESQL:
		return "pg_catalog.pg_backend_pid()";
	case DB_BACKEND_MYSQL:
		return "CONNECTION_ID()";
	case DB_BACKEND_SQLITE:
		return "0";
	}
	return "0";
}

const char *const *
dialect_session_sql(enum db_backend backend)
{
	/*
	 * The sql_mode statement has no backslash and no double quote, so it
	 * reads the same under any sql_mode (mysql.c's mdb_session_setup sets
	 * the same by reading the mode, and refuses a server that keeps one).
	 */
	static const char *const mysql[] = {
		"SET NAMES utf8mb4",
		"SET time_zone = '+00:00'",
		"SET SESSION sql_mode = TRIM(BOTH ',' FROM REGEXP_REPLACE(@@SESSION.sql_mode, "
		"'(^|,)(NO_BACKSLASH_ESCAPES|ANSI_QUOTES|ANSI|DB2|MAXDB|MSSQL|ORACLE|POSTGRESQL)"
		"(?=,|$)', ''))",
		NULL,
	};
	static const char *const none[] = { NULL };

	return backend == DB_BACKEND_MYSQL ? mysql : none;
}

char *
dialect_lock_timeout_sql(enum db_backend backend, int timeout_ms)
{
	long s = timeout_ms > 0 ? ((long)timeout_ms + 999) / 1000 : 0;

	switch (backend) {
	case DB_BACKEND_POSTGRESQL:
		return xasprintf("SET lock_timeout = '%dms'", timeout_ms > 0 ? timeout_ms : 0);
	case DB_BACKEND_MYSQL:
		if (s == 0)
			return xstrdup("SET SESSION lock_wait_timeout = DEFAULT, "
				       "SESSION innodb_lock_wait_timeout = DEFAULT");
		return xasprintf("SET SESSION lock_wait_timeout = %ld, "
				 "SESSION innodb_lock_wait_timeout = %ld", s, s);
	case DB_BACKEND_SQLITE:
		return xasprintf("PRAGMA busy_timeout = %d", timeout_ms > 0 ? timeout_ms : 0);
	}
	return xstrdup("");
}
