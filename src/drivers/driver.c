/*
 * drivers/driver.c - what the backends share: the driver table, result and
 * introspection lifetimes, and the statement log's lines (db_stmt_begin /
 * db_stmt_end, called by every driver).  How each backend spells SQL
 * (quoting, placeholders) is core/dialect.
 */
#include "config.h"

#include "drivers/driver.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/dialect.h"
#include "core/excerpt.h"
#include "core/xmalloc.h"

extern const struct db_driver db_sqlite_driver;
#if DBPHASE_WITH_POSTGRESQL
extern const struct db_driver db_pg_driver;
#endif
#if DBPHASE_WITH_MARIADB
extern const struct db_driver db_mysql_driver;
#endif

const struct db_driver *
db_driver_for(enum db_backend backend)
{
	switch (backend) {
	case DB_BACKEND_SQLITE:
		return &db_sqlite_driver;
	case DB_BACKEND_POSTGRESQL:
#if DBPHASE_WITH_POSTGRESQL
		return &db_pg_driver;
#else
		return NULL;
#endif
	case DB_BACKEND_MYSQL:
#if DBPHASE_WITH_MARIADB
		return &db_mysql_driver;
#else
		return NULL;
#endif
	}
	return NULL;
}

/* Statements longer than this are cut in the log (bytes). */
#define DB_LOG_SQL_MAX 200

int
db_connect_as(const struct db_url *url, const char *name, struct db_conn **out,
	      struct dbphase_error *err)
{
	const struct db_driver *drv = db_driver_for(url->backend);
	double started = clock_now_ms();
	const char *where;
	int rc;

	*out = NULL;
	if (drv == NULL)
		return err_setf(err, DBPHASE_EUNSUPPORTED,
				"this dbphase was built without the %s driver",
				db_backend_name(url->backend));
	rc = drv->connect(url, name, out, err);
	/* Only ever the masked URL: never a password in a log line. */
	where = url->masked ? url->masked : db_backend_name(url->backend);
	if (rc == 0)
		db_log_debug(*out, "%.1f ms: connected to %s (server %s)",
			     clock_now_ms() - started, where, (*out)->server_version_text);
	else
		log_debug(name, "%.1f ms: cannot connect to %s", clock_now_ms() - started, where);
	return rc;
}

int
db_connect(const struct db_url *url, struct db_conn **out,
	   struct dbphase_error *err)
{
	return db_connect_as(url, "main", out, err);
}

void
db_conn_init(struct db_conn *conn, const struct db_driver *drv, const char *name)
{
	conn->drv = drv;
	conn->name = xstrdup(name && *name ? name : "main");
}

void
db_conn_release(struct db_conn *conn)
{
	free(conn->server_version_text);
	free(conn->name);
	free(conn->stmt_text);
	conn->server_version_text = conn->name = conn->stmt_text = NULL;
}

void
db_conn_label(const struct db_conn *conn, struct strbuf *out)
{
	static const char *const tags[] = {
		[DB_BACKEND_SQLITE] = "sqlite",
		[DB_BACKEND_POSTGRESQL] = "pg",
		[DB_BACKEND_MYSQL] = "mariadb",
	};

	strbuf_addf(out, "%s %s", conn->name ? conn->name : "main", tags[conn->drv->backend]);
	if (conn->session_id)
		strbuf_addf(out, "#%" PRId64, conn->session_id);
}

void
db_log(const struct db_conn *conn, enum log_level level, const char *fmt, ...)
{
	struct strbuf label = STRBUF_INIT;
	va_list ap;

	if (!log_enabled(level))
		return;
	if (conn)
		db_conn_label(conn, &label);
	va_start(ap, fmt);
	log_vmsg(level, conn ? label.buf : NULL, fmt, ap);
	va_end(ap);
	strbuf_release(&label);
}

static enum log_level
db_stmt_level(const struct db_conn *conn)
{
	return conn->log_quiet ? LOG_LEVEL_TRACE : LOG_LEVEL_DEBUG;
}

void
db_stmt_begin(struct db_conn *conn, const char *sql)
{
	struct strbuf sb = STRBUF_INIT;

	free(conn->stmt_text);
	conn->stmt_text = NULL;
	if (!log_enabled(db_stmt_level(conn)))
		return;
	/* Copied: an asynchronous statement's text may be gone when it ends. */
	excerpt_add_oneline(&sb, sql, DB_LOG_SQL_MAX);
	conn->stmt_text = strbuf_detach(&sb);
	conn->stmt_started = clock_now_ms();
}

