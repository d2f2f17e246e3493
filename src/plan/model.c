/*
 * plan/model.c - the replayed schema: tables, columns, indexes,
 * constraints, and the names dbphase generated.
 */
#include "plan/model.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xmalloc.h"

void
model_column_release(struct model_column *c)
{
	int b;

	free(c->name);
	free(c->type);
	for (b = 0; b < 3; b++)
		free(c->default_sql[b]);
	memset(c, 0, sizeof(*c));
}

void
model_column_copy(struct model_column *dst, const struct model_column *src)
{
	int b;

	*dst = *src;
	dst->name = xstrdup(src->name);
	dst->type = xstrdup(src->type);
	for (b = 0; b < 3; b++)
		dst->default_sql[b] = xstrdup_or_null(src->default_sql[b]);
}

static void
model_index_release(struct model_index *ix)
{
	size_t i;

	free(ix->name);
	for (i = 0; i < ix->n_columns; i++)
		free(ix->columns[i]);
	free(ix->columns);
	memset(ix, 0, sizeof(*ix));
}

static void
free_names(char **v, size_t n)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void
model_constraint_release(struct model_constraint *k)
{
	free(k->name);
	free(k->where);
	free(k->emul_ins);
	free(k->emul_upd);
	free(k->check);
	free(k->row_table);
	free_names(k->row_names, k->n_row);
	free_names(k->row_columns, k->n_row);
	free_names(k->columns, k->n_columns);
	free(k->ref_table);
	free_names(k->ref_columns, k->n_columns);
	free(k->on_delete);
	memset(k, 0, sizeof(*k));
}

static void
model_table_release(struct model_table *t)
{
	size_t i;

	for (i = 0; i < t->n_columns; i++)
		model_column_release(&t->columns[i]);
	for (i = 0; i < t->n_indexes; i++)
		model_index_release(&t->indexes[i]);
	for (i = 0; i < t->n_constraints; i++)
		model_constraint_release(&t->constraints[i]);
	free(t->constraints);
	free(t->columns);
	free(t->indexes);
	free(t->name);
	memset(t, 0, sizeof(*t));
}

void
model_release(struct model *m)
{
	size_t i;

	for (i = 0; i < m->n_tables; i++)
		model_table_release(&m->tables[i]);
	for (i = 0; i < m->n_gone; i++) {
		free(m->gone[i].table);
		free(m->gone[i].column);
		free(m->gone[i].what);
	}
	for (i = 0; i < m->n_names; i++) {
		free(m->names[i].name);
		free(m->names[i].key);
		free(m->names[i].where);
	}
	free(m->names);
	free(m->tables);
	free(m->gone);
	memset(m, 0, sizeof(*m));
}

void
model_note_gone(struct model *m, const char *table, const char *column, const char *what)
{
	struct model_gone *g;

	m->gone = xrealloc(m->gone, (m->n_gone + 1) * sizeof(*m->gone));
	g = &m->gone[m->n_gone++];
	g->table = xstrdup(table);
	g->column = xstrdup_or_null(column);
	g->what = xstrdup(what);
}

const char *
model_gone_what(const struct model *m, const char *table, const char *column)
{
	size_t i;

	for (i = m->n_gone; i-- > 0;) {
		const struct model_gone *g = &m->gone[i];

		if (strcmp(g->table, table) == 0 &&
		    (column ? g->column && strcmp(g->column, column) == 0 : g->column == NULL))
			return g->what;
	}
	return NULL;
}

struct model_table *
model_table(struct model *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->n_tables; i++)
		if (strcmp(m->tables[i].name, name) == 0)
			return &m->tables[i];
	return NULL;
}

struct model_table *
model_add_table(struct model *m, const char *name)
{
	struct model_table *t;

	m->tables = xrealloc(m->tables, (m->n_tables + 1) * sizeof(*m->tables));
	t = &m->tables[m->n_tables++];
	memset(t, 0, sizeof(*t));
	t->name = xstrdup(name);
	return t;
}

void
model_drop_table(struct model *m, const char *name)
{
	struct model_table *t = model_table(m, name);
	size_t i;

	if (t == NULL)
		return;
	i = (size_t)(t - m->tables);
	model_table_release(t);
	memmove(&m->tables[i], &m->tables[i + 1], (m->n_tables - i - 1) * sizeof(*t));
	m->n_tables--;
}

