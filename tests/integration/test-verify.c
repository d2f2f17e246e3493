/*
 * tests/integration/test-verify.c - proof before contract, through the
 * built dbphase on SQLite, PostgreSQL and MariaDB: after expand and migrate
 * of a rename, a type change and a derived backfill, `dbphase verify`
 * finds every derived column in agreement with its source (NULLs on both
 * sides too, a derived value new code chose itself) over several chunks,
 * and contract runs; a row changed by hand behind the triggers' back is
 * named by its key, refuses contract (and the offline upgrade) with nothing
 * contracted, and --skip-verify goes through loudly, recorded in the
 * history.  A two-way derived value is checked both ways.
 */
#include "config.h"

#include <jansson.h>

#include "cli-run.h"	/* testlib.h (criterion) first */

TestSuite(verify, .timeout = 240);

#define REPO_ID "vfy"
#define ROWS 3000

static const char v1_tables[] =
	"description: items, and pairs with a two-column key\n"
	"operations:\n"
	"  - create_table:\n"
	"      name: items\n"
	"      columns:\n"
	"        - {name: id, type: bigint, primary_key: true}\n"
	"        - {name: n, type: integer}\n"
	"        - {name: label, type: \"varchar(50)\"}\n"
	"        - {name: email, type: text}\n"
	"  - create_table:\n"
	"      name: pairs\n"
	"      columns:\n"
	"        - {name: a, type: integer, primary_key: true}\n"
	"        - {name: b, type: integer, primary_key: true}\n"
	"        - {name: v, type: text}\n";

static const char v2_derive[] =
	"description: a rename, a type change and a derived value\n"
	"operations:\n"
	"  - rename_column: {table: items, from: label, to: title}\n"
	"  - change_type: {table: items, column: n, to: bigint}\n"
	"  - add_column: {table: items, column: {name: email_lower, type: text}}\n"
	"  - backfill: {table: items, set: {email_lower: \"lower(email)\"}}\n"
	"  - rename_column: {table: pairs, from: v, to: w}\n";

struct venv {
	struct test_db db;
	struct db_conn *conn;
	char *dir;
};

static void
venv_open(struct venv *e, enum db_backend backend)
{
	const char *const v[] = { v1_tables, v2_derive };

	memset(e, 0, sizeof(*e));
	test_db_create(backend, &e->db);
	e->conn = test_db_connect(&e->db);
	e->dir = repo_create(REPO_ID, v, 2);
}

static void
venv_close(struct venv *e)
{
	db_close(e->conn);
	test_db_drop(&e->db);
	test_rmtree(e->dir);
	free(e->dir);
}

static const char *
bname(const struct venv *e)
{
	return db_backend_name(e->db.backend);
}

/* dbphase with small chunks and batches, then the arguments up to NULL. */
static void
dbp(struct venv *e, struct run *r, ...)
{
	static const char *const small[] = {
		"--batch-size", "250", "--max-batch-size", "250", NULL,
	};
	va_list ap;

	va_start(ap, r);
	run_dbphase_at(r, e->db.url, e->dir, small, ap);
	va_end(ap);
}

