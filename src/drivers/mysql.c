/*
 * drivers/mysql.c - the MariaDB/MySQL backend, on mariadb-connector-c.
 *
 * Design
 *
 * Every statement runs through one engine built on the connector's
 * non-blocking API (mysql_real_query_start, mysql_stmt_execute_start, ...):
 * send() starts it, consume() advances it when the socket is ready and
 * take() hands over the materialised result or the error.  The blocking
 * calls of the vtable (exec, query, begin, introspection, ...) are the same
 * engine driven by poll(2) on the connection's socket, so the executor's
 * asynchronous path and everything else share one tested code path.
 *
 * A statement without parameters goes through the text protocol and may
 * hold several statements (CLIENT_MULTI_STATEMENTS); every result set is
 * read, the first one with columns is kept.  A statement with parameters is
 * rewritten from $n to ? (dialect_rewrite_params) and run as a server-side
 * prepared statement, with the values bound, never spliced into the SQL:
 * the connector has non-blocking variants of prepare, execute, store and
 * close, so binding costs the executor nothing.  Result values are fetched
 * as strings into buffers sized from the stored result's max_length, and a
 * value that still does not fit is fetched again with
 * mysql_stmt_fetch_column into a buffer of its exact length.
 *
 * The steps of one statement:
 *
 *   text:      QUERY -> [STORE -> NEXT -> (QUERY's end again)]* -> DONE
 *   prepared:  PREPARE -> EXECUTE -> [STMT_STORE -> STMT_NEXT]* -> CLOSE -> DONE
 *
 * Server errors are classified by errno only, never by message text.
 *
 * Threads: mysql_library_init runs once (pthread_once) before the first
 * connection; mysql_thread_init must be called by every thread that uses
 * the connector (connect and cancel do it; in Connector/C 3.x it is a
 * no-op, but libmysqlclient needs it).  A connection is used by one thread
 * at a time; only cancel() may be called from another thread, and it
 * touches nothing but fields that are fixed once connect returned.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mysql.h>

#include "core/dialect.h"
#include "core/xmalloc.h"
#include "drivers/driver.h"

extern const struct db_driver db_mysql_driver;

#define MDB_MIN_MARIADB		100500	/* 10.5 */
#define MDB_CONNECT_TIMEOUT_S	10
#define MDB_CANCEL_TIMEOUT_S	5
#define MDB_LOCK_NAME_MAX	64	/* GET_LOCK's limit on MySQL 5.7+ */
#define MDB_LOCK_FOREVER_MS	INT64_C(31536000000)	/* a year */

/* Server and client error numbers we act on. */
#define MDB_ER_LOCK_WAIT_TIMEOUT	1205
#define MDB_ER_LOCK_DEADLOCK		1213
#define MDB_ER_QUERY_INTERRUPTED	1317
#define MDB_ER_STATEMENT_TIMEOUT	1969	/* MariaDB: max_statement_time */
#define MDB_ER_QUERY_TIMEOUT		3024	/* MySQL: max_execution_time */
#define MDB_ER_NO_SUCH_THREAD		1094
#define MDB_ER_CONNECTION_KILLED	1927	/* MariaDB */
#define MDB_ER_SERVER_SHUTDOWN		1053	/* the server is shutting down */
#define MDB_ER_LOCK_NOWAIT		3572	/* MySQL 8 */
#define MDB_CR_SERVER_GONE_ERROR	2006
#define MDB_CR_SERVER_LOST		2013
#define MDB_CR_SERVER_LOST_EXTENDED	2055

enum mdb_step {
	MDB_IDLE,		/* nothing in flight, nothing to take */
	MDB_QUERY,		/* mysql_real_query */
	MDB_STORE,		/* mysql_store_result */
	MDB_NEXT,		/* mysql_next_result */
	MDB_PREPARE,		/* mysql_stmt_prepare */
	MDB_EXECUTE,		/* mysql_stmt_execute */
	MDB_STMT_STORE,		/* mysql_stmt_store_result */
	MDB_STMT_NEXT,		/* mysql_stmt_next_result */
	MDB_CLOSE,		/* mysql_stmt_close */
	MDB_DONE,		/* finished: result or error waits for take */
};

/* A parameter value copied at send, alive until the statement is done. */
struct mdb_value {
	char *text;
	unsigned long len;
	long long i;
};

struct mdb_conn {
	struct db_conn base;
	MYSQL *handle;
	bool is_mariadb;

	/* Fixed after connect: what cancel() needs, from any thread. */
	struct db_url url;
	unsigned long thread_id;
	atomic_bool busy;	/* a statement is in flight */

	/* The statement in flight. */
	enum mdb_step step;
	bool started;		/* the step's _start was called */
	int wait;		/* MYSQL_WAIT_* the connector asked for last */
	int ret;		/* what an int-returning call returned */
	my_bool bret;		/* what a my_bool-returning call returned */
	MYSQL_STMT *stmt;
	struct strbuf sql;
	struct mdb_value *values;
	size_t n_values;
	MYSQL_BIND *binds;
	size_t n_binds;
	unsigned n_statements;	/* statements finished so far */
	bool kept;		/* res holds the first result set */
	struct db_result *res;	/* being built */
	struct dbphase_error err;	/* the statement's error */
};

static pthread_once_t mdb_library_once = PTHREAD_ONCE_INIT;
static int mdb_library_rc;

static void
mdb_library_end(void)
{
	mysql_library_end();
}

static void
mdb_library_init(void)
{
	mdb_library_rc = mysql_library_init(0, NULL, NULL);
	/* Frees the connector's global state (plugins, charsets) at exit. */
	if (mdb_library_rc == 0)
		atexit(mdb_library_end);
}

static struct mdb_conn *
mdb_conn(struct db_conn *conn)
{
	return (struct mdb_conn *)conn;
}

/*
 * Errors
 */

/* Fill err from an error number, SQLSTATE and message; returns its code. */
static int
mdb_error(struct dbphase_error *err, bool is_mariadb, unsigned code,
	  const char *sqlstate, const char *message)
{
	int kind = DBPHASE_EDB;
	bool retryable = false;

	switch (code) {
	case MDB_ER_LOCK_WAIT_TIMEOUT:	/* row locks and metadata locks */
		kind = DBPHASE_ELOCK_TIMEOUT;
		retryable = true;
		break;
	case MDB_ER_LOCK_NOWAIT:
		if (!is_mariadb) {
			kind = DBPHASE_ELOCK_TIMEOUT;
			retryable = true;
		}
		break;
	case MDB_ER_LOCK_DEADLOCK:
	case MDB_ER_CONNECTION_KILLED:
	case MDB_ER_SERVER_SHUTDOWN:
	case MDB_CR_SERVER_GONE_ERROR:
	case MDB_CR_SERVER_LOST:
	case MDB_CR_SERVER_LOST_EXTENDED:
		retryable = true;
		break;
	case MDB_ER_QUERY_INTERRUPTED:	/* KILL QUERY: our cancel() or another session's */
	case MDB_ER_STATEMENT_TIMEOUT:
	case MDB_ER_QUERY_TIMEOUT:
		kind = DBPHASE_ECANCELLED;
		break;
	}
	if (sqlstate == NULL || *sqlstate == '\0')
		sqlstate = "HY000";
	err_setf(err, kind, "%s (errno %u, SQLSTATE %s)",
		 message && *message ? message : "unknown error", code, sqlstate);
	if (err) {
		err->server_code = (int)code;
		snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", sqlstate);
		err->retryable = retryable;
	}
	return kind;
}

static int
mdb_conn_error(struct mdb_conn *c, struct dbphase_error *err)
{
	return mdb_error(err, c->is_mariadb, mysql_errno(c->handle),
			 mysql_sqlstate(c->handle), mysql_error(c->handle));
}

static int
mdb_stmt_error(struct mdb_conn *c, struct dbphase_error *err)
{
	return mdb_error(err, c->is_mariadb, mysql_stmt_errno(c->stmt),
			 mysql_stmt_sqlstate(c->stmt), mysql_stmt_error(c->stmt));
}

/*
 * Connecting
 */

/* user@host:port/db, to name the server in messages; never the password. */
static char *
mdb_describe(const struct db_url *url)
{
	struct strbuf sb = STRBUF_INIT;
	const char *sock = db_url_param(url, "unix_socket");

	strbuf_addstr(&sb, "mysql://");
	if (url->user)
		strbuf_addf(&sb, "%s@", url->user);
	if (url->host && strchr(url->host, ':'))
		strbuf_addf(&sb, "[%s]", url->host);
	else
		strbuf_addstr(&sb, url->host ? url->host : "localhost");
	if (url->port)
		strbuf_addf(&sb, ":%d", url->port);
	strbuf_addf(&sb, "/%s", url->database ? url->database : "");
	if (sock && *sock)
		strbuf_addf(&sb, "?unix_socket=%s", sock);
	return strbuf_detach(&sb);
}

