/*
 * tests/unit/test-plan.c - the planner, without a database: the exact SQL
 * of the operations whose rendering matters most on each backend, the
 * phase every operation's steps land in, that the same input always gives
 * the same plan, the refusals of bad migrations with their exact
 * file:line:column, and where each step comes from (the built-in catalog
 * or the repository's own phases/ folder).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/repo.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "plan/catalog.h"
#include "plan/planner.h"
#include "testlib.h"

static char *dir;

static void
setup(void)
{
	dir = test_mkdtemp();
	test_write_file(dir, "repository.yaml", "id: plan\n");
}

static void
teardown(void)
{
	test_rmtree(dir);
	free(dir);
	dir = NULL;
}

TestSuite(plan, .init = setup, .fini = teardown);

static const char *
bname(enum db_backend b)
{
	return db_backend_name(b);
}

/* Version 1 and, if not NULL, version 2 of the repository. */
static void
write_versions(const char *v1, const char *v2)
{
	test_write_file(dir, "versions/001_old.yaml", v1);
	if (v2)
		test_write_file(dir, "versions/002_new.yaml", v2);
}

/* Load the repository and its catalog and plan it for backend (server version, 0: newest). */
static int
build_for(enum db_backend b, int server_version, struct plan *plan, struct dbphase_error *err)
{
	struct repo repo;
	struct catalog cat;
	int rc;

	if ((rc = repo_load(&repo, dir, NULL, err)) < 0)
		return rc;
	if ((rc = catalog_load(&cat, repo.phases_dir, err)) == 0) {
		rc = plan_build_for_server(plan, &repo, &cat, b, server_version, err);
		catalog_release(&cat);
	}
	repo_release(&repo);
	return rc;
}

static int
build(enum db_backend b, struct plan *plan, struct dbphase_error *err)
{
	return build_for(b, 0, plan, err);
}

static void
build_ok(enum db_backend b, struct plan *plan)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;

	cr_assert_eq(build(b, plan, &err), 0, "[%s] plan failed: %s", bname(b), err.message);
	err_release(&err);
}

/*
 * Planning fails on every backend with DBPHASE_EBADINPUT and exactly this
 * message, where "%D" stands for the repository's folder.
 */
static void
build_fails(const char *fmt)
{
	struct strbuf want = STRBUF_INIT;
	const char *p;
	int b;

	for (p = fmt; *p; p++) {
		if (p[0] == '%' && p[1] == 'D') {
			strbuf_addstr(&want, dir);
			p++;
		} else {
			strbuf_addch(&want, *p);
		}
	}
	for (b = 0; b < DB_BACKEND__COUNT; b++) {
		struct dbphase_error err = DBPHASE_ERROR_INIT;
		struct plan plan;
		int rc = build((enum db_backend)b, &plan, &err);

		cr_assert_eq(rc, DBPHASE_EBADINPUT, "[%s] planning gave %d (%s), expected a refusal",
			     bname((enum db_backend)b), rc, err.message ? err.message : "no message");
		cr_assert_str_eq(err.message, want.buf, "[%s] message\n  %s\nexpected\n  %s",
				 bname((enum db_backend)b), err.message, want.buf);
		err_release(&err);
	}
	strbuf_release(&want);
}

static const struct plan_step *
step_at(const struct plan *plan, int64_t version, enum phase phase, int seq)
{
	size_t i;

	for (i = 0; i < plan->n_steps; i++)
		if (plan->steps[i].version == version && plan->steps[i].phase == phase &&
		    plan->steps[i].seq == seq)
			return &plan->steps[i];
	cr_assert_fail("no step v%lld.%s.%d", (long long)version, phase_name(phase), seq);
	return NULL;
}

/* The statements of a step, each followed by ";\n"; a line for other steps. */
static char *
step_text(const struct plan_step *s)
{
	struct strbuf sb = STRBUF_INIT;
	size_t i;

	switch (s->action) {
	case STEP_SQL:
		for (i = 0; i < s->n_sql; i++)
			strbuf_addf(&sb, "%s;\n", s->sql[i]);
		break;
	case STEP_BACKFILL:
		strbuf_addf(&sb, "batches on %s by", s->table);
		for (i = 0; i < s->n_keys; i++)
			strbuf_addf(&sb, " %s", s->keys[i]);
		strbuf_addf(&sb, "%s: SET %s WHERE %s\n", s->integer_key ? " (integer)" : "",
			    s->set_sql, s->where_sql ? s->where_sql : "-");
		break;
	case STEP_REBUILD:
		strbuf_addf(&sb, "rebuild %s.%s not_null %d default %s drop_default %d\n", s->table,
			    s->column, s->set_not_null, s->set_default ? s->set_default : "-",
			    s->drop_default);
		break;
	}
	return strbuf_detach(&sb);
}

static void
expect_step(const struct plan *plan, int64_t version, enum phase phase, int seq,
	    const char *op, bool atomic, const char *want)
{
	const struct plan_step *s = step_at(plan, version, phase, seq);
	char *got = step_text(s);

	cr_assert_str_eq(s->op_kind, op, "[%s] v%lld.%s.%d is %s, expected %s",
			 bname(plan->backend), (long long)version, phase_name(phase), seq,
			 s->op_kind, op);
	cr_assert_eq(s->atomic, atomic, "[%s] v%lld.%s.%d atomic is %d", bname(plan->backend),
		     (long long)version, phase_name(phase), seq, s->atomic);
	cr_assert_str_eq(got, want, "[%s] v%lld.%s.%d renders\n%s\nexpected\n%s",
			 bname(plan->backend), (long long)version, phase_name(phase), seq, got,
			 want);
	free(got);
}

/* ---- golden SQL ---------------------------------------------------------- */

static const char golden_v1[] =
	"operations:\n"
	"  - create_table:\n"
	"      name: items\n"
	"      columns:\n"
	"        - {name: id, type: bigint, primary_key: true, autoincrement: true}\n"
	"        - {name: name, type: \"varchar(100)\", nullable: false}\n"
	"        - {name: n, type: integer, nullable: false, default: 0}\n"
	"  - add_index: {table: items, name: ix_items_name, columns: [name]}\n";

Test(plan, create_table_autoincrement_per_backend)
{
	struct plan plan;

	write_versions(golden_v1, NULL);
	build_ok(DB_BACKEND_POSTGRESQL, &plan);
	expect_step(&plan, 1, PHASE_EXPAND, 1, "create_table", true,
		    "CREATE TABLE \"items\" (\"id\" bigint GENERATED BY DEFAULT AS IDENTITY, "
		    "\"name\" varchar(100) NOT NULL, \"n\" integer NOT NULL DEFAULT 0, "
		    "PRIMARY KEY (\"id\"));\n");
	plan_release(&plan);
	build_ok(DB_BACKEND_MYSQL, &plan);
	expect_step(&plan, 1, PHASE_EXPAND, 1, "create_table", true,
		    "CREATE TABLE IF NOT EXISTS `items` (`id` bigint NOT NULL AUTO_INCREMENT, "
		    "`name` varchar(100) NOT NULL, `n` int NOT NULL DEFAULT 0, PRIMARY KEY (`id`)) "
		    "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n");
	plan_release(&plan);
	build_ok(DB_BACKEND_SQLITE, &plan);
	expect_step(&plan, 1, PHASE_EXPAND, 1, "create_table", true,
		    "CREATE TABLE \"items\" (\"id\" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "
		    "\"name\" VARCHAR(100) NOT NULL, \"n\" INTEGER NOT NULL DEFAULT 0);\n");
	plan_release(&plan);
}

Test(plan, add_index_without_blocking_writes)
{
	struct plan plan;

	write_versions(golden_v1,
		       "operations:\n"
		       "  - add_index: {table: items, name: ux_items_n, columns: [n, name], unique: true}\n");
	build_ok(DB_BACKEND_POSTGRESQL, &plan);
	/* CONCURRENTLY cannot run in a transaction; a failed build leaves an invalid index. */
	expect_step(&plan, 1, PHASE_EXPAND, 2, "add_index", false,
		    "DROP INDEX CONCURRENTLY IF EXISTS \"ix_items_name\";\n"
		    "CREATE INDEX CONCURRENTLY \"ix_items_name\" ON \"items\" (\"name\");\n");
	expect_step(&plan, 2, PHASE_EXPAND, 1, "add_index", false,
		    "DROP INDEX CONCURRENTLY IF EXISTS \"ux_items_n\";\n"
		    "CREATE UNIQUE INDEX CONCURRENTLY \"ux_items_n\" ON \"items\" (\"n\", \"name\");\n");
	plan_release(&plan);
	build_ok(DB_BACKEND_MYSQL, &plan);
	expect_step(&plan, 2, PHASE_EXPAND, 1, "add_index", false,
		    "CREATE UNIQUE INDEX IF NOT EXISTS `ux_items_n` ON `items` (`n`, `name`) "
		    "ALGORITHM=INPLACE LOCK=NONE;\n");
	plan_release(&plan);
	build_ok(DB_BACKEND_SQLITE, &plan);
	expect_step(&plan, 2, PHASE_EXPAND, 1, "add_index", false,
		    "CREATE UNIQUE INDEX IF NOT EXISTS \"ux_items_n\" ON \"items\" (\"n\", \"name\");\n");
	plan_release(&plan);
}

static const char not_null_v2[] =
	"operations:\n"
	"  - add_column: {table: items, column: {name: code, type: \"varchar(10)\", nullable: false}}\n"
	"  - backfill: {table: items, set: {code: upper(name)}}\n";

/* PostgreSQL 11 gains nothing from a validated CHECK before SET NOT NULL. */
Test(plan, sql_follows_the_server_version)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct plan plan;

	write_versions(golden_v1, not_null_v2);
	cr_assert_eq(build_for(DB_BACKEND_POSTGRESQL, 110022, &plan, &err), 0, "%s", err.message);
	cr_assert_eq(plan_count(&plan, 2, PHASE_CONTRACT), 2);
	expect_step(&plan, 2, PHASE_CONTRACT, 1, "add_column", true,
		    "ALTER TABLE \"items\" ALTER COLUMN \"code\" SET NOT NULL;\n");
	plan_release(&plan);
	cr_assert_eq(build_for(DB_BACKEND_POSTGRESQL, 150004, &plan, &err), 0, "%s", err.message);
	expect_step(&plan, 2, PHASE_CONTRACT, 1, "add_column", false,
		    "ALTER TABLE \"items\" DROP CONSTRAINT IF EXISTS \"dbp_v002_01_items_nn\";\n"
		    "ALTER TABLE \"items\" ADD CONSTRAINT \"dbp_v002_01_items_nn\" "
		    "CHECK (\"code\" IS NOT NULL) NOT VALID;\n"
		    "ALTER TABLE \"items\" VALIDATE CONSTRAINT \"dbp_v002_01_items_nn\";\n"
		    "ALTER TABLE \"items\" ALTER COLUMN \"code\" SET NOT NULL;\n"
		    "ALTER TABLE \"items\" DROP CONSTRAINT \"dbp_v002_01_items_nn\";\n");
	plan_release(&plan);
	err_release(&err);
}

