/*
 * plan/types.c - the portable type table.
 */
#include "plan/types.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct type_entry {
	const char *name;
	int n_args;			/* 0, 1 (varchar) or 2 (numeric; second optional) */
	const char *spelling[DB_BACKEND__COUNT];	/* sqlite, postgresql, mysql */
};

/* Indexed by enum db_backend: SQLITE, POSTGRESQL, MYSQL. */
static const struct type_entry type_table[] = {
	{ "integer", 0, { "INTEGER", "integer", "int" } },
	{ "bigint", 0, { "INTEGER", "bigint", "bigint" } },
	{ "smallint", 0, { "INTEGER", "smallint", "smallint" } },
	{ "boolean", 0, { "BOOLEAN", "boolean", "boolean" } },
	{ "text", 0, { "TEXT", "text", "text" } },
	{ "varchar", 1, { "VARCHAR", "varchar", "varchar" } },
	{ "numeric", 2, { "NUMERIC", "numeric", "decimal" } },
	{ "real", 0, { "REAL", "real", "float" } },
	{ "double", 0, { "REAL", "double precision", "double" } },
	{ "date", 0, { "DATE", "date", "date" } },
	{ "timestamp", 0, { "TIMESTAMP", "timestamp", "datetime(6)" } },
	{ "timestamptz", 0, { "TIMESTAMP", "timestamptz", "datetime(6)" } },
	{ "bytes", 0, { "BLOB", "bytea", "longblob" } },
	{ "json", 0, { "TEXT", "jsonb", "json" } },
	{ "uuid", 0, { "TEXT", "uuid", "char(36)" } },
};

static const char type_expected[] =
	"integer, bigint, smallint, boolean, text, varchar(n), numeric(p,s), "
	"real, double, date, timestamp, timestamptz, bytes, json, uuid";

/* Parse "name" or "name(a)" or "name(a,b)"; false if malformed. */
static const struct type_entry *
type_parse(const char *text, long *a, long *b, int *n_args)
{
	size_t i, len = strcspn(text, "( ");
	const char *p;
	char *end;

	*n_args = 0;
	for (i = 0; i < sizeof(type_table) / sizeof(type_table[0]); i++) {
		const struct type_entry *t = &type_table[i];

		if (strlen(t->name) != len || strncasecmp(t->name, text, len) != 0)
			continue;
		p = text + len;
		while (*p == ' ')
			p++;
		if (*p == '\0')
			return t->n_args == 1 ? NULL : t;
		if (*p != '(' || t->n_args == 0)
			return NULL;
		*a = strtol(p + 1, &end, 10);
		if (end == p + 1 || *a <= 0 || *a > 65535)
			return NULL;
		*n_args = 1;
		p = end;
		while (*p == ' ')
			p++;
		if (*p == ',' && t->n_args == 2) {
			*b = strtol(p + 1, &end, 10);
			if (end == p + 1 || *b < 0 || *b > *a)
				return NULL;
			*n_args = 2;
			p = end;
			while (*p == ' ')
				p++;
		}
		if (p[0] != ')' || p[1] != '\0')
			return NULL;
		return t;
	}
	return NULL;
}

bool
type_render(const char *text, enum db_backend backend, struct strbuf *out,
	    const char **expected)
{
	const struct type_entry *t;
	long a = 0, b = 0;
	int n_args;

	*expected = type_expected;
	t = type_parse(text, &a, &b, &n_args);
	if (t == NULL)
		return false;
	strbuf_addstr(out, t->spelling[backend]);
	if (n_args == 1)
		strbuf_addf(out, "(%ld)", a);
	else if (n_args == 2)
		strbuf_addf(out, "(%ld,%ld)", a, b);
	return true;
}

bool
type_valid(const char *text)
{
	long a, b;
	int n;

	return type_parse(text, &a, &b, &n) != NULL;
}

bool
type_is_integer(const char *text)
{
	return strcasecmp(text, "integer") == 0 || strcasecmp(text, "bigint") == 0 ||
	       strcasecmp(text, "smallint") == 0;
}

bool
type_is_string(const char *text)
{
	long a, b;
	int n;
	const struct type_entry *t = type_parse(text, &a, &b, &n);

	return t && (strcmp(t->name, "text") == 0 || strcmp(t->name, "varchar") == 0 ||
		     strcmp(t->name, "json") == 0 || strcmp(t->name, "uuid") == 0);
}

/* MariaDB's CAST targets, by portable name; NULL: the portable spelling. */
static const struct {
	const char *name;
	const char *target;
} mysql_cast[] = {
	{ "integer", "SIGNED" }, { "bigint", "SIGNED" }, { "smallint", "SIGNED" },
	{ "boolean", "SIGNED" }, { "text", "CHAR" }, { "varchar", "CHAR" },
	{ "numeric", NULL }, { "real", "FLOAT" }, { "double", "DOUBLE" },
	{ "date", "DATE" }, { "timestamp", "DATETIME(6)" }, { "timestamptz", "DATETIME(6)" },
	{ "bytes", "BINARY" }, { "json", "CHAR" }, { "uuid", "CHAR" },
};

bool
type_render_cast(const char *text, enum db_backend backend, struct strbuf *out)
{
	const struct type_entry *t;
	const char *expected;
	long a = 0, b = 0;
	int n_args;
	size_t i;

	if (backend == DB_BACKEND_POSTGRESQL)
		return type_render(text, backend, out, &expected);
	if (backend != DB_BACKEND_MYSQL || (t = type_parse(text, &a, &b, &n_args)) == NULL)
		return false;
	for (i = 0; i < sizeof(mysql_cast) / sizeof(mysql_cast[0]); i++) {
		if (strcmp(mysql_cast[i].name, t->name) != 0)
			continue;
		if (mysql_cast[i].target)
			strbuf_addstr(out, mysql_cast[i].target);
		else
			return type_render(text, backend, out, &expected);
		return true;
	}
	return false;
}

bool
type_is_unbounded(const char *text)
{
	return strcasecmp(text, "text") == 0 || strcasecmp(text, "bytes") == 0 ||
	       strcasecmp(text, "json") == 0;
}
