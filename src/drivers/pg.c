/*
 * drivers/pg.c - the PostgreSQL backend, over libpq.
 *
 * Design
 *
 *   Connections are opened from the parsed URL: host, port, user,
 *   password and database, then every URL query parameter as a libpq
 *   keyword (sslmode, connect_timeout, options, host=/socket/dir, ...).
 *   Later keywords win in libpq, so the defaults (application_name=dbphase,
 *   connect_timeout=10) go first and the URL overrides them.  Notices are
 *   swallowed, from the startup handshake on: the library never prints
 *   (see pg_conn_open for the one exception).  standard_conforming_strings
 *   is made sure to be on, which quote_literal relies on.
 *
 *   Errors are classified by SQLSTATE only (never by message text), in
 *   pg_conn_fail(): 55P03 is a lock timeout, serialization failures,
 *   deadlocks and lost connections are retryable, a cancelled query
 *   (57014: cancel or statement timeout) is DBPHASE_ECANCELLED and is not.
 *
 *   The named lock is a session-level advisory lock keyed by a 64-bit
 *   FNV-1a hash of the name computed here, so that every dbphase agrees on
 *   the key whatever the server version.  It is taken by polling
 *   pg_try_advisory_lock, which touches no session setting and never
 *   aborts the caller's transaction when it gives up.
 *
 *   The asynchronous path follows libpq's "Asynchronous Command
 *   Processing": the connection is switched to non-blocking mode on first
 *   use, send queues the statement and flushes what the socket takes,
 *   consume reads what arrived and collects finished results while libpq
 *   says it would not block, and take hands the collected result over.
 *   The PGcancel object is made once at connect time, so cancel is safe
 *   from any thread while the connection is open.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "core/clock.h"
#include "core/dialect.h"
#include "core/xmalloc.h"
#include "drivers/driver.h"

/* Oldest server dbphase supports (PQserverVersion form). */
#define PG_MIN_SERVER_VERSION 110000
#define PG_MIN_SERVER_TEXT "11"

/* Defaults a URL can override. */
#define PG_DEFAULT_APPLICATION_NAME "dbphase"
#define PG_DEFAULT_CONNECT_TIMEOUT "10"

/* Polling interval bounds while waiting for an advisory lock (ms). */
#define PG_LOCK_POLL_MIN_MS 5
#define PG_LOCK_POLL_MAX_MS 100

extern const struct db_driver db_pg_driver;

struct pg_conn {
	struct db_conn base;	/* first: a struct db_conn * is a struct pg_conn * */
	PGconn *pg;
	PGcancel *cancel;	/* made at connect time; used from any thread */
	char *desc;		/* masked URL for messages: never a password */
	bool nonblocking;	/* PQsetnonblocking(1) done (first send) */
	bool busy;		/* an asynchronous statement was sent, not taken */
	bool flushing;		/* its text is not fully written yet */
	bool done;		/* its results are all collected */
	PGresult *async_res;	/* last successful result collected */
	PGresult *async_err;	/* first failed result collected */
};

static struct pg_conn *
pg_conn_of(struct db_conn *conn)
{
	return (struct pg_conn *)conn;
}

static void
pg_drv_swallow_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/*
 * Append libpq's text on one line: its trailing newline dropped and each
 * line break (with the indentation after it) turned into one space.
 */
static void
pg_add_oneline(struct strbuf *sb, const char *text)
{
	size_t start = sb->len;
	const char *p;

	for (p = text; *p; p++) {
		if (*p == '\n' || *p == '\r') {
			while (p[1] == '\n' || p[1] == '\r' || p[1] == '\t' || p[1] == ' ')
				p++;
			strbuf_addch(sb, ' ');
		} else {
			strbuf_addch(sb, *p);
		}
	}
	while (sb->len > start && sb->buf[sb->len - 1] == ' ')
		strbuf_setlen(sb, sb->len - 1);
}

static bool
pg_sqlstate_is(const char *state, const char *want)
{
	return state && strcmp(state, want) == 0;
}

/* In a transaction (or a failed one) after the last command? */
static void
pg_conn_note_transaction(struct pg_conn *pc)
{
	switch (PQtransactionStatus(pc->pg)) {
	case PQTRANS_INTRANS:
	case PQTRANS_INERROR:
		pc->base.in_transaction = true;
		break;
	case PQTRANS_IDLE:
	case PQTRANS_UNKNOWN:
		pc->base.in_transaction = false;
		break;
	case PQTRANS_ACTIVE:
		break;
	}
}

/*
 * Fill err from a failed command: res is its result, or NULL when libpq
 * gave none (the reason is then on the connection).  The message is the
 * server's primary text with its SQLSTATE, DETAIL and HINT; the code and
 * retryable flag come from the SQLSTATE and the connection status only.
 * Returns the code.
 */