#define EXPECT(e, want, ...)                                                          \
	do {                                                                          \
		struct run r_;                                                        \
		dbp((e), &r_, __VA_ARGS__, NULL);                                     \
		cr_assert_eq(r_.code, (want), "[%s] %s: " RUN_FMT, bname(e),          \
			     #__VA_ARGS__, RUN_ARGS(r_));                             \
		run_release(&r_);                                                     \
	} while (0)

static void
assert_row(struct venv *e, const char *want)
{
	assert_version_row(e->conn, REPO_ID, bname(e), want);
}

static void
assert_has(const struct venv *e, const char *text, const char *want)
{
	cr_assert(strstr(text, want) != NULL, "[%s] wanted '%s' in:\n%s", bname(e), want, text);
}

/* a || b || c in the backend's words (MariaDB's || is OR). */
static char *
concat3(const struct venv *e, const char *a, const char *b, const char *c)
{
	return e->db.backend == DB_BACKEND_MYSQL ? xasprintf("CONCAT(%s, %s, %s)", a, b, c) :
						   xasprintf("%s || %s || %s", a, b, c);
}

/*
 * Version 1 with ROWS items, as release-1 code wrote them: some n, labels
 * and emails NULL, emails in mixed case; and a pair per item.
 */
static void
fill(struct venv *e)
{
	char *label = concat3(e, "'Label '", "CAST(id AS CHAR(10))", "''");
	char *email = concat3(e, "'User'", "CAST(id AS CHAR(10))", "'@Example.COM'");
	char *sql;

	EXPECT(e, 0, "db_sync", "1");
	test_fill_rows(e->conn, "items", ROWS);
	if (e->db.backend != DB_BACKEND_MYSQL) {
		free(label);
		free(email);
		label = concat3(e, "'Label '", "CAST(id AS TEXT)", "''");
		email = concat3(e, "'User'", "CAST(id AS TEXT)", "'@Example.COM'");
	}
	sql = xasprintf("UPDATE items SET n = CASE WHEN id %% 5 = 0 THEN NULL ELSE n END, "
			"label = CASE WHEN id %% 6 = 0 THEN NULL ELSE %s END, "
			"email = CASE WHEN id %% 7 = 0 THEN NULL ELSE %s END", label, email);
	test_exec(e->conn, sql);
	free(sql);
	test_exec(e->conn, "INSERT INTO pairs (a, b, v) SELECT id % 10, id, label FROM items");
	cr_assert_eq(query_ll(e->conn, "SELECT count(*) FROM items WHERE n IS NULL AND label IS "
			      "NULL AND email IS NULL"), ROWS / 210, "[%s] NULL rows", bname(e));
	free(label);
	free(email);
}

/* Expand and migrate version 2, with writes by old and new code in between. */
static void
expand_and_migrate(struct venv *e)
{
	struct run r;

	EXPECT(e, 0, "db_sync", "--expand");
	/* Before migrate, rows are not all filled: verify refuses. */
	dbp(e, &r, "verify", NULL);
	cr_assert_eq(r.code, 5, "[%s] " RUN_FMT, bname(e), RUN_ARGS(r));
	assert_has(e, r.err, "verify to 2 refused: migrate is at 1");
	run_release(&r);
	test_exec(e->conn, "INSERT INTO items (id, n, label, email) VALUES "
		  "(5001, 7, 'Old code', 'Old@Example.COM')");
	test_exec(e->conn, "INSERT INTO items (id, n, title, email, email_lower) VALUES "
		  "(5002, 8, 'New code', 'New@Example.COM', 'chosen by new code')");
	test_exec(e->conn, "UPDATE items SET label = 'Changed by old code', email = 'X@Y.Z' "
		  "WHERE id = 3");
	EXPECT(e, 0, "db_sync", "--migrate");
}

/* verify --format json as a document; its exit code in *code. */
static json_t *
verify_json(struct venv *e, int *code)
{
	struct run r;
	json_error_t je;
	json_t *doc;

	dbp(e, &r, "--format", "json", "verify", NULL);
	*code = r.code;
	doc = json_loads(r.out, 0, &je);
	cr_assert_not_null(doc, "[%s] not JSON (%s): " RUN_FMT, bname(e), je.text, RUN_ARGS(r));
	run_release(&r);
	return doc;
}

/* The check of table whose operation is op: its JSON object (borrowed). */
static json_t *
find_check(const struct venv *e, json_t *doc, const char *table, const char *op)
{
	json_t *checks = json_object_get(doc, "checks"), *c;
	size_t i;

	json_array_foreach(checks, i, c)
		if (strcmp(json_string_value(json_object_get(c, "table")), table) == 0 &&
		    strcmp(json_string_value(json_object_get(c, "operation")), op) == 0)
			return c;
	cr_assert_fail("[%s] no %s check of %s", bname(e), op, table);
	return NULL;
}

/* Take the triggers away, as an operator working behind dbphase's back would. */
static void
drop_triggers(struct venv *e, const char *table)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_result *res = NULL;
	char *sql;
	size_t i;

	if (e->db.backend == DB_BACKEND_POSTGRESQL) {
		sql = xasprintf("ALTER TABLE %s DISABLE TRIGGER USER", table);
		test_exec(e->conn, sql);
		free(sql);
		return;
	}
	sql = e->db.backend == DB_BACKEND_MYSQL ?
	      xasprintf("SELECT trigger_name FROM information_schema.triggers WHERE "
			"trigger_schema = DATABASE() AND event_object_table = '%s'", table) :
	      xasprintf("SELECT name FROM sqlite_master WHERE type = 'trigger' AND "
			"tbl_name = '%s'", table);
	cr_assert_eq(db_query(e->conn, sql, NULL, 0, &res, &err), 0, "%s", err.message);
	cr_assert_gt(res->n_rows, 0, "[%s] no triggers on %s", bname(e), table);
	free(sql);
	for (i = 0; i < res->n_rows; i++) {
		sql = xasprintf("DROP TRIGGER %s", db_result_value(res, i, 0));
		test_exec(e->conn, sql);
		free(sql);
	}
	db_result_free(res);
}

