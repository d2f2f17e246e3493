/*
 * plan/planner.c - replaying migrations on the schema model and rendering
 * each operation's catalog steps for one backend.
 *
 * Design.  Each operation goes through three stages:
 *   1. generic checks of its arguments against the catalog's parameter
 *      list (unknown or missing fields, kinds, existence of tables and
 *      columns in the model), which also fill template variables;
 *   2. the operation's own rules (op_* below): derived variables such as
 *      trigger names and the type of a shadowed column, flags that select
 *      catalog steps ("when:"), and the operation's effect on the model;
 *   3. rendering of the selected catalog steps into plan steps.
 * Variables may be lists; a statement that uses a list is rendered once per
 * element (all lists in one statement must be equally long).
 */
#include "plan/planner.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/dialect.h"
#include "core/excerpt.h"
#include "core/sqllex.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "plan/model.h"
#include "plan/types.h"

/* Identifier length every backend accepts (PostgreSQL's 63). */
#define NAME_MAX_LEN 63

struct var {
	char *name;
	char **values;
	size_t n;
	bool is_list;
};

struct vars {
	struct var *v;
	size_t n;
	size_t alloc;
};

/* A column added NOT NULL without a default waits for a backfill. */
struct pending_fill {
	char *table;
	char *column;
	const struct ynode *at;
	bool filled;
};

/*
 * A table renamed by the current migration: until its contract the new
 * name is a view, which no other operation of the migration may change.
 */
struct renamed_table {
	char *name;
	char *from;
	char *where;		/* "path:line:col" of the rename_table */
};

struct op_ctx {
	const struct repo *repo;
	const struct migration *mig;
	const struct migration_op *mop;
	const struct catalog_op *cop;
	struct model *model;
	enum db_backend backend;
	struct vars vars;
	struct pending_fill *fills;	/* of the current migration */
	size_t n_fills;
	struct renamed_table *renamed;	/* by the current migration */
	size_t n_renamed;
	char *clash;		/* a generated name that clashes with another, or NULL */
	struct plan *plan;		/* for the checks verify runs (add_check) */
	struct dbphase_error *err;
};

/* ---- variables ---------------------------------------------------------- */

static struct var *
vars_find(const struct vars *vs, const char *name)
{
	size_t i;

	for (i = 0; i < vs->n; i++)
		if (strcmp(vs->v[i].name, name) == 0)
			return &vs->v[i];
	return NULL;
}

static struct var *
vars_slot(struct vars *vs, const char *name)
{
	struct var *v = vars_find(vs, name);
	size_t i;

	if (v) {
		for (i = 0; i < v->n; i++)
			free(v->values[i]);
		v->n = 0;
		return v;
	}
	XGROW(vs->v, vs->n, vs->alloc);
	v = &vs->v[vs->n++];
	memset(v, 0, sizeof(*v));
	v->name = xstrdup(name);
	return v;
}

static void
vars_set(struct vars *vs, const char *name, const char *value)
{
	struct var *v = vars_slot(vs, name);

	v->values = xrealloc(v->values, sizeof(char *));
	v->values[0] = xstrdup(value);
	v->n = 1;
	v->is_list = false;
}

/* Make name an empty list (replacing what it held). */
static void
vars_list(struct vars *vs, const char *name)
{
	vars_slot(vs, name)->is_list = true;
}

static void
vars_push(struct vars *vs, const char *name, const char *value)
{
	struct var *v = vars_find(vs, name);

	if (v == NULL) {
		vars_list(vs, name);
		v = vars_find(vs, name);
	}
	v->values = xrealloc(v->values, (v->n + 1) * sizeof(char *));
	v->values[v->n++] = xstrdup(value);
}

static void
vars_flag(struct vars *vs, const char *name, bool on)
{
	if (on)
		vars_set(vs, name, "1");
	else if (vars_find(vs, name))
		vars_slot(vs, name);	/* emptied: no value = off */
}

static bool
vars_has_flag(const struct vars *vs, const char *name)
{
	const struct var *v = vars_find(vs, name);

	return v && !v->is_list && v->n == 1 && strcmp(v->values[0], "1") == 0;
}

static void
vars_release(struct vars *vs)
{
	size_t i, j;

	for (i = 0; i < vs->n; i++) {
		for (j = 0; j < vs->v[i].n; j++)
			free(vs->v[i].values[j]);
		free(vs->v[i].values);
		free(vs->v[i].name);
	}
	free(vs->v);
	memset(vs, 0, sizeof(*vs));
}

/* ---- small renderers ---------------------------------------------------- */

static char *
quote_ident(enum db_backend b, const char *name)
{
	struct strbuf sb = STRBUF_INIT;

	dialect_quote_ident(b, &sb, name);
	return strbuf_detach(&sb);
}

static char *
quote_literal(enum db_backend b, const char *text)
{
	struct strbuf sb = STRBUF_INIT;

	dialect_quote_literal(b, &sb, text);
	return strbuf_detach(&sb);
}

static void
vars_set_ident(struct op_ctx *c, const char *var, const char *name)
{
	char *q = quote_ident(c->backend, name);
	char *lit_name = xasprintf("%s_literal", var);
	char *lit = quote_literal(c->backend, name);

	vars_set(&c->vars, var, q);
	vars_set(&c->vars, lit_name, lit);
	free(q);
	free(lit_name);
	free(lit);
}

static char *op_where(const struct op_ctx *c);

static uint32_t
fnv32(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

/*
 * The length of the longest start of s that has at most max bytes and
 * ends between two UTF-8 characters: a name cut inside a character is not
 * valid text, and no backend accepts it.
 */
static size_t
utf8_prefix_len(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n <= max)
		return n;
	for (n = max; n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80; n--)
		;
	return n;
}

/*
 * name if it has at most max bytes, else its start (whole characters) and
 * a hash of all of it, so that two long names that begin alike stay apart.
 * Caller frees.
 */
static char *
name_fit(const char *name, size_t max)
{
	if (strlen(name) <= max)
		return xstrdup(name);
	return xasprintf("%.*s_%08x", (int)utf8_prefix_len(name, max - 9), name, fnv32(name));
}

/*
 * Claim a generated name for key (what it was made from): a name that
 * stands for two different things is refused when the operation's rule
 * has run (c->clash), so that one object never silently replaces another.
 */
static void
claim_name(struct op_ctx *c, const char *name, const char *key)
{
	char *where = op_where(c);
	const char *other = model_claim_name(c->model, name, key, where);

	if (other && c->clash == NULL)
		c->clash = xasprintf("the name '%s' that dbphase makes for %s is already the "
				     "name it made for another object at %s; rename one of them",
				     name, key, other);
	free(where);
}

/*
 * A name for an object dbphase creates, "dbp_v<version>_<op>_<table>_<tag>",
 * shortened with a hash when it would pass NAME_MAX_LEN.  Caller frees.
 */
static char *
object_name(struct op_ctx *c, const char *table, const char *tag)
{
	/*
	 * Zero-padded, so that names sort as versions and operations do:
	 * PostgreSQL fires a table's triggers in name order, and a later
	 * operation's trigger may read what an earlier one wrote.
	 */
	char *full = xasprintf("dbp_v%03lld_%02zu_%s_%s", (long long)c->mig->version,
			       (size_t)(c->mop - c->mig->ops) + 1, table, tag);
	char *name = name_fit(full, NAME_MAX_LEN);
	char *key = xasprintf("'%s'", full);

	claim_name(c, name, key);
	free(key);
	free(full);
	return name;
}

static void
vars_set_object(struct op_ctx *c, const char *var, const char *table, const char *tag)
{
	char *name = object_name(c, table, tag);

	vars_set_ident(c, var, name);
	free(name);
}

