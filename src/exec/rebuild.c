/*
 * exec/rebuild.c - SQLite table rebuilds: what ALTER TABLE cannot do there
 * (change a column's NOT NULL or default) done by SQLite's own recipe:
 * create the new table, copy the rows, drop the old, rename the new, and
 * recreate the indexes and triggers the old one had, in one transaction.
 *
 * The new definition is the table's live CREATE TABLE text with one column
 * edited, so everything else about the table (other columns added since
 * the plan was made, CHECKs, collations, AUTOINCREMENT and its high-water
 * mark) survives.  The text is cut into tokens by core/sqllex, never
 * matched with patterns: quotes, brackets, comments and parentheses are
 * respected.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/dialect.h"
#include "core/sqllex.h"
#include "core/xmalloc.h"
#include "exec/exec.h"

struct token {
	const char *s;
	size_t len;
	struct sqllex_token lexed;
};

struct tokens {
	struct sqllex lx;
	struct token *t;
	size_t n;
	size_t alloc;
};

/* The significant tokens of SQLite text (core/sqllex: comments skipped). */
static void
tokenize(const char *text, struct tokens *out)
{
	struct sqllex_token t;

	sqllex_init(&out->lx, DB_BACKEND_SQLITE, text);
	while (sqllex_next_significant(&out->lx, &t) != SQLLEX_END) {
		XGROW(out->t, out->n, out->alloc);
		out->t[out->n].s = text + t.pos;
		out->t[out->n].len = t.len;
		out->t[out->n].lexed = t;
		out->n++;
	}
}

static bool
tok_is(const struct token *t, const char *word)
{
	return t->len == strlen(word) && strncasecmp(t->s, word, t->len) == 0;
}

/* Does token k name column (quoted or not; SQLite names are case-blind)? */
static bool
tok_names(const struct tokens *tk, size_t k, const char *column)
{
	char *name = sqllex_ident(&tk->lx, &tk->t[k].lexed);
	bool same = name != NULL && strcasecmp(name, column) == 0;

	free(name);
	return same;
}

/* Index just past the term that starts at i (a parenthesised run or one token). */
static size_t
term_end(const struct tokens *tk, size_t i, size_t end)
{
	int depth = 0;

	if (i < end && (tok_is(&tk->t[i], "+") || tok_is(&tk->t[i], "-")))
		i++;
	if (i < end && tok_is(&tk->t[i], "(")) {
		for (; i < end; i++) {
			if (tok_is(&tk->t[i], "("))
				depth++;
			else if (tok_is(&tk->t[i], ")") && --depth == 0)
				return i + 1;
		}
		return end;
	}
	return i < end ? i + 1 : end;
}

/*
 * Append token k; when the token before it in the source was also written,
 * keep the source's spacing between them, else put one space.
 */
static void
emit_token(const struct tokens *tk, size_t k, bool prev_written, bool first,
	   struct strbuf *out)
{
	if (!first) {
		if (prev_written)
			strbuf_add(out, tk->t[k - 1].s + tk->t[k - 1].len,
				   (size_t)(tk->t[k].s - (tk->t[k - 1].s + tk->t[k - 1].len)));
		else
			strbuf_addch(out, ' ');
	}
	strbuf_add(out, tk->t[k].s, tk->t[k].len);
}

/* Rewrite the column definition in tokens [lo, hi) into out. */
static void
edit_column(const struct tokens *tk, size_t lo, size_t hi, const struct exec_job *job,
	    struct strbuf *out)
{
	bool has_not_null = false, first = true, prev_written = false;
	size_t i;

	for (i = lo; i < hi;) {
		const struct token *t = &tk->t[i];

		if (tok_is(t, "NOT") && i + 1 < hi && tok_is(&tk->t[i + 1], "NULL")) {
			has_not_null = true;
			if (job->set_not_null == 0) {
				i += 2;
				prev_written = false;
				continue;
			}
		} else if (tok_is(t, "NULL") && job->set_not_null == 1 &&
			   !(i > lo && tok_is(&tk->t[i - 1], "NOT")) &&
			   !(i > lo && tok_is(&tk->t[i - 1], "DEFAULT"))) {
			i++;	/* an explicit NULL constraint gives way to NOT NULL */
			prev_written = false;
			continue;
		} else if (tok_is(t, "DEFAULT") && (job->set_default || job->drop_default)) {
			i = term_end(tk, i + 1, hi);
			prev_written = false;
			continue;
		}
		emit_token(tk, i, prev_written, first, out);
		first = false;
		prev_written = true;
		i++;
	}
	if (job->set_not_null == 1 && !has_not_null)
		strbuf_addstr(out, " NOT NULL");
	if (job->set_default)
		strbuf_addf(out, " DEFAULT %s", job->set_default);
}

