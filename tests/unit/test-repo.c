/*
 * tests/unit/test-repo.c - loading a migration repository: the good shape
 * (sorted versions, checksums, extensions, phases/), and one test per kind
 * of bad input, each checking the exact file:line:column reported.
 */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/repo.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "testlib.h"

static const char good_1[] =
	"description: Create customers\n"
	"operations:\n"
	"  - create_table:\n"
	"      name: customers\n"
	"      columns:\n"
	"        - {name: id, type: bigint, primary_key: true}\n";

static const char good_2[] =
	"operations:\n"
	"  - add_column: {table: customers, column: {name: email, type: text}}\n"
	"  - rename_column: {table: customers, from: name, to: full_name}\n";

static const char good_3[] =
	"description:\n"
	"operations:\n"
	"  - drop_column: {table: customers, column: legacy}\n";

static char *dir;

static void
setup(void)
{
	dir = test_mkdtemp();
}

static void
teardown(void)
{
	test_rmtree(dir);
	free(dir);
	dir = NULL;
}

TestSuite(repo, .init = setup, .fini = teardown);

/* A repository with 001 and the given file as version 2. */
static void
write_two(const char *name2, const char *text2)
{
	char *rel = xasprintf("versions/%s", name2);

	test_write_file(dir, "versions/001_first.yaml", good_1);
	test_write_file(dir, rel, text2);
	free(rel);
}

/*
 * Load dir (or its extension) and expect failure with code and the exact
 * message; "%D" in fmt stands for dir.
 */
static void
load_fails(const char *extension, int code, const char *fmt)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct strbuf want = STRBUF_INIT;
	struct repo repo;
	const char *p;
	int rc;

	for (p = fmt; *p; p++) {
		if (p[0] == '%' && p[1] == 'D') {
			strbuf_addstr(&want, dir);
			p++;
		} else {
			strbuf_addch(&want, *p);
		}
	}
	rc = repo_load(&repo, dir, extension, &err);
	cr_assert_eq(rc, code, "rc %d, message: %s", rc, err.message ? err.message : "(none)");
	cr_assert_eq(err.code, code);
	cr_assert_str_eq(err.message, want.buf);
	cr_assert_null(repo.migrations);
	cr_assert_null(repo.dir);
	repo_release(&repo);
	strbuf_release(&want);
	err_release(&err);
}

static void
load_ok(struct repo *repo, const char *extension)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;

	cr_assert_eq(repo_load(repo, dir, extension, &err), 0, "%s", err.message);
	err_release(&err);
}

static bool
is_hex64(const char *s)
{
	size_t i;

	if (strlen(s) != 64)
		return false;
	for (i = 0; i < 64; i++)
		if (!strchr("0123456789abcdef", s[i]))
			return false;
	return true;
}

