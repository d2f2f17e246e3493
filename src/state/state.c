/*
 * state/state.c - reading and writing dbphase's own tables.
 *
 * Every write here runs on the caller's connection and, where the caller
 * opened one, inside the caller's transaction: a step's record commits with
 * the step, a checkpoint with its batch.  A row that may or may not exist
 * is written with the dialect's atomic upsert (ON CONFLICT, ON DUPLICATE
 * KEY UPDATE), so that callers without the cluster lock (node commands)
 * can race.  The tables are created in one serialised step (see
 * state_ensure_tables); commands that only read never create them.
 */
#include "config.h"

#include "state/state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pwd.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/dialect.h"
#include "core/embedded.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"

extern const struct embedded_file schemas_builtin[];
extern const size_t schemas_builtin_count;

void
state_init(struct state *st, struct db_conn *conn, const char *repo,
	   const char *version_table)
{
	char host[256] = "localhost";
	const char *user = getenv("USER");
	struct passwd *pw = NULL;

	memset(st, 0, sizeof(*st));
	st->conn = conn;
	st->repo = xstrdup(repo);
	st->version_table = xstrdup(version_table ? version_table : "dbphase_version");
	/* cron and systemd run without $USER: ask the password database. */
	if (user == NULL || *user == '\0') {
		pw = getpwuid(geteuid());
		user = pw ? pw->pw_name : NULL;
	}
	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	st->who = xasprintf("%s@%s:%ld", user && *user ? user : "unknown", host, (long)getpid());
}

void
state_release(struct state *st)
{
	if (st->locked)
		state_unlock(st);
	db_close(st->own_conn);
	free(st->lock_generation);
	free(st->repo);
	free(st->version_table);
	free(st->who);
	memset(st, 0, sizeof(*st));
}

static enum db_backend
backend(const struct state *st)
{
	return st->conn->drv->backend;
}

static char *
lock_name(const struct state *st)
{
	return xasprintf("dbphase:%s", st->repo);
}

int
state_lock(struct state *st, int wait_s, struct dbphase_error *err)
{
	char *name = lock_name(st);
	double started = clock_now_ms();
	int rc;

	rc = st->conn->drv->lock(st->conn, name, wait_s < 0 ? -1 : wait_s * 1000, err);
	db_log_debug(st->conn, "cluster lock '%s' %s after %.1f ms", name,
		     rc == 0 ? "taken" : "not taken", clock_now_ms() - started);
	if (rc == DBPHASE_ELOCK_TIMEOUT)
		err_setf(err, DBPHASE_ELOCK_TIMEOUT,
			 "another dbphase holds the lock of repository '%s'; gave up after %d s "
			 "(--lock-wait)", st->repo, wait_s);
	else if (rc == 0)
		st->locked = true;
	free(name);
	return rc;
}

void
state_unlock(struct state *st)
{
	struct dbphase_error ignored = DBPHASE_ERROR_INIT;
	char *name = lock_name(st);

	if (st->conn->drv->unlock(st->conn, name, &ignored) == 0)
		db_log_debug(st->conn, "cluster lock '%s' released", name);
	st->locked = false;
	err_release(&ignored);
	free(name);
}

/*
 * The lock fence.
 *
 * The cluster lock is a session's (pg_advisory_lock, GET_LOCK): when the
 * session that holds it dies (an operator's kill, a proxy, a failover, a
 * server restart), the lock is free at once, while that run's workers -
 * other sessions - may still be writing batches.  A second dbphase that
 * takes the lock then walks the same key ranges: without more, a batch
 * would be applied twice.  So every batch is fenced by the lock:
 *
 *   1. Every new holder, right after taking the lock and before reading
 *      anything it acts on, moves the repository's generation on in
 *      dbphase_locks (state_fence_take): an UPDATE, which takes the row's
 *      exclusive lock, in a transaction of its own that commits before the
 *      holder reads the checkpoints.
 *   2. Each batch, first thing in its transaction, reads that row with a
 *      shared row lock held until the batch commits (SELECT ... FOR SHARE,
 *      LOCK IN SHARE MODE) and goes on only if the generation is still its
 *      run's and the run's session still holds the lock (state_fence_sql).
 *      The checkpoint commits with the batch.
 *
 * Take a batch B of a run whose lock a new holder H took.  A shared and an
 * exclusive lock on the same row exclude each other, so B's read and H's
 * UPDATE are ordered:
 *   - B read first: H's UPDATE waits until B has committed or rolled back,
 *     so B's rows and checkpoint are either both in or both out before H
 *     reads any checkpoint (1.): H skips what B did, or does it itself.
 *   - H's UPDATE came first: B's locking read waits for H's commit and then
 *     reads the newest version of the row (PostgreSQL re-reads a row
 *     updated meanwhile under READ COMMITTED; InnoDB's locking reads read
 *     the latest committed version whatever the isolation level), sees a
 *     generation that is not its run's, and rolls back.
 * Either way no range is applied twice, whichever connection died and
 * whenever: a batch whose COMMIT is in flight still holds its shared lock.
 * The lock check in 2. makes the first worker that starts a batch after
 * the holder's session is gone notice at once, and the run stops.  On
 * SQLite the lock lives in the process and every write transaction holds
 * the database's write lock, which orders 1. and 2. the same way.
 */
