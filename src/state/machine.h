/*
 * state/machine.h - the phase state machine of one repository.
 *
 * Design.  The version row of a repository holds three numbers, E >= M >= C
 * (expanded, migrated, contracted), and its step records say how far a
 * version's phase got.  The states, written as SQLite's pager.c writes its
 * own, are named by how the three compare, and by whether a transition is
 * in flight (a process holds the repository's cluster lock):
 *
 *   UNCONTROLLED   no row.  version_control, stamp, goto (any V) and
 *                  create_schema lead to SETTLED; a phase creates the row
 *                  at 0/0/0 and goes on from SETTLED.
 *
 *   SETTLED        E == M == C.  Every node may run code for C.  Invariant:
 *                  no dbphase trigger of a version <= C is live; nothing
 *                  of (C, ...] is applied.
 *                  expand to V > E          -> EXPANDED (E = V)
 *                  downgrade to V < C       -> refused, or with
 *                                              allow_data_loss -> SETTLED at V
 *
 *   EXPANDED       E > M == C.  Invariant: the expand steps of (M, E] are
 *                  applied and their triggers live (old code's writes reach
 *                  the new shape); the migrate steps of (M, E] are not
 *                  recorded.  Old code (C) works; new code may not start.
 *                  migrate to V <= E        -> MIGRATED (M = V), or
 *                                              EXPANDED (M = V < E)
 *                  expand to V > E          -> EXPANDED (E = V)
 *                  downgrade to V >= C      -> SETTLED or EXPANDED (E = V)
 *                  contract                 -> refused: migrate first
 *
 *   MIGRATED       E >= M > C.  Invariant: the data of (C, M] is in its new
 *                  shape; the triggers of (C, E] are live and keep old and
 *                  new shapes equal both ways.  Old code (C) and new code
 *                  (<= M) both work.
 *                  contract to V <= M       -> gates: no live node or client
 *                                              needs < V, verify equal
 *                                              (--force, --skip-verify:
 *                                              recorded as forced)
 *                                           -> SETTLED (C = V = E) or
 *                                              MIGRATED (C = V)
 *                  migrate, expand          -> as above
 *                  downgrade to V >= C      -> EXPANDED or SETTLED (the data
 *                                              migrate wrote stays)
 *
 *   IN FLIGHT      any of the above with a transition holding the lock: the
 *                  row moves one version at a time, each step is recorded
 *                  when it completes, and the history row commits with the
 *                  row's last move (close_transition).  Other callers wait
 *                  (lock_wait_s, then exit 75), then re-read the row: a phase
 *                  already at V is "already done", exit 0.
 *
 * Failures.  A step that fails rolls back where DDL is transactional
 * (PostgreSQL, SQLite) and leaves its version partly applied: the row
 * stays, the history says "failed", and a rerun resumes at the first step
 * without a record (on MariaDB a step whose effect is found is recorded,
 * not rerun).  A signal stops after the step or batch in flight
 * ("interrupted", exit 130).  A lost connection is resumed for
 * reconnect_wait_s (guarantee 5).  A refusal changes nothing but the
 * history ("refused", exit 5).  A changed applied file stops every phase
 * (DBPHASE_ECHECKSUM) until validate --repair; versions applied past the
 * repository's end (an older package) stop every change (DBPHASE_EAHEAD)
 * but not reading.
 *
 * The contract gate of V: M >= V; no live node (heartbeat within node_ttl_s,
 * and never less than MACHINE_NODE_GONE_S) needs a version < V; no live
 * database connection identifies itself, by the repository's `clients`
 * pattern, as code that needs a version < V (state/clients.h); and verify
 * finds every derived column equal to its source (state/verify.h).
 *
 * Guarantees:
 *   1. Every transition runs under the repository's cluster lock and
 *      re-reads the row after taking it: callers racing on the same phase
 *      apply it once; the others find it done and succeed.
 *   2. Each step is recorded when it completes (with the step itself where
 *      the backend's DDL is transactional); a run that dies resumes at the
 *      first step without a record.  The row moves one version at a time.
 *      Where a step's statements commit without its record (MariaDB, steps
 *      that are not atomic), a step whose effect is found in the database
 *      is recorded instead of run again (state/effect.h).
 *   3. Before anything runs, the checksum of every applied (or partly
 *      applied) migration is compared with the file on disk
 *      (DBPHASE_ECHECKSUM on a mismatch); a version's checksum is recorded
 *      before its first expand step runs.
 *   4. Every transition that did something or was refused is written to
 *      the history, and checked: a transition that cannot write its row
 *      fails.  The row's last move commits with its history row.
 *   5. A phase whose connection is lost (a server restart, a failover, a
 *      killed session) reconnects with growing waits for up to
 *      reconnect_wait_s, takes the lock again and resumes from the
 *      records and checkpoints, as a new run would.
 *
 * downgrade to V takes back what expand (and migrate) did for the versions
 * in (V, E], newest first, each step by its inverse (state/effect.h), and
 * sets the row back; it is refused below the contracted version, where
 * what old code needed is gone (restore from a backup instead), unless
 * allow_data_loss: then contract steps are taken back too, provided every
 * one of them dropped only what the downgrade removes anyway (what the
 * versions above V created); what those versions created goes, with its
 * data.  Data that migrate wrote stays.
 */
#ifndef DBPHASE_STATE_MACHINE_H
#define DBPHASE_STATE_MACHINE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "core/repo.h"
#include "exec/exec.h"
#include "plan/planner.h"
#include "state/state.h"

