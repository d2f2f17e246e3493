/*
 * tests/unit/test-config.c - INI configuration read as oslo.config reads
 * it: an OpenStack service's own file loads as is, lines of any length,
 * continuation lines, $name substitution, the deprecated [sql] connection,
 * later files win, --config-dir order, exact path:line errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "testlib.h"

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

TestSuite(config, .init = setup, .fini = teardown);

/* Write name into dir; returns its path (caller frees). */
static char *
write_conf(const char *name, const char *text)
{
	test_write_file(dir, name, text);
	return xasprintf("%s/%s", dir, name);
}

/* Load text as one file; expect failure with the exact "path:<rest>". */
static void
load_fails(const char *text, int code, const char *rest)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct dbphase_config cfg;
	char *path = write_conf("bad.conf", text), *want;

	config_init(&cfg);
	cr_assert_eq(config_load_file(&cfg, path, &err), code, "%s",
		     err.message ? err.message : "(no error)");
	want = xasprintf("%s%s", path, rest);
	cr_assert_str_eq(err.message, want);
	/* Nothing of a failed file is kept. */
	cr_assert_null(cfg.connection);
	cr_assert_eq(cfg.jobs, 4);
	config_release(&cfg);
	free(want);
	free(path);
	err_release(&err);
}

static void
load_ok(struct dbphase_config *cfg, const char *path)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;

	cr_assert_eq(config_load_file(cfg, path, &err), 0, "%s", err.message);
	err_release(&err);
}

/* A line of exactly len bytes (no line break): "key = xxx...". */
static char *
line_of(const char *key, size_t len)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_addf(&sb, "%s = ", key);
	while (sb.len < len)
		strbuf_addch(&sb, 'x');
	return strbuf_detach(&sb);
}

Test(config, defaults)
{
	struct dbphase_config cfg;

	config_init(&cfg);
	cr_assert_null(cfg.connection);
	cr_assert_null(cfg.connection_from);
	cr_assert_null(cfg.repository);
	cr_assert_eq(cfg.jobs, 4);
	cr_assert_eq(cfg.batch_size, 1000);
	cr_assert_eq(cfg.max_batch_size, 100000);
	cr_assert_eq(cfg.batch_time_ms, 100);
	cr_assert_eq(cfg.max_rate, 0);
	cr_assert_eq(cfg.lock_timeout_ms, 2000);
	cr_assert_eq(cfg.lock_wait_s, 300);
	cr_assert_eq(cfg.reconnect_wait_s, 60);
	cr_assert_eq(cfg.node_ttl_s, 300);
	config_release(&cfg);
}

Test(config, keys)
{
	static const char *const want[] = {
		"repository", "jobs", "batch_size", "max_batch_size", "batch_time_ms",
		"max_rate", "lock_timeout_ms", "lock_wait_s", "reconnect_wait_s", "node_ttl_s",
		NULL,
	};
	size_t i;

	for (i = 0; want[i]; i++)
		cr_assert_str_eq(config_keys[i], want[i]);
	cr_assert_null(config_keys[i]);
}