void
db_stmt_end(struct db_conn *conn, int rc, const struct dbphase_error *err,
	    int64_t rows, int64_t affected)
{
	struct strbuf outcome = STRBUF_INIT;

	if (conn->stmt_text == NULL)
		return;		/* begun while the log did not want it */
	if (rc < 0) {
		strbuf_addstr(&outcome, ", failed (");
		excerpt_add_oneline(&outcome, err && err->message ? err->message
								 : dbphase_strerror(rc),
				   DB_LOG_SQL_MAX);
		strbuf_addch(&outcome, ')');
	} else if (rows >= 0) {
		strbuf_addf(&outcome, ", %" PRId64 " row%s", rows, rows == 1 ? "" : "s");
	} else if (affected >= 0) {
		strbuf_addf(&outcome, ", %" PRId64 " row%s changed", affected,
			    affected == 1 ? "" : "s");
	}
	db_log(conn, db_stmt_level(conn), "%.1f ms%s: %s", clock_now_ms() - conn->stmt_started,
	       outcome.buf, conn->stmt_text);
	strbuf_release(&outcome);
	free(conn->stmt_text);
	conn->stmt_text = NULL;
}

void
db_stmt_end_result(struct db_conn *conn, int rc, const struct dbphase_error *err,
		   const struct db_result *res)
{
	/* Without columns and changes, nothing says it was an INSERT, UPDATE or DELETE. */
	if (res == NULL || rc < 0 || (res->n_cols == 0 && res->affected == 0))
		db_stmt_end(conn, rc, err, -1, -1);
	else if (res->n_cols > 0)
		db_stmt_end(conn, rc, err, (int64_t)res->n_rows, -1);
	else
		db_stmt_end(conn, rc, err, -1, (int64_t)res->affected);
}

void
db_result_free(struct db_result *res)
{
	size_t i;

	if (res == NULL)
		return;
	for (i = 0; i < res->n_cols; i++)
		free(res->col_names[i]);
	for (i = 0; i < res->n_rows * res->n_cols; i++)
		free(res->values[i]);
	free(res->col_names);
	free(res->values);
	free(res);
}

void
db_table_info_release(struct db_table_info *info)
{
	size_t i, j;

	for (i = 0; i < info->n_columns; i++) {
		free(info->columns[i].name);
		free(info->columns[i].type);
		free(info->columns[i].default_expr);
	}
	for (i = 0; i < info->n_indexes; i++) {
		free(info->indexes[i].name);
		for (j = 0; j < info->indexes[i].n_columns; j++)
			free(info->indexes[i].columns[j]);
		free(info->indexes[i].columns);
	}
	for (i = 0; i < info->n_constraints; i++) {
		free(info->constraints[i].name);
		free(info->constraints[i].definition);
	}
	for (i = 0; i < info->n_triggers; i++)
		free(info->triggers[i].name);
	free(info->name);
	free(info->columns);
	free(info->indexes);
	free(info->constraints);
	free(info->triggers);
	memset(info, 0, sizeof(*info));
}

const struct db_column_info *
db_table_info_column(const struct db_table_info *info, const char *name)
{
	size_t i;

	for (i = 0; i < info->n_columns; i++)
		if (strcmp(info->columns[i].name, name) == 0)
			return &info->columns[i];
	return NULL;
}

const struct db_index_info *
db_table_info_index(const struct db_table_info *info, const char *name)
{
	size_t i;

	for (i = 0; i < info->n_indexes; i++)
		if (strcmp(info->indexes[i].name, name) == 0)
			return &info->indexes[i];
	return NULL;
}

const struct db_trigger_info *
db_table_info_trigger(const struct db_table_info *info, const char *name)
{
	size_t i;

	for (i = 0; i < info->n_triggers; i++)
		if (strcmp(info->triggers[i].name, name) == 0)
			return &info->triggers[i];
	return NULL;
}

int
db_estimate_rows(struct db_conn *conn, const char *table, uint64_t *rows,
		 struct dbphase_error *err)
{
	struct strbuf sql = STRBUF_INIT;
	struct db_param p = DB_TEXT(table);
	struct db_result *res = NULL;
	int rc;