enum machine_event_kind {
	MACHINE_PHASE_START,	/* phase, from, to */
	MACHINE_ALREADY_DONE,	/* phase, to: nothing to do */
	MACHINE_STEP_START,	/* step */
	MACHINE_STEP_DONE,	/* step, result */
	MACHINE_STEP_SKIPPED,	/* step: recorded as done by an earlier run */
	MACHINE_PROGRESS,	/* step, rows_done, rows_total, batch_ms */
	MACHINE_VERSION_DONE,	/* phase, to = the version */
	MACHINE_PHASE_DONE,	/* phase, from, to, seconds */
	MACHINE_WARNING,	/* message */
	MACHINE_STEP_UNDONE,	/* step, result: downgrade took it back */
	MACHINE_VERIFY_START,	/* table: verify starts comparing its columns */
	MACHINE_VERIFY_PROGRESS,	/* table, rows_done, rows_total, chunks */
	MACHINE_VERIFY_DONE,	/* table, rows_done, chunks, message: the outcome */
};

struct machine_event {
	enum machine_event_kind kind;
	enum phase phase;
	int64_t from;
	int64_t to;
	const struct plan_step *step;
	const struct exec_result *result;
	uint64_t rows_done;
	uint64_t rows_total;
	double batch_ms;
	double seconds;
	const char *message;
	bool downgrade;		/* PHASE_START, PHASE_DONE, ALREADY_DONE of a downgrade */
	const char *table;	/* VERIFY_* */
	unsigned chunks;	/* VERIFY_PROGRESS, VERIFY_DONE */
};

/*
 * The default node_ttl_s, and the least time contract waits after a node's
 * last heartbeat before taking it for gone: a shorter node_ttl_s decides
 * what status calls live, but lets contract pass a node seen within this
 * time only with --force (recorded as forced).
 */
#define MACHINE_NODE_GONE_S 300

struct machine_opts {
	struct exec_opts exec;
	const struct db_url *url;	/* where the migrate phase's workers connect */
	int lock_wait_s;		/* < 0: forever */
	int reconnect_wait_s;		/* reconnect after a lost connection; 0: never */
	int node_ttl_s;
	bool force;			/* contract despite live old nodes */
	bool skip_verify;		/* contract without verify (state/verify.h) */
	bool allow_data_loss;		/* downgrade: take back contracted versions too */
	const char *command;		/* for history ("db_sync --expand") */
	void (*event)(void *arg, const struct machine_event *ev);
	void *event_arg;
};

void machine_opts_init(struct machine_opts *o);

/*
 * Move phase to target (a version in 1..latest).  Returns 0 (also when it
 * was already there), DBPHASE_EREFUSED with a message naming what must
 * happen first, or another error.
 */
int machine_phase(struct state *st, const struct repo *repo, const struct plan *plan,
		  enum phase phase, int64_t target, const struct machine_opts *o,
		  struct dbphase_error *err);

/*
 * Compare recorded checksums of applied versions with the files:
 * DBPHASE_ECHECKSUM for a changed or missing file, DBPHASE_EAHEAD when
 * every file matches but versions past the repository's end are applied
 * (an older release's repository: read-only commands warn and go on).
 */
int machine_verify(struct state *st, const struct repo *repo, const struct state_versions *v,
		   struct dbphase_error *err);

/*
 * What is next for target: 0 up to date, 2 expand, 3 migrate, 4 contract
 * needed (keystone's --check convention).
 */
int machine_next(const struct state_versions *v, int64_t target);

/*
 * The integrity check of every command that reads the database: the
 * checksums recorded for applied versions against the files (machine_verify),
 * DBPHASE_ECHECKSUM naming the file and version on a mismatch.  Nothing to
 * check (0) when dbphase's tables do not exist yet.
 */
int machine_check(struct state *st, const struct repo *repo, struct dbphase_error *err);

/*
 * Set every phase to version without running anything (version_control,
 * goto, stamp), recording checksums of versions 1..version and history.
 * Refused (DBPHASE_ECHECKSUM) while an applied file differs from its record.
 */
int machine_stamp(struct state *st, const struct repo *repo, int64_t version,
		  const struct machine_opts *o, struct dbphase_error *err);

/*
 * Take back the expand (and migrate) steps of the versions above version,
 * newest first; DBPHASE_EREFUSED below the contracted version ("restore
 * from backup", or what o->allow_data_loss would do) or when a step has
 * no known inverse.  With o->allow_data_loss, contract steps too, all or
 * nothing, recorded as "ok (data loss)".  See machine.c.
 */
int machine_downgrade(struct state *st, const struct repo *repo, const struct plan *plan,
		      int64_t version, const struct machine_opts *o, struct dbphase_error *err);

/*
 * Remove dbphase's own rows of this repository, and its tables once no
 * other repository uses them (state_forget), under the cluster lock; the
 * counterpart of sqlalchemy-migrate's DROP TABLE migrate_version.
 * DBPHASE_EREFUSED while a phase is in flight.  *removed says what went
 * (owned), NULL when dbphase's tables do not exist.
 */
int machine_forget(struct state *st, const struct machine_opts *o, char **removed,
		   struct dbphase_error *err);

/* Record the files' checksums as the truth (validate --repair). */
int machine_repair(struct state *st, const struct repo *repo, const struct machine_opts *o,
		   struct dbphase_error *err);

#endif
