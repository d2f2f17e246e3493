/*
 * core/sqllex.h - one SQL lexer for PostgreSQL, MariaDB and SQLite text.
 *
 * It cuts SQL into tokens the way the server does: string literals
 * ('...' with '' doubled; MariaDB's backslash escapes and "..." strings;
 * PostgreSQL's E'...' escapes and $tag$...$tag$ quoting), quoted
 * identifiers ("x", `x`, SQLite's [x]), comments (-- and block comments,
 * nested on PostgreSQL; MariaDB's # and its rule that -- needs a space),
 * numbers, parameters ($1, ?, :name), PostgreSQL's :: cast and operators.
 * Tokens keep their position (byte offset, line and column, 1-based) in
 * the text, which is never copied or changed.
 *
 * On top of the tokens, sqllex_expr_scan reads one SQL expression and
 * says what each name in it is: a name that may be a column, or a
 * function, a qualifier, a keyword, an alias, or a type (CAST(x AS date),
 * x::date, CONVERT(x, date), DATE '2024-01-01', COLLATE name ...), so that
 * a type or keyword spelt like a column is never taken for one.
 *
 * MariaDB text is read as dbphase's sessions set sql_mode: backslash
 * escapes on, ANSI_QUOTES off ("..." is a string).  PostgreSQL text is read
 * with standard_conforming_strings on (the default since 9.1).
 */
#ifndef DBPHASE_CORE_SQLLEX_H
#define DBPHASE_CORE_SQLLEX_H

#include <stdbool.h>
#include <stddef.h>

#include "core/url.h"

enum sqllex_kind {
	SQLLEX_END,		/* no more text */
	SQLLEX_SPACE,		/* white space */
	SQLLEX_COMMENT,		/* -- ..., # ... (MariaDB), block comment */
	SQLLEX_WORD,		/* unquoted name or keyword */
	SQLLEX_QUOTED,		/* quoted identifier: "x", `x`, [x] */
	SQLLEX_STRING,		/* string literal, with any prefix: 'x', E'x', N'x', X'..', $$x$$ */
	SQLLEX_NUMBER,		/* 12, 1.5e3, 0x1F */
	SQLLEX_PARAM,		/* $1, ?, ?2, :name, @name, @@name, $name (SQLite) */
	SQLLEX_OP,		/* operator characters: + - * / < > = ! | & ^ % ~ @ # ? */
	SQLLEX_PUNCT,		/* ( ) , ; . [ ] { } and :: */
	SQLLEX_ERROR,		/* unterminated string, identifier or comment */
};

struct sqllex_token {
	enum sqllex_kind kind;
	size_t pos;		/* byte offset in the text */
	size_t len;		/* bytes */
	unsigned line;		/* 1-based */
	unsigned column;	/* 1-based, in bytes */
};

struct sqllex {
	const char *text;
	size_t len;
	size_t pos;
	unsigned line;
	unsigned column;
	enum db_backend dialect;
	const char *error;	/* why the last SQLLEX_ERROR token is one */
};

void sqllex_init(struct sqllex *lx, enum db_backend dialect, const char *text);

/* The next token, spaces and comments included; SQLLEX_END at the end. */
enum sqllex_kind sqllex_next(struct sqllex *lx, struct sqllex_token *tok);

/* The next token that is not a space or a comment. */
enum sqllex_kind sqllex_next_significant(struct sqllex *lx, struct sqllex_token *tok);

/* Whether tok is the unquoted word w (ASCII case-insensitive). */
bool sqllex_is_word(const struct sqllex *lx, const struct sqllex_token *tok, const char *w);

/* Whether tok is the punctuation or operator p exactly ("(", "::", "="). */
bool sqllex_is(const struct sqllex *lx, const struct sqllex_token *tok, const char *p);

/*
 * The name a WORD or QUOTED token stands for: a word as written, a quoted
 * identifier without its quotes and with doubled quotes undone.  NULL for
 * other kinds.  Caller frees.
 */
char *sqllex_ident(const struct sqllex *lx, const struct sqllex_token *tok);

/* What a name in an expression is (sqllex_expr_scan). */
enum sqllex_role {
	SQLLEX_ROLE_NAME,	/* may name a column of the row: price, "date" */
	SQLLEX_ROLE_FUNCTION,	/* followed by '(': upper(x) */
	SQLLEX_ROLE_QUALIFIER,	/* followed by '.': t.x (the t) */
	SQLLEX_ROLE_MEMBER,	/* after '.': t.x (the x) */
	SQLLEX_ROLE_KEYWORD,	/* AND, NULL, the END of CASE, DAY in INTERVAL 1 DAY ... */
	SQLLEX_ROLE_TYPE,	/* a type, charset or collation name: CAST(x AS date) */
	SQLLEX_ROLE_ALIAS,	/* after AS outside a cast: (SELECT 1 AS date) */
};

typedef void (*sqllex_name_fn)(void *arg, const struct sqllex *lx,
			       const struct sqllex_token *tok, enum sqllex_role role);

/*
 * Read text as one SQL expression and call fn (if not NULL) for every
 * WORD and QUOTED token with its role.  Returns 0, or -1 when the text is
 * not one expression that can be put in parentheses: an unterminated
 * string, identifier or comment, unbalanced parentheses, a ';' outside
 * them, or nothing at all.  Then *why says what is wrong and *at
 * (optional) where; both point into static text or tok positions.
 */
int sqllex_expr_scan(enum db_backend dialect, const char *text, sqllex_name_fn fn, void *arg,
		     const char **why, struct sqllex_token *at);

/* Whether text holds a -- or # comment (which ends only at a new line). */
bool sqllex_has_line_comment(enum db_backend dialect, const char *text);

#endif
