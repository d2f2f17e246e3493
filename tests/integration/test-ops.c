/*
 * tests/integration/test-ops.c - every operation of the catalog, run
 * through expand, migrate and contract on every backend, with old and new
 * application code working against the schema at each step.
 *
 * Each test writes a two-version repository (version 1: the old schema,
 * version 2: the operation), brings a fresh database to version 1 and
 * writes rows as old code would, then moves version 2 phase by phase
 * through the library, as `dbphase db_sync --expand|--migrate|--contract`
 * does.  After expand and after migrate old code's statements must all
 * succeed; after migrate new code's must too, and each side must see the
 * other's writes; after contract the schema is checked by introspection
 * and the data by value, and nothing dbphase made for the transition may
 * be left.  On MariaDB, whose DDL commits statement by statement, every
 * phase also runs a second time as if the first run had died before
 * recording its steps.  Where a phase swaps columns or tables, a thread
 * keeps writing through new code (or old code) while it runs, and not one
 * of its statements may fail.
 */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/repo.h"
#include "core/xmalloc.h"
#include "plan/catalog.h"
#include "plan/planner.h"
#include "state/machine.h"
#include "state/state.h"
#include "testlib.h"

struct ops {
	enum db_backend backend;
	struct test_db db;
	struct db_conn *app;		/* old and new application code */
	struct db_conn *tool;		/* dbphase */
	char *dir;			/* the repository */
	struct db_url url;		/* of db, for the migrate phase's workers */
	struct repo repo;
	struct catalog cat;
	struct plan plan;
	struct state st;
	const char *stage;		/* for messages: "after expand" */
	int batch_size;			/* 0: the default */
	volatile sig_atomic_t stop;
	int stop_after_batches;		/* > 0: stop the run after that many batches */
	bool no_rerun;			/* the steps may not run twice (author's SQL) */
	int batches_seen;
};

/* One string per backend, by enum db_backend. */
#define BY_BACKEND(f, sqlite, pg, mysql)                                       \
	(((const char *const[DB_BACKEND__COUNT]){                             \
		[DB_BACKEND_SQLITE] = (sqlite),                                \
		[DB_BACKEND_POSTGRESQL] = (pg),                                \
		[DB_BACKEND_MYSQL] = (mysql) })[(f)->backend])

static const char *
bname(const struct ops *f)
{
	return db_backend_name(f->backend);
}

/* ---- the repository and the phases --------------------------------------- */

static void
ops_load(struct ops *f)
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

static void
on_event(void *arg, const struct machine_event *ev)
{
	struct ops *f = arg;

	if (ev->kind == MACHINE_PROGRESS && f->stop_after_batches > 0 &&
	    ++f->batches_seen >= f->stop_after_batches)
		f->stop = 1;
}

/* Move phase to version; returns the state machine's result. */
static int
ops_phase_rc(struct ops *f, enum phase phase, int64_t version, struct dbphase_error *err)
{
	struct machine_opts o;

	machine_opts_init(&o);
	o.lock_wait_s = 30;
	o.command = "test-ops";
	o.exec.stop = &f->stop;
	o.exec.max_retries = 3;
	if (f->batch_size > 0) {
		/* Exactly batch_size rows a batch: no time target to shrink it under load. */
		o.exec.batch_size = f->batch_size;
		o.exec.max_batch_size = f->batch_size;
		o.exec.batch_time_ms = 600000;
	}
	o.url = &f->url;
	o.event = on_event;
	o.event_arg = f;
	return machine_phase(&f->st, &f->repo, &f->plan, phase, version, &o, err);
}

/*
 * Forget that phase reached version: its steps' records go and the row is
 * set back, as if a run had died after every step's statements but before
 * recording any of them.
 */
static void
ops_forget(struct ops *f, enum phase phase, int64_t version)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct state_versions v;

	cr_assert_eq(state_steps_forget(&f->st, version, phase_name(phase), &err), 0, "%s",
		     err.message);
	cr_assert_eq(state_read(&f->st, &v, &err), 0, "%s", err.message);
	if (phase == PHASE_EXPAND)
		v.expand = version - 1;
	else if (phase == PHASE_MIGRATE)
		v.migrate = version - 1;
	else
		v.contract = version - 1;
	cr_assert_eq(state_write(&f->st, &v, &err), 0, "%s", err.message);
}

static void
ops_phase(struct ops *f, enum phase phase, int64_t version)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	int rc = ops_phase_rc(f, phase, version, &err);

	cr_assert_eq(rc, 0, "[%s] %s to %lld failed: %s", bname(f), phase_name(phase),
		     (long long)version, err.message);
	/*
	 * MariaDB commits DDL statement by statement, so a run that dies
	 * inside a step runs its statements again: every step must bear it.
	 */
	if (f->backend == DB_BACKEND_MYSQL && version > 1 && !f->no_rerun) {
		ops_forget(f, phase, version);
		rc = ops_phase_rc(f, phase, version, &err);
		cr_assert_eq(rc, 0, "[%s] %s to %lld, run again after a crash, failed: %s",
			     bname(f), phase_name(phase), (long long)version, err.message);
	}
	err_release(&err);
	f->stage = phase == PHASE_EXPAND ? "after expand" :
		   phase == PHASE_MIGRATE ? "after migrate" : "after contract";
}

/*
 * A fresh database and a repository of v1 (and v2 if not NULL) in a
 * temporary folder; the database is brought to version 1.
 */
static void
ops_begin(struct ops *f, enum db_backend backend, const char *v1, const char *v2)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;

	memset(f, 0, sizeof(*f));
	f->backend = backend;
	test_db_create(backend, &f->db);
	f->app = test_db_connect(&f->db);
	f->tool = test_db_connect(&f->db);
	cr_assert_eq(db_url_parse(f->db.url, &f->url, &err), 0, "%s", err.message);
	f->dir = test_mkdtemp();
	test_write_file(f->dir, "repository.yaml", "id: ops\n");
	test_write_file(f->dir, "versions/001_old.yaml", v1);
	if (v2)
		test_write_file(f->dir, "versions/002_new.yaml", v2);
	ops_load(f);
	ops_phase(f, PHASE_EXPAND, 1);
	ops_phase(f, PHASE_MIGRATE, 1);
	ops_phase(f, PHASE_CONTRACT, 1);
	f->stage = "at version 1";
}

/* Put version 2 on disk after version 1 was applied, and plan again. */
static void
ops_set_v2(struct ops *f, const char *v2)
{
	test_write_file(f->dir, "versions/002_new.yaml", v2);
	state_release(&f->st);
	plan_release(&f->plan);
	catalog_release(&f->cat);
	repo_release(&f->repo);
	ops_load(f);
}

static void
ops_end(struct ops *f)
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

static void app_value(struct ops *f, const char *want, const char *sql);

/*
 * After contract nothing dbphase made for the transition is left: no
 * trigger, trigger function, shadow column or index copy named dbp_...
 * (the triggers that stand in for a constraint end in _dbp_i/_dbp_u).
 */
static void
expect_clean(struct ops *f)
{
	app_value(f, "0", BY_BACKEND(f,
		"SELECT count(*) FROM sqlite_master WHERE name LIKE 'dbp\\_%' ESCAPE '\\'",
		"SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
		"WHERE n.nspname = 'public' AND c.relname LIKE 'dbp\\_%'",
		"SELECT count(*) FROM information_schema.STATISTICS "
		"WHERE TABLE_SCHEMA = DATABASE() AND INDEX_NAME LIKE 'dbp\\_%'"));
	app_value(f, "0", BY_BACKEND(f,
		"SELECT count(*) FROM sqlite_master m, pragma_table_info(m.name) p "
		"WHERE m.type = 'table' AND p.name LIKE 'dbp\\_%' ESCAPE '\\'",
		"SELECT count(*) FROM information_schema.columns "
		"WHERE table_schema = 'public' AND column_name LIKE 'dbp\\_%'",
		"SELECT count(*) FROM information_schema.COLUMNS "
		"WHERE TABLE_SCHEMA = DATABASE() AND COLUMN_NAME LIKE 'dbp\\_%'"));
	app_value(f, "0", BY_BACKEND(f,
		"SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'dbp\\_%' "
		"ESCAPE '\\'",
		"SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgname LIKE 'dbp\\_%'",
		"SELECT count(*) FROM information_schema.TRIGGERS "
		"WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME LIKE 'dbp\\_%'"));
	if (f->backend == DB_BACKEND_POSTGRESQL)
		app_value(f, "0", "SELECT count(*) FROM pg_proc p JOIN pg_namespace n "
			  "ON n.oid = p.pronamespace WHERE n.nspname = 'public' "
			  "AND p.proname LIKE 'dbp\\_%'");
}

/* expand, migrate and contract of version 2, with the checks in between. */
#define EXPAND(f) ops_phase((f), PHASE_EXPAND, 2)
#define MIGRATE(f) ops_phase((f), PHASE_MIGRATE, 2)
#define CONTRACT(f) (ops_phase((f), PHASE_CONTRACT, 2), expect_clean(f))

/* ---- application statements ---------------------------------------------- */

/* Code's statement that must succeed. */
static void
app(struct ops *f, const char *who, const char *sql)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_result *res = NULL;

	if (db_query(f->app, sql, NULL, 0, &res, &err) < 0)
		cr_assert_fail("[%s] %s, %s code's statement failed:\n  %s\n  %s", bname(f),
			       f->stage, who, sql, err.message);
	db_result_free(res);
	err_release(&err);
}

#define OLD(f, sql) app((f), "old", (sql))
#define NEW(f, sql) app((f), "new", (sql))

/* A statement the schema must refuse. */
static void
app_fails(struct ops *f, const char *why, const char *sql)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_result *res = NULL;

	if (db_query(f->app, sql, NULL, 0, &res, &err) == 0)
		cr_assert_fail("[%s] %s: %s, yet this succeeded:\n  %s", bname(f), f->stage, why,
			       sql);
	err_release(&err);
}

/* The single value of a query (NULL for SQL NULL) must be want. */
static void
app_value(struct ops *f, const char *want, const char *sql)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_result *res = NULL;
	const char *got;

	if (db_query(f->app, sql, NULL, 0, &res, &err) < 0)
		cr_assert_fail("[%s] %s, query failed:\n  %s\n  %s", bname(f), f->stage, sql,
			       err.message);
	cr_assert_eq(res->n_rows, 1, "[%s] %s: %zu rows from\n  %s", bname(f), f->stage,
		     res->n_rows, sql);
	got = db_result_value(res, 0, 0);
	if (want == NULL)
		cr_assert_null(got, "[%s] %s: expected NULL, got '%s' from\n  %s", bname(f),
			       f->stage, got, sql);
	else
		cr_assert(got && strcmp(got, want) == 0,
			  "[%s] %s: expected '%s', got '%s' from\n  %s", bname(f), f->stage, want,
			  got ? got : "NULL", sql);
	db_result_free(res);
}

/*
 * New code writing while a phase runs, on its own connection: the inserts
 * head || id || tail for ids from first on, as fast as they go.  No insert
 * may fail: a phase that leaves a moment where new code's statements fail
 * is not zero-downtime, however short the moment.
 */
struct writer {
	pthread_t thread;
	struct db_conn *conn;
	const char *head, *tail;
	int first;
	atomic_int stop;
	int ok;			/* inserts that succeeded */
	int failed;
	char *first_error;	/* owned */
	int tolerate;		/* a server error code counted apart, or 0 */
	int tolerated;
};

static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	struct timespec pause = { 0, 200000 };
	int id = w->first;

	while (!atomic_load(&w->stop)) {
		struct dbphase_error err = DBPHASE_ERROR_INIT;
		char *sql = xasprintf("%s%d%s", w->head, id, w->tail);

		if (db_query(w->conn, sql, NULL, 0, NULL, &err) == 0)
			w->ok++;
		else if (w->tolerate && err.server_code == w->tolerate)
			w->tolerated++;
		else if (w->failed++ == 0)
			w->first_error = xasprintf("%s: %s", sql, err.message);
		id++;
		err_release(&err);
		free(sql);
		nanosleep(&pause, NULL);
	}
	return NULL;
}

static void
writer_start(struct ops *f, struct writer *w, const char *head, int first, const char *tail,
	     int tolerate)
{
	struct timespec warm = { 0, 20000000 };

	memset(w, 0, sizeof(*w));
	w->tolerate = tolerate;
	w->conn = test_db_connect(&f->db);
	w->head = head;
	w->tail = tail;
	w->first = first;
	cr_assert_eq(pthread_create(&w->thread, NULL, writer_main, w), 0);
	nanosleep(&warm, NULL);
}

static void
writer_stop(struct ops *f, struct writer *w)
{
	struct timespec cool = { 0, 20000000 };

	nanosleep(&cool, NULL);
	atomic_store(&w->stop, 1);
	pthread_join(w->thread, NULL);
	db_close(w->conn);
	cr_assert_eq(w->failed, 0, "[%s] %s, %d of new code's concurrent inserts failed; the "
		     "first: %s", bname(f), f->stage, w->failed, w->first_error);
	cr_assert_gt(w->ok, 0, "[%s] the concurrent writer wrote nothing", bname(f));
	free(w->first_error);
}

/* ---- introspection ------------------------------------------------------- */

