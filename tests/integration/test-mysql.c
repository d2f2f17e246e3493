/*
 * tests/integration/test-mysql.c - what only the MariaDB driver does:
 * errno/SQLSTATE mapping, lock timeouts in whole seconds, GET_LOCK, the
 * non-blocking API driven by poll(2), KILL QUERY as cancel, lost
 * connections, and information_schema introspection (defaults reported
 * as expressions since MariaDB 10.2).
 *
 * Each test gets its own database from testlib (DBPHASE_TEST_MYSQL_URL).
 */
#include "config.h"

#if DBPHASE_WITH_MARIADB

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

#include "cli-run.h"	/* testlib.h (criterion) first */

#include "core/dialect.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"

static struct test_db db;

static void
setup_db(void)
{
	test_db_create(DB_BACKEND_MYSQL, &db);
}

static void
teardown_db(void)
{
	test_db_drop(&db);
}

TestSuite(mysql, .timeout = 120);

/* A test with its own fresh database in db. */
#define MDB_TEST(name, ...) \
	Test(mysql, name, .init = setup_db, .fini = teardown_db, ##__VA_ARGS__)

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

/* db's URL with a query parameter appended. */
static char *
url_with(const char *url, const char *param)
{
	return xasprintf("%s%c%s", url, strchr(url, '?') ? '&' : '?', param);
}

/* The id the server gave conn's session. */
static long
session_id(struct db_conn *conn)
{
	char *v = test_query_value(conn, "SELECT CONNECTION_ID()");
	long id = atol(v);

	free(v);
	return id;
}

/*
 * Drive conn's asynchronous path with poll(2) until the statement ends,
 * passing consume the events that happened.  If cancel_after_ms >= 0, ask
 * the server to cancel the statement after that long.
 */
static int
run_async(struct db_conn *conn, const char *sql, const struct db_param *params,
	  size_t n, long cancel_after_ms, struct db_result **res,
	  struct dbphase_error *err)
{
	const struct db_driver *drv = conn->drv;
	long start = now_ms();
	int want = 0, rc, timeout;
	struct pollfd pfd;

	rc = drv->send(conn, sql, params, n, &want, err);
	if (rc < 0)
		return rc;
	while (want) {
		pfd.fd = drv->socket(conn);
		cr_assert(pfd.fd >= 0, "no socket while waiting");
		pfd.events = 0;
		if (want & DB_WANT_READ)
			pfd.events |= POLLIN;
		if (want & DB_WANT_WRITE)
			pfd.events |= POLLOUT;
		timeout = 50;
		if ((want & DB_WANT_TIMEOUT) && drv->timeout_ms(conn) < timeout)
			timeout = drv->timeout_ms(conn);
		pfd.revents = 0;
		rc = poll(&pfd, 1, timeout);
		cr_assert(rc >= 0, "poll failed");
		if (cancel_after_ms >= 0 && now_ms() - start >= cancel_after_ms) {
			cr_assert_eq(drv->cancel(conn, err), 0, "%s", err->message);
			cancel_after_ms = -1;
		}
		cr_assert(now_ms() - start < 30000, "asynchronous statement never finished");
		if (rc == 0 && !(want & DB_WANT_TIMEOUT))
			continue;
		want = rc == 0 ? DB_WANT_TIMEOUT : 0;
		if (pfd.revents & (POLLIN | POLLERR | POLLHUP))
			want |= DB_WANT_READ;
		if (pfd.revents & (POLLOUT | POLLERR | POLLHUP))
			want |= DB_WANT_WRITE;
		rc = drv->consume(conn, &want, err);
		cr_assert(rc >= 0, "consume: %s", err->message);
	}
	return drv->take(conn, res, err);
}

Test(mysql, connect_failure_masks_password)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	struct db_conn *conn = NULL;
	char *url;
	int fd;

	/* A port nobody listens on: bind one, then close it. */
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert(fd >= 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	url = xasprintf("mysql://bob:s3cr3t-pw@127.0.0.1:%d/app?connect_timeout=3",
			ntohs(sa.sin_port));
	cr_assert_eq(try_connect(url, &conn, &err), DBPHASE_ECONNECT);
	cr_assert_null(conn);
	cr_assert_null(strstr(err.message, "s3cr3t"), "%s", err.message);
	cr_assert_not_null(strstr(err.message, "bob@127.0.0.1"), "%s", err.message);
	err_release(&err);
	free(url);
}

MDB_TEST(wrong_password_masked)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *conn = NULL;
	struct strbuf sb = STRBUF_INIT;
	const char *at = strchr(strstr(db.url, "://") + 3, '@');

	/* The server's root has no password: any password is wrong. */
	cr_assert_not_null(at);
	strbuf_add(&sb, db.url, (size_t)(at - db.url));
	strbuf_addstr(&sb, ":wr0ng-pa55");
	strbuf_addstr(&sb, at);
	cr_assert_eq(try_connect(sb.buf, &conn, &err), DBPHASE_ECONNECT, "%s",
		     err.message ? err.message : "connected");
	cr_assert_null(strstr(err.message, "wr0ng"), "%s", err.message);
	cr_assert_eq(err.server_code, 1045, "%s", err.message);
	err_release(&err);
	strbuf_release(&sb);
}

MDB_TEST(url_parameters_of_other_tools_are_ignored_bad_values_refused)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *conn = NULL;
	/* devstack's and SQLAlchemy's own parameters: an OpenStack config works as is. */
	char *url = url_with(db.url, "plugin=dbcounter&read_default_group=keystone&charset=utf8");

	cr_assert_eq(try_connect(url, &conn, &err), 0, "%s", err.message);
	db_close(conn);
	conn = NULL;
	free(url);

	/* TLS demanded from a server without it: refused, not silently clear. */
	url = url_with(db.url, "ssl=true");
	cr_assert_eq(try_connect(url, &conn, &err), DBPHASE_ECONNECT, "%s",
		     err.message ? err.message : "connected");
	cr_assert_not_null(strstr(err.message, "SSL"), "%s", err.message);
	err_release(&err);
	free(url);
	url = url_with(db.url, "ssl=maybe");
	cr_assert_eq(try_connect(url, &conn, &err), DBPHASE_EBADINPUT);
	err_release(&err);
	free(url);

	url = url_with(db.url, "connect_timeout=2&unix_socket=");
	/* An empty unix_socket is the default socket: TCP is still used. */
	cr_assert_eq(try_connect(url, &conn, &err), 0, "%s", err.message);
	db_close(conn);
	free(url);
}