Test(repo, loads_sorted_migrations)
{
	struct repo repo;
	const struct migration *m;
	char *path;

	test_write_file(dir, "versions/003_drop_legacy.yml", good_3);
	test_write_file(dir, "versions/001_initial.yaml", good_1);
	test_write_file(dir, "versions/002_customer_names.yaml", good_2);
	test_write_file(dir, "versions/README.md", "not a migration\n");
	load_ok(&repo, NULL);

	cr_assert_str_eq(repo.dir, dir);
	cr_assert_str_eq(repo.id, strrchr(dir, '/') + 1);
	cr_assert_null(repo.extension);
	cr_assert_str_eq(repo.version_table, "dbphase_version");
	cr_assert_null(repo.phases_dir);
	cr_assert_eq(repo.n_extensions, 0);
	cr_assert_eq(repo.n_migrations, 3);
	cr_assert_eq(repo_latest(&repo), 3);
	cr_assert_eq(repo.migrations[0].version, 1);
	cr_assert_eq(repo.migrations[1].version, 2);
	cr_assert_eq(repo.migrations[2].version, 3);

	m = repo_migration(&repo, 1);
	cr_assert_eq(m, &repo.migrations[0]);
	cr_assert_str_eq(m->slug, "initial");
	path = xasprintf("%s/versions/001_initial.yaml", dir);
	cr_assert_str_eq(m->path, path);
	free(path);
	cr_assert_str_eq(m->description, "Create customers");
	cr_assert_eq(m->n_ops, 1);
	cr_assert_str_eq(m->ops[0].kind, "create_table");
	cr_assert_eq(m->ops[0].node->line, 3);
	cr_assert_eq(m->ops[0].node->col, 5);
	cr_assert_str_eq(ynode_get(m->ops[0].args, "name")->scalar, "customers");
	cr_assert(is_hex64(m->checksum), "%s", m->checksum);

	m = repo_migration(&repo, 2);
	cr_assert_str_eq(m->slug, "customer_names");
	cr_assert_null(m->description);
	cr_assert_eq(m->n_ops, 2);
	cr_assert_str_eq(m->ops[0].kind, "add_column");
	cr_assert_str_eq(m->ops[1].kind, "rename_column");
	cr_assert_eq(m->ops[1].args->line, 3);
	cr_assert_eq(m->ops[1].args->col, 20);

	m = repo_migration(&repo, 3);
	cr_assert_str_eq(m->slug, "drop_legacy");
	cr_assert_null(m->description);
	cr_assert_null(repo_migration(&repo, 0));
	cr_assert_null(repo_migration(&repo, 4));
	repo_release(&repo);
	repo_release(&repo);
}

Test(repo, repository_yaml_and_folders)
{
	struct repo repo;
	char *want;

	test_write_file(dir, "repository.yaml",
			"id: shop\nversion_table: shop_schema_version\ndescription: The shop\n");
	test_write_file(dir, "versions/001_initial.yaml", good_1);
	test_write_file(dir, "phases/custom.yaml", "x: 1\n");
	test_write_file(dir, "extensions/zeta/versions/001_z.yaml", good_1);
	test_write_file(dir, "extensions/audit/versions/001_a.yaml", good_1);
	test_write_file(dir, "extensions/not-a-folder.txt", "x\n");
	load_ok(&repo, NULL);
	cr_assert_str_eq(repo.id, "shop");
	cr_assert_str_eq(repo.version_table, "shop_schema_version");
	want = xasprintf("%s/phases", dir);
	cr_assert_str_eq(repo.phases_dir, want);
	free(want);
	cr_assert_eq(repo.n_extensions, 2);
	cr_assert_str_eq(repo.extensions[0], "audit");
	cr_assert_str_eq(repo.extensions[1], "zeta");
	repo_release(&repo);
}

Test(repo, extension_is_loaded)
{
	struct repo repo;
	char *want;

	test_write_file(dir, "versions/001_initial.yaml", good_1);
	test_write_file(dir, "versions/002_two.yaml", good_2);
	test_write_file(dir, "extensions/audit/repository.yaml", "version_table: audit_version\n");
	test_write_file(dir, "extensions/audit/versions/001_audit_log.yaml", good_3);
	load_ok(&repo, "audit");
	want = xasprintf("%s/extensions/audit", dir);
	cr_assert_str_eq(repo.dir, want);
	free(want);
	cr_assert_str_eq(repo.extension, "audit");
	cr_assert_str_eq(repo.id, "audit");
	cr_assert_str_eq(repo.version_table, "audit_version");
	cr_assert_eq(repo.n_migrations, 1);
	cr_assert_str_eq(repo.migrations[0].slug, "audit_log");
	want = xasprintf("%s/extensions/audit/versions/001_audit_log.yaml", dir);
	cr_assert_str_eq(repo.migrations[0].path, want);
	free(want);
	cr_assert_str_eq(repo.migrations[0].ops[0].kind, "drop_column");
	cr_assert_eq(repo.n_extensions, 1);
	cr_assert_str_eq(repo.extensions[0], "audit");
	repo_release(&repo);
}