int
exec_sqlite_edit_table(const char *create_sql, const char *new_name,
		       const struct exec_job *job, struct strbuf *out,
		       struct dbphase_error *err)
{
	struct tokens tk = { 0 };
	size_t i, open = 0, start;
	int depth = 0, rc = 0;
	bool found = false;

	tokenize(create_sql, &tk);
	for (i = 0; i < tk.n && !open; i++)
		if (tok_is(&tk.t[i], "("))
			open = i;
	if (!open) {
		rc = err_setf(err, DBPHASE_EERROR, "cannot read the definition of table '%s'",
			      job->table);
		goto out;
	}
	strbuf_addstr(out, "CREATE TABLE ");
	dialect_quote_ident(DB_BACKEND_SQLITE, out, new_name);
	strbuf_addstr(out, " (");
	start = open + 1;
	for (i = open; i < tk.n; i++) {
		const struct token *t = &tk.t[i];

		if (tok_is(t, "("))
			depth++;
		else if (tok_is(t, ")"))
			depth--;
		if ((depth == 1 && tok_is(t, ",")) || depth == 0) {
			/* One element: [start, i). */
			if (start > open + 1)
				strbuf_addstr(out, ", ");
			if (start < i && tok_names(&tk, start, job->column) &&
			    !tok_is(&tk.t[start], "CONSTRAINT")) {
				edit_column(&tk, start, i, job, out);
				found = true;
			} else {
				size_t k;

				for (k = start; k < i; k++)
					emit_token(&tk, k, true, k == start, out);
			}
			start = i + 1;
			if (depth == 0) {
				strbuf_addch(out, ')');
				for (i++; i < tk.n; i++) {	/* WITHOUT ROWID, STRICT */
					strbuf_addch(out, ' ');
					strbuf_add(out, tk.t[i].s, tk.t[i].len);
				}
				break;
			}
		}
	}
	if (!found)
		rc = err_setf(err, DBPHASE_ENOTFOUND, "table '%s' has no column '%s'", job->table,
			      job->column);
out:
	free(tk.t);
	return rc;
}

static int
query_column(struct db_conn *conn, const char *sql, const char *arg, char ***out,
	     size_t *n, struct dbphase_error *err)
{
	struct db_param p = DB_TEXT(arg);
	struct db_result *res;
	size_t i;
	int rc = db_query(conn, sql, &p, 1, &res, err);

	if (rc < 0)
		return rc;
	*n = res->n_rows;
	*out = xcalloc(res->n_rows ? res->n_rows : 1, sizeof(char *));
	for (i = 0; i < res->n_rows; i++)
		(*out)[i] = xstrdup_or_null(db_result_value(res, i, 0));
	db_result_free(res);
	return 0;
}