MDB_TEST(server_version_and_session)
{
	struct db_conn *conn = test_db_connect(&db);
	char *v;

	cr_assert_geq(conn->server_version, 100500);
	cr_assert_not_null(strstr(conn->server_version_text, "MariaDB"), "%s",
			   conn->server_version_text);
	v = test_query_value(conn, "SELECT @@session.time_zone");
	cr_assert_str_eq(v, "+00:00");
	free(v);
	v = test_query_value(conn, "SELECT @@character_set_client");
	cr_assert_str_eq(v, "utf8mb4");
	free(v);
	v = test_query_value(conn, "SELECT DATABASE()");
	cr_assert_str_eq(v, db.name);
	free(v);
	db_close(conn);
}

MDB_TEST(params_round_trip)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *conn = test_db_connect(&db);
	const char *tricky = "it's a \\back\\slash and a `tick` \"dq\" $1 ?";
	struct db_param p[3] = { DB_TEXT(tricky), DB_INT(-9000000000LL), DB_NULL };
	struct db_result *res = NULL;

	test_exec(conn, "CREATE TABLE t (id BIGINT PRIMARY KEY, s TEXT, n INT NULL)");
	/* $2 before $1, $3 twice, plus an unused trailing parameter. */
	{
		struct db_param q[4] = { DB_TEXT(tricky), DB_INT(-9000000000LL), DB_NULL,
					 DB_TEXT("unused") };

		cr_assert_eq(db_query(conn, "INSERT INTO t (id, s, n) VALUES ($2, $1, $3)",
				      q, 4, &res, &err), 0, "%s", err.message);
		cr_assert_eq(res->affected, 1);
		db_result_free(res);
	}
	cr_assert_eq(db_query(conn, "SELECT id, s, n, $3 IS NULL AS isnull, '$1' AS lit "
			      "FROM t WHERE s = $1 AND id = $2", p, 3, &res, &err), 0,
		     "%s", err.message);
	cr_assert_eq(res->n_rows, 1);
	cr_assert_eq(res->n_cols, 5);
	cr_assert_str_eq(res->col_names[0], "id");
	cr_assert_str_eq(res->col_names[3], "isnull");
	cr_assert_str_eq(db_result_value(res, 0, 0), "-9000000000");
	cr_assert_str_eq(db_result_value(res, 0, 1), tricky);
	cr_assert_null(db_result_value(res, 0, 2));
	cr_assert_str_eq(db_result_value(res, 0, 3), "1");
	cr_assert_str_eq(db_result_value(res, 0, 4), "$1");
	db_result_free(res);

	/* Text protocol gives the same values. */
	cr_assert_eq(db_query(conn, "SELECT id, s, n FROM t", NULL, 0, &res, &err), 0);
	cr_assert_str_eq(db_result_value(res, 0, 1), tricky);
	cr_assert_null(db_result_value(res, 0, 2));
	db_result_free(res);

	/* UPDATE counts matched rows, as the other backends do. */
	cr_assert_eq(db_query(conn, "UPDATE t SET n = n WHERE id = $1", &p[1], 1, &res,
			      &err), 0, "%s", err.message);
	cr_assert_eq(res->affected, 1);
	db_result_free(res);

	/* A $n beyond the parameters given is refused before the server sees it. */
	cr_assert_eq(db_query(conn, "SELECT $2", p, 1, &res, &err), DBPHASE_EBADINPUT);
	cr_assert_null(res);
	err_release(&err);
	db_close(conn);
}

MDB_TEST(long_values_fit)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *conn = test_db_connect(&db);
	struct strbuf big = STRBUF_INIT;
	struct db_result *res = NULL;
	struct db_param p[2];
	size_t i;

	for (i = 0; i < 200000; i++)
		strbuf_addch(&big, 'a' + (char)(i % 26));
	test_exec(conn, "CREATE TABLE t (id INT PRIMARY KEY, v LONGTEXT, d DOUBLE, "
			"ts DATETIME(3))");
	p[0] = DB_INT(1);
	p[1] = DB_TEXT(big.buf);
	cr_assert_eq(db_query(conn, "INSERT INTO t VALUES ($1, $2, 1.5, "
			      "'2024-02-29 12:34:56.789')", p, 2, NULL, &err), 0,
		     "%s", err.message);
	p[1] = DB_TEXT("x");
	cr_assert_eq(db_query(conn, "INSERT INTO t VALUES ($1, $2, NULL, NULL)",
			      (struct db_param[]){ DB_INT(2), DB_TEXT("x") }, 2, NULL,
			      &err), 0, "%s", err.message);
	/* Prepared: buffers sized from the stored max_length. */
	cr_assert_eq(db_query(conn, "SELECT v, d, ts, id FROM t WHERE id >= $1 ORDER BY id",
			      p, 1, &res, &err), 0, "%s", err.message);
	cr_assert_eq(res->n_rows, 2);
	cr_assert_eq(strlen(db_result_value(res, 0, 0)), big.len);
	cr_assert_str_eq(db_result_value(res, 0, 0), big.buf);
	cr_assert_str_eq(db_result_value(res, 0, 1), "1.5");
	cr_assert_str_eq(db_result_value(res, 0, 2), "2024-02-29 12:34:56.789");
	cr_assert_str_eq(db_result_value(res, 1, 0), "x");
	cr_assert_null(db_result_value(res, 1, 1));
	db_result_free(res);
	/* A computed value whose length the server cannot know in advance. */
	cr_assert_eq(db_query(conn, "SELECT CONCAT($1, REPEAT('z', 5000))", &p[1], 1,
			      &res, &err), 0, "%s", err.message);
	cr_assert_eq(strlen(db_result_value(res, 0, 0)), 5001);
	db_result_free(res);
	strbuf_release(&big);
	db_close(conn);
}

