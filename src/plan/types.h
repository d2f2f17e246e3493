/*
 * plan/types.h - portable column types and their spelling per backend.
 *
 * Migration files name types portably (DESIGN.md section 3): integer,
 * bigint, smallint, boolean, text, varchar(n), numeric(p,s), real, double,
 * date, timestamp, timestamptz, bytes, json, uuid.  Names are case-blind.
 */
#ifndef DBPHASE_PLAN_TYPES_H
#define DBPHASE_PLAN_TYPES_H

#include <stdbool.h>

#include "core/strbuf.h"
#include "core/url.h"

/*
 * Render the portable type text for backend into out.  Returns false (and
 * writes nothing) if text is not a portable type; *expected then points at
 * the list of accepted names for the message.
 */
bool type_render(const char *text, enum db_backend backend, struct strbuf *out,
		 const char **expected);

/* The same check without rendering. */
bool type_valid(const char *text);

/* True for integer, bigint and smallint (keys that batch by range). */
bool type_is_integer(const char *text);

/* True for the types MariaDB keeps as character strings: text, varchar, json, uuid. */
bool type_is_string(const char *text);

/*
 * The target of CAST(x AS ...) that converts a value as storing it in a
 * column of the portable type does (PostgreSQL: the type itself; MariaDB:
 * SIGNED, DECIMAL(p,s), DOUBLE, CHAR, DATETIME(6), ...).  False (nothing
 * written) for SQLite, whose columns convert by affinity, and for text that
 * is not a portable type.
 */
bool type_render_cast(const char *text, enum db_backend backend, struct strbuf *out);

/*
 * True for text, bytes and json: MariaDB stores them as TEXT or BLOB,
 * which an index covers only up to a prefix length.
 */
bool type_is_unbounded(const char *text);

#endif