BACKEND_TEST(verify, equal_columns_pass_in_chunks_and_contract_runs)
{
	const char *const ops[] = { "rename_column", "change_type", "backfill" };
	struct venv e;
	struct run r;
	json_t *doc, *c;
	int code;
	size_t i;

	venv_open(&e, *backend);
	fill(&e);
	expand_and_migrate(&e);
	doc = verify_json(&e, &code);
	cr_assert_eq(code, 0, "[%s] verify exit %d", bname(&e), code);
	cr_assert(json_is_true(json_object_get(doc, "equal")), "[%s] not equal", bname(&e));
	cr_assert_eq(json_array_size(json_object_get(doc, "checks")), 4);
	for (i = 0; i < 3; i++) {
		c = find_check(&e, doc, "items", ops[i]);
		cr_assert_eq(json_integer_value(json_object_get(c, "rows")), ROWS + 2,
			     "[%s] %s rows", bname(&e), ops[i]);
		cr_assert_eq(json_integer_value(json_object_get(c, "differing_rows")), 0);
		/* Several chunks of at most 250 rows. */
		cr_assert_geq(json_integer_value(json_object_get(c, "chunks")), (ROWS + 2) / 250,
			      "[%s] %s chunks", bname(&e), ops[i]);
	}
	c = find_check(&e, doc, "pairs", "rename_column");
	cr_assert_eq(json_integer_value(json_object_get(c, "rows")), ROWS);
	cr_assert_geq(json_integer_value(json_object_get(c, "chunks")), ROWS / 250);
	json_decref(doc);
	dbp(&e, &r, "verify", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&e), RUN_ARGS(r));
	assert_has(&e, r.out, "verify: items: 3002 rows in ");
	assert_has(&e, r.out, "3 columns agree with their sources");
	assert_has(&e, r.out, "items.title = label: equal in 3002 rows");
	assert_has(&e, r.out, "verify: every derived column agrees with its source\n");
	run_release(&r);
	/* Contract verifies first, then contracts. */
	dbp(&e, &r, "db_sync", "--contract", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&e), RUN_ARGS(r));
	assert_has(&e, r.out, "verify: items: 3002 rows in ");
	assert_has(&e, r.out, "verify: pairs: 3000 rows in ");
	cr_assert(strstr(r.out, "verify: items") < strstr(r.out, "contract: 1 -> 2"),
		  "[%s] verify must come before contract:\n%s", bname(&e), r.out);
	run_release(&r);
	assert_row(&e, "2/2/2");
	cr_assert_eq(query_ll(e.conn, "SELECT count(*) FROM items WHERE title = 'Changed by old "
			      "code' AND email_lower = 'x@y.z' AND id = 3"), 1);
	/* Nothing is left to verify once contracted. */
	dbp(&e, &r, "verify", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&e), RUN_ARGS(r));
	assert_has(&e, r.out, "nothing to compare");
	run_release(&r);
	venv_close(&e);
}

