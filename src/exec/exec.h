/*
 * exec/exec.h - running the work of one plan step on a database.
 *
 * The executor knows jobs, not phases: a list of statements to run under a
 * lock timeout, a batched UPDATE walking a table by its key, or a SQLite
 * table rebuild.  What a job means, and where its completion is recorded,
 * is the caller's (the state machine's): the executor calls back inside
 * each transaction it commits, so that a step and its record, or a batch
 * and its checkpoint, commit together or not at all.
 *
 * Backfills run in exec/parallel.c: one libuv loop drives `jobs` worker
 * connections (PostgreSQL and MariaDB through their asynchronous APIs on a
 * uv_poll watcher, SQLite on the libuv thread pool).  A table with one
 * integer key is split into disjoint key ranges (chunks) that workers walk
 * at once; any other key is walked in key order by one worker.  Each batch
 * and its chunk's checkpoint commit in one transaction, after the caller's
 * lock fence (fence_sql) said the run still holds the cluster lock.
 *
 * Lock safety (DESIGN.md section 4): every statement runs under
 * lock_timeout_ms; one that times out on a lock, or fails in a way the
 * driver marks transient, is retried from the start of its transaction
 * with growing waits, at most max_retries times.  A job that is not
 * atomic (CREATE INDEX CONCURRENTLY and its kind) is retried from its
 * first statement: such jobs open with the DROP ... IF EXISTS statements
 * that clear what a failed attempt leaves behind (an INVALID index, a
 * NOT VALID check), and those run once more when the job gives up.
 */
#ifndef DBPHASE_EXEC_EXEC_H
#define DBPHASE_EXEC_EXEC_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/strbuf.h"
#include "drivers/driver.h"

enum exec_job_kind {
	EXEC_SQL,		/* statements, one transaction if atomic */
	EXEC_BACKFILL,		/* UPDATE table SET set_sql WHERE where_sql, in key batches
				   (exec_run_backfills) */
	EXEC_REBUILD,		/* SQLite: recreate table with one column's definition changed */
};

/* A job borrows every pointer; the caller keeps them alive. */
struct exec_job {
	const char *id;			/* "v002.migrate.1", for checkpoints and messages */
	/* For messages, may be NULL: "path:line:col" of its operation, its catalog line. */
	const char *op_where;
	const char *source;		/* "phases/backfill.yaml:10" */
	enum exec_job_kind kind;
	bool atomic;
	char *const *sql;
	size_t n_sql;
	const char *table;		/* unquoted */
	const char *set_sql;
	const char *where_sql;		/* may be NULL */
	char *const *keys;		/* unquoted key columns */
	size_t n_keys;
	bool integer_key;		/* one integer key: split into value ranges */
	void *data;			/* the caller's, for its hooks */
	/* EXEC_REBUILD: the column of table, and the change. */
	const char *column;
	int set_not_null;		/* 1, 0, or -1 to leave */
	const char *set_default;	/* NULL to leave */
	bool drop_default;
	/*
	 * EXEC_SQL: the statements create triggers on this table (unquoted),
	 * named in triggers (quoted, as the statements spell them): once they
	 * have run, writes fire them and are rolled back (exec/exercise.c),
	 * and a failing one fails the job.  NULL: nothing to fire.
	 */
	const char *exercise_table;
	char *const *triggers;
	size_t n_triggers;
};

struct exec_opts {
	int lock_timeout_ms;		/* per statement; 0 = none */
	int max_retries;		/* for lock timeouts and transient errors */
	int batch_size;			/* starting rows per batch */
	int max_batch_size;
	int batch_time_ms;		/* aim for batches this long */
	int max_rate;			/* rows per second, 0 = unlimited */
	int jobs;			/* worker connections for backfills */
	volatile sig_atomic_t *stop;	/* set by a signal: stop after the batch in flight */
};

/*
 * A disjoint part of a backfill's key space and how far it got.  Keys are
 * JSON arrays of the key columns' text values.
 */
struct exec_chunk {
	int index;
	char *last_key;			/* last key done (exclusive lower bound); NULL: from the start */
	char *end_key;			/* inclusive upper bound; NULL: to the end of the table */
	uint64_t rows_done;
	bool done;
};

