/*
 * state/effect.c - reading what a rendered statement creates, asking the
 * database whether it is there, and writing its inverse (see effect.h).
 *
 * The reader takes the statement's tokens from core/sqllex (comments
 * skipped; strings, quoted names and $tag$ bodies each one token) and
 * recognises the few shapes the catalog renders.  It errs on the side of
 * EFFECT_UNKNOWN: a statement it does not fully understand is never given
 * an inverse.
 */
#include "config.h"

#include "state/effect.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/dialect.h"
#include "core/sqllex.h"
#include "core/xmalloc.h"

struct lexer {
	struct sqllex sx;
	struct sqllex_token t;	/* the current significant token */
};

/* Whether the statement has ended (nothing but a ';' or the end is left). */
static bool
at_end(const struct lexer *lx)
{
	return lx->t.kind == SQLLEX_END || sqllex_is(&lx->sx, &lx->t, ";");
}

/* Advance to the next token; a ';' ends the statement and is not passed. */
static void
next(struct lexer *lx)
{
	if (!at_end(lx))
		sqllex_next_significant(&lx->sx, &lx->t);
}

/*
 * The dialect sql is written in, as far as reading it needs: the catalog
 * quotes names with backticks on MariaDB only, and only MariaDB's
 * backslash escapes (or its $ in names) leave PostgreSQL's lexer with an
 * unterminated token.  SQLite's text lexes as PostgreSQL's.
 */
static enum db_backend
guess_dialect(const char *sql)
{
	struct sqllex lx;
	struct sqllex_token t;

	sqllex_init(&lx, DB_BACKEND_POSTGRESQL, sql);
	while (sqllex_next(&lx, &t) != SQLLEX_END)
		if (t.kind == SQLLEX_ERROR ||
		    (t.kind == SQLLEX_OP && memchr(sql + t.pos, '`', t.len) != NULL))
			return DB_BACKEND_MYSQL;
	return DB_BACKEND_POSTGRESQL;
}

static void
lexer_init(struct lexer *lx, enum db_backend dialect, const char *sql)
{
	sqllex_init(&lx->sx, dialect, sql);
	sqllex_next_significant(&lx->sx, &lx->t);
}

static bool
is_word(const struct lexer *lx, const char *w)
{
	return sqllex_is_word(&lx->sx, &lx->t, w);
}

static bool
is_punct(const struct lexer *lx, const char *p)
{
	return sqllex_is(&lx->sx, &lx->t, p);
}

/* Consume word w if it is the current token. */
static bool
accept(struct lexer *lx, const char *w)
{
	if (!is_word(lx, w))
		return false;
	next(lx);
	return true;
}

/* Consume "IF [NOT] EXISTS" if present; true if it was there. */
static bool
accept_if_exists(struct lexer *lx, bool not)
{
	if (!is_word(lx, "IF"))
		return false;
	next(lx);
	if (not && !accept(lx, "NOT"))
		return false;
	return accept(lx, "EXISTS");
}

/* An identifier (quoted or bare, not schema-qualified); owned, or NULL. */
static char *
take_ident(struct lexer *lx)
{
	char *name;

	if ((name = sqllex_ident(&lx->sx, &lx->t)) == NULL)
		return NULL;
	next(lx);
	if (is_punct(lx, ".")) {
		free(name);
		return NULL;
	}
	return name;
}

/*
 * The rest of an ALTER TABLE after its first clause: MariaDB's ", LOCK=NONE"
 * and ", ALGORITHM=INPLACE" are fine; any other clause makes the statement
 * one dbphase does not read.
 */
static bool
rest_is_harmless(struct lexer *lx)
{
	int depth = 0;

	while (!at_end(lx)) {
		if (is_punct(lx, "("))
			depth++;
		else if (is_punct(lx, ")"))
			depth--;
		else if (depth == 0 && is_punct(lx, ",")) {
			next(lx);
			if (!is_word(lx, "LOCK") && !is_word(lx, "ALGORITHM"))
				return false;
			continue;
		}
		next(lx);
	}
	return true;
}