static int
op_error(struct op_ctx *c, const struct ynode *at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
op_error(struct op_ctx *c, const struct ynode *at, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	int rc;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	rc = ydoc_errorf(&c->mig->doc, at ? at : c->mop->node, c->err, "%s: %s",
			 c->mop->kind, msg);
	free(msg);
	return rc;
}

/* "path:line:col" of the current operation; caller frees. */
static char *
op_where(const struct op_ctx *c)
{
	return xasprintf("%s:%d:%d", c->mig->path, c->mop->node->line, c->mop->node->col);
}

/* Note that this operation makes table (or its column) go away. */
static void
note_gone(struct op_ctx *c, const char *table, const char *column, const char *how)
{
	char *where = op_where(c);
	char *what = xasprintf("%s by %s at %s", how, c->mop->kind, where);

	model_note_gone(c->model, table, column, what);
	free(what);
	free(where);
}

static int
missing_table(struct op_ctx *c, const struct ynode *at, const char *name)
{
	const char *what = model_gone_what(c->model, name, NULL);

	if (what)
		return op_error(c, at, "table '%s' does not exist at version %lld: it was %s",
				name, (long long)c->mig->version, what);
	return op_error(c, at, "table '%s' does not exist at version %lld", name,
			(long long)c->mig->version);
}

static int
missing_column(struct op_ctx *c, const struct ynode *at, const struct model_table *t,
	       const char *name)
{
	const char *what = model_gone_what(c->model, t->name, name);

	if (what)
		return op_error(c, at,
				"column '%s' does not exist in table '%s' at version %lld: it was %s",
				name, t->name, (long long)c->mig->version, what);
	return op_error(c, at, "column '%s' does not exist in table '%s' at version %lld",
			name, t->name, (long long)c->mig->version);
}

/*
 * A string or boolean argument; a wrong kind of value is refused in the
 * operation's words: "add_column: 'type' must be a string, not a list".
 * what names the value ("'type'", "a column name").
 */
static int
arg_str(struct op_ctx *c, const struct ynode *v, const char *what, const char **out)
{
	char *text = xasprintf("%s: %s", c->mop->kind, what);
	int rc = ynode_str(&c->mig->doc, v, text, out, c->err);

	free(text);
	return rc;
}

static int
arg_bool(struct op_ctx *c, const struct ynode *v, const char *what, bool *out)
{
	char *text = xasprintf("%s: %s", c->mop->kind, what);
	int rc = ynode_bool(&c->mig->doc, v, text, out, c->err);

	free(text);
	return rc;
}

/* "'name'" for messages; caller frees. */
static char *
quoted(const char *name)
{
	return xasprintf("'%s'", name);
}

/* ---- expressions -------------------------------------------------------- */

/*
 * An expression is put in parentheses and inside statements, so it must be
 * one expression, read as the backend reads it: no unclosed string or
 * comment, balanced parentheses, no ';'.
 */
static int
expr_check(struct op_ctx *c, const struct ynode *node, const char *what)
{
	const char *why;
	struct sqllex_token at;

	if (sqllex_expr_scan(c->backend, node->scalar, NULL, NULL, &why, &at) == 0)
		return 0;
	return op_error(c, node, "%s is not one SQL expression for %s: %s (line %u, column %u "
			"of the expression)", what, db_backend_name(c->backend), why, at.line,
			at.column);
}

/*
 * An expression: one string, or a map of backend (or "all") to string.
 * checked: whether it is checked as one expression (expr_check).
 */
static int
expr_text_for(struct op_ctx *c, const struct ynode *node, const char *what, bool checked,
	      const char **out)
{
	const struct ynode *v;

	if (node->kind == YNODE_SCALAR) {
		*out = node->scalar;
		return checked ? expr_check(c, node, what) : 0;
	}
	if (node->kind != YNODE_MAP)
		return op_error(c, node, "%s must be an SQL expression (a string, or a map of backend to string)",
				what);
	for (size_t i = 0; i < node->n; i++) {
		const char *k = node->keys[i]->scalar;

		if (strcmp(k, "all") != 0 && db_backend_from_name(k) < 0)
			return op_error(c, node->keys[i],
					"unknown backend '" EXCERPT_FMT "' in %s; expected all, postgresql,"
					" mysql or sqlite", EXCERPT(k), what);
		if (node->items[i]->kind != YNODE_SCALAR)
			return op_error(c, node->items[i], "%s for '%s' must be a string", what, k);
	}
	/* Any spelling of the backend (postgres, pgsql, mariadb, sqlite3...) counts. */
	v = NULL;
	for (size_t i = 0; i < node->n && v == NULL; i++)
		if (db_backend_from_name(node->keys[i]->scalar) == (int)c->backend)
			v = node->items[i];
	if (v == NULL)
		v = ynode_get(node, "all");
	if (v == NULL)
		return op_error(c, node, "%s has no expression for %s (add '%s:' or 'all:')",
				what, db_backend_name(c->backend), db_backend_name(c->backend));
	*out = v->scalar;
	return checked ? expr_check(c, v, what) : 0;
}

static int
expr_text(struct op_ctx *c, const struct ynode *node, const char *what, const char **out)
{
	return expr_text_for(c, node, what, true, out);
}

/* The columns of t whose names occur in an expression, in any role. */
struct expr_names {
	const struct model_table *t;
	bool *seen;
};

static void
expr_names_add(void *arg, const struct sqllex *lx, const struct sqllex_token *tok,
	       enum sqllex_role role)
{
	struct expr_names *en = arg;
	char *name = sqllex_ident(lx, tok);
	size_t i;

	for (i = 0; i < en->t->n_columns; i++)
		if (strcasecmp(en->t->columns[i].name, name) == 0)
			en->seen[i] = true;
	free(name);
}

/*
 * An expression that a trigger evaluates against the row being written,
 * exactly as the author wrote it: nothing in its text is rewritten, so a
 * type, keyword or function spelt like a column (CAST(x AS date) beside a
 * column "date") keeps its meaning.  The row becomes a one-row table whose
 * columns have the row's names, and the expression is read from it:
 *   PostgreSQL       (SELECT expr FROM (SELECT NEW.*) AS dbp_row)
 *   MariaDB, SQLite  (SELECT expr FROM (SELECT NEW.`a` AS `a`, ...) AS dbp_row)
 * MariaDB and SQLite have no NEW.*: the columns listed are those whose
 * names occur anywhere in the expression (a superset of what it reads;
 * none, and the expression reads no column).  Names resolve as in the
 * statements the batches run (UPDATE t SET c = expr), in subqueries too.
 * A line comment at the end of the expression would swallow the rest,
 * hence a new line after it.
 */
static void
expr_on_row(enum db_backend b, const char *expr, const struct model_table *t, const char *row,
	    struct strbuf *out)
{
	const char *nl = sqllex_has_line_comment(b, expr) ? "\n" : "";
	struct expr_names en = { t, xcalloc(t->n_columns + 1, sizeof(bool)) };
	const char *why;
	size_t i, n = 0;

	if (b == DB_BACKEND_POSTGRESQL) {
		strbuf_addf(out, "(SELECT %s%s FROM (SELECT %s.*) AS ", expr, nl, row);
		dialect_quote_ident(b, out, "dbp_row");
		strbuf_addch(out, ')');
		free(en.seen);
		return;
	}
	sqllex_expr_scan(b, expr, expr_names_add, &en, &why, NULL);
	for (i = 0; i < t->n_columns; i++)
		n += en.seen[i];
	if (n == 0) {
		strbuf_addf(out, "(%s%s)", expr, nl);
		free(en.seen);
		return;
	}
	strbuf_addf(out, "(SELECT %s%s FROM (SELECT ", expr, nl);
	for (i = 0, n = 0; i < t->n_columns; i++) {
		char *q;

		if (!en.seen[i])
			continue;
		q = quote_ident(b, t->columns[i].name);
		strbuf_addf(out, "%s%s.%s AS %s", n++ ? ", " : "", row, q, q);
		free(q);
	}
	strbuf_addstr(out, ") AS ");
	dialect_quote_ident(b, out, "dbp_row");
	strbuf_addch(out, ')');
	free(en.seen);
}

struct expr_deps {
	enum db_backend backend;
	const struct model_table *t;
	struct strbuf *deps;
};

static void
expr_deps_name(void *arg, const struct sqllex *lx, const struct sqllex_token *tok,
	       enum sqllex_role role)
{
	struct expr_deps *d = arg;
	char *name, *q;
	size_t i;

	if (role != SQLLEX_ROLE_NAME)
		return;
	name = sqllex_ident(lx, tok);
	for (i = 0; i < d->t->n_columns; i++)
		if (tok->kind == SQLLEX_QUOTED ? strcmp(d->t->columns[i].name, name) == 0
					       : strcasecmp(d->t->columns[i].name, name) == 0)
			break;
	if (i < d->t->n_columns) {
		q = quote_ident(d->backend, d->t->columns[i].name);
		if (!strstr(d->deps->buf, q))
			strbuf_addf(d->deps, "%s%s", d->deps->len ? ", " : "", q);
		free(q);
	}
	free(name);
}

/*
 * Append to deps (comma-separated, quoted) the columns of t that expr
 * reads: its names in a column's place, never a type, keyword, function
 * or alias spelt like one (sqllex_expr_scan).
 */
static void
expr_deps(enum db_backend b, const char *expr, const struct model_table *t, struct strbuf *deps)
{
	struct expr_deps d = { b, t, deps };
	const char *why;

	sqllex_expr_scan(b, expr, expr_deps_name, &d, &why, NULL);
}

/* ---- column definitions ------------------------------------------------- */

static bool
is_number(const char *s)
{
	char *end;

	if (*s == '\0')
		return false;
	strtod(s, &end);
	return *end == '\0';
}

/* Render a 'default:' node for every backend into col->default_sql. */
static int
column_default(struct op_ctx *c, const struct ynode *node, struct model_column *col)
{
	int b;

	if (node->kind == YNODE_SCALAR && ynode_is_null(node))
		return 0;
	for (b = 0; b < DB_BACKEND__COUNT; b++) {
		enum db_backend saved = c->backend;
		const char *text;
		int rc;

		if (node->kind == YNODE_MAP) {
			const struct ynode *e = ynode_get(node, "expr");

			if (e == NULL || node->n != 1)
				return op_error(c, node, "a default is a value, or {expr: SQL expression}");
			c->backend = (enum db_backend)b;
			/* Checked for the backend planned for, where it will run. */
			rc = expr_text_for(c, e, "the default", b == (int)saved, &text);
			c->backend = saved;
			if (rc < 0)
				return rc;
			if (b == DB_BACKEND_POSTGRESQL ||
			    (b == DB_BACKEND_MYSQL && strcasecmp(text, "CURRENT_TIMESTAMP") == 0))
				col->default_sql[b] = xstrdup(text);
			else
				col->default_sql[b] = xasprintf("(%s)", text);
			if (b == DB_BACKEND_SQLITE && strcasecmp(text, "CURRENT_TIMESTAMP") == 0) {
				free(col->default_sql[b]);
				col->default_sql[b] = xstrdup("CURRENT_TIMESTAMP");
			}
		} else if (node->kind == YNODE_SCALAR) {
			if (node->plain && is_number(node->scalar))
				col->default_sql[b] = xstrdup(node->scalar);
			else if (node->plain && (strcmp(node->scalar, "true") == 0 ||
						 strcmp(node->scalar, "false") == 0))
				col->default_sql[b] = xstrdup(strcmp(node->scalar, "true") == 0 ? "TRUE" : "FALSE");
			else
				col->default_sql[b] = quote_literal((enum db_backend)b, node->scalar);
		} else {
			return op_error(c, node, "a default is a value, or {expr: SQL expression}");
		}
	}
	return 0;
}

static int
parse_column_def(struct op_ctx *c, const struct ynode *node, struct model_column *col)
{
	static const char *const keys[] = { "name", "type", "nullable", "default",
					    "primary_key", "autoincrement", NULL };
	const struct ynode *v;
	const char *s;
	size_t i;
	int rc;

	memset(col, 0, sizeof(*col));
	col->nullable = true;
	if (node->kind != YNODE_MAP)
		return op_error(c, node, "a column must be a mapping with 'name' and 'type'");
	for (i = 0; i < node->n; i++) {
		const char *const *k;

		for (k = keys; *k; k++)
			if (strcmp(*k, node->keys[i]->scalar) == 0)
				break;
		if (*k == NULL)
			return op_error(c, node->keys[i],
					"unknown column field '" EXCERPT_FMT "'; expected name, type,"
					" nullable, default, primary_key, autoincrement",
					EXCERPT(node->keys[i]->scalar));
	}
	if (!(v = ynode_get(node, "name")))
		return op_error(c, node, "a column needs 'name'");
	if ((rc = arg_str(c, v, "'name'", &s)) < 0)
		return rc;
	col->name = xstrdup(s);
	if (!(v = ynode_get(node, "type")))
		return op_error(c, node, "column '%s' needs 'type'", col->name);
	if ((rc = arg_str(c, v, "'type'", &s)) < 0)
		return rc;
	if (!type_valid(s))
		return op_error(c, v,
				"unknown type '%s'; expected integer, bigint, smallint, boolean, text, varchar(n), numeric(p,s), real, double, date, timestamp, timestamptz, bytes, json or uuid",
				s);
	col->type = xstrdup(s);
	if ((v = ynode_get(node, "nullable")) &&
	    (rc = arg_bool(c, v, "'nullable'", &col->nullable)) < 0)
		return rc;
	if ((v = ynode_get(node, "primary_key")) &&
	    (rc = arg_bool(c, v, "'primary_key'", &col->primary_key)) < 0)
		return rc;
	if ((v = ynode_get(node, "autoincrement")) &&
	    (rc = arg_bool(c, v, "'autoincrement'", &col->autoincrement)) < 0)
		return rc;
	if (col->primary_key)
		col->nullable = false;
	if (col->autoincrement && !(col->primary_key && type_is_integer(col->type)))
		return op_error(c, v, "column '%s': autoincrement needs an integer primary key",
				col->name);
	if ((v = ynode_get(node, "default")) && (rc = column_default(c, v, col)) < 0)
		return rc;
	col->added_in = c->mig->version;
	return 0;
}

/*
 * "name" TYPE [NOT NULL] [DEFAULT x]; with force_null the NOT NULL is left
 * out.  inline_pk writes a single autoincrement key in the backend's way.
 */
static void
render_column_def(enum db_backend b, const struct model_column *col, bool force_null,
		  bool inline_pk, bool with_default, struct strbuf *out)
{
	const char *expected;

	dialect_quote_ident(b, out, col->name);
	strbuf_addch(out, ' ');
	if (col->autoincrement && inline_pk && b == DB_BACKEND_SQLITE) {
		/* NOT NULL too, so that introspection tells what the model says. */
		strbuf_addstr(out, "INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT");
		return;
	}
	type_render(col->type, b, out, &expected);
	if (col->autoincrement && b == DB_BACKEND_POSTGRESQL) {
		strbuf_addstr(out, " GENERATED BY DEFAULT AS IDENTITY");
		return;
	}
	if (!col->nullable && !force_null)
		strbuf_addstr(out, " NOT NULL");
	if (col->autoincrement && b == DB_BACKEND_MYSQL)
		strbuf_addstr(out, " AUTO_INCREMENT");
	if (col->default_sql[b] && with_default)
		strbuf_addf(out, " DEFAULT %s", col->default_sql[b]);
}

static char *
column_def_text(enum db_backend b, const struct model_column *col, bool force_null)
{
	struct strbuf sb = STRBUF_INIT;

	render_column_def(b, col, force_null, false, true, &sb);
	return strbuf_detach(&sb);
}

/*
 * A column that batches will fill: nullable and without a default, or
 * adding it would set every existing row to the default and the backfill
 * would find nothing to do.  The default (and NOT NULL) come at contract.
 */
static char *
shadow_def_text(enum db_backend b, const struct model_column *col)
{
	struct strbuf sb = STRBUF_INIT;

	render_column_def(b, col, true, false, false, &sb);
	return strbuf_detach(&sb);
}

/* Variables for the column's final default: flag has_default, {default_value}. */
static void
set_final_default(struct op_ctx *c, const struct model_column *col)
{
	vars_flag(&c->vars, "has_default", col->default_sql[c->backend] != NULL);
	vars_set(&c->vars, "default_value",
		 col->default_sql[c->backend] ? col->default_sql[c->backend] : "");
}

/* The column list and key of CREATE TABLE for t's current columns. */
static char *
table_body(enum db_backend b, const struct model_table *t)
{
	struct strbuf sb = STRBUF_INIT;
	const struct model_column *pk[64];
	size_t n_pk = model_primary_key(t, pk, 64), i;
	bool sqlite_autoinc = b == DB_BACKEND_SQLITE && n_pk == 1 && pk[0]->autoincrement;

	for (i = 0; i < t->n_columns; i++) {
		if (i)
			strbuf_addstr(&sb, ", ");
		render_column_def(b, &t->columns[i], false, true, true, &sb);
	}
	if (n_pk > 0 && !sqlite_autoinc) {
		strbuf_addstr(&sb, ", PRIMARY KEY (");
		for (i = 0; i < n_pk; i++) {
			if (i)
				strbuf_addstr(&sb, ", ");
			dialect_quote_ident(b, &sb, pk[i]->name);
		}
		strbuf_addch(&sb, ')');
	}
	return strbuf_detach(&sb);
}

/* ---- generic parameter checks ------------------------------------------- */

/* The text of a scalar argument, or the 'name' of a column definition. */
static const char *
arg_string(struct op_ctx *c, const char *name)
{
	const struct ynode *v = ynode_get(c->mop->args, name);

	if (v && v->kind == YNODE_MAP)
		v = ynode_get(v, "name");
	return v && v->kind == YNODE_SCALAR ? v->scalar : NULL;
}

static struct model_table *
arg_table(struct op_ctx *c)
{
	const char *name = arg_string(c, "table");

	if (name == NULL)
		name = arg_string(c, "name");
	return name ? model_table(c->model, name) : NULL;
}

static int
param_names(struct op_ctx *c, struct strbuf *sb)
{
	size_t i;

	for (i = 0; i < c->cop->n_params; i++)
		strbuf_addf(sb, "%s%s", i ? ", " : "", c->cop->params[i].name);
	return 0;
}

static bool
valid_identifier(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= NAME_MAX_LEN && strchr(s, '\0') == s + n;
}

/*
 * Check v, the value of parameter p, and set its variables; what is "'p'".
 * sb is scratch space owned by the caller, who releases it on every path.
 */
static int
check_param_value(struct op_ctx *c, const struct catalog_param *p, const struct ynode *v,
		  const char *what, struct strbuf *sb)
{
	struct model_table *t = arg_table(c);
	const char *s;
	size_t i;
	bool flag;
	int rc = 0;

	switch (p->kind) {
	case PARAM_IDENTIFIER:
	case PARAM_TABLE:
	case PARAM_NEW_TABLE:
	case PARAM_COLUMN:
	case PARAM_NEW_COLUMN:
		if ((rc = arg_str(c, v, what, &s)) < 0)
			return rc;
		if (!valid_identifier(s))
			return op_error(c, v, "'" EXCERPT_FMT "' is not a valid name (1 to %d"
					" characters)", EXCERPT(s), NAME_MAX_LEN);
		if (p->kind == PARAM_TABLE && !model_table(c->model, s))
			return missing_table(c, v, s);
		if (p->kind == PARAM_TABLE) {
			for (i = 0; i < c->n_renamed; i++)
				if (strcmp(c->renamed[i].name, s) == 0)
					return op_error(c, v,
							"table '%s' is a view of '%s' until the contract "
							"of this migration (rename_table at %s): change "
							"it in a later migration",
							s, c->renamed[i].from, c->renamed[i].where);
		}
		if (p->kind == PARAM_NEW_TABLE && model_table(c->model, s))
			return op_error(c, v, "table '%s' already exists at version %lld", s,
					(long long)c->mig->version);
		if ((p->kind == PARAM_COLUMN || p->kind == PARAM_NEW_COLUMN) && t == NULL)
			return op_error(c, v, "'%s' needs an existing 'table'", p->name);
		if (p->kind == PARAM_COLUMN && !model_column(t, s))
			return missing_column(c, v, t, s);
		if (p->kind == PARAM_NEW_COLUMN && model_column(t, s))
			return op_error(c, v, "column '%s' already exists in table '%s'", s, t->name);
		vars_set_ident(c, p->name, s);
		if (p->kind == PARAM_COLUMN) {
			const char *expected;
			char *tv = xasprintf("%s_type", p->name);

			type_render(model_column(t, s)->type, c->backend, sb, &expected);
			vars_set(&c->vars, tv, sb->buf);
			free(tv);
		}
		break;
	case PARAM_COLUMNS:
		if (v->kind != YNODE_SEQ || v->n == 0)
			return op_error(c, v, "'%s' must be a non-empty list of column names", p->name);
		if (t == NULL)
			return op_error(c, v, "'%s' needs an existing 'table'", p->name);
		for (i = 0; i < v->n; i++) {
			if ((rc = arg_str(c, v->items[i], "a column name", &s)) < 0)
				return rc;
			if (!model_column(t, s))
				return missing_column(c, v->items[i], t, s);
			if (i)
				strbuf_addstr(sb, ", ");
			dialect_quote_ident(c->backend, sb, s);
		}
		vars_set(&c->vars, p->name, sb->buf);
		break;
	case PARAM_COLUMN_DEF: {
		struct model_column col;
		char *def, *name;

		rc = parse_column_def(c, v, &col);
		if (rc == 0 && t && model_column(t, col.name))
			rc = op_error(c, v, "column '%s' already exists in table '%s'", col.name, t->name);
		if (rc == 0) {
			vars_set_ident(c, p->name, col.name);
			name = xasprintf("%s_def", p->name);
			def = column_def_text(c->backend, &col, false);
			vars_set(&c->vars, name, def);
			free(def);
			free(name);
			name = xasprintf("%s_def_nullable", p->name);
			def = column_def_text(c->backend, &col, true);
			vars_set(&c->vars, name, def);
			free(def);
			free(name);
		}
		model_column_release(&col);
		break;
	}
	case PARAM_COLUMN_DEFS:
		if (v->kind != YNODE_SEQ || v->n == 0)
			return op_error(c, v, "'%s' must be a non-empty list of columns", p->name);
		for (i = 0; i < v->n; i++) {
			struct model_column col;

			rc = parse_column_def(c, v->items[i], &col);
			model_column_release(&col);
			if (rc < 0)
				return rc;
		}
		break;
	case PARAM_TYPE:
		if ((rc = arg_str(c, v, what, &s)) < 0)
			return rc;
		{
			const char *expected;

			if (!type_render(s, c->backend, sb, &expected))
				rc = op_error(c, v, "unknown type '%s'; expected %s", s, expected);
			else
				vars_set(&c->vars, p->name, sb->buf);
		}
		break;
	case PARAM_EXPR:
		if ((rc = expr_text(c, v, p->name, &s)) == 0)
			vars_set(&c->vars, p->name, s);
		break;
	case PARAM_ASSIGNMENTS:
		if (v->kind != YNODE_MAP || v->n == 0)
			return op_error(c, v, "'%s' must map columns to SQL expressions", p->name);
		if (t == NULL)
			return op_error(c, v, "'%s' needs an existing 'table'", p->name);
		for (i = 0; i < v->n && rc == 0; i++) {
			s = v->keys[i]->scalar;
			if (!model_column(t, s))
				return missing_column(c, v->keys[i], t, s);
			if (i)
				strbuf_addstr(sb, ", ");
			dialect_quote_ident(c->backend, sb, s);
			rc = expr_text(c, v->items[i], "the value", &s);
			if (rc == 0)
				strbuf_addf(sb, " = %s", s);
		}
		if (rc == 0)
			vars_set(&c->vars, p->name, sb->buf);
		break;
	case PARAM_STRING:
		if ((rc = arg_str(c, v, what, &s)) == 0) {
			char *lit = quote_literal(c->backend, s);

			vars_set(&c->vars, p->name, lit);
			free(lit);
		}
		break;
	case PARAM_BOOL:
		if ((rc = arg_bool(c, v, what, &flag)) == 0)
			vars_flag(&c->vars, p->name, flag);
		break;
	case PARAM_PHASE:
		if ((rc = arg_str(c, v, what, &s)) < 0)
			return rc;
		if (phase_from_name(s) < 0)
			return op_error(c, v, "unknown phase '%s'; expected expand, migrate or contract", s);
		{
			char *f = xasprintf("%s_%s", p->name, s);

			vars_flag(&c->vars, f, true);
			free(f);
		}
		break;
	case PARAM_VALUE:
		break;
	case PARAM_SQL:
		/* One statement or a list; checked and used by op_sql. */
		if (v->kind == YNODE_MAP)
			return op_error(c, v, "'%s' must be an SQL statement or a list of them", p->name);
		break;
	}
	return rc;
}

static int
check_param(struct op_ctx *c, const struct catalog_param *p, const struct ynode *v)
{
	char *what = quoted(p->name);
	struct strbuf sb = STRBUF_INIT;
	int rc = check_param_value(c, p, v, what, &sb);

	strbuf_release(&sb);
	free(what);
	return rc;
}

static int
check_params(struct op_ctx *c)
{
	const struct ynode *args = c->mop->args;
	struct strbuf names = STRBUF_INIT;
	size_t i;
	int rc = 0;

	if (args->kind != YNODE_MAP) {
		param_names(c, &names);
		rc = op_error(c, args, "arguments must be a mapping of: %s", names.buf);
		goto out;
	}
	for (i = 0; i < args->n; i++) {
		if (!catalog_op_param(c->cop, args->keys[i]->scalar)) {
			param_names(c, &names);
			rc = op_error(c, args->keys[i], "unknown field '" EXCERPT_FMT "'; expected"
				      " one of: %s", EXCERPT(args->keys[i]->scalar), names.buf);
			goto out;
		}
	}
	/* 'table' first: other parameters are checked against it. */
	for (int pass = 0; pass < 2 && rc == 0; pass++) {
		for (i = 0; i < c->cop->n_params && rc == 0; i++) {
			const struct catalog_param *p = &c->cop->params[i];
			const struct ynode *v = ynode_get(args, p->name);
			bool is_table = strcmp(p->name, "table") == 0;

			if ((pass == 0) != is_table)
				continue;
			if (v == NULL || (v->kind == YNODE_SCALAR && ynode_is_null(v) &&
					  p->kind != PARAM_SQL)) {
				if (p->required)
					rc = op_error(c, c->mop->node, "missing required field '%s'", p->name);
				continue;
			}
			rc = check_param(c, p, v);
		}
	}
out:
	strbuf_release(&names);
	return rc;
}

/* ---- operation rules ---------------------------------------------------- */

static int
op_create_table(struct op_ctx *c)
{
	const struct ynode *cols = ynode_get(c->mop->args, "columns");
	const char *name = arg_string(c, "name");
	struct model_table *t;
	size_t i, n_pk = 0;
	char *body;

	t = model_add_table(c->model, name);
	t->created_in = c->mig->version;
	for (i = 0; i < cols->n; i++) {
		struct model_column col;
		int rc = parse_column_def(c, cols->items[i], &col);

		if (rc == 0 && model_column(t, col.name))
			rc = op_error(c, cols->items[i], "column '%s' is listed twice", col.name);
		if (rc < 0) {
			model_column_release(&col);
			return rc;
		}
		n_pk += col.primary_key;
		model_add_column(t, &col);
		model_column_release(&col);
	}
	for (i = 0; i < t->n_columns; i++)
		if (t->columns[i].autoincrement && n_pk > 1)
			return op_error(c, cols, "autoincrement needs a single-column primary key");
	body = table_body(c->backend, t);
	vars_set(&c->vars, "columns", body);
	free(body);
	return 0;
}

static int
op_drop_table(struct op_ctx *c)
{
	note_gone(c, arg_string(c, "name"), NULL, "dropped");
	model_drop_table(c->model, arg_string(c, "name"));
	return 0;
}

static int
op_rename_table(struct op_ctx *c)
{
	struct model_table *t = model_table(c->model, arg_string(c, "name"));
	const char *to = arg_string(c, "to");
	struct strbuf cols = STRBUF_INIT, news = STRBUF_INIT, assign = STRBUF_INIT,
		      match = STRBUF_INIT;
	const struct model_column *pk[64];
	size_t n_pk = model_primary_key(t, pk, 64), i;

	/*
	 * Old code uses the old name until contract; new code uses the new
	 * name, a view of the table.  SQLite's views are read-only, so its
	 * view gets INSTEAD OF triggers that write through to the table.
	 */
	if (c->backend == DB_BACKEND_SQLITE && n_pk == 0)
		return op_error(c, NULL, "table '%s' has no primary key, which SQLite's "
				"writable view needs to find rows", t->name);
	for (i = 0; i < t->n_columns; i++) {
		const char *def = t->columns[i].default_sql[c->backend];
		char *q = quote_ident(c->backend, t->columns[i].name);

		strbuf_addf(&cols, "%s%s", i ? ", " : "", q);
		/*
		 * An INSTEAD OF trigger sees NULL for a column the insert left
		 * out: the table's default stands in for it, as it would on
		 * the table itself (an explicit NULL gets the default too).
		 */
		if (def)
			strbuf_addf(&news, "%sCOALESCE(NEW.%s, %s)", i ? ", " : "", q, def);
		else
			strbuf_addf(&news, "%sNEW.%s", i ? ", " : "", q);
		strbuf_addf(&assign, "%s%s = NEW.%s", i ? ", " : "", q, q);
		free(q);
	}
	for (i = 0; i < n_pk; i++) {
		char *q = quote_ident(c->backend, pk[i]->name);

		strbuf_addf(&match, "%s%s = OLD.%s", i ? " AND " : "", q, q);
		free(q);
	}
	vars_set(&c->vars, "columns", cols.buf);
	vars_set(&c->vars, "new_columns", news.buf);
	vars_set(&c->vars, "assign_new", assign.buf);
	vars_set(&c->vars, "key_match", match.buf);
	vars_set_object(c, "view_old", to, "view");	/* MariaDB's view, moved aside */
	vars_set_object(c, "trigger_ins", to, "view_i");
	vars_set_object(c, "trigger_upd", to, "view_u");
	vars_set_object(c, "trigger_del", to, "view_d");
	strbuf_release(&cols);
	strbuf_release(&news);
	strbuf_release(&assign);
	strbuf_release(&match);
	{
		char *how = xasprintf("renamed to '%s'", to);
		struct renamed_table *r;

		note_gone(c, t->name, NULL, how);
		free(how);
		model_rename_table_refs(c->model, t->name, to);
		c->renamed = xrealloc(c->renamed, (c->n_renamed + 1) * sizeof(*c->renamed));
		r = &c->renamed[c->n_renamed++];
		r->name = xstrdup(to);
		r->from = xstrdup(t->name);
		r->where = op_where(c);
	}
	free(t->name);
	t->name = xstrdup(to);
	return 0;
}

static int
op_add_column(struct op_ctx *c)
{
	struct model_table *t = arg_table(c);
	struct model_column col;
	bool ready;
	int rc = parse_column_def(c, ynode_get(c->mop->args, "column"), &col);

	if (rc < 0) {
		model_column_release(&col);
		return rc;
	}
	if (col.primary_key || col.autoincrement) {
		model_column_release(&col);
		return op_error(c, NULL, "a primary key cannot be added to an existing table");
	}
	/*
	 * Ready at once: nullable, or with a default, or on a table this
	 * migration creates (no old code writes to it, so nothing can fail).
	 */
	ready = col.nullable || col.default_sql[c->backend] != NULL ||
		t->created_in == c->mig->version;
	vars_flag(&c->vars, "ready", ready);
	vars_set_object(c, "check", t->name, "nn");
	/*
	 * SQLite adds a column to existing rows only with a constant default:
	 * not an expression, nor CURRENT_TIME, CURRENT_DATE, CURRENT_TIMESTAMP.
	 */
	if (c->backend == DB_BACKEND_SQLITE && col.default_sql[c->backend] &&
	    (col.default_sql[c->backend][0] == '(' ||
	     strncasecmp(col.default_sql[c->backend], "CURRENT_", 8) == 0)) {
		model_column_release(&col);
		return op_error(c, ynode_get(c->mop->args, "column"),
				"SQLite cannot add a column whose default is an expression or "
				"CURRENT_TIME/DATE/TIMESTAMP to an existing table; give a constant "
				"default, or add it nullable and backfill it");
	}
	if (!ready) {
		struct pending_fill *f;

		c->fills = xrealloc(c->fills, (c->n_fills + 1) * sizeof(*c->fills));
		f = &c->fills[c->n_fills++];
		f->table = xstrdup(t->name);
		f->column = xstrdup(col.name);
		f->at = c->mop->node;
		f->filled = false;
	}
	model_add_column(t, &col);
	model_column_release(&col);
	return 0;
}

static int
op_drop_column(struct op_ctx *c)
{
	struct model_table *t = arg_table(c);
	const char *name = arg_string(c, "column");
	const struct model_column *col = model_column(t, name);
	size_t i, j;

	if (col->primary_key)
		return op_error(c, ynode_get(c->mop->args, "column"),
				"column '%s' is part of the primary key of '%s'", name, t->name);
	/*
	 * From migrate on, new code's inserts leave the column out: NOT NULL
	 * without a default would refuse them, so it goes in expand.
	 */
	vars_flag(&c->vars, "relax", !col->nullable && col->default_sql[c->backend] == NULL);
	{
		char *def = column_def_text(c->backend, col, true);

		vars_set(&c->vars, "column_def_nullable", def);
		free(def);
		/* What downgrade restores. */
		def = column_def_text(c->backend, col, false);
		vars_set(&c->vars, "old_column_def", def);
		free(def);
	}
	/*
	 * Indexes that use the column go with it: SQLite refuses to drop an
	 * indexed column, and MariaDB would keep a multi-column index without
	 * it where PostgreSQL drops the index.
	 */
	vars_list(&c->vars, "indexes");
	for (i = 0; i < t->n_indexes; i++)
		for (j = 0; j < t->indexes[i].n_columns; j++)
			if (strcmp(t->indexes[i].columns[j], name) == 0) {
				char *q = quote_ident(c->backend, t->indexes[i].name);

				vars_push(&c->vars, "indexes", q);
				free(q);
			}
	note_gone(c, t->name, name, "dropped");
	model_drop_column(t, name);
	return 0;
}

/* ---- constraints carried over to a column that replaces another ---------- */

/*
 * rename_column and change_type replace a column with another (a new name,
 * or a shadow of the new type) that takes over at contract.  A check or
 * foreign key that uses the old column must hold on the new one, with no
 * moment in between where it does not:
 *   PostgreSQL  a rename gets a copy of each on the new column in migrate,
 *               once the rows are copied (NOT VALID, then VALIDATE, without
 *               blocking writes), which takes the name at contract when the
 *               old one goes with its column; a check's copy is written by
 *               PostgreSQL itself, from the check with the columns' names
 *               traded for a moment.  A type change keeps the column's
 *               name, so the check is added again as PostgreSQL prints it,
 *               in the contract's transaction, and validated after it.
 *   MariaDB     the triggers that stand in for a check move after the
 *               rename's copying triggers in expand (they fire in creation
 *               order, and would miss what new code writes), and read the
 *               new column from contract on; a foreign key is dropped and added
 *               again on the new column (tables locked, so no write comes in
 *               between).
 *   SQLite      its triggers, for checks and foreign keys, must go before
 *               the old column can be dropped; they come back on the new one.
 * A check's expression is never rewritten: the triggers evaluate it on a
 * row whose columns carry the names it was written with.  A foreign key
 * whose column changes type is refused: the key's two sides must have
 * matching types on MariaDB, so it is dropped before and added after.
 */

/*
 * "(SELECT (check) FROM (SELECT NEW."now" AS "then", ...) AS "table")": the
 * check evaluated on the row being written, each column it reads under the
 * name it had when the check was written.
 */
static char *
check_on_row(enum db_backend b, const struct model_constraint *k)
{
	struct strbuf sb = STRBUF_INIT;
	size_t i, n = 0;

	strbuf_addf(&sb, "(SELECT (%s) FROM (SELECT ", k->check);
	for (i = 0; i < k->n_row; i++) {
		if (!model_check_reads(k, i))
			continue;
		strbuf_addstr(&sb, n++ ? ", NEW." : "NEW.");
		dialect_quote_ident(b, &sb, k->row_columns[i]);
		strbuf_addstr(&sb, " AS ");
		dialect_quote_ident(b, &sb, k->row_names[i]);
	}
	if (n == 0)
		strbuf_addstr(&sb, "NULL AS dbp_none");
	strbuf_addstr(&sb, ") AS ");
	dialect_quote_ident(b, &sb, k->row_table);
	strbuf_addch(&sb, ')');
	return strbuf_detach(&sb);
}

static void
push_ident(struct op_ctx *c, const char *var, const char *name)
{
	char *q = quote_ident(c->backend, name);

	vars_push(&c->vars, var, q);
	free(q);
}

static void
push_literal(struct op_ctx *c, const char *var, const char *text)
{
	char *q = quote_literal(c->backend, text);

	vars_push(&c->vars, var, q);
	free(q);
}

static void
push_columns(struct op_ctx *c, const char *var, char *const *names, size_t n)
{
	struct strbuf sb = STRBUF_INIT;
	size_t i;

	for (i = 0; i < n; i++) {
		if (i)
			strbuf_addstr(&sb, ", ");
		dialect_quote_ident(c->backend, &sb, names[i]);
	}
	vars_push(&c->vars, var, sb.buf);
	strbuf_release(&sb);
}

/* "cols IS NOT NULL AND NOT EXISTS (parent row)" for NEW, as add_foreign_key writes it. */
static char *
fk_missing_sql(enum db_backend b, const struct model_constraint *k)
{
	struct strbuf sb = STRBUF_INIT;
	size_t i;

	for (i = 0; i < k->n_columns; i++) {
		strbuf_addstr(&sb, i ? " AND NEW." : "(NEW.");
		dialect_quote_ident(b, &sb, k->columns[i]);
		strbuf_addstr(&sb, " IS NOT NULL");
	}
	strbuf_addstr(&sb, ") AND NOT EXISTS (SELECT 1 FROM ");
	dialect_quote_ident(b, &sb, k->ref_table);
	strbuf_addstr(&sb, " WHERE ");
	for (i = 0; i < k->n_columns; i++) {
		if (i)
			strbuf_addstr(&sb, " AND ");
		dialect_quote_ident(b, &sb, k->ref_columns[i]);
		strbuf_addstr(&sb, " = NEW.");
		dialect_quote_ident(b, &sb, k->columns[i]);
	}
	strbuf_addch(&sb, ')');
	return strbuf_detach(&sb);
}

/* 'ALTER TABLE "t" ADD CONSTRAINT "name" ' as a literal, for EXECUTE. */
static void
push_add_prefix(struct op_ctx *c, const char *var, const char *table, const char *name)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_addstr(&sb, "ALTER TABLE ");
	dialect_quote_ident(c->backend, &sb, table);
	strbuf_addstr(&sb, " ADD CONSTRAINT ");
	dialect_quote_ident(c->backend, &sb, name);
	strbuf_addch(&sb, ' ');
	push_literal(c, var, sb.buf);
	strbuf_release(&sb);
}

