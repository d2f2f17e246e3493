/*
 * exec/exec.c - statements under lock timeouts, keyset batches with
 * checkpoints, and SQLite table rebuilds.
 *
 * Batches walk the table's key in order.  Each batch first finds its upper
 * key (the batch_size-th key after the last one done), then, in one
 * transaction, updates the rows in (last, upper] that match the condition
 * and saves upper as the new checkpoint through the caller's hook.  A run
 * killed at any moment resumes after the last committed upper key: no row
 * is skipped and none is updated twice, whatever the expression.
 */
#include "config.h"

#include "exec/exec.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/strbuf.h"
#include "core/xmalloc.h"

void
exec_opts_init(struct exec_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->lock_timeout_ms = 2000;
	o->max_retries = 8;
	o->batch_size = 1000;
	o->max_batch_size = 100000;
	o->batch_time_ms = 100;
}

bool
exec_transactional_ddl(const struct db_conn *conn)
{
	return conn->drv->backend != DB_BACKEND_MYSQL;
}

void
exec_checkpoint_release(struct exec_checkpoint *cp)
{
	free(cp->last_key);
	memset(cp, 0, sizeof(*cp));
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void
sleep_ms(double ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)((ms - (double)ts.tv_sec * 1000) * 1e6);
	nanosleep(&ts, NULL);
}

/* A failure worth trying again: a lock wait that timed out, or transient. */
static bool
is_retryable(const struct dbphase_error *err)
{
	return err->code == DBPHASE_ELOCK_TIMEOUT || err->retryable;
}

/* Wait before attempt n (1-based): 100 ms doubling, at most 5 s. */
static void
backoff(int attempt)
{
	double ms = 100;

	while (--attempt > 0 && ms < 5000)
		ms *= 2;
	sleep_ms(ms > 5000 ? 5000 : ms);
}

static bool
stopped(const struct exec_opts *o)
{
	return o->stop && *o->stop;
}

static void
rollback_quietly(struct db_conn *conn)
{
	struct dbphase_error ignored = DBPHASE_ERROR_INIT;

	if (conn->in_transaction)
		conn->drv->rollback(conn, &ignored);
	err_release(&ignored);
}

/* One attempt at an SQL job in a transaction; statements in order. */
static int
sql_job_atomic(struct db_conn *conn, const struct exec_job *job,
	       const struct exec_hooks *h, struct dbphase_error *err)
{
	size_t i;
	int rc;

	if ((rc = conn->drv->begin(conn, err)) < 0)
		return rc;
	for (i = 0; i < job->n_sql; i++)
		if ((rc = db_exec(conn, job->sql[i], err)) < 0)
			goto fail;
	if (h && h->job_commit && (rc = h->job_commit(h->arg, conn, job, err)) < 0)
		goto fail;
	if ((rc = conn->drv->commit(conn, err)) < 0)
		goto fail;
	return 0;
fail:
	rollback_quietly(conn);
	return rc;
}

/* Record a job that ran outside a transaction, in a small one of its own. */
static int
record_job(struct db_conn *conn, const struct exec_job *job,
	   const struct exec_hooks *h, struct dbphase_error *err)
{
	int rc;

	if (h == NULL || h->job_commit == NULL)
		return 0;
	if ((rc = conn->drv->begin(conn, err)) < 0)
		return rc;
	if ((rc = h->job_commit(h->arg, conn, job, err)) < 0 ||
	    (rc = conn->drv->commit(conn, err)) < 0)
		rollback_quietly(conn);
	return rc;
}

static int
run_sql_job(struct db_conn *conn, const struct exec_job *job, const struct exec_opts *o,
	    const struct exec_hooks *h, struct exec_result *res, struct dbphase_error *err)
{
	size_t i;
	int attempt, rc = 0;

	if (job->atomic && exec_transactional_ddl(conn)) {
		for (attempt = 1;; attempt++) {
			rc = sql_job_atomic(conn, job, h, err);
			if (rc == 0 || !is_retryable(err) || attempt > o->max_retries ||
			    stopped(o))
				return rc;
			res->retries++;
			backoff(attempt);
		}
	}
	/*
	 * Statement by statement, each retried on its own: MariaDB commits
	 * every DDL statement implicitly, and CREATE INDEX CONCURRENTLY may
	 * not run inside a transaction at all.
	 */
	for (i = 0; i < job->n_sql && rc == 0; i++) {
		for (attempt = 1;; attempt++) {
			rc = db_exec(conn, job->sql[i], err);
			if (rc == 0 || !is_retryable(err) || attempt > o->max_retries ||
			    stopped(o))
				break;
			res->retries++;
			backoff(attempt);
		}
	}
	if (rc == 0)
		rc = record_job(conn, job, h, err);
	return rc;
}