Test(plan, add_column_not_null_is_split_over_the_phases)
{
	struct plan plan;

	write_versions(golden_v1, not_null_v2);
	build_ok(DB_BACKEND_POSTGRESQL, &plan);
	cr_assert_eq(plan_count(&plan, 2, PHASE_EXPAND), 2);
	cr_assert_eq(plan_count(&plan, 2, PHASE_MIGRATE), 1);
	cr_assert_eq(plan_count(&plan, 2, PHASE_CONTRACT), 2);
	expect_step(&plan, 2, PHASE_EXPAND, 1, "add_column", true,
		    "ALTER TABLE \"items\" ADD COLUMN \"code\" varchar(10);\n");
	expect_step(&plan, 2, PHASE_EXPAND, 2, "backfill", true,
		    "CREATE OR REPLACE FUNCTION \"dbp_v002_02_items_fill_fn\"() RETURNS trigger "
		    "LANGUAGE plpgsql AS $dbphase$\n"
		    "#variable_conflict use_column\n"
		    "BEGIN\n"
		    "  IF TG_OP = 'INSERT' THEN\n"
		    "    IF NEW.\"code\" IS NULL THEN NEW.\"code\" := "
		    "(SELECT upper(name) FROM (SELECT NEW.*) AS \"dbp_row\"); \n"
		    "    END IF;\n"
		    "  ELSIF (NEW.\"code\" IS NOT DISTINCT FROM (OLD.\"code\")) THEN "
		    "NEW.\"code\" := (SELECT upper(name) FROM (SELECT NEW.*) AS \"dbp_row\"); \n"
		    "  END IF;\n"
		    "  RETURN NEW;\n"
		    "END $dbphase$\n;\n"
		    "DROP TRIGGER IF EXISTS \"dbp_v002_02_items_fill_i\" ON \"items\";\n"
		    "CREATE TRIGGER \"dbp_v002_02_items_fill_i\" BEFORE INSERT OR UPDATE ON \"items\" "
		    "FOR EACH ROW EXECUTE FUNCTION \"dbp_v002_02_items_fill_fn\"();\n");
	expect_step(&plan, 2, PHASE_MIGRATE, 1, "backfill", true,
		    "batches on items by id (integer): SET \"code\" = upper(name) WHERE 1 = 1\n");
	expect_step(&plan, 2, PHASE_CONTRACT, 1, "add_column", false,
		    "ALTER TABLE \"items\" DROP CONSTRAINT IF EXISTS \"dbp_v002_01_items_nn\";\n"
		    "ALTER TABLE \"items\" ADD CONSTRAINT \"dbp_v002_01_items_nn\" "
		    "CHECK (\"code\" IS NOT NULL) NOT VALID;\n"
		    "ALTER TABLE \"items\" VALIDATE CONSTRAINT \"dbp_v002_01_items_nn\";\n"
		    "ALTER TABLE \"items\" ALTER COLUMN \"code\" SET NOT NULL;\n"
		    "ALTER TABLE \"items\" DROP CONSTRAINT \"dbp_v002_01_items_nn\";\n");
	expect_step(&plan, 2, PHASE_CONTRACT, 2, "backfill", true,
		    "DROP TRIGGER IF EXISTS \"dbp_v002_02_items_fill_i\" ON \"items\";\n"
		    "DROP FUNCTION IF EXISTS \"dbp_v002_02_items_fill_fn\"();\n");
	plan_release(&plan);

	build_ok(DB_BACKEND_MYSQL, &plan);
	expect_step(&plan, 2, PHASE_EXPAND, 1, "add_column", true,
		    "ALTER TABLE `items` ADD COLUMN IF NOT EXISTS `code` varchar(10), LOCK=NONE;\n");
	expect_step(&plan, 2, PHASE_EXPAND, 2, "backfill", true,
		    "DROP TRIGGER IF EXISTS `dbp_v002_02_items_fill_i`;\n"
		    "CREATE TRIGGER `dbp_v002_02_items_fill_i` BEFORE INSERT ON `items` FOR EACH ROW "
		    "BEGIN IF NEW.`code` IS NULL THEN SET NEW.`code` = (SELECT upper(name) FROM "
		    "(SELECT NEW.`name` AS `name`) AS `dbp_row`); "
		    "END IF; END;\n"
		    "DROP TRIGGER IF EXISTS `dbp_v002_02_items_fill_u`;\n"
		    "CREATE TRIGGER `dbp_v002_02_items_fill_u` BEFORE UPDATE ON `items` FOR EACH ROW "
		    "BEGIN IF (NEW.`code` <=> (OLD.`code`)) THEN SET NEW.`code` = (SELECT upper(name) FROM "
		    "(SELECT NEW.`name` AS `name`) AS `dbp_row`); "
		    "END IF; END;\n");
	expect_step(&plan, 2, PHASE_MIGRATE, 1, "backfill", true,
		    "batches on items by id (integer): SET `code` = upper(name) WHERE 1 = 1\n");
	expect_step(&plan, 2, PHASE_CONTRACT, 1, "add_column", false,
		    "ALTER TABLE `items` MODIFY COLUMN `code` varchar(10) NOT NULL, LOCK=NONE;\n");
	plan_release(&plan);

	build_ok(DB_BACKEND_SQLITE, &plan);
	cr_assert_eq(plan_count(&plan, 2, PHASE_EXPAND), 3);
	expect_step(&plan, 2, PHASE_EXPAND, 1, "add_column", true,
		    "ALTER TABLE \"items\" ADD COLUMN \"code\" VARCHAR(10);\n");
	expect_step(&plan, 2, PHASE_EXPAND, 2, "backfill", true,
		    "DROP TRIGGER IF EXISTS \"dbp_v002_02_items_fill_i\";\n"
		    "CREATE TRIGGER \"dbp_v002_02_items_fill_i\" AFTER INSERT ON \"items\" FOR EACH ROW "
		    "WHEN NEW.\"code\" IS NULL "
		    "BEGIN UPDATE \"items\" SET \"code\" = upper(name) WHERE rowid = NEW.rowid; END;\n");
	expect_step(&plan, 2, PHASE_EXPAND, 3, "backfill", true,
		    "DROP TRIGGER IF EXISTS \"dbp_v002_02_items_fill_u\";\n"
		    "CREATE TRIGGER \"dbp_v002_02_items_fill_u\" AFTER UPDATE OF \"name\" ON \"items\" "
		    "FOR EACH ROW WHEN (NEW.\"code\" IS (OLD.\"code\")) "
		    "BEGIN UPDATE \"items\" SET \"code\" = upper(name) WHERE rowid = NEW.rowid; END;\n");
	expect_step(&plan, 2, PHASE_CONTRACT, 1, "add_column", true,
		    "rebuild items.code not_null 1 default - drop_default 0\n");
	plan_release(&plan);
}

static const char rename_v2[] =
	"operations:\n"
	"  - rename_column: {table: items, from: name, to: title}\n"
	"  - rename_column: {table: items, from: n, to: qty}\n";

Test(plan, rename_column_triggers_postgresql)
{
	struct plan plan;

	write_versions(golden_v1, rename_v2);
	build_ok(DB_BACKEND_POSTGRESQL, &plan);
	expect_step(&plan, 2, PHASE_EXPAND, 1, "rename_column", true,
		    "ALTER TABLE \"items\" ADD COLUMN \"title\" varchar(100);\n");
	expect_step(&plan, 2, PHASE_EXPAND, 2, "rename_column", true,
		    "CREATE OR REPLACE FUNCTION \"dbp_v002_01_items_sync_fn\"() RETURNS trigger "
		    "LANGUAGE plpgsql AS $dbphase$\n"
		    "BEGIN\n"
		    "  IF TG_OP = 'INSERT' THEN\n"
		    "    IF NEW.\"title\" IS NULL AND NEW.\"name\" IS NULL THEN NEW.\"name\" := NULL; END IF;\n"
		    "    IF NEW.\"title\" IS NULL THEN NEW.\"title\" := NEW.\"name\";\n"
		    "    ELSIF NEW.\"name\" IS NULL THEN NEW.\"name\" := NEW.\"title\";\n"
		    "    END IF;\n"
		    "  ELSIF NEW.\"name\" IS DISTINCT FROM OLD.\"name\" THEN NEW.\"title\" := NEW.\"name\";\n"
		    "  ELSIF NEW.\"title\" IS DISTINCT FROM OLD.\"title\" THEN NEW.\"name\" := NEW.\"title\";\n"
		    "  END IF;\n"
		    "  RETURN NEW;\n"
		    "END $dbphase$\n;\n"
		    "DROP TRIGGER IF EXISTS \"dbp_v002_01_items_sync_i\" ON \"items\";\n"
		    "CREATE TRIGGER \"dbp_v002_01_items_sync_i\" BEFORE INSERT OR UPDATE ON \"items\" "
		    "FOR EACH ROW EXECUTE FUNCTION \"dbp_v002_01_items_sync_fn\"();\n");
	expect_step(&plan, 2, PHASE_EXPAND, 3, "rename_column", false,
		    "DROP INDEX CONCURRENTLY IF EXISTS \"dbp_v002_01_ix_items_name_ix\";\n"
		    "CREATE INDEX CONCURRENTLY \"dbp_v002_01_ix_items_name_ix\" ON \"items\" (\"title\");\n");
	/* n has a default: the triggers apply it, and n loses it at once. */
	expect_step(&plan, 2, PHASE_EXPAND, 5, "rename_column", true,
		    "CREATE OR REPLACE FUNCTION \"dbp_v002_02_items_sync_fn\"() RETURNS trigger "
		    "LANGUAGE plpgsql AS $dbphase$\n"
		    "BEGIN\n"
		    "  IF TG_OP = 'INSERT' THEN\n"
		    "    IF NEW.\"qty\" IS NULL AND NEW.\"n\" IS NULL THEN NEW.\"n\" := 0; END IF;\n"
		    "    IF NEW.\"qty\" IS NULL THEN NEW.\"qty\" := NEW.\"n\";\n"
		    "    ELSIF NEW.\"n\" IS NULL THEN NEW.\"n\" := NEW.\"qty\";\n"
		    "    END IF;\n"
		    "  ELSIF NEW.\"n\" IS DISTINCT FROM OLD.\"n\" THEN NEW.\"qty\" := NEW.\"n\";\n"
		    "  ELSIF NEW.\"qty\" IS DISTINCT FROM OLD.\"qty\" THEN NEW.\"n\" := NEW.\"qty\";\n"
		    "  END IF;\n"
		    "  RETURN NEW;\n"
		    "END $dbphase$\n;\n"
		    "DROP TRIGGER IF EXISTS \"dbp_v002_02_items_sync_i\" ON \"items\";\n"
		    "CREATE TRIGGER \"dbp_v002_02_items_sync_i\" BEFORE INSERT OR UPDATE ON \"items\" "
		    "FOR EACH ROW EXECUTE FUNCTION \"dbp_v002_02_items_sync_fn\"();\n");
	expect_step(&plan, 2, PHASE_EXPAND, 6, "rename_column", true,
		    "ALTER TABLE \"items\" ALTER COLUMN \"n\" DROP DEFAULT;\n");
	cr_assert_eq(plan_count(&plan, 2, PHASE_EXPAND), 6);
	expect_step(&plan, 2, PHASE_MIGRATE, 1, "rename_column", true,
		    "batches on items by id (integer): SET \"title\" = \"name\" "
		    "WHERE \"title\" IS NULL AND \"name\" IS NOT NULL\n");
	/* The new column gets its NOT NULL and default while the triggers still run. */
	expect_step(&plan, 2, PHASE_CONTRACT, 1, "rename_column", false,
		    "ALTER TABLE \"items\" DROP CONSTRAINT IF EXISTS \"dbp_v002_01_items_nn\";\n"
		    "ALTER TABLE \"items\" ADD CONSTRAINT \"dbp_v002_01_items_nn\" "
		    "CHECK (\"title\" IS NOT NULL) NOT VALID;\n"
		    "ALTER TABLE \"items\" VALIDATE CONSTRAINT \"dbp_v002_01_items_nn\";\n"
		    "ALTER TABLE \"items\" ALTER COLUMN \"title\" SET NOT NULL;\n"
		    "ALTER TABLE \"items\" DROP CONSTRAINT \"dbp_v002_01_items_nn\";\n");
	expect_step(&plan, 2, PHASE_CONTRACT, 2, "rename_column", true,
		    "DROP TRIGGER IF EXISTS \"dbp_v002_01_items_sync_i\" ON \"items\";\n"
		    "DROP FUNCTION IF EXISTS \"dbp_v002_01_items_sync_fn\"();\n"
		    "ALTER TABLE \"items\" DROP COLUMN \"name\";\n"
		    "ALTER INDEX \"dbp_v002_01_ix_items_name_ix\" RENAME TO \"ix_items_name\";\n");
	expect_step(&plan, 2, PHASE_CONTRACT, 3, "rename_column", true,
		    "ALTER TABLE \"items\" ALTER COLUMN \"qty\" SET DEFAULT 0;\n");
	cr_assert_eq(plan_count(&plan, 2, PHASE_CONTRACT), 5);
	plan_release(&plan);
}

Test(plan, rename_column_triggers_mysql)
{
	struct plan plan;

	write_versions(golden_v1, rename_v2);
	build_ok(DB_BACKEND_MYSQL, &plan);
	expect_step(&plan, 2, PHASE_EXPAND, 1, "rename_column", true,
		    "ALTER TABLE `items` ADD COLUMN IF NOT EXISTS `title` varchar(100), LOCK=NONE;\n");
	expect_step(&plan, 2, PHASE_EXPAND, 2, "rename_column", true,
		    "DROP TRIGGER IF EXISTS `dbp_v002_01_items_sync_i`;\n"
		    "CREATE TRIGGER `dbp_v002_01_items_sync_i` BEFORE INSERT ON `items` FOR EACH ROW "
		    "BEGIN IF NEW.`title` IS NULL AND NEW.`name` IS NULL THEN SET NEW.`name` = NULL; END IF; "
		    "IF NEW.`title` IS NULL THEN SET NEW.`title` = NEW.`name`; "
		    "ELSEIF NEW.`name` IS NULL THEN SET NEW.`name` = NEW.`title`; END IF; END;\n"
		    "DROP TRIGGER IF EXISTS `dbp_v002_01_items_sync_u`;\n"
		    "CREATE TRIGGER `dbp_v002_01_items_sync_u` BEFORE UPDATE ON `items` FOR EACH ROW "
		    "BEGIN IF NOT (NEW.`name` <=> OLD.`name`) THEN SET NEW.`title` = NEW.`name`; "
		    "ELSEIF NOT (NEW.`title` <=> OLD.`title`) THEN SET NEW.`name` = NEW.`title`; "
		    "END IF; END;\n");
	expect_step(&plan, 2, PHASE_EXPAND, 3, "rename_column", false,
		    "CREATE INDEX IF NOT EXISTS `dbp_v002_01_ix_items_name_ix` ON `items` (`title`) "
		    "ALGORITHM=INPLACE LOCK=NONE;\n");
	expect_step(&plan, 2, PHASE_EXPAND, 6, "rename_column", true,
		    "ALTER TABLE `items` ALTER COLUMN `n` DROP DEFAULT;\n");
	expect_step(&plan, 2, PHASE_CONTRACT, 1, "rename_column", true,
		    "ALTER TABLE `items` MODIFY COLUMN `title` varchar(100) NOT NULL, LOCK=NONE;\n");
	/* Nothing fills the old column once the triggers go: it loses its NOT NULL first. */
	expect_step(&plan, 2, PHASE_CONTRACT, 2, "rename_column", true,
		    "BEGIN NOT ATOMIC IF EXISTS (SELECT 1 FROM information_schema.COLUMNS "
		    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'items' AND COLUMN_NAME = 'name') "
		    "THEN ALTER TABLE `items` MODIFY COLUMN `name` varchar(100), LOCK=NONE; END IF; END;\n");
	/* One ALTER drops the column and trades the index names; a re-run skips it. */
	expect_step(&plan, 2, PHASE_CONTRACT, 3, "rename_column", true,
		    "DROP TRIGGER IF EXISTS `dbp_v002_01_items_sync_i`;\n"
		    "DROP TRIGGER IF EXISTS `dbp_v002_01_items_sync_u`;\n"
		    "BEGIN NOT ATOMIC IF EXISTS (SELECT 1 FROM information_schema.COLUMNS "
		    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'items' AND COLUMN_NAME = 'name') "
		    "THEN ALTER TABLE `items` DROP INDEX `ix_items_name`, DROP COLUMN `name`, "
		    "RENAME INDEX `dbp_v002_01_ix_items_name_ix` TO `ix_items_name`, LOCK=NONE; "
		    "END IF; END;\n");
	expect_step(&plan, 2, PHASE_CONTRACT, 4, "rename_column", true,
		    "ALTER TABLE `items` MODIFY COLUMN `qty` int NOT NULL DEFAULT 0, LOCK=NONE;\n");
	expect_step(&plan, 2, PHASE_CONTRACT, 5, "rename_column", true,
		    "BEGIN NOT ATOMIC IF EXISTS (SELECT 1 FROM information_schema.COLUMNS "
		    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'items' AND COLUMN_NAME = 'n') "
		    "THEN ALTER TABLE `items` MODIFY COLUMN `n` int, LOCK=NONE; END IF; END;\n");
	cr_assert_eq(plan_count(&plan, 2, PHASE_CONTRACT), 6);
	plan_release(&plan);
}

