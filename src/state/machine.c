/*
 * state/machine.c - transitions of the phase state machine (see machine.h):
 * the gates, running a phase's steps with their records, detecting work a
 * killed run left unrecorded, stamping, repairing checksums, and downgrade.
 */
#include "config.h"

#include "state/machine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/clock.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "state/clients.h"
#include "state/effect.h"
#include "state/verify.h"

void
machine_opts_init(struct machine_opts *o)
{
	memset(o, 0, sizeof(*o));
	exec_opts_init(&o->exec);
	o->lock_wait_s = 300;
	o->reconnect_wait_s = 60;
	o->node_ttl_s = MACHINE_NODE_GONE_S;
	o->command = "db_sync";
}

static void
emit(const struct machine_opts *o, const struct machine_event *ev)
{
	if (o->event)
		o->event(o->event_arg, ev);
}

int
machine_next(const struct state_versions *v, int64_t target)
{
	if (v->expand < target)
		return 2;
	if (v->migrate < target)
		return 3;
	if (v->contract < target)
		return 4;
	return 0;
}

int
machine_verify(struct state *st, const struct repo *repo, const struct state_versions *v,
	       struct dbphase_error *err)
{
	int64_t *versions, latest = repo_latest(repo), beyond = 0;
	char **sums;
	size_t n, i;
	int rc;

	if ((rc = state_checksums_list(st, &versions, &sums, &n, err)) < 0)
		return rc;
	for (i = 0; i < n && rc == 0; i++) {
		const struct migration *m = repo_migration(repo, versions[i]);

		if (m == NULL && versions[i] > latest)
			beyond = versions[i] > beyond ? versions[i] : beyond;
		else if (m == NULL)
			rc = err_setf(err, DBPHASE_ECHECKSUM,
				      "version %lld was applied (checksum %.12s...), but repository "
				      "'%s' has no file for it any more: restore the file",
				      (long long)versions[i], sums[i], repo->dir);
		else if (strcmp(sums[i], m->checksum) != 0 && m->version > v->expand)
			rc = err_setf(err, DBPHASE_ECHECKSUM,
				      "%s: version %lld is partly applied (an expand stopped in it) "
				      "and the file changed since (checksum %.12s..., now %.12s...); "
				      "undo it with 'dbphase downgrade %lld' and expand again, or run "
				      "'dbphase validate --repair' to resume with the new file",
				      m->path, (long long)m->version, sums[i], m->checksum,
				      (long long)v->expand);
		else if (strcmp(sums[i], m->checksum) != 0)
			rc = err_setf(err, DBPHASE_ECHECKSUM,
				      "%s: version %lld was applied from a file with checksum %.12s..., "
				      "but the file now has %.12s...: an applied migration must not "
				      "change; restore the file, or run 'dbphase validate --repair' "
				      "to accept it on purpose",
				      m->path, (long long)m->version, sums[i], m->checksum);
	}
	/*
	 * Versions applied past the end of the repository, with every file
	 * it has unchanged: this is an older release's repository (a package
	 * rolled back), not a removed file.
	 */
	if (rc == 0 && (beyond > 0 || v->expand > latest))
		rc = err_setf(err, DBPHASE_EAHEAD,
			      "the database is ahead of this package: version %lld is applied "
			      "(expand %lld, migrate %lld, contract %lld) but repository '%s' ends "
			      "at version %lld; run dbphase from the release that applied it",
			      (long long)(beyond > v->expand ? beyond : v->expand),
			      (long long)v->expand, (long long)v->migrate, (long long)v->contract,
			      repo->dir, (long long)latest);
	for (i = 0; i < n; i++)
		free(sums[i]);
	free(sums);
	free(versions);
	return rc;
}

int
machine_check(struct state *st, const struct repo *repo, struct dbphase_error *err)
{
	struct state_versions v;
	bool exist;
	int rc;

	if ((rc = state_tables_exist(st, &exist, err)) < 0 || !exist)
		return rc;
	if ((rc = state_read(st, &v, err)) < 0)
		return rc;
	return machine_verify(st, repo, &v, err);
}

/* Hooks from the executor back into the state tables; job->data is the step_ctx. */
struct step_ctx {
	struct state *st;
	const struct plan_step *step;
	const struct machine_opts *o;
	char *id;
};

static int
hook_job_commit(void *arg, struct db_conn *conn, const struct exec_job *job,
		struct dbphase_error *err)
{
	struct step_ctx *sc = job->data;

	return state_step_record(sc->st, sc->id, err);
}

static int
hook_chunks_load(void *arg, struct db_conn *conn, const struct exec_job *job,
		 struct exec_chunk **chunks, size_t *n, struct dbphase_error *err)
{
	struct step_ctx *sc = job->data;

	return state_chunks_load(sc->st, sc->id, chunks, n, err);
}

static int
hook_chunks_save(void *arg, struct db_conn *conn, const struct exec_job *job,
		 const struct exec_chunk *chunks, size_t n, uint64_t rows_total,
		 struct dbphase_error *err)
{
	struct step_ctx *sc = job->data;

	return state_chunks_save(sc->st, sc->id, chunks, n, rows_total, err);
}

static void
hook_checkpoint_sql(void *arg, const struct exec_job *job, enum db_backend backend,
		    struct strbuf *sql, const char **extra, size_t *n_extra)
{
	struct step_ctx *sc = job->data;

	state_checkpoint_sql(sc->st, sql);
	extra[0] = sc->st->repo;
	extra[1] = sc->id;
	*n_extra = 2;
}

static void
hook_fence_sql(void *arg, const struct exec_job *job, enum db_backend backend,
	       struct strbuf *sql, const char **extra, size_t *n_extra)
{
	struct step_ctx *sc = job->data;

	state_fence_sql(sc->st, sql, extra, n_extra);
}

static int
hook_chunk_reload(void *arg, struct db_conn *conn, const struct exec_job *job, int chunk,
		  struct exec_chunk *out, struct dbphase_error *err)
{
	struct step_ctx *sc = job->data;

	return state_chunk_reload(sc->st, conn, sc->id, chunk, out, err);
}

static int
hook_job_done(void *arg, struct db_conn *conn, const struct exec_job *job,
	      struct dbphase_error *err)
{
	struct step_ctx *sc = job->data;
	int rc = conn->drv->begin(conn, err);

	if (rc == 0 && (rc = state_step_record(sc->st, sc->id, err)) == 0)
		rc = conn->drv->commit(conn, err);
	else
		conn->drv->rollback(conn, &(struct dbphase_error)DBPHASE_ERROR_INIT);
	return rc;
}

static void
hook_progress(void *arg, const struct exec_job *job, uint64_t done, uint64_t total,
	      uint64_t batch_rows, double batch_ms)
{
	struct step_ctx *sc = job->data;
	struct machine_event ev = { .kind = MACHINE_PROGRESS, .phase = sc->step->phase,
				    .step = sc->step, .rows_done = done, .rows_total = total,
				    .batch_ms = batch_ms };

	emit(sc->o, &ev);
}

static const struct exec_hooks machine_hooks = {
	.job_commit = hook_job_commit,
	.chunks_load = hook_chunks_load,
	.chunks_save = hook_chunks_save,
	.checkpoint_sql = hook_checkpoint_sql,
	.fence_sql = hook_fence_sql,
	.chunk_reload = hook_chunk_reload,
	.job_done = hook_job_done,
	.progress = hook_progress,
};

static void
job_from_step(const struct plan_step *s, struct step_ctx *sc, struct exec_job *job)
{
	memset(job, 0, sizeof(*job));
	job->id = sc->id;
	job->op_where = s->op_where;
	job->source = s->source;
	job->data = sc;
	job->atomic = s->atomic;
	job->sql = s->sql;
	job->n_sql = s->n_sql;
	job->table = s->table;
	job->set_sql = s->set_sql;
	job->where_sql = s->where_sql;
	job->keys = s->keys;
	job->n_keys = s->n_keys;
	job->integer_key = s->integer_key;
	job->column = s->column;
	job->set_not_null = s->set_not_null;
	job->set_default = s->set_default;
	job->drop_default = s->drop_default;
	job->exercise_table = s->exercise_table;
	job->triggers = s->triggers;
	job->n_triggers = s->n_triggers;
	switch (s->action) {
	case STEP_SQL:
		job->kind = EXEC_SQL;
		break;
	case STEP_BACKFILL:
		job->kind = EXEC_BACKFILL;
		break;
	case STEP_REBUILD:
		job->kind = EXEC_REBUILD;
		break;
	}
}

/*
 * Whether a step without a record already left its whole effect behind.
 * Where a step commits in one transaction with its record this cannot
 * happen; where it does not (every DDL statement on MariaDB, a step that
 * is not atomic such as CREATE INDEX CONCURRENTLY), a run killed after
 * the step's last statement and before its record did exactly that.  Only
 * steps whose every statement is understood (state/effect.h) and creates
 * something the database can be asked about are recognised.
 */
static int
effect_already_there(struct state *st, const struct plan_step *s, bool *there,
		     struct dbphase_error *err)
{
	size_t i, creates = 0;
	int rc = 0;