static void
mdb_url_copy(struct db_url *dst, const struct db_url *src)
{
	size_t i;

	memset(dst, 0, sizeof(*dst));
	dst->backend = src->backend;
	dst->scheme = xstrdup_or_null(src->scheme);
	dst->user = xstrdup_or_null(src->user);
	dst->password = xstrdup_or_null(src->password);
	dst->host = xstrdup_or_null(src->host);
	dst->port = src->port;
	dst->database = xstrdup_or_null(src->database);
	if (src->n_params)
		dst->params = xcalloc(src->n_params, sizeof(*dst->params));
	for (i = 0; i < src->n_params; i++) {
		dst->params[i].key = xstrdup(src->params[i].key);
		dst->params[i].value = xstrdup_or_null(src->params[i].value);
	}
	dst->n_params = src->n_params;
	dst->masked = xstrdup_or_null(src->masked);
}

static int
mdb_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "1", "true", "yes", "on", "required" };
	static const char *const no[] = { "0", "false", "no", "off", "disabled" };
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/*
 * Character sets in which the last byte of a multi-byte character can be
 * 0x5c, a backslash: under them the quoting of a literal can be cut open
 * ('\xbf\x5c' is one character, and the backslash doubled after it
 * escapes the closing quote).  dbphase talks utf8mb4 whatever the URL
 * says, and refuses these outright rather than let a URL that asks for
 * them look accepted.
 */
static const char *const mdb_unsafe_charsets[] = {
	"big5", "cp932", "gb18030", "gbk", "sjis",
};

/*
 * A URL's charset parameter.  It is meant for the application's driver
 * (OpenStack URLs carry charset=utf8): dbphase's SQL is UTF-8 text, so its
 * session is utf8mb4 in any case (mdb_session_setup), and the parameter
 * only has to be safe.
 */
static int
mdb_check_charset(const char *charset, struct dbphase_error *err)
{
	size_t i;

	for (i = 0; i < sizeof(mdb_unsafe_charsets) / sizeof(mdb_unsafe_charsets[0]); i++)
		if (strcasecmp(charset, mdb_unsafe_charsets[i]) == 0)
			return err_setf(err, DBPHASE_EBADINPUT,
					"MariaDB URL parameter charset=%s refused: in %s a "
					"multi-byte character can end in a backslash byte, "
					"which makes quoted strings unsafe; dbphase always talks "
					"utf8mb4 (its SQL is UTF-8), so remove the parameter or "
					"write charset=utf8mb4", charset, mdb_unsafe_charsets[i]);
	return 0;
}

/*
 * Set the connection options the URL asks for on handle; *tls tells
 * whether the URL demands TLS (ssl=true, ssl_verify_cert=true or a
 * certificate).  Unknown parameters are refused: a mistyped ssl_ca must not
 * quietly connect in clear text.
 */
static int
mdb_set_options(MYSQL *handle, const struct db_url *url, unsigned max_timeout_s,
		bool *tls, struct dbphase_error *err)
{
	unsigned timeout_s = MDB_CONNECT_TIMEOUT_S, no_infile = 0;
	my_bool on = 1, off = 0;
	bool b;
	size_t i;

	*tls = false;
	for (i = 0; i < url->n_params; i++) {
		const char *key = url->params[i].key;
		const char *val = url->params[i].value ? url->params[i].value : "";
		int rc = 0;

		if (strcmp(key, "unix_socket") == 0) {
			/* passed to mysql_real_connect */
		} else if (strcmp(key, "connect_timeout") == 0) {
			char *end;
			long v = strtol(val, &end, 10);

			if (*val == '\0' || *end || v <= 0 || v > INT_MAX)
				goto bad_value;
			timeout_s = (unsigned)v;
		} else if (strcmp(key, "charset") == 0) {
			if ((rc = mdb_check_charset(val, err)) < 0)
				return rc;
		} else if (strcmp(key, "ssl") == 0) {
			if (mdb_parse_bool(val, &b) < 0)
				goto bad_value;
			rc = mysql_options(handle, MYSQL_OPT_SSL_ENFORCE, b ? &on : &off);
			*tls |= b;
		} else if (strcmp(key, "ssl_verify_cert") == 0) {
			if (mdb_parse_bool(val, &b) < 0)
				goto bad_value;
			rc = mysql_options(handle, MYSQL_OPT_SSL_VERIFY_SERVER_CERT,
					    b ? &on : &off);
			*tls |= b;
		} else if (strcmp(key, "ssl_ca") == 0) {
			rc = mysql_options(handle, MYSQL_OPT_SSL_CA, val);
			*tls = true;
		} else if (strcmp(key, "ssl_cert") == 0) {
			rc = mysql_options(handle, MYSQL_OPT_SSL_CERT, val);
			*tls = true;
		} else if (strcmp(key, "ssl_key") == 0) {
			rc = mysql_options(handle, MYSQL_OPT_SSL_KEY, val);
			*tls = true;
		} else {
			/*
			 * SQLAlchemy and OpenStack URLs carry parameters meant
			 * for other drivers or for the application itself
			 * (plugin=dbcounter, read_default_group, binary_prefix):
			 * they do not concern this connection, so an existing
			 * service config file works as it is.
			 */
			continue;
		}
		if (rc)
			return err_setf(err, DBPHASE_EBADINPUT,
					"MariaDB URL parameter %s=%s not accepted: %s",
					key, val, mysql_error(handle));
		continue;
bad_value:
		return err_setf(err, DBPHASE_EBADINPUT,
				"bad value '%s' for MariaDB URL parameter %s", val, key);
	}
	if (max_timeout_s && timeout_s > max_timeout_s)
		timeout_s = max_timeout_s;
	mysql_options(handle, MYSQL_OPT_CONNECT_TIMEOUT, &timeout_s);
	mysql_options(handle, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	/* LOAD DATA LOCAL would let a hostile server read our files. */
	mysql_options(handle, MYSQL_OPT_LOCAL_INFILE, &no_infile);
	return 0;
}

/*
 * Open handle (from mysql_init) to the server of url, waiting at most
 * max_timeout_s (0: as the URL says) for the connection.  Reconnecting stays
 * off (the connector's default): a silent reconnect would drop the
 * session's locks, transaction and timeouts behind our back.
 * CLIENT_FOUND_ROWS makes UPDATE report matched rows, as PostgreSQL and
 * SQLite do, so that a batch that rewrites rows to their own values still
 * counts them.
 */
static int
mdb_open(MYSQL *handle, const struct db_url *url, bool with_db,
	 unsigned max_timeout_s, struct dbphase_error *err)
{
	unsigned long flags = CLIENT_MULTI_STATEMENTS | CLIENT_FOUND_ROWS;
	const char *sock = db_url_param(url, "unix_socket");
	char *where;
	bool tls;
	int rc;

	rc = mdb_set_options(handle, url, max_timeout_s, &tls, err);
	if (rc < 0)
		return rc;
	if (mysql_real_connect(handle, url->host, url->user, url->password,
			       with_db ? url->database : NULL, (unsigned)url->port,
			       sock && *sock ? sock : NULL, flags)) {
		/*
		 * Connector/C 3.3 falls back to clear text when the server has
		 * no TLS unless the certificate is verified: check ourselves.
		 */
		if (!tls || mysql_get_ssl_cipher(handle))
			return 0;
		where = mdb_describe(url);
		err_setf(err, DBPHASE_ECONNECT, "cannot connect to %s: the URL asks "
			 "for TLS (SSL) but the server does not offer it", where);
		free(where);
		return DBPHASE_ECONNECT;
	}
	where = mdb_describe(url);
	err_setf(err, DBPHASE_ECONNECT, "cannot connect to %s: %s (errno %u)",
		 where, mysql_error(handle), mysql_errno(handle));
	if (err) {
		err->server_code = (int)mysql_errno(handle);
		snprintf(err->sqlstate, sizeof(err->sqlstate), "%s",
			 mysql_sqlstate(handle));
	}
	free(where);
	return DBPHASE_ECONNECT;
}

static int mdb_run(struct mdb_conn *c, const char *sql,
		   const struct db_param *params, size_t n_params,
		   struct db_result **res, struct dbphase_error *err);
static void mdb_close(struct db_conn *conn);

static int
mdb_check_version(struct mdb_conn *c, struct dbphase_error *err)
{
	const char *info = mysql_get_server_info(c->handle);
	unsigned long v = mysql_get_server_version(c->handle);
	unsigned long min;

	c->base.server_version = (int)v;
	c->base.server_version_text = xstrdup(info ? info : "");
	c->is_mariadb = info && strstr(info, "MariaDB");
	/*
	 * The catalog's SQL for this backend is MariaDB's (ADD COLUMN IF NOT
	 * EXISTS, CREATE INDEX IF NOT EXISTS, DROP INDEX IF EXISTS ... ON,
	 * sequence tables in tests): MySQL lacks parts of it, and no MySQL
	 * server was available to test with, so it is refused plainly.
	 */
	if (!c->is_mariadb)
		return err_setf(err, DBPHASE_EUNSUPPORTED,
				"MySQL %s found; dbphase supports MariaDB %d.%d or newer on this "
				"backend (its SQL uses MariaDB's IF [NOT] EXISTS forms)",
				c->base.server_version_text, MDB_MIN_MARIADB / 10000,
				MDB_MIN_MARIADB / 100 % 100);
	min = MDB_MIN_MARIADB;
	if (v >= min)
		return 0;
	return err_setf(err, DBPHASE_EUNSUPPORTED,
			"%s %s found; dbphase needs %s %lu.%lu or newer",
			c->is_mariadb ? "MariaDB" : "MySQL", c->base.server_version_text,
			c->is_mariadb ? "MariaDB" : "MySQL", min / 10000, min / 100 % 100);
}

/*
 * sql_mode flags under which a quoted literal or identifier would mean
 * something else than dialect_quote_literal / dialect_quote_ident wrote, and the
 * combined modes that bring ANSI_QUOTES back with them.
 */
static const char *const mdb_unsafe_modes[] = {
	"NO_BACKSLASH_ESCAPES", "ANSI_QUOTES",
	"ANSI", "DB2", "MAXDB", "MSSQL", "ORACLE", "POSTGRESQL",
};

static bool
mdb_mode_unsafe(const char *flag, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(mdb_unsafe_modes) / sizeof(mdb_unsafe_modes[0]); i++)
		if (strlen(mdb_unsafe_modes[i]) == len &&
		    strncasecmp(mdb_unsafe_modes[i], flag, len) == 0)
			return true;
	return false;
}

