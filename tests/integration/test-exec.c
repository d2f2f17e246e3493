/*
 * tests/integration/test-exec.c - the migrate phase's executor on real
 * servers: every row right with 1, 2 and 8 jobs; text and composite keys;
 * a non-idempotent backfill (n = n + 1) applied exactly once across
 * SIGKILLs at random moments, a SIGINT stop, worker connections killed
 * from the server side, the lock holder's connection killed while a second
 * run starts (the lock fence), and a server restart (reconnecting); errors
 * of batches naming their file:line; checkpoints that must hit their row;
 * index builds blocked past the lock timeout; and the SQLite rebuild's
 * reading of a table's CREATE TABLE text.
 */
#include "config.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "exec/exec.h"
#include "testlib.h"

#define ROWS 20000

/*
 * One timeout for the suite: criterion leaks a little memory for a
 * parameterized test with options of its own, which LeakSanitizer reports.
 */
TestSuite(exec, .timeout = 600);

struct fixture {
	struct test_db db;
	struct db_conn *conn;
	char *repo;		/* the repository folder */
};

/*
 * A repository whose version 1 creates big (id bigint key, n integer) and
 * whose versions 2..versions each add one to n in a backfill: a one-off
 * fix, batches only, which must apply to each row exactly once.
 */
static void
setup(struct fixture *f, enum db_backend backend, int versions)
{
	int v;

	test_db_create(backend, &f->db);
	f->conn = test_db_connect(&f->db);
	f->repo = test_mkdtemp();
	test_write_file(f->repo, "repository.yaml", "id: exectest\n");
	test_write_file(f->repo, "versions/001_big.yaml",
			"operations:\n"
			"  - create_table:\n"
			"      name: big\n"
			"      columns:\n"
			"        - {name: id, type: bigint, primary_key: true}\n"
			"        - {name: n, type: bigint, nullable: false}\n");
	for (v = 2; v <= versions; v++) {
		char *name = xasprintf("versions/%03d_bump.yaml", v);

		test_write_file(f->repo, name,
				"operations:\n"
				"  - backfill: {table: big, set: {n: \"n + 1\"}}\n");
		free(name);
	}
}

static void
teardown(struct fixture *f)
{
	db_close(f->conn);
	test_db_drop(&f->db);
	test_rmtree(f->repo);
	free(f->repo);
}