Test(repo, empty_versions_folder)
{
	struct repo repo;
	char *with_slash;

	test_write_file(dir, "versions/notes.txt", "nothing yet\n");
	with_slash = xasprintf("%s/", dir);
	{
		struct dbphase_error err = DBPHASE_ERROR_INIT;

		cr_assert_eq(repo_load(&repo, with_slash, NULL, &err), 0, "%s", err.message);
		err_release(&err);
	}
	cr_assert_str_eq(repo.dir, dir);
	cr_assert_eq(repo.n_migrations, 0);
	cr_assert_eq(repo_latest(&repo), 0);
	cr_assert_null(repo_migration(&repo, 1));
	repo_release(&repo);
	free(with_slash);
}

Test(repo, checksums)
{
	struct repo repo;
	char first[65];

	/* The SHA-256 test vector of "abc" (FIPS 180-2). */
	{
		char *hex = sha256_hex("abc", 3);

		cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
		free(hex);
		hex = sha256_hex("", 0);
		cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
		free(hex);
	}
	test_write_file(dir, "versions/001_initial.yaml", good_1);
	load_ok(&repo, NULL);
	{
		char *hex = sha256_hex(good_1, strlen(good_1));

		cr_assert_str_eq(repo.migrations[0].checksum, hex);
		free(hex);
	}
	memcpy(first, repo.migrations[0].checksum, 65);
	repo_release(&repo);

	/* One more space in a comment: a different file, a different checksum. */
	test_write_file(dir, "versions/001_initial.yaml", "# changed\n");
	test_write_file(dir, "versions/001_initial.yaml",
			"description: Create customers \n"
			"operations:\n"
			"  - create_table: {name: customers}\n");
	load_ok(&repo, NULL);
	cr_assert(is_hex64(repo.migrations[0].checksum));
	cr_assert_str_neq(repo.migrations[0].checksum, first);
	repo_release(&repo);
}

/* ---- one test per kind of bad input ---- */

Test(repo, yaml_syntax_error)
{
	write_two("002_bad.yaml", "description: a: b\noperations: []\n");
	load_fails(NULL, DBPHASE_EBADINPUT,
		   "%D/versions/002_bad.yaml:1:15: mapping values are not allowed in this context");
}

Test(repo, tab_indentation)
{
	write_two("002_tabs.yaml", "operations:\n\t- drop_table: {name: t}\n");
	load_fails(NULL, DBPHASE_EBADINPUT,
		   "%D/versions/002_tabs.yaml:2:1: found character that cannot start any token"
		   " (while scanning for the next token at line 2, column 1)");
}

Test(repo, bad_indentation)
{
	write_two("002_indent.yaml",
		  "operations:\n"
		  "  - add_column:\n"
		  "      table: t\n"
		  "     column: c\n");
	load_fails(NULL, DBPHASE_EBADINPUT,
		   "%D/versions/002_indent.yaml:4:6: did not find expected key"
		   " (while parsing a block mapping at line 2, column 5)");
}

Test(repo, duplicate_key)
{
	write_two("002_dup.yaml",
		  "description: first\n"
		  "operations:\n"
		  "  - drop_table: {name: t}\n"
		  "description: second\n");
	load_fails(NULL, DBPHASE_EBADINPUT,
		   "%D/versions/002_dup.yaml:4:1: duplicate key 'description' (first written at line 1)");
}