/* The session's sql_mode into *mode (owned). */
static int
mdb_sql_mode(struct mdb_conn *c, char **mode, struct dbphase_error *err)
{
	struct db_result *res = NULL;
	int rc;

	*mode = NULL;
	if ((rc = mdb_run(c, "SELECT @@SESSION.sql_mode", NULL, 0, &res, err)) < 0)
		return rc;
	if (res->n_rows == 1 && res->n_cols == 1)
		*mode = xstrdup(db_result_value(res, 0, 0) ? db_result_value(res, 0, 0) : "");
	else
		rc = err_setf(err, DBPHASE_EDB, "SELECT @@SESSION.sql_mode returned no value");
	db_result_free(res);
	return rc;
}

/*
 * Make the session the one dbphase's SQL is written for, whatever the
 * server's defaults or its init_connect say:
 *
 * - utf8mb4.  Migration files are UTF-8, and in utf8mb4 neither a quote
 *   nor a backslash byte is ever part of a multi-byte character, so the
 *   doubling done by dialect_quote_literal cannot be cut open.
 * - an sql_mode without NO_BACKSLASH_ESCAPES and ANSI_QUOTES (and the
 *   combined modes that imply ANSI_QUOTES), keeping the server's other
 *   flags: a literal is read with backslash escapes, as dialect_quote_literal
 *   writes it, and "..." is a string, as MariaDB's default has it.
 *   Triggers keep the sql_mode they were created under, so this holds for
 *   the bodies dbphase creates as well.  The mode is read back: a server
 *   that put a removed flag back is refused rather than trusted.
 * - UTC for timestamps.
 */
static int
mdb_session_setup(struct mdb_conn *c, struct dbphase_error *err)
{
	struct strbuf want = STRBUF_INIT, sql = STRBUF_INIT;
	char *mode = NULL, *check = NULL;
	const char *p;
	int rc;

	if ((rc = mdb_run(c, "SET NAMES utf8mb4", NULL, 0, NULL, err)) < 0)
		return rc;
	if ((rc = mdb_run(c, "SET time_zone = '+00:00'", NULL, 0, NULL, err)) < 0)
		return rc;
	if ((rc = mdb_sql_mode(c, &mode, err)) < 0)
		return rc;
	for (p = mode; *p; ) {
		size_t len = strcspn(p, ",");

		if (len && !mdb_mode_unsafe(p, len)) {
			if (want.len)
				strbuf_addch(&want, ',');
			strbuf_add(&want, p, len);
		}
		p += len + (p[len] == ',');
	}
	strbuf_addstr(&sql, "SET SESSION sql_mode = ");
	dialect_quote_literal(DB_BACKEND_MYSQL, &sql, want.buf);
	rc = mdb_run(c, sql.buf, NULL, 0, NULL, err);
	if (rc == 0)
		rc = mdb_sql_mode(c, &check, err);
	for (p = check; rc == 0 && *p; ) {
		size_t len = strcspn(p, ",");

		if (mdb_mode_unsafe(p, len))
			rc = err_setf(err, DBPHASE_EUNSUPPORTED,
				      "the server keeps %.*s in sql_mode (%s) after dbphase "
				      "removed it; dbphase's quoted strings need it off",
				      (int)len, p, check);
		p += len + (p[len] == ',');
	}
	free(check);
	free(mode);
	strbuf_release(&want);
	strbuf_release(&sql);
	return rc;
}

static int
mdb_connect(const struct db_url *url, const char *name, struct db_conn **out,
	    struct dbphase_error *err)
{
	struct mdb_conn *c;
	int rc;

	*out = NULL;
	pthread_once(&mdb_library_once, mdb_library_init);
	if (mdb_library_rc != 0)
		return err_setf(err, DBPHASE_ECONNECT,
				"cannot initialise the MariaDB client library");
	mysql_thread_init();

	c = XNEW(struct mdb_conn);
	db_conn_init(&c->base, &db_mysql_driver, name);
	strbuf_init(&c->sql);
	atomic_init(&c->busy, false);
	mdb_url_copy(&c->url, url);
	c->handle = mysql_init(NULL);
	if (c->handle == NULL) {
		rc = err_setf(err, DBPHASE_ECONNECT, "mysql_init: out of memory");
		goto out;
	}
	/* Before connecting: the engine uses the non-blocking API. */
	if (mysql_options(c->handle, MYSQL_OPT_NONBLOCK, NULL) != 0) {
		rc = err_setf(err, DBPHASE_ECONNECT,
			      "the MariaDB client library has no non-blocking API");
		goto out;
	}
	rc = mdb_open(c->handle, &c->url, true, 0, err);
	if (rc < 0)
		goto out;
	c->thread_id = mysql_thread_id(c->handle);
	c->base.session_id = (int64_t)c->thread_id;
	rc = mdb_check_version(c, err);
	if (rc < 0)
		goto out;
	rc = mdb_session_setup(c, err);
	if (rc < 0)
		goto out;
	*out = &c->base;
	c = NULL;
out:
	mdb_close(c ? &c->base : NULL);
	return rc;
}

/*
 * The statement engine
 */

/* Forget the statement in flight, keeping the connection. */
static void
mdb_reset(struct mdb_conn *c)
{
	size_t i;

	if (c->stmt)
		mysql_stmt_close(c->stmt);
	c->stmt = NULL;
	for (i = 0; i < c->n_values; i++)
		free(c->values[i].text);
	free(c->values);
	free(c->binds);
	c->values = NULL;
	c->binds = NULL;
	c->n_values = c->n_binds = 0;
	db_result_free(c->res);
	c->res = NULL;
	err_release(&c->err);
	strbuf_reset(&c->sql);
	c->n_statements = 0;
	c->kept = false;
	c->wait = 0;
	c->started = false;
	c->step = MDB_IDLE;
	atomic_store(&c->busy, false);
}

static void
mdb_goto(struct mdb_conn *c, enum mdb_step step)
{
	c->step = step;
	c->started = false;
}

