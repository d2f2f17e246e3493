/*
 * tests/integration/test-cli.c - the dbphase program as operators and
 * playbooks run it, on SQLite, PostgreSQL and MariaDB: every command and
 * every alias, exit codes (0, 2-4 for --check, 5 refused, 64 usage, 65 bad
 * migration or changed file, 69 unreachable, 75 lock wait), the messages
 * that go with them, passwords never printed, history written by the
 * commands that set versions without running anything, and the shape of
 * `status --format json` against schemas/status.schema.json.
 *
 * Each test runs the built binary ($DBPHASE_BIN) against its own database.
 */
#include "config.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <regex.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "cli-run.h"	/* testlib.h (criterion) first */

#include "state/state.h"

TestSuite(cli, .timeout = 240);

#define REPO_ID "cli"

static const char v1_items[] =
	"description: items\n"
	"operations:\n"
	"  - create_table:\n"
	"      name: items\n"
	"      columns:\n"
	"        - {name: id, type: bigint, primary_key: true}\n"
	"        - {name: n, type: integer, nullable: false, default: 0}\n";

static const char v2_note[] =
	"description: a note and its index\n"
	"operations:\n"
	"  - add_column: {table: items, column: {name: note, type: \"varchar(100)\"}}\n"
	"  - add_index: {table: items, name: ix_items_note, columns: [note]}\n";

static const char v3_fix[] =
	"description: every n goes up by one\n"
	"operations:\n"
	"  - backfill: {table: items, set: {n: \"n + 1\"}}\n"
	"  - drop_index: {name: ix_items_note}\n";

struct cenv {
	struct test_db db;
	struct db_conn *conn;
	char *dir;		/* the repository */
};

static void
cenv_open(struct cenv *c, enum db_backend backend, const char *const *versions, size_t n)
{
	memset(c, 0, sizeof(*c));
	test_db_create(backend, &c->db);
	c->conn = test_db_connect(&c->db);
	c->dir = repo_create(REPO_ID, versions, n);
}

static void
cenv_close(struct cenv *c)
{
	db_close(c->conn);
	test_db_drop(&c->db);
	test_rmtree(c->dir);
	free(c->dir);
}

static const char *
bname(const struct cenv *c)
{
	return db_backend_name(c->db.backend);
}

/* dbphase --database URL --repository DIR, then the arguments up to NULL. */
static void
cli(struct cenv *c, struct run *r, ...)
{
	char *argv[MAX_ARGS + 1];
	size_t n = 0;
	va_list ap;

	argv[n++] = "--database";
	argv[n++] = c->db.url;
	argv[n++] = "--repository";
	argv[n++] = c->dir;
	va_start(ap, r);
	while (n < MAX_ARGS && (argv[n] = va_arg(ap, char *)) != NULL)
		n++;
	va_end(ap);
	argv[n] = NULL;
	run_argv(r, argv);
}