MDB_TEST(duplicate_key_carries_errno_and_sqlstate)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *conn = test_db_connect(&db);
	struct db_param p = DB_INT(1);

	test_exec(conn, "CREATE TABLE t (id INT PRIMARY KEY)");
	test_exec(conn, "INSERT INTO t VALUES (1)");
	cr_assert_eq(db_query(conn, "INSERT INTO t VALUES ($1)", &p, 1, NULL, &err),
		     DBPHASE_EDB);
	cr_assert_eq(err.server_code, 1062);
	cr_assert_str_eq(err.sqlstate, "23000");
	cr_assert_not(err.retryable);
	cr_assert_not_null(strstr(err.message, "(errno 1062, SQLSTATE 23000)"), "%s",
			   err.message);
	/* The text protocol maps errors the same way. */
	cr_assert_eq(db_exec(conn, "INSERT INTO t VALUES (1)", &err), DBPHASE_EDB);
	cr_assert_eq(err.server_code, 1062);
	cr_assert_str_eq(err.sqlstate, "23000");
	/* A syntax error, and the connection is still usable after both. */
	cr_assert_eq(db_exec(conn, "SELEC 1", &err), DBPHASE_EDB);
	cr_assert_eq(err.server_code, 1064);
	cr_assert_str_eq(err.sqlstate, "42000");
	cr_assert_eq(db_query(conn, "SELECT nosuchcol FROM t WHERE id = $1", &p, 1,
			      NULL, &err), DBPHASE_EDB);
	cr_assert_eq(err.server_code, 1054);
	free(test_query_value(conn, "SELECT 1"));
	err_release(&err);
	db_close(conn);
}

MDB_TEST(multi_statement_exec)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *conn = test_db_connect(&db);
	struct db_result *res = NULL;
	char *v;

	test_exec(conn, "CREATE TABLE a (x INT); INSERT INTO a VALUES (1); "
			"SELECT * FROM a; INSERT INTO a VALUES (2), (3)");
	v = test_query_value(conn, "SELECT COUNT(*) FROM a");
	cr_assert_str_eq(v, "3");
	free(v);
	/* An error in the middle stops there and is reported. */
	cr_assert_eq(db_exec(conn, "INSERT INTO a VALUES (4); INSERT INTO nosuch VALUES (1); "
				   "INSERT INTO a VALUES (5)", &err), DBPHASE_EDB);
	cr_assert_eq(err.server_code, 1146, "%s", err.message);
	v = test_query_value(conn, "SELECT GROUP_CONCAT(x ORDER BY x) FROM a");
	cr_assert_str_eq(v, "1,2,3,4");
	free(v);
	/* query keeps the first result set, affected of the first statement */
	cr_assert_eq(db_query(conn, "UPDATE a SET x = x WHERE x < 3; SELECT x FROM a "
			      "ORDER BY x; SELECT 99", NULL, 0, &res, &err), 0,
		     "%s", err.message);
	cr_assert_eq(res->affected, 2);
	cr_assert_eq(res->n_rows, 4);
	cr_assert_str_eq(db_result_value(res, 3, 0), "4");
	db_result_free(res);
	err_release(&err);
	db_close(conn);
}

MDB_TEST(transactions)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *conn = test_db_connect(&db);
	const struct db_driver *drv = conn->drv;
	char *v;

	test_exec(conn, "CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB");
	cr_assert_not(conn->in_transaction);
	cr_assert_eq(drv->begin(conn, &err), 0, "%s", err.message);
	cr_assert(conn->in_transaction);
	test_exec(conn, "INSERT INTO t VALUES (1)");
	cr_assert_eq(drv->rollback(conn, &err), 0, "%s", err.message);
	cr_assert_not(conn->in_transaction);
	v = test_query_value(conn, "SELECT COUNT(*) FROM t");
	cr_assert_str_eq(v, "0");
	free(v);
	cr_assert_eq(drv->begin(conn, &err), 0, "%s", err.message);
	test_exec(conn, "INSERT INTO t VALUES (2)");
	cr_assert_eq(drv->commit(conn, &err), 0, "%s", err.message);
	cr_assert_not(conn->in_transaction);
	v = test_query_value(conn, "SELECT COUNT(*) FROM t");
	cr_assert_str_eq(v, "1");
	free(v);
	db_close(conn);
}

MDB_TEST(lock_timeout_in_seconds)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *conn = test_db_connect(&db);
	char *v;

	cr_assert_eq(conn->drv->set_lock_timeout(conn, 1500, &err), 0, "%s", err.message);
	v = test_query_value(conn, "SELECT CONCAT(@@lock_wait_timeout, '/', "
				   "@@innodb_lock_wait_timeout)");
	cr_assert_str_eq(v, "2/2");
	free(v);
	cr_assert_eq(conn->drv->set_lock_timeout(conn, 1, &err), 0, "%s", err.message);
	v = test_query_value(conn, "SELECT CONCAT(@@lock_wait_timeout, '/', "
				   "@@innodb_lock_wait_timeout)");
	cr_assert_str_eq(v, "1/1");
	free(v);
	cr_assert_eq(conn->drv->set_lock_timeout(conn, 0, &err), 0, "%s", err.message);
	v = test_query_value(conn, "SELECT @@session.lock_wait_timeout = "
				   "@@global.lock_wait_timeout AND "
				   "@@session.innodb_lock_wait_timeout = "
				   "@@global.innodb_lock_wait_timeout");
	cr_assert_str_eq(v, "1");
	free(v);
	db_close(conn);
}