	*rows = 0;
	switch (conn->drv->backend) {
	case DB_BACKEND_POSTGRESQL:
		strbuf_addstr(&sql, "SELECT greatest(reltuples, 0)::bigint FROM pg_class "
			      "WHERE oid = to_regclass(quote_ident($1))");
		break;
	case DB_BACKEND_MYSQL:
		strbuf_addstr(&sql, "SELECT TABLE_ROWS FROM information_schema.TABLES "
			      "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = $1");
		break;
	case DB_BACKEND_SQLITE:
		strbuf_addstr(&sql, "SELECT count(*) FROM ");
		dialect_quote_ident(DB_BACKEND_SQLITE, &sql, table);
		break;
	}
	rc = db_query(conn, sql.buf, &p, conn->drv->backend == DB_BACKEND_SQLITE ? 0 : 1,
		      &res, err);
	if (rc == 0 && res->n_rows > 0 && db_result_value(res, 0, 0))
		*rows = strtoull(db_result_value(res, 0, 0), NULL, 10);
	db_result_free(res);
	strbuf_release(&sql);
	return rc;
}

int
db_list_clients(struct db_conn *conn, const char *attribute, struct db_client **out,
		size_t *n, struct dbphase_error *err)
{
	struct db_param p = DB_TEXT(attribute);
	struct db_result *res = NULL;
	const char *sql = NULL;
	size_t i;
	int rc;

	*out = NULL;
	*n = 0;
	switch (conn->drv->backend) {
	case DB_BACKEND_POSTGRESQL:
		if (strcmp(attribute, "application_name") != 0)
			return err_setf(err, DBPHASE_EUNSUPPORTED, "a PostgreSQL client names "
					"itself by application_name only, not '%s'", attribute);
		/* A local socket has no address (client_port -1). */
		sql = "SELECT pid, CASE WHEN client_addr IS NULL THEN NULL "
		      "ELSE host(client_addr) || ':' || client_port END, application_name "
		      "FROM pg_catalog.pg_stat_activity "
		      "WHERE datname = current_database() AND backend_type = 'client backend' "
		      "AND pid <> pg_catalog.pg_backend_pid() AND application_name <> '' "
		      "ORDER BY pid";
		break;
	case DB_BACKEND_MYSQL:
		if ((rc = db_query(conn, "SELECT @@GLOBAL.performance_schema", NULL, 0, &res,
				   err)) < 0)
			return rc;
		if (res->n_rows == 0 || !db_value_true(db_result_value(res, 0, 0))) {
			db_result_free(res);
			return err_setf(err, DBPHASE_EUNSUPPORTED, "performance_schema is off on "
					"this MariaDB server, so it keeps no connection attributes; "
					"set performance_schema=ON in its configuration and restart "
					"it");
		}
		db_result_free(res);
		res = NULL;
		/* PROCESSLIST shows other users' sessions only with the PROCESS privilege. */
		sql = "SELECT a.PROCESSLIST_ID, p.HOST, a.ATTR_VALUE "
		      "FROM performance_schema.session_connect_attrs a "
		      "LEFT JOIN information_schema.PROCESSLIST p ON p.ID = a.PROCESSLIST_ID "
		      "WHERE a.ATTR_NAME = $1 AND a.PROCESSLIST_ID <> CONNECTION_ID() "
		      "ORDER BY a.PROCESSLIST_ID";
		break;
	case DB_BACKEND_SQLITE:
		return err_setf(err, DBPHASE_EUNSUPPORTED, "SQLite has no client connections "
				"to read");
	}
	rc = db_query(conn, sql, &p, conn->drv->backend == DB_BACKEND_MYSQL ? 1 : 0, &res, err);
	if (rc < 0)
		return rc;
	*out = xcalloc(res->n_rows ? res->n_rows : 1, sizeof(**out));
	for (i = 0; i < res->n_rows; i++) {
		const char *addr = db_result_value(res, i, 1), *value = db_result_value(res, i, 2);

		/* MariaDB says "localhost" for a local socket: no address, as on PostgreSQL. */
		(*out)[i].id = xstrdup(db_result_value(res, i, 0) ? db_result_value(res, i, 0) : "?");
		(*out)[i].address = addr && strcmp(addr, "localhost") != 0 ? xstrdup(addr) : NULL;
		(*out)[i].value = xstrdup(value ? value : "");
	}
	*n = res->n_rows;
	db_result_free(res);
	return 0;
}

void
db_clients_free(struct db_client *clients, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(clients[i].id);
		free(clients[i].address);
		free(clients[i].value);
	}
	free(clients);
}
