/*
 * plan/model.c - the replayed schema: tables, columns and indexes.
 */
#include "plan/model.h"

#include <stdlib.h>
#include <string.h>

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
model_table_release(struct model_table *t)
{
	size_t i;

	for (i = 0; i < t->n_columns; i++)
		model_column_release(&t->columns[i]);
	for (i = 0; i < t->n_indexes; i++)
		model_index_release(&t->indexes[i]);
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