static int
pg_conn_fail(struct pg_conn *pc, const PGresult *res, struct dbphase_error *err)
{
	const char *state = NULL, *primary = NULL, *detail = NULL, *hint = NULL;
	struct strbuf msg = STRBUF_INIT;
	bool retryable = false;
	int code = DBPHASE_EDB;

	if (res) {
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
		hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
		if (primary == NULL && *PQresultErrorMessage(res))
			primary = PQresultErrorMessage(res);
	}
	if (primary == NULL)
		primary = PQerrorMessage(pc->pg);
	if (primary == NULL || *primary == '\0')
		primary = "unknown libpq failure";
	pg_add_oneline(&msg, primary);
	if (state && *state)
		strbuf_addf(&msg, " (SQLSTATE %s)", state);
	if (detail) {
		strbuf_addstr(&msg, " DETAIL: ");
		pg_add_oneline(&msg, detail);
	}
	if (hint) {
		strbuf_addstr(&msg, " HINT: ");
		pg_add_oneline(&msg, hint);
	}

	if (pg_sqlstate_is(state, "55P03")) {		/* lock_not_available */
		code = DBPHASE_ELOCK_TIMEOUT;
		retryable = true;
	} else if (pg_sqlstate_is(state, "40001") ||	/* serialization_failure */
		   pg_sqlstate_is(state, "40P01")) {	/* deadlock_detected */
		retryable = true;
	} else if (pg_sqlstate_is(state, "57014")) {	/* query_canceled, statement_timeout */
		code = DBPHASE_ECANCELLED;
		retryable = false;
	} else if (pg_sqlstate_is(state, "57P01") ||	/* admin_shutdown */
		   pg_sqlstate_is(state, "57P02") ||	/* crash_shutdown */
		   pg_sqlstate_is(state, "57P03") ||	/* cannot_connect_now */
		   (state && strncmp(state, "08", 2) == 0)) {	/* connection_exception */
		retryable = true;
	}
	if (PQstatus(pc->pg) == CONNECTION_BAD)
		retryable = true;

	err_setf(err, code, "%s", msg.buf);
	if (err) {
		if (state && strlen(state) == 5)
			memcpy(err->sqlstate, state, 6);
		err->retryable = retryable;
	}
	strbuf_release(&msg);
	return code;
}

/* Copy a successful result into a struct db_result (caller frees). */
static struct db_result *
pg_result_materialise(const PGresult *res)
{
	struct db_result *out = XNEW(struct db_result);
	const char *tuples = PQcmdTuples((PGresult *)res);
	size_t r, c;

	out->n_rows = (size_t)PQntuples(res);
	out->n_cols = (size_t)PQnfields(res);
	out->col_names = xcalloc(out->n_cols, sizeof(char *));
	out->values = xcalloc(out->n_rows * out->n_cols, sizeof(char *));
	for (c = 0; c < out->n_cols; c++)
		out->col_names[c] = xstrdup(PQfname(res, (int)c));
	for (r = 0; r < out->n_rows; r++)
		for (c = 0; c < out->n_cols; c++)
			if (!PQgetisnull(res, (int)r, (int)c))
				out->values[r * out->n_cols + c] =
					xstrndup(PQgetvalue(res, (int)r, (int)c),
						 (size_t)PQgetlength(res, (int)r, (int)c));
	out->affected = tuples && *tuples ? strtoull(tuples, NULL, 10) : 0;
	return out;
}

/* Is res a successful outcome of a command? */
static bool
pg_result_ok(const PGresult *res)
{
	switch (PQresultStatus(res)) {
	case PGRES_COMMAND_OK:
	case PGRES_TUPLES_OK:
	case PGRES_EMPTY_QUERY:
		return true;
	default:
		return false;
	}
}

/*
 * dbphase does not run COPY: end one that a statement started, so that the
 * connection returns to normal.  COPY FROM STDIN then fails with the
 * reason given here; the output of COPY TO STDOUT is discarded.
 */
static void
pg_conn_abandon_copy(struct pg_conn *pc, const PGresult *res)
{
	char *buf = NULL;

	if (PQresultStatus(res) == PGRES_COPY_IN) {
		PQputCopyEnd(pc->pg, "dbphase does not run COPY FROM STDIN");
	} else if (PQresultStatus(res) == PGRES_COPY_OUT) {
		while (PQgetCopyData(pc->pg, &buf, 0) > 0)
			PQfreemem(buf);
	}
}

/* The statement log's line for a statement that ended with res (may be NULL). */
static void
pg_stmt_end(struct pg_conn *pc, int rc, const struct dbphase_error *err,
	    const PGresult *res)
{
	const char *tuples;

	if (pc->base.stmt_text == NULL)
		return;
	if (rc == 0 && res && PQresultStatus(res) == PGRES_TUPLES_OK)
		db_stmt_end(&pc->base, rc, err, PQntuples(res), -1);
	else if (rc == 0 && res && *(tuples = PQcmdTuples((PGresult *)res)))
		db_stmt_end(&pc->base, rc, err, -1, strtoll(tuples, NULL, 10));
	else
		db_stmt_end(&pc->base, rc, err, -1, -1);
}

/* A statement failed before it was under way. */
static int
pg_stmt_failed(struct pg_conn *pc, struct dbphase_error *err)
{
	int rc = pg_conn_fail(pc, NULL, err);

	pg_stmt_end(pc, rc, err, NULL);
	return rc;
}

/*
 * Collect the results of the statement in flight: the first failure and
 * the last success are kept in pc, and pc->done is set once PQgetResult
 * says the statement is over.  With block = false, stop as soon as libpq
 * would have to wait for the server.
 */
static void
pg_conn_gather(struct pg_conn *pc, bool block)
{
	PGresult *res;

	while (!pc->done && (block || !PQisBusy(pc->pg))) {
		res = PQgetResult(pc->pg);
		if (res == NULL) {
			pc->done = true;
			break;
		}
		switch (PQresultStatus(res)) {
		case PGRES_COPY_IN:
		case PGRES_COPY_OUT:
			pg_conn_abandon_copy(pc, res);
			PQclear(res);
			break;
		default:
			if (pg_result_ok(res)) {
				PQclear(pc->async_res);
				pc->async_res = res;
			} else if (pc->async_err == NULL) {
				pc->async_err = res;
			} else {
				PQclear(res);
			}
			break;
		}
	}
}

/* Forget the statement in flight and its results: ready for the next. */
static void
pg_conn_reset(struct pg_conn *pc)
{
	PQclear(pc->async_res);
	PQclear(pc->async_err);
	pc->async_res = NULL;
	pc->async_err = NULL;
	pc->busy = false;
	pc->flushing = false;
	pc->done = false;
	pg_conn_note_transaction(pc);
}

