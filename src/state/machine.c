/*
 * state/machine.c - transitions of the phase state machine (see machine.h).
 */
#include "config.h"

#include "state/machine.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/strbuf.h"
#include "core/xmalloc.h"

void
machine_opts_init(struct machine_opts *o)
{
	memset(o, 0, sizeof(*o));
	exec_opts_init(&o->exec);
	o->lock_wait_s = 300;
	o->node_ttl_s = 300;
	o->command = "db_sync";
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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
	size_t i;
	int rc = 0;

	for (i = 0; i < repo->n_migrations && rc == 0; i++) {
		const struct migration *m = &repo->migrations[i];
		char *sum;

		if (m->version > v->expand)
			break;
		if ((rc = state_checksum_get(st, m->version, &sum, err)) < 0)
			break;
		if (sum && strcmp(sum, m->checksum) != 0)
			rc = err_setf(err, DBPHASE_ECHECKSUM,
				      "%s: version %lld was applied from a file with checksum %.12s..., "
				      "but the file now has %.12s...: an applied migration must not "
				      "change; restore the file, or run 'dbphase validate --repair' "
				      "to accept it on purpose",
				      m->path, (long long)m->version, sum, m->checksum);
		free(sum);
	}
	return rc;
}

/* Hooks from the executor back into the state tables. */
struct step_ctx {
	struct state *st;
	const struct plan_step *step;
	const struct machine_opts *o;
	char *id;
	uint64_t rows_total;
};

static int
hook_job_commit(void *arg, struct db_conn *conn, const struct exec_job *job,
		struct dbphase_error *err)
{
	struct step_ctx *sc = arg;

	return state_step_record(sc->st, sc->id, err);
}

static int
hook_batch_resume(void *arg, struct db_conn *conn, const struct exec_job *job,
		  struct exec_checkpoint *cp, struct dbphase_error *err)
{
	struct step_ctx *sc = arg;

	return state_progress_get(sc->st, sc->id, cp, err);
}

static int
hook_batch_commit(void *arg, struct db_conn *conn, const struct exec_job *job,
		  const struct exec_checkpoint *cp, struct dbphase_error *err)
{
	struct step_ctx *sc = arg;
	int rc = state_progress_put(sc->st, sc->id, cp, sc->rows_total, err);

	/* The last batch records the step with it. */
	if (rc == 0 && cp->done)
		rc = state_step_record(sc->st, sc->id, err);
	return rc;
}

static void
hook_progress(void *arg, const struct exec_job *job, uint64_t done, uint64_t total,
	      uint64_t batch_rows, double batch_ms)
{
	struct step_ctx *sc = arg;
	struct machine_event ev = { .kind = MACHINE_PROGRESS, .phase = sc->step->phase,
				    .step = sc->step, .rows_done = done, .rows_total = total,
				    .batch_ms = batch_ms };

	sc->rows_total = total;
	emit(sc->o, &ev);
}

static void
job_from_step(const struct plan_step *s, const char *id, struct exec_job *job)
{
	memset(job, 0, sizeof(*job));
	job->id = id;
	job->atomic = s->atomic;
	job->sql = s->sql;
	job->n_sql = s->n_sql;
	job->table = s->table;
	job->set_sql = s->set_sql;
	job->where_sql = s->where_sql;
	job->keys = s->keys;
	job->n_keys = s->n_keys;
	job->column = s->column;
	job->set_not_null = s->set_not_null;
	job->set_default = s->set_default;
	job->drop_default = s->drop_default;
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

/* Run one step unless it is recorded as done. */
static int
run_step(struct state *st, const struct plan_step *s, const struct machine_opts *o,
	 bool *interrupted, struct dbphase_error *err)
{
	struct exec_hooks hooks = { 0 };
	struct exec_result res;
	struct exec_job job;
	struct step_ctx sc = { st, s, o, plan_step_id(s), 0 };
	struct machine_event ev = { .phase = s->phase, .step = s };
	bool done;
	int rc;

	if ((rc = state_step_done(st, sc.id, &done, err)) < 0)
		goto out;
	if (done) {
		ev.kind = MACHINE_STEP_SKIPPED;
		emit(o, &ev);
		goto out;
	}
	ev.kind = MACHINE_STEP_START;
	emit(o, &ev);
	job_from_step(s, sc.id, &job);
	hooks.arg = &sc;
	hooks.job_commit = hook_job_commit;
	hooks.batch_resume = hook_batch_resume;
	hooks.batch_commit = hook_batch_commit;
	hooks.progress = hook_progress;
	rc = exec_job_run(st->conn, &job, &o->exec, &hooks, &res, err);
	if (rc < 0) {
		err_prefixf(err, "%s (%s, from %s)", sc.id, s->op_where, s->source);
		goto out;
	}
	if (res.interrupted) {
		*interrupted = true;
		goto out;
	}
	ev.kind = MACHINE_STEP_DONE;
	ev.result = &res;
	emit(o, &ev);
out:
	free(sc.id);
	return rc;
}

static int
record_history(struct state *st, const struct machine_opts *o, const struct state_versions *from,
	       const struct state_versions *to, const char *result, double seconds,
	       const char *detail)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	char *f = state_versions_text(from), *t = state_versions_text(to);
	int rc = state_history_add(st, o->command, f, t, result, seconds, detail, &err);

	free(f);
	free(t);
	err_release(&err);
	return rc;
}

