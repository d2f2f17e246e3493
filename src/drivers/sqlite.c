/*
 * drivers/sqlite.c - the embedded default backend, on libsqlite3.
 *
 * SQLite has no server: "connecting" opens a file (WAL mode, so that the
 * application's readers are not blocked by dbphase's writes), lock timeouts
 * are the busy timeout, and the cluster-wide lock is an open-file-description
 * lock on a small file beside the database, keyed by the lock's name, so it
 * holds across processes and across connections of one process alike.
 *
 * There is no socket: send runs the statement to completion at once, and
 * the executor puts SQLite work on the libuv thread pool instead of a poll
 * watcher.  sqlite3_interrupt makes cancel safe from another thread.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/dialect.h"
#include "core/xmalloc.h"
#include "drivers/driver.h"

struct sqlite_conn {
	struct db_conn base;
	sqlite3 *db;
	char *path;		/* file path, or ":memory:" (asked for by name) */
	int lock_fd;		/* lock file, -1 until first lock */
	struct db_result *pending;	/* async: the result of the last send */
	struct dbphase_error pending_err;
	int pending_rc;
};

static int
sqlite_fail(struct sqlite_conn *c, int rc, const char *what,
	    struct dbphase_error *err)
{
	int ext = sqlite3_extended_errcode(c->db);
	int primary = rc & 0xff;
	int code = DBPHASE_EDB;
	bool retry = false;

	if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
		code = DBPHASE_ELOCK_TIMEOUT;
		retry = true;
	} else if (primary == SQLITE_INTERRUPT) {	/* our cancel() */
		code = DBPHASE_ECANCELLED;
	}
	err_setf(err, code, "%s%s%s (sqlite %s)", what ? what : "", what ? ": " : "",
		 sqlite3_errmsg(c->db), sqlite3_errstr(ext));
	if (err) {
		err->server_code = ext;
		err->retryable = retry;
	}
	return code;
}

static int sqlite_exec(struct db_conn *conn, const char *sql, struct dbphase_error *err);

static int
sqlite_connect(const struct db_url *url, const char *name, struct db_conn **out,
	       struct dbphase_error *err)
{
	struct sqlite_conn *c = XNEW(struct sqlite_conn);
	int rc;

