/*
 * plan/check.h - what verify compares before contract: for every column a
 * migration derives from another (the new name of a renamed column, the
 * shadow column of a type change, the target of a derived backfill, and
 * with 'reverse' its source columns), the column and the SQL it must equal,
 * rendered for one backend as a condition that is true on a row where the
 * two differ.  The planner fills them (plan->checks); state/verify.c runs
 * them over the table in chunks by primary key (exec/verify.c).
 *
 * A derived backfill's column is compared only for being filled: new code
 * may write it itself with a value of its own, which its trigger keeps, so
 * a row is missed when the column is NULL where the expression is not.
 * Every other comparison is exact and treats NULL as equal to NULL:
 *   PostgreSQL  both sides cast to the column's type, then to text (every
 *               type has a text form; json has no equality operator)
 *   MariaDB     <=> after a CAST to the column's type; string types compare
 *               their utf8mb4 bytes, so that case and trailing spaces count
 *   SQLite      IS NOT, with the column's affinity applied to the other side
 *               as when the value was stored
 */
#ifndef DBPHASE_PLAN_CHECK_H
#define DBPHASE_PLAN_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "core/url.h"

enum check_kind {
	CHECK_RENAME,		/* new name = old name */
	CHECK_TYPE,		/* shadow column = the column converted */
	CHECK_DERIVED,		/* backfill target filled where its expression is not NULL */
	CHECK_REVERSE,		/* a derived value's source column = its 'reverse' expression */
};

struct plan_check {
	int64_t version;
	enum check_kind kind;
	char *op_kind;		/* "rename_column"; owned */
	char *op_where;		/* "path:line:col" of the operation; owned */
	char *table;		/* unquoted; owned */
	char **keys;		/* primary key columns, unquoted; owned */
	size_t n_keys;
	char *column;		/* the column that holds the derived value, unquoted; owned */
	char *source;		/* what it must equal, for messages ("label", "lower(email)"); owned */
	char *differs_sql;	/* condition over a row of table: column differs from source; owned */
	char **needs;		/* columns that must exist to compare (column, and a source column) */
	size_t n_needs;
};

/*
 * Fill chk for backend: column (of portable type, may be NULL if unknown)
 * must equal expected, an SQL expression over the row as the triggers and
 * batches compute it.  source_column names the column expected reads, when
 * it is just one column (rename, change_type), else NULL.  Strings are
 * copied; op_kind, op_where and version are the caller's to set.
 */
void check_init(struct plan_check *chk, enum db_backend backend, enum check_kind kind,
		const char *table, char *const *keys, size_t n_keys, const char *column,
		const char *type, const char *expected, const char *source_column,
		const char *source_text);

void check_release(struct plan_check *chk);

/* "rename_column", "change_type", "backfill" or "backfill (reverse)". */
const char *check_kind_name(enum check_kind kind);

#endif