Test(config, keystone_conf)
{
	struct dbphase_config cfg;
	struct strbuf sb = STRBUF_INIT;
	char *path, *want;
	const char *long_line =
		"logging_context_format_string = %(asctime)s.%(msecs)03d %(process)d"
		" %(levelname)s %(name)s [%(global_request_id)s %(request_id)s"
		" %(user_identity)s %(project_name)s %(user_name)s %(tenant_id)s]"
		" %(instance)s%(resource)s%(message)s";

	cr_assert_gt(strlen(long_line), 200);
	strbuf_addstr(&sb,
		      "[DEFAULT]\n"					/* 1 */
		      "\n"
		      "#\n"
		      "# From keystone\n"
		      "#\n"						/* 5 */
		      "\n"
		      "# Using this feature is *NOT* recommended. (string value)\n"
		      "#admin_token = <None>\n"
		      "public_endpoint = https://identity.example.com:5000\n"
		      "max_project_tree_depth = 5\n"			/* 10 */
		      "max_param_size = 64\n"
		      "list_limit = 100\n"
		      "; a semicolon comment\n"
		      "debug = false\n"
		      "log_dir = /var/log/keystone\n"			/* 15 */
		      "use_stderr = false\n"
		      "transport_url = rabbit://openstack:RABBIT_PASS@controller\n");
	strbuf_addf(&sb, "%s\n", long_line);				/* 18 */
	strbuf_addstr(&sb,
		      "default_log_levels = amqp=WARN,amqplib=WARN,boto=WARN\n"
		      "\n"						/* 20 */
		      "[application_credential]\n"
		      "#driver = sql\n"
		      "\n"
		      "[cache]\n"
		      "backend = dogpile.cache.memcached\n"		/* 25 */
		      "enabled = true\n"
		      "memcache_servers = controller:11211\n"
		      "\n"
		      "[database]\n"
		      "#\n"						/* 30 */
		      "# From oslo.db\n"
		      "#\n"
		      "# The SQLAlchemy connection string to use to connect to the database.\n"
		      "# (string value)\n"
		      "connection = mysql+pymysql://keystone:KEYSTONE_DBPASS@controller/keystone\n"
		      "max_retries = 10\n"
		      "\n"
		      "[token]\n"
		      "provider = fernet\n"
		      "expiration = 3600\n"				/* 40 */
		      "\n"
		      "[fernet_tokens]\n"
		      "key_repository = /etc/keystone/fernet-keys/\n");
	path = write_conf("keystone.conf", sb.buf);
	config_init(&cfg);
	load_ok(&cfg, path);
	cr_assert_str_eq(cfg.connection,
			 "mysql+pymysql://keystone:KEYSTONE_DBPASS@controller/keystone");
	want = xasprintf("[database] connection at %s:35", path);
	cr_assert_str_eq(cfg.connection_from, want);
	cr_assert_eq(cfg.jobs, 4);
	cr_assert_null(cfg.repository);
	config_release(&cfg);
	free(want);
	free(path);
	strbuf_release(&sb);
}

Test(config, dbphase_section)
{
	struct dbphase_config cfg;
	char *path = write_conf("a.conf",
				"[dbphase]\n"
				"repository = /srv/app/migrations\n"
				"jobs = 8\n"
				"batch_size=500\n"
				"max_batch_size: 20000\n"
				"batch_time_ms = 250\n"
				"max_rate = 10000\n"
				"lock_timeout_ms = \"1500\"\n"
				"lock_wait_s = 0\n"
				"node_ttl_s = 60\n"
				"[Dbphase]\n"
				"batch_size = 600\n"
				"[DATABASE]\n"
				"connection = sqlite:///upper.db\n"
				"[default]\n"
				"sql_connection = sqlite:///not-the-default-section.db\n");

	config_init(&cfg);
	load_ok(&cfg, path);
	cr_assert_str_eq(cfg.repository, "/srv/app/migrations");
	cr_assert_eq(cfg.jobs, 8);
	cr_assert_eq(cfg.batch_size, 600);	/* [Dbphase] is [dbphase] */
	cr_assert_eq(cfg.max_batch_size, 20000);
	cr_assert_eq(cfg.batch_time_ms, 250);
	cr_assert_eq(cfg.max_rate, 10000);
	cr_assert_eq(cfg.lock_timeout_ms, 1500);
	cr_assert_eq(cfg.lock_wait_s, 0);
	cr_assert_eq(cfg.node_ttl_s, 60);
	/* Section names are compared in lower case, as oslo.config does. */
	cr_assert_str_eq(cfg.connection, "sqlite:///upper.db");
	config_release(&cfg);
	free(path);
}