static int
run_rebuild_job(struct db_conn *conn, const struct exec_job *job, const struct exec_opts *o,
		const struct exec_hooks *h, struct exec_result *res, struct dbphase_error *err)
{
	int attempt, rc;

	if (conn->drv->backend != DB_BACKEND_SQLITE)
		return err_setf(err, DBPHASE_EUNSUPPORTED, "%s: table rebuilds are for SQLite only",
				job->id);
	for (attempt = 1;; attempt++) {
		rc = exec_sqlite_rebuild(conn, job, h, err);
		if (rc == 0 || !is_retryable(err) || attempt > o->max_retries || stopped(o))
			return rc;
		res->retries++;
		backoff(attempt);
	}
}

/* ---- batched backfills --------------------------------------------------- */

struct batch_sql {
	char *next_first;	/* upper key of the first batch */
	char *next;		/* upper key of a later batch */
	char *update_first_last; /* the only batch: no bounds */
	char *update_first;	/* (, hi] */
	char *update_last;	/* (lo, ) */
	char *update;		/* (lo, hi] */
};

static void
batch_sql_release(struct batch_sql *b)
{
	free(b->next_first);
	free(b->next);
	free(b->update_first_last);
	free(b->update_first);
	free(b->update_last);
	free(b->update);
}

/* "k" or "(a, b)", and "$n" or "($n, $n+1)" from parameter number first. */
static void
key_expr(enum db_backend b, const struct exec_job *job, struct strbuf *out)
{
	size_t i;

	if (job->n_keys > 1)
		strbuf_addch(out, '(');
	for (i = 0; i < job->n_keys; i++) {
		if (i)
			strbuf_addstr(out, ", ");
		db_quote_ident(b, out, job->keys[i]);
	}
	if (job->n_keys > 1)
		strbuf_addch(out, ')');
}

static void
key_params(const struct exec_job *job, int first, struct strbuf *out)
{
	size_t i;

	if (job->n_keys > 1)
		strbuf_addch(out, '(');
	for (i = 0; i < job->n_keys; i++)
		strbuf_addf(out, "%s$%d", i ? ", " : "", first + (int)i);
	if (job->n_keys > 1)
		strbuf_addch(out, ')');
}

static char *
update_sql(enum db_backend b, const struct exec_job *job, bool lo, bool hi)
{
	struct strbuf sb = STRBUF_INIT, k = STRBUF_INIT;
	int n = 1;

	key_expr(b, job, &k);
	strbuf_addstr(&sb, "UPDATE ");
	db_quote_ident(b, &sb, job->table);
	strbuf_addf(&sb, " SET %s WHERE (%s)", job->set_sql,
		    job->where_sql ? job->where_sql : "1 = 1");
	if (lo) {
		strbuf_addf(&sb, " AND %s > ", k.buf);
		key_params(job, n, &sb);
		n += (int)job->n_keys;
	}
	if (hi) {
		strbuf_addf(&sb, " AND %s <= ", k.buf);
		key_params(job, n, &sb);
	}
	strbuf_release(&k);
	return strbuf_detach(&sb);
}

static char *
next_sql(enum db_backend b, const struct exec_job *job, bool lo)
{
	struct strbuf sb = STRBUF_INIT, cols = STRBUF_INIT, k = STRBUF_INIT;
	size_t i;
	int n = 1;

	for (i = 0; i < job->n_keys; i++) {
		if (i)
			strbuf_addstr(&cols, ", ");
		db_quote_ident(b, &cols, job->keys[i]);
	}
	key_expr(b, job, &k);
	strbuf_addf(&sb, "SELECT %s FROM ", cols.buf);
	db_quote_ident(b, &sb, job->table);
	if (lo) {
		strbuf_addf(&sb, " WHERE %s > ", k.buf);
		key_params(job, n, &sb);
		n += (int)job->n_keys;
	}
	strbuf_addf(&sb, " ORDER BY %s LIMIT 1 OFFSET $%d", cols.buf, n);
	strbuf_release(&cols);
	strbuf_release(&k);
	return strbuf_detach(&sb);
}