/* A text result set as a db_result. */
static struct db_result *
mdb_result_from_stored(MYSQL_RES *stored)
{
	struct db_result *res = XNEW(struct db_result);
	unsigned n = mysql_num_fields(stored);
	MYSQL_FIELD *fields = mysql_fetch_fields(stored);
	size_t alloc = 0, k = 0;
	MYSQL_ROW row;
	unsigned long *lengths;
	unsigned i;

	res->n_cols = n;
	res->col_names = xcalloc(n ? n : 1, sizeof(char *));
	for (i = 0; i < n; i++)
		res->col_names[i] = xstrndup(fields[i].name, fields[i].name_length);
	while ((row = mysql_fetch_row(stored))) {
		lengths = mysql_fetch_lengths(stored);
		res->values = xgrow(res->values, sizeof(char *), k + n + 1, &alloc);
		for (i = 0; i < n; i++)
			res->values[k++] = row[i] ? xstrndup(row[i], lengths[i]) : NULL;
		res->n_rows++;
	}
	return res;
}

/*
 * The stored result of the prepared statement as a db_result.  Values are
 * fetched as strings into buffers of max_length: STMT_ATTR_UPDATE_MAX_LENGTH
 * makes the store compute it for strings, and sets it to the longest text
 * a number or date converts to otherwise, which matters, for the connector
 * rounds a number to fit a short buffer instead of reporting truncation.
 * A string that still does not fit is fetched again with a buffer of its
 * exact length.
 */
static int
mdb_result_from_stmt(struct mdb_conn *c, struct db_result **out,
		     struct dbphase_error *err)
{
	unsigned n = mysql_stmt_field_count(c->stmt);
	MYSQL_RES *meta = mysql_stmt_result_metadata(c->stmt);
	MYSQL_FIELD *fields;
	struct db_result *res = XNEW(struct db_result);
	MYSQL_BIND *binds = xcalloc(n ? n : 1, sizeof(*binds));
	unsigned long *lengths = xcalloc(n ? n : 1, sizeof(*lengths));
	my_bool *nulls = xcalloc(n ? n : 1, sizeof(*nulls));
	my_bool *truncated = xcalloc(n ? n : 1, sizeof(*truncated));
	char **bufs = xcalloc(n ? n : 1, sizeof(*bufs));
	size_t alloc = 0, k = 0;
	unsigned i;
	int rc = 0, fetched;

	res->n_cols = n;
	res->col_names = xcalloc(n ? n : 1, sizeof(char *));
	if (meta == NULL) {
		rc = mdb_stmt_error(c, err);
		goto out;
	}
	fields = mysql_fetch_fields(meta);
	for (i = 0; i < n; i++) {
		unsigned long size = fields[i].max_length + 1;

		if (size < 64)
			size = 64;
		res->col_names[i] = xstrndup(fields[i].name, fields[i].name_length);
		bufs[i] = xmalloc(size);
		binds[i].buffer_type = MYSQL_TYPE_STRING;
		binds[i].buffer = bufs[i];
		binds[i].buffer_length = size;
		binds[i].length = &lengths[i];
		binds[i].is_null = &nulls[i];
		binds[i].error = &truncated[i];
	}
	if (n && mysql_stmt_bind_result(c->stmt, binds)) {
		rc = mdb_stmt_error(c, err);
		goto out;
	}
	while ((fetched = mysql_stmt_fetch(c->stmt)) == 0 ||
	       fetched == MYSQL_DATA_TRUNCATED) {
		res->values = xgrow(res->values, sizeof(char *), k + n + 1, &alloc);
		for (i = 0; i < n; i++) {
			MYSQL_BIND again = { 0 };
			unsigned long len = 0;
			char *v;

			if (nulls[i]) {
				res->values[k++] = NULL;
				continue;
			}
			if (!truncated[i] && lengths[i] <= binds[i].buffer_length) {
				res->values[k++] = xstrndup(bufs[i], lengths[i]);
				continue;
			}
			v = xmalloc(lengths[i] + 1);
			again.buffer_type = MYSQL_TYPE_STRING;
			again.buffer = v;
			again.buffer_length = lengths[i] + 1;
			again.length = &len;
			res->values[k++] = v;
			if (mysql_stmt_fetch_column(c->stmt, &again, i, 0)) {
				v[0] = '\0';
				rc = mdb_stmt_error(c, err);
				goto out;
			}
			v[len < lengths[i] ? len : lengths[i]] = '\0';
		}
		res->n_rows++;
	}
	if (fetched != MYSQL_NO_DATA)
		rc = mdb_stmt_error(c, err);
out:
	if (meta)
		mysql_free_result(meta);
	for (i = 0; i < n; i++)
		free(bufs[i]);
	free(bufs);
	free(binds);
	free(lengths);
	free(nulls);
	free(truncated);
	if (rc < 0) {
		/* rows fetched so far are complete; the rest was never stored */
		db_result_free(res);
		res = NULL;
	}
	*out = res;
	return rc;
}

/* A statement of the text protocol finished without error. */
static void
mdb_text_statement_done(struct mdb_conn *c)
{
	if (mysql_field_count(c->handle) > 0) {
		mdb_goto(c, MDB_STORE);
		return;
	}
	if (c->n_statements++ == 0)
		c->res->affected = mysql_affected_rows(c->handle);
	mdb_goto(c, mysql_more_results(c->handle) ? MDB_NEXT : MDB_DONE);
}

/* The prepared statement returned a result (set) without error. */
static void
mdb_stmt_result_done(struct mdb_conn *c)
{
	if (mysql_stmt_field_count(c->stmt) > 0) {
		mdb_goto(c, MDB_STMT_STORE);
		return;
	}
	if (c->n_statements++ == 0)
		c->res->affected = mysql_stmt_affected_rows(c->stmt);
	mdb_goto(c, mysql_stmt_more_results(c->stmt) ? MDB_STMT_NEXT : MDB_CLOSE);
}

/* After PREPARE: check and bind the parameters. */
static void
mdb_stmt_prepared(struct mdb_conn *c)
{
	unsigned long want = mysql_stmt_param_count(c->stmt);

	if (want != c->n_binds) {
		err_setf(&c->err, DBPHASE_EDB,
			 "the server counts %lu parameters in the statement, "
			 "dbphase found %zu placeholders", want, c->n_binds);
		mdb_goto(c, MDB_CLOSE);
		return;
	}
	if (c->n_binds && mysql_stmt_bind_param(c->stmt, c->binds)) {
		mdb_stmt_error(c, &c->err);
		mdb_goto(c, MDB_CLOSE);
		return;
	}
	mdb_goto(c, MDB_EXECUTE);
}

/*
 * Advance the statement in flight as far as it goes without blocking.
 * ready holds the MYSQL_WAIT_* events that occurred (used only to continue
 * a step already started).  Returns the events to wait for, or 0 when the
 * statement is done (c->step == MDB_DONE).
 */