/* Run dbphase on the fixture's database and repository; more args, then NULL. */
static int
dbphase(struct fixture *f, char **output, ...)
{
	const char *args[32] = { "--database", f->db.url, "--repository", f->repo };
	size_t n = 4;
	va_list ap;

	va_start(ap, output);
	while (n < 31 && (args[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	args[n] = NULL;
	return test_dbphase_run(args, output);
}

/* Every row must have n = id + bumps; fail naming the first wrong one. */
static void
check_rows(struct fixture *f, long rows, int bumps)
{
	char *sql = xasprintf("SELECT count(*), min(n - id), max(n - id) FROM big");
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_result *res;

	cr_assert_eq(db_query(f->conn, sql, NULL, 0, &res, &err), 0, "%s", err.message);
	cr_assert_eq(strtol(db_result_value(res, 0, 0), NULL, 10), rows,
		     "[%s] %s rows, expected %ld", f->conn->drv->name, db_result_value(res, 0, 0), rows);
	cr_assert_eq(strtol(db_result_value(res, 0, 1), NULL, 10), bumps,
		     "[%s] some row has n = id + %s, expected + %d (a batch missed or ran twice)",
		     f->conn->drv->name, db_result_value(res, 0, 1), bumps);
	cr_assert_eq(strtol(db_result_value(res, 0, 2), NULL, 10), bumps,
		     "[%s] some row has n = id + %s, expected + %d (a batch missed or ran twice)",
		     f->conn->drv->name, db_result_value(res, 0, 2), bumps);
	db_result_free(res);
	free(sql);
}

static void
bring_to_1_and_fill(struct fixture *f, long rows)
{
	char *out = NULL;
	int code = dbphase(f, &out, "db_sync", "1", NULL);

	cr_assert_eq(code, 0, "[%s] db_sync 1 exited %d:\n%s", f->conn->drv->name, code, out);
	free(out);
	test_fill_rows(f->conn, "big", rows);
}

static void
sync_phase(struct fixture *f, const char *phase, const char *version, const char *jobs)
{
	char *out = NULL;
	int code = dbphase(f, &out, "--jobs", jobs, "--batch-size", "300", "db_sync", phase,
			   version, NULL);

	cr_assert_eq(code, 0, "[%s] %s %s with %s jobs exited %d:\n%s", f->conn->drv->name,
		     phase, version, jobs, code, out);
	free(out);
}

BACKEND_TEST(exec, every_row_once_with_1_2_and_8_jobs)
{
	static const char *const jobs[] = { "1", "2", "8" };
	struct fixture f;
	int i;

	setup(&f, *backend, 4);
	bring_to_1_and_fill(&f, ROWS);
	for (i = 0; i < 3; i++) {
		char version[8];

		snprintf(version, sizeof(version), "%d", i + 2);
		sync_phase(&f, "--expand", version, jobs[i]);
		sync_phase(&f, "--migrate", version, jobs[i]);
		check_rows(&f, ROWS, i + 1);
	}
	teardown(&f);
}

BACKEND_TEST(exec, text_and_composite_keys)
{
	struct fixture f;
	char *out = NULL, *v;
	int code, i;

	test_db_create(*backend, &f.db);
	f.conn = test_db_connect(&f.db);
	f.repo = test_mkdtemp();
	test_write_file(f.repo, "versions/001_tables.yaml",
			"operations:\n"
			"  - create_table:\n"
			"      name: coded\n"
			"      columns:\n"
			"        - {name: code, type: \"varchar(40)\", primary_key: true}\n"
			"        - {name: n, type: integer, nullable: false}\n"
			"  - create_table:\n"
			"      name: pairs\n"
			"      columns:\n"
			"        - {name: a, type: integer, primary_key: true}\n"
			"        - {name: b, type: \"varchar(20)\", primary_key: true}\n"
			"        - {name: n, type: integer, nullable: false}\n");
	test_write_file(f.repo, "versions/002_bump.yaml",
			"operations:\n"
			"  - backfill: {table: coded, set: {n: \"n + 1\"}}\n"
			"  - backfill: {table: pairs, set: {n: \"n + 1\"}}\n");
	code = dbphase(&f, &out, "db_sync", "1", NULL);
	cr_assert_eq(code, 0, "%s", out);
	free(out);
	for (i = 0; i < 3000; i++) {
		char *sql = xasprintf("INSERT INTO coded (code, n) VALUES ('k-%05d-%c', 0)", (i * 7919) % 3000,
				      'a' + i % 26);

		test_exec(f.conn, sql);
		free(sql);
		sql = xasprintf("INSERT INTO pairs (a, b, n) VALUES (%d, 'b%d', 0)", i % 50, i);
		test_exec(f.conn, sql);
		free(sql);
	}
	code = dbphase(&f, &out, "--jobs", "4", "--batch-size", "100", "db_sync", NULL);
	cr_assert_eq(code, 0, "[%s] %s", f.conn->drv->name, out);
	free(out);
	v = test_query_value(f.conn, "SELECT count(*) FROM coded WHERE n <> 1");
	cr_assert_str_eq(v, "0", "[%s] %s text-keyed rows not bumped exactly once", f.conn->drv->name, v);
	free(v);
	v = test_query_value(f.conn, "SELECT count(*) FROM pairs WHERE n <> 1");
	cr_assert_str_eq(v, "0", "[%s] %s composite-keyed rows not bumped exactly once",
			 f.conn->drv->name, v);
	free(v);
	teardown(&f);
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/*
 * 20 trials: migrate to the next version, SIGKILL at a random moment, run
 * again to the end; after trial k every row must have been bumped k times.
 */
BACKEND_TEST(exec, resume_after_sigkill_at_random_moments)
{
	enum { TRIALS = 20 };
	struct fixture f;
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	int k, killed = 0;

	setup(&f, *backend, TRIALS + 1);
	bring_to_1_and_fill(&f, ROWS);
	for (k = 1; k <= TRIALS; k++) {
		char version[8], *out = NULL;
		/* Slowed to about a second, so that the kill lands inside the run. */
		const char *args[] = { "--database", f.db.url, "--repository", f.repo,
				       "--batch-size", "100", "--batch-time", "5",
				       "--max-rate", "20000", "db_sync", "--migrate", version, NULL };
		pid_t pid;
		int code;

		snprintf(version, sizeof(version), "%d", k + 1);
		sync_phase(&f, "--expand", version, "2");
		pid = test_dbphase_spawn(args, NULL);
		sleep_ms(50 + rand_r(&seed) % 900);
		kill(pid, SIGKILL);
		code = test_wait(pid);
		killed += code == 128 + SIGKILL;
		/* The next run resumes from the checkpoints (and waits for no lock). */
		code = dbphase(&f, &out, "--batch-size", "300", "db_sync", "--migrate", version, NULL);
		cr_assert_eq(code, 0, "[%s] trial %d: resume exited %d:\n%s", f.conn->drv->name, k,
			     code, out);
		free(out);
		check_rows(&f, ROWS, k);
	}
	cr_assert_gt(killed, TRIALS / 4, "[%s] only %d of %d runs were killed before finishing: "
		     "the trials did not test resuming", f.conn->drv->name, killed, TRIALS);
	teardown(&f);
}

BACKEND_TEST(exec, sigint_finishes_the_batch_and_stops_resumably)
{
	const char *args[7 + 8];
	struct fixture f;
	char *dir = test_mkdtemp(), *log = xasprintf("%s/log", dir), *out, *v;
	pid_t pid;
	int code;

	setup(&f, *backend, 2);
	bring_to_1_and_fill(&f, ROWS);
	sync_phase(&f, "--expand", "2", "1");
	{
		const char *a[] = { "--database", f.db.url, "--repository", f.repo,
				    "--batch-size", "200", "--max-rate", "4000",
				    "db_sync", "--migrate", NULL };

		memcpy(args, a, sizeof(a));
	}
	pid = test_dbphase_spawn(args, log);
	sleep_ms(1000);
	kill(pid, SIGINT);
	code = test_wait(pid);
	out = test_read_file(log);
	cr_assert_eq(code, 130, "[%s] a SIGINT stop exited %d (expected 130):\n%s",
		     f.conn->drv->name, code, out);
	cr_assert(strstr(out, "run the same command again to resume") != NULL,
		  "[%s] the stop does not say it is resumable:\n%s", f.conn->drv->name, out);
	free(out);
	v = test_query_value(f.conn, "SELECT sum(rows_done) FROM dbphase_progress");
	cr_assert(v && atol(v) > 0 && atol(v) < ROWS,
		  "[%s] after the stop %s rows are recorded done", f.conn->drv->name, v);
	free(v);
	v = test_query_value(f.conn, "SELECT migrate_version FROM dbphase_version");
	cr_assert_str_eq(v, "1", "[%s] migrate moved to %s although it stopped", f.conn->drv->name, v);
	free(v);
	code = dbphase(&f, &out, "db_sync", "--migrate", NULL);
	cr_assert_eq(code, 0, "[%s] resume: %s", f.conn->drv->name, out);
	free(out);
	check_rows(&f, ROWS, 1);
	test_rmtree(dir);
	free(dir);
	free(log);
	teardown(&f);
}

/*
 * Kill, from the server side, connections that run a statement on big or
 * a COMMIT: the last is the hard case, a batch that may have committed
 * although its worker never heard so.
 */
static int
kill_workers(struct db_conn *admin, const char *dbname)
{
	struct strbuf sql = STRBUF_INIT;
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_result *res = NULL;
	struct db_param p = DB_TEXT(dbname);
	size_t i;
	int n = 0;

	if (admin->drv->backend == DB_BACKEND_POSTGRESQL) {
		strbuf_addstr(&sql, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
			      "WHERE datname = $1 AND pid <> pg_backend_pid() AND state = 'active' "
			      "AND (query LIKE 'UPDATE \"big\"%' OR query = 'COMMIT')");
		if (db_query(admin, sql.buf, &p, 1, &res, &err) == 0)
			n = atoi(db_result_value(res, 0, 0));
	} else {
		strbuf_addstr(&sql, "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = $1 "
			      "AND ID <> CONNECTION_ID() AND COMMAND IN ('Query', 'Execute') "
			      "AND (INFO LIKE 'UPDATE `big`%' OR INFO = 'COMMIT')");
		if (db_query(admin, sql.buf, &p, 1, &res, &err) == 0) {
			for (i = 0; i < res->n_rows; i++) {
				char *kill_sql = xasprintf("KILL CONNECTION %s", db_result_value(res, i, 0));

				if (db_exec(admin, kill_sql, &err) == 0)
					n++;
				err_release(&err);
				free(kill_sql);
			}
		}
	}
	db_result_free(res);
	err_release(&err);
	strbuf_release(&sql);
	return n;
}

BACKEND_TEST(exec, survives_worker_connections_killed_by_the_server)
{
	struct fixture f;
	char *dir, *log, *out;
	pid_t pid;
	int code, killed = 0, tries;

	if (*backend == DB_BACKEND_SQLITE) {
		/*
		 * No server side to kill from: a writer that takes the database's
		 * write lock in the middle of the run stands in.
		 */
		struct db_conn *blocker;
		struct dbphase_error err = DBPHASE_ERROR_INIT;

		setup(&f, *backend, 2);
		bring_to_1_and_fill(&f, ROWS);
		sync_phase(&f, "--expand", "2", "1");
		blocker = test_db_connect(&f.db);
		{
			const char *a[] = { "--database", f.db.url, "--repository", f.repo,
					    "--lock-timeout", "100", "--batch-size", "200",
					    "--max-rate", "10000", "db_sync", "--migrate", NULL };

			dir = test_mkdtemp();
			log = xasprintf("%s/log", dir);
			pid = test_dbphase_spawn(a, log);
		}
		sleep_ms(500);
		cr_assert_eq(blocker->drv->begin(blocker, &err), 0, "%s", err.message);
		sleep_ms(1000);
		cr_assert_eq(blocker->drv->rollback(blocker, &err), 0, "%s", err.message);
		db_close(blocker);
		code = test_wait(pid);
		out = test_read_file(log);
		cr_assert_eq(code, 0, "[sqlite] migrate behind a lock holder exited %d:\n%s", code, out);
		cr_assert(strstr(out, "retries") != NULL, "[sqlite] no retry was needed:\n%s", out);
		free(out);
		check_rows(&f, ROWS, 1);
		test_rmtree(dir);
		free(dir);
		free(log);
		teardown(&f);
		return;
	}
	setup(&f, *backend, 2);
	bring_to_1_and_fill(&f, ROWS * 2);
	sync_phase(&f, "--expand", "2", "1");
	dir = test_mkdtemp();
	log = xasprintf("%s/log", dir);
	{
		const char *a[] = { "--database", f.db.url, "--repository", f.repo, "--jobs", "2",
				    "--batch-size", "500", "--batch-time", "20", "--max-rate", "20000",
				    "db_sync", "--migrate", NULL };

		pid = test_dbphase_spawn(a, log);
	}
	for (tries = 0; tries < 400 && killed < 4; tries++) {
		sleep_ms(5);
		killed += kill_workers(f.conn, f.db.name);
	}
	code = test_wait(pid);
	out = test_read_file(log);
	cr_assert_gt(killed, 0, "[%s] never caught a worker in a statement to kill", f.conn->drv->name);
	cr_assert_eq(code, 0, "[%s] migrate with %d killed worker connections exited %d:\n%s",
		     f.conn->drv->name, killed, code, out);
	cr_assert(strstr(out, "retries") != NULL, "[%s] no retry after killed connections:\n%s",
		  f.conn->drv->name, out);
	free(out);
	check_rows(&f, ROWS * 2, 1);
	test_rmtree(dir);
	free(dir);
	free(log);
	teardown(&f);
}

/* ---- the cluster lock, lost connections, blocked index builds ------------ */

/* Backends with a server whose connections can be killed or restarted. */
static enum db_backend server_backends[] = { DB_BACKEND_POSTGRESQL, DB_BACKEND_MYSQL };

#define SERVER_TEST(suite, name, ...)                                         \
	ParameterizedTestParameters(suite, name)                              \
	{                                                                     \
		return cr_make_param_array(enum db_backend, server_backends,  \
					   sizeof(server_backends) /          \
					   sizeof(server_backends[0]));       \
	}                                                                     \
	ParameterizedTest(enum db_backend *backend, suite, name, ##__VA_ARGS__)

/* The rows a migrate run has recorded done so far (0 before its first batch). */
static long
rows_recorded(struct db_conn *conn)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_result *res = NULL;
	long n = 0;

	if (db_query(conn, "SELECT sum(rows_done) FROM dbphase_progress", NULL, 0, &res,
		     &err) == 0 && res->n_rows == 1 && db_result_value(res, 0, 0))
		n = atol(db_result_value(res, 0, 0));
	db_result_free(res);
	err_release(&err);
	return n;
}

/* Wait (at most about 60 s) until the run has committed some batches. */
static void
wait_for_progress(struct fixture *f, pid_t pid)
{
	int i;

	for (i = 0; i < 6000 && rows_recorded(f->conn) == 0; i++) {
		cr_assert(waitpid(pid, NULL, WNOHANG) == 0,
			  "[%s] the migrate ended before its first batch", f->conn->drv->name);
		sleep_ms(10);
	}
	cr_assert_gt(rows_recorded(f->conn), 0, "[%s] the migrate never committed a batch",
		     f->conn->drv->name);
}

/*
 * Kill, from the server side, the session that holds repository repo_id's
 * cluster lock (the dbphase run's main connection); returns whether one
 * was killed.
 */
static bool
kill_lock_holder(struct db_conn *admin, const char *dbname, const char *repo_id)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_result *res = NULL;
	bool killed = false;

	if (admin->drv->backend == DB_BACKEND_POSTGRESQL) {
		struct db_param p = DB_TEXT(dbname);

		if (db_query(admin, "SELECT count(pg_terminate_backend(pid)) FROM pg_locks "
			     "WHERE locktype = 'advisory' AND granted AND database = "
			     "(SELECT oid FROM pg_database WHERE datname = $1)", &p, 1, &res,
			     &err) == 0)
			killed = atoi(db_result_value(res, 0, 0)) > 0;
	} else {
		char *name = xasprintf("dbphase:%s", repo_id);
		struct db_param p = DB_TEXT(name);

		if (db_query(admin, "SELECT IS_USED_LOCK($1)", &p, 1, &res, &err) == 0 &&
		    db_result_value(res, 0, 0)) {
			char *sql = xasprintf("KILL CONNECTION %s", db_result_value(res, 0, 0));

			killed = db_exec(admin, sql, &err) == 0;
			free(sql);
		}
		free(name);
	}
	cr_assert_eq(err.code, 0, "[%s] killing the lock holder: %s", admin->drv->name,
		     err.message);
	db_result_free(res);
	return killed;
}

/*
 * The lock holder's main connection dies mid-migrate (killed by an operator,
 * a proxy, a failover) and a second dbphase takes the lock at once and walks
 * the same ranges.  The first run's workers must not write one more batch
 * once the lock is gone: every row ends exactly + 1.  On SQLite the lock
 * lives in the process, so the holder itself is killed.
 */
BACKEND_TEST(exec, lock_holder_lost_mid_migrate_applies_each_row_once)
{
	enum { BIG = 60000 };
	struct fixture f;
	char *repo_id = xasprintf("fence_%ld_%ld", (long)getpid(), (long)(time(NULL) % 100000));
	char *yaml = xasprintf("id: %s\n", repo_id);
	char *dir = test_mkdtemp(), *log_a = xasprintf("%s/a", dir);
	char *log_b = xasprintf("%s/b", dir), *out_a, *out_b;
	pid_t a, b;
	int code_a, code_b;

	setup(&f, *backend, 2);
	/* A repository id of its own: MariaDB's lock names are server-wide. */
	test_write_file(f.repo, "repository.yaml", yaml);
	bring_to_1_and_fill(&f, BIG);
	sync_phase(&f, "--expand", "2", "2");
	{
		/* About three seconds of batches, so that the loss lands inside. */
		const char *args[] = { "--database", f.db.url, "--repository", f.repo,
				       "--jobs", "2", "--batch-size", "200", "--batch-time", "20",
				       "--max-rate", "20000", "db_sync", "--migrate", NULL };

		a = test_dbphase_spawn(args, log_a);
	}
	wait_for_progress(&f, a);
	if (*backend == DB_BACKEND_SQLITE)
		kill(a, SIGKILL);
	else
		cr_assert(kill_lock_holder(f.conn, f.db.name, repo_id),
			  "[%s] found no session holding the lock", f.conn->drv->name);
	{
		const char *args[] = { "--database", f.db.url, "--repository", f.repo,
				       "--jobs", "2", "--batch-size", "500", "db_sync", "--migrate",
				       NULL };

		b = test_dbphase_spawn(args, log_b);
	}
	code_b = test_wait(b);
	code_a = test_wait(a);
	out_a = test_read_file(log_a);
	out_b = test_read_file(log_b);
	cr_assert_eq(code_b, 0, "[%s] the second run exited %d:\n%s", f.conn->drv->name, code_b,
		     out_b);
	check_rows(&f, BIG, 1);
	if (*backend != DB_BACKEND_SQLITE)
		cr_assert_eq(code_a, 0, "[%s] the run that lost its lock exited %d (it should "
			     "reconnect, wait for the lock and find the work done):\n%s",
			     f.conn->drv->name, code_a, out_a);
	free(out_a);
	free(out_b);
	test_rmtree(dir);
	free(dir);
	free(log_a);
	free(log_b);
	free(yaml);
	free(repo_id);
	teardown(&f);
}

/* Run a tools/ script with one argument; its first line of output (owned). */
static char *
run_tool(const char *tool, const char *cmd, const char *arg)
{
	const char *root = getenv("DBPHASE_SOURCE_ROOT");
	char *line = xasprintf("'%s/tools/%s' %s '%s' 2>&1", root && *root ? root : ".", tool,
			       cmd, arg);
	struct strbuf out = STRBUF_INIT;
	char buf[512];
	FILE *p = popen(line, "r");
	int status;

	cr_assert(p != NULL, "cannot run %s", line);
	while (fgets(buf, sizeof(buf), p))
		strbuf_addstr(&out, buf);
	status = pclose(p);
	cr_assert_eq(status, 0, "%s failed:\n%s", line, out.buf);
	free(line);
	if (out.len && out.buf[out.len - 1] == '\n')
		strbuf_setlen(&out, out.len - 1);
	return strbuf_detach(&out);
}

/*
 * The server restarts in the middle of a migrate: dbphase reconnects with
 * backoff, takes the lock again, reads its checkpoints and finishes, each
 * row exactly once.  The test restarts a throwaway server of its own.
 */
SERVER_TEST(exec, server_restart_mid_migrate_resumes_exactly_once)
{
	const char *tool = *backend == DB_BACKEND_POSTGRESQL ? "pg-server" : "mariadb-server";
	const char *env = *backend == DB_BACKEND_POSTGRESQL ? "DBPHASE_TEST_PG_URL" :
			  "DBPHASE_TEST_MYSQL_URL";
	char *server = test_mkdtemp(), *url, *url2, *dir = test_mkdtemp();
	char *log = xasprintf("%s/log", dir), *out, *wrong;
	struct fixture f;
	pid_t pid;
	int code;

	url = run_tool(tool, "start", server);
	setenv(env, url, 1);	/* test_db_create makes the database there */
	setup(&f, *backend, 2);
	bring_to_1_and_fill(&f, ROWS * 2);
	sync_phase(&f, "--expand", "2", "2");
	{
		const char *args[] = { "--database", f.db.url, "--repository", f.repo,
				       "--jobs", "2", "--batch-size", "200", "--batch-time", "20",
				       "--max-rate", "8000", "db_sync", "--migrate", NULL };

		pid = test_dbphase_spawn(args, log);
	}
	wait_for_progress(&f, pid);
	db_close(f.conn);
	url2 = run_tool(tool, "restart", server);
	code = test_wait(pid);
	out = test_read_file(log);
	f.conn = test_db_connect(&f.db);
	/* Look before the server goes, assert after. */
	wrong = code == 0 ? test_query_value(f.conn, "SELECT count(*) FROM big WHERE n <> id + 1")
			  : NULL;
	teardown(&f);
	free(run_tool(tool, "stop", server));
	cr_assert_str_eq(url2, url, "the restarted server has another URL");
	cr_assert_eq(code, 0, "[%s] migrate across a server restart exited %d:\n%s",
		     db_backend_name(*backend), code, out);
	cr_assert_str_eq(wrong, "0", "[%s] %s rows not bumped exactly once across the restart",
			 db_backend_name(*backend), wrong);
	cr_assert(strstr(out, "reconnect") != NULL, "[%s] no word of the reconnection:\n%s",
		  db_backend_name(*backend), out);
	free(wrong);
	free(out);
	free(url);
	free(url2);
	free(log);
	test_rmtree(dir);
	free(dir);
	test_rmtree(server);
	free(server);
}

/*
 * A migrate whose batch fails (here: an unknown column) names the
 * operation's migration file and line, as expand's steps do.
 */
BACKEND_TEST(exec, failing_batch_names_the_migration_file_and_line)
{
	struct fixture f;
	char *out = NULL;
	int code;

	setup(&f, *backend, 1);
	test_write_file(f.repo, "versions/002_broken.yaml",
			"description: a backfill that cannot run\n"
			"operations:\n"
			"  - backfill: {table: big, set: {n: \"no_such_column + 1\"}}\n");
	bring_to_1_and_fill(&f, 100);
	sync_phase(&f, "--expand", "2", "1");
	code = dbphase(&f, &out, "db_sync", "--migrate", NULL);
	cr_assert_neq(code, 0, "[%s] the broken backfill succeeded:\n%s", f.conn->drv->name, out);
	cr_assert(strstr(out, "002_broken.yaml:3:") != NULL,
		  "[%s] the error does not name the operation's file:line:\n%s",
		  f.conn->drv->name, out);
	free(out);
	teardown(&f);
}

/*
 * A batch's checkpoint must update exactly its chunk's row: with the
 * progress rows gone (an operator's DELETE, a restore) the run stops with
 * an error instead of committing batches nobody can resume from.
 */
BACKEND_TEST(exec, checkpoint_without_its_row_stops_the_run)
{
	struct fixture f;
	char *dir = test_mkdtemp(), *log = xasprintf("%s/log", dir), *out;
	pid_t pid;
	int code;

	setup(&f, *backend, 2);
	bring_to_1_and_fill(&f, ROWS);
	sync_phase(&f, "--expand", "2", "1");
	{
		const char *args[] = { "--database", f.db.url, "--repository", f.repo,
				       "--batch-size", "100", "--batch-time", "20",
				       "--max-rate", "4000", "db_sync", "--migrate", NULL };

		pid = test_dbphase_spawn(args, log);
	}
	wait_for_progress(&f, pid);
	test_exec(f.conn, "DELETE FROM dbphase_progress");
	code = test_wait(pid);
	out = test_read_file(log);
	cr_assert_neq(code, 0, "[%s] batches went on without their checkpoint row:\n%s",
		      f.conn->drv->name, out);
	cr_assert(strstr(out, "checkpoint") != NULL, "[%s] the error does not say why:\n%s",
		  f.conn->drv->name, out);
	free(out);
	test_rmtree(dir);
	free(dir);
	free(log);
	teardown(&f);
}

/* Whether the index name exists and (PostgreSQL) is valid; "" if not there. */
static char *
index_state(struct db_conn *conn, const char *db, const char *name)
{
	char *sql;
	char *v;

	switch (conn->drv->backend) {
	case DB_BACKEND_POSTGRESQL:
		sql = xasprintf("SELECT CASE WHEN i.indisvalid THEN 'valid' ELSE 'INVALID' END "
				"FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
				"WHERE c.relname = '%s'", name);
		break;
	case DB_BACKEND_MYSQL:
		sql = xasprintf("SELECT DISTINCT 'valid' FROM information_schema.STATISTICS "
				"WHERE TABLE_SCHEMA = '%s' AND INDEX_NAME = '%s'", db, name);
		break;
	default:
		sql = xasprintf("SELECT 'valid' FROM sqlite_master WHERE type = 'index' AND "
				"name = '%s'", name);
	}
	v = test_query_value(conn, sql);
	free(sql);
	return v ? v : xstrdup("");
}

/* Another session that blocks building an index on big until released. */
static struct db_conn *
block_index_builds(struct fixture *f)
{
	struct db_conn *c = test_db_connect(&f->db);

	switch (c->drv->backend) {
	case DB_BACKEND_POSTGRESQL:
		/* An old snapshot: CREATE INDEX CONCURRENTLY waits for it to end. */
		test_exec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ");
		free(test_query_value(c, "SELECT count(*) FROM dbphase_version"));
		break;
	case DB_BACKEND_MYSQL:
		/* A metadata lock on big, held to the end of the transaction. */
		test_exec(c, "START TRANSACTION");
		free(test_query_value(c, "SELECT count(*) FROM big"));
		break;
	default:
		test_exec(c, "BEGIN IMMEDIATE");
	}
	return c;
}

static void
migration_add_index(struct fixture *f)
{
	test_write_file(f->repo, "versions/002_index.yaml",
			"operations:\n"
			"  - add_index: {table: big, name: ix_big_n, columns: [n]}\n");
}

/*
 * An index build blocked past the lock timeout is retried from the start
 * of its step: on PostgreSQL the failed CONCURRENTLY build left an INVALID
 * index, which the step's DROP removes before the CREATE runs again.
 */
BACKEND_TEST(exec, blocked_index_build_is_retried_cleanly)
{
	struct fixture f;
	struct db_conn *blocker;
	char *dir = test_mkdtemp(), *log = xasprintf("%s/log", dir), *out, *state;
	pid_t pid;
	int code;

	setup(&f, *backend, 1);
	migration_add_index(&f);
	bring_to_1_and_fill(&f, 1000);
	blocker = block_index_builds(&f);
	{
		const char *args[] = { "--database", f.db.url, "--repository", f.repo,
				       "--lock-timeout", "200", "db_sync", "--expand", "2", NULL };

		pid = test_dbphase_spawn(args, log);
	}
	/* Long enough for a few attempts to time out. */
	sleep_ms(2500);
	test_exec(blocker, "ROLLBACK");
	db_close(blocker);
	code = test_wait(pid);
	out = test_read_file(log);
	state = index_state(f.conn, f.db.name, "ix_big_n");
	cr_assert_eq(code, 0, "[%s] expand behind a blocker exited %d:\n%s", f.conn->drv->name,
		     code, out);
	/* SQLite's blocker holds dbphase's own bookkeeping up first, which waits. */
	cr_assert(*backend == DB_BACKEND_SQLITE || strstr(out, "retries") != NULL,
		  "[%s] the build was never blocked:\n%s", f.conn->drv->name, out);
	cr_assert_str_eq(state, "valid", "[%s] the index is '%s' after expand:\n%s",
			 f.conn->drv->name, state, out);
	free(state);
	free(out);
	test_rmtree(dir);
	free(dir);
	free(log);
	teardown(&f);
}

/*
 * Blocked for longer than every retry: exit 75, and no INVALID index is
 * left behind for the application's writes to maintain.
 */
Test(exec, index_build_blocked_for_good_exits_75_without_an_invalid_index)
{
	struct fixture f;
	struct db_conn *blocker;
	char *out = NULL, *state;
	int code;

	setup(&f, DB_BACKEND_POSTGRESQL, 1);
	migration_add_index(&f);
	bring_to_1_and_fill(&f, 1000);
	blocker = block_index_builds(&f);
	code = dbphase(&f, &out, "--lock-timeout", "100", "db_sync", "--expand", "2", NULL);
	state = index_state(f.conn, f.db.name, "ix_big_n");
	test_exec(blocker, "ROLLBACK");
	db_close(blocker);
	cr_assert_eq(code, 75, "[postgresql] expand blocked for good exited %d:\n%s", code, out);
	cr_assert_str_eq(state, "", "[postgresql] the index is '%s' after giving up:\n%s", state,
			 out);
	free(state);
	free(out);
	teardown(&f);
}

/*
 * dbphase's tables of format 1 (before the lock fence) are brought to
 * format 2 by the next transition, which then fences its batches.
 */
BACKEND_TEST(exec, tables_of_format_1_are_upgraded)
{
	struct fixture f;
	char *v;

	setup(&f, *backend, 2);
	bring_to_1_and_fill(&f, 1000);
	test_exec(f.conn, "DROP TABLE dbphase_locks");
	test_exec(f.conn, "UPDATE dbphase_meta SET value = '1' WHERE name = 'format'");
	sync_phase(&f, "--expand", "2", "2");
	v = test_query_value(f.conn, "SELECT value FROM dbphase_meta WHERE name = 'format'");
	cr_assert_str_eq(v, "2", "[%s] the tables are in format %s after a transition",
			 f.conn->drv->name, v);
	free(v);
	sync_phase(&f, "--migrate", "2", "2");
	check_rows(&f, 1000, 1);
	v = test_query_value(f.conn, "SELECT generation FROM dbphase_locks");
	cr_assert_str_eq(v, "2", "[%s] the lock generation is %s after two transitions",
			 f.conn->drv->name, v);
	free(v);
	teardown(&f);
}

/* exec_sqlite_edit_table on text with a job for column; the new text, or the error. */
static char *
edit_table(const char *create_sql, const char *column, int set_not_null, const char *set_default,
	   bool drop_default)
{
	struct exec_job job = { .table = "t", .column = column, .set_not_null = set_not_null,
				.set_default = set_default, .drop_default = drop_default };
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct strbuf out = STRBUF_INIT;
	char *got;

	if (exec_sqlite_edit_table(create_sql, "t_new", &job, &out, &err) < 0) {
		got = xstrdup(err.message);
		err_release(&err);
		strbuf_release(&out);
		return got;
	}
	return strbuf_detach(&out);
}

/*
 * A SQLite rebuild edits one column of the table's own CREATE TABLE text,
 * read by the one SQL lexer: comments (with commas and parentheses in
 * them), quoted names of every kind, and a blob literal as one default.
 */
Test(exec, sqlite_rebuild_reads_the_table_text_as_sqlite_does)
{
	static const char *const create =
		"CREATE TABLE \"t\" ( -- the key, (first)\n"
		"  \"id\" INTEGER PRIMARY KEY /* , not a column */,\n"
		"  [w x] TEXT NULL,\n"
		"  `a\"b` TEXT,\n"
		"  \"q\"\"r\" BLOB DEFAULT x'00' NOT NULL\n"
		") STRICT";
	struct { const char *column; int not_null; const char *def; bool drop; const char *want; }
	cases[] = {
		{ "w x", 1, NULL, false, "CREATE TABLE \"t_new\" (\"id\" INTEGER PRIMARY KEY, "
		  "[w x] TEXT NOT NULL, `a\"b` TEXT, \"q\"\"r\" BLOB DEFAULT x'00' NOT NULL) STRICT" },
		{ "a\"b", -1, "'z'", false, "CREATE TABLE \"t_new\" (\"id\" INTEGER PRIMARY KEY, "
		  "[w x] TEXT NULL, `a\"b` TEXT DEFAULT 'z', \"q\"\"r\" BLOB DEFAULT x'00' NOT NULL) "
		  "STRICT" },
		{ "q\"r", 0, NULL, true, "CREATE TABLE \"t_new\" (\"id\" INTEGER PRIMARY KEY, "
		  "[w x] TEXT NULL, `a\"b` TEXT, \"q\"\"r\" BLOB) STRICT" },
		{ "not a column", 1, NULL, false, "table 't' has no column 'not a column'" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = edit_table(create, cases[i].column, cases[i].not_null, cases[i].def,
				       cases[i].drop);

		cr_expect_str_eq(got, cases[i].want, "column %s: got\n%s", cases[i].column, got);
		free(got);
	}
}