	*out = NULL;
	/* Nothing would persist in a database nobody named (db_url_parse refuses it too). */
	if (url->database == NULL || *url->database == '\0') {
		free(c);
		return err_setf(err, DBPHASE_EBADINPUT, "the SQLite URL names no file");
	}
	db_conn_init(&c->base, db_driver_for(DB_BACKEND_SQLITE), name);
	c->lock_fd = -1;
	c->path = xstrdup(url->database);
	rc = sqlite3_open_v2(c->path, &c->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			     SQLITE_OPEN_FULLMUTEX, NULL);
	if (rc != SQLITE_OK) {
		err_setf(err, DBPHASE_ECONNECT, "cannot open SQLite database '%s': %s",
			 c->path, c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
		sqlite3_close(c->db);
		db_conn_release(&c->base);
		free(c->path);
		free(c);
		return DBPHASE_ECONNECT;
	}
	sqlite3_extended_result_codes(c->db, 1);
	sqlite3_busy_timeout(c->db, 5000);
	c->base.server_version = sqlite3_libversion_number();
	c->base.server_version_text = xstrdup(sqlite3_libversion());
	/*
	 * WAL lets readers run beside a writer; it is a property of the file
	 * and harmless to ask for again.  A read-only or in-memory database
	 * keeps its journal mode.
	 */
	if (strcmp(c->path, ":memory:") != 0)
		sqlite_exec(&c->base, "PRAGMA journal_mode=WAL", NULL);
	*out = &c->base;
	return 0;
}

static void
sqlite_close(struct db_conn *conn)
{
	struct sqlite_conn *c = (struct sqlite_conn *)conn;

	if (c == NULL)
		return;
	sqlite3_close_v2(c->db);
	if (c->lock_fd >= 0)
		close(c->lock_fd);
	db_result_free(c->pending);
	err_release(&c->pending_err);
	db_conn_release(&c->base);
	free(c->path);
	free(c);
}

static int
sqlite_exec(struct db_conn *conn, const char *sql, struct dbphase_error *err)
{
	struct sqlite_conn *c = (struct sqlite_conn *)conn;
	int rc;

	db_stmt_begin(conn, sql);
	rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		rc = sqlite_fail(c, rc, NULL, err);
	db_stmt_end(conn, rc, err, -1, -1);
	return rc;
}

static int
sqlite_bind(struct sqlite_conn *c, sqlite3_stmt *st, const struct db_param *params,
	    size_t n_params, struct dbphase_error *err)
{
	size_t i;
	int rc = SQLITE_OK;

	for (i = 0; i < n_params && rc == SQLITE_OK; i++) {
		int idx = (int)i + 1;

		if (idx > sqlite3_bind_parameter_count(st))
			break;
		switch (params[i].type) {
		case DB_PARAM_NULL:
			rc = sqlite3_bind_null(st, idx);
			break;
		case DB_PARAM_TEXT:
			rc = sqlite3_bind_text(st, idx, params[i].text, -1,
					       SQLITE_TRANSIENT);
			break;
		case DB_PARAM_INT:
			rc = sqlite3_bind_int64(st, idx, params[i].i);
			break;
		}
	}
	if (rc != SQLITE_OK)
		return sqlite_fail(c, rc, "bind", err);
	return 0;
}

static int
sqlite_query(struct db_conn *conn, const char *sql, const struct db_param *params,
	     size_t n_params, struct db_result **res, struct dbphase_error *err)
{
	struct sqlite_conn *c = (struct sqlite_conn *)conn;
	struct strbuf text = STRBUF_INIT;
	struct db_result *r = NULL;
	sqlite3_stmt *st = NULL;
	sqlite3_int64 total_before;
	size_t alloc = 0, i;
	int rc;

	if (res)
		*res = NULL;
	db_stmt_begin(conn, sql);
	dialect_rewrite_params(DB_BACKEND_SQLITE, sql, &text, NULL, NULL);
	rc = sqlite3_prepare_v2(c->db, text.buf, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		rc = sqlite_fail(c, rc, NULL, err);
		goto out;
	}
	if ((rc = sqlite_bind(c, st, params, n_params, err)) < 0)
		goto out;
	total_before = sqlite3_total_changes64(c->db);
	r = XNEW(struct db_result);
	r->n_cols = (size_t)sqlite3_column_count(st);
	r->col_names = xcalloc(r->n_cols, sizeof(char *));
	for (i = 0; i < r->n_cols; i++)
		r->col_names[i] = xstrdup(sqlite3_column_name(st, (int)i));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r->values = xgrow(r->values, sizeof(char *),
				  (r->n_rows + 1) * r->n_cols, &alloc);
		for (i = 0; i < r->n_cols; i++) {
			const unsigned char *v = sqlite3_column_text(st, (int)i);

			r->values[r->n_rows * r->n_cols + i] =
				v ? xstrdup((const char *)v) : NULL;
		}
		r->n_rows++;
	}
	if (rc != SQLITE_DONE) {
		rc = sqlite_fail(c, rc, NULL, err);
		goto out;
	}
	/*
	 * sqlite3_changes64 keeps the count of the last INSERT, UPDATE or
	 * DELETE through any other statement (BEGIN, COMMIT, DDL): it is this
	 * statement's only if the connection's total moved.
	 */
	r->affected = sqlite3_total_changes64(c->db) != total_before ?
		      (uint64_t)sqlite3_changes64(c->db) : 0;
	rc = 0;
	db_stmt_end_result(conn, rc, err, r);
	if (res) {
		*res = r;
		r = NULL;
	}
out:
	if (rc < 0)
		db_stmt_end(conn, rc, err, -1, -1);
	sqlite3_finalize(st);
	db_result_free(r);
	strbuf_release(&text);
	return rc;
}