int
state_fence_take(struct state *st, struct dbphase_error *err)
{
	struct db_param p[2] = { DB_TEXT(st->repo), DB_TEXT(st->who) };
	const char *now = dialect_now_epoch_sql(backend(st));
	const char *sid = dialect_session_id_sql(backend(st));
	char *up = xasprintf("UPDATE dbphase_locks SET generation = generation + 1, "
			     "holder_session = %s, holder = $2, taken_at = %s WHERE repository = $1",
			     sid, now);
	char *in = xasprintf("INSERT INTO dbphase_locks (repository, generation, holder_session, "
			     "holder, taken_at) VALUES ($1, 1, %s, $2, %s)", sid, now);
	struct db_result *res = NULL;
	int rc, attempt;

	/* The UPDATE waits for batches in flight; a lock timeout is tried again. */
	for (attempt = 1;; attempt++) {
		if ((rc = st->conn->drv->begin(st->conn, err)) < 0)
			break;
		rc = db_query(st->conn, up, p, 2, &res, err);
		if (rc == 0 && res->affected == 0)
			rc = db_query(st->conn, in, p, 2, NULL, err);
		db_result_free(res);
		res = NULL;
		if (rc == 0)
			rc = db_query(st->conn, "SELECT generation FROM dbphase_locks "
				      "WHERE repository = $1", p, 1, &res, err);
		if (rc == 0 && (res->n_rows != 1 || db_result_value(res, 0, 0) == NULL))
			rc = err_setf(err, DBPHASE_EERROR, "no lock generation for '%s'", st->repo);
		if (rc == 0) {
			free(st->lock_generation);
			st->lock_generation = xstrdup(db_result_value(res, 0, 0));
			rc = st->conn->drv->commit(st->conn, err);
		} else {
			st->conn->drv->rollback(st->conn,
						&(struct dbphase_error)DBPHASE_ERROR_INIT);
		}
		db_result_free(res);
		res = NULL;
		if (rc != DBPHASE_ELOCK_TIMEOUT || attempt >= 5)
			break;
		err_release(err);
	}
	if (rc < 0)
		err_prefixf(err, "cannot move the lock generation of '%s' on", st->repo);
	free(up);
	free(in);
	return rc;
}

void
state_fence_sql(struct state *st, struct strbuf *sql, const char **extra, size_t *n_extra)
{
	char *name = lock_name(st);

	strbuf_addstr(sql, "SELECT CASE WHEN generation = $2 THEN 1 ELSE 0 END, CASE WHEN ");
	st->conn->drv->lock_held_sql(name, "holder_session", sql);
	strbuf_addstr(sql, " THEN 1 ELSE 0 END FROM dbphase_locks WHERE repository = $1");
	if (backend(st) == DB_BACKEND_POSTGRESQL)
		strbuf_addstr(sql, " FOR SHARE");
	else if (backend(st) == DB_BACKEND_MYSQL)
		strbuf_addstr(sql, " LOCK IN SHARE MODE");
	extra[0] = st->repo;
	extra[1] = st->lock_generation ? st->lock_generation : "0";
	*n_extra = 2;
	free(name);
}

int
state_reconnect(struct state *st, const struct db_url *url, struct dbphase_error *err)
{
	struct db_conn *conn;
	int rc = db_connect(url, &conn, err);

	if (rc < 0)
		return rc;
	/* Should the old session still live, it must not keep the lock from us. */
	if (st->locked)
		state_unlock(st);
	db_close(st->own_conn);
	st->own_conn = st->conn = conn;
	st->locked = false;
	return 0;
}

bool
state_alive(struct state *st)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_result *res = NULL;
	int rc = db_query(st->conn, "SELECT 1", NULL, 0, &res, &err);

	db_result_free(res);
	err_release(&err);
	return rc == 0;
}

int
state_tables_exist(struct state *st, bool *exist, struct dbphase_error *err)
{
	return st->conn->drv->table_exists(st->conn, st->version_table, exist, err);
}

int
state_app_table(struct state *st, char **name, struct dbphase_error *err)
{
	char **tables = NULL;
	size_t n = 0, i;
	int rc;

	*name = NULL;
	if ((rc = st->conn->drv->list_tables(st->conn, &tables, &n, err)) < 0)
		return rc;
	for (i = 0; i < n; i++) {
		if (*name == NULL && strncmp(tables[i], "dbphase_", 8) != 0 &&
		    strcmp(tables[i], st->version_table) != 0)
			*name = xstrdup(tables[i]);
		free(tables[i]);
	}
	free(tables);
	return 0;
}

/* A quoted name of one of dbphase's tables: the version table or a fixed one. */
static void
add_table(const struct state *st, struct strbuf *sb, const char *name)
{
	dialect_quote_ident(backend(st), sb, name ? name : st->version_table);
}

static int
run_schema(struct state *st, struct dbphase_error *err)
{
	char *name = xasprintf("schemas/%s.sql", db_backend_name(backend(st)));
	const struct embedded_file *f = embedded_find(schemas_builtin, schemas_builtin_count, name);
	struct strbuf stmt = STRBUF_INIT, qt = STRBUF_INIT;
	const char *p;
	int rc = 0;

	free(name);
	if (f == NULL)
		return err_setf(err, DBPHASE_EERROR, "no schema for %s", db_backend_name(backend(st)));
	add_table(st, &qt, NULL);
	for (p = f->text; *p && rc == 0;) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);

		if (!(len >= 2 && p[0] == '-' && p[1] == '-')) {
			const char *v = p, *end = p + len;

			while (v < end) {
				const char *hole = strstr(v, "{version_table}");

				if (hole == NULL || hole >= end) {
					strbuf_add(&stmt, v, (size_t)(end - v));
					break;
				}
				strbuf_add(&stmt, v, (size_t)(hole - v));
				strbuf_addstr(&stmt, qt.buf);
				v = hole + strlen("{version_table}");
			}
			strbuf_addch(&stmt, '\n');
			if (len > 0 && p[len - 1] == ';') {
				strbuf_setlen(&stmt, stmt.len - 2);
				rc = db_exec(st->conn, stmt.buf, err);
				strbuf_reset(&stmt);
			}
		}
		p += len + (eol ? 1 : 0);
	}
	strbuf_release(&stmt);
	strbuf_release(&qt);
	return rc;
}

