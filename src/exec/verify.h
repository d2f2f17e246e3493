/*
 * exec/verify.h - comparing columns of one table row by row, in chunks by
 * primary key, each chunk on a consistent snapshot in a short read-only
 * transaction of its own (PostgreSQL REPEATABLE READ READ ONLY, MariaDB
 * START TRANSACTION WITH CONSISTENT SNAPSHOT, SQLite a deferred read
 * transaction), so that no lock is held longer than one chunk.
 *
 * Per chunk one statement counts the rows and, for each comparison, the
 * rows on which its condition (true where the two sides differ) holds; a
 * chunk with a difference is then narrowed to its first differing keys.
 * Chunks start at batch_size rows and adapt to batch_time_ms, as migrate's
 * batches do; a lock timeout or a transient failure retries the chunk.
 * What the conditions mean is the caller's (plan/check.h).
 */
#ifndef DBPHASE_EXEC_VERIFY_H
#define DBPHASE_EXEC_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "drivers/driver.h"
#include "exec/exec.h"

struct exec_compare {
	const char *differs_sql;	/* condition over a row; borrowed */
	uint64_t differing;		/* rows on which it held */
	char **keys;			/* the first differing keys, "id=42"; owned */
	size_t n_keys;
};

struct exec_verify {
	const char *table;		/* unquoted; borrowed */
	char *const *keys;		/* key columns, unquoted; borrowed */
	size_t n_keys;
	struct exec_compare *cmps;	/* borrowed array; results filled in */
	size_t n_cmps;
	size_t max_keys;		/* differing keys to name per comparison */
	uint64_t rows;			/* rows compared */
	unsigned chunks;
	unsigned retries;
	/* After each chunk; rows_total is an estimate, 0 if unknown.  May be NULL. */
	void (*progress)(void *arg, const struct exec_verify *v, uint64_t rows_total);
	void *arg;
};

/*
 * Walk v->table and fill the results.  DBPHASE_EINTERRUPTED when o->stop
 * was set (between chunks), else 0 or the error of a chunk that retries
 * could not fix.
 */
int exec_verify_run(struct db_conn *conn, struct exec_verify *v, const struct exec_opts *o,
		    struct dbphase_error *err);

/* Free the keys the run collected. */
void exec_verify_release(struct exec_verify *v);

#endif
