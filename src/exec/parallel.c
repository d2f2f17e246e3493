/*
 * exec/parallel.c - the migrate phase's engine: batched backfills on one
 * libuv loop over several worker connections.
 *
 * Design.  Each backfill job is split into chunks, disjoint ranges of its
 * table's key (exec.h).  A task is one chunk; a worker connection runs one
 * task's batches one after another, and `jobs` workers run at once:
 *
 *   next batch -> [FIND_HI] -> BEGIN -> FENCE -> UPDATE -> CHECKPOINT -> COMMIT
 *        ^        (keyset walks)                                            |
 *        +------------------------- position advanced, progress <---------+
 *
 * A chunk of an integer key walks value ranges (last, last + width]; the
 * width adapts so a batch takes about batch_time_ms.  Any other key walks
 * in key order: FIND_HI looks up the batch_size-th next key first.  The
 * last chunk is open-ended: when it reaches the highest key it knew, it
 * asks for the highest key again, so rows added meanwhile are not missed.
 *
 * Every statement is sent through the driver's asynchronous path and the
 * worker's socket is watched with a uv_poll_t (a uv_timer_t where MariaDB
 * asks for a timeout).  SQLite has no socket: its statements run on the
 * libuv thread pool, one at a time per connection.  A failed statement in
 * a batch rolls the batch back; a lock timeout or a transient error is
 * retried with growing waits (on a new connection if the old one broke),
 * anything else stops every worker after its batch in flight.  So does the
 * caller's stop flag (SIGINT, SIGTERM): checkpoints make the stop resumable.
 *
 * FENCE is the caller's lock fence (exec.h, state.c): it keeps every batch
 * of a run whose cluster lock was lost from committing once another run
 * holds the lock, and makes the first worker that starts a batch after the
 * loss stop the run.  CHECKPOINT must update exactly the chunk's row.
 *
 * Handles are closed before they are freed, and a worker is freed only in
 * the close callback of its last handle.
 */
#include "config.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "core/clock.h"
#include "core/dialect.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "exec/exec.h"

#define MAX_KEYS 16
#define BATCH_AIM 0.8		/* of batch_time_ms: headroom for variance */
#define BATCH_GROWTH 1.5	/* largest growth from one batch to the next */
#define MAX_PARAMS (2 * MAX_KEYS + 8)

struct runner;

/* The state of one job across its chunks. */
struct job_run {
	const struct exec_job *job;
	struct exec_result *res;
	struct exec_chunk *chunks;
	size_t n_chunks;
	size_t chunks_done;
	size_t chunks_running;
	int after;			/* job that must finish first (same table), or -1 */
	uint64_t rows_total;		/* estimate, for progress */
	int64_t max_key;		/* integer walks: the highest key known */
	bool failed;
	/* SQL, built once. */
	char *sql_next_first;		/* keyset: the first batch's upper key */
	char *sql_next;			/* keyset: a later batch's upper key */
	char *sql_update_open;		/* (lo, end of table) */
	char *sql_update_first_open;	/* the whole table */
	char *sql_update_first;		/* (, hi] */
	char *sql_update;		/* (lo, hi] */
	char *sql_max;			/* integer: highest key */
	char *sql_checkpoint;
	const char *extra[8];
	size_t n_extra;
	char *sql_fence;		/* NULL: no fence */
	const char *fence_extra[8];
	size_t n_fence_extra;
};

enum worker_state {
	W_IDLE,
	W_FIND_HI,
	W_MAX_KEY,
	W_BEGIN,
	W_FENCE,
	W_UPDATE,
	W_CHECKPOINT,
	W_COMMIT,
	W_ROLLBACK,
	W_WAIT,			/* backoff or throttle timer */
};

struct worker {
	struct runner *r;
	int id;
	struct db_conn *conn;
	uv_poll_t *poll;		/* NULL for SQLite or while reconnecting */
	uv_timer_t timer;
	uv_work_t work;
	bool work_busy;
	enum worker_state st;
	/* The statement in flight (SQLite: in the thread pool). */
	struct strbuf sql;
	struct db_param params[MAX_PARAMS];
	char *pvals[MAX_PARAMS];
	size_t n_params;
	struct db_result *res;
	int rc;
	struct dbphase_error err;
	/* The batch in hand. */
	struct job_run *jr;
	struct exec_chunk *chunk;
	char *hi_key;			/* upper bound of the batch (JSON), NULL: open */
	double width;			/* integer walks: key values per batch */
	double size;			/* keyset walks: rows per batch */
	double t0;
	uint64_t batch_rows;
	int attempt;			/* retries of the batch in hand */
	bool in_txn;
	struct dbphase_error failure;	/* why the batch failed, kept across ROLLBACK */
	const char *failure_what;
	bool broken;			/* the connection must be replaced */
};

struct runner {
	uv_loop_t loop;
	struct db_conn *conn;		/* the caller's, for bookkeeping */
	const struct db_url *url;
	const struct exec_opts *o;
	const struct exec_hooks *h;
	struct job_run *jobs;
	size_t n_jobs;
	struct worker *workers;
	size_t n_workers;
	struct dbphase_error err;	/* the first fatal error */
	bool stopping;
	double started;
	uint64_t rows_all;		/* for --max-rate */
};

static void worker_next(struct worker *w);
static void worker_step(struct worker *w);
static void worker_begin(struct worker *w);

void
exec_chunks_free(struct exec_chunk *chunks, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(chunks[i].last_key);
		free(chunks[i].end_key);
	}
	free(chunks);
}

/* ---- keys as JSON arrays ------------------------------------------------- */