/*
 * Find the checks and foreign keys that use column from of t, refuse what
 * cannot be carried, record in the model that they now use to (the same
 * name for a type change), and set the operation's lists: ck_* per check,
 * fk_* per foreign key, em_drop (SQLite triggers to drop while the columns
 * trade places), fk_off/fk_on/fk_lock/fk_unlock (MariaDB, one element when
 * there is a foreign key, else none).
 */
static int
carry_constraints(struct op_ctx *c, struct model_table *t, const char *from, const char *to)
{
	static const char *const lists[] = {
		"ck_name", "ck_name_literal", "ck_tmp", "ck_add_tmp", "ck_add", "ck_setting",
		"ck_ins", "ck_upd", "ck_row", "ck_row_from", "ck_violation",
		"fk_table", "fk_name", "fk_tmp", "fk_cols", "fk_ref", "fk_ref_cols", "fk_on_delete",
		"fk_ins", "fk_upd", "fk_missing", "fk_violation",
		"em_drop", "fk_off", "fk_on", "fk_lock", "fk_unlock", NULL
	};
	bool type_change = strcmp(from, to) == 0;
	struct model_constraint **ks = NULL;
	struct model_table **kt = NULL;
	struct strbuf lock = STRBUF_INIT;
	size_t n = 0, i, j, n_fk = 0;
	int rc = 0;

	for (i = 0; lists[i]; i++)
		vars_list(&c->vars, lists[i]);
	{
		char *tmp = object_name(c, t->name, "tmp");
		struct strbuf sb = STRBUF_INIT;

		vars_set_ident(c, "tmp_col", tmp);
		free(tmp);
		dialect_quote_ident(c->backend, &sb, t->name);
		tmp = quote_literal(c->backend, sb.buf);
		strbuf_reset(&sb);
		strbuf_addf(&sb, "%s::regclass", tmp);
		vars_set(&c->vars, "table_regclass", sb.buf);
		free(tmp);
		strbuf_release(&sb);
	}
	for (i = 0; i < c->model->n_tables; i++) {
		struct model_table *ot = &c->model->tables[i];

		for (j = 0; j < ot->n_constraints; j++) {
			struct model_constraint *k = &ot->constraints[j];

			if (!model_constraint_uses(ot, k, t->name, from))
				continue;
			if (k->kind == MODEL_FOREIGN_KEY && type_change) {
				rc = op_error(c, ynode_get(c->mop->args, "column"),
					      "column '%s' of '%s' is in foreign key '%s' of '%s' "
					      "(added at %s), whose two sides must keep matching "
					      "types: drop the key (drop_constraint) in an earlier "
					      "version and add it again after the change",
					      from, t->name, k->name, ot->name, k->where);
				goto out;
			}
			if (k->carried_in == c->mig->version) {
				rc = op_error(c, NULL, "constraint '%s' of '%s' moves to a new column "
					      "already in this migration: change its other column in a "
					      "later version", k->name, ot->name);
				goto out;
			}
			ks = xrealloc(ks, (n + 1) * sizeof(*ks));
			kt = xrealloc(kt, (n + 1) * sizeof(*kt));
			ks[n] = k;
			kt[n++] = ot;
		}
	}
	/* The check as it reads the old column, before the model moves it. */
	for (i = 0; i < n; i++)
		if (ks[i]->kind == MODEL_CHECK) {
			char *row = check_on_row(c->backend, ks[i]);

			vars_push(&c->vars, "ck_row_from", row);
			free(row);
		}
	if (!type_change)
		model_rename_column_refs(c->model, t->name, from, to);
	for (i = 0; i < n; i++) {
		struct model_constraint *k = ks[i];
		char *tmp = object_name(c, k->name, k->kind == MODEL_CHECK ? "ck" : "fk");
		char *msg = xasprintf("constraint %s violated", k->name);
		const char *pre = k->kind == MODEL_CHECK ? "ck" : "fk";
		char *var;

		k->carried_in = c->mig->version;
#define PUSH_IDENT(suffix, value) (var = xasprintf("%s_%s", pre, suffix), \
				   push_ident(c, var, value), free(var))
		PUSH_IDENT("name", k->name);
		PUSH_IDENT("tmp", tmp);
		PUSH_IDENT("ins", k->emul_ins);
		PUSH_IDENT("upd", k->emul_upd);
#undef PUSH_IDENT
		var = xasprintf("%s_violation", pre);
		push_literal(c, var, msg);
		free(var);
		if (k->emul_ins) {
			push_ident(c, "em_drop", k->emul_ins);
			push_ident(c, "em_drop", k->emul_upd);
		}
		if (k->kind == MODEL_CHECK) {
			char *row = check_on_row(c->backend, k);
			char *setting = xasprintf("dbphase.ck%zu", i);

			push_literal(c, "ck_name_literal", k->name);
			push_add_prefix(c, "ck_add_tmp", t->name, tmp);
			push_add_prefix(c, "ck_add", t->name, k->name);
			push_literal(c, "ck_setting", setting);
			vars_push(&c->vars, "ck_row", row);
			free(row);
			free(setting);
		} else {
			char *missing = fk_missing_sql(c->backend, k);

			push_ident(c, "fk_table", kt[i]->name);
			push_columns(c, "fk_cols", k->columns, k->n_columns);
			push_ident(c, "fk_ref", k->ref_table);
			push_columns(c, "fk_ref_cols", k->ref_columns, k->n_columns);
			vars_push(&c->vars, "fk_on_delete", k->on_delete);
			vars_push(&c->vars, "fk_missing", missing);
			free(missing);
			/* MariaDB locks each table once. */
			{
				char *q = quote_ident(c->backend, kt[i]->name);
				char *item = xasprintf("%s WRITE", q);

				if (!lock.len || !strstr(lock.buf, item))
					strbuf_addf(&lock, "%s%s", lock.len ? ", " : "", item);
				free(q);
				free(item);
			}
			n_fk++;
		}
		free(tmp);
		free(msg);
	}
	if (n_fk > 0) {
		char *q = quote_ident(c->backend, t->name);
		char *item = xasprintf("%s WRITE", q);

		if (!strstr(lock.buf, item))
			strbuf_addf(&lock, ", %s", item);
		vars_push(&c->vars, "fk_off", "0");
		vars_push(&c->vars, "fk_on", "1");
		vars_push(&c->vars, "fk_lock", lock.buf);
		vars_push(&c->vars, "fk_unlock", "");
		free(q);
		free(item);
	}
