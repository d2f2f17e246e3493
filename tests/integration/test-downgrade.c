/*
 * tests/integration/test-downgrade.c - sqlalchemy-migrate's habits past a
 * contract, through the built program on SQLite, PostgreSQL and MariaDB:
 * `downgrade N --allow-data-loss` takes back contracted versions whose
 * every step has an inverse (and refuses, changing nothing, a contract that
 * dropped an older column), and `forget` removes dbphase's own tables and
 * nothing else (DROP TABLE migrate_version).
 */
#include "config.h"

#include "cli-run.h"	/* testlib.h (criterion) first */

TestSuite(downgrade, .timeout = 240);

#define REPO_ID "dg"

static const char v1_items[] =
	"description: items\n"
	"operations:\n"
	"  - create_table:\n"
	"      name: items\n"
	"      columns:\n"
	"        - {name: id, type: bigint, primary_key: true}\n"
	"        - {name: name, type: \"varchar(50)\", nullable: false}\n"
	"        - {name: memo, type: text}\n";

static const char v2_tags_note[] =
	"description: a table and a column\n"
	"operations:\n"
	"  - create_table:\n"
	"      name: tags\n"
	"      columns:\n"
	"        - {name: id, type: bigint, primary_key: true}\n"
	"        - {name: label, type: \"varchar(20)\"}\n"
	"  - add_column: {table: items, column: {name: note, type: \"varchar(100)\"}}\n";

static const char v3_rename[] =
	"description: the new column gets its final name\n"
	"operations:\n"
	"  - rename_column: {table: items, from: note, to: remark}\n";

static const char v2_drop_memo[] =
	"description: memo goes\n"
	"operations:\n"
	"  - drop_column: {table: items, column: memo}\n";

static const char v3_flag[] =
	"description: a flag\n"
	"operations:\n"
	"  - add_column: {table: items, column: {name: flag, type: integer}}\n";

struct denv {
	struct test_db db;
	struct db_conn *conn;
	char *dir;		/* the repository */
};

static void
denv_open(struct denv *d, enum db_backend backend, const char *const *versions, size_t n)
{
	memset(d, 0, sizeof(*d));
	test_db_create(backend, &d->db);
	d->conn = test_db_connect(&d->db);
	d->dir = repo_create(REPO_ID, versions, n);
}

static void
denv_close(struct denv *d)
{
	db_close(d->conn);
	test_db_drop(&d->db);
	test_rmtree(d->dir);
	free(d->dir);
}

static const char *
bname(const struct denv *d)
{
	return db_backend_name(d->db.backend);
}

/* dbphase --database URL --repository dir, then the arguments up to NULL. */
static void
cli_in(struct denv *d, const char *dir, struct run *r, ...)
{
	va_list ap;

	va_start(ap, r);
	run_dbphase_at(r, d->db.url, dir, NULL, ap);
	va_end(ap);
}

#define CLI(d, r, ...) cli_in((d), (d)->dir, (r), __VA_ARGS__, NULL)

/* Run and expect an exit code; the run is released. */
#define EXPECT(d, want, ...)                                                          \
	do {                                                                          \
		struct run r_;                                                        \
		CLI((d), &r_, __VA_ARGS__);                                           \
		cr_assert_eq(r_.code, (want), "[%s] %s: " RUN_FMT, bname(d),          \
			     #__VA_ARGS__, RUN_ARGS(r_));                             \
		run_release(&r_);                                                     \
	} while (0)

static void
assert_row(struct denv *d, const char *want)
{
	assert_version_row(d->conn, REPO_ID, bname(d), want);
}

/* Every application table's columns, indexes, triggers and constraints; owned. */
static char *
schema_text(struct denv *d)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct strbuf sb = STRBUF_INIT;
	char *tables = app_tables(d->conn), *save = NULL, *t;
	size_t i;

	for (t = strtok_r(tables, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		struct db_table_info info;

		memset(&info, 0, sizeof(info));
		cr_assert_eq(d->conn->drv->describe_table(d->conn, t, &info, &err), 0, "%s",
			     err.message);
		strbuf_addf(&sb, "table %s\n", t);
		for (i = 0; i < info.n_columns; i++)
			strbuf_addf(&sb, "  column %s %s %s default %s%s\n", info.columns[i].name,
				    info.columns[i].type, info.columns[i].nullable ? "null" : "not null",
				    info.columns[i].default_expr ? info.columns[i].default_expr : "-",
				    info.columns[i].primary_key ? " pk" : "");
		for (i = 0; i < info.n_indexes; i++)
			strbuf_addf(&sb, "  index %s%s\n", info.indexes[i].name,
				    info.indexes[i].unique ? " unique" : "");
		for (i = 0; i < info.n_triggers; i++)
			strbuf_addf(&sb, "  trigger %s\n", info.triggers[i].name);
		for (i = 0; i < info.n_constraints; i++)
			strbuf_addf(&sb, "  constraint %s\n", info.constraints[i].name);
		db_table_info_release(&info);
	}
	free(tables);
	return strbuf_detach(&sb);
}

/* The newest history row: "command|result|from|to"; owned. */
static char *
last_history(struct denv *d)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_result *res = NULL;
	char *text;

	cr_assert_eq(db_query(d->conn, "SELECT command, result, from_state, to_state FROM "
			      "dbphase_history ORDER BY id DESC", NULL, 0, &res, &err), 0, "%s",
		     err.message);
	cr_assert(res->n_rows > 0);
	text = xasprintf("%s|%s|%s|%s", db_result_value(res, 0, 0), db_result_value(res, 0, 1),
			 db_result_value(res, 0, 2), db_result_value(res, 0, 3));
	db_result_free(res);
	return text;
}

