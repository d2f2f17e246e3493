/*
 * tests/integration/test-pg.c - what only the PostgreSQL driver does:
 * SQLSTATE mapping, lock timeouts, advisory locks, the libpq asynchronous
 * path and cancel, lost connections, and the catalog details (NOT VALID
 * constraints, invalid indexes) that the zero-downtime phases rely on.
 *
 * Each test gets its own database from testlib (DBPHASE_TEST_PG_URL).
 */
#include "config.h"

#if DBPHASE_WITH_POSTGRESQL

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"	/* criterion.h first: redirect.h relies on it */

#include <criterion/redirect.h>

#include "core/strbuf.h"
#include "core/xmalloc.h"

static struct test_db db;

static void
pg_setup(void)
{
	test_db_create(DB_BACKEND_POSTGRESQL, &db);
}

static void
pg_teardown(void)
{
	test_db_drop(&db);
}

static void
pg_setup_quiet(void)
{
	cr_redirect_stderr();
	pg_setup();
}

TestSuite(pg, .timeout = 120);

/* A test with its own fresh database in db. */
#define PG_TEST(name, ...) \
	Test(pg, name, .init = pg_setup, .fini = pg_teardown, ##__VA_ARGS__)

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* db's URL with a query parameter appended. */
static char *
url_with(const char *url, const char *param)
{
	return xasprintf("%s%c%s", url, strchr(url, '?') ? '&' : '?', param);
}

/* Connect to text; returns the code and fills *conn / err. */
static int
try_connect(const char *text, struct db_conn **conn, struct dbphase_error *err)
{
	struct db_url url;
	int rc;

	*conn = NULL;
	cr_assert_eq(db_url_parse(text, &url, err), 0, "%s", err->message);
	rc = db_connect(&url, conn, err);
	db_url_release(&url);
	return rc;
}

/* How many times the asynchronous path asked to wait for writability. */
static int async_write_waits;

/*
 * Drive conn's asynchronous path with poll(2) until the statement ends.
 * If cancel_after_ms >= 0, ask the server to cancel it after that long.
 */
static int
run_async(struct db_conn *conn, const char *sql, const struct db_param *params,
	  size_t n, long cancel_after_ms, struct db_result **res,
	  struct dbphase_error *err)
{
	const struct db_driver *drv = conn->drv;
	long start = now_ms();
	int want = 0, rc;
	struct pollfd pfd;

	rc = drv->send(conn, sql, params, n, &want, err);
	if (rc < 0)
		return rc;
	for (;;) {
		pfd.fd = drv->socket(conn);
		cr_assert(pfd.fd >= 0);
		pfd.events = 0;
		if (want & DB_WANT_READ)
			pfd.events |= POLLIN;
		if (want & DB_WANT_WRITE) {
			pfd.events |= POLLOUT;
			async_write_waits++;
		}
		cr_assert(pfd.events != 0, "consume asked for nothing to wait on");
		pfd.revents = 0;
		rc = poll(&pfd, 1, 50);
		cr_assert(rc >= 0);
		if (cancel_after_ms >= 0 && now_ms() - start >= cancel_after_ms) {
			cr_assert_eq(drv->cancel(conn, err), 0, "%s", err->message);
			cancel_after_ms = -1;
		}
		cr_assert(now_ms() - start < 30000, "asynchronous statement never finished");
		if (rc == 0)
			continue;
		rc = drv->consume(conn, &want, err);
		if (rc < 0)
			return rc;
		if (rc == 0)
			break;
	}
	return drv->take(conn, res, err);
}

Test(pg, connect_failure_masks_password)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	struct db_conn *conn = NULL;
	char *url;
	int fd;

	/* A port that is bound but not listening refuses connections. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	url = xasprintf("postgresql://alice:s3cr3t-pw@127.0.0.1:%d/somedb?connect_timeout=3",
			ntohs(sa.sin_port));

	cr_assert_eq(try_connect(url, &conn, &err), DBPHASE_ECONNECT);
	cr_assert(conn == NULL);
	cr_assert(err.message != NULL);
	cr_assert(strstr(err.message, "s3cr3t-pw") == NULL, "password leaked: %s", err.message);
	cr_assert(strstr(err.message, "postgresql://alice@127.0.0.1:") != NULL, "%s", err.message);
	cr_assert(strstr(err.message, "/somedb") != NULL, "%s", err.message);
	cr_assert(err.message[strlen(err.message) - 1] != '\n');

	err_release(&err);
	free(url);
	close(fd);
}

/* A misspelt keyword is a configuration error (65), not an unreachable server. */
Test(pg, unknown_url_parameter_is_a_config_error)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *conn = NULL;

	cr_assert_eq(try_connect("postgresql://alice:s3cr3t-pw@127.0.0.1:1/db?sslmdoe=require",
				 &conn, &err), DBPHASE_EBADINPUT, "%s", err.message);
	cr_assert(conn == NULL);
	cr_assert(strstr(err.message, "'sslmdoe'") != NULL, "%s", err.message);
	cr_assert(strstr(err.message, "s3cr3t-pw") == NULL, "password leaked: %s", err.message);
	err_release(&err);
}