/*
 * Serialise table creation without the cluster lock (node register must
 * not wait behind a long migrate): concurrent CREATE TABLE IF NOT EXISTS
 * collide on PostgreSQL's catalog, so there it runs in one transaction
 * under a transaction-scoped advisory lock (two-key form: apart from the
 * cluster locks' one-key space); SQLite's BEGIN IMMEDIATE takes the write
 * lock for the whole of it; MariaDB's DDL commits by itself, and each of
 * its CREATE TABLE IF NOT EXISTS is atomic under the table's metadata lock.
 */
static int
tables_begin(struct state *st, struct dbphase_error *err)
{
	int rc;

	if (backend(st) == DB_BACKEND_MYSQL)
		return 0;
	if ((rc = st->conn->drv->begin(st->conn, err)) < 0)
		return rc;
	if (backend(st) == DB_BACKEND_POSTGRESQL &&
	    (rc = db_exec(st->conn, "SELECT pg_advisory_xact_lock(1684168808, 1)", err)) < 0)
		st->conn->drv->rollback(st->conn, &(struct dbphase_error)DBPHASE_ERROR_INIT);
	return rc;
}

int
state_ensure_tables(struct state *st, struct dbphase_error *err)
{
	struct db_result *res = NULL;
	struct db_param p[2];
	char *fmt = xasprintf("%d", STATE_FORMAT), *ins;
	int rc;

	if ((rc = tables_begin(st, err)) < 0) {
		free(fmt);
		return err_prefixf(err, "cannot create dbphase's tables");
	}
	/* The format row is written once; later callers find it. */
	ins = backend(st) == DB_BACKEND_MYSQL ?
	      xstrdup("INSERT INTO dbphase_meta (name, value) VALUES ($1, $2) "
		      "ON DUPLICATE KEY UPDATE name = name") :
	      xstrdup("INSERT INTO dbphase_meta (name, value) VALUES ($1, $2) "
		      "ON CONFLICT (name) DO NOTHING");
	p[0] = DB_TEXT("format");
	p[1] = DB_TEXT(fmt);
	if ((rc = run_schema(st, err)) == 0 &&
	    (rc = db_query(st->conn, ins, p, 2, NULL, err)) == 0 &&
	    (rc = db_query(st->conn, "SELECT value FROM dbphase_meta WHERE name = $1", p, 1,
			   &res, err)) == 0 && st->conn->in_transaction)
		rc = st->conn->drv->commit(st->conn, err);
	if (rc < 0 && st->conn->in_transaction)
		st->conn->drv->rollback(st->conn, &(struct dbphase_error)DBPHASE_ERROR_INIT);
	if (rc < 0)
		err_prefixf(err, "cannot create dbphase's tables");
	else if (res->n_rows == 0 || atoi(db_result_value(res, 0, 0)) > STATE_FORMAT)
		rc = err_setf(err, DBPHASE_EUNSUPPORTED,
			      "dbphase's tables are in format %s, written by a newer dbphase; "
			      "this one knows format %d: upgrade dbphase",
			      res->n_rows ? db_result_value(res, 0, 0) : "(none)", STATE_FORMAT);
	else if (atoi(db_result_value(res, 0, 0)) < STATE_FORMAT)
		/*
		 * An older format: what it lacks, the schema above just created
		 * (format 2 added dbphase_locks).  Saying so keeps an older
		 * dbphase, which would not fence its batches, away.
		 */
		rc = db_query(st->conn, "UPDATE dbphase_meta SET value = $2 WHERE name = $1",
			      p, 2, NULL, err);
	db_result_free(res);
	free(ins);
	free(fmt);
	return rc;
}

/* dbphase's tables that every repository shares, each with a repository column. */
static const char *const shared_tables[] = {
	"dbphase_migrations", "dbphase_steps", "dbphase_progress", "dbphase_nodes",
	"dbphase_history", "dbphase_locks",
};
#define N_SHARED (sizeof(shared_tables) / sizeof(shared_tables[0]))

/* SELECT count(*) FROM table [WHERE repository = repo]. */
static int
count_rows(struct state *st, const char *table, const char *repo, long long *n,
	   struct dbphase_error *err)
{
	struct strbuf sql = STRBUF_INIT;
	struct db_param p = DB_TEXT(repo);
	struct db_result *res = NULL;
	int rc;

	strbuf_addstr(&sql, "SELECT count(*) FROM ");
	add_table(st, &sql, table);
	if (repo)
		strbuf_addstr(&sql, " WHERE repository = $1");
	rc = db_query(st->conn, sql.buf, &p, repo ? 1 : 0, &res, err);
	if (rc == 0)
		*n = strtoll(db_result_value(res, 0, 0), NULL, 10);
	db_result_free(res);
	strbuf_release(&sql);
	return rc;
}

