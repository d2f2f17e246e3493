/*
 * tests/testlib.c - throwaway databases and small helpers for the suites.
 */
#include "config.h"

#include "testlib.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/strbuf.h"
#include "core/xmalloc.h"

enum db_backend test_backends[DB_BACKEND__COUNT] = {
	DB_BACKEND_SQLITE, DB_BACKEND_POSTGRESQL, DB_BACKEND_MYSQL,
};

static const char *
server_env(enum db_backend backend)
{
	switch (backend) {
	case DB_BACKEND_POSTGRESQL:
		return "DBPHASE_TEST_PG_URL";
	case DB_BACKEND_MYSQL:
		return "DBPHASE_TEST_MYSQL_URL";
	default:
		return NULL;
	}
}

/*
 * A backend without its server fails its tests, so that a plain
 * `meson test` never passes with two backends quietly left out; only
 * DBPHASE_TEST_ALLOW_SKIP=1 turns that into a skip, which TAP reports as
 * SKIP and meson counts.  DBPHASE_TEST_REQUIRE_SERVERS=1 (tools/test, CI)
 * requires them whatever else is set.
 */
static bool
servers_required(void)
{
	const char *require = getenv("DBPHASE_TEST_REQUIRE_SERVERS");
	const char *allow = getenv("DBPHASE_TEST_ALLOW_SKIP");

	if (require && strcmp(require, "1") == 0)
		return true;
	return !(allow && strcmp(allow, "1") == 0);
}

char *
test_mkdtemp(void)
{
	const char *tmp = getenv("TMPDIR");
	char *path = xasprintf("%s/dbphase-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");

	cr_assert(mkdtemp(path) != NULL, "mkdtemp: %s", strerror(errno));
	return path;
}

static int
rmtree_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

void
test_rmtree(const char *dir)
{
	if (dir)
		nftw(dir, rmtree_one, 16, FTW_DEPTH | FTW_PHYS);
}

void
test_write_file(const char *dir, const char *relpath, const char *text)
{
	char *path = xasprintf("%s/%s", dir, relpath);
	char *p;
	FILE *f;

	for (p = path + strlen(dir) + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		mkdir(path, 0755);
		*p = '/';
	}
	f = fopen(path, "w");
	cr_assert(f != NULL, "cannot write '%s': %s", path, strerror(errno));
	fputs(text, f);
	fclose(f);
	free(path);
}

/* url with its database part replaced by name (query kept). */
static char *
url_with_database(const char *admin_url, const char *name)
{
	struct strbuf sb = STRBUF_INIT;
	const char *auth = strstr(admin_url, "://");
	const char *path, *query;

	cr_assert(auth != NULL, "bad server URL '%s'", admin_url);
	path = auth + 3 + strcspn(auth + 3, "/?");
	query = strchr(path, '?');
	strbuf_add(&sb, admin_url, (size_t)(path - admin_url));
	strbuf_addf(&sb, "/%s", name);
	if (query)
		strbuf_addstr(&sb, query);
	return strbuf_detach(&sb);
}

static struct db_conn *
connect_url(const char *text)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_url url;
	struct db_conn *conn = NULL;

	cr_assert(db_url_parse(text, &url, &err) == 0, "%s", err.message);
	if (db_connect(&url, &conn, &err) < 0)
		cr_assert_fail("cannot connect: %s", err.message);
	db_url_release(&url);
	err_release(&err);
	return conn;
}

void
test_db_create(enum db_backend backend, struct test_db *db)
{
	static unsigned counter;
	const char *env = server_env(backend);
	const char *admin;
	struct db_conn *conn;
	struct strbuf sql = STRBUF_INIT;

	memset(db, 0, sizeof(*db));
	db->backend = backend;
	if (backend == DB_BACKEND_SQLITE) {
		db->dir = test_mkdtemp();
		db->name = xasprintf("%s/test.db", db->dir);
		db->url = xasprintf("sqlite:///%s", db->name);
		return;
	}
	if (db_driver_for(backend) == NULL) {
		if (servers_required())
			cr_assert_fail("dbphase was built without the %s driver; configure with"
				       " -D%s=enabled, or set DBPHASE_TEST_ALLOW_SKIP=1 to skip"
				       " its tests", db_backend_name(backend),
				       backend == DB_BACKEND_POSTGRESQL ? "postgresql" : "mariadb");
		cr_skip_test("%s driver not built (DBPHASE_TEST_ALLOW_SKIP=1)",
			     db_backend_name(backend));
	}
	admin = getenv(env);
	if (admin == NULL || *admin == '\0') {
		if (servers_required())
			cr_assert_fail("%s is not set: no %s server to test against. Run tools/test"
				       " (it starts throwaway servers), set %s to a server, or set"
				       " DBPHASE_TEST_ALLOW_SKIP=1 to skip the %s tests",
				       env, db_backend_name(backend), env,
				       db_backend_name(backend));
		cr_skip_test("%s not set: no %s server (DBPHASE_TEST_ALLOW_SKIP=1)", env,
			     db_backend_name(backend));
	}
	db->name = xasprintf("dbphase_t_%ld_%u_%ld", (long)getpid(), counter++,
			     (long)(time(NULL) % 100000));
	db->url = url_with_database(admin, db->name);
	conn = connect_url(admin);
	conn->drv->quote_ident(&sql, db->name);
	{
		char *stmt = xasprintf("CREATE DATABASE %s", sql.buf);

		test_exec(conn, stmt);
		free(stmt);
	}
	strbuf_release(&sql);
	db_close(conn);
}