Test(pg, connect_timeout_applies)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	struct db_conn *conn = NULL;
	long start, took;
	char *url;
	int fd;

	/* A listener that never answers: the TCP handshake succeeds, then silence. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert(fd >= 0, "socket");
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(fd, 4), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	url = xasprintf("postgresql://postgres:pw@127.0.0.1:%d/x?connect_timeout=2&sslmode=disable",
			ntohs(sa.sin_port));

	start = now_ms();
	cr_assert_eq(try_connect(url, &conn, &err), DBPHASE_ECONNECT);
	took = now_ms() - start;
	cr_assert_geq(took, 1900);
	cr_assert_lt(took, 6000, "took %ld ms", took);
	cr_assert(strstr(err.message, "timeout") != NULL, "%s", err.message);
	cr_assert(strstr(err.message, ":pw") == NULL, "%s", err.message);

	err_release(&err);
	free(url);
	close(fd);
}

PG_TEST(server_version)
{
	struct db_conn *conn = test_db_connect(&db);

	cr_assert_geq(conn->server_version, 110000);
	cr_assert(conn->server_version_text != NULL);
	cr_assert_eq(atoi(conn->server_version_text), conn->server_version / 10000,
		     "%s vs %d", conn->server_version_text, conn->server_version);
	cr_assert_str_eq((char *)conn->drv->name, "pg");
	cr_assert(!conn->in_transaction);
	db_close(conn);
}

PG_TEST(url_parameters_reach_libpq)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *conn = NULL;
	char *v, *url, *sockdir;

	/* application_name defaults to dbphase, and the URL overrides it. */
	conn = test_db_connect(&db);
	v = test_query_value(conn, "SELECT current_setting('application_name')");
	cr_assert_str_eq(v, "dbphase");
	free(v);
	sockdir = test_query_value(conn, "SELECT split_part("
				   "current_setting('unix_socket_directories'), ',', 1)");
	db_close(conn);

	url = url_with(db.url, "application_name=itest&options=-c%20search_path%3Dfoo");
	cr_assert_eq(try_connect(url, &conn, &err), 0, "%s", err.message);
	v = test_query_value(conn, "SELECT current_setting('application_name')");
	cr_assert_str_eq(v, "itest");
	free(v);
	v = test_query_value(conn, "SELECT current_setting('search_path')");
	cr_assert_str_eq(v, "foo");
	free(v);
	db_close(conn);
	free(url);

	/* A host list: libpq tries each in turn (the first port is closed). */
	{
		struct sockaddr_in sa = { .sin_family = AF_INET };
		socklen_t len = sizeof(sa);
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct db_url parsed;
		char *param;
		int port;

		cr_assert(fd >= 0);
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
		cr_assert_eq(db_url_parse(db.url, &parsed, &err), 0);
		port = parsed.port ? parsed.port : 5432;
		db_url_release(&parsed);
		param = xasprintf("host=127.0.0.1,127.0.0.1&port=%d,%d", ntohs(sa.sin_port), port);
		url = url_with(db.url, param);
		cr_assert_eq(try_connect(url, &conn, &err), 0, "%s", err.message);
		v = test_query_value(conn, "SELECT current_setting('port')");
		cr_assert_eq(atoi(v), port);
		free(v);
		db_close(conn);
		free(url);
		free(param);
		close(fd);
	}

	/* host=/dir (a later host wins in libpq) connects over the unix socket. */
	if (sockdir && sockdir[0] == '/') {
		char *param = xasprintf("host=%s", sockdir);

		url = url_with(db.url, param);
		cr_assert_eq(try_connect(url, &conn, &err), 0, "%s", err.message);
		v = test_query_value(conn, "SELECT inet_server_addr() IS NULL");
		cr_assert_str_eq(v, "t", "not connected over the unix socket");
		free(v);
		db_close(conn);
		free(url);
		free(param);
	}
	free(sockdir);
	err_release(&err);
}