MDB_TEST(row_lock_timeout_is_retryable)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *a = test_db_connect(&db), *b = test_db_connect(&db);
	struct db_param p = DB_INT(1);
	long start;

	test_exec(a, "CREATE TABLE t (id INT PRIMARY KEY, n INT) ENGINE=InnoDB");
	test_exec(a, "INSERT INTO t VALUES (1, 0)");
	cr_assert_eq(a->drv->begin(a, &err), 0, "%s", err.message);
	test_exec(a, "UPDATE t SET n = 1 WHERE id = 1");

	cr_assert_eq(b->drv->set_lock_timeout(b, 1000, &err), 0, "%s", err.message);
	start = now_ms();
	cr_assert_eq(db_query(b, "UPDATE t SET n = 2 WHERE id = $1", &p, 1, NULL, &err),
		     DBPHASE_ELOCK_TIMEOUT, "%s", err.message);
	cr_assert(err.retryable);
	cr_assert_eq(err.server_code, 1205);
	cr_assert_geq(now_ms() - start, 900);
	cr_assert_lt(now_ms() - start, 5000);

	/* A metadata lock (ALTER waiting behind the open transaction) too. */
	start = now_ms();
	cr_assert_eq(db_exec(b, "ALTER TABLE t ADD COLUMN m INT", &err),
		     DBPHASE_ELOCK_TIMEOUT, "%s", err.message);
	cr_assert(err.retryable);
	cr_assert_lt(now_ms() - start, 5000);

	cr_assert_eq(a->drv->commit(a, &err), 0, "%s", err.message);
	cr_assert_eq(db_query(b, "UPDATE t SET n = 2 WHERE id = $1", &p, 1, NULL, &err), 0,
		     "%s", err.message);
	err_release(&err);
	db_close(a);
	db_close(b);
}

MDB_TEST(deadlock_is_retryable)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *a = test_db_connect(&db), *b = test_db_connect(&db);
	int want = 0, rc;
	struct db_result *res = NULL;
	struct pollfd pfd;

	test_exec(a, "CREATE TABLE t (id INT PRIMARY KEY, n INT) ENGINE=InnoDB");
	test_exec(a, "INSERT INTO t VALUES (1, 0), (2, 0)");
	cr_assert_eq(a->drv->begin(a, &err), 0);
	cr_assert_eq(b->drv->begin(b, &err), 0);
	test_exec(a, "UPDATE t SET n = 1 WHERE id = 1");
	test_exec(b, "UPDATE t SET n = 1 WHERE id = 2");
	/* a waits for b's row, asynchronously; then b asks for a's row. */
	cr_assert_eq(a->drv->send(a, "UPDATE t SET n = 2 WHERE id = 2", NULL, 0, &want,
				  &err), 0, "%s", err.message);
	usleep(200 * 1000);
	rc = db_exec(b, "UPDATE t SET n = 2 WHERE id = 1", &err);
	while (want) {
		pfd = (struct pollfd){ .fd = a->drv->socket(a), .events = POLLIN };
		cr_assert_geq(poll(&pfd, 1, 10000), 0);
		want = DB_WANT_READ;
		cr_assert_geq(a->drv->consume(a, &want, &err), 0);
	}
	if (rc == 0) {
		/* The server chose a as the victim. */
		rc = a->drv->take(a, &res, &err);
	} else {
		cr_assert_eq(a->drv->take(a, &res, NULL), 0);
		db_result_free(res);
	}
	cr_assert_eq(rc, DBPHASE_EDB, "%s", err.message);
	cr_assert_eq(err.server_code, 1213, "%s", err.message);
	cr_assert_str_eq(err.sqlstate, "40001");
	cr_assert(err.retryable);
	err_release(&err);
	db_close(a);
	db_close(b);
}

MDB_TEST(get_lock_contention)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *a = test_db_connect(&db), *b = test_db_connect(&db);
	struct strbuf longname = STRBUF_INIT;
	char *name = xasprintf("dbphase-test-%s", db.name);
	long start;

	cr_assert_eq(a->drv->lock(a, name, 0, &err), 0, "%s", err.message);
	start = now_ms();
	cr_assert_eq(b->drv->lock(b, name, 300, &err), DBPHASE_ELOCK_TIMEOUT);
	cr_assert_geq(now_ms() - start, 250);
	cr_assert_lt(now_ms() - start, 5000);
	cr_assert_not_null(strstr(err.message, name), "%s", err.message);
	cr_assert(err.retryable);
	cr_assert_eq(a->drv->unlock(a, name, &err), 0, "%s", err.message);
	cr_assert_eq(b->drv->lock(b, name, -1, &err), 0, "%s", err.message);
	/* Not held by a any more. */
	cr_assert_eq(a->drv->unlock(a, name, &err), DBPHASE_ENOTFOUND);
	cr_assert_eq(b->drv->unlock(b, name, &err), 0, "%s", err.message);

	/* Names over 64 characters (UTF-8 too) are hashed, still contended. */
	strbuf_addf(&longname, "%s/", name);
	while (longname.len < 200)
		strbuf_addstr(&longname, "\xc3\xa9t\xc3\xa9-");
	cr_assert_eq(a->drv->lock(a, longname.buf, 1000, &err), 0, "%s", err.message);
	cr_assert_eq(b->drv->lock(b, longname.buf, 0, &err), DBPHASE_ELOCK_TIMEOUT,
		     "%s", err.message ? err.message : "locked twice");
	/* ... and a different long name with the same prefix is another lock. */
	strbuf_addch(&longname, 'x');
	cr_assert_eq(b->drv->lock(b, longname.buf, 0, &err), 0, "%s", err.message);

	/* Closing a session releases its locks. */
	db_close(a);
	strbuf_setlen(&longname, longname.len - 1);
	cr_assert_eq(b->drv->lock(b, longname.buf, 2000, &err), 0, "%s", err.message);
	err_release(&err);
	strbuf_release(&longname);
	free(name);
	db_close(b);
}

