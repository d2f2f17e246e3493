/*
 * tests/integration/test-triggers.c - the triggers expand creates, on
 * every backend: expressions that use types and keywords spelt like the
 * table's columns (date, time, text, type, key, value, end) work in old
 * code's writes; a broken expression fails expand, which keeps no trigger
 * and leaves old code's writes working; a name holding $dbphase$ does not
 * break a PostgreSQL function body.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "core/repo.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "plan/catalog.h"
#include "plan/planner.h"
#include "state/machine.h"
#include "state/state.h"
#include "testlib.h"

struct fx {
	enum db_backend backend;
	struct test_db db;
	struct db_conn *app;		/* old and new application code */
	struct db_conn *tool;		/* dbphase */
	char *dir;
	struct db_url url;
	struct repo repo;
	struct catalog cat;
	struct plan plan;
	struct state st;
	const char *stage;
};

#define BY_BACKEND(f, sqlite, pg, mysql)                                       \
	(((const char *const[DB_BACKEND__COUNT]){                             \
		[DB_BACKEND_SQLITE] = (sqlite),                                \
		[DB_BACKEND_POSTGRESQL] = (pg),                                \
		[DB_BACKEND_MYSQL] = (mysql) })[(f)->backend])

static const char *
bname(const struct fx *f)
{
	return db_backend_name(f->backend);
}

static void
fx_load(struct fx *f)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;

	cr_assert_eq(repo_load(&f->repo, f->dir, NULL, &err), 0, "[%s] repository: %s",
		     bname(f), err.message);
	cr_assert_eq(catalog_load(&f->cat, f->repo.phases_dir, &err), 0, "[%s] catalog: %s",
		     bname(f), err.message);
	cr_assert_eq(plan_build(&f->plan, &f->repo, &f->cat, f->backend, &err), 0,
		     "[%s] plan: %s", bname(f), err.message);
	state_init(&f->st, f->tool, f->repo.id, f->repo.version_table);
}

static int
fx_phase_rc(struct fx *f, enum phase phase, int64_t version, struct dbphase_error *err)
{
	struct machine_opts o;

	machine_opts_init(&o);
	o.lock_wait_s = 30;
	o.command = "test-triggers";
	o.exec.max_retries = 3;
	o.exec.batch_size = 2;
	o.exec.max_batch_size = 2;
	o.url = &f->url;
	return machine_phase(&f->st, &f->repo, &f->plan, phase, version, &o, err);
}

static void
fx_phase(struct fx *f, enum phase phase, int64_t version)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;

	cr_assert_eq(fx_phase_rc(f, phase, version, &err), 0, "[%s] %s to %lld failed: %s",
		     bname(f), phase_name(phase), (long long)version, err.message);
	err_release(&err);
	f->stage = phase == PHASE_EXPAND ? "after expand" :
		   phase == PHASE_MIGRATE ? "after migrate" : "after contract";
}

/* A fresh database at version 1 of v1, with v2 on disk. */
static void
fx_begin(struct fx *f, enum db_backend backend, const char *v1, const char *v2)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;

	memset(f, 0, sizeof(*f));
	f->backend = backend;
	test_db_create(backend, &f->db);
	f->app = test_db_connect(&f->db);
	f->tool = test_db_connect(&f->db);
	cr_assert_eq(db_url_parse(f->db.url, &f->url, &err), 0, "%s", err.message);
	f->dir = test_mkdtemp();
	test_write_file(f->dir, "repository.yaml", "id: triggers\n");
	test_write_file(f->dir, "versions/001_old.yaml", v1);
	test_write_file(f->dir, "versions/002_new.yaml", v2);
	fx_load(f);
	fx_phase(f, PHASE_EXPAND, 1);
	fx_phase(f, PHASE_MIGRATE, 1);
	fx_phase(f, PHASE_CONTRACT, 1);
	f->stage = "at version 1";
}

static void
fx_end(struct fx *f)
{
	state_release(&f->st);
	plan_release(&f->plan);
	catalog_release(&f->cat);
	repo_release(&f->repo);
	db_close(f->app);
	db_close(f->tool);
	db_url_release(&f->url);
	test_db_drop(&f->db);
	test_rmtree(f->dir);
	free(f->dir);
}

/* sql with its "double quotes" as the backend quotes names (backticks on MariaDB). */
static char *
dialect(const struct fx *f, const char *sql)
{
	char *s = xstrdup(sql), *p;

	if (f->backend == DB_BACKEND_MYSQL)
		for (p = s; *p; p++)
			if (*p == '"')
				*p = '`';
	return s;
}