PG_TEST(query_round_trip)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *conn = test_db_connect(&db);
	struct db_result *res = NULL;
	const char *quoted = "it's \"quoted\" \\ and $1";
	struct db_param ins[] = { DB_INT(7), DB_TEXT(quoted), DB_NULL };
	struct db_param sel[] = { DB_INT(7) };
	int rc;

	test_exec(conn, "CREATE TABLE t (id bigint, name text, note text)");
	rc = db_query(conn, "INSERT INTO t VALUES ($1, $2, $3)", ins, 3, &res, &err);
	cr_assert_eq(rc, 0, "%s", err.message);
	cr_assert_eq(res->affected, 1);
	cr_assert_eq(res->n_rows, 0);
	db_result_free(res);
	rc = db_query(conn, "INSERT INTO t VALUES ($1 + 1, $2, $3)", ins, 3, NULL, &err);
	cr_assert_eq(rc, 0, "%s", err.message);

	rc = db_query(conn, "SELECT id, name, note FROM t WHERE id = $1", sel, 1, &res, &err);
	cr_assert_eq(rc, 0, "%s", err.message);
	cr_assert_eq(res->n_rows, 1);
	cr_assert_eq(res->n_cols, 3);
	cr_assert_str_eq(res->col_names[0], "id");
	cr_assert_str_eq(res->col_names[2], "note");
	cr_assert_str_eq((char *)db_result_value(res, 0, 0), "7");
	cr_assert_str_eq((char *)db_result_value(res, 0, 1), (char *)quoted);
	cr_assert(db_result_value(res, 0, 2) == NULL);
	db_result_free(res);

	/* Large and negative integers survive the text formatting. */
	sel[0] = DB_INT(INT64_MIN);
	cr_assert_eq(db_query(conn, "SELECT $1::bigint", sel, 1, &res, &err), 0, "%s", err.message);
	cr_assert_str_eq((char *)db_result_value(res, 0, 0), "-9223372036854775808");
	db_result_free(res);

	cr_assert_eq(db_query(conn, "UPDATE t SET note = 'x'", NULL, 0, &res, &err), 0);
	cr_assert_eq(res->affected, 2);
	db_result_free(res);

	db_close(conn);
	err_release(&err);
}

PG_TEST(quoting_round_trips)
{
	struct db_conn *conn = test_db_connect(&db);
	const char *ident = "we\"ird Name";
	const char *text = "O'Brien \\n \"x\"";
	struct strbuf sql = STRBUF_INIT;
	char *v;

	strbuf_addstr(&sql, "CREATE TABLE ");
	conn->drv->quote_ident(&sql, ident);
	strbuf_addstr(&sql, " (v text)");
	cr_assert_str_eq(sql.buf, "CREATE TABLE \"we\"\"ird Name\" (v text)");
	test_exec(conn, sql.buf);

	strbuf_reset(&sql);
	strbuf_addstr(&sql, "INSERT INTO ");
	conn->drv->quote_ident(&sql, ident);
	strbuf_addstr(&sql, " VALUES (");
	conn->drv->quote_literal(&sql, text);
	strbuf_addstr(&sql, ")");
	test_exec(conn, sql.buf);

	strbuf_reset(&sql);
	strbuf_addstr(&sql, "SELECT v FROM ");
	conn->drv->quote_ident(&sql, ident);
	v = test_query_value(conn, sql.buf);
	cr_assert_str_eq(v, (char *)text);
	free(v);

	strbuf_reset(&sql);
	conn->drv->quote_literal(&sql, "it's");
	cr_assert_str_eq(sql.buf, "'it''s'");

	/* A database with standard_conforming_strings off: the driver turns it on. */
	strbuf_reset(&sql);
	strbuf_addstr(&sql, "ALTER DATABASE ");
	conn->drv->quote_ident(&sql, db.name);
	strbuf_addstr(&sql, " SET standard_conforming_strings = off");
	test_exec(conn, sql.buf);
	db_close(conn);
	conn = test_db_connect(&db);
	strbuf_reset(&sql);
	strbuf_addstr(&sql, "SELECT ");
	conn->drv->quote_literal(&sql, text);
	v = test_query_value(conn, sql.buf);
	cr_assert_str_eq(v, (char *)text);
	free(v);

	strbuf_release(&sql);
	db_close(conn);
}

PG_TEST(unique_violation_sqlstate)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *conn = test_db_connect(&db);
	struct db_param p[] = { DB_INT(1) };

	test_exec(conn, "CREATE TABLE u (id int PRIMARY KEY)");
	cr_assert_eq(db_query(conn, "INSERT INTO u VALUES ($1)", p, 1, NULL, &err), 0);
	cr_assert_eq(db_query(conn, "INSERT INTO u VALUES ($1)", p, 1, NULL, &err), DBPHASE_EDB);
	cr_assert_eq(err.code, DBPHASE_EDB);
	cr_assert_str_eq(err.sqlstate, "23505");
	cr_assert(!err.retryable);
	cr_assert(strstr(err.message, "(SQLSTATE 23505)") != NULL, "%s", err.message);
	cr_assert(strstr(err.message, "DETAIL: Key (id)=(1) already exists") != NULL,
		  "%s", err.message);
	cr_assert(strchr(err.message, '\n') == NULL, "%s", err.message);

	/* The sync path is still usable afterwards. */
	err_release(&err);
	cr_assert_eq(db_query(conn, "SELECT 1", NULL, 0, NULL, &err), 0);

	db_close(conn);
	err_release(&err);
}