static void
describe(struct ops *f, const char *table, struct db_table_info *info)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;

	cr_assert_eq(f->app->drv->describe_table(f->app, table, info, &err), 0,
		     "[%s] %s: describe %s: %s", bname(f), f->stage, table, err.message);
}

static bool
table_exists(struct ops *f, const char *table)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	bool exists = false;

	cr_assert_eq(f->app->drv->table_exists(f->app, table, &exists, &err), 0, "[%s] %s",
		     bname(f), err.message);
	return exists;
}

/*
 * Column name has the backend's type (exact, as introspection spells it),
 * nullability, and a default containing want_default (NULL: none).
 */
static void
expect_column(struct ops *f, const struct db_table_info *t, const char *name,
	      const char *type, bool nullable, const char *want_default)
{
	const struct db_column_info *c = db_table_info_column(t, name);

	cr_assert_not_null(c, "[%s] %s: %s has no column %s", bname(f), f->stage, t->name, name);
	cr_assert_str_eq(c->type, type, "[%s] %s: %s.%s is %s, expected %s", bname(f), f->stage,
			 t->name, name, c->type, type);
	cr_assert_eq(c->nullable, nullable, "[%s] %s: %s.%s is %s", bname(f), f->stage, t->name,
		     name, c->nullable ? "nullable" : "NOT NULL");
	if (want_default == NULL)
		cr_assert_null(c->default_expr, "[%s] %s: %s.%s has default %s", bname(f),
			       f->stage, t->name, name, c->default_expr);
	else
		cr_assert(c->default_expr && strstr(c->default_expr, want_default),
			  "[%s] %s: %s.%s has default %s, expected %s", bname(f), f->stage,
			  t->name, name, c->default_expr ? c->default_expr : "(none)",
			  want_default);
}

static void
expect_no_column(struct ops *f, const struct db_table_info *t, const char *name)
{
	cr_assert_null(db_table_info_column(t, name), "[%s] %s: %s still has column %s",
		       bname(f), f->stage, t->name, name);
}

/* Exactly these columns, in this order (comma-separated). */
static void
expect_columns(struct ops *f, const struct db_table_info *t, const char *names)
{
	struct strbuf sb = STRBUF_INIT;
	size_t i;

	for (i = 0; i < t->n_columns; i++)
		strbuf_addf(&sb, "%s%s", i ? "," : "", t->columns[i].name);
	cr_assert_str_eq(sb.buf, names, "[%s] %s: %s has columns %s, expected %s", bname(f),
			 f->stage, t->name, sb.buf, names);
	strbuf_release(&sb);
}

/* Index name exists, is valid, has this uniqueness and these columns. */
static void
expect_index(struct ops *f, const struct db_table_info *t, const char *name, bool unique,
	     const char *columns)
{
	const struct db_index_info *ix = db_table_info_index(t, name);
	struct strbuf sb = STRBUF_INIT;
	size_t i;

	cr_assert_not_null(ix, "[%s] %s: %s has no index %s", bname(f), f->stage, t->name, name);
	cr_assert(ix->valid, "[%s] %s: index %s is not valid", bname(f), f->stage, name);
	cr_assert_eq(ix->unique, unique, "[%s] %s: index %s is %sunique", bname(f), f->stage,
		     name, ix->unique ? "" : "not ");
	for (i = 0; i < ix->n_columns; i++)
		strbuf_addf(&sb, "%s%s", i ? "," : "", ix->columns[i]);
	cr_assert_str_eq(sb.buf, columns, "[%s] %s: index %s is on %s, expected %s", bname(f),
			 f->stage, name, sb.buf, columns);
	strbuf_release(&sb);
}

static void
expect_no_index(struct ops *f, const struct db_table_info *t, const char *name)
{
	cr_assert_null(db_table_info_index(t, name), "[%s] %s: %s still has index %s",
		       bname(f), f->stage, t->name, name);
}

/* Every index valid, and only the listed non-primary ones (comma-separated). */
static void
expect_indexes(struct ops *f, const struct db_table_info *t, const char *names)
{
	struct strbuf sb = STRBUF_INIT;
	size_t i;

	for (i = 0; i < t->n_indexes; i++) {
		cr_assert(t->indexes[i].valid, "[%s] %s: index %s is not valid", bname(f),
			  f->stage, t->indexes[i].name);
		if (t->indexes[i].primary)
			continue;
		strbuf_addf(&sb, "%s%s", sb.len ? "," : "", t->indexes[i].name);
	}
	cr_assert_str_eq(sb.buf, names, "[%s] %s: %s has indexes '%s', expected '%s'", bname(f),
			 f->stage, t->name, sb.buf, names);
	strbuf_release(&sb);
}

static void
expect_triggers(struct ops *f, const struct db_table_info *t, size_t n)
{
	struct strbuf sb = STRBUF_INIT;
	size_t i;

	for (i = 0; i < t->n_triggers; i++)
		strbuf_addf(&sb, " %s", t->triggers[i].name);
	cr_assert_eq(t->n_triggers, n, "[%s] %s: %s has %zu triggers (%s), expected %zu",
		     bname(f), f->stage, t->name, t->n_triggers, sb.buf, n);
	strbuf_release(&sb);
}

/* The constraint name of kind exists (validated) or not. */
static const struct db_constraint_info *
find_constraint(const struct db_table_info *t, const char *name)
{
	size_t i;

	for (i = 0; i < t->n_constraints; i++)
		if (strcmp(t->constraints[i].name, name) == 0)
			return &t->constraints[i];
	return NULL;
}

/* Constraints other than the primary key. */
static size_t
count_constraints(const struct db_table_info *t)
{
	size_t i, n = 0;

	for (i = 0; i < t->n_constraints; i++)
		n += t->constraints[i].kind != DB_CONSTRAINT_PRIMARY_KEY;
	return n;
}

/* ---- the common old schema ----------------------------------------------- */

/*
 * items: id, name (NOT NULL, indexed), n (NOT NULL DEFAULT 0), note;
 * three rows written by old code at version 1.
 */
#define ITEMS_V1 \
	"description: the old schema\n" \
	"operations:\n" \
	"  - create_table:\n" \
	"      name: items\n" \
	"      columns:\n" \
	"        - {name: id, type: integer, primary_key: true}\n" \
	"        - {name: name, type: \"varchar(100)\", nullable: false}\n" \
	"        - {name: n, type: integer, nullable: false, default: 0}\n" \
	"        - {name: note, type: \"varchar(100)\"}\n" \
	"  - add_index: {table: items, name: ix_items_name, columns: [name]}\n"

static const char items_v1[] = ITEMS_V1;

static void
items_rows(struct ops *f)
{
	OLD(f, "INSERT INTO items (id, name, n, note) VALUES (1, 'a', 1, 'x')");
	OLD(f, "INSERT INTO items (id, name, n, note) VALUES (2, 'b', 2, NULL)");
	OLD(f, "INSERT INTO items (id, name) VALUES (3, 'c')");
}

#define T_INT(f) BY_BACKEND(f, "integer", "integer", "int(11)")
#define T_BIGINT(f) BY_BACKEND(f, "integer", "bigint", "bigint(20)")
#define T_VC100(f) BY_BACKEND(f, "varchar(100)", "character varying(100)", "varchar(100)")

/*
 * Old code's whole repertoire on items, as of version 1, with fresh ids:
 * leaves row id (n = id + 1, note 'u') and row id + 1 (n and note left to
 * the schema), and deletes a third.
 */
static void
items_old_code(struct ops *f, int id)
{
	char *sql;

	sql = xasprintf("INSERT INTO items (id, name, n, note) VALUES (%d, 'old%d', %d, 'o')",
			id, id, id);
	OLD(f, sql);
	free(sql);
	sql = xasprintf("INSERT INTO items (id, name) VALUES (%d, 'old%d')", id + 1, id + 1);
	OLD(f, sql);
	free(sql);
	sql = xasprintf("INSERT INTO items (id, name, n) VALUES (%d, 'old%d', 1)", id + 2, id + 2);
	OLD(f, sql);
	free(sql);
	sql = xasprintf("UPDATE items SET n = n + 1, note = 'u' WHERE id = %d", id);
	OLD(f, sql);
	free(sql);
	OLD(f, "SELECT id, name, n, note FROM items ORDER BY id");
	sql = xasprintf("SELECT name, n, note FROM items WHERE id = %d", id);
	OLD(f, sql);
	free(sql);
	sql = xasprintf("DELETE FROM items WHERE id = %d", id + 2);
	OLD(f, sql);
	free(sql);
	OLD(f, "UPDATE items SET name = 'a' WHERE id = 1");
}

/* ---- create_table -------------------------------------------------------- */

BACKEND_TEST(ops, create_table)
{
	struct db_table_info t;
	struct ops f;

	ops_begin(&f, *backend, items_v1,
		  "operations:\n"
		  "  - create_table:\n"
		  "      name: orders\n"
		  "      columns:\n"
		  "        - {name: id, type: bigint, primary_key: true, autoincrement: true}\n"
		  "        - {name: item_id, type: integer, nullable: false}\n"
		  "        - {name: qty, type: integer, nullable: false, default: 1}\n"
		  "        - {name: label, type: \"varchar(20)\", default: \"it's new\"}\n"
		  "        - {name: placed_at, type: timestamp, nullable: false,"
		  " default: {expr: CURRENT_TIMESTAMP}}\n");
	items_rows(&f);
	EXPAND(&f);
	items_old_code(&f, 10);
	cr_assert(table_exists(&f, "orders"), "[%s] orders missing after expand", bname(&f));
	MIGRATE(&f);
	items_old_code(&f, 20);
	NEW(&f, "INSERT INTO orders (item_id) VALUES (1)");
	NEW(&f, "INSERT INTO orders (item_id, qty, label) VALUES (2, 5, 'x')");
	app_value(&f, "2", "SELECT max(id) FROM orders");
	app_value(&f, "1", "SELECT qty FROM orders WHERE id = 1");
	app_value(&f, "it's new", "SELECT label FROM orders WHERE id = 1");
	app_value(&f, "1", "SELECT count(*) FROM orders WHERE placed_at IS NOT NULL AND id = 2");
	app_fails(&f, "item_id is NOT NULL", "INSERT INTO orders (qty) VALUES (3)");
	CONTRACT(&f);
	NEW(&f, "INSERT INTO orders (item_id) VALUES (3)");
	app_value(&f, "3", "SELECT count(*) FROM orders");
	app_value(&f, "1", "SELECT count(*) FROM orders WHERE item_id = 3 AND id > 2");
	describe(&f, "orders", &t);
	expect_columns(&f, &t, "id,item_id,qty,label,placed_at");
	expect_column(&f, &t, "id", T_BIGINT(&f), false, NULL);
	cr_assert(db_table_info_column(&t, "id")->primary_key);
	expect_column(&f, &t, "item_id", T_INT(&f), false, NULL);
	expect_column(&f, &t, "qty", T_INT(&f), false, "1");
	expect_column(&f, &t, "label", BY_BACKEND(&f, "varchar(20)", "character varying(20)",
						  "varchar(20)"), true, "it''s new");
	expect_column(&f, &t, "placed_at", BY_BACKEND(&f, "timestamp", "timestamp without time zone",
						      "datetime(6)"), false,
		      BY_BACKEND(&f, "CURRENT_TIMESTAMP", "CURRENT_TIMESTAMP", "current_timestamp"));
	expect_triggers(&f, &t, 0);
	db_table_info_release(&t);
	ops_end(&f);
}

/* ---- drop_table ---------------------------------------------------------- */

BACKEND_TEST(ops, drop_table)
{
	struct ops f;

	ops_begin(&f, *backend,
		  "operations:\n"
		  "  - create_table:\n"
		  "      name: items\n"
		  "      columns:\n"
		  "        - {name: id, type: integer, primary_key: true}\n"
		  "  - create_table:\n"
		  "      name: legacy\n"
		  "      columns:\n"
		  "        - {name: id, type: integer, primary_key: true}\n"
		  "        - {name: v, type: text}\n",
		  "operations:\n"
		  "  - drop_table: {name: legacy}\n");
	OLD(&f, "INSERT INTO legacy (id, v) VALUES (1, 'one')");
	EXPAND(&f);
	OLD(&f, "INSERT INTO legacy (id, v) VALUES (2, 'two')");
	app_value(&f, "2", "SELECT count(*) FROM legacy");
	MIGRATE(&f);
	OLD(&f, "UPDATE legacy SET v = 'uno' WHERE id = 1");
	app_value(&f, "uno", "SELECT v FROM legacy WHERE id = 1");
	NEW(&f, "INSERT INTO items (id) VALUES (1)");
	CONTRACT(&f);
	cr_assert(!table_exists(&f, "legacy"), "[%s] legacy survived contract", bname(&f));
	cr_assert(table_exists(&f, "items"));
	app_value(&f, "1", "SELECT count(*) FROM items");
	ops_end(&f);
}

/* ---- rename_table -------------------------------------------------------- */

