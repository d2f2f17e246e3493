/*
 * tests/unit/test-url.c - database URL parsing and password masking.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "testlib.h"

#include "core/xmalloc.h"

static struct db_url
parse_ok(const char *text)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_url url;

	cr_assert(db_url_parse(text, &url, &err) == 0, "%s: %s", text, err.message);
	err_release(&err);
	return url;
}

Test(url, postgresql_full)
{
	struct db_url u = parse_ok("postgresql://alice:s%40cret@db.example:6432/shop?sslmode=require&connect_timeout=5");

	cr_assert_eq(u.backend, DB_BACKEND_POSTGRESQL);
	cr_assert_str_eq(u.user, "alice");
	cr_assert_str_eq(u.password, "s@cret");
	cr_assert_str_eq(u.host, "db.example");
	cr_assert_eq(u.port, 6432);
	cr_assert_str_eq(u.database, "shop");
	cr_assert_str_eq(db_url_param(&u, "sslmode"), "require");
	cr_assert_str_eq(db_url_param(&u, "connect_timeout"), "5");
	cr_assert_null(db_url_param(&u, "nope"));
	db_url_release(&u);
}

Test(url, sqlalchemy_driver_suffixes)
{
	struct db_url u = parse_ok("mysql+pymysql://keystone:pw@10.0.0.5/keystone?charset=utf8");

	cr_assert_eq(u.backend, DB_BACKEND_MYSQL);
	cr_assert_str_eq(u.scheme, "mysql+pymysql");
	cr_assert_str_eq(u.host, "10.0.0.5");
	cr_assert_eq(u.port, 0);
	cr_assert_str_eq(u.database, "keystone");
	db_url_release(&u);

	u = parse_ok("postgresql+psycopg2://nova@/nova?host=/var/run/postgresql");
	cr_assert_eq(u.backend, DB_BACKEND_POSTGRESQL);
	cr_assert_null(u.host);
	cr_assert_null(u.password);
	cr_assert_str_eq(db_url_param(&u, "host"), "/var/run/postgresql");
	db_url_release(&u);

	u = parse_ok("mariadb://root@127.0.0.1:3307/app");
	cr_assert_eq(u.backend, DB_BACKEND_MYSQL);
	cr_assert_eq(u.port, 3307);
	db_url_release(&u);

	u = parse_ok("postgres://[::1]:5433/x");
	cr_assert_str_eq(u.host, "::1");
	cr_assert_eq(u.port, 5433);
	db_url_release(&u);
}

Test(url, sqlite_paths)
{
	struct db_url u = parse_ok("sqlite:///relative.db");

	cr_assert_eq(u.backend, DB_BACKEND_SQLITE);
	cr_assert_str_eq(u.database, "relative.db");
	db_url_release(&u);
	u = parse_ok("sqlite:////var/lib/app/app.db");
	cr_assert_str_eq(u.database, "/var/lib/app/app.db");
	db_url_release(&u);
	u = parse_ok("sqlite:///:memory:");
	cr_assert_str_eq(u.database, ":memory:");
	db_url_release(&u);
}

Test(url, errors_are_masked)
{
	static const char *bad[] = {
		"oracle://u:topsecret@h/db",
		"postgresql://u:topsecret@h:99999/db",
		"postgresql://u:topsecret@h:12ab/db",
		"mysql://u:topsecret@h/db?novalue",
		"nonsense",
		"sqlite://host/x.db",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct dbphase_error err = DBPHASE_ERROR_INIT;
		struct db_url u;

		cr_assert_eq(db_url_parse(bad[i], &u, &err), DBPHASE_EBADINPUT, "%s", bad[i]);
		cr_assert_null(strstr(err.message, "topsecret"), "%s", err.message);
		cr_assert_null(strstr(err.message, "topsecr"), "%s", err.message);
		err_release(&err);
	}
}

Test(url, mask)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "postgresql://u:pw@h/db", "postgresql://u:***@h/db" },
		{ "mysql+pymysql://u:p@ss:w@h:3306/db", "mysql+pymysql://u:***@h:3306/db" },
		{ "postgresql://u@h/db", "postgresql://u@h/db" },
		{ "postgresql://h/db?user=u&password=pw&x=1", "postgresql://h/db?user=u&password=***&x=1" },
		{ "sqlite:///x.db", "sqlite:///x.db" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *m = db_url_mask(cases[i].in);

		cr_assert_str_eq(m, cases[i].out);
		free(m);
	}
}

/* ---- secrets: reserved characters, parameters, %00, unparsed text, argv ----- */