out:
	strbuf_release(&lock);
	free(ks);
	free(kt);
	return rc;
}

/* Shadow-index lists for change_type: one entry per index on the column. */
static void
shadow_indexes(struct op_ctx *c, struct model_table *t, const char *column,
	       const char *shadow)
{
	struct strbuf drop = STRBUF_INIT, rename = STRBUF_INIT;
	size_t i, j;

	vars_list(&c->vars, "ix");
	vars_list(&c->vars, "ix_shadow");
	vars_list(&c->vars, "ix_shadow_columns");
	vars_list(&c->vars, "ix_columns");
	vars_list(&c->vars, "ix_unique");
	vars_list(&c->vars, "uq_name");
	for (i = 0; i < t->n_indexes; i++) {
		struct model_index *ix = &t->indexes[i];
		struct strbuf cols = STRBUF_INIT, orig = STRBUF_INIT;
		bool uses = false;
		char *sname, *q;

		for (j = 0; j < ix->n_columns; j++) {
			bool hit = strcmp(ix->columns[j], column) == 0;

			uses |= hit;
			if (j) {
				strbuf_addstr(&cols, ", ");
				strbuf_addstr(&orig, ", ");
			}
			dialect_quote_ident(c->backend, &cols, hit ? shadow : ix->columns[j]);
			dialect_quote_ident(c->backend, &orig, ix->columns[j]);
		}
		if (uses) {
			char *qs;

			q = quote_ident(c->backend, ix->name);
			vars_push(&c->vars, "ix", q);
			sname = object_name(c, ix->name, "ix");
			qs = quote_ident(c->backend, sname);
			vars_push(&c->vars, "ix_shadow", qs);
			strbuf_addf(&drop, "DROP INDEX %s, ", q);
			strbuf_addf(&rename, ", RENAME INDEX %s TO %s", qs, q);
			free(q);
			free(qs);
			free(sname);
			vars_push(&c->vars, "ix_shadow_columns", cols.buf);
			vars_push(&c->vars, "ix_columns", orig.buf);
			vars_push(&c->vars, "ix_unique", ix->unique ? "UNIQUE " : "");
			if (ix->constraint)
				push_ident(c, "uq_name", ix->name);
		}
		strbuf_release(&cols);
		strbuf_release(&orig);
	}
	/* MariaDB trades the names in the ALTER TABLE that drops the column. */
	vars_set(&c->vars, "ix_swap_drop", drop.buf);
	vars_set(&c->vars, "ix_swap_rename", rename.buf);
	strbuf_release(&drop);
	strbuf_release(&rename);
}

/*
 * Note a column that verify compares before contract (plan/check.h):
 * column of t must equal expected; source says what that is in messages.
 */
static void
add_check(struct op_ctx *c, const struct model_table *t, enum check_kind kind,
	  const char *column, const char *type, const char *expected,
	  const char *source_column, const char *source)
{
	const struct model_column *pk[64];
	char *keys[64];
	size_t n = model_primary_key(t, pk, 64), i;
	struct plan_check *chk;

	if (n == 0)
		return;		/* nothing walks a table without a key; no trigger pair either */
	for (i = 0; i < n; i++)
		keys[i] = pk[i]->name;
	c->plan->checks = xrealloc(c->plan->checks,
				   (c->plan->n_checks + 1) * sizeof(*c->plan->checks));
	chk = &c->plan->checks[c->plan->n_checks++];
	check_init(chk, c->backend, kind, t->name, keys, n, column, type, expected,
		   source_column, source);
	chk->version = c->mig->version;
	chk->op_kind = xstrdup(c->mop->kind);
	chk->op_where = op_where(c);
}

static int
op_rename_column(struct op_ctx *c)
{
	struct model_table *t = arg_table(c);
	const char *from = arg_string(c, "from"), *to = arg_string(c, "to");
	struct model_column *col = model_column(t, from);
	struct model_column copy;
	bool not_null = !col->nullable;
	const char *from_default = col->default_sql[c->backend];
	struct strbuf swap_drop = STRBUF_INIT, swap_rename = STRBUF_INIT;
	size_t i, j;
	char *def;
	int rc;

	if (col->primary_key)
		return op_error(c, ynode_get(c->mop->args, "from"),
				"renaming primary key column '%s' is not supported online", from);
	if ((rc = carry_constraints(c, t, from, to)) < 0)
		return rc;
	vars_set_object(c, "trigger_ins", t->name, "sync_i");
	vars_set_object(c, "trigger_ins2", t->name, "sync_i2");
	vars_set_object(c, "trigger_upd", t->name, "sync_u");
	vars_set_object(c, "trigger_upd2", t->name, "sync_u2");
	vars_set_object(c, "function", t->name, "sync_fn");
	vars_set_object(c, "check", t->name, "nn");
	vars_flag(&c->vars, "not_null", not_null);
	vars_set_object(c, "trigger_ins3", t->name, "sync_i3");
	/*
	 * New code inserts rows through the new column only, old code
	 * through the old one.  A default on the old column would fill it in
	 * new code's inserts before the triggers could copy the new value, so
	 * the triggers apply it instead, to rows that have neither column,
	 * and the column loses it in expand.  Where the old column is NOT
	 * NULL, PostgreSQL's and MariaDB's BEFORE triggers fill it in time;
	 * SQLite's AFTER triggers come too late, so on SQLite the old column
	 * loses its NOT NULL and default by a table rebuild.
	 */
	vars_set(&c->vars, "from_default", from_default ? from_default : "NULL");
	vars_flag(&c->vars, "relax",
		  c->backend == DB_BACKEND_SQLITE && (not_null || from_default != NULL));
	vars_set(&c->vars, "relax_not_null", not_null ? "false" : "");
	vars_set(&c->vars, "relax_drop_default", from_default ? "true" : "");
	vars_set(&c->vars, "final_not_null", not_null ? "true" : "");
	vars_flag(&c->vars, "finalize", not_null || from_default != NULL);
	/* MariaDB: the old column as contract leaves it, once the triggers go. */
	model_column_copy(&copy, col);
	for (i = 0; i < DB_BACKEND__COUNT; i++) {
		free(copy.default_sql[i]);
		copy.default_sql[i] = NULL;
	}
	def = column_def_text(c->backend, &copy, true);
	vars_set(&c->vars, "from_def_nullable", def);
	free(def);
	model_column_release(&copy);
	if (not_null && c->backend == DB_BACKEND_SQLITE) {
		col->nullable = true;
	}
	model_column_copy(&copy, col);
	free(copy.name);
	copy.name = xstrdup(to);
	copy.primary_key = false;
	copy.autoincrement = false;
	def = shadow_def_text(c->backend, &copy);
	vars_set(&c->vars, "to_def", def);
	free(def);
	set_final_default(c, &copy);
	copy.nullable = !not_null;
	def = column_def_text(c->backend, &copy, false);
	vars_set(&c->vars, "to_final_def", def);
	free(def);
	model_column_release(&copy);
	/*
	 * New code's indexes: copies of the old column's indexes on the new
	 * column, built without blocking in expand under a temporary name,
	 * which they trade for the original one at contract (on MariaDB in
	 * the ALTER TABLE that drops the old column: ix_swap_*).
	 */
	vars_list(&c->vars, "ix_old");
	vars_list(&c->vars, "ix_new");
	vars_list(&c->vars, "ix_new_columns");
	vars_list(&c->vars, "ix_new_unique");
	vars_list(&c->vars, "uq_name");
	for (i = 0; i < t->n_indexes; i++) {
		struct model_index *ix = &t->indexes[i];
		struct strbuf cols = STRBUF_INIT;
		bool uses = false;

		for (j = 0; j < ix->n_columns; j++) {
			bool hit = strcmp(ix->columns[j], from) == 0;

			uses |= hit;
			if (j)
				strbuf_addstr(&cols, ", ");
			dialect_quote_ident(c->backend, &cols, hit ? to : ix->columns[j]);
		}
		if (uses) {
			char *name = object_name(c, ix->name, "ix");
			char *q = quote_ident(c->backend, name);
			char *qo = quote_ident(c->backend, ix->name);

			vars_push(&c->vars, "ix_old", qo);
			vars_push(&c->vars, "ix_new", q);
			vars_push(&c->vars, "ix_new_columns", cols.buf);
			vars_push(&c->vars, "ix_new_unique", ix->unique ? "UNIQUE " : "");
			if (ix->constraint)
				vars_push(&c->vars, "uq_name", qo);
			strbuf_addf(&swap_drop, "DROP INDEX %s, ", qo);
			strbuf_addf(&swap_rename, ", RENAME INDEX %s TO %s", q, qo);
			for (j = 0; j < ix->n_columns; j++)
				if (strcmp(ix->columns[j], from) == 0) {
					free(ix->columns[j]);
					ix->columns[j] = xstrdup(to);
				}
			free(name);
			free(q);
			free(qo);
		}
		strbuf_release(&cols);
	}
	vars_set(&c->vars, "ix_swap_drop", swap_drop.buf);
	vars_set(&c->vars, "ix_swap_rename", swap_rename.buf);
	strbuf_release(&swap_drop);
	strbuf_release(&swap_rename);
	def = quote_ident(c->backend, from);
	add_check(c, t, CHECK_RENAME, to, col->type, def, from, from);
	free(def);
	def = xasprintf("renamed to '%s'", to);
	note_gone(c, t->name, from, def);
	free(def);
	free(col->name);
	col->name = xstrdup(to);
	col->nullable = !not_null;
	return 0;
}