static int
sqlite_begin(struct db_conn *conn, struct dbphase_error *err)
{
	/* IMMEDIATE: take the write lock now, not at the first write. */
	int rc = sqlite_exec(conn, "BEGIN IMMEDIATE", err);

	if (rc == 0)
		conn->in_transaction = true;
	return rc;
}

static int
sqlite_commit(struct db_conn *conn, struct dbphase_error *err)
{
	int rc = sqlite_exec(conn, "COMMIT", err);

	if (rc == 0)
		conn->in_transaction = false;
	return rc;
}

static int
sqlite_rollback(struct db_conn *conn, struct dbphase_error *err)
{
	struct sqlite_conn *c = (struct sqlite_conn *)conn;
	int rc = 0;

	if (!sqlite3_get_autocommit(c->db))
		rc = sqlite_exec(conn, "ROLLBACK", err);
	conn->in_transaction = false;
	return rc;
}

static int
sqlite_set_lock_timeout(struct db_conn *conn, int timeout_ms,
			struct dbphase_error *err)
{
	struct sqlite_conn *c = (struct sqlite_conn *)conn;

	sqlite3_busy_timeout(c->db, timeout_ms);
	return 0;
}

/* Stable 64-bit FNV-1a, so every process maps a lock name to the same byte. */
static uint64_t
sqlite_lock_hash(const char *name)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *name; name++) {
		h ^= (unsigned char)*name;
		h *= 1099511628211ULL;
	}
	return h;
}

static void
sqlite_lock_range(struct flock *fl, const char *name, short type)
{
	memset(fl, 0, sizeof(*fl));
	fl->l_type = type;
	fl->l_whence = SEEK_SET;
	fl->l_start = (off_t)(sqlite_lock_hash(name) & 0x3fffffff);
	fl->l_len = 1;
}

/*
 * Open (creating it) the lock file beside the database.  It is never
 * followed through a symbolic link: whoever can write the database's
 * folder could otherwise point it at a file of dbphase's user and have it
 * created there.  Only a plain file will do.
 */
static int
sqlite_open_lock_file(struct sqlite_conn *c, struct dbphase_error *err)
{
	char *lock_path = xasprintf("%s-dbphase.lock", c->path);
	struct stat st;
	int fd, rc = 0;

	fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY,
		  0644);
	if (fd < 0 && errno == ELOOP)
		rc = err_setf(err, DBPHASE_EIO, "lock file '%s' is a symbolic link; dbphase "
			      "does not follow one (remove it: dbphase creates the file)",
			      lock_path);
	else if (fd < 0)
		rc = err_setf(err, DBPHASE_EIO, "cannot open lock file '%s': %s", lock_path,
			      strerror(errno));
	else if (fstat(fd, &st) < 0)
		rc = err_setf(err, DBPHASE_EIO, "cannot stat lock file '%s': %s", lock_path,
			      strerror(errno));
	else if (!S_ISREG(st.st_mode))
		rc = err_setf(err, DBPHASE_EIO, "lock file '%s' is not a plain file", lock_path);
	if (rc < 0 && fd >= 0)
		close(fd);
	else if (rc == 0)
		c->lock_fd = fd;
	free(lock_path);
	return rc;
}

static int
sqlite_lock(struct db_conn *conn, const char *name, int timeout_ms,
	    struct dbphase_error *err)
{
	struct sqlite_conn *c = (struct sqlite_conn *)conn;
	struct flock fl;
	double start;
	long waited;