/*
 * End the statement in flight once its results are all gathered: hand
 * the result (if res) or the first failure over and reset the connection
 * for the next statement.
 */
static int
pg_conn_finish(struct pg_conn *pc, struct db_result **res,
	       struct dbphase_error *err)
{
	int rc = 0;

	if (pc->async_err || pc->async_res == NULL)
		rc = pg_conn_fail(pc, pc->async_err, err);
	else if (res)
		*res = pg_result_materialise(pc->async_res);
	pg_stmt_end(pc, rc, err, pc->async_res);
	pg_conn_reset(pc);
	return rc;
}

/* Refuse a second statement while an asynchronous one is in flight. */
static int
pg_conn_check_idle(struct pg_conn *pc, struct dbphase_error *err)
{
	if (pc->busy)
		return err_setf(err, DBPHASE_EUSAGE,
				"a statement is already running on this connection");
	return 0;
}

static void
pg_sleep_ms(int64_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The last value of URL query parameter key (libpq keeps the last), else fallback. */
static const char *
pg_url_part(const struct db_url *url, const char *key, const char *fallback)
{
	const char *v = NULL;
	size_t i;

	for (i = 0; i < url->n_params; i++)
		if (strcmp(url->params[i].key, key) == 0)
			v = url->params[i].value;
	return v && *v ? v : fallback;
}

/*
 * The masked description of the connection target for messages, built
 * only from the parts that are not secret: user, host, port, database.
 */
static char *
pg_url_describe(const struct db_url *url)
{
	struct strbuf sb = STRBUF_INIT;
	const char *user = pg_url_part(url, "user", url->user);
	const char *host = pg_url_part(url, "host", url->host);
	const char *db = pg_url_part(url, "dbname", url->database);
	const char *port = pg_url_part(url, "port", NULL);
	bool socket_dir = host && host[0] == '/';

	strbuf_addstr(&sb, "postgresql://");
	if (user)
		strbuf_addf(&sb, "%s@", user);
	if (host && !socket_dir)
		strbuf_addf(&sb, strchr(host, ':') ? "[%s]" : "%s", host);
	if (port)
		strbuf_addf(&sb, ":%s", port);
	else if (url->port)
		strbuf_addf(&sb, ":%d", url->port);
	if (db)
		strbuf_addf(&sb, "/%s", db);
	if (socket_dir)
		strbuf_addf(&sb, "?host=%s", host);
	return strbuf_detach(&sb);
}

/* Run a one-value query (no parameters) and return the value (owned) or NULL. */
static char *
pg_conn_value(struct pg_conn *pc, const char *sql)
{
	PGresult *res;
	char *value = NULL;

	db_stmt_begin(&pc->base, sql);
	res = PQexec(pc->pg, sql);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	    PQnfields(res) == 1 && !PQgetisnull(res, 0, 0))
		value = xstrdup(PQgetvalue(res, 0, 0));
	pg_stmt_end(pc, value ? 0 : DBPHASE_EDB, NULL, res);
	PQclear(res);
	return value;
}

/*
 * Open the connection described by keys/values into pc->pg, with the
 * notice processor installed; false (and why filled) if it is not up.
 *
 * With one host, the handshake is driven here (PQconnectStartParams and
 * PQconnectPoll) so that the processor is in place before the server's
 * startup messages arrive: a database can warn during startup (a
 * collation version mismatch, a reserved setting prefix).  connect_timeout
 * keeps libpq's meaning: seconds (at least 2; 0 or less waits forever).
 *
 * With a list of hosts (host=a,b&target_session_attrs=read-write), only
 * PQconnectdbParams applies connect_timeout to each host in turn and moves
 * on to the next; failover matters more than a startup warning, which
 * libpq may then print before the processor is installed.
 */
static bool
pg_conn_open(struct pg_conn *pc, const char *const *keys, const char *const *values,
	     const char *timeout_text, const char *hosts, struct strbuf *why)
{
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	long timeout_s = strtol(timeout_text, NULL, 10);
	int64_t deadline = -1, left;
	struct pollfd pfd;
	int rc;

	/* expand_dbname = 0: a database name is a name, not a conninfo string. */
	if (hosts && strchr(hosts, ',')) {
		pc->pg = PQconnectdbParams(keys, values, 0);
		if (pc->pg)
			PQsetNoticeProcessor(pc->pg, pg_drv_swallow_notice, NULL);
		goto done;
	}
	pc->pg = PQconnectStartParams(keys, values, 0);
	if (pc->pg == NULL || PQstatus(pc->pg) == CONNECTION_BAD)
		goto done;
	PQsetNoticeProcessor(pc->pg, pg_drv_swallow_notice, NULL);
	if (timeout_s > 0)
		deadline = (int64_t)clock_now_ms() + (timeout_s < 2 ? 2 : timeout_s) * 1000;
	while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
		/* The socket changes as libpq moves from address to address. */
		pfd.fd = PQsocket(pc->pg);
		pfd.events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
		pfd.revents = 0;
		left = deadline < 0 ? -1 : deadline - (int64_t)clock_now_ms();
		if (deadline >= 0 && left <= 0) {
			strbuf_addstr(why, "timeout expired");
			return false;
		}
		rc = poll(&pfd, 1, left < 0 ? -1 : left > INT_MAX ? INT_MAX : (int)left);
		if (rc < 0 && errno != EINTR) {
			strbuf_addf(why, "cannot wait for the server: %s", strerror(errno));
			return false;
		}
		if (rc > 0)
			st = PQconnectPoll(pc->pg);
	}
done:
	if (pc->pg == NULL) {
		strbuf_addstr(why, "out of memory");
		return false;
	}
	if (PQstatus(pc->pg) == CONNECTION_OK)
		return true;
	pg_add_oneline(why, PQerrorMessage(pc->pg));
	if (why->len == 0)
		strbuf_addstr(why, "connection failed");
	return false;
}