Test(url, passwords_with_reserved_characters_parse_and_mask_whole)
{
	static const struct {
		const char *in, *user, *password, *host, *database, *masked;
		int port;
	} cases[] = {
		{ "postgresql://u:pa/ss@h/db", "u", "pa/ss", "h", "db",
		  "postgresql://u:***@h/db", 0 },
		{ "postgresql://u:pa?ss@h:5433/db?sslmode=require", "u", "pa?ss", "h", "db",
		  "postgresql://u:***@h:5433/db?sslmode=require", 5433 },
		{ "mysql://u:pa#ss@h/db", "u", "pa#ss", "h", "db", "mysql://u:***@h/db", 0 },
		{ "mysql+pymysql://u:p@s/s?w#r:d@h:3306/db?charset=utf8", "u", "p@s/s?w#r:d", "h",
		  "db", "mysql+pymysql://u:***@h:3306/db?charset=utf8", 3306 },
		{ "mysql://u:1234/5@h/db", "u", "1234/5", "h", "db", "mysql://u:***@h/db", 0 },
		/* Azure-style user@server user names. */
		{ "mysql://app@srv:pw/x@h/db", "app@srv", "pw/x", "h", "db",
		  "mysql://app@srv:***@h/db", 0 },
		{ "postgresql://u:%2F%3F%23@h/db", "u", "/?#", "h", "db",
		  "postgresql://u:***@h/db", 0 },
		/* '@' in a parameter value is no password. */
		{ "postgresql://h:5432/db?application_name=a@b", NULL, NULL, "h", "db",
		  "postgresql://h:5432/db?application_name=a@b", 5432 },
		{ "postgresql://u:p@h/db?application_name=a@b", "u", "p", "h", "db",
		  "postgresql://u:***@h/db?application_name=a@b", 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct db_url u = parse_ok(cases[i].in);
		char *m = db_url_mask(cases[i].in);

		if (cases[i].user)
			cr_assert_str_eq(u.user, cases[i].user, "%s", cases[i].in);
		else
			cr_assert_null(u.user, "%s", cases[i].in);
		if (cases[i].password)
			cr_assert_str_eq(u.password, cases[i].password, "%s", cases[i].in);
		else
			cr_assert_null(u.password, "%s", cases[i].in);
		cr_assert_str_eq(u.host, cases[i].host, "%s", cases[i].in);
		cr_assert_str_eq(u.database, cases[i].database, "%s", cases[i].in);
		cr_assert_eq(u.port, cases[i].port, "%s", cases[i].in);
		cr_assert_str_eq(u.masked, cases[i].masked, "%s", cases[i].in);
		cr_assert_str_eq(m, cases[i].masked, "%s", cases[i].in);
		free(m);
		db_url_release(&u);
	}
}

Test(url, every_parameter_named_pass_is_masked)
{
	static const struct {
		const char *in, *masked;
	} cases[] = {
		{ "postgresql://u@h/db?sslpassword=topsecret&sslmode=require",
		  "postgresql://u@h/db?sslpassword=***&sslmode=require" },
		{ "postgresql://u@h/db?pass%77ord=topsecret", "postgresql://u@h/db?pass%77ord=***" },
		{ "postgresql://u@h/db?%70assword=topsecret&x=1", "postgresql://u@h/db?%70assword=***&x=1" },
		{ "mysql://u@h/db?PASSWORD=topsecret", "mysql://u@h/db?PASSWORD=***" },
		{ "mysql://u@h/db?ssl_key_passphrase=topsecret&a=b&Password2=topsecret",
		  "mysql://u@h/db?ssl_key_passphrase=***&a=b&Password2=***" },
		{ "postgresql://u:topsecret@h/db?password=topsecret",
		  "postgresql://u:***@h/db?password=***" },
		{ "sqlite:///x.db?passphrase=topsecret", "sqlite:///x.db?passphrase=***" },
		{ "postgresql://u@h/db?password=", "postgresql://u@h/db?password=***" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct db_url u = parse_ok(cases[i].in);

		cr_assert_str_eq(u.masked, cases[i].masked, "%s", cases[i].in);
		db_url_release(&u);
	}
	{
		struct db_url u = parse_ok("postgresql://u@h/db?pass%77ord=topsecret");

		cr_assert_str_eq(db_url_param(&u, "password"), "topsecret");
		db_url_release(&u);
	}
}

Test(url, nul_bytes_are_errors)
{
	static const char *bad[] = {
		"postgresql://u:top%00secret@h/db", "postgresql://u%00x:topsecret@h/db",
		"postgresql://u:topsecret@h%00x/db", "postgresql://u:topsecret@h/db%00x",
		"postgresql://u:topsecret@h/db?sslmode=require%00x",
		"postgresql://u:topsecret@h/db?ssl%00mode=x", "sqlite:///x%00.db",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct dbphase_error err = DBPHASE_ERROR_INIT;
		struct db_url u;

		cr_assert_eq(db_url_parse(bad[i], &u, &err), DBPHASE_EBADINPUT, "%s", bad[i]);
		cr_assert_not_null(strstr(err.message, "%00"), "%s", err.message);
		cr_assert_null(strstr(err.message, "topsecret"), "%s", err.message);
		err_release(&err);
	}
}

Test(url, unparsed_text_is_never_echoed)
{
	static const char *bad[] = {
		"postgressql://admin:topsecret@db1/app",	/* mistyped scheme */
		"admin:topsecret@db1/app",			/* no scheme */
		"postgresql:/admin:topsecret@db1/app://x",	/* junk for a scheme */
		"postgresql://admin:topsecret@db1:54x2/app",
		"postgresql://admin:topsecret@db1/app?sslmode",
		"postgresql://admin:topsecret@db1/app?x=%zz",
		"mysql://admin:topsecret@[::1/app",
		"mysql://admin:topsecret@db1:1:2/app",
		"sqlite://admin:topsecret@db1/app.db",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct dbphase_error err = DBPHASE_ERROR_INIT;
		struct db_url u;
		char *m;

		cr_assert_eq(db_url_parse(bad[i], &u, &err), DBPHASE_EBADINPUT, "%s", bad[i]);
		cr_assert_null(strstr(err.message, "topsecret"), "%s", err.message);
		cr_assert_null(strstr(err.message, "db1"), "%s: the text was echoed: %s", bad[i],
			       err.message);
		m = db_url_mask(bad[i]);
		cr_assert_null(strstr(m, "topsecret"), "%s", m);
		cr_assert_null(strstr(m, "db1"), "%s", m);
		free(m);
		err_release(&err);
	}
	/* What can be said safely is: the scheme and the position. */
	{
		struct dbphase_error err = DBPHASE_ERROR_INIT;
		struct db_url u;

		db_url_parse("postgressql://admin:topsecret@db1/app", &u, &err);
		cr_assert_not_null(strstr(err.message, "unknown scheme 'postgressql'"), "%s",
				   err.message);
		err_release(&err);
		db_url_parse("postgresql://admin:topsecret@db1:54x2/app", &u, &err);
		cr_assert_not_null(strstr(err.message, "postgresql:// URL at character 36: port "
					  "is not a number"), "%s", err.message);
		err_release(&err);
	}
}

Test(url, sqlite_without_a_file_is_an_error)
{
	static const char *bad[] = { "sqlite://", "sqlite:///", "sqlite:///?x=1", "SQLite3://" };
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct dbphase_error err = DBPHASE_ERROR_INIT;
		struct db_url u;
		char *want = xasprintf("'%.*s' names no file", (int)strcspn(bad[i], "?"), bad[i]);

		cr_assert_eq(db_url_parse(bad[i], &u, &err), DBPHASE_EBADINPUT, "%s", bad[i]);
		cr_assert_not_null(strstr(err.message, want), "%s", err.message);
		free(want);
		err_release(&err);
	}
}

Test(url, scrub_overwrites_secrets_in_place)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "postgresql://admin:S3cr3t/#?Pw@db1:5432/app?sslpassword=K3yPw&x=1",
		  "postgresql://admin:***@db1:5432/app?sslpassword=***&x=1" },
		{ "mysql://u:pw@h/db", "mysql://u:**@h/db" },
		{ "mysql://u:p@h/db?password=", "mysql://u:*@h/db?password=" },
		{ "sqlite:///x.db", "sqlite:///x.db" },
		/* Unparsed: only the scheme is kept. */
		{ "postgressql://admin:S3cr3tPw@db1/app", "postgressql://***" },
		{ "admin:S3cr3tPw@db1/app", "***" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].in), k;
		char *buf = xstrdup(cases[i].in);

		db_url_scrub(buf);
		cr_assert_str_eq(buf, cases[i].out, "%s", cases[i].in);
		for (k = strlen(buf); k < len; k++)
			cr_assert_eq(buf[k], '\0', "%s: byte %zu of the tail is not zero", cases[i].in, k);
		free(buf);
	}
}