Test(plan, rename_column_triggers_sqlite)
{
	struct plan plan;

	write_versions(golden_v1, rename_v2);
	build_ok(DB_BACKEND_SQLITE, &plan);
	expect_step(&plan, 2, PHASE_EXPAND, 2, "rename_column", true,
		    "DROP TRIGGER IF EXISTS \"dbp_v002_01_items_sync_i\";\n"
		    "CREATE TRIGGER \"dbp_v002_01_items_sync_i\" AFTER INSERT ON \"items\" FOR EACH ROW "
		    "WHEN NEW.\"title\" IS NULL AND NEW.\"name\" IS NOT NULL "
		    "BEGIN UPDATE \"items\" SET \"title\" = NEW.\"name\" WHERE rowid = NEW.rowid; END;\n"
		    "DROP TRIGGER IF EXISTS \"dbp_v002_01_items_sync_i2\";\n"
		    "CREATE TRIGGER \"dbp_v002_01_items_sync_i2\" AFTER INSERT ON \"items\" FOR EACH ROW "
		    "WHEN NEW.\"name\" IS NULL AND NEW.\"title\" IS NOT NULL "
		    "BEGIN UPDATE \"items\" SET \"name\" = NEW.\"title\" WHERE rowid = NEW.rowid; END;\n"
		    "DROP TRIGGER IF EXISTS \"dbp_v002_01_items_sync_u\";\n"
		    "CREATE TRIGGER \"dbp_v002_01_items_sync_u\" AFTER UPDATE OF \"name\" ON \"items\" "
		    "FOR EACH ROW WHEN NEW.\"name\" IS NOT OLD.\"name\" "
		    "BEGIN UPDATE \"items\" SET \"title\" = NEW.\"name\" WHERE rowid = NEW.rowid; END;\n"
		    "DROP TRIGGER IF EXISTS \"dbp_v002_01_items_sync_u2\";\n"
		    "CREATE TRIGGER \"dbp_v002_01_items_sync_u2\" AFTER UPDATE OF \"title\" ON \"items\" "
		    "FOR EACH ROW WHEN NEW.\"title\" IS NOT OLD.\"title\" "
		    "BEGIN UPDATE \"items\" SET \"name\" = NEW.\"title\" WHERE rowid = NEW.rowid; END;\n");
	/* AFTER triggers come too late for NOT NULL: the old column loses it. */
	expect_step(&plan, 2, PHASE_EXPAND, 3, "rename_column", true,
		    "rebuild items.name not_null 0 default - drop_default 0\n");
	expect_step(&plan, 2, PHASE_EXPAND, 7, "rename_column", true,
		    "DROP TRIGGER IF EXISTS \"dbp_v002_02_items_sync_i3\";\n"
		    "CREATE TRIGGER \"dbp_v002_02_items_sync_i3\" AFTER INSERT ON \"items\" FOR EACH ROW "
		    "WHEN NEW.\"n\" IS NULL AND NEW.\"qty\" IS NULL "
		    "BEGIN UPDATE \"items\" SET \"n\" = 0, \"qty\" = 0 WHERE rowid = NEW.rowid; END;\n");
	expect_step(&plan, 2, PHASE_EXPAND, 8, "rename_column", true,
		    "rebuild items.n not_null 0 default - drop_default 1\n");
	expect_step(&plan, 2, PHASE_CONTRACT, 1, "rename_column", true,
		    "rebuild items.title not_null 1 default - drop_default 0\n");
	expect_step(&plan, 2, PHASE_CONTRACT, 2, "rename_column", true,
		    "DROP TRIGGER IF EXISTS \"dbp_v002_01_items_sync_i\";\n"
		    "DROP TRIGGER IF EXISTS \"dbp_v002_01_items_sync_i2\";\n"
		    "DROP TRIGGER IF EXISTS \"dbp_v002_01_items_sync_i3\";\n"
		    "DROP TRIGGER IF EXISTS \"dbp_v002_01_items_sync_u\";\n"
		    "DROP TRIGGER IF EXISTS \"dbp_v002_01_items_sync_u2\";\n"
		    "DROP INDEX IF EXISTS \"ix_items_name\";\n"
		    "ALTER TABLE \"items\" DROP COLUMN \"name\";\n"
		    "DROP INDEX IF EXISTS \"dbp_v002_01_ix_items_name_ix\";\n"
		    "CREATE INDEX \"ix_items_name\" ON \"items\" (\"title\");\n");
	expect_step(&plan, 2, PHASE_CONTRACT, 3, "rename_column", true,
		    "rebuild items.qty not_null 1 default 0 drop_default 0\n");
	cr_assert_eq(plan_count(&plan, 2, PHASE_CONTRACT), 4);
	plan_release(&plan);
}

static const char change_type_v2[] =
	"operations:\n"
	"  - change_type: {table: items, column: n, to: bigint}\n";

Test(plan, change_type_shadow_column_per_backend)
{
	static const char v1[] =
		"operations:\n"
		"  - create_table:\n"
		"      name: items\n"
		"      columns:\n"
		"        - {name: id, type: integer, primary_key: true}\n"
		"        - {name: n, type: integer, nullable: false, default: 0}\n"
		"  - add_index: {table: items, name: ix_items_n, columns: [n, id]}\n";
	struct plan plan;

	write_versions(v1, change_type_v2);
	build_ok(DB_BACKEND_POSTGRESQL, &plan);
	expect_step(&plan, 2, PHASE_EXPAND, 1, "change_type", true,
		    "ALTER TABLE \"items\" ADD COLUMN \"dbp_v002_01_n_new\" bigint;\n");
	expect_step(&plan, 2, PHASE_EXPAND, 2, "change_type", true,
		    "CREATE OR REPLACE FUNCTION \"dbp_v002_01_items_cast_fn\"() RETURNS trigger "
		    "LANGUAGE plpgsql AS $dbphase$\n"
		    "#variable_conflict use_column\n"
		    "BEGIN\n"
		    "  NEW.\"dbp_v002_01_n_new\" := CAST(NEW.\"n\" AS bigint);\n"
		    "  RETURN NEW;\n"
		    "END $dbphase$\n;\n"
		    "DROP TRIGGER IF EXISTS \"dbp_v002_01_items_cast_i\" ON \"items\";\n"
		    "CREATE TRIGGER \"dbp_v002_01_items_cast_i\" BEFORE INSERT OR UPDATE ON \"items\" "
		    "FOR EACH ROW EXECUTE FUNCTION \"dbp_v002_01_items_cast_fn\"();\n");
	expect_step(&plan, 2, PHASE_EXPAND, 3, "change_type", false,
		    "DROP INDEX CONCURRENTLY IF EXISTS \"dbp_v002_01_ix_items_n_ix\";\n"
		    "CREATE INDEX CONCURRENTLY \"dbp_v002_01_ix_items_n_ix\" ON \"items\" "
		    "(\"dbp_v002_01_n_new\", \"id\");\n");
	expect_step(&plan, 2, PHASE_MIGRATE, 1, "change_type", true,
		    "batches on items by id (integer): SET \"dbp_v002_01_n_new\" = CAST(\"n\" AS bigint) "
		    "WHERE \"dbp_v002_01_n_new\" IS NULL AND \"n\" IS NOT NULL\n");
	/* The shadow takes the default and NOT NULL while the trigger fills it ... */
	expect_step(&plan, 2, PHASE_CONTRACT, 1, "change_type", true,
		    "ALTER TABLE \"items\" ALTER COLUMN \"dbp_v002_01_n_new\" SET DEFAULT 0;\n");
	expect_step(&plan, 2, PHASE_CONTRACT, 2, "change_type", false,
		    "ALTER TABLE \"items\" DROP CONSTRAINT IF EXISTS \"dbp_v002_01_items_nn\";\n"
		    "ALTER TABLE \"items\" ADD CONSTRAINT \"dbp_v002_01_items_nn\" "
		    "CHECK (\"dbp_v002_01_n_new\" IS NOT NULL) NOT VALID;\n"
		    "ALTER TABLE \"items\" VALIDATE CONSTRAINT \"dbp_v002_01_items_nn\";\n"
		    "ALTER TABLE \"items\" ALTER COLUMN \"dbp_v002_01_n_new\" SET NOT NULL;\n"
		    "ALTER TABLE \"items\" DROP CONSTRAINT \"dbp_v002_01_items_nn\";\n");
	/* ... then takes the name in one transaction. */
	expect_step(&plan, 2, PHASE_CONTRACT, 3, "change_type", true,
		    "DROP TRIGGER IF EXISTS \"dbp_v002_01_items_cast_i\" ON \"items\";\n"
		    "DROP FUNCTION IF EXISTS \"dbp_v002_01_items_cast_fn\"();\n"
		    "ALTER TABLE \"items\" DROP COLUMN \"n\";\n"
		    "ALTER TABLE \"items\" RENAME COLUMN \"dbp_v002_01_n_new\" TO \"n\";\n"
		    "ALTER INDEX \"dbp_v002_01_ix_items_n_ix\" RENAME TO \"ix_items_n\";\n");
	cr_assert_eq(plan_count(&plan, 2, PHASE_CONTRACT), 3);
	plan_release(&plan);

	build_ok(DB_BACKEND_MYSQL, &plan);
	expect_step(&plan, 2, PHASE_EXPAND, 2, "change_type", true,
		    "DROP TRIGGER IF EXISTS `dbp_v002_01_items_cast_i`;\n"
		    "CREATE TRIGGER `dbp_v002_01_items_cast_i` BEFORE INSERT ON `items` FOR EACH ROW "
		    "SET NEW.`dbp_v002_01_n_new` = NEW.`n`;\n"
		    "DROP TRIGGER IF EXISTS `dbp_v002_01_items_cast_u`;\n"
		    "CREATE TRIGGER `dbp_v002_01_items_cast_u` BEFORE UPDATE ON `items` FOR EACH ROW "
		    "SET NEW.`dbp_v002_01_n_new` = NEW.`n`;\n");
	expect_step(&plan, 2, PHASE_CONTRACT, 1, "change_type", true,
		    "BEGIN NOT ATOMIC IF EXISTS (SELECT 1 FROM information_schema.COLUMNS "
		    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'items' "
		    "AND COLUMN_NAME = 'dbp_v002_01_n_new') "
		    "THEN ALTER TABLE `items` MODIFY COLUMN `dbp_v002_01_n_new` bigint NOT NULL DEFAULT 0, "
		    "LOCK=NONE; END IF; END;\n");
	/* Writes wait while the triggers go and one renaming ALTER swaps the columns. */
	expect_step(&plan, 2, PHASE_CONTRACT, 2, "change_type", true,
		    "LOCK TABLES `items` WRITE;\n"
		    "DROP TRIGGER IF EXISTS `dbp_v002_01_items_cast_i`;\n"
		    "DROP TRIGGER IF EXISTS `dbp_v002_01_items_cast_u`;\n"
		    "BEGIN NOT ATOMIC IF EXISTS (SELECT 1 FROM information_schema.COLUMNS "
		    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'items' "
		    "AND COLUMN_NAME = 'dbp_v002_01_n_new') "
		    "THEN ALTER TABLE `items` DROP INDEX `ix_items_n`, DROP COLUMN `n`, "
		    "CHANGE COLUMN `dbp_v002_01_n_new` `n` bigint NOT NULL DEFAULT 0, "
		    "RENAME INDEX `dbp_v002_01_ix_items_n_ix` TO `ix_items_n`, ALGORITHM=NOCOPY; END IF; END;\n"
		    "UNLOCK TABLES;\n");
	cr_assert_eq(plan_count(&plan, 2, PHASE_CONTRACT), 2);
	plan_release(&plan);

	build_ok(DB_BACKEND_SQLITE, &plan);
	expect_step(&plan, 2, PHASE_EXPAND, 2, "change_type", true,
		    "DROP TRIGGER IF EXISTS \"dbp_v002_01_items_cast_i\";\n"
		    "CREATE TRIGGER \"dbp_v002_01_items_cast_i\" AFTER INSERT ON \"items\" FOR EACH ROW "
		    "BEGIN UPDATE \"items\" SET \"dbp_v002_01_n_new\" = CAST(\"n\" AS INTEGER) "
		    "WHERE rowid = NEW.rowid; END;\n"
		    "DROP TRIGGER IF EXISTS \"dbp_v002_01_items_cast_u\";\n"
		    "CREATE TRIGGER \"dbp_v002_01_items_cast_u\" AFTER UPDATE OF \"n\" ON \"items\" "
		    "FOR EACH ROW BEGIN UPDATE \"items\" SET \"dbp_v002_01_n_new\" = CAST(\"n\" AS INTEGER) "
		    "WHERE rowid = NEW.rowid; END;\n");
	/* The default before the swap; NOT NULL after it (AFTER triggers fill late). */
	expect_step(&plan, 2, PHASE_CONTRACT, 1, "change_type", true,
		    "rebuild items.dbp_v002_01_n_new not_null -1 default 0 drop_default 0\n");
	expect_step(&plan, 2, PHASE_CONTRACT, 2, "change_type", true,
		    "DROP TRIGGER IF EXISTS \"dbp_v002_01_items_cast_i\";\n"
		    "DROP TRIGGER IF EXISTS \"dbp_v002_01_items_cast_u\";\n"
		    "DROP INDEX IF EXISTS \"ix_items_n\";\n"
		    "ALTER TABLE \"items\" DROP COLUMN \"n\";\n"
		    "ALTER TABLE \"items\" RENAME COLUMN \"dbp_v002_01_n_new\" TO \"n\";\n"
		    "DROP INDEX IF EXISTS \"dbp_v002_01_ix_items_n_ix\";\n"
		    "CREATE INDEX \"ix_items_n\" ON \"items\" (\"n\", \"id\");\n");
	expect_step(&plan, 2, PHASE_CONTRACT, 3, "change_type", true,
		    "rebuild items.n not_null 1 default - drop_default 0\n");
	plan_release(&plan);
}