static char *
json_key_of(const char *const *values, size_t n)
{
	json_t *arr = json_array();
	char *text, *copy;
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(arr, json_string(values[i] ? values[i] : ""));
	text = json_dumps(arr, JSON_COMPACT);
	copy = xstrdup(text);
	free(text);
	json_decref(arr);
	return copy;
}

static char *
json_key_int(int64_t v)
{
	char buf[32];
	const char *p = buf;

	snprintf(buf, sizeof(buf), "%lld", (long long)v);
	return json_key_of(&p, 1);
}

/* Parse a key into values[] (owned by the caller); false if malformed. */
static bool
json_key_parse(const char *text, size_t n, char **values)
{
	json_error_t jerr;
	json_t *arr = json_loads(text, 0, &jerr);
	bool ok = arr && json_is_array(arr) && json_array_size(arr) == n;
	size_t i;

	for (i = 0; ok && i < n; i++) {
		json_t *v = json_array_get(arr, i);

		ok = json_is_string(v);
		if (ok)
			values[i] = xstrdup(json_string_value(v));
	}
	json_decref(arr);
	return ok;
}

static bool
json_key_to_int(const char *text, int64_t *out)
{
	char *v = NULL, *end;
	bool ok = json_key_parse(text, 1, &v);

	if (ok) {
		*out = strtoll(v, &end, 10);
		ok = *v && *end == '\0';
	}
	free(v);
	return ok;
}

/* ---- SQL ----------------------------------------------------------------- */

static void
add_key_list(enum db_backend b, const struct exec_job *job, struct strbuf *sb)
{
	size_t i;

	for (i = 0; i < job->n_keys; i++) {
		if (i)
			strbuf_addstr(sb, ", ");
		dialect_quote_ident(b, sb, job->keys[i]);
	}
}

/* "k > $n" or "(a, b) > ($n, $n+1)"; returns the next parameter number. */
static int
add_key_cmp(enum db_backend b, const struct exec_job *job, const char *op, int n,
	    struct strbuf *sb)
{
	size_t i;

	strbuf_addstr(sb, job->n_keys > 1 ? "(" : "");
	add_key_list(b, job, sb);
	strbuf_addf(sb, "%s %s %s", job->n_keys > 1 ? ")" : "", op, job->n_keys > 1 ? "(" : "");
	for (i = 0; i < job->n_keys; i++)
		strbuf_addf(sb, "%s$%d", i ? ", " : "", n++);
	strbuf_addstr(sb, job->n_keys > 1 ? ")" : "");
	return n;
}

static char *
sql_update(enum db_backend b, const struct exec_job *job, bool lo, bool hi)
{
	struct strbuf sb = STRBUF_INIT;
	int n = 1;

	strbuf_addstr(&sb, "UPDATE ");
	dialect_quote_ident(b, &sb, job->table);
	strbuf_addf(&sb, " SET %s WHERE (%s)", job->set_sql,
		    job->where_sql ? job->where_sql : "1 = 1");
	if (lo) {
		strbuf_addstr(&sb, " AND ");
		n = add_key_cmp(b, job, ">", n, &sb);
	}
	if (hi) {
		strbuf_addstr(&sb, " AND ");
		add_key_cmp(b, job, "<=", n, &sb);
	}
	return strbuf_detach(&sb);
}

static char *
sql_next_key(enum db_backend b, const struct exec_job *job, bool lo)
{
	struct strbuf sb = STRBUF_INIT;
	int n = 1;

	strbuf_addstr(&sb, "SELECT ");
	add_key_list(b, job, &sb);
	strbuf_addstr(&sb, " FROM ");
	dialect_quote_ident(b, &sb, job->table);
	if (lo) {
		strbuf_addstr(&sb, " WHERE ");
		n = add_key_cmp(b, job, ">", n, &sb);
	}
	strbuf_addstr(&sb, " ORDER BY ");
	add_key_list(b, job, &sb);
	strbuf_addf(&sb, " LIMIT 1 OFFSET $%d", n);
	return strbuf_detach(&sb);
}

static void
job_run_build_sql(struct runner *r, struct job_run *jr)
{
	enum db_backend b = r->conn->drv->backend;
	const struct exec_job *job = jr->job;
	struct strbuf sb = STRBUF_INIT;

	jr->sql_next_first = sql_next_key(b, job, false);
	jr->sql_next = sql_next_key(b, job, true);
	jr->sql_update_first_open = sql_update(b, job, false, false);
	jr->sql_update_open = sql_update(b, job, true, false);
	jr->sql_update_first = sql_update(b, job, false, true);
	jr->sql_update = sql_update(b, job, true, true);
	strbuf_addstr(&sb, "SELECT max(");
	dialect_quote_ident(b, &sb, job->keys[0]);
	strbuf_addstr(&sb, ") FROM ");
	dialect_quote_ident(b, &sb, job->table);
	jr->sql_max = strbuf_detach(&sb);
	jr->n_extra = 0;
	r->h->checkpoint_sql(r->h->arg, job, b, &sb, jr->extra, &jr->n_extra);
	jr->sql_checkpoint = strbuf_detach(&sb);
	jr->n_fence_extra = 0;
	if (r->h->fence_sql) {
		r->h->fence_sql(r->h->arg, job, b, &sb, jr->fence_extra, &jr->n_fence_extra);
		jr->sql_fence = strbuf_detach(&sb);
	}
}