	*there = false;
	if (s->action != STEP_SQL || (s->atomic && exec_transactional_ddl(st->conn)))
		return 0;
	for (i = 0; i < s->n_sql && rc == 0; i++) {
		struct effect e;
		bool present = true, known = true;
		enum effect_kind kind;

		effect_parse(s->sql[i], &e);
		kind = e.kind;
		if (kind != EFFECT_NONE && kind != EFFECT_UNKNOWN) {
			rc = effect_present(st->conn, &e, &present, &known, err);
			creates++;
		}
		effect_release(&e);
		if (kind == EFFECT_UNKNOWN || (rc == 0 && (!known || !present)))
			return 0;
	}
	if (rc == 0)
		*there = creates > 0;
	return rc;
}

/* Record a step whose effect was found in place, in a transaction of its own. */
static int
record_found(struct state *st, const char *id, struct dbphase_error *err)
{
	int rc = st->conn->drv->begin(st->conn, err);

	if (rc == 0 && (rc = state_step_record(st, id, err)) == 0)
		rc = st->conn->drv->commit(st->conn, err);
	else
		st->conn->drv->rollback(st->conn, &(struct dbphase_error)DBPHASE_ERROR_INIT);
	return rc;
}

/* Run one DDL step unless it is recorded as done, or found done. */
static int
run_step(struct state *st, const struct plan_step *s, const struct machine_opts *o,
	 struct dbphase_error *err)
{
	struct exec_result res;
	struct exec_job job;
	struct step_ctx sc = { st, s, o, plan_step_id(s) };
	struct machine_event ev = { .phase = s->phase, .step = s };
	bool done, there;
	int rc;

	if ((rc = state_step_done(st, sc.id, &done, err)) < 0)
		goto out;
	if (!done) {
		if ((rc = effect_already_there(st, s, &there, err)) < 0 ||
		    (there && (rc = record_found(st, sc.id, err)) < 0))
			goto out;
		if (there)
			ev.message = "its effect was already in the database (an earlier run "
				     "stopped before recording it): recorded, not run again";
		done = there;
	}
	if (done) {
		ev.kind = MACHINE_STEP_SKIPPED;
		emit(o, &ev);
		goto out;
	}
	ev.kind = MACHINE_STEP_START;
	emit(o, &ev);
	job_from_step(s, &sc, &job);
	rc = exec_job_run(st->conn, &job, &o->exec, &machine_hooks, &res, err);
	if (rc < 0) {
		err_prefixf(err, "%s (%s, from %s)", sc.id, s->op_where, s->source);
		goto out;
	}
	ev.kind = MACHINE_STEP_DONE;
	ev.result = &res;
	emit(o, &ev);
out:
	free(sc.id);
	return rc;
}

/*
 * Run backfill steps [first, first + n) at once (exec_run_backfills): steps
 * on different tables side by side, each table's in order.
 */
static int
run_backfills(struct state *st, const struct plan *plan, size_t first, size_t n,
	      const struct machine_opts *o, bool *interrupted, struct dbphase_error *err)
{
	struct step_ctx *scs = xcalloc(n, sizeof(*scs));
	struct exec_job *jobs = xcalloc(n, sizeof(*jobs));
	struct exec_result *res = xcalloc(n, sizeof(*res));
	const struct plan_step **steps = xcalloc(n, sizeof(*steps));
	size_t i, k = 0;
	int rc = 0;

	for (i = 0; i < n && rc == 0; i++) {
		const struct plan_step *s = &plan->steps[first + i];
		struct machine_event ev = { .phase = s->phase, .step = s };
		char *id = plan_step_id(s);
		bool done;

		if ((rc = state_step_done(st, id, &done, err)) < 0) {
			free(id);
			break;
		}
		if (done) {
			ev.kind = MACHINE_STEP_SKIPPED;
			emit(o, &ev);
			free(id);
			continue;
		}
		ev.kind = MACHINE_STEP_START;
		emit(o, &ev);
		scs[k] = (struct step_ctx){ st, s, o, id };
		steps[k] = s;
		job_from_step(s, &scs[k], &jobs[k]);
		k++;
	}
	if (rc == 0 && k > 0) {
		rc = exec_run_backfills(st->conn, o->url, jobs, k, &o->exec, &machine_hooks, res, err);
		if (rc < 0)
			err_prefixf(err, "migrate of version %lld", (long long)steps[0]->version);
	}
	for (i = 0; rc == 0 && i < k; i++) {
		struct machine_event ev = { .kind = MACHINE_STEP_DONE, .phase = steps[i]->phase,
					    .step = steps[i], .result = &res[i] };

		if (res[i].interrupted)
			*interrupted = true;
		else
			emit(o, &ev);
	}
	for (i = 0; i < k; i++)
		free(scs[i].id);
	free(scs);
	free(jobs);
	free(res);
	free(steps);
	return rc;
}

/*
 * A transition, from open_transition to close_transition, runs under the
 * repository's cluster lock:
 *
 *   lock -> tables, row, checksums -> the work -> [row +] history -> unlock
 *
 * The history row of every transition that did something or was refused
 * is written by close_transition and checked: a transition whose row
 * cannot be recorded fails.  Where the transition's last change is still
 * pending (the row reaching its target, a stamp, a repair), that change
 * commits in one transaction with the history row, so that no change of
 * the row is ever without its history, whatever dies when.
 */
struct transition {
	struct state *st;
	const struct machine_opts *o;
	struct state_versions before;	/* the row when the lock was taken */
	struct state_versions v;	/* the row as the transition leaves it */
	bool pending;			/* v is still to be written, with the history */
	double started;
};

/*
 * Under the lock, at the start of a transition and after a reconnection:
 * dbphase's tables, the lock's fence generation bumped (state.c, "The lock
 * fence"), the row read again (another caller may have moved it while we
 * waited), and, with verify, the applied files checked against their
 * checksums.
 */
static int
reopen_transition(struct transition *t, const struct repo *repo, bool verify,
		  struct dbphase_error *err)
{
	int rc;

	t->pending = false;
	if ((rc = state_ensure_tables(t->st, err)) < 0 || (rc = state_fence_take(t->st, err)) < 0 ||
	    (rc = state_read(t->st, &t->v, err)) < 0)
		return rc;
	return verify ? machine_verify(t->st, repo, &t->v, err) : 0;
}

/* The start of every transition: the cluster lock, then reopen_transition. */
static int
open_transition(struct transition *t, struct state *st, const struct repo *repo,
		const struct machine_opts *o, bool verify, struct dbphase_error *err)
{
	int rc;

	memset(t, 0, sizeof(*t));
	t->st = st;
	t->o = o;
	t->started = clock_now_s();
	if ((rc = state_lock(st, o->lock_wait_s, err)) < 0)
		return rc;
	if ((rc = reopen_transition(t, repo, verify, err)) < 0) {
		state_unlock(st);
		return rc;
	}
	t->before = t->v;
	return 0;
}

/*
 * The end of every transition.  rc is its outcome (err holds the message
 * when rc < 0); result is what the history says ("ok", "refused", ...),
 * NULL when nothing happened that needs a record.  A transaction the
 * transition left open commits with the history row, or rolls back when
 * rc < 0.  Returns rc, or the failure to record when rc was 0; a failure
 * to record an error is added to its message.  The lock is released.
 */
static int
close_transition(struct transition *t, int rc, const char *result, const char *detail,
		 struct dbphase_error *err)
{
	struct db_conn *conn = t->st->conn;
	struct dbphase_error herr = DBPHASE_ERROR_INIT;
	char *from = NULL, *to = NULL, *msg;
	bool undone = t->pending || conn->in_transaction;
	int hrc = 0;

	if (rc < 0 && conn->in_transaction)
		conn->drv->rollback(conn, &(struct dbphase_error)DBPHASE_ERROR_INIT);
	if (result != NULL) {
		from = state_versions_text(&t->before);
		to = state_versions_text(&t->v);
		if (!conn->in_transaction)
			hrc = conn->drv->begin(conn, &herr);
		if (hrc == 0 && rc == 0 && t->pending)
			hrc = state_write(t->st, &t->v, &herr);
		if (hrc == 0)
			hrc = state_history_add(t->st, t->o->command, from, to, result,
						clock_now_s() - t->started, detail, &herr);
	}
	if (conn->in_transaction && hrc == 0)
		hrc = conn->drv->commit(conn, &herr);
	if (hrc < 0 && conn->in_transaction)
		conn->drv->rollback(conn, &(struct dbphase_error)DBPHASE_ERROR_INIT);
	if (hrc < 0 && rc == 0) {
		rc = err_setf(err, herr.code, "%s (%s -> %s) was not recorded in dbphase_history, "
			      "so %s: %s", t->o->command, from, to, undone ?
			      "it did not take effect; run it again" :
			      "its effect is in the database but not in the history", herr.message);
		err->retryable = herr.retryable;
	} else if (hrc < 0) {
		msg = xstrdup(err->message ? err->message : "");
		err_setf(err, rc, "%s (and this %s was not recorded in dbphase_history: %s)", msg,
			 result, herr.message);
		free(msg);
	}
	free(from);
	free(to);
	err_release(&herr);
	state_unlock(t->st);
	return rc;
}

