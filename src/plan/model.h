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
	bool constraint;	/* a unique constraint (add_unique), not a plain index */
};

enum model_constraint_kind {
	MODEL_CHECK,
	MODEL_FOREIGN_KEY,
};

/*
 * A check or foreign key, kept so that a later rename or type change of a
 * column it uses can carry it over to the new column.  Unique constraints
 * are indexes (model_index.constraint).
 */
struct model_constraint {
	char *name;
	enum model_constraint_kind kind;
	char *where;		/* "path:line:col" of the operation that added it */
	int64_t carried_in;	/* the version that last moved it to a new column */
	char *emul_ins;		/* triggers that stand in for it, unquoted, or NULL */
	char *emul_upd;
	/*
	 * MODEL_CHECK: the expression as written for the plan's backend, and
	 * the table as it was then: its name and its columns' names (row_names)
	 * with what each column is called now (row_columns; NULL once dropped).
	 */
	char *check;
	char *row_table;
	char **row_names;
	char **row_columns;
	size_t n_row;
	/* MODEL_FOREIGN_KEY: columns of this table, and the key they reference. */
	char **columns;
	size_t n_columns;
	char *ref_table;
	char **ref_columns;
	char *on_delete;	/* " ON DELETE CASCADE", or "" */
};

struct model_table {
	char *name;
	struct model_column *columns;
	size_t n_columns;
	struct model_index *indexes;
	size_t n_indexes;
	struct model_constraint *constraints;
	size_t n_constraints;
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

/*
 * A name dbphase generated, with what it stands for (the text it was made
 * from): two different things may never get the same name.
 */
struct model_name {
	char *name;
	char *key;
	char *where;		/* "path:line:col" of the operation that made it */
};

struct model {
	struct model_table *tables;
	size_t n_tables;
	struct model_gone *gone;
	size_t n_gone;
	struct model_name *names;
	size_t n_names;
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

/* A new, empty constraint of t (the caller fills it in). */
struct model_constraint *model_add_constraint(struct model_table *t, const char *name,
					      enum model_constraint_kind kind, const char *where);
/* The constraint of t called name, or NULL. */
struct model_constraint *model_constraint(struct model_table *t, const char *name);
void model_drop_constraint(struct model_table *t, const char *name);
/* Whether k uses column of table (of its own table t, or as the key it references). */
bool model_constraint_uses(const struct model_table *t, const struct model_constraint *k,
			   const char *table, const char *column);
/*
 * Whether check k reads its row's column i (row_names[i] as a word of the
 * expression: when in doubt, it does).
 */
bool model_check_reads(const struct model_constraint *k, size_t i);
/* Column from of table is now called to, in every constraint of every table. */
void model_rename_column_refs(struct model *m, const char *table, const char *from,
			      const char *to);
/* Table from is now called to, in every foreign key. */
void model_rename_table_refs(struct model *m, const char *from, const char *to);

/*
 * Claim name for key (what it was made from), noted as made at where.
 * Returns NULL if name is free or already belongs to key, else the
 * "where" of the other claim (name then stays the other's).
 */
const char *model_claim_name(struct model *m, const char *name, const char *key,
			     const char *where);

/* Primary key columns of t, in order; *n = 0 if it has none. */
size_t model_primary_key(const struct model_table *t, const struct model_column **cols,
			 size_t max);

#endif