static void
parse_create(struct lexer *lx, struct effect *e)
{
	bool unique = false;

	for (;;) {
		if (is_word(lx, "TABLE") || is_word(lx, "INDEX") || is_word(lx, "TRIGGER") ||
		    is_word(lx, "FUNCTION") || is_word(lx, "VIEW"))
			break;
		if (is_word(lx, "TEMP") || is_word(lx, "TEMPORARY")) {
			/* Gone with the session: nothing to take back. */
			e->kind = EFFECT_NONE;
			return;
		}
		if (is_word(lx, "UNIQUE"))
			unique = true;
		else if (is_word(lx, "REPLACE"))
			e->replace = true;
		else if (!is_word(lx, "OR") && !is_word(lx, "REPLACE") &&
			 !is_word(lx, "ALGORITHM") && !is_word(lx, "MERGE") &&
			 !is_punct(lx, "="))
			return;
		next(lx);
	}
	if (accept(lx, "TABLE")) {
		accept_if_exists(lx, true);
		if ((e->name = take_ident(lx)) != NULL)
			e->kind = EFFECT_TABLE;
	} else if (accept(lx, "INDEX")) {
		e->concurrently = accept(lx, "CONCURRENTLY");
		accept_if_exists(lx, true);
		if ((e->name = take_ident(lx)) == NULL || !accept(lx, "ON"))
			return;
		accept(lx, "ONLY");
		if ((e->table = take_ident(lx)) != NULL)
			e->kind = EFFECT_INDEX;
		e->unique = unique;
	} else if (accept(lx, "TRIGGER")) {
		accept_if_exists(lx, true);
		if ((e->name = take_ident(lx)) == NULL)
			return;
		while (!at_end(lx) && !is_word(lx, "ON"))
			next(lx);
		if (!accept(lx, "ON"))
			return;
		if ((e->table = take_ident(lx)) != NULL)
			e->kind = EFFECT_TRIGGER;
	} else if (accept(lx, "FUNCTION")) {
		size_t open;
		int depth = 1;

		if ((e->name = take_ident(lx)) == NULL || !is_punct(lx, "("))
			return;
		open = lx->t.pos + lx->t.len;
		next(lx);
		while (!at_end(lx)) {
			if (is_punct(lx, "("))
				depth++;
			else if (is_punct(lx, ")") && --depth == 0)
				break;
			next(lx);
		}
		if (depth != 0)
			return;
		e->args = xstrndup(lx->sx.text + open, lx->t.pos - open);
		e->kind = EFFECT_FUNCTION;
	} else if (accept(lx, "VIEW")) {
		accept_if_exists(lx, true);
		if ((e->name = take_ident(lx)) != NULL)
			e->kind = EFFECT_VIEW;
	}
}

static void
parse_alter(struct lexer *lx, struct effect *e)
{
	enum effect_kind kind = EFFECT_UNKNOWN;

	if (!accept(lx, "TABLE"))
		return;
	accept_if_exists(lx, false);
	accept(lx, "ONLY");
	if ((e->table = take_ident(lx)) == NULL)
		return;
	if (accept(lx, "ADD")) {
		if (accept(lx, "COLUMN")) {
			accept_if_exists(lx, true);
			if ((e->name = take_ident(lx)) != NULL)
				kind = EFFECT_COLUMN;
		} else if (accept(lx, "CONSTRAINT")) {
			if ((e->name = take_ident(lx)) == NULL)
				return;
			if (is_word(lx, "FOREIGN")) {
				kind = EFFECT_FOREIGN_KEY;
			} else if (is_word(lx, "CHECK")) {
				kind = EFFECT_CONSTRAINT;
			} else if (is_word(lx, "UNIQUE")) {
				kind = EFFECT_CONSTRAINT;
				e->unique = true;
			}
		} else if (lx->t.kind == SQLLEX_QUOTED) {
			e->name = take_ident(lx);
			kind = e->name ? EFFECT_COLUMN : EFFECT_UNKNOWN;
		}
	} else if (accept(lx, "VALIDATE")) {
		kind = accept(lx, "CONSTRAINT") ? EFFECT_NONE : EFFECT_UNKNOWN;
	} else if (accept(lx, "DROP")) {
		if (accept(lx, "FOREIGN") && !accept(lx, "KEY"))
			return;
		if (!accept(lx, "CONSTRAINT") && !accept(lx, "COLUMN"))
			accept(lx, "INDEX");
		if (accept_if_exists(lx, false))
			kind = EFFECT_NONE;
	} else if (accept(lx, "ALTER")) {
		accept(lx, "COLUMN");
		if ((e->name = take_ident(lx)) != NULL && accept(lx, "DROP") && accept(lx, "NOT") &&
		    accept(lx, "NULL"))
			kind = EFFECT_DROP_NOT_NULL;
	}
	if (kind == EFFECT_UNKNOWN || !rest_is_harmless(lx))
		return;
	e->kind = kind;
}