/* Contract gate: live nodes that still need a version below target. */
static int
check_nodes(struct state *st, int64_t target, const struct machine_opts *o,
	    struct dbphase_error *err)
{
	struct state_node *nodes;
	struct strbuf names = STRBUF_INIT;
	size_t n, i, blocking = 0;
	int rc = state_node_list(st, &nodes, &n, err);

	if (rc < 0)
		return rc;
	for (i = 0; i < n; i++) {
		if (nodes[i].age_s > o->node_ttl_s || nodes[i].schema_version >= target)
			continue;
		strbuf_addf(&names, "%s'%s' (needs version %lld, heartbeat %llds ago)",
			    blocking++ ? ", " : "", nodes[i].name,
			    (long long)nodes[i].schema_version, (long long)nodes[i].age_s);
	}
	if (blocking > 0 && !o->force) {
		rc = err_setf(err, DBPHASE_EREFUSED,
			      "contract to %lld refused: %zu live node%s still run%s code that needs "
			      "an older schema: %s; upgrade or retire %s first (dbphase node retire), "
			      "or wait %d s after their last heartbeat",
			      (long long)target, blocking, blocking == 1 ? "" : "s",
			      blocking == 1 ? "s" : "", names.buf, blocking == 1 ? "it" : "them",
			      o->node_ttl_s);
	} else if (blocking > 0) {
		struct machine_event ev = { .kind = MACHINE_WARNING };
		char *msg = xasprintf("--force: contracting although live nodes need an older "
				      "schema: %s", names.buf);

		ev.message = msg;
		emit(o, &ev);
		free(msg);
	}
	strbuf_release(&names);
	state_nodes_free(nodes, n);
	return rc;
}

static int
gate(struct state *st, enum phase phase, int64_t target, const struct state_versions *v,
     const struct machine_opts *o, struct dbphase_error *err)
{
	switch (phase) {
	case PHASE_EXPAND:
		return 0;
	case PHASE_MIGRATE:
		if (v->expand < target)
			return err_setf(err, DBPHASE_EREFUSED,
					"migrate to %lld refused: expand is at %lld; run db_sync "
					"--expand %lld first", (long long)target,
					(long long)v->expand, (long long)target);
		return 0;
	case PHASE_CONTRACT:
		if (v->migrate < target)
			return err_setf(err, DBPHASE_EREFUSED,
					"contract to %lld refused: migrate is at %lld; run db_sync "
					"--migrate %lld first", (long long)target,
					(long long)v->migrate, (long long)target);
		return check_nodes(st, target, o, err);
	}
	return 0;
}

static int64_t *
phase_field(struct state_versions *v, enum phase phase)
{
	return phase == PHASE_EXPAND ? &v->expand :
	       phase == PHASE_MIGRATE ? &v->migrate : &v->contract;
}

static int
run_versions(struct state *st, const struct repo *repo, const struct plan *plan,
	     enum phase phase, int64_t target, struct state_versions *v,
	     const struct machine_opts *o, bool *interrupted, struct dbphase_error *err)
{
	int64_t ver;
	size_t i;
	int rc = 0;

	for (ver = *phase_field(v, phase) + 1; ver <= target && rc == 0; ver++) {
		struct machine_event ev = { .kind = MACHINE_VERSION_DONE, .phase = phase, .to = ver };

		for (i = 0; i < plan->n_steps && rc == 0 && !*interrupted; i++) {
			const struct plan_step *s = &plan->steps[i];

			if (s->version == ver && s->phase == phase)
				rc = run_step(st, s, o, interrupted, err);
		}
		if (rc < 0 || *interrupted)
			break;
		*phase_field(v, phase) = ver;
		if ((rc = st->conn->drv->begin(st->conn, err)) < 0)
			break;
		rc = state_write(st, v, err);
		if (rc == 0 && phase == PHASE_EXPAND)
			rc = state_checksum_put(st, ver, repo_migration(repo, ver)->checksum, err);
		if (rc == 0)
			rc = st->conn->drv->commit(st->conn, err);
		else
			st->conn->drv->rollback(st->conn, &(struct dbphase_error)DBPHASE_ERROR_INIT);
		if (rc == 0)
			emit(o, &ev);
	}
	return rc;
}

int
machine_phase(struct state *st, const struct repo *repo, const struct plan *plan,
	      enum phase phase, int64_t target, const struct machine_opts *o,
	      struct dbphase_error *err)
{
	struct state_versions v, before;
	struct machine_event ev = { .phase = phase, .to = target };
	double started = now_s();
	bool interrupted = false;
	int rc;