/*
 * Contract gate: nodes that still need a version below target and sent a
 * heartbeat within node_ttl_s (live), or within MACHINE_NODE_GONE_S when
 * node_ttl_s is shorter (recent: a short TTL is no quiet way past the
 * gate).  With --force they are named in a warning and in *forced (for
 * the history).
 */
static int
check_nodes(struct state *st, int64_t target, const struct machine_opts *o, char **forced,
	    struct dbphase_error *err)
{
	struct state_node *nodes;
	struct strbuf live = STRBUF_INIT, recent = STRBUF_INIT, why = STRBUF_INIT;
	int gone_s = o->node_ttl_s > MACHINE_NODE_GONE_S ? o->node_ttl_s : MACHINE_NODE_GONE_S;
	size_t n, i, blocking = 0, n_recent = 0;
	int rc = state_node_list(st, &nodes, &n, err);

	if (rc < 0)
		return rc;
	for (i = 0; i < n; i++) {
		bool is_live = nodes[i].age_s <= o->node_ttl_s;
		struct strbuf *sb = is_live ? &live : &recent;

		if (nodes[i].age_s > gone_s || nodes[i].schema_version >= target)
			continue;
		strbuf_addf(sb, "%s'%s' (needs version %lld, heartbeat %llds ago)",
			    sb->len ? ", " : "", nodes[i].name,
			    (long long)nodes[i].schema_version, (long long)nodes[i].age_s);
		if (is_live)
			blocking++;
		else
			n_recent++;
	}
	if (blocking > 0 && !o->force) {
		rc = err_setf(err, DBPHASE_EREFUSED,
			      "contract to %lld refused: %zu live node%s still run%s code that needs "
			      "an older schema: %s; upgrade or retire %s first (dbphase node retire), "
			      "or wait until %s heartbeat is older than %d s (node_ttl_s)",
			      (long long)target, blocking, blocking == 1 ? "" : "s",
			      blocking == 1 ? "s" : "", live.buf, blocking == 1 ? "it" : "them",
			      blocking == 1 ? "its" : "their", o->node_ttl_s);
	} else if (n_recent > 0 && !o->force) {
		rc = err_setf(err, DBPHASE_EREFUSED,
			      "contract to %lld refused: node%s %s may still be running: node_ttl_s "
			      "is %d s, but a node counts as gone only %d s after its last heartbeat "
			      "unless --force is given; retire %s (dbphase node retire) if %s gone",
			      (long long)target, n_recent == 1 ? "" : "s", recent.buf, o->node_ttl_s,
			      MACHINE_NODE_GONE_S, n_recent == 1 ? "it" : "them",
			      n_recent == 1 ? "it is" : "they are");
	} else if (blocking + n_recent > 0) {
		struct machine_event ev = { .kind = MACHINE_WARNING, .phase = PHASE_CONTRACT };

		if (blocking > 0)
			strbuf_addf(&why, "live nodes need an older schema: %s", live.buf);
		if (n_recent > 0)
			strbuf_addf(&why, "%snode%s %s may still be running (node_ttl_s %d s)",
				    blocking ? "; and " : "", n_recent == 1 ? "" : "s", recent.buf,
				    o->node_ttl_s);
		*forced = xasprintf("--force: contracted to %lld although %s", (long long)target,
				    why.buf);
		ev.message = *forced;
		emit(o, &ev);
	}
	strbuf_release(&live);
	strbuf_release(&recent);
	strbuf_release(&why);
	state_nodes_free(nodes, n);
	return rc;
}

/* Connections a refusal or warning names; the others are counted. */
#define MACHINE_CLIENTS_NAMED 10

/*
 * Contract gate, second source: live connections that say (repository.yaml
 * clients, state/clients.h) they run code that needs a version below
 * target.  A server that cannot tell (MariaDB without performance_schema)
 * refuses too, never a silent pass.  With --force either is named in a
 * warning and appended to *forced (for the history).
 */
static int
check_clients(struct state *st, const struct repo *repo, int64_t target,
	      const struct machine_opts *o, char **forced, struct dbphase_error *err)
{
	struct clients_report rep;
	struct strbuf old = STRBUF_INIT;
	size_t i, blocking = 0;
	char *why = NULL;
	int rc = clients_read(st, repo, &rep, err);

	if (rc < 0 || rep.config == NULL)
		return rc;
	for (i = 0; i < rep.n; i++) {
		const struct clients_entry *e = &rep.entries[i];

		if (e->version >= target || ++blocking > MACHINE_CLIENTS_NAMED)
			continue;
		strbuf_addf(&old, "%s%s (session %s, %s '%s', needs version %lld)",
			    old.len ? ", " : "", clients_address(e), e->id, rep.config->attribute,
			    e->value, (long long)e->version);
	}
	if (blocking > MACHINE_CLIENTS_NAMED)
		strbuf_addf(&old, " and %zu more", blocking - MACHINE_CLIENTS_NAMED);
	if (rep.unreadable)
		why = xasprintf("%s asks which code the live connections run (by their %s), but "
				"the server cannot tell: %s", rep.config->where,
				rep.config->attribute, rep.unreadable);
	else if (blocking > 0)
		why = xasprintf("%zu live connection%s still run%s code that needs an older "
				"schema: %s", blocking, blocking == 1 ? "" : "s",
				blocking == 1 ? "s" : "", old.buf);
	if (why && !o->force) {
		rc = err_setf(err, DBPHASE_EREFUSED, "contract to %lld refused: %s; %s, or "
			      "contract anyway with --force", (long long)target, why,
			      rep.unreadable ? "turn it on" : blocking == 1 ?
			      "upgrade or stop that client first" :
			      "upgrade or stop those clients first");
	} else if (why) {
		struct machine_event ev = { .kind = MACHINE_WARNING, .phase = PHASE_CONTRACT };
		char *msg = xasprintf("--force: contracted to %lld although %s", (long long)target,
				      why);
		char *all = *forced ? xasprintf("%s; %s", *forced, msg) : xstrdup(msg);

		ev.message = msg;
		emit(o, &ev);
		free(*forced);
		*forced = all;
		free(msg);
	}
	free(why);
	strbuf_release(&old);
	clients_report_release(&rep);
	return rc;
}

/* May phase move to target?  The refusal names what must happen first. */
static int
gate(struct state *st, const struct repo *repo, enum phase phase, int64_t target,
     const struct state_versions *v, const struct machine_opts *o, char **forced,
     struct dbphase_error *err)
{
	int rc;
	long long t = (long long)target;

	switch (phase) {
	case PHASE_EXPAND:
		return 0;
	case PHASE_MIGRATE:
		if (v->expand < target)
			return err_setf(err, DBPHASE_EREFUSED,
					"migrate to %lld refused: expand is at %lld; run db_sync "
					"--expand %lld first", t, (long long)v->expand, t);
		return 0;
	case PHASE_CONTRACT:
		if (v->expand < target)
			return err_setf(err, DBPHASE_EREFUSED,
					"contract to %lld refused: expand is at %lld and migrate at "
					"%lld; run db_sync --expand %lld, then db_sync --migrate %lld "
					"first", t, (long long)v->expand, (long long)v->migrate, t, t);
		if (v->migrate < target)
			return err_setf(err, DBPHASE_EREFUSED,
					"contract to %lld refused: migrate is at %lld; run db_sync "
					"--migrate %lld first", t, (long long)v->migrate, t);
		if ((rc = check_nodes(st, target, o, forced, err)) < 0)
			return rc;
		return check_clients(st, repo, target, o, forced, err);
	}
	return 0;
}

static int64_t *
phase_field(struct state_versions *v, enum phase phase)
{
	return phase == PHASE_EXPAND ? &v->expand :
	       phase == PHASE_MIGRATE ? &v->migrate : &v->contract;
}

/* Record a migration's checksum unless it is recorded (it then matches: verified). */
static int
put_checksum(struct state *st, const struct migration *m, struct dbphase_error *err)
{
	char *sum;
	int rc = state_checksum_get(st, m->version, &sum, err);

	if (rc == 0 && sum == NULL)
		rc = state_checksum_put(st, m->version, m->checksum, err);
	free(sum);
	return rc;
}

/*
 * Run phase's steps of each version up to target, moving the row one
 * version at a time; the move to target itself is left to t's close,
 * which commits it with the history row.
 */
static int
run_versions(struct transition *t, const struct repo *repo, const struct plan *plan,
	     enum phase phase, int64_t target, bool *interrupted, struct dbphase_error *err)
{
	struct state *st = t->st;
	struct state_versions *v = &t->v;
	const struct machine_opts *o = t->o;
	int64_t ver;
	size_t i;
	int rc = 0;