/* dbphase's tables present in the database, joined by ','; owned. */
static char *
dbphase_tables(struct denv *d)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct strbuf sb = STRBUF_INIT;
	char **names = NULL;
	size_t n = 0, i;

	cr_assert_eq(d->conn->drv->list_tables(d->conn, &names, &n, &err), 0, "%s", err.message);
	for (i = 0; i < n; i++) {
		if (strncmp(names[i], "dbphase_", 8) == 0)
			strbuf_addf(&sb, "%s%s", sb.len ? "," : "", names[i]);
		free(names[i]);
	}
	free(names);
	return strbuf_detach(&sb);
}

/*
 * 1 -> 3 fully contracted, where 2 creates a table and a column and 3
 * renames that column: downgrade 1 is refused and names the flag;
 * with --allow-data-loss it leaves version 1's schema, the row at 1/1/1
 * and the history saying so; and the way up is open again.
 */
BACKEND_TEST(downgrade, past_a_contract_with_allow_data_loss)
{
	const char *const v[] = { v1_items, v2_tags_note, v3_rename };
	struct denv d;
	struct run r;
	char *v1, *v3, *now, *h;

	denv_open(&d, *backend, v, 3);
	EXPECT(&d, 0, "upgrade", "1");
	v1 = schema_text(&d);
	EXPECT(&d, 0, "upgrade", "3");
	assert_row(&d, "3/3/3");
	test_exec(d.conn, "INSERT INTO items (id, name, remark) VALUES (1, 'one', 'kept?')");
	test_exec(d.conn, "INSERT INTO tags (id, label) VALUES (1, 'lost')");
	v3 = schema_text(&d);
	cr_assert_str_neq(v1, v3);

	/* Without the flag: refused, naming what the flag would do; nothing changes. */
	CLI(&d, &r, "downgrade", "1");
	cr_assert_eq(r.code, 5, "[%s] " RUN_FMT, bname(&d), RUN_ARGS(r));
	cr_assert(strstr(r.err, "downgrade to 1 refused: version 3 is already contracted") &&
		  strstr(r.err, "--allow-data-loss would take back versions 2 to 3") &&
		  strstr(r.err, "table 'tags'") && strstr(r.err, "column 'note' of 'items'"),
		  "[%s] %s", bname(&d), r.err);
	run_release(&r);
	assert_row(&d, "3/3/3");
	now = schema_text(&d);
	cr_assert_str_eq(now, v3, "[%s] a refused downgrade changed the schema", bname(&d));
	free(now);
	h = last_history(&d);
	cr_assert(strncmp(h, "downgrade|refused|3/3/3|3/3/3", 29) == 0, "[%s] %s", bname(&d), h);
	free(h);

	/* With it: a warning, then version 1's schema; the rows of items stay. */
	CLI(&d, &r, "downgrade", "1", "--allow-data-loss");
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&d), RUN_ARGS(r));
	cr_assert(strstr(r.err, "dbphase: database ") == r.err, "[%s] %s", bname(&d), r.err);
	cr_assert(strstr(r.err, "warning: --allow-data-loss: taking back versions 2 to 3") &&
		  strstr(r.err, "the data in it is lost"), "[%s] %s", bname(&d), r.err);
	cr_assert(strstr(r.out, "downgrade: done, now at 1"), "[%s] %s", bname(&d), r.out);
	run_release(&r);
	assert_row(&d, "1/1/1");
	now = schema_text(&d);
	cr_assert_str_eq(now, v1, "[%s] the schema after downgrade differs:\n%s\nversion 1's:\n%s",
			 bname(&d), now, v1);
	free(now);
	cr_assert_eq(query_ll(d.conn, "SELECT count(*) FROM items WHERE name = 'one'"), 1);
	h = last_history(&d);
	cr_assert_str_eq(h, "downgrade --allow-data-loss|ok (data loss)|3/3/3|1/1/1",
			 "[%s] %s", bname(&d), h);
	free(h);
	cr_assert_eq(query_ll(d.conn, "SELECT count(*) FROM dbphase_steps WHERE step_id LIKE "
			      "'v002.%' OR step_id LIKE 'v003.%'"), 0);
	cr_assert_eq(query_ll(d.conn, "SELECT max(version) FROM dbphase_migrations"), 1);
	/* Once more: nothing to do. */
	EXPECT(&d, 0, "downgrade", "1", "--allow-data-loss");
	/* Version 1's code writes, and the way up is open again. */
	test_exec(d.conn, "INSERT INTO items (id, name) VALUES (2, 'two')");
	EXPECT(&d, 0, "upgrade", "3");
	assert_row(&d, "3/3/3");
	now = schema_text(&d);
	cr_assert_str_eq(now, v3, "[%s] upgrading again gave another schema", bname(&d));
	free(now);
	free(v1);
	free(v3);
	denv_close(&d);
}