/* Application code's statement, which must succeed. */
static void
app(struct fx *f, const char *who, const char *sql)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	char *text = dialect(f, sql);

	if (db_query(f->app, text, NULL, 0, NULL, &err) < 0)
		cr_assert_fail("[%s] %s, %s code's statement failed:\n  %s\n  %s", bname(f),
			       f->stage, who, text, err.message);
	free(text);
}

#define OLD(f, sql) app((f), "old", (sql))
#define NEW(f, sql) app((f), "new", (sql))

static void
app_fails(struct fx *f, const char *why, const char *sql)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	char *text = dialect(f, sql);

	if (db_query(f->app, text, NULL, 0, NULL, &err) == 0)
		cr_assert_fail("[%s] %s: %s, yet this succeeded:\n  %s", bname(f), f->stage, why,
			       text);
	err_release(&err);
	free(text);
}

/* The single value of a query must be want (NULL: SQL NULL). */
static void
app_value(struct fx *f, const char *want, const char *sql)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_result *res = NULL;
	char *text = dialect(f, sql);
	const char *got;

	if (db_query(f->app, text, NULL, 0, &res, &err) < 0)
		cr_assert_fail("[%s] %s, query failed:\n  %s\n  %s", bname(f), f->stage, text,
			       err.message);
	cr_assert_eq(res->n_rows, 1, "[%s] %s: %zu rows from\n  %s", bname(f), f->stage,
		     res->n_rows, text);
	got = db_result_value(res, 0, 0);
	if (want == NULL)
		cr_assert_null(got, "[%s] %s: expected NULL, got '%s' from\n  %s", bname(f),
			       f->stage, got, text);
	else
		cr_assert(got && strcmp(got, want) == 0,
			  "[%s] %s: expected '%s', got '%s' from\n  %s", bname(f), f->stage, want,
			  got ? got : "NULL", text);
	db_result_free(res);
	free(text);
}

/* How many triggers (and, on PostgreSQL, trigger functions) dbphase left. */
static void
expect_dbphase_triggers(struct fx *f, const char *n)
{
	app_value(f, n, BY_BACKEND(f,
		"SELECT count(*) FROM sqlite_master WHERE type = 'trigger'",
		"SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal",
		"SELECT count(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()"));
}

/* ---- names of types and keywords ----------------------------------------- */

#define EVENTS_V1 \
	"operations:\n" \
	"  - create_table:\n" \
	"      name: events\n" \
	"      columns:\n" \
	"        - {name: id, type: integer, primary_key: true}\n" \
	"        - {name: created_at, type: timestamp}\n" \
	"        - {name: date, type: date}\n" \
	"        - {name: time, type: \"varchar(20)\"}\n" \
	"        - {name: text, type: \"varchar(100)\"}\n" \
	"        - {name: type, type: \"varchar(20)\"}\n" \
	"        - {name: key, type: \"varchar(20)\"}\n" \
	"        - {name: value, type: integer}\n" \
	"        - {name: end, type: integer}\n"

/*
 * A derived value, a type change with 'using', a rename and a check whose
 * expressions put types spelt like columns where a rewrite would take them
 * for columns: CAST(created_at AS date), x::text, DATE '2000-01-01'.
 */
static const char events_v2[] =
	"operations:\n"
	"  - add_column: {table: events, column: {name: label, type: \"varchar(100)\"}}\n"
	"  - backfill:\n"
	"      table: events\n"
	"      set:\n"
	"        label:\n"
	"          postgresql: \"CAST(created_at AS date)::text || ' ' || type || ' ' || text\"\n"
	"          mysql: \"CONCAT(CAST(created_at AS date), ' ', type, ' ', text)\"\n"
	"          sqlite: \"CAST(date(created_at) AS text) || ' ' || type || ' ' || text\"\n"
	"  - change_type:\n"
	"      table: events\n"
	"      column: date\n"
	"      to: \"varchar(20)\"\n"
	"      using:\n"
	"        postgresql: \"CAST(date AS text)\"\n"
	"        mysql: \"CAST(CAST(date AS date) AS char(20))\"\n"
	"        sqlite: \"CAST(date AS text)\"\n"
	"  - rename_column: {table: events, from: end, to: finish}\n"
	"  - add_check:\n"
	"      table: events\n"
	"      name: events_recent\n"
	"      check:\n"
	"        postgresql: \"CAST(created_at AS date) >= DATE '2000-01-01'\"\n"
	"        mysql: \"CAST(created_at AS date) >= DATE '2000-01-01'\"\n"
	"        sqlite: \"CAST(value AS text) <> '-1'\"\n";