static void
pg_drv_close(struct db_conn *conn)
{
	struct pg_conn *pc;

	if (conn == NULL)
		return;
	pc = pg_conn_of(conn);
	PQclear(pc->async_res);
	PQclear(pc->async_err);
	if (pc->cancel)
		PQfreeCancel(pc->cancel);
	if (pc->pg)
		PQfinish(pc->pg);
	db_conn_release(&pc->base);
	free(pc->desc);
	free(pc);
}

/* Whether libpq knows key as a connection keyword (a typo is a config error). */
static bool
pg_known_keyword(const char *key)
{
	PQconninfoOption *opts = PQconndefaults(), *o;
	bool known = false;

	for (o = opts; o && o->keyword; o++)
		if (strcmp(o->keyword, key) == 0)
			known = true;
	PQconninfoFree(opts);
	return known;
}

static int
pg_drv_connect(const struct db_url *url, const char *name, struct db_conn **out,
	       struct dbphase_error *err)
{
	const char **keys = NULL, **values = NULL;
	struct pg_conn *pc = XNEW(struct pg_conn);
	struct strbuf why = STRBUF_INIT;
	const char *scs;
	char *port = NULL;
	size_t n = 0, i;
	int rc = 0;

	*out = NULL;
	db_conn_init(&pc->base, &db_pg_driver, name);
	pc->desc = pg_url_describe(url);

	/* Defaults first: for a repeated keyword libpq keeps the last value. */
	keys = xcalloc(url->n_params + 8, sizeof(char *));
	values = xcalloc(url->n_params + 8, sizeof(char *));
	keys[n] = "application_name";
	values[n++] = PG_DEFAULT_APPLICATION_NAME;
	keys[n] = "connect_timeout";
	values[n++] = PG_DEFAULT_CONNECT_TIMEOUT;
	if (url->host) {
		keys[n] = "host";
		values[n++] = url->host;
	}
	if (url->port) {
		port = xasprintf("%d", url->port);
		keys[n] = "port";
		values[n++] = port;
	}
	if (url->user) {
		keys[n] = "user";
		values[n++] = url->user;
	}
	if (url->password) {
		keys[n] = "password";
		values[n++] = url->password;
	}
	if (url->database) {
		keys[n] = "dbname";
		values[n++] = url->database;
	}
	for (i = 0; i < url->n_params; i++) {
		if (!pg_known_keyword(url->params[i].key)) {
			rc = err_setf(err, DBPHASE_EBADINPUT,
				      "unknown PostgreSQL URL parameter '%s' in '%s' (libpq's "
				      "connection keywords are accepted, e.g. sslmode, sslrootcert, "
				      "connect_timeout, application_name, options, host)",
				      url->params[i].key, pc->desc);
			goto out;
		}
		keys[n] = url->params[i].key;
		values[n++] = url->params[i].value;
	}
	keys[n] = NULL;
	values[n] = NULL;

	if (!pg_conn_open(pc, keys, values,
			  pg_url_part(url, "connect_timeout", PG_DEFAULT_CONNECT_TIMEOUT),
			  pg_url_part(url, "host", url->host), &why)) {
		rc = err_setf(err, DBPHASE_ECONNECT, "cannot connect to '%s': %s",
			      pc->desc, why.buf);
		goto out;
	}
	pc->base.server_version = PQserverVersion(pc->pg);
	pc->base.session_id = PQbackendPID(pc->pg);
	pc->base.server_version_text = pg_conn_value(pc, "SHOW server_version");
	if (pc->base.server_version_text == NULL)
		pc->base.server_version_text = xasprintf("%d", pc->base.server_version);
	if (pc->base.server_version < PG_MIN_SERVER_VERSION) {
		rc = err_setf(err, DBPHASE_EUNSUPPORTED,
			      "'%s' runs PostgreSQL %s; dbphase needs PostgreSQL %s or newer",
			      pc->desc, pc->base.server_version_text, PG_MIN_SERVER_TEXT);
		goto out;
	}
	/* quote_literal relies on it; only an old-fashioned server has it off. */
	scs = PQparameterStatus(pc->pg, "standard_conforming_strings");
	if (scs && strcmp(scs, "on") != 0) {
		static const char set_scs[] = "SET standard_conforming_strings = on";
		PGresult *res;

		db_stmt_begin(&pc->base, set_scs);
		res = PQexec(pc->pg, set_scs);
		pg_stmt_end(pc, pg_result_ok(res) ? 0 : DBPHASE_ECONNECT, NULL, res);
		if (!pg_result_ok(res)) {
			pg_add_oneline(&why, PQresultErrorMessage(res));
			PQclear(res);
			rc = err_setf(err, DBPHASE_ECONNECT,
				      "cannot connect to '%s': cannot turn standard_conforming_strings on: %s",
				      pc->desc, why.buf);
			goto out;
		}
		PQclear(res);
	}
	pc->cancel = PQgetCancel(pc->pg);
	if (pc->cancel == NULL) {
		rc = err_setf(err, DBPHASE_ECONNECT,
			      "cannot connect to '%s': no cancel key from the server", pc->desc);
		goto out;
	}
	pg_conn_note_transaction(pc);
	*out = &pc->base;
	pc = NULL;
out:
	pg_drv_close(pc ? &pc->base : NULL);
	strbuf_release(&why);
	free(port);
	free(keys);
	free(values);
	return rc;
}