	for (ver = *phase_field(v, phase) + 1; ver <= target && rc == 0; ver++) {
		struct machine_event ev = { .kind = MACHINE_VERSION_DONE, .phase = phase, .to = ver };

		/*
		 * The file's checksum is recorded before its first step runs, so
		 * that a file edited between a killed run and its resumption is
		 * caught (machine_verify) rather than resumed with other steps.
		 */
		if (phase == PHASE_EXPAND &&
		    (rc = put_checksum(st, repo_migration(repo, ver), err)) < 0)
			break;

		for (i = 0; i < plan->n_steps && rc == 0 && !*interrupted; i++) {
			const struct plan_step *s = &plan->steps[i];
			size_t n = 0;

			if (s->version != ver || s->phase != phase)
				continue;
			/* A signal stops between steps; the records make it resumable. */
			if (o->exec.stop && *o->exec.stop) {
				*interrupted = true;
				break;
			}
			if (s->action != STEP_BACKFILL) {
				rc = run_step(st, s, o, err);
				continue;
			}
			/* Consecutive backfills of a version run at once. */
			while (i + n < plan->n_steps && plan->steps[i + n].version == ver &&
			       plan->steps[i + n].phase == phase &&
			       plan->steps[i + n].action == STEP_BACKFILL)
				n++;
			rc = run_backfills(st, plan, i, n, o, interrupted, err);
			i += n - 1;
		}
		if (rc < 0 || *interrupted)
			break;
		*phase_field(v, phase) = ver;
		if (ver == target) {
			t->pending = true;
			break;
		}
		if ((rc = st->conn->drv->begin(st->conn, err)) < 0)
			break;
		rc = state_write(st, v, err);
		if (rc == 0)
			rc = st->conn->drv->commit(st->conn, err);
		else
			st->conn->drv->rollback(st->conn, &(struct dbphase_error)DBPHASE_ERROR_INIT);
		if (rc == 0)
			emit(o, &ev);
	}
	return rc;
}

/*
 * Whether a failed phase lost its connection (a server restart, a
 * failover, a killed session) rather than met an error that a new run
 * would meet too: the executor says so (DBPHASE_ECONNECT: a worker could
 * not connect again, or the lock's holder connection is gone), or the
 * connection no longer answers.
 */
static bool
connection_lost(struct state *st, const struct dbphase_error *err)
{
	if (err->code == DBPHASE_ECONNECT)
		return true;
	if (err->code == DBPHASE_ELOCK_TIMEOUT || err->code == DBPHASE_EINTERRUPTED)
		return false;
	return !state_alive(st);
}

static bool
stop_requested(const struct machine_opts *o)
{
	return o->exec.stop && *o->exec.stop;
}

/* Sleep ms, waking early when a signal asks to stop. */
static void
nap(const struct machine_opts *o, double ms)
{
	struct timespec ts = { 0, 50 * 1000000L };

	for (; ms > 0 && !stop_requested(o); ms -= 50)
		nanosleep(&ts, NULL);
}

/*
 * After a lost connection: connect again with growing waits until deadline,
 * take the lock again (waiting as long as lock_wait_s allows: another run
 * may hold it meanwhile) and open the transition again, which re-reads the
 * row; the records and checkpoints then say where to resume.
 */
static int
reconnect(struct transition *t, const struct repo *repo, double deadline,
	  struct dbphase_error *err)
{
	struct state *st = t->st;
	const struct machine_opts *o = t->o;
	struct machine_event ev = { .kind = MACHINE_WARNING };
	double wait = 100;
	int rc, attempt;
	char *msg;

	msg = xasprintf("lost the connection to the database (%s); reconnecting for up to %d s "
			"(reconnect_wait_s)", err->message, o->reconnect_wait_s);
	ev.message = msg;
	emit(o, &ev);
	free(msg);
	for (attempt = 1;; attempt++) {
		nap(o, wait);
		if (stop_requested(o))
			return err_setf(err, DBPHASE_EINTERRUPTED, "stopped by a signal while "
					"reconnecting");
		wait = wait * 2 > 5000 ? 5000 : wait * 2;
		err_release(err);
		if ((rc = state_reconnect(st, o->url, err)) == 0 &&
		    (rc = state_lock(st, o->lock_wait_s, err)) == 0 &&
		    (rc = reopen_transition(t, repo, true, err)) == 0)
			break;
		if (rc == DBPHASE_ELOCK_TIMEOUT || (rc != DBPHASE_ECONNECT && state_alive(st)))
			return rc;
		if (clock_now_s() >= deadline)
			return err_prefixf(err, "gave up reconnecting after %d s (reconnect_wait_s)",
					   o->reconnect_wait_s);
	}
	msg = xasprintf("reconnected after %d attempt%s; resuming from the checkpoints",
			attempt, attempt == 1 ? "" : "s");
	ev.message = msg;
	emit(o, &ev);
	free(msg);
	return 0;
}

/*
 * run_versions, resumed after each lost connection (machine.h, 5.).  An
 * outage gets reconnect_wait_s; a connection lost again soon after a
 * reconnection counts as the same outage, so that one that keeps coming
 * back cannot make the run go on for ever.
 */
static int
run_versions_resuming(struct transition *t, const struct repo *repo, const struct plan *plan,
		      enum phase phase, int64_t target, bool *interrupted,
		      struct dbphase_error *err)
{
	const struct machine_opts *o = t->o;
	double deadline = 0, started;
	int rc;

	for (;;) {
		started = clock_now_s();
		rc = run_versions(t, repo, plan, phase, target, interrupted, err);
		if (rc >= 0 || o->reconnect_wait_s <= 0 || o->url == NULL ||
		    stop_requested(o) || !connection_lost(t->st, err))
			return rc;
		if (deadline == 0 || clock_now_s() - started > o->reconnect_wait_s)
			deadline = clock_now_s() + o->reconnect_wait_s;
		if ((rc = reconnect(t, repo, deadline, err)) < 0)
			return rc;
		/* Another run may have moved the row meanwhile: the gate again. */
		if (*phase_field(&t->v, phase) < target) {
			char *forced = NULL;

			rc = gate(t->st, repo, phase, target, &t->v, o, &forced, err);
			free(forced);
			if (rc < 0)
				return rc;
		}
	}
}
int
machine_phase(struct state *st, const struct repo *repo, const struct plan *plan,
	      enum phase phase, int64_t target, const struct machine_opts *o,
	      struct dbphase_error *err)
{
	struct transition t;
	struct machine_event ev = { .phase = phase, .to = target };
	bool interrupted = false;
	char *forced = NULL;
	const char *result, *detail;
	int rc;

	if (target < 1 || target > repo_latest(repo))
		return err_setf(err, DBPHASE_EUSAGE, "version %lld is not in the repository "
				"(1 to %lld)", (long long)target, (long long)repo_latest(repo));
	if ((rc = open_transition(&t, st, repo, o, true, err)) < 0)
		return rc;
	ev.from = *phase_field(&t.v, phase);
	if (ev.from >= target) {
		ev.kind = MACHINE_ALREADY_DONE;
		emit(o, &ev);
		return close_transition(&t, 0, NULL, NULL, err);
	}
	/* Contract's last gate: derived columns equal their sources (state/verify.h). */
	if ((rc = gate(st, repo, phase, target, &t.v, o, &forced, err)) < 0 ||
	    (phase == PHASE_CONTRACT &&
	     (rc = verify_gate(st, plan, &t.v, target, o, &forced, err)) < 0)) {
		rc = close_transition(&t, rc, rc == DBPHASE_EREFUSED ? "refused" :
				      rc == DBPHASE_EINTERRUPTED ? "interrupted" : "failed",
				      err->message, err);
		free(forced);
		return rc;
	}
	ev.kind = MACHINE_PHASE_START;
	emit(o, &ev);
	rc = run_versions_resuming(&t, repo, plan, phase, target, &interrupted, err);
	if (rc == DBPHASE_EINTERRUPTED) {
		err_release(err);
		interrupted = true;
		rc = 0;
	}
	result = forced ? "ok (forced)" : "ok";
	detail = forced;
	if (rc < 0) {
		result = "failed";
		detail = err->message;
	} else if (interrupted) {
		result = "interrupted";
		detail = "stopped by a signal after the step or batch in flight";
		rc = err_setf(err, DBPHASE_EINTERRUPTED,
			      "stopped by a signal after the step or batch in flight; %s is at "
			      "%lld of %lld; run the same command again to resume", phase_name(phase),
			      (long long)*phase_field(&t.v, phase), (long long)target);
	}
	rc = close_transition(&t, rc, result, detail, err);
	free(forced);
	if (rc < 0)
		return rc;
	{
		struct machine_event vd = { .kind = MACHINE_VERSION_DONE, .phase = phase,
					    .to = target };

		emit(o, &vd);
	}
	ev.kind = MACHINE_PHASE_DONE;
	ev.seconds = clock_now_s() - t.started;
	emit(o, &ev);
	return 0;
}