/* Name the job, and its operation where the caller said, in front of err. */
static void
job_err_prefix(const struct exec_job *job, const char *what, struct dbphase_error *err)
{
	if (job->op_where)
		err_prefixf(err, "%s (%s, from %s; %s)", job->id, job->op_where,
			    job->source ? job->source : "?", what);
	else
		err_prefixf(err, "%s (%s)", job->id, what);
}

static void
job_run_release(struct job_run *jr)
{
	exec_chunks_free(jr->chunks, jr->n_chunks);
	free(jr->sql_next_first);
	free(jr->sql_next);
	free(jr->sql_update_open);
	free(jr->sql_update_first_open);
	free(jr->sql_update_first);
	free(jr->sql_update);
	free(jr->sql_max);
	free(jr->sql_checkpoint);
	free(jr->sql_fence);
}

/* ---- splitting ------------------------------------------------------------ */

/*
 * Split a job's key space: value ranges of an integer key, one chunk per
 * worker (one chunk for a small table), or one chunk for any other key.
 * Runs once; a resumed run reuses the recorded split.
 */
static int
job_run_split(struct runner *r, struct job_run *jr, struct dbphase_error *err)
{
	const struct exec_job *job = jr->job;
	struct db_result *res = NULL;
	int64_t lo, hi;
	size_t n, i;
	int rc;

	if ((rc = r->h->chunks_load(r->h->arg, r->conn, job, &jr->chunks, &jr->n_chunks, err)) < 0)
		return rc;
	db_estimate_rows(r->conn, job->table, &jr->rows_total, err);
	err_release(err);
	if (jr->n_chunks > 0)
		goto known;
	n = 1;
	if (job->integer_key) {
		{
			struct strbuf sb = STRBUF_INIT;

			strbuf_addstr(&sb, "SELECT min(");
			dialect_quote_ident(r->conn->drv->backend, &sb, job->keys[0]);
			strbuf_addstr(&sb, "), max(");
			dialect_quote_ident(r->conn->drv->backend, &sb, job->keys[0]);
			strbuf_addstr(&sb, ") FROM ");
			dialect_quote_ident(r->conn->drv->backend, &sb, job->table);
			rc = db_query(r->conn, sb.buf, NULL, 0, &res, err);
			strbuf_release(&sb);
			if (rc < 0)
				return rc;
		}
		if (res->n_rows == 0 || db_result_value(res, 0, 0) == NULL) {
			n = 1;
			lo = hi = 0;
		} else {
			lo = strtoll(db_result_value(res, 0, 0), NULL, 10);
			hi = strtoll(db_result_value(res, 0, 1), NULL, 10);
			if (jr->rows_total > (uint64_t)r->o->batch_size * 4 && r->n_workers > 1)
				n = r->n_workers;
			if ((uint64_t)(hi - lo) < n)
				n = 1;
		}
		jr->chunks = xcalloc(n, sizeof(*jr->chunks));
		jr->n_chunks = n;
		for (i = 0; i < n; i++) {
			struct exec_chunk *c = &jr->chunks[i];
			int64_t span = hi - lo + 1;

			c->index = (int)i;
			/* (start, end]: the first starts below the lowest key. */
			c->last_key = res->n_rows && db_result_value(res, 0, 0) ?
				      json_key_int(lo - 1 + (int64_t)((double)span * i / n)) : NULL;
			c->end_key = i + 1 < n ?
				     json_key_int(lo - 1 + (int64_t)((double)span * (i + 1) / n)) : NULL;
		}
		db_result_free(res);
	} else {
		jr->chunks = xcalloc(1, sizeof(*jr->chunks));
		jr->n_chunks = 1;
	}
	if ((rc = r->h->chunks_save(r->h->arg, r->conn, job, jr->chunks, jr->n_chunks,
				    jr->rows_total, err)) < 0)
		return rc;
known:
	for (i = 0; i < jr->n_chunks; i++) {
		jr->res->rows += jr->chunks[i].rows_done;
		if (jr->chunks[i].done)
			jr->chunks_done++;
	}
	jr->max_key = INT64_MIN;
	return 0;
}

/* ---- sending statements ------------------------------------------------------ */

static void
worker_clear_params(struct worker *w)
{
	size_t i;

	for (i = 0; i < w->n_params; i++) {
		free(w->pvals[i]);
		w->pvals[i] = NULL;
	}
	w->n_params = 0;
}

static void
worker_param_text(struct worker *w, const char *text)
{
	w->pvals[w->n_params] = text ? xstrdup(text) : NULL;
	w->params[w->n_params] = text ? DB_TEXT(w->pvals[w->n_params]) : DB_NULL;
	w->n_params++;
}

static void
worker_param_int(struct worker *w, int64_t v)
{
	w->pvals[w->n_params] = NULL;
	w->params[w->n_params] = DB_INT(v);
	w->n_params++;
}

/* Add the values of a JSON key as text parameters. */
static bool
worker_param_key(struct worker *w, const char *key)
{
	char *vals[MAX_KEYS] = { 0 };
	size_t i, n = w->jr->job->n_keys;

	if (!json_key_parse(key, n, vals)) {
		for (i = 0; i < n; i++)
			free(vals[i]);
		return false;
	}
	for (i = 0; i < n; i++) {
		w->pvals[w->n_params] = vals[i];
		w->params[w->n_params] = DB_TEXT(vals[i]);
		w->n_params++;
	}
	return true;
}

static void
on_poll(uv_poll_t *handle, int status, int events);

static void
on_timer(uv_timer_t *t);