Test(config, later_files_override)
{
	struct dbphase_config cfg;
	char *a = write_conf("a.conf",
			     "[database]\nconnection = postgresql://a@db1/app\n"
			     "[dbphase]\njobs = 2\nbatch_size = 10\n");
	char *b = write_conf("b.conf",
			     "[DEFAULT]\ndebug = true\n"
			     "[database]\nconnection = 'postgresql://b@db2/app'\n"
			     "[dbphase]\njobs = 3\n");
	char *want;

	config_init(&cfg);
	load_ok(&cfg, a);
	want = xasprintf("[database] connection at %s:2", a);
	cr_assert_str_eq(cfg.connection_from, want);
	free(want);
	load_ok(&cfg, b);
	cr_assert_str_eq(cfg.connection, "postgresql://b@db2/app");
	want = xasprintf("[database] connection at %s:4", b);
	cr_assert_str_eq(cfg.connection_from, want);
	free(want);
	cr_assert_eq(cfg.jobs, 3);
	cr_assert_eq(cfg.batch_size, 10);	/* only a.conf set it */
	config_release(&cfg);
	free(a);
	free(b);
}

Test(config, empty_connection_clears)
{
	struct dbphase_config cfg;
	char *a = write_conf("a.conf", "[database]\nconnection = mysql://a@h/db\n");
	char *b = write_conf("b.conf", "[database]\nconnection =\n");

	config_init(&cfg);
	load_ok(&cfg, a);
	load_ok(&cfg, b);
	cr_assert_null(cfg.connection);
	cr_assert_null(cfg.connection_from);
	config_release(&cfg);
	free(a);
	free(b);
}

Test(config, config_dir_order)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct dbphase_config cfg;
	char *want;

	test_write_file(dir, "conf.d/20-late.conf", "[dbphase]\njobs = 20\n");
	test_write_file(dir, "conf.d/10-db.conf",
			"[database]\nconnection = postgresql://x@h/ten\n[dbphase]\njobs = 10\n"
			"batch_size = 7\n");
	test_write_file(dir, "conf.d/02-early.conf",
			"[database]\nconnection = postgresql://x@h/two\n[dbphase]\njobs = 2\n");
	test_write_file(dir, "conf.d/99-notes.txt", "[dbphase]\njobs = 99\n");
	test_write_file(dir, "conf.d/.hidden.conf", "[dbphase]\njobs = 98\n");
	test_write_file(dir, "conf.d/sub.conf/x.conf", "[dbphase]\njobs = 97\n");
	want = xasprintf("%s/conf.d", dir);
	config_init(&cfg);
	cr_assert_eq(config_load_dir(&cfg, want, &err), 0, "%s", err.message);
	free(want);
	cr_assert_eq(cfg.jobs, 20);
	cr_assert_eq(cfg.batch_size, 7);
	cr_assert_str_eq(cfg.connection, "postgresql://x@h/ten");
	want = xasprintf("[database] connection at %s/conf.d/10-db.conf:2", dir);
	cr_assert_str_eq(cfg.connection_from, want);
	free(want);
	config_release(&cfg);
	err_release(&err);
}

Test(config, config_dir_error_keeps_nothing)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct dbphase_config cfg;
	char *d = xasprintf("%s/conf.d", dir), *want;

	test_write_file(dir, "conf.d/1.conf", "[dbphase]\njobs = 5\n");
	test_write_file(dir, "conf.d/2.conf", "[dbphase]\n\njobs = many\n");
	config_init(&cfg);
	cr_assert_eq(config_load_dir(&cfg, d, &err), DBPHASE_EBADINPUT);
	want = xasprintf("%s/2.conf:3: 'jobs' must be an integer from 1 to 256, not 'many'", d);
	cr_assert_str_eq(err.message, want);
	cr_assert_eq(cfg.jobs, 4);
	free(want);
	free(d);
	config_release(&cfg);
	err_release(&err);
}