BACKEND_TEST(verify, a_differing_row_is_named_and_refuses_contract)
{
	struct venv e;
	struct run r;
	json_t *doc, *c;
	char *sql, *shadow;
	int code;

	venv_open(&e, *backend);
	fill(&e);
	expand_and_migrate(&e);
	/* The type change's shadow column, by the name the plan gave it. */
	doc = verify_json(&e, &code);
	cr_assert_eq(code, 0);
	shadow = xstrdup(json_string_value(json_object_get(find_check(&e, doc, "items",
								      "change_type"), "column")));
	json_decref(doc);
	drop_triggers(&e, "items");
	sql = xasprintf("UPDATE items SET %s = 7 WHERE id = 1234", shadow);
	test_exec(e.conn, sql);
	free(sql);
	/* A derived value left unfilled. */
	test_exec(e.conn, "UPDATE items SET email_lower = NULL WHERE id = 2346");
	/* Only a trailing space differs, or the case: still a difference. */
	test_exec(e.conn, "UPDATE items SET title = 'Label 17 ' WHERE id = 17");
	test_exec(e.conn, "UPDATE items SET title = 'LABEL 19' WHERE id = 19");
	test_exec(e.conn, "UPDATE items SET title = 'Label 1801' WHERE id = 1800");

	dbp(&e, &r, "verify", NULL);
	cr_assert_eq(r.code, 5, "[%s] " RUN_FMT, bname(&e), RUN_ARGS(r));
	assert_has(&e, r.err, "verify found 3 derived columns that differ from their sources");
	assert_has(&e, r.err, "column 'title' differs from label in 3 of 3002 rows "
		   "(rename_column at ");
	assert_has(&e, r.err, "first at id=17, id=19, id=1800");
	assert_has(&e, r.err, "differs from n converted to bigint in 1 of 3002 rows");
	assert_has(&e, r.err, "first at id=1234");
	assert_has(&e, r.err, "column 'email_lower' is NULL where lower(email) is not NULL in 1 "
		   "of 3002 rows");
	assert_has(&e, r.err, "first at id=2346");
	assert_has(&e, r.out, "items.title = label: 3 of 3002 rows differ, first at id=17, "
		   "id=19, id=1800");
	assert_has(&e, r.out, "items.email_lower filled from lower(email): 1 of 3002 rows left "
		   "NULL, first at id=2346");
	run_release(&r);
	doc = verify_json(&e, &code);
	cr_assert_eq(code, 5);
	cr_assert(json_is_false(json_object_get(doc, "equal")));
	c = find_check(&e, doc, "items", "change_type");
	cr_assert_eq(json_integer_value(json_object_get(c, "differing_rows")), 1);
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(c,
				"first_differing_keys"), 0)), "id=1234");
	c = find_check(&e, doc, "pairs", "rename_column");
	cr_assert_eq(json_integer_value(json_object_get(c, "differing_rows")), 0);
	json_decref(doc);

	/* Contract is refused and contracts nothing; so is the offline upgrade. */
	dbp(&e, &r, "db_sync", "--contract", NULL);
	cr_assert_eq(r.code, 5, "[%s] " RUN_FMT, bname(&e), RUN_ARGS(r));
	assert_has(&e, r.err, "dbphase: contract to 2 refused: verify found 3 derived columns");
	assert_has(&e, r.err, "first at id=1234");
	assert_has(&e, r.err, "--skip-verify");
	run_release(&r);
	EXPECT(&e, 5, "upgrade");
	/* With JSON, the comparison's progress comes as events, a line per chunk. */
	dbp(&e, &r, "--format", "json", "db_sync", "--contract", NULL);
	cr_assert_eq(r.code, 5, "[%s] " RUN_FMT, bname(&e), RUN_ARGS(r));
	{
		const char *p = r.out;
		size_t n = 0;

		while ((p = strstr(p, "\"event\":\"verify_progress\"")) != NULL) {
			n++;
			p++;
		}
		cr_assert_geq(n, (ROWS + 2) / 250 + ROWS / 250, "[%s] %zu progress events:\n%s",
			      bname(&e), n, r.out);
	}
	run_release(&r);
	assert_row(&e, "2/2/1");
	cr_assert_eq(query_ll(e.conn, "SELECT count(*) FROM items WHERE label IS NOT NULL"),
		     ROWS - ROWS / 6 + 2, "[%s] the old column must still be there", bname(&e));
	cr_assert_eq(query_ll(e.conn, "SELECT count(*) FROM dbphase_history WHERE command = "
			      "'db_sync --contract' AND result = 'refused' AND detail LIKE "
			      "'%id=1234%'"), 2, "[%s] the refusals are not in the history",
		     bname(&e));

	/* --skip-verify goes through, loudly, and the history says so. */
	dbp(&e, &r, "db_sync", "--contract", "--skip-verify", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&e), RUN_ARGS(r));
	assert_has(&e, r.err, "dbphase: warning: --skip-verify: contract to 2 without comparing "
		   "4 derived columns with their sources");
	cr_assert(strstr(r.out, "verify:") == NULL, "[%s] verified anyway:\n%s", bname(&e), r.out);
	run_release(&r);
	assert_row(&e, "2/2/2");
	cr_assert_eq(query_ll(e.conn, "SELECT count(*) FROM dbphase_history WHERE command = "
			      "'db_sync --contract --skip-verify' AND result = 'ok (forced)' AND "
			      "detail LIKE '%--skip-verify%'"), 1,
		     "[%s] the history does not record --skip-verify", bname(&e));
	free(shadow);
	venv_close(&e);
}

/* A derived value both ways: each direction is compared. */
static const char v1_people[] =
	"description: people\n"
	"operations:\n"
	"  - create_table:\n"
	"      name: people\n"
	"      columns:\n"
	"        - {name: id, type: bigint, primary_key: true}\n"
	"        - {name: fullname, type: \"varchar(60)\"}\n";

