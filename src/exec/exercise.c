/*
 * exec/exercise.c - firing the triggers a step has just created, with
 * writes that are rolled back at once, so that a trigger that would make
 * the application's writes fail fails the step instead (exec.h).
 *
 * The writes are what old code does to one row: an INSERT of a copy of a
 * row (or of a row of defaults when the table is empty) and an UPDATE that
 * sets every column of a row to its own value, under a savepoint that is
 * rolled back right after them, inside the lock timeout.  A write the
 * table itself refuses (a duplicate key, a NOT NULL column the copy cannot
 * fill, a check a trigger emulates) is an answer, not a failure: the
 * triggers ran before the refusal.  Anything else (an unknown function or
 * column, a type error, "schema new does not exist") is what every write
 * of the application would meet, and fails the step.
 *
 *   PostgreSQL  INSERT ... OVERRIDING SYSTEM VALUE SELECT ... LIMIT 1
 *               ON CONFLICT DO NOTHING: BEFORE triggers run before the
 *               conflict check, so the copy fires them and inserts nothing
 *   MariaDB     INSERT ... SELECT ... LIMIT 1: its triggers are BEFORE
 *               triggers, and the duplicate key is found after them
 *   SQLite      INSERT OR REPLACE ... SELECT ... LIMIT 1: the copy takes
 *               the row's place, so AFTER INSERT triggers fire too
 *
 * On MariaDB a table whose engine cannot roll back (not InnoDB) is not
 * written to.
 */
#include "config.h"

#include "exec/exec.h"

#include <stdlib.h>
#include <string.h>

#include "core/strbuf.h"
#include "core/xmalloc.h"

void
exec_exercise_release(struct exec_exercise *ex)
{
	size_t i;

	for (i = 0; i < ex->n_cols; i++)
		free(ex->cols[i]);
	free(ex->cols);
	free(ex->updatable);
	memset(ex, 0, sizeof(*ex));
}

/*
 * The columns a write may name: not generated; on PostgreSQL, identity
 * columns are inserted (OVERRIDING SYSTEM VALUE) but not updated.
 */
static const char *
columns_sql(enum db_backend b)
{
	switch (b) {
	case DB_BACKEND_POSTGRESQL:
		return "SELECT column_name, CASE WHEN is_identity = 'YES' THEN 0 ELSE 1 END "
		       "FROM information_schema.columns WHERE table_schema = current_schema() "
		       "AND table_name = $1 AND is_generated = 'NEVER' ORDER BY ordinal_position";
	case DB_BACKEND_MYSQL:
		return "SELECT c.COLUMN_NAME, 1 FROM information_schema.COLUMNS c "
		       "JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA "
		       "AND t.TABLE_NAME = c.TABLE_NAME WHERE c.TABLE_SCHEMA = DATABASE() "
		       "AND c.TABLE_NAME = $1 AND c.IS_GENERATED = 'NEVER' AND t.ENGINE = 'InnoDB' "
		       "ORDER BY c.ORDINAL_POSITION";
	default:
		return "SELECT name, 1 FROM pragma_table_xinfo($1) WHERE hidden = 0 ORDER BY cid";
	}
}

int
exec_exercise_prepare(struct db_conn *conn, const struct exec_job *job,
		      struct exec_exercise *ex, struct dbphase_error *err)
{
	struct db_param p = DB_TEXT(job->exercise_table);
	struct db_result *res = NULL;
	size_t i;
	int rc;

	memset(ex, 0, sizeof(*ex));
	if (job->exercise_table == NULL)
		return 0;
	rc = db_query(conn, columns_sql(conn->drv->backend), &p, 1, &res, err);
	if (rc < 0)
		return err_prefixf(err, "reading the columns of '%s' to test its triggers",
				   job->exercise_table);
	ex->cols = xcalloc(res->n_rows + 1, sizeof(char *));
	ex->updatable = xcalloc(res->n_rows + 1, sizeof(bool));
	for (i = 0; i < res->n_rows; i++) {
		struct strbuf q = STRBUF_INIT;

		conn->drv->quote_ident(&q, db_result_value(res, i, 0));
		ex->cols[ex->n_cols] = strbuf_detach(&q);
		ex->updatable[ex->n_cols++] = db_value_true(db_result_value(res, i, 1));
	}
	db_result_free(res);
	/* No columns: on MariaDB, an engine that cannot roll back. */
	ex->active = ex->n_cols > 0;
	return 0;
}

/* Whether err is the table refusing the row, after the triggers ran. */
static bool
refused_by_table(enum db_backend b, const struct dbphase_error *err)
{
	switch (b) {
	case DB_BACKEND_POSTGRESQL:
		return strncmp(err->sqlstate, "23", 2) == 0;	/* integrity_constraint_violation */
	case DB_BACKEND_MYSQL:
		/* 23000: duplicate key, NULL, foreign key, check; 1364: no default. */
		return strcmp(err->sqlstate, "23000") == 0 || err->server_code == 1364;
	default:
		return (err->server_code & 0xff) == 19;		/* SQLITE_CONSTRAINT_* */
	}
}

