/*
 * plan/catalog.h - the operation catalog: what each kind of operation takes,
 * and the steps it becomes in each phase, as SQL templates per backend.
 *
 * The catalog is data (the phases folder, embedded at build time; a repository's
 * own phases/ folder adds operations or replaces built-in ones).  One file:
 *
 *   operation: rename_column
 *   summary: Rename a column while old and new code run side by side
 *   params:
 *     table: {kind: table, required: true}
 *     from:  {kind: column, required: true}
 *     to:    {kind: new_column, required: true}
 *   steps:
 *     - phase: expand
 *       when: "!sqlite"                  # optional: flags the planner sets,
 *                                        # one or a list that must all hold
 *       reason: old code keeps writing {from}; new code reads {to}
 *       sql:
 *         all: ALTER TABLE {table} ADD COLUMN {to} {from_type}
 *         postgresql: [ "...", "..." ]  # one statement or a list
 *     - phase: migrate
 *       backfill: {table: table, set: "{to} = {from}", where: "{to} IS NULL"}
 *     - phase: contract
 *       when: not_null
 *       rebuild: {table: table, column: to, not_null: "true"}
 *
 * A step's statements run in one transaction where the backend allows DDL
 * in transactions, unless it says 'atomic: false' (CREATE INDEX
 * CONCURRENTLY cannot).  'backfill' and 'rebuild' name the parameter that
 * holds the table (and 'rebuild' the column, or a variable the operation
 * sets to the plain name of a column it makes).  Rebuilds are SQLite's: they
 * edit the table's live definition at run time, because a definition
 * computed at plan time would miss columns that other steps add first.
 *
 * A step of 'sql' that creates triggers names the parameter holding their
 * table in 'exercise: table': once its statements have run, writes like
 * the application's fire the triggers and are rolled back, and a trigger
 * that makes them fail fails the step (and is not kept).
 *
 * Templates substitute {name} with variables the planner computes for the
 * operation (identifiers are already quoted); {{ and }} stand for braces.
 * A template's own $dbphase$ quotes a PostgreSQL function body: the
 * planner makes it a tag that occurs nowhere else in the statement.
 */
#ifndef DBPHASE_PLAN_CATALOG_H
#define DBPHASE_PLAN_CATALOG_H

#include <stdbool.h>
#include <stddef.h>

#include "core/embedded.h"
#include "core/error.h"
#include "core/url.h"
#include "core/ydoc.h"

enum phase {
	PHASE_EXPAND,
	PHASE_MIGRATE,
	PHASE_CONTRACT,
};
#define PHASE__COUNT 3

const char *phase_name(enum phase phase);
/* -1 if name is not a phase. */
int phase_from_name(const char *name);

enum param_kind {
	PARAM_IDENTIFIER,	/* any name, quoted */
	PARAM_TABLE,		/* an existing table */
	PARAM_NEW_TABLE,	/* a table that must not exist yet */
	PARAM_COLUMN,		/* an existing column of the 'table' param */
	PARAM_NEW_COLUMN,	/* a column of 'table' that must not exist yet */
	PARAM_COLUMNS,		/* a list of existing columns of 'table' */
	PARAM_COLUMN_DEF,	/* {name, type, nullable, default, ...} */
	PARAM_COLUMN_DEFS,	/* a list of those */
	PARAM_TYPE,		/* a portable type */
	PARAM_EXPR,		/* SQL expression: a string or a per-backend map */
	PARAM_ASSIGNMENTS,	/* {column: expression, ...} */
	PARAM_STRING,		/* free text, rendered as a quoted literal */
	PARAM_BOOL,
	PARAM_PHASE,		/* expand, migrate or contract */
	PARAM_SQL,		/* per-backend SQL, as the 'sql' operation takes */
	PARAM_VALUE,		/* any value; the operation's rule checks it */
};

struct catalog_param {
	char *name;
	enum param_kind kind;
	bool required;
};

enum step_action {
	STEP_SQL,		/* run statements, each under the lock timeout */
	STEP_BACKFILL,		/* batched UPDATE by primary key, checkpointed */
	STEP_REBUILD,		/* SQLite: copy the table into a new definition and swap */
};

struct catalog_step {
	enum phase phase;
	enum step_action action;
	char **when;		/* flags that must hold ("name" or "!name"); owned */
	size_t n_when;
	char *reason;		/* template */
	/* STEP_SQL: per backend, a list of statement templates (NULL: none). */
	char **sql[DB_BACKEND__COUNT];
	size_t n_sql[DB_BACKEND__COUNT];
	bool has_sql[DB_BACKEND__COUNT];
	/*
	 * What takes an expand step back (downgrade), in the same shape: run
	 * in the order written.  has_undo says the catalog gave it, even as
	 * an empty list (nothing to take back); without it the state machine
	 * infers inverses from the statements, or refuses.
	 */
	char **undo[DB_BACKEND__COUNT];
	size_t n_undo[DB_BACKEND__COUNT];
	bool has_undo[DB_BACKEND__COUNT];
	/* STEP_SQL: the parameter naming the table of the triggers it creates, or NULL. */
	char *ex_table;
	/* STEP_BACKFILL templates. */
	char *bf_table;
	char *bf_set;
	char *bf_where;
	/*
	 * STEP_REBUILD: the parameters naming the table and the column, and
	 * templates of the change: not_null "true"/"false"/"" (leave), default
	 * an SQL expression or "" (leave), drop_default "true" or "".
	 */
	char *rb_table;
	char *rb_column;
	char *rb_not_null;
	char *rb_default;
	char *rb_drop_default;
	char *rb_undo_default;	/* the default to put back on downgrade ("" = none) */
	bool atomic;		/* statements in one transaction (default true) */
	int line;		/* in the catalog file */
};

struct catalog_op {
	char *name;
	char *summary;
	char *source;		/* "phases/add_column.yaml" or the repository's file */
	struct catalog_param *params;
	size_t n_params;
	struct catalog_step *steps;
	size_t n_steps;
};

struct catalog {
	struct catalog_op *ops;
	size_t n_ops;
};

/* The built-in catalog, embedded from phases/ by tools/embed.py. */
extern const struct embedded_file catalog_builtin[];
extern const size_t catalog_builtin_count;

/*
 * Load the built-in catalog, then every *.yaml of extra_dir (may be NULL),
 * whose operations replace built-in ones of the same name.
 */
int catalog_load(struct catalog *cat, const char *extra_dir,
		 struct dbphase_error *err);
void catalog_release(struct catalog *cat);

const struct catalog_op *catalog_find(const struct catalog *cat, const char *name);
const struct catalog_param *catalog_op_param(const struct catalog_op *op,
					     const char *name);

/* Comma-separated operation names, for "expected one of" messages; caller frees. */
char *catalog_names(const struct catalog *cat);

#endif