static void
worker_watch(struct worker *w, int want)
{
	int events = 0;

	if (want & DB_WANT_TIMEOUT) {
		int ms = w->conn->drv->timeout_ms(w->conn);

		uv_timer_start(&w->timer, on_timer, ms < 0 ? 0 : (uint64_t)ms, 0);
	}
	if (want & DB_WANT_READ)
		events |= UV_READABLE;
	if (want & DB_WANT_WRITE)
		events |= UV_WRITABLE;
	if (events)
		uv_poll_start(w->poll, events, on_poll);
	else
		uv_poll_stop(w->poll);
}

/* The statement finished: take its result and move the state machine on. */
static void
worker_finished(struct worker *w)
{
	db_result_free(w->res);
	w->res = NULL;
	err_release(&w->err);
	w->rc = w->conn->drv->take(w->conn, &w->res, &w->err);
	worker_step(w);
}

static void
worker_advance(struct worker *w, int ready)
{
	int want = ready, rc;

	rc = w->conn->drv->consume(w->conn, &want, &w->err);
	if (rc > 0) {
		worker_watch(w, want);
		return;
	}
	uv_poll_stop(w->poll);
	if (rc < 0) {
		w->rc = rc;
		db_result_free(w->res);
		w->res = NULL;
		worker_step(w);
		return;
	}
	worker_finished(w);
}

static void
on_poll(uv_poll_t *handle, int status, int events)
{
	struct worker *w = handle->data;
	int ready = 0;

	if (status < 0)
		ready = DB_WANT_READ | DB_WANT_WRITE;	/* let the driver see the error */
	if (events & UV_READABLE)
		ready |= DB_WANT_READ;
	if (events & UV_WRITABLE)
		ready |= DB_WANT_WRITE;
	worker_advance(w, ready);
}

static void
on_timer(uv_timer_t *t)
{
	struct worker *w = t->data;

	if (w->st == W_WAIT) {
		w->st = W_IDLE;
		worker_next(w);
		return;
	}
	worker_advance(w, DB_WANT_TIMEOUT);
}

static void
sqlite_work(uv_work_t *req)
{
	struct worker *w = req->data;
	int want = 0;

	db_result_free(w->res);
	w->res = NULL;
	err_release(&w->err);
	w->rc = w->conn->drv->send(w->conn, w->sql.buf, w->params, w->n_params, &want, &w->err);
	if (w->rc == 0)
		w->rc = w->conn->drv->take(w->conn, &w->res, &w->err);
}

static void
sqlite_work_done(uv_work_t *req, int status)
{
	struct worker *w = req->data;

	w->work_busy = false;
	worker_step(w);
}

/* Send w->sql with w->params; worker_step runs when it completes. */
static void
worker_send(struct worker *w, enum worker_state st)
{
	int want = 0, rc;

	w->st = st;
	if (w->poll == NULL) {
		w->work.data = w;
		w->work_busy = true;
		uv_queue_work(&w->r->loop, &w->work, sqlite_work, sqlite_work_done);
		return;
	}
	err_release(&w->err);
	rc = w->conn->drv->send(w->conn, w->sql.buf, w->params, w->n_params, &want, &w->err);
	if (rc < 0) {
		w->rc = rc;
		worker_step(w);
		return;
	}
	worker_advance(w, 0);
}

static void
worker_send_text(struct worker *w, const char *sql, enum worker_state st)
{
	strbuf_reset(&w->sql);
	strbuf_addstr(&w->sql, sql);
	worker_clear_params(w);
	worker_send(w, st);
}

/* ---- connections ---------------------------------------------------------- */

static void
on_poll_closed(uv_handle_t *h)
{
	free(h);
}

static int
worker_connect(struct worker *w, struct dbphase_error *err)
{
	char *name = xasprintf("worker %d", w->id + 1);
	int rc, fd;

	rc = db_connect_as(w->r->url, name, &w->conn, err);
	free(name);
	if (rc < 0)
		return rc;
	if ((rc = w->conn->drv->set_lock_timeout(w->conn, w->r->o->lock_timeout_ms, err)) < 0)
		return rc;
	fd = w->conn->drv->socket(w->conn);
	if (fd >= 0) {
		w->poll = xmalloc(sizeof(*w->poll));
		uv_poll_init(&w->r->loop, w->poll, fd);
		w->poll->data = w;
	}
	return 0;
}

/* The connection broke: drop it (its poll handle closes first) and open a new one. */
static int
worker_reconnect(struct worker *w, struct dbphase_error *err)
{
	if (w->poll) {
		uv_poll_stop(w->poll);
		uv_close((uv_handle_t *)w->poll, on_poll_closed);
		w->poll = NULL;
	}
	db_close(w->conn);
	w->conn = NULL;
	w->in_txn = false;
	return worker_connect(w, err);
}

/* ---- scheduling ----------------------------------------------------------- */

static bool
job_ready(struct runner *r, struct job_run *jr)
{
	return !jr->failed && (jr->after < 0 ||
			       r->jobs[jr->after].chunks_done == r->jobs[jr->after].n_chunks);
}

/* Claim the next chunk to work on, or NULL. */
static bool
worker_claim(struct worker *w)
{
	struct runner *r = w->r;
	size_t i, k;

	for (i = 0; i < r->n_jobs; i++) {
		struct job_run *jr = &r->jobs[i];

		if (!job_ready(r, jr))
			continue;
		for (k = 0; k < jr->n_chunks; k++) {
			struct exec_chunk *c = &jr->chunks[k];
			bool taken = false;
			size_t j;

			if (c->done)
				continue;
			for (j = 0; j < r->n_workers; j++)
				if (r->workers[j].chunk == c)
					taken = true;
			if (taken)
				continue;
			w->jr = jr;
			w->chunk = c;
			w->width = r->o->batch_size > 0 ? r->o->batch_size : 1000;
			w->size = w->width;
			jr->chunks_running++;
			return true;
		}
	}
	return false;
}