BACKEND_TEST(triggers, expressions_with_type_and_keyword_columns)
{
	struct fx f;

	fx_begin(&f, *backend, EVENTS_V1, events_v2);
	OLD(&f, "INSERT INTO events (id, created_at, date, time, text, type, \"key\", value, \"end\") "
	    "VALUES (1, '2024-01-02 10:00:00', '2024-01-05', '10:00', 'hello', 'click', 'k1', 5, 7)");
	fx_phase(&f, PHASE_EXPAND, 2);
	/* Old code's writes work, and the triggers compute what they should. */
	OLD(&f, "INSERT INTO events (id, created_at, date, time, text, type, \"key\", value, \"end\") "
	    "VALUES (10, '2024-03-04 23:00:00', '2024-03-07', '23:00', 'hi', 'view', 'k2', 6, 8)");
	app_value(&f, "2024-03-04 view hi", "SELECT label FROM events WHERE id = 10");
	OLD(&f, "UPDATE events SET type = 'buy', text = 'bye', \"end\" = 9 WHERE id = 10");
	app_value(&f, "2024-03-04 buy bye", "SELECT label FROM events WHERE id = 10");
	app_value(&f, "9", "SELECT finish FROM events WHERE id = 10");
	OLD(&f, "UPDATE events SET date = '2024-04-01' WHERE id = 10");
	OLD(&f, "DELETE FROM events WHERE id = 1 AND 1 = 0");
	fx_phase(&f, PHASE_MIGRATE, 2);
	app_value(&f, "2024-01-02 click hello", "SELECT label FROM events WHERE id = 1");
	/* The check stands in from migrate on; rows that pass it are written. */
	OLD(&f, "INSERT INTO events (id, created_at, date, type, text, value, \"end\") "
	    "VALUES (20, '2024-05-06 07:08:09', '2024-05-07', 'ok', 'yes', 1, 2)");
	app_value(&f, "2024-05-06 ok yes", "SELECT label FROM events WHERE id = 20");
	if (f.backend == DB_BACKEND_SQLITE)
		app_fails(&f, "the check refuses value -1",
			  "INSERT INTO events (id, created_at, value) VALUES (21, '2024-01-01', -1)");
	else
		app_fails(&f, "the check refuses a date before 2000",
			  "INSERT INTO events (id, created_at) VALUES (21, '1999-12-31 00:00:00')");
	OLD(&f, "UPDATE events SET text = 'again' WHERE id = 20");
	app_value(&f, "2024-05-06 ok again", "SELECT label FROM events WHERE id = 20");
	fx_phase(&f, PHASE_CONTRACT, 2);
	app_value(&f, "2024-01-05", "SELECT date FROM events WHERE id = 1");
	app_value(&f, "2024-04-01", "SELECT date FROM events WHERE id = 10");
	app_value(&f, "2024-05-07", "SELECT date FROM events WHERE id = 20");
	app_value(&f, "7", "SELECT finish FROM events WHERE id = 1");
	app_value(&f, "9", "SELECT finish FROM events WHERE id = 10");
	NEW(&f, "INSERT INTO events (id, created_at, date, text, type, label, finish) "
	    "VALUES (30, '2024-06-01 00:00:00', 'soon', 't', 'n', 'mine', 3)");
	app_value(&f, "mine", "SELECT label FROM events WHERE id = 30");
	fx_end(&f);
}

/*
 * Both ways: new columns computed from old ones for old code's writes, old
 * ones from new ones for new code's, with casts to types named like the
 * old columns.
 */
static const char notes_v2[] =
	"operations:\n"
	"  - add_column: {table: notes, column: {name: body, type: \"varchar(100)\"}}\n"
	"  - add_column: {table: notes, column: {name: day, type: \"varchar(20)\"}}\n"
	"  - backfill:\n"
	"      table: notes\n"
	"      set:\n"
	"        body: {postgresql: \"text::text\", mysql: \"CAST(text AS char(100))\","
	" sqlite: \"CAST(text AS text)\"}\n"
	"        day: {postgresql: \"CAST(date AS text)\", mysql: \"CAST(date AS char(20))\","
	" sqlite: \"CAST(date AS text)\"}\n"
	"      reverse:\n"
	"        text: {postgresql: \"body::text\", mysql: \"CAST(body AS char(100))\","
	" sqlite: \"CAST(body AS text)\"}\n"
	"        date: {postgresql: \"CAST(day AS date)\", mysql: \"CAST(day AS date)\","
	" sqlite: \"date(day)\"}\n";