/*
 * A contract step that restates a column (MariaDB's MODIFY COLUMN) or sets
 * its default must not undo what a later operation of the migration did to
 * it in expand.
 */
Test(plan, contract_steps_see_the_whole_migration)
{
	struct plan plan;

	write_versions(golden_v1,
		       "operations:\n"
		       "  - set_not_null: {table: items, column: name}\n"
		       "  - rename_column: {table: items, from: n, to: qty}\n"
		       "  - set_default: {table: items, column: name, default: anon}\n"
		       "  - set_default: {table: items, column: qty, default: 7}\n");
	build_ok(DB_BACKEND_MYSQL, &plan);
	expect_step(&plan, 2, PHASE_CONTRACT, 1, "set_not_null", true,
		    "ALTER TABLE `items` MODIFY COLUMN `name` varchar(100) NOT NULL "
		    "DEFAULT 'anon', LOCK=NONE;\n");
	expect_step(&plan, 2, PHASE_CONTRACT, 2, "rename_column", true,
		    "ALTER TABLE `items` MODIFY COLUMN `qty` int NOT NULL DEFAULT 7, LOCK=NONE;\n");
	plan_release(&plan);
	build_ok(DB_BACKEND_POSTGRESQL, &plan);
	expect_step(&plan, 2, PHASE_CONTRACT, 2, "rename_column", true,
		    "ALTER TABLE \"items\" ALTER COLUMN \"qty\" SET DEFAULT 7;\n");
	plan_release(&plan);
	build_ok(DB_BACKEND_SQLITE, &plan);
	expect_step(&plan, 2, PHASE_CONTRACT, 2, "rename_column", true,
		    "rebuild items.qty not_null 1 default 7 drop_default 0\n");
	plan_release(&plan);
}

/* ---- determinism --------------------------------------------------------- */

static void
expect_same_plans(const struct plan *a, const struct plan *b)
{
	size_t i, j;

	cr_assert_eq(a->n_steps, b->n_steps);
	cr_assert_eq(a->latest, b->latest);
	for (i = 0; i < a->n_steps; i++) {
		const struct plan_step *x = &a->steps[i], *y = &b->steps[i];
		char *tx = step_text(x), *ty = step_text(y);
		char *ix = plan_step_id(x), *iy = plan_step_id(y);

		cr_assert_str_eq(ix, iy, "[%s] step %zu", bname(a->backend), i);
		cr_assert_str_eq(x->op_kind, y->op_kind);
		cr_assert_eq(x->op_index, y->op_index);
		cr_assert_str_eq(x->op_where, y->op_where);
		cr_assert_str_eq(x->source, y->source);
		cr_assert_str_eq(x->reason, y->reason);
		cr_assert_eq(x->atomic, y->atomic);
		cr_assert_str_eq(tx, ty, "[%s] %s differs", bname(a->backend), ix);
		for (j = 0; j < x->n_keys; j++)
			cr_assert_str_eq(x->keys[j], y->keys[j]);
		free(tx);
		free(ty);
		free(ix);
		free(iy);
	}
}

Test(plan, same_input_gives_the_same_plan)
{
	const char *root = getenv("DBPHASE_SOURCE_ROOT");
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	char *shop;
	int b;

	cr_assert_not_null(root, "DBPHASE_SOURCE_ROOT is not set");
	shop = xasprintf("%s/doc/examples/shop", root);
	for (b = 0; b < DB_BACKEND__COUNT; b++) {
		struct plan p1, p2;
		struct repo r1, r2;
		struct catalog c1, c2;

		/* Two loads and two builds, nothing shared between them. */
		cr_assert_eq(repo_load(&r1, shop, NULL, &err), 0, "%s", err.message);
		cr_assert_eq(catalog_load(&c1, r1.phases_dir, &err), 0, "%s", err.message);
		cr_assert_eq(plan_build(&p1, &r1, &c1, (enum db_backend)b, &err), 0, "%s",
			     err.message);
		cr_assert_eq(repo_load(&r2, shop, NULL, &err), 0, "%s", err.message);
		cr_assert_eq(catalog_load(&c2, r2.phases_dir, &err), 0, "%s", err.message);
		cr_assert_eq(plan_build(&p2, &r2, &c2, (enum db_backend)b, &err), 0, "%s",
			     err.message);
		cr_assert_gt(p1.n_steps, 20, "[%s] only %zu steps", bname((enum db_backend)b),
			     p1.n_steps);
		cr_assert_eq(p1.latest, 5);
		expect_same_plans(&p1, &p2);
		/* And a rebuild with the same catalog. */
		plan_release(&p2);
		cr_assert_eq(plan_build(&p2, &r1, &c1, (enum db_backend)b, &err), 0, "%s",
			     err.message);
		expect_same_plans(&p1, &p2);
		plan_release(&p1);
		plan_release(&p2);
		catalog_release(&c1);
		catalog_release(&c2);
		repo_release(&r1);
		repo_release(&r2);
	}
	free(shop);
}

Test(plan, steps_are_ordered_by_version_phase_and_operation)
{
	struct plan plan;
	size_t i;

	write_versions(golden_v1, not_null_v2);
	build_ok(DB_BACKEND_POSTGRESQL, &plan);
	for (i = 1; i < plan.n_steps; i++) {
		const struct plan_step *a = &plan.steps[i - 1], *b = &plan.steps[i];

		cr_assert(a->version < b->version ||
			  (a->version == b->version && a->phase < b->phase) ||
			  (a->version == b->version && a->phase == b->phase &&
			   a->seq + 1 == b->seq && a->op_index <= b->op_index),
			  "step %zu is out of order", i);
	}
	{
		char *id = plan_step_id(step_at(&plan, 2, PHASE_CONTRACT, 2));

		cr_assert_str_eq(id, "v002.contract.2");
		free(id);
	}
	plan_release(&plan);
}

/* ---- phase classification ------------------------------------------------ */

/* "expand.add_column migrate.backfill.batches contract.add_column.rebuild ..." of v2. */
static char *
signature(const struct plan *plan)
{
	struct strbuf sb = STRBUF_INIT;
	size_t i;

	for (i = 0; i < plan->n_steps; i++) {
		const struct plan_step *s = &plan->steps[i];

		if (s->version != 2)
			continue;
		strbuf_addf(&sb, "%s%s.%s%s", sb.len ? " " : "", phase_name(s->phase), s->op_kind,
			    s->action == STEP_BACKFILL ? ".batches" :
			    s->action == STEP_REBUILD ? ".rebuild" : "");
	}
	return strbuf_detach(&sb);
}

static const char classify_v1[] =
	"operations:\n"
	"  - create_table:\n"
	"      name: owners\n"
	"      columns:\n"
	"        - {name: id, type: integer, primary_key: true}\n"
	"  - create_table:\n"
	"      name: items\n"
	"      columns:\n"
	"        - {name: id, type: integer, primary_key: true}\n"
	"        - {name: name, type: \"varchar(100)\", nullable: false}\n"
	"        - {name: n, type: integer, nullable: false, default: 0}\n"
	"        - {name: note, type: \"varchar(100)\"}\n"
	"        - {name: owner_id, type: integer}\n"
	"  - add_index: {table: items, name: ix_items_name, columns: [name]}\n"
	"  - add_check: {table: items, name: ck_items_n, check: n >= 0}\n";