	if (strcmp(c->path, ":memory:") == 0)
		return 0;	/* private to this connection: nothing to share */
	if (c->lock_fd < 0) {
		int rc = sqlite_open_lock_file(c, err);

		if (rc < 0)
			return rc;
	}
	start = clock_now_ms();
	for (;;) {
		sqlite_lock_range(&fl, name, F_WRLCK);
		if (fcntl(c->lock_fd, F_OFD_SETLK, &fl) == 0)
			return 0;
		if (errno != EAGAIN && errno != EACCES)
			return err_setf(err, DBPHASE_EIO, "cannot take lock '%s': %s",
					name, strerror(errno));
		waited = (long)(clock_now_ms() - start);
		if (timeout_ms >= 0 && waited >= timeout_ms) {
			err_setf(err, DBPHASE_ELOCK_TIMEOUT,
				 "lock '%s' is held by another process (waited %ld ms)",
				 name, waited);
			if (err)
				err->retryable = true;
			return DBPHASE_ELOCK_TIMEOUT;
		}
		clock_sleep_ms(10);
	}
}

/* The lock is the process's own: it is held as long as the process lives. */
static void
sqlite_lock_held_sql(const char *name, const char *session, struct strbuf *out)
{
	strbuf_addstr(out, "1 = 1");
}

static int
sqlite_unlock(struct db_conn *conn, const char *name, struct dbphase_error *err)
{
	struct sqlite_conn *c = (struct sqlite_conn *)conn;
	struct flock fl;

	if (c->lock_fd < 0)
		return 0;
	sqlite_lock_range(&fl, name, F_UNLCK);
	if (fcntl(c->lock_fd, F_OFD_SETLK, &fl) != 0)
		return err_setf(err, DBPHASE_EIO, "cannot release lock '%s': %s",
				name, strerror(errno));
	return 0;
}

static int
sqlite_table_exists(struct db_conn *conn, const char *table, bool *exists,
		    struct dbphase_error *err)
{
	struct db_param p = DB_TEXT(table);
	struct db_result *res;
	int rc;

	rc = sqlite_query(conn, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $1",
			  &p, 1, &res, err);
	if (rc < 0)
		return rc;
	*exists = res->n_rows > 0;
	db_result_free(res);
	return 0;
}

static int
sqlite_list_tables(struct db_conn *conn, char ***names, size_t *n,
		   struct dbphase_error *err)
{
	struct db_result *res;
	size_t i;
	int rc;

	rc = sqlite_query(conn,
			  "SELECT name FROM sqlite_master WHERE type = 'table' "
			  "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
			  NULL, 0, &res, err);
	if (rc < 0)
		return rc;
	*n = res->n_rows;
	*names = xcalloc(res->n_rows, sizeof(char *));
	for (i = 0; i < res->n_rows; i++)
		(*names)[i] = xstrdup(db_result_value(res, i, 0));
	db_result_free(res);
	return 0;
}

static char *
lower_dup(const char *s)
{
	char *p = xstrdup(s ? s : ""), *q;

	for (q = p; *q; q++)
		if (*q >= 'A' && *q <= 'Z')
			*q = (char)(*q - 'A' + 'a');
	return p;
}

static int
sqlite_describe_columns(struct db_conn *conn, const char *table,
			struct db_table_info *info, struct dbphase_error *err)
{
	struct db_param p = DB_TEXT(table);
	struct db_result *res;
	size_t i;
	int rc;

	rc = sqlite_query(conn,
			  "SELECT name, type, \"notnull\", dflt_value, pk "
			  "FROM pragma_table_info($1) ORDER BY cid",
			  &p, 1, &res, err);
	if (rc < 0)
		return rc;
	info->n_columns = res->n_rows;
	info->columns = xcalloc(res->n_rows, sizeof(*info->columns));
	for (i = 0; i < res->n_rows; i++) {
		struct db_column_info *col = &info->columns[i];

		col->name = xstrdup(db_result_value(res, i, 0));
		col->type = lower_dup(db_result_value(res, i, 1));
		col->nullable = strcmp(db_result_value(res, i, 2), "0") == 0;
		col->default_expr = xstrdup_or_null(db_result_value(res, i, 3));
		col->primary_key = strcmp(db_result_value(res, i, 4), "0") != 0;
	}
	db_result_free(res);
	return 0;
}