BACKEND_TEST(ops, rename_table)
{
	struct db_table_info t;
	struct writer w;
	struct ops f;

	ops_begin(&f, *backend, items_v1,
		  "operations:\n"
		  "  - rename_table: {name: items, to: products}\n");
	items_rows(&f);
	EXPAND(&f);
	items_old_code(&f, 10);
	app_value(&f, "old10", "SELECT name FROM products WHERE id = 10");
	MIGRATE(&f);
	items_old_code(&f, 20);
	/* New code reads and writes the new name; old code sees it, and back. */
	NEW(&f, "INSERT INTO products (id, name, n) VALUES (30, 'new30', 3)");
	app_value(&f, "new30", "SELECT name FROM items WHERE id = 30");
	NEW(&f, "UPDATE products SET note = 'by new' WHERE id = 1");
	app_value(&f, "by new", "SELECT note FROM items WHERE id = 1");
	OLD(&f, "UPDATE items SET note = 'by old' WHERE id = 30");
	app_value(&f, "by old", "SELECT note FROM products WHERE id = 30");
	NEW(&f, "INSERT INTO products (id, name) VALUES (31, 'new31')");
	app_value(&f, "0", "SELECT n FROM items WHERE id = 31");
	NEW(&f, "DELETE FROM products WHERE id = 31");
	app_value(&f, "0", "SELECT count(*) FROM items WHERE id = 31");
	app_value(&f, "8", "SELECT count(*) FROM products");
	/*
	 * New code writes through the new name while the view and table swap.
	 * MariaDB swaps them in one RENAME TABLE, yet a statement that opened
	 * the view just before may still fail to find the table under it
	 * (error 1356, "View ... references invalid table(s)"): a known limit
	 * of MariaDB, seen about once in tens of runs; it is counted apart and
	 * bounded here, never hidden.  The others must never fail.
	 */
	writer_start(&f, &w, "INSERT INTO products (id, name) VALUES (", 1000, ", 'w')",
		     f.backend == DB_BACKEND_MYSQL ? 1356 : 0);
	CONTRACT(&f);
	writer_stop(&f, &w);
	cr_assert_leq(w.tolerated, 2, "[%s] %d inserts through the view failed at the swap",
		      bname(&f), w.tolerated);
	cr_assert(!table_exists(&f, "items"), "[%s] items survived contract", bname(&f));
	NEW(&f, "INSERT INTO products (id, name) VALUES (40, 'new40')");
	{
		char *want = xasprintf("%d", 9 + w.ok);

		app_value(&f, want, "SELECT count(*) FROM products");
		free(want);
	}
	app_value(&f, "0", "SELECT count(*) FROM products WHERE id >= 1000 AND n <> 0");
	app_value(&f, "by new", "SELECT note FROM products WHERE id = 1");
	describe(&f, "products", &t);
	expect_columns(&f, &t, "id,name,n,note");
	expect_column(&f, &t, "name", T_VC100(&f), false, NULL);
	expect_column(&f, &t, "n", T_INT(&f), false, "0");
	expect_index(&f, &t, "ix_items_name", false, "name");
	expect_triggers(&f, &t, 0);
	db_table_info_release(&t);
	ops_end(&f);
}

/* ---- add_column ---------------------------------------------------------- */

BACKEND_TEST(ops, add_column_nullable)
{
	struct db_table_info t;
	struct ops f;

	ops_begin(&f, *backend, items_v1,
		  "operations:\n"
		  "  - add_column: {table: items, column: {name: email, type: \"varchar(255)\"}}\n");
	items_rows(&f);
	EXPAND(&f);
	items_old_code(&f, 10);
	MIGRATE(&f);
	items_old_code(&f, 20);
	NEW(&f, "INSERT INTO items (id, name, email) VALUES (30, 'new', 'a@b')");
	NEW(&f, "UPDATE items SET email = 'c@d' WHERE id = 1");
	app_value(&f, "c@d", "SELECT email FROM items WHERE id = 1");
	app_value(&f, NULL, "SELECT email FROM items WHERE id = 20");
	OLD(&f, "UPDATE items SET name = 'renamed' WHERE id = 30");
	app_value(&f, "a@b", "SELECT email FROM items WHERE id = 30");
	CONTRACT(&f);
	items_old_code(&f, 40);
	describe(&f, "items", &t);
	expect_columns(&f, &t, "id,name,n,note,email");
	expect_column(&f, &t, "email", BY_BACKEND(&f, "varchar(255)", "character varying(255)",
						  "varchar(255)"), true, NULL);
	expect_indexes(&f, &t, "ix_items_name");
	expect_triggers(&f, &t, 0);
	db_table_info_release(&t);
	ops_end(&f);
}

BACKEND_TEST(ops, add_column_with_default)
{
	struct db_table_info t;
	struct ops f;

	ops_begin(&f, *backend, items_v1,
		  "operations:\n"
		  "  - add_column:\n"
		  "      table: items\n"
		  "      column: {name: status, type: \"varchar(20)\", nullable: false, default: active}\n");
	items_rows(&f);
	EXPAND(&f);
	items_old_code(&f, 10);
	app_value(&f, "active", "SELECT status FROM items WHERE id = 1");
	app_value(&f, "active", "SELECT status FROM items WHERE id = 10");
	MIGRATE(&f);
	items_old_code(&f, 20);
	NEW(&f, "INSERT INTO items (id, name, status) VALUES (30, 'new', 'closed')");
	NEW(&f, "UPDATE items SET status = 'closed' WHERE id = 2");
	app_value(&f, "active", "SELECT status FROM items WHERE id = 20");
	app_fails(&f, "status is NOT NULL", "UPDATE items SET status = NULL WHERE id = 1");
	CONTRACT(&f);
	items_old_code(&f, 40);
	app_value(&f, "closed", "SELECT status FROM items WHERE id = 2");
	app_value(&f, "2", "SELECT count(*) FROM items WHERE status = 'active' AND id < 10");
	describe(&f, "items", &t);
	expect_column(&f, &t, "status", BY_BACKEND(&f, "varchar(20)", "character varying(20)",
						   "varchar(20)"), false, "active");
	expect_triggers(&f, &t, 0);
	db_table_info_release(&t);
	ops_end(&f);
}

BACKEND_TEST(ops, add_column_not_null_with_backfill)
{
	struct db_table_info t;
	struct ops f;

	ops_begin(&f, *backend, items_v1,
		  "operations:\n"
		  "  - add_column:\n"
		  "      table: items\n"
		  "      column: {name: code, type: \"varchar(100)\", nullable: false}\n"
		  "  - backfill: {table: items, set: {code: \"upper(name)\"}}\n");
	items_rows(&f);
	EXPAND(&f);
	/* Old code does not know the column: its inserts must not fail. */
	items_old_code(&f, 10);
	app_value(&f, "OLD10", "SELECT code FROM items WHERE id = 10");
	OLD(&f, "UPDATE items SET name = 'zz' WHERE id = 10");
	app_value(&f, "ZZ", "SELECT code FROM items WHERE id = 10");
	MIGRATE(&f);
	app_value(&f, "A", "SELECT code FROM items WHERE id = 1");
	app_value(&f, "C", "SELECT code FROM items WHERE id = 3");
	app_value(&f, "0", "SELECT count(*) FROM items WHERE code IS NULL");
	items_old_code(&f, 20);
	app_value(&f, "OLD20", "SELECT code FROM items WHERE id = 20");
	/* New code writes the column itself; the trigger leaves that alone. */
	NEW(&f, "INSERT INTO items (id, name, code) VALUES (30, 'new', 'N30')");
	app_value(&f, "N30", "SELECT code FROM items WHERE id = 30");
	NEW(&f, "UPDATE items SET name = 'newer', code = 'N30B' WHERE id = 30");
	app_value(&f, "N30B", "SELECT code FROM items WHERE id = 30");
	NEW(&f, "SELECT id, code FROM items WHERE code = 'A'");
	CONTRACT(&f);
	app_fails(&f, "code is NOT NULL now", "INSERT INTO items (id, name) VALUES (40, 'x')");
	NEW(&f, "INSERT INTO items (id, name, code) VALUES (40, 'x', 'X')");
	app_value(&f, "0", "SELECT count(*) FROM items WHERE code IS NULL");
	app_value(&f, "ZZ", "SELECT code FROM items WHERE id = 10");
	describe(&f, "items", &t);
	expect_columns(&f, &t, "id,name,n,note,code");
	expect_column(&f, &t, "code", T_VC100(&f), false, NULL);
	expect_indexes(&f, &t, "ix_items_name");
	expect_triggers(&f, &t, 0);
	cr_assert_eq(count_constraints(&t), 0, "[%s] constraints left: %zu", bname(&f),
		     count_constraints(&t));
	db_table_info_release(&t);
	ops_end(&f);
}

/* ---- drop_column --------------------------------------------------------- */

BACKEND_TEST(ops, drop_column)
{
	struct db_table_info t;
	struct ops f;

	ops_begin(&f, *backend,
		  "operations:\n"
		  "  - create_table:\n"
		  "      name: items\n"
		  "      columns:\n"
		  "        - {name: id, type: integer, primary_key: true}\n"
		  "        - {name: name, type: \"varchar(100)\", nullable: false}\n"
		  "        - {name: legacy, type: \"varchar(100)\", nullable: false}\n"
		  "        - {name: flag, type: integer}\n"
		  "  - add_index: {table: items, name: ix_items_legacy, columns: [legacy]}\n"
		  "  - add_index: {table: items, name: ix_items_name_flag, columns: [name, flag]}\n",
		  "operations:\n"
		  "  - drop_column: {table: items, column: legacy}\n"
		  "  - drop_column: {table: items, column: flag}\n");
	OLD(&f, "INSERT INTO items (id, name, legacy, flag) VALUES (1, 'a', 'l1', 1)");
	EXPAND(&f);
	OLD(&f, "INSERT INTO items (id, name, legacy, flag) VALUES (2, 'b', 'l2', 2)");
	OLD(&f, "UPDATE items SET legacy = 'l1b' WHERE id = 1");
	app_value(&f, "l1b", "SELECT legacy FROM items WHERE id = 1");
	MIGRATE(&f);
	OLD(&f, "INSERT INTO items (id, name, legacy, flag) VALUES (3, 'c', 'l3', 3)");
	app_value(&f, "3", "SELECT count(*) FROM items WHERE legacy IS NOT NULL");
	/* New code no longer knows the columns; its inserts must work. */
	NEW(&f, "INSERT INTO items (id, name) VALUES (4, 'new')");
	app_value(&f, NULL, "SELECT flag FROM items WHERE id = 4");
	OLD(&f, "SELECT legacy, flag FROM items WHERE id = 4");
	OLD(&f, "UPDATE items SET legacy = 'l4' WHERE id = 4");
	app_value(&f, "new", "SELECT name FROM items WHERE id = 4");
	CONTRACT(&f);
	NEW(&f, "INSERT INTO items (id, name) VALUES (5, 'e')");
	app_value(&f, "5", "SELECT count(*) FROM items");
	app_value(&f, "b", "SELECT name FROM items WHERE id = 2");
	describe(&f, "items", &t);
	expect_columns(&f, &t, "id,name");
	expect_no_column(&f, &t, "legacy");
	expect_no_column(&f, &t, "flag");
	expect_no_index(&f, &t, "ix_items_legacy");
	/* An index that used a dropped column goes with it on every backend. */
	expect_indexes(&f, &t, "");
	expect_triggers(&f, &t, 0);
	db_table_info_release(&t);
	ops_end(&f);
}

/* ---- rename_column ------------------------------------------------------- */

