/*
 * drivers/driver.h - the one interface every database backend fills.
 *
 * A driver knows connections, its SQL dialect and how to map its server's
 * errors onto dbphase's; it knows nothing of phases, versions or plans.
 * Backends: sqlite.c (always built), pg.c (libpq), mysql.c
 * (mariadb-connector-c).
 *
 * SQL handed to a driver writes parameters as $1, $2, ... whatever the
 * backend; the driver rewrites them for its own API (? for MariaDB, ?NNN
 * for SQLite) with dialect_rewrite_params.  Values are always bound, never
 * spliced into SQL text.  Identifiers are quoted with dialect_quote_ident
 * (core/dialect.h), which the planner uses as well.
 *
 * Results are materialised as text: every value is a NUL-terminated string
 * or NULL for SQL NULL.  Result sets dbphase reads are small (catalog rows,
 * one batch's key bounds), so this keeps every caller simple.
 *
 * The asynchronous path (send / consume / take) is for the executor: a
 * driver with a socket is driven from a libuv poll watcher; a driver whose
 * socket is -1 (SQLite) completes the whole statement inside send, and the
 * executor runs it on the thread pool instead.
 *
 * The statement log: every driver reports each statement it sends, from
 * whatever path (exec, query, begin/commit, introspection, send/take), to
 * db_stmt_begin when it goes out and to db_stmt_end when its outcome is
 * known; these write one core/log line at debug level, naming the
 * connection (db_conn_label), the time taken, the rows and the SQL.  A
 * driver knows its connection's name and its server's session id, never
 * what the statement is for.
 */
#ifndef DBPHASE_DRIVERS_DRIVER_H
#define DBPHASE_DRIVERS_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/dialect.h"
#include "core/error.h"
#include "core/log.h"
#include "core/strbuf.h"
#include "core/url.h"

enum db_param_type {
	DB_PARAM_NULL,
	DB_PARAM_TEXT,
	DB_PARAM_INT,
};

struct db_param {
	enum db_param_type type;
	const char *text;	/* DB_PARAM_TEXT: borrowed */
	int64_t i;		/* DB_PARAM_INT */
};

#define DB_TEXT(s) ((struct db_param){ .type = DB_PARAM_TEXT, .text = (s) })
#define DB_INT(v) ((struct db_param){ .type = DB_PARAM_INT, .i = (v) })
#define DB_NULL ((struct db_param){ .type = DB_PARAM_NULL })

struct db_result {
	size_t n_rows;
	size_t n_cols;
	char **col_names;	/* n_cols names */
	char **values;		/* n_rows * n_cols; NULL = SQL NULL */
	uint64_t affected;	/* rows changed by INSERT/UPDATE/DELETE */
};

/* Value at row r, column c; NULL for SQL NULL. */
static inline const char *
db_result_value(const struct db_result *res, size_t r, size_t c)
{
	return res->values[r * res->n_cols + c];
}

void db_result_free(struct db_result *res);

/*
 * Whether a boolean column's value, as text, is true: PostgreSQL says "t",
 * MariaDB and SQLite "1".  NULL is false.
 */