static int
sqlite_describe_indexes(struct db_conn *conn, const char *table,
			struct db_table_info *info, struct dbphase_error *err)
{
	struct db_param p = DB_TEXT(table);
	struct db_result *res, *cols;
	size_t i, j;
	int rc;

	rc = sqlite_query(conn,
			  "SELECT name, \"unique\", origin FROM pragma_index_list($1) "
			  "ORDER BY name",
			  &p, 1, &res, err);
	if (rc < 0)
		return rc;
	info->indexes = xcalloc(res->n_rows, sizeof(*info->indexes));
	for (i = 0; i < res->n_rows; i++) {
		struct db_index_info *ix = &info->indexes[info->n_indexes++];
		struct db_param ip = DB_TEXT(db_result_value(res, i, 0));

		ix->name = xstrdup(db_result_value(res, i, 0));
		ix->unique = strcmp(db_result_value(res, i, 1), "1") == 0;
		ix->primary = strcmp(db_result_value(res, i, 2), "pk") == 0;
		ix->valid = true;
		rc = sqlite_query(conn,
				  "SELECT name FROM pragma_index_info($1) ORDER BY seqno",
				  &ip, 1, &cols, err);
		if (rc < 0)
			break;
		ix->n_columns = cols->n_rows;
		ix->columns = xcalloc(cols->n_rows, sizeof(char *));
		for (j = 0; j < cols->n_rows; j++) {
			const char *v = db_result_value(cols, j, 0);

			ix->columns[j] = xstrdup(v ? v : "<expression>");
		}
		db_result_free(cols);
		if (ix->unique && !ix->primary &&
		    strcmp(db_result_value(res, i, 2), "u") == 0) {
			struct db_constraint_info *ci;

			info->constraints = xrealloc(info->constraints,
				(info->n_constraints + 1) * sizeof(*info->constraints));
			ci = &info->constraints[info->n_constraints++];
			ci->name = xstrdup(ix->name);
			ci->kind = DB_CONSTRAINT_UNIQUE;
			ci->validated = true;
			ci->definition = NULL;
		}
	}
	db_result_free(res);
	return rc;
}

static int
sqlite_describe_triggers(struct db_conn *conn, const char *table,
			 struct db_table_info *info, struct dbphase_error *err)
{
	struct db_param p = DB_TEXT(table);
	struct db_result *res;
	size_t i;
	int rc;

	rc = sqlite_query(conn,
			  "SELECT name FROM sqlite_master WHERE type = 'trigger' "
			  "AND tbl_name = $1 ORDER BY name",
			  &p, 1, &res, err);
	if (rc < 0)
		return rc;
	info->n_triggers = res->n_rows;
	info->triggers = xcalloc(res->n_rows, sizeof(*info->triggers));
	for (i = 0; i < res->n_rows; i++)
		info->triggers[i].name = xstrdup(db_result_value(res, i, 0));
	db_result_free(res);
	return 0;
}

static int
sqlite_describe_foreign_keys(struct db_conn *conn, const char *table,
			     struct db_table_info *info, struct dbphase_error *err)
{
	struct db_param p = DB_TEXT(table);
	struct db_result *res;
	size_t i;
	int rc;

	/* SQLite foreign keys have no names: report them by their target. */
	rc = sqlite_query(conn,
			  "SELECT \"table\", group_concat(\"from\"), group_concat(\"to\") "
			  "FROM pragma_foreign_key_list($1) GROUP BY id ORDER BY id",
			  &p, 1, &res, err);
	if (rc < 0)
		return rc;
	for (i = 0; i < res->n_rows; i++) {
		struct db_constraint_info *ci;

		info->constraints = xrealloc(info->constraints,
			(info->n_constraints + 1) * sizeof(*info->constraints));
		ci = &info->constraints[info->n_constraints++];
		ci->name = xasprintf("fk_%s_%s", table, db_result_value(res, i, 0));
		ci->kind = DB_CONSTRAINT_FOREIGN_KEY;
		ci->validated = true;
		ci->definition = xasprintf("FOREIGN KEY (%s) REFERENCES %s(%s)",
					   db_result_value(res, i, 1),
					   db_result_value(res, i, 0),
					   db_result_value(res, i, 2));
	}
	db_result_free(res);
	return 0;
}

