/*
 * core/url.h - database URLs: parsing, and printing them without passwords.
 *
 * Accepted forms (DESIGN.md section 2):
 *   postgresql://user:pass@host:port/db?sslmode=require   (also postgres://)
 *   mysql://user:pass@host:port/db   mariadb://...
 *   sqlite:///relative.db   sqlite:////abs/path.db   sqlite://   (in memory)
 * with SQLAlchemy driver suffixes (mysql+pymysql://, postgresql+psycopg2://)
 * accepted and ignored.  User, password, host and database are
 * percent-decoded; query parameters are kept in order, decoded.
 */
#ifndef DBPHASE_CORE_URL_H
#define DBPHASE_CORE_URL_H

#include <stddef.h>

#include "core/error.h"

enum db_backend {
	DB_BACKEND_SQLITE,
	DB_BACKEND_POSTGRESQL,
	DB_BACKEND_MYSQL,
};
#define DB_BACKEND__COUNT 3

struct db_url_param {
	char *key;
	char *value;
};

struct db_url {
	enum db_backend backend;
	char *scheme;		/* as written, e.g. "mysql+pymysql" */
	char *user;		/* NULL if absent */
	char *password;		/* NULL if absent */
	char *host;		/* NULL if absent; without [] for IPv6 */
	int port;		/* 0 if absent */
	char *database;		/* NULL if absent; for SQLite the file path */
	struct db_url_param *params;
	size_t n_params;
};

/* "postgresql", "mysql", "sqlite". */
const char *db_backend_name(enum db_backend backend);

/* Parse "postgresql" / "postgres" / "mysql" / "mariadb" / "sqlite"; -1 if none. */
int db_backend_from_name(const char *name);

/*
 * Parse text into url (which is overwritten; release it with
 * db_url_release).  On error returns DBPHASE_EBADINPUT with a message that
 * shows the URL masked.
 */
int db_url_parse(const char *text, struct db_url *url, struct dbphase_error *err);

void db_url_release(struct db_url *url);

/* The value of query parameter key, or NULL. */
const char *db_url_param(const struct db_url *url, const char *key);

/*
 * The URL text with any password replaced by "***".  Works on text that
 * does not parse, too, so that an error about a bad URL never shows its
 * password.  Caller frees.
 */
char *db_url_mask(const char *text);

#endif