BACKEND_TEST(ops, rename_column)
{
	struct db_table_info t;
	struct writer w;
	struct ops f;

	ops_begin(&f, *backend,
		  ITEMS_V1 "  - add_index: {table: items, name: ix_items_name_n, columns: [name, n]}\n",
		  "operations:\n"
		  "  - rename_column: {table: items, from: name, to: title}\n"
		  "  - rename_column: {table: items, from: n, to: qty}\n");
	items_rows(&f);
	/* Old code keeps inserting while expand and migrate run. */
	writer_start(&f, &w, "INSERT INTO items (id, name, n) VALUES (", 100000, ", 'w', 9)", 0);
	EXPAND(&f);
	items_old_code(&f, 10);
	app_value(&f, "old10", "SELECT title FROM items WHERE id = 10");
	app_value(&f, "11", "SELECT qty FROM items WHERE id = 10");
	app_value(&f, "0", "SELECT qty FROM items WHERE id = 11");
	MIGRATE(&f);
	writer_stop(&f, &w);
	app_value(&f, "0", "SELECT count(*) FROM items WHERE title IS NULL OR qty IS NULL");
	app_value(&f, "0", "SELECT count(*) FROM items WHERE id >= 100000 AND "
		  "(title <> 'w' OR qty <> 9)");
	app_value(&f, "b", "SELECT title FROM items WHERE id = 2");
	items_old_code(&f, 20);
	/* Old code writes through the old names: new code reads them ... */
	OLD(&f, "INSERT INTO items (id, name, n) VALUES (30, 'old30', 30)");
	app_value(&f, "old30", "SELECT title FROM items WHERE id = 30");
	app_value(&f, "30", "SELECT qty FROM items WHERE id = 30");
	OLD(&f, "UPDATE items SET name = 'old30b', n = 31 WHERE id = 30");
	app_value(&f, "old30b", "SELECT title FROM items WHERE id = 30");
	app_value(&f, "31", "SELECT qty FROM items WHERE id = 30");
	/* ... and new code writes through the new ones, which old code reads. */
	NEW(&f, "INSERT INTO items (id, title, qty) VALUES (31, 'new31', 5)");
	app_value(&f, "new31", "SELECT name FROM items WHERE id = 31");
	app_value(&f, "5", "SELECT n FROM items WHERE id = 31");
	NEW(&f, "INSERT INTO items (id, title) VALUES (32, 'new32')");
	app_value(&f, "new32", "SELECT name FROM items WHERE id = 32");
	NEW(&f, "UPDATE items SET title = 'new31b', qty = 6 WHERE id = 31");
	app_value(&f, "new31b", "SELECT name FROM items WHERE id = 31");
	app_value(&f, "6", "SELECT n FROM items WHERE id = 31");
	NEW(&f, "UPDATE items SET title = 'a2' WHERE id = 1");
	app_value(&f, "a2", "SELECT name FROM items WHERE id = 1");
	OLD(&f, "UPDATE items SET name = 'a3' WHERE id = 1");
	app_value(&f, "a3", "SELECT title FROM items WHERE id = 1");
	NEW(&f, "SELECT id FROM items WHERE title = 'a3'");
	items_old_code(&f, 40);
	/* New code leaves qty to its default while contract runs. */
	writer_start(&f, &w, "INSERT INTO items (id, title) VALUES (", 1000, ", 'w')", 0);
	CONTRACT(&f);
	writer_stop(&f, &w);
	app_value(&f, "0", "SELECT count(*) FROM items WHERE id >= 1000 AND id < 100000 AND "
		  "(title IS NULL OR qty IS NULL OR qty <> 0)");
	NEW(&f, "INSERT INTO items (id, title) VALUES (50, 'new50')");
	app_value(&f, "0", "SELECT qty FROM items WHERE id = 50");
	app_fails(&f, "title is NOT NULL", "INSERT INTO items (id, qty) VALUES (51, 1)");
	app_value(&f, "a", "SELECT title FROM items WHERE id = 1");
	app_value(&f, "new31b", "SELECT title FROM items WHERE id = 31");
	app_value(&f, "new32", "SELECT title FROM items WHERE id = 32");
	app_value(&f, "31", "SELECT qty FROM items WHERE id = 30");
	describe(&f, "items", &t);
	expect_columns(&f, &t, "id,note,title,qty");
	expect_no_column(&f, &t, "name");
	expect_column(&f, &t, "title", T_VC100(&f), false, NULL);
	expect_column(&f, &t, "qty", T_INT(&f), false, "0");
	expect_index(&f, &t, "ix_items_name", false, "title");
	expect_index(&f, &t, "ix_items_name_n", false, "title,qty");
	expect_indexes(&f, &t, "ix_items_name,ix_items_name_n");
	expect_triggers(&f, &t, 0);
	db_table_info_release(&t);
	ops_end(&f);
}

/* ---- change_type --------------------------------------------------------- */

BACKEND_TEST(ops, change_type)
{
	struct db_table_info t;
	struct writer w, w2;
	struct ops f;

	ops_begin(&f, *backend,
		  "operations:\n"
		  "  - create_table:\n"
		  "      name: items\n"
		  "      columns:\n"
		  "        - {name: id, type: integer, primary_key: true}\n"
		  "        - {name: name, type: \"varchar(100)\", nullable: false}\n"
		  "        - {name: n, type: integer, nullable: false, default: 0}\n"
		  "        - {name: score, type: \"varchar(20)\"}\n"
		  "        - {name: cents, type: integer}\n"
		  "  - add_index: {table: items, name: ix_items_n, columns: [n]}\n",
		  "operations:\n"
		  "  - change_type: {table: items, column: n, to: bigint}\n"
		  "  - change_type: {table: items, column: score, to: integer}\n"
		  "  - change_type:\n"
		  "      table: items\n"
		  "      column: cents\n"
		  "      to: \"numeric(10,2)\"\n"
		  "      using: {postgresql: cents / 100.0, mysql: cents / 100, sqlite: cents / 100.0}\n");
	OLD(&f, "INSERT INTO items (id, name, n, score, cents) VALUES (1, 'a', 1, '10', 150)");
	OLD(&f, "INSERT INTO items (id, name) VALUES (2, 'b')");
	/* Old code keeps inserting while expand and migrate run. */
	writer_start(&f, &w, "INSERT INTO items (id, name, n, score, cents) VALUES (", 200000,
		     ", 'w', 8, '80', 825)", 0);
	EXPAND(&f);
	OLD(&f, "INSERT INTO items (id, name, n, score, cents) VALUES (3, 'c', 3, '30', 325)");
	OLD(&f, "INSERT INTO items (id, name) VALUES (4, 'd')");
	OLD(&f, "UPDATE items SET n = n + 100, score = '11' WHERE id = 1");
	app_value(&f, "101", "SELECT n FROM items WHERE id = 1");
	app_value(&f, "11", "SELECT score FROM items WHERE id = 1");
	MIGRATE(&f);
	writer_stop(&f, &w);
	OLD(&f, "INSERT INTO items (id, name, n, score) VALUES (5, 'e', 5, '50')");
	OLD(&f, "UPDATE items SET n = 7 WHERE id = 2");
	/* New code uses the same names; values must fit the old type until contract. */
	NEW(&f, "INSERT INTO items (id, name, n, score) VALUES (6, 'f', 6, 60)");
	NEW(&f, "UPDATE items SET n = n + 1 WHERE id = 3");
	app_value(&f, "4", "SELECT n FROM items WHERE id = 3");
	app_value(&f, "7", "SELECT n FROM items WHERE id = 2");
	app_value(&f, "60", "SELECT score FROM items WHERE id = 6");
	app_value(&f, "6", "SELECT count(*) FROM items WHERE id < 1000");
	/* New code writes n, and leaves it to its default, while the columns swap. */
	writer_start(&f, &w, "INSERT INTO items (id, name, n) VALUES (", 1000, ", 'w', 42)", 0);
	writer_start(&f, &w2, "INSERT INTO items (id, name) VALUES (", 100000, ", 'w')", 0);
	CONTRACT(&f);
	writer_stop(&f, &w);
	writer_stop(&f, &w2);
	app_value(&f, "0", "SELECT count(*) FROM items WHERE id >= 1000 AND id < 100000 "
		  "AND (n IS NULL OR n <> 42)");
	app_value(&f, "0", "SELECT count(*) FROM items WHERE id >= 100000 AND id < 200000 "
		  "AND (n IS NULL OR n <> 0)");
	app_value(&f, "0", "SELECT count(*) FROM items WHERE id >= 200000 "
		  "AND (n <> 8 OR score <> 80 OR cents <> 8.25)");
	NEW(&f, "INSERT INTO items (id, name, n, score) VALUES (7, 'g', 5000000000, 70)");
	NEW(&f, "INSERT INTO items (id, name) VALUES (8, 'h')");
	app_value(&f, "5000000000", "SELECT n FROM items WHERE id = 7");
	app_value(&f, "0", "SELECT n FROM items WHERE id = 8");
	app_value(&f, "101", "SELECT n FROM items WHERE id = 1");
	app_value(&f, "7", "SELECT n FROM items WHERE id = 2");
	app_value(&f, "4", "SELECT n FROM items WHERE id = 3");
	app_value(&f, "0", "SELECT n FROM items WHERE id = 4");
	app_value(&f, "11", "SELECT score FROM items WHERE id = 1");
	app_value(&f, "50", "SELECT score FROM items WHERE id = 5");
	app_value(&f, NULL, "SELECT score FROM items WHERE id = 2");
	app_value(&f, "61", "SELECT score + 1 FROM items WHERE id = 6");
	app_fails(&f, "n is still NOT NULL", "UPDATE items SET n = NULL WHERE id = 1");
	/* 'using' converted old rows (batches) and old code's writes (trigger). */
	app_value(&f, "1", "SELECT count(*) FROM items WHERE id = 1 AND cents = 1.5");
	app_value(&f, "1", "SELECT count(*) FROM items WHERE id = 3 AND cents = 3.25");
	app_value(&f, NULL, "SELECT cents FROM items WHERE id = 2");
	describe(&f, "items", &t);
	expect_columns(&f, &t, "id,name,n,score,cents");
	expect_column(&f, &t, "cents", BY_BACKEND(&f, "numeric(10,2)", "numeric(10,2)",
						  "decimal(10,2)"), true, NULL);
	expect_column(&f, &t, "n", T_BIGINT(&f), false, "0");
	expect_column(&f, &t, "score", T_INT(&f), true, NULL);
	expect_index(&f, &t, "ix_items_n", false, "n");
	expect_indexes(&f, &t, "ix_items_n");
	expect_triggers(&f, &t, 0);
	db_table_info_release(&t);
	ops_end(&f);
}

/* ---- defaults ------------------------------------------------------------ */

BACKEND_TEST(ops, set_default)
{
	struct db_table_info t;
	struct ops f;

	ops_begin(&f, *backend, items_v1,
		  "operations:\n"
		  "  - set_default: {table: items, column: note, default: none}\n"
		  "  - set_default: {table: items, column: n, default: 5}\n");
	items_rows(&f);
	EXPAND(&f);
	items_old_code(&f, 10);
	app_value(&f, "none", "SELECT note FROM items WHERE id = 11");
	app_value(&f, "5", "SELECT n FROM items WHERE id = 11");
	MIGRATE(&f);
	items_old_code(&f, 20);
	NEW(&f, "INSERT INTO items (id, name) VALUES (30, 'new')");
	app_value(&f, "none", "SELECT note FROM items WHERE id = 30");
	app_value(&f, NULL, "SELECT note FROM items WHERE id = 2");
	CONTRACT(&f);
	items_old_code(&f, 40);
	app_value(&f, "none", "SELECT note FROM items WHERE id = 41");
	describe(&f, "items", &t);
	expect_columns(&f, &t, "id,name,n,note");
	expect_column(&f, &t, "note", T_VC100(&f), true, "none");
	expect_column(&f, &t, "n", T_INT(&f), false, "5");
	expect_column(&f, &t, "name", T_VC100(&f), false, NULL);
	expect_indexes(&f, &t, "ix_items_name");
	db_table_info_release(&t);
	ops_end(&f);
}

BACKEND_TEST(ops, drop_default)
{
	struct db_table_info t;
	struct ops f;

	ops_begin(&f, *backend, items_v1,
		  "operations:\n"
		  "  - drop_default: {table: items, column: n}\n");
	items_rows(&f);
	EXPAND(&f);
	/* Old code leaves n out of some inserts: the default must stay. */
	items_old_code(&f, 10);
	app_value(&f, "0", "SELECT n FROM items WHERE id = 11");
	MIGRATE(&f);
	items_old_code(&f, 20);
	NEW(&f, "INSERT INTO items (id, name, n) VALUES (30, 'new', 3)");
	CONTRACT(&f);
	NEW(&f, "INSERT INTO items (id, name, n) VALUES (40, 'new', 4)");
	app_fails(&f, "n has no default any more", "INSERT INTO items (id, name) VALUES (41, 'x')");
	app_value(&f, "0", "SELECT n FROM items WHERE id = 3");
	describe(&f, "items", &t);
	expect_columns(&f, &t, "id,name,n,note");
	expect_column(&f, &t, "n", T_INT(&f), false, NULL);
	expect_column(&f, &t, "note", T_VC100(&f), true, NULL);
	expect_indexes(&f, &t, "ix_items_name");
	db_table_info_release(&t);
	ops_end(&f);
}

/* ---- nullability --------------------------------------------------------- */

BACKEND_TEST(ops, set_not_null)
{
	struct db_table_info t;
	struct ops f;

	ops_begin(&f, *backend, items_v1,
		  "operations:\n"
		  "  - backfill: {table: items, set: {note: \"'-'\"}, where: note IS NULL}\n"
		  "  - set_not_null: {table: items, column: note}\n");
	items_rows(&f);
	EXPAND(&f);
	/* Old code always writes note by now, but rows it wrote before may lack it. */
	OLD(&f, "INSERT INTO items (id, name, note) VALUES (10, 'old', 'o')");
	OLD(&f, "UPDATE items SET n = n + 1 WHERE id = 2");
	OLD(&f, "UPDATE items SET name = 'cc' WHERE id = 3");
	app_value(&f, NULL, "SELECT note FROM items WHERE id = 2");
	MIGRATE(&f);
	app_value(&f, "-", "SELECT note FROM items WHERE id = 2");
	app_value(&f, "-", "SELECT note FROM items WHERE id = 3");
	app_value(&f, "x", "SELECT note FROM items WHERE id = 1");
	OLD(&f, "INSERT INTO items (id, name, note) VALUES (11, 'old', 'o')");
	OLD(&f, "UPDATE items SET n = n + 1 WHERE id = 2");
	NEW(&f, "INSERT INTO items (id, name, note) VALUES (12, 'new', 'n')");
	CONTRACT(&f);
	app_fails(&f, "note is NOT NULL", "INSERT INTO items (id, name) VALUES (20, 'x')");
	app_fails(&f, "note is NOT NULL", "UPDATE items SET note = NULL WHERE id = 1");
	NEW(&f, "INSERT INTO items (id, name, note) VALUES (20, 'x', 'y')");
	app_value(&f, "4", "SELECT n FROM items WHERE id = 2");
	describe(&f, "items", &t);
	expect_columns(&f, &t, "id,name,n,note");
	expect_column(&f, &t, "note", T_VC100(&f), false, NULL);
	expect_column(&f, &t, "n", T_INT(&f), false, "0");
	expect_indexes(&f, &t, "ix_items_name");
	expect_triggers(&f, &t, 0);
	cr_assert_eq(count_constraints(&t), 0, "[%s] constraints left: %zu", bname(&f),
		     count_constraints(&t));
	db_table_info_release(&t);
	ops_end(&f);
}