MDB_TEST(async_poll)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *conn = test_db_connect(&db);
	struct db_param p[2] = { DB_INT(40), DB_TEXT("two") };
	struct db_result *res = NULL;
	long start = now_ms();

	cr_assert_eq(run_async(conn, "SELECT SLEEP(0.2), 42", NULL, 0, -1, &res, &err), 0,
		     "%s", err.message);
	cr_assert_geq(now_ms() - start, 190);
	cr_assert_eq(res->n_rows, 1);
	cr_assert_str_eq(db_result_value(res, 0, 1), "42");
	db_result_free(res);

	start = now_ms();
	cr_assert_eq(run_async(conn, "SELECT SLEEP(0.2), $1 + 2, $2, $1", p, 2, -1, &res,
			       &err), 0, "%s", err.message);
	cr_assert_geq(now_ms() - start, 190);
	cr_assert_str_eq(db_result_value(res, 0, 1), "42");
	cr_assert_str_eq(db_result_value(res, 0, 2), "two");
	cr_assert_str_eq(db_result_value(res, 0, 3), "40");
	db_result_free(res);

	/* Errors come out of take, and the connection goes on. */
	cr_assert_eq(run_async(conn, "SELECT * FROM nosuch WHERE x = $1", p, 1, -1, &res,
			       &err), DBPHASE_EDB);
	cr_assert_eq(err.server_code, 1146);
	cr_assert_null(res);
	/* One statement at a time. */
	{
		int want;

		cr_assert_eq(conn->drv->send(conn, "SELECT SLEEP(0.1)", NULL, 0, &want,
					     &err), 0);
		cr_assert_lt(conn->drv->send(conn, "SELECT 1", NULL, 0, &want, &err), 0);
		cr_assert_lt(conn->drv->take(conn, &res, &err), 0);
		cr_assert_lt(db_exec(conn, "SELECT 1", &err), 0);
	}
	err_release(&err);
	/* Closing with a statement in flight frees everything. */
	db_close(conn);
}

MDB_TEST(close_with_prepared_statement_in_flight)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *conn = test_db_connect(&db);
	struct db_param p = DB_TEXT("0.3");
	int want = 0;

	cr_assert_eq(conn->drv->send(conn, "SELECT SLEEP($1)", &p, 1, &want, &err), 0,
		     "%s", err.message);
	cr_assert_neq(want, 0);
	usleep(50 * 1000);
	db_close(conn);
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

MDB_TEST(cancel_from_another_thread)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *conn = test_db_connect(&db);
	struct cancel_arg arg = { conn, -1 };
	pthread_t thread;
	long start = now_ms();

	cr_assert_eq(pthread_create(&thread, NULL, cancel_later, &arg), 0);
	cr_assert_eq(db_exec(conn, "SELECT SLEEP(10)", &err), DBPHASE_ECANCELLED,
		     "%s", err.message ? err.message : "no error");
	pthread_join(thread, NULL);
	cr_assert_eq(arg.rc, 0);
	cr_assert_lt(now_ms() - start, 5000);
	err_release(&err);
	db_close(conn);
}

MDB_TEST(async_cancel)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *conn = test_db_connect(&db);
	struct db_result *res = NULL;
	long start = now_ms();
	char *v;

	cr_assert_eq(run_async(conn, "SELECT SLEEP(10)", NULL, 0, 200, &res, &err),
		     DBPHASE_ECANCELLED, "%s", err.message ? err.message : "no error");
	cr_assert_lt(now_ms() - start, 5000);
	cr_assert_eq(err.server_code, 1317);
	/* The same with a prepared statement. */
	start = now_ms();
	cr_assert_eq(run_async(conn, "SELECT SLEEP($1)", (struct db_param[]){ DB_INT(10) },
			       1, 200, &res, &err),
		     DBPHASE_ECANCELLED, "%s", err.message ? err.message : "no error");
	cr_assert_lt(now_ms() - start, 5000);
	/* The session survives a cancel; cancel while idle is harmless. */
	cr_assert_eq(conn->drv->cancel(conn, &err), 0);
	v = test_query_value(conn, "SELECT 7");
	cr_assert_str_eq(v, "7");
	free(v);
	err_release(&err);
	db_close(conn);
}

MDB_TEST(killed_connection_is_retryable)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *a = test_db_connect(&db), *b = test_db_connect(&db);
	struct db_param p = DB_INT(1);
	char *sql = xasprintf("KILL CONNECTION %ld", session_id(a));
	int rc, code;

	test_exec(b, sql);
	usleep(100 * 1000);
	rc = db_query(a, "SELECT $1", &p, 1, NULL, &err);
	cr_assert_eq(rc, DBPHASE_EDB, "%s", err.message ? err.message : "no error");
	code = err.server_code;
	cr_assert(code == 2006 || code == 2013 || code == 1927 || code == 2055,
		  "%s", err.message);
	cr_assert(err.retryable);
	/* And the next one, on the dead connection, too. */
	cr_assert_lt(db_exec(a, "SELECT 1", &err), 0);
	cr_assert(err.retryable, "%s", err.message);
	/* Through the asynchronous path as well. */
	cr_assert_lt(run_async(a, "SELECT 1", NULL, 0, -1, NULL, &err), 0);
	cr_assert(err.retryable, "%s", err.message);
	err_release(&err);
	free(sql);
	db_close(a);
	db_close(b);
}

MDB_TEST(quoting_round_trips)
{
	struct db_conn *conn = test_db_connect(&db);
	const struct db_driver *drv = conn->drv;
	struct strbuf sb = STRBUF_INIT;
	const char *text = "a'b''c\\d\\\\e`f\"g";
	char *v;

	drv->quote_ident(&sb, "we`ird");
	cr_assert_str_eq(sb.buf, "`we``ird`");
	strbuf_reset(&sb);
	drv->quote_literal(&sb, "it's \\");
	cr_assert_str_eq(sb.buf, "'it''s \\\\'");
	strbuf_reset(&sb);

	strbuf_addstr(&sb, "CREATE TABLE ");
	drv->quote_ident(&sb, "we`ird");
	strbuf_addstr(&sb, " (");
	drv->quote_ident(&sb, "c`ol");
	strbuf_addstr(&sb, " TEXT)");
	test_exec(conn, sb.buf);
	strbuf_reset(&sb);
	strbuf_addstr(&sb, "INSERT INTO `we``ird` VALUES (");
	drv->quote_literal(&sb, text);
	strbuf_addstr(&sb, ")");
	test_exec(conn, sb.buf);
	v = test_query_value(conn, "SELECT `c``ol` FROM `we``ird`");
	cr_assert_str_eq(v, text);
	free(v);
	strbuf_release(&sb);
	db_close(conn);
}