static int
pg_drv_exec(struct db_conn *conn, const char *sql, struct dbphase_error *err)
{
	struct pg_conn *pc = pg_conn_of(conn);
	int rc;

	if ((rc = pg_conn_check_idle(pc, err)) < 0)
		return rc;
	/*
	 * Not PQexec: it keeps only the last result, and with several
	 * statements the first failure (the one that stopped them) matters.
	 */
	db_stmt_begin(conn, sql);
	if (!PQsendQuery(pc->pg, sql))
		return pg_stmt_failed(pc, err);
	pc->busy = true;
	pg_conn_gather(pc, true);
	return pg_conn_finish(pc, NULL, err);
}

/*
 * Parameters as libpq text values: DB_PARAM_INT formatted in *owned (freed
 * by the caller with pg_params_free), text borrowed, NULL for SQL NULL.
 */
static const char **
pg_params_text(const struct db_param *params, size_t n, char ***owned)
{
	const char **text = xcalloc(n, sizeof(char *));
	size_t i;

	*owned = xcalloc(n, sizeof(char *));
	for (i = 0; i < n; i++) {
		switch (params[i].type) {
		case DB_PARAM_NULL:
			text[i] = NULL;
			break;
		case DB_PARAM_TEXT:
			text[i] = params[i].text;
			break;
		case DB_PARAM_INT:
			(*owned)[i] = xasprintf("%" PRId64, params[i].i);
			text[i] = (*owned)[i];
			break;
		}
	}
	return text;
}

static void
pg_params_free(const char **text, char **owned, size_t n)
{
	size_t i;

	for (i = 0; owned && i < n; i++)
		free(owned[i]);
	free(owned);
	free(text);
}

static int
pg_drv_query(struct db_conn *conn, const char *sql,
	     const struct db_param *params, size_t n_params,
	     struct db_result **res, struct dbphase_error *err)
{
	struct pg_conn *pc = pg_conn_of(conn);
	const char **text = NULL;
	char **owned = NULL;
	int rc;

	if (res)
		*res = NULL;
	if ((rc = pg_conn_check_idle(pc, err)) < 0)
		return rc;
	if (n_params > INT_MAX)
		return err_setf(err, DBPHASE_EUSAGE, "too many parameters (%zu)", n_params);
	text = pg_params_text(params, n_params, &owned);
	db_stmt_begin(conn, sql);
	if (!PQsendQueryParams(pc->pg, sql, (int)n_params, NULL, text, NULL, NULL, 0)) {
		rc = pg_stmt_failed(pc, err);
		goto out;
	}
	pc->busy = true;
	pg_conn_gather(pc, true);
	rc = pg_conn_finish(pc, res, err);
out:
	pg_params_free(text, owned, n_params);
	return rc;
}

static int
pg_drv_begin(struct db_conn *conn, struct dbphase_error *err)
{
	return pg_drv_exec(conn, "BEGIN", err);
}

static int
pg_drv_commit(struct db_conn *conn, struct dbphase_error *err)
{
	struct pg_conn *pc = pg_conn_of(conn);
	PGresult *res;
	int rc;

	if ((rc = pg_conn_check_idle(pc, err)) < 0)
		return rc;
	db_stmt_begin(conn, "COMMIT");
	res = PQexec(pc->pg, "COMMIT");
	if (res == NULL || !pg_result_ok(res)) {
		rc = pg_conn_fail(pc, res, err);
	} else if (strcmp(PQcmdStatus(res), "ROLLBACK") == 0) {
		/* COMMIT of a failed transaction succeeds by rolling back. */
		rc = err_setf(err, DBPHASE_EDB,
			      "transaction rolled back: a statement in it had failed "
			      "(SQLSTATE 25P02)");
		if (err)
			memcpy(err->sqlstate, "25P02", 6);
	}
	pg_stmt_end(pc, rc, err, res);
	PQclear(res);
	pg_conn_note_transaction(pc);
	return rc;
}

static int
pg_drv_rollback(struct db_conn *conn, struct dbphase_error *err)
{
	return pg_drv_exec(conn, "ROLLBACK", err);
}

static int
pg_drv_set_lock_timeout(struct db_conn *conn, int timeout_ms,
			struct dbphase_error *err)
{
	char *sql = dialect_lock_timeout_sql(DB_BACKEND_POSTGRESQL, timeout_ms);
	int rc = pg_drv_exec(conn, sql, err);

	free(sql);
	return rc;
}

/*
 * The advisory lock key of a name: 64-bit FNV-1a of its bytes, as the
 * signed bigint pg_advisory_lock takes (two's complement, written out so
 * that the conversion is defined).
 */
static int64_t
pg_lock_key(const char *name)
{
	uint64_t h = UINT64_C(14695981039346656037);
	const unsigned char *p;

	for (p = (const unsigned char *)name; *p; p++) {
		h ^= *p;
		h *= UINT64_C(1099511628211);
	}
	if (h <= (uint64_t)INT64_MAX)
		return (int64_t)h;
	return -(int64_t)(~h) - 1;
}

/* Ask once for the advisory lock: 1 got it, 0 held elsewhere, <0 error. */
static int
pg_lock_try(struct pg_conn *pc, const char *name, int64_t key,
	    struct dbphase_error *err)
{
	struct db_param param = DB_INT(key);
	struct db_result *res = NULL;
	int rc;

	rc = pg_drv_query(&pc->base, "SELECT pg_catalog.pg_try_advisory_lock($1::bigint)",
			  &param, 1, &res, err);
	if (rc < 0) {
		err_prefixf(err, "cannot take lock '%s'", name);
		return rc;
	}
	rc = res->n_rows == 1 && db_result_value(res, 0, 0) &&
	     strcmp(db_result_value(res, 0, 0), "t") == 0;
	db_result_free(res);
	return rc;
}