/* The same statement on a table: "DELETE FROM t WHERE ..." or "DROP TABLE t". */
static int
on_table(struct state *st, const char *head, const char *table, const char *tail,
	 const char *repo, struct dbphase_error *err)
{
	struct strbuf sql = STRBUF_INIT;
	struct db_param p = DB_TEXT(repo);
	int rc;

	strbuf_addstr(&sql, head);
	add_table(st, &sql, table);
	strbuf_addstr(&sql, tail);
	rc = db_query(st->conn, sql.buf, &p, repo ? 1 : 0, NULL, err);
	strbuf_release(&sql);
	return rc;
}

int
state_forget(struct state *st, char **removed, struct dbphase_error *err)
{
	struct strbuf rows = STRBUF_INIT, dropped = STRBUF_INIT;
	const char *tables[N_SHARED + 1];
	bool exist[N_SHARED + 1], others_vt = false;
	long long n, others = 0;
	size_t i;
	int rc = 0;

	*removed = NULL;
	tables[0] = NULL;	/* the version table */
	for (i = 0; i < N_SHARED; i++)
		tables[i + 1] = shared_tables[i];
	for (i = 0; i <= N_SHARED && rc == 0; i++)
		rc = st->conn->drv->table_exists(st->conn, tables[i] ? tables[i] : st->version_table,
						 &exist[i], err);
	if (rc == 0)
		rc = st->conn->drv->begin(st->conn, err);
	/* This repository's rows, in one transaction. */
	for (i = 0; i <= N_SHARED && rc == 0; i++) {
		const char *name = tables[i] ? tables[i] : st->version_table;

		if (!exist[i])
			continue;
		if ((rc = count_rows(st, tables[i], st->repo, &n, err)) == 0 && n > 0) {
			strbuf_addf(&rows, "%s%lld row%s from %s", rows.len ? ", " : "", n,
				    n == 1 ? "" : "s", name);
			rc = on_table(st, "DELETE FROM ", tables[i], " WHERE repository = $1",
				      st->repo, err);
		}
	}
	if (rc == 0)
		rc = st->conn->drv->commit(st->conn, err);
	else if (st->conn->in_transaction)
		st->conn->drv->rollback(st->conn, &(struct dbphase_error)DBPHASE_ERROR_INIT);
	/* Then the tables no other repository uses. */
	if (rc == 0 && exist[0] && (rc = count_rows(st, NULL, NULL, &n, err)) == 0) {
		others_vt = n > 0;
		if (!others_vt && (rc = on_table(st, "DROP TABLE ", NULL, "", NULL, err)) == 0)
			strbuf_addf(&dropped, "%s", st->version_table);
	}
	for (i = 1; i <= N_SHARED && rc == 0; i++)
		if (exist[i] && (rc = count_rows(st, tables[i], NULL, &n, err)) == 0)
			others += n;
	/* The default version table of other repositories, when this one has its own. */
	if (rc == 0 && strcmp(st->version_table, "dbphase_version") != 0) {
		bool there;

		if ((rc = st->conn->drv->table_exists(st->conn, "dbphase_version", &there,
						      err)) == 0 && there &&
		    (rc = count_rows(st, "dbphase_version", NULL, &n, err)) == 0)
			others += n;
	}
	if (rc == 0 && others == 0 && !others_vt) {
		for (i = 1; i <= N_SHARED && rc == 0; i++) {
			if (!exist[i])
				continue;
			rc = on_table(st, "DROP TABLE ", tables[i], "", NULL, err);
			strbuf_addf(&dropped, "%s%s", dropped.len ? ", " : "", tables[i]);
		}
		if (rc == 0 && (rc = st->conn->drv->table_exists(st->conn, "dbphase_meta", &exist[0],
								 err)) == 0 && exist[0]) {
			rc = on_table(st, "DROP TABLE ", "dbphase_meta", "", NULL, err);
			strbuf_addf(&dropped, "%sdbphase_meta", dropped.len ? ", " : "");
		}
	}
	if (rc == 0)
		*removed = xasprintf("removed repository '%s' from dbphase's tables (%s); %s%s",
				     st->repo, rows.len ? rows.buf : "it had no rows",
				     dropped.len ? "dropped the tables " : "kept the tables: other "
				     "repositories still use them", dropped.len ? dropped.buf : "");
	strbuf_release(&rows);
	strbuf_release(&dropped);
	return rc;
}

int
state_now(struct state *st, int64_t *now, struct dbphase_error *err)
{
	struct db_result *res;
	char *sql = xasprintf("SELECT %s", dialect_now_epoch_sql(backend(st)));
	int rc = db_query(st->conn, sql, NULL, 0, &res, err);

	free(sql);
	if (rc < 0)
		return rc;
	*now = strtoll(db_result_value(res, 0, 0), NULL, 10);
	db_result_free(res);
	return 0;
}

int
state_read(struct state *st, struct state_versions *v, struct dbphase_error *err)
{
	struct strbuf sql = STRBUF_INIT;
	struct db_param p = DB_TEXT(st->repo);
	struct db_result *res = NULL;
	bool exist;
	int rc;

	memset(v, 0, sizeof(*v));
	if ((rc = state_tables_exist(st, &exist, err)) < 0 || !exist)
		return rc;
	strbuf_addstr(&sql, "SELECT expand_version, migrate_version, contract_version FROM ");
	add_table(st, &sql, NULL);
	strbuf_addstr(&sql, " WHERE repository = $1");
	rc = db_query(st->conn, sql.buf, &p, 1, &res, err);
	if (rc == 0 && res->n_rows > 0) {
		v->expand = strtoll(db_result_value(res, 0, 0), NULL, 10);
		v->migrate = strtoll(db_result_value(res, 0, 1), NULL, 10);
		v->contract = strtoll(db_result_value(res, 0, 2), NULL, 10);
		v->exists = true;
	}
	db_result_free(res);
	strbuf_release(&sql);
	return rc;
}

