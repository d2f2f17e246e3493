/*
 * tests/integration/test-driver.c - what every driver must do, checked the
 * same way on SQLite, PostgreSQL and MariaDB against real servers.
 */
#include "config.h"

#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dialect.h"
#include "core/xmalloc.h"
#include "testlib.h"

struct fixture {
	struct test_db db;
	struct db_conn *conn;
};

static void
setup(struct fixture *f, enum db_backend backend)
{
	test_db_create(backend, &f->db);
	f->conn = test_db_connect(&f->db);
}

static void
teardown(struct fixture *f)
{
	db_close(f->conn);
	test_db_drop(&f->db);
}

static const char *
bname(const struct fixture *f)
{
	return f->conn->drv->name;
}

/* CREATE TABLE in a dialect-neutral subset. */
static void
make_table(struct fixture *f, const char *name)
{
	char *sql = xasprintf("CREATE TABLE %s (id integer PRIMARY KEY, name varchar(100), "
			      "n integer NOT NULL DEFAULT 7)", name);

	test_exec(f->conn, sql);
	free(sql);
}

BACKEND_TEST(driver, connects_and_reports_version)
{
	struct fixture f;

	setup(&f, *backend);
	cr_assert_eq(f.conn->drv->backend, *backend);
	cr_assert_gt(f.conn->server_version, 0, "[%s] no server version", bname(&f));
	cr_assert_not_null(f.conn->server_version_text);
	teardown(&f);
}

BACKEND_TEST(driver, query_binds_parameters)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_param p[4] = { DB_INT(1), DB_TEXT("it's \"quoted\" \\ ok"), DB_NULL, DB_INT(41) };
	struct db_result *res;
	struct fixture f;

	setup(&f, *backend);
	make_table(&f, "t");
	cr_assert_eq(db_query(f.conn, "INSERT INTO t (id, name) VALUES ($1, $2)", p, 2, &res, &err),
		     0, "[%s] %s", bname(&f), err.message);
	cr_assert_eq(res->affected, 1, "[%s] affected %llu", bname(&f),
		     (unsigned long long)res->affected);
	db_result_free(res);
	/* Parameters out of order, and one used twice. */
	cr_assert_eq(db_query(f.conn, "INSERT INTO t (id, name, n) VALUES ($2 + 1, $1, $2)",
			      p + 2, 2, NULL, &err), 0, "[%s] %s", bname(&f), err.message);
	cr_assert_eq(db_query(f.conn, "SELECT id, name, n FROM t ORDER BY id", NULL, 0, &res, &err),
		     0, "[%s] %s", bname(&f), err.message);
	cr_assert_eq(res->n_rows, 2);
	cr_assert_eq(res->n_cols, 3);
	cr_assert_str_eq(res->col_names[1], "name");
	cr_assert_str_eq(db_result_value(res, 0, 0), "1");
	cr_assert_str_eq(db_result_value(res, 0, 1), "it's \"quoted\" \\ ok", "[%s] got %s",
			 bname(&f), db_result_value(res, 0, 1));
	cr_assert_str_eq(db_result_value(res, 0, 2), "7");
	cr_assert_str_eq(db_result_value(res, 1, 0), "42");
	cr_assert_null(db_result_value(res, 1, 1), "[%s] NULL came back as a value", bname(&f));
	cr_assert_str_eq(db_result_value(res, 1, 2), "41");
	db_result_free(res);
	/* A $n inside a string literal is not a parameter. */
	cr_assert_eq(db_query(f.conn, "SELECT '$1', name FROM t WHERE id = $1", p, 1, &res, &err),
		     0, "[%s] %s", bname(&f), err.message);
	cr_assert_eq(res->n_rows, 1);
	cr_assert_str_eq(db_result_value(res, 0, 0), "$1");
	db_result_free(res);
	teardown(&f);
}