static const char v2_split[] =
	"description: fullname becomes two columns\n"
	"operations:\n"
	"  - add_column: {table: people, column: {name: first_name, type: \"varchar(30)\"}}\n"
	"  - add_column: {table: people, column: {name: last_name, type: \"varchar(30)\"}}\n"
	"  - backfill:\n"
	"      table: people\n"
	"      set:\n"
	"        first_name:\n"
	"          postgresql: \"split_part(fullname, ' ', 1)\"\n"
	"          mysql: \"SUBSTRING_INDEX(fullname, ' ', 1)\"\n"
	"          sqlite: \"substr(fullname, 1, instr(fullname, ' ') - 1)\"\n"
	"        last_name:\n"
	"          postgresql: \"split_part(fullname, ' ', 2)\"\n"
	"          mysql: \"SUBSTRING_INDEX(fullname, ' ', -1)\"\n"
	"          sqlite: \"substr(fullname, instr(fullname, ' ') + 1)\"\n"
	"      reverse:\n"
	"        fullname:\n"
	"          mysql: \"CONCAT(first_name, ' ', last_name)\"\n"
	"          all: \"first_name || ' ' || last_name\"\n";

BACKEND_TEST(verify, a_two_way_derived_value_is_compared_both_ways)
{
	const char *const v[] = { v1_people, v2_split };
	struct venv e;
	struct run r;
	char *sql;

	memset(&e, 0, sizeof(e));
	test_db_create(*backend, &e.db);
	e.conn = test_db_connect(&e.db);
	e.dir = repo_create(REPO_ID, v, 2);
	EXPECT(&e, 0, "db_sync", "1");
	sql = e.db.backend == DB_BACKEND_MYSQL ?
	      xasprintf("INSERT INTO people (id, fullname) SELECT seq, CASE WHEN seq %% 9 = 0 "
			"THEN NULL ELSE CONCAT('First', seq, ' Last', seq) END FROM seq_1_to_%d",
			ROWS) :
	      e.db.backend == DB_BACKEND_POSTGRESQL ?
	      xasprintf("INSERT INTO people (id, fullname) SELECT g, CASE WHEN g %% 9 = 0 THEN "
			"NULL ELSE 'First' || g || ' Last' || g END FROM generate_series(1, %d) g",
			ROWS) :
	      xasprintf("INSERT INTO people (id, fullname) WITH RECURSIVE g(i) AS (SELECT 1 UNION "
			"ALL SELECT i + 1 FROM g WHERE i < %d) SELECT i, CASE WHEN i %% 9 = 0 THEN "
			"NULL ELSE 'First' || i || ' Last' || i END FROM g", ROWS);
	test_exec(e.conn, sql);
	free(sql);
	EXPECT(&e, 0, "db_sync", "--expand");
	/* New code writes the new columns; the triggers write fullname back. */
	test_exec(e.conn, "INSERT INTO people (id, first_name, last_name) "
		  "VALUES (5001, 'Ada', 'Byron')");
	EXPECT(&e, 0, "db_sync", "--migrate");
	cr_assert_eq(query_ll(e.conn, "SELECT count(*) FROM people WHERE fullname = 'Ada Byron'"),
		     1, "[%s] the reverse trigger", bname(&e));
	dbp(&e, &r, "verify", NULL);
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&e), RUN_ARGS(r));
	assert_has(&e, r.out, "verify: people: 3001 rows in ");
	assert_has(&e, r.out, "3 columns agree with their sources");
	assert_has(&e, r.out, "backfill (reverse) people.fullname = ");
	run_release(&r);

	drop_triggers(&e, "people");
	test_exec(e.conn, "UPDATE people SET last_name = 'Lost' WHERE id = 77");
	test_exec(e.conn, "UPDATE people SET last_name = NULL WHERE id = 98");
	test_exec(e.conn, "UPDATE people SET fullname = 'First88  Last88' WHERE id = 88");
	dbp(&e, &r, "verify", NULL);
	cr_assert_eq(r.code, 5, "[%s] " RUN_FMT, bname(&e), RUN_ARGS(r));
	/* id 98's last_name is unfilled; 77, 88 and 98's fullname is not the reverse. */
	assert_has(&e, r.err, "column 'last_name' is NULL where ");
	assert_has(&e, r.err, "(backfill at ");
	assert_has(&e, r.err, "column 'fullname' differs from ");
	assert_has(&e, r.err, "(backfill (reverse) at ");
	assert_has(&e, r.out, "people.fullname = ");
	cr_assert(strstr(r.out, "first at id=77, id=88, id=98\n") != NULL, "[%s] %s", bname(&e),
		  r.out);
	cr_assert(strstr(r.out, "1 of 3001 rows left NULL, first at id=98\n") != NULL, "[%s] %s",
		  bname(&e), r.out);
	run_release(&r);
	EXPECT(&e, 5, "db_sync", "--contract");
	assert_row(&e, "2/2/1");
	venv_close(&e);
}