/*
 * A contract that dropped a column version 1 has cannot be taken back:
 * refused even with the flag, naming the operation and its file, and
 * nothing changes; the refusal without the flag says how far the flag can
 * go, and that downgrade works.
 */
BACKEND_TEST(downgrade, refuses_a_contract_that_dropped_an_older_column)
{
	const char *const v[] = { v1_items, v2_drop_memo, v3_flag };
	struct denv d;
	struct run r;
	char *v2, *v3, *now, *h, *where;

	denv_open(&d, *backend, v, 3);
	EXPECT(&d, 0, "upgrade", "2");
	v2 = schema_text(&d);
	EXPECT(&d, 0, "upgrade", "3");
	v3 = schema_text(&d);

	CLI(&d, &r, "downgrade", "1", "--allow-data-loss");
	cr_assert_eq(r.code, 5, "[%s] " RUN_FMT, bname(&d), RUN_ARGS(r));
	where = xasprintf("downgrade to 1 refused: step v002.contract.1 (drop_column at %s/versions/"
			  "002_v2.yaml:3:5, from phases/drop_column.yaml:", d.dir);
	cr_assert(strstr(r.err, where) != NULL && strstr(r.err, "dropped column 'memo' of "
								"'items', which version 1 has"),
		  "[%s] %s", bname(&d), r.err);
	free(where);
	cr_assert(strstr(r.err, "warning") == NULL, "[%s] %s", bname(&d), r.err);
	run_release(&r);
	assert_row(&d, "3/3/3");
	now = schema_text(&d);
	cr_assert_str_eq(now, v3, "[%s] a refused downgrade changed the schema", bname(&d));
	free(now);
	h = last_history(&d);
	cr_assert(strncmp(h, "downgrade --allow-data-loss|refused|3/3/3|3/3/3", 47) == 0,
		  "[%s] %s", bname(&d), h);
	free(h);

	/* Without the flag: restore from backup, and how far the flag would go. */
	CLI(&d, &r, "downgrade", "1");
	cr_assert_eq(r.code, 5, "[%s] " RUN_FMT, bname(&d), RUN_ARGS(r));
	cr_assert(strstr(r.err, "restore from backup (even with --allow-data-loss: ") &&
		  strstr(r.err, "'downgrade 2 --allow-data-loss' would take back versions 3 to 3"),
		  "[%s] %s", bname(&d), r.err);
	run_release(&r);
	EXPECT(&d, 0, "downgrade", "2", "--allow-data-loss");
	assert_row(&d, "2/2/2");
	now = schema_text(&d);
	cr_assert_str_eq(now, v2, "[%s] the schema after downgrade differs:\n%s\nversion 2's:\n%s",
			 bname(&d), now, v2);
	free(now);
	free(v2);
	free(v3);
	denv_close(&d);
}

/*
 * forget: --yes or exit 64; refused while a phase is in flight; removes
 * this repository's rows and keeps the tables while another repository
 * uses them; the last one out drops them; application tables stay.
 */