static void
batch_sql_build(enum db_backend b, const struct exec_job *job, struct batch_sql *bs)
{
	bs->next_first = next_sql(b, job, false);
	bs->next = next_sql(b, job, true);
	bs->update_first_last = update_sql(b, job, false, false);
	bs->update_first = update_sql(b, job, false, true);
	bs->update_last = update_sql(b, job, true, false);
	bs->update = update_sql(b, job, true, true);
}

/* Key values of a JSON array into params[at..]; false if malformed. */
static bool
key_from_json(const char *text, size_t n_keys, char **values)
{
	json_error_t jerr;
	json_t *arr = json_loads(text, 0, &jerr);
	size_t i;
	bool ok = arr && json_is_array(arr) && json_array_size(arr) == n_keys;

	for (i = 0; ok && i < n_keys; i++) {
		json_t *v = json_array_get(arr, i);

		if (!json_is_string(v))
			ok = false;
		else
			values[i] = xstrdup(json_string_value(v));
	}
	json_decref(arr);
	return ok;
}

static char *
key_to_json(const struct db_result *res, size_t n_keys)
{
	json_t *arr = json_array();
	char *text, *copy;
	size_t i;

	for (i = 0; i < n_keys; i++)
		json_array_append_new(arr, json_string(db_result_value(res, 0, i)));
	text = json_dumps(arr, JSON_COMPACT);
	copy = xstrdup(text);
	free(text);
	json_decref(arr);
	return copy;
}

/*
 * One batch: find its upper key, update (lo, hi], save the checkpoint.
 * *batch_rows gets the rows updated.  On failure nothing was committed.
 */
static int
batch_once(struct db_conn *conn, const struct exec_job *job, const struct batch_sql *bs,
	   int size, struct exec_checkpoint *cp, const struct exec_hooks *h,
	   uint64_t *batch_rows, struct dbphase_error *err)
{
	struct db_param params[64];
	struct db_result *hi = NULL, *upd = NULL;
	char **lo_vals = NULL;
	char *new_last = NULL;
	size_t np = 0, i, nk = job->n_keys;
	const char *sql;
	int rc;

	if (nk > 32)
		return err_setf(err, DBPHASE_EUNSUPPORTED, "%s: more than 32 key columns", job->id);
	lo_vals = xcalloc(nk, sizeof(char *));
	if (cp->last_key && !key_from_json(cp->last_key, nk, lo_vals)) {
		rc = err_setf(err, DBPHASE_EERROR, "%s: checkpoint '%s' is not a key of %zu columns",
			      job->id, cp->last_key, nk);
		goto out;
	}
	if (cp->last_key)
		for (i = 0; i < nk; i++)
			params[np++] = DB_TEXT(lo_vals[i]);
	params[np++] = DB_INT(size - 1);
	rc = db_query(conn, cp->last_key ? bs->next : bs->next_first, params, np, &hi, err);
	if (rc < 0)
		goto out;
	np = cp->last_key ? nk : 0;
	if (hi->n_rows > 0) {
		for (i = 0; i < nk; i++)
			params[np++] = DB_TEXT(db_result_value(hi, 0, i));
		sql = cp->last_key ? bs->update : bs->update_first;
		new_last = key_to_json(hi, nk);
	} else {
		sql = cp->last_key ? bs->update_last : bs->update_first_last;
	}
	if ((rc = conn->drv->begin(conn, err)) < 0)
		goto out;
	if ((rc = db_query(conn, sql, params, np, &upd, err)) < 0)
		goto fail;
	{
		struct exec_checkpoint next = *cp;

		next.rows_done = cp->rows_done + upd->affected;
		next.last_key = new_last ? new_last : cp->last_key;
		next.done = new_last == NULL;
		if (h && h->batch_commit && (rc = h->batch_commit(h->arg, conn, job, &next, err)) < 0)
			goto fail;
	}
	if ((rc = conn->drv->commit(conn, err)) < 0)
		goto fail;
	*batch_rows = upd->affected;
	cp->rows_done += upd->affected;
	if (new_last) {
		free(cp->last_key);
		cp->last_key = new_last;
		new_last = NULL;
	} else {
		cp->done = true;
	}
	goto out;
fail:
	rollback_quietly(conn);
out:
	for (i = 0; i < nk; i++)
		free(lo_vals[i]);
	free(lo_vals);
	free(new_last);
	db_result_free(hi);
	db_result_free(upd);
	return rc;
}