Test(config, missing_config_dir)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct dbphase_config cfg;
	char *d = xasprintf("%s/nope", dir), *want;

	config_init(&cfg);
	cr_assert_eq(config_load_dir(&cfg, d, &err), DBPHASE_EBADINPUT);
	want = xasprintf("cannot read config folder '%s': No such file or directory", d);
	cr_assert_str_eq(err.message, want);
	free(want);
	free(d);
	config_release(&cfg);
	err_release(&err);
}

Test(config, missing_file)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct dbphase_config cfg;
	char *path = xasprintf("%s/nope.conf", dir), *want;

	config_init(&cfg);
	cr_assert_eq(config_load_file(&cfg, path, &err), DBPHASE_EBADINPUT);
	want = xasprintf("cannot read config file '%s': No such file or directory", path);
	cr_assert_str_eq(err.message, want);
	free(want);
	free(path);
	config_release(&cfg);
	err_release(&err);
}

Test(config, unknown_dbphase_key)
{
	load_fails("[DEFAULT]\ndebug = true\n\n[dbphase]\njobs = 2\njbos = 3\n",
		   DBPHASE_EBADINPUT,
		   ":6: unknown key 'jbos' in [dbphase]; expected one of: repository, jobs,"
		   " batch_size, max_batch_size, batch_time_ms, max_rate, lock_timeout_ms,"
		   " lock_wait_s, reconnect_wait_s, node_ttl_s");
}

Test(config, jobs_out_of_range)
{
	load_fails("[dbphase]\n# none\njobs = 0\n", DBPHASE_EBADINPUT,
		   ":3: 'jobs' must be an integer from 1 to 256, not '0'");
	load_fails("[dbphase]\njobs = 257\n", DBPHASE_EBADINPUT,
		   ":2: 'jobs' must be an integer from 1 to 256, not '257'");
	load_fails("[dbphase]\njobs = 99999999999999999999\n", DBPHASE_EBADINPUT,
		   ":2: 'jobs' must be an integer from 1 to 256, not '99999999999999999999'");
	load_fails("[dbphase]\nlock_timeout_ms = 2s\n", DBPHASE_EBADINPUT,
		   ":2: 'lock_timeout_ms' must be an integer from 1 to 3600000, not '2s'");
	load_fails("[dbphase]\nmax_rate =\n", DBPHASE_EBADINPUT,
		   ":2: 'max_rate' must be an integer from 0 to 2147483647, not ''");
}

Test(config, long_lines)
{
	struct dbphase_config cfg;
	struct strbuf sb = STRBUF_INIT;
	char *line = line_of("connection", 5000), *path;

	/* A TLS URL of any length, in [database] or anywhere else. */
	strbuf_addf(&sb, "[DEFAULT]\ndebug = true\n[database]\r\n%s\r\n", line);
	path = write_conf("long.conf", sb.buf);
	config_init(&cfg);
	load_ok(&cfg, path);
	cr_assert_str_eq(cfg.connection, line + strlen("connection = "));
	config_release(&cfg);
	free(path);
	free(line);
	strbuf_release(&sb);
}

Test(config, long_lines_elsewhere_keep_line_numbers)
{
	struct dbphase_config cfg;
	struct strbuf sb = STRBUF_INIT;
	char *a = line_of("logging_default_format_string", 300);
	char *b = line_of("  more", 1000);
	char *path, *want;

	strbuf_addf(&sb,
		    "[DEFAULT]\n%s\n%s\n"	/* 1-3: a long value and its long continuation */
		    "[oslo_policy]\n%s\n"	/* 4-5 */
		    "[dbphase]\njobs = 6\n"	/* 6-7 */
		    "[database]\n"		/* 8 */
		    "connection = postgresql://u@h/d\n",	/* 9 */
		    a, b, a);
	path = write_conf("long.conf", sb.buf);
	config_init(&cfg);
	load_ok(&cfg, path);
	cr_assert_eq(cfg.jobs, 6);
	want = xasprintf("[database] connection at %s:9", path);
	cr_assert_str_eq(cfg.connection_from, want);
	config_release(&cfg);
	free(want);
	free(path);
	free(a);
	free(b);
	strbuf_release(&sb);
}