static const struct {
	const char *ops;		/* the operations of version 2 */
	const char *want[DB_BACKEND__COUNT];	/* by backend: sqlite, postgresql, mysql */
} classification[] = {
	{ "  - create_table: {name: t2, columns: [{name: id, type: integer, primary_key: true}]}\n",
	  { [DB_BACKEND_SQLITE] = "expand.create_table",
	    [DB_BACKEND_POSTGRESQL] = "expand.create_table",
	    [DB_BACKEND_MYSQL] = "expand.create_table" } },
	{ "  - drop_table: {name: owners}\n",
	  { [DB_BACKEND_SQLITE] = "contract.drop_table",
	    [DB_BACKEND_POSTGRESQL] = "contract.drop_table",
	    [DB_BACKEND_MYSQL] = "contract.drop_table" } },
	{ "  - rename_table: {name: items, to: products}\n",
	  { [DB_BACKEND_SQLITE] = "expand.rename_table contract.rename_table",
	    [DB_BACKEND_POSTGRESQL] = "expand.rename_table contract.rename_table",
	    [DB_BACKEND_MYSQL] = "expand.rename_table contract.rename_table" } },
	{ "  - add_column: {table: items, column: {name: c, type: text}}\n",
	  { [DB_BACKEND_SQLITE] = "expand.add_column",
	    [DB_BACKEND_POSTGRESQL] = "expand.add_column",
	    [DB_BACKEND_MYSQL] = "expand.add_column" } },
	{ "  - add_column: {table: items, column: {name: c, type: integer, nullable: false,"
	  " default: 1}}\n",
	  { [DB_BACKEND_SQLITE] = "expand.add_column",
	    [DB_BACKEND_POSTGRESQL] = "expand.add_column",
	    [DB_BACKEND_MYSQL] = "expand.add_column" } },
	{ "  - add_column: {table: items, column: {name: c, type: integer, nullable: false}}\n"
	  "  - backfill: {table: items, set: {c: n * 2}}\n",
	  { [DB_BACKEND_SQLITE] = "expand.add_column expand.backfill expand.backfill "
				  "migrate.backfill.batches contract.add_column.rebuild contract.backfill",
	    [DB_BACKEND_POSTGRESQL] = "expand.add_column expand.backfill migrate.backfill.batches "
				      "contract.add_column contract.backfill",
	    [DB_BACKEND_MYSQL] = "expand.add_column expand.backfill migrate.backfill.batches "
				 "contract.add_column contract.backfill" } },
	{ "  - drop_column: {table: items, column: note}\n",
	  { [DB_BACKEND_SQLITE] = "contract.drop_column",
	    [DB_BACKEND_POSTGRESQL] = "contract.drop_column",
	    [DB_BACKEND_MYSQL] = "contract.drop_column" } },
	{ "  - drop_column: {table: items, column: name}\n",
	  { [DB_BACKEND_SQLITE] = "expand.drop_column.rebuild contract.drop_column",
	    [DB_BACKEND_POSTGRESQL] = "expand.drop_column contract.drop_column",
	    [DB_BACKEND_MYSQL] = "expand.drop_column contract.drop_column" } },
	{ "  - rename_column: {table: items, from: name, to: title}\n",
	  { [DB_BACKEND_SQLITE] = "expand.rename_column expand.rename_column "
				  "expand.rename_column.rebuild expand.rename_column "
				  "migrate.rename_column.batches contract.rename_column.rebuild "
				  "contract.rename_column",
	    [DB_BACKEND_POSTGRESQL] = "expand.rename_column expand.rename_column "
				      "expand.rename_column migrate.rename_column.batches "
				      "contract.rename_column contract.rename_column",
	    [DB_BACKEND_MYSQL] = "expand.rename_column expand.rename_column expand.rename_column "
				 "migrate.rename_column.batches contract.rename_column "
				 "contract.rename_column contract.rename_column" } },
	{ "  - change_type: {table: items, column: note, to: text}\n",
	  { [DB_BACKEND_SQLITE] = "expand.change_type expand.change_type "
				  "migrate.change_type.batches contract.change_type",
	    [DB_BACKEND_POSTGRESQL] = "expand.change_type expand.change_type "
				      "migrate.change_type.batches contract.change_type",
	    [DB_BACKEND_MYSQL] = "expand.change_type expand.change_type "
				 "migrate.change_type.batches contract.change_type" } },
	{ "  - set_default: {table: items, column: note, default: x}\n",
	  { [DB_BACKEND_SQLITE] = "expand.set_default.rebuild",
	    [DB_BACKEND_POSTGRESQL] = "expand.set_default",
	    [DB_BACKEND_MYSQL] = "expand.set_default" } },
	{ "  - drop_default: {table: items, column: n}\n",
	  { [DB_BACKEND_SQLITE] = "contract.drop_default.rebuild",
	    [DB_BACKEND_POSTGRESQL] = "contract.drop_default",
	    [DB_BACKEND_MYSQL] = "contract.drop_default" } },
	{ "  - set_not_null: {table: items, column: note}\n",
	  { [DB_BACKEND_SQLITE] = "contract.set_not_null.rebuild",
	    [DB_BACKEND_POSTGRESQL] = "expand.set_not_null migrate.set_not_null contract.set_not_null",
	    [DB_BACKEND_MYSQL] = "contract.set_not_null" } },
	{ "  - backfill: {table: items, set: {note: \"'-'\"}, where: note IS NULL}\n"
	  "  - set_not_null: {table: items, column: note}\n",
	  { [DB_BACKEND_SQLITE] = "migrate.backfill.batches contract.set_not_null.rebuild",
	    [DB_BACKEND_POSTGRESQL] = "migrate.backfill.batches migrate.set_not_null "
				      "migrate.set_not_null contract.set_not_null",
	    [DB_BACKEND_MYSQL] = "migrate.backfill.batches contract.set_not_null" } },
	{ "  - drop_not_null: {table: items, column: name}\n",
	  { [DB_BACKEND_SQLITE] = "expand.drop_not_null.rebuild",
	    [DB_BACKEND_POSTGRESQL] = "expand.drop_not_null",
	    [DB_BACKEND_MYSQL] = "expand.drop_not_null" } },
	{ "  - add_index: {table: items, name: ix2, columns: [n]}\n",
	  { [DB_BACKEND_SQLITE] = "expand.add_index",
	    [DB_BACKEND_POSTGRESQL] = "expand.add_index",
	    [DB_BACKEND_MYSQL] = "expand.add_index" } },
	{ "  - drop_index: {name: ix_items_name}\n",
	  { [DB_BACKEND_SQLITE] = "contract.drop_index",
	    [DB_BACKEND_POSTGRESQL] = "contract.drop_index",
	    [DB_BACKEND_MYSQL] = "contract.drop_index" } },
	{ "  - add_unique: {table: items, name: uq2, columns: [name, n]}\n",
	  { [DB_BACKEND_SQLITE] = "expand.add_unique",
	    [DB_BACKEND_POSTGRESQL] = "expand.add_unique",
	    [DB_BACKEND_MYSQL] = "expand.add_unique" } },
	{ "  - add_check: {table: items, name: ck2, check: n < 100}\n",
	  { [DB_BACKEND_SQLITE] = "migrate.add_check",
	    [DB_BACKEND_POSTGRESQL] = "expand.add_check migrate.add_check",
	    [DB_BACKEND_MYSQL] = "migrate.add_check" } },
	{ "  - add_foreign_key: {table: items, name: fk2, columns: [owner_id], references: owners}\n",
	  { [DB_BACKEND_SQLITE] = "migrate.add_foreign_key",
	    [DB_BACKEND_POSTGRESQL] = "expand.add_foreign_key migrate.add_foreign_key",
	    [DB_BACKEND_MYSQL] = "migrate.add_foreign_key" } },
	{ "  - drop_constraint: {table: items, name: ck_items_n}\n",
	  { [DB_BACKEND_SQLITE] = "contract.drop_constraint",
	    [DB_BACKEND_POSTGRESQL] = "contract.drop_constraint",
	    [DB_BACKEND_MYSQL] = "contract.drop_constraint" } },
	{ "  - backfill: {table: items, set: {n: n + 1}}\n",
	  { [DB_BACKEND_SQLITE] = "migrate.backfill.batches",
	    [DB_BACKEND_POSTGRESQL] = "migrate.backfill.batches",
	    [DB_BACKEND_MYSQL] = "migrate.backfill.batches" } },
	{ "  - add_column: {table: items, column: {name: c, type: text}}\n"
	  "  - backfill: {table: items, set: {c: upper(name)}}\n",
	  { [DB_BACKEND_SQLITE] = "expand.add_column expand.backfill expand.backfill "
				  "migrate.backfill.batches contract.backfill",
	    [DB_BACKEND_POSTGRESQL] = "expand.add_column expand.backfill migrate.backfill.batches "
				      "contract.backfill",
	    [DB_BACKEND_MYSQL] = "expand.add_column expand.backfill migrate.backfill.batches "
				 "contract.backfill" } },
	{ "  - sql: {phase: contract, all: DELETE FROM items}\n"
	  "  - sql: {phase: expand, all: SELECT 1}\n"
	  "  - sql: {phase: migrate, postgresql: SELECT 2, mysql: SELECT 3, sqlite: ''}\n",
	  { [DB_BACKEND_SQLITE] = "expand.sql contract.sql",
	    [DB_BACKEND_POSTGRESQL] = "expand.sql migrate.sql contract.sql",
	    [DB_BACKEND_MYSQL] = "expand.sql migrate.sql contract.sql" } },
};

Test(plan, every_operation_lands_in_its_phases)
{
	size_t i;
	int b;

	for (i = 0; i < sizeof(classification) / sizeof(classification[0]); i++) {
		char *v2 = xasprintf("operations:\n%s", classification[i].ops);

		write_versions(classify_v1, v2);
		for (b = 0; b < DB_BACKEND__COUNT; b++) {
			struct plan plan;
			char *sig;

			build_ok((enum db_backend)b, &plan);
			sig = signature(&plan);
			cr_assert_str_eq(sig, classification[i].want[b], "[%s] %s\ngives %s\nexpected %s",
					 bname((enum db_backend)b), classification[i].ops, sig,
					 classification[i].want[b]);
			free(sig);
			plan_release(&plan);
		}
		free(v2);
	}
}

Test(plan, every_catalog_operation_is_classified)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct catalog cat;
	size_t i, j;

	cr_assert_eq(catalog_load(&cat, NULL, &err), 0, "%s", err.message);
	cr_assert_eq(cat.n_ops, 19, "the catalog has %zu operations", cat.n_ops);
	for (i = 0; i < cat.n_ops; i++) {
		char *key = xasprintf("  - %s:", cat.ops[i].name);
		bool found = false;

		for (j = 0; j < sizeof(classification) / sizeof(classification[0]); j++)
			if (strncmp(classification[j].ops, key, strlen(key)) == 0 ||
			    strstr(classification[j].ops, key))
				found = true;
		cr_assert(found, "operation %s has no classification case", cat.ops[i].name);
		free(key);
	}
	catalog_release(&cat);
}

/* ---- refusals ------------------------------------------------------------ */

static const char refuse_v1[] =
	"operations:\n"
	"  - create_table:\n"
	"      name: items\n"
	"      columns:\n"
	"        - {name: id, type: integer, primary_key: true}\n"
	"        - {name: name, type: \"varchar(100)\", nullable: false}\n"
	"        - {name: legacy, type: text}\n";

Test(plan, refuses_a_column_used_after_its_drop)
{
	write_versions(refuse_v1,
		       "operations:\n"
		       "  - drop_column: {table: items, column: legacy}\n"
		       "  - add_index: {table: items, name: ix_legacy, columns: [name, legacy]}\n");
	build_fails("%D/versions/002_new.yaml:3:64: add_index: column 'legacy' does not exist in "
		    "table 'items' at version 2: it was dropped by drop_column at "
		    "%D/versions/002_new.yaml:2:5");
}

Test(plan, refuses_a_column_dropped_in_an_earlier_version)
{
	test_write_file(dir, "versions/003_later.yaml",
			"operations:\n"
			"  - backfill: {table: items, set: {legacy: \"'x'\"}}\n");
	write_versions(refuse_v1,
		       "operations:\n"
		       "  - drop_column: {table: items, column: legacy}\n");
	build_fails("%D/versions/003_later.yaml:2:36: backfill: column 'legacy' does not exist in "
		    "table 'items' at version 3: it was dropped by drop_column at "
		    "%D/versions/002_new.yaml:2:5");
}

Test(plan, refuses_a_rename_onto_an_existing_name)
{
	write_versions(refuse_v1,
		       "operations:\n"
		       "  - rename_column: {table: items, from: legacy, to: name}\n");
	build_fails("%D/versions/002_new.yaml:2:53: rename_column: column 'name' already exists "
		    "in table 'items'");
}

Test(plan, refuses_a_table_rename_onto_an_existing_table)
{
	write_versions(refuse_v1,
		       "operations:\n"
		       "  - create_table: {name: other, columns: [{name: id, type: integer,"
		       " primary_key: true}]}\n"
		       "  - rename_table: {name: other, to: items}\n");
	build_fails("%D/versions/002_new.yaml:3:37: rename_table: table 'items' already exists at "
		    "version 2");
}

Test(plan, refuses_the_old_name_after_a_rename)
{
	write_versions(refuse_v1,
		       "operations:\n"
		       "  - rename_column: {table: items, from: legacy, to: old_stuff}\n"
		       "  - add_index: {table: items, name: ix_legacy, columns: [legacy]}\n");
	build_fails("%D/versions/002_new.yaml:3:58: add_index: column 'legacy' does not exist in "
		    "table 'items' at version 2: it was renamed to 'old_stuff' by rename_column at "
		    "%D/versions/002_new.yaml:2:5");
}

Test(plan, refuses_changes_to_a_table_renamed_by_the_same_migration)
{
	write_versions(refuse_v1,
		       "operations:\n"
		       "  - rename_table: {name: items, to: products}\n"
		       "  - add_column: {table: products, column: {name: c, type: text}}\n");
	build_fails("%D/versions/002_new.yaml:3:25: add_column: table 'products' is a view of "
		    "'items' until the contract of this migration (rename_table at "
		    "%D/versions/002_new.yaml:2:5): change it in a later migration");
}

Test(plan, refuses_a_backfill_of_a_missing_column)
{
	write_versions(refuse_v1,
		       "operations:\n"
		       "  - backfill:\n"
		       "      table: items\n"
		       "      set: {email_lower: lower(name)}\n");
	build_fails("%D/versions/002_new.yaml:4:13: backfill: column 'email_lower' does not exist in "
		    "table 'items' at version 2");
}

Test(plan, refuses_a_backfill_before_its_column_is_added)
{
	write_versions(refuse_v1,
		       "operations:\n"
		       "  - backfill: {table: items, set: {c: lower(name)}}\n"
		       "  - add_column: {table: items, column: {name: c, type: text}}\n");
	build_fails("%D/versions/002_new.yaml:2:36: backfill: column 'c' does not exist in "
		    "table 'items' at version 2");
}

Test(plan, refuses_an_unknown_operation)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct catalog cat;
	char *names, *want;

	cr_assert_eq(catalog_load(&cat, NULL, &err), 0, "%s", err.message);
	names = catalog_names(&cat);
	catalog_release(&cat);
	cr_assert(strstr(names, "add_column, ") && strstr(names, "rename_column"), "%s", names);
	write_versions(refuse_v1,
		       "operations:\n"
		       "  - add_column: {table: items, column: {name: c, type: text}}\n"
		       "  - rename_colum: {table: items, from: name, to: title}\n");
	want = xasprintf("%%D/versions/002_new.yaml:3:5: unknown operation 'rename_colum'; "
			 "expected one of: %s", names);
	build_fails(want);
	free(want);
	free(names);
}

/* A 1 MB name is quoted in the message only in part, cut with "...". */
Test(plan, long_name_cut_in_message)
{
	struct strbuf text = STRBUF_INIT, want = STRBUF_INIT;
	int i;

	strbuf_addstr(&text, "operations:\n  - add_column:\n      table: ");
	for (i = 0; i < 1024 * 1024; i++)
		strbuf_addch(&text, 't');
	strbuf_addstr(&text, "\n      column: {name: c, type: text}\n");
	write_versions(refuse_v1, text.buf);
	strbuf_addstr(&want, "%D/versions/002_new.yaml:3:14: add_column: '");
	for (i = 0; i < 80; i++)
		strbuf_addch(&want, 't');
	strbuf_addstr(&want, "...' is not a valid name (1 to 63 characters)");
	build_fails(want.buf);
	strbuf_release(&text);
	strbuf_release(&want);
}