static int
mdb_advance(struct mdb_conn *c, int ready)
{
	MYSQL_RES *stored;
	int status;

	for (;;) {
		switch (c->step) {
		case MDB_IDLE:
		case MDB_DONE:
			return 0;
		case MDB_QUERY:
			status = c->started ?
				mysql_real_query_cont(&c->ret, c->handle, ready) :
				mysql_real_query_start(&c->ret, c->handle,
						       c->sql.buf, c->sql.len);
			if (status)
				goto wait;
			if (c->ret) {
				mdb_conn_error(c, &c->err);
				mdb_goto(c, MDB_DONE);
			} else {
				mdb_text_statement_done(c);
			}
			break;
		case MDB_STORE:
			stored = NULL;
			status = c->started ?
				mysql_store_result_cont(&stored, c->handle, ready) :
				mysql_store_result_start(&stored, c->handle);
			if (status)
				goto wait;
			if (stored == NULL) {
				mdb_conn_error(c, &c->err);
				mdb_goto(c, MDB_DONE);
				break;
			}
			/* Stored results are read from memory: no I/O below. */
			c->n_statements++;
			if (!c->kept) {
				uint64_t affected = c->res->affected;

				db_result_free(c->res);
				c->res = mdb_result_from_stored(stored);
				c->res->affected = affected;
				c->kept = true;
			}
			mysql_free_result(stored);
			mdb_goto(c, mysql_more_results(c->handle) ? MDB_NEXT : MDB_DONE);
			break;
		case MDB_NEXT:
			status = c->started ?
				mysql_next_result_cont(&c->ret, c->handle, ready) :
				mysql_next_result_start(&c->ret, c->handle);
			if (status)
				goto wait;
			if (c->ret > 0) {
				mdb_conn_error(c, &c->err);
				mdb_goto(c, MDB_DONE);
			} else if (c->ret == 0) {
				mdb_text_statement_done(c);
			} else {
				mdb_goto(c, MDB_DONE);
			}
			break;
		case MDB_PREPARE:
			status = c->started ?
				mysql_stmt_prepare_cont(&c->ret, c->stmt, ready) :
				mysql_stmt_prepare_start(&c->ret, c->stmt,
							 c->sql.buf, c->sql.len);
			if (status)
				goto wait;
			if (c->ret) {
				mdb_stmt_error(c, &c->err);
				mdb_goto(c, MDB_CLOSE);
			} else {
				mdb_stmt_prepared(c);
			}
			break;
		case MDB_EXECUTE:
			status = c->started ?
				mysql_stmt_execute_cont(&c->ret, c->stmt, ready) :
				mysql_stmt_execute_start(&c->ret, c->stmt);
			if (status)
				goto wait;
			if (c->ret) {
				mdb_stmt_error(c, &c->err);
				mdb_goto(c, MDB_CLOSE);
			} else {
				mdb_stmt_result_done(c);
			}
			break;
		case MDB_STMT_STORE:
			status = c->started ?
				mysql_stmt_store_result_cont(&c->ret, c->stmt, ready) :
				mysql_stmt_store_result_start(&c->ret, c->stmt);
			if (status)
				goto wait;
			if (c->ret) {
				mdb_stmt_error(c, &c->err);
				mdb_goto(c, MDB_CLOSE);
				break;
			}
			c->n_statements++;
			if (!c->kept) {
				struct db_result *res = NULL;

				if (mdb_result_from_stmt(c, &res, &c->err) < 0) {
					mdb_goto(c, MDB_CLOSE);
					break;
				}
				res->affected = c->res->affected;
				db_result_free(c->res);
				c->res = res;
				c->kept = true;
			}
			mdb_goto(c, mysql_stmt_more_results(c->stmt) ?
				 MDB_STMT_NEXT : MDB_CLOSE);
			break;
		case MDB_STMT_NEXT:
			status = c->started ?
				mysql_stmt_next_result_cont(&c->ret, c->stmt, ready) :
				mysql_stmt_next_result_start(&c->ret, c->stmt);
			if (status)
				goto wait;
			if (c->ret > 0) {
				mdb_stmt_error(c, &c->err);
				mdb_goto(c, MDB_CLOSE);
			} else if (c->ret == 0) {
				mdb_stmt_result_done(c);
			} else {
				mdb_goto(c, MDB_CLOSE);
			}
			break;
		case MDB_CLOSE:
			/* mysql_stmt_close frees the statement when it completes. */
			status = c->started ?
				mysql_stmt_close_cont(&c->bret, c->stmt, ready) :
				mysql_stmt_close_start(&c->bret, c->stmt);
			if (status)
				goto wait;
			c->stmt = NULL;
			if (c->bret && c->err.code == 0)
				mdb_conn_error(c, &c->err);
			mdb_goto(c, MDB_DONE);
			break;
		}
	}
wait:
	c->started = true;
	c->wait = status;
	return status;
}

static int
mdb_want_from_wait(int wait)
{
	int want = 0;

	if (wait & (MYSQL_WAIT_READ | MYSQL_WAIT_EXCEPT))
		want |= DB_WANT_READ;
	if (wait & MYSQL_WAIT_WRITE)
		want |= DB_WANT_WRITE;
	if (wait & MYSQL_WAIT_TIMEOUT)
		want |= DB_WANT_TIMEOUT;
	return want;
}

/*
 * Start sql and take it as far as it goes without blocking.  *want is 0
 * when it is already finished (a lost connection fails at once, for
 * instance; the socket may then be gone): take it right away.  Parameter
 * values are copied, since the caller's may go away before the statement
 * is executed.
 */
static int
mdb_send(struct db_conn *conn, const char *sql, const struct db_param *params,
	 size_t n_params, int *want, struct dbphase_error *err)
{
	struct mdb_conn *c = mdb_conn(conn);
	int *order = NULL;
	size_t n_order = 0, i;
	my_bool on = 1;
	int rc = 0;

	*want = 0;
	if (c->step != MDB_IDLE)
		return err_setf(err, DBPHASE_EERROR,
				"mysql: a statement is already in flight on this connection");
	db_stmt_begin(conn, sql);
	c->res = XNEW(struct db_result);
	if (n_params == 0) {
		strbuf_addstr(&c->sql, sql);
		mdb_goto(c, MDB_QUERY);
		goto start;
	}

	dialect_rewrite_params(DB_BACKEND_MYSQL, sql, &c->sql, &order, &n_order);
	for (i = 0; i < n_order; i++) {
		if (order[i] < 1 || (size_t)order[i] > n_params) {
			rc = err_setf(err, DBPHASE_EBADINPUT,
				      "SQL uses $%d but %zu parameters were given",
				      order[i], n_params);
			goto out;
		}
	}
	c->values = xcalloc(n_params, sizeof(*c->values));
	c->n_values = n_params;
	for (i = 0; i < n_params; i++) {
		if (params[i].type == DB_PARAM_TEXT) {
			c->values[i].text = xstrdup(params[i].text ? params[i].text : "");
			c->values[i].len = strlen(c->values[i].text);
		} else {
			c->values[i].i = params[i].i;
		}
	}
	c->binds = xcalloc(n_order ? n_order : 1, sizeof(*c->binds));
	c->n_binds = n_order;
	for (i = 0; i < n_order; i++) {
		const struct db_param *p = &params[order[i] - 1];
		struct mdb_value *v = &c->values[order[i] - 1];
		MYSQL_BIND *b = &c->binds[i];

		if (p->type == DB_PARAM_NULL || (p->type == DB_PARAM_TEXT && !p->text)) {
			b->buffer_type = MYSQL_TYPE_NULL;
		} else if (p->type == DB_PARAM_TEXT) {
			b->buffer_type = MYSQL_TYPE_STRING;
			b->buffer = v->text;
			b->buffer_length = v->len;
			b->length = &v->len;
		} else {
			b->buffer_type = MYSQL_TYPE_LONGLONG;
			b->buffer = &v->i;
		}
	}
	c->stmt = mysql_stmt_init(c->handle);
	if (c->stmt == NULL) {
		rc = mdb_conn_error(c, err);
		goto out;
	}
	mysql_stmt_attr_set(c->stmt, STMT_ATTR_UPDATE_MAX_LENGTH, &on);
	mdb_goto(c, MDB_PREPARE);
start:
	atomic_store(&c->busy, true);
	*want = mdb_want_from_wait(mdb_advance(c, 0));
out:
	free(order);
	if (rc < 0) {
		db_stmt_end(conn, rc, err, -1, -1);
		mdb_reset(c);
	}
	return rc;
}

/*
 * Continue after the socket became ready.  On entry *want holds the
 * DB_WANT_* events that happened (READ/WRITE readiness, TIMEOUT when the
 * timer fired); 0 means "not known", and the events last asked for are
 * assumed: the connector then simply retries its non-blocking I/O.
 */
static int
mdb_consume(struct db_conn *conn, int *want, struct dbphase_error *err)
{
	struct mdb_conn *c = mdb_conn(conn);
	int ready = 0;

	if (c->step == MDB_IDLE)
		return err_setf(err, DBPHASE_EERROR,
				"mysql: no statement in flight on this connection");
	if (*want & DB_WANT_READ)
		ready |= MYSQL_WAIT_READ | (c->wait & MYSQL_WAIT_EXCEPT);
	if (*want & DB_WANT_WRITE)
		ready |= MYSQL_WAIT_WRITE;
	if (*want & DB_WANT_TIMEOUT)
		ready |= MYSQL_WAIT_TIMEOUT;
	if (ready == 0)
		ready = (c->wait & ~MYSQL_WAIT_TIMEOUT) ? c->wait & ~MYSQL_WAIT_TIMEOUT
							  : c->wait;
	*want = mdb_want_from_wait(mdb_advance(c, ready));
	return *want ? 1 : 0;
}

static int
mdb_take(struct db_conn *conn, struct db_result **res, struct dbphase_error *err)
{
	struct mdb_conn *c = mdb_conn(conn);
	int rc;

	if (res)
		*res = NULL;
	if (c->step != MDB_DONE)
		return err_setf(err, DBPHASE_EERROR, c->step == MDB_IDLE ?
				"mysql: no statement to take a result from" :
				"mysql: the statement is still running");
	db_stmt_end_result(conn, c->err.code, &c->err, c->res);
	if (c->err.code) {
		rc = c->err.code;
		if (err)
			err_move(err, &c->err);
	} else {
		rc = 0;
		if (res) {
			*res = c->res;
			c->res = NULL;
		}
	}
	mdb_reset(c);
	return rc;
}

static int
mdb_socket(struct db_conn *conn)
{
	return (int)mysql_get_socket(mdb_conn(conn)->handle);
}