/* A 1 MB unknown key is quoted in the message only in part, cut with "...". */
Test(repo, long_unknown_key_cut_in_message)
{
	struct strbuf text = STRBUF_INIT, want = STRBUF_INIT;
	int i;

	strbuf_addstr(&text, "operations:\n  - drop_table: {name: t}\n? ");
	for (i = 0; i < 1024 * 1024; i++)
		strbuf_addch(&text, 'x');
	strbuf_addstr(&text, "\n: 1\n");
	write_two("002_long.yaml", text.buf);
	strbuf_addstr(&want, "%D/versions/002_long.yaml:3:3: unknown key '");
	for (i = 0; i < 80; i++)
		strbuf_addch(&want, 'x');
	strbuf_addstr(&want, "...' in migration; expected description, operations");
	load_fails(NULL, DBPHASE_EBADINPUT, want.buf);
	strbuf_release(&text);
	strbuf_release(&want);
}

Test(repo, alias)
{
	write_two("002_alias.yaml",
		  "operations:\n"
		  "  - add_column: &col {table: a, column: {name: x, type: text}}\n"
		  "  - add_column: *col\n");
	load_fails(NULL, DBPHASE_EBADINPUT,
		   "%D/versions/002_alias.yaml:3:17: alias '*col' is not allowed;"
		   " write the value in place (anchor at line 2)");
}

Test(repo, unknown_top_level_key)
{
	write_two("002_key.yaml",
		  "description: x\n"
		  "operation:\n"
		  "  - drop_table: {name: t}\n");
	load_fails(NULL, DBPHASE_EBADINPUT,
		   "%D/versions/002_key.yaml:2:1: unknown key 'operation' in migration;"
		   " expected description, operations");
}

Test(repo, operations_missing)
{
	write_two("002_noops.yaml", "\ndescription: nothing to do\n");
	load_fails(NULL, DBPHASE_EBADINPUT,
		   "%D/versions/002_noops.yaml:2:1: migration has no 'operations';"
		   " expected a list of operations");
}

Test(repo, operations_not_a_list)
{
	write_two("002_map.yaml",
		  "operations:\n"
		  "  add_column: {table: t, column: {name: c, type: text}}\n");
	load_fails(NULL, DBPHASE_EBADINPUT,
		   "%D/versions/002_map.yaml:2:3: 'operations' must be a list of operations,"
		   " not a mapping");
}

Test(repo, operations_null)
{
	write_two("002_null.yaml", "description: x\noperations:\n");
	load_fails(NULL, DBPHASE_EBADINPUT,
		   "%D/versions/002_null.yaml:2:1: 'operations' must be a list of operations,"
		   " not null");
}

Test(repo, operations_empty)
{
	write_two("002_empty_ops.yaml", "operations: []\n");
	load_fails(NULL, DBPHASE_EBADINPUT,
		   "%D/versions/002_empty_ops.yaml:1:13: 'operations' is empty;"
		   " a migration has at least one operation");
}

Test(repo, operation_with_two_keys)
{
	write_two("002_two_keys.yaml",
		  "operations:\n"
		  "  - drop_index: {table: t, name: ix}\n"
		  "  - add_column: {table: t, column: {name: c, type: text}}\n"
		  "    drop_column: {table: t, column: d}\n");
	load_fails(NULL, DBPHASE_EBADINPUT,
		   "%D/versions/002_two_keys.yaml:4:5: an operation has one key, its kind,"
		   " but this one also has 'drop_column' after 'add_column';"
		   " start each operation with its own '- '");
}

Test(repo, operation_not_a_mapping)
{
	write_two("002_scalar_op.yaml",
		  "operations:\n"
		  "  - drop_index: {table: t, name: ix}\n"
		  "  - add_column\n");
	load_fails(NULL, DBPHASE_EBADINPUT,
		   "%D/versions/002_scalar_op.yaml:3:5: an operation must be a mapping with"
		   " one key, its kind (e.g. 'add_column: {...}'), not a string");
}

Test(repo, migration_not_a_mapping)
{
	write_two("002_list.yaml", "- drop_table: {name: t}\n");
	load_fails(NULL, DBPHASE_EBADINPUT,
		   "%D/versions/002_list.yaml:1:1: a migration must be a mapping with"
		   " 'operations', not a list");
}