/* Run and expect an exit code; the run is released. */
#define EXPECT(c, want, ...)                                                          \
	do {                                                                          \
		struct run r_;                                                        \
		cli((c), &r_, __VA_ARGS__, NULL);                                     \
		cr_assert_eq(r_.code, (want), "[%s] %s: " RUN_FMT, bname(c),          \
			     #__VA_ARGS__, RUN_ARGS(r_));                             \
		run_release(&r_);                                                     \
	} while (0)

static void
assert_row(struct cenv *c, const char *want)
{
	char *row = version_row(c->conn, REPO_ID);

	cr_assert_str_eq(row, want, "[%s] version row %s, want %s", bname(c), row, want);
	free(row);
}

static long long
count(struct cenv *c, const char *sql)
{
	return query_ll(c->conn, sql);
}

/* Lines in text. */
static size_t
n_lines(const char *text)
{
	size_t n = 0;

	for (; *text; text++)
		n += *text == '\n';
	return n;
}

/* ---- commands and aliases -------------------------------------------------- */

BACKEND_TEST(cli, every_command_and_alias_works)
{
	const char *const v[] = { v1_items, v2_note, v3_fix };
	static const char *const version_spellings[] = {
		"db_version", "db version", "database version", "current",
	};
	struct cenv c;
	struct run r;
	size_t i;

	cenv_open(&c, *backend, v, 3);
	EXPECT(&c, 2, "db_sync", "--check");
	EXPECT(&c, 0, "sync", "1");
	assert_row(&c, "1/1/1");
	EXPECT(&c, 0, "db", "sync", "--check", "1");
	EXPECT(&c, 2, "database", "sync", "--check");
	EXPECT(&c, 2, "db-sync", "--check", "2");
	for (i = 0; i < sizeof(version_spellings) / sizeof(version_spellings[0]); i++) {
		char *words = xstrdup(version_spellings[i]), *space = strchr(words, ' ');

		if (space) {
			*space = '\0';
			cli(&c, &r, words, space + 1, NULL);
		} else {
			cli(&c, &r, words, NULL);
		}
		cr_assert_eq(r.code, 0, "[%s] %s: " RUN_FMT, bname(&c), version_spellings[i],
			     RUN_ARGS(r));
		cr_assert_str_eq(r.out, "1\n", "[%s] %s printed %s", bname(&c), version_spellings[i],
				 r.out);
		run_release(&r);
		free(words);
	}
	/* sqlalchemy-migrate's version: the repository's latest, not the database's. */
	cli(&c, &r, "version", NULL);
	cr_assert_eq(r.code, 0, "[%s] version: " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert_str_eq(r.out, "3\n", "[%s] version printed %s", bname(&c), r.out);
	run_release(&r);
	/* Expand, then each spelling of downgrade takes it back. */
	EXPECT(&c, 0, "db_sync", "--expand", "2");
	EXPECT(&c, 0, "downgrade", "1");
	assert_row(&c, "1/1/1");
	EXPECT(&c, 0, "db_sync", "--expand", "2");
	cli(&c, &r, "db", "downgrade", "1", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert(strstr(r.out, "downgrade: 2 -> 1\n") && strstr(r.out, "downgrade: done, now at 1"),
		  "[%s] %s", bname(&c), r.out);
	run_release(&r);
	EXPECT(&c, 0, "db_sync", "--expand", "2");
	EXPECT(&c, 0, "database", "downgrade", "1");
	assert_row(&c, "1/1/1");
	cr_assert_eq(count(&c, "SELECT count(*) FROM dbphase_steps WHERE step_id LIKE 'v002%'"), 0);
	/* Upgrades. */
	EXPECT(&c, 0, "db", "upgrade", "2");
	assert_row(&c, "2/2/2");
	EXPECT(&c, 0, "database", "upgrade", "--revision", "3");
	assert_row(&c, "3/3/3");
	cli(&c, &r, "upgrade", NULL);
	cr_assert_eq(r.code, 0);
	cr_assert_str_eq(r.out, "expand: already at 3, nothing to do\nmigrate: already at 3, "
			 "nothing to do\ncontract: already at 3, nothing to do\n");
	run_release(&r);
	/* Setting versions without running anything. */
	EXPECT(&c, 0, "goto", "1");
	assert_row(&c, "1/1/1");
	EXPECT(&c, 0, "database", "goto", "2");
	assert_row(&c, "2/2/2");
	EXPECT(&c, 0, "stamp", "--revision", "1");
	assert_row(&c, "1/1/1");
	EXPECT(&c, 0, "db", "stamp", "3");
	assert_row(&c, "3/3/3");
	EXPECT(&c, 0, "database", "stamp", "--revision", "head");
	assert_row(&c, "3/3/3");
	/* Reading commands. */
	EXPECT(&c, 0, "status");
	EXPECT(&c, 0, "plan");
	EXPECT(&c, 0, "plan", "--sql", "--all");
	EXPECT(&c, 0, "validate");
	EXPECT(&c, 0, "node", "register", "--name", "web-1", "--schema-version", "3");
	EXPECT(&c, 0, "node", "heartbeat", "--name", "web-1");
	cli(&c, &r, "node", "list", NULL);
	cr_assert(strstr(r.out, "web-1") && strstr(r.out, "live"), "[%s] %s", bname(&c), r.out);
	run_release(&r);
	EXPECT(&c, 0, "node", "retire", "--name", "web-1");
	EXPECT(&c, 1, "node", "heartbeat", "--name", "web-1");
	cli(&c, &r, "--format", "json", "db_version", NULL);
	{
		json_error_t je;
		json_t *doc = json_loads(r.out, 0, &je);

		cr_assert_not_null(doc, "[%s] not JSON: %s", bname(&c), r.out);
		cr_assert_eq(json_integer_value(json_object_get(doc, "version")), 3);
		cr_assert_eq(json_integer_value(json_object_get(doc, "latest")), 3);
		cr_assert(json_is_true(json_object_get(doc, "under_version_control")));
		json_decref(doc);
	}
	run_release(&r);
	/* revision writes the next file. */
	EXPECT(&c, 0, "revision", "-m", "add a thing");
	{
		char *path = xasprintf("%s/versions/004_add_a_thing.yaml", c.dir);

		cr_assert_eq(access(path, F_OK), 0, "[%s] %s not written", bname(&c), path);
		free(path);
	}
	cenv_close(&c);
}

Test(cli, every_command_and_alias_has_help)
{
	static const char *const spellings[][3] = {
		{ "db_sync", NULL }, { "sync", NULL }, { "db", "sync" }, { "database", "sync" },
		{ "db-sync", NULL }, { "upgrade", NULL }, { "db", "upgrade" },
		{ "database", "upgrade" }, { "downgrade", NULL }, { "db", "downgrade" },
		{ "database", "downgrade" }, { "db_version", NULL }, { "version", NULL },
		{ "db", "version" }, { "database", "version" }, { "current", NULL },
		{ "version_control", NULL }, { "database", "version_control" },
		{ "version-control", NULL }, { "goto", NULL }, { "database", "goto" },
		{ "stamp", NULL }, { "db", "stamp" }, { "database", "stamp" },
		{ "create_schema", NULL }, { "create-schema", NULL },
		{ "database", "create_schema" }, { "plan", NULL }, { "status", NULL },
		{ "validate", NULL }, { "node", NULL }, { "revision", NULL },
		{ "db", "revision" },
	};
	static const char *const canonical[] = {
		"db_sync", "db_sync", "db_sync", "db_sync", "db_sync", "upgrade", "upgrade",
		"upgrade", "downgrade", "downgrade", "downgrade", "db_version", "version",
		"db_version", "db_version", "db_version", "version_control", "version_control",
		"version_control", "goto", "goto", "stamp", "stamp", "stamp", "create_schema",
		"create_schema", "create_schema", "plan", "status", "validate", "node",
		"revision", "revision",
	};
	struct run r;
	size_t i;

	for (i = 0; i < sizeof(spellings) / sizeof(spellings[0]); i++) {
		char *want = xasprintf("usage: dbphase %s ", canonical[i]);

		if (spellings[i][1])
			run_dbphase(&r, spellings[i][0], spellings[i][1], "--help", NULL);
		else
			run_dbphase(&r, spellings[i][0], "--help", NULL);
		cr_assert_eq(r.code, 0, "%s %s --help: " RUN_FMT, spellings[i][0],
			     spellings[i][1] ? spellings[i][1] : "", RUN_ARGS(r));
		cr_assert(strncmp(r.out, want, strlen(want)) == 0, "%s: %s", spellings[i][0], r.out);
		run_release(&r);
		free(want);
	}
	run_dbphase(&r, "--help", NULL);
	cr_assert_eq(r.code, 0);
	for (i = 0; i < sizeof(canonical) / sizeof(canonical[0]); i++) {
		char *line = xasprintf("\n  %s ", canonical[i]);

		cr_assert(strstr(r.out, line) != NULL, "--help does not list %s", canonical[i]);
		free(line);
	}
	run_release(&r);
	run_dbphase(&r, "--version", NULL);
	cr_assert_eq(r.code, 0);
	cr_assert(strncmp(r.out, "dbphase ", 8) == 0, "%s", r.out);
	run_release(&r);
}

/* ---- usage errors: 64, one line, then the usage ------------------------------ */

Test(cli, usage_errors_exit_64_with_one_line_and_usage)
{
	static const char *const cases[][6] = {
		{ "bogus" },
		{ "db", "bogus" },
		{ "db_sync", "--bogus" },
		{ "db_sync", "--expand", "--migrate" },
		{ "db_sync", "x" },
		{ "db_sync", "1", "2" },
		{ "db_sync", "9" },
		{ "downgrade" },
		{ "downgrade", "1", "2" },
		{ "goto" },
		{ "goto", "-3" },
		{ "stamp" },
		{ "upgrade", "1", "--revision", "1" },
		{ "version_control", "1", "2" },
		{ "db_version", "1" },
		{ "status", "extra" },
		{ "validate", "--bogus" },
		{ "node" },
		{ "node", "dance" },
		{ "node", "register", "--name", "x" },
		{ "node", "heartbeat" },
		{ "plan", "--phase", "sideways" },
		{ "--format", "xml", "status" },
		{ "--lock-wait" },
		{ "--lock-wait", "soon", "status" },
		{ NULL },
	};
	char *dir = repo_create(REPO_ID, (const char *const[]){ v1_items }, 1);
	char *url = xasprintf("sqlite:///%s/db.sqlite", dir);
	size_t i, k;

	for (i = 0; cases[i][0]; i++) {
		char *argv[12] = { "--database", url, "--repository", dir };
		char *nl;
		struct run r;

		for (k = 0; k < 6 && cases[i][k]; k++)
			argv[4 + k] = (char *)cases[i][k];
		argv[4 + k] = NULL;
		run_argv(&r, argv);
		cr_assert_eq(r.code, 64, "case %zu (%s %s): " RUN_FMT, i, cases[i][0],
			     cases[i][1] ? cases[i][1] : "", RUN_ARGS(r));
		cr_assert_str_eq(r.out, "", "case %zu printed to stdout: %s", i, r.out);
		cr_assert_eq(n_lines(r.err), 2, "case %zu: %s", i, r.err);
		cr_assert(strncmp(r.err, "dbphase: ", 9) == 0, "case %zu: %s", i, r.err);
		nl = strchr(r.err, '\n');
		cr_assert(strncmp(nl + 1, "usage: dbphase ", 15) == 0, "case %zu: %s", i, r.err);
		run_release(&r);
	}
	/* Nothing was created by any of them. */
	{
		char *db = xasprintf("%s/db.sqlite", dir);
		FILE *f = fopen(db, "r");
		long size = 0;

		if (f) {
			fseek(f, 0, SEEK_END);
			size = ftell(f);
			fclose(f);
		}
		cr_assert_eq(size, 0, "a usage error wrote to the database");
		free(db);
	}
	test_rmtree(dir);
	free(dir);
	free(url);
}

/* ---- bad input: 65, file:line:column, database untouched --------------------- */

BACKEND_TEST(cli, bad_migration_exits_65_and_touches_nothing)
{
	static const char *const bad[] = {
		/* unknown operation */
		"operations:\n  - create_tabel:\n      name: t\n",
		/* YAML syntax */
		"operations:\n  - create_table: {name: t, columns: [\n",
		/* a column of a table that does not exist */
		"operations:\n  - add_column: {table: nowhere, column: {name: c, type: integer}}\n",
		/* a type dbphase does not know */
		"operations:\n  - create_table:\n      name: t\n      columns:\n"
		"        - {name: id, type: quaternion, primary_key: true}\n",
	};
	static const char *const commands[][2] = {
		{ "db_sync", NULL }, { "db_sync", "--check" }, { "status", NULL },
		{ "plan", NULL }, { "create_schema", NULL },
	};
	struct cenv c;
	regex_t re;
	size_t i, k;

	cenv_open(&c, *backend, (const char *const[]){ v1_items }, 1);
	cr_assert_eq(regcomp(&re, "^dbphase: /[^:]+/versions/002_v2\\.yaml:[0-9]+:[0-9]+: [^\n]+\n$",
			     REG_EXTENDED), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		test_write_file(c.dir, "versions/002_v2.yaml", bad[i]);
		for (k = 0; k < sizeof(commands) / sizeof(commands[0]); k++) {
			struct run r;

			cli(&c, &r, commands[k][0], commands[k][1], NULL);
			cr_assert_eq(r.code, 65, "[%s] bad file %zu, %s: " RUN_FMT, bname(&c), i,
				     commands[k][0], RUN_ARGS(r));
			cr_assert_eq(regexec(&re, r.err, 0, NULL, 0), 0,
				     "[%s] bad file %zu, %s: not path:line:column: %s", bname(&c), i,
				     commands[k][0], r.err);
			run_release(&r);
		}
	}
	regfree(&re);
	{
		char *tables = app_tables(c.conn);
		bool exist = true;

		cr_assert_str_eq(tables, "", "[%s] tables were created: %s", bname(&c), tables);
		free(tables);
		cr_assert_eq(c.conn->drv->table_exists(c.conn, "dbphase_version", &exist, NULL), 0);
		cr_assert(!exist, "[%s] dbphase's tables were created", bname(&c));
	}
	cenv_close(&c);
}

/*
 * SIGINT or SIGTERM while the repository is still loading ends dbphase at
 * once with 130 and a message; nothing was changed (a signal only set a
 * flag no loader looked at, so a large repository could not be stopped).
 * repository.yaml is a FIFO that is never written: once the test's open
 * for writing succeeds, dbphase is inside the loader, and stays there.
 */
BACKEND_TEST(cli, signal_while_loading_exits_130_at_once)
{
	static const int sigs[] = { SIGINT, SIGTERM };
	struct cenv c;
	size_t i;

	cenv_open(&c, *backend, (const char *const[]){ v1_items }, 1);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		char *fifo = xasprintf("%s/repository.yaml", c.dir);
		char *errf = xasprintf("%s/stderr", c.dir);
		char *argv[] = { "--database", c.db.url, "--repository", c.dir, "db_sync", NULL };
		char *err;
		double deadline = mono_s() + 60;
		pid_t pid;
		int fd = -1, status = 0, code;

		unlink(fifo);
		cr_assert_eq(mkfifo(fifo, 0600), 0, "mkfifo: %s", strerror(errno));
		pid = spawn_dbphase(argv, NULL, errf, NULL);
		while (fd < 0) {
			fd = open(fifo, O_WRONLY | O_NONBLOCK);
			if (fd >= 0)
				break;
			cr_assert_eq(errno, ENXIO, "open fifo: %s", strerror(errno));
			code = (int)waitpid(pid, &status, WNOHANG);
			cr_assert_eq(code, 0, "[%s] dbphase ended before reading repository.yaml"
				     " (%d, %s, status %d)", bname(&c), code, strerror(errno), status);
			cr_assert_lt(mono_s(), deadline, "[%s] dbphase never opened repository.yaml",
				     bname(&c));
			sleep_ms(20);
		}
		cr_assert_eq(kill(pid, sigs[i]), 0);
		/* Not a timing assertion: a bound so that a deaf process fails, not hangs. */
		deadline = mono_s() + 60;
		while ((code = (int)waitpid(pid, &status, WNOHANG)) == 0 && mono_s() < deadline)
			sleep_ms(20);
		if (code == 0) {
			kill(pid, SIGKILL);
			wait_child(pid);
		}
		close(fd);
		cr_assert_neq(code, 0, "[%s] %s did not stop dbphase while loading", bname(&c),
			      strsignal(sigs[i]));
		code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		err = slurp(errf);
		cr_assert_eq(code, 130, "[%s] %s while loading: exit %d, stderr: %s", bname(&c),
			     strsignal(sigs[i]), code, err);
		cr_assert_str_eq(err, sigs[i] == SIGINT ?
				 "dbphase: stopped by SIGINT before anything was changed\n" :
				 "dbphase: stopped by SIGTERM before anything was changed\n");
		free(err);
		unlink(fifo);
		free(fifo);
		free(errf);
	}
	{
		char *tables = app_tables(c.conn);
		bool exist = true;

		cr_assert_str_eq(tables, "", "[%s] tables were created: %s", bname(&c), tables);
		free(tables);
		cr_assert_eq(c.conn->drv->table_exists(c.conn, "dbphase_version", &exist, NULL), 0);
		cr_assert(!exist, "[%s] dbphase's tables were created", bname(&c));
	}
	cenv_close(&c);
}

/* ---- unreachable: 69, password masked everywhere ------------------------------ */

/* A port on 127.0.0.1 that nothing listens on. */
static int
closed_port(void)
{
	struct sockaddr_in a = { 0 };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

BACKEND_TEST(cli, unreachable_database_exits_69_and_never_prints_the_password)
{
	static const char *const commands[][3] = {
		{ "db_sync", NULL }, { "db_sync", "--check" }, { "status", NULL },
		{ "db_version", NULL }, { "--format", "json", "status" }, { "node", "list" },
		{ "-d", "db_sync", "--expand" },
	};
	struct cenv c;
	char *url, *masked;
	size_t k;

	cenv_open(&c, *backend, (const char *const[]){ v1_items }, 1);
	if (*backend == DB_BACKEND_SQLITE) {
		url = xstrdup("sqlite:////nonexistent-dbphase-dir/sub/x.db");
		masked = xstrdup(url);
	} else {
		const char *scheme = *backend == DB_BACKEND_POSTGRESQL ? "postgresql" : "mysql";
		int port = closed_port();

		url = xasprintf("%s://admin:S3cr3tPw0rd@127.0.0.1:%d/app", scheme, port);
		masked = xasprintf("%s://admin:***@127.0.0.1:%d/app", scheme, port);
	}
	for (k = 0; k < sizeof(commands) / sizeof(commands[0]); k++) {
		char *argv[8] = { "--database", url, "--repository", c.dir };
		struct run r;
		size_t n = 4, j;

		for (j = 0; j < 3 && commands[k][j]; j++)
			argv[n++] = (char *)commands[k][j];
		argv[n] = NULL;
		run_argv(&r, argv);
		cr_assert_eq(r.code, 69, "[%s] %s: " RUN_FMT, bname(&c), commands[k][0], RUN_ARGS(r));
		cr_assert(strstr(r.out, "S3cr3tPw0rd") == NULL && strstr(r.err, "S3cr3tPw0rd") == NULL,
			  "[%s] the password was printed: " RUN_FMT, bname(&c), RUN_ARGS(r));
		if (*backend != DB_BACKEND_SQLITE)
			cr_assert(strstr(r.err, masked) != NULL, "[%s] no masked URL '%s' in %s",
				  bname(&c), masked, r.err);
		run_release(&r);
	}
	/* Through the environment and a config file too. */
	{
		char *conf = xasprintf("[database]\nconnection = %s\n", url);
		char *path = xasprintf("%s/dbphase.conf", c.dir);
		struct run r;

		test_write_file(c.dir, "dbphase.conf", conf);
		run_dbphase(&r, "--config-file", path, "--repository", c.dir, "status", NULL);
		cr_assert_eq(r.code, 69, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
		cr_assert(strstr(r.err, "S3cr3tPw0rd") == NULL, "%s", r.err);
		run_release(&r);
		setenv("DBPHASE_DATABASE", url, 1);
		run_dbphase(&r, "--repository", c.dir, "db_sync", NULL);
		unsetenv("DBPHASE_DATABASE");
		cr_assert_eq(r.code, 69, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
		cr_assert(strstr(r.err, "S3cr3tPw0rd") == NULL, "%s", r.err);
		run_release(&r);
		free(conf);
		free(path);
	}
	/* PostgreSQL's test server trusts local users: a password is accepted and must not show. */
	if (*backend == DB_BACKEND_POSTGRESQL) {
		char *with = xstrdup(c.db.url);
		char *at = strchr(strstr(with, "://") + 3, '@');
		char *pw;
		struct run r;

		*at = '\0';
		pw = xasprintf("%s:S3cr3tPw0rd@%s", with, at + 1);
		run_dbphase(&r, "--database", pw, "--repository", c.dir, "status", NULL);
		cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
		cr_assert(strstr(r.out, "S3cr3tPw0rd") == NULL && strstr(r.out, ":***@"),
			  "[%s] %s", bname(&c), r.out);
		run_release(&r);
		run_dbphase(&r, "--database", pw, "--repository", c.dir, "--format", "json", "status",
			    NULL);
		cr_assert(strstr(r.out, "S3cr3tPw0rd") == NULL && strstr(r.out, ":***@"),
			  "[%s] %s", bname(&c), r.out);
		run_release(&r);
		free(pw);
		free(with);
	}
	free(masked);
	free(url);
	cenv_close(&c);
}

/* ---- --check: 0 up to date, 2 expand, 3 migrate, 4 contract ------------------ */

BACKEND_TEST(cli, check_exit_codes_follow_the_phases)
{
	const char *const v[] = { v1_items, v2_note };
	struct cenv c;
	struct run r;

	cenv_open(&c, *backend, v, 2);
	cli(&c, &r, "db_sync", "--check", NULL);
	cr_assert_eq(r.code, 2, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert(strstr(r.out, "expand needed") && strstr(r.out, "run dbphase db_sync --expand 2"),
		  "%s", r.out);
	run_release(&r);
	/* --check reads; it creates nothing. */
	assert_row(&c, "none");
	EXPECT(&c, 0, "db_sync", "--expand");
	cli(&c, &r, "db_sync", "--check", NULL);
	cr_assert_eq(r.code, 3, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert(strstr(r.out, "run dbphase db_sync --migrate 2") != NULL, "%s", r.out);
	run_release(&r);
	EXPECT(&c, 3, "db_sync", "--check", "1");
	EXPECT(&c, 0, "db_sync", "--migrate");
	cli(&c, &r, "--format", "json", "db_sync", "--check", NULL);
	cr_assert_eq(r.code, 4, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	{
		json_error_t je;
		json_t *doc = json_loads(r.out, 0, &je);

		cr_assert_not_null(doc, "%s", r.out);
		cr_assert_eq(json_integer_value(json_object_get(doc, "exit_code")), 4);
		cr_assert_str_eq(json_string_value(json_object_get(doc, "next")), "contract needed");
		json_decref(doc);
	}
	run_release(&r);
	EXPECT(&c, 0, "db_sync", "--contract");
	cli(&c, &r, "db_sync", "--check", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert_str_eq(r.out, "cli: up to date at version 2\n");
	run_release(&r);
	cenv_close(&c);
}

/* ---- refusals: 5, and the message says what comes first ---------------------- */

BACKEND_TEST(cli, refusals_exit_5_and_force_is_loud)
{
	const char *const v[] = { v1_items, v2_note };
	struct cenv c;
	struct run r;

	cenv_open(&c, *backend, v, 2);
	cli(&c, &r, "db_sync", "--migrate", NULL);
	cr_assert_eq(r.code, 5, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert_str_eq(r.err, "dbphase: migrate to 2 refused: expand is at 0; run db_sync "
			 "--expand 2 first\n");
	run_release(&r);
	EXPECT(&c, 0, "db_sync", "1");
	EXPECT(&c, 0, "db_sync", "--expand");
	cli(&c, &r, "db_sync", "--contract", NULL);
	cr_assert_eq(r.code, 5, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert_str_eq(r.err, "dbphase: contract to 2 refused: migrate is at 1; run db_sync "
			 "--migrate 2 first\n");
	run_release(&r);
	EXPECT(&c, 0, "db_sync", "--migrate");
	EXPECT(&c, 0, "node", "register", "--name", "app-old", "--schema-version", "1");
	cli(&c, &r, "db_sync", "--contract", NULL);
	cr_assert_eq(r.code, 5, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert(strstr(r.err, "contract to 2 refused: 1 live node still runs code that needs an "
			 "older schema: 'app-old' (needs version 1") != NULL, "%s", r.err);
	run_release(&r);
	/* The full db_sync is gated the same way, after doing what it may. */
	EXPECT(&c, 5, "db_sync");
	EXPECT(&c, 5, "upgrade");
	assert_row(&c, "2/2/1");
	/* A stale node does not block: one second of TTL, two of silence. */
	sleep_ms(2200);
	cli(&c, &r, "--node-ttl", "1", "status", NULL);
	cr_assert(strstr(r.out, "app-old") && strstr(r.out, "(stale)"), "[%s] %s", bname(&c), r.out);
	run_release(&r);
	EXPECT(&c, 4, "--node-ttl", "1", "db_sync", "--check");
	EXPECT(&c, 0, "db_sync", "--contract", "--node-ttl", "1");
	assert_row(&c, "2/2/2");
	cenv_close(&c);

	/* --force overrides a live node, warns, and the history says so. */
	cenv_open(&c, *backend, v, 2);
	EXPECT(&c, 0, "db_sync", "1");
	EXPECT(&c, 0, "node", "register", "--name", "app-old", "--schema-version", "1");
	EXPECT(&c, 0, "db_sync", "--expand");
	EXPECT(&c, 0, "db_sync", "--migrate");
	cli(&c, &r, "db_sync", "--contract", "--force", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert(strstr(r.err, "dbphase: warning: --force: contracted to 2 although live nodes "
			 "need an older schema: 'app-old'") == r.err, "%s", r.err);
	run_release(&r);
	assert_row(&c, "2/2/2");
	cr_assert_eq(count(&c, "SELECT count(*) FROM dbphase_history WHERE command = "
			   "'db_sync --contract --force' AND result = 'ok (forced)' AND detail LIKE "
			   "'%app-old%'"), 1, "[%s] the history does not say it was forced", bname(&c));
	cenv_close(&c);
}

/* ---- --lock-wait: 75 once it has waited that long ------------------------------ */

BACKEND_TEST(cli, lock_wait_bounds_the_wait_for_the_cluster_lock)
{
	const char *const v[] = { v1_items };
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct cenv c;
	struct state st;
	struct run r;
	double t0, took;

	cenv_open(&c, *backend, v, 1);
	state_init(&st, c.conn, REPO_ID, NULL);
	cr_assert_eq(state_lock(&st, 0, &err), 0, "%s", err.message);
	t0 = mono_s();
	cli(&c, &r, "--lock-wait", "1", "db_sync", "--expand", NULL);
	took = mono_s() - t0;
	cr_assert_eq(r.code, 75, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert(strstr(r.err, "another dbphase holds the lock of repository 'cli'; gave up "
			 "after 1 s (--lock-wait)") != NULL, "%s", r.err);
	cr_assert(took >= 0.9 && took < 15, "[%s] waited %.2f s", bname(&c), took);
	run_release(&r);
	/* 0: one try. */
	t0 = mono_s();
	cli(&c, &r, "db_sync", "--lock-wait=0", NULL);
	cr_assert_eq(r.code, 75, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert_lt(mono_s() - t0, 10);
	run_release(&r);
	/* Read-only commands take no lock. */
	EXPECT(&c, 2, "--lock-wait", "0", "db_sync", "--check");
	/* Set in a config file. */
	{
		char *path = xasprintf("%s/wait.conf", c.dir);

		test_write_file(c.dir, "wait.conf", "[dbphase]\nlock_wait_s = 1\n");
		EXPECT(&c, 75, "--config-file", path, "stamp", "1");
		free(path);
	}
	assert_row(&c, "none");
	state_unlock(&st);
	EXPECT(&c, 0, "--lock-wait", "1", "db_sync", "--expand");
	assert_row(&c, "1/0/0");
	state_release(&st);
	err_release(&err);
	cenv_close(&c);
}

/* ---- version_control, goto, stamp: nothing runs, history is written ------------- */

BACKEND_TEST(cli, stamping_commands_run_nothing_and_write_history)
{
	const char *const v[] = { v1_items, v2_note, v3_fix };
	struct cenv c;
	struct run r;

	cenv_open(&c, *backend, v, 3);
	cli(&c, &r, "version_control", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert_str_eq(r.out, "cli: stamped at version 0 (no migration was run)\n");
	run_release(&r);
	assert_row(&c, "0/0/0");
	cli(&c, &r, "database", "version_control", "2", NULL);
	cr_assert_eq(r.code, 5, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert(strstr(r.err, "already under version control") && strstr(r.err, "use goto"),
		  "%s", r.err);
	run_release(&r);
	EXPECT(&c, 0, "goto", "2");
	assert_row(&c, "2/2/2");
	EXPECT(&c, 0, "stamp", "--revision", "3");
	assert_row(&c, "3/3/3");
	EXPECT(&c, 0, "goto", "1");
	assert_row(&c, "1/1/1");
	/* Nothing ran: no application table, no step record, no progress. */
	{
		char *t = app_tables(c.conn);

		cr_assert_str_eq(t, "", "[%s] %s", bname(&c), t);
		free(t);
	}
	cr_assert_eq(count(&c, "SELECT count(*) FROM dbphase_steps"), 0);
	cr_assert_eq(count(&c, "SELECT count(*) FROM dbphase_history WHERE command IN "
			   "('version_control', 'goto', 'stamp') AND result = 'ok' AND detail LIKE "
			   "'stamped at % nothing was run'"), 4);
	cr_assert_eq(count(&c, "SELECT count(*) FROM dbphase_history WHERE command = 'stamp' "
			   "AND from_state = '2/2/2' AND to_state = '3/3/3'"), 1);
	/* Checksums: recorded up to the stamp, forgotten above it. */
	cr_assert_eq(count(&c, "SELECT max(version) FROM dbphase_migrations"), 1);
	cli(&c, &r, "db_version", NULL);
	cr_assert_str_eq(r.out, "1\n");
	run_release(&r);
	/* A fresh database under version control at 1, then brought up. */
	cenv_close(&c);
	cenv_open(&c, *backend, v, 3);
	EXPECT(&c, 0, "version_control", "1");
	test_exec(c.conn, "CREATE TABLE items (id bigint PRIMARY KEY, n integer NOT NULL DEFAULT 0)");
	EXPECT(&c, 0, "db_sync", "2");
	assert_row(&c, "2/2/2");
	cenv_close(&c);
}

/* ---- create_schema -------------------------------------------------------------- */

BACKEND_TEST(cli, create_schema_on_empty_database_only)
{
	const char *const v[] = { v1_items, v2_note, v3_fix };
	struct cenv c;
	struct run r;
	char *t;

	cenv_open(&c, *backend, v, 3);
	EXPECT(&c, 0, "create_schema");
	assert_row(&c, "3/3/3");
	t = app_tables(c.conn);
	cr_assert_str_eq(t, "items", "[%s] %s", bname(&c), t);
	free(t);
	cr_assert_eq(count(&c, "SELECT count(*) FROM dbphase_history WHERE command = "
			   "'create_schema'"), 3);
	/* Again: the database holds application tables now. */
	cli(&c, &r, "create-schema", NULL);
	cr_assert_eq(r.code, 5, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert(strstr(r.err, "create_schema refused: the database already holds application "
			 "tables (such as 'items')") != NULL, "%s", r.err);
	run_release(&r);
	cenv_close(&c);
	/* A database with someone else's tables. */
	cenv_open(&c, *backend, v, 3);
	test_exec(c.conn, "CREATE TABLE legacy (id integer PRIMARY KEY)");
	cli(&c, &r, "database", "create_schema", NULL);
	cr_assert_eq(r.code, 5, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert(strstr(r.err, "'legacy'") && strstr(r.err, "version_control"), "%s", r.err);
	run_release(&r);
	assert_row(&c, "none");
	t = app_tables(c.conn);
	cr_assert_str_eq(t, "legacy");
	free(t);
	cenv_close(&c);
}

/* ---- a changed applied file stops every command until validate --repair ------- */

BACKEND_TEST(cli, changed_applied_file_stops_every_command)
{
	const char *const v[] = { v1_items, v2_note };
	static const char *const refused[][5] = {
		{ "status" }, { "--format", "json", "status" }, { "db_version" },
		{ "db", "version" }, { "plan" }, { "db_sync" }, { "db_sync", "--expand" },
		{ "db_sync", "--check" }, { "upgrade" }, { "downgrade", "1" }, { "goto", "2" },
		{ "stamp", "1" }, { "node", "list" }, { "validate" }, { "create_schema" },
	};
	struct cenv c;
	struct run r;
	size_t i, k;
	char *changed;

	cenv_open(&c, *backend, v, 2);
	EXPECT(&c, 0, "db_sync", "--expand", "2");
	EXPECT(&c, 0, "node", "register", "--name", "n1", "--schema-version", "1");
	changed = xasprintf("%s  - add_index: {table: items, name: ix_items_n, columns: [n]}\n",
			    v2_note);
	test_write_file(c.dir, "versions/002_v2.yaml", changed);
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		char *argv[12] = { "--database", c.db.url, "--repository", c.dir };

		for (k = 0; k < 5 && refused[i][k]; k++)
			argv[4 + k] = (char *)refused[i][k];
		argv[4 + k] = NULL;
		run_argv(&r, argv);
		cr_assert_eq(r.code, 65, "[%s] %s %s: " RUN_FMT, bname(&c), refused[i][0],
			     refused[i][1] ? refused[i][1] : "", RUN_ARGS(r));
		cr_assert(strstr(r.err, "versions/002_v2.yaml") && strstr(r.err, "version 2"),
			  "[%s] %s: %s", bname(&c), refused[i][0], r.err);
		run_release(&r);
	}
	assert_row(&c, "2/0/0");
	/* validate reports which file changed. */
	cli(&c, &r, "validate", NULL);
	cr_assert(strstr(r.out, "version 1    ok\n") && strstr(r.out, "CHANGED since it was applied"),
		  "[%s] %s", bname(&c), r.out);
	cr_assert(strstr(r.err, "versions/002_v2.yaml (version 2) changed on disk since it was "
			 "applied; restore it or run 'dbphase validate --repair'") != NULL, "%s",
		  r.err);
	run_release(&r);
	cli(&c, &r, "--format", "json", "validate", NULL);
	cr_assert_eq(r.code, 65);
	{
		json_error_t je;
		json_t *doc = json_loads(r.out, 0, &je), *f;

		cr_assert_not_null(doc, "%s", r.out);
		cr_assert(json_is_false(json_object_get(doc, "ok")));
		f = json_array_get(json_object_get(doc, "files"), 1);
		cr_assert_str_eq(json_string_value(json_object_get(f, "verdict")), "changed");
		json_decref(doc);
	}
	run_release(&r);
	/* A node's heartbeat goes on (refusing it would let contract forget the node). */
	cli(&c, &r, "node", "heartbeat", "--name", "n1", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert(strstr(r.err, "dbphase: warning: ") == r.err && strstr(r.err, "version 2"),
		  "%s", r.err);
	run_release(&r);
	/* Repair on purpose: recorded, in the history; then everything works again. */
	cli(&c, &r, "validate", "--repair", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	run_release(&r);
	cr_assert_eq(count(&c, "SELECT count(*) FROM dbphase_history WHERE command = "
			   "'validate --repair' AND result = 'repaired' AND detail LIKE "
			   "'%002_v2.yaml (version 2): accepted%'"), 1);
	EXPECT(&c, 0, "validate");
	EXPECT(&c, 0, "status");
	EXPECT(&c, 0, "db_sync", "--migrate");
	/* A file of an applied version removed from the repository. */
	{
		char *path = xasprintf("%s/versions/002_v2.yaml", c.dir);

		cr_assert_eq(unlink(path), 0);
		free(path);
	}
	cli(&c, &r, "status", NULL);
	cr_assert_eq(r.code, 65, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert(strstr(r.err, "version 2 is applied") && strstr(r.err, "restore it"), "%s",
		  r.err);
	run_release(&r);
	free(changed);
	cenv_close(&c);
}

/* ---- status --format json against its schema ------------------------------------ */

/*
 * A validator for the part of JSON Schema that schemas/status.schema.json
 * uses; a keyword it does not know fails the test rather than pass silently.
 */
static bool
type_is(const json_t *v, const char *type)
{
	if (strcmp(type, "object") == 0)
		return json_is_object(v);
	if (strcmp(type, "array") == 0)
		return json_is_array(v);
	if (strcmp(type, "string") == 0)
		return json_is_string(v);
	if (strcmp(type, "integer") == 0)
		return json_is_integer(v);
	if (strcmp(type, "number") == 0)
		return json_is_number(v);
	if (strcmp(type, "boolean") == 0)
		return json_is_boolean(v);
	if (strcmp(type, "null") == 0)
		return json_is_null(v);
	cr_assert_fail("schema uses unknown type '%s'", type);
	return false;
}

static void
validate(const json_t *root, const json_t *schema, const json_t *v, const char *path)
{
	const char *key;
	json_t *kw;

	json_object_foreach((json_t *)schema, key, kw) {
		if (strcmp(key, "$ref") == 0) {
			const char *ref = json_string_value(kw);

			cr_assert(strncmp(ref, "#/$defs/", 8) == 0, "unsupported $ref %s", ref);
			validate(root, json_object_get(json_object_get(root, "$defs"), ref + 8), v, path);
		} else if (strcmp(key, "type") == 0) {
			bool ok = false;
			size_t i;

			if (json_is_string(kw))
				ok = type_is(v, json_string_value(kw));
			for (i = 0; json_is_array(kw) && i < json_array_size(kw); i++)
				ok = ok || type_is(v, json_string_value(json_array_get(kw, i)));
			cr_assert(ok, "%s: wrong type", path);
		} else if (strcmp(key, "enum") == 0) {
			bool ok = false;
			size_t i;

			for (i = 0; i < json_array_size(kw); i++)
				ok = ok || json_equal(json_array_get(kw, i), (json_t *)v);
			cr_assert(ok, "%s: not one of the schema's values", path);
		} else if (strcmp(key, "required") == 0) {
			size_t i;

			for (i = 0; i < json_array_size(kw); i++) {
				const char *name = json_string_value(json_array_get(kw, i));

				cr_assert(json_object_get(v, name) != NULL, "%s: '%s' is missing", path,
					  name);
			}
		} else if (strcmp(key, "properties") == 0 && json_is_object(v)) {
			const char *name;
			json_t *sub;

			json_object_foreach(kw, name, sub) {
				json_t *child = json_object_get(v, name);
				char *p = xasprintf("%s.%s", path, name);

				if (child)
					validate(root, sub, child, p);
				free(p);
			}
		} else if (strcmp(key, "additionalProperties") == 0 && json_is_object(v)) {
			const char *name;
			json_t *val;

			cr_assert(json_is_false(kw), "only additionalProperties: false is supported");
			json_object_foreach((json_t *)v, name, val)
				cr_assert(json_object_get(json_object_get(schema, "properties"), name),
					  "%s: '%s' is not in the schema", path, name);
		} else if (strcmp(key, "items") == 0 && json_is_array(v)) {
			size_t i;

			for (i = 0; i < json_array_size(v); i++) {
				char *p = xasprintf("%s[%zu]", path, i);

				validate(root, kw, json_array_get(v, i), p);
				free(p);
			}
		} else if (strcmp(key, "minItems") == 0 && json_is_array(v)) {
			cr_assert_geq(json_array_size(v), (size_t)json_integer_value(kw), "%s", path);
		} else if (strcmp(key, "minimum") == 0 && json_is_number(v)) {
			cr_assert_geq(json_number_value(v), json_number_value(kw), "%s", path);
		} else if (strcmp(key, "pattern") == 0 && json_is_string(v)) {
			regex_t re;

			cr_assert_eq(regcomp(&re, json_string_value(kw), REG_EXTENDED | REG_NOSUB), 0);
			cr_assert_eq(regexec(&re, json_string_value(v), 0, NULL, 0), 0,
				     "%s: '%s' does not match %s", path, json_string_value(v),
				     json_string_value(kw));
			regfree(&re);
		} else if (strcmp(key, "description") != 0 && strcmp(key, "title") != 0 &&
			   strcmp(key, "$schema") != 0 && strcmp(key, "$id") != 0 &&
			   strcmp(key, "$defs") != 0 && strcmp(key, "properties") != 0 &&
			   strcmp(key, "additionalProperties") != 0 && strcmp(key, "items") != 0 &&
			   strcmp(key, "minItems") != 0 && strcmp(key, "minimum") != 0 &&
			   strcmp(key, "pattern") != 0) {
			cr_assert_fail("the test's validator does not know keyword '%s'", key);
		}
	}
}

/* status --format json, checked against the schema; the document (owned). */
static json_t *
status_json(struct cenv *c, const json_t *schema, const char *ttl)
{
	json_error_t je;
	struct run r;
	json_t *doc;

	cli(c, &r, "--format", "json", "--node-ttl", ttl, "status", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(c), RUN_ARGS(r));
	doc = json_loads(r.out, 0, &je);
	cr_assert_not_null(doc, "[%s] not JSON (%s): %s", bname(c), je.text, r.out);
	validate(schema, schema, doc, "status");
	run_release(&r);
	return doc;
}

BACKEND_TEST(cli, status_json_has_the_documented_shape)
{
	const char *const v[] = { v1_items, v2_note, v3_fix };
	const char *root = getenv("DBPHASE_SOURCE_ROOT");
	char *path = xasprintf("%s/schemas/status.schema.json", root && *root ? root : "..");
	json_error_t je;
	json_t *schema = json_load_file(path, 0, &je), *doc, *repo, *x;
	struct cenv c;

	cr_assert_not_null(schema, "%s:%d: %s", path, je.line, je.text);
	cenv_open(&c, *backend, v, 3);
	/* Not under version control yet. */
	doc = status_json(&c, schema, "300");
	repo = json_array_get(json_object_get(doc, "repositories"), 0);
	cr_assert(json_is_false(json_object_get(repo, "under_version_control")));
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(repo, "next"), "action")),
			 "expand");
	cr_assert_str_eq(json_string_value(json_object_get(doc, "backend")), db_backend_name(*backend));
	json_decref(doc);
	/* Mid-upgrade: progress, a live and a stale node, history. */
	EXPECT(&c, 0, "db_sync", "2");
	test_exec(c.conn, "INSERT INTO items (id, n) VALUES (1, 0), (2, 0), (3, 0)");
	EXPECT(&c, 0, "node", "register", "--name", "old", "--schema-version", "2");
	EXPECT(&c, 0, "db_sync", "--expand");
	EXPECT(&c, 0, "db_sync", "--migrate");
	EXPECT(&c, 5, "db_sync", "--contract");
	test_exec(c.conn, "UPDATE dbphase_nodes SET heartbeat_at = heartbeat_at - 100 WHERE name = 'old'");
	EXPECT(&c, 0, "node", "register", "--name", "new", "--schema-version", "3");
	doc = status_json(&c, schema, "60");
	cr_assert_eq(json_integer_value(json_object_get(doc, "node_ttl_s")), 60);
	repo = json_array_get(json_object_get(doc, "repositories"), 0);
	cr_assert_eq(json_integer_value(json_object_get(repo, "expand_version")), 3);
	cr_assert_eq(json_integer_value(json_object_get(repo, "migrate_version")), 3);
	cr_assert_eq(json_integer_value(json_object_get(repo, "contract_version")), 2);
	x = json_object_get(repo, "next");
	cr_assert_str_eq(json_string_value(json_object_get(x, "action")), "contract");
	cr_assert_eq(json_integer_value(json_object_get(x, "exit_code")), 4);
	cr_assert_str_eq(json_string_value(json_object_get(x, "command")), "dbphase db_sync --contract 3");
	x = json_array_get(json_object_get(repo, "progress"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(x, "step")), "v003.migrate.1");
	cr_assert_eq(json_integer_value(json_object_get(x, "rows_done")), 3);
	cr_assert(json_is_true(json_object_get(x, "finished")));
	x = json_object_get(repo, "nodes");
	cr_assert_eq(json_array_size(x), 2);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(x, 0), "name")), "new");
	cr_assert(json_is_true(json_object_get(json_array_get(x, 0), "live")));
	cr_assert(json_is_false(json_object_get(json_array_get(x, 1), "live")));
	x = json_array_get(json_object_get(repo, "history"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(x, "result")), "refused");
	cr_assert_str_eq(json_string_value(json_object_get(x, "from")), "3/3/2");
	json_decref(doc);
	/* Contracted: nothing next. */
	EXPECT(&c, 0, "--node-ttl", "60", "db_sync", "--contract");
	doc = status_json(&c, schema, "60");
	repo = json_array_get(json_object_get(doc, "repositories"), 0);
	cr_assert(json_is_null(json_object_get(json_object_get(repo, "next"), "action")));
	cr_assert_null(json_object_get(json_object_get(repo, "next"), "command"));
	json_decref(doc);
	json_decref(schema);
	free(path);
	cenv_close(&c);
}