static void
parse(enum db_backend dialect, const char *sql, struct effect *e)
{
	struct lexer lx;

	memset(e, 0, sizeof(*e));
	e->kind = EFFECT_UNKNOWN;
	lexer_init(&lx, dialect, sql);
	if (accept(&lx, "CREATE")) {
		parse_create(&lx, e);
	} else if (accept(&lx, "ALTER")) {
		parse_alter(&lx, e);
	} else if (accept(&lx, "DROP")) {
		/* DROP <kind> [CONCURRENTLY] IF EXISTS ...: clears the way for a CREATE. */
		int words;

		for (words = 0; words < 3 && lx.t.kind == SQLLEX_WORD && !is_word(&lx, "IF") &&
			     !is_word(&lx, "temp"); words++)
			next(&lx);
		if (accept_if_exists(&lx, false))
			e->kind = EFFECT_NONE;
		else if (accept(&lx, "temp") && is_punct(&lx, "."))
			e->kind = EFFECT_NONE;	/* SQLite's temp schema */
	} else if (is_word(&lx, "SET")) {
		e->kind = EFFECT_NONE;
	}
	if (e->kind == EFFECT_UNKNOWN || e->kind == EFFECT_NONE) {
		free(e->table);
		free(e->name);
		free(e->args);
		e->table = e->name = e->args = NULL;
	}
}

void
effect_parse(const char *sql, struct effect *e)
{
	parse(guess_dialect(sql), sql, e);
}

void
effect_release(struct effect *e)
{
	free(e->table);
	free(e->name);
	free(e->args);
	free(e->to);
	memset(e, 0, sizeof(*e));
}

/* DROP TABLE/INDEX/TRIGGER/FUNCTION/VIEW [CONCURRENTLY] [IF EXISTS] name [ON table] [(args)]. */
static void
parse_contract_drop(struct lexer *lx, struct effect *e)
{
	enum effect_kind kind;

	if (accept(lx, "TABLE"))
		kind = EFFECT_TABLE;
	else if (accept(lx, "INDEX"))
		kind = EFFECT_INDEX;
	else if (accept(lx, "TRIGGER"))
		kind = EFFECT_TRIGGER;
	else if (accept(lx, "FUNCTION"))
		kind = EFFECT_FUNCTION;
	else if (accept(lx, "VIEW"))
		kind = EFFECT_VIEW;
	else
		return;
	if (kind == EFFECT_INDEX)
		accept(lx, "CONCURRENTLY");
	accept_if_exists(lx, false);
	if ((e->name = take_ident(lx)) == NULL)
		return;
	if ((kind == EFFECT_INDEX || kind == EFFECT_TRIGGER) && accept(lx, "ON") &&
	    (e->table = take_ident(lx)) == NULL)
		return;
	if (kind == EFFECT_FUNCTION && is_punct(lx, "(")) {
		while (!at_end(lx) && !is_punct(lx, ")"))
			next(lx);
		if (!is_punct(lx, ")"))
			return;
		next(lx);
	}
	if (!at_end(lx))
		return;
	e->drop = true;
	e->kind = kind;
}