static void
free_list(char **list, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

/*
 * AUTOINCREMENT's high-water mark of table in sqlite_sequence, which
 * DROP TABLE forgets: a rebuilt table would hand out again the ids of the
 * rows deleted last.  *seq is -1 when there is none.
 */
static int
sequence_get(struct db_conn *conn, const char *table, int64_t *seq, struct dbphase_error *err)
{
	char **v = NULL;
	size_t n = 0;
	int rc;

	*seq = -1;
	rc = query_column(conn, "SELECT name FROM sqlite_master WHERE type = 'table' "
			  "AND name = $1", "sqlite_sequence", &v, &n, err);
	if (rc < 0 || n == 0)
		goto out;
	free_list(v, n);
	v = NULL;
	n = 0;
	rc = query_column(conn, "SELECT seq FROM sqlite_sequence WHERE name = $1", table, &v, &n,
			  err);
	if (rc == 0 && n > 0 && v[0])
		*seq = strtoll(v[0], NULL, 10);
out:
	free_list(v, n);
	return rc;
}

static int
sequence_put(struct db_conn *conn, const char *table, int64_t seq, struct dbphase_error *err)
{
	struct db_param p[2] = { DB_TEXT(table), DB_INT(seq) };
	int rc;

	if (seq < 0)
		return 0;
	rc = db_query(conn, "INSERT INTO sqlite_sequence (name, seq) SELECT $1, $2 "
		      "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = $1)",
		      p, 2, NULL, err);
	if (rc == 0)
		rc = db_query(conn, "UPDATE sqlite_sequence SET seq = $2 WHERE name = $1 AND seq < $2",
			      p, 2, NULL, err);
	return rc;
}

static int
exec_sql(struct db_conn *conn, struct strbuf *sql, struct dbphase_error *err)
{
	int rc = db_exec(conn, sql->buf, err);

	strbuf_reset(sql);
	return rc;
}

int
exec_sqlite_rebuild(struct db_conn *conn, const struct exec_job *job,
		    const struct exec_hooks *h, struct dbphase_error *err)
{
	struct strbuf sql = STRBUF_INIT, cols = STRBUF_INIT;
	char *tmp = xasprintf("%s__dbp_rebuild", job->table);
	char **objects = NULL, **create = NULL, **names = NULL;
	size_t n_objects = 0, n_create = 0, n_names = 0, i;
	struct dbphase_error ignored = DBPHASE_ERROR_INIT;
	int64_t seq;
	int rc;

	if ((rc = conn->drv->begin(conn, err)) < 0)
		goto out;
	if ((rc = query_column(conn, "SELECT sql FROM sqlite_master WHERE type = 'table' "
			       "AND name = $1", job->table, &create, &n_create, err)) < 0)
		goto fail;
	if (n_create != 1 || create[0] == NULL) {
		rc = err_setf(err, DBPHASE_ENOTFOUND, "table '%s' does not exist", job->table);
		goto fail;
	}
	rc = query_column(conn, "SELECT sql FROM sqlite_master WHERE tbl_name = $1 "
			  "AND type IN ('index', 'trigger') AND sql IS NOT NULL ORDER BY type, name",
			  job->table, &objects, &n_objects, err);
	if (rc < 0)
		goto fail;
	rc = query_column(conn, "SELECT name FROM pragma_table_info($1) ORDER BY cid",
			  job->table, &names, &n_names, err);
	if (rc < 0 || (rc = sequence_get(conn, job->table, &seq, err)) < 0)
		goto fail;
	for (i = 0; i < n_names; i++) {
		if (i)
			strbuf_addstr(&cols, ", ");
		dialect_quote_ident(DB_BACKEND_SQLITE, &cols, names[i]);
	}
	strbuf_addstr(&sql, "DROP TABLE IF EXISTS ");
	dialect_quote_ident(DB_BACKEND_SQLITE, &sql, tmp);
	if ((rc = exec_sql(conn, &sql, err)) < 0)
		goto fail;
	if ((rc = exec_sqlite_edit_table(create[0], tmp, job, &sql, err)) < 0 ||
	    (rc = exec_sql(conn, &sql, err)) < 0)
		goto fail;
	strbuf_addstr(&sql, "INSERT INTO ");
	dialect_quote_ident(DB_BACKEND_SQLITE, &sql, tmp);
	strbuf_addf(&sql, " (%s) SELECT %s FROM ", cols.buf, cols.buf);
	dialect_quote_ident(DB_BACKEND_SQLITE, &sql, job->table);
	if ((rc = exec_sql(conn, &sql, err)) < 0) {
		err_prefixf(err, "copying '%s' into its new definition", job->table);
		goto fail;
	}
	strbuf_addstr(&sql, "DROP TABLE ");
	dialect_quote_ident(DB_BACKEND_SQLITE, &sql, job->table);
	if ((rc = exec_sql(conn, &sql, err)) < 0)
		goto fail;
	strbuf_addstr(&sql, "ALTER TABLE ");
	dialect_quote_ident(DB_BACKEND_SQLITE, &sql, tmp);
	strbuf_addstr(&sql, " RENAME TO ");
	dialect_quote_ident(DB_BACKEND_SQLITE, &sql, job->table);
	if ((rc = exec_sql(conn, &sql, err)) < 0 ||
	    (rc = sequence_put(conn, job->table, seq, err)) < 0)
		goto fail;
	for (i = 0; i < n_objects; i++)
		if ((rc = db_exec(conn, objects[i], err)) < 0) {
			err_prefixf(err, "recreating '%s' after rebuilding '%s'", objects[i],
				    job->table);
			goto fail;
		}
	if (h && h->job_commit && (rc = h->job_commit(h->arg, conn, job, err)) < 0)
		goto fail;
	if ((rc = conn->drv->commit(conn, err)) == 0)
		goto out;
fail:
	if (conn->in_transaction)
		conn->drv->rollback(conn, &ignored);
out:
	err_release(&ignored);
	free_list(objects, n_objects);
	free_list(create, n_create);
	free_list(names, n_names);
	strbuf_release(&sql);
	strbuf_release(&cols);
	free(tmp);
	return rc;
}