MDB_TEST(introspection)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *conn = test_db_connect(&db);
	const struct db_driver *drv = conn->drv;
	struct db_table_info info;
	const struct db_column_info *col;
	const struct db_index_info *idx;
	char **names = NULL;
	size_t n = 0, i;
	bool exists;
	int seen = 0;

	test_exec(conn, "CREATE TABLE parent (id INT PRIMARY KEY)");
	test_exec(conn,
		  "CREATE TABLE t ("
		  " id BIGINT NOT NULL AUTO_INCREMENT,"
		  " name VARCHAR(20) NOT NULL DEFAULT 'abc',"
		  " note TEXT NULL DEFAULT NULL,"
		  " quoted VARCHAR(10) DEFAULT 'NULL',"
		  " n INT DEFAULT 0,"
		  " created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,"
		  " kind ENUM('Alpha','beta') NOT NULL,"
		  " parent_id INT,"
		  " PRIMARY KEY (id),"
		  " UNIQUE KEY uq_name (name),"
		  " KEY idx_n_note (n, note(10)),"
		  " CONSTRAINT positive CHECK (n >= 0),"
		  " CONSTRAINT fk_parent FOREIGN KEY (parent_id) REFERENCES parent (id)"
		  "   ON DELETE CASCADE"
		  ") ENGINE=InnoDB");
	test_exec(conn, "CREATE TRIGGER t_bi BEFORE INSERT ON t FOR EACH ROW "
			"SET NEW.n = COALESCE(NEW.n, 0)");
	test_exec(conn, "CREATE VIEW v AS SELECT id FROM t");

	cr_assert_eq(drv->table_exists(conn, "t", &exists, &err), 0, "%s", err.message);
	cr_assert(exists);
	cr_assert_eq(drv->table_exists(conn, "nosuch", &exists, &err), 0);
	cr_assert_not(exists);
	cr_assert_eq(drv->list_tables(conn, &names, &n, &err), 0, "%s", err.message);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(names[0], "parent");
	cr_assert_str_eq(names[1], "t");
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);

	cr_assert_eq(drv->describe_table(conn, "t", &info, &err), 0, "%s", err.message);
	cr_assert_str_eq(info.name, "t");
	cr_assert_eq(info.n_columns, 8);
	cr_assert_str_eq(info.columns[0].name, "id");
	cr_assert_str_eq(info.columns[7].name, "parent_id");
	col = &info.columns[0];
	cr_assert_str_eq(col->type, "bigint(20)");
	cr_assert(col->primary_key);
	cr_assert_not(col->nullable);
	cr_assert_null(col->default_expr);
	col = db_table_info_column(&info, "name");
	cr_assert_str_eq(col->type, "varchar(20)");
	cr_assert_not(col->primary_key);
	cr_assert_str_eq(col->default_expr, "'abc'");
	col = db_table_info_column(&info, "note");
	cr_assert(col->nullable);
	cr_assert_null(col->default_expr, "%s", col->default_expr);
	col = db_table_info_column(&info, "quoted");
	cr_assert_str_eq(col->default_expr, "'NULL'");
	cr_assert_str_eq(db_table_info_column(&info, "n")->default_expr, "0");
	cr_assert_str_eq(db_table_info_column(&info, "created")->default_expr,
			 "current_timestamp()");
	cr_assert_str_eq(db_table_info_column(&info, "kind")->type, "enum('Alpha','beta')");
	cr_assert_null(db_table_info_column(&info, "parent_id")->default_expr);

	cr_assert_str_eq(info.indexes[0].name, "PRIMARY");
	cr_assert(info.indexes[0].primary && info.indexes[0].unique && info.indexes[0].valid);
	idx = db_table_info_index(&info, "uq_name");
	cr_assert_not_null(idx);
	cr_assert(idx->unique);
	cr_assert_not(idx->primary);
	idx = db_table_info_index(&info, "idx_n_note");
	cr_assert_not(idx->unique);
	cr_assert_eq(idx->n_columns, 2);
	cr_assert_str_eq(idx->columns[0], "n");
	cr_assert_str_eq(idx->columns[1], "note");
	/* InnoDB adds an index for the foreign key. */
	cr_assert_not_null(db_table_info_index(&info, "fk_parent"));

	for (i = 0; i < info.n_constraints; i++) {
		const struct db_constraint_info *con = &info.constraints[i];

		cr_assert(con->validated);
		if (strcmp(con->name, "positive") == 0) {
			cr_assert_eq(con->kind, DB_CONSTRAINT_CHECK);
			cr_assert_str_eq(con->definition, "CHECK (`n` >= 0)");
			seen |= 1;
		} else if (strcmp(con->name, "fk_parent") == 0) {
			cr_assert_eq(con->kind, DB_CONSTRAINT_FOREIGN_KEY);
			cr_assert_str_eq(con->definition, "FOREIGN KEY (`parent_id`) "
					 "REFERENCES `parent` (`id`) ON DELETE CASCADE");
			seen |= 2;
		} else if (strcmp(con->name, "PRIMARY") == 0) {
			cr_assert_eq(con->kind, DB_CONSTRAINT_PRIMARY_KEY);
			cr_assert_str_eq(con->definition, "PRIMARY KEY (`id`)");
			seen |= 4;
		} else if (strcmp(con->name, "uq_name") == 0) {
			cr_assert_eq(con->kind, DB_CONSTRAINT_UNIQUE);
			cr_assert_str_eq(con->definition, "UNIQUE (`name`)");
			seen |= 8;
		}
	}
	cr_assert_eq(seen, 15, "constraints seen: %d", seen);
	cr_assert_eq(info.n_triggers, 1);
	cr_assert_not_null(db_table_info_trigger(&info, "t_bi"));
	db_table_info_release(&info);

	cr_assert_eq(drv->describe_table(conn, "nosuch", &info, &err), DBPHASE_ENOTFOUND);
	cr_assert_eq(info.n_columns, 0);
	err_release(&err);
	db_close(conn);
}

