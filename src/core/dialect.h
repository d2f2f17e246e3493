/*
 * core/dialect.h - how each backend spells SQL, without a connection.
 *
 * The pure functions of a backend that the planner, the drivers and the
 * CLI all need: quoting identifiers and string literals, rewriting the $n
 * placeholders dbphase writes into what the backend's API takes, and the
 * few statements and expressions that differ between dialects (the clock,
 * the session id, the lock timeout, MariaDB's session setup).  Everything
 * here is computed from the backend alone; nothing talks to a server.
 *
 * MariaDB text is written for what the MariaDB driver makes of every
 * session at connect (dialect_session_sql): utf8mb4 (no multi-byte
 * character holds a quote or backslash byte) and an sql_mode without
 * NO_BACKSLASH_ESCAPES and ANSI_QUOTES.  PostgreSQL text assumes
 * standard_conforming_strings on.
 */
#ifndef DBPHASE_CORE_DIALECT_H
#define DBPHASE_CORE_DIALECT_H

#include <stddef.h>

#include "core/strbuf.h"
#include "core/url.h"

/*
 * Quote an identifier or a string literal: "x" (PostgreSQL, SQLite) or
 * `x` (MariaDB), the quote doubled inside; 'it''s', and on MariaDB a
 * backslash doubled too.  Appended to out.
 */
void dialect_quote_ident(enum db_backend backend, struct strbuf *out, const char *ident);
void dialect_quote_literal(enum db_backend backend, struct strbuf *out, const char *text);

/*
 * Rewrite the $n placeholders of sql for a backend's API, appending to
 * out: MariaDB takes ? (and *order, of *n_order entries, allocated, gets
 * the 1-based parameter number of each ? in turn); SQLite takes ?n
 * (order and n_order may be NULL, and are left empty); PostgreSQL takes
 * $n as written.  sql is read with core/sqllex in the backend's dialect,
 * so a $n inside a string literal, a quoted identifier or a comment stays
 * as it is.
 */
void dialect_rewrite_params(enum db_backend backend, const char *sql, struct strbuf *out,
			    int **order, size_t *n_order);

/* SQL for the database clock as Unix seconds. */
const char *dialect_now_epoch_sql(enum db_backend backend);

/* SQL for the server's id of the current session (0 on SQLite). */
const char *dialect_session_id_sql(enum db_backend backend);

/*
 * The statement that gives a session a lock timeout of timeout_ms (0 or
 * less: the server's default), as the drivers' set_lock_timeout sets it,
 * so that `plan --sql` prints what the executor does.  PostgreSQL:
 * lock_timeout; MariaDB: lock_wait_timeout (metadata locks) and
 * innodb_lock_wait_timeout (row locks), in whole seconds rounded up;
 * SQLite: PRAGMA busy_timeout (the driver sets the same value through
 * sqlite3_busy_timeout).  Caller frees.
 */
char *dialect_lock_timeout_sql(enum db_backend backend, int timeout_ms);

/*
 * The statements that give a session what dbphase's SQL is written for,
 * in the order to run them (NULL-terminated; none on PostgreSQL and
 * SQLite): on MariaDB utf8mb4, UTC, and an sql_mode without the flags that
 * change what a quoted string or name means, as the driver sets them at
 * connect, for `plan --sql` to print.  Static strings.
 */
const char *const *dialect_session_sql(enum db_backend backend);

#endif
