/*
 * plan/check.c - rendering verify's comparisons (see check.h) for one
 * backend, offline: the condition that tells a row whose derived column
 * differs from what it must equal.
 */
#include "plan/check.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/dialect.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "plan/types.h"

/* expected as the column stores it: cast to the column's type where a cast says how. */
static void
add_stored(enum db_backend b, enum check_kind kind, const char *type, const char *expected,
	   struct strbuf *out)
{
	struct strbuf target = STRBUF_INIT;

	/* A renamed column's twin has its type already. */
	if (kind != CHECK_RENAME && type && type_render_cast(type, b, &target))
		strbuf_addf(out, "CAST((%s) AS %s)", expected, target.buf);
	else
		strbuf_addf(out, "(%s)", expected);
	strbuf_release(&target);
}

static void
render_differs(enum db_backend b, enum check_kind kind, const char *qcol, const char *type,
	       const char *expected, struct strbuf *out)
{
	struct strbuf stored = STRBUF_INIT;

	add_stored(b, kind, type, expected, &stored);
	/*
	 * New code may write a derived column itself, with any value (the
	 * trigger keeps what it wrote): only a row left NULL where the
	 * expression has a value is a row the triggers and batches missed.
	 */
	if (kind == CHECK_DERIVED) {
		strbuf_addf(out, "%s IS NULL AND %s IS NOT NULL", qcol, stored.buf);
		strbuf_release(&stored);
		return;
	}
	switch (b) {
	case DB_BACKEND_POSTGRESQL:
		strbuf_addf(out, "CAST(%s AS text) IS DISTINCT FROM CAST(%s AS text)", qcol,
			    stored.buf);
		break;
	case DB_BACKEND_MYSQL:
		if (type && type_is_string(type))
			strbuf_addf(out, "NOT (CAST(CONVERT(%s USING utf8mb4) AS BINARY) <=> "
				    "CAST(CONVERT(%s USING utf8mb4) AS BINARY))", qcol, stored.buf);
		else
			strbuf_addf(out, "NOT (%s <=> %s)", qcol, stored.buf);
		break;
	default:
		strbuf_addf(out, "%s IS NOT %s", qcol, stored.buf);
		break;
	}
	strbuf_release(&stored);
}

void
check_init(struct plan_check *chk, enum db_backend backend, enum check_kind kind,
	   const char *table, char *const *keys, size_t n_keys, const char *column,
	   const char *type, const char *expected, const char *source_column,
	   const char *source_text)
{
	struct strbuf q = STRBUF_INIT, sb = STRBUF_INIT;
	size_t i;

	memset(chk, 0, sizeof(*chk));
	chk->kind = kind;
	chk->table = xstrdup(table);
	chk->keys = xcalloc(n_keys ? n_keys : 1, sizeof(char *));
	for (i = 0; i < n_keys; i++)
		chk->keys[chk->n_keys++] = xstrdup(keys[i]);
	chk->column = xstrdup(column);
	chk->source = xstrdup(source_text);
	dialect_quote_ident(backend, &q, column);
	render_differs(backend, kind, q.buf, type, expected, &sb);
	chk->differs_sql = strbuf_detach(&sb);
	chk->needs = xcalloc(2, sizeof(char *));
	chk->needs[chk->n_needs++] = xstrdup(column);
	if (source_column)
		chk->needs[chk->n_needs++] = xstrdup(source_column);
	strbuf_release(&q);
}

void
check_release(struct plan_check *chk)
{
	size_t i;

	free(chk->op_kind);
	free(chk->op_where);
	free(chk->table);
	for (i = 0; i < chk->n_keys; i++)
		free(chk->keys[i]);
	free(chk->keys);
	free(chk->column);
	free(chk->source);
	free(chk->differs_sql);
	for (i = 0; i < chk->n_needs; i++)
		free(chk->needs[i]);
	free(chk->needs);
	memset(chk, 0, sizeof(*chk));
}

const char *
check_kind_name(enum check_kind kind)
{
	switch (kind) {
	case CHECK_RENAME:
		return "rename_column";
	case CHECK_TYPE:
		return "change_type";
	case CHECK_DERIVED:
		return "backfill";
	case CHECK_REVERSE:
		return "backfill (reverse)";
	}
	return "?";
}
