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
#include "json-schema.h"

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
	va_list ap;

	va_start(ap, r);
	run_dbphase_at(r, c->db.url, c->dir, NULL, ap);
	va_end(ap);
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
	assert_version_row(c->conn, REPO_ID, bname(c), want);
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
	/* version is the database's version too (keystone's "database version"). */
	cli(&c, &r, "version", NULL);
	cr_assert_eq(r.code, 0, "[%s] version: " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert_str_eq(r.out, "1\n", "[%s] version printed %s", bname(&c), r.out);
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

/*
 * --config-file and --config-dir are read in command-line order, the later
 * winning, and [sql] connection still works, with a warning.
 */
Test(cli, config_sources_in_command_line_order)
{
	char *dir = test_mkdtemp();
	char *conf_dir = xasprintf("%s/conf.d", dir), *file = xasprintf("%s/f.conf", dir);
	char *old = xasprintf("%s/old.conf", dir), *repo = xasprintf("%s/repo", dir);
	char *want_dir = xasprintf("database sqlite:///%s/from-dir.db ", dir);
	char *want_file = xasprintf("database sqlite:///%s/from-file.db ", dir);
	char *text;
	struct run r;

	text = xasprintf("[database]\nconnection = sqlite:///%s/from-dir.db\n", dir);
	test_write_file(dir, "conf.d/10.conf", text);
	free(text);
	text = xasprintf("[database]\nconnection = sqlite:///%s/from-file.db\n", dir);
	test_write_file(dir, "f.conf", text);
	free(text);
	text = xasprintf("[sql]\nconnection = sqlite:///%s/from-file.db\n", dir);
	test_write_file(dir, "old.conf", text);
	free(text);
	test_write_file(dir, "repo/repository.yaml", "id: t\n");
	test_write_file(dir, "repo/versions/001_a.yaml",
			"operations:\n  - create_table: {name: t, columns: [{name: id, type: bigint,"
			" primary_key: true}]}\n");

	run_dbphase(&r, "--config-dir", conf_dir, "--config-file", file, "--repository", repo,
		    "status", NULL);
	cr_assert_eq(r.code, 0, RUN_FMT, RUN_ARGS(r));
	cr_assert(strstr(r.out, want_file), "%s", r.out);
	run_release(&r);
	run_dbphase(&r, "--config-file", file, "--config-dir", conf_dir, "--repository", repo,
		    "status", NULL);
	cr_assert_eq(r.code, 0, RUN_FMT, RUN_ARGS(r));
	cr_assert(strstr(r.out, want_dir), "%s", r.out);
	run_release(&r);
	run_dbphase(&r, "--config-file", old, "--repository", repo, "status", NULL);
	cr_assert_eq(r.code, 0, RUN_FMT, RUN_ARGS(r));
	cr_assert(strstr(r.out, want_file), "%s", r.out);
	cr_assert(strstr(r.err, "[sql] connection is deprecated; write [database] connection"),
		  "%s", r.err);
	run_release(&r);

	/* An explicit config file beats the environment, which fills in the rest. */
	setenv("DBPHASE_DATABASE", "sqlite:///from-env.db", 1);
	run_dbphase(&r, "--config-file", file, "--repository", repo, "status", NULL);
	cr_assert_eq(r.code, 0, RUN_FMT, RUN_ARGS(r));
	cr_assert(strstr(r.out, want_file), "%s", r.out);
	run_release(&r);
	test_write_file(dir, "nodb.conf", "[dbphase]\njobs = 2\n");
	text = xasprintf("%s/nodb.conf", dir);
	run_dbphase(&r, "--config-file", text, "--repository", repo, "status", NULL);
	cr_assert_eq(r.code, 0, RUN_FMT, RUN_ARGS(r));
	cr_assert(strstr(r.out, "database sqlite:///from-env.db "), "%s", r.out);
	run_release(&r);
	unsetenv("DBPHASE_DATABASE");
	/* Config files that name no database are not a reason to use the default. */
	run_dbphase(&r, "--config-file", text, "--repository", repo, "db_sync", NULL);
	cr_assert_eq(r.code, 65, RUN_FMT, RUN_ARGS(r));
	cr_assert(strstr(r.err, "no database: the config given (") &&
		  strstr(r.err, "nodb.conf) sets no [database] connection"), "%s", r.err);
	run_release(&r);
	free(text);

	/* The repository beside the config file, or an error naming each place. */
	text = xasprintf("%s/migrations", dir);
	run_dbphase(&r, "--config-file", file, "status", NULL);
	cr_assert_eq(r.code, 65, RUN_FMT, RUN_ARGS(r));
	cr_assert(strstr(r.err, "no migration repository found: no --repository, no [dbphase]"
			 " repository, and none of ") && strstr(r.err, text) &&
		  strstr(r.err, "./migrations has a versions/ folder"), "%s", r.err);
	run_release(&r);
	cr_assert_eq(rename(repo, text), 0);
	run_dbphase(&r, "--config-file", file, "status", NULL);
	cr_assert_eq(r.code, 0, RUN_FMT, RUN_ARGS(r));
	cr_assert(strstr(r.out, text), "%s", r.out);
	run_release(&r);
	free(text);

	test_rmtree(dir);
	free(dir);
	free(conf_dir);
	free(file);
	free(old);
	free(repo);
	free(want_dir);
	free(want_file);
}

Test(cli, usage_errors_exit_64_with_one_line_and_usage)
{
	static const char *const cases[][6] = {
		{ "bogus" },
		{ "db", "bogus" },
		{ "db_sync", "--bogus" },
		{ "db_sync", "--expand", "--migrate" },
		{ "db_sync", "x" },
		{ "db_sync", "1", "2", "3" },
		{ "db_sync", "1", "2" },	/* glance's VERSION CURRENT: 2 is not on disk */
		{ "db_sync", "--expand=1" },
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

/* ---- the seed tools' spellings --------------------------------------------- */

static const char ext_v1[] =
	"description: an extension's table\n"
	"operations:\n"
	"  - create_table:\n"
	"      name: audit_log\n"
	"      columns:\n"
	"        - {name: id, type: bigint, primary_key: true}\n";

/*
 * keystone's, glance's, sqlalchemy-migrate's and Alembic's habits, as
 * their users type them (issue: seed-tool parity).
 */
BACKEND_TEST(cli, seed_spellings_work_as_typed)
{
	const char *const v[] = { v1_items, v2_note, v3_fix };
	struct cenv c;
	struct run r;

	cenv_open(&c, *backend, v, 3);
	/* keystone: options after positionals, as argparse allows. */
	EXPECT(&c, 0, "db_sync", "1", "--expand");
	EXPECT(&c, 0, "db_sync", "--migrate", "1");
	cli(&c, &r, "db_sync", "--expand=2", NULL);
	cr_assert_eq(r.code, 64, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert(strstr(r.err, "option '--expand' takes no value"), "%s", r.err);
	run_release(&r);
	EXPECT(&c, 0, "db_sync", "1", "--contract");
	assert_row(&c, "1/1/1");
	/* One token from db_version and version, whatever the phases. */
	EXPECT(&c, 0, "db_sync", "--expand", "2");
	cli(&c, &r, "db", "current", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert_str_eq(r.out, "1\n", "[%s] %s", bname(&c), r.out);
	run_release(&r);
	cli(&c, &r, "version", NULL);
	cr_assert_str_eq(r.out, "1\n", "[%s] %s", bname(&c), r.out);
	run_release(&r);
	/* Alembic: downgrade -1 from the expanded version, upgrade +1 past the contracted. */
	EXPECT(&c, 0, "downgrade", "-1");
	assert_row(&c, "1/1/1");
	EXPECT(&c, 0, "upgrade", "+1");
	assert_row(&c, "2/2/2");
	EXPECT(&c, 0, "upgrade", "head");
	assert_row(&c, "3/3/3");
	/* Below the contracted version: refused, as ever. */
	EXPECT(&c, 5, "downgrade", "base");
	/* "db CMD" for every command. */
	EXPECT(&c, 0, "db", "status");
	EXPECT(&c, 0, "database", "db_version");
	EXPECT(&c, 0, "db", "goto", "3");
	cenv_close(&c);

	/* glance: db sync VERSION CURRENT_VERSION on a database made another way. */
	cenv_open(&c, *backend, v, 3);
	{
		struct db_conn *conn = c.conn;
		struct dbphase_error err = DBPHASE_ERROR_INIT;

		cr_assert_eq(conn->drv->exec(conn, "CREATE TABLE items (id bigint PRIMARY KEY,"
					     " n integer NOT NULL DEFAULT 0)", &err), 0, "%s",
			     err.message);
	}
	EXPECT(&c, 0, "db", "sync", "2", "1");
	assert_row(&c, "2/2/2");
	cli(&c, &r, "db", "sync", "3", "1", NULL);
	cr_assert_eq(r.code, 5, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert(strstr(r.err, "already under version control at 2/2/2, not at 1"), "%s", r.err);
	run_release(&r);
	/* mogan: no command is upgrade. */
	cli(&c, &r, NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	run_release(&r);
	assert_row(&c, "3/3/3");
	cenv_close(&c);

	/* keystone's extensions: plain db_sync and --check cover them all. */
	cenv_open(&c, *backend, v, 1);
	test_write_file(c.dir, "extensions/example/versions/001_audit.yaml", ext_v1);
	cli(&c, &r, "db_sync", "--check", NULL);
	cr_assert_eq(r.code, 2, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert(strstr(r.out, "cli/example: expand needed"), "[%s] %s", bname(&c), r.out);
	run_release(&r);
	EXPECT(&c, 0, "db_sync");
	assert_row(&c, "1/1/1");
	{
		char *row = version_row(c.conn, "cli/example");

		cr_assert_str_eq(row, "1/1/1", "[%s] the extension's row is %s", bname(&c), row);
		free(row);
	}
	EXPECT(&c, 0, "db_sync", "--check");
	cr_assert_eq(count(&c, "SELECT count(*) FROM audit_log"), 0);
	/* Back to 0, as keystone's extension guide shows; the main repository stays. */
	cli(&c, &r, "db_sync", "--extension", "example", "0", NULL);
	cr_assert_eq(r.code, 5, "[%s] contracted versions cannot go back: " RUN_FMT, bname(&c),
		     RUN_ARGS(r));
	run_release(&r);
	cenv_close(&c);

	cenv_open(&c, *backend, v, 1);
	test_write_file(c.dir, "extensions/example/versions/001_audit.yaml", ext_v1);
	EXPECT(&c, 0, "db_sync", "--extension", "example", "--expand");
	EXPECT(&c, 0, "db_sync", "--extension", "example", "0");
	{
		char *row = version_row(c.conn, "cli/example");

		cr_assert_str_eq(row, "0/0/0", "[%s] the extension's row is %s", bname(&c), row);
		free(row);
	}
	cr_assert_eq(count(&c, "SELECT count(*) FROM dbphase_version WHERE repository = 'cli'"),
		     0, "[%s] the main repository was touched", bname(&c));
	cenv_close(&c);
}

/*
 * A node whose package is older than the database (rolled back) can still
 * read: it is told the database is ahead, not that a file was removed.
 */
BACKEND_TEST(cli, an_older_package_reads_a_database_ahead_of_it)
{
	const char *const v[] = { v1_items, v2_note };
	struct cenv c;
	struct run r;
	char *v2;

	cenv_open(&c, *backend, v, 2);
	EXPECT(&c, 0, "db_sync");
	EXPECT(&c, 0, "node", "register", "--name", "web1", "--schema-version", "2");
	v2 = xasprintf("%s/versions/002_v2.yaml", c.dir);
	cr_assert_eq(unlink(v2), 0);
	free(v2);
	cli(&c, &r, "db_version", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert_str_eq(r.out, "2\n");
	cr_assert(strstr(r.err, "the database is ahead of this package: version 2 is applied") &&
		  !strstr(r.err, "removed"), "[%s] %s", bname(&c), r.err);
	run_release(&r);
	EXPECT(&c, 0, "status");
	EXPECT(&c, 0, "db_sync", "--check");
	EXPECT(&c, 0, "node", "heartbeat", "--name", "web1");
	EXPECT(&c, 0, "node", "list");
	/* Changing anything is refused: that is the newer release's to do. */
	cli(&c, &r, "db_sync", "--expand", NULL);
	cr_assert_eq(r.code, 5, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert(strstr(r.err, "ahead of this package"), "[%s] %s", bname(&c), r.err);
	run_release(&r);
	assert_row(&c, "2/2/2");
	cenv_close(&c);
}

/* revision -m writes a file that applies nothing until it is edited. */
Test(cli, revision_template_applies_nothing)
{
	char *dir = repo_create(REPO_ID, (const char *const[]){ v1_items }, 1);
	char *url = xasprintf("sqlite:///%s/db.sqlite", dir), *text, *path;
	struct run r;

	run_dbphase(&r, "--repository", dir, "revision", "-m", "Split: \"names\" #1", NULL);
	cr_assert_eq(r.code, 0, RUN_FMT, RUN_ARGS(r));
	run_release(&r);
	path = xasprintf("%s/versions/002_split_names_1.yaml", dir);
	text = slurp(path);
	cr_assert(strstr(text, "description: \"Split: \\\"names\\\" #1\"\n"), "%s", text);
	cr_assert(strstr(text, "#   - rename_column: {table: TABLE, from: COLUMN, to: NEW_COLUMN}"),
		  "%s", text);
	cr_assert(strstr(text, "\noperations: []\n") && !strstr(text, "SELECT 1"), "%s", text);
	free(text);
	run_dbphase(&r, "--database", url, "--repository", dir, "db_sync", NULL);
	cr_assert_eq(r.code, 65, RUN_FMT, RUN_ARGS(r));
	cr_assert(strstr(r.err, "002_split_names_1.yaml:") && strstr(r.err, "'operations' is empty"),
		  "%s", r.err);
	run_release(&r);
	free(path);
	free(url);
	test_rmtree(dir);
	free(dir);
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
	/* A command that changes the database first names it, and who chose it. */
	cr_assert(strncmp(r.err, "dbphase: database ", 18) == 0 &&
		  strstr(r.err, " (from --database)\n"), "[%s] %s", bname(&c), r.err);
	cr_assert_str_eq(after_database_line(r.err), "dbphase: migrate to 2 refused: expand is"
			 " at 0; run db_sync --expand 2 first\n");
	run_release(&r);
	EXPECT(&c, 0, "db_sync", "1");
	EXPECT(&c, 0, "db_sync", "--expand");
	cli(&c, &r, "db_sync", "--contract", NULL);
	cr_assert_eq(r.code, 5, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert_str_eq(after_database_line(r.err), "dbphase: contract to 2 refused: migrate is"
			 " at 1; run db_sync --migrate 2 first\n");
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
	/*
	 * One second of TTL, two of silence: stale for status, but contract
	 * does not take a node seen within 300 s for gone without --force.
	 */
	test_exec(c.conn, "UPDATE dbphase_nodes SET heartbeat_at = heartbeat_at - 2");
	cli(&c, &r, "--node-ttl", "1", "status", NULL);
	cr_assert(strstr(r.out, "app-old") && strstr(r.out, "(stale)"), "[%s] %s", bname(&c), r.out);
	run_release(&r);
	EXPECT(&c, 4, "--node-ttl", "1", "db_sync", "--check");
	cli(&c, &r, "db_sync", "--contract", "--node-ttl", "1", NULL);
	cr_assert_eq(r.code, 5, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert(strstr(r.err, "node 'app-old' (needs version 1, heartbeat ") &&
		  strstr(r.err, "s ago) may still be running: node_ttl_s is 1 s"), "[%s] %s",
		  bname(&c), r.err);
	run_release(&r);
	assert_row(&c, "2/2/1");
	/* Silent for longer than that: gone. */
	test_exec(c.conn, "UPDATE dbphase_nodes SET heartbeat_at = heartbeat_at - 300");
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
			 "need an older schema: 'app-old'") == after_database_line(r.err), "%s", r.err);
	run_release(&r);
	assert_row(&c, "2/2/2");
	cr_assert_eq(count(&c, "SELECT count(*) FROM dbphase_history WHERE command = "
			   "'db_sync --contract --force' AND result = 'ok (forced)' AND detail LIKE "
			   "'%app-old%'"), 1, "[%s] the history does not say it was forced", bname(&c));
	cenv_close(&c);
}

/* ---- the node registry ---------------------------------------------------------- */

/* On a database dbphase never touched, only register creates its tables. */
BACKEND_TEST(cli, node_commands_on_a_fresh_database_create_nothing_but_register)
{
	const char *const v[] = { v1_items };
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct cenv c;
	struct run r;
	char **names = NULL;
	size_t n = 0, i;

	cenv_open(&c, *backend, v, 1);
	cli(&c, &r, "node", "list", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert_str_eq(r.out, "", "[%s] %s", bname(&c), r.out);
	run_release(&r);
	cli(&c, &r, "--format", "json", "node", "list", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert_str_eq(r.out, "[]\n", "[%s] %s", bname(&c), r.out);
	run_release(&r);
	cli(&c, &r, "node", "heartbeat", "--name", "web1", NULL);
	cr_assert_eq(r.code, 1, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert_str_eq(r.err, "dbphase: node 'web1' is not registered for 'cli'; run node "
			 "register first\n");
	run_release(&r);
	EXPECT(&c, 1, "node", "retire", "--name", "web1");
	cr_assert_eq(c.conn->drv->list_tables(c.conn, &names, &n, &err), 0, "%s", err.message);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	cr_assert_eq(n, 0, "[%s] %zu tables created by read-only node commands", bname(&c), n);
	EXPECT(&c, 0, "node", "register", "--name", "web1", "--schema-version", "1");
	EXPECT(&c, 0, "node", "heartbeat", "--name", "web1");
	cli(&c, &r, "node", "list", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert(strncmp(r.out, "web1 ", 5) == 0 && n_lines(r.out) == 1, "[%s] %s", bname(&c),
		  r.out);
	run_release(&r);
	cenv_close(&c);
}

/*
 * A node that registers for a version below the contracted one runs code
 * whose columns are gone: refused (5) unless --force, which says so loudly.
 */
BACKEND_TEST(cli, node_register_below_the_contracted_version_is_refused_unforced)
{
	const char *const v[] = { v1_items, v2_note };
	struct cenv c;
	struct run r;

	cenv_open(&c, *backend, v, 2);
	EXPECT(&c, 0, "db_sync");
	cli(&c, &r, "node", "register", "--name", "late", "--schema-version", "1", NULL);
	cr_assert_eq(r.code, 5, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert_str_eq(after_database_line(r.err),
			 "dbphase: node 'late' refused: its code needs schema version 1, "
			 "but version 2 is contracted, so what that code needs is gone; "
			 "deploy code that needs version 2 or later, or register with --force\n",
			 "[%s] %s", bname(&c), r.err);
	run_release(&r);
	cr_assert_eq(count(&c, "SELECT count(*) FROM dbphase_nodes"), 0);
	cli(&c, &r, "node", "register", "--name", "late", "--schema-version", "1", "--force", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert(strstr(r.err, "dbphase: warning: --force: node 'late' registered for schema "
			 "version 1, but version 2 is contracted") == after_database_line(r.err),
		  "[%s] %s", bname(&c),
		  r.err);
	run_release(&r);
	cr_assert_eq(count(&c, "SELECT count(*) FROM dbphase_nodes WHERE schema_version = 1"), 1);
	/* Its heartbeats say so too. */
	cli(&c, &r, "node", "heartbeat", "--name", "late", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert(strstr(r.err, "dbphase: warning: node 'late' needs schema version 1, but "
			 "version 2 is contracted") == r.err, "[%s] %s", bname(&c), r.err);
	run_release(&r);
	/* At or above the contracted version: no warning, only the database named. */
	cli(&c, &r, "node", "register", "--name", "late", "--schema-version", "2", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert_str_eq(after_database_line(r.err), "", "[%s] %s", bname(&c), r.err);
	run_release(&r);
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
	/*
	 * The last applied file gone: what an older package looks like, so
	 * reading goes on with a warning and changing is refused (5).
	 */
	{
		char *path = xasprintf("%s/versions/002_v2.yaml", c.dir);

		cr_assert_eq(unlink(path), 0);
		free(path);
	}
	cli(&c, &r, "status", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert(strstr(r.err, "version 2 is applied") && strstr(r.err, "ahead of this package"),
		  "%s", r.err);
	run_release(&r);
	EXPECT(&c, 5, "db_sync", "--contract");
	free(changed);
	cenv_close(&c);
}

/* ---- status --format json against its schema ------------------------------------ */

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
	test_exec(c.conn, "UPDATE dbphase_nodes SET heartbeat_at = heartbeat_at - 400 WHERE name = 'old'");
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

/* ---- passwords: however they are written, never shown, not even in ps -------- */

/* url with its user information replaced by user:password (both as written). */
static char *
url_with_password(const char *url, const char *user, const char *password)
{
	const char *host = strstr(url, "://") + 3;
	const char *at = memchr(host, '@', strcspn(host, "/?"));

	if (at)
		host = at + 1;
	return xasprintf("%.*s%s:%s@%s", (int)(strstr(url, "://") + 3 - url), url, user,
			 password, host);
}

/* Whether the text printed shows password, or any 6 bytes of it. */
static bool
shows(const char *text, const char *password)
{
	size_t len = strlen(password), i;

	for (i = 0; i + 6 <= len; i++)
		if (memmem(text, strlen(text), password + i, 6))
			return true;
	return false;
}

/*
 * On MariaDB a login whose password holds '/', '#' and '?' (the server's
 * root has none); on PostgreSQL the test server trusts every password.
 * Returns the URL of c's database with user and password, or NULL on SQLite.
 */
static char *
login_with_password(struct cenv *c, const char *password, char **user)
{
	*user = NULL;
	if (c->db.backend == DB_BACKEND_SQLITE)
		return NULL;
	if (c->db.backend == DB_BACKEND_MYSQL) {
		char *sql;

		*user = xasprintf("dbp_pw%d", (int)getpid());
		sql = xasprintf("DROP USER IF EXISTS '%s'@'%%'", *user);
		test_exec(c->conn, sql);
		free(sql);
		sql = xasprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", *user, password);
		test_exec(c->conn, sql);
		free(sql);
		sql = xasprintf("GRANT ALL ON `%s`.* TO '%s'@'%%'", c->db.name, *user);
		test_exec(c->conn, sql);
		free(sql);
		return url_with_password(c->db.url, *user, password);
	}
	*user = xstrdup("postgres");
	return url_with_password(c->db.url, *user, password);
}

static void
logout(struct cenv *c, char *user)
{
	if (c->db.backend == DB_BACKEND_MYSQL && user) {
		char *sql = xasprintf("DROP USER IF EXISTS '%s'@'%%'", user);

		test_exec(c->conn, sql);
		free(sql);
	}
	free(user);
}

BACKEND_TEST(cli, passwords_are_never_shown_however_they_are_written)
{
	static const char password[] = "S3c/r#t?Pw0rd";
	const char *scheme = *backend == DB_BACKEND_POSTGRESQL ? "postgresql" :
			     *backend == DB_BACKEND_MYSQL ? "mysql" : "sqlite";
	struct cenv c;
	char *user, *login, *urls[9];
	size_t n = 0, k;
	int port = closed_port();

	cenv_open(&c, *backend, (const char *const[]){ v1_items }, 1);
	if (*backend != DB_BACKEND_SQLITE) {
		/* Unreachable (69): reserved characters, password parameters. */
		urls[n++] = xasprintf("%s://admin:%s@127.0.0.1:%d/app", scheme, password, port);
		urls[n++] = xasprintf("%s://admin:Pw#S3cr3tXyz@127.0.0.1:%d/app", scheme, port);
		urls[n++] = xasprintf("%s://admin:Pw/S3cr3tXyz@127.0.0.1:%d/app", scheme, port);
		urls[n++] = xasprintf("%s://admin:Pw?S3cr3tXyz@127.0.0.1:%d/app", scheme, port);
		urls[n++] = xasprintf("%s://admin@127.0.0.1:%d/app?sslpassword=S3cr3tXyz", scheme,
				      port);
		urls[n++] = xasprintf("%s://admin@127.0.0.1:%d/app?pass%%77ord=S3cr3tXyz", scheme,
				      port);
	}
	/* Unparsed (65): never echoed. */
	urls[n++] = xasprintf("%sl://admin:S3cr3tXyz@127.0.0.1:%d/app", scheme, port);
	urls[n++] = xasprintf("%s://admin:S3cr3tXyz@127.0.0.1:%d/a%%00pp", scheme, port);
	urls[n++] = xasprintf("admin:S3cr3tXyz@127.0.0.1:%d/app", port);
	for (k = 0; k < n; k++) {
		static const char *const commands[][3] = {
			{ "status", NULL }, { "--format", "json", "status" }, { "db_sync", NULL },
		};
		int want = k >= n - 3 ? 65 : 69;	/* the last three do not parse */
		size_t j;

		for (j = 0; j < sizeof(commands) / sizeof(commands[0]); j++) {
			char *argv[8] = { "--database", urls[k], "--repository", c.dir };
			struct run r;
			size_t a = 4, i;

			for (i = 0; i < 3 && commands[j][i]; i++)
				argv[a++] = (char *)commands[j][i];
			argv[a] = NULL;
			run_argv(&r, argv);
			cr_assert_eq(r.code, want, "[%s] %s %s: " RUN_FMT, bname(&c), urls[k],
				     commands[j][0], RUN_ARGS(r));
			cr_assert(!shows(r.out, "S3cr3tXyz") && !shows(r.err, "S3cr3tXyz") &&
				  !shows(r.out, password) && !shows(r.err, password),
				  "[%s] %s: the password was printed: " RUN_FMT, bname(&c), urls[k],
				  RUN_ARGS(r));
			run_release(&r);
		}
	}
	/* Reachable, with a password holding '/', '#' and '?': status and JSON. */
	login = login_with_password(&c, password, &user);
	if (login == NULL)	/* SQLite: a parameter named like a password */
		login = xasprintf("%s?passphrase=%s", c.db.url, "S3cr3tXyz");
	{
		struct run r;

		run_dbphase(&r, "--database", login, "--repository", c.dir, "status", NULL);
		cr_assert_eq(r.code, 0, "[%s] %s: " RUN_FMT, bname(&c), login, RUN_ARGS(r));
		cr_assert(!shows(r.out, password) && !shows(r.out, "S3cr3tXyz") &&
			  strstr(r.out, "***"), "[%s] %s", bname(&c), r.out);
		run_release(&r);
		run_dbphase(&r, "--database", login, "--repository", c.dir, "--format", "json",
			    "status", NULL);
		cr_assert_eq(r.code, 0, "[%s] %s: " RUN_FMT, bname(&c), login, RUN_ARGS(r));
		cr_assert(!shows(r.out, password) && !shows(r.out, "S3cr3tXyz") &&
			  strstr(r.out, "***"), "[%s] %s", bname(&c), r.out);
		run_release(&r);
	}
	free(login);
	logout(&c, user);
	for (k = 0; k < n; k++)
		free(urls[k]);
	cenv_close(&c);
}

/* /proc/PID/cmdline of pid with its NULs as spaces (owned). */
static char *
cmdline_of(pid_t pid)
{
	char *path = xasprintf("/proc/%d/cmdline", (int)pid);
	struct strbuf sb = STRBUF_INIT;
	char buf[4096];
	ssize_t got;
	int fd = open(path, O_RDONLY);
	size_t i;

	cr_assert(fd >= 0, "%s: %s", path, strerror(errno));
	while ((got = read(fd, buf, sizeof(buf))) > 0)
		strbuf_add(&sb, buf, (size_t)got);
	close(fd);
	free(path);
	for (i = 0; i < sb.len; i++)
		if (sb.buf[i] == '\0')
			sb.buf[i] = ' ';
	return strbuf_detach(&sb);
}

BACKEND_TEST(cli, the_password_leaves_the_process_table_once_read)
{
	static const char password[] = "S3c/r#t?Pw0rd";
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct cenv c;
	struct state st;
	char *user, *login;
	int form;

	cenv_open(&c, *backend, (const char *const[]){ v1_items }, 1);
	login = login_with_password(&c, password, &user);
	if (login == NULL)
		login = xasprintf("%s?passphrase=%s", c.db.url, password);
	state_init(&st, c.conn, REPO_ID, NULL);
	cr_assert_eq(state_lock(&st, 0, &err), 0, "%s", err.message);
	/* --database URL and --database=URL; dbphase waits for the lock meanwhile. */
	for (form = 0; form < 2; form++) {
		char *joined = xasprintf("--database=%s", login);
		char *argv[10] = { "--repository", c.dir, "--lock-wait", "120" };
		char *cmdline = NULL;
		size_t a = 4;
		double t0 = mono_s();
		pid_t pid;
		int status;

		if (form == 0) {
			argv[a++] = "--database";
			argv[a++] = login;
		} else {
			argv[a++] = joined;
		}
		argv[a++] = "db_sync";
		argv[a++] = "--expand";
		argv[a] = NULL;
		pid = spawn_dbphase(argv, NULL, NULL, NULL);
		/* Until the arguments are read; a bound, not a timing. */
		for (;;) {
			free(cmdline);
			cmdline = cmdline_of(pid);
			if (strstr(cmdline, "***") || mono_s() - t0 > 60)
				break;
			sleep_ms(20);
		}
		cr_assert_eq(waitpid(pid, &status, WNOHANG), 0,
			     "[%s] dbphase ended instead of waiting for the lock", bname(&c));
		cr_assert(!shows(cmdline, password), "[%s] ps shows the password: %s", bname(&c),
			  cmdline);
		cr_assert_not_null(strstr(cmdline, "db_sync --expand"), "[%s] %s", bname(&c),
				   cmdline);
		kill(pid, SIGKILL);
		wait_child(pid);
		free(cmdline);
		free(joined);
	}
	state_unlock(&st);
	state_release(&st);
	err_release(&err);
	free(login);
	logout(&c, user);
	cenv_close(&c);
}

/* ---- SQLite: a URL without a file, a lock file that is a symbolic link ------- */

Test(cli, sqlite_url_without_a_file_is_an_error)
{
	static const char *const urls[] = { "sqlite://", "sqlite:///", "sqlite:///?timeout=5" };
	char *dir = repo_create(REPO_ID, (const char *const[]){ v1_items }, 1);
	size_t k;

	for (k = 0; k < sizeof(urls) / sizeof(urls[0]); k++) {
		char *want = xasprintf("'%.*s' names no file", (int)strcspn(urls[k], "?"), urls[k]);
		struct run r;

		run_dbphase(&r, "--database", urls[k], "--repository", dir, "db_sync", NULL);
		cr_assert_eq(r.code, 65, "%s: " RUN_FMT, urls[k], RUN_ARGS(r));
		cr_assert_not_null(strstr(r.err, want), "%s: %s", urls[k], r.err);
		cr_assert_str_eq(r.out, "", "%s: it ran: %s", urls[k], r.out);
		run_release(&r);
		free(want);
	}
	test_rmtree(dir);
	free(dir);
}

Test(cli, sqlite_lock_file_is_never_followed_through_a_symlink)
{
	struct test_db db;
	char *dir = repo_create(REPO_ID, (const char *const[]){ v1_items }, 1);
	char *lock, *target;
	struct stat st;
	struct run r;

	test_db_create(DB_BACKEND_SQLITE, &db);
	lock = xasprintf("%s-dbphase.lock", db.name);
	target = xasprintf("%s/planted", db.dir);
	cr_assert_eq(symlink(target, lock), 0, "symlink: %s", strerror(errno));
	run_dbphase(&r, "--database", db.url, "--repository", dir, "db_sync", NULL);
	cr_assert_eq(r.code, 1, RUN_FMT, RUN_ARGS(r));
	cr_assert_not_null(strstr(r.err, "is a symbolic link"), "%s", r.err);
	cr_assert_neq(stat(target, &st), 0, "the lock file was created through the link");
	run_release(&r);
	/* Once the link is gone, the same command runs. */
	cr_assert_eq(unlink(lock), 0);
	run_dbphase(&r, "--database", db.url, "--repository", dir, "db_sync", NULL);
	cr_assert_eq(r.code, 0, RUN_FMT, RUN_ARGS(r));
	cr_assert_eq(lstat(lock, &st), 0);
	cr_assert(S_ISREG(st.st_mode));
	run_release(&r);
	free(lock);
	free(target);
	test_db_drop(&db);
	test_rmtree(dir);
	free(dir);
}

/* ---- -d/--debug: the statement log on stderr ----------------------------------- */

/* dbphase --database url --repository c's, then the arguments up to NULL. */
static void
cli_at(struct cenv *c, const char *url, struct run *r, ...)
{
	va_list ap;

	va_start(ap, r);
	run_dbphase_at(r, url, c->dir, NULL, ap);
	va_end(ap);
}

/* The lines of text that start with prefix and hold every word given (up to NULL). */
static size_t
lines_with(const char *text, const char *prefix, ...)
{
	size_t n = 0;

	while (*text) {
		size_t len = strcspn(text, "\n");
		char *line = xstrndup(text, len);
		bool all = strncmp(line, prefix, strlen(prefix)) == 0;
		const char *word;
		va_list ap;

		va_start(ap, prefix);
		while ((word = va_arg(ap, const char *)) != NULL)
			all = all && strstr(line, word) != NULL;
		va_end(ap);
		n += all;
		free(line);
		text += len + (text[len] == '\n');
	}
	return n;
}

/*
 * Every debug line names its connection ("main pg#123", "worker 2 sqlite")
 * and is one of: a statement with its time ("3.2 ms: SQL", "1.0 ms, 5 rows:
 * SQL", "9.1 ms, failed (why): SQL"), a connection, a cluster lock, a retry.
 * Returns the first line that is none of them, or NULL.
 */
static char *
odd_debug_line(const char *text, enum db_backend backend)
{
	static const char *const tags[] = {
		[DB_BACKEND_SQLITE] = "sqlite",
		[DB_BACKEND_POSTGRESQL] = "pg#[0-9]+",
		[DB_BACKEND_MYSQL] = "mariadb#[0-9]+",
	};
	char *pattern = xasprintf("^dbphase: debug: \\[(main|worker [0-9]+) %s\\] "
				  "([0-9]+\\.[0-9] ms(, [0-9]+ rows?( changed)?|, failed \\(.+\\))?: "
				  "[^ ].*|cluster lock '[^']+' .+|retry [0-9]+ of [0-9]+ in [0-9]+ ms "
				  "after.*)$", tags[backend]);
	char *odd = NULL;
	regex_t re;

	cr_assert_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0, "%s", pattern);
	while (*text && odd == NULL) {
		size_t len = strcspn(text, "\n");
		char *line = xstrndup(text, len);

		if (strncmp(line, "dbphase: debug:", 15) == 0 && regexec(&re, line, 0, NULL, 0) != 0)
			odd = line;
		else
			free(line);
		text += len + (text[len] == '\n');
	}
	regfree(&re);
	free(pattern);
	return odd;
}

BACKEND_TEST(cli, debug_logs_every_statement_with_its_connection_and_time)
{
	static const char password[] = "Pw4d3bugL0g";
	const char *const v[] = { v1_items, v2_note, v3_fix };
	char *login, *user, *url, *odd;
	struct cenv c;
	struct run r;

	cenv_open(&c, *backend, v, 3);
	/* A URL with a password where the backend has one (SQLite has none). */
	login = login_with_password(&c, password, &user);
	url = login ? login : c.db.url;

	/* Without -d: as before, the database named and nothing of the log. */
	cli_at(&c, url, &r, "db_sync", "--expand", "1", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert_str_eq(after_database_line(r.err), "", "[%s] %s", bname(&c), r.err);
	cr_assert_null(strstr(r.out, "debug"), "[%s] %s", bname(&c), r.out);
	run_release(&r);
	test_fill_rows(c.conn, "items", 1000);

	/* -d: each DDL statement on the main connection, with its time. */
	cli_at(&c, url, &r, "-d", "db_sync", "--expand", "2", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert_geq(lines_with(r.err, "dbphase: debug: [main ", " ms", "ALTER TABLE", "items",
				 "note", NULL), 1, "[%s] no ADD COLUMN line:\n%s", bname(&c), r.err);
	cr_assert_geq(lines_with(r.err, "dbphase: debug: [main ", " ms", "CREATE ", "INDEX",
				 "ix_items_note", NULL), 1, "[%s] no CREATE INDEX line:\n%s",
		      bname(&c), r.err);
	cr_assert_eq(lines_with(r.err, "dbphase: debug: [main ", "] cluster lock 'dbphase:cli' "
				"taken after ", NULL), 1, "[%s] %s", bname(&c), r.err);
	cr_assert_eq(lines_with(r.err, "dbphase: debug: [main ", " ms: connected to ", NULL), 1,
		     "[%s] %s", bname(&c), r.err);
	cr_assert_null(odd = odd_debug_line(r.err, *backend), "[%s] odd line: %s", bname(&c), odd);
	cr_assert_null(strstr(r.out, "debug"), "[%s] the log went to stdout: %s", bname(&c), r.out);
	cr_assert(!shows(r.out, password) && !shows(r.err, password),
		  "[%s] the password was printed: " RUN_FMT, bname(&c), RUN_ARGS(r));
	run_release(&r);

	/* --debug, migrate with two workers: each worker's batches, by name. */
	EXPECT(&c, 0, "db_sync", "--expand");
	test_exec(c.conn, *backend == DB_BACKEND_MYSQL ? "ANALYZE TABLE items" : "ANALYZE items");
	cli_at(&c, url, &r, "--debug", "--jobs", "2", "--batch-size", "100", "db_sync",
	       "--migrate", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	if (*backend == DB_BACKEND_SQLITE) {
		/* One writer at a time: SQLite runs one worker. */
		cr_assert_eq(lines_with(r.err, "dbphase: debug: [worker 2 ", NULL), 0, "%s", r.err);
	} else {
		cr_assert_geq(lines_with(r.err, "dbphase: debug: [worker 2 ", " ms, ", " rows changed: ",
					 "UPDATE ", "items", NULL), 1,
			      "[%s] no batch on worker 2:\n%s", bname(&c), r.err);
	}
	cr_assert_geq(lines_with(r.err, "dbphase: debug: [worker 1 ", " ms, ", " rows changed: ",
				 "UPDATE ", "items", NULL), 1,
		      "[%s] no batch on worker 1:\n%s", bname(&c), r.err);
	cr_assert_geq(lines_with(r.err, "dbphase: debug: [worker 1 ", " ms: COMMIT", NULL), 1,
		      "[%s] %s", bname(&c), r.err);
	cr_assert_null(odd = odd_debug_line(r.err, *backend), "[%s] odd line: %s", bname(&c), odd);
	cr_assert(!shows(r.out, password) && !shows(r.err, password),
		  "[%s] the password was printed: " RUN_FMT, bname(&c), RUN_ARGS(r));
	run_release(&r);
	cr_assert_eq(count(&c, "SELECT count(*) FROM items WHERE n = id + 1"), 1000);

	/* Without -d once more: nothing of the log. */
	cli_at(&c, url, &r, "db_sync", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert_null(strstr(r.err, "debug"), "[%s] %s", bname(&c), r.err);
	cr_assert_null(strstr(r.err, " ms"), "[%s] %s", bname(&c), r.err);
	run_release(&r);
	free(login);
	logout(&c, user);
	cenv_close(&c);
}

/*
 * Each wait for the cluster lock is one line (PostgreSQL's polls are not
 * lines of their own); each retry of a statement that timed out on a lock
 * is a line after the failed statement's.
 */
BACKEND_TEST(cli, debug_logs_each_lock_wait_and_retry)
{
	const char *const v[] = { v1_items, v2_note };
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_conn *blocker;
	char *dir, *out, *errp, *log;
	struct cenv c;
	struct state st;
	struct run r;
	double t0;
	pid_t pid;
	int code;

	cenv_open(&c, *backend, v, 2);
	state_init(&st, c.conn, REPO_ID, NULL);
	cr_assert_eq(state_lock(&st, 0, &err), 0, "%s", err.message);
	cli(&c, &r, "-d", "--lock-wait", "1", "db_sync", "--expand", NULL);
	cr_assert_eq(r.code, 75, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert_eq(lines_with(r.err, "dbphase: debug: [main ", "] cluster lock 'dbphase:cli' not "
				"taken after ", NULL), 1, "[%s] %s", bname(&c), r.err);
	if (*backend == DB_BACKEND_POSTGRESQL)
		cr_assert_eq(lines_with(r.err, "dbphase: debug: [main ", "pg_try_advisory_lock", NULL),
			     1, "[%s] every poll logged:\n%s", bname(&c), r.err);
	run_release(&r);
	state_unlock(&st);
	state_release(&st);
	EXPECT(&c, 0, "db_sync", "--expand", "1");
	/*
	 * SQLite's one write lock holds dbphase's own bookkeeping up before
	 * any DDL: there the first wait is the lock's, seen above.
	 */
	if (*backend == DB_BACKEND_SQLITE)
		goto done;

	/* A transaction that read the table keeps ALTER TABLE waiting. */
	blocker = test_db_connect(&c.db);
	cr_assert_eq(blocker->drv->begin(blocker, &err), 0, "%s", err.message);
	test_exec(blocker, *backend == DB_BACKEND_POSTGRESQL ?
		  "LOCK TABLE items IN ACCESS SHARE MODE" : "SELECT count(*) FROM items");
	dir = test_mkdtemp();
	out = xasprintf("%s/out", dir);
	errp = xasprintf("%s/err", dir);
	{
		char *a[] = { "--database", c.db.url, "--repository", c.dir, "-d",
			      "--lock-timeout", "100", "db_sync", "--expand", "2", NULL };

		pid = spawn_dbphase(a, out, errp, NULL);
	}
	/* Until the first retry is logged; a bound, not a timing. */
	t0 = mono_s();
	for (log = slurp(errp); !strstr(log, "] retry 1 of ") && mono_s() - t0 < 60;
	     log = slurp(errp)) {
		free(log);
		sleep_ms(20);
	}
	free(log);
	cr_assert_eq(blocker->drv->rollback(blocker, &err), 0, "%s", err.message);
	db_close(blocker);
	code = wait_child(pid);
	log = slurp(errp);
	cr_assert_eq(code, 0, "[%s] exit %d:\n%s", bname(&c), code, log);
	cr_assert_geq(lines_with(log, "dbphase: debug: [main ", " ms, failed (", "ALTER TABLE",
				 "items", NULL), 1, "[%s] no failed ALTER line:\n%s", bname(&c), log);
	cr_assert_geq(lines_with(log, "dbphase: debug: [main ", "] retry 1 of 8 in 100 ms after: ",
				 NULL), 1, "[%s] no retry line:\n%s", bname(&c), log);
	cr_assert_null(odd_debug_line(log, *backend), "[%s] %s", bname(&c), log);
	assert_row(&c, "2/0/0");
	free(log);
	test_rmtree(dir);
	free(dir);
	free(out);
	free(errp);
done:
	err_release(&err);
	cenv_close(&c);
}
