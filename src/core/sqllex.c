/*
 * core/sqllex.c - the SQL lexer of every dialect dbphase speaks, and the
 * reading of one expression's names by role (see sqllex.h).
 */
#include "core/sqllex.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xmalloc.h"

void
sqllex_init(struct sqllex *lx, enum db_backend dialect, const char *text)
{
	memset(lx, 0, sizeof(*lx));
	lx->text = text;
	lx->len = strlen(text);
	lx->line = 1;
	lx->column = 1;
	lx->dialect = dialect;
}

static int
peek(const struct sqllex *lx, size_t ahead)
{
	return lx->pos + ahead < lx->len ? (unsigned char)lx->text[lx->pos + ahead] : -1;
}

static void
advance(struct sqllex *lx, size_t n)
{
	while (n-- > 0 && lx->pos < lx->len) {
		if (lx->text[lx->pos] == '\n') {
			lx->line++;
			lx->column = 1;
		} else {
			lx->column++;
		}
		lx->pos++;
	}
}

static bool
is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/* A byte that may start an unquoted name (UTF-8 lead and continuation bytes too). */
static bool
is_name_start(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool
is_name_char(int c)
{
	return is_name_start(c) || is_digit(c) || c == '$';
}

static bool
is_op_char(int c)
{
	return c >= 0 && strchr("+-*/<>=!|&^%~@#?:`", c) != NULL && c != '\0';
}

/* Skip to the end of the line (the new line itself is left). */
static void
skip_line(struct sqllex *lx)
{
	while (peek(lx, 0) >= 0 && peek(lx, 0) != '\n')
		advance(lx, 1);
}

/* After the opening quote q: up to and past the closing one.  False if unterminated. */
static bool
skip_quoted(struct sqllex *lx, int q, bool backslash)
{
	for (;;) {
		int c = peek(lx, 0);

		if (c < 0)
			return false;
		if (backslash && c == '\\') {
			advance(lx, peek(lx, 1) < 0 ? 1 : 2);
			continue;
		}
		advance(lx, 1);
		if (c == q) {
			if (peek(lx, 0) == q) {	/* doubled: one quote character */
				advance(lx, 1);
				continue;
			}
			return true;
		}
	}
}

/* Block comment from its opening; PostgreSQL nests them.  False if unterminated. */
static bool
skip_block_comment(struct sqllex *lx)
{
	int depth = 0;

	do {
		if (peek(lx, 0) < 0)
			return false;
		if (peek(lx, 0) == '/' && peek(lx, 1) == '*') {
			depth = (depth == 0 || lx->dialect == DB_BACKEND_POSTGRESQL) ? depth + 1 : depth;
			advance(lx, 2);
		} else if (peek(lx, 0) == '*' && peek(lx, 1) == '/') {
			depth--;
			advance(lx, 2);
		} else {
			advance(lx, 1);
		}
	} while (depth > 0);
	return true;
}

/*
 * PostgreSQL: the length of a dollar-quote tag at pos ($$ or $tag$), or 0
 * if there is none there ($1 is a parameter).
 */
static size_t
dollar_tag(const struct sqllex *lx)
{
	size_t n = 1;

	if (peek(lx, 0) != '$')
		return 0;
	if (peek(lx, 1) >= 0 && is_name_start(peek(lx, 1))) {
		while (peek(lx, n) >= 0 && is_name_char(peek(lx, n)) && peek(lx, n) != '$')
			n++;
	}
	return peek(lx, n) == '$' ? n + 1 : 0;
}

static bool
skip_dollar_quoted(struct sqllex *lx, size_t tag_len)
{
	const char *tag = lx->text + lx->pos;

	advance(lx, tag_len);
	while (lx->pos < lx->len) {
		if (lx->text[lx->pos] == '$' && lx->len - lx->pos >= tag_len &&
		    memcmp(lx->text + lx->pos, tag, tag_len) == 0) {
			advance(lx, tag_len);
			return true;
		}
		advance(lx, 1);
	}
	return false;
}

static void
skip_number(struct sqllex *lx)
{
	if (peek(lx, 0) == '0' && (peek(lx, 1) == 'x' || peek(lx, 1) == 'X')) {
		advance(lx, 2);
		while (peek(lx, 0) >= 0 && strchr("0123456789abcdefABCDEF", peek(lx, 0)))
			advance(lx, 1);
		return;
	}
	while (is_digit(peek(lx, 0)) || peek(lx, 0) == '_')
		advance(lx, 1);
	if (peek(lx, 0) == '.' && peek(lx, 1) != '.') {
		advance(lx, 1);
		while (is_digit(peek(lx, 0)))
			advance(lx, 1);
	}
	if ((peek(lx, 0) == 'e' || peek(lx, 0) == 'E') &&
	    (is_digit(peek(lx, 1)) ||
	     ((peek(lx, 1) == '+' || peek(lx, 1) == '-') && is_digit(peek(lx, 2))))) {
		advance(lx, 2);
		while (is_digit(peek(lx, 0)))
			advance(lx, 1);
	}
}

static enum sqllex_kind
fail(struct sqllex *lx, const char *why)
{
	lx->error = why;
	return SQLLEX_ERROR;
}

/* The token at pos, which is not the end; returns its kind and moves past it. */
static enum sqllex_kind
scan(struct sqllex *lx)
{
	enum db_backend d = lx->dialect;
	int c = peek(lx, 0), c1 = peek(lx, 1);
	bool my = d == DB_BACKEND_MYSQL, pg = d == DB_BACKEND_POSTGRESQL;
	size_t n;

	if (is_space(c)) {
		while (is_space(peek(lx, 0)))
			advance(lx, 1);
		return SQLLEX_SPACE;
	}
	/* MariaDB wants a space or control character after "--". */
	if (c == '-' && c1 == '-' && (!my || peek(lx, 2) < 0 || peek(lx, 2) <= ' ')) {
		skip_line(lx);
		return SQLLEX_COMMENT;
	}
	if (c == '#' && my) {
		skip_line(lx);
		return SQLLEX_COMMENT;
	}
	if (c == '/' && c1 == '*')
		return skip_block_comment(lx) ? SQLLEX_COMMENT : fail(lx, "a comment is not closed");
	/* Prefixed strings and identifiers: E'..', N'..', X'..', B'..', U&'..', U&"..". */
	if ((c == 'E' || c == 'e') && c1 == '\'' && pg) {
		advance(lx, 2);
		return skip_quoted(lx, '\'', true) ? SQLLEX_STRING : fail(lx, "a string is not closed");
	}
	if (strchr("NnXxBb", c) && c != '\0' && c1 == '\'') {
		advance(lx, 2);
		return skip_quoted(lx, '\'', my) ? SQLLEX_STRING : fail(lx, "a string is not closed");
	}
	if ((c == 'U' || c == 'u') && c1 == '&' && (peek(lx, 2) == '\'' || peek(lx, 2) == '"') && pg) {
		int q = peek(lx, 2);

		advance(lx, 3);
		if (!skip_quoted(lx, q, false))
			return fail(lx, q == '"' ? "a quoted identifier is not closed" :
					"a string is not closed");
		return q == '"' ? SQLLEX_QUOTED : SQLLEX_STRING;
	}
	if (c == '\'') {
		advance(lx, 1);
		return skip_quoted(lx, '\'', my) ? SQLLEX_STRING : fail(lx, "a string is not closed");
	}
	if (c == '"') {
		advance(lx, 1);
		if (my)		/* without ANSI_QUOTES, a string */
			return skip_quoted(lx, '"', true) ? SQLLEX_STRING :
							    fail(lx, "a string is not closed");
		return skip_quoted(lx, '"', false) ? SQLLEX_QUOTED :
						     fail(lx, "a quoted identifier is not closed");
	}
	if (c == '`' && !pg) {
		advance(lx, 1);
		return skip_quoted(lx, '`', false) ? SQLLEX_QUOTED :
						     fail(lx, "a quoted identifier is not closed");
	}
	if (c == '[' && d == DB_BACKEND_SQLITE) {
		advance(lx, 1);
		while (peek(lx, 0) >= 0 && peek(lx, 0) != ']')
			advance(lx, 1);
		if (peek(lx, 0) < 0)
			return fail(lx, "a quoted identifier is not closed");
		advance(lx, 1);
		return SQLLEX_QUOTED;
	}
	if (c == '$') {
		if (pg && (n = dollar_tag(lx)) > 0)
			return skip_dollar_quoted(lx, n) ? SQLLEX_STRING :
							   fail(lx, "a dollar-quoted string is not closed");
		if (pg && is_digit(c1)) {
			advance(lx, 1);
			while (is_digit(peek(lx, 0)))
				advance(lx, 1);
			return SQLLEX_PARAM;
		}
		if (d == DB_BACKEND_SQLITE && c1 >= 0 && is_name_char(c1)) {
			advance(lx, 1);
			while (peek(lx, 0) >= 0 && is_name_char(peek(lx, 0)))
				advance(lx, 1);
			return SQLLEX_PARAM;
		}
		if (my) {
			while (peek(lx, 0) >= 0 && is_name_char(peek(lx, 0)))
				advance(lx, 1);
			return SQLLEX_WORD;
		}
	}
	if (is_digit(c) || (c == '.' && is_digit(c1))) {
		skip_number(lx);
		/* MariaDB names may start with digits: 1st_col. */
		if (my && peek(lx, 0) >= 0 && is_name_start(peek(lx, 0))) {
			while (peek(lx, 0) >= 0 && is_name_char(peek(lx, 0)))
				advance(lx, 1);
			return SQLLEX_WORD;
		}
		return SQLLEX_NUMBER;
	}
	if (c >= 0 && is_name_start(c)) {
		while (peek(lx, 0) >= 0 && is_name_char(peek(lx, 0)))
			advance(lx, 1);
		return SQLLEX_WORD;
	}
	if (c == ':' && c1 == ':') {
		advance(lx, 2);
		return SQLLEX_PUNCT;
	}
	if ((c == '?' && !pg) || (c == ':' && d == DB_BACKEND_SQLITE && c1 >= 0 && is_name_start(c1)) ||
	    (c == '@' && !pg)) {
		advance(lx, 1);
		if (c == '@' && peek(lx, 0) == '@')
			advance(lx, 1);
		if (c == '@' && (peek(lx, 0) == '\'' || peek(lx, 0) == '"' || peek(lx, 0) == '`')) {
			int q = peek(lx, 0);

			advance(lx, 1);
			if (!skip_quoted(lx, q, q != '`'))
				return fail(lx, "a quoted variable name is not closed");
			return SQLLEX_PARAM;
		}
		while (peek(lx, 0) >= 0 && (is_name_char(peek(lx, 0)) || (c == '@' && peek(lx, 0) == '.')))
			advance(lx, 1);
		return SQLLEX_PARAM;
	}
	if (c >= 0 && strchr("(),;.[]{}", c) && c != '\0') {
		advance(lx, 1);
		return SQLLEX_PUNCT;
	}
	if (is_op_char(c)) {
		/* A run of operator characters, cut where a comment starts. */
		do {
			advance(lx, 1);
		} while (is_op_char(peek(lx, 0)) && peek(lx, 0) != '`' &&
			 !(peek(lx, 0) == '-' && peek(lx, 1) == '-') &&
			 !(peek(lx, 0) == '/' && peek(lx, 1) == '*') &&
			 !(peek(lx, 0) == '#' && my) &&
			 !(peek(lx, 0) == ':' && peek(lx, 1) == ':'));
		return SQLLEX_OP;
	}
	advance(lx, 1);
	return SQLLEX_OP;
}

enum sqllex_kind
sqllex_next(struct sqllex *lx, struct sqllex_token *tok)
{
	tok->pos = lx->pos;
	tok->line = lx->line;
	tok->column = lx->column;
	if (lx->pos >= lx->len) {
		tok->kind = SQLLEX_END;
		tok->len = 0;
		return SQLLEX_END;
	}
	tok->kind = scan(lx);
	tok->len = lx->pos - tok->pos;
	return tok->kind;
}

enum sqllex_kind
sqllex_next_significant(struct sqllex *lx, struct sqllex_token *tok)
{
	enum sqllex_kind k;

	do {
		k = sqllex_next(lx, tok);
	} while (k == SQLLEX_SPACE || k == SQLLEX_COMMENT);
	return k;
}

bool
sqllex_is_word(const struct sqllex *lx, const struct sqllex_token *tok, const char *w)
{
	return tok->kind == SQLLEX_WORD && strlen(w) == tok->len &&
	       strncasecmp(lx->text + tok->pos, w, tok->len) == 0;
}

bool
sqllex_is(const struct sqllex *lx, const struct sqllex_token *tok, const char *p)
{
	return (tok->kind == SQLLEX_PUNCT || tok->kind == SQLLEX_OP) && strlen(p) == tok->len &&
	       memcmp(lx->text + tok->pos, p, tok->len) == 0;
}

char *
sqllex_ident(const struct sqllex *lx, const struct sqllex_token *tok)
{
	const char *s = lx->text + tok->pos, *end = s + tok->len;
	char *out, *o;
	char q;

	if (tok->kind == SQLLEX_WORD)
		return xstrndup(s, tok->len);
	if (tok->kind != SQLLEX_QUOTED || tok->len < 2)
		return NULL;
	if (*s == 'U' || *s == 'u')	/* U&"..." */
		s += 2;
	q = *s == '[' ? ']' : *s;
	s++;
	end--;
	o = out = xmalloc((size_t)(end - s) + 1);
	while (s < end) {
		if (*s == q && s + 1 < end && s[1] == q)
			s++;
		*o++ = *s++;
	}
	*o = '\0';
	return out;
}

bool
sqllex_has_line_comment(enum db_backend dialect, const char *text)
{
	struct sqllex lx;
	struct sqllex_token t;

	sqllex_init(&lx, dialect, text);
	while (sqllex_next(&lx, &t) != SQLLEX_END && t.kind != SQLLEX_ERROR)
		if (t.kind == SQLLEX_COMMENT && text[t.pos] != '/')
			return true;
	return false;
}

/* ---- expressions -------------------------------------------------------- */

/*
 * Words that are keywords wherever they stand in an expression, in one
 * dialect or another; a column spelt like one of them must be quoted.
 * END, AS, CASE, COLLATE, INTERVAL and USING are handled on their own.
 */
static const char *const reserved[] = {
	"ALL", "AND", "ANY", "ARRAY", "ASC", "ASYMMETRIC", "BETWEEN", "BINARY", "BOTH", "BY",
	"CROSS", "CURRENT_DATE", "CURRENT_TIME", "CURRENT_TIMESTAMP", "CURRENT_USER",
	"DEFAULT", "DESC", "DISTINCT", "DIV", "ELSE", "ESCAPE", "EXCEPT", "EXISTS", "FALSE",
	"FETCH", "FOR", "FROM", "GLOB", "GROUP", "HAVING", "ILIKE", "IN", "INNER", "INTERSECT",
	"IS", "ISNULL", "JOIN", "LEADING", "LEFT", "LIKE", "LIMIT", "LOCALTIME",
	"LOCALTIMESTAMP", "MOD", "NATURAL", "NOT", "NOTNULL", "NULL", "OFFSET", "ON", "OR",
	"ORDER", "OUTER", "OVER", "REGEXP", "RIGHT", "RLIKE", "SELECT", "SESSION_USER",
	"SIMILAR", "SOME", "SYMMETRIC", "THEN", "TRAILING", "TRUE", "UNION", "UNKNOWN", "WHEN",
	"WHERE", "WINDOW", "WITH", "XOR", NULL,
};

/* Units after INTERVAL n (MariaDB, and PostgreSQL's INTERVAL '1' DAY). */
static const char *const interval_units[] = {
	"MICROSECOND", "SECOND", "MINUTE", "HOUR", "DAY", "WEEK", "MONTH", "QUARTER", "YEAR",
	"SECOND_MICROSECOND", "MINUTE_MICROSECOND", "MINUTE_SECOND", "HOUR_MICROSECOND",
	"HOUR_SECOND", "HOUR_MINUTE", "DAY_MICROSECOND", "DAY_SECOND", "DAY_MINUTE", "DAY_HOUR",
	"YEAR_MONTH", NULL,
};

/* Words that continue a type name after :: (double precision, time with time zone). */
static const char *const type_words[] = {
	"PRECISION", "VARYING", "WITH", "WITHOUT", "TIME", "ZONE", "UNSIGNED", "SIGNED",
	"ZEROFILL", NULL,
};

static bool
word_in(const struct sqllex *lx, const struct sqllex_token *t, const char *const *list)
{
	for (; *list; list++)
		if (sqllex_is_word(lx, t, *list))
			return true;
	return false;
}

/* What a parenthesis was opened by. */
enum opener {
	OPEN_PLAIN,		/* a group, a subquery, a keyword's list */
	OPEN_FUNCTION,		/* any other function */
	OPEN_CAST,		/* CAST(x AS type) and its kin */
	OPEN_CONVERT,		/* MariaDB CONVERT(x, type) / CONVERT(x USING cs) */
	OPEN_FIELD,		/* EXTRACT(field FROM x), TIMESTAMPADD(unit, ...) */
};

struct level {
	enum opener opener;
	bool type;		/* everything up to the closing parenthesis is a type */
	bool first;		/* no token yet inside */
	int cases;		/* CASE ... END open at this level */
	int interval;		/* 1: after INTERVAL, 2: after its value */
};

static enum opener
opener_of(const struct sqllex *lx, const struct sqllex_token *fn)
{
	if (sqllex_is_word(lx, fn, "CAST") || sqllex_is_word(lx, fn, "TRY_CAST") ||
	    sqllex_is_word(lx, fn, "WEIGHT_STRING") || sqllex_is_word(lx, fn, "XMLSERIALIZE") ||
	    sqllex_is_word(lx, fn, "TREAT"))
		return OPEN_CAST;
	if (sqllex_is_word(lx, fn, "CONVERT") && lx->dialect == DB_BACKEND_MYSQL)
		return OPEN_CONVERT;
	if (sqllex_is_word(lx, fn, "EXTRACT") || sqllex_is_word(lx, fn, "TIMESTAMPADD") ||
	    sqllex_is_word(lx, fn, "TIMESTAMPDIFF") || sqllex_is_word(lx, fn, "GET_FORMAT"))
		return OPEN_FIELD;
	return OPEN_FUNCTION;
}

int
sqllex_expr_scan(enum db_backend dialect, const char *text, sqllex_name_fn fn, void *arg,
		 const char **why, struct sqllex_token *at)
{
	struct sqllex lx;
	struct sqllex_token *toks = NULL, dummy;
	enum sqllex_role *roles = NULL;
	struct level *stack = NULL;
	size_t n = 0, alloc = 0, i, depth = 0;
	bool alias = false;	/* the next name is an alias */
	int type_next = 0;	/* 1: the next name is a type; 2: a type is being read */
	int rc = 0;

	if (at == NULL)
		at = &dummy;
	*why = NULL;
	sqllex_init(&lx, dialect, text);
	for (;;) {
		struct sqllex_token t;
		enum sqllex_kind k = sqllex_next_significant(&lx, &t);

		if (k == SQLLEX_END)
			break;
		if (k == SQLLEX_ERROR) {
			*why = lx.error;
			*at = t;
			rc = -1;
			goto out;
		}
		XGROW(toks, n, alloc);
		toks[n++] = t;
	}
	if (n == 0) {
		*why = "the expression is empty";
		memset(at, 0, sizeof(*at));
		at->line = at->column = 1;
		rc = -1;
		goto out;
	}
	roles = xcalloc(n, sizeof(*roles));
	stack = xcalloc(n + 1, sizeof(*stack));
	stack[0].first = true;
	for (i = 0; i < n; i++) {
		const struct sqllex_token *t = &toks[i];
		const struct sqllex_token *prev = i > 0 ? &toks[i - 1] : NULL;
		const struct sqllex_token *next = i + 1 < n ? &toks[i + 1] : NULL;
		struct level *lv = &stack[depth];
		bool first = lv->first;
		bool name = t->kind == SQLLEX_WORD || t->kind == SQLLEX_QUOTED;
		enum sqllex_role role = SQLLEX_ROLE_NAME;

		lv->first = false;
		if (sqllex_is(&lx, t, "(")) {
			struct level *up = &stack[depth + 1];

			memset(up, 0, sizeof(*up));
			up->first = true;
			up->type = lv->type || (prev && prev->kind != SQLLEX_PUNCT &&
						prev->kind != SQLLEX_OP &&
						roles[i - 1] == SQLLEX_ROLE_TYPE);
			if (prev && roles[i - 1] == SQLLEX_ROLE_FUNCTION)
				up->opener = opener_of(&lx, prev);
			depth++;
			if (type_next == 2)
				type_next = 0;
			continue;
		}
		if (sqllex_is(&lx, t, ")")) {
			if (depth == 0) {
				*why = "a ')' closes no '('";
				*at = *t;
				rc = -1;
				goto out;
			}
			depth--;
			if (stack[depth].interval == 1)
				stack[depth].interval = 2;
			type_next = 0;
			alias = false;
			continue;
		}
		if (sqllex_is(&lx, t, ";")) {
			*why = "a ';' ends the statement inside the expression";
			*at = *t;
			rc = -1;
			goto out;
		}
		if (sqllex_is(&lx, t, ",")) {
			if (lv->opener == OPEN_CONVERT)
				lv->type = true;
			type_next = 0;
			alias = false;
			lv->interval = 0;
			continue;
		}
		if (sqllex_is(&lx, t, "::")) {
			type_next = 1;
			continue;
		}
		if (sqllex_is(&lx, t, "[") || sqllex_is(&lx, t, "]"))
			continue;	/* x::int[], a[1] */
		if (sqllex_is(&lx, t, ".") && type_next == 2) {
			type_next = 1;	/* schema.type */
			continue;
		}
		if (!name) {
			if (lv->interval == 1 && t->kind != SQLLEX_OP && t->kind != SQLLEX_PUNCT)
				lv->interval = 2;
			else if (lv->interval == 2)
				lv->interval = 0;
			type_next = 0;
			alias = false;
			continue;
		}
		/* A name: which role? */
		if (lv->type || type_next == 1 ||
		    (type_next == 2 && t->kind == SQLLEX_WORD && word_in(&lx, t, type_words))) {
			role = SQLLEX_ROLE_TYPE;
			type_next = 2;
		} else if (prev && sqllex_is(&lx, prev, ".")) {
			role = SQLLEX_ROLE_MEMBER;
		} else if (next && sqllex_is(&lx, next, ".")) {
			role = SQLLEX_ROLE_QUALIFIER;
		} else if (t->kind == SQLLEX_WORD && sqllex_is_word(&lx, t, "END") && lv->cases > 0) {
			role = SQLLEX_ROLE_KEYWORD;
			lv->cases--;
		} else if (t->kind == SQLLEX_WORD && sqllex_is_word(&lx, t, "CASE")) {
			role = SQLLEX_ROLE_KEYWORD;
			lv->cases++;
		} else if (t->kind == SQLLEX_WORD && sqllex_is_word(&lx, t, "AS")) {
			role = SQLLEX_ROLE_KEYWORD;
			if (lv->opener == OPEN_CAST)
				lv->type = true;
			else
				alias = true;
		} else if (t->kind == SQLLEX_WORD && sqllex_is_word(&lx, t, "COLLATE")) {
			role = SQLLEX_ROLE_KEYWORD;
			type_next = 1;
		} else if (t->kind == SQLLEX_WORD && (sqllex_is_word(&lx, t, "USING") ||
						       sqllex_is_word(&lx, t, "RETURNING")) &&
			   lv->opener != OPEN_PLAIN && depth > 0) {
			role = SQLLEX_ROLE_KEYWORD;	/* CONVERT(x USING cs), CHAR(x USING cs) */
			lv->type = true;
		} else if (t->kind == SQLLEX_WORD && sqllex_is_word(&lx, t, "INTERVAL") &&
			   !(next && sqllex_is(&lx, next, "("))) {
			role = SQLLEX_ROLE_KEYWORD;
			lv->interval = 1;
			if (next && next->kind == SQLLEX_STRING)
				role = SQLLEX_ROLE_TYPE;	/* INTERVAL '1 day' */
		} else if (t->kind == SQLLEX_WORD && word_in(&lx, t, reserved)) {
			role = SQLLEX_ROLE_KEYWORD;
		} else if (alias) {
			role = SQLLEX_ROLE_ALIAS;
		} else if (lv->interval == 2 && t->kind == SQLLEX_WORD &&
			   word_in(&lx, t, interval_units)) {
			role = SQLLEX_ROLE_KEYWORD;
			lv->interval = 0;
		} else if (first && lv->opener == OPEN_FIELD) {
			role = SQLLEX_ROLE_KEYWORD;
		} else if (t->kind == SQLLEX_WORD && sqllex_is_word(&lx, t, "AT") && next &&
			   i + 2 < n && sqllex_is_word(&lx, next, "TIME") &&
			   sqllex_is_word(&lx, &toks[i + 2], "ZONE")) {
			role = SQLLEX_ROLE_KEYWORD;	/* x AT TIME ZONE 'UTC' */
			roles[i] = role;
			roles[i + 1] = role;
			roles[i + 2] = role;
			i += 2;
			continue;
		} else if (t->kind == SQLLEX_WORD && next && sqllex_is(&lx, next, "(")) {
			role = SQLLEX_ROLE_FUNCTION;
		} else if (t->kind == SQLLEX_WORD && next && next->kind == SQLLEX_STRING) {
			role = SQLLEX_ROLE_TYPE;	/* DATE '2024-01-01', _utf8mb4'x' */
		}
		if (role != SQLLEX_ROLE_TYPE && type_next == 2)
			type_next = 0;
		if (role != SQLLEX_ROLE_KEYWORD || !sqllex_is_word(&lx, t, "AS"))
			alias = false;
		if (role == SQLLEX_ROLE_NAME || role == SQLLEX_ROLE_MEMBER ||
		    role == SQLLEX_ROLE_FUNCTION) {
			if (lv->interval == 1)
				lv->interval = 2;
			else if (lv->interval == 2)
				lv->interval = 0;
		}
		roles[i] = role;
	}
	if (depth > 0) {
		*why = "a '(' is not closed";
		*at = toks[n - 1];
		rc = -1;
		goto out;
	}
	if (fn)
		for (i = 0; i < n; i++)
			if (toks[i].kind == SQLLEX_WORD || toks[i].kind == SQLLEX_QUOTED)
				fn(arg, &lx, &toks[i], roles[i]);
out:
	free(toks);
	free(roles);
	free(stack);
	return rc;
}