void
test_db_drop(struct test_db *db)
{
	const char *admin;

	if (db->backend == DB_BACKEND_SQLITE) {
		test_rmtree(db->dir);
	} else if (db->name && (admin = getenv(server_env(db->backend)))) {
		struct dbphase_error err = DBPHASE_ERROR_INIT;
		struct db_url url;
		struct db_conn *conn = NULL;
		struct strbuf sb = STRBUF_INIT;

		if (db_url_parse(admin, &url, &err) == 0 &&
		    db_connect(&url, &conn, &err) == 0) {
			strbuf_addstr(&sb, "DROP DATABASE IF EXISTS ");
			conn->drv->quote_ident(&sb, db->name);
			if (db->backend == DB_BACKEND_POSTGRESQL)
				strbuf_addstr(&sb, " WITH (FORCE)");
			db_exec(conn, sb.buf, &err);
			db_close(conn);
		}
		db_url_release(&url);
		strbuf_release(&sb);
		err_release(&err);
	}
	free(db->url);
	free(db->name);
	free(db->dir);
	memset(db, 0, sizeof(*db));
}

struct db_conn *
test_db_connect(const struct test_db *db)
{
	return connect_url(db->url);
}

void
test_exec(struct db_conn *conn, const char *sql)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;

	if (db_exec(conn, sql, &err) < 0)
		cr_assert_fail("[%s] %s\n  failed: %s", conn->drv->name, sql, err.message);
	err_release(&err);
}

char *
test_query_value(struct db_conn *conn, const char *sql)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_result *res = NULL;
	char *value = NULL;

	if (db_query(conn, sql, NULL, 0, &res, &err) < 0)
		cr_assert_fail("[%s] %s\n  failed: %s", conn->drv->name, sql, err.message);
	if (res->n_rows > 0 && res->n_cols > 0)
		value = xstrdup_or_null(db_result_value(res, 0, 0));
	db_result_free(res);
	return value;
}

const char *
test_dbphase_bin(void)
{
	static char *path;
	const char *env = getenv("DBPHASE_BIN"), *root = getenv("DBPHASE_BUILD_ROOT");

	if (env && *env)
		return env;
	if (path == NULL)
		path = xasprintf("%s/dbphase", root && *root ? root : ".");
	return path;
}

pid_t
test_dbphase_spawn(const char *const *args, const char *out_path)
{
	size_t n = 0;
	const char **argv;
	pid_t pid;

	while (args[n])
		n++;
	argv = xcalloc(n + 2, sizeof(char *));
	argv[0] = test_dbphase_bin();
	memcpy(argv + 1, args, n * sizeof(char *));
	fflush(NULL);
	pid = fork();
	cr_assert(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	free(argv);
	return pid;
}

int
test_wait(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		cr_assert(errno == EINTR, "waitpid: %s", strerror(errno));
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

char *
test_read_file(const char *path)
{
	struct strbuf sb = STRBUF_INIT;
	char buf[4096];
	size_t got;
	FILE *f = fopen(path, "rb");

	if (f == NULL)
		return NULL;
	while ((got = fread(buf, 1, sizeof(buf), f)) > 0)
		strbuf_add(&sb, buf, got);
	fclose(f);
	return strbuf_detach(&sb);
}

int
test_dbphase_run(const char *const *args, char **output)
{
	char *dir = test_mkdtemp();
	char *path = xasprintf("%s/out", dir);
	int code = test_wait(test_dbphase_spawn(args, path));

	if (output)
		*output = test_read_file(path);
	test_rmtree(dir);
	free(dir);
	free(path);
	return code;
}

void
test_fill_rows(struct db_conn *conn, const char *table, long rows)
{
	struct strbuf sql = STRBUF_INIT;

	strbuf_addstr(&sql, "INSERT INTO ");
	conn->drv->quote_ident(&sql, table);
	switch (conn->drv->backend) {
	case DB_BACKEND_POSTGRESQL:
		strbuf_addf(&sql, " (id, n) SELECT g, g FROM generate_series(1, %ld) g", rows);
		break;
	case DB_BACKEND_MYSQL:
		strbuf_addf(&sql, " (id, n) SELECT seq, seq FROM seq_1_to_%ld", rows);
		break;
	case DB_BACKEND_SQLITE:
		strbuf_addf(&sql, " (id, n) WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL "
			    "SELECT i + 1 FROM g WHERE i < %ld) SELECT i, i FROM g", rows);
		break;
	}
	test_exec(conn, sql.buf);
	strbuf_release(&sql);
}