static int
op_change_type(struct op_ctx *c)
{
	struct model_table *t = arg_table(c);
	const char *name = arg_string(c, "column"), *to = arg_string(c, "to");
	struct model_column *col = model_column(t, name);
	char *shadow = object_name(c, name, "new");
	struct strbuf sb = STRBUF_INIT;
	const struct ynode *using = ynode_get(c->mop->args, "using");
	const char *expected;
	char *qcol = quote_ident(c->backend, name);
	int rc = 0;

	if (col->primary_key) {
		rc = op_error(c, ynode_get(c->mop->args, "column"),
			      "changing the type of primary key column '%s' is not supported online", name);
		goto out;
	}
	if ((rc = carry_constraints(c, t, name, name)) < 0)
		goto out;
	vars_set_ident(c, "shadow", shadow);
	vars_set(&c->vars, "shadow_name", shadow);	/* unquoted, for the rebuild */
	vars_set_object(c, "check", t->name, "nn");
	vars_set_object(c, "trigger_ins", t->name, "cast_i");
	vars_set_object(c, "trigger_upd", t->name, "cast_u");
	vars_set_object(c, "function", t->name, "cast_fn");
	type_render(col->type, c->backend, &sb, &expected);
	vars_set(&c->vars, "from_type", sb.buf);
	/* How the old value becomes the new: 'using', else a cast. */
	if (using == NULL) {
		/* dbphase's own text, written for the table and for the row. */
		for (int pass = 0; pass < 2; pass++) {
			const char *row = pass ? "NEW." : "";

			strbuf_reset(&sb);
			if (c->backend == DB_BACKEND_MYSQL) {
				strbuf_addf(&sb, "%s%s", row, qcol);	/* assignment converts */
			} else {
				strbuf_addf(&sb, "CAST(%s%s AS ", row, qcol);
				type_render(to, c->backend, &sb, &expected);
				strbuf_addch(&sb, ')');
			}
			vars_set(&c->vars, pass ? "convert_new" : "convert", sb.buf);
		}
	} else {
		vars_set(&c->vars, "convert", vars_find(&c->vars, "using")->values[0]);
		strbuf_reset(&sb);
		expr_on_row(c->backend, vars_find(&c->vars, "convert")->values[0], t, "NEW", &sb);
		vars_set(&c->vars, "convert_new", sb.buf);
	}
	{
		char *what = using ? xasprintf("%s converted by '%s'", name,
					       vars_find(&c->vars, "using")->values[0]) :
				     xasprintf("%s converted to %s", name, to);

		add_check(c, t, CHECK_TYPE, shadow, to, vars_find(&c->vars, "convert")->values[0],
			  name, what);
		free(what);
	}
	{
		struct model_column shadow_col;
		char *def;

		model_column_copy(&shadow_col, col);
		free(shadow_col.name);
		shadow_col.name = xstrdup(shadow);
		free(shadow_col.type);
		shadow_col.type = xstrdup(to);
		def = shadow_def_text(c->backend, &shadow_col);
		vars_set(&c->vars, "shadow_def", def);
		free(def);
		/* What the shadow becomes before it takes the name (MariaDB). */
		def = column_def_text(c->backend, &shadow_col, false);
		vars_set(&c->vars, "shadow_final_def", def);
		free(def);
		set_final_default(c, &shadow_col);
		/* The final column, as MariaDB's CHANGE needs it. */
		free(shadow_col.name);
		shadow_col.name = xstrdup(name);
		def = column_def_text(c->backend, &shadow_col, false);
		vars_set(&c->vars, "final_def", def);
		free(def);
		model_column_release(&shadow_col);
	}
	shadow_indexes(c, t, name, shadow);
	free(col->type);
	col->type = xstrdup(to);
	vars_flag(&c->vars, "not_null", !col->nullable);
	vars_set(&c->vars, "final_not_null", !col->nullable ? "true" : "");
	vars_flag(&c->vars, "finalize", !col->nullable || col->default_sql[c->backend] != NULL);
out:
	free(qcol);
	free(shadow);
	strbuf_release(&sb);
	return rc;
}

/* Does an operation before the current one in this migration backfill column of table? */
static bool
backfilled_before(const struct op_ctx *c, const char *table, const char *column)
{
	const struct migration_op *op;

	for (op = c->mig->ops; op < c->mop; op++) {
		const struct ynode *tv, *set;

		if (strcmp(op->kind, "backfill") != 0 || op->args->kind != YNODE_MAP)
			continue;
		tv = ynode_get(op->args, "table");
		set = ynode_get(op->args, "set");
		if (tv && tv->kind == YNODE_SCALAR && strcmp(tv->scalar, table) == 0 &&
		    set && set->kind == YNODE_MAP && ynode_get(set, column))
			return true;
	}
	return false;
}

static int
op_set_not_null(struct op_ctx *c)
{
	struct model_table *t = arg_table(c);
	struct model_column *col = model_column(t, arg_string(c, "column"));
	char *def;

	/*
	 * PostgreSQL's NOT VALID check also refuses an update of a row that
	 * still holds NULL: while a backfill of this migration has yet to
	 * fill the column, old code's updates of such rows must keep
	 * working, so the check waits for migrate, after the backfill.
	 */
	vars_flag(&c->vars, "check_early", !backfilled_before(c, t->name, col->name));
	vars_set_object(c, "check", t->name, "nn");
	col->nullable = false;
	def = column_def_text(c->backend, col, false);
	vars_set(&c->vars, "column_def", def);
	free(def);
	return 0;
}

static int
op_drop_not_null(struct op_ctx *c)
{
	struct model_table *t = arg_table(c);
	struct model_column *col = model_column(t, arg_string(c, "column"));
	char *def;

	if (col->primary_key)
		return op_error(c, NULL, "a primary key column cannot be nullable");
	/* What downgrade restores: the definition as it was. */
	def = column_def_text(c->backend, col, false);
	vars_set(&c->vars, "old_column_def", def);
	free(def);
	col->nullable = true;
	def = column_def_text(c->backend, col, false);
	vars_set(&c->vars, "column_def", def);
	free(def);
	return 0;
}

static int
op_set_default(struct op_ctx *c)
{
	struct model_table *t = arg_table(c);
	struct model_column *col = model_column(t, arg_string(c, "column"));
	struct model_column tmp = { 0 };
	char *def;
	int b, rc;

	tmp.name = xstrdup(col->name);
	rc = column_default(c, ynode_get(c->mop->args, "default"), &tmp);
	if (rc == 0) {
		/* What downgrade puts back: the default as it was, or none. */
		const char *old = col->default_sql[c->backend];
		char *clause = old ? xasprintf("SET DEFAULT %s", old) : xstrdup("DROP DEFAULT");

		vars_set(&c->vars, "old_default", old ? old : "");
		vars_set(&c->vars, "old_default_clause", clause);
		free(clause);
		for (b = 0; b < DB_BACKEND__COUNT; b++) {
			free(col->default_sql[b]);
			col->default_sql[b] = tmp.default_sql[b];
			tmp.default_sql[b] = NULL;
		}
		vars_set(&c->vars, "value", col->default_sql[c->backend] ? col->default_sql[c->backend] : "NULL");
		def = column_def_text(c->backend, col, false);
		vars_set(&c->vars, "column_def", def);
		free(def);
	}
	model_column_release(&tmp);
	return rc;
}

static int
op_drop_default(struct op_ctx *c)
{
	struct model_table *t = arg_table(c);
	struct model_column *col = model_column(t, arg_string(c, "column"));
	char *def;
	int b;

	for (b = 0; b < DB_BACKEND__COUNT; b++) {
		free(col->default_sql[b]);
		col->default_sql[b] = NULL;
	}
	def = column_def_text(c->backend, col, false);
	vars_set(&c->vars, "column_def", def);
	free(def);
	return 0;
}

/*
 * Record the index the operation's 'name' and 'columns' describe in the
 * model; what says what it is in the refusal of a name already taken.
 */
static int
model_index_from_args(struct op_ctx *c, bool unique, const char *what)
{
	struct model_table *t = arg_table(c);
	const struct ynode *cols = ynode_get(c->mop->args, "columns");
	const char *name = arg_string(c, "name");
	char **names;
	size_t i;

	if (model_find_index(c->model, name, NULL))
		return op_error(c, ynode_get(c->mop->args, "name"), "%s '%s' already exists",
				what, name);
	/* MariaDB indexes TEXT/BLOB only by a prefix, which dbphase cannot give. */
	for (i = 0; c->backend == DB_BACKEND_MYSQL && i < cols->n; i++) {
		const struct model_column *col = model_column(t, cols->items[i]->scalar);

		if (col && type_is_unbounded(col->type))
			return op_error(c, cols->items[i],
					"column '%s' is %s, which MariaDB can index only by a prefix"
					" length, and %s takes none: index a varchar(n) column, or"
					" write the index in an 'sql' operation with the prefix"
					" (e.g. mysql: CREATE INDEX %s ON %s (%s(191)))",
					col->name, col->type, c->mop->kind, name, t->name, col->name);
	}
	names = xcalloc(cols->n, sizeof(char *));
	for (i = 0; i < cols->n; i++)
		names[i] = cols->items[i]->scalar;
	model_add_index(t, name, names, cols->n, unique);
	free(names);
	return 0;
}

static int
op_add_index(struct op_ctx *c)
{
	bool unique = vars_has_flag(&c->vars, "unique");
	int rc = model_index_from_args(c, unique, "index");

	vars_set(&c->vars, "unique_kw", unique ? "UNIQUE " : "");
	return rc;
}

static int
op_drop_index(struct op_ctx *c)
{
	struct model_table *t = NULL;
	const char *name = arg_string(c, "name");

	if (!model_find_index(c->model, name, &t))
		return op_error(c, ynode_get(c->mop->args, "name"), "index '%s' does not exist", name);
	vars_set_ident(c, "table", t->name);
	model_drop_index(t, name);
	return 0;
}

/*
 * Names of the triggers that stand in for constraint of table where the
 * backend cannot add it (MariaDB checks, SQLite checks and foreign keys):
 * "<table>_<constraint>_dbp_i" and "_dbp_u", the start shortened with a
 * hash when too long.  MariaDB's trigger names are per schema, so the
 * table is part of the name.  k, when the model knows the constraint,
 * gives the names its triggers were created with.
 */
static void
set_emulation_names(struct op_ctx *c, const char *table, const char *constraint,
		    const struct model_constraint *k)
{
	char *joined = xasprintf("%s_%s", table, constraint);
	char *base = name_fit(joined, NAME_MAX_LEN - 6);
	char *key = xasprintf("constraint '%s' of table '%s'", constraint, table);
	char *ins = k && k->emul_ins ? xstrdup(k->emul_ins) : xasprintf("%s_dbp_i", base);
	char *upd = k && k->emul_upd ? xstrdup(k->emul_upd) : xasprintf("%s_dbp_u", base);
	char *chk = xasprintf("%s_dbp_c", base);
	char *msg = xasprintf("constraint %s violated", constraint);
	char *lit = quote_literal(c->backend, msg);
	char *old_msg = xasprintf("constraint %s violated by rows that exist", constraint);
	char *old_lit = quote_literal(c->backend, old_msg);
	char *old_ident = quote_ident(c->backend, old_msg);

	if (k == NULL || k->emul_ins == NULL) {
		claim_name(c, ins, key);
		claim_name(c, upd, key);
	}
	vars_set_ident(c, "emul_ins", ins);
	vars_set_ident(c, "emul_upd", upd);
	vars_set_ident(c, "emul_chk", chk);
	vars_set(&c->vars, "emul_ins_name", ins);
	vars_set(&c->vars, "emul_upd_name", upd);
	vars_set(&c->vars, "violation", lit);
	/* The check of existing rows names the constraint in its error. */
	vars_set(&c->vars, "violation_existing", old_lit);
	vars_set(&c->vars, "violation_existing_ident", old_ident);
	free(joined);
	free(base);
	free(key);
	free(ins);
	free(upd);
	free(chk);
	free(msg);
	free(lit);
	free(old_msg);
	free(old_lit);
	free(old_ident);
}

/*
 * A new constraint's name must be free on its table: PostgreSQL would
 * replace the other one (the steps drop a constraint of that name first),
 * and its triggers elsewhere would be replaced.
 */
static int
constraint_name_free(struct op_ctx *c, struct model_table *t, const char *name)
{
	const struct model_constraint *k = model_constraint(t, name);
	struct model_table *it = NULL;

	if (k)
		return op_error(c, ynode_get(c->mop->args, "name"),
				"constraint '%s' already exists on table '%s' (added at %s)",
				name, t->name, k->where);
	if (model_find_index(c->model, name, &it))
		return op_error(c, ynode_get(c->mop->args, "name"),
				"'%s' is already the name of an index or unique constraint of "
				"table '%s'", name, it->name);
	return 0;
}

/* Record the constraint the operation adds, with its triggers' names. */
static struct model_constraint *
record_constraint(struct op_ctx *c, struct model_table *t, enum model_constraint_kind kind)
{
	char *where = op_where(c);
	struct model_constraint *k = model_add_constraint(t, arg_string(c, "name"), kind, where);

	free(where);
	k->emul_ins = xstrdup(vars_find(&c->vars, "emul_ins_name")->values[0]);
	k->emul_upd = xstrdup(vars_find(&c->vars, "emul_upd_name")->values[0]);
	return k;
}