Test(config, parse_error)
{
	/* oslo.config refuses the whole file for each of these. */
	load_fails("[DEFAULT]\ndebug = true\nthis line has no equals sign\n[dbphase]\njobs = 2\n",
		   DBPHASE_EBADINPUT, ":3: expected 'key = value', '[section]' or a comment");
	load_fails("[dbphase]\njobs = 2\n[broken\n", DBPHASE_EBADINPUT,
		   ":3: a section header must end with ']'");
	load_fails("[]\n", DBPHASE_EBADINPUT, ":1: a section header needs a name");
	load_fails("# top\njobs = 2\n[dbphase]\n", DBPHASE_EBADINPUT,
		   ":2: a value before any [section]");
	load_fails("[dbphase]\n= 2\n", DBPHASE_EBADINPUT, ":2: a value with no key");
	load_fails("[dbphase]\n\n  jobs = 2\n", DBPHASE_EBADINPUT,
		   ":3: an indented line continues no value");
}

Test(config, no_comment_after_a_value)
{
	/* oslo.config has no inline comments: the ';' is part of the value. */
	load_fails("[dbphase]\njobs = 2 ; two\n", DBPHASE_EBADINPUT,
		   ":2: 'jobs' must be an integer from 1 to 256, not '2 ; two'");
}

Test(config, continuation_lines)
{
	struct dbphase_config cfg;
	char *path = write_conf("cont.conf",
				"[DEFAULT]\n"
				"logging_context_format_string = %(asctime)s\n"
				"    %(levelname)s\n"
				"\t%(message)s\n"
				"\n"
				"[database]\n"
				"connection = postgresql://u@h/d\n"
				"[dbphase]\n"
				"jobs = 3\n");

	config_init(&cfg);
	load_ok(&cfg, path);
	cr_assert_str_eq(cfg.entries[0].value, "%(asctime)s\n%(levelname)s\n%(message)s");
	cr_assert_str_eq(cfg.connection, "postgresql://u@h/d");
	cr_assert_eq(cfg.jobs, 3);
	config_release(&cfg);
	free(path);
}

Test(config, deprecated_sql_connection)
{
	struct dbphase_config cfg;
	char *a = write_conf("a.conf", "[sql]\nconnection = mysql://old@h/db\n");
	char *b = write_conf("b.conf", "[database]\nconnection = mysql://new@h/db\n");
	char *c = write_conf("c.conf", "[sql]\nconnection = mysql://later-old@h/db\n");
	char *want;

	config_init(&cfg);
	load_ok(&cfg, a);
	cr_assert_str_eq(cfg.connection, "mysql://old@h/db");
	want = xasprintf("[sql] connection at %s:2", a);
	cr_assert_str_eq(cfg.connection_from, want);
	free(want);
	want = xasprintf("%s:2: [sql] connection is deprecated; write [database] connection", a);
	cr_assert_str_eq(cfg.connection_warning, want);
	free(want);
	/* The current name, in any file, beats the deprecated one. */
	load_ok(&cfg, b);
	load_ok(&cfg, c);
	cr_assert_str_eq(cfg.connection, "mysql://new@h/db");
	cr_assert_null(cfg.connection_warning);
	config_release(&cfg);
	free(a);
	free(b);
	free(c);
}