/*
 * MariaDB indexes a TEXT or BLOB column only by a prefix length, which
 * add_index and add_unique cannot give: refused when planning for MariaDB
 * (a unique one failed at run time, half way through expand), at the
 * column, and accepted on the other backends.
 */
Test(plan, mariadb_refuses_an_index_on_text_without_a_prefix)
{
	static const char v1[] =
		"operations:\n"
		"  - create_table:\n"
		"      name: docs\n"
		"      columns:\n"
		"        - {name: id, type: bigint, primary_key: true}\n"
		"        - {name: title, type: \"varchar(100)\"}\n"
		"        - {name: body, type: text}\n"
		"        - {name: raw, type: bytes}\n"
		"        - {name: meta, type: json}\n";
	static const struct {
		const char *v2;
		const char *message;	/* for MariaDB */
	} cases[] = {
		{ "operations:\n  - add_index: {table: docs, name: ix_body, columns: [title, body]}\n",
		  "%D/versions/002_new.yaml:2:62: add_index: column 'body' is text, which MariaDB"
		  " can index only by a prefix length, and add_index takes none: index a"
		  " varchar(n) column, or write the index in an 'sql' operation with the prefix"
		  " (e.g. mysql: CREATE INDEX ix_body ON docs (body(191)))" },
		{ "operations:\n  - add_index: {table: docs, name: ix_raw, columns: [raw], unique: true}\n",
		  "%D/versions/002_new.yaml:2:54: add_index: column 'raw' is bytes, which MariaDB"
		  " can index only by a prefix length, and add_index takes none: index a"
		  " varchar(n) column, or write the index in an 'sql' operation with the prefix"
		  " (e.g. mysql: CREATE INDEX ix_raw ON docs (raw(191)))" },
		{ "operations:\n  - add_unique: {table: docs, name: uq_meta, columns: [meta]}\n",
		  "%D/versions/002_new.yaml:2:56: add_unique: column 'meta' is json, which MariaDB"
		  " can index only by a prefix length, and add_unique takes none: index a"
		  " varchar(n) column, or write the index in an 'sql' operation with the prefix"
		  " (e.g. mysql: CREATE INDEX uq_meta ON docs (meta(191)))" },
	};
	size_t i;
	int b;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_versions(v1, cases[i].v2);
		for (b = 0; b < DB_BACKEND__COUNT; b++) {
			struct dbphase_error err = DBPHASE_ERROR_INIT;
			struct plan plan;
			char *want;
			int rc = build((enum db_backend)b, &plan, &err);

			if (b != DB_BACKEND_MYSQL) {
				cr_assert_eq(rc, 0, "[%s] %s", bname((enum db_backend)b), err.message);
				plan_release(&plan);
				continue;
			}
			cr_assert_eq(rc, DBPHASE_EBADINPUT, "case %zu: planned for MariaDB", i);
			want = strdup(cases[i].message);
			{
				struct strbuf sb = STRBUF_INIT;

				strbuf_addf(&sb, "%s%s", dir, strstr(want, "%D") + 2);
				free(want);
				want = strbuf_detach(&sb);
			}
			cr_assert_str_eq(err.message, want);
			free(want);
			err_release(&err);
		}
	}
	/* A varchar column is indexed as it is. */
	write_versions(v1, "operations:\n  - add_index: {table: docs, name: ix_t, columns: [title]}\n");
	{
		struct plan plan;

		build_ok(DB_BACKEND_MYSQL, &plan);
		plan_release(&plan);
	}
}

Test(plan, refuses_an_unknown_field)
{
	write_versions(refuse_v1,
		       "operations:\n"
		       "  - add_column: {table: items, colum: {name: c, type: text}}\n");
	build_fails("%D/versions/002_new.yaml:2:32: add_column: unknown field 'colum'; expected "
		    "one of: table, column");
}

Test(plan, refuses_an_unknown_column_field)
{
	write_versions(refuse_v1,
		       "operations:\n"
		       "  - add_column: {table: items, column: {name: c, type: text, nullabel: true}}\n");
	build_fails("%D/versions/002_new.yaml:2:62: add_column: unknown column field 'nullabel'; "
		    "expected name, type, nullable, default, primary_key, autoincrement");
}

Test(plan, refuses_a_missing_required_field)
{
	write_versions(refuse_v1,
		       "operations:\n"
		       "  - rename_column:\n"
		       "      table: items\n"
		       "      from: name\n");
	build_fails("%D/versions/002_new.yaml:2:5: rename_column: missing required field 'to'");
}

Test(plan, refuses_a_list_where_a_name_is_expected)
{
	write_versions(refuse_v1,
		       "operations:\n"
		       "  - drop_column: {table: items, column: [name, legacy]}\n");
	build_fails("%D/versions/002_new.yaml:2:41: drop_column: 'column' must be a string, "
		    "not a list");
}

Test(plan, refuses_an_unknown_column_type)
{
	write_versions(refuse_v1,
		       "operations:\n"
		       "  - add_column: {table: items, column: {name: c, type: varchar2(10)}}\n");
	build_fails("%D/versions/002_new.yaml:2:56: add_column: unknown type 'varchar2(10)'; "
		    "expected integer, bigint, smallint, boolean, text, varchar(n), numeric(p,s), "
		    "real, double, date, timestamp, timestamptz, bytes, json or uuid");
}

Test(plan, refuses_an_unknown_target_type)
{
	write_versions(refuse_v1,
		       "operations:\n"
		       "  - change_type: {table: items, column: legacy, to: string}\n");
	build_fails("%D/versions/002_new.yaml:2:53: change_type: unknown type 'string'; expected "
		    "integer, bigint, smallint, boolean, text, varchar(n), numeric(p,s), real, "
		    "double, date, timestamp, timestamptz, bytes, json, uuid");
}

Test(plan, refuses_not_null_without_default_or_backfill)
{
	write_versions(refuse_v1,
		       "operations:\n"
		       "  - add_column: {table: items, column: {name: c, type: text, nullable: false}}\n"
		       "  - backfill: {table: items, set: {legacy: \"'x'\"}}\n");
	build_fails("%D/versions/002_new.yaml:2:5: add_column: column 'c' of 'items' is NOT NULL "
		    "without a default, so old code's inserts would fail: give it a default, or add "
		    "a backfill of it to this migration");
}

Test(plan, refuses_a_backfill_mixing_new_and_existing_columns)
{
	write_versions(refuse_v1,
		       "operations:\n"
		       "  - add_column: {table: items, column: {name: c, type: text}}\n"
		       "  - backfill: {table: items, set: {c: upper(name), legacy: \"'x'\"}}\n");
	build_fails("%D/versions/002_new.yaml:3:35: backfill: mixes columns added by this "
		    "migration with existing ones; write two backfills (a derived value gets a "
		    "trigger, a one-off fix does not)");
}

Test(plan, refuses_sql_that_leaves_a_backend_out)
{
	write_versions(refuse_v1,
		       "operations:\n"
		       "  - sql: {phase: migrate, postgresql: SELECT 1}\n");
	{
		struct dbphase_error err = DBPHASE_ERROR_INIT;
		struct plan plan;

		cr_assert_eq(build(DB_BACKEND_POSTGRESQL, &plan, &err), 0, "%s", err.message);
		plan_release(&plan);
		cr_assert_eq(build(DB_BACKEND_SQLITE, &plan, &err), DBPHASE_EBADINPUT);
		cr_assert(strstr(err.message, "002_new.yaml:2:5: sql: no SQL for sqlite: give "
					      "'sqlite:' (or 'all:'), empty if nothing is to run there"),
			  "%s", err.message);
		err_release(&err);
	}
}

/* ---- where steps come from ----------------------------------------------- */

/* "phases/OP.yaml:LINE" of the built-in catalog's step index of op; caller frees. */
static char *
builtin_source(const char *op, size_t index)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	const struct catalog_op *cop;
	struct catalog cat;
	char *source;

	cr_assert_eq(catalog_load(&cat, NULL, &err), 0, "%s", err.message);
	cop = catalog_find(&cat, op);
	cr_assert_not_null(cop, "no operation %s", op);
	cr_assert_lt(index, cop->n_steps);
	source = xasprintf("%s:%d", cop->source, cop->steps[index].line);
	cr_assert(strncmp(source, "phases/", 7) == 0, "%s", source);
	catalog_release(&cat);
	return source;
}

Test(plan, steps_name_their_catalog_file_and_line)
{
	struct plan plan;
	size_t i;

	write_versions(golden_v1, not_null_v2);
	build_ok(DB_BACKEND_POSTGRESQL, &plan);
	for (i = 0; i < plan.n_steps; i++) {
		const struct plan_step *s = &plan.steps[i];
		char *prefix = xasprintf("phases/%s.yaml:", s->op_kind);

		cr_assert(strncmp(s->source, prefix, strlen(prefix)) == 0 &&
			  atoi(s->source + strlen(prefix)) > 0, "step %zu comes from '%s'", i,
			  s->source);
		free(prefix);
	}
	{
		/* add_column's second step (NOT NULL: added nullable), and its third. */
		char *expand = builtin_source("add_column", 1), *contract = builtin_source("add_column", 2);

		cr_assert_str_eq(step_at(&plan, 2, PHASE_EXPAND, 1)->source, expand);
		cr_assert_str_eq(step_at(&plan, 2, PHASE_CONTRACT, 1)->source, contract);
		free(expand);
		free(contract);
	}
	{
		char *where = xasprintf("%s/versions/002_new.yaml:3:5", dir);

		cr_assert_str_eq(step_at(&plan, 2, PHASE_MIGRATE, 1)->op_where, where);
		free(where);
	}
	plan_release(&plan);
}

static const char custom_add_index[] =
	"# This repository builds its indexes its own way.\n"
	"operation: add_index\n"
	"summary: Create an index, the repository's way\n"
	"params:\n"
	"  table: {kind: table, required: true}\n"
	"  name: {kind: identifier, required: true}\n"
	"  columns: {kind: columns, required: true}\n"
	"  unique: {kind: bool}\n"
	"steps:\n"
	"  - phase: migrate\n"
	"    reason: built after the data moved\n"
	"    sql:\n"
	"      all: CREATE INDEX {name} ON {table} ({columns})\n";

Test(plan, repository_phases_override_a_builtin_operation)
{
	struct plan plan;
	char *source;

	test_write_file(dir, "phases/add_index.yaml", custom_add_index);
	write_versions(golden_v1, NULL);
	build_ok(DB_BACKEND_MYSQL, &plan);
	cr_assert_eq(plan_count(&plan, 1, PHASE_EXPAND), 1);
	cr_assert_eq(plan_count(&plan, 1, PHASE_MIGRATE), 1);
	expect_step(&plan, 1, PHASE_MIGRATE, 1, "add_index", true,
		    "CREATE INDEX `ix_items_name` ON `items` (`name`);\n");
	source = xasprintf("%s/phases/add_index.yaml:10", dir);
	cr_assert_str_eq(step_at(&plan, 1, PHASE_MIGRATE, 1)->source, source);
	cr_assert_str_eq(step_at(&plan, 1, PHASE_MIGRATE, 1)->reason, "built after the data moved");
	free(source);
	/* The other operations stay built in. */
	source = builtin_source("create_table", 0);
	cr_assert_str_eq(step_at(&plan, 1, PHASE_EXPAND, 1)->source, source);
	free(source);
	plan_release(&plan);
}

Test(plan, dbphase_plan_names_the_file_of_each_step)
{
	const char *args[] = { "--repository", NULL, "plan", "--dialect", "postgresql", "--sql",
			       NULL };
	char *out = NULL, *want;
	int rc;

	test_write_file(dir, "phases/add_index.yaml", custom_add_index);
	write_versions(golden_v1, not_null_v2);
	args[1] = dir;
	rc = test_dbphase_run(args, &out);
	cr_assert_eq(rc, 0, "dbphase plan exited %d:\n%s", rc, out);
	{
		static const struct {
			const char *op;
			size_t index;
		} used[] = {
			{ "create_table", 0 }, { "add_column", 1 }, { "backfill", 0 },
			{ "backfill", 3 }, { "add_column", 2 }, { "backfill", 4 },
		};
		size_t i;

		for (i = 0; i < sizeof(used) / sizeof(used[0]); i++) {
			char *src = builtin_source(used[i].op, used[i].index);

			want = xasprintf("[%s]", src);
			cr_assert(strstr(out, want), "no '%s' in:\n%s", want, out);
			free(want);
			free(src);
		}
	}
	want = xasprintf("[%s/phases/add_index.yaml:10]", dir);
	cr_assert(strstr(out, want), "no '%s' in:\n%s", want, out);
	cr_assert(strstr(out, "CREATE INDEX \"ix_items_name\" ON \"items\" (\"name\");"), "%s", out);
	free(want);
	free(out);
}

/*
 * plan --sql starts with the lock timeout the executor sets, so that its
 * SQL piped into psql or mariadb does not queue every query behind an
 * ALTER waiting for its lock.
 */