BACKEND_TEST(driver, transactions_commit_and_roll_back)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct fixture f;
	char *v;

	setup(&f, *backend);
	make_table(&f, "t");
	cr_assert_eq(f.conn->drv->begin(f.conn, &err), 0, "%s", err.message);
	cr_assert(f.conn->in_transaction);
	test_exec(f.conn, "INSERT INTO t (id) VALUES (1)");
	cr_assert_eq(f.conn->drv->rollback(f.conn, &err), 0, "%s", err.message);
	cr_assert(!f.conn->in_transaction);
	v = test_query_value(f.conn, "SELECT count(*) FROM t");
	cr_assert_str_eq(v, "0", "[%s] rollback kept the row", bname(&f));
	free(v);
	cr_assert_eq(f.conn->drv->begin(f.conn, &err), 0, "%s", err.message);
	test_exec(f.conn, "INSERT INTO t (id) VALUES (2)");
	cr_assert_eq(f.conn->drv->commit(f.conn, &err), 0, "%s", err.message);
	v = test_query_value(f.conn, "SELECT count(*) FROM t");
	cr_assert_str_eq(v, "1");
	free(v);
	teardown(&f);
}

BACKEND_TEST(driver, errors_carry_codes)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct fixture f;
	int rc;

	setup(&f, *backend);
	make_table(&f, "t");
	test_exec(f.conn, "INSERT INTO t (id) VALUES (1)");
	rc = db_exec(f.conn, "INSERT INTO t (id) VALUES (1)", &err);
	cr_assert_eq(rc, DBPHASE_EDB, "[%s] duplicate key gave %d", bname(&f), rc);
	cr_assert_not_null(err.message);
	cr_assert(!err.retryable, "[%s] a duplicate key is not transient", bname(&f));
	if (*backend != DB_BACKEND_SQLITE)
		cr_assert(err.sqlstate[0] == '2' && err.sqlstate[1] == '3',
			  "[%s] SQLSTATE %s is not class 23", bname(&f), err.sqlstate);
	err_release(&err);
	rc = db_exec(f.conn, "SELECT * FROM no_such_table", &err);
	cr_assert_eq(rc, DBPHASE_EDB);
	err_release(&err);
	teardown(&f);
}

BACKEND_TEST(driver, lock_times_out_and_is_exclusive)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct fixture f;
	struct db_conn *other;
	char *name, *name2;
	int rc;

	setup(&f, *backend);
	/* Server-wide lock names: made unique by the test's database. */
	name = xasprintf("dbphase:%s", f.db.name);
	name2 = xasprintf("dbphase:%s:2", f.db.name);
	other = test_db_connect(&f.db);
	cr_assert_eq(f.conn->drv->lock(f.conn, name, 1000, &err), 0, "%s", err.message);
	rc = other->drv->lock(other, name, 200, &err);
	cr_assert_eq(rc, DBPHASE_ELOCK_TIMEOUT, "[%s] second holder got %d", bname(&f), rc);
	err_release(&err);
	/* Another name is another lock. */
	cr_assert_eq(other->drv->lock(other, name2, 200, &err), 0, "%s", err.message);
	cr_assert_eq(f.conn->drv->unlock(f.conn, name, &err), 0, "%s", err.message);
	cr_assert_eq(other->drv->lock(other, name, 1000, &err), 0,
		     "[%s] lock not free after unlock: %s", bname(&f), err.message);
	db_close(other);
	/* Closing a connection releases its locks. */
	cr_assert_eq(f.conn->drv->lock(f.conn, name, 2000, &err), 0,
		     "[%s] lock not released by close: %s", bname(&f), err.message);
	free(name);
	free(name2);
	teardown(&f);
}