static int
sqlite_describe_table(struct db_conn *conn, const char *table,
		      struct db_table_info *info, struct dbphase_error *err)
{
	bool exists;
	int rc;

	memset(info, 0, sizeof(*info));
	if ((rc = sqlite_table_exists(conn, table, &exists, err)) < 0)
		return rc;
	if (!exists)
		return err_setf(err, DBPHASE_ENOTFOUND, "table '%s' does not exist", table);
	info->name = xstrdup(table);
	if ((rc = sqlite_describe_columns(conn, table, info, err)) < 0 ||
	    (rc = sqlite_describe_indexes(conn, table, info, err)) < 0 ||
	    (rc = sqlite_describe_foreign_keys(conn, table, info, err)) < 0 ||
	    (rc = sqlite_describe_triggers(conn, table, info, err)) < 0)
		db_table_info_release(info);
	return rc;
}

static int
sqlite_socket(struct db_conn *conn)
{
	return -1;
}

static int
sqlite_send(struct db_conn *conn, const char *sql, const struct db_param *params,
	    size_t n_params, int *want, struct dbphase_error *err)
{
	struct sqlite_conn *c = (struct sqlite_conn *)conn;

	db_result_free(c->pending);
	c->pending = NULL;
	err_release(&c->pending_err);
	c->pending_rc = sqlite_query(conn, sql, params, n_params, &c->pending,
				     &c->pending_err);
	*want = 0;
	return 0;
}

static int
sqlite_consume(struct db_conn *conn, int *want, struct dbphase_error *err)
{
	*want = 0;
	return 0;
}

static int
sqlite_take(struct db_conn *conn, struct db_result **res, struct dbphase_error *err)
{
	struct sqlite_conn *c = (struct sqlite_conn *)conn;
	int rc = c->pending_rc;

	if (res)
		*res = c->pending;
	else
		db_result_free(c->pending);
	c->pending = NULL;
	if (rc < 0)
		err_move(err, &c->pending_err);
	c->pending_rc = 0;
	return rc;
}

static int
sqlite_timeout_ms(struct db_conn *conn)
{
	return -1;
}

static int
sqlite_cancel(struct db_conn *conn, struct dbphase_error *err)
{
	sqlite3_interrupt(((struct sqlite_conn *)conn)->db);
	return 0;
}

static void
sqlite_quote_ident(struct strbuf *out, const char *ident)
{
	dialect_quote_ident(DB_BACKEND_SQLITE, out, ident);
}

static void
sqlite_quote_literal(struct strbuf *out, const char *text)
{
	dialect_quote_literal(DB_BACKEND_SQLITE, out, text);
}

const struct db_driver db_sqlite_driver = {
	.name = "sqlite",
	.backend = DB_BACKEND_SQLITE,
	.connect = sqlite_connect,
	.close = sqlite_close,
	.exec = sqlite_exec,
	.query = sqlite_query,
	.begin = sqlite_begin,
	.commit = sqlite_commit,
	.rollback = sqlite_rollback,
	.set_lock_timeout = sqlite_set_lock_timeout,
	.lock = sqlite_lock,
	.unlock = sqlite_unlock,
	.lock_held_sql = sqlite_lock_held_sql,
	.table_exists = sqlite_table_exists,
	.list_tables = sqlite_list_tables,
	.describe_table = sqlite_describe_table,
	.socket = sqlite_socket,
	.send = sqlite_send,
	.consume = sqlite_consume,
	.take = sqlite_take,
	.timeout_ms = sqlite_timeout_ms,
	.cancel = sqlite_cancel,
	.quote_ident = sqlite_quote_ident,
	.quote_literal = sqlite_quote_literal,
};