int
machine_stamp(struct state *st, const struct repo *repo, int64_t version,
	      const struct machine_opts *o, struct dbphase_error *err)
{
	struct transition t;
	int64_t ver;
	char *detail;
	int rc;

	if (version < 0 || version > repo_latest(repo))
		return err_setf(err, DBPHASE_EUSAGE, "version %lld is not in the repository "
				"(0 to %lld)", (long long)version, (long long)repo_latest(repo));
	if ((rc = open_transition(&t, st, repo, o, true, err)) < 0)
		return rc;
	/* Everything in one transaction, which close commits with the history row. */
	rc = st->conn->drv->begin(st->conn, err);
	for (ver = 1; ver <= version && rc == 0; ver++)
		rc = state_checksum_put(st, ver, repo_migration(repo, ver)->checksum, err);
	/* Steps of versions above the stamp must run again if they come. */
	for (ver = version + 1; ver <= repo_latest(repo) && rc == 0; ver++) {
		rc = state_steps_forget(st, ver, "expand", err);
		if (rc == 0)
			rc = state_steps_forget(st, ver, "migrate", err);
		if (rc == 0)
			rc = state_steps_forget(st, ver, "contract", err);
		if (rc == 0)
			rc = state_checksum_forget(st, ver, err);
	}
	if (rc == 0) {
		t.v.expand = t.v.migrate = t.v.contract = version;
		t.pending = true;
	}
	detail = xasprintf("stamped at %lld: nothing was run", (long long)version);
	rc = close_transition(&t, rc, rc == 0 ? "ok" : "failed", rc == 0 ? detail : err->message,
			      err);
	free(detail);
	return rc;
}

/* ---- downgrade ------------------------------------------------------------ */

/*
 * Downgrade takes back what expand (and migrate) did for the versions
 * above the target, newest first and each version's steps in reverse:
 *
 *   1. Refused below the contracted version, and when a version above the
 *      target is partly contracted: what only old code needed is gone, and
 *      no inverse brings data back (restore from backup).  With
 *      --allow-data-loss (sqlalchemy-migrate's downgrade, which "will
 *      likely result in data loss") the contract steps of those versions
 *      are taken back too, first of all, provided each one only dropped or
 *      changed what the downgrade removes anyway: what a version above the
 *      target created (struct undo_scope).  A contract that dropped
 *      anything older (a column, a table, an index the target version
 *      has) refuses the whole downgrade, naming the step.
 *   2. Every step to undo must have an inverse (state/effect.h) before
 *      anything runs; one that has none refuses the whole downgrade.
 *   3. The version row moves first (migrate, then expand, one version at a
 *      time), then the steps of that version are undone, each in one
 *      transaction with the removal of its record where DDL is
 *      transactional.  A downgrade killed half way leaves a state that
 *      either a new downgrade or an expand finishes: steps still recorded
 *      are undone by the one, steps without record are run by the other.
 *   4. Data written by migrate stays (backfills of columns that go with
 *      their expand, or one-off fixes no inverse can know); its progress
 *      and records are forgotten, so a later migrate runs it again.
 *
 * Which steps of a version are taken back: every one when the row says the
 * version is applied; above that (a run stopped inside the version), the
 * recorded ones, and the first unrecorded one where a step's statements
 * commit without its record (MariaDB, non-atomic steps): it may have been
 * in flight when the run was killed.  An expand that stopped in version
 * E+1 before recording any step is known by E+1's checksum, recorded when
 * its first step started.  Before each inverse statement runs, the
 * database is asked whether its object is there; what is gone is skipped,
 * so taking back a half-applied step, or running a downgrade twice, is
 * harmless.
 */

struct undo_ctx {
	struct state *st;
	char *id;
};

static int
hook_undo_commit(void *arg, struct db_conn *conn, const struct exec_job *job,
		 struct dbphase_error *err)
{
	struct undo_ctx *uc = job->data;

	return state_step_forget(uc->st, uc->id, err);
}

static const struct exec_hooks undo_hooks = {
	.job_commit = hook_undo_commit,
};

/* A statement, shortened for a message; caller frees. */
static char *
statement_excerpt(const char *sql)
{
	size_t len = strcspn(sql, "\n");

	return len > 60 ? xasprintf("%.57s...", sql) : xstrndup(sql, len);
}

/*
 * What the versions a downgrade takes back created, read from their steps'
 * statements: the downgrade removes all of it (each creating step's
 * inverse, or the table it stands on).  A contract step of version V that
 * dropped or changed such an object, or anything on such a table, needs
 * nothing put back; nor does one that dropped an object dbphase named for
 * a version in (target, V] ("dbp_v003_...", migration-format.md): no
 * older version has it.
 */
struct undo_scope {
	enum db_backend backend;
	int64_t target;
	struct effect *made;
	int64_t *made_in;	/* the version of each */
	size_t n_made;
};

static void
scope_init(struct undo_scope *sc, const struct plan *plan, enum db_backend b, int64_t target)
{
	size_t i, k;

	memset(sc, 0, sizeof(*sc));
	sc->backend = b;
	sc->target = target;
	for (i = 0; i < plan->n_steps; i++) {
		const struct plan_step *s = &plan->steps[i];

		if (s->version <= target || s->action != STEP_SQL)
			continue;
		for (k = 0; k < s->n_sql; k++) {
			struct effect e;

			effect_parse(s->sql[k], &e);
			if (e.kind == EFFECT_NONE || e.kind == EFFECT_UNKNOWN ||
			    e.kind == EFFECT_DROP_NOT_NULL) {
				effect_release(&e);
				continue;
			}
			sc->made = xrealloc(sc->made, (sc->n_made + 1) * sizeof(*sc->made));
			sc->made_in = xrealloc(sc->made_in, (sc->n_made + 1) *
					      sizeof(*sc->made_in));
			sc->made[sc->n_made] = e;
			sc->made_in[sc->n_made++] = s->version;
		}
	}
}

static void
scope_release(struct undo_scope *sc)
{
	size_t i;

	for (i = 0; i < sc->n_made; i++)
		effect_release(&sc->made[i]);
	free(sc->made);
	free(sc->made_in);
	memset(sc, 0, sizeof(*sc));
}

/* Names in MariaDB and SQLite schemas compare without case. */
static bool
same_name(enum db_backend b, const char *x, const char *y)
{
	return x && y && (b == DB_BACKEND_POSTGRESQL ? strcmp(x, y) == 0 : strcasecmp(x, y) == 0);
}

/* Whether name is one dbphase gave an object of a version in (target, upto]. */
static bool
generated_in(const struct undo_scope *sc, int64_t upto, const char *name)
{
	long long v;
	int n = 0;

	if (name == NULL || sscanf(name, "dbp_v%lld_%n", &v, &n) != 1 || n == 0)
		return false;
	return v > sc->target && v <= upto;
}

/* Whether the downgrade removes e's object anyway (see struct undo_scope). */
static bool
scope_covers(const struct undo_scope *sc, const struct effect *e, int64_t upto)
{
	enum db_backend b = sc->backend;
	size_t i;

	if (e->kind == EFFECT_NONE || e->kind == EFFECT_UNKNOWN)
		return false;
	if (generated_in(sc, upto, e->table) || generated_in(sc, upto, e->name))
		return true;
	for (i = 0; i < sc->n_made; i++) {
		const struct effect *m = &sc->made[i];

		if (sc->made_in[i] > upto)
			continue;
		if (m->kind == EFFECT_TABLE &&
		    (same_name(b, m->name, e->table) ||
		     (e->kind == EFFECT_TABLE && same_name(b, m->name, e->name))))
			return true;
		if (!same_name(b, m->name, e->name) ||
		    (e->table && m->table && !same_name(b, m->table, e->table)))
			continue;
		switch (e->kind) {
		case EFFECT_COLUMN:
		case EFFECT_ALTER:
		case EFFECT_DROP_NOT_NULL:
			if (m->kind == EFFECT_COLUMN && e->table)
				return true;
			break;
		case EFFECT_INDEX:
			if (m->kind == EFFECT_INDEX || (m->kind == EFFECT_CONSTRAINT && m->unique))
				return true;
			break;
		case EFFECT_CONSTRAINT:
		case EFFECT_FOREIGN_KEY:
			if (m->kind == EFFECT_CONSTRAINT || m->kind == EFFECT_FOREIGN_KEY ||
			    (m->kind == EFFECT_INDEX && e->unique))
				return true;
			break;
		case EFFECT_TRIGGER:
		case EFFECT_FUNCTION:
		case EFFECT_VIEW:
			if (m->kind == e->kind)
				return true;
			break;
		default:
			break;
		}
	}
	return false;
}

/*
 * Why a contract statement cannot be taken back: it dropped, replaced or
 * changed something that was there before version target + 1.  Owned.
 */
static char *
contract_why(const struct undo_scope *sc, const struct effect *e, const char *sql)
{
	char *what = effect_describe(e), *excerpt = statement_excerpt(sql), *why;

	if (e->drop)
		why = xasprintf("'%s' dropped %s, which version %lld has; what contract dropped "
				"cannot be brought back, nor the data it held", excerpt, what,
				(long long)sc->target);
	else if (e->kind == EFFECT_ALTER)
		why = xasprintf("'%s' changed %s, which version %lld has, and dbphase knows no "
				"inverse of that change", excerpt, what, (long long)sc->target);
	else
		why = xasprintf("'%s' replaced %s, which version %lld may have had, and dbphase "
				"cannot bring the old one back", excerpt, what, (long long)sc->target);
	free(what);
	free(excerpt);
	return why;
}

/*
 * The inverse statements of a STEP_SQL step, last statement's first.  With
 * check set, the database is asked first and objects already gone are left
 * out: a step that was in flight may have created only some of them (or
 * none, and its table may not exist), and SQLite has no DROP COLUMN IF
 * EXISTS.  An expand or contract statement without an inverse stops the
 * list with *unknown pointing at it (and, in contract, *why saying what it
 * did; owned); in migrate such statements (data changes) are left alone,
 * and *unknown says so.  A contract step is read with sc (the downgrade's
 * scope; NULL when it does not take back contract steps): what it created
 * is dropped again, what it dropped or changed must be in sc.
 */