static int
mdb_timeout_ms(struct db_conn *conn)
{
	struct mdb_conn *c = mdb_conn(conn);

	if (!(c->wait & MYSQL_WAIT_TIMEOUT))
		return -1;
	return (int)mysql_get_timeout_value_ms(c->handle);
}

/* Wait with poll(2) for what *want asks; leave in *want what happened. */
static void
mdb_poll(struct mdb_conn *c, int *want)
{
	struct pollfd pfd = { .fd = (int)mysql_get_socket(c->handle) };
	int timeout = -1, n, ready = 0;

	if (*want & DB_WANT_READ)
		pfd.events |= POLLIN | POLLPRI;
	if (*want & DB_WANT_WRITE)
		pfd.events |= POLLOUT;
	if (*want & DB_WANT_TIMEOUT)
		timeout = (int)mysql_get_timeout_value_ms(c->handle);
	do
		n = poll(&pfd, 1, timeout);
	while (n < 0 && errno == EINTR);
	if (n == 0) {
		*want = DB_WANT_TIMEOUT;
		return;
	}
	if (n > 0 && (pfd.revents & (POLLIN | POLLPRI | POLLERR | POLLHUP)))
		ready |= *want & DB_WANT_READ;
	if (n > 0 && (pfd.revents & (POLLOUT | POLLERR | POLLHUP)))
		ready |= *want & DB_WANT_WRITE;
	/* Anything else: let the connector try, and see for itself. */
	*want = ready ? ready : *want & ~DB_WANT_TIMEOUT;
}

/* Run one statement to completion: the engine driven by poll(2). */
static int
mdb_run(struct mdb_conn *c, const char *sql, const struct db_param *params,
	size_t n_params, struct db_result **res, struct dbphase_error *err)
{
	int want, rc;

	if (res)
		*res = NULL;
	rc = mdb_send(&c->base, sql, params, n_params, &want, err);
	if (rc < 0)
		return rc;
	while (want) {
		mdb_poll(c, &want);
		rc = mdb_consume(&c->base, &want, err);
		if (rc < 0)
			return rc;
	}
	return mdb_take(&c->base, res, err);
}

/*
 * The blocking calls
 */

static int
mdb_exec(struct db_conn *conn, const char *sql, struct dbphase_error *err)
{
	return mdb_run(mdb_conn(conn), sql, NULL, 0, NULL, err);
}

static int
mdb_query(struct db_conn *conn, const char *sql, const struct db_param *params,
	  size_t n_params, struct db_result **res, struct dbphase_error *err)
{
	return mdb_run(mdb_conn(conn), sql, params, n_params, res, err);
}

static int
mdb_begin(struct db_conn *conn, struct dbphase_error *err)
{
	int rc = mdb_exec(conn, "START TRANSACTION", err);

	if (rc == 0)
		conn->in_transaction = true;
	return rc;
}

/* After COMMIT or ROLLBACK, failed or not, no transaction is left open. */
static int
mdb_commit(struct db_conn *conn, struct dbphase_error *err)
{
	int rc = mdb_exec(conn, "COMMIT", err);

	conn->in_transaction = false;
	return rc;
}

static int
mdb_rollback(struct db_conn *conn, struct dbphase_error *err)
{
	int rc = mdb_exec(conn, "ROLLBACK", err);

	conn->in_transaction = false;
	return rc;
}

/*
 * MariaDB counts both lock timeouts in whole seconds: milliseconds are
 * rounded up, to at least one second.  lock_wait_timeout covers metadata
 * locks (DDL, LOCK TABLES), innodb_lock_wait_timeout row locks.  0 restores
 * the server's defaults (out of the box 31536000 and 50 s).
 */
static int
mdb_set_lock_timeout(struct db_conn *conn, int timeout_ms,
		     struct dbphase_error *err)
{
	char *sql = dialect_lock_timeout_sql(DB_BACKEND_MYSQL, timeout_ms);
	int rc;

	rc = mdb_exec(conn, sql, err);
	free(sql);
	return rc;
}

/*
 * GET_LOCK names are limited to 64 characters: a longer name keeps a
 * prefix (cut on a UTF-8 character boundary) and ends in the FNV-1a hash
 * of the whole name, which stays unique enough for our few lock names.
 */
static char *
mdb_lock_name(const char *name)
{
	uint64_t h = UINT64_C(14695981039346656037);
	size_t len = strlen(name), keep = MDB_LOCK_NAME_MAX - 17;
	const unsigned char *p;

	if (len <= MDB_LOCK_NAME_MAX)
		return xstrdup(name);
	for (p = (const unsigned char *)name; *p; p++) {
		h ^= *p;
		h *= UINT64_C(1099511628211);
	}
	while (keep > 0 && ((unsigned char)name[keep] & 0xc0) == 0x80)
		keep--;
	return xasprintf("%.*s-%016llx", (int)keep, name, (unsigned long long)h);
}

static int
mdb_lock(struct db_conn *conn, const char *name, int timeout_ms,
	 struct dbphase_error *err)
{
	char *key = mdb_lock_name(name);
	struct db_param p[2] = {
		DB_TEXT(key),
		DB_INT(timeout_ms < 0 ? MDB_LOCK_FOREVER_MS : timeout_ms),
	};
	struct db_result *res = NULL;
	const char *v;
	int rc;

	/* GET_LOCK takes fractional seconds. */
	rc = mdb_query(conn, "SELECT GET_LOCK($1, $2 / 1000)", p, 2, &res, err);
	if (rc < 0)
		goto out;
	v = res->n_rows == 1 && res->n_cols == 1 ? db_result_value(res, 0, 0) : NULL;
	if (v && strcmp(v, "1") == 0)
		goto out;
	if (v && strcmp(v, "0") == 0) {
		rc = err_setf(err, DBPHASE_ELOCK_TIMEOUT,
			      "lock '%s' not obtained within %d ms: another session holds it",
			      name, timeout_ms);
		if (err)
			err->retryable = true;
	} else {
		rc = err_setf(err, DBPHASE_EDB, "GET_LOCK('%s') failed", name);
	}
out:
	db_result_free(res);
	free(key);
	return rc;
}

/* The name is written in hex, so that no quoting or charset can change it. */
static void
mdb_lock_held_sql(const char *name, const char *session, struct strbuf *out)
{
	char *key = mdb_lock_name(name);
	const unsigned char *p;

	strbuf_addstr(out, "IS_USED_LOCK(CONVERT(X'");
	for (p = (const unsigned char *)key; *p; p++)
		strbuf_addf(out, "%02X", *p);
	strbuf_addf(out, "' USING utf8mb4)) <=> (%s)", session);
	free(key);
}

static int
mdb_unlock(struct db_conn *conn, const char *name, struct dbphase_error *err)
{
	char *key = mdb_lock_name(name);
	struct db_param p = DB_TEXT(key);
	struct db_result *res = NULL;
	const char *v;
	int rc;

	rc = mdb_query(conn, "SELECT RELEASE_LOCK($1)", &p, 1, &res, err);
	if (rc < 0)
		goto out;
	v = res->n_rows == 1 && res->n_cols == 1 ? db_result_value(res, 0, 0) : NULL;
	if (v == NULL || strcmp(v, "1") != 0)
		rc = err_setf(err, DBPHASE_ENOTFOUND,
			      "lock '%s' is not held by this session", name);
out:
	db_result_free(res);
	free(key);
	return rc;
}

/*
 * Introspection: the connection's current database, DATABASE().
 */

static int
mdb_table_exists(struct db_conn *conn, const char *table, bool *exists,
		 struct dbphase_error *err)
{
	struct db_param p = DB_TEXT(table);
	struct db_result *res = NULL;
	int rc;

	*exists = false;
	rc = mdb_query(conn,
		       "SELECT 1 FROM information_schema.TABLES "
		       "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = $1",
		       &p, 1, &res, err);
	if (rc == 0)
		*exists = res->n_rows > 0;
	db_result_free(res);
	return rc;
}

static int
mdb_list_tables(struct db_conn *conn, char ***names, size_t *n,
		struct dbphase_error *err)
{
	struct db_result *res = NULL;
	size_t i;
	int rc;

	*names = NULL;
	*n = 0;
	rc = mdb_query(conn,
		       "SELECT TABLE_NAME FROM information_schema.TABLES "
		       "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' "
		       "ORDER BY TABLE_NAME",
		       NULL, 0, &res, err);
	if (rc < 0)
		return rc;
	*names = xcalloc(res->n_rows ? res->n_rows : 1, sizeof(char *));
	for (i = 0; i < res->n_rows; i++)
		(*names)[i] = xstrdup(db_result_value(res, i, 0));
	*n = res->n_rows;
	db_result_free(res);
	return 0;
}

