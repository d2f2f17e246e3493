/*
 * state/effect.h - what a step's statements leave behind in the schema, read
 * from the SQL the planner rendered.
 *
 * The state machine needs two answers the catalog does not give it yet:
 *
 *   - Is a step's work already there?  On MariaDB every DDL statement
 *     commits on its own, so a run killed between a step's last statement
 *     and the step's record leaves the effect without the record.  The
 *     next run asks the database whether the tables, columns, indexes,
 *     triggers and constraints the step creates exist, and records the
 *     step instead of running it blindly again.
 *
 *   - How is a step taken back (downgrade)?  Each statement that creates
 *     something has an obvious inverse: CREATE TABLE -> DROP TABLE, ADD
 *     COLUMN -> DROP COLUMN, CREATE INDEX -> DROP INDEX, CREATE TRIGGER ->
 *     DROP TRIGGER, CREATE FUNCTION -> DROP FUNCTION, ADD CONSTRAINT ->
 *     DROP CONSTRAINT (or FOREIGN KEY), CREATE VIEW -> DROP VIEW, and
 *     ALTER COLUMN ... DROP NOT NULL -> SET NOT NULL.  Every inverse is
 *     written so that running it twice is harmless (IF EXISTS, or a
 *     presence check where the dialect has no IF EXISTS).
 *
 * Statements that only prepare the ground (DROP ... IF EXISTS before a
 * CREATE, SET, VALIDATE CONSTRAINT, temporary tables) change nothing that
 * needs undoing.
 * Anything else (DML, a changed default, a retyped column) is "unknown":
 * dbphase will not guess its inverse.  Identifiers in the catalog's SQL
 * are always quoted by the planner; the parser also reads bare words.
 * The text is cut into tokens by core/sqllex, in the dialect the text
 * shows: MariaDB's where a name is quoted with backticks or only its
 * string rules (backslash escapes) close every token, else PostgreSQL's
 * (which reads SQLite's text the same way).
 *
 * Contract statements are read differently (effect_parse_contract): there
 * a DROP really drops something, and what matters to a downgrade with
 * --allow-data-loss is what each statement dropped or changed, so that
 * the state machine can tell whether the downgrade removes it anyway (it
 * was created above the target version) or whether it is gone for good.
 */
#ifndef DBPHASE_STATE_EFFECT_H
#define DBPHASE_STATE_EFFECT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "core/strbuf.h"
#include "drivers/driver.h"

enum effect_kind {
	EFFECT_NONE,		/* nothing that lasts: DROP ... IF EXISTS, SET, VALIDATE */
	EFFECT_TABLE,		/* CREATE TABLE name */
	EFFECT_COLUMN,		/* ALTER TABLE table ADD COLUMN name */
	EFFECT_INDEX,		/* CREATE INDEX name ON table */
	EFFECT_TRIGGER,		/* CREATE TRIGGER name ... ON table */
	EFFECT_FUNCTION,	/* CREATE FUNCTION name(args) */
	EFFECT_CONSTRAINT,	/* ALTER TABLE table ADD CONSTRAINT name CHECK/UNIQUE */
	EFFECT_FOREIGN_KEY,	/* ALTER TABLE table ADD CONSTRAINT name FOREIGN KEY */
	EFFECT_VIEW,		/* CREATE VIEW name */
	EFFECT_DROP_NOT_NULL,	/* ALTER TABLE table ALTER COLUMN name DROP NOT NULL */
	EFFECT_ALTER,		/* contract: another change to table (to its column name, if set) */
	EFFECT_INDEX_RENAME,	/* contract: ALTER INDEX name RENAME TO to */
	EFFECT_UNKNOWN,		/* no inverse known */
};

struct effect {
	enum effect_kind kind;
	char *table;		/* unquoted; owned; NULL where it has none */
	char *name;		/* unquoted; owned */
	char *args;		/* EFFECT_FUNCTION: the argument list's text; owned */
	bool unique;		/* EFFECT_CONSTRAINT: a UNIQUE one (an index on MariaDB) */
	bool concurrently;	/* EFFECT_INDEX: built CONCURRENTLY (PostgreSQL) */
	bool replace;		/* CREATE OR REPLACE: it may have replaced an older one */
	bool drop;		/* effect_parse_contract: the statement drops the object */
	char *to;		/* EFFECT_INDEX_RENAME: the new name; owned */
};

/* Read one statement; e is always filled (EFFECT_UNKNOWN when unsure). */
void effect_parse(const char *sql, struct effect *e);
void effect_release(struct effect *e);

/*
 * Read one contract statement (see above): what it creates, as
 * effect_parse does; what it drops (e->drop set, kind the object's:
 * DROP TABLE/INDEX/TRIGGER/FUNCTION/VIEW, ALTER TABLE ... DROP COLUMN/
 * CONSTRAINT/FOREIGN KEY/INDEX); EFFECT_ALTER for any other change to a
 * table or one of its columns (ALTER/MODIFY/CHANGE COLUMN, SET NOT NULL,
 * a list of clauses); EFFECT_INDEX_RENAME; EFFECT_NONE for what lasts
 * nothing (SET, VALIDATE, LOCK and UNLOCK TABLES).  A renamed table, a
 * block of code and anything else is EFFECT_UNKNOWN.  MariaDB's "BEGIN NOT
 * ATOMIC IF [NOT] EXISTS (...) THEN stmt; END IF; END" reads as its stmt.
 */
void effect_parse_contract(const char *sql, struct effect *e);

/* "index 'ix' on 'customers'", for messages; caller frees. */
char *effect_describe(const struct effect *e);

/* The most statements one inverse takes. */
#define EFFECT_UNDO_MAX 2

/*
 * Write e's inverse for backend into out[0], out[1], ... (one statement
 * each, no ';', to run in that order) and return how many: 0 when there is
 * none.  EFFECT_NONE needs none; EFFECT_UNKNOWN, a drop, EFFECT_ALTER
 * (and a kind the backend cannot drop) have none known.
 */
size_t effect_undo_sql(const struct effect *e, enum db_backend backend,
		       struct strbuf out[EFFECT_UNDO_MAX]);

/*
 * Whether e's object exists now.  *known is false for kinds the database
 * cannot be asked about (views, EFFECT_NONE, EFFECT_UNKNOWN).  An index
 * that a failed CONCURRENTLY build left invalid counts as absent.
 */
int effect_present(struct db_conn *conn, const struct effect *e, bool *present, bool *known,
		   struct dbphase_error *err);

#endif