static void
worker_stop(struct worker *w)
{
	w->st = W_IDLE;
	w->jr = NULL;
	w->chunk = NULL;
}

/* Any worker without work: whether the whole run is over. */
static void
runner_maybe_finish(struct runner *r)
{
	size_t i;

	for (i = 0; i < r->n_workers; i++)
		if (r->workers[i].st != W_IDLE || r->workers[i].work_busy)
			return;
	for (i = 0; i < r->n_workers; i++) {
		struct worker *w = &r->workers[i];

		uv_timer_stop(&w->timer);
		if (!uv_is_closing((uv_handle_t *)&w->timer))
			uv_close((uv_handle_t *)&w->timer, NULL);
		if (w->poll) {
			uv_poll_stop(w->poll);
			uv_close((uv_handle_t *)w->poll, on_poll_closed);
			w->poll = NULL;
		}
	}
}

static void
runner_fail(struct runner *r, struct worker *w, const char *what)
{
	if (r->err.code == 0) {
		err_move(&r->err, &w->err);
		if (r->err.code == 0)
			err_setf(&r->err, w->rc ? w->rc : DBPHASE_EERROR, "%s failed", what);
		job_err_prefix(w->jr->job, what, &r->err);
	}
	w->jr->failed = true;
	r->stopping = true;
}

/* Start the next batch of the worker's chunk, or claim another chunk. */
static void
worker_next(struct worker *w)
{
	struct runner *r = w->r;
	struct job_run *jr;
	int64_t lo, end, hi;

	if (r->stopping || (r->o->stop && *r->o->stop)) {
		if (w->jr) {
			w->jr->chunks_running--;
			if (r->o->stop && *r->o->stop)
				w->jr->res->interrupted = true;
		}
		worker_stop(w);
		runner_maybe_finish(r);
		return;
	}
	if (w->chunk == NULL && !worker_claim(w)) {
		worker_stop(w);
		runner_maybe_finish(r);
		return;
	}
	/* --max-rate: wait until the rows done so far are within the rate. */
	if (r->o->max_rate > 0) {
		double due = r->started + (double)r->rows_all * 1000.0 / r->o->max_rate;
		double now = clock_now_ms();

		if (due > now + 1) {
			w->st = W_WAIT;
			uv_timer_start(&w->timer, on_timer, (uint64_t)(due - now), 0);
			return;
		}
	}
	jr = w->jr;
	w->t0 = clock_now_ms();
	free(w->hi_key);
	w->hi_key = NULL;
	worker_clear_params(w);
	if (!jr->job->integer_key) {
		/* Keyset walk: find the upper key of the batch first. */
		strbuf_reset(&w->sql);
		strbuf_addstr(&w->sql, w->chunk->last_key ? jr->sql_next : jr->sql_next_first);
		if (w->chunk->last_key && !worker_param_key(w, w->chunk->last_key)) {
			err_setf(&w->err, DBPHASE_EERROR, "checkpoint '%s' is not a key",
				 w->chunk->last_key);
			runner_fail(r, w, "resume");
			worker_next(w);
			return;
		}
		worker_param_int(w, (int64_t)(w->size < 1 ? 1 : w->size) - 1);
		worker_send(w, W_FIND_HI);
		return;
	}
	/* Integer walk: (lo, min(lo + width, end)]. */
	if (w->chunk->last_key == NULL || !json_key_to_int(w->chunk->last_key, &lo))
		lo = INT64_MIN / 2;
	if (w->chunk->end_key && json_key_to_int(w->chunk->end_key, &end)) {
		/* a bounded chunk */
	} else {
		if (jr->max_key == INT64_MIN || lo >= jr->max_key) {
			/* Reached the highest key known: ask again. */
			worker_send_text(w, jr->sql_max, W_MAX_KEY);
			return;
		}
		end = jr->max_key;
	}
	if (w->chunk->last_key == NULL) {
		/* An empty table at split time: one open batch does it. */
		hi = end;
	} else {
		double step = w->width < 1 ? 1 : w->width;

		hi = (double)lo + step >= (double)end ? end : lo + (int64_t)step;
	}
	if (hi < lo)
		hi = lo;	/* nothing left: an empty batch records the chunk done */
	if (lo >= end)
		w->chunk->done = true;
	w->hi_key = json_key_int(hi);
	worker_begin(w);
}

static void
worker_begin(struct worker *w)
{
	enum db_backend b = w->r->conn->drv->backend;

	worker_send_text(w, b == DB_BACKEND_MYSQL ? "START TRANSACTION" :
			 b == DB_BACKEND_SQLITE ? "BEGIN IMMEDIATE" : "BEGIN", W_BEGIN);
}

/* The lock fence, first in the batch's transaction. */
static void
worker_fence(struct worker *w)
{
	struct job_run *jr = w->jr;
	size_t i;

	worker_clear_params(w);
	for (i = 0; i < jr->n_fence_extra; i++)
		worker_param_text(w, jr->fence_extra[i]);
	strbuf_reset(&w->sql);
	strbuf_addstr(&w->sql, jr->sql_fence);
	worker_send(w, W_FENCE);
}