/* ---- quoting that the URL or the server's sql_mode cannot cut open ----------- */

/*
 * In gbk, "\xe4\xb8\x81" (丁 in UTF-8) is followed by a backslash that
 * gbk reads as the second byte of the character 0x815c: the backslash that
 * quoting put before the quote then escapes the quote instead, and the rest
 * of the value runs as SQL.
 */
#define ATTACK "\xe4\xb8\x81\\' , x int) DEFAULT CHARSET=utf8mb4; DROP TABLE victim; -- "

/* The attack as a YAML double-quoted scalar. */
#define ATTACK_YAML "\"\xe4\xb8\x81\\\\' , x int) DEFAULT CHARSET=utf8mb4; DROP TABLE victim; -- \""

static const char attack_v1[] =
	"description: a table whose default is an attack\n"
	"operations:\n"
	"  - create_table:\n"
	"      name: t\n"
	"      columns:\n"
	"        - {name: id, type: bigint, primary_key: true}\n"
	"        - {name: v, type: \"varchar(200)\", default: " ATTACK_YAML "}\n";

static const char attack_v2[] =
	"description: the attack as the value of a column added to filled rows\n"
	"operations:\n"
	"  - add_column: {table: t, column: {name: w, type: \"varchar(200)\", nullable: false,"
	" default: " ATTACK_YAML "}}\n";

MDB_TEST(multibyte_charset_cannot_cut_a_literal_open)
{
	const char *const v[] = { attack_v1, attack_v2 };
	struct db_conn *conn = test_db_connect(&db);
	char *dir = repo_create("attack", v, 2);
	char *url;
	char *value;
	struct run r;

	test_exec(conn, "CREATE TABLE victim (id int)");
	/* gbk, big5, sjis, cp932, gb18030: refused before anything runs (65). */
	url = url_with(db.url, "charset=gbk");
	run_dbphase(&r, "--database", url, "--repository", dir, "db_sync", NULL);
	cr_assert_eq(r.code, 65, RUN_FMT, RUN_ARGS(r));
	cr_assert_not_null(strstr(r.err, "charset=gbk refused"), "%s", r.err);
	run_release(&r);
	free(url);
	url = url_with(db.url, "charset=SJIS");
	run_dbphase(&r, "--database", url, "--repository", dir, "db_sync", "--expand", NULL);
	cr_assert_eq(r.code, 65, RUN_FMT, RUN_ARGS(r));
	run_release(&r);
	free(url);
	value = app_tables(conn);
	cr_assert_str_eq(value, "victim", "tables after the refusals: %s", value);
	free(value);

	/* Another charset in the URL (OpenStack's utf8, latin1) is the application's:
	 * dbphase talks utf8mb4, and the value is stored as written. */
	url = url_with(db.url, "charset=latin1");
	run_dbphase(&r, "--database", url, "--repository", dir, "db_sync", "1", NULL);
	cr_assert_eq(r.code, 0, RUN_FMT, RUN_ARGS(r));
	run_release(&r);
	test_exec(conn, "INSERT INTO t (id) VALUES (1)");
	free(url);
	url = url_with(db.url, "charset=utf8");
	run_dbphase(&r, "--database", url, "--repository", dir, "db_sync", NULL);
	cr_assert_eq(r.code, 0, RUN_FMT, RUN_ARGS(r));
	run_release(&r);
	value = app_tables(conn);
	cr_assert_str_eq(value, "t,victim", "tables: %s", value);
	free(value);
	test_exec(conn, "INSERT INTO t (id) VALUES (2)");
	cr_assert_eq(query_ll(conn, "SELECT count(*) FROM t"), 2);
	value = test_query_value(conn, "SELECT v FROM t WHERE id = 2");
	cr_assert_str_eq(value, ATTACK);
	free(value);
	value = test_query_value(conn, "SELECT w FROM t WHERE id = 1");
	cr_assert_str_eq(value, ATTACK);
	free(value);
	value = test_query_value(conn, "SELECT w FROM t WHERE id = 2");
	cr_assert_str_eq(value, ATTACK);
	free(value);
	free(url);
	test_rmtree(dir);
	free(dir);
	db_close(conn);
}

/* The server's global sql_mode before a test changed it; restored by its fini. */
static char *saved_global_mode;

static void
exec_global_mode(const char *mode)
{
	struct db_conn *conn = test_db_connect(&db);
	struct strbuf sb = STRBUF_INIT;

	strbuf_addstr(&sb, "SET GLOBAL sql_mode = ");
	conn->drv->quote_literal(&sb, mode);
	test_exec(conn, sb.buf);
	strbuf_release(&sb);
	db_close(conn);
}

static void
set_global_mode(const char *mode)
{
	struct db_conn *conn = test_db_connect(&db);

	saved_global_mode = test_query_value(conn, "SELECT @@GLOBAL.sql_mode");
	db_close(conn);
	exec_global_mode(mode);
}

static void
restore_global_mode(void)
{
	if (saved_global_mode)
		exec_global_mode(saved_global_mode);
	free(saved_global_mode);
	saved_global_mode = NULL;
	teardown_db();
}

/* The strings that quoting must carry through whole. */
static const char *const tricky[] = {
	"it's", "back\\slash", "say \"hi\"", "end\\", "\\'", "''", "\\\\'x", "a`b",
	"\\'; DROP TABLE victim; -- ",
};

static const char mode_v1[] =
	"description: defaults with quotes and backslashes\n"
	"operations:\n"
	"  - create_table:\n"
	"      name: q\n"
	"      columns:\n"
	"        - {name: id, type: bigint, primary_key: true}\n"
	"        - {name: c0, type: \"varchar(100)\", default: \"it's\"}\n"
	"        - {name: c1, type: \"varchar(100)\", default: 'back\\slash'}\n"
	"        - {name: c2, type: \"varchar(100)\", default: 'say \"hi\"'}\n"
	"        - {name: c3, type: \"varchar(100)\", default: 'end\\'}\n"
	"        - {name: c4, type: \"varchar(100)\", default: \"\\\\'\"}\n"
	"        - {name: c5, type: \"varchar(100)\", default: \"''\"}\n"
	"        - {name: c6, type: \"varchar(100)\", default: \"\\\\\\\\'x\"}\n"
	"        - {name: c7, type: \"varchar(100)\", default: 'a`b'}\n"
	"        - {name: c8, type: \"varchar(100)\"}\n";

