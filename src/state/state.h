/*
 * state/state.h - dbphase's own tables in the application's database.
 *
 *   <version_table>     one row per repository: expand >= migrate >= contract
 *   dbphase_migrations  checksum of every migration file when it was applied
 *   dbphase_steps       every plan step done, so a killed run resumes
 *   dbphase_progress    batch checkpoints of migrate's backfills
 *   dbphase_nodes       application nodes and the schema version they need
 *   dbphase_history     every transition: who, when, from, to, result
 *   dbphase_locks       the generation of each repository's cluster lock
 *   dbphase_meta        the format of these tables, for later upgrades
 *
 * Their DDL per backend lives in schemas/ and is embedded in the binary.
 * Times are Unix seconds read from the database's clock, so that nodes with
 * skewed clocks still agree on who is live.
 */
#ifndef DBPHASE_STATE_STATE_H
#define DBPHASE_STATE_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "drivers/driver.h"
#include "exec/exec.h"

/*
 * The format these tables are in; a later dbphase upgrades older ones.
 * 1: the first.  2: dbphase_locks (the lock fence).
 */
#define STATE_FORMAT 2

struct state {
	struct db_conn *conn;		/* borrowed, or own_conn */
	struct db_conn *own_conn;	/* opened by state_reconnect; owned */
	char *repo;			/* key in the version table: "shop" or "shop/audit" */
	char *version_table;		/* unquoted */
	char *who;			/* "user@host:pid", for history */
	bool locked;
	char *lock_generation;		/* this holder's (state_fence_take), as text */
};

struct state_versions {
	int64_t expand;
	int64_t migrate;
	int64_t contract;
	bool exists;			/* the repository has a row */
};

struct state_node {
	char *name;
	char *repository;
	int64_t schema_version;
	int64_t registered_at;
	int64_t heartbeat_at;
	int64_t age_s;			/* seconds since the last heartbeat */
};

/* A backfill step's progress: its chunks (key ranges walked at once) summed. */
struct state_progress {
	char *step_id;
	int64_t rows_done;
	int64_t rows_total;		/* the estimate taken when it began; -1 if none */
	size_t chunks;
	bool finished;			/* every chunk is done */
};

struct state_history {
	int64_t id;
	int64_t at;
	char *who;
	char *command;
	char *from_state;
	char *to_state;
	char *result;
	double seconds;
	char *detail;
};

void state_init(struct state *st, struct db_conn *conn, const char *repo,
		const char *version_table);
void state_release(struct state *st);

/* The cluster-wide lock for this repository; wait_s < 0 waits forever. */
int state_lock(struct state *st, int wait_s, struct dbphase_error *err);
void state_unlock(struct state *st);

/*
 * The lock fence (state.c explains it).  Under the lock, with the tables
 * in place: move the repository's lock generation on, waiting for batches
 * of earlier holders still in flight, and remember it as this holder's.
 */
int state_fence_take(struct state *st, struct dbphase_error *err);
/*
 * The statement each migrate batch runs first in its transaction (exec.h's
 * fence_sql contract): one row, whether the generation is still this
 * holder's and whether its session still holds the lock (1 or 0 each).
 * It binds $1 repository and $2 generation, from *extra.
 */
void state_fence_sql(struct state *st, struct strbuf *sql, const char **extra, size_t *n_extra);

/*
 * After the connection was lost: open a new one to url and work on it (the
 * state owns it; a borrowed connection stays its owner's to close).  The
 * lock is then not held: take it again.
 */
int state_reconnect(struct state *st, const struct db_url *url, struct dbphase_error *err);
/* Whether the connection still answers. */
bool state_alive(struct state *st);

/* Whether dbphase's tables exist (read-only commands must not create them). */
int state_tables_exist(struct state *st, bool *exist, struct dbphase_error *err);

/*
 * The first table of the database that is not dbphase's (its version
 * table and the dbphase_* tables), in the driver's order, into *name
 * (caller frees); NULL when the database holds none.
 */
int state_app_table(struct state *st, char **name, struct dbphase_error *err);

/* Create any missing table; refuse tables of a newer format. */
int state_ensure_tables(struct state *st, struct dbphase_error *err);

