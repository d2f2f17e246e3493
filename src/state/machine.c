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
	.job_done = hook_job_done,
	.progress = hook_progress,
};

static void
job_from_step(const struct plan_step *s, struct step_ctx *sc, struct exec_job *job)
{
	memset(job, 0, sizeof(*job));
	job->id = sc->id;
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

/* Run one DDL step unless it is recorded as done. */
static int
run_step(struct state *st, const struct plan_step *s, const struct machine_opts *o,
	 struct dbphase_error *err)
{
	struct exec_result res;
	struct exec_job job;
	struct step_ctx sc = { st, s, o, plan_step_id(s) };
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
			size_t n = 0;

			if (s->version != ver || s->phase != phase)
				continue;
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