static const char mode_v2[] =
	"description: the same value for filled rows, and an expression of the user's\n"
	"operations:\n"
	"  - add_column: {table: q, column: {name: c9, type: \"varchar(100)\", nullable: false,"
	" default: \"\\\\'; DROP TABLE victim; -- \"}}\n"
	"  - backfill:\n"
	"      table: q\n"
	"      set:\n"
	"        c8: |-\n"
	"          CONCAT('p\\\\q', \"r\")\n";

Test(mysql, server_sql_mode_cannot_change_what_a_literal_means, .init = setup_db,
     .fini = restore_global_mode)
{
	const char *const v[] = { mode_v1, mode_v2 };
	struct db_conn *conn;
	char *dir = repo_create("mode", v, 2);
	struct strbuf sb = STRBUF_INIT;
	struct run r;
	char *value;
	size_t i;

	set_global_mode("ANSI,NO_BACKSLASH_ESCAPES,STRICT_ALL_TABLES");
	/* A new session gets the server's mode, less what would change quoting. */
	conn = test_db_connect(&db);
	value = test_query_value(conn, "SELECT @@GLOBAL.sql_mode");
	cr_assert(strstr(value, "NO_BACKSLASH_ESCAPES") && strstr(value, "ANSI_QUOTES"), "%s",
		  value);
	free(value);
	value = test_query_value(conn, "SELECT @@SESSION.sql_mode");
	cr_assert_null(strstr(value, "NO_BACKSLASH_ESCAPES"), "%s", value);
	cr_assert_null(strstr(value, "ANSI"), "%s", value);
	cr_assert_not_null(strstr(value, "STRICT_ALL_TABLES"), "%s", value);
	cr_assert_not_null(strstr(value, "PIPES_AS_CONCAT"), "%s", value);
	free(value);
	value = test_query_value(conn, "SELECT @@character_set_client");
	cr_assert_str_eq(value, "utf8mb4");
	free(value);

	/* The driver's own quoting, on such a server. */
	for (i = 0; i < sizeof(tricky) / sizeof(tricky[0]); i++) {
		strbuf_reset(&sb);
		strbuf_addstr(&sb, "SELECT ");
		conn->drv->quote_literal(&sb, tricky[i]);
		value = test_query_value(conn, sb.buf);
		cr_assert_str_eq(value, tricky[i], "%s", sb.buf);
		free(value);
	}

	/* Migrations through the program. */
	test_exec(conn, "CREATE TABLE victim (id int)");
	run_dbphase(&r, "--database", db.url, "--repository", dir, "db_sync", "1", NULL);
	cr_assert_eq(r.code, 0, RUN_FMT, RUN_ARGS(r));
	run_release(&r);
	test_exec(conn, "INSERT INTO q (id) VALUES (1)");
	run_dbphase(&r, "--database", db.url, "--repository", dir, "db_sync", NULL);
	cr_assert_eq(r.code, 0, RUN_FMT, RUN_ARGS(r));
	run_release(&r);
	test_exec(conn, "INSERT INTO q (id) VALUES (2)");
	for (i = 0; i < 8; i++) {
		char *sql = xasprintf("SELECT c%zu FROM q WHERE id = 2", i);

		value = test_query_value(conn, sql);
		cr_assert_str_eq(value, tricky[i], "%s", sql);
		free(value);
		free(sql);
	}
	value = test_query_value(conn, "SELECT c9 FROM q WHERE id = 1");
	cr_assert_str_eq(value, tricky[8]);
	free(value);
	/* The user's expression reads as MariaDB's default quoting has it. */
	value = test_query_value(conn, "SELECT c8 FROM q WHERE id = 1");
	cr_assert_str_eq(value, "p\\qr");
	free(value);
	value = app_tables(conn);
	cr_assert_str_eq(value, "q,victim");
	free(value);
	strbuf_release(&sb);
	test_rmtree(dir);
	free(dir);
	db_close(conn);
}

#else

#include "testlib.h"

Test(mysql, not_built)
{
	cr_skip_test("built without mariadb-connector-c");
}

#endif

/*
 * What `plan --sql` prints to set a session up (dialect_session_sql) gives a
 * session whatever its sql_mode what the driver gives its own: no flag
 * that changes what a quoted string or name means, the others kept.
 */
Test(mysql, printed_session_setup_is_the_drivers, .init = setup_db, .fini = teardown_db)
{
	struct db_conn *conn = test_db_connect(&db);
	const char *const *sql = dialect_session_sql(DB_BACKEND_MYSQL);
	char *value;
	size_t i;

	test_exec(conn, "SET SESSION sql_mode = 'ANSI,NO_BACKSLASH_ESCAPES,STRICT_ALL_TABLES'");
	for (i = 0; sql[i]; i++)
		test_exec(conn, sql[i]);
	value = test_query_value(conn, "SELECT @@SESSION.sql_mode");
	cr_assert_str_eq(value, "REAL_AS_FLOAT,PIPES_AS_CONCAT,IGNORE_SPACE,STRICT_ALL_TABLES");
	free(value);
	test_exec(conn, "SET SESSION sql_mode = 'ANSI_QUOTES'");
	for (i = 0; sql[i]; i++)
		test_exec(conn, sql[i]);
	value = test_query_value(conn, "SELECT @@SESSION.sql_mode");
	cr_assert_str_eq(value, "");
	free(value);
	value = test_query_value(conn, "SELECT @@SESSION.character_set_client");
	cr_assert_str_eq(value, "utf8mb4");
	free(value);
	db_close(conn);
}