static void
add_list(struct strbuf *sb, const struct exec_exercise *ex, bool updates)
{
	size_t i;
	bool first = true;

	for (i = 0; i < ex->n_cols; i++) {
		if (updates && !ex->updatable[i])
			continue;
		if (!first)
			strbuf_addstr(sb, ", ");
		first = false;
		if (updates)
			strbuf_addf(sb, "%s = %s", ex->cols[i], ex->cols[i]);
		else
			strbuf_addstr(sb, ex->cols[i]);
	}
}

/* The test writes, in order. */
static void
writes(struct db_conn *conn, const struct exec_job *job, const struct exec_exercise *ex,
       bool empty, struct strbuf out[2])
{
	enum db_backend b = conn->drv->backend;
	struct strbuf t = STRBUF_INIT;

	conn->drv->quote_ident(&t, job->exercise_table);
	if (empty) {
		strbuf_addf(&out[0], b == DB_BACKEND_MYSQL ? "INSERT INTO %s () VALUES ()" :
				     "INSERT INTO %s DEFAULT VALUES", t.buf);
	} else {
		strbuf_addf(&out[0], "INSERT %sINTO %s (", b == DB_BACKEND_SQLITE ? "OR REPLACE " : "",
			    t.buf);
		add_list(&out[0], ex, false);
		strbuf_addstr(&out[0], ") ");
		if (b == DB_BACKEND_POSTGRESQL)
			strbuf_addstr(&out[0], "OVERRIDING SYSTEM VALUE ");
		strbuf_addstr(&out[0], "SELECT ");
		add_list(&out[0], ex, false);
		strbuf_addf(&out[0], " FROM %s LIMIT 1", t.buf);
		if (b == DB_BACKEND_POSTGRESQL)
			strbuf_addstr(&out[0], " ON CONFLICT DO NOTHING");
	}
	/* After an insert of defaults, the row it made (if any) is the one updated. */
	strbuf_addf(&out[1], "UPDATE %s SET ", t.buf);
	add_list(&out[1], ex, true);
	switch (b) {
	case DB_BACKEND_POSTGRESQL:
		/* A row another transaction holds is not waited for. */
		strbuf_addf(&out[1], " WHERE ctid = (SELECT ctid FROM %s LIMIT 1 FOR UPDATE "
			    "SKIP LOCKED)", t.buf);
		break;
	case DB_BACKEND_MYSQL:
		strbuf_addstr(&out[1], " LIMIT 1");
		break;
	default:
		strbuf_addf(&out[1], " WHERE rowid = (SELECT rowid FROM %s LIMIT 1)", t.buf);
		break;
	}
	strbuf_release(&t);
}

int
exec_exercise_run(struct db_conn *conn, const struct exec_job *job,
		  const struct exec_exercise *ex, struct dbphase_error *err)
{
	static const char *const what[] = { "an INSERT", "an UPDATE" };
	struct strbuf sql[2] = { STRBUF_INIT, STRBUF_INIT }, q = STRBUF_INIT;
	struct db_result *res = NULL;
	bool empty;
	int rc, i;

	if (!ex->active)
		return 0;
	strbuf_addstr(&q, "SELECT 1 FROM ");
	conn->drv->quote_ident(&q, job->exercise_table);
	strbuf_addstr(&q, " LIMIT 1");
	rc = db_query(conn, q.buf, NULL, 0, &res, err);
	if (rc < 0)
		goto out;
	empty = res->n_rows == 0;
	db_result_free(res);
	writes(conn, job, ex, empty, sql);
	if ((rc = db_exec(conn, "SAVEPOINT dbphase_exercise", err)) < 0)
		goto out;
	for (i = 0; i < 2 && rc == 0; i++) {
		rc = db_exec(conn, sql[i].buf, err);
		if (rc < 0 && refused_by_table(conn->drv->backend, err)) {
			/* PostgreSQL must leave the failed statement behind first. */
			err_release(err);
			rc = db_exec(conn, "ROLLBACK TO SAVEPOINT dbphase_exercise", err);
		} else if (rc < 0 && !err->retryable && err->code != DBPHASE_ELOCK_TIMEOUT) {
			err_prefixf(err, "%s of a row like the application's (tried, then rolled "
				    "back) failed", what[i]);
		}
	}
	if (rc == 0)
		rc = db_exec(conn, "ROLLBACK TO SAVEPOINT dbphase_exercise", err);
	if (rc == 0)
		rc = db_exec(conn, "RELEASE SAVEPOINT dbphase_exercise", err);
out:
	strbuf_release(&sql[0]);
	strbuf_release(&sql[1]);
	strbuf_release(&q);
	return rc;
}