static int
op_add_unique(struct op_ctx *c)
{
	int rc = model_index_from_args(c, true, "index or constraint");
	struct model_table *t = NULL;
	struct model_index *ix;

	if (rc == 0 && (ix = model_find_index(c->model, arg_string(c, "name"), &t)))
		ix->constraint = true;
	return rc;
}

static int
op_add_check(struct op_ctx *c)
{
	struct model_table *t = arg_table(c);
	const char *name = arg_string(c, "name");
	struct model_constraint *k;
	struct strbuf sb = STRBUF_INIT;
	size_t i;
	int rc;

	if ((rc = constraint_name_free(c, t, name)) < 0)
		return rc;
	expr_on_row(c->backend, vars_find(&c->vars, "check")->values[0], t, "NEW", &sb);
	vars_set(&c->vars, "check_new", sb.buf);
	strbuf_release(&sb);
	set_emulation_names(c, t->name, name, NULL);
	k = record_constraint(c, t, MODEL_CHECK);
	k->check = xstrdup(vars_find(&c->vars, "check")->values[0]);
	k->row_table = xstrdup(t->name);
	k->n_row = t->n_columns;
	k->row_names = xcalloc(t->n_columns ? t->n_columns : 1, sizeof(char *));
	k->row_columns = xcalloc(t->n_columns ? t->n_columns : 1, sizeof(char *));
	for (i = 0; i < t->n_columns; i++) {
		k->row_names[i] = xstrdup(t->columns[i].name);
		k->row_columns[i] = xstrdup(t->columns[i].name);
	}
	return 0;
}

static int
op_add_foreign_key(struct op_ctx *c)
{
	static const char *const actions[] = { "cascade", "set null", "set default",
					       "restrict", "no action", NULL };
	struct model_table *t = arg_table(c);
	const struct ynode *cols = ynode_get(c->mop->args, "columns");
	const struct ynode *refs = ynode_get(c->mop->args, "ref_columns");
	const struct ynode *on_delete = ynode_get(c->mop->args, "on_delete");
	const char *ref = arg_string(c, "references");
	struct model_table *rt = model_table(c->model, ref);
	struct strbuf list = STRBUF_INIT, missing = STRBUF_INIT;
	const char **ref_names = NULL;
	size_t i, n_refs;
	int rc = 0;

	if (rt == NULL)
		return missing_table(c, ynode_get(c->mop->args, "references"), ref);
	if ((rc = constraint_name_free(c, t, arg_string(c, "name"))) < 0)
		return rc;
	if (refs) {
		if (refs->kind != YNODE_SEQ)
			return op_error(c, refs, "'ref_columns' must be a list of column names");
		n_refs = refs->n;
		ref_names = xcalloc(n_refs ? n_refs : 1, sizeof(char *));
		for (i = 0; i < n_refs; i++) {
			if (refs->items[i]->kind != YNODE_SCALAR ||
			    !model_column(rt, refs->items[i]->scalar)) {
				rc = op_error(c, refs->items[i], "column '%s' does not exist in table '%s'",
					      refs->items[i]->kind == YNODE_SCALAR ?
						      refs->items[i]->scalar : "?", ref);
				goto out;
			}
			ref_names[i] = refs->items[i]->scalar;
		}
	} else {
		const struct model_column *pk[64];

		n_refs = model_primary_key(rt, pk, 64);
		if (n_refs == 0) {
			rc = op_error(c, NULL, "table '%s' has no primary key to reference; give 'ref_columns'", ref);
			goto out;
		}
		ref_names = xcalloc(n_refs, sizeof(char *));
		for (i = 0; i < n_refs; i++)
			ref_names[i] = pk[i]->name;
	}
	if (n_refs != cols->n) {
		rc = op_error(c, cols, "%zu columns reference %zu columns of '%s'", cols->n,
			      n_refs, ref);
		goto out;
	}
	for (i = 0; i < n_refs; i++) {
		char *q = quote_ident(c->backend, ref_names[i]);
		char *qc = quote_ident(c->backend, cols->items[i]->scalar);

		strbuf_addf(&list, "%s%s", i ? ", " : "", q);
		strbuf_addf(&missing, "%sNEW.%s IS NOT NULL", i ? " AND " : "(", qc);
		free(q);
		free(qc);
	}
	vars_set(&c->vars, "ref_columns", list.buf);
	strbuf_addstr(&missing, ") AND NOT EXISTS (SELECT 1 FROM ");
	dialect_quote_ident(c->backend, &missing, ref);
	strbuf_addstr(&missing, " WHERE ");
	for (i = 0; i < n_refs; i++) {
		if (i)
			strbuf_addstr(&missing, " AND ");
		dialect_quote_ident(c->backend, &missing, ref_names[i]);
		strbuf_addstr(&missing, " = NEW.");
		dialect_quote_ident(c->backend, &missing, cols->items[i]->scalar);
	}
	strbuf_addch(&missing, ')');
	vars_set(&c->vars, "fk_missing", missing.buf);
	/* The same test on the rows that exist, as {table} AS {row_alias}. */
	vars_set_ident(c, "row_alias", "dbp_row");
	strbuf_reset(&missing);
	for (i = 0; i < n_refs; i++) {
		strbuf_addstr(&missing, i ? " AND " : "(");
		dialect_quote_ident(c->backend, &missing, "dbp_row");
		strbuf_addch(&missing, '.');
		dialect_quote_ident(c->backend, &missing, cols->items[i]->scalar);
		strbuf_addstr(&missing, " IS NOT NULL");
	}
	strbuf_addstr(&missing, ") AND NOT EXISTS (SELECT 1 FROM ");
	dialect_quote_ident(c->backend, &missing, ref);
	strbuf_addch(&missing, ' ');
	dialect_quote_ident(c->backend, &missing, "dbp_ref");
	strbuf_addstr(&missing, " WHERE ");
	for (i = 0; i < n_refs; i++) {
		if (i)
			strbuf_addstr(&missing, " AND ");
		dialect_quote_ident(c->backend, &missing, "dbp_ref");
		strbuf_addch(&missing, '.');
		dialect_quote_ident(c->backend, &missing, ref_names[i]);
		strbuf_addstr(&missing, " = ");
		dialect_quote_ident(c->backend, &missing, "dbp_row");
		strbuf_addch(&missing, '.');
		dialect_quote_ident(c->backend, &missing, cols->items[i]->scalar);
	}
	strbuf_addch(&missing, ')');
	vars_set(&c->vars, "fk_orphan", missing.buf);
	vars_set(&c->vars, "on_delete_clause", "");
	if (on_delete) {
		const char *const *a;

		for (a = actions; *a; a++)
			if (on_delete->kind == YNODE_SCALAR && strcasecmp(on_delete->scalar, *a) == 0)
				break;
		if (*a == NULL) {
			rc = op_error(c, on_delete, "'on_delete' must be cascade, set null, "
				      "set default, restrict or no action");
			goto out;
		}
		strbuf_reset(&list);
		strbuf_addstr(&list, " ON DELETE ");
		for (const char *p = *a; *p; p++)
			strbuf_addch(&list, toupper((unsigned char)*p));
		vars_set(&c->vars, "on_delete_clause", list.buf);
	}
	set_emulation_names(c, t->name, arg_string(c, "name"), NULL);
	{
		struct model_constraint *k = record_constraint(c, t, MODEL_FOREIGN_KEY);

		k->n_columns = n_refs;
		k->columns = xcalloc(n_refs, sizeof(char *));
		k->ref_columns = xcalloc(n_refs, sizeof(char *));
		for (i = 0; i < n_refs; i++) {
			k->columns[i] = xstrdup(cols->items[i]->scalar);
			k->ref_columns[i] = xstrdup(ref_names[i]);
		}
		k->ref_table = xstrdup(ref);
		k->on_delete = xstrdup(vars_find(&c->vars, "on_delete_clause")->values[0]);
	}
out:
	free(ref_names);
	strbuf_release(&list);
	strbuf_release(&missing);
	return rc;
}

static int
op_drop_constraint(struct op_ctx *c)
{
	const char *name = arg_string(c, "name");
	struct model_table *t = arg_table(c);
	struct model_table *it = NULL;

	if (model_find_index(c->model, name, &it))
		model_drop_index(it, name);
	set_emulation_names(c, t->name, name, model_constraint(t, name));
	model_drop_constraint(t, name);
	return 0;
}

static struct pending_fill *
find_fill(struct op_ctx *c, const char *table, const char *column)
{
	size_t i;

	for (i = 0; i < c->n_fills; i++)
		if (strcmp(c->fills[i].table, table) == 0 &&
		    strcmp(c->fills[i].column, column) == 0)
			return &c->fills[i];
	return NULL;
}

/* "a IS NOT DISTINCT FROM (b)" (same) or "a IS DISTINCT FROM b" in the backend's words. */
static void
add_compare(enum db_backend b, struct strbuf *out, const char *x, const char *y, bool same)
{
	switch (b) {
	case DB_BACKEND_POSTGRESQL:
		strbuf_addf(out, same ? "%s IS NOT DISTINCT FROM (%s)" : "%s IS DISTINCT FROM %s",
			    x, y);
		break;
	case DB_BACKEND_MYSQL:
		strbuf_addf(out, same ? "%s <=> (%s)" : "NOT (%s <=> %s)", x, y);
		break;
	default:
		strbuf_addf(out, same ? "%s IS (%s)" : "%s IS NOT %s", x, y);
		break;
	}
}

/*
 * The trigger's side of a map of assignments (set: or reverse:): assign
 * gets "NEW.x := e; " (PostgreSQL) or "SET NEW.x = e, ..." (MariaDB), e with
 * the row's columns read from NEW; changed "(NEW.x <> OLD.x OR ...)"; kept
 * "(NEW.x = OLD.x AND ...)"; all_null "NEW.x IS NULL AND ..."; same
 * "NEW.x = (e) AND ..."; targets the quoted columns; deps the columns the
 * expressions read.  Comparisons treat NULLs as equal.
 */
struct assign_sql {
	struct strbuf assign, changed, kept, all_null, same, targets, deps;
};

static int
assign_sql_build(struct op_ctx *c, const struct model_table *t, const struct ynode *map,
		 struct assign_sql *a)
{
	struct strbuf expr = STRBUF_INIT;
	size_t i;
	int rc = 0;

	for (i = 0; i < map->n && rc == 0; i++) {
		char *q = quote_ident(c->backend, map->keys[i]->scalar);
		char *nq = xasprintf("NEW.%s", q), *oq = xasprintf("OLD.%s", q);
		const char *e;

		if ((rc = expr_text(c, map->items[i], "the value", &e)) == 0) {
			strbuf_reset(&expr);
			expr_on_row(c->backend, e, t, "NEW", &expr);
			expr_deps(c->backend, e, t, &a->deps);
			if (c->backend == DB_BACKEND_POSTGRESQL)
				strbuf_addf(&a->assign, "%s := %s; ", nq, expr.buf);
			else
				strbuf_addf(&a->assign, "%s%s = %s", i ? ", " : "SET ", nq, expr.buf);
			strbuf_addstr(&a->changed, i ? " OR " : "(");
			add_compare(c->backend, &a->changed, nq, oq, false);
			strbuf_addstr(&a->kept, i ? " AND " : "(");
			add_compare(c->backend, &a->kept, nq, oq, true);
			strbuf_addf(&a->all_null, "%s%s IS NULL", i ? " AND " : "", nq);
			if (i)
				strbuf_addstr(&a->same, " AND ");
			add_compare(c->backend, &a->same, nq, expr.buf, true);
			strbuf_addf(&a->targets, "%s%s", i ? ", " : "", q);
		}
		free(q);
		free(nq);
		free(oq);
	}
	strbuf_addch(&a->changed, ')');
	strbuf_addch(&a->kept, ')');
	strbuf_release(&expr);
	return rc;
}

static void
assign_sql_release(struct assign_sql *a)
{
	strbuf_release(&a->assign);
	strbuf_release(&a->changed);
	strbuf_release(&a->kept);
	strbuf_release(&a->all_null);
	strbuf_release(&a->same);
	strbuf_release(&a->targets);
	strbuf_release(&a->deps);
}

/*
 * A derived value comes one way (old code writes the source columns, the
 * triggers compute the new ones) or, with 'reverse', both ways: new code
 * writes the new columns and the triggers write the source columns back
 * for old code.  Which side wrote a row is told by what it wrote: an
 * insert that leaves every new column NULL is old code's; one way, an
 * update that does not change a new column gets it computed, and one that
 * does (new code, or the batches) keeps what it wrote; both ways, an
 * update that changes a source column is old code's, and one that changes
 * a new column to something other than what the source gives is new
 * code's (so the batches, which write exactly that, do not turn around).
 */