BACKEND_TEST(ops, drop_not_null)
{
	struct db_table_info t;
	struct ops f;

	ops_begin(&f, *backend, items_v1,
		  "operations:\n"
		  "  - drop_not_null: {table: items, column: name}\n");
	items_rows(&f);
	EXPAND(&f);
	items_old_code(&f, 10);
	MIGRATE(&f);
	items_old_code(&f, 20);
	NEW(&f, "INSERT INTO items (id) VALUES (30)");
	NEW(&f, "UPDATE items SET name = NULL WHERE id = 1");
	OLD(&f, "SELECT name FROM items WHERE id = 30");
	OLD(&f, "UPDATE items SET name = 'back' WHERE id = 30");
	app_value(&f, "back", "SELECT name FROM items WHERE id = 30");
	CONTRACT(&f);
	NEW(&f, "INSERT INTO items (id) VALUES (40)");
	app_value(&f, NULL, "SELECT name FROM items WHERE id = 1");
	describe(&f, "items", &t);
	expect_columns(&f, &t, "id,name,n,note");
	expect_column(&f, &t, "name", T_VC100(&f), true, NULL);
	expect_column(&f, &t, "n", T_INT(&f), false, "0");
	expect_index(&f, &t, "ix_items_name", false, "name");
	db_table_info_release(&t);
	ops_end(&f);
}

/*
 * Changing NOT NULL or a default rebuilds the table on SQLite: the ids
 * AUTOINCREMENT handed out before must not come back.
 */
BACKEND_TEST(ops, nullability_change_keeps_autoincrement)
{
	struct ops f;

	ops_begin(&f, *backend,
		  "operations:\n"
		  "  - create_table:\n"
		  "      name: items\n"
		  "      columns:\n"
		  "        - {name: id, type: bigint, primary_key: true, autoincrement: true}\n"
		  "        - {name: v, type: \"varchar(10)\"}\n",
		  "operations:\n"
		  "  - set_not_null: {table: items, column: v}\n"
		  "  - set_default: {table: items, column: v, default: z}\n");
	OLD(&f, "INSERT INTO items (v) VALUES ('a')");
	OLD(&f, "INSERT INTO items (v) VALUES ('b')");
	OLD(&f, "INSERT INTO items (v) VALUES ('c')");
	OLD(&f, "DELETE FROM items WHERE id = 3");
	EXPAND(&f);
	MIGRATE(&f);
	CONTRACT(&f);
	NEW(&f, "INSERT INTO items (v) VALUES ('d')");
	NEW(&f, BY_BACKEND(&f, "INSERT INTO items DEFAULT VALUES", "INSERT INTO items DEFAULT VALUES",
			   "INSERT INTO items () VALUES ()"));
	app_value(&f, "4", "SELECT id FROM items WHERE v = 'd'");
	app_value(&f, "5", "SELECT id FROM items WHERE v = 'z'");
	app_value(&f, "0", "SELECT count(*) FROM items WHERE id = 3");
	ops_end(&f);
}

/* ---- indexes ------------------------------------------------------------- */

BACKEND_TEST(ops, add_index)
{
	struct db_table_info t;
	struct ops f;

	ops_begin(&f, *backend, items_v1,
		  "operations:\n"
		  "  - add_index: {table: items, name: ix_items_note, columns: [note, n]}\n"
		  "  - add_index: {table: items, name: ux_items_n_id, columns: [n, id], unique: true}\n");
	items_rows(&f);
	EXPAND(&f);
	items_old_code(&f, 10);
	describe(&f, "items", &t);
	expect_index(&f, &t, "ix_items_note", false, "note,n");
	expect_index(&f, &t, "ux_items_n_id", true, "n,id");
	db_table_info_release(&t);
	MIGRATE(&f);
	items_old_code(&f, 20);
	NEW(&f, "SELECT id FROM items WHERE note = 'x' AND n = 1");
	CONTRACT(&f);
	items_old_code(&f, 40);
	describe(&f, "items", &t);
	expect_index(&f, &t, "ix_items_note", false, "note,n");
	expect_index(&f, &t, "ux_items_n_id", true, "n,id");
	expect_indexes(&f, &t, "ix_items_name,ix_items_note,ux_items_n_id");
	db_table_info_release(&t);
	ops_end(&f);
}

BACKEND_TEST(ops, drop_index)
{
	struct db_table_info t;
	struct ops f;

	ops_begin(&f, *backend, items_v1,
		  "operations:\n"
		  "  - drop_index: {name: ix_items_name}\n");
	items_rows(&f);
	EXPAND(&f);
	items_old_code(&f, 10);
	describe(&f, "items", &t);
	expect_index(&f, &t, "ix_items_name", false, "name");
	db_table_info_release(&t);
	MIGRATE(&f);
	items_old_code(&f, 20);
	describe(&f, "items", &t);
	expect_index(&f, &t, "ix_items_name", false, "name");
	db_table_info_release(&t);
	CONTRACT(&f);
	items_old_code(&f, 40);
	describe(&f, "items", &t);
	expect_indexes(&f, &t, "");
	db_table_info_release(&t);
	app_value(&f, "9", "SELECT count(*) FROM items");
	ops_end(&f);
}

/* ---- constraints --------------------------------------------------------- */

BACKEND_TEST(ops, add_unique)
{
	struct db_table_info t;
	struct ops f;

	ops_begin(&f, *backend, items_v1,
		  "operations:\n"
		  "  - add_unique: {table: items, name: uq_items_name_n, columns: [name, n]}\n");
	items_rows(&f);
	EXPAND(&f);
	items_old_code(&f, 10);
	app_fails(&f, "(name, n) is unique", "INSERT INTO items (id, name, n) VALUES (90, 'a', 1)");
	MIGRATE(&f);
	items_old_code(&f, 20);
	NEW(&f, "INSERT INTO items (id, name, n) VALUES (30, 'a', 30)");
	app_fails(&f, "(name, n) is unique", "INSERT INTO items (id, name, n) VALUES (31, 'a', 30)");
	CONTRACT(&f);
	items_old_code(&f, 40);
	app_fails(&f, "(name, n) is unique", "UPDATE items SET n = 30, name = 'a' WHERE id = 2");
	describe(&f, "items", &t);
	expect_index(&f, &t, "uq_items_name_n", true, "name,n");
	/* SQLite cannot add a table constraint: its unique index is the constraint. */
	if (f.backend != DB_BACKEND_SQLITE) {
		cr_assert_not_null(find_constraint(&t, "uq_items_name_n"),
				   "[%s] no unique constraint uq_items_name_n", bname(&f));
		cr_assert_eq(find_constraint(&t, "uq_items_name_n")->kind, DB_CONSTRAINT_UNIQUE);
	}
	db_table_info_release(&t);
	ops_end(&f);
}

BACKEND_TEST(ops, add_check)
{
	struct db_table_info t;
	struct ops f;

	ops_begin(&f, *backend, items_v1,
		  "operations:\n"
		  "  - add_check: {table: items, name: ck_items_n, check: \"n >= 0 AND n < 1000\"}\n");
	items_rows(&f);
	EXPAND(&f);
	items_old_code(&f, 10);
	MIGRATE(&f);
	items_old_code(&f, 20);
	app_fails(&f, "the check holds from migrate on",
		  "INSERT INTO items (id, name, n) VALUES (30, 'x', -1)");
	app_fails(&f, "the check holds from migrate on", "UPDATE items SET n = 5000 WHERE id = 1");
	NEW(&f, "INSERT INTO items (id, name, n) VALUES (30, 'x', 999)");
	CONTRACT(&f);
	items_old_code(&f, 40);
	app_fails(&f, "the check holds", "UPDATE items SET n = -5 WHERE id = 1");
	app_value(&f, "1", "SELECT n FROM items WHERE id = 1");
	describe(&f, "items", &t);
	if (f.backend != DB_BACKEND_POSTGRESQL) {
		/*
		 * Triggers stand in for the constraint (MariaDB would copy the
		 * table under a write lock to add one): they stay.
		 */
		expect_triggers(&f, &t, 2);
		cr_assert_null(find_constraint(&t, "ck_items_n"));
	} else {
		cr_assert_not_null(find_constraint(&t, "ck_items_n"), "[%s] no ck_items_n",
				   bname(&f));
		cr_assert(find_constraint(&t, "ck_items_n")->validated,
			  "[%s] ck_items_n is not validated", bname(&f));
		expect_triggers(&f, &t, 0);
	}
	db_table_info_release(&t);
	ops_end(&f);
}

BACKEND_TEST(ops, add_check_refuses_bad_rows)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct ops f;
	int rc;

	ops_begin(&f, *backend, items_v1,
		  "operations:\n"
		  "  - add_check: {table: items, name: ck_items_n, check: \"n < 2\"}\n");
	items_rows(&f);
	EXPAND(&f);
	rc = ops_phase_rc(&f, PHASE_MIGRATE, 2, &err);
	cr_assert_neq(rc, 0, "[%s] migrate validated a check that row 2 breaks", bname(&f));
	err_release(&err);
	/* Fixed data: the same command succeeds. */
	OLD(&f, "UPDATE items SET n = 0 WHERE id = 2");
	MIGRATE(&f);
	app_fails(&f, "the check holds", "UPDATE items SET n = 5 WHERE id = 1");
	ops_end(&f);
}

static const char owners_v1[] =
	"operations:\n"
	"  - create_table:\n"
	"      name: owners\n"
	"      columns:\n"
	"        - {name: id, type: integer, primary_key: true}\n"
	"  - create_table:\n"
	"      name: items\n"
	"      columns:\n"
	"        - {name: id, type: integer, primary_key: true}\n"
	"        - {name: owner_id, type: integer}\n"
	"  - add_index: {table: items, name: ix_items_owner, columns: [owner_id]}\n";

BACKEND_TEST(ops, add_foreign_key)
{
	struct db_table_info t;
	struct ops f;

	ops_begin(&f, *backend, owners_v1,
		  "operations:\n"
		  "  - add_foreign_key: {table: items, name: fk_items_owner, columns: [owner_id],"
		  " references: owners, on_delete: cascade}\n");
	OLD(&f, "INSERT INTO owners (id) VALUES (1)");
	OLD(&f, "INSERT INTO owners (id) VALUES (2)");
	OLD(&f, "INSERT INTO items (id, owner_id) VALUES (1, 1)");
	OLD(&f, "INSERT INTO items (id, owner_id) VALUES (2, NULL)");
	EXPAND(&f);
	OLD(&f, "INSERT INTO items (id, owner_id) VALUES (3, 2)");
	OLD(&f, "UPDATE items SET owner_id = 1 WHERE id = 3");
	MIGRATE(&f);
	OLD(&f, "INSERT INTO items (id, owner_id) VALUES (4, 2)");
	NEW(&f, "INSERT INTO items (id, owner_id) VALUES (5, NULL)");
	app_fails(&f, "the key holds from migrate on",
		  "INSERT INTO items (id, owner_id) VALUES (6, 99)");
	app_fails(&f, "the key holds from migrate on", "UPDATE items SET owner_id = 99 WHERE id = 1");
	CONTRACT(&f);
	OLD(&f, "INSERT INTO owners (id) VALUES (3)");
	NEW(&f, "INSERT INTO items (id, owner_id) VALUES (7, 3)");
	app_fails(&f, "the key holds", "INSERT INTO items (id, owner_id) VALUES (8, 98)");
	app_value(&f, "6", "SELECT count(*) FROM items");
	describe(&f, "items", &t);
	if (f.backend == DB_BACKEND_SQLITE) {
		expect_triggers(&f, &t, 2);
	} else {
		const struct db_constraint_info *c = find_constraint(&t, "fk_items_owner");

		cr_assert_not_null(c, "[%s] no fk_items_owner", bname(&f));
		cr_assert_eq(c->kind, DB_CONSTRAINT_FOREIGN_KEY);
		cr_assert(c->validated, "[%s] fk_items_owner is not validated", bname(&f));
		cr_assert(c->definition && strstr(c->definition, "CASCADE"),
			  "[%s] fk_items_owner: %s", bname(&f), c->definition);
		expect_triggers(&f, &t, 0);
		/* ON DELETE CASCADE is part of the key. */
		OLD(&f, "DELETE FROM owners WHERE id = 3");
		app_value(&f, "0", "SELECT count(*) FROM items WHERE id = 7");
	}
	db_table_info_release(&t);
	ops_end(&f);
}