PG_TEST(exec_reports_first_failure_of_several)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *conn = test_db_connect(&db);
	char *v;

	test_exec(conn, "CREATE TABLE m (v int);"
		  " INSERT INTO m VALUES (1); INSERT INTO m VALUES (2)");
	v = test_query_value(conn, "SELECT sum(v) FROM m");
	cr_assert_str_eq(v, "3");
	free(v);

	cr_assert_eq(db_exec(conn, "SELECT 1; SELECT 1/0; SELECT 2", &err), DBPHASE_EDB);
	cr_assert_str_eq(err.sqlstate, "22012");
	cr_assert(!conn->in_transaction);

	db_close(conn);
	err_release(&err);
}

PG_TEST(transactions_tracked)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *conn = test_db_connect(&db);
	const struct db_driver *drv = conn->drv;
	char *v;

	test_exec(conn, "CREATE TABLE tx (v int)");
	cr_assert_eq(drv->begin(conn, &err), 0);
	cr_assert(conn->in_transaction);
	test_exec(conn, "INSERT INTO tx VALUES (1)");
	cr_assert_eq(drv->rollback(conn, &err), 0);
	cr_assert(!conn->in_transaction);
	v = test_query_value(conn, "SELECT count(*) FROM tx");
	cr_assert_str_eq(v, "0");
	free(v);

	cr_assert_eq(drv->begin(conn, &err), 0);
	test_exec(conn, "INSERT INTO tx VALUES (1)");
	cr_assert_eq(drv->commit(conn, &err), 0);
	cr_assert(!conn->in_transaction);

	/* COMMIT of a failed transaction rolls back: that is an error. */
	cr_assert_eq(drv->begin(conn, &err), 0);
	test_exec(conn, "INSERT INTO tx VALUES (2)");
	cr_assert_eq(db_exec(conn, "SELECT 1/0", &err), DBPHASE_EDB);
	cr_assert(conn->in_transaction);
	cr_assert_eq(drv->commit(conn, &err), DBPHASE_EDB);
	cr_assert(!conn->in_transaction);
	v = test_query_value(conn, "SELECT count(*) FROM tx");
	cr_assert_str_eq(v, "1");
	free(v);

	db_close(conn);
	err_release(&err);
}

PG_TEST(lock_timeout_is_retryable)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *a = test_db_connect(&db);
	struct db_conn *b = test_db_connect(&db);
	long start, took;

	test_exec(a, "CREATE TABLE lt (id int)");
	cr_assert_eq(a->drv->begin(a, &err), 0);
	test_exec(a, "LOCK TABLE lt IN ACCESS EXCLUSIVE MODE");

	cr_assert_eq(b->drv->set_lock_timeout(b, 100, &err), 0, "%s", err.message);
	start = now_ms();
	cr_assert_eq(db_query(b, "SELECT * FROM lt", NULL, 0, NULL, &err), DBPHASE_ELOCK_TIMEOUT);
	took = now_ms() - start;
	cr_assert_eq(err.code, DBPHASE_ELOCK_TIMEOUT);
	cr_assert_str_eq(err.sqlstate, "55P03");
	cr_assert(err.retryable);
	cr_assert_geq(took, 80);
	cr_assert_lt(took, 3000, "waited %ld ms", took);

	/* Once A lets go, B goes through; 0 switches the timeout off. */
	cr_assert_eq(a->drv->rollback(a, &err), 0);
	cr_assert_eq(b->drv->set_lock_timeout(b, 0, &err), 0);
	cr_assert_eq(db_query(b, "SELECT * FROM lt", NULL, 0, NULL, &err), 0, "%s", err.message);
	{
		char *v = test_query_value(b, "SHOW lock_timeout");

		cr_assert_str_eq(v, "0");
		free(v);
	}

	db_close(a);
	db_close(b);
	err_release(&err);
}