BACKEND_TEST(driver, introspects_tables_columns_indexes_triggers)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_table_info info;
	const struct db_column_info *col;
	const struct db_index_info *ix;
	struct fixture f;
	char **names;
	size_t n, i;
	bool exists;

	setup(&f, *backend);
	make_table(&f, "things");
	test_exec(f.conn, "CREATE UNIQUE INDEX ux_things_name ON things (name)");
	switch (*backend) {
	case DB_BACKEND_SQLITE:
		test_exec(f.conn, "CREATE TRIGGER trg_things AFTER INSERT ON things BEGIN SELECT 1; END");
		break;
	case DB_BACKEND_POSTGRESQL:
		test_exec(f.conn, "CREATE FUNCTION f_things() RETURNS trigger LANGUAGE plpgsql AS "
			  "$$ BEGIN RETURN NEW; END $$");
		test_exec(f.conn, "CREATE TRIGGER trg_things BEFORE INSERT ON things FOR EACH ROW "
			  "EXECUTE FUNCTION f_things()");
		break;
	case DB_BACKEND_MYSQL:
		test_exec(f.conn, "CREATE TRIGGER trg_things BEFORE INSERT ON things FOR EACH ROW "
			  "SET NEW.n = NEW.n");
		break;
	}
	cr_assert_eq(f.conn->drv->table_exists(f.conn, "things", &exists, &err), 0, "%s", err.message);
	cr_assert(exists);
	cr_assert_eq(f.conn->drv->table_exists(f.conn, "nothing", &exists, &err), 0, "%s", err.message);
	cr_assert(!exists);
	cr_assert_eq(f.conn->drv->list_tables(f.conn, &names, &n, &err), 0, "%s", err.message);
	cr_assert_eq(n, 1, "[%s] %zu tables", bname(&f), n);
	cr_assert_str_eq(names[0], "things");
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	cr_assert_eq(f.conn->drv->describe_table(f.conn, "things", &info, &err), 0, "%s", err.message);
	cr_assert_eq(info.n_columns, 3);
	cr_assert_str_eq(info.columns[0].name, "id");
	cr_assert(info.columns[0].primary_key);
	col = db_table_info_column(&info, "name");
	cr_assert_not_null(col);
	cr_assert(col->nullable);
	cr_assert(strstr(col->type, "char") != NULL, "[%s] type %s", bname(&f), col->type);
	col = db_table_info_column(&info, "n");
	cr_assert(!col->nullable);
	cr_assert_not_null(col->default_expr, "[%s] default of n missing", bname(&f));
	cr_assert(strstr(col->default_expr, "7") != NULL);
	ix = db_table_info_index(&info, "ux_things_name");
	cr_assert_not_null(ix, "[%s] index missing", bname(&f));
	cr_assert(ix->unique);
	cr_assert(ix->valid);
	cr_assert_eq(ix->n_columns, 1);
	cr_assert_str_eq(ix->columns[0], "name");
	cr_assert_not_null(db_table_info_trigger(&info, "trg_things"), "[%s] trigger missing",
			   bname(&f));
	db_table_info_release(&info);
	cr_assert_eq(f.conn->drv->describe_table(f.conn, "nothing", &info, &err), DBPHASE_ENOTFOUND,
		     "[%s] describe of a missing table", bname(&f));
	err_release(&err);
	teardown(&f);
}

/* Drive the asynchronous path to completion with poll(2). */
static int
async_run(struct db_conn *c, const char *sql, const struct db_param *p, size_t n,
	  struct db_result **res, struct dbphase_error *err)
{
	int want = 0, rc, fd = c->drv->socket(c);

	if ((rc = c->drv->send(c, sql, p, n, &want, err)) < 0)
		return rc;
	for (;;) {
		if (fd >= 0 && want) {
			struct pollfd pfd = { .fd = fd, .events = 0 };
			int timeout = (want & DB_WANT_TIMEOUT) ? c->drv->timeout_ms(c) : -1;

			if (want & DB_WANT_READ)
				pfd.events |= POLLIN;
			if (want & DB_WANT_WRITE)
				pfd.events |= POLLOUT;
			poll(&pfd, 1, timeout);
		}
		rc = c->drv->consume(c, &want, err);
		if (rc <= 0)
			break;
	}
	if (rc < 0)
		return rc;
	return c->drv->take(c, res, err);
}