BACKEND_TEST(triggers, reverse_backfill_with_type_columns)
{
	struct fx f;

	fx_begin(&f, *backend,
		 "operations:\n"
		 "  - create_table:\n"
		 "      name: notes\n"
		 "      columns:\n"
		 "        - {name: id, type: integer, primary_key: true}\n"
		 "        - {name: text, type: \"varchar(100)\"}\n"
		 "        - {name: date, type: date}\n",
		 notes_v2);
	OLD(&f, "INSERT INTO notes (id, text, date) VALUES (1, 'first', '2024-01-01')");
	fx_phase(&f, PHASE_EXPAND, 2);
	OLD(&f, "INSERT INTO notes (id, text, date) VALUES (10, 'hi', '2024-03-04')");
	app_value(&f, "hi", "SELECT body FROM notes WHERE id = 10");
	app_value(&f, "2024-03-04", "SELECT day FROM notes WHERE id = 10");
	OLD(&f, "UPDATE notes SET text = 'ho' WHERE id = 10");
	app_value(&f, "ho", "SELECT body FROM notes WHERE id = 10");
	fx_phase(&f, PHASE_MIGRATE, 2);
	app_value(&f, "2024-01-01", "SELECT day FROM notes WHERE id = 1");
	NEW(&f, "INSERT INTO notes (id, body, day) VALUES (20, 'yo', '2024-05-06')");
	app_value(&f, "yo", "SELECT text FROM notes WHERE id = 20");
	app_value(&f, "2024-05-06", "SELECT date FROM notes WHERE id = 20");
	NEW(&f, "UPDATE notes SET day = '2024-07-08' WHERE id = 20");
	app_value(&f, "2024-07-08", "SELECT date FROM notes WHERE id = 20");
	OLD(&f, "UPDATE notes SET date = '2024-09-10' WHERE id = 20");
	app_value(&f, "2024-09-10", "SELECT day FROM notes WHERE id = 20");
	fx_end(&f);
}

/* ---- a broken trigger fails expand ---------------------------------------- */

static const char broken_v1[] =
	"operations:\n"
	"  - create_table:\n"
	"      name: full\n"
	"      columns:\n"
	"        - {name: id, type: integer, primary_key: true}\n"
	"        - {name: name, type: \"varchar(20)\", nullable: false}\n"
	"        - {name: n, type: integer}\n"
	"  - create_table:\n"
	"      name: empty\n"
	"      columns:\n"
	"        - {name: id, type: integer, primary_key: true}\n"
	"        - {name: name, type: \"varchar(20)\", nullable: false}\n"
	"        - {name: n, type: integer}\n";

/* The expression of v2 on table, which is wrong only when it runs. */
static void
expect_broken_expand(enum db_backend backend, const char *table, const char *expr)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct state_versions v;
	char *v2, *sql, *trigger;
	struct fx f;
	int rc;

	v2 = xasprintf("operations:\n"
		       "  - add_column: {table: %s, column: {name: m, type: integer}}\n"
		       "  - backfill:\n"
		       "      table: %s\n"
		       "      set: {m: \"%s\"}\n", table, table, expr);
	fx_begin(&f, backend, broken_v1, v2);
	free(v2);
	OLD(&f, "INSERT INTO \"full\" (id, name, n) VALUES (1, 'a', 1)");
	rc = fx_phase_rc(&f, PHASE_EXPAND, 2, &err);
	cr_assert_neq(rc, 0, "[%s] expand accepted a trigger that breaks every write to %s",
		      bname(&f), table);
	/* The error names the operation's file and line, and the trigger. */
	cr_assert(strstr(err.message, "versions/002_new.yaml:3:5"), "[%s] %s", bname(&f),
		  err.message);
	trigger = xasprintf("dbp_v002_02_%s_fill_i", table);
	cr_assert(strstr(err.message, trigger), "[%s] %s", bname(&f), err.message);
	free(trigger);
	err_release(&err);
	/* Expand did not move, no trigger is left, and old code writes as before. */
	cr_assert_eq(state_read(&f.st, &v, &err), 0, "%s", err.message);
	cr_assert_eq(v.expand, 1, "[%s] expand is at %lld", bname(&f), (long long)v.expand);
	f.stage = "after the failed expand";
	expect_dbphase_triggers(&f, "0");
	sql = xasprintf("INSERT INTO \"%s\" (id, name, n) VALUES (2, 'b', 2)", table);
	OLD(&f, sql);
	free(sql);
	sql = xasprintf("UPDATE \"%s\" SET n = 3 WHERE id = 2", table);
	OLD(&f, sql);
	free(sql);
	/* Run again, it fails the same way, and still leaves nothing behind. */
	rc = fx_phase_rc(&f, PHASE_EXPAND, 2, &err);
	cr_assert_neq(rc, 0, "[%s] expand, run again, accepted the trigger", bname(&f));
	err_release(&err);
	expect_dbphase_triggers(&f, "0");
	OLD(&f, "UPDATE \"full\" SET n = 4 WHERE id = 1");
	fx_end(&f);
}