PG_TEST(advisory_lock_contention)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *a = test_db_connect(&db);
	struct db_conn *b = test_db_connect(&db);
	const struct db_driver *drv = a->drv;
	char *name = xasprintf("x-%s", db.name);	/* cluster-wide: keep it unique */
	long start, took;

	cr_assert_eq(drv->lock(a, name, 1000, &err), 0, "%s", err.message);
	/* Session locks are re-entrant. */
	cr_assert_eq(drv->lock(a, name, 0, &err), 0, "%s", err.message);

	start = now_ms();
	cr_assert_eq(drv->lock(b, name, 200, &err), DBPHASE_ELOCK_TIMEOUT);
	took = now_ms() - start;
	cr_assert_eq(err.code, DBPHASE_ELOCK_TIMEOUT);
	cr_assert(strstr(err.message, name) != NULL, "%s", err.message);
	cr_assert_geq(took, 190, "gave up after %ld ms", took);
	cr_assert_lt(took, 2000, "gave up after %ld ms", took);
	cr_assert_eq(drv->lock(b, name, 0, &err), DBPHASE_ELOCK_TIMEOUT);

	cr_assert_eq(drv->unlock(a, name, &err), 0, "%s", err.message);
	cr_assert_eq(drv->lock(b, name, 200, &err), DBPHASE_ELOCK_TIMEOUT,
		     "one unlock of two locks must not release it");
	cr_assert_eq(drv->unlock(a, name, &err), 0, "%s", err.message);
	cr_assert_eq(drv->lock(b, name, 200, &err), 0, "%s", err.message);
	cr_assert_eq(drv->unlock(b, name, &err), 0, "%s", err.message);
	cr_assert_eq(drv->unlock(b, name, &err), DBPHASE_ENOTFOUND);

	/* A lock held by a closed session is gone; -1 waits as long as needed. */
	cr_assert_eq(drv->lock(a, name, -1, &err), 0, "%s", err.message);
	db_close(a);
	cr_assert_eq(drv->lock(b, name, -1, &err), 0, "%s", err.message);

	/* A session lock survives the transaction that took it. */
	cr_assert_eq(drv->begin(b, &err), 0);
	cr_assert_eq(drv->lock(b, "another-lock-in-tx", 100, &err), 0, "%s", err.message);
	cr_assert_eq(drv->rollback(b, &err), 0);
	cr_assert_eq(drv->unlock(b, "another-lock-in-tx", &err), 0, "%s", err.message);

	db_close(b);
	free(name);
	err_release(&err);
}

PG_TEST(advisory_lock_key_is_fnv1a)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *conn = test_db_connect(&db);
	char *v;

	/* FNV-1a 64 of "dbphase-fnv-check" is 0x04c3de7bc4e45de8. */
	cr_assert_eq(conn->drv->lock(conn, "dbphase-fnv-check", 1000, &err), 0, "%s", err.message);
	v = test_query_value(conn,
			     "SELECT classid || ':' || objid FROM pg_locks"
			     " WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND objsubid = 1");
	cr_assert_str_eq(v, "79945339:3303300584");
	free(v);
	cr_assert_eq(conn->drv->unlock(conn, "dbphase-fnv-check", &err), 0);
	db_close(conn);
	err_release(&err);
}

PG_TEST(async_poll_round_trip)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *conn = test_db_connect(&db);
	struct db_result *res = NULL;
	struct db_param p[] = { DB_INT(41) };
	long start = now_ms();
	int rc;

	cr_assert_eq(conn->drv->timeout_ms(conn), -1);
	cr_assert_geq(conn->drv->socket(conn), 0);
	rc = run_async(conn, "SELECT pg_sleep(0.2), $1::int + 1 AS answer", p, 1, -1,
		       &res, &err);
	cr_assert_eq(rc, 0, "%s", err.message);
	cr_assert_geq(now_ms() - start, 190);
	cr_assert_eq(res->n_rows, 1);
	cr_assert_str_eq(res->col_names[1], "answer");
	cr_assert_str_eq((char *)db_result_value(res, 0, 1), "42");
	db_result_free(res);

	/* An error comes back through take; then the sync path works again. */
	cr_assert_eq(run_async(conn, "SELECT 1/0", NULL, 0, -1, &res, &err), DBPHASE_EDB);
	cr_assert(res == NULL);
	cr_assert_str_eq(err.sqlstate, "22012");
	err_release(&err);
	{
		char *v = test_query_value(conn, "SELECT 'sync'");

		cr_assert_str_eq(v, "sync");
		free(v);
	}

	/*
	 * A statement far bigger than the socket buffers (4 MiB at most for
	 * sending on Linux) cannot go out in one write: send and consume must
	 * ask for writability until it is flushed.
	 */
	{
		struct strbuf big = STRBUF_INIT;
		size_t n = 48 * 1024 * 1024;

		strbuf_addstr(&big, "SELECT length('");
		strbuf_grow(&big, n);
		memset(big.buf + big.len, 'x', n);
		strbuf_setlen(&big, big.len + n);
		strbuf_addstr(&big, "')");
		async_write_waits = 0;
		rc = run_async(conn, big.buf, NULL, 0, -1, &res, &err);
		cr_assert_eq(rc, 0, "%s", err.message);
		cr_assert_gt(async_write_waits, 0, "the statement went out in one write");
		cr_assert_str_eq((char *)db_result_value(res, 0, 0), "50331648");
		db_result_free(res);
		strbuf_release(&big);
	}

	db_close(conn);
	err_release(&err);
}