/* Whether a RENAME here gives the table itself a new name (RENAME [TO|AS] name). */
static bool
renames_table(enum db_backend dialect, const char *sql)
{
	struct lexer lx;
	bool yes = false;

	for (lexer_init(&lx, dialect, sql); !at_end(&lx) && !yes; next(&lx)) {
		if (!is_word(&lx, "RENAME"))
			continue;
		next(&lx);
		yes = !is_word(&lx, "COLUMN") && !is_word(&lx, "INDEX") && !is_word(&lx, "KEY") &&
		      !is_word(&lx, "CONSTRAINT");
	}
	return yes;
}

/*
 * ALTER TABLE [IF EXISTS] [ONLY] table, then one DROP clause, or any
 * other change (EFFECT_ALTER; of a column where the clause names one).
 */
static void
parse_contract_alter(struct lexer *lx, const char *sql, struct effect *e)
{
	enum effect_kind kind = EFFECT_COLUMN;

	if (!accept(lx, "TABLE"))
		return;
	accept_if_exists(lx, false);
	accept(lx, "ONLY");
	if ((e->table = take_ident(lx)) == NULL || renames_table(lx->sx.dialect, sql))
		return;
	e->kind = EFFECT_ALTER;
	if (accept(lx, "DROP")) {
		if (accept(lx, "CONSTRAINT"))
			kind = EFFECT_CONSTRAINT;
		else if (accept(lx, "FOREIGN") && accept(lx, "KEY"))
			kind = EFFECT_FOREIGN_KEY;
		else if (accept(lx, "INDEX") || accept(lx, "KEY"))
			kind = EFFECT_INDEX;
		else
			accept(lx, "COLUMN");
		accept_if_exists(lx, false);
		if ((e->name = take_ident(lx)) != NULL && rest_is_harmless(lx)) {
			e->kind = kind;
			e->drop = true;
			return;
		}
	} else if (accept(lx, "ALTER") || accept(lx, "MODIFY") || accept(lx, "CHANGE")) {
		accept(lx, "COLUMN");
		accept_if_exists(lx, false);
		if ((e->name = take_ident(lx)) != NULL && rest_is_harmless(lx))
			return;
	}
	/* Several clauses, or one the reader does not know: a change to the table. */
	free(e->name);
	e->name = NULL;
}

/*
 * MariaDB's "BEGIN NOT ATOMIC IF [NOT] EXISTS (...) THEN stmt; END IF; END",
 * lx at BEGIN: stmt, or NULL for any other block.  Caller frees.
 */
static char *
compound_inner(struct lexer *lx)
{
	size_t start, semicolon;
	int depth = 0;
	bool ok;

	if (!accept(lx, "BEGIN") || !accept(lx, "NOT") || !accept(lx, "ATOMIC") ||
	    !accept(lx, "IF"))
		return NULL;
	accept(lx, "NOT");
	if (!accept(lx, "EXISTS") || !is_punct(lx, "("))
		return NULL;
	while (!at_end(lx)) {
		if (is_punct(lx, "("))
			depth++;
		else if (is_punct(lx, ")") && --depth == 0)
			break;
		next(lx);
	}
	next(lx);
	if (depth != 0 || !is_word(lx, "THEN"))
		return NULL;
	start = lx->t.pos + lx->t.len;
	while (!at_end(lx))
		next(lx);
	if (lx->t.kind == SQLLEX_END)
		return NULL;
	/* Past the ';' that ends the inner statement: "END IF; END" and no more. */
	semicolon = lx->t.pos;
	sqllex_next_significant(&lx->sx, &lx->t);
	ok = accept(lx, "END") && accept(lx, "IF") && is_punct(lx, ";");
	if (ok) {
		sqllex_next_significant(&lx->sx, &lx->t);
		ok = accept(lx, "END") && lx->t.kind == SQLLEX_END;
	}
	return ok ? xstrndup(lx->sx.text + start, semicolon - start) : NULL;
}