static int
undo_statements(struct state *st, const struct plan_step *s, const struct undo_scope *sc,
		bool check, char ***out, size_t *n_out, bool *concurrently, const char **unknown,
		char **why, struct dbphase_error *err)
{
	enum db_backend b = st->conn->drv->backend;
	bool contract = s->phase == PHASE_CONTRACT;
	size_t i, n = 0;
	int rc = 0;

	*out = xcalloc(s->n_sql * EFFECT_UNDO_MAX + s->n_undo_sql + 1, sizeof(**out));
	*n_out = 0;
	*concurrently = false;
	*unknown = NULL;
	*why = NULL;
	/* The catalog (or the author) said how: run that, as written. */
	if (s->has_undo) {
		for (i = 0; i < s->n_undo_sql; i++) {
			(*out)[(*n_out)++] = xstrdup(s->undo_sql[i]);
			if (strcasestr(s->undo_sql[i], "CONCURRENTLY"))
				*concurrently = true;
		}
		return 0;
	}
	for (i = s->n_sql; i-- > 0 && rc == 0;) {
		struct strbuf sb[EFFECT_UNDO_MAX] = { STRBUF_INIT, STRBUF_INIT };
		struct effect e;
		bool present = true, known = true, covered = false;
		size_t k, n_undo;

		if (contract)
			effect_parse_contract(s->sql[i], &e);
		else
			effect_parse(s->sql[i], &e);
		if (e.kind == EFFECT_NONE) {
			effect_release(&e);
			continue;
		}
		if (contract && sc)
			covered = scope_covers(sc, &e, s->version);
		if (contract && covered && (e.drop || e.kind == EFFECT_ALTER)) {
			effect_release(&e);	/* it goes with what the downgrade removes */
			continue;
		}
		if (contract && e.kind != EFFECT_UNKNOWN && sc &&
		    (e.drop || e.kind == EFFECT_ALTER || (e.replace && !covered))) {
			*unknown = s->sql[i];
			*why = contract_why(sc, &e, s->sql[i]);
			effect_release(&e);
			break;
		}
		if ((n_undo = effect_undo_sql(&e, b, sb)) == 0 && covered) {
			effect_release(&e);
			continue;
		}
		if (n_undo == 0) {
			*unknown = s->sql[i];
			effect_release(&e);
			if (s->phase != PHASE_MIGRATE)
				break;
			continue;
		}
		if (check)
			rc = effect_present(st->conn, &e, &present, &known, err);
		if (!known)
			present = true;
		if (e.kind == EFFECT_INDEX && b == DB_BACKEND_POSTGRESQL)
			*concurrently = true;
		for (k = 0; k < n_undo; k++) {
			if (rc == 0 && present)
				(*out)[n++] = strbuf_detach(&sb[k]);
			strbuf_release(&sb[k]);
		}
		effect_release(&e);
	}
	*n_out = n;
	return rc;
}

static void
free_statements(char **sql, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(sql[i]);
	free(sql);
}

/* Whether a contract rebuild only changed a column the downgrade removes anyway. */
static bool
rebuild_covered(const struct plan_step *s, const struct undo_scope *sc)
{
	struct effect e = { .kind = EFFECT_ALTER, .table = s->table, .name = s->column };

	return s->phase == PHASE_CONTRACT && sc && scope_covers(sc, &e, s->version);
}

/*
 * Whether step s can be taken back (sc: as for undo_statements); if not,
 * err says why (DBPHASE_EREFUSED).
 */
static int
undo_possible(struct state *st, const struct plan_step *s, const struct undo_scope *sc,
	      int64_t target, struct dbphase_error *err)
{
	char *id = plan_step_id(s), *what = NULL, *why = NULL;
	const char *unknown = NULL;
	char **sql;
	size_t n;
	bool conc;
	int rc = 0;

	switch (s->action) {
	case STEP_SQL:
		rc = undo_statements(st, s, sc, false, &sql, &n, &conc, &unknown, &why, err);
		free_statements(sql, n);
		if (rc == 0 && unknown && s->phase != PHASE_MIGRATE && why == NULL)
			what = statement_excerpt(unknown);
		break;
	case STEP_REBUILD:
		if ((s->set_default || s->drop_default || s->set_not_null < 0) &&
		    !s->has_undo_default && !rebuild_covered(s, sc))
			what = xstrdup("a table rebuild that changed a default");
		break;
	case STEP_BACKFILL:
		if (s->phase == PHASE_EXPAND)
			what = xstrdup("a backfill");
		break;
	}
	if (why)
		rc = err_setf(err, DBPHASE_EREFUSED,
			      "downgrade to %lld refused: step %s (%s at %s, from %s) cannot be "
			      "undone: %s; restore from backup", (long long)target, id, s->op_kind,
			      s->op_where, s->source, why);
	else if (what)
		rc = err_setf(err, DBPHASE_EREFUSED,
			      "downgrade to %lld refused: step %s (%s at %s, from %s) cannot be "
			      "undone: dbphase knows no inverse of '%s'; restore from backup, "
			      "or give the step 'undo:' SQL (the catalog, or an sql operation's "
			      "'undo' field)", (long long)target,
			      id, s->op_kind, s->op_where, s->source, what);
	free(why);
	free(what);
	free(id);
	return rc;
}

/* Take back one step and forget its record, together where DDL is transactional. */
static int
undo_step(struct state *st, const struct plan_step *s, const struct undo_scope *sc,
	  const struct machine_opts *o, struct dbphase_error *err)
{
	struct undo_ctx uc = { st, plan_step_id(s) };
	struct machine_event ev = { .kind = MACHINE_STEP_UNDONE, .phase = s->phase, .step = s };
	struct exec_result res;
	struct exec_job job;
	const char *unknown = NULL;
	char **sql = NULL, *msg = NULL, *why = NULL;
	size_t n = 0;
	bool conc = false;
	int rc = 0;

	memset(&job, 0, sizeof(job));
	job.id = uc.id;
	job.data = &uc;
	job.kind = EXEC_SQL;
	if (s->action == STEP_SQL) {
		rc = undo_statements(st, s, sc, true, &sql, &n, &conc, &unknown, &why, err);
		job.sql = sql;
		job.n_sql = n;
		job.atomic = !conc;
	} else if (s->action == STEP_REBUILD && rebuild_covered(s, sc)) {
		job.atomic = true;	/* its column goes with the downgrade */
	} else if (s->action == STEP_REBUILD) {
		/*
		 * SQLite's expand rebuilds relax a NOT NULL or change a default:
		 * put back what was there.
		 */
		job.kind = EXEC_REBUILD;
		job.atomic = true;
		job.table = s->table;
		job.column = s->column;
		job.set_not_null = s->set_not_null == 0 ? 1 : s->set_not_null == 1 ? 0 : -1;
		if (s->has_undo_default) {
			job.set_default = s->undo_default;
			job.drop_default = s->undo_default == NULL;
		}
	} else {
		job.atomic = true;	/* a backfill: its data stays, its record goes */
	}
	if (rc == 0)
		rc = exec_job_run(st->conn, &job, &o->exec, &undo_hooks, &res, err);
	if (rc < 0) {
		err_prefixf(err, "undoing %s (%s, from %s)", uc.id, s->op_where, s->source);
		goto out;
	}
	/* The author's own SQL in migrate: say that what it changed stays. */
	if (unknown && strcmp(s->op_kind, "sql") == 0) {
		struct machine_event warn = { .kind = MACHINE_WARNING, .phase = s->phase };
		char *excerpt = statement_excerpt(unknown);

		msg = xasprintf("%s (%s at %s): what '%s' changed stays; dbphase knows no "
				"inverse of it", uc.id, s->op_kind, s->op_where, excerpt);
		warn.message = msg;
		emit(o, &warn);
		free(excerpt);
	}
	if (s->action == STEP_BACKFILL)
		ev.message = "forgotten; the rows it wrote keep their values";
	else if (s->action == STEP_SQL && n == 0)
		ev.message = "nothing left to undo";
	ev.result = &res;
	emit(o, &ev);
out:
	free(why);
	free(msg);
	free_statements(sql, n);
	free(uc.id);
	return rc;
}

/* Parse "v003.expand.2": version and phase; false if it is not a step id. */
static bool
parse_step_id(const char *id, int64_t *version, enum phase *phase)
{
	char name[16];
	long long v;
	int ph;

	if (sscanf(id, "v%lld.%15[a-z].", &v, name) != 2)
		return false;
	if ((ph = phase_from_name(name)) < 0)
		return false;
	*version = v;
	*phase = (enum phase)ph;
	return true;
}

/* Whether id is among the sorted recorded ids. */
static bool
recorded(char **ids, size_t n, const char *id)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(ids[i], id) == 0)
			return true;
	return false;
}

/*
 * Whether the downgrade takes back plan step i: see the comment above.
 * applied is the row's version of the step's phase.
 */