BACKEND_TEST(downgrade, forget_removes_only_dbphase_tables)
{
	static const char other_v1[] =
		"description: another repository in the same database\n"
		"operations:\n"
		"  - create_table:\n"
		"      name: others\n"
		"      columns:\n"
		"        - {name: id, type: bigint, primary_key: true}\n";
	const char *const v[] = { v1_items, v2_tags_note };
	const char *const ov[] = { other_v1 };
	struct denv d;
	struct run r;
	char *other = repo_create("other", ov, 1), *tables, *all;

	denv_open(&d, *backend, v, 2);
	EXPECT(&d, 0, "upgrade", "1");
	all = dbphase_tables(&d);
	cr_assert(strstr(all, "dbphase_version") && strstr(all, "dbphase_history"), "%s", all);

	/* No --yes: a usage error that says what would go; nothing does. */
	CLI(&d, &r, "forget");
	cr_assert_eq(r.code, 64, "[%s] " RUN_FMT, bname(&d), RUN_ARGS(r));
	cr_assert(strstr(r.err, "forget needs --yes: it removes repository 'dg' from dbphase's "
			 "tables") != NULL, "[%s] %s", bname(&d), r.err);
	run_release(&r);
	tables = dbphase_tables(&d);
	cr_assert_str_eq(tables, all);
	free(tables);

	/* A phase in flight: refused. */
	EXPECT(&d, 0, "db_sync", "--expand", "2");
	CLI(&d, &r, "forget", "--yes");
	cr_assert_eq(r.code, 5, "[%s] " RUN_FMT, bname(&d), RUN_ARGS(r));
	cr_assert(strstr(r.err, "forget refused: a phase of repository 'dg' is in flight "
			 "(expand is at 2, migrate at 1 and contract at 1)") != NULL,
		  "[%s] %s", bname(&d), r.err);
	run_release(&r);
	assert_row(&d, "2/1/1");
	EXPECT(&d, 0, "upgrade", "2");

	/* Another repository uses the tables: only this one's rows go. */
	{
		struct run o;

		cli_in(&d, other, &o, "upgrade", NULL);
		cr_assert_eq(o.code, 0, "[%s] " RUN_FMT, bname(&d), RUN_ARGS(o));
		run_release(&o);
	}
	CLI(&d, &r, "forget", "--yes");
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&d), RUN_ARGS(r));
	cr_assert(strstr(r.err, "dbphase: database ") == r.err, "[%s] %s", bname(&d), r.err);
	cr_assert(strstr(r.out, "forget: removed repository 'dg' from dbphase's tables (1 row "
			 "from dbphase_version") && strstr(r.out, "kept the tables: other "
							  "repositories still use them"),
		  "[%s] %s", bname(&d), r.out);
	run_release(&r);
	cr_assert_eq(query_ll(d.conn, "SELECT count(*) FROM dbphase_history WHERE repository = "
			      "'dg'"), 0);
	cr_assert_eq(query_ll(d.conn, "SELECT count(*) FROM dbphase_migrations WHERE "
			      "repository = 'dg'"), 0);
	cr_assert_gt(query_ll(d.conn, "SELECT count(*) FROM dbphase_history WHERE repository = "
			      "'other'"), 0);
	assert_row(&d, "none");
	tables = dbphase_tables(&d);
	cr_assert_str_eq(tables, all);
	free(tables);

	/* The last one out drops them all; the application's tables stay. */
	{
		struct run o;

		cli_in(&d, other, &o, "forget", "--yes", NULL);
		cr_assert_eq(o.code, 0, "[%s] " RUN_FMT, bname(&d), RUN_ARGS(o));
		cr_assert(strstr(o.out, "dropped the tables dbphase_version, dbphase_migrations") &&
			  strstr(o.out, "dbphase_meta\n"), "[%s] %s", bname(&d), o.out);
		run_release(&o);
	}
	tables = dbphase_tables(&d);
	cr_assert_str_eq(tables, "", "[%s] left: %s", bname(&d), tables);
	free(tables);
	tables = app_tables(d.conn);
	cr_assert_str_eq(tables, "items,others,tags", "[%s] %s", bname(&d), tables);
	free(tables);
	cr_assert_eq(query_ll(d.conn, "SELECT count(*) FROM items"), 0);
	/* Nothing left to forget; and the database can be taken under control again. */
	CLI(&d, &r, "forget", "--yes");
	cr_assert_eq(r.code, 0, "[%s] " RUN_FMT, bname(&d), RUN_ARGS(r));
	cr_assert(strstr(r.out, "nothing to forget"), "[%s] %s", bname(&d), r.out);
	run_release(&r);
	EXPECT(&d, 0, "version_control", "2");
	assert_row(&d, "2/2/2");
	free(all);
	test_rmtree(other);
	free(other);
	denv_close(&d);
}