/*
 * Finish "INSERT INTO t (...) VALUES (...)" in sql as an atomic upsert: on
 * a conflict over the primary key keys ("a, b"), the columns in set take
 * the values the insert would have written.
 */
static void
add_on_conflict(const struct state *st, struct strbuf *sql, const char *keys,
		const char *const *set, size_t n_set)
{
	size_t i;

	if (backend(st) == DB_BACKEND_MYSQL)
		strbuf_addstr(sql, " ON DUPLICATE KEY UPDATE ");
	else
		strbuf_addf(sql, " ON CONFLICT (%s) DO UPDATE SET ", keys);
	for (i = 0; i < n_set; i++)
		strbuf_addf(sql, backend(st) == DB_BACKEND_MYSQL ? "%s%s = VALUES(%s)" :
			    "%s%s = excluded.%s", i ? ", " : "", set[i], set[i]);
}

int
state_write(struct state *st, const struct state_versions *v, struct dbphase_error *err)
{
	static const char *const set[] = { "expand_version", "migrate_version",
					   "contract_version", "updated_at" };
	struct strbuf sql = STRBUF_INIT;
	struct db_param p[4] = { DB_TEXT(st->repo), DB_INT(v->expand), DB_INT(v->migrate),
				 DB_INT(v->contract) };
	int rc;

	strbuf_addstr(&sql, "INSERT INTO ");
	add_table(st, &sql, NULL);
	strbuf_addf(&sql, " (repository, expand_version, migrate_version, contract_version, "
		    "updated_at) VALUES ($1, $2, $3, $4, %s)", dialect_now_epoch_sql(backend(st)));
	add_on_conflict(st, &sql, "repository", set, 4);
	rc = db_query(st->conn, sql.buf, p, 4, NULL, err);
	strbuf_release(&sql);
	return rc;
}

int
state_step_done(struct state *st, const char *step_id, bool *done, struct dbphase_error *err)
{
	struct db_param p[2] = { DB_TEXT(st->repo), DB_TEXT(step_id) };
	struct db_result *res;
	int rc = db_query(st->conn, "SELECT 1 FROM dbphase_steps WHERE repository = $1 "
			  "AND step_id = $2", p, 2, &res, err);

	if (rc < 0)
		return rc;
	*done = res->n_rows > 0;
	db_result_free(res);
	return 0;
}

int
state_step_record(struct state *st, const char *step_id, struct dbphase_error *err)
{
	struct db_param p[2] = { DB_TEXT(st->repo), DB_TEXT(step_id) };
	char *sql = xasprintf("INSERT INTO dbphase_steps (repository, step_id, done_at) "
			      "VALUES ($1, $2, %s)", dialect_now_epoch_sql(backend(st)));
	int rc = db_query(st->conn, sql, p, 2, NULL, err);

	free(sql);
	return rc;
}

int
state_steps_forget(struct state *st, int64_t version, const char *phase,
		   struct dbphase_error *err)
{
	char *pattern = xasprintf("v%03lld.%s.%%", (long long)version, phase);
	struct db_param p[2] = { DB_TEXT(st->repo), DB_TEXT(pattern) };
	int rc;

	rc = db_query(st->conn, "DELETE FROM dbphase_steps WHERE repository = $1 "
		      "AND step_id LIKE $2", p, 2, NULL, err);
	if (rc == 0)
		rc = db_query(st->conn, "DELETE FROM dbphase_progress WHERE repository = $1 "
			      "AND step_id LIKE $2", p, 2, NULL, err);
	free(pattern);
	return rc;
}

int
state_step_forget(struct state *st, const char *step_id, struct dbphase_error *err)
{
	struct db_param p[2] = { DB_TEXT(st->repo), DB_TEXT(step_id) };
	int rc = db_query(st->conn, "DELETE FROM dbphase_steps WHERE repository = $1 "
			  "AND step_id = $2", p, 2, NULL, err);

	if (rc == 0)
		rc = db_query(st->conn, "DELETE FROM dbphase_progress WHERE repository = $1 "
			      "AND step_id = $2", p, 2, NULL, err);
	return rc;
}

int
state_steps_list(struct state *st, char ***ids, size_t *n, struct dbphase_error *err)
{
	struct db_param p = DB_TEXT(st->repo);
	struct db_result *res;
	size_t i;
	int rc;

	*ids = NULL;
	*n = 0;
	rc = db_query(st->conn, "SELECT step_id FROM dbphase_steps WHERE repository = $1 "
		      "ORDER BY step_id", &p, 1, &res, err);
	if (rc < 0)
		return rc;
	*ids = xcalloc(res->n_rows ? res->n_rows : 1, sizeof(**ids));
	for (i = 0; i < res->n_rows; i++)
		(*ids)[i] = xstrdup(db_result_value(res, i, 0));
	*n = res->n_rows;
	db_result_free(res);
	return 0;
}

int
state_checksums_list(struct state *st, int64_t **versions, char ***sums, size_t *n,
		     struct dbphase_error *err)
{
	struct db_param p = DB_TEXT(st->repo);
	struct db_result *res;
	size_t i;
	int rc;