struct model_column *
model_column(struct model_table *t, const char *name)
{
	size_t i;

	for (i = 0; i < t->n_columns; i++)
		if (strcmp(t->columns[i].name, name) == 0)
			return &t->columns[i];
	return NULL;
}

struct model_column *
model_add_column(struct model_table *t, const struct model_column *col)
{
	struct model_column *c;

	t->columns = xrealloc(t->columns, (t->n_columns + 1) * sizeof(*t->columns));
	c = &t->columns[t->n_columns++];
	model_column_copy(c, col);
	return c;
}

void
model_drop_column(struct model_table *t, const char *name)
{
	struct model_column *c = model_column(t, name);
	size_t i, j;

	if (c == NULL)
		return;
	i = (size_t)(c - t->columns);
	model_column_release(c);
	memmove(&t->columns[i], &t->columns[i + 1], (t->n_columns - i - 1) * sizeof(*c));
	t->n_columns--;
	/*
	 * A constraint that uses a dropped column goes with it, as on
	 * PostgreSQL; a check no longer maps the column to a name.
	 */
	for (i = 0; i < t->n_constraints;) {
		struct model_constraint *k = &t->constraints[i];

		if (model_constraint_uses(t, k, t->name, name)) {
			model_drop_constraint(t, k->name);
			continue;
		}
		for (j = 0; j < k->n_row; j++)
			if (k->row_columns[j] && strcmp(k->row_columns[j], name) == 0) {
				free(k->row_columns[j]);
				k->row_columns[j] = NULL;
			}
		i++;
	}
	/* An index on a dropped column goes with it, as in every backend. */
	for (i = 0; i < t->n_indexes;) {
		bool uses = false;

		for (j = 0; j < t->indexes[i].n_columns; j++)
			if (strcmp(t->indexes[i].columns[j], name) == 0)
				uses = true;
		if (uses)
			model_drop_index(t, t->indexes[i].name);
		else
			i++;
	}
}

struct model_index *
model_find_index(struct model *m, const char *name, struct model_table **table)
{
	size_t i, j;

	for (i = 0; i < m->n_tables; i++)
		for (j = 0; j < m->tables[i].n_indexes; j++)
			if (strcmp(m->tables[i].indexes[j].name, name) == 0) {
				if (table)
					*table = &m->tables[i];
				return &m->tables[i].indexes[j];
			}
	return NULL;
}

void
model_add_index(struct model_table *t, const char *name, char **columns,
		size_t n_columns, bool unique)
{
	struct model_index *ix;
	size_t i;

	t->indexes = xrealloc(t->indexes, (t->n_indexes + 1) * sizeof(*t->indexes));
	ix = &t->indexes[t->n_indexes++];
	ix->name = xstrdup(name);
	ix->unique = unique;
	ix->constraint = false;
	ix->n_columns = n_columns;
	ix->columns = xcalloc(n_columns, sizeof(char *));
	for (i = 0; i < n_columns; i++)
		ix->columns[i] = xstrdup(columns[i]);
}

void
model_drop_index(struct model_table *t, const char *name)
{
	size_t i;

	for (i = 0; i < t->n_indexes; i++) {
		if (strcmp(t->indexes[i].name, name) == 0) {
			model_index_release(&t->indexes[i]);
			memmove(&t->indexes[i], &t->indexes[i + 1],
				(t->n_indexes - i - 1) * sizeof(t->indexes[0]));
			t->n_indexes--;
			return;
		}
	}
}

size_t
model_primary_key(const struct model_table *t, const struct model_column **cols,
		  size_t max)
{
	size_t i, n = 0;

	for (i = 0; i < t->n_columns; i++)
		if (t->columns[i].primary_key && n < max)
			cols[n++] = &t->columns[i];
	return n;
}

struct model_constraint *
model_add_constraint(struct model_table *t, const char *name, enum model_constraint_kind kind,
		     const char *where)
{
	struct model_constraint *k;

	t->constraints = xrealloc(t->constraints, (t->n_constraints + 1) * sizeof(*k));
	k = &t->constraints[t->n_constraints++];
	memset(k, 0, sizeof(*k));
	k->name = xstrdup(name);
	k->kind = kind;
	k->where = xstrdup(where);
	return k;
}