	if (target < 1 || target > repo_latest(repo))
		return err_setf(err, DBPHASE_EUSAGE, "version %lld is not in the repository "
				"(1 to %lld)", (long long)target, (long long)repo_latest(repo));
	if ((rc = state_lock(st, o->lock_wait_s, err)) < 0)
		return rc;
	if ((rc = state_ensure_tables(st, err)) < 0 || (rc = state_read(st, &v, err)) < 0 ||
	    (rc = machine_verify(st, repo, &v, err)) < 0)
		goto out;
	before = v;
	ev.from = *phase_field(&v, phase);
	if (ev.from >= target) {
		ev.kind = MACHINE_ALREADY_DONE;
		emit(o, &ev);
		goto out;
	}
	if ((rc = gate(st, phase, target, &v, o, err)) < 0) {
		record_history(st, o, &before, &before, "refused", 0, err->message);
		goto out;
	}
	ev.kind = MACHINE_PHASE_START;
	emit(o, &ev);
	rc = run_versions(st, repo, plan, phase, target, &v, o, &interrupted, err);
	ev.seconds = now_s() - started;
	if (rc < 0) {
		record_history(st, o, &before, &v, "failed", ev.seconds, err->message);
		goto out;
	}
	if (interrupted) {
		record_history(st, o, &before, &v, "interrupted", ev.seconds,
			       "stopped by a signal after the batch in flight");
		rc = err_setf(err, DBPHASE_EINTERRUPTED,
			      "stopped after the batch in flight; %s is at %lld of %lld; run the "
			      "same command again to resume", phase_name(phase),
			      (long long)*phase_field(&v, phase), (long long)target);
		goto out;
	}
	record_history(st, o, &before, &v, o->force ? "ok (forced)" : "ok", ev.seconds, NULL);
	ev.kind = MACHINE_PHASE_DONE;
	emit(o, &ev);
out:
	state_unlock(st);
	return rc;
}

int
machine_stamp(struct state *st, const struct repo *repo, int64_t version,
	      const struct machine_opts *o, struct dbphase_error *err)
{
	struct state_versions v, before;
	int64_t ver;
	int rc;

	if (version < 0 || version > repo_latest(repo))
		return err_setf(err, DBPHASE_EUSAGE, "version %lld is not in the repository "
				"(0 to %lld)", (long long)version, (long long)repo_latest(repo));
	if ((rc = state_lock(st, o->lock_wait_s, err)) < 0)
		return rc;
	if ((rc = state_ensure_tables(st, err)) < 0 || (rc = state_read(st, &v, err)) < 0)
		goto out;
	before = v;
	v.expand = v.migrate = v.contract = version;
	if ((rc = st->conn->drv->begin(st->conn, err)) < 0)
		goto out;
	rc = state_write(st, &v, err);
	for (ver = 1; ver <= version && rc == 0; ver++)
		rc = state_checksum_put(st, ver, repo_migration(repo, ver)->checksum, err);
	/* Steps of versions above the stamp must run again if they come. */
	for (ver = version + 1; ver <= repo_latest(repo) && rc == 0; ver++) {
		rc = state_steps_forget(st, ver, "expand", err);
		if (rc == 0)
			rc = state_steps_forget(st, ver, "migrate", err);
		if (rc == 0)
			rc = state_steps_forget(st, ver, "contract", err);
	}
	if (rc == 0)
		rc = st->conn->drv->commit(st->conn, err);
	else
		st->conn->drv->rollback(st->conn, &(struct dbphase_error)DBPHASE_ERROR_INIT);
	if (rc == 0)
		record_history(st, o, &before, &v, "ok", 0, "stamped: nothing was run");
out:
	state_unlock(st);
	return rc;
}

int
machine_downgrade(struct state *st, const struct repo *repo, int64_t version,
		  const struct machine_opts *o, struct dbphase_error *err)
{
	(void)st;
	(void)repo;
	(void)version;
	(void)o;
	return err_setf(err, DBPHASE_EUNSUPPORTED, "downgrade is not implemented yet");
}

int
machine_repair(struct state *st, const struct repo *repo, const struct machine_opts *o,
	       struct dbphase_error *err)
{
	struct state_versions v;
	size_t i;
	int rc;

	if ((rc = state_lock(st, o->lock_wait_s, err)) < 0)
		return rc;
	if ((rc = state_ensure_tables(st, err)) < 0 || (rc = state_read(st, &v, err)) < 0)
		goto out;
	for (i = 0; i < repo->n_migrations && rc == 0; i++) {
		const struct migration *m = &repo->migrations[i];
		char *sum;

		if (m->version > v.expand)
			break;
		if ((rc = state_checksum_get(st, m->version, &sum, err)) < 0)
			break;
		if (sum == NULL || strcmp(sum, m->checksum) != 0) {
			char *detail = xasprintf("accepted new checksum of %s (version %lld)",
						 m->path, (long long)m->version);

			rc = state_checksum_put(st, m->version, m->checksum, err);
			if (rc == 0)
				record_history(st, o, &v, &v, "repaired", 0, detail);
			free(detail);
		}
		free(sum);
	}
out:
	state_unlock(st);
	return rc;
}
