/*
 * tests/integration/test-clients.c - the contract gate's second source:
 * live connections that say which code they run (repository.yaml clients).
 *
 * The clients are real: a child process of the test holds a libpq
 * connection with application_name set, or a mariadb-connector-c one with
 * the program_name connection attribute, while the built dbphase
 * contracts, status shows them, and the child disconnects.  On SQLite,
 * which has no connections, the other backends' patterns ask nothing.
 */
#include "config.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#if DBPHASE_WITH_POSTGRESQL
#include <libpq-fe.h>
#endif
#if DBPHASE_WITH_MARIADB
#include <mysql.h>
#endif

#include "cli-run.h"	/* testlib.h (criterion) first */
#include "json-schema.h"

#include "core/url.h"

TestSuite(clients, .timeout = 240);

#define REPO_ID "shop"

static const char v1_items[] =
	"operations:\n"
	"  - create_table:\n"
	"      name: items\n"
	"      columns:\n"
	"        - {name: id, type: bigint, primary_key: true}\n"
	"        - {name: n, type: integer}\n";

static const char v2_rename[] =
	"operations:\n"
	"  - rename_column: {table: items, from: n, to: amount}\n";

static const char v3_note[] =
	"operations:\n"
	"  - add_column: {table: items, column: {name: note, type: text}}\n";

struct cenv {
	struct test_db db;
	struct db_conn *conn;
	char *dir;		/* the repository */
	char *prefix;		/* "shop<pid>-": this test's clients, whatever runs beside it */
};

static const char *
bname(const struct cenv *c)
{
	return db_backend_name(c->db.backend);
}

/* The attribute a backend's clients are told apart by in these tests. */
static const char *
attribute(enum db_backend backend)
{
	return backend == DB_BACKEND_POSTGRESQL ? "application_name" : "program_name";
}

/*
 * A repository whose repository.yaml asks both server backends, the
 * PostgreSQL pattern in the short form (its default attribute) and the
 * MariaDB one naming its attribute.
 */
static void
cenv_open(struct cenv *c, enum db_backend backend)
{
	const char *const v[] = { v1_items, v2_rename, v3_note };
	char *yaml;

	memset(c, 0, sizeof(*c));
	test_db_create(backend, &c->db);
	c->conn = test_db_connect(&c->db);
	c->dir = repo_create(REPO_ID, v, 3);
	c->prefix = xasprintf("shop%ld-", (long)getpid());
	yaml = xasprintf("id: %s\n"
			 "clients:\n"
			 "  postgresql: \"^%s([0-9]+)$\"\n"
			 "  mariadb: {program_name: \"^%s([0-9]+)$\"}\n",
			 REPO_ID, c->prefix, c->prefix);
	test_write_file(c->dir, "repository.yaml", yaml);
	free(yaml);
}