static bool
must_undo(struct state *st, const struct plan *plan, size_t i, int64_t applied, char **ids,
	  size_t n_ids)
{
	const struct plan_step *s = &plan->steps[i];
	char *id = plan_step_id(s);
	bool yes = s->version <= applied || recorded(ids, n_ids, id);
	size_t k;

	free(id);
	if (yes || s->version != applied + 1 ||
	    (s->atomic && exec_transactional_ddl(st->conn)))
		return yes;
	/* The first unrecorded step of the version above: it may have been in flight. */
	for (k = 0; k < i; k++) {
		const struct plan_step *p = &plan->steps[k];

		if (p->version == s->version && p->phase == s->phase) {
			char *pid = plan_step_id(p);
			bool rec = recorded(ids, n_ids, pid);

			free(pid);
			if (!rec)
				return false;
		}
	}
	return true;
}

/* Move the row to v (and forget the checksums of versions above expand). */
static int
write_row(struct state *st, const struct state_versions *v, int64_t forget_from,
	  int64_t forget_to, struct dbphase_error *err)
{
	int64_t ver;
	int rc = st->conn->drv->begin(st->conn, err);

	if (rc == 0)
		rc = state_write(st, v, err);
	for (ver = forget_from; ver <= forget_to && rc == 0; ver++)
		rc = state_checksum_forget(st, ver, err);
	if (rc == 0)
		rc = st->conn->drv->commit(st->conn, err);
	else
		st->conn->drv->rollback(st->conn, &(struct dbphase_error)DBPHASE_ERROR_INIT);
	return rc;
}

/* Undo, newest first, the steps of phase above target that must_undo picks. */
static int
undo_phase(struct state *st, const struct plan *plan, enum phase phase, int64_t target,
	   int64_t applied, int64_t top, struct state_versions *v, char **ids, size_t n_ids,
	   const struct undo_scope *sc, const struct machine_opts *o, size_t *undone,
	   struct dbphase_error *err)
{
	int64_t ver;
	size_t i;
	int rc = 0;

	for (ver = top; ver > target && rc == 0; ver--) {
		if (phase == PHASE_EXPAND) {
			if (v->expand >= ver)
				v->expand = ver - 1;
			rc = write_row(st, v, ver, ver, err);
		}
		for (i = plan->n_steps; i-- > 0 && rc == 0;) {
			const struct plan_step *s = &plan->steps[i];

			if (s->version != ver || s->phase != phase ||
			    !must_undo(st, plan, i, applied, ids, n_ids))
				continue;
			rc = undo_step(st, s, sc, o, err);
			(*undone)++;
		}
		/* Whatever is left of the version's records and progress. */
		if (rc == 0)
			rc = state_steps_forget(st, ver, phase_name(phase), err);
	}
	return rc;
}

/*
 * Whether every step a downgrade to target takes back has an inverse
 * (contract steps too when top[PHASE_CONTRACT] > target); if not, err
 * names the first that has none.
 */
static int
check_undo(struct state *st, const struct plan *plan, int64_t target,
	   const struct state_versions *v, const int64_t top[PHASE__COUNT], char **ids,
	   size_t n_ids, const struct undo_scope *sc, struct dbphase_error *err)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < plan->n_steps && rc == 0; i++) {
		const struct plan_step *s = &plan->steps[i];
		int64_t applied = s->phase == PHASE_EXPAND ? v->expand :
				  s->phase == PHASE_MIGRATE ? v->migrate : v->contract;

		if (s->version <= target || s->version > top[s->phase] ||
		    !must_undo(st, plan, i, applied, ids, n_ids))
			continue;
		rc = undo_possible(st, s, sc, target, err);
	}
	return rc;
}

/* The tables and columns the downgrade drops with their data, for messages; owned. */
static char *
scope_lost(const struct undo_scope *sc)
{
	struct strbuf sb = STRBUF_INIT;
	struct effect table = { .kind = EFFECT_ALTER };
	size_t i;

	for (i = 0; i < sc->n_made; i++) {
		const struct effect *m = &sc->made[i];

		if (m->kind == EFFECT_TABLE) {
			strbuf_addf(&sb, "%stable '%s'", sb.len ? ", " : "", m->name);
			continue;
		}
		table.table = m->table;
		if (m->kind != EFFECT_COLUMN || generated_in(sc, INT64_MAX, m->name) ||
		    scope_covers(sc, &table, INT64_MAX))
			continue;
		strbuf_addf(&sb, "%scolumn '%s' of '%s'", sb.len ? ", " : "", m->name, m->table);
	}
	if (sb.len == 0)
		strbuf_addstr(&sb, "no table or column, only what the versions' steps added");
	return strbuf_detach(&sb);
}

/*
 * The refusal of a downgrade below the contracted version without
 * --allow-data-loss: what the flag would do, or why it cannot help.
 */
static int
refuse_contracted(struct state *st, const struct plan *plan, int64_t target,
		  const struct state_versions *v, const int64_t top[PHASE__COUNT], char **ids,
		  size_t n_ids, struct dbphase_error *err)
{
	struct dbphase_error why = DBPHASE_ERROR_INIT, scratch = DBPHASE_ERROR_INIT;
	struct undo_scope sc;
	int64_t c = target < v->contract ? v->contract : top[PHASE_CONTRACT], hi = top[0], low;
	const char *how = target < v->contract ? "already" : "partly", *reason;
	char *lost;
	int rc, i;

	for (i = 1; i < PHASE__COUNT; i++)
		hi = top[i] > hi ? top[i] : hi;
	scope_init(&sc, plan, st->conn->drv->backend, target);
	rc = check_undo(st, plan, target, v, top, ids, n_ids, &sc, &why);
	lost = scope_lost(&sc);
	scope_release(&sc);
	if (rc == 0) {
		rc = err_setf(err, DBPHASE_EREFUSED,
			      "downgrade to %lld refused: version %lld is %s contracted, so what only "
			      "older code needed is gone; --allow-data-loss would take back versions "
			      "%lld to %lld, whose every step has an inverse, dropping what they "
			      "created and the data in it (%s); or restore from backup",
			      (long long)target, (long long)c, how, (long long)target + 1,
			      (long long)hi, lost);
		goto out;
	}
	if (rc != DBPHASE_EREFUSED) {
		rc = err_setf(err, rc, "%s", why.message);
		goto out;
	}
	/* The step and its reason, without undo_possible's "downgrade to N refused: ". */
	if ((reason = strstr(why.message, " refused: ")) != NULL)
		reason += strlen(" refused: ");
	else
		reason = why.message;
	/* How far back the flag could go, if anywhere. */
	for (low = target + 1; low < hi; low++) {
		scope_init(&sc, plan, st->conn->drv->backend, low);
		rc = check_undo(st, plan, low, v, top, ids, n_ids, &sc, &scratch);
		scope_release(&sc);
		err_release(&scratch);
		if (rc == 0)
			break;
	}
	if (low < hi && low >= v->contract && top[PHASE_CONTRACT] <= low)
		rc = err_setf(err, DBPHASE_EREFUSED,
			      "downgrade to %lld refused: version %lld is %s contracted, so what only "
			      "older code needed is gone; restore from backup (%s; a downgrade to "
			      "%lld is possible)", (long long)target, (long long)c, how,
			      reason, (long long)low);
	else if (low < hi)
		rc = err_setf(err, DBPHASE_EREFUSED,
			      "downgrade to %lld refused: version %lld is %s contracted, so what only "
			      "older code needed is gone; restore from backup (even with "
			      "--allow-data-loss: %s; 'downgrade %lld --allow-data-loss' would take "
			      "back versions %lld to %lld)", (long long)target, (long long)c, how,
			      reason, (long long)low, (long long)low + 1, (long long)hi);
	else
		rc = err_setf(err, DBPHASE_EREFUSED,
			      "downgrade to %lld refused: version %lld is %s contracted, so what only "
			      "older code needed is gone; restore from backup (even with "
			      "--allow-data-loss: %s)", (long long)target, (long long)c, how,
			      reason);
out:
	free(lost);
	err_release(&why);
	return rc;
}