/* The type as the server spells it, lower case outside quoted enum values. */
static char *
mdb_lower_type(const char *type)
{
	char *s = xstrdup(type), *p;
	bool quoted = false;

	for (p = s; *p; p++) {
		if (*p == '\'')
			quoted = !quoted;
		else if (!quoted && *p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	}
	return s;
}

/*
 * COLUMN_DEFAULT as an expression.  MariaDB 10.2.7+ already reports an
 * expression ('abc' quoted, current_timestamp(), and the word NULL for an
 * explicit DEFAULT NULL, which is no default); MySQL 8 reports the bare
 * value and marks expressions DEFAULT_GENERATED in EXTRA.
 */
static char *
mdb_default_expr(const struct mdb_conn *c, const char *def, const char *extra)
{
	struct strbuf sb = STRBUF_INIT;

	if (def == NULL)
		return NULL;
	if (c->is_mariadb)
		return strcmp(def, "NULL") == 0 ? NULL : xstrdup(def);
	if (extra && strstr(extra, "DEFAULT_GENERATED"))
		return xstrdup(def);
	dialect_quote_literal(DB_BACKEND_MYSQL, &sb, def);
	return strbuf_detach(&sb);
}

static int
mdb_describe_columns(struct mdb_conn *c, const char *table,
		     struct db_table_info *info, struct dbphase_error *err)
{
	struct db_param p = DB_TEXT(table);
	struct db_result *res = NULL;
	size_t i;
	int rc;

	rc = mdb_run(c,
		     "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA "
		     "FROM information_schema.COLUMNS "
		     "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = $1 "
		     "ORDER BY ORDINAL_POSITION",
		     &p, 1, &res, err);
	if (rc < 0)
		return rc;
	if (res->n_rows == 0) {
		rc = err_setf(err, DBPHASE_ENOTFOUND, "table '%s' does not exist", table);
		goto out;
	}
	info->columns = xcalloc(res->n_rows, sizeof(*info->columns));
	info->n_columns = res->n_rows;
	for (i = 0; i < res->n_rows; i++) {
		struct db_column_info *col = &info->columns[i];
		const char *nullable = db_result_value(res, i, 2);

		col->name = xstrdup(db_result_value(res, i, 0));
		col->type = mdb_lower_type(db_result_value(res, i, 1));
		col->nullable = nullable && strcmp(nullable, "YES") == 0;
		col->default_expr = mdb_default_expr(c, db_result_value(res, i, 3),
						     db_result_value(res, i, 4));
	}
out:
	db_result_free(res);
	return rc;
}

/* Indexes in order PRIMARY first, then by name; columns by SEQ_IN_INDEX. */
static int
mdb_describe_indexes(struct mdb_conn *c, const char *table,
		     struct db_table_info *info, struct dbphase_error *err)
{
	struct db_param p = DB_TEXT(table);
	struct db_result *res = NULL;
	struct db_index_info *idx = NULL;
	size_t alloc = 0, col_alloc = 0, i, j;
	int rc;

	rc = mdb_run(c,
		     "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME "
		     "FROM information_schema.STATISTICS "
		     "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = $1 "
		     "ORDER BY INDEX_NAME <> 'PRIMARY', INDEX_NAME, SEQ_IN_INDEX",
		     &p, 1, &res, err);
	if (rc < 0)
		return rc;
	for (i = 0; i < res->n_rows; i++) {
		const char *name = db_result_value(res, i, 0);
		const char *column = db_result_value(res, i, 2);

		if (idx == NULL || strcmp(idx->name, name) != 0) {
			XGROW(info->indexes, info->n_indexes, alloc);
			idx = &info->indexes[info->n_indexes++];
			memset(idx, 0, sizeof(*idx));
			idx->name = xstrdup(name);
			idx->unique = strcmp(db_result_value(res, i, 1), "0") == 0;
			idx->primary = strcmp(name, "PRIMARY") == 0;
			idx->valid = true;
			col_alloc = 0;
		}
		/* An index on an expression (MySQL 8) has no column name. */
		XGROW(idx->columns, idx->n_columns, col_alloc);
		idx->columns[idx->n_columns++] = xstrdup(column ? column : "");
	}
	for (i = 0; i < info->n_indexes; i++) {
		if (!info->indexes[i].primary)
			continue;
		for (j = 0; j < info->indexes[i].n_columns; j++) {
			struct db_column_info *col;

			col = (struct db_column_info *)db_table_info_column(
				info, info->indexes[i].columns[j]);
			if (col)
				col->primary_key = true;
		}
	}
	db_result_free(res);
	return 0;
}

/* "(`a`, `b`)" from the KEY_COLUMN_USAGE rows of one constraint. */
static void
mdb_add_column_list(struct strbuf *sb, struct db_result *keys, const char *name,
		    size_t col)
{
	size_t i, n = 0;

	strbuf_addch(sb, '(');
	for (i = 0; i < keys->n_rows; i++) {
		if (strcmp(db_result_value(keys, i, 0), name) != 0 ||
		    db_result_value(keys, i, col) == NULL)
			continue;
		if (n++)
			strbuf_addstr(sb, ", ");
		dialect_quote_ident(DB_BACKEND_MYSQL, sb, db_result_value(keys, i, col));
	}
	strbuf_addch(sb, ')');
}

/*
 * The definition of a constraint, in the dialect's own words:
 * PRIMARY KEY (`id`), UNIQUE (`a`), CHECK (`a` > 0),
 * FOREIGN KEY (`p`) REFERENCES `parent` (`id`) ON DELETE CASCADE.
 */
static char *
mdb_constraint_def(enum db_constraint_kind kind, const char *name,
		   const char *check, struct db_result *keys, struct db_result *refs)
{
	struct strbuf sb = STRBUF_INIT;
	size_t i;

	switch (kind) {
	case DB_CONSTRAINT_CHECK:
		if (check == NULL)
			return NULL;
		strbuf_addf(&sb, "CHECK (%s)", check);
		break;
	case DB_CONSTRAINT_PRIMARY_KEY:
	case DB_CONSTRAINT_UNIQUE:
		strbuf_addstr(&sb, kind == DB_CONSTRAINT_UNIQUE ? "UNIQUE " : "PRIMARY KEY ");
		mdb_add_column_list(&sb, keys, name, 1);
		break;
	case DB_CONSTRAINT_FOREIGN_KEY:
		strbuf_addstr(&sb, "FOREIGN KEY ");
		mdb_add_column_list(&sb, keys, name, 1);
		strbuf_addstr(&sb, " REFERENCES ");
		for (i = 0; i < keys->n_rows; i++) {
			const char *schema = db_result_value(keys, i, 2);
			const char *other = db_result_value(keys, i, 4);

			if (strcmp(db_result_value(keys, i, 0), name) != 0 ||
			    db_result_value(keys, i, 3) == NULL)
				continue;
			if (other && strcmp(other, "1") == 0) {
				dialect_quote_ident(DB_BACKEND_MYSQL, &sb, schema);
				strbuf_addch(&sb, '.');
			}
			dialect_quote_ident(DB_BACKEND_MYSQL, &sb, db_result_value(keys, i, 3));
			break;
		}
		strbuf_addch(&sb, ' ');
		mdb_add_column_list(&sb, keys, name, 5);
		for (i = 0; i < refs->n_rows; i++) {
			const char *upd = db_result_value(refs, i, 1);
			const char *del = db_result_value(refs, i, 2);

			if (strcmp(db_result_value(refs, i, 0), name) != 0)
				continue;
			/* RESTRICT and NO ACTION are the same, and the default. */
			if (del && strcmp(del, "RESTRICT") && strcmp(del, "NO ACTION"))
				strbuf_addf(&sb, " ON DELETE %s", del);
			if (upd && strcmp(upd, "RESTRICT") && strcmp(upd, "NO ACTION"))
				strbuf_addf(&sb, " ON UPDATE %s", upd);
		}
		break;
	}
	return strbuf_detach(&sb);
}

static int
mdb_describe_constraints(struct mdb_conn *c, const char *table,
			 struct db_table_info *info, struct dbphase_error *err)
{
	struct db_param p = DB_TEXT(table);
	struct db_result *res = NULL, *keys = NULL, *refs = NULL;
	size_t i;
	int rc;

	/* MariaDB names CHECK constraints per table, MySQL per schema. */
	rc = mdb_run(c, c->is_mariadb ?
		     "SELECT tc.CONSTRAINT_NAME, tc.CONSTRAINT_TYPE, cc.CHECK_CLAUSE "
		     "FROM information_schema.TABLE_CONSTRAINTS tc "
		     "LEFT JOIN information_schema.CHECK_CONSTRAINTS cc "
		     "ON tc.CONSTRAINT_TYPE = 'CHECK' "
		     "AND cc.CONSTRAINT_SCHEMA = tc.CONSTRAINT_SCHEMA "
		     "AND cc.TABLE_NAME = tc.TABLE_NAME "
		     "AND cc.CONSTRAINT_NAME = tc.CONSTRAINT_NAME "
		     "WHERE tc.TABLE_SCHEMA = DATABASE() AND tc.TABLE_NAME = $1 "
		     "ORDER BY tc.CONSTRAINT_NAME" :
		     "SELECT tc.CONSTRAINT_NAME, tc.CONSTRAINT_TYPE, cc.CHECK_CLAUSE "
		     "FROM information_schema.TABLE_CONSTRAINTS tc "
		     "LEFT JOIN information_schema.CHECK_CONSTRAINTS cc "
		     "ON tc.CONSTRAINT_TYPE = 'CHECK' "
		     "AND cc.CONSTRAINT_SCHEMA = tc.CONSTRAINT_SCHEMA "
		     "AND cc.CONSTRAINT_NAME = tc.CONSTRAINT_NAME "
		     "WHERE tc.TABLE_SCHEMA = DATABASE() AND tc.TABLE_NAME = $1 "
		     "ORDER BY tc.CONSTRAINT_NAME",
		     &p, 1, &res, err);
	if (rc < 0)
		goto out;
	rc = mdb_run(c,
		     "SELECT CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_SCHEMA, "
		     "REFERENCED_TABLE_NAME, REFERENCED_TABLE_SCHEMA <> DATABASE(), "
		     "REFERENCED_COLUMN_NAME "
		     "FROM information_schema.KEY_COLUMN_USAGE "
		     "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = $1 "
		     "ORDER BY CONSTRAINT_NAME, ORDINAL_POSITION",
		     &p, 1, &keys, err);
	if (rc < 0)
		goto out;
	rc = mdb_run(c,
		     "SELECT CONSTRAINT_NAME, UPDATE_RULE, DELETE_RULE "
		     "FROM information_schema.REFERENTIAL_CONSTRAINTS "
		     "WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = $1",
		     &p, 1, &refs, err);
	if (rc < 0)
		goto out;
	info->constraints = xcalloc(res->n_rows ? res->n_rows : 1,
				    sizeof(*info->constraints));
	for (i = 0; i < res->n_rows; i++) {
		const char *name = db_result_value(res, i, 0);
		const char *type = db_result_value(res, i, 1);
		struct db_constraint_info *con = &info->constraints[info->n_constraints];

		if (strcmp(type, "PRIMARY KEY") == 0)
			con->kind = DB_CONSTRAINT_PRIMARY_KEY;
		else if (strcmp(type, "UNIQUE") == 0)
			con->kind = DB_CONSTRAINT_UNIQUE;
		else if (strcmp(type, "FOREIGN KEY") == 0)
			con->kind = DB_CONSTRAINT_FOREIGN_KEY;
		else if (strcmp(type, "CHECK") == 0)
			con->kind = DB_CONSTRAINT_CHECK;
		else
			continue;
		con->name = xstrdup(name);
		con->validated = true;
		con->definition = mdb_constraint_def(con->kind, name,
						     db_result_value(res, i, 2), keys, refs);
		info->n_constraints++;
	}
out:
	db_result_free(res);
	db_result_free(keys);
	db_result_free(refs);
	return rc;
}

static int
mdb_describe_triggers(struct mdb_conn *c, const char *table,
		      struct db_table_info *info, struct dbphase_error *err)
{
	struct db_param p = DB_TEXT(table);
	struct db_result *res = NULL;
	size_t i;
	int rc;

	rc = mdb_run(c,
		     "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS "
		     "WHERE EVENT_OBJECT_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = $1 "
		     "ORDER BY TRIGGER_NAME",
		     &p, 1, &res, err);
	if (rc < 0)
		return rc;
	info->triggers = xcalloc(res->n_rows ? res->n_rows : 1, sizeof(*info->triggers));
	for (i = 0; i < res->n_rows; i++)
		info->triggers[i].name = xstrdup(db_result_value(res, i, 0));
	info->n_triggers = res->n_rows;
	db_result_free(res);
	return 0;
}

static int
mdb_describe_table(struct db_conn *conn, const char *table,
		   struct db_table_info *info, struct dbphase_error *err)
{
	struct mdb_conn *c = mdb_conn(conn);
	int rc;

	memset(info, 0, sizeof(*info));
	info->name = xstrdup(table);
	rc = mdb_describe_columns(c, table, info, err);
	if (rc == 0)
		rc = mdb_describe_indexes(c, table, info, err);
	if (rc == 0)
		rc = mdb_describe_constraints(c, table, info, err);
	if (rc == 0)
		rc = mdb_describe_triggers(c, table, info, err);
	if (rc < 0)
		db_table_info_release(info);
	return rc;
}

/*
 * Cancel the running statement: KILL QUERY from a second, short-lived
 * connection.  Safe from any thread: it reads only the URL and thread id,
 * fixed since connect.  A statement that finishes just before the KILL
 * arrives is unaffected, and an idle session ignores KILL QUERY.
 */
static int
mdb_cancel(struct db_conn *conn, struct dbphase_error *err)
{
	struct mdb_conn *c = mdb_conn(conn);
	MYSQL *handle;
	char *sql = NULL;
	int rc = 0;

	if (!atomic_load(&c->busy))
		return 0;
	mysql_thread_init();
	handle = mysql_init(NULL);
	if (handle == NULL)
		return err_setf(err, DBPHASE_ECONNECT, "mysql_init: out of memory");
	rc = mdb_open(handle, &c->url, false, MDB_CANCEL_TIMEOUT_S, err);
	if (rc < 0) {
		err_prefixf(err, "cannot cancel the statement");
		goto out;
	}
	sql = xasprintf("KILL QUERY %lu", c->thread_id);
	if (mysql_real_query(handle, sql, strlen(sql)) != 0 &&
	    mysql_errno(handle) != MDB_ER_NO_SUCH_THREAD) {
		rc = mdb_error(err, c->is_mariadb, mysql_errno(handle),
			       mysql_sqlstate(handle), mysql_error(handle));
		err_prefixf(err, "cannot cancel the statement");
	}
out:
	free(sql);
	mysql_close(handle);
	return rc;
}

/*
 * Quoting is dialect_quote_ident / dialect_quote_literal, the one implementation the
 * planner renders offline SQL with too; it is right for the session that
 * mdb_session_setup makes (utf8mb4, backslash escapes on).
 */
static void
mdb_quote_ident(struct strbuf *out, const char *ident)
{
	dialect_quote_ident(DB_BACKEND_MYSQL, out, ident);
}

static void
mdb_quote_literal(struct strbuf *out, const char *text)
{
	dialect_quote_literal(DB_BACKEND_MYSQL, out, text);
}

/*
 * Close and free.  A statement still in flight is abandoned: closing the
 * connection first detaches its prepared statement, which is then freed
 * without any I/O.
 */
static void
mdb_close(struct db_conn *conn)
{
	struct mdb_conn *c = mdb_conn(conn);

	if (c == NULL)
		return;
	if (c->handle)
		mysql_close(c->handle);
	c->handle = NULL;
	mdb_reset(c);
	strbuf_release(&c->sql);
	db_url_release(&c->url);
	db_conn_release(&c->base);
	free(c);
}

const struct db_driver db_mysql_driver = {
	.name = "mysql",
	.backend = DB_BACKEND_MYSQL,
	.connect = mdb_connect,
	.close = mdb_close,
	.exec = mdb_exec,
	.query = mdb_query,
	.begin = mdb_begin,
	.commit = mdb_commit,
	.rollback = mdb_rollback,
	.set_lock_timeout = mdb_set_lock_timeout,
	.lock = mdb_lock,
	.unlock = mdb_unlock,
	.lock_held_sql = mdb_lock_held_sql,
	.table_exists = mdb_table_exists,
	.list_tables = mdb_list_tables,
	.describe_table = mdb_describe_table,
	.socket = mdb_socket,
	.send = mdb_send,
	.consume = mdb_consume,
	.take = mdb_take,
	.timeout_ms = mdb_timeout_ms,
	.cancel = mdb_cancel,
	.quote_ident = mdb_quote_ident,
	.quote_literal = mdb_quote_literal,
};