/* Whether the fence let the batch go on; if not, w->err says why. */
static bool
worker_fence_passed(struct worker *w)
{
	const struct db_result *res = w->res;
	bool ours = res && res->n_rows == 1 && res->n_cols >= 2 &&
		    db_value_true(db_result_value(res, 0, 0));
	bool held = ours && db_value_true(db_result_value(res, 0, 1));

	if (ours && held)
		return true;
	err_setf(&w->err, DBPHASE_ECONNECT,
		 !ours ? "another dbphase has taken this run's cluster lock (its lock generation "
			 "moved on): the lock was lost, and this run's batches stop" :
			 "the connection that holds this run's cluster lock is gone (killed, or the "
			 "server restarted): this run's batches stop");
	return false;
}

/* Build and send the batch's UPDATE. */
static void
worker_update(struct worker *w)
{
	struct job_run *jr = w->jr;
	const char *sql;

	worker_clear_params(w);
	if (w->chunk->last_key && w->hi_key)
		sql = jr->sql_update;
	else if (w->chunk->last_key)
		sql = jr->sql_update_open;
	else if (w->hi_key)
		sql = jr->sql_update_first;
	else
		sql = jr->sql_update_first_open;
	if (w->chunk->last_key)
		worker_param_key(w, w->chunk->last_key);
	if (w->hi_key)
		worker_param_key(w, w->hi_key);
	strbuf_reset(&w->sql);
	strbuf_addstr(&w->sql, sql);
	worker_send(w, W_UPDATE);
}

static void
worker_checkpoint(struct worker *w)
{
	struct job_run *jr = w->jr;
	const char *last = w->hi_key ? w->hi_key : w->chunk->last_key;
	bool done = w->hi_key == NULL || w->chunk->done;
	size_t i;

	/* An open batch (no upper key) ends the chunk. */
	if (w->chunk->end_key && w->hi_key && strcmp(w->hi_key, w->chunk->end_key) == 0)
		done = true;
	worker_clear_params(w);
	worker_param_text(w, last);
	worker_param_int(w, (int64_t)(w->chunk->rows_done + w->batch_rows));
	worker_param_int(w, done);
	worker_param_int(w, w->chunk->index);
	for (i = 0; i < jr->n_extra; i++)
		worker_param_text(w, jr->extra[i]);
	strbuf_reset(&w->sql);
	strbuf_addstr(&w->sql, jr->sql_checkpoint);
	worker_send(w, W_CHECKPOINT);
}

/* The batch committed: advance the chunk, report, adapt, go on. */
static void
worker_committed(struct worker *w)
{
	struct runner *r = w->r;
	struct job_run *jr = w->jr;
	double ms = clock_now_ms() - w->t0;
	double target = r->o->batch_time_ms > 0 ? r->o->batch_time_ms : 100;
	double max = r->o->max_batch_size > 0 ? r->o->max_batch_size : 100000;
	bool done = w->hi_key == NULL || w->chunk->done ||
		    (w->chunk->end_key && strcmp(w->hi_key, w->chunk->end_key) == 0);
	bool wake_idle = false;
	size_t i;

	w->in_txn = false;
	w->attempt = 0;
	w->chunk->rows_done += w->batch_rows;
	jr->res->rows += w->batch_rows;
	jr->res->batches++;
	r->rows_all += w->batch_rows;
	if (w->hi_key) {
		free(w->chunk->last_key);
		w->chunk->last_key = w->hi_key;
		w->hi_key = NULL;
	}
	if (r->h->progress)
		r->h->progress(r->h->arg, jr->job, jr->res->rows, jr->rows_total, w->batch_rows, ms);
	/*
	 * Aim a little below the batch time, since batch times vary (other
	 * workers, the application's load): grow at most 1.5x a batch, shrink
	 * at once.  Row locks are then held about batch_time_ms, rarely more.
	 */
	if (ms > 0) {
		double scale = BATCH_AIM * target / ms;

		if (scale > BATCH_GROWTH)
			scale = BATCH_GROWTH;
		w->width *= scale;
		w->size *= scale;
		if (w->width < 1)
			w->width = 1;
		if (w->size < 1)
			w->size = 1;
		if (w->size > max)
			w->size = max;
		/* A range that held many rows is capped by rows, not values. */
		if (w->batch_rows > 0 && (double)w->batch_rows * scale > max)
			w->width = w->width * max / ((double)w->batch_rows * scale);
	}
	if (done) {
		w->chunk->done = true;
		jr->chunks_done++;
		jr->chunks_running--;
		w->chunk = NULL;
		if (jr->chunks_done == jr->n_chunks) {
			struct dbphase_error err = DBPHASE_ERROR_INIT;

			/* The job's record, on the caller's connection, in its own transaction. */
			if (r->h->job_done && r->h->job_done(r->h->arg, r->conn, jr->job, &err) < 0) {
				if (r->err.code == 0) {
					err_move(&r->err, &err);
					job_err_prefix(jr->job, "recording the step", &r->err);
				}
				r->stopping = true;
			}
			err_release(&err);
			jr->res->seconds = (clock_now_ms() - r->started) / 1000.0;
			wake_idle = true;
		}
	}
	worker_next(w);
	/* A finished job may let a job on the same table start: idle hands help. */
	for (i = 0; wake_idle && i < r->n_workers; i++)
		if (r->workers[i].st == W_IDLE && !r->workers[i].work_busy &&
		    r->workers[i].chunk == NULL && &r->workers[i] != w && !r->stopping)
			worker_next(&r->workers[i]);
}

/*
 * After a broken connection it is not known whether the batch in hand
 * committed: its COMMIT may have reached the server and only the answer
 * been lost.  The chunk's checkpoint, read on the new connection with a
 * lock that waits for the old transaction to be resolved, tells: if it
 * holds this batch's upper key (or, for the last open batch, says done),
 * the batch committed.  Returns 1 (then w->batch_rows is what it did), 0,
 * or -1 with w->err set.
 */