int
machine_downgrade(struct state *st, const struct repo *repo, const struct plan *plan,
		  int64_t version, const struct machine_opts *o, struct dbphase_error *err)
{
	struct transition t;
	struct state_versions *v = &t.v, before;
	struct machine_event ev = { .phase = PHASE_EXPAND, .to = version, .downgrade = true };
	struct undo_scope sc;
	int64_t top[PHASE__COUNT] = { 0, 0, 0 }, ver;
	char **ids = NULL, *sum = NULL, *detail = NULL, *warning = NULL, *lost = NULL;
	const char *result = NULL;
	size_t n_ids = 0, i, undone = 0;
	bool contracted;
	int rc;

	if (version < 0 || version > repo_latest(repo))
		return err_setf(err, DBPHASE_EUSAGE, "version %lld is not in the repository "
				"(0 to %lld)", (long long)version, (long long)repo_latest(repo));
	if ((rc = open_transition(&t, st, repo, o, true, err)) < 0)
		return rc;
	scope_init(&sc, plan, st->conn->drv->backend, version);
	if ((rc = state_steps_list(st, &ids, &n_ids, err)) < 0)
		goto out;
	before = t.before;
	ev.from = v->expand;
	/*
	 * The highest version each phase touched: the row, the step records,
	 * and for expand a version whose checksum was recorded when its first
	 * step started (it may have died in that step, before any record).
	 */
	top[PHASE_EXPAND] = v->expand;
	top[PHASE_MIGRATE] = v->migrate;
	top[PHASE_CONTRACT] = v->contract;
	for (i = 0; i < n_ids; i++) {
		enum phase ph;

		if (parse_step_id(ids[i], &ver, &ph) && ver > top[ph])
			top[ph] = ver;
	}
	if ((rc = state_checksum_get(st, v->expand + 1, &sum, err)) < 0)
		goto out;
	if (sum && top[PHASE_EXPAND] < v->expand + 1)
		top[PHASE_EXPAND] = v->expand + 1;
	free(sum);
	for (i = 0; i < PHASE__COUNT; i++)
		if (top[i] > repo_latest(repo))
			top[i] = repo_latest(repo);
	contracted = version < v->contract || top[PHASE_CONTRACT] > version;
	if (contracted && !o->allow_data_loss) {
		rc = refuse_contracted(st, plan, version, v, top, ids, n_ids, err);
		result = rc == DBPHASE_EREFUSED ? "refused" : "failed";
		goto out;
	}
	/* Every step to take back must have an inverse before anything runs. */
	if ((rc = check_undo(st, plan, version, v, top, ids, n_ids, &sc, err)) < 0) {
		result = rc == DBPHASE_EREFUSED ? "refused" : "failed";
		goto out;
	}
	if (top[PHASE_EXPAND] <= version && top[PHASE_MIGRATE] <= version &&
	    top[PHASE_CONTRACT] <= version) {
		ev.kind = MACHINE_ALREADY_DONE;
		emit(o, &ev);
		goto out;
	}
	if (contracted) {
		struct machine_event warn = { .kind = MACHINE_WARNING };

		lost = scope_lost(&sc);
		warning = xasprintf("--allow-data-loss: taking back versions %lld to %lld although "
				    "version %lld is contracted; what they created is dropped, and "
				    "the data in it is lost: %s", (long long)version + 1,
				    (long long)top[PHASE_EXPAND], (long long)top[PHASE_CONTRACT], lost);
		warn.message = warning;
		emit(o, &warn);
	}
	ev.kind = MACHINE_PHASE_START;
	emit(o, &ev);
	/*
	 * Contract first, then migrate, then expand: each phase's steps rest
	 * on what the phases before it did.
	 */
	if (v->contract > version) {
		v->contract = version;
		rc = write_row(st, v, 1, 0, err);
	}
	if (rc == 0 && contracted)
		rc = undo_phase(st, plan, PHASE_CONTRACT, version, before.contract,
				top[PHASE_CONTRACT], v, ids, n_ids, &sc, o, &undone, err);
	if (rc == 0 && v->migrate > version) {
		v->migrate = version;
		rc = write_row(st, v, 1, 0, err);
	}
	if (rc == 0)
		rc = undo_phase(st, plan, PHASE_MIGRATE, version, before.migrate,
				top[PHASE_MIGRATE], v, ids, n_ids, &sc, o, &undone, err);
	if (rc == 0)
		rc = undo_phase(st, plan, PHASE_EXPAND, version, before.expand,
				top[PHASE_EXPAND], v, ids, n_ids, &sc, o, &undone, err);
	result = rc < 0 ? "failed" : contracted ? "ok (data loss)" : "ok";
	if (rc == 0 && contracted)
		detail = xasprintf("--allow-data-loss: undid %zu step%s of the versions above %lld, "
				   "contract steps included; dropped with their data: %s", undone,
				   undone == 1 ? "" : "s", (long long)version, lost);
	else if (rc == 0)
		detail = xasprintf("undid %zu step%s of the versions above %lld", undone,
				   undone == 1 ? "" : "s", (long long)version);
out:
	rc = close_transition(&t, rc, result, rc < 0 ? err->message : detail, err);
	if (rc == 0 && result != NULL) {
		ev.kind = MACHINE_PHASE_DONE;
		ev.seconds = clock_now_s() - t.started;
		emit(o, &ev);
	}
	scope_release(&sc);
	free(lost);
	free(warning);
	free(detail);
	for (i = 0; i < n_ids; i++)
		free(ids[i]);
	free(ids);
	return rc;
}

int
machine_repair(struct state *st, const struct repo *repo, const struct machine_opts *o,
	       struct dbphase_error *err)
{
	struct transition t;
	struct strbuf done = STRBUF_INIT;
	int64_t *versions = NULL;
	char **sums = NULL;
	size_t n = 0, i;
	int rc;

	/* Not verified on opening: it repairs the very checksums that would refuse. */
	if ((rc = open_transition(&t, st, repo, o, false, err)) < 0)
		return rc;
	if ((rc = state_checksums_list(st, &versions, &sums, &n, err)) < 0)
		goto out;
	if (t.v.expand > repo_latest(repo)) {
		rc = machine_verify(st, repo, &t.v, err);
		goto out;
	}
	/* The new checksums commit with their history row. */
	rc = st->conn->drv->begin(st->conn, err);
	for (i = 0; i < repo->n_migrations && rc == 0; i++) {
		const struct migration *m = &repo->migrations[i];
		const char *sum = NULL;
		size_t k;

		for (k = 0; k < n; k++)
			if (versions[k] == m->version)
				sum = sums[k];
		/* Applied versions, and a partly applied one that has a checksum. */
		if ((m->version > t.v.expand && sum == NULL) || (sum && strcmp(sum, m->checksum) == 0))
			continue;
		if (done.len)
			strbuf_addstr(&done, "; ");
		if (sum)
			strbuf_addf(&done, "%s (version %lld): accepted the file's new checksum "
				    "%.12s... in place of %.12s...", m->path, (long long)m->version,
				    m->checksum, sum);
		else
			strbuf_addf(&done, "%s (version %lld): recorded the missing checksum %.12s...",
				    m->path, (long long)m->version, m->checksum);
		rc = state_checksum_put(st, m->version, m->checksum, err);
	}
out:
	rc = close_transition(&t, rc, done.len ? (rc < 0 ? "failed" : "repaired") : NULL,
			      rc < 0 ? err->message : done.buf, err);
	if (rc == 0 && done.len) {
		struct machine_event ev = { .kind = MACHINE_WARNING, .message = done.buf };

		emit(o, &ev);
	}
	strbuf_release(&done);
	for (i = 0; i < n; i++)
		free(sums[i]);
	free(sums);
	free(versions);
	return rc;
}

/* ---- forget --------------------------------------------------------------- */

/*
 * Whether a phase is in flight: the row's three versions differ, or steps
 * are recorded (or a checksum, for expand) above the row's version of their
 * phase.  *what says which (owned), NULL when none is.
 */
static int
phase_in_flight(struct state *st, const struct state_versions *v, char **what,
		struct dbphase_error *err)
{
	char **ids = NULL, *sum = NULL;
	size_t n = 0, i;
	int64_t ver;
	int rc;

	*what = NULL;
	if (v->expand != v->migrate || v->migrate != v->contract)
		*what = xasprintf("expand is at %lld, migrate at %lld and contract at %lld",
				  (long long)v->expand, (long long)v->migrate,
				  (long long)v->contract);
	if (*what == NULL && (rc = state_checksum_get(st, v->expand + 1, &sum, err)) < 0)
		return rc;
	if (sum)
		*what = xasprintf("version %lld is partly expanded", (long long)v->expand + 1);
	free(sum);
	if (*what == NULL && (rc = state_steps_list(st, &ids, &n, err)) < 0)
		return rc;
	for (i = 0; i < n; i++) {
		enum phase ph;

		if (*what == NULL && parse_step_id(ids[i], &ver, &ph) &&
		    ver > (ph == PHASE_EXPAND ? v->expand : ph == PHASE_MIGRATE ? v->migrate :
			   v->contract))
			*what = xasprintf("version %lld is partly %s (step %s is recorded)",
					  (long long)ver, ph == PHASE_EXPAND ? "expanded" :
					  ph == PHASE_MIGRATE ? "migrated" : "contracted", ids[i]);
		free(ids[i]);
	}
	free(ids);
	return 0;
}

int
machine_forget(struct state *st, const struct machine_opts *o, char **removed,
	       struct dbphase_error *err)
{
	struct state_versions v;
	char *what = NULL;
	bool exist;
	int rc;

	*removed = NULL;
	if ((rc = state_lock(st, o->lock_wait_s, err)) < 0)
		return rc;
	if ((rc = state_tables_exist(st, &exist, err)) < 0 || !exist)
		goto out;
	if ((rc = state_read(st, &v, err)) < 0 ||
	    (rc = phase_in_flight(st, &v, &what, err)) < 0)
		goto out;
	if (what) {
		rc = err_setf(err, DBPHASE_EREFUSED,
			      "forget refused: a phase of repository '%s' is in flight (%s); finish "
			      "it (db_sync) or take it back (downgrade) first, so that the schema "
			      "is one version's", st->repo, what);
		goto out;
	}
	rc = state_forget(st, removed, err);
out:
	free(what);
	state_unlock(st);
	return rc;
}