Test(plan, plan_sql_starts_with_the_lock_timeout)
{
	static const struct {
		const char *dialect;
		const char *timeout;	/* --lock-timeout, or NULL: the default, 2000 ms */
		const char *set;
	} cases[] = {
		{ "postgresql", NULL, "SET lock_timeout = '2000ms';\n" },
		{ "postgresql", "1500", "SET lock_timeout = '1500ms';\n" },
		{ "mysql", NULL, "SET SESSION lock_wait_timeout = 2, "
				 "SESSION innodb_lock_wait_timeout = 2;\n" },
		{ "mysql", "1500", "SET SESSION lock_wait_timeout = 2, "
				   "SESSION innodb_lock_wait_timeout = 2;\n" },
		{ "mysql", "3000", "SET SESSION lock_wait_timeout = 3, "
				   "SESSION innodb_lock_wait_timeout = 3;\n" },
		{ "sqlite", NULL, "PRAGMA busy_timeout = 2000;\n" },
		{ "sqlite", "1500", "PRAGMA busy_timeout = 1500;\n" },
	};
	size_t i;

	write_versions(golden_v1, NULL);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *args[] = { "--repository", dir, "plan", "--dialect", cases[i].dialect,
				       "--sql", cases[i].timeout ? "--lock-timeout" : NULL,
				       cases[i].timeout, NULL };
		char *out = NULL, *want;
		int rc = test_dbphase_run(args, &out);

		cr_assert_eq(rc, 0, "dbphase plan exited %d:\n%s", rc, out);
		/* MariaDB's sessions are set up first, as the driver does at connect. */
		want = xasprintf("-- plan of repository 'plan' to version 1 for %s\n%s"
				 "-- dbphase runs every statement below under this lock timeout"
				 " (--lock-timeout, lock_timeout_ms):\n%s\n-- expand\n",
				 cases[i].dialect, strcmp(cases[i].dialect, "mysql") == 0 ?
				 "-- dbphase's sessions are set up so (as it does at connect):\n"
				 "SET NAMES utf8mb4;\n"
				 "SET time_zone = '+00:00';\n"
				 "SET SESSION sql_mode = TRIM(BOTH ',' FROM REGEXP_REPLACE("
				 "@@SESSION.sql_mode, '(^|,)(NO_BACKSLASH_ESCAPES|ANSI_QUOTES|ANSI|DB2|"
				 "MAXDB|MSSQL|ORACLE|POSTGRESQL)(?=,|$)', ''));\n" : "",
				 cases[i].set);
		cr_assert(strncmp(out, want, strlen(want)) == 0, "expected\n%s\ngot\n%s", want,
			  out);
		free(want);
		free(out);
	}
}

Test(plan, a_bad_repository_catalog_file_is_refused)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct plan plan;
	char *want;

	test_write_file(dir, "phases/add_index.yaml",
			"operation: add_index\n"
			"steps:\n"
			"  - phase: sometime\n"
			"    sql: {all: SELECT 1}\n");
	write_versions(golden_v1, NULL);
	cr_assert_eq(build(DB_BACKEND_SQLITE, &plan, &err), DBPHASE_EBADINPUT);
	want = xasprintf("%s/phases/add_index.yaml:3:12: unknown phase 'sometime'; expected "
			 "expand, migrate or contract", dir);
	cr_assert_str_eq(err.message, want);
	free(want);
	err_release(&err);
}

/* SQLite fills existing rows only with a constant default: refused before anything runs. */
Test(plan, sqlite_refuses_a_non_constant_default_on_an_existing_table)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct plan plan;
	char *want;

	write_versions(golden_v1,
		       "operations:\n"
		       "  - add_column:\n"
		       "      table: items\n"
		       "      column: {name: seen, type: timestamp, default: {expr: CURRENT_TIMESTAMP}}\n");
	cr_assert_eq(build(DB_BACKEND_SQLITE, &plan, &err), DBPHASE_EBADINPUT);
	want = xasprintf("%s/versions/002_new.yaml:4:15: add_column: SQLite cannot add a column whose "
			 "default is an expression or CURRENT_TIME/DATE/TIMESTAMP to an existing "
			 "table; give a constant default, or add it nullable and backfill it", dir);
	cr_assert_str_eq(err.message, want);
	free(want);
	err_release(&err);
	/* PostgreSQL and MariaDB fill existing rows with it. */
	cr_assert_eq(build(DB_BACKEND_POSTGRESQL, &plan, &err), 0, "%s", err.message);
	plan_release(&plan);
}

/* No old code writes a table its own migration creates: NOT NULL needs no backfill there. */
Test(plan, not_null_column_on_a_table_of_the_same_migration)
{
	struct plan plan;
	int b;

	write_versions(golden_v1,
		       "operations:\n"
		       "  - create_table:\n"
		       "      name: tags\n"
		       "      columns:\n"
		       "        - {name: id, type: bigint, primary_key: true}\n"
		       "  - add_column: {table: tags, column: {name: label, type: text, nullable: false}}\n");
	for (b = 0; b < DB_BACKEND__COUNT; b++) {
		build_ok((enum db_backend)b, &plan);
		cr_assert_eq(plan_count(&plan, 2, PHASE_CONTRACT), 0, "[%s] NOT NULL waited for contract",
			     bname((enum db_backend)b));
		plan_release(&plan);
	}
}

/* PostgreSQL fires triggers in name order: names must sort as operations do. */
Test(plan, object_names_sort_in_operation_order)
{
	struct strbuf v2 = STRBUF_INIT;
	struct plan plan;
	const char *first = NULL, *twelfth = NULL;
	size_t i;
	int k;

	strbuf_addstr(&v2, "operations:\n"
		      "  - add_column: {table: items, column: {name: c1, type: text}}\n"
		      "  - backfill: {table: items, set: {c1: \"name\"}}\n");
	for (k = 3; k <= 11; k++)
		strbuf_addf(&v2, "  - add_column: {table: items, column: {name: c%d, type: text}}\n", k);
	strbuf_addstr(&v2, "  - backfill: {table: items, set: {c11: \"name\"}}\n");
	write_versions(golden_v1, v2.buf);
	build_ok(DB_BACKEND_POSTGRESQL, &plan);
	for (i = 0; i < plan.n_steps; i++) {
		const struct plan_step *s = &plan.steps[i];

		if (s->phase != PHASE_EXPAND || strcmp(s->op_kind, "backfill") != 0)
			continue;
		if (strstr(s->sql[s->n_sql - 1], "\"dbp_v002_02_items_fill_i\""))
			first = "dbp_v002_02_items_fill_i";
		if (strstr(s->sql[s->n_sql - 1], "\"dbp_v002_12_items_fill_i\""))
			twelfth = "dbp_v002_12_items_fill_i";
	}
	cr_assert_not_null(first, "the second operation's trigger is not named dbp_v002_02_...");
	cr_assert_not_null(twelfth, "the twelfth operation's trigger is not named dbp_v002_12_...");
	cr_assert_lt(strcmp(first, twelfth), 0);
	plan_release(&plan);
	strbuf_release(&v2);
}

/* ---- generated names ------------------------------------------------------ */

/* Every name after "CREATE TRIGGER " in the plan, once each; a name twice fails. */
static void
expect_distinct_triggers(const struct plan *plan)
{
	char **seen = NULL;
	size_t n_seen = 0, i, j, k;

	for (i = 0; i < plan->n_steps; i++) {
		const struct plan_step *s = &plan->steps[i];

		for (j = 0; j < s->n_sql; j++) {
			const char *p = strstr(s->sql[j], "CREATE TRIGGER ");
			const char *end;
			char *name;

			if (p == NULL)
				continue;
			p += strlen("CREATE TRIGGER ");
			end = strchr(p, ' ');
			name = xstrndup(p, (size_t)(end - p));
			for (k = 0; k < n_seen; k++)
				cr_assert_str_neq(seen[k], name, "[%s] trigger %s is created twice",
						  bname(plan->backend), name);
			seen = xrealloc(seen, (n_seen + 1) * sizeof(char *));
			seen[n_seen++] = name;
		}
	}
	cr_assert_geq(n_seen, 4, "[%s] only %zu triggers", bname(plan->backend), n_seen);
	for (k = 0; k < n_seen; k++)
		free(seen[k]);
	free(seen);
}

/* Checks whose names share 60 bytes, and one check name on two tables: four triggers each. */
Test(plan, constraint_triggers_have_distinct_names)
{
	struct plan plan;

	write_versions("operations:\n"
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
		       " check: \"n < 200\"}\n");
	build_ok(DB_BACKEND_MYSQL, &plan);
	expect_distinct_triggers(&plan);
	plan_release(&plan);
	build_ok(DB_BACKEND_SQLITE, &plan);
	expect_distinct_triggers(&plan);
	plan_release(&plan);
}

Test(plan, refuses_generated_names_that_clash)
{
	write_versions("operations:\n"
		       "  - create_table:\n"
		       "      name: a_b\n"
		       "      columns:\n"
		       "        - {name: id, type: integer, primary_key: true}\n"
		       "  - create_table:\n"
		       "      name: a\n"
		       "      columns:\n"
		       "        - {name: id, type: integer, primary_key: true}\n"
		       "  - add_check: {table: a_b, name: c, check: \"id > 0\"}\n"
		       "  - add_check: {table: a, name: b_c, check: \"id > 0\"}\n",
		       NULL);
	build_fails("%D/versions/001_old.yaml:11:5: add_check: the name 'a_b_c_dbp_i' that "
		    "dbphase makes for constraint 'b_c' of table 'a' is already the name it made "
		    "for another object at %D/versions/001_old.yaml:10:5; rename one of them");
}

Test(plan, refuses_a_constraint_name_taken_on_its_table)
{
	write_versions(golden_v1,
		       "operations:\n"
		       "  - add_check: {table: items, name: ck_n, check: \"n >= 0\"}\n"
		       "  - add_check: {table: items, name: ck_n, check: \"n < 10\"}\n");
	build_fails("%D/versions/002_new.yaml:3:37: add_check: constraint 'ck_n' already exists "
		    "on table 'items' (added at %D/versions/002_new.yaml:2:5)");
}

/* Whether s is well-formed UTF-8. */
static bool
valid_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		int n = *p < 0x80 ? 0 : (*p & 0xE0) == 0xC0 ? 1 : (*p & 0xF0) == 0xE0 ? 2 :
			(*p & 0xF8) == 0xF0 ? 3 : -1;

		if (n < 0)
			return false;
		for (p++; n > 0; n--, p++)
			if ((*p & 0xC0) != 0x80)
				return false;
	}
	return true;
}

/* A long unicode table name: the names made from it are cut between characters. */
Test(plan, generated_names_are_cut_between_characters)
{
	static const char e30[] = "ééééééééééééééééééééééééééééé"
				  "é";	/* 30 x U+00E9, 60 bytes */
	struct strbuf v1 = STRBUF_INIT, v2 = STRBUF_INIT;
	size_t i, j;
	int b;

	strbuf_addf(&v1, "operations:\n"
		    "  - create_table:\n"
		    "      name: %s\n"
		    "      columns:\n"
		    "        - {name: id, type: integer, primary_key: true}\n"
		    "        - {name: n, type: integer}\n"
		    "        - {name: m, type: integer}\n"
		    "  - add_check: {table: %s, name: ck_%s, check: \"n >= 0\"}\n"
		    "  - add_index: {table: %s, name: ix_%s, columns: [n]}\n",
		    e30, e30, e30, e30, e30);
	strbuf_addf(&v2, "operations:\n"
		    "  - rename_column: {table: %s, from: n, to: n2}\n"
		    "  - change_type: {table: %s, column: m, to: bigint}\n", e30, e30);
	cr_assert_eq(strlen(e30), 60);
	write_versions(v1.buf, v2.buf);
	for (b = 0; b < DB_BACKEND__COUNT; b++) {
		struct plan plan;

		build_ok((enum db_backend)b, &plan);
		for (i = 0; i < plan.n_steps; i++)
			for (j = 0; j < plan.steps[i].n_sql; j++)
				cr_assert(valid_utf8(plan.steps[i].sql[j]),
					  "[%s] v%lld.%s.%d is not valid UTF-8:\n%s",
					  bname((enum db_backend)b), (long long)plan.steps[i].version,
					  phase_name(plan.steps[i].phase), plan.steps[i].seq,
					  plan.steps[i].sql[j]);
		plan_release(&plan);
	}
	strbuf_release(&v1);
	strbuf_release(&v2);
}

/* ---- constraints across later column changes ----------------------------- */

static const char keyed_v1[] =
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
	"        - {name: score, type: integer}\n"
	"  - add_foreign_key: {table: items, name: fk_items_owner, columns: [owner_id],"
	" references: owners}\n"
	"  - add_check: {table: items, name: ck_items_score, check: \"score >= 0\"}\n";

/* All the plan's statements of version 2, in order, for searching. */
static char *
version_text(const struct plan *plan, int64_t version)
{
	struct strbuf sb = STRBUF_INIT;
	size_t i;

	for (i = 0; i < plan->n_steps; i++)
		if (plan->steps[i].version == version) {
			char *t = step_text(&plan->steps[i]);

			strbuf_addf(&sb, "-- %s\n%s", phase_name(plan->steps[i].phase), t);
			free(t);
		}
	return strbuf_detach(&sb);
}

static void
expect_in(const char *text, enum db_backend b, const char *want)
{
	cr_assert(strstr(text, want), "[%s] the plan lacks\n  %s\nin\n%s", bname(b), want, text);
}