static void
parse_contract(enum db_backend dialect, const char *sql, struct effect *e)
{
	struct lexer lx;
	char *inner;

	memset(e, 0, sizeof(*e));
	e->kind = EFFECT_UNKNOWN;
	lexer_init(&lx, dialect, sql);
	if (is_word(&lx, "BEGIN")) {
		if ((inner = compound_inner(&lx)) != NULL)
			parse_contract(dialect, inner, e);
		free(inner);
		return;
	}
	if (accept(&lx, "DROP")) {
		parse_contract_drop(&lx, e);
	} else if (accept(&lx, "ALTER")) {
		if (accept(&lx, "INDEX")) {
			accept_if_exists(&lx, false);
			if ((e->name = take_ident(&lx)) != NULL && accept(&lx, "RENAME") &&
			    accept(&lx, "TO") && (e->to = take_ident(&lx)) != NULL && at_end(&lx))
				e->kind = EFFECT_INDEX_RENAME;
		} else {
			/* A drop; else what it adds or validates, read as in expand. */
			struct effect c;

			parse_contract_alter(&lx, sql, e);
			if (!e->drop) {
				parse(dialect, sql, &c);
				if (c.kind != EFFECT_UNKNOWN) {
					effect_release(e);
					*e = c;
				}
			}
		}
	} else if (accept(&lx, "LOCK") || accept(&lx, "UNLOCK")) {
		if (accept(&lx, "TABLES"))
			e->kind = EFFECT_NONE;
	} else {
		parse(dialect, sql, e);
	}
	if (e->kind == EFFECT_UNKNOWN || e->kind == EFFECT_NONE) {
		free(e->table);
		free(e->name);
		free(e->to);
		e->table = e->name = e->to = NULL;
		e->drop = false;
	}
}

void
effect_parse_contract(const char *sql, struct effect *e)
{
	parse_contract(guess_dialect(sql), sql, e);
}

char *
effect_describe(const struct effect *e)
{
	switch (e->kind) {
	case EFFECT_NONE:
		return xstrdup("nothing");
	case EFFECT_TABLE:
		return xasprintf("table '%s'", e->name);
	case EFFECT_COLUMN:
		return xasprintf("column '%s' of '%s'", e->name, e->table);
	case EFFECT_INDEX:
		return xasprintf("index '%s' on '%s'", e->name, e->table);
	case EFFECT_TRIGGER:
		return xasprintf("trigger '%s' on '%s'", e->name, e->table);
	case EFFECT_FUNCTION:
		return xasprintf("function '%s(%s)'", e->name, e->args);
	case EFFECT_CONSTRAINT:
		return xasprintf("constraint '%s' on '%s'", e->name, e->table);
	case EFFECT_FOREIGN_KEY:
		return xasprintf("foreign key '%s' on '%s'", e->name, e->table);
	case EFFECT_VIEW:
		return xasprintf("view '%s'", e->name);
	case EFFECT_DROP_NOT_NULL:
		return xasprintf("nullable column '%s' of '%s'", e->name, e->table);
	case EFFECT_ALTER:
		return e->name ? xasprintf("column '%s' of '%s'", e->name, e->table)
			       : xasprintf("table '%s'", e->table);
	case EFFECT_INDEX_RENAME:
		return xasprintf("index '%s', renamed to '%s'", e->name, e->to);
	case EFFECT_UNKNOWN:
		break;
	}
	return xstrdup("an effect dbphase cannot read");
}

static void
add_alter(enum db_backend b, struct strbuf *out, const char *table)
{
	strbuf_addstr(out, "ALTER TABLE ");
	dialect_quote_ident(b, out, table);
}