	*versions = NULL;
	*sums = NULL;
	*n = 0;
	rc = db_query(st->conn, "SELECT version, checksum FROM dbphase_migrations "
		      "WHERE repository = $1 ORDER BY version", &p, 1, &res, err);
	if (rc < 0)
		return rc;
	*versions = xcalloc(res->n_rows ? res->n_rows : 1, sizeof(**versions));
	*sums = xcalloc(res->n_rows ? res->n_rows : 1, sizeof(**sums));
	for (i = 0; i < res->n_rows; i++) {
		(*versions)[i] = strtoll(db_result_value(res, i, 0), NULL, 10);
		(*sums)[i] = xstrdup(db_result_value(res, i, 1));
	}
	*n = res->n_rows;
	db_result_free(res);
	return 0;
}

int
state_checksum_forget(struct state *st, int64_t version, struct dbphase_error *err)
{
	struct db_param p[2] = { DB_TEXT(st->repo), DB_INT(version) };

	return db_query(st->conn, "DELETE FROM dbphase_migrations WHERE repository = $1 "
			"AND version = $2", p, 2, NULL, err);
}

int
state_checksum_get(struct state *st, int64_t version, char **sum, struct dbphase_error *err)
{
	struct db_param p[2] = { DB_TEXT(st->repo), DB_INT(version) };
	struct db_result *res;
	int rc = db_query(st->conn, "SELECT checksum FROM dbphase_migrations WHERE "
			  "repository = $1 AND version = $2", p, 2, &res, err);

	*sum = NULL;
	if (rc < 0)
		return rc;
	if (res->n_rows > 0)
		*sum = xstrdup_or_null(db_result_value(res, 0, 0));
	db_result_free(res);
	return 0;
}

int
state_checksum_put(struct state *st, int64_t version, const char *sum,
		   struct dbphase_error *err)
{
	static const char *const set[] = { "checksum", "recorded_at" };
	struct db_param p[3] = { DB_TEXT(st->repo), DB_INT(version), DB_TEXT(sum) };
	struct strbuf sql = STRBUF_INIT;
	int rc;

	strbuf_addf(&sql, "INSERT INTO dbphase_migrations (repository, version, checksum, "
		    "recorded_at) VALUES ($1, $2, $3, %s)", dialect_now_epoch_sql(backend(st)));
	add_on_conflict(st, &sql, "repository, version", set, 2);
	rc = db_query(st->conn, sql.buf, p, 3, NULL, err);
	strbuf_release(&sql);
	return rc;
}

int
state_history_add(struct state *st, const char *command, const char *from_state,
		  const char *to_state, const char *result, double seconds,
		  const char *detail, struct dbphase_error *err)
{
	char secs[32];
	struct db_param p[8];
	char *sql;
	int rc;

	snprintf(secs, sizeof(secs), "%.3f", seconds);
	p[0] = DB_TEXT(st->repo);
	p[1] = DB_TEXT(st->who);
	p[2] = DB_TEXT(command);
	p[3] = from_state ? DB_TEXT(from_state) : DB_NULL;
	p[4] = to_state ? DB_TEXT(to_state) : DB_NULL;
	p[5] = DB_TEXT(result);
	p[6] = DB_TEXT(secs);
	p[7] = detail ? DB_TEXT(detail) : DB_NULL;
	sql = xasprintf("INSERT INTO dbphase_history (repository, at, who, command, from_state, "
			"to_state, result, seconds, detail) VALUES ($1, %s, $2, $3, $4, $5, $6, "
			"$7, $8)", dialect_now_epoch_sql(backend(st)));
	if (backend(st) == DB_BACKEND_POSTGRESQL) {
		char *cast = xasprintf("INSERT INTO dbphase_history (repository, at, who, command, "
				       "from_state, to_state, result, seconds, detail) VALUES ($1, %s, "
				       "$2, $3, $4, $5, $6, CAST($7 AS double precision), $8)",
				       dialect_now_epoch_sql(backend(st)));
		free(sql);
		sql = cast;
	}
	rc = db_query(st->conn, sql, p, 8, NULL, err);
	free(sql);
	return rc;
}

int
state_history_list(struct state *st, size_t n, struct state_history **out, size_t *n_out,
		   struct dbphase_error *err)
{
	struct db_param p[2] = { DB_TEXT(st->repo), DB_INT((int64_t)n) };
	struct db_result *res;
	size_t i;
	int rc;

	*out = NULL;
	*n_out = 0;
	rc = db_query(st->conn, "SELECT id, at, who, command, from_state, to_state, result, "
		      "seconds, detail FROM dbphase_history WHERE repository = $1 "
		      "ORDER BY id DESC LIMIT $2", p, 2, &res, err);
	if (rc < 0)
		return rc;
	*out = xcalloc(res->n_rows ? res->n_rows : 1, sizeof(**out));
	for (i = 0; i < res->n_rows; i++) {
		struct state_history *h = &(*out)[i];
		const char *secs = db_result_value(res, i, 7);

		h->id = strtoll(db_result_value(res, i, 0), NULL, 10);
		h->at = strtoll(db_result_value(res, i, 1), NULL, 10);
		h->who = xstrdup_or_null(db_result_value(res, i, 2));
		h->command = xstrdup_or_null(db_result_value(res, i, 3));
		h->from_state = xstrdup_or_null(db_result_value(res, i, 4));
		h->to_state = xstrdup_or_null(db_result_value(res, i, 5));
		h->result = xstrdup_or_null(db_result_value(res, i, 6));
		h->seconds = secs ? strtod(secs, NULL) : 0;
		h->detail = xstrdup_or_null(db_result_value(res, i, 8));
	}
	*n_out = res->n_rows;
	db_result_free(res);
	return 0;
}

void
state_history_free(struct state_history *h, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(h[i].who);
		free(h[i].command);
		free(h[i].from_state);
		free(h[i].to_state);
		free(h[i].result);
		free(h[i].detail);
	}
	free(h);
}

