/*
 * plan/planner.h - from migrations to an ordered plan of phase-tagged steps.
 *
 * The planner replays every migration of a repository on a schema model
 * (plan/model.h), checks each operation against the catalog and against
 * the schema at that point, and renders each operation's catalog steps for
 * one backend.  It never touches a database.  The plan holds every
 * version's steps; which of them run is the state machine's decision.
 *
 * Order: by version, then by phase, then in the order the operations are
 * written, then in the catalog's step order.  The same repository and
 * backend always give the same plan.
 */
#ifndef DBPHASE_PLAN_PLANNER_H
#define DBPHASE_PLAN_PLANNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/repo.h"
#include "core/url.h"
#include "plan/catalog.h"
#include "plan/check.h"

struct plan_step {
	int64_t version;
	enum phase phase;
	int seq;		/* 1-based within (version, phase) */
	char *op_kind;		/* owned */
	size_t op_index;	/* 0-based position in its migration */
	char *op_where;		/* "path:line:col" of the operation; owned */
	char *source;		/* "phases/add_column.yaml:14"; owned */
	char *reason;		/* rendered; owned */
	enum step_action action;
	bool atomic;		/* run the statements in one transaction */
	/* STEP_SQL */
	char **sql;		/* statements, each run on its own; owned */
	size_t n_sql;
	/*
	 * The statements create triggers (named as they spell them) on
	 * exercise_table (unquoted), which the step fires with rolled-back
	 * writes before it counts as done; NULL if none.  Owned.
	 */
	char *exercise_table;
	char **triggers;
	size_t n_triggers;
	/* STEP_BACKFILL and STEP_REBUILD */
	char *table;		/* table name, unquoted; owned */
	char *set_sql;		/* "col = expr, ..." rendered; owned */
	char *where_sql;	/* condition or NULL; owned */
	char **keys;		/* primary key column names, unquoted; owned */
	size_t n_keys;
	bool integer_key;	/* one integer key column: batches by range */
	/* STEP_REBUILD: the change to one column of table */
	char *column;		/* unquoted; owned */
	int set_not_null;	/* 1 NOT NULL, 0 nullable, -1 leave */
	char *set_default;	/* new DEFAULT expression, or NULL to leave; owned */
	bool drop_default;
	/*
	 * How downgrade takes this (expand) step back, when the catalog says:
	 * statements in order (has_undo, possibly none), or for a rebuild the
	 * default to put back (has_undo_default; NULL = drop the default).
	 */
	char **undo_sql;	/* owned */
	size_t n_undo_sql;
	bool has_undo;
	char *undo_default;	/* owned */
	bool has_undo_default;
};

struct plan {
	enum db_backend backend;
	int server_version;	/* what the SQL was chosen for; 0: the newest */
	int64_t latest;		/* highest version in the repository */
	struct plan_step *steps;
	size_t n_steps;
	struct plan_check *checks;	/* what verify compares, by version (plan/check.h) */
	size_t n_checks;
};

int plan_build(struct plan *plan, const struct repo *repo, const struct catalog *cat,
	       enum db_backend backend, struct dbphase_error *err);

/*
 * The same for a server of a known version (conn->server_version), where
 * the SQL depends on it: PostgreSQL 12 and later use a validated CHECK to
 * set NOT NULL without a second table scan; 11 sets it directly.
 */
int plan_build_for_server(struct plan *plan, const struct repo *repo,
			  const struct catalog *cat, enum db_backend backend,
			  int server_version, struct dbphase_error *err);
void plan_release(struct plan *plan);

/* "v002.expand.3": stable identity of a step, for progress records; caller frees. */
char *plan_step_id(const struct plan_step *step);

/* Count the steps of one version and phase. */
size_t plan_count(const struct plan *plan, int64_t version, enum phase phase);

#endif