BACKEND_TEST(driver, async_path_runs_statements)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_param p[2] = { DB_INT(5), DB_TEXT("five") };
	struct db_result *res = NULL;
	struct fixture f;
	int i;

	setup(&f, *backend);
	make_table(&f, "t");
	for (i = 0; i < 3; i++) {
		cr_assert_eq(async_run(f.conn, "INSERT INTO t (id, name) VALUES ($1 + " "0, $2)", p, 2,
				       &res, &err), i == 0 ? 0 : DBPHASE_EDB,
			     "[%s] async insert %d: %s", bname(&f), i, err.message);
		db_result_free(res);
		res = NULL;
		err_release(&err);
	}
	cr_assert_eq(async_run(f.conn, "SELECT name FROM t WHERE id = $1", p, 1, &res, &err), 0,
		     "[%s] %s", bname(&f), err.message);
	cr_assert_eq(res->n_rows, 1);
	cr_assert_str_eq(db_result_value(res, 0, 0), "five");
	db_result_free(res);
	teardown(&f);
}

BACKEND_TEST(driver, quoting_round_trips_odd_names)
{
	static const char *const odd[] = { "Mixed Case", "with\"quote", "with`tick", "sel'ect" };
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct fixture f;
	size_t i;

	setup(&f, *backend);
	for (i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		struct strbuf sql = STRBUF_INIT;
		struct db_table_info info;

		strbuf_addstr(&sql, "CREATE TABLE ");
		f.conn->drv->quote_ident(&sql, odd[i]);
		strbuf_addstr(&sql, " (");
		f.conn->drv->quote_ident(&sql, odd[i]);
		strbuf_addstr(&sql, " integer)");
		test_exec(f.conn, sql.buf);
		cr_assert_eq(f.conn->drv->describe_table(f.conn, odd[i], &info, &err), 0,
			     "[%s] %s: %s", bname(&f), odd[i], err.message);
		cr_assert_str_eq(info.columns[0].name, odd[i]);
		db_table_info_release(&info);
		strbuf_release(&sql);
	}
	{
		struct strbuf sql = STRBUF_INIT;
		char *v;

		strbuf_addstr(&sql, "SELECT ");
		f.conn->drv->quote_literal(&sql, "it's a \\ back'slash");
		v = test_query_value(f.conn, sql.buf);
		cr_assert_str_eq(v, "it's a \\ back'slash", "[%s] literal came back as %s", bname(&f), v);
		free(v);
		strbuf_release(&sql);
	}
	teardown(&f);
}

/* The session holds what dialect_lock_timeout_sql says, which `plan --sql` prints. */
BACKEND_TEST(driver, lock_timeout_is_what_plan_prints)
{
	static const char *const show[] = {
		[DB_BACKEND_SQLITE] = "PRAGMA busy_timeout",
		[DB_BACKEND_POSTGRESQL] = "SELECT current_setting('lock_timeout')",
		[DB_BACKEND_MYSQL] = "SELECT CONCAT(@@SESSION.lock_wait_timeout, ' ', "
				     "@@SESSION.innodb_lock_wait_timeout)",
	};
	static const char *const want[] = {
		[DB_BACKEND_SQLITE] = "1500",
		[DB_BACKEND_POSTGRESQL] = "1500ms",
		[DB_BACKEND_MYSQL] = "2 2",
	};
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct fixture f;
	char *v, *sql;

	setup(&f, *backend);
	cr_assert_eq(f.conn->drv->set_lock_timeout(f.conn, 1500, &err), 0, "%s", err.message);
	v = test_query_value(f.conn, show[*backend]);
	cr_assert_str_eq(v, want[*backend], "[%s] lock timeout %s", bname(&f), v);
	free(v);
	/* The printed statement sets the same on a fresh session. */
	db_close(f.conn);
	f.conn = test_db_connect(&f.db);
	sql = dialect_lock_timeout_sql(*backend, 1500);
	test_exec(f.conn, sql);
	v = test_query_value(f.conn, show[*backend]);
	cr_assert_str_eq(v, want[*backend], "[%s] after %s: %s", bname(&f), sql, v);
	free(v);
	free(sql);
	teardown(&f);
}

struct cancel_later {
	struct db_conn *conn;
	int rc;
};