/* Whether the node registry exists: commands that only read never create it. */
static int
nodes_exist(struct state *st, bool *exist, struct dbphase_error *err)
{
	return st->conn->drv->table_exists(st->conn, "dbphase_nodes", exist, err);
}

int
state_node_register(struct state *st, const char *name, int64_t schema_version,
		    struct dbphase_error *err)
{
	static const char *const set[] = { "schema_version", "heartbeat_at" };
	struct db_param p[3] = { DB_TEXT(name), DB_TEXT(st->repo), DB_INT(schema_version) };
	const char *now = dialect_now_epoch_sql(backend(st));
	struct strbuf sql = STRBUF_INIT;
	int rc;

	strbuf_addf(&sql, "INSERT INTO dbphase_nodes (name, repository, schema_version, "
		    "registered_at, heartbeat_at) VALUES ($1, $2, $3, %s, %s)", now, now);
	add_on_conflict(st, &sql, "repository, name", set, 2);
	rc = db_query(st->conn, sql.buf, p, 3, NULL, err);
	strbuf_release(&sql);
	return rc;
}

static int
not_registered(struct state *st, const char *name, const char *hint, struct dbphase_error *err)
{
	return err_setf(err, DBPHASE_ENOTFOUND, "node '%s' is not registered for '%s'%s", name,
			st->repo, hint);
}

int
state_node_heartbeat(struct state *st, const char *name, struct dbphase_error *err)
{
	static const char hint[] = "; run node register first";
	struct db_param p[2] = { DB_TEXT(name), DB_TEXT(st->repo) };
	struct db_result *res = NULL;
	char *sql = xasprintf("UPDATE dbphase_nodes SET heartbeat_at = %s WHERE name = $1 "
			      "AND repository = $2", dialect_now_epoch_sql(backend(st)));
	bool exist;
	int rc = nodes_exist(st, &exist, err);

	/* Affected rows are the rows matched on every backend (CLIENT_FOUND_ROWS). */
	if (rc == 0 && exist)
		rc = db_query(st->conn, sql, p, 2, &res, err);
	if (rc == 0 && (!exist || res->affected == 0))
		rc = not_registered(st, name, hint, err);
	db_result_free(res);
	free(sql);
	return rc;
}

int
state_node_retire(struct state *st, const char *name, struct dbphase_error *err)
{
	struct db_param p[2] = { DB_TEXT(name), DB_TEXT(st->repo) };
	struct db_result *res = NULL;
	bool exist;
	int rc = nodes_exist(st, &exist, err);

	if (rc == 0 && exist)
		rc = db_query(st->conn, "DELETE FROM dbphase_nodes WHERE name = $1 AND "
			      "repository = $2", p, 2, &res, err);
	if (rc == 0 && (!exist || res->affected == 0))
		rc = not_registered(st, name, "", err);
	db_result_free(res);
	return rc;
}

int
state_node_list(struct state *st, struct state_node **out, size_t *n, struct dbphase_error *err)
{
	struct db_param p = DB_TEXT(st->repo);
	struct db_result *res;
	char *sql = xasprintf("SELECT name, repository, schema_version, registered_at, "
			      "heartbeat_at, %s - heartbeat_at FROM dbphase_nodes "
			      "WHERE repository = $1 ORDER BY name", dialect_now_epoch_sql(backend(st)));
	size_t i;
	bool exist;
	int rc = nodes_exist(st, &exist, err);

	*out = NULL;
	*n = 0;
	if (rc == 0 && !exist) {
		free(sql);
		*out = xcalloc(1, sizeof(**out));
		return 0;
	}
	if (rc == 0)
		rc = db_query(st->conn, sql, &p, 1, &res, err);
	free(sql);
	if (rc < 0)
		return rc;
	*out = xcalloc(res->n_rows ? res->n_rows : 1, sizeof(**out));
	for (i = 0; i < res->n_rows; i++) {
		struct state_node *nd = &(*out)[i];

		nd->name = xstrdup(db_result_value(res, i, 0));
		nd->repository = xstrdup(db_result_value(res, i, 1));
		nd->schema_version = strtoll(db_result_value(res, i, 2), NULL, 10);
		nd->registered_at = strtoll(db_result_value(res, i, 3), NULL, 10);
		nd->heartbeat_at = strtoll(db_result_value(res, i, 4), NULL, 10);
		nd->age_s = strtoll(db_result_value(res, i, 5), NULL, 10);
	}
	*n = res->n_rows;
	db_result_free(res);
	return 0;
}

void
state_nodes_free(struct state_node *nodes, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(nodes[i].name);
		free(nodes[i].repository);
	}
	free(nodes);
}

int
state_progress_list(struct state *st, struct state_progress **out, size_t *n,
		    struct dbphase_error *err)
{
	struct db_param p = DB_TEXT(st->repo);
	struct db_result *res;
	size_t i, j;
	int rc;

	*out = NULL;
	*n = 0;
	rc = db_query(st->conn, "SELECT step_id, rows_done, rows_total, done "
		      "FROM dbphase_progress WHERE repository = $1 ORDER BY step_id, chunk",
		      &p, 1, &res, err);
	if (rc < 0)
		return rc;
	*out = xcalloc(res->n_rows ? res->n_rows : 1, sizeof(**out));
	for (i = 0; i < res->n_rows; i = j) {
		struct state_progress *pr = &(*out)[(*n)++];
		const char *step = db_result_value(res, i, 0);
		const char *total = db_result_value(res, i, 2);

		pr->step_id = xstrdup(step);
		pr->rows_total = total ? strtoll(total, NULL, 10) : -1;
		pr->finished = true;
		for (j = i; j < res->n_rows && strcmp(db_result_value(res, j, 0), step) == 0; j++) {
			pr->rows_done += strtoll(db_result_value(res, j, 1), NULL, 10);
			pr->finished = pr->finished && db_value_true(db_result_value(res, j, 3));
			pr->chunks++;
		}
	}
	db_result_free(res);
	return 0;
}