size_t
effect_undo_sql(const struct effect *e, enum db_backend b, struct strbuf out[EFFECT_UNDO_MAX])
{
	if (e->drop)
		return 0;
	switch (e->kind) {
	case EFFECT_NONE:
	case EFFECT_UNKNOWN:
	case EFFECT_ALTER:
		return 0;
	case EFFECT_INDEX_RENAME:
		if (b != DB_BACKEND_POSTGRESQL)
			return 0;
		strbuf_addstr(&out[0], "ALTER INDEX IF EXISTS ");
		dialect_quote_ident(b, &out[0], e->to);
		strbuf_addstr(&out[0], " RENAME TO ");
		dialect_quote_ident(b, &out[0], e->name);
		return 1;
	case EFFECT_TABLE:
		strbuf_addstr(&out[0], "DROP TABLE IF EXISTS ");
		dialect_quote_ident(b, &out[0], e->name);
		return 1;
	case EFFECT_COLUMN:
		add_alter(b, &out[0], e->table);
		/* SQLite has no IF EXISTS here: the caller checks presence first. */
		strbuf_addstr(&out[0], b == DB_BACKEND_SQLITE ? " DROP COLUMN " :
			      " DROP COLUMN IF EXISTS ");
		dialect_quote_ident(b, &out[0], e->name);
		return 1;
	case EFFECT_INDEX:
		strbuf_addstr(&out[0], b == DB_BACKEND_POSTGRESQL ?
			      "DROP INDEX CONCURRENTLY IF EXISTS " : "DROP INDEX IF EXISTS ");
		dialect_quote_ident(b, &out[0], e->name);
		if (b == DB_BACKEND_MYSQL) {
			strbuf_addstr(&out[0], " ON ");
			dialect_quote_ident(b, &out[0], e->table);
		}
		return 1;
	case EFFECT_TRIGGER:
		strbuf_addstr(&out[0], "DROP TRIGGER IF EXISTS ");
		dialect_quote_ident(b, &out[0], e->name);
		if (b == DB_BACKEND_POSTGRESQL) {
			strbuf_addstr(&out[0], " ON ");
			dialect_quote_ident(b, &out[0], e->table);
		}
		return 1;
	case EFFECT_FUNCTION:
		if (b == DB_BACKEND_SQLITE)
			return 0;
		strbuf_addstr(&out[0], "DROP FUNCTION IF EXISTS ");
		dialect_quote_ident(b, &out[0], e->name);
		if (b == DB_BACKEND_POSTGRESQL)
			strbuf_addf(&out[0], "(%s)", e->args);
		return 1;
	case EFFECT_CONSTRAINT:
		if (b == DB_BACKEND_SQLITE)
			return 0;
		if (b == DB_BACKEND_MYSQL && e->unique) {
			strbuf_addstr(&out[0], "DROP INDEX IF EXISTS ");
			dialect_quote_ident(b, &out[0], e->name);
			strbuf_addstr(&out[0], " ON ");
			dialect_quote_ident(b, &out[0], e->table);
			return 1;
		}
		add_alter(b, &out[0], e->table);
		strbuf_addstr(&out[0], " DROP CONSTRAINT IF EXISTS ");
		dialect_quote_ident(b, &out[0], e->name);
		return 1;
	case EFFECT_FOREIGN_KEY:
		if (b == DB_BACKEND_SQLITE)
			return 0;
		add_alter(b, &out[0], e->table);
		strbuf_addstr(&out[0], b == DB_BACKEND_MYSQL ? " DROP FOREIGN KEY IF EXISTS " :
			      " DROP CONSTRAINT IF EXISTS ");
		dialect_quote_ident(b, &out[0], e->name);
		if (b != DB_BACKEND_MYSQL)
			return 1;
		/* MariaDB made an index of the key's name for it; dropping the key keeps it. */
		strbuf_addstr(&out[1], "DROP INDEX IF EXISTS ");
		dialect_quote_ident(b, &out[1], e->name);
		strbuf_addstr(&out[1], " ON ");
		dialect_quote_ident(b, &out[1], e->table);
		return 2;
	case EFFECT_VIEW:
		strbuf_addstr(&out[0], "DROP VIEW IF EXISTS ");
		dialect_quote_ident(b, &out[0], e->name);
		return 1;
	case EFFECT_DROP_NOT_NULL:
		if (b != DB_BACKEND_POSTGRESQL)
			return 0;
		add_alter(b, &out[0], e->table);
		strbuf_addstr(&out[0], " ALTER COLUMN ");
		dialect_quote_ident(b, &out[0], e->name);
		strbuf_addstr(&out[0], " SET NOT NULL");
		return 1;
	}
	return 0;
}