struct model_constraint *
model_constraint(struct model_table *t, const char *name)
{
	size_t i;

	for (i = 0; i < t->n_constraints; i++)
		if (strcmp(t->constraints[i].name, name) == 0)
			return &t->constraints[i];
	return NULL;
}

void
model_drop_constraint(struct model_table *t, const char *name)
{
	struct model_constraint *k = model_constraint(t, name);
	size_t i;

	if (k == NULL)
		return;
	i = (size_t)(k - t->constraints);
	model_constraint_release(k);
	memmove(&t->constraints[i], &t->constraints[i + 1],
		(t->n_constraints - i - 1) * sizeof(*k));
	t->n_constraints--;
}

static bool
ident_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '_' || ch == '$' || (unsigned char)ch >= 0x80;
}

/*
 * Whether word occurs in text as a whole word, in any case: a reading of
 * the expression that can only err on the side of "it does" (a word in a
 * string literal counts), which is the safe side for carrying a check.
 */
static bool
mentions(const char *text, const char *word)
{
	size_t n = strlen(word);
	const char *p;

	if (n == 0)
		return false;
	for (p = text; *p; p++)
		if (strncasecmp(p, word, n) == 0 && (p == text || !ident_char(p[-1])) &&
		    !ident_char(p[n]))
			return true;
	return false;
}

static bool
listed(char *const *names, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (names[i] && strcmp(names[i], name) == 0)
			return true;
	return false;
}

bool
model_check_reads(const struct model_constraint *k, size_t i)
{
	return k->row_columns[i] && mentions(k->check, k->row_names[i]);
}

bool
model_constraint_uses(const struct model_table *t, const struct model_constraint *k,
		      const char *table, const char *column)
{
	size_t i;

	if (k->kind == MODEL_FOREIGN_KEY)
		return (strcmp(t->name, table) == 0 && listed(k->columns, k->n_columns, column)) ||
		       (strcmp(k->ref_table, table) == 0 &&
			listed(k->ref_columns, k->n_columns, column));
	if (strcmp(t->name, table) != 0)
		return false;
	for (i = 0; i < k->n_row; i++)
		if (k->row_columns[i] && strcmp(k->row_columns[i], column) == 0)
			return model_check_reads(k, i);
	return false;
}

static void
rename_in(char **names, size_t n, const char *from, const char *to)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (names[i] && strcmp(names[i], from) == 0) {
			free(names[i]);
			names[i] = xstrdup(to);
		}
}

void
model_rename_column_refs(struct model *m, const char *table, const char *from, const char *to)
{
	size_t i, j;

	for (i = 0; i < m->n_tables; i++) {
		struct model_table *t = &m->tables[i];

		for (j = 0; j < t->n_constraints; j++) {
			struct model_constraint *k = &t->constraints[j];

			if (strcmp(t->name, table) == 0) {
				rename_in(k->row_columns, k->n_row, from, to);
				rename_in(k->columns, k->n_columns, from, to);
			}
			if (k->ref_table && strcmp(k->ref_table, table) == 0)
				rename_in(k->ref_columns, k->n_columns, from, to);
		}
	}
}

void
model_rename_table_refs(struct model *m, const char *from, const char *to)
{
	size_t i, j;

	for (i = 0; i < m->n_tables; i++)
		for (j = 0; j < m->tables[i].n_constraints; j++) {
			struct model_constraint *k = &m->tables[i].constraints[j];

			if (k->ref_table && strcmp(k->ref_table, from) == 0) {
				free(k->ref_table);
				k->ref_table = xstrdup(to);
			}
		}
}

const char *
model_claim_name(struct model *m, const char *name, const char *key, const char *where)
{
	struct model_name *n;
	size_t i;

	for (i = 0; i < m->n_names; i++)
		if (strcmp(m->names[i].name, name) == 0)
			return strcmp(m->names[i].key, key) == 0 ? NULL : m->names[i].where;
	m->names = xrealloc(m->names, (m->n_names + 1) * sizeof(*m->names));
	n = &m->names[m->n_names++];
	n->name = xstrdup(name);
	n->key = xstrdup(key);
	n->where = xstrdup(where);
	return NULL;
}