void
state_progress_free(struct state_progress *progress, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(progress[i].step_id);
	free(progress);
}

char *
state_versions_text(const struct state_versions *v)
{
	return xasprintf("%lld/%lld/%lld", (long long)v->expand, (long long)v->migrate,
			 (long long)v->contract);
}

int
state_chunks_load(struct state *st, const char *step_id, struct exec_chunk **chunks,
		  size_t *n, struct dbphase_error *err)
{
	struct db_param p[2] = { DB_TEXT(st->repo), DB_TEXT(step_id) };
	struct db_result *res;
	size_t i;
	int rc;

	*chunks = NULL;
	*n = 0;
	rc = db_query(st->conn, "SELECT chunk, last_key, chunk_end, rows_done, done "
		      "FROM dbphase_progress WHERE repository = $1 AND step_id = $2 "
		      "ORDER BY chunk", p, 2, &res, err);
	if (rc < 0)
		return rc;
	/* No rows, no array: the executor then makes (and owns) the first split. */
	*chunks = res->n_rows ? xcalloc(res->n_rows, sizeof(**chunks)) : NULL;
	for (i = 0; i < res->n_rows; i++) {
		struct exec_chunk *c = &(*chunks)[i];
		const char *done = db_result_value(res, i, 4);

		c->index = atoi(db_result_value(res, i, 0));
		c->last_key = xstrdup_or_null(db_result_value(res, i, 1));
		c->end_key = xstrdup_or_null(db_result_value(res, i, 2));
		c->rows_done = strtoull(db_result_value(res, i, 3), NULL, 10);
		c->done = db_value_true(done);
	}
	*n = res->n_rows;
	db_result_free(res);
	return 0;
}

int
state_chunks_save(struct state *st, const char *step_id, const struct exec_chunk *chunks,
		  size_t n, uint64_t rows_total, struct dbphase_error *err)
{
	const char *no = backend(st) == DB_BACKEND_POSTGRESQL ? "false" : "0";
	char *sql = xasprintf("INSERT INTO dbphase_progress (repository, step_id, chunk, last_key, "
			      "chunk_end, rows_done, rows_total, done, updated_at) "
			      "VALUES ($1, $2, $3, $4, $5, 0, $6, %s, %s)", no,
			      dialect_now_epoch_sql(backend(st)));
	size_t i;
	int rc = st->conn->drv->begin(st->conn, err);

	for (i = 0; i < n && rc == 0; i++) {
		struct db_param p[6] = {
			DB_TEXT(st->repo), DB_TEXT(step_id), DB_INT(chunks[i].index),
			chunks[i].last_key ? DB_TEXT(chunks[i].last_key) : DB_NULL,
			chunks[i].end_key ? DB_TEXT(chunks[i].end_key) : DB_NULL,
			DB_INT((int64_t)rows_total),
		};

		rc = db_query(st->conn, sql, p, 6, NULL, err);
	}
	if (rc == 0)
		rc = st->conn->drv->commit(st->conn, err);
	else
		st->conn->drv->rollback(st->conn, &(struct dbphase_error)DBPHASE_ERROR_INIT);
	free(sql);
	return rc;
}

void
state_checkpoint_sql(struct state *st, struct strbuf *sql)
{
	strbuf_addf(sql, "UPDATE dbphase_progress SET last_key = $1, rows_done = $2, "
		    "done = ($3 = 1), updated_at = %s WHERE chunk = $4 AND repository = $5 "
		    "AND step_id = $6", dialect_now_epoch_sql(backend(st)));
}

int
state_chunk_reload(struct state *st, struct db_conn *conn, const char *step_id, int chunk,
		   struct exec_chunk *out, struct dbphase_error *err)
{
	struct db_param p[3] = { DB_TEXT(st->repo), DB_TEXT(step_id), DB_INT(chunk) };
	/* SQLite has no FOR UPDATE: its write lock already orders transactions. */
	const char *lock = conn->drv->backend == DB_BACKEND_SQLITE ? "" : " FOR UPDATE";
	char *sql = xasprintf("SELECT last_key, rows_done, done FROM dbphase_progress "
			      "WHERE repository = $1 AND step_id = $2 AND chunk = $3%s", lock);
	struct db_result *res = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	out->index = chunk;
	if ((rc = conn->drv->begin(conn, err)) < 0)
		goto out;
	rc = db_query(conn, sql, p, 3, &res, err);
	if (rc == 0 && res->n_rows == 1) {
		out->last_key = xstrdup_or_null(db_result_value(res, 0, 0));
		out->rows_done = strtoull(db_result_value(res, 0, 1), NULL, 10);
		out->done = db_value_true(db_result_value(res, 0, 2));
	} else if (rc == 0) {
		rc = err_setf(err, DBPHASE_ENOTFOUND, "no checkpoint for %s chunk %d", step_id, chunk);
	}
	if (rc == 0)
		rc = conn->drv->commit(conn, err);
	else
		conn->drv->rollback(conn, &(struct dbphase_error)DBPHASE_ERROR_INIT);
out:
	db_result_free(res);
	free(sql);
	return rc;
}