Test(repo, empty_file)
{
	write_two("002_empty.yaml", "");
	load_fails(NULL, DBPHASE_EBADINPUT,
		   "%D/versions/002_empty.yaml:1:1: empty migration; expected a mapping"
		   " with 'operations'");
}

Test(repo, comments_only_file)
{
	write_two("002_comments.yaml", "# to do\n\n# later\n");
	load_fails(NULL, DBPHASE_EBADINPUT,
		   "%D/versions/002_comments.yaml:1:1: empty migration; expected a mapping"
		   " with 'operations'");
}

Test(repo, bad_file_name)
{
	write_two("002-customer.yaml", good_2);
	load_fails(NULL, DBPHASE_EBADINPUT,
		   "%D/versions/002-customer.yaml: bad migration file name; expected"
		   " NNN_slug.yaml (the version in digits, '_', then letters, digits, '_' or '-')");
}

Test(repo, bad_file_name_no_version)
{
	write_two("initial.yml", good_2);
	load_fails(NULL, DBPHASE_EBADINPUT,
		   "%D/versions/initial.yml: bad migration file name; expected"
		   " NNN_slug.yaml (the version in digits, '_', then letters, digits, '_' or '-')");
}

Test(repo, duplicate_version)
{
	write_two("002_a.yaml", good_2);
	test_write_file(dir, "versions/2_b.yaml", good_3);
	load_fails(NULL, DBPHASE_EBADINPUT,
		   "%D/versions/002_a.yaml and %D/versions/2_b.yaml both have version 2");
}

Test(repo, gap)
{
	write_two("002_b.yaml", good_2);
	test_write_file(dir, "versions/004_d.yaml", good_3);
	load_fails(NULL, DBPHASE_EBADINPUT,
		   "version 3 is missing: %D/versions/002_b.yaml is followed by"
		   " %D/versions/004_d.yaml");
}

Test(repo, wide_gap)
{
	write_two("002_b.yaml", good_2);
	test_write_file(dir, "versions/007_g.yaml", good_3);
	load_fails(NULL, DBPHASE_EBADINPUT,
		   "versions 3 to 6 are missing: %D/versions/002_b.yaml is followed by"
		   " %D/versions/007_g.yaml");
}

Test(repo, first_version_not_1)
{
	test_write_file(dir, "versions/002_b.yaml", good_2);
	test_write_file(dir, "versions/003_c.yaml", good_3);
	load_fails(NULL, DBPHASE_EBADINPUT,
		   "version 1 is missing: versions start at 1, but the first is"
		   " %D/versions/002_b.yaml (version 2)");
}

Test(repo, missing_versions_folder)
{
	test_write_file(dir, "repository.yaml", "id: x\n");
	load_fails(NULL, DBPHASE_EBADINPUT,
		   "'%D' is not a migration repository: no versions/ folder");
}

Test(repo, missing_folder)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct repo repo;
	char *missing = xasprintf("%s/nope", dir), *want;

	cr_assert_eq(repo_load(&repo, missing, NULL, &err), DBPHASE_EBADINPUT);
	want = xasprintf("'%s' is not a migration repository: no versions/ folder", missing);
	cr_assert_str_eq(err.message, want);
	free(want);
	free(missing);
	err_release(&err);
}

Test(repo, unknown_repository_yaml_key)
{
	test_write_file(dir, "repository.yaml", "id: shop\nversion_tabel: shop_version\n");
	test_write_file(dir, "versions/001_initial.yaml", good_1);
	load_fails(NULL, DBPHASE_EBADINPUT,
		   "%D/repository.yaml:2:1: unknown key 'version_tabel' in repository.yaml;"
		   " expected id, version_table, description, clients");
}

Test(repo, bad_version_table)
{
	test_write_file(dir, "repository.yaml", "id: shop\nversion_table: shop-version\n");
	test_write_file(dir, "versions/001_initial.yaml", good_1);
	load_fails(NULL, DBPHASE_EBADINPUT,
		   "%D/repository.yaml:2:16: 'version_table' must be a SQL identifier"
		   " (a letter or '_', then up to 62 letters, digits or '_'), not 'shop-version'");
}

