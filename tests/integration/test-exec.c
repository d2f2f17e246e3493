/*
 * tests/integration/test-exec.c - the migrate phase's executor on real
 * servers: every row right with 1, 2 and 8 jobs; text and composite keys;
 * a non-idempotent backfill (n = n + 1) applied exactly once across
 * SIGKILLs at random moments, a SIGINT stop, and worker connections killed
 * from the server side.
 */
#include "config.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/strbuf.h"
#include "core/xmalloc.h"
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