/*
 * Remove every row of this repository from dbphase's tables (the version
 * table and the shared ones), then drop the version table when no other
 * repository has a row in it, and the shared tables with dbphase_meta when
 * none has a row left in any of them.  Application tables are never
 * touched.  *removed says what went (owned).  The caller holds the lock.
 */
int state_forget(struct state *st, char **removed, struct dbphase_error *err);

/* The repository's versions (all 0 and exists = false without a row or tables). */
int state_read(struct state *st, struct state_versions *v, struct dbphase_error *err);
int state_write(struct state *st, const struct state_versions *v, struct dbphase_error *err);

/* The database clock, Unix seconds. */
int state_now(struct state *st, int64_t *now, struct dbphase_error *err);

int state_step_done(struct state *st, const char *step_id, bool *done,
		    struct dbphase_error *err);
int state_step_record(struct state *st, const char *step_id, struct dbphase_error *err);
/* Forget the records of a version's steps of one phase (downgrade). */
int state_steps_forget(struct state *st, int64_t version, const char *phase,
		       struct dbphase_error *err);

/* Forget one step's record and its progress (downgrade undid it). */
int state_step_forget(struct state *st, const char *step_id, struct dbphase_error *err);
/* Every recorded step of the repository, sorted (caller frees each and the array). */
int state_steps_list(struct state *st, char ***ids, size_t *n, struct dbphase_error *err);

/*
 * Backfill chunks in dbphase_progress (one row per chunk): load an earlier
 * run's split and positions, record a first run's split, and render the
 * statement that saves a chunk's position inside a batch (exec.h's
 * checkpoint_sql contract: $1 last key, $2 rows, $3 done, $4 chunk, then
 * $5 repository and $6 step id from *extra).
 */
int state_chunks_load(struct state *st, const char *step_id, struct exec_chunk **chunks,
		      size_t *n, struct dbphase_error *err);
int state_chunks_save(struct state *st, const char *step_id, const struct exec_chunk *chunks,
		      size_t n, uint64_t rows_total, struct dbphase_error *err);
void state_checkpoint_sql(struct state *st, struct strbuf *sql);

/*
 * One chunk's committed position, read on conn (not st->conn) with a
 * locking read, in a transaction of its own.
 */
int state_chunk_reload(struct state *st, struct db_conn *conn, const char *step_id, int chunk,
		       struct exec_chunk *out, struct dbphase_error *err);

/* The recorded checksum of a version (NULL if none; caller frees). */
int state_checksum_get(struct state *st, int64_t version, char **sum,
		       struct dbphase_error *err);
int state_checksum_put(struct state *st, int64_t version, const char *sum,
		       struct dbphase_error *err);

/* Every recorded checksum, by version (caller frees sums[i], sums and versions). */
int state_checksums_list(struct state *st, int64_t **versions, char ***sums, size_t *n,
			 struct dbphase_error *err);
/* Forget a version's checksum (it is no longer applied). */
int state_checksum_forget(struct state *st, int64_t version, struct dbphase_error *err);

int state_history_add(struct state *st, const char *command, const char *from_state,
		      const char *to_state, const char *result, double seconds,
		      const char *detail, struct dbphase_error *err);
/* The last n history entries, newest first. */
int state_history_list(struct state *st, size_t n, struct state_history **out,
		       size_t *n_out, struct dbphase_error *err);
void state_history_free(struct state_history *h, size_t n);

int state_node_register(struct state *st, const char *name, int64_t schema_version,
			struct dbphase_error *err);
int state_node_heartbeat(struct state *st, const char *name, struct dbphase_error *err);
int state_node_retire(struct state *st, const char *name, struct dbphase_error *err);
int state_node_list(struct state *st, struct state_node **out, size_t *n,
		    struct dbphase_error *err);
void state_nodes_free(struct state_node *nodes, size_t n);

/*
 * The repository's backfill progress, one entry per step in step id
 * order (dbphase_progress, which must exist).
 */
int state_progress_list(struct state *st, struct state_progress **out, size_t *n,
			struct dbphase_error *err);
void state_progress_free(struct state_progress *progress, size_t n);

/* "3/2/1": expand/migrate/contract, for history and messages; caller frees. */
char *state_versions_text(const struct state_versions *v);

#endif