static void *
cancel_later_run(void *p)
{
	struct cancel_later *cl = p;
	struct dbphase_error err = DBPHASE_ERROR_INIT;

	usleep(300 * 1000);
	cl->rc = cl->conn->drv->cancel(cl->conn, &err);
	err_release(&err);
	return NULL;
}

/*
 * A statement the server stops on request is one error class on every
 * backend: DBPHASE_ECANCELLED, not retryable, whether the driver's cancel
 * stopped it or a statement timeout (PostgreSQL said DBPHASE_EDB, MariaDB
 * and SQLite DBPHASE_EINTERRUPTED, which is dbphase's own stop by a
 * signal).  A lock timeout stays DBPHASE_ELOCK_TIMEOUT (the test below).
 */
BACKEND_TEST(driver, cancelled_statement_is_one_class)
{
	static const char *const slow[] = {
		[DB_BACKEND_SQLITE] = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
				      "FROM c WHERE x < 2000000000) SELECT count(*) FROM c",
		[DB_BACKEND_POSTGRESQL] = "SELECT pg_sleep(30)",
		[DB_BACKEND_MYSQL] = "SELECT SLEEP(30)",
	};
	static const char *const statement_timeout[] = {
		[DB_BACKEND_SQLITE] = NULL,	/* SQLite has none */
		[DB_BACKEND_POSTGRESQL] = "SET statement_timeout = 300",
		[DB_BACKEND_MYSQL] = "SET SESSION max_statement_time = 0.3",
	};
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct cancel_later cl;
	struct fixture f;
	pthread_t thread;
	char *v;
	int rc;

	setup(&f, *backend);
	cl.conn = f.conn;
	cl.rc = -1;
	cr_assert_eq(pthread_create(&thread, NULL, cancel_later_run, &cl), 0);
	rc = db_exec(f.conn, slow[*backend], &err);
	pthread_join(thread, NULL);
	cr_assert_eq(cl.rc, 0, "[%s] cancel failed", bname(&f));
	cr_assert_eq(rc, DBPHASE_ECANCELLED, "[%s] a cancelled statement gave %d (%s): %s",
		     bname(&f), rc, dbphase_err_name(rc), err.message);
	cr_assert(!err.retryable, "[%s] a cancelled statement is not retryable", bname(&f));
	err_release(&err);
	if (statement_timeout[*backend]) {
		test_exec(f.conn, statement_timeout[*backend]);
		rc = db_exec(f.conn, slow[*backend], &err);
		cr_assert_eq(rc, DBPHASE_ECANCELLED, "[%s] a statement timeout gave %d (%s): %s",
			     bname(&f), rc, dbphase_err_name(rc), err.message);
		cr_assert(!err.retryable, "[%s] a statement timeout is not retryable", bname(&f));
		err_release(&err);
	}
	/* The session is usable afterwards. */
	v = test_query_value(f.conn, "SELECT 7");
	cr_assert_str_eq(v, "7");
	free(v);
	teardown(&f);
}

BACKEND_TEST(driver, lock_timeout_applies_to_statements)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct fixture f;
	struct db_conn *other;
	int rc;

	setup(&f, *backend);
	make_table(&f, "t");
	test_exec(f.conn, "INSERT INTO t (id) VALUES (1)");
	other = test_db_connect(&f.db);
	/* The first connection holds a write lock on the row (SQLite: the database). */
	cr_assert_eq(f.conn->drv->begin(f.conn, &err), 0, "%s", err.message);
	test_exec(f.conn, "UPDATE t SET n = 8 WHERE id = 1");
	cr_assert_eq(other->drv->set_lock_timeout(other, 1000, &err), 0, "%s", err.message);
	rc = db_exec(other, "UPDATE t SET n = 9 WHERE id = 1", &err);
	cr_assert_eq(rc, DBPHASE_ELOCK_TIMEOUT, "[%s] a blocked write gave %d: %s", bname(&f), rc,
		     err.message);
	cr_assert(err.retryable, "[%s] a lock timeout must be retryable", bname(&f));
	err_release(&err);
	cr_assert_eq(f.conn->drv->rollback(f.conn, &err), 0, "%s", err.message);
	db_close(other);
	teardown(&f);
}