static int
op_backfill(struct op_ctx *c)
{
	struct model_table *t = arg_table(c);
	const struct ynode *set = ynode_get(c->mop->args, "set");
	const struct ynode *rev = ynode_get(c->mop->args, "reverse");
	const struct model_column *pk[64];
	struct assign_sql fwd = { STRBUF_INIT, STRBUF_INIT, STRBUF_INIT, STRBUF_INIT, STRBUF_INIT,
				  STRBUF_INIT, STRBUF_INIT };
	struct assign_sql back = { STRBUF_INIT, STRBUF_INIT, STRBUF_INIT, STRBUF_INIT, STRBUF_INIT,
				   STRBUF_INIT, STRBUF_INIT };
	size_t i, n_new = 0;
	bool new_default = false;
	int rc = 0;

	if (model_primary_key(t, pk, 64) == 0)
		return op_error(c, NULL,
				"table '%s' has no primary key: batched backfills walk the key",
				t->name);
	for (i = 0; i < set->n; i++) {
		const struct model_column *col = model_column(t, set->keys[i]->scalar);
		struct pending_fill *f = find_fill(c, t->name, col->name);

		if (col->added_in == c->mig->version && !(t->created_in == c->mig->version))
			n_new++;
		if (f)
			f->filled = true;
	}
	if (n_new > 0 && n_new < set->n)
		return op_error(c, set,
				"mixes columns added by this migration with existing ones; "
				"write two backfills (a derived value gets a trigger, a one-off fix does not)");
	for (i = 0; i < set->n; i++)
		if (model_column(t, set->keys[i]->scalar)->default_sql[c->backend])
			new_default = true;
	if (rev && rev->kind == YNODE_MAP) {
		if (new_default)
			return op_error(c, rev, "'reverse' needs the columns of 'set' without a "
					"default: a default hides which version wrote a row");
		if (n_new == 0)
			return op_error(c, rev, "'reverse' writes a derived value's source columns "
					"back, so 'set' must fill columns this migration adds");
		for (i = 0; i < rev->n; i++) {
			const struct model_column *col = model_column(t, rev->keys[i]->scalar);

			if (col->added_in == c->mig->version || ynode_get(set, col->name))
				return op_error(c, rev->keys[i],
						"'reverse' sets column '%s', which old code does not "
						"use: it sets the columns the values of 'set' come from",
						col->name);
		}
	}
	/* A derived value: a trigger keeps it right for rows old code writes. */
	vars_flag(&c->vars, "derived", n_new > 0);
	vars_flag(&c->vars, "one_way", n_new > 0 && rev == NULL);
	vars_flag(&c->vars, "two_way", n_new > 0 && rev != NULL);
	vars_set_object(c, "trigger_ins", t->name, "fill_i");
	vars_set_object(c, "trigger_upd", t->name, "fill_u");
	vars_set_object(c, "trigger_ins2", t->name, "fill_i2");
	vars_set_object(c, "trigger_upd2", t->name, "fill_u2");
	vars_set_object(c, "function", t->name, "fill_fn");
	rc = assign_sql_build(c, t, set, &fwd);
	if (rc == 0 && rev && rev->kind == YNODE_MAP)
		rc = assign_sql_build(c, t, rev, &back);
	if (rc == 0) {
		vars_set(&c->vars, "assign_new", fwd.assign.buf);
		/* SQLite's update trigger fires on the columns the values read. */
		vars_flag(&c->vars, "derived_reads", n_new > 0 && rev == NULL && fwd.deps.len > 0);
		if (fwd.deps.len)
			vars_set(&c->vars, "read_columns", fwd.deps.buf);
		if (!vars_find(&c->vars, "where"))
			vars_set(&c->vars, "where", "1 = 1");
		/*
		 * An insert that leaves every new column NULL is old code's;
		 * where a new column has a default, no insert can be told
		 * apart, and the trigger computes the value for every one.
		 */
		vars_set(&c->vars, "new_unset", new_default ? "1 = 1" : fwd.all_null.buf);
		vars_set(&c->vars, "new_changed", fwd.changed.buf);
		vars_set(&c->vars, "new_kept", fwd.kept.buf);
		vars_set(&c->vars, "new_derived", fwd.same.buf);
		vars_set(&c->vars, "new_columns", fwd.targets.buf);
		if (rev) {
			vars_set(&c->vars, "assign_old", back.assign.buf);
			vars_set(&c->vars, "old_changed", back.changed.buf);
			vars_set(&c->vars, "old_columns", back.targets.buf);
		}
	}
	/* A derived value must equal its expression (and with 'reverse', back). */
	for (i = 0; rc == 0 && n_new > 0 && i < set->n + (rev && rev->kind == YNODE_MAP ? rev->n : 0); i++) {
		const struct ynode *map = i < set->n ? set : rev;
		size_t k = i < set->n ? i : i - set->n;
		const struct model_column *col = model_column(t, map->keys[k]->scalar);
		const char *e;

		if ((rc = expr_text(c, map->items[k], "the value", &e)) == 0)
			add_check(c, t, map == set ? CHECK_DERIVED : CHECK_REVERSE, col->name,
				  col->type, e, NULL, e);
	}
	assign_sql_release(&fwd);
	assign_sql_release(&back);
	return rc;
}

/*
 * The author's 'undo' of an expand sql operation, for downgrade: a
 * statement or a list, or a map of backend (or all) to those.  Sets flag
 * has_undo and list undo_sql.
 */
static int
sql_undo(struct op_ctx *c)
{
	const struct ynode *u = ynode_get(c->mop->args, "undo"), *v;
	size_t i;

	vars_list(&c->vars, "undo_sql");
	vars_flag(&c->vars, "has_undo", u != NULL);
	if (u == NULL)
		return 0;
	if (!vars_has_flag(&c->vars, "phase_expand"))
		return op_error(c, u, "'undo' is for SQL run in expand: downgrade takes back only expand");
	v = u;
	if (u->kind == YNODE_MAP) {
		v = NULL;
		for (i = 0; i < u->n; i++) {
			int b = db_backend_from_name(u->keys[i]->scalar);

			if (b < 0 && strcmp(u->keys[i]->scalar, "all") != 0)
				return op_error(c, u->keys[i], "unknown backend '" EXCERPT_FMT "' in"
						" 'undo'; expected all, postgresql, mysql or sqlite",
						EXCERPT(u->keys[i]->scalar));
			if (b == (int)c->backend)
				v = u->items[i];
		}
		if (v == NULL)
			v = ynode_get(u, "all");
		if (v == NULL)
			return op_error(c, u, "'undo' has nothing for %s (give '%s:' or 'all:', "
					"empty if nothing is to be undone there)",
					db_backend_name(c->backend), db_backend_name(c->backend));
	}
	if (v->kind == YNODE_SCALAR) {
		if (!ynode_is_null(v) && v->scalar[0])
			vars_push(&c->vars, "undo_sql", v->scalar);
		return 0;
	}
	if (v->kind != YNODE_SEQ)
		return op_error(c, v, "'undo' must be a statement, a list of them, or a map of "
				"backend to those");
	for (i = 0; i < v->n; i++) {
		if (v->items[i]->kind != YNODE_SCALAR)
			return op_error(c, v->items[i], "a statement must be a string");
		vars_push(&c->vars, "undo_sql", v->items[i]->scalar);
	}
	return 0;
}

static int
op_sql(struct op_ctx *c)
{
	const char *bname = db_backend_name(c->backend);
	const struct ynode *v = ynode_get(c->mop->args, bname);
	size_t i;

	if (v == NULL)
		v = ynode_get(c->mop->args, "all");
	if (v == NULL)
		return op_error(c, NULL,
				"no SQL for %s: give '%s:' (or 'all:'), empty if nothing is to run there",
				bname, bname);
	vars_list(&c->vars, "sql");
	if (v->kind == YNODE_SCALAR) {
		if (!ynode_is_null(v) && v->scalar[0])
			vars_push(&c->vars, "sql", v->scalar);
	} else {
		for (i = 0; i < v->n; i++) {
			if (v->items[i]->kind != YNODE_SCALAR)
				return op_error(c, v->items[i], "a statement must be a string");
			vars_push(&c->vars, "sql", v->items[i]->scalar);
		}
	}
	return sql_undo(c);
}

/*
 * Contract-time definitions.  MariaDB restates a column's whole definition
 * to change its NOT NULL (MODIFY/CHANGE COLUMN), and the contract steps
 * that set a column's NOT NULL and default afterwards (every backend) would
 * undo what later operations of the same migration did to the column in
 * expand (a set_default, say): contract steps are therefore rendered after
 * the whole migration has been replayed, from the column as the migration
 * leaves it.  A column that a later operation renamed or dropped keeps the
 * definition of its own operation.
 */
static struct model_column *
final_column(struct op_ctx *c, const char *column_param)
{
	const char *table = arg_string(c, "table"), *column = arg_string(c, column_param);
	struct model_table *t = table ? model_table(c->model, table) : NULL;

	return t && column ? model_column(t, column) : NULL;
}

/* {var}: the column's definition, NOT NULL forced when not_null. */
static void
refresh_def(struct op_ctx *c, const char *var, const struct model_column *col, bool not_null)
{
	struct model_column copy;
	char *def;

	model_column_copy(&copy, col);
	if (not_null)
		copy.nullable = false;
	def = column_def_text(c->backend, &copy, false);
	vars_set(&c->vars, var, def);
	free(def);
	model_column_release(&copy);
}

/* A column that takes over another's place: its NOT NULL and default. */
static void
refresh_final(struct op_ctx *c, const struct model_column *col)
{
	set_final_default(c, col);
	vars_flag(&c->vars, "not_null", !col->nullable);
	vars_set(&c->vars, "final_not_null", col->nullable ? "" : "true");
}

static void
refresh_add_column(struct op_ctx *c)
{
	const struct model_column *col = final_column(c, "column");

	if (col && !vars_has_flag(&c->vars, "ready"))
		refresh_def(c, "column_def", col, true);
}

static void
refresh_set_not_null(struct op_ctx *c)
{
	const struct model_column *col = final_column(c, "column");

	if (col)
		refresh_def(c, "column_def", col, true);
}

static void
refresh_rename_column(struct op_ctx *c)
{
	const struct model_column *col = final_column(c, "to");

	if (col == NULL)
		return;
	refresh_def(c, "to_final_def", col, false);
	refresh_final(c, col);
	vars_flag(&c->vars, "finalize", !col->nullable || col->default_sql[c->backend] != NULL);
}

static void
refresh_change_type(struct op_ctx *c)
{
	const struct model_column *col = final_column(c, "column");

	if (col == NULL)
		return;
	refresh_def(c, "final_def", col, false);
	refresh_final(c, col);
	vars_flag(&c->vars, "finalize", !col->nullable || col->default_sql[c->backend] != NULL);
	{
		struct model_column copy;
		char *def;

		model_column_copy(&copy, col);
		free(copy.name);
		copy.name = xstrdup(vars_find(&c->vars, "shadow_name")->values[0]);
		def = column_def_text(c->backend, &copy, false);
		vars_set(&c->vars, "shadow_final_def", def);
		free(def);
		model_column_release(&copy);
	}
}

static const struct {
	const char *kind;
	int (*rule)(struct op_ctx *c);
	void (*refresh)(struct op_ctx *c);	/* contract variables, after the migration */
} op_rules[] = {
	{ "create_table", op_create_table },
	{ "drop_table", op_drop_table },
	{ "rename_table", op_rename_table },
	{ "add_column", op_add_column, refresh_add_column },
	{ "drop_column", op_drop_column },
	{ "rename_column", op_rename_column, refresh_rename_column },
	{ "change_type", op_change_type, refresh_change_type },
	{ "set_not_null", op_set_not_null, refresh_set_not_null },
	{ "drop_not_null", op_drop_not_null },
	{ "set_default", op_set_default },
	{ "drop_default", op_drop_default },
	{ "add_index", op_add_index },
	{ "drop_index", op_drop_index },
	{ "add_unique", op_add_unique },
	{ "add_check", op_add_check },
	{ "add_foreign_key", op_add_foreign_key },
	{ "drop_constraint", op_drop_constraint },
	{ "backfill", op_backfill },
	{ "sql", op_sql },
};

/* ---- rendering ---------------------------------------------------------- */

/*
 * A template's own $dbphase$ quotes a PostgreSQL function body.  The body
 * holds names from the migration, which may contain that very text, so
 * once the statement is rendered the tag becomes one that occurs nowhere
 * else in it: $dbphase$, else $dbphase_1$, $dbphase_2$...
 */
#define DOLLAR_TAG "$dbphase$"

static size_t
count_occurrences(const char *text, const char *what)
{
	size_t n = 0;

	for (const char *p = strstr(text, what); p; p = strstr(p + 1, what))
		n++;
	return n;
}

/* Replace the DOLLAR_TAG at each of the n offsets of out by a tag found nowhere else. */
static void
dollar_tags_choose(struct strbuf *out, const size_t *at, size_t n)
{
	struct strbuf cand = STRBUF_INIT;
	char *tag = xstrdup(DOLLAR_TAG);
	unsigned k = 0;

	for (;;) {
		size_t i, from = 0;

		strbuf_reset(&cand);
		for (i = 0; i < n; i++) {
			strbuf_add(&cand, out->buf + from, at[i] - from);
			strbuf_addstr(&cand, tag);
			from = at[i] + strlen(DOLLAR_TAG);
		}
		strbuf_addstr(&cand, out->buf + from);
		if (count_occurrences(cand.buf, tag) == n)
			break;
		free(tag);
		tag = xasprintf("$dbphase_%u$", ++k);
	}
	strbuf_reset(out);
	strbuf_add(out, cand.buf, cand.len);
	strbuf_release(&cand);
	free(tag);
}

/*
 * Render one template element-wise: *count gets how many statements the
 * lists in it make (1 without lists).  Returns the rendered text of element
 * idx, or NULL with err set when a variable is unknown.
 */
static char *
render(struct op_ctx *c, const char *tpl, size_t idx, size_t *count, int line)
{
	struct strbuf out = STRBUF_INIT;
	const char *p = tpl;
	size_t n_list = (size_t)-1;
	size_t *tags = NULL, n_tags = 0, tags_alloc = 0;

	while (*p) {
		if (strncmp(p, DOLLAR_TAG, strlen(DOLLAR_TAG)) == 0) {
			XGROW(tags, n_tags, tags_alloc);
			tags[n_tags++] = out.len;
			strbuf_addstr(&out, DOLLAR_TAG);
			p += strlen(DOLLAR_TAG);
		} else if (p[0] == '{' && p[1] == '{') {
			strbuf_addch(&out, '{');
			p += 2;
		} else if (p[0] == '}' && p[1] == '}') {
			strbuf_addch(&out, '}');
			p += 2;
		} else if (*p == '{') {
			const char *end = strchr(p, '}');
			char *name;
			const struct var *v;

			if (end == NULL) {
				err_setf(c->err, DBPHASE_EBADINPUT, "%s:%d: unclosed '{' in template",
					 c->cop->source, line);
				strbuf_release(&out);
				free(tags);
				return NULL;
			}
			name = xstrndup(p + 1, (size_t)(end - p - 1));
			v = vars_find(&c->vars, name);
			if (v == NULL || (!v->is_list && v->n == 0)) {
				err_setf(c->err, DBPHASE_EBADINPUT,
					 "%s:%d: template uses '{%s}', which operation '%s' does not set here",
					 c->cop->source, line, name, c->cop->name);
				free(name);
				strbuf_release(&out);
				free(tags);
				return NULL;
			}
			free(name);
			if (v->is_list) {
				if (n_list != (size_t)-1 && n_list != v->n) {
					err_setf(c->err, DBPHASE_EBADINPUT,
						 "%s:%d: lists of different lengths in one template",
						 c->cop->source, line);
					strbuf_release(&out);
					free(tags);
					return NULL;
				}
				n_list = v->n;
				if (idx < v->n)
					strbuf_addstr(&out, v->values[idx]);
			} else {
				strbuf_addstr(&out, v->values[0]);
			}
			p = end + 1;
		} else {
			strbuf_addch(&out, *p++);
		}
	}
	*count = n_list == (size_t)-1 ? 1 : n_list;
	if (n_tags > 0)
		dollar_tags_choose(&out, tags, n_tags);
	free(tags);
	return strbuf_detach(&out);
}

/*
 * Render a list of statement templates, each once per element of the
 * lists it uses, appending to *out (of *n).
 */
static int
render_list(struct op_ctx *c, char *const *tpls, size_t n_tpls, int line, char ***out,
	    size_t *n)
{
	size_t j, k, count;
	char *text;

	for (j = 0; j < n_tpls; j++) {
		text = render(c, tpls[j], 0, &count, line);
		if (text == NULL)
			return c->err->code;
		for (k = 0; k < count; k++) {
			if (k > 0)
				text = render(c, tpls[j], k, &count, line);
			if (count == 0)
				break;
			*out = xrealloc(*out, (*n + 1) * sizeof(char *));
			(*out)[(*n)++] = text;
			text = NULL;
		}
		free(text);
	}
	return 0;
}

/*
 * The name of the trigger a statement creates (as it spells it: quoted),
 * or NULL: CREATE [OR REPLACE] [DEFINER = ...] TRIGGER [IF NOT EXISTS] name.
 * Caller frees.
 */