BACKEND_TEST(triggers, unknown_function_fails_expand)
{
	expect_broken_expand(*backend, "full", "no_such_function(n)");
}

BACKEND_TEST(triggers, unknown_function_fails_expand_on_an_empty_table)
{
	expect_broken_expand(*backend, "empty", "no_such_function(n)");
}

/* PostgreSQL finds this one only when a row is written. */
Test(triggers, runtime_type_error_fails_expand)
{
	expect_broken_expand(DB_BACKEND_POSTGRESQL, "full", "CAST(name AS integer)");
}

/*
 * The test writes meet a generated key, a unique column and a NOT NULL
 * column: the table refusing them is no failure, and they leave nothing.
 */
BACKEND_TEST(triggers, test_writes_leave_no_trace)
{
	struct fx f;

	fx_begin(&f, *backend,
		 "operations:\n"
		 "  - create_table:\n"
		 "      name: users\n"
		 "      columns:\n"
		 "        - {name: id, type: bigint, primary_key: true, autoincrement: true}\n"
		 "        - {name: email, type: \"varchar(50)\", nullable: false}\n"
		 "        - {name: n, type: integer, nullable: false}\n"
		 "  - add_index: {table: users, name: ux_users_email, columns: [email], unique: true}\n",
		 "operations:\n"
		 "  - add_column: {table: users, column: {name: email_lower, type: \"varchar(50)\"}}\n"
		 "  - backfill: {table: users, set: {email_lower: lower(email)}}\n"
		 "  - rename_column: {table: users, from: n, to: visits}\n");
	OLD(&f, "INSERT INTO users (email, n) VALUES ('A@x', 1)");
	OLD(&f, "INSERT INTO users (email, n) VALUES ('B@x', 2)");
	fx_phase(&f, PHASE_EXPAND, 2);
	app_value(&f, "2", "SELECT count(*) FROM users");
	app_value(&f, "0", "SELECT count(*) FROM users WHERE email_lower IS NOT NULL "
		  "OR visits IS NOT NULL");
	app_value(&f, "1", "SELECT n FROM users WHERE email = 'A@x'");
	OLD(&f, "INSERT INTO users (email, n) VALUES ('C@x', 3)");
	app_value(&f, "c@x", "SELECT email_lower FROM users WHERE email = 'C@x'");
	app_value(&f, "3", "SELECT visits FROM users WHERE email = 'C@x'");
	app_value(&f, "3", "SELECT max(id) FROM users");
	fx_end(&f);
}

/* ---- $dbphase$ in a name -------------------------------------------------- */

BACKEND_TEST(triggers, name_holding_the_dollar_quote_tag)
{
	struct fx f;

	fx_begin(&f, *backend,
		 "operations:\n"
		 "  - create_table:\n"
		 "      name: t\n"
		 "      columns:\n"
		 "        - {name: id, type: integer, primary_key: true}\n"
		 "        - {name: v, type: integer}\n"
		 "        - {name: w, type: integer}\n",
		 "operations:\n"
		 "  - add_column: {table: t, column: {name: \"x$dbphase$y\", type: integer}}\n"
		 "  - backfill: {table: t, set: {\"x$dbphase$y\": \"v * 2\"}}\n"
		 "  - rename_column: {table: t, from: w, to: \"w$dbphase$\"}\n");
	OLD(&f, "INSERT INTO t (id, v, w) VALUES (1, 1, 1)");
	fx_phase(&f, PHASE_EXPAND, 2);
	OLD(&f, "INSERT INTO t (id, v, w) VALUES (2, 21, 5)");
	app_value(&f, "42", "SELECT \"x$dbphase$y\" FROM t WHERE id = 2");
	app_value(&f, "5", "SELECT \"w$dbphase$\" FROM t WHERE id = 2");
	fx_phase(&f, PHASE_MIGRATE, 2);
	fx_phase(&f, PHASE_CONTRACT, 2);
	app_value(&f, "2", "SELECT \"x$dbphase$y\" FROM t WHERE id = 1");
	fx_end(&f);
}