Test(config, substitution)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct dbphase_config cfg;
	char *a = write_conf("a.conf",
			     "[DEFAULT]\n"
			     "db_host = db1.example.com\n"
			     "db_user = keystone\n"
			     "[secrets]\n"
			     "db_pass = s3cret\n"
			     "[database]\n"
			     "db_name = ks\n"
			     "connection = mysql+pymysql://$db_user:${secrets.db_pass}@${db_host}/$db_name"
			     "?x=$$1&y=\\$2&z=$unknown&w=${also.unknown}\n");
	char *b = write_conf("b.conf",
			     "[DEFAULT]\nbase = /srv/$app\napp = shop\n"
			     "[dbphase]\nrepository = $base/migrations\njobs = $n\nn = 6\n");

	config_init(&cfg);
	load_ok(&cfg, a);
	cr_assert_str_eq(cfg.connection, "mysql+pymysql://keystone:s3cret@db1.example.com/ks"
			 "?x=$1&y=$2&z=$unknown&w=${also.unknown}");
	config_release(&cfg);
	/* Values defined after their use, and names leading to names. */
	config_init(&cfg);
	cr_assert_eq(config_load_file(&cfg, b, &err), DBPHASE_EBADINPUT);
	cr_assert(strstr(err.message, ":7: unknown key 'n' in [dbphase]"), "%s", err.message);
	err_release(&err);
	config_release(&cfg);
	free(b);
	b = write_conf("b.conf",
		       "[DEFAULT]\nbase = /srv/$app\napp = shop\nn = 6\n"
		       "[dbphase]\nrepository = $base/migrations\njobs = $n\n");
	config_init(&cfg);
	load_ok(&cfg, b);
	cr_assert_str_eq(cfg.repository, "/srv/shop/migrations");
	cr_assert_eq(cfg.jobs, 6);
	config_release(&cfg);
	free(a);
	free(b);
}

Test(config, substitution_loop)
{
	load_fails("[DEFAULT]\na = $b\nb = x$a\n[dbphase]\nrepository = $a\n", DBPHASE_EBADINPUT,
		   ":3: '$a' in the value of 'b' leads to itself");
}

Test(config, continued_connection)
{
	load_fails("[database]\nconnection = mysql://u@h\n  /db\n", DBPHASE_EBADINPUT,
		   ":2: the value of 'connection' in [database] goes on over indented"
		   " lines (to line 3); write it on one line");
}

Test(config, nul_byte)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct dbphase_config cfg;
	char *path = xasprintf("%s/nul.conf", dir), *want;
	FILE *f = fopen(path, "wb");

	cr_assert_not_null(f);
	fwrite("[dbphase]\njobs = 2\0\n", 1, 20, f);
	fclose(f);
	config_init(&cfg);
	cr_assert_eq(config_load_file(&cfg, path, &err), DBPHASE_EBADINPUT);
	want = xasprintf("%s:2: NUL byte in the file; not a text file", path);
	cr_assert_str_eq(err.message, want);
	free(want);
	free(path);
	config_release(&cfg);
	err_release(&err);
}

Test(config, set)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct dbphase_config cfg;

	config_init(&cfg);
	cr_assert_eq(config_set(&cfg, "jobs", "12", "--jobs", &err), 0);
	cr_assert_eq(cfg.jobs, 12);
	cr_assert_eq(config_set(&cfg, "repository", "db/migrations", "--repository", &err), 0);
	cr_assert_str_eq(cfg.repository, "db/migrations");
	cr_assert_eq(config_set(&cfg, "jobs", "-1", "--jobs", &err), DBPHASE_EBADINPUT);
	cr_assert_str_eq(err.message, "--jobs: 'jobs' must be an integer from 1 to 256, not '-1'");
	cr_assert_eq(cfg.jobs, 12);
	cr_assert_eq(config_set(&cfg, "connection", "x", "--connection", &err),
		     DBPHASE_EBADINPUT);
	cr_assert_str_eq(err.message, "--connection: unknown key 'connection' in [dbphase];"
			 " expected one of: repository, jobs, batch_size, max_batch_size,"
			 " batch_time_ms, max_rate, lock_timeout_ms, lock_wait_s, reconnect_wait_s,"
			 " node_ttl_s");
	config_release(&cfg);
	err_release(&err);
}