static char *
created_trigger(enum db_backend b, const char *sql)
{
	struct sqllex lx;
	struct sqllex_token t, first;
	int guard;

	sqllex_init(&lx, b, sql);
	if (sqllex_next_significant(&lx, &t) != SQLLEX_WORD || !sqllex_is_word(&lx, &t, "CREATE"))
		return NULL;
	for (guard = 0; guard < 16; guard++) {
		enum sqllex_kind k = sqllex_next_significant(&lx, &t);

		if (k == SQLLEX_END || k == SQLLEX_ERROR || sqllex_is(&lx, &t, "(") ||
		    sqllex_is_word(&lx, &t, "ON") || sqllex_is_word(&lx, &t, "AS"))
			return NULL;
		if (sqllex_is_word(&lx, &t, "TRIGGER"))
			break;
	}
	if (guard == 16)
		return NULL;
	sqllex_next_significant(&lx, &first);
	if (sqllex_is_word(&lx, &first, "IF")) {
		sqllex_next_significant(&lx, &t);	/* NOT */
		sqllex_next_significant(&lx, &t);	/* EXISTS */
		sqllex_next_significant(&lx, &first);
	}
	if (first.kind != SQLLEX_WORD && first.kind != SQLLEX_QUOTED)
		return NULL;
	/* A qualified name: schema.name. */
	t = first;
	for (;;) {
		struct sqllex_token dot, next;

		if (sqllex_next_significant(&lx, &dot) != SQLLEX_PUNCT || !sqllex_is(&lx, &dot, "."))
			break;
		sqllex_next_significant(&lx, &next);
		if (next.kind != SQLLEX_WORD && next.kind != SQLLEX_QUOTED)
			break;
		t = next;
	}
	return xstrndup(sql + first.pos, t.pos + t.len - first.pos);
}

/*
 * A step the catalog marks 'exercise': the table its triggers are on, and
 * the triggers its statements create.  None created: nothing to fire.
 */
static void
step_exercise(struct op_ctx *c, const struct catalog_step *cs, struct plan_step *st)
{
	const char *table = cs->ex_table ? arg_string(c, cs->ex_table) : NULL;
	size_t i;

	if (table == NULL)
		return;
	for (i = 0; i < st->n_sql; i++) {
		char *name = created_trigger(c->backend, st->sql[i]);

		if (name == NULL)
			continue;
		st->triggers = xrealloc(st->triggers, (st->n_triggers + 1) * sizeof(char *));
		st->triggers[st->n_triggers++] = name;
	}
	if (st->n_triggers > 0)
		st->exercise_table = xstrdup(table);
}

static bool
step_selected(const struct op_ctx *c, const struct catalog_step *s)
{
	size_t i;

	for (i = 0; i < s->n_when; i++) {
		const char *w = s->when[i];

		if (w[0] == '!' ? vars_has_flag(&c->vars, w + 1) : !vars_has_flag(&c->vars, w))
			return false;
	}
	return true;
}

static void
plan_step_release(struct plan_step *s)
{
	size_t i;

	free(s->op_kind);
	free(s->op_where);
	free(s->source);
	free(s->reason);
	for (i = 0; i < s->n_sql; i++)
		free(s->sql[i]);
	free(s->sql);
	free(s->table);
	free(s->set_sql);
	free(s->where_sql);
	free(s->column);
	free(s->set_default);
	for (i = 0; i < s->n_undo_sql; i++)
		free(s->undo_sql[i]);
	free(s->undo_sql);
	free(s->undo_default);
	free(s->exercise_table);
	for (i = 0; i < s->n_triggers; i++)
		free(s->triggers[i]);
	free(s->triggers);
	for (i = 0; i < s->n_keys; i++)
		free(s->keys[i]);
	free(s->keys);
	memset(s, 0, sizeof(*s));
}

struct step_list {
	struct plan_step *steps;
	size_t n;
	size_t alloc;
};

/* Render the operation's selected steps of the phases in mask (1 << phase). */
static int
emit_steps(struct op_ctx *c, struct step_list buckets[PHASE__COUNT], unsigned mask)
{
	size_t i, j, count;
	int rc = 0;

	for (i = 0; i < c->cop->n_steps && rc == 0; i++) {
		const struct catalog_step *cs = &c->cop->steps[i];
		struct plan_step st = { 0 };
		struct step_list *bl = &buckets[cs->phase];

		if (!(mask & (1u << cs->phase)) || !step_selected(c, cs))
			continue;
		if (cs->action == STEP_SQL && !cs->has_sql[c->backend])
			continue;
		/* Rebuilds are how SQLite alters what it cannot ALTER. */
		if (cs->action == STEP_REBUILD && c->backend != DB_BACKEND_SQLITE)
			continue;
		st.version = c->mig->version;
		st.phase = cs->phase;
		st.action = cs->action;
		st.atomic = cs->atomic;
		st.op_kind = xstrdup(c->mop->kind);
		st.op_index = (size_t)(c->mop - c->mig->ops);
		st.op_where = op_where(c);
		st.source = xasprintf("%s:%d", c->cop->source, cs->line);
		if (cs->reason) {
			st.reason = render(c, cs->reason, 0, &count, cs->line);
			if (st.reason == NULL) {
				rc = c->err->code;
				goto next;
			}
		} else {
			st.reason = xstrdup(c->cop->summary ? c->cop->summary : c->cop->name);
		}
		if (cs->action == STEP_SQL) {
			if ((rc = render_list(c, cs->sql[c->backend], cs->n_sql[c->backend],
					      cs->line, &st.sql, &st.n_sql)) < 0)
				goto next;
			if (st.n_sql == 0)
				goto next;	/* an empty list: nothing to run */
			step_exercise(c, cs, &st);
			if (cs->has_undo[c->backend]) {
				st.has_undo = true;
				if ((rc = render_list(c, cs->undo[c->backend], cs->n_undo[c->backend],
						      cs->line, &st.undo_sql, &st.n_undo_sql)) < 0)
					goto next;
			}
		} else if (cs->action == STEP_REBUILD) {
			const char *tname = arg_string(c, cs->rb_table);
			const char *cname = arg_string(c, cs->rb_column);
			const struct var *cv = vars_find(&c->vars, cs->rb_column);
			char *v;

			/* A column dbphase names (a shadow) comes in a variable. */
			if (cname == NULL && cv && !cv->is_list && cv->n == 1)
				cname = cv->values[0];
			if (tname == NULL || cname == NULL) {
				rc = err_setf(c->err, DBPHASE_EBADINPUT,
					      "%s:%d: rebuild 'table' and 'column' must name parameters",
					      c->cop->source, cs->line);
				goto next;
			}
			st.table = xstrdup(tname);
			st.column = xstrdup(cname);
			st.set_not_null = -1;
			if (cs->rb_not_null) {
				if (!(v = render(c, cs->rb_not_null, 0, &count, cs->line))) {
					rc = c->err->code;
					goto next;
				}
				st.set_not_null = strcmp(v, "true") == 0 ? 1 :
						  strcmp(v, "false") == 0 ? 0 : -1;
				free(v);
			}
			if (cs->rb_default) {
				if (!(v = render(c, cs->rb_default, 0, &count, cs->line))) {
					rc = c->err->code;
					goto next;
				}
				if (*v)
					st.set_default = v;
				else
					free(v);
			}
			if (cs->rb_drop_default) {
				if (!(v = render(c, cs->rb_drop_default, 0, &count, cs->line))) {
					rc = c->err->code;
					goto next;
				}
				st.drop_default = strcmp(v, "true") == 0;
				free(v);
			}
			if (cs->rb_undo_default) {
				if (!(v = render(c, cs->rb_undo_default, 0, &count, cs->line))) {
					rc = c->err->code;
					goto next;
				}
				st.has_undo_default = true;
				if (*v)
					st.undo_default = v;
				else
					free(v);
			}
			if (st.set_not_null < 0 && !st.set_default && !st.drop_default)
				goto next;	/* nothing to change */
		} else {
			const struct var *tv = vars_find(&c->vars, cs->bf_table);
			const struct model_column *pk[64];
			struct model_table *t;
			size_t n_pk;

			if (tv == NULL) {
				rc = err_setf(c->err, DBPHASE_EBADINPUT,
					      "%s:%d: backfill table '%s' is not a parameter",
					      c->cop->source, cs->line, cs->bf_table);
				goto next;
			}
			t = model_table(c->model, arg_string(c, cs->bf_table));
			if (t == NULL) {
				rc = op_error(c, NULL, "table of the backfill does not exist");
				goto next;
			}
			st.table = xstrdup(t->name);
			n_pk = model_primary_key(t, pk, 64);
			if (n_pk == 0) {
				rc = op_error(c, NULL, "table '%s' has no primary key: batched copies walk the key",
					      t->name);
				goto next;
			}
			st.keys = xcalloc(n_pk, sizeof(char *));
			for (j = 0; j < n_pk; j++)
				st.keys[st.n_keys++] = xstrdup(pk[j]->name);
			st.integer_key = n_pk == 1 && type_is_integer(pk[0]->type);
			st.set_sql = render(c, cs->bf_set, 0, &count, cs->line);
			if (st.set_sql == NULL) {
				rc = c->err->code;
				goto next;
			}
			if (cs->bf_where) {
				st.where_sql = render(c, cs->bf_where, 0, &count, cs->line);
				if (st.where_sql == NULL) {
					rc = c->err->code;
					goto next;
				}
			}
		}
		XGROW(bl->steps, bl->n, bl->alloc);
		st.seq = (int)bl->n + 1;
		bl->steps[bl->n++] = st;
		continue;
next:
		plan_step_release(&st);
	}
	return rc;
}

static int
plan_migration(struct plan *plan, const struct repo *repo, const struct catalog *cat,
	       const struct migration *mig, struct model *model,
	       struct dbphase_error *err)
{
	struct step_list buckets[PHASE__COUNT] = { { 0 } };
	struct op_ctx c = { 0 };
	/* Each operation's variables and refresh, for its contract steps. */
	struct {
		const struct catalog_op *cop;
		struct vars vars;
		void (*refresh)(struct op_ctx *c);
	} *later = xcalloc(mig->n_ops ? mig->n_ops : 1, sizeof(*later));
	size_t i, j, alloc, n_later = 0;
	int rc = 0, ph;

	c.repo = repo;
	c.mig = mig;
	c.model = model;
	c.backend = plan->backend;
	c.plan = plan;
	c.err = err;
	for (i = 0; i < mig->n_ops && rc == 0; i++) {
		const struct migration_op *mop = &mig->ops[i];

		c.mop = mop;
		c.cop = catalog_find(cat, mop->kind);
		vars_release(&c.vars);
		if (c.cop == NULL) {
			char *names = catalog_names(cat);

			rc = ydoc_errorf(&mig->doc, mop->node, err,
					 "unknown operation '" EXCERPT_FMT "'; expected one of: %s",
					 EXCERPT(mop->kind), names);
			free(names);
			break;
		}
		vars_flag(&c.vars, db_backend_name(c.backend), true);
		vars_flag(&c.vars, "pg12", c.backend == DB_BACKEND_POSTGRESQL &&
			  (plan->server_version == 0 || plan->server_version >= 120000));
		if ((rc = check_params(&c)) < 0)
			break;
		for (j = 0; j < sizeof(op_rules) / sizeof(op_rules[0]); j++)
			if (strcmp(op_rules[j].kind, mop->kind) == 0)
				break;
		if (j < sizeof(op_rules) / sizeof(op_rules[0]) &&
		    (rc = op_rules[j].rule(&c)) < 0)
			break;
		if (c.clash) {
			rc = op_error(&c, NULL, "%s", c.clash);
			break;
		}
		rc = emit_steps(&c, buckets, 1u << PHASE_EXPAND | 1u << PHASE_MIGRATE);
		later[n_later].cop = c.cop;
		later[n_later].vars = c.vars;
		later[n_later].refresh = j < sizeof(op_rules) / sizeof(op_rules[0]) ?
					 op_rules[j].refresh : NULL;
		n_later++;
		memset(&c.vars, 0, sizeof(c.vars));
	}
	/* Contract steps, from the schema as the whole migration leaves it. */
	for (i = 0; i < n_later; i++) {
		c.mop = &mig->ops[i];
		c.cop = later[i].cop;
		vars_release(&c.vars);
		c.vars = later[i].vars;
		memset(&later[i].vars, 0, sizeof(later[i].vars));
		if (rc == 0 && later[i].refresh)
			later[i].refresh(&c);
		if (rc == 0)
			rc = emit_steps(&c, buckets, 1u << PHASE_CONTRACT);
	}
	free(later);
	for (i = 0; rc == 0 && i < c.n_fills; i++)
		if (!c.fills[i].filled)
			rc = ydoc_errorf(&mig->doc, c.fills[i].at, err,
					 "add_column: column '%s' of '%s' is NOT NULL without a default, "
					 "so old code's inserts would fail: give it a default, or add a "
					 "backfill of it to this migration",
					 c.fills[i].column, c.fills[i].table);
	for (i = 0; i < c.n_fills; i++) {
		free(c.fills[i].table);
		free(c.fills[i].column);
	}
	free(c.fills);
	for (i = 0; i < c.n_renamed; i++) {
		free(c.renamed[i].name);
		free(c.renamed[i].from);
		free(c.renamed[i].where);
	}
	free(c.renamed);
	free(c.clash);
	vars_release(&c.vars);
	alloc = plan->n_steps;
	for (ph = 0; ph < PHASE__COUNT; ph++) {
		for (i = 0; i < buckets[ph].n; i++) {
			if (rc == 0) {
				XGROW(plan->steps, plan->n_steps, alloc);
				plan->steps[plan->n_steps++] = buckets[ph].steps[i];
			} else {
				plan_step_release(&buckets[ph].steps[i]);
			}
		}
		free(buckets[ph].steps);
	}
	return rc;
}

int
plan_build_for_server(struct plan *plan, const struct repo *repo, const struct catalog *cat,
		      enum db_backend backend, int server_version, struct dbphase_error *err)
{
	struct model model = { 0 };
	size_t i;
	int rc = 0;

	memset(plan, 0, sizeof(*plan));
	plan->backend = backend;
	plan->server_version = server_version;
	plan->latest = repo_latest(repo);
	for (i = 0; i < repo->n_migrations && rc == 0; i++)
		rc = plan_migration(plan, repo, cat, &repo->migrations[i], &model, err);
	model_release(&model);
	if (rc < 0)
		plan_release(plan);
	return rc;
}

int
plan_build(struct plan *plan, const struct repo *repo, const struct catalog *cat,
	   enum db_backend backend, struct dbphase_error *err)
{
	return plan_build_for_server(plan, repo, cat, backend, 0, err);
}

void
plan_release(struct plan *plan)
{
	size_t i;

	for (i = 0; i < plan->n_steps; i++)
		plan_step_release(&plan->steps[i]);
	free(plan->steps);
	for (i = 0; i < plan->n_checks; i++)
		check_release(&plan->checks[i]);
	free(plan->checks);
	memset(plan, 0, sizeof(*plan));
}

char *
plan_step_id(const struct plan_step *step)
{
	return xasprintf("v%03lld.%s.%d", (long long)step->version, phase_name(step->phase),
			 step->seq);
}

size_t
plan_count(const struct plan *plan, int64_t version, enum phase phase)
{
	size_t i, n = 0;

	for (i = 0; i < plan->n_steps; i++)
		if (plan->steps[i].version == version && plan->steps[i].phase == phase)
			n++;
	return n;
}
