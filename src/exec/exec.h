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
 * Lock safety (DESIGN.md section 4): every statement runs under
 * lock_timeout_ms; one that times out on a lock, or fails in a way the
 * driver marks transient, is retried from the start of its transaction
 * with growing waits, at most max_retries times.
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
	EXEC_BACKFILL,		/* UPDATE table SET set_sql WHERE where_sql, in key batches */
	EXEC_REBUILD,		/* SQLite: recreate table with one column's definition changed */
};

/* A job borrows every pointer; the caller keeps them alive. */
struct exec_job {
	const char *id;			/* "v002.migrate.1", for checkpoints and messages */
	enum exec_job_kind kind;
	bool atomic;
	char *const *sql;
	size_t n_sql;
	const char *table;		/* unquoted */
	const char *set_sql;
	const char *where_sql;		/* may be NULL */
	char *const *keys;		/* unquoted key columns */
	size_t n_keys;
	/* EXEC_REBUILD: the column of table, and the change. */
	const char *column;
	int set_not_null;		/* 1, 0, or -1 to leave */
	const char *set_default;	/* NULL to leave */
	bool drop_default;
};

struct exec_opts {
	int lock_timeout_ms;		/* per statement; 0 = none */
	int max_retries;		/* for lock timeouts and transient errors */
	int batch_size;			/* starting rows per batch */
	int max_batch_size;
	int batch_time_ms;		/* aim for batches this long */
	int max_rate;			/* rows per second, 0 = unlimited */
	volatile sig_atomic_t *stop;	/* set by a signal: stop after the batch in flight */
};

/* A backfill's resumable position. */
struct exec_checkpoint {
	char *last_key;			/* JSON array of the last key done, or NULL at the start */
	uint64_t rows_done;
	bool done;
};

struct exec_hooks {
	void *arg;
	/* Inside the job's transaction (atomic SQL jobs, rebuilds): record it. */
	int (*job_commit)(void *arg, struct db_conn *conn, const struct exec_job *job,
			  struct dbphase_error *err);
	/* Before a backfill: where to start. */
	int (*batch_resume)(void *arg, struct db_conn *conn, const struct exec_job *job,
			    struct exec_checkpoint *cp, struct dbphase_error *err);
	/* Inside each batch's transaction: save the new position. */
	int (*batch_commit)(void *arg, struct db_conn *conn, const struct exec_job *job,
			    const struct exec_checkpoint *cp, struct dbphase_error *err);
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

/* Run one job to completion (or until stopped).  Returns 0 or DBPHASE_E*. */
int exec_job_run(struct db_conn *conn, const struct exec_job *job,
		 const struct exec_opts *o, const struct exec_hooks *h,
		 struct exec_result *res, struct dbphase_error *err);

/* Whether this backend runs DDL inside transactions (PostgreSQL, SQLite). */
bool exec_transactional_ddl(const struct db_conn *conn);

void exec_checkpoint_release(struct exec_checkpoint *cp);

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
