/*
 * exec/exec.c - running one DDL job: statements under lock timeouts, retried
 * with growing waits, in one transaction where the backend allows it; and
 * SQLite rebuilds (exec/rebuild.c).  Backfills are exec/parallel.c's.
 */
#include "config.h"

#include "exec/exec.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/excerpt.h"
#include "core/sqllex.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"

/* How often a long statement reports that it is still running. */
#define PROGRESS_TICK_MS 1000

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

/* A failure worth trying again: a lock wait that timed out, or transient. */
static bool
is_retryable(const struct dbphase_error *err)
{
	return err->code == DBPHASE_ELOCK_TIMEOUT || err->retryable;
}

/*
 * Wait before retry n (1-based) after err: 100 ms doubling, at most 5 s.
 * The statement log says which retry, how long the wait and why.
 */
static void
backoff(struct db_conn *conn, int attempt, const struct exec_opts *o,
	const struct dbphase_error *err)
{
	double ms = 100;
	int n = attempt;

	while (--n > 0 && ms < 5000)
		ms *= 2;
	if (ms > 5000)
		ms = 5000;
	db_log_debug(conn, "retry %d of %d in %.0f ms after: %s", attempt, o->max_retries, ms,
		     err->message ? err->message : dbphase_strerror(err->code));
	clock_sleep_ms(ms);
}

static bool
stopped(const struct exec_opts *o)
{
	return o->stop && *o->stop;
}

/*
 * Run one statement of a job.  Where the driver has a socket and the
 * caller watches progress, it goes through the asynchronous path so that a
 * long statement (VALIDATE CONSTRAINT, CREATE INDEX CONCURRENTLY) reports
 * how long it has been running, once a second, while it runs.
 */
static int
exec_statement_run(struct db_conn *conn, const struct exec_job *job, const char *sql,
		   const struct exec_hooks *h, struct dbphase_error *err)
{
	int fd = conn->drv->socket(conn), want = 0, rc;
	double t0 = clock_now_ms();

	if (fd < 0 || h == NULL || h->progress == NULL)
		return db_exec(conn, sql, err);
	if ((rc = conn->drv->send(conn, sql, NULL, 0, &want, err)) < 0)
		return rc;
	while (want) {
		struct pollfd pfd = { .fd = fd, .events = 0 };
		int timeout = PROGRESS_TICK_MS, n, ready = 0;

		if (want & DB_WANT_READ)
			pfd.events |= POLLIN;
		if (want & DB_WANT_WRITE)
			pfd.events |= POLLOUT;
		if (want & DB_WANT_TIMEOUT) {
			int t = conn->drv->timeout_ms(conn);

			if (t >= 0 && t < timeout)
				timeout = t;
		}
		n = poll(&pfd, 1, timeout);
		if (n < 0 && errno == EINTR)
			continue;
		if (n > 0) {
			if (pfd.revents & (POLLIN | POLLERR | POLLHUP))
				ready |= DB_WANT_READ;
			if (pfd.revents & POLLOUT)
				ready |= DB_WANT_WRITE;
		} else if (want & DB_WANT_TIMEOUT) {
			ready = DB_WANT_TIMEOUT;
		} else {
			h->progress(h->arg, job, 0, 0, 0, clock_now_ms() - t0);
			continue;
		}
		want = ready;
		if ((rc = conn->drv->consume(conn, &want, err)) < 0)
			return rc;
		if (rc == 0)
			break;
	}
	return conn->drv->take(conn, NULL, err);
}

/* Run one statement; a failure names the statement. */
static int
exec_statement(struct db_conn *conn, const struct exec_job *job, const char *sql,
	       const struct exec_hooks *h, struct dbphase_error *err)
{
	int rc = exec_statement_run(conn, job, sql, h, err);

	if (rc < 0) {
		struct strbuf excerpt = STRBUF_INIT;

		excerpt_add_oneline(&excerpt, sql, 200);
		err_prefixf(err, "in \"%s\"", excerpt.buf);
		strbuf_release(&excerpt);
	}
	return rc;
}

static void
rollback_quietly(struct db_conn *conn)
{
	struct dbphase_error ignored = DBPHASE_ERROR_INIT;

	if (conn->in_transaction)
		conn->drv->rollback(conn, &ignored);
	err_release(&ignored);
}

/* "the triggers "a", "b" this step created", for messages; caller frees. */
static char *
triggers_text(const struct exec_job *job)
{
	struct strbuf sb = STRBUF_INIT;
	size_t i;

	strbuf_addstr(&sb, job->n_triggers == 1 ? "trigger " : "triggers ");
	for (i = 0; i < job->n_triggers; i++)
		strbuf_addf(&sb, "%s%s", i ? ", " : "", job->triggers[i]);
	return strbuf_detach(&sb);
}

/* One attempt at an SQL job in a transaction; statements in order. */
static int
sql_job_atomic(struct db_conn *conn, const struct exec_job *job,
	       const struct exec_hooks *h, const struct exec_exercise *ex,
	       struct dbphase_error *err)
{
	size_t i;
	int rc;