static int
pg_drv_lock(struct db_conn *conn, const char *name, int timeout_ms,
	    struct dbphase_error *err)
{
	struct pg_conn *pc = pg_conn_of(conn);
	int64_t key = pg_lock_key(name);
	int64_t start = (int64_t)clock_now_ms(), left, wait = PG_LOCK_POLL_MIN_MS;
	int rc;

	for (;;) {
		rc = pg_lock_try(pc, name, key, err);
		if (rc != 0)
			break;
		if (timeout_ms >= 0) {
			left = start + timeout_ms - (int64_t)clock_now_ms();
			if (left <= 0)
				break;
			if (wait > left)
				wait = left;
		}
		pg_sleep_ms(wait);
		wait = wait * 2 > PG_LOCK_POLL_MAX_MS ? PG_LOCK_POLL_MAX_MS : wait * 2;
		/* The statement log shows the first try; the wait is the caller's line. */
		conn->log_quiet = true;
	}
	conn->log_quiet = false;
	if (rc != 0)
		return rc < 0 ? rc : 0;
	rc = err_setf(err, DBPHASE_ELOCK_TIMEOUT,
		      "lock '%s' is held by another session; gave up after %d ms",
		      name, timeout_ms);
	if (err)
		err->retryable = true;
	return rc;
}

static int
pg_drv_unlock(struct db_conn *conn, const char *name, struct dbphase_error *err)
{
	struct db_param param = DB_INT(pg_lock_key(name));
	struct db_result *res = NULL;
	bool released;
	int rc;

	rc = pg_drv_query(conn, "SELECT pg_catalog.pg_advisory_unlock($1::bigint)",
			  &param, 1, &res, err);
	if (rc < 0) {
		err_prefixf(err, "cannot release lock '%s'", name);
		return rc;
	}
	released = res->n_rows == 1 && db_result_value(res, 0, 0) &&
		   strcmp(db_result_value(res, 0, 0), "t") == 0;
	db_result_free(res);
	if (!released)
		return err_setf(err, DBPHASE_ENOTFOUND,
				"cannot release lock '%s': this session does not hold it", name);
	return 0;
}

/*
 * The lock's row in pg_locks: a one-bigint advisory key shows as its high
 * and low 32 bits in classid and objid, with objsubid 1.
 */
static void
pg_drv_lock_held_sql(const char *name, const char *session, struct strbuf *out)
{
	uint64_t key = (uint64_t)pg_lock_key(name);

	strbuf_addf(out, "EXISTS (SELECT 1 FROM pg_catalog.pg_locks l WHERE l.locktype = "
		    "'advisory' AND l.granted AND l.objsubid = 1 AND l.classid = "
		    "'%" PRIu64 "'::pg_catalog.oid AND l.objid = '%" PRIu64 "'::pg_catalog.oid "
		    "AND l.pid = (%s))", key >> 32, key & UINT64_C(0xffffffff), session);
}

/* Tables of the current schema: ordinary and partitioned ones. */
#define PG_SQL_TABLES \
	"SELECT c.oid, c.relname FROM pg_catalog.pg_class c" \
	" JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace" \
	" WHERE n.nspname = pg_catalog.current_schema() AND c.relkind IN ('r', 'p')"

static int
pg_drv_table_exists(struct db_conn *conn, const char *table, bool *exists,
		    struct dbphase_error *err)
{
	struct db_param param = DB_TEXT(table);
	struct db_result *res = NULL;
	int rc;

	*exists = false;
	rc = pg_drv_query(conn, PG_SQL_TABLES " AND c.relname = $1", &param, 1, &res, err);
	if (rc < 0) {
		err_prefixf(err, "cannot look for table '%s'", table);
		return rc;
	}
	*exists = res->n_rows > 0;
	db_result_free(res);
	return 0;
}

static int
pg_drv_list_tables(struct db_conn *conn, char ***names, size_t *n,
		   struct dbphase_error *err)
{
	struct db_result *res = NULL;
	size_t i;
	int rc;

	*names = NULL;
	*n = 0;
	rc = pg_drv_query(conn, PG_SQL_TABLES " ORDER BY c.relname", NULL, 0, &res, err);
	if (rc < 0) {
		err_prefixf(err, "cannot list tables");
		return rc;
	}
	if (res->n_rows > 0) {
		*names = xcalloc(res->n_rows, sizeof(char *));
		for (i = 0; i < res->n_rows; i++)
			(*names)[i] = xstrdup(db_result_value(res, i, 1));
	}
	*n = res->n_rows;
	db_result_free(res);
	return 0;
}

static bool
pg_bool(const char *v)
{
	return v && strcmp(v, "t") == 0;
}

/* Columns in ordinal order; primary_key from the table's primary index. */
#define PG_SQL_COLUMNS \
	"SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)," \
	" NOT a.attnotnull, pg_catalog.pg_get_expr(d.adbin, d.adrelid)," \
	" EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = a.attrelid" \
	"   AND i.indisprimary AND a.attnum = ANY (i.indkey))" \
	" FROM pg_catalog.pg_attribute a" \
	" LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum" \
	" WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped" \
	" ORDER BY a.attnum"

/* One row per key column of each index, in order; expressions as text. */
#define PG_SQL_INDEXES \
	"SELECT ic.relname, i.indisunique, i.indisprimary, i.indisvalid," \
	" CASE WHEN i.indkey[k.n - 1] <> 0 THEN" \
	"   (SELECT a.attname FROM pg_catalog.pg_attribute a" \
	"     WHERE a.attrelid = i.indrelid AND a.attnum = i.indkey[k.n - 1])" \
	" ELSE pg_catalog.pg_get_indexdef(i.indexrelid, k.n, true) END" \
	" FROM pg_catalog.pg_index i" \
	" JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid" \
	" CROSS JOIN LATERAL pg_catalog.generate_series(1, i.indnkeyatts::int) AS k(n)" \
	" WHERE i.indrelid = $1::oid ORDER BY ic.relname, k.n"

