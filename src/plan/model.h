/*
 * plan/model.h - the schema as the migrations build it, version by version.
 *
 * The planner replays every migration's operations on this model, so that
 * it knows, at each operation, which tables, columns, types and indexes
 * exist: that is how it refuses a rename onto an existing name or a
 * backfill of a column that is not there, and how it knows the type of a
 * column it must shadow, all without a database connection.
 */
#ifndef DBPHASE_PLAN_MODEL_H
#define DBPHASE_PLAN_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct model_column {
	char *name;
	char *type;		/* portable type text */
	bool nullable;
	bool primary_key;
	bool autoincrement;
	char *default_sql[3];	/* rendered default per backend, or NULL */
	int64_t added_in;	/* the version whose migration added it */
};

struct model_index {
	char *name;
	char **columns;
	size_t n_columns;
	bool unique;
};

struct model_table {
	char *name;
	struct model_column *columns;
	size_t n_columns;
	struct model_index *indexes;
	size_t n_indexes;
	int64_t created_in;
};

/*
 * What became of a table or column that is gone, for messages about later
 * uses of it: "dropped by drop_column at versions/002_x.yaml:3:5".
 */
struct model_gone {
	char *table;
	char *column;		/* NULL: the table itself */
	char *what;
};

struct model {
	struct model_table *tables;
	size_t n_tables;
	struct model_gone *gone;
	size_t n_gone;
};

void model_release(struct model *m);

/* Note what became of table (column NULL) or of one of its columns. */
void model_note_gone(struct model *m, const char *table, const char *column,
		     const char *what);
/* The latest note about table or column, or NULL. */
const char *model_gone_what(const struct model *m, const char *table, const char *column);

struct model_table *model_table(struct model *m, const char *name);
struct model_table *model_add_table(struct model *m, const char *name);
void model_drop_table(struct model *m, const char *name);

struct model_column *model_column(struct model_table *t, const char *name);
/* Appends a copy of col (deep); returns the model's column. */
struct model_column *model_add_column(struct model_table *t, const struct model_column *col);
void model_drop_column(struct model_table *t, const char *name);
void model_column_release(struct model_column *c);
void model_column_copy(struct model_column *dst, const struct model_column *src);

/* The table and index of an index name, searching every table. */
struct model_index *model_find_index(struct model *m, const char *name,
				     struct model_table **table);
void model_add_index(struct model_table *t, const char *name, char **columns,
		     size_t n_columns, bool unique);
void model_drop_index(struct model_table *t, const char *name);

/* Primary key columns of t, in order; *n = 0 if it has none. */
size_t model_primary_key(const struct model_table *t, const struct model_column **cols,
			 size_t max);

#endif