/* Names in MariaDB and SQLite schemas compare without case. */
static bool
same_name(enum db_backend b, const char *x, const char *y)
{
	return b == DB_BACKEND_POSTGRESQL ? strcmp(x, y) == 0 : strcasecmp(x, y) == 0;
}

/* Whether the function exists in the connection's schema. */
static int
function_present(struct db_conn *conn, const char *name, bool *present,
		 struct dbphase_error *err)
{
	struct db_param p = DB_TEXT(name);
	struct db_result *res;
	const char *sql = conn->drv->backend == DB_BACKEND_POSTGRESQL ?
		"SELECT 1 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n "
		"ON n.oid = p.pronamespace WHERE n.nspname = current_schema() AND p.proname = $1" :
		"SELECT 1 FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE() "
		"AND ROUTINE_NAME = $1";
	int rc = db_query(conn, sql, &p, 1, &res, err);

	if (rc < 0)
		return rc;
	*present = res->n_rows > 0;
	db_result_free(res);
	return 0;
}

/* Look e up in its table's description. */
static bool
in_table(enum db_backend b, const struct effect *e, const struct db_table_info *info)
{
	size_t i;

	switch (e->kind) {
	case EFFECT_COLUMN:
		for (i = 0; i < info->n_columns; i++)
			if (same_name(b, info->columns[i].name, e->name))
				return true;
		return false;
	case EFFECT_DROP_NOT_NULL:
		for (i = 0; i < info->n_columns; i++)
			if (same_name(b, info->columns[i].name, e->name))
				return info->columns[i].nullable;
		return false;
	case EFFECT_INDEX:
		for (i = 0; i < info->n_indexes; i++)
			if (same_name(b, info->indexes[i].name, e->name))
				return info->indexes[i].valid;
		return false;
	case EFFECT_TRIGGER:
		for (i = 0; i < info->n_triggers; i++)
			if (same_name(b, info->triggers[i].name, e->name))
				return true;
		return false;
	case EFFECT_CONSTRAINT:
	case EFFECT_FOREIGN_KEY:
		for (i = 0; i < info->n_constraints; i++)
			if (same_name(b, info->constraints[i].name, e->name))
				return true;
		/* A unique constraint is an index on MariaDB and SQLite. */
		for (i = 0; e->unique && i < info->n_indexes; i++)
			if (same_name(b, info->indexes[i].name, e->name))
				return true;
		return false;
	default:
		return false;
	}
}

int
effect_present(struct db_conn *conn, const struct effect *e, bool *present, bool *known,
	       struct dbphase_error *err)
{
	enum db_backend b = conn->drv->backend;
	struct db_table_info info;
	int rc;

	*present = false;
	*known = true;
	switch (e->kind) {
	case EFFECT_NONE:
	case EFFECT_UNKNOWN:
	case EFFECT_VIEW:
	case EFFECT_ALTER:
	case EFFECT_INDEX_RENAME:
		*known = false;
		return 0;
	case EFFECT_TABLE:
		return conn->drv->table_exists(conn, e->name, present, err);
	case EFFECT_FUNCTION:
		if (b == DB_BACKEND_SQLITE) {
			*known = false;
			return 0;
		}
		return function_present(conn, e->name, present, err);
	default:
		break;
	}
	memset(&info, 0, sizeof(info));
	rc = conn->drv->describe_table(conn, e->table, &info, err);
	if (rc == DBPHASE_ENOTFOUND) {
		err_release(err);
		return 0;
	}
	if (rc < 0)
		return rc;
	*present = in_table(b, e, &info);
	db_table_info_release(&info);
	return 0;
}