#define PG_SQL_CONSTRAINTS \
	"SELECT conname, contype, convalidated, pg_catalog.pg_get_constraintdef(oid, true)" \
	" FROM pg_catalog.pg_constraint" \
	" WHERE conrelid = $1::oid AND contype IN ('c', 'f', 'u', 'p')" \
	" ORDER BY conname"

#define PG_SQL_TRIGGERS \
	"SELECT tgname FROM pg_catalog.pg_trigger" \
	" WHERE tgrelid = $1::oid AND NOT tgisinternal ORDER BY tgname"

static void
pg_info_columns(struct db_table_info *info, const struct db_result *res)
{
	size_t r;

	info->columns = xcalloc(res->n_rows, sizeof(*info->columns));
	for (r = 0; r < res->n_rows; r++) {
		struct db_column_info *col = &info->columns[r];

		col->name = xstrdup(db_result_value(res, r, 0));
		col->type = xstrdup(db_result_value(res, r, 1));
		col->nullable = pg_bool(db_result_value(res, r, 2));
		col->default_expr = xstrdup_or_null(db_result_value(res, r, 3));
		col->primary_key = pg_bool(db_result_value(res, r, 4));
	}
	info->n_columns = res->n_rows;
}

static void
pg_info_indexes(struct db_table_info *info, const struct db_result *res)
{
	struct db_index_info *idx = NULL;
	size_t r, alloc = 0;

	info->indexes = xcalloc(res->n_rows, sizeof(*info->indexes));
	for (r = 0; r < res->n_rows; r++) {
		const char *name = db_result_value(res, r, 0);
		const char *col = db_result_value(res, r, 4);

		if (idx == NULL || strcmp(idx->name, name) != 0) {
			idx = &info->indexes[info->n_indexes++];
			idx->name = xstrdup(name);
			idx->unique = pg_bool(db_result_value(res, r, 1));
			idx->primary = pg_bool(db_result_value(res, r, 2));
			idx->valid = pg_bool(db_result_value(res, r, 3));
			alloc = 0;
		}
		XGROW(idx->columns, idx->n_columns, alloc);
		idx->columns[idx->n_columns++] = xstrdup(col ? col : "");
	}
}

static void
pg_info_constraints(struct db_table_info *info, const struct db_result *res)
{
	size_t r;

	info->constraints = xcalloc(res->n_rows, sizeof(*info->constraints));
	for (r = 0; r < res->n_rows; r++) {
		struct db_constraint_info *con = &info->constraints[r];

		con->name = xstrdup(db_result_value(res, r, 0));
		switch (db_result_value(res, r, 1)[0]) {
		case 'c':
			con->kind = DB_CONSTRAINT_CHECK;
			break;
		case 'f':
			con->kind = DB_CONSTRAINT_FOREIGN_KEY;
			break;
		case 'u':
			con->kind = DB_CONSTRAINT_UNIQUE;
			break;
		default:
			con->kind = DB_CONSTRAINT_PRIMARY_KEY;
			break;
		}
		con->validated = pg_bool(db_result_value(res, r, 2));
		con->definition = xstrdup_or_null(db_result_value(res, r, 3));
	}
	info->n_constraints = res->n_rows;
}

static void
pg_info_triggers(struct db_table_info *info, const struct db_result *res)
{
	size_t r;

	info->triggers = xcalloc(res->n_rows, sizeof(*info->triggers));
	for (r = 0; r < res->n_rows; r++)
		info->triggers[r].name = xstrdup(db_result_value(res, r, 0));
	info->n_triggers = res->n_rows;
}

static int
pg_drv_describe_table(struct db_conn *conn, const char *table,
		      struct db_table_info *info, struct dbphase_error *err)
{
	struct db_param param = DB_TEXT(table);
	struct db_result *res = NULL;
	char *oid = NULL;
	int rc;

	memset(info, 0, sizeof(*info));
	rc = pg_drv_query(conn, PG_SQL_TABLES " AND c.relname = $1", &param, 1, &res, err);
	if (rc < 0)
		goto fail;
	if (res->n_rows == 0) {
		rc = err_setf(err, DBPHASE_ENOTFOUND,
			      "no table '%s' in the current schema", table);
		goto out;
	}
	oid = xstrdup(db_result_value(res, 0, 0));
	info->name = xstrdup(db_result_value(res, 0, 1));
	db_result_free(res);
	res = NULL;

	param = DB_TEXT(oid);
	if ((rc = pg_drv_query(conn, PG_SQL_COLUMNS, &param, 1, &res, err)) < 0)
		goto fail;
	pg_info_columns(info, res);
	db_result_free(res);
	res = NULL;
	if ((rc = pg_drv_query(conn, PG_SQL_INDEXES, &param, 1, &res, err)) < 0)
		goto fail;
	pg_info_indexes(info, res);
	db_result_free(res);
	res = NULL;
	if ((rc = pg_drv_query(conn, PG_SQL_CONSTRAINTS, &param, 1, &res, err)) < 0)
		goto fail;
	pg_info_constraints(info, res);
	db_result_free(res);
	res = NULL;
	if ((rc = pg_drv_query(conn, PG_SQL_TRIGGERS, &param, 1, &res, err)) < 0)
		goto fail;
	pg_info_triggers(info, res);
	goto out;
fail:
	err_prefixf(err, "cannot describe table '%s'", table);
out:
	if (rc < 0)
		db_table_info_release(info);
	db_result_free(res);
	free(oid);
	return rc;
}

static int
pg_drv_socket(struct db_conn *conn)
{
	return PQsocket(pg_conn_of(conn)->pg);
}