PG_TEST(async_cancel)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *conn = test_db_connect(&db);
	struct db_result *res = NULL;
	long start = now_ms(), took;

	cr_assert_eq(run_async(conn, "SELECT pg_sleep(10)", NULL, 0, 200, &res, &err),
		     DBPHASE_ECANCELLED);
	took = now_ms() - start;
	cr_assert_str_eq(err.sqlstate, "57014");
	cr_assert(!err.retryable);
	cr_assert_lt(took, 5000, "cancel took %ld ms", took);
	err_release(&err);
	cr_assert_eq(db_query(conn, "SELECT 1", NULL, 0, NULL, &err), 0, "%s", err.message);

	db_close(conn);
	err_release(&err);
}

struct cancel_arg {
	struct db_conn *conn;
	int rc;
};

static void *
cancel_later(void *p)
{
	struct cancel_arg *arg = p;
	struct dbphase_error err = DBPHASE_ERROR_INIT;

	usleep(300 * 1000);
	arg->rc = arg->conn->drv->cancel(arg->conn, &err);
	err_release(&err);
	return NULL;
}

PG_TEST(cancel_from_another_thread)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *conn = test_db_connect(&db);
	struct cancel_arg arg = { conn, -1 };
	pthread_t th;
	long start = now_ms();

	cr_assert_eq(pthread_create(&th, NULL, cancel_later, &arg), 0);
	cr_assert_eq(db_exec(conn, "SELECT pg_sleep(10)", &err), DBPHASE_ECANCELLED);
	pthread_join(th, NULL);
	cr_assert_eq(arg.rc, 0);
	cr_assert_str_eq(err.sqlstate, "57014");
	cr_assert_lt(now_ms() - start, 5000);

	db_close(conn);
	err_release(&err);
}

PG_TEST(terminated_connection_is_retryable)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *victim = test_db_connect(&db);
	struct db_conn *killer = test_db_connect(&db);
	char *pid = test_query_value(victim, "SELECT pg_backend_pid()");
	struct db_param p[] = { DB_TEXT(pid) };
	struct db_result *res = NULL;
	int i, rc;

	rc = db_query(killer, "SELECT pg_terminate_backend($1::int)", p, 1, NULL, &err);
	cr_assert_eq(rc, 0, "%s", err.message);
	/* Wait until the backend is gone, so that the next query must fail. */
	for (i = 0; i < 500; i++) {
		cr_assert_eq(db_query(killer, "SELECT 1 FROM pg_stat_activity WHERE pid = $1::int",
					   p, 1, &res, &err), 0);
		if (res->n_rows == 0)
			break;
		db_result_free(res);
		res = NULL;
		usleep(10 * 1000);
	}
	db_result_free(res);

	cr_assert_lt(db_query(victim, "SELECT 1", NULL, 0, NULL, &err), 0);
	cr_assert(err.retryable, "not retryable: %s", err.message);
	cr_assert_neq(err.code, DBPHASE_ELOCK_TIMEOUT);
	/* Still an error, still retryable, on the dead connection. */
	cr_assert_lt(db_exec(victim, "SELECT 1", &err), 0);
	cr_assert(err.retryable, "not retryable: %s", err.message);

	db_close(victim);
	db_close(killer);
	free(pid);
	err_release(&err);
}

struct terminate_arg {
	const char *pid;
	int rc;
};

static void *
terminate_later(void *p)
{
	struct terminate_arg *arg = p;
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *killer = test_db_connect(&db);
	struct db_param param = DB_TEXT(arg->pid);

	usleep(300 * 1000);
	arg->rc = db_query(killer, "SELECT pg_terminate_backend($1::int)", &param, 1, NULL, &err);
	db_close(killer);
	err_release(&err);
	return NULL;
}

PG_TEST(async_terminated_is_retryable)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *victim = test_db_connect(&db);
	struct terminate_arg arg = { NULL, -1 };
	struct db_result *res = NULL;
	pthread_t th;
	char *pid;

	pid = test_query_value(victim, "SELECT pg_backend_pid()");
	arg.pid = pid;
	cr_assert_eq(pthread_create(&th, NULL, terminate_later, &arg), 0);
	cr_assert_lt(run_async(victim, "SELECT pg_sleep(10)", NULL, 0, -1, &res, &err), 0);
	pthread_join(th, NULL);
	cr_assert_eq(arg.rc, 0);
	cr_assert(res == NULL);
	cr_assert(err.retryable, "not retryable: %s", err.message);
	/* The next statement fails the same way, through either path. */
	cr_assert_lt(run_async(victim, "SELECT 1", NULL, 0, -1, &res, &err), 0);
	cr_assert(err.retryable, "not retryable: %s", err.message);

	db_close(victim);
	free(pid);
	err_release(&err);
}

