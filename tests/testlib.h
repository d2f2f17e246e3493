/*
 * tests/testlib.h - what the criterion suites share: a throwaway database
 * per test on every backend, and backend-parametrised test declarations.
 *
 * Servers come from the environment that tools/test exports:
 *   DBPHASE_TEST_PG_URL      e.g. postgresql://postgres@127.0.0.1:54321/postgres
 *   DBPHASE_TEST_MYSQL_URL   e.g. mysql://root@127.0.0.1:33061/mysql
 * A test whose server is not configured fails, naming the variable, so
 * that a plain `meson test` cannot pass with two backends left out; with
 * DBPHASE_TEST_ALLOW_SKIP=1 it is skipped instead (TAP "# SKIP", counted by
 * meson and by tools/test).  DBPHASE_TEST_REQUIRE_SERVERS=1 (tools/test and
 * CI) requires the servers even then.
 */
#ifndef DBPHASE_TESTS_TESTLIB_H
#define DBPHASE_TESTS_TESTLIB_H

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <sys/types.h>

#include "core/url.h"
#include "drivers/driver.h"

struct test_db {
	enum db_backend backend;
	char *url;	/* URL of the fresh database; owned */
	char *name;	/* its name (database, or SQLite file path); owned */
	char *dir;	/* SQLite: the temporary folder holding it; owned */
};

extern enum db_backend test_backends[DB_BACKEND__COUNT];

/*
 * Create a fresh, empty database on backend, or skip/fail the test when
 * the backend's server is not configured.  Drop it with test_db_drop.
 */
void test_db_create(enum db_backend backend, struct test_db *db);
void test_db_drop(struct test_db *db);

/* Connect to db's URL; fails the test on error. */
struct db_conn *test_db_connect(const struct test_db *db);

/* Run sql on conn; fails the test, naming the backend and the SQL, on error. */
void test_exec(struct db_conn *conn, const char *sql);

/* The single value of a one-row, one-column query (owned), or NULL. */
char *test_query_value(struct db_conn *conn, const char *sql);

/* A temporary folder (owned); removed with test_rmtree. */
char *test_mkdtemp(void);
void test_rmtree(const char *dir);

/* Write text to dir/relpath, creating folders on the way. */
void test_write_file(const char *dir, const char *relpath, const char *text);

/* The built dbphase program ($DBPHASE_BIN, else $DBPHASE_BUILD_ROOT/dbphase). */
const char *test_dbphase_bin(void);

/*
 * Start dbphase with args (NULL-terminated, without argv[0]) as a child
 * process whose stdout and stderr go to the file out_path (may be NULL:
 * /dev/null).  Returns its pid.
 */
pid_t test_dbphase_spawn(const char *const *args, const char *out_path);

/* Wait for a child; its exit code, or 128 + signal. */
int test_wait(pid_t pid);

/* Run dbphase to completion; its exit code.  *output (may be NULL) gets
 * what it printed, owned by the caller. */
int test_dbphase_run(const char *const *args, char **output);

/* Read a whole file (owned), or NULL. */
char *test_read_file(const char *path);

/*
 * Fill table (id bigint key, n integer) with ids 1..rows and n = id, in the
 * backend's fastest way.
 */
void test_fill_rows(struct db_conn *conn, const char *table, long rows);

/*
 * Declare a test that runs once per backend, each in its own process:
 *   BACKEND_TEST(driver, roundtrip) { ... *backend ... }
 */
#define BACKEND_TEST(suite, name, ...)                                        \
	ParameterizedTestParameters(suite, name)                              \
	{                                                                     \
		return cr_make_param_array(enum db_backend, test_backends,    \
					   DB_BACKEND__COUNT);                \
	}                                                                     \
	ParameterizedTest(enum db_backend *backend, suite, name, ##__VA_ARGS__)

#endif