	if ((rc = conn->drv->begin(conn, err)) < 0)
		return rc;
	for (i = 0; i < job->n_sql; i++)
		if ((rc = exec_statement(conn, job, job->sql[i], h, err)) < 0)
			goto fail;
	if ((rc = exec_exercise_run(conn, job, ex, err)) < 0) {
		if (!is_retryable(err)) {
			char *names = triggers_text(job);

			err_prefixf(err, "%s on '%s' would make the application's writes fail, "
				    "so this step is rolled back and none of it is kept", names,
				    job->exercise_table);
			free(names);
		}
		goto fail;
	}
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

/* Whether sql is a data change (or a read), which commits only with its transaction. */
static bool
is_dml(enum db_backend b, const char *sql)
{
	static const char *const verbs[] = { "INSERT", "UPDATE", "DELETE", "SELECT", "REPLACE",
					     "WITH", NULL };
	const char *const *v;
	struct sqllex lx;
	struct sqllex_token t;

	sqllex_init(&lx, b, sql);
	sqllex_next_significant(&lx, &t);
	for (v = verbs; *v; v++)
		if (sqllex_is_word(&lx, &t, *v))
			return true;
	return false;
}

/*
 * Whether the job's statements can commit together with its record: DDL
 * can where the backend makes it transactional; data changes always can.
 */
static bool
job_in_one_transaction(struct db_conn *conn, const struct exec_job *job)
{
	size_t i;

	if (!job->atomic)
		return false;
	if (exec_transactional_ddl(conn))
		return true;
	for (i = 0; i < job->n_sql; i++)
		if (!is_dml(conn->drv->backend, job->sql[i]))
			return false;
	return true;
}

/*
 * Outside a transaction (MariaDB): fire the triggers the job's statements
 * created, in a transaction rolled back at once; if a write fails, drop
 * them again, so that the application's writes are as they were before
 * the step.
 */
static int
exercise_apart(struct db_conn *conn, const struct exec_job *job, const struct exec_exercise *ex,
	       const struct exec_opts *o, struct exec_result *res, struct dbphase_error *err)
{
	struct dbphase_error ignored = DBPHASE_ERROR_INIT;
	char *names;
	size_t i;
	int attempt, rc;

	if (!ex->active)
		return 0;
	for (attempt = 1;; attempt++) {
		if ((rc = conn->drv->begin(conn, err)) == 0) {
			rc = exec_exercise_run(conn, job, ex, err);
			rollback_quietly(conn);
		}
		if (rc == 0 || !is_retryable(err) || attempt > o->max_retries || stopped(o))
			break;
		res->retries++;
		backoff(conn, attempt, o, err);
	}
	if (rc == 0 || is_retryable(err))
		return rc;
	for (i = 0; i < job->n_triggers; i++) {
		struct strbuf sql = STRBUF_INIT;

		strbuf_addf(&sql, "DROP TRIGGER IF EXISTS %s", job->triggers[i]);
		if (conn->drv->backend == DB_BACKEND_POSTGRESQL) {
			strbuf_addstr(&sql, " ON ");
			conn->drv->quote_ident(&sql, job->exercise_table);
		}
		if (db_exec(conn, sql.buf, &ignored) < 0) {
			err_prefixf(err, "(dropping %s failed too: %s)", job->triggers[i],
				    ignored.message);
			err_release(&ignored);
		}
		strbuf_release(&sql);
	}
	names = triggers_text(job);
	err_prefixf(err, "%s on '%s' would make the application's writes fail, so %s dropped "
		    "again", names, job->exercise_table, job->n_triggers == 1 ? "it was" : "they were");
	free(names);
	return rc;
}

/*
 * Whether sql only drops something if it exists: "DROP ... IF EXISTS", or
 * "ALTER TABLE t DROP CONSTRAINT IF EXISTS c" with no other action.
 */
static bool
is_drop_if_exists(enum db_backend b, const char *sql)
{
	static const char *const drop_constraint[] = { "DROP", "CONSTRAINT", "IF", "EXISTS" };
	struct sqllex lx;
	struct sqllex_token t;
	bool drop, alter = false;
	size_t seen = 0, want;	/* words of the wanted run seen in a row */

	sqllex_init(&lx, b, sql);
	sqllex_next_significant(&lx, &t);
	drop = sqllex_is_word(&lx, &t, "DROP");
	if (!drop) {
		alter = sqllex_is_word(&lx, &t, "ALTER");
		sqllex_next_significant(&lx, &t);
		if (!alter || !sqllex_is_word(&lx, &t, "TABLE"))
			return false;
	}
	/* DROP: IF EXISTS anywhere; ALTER TABLE: DROP CONSTRAINT IF EXISTS, one clause. */
	want = drop ? 2 : 4;
	while (sqllex_next_significant(&lx, &t) != SQLLEX_END && t.kind != SQLLEX_ERROR) {
		if (alter && sqllex_is(&lx, &t, ","))
			return false;
		if (seen < want && sqllex_is_word(&lx, &t, drop_constraint[4 - want + seen]))
			seen++;
		else if (seen < want)
			seen = sqllex_is_word(&lx, &t, drop_constraint[4 - want]) ? 1 : 0;
	}
	return seen == want;
}

/*
 * A job that is not atomic: its statements run one by one (CREATE INDEX
 * CONCURRENTLY may not run inside a transaction), and it is written to be
 * run again from its start (exec.h).  A retry therefore runs every
 * statement again, so that the DROP ... IF EXISTS statements it opens with
 * clear what the failed attempt left: PostgreSQL keeps the INVALID index
 * of a failed CONCURRENTLY build, which the CREATE alone would trip on.
 * When the job gives up after its opening ran, the opening runs once more,
 * so that no INVALID index (or NOT VALID check) stays behind for the
 * application's writes to maintain.  The caller records the job.
 */
static int
run_restartable_job(struct db_conn *conn, const struct exec_job *job,
		    const struct exec_opts *o, const struct exec_hooks *h,
		    struct exec_result *res, struct dbphase_error *err)
{
	size_t i = 0, n_open = 0, k;
	int attempt, rc = 0;