static int
worker_batch_committed(struct worker *w)
{
	const struct exec_hooks *h = w->r->h;
	struct exec_chunk db = { 0 };
	int committed;

	if (h->chunk_reload == NULL)
		return 0;
	if (h->chunk_reload(h->arg, w->conn, w->jr->job, w->chunk->index, &db, &w->err) < 0)
		return -1;
	committed = w->hi_key ? db.last_key && strcmp(db.last_key, w->hi_key) == 0
			      : db.done;
	if (committed)
		w->batch_rows = db.rows_done - w->chunk->rows_done;
	free(db.last_key);
	free(db.end_key);
	return committed;
}

/* Wait before retry n (1-based): 100 ms doubling, at most 5 s. */
static uint64_t
backoff_ms(int attempt)
{
	uint64_t ms = 100;

	while (--attempt > 0 && ms < 5000)
		ms *= 2;
	return ms > 5000 ? 5000 : ms;
}

/* After a failed batch was rolled back (or could not be): retry or give up. */
static void
worker_after_failure(struct worker *w)
{
	struct runner *r = w->r;
	bool transient = w->failure.code == DBPHASE_ELOCK_TIMEOUT || w->failure.retryable;

	if (!transient || w->attempt >= r->o->max_retries || r->stopping) {
		err_move(&w->err, &w->failure);
		runner_fail(r, w, w->failure_what);
		worker_next(w);
		return;
	}
	db_log_debug(w->conn, "retry %d of %d in %llu ms after %s: %s", w->attempt + 1,
		     r->o->max_retries, (unsigned long long)backoff_ms(w->attempt + 1),
		     w->failure_what, w->failure.message ? w->failure.message : "");
	err_release(&w->failure);
	if (w->broken) {
		if (worker_reconnect(w, &w->err) < 0) {
			runner_fail(r, w, "reconnecting");
			worker_next(w);
			return;
		}
		w->broken = false;
		/* Did the batch commit before the connection broke?  Then it is done. */
		switch (worker_batch_committed(w)) {
		case 1:
			worker_committed(w);
			return;
		case -1:
			runner_fail(r, w, "reading the checkpoint after a lost connection");
			worker_next(w);
			return;
		}
	}
	/* Smaller, later, again. */
	w->attempt++;
	w->jr->res->retries++;
	w->width = w->width / 2 < 1 ? 1 : w->width / 2;
	w->size = w->size / 2 < 1 ? 1 : w->size / 2;
	w->st = W_WAIT;
	uv_timer_start(&w->timer, on_timer, backoff_ms(w->attempt), 0);
}

/*
 * A statement of the batch failed (w->err): keep the error, roll back what
 * the batch did, then retry or give up.  A transient error other than a
 * lock timeout means the connection broke: no rollback, a new connection.
 */
static void
worker_failed(struct worker *w, const char *what)
{
	err_move(&w->failure, &w->err);
	w->failure_what = what;
	w->broken = w->failure.retryable && w->failure.code != DBPHASE_ELOCK_TIMEOUT;
	if (w->in_txn && !w->broken) {
		w->in_txn = false;
		worker_send_text(w, "ROLLBACK", W_ROLLBACK);
		return;
	}
	w->in_txn = false;
	worker_after_failure(w);
}

/* The statement in flight completed (w->rc, w->res, w->err): next state. */
static void
worker_step(struct worker *w)
{
	switch (w->st) {
	case W_FIND_HI:
		if (w->rc < 0) {
			worker_failed(w, "finding the next batch");
			return;
		}
		if (w->res->n_rows > 0) {
			const char *vals[MAX_KEYS];
			size_t i;

			for (i = 0; i < w->jr->job->n_keys; i++)
				vals[i] = db_result_value(w->res, 0, i);
			free(w->hi_key);
			w->hi_key = json_key_of(vals, w->jr->job->n_keys);
		}
		worker_begin(w);
		return;
	case W_MAX_KEY:
		if (w->rc < 0) {
			worker_failed(w, "reading the highest key");
			return;
		}
		{
			const char *v = w->res->n_rows ? db_result_value(w->res, 0, 0) : NULL;
			int64_t max = v ? strtoll(v, NULL, 10) : INT64_MIN;
			int64_t lo;

			if (w->chunk->last_key == NULL || !json_key_to_int(w->chunk->last_key, &lo))
				lo = INT64_MIN / 2;
			if (v == NULL || max <= lo) {
				/*
				 * Nothing beyond the position: the open chunk ends
				 * with one open batch, which also takes rows added
				 * since the highest key was read.
				 */
				w->jr->max_key = v ? max : lo;
				free(w->hi_key);
				w->hi_key = NULL;
				w->chunk->done = true;
				worker_begin(w);
				return;
			}
			w->jr->max_key = max;
		}
		w->st = W_IDLE;
		worker_next(w);
		return;
	case W_BEGIN:
		if (w->rc < 0) {
			worker_failed(w, "BEGIN");
			return;
		}
		w->in_txn = true;
		if (w->jr->sql_fence)
			worker_fence(w);
		else
			worker_update(w);
		return;
	case W_FENCE:
		if (w->rc < 0 || !worker_fence_passed(w)) {
			worker_failed(w, "checking the cluster lock");
			return;
		}
		worker_update(w);
		return;
	case W_UPDATE:
		if (w->rc < 0) {
			worker_failed(w, "the batch's UPDATE");
			return;
		}
		w->batch_rows = w->res ? w->res->affected : 0;
		worker_checkpoint(w);
		return;
	case W_CHECKPOINT:
		if (w->rc == 0 && (w->res == NULL || w->res->affected != 1)) {
			w->rc = err_setf(&w->err, DBPHASE_EERROR,
					 "the checkpoint of chunk %d changed %llu rows of "
					 "dbphase_progress instead of 1 (its row was deleted or "
					 "duplicated); the batch was rolled back", w->chunk->index,
					 (unsigned long long)(w->res ? w->res->affected : 0));
		}
		if (w->rc < 0) {
			worker_failed(w, "saving the checkpoint");
			return;
		}
		worker_send_text(w, "COMMIT", W_COMMIT);
		return;
	case W_COMMIT:
		if (w->rc < 0) {
			worker_failed(w, "COMMIT");
			return;
		}
		worker_committed(w);
		return;
	case W_ROLLBACK:
		/* The batch's own error decides; a failed rollback means a broken link. */
		if (w->rc < 0)
			w->broken = true;
		worker_after_failure(w);
		return;
	case W_IDLE:
	case W_WAIT:
		return;
	}
}