static inline bool
db_value_true(const char *v)
{
	return v && (strcmp(v, "t") == 0 || strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

/* Introspection, filled by describe_table.  All strings owned. */
struct db_column_info {
	char *name;
	char *type;		/* as the server spells it, lower case */
	bool nullable;
	char *default_expr;	/* NULL if none */
	bool primary_key;
};

struct db_index_info {
	char *name;
	bool unique;
	bool primary;
	bool valid;		/* false for a failed CONCURRENTLY build (pg) */
	char **columns;
	size_t n_columns;
};

enum db_constraint_kind {
	DB_CONSTRAINT_CHECK,
	DB_CONSTRAINT_FOREIGN_KEY,
	DB_CONSTRAINT_UNIQUE,
	DB_CONSTRAINT_PRIMARY_KEY,
};

struct db_constraint_info {
	char *name;
	enum db_constraint_kind kind;
	bool validated;		/* false while NOT VALID (pg) */
	char *definition;	/* server's text, may be NULL */
};

struct db_trigger_info {
	char *name;
};

struct db_table_info {
	char *name;
	struct db_column_info *columns;
	size_t n_columns;
	struct db_index_info *indexes;
	size_t n_indexes;
	struct db_constraint_info *constraints;
	size_t n_constraints;
	struct db_trigger_info *triggers;
	size_t n_triggers;
};

void db_table_info_release(struct db_table_info *info);
const struct db_column_info *db_table_info_column(const struct db_table_info *info,
						  const char *name);
const struct db_index_info *db_table_info_index(const struct db_table_info *info,
						const char *name);
const struct db_trigger_info *db_table_info_trigger(const struct db_table_info *info,
						    const char *name);

/* What an asynchronous connection waits for before consume is called again. */
enum db_want {
	DB_WANT_READ = 1,
	DB_WANT_WRITE = 2,
	DB_WANT_TIMEOUT = 4,
};

struct db_driver;

/*
 * The part of every connection the drivers share; each driver embeds it as
 * the first member of its own connection struct.
 */
struct db_conn {
	const struct db_driver *drv;
	int server_version;		/* e.g. 150004 (pg), 101106 (MariaDB), 3040001 (SQLite) */
	char *server_version_text;	/* owned */
	bool in_transaction;

	/* For the statement log (db_conn_init and db_conn_release manage them). */
	char *name;		/* "main", "worker 2": stable for the connection; owned */
	int64_t session_id;	/* the server's id of the session (pid, thread id); 0: none */
	bool log_quiet;		/* log statements at trace level only (polling) */
	double stmt_started;	/* ms, monotonic: the statement in flight began */
	char *stmt_text;	/* its excerpt, kept only while the log wants it; owned */
};

struct db_driver {
	const char *name;
	enum db_backend backend;

	/*
	 * Connect; on failure DBPHASE_ECONNECT with the masked URL and reason.
	 * name is the connection's name in the statement log (db_conn_init).
	 */
	int (*connect)(const struct db_url *url, const char *name, struct db_conn **out,
		       struct dbphase_error *err);
	/* Close and free (db_conn_release included); NULL is a no-op. */
	void (*close)(struct db_conn *conn);

	/* Run SQL with no parameters and no result (may hold several statements). */
	int (*exec)(struct db_conn *conn, const char *sql, struct dbphase_error *err);
	/* Run one statement with bound parameters; *res may be NULL if unwanted. */
	int (*query)(struct db_conn *conn, const char *sql,
		     const struct db_param *params, size_t n_params,
		     struct db_result **res, struct dbphase_error *err);

	int (*begin)(struct db_conn *conn, struct dbphase_error *err);
	int (*commit)(struct db_conn *conn, struct dbphase_error *err);
	int (*rollback)(struct db_conn *conn, struct dbphase_error *err);

	/*
	 * Session-wide lock timeout for what follows (ms; 0 = no limit).
	 * A statement that waits longer fails with DBPHASE_ELOCK_TIMEOUT and
	 * err->retryable set.
	 */
	int (*set_lock_timeout)(struct db_conn *conn, int timeout_ms,
				struct dbphase_error *err);

	/*
	 * Cluster-wide named lock held by this session until unlock or close
	 * (pg_advisory_lock, GET_LOCK, SQLite: a lock row in a write
	 * transaction is not possible across processes, so a lock file
	 * beside the database).  Waits up to timeout_ms (-1 = forever), then
	 * fails with DBPHASE_ELOCK_TIMEOUT.
	 */
	int (*lock)(struct db_conn *conn, const char *name, int timeout_ms,
		    struct dbphase_error *err);
	int (*unlock)(struct db_conn *conn, const char *name,
		      struct dbphase_error *err);
	/*
	 * Append to out a boolean SQL expression, true while the session
	 * whose server-side id is the value of the SQL expression session
	 * (see dialect_session_id_sql) holds the named lock.  Other sessions
	 * evaluate it to learn whether the lock's holder still holds it.
	 * SQLite's lock lives in the process: there it is always true.
	 */
	void (*lock_held_sql)(const char *name, const char *session, struct strbuf *out);

	/* Introspection of the connection's current schema/database. */
	int (*table_exists)(struct db_conn *conn, const char *table, bool *exists,
			    struct dbphase_error *err);
	int (*list_tables)(struct db_conn *conn, char ***names, size_t *n,
			   struct dbphase_error *err);
	int (*describe_table)(struct db_conn *conn, const char *table,
			      struct db_table_info *info, struct dbphase_error *err);

	/*
	 * Asynchronous path; see the file comment.  On return from send,
	 * *want == 0 means the statement already finished (SQLite always;
	 * MariaDB on a lost connection, whose socket may be gone): call take
	 * at once.
	 */
	int (*socket)(struct db_conn *conn);
	int (*send)(struct db_conn *conn, const char *sql,
		    const struct db_param *params, size_t n_params,
		    int *want, struct dbphase_error *err);
	/*
	 * Advance after the socket became ready (or the timeout passed).  On
	 * entry *want holds the DB_WANT_* events that occurred (READ/WRITE
	 * readiness, TIMEOUT when the timer fired); 0 means unknown, and the
	 * driver assumes the events it last asked for.  Returns 1 and sets
	 * *want while the statement is still running, 0 when its result can
	 * be taken, or a negative error.  A failed connection ends the
	 * statement: consume then returns 0 and take reports the error.
	 */
	int (*consume)(struct db_conn *conn, int *want, struct dbphase_error *err);
	/* Take the finished statement's result (or error); *res may be NULL. */
	int (*take)(struct db_conn *conn, struct db_result **res,
		    struct dbphase_error *err);
	/* Milliseconds until a DB_WANT_TIMEOUT wait expires (MariaDB). */
	int (*timeout_ms)(struct db_conn *conn);
	/*
	 * Ask the server to cancel the running statement (from any thread);
	 * the statement then fails with DBPHASE_ECANCELLED.
	 */
	int (*cancel)(struct db_conn *conn, struct dbphase_error *err);

	/* Quote an identifier for this dialect ("x", `x`). */
	void (*quote_ident)(struct strbuf *out, const char *ident);
	/* Quote a string literal for this dialect ('it''s'). */
	void (*quote_literal)(struct strbuf *out, const char *text);
};

/* The driver for a backend, or NULL if it was not built in. */
const struct db_driver *db_driver_for(enum db_backend backend);

/*
 * Parse-free convenience: find the driver for url->backend and connect.
 * The connection is named "main" in the statement log; db_connect_as
 * gives another name ("worker 2").  With the log at debug level, a line
 * says which server (masked URL, never a password) and how long it took.
 */
int db_connect(const struct db_url *url, struct db_conn **out,
	       struct dbphase_error *err);
int db_connect_as(const struct db_url *url, const char *name, struct db_conn **out,
		  struct dbphase_error *err);

/*
 * For drivers: fill the shared part of a new connection (zeroed before),
 * and free what it owns when the connection closes.
 */
void db_conn_init(struct db_conn *conn, const struct db_driver *drv, const char *name);
void db_conn_release(struct db_conn *conn);

/*
 * The connection in log lines: its name, the backend and the server's
 * session id where there is one: "main pg#12345", "worker 2 mariadb#37",
 * "main sqlite".  Appended to out.
 */
void db_conn_label(const struct db_conn *conn, struct strbuf *out);

/* A log line about conn (may be NULL), its label the context (pgbouncer's slog_*). */
void db_log(const struct db_conn *conn, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define db_log_debug(conn, ...) db_log((conn), LOG_LEVEL_DEBUG, __VA_ARGS__)

/*
 * For drivers: a statement goes out on conn, and its outcome.  rows is the
 * number of rows it returned, affected the number it changed; -1 when
 * that does not apply or is not known.  err may be NULL.  Nothing is kept
 * or formatted unless the log wants the line.
 */
void db_stmt_begin(struct db_conn *conn, const char *sql);
void db_stmt_end(struct db_conn *conn, int rc, const struct dbphase_error *err,
		 int64_t rows, int64_t affected);
/*
 * db_stmt_end with the counts of a materialised result (NULL: unknown);
 * a result without columns that changed nothing gives no count, since
 * it may not have been an INSERT, UPDATE or DELETE at all.
 */
void db_stmt_end_result(struct db_conn *conn, int rc, const struct dbphase_error *err,
			const struct db_result *res);

/*
 * A cheap estimate of a table's row count for progress (the planner's
 * statistics on PostgreSQL and MariaDB, an exact count on SQLite); 0 if
 * unknown.
 */
int db_estimate_rows(struct db_conn *conn, const char *table, uint64_t *rows,
		     struct dbphase_error *err);

/*
 * One live client connection to the server, as db_list_clients reads it.
 * All strings owned.
 */
struct db_client {
	char *id;		/* the server's id of its session (pid, connection id) */
	char *address;		/* "host:port" it connects from; NULL if unknown or local */
	char *value;		/* the attribute's value */
};

/*
 * The sessions other than conn's own whose client set the named attribute,
 * with its value: on PostgreSQL the client backends of conn's database
 * (pg_stat_activity; attribute must be "application_name"); on MariaDB
 * every session of the server (performance_schema.session_connect_attrs,
 * the address from information_schema.PROCESSLIST).  The caller frees the
 * array with db_clients_free.  DBPHASE_EUNSUPPORTED on SQLite (no
 * connections), for another attribute on PostgreSQL, and on a MariaDB
 * server whose performance_schema is off (it then records no attribute).
 */
int db_list_clients(struct db_conn *conn, const char *attribute, struct db_client **out,
		    size_t *n, struct dbphase_error *err);
void db_clients_free(struct db_client *clients, size_t n);

/* Thin wrappers, so that callers read conn-first. */
static inline int
db_exec(struct db_conn *c, const char *sql, struct dbphase_error *err)
{
	return c->drv->exec(c, sql, err);
}

static inline int
db_query(struct db_conn *c, const char *sql, const struct db_param *p, size_t n,
	 struct db_result **res, struct dbphase_error *err)
{
	return c->drv->query(c, sql, p, n, res, err);
}

static inline void
db_close(struct db_conn *c)
{
	if (c)
		c->drv->close(c);
}

#endif
