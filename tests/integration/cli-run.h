/*
 * tests/integration/cli-run.h - what test-state.c and test-cli.c share:
 * running the built dbphase as a real process (stdout and stderr kept
 * apart, or started together behind a barrier), writing migration
 * repositories, and reading dbphase's tables.  Header-only, static inline,
 * so that each suite takes what it uses.
 */
#ifndef DBPHASE_TESTS_CLI_RUN_H
#define DBPHASE_TESTS_CLI_RUN_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "testlib.h"

#define MAX_ARGS 64

/* One finished run of dbphase. */
struct run {
	int code;		/* exit code, or 128 + signal */
	char *out;		/* stdout; owned */
	char *err;		/* stderr; owned */
};

static inline void
run_release(struct run *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

/*
 * stderr past the line with which a command that changes the database
 * names it ("dbphase: database URL (from SOURCE)"), if it starts with one.
 */
static inline const char *
after_database_line(const char *err)
{
	const char *nl;

	if (strncmp(err, "dbphase: database ", 18) != 0 || (nl = strchr(err, '\n')) == NULL)
		return err;
	return nl + 1;
}

static inline const char *
dbphase_bin(void)
{
	static char path[4096];
	const char *bin = getenv("DBPHASE_BIN"), *root = getenv("DBPHASE_BUILD_ROOT");

	if (bin && *bin)
		return bin;
	snprintf(path, sizeof(path), "%s/dbphase", root && *root ? root : ".");
	return path;
}

static inline char *
slurp(const char *path)
{
	struct strbuf sb = STRBUF_INIT;
	char buf[4096];
	size_t got;
	FILE *f = fopen(path, "rb");

	if (f != NULL) {
		while ((got = fread(buf, 1, sizeof(buf), f)) > 0)
			strbuf_add(&sb, buf, got);
		fclose(f);
	}
	return strbuf_detach(&sb);
}

/*
 * Start dbphase with argv (NULL-terminated, without argv[0]); stdout and
 * stderr to the files given (NULL: /dev/null).  With a pipe in gate (else
 * NULL) the child first waits until it reads end-of-file, so that several
 * children can be let go at the same moment by closing the write end.
 */
static inline pid_t
spawn_dbphase(char *const *argv, const char *out_path, const char *err_path, const int *gate)
{
	const char *args[MAX_ARGS + 2];
	size_t n = 0;
	pid_t pid;

	args[n++] = dbphase_bin();
	while (argv[n - 1] && n <= MAX_ARGS) {
		args[n] = argv[n - 1];
		n++;
	}
	args[n] = NULL;
	fflush(NULL);
	pid = fork();
	cr_assert(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		int o = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int e = open(err_path ? err_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
		char c;

		if (o < 0 || e < 0)
			_exit(126);
		dup2(o, 1);
		dup2(e, 2);
		close(o);
		close(e);
		if (gate) {
			close(gate[1]);
			while (read(gate[0], &c, 1) > 0)
				;
			close(gate[0]);
		}
		execv(args[0], (char *const *)args);
		_exit(127);
	}
	return pid;
}

static inline int
wait_child(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		cr_assert(errno == EINTR, "waitpid: %s", strerror(errno));
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Run dbphase to completion with argv (NULL-terminated). */
static inline void
run_argv(struct run *r, char *const *argv)
{
	char *dir = test_mkdtemp();
	char *out = xasprintf("%s/out", dir), *err = xasprintf("%s/err", dir);

	memset(r, 0, sizeof(*r));
	r->code = wait_child(spawn_dbphase(argv, out, err, NULL));
	r->out = slurp(out);
	r->err = slurp(err);
	test_rmtree(dir);
	free(dir);
	free(out);
	free(err);
}

/* Run dbphase with the arguments that follow, up to NULL. */
static inline void
run_dbphase(struct run *r, ...)
{
	char *argv[MAX_ARGS + 1];
	size_t n = 0;
	va_list ap;

	va_start(ap, r);
	while (n < MAX_ARGS && (argv[n] = va_arg(ap, char *)) != NULL)
		n++;
	va_end(ap);
	argv[n] = NULL;
	run_argv(r, argv);
}

/* "[backend] command ...: exit N" plus both outputs, for assertion messages. */
#define RUN_FMT "exit %d\n--- stdout:\n%s--- stderr:\n%s"
#define RUN_ARGS(r) (r).code, (r).out, (r).err

/*
 * dbphase --database url --repository dir, then the NULL-terminated words
 * of extra (may be NULL), then ap's words up to NULL: what each suite's
 * own run helper wraps.
 */
static inline void
run_dbphase_at(struct run *r, const char *url, const char *dir, const char *const *extra,
	       va_list ap)
{
	char *argv[MAX_ARGS + 1];
	size_t n = 0;

	argv[n++] = "--database";
	argv[n++] = (char *)url;
	argv[n++] = "--repository";
	argv[n++] = (char *)dir;
	while (extra && *extra && n < MAX_ARGS)
		argv[n++] = (char *)*extra++;
	while (n < MAX_ARGS && (argv[n] = va_arg(ap, char *)) != NULL)
		n++;
	argv[n] = NULL;
	run_argv(r, argv);
}

static inline double
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* A repository in a fresh folder: repository.yaml and versions/NNN_vN.yaml. */
static inline char *
repo_create(const char *id, const char *const *versions, size_t n)
{
	char *dir = test_mkdtemp();
	size_t i;

	{
		char *yaml = xasprintf("id: %s\n", id);

		test_write_file(dir, "repository.yaml", yaml);
		free(yaml);
	}
	for (i = 0; i < n; i++) {
		char *name = xasprintf("versions/%03zu_v%zu.yaml", i + 1, i + 1);

		test_write_file(dir, name, versions[i]);
		free(name);
	}
	return dir;
}

/* A count (or any one value) as a number; -1 when NULL. */
static inline long long
query_ll(struct db_conn *conn, const char *sql)
{
	char *v = test_query_value(conn, sql);
	long long n = v ? strtoll(v, NULL, 10) : -1;

	free(v);
	return n;
}

/* The repository's row as "E/M/C", or "none"; caller frees. */
static inline char *
version_row(struct db_conn *conn, const char *repo)
{
	char *sql = xasprintf("SELECT expand_version, migrate_version, contract_version "
			      "FROM dbphase_version WHERE repository = '%s'", repo);
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_result *res = NULL;
	char *text;

	/* No table yet is no row. */
	if (db_query(conn, sql, NULL, 0, &res, &err) < 0) {
		free(sql);
		err_release(&err);
		return xstrdup("none");
	}
	text = res->n_rows ? xasprintf("%s/%s/%s", db_result_value(res, 0, 0),
				       db_result_value(res, 0, 1), db_result_value(res, 0, 2)) :
			     xstrdup("none");
	db_result_free(res);
	free(sql);
	return text;
}

/* The repository's version row must read want ("E/M/C"); backend names it in the message. */
static inline void
assert_version_row(struct db_conn *conn, const char *repo, const char *backend,
		   const char *want)
{
	char *row = version_row(conn, repo);

	cr_assert_str_eq(row, want, "[%s] version row %s, want %s", backend, row, want);
	free(row);
}

/* Application tables (not dbphase's own), sorted, joined by ','; caller frees. */
static inline char *
app_tables(struct db_conn *conn)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct strbuf sb = STRBUF_INIT;
	char **names = NULL;
	size_t n = 0, i, j;

	cr_assert_eq(conn->drv->list_tables(conn, &names, &n, &err), 0, "%s", err.message);
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
			char *t = names[j];

			names[j] = names[j - 1];
			names[j - 1] = t;
		}
	for (i = 0; i < n; i++) {
		if (strncmp(names[i], "dbphase_", 8) != 0)
			strbuf_addf(&sb, "%s%s", sb.len ? "," : "", names[i]);
		free(names[i]);
	}
	free(names);
	return strbuf_detach(&sb);
}

#endif