BACKEND_TEST(ops, add_foreign_key_refuses_orphans)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct ops f;
	int rc;

	ops_begin(&f, *backend, owners_v1,
		  "operations:\n"
		  "  - add_foreign_key: {table: items, name: fk_items_owner, columns: [owner_id],"
		  " references: owners}\n");
	OLD(&f, "INSERT INTO owners (id) VALUES (1)");
	OLD(&f, "INSERT INTO items (id, owner_id) VALUES (1, 1)");
	OLD(&f, "INSERT INTO items (id, owner_id) VALUES (2, 77)");
	EXPAND(&f);
	rc = ops_phase_rc(&f, PHASE_MIGRATE, 2, &err);
	cr_assert_neq(rc, 0, "[%s] migrate validated a foreign key that row 2 breaks", bname(&f));
	err_release(&err);
	OLD(&f, "UPDATE items SET owner_id = NULL WHERE id = 2");
	MIGRATE(&f);
	app_fails(&f, "the key holds", "INSERT INTO items (id, owner_id) VALUES (3, 78)");
	ops_end(&f);
}

BACKEND_TEST(ops, drop_constraint)
{
	struct db_table_info t;
	struct ops f;

	ops_begin(&f, *backend,
		  "operations:\n"
		  "  - create_table:\n"
		  "      name: owners\n"
		  "      columns:\n"
		  "        - {name: id, type: integer, primary_key: true}\n"
		  "  - create_table:\n"
		  "      name: items\n"
		  "      columns:\n"
		  "        - {name: id, type: integer, primary_key: true}\n"
		  "        - {name: n, type: integer, nullable: false, default: 0}\n"
		  "        - {name: code, type: \"varchar(10)\"}\n"
		  "        - {name: owner_id, type: integer}\n"
		  "  - add_check: {table: items, name: ck_items_n, check: \"n >= 0\"}\n"
		  "  - add_unique: {table: items, name: uq_items_code, columns: [code]}\n"
		  "  - add_foreign_key: {table: items, name: fk_items_owner, columns: [owner_id],"
		  " references: owners}\n",
		  "operations:\n"
		  "  - drop_constraint: {table: items, name: ck_items_n}\n"
		  "  - drop_constraint: {table: items, name: uq_items_code}\n"
		  "  - drop_constraint: {table: items, name: fk_items_owner}\n");
	OLD(&f, "INSERT INTO owners (id) VALUES (1)");
	OLD(&f, "INSERT INTO items (id, n, code, owner_id) VALUES (1, 1, 'a', 1)");
	app_fails(&f, "the key holds at version 1",
		  "INSERT INTO items (id, n, owner_id) VALUES (2, 1, 9)");
	app_fails(&f, "the check holds at version 1", "INSERT INTO items (id, n) VALUES (2, -1)");
	EXPAND(&f);
	OLD(&f, "INSERT INTO items (id, n, code) VALUES (2, 2, 'b')");
	app_fails(&f, "old code may rely on the check until contract",
		  "INSERT INTO items (id, n) VALUES (3, -1)");
	app_fails(&f, "old code may rely on the unique until contract",
		  "INSERT INTO items (id, n, code) VALUES (3, 3, 'a')");
	MIGRATE(&f);
	OLD(&f, "INSERT INTO items (id, n, code) VALUES (3, 3, 'c')");
	app_fails(&f, "old code may rely on the check until contract",
		  "INSERT INTO items (id, n) VALUES (4, -1)");
	app_fails(&f, "old code may rely on the key until contract",
		  "INSERT INTO items (id, n, owner_id) VALUES (4, 1, 9)");
	CONTRACT(&f);
	NEW(&f, "INSERT INTO items (id, n, code, owner_id) VALUES (4, -1, 'a', 9)");
	NEW(&f, "UPDATE items SET n = -2 WHERE id = 1");
	app_value(&f, "2", "SELECT count(*) FROM items WHERE code = 'a'");
	describe(&f, "items", &t);
	cr_assert_null(find_constraint(&t, "ck_items_n"), "[%s] ck_items_n survived", bname(&f));
	cr_assert_null(find_constraint(&t, "uq_items_code"), "[%s] uq_items_code survived",
		       bname(&f));
	cr_assert_eq(count_constraints(&t), 0, "[%s] %zu constraints survived", bname(&f),
		     count_constraints(&t));
	/* MariaDB keeps the index it made for the foreign key. */
	expect_indexes(&f, &t, f.backend == DB_BACKEND_MYSQL ? "fk_items_owner" : "");
	expect_triggers(&f, &t, 0);
	db_table_info_release(&t);
	ops_end(&f);
}

/* ---- backfill ------------------------------------------------------------ */

BACKEND_TEST(ops, backfill_derived_value)
{
	struct db_table_info t;
	struct ops f;

	ops_begin(&f, *backend, items_v1,
		  "operations:\n"
		  "  - add_column: {table: items, column: {name: name_len, type: integer}}\n"
		  "  - backfill:\n"
		  "      table: items\n"
		  "      set: {name_len: {postgresql: \"length(name) + n\", mysql: \"char_length(name) + n\","
		  " sqlite: \"length(name) + n\"}}\n"
		  "      where: name_len IS NULL\n");
	f.batch_size = 2;
	items_rows(&f);
	EXPAND(&f);
	items_old_code(&f, 10);
	/* Rows old code writes get the value from the trigger ... */
	app_value(&f, "16", "SELECT name_len FROM items WHERE id = 10");
	app_value(&f, "5", "SELECT name_len FROM items WHERE id = 11");
	OLD(&f, "UPDATE items SET name = 'abcdefgh' WHERE id = 10");
	app_value(&f, "19", "SELECT name_len FROM items WHERE id = 10");
	OLD(&f, "UPDATE items SET n = 0 WHERE id = 10");
	app_value(&f, "8", "SELECT name_len FROM items WHERE id = 10");
	/* ... and rows from before are filled by the batches. */
	app_value(&f, NULL, "SELECT name_len FROM items WHERE id = 2");
	MIGRATE(&f);
	app_value(&f, "2", "SELECT name_len FROM items WHERE id = 1");
	app_value(&f, "3", "SELECT name_len FROM items WHERE id = 2");
	app_value(&f, "1", "SELECT name_len FROM items WHERE id = 3");
	app_value(&f, "0", "SELECT count(*) FROM items WHERE name_len IS NULL");
	items_old_code(&f, 20);
	app_value(&f, "26", "SELECT name_len FROM items WHERE id = 20");
	NEW(&f, "SELECT id FROM items WHERE name_len > 3");
	/* What new code writes to the column itself stays, until old code changes the row. */
	NEW(&f, "INSERT INTO items (id, name, name_len) VALUES (25, 'nn', 99)");
	app_value(&f, "99", "SELECT name_len FROM items WHERE id = 25");
	NEW(&f, "UPDATE items SET name_len = 77, n = 3 WHERE id = 25");
	app_value(&f, "77", "SELECT name_len FROM items WHERE id = 25");
	OLD(&f, "UPDATE items SET name = 'abc' WHERE id = 25");
	app_value(&f, "6", "SELECT name_len FROM items WHERE id = 25");
	CONTRACT(&f);
	/* No trigger any more: new code keeps the value itself. */
	NEW(&f, "INSERT INTO items (id, name) VALUES (30, 'x')");
	app_value(&f, NULL, "SELECT name_len FROM items WHERE id = 30");
	app_value(&f, "8", "SELECT name_len FROM items WHERE id = 10");
	describe(&f, "items", &t);
	expect_column(&f, &t, "name_len", T_INT(&f), true, NULL);
	expect_triggers(&f, &t, 0);
	db_table_info_release(&t);
	ops_end(&f);
}

/*
 * A column split in two, both ways: old code writes fullname, new code
 * first_name and last_name, and each reads what the other wrote.
 */
BACKEND_TEST(ops, backfill_two_way)
{
	struct db_table_info t;
	struct ops f;
	char *v2;

	ops_begin(&f, *backend,
		  "operations:\n"
		  "  - create_table:\n"
		  "      name: people\n"
		  "      columns:\n"
		  "        - {name: id, type: integer, primary_key: true}\n"
		  "        - {name: fullname, type: \"varchar(64)\"}\n"
		  "        - {name: age, type: integer}\n",
		  NULL);
	v2 = xasprintf("operations:\n"
		       "  - add_column: {table: people, column: {name: first_name, type: \"varchar(32)\"}}\n"
		       "  - add_column: {table: people, column: {name: last_name, type: \"varchar(32)\"}}\n"
		       "  - backfill:\n"
		       "      table: people\n"
		       "      set: {first_name: \"%s\", last_name: \"%s\"}\n"
		       "      reverse: {fullname: \"%s\"}\n"
		       "  - drop_column: {table: people, column: fullname}\n",
		       BY_BACKEND(&f, "substr(fullname, 1, instr(fullname, ' ') - 1)",
				  "split_part(fullname, ' ', 1)", "SUBSTRING_INDEX(fullname, ' ', 1)"),
		       BY_BACKEND(&f, "substr(fullname, instr(fullname, ' ') + 1)",
				  "split_part(fullname, ' ', 2)", "SUBSTRING_INDEX(fullname, ' ', -1)"),
		       BY_BACKEND(&f, "first_name || ' ' || last_name", "first_name || ' ' || last_name",
				  "CONCAT(first_name, ' ', last_name)"));
	ops_set_v2(&f, v2);
	free(v2);
	f.batch_size = 2;
	OLD(&f, "INSERT INTO people (id, fullname, age) VALUES (1, 'Ann Smith', 30)");
	OLD(&f, "INSERT INTO people (id, fullname, age) VALUES (2, 'Bob Brown', 40)");
	OLD(&f, "INSERT INTO people (id, fullname) VALUES (3, 'Cid Jones')");
	EXPAND(&f);
	OLD(&f, "INSERT INTO people (id, fullname, age) VALUES (10, 'Dan Gray', 50)");
	app_value(&f, "Dan", "SELECT first_name FROM people WHERE id = 10");
	app_value(&f, "Gray", "SELECT last_name FROM people WHERE id = 10");
	OLD(&f, "UPDATE people SET age = 51 WHERE id = 10");
	app_value(&f, "Gray", "SELECT last_name FROM people WHERE id = 10");
	OLD(&f, "UPDATE people SET fullname = 'Dan White' WHERE id = 10");
	app_value(&f, "White", "SELECT last_name FROM people WHERE id = 10");
	MIGRATE(&f);
	app_value(&f, "Ann", "SELECT first_name FROM people WHERE id = 1");
	app_value(&f, "Jones", "SELECT last_name FROM people WHERE id = 3");
	/* The batches did not write fullname back. */
	app_value(&f, "Bob Brown", "SELECT fullname FROM people WHERE id = 2");
	/* New code writes the new columns; old code reads fullname. */
	NEW(&f, "INSERT INTO people (id, first_name, last_name, age) VALUES (20, 'Eve', 'Black', 20)");
	app_value(&f, "Eve Black", "SELECT fullname FROM people WHERE id = 20");
	NEW(&f, "UPDATE people SET last_name = 'Green' WHERE id = 20");
	app_value(&f, "Eve Green", "SELECT fullname FROM people WHERE id = 20");
	NEW(&f, "UPDATE people SET first_name = 'Anne' WHERE id = 1");
	app_value(&f, "Anne Smith", "SELECT fullname FROM people WHERE id = 1");
	NEW(&f, "UPDATE people SET age = 31 WHERE id = 1");
	app_value(&f, "Anne Smith", "SELECT fullname FROM people WHERE id = 1");
	/* Old code writes fullname; new code reads the new columns. */
	OLD(&f, "UPDATE people SET fullname = 'Eva Green' WHERE id = 20");
	app_value(&f, "Eva", "SELECT first_name FROM people WHERE id = 20");
	app_value(&f, "Green", "SELECT last_name FROM people WHERE id = 20");
	OLD(&f, "INSERT INTO people (id, fullname) VALUES (21, 'Fay Hill')");
	app_value(&f, "Hill", "SELECT last_name FROM people WHERE id = 21");
	app_value(&f, "0", "SELECT count(*) FROM people WHERE first_name IS NULL OR last_name IS NULL "
		  "OR fullname IS NULL");
	CONTRACT(&f);
	NEW(&f, "INSERT INTO people (id, first_name, last_name) VALUES (30, 'Gus', 'Ray')");
	app_value(&f, "Anne", "SELECT first_name FROM people WHERE id = 1");
	app_value(&f, "White", "SELECT last_name FROM people WHERE id = 10");
	app_value(&f, "7", "SELECT count(*) FROM people");
	describe(&f, "people", &t);
	expect_columns(&f, &t, "id,age,first_name,last_name");
	expect_triggers(&f, &t, 0);
	db_table_info_release(&t);
	ops_end(&f);
}