PG_TEST(not_valid_constraint_then_validated)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *conn = test_db_connect(&db);
	struct db_table_info info;
	const struct db_column_info *col;
	const struct db_index_info *idx;
	size_t i;
	int found = -1;

	test_exec(conn, "CREATE TABLE acct (id bigint PRIMARY KEY, n int DEFAULT 0,"
		  " label varchar(20) NOT NULL)");
	test_exec(conn, "INSERT INTO acct VALUES (1, -1, 'a')");
	test_exec(conn, "ALTER TABLE acct ADD CONSTRAINT n_positive CHECK (n >= 0) NOT VALID");

	cr_assert_eq(conn->drv->describe_table(conn, "acct", &info, &err), 0, "%s", err.message);
	cr_assert_str_eq(info.name, "acct");
	cr_assert_eq(info.n_columns, 3);
	cr_assert_str_eq(info.columns[0].name, "id");
	cr_assert_str_eq(info.columns[0].type, "bigint");
	cr_assert(info.columns[0].primary_key);
	cr_assert(!info.columns[0].nullable);
	col = db_table_info_column(&info, "n");
	cr_assert(col != NULL);
	cr_assert(col->nullable);
	cr_assert(!col->primary_key);
	cr_assert_str_eq(col->default_expr, "0");
	col = db_table_info_column(&info, "label");
	cr_assert_str_eq(col->type, "character varying(20)");
	cr_assert(!col->nullable);
	cr_assert(col->default_expr == NULL);

	idx = db_table_info_index(&info, "acct_pkey");
	cr_assert(idx != NULL);
	cr_assert(idx->primary && idx->unique && idx->valid);
	cr_assert_eq(idx->n_columns, 1);
	cr_assert_str_eq(idx->columns[0], "id");

	for (i = 0; i < info.n_constraints; i++)
		if (strcmp(info.constraints[i].name, "n_positive") == 0)
			found = (int)i;
	cr_assert_geq(found, 0);
	cr_assert_eq(info.constraints[found].kind, DB_CONSTRAINT_CHECK);
	cr_assert(!info.constraints[found].validated);
	cr_assert(strstr(info.constraints[found].definition, "CHECK") != NULL);
	cr_assert(strstr(info.constraints[found].definition, "NOT VALID") != NULL,
		  "%s", info.constraints[found].definition);
	db_table_info_release(&info);

	test_exec(conn, "UPDATE acct SET n = 1");
	test_exec(conn, "ALTER TABLE acct VALIDATE CONSTRAINT n_positive");
	cr_assert_eq(conn->drv->describe_table(conn, "acct", &info, &err), 0, "%s", err.message);
	found = -1;
	for (i = 0; i < info.n_constraints; i++) {
		if (strcmp(info.constraints[i].name, "n_positive") == 0)
			found = (int)i;
		if (strcmp(info.constraints[i].name, "acct_pkey") == 0)
			cr_assert_eq(info.constraints[i].kind, DB_CONSTRAINT_PRIMARY_KEY);
	}
	cr_assert_geq(found, 0);
	cr_assert(info.constraints[found].validated);
	db_table_info_release(&info);

	db_close(conn);
	err_release(&err);
}

PG_TEST(failed_concurrent_index_is_invalid)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *conn = test_db_connect(&db);
	struct db_table_info info;
	const struct db_index_info *idx;
	int rc;

	test_exec(conn, "CREATE TABLE dup (v int)");
	test_exec(conn, "INSERT INTO dup VALUES (1), (1)");
	rc = db_exec(conn, "CREATE UNIQUE INDEX CONCURRENTLY dup_v_key ON dup (v)", &err);
	cr_assert_eq(rc, DBPHASE_EDB);
	cr_assert_str_eq(err.sqlstate, "23505");

	cr_assert_eq(conn->drv->describe_table(conn, "dup", &info, &err), 0, "%s", err.message);
	idx = db_table_info_index(&info, "dup_v_key");
	cr_assert(idx != NULL, "the failed index is not reported");
	cr_assert(!idx->valid);
	cr_assert(idx->unique);
	cr_assert(!idx->primary);
	cr_assert_eq(idx->n_columns, 1);
	cr_assert_str_eq(idx->columns[0], "v");
	db_table_info_release(&info);

	db_close(conn);
	err_release(&err);
}