	while (n_open < job->n_sql && is_drop_if_exists(conn->drv->backend, job->sql[n_open]))
		n_open++;
	for (attempt = 1;; attempt++) {
		for (i = 0, rc = 0; i < job->n_sql && rc == 0; i++)
			rc = exec_statement(conn, job, job->sql[i], h, err);
		if (rc == 0 || !is_retryable(err) || attempt > o->max_retries || stopped(o))
			break;
		res->retries++;
		backoff(conn, attempt, o, err);
	}
	if (rc < 0 && i > n_open) {
		struct dbphase_error cleanup = DBPHASE_ERROR_INIT;
		int crc = 0;

		for (k = 0; k < n_open && crc == 0; k++)
			crc = exec_statement(conn, job, job->sql[k], h, &cleanup);
		if (crc < 0)
			err_prefixf(err, "gave up, and what the failed attempt left could not be "
				    "removed either (%s; the next run removes it first)",
				    cleanup.message);
		err_release(&cleanup);
	}
	return rc;
}

static int
run_sql_job(struct db_conn *conn, const struct exec_job *job, const struct exec_opts *o,
	    const struct exec_hooks *h, struct exec_result *res, struct dbphase_error *err)
{
	struct exec_exercise ex;
	size_t i;
	int attempt, rc = 0;

	if ((rc = exec_exercise_prepare(conn, job, &ex, err)) < 0)
		return rc;
	if (job_in_one_transaction(conn, job)) {
		for (attempt = 1;; attempt++) {
			rc = sql_job_atomic(conn, job, h, &ex, err);
			if (rc == 0 || !is_retryable(err) || attempt > o->max_retries ||
			    stopped(o))
				break;
			res->retries++;
			backoff(conn, attempt, o, err);
		}
		exec_exercise_release(&ex);
		return rc;
	}
	if (!job->atomic) {
		rc = run_restartable_job(conn, job, o, h, res, err);
	} else {
		/*
		 * Statement by statement, each retried on its own: MariaDB
		 * commits every DDL statement implicitly.
		 */
		for (i = 0; i < job->n_sql && rc == 0; i++) {
			for (attempt = 1;; attempt++) {
				rc = exec_statement(conn, job, job->sql[i], h, err);
				if (rc == 0 || !is_retryable(err) || attempt > o->max_retries ||
				    stopped(o))
					break;
				res->retries++;
				backoff(conn, attempt, o, err);
			}
		}
	}
	/*
	 * A MariaDB swap takes LOCK TABLES for a few statements; if one of
	 * them failed, the session must not keep the application locked out.
	 */
	if (rc < 0 && conn->drv->backend == DB_BACKEND_MYSQL) {
		struct dbphase_error ignored = DBPHASE_ERROR_INIT;

		db_exec(conn, "UNLOCK TABLES", &ignored);
		err_release(&ignored);
	}
	if (rc == 0)
		rc = exercise_apart(conn, job, &ex, o, res, err);
	exec_exercise_release(&ex);
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
		backoff(conn, attempt, o, err);
	}
}

/* A retry that a signal cut short is an interruption, not a lock failure. */
static int
interrupted_retry(const struct exec_opts *o, int rc, struct dbphase_error *err)
{
	if (rc >= 0 || !stopped(o) || !is_retryable(err))
		return rc;
	err_prefixf(err, "stopped by a signal while waiting to retry");
	err->code = DBPHASE_EINTERRUPTED;
	return DBPHASE_EINTERRUPTED;
}

int
exec_job_run(struct db_conn *conn, const struct exec_job *job, const struct exec_opts *o,
	     const struct exec_hooks *h, struct exec_result *res, struct dbphase_error *err)
{
	double started = clock_now_ms();
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
		rc = err_setf(err, DBPHASE_EERROR, "%s: backfills run through exec_run_backfills",
			      job->id);
		break;
	default:
		rc = err_setf(err, DBPHASE_EERROR, "%s: unknown job kind", job->id);
	}
	rc = interrupted_retry(o, rc, err);
	res->seconds = (clock_now_ms() - started) / 1000.0;
	return rc;
}