Test(plan, rename_column_carries_checks_and_foreign_keys)
{
	struct plan plan;
	char *text;

	write_versions(keyed_v1,
		       "operations:\n"
		       "  - rename_column: {table: items, from: score, to: points}\n"
		       "  - rename_column: {table: items, from: owner_id, to: owner}\n");
	build_ok(DB_BACKEND_POSTGRESQL, &plan);
	text = version_text(&plan, 2);
	expect_in(text, plan.backend, "EXECUTE 'ALTER TABLE \"items\" ADD CONSTRAINT "
		  "\"dbp_v002_01_ck_items_score_ck\" ' || d || ' NOT VALID';");
	expect_in(text, plan.backend, "ALTER TABLE \"items\" VALIDATE CONSTRAINT "
		  "\"dbp_v002_01_ck_items_score_ck\";\n");
	expect_in(text, plan.backend, "ALTER TABLE \"items\" ADD CONSTRAINT "
		  "\"dbp_v002_02_fk_items_owner_fk\" FOREIGN KEY (\"owner\") REFERENCES "
		  "\"owners\" (\"id\") NOT VALID;\n");
	expect_in(text, plan.backend, "ALTER TABLE \"items\" RENAME CONSTRAINT "
		  "\"dbp_v002_02_fk_items_owner_fk\" TO \"fk_items_owner\";\n");
	free(text);
	plan_release(&plan);
	build_ok(DB_BACKEND_MYSQL, &plan);
	text = version_text(&plan, 2);
	expect_in(text, plan.backend, "CREATE OR REPLACE TRIGGER `items_ck_items_score_dbp_i` "
		  "BEFORE INSERT ON `items` FOR EACH ROW IF NOT ((SELECT (score >= 0) FROM "
		  "(SELECT NEW.`points` AS `score`) AS `items`)) THEN");
	expect_in(text, plan.backend, "ALTER TABLE `items` DROP FOREIGN KEY IF EXISTS "
		  "`fk_items_owner`;\n");
	expect_in(text, plan.backend, "ALTER TABLE `items` ADD CONSTRAINT `fk_items_owner` "
		  "FOREIGN KEY IF NOT EXISTS (`owner`) REFERENCES `owners` (`id`);\n");
	free(text);
	plan_release(&plan);
	build_ok(DB_BACKEND_SQLITE, &plan);
	text = version_text(&plan, 2);
	expect_in(text, plan.backend, "DROP TRIGGER IF EXISTS \"items_ck_items_score_dbp_i\";\n"
		  "DROP TRIGGER IF EXISTS \"items_ck_items_score_dbp_u\";\n"
		  "ALTER TABLE \"items\" DROP COLUMN \"score\";\n");
	expect_in(text, plan.backend, "CREATE TRIGGER \"items_fk_items_owner_dbp_i\" BEFORE "
		  "INSERT ON \"items\" FOR EACH ROW WHEN (NEW.\"owner\" IS NOT NULL) AND NOT EXISTS "
		  "(SELECT 1 FROM \"owners\" WHERE \"id\" = NEW.\"owner\")");
	free(text);
	plan_release(&plan);
}

Test(plan, change_type_carries_checks)
{
	struct plan plan;
	char *text;

	write_versions(keyed_v1,
		       "operations:\n"
		       "  - change_type: {table: items, column: score, to: bigint}\n");
	build_ok(DB_BACKEND_POSTGRESQL, &plan);
	text = version_text(&plan, 2);
	expect_in(text, plan.backend, "ALTER TABLE \"items\" DROP CONSTRAINT IF EXISTS "
		  "\"ck_items_score\";\nALTER TABLE \"items\" DROP COLUMN \"score\";\n");
	expect_in(text, plan.backend, "EXECUTE 'ALTER TABLE \"items\" ADD CONSTRAINT "
		  "\"ck_items_score\" ' || regexp_replace(current_setting('dbphase.ck0')");
	expect_in(text, plan.backend, "ALTER TABLE \"items\" VALIDATE CONSTRAINT "
		  "\"ck_items_score\";\n");
	free(text);
	plan_release(&plan);
	build_ok(DB_BACKEND_SQLITE, &plan);
	text = version_text(&plan, 2);
	expect_in(text, plan.backend, "CREATE TRIGGER \"items_ck_items_score_dbp_u\" BEFORE "
		  "UPDATE ON \"items\" FOR EACH ROW WHEN NOT ((SELECT (score >= 0) FROM "
		  "(SELECT NEW.\"score\" AS \"score\") AS \"items\"))");
	free(text);
	plan_release(&plan);
}

Test(plan, refuses_a_type_change_of_a_foreign_key_column)
{
	write_versions(keyed_v1,
		       "operations:\n"
		       "  - change_type: {table: items, column: owner_id, to: bigint}\n");
	build_fails("%D/versions/002_new.yaml:2:41: change_type: column 'owner_id' of 'items' "
		    "is in foreign key 'fk_items_owner' of 'items' (added at "
		    "%D/versions/001_old.yaml:12:5), whose two sides must keep matching types: "
		    "drop the key (drop_constraint) in an earlier version and add it again after "
		    "the change");
}

/*
 * What verify compares: one check per derived column, only for those, with
 * an exact NULL-safe condition per backend, and for a derived backfill
 * (whose column new code may write itself) whether it was filled.  The
 * conditions run against real servers in tests/integration/test-verify.c.
 */
Test(plan, derived_columns_get_a_verify_check_per_backend)
{
	static const char *const want[DB_BACKEND__COUNT][3] = {
		[DB_BACKEND_POSTGRESQL] = {
			"CAST(\"title\" AS text) IS DISTINCT FROM CAST((\"label\") AS text)",
			"CAST(CAST((CAST(\"n\" AS bigint)) AS bigint) AS text)",
			"\"email_lower\" IS NULL AND CAST((lower(email)) AS text) IS NOT NULL",
		},
		[DB_BACKEND_MYSQL] = {
			"NOT (CAST(CONVERT(`title` USING utf8mb4) AS BINARY) <=> "
			"CAST(CONVERT((`label`) USING utf8mb4) AS BINARY))",
			"<=> CAST((`n`) AS SIGNED))",
			"`email_lower` IS NULL AND CAST((lower(email)) AS CHAR) IS NOT NULL",
		},
		[DB_BACKEND_SQLITE] = {
			"\"title\" IS NOT (\"label\")",
			"IS NOT (CAST(\"n\" AS INTEGER))",
			"\"email_lower\" IS NULL AND (lower(email)) IS NOT NULL",
		},
	};
	static const char *const columns[3] = { "title", NULL, "email_lower" };
	size_t b, i;

	write_versions("operations:\n"
		       "  - create_table:\n"
		       "      name: items\n"
		       "      columns:\n"
		       "        - {name: id, type: bigint, primary_key: true}\n"
		       "        - {name: n, type: integer}\n"
		       "        - {name: label, type: \"varchar(50)\"}\n"
		       "        - {name: email, type: text}\n"
		       "        - {name: hits, type: integer}\n",
		       "operations:\n"
		       "  - rename_column: {table: items, from: label, to: title}\n"
		       "  - change_type: {table: items, column: n, to: bigint}\n"
		       "  - add_column: {table: items, column: {name: email_lower, type: text}}\n"
		       "  - backfill: {table: items, set: {email_lower: \"lower(email)\"}}\n"
		       "  - backfill: {table: items, set: {hits: \"hits + 1\"}}\n");
	for (b = 0; b < DB_BACKEND__COUNT; b++) {
		struct plan plan;

		build_ok((enum db_backend)b, &plan);
		/* The one-off fix of hits has nothing to compare. */
		cr_assert_eq(plan.n_checks, 3, "[%s] %zu checks", bname(b), plan.n_checks);
		for (i = 0; i < 3; i++) {
			const struct plan_check *c = &plan.checks[i];

			cr_assert_eq(c->version, 2);
			cr_assert_str_eq(c->table, "items");
			cr_assert_eq(c->n_keys, 1);
			cr_assert_str_eq(c->keys[0], "id");
			if (columns[i])
				cr_assert_str_eq(c->column, columns[i], "[%s]", bname(b));
			cr_assert(strstr(c->differs_sql, want[b][i]) != NULL, "[%s] check %zu: %s",
				  bname(b), i, c->differs_sql);
		}
		cr_assert_eq(plan.checks[0].kind, CHECK_RENAME);
		cr_assert_str_eq(plan.checks[0].source, "label");
		cr_assert_eq(plan.checks[1].kind, CHECK_TYPE);
		cr_assert_str_eq(plan.checks[1].source, "n converted to bigint");
		cr_assert_eq(plan.checks[2].kind, CHECK_DERIVED);
		cr_assert_str_eq(plan.checks[2].source, "lower(email)");
		plan_release(&plan);
	}
}

/* ---- trigger expressions (issue 10) -------------------------------------- */

/*
 * A column named like a type: the expression reaches the trigger as
 * written, read from the row, and SQLite's update trigger fires on the
 * columns it reads, never on a type.
 */
Test(plan, trigger_expression_is_not_rewritten)
{
	const struct plan_step *s;
	struct plan plan;

	write_versions("operations:\n"
		       "  - create_table:\n"
		       "      name: ev\n"
		       "      columns:\n"
		       "        - {name: id, type: integer, primary_key: true}\n"
		       "        - {name: at, type: timestamp}\n"
		       "        - {name: date, type: date}\n"
		       "        - {name: text, type: text}\n",
		       "operations:\n"
		       "  - add_column: {table: ev, column: {name: d, type: text}}\n"
		       "  - backfill: {table: ev, set: {d: \"CAST(CAST(at AS date) AS text) || text\"}}\n");
	build_ok(DB_BACKEND_POSTGRESQL, &plan);
	s = step_at(&plan, 2, PHASE_EXPAND, 2);
	cr_assert(strstr(s->sql[0], "NEW.\"d\" := (SELECT CAST(CAST(at AS date) AS text) || text "
			 "FROM (SELECT NEW.*) AS \"dbp_row\");"), "%s", s->sql[0]);
	cr_assert_str_eq(s->exercise_table, "ev");
	cr_assert_eq(s->n_triggers, 1);
	cr_assert_str_eq(s->triggers[0], "\"dbp_v002_02_ev_fill_i\"");
	plan_release(&plan);
	build_ok(DB_BACKEND_MYSQL, &plan);
	s = step_at(&plan, 2, PHASE_EXPAND, 2);
	cr_assert(strstr(s->sql[1], "SET NEW.`d` = (SELECT CAST(CAST(at AS date) AS text) || text "
			 "FROM (SELECT NEW.`at` AS `at`, NEW.`date` AS `date`, NEW.`text` AS `text`) "
			 "AS `dbp_row`);"), "%s", s->sql[1]);
	cr_assert_eq(s->n_triggers, 2);
	cr_assert_str_eq(s->triggers[1], "`dbp_v002_02_ev_fill_u`");
	plan_release(&plan);
	build_ok(DB_BACKEND_SQLITE, &plan);
	s = step_at(&plan, 2, PHASE_EXPAND, 3);
	cr_assert(strstr(s->sql[1], "AFTER UPDATE OF \"at\", \"text\" ON \"ev\""), "%s", s->sql[1]);
	plan_release(&plan);
	/* Steps that create no trigger are not fired. */
	build_ok(DB_BACKEND_POSTGRESQL, &plan);
	s = step_at(&plan, 2, PHASE_EXPAND, 1);
	cr_assert_null(s->exercise_table);
	plan_release(&plan);
}

/* A name holding $dbphase$ gets another quote tag for the function body. */
Test(plan, dollar_quote_tag_not_in_the_body)
{
	const struct plan_step *s;
	struct plan plan;

	write_versions(golden_v1,
		       "operations:\n"
		       "  - rename_column: {table: items, from: n, to: \"n$dbphase$\"}\n");
	build_ok(DB_BACKEND_POSTGRESQL, &plan);
	s = step_at(&plan, 2, PHASE_EXPAND, 2);
	cr_assert(strstr(s->sql[0], "LANGUAGE plpgsql AS $dbphase_1$\n"), "%s", s->sql[0]);
	cr_assert(strstr(s->sql[0], "NEW.\"n$dbphase$\""), "%s", s->sql[0]);
	cr_assert(strstr(s->sql[0], "END $dbphase_1$\n"), "%s", s->sql[0]);
	plan_release(&plan);
}

Test(plan, expression_must_be_one_expression)
{
	write_versions(golden_v1,
		       "operations:\n"
		       "  - backfill: {table: items, set: {n: \"n + 1; DROP TABLE items\"}}\n");
	for (int b = 0; b < DB_BACKEND__COUNT; b++) {
		struct dbphase_error err = DBPHASE_ERROR_INIT;
		struct plan plan;
		char *want = xasprintf("%s/versions/002_new.yaml:2:39: backfill: the value is not "
				       "one SQL expression for %s: a ';' ends the statement inside "
				       "the expression (line 1, column 6 of the expression)", dir,
				       bname((enum db_backend)b));

		cr_assert_eq(build((enum db_backend)b, &plan, &err), DBPHASE_EBADINPUT);
		cr_assert_str_eq(err.message, want);
		free(want);
		err_release(&err);
	}
}