PG_TEST(introspection_details)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *conn = test_db_connect(&db);
	const struct db_driver *drv = conn->drv;
	struct db_table_info info;
	const struct db_index_info *idx;
	char **names = NULL;
	size_t n = 0, i;
	bool exists = true;
	int fk = 0;

	test_exec(conn,
		  "CREATE TABLE parent (id int PRIMARY KEY, email text UNIQUE);"
		  "CREATE TABLE child (id int, parent_id int REFERENCES parent (id), name text);"
		  "CREATE INDEX child_lower_name ON child (lower(name), id);"
		  "CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql"
		  " AS $$BEGIN RETURN NEW; END$$;"
		  "CREATE TRIGGER child_sync BEFORE INSERT ON child"
		  " FOR EACH ROW EXECUTE FUNCTION noop();"
		  "CREATE TABLE part (k int, v text) PARTITION BY RANGE (k);"
		  "CREATE VIEW vw AS SELECT 1 AS one;"
		  "CREATE SCHEMA other; CREATE TABLE other.hidden (x int)");

	cr_assert_eq(drv->table_exists(conn, "child", &exists, &err), 0);
	cr_assert(exists);
	cr_assert_eq(drv->table_exists(conn, "part", &exists, &err), 0);
	cr_assert(exists);
	cr_assert_eq(drv->table_exists(conn, "vw", &exists, &err), 0);
	cr_assert(!exists);
	cr_assert_eq(drv->table_exists(conn, "hidden", &exists, &err), 0);
	cr_assert(!exists);

	cr_assert_eq(drv->list_tables(conn, &names, &n, &err), 0, "%s", err.message);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(names[0], "child");
	cr_assert_str_eq(names[1], "parent");
	cr_assert_str_eq(names[2], "part");
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);

	cr_assert_eq(drv->describe_table(conn, "child", &info, &err), 0, "%s", err.message);
	cr_assert_eq(info.n_columns, 3);
	idx = db_table_info_index(&info, "child_lower_name");
	cr_assert(idx != NULL);
	cr_assert_eq(idx->n_columns, 2);
	cr_assert_str_eq(idx->columns[0], "lower(name)");
	cr_assert_str_eq(idx->columns[1], "id");
	cr_assert(!idx->unique && idx->valid);
	cr_assert_eq(info.n_triggers, 1, "FK triggers are internal and must not show");
	cr_assert(db_table_info_trigger(&info, "child_sync") != NULL);
	for (i = 0; i < info.n_constraints; i++)
		if (info.constraints[i].kind == DB_CONSTRAINT_FOREIGN_KEY) {
			fk++;
			cr_assert(info.constraints[i].validated);
			cr_assert(strstr(info.constraints[i].definition,
					 "REFERENCES parent(id)") != NULL,
				  "%s", info.constraints[i].definition);
		}
	cr_assert_eq(fk, 1);
	db_table_info_release(&info);

	cr_assert_eq(drv->describe_table(conn, "parent", &info, &err), 0, "%s", err.message);
	idx = db_table_info_index(&info, "parent_email_key");
	cr_assert(idx != NULL && idx->unique && !idx->primary);
	cr_assert_eq(info.n_constraints, 2);
	db_table_info_release(&info);

	cr_assert_eq(drv->describe_table(conn, "hidden", &info, &err), DBPHASE_ENOTFOUND);
	cr_assert_eq(drv->describe_table(conn, "no'such", &info, &err), DBPHASE_ENOTFOUND);
	cr_assert(strstr(err.message, "no'such") != NULL);

	db_close(conn);
	err_release(&err);
}

Test(pg, notices_are_swallowed, .init = pg_setup_quiet, .fini = pg_teardown)
{
	struct db_conn *conn = test_db_connect(&db);
	struct strbuf sql = STRBUF_INIT;

	/*
	 * A warning sent during connection startup: plpgsql preloaded per
	 * database reserves its prefix and drops the bogus setting.
	 */
	strbuf_addstr(&sql, "ALTER DATABASE ");
	conn->drv->quote_ident(&sql, db.name);
	strbuf_addstr(&sql, " SET plpgsql.bogus = 1");
	test_exec(conn, sql.buf);
	strbuf_reset(&sql);
	strbuf_addstr(&sql, "ALTER DATABASE ");
	conn->drv->quote_ident(&sql, db.name);
	strbuf_addstr(&sql, " SET session_preload_libraries = 'plpgsql'");
	test_exec(conn, sql.buf);
	db_close(conn);

	conn = test_db_connect(&db);
	test_exec(conn, "DO $$BEGIN RAISE NOTICE 'a notice'; RAISE WARNING 'a warning'; END$$");
	test_exec(conn, "DROP TABLE IF EXISTS not_there");
	db_close(conn);
	strbuf_release(&sql);
	fflush(stderr);
	cr_assert_stderr_eq_str("");
}

#endif
