/*
 * tests/unit/test-url.c - database URL parsing and password masking.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "testlib.h"

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
	u = parse_ok("sqlite://");
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