BACKEND_TEST(ops, backfill_one_off_applies_once)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_table_info t;
	struct ops f;
	int id, rc;

	ops_begin(&f, *backend, items_v1,
		  "operations:\n"
		  "  - backfill: {table: items, set: {n: n + 1}}\n");
	f.no_rerun = true;	/* forgetting the checkpoints would apply it twice */
	for (id = 1; id <= 9; id++) {
		char *sql = xasprintf("INSERT INTO items (id, name, n) VALUES (%d, 'r%d', %d)", id,
				      id, id * 10);

		OLD(&f, sql);
		free(sql);
	}
	EXPAND(&f);
	/* A one-off fix has no trigger: old code's writes are not touched. */
	OLD(&f, "INSERT INTO items (id, name, n) VALUES (100, 'late', 100)");
	app_value(&f, "100", "SELECT n FROM items WHERE id = 100");
	describe(&f, "items", &t);
	expect_triggers(&f, &t, 0);
	db_table_info_release(&t);
	/* Batches of 2, stopped after the second: a resumable interruption. */
	f.batch_size = 2;
	f.stop_after_batches = 2;
	rc = ops_phase_rc(&f, PHASE_MIGRATE, 2, &err);
	cr_assert_eq(rc, DBPHASE_EINTERRUPTED, "[%s] migrate gave %d: %s", bname(&f), rc,
		     err.message);
	err_release(&err);
	app_value(&f, "4", "SELECT count(*) FROM items WHERE n = id * 10 + 1");
	f.stop = 0;
	f.stop_after_batches = 0;
	MIGRATE(&f);
	/* Each row exactly once, the late one included. */
	app_value(&f, "9", "SELECT count(*) FROM items WHERE n = id * 10 + 1 AND id < 100");
	app_value(&f, "101", "SELECT n FROM items WHERE id = 100");
	/* Migrating again changes nothing. */
	MIGRATE(&f);
	app_value(&f, "9", "SELECT count(*) FROM items WHERE n = id * 10 + 1 AND id < 100");
	items_old_code(&f, 20);
	app_value(&f, "21", "SELECT n FROM items WHERE id = 20");
	CONTRACT(&f);
	app_value(&f, "9", "SELECT count(*) FROM items WHERE n = id * 10 + 1 AND id < 100");
	app_value(&f, "101", "SELECT n FROM items WHERE id = 100");
	ops_end(&f);
}

/* ---- sql ----------------------------------------------------------------- */

BACKEND_TEST(ops, sql)
{
	struct ops f;

	ops_begin(&f, *backend, items_v1,
		  "operations:\n"
		  "  - sql:\n"
		  "      phase: expand\n"
		  "      all: CREATE TABLE audit (id integer PRIMARY KEY, what varchar(20))\n"
		  "  - sql:\n"
		  "      phase: migrate\n"
		  "      postgresql: UPDATE items SET note = 'pg' WHERE note IS NULL\n"
		  "      mysql: UPDATE items SET note = 'my' WHERE note IS NULL\n"
		  "      sqlite:\n"
		  "        - UPDATE items SET note = 'lite' WHERE note IS NULL\n"
		  "        - INSERT INTO audit (id, what) VALUES (1, 'lite')\n"
		  "  - sql:\n"
		  "      phase: contract\n"
		  "      all: DELETE FROM items WHERE id = 3\n");
	f.no_rerun = true;	/* the author's SQL is the author's to make re-runnable */
	items_rows(&f);
	EXPAND(&f);
	cr_assert(table_exists(&f, "audit"), "[%s] expand did not run the expand SQL", bname(&f));
	app_value(&f, NULL, "SELECT note FROM items WHERE id = 2");
	items_old_code(&f, 10);
	MIGRATE(&f);
	app_value(&f, BY_BACKEND(&f, "lite", "pg", "my"), "SELECT note FROM items WHERE id = 2");
	app_value(&f, BY_BACKEND(&f, "1", "0", "0"), "SELECT count(*) FROM audit");
	app_value(&f, "1", "SELECT count(*) FROM items WHERE id = 3");
	CONTRACT(&f);
	app_value(&f, "0", "SELECT count(*) FROM items WHERE id = 3");
	app_value(&f, "4", "SELECT count(*) FROM items");
	ops_end(&f);
}

/* ---- operations together ------------------------------------------------- */

/*
 * One release with every shape at once on one table, as upgrades are
 * written in practice: the triggers of different operations meet in the
 * same rows, and SQLite's table rebuilds must carry the others' triggers.
 */
BACKEND_TEST(ops, one_release_with_every_shape)
{
	struct db_table_info t;
	struct writer w;
	struct ops f;
	char *v2;

	ops_begin(&f, *backend,
		  "operations:\n"
		  "  - create_table:\n"
		  "      name: accounts\n"
		  "      columns:\n"
		  "        - {name: id, type: bigint, primary_key: true, autoincrement: true}\n"
		  "        - {name: name, type: \"varchar(48)\", nullable: false}\n"
		  "        - {name: email, type: \"varchar(64)\", nullable: false}\n"
		  "        - {name: score, type: integer, nullable: false, default: 0}\n"
		  "        - {name: fullname, type: \"varchar(64)\"}\n"
		  "        - {name: legacy, type: \"varchar(16)\", nullable: false}\n"
		  "  - add_index: {table: accounts, name: ux_accounts_name, columns: [name], unique: true}\n",
		  NULL);
	v2 = xasprintf("operations:\n"
		       "  - rename_column: {table: accounts, from: name, to: display_name}\n"
		       "  - change_type: {table: accounts, column: score, to: bigint}\n"
		       "  - add_column:\n"
		       "      table: accounts\n"
		       "      column: {name: email_lower, type: \"varchar(64)\", nullable: false}\n"
		       "  - backfill: {table: accounts, set: {email_lower: lower(email)}}\n"
		       "  - add_column: {table: accounts, column: {name: first_name, type: \"varchar(24)\"}}\n"
		       "  - backfill: {table: accounts, set: {first_name: \"%s\"}}\n"
		       "  - create_table:\n"
		       "      name: audit_log\n"
		       "      columns:\n"
		       "        - {name: id, type: bigint, primary_key: true, autoincrement: true}\n"
		       "        - {name: account_name, type: \"varchar(48)\", nullable: false}\n"
		       "  - add_index: {table: accounts, name: ix_accounts_email_lower, columns: [email_lower]}\n"
		       "  - drop_column: {table: accounts, column: fullname}\n"
		       "  - drop_column: {table: accounts, column: legacy}\n",
		       BY_BACKEND(&f, "substr(fullname, 1, instr(fullname, ' ') - 1)",
				  "split_part(fullname, ' ', 1)", "SUBSTRING_INDEX(fullname, ' ', 1)"));
	ops_set_v2(&f, v2);
	free(v2);
	OLD(&f, "INSERT INTO accounts (name, email, score, fullname, legacy) "
		"VALUES ('ann', 'Ann@X', 5, 'Ann Smith', 'l')");
	OLD(&f, "INSERT INTO accounts (name, email, legacy) VALUES ('bob', 'Bob@X', 'l')");
	EXPAND(&f);
	OLD(&f, "INSERT INTO accounts (name, email, score, fullname, legacy) "
		"VALUES ('cid', 'Cid@X', 7, 'Cid Jones', 'l')");
	OLD(&f, "UPDATE accounts SET score = score + 1, fullname = 'Bob Brown' WHERE name = 'bob'");
	app_value(&f, "cid", "SELECT display_name FROM accounts WHERE email = 'Cid@X'");
	app_value(&f, "cid@x", "SELECT email_lower FROM accounts WHERE name = 'cid'");
	app_value(&f, "Bob", "SELECT first_name FROM accounts WHERE name = 'bob'");
	MIGRATE(&f);
	app_value(&f, "bob", "SELECT display_name FROM accounts WHERE email = 'Bob@X'");
	app_value(&f, "ann@x", "SELECT email_lower FROM accounts WHERE name = 'ann'");
	app_value(&f, "Ann", "SELECT first_name FROM accounts WHERE name = 'ann'");
	app_value(&f, "0", "SELECT count(*) FROM accounts WHERE display_name IS NULL "
		  "OR email_lower IS NULL");
	/* Both versions side by side. */
	OLD(&f, "INSERT INTO accounts (name, email, score, fullname, legacy) "
		"VALUES ('dan', 'Dan@X', 9, 'Dan Gray', 'l')");
	NEW(&f, "INSERT INTO accounts (display_name, email, email_lower, score, first_name) "
		"VALUES ('eve', 'Eve@X', 'eve@x', 11, 'Eve')");
	NEW(&f, "INSERT INTO audit_log (account_name) VALUES ('eve')");
	app_value(&f, "eve", "SELECT name FROM accounts WHERE email = 'Eve@X'");
	app_value(&f, "11", "SELECT score FROM accounts WHERE name = 'eve'");
	app_value(&f, "dan", "SELECT display_name FROM accounts WHERE email = 'Dan@X'");
	app_value(&f, "dan@x", "SELECT email_lower FROM accounts WHERE display_name = 'dan'");
	NEW(&f, "UPDATE accounts SET display_name = 'eva', score = score + 1 WHERE display_name = 'eve'");
	app_value(&f, "12", "SELECT score FROM accounts WHERE name = 'eva'");
	OLD(&f, "UPDATE accounts SET name = 'anna', email = 'Anna@X' WHERE name = 'ann'");
	app_value(&f, "anna@x", "SELECT email_lower FROM accounts WHERE display_name = 'anna'");
	app_fails(&f, "the unique index holds for both names",
		  "INSERT INTO accounts (display_name, email, email_lower) VALUES ('dan', 'x', 'x')");
	/* New code keeps inserting while contract runs. */
	writer_start(&f, &w, "INSERT INTO accounts (display_name, email, email_lower, score) "
		     "VALUES ('w", 1000, "', 'W@X', 'w@x', 3)", 0);
	CONTRACT(&f);
	writer_stop(&f, &w);
	{
		char *sql = xasprintf("SELECT count(*) - %d FROM accounts WHERE email = 'W@X' "
				      "AND email_lower = 'w@x' AND score = 3", w.ok);

		app_value(&f, "0", sql);
		free(sql);
	}
	app_value(&f, "0", "SELECT count(*) FROM accounts WHERE email = 'W@X' AND "
		  "(display_name IS NULL OR email_lower IS NULL OR score IS NULL)");
	NEW(&f, "INSERT INTO accounts (display_name, email, email_lower, score) "
		"VALUES ('fay', 'Fay@X', 'fay@x', 5000000000)");
	app_value(&f, "5000000000", "SELECT score FROM accounts WHERE display_name = 'fay'");
	app_value(&f, "6", "SELECT count(*) FROM accounts WHERE email <> 'W@X'");
	app_value(&f, "1", "SELECT score FROM accounts WHERE display_name = 'bob'");
	app_value(&f, "Cid", "SELECT first_name FROM accounts WHERE display_name = 'cid'");
	app_value(&f, "0", "SELECT count(*) FROM accounts WHERE email_lower IS NULL");
	app_fails(&f, "email_lower is NOT NULL now",
		  "INSERT INTO accounts (display_name, email) VALUES ('gus', 'Gus@X')");
	describe(&f, "accounts", &t);
	expect_columns(&f, &t, "id,email,display_name,score,email_lower,first_name");
	expect_column(&f, &t, "display_name", BY_BACKEND(&f, "varchar(48)", "character varying(48)",
							 "varchar(48)"), false, NULL);
	expect_column(&f, &t, "score", T_BIGINT(&f), false, "0");
	expect_column(&f, &t, "email_lower", BY_BACKEND(&f, "varchar(64)", "character varying(64)",
							"varchar(64)"), false, NULL);
	expect_index(&f, &t, "ux_accounts_name", true, "display_name");
	expect_index(&f, &t, "ix_accounts_email_lower", false, "email_lower");
	expect_indexes(&f, &t, "ix_accounts_email_lower,ux_accounts_name");
	expect_triggers(&f, &t, 0);
	db_table_info_release(&t);
	ops_end(&f);
}

/* ---- constraints across later column changes ----------------------------- */

/* Put a further version on disk (after version 2) and plan again. */
static void
ops_add_version(struct ops *f, const char *relpath, const char *text)
{
	test_write_file(f->dir, relpath, text);
	state_release(&f->st);
	plan_release(&f->plan);
	catalog_release(&f->cat);
	repo_release(&f->repo);
	ops_load(f);
}

/* The check (PostgreSQL: validated) or the triggers that stand in for it. */
static void
expect_check_kept(struct ops *f, const char *table, const char *name, size_t emul_triggers)
{
	struct db_table_info t;

	describe(f, table, &t);
	if (f->backend == DB_BACKEND_POSTGRESQL) {
		const struct db_constraint_info *k = find_constraint(&t, name);

		cr_assert_not_null(k, "[%s] %s: no check %s on %s", bname(f), f->stage, name, table);
		cr_assert(k->validated, "[%s] %s: %s is not validated", bname(f), f->stage, name);
		expect_triggers(f, &t, 0);
	} else {
		expect_triggers(f, &t, emul_triggers);
	}
	db_table_info_release(&t);
}

/*
 * add_check, then in a later version rename_column of its column, then in
 * another change_type of it: the check holds after each contract, and old
 * and new code's writes succeed in every phase.
 */