static int
pg_drv_send(struct db_conn *conn, const char *sql,
	    const struct db_param *params, size_t n_params,
	    int *want, struct dbphase_error *err)
{
	struct pg_conn *pc = pg_conn_of(conn);
	const char **text = NULL;
	char **owned = NULL;
	int rc = 0, flushed;

	*want = 0;
	if ((rc = pg_conn_check_idle(pc, err)) < 0)
		return rc;
	if (n_params > INT_MAX)
		return err_setf(err, DBPHASE_EUSAGE, "too many parameters (%zu)", n_params);
	if (!pc->nonblocking) {
		if (PQsetnonblocking(pc->pg, 1) != 0)
			return pg_conn_fail(pc, NULL, err);
		pc->nonblocking = true;
	}
	text = pg_params_text(params, n_params, &owned);
	db_stmt_begin(conn, sql);
	if (!PQsendQueryParams(pc->pg, sql, (int)n_params, NULL, text, NULL, NULL, 0)) {
		rc = pg_stmt_failed(pc, err);
		goto out;
	}
	pc->busy = true;
	pc->done = false;
	flushed = PQflush(pc->pg);
	if (flushed < 0) {
		/* The connection broke: collect what libpq made of it, then fail. */
		rc = pg_stmt_failed(pc, err);
		pg_conn_gather(pc, false);
		pg_conn_reset(pc);
		goto out;
	}
	pc->flushing = flushed == 1;
	*want = pc->flushing ? DB_WANT_WRITE | DB_WANT_READ : DB_WANT_READ;
out:
	pg_params_free(text, owned, n_params);
	return rc;
}

static int
pg_drv_consume(struct db_conn *conn, int *want, struct dbphase_error *err)
{
	struct pg_conn *pc = pg_conn_of(conn);
	int flushed;

	/* What happened on the socket (*want on entry) need not be known. */
	*want = 0;
	if (!pc->busy)
		return err_setf(err, DBPHASE_EUSAGE, "no statement is running on this connection");
	if (pc->done)
		return 0;
	/* Read first: the server may be waiting for us to read before it reads. */
	if (!PQconsumeInput(pc->pg))
		goto lost;
	if (pc->flushing) {
		flushed = PQflush(pc->pg);
		if (flushed < 0)
			goto lost;
		pc->flushing = flushed == 1;
	}
	if (pc->flushing) {
		*want = DB_WANT_READ | DB_WANT_WRITE;
		return 1;
	}
	pg_conn_gather(pc, false);
	if (!pc->done) {
		*want = DB_WANT_READ;
		return 1;
	}
	return 0;
lost:
	/*
	 * The connection failed: the statement is over, with an unknown
	 * outcome.  Keep any error libpq parsed, drop any success, and let
	 * take report it (as it does every other failure).
	 */
	pg_conn_gather(pc, false);
	PQclear(pc->async_res);
	pc->async_res = NULL;
	pc->flushing = false;
	pc->done = true;
	return 0;
}

static int
pg_drv_take(struct db_conn *conn, struct db_result **res,
	    struct dbphase_error *err)
{
	struct pg_conn *pc = pg_conn_of(conn);

	if (res)
		*res = NULL;
	if (!pc->busy)
		return err_setf(err, DBPHASE_EUSAGE, "no statement was sent on this connection");
	/* Taken before consume returned 0: wait for the rest (libpq blocks). */
	pg_conn_gather(pc, true);
	return pg_conn_finish(pc, res, err);
}

static int
pg_drv_timeout_ms(struct db_conn *conn)
{
	return -1;
}

static int
pg_drv_cancel(struct db_conn *conn, struct dbphase_error *err)
{
	struct pg_conn *pc = pg_conn_of(conn);
	char why[256];	/* PQcancel's API: a caller buffer it fills, bounded */
	struct strbuf msg = STRBUF_INIT;
	int rc;

	why[0] = '\0';
	if (PQcancel(pc->cancel, why, (int)sizeof(why)))
		return 0;
	pg_add_oneline(&msg, why);
	rc = err_setf(err, DBPHASE_EDB, "cannot cancel the running statement: %s", msg.buf);
	if (err)
		err->retryable = true;
	strbuf_release(&msg);
	return rc;
}

/*
 * "x" with " doubled, and 'x' with ' doubled: standard_conforming_strings
 * is on (the default since 9.1), so a backslash is an ordinary character.
 * The same functions the planner uses offline, so the two always agree.
 */
static void
pg_drv_quote_ident(struct strbuf *out, const char *ident)
{
	dialect_quote_ident(DB_BACKEND_POSTGRESQL, out, ident);
}

static void
pg_drv_quote_literal(struct strbuf *out, const char *text)
{
	dialect_quote_literal(DB_BACKEND_POSTGRESQL, out, text);
}

const struct db_driver db_pg_driver = {
	.name = "pg",
	.backend = DB_BACKEND_POSTGRESQL,
	.connect = pg_drv_connect,
	.close = pg_drv_close,
	.exec = pg_drv_exec,
	.query = pg_drv_query,
	.begin = pg_drv_begin,
	.commit = pg_drv_commit,
	.rollback = pg_drv_rollback,
	.set_lock_timeout = pg_drv_set_lock_timeout,
	.lock = pg_drv_lock,
	.unlock = pg_drv_unlock,
	.lock_held_sql = pg_drv_lock_held_sql,
	.table_exists = pg_drv_table_exists,
	.list_tables = pg_drv_list_tables,
	.describe_table = pg_drv_describe_table,
	.socket = pg_drv_socket,
	.send = pg_drv_send,
	.consume = pg_drv_consume,
	.take = pg_drv_take,
	.timeout_ms = pg_drv_timeout_ms,
	.cancel = pg_drv_cancel,
	.quote_ident = pg_drv_quote_ident,
	.quote_literal = pg_drv_quote_literal,
};