struct exec_hooks {
	void *arg;
	/* Inside the job's transaction (atomic SQL jobs, rebuilds): record it. */
	int (*job_commit)(void *arg, struct db_conn *conn, const struct exec_job *job,
			  struct dbphase_error *err);
	/* Before a backfill: the chunks an earlier run recorded (*n = 0 if none). */
	int (*chunks_load)(void *arg, struct db_conn *conn, const struct exec_job *job,
			   struct exec_chunk **chunks, size_t *n, struct dbphase_error *err);
	/* A first run: record the split. */
	int (*chunks_save)(void *arg, struct db_conn *conn, const struct exec_job *job,
			   const struct exec_chunk *chunks, size_t n, uint64_t rows_total,
			   struct dbphase_error *err);
	/*
	 * The statement that saves a chunk's position, run inside each batch's
	 * transaction.  It binds $1 last key, $2 rows done, $3 done (1 or 0),
	 * $4 chunk index, then *n_extra more values (borrowed) as $5 and on.
	 */
	void (*checkpoint_sql)(void *arg, const struct exec_job *job, enum db_backend backend,
			       struct strbuf *sql, const char **extra, size_t *n_extra);
	/*
	 * The lock fence: a statement run first in each batch's transaction,
	 * binding *n_extra values (borrowed) as $1 and on, that returns one
	 * row of two values: whether the run's lock generation is still the
	 * current one, and whether the run's lock is still held (1 or 0
	 * each).  It must keep a lock, until the batch commits, that a new
	 * holder of the cluster lock waits for.  Either value false stops the
	 * run with DBPHASE_ECONNECT.  May be NULL: no fence.
	 */
	void (*fence_sql)(void *arg, const struct exec_job *job, enum db_backend backend,
			  struct strbuf *sql, const char **extra, size_t *n_extra);
	/*
	 * After a broken connection: chunk's position as committed, read on
	 * conn (a new connection) with a lock that waits for a transaction
	 * still being resolved, so that a batch whose COMMIT reached the
	 * server but whose answer was lost is known as done.
	 */
	int (*chunk_reload)(void *arg, struct db_conn *conn, const struct exec_job *job,
			    int chunk, struct exec_chunk *out, struct dbphase_error *err);
	/* Every chunk is done: record the job, in a transaction of its own. */
	int (*job_done)(void *arg, struct db_conn *conn, const struct exec_job *job,
			struct dbphase_error *err);
	/* Progress, outside any transaction; may be NULL. */
	void (*progress)(void *arg, const struct exec_job *job, uint64_t rows_done,
			 uint64_t rows_total, uint64_t batch_rows, double batch_ms);
};

struct exec_result {
	uint64_t rows;			/* rows changed by a backfill */
	unsigned batches;
	unsigned retries;
	double seconds;
	bool interrupted;		/* stopped by opts->stop; resumable */
};

void exec_opts_init(struct exec_opts *o);

/*
 * Firing a job's triggers (exec/exercise.c): prepare reads the table's
 * columns, outside the job's transaction; run writes and rolls back,
 * inside a transaction (under a savepoint of its own).
 */
struct exec_exercise {
	bool active;			/* false: nothing to write (no table, or MariaDB
					   not InnoDB, whose writes cannot be rolled back) */
	char **cols;			/* quoted column names a write may name */
	bool *updatable;		/* per column: an UPDATE may set it */
	size_t n_cols;
};

int exec_exercise_prepare(struct db_conn *conn, const struct exec_job *job,
			  struct exec_exercise *ex, struct dbphase_error *err);
int exec_exercise_run(struct db_conn *conn, const struct exec_job *job,
		      const struct exec_exercise *ex, struct dbphase_error *err);
void exec_exercise_release(struct exec_exercise *ex);

/* Run one job to completion (or until stopped).  Returns 0 or DBPHASE_E*. */
int exec_job_run(struct db_conn *conn, const struct exec_job *job,
		 const struct exec_opts *o, const struct exec_hooks *h,
		 struct exec_result *res, struct dbphase_error *err);

/* Whether this backend runs DDL inside transactions (PostgreSQL, SQLite). */
bool exec_transactional_ddl(const struct db_conn *conn);

void exec_chunks_free(struct exec_chunk *chunks, size_t n);

/*
 * Run backfill jobs at once: a job waits for the job before it on the same
 * table, jobs on other tables run side by side.  conn is the caller's
 * connection for bookkeeping; workers connect to url.  results[i] is job
 * i's.  Stops after the batches in flight when o->stop is set (results say
 * interrupted), or at the first error that retries cannot fix.  A
 * fence that fails (the lock's holder connection is gone, or another run
 * took the lock) stops every worker after its batch in flight, with
 * DBPHASE_ECONNECT: running again on a new connection resumes.
 */
int exec_run_backfills(struct db_conn *conn, const struct db_url *url,
		       const struct exec_job *jobs, size_t n_jobs, const struct exec_opts *o,
		       const struct exec_hooks *h, struct exec_result *results,
		       struct dbphase_error *err);

/*
 * Rewrite a SQLite CREATE TABLE statement: the table named new_name, and
 * column's definition changed as the job says (exec/rebuild.c).
 */
int exec_sqlite_edit_table(const char *create_sql, const char *new_name,
			   const struct exec_job *job, struct strbuf *out,
			   struct dbphase_error *err);

/* The SQLite rebuild itself, in one transaction (exec/rebuild.c). */
int exec_sqlite_rebuild(struct db_conn *conn, const struct exec_job *job,
			const struct exec_hooks *h, struct dbphase_error *err);


#endif