Test(repo, version_table_length)
{
	struct repo repo;
	char yaml[128];

	/* 63 characters is the longest identifier accepted... */
	snprintf(yaml, sizeof(yaml), "version_table: %.63s\n",
		 "t_abcdefghijklmnopqrstuvwxyz_abcdefghijklmnopqrstuvwxyz_012345678");
	test_write_file(dir, "repository.yaml", yaml);
	test_write_file(dir, "versions/001_initial.yaml", good_1);
	load_ok(&repo, NULL);
	cr_assert_eq(strlen(repo.version_table), 63);
	repo_release(&repo);
	/* ...and 64 is one too many. */
	snprintf(yaml, sizeof(yaml), "version_table: %.64s\n",
		 "t_abcdefghijklmnopqrstuvwxyz_abcdefghijklmnopqrstuvwxyz_012345678");
	test_write_file(dir, "repository.yaml", yaml);
	load_fails(NULL, DBPHASE_EBADINPUT,
		   "%D/repository.yaml:1:16: 'version_table' must be a SQL identifier"
		   " (a letter or '_', then up to 62 letters, digits or '_'),"
		   " not 't_abcdefghijklmnopqrstuvwxyz_abcdefghijklmnopqrstuvwxyz_01234567'");
}

/* clients: per backend, a pattern or one attribute -> pattern; compiled at load. */
Test(repo, clients_patterns_per_backend)
{
	const struct repo_clients *c;
	struct repo repo;
	regmatch_t m[2];

	test_write_file(dir, "repository.yaml",
			"id: shop\n"
			"clients:\n"
			"  postgresql: \"^shop-([0-9]+)$\"\n"
			"  mariadb: {app_release: \"^r([0-9]+)\\\\.x$\"}\n");
	test_write_file(dir, "versions/001_initial.yaml", good_1);
	load_ok(&repo, NULL);
	c = repo_clients_for(&repo, DB_BACKEND_POSTGRESQL);
	cr_assert_not_null(c);
	cr_assert_str_eq(c->attribute, "application_name");
	cr_assert_str_eq(c->pattern, "^shop-([0-9]+)$");
	cr_assert_eq(regexec(c->re, "shop-12", 2, m, 0), 0);
	cr_assert_eq(m[1].rm_so, 5);
	c = repo_clients_for(&repo, DB_BACKEND_MYSQL);
	cr_assert_not_null(c);
	cr_assert_str_eq(c->attribute, "app_release");
	cr_assert_eq(regexec(c->re, "r7.x", 0, NULL, 0), 0);
	cr_assert_neq(regexec(c->re, "r7yx", 0, NULL, 0), 0);
	cr_assert_null(repo_clients_for(&repo, DB_BACKEND_SQLITE));
	repo_release(&repo);
	/* The default MariaDB attribute is program_name; no clients: nothing asked. */
	test_write_file(dir, "repository.yaml", "clients: {mysql: \"^shop-([0-9]+)$\"}\n");
	load_ok(&repo, NULL);
	cr_assert_str_eq(repo_clients_for(&repo, DB_BACKEND_MYSQL)->attribute, "program_name");
	cr_assert_null(repo_clients_for(&repo, DB_BACKEND_POSTGRESQL));
	repo_release(&repo);
	test_write_file(dir, "repository.yaml", "id: shop\n");
	load_ok(&repo, NULL);
	cr_assert_null(repo_clients_for(&repo, DB_BACKEND_POSTGRESQL));
	cr_assert_null(repo_clients_for(&repo, DB_BACKEND_MYSQL));
	repo_release(&repo);
}