static int
run_backfill_job(struct db_conn *conn, const struct exec_job *job, const struct exec_opts *o,
		 const struct exec_hooks *h, struct exec_result *res, struct dbphase_error *err)
{
	struct exec_checkpoint cp = { 0 };
	struct batch_sql bs = { 0 };
	uint64_t total = 0;
	double size = o->batch_size > 0 ? o->batch_size : 1000;
	double max = o->max_batch_size > 0 ? o->max_batch_size : 100000;
	double target = o->batch_time_ms > 0 ? o->batch_time_ms : 100;
	double started = now_ms();
	int rc = 0, attempt = 0;

	if (job->n_keys == 0)
		return err_setf(err, DBPHASE_EUNSUPPORTED,
				"%s: table '%s' has no primary key to walk", job->id, job->table);
	if (h && h->batch_resume && (rc = h->batch_resume(h->arg, conn, job, &cp, err)) < 0)
		return rc;
	res->rows = cp.rows_done;
	if (cp.done)
		goto out;
	db_estimate_rows(conn, job->table, &total, err);
	err_release(err);
	batch_sql_build(conn->drv->backend, job, &bs);
	while (!cp.done) {
		uint64_t rows = 0;
		double t0, ms;

		if (stopped(o)) {
			res->interrupted = true;
			break;
		}
		t0 = now_ms();
		rc = batch_once(conn, job, &bs, (int)size, &cp, h, &rows, err);
		ms = now_ms() - t0;
		if (rc < 0) {
			if (!is_retryable(err) || ++attempt > o->max_retries)
				break;
			/* A lock wait or a lost connection: smaller, later, again. */
			res->retries++;
			size = size / 2 < 1 ? 1 : size / 2;
			backoff(attempt);
			err_release(err);
			rc = 0;
			continue;
		}
		attempt = 0;
		res->batches++;
		res->rows = cp.rows_done;
		if (h && h->progress)
			h->progress(h->arg, job, cp.rows_done, total, rows, ms);
		/* Aim at the batch time: grow at most 2x, shrink as needed. */
		if (ms > 0) {
			double want = size * target / ms;

			size = want > size * 2 ? size * 2 : want;
			if (size < 1)
				size = 1;
			if (size > max)
				size = max;
		}
		if (o->max_rate > 0 && rows > 0) {
			double min_ms = (double)rows * 1000.0 / o->max_rate;

			if (min_ms > ms)
				sleep_ms(min_ms - ms);
		}
	}
out:
	res->seconds = (now_ms() - started) / 1000.0;
	batch_sql_release(&bs);
	exec_checkpoint_release(&cp);
	return rc;
}

int
exec_job_run(struct db_conn *conn, const struct exec_job *job, const struct exec_opts *o,
	     const struct exec_hooks *h, struct exec_result *res, struct dbphase_error *err)
{
	double started = now_ms();
	int rc;

	memset(res, 0, sizeof(*res));
	if (o->lock_timeout_ms >= 0 &&
	    (rc = conn->drv->set_lock_timeout(conn, o->lock_timeout_ms, err)) < 0)
		return rc;
	switch (job->kind) {
	case EXEC_SQL:
		rc = run_sql_job(conn, job, o, h, res, err);
		break;
	case EXEC_REBUILD:
		rc = run_rebuild_job(conn, job, o, h, res, err);
		break;
	case EXEC_BACKFILL:
		rc = run_backfill_job(conn, job, o, h, res, err);
		break;
	default:
		rc = err_setf(err, DBPHASE_EERROR, "%s: unknown job kind", job->id);
	}
	if (job->kind != EXEC_BACKFILL)
		res->seconds = (now_ms() - started) / 1000.0;
	return rc;
}