static void
cenv_close(struct cenv *c)
{
	db_close(c->conn);
	test_db_drop(&c->db);
	test_rmtree(c->dir);
	free(c->dir);
	free(c->prefix);
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

/* ---- real clients: a child process holding a connection ------------------------- */

struct client {
	pid_t pid;
	int control;		/* write end: closing it lets the child disconnect */
	char *value;		/* the attribute's value it connected with; owned */
};

/* Tell the parent how connecting went: "+", or "-" and why. */
static void
child_report(int fd, const char *why)
{
	ssize_t w = write(fd, why ? "-" : "+", 1);

	if (why && w == 1)
		w = write(fd, why, strlen(why));
	(void)w;
}

/*
 * In the child: connect to db's URL as a client that names itself value
 * (application_name, or the MariaDB connection attribute attr), report,
 * stay connected until the control pipe closes, disconnect, exit.
 */
static void
child_run(const struct test_db *db, const char *attr, const char *value, int ready, int control)
{
	char c;

	if (db->backend == DB_BACKEND_POSTGRESQL) {
#if DBPHASE_WITH_POSTGRESQL
		const char *keys[] = { "dbname", "application_name", NULL };
		const char *values[] = { db->url, value, NULL };
		PGconn *pg = PQconnectdbParams(keys, values, 1);

		if (PQstatus(pg) != CONNECTION_OK) {
			child_report(ready, PQerrorMessage(pg));
			_exit(1);
		}
		child_report(ready, NULL);
		close(ready);
		while (read(control, &c, 1) > 0)
			;
		PQfinish(pg);
#endif
	} else {
#if DBPHASE_WITH_MARIADB
		struct dbphase_error err = DBPHASE_ERROR_INIT;
		struct db_url u;
		MYSQL *m;

		if (db_url_parse(db->url, &u, &err) < 0) {
			child_report(ready, err.message);
			_exit(1);
		}
		m = mysql_init(NULL);
		mysql_optionsv(m, MYSQL_OPT_CONNECT_ATTR_ADD, attr, value);
		if (!mysql_real_connect(m, u.host, u.user, u.password, u.database,
					(unsigned)u.port, NULL, 0)) {
			child_report(ready, mysql_error(m));
			_exit(1);
		}
		child_report(ready, NULL);
		close(ready);
		while (read(control, &c, 1) > 0)
			;
		mysql_close(m);
#endif
	}
	_exit(0);
}

/* How many sessions of the server name themselves value. */
static long long
sessions_named(struct db_conn *conn, const char *value)
{
	char *sql = conn->drv->backend == DB_BACKEND_POSTGRESQL ?
		xasprintf("SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'",
			  value) :
		xasprintf("SELECT count(*) FROM performance_schema.session_connect_attrs "
			  "WHERE ATTR_NAME = 'program_name' AND ATTR_VALUE = '%s'", value);
	long long n = query_ll(conn, sql);

	free(sql);
	return n;
}

/* Connect a client that names itself c->prefix + suffix. */
static void
client_start(struct cenv *c, struct client *cl, const char *suffix)
{
	int ready[2], control[2];
	struct strbuf why = STRBUF_INIT;
	char buf[256];
	ssize_t got;

	cl->value = strcmp(suffix, "other") == 0 ? xasprintf("other%ld-1", (long)getpid()) :
		    xasprintf("%s%s", c->prefix, suffix);
	/* Close-on-exec: the dbphase processes the test starts hold neither end. */
	cr_assert_eq(pipe2(ready, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(control, O_CLOEXEC), 0);
	fflush(NULL);
	cl->pid = fork();
	cr_assert(cl->pid >= 0, "fork: %s", strerror(errno));
	if (cl->pid == 0) {
		int fd;

		/*
		 * Only its own pipes: an earlier client's control end held here
		 * would keep that client connected after the test let it go.
		 */
		for (fd = 3; fd < 1024; fd++)
			if (fd != ready[1] && fd != control[0])
				close(fd);
		child_run(&c->db, attribute(c->db.backend), cl->value, ready[1], control[0]);
	}
	close(ready[1]);
	close(control[0]);
	cl->control = control[1];
	while ((got = read(ready[0], buf, sizeof(buf))) > 0)
		strbuf_add(&why, buf, (size_t)got);
	close(ready[0]);
	cr_assert(why.len > 0 && why.buf[0] == '+', "[%s] client %s did not connect: %s",
		  bname(c), cl->value, why.len ? why.buf + 1 : "(the child said nothing)");
	strbuf_release(&why);
	cr_assert_eq(sessions_named(c->conn, cl->value), 1, "[%s] the server does not list "
		     "client %s", bname(c), cl->value);
}

/*
 * Let the client disconnect, and wait (at most about 30 s) until the
 * server no longer lists its session: its end is asynchronous.
 */
static void
client_stop(struct cenv *c, struct client *cl)
{
	int i;

	close(cl->control);
	cr_assert_eq(wait_child(cl->pid), 0, "[%s] client %s exited badly", bname(c), cl->value);
	for (i = 0; i < 600 && sessions_named(c->conn, cl->value) > 0; i++)
		sleep_ms(50);
	cr_assert_eq(sessions_named(c->conn, cl->value), 0, "[%s] the server still lists "
		     "client %s after it disconnected", bname(c), cl->value);
	free(cl->value);
}

static long long
history_count(struct cenv *c, const char *where)
{
	char *sql = xasprintf("SELECT count(*) FROM dbphase_history WHERE %s", where);
	long long n = query_ll(c->conn, sql);

	free(sql);
	return n;
}

/* ---- the gate ------------------------------------------------------------------- */

/*
 * A client that says it runs code for version 1 holds contract to 2 back
 * (exit 5, naming it), status shows it, its disconnection lets contract
 * through, and --force contracts past one, loudly and in the history.
 * Clients of newer code and clients the pattern does not match are left
 * alone.
 */
BACKEND_TEST(clients, contract_waits_for_live_clients_of_older_code)
{
	struct client old, mid, other;
	struct cenv c;
	struct run r;
	json_t *schema, *doc, *jc, *conns;
	char *want;
	size_t i;

	cenv_open(&c, *backend);
	if (*backend == DB_BACKEND_SQLITE) {
		/* No connections: the server backends' patterns ask nothing here. */
		EXPECT(&c, 0, "db_sync", "1");
		EXPECT(&c, 0, "db_sync", "--expand");
		EXPECT(&c, 0, "db_sync", "--migrate");
		cli(&c, &r, "status", NULL);
		cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
		cr_assert_null(strstr(r.out, "clients"), "[%s] %s", bname(&c), r.out);
		run_release(&r);
		schema = status_schema_load();
		cli(&c, &r, "--format", "json", "status", NULL);
		cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
		doc = json_loads(r.out, 0, NULL);
		cr_assert_not_null(doc, "%s", r.out);
		validate(schema, schema, doc, "status");
		cr_assert(json_is_null(json_object_get(json_array_get(
			json_object_get(doc, "repositories"), 0), "clients")), "%s", r.out);
		run_release(&r);
		json_decref(doc);
		json_decref(schema);
		EXPECT(&c, 0, "db_sync", "--contract");
		assert_row(&c, "3/3/3");
		cenv_close(&c);
		return;
	}
	EXPECT(&c, 0, "db_sync", "1");
	EXPECT(&c, 0, "db_sync", "--expand", "2");
	EXPECT(&c, 0, "db_sync", "--migrate", "2");
	client_start(&c, &old, "1");
	client_start(&c, &mid, "2");
	client_start(&c, &other, "other");

	cli(&c, &r, "db_sync", "--contract", "2", NULL);
	cr_assert_eq(r.code, 5, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	want = xasprintf("dbphase: contract to 2 refused: 1 live connection still runs code "
			 "that needs an older schema: 127.0.0.1:");
	cr_assert(strncmp(after_database_line(r.err), want, strlen(want)) == 0, "[%s] %s",
		  bname(&c), r.err);
	free(want);
	want = xasprintf(", %s '%s', needs version 1); upgrade or stop that client first, "
			 "or contract anyway with --force\n", attribute(*backend), old.value);
	cr_assert(strstr(r.err, want) != NULL, "[%s] %s", bname(&c), r.err);
	free(want);
	cr_assert_null(strstr(r.err, mid.value), "[%s] %s", bname(&c), r.err);
	run_release(&r);
	assert_row(&c, "2/2/1");
	cr_assert_eq(history_count(&c, "command = 'db_sync --contract' AND result = 'refused'"),
		     1, "[%s] the refusal is not in the history", bname(&c));
	/* The whole db_sync stops at the same gate. */
	EXPECT(&c, 5, "db_sync", "2");

	/* status shows the clients like the nodes: text, and JSON per the schema. */
	cli(&c, &r, "status", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	want = xasprintf("  clients (%s matching ^%s([0-9]+)$)\n    127.0.0.1:",
			 attribute(*backend), c.prefix);
	cr_assert(strstr(r.out, want) != NULL, "[%s] %s", bname(&c), r.out);
	free(want);
	cr_assert(strstr(r.out, "needs 1    session ") && strstr(r.out, "needs 2    session ") &&
		  strstr(r.out, old.value) && strstr(r.out, mid.value) &&
		  !strstr(r.out, other.value), "[%s] %s", bname(&c), r.out);
	run_release(&r);
	schema = status_schema_load();
	cli(&c, &r, "--format", "json", "status", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	doc = json_loads(r.out, 0, NULL);
	cr_assert_not_null(doc, "%s", r.out);
	validate(schema, schema, doc, "status");
	jc = json_object_get(json_array_get(json_object_get(doc, "repositories"), 0), "clients");
	cr_assert_str_eq(json_string_value(json_object_get(jc, "attribute")), attribute(*backend));
	cr_assert(json_is_null(json_object_get(jc, "unreadable")), "%s", r.out);
	conns = json_object_get(jc, "connections");
	cr_assert_eq(json_array_size(conns), 2, "[%s] %s", bname(&c), r.out);
	for (i = 0; i < 2; i++) {
		json_t *e = json_array_get(conns, i);
		const char *value = json_string_value(json_object_get(e, "value"));

		cr_assert(strcmp(value, old.value) == 0 || strcmp(value, mid.value) == 0, "%s",
			  r.out);
		cr_assert_eq(json_integer_value(json_object_get(e, "schema_version")),
			     strcmp(value, old.value) == 0 ? 1 : 2, "%s", r.out);
		cr_assert(strncmp(json_string_value(json_object_get(e, "address")), "127.0.0.1:",
				  10) == 0, "%s", r.out);
	}
	run_release(&r);
	json_decref(doc);
	json_decref(schema);

	/* The old client goes: contract to 2 goes through. */
	client_stop(&c, &old);
	EXPECT(&c, 0, "db_sync", "--contract", "2");
	assert_row(&c, "2/2/2");

	/* The version-2 client now holds contract to 3 back, until --force. */
	EXPECT(&c, 0, "db_sync", "--expand");
	EXPECT(&c, 0, "db_sync", "--migrate");
	cli(&c, &r, "db_sync", "--contract", NULL);
	cr_assert_eq(r.code, 5, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	want = xasprintf("%s '%s', needs version 2)", attribute(*backend), mid.value);
	cr_assert(strstr(r.err, want) != NULL, "[%s] %s", bname(&c), r.err);
	free(want);
	run_release(&r);
	cli(&c, &r, "db_sync", "--contract", "--force", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	want = xasprintf("dbphase: warning: --force: contracted to 3 although 1 live connection "
			 "still runs code that needs an older schema: 127.0.0.1:");
	cr_assert(strncmp(after_database_line(r.err), want, strlen(want)) == 0, "[%s] %s",
		  bname(&c), r.err);
	free(want);
	run_release(&r);
	assert_row(&c, "3/3/3");
	want = xasprintf("command = 'db_sync --contract --force' AND result = 'ok (forced)' "
			 "AND detail LIKE '%%%s%%'", mid.value);
	cr_assert_eq(history_count(&c, want), 1, "[%s] the history does not say it was forced",
		     bname(&c));
	free(want);
	client_stop(&c, &mid);
	client_stop(&c, &other);
	cenv_close(&c);
}

/* A bad pattern is a configuration error (65) with its position; nothing runs. */
BACKEND_TEST(clients, bad_pattern_is_65_with_its_position)
{
	struct cenv c;
	struct run r;
	char *want;

	cenv_open(&c, *backend);
	test_write_file(c.dir, "repository.yaml",
			"id: shop\n"
			"clients:\n"
			"  postgresql: \"^shop-([0-9]+$\"\n");
	cli(&c, &r, "db_sync", NULL);
	cr_assert_eq(r.code, 65, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	want = xasprintf("dbphase: %s/repository.yaml:3:15: bad regular expression in "
			 "'clients.postgresql' (POSIX extended syntax): ", c.dir);
	cr_assert(strstr(r.err, want) != NULL, "[%s] %s", bname(&c), r.err);
	free(want);
	run_release(&r);
	assert_row(&c, "none");
	/* SQLite in clients is an error on every backend: it has no connections. */
	test_write_file(c.dir, "repository.yaml", "clients:\n  sqlite: \"^shop-([0-9]+)$\"\n");
	cli(&c, &r, "status", NULL);
	cr_assert_eq(r.code, 65, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert(strstr(r.err, "/repository.yaml:2:3: 'clients.sqlite': SQLite has no client "
			 "connections to read") != NULL, "[%s] %s", bname(&c), r.err);
	run_release(&r);
	cenv_close(&c);
}

/* ---- MariaDB without performance_schema: refused, never a silent pass ------------ */

#if DBPHASE_WITH_MARIADB
/* tools/mariadb-server CMD DIR, with env; its first line of output (owned). */
static char *
mariadb_server(const char *cmd, const char *dir)
{
	const char *root = getenv("DBPHASE_SOURCE_ROOT");
	char *line = xasprintf("DBPHASE_MARIADB_PERFORMANCE_SCHEMA=OFF '%s/tools/mariadb-server' "
			       "%s '%s' 2>&1", root && *root ? root : ".", cmd, dir);
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
#endif

/*
 * A MariaDB server without performance_schema keeps no connection
 * attributes: contract is refused (5) saying so, and --force goes past it
 * with a warning and a forced history row.  The test starts a throwaway
 * server of its own, with performance_schema off.
 */
Test(clients, mariadb_without_performance_schema_refuses)
{
#if DBPHASE_WITH_MARIADB
	char *server, *url;
	struct cenv c;
	struct run r;

	if (getenv("DBPHASE_TEST_MYSQL_URL") == NULL ||
	    *getenv("DBPHASE_TEST_MYSQL_URL") == '\0') {
		cr_assert(getenv("DBPHASE_TEST_REQUIRE_SERVERS") == NULL ||
			  strcmp(getenv("DBPHASE_TEST_REQUIRE_SERVERS"), "1") != 0,
			  "DBPHASE_TEST_MYSQL_URL is not set but DBPHASE_TEST_REQUIRE_SERVERS=1");
		cr_skip_test("DBPHASE_TEST_MYSQL_URL not set: no MariaDB server");
	}
	server = test_mkdtemp();
	url = mariadb_server("start", server);
	setenv("DBPHASE_TEST_MYSQL_URL", url, 1);	/* test_db_create makes the database there */
	cenv_open(&c, DB_BACKEND_MYSQL);
	{
		char *ps = test_query_value(c.conn, "SELECT @@GLOBAL.performance_schema");

		cr_assert_str_eq(ps, "0", "the test's server has performance_schema on");
		free(ps);
	}
	EXPECT(&c, 0, "db_sync", "--expand");
	EXPECT(&c, 0, "db_sync", "--migrate");
	cli(&c, &r, "db_sync", "--contract", NULL);
	cr_assert_eq(r.code, 5, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert(strstr(r.err, "dbphase: contract to 3 refused: ") && strstr(r.err,
		  "/repository.yaml:4:27 asks which code the live connections run (by their "
		  "program_name), but the server cannot tell: performance_schema is off on this "
		  "MariaDB server, so it keeps no connection attributes; set "
		  "performance_schema=ON in its configuration and restart it; turn it on, or "
		  "contract anyway with --force\n"), "%s", r.err);
	run_release(&r);
	assert_row(&c, "3/3/0");
	cli(&c, &r, "status", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert(strstr(r.out, "    cannot be read: performance_schema is off"), "%s", r.out);
	run_release(&r);
	cli(&c, &r, "db_sync", "--contract", "--force", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&c), RUN_ARGS(r));
	cr_assert(strstr(r.err, "dbphase: warning: --force: contracted to 3 although "), "%s",
		  r.err);
	run_release(&r);
	assert_row(&c, "3/3/3");
	cr_assert_eq(history_count(&c, "result = 'ok (forced)' AND detail LIKE "
				   "'%performance_schema is off%'"), 1);
	cenv_close(&c);
	free(mariadb_server("stop", server));
	test_rmtree(server);
	free(server);
	free(url);
#else
	cr_assert(getenv("DBPHASE_TEST_REQUIRE_SERVERS") == NULL,
		  "dbphase was built without the mysql driver");
	cr_skip_test("mysql driver not built");
#endif
}