/* Every mistake in clients is file:line:column, at the value that is wrong. */
Test(repo, clients_errors)
{
	static const struct {
		const char *yaml;
		const char *want;
	} cases[] = {
		{ "clients:\n  postgresql: \"^shop-([0-9]+$\"\n",
		  "%D/repository.yaml:2:15: bad regular expression in 'clients.postgresql'"
		  " (POSIX extended syntax): Unmatched ( or \\(" },
		{ "clients:\n  postgresql: \"^shop-[0-9]+$\"\n",
		  "%D/repository.yaml:2:15: the pattern of 'clients.postgresql' has no group: put"
		  " the schema version in parentheses, e.g. '^shop-([0-9]+)$'" },
		{ "clients:\n  sqlite: \"^shop-([0-9]+)$\"\n",
		  "%D/repository.yaml:2:3: 'clients.sqlite': SQLite has no client connections to"
		  " read; remove it (nodes of a SQLite database register instead: dbphase node"
		  " register)" },
		{ "clients:\n  oracle: x\n",
		  "%D/repository.yaml:2:3: unknown backend 'oracle' in 'clients'; expected"
		  " postgresql or mysql (also spelled mariadb)" },
		{ "clients:\n  postgresql: {program_name: \"^(1)$\"}\n",
		  "%D/repository.yaml:2:16: 'clients.postgresql' reads 'application_name' (the one"
		  " attribute a PostgreSQL client names itself by), not 'program_name'" },
		{ "clients:\n  mysql: {a: \"(1)\", b: \"(2)\"}\n",
		  "%D/repository.yaml:2:10: 'clients.mysql' must map one connection attribute to"
		  " its pattern (e.g. '{program_name: \"^shop-([0-9]+)$\"}'), not 2 of them" },
		{ "clients:\n  mysql: {program_name: [1]}\n",
		  "%D/repository.yaml:2:25: the pattern of 'clients.mysql' must be a string, not"
		  " a list" },
		{ "clients:\n  mysql: \"\"\n",
		  "%D/repository.yaml:2:10: the pattern of 'clients.mysql' must not be empty" },
		{ "clients:\n  mysql: \"(1)\"\n  mariadb: \"(2)\"\n",
		  "%D/repository.yaml:3:3: 'clients' names mysql twice" },
		{ "clients: [postgresql]\n",
		  "%D/repository.yaml:1:10: 'clients' must be a mapping of backend to pattern"
		  " (expected postgresql or mysql (also spelled mariadb)), not a list" },
	};
	size_t i;

	test_write_file(dir, "versions/001_initial.yaml", good_1);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		test_write_file(dir, "repository.yaml", cases[i].yaml);
		load_fails(NULL, DBPHASE_EBADINPUT, cases[i].want);
	}
}

Test(repo, repository_yaml_syntax_error)
{
	test_write_file(dir, "repository.yaml", "id: [shop\n");
	test_write_file(dir, "versions/001_initial.yaml", good_1);
	load_fails(NULL, DBPHASE_EBADINPUT,
		   "%D/repository.yaml:2:1: did not find expected ',' or ']'"
		   " (while parsing a flow sequence at line 1, column 5)");
}

Test(repo, unknown_extension)
{
	test_write_file(dir, "versions/001_initial.yaml", good_1);
	test_write_file(dir, "extensions/audit/versions/001_a.yaml", good_1);
	load_fails("nope", DBPHASE_EBADINPUT, "no extension 'nope' in '%D/extensions'");
	load_fails("../extensions", DBPHASE_EBADINPUT,
		   "no extension '../extensions' in '%D/extensions'");
}

Test(repo, extension_error_paths)
{
	test_write_file(dir, "versions/001_initial.yaml", good_1);
	test_write_file(dir, "extensions/audit/versions/001_a.yaml", "operations: 3\n");
	load_fails("audit", DBPHASE_EBADINPUT,
		   "%D/extensions/audit/versions/001_a.yaml:1:13: 'operations' must be a"
		   " list of operations, not a string");
}
