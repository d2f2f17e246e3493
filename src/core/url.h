/*
 * core/url.h - database URLs: parsing, and printing them without passwords.
 *
 * Accepted forms (DESIGN.md section 2):
 *   postgresql://user:pass@host:port/db?sslmode=require   (also postgres://)
 *   mysql://user:pass@host:port/db   mariadb://...
 *   sqlite:///relative.db   sqlite:////abs/path.db   sqlite:///:memory:
 * with SQLAlchemy driver suffixes (mysql+pymysql://, postgresql+psycopg2://)
 * accepted and ignored.  User, password, host and database are
 * percent-decoded; query parameters are kept in order, decoded.  "sqlite://"
 * and "sqlite:///" name no file and are errors; %00 anywhere is an error.
 *
 * Secrets are the password and the value of every parameter whose decoded
 * name contains "pass" (case-blind): db_url.masked shows the text with each
 * of them as "***", and a text that does not parse is never shown at all.
 */
#ifndef DBPHASE_CORE_URL_H
#define DBPHASE_CORE_URL_H

#include <stdbool.h>
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
	char *masked;		/* the text, each secret "***": safe to print */
};

/* "postgresql", "mysql", "sqlite". */
const char *db_backend_name(enum db_backend backend);

/* Parse "postgresql" / "postgres" / "mysql" / "mariadb" / "sqlite"; -1 if none. */
int db_backend_from_name(const char *name);

/*
 * Parse text into url (which is overwritten; release it with
 * db_url_release).  On error returns DBPHASE_EBADINPUT with a message that
 * names the scheme and the character where parsing failed, never the text.
 */
int db_url_parse(const char *text, struct db_url *url, struct dbphase_error *err);

void db_url_release(struct db_url *url);

/* The value of query parameter key, or NULL. */
const char *db_url_param(const struct db_url *url, const char *key);

/* Whether a query parameter named key (decoded) holds a secret: "pass" in it. */
bool db_url_param_is_secret(const char *key);

/*
 * The URL text with every secret replaced by "***" (db_url.masked); for a
 * text that does not parse, a sentence saying so instead of the text.
 * Caller frees.
 */
char *db_url_mask(const char *text);

/*
 * Overwrite the secrets of text in place, for a URL given on the command
 * line (argv's memory is what /proc/PID/cmdline and ps show): each secret
 * becomes "***" (fewer stars for a shorter one), the rest moves up and the
 * freed tail is zeroed.  A text that does not parse keeps only its scheme.
 */
void db_url_scrub(char *text);

#endif