BACKEND_TEST(ops, check_follows_its_column_through_rename_and_type_change)
{
	struct writer w;
	struct ops f;

	ops_begin(&f, *backend,
		  "operations:\n"
		  "  - create_table:\n"
		  "      name: items\n"
		  "      columns:\n"
		  "        - {name: id, type: integer, primary_key: true}\n"
		  "        - {name: score, type: integer}\n"
		  "        - {name: cap, type: bigint}\n"
		  "  - add_check: {table: items, name: ck_items_score, check: \"score >= 0 AND score <= cap\"}\n",
		  "operations:\n"
		  "  - rename_column: {table: items, from: score, to: points}\n");
	OLD(&f, "INSERT INTO items (id, score, cap) VALUES (1, 5, 10)");
	app_fails(&f, "the check holds at version 1",
		  "INSERT INTO items (id, score, cap) VALUES (2, -1, 10)");
	EXPAND(&f);
	OLD(&f, "INSERT INTO items (id, score, cap) VALUES (2, 6, 10)");
	OLD(&f, "UPDATE items SET score = 7 WHERE id = 1");
	app_fails(&f, "old code's bad write is refused",
		  "INSERT INTO items (id, score, cap) VALUES (3, 11, 10)");
	MIGRATE(&f);
	OLD(&f, "INSERT INTO items (id, score, cap) VALUES (3, 3, 10)");
	NEW(&f, "INSERT INTO items (id, points, cap) VALUES (4, 4, 10)");
	NEW(&f, "UPDATE items SET points = 8 WHERE id = 2");
	app_fails(&f, "old code's bad write is refused",
		  "UPDATE items SET score = -3 WHERE id = 3");
	app_fails(&f, "new code's bad write is refused",
		  "INSERT INTO items (id, points, cap) VALUES (9, -1, 10)");
	app_fails(&f, "new code's bad write is refused",
		  "UPDATE items SET points = 12 WHERE id = 4");
	writer_start(&f, &w, "INSERT INTO items (id, points, cap) VALUES (", 1000, ", 1, 5)", 0);
	CONTRACT(&f);
	writer_stop(&f, &w);
	NEW(&f, "INSERT INTO items (id, points, cap) VALUES (5, 0, 10)");
	NEW(&f, "UPDATE items SET points = 10 WHERE id = 1");
	app_fails(&f, "the check holds on the renamed column",
		  "INSERT INTO items (id, points, cap) VALUES (6, -1, 10)");
	app_fails(&f, "the check holds on the renamed column",
		  "UPDATE items SET points = 11 WHERE id = 1");
	app_fails(&f, "the check holds on the other column it uses",
		  "UPDATE items SET cap = 1 WHERE id = 1");
	app_value(&f, "10", "SELECT points FROM items WHERE id = 1");
	expect_check_kept(&f, "items", "ck_items_score", 2);

	ops_add_version(&f, "versions/003_type.yaml",
			"operations:\n"
			"  - change_type: {table: items, column: points, to: bigint}\n");
	ops_phase(&f, PHASE_EXPAND, 3);
	NEW(&f, "INSERT INTO items (id, points, cap) VALUES (7, 7, 10)");
	app_fails(&f, "the check holds while the type changes",
		  "INSERT INTO items (id, points, cap) VALUES (8, -1, 10)");
	ops_phase(&f, PHASE_MIGRATE, 3);
	NEW(&f, "UPDATE items SET points = 2 WHERE id = 7");
	ops_phase(&f, PHASE_CONTRACT, 3);
	expect_clean(&f);
	NEW(&f, "INSERT INTO items (id, points, cap) VALUES (8, 9, 5000000000)");
	NEW(&f, "UPDATE items SET points = 4000000000 WHERE id = 8");
	app_fails(&f, "the check holds on the new type",
		  "INSERT INTO items (id, points, cap) VALUES (9, -1, 10)");
	app_fails(&f, "the check holds on the new type",
		  "UPDATE items SET points = 11 WHERE id = 1");
	app_value(&f, "4000000000", "SELECT points FROM items WHERE id = 8");
	expect_check_kept(&f, "items", "ck_items_score", 2);
	ops_end(&f);
}

static const char keyed_v1[] =
	"operations:\n"
	"  - create_table:\n"
	"      name: owners\n"
	"      columns:\n"
	"        - {name: id, type: integer, primary_key: true}\n"
	"        - {name: code, type: \"varchar(10)\"}\n"
	"  - add_unique: {table: owners, name: uq_owners_code, columns: [code]}\n"
	"  - create_table:\n"
	"      name: items\n"
	"      columns:\n"
	"        - {name: id, type: integer, primary_key: true}\n"
	"        - {name: owner_code, type: \"varchar(10)\"}\n"
	"  - add_index: {table: items, name: ix_items_owner, columns: [owner_code]}\n"
	"  - add_foreign_key: {table: items, name: fk_items_owner, columns: [owner_code],"
	" references: owners, ref_columns: [code]}\n";

/* The foreign key (PostgreSQL, MariaDB: validated) or its triggers (SQLite). */
static void
expect_key_kept(struct ops *f, const char *columns)
{
	struct db_table_info t;

	describe(f, "items", &t);
	if (f->backend == DB_BACKEND_SQLITE) {
		expect_triggers(f, &t, 2);
	} else {
		const struct db_constraint_info *k = find_constraint(&t, "fk_items_owner");

		cr_assert_not_null(k, "[%s] %s: no fk_items_owner", bname(f), f->stage);
		cr_assert_eq(k->kind, DB_CONSTRAINT_FOREIGN_KEY);
		cr_assert(k->validated, "[%s] %s: fk_items_owner is not validated", bname(f),
			  f->stage);
		cr_assert(k->definition && strstr(k->definition, columns),
			  "[%s] %s: fk_items_owner is %s, expected it on %s", bname(f), f->stage,
			  k->definition, columns);
		expect_triggers(f, &t, 0);
	}
	db_table_info_release(&t);
}

/*
 * add_foreign_key, then rename_column of its column in a later version,
 * then of the column it references in another: the key holds after each
 * contract, and both versions' writes succeed in every phase.
 */
BACKEND_TEST(ops, foreign_key_follows_a_rename_of_either_side)
{
	struct db_table_info t;
	struct ops f;

	ops_begin(&f, *backend, keyed_v1,
		  "operations:\n"
		  "  - rename_column: {table: items, from: owner_code, to: owner}\n");
	OLD(&f, "INSERT INTO owners (id, code) VALUES (1, 'a')");
	OLD(&f, "INSERT INTO owners (id, code) VALUES (2, 'b')");
	OLD(&f, "INSERT INTO items (id, owner_code) VALUES (1, 'a')");
	EXPAND(&f);
	OLD(&f, "INSERT INTO items (id, owner_code) VALUES (2, 'b')");
	app_fails(&f, "the key holds", "INSERT INTO items (id, owner_code) VALUES (3, 'zz')");
	MIGRATE(&f);
	OLD(&f, "INSERT INTO items (id, owner_code) VALUES (3, 'a')");
	NEW(&f, "INSERT INTO items (id, owner) VALUES (4, 'b')");
	NEW(&f, "UPDATE items SET owner = 'a' WHERE id = 2");
	app_fails(&f, "the key holds for new code",
		  "INSERT INTO items (id, owner) VALUES (5, 'zz')");
	CONTRACT(&f);
	NEW(&f, "INSERT INTO items (id, owner) VALUES (5, 'a')");
	NEW(&f, "INSERT INTO items (id, owner) VALUES (6, NULL)");
	app_fails(&f, "the key holds on the renamed column",
		  "INSERT INTO items (id, owner) VALUES (7, 'zz')");
	app_fails(&f, "the key holds on the renamed column",
		  "UPDATE items SET owner = 'zz' WHERE id = 1");
	expect_key_kept(&f, "owner");

	ops_add_version(&f, "versions/003_parent.yaml",
			"operations:\n"
			"  - rename_column: {table: owners, from: code, to: ref}\n");
	ops_phase(&f, PHASE_EXPAND, 3);
	OLD(&f, "INSERT INTO owners (id, code) VALUES (3, 'c')");
	NEW(&f, "INSERT INTO items (id, owner) VALUES (7, 'c')");
	ops_phase(&f, PHASE_MIGRATE, 3);
	NEW(&f, "INSERT INTO owners (id, ref) VALUES (4, 'd')");
	NEW(&f, "INSERT INTO items (id, owner) VALUES (8, 'd')");
	OLD(&f, "INSERT INTO owners (id, code) VALUES (5, 'e')");
	app_fails(&f, "the key holds while its parent column is renamed",
		  "INSERT INTO items (id, owner) VALUES (9, 'zz')");
	ops_phase(&f, PHASE_CONTRACT, 3);
	expect_clean(&f);
	NEW(&f, "INSERT INTO owners (id, ref) VALUES (6, 'f')");
	NEW(&f, "INSERT INTO items (id, owner) VALUES (9, 'f')");
	NEW(&f, "INSERT INTO items (id, owner) VALUES (10, 'e')");
	app_fails(&f, "the key holds on the renamed parent column",
		  "INSERT INTO items (id, owner) VALUES (11, 'zz')");
	app_fails(&f, "the unique constraint holds on the renamed column",
		  "INSERT INTO owners (id, ref) VALUES (7, 'a')");
	app_value(&f, "10", "SELECT count(*) FROM items");
	expect_key_kept(&f, "ref");
	describe(&f, "owners", &t);
	expect_index(&f, &t, "uq_owners_code", true, "ref");
	if (f.backend != DB_BACKEND_SQLITE)
		cr_assert_not_null(find_constraint(&t, "uq_owners_code"),
				   "[%s] uq_owners_code is no longer a constraint", bname(&f));
	db_table_info_release(&t);
	ops_end(&f);
}

/* Checks with a 60-byte common prefix, and one check name on two tables. */
BACKEND_TEST(ops, checks_that_share_names_do_not_replace_each_other)
{
	struct ops f;

	ops_begin(&f, *backend,
		  "operations:\n"
		  "  - create_table:\n"
		  "      name: items\n"
		  "      columns:\n"
		  "        - {name: id, type: integer, primary_key: true}\n"
		  "        - {name: n, type: integer}\n"
		  "  - create_table:\n"
		  "      name: things\n"
		  "      columns:\n"
		  "        - {name: id, type: integer, primary_key: true}\n"
		  "        - {name: n, type: integer}\n",
		  "operations:\n"
		  "  - add_check: {table: items, name: ck_positive, check: \"n >= 0\"}\n"
		  "  - add_check: {table: things, name: ck_positive, check: \"n >= 0\"}\n"
		  "  - add_check: {table: items, name: ck_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa_1,"
		  " check: \"n < 100\"}\n"
		  "  - add_check: {table: items, name: ck_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa_2,"
		  " check: \"n <> 50\"}\n");
	EXPAND(&f);
	MIGRATE(&f);
	CONTRACT(&f);
	NEW(&f, "INSERT INTO items (id, n) VALUES (1, 1)");
	NEW(&f, "INSERT INTO things (id, n) VALUES (1, 1)");
	app_fails(&f, "ck_positive holds on items", "INSERT INTO items (id, n) VALUES (2, -1)");
	app_fails(&f, "ck_positive holds on things", "INSERT INTO things (id, n) VALUES (2, -1)");
	app_fails(&f, "the first long check holds", "INSERT INTO items (id, n) VALUES (2, 150)");
	app_fails(&f, "the second long check holds", "INSERT INTO items (id, n) VALUES (2, 50)");
	app_fails(&f, "ck_positive holds on items", "UPDATE items SET n = -1 WHERE id = 1");
	app_fails(&f, "ck_positive holds on things", "UPDATE things SET n = -1 WHERE id = 1");
	ops_end(&f);
}

/* The character that quotes an identifier on backend. */
static char
f_quote_char(enum db_backend backend)
{
	return backend == DB_BACKEND_MYSQL ? '`' : '"';
}

/* A table named with 30 two-byte characters through add_check, rename_column, change_type. */
BACKEND_TEST(ops, long_unicode_table_name)
{
	static const char e30[] = "ééééééééééééééééééééééééééééé"
				  "é";
	char q = f_quote_char(*backend);
	struct ops f;
	char *v1, *v2, *sql;

	v1 = xasprintf("operations:\n"
		       "  - create_table:\n"
		       "      name: %s\n"
		       "      columns:\n"
		       "        - {name: id, type: integer, primary_key: true}\n"
		       "        - {name: n, type: integer}\n"
		       "        - {name: m, type: integer}\n"
		       "  - add_index: {table: %s, name: ix_%s, columns: [n]}\n"
		       "  - add_check: {table: %s, name: ck_%s, check: \"n >= 0\"}\n",
		       e30, e30, e30, e30, e30);
	v2 = xasprintf("operations:\n"
		       "  - rename_column: {table: %s, from: n, to: n2}\n"
		       "  - change_type: {table: %s, column: m, to: bigint}\n", e30, e30);
	ops_begin(&f, *backend, v1, v2);
	sql = xasprintf("INSERT INTO %c%s%c (id, n, m) VALUES (1, 1, 1)", q, e30, q);
	OLD(&f, sql);
	free(sql);
	EXPAND(&f);
	sql = xasprintf("INSERT INTO %c%s%c (id, n, m) VALUES (2, 2, 2)", q, e30, q);
	OLD(&f, sql);
	free(sql);
	MIGRATE(&f);
	sql = xasprintf("INSERT INTO %c%s%c (id, n2, m) VALUES (3, 3, 3)", q, e30, q);
	NEW(&f, sql);
	free(sql);
	CONTRACT(&f);
	sql = xasprintf("INSERT INTO %c%s%c (id, n2, m) VALUES (4, 4, 5000000000)", q, e30, q);
	NEW(&f, sql);
	free(sql);
	sql = xasprintf("INSERT INTO %c%s%c (id, n2, m) VALUES (5, -1, 1)", q, e30, q);
	app_fails(&f, "the check holds", sql);
	free(sql);
	sql = xasprintf("SELECT count(*) FROM %c%s%c WHERE n2 IS NOT NULL", q, e30, q);
	app_value(&f, "4", sql);
	free(sql);
	free(v1);
	free(v2);
	ops_end(&f);
}