/* ---- the run ------------------------------------------------------------------ */

int
exec_run_backfills(struct db_conn *conn, const struct db_url *url,
		   const struct exec_job *jobs, size_t n_jobs, const struct exec_opts *o,
		   const struct exec_hooks *h, struct exec_result *results,
		   struct dbphase_error *err)
{
	struct runner r;
	size_t i, j, n_workers;
	int rc = 0;

	memset(&r, 0, sizeof(r));
	r.conn = conn;
	r.url = url;
	r.o = o;
	r.h = h;
	r.started = clock_now_ms();
	n_workers = o->jobs > 0 ? (size_t)o->jobs : 1;
	/* SQLite has one writer at a time: more connections would only wait. */
	if (conn->drv->backend == DB_BACKEND_SQLITE)
		n_workers = 1;
	r.n_workers = n_workers;
	r.jobs = xcalloc(n_jobs ? n_jobs : 1, sizeof(*r.jobs));
	r.n_jobs = n_jobs;
	for (i = 0; i < n_jobs; i++) {
		memset(&results[i], 0, sizeof(results[i]));
		if (jobs[i].n_keys == 0 || jobs[i].n_keys > MAX_KEYS) {
			rc = err_setf(err, DBPHASE_EUNSUPPORTED,
				      "%s: table '%s' needs a primary key of 1 to %d columns to be "
				      "walked in batches", jobs[i].id, jobs[i].table, MAX_KEYS);
			goto out_jobs;
		}
		r.jobs[i].job = &jobs[i];
		r.jobs[i].res = &results[i];
		r.jobs[i].after = -1;
		for (j = i; j-- > 0;)
			if (strcmp(jobs[j].table, jobs[i].table) == 0) {
				r.jobs[i].after = (int)j;
				break;
			}
		job_run_build_sql(&r, &r.jobs[i]);
		if ((rc = job_run_split(&r, &r.jobs[i], err)) < 0) {
			job_err_prefix(&jobs[i], "splitting the table", err);
			goto out_jobs;
		}
		/* Every chunk done, the record missing: the run before stopped in between. */
		if (r.jobs[i].chunks_done == r.jobs[i].n_chunks && h->job_done &&
		    (rc = h->job_done(h->arg, conn, &jobs[i], err)) < 0) {
			job_err_prefix(&jobs[i], "recording the step", err);
			goto out_jobs;
		}
	}
	if (uv_loop_init(&r.loop) != 0) {
		rc = err_setf(err, DBPHASE_EERROR, "cannot start the event loop");
		goto out_jobs;
	}
	r.workers = xcalloc(n_workers, sizeof(*r.workers));
	for (i = 0; i < n_workers; i++) {
		struct worker *w = &r.workers[i];

		w->r = &r;
		w->id = (int)i;
		strbuf_init(&w->sql);
		uv_timer_init(&r.loop, &w->timer);
		w->timer.data = w;
		if ((rc = worker_connect(w, err)) < 0) {
			err_prefixf(err, "opening worker connection %zu of %zu", i + 1, n_workers);
			r.n_workers = i + 1;
			break;
		}
	}
	if (rc == 0) {
		for (i = 0; i < r.n_workers; i++)
			worker_next(&r.workers[i]);
	} else {
		for (i = 0; i < r.n_workers; i++)
			r.workers[i].st = W_IDLE;
		runner_maybe_finish(&r);
	}
	uv_run(&r.loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&r.loop) != 0 && rc == 0)
		rc = err_setf(err, DBPHASE_EERROR, "the event loop still had open handles");
	for (i = 0; i < r.n_workers; i++) {
		struct worker *w = &r.workers[i];

		db_close(w->conn);
		err_release(&w->failure);
		worker_clear_params(w);
		strbuf_release(&w->sql);
		db_result_free(w->res);
		err_release(&w->err);
		free(w->hi_key);
	}
	free(r.workers);
	if (rc == 0 && r.err.code) {
		rc = r.err.code;
		err_move(err, &r.err);
	}
	/* A stop leaves unfinished jobs resumable. */
	for (i = 0; rc == 0 && i < n_jobs; i++)
		if (r.jobs[i].chunks_done < r.jobs[i].n_chunks)
			results[i].interrupted = true;
out_jobs:
	err_release(&r.err);
	for (i = 0; i < n_jobs; i++)
		job_run_release(&r.jobs[i]);
	free(r.jobs);
	return rc;
}
