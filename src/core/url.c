/*
 * core/url.c - database URL parsing and password masking.
 *
 * The grammar is the one SQLAlchemy and libpq users know:
 *   scheme[+driver]://[user[:password]@][host[:port]][/database][?k=v&...]
 * SQLite is special: everything after "sqlite://" up to '?' is a path, so
 * "sqlite:///a.db" is the relative file a.db and "sqlite:////a/b.db" the
 * absolute /a/b.db; "sqlite:///:memory:" is memory, and "sqlite://" or
 * "sqlite:///" (no file) an error, since nothing would persist.
 *
 * Secrets: the password and the value of every parameter whose decoded
 * name holds "pass" (password, sslpassword, pass%77ord) are recorded as
 * byte spans of the text while parsing; the masked text replaces exactly
 * those spans.  A text that does not parse is never echoed.
 */
#include "core/url.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/strbuf.h"
#include "core/xmalloc.h"

static const struct {
	const char *name;
	enum db_backend backend;
} backend_names[] = {
	{ "postgresql", DB_BACKEND_POSTGRESQL },
	{ "postgres", DB_BACKEND_POSTGRESQL },
	{ "pgsql", DB_BACKEND_POSTGRESQL },
	{ "mysql", DB_BACKEND_MYSQL },
	{ "mariadb", DB_BACKEND_MYSQL },
	{ "sqlite", DB_BACKEND_SQLITE },
	{ "sqlite3", DB_BACKEND_SQLITE },
};

const char *
db_backend_name(enum db_backend backend)
{
	switch (backend) {
	case DB_BACKEND_SQLITE:
		return "sqlite";
	case DB_BACKEND_POSTGRESQL:
		return "postgresql";
	case DB_BACKEND_MYSQL:
		return "mysql";
	}
	return "unknown";
}

int
db_backend_from_name(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(backend_names) / sizeof(backend_names[0]); i++)
		if (strcmp(backend_names[i].name, name) == 0)
			return (int)backend_names[i].backend;
	return -1;
}

static int
hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * What the parser learns besides the parts: where in the text each secret
 * is (the password, and the value of each parameter whose name holds
 * "pass"), for masking, and where it failed, for the error.
 */
struct url_parse {
	const char *text;
	const char *scheme;	/* for messages: NULL until known to be a scheme */
	size_t (*spans)[2];	/* [start, end) byte offsets of the secrets */
	size_t n_spans;
	size_t alloc;
	struct dbphase_error *err;
};

static void
url_secret(struct url_parse *up, const char *start, const char *end)
{
	XGROW(up->spans, up->n_spans, up->alloc);
	up->spans[up->n_spans][0] = (size_t)(start - up->text);
	up->spans[up->n_spans][1] = (size_t)(end - up->text);
	up->n_spans++;
}

/*
 * Fail at the byte at of the text.  The URL itself is never echoed, not
 * even masked: a text that does not parse may hold its password anywhere.
 * The scheme (when it is one) and the position say where to look.
 */
static int
url_fail(struct url_parse *up, const char *at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
url_fail(struct url_parse *up, const char *at, const char *fmt, ...)
{
	va_list ap;
	char *why;
	int rc;

	va_start(ap, fmt);
	why = xvasprintf(fmt, ap);
	va_end(ap);
	if (at)
		rc = err_setf(up->err, DBPHASE_EBADINPUT,
			      "invalid %s%s URL at character %zu: %s (the URL is not shown, "
			      "as it may hold a password)", up->scheme ? up->scheme : "database",
			      up->scheme ? "://" : "", (size_t)(at - up->text) + 1, why);
	else
		rc = err_setf(up->err, DBPHASE_EBADINPUT, "invalid %s%s URL: %s",
			      up->scheme ? up->scheme : "database", up->scheme ? "://" : "", why);
	free(why);
	return rc;
}

/*
 * Percent-decode s[0..len) into *out (owned).  A bad escape, or %00 (which
 * would silently cut the value short), fails naming what.
 */
static int
url_decode(struct url_parse *up, const char *s, size_t len, bool plus_is_space,
	   const char *what, char **out)
{
	struct strbuf sb = STRBUF_INIT;
	size_t i;
	int hi, lo;

	*out = NULL;
	for (i = 0; i < len; i++) {
		if (s[i] == '%') {
			hi = i + 1 < len ? hex_value((unsigned char)s[i + 1]) : -1;
			lo = i + 2 < len ? hex_value((unsigned char)s[i + 2]) : -1;
			if (hi < 0 || lo < 0) {
				strbuf_release(&sb);
				return url_fail(up, s + i, "bad percent-escape in %s", what);
			}
			if (hi == 0 && lo == 0) {
				strbuf_release(&sb);
				return url_fail(up, s + i, "%%00 (a NUL byte) in %s", what);
			}
			strbuf_addch(&sb, hi * 16 + lo);
			i += 2;
		} else if (plus_is_space && s[i] == '+') {
			strbuf_addch(&sb, ' ');
		} else {
			strbuf_addch(&sb, s[i]);
		}
	}
	*out = strbuf_detach(&sb);
	return 0;
}

void
db_url_release(struct db_url *url)
{
	size_t i;

	free(url->scheme);
	free(url->user);
	free(url->password);
	free(url->host);
	free(url->database);
	for (i = 0; i < url->n_params; i++) {
		free(url->params[i].key);
		free(url->params[i].value);
	}
	free(url->params);
	free(url->masked);
	memset(url, 0, sizeof(*url));
}

const char *
db_url_param(const struct db_url *url, const char *key)
{
	size_t i;

	for (i = 0; i < url->n_params; i++)
		if (strcmp(url->params[i].key, key) == 0)
			return url->params[i].value;
	return NULL;
}

bool
db_url_param_is_secret(const char *key)
{
	return strcasestr(key, "pass") != NULL;
}

static int
url_parse_query(struct url_parse *up, const char *q, struct db_url *url)
{
	size_t alloc = 0;

	while (*q) {
		size_t len = strcspn(q, "&");
		const char *eq = memchr(q, '=', len);
		char *key, *value;
		int rc;

		if (len == 0) {
			q++;
			continue;
		}
		if (eq == NULL)
			return url_fail(up, q, "query parameter without '='");
		if ((rc = url_decode(up, q, (size_t)(eq - q), true, "a parameter name", &key)) < 0)
			return rc;
		/* The value is a secret before it is known to decode. */
		if (db_url_param_is_secret(key))
			url_secret(up, eq + 1, q + len);
		rc = url_decode(up, eq + 1, len - (size_t)(eq + 1 - q), true,
				"a parameter value", &value);
		if (rc < 0) {
			free(key);
			return rc;
		}
		XGROW(url->params, url->n_params, alloc);
		url->params[url->n_params].key = key;
		url->params[url->n_params].value = value;
		url->n_params++;
		q += len;
		if (*q == '&')
			q++;
	}
	return 0;
}

/* Whether s[0..len) reads as host, host:port, [v6] or [v6]:port. */
static bool
url_hostport_ok(const char *s, size_t len)
{
	const char *end = s + len, *colon;

	if (len && s[0] == '[') {
		const char *close = memchr(s, ']', len);

		if (close == NULL)
			return false;
		colon = close + 1 < end ? close + 1 : NULL;
		if (colon && *colon != ':')
			return false;
	} else {
		colon = memchr(s, ':', len);
	}
	if (memchr(s, '@', len))
		return false;
	if (colon)
		for (const char *p = colon + 1; p < end; p++)
			if (!isdigit((unsigned char)*p))
				return false;
	return true;
}

static const char *
url_last_at(const char *s, const char *end)
{
	const char *at = NULL;

	for (; s < end; s++)
		if (*s == '@')
			at = s;
	return at;
}

/*
 * The '@' that ends the user information of rest (what follows "://"), or
 * NULL.  By the standard, the authority ends at the first '/' or '?' and
 * its last '@' ends the user information, so '@' and ':' may stand in a
 * password unencoded.  SQLAlchemy also takes '/', '?' and '#' there, and
 * operators write such passwords in configuration files, so with a ':' in
 * the authority (a password may have begun) the first '@' after the
 * authority still ends the password when it can be nothing else: when it
 * stands in the path ("u:pa/ss@host/db"; a database name writes '@' as
 * %40), in a parameter's name ("u:pa?ss@host/db"), or when the authority
 * is no host[:port] without it.  The password then runs on to the last
 * '@' before the next '/' or '?'.  Whatever is chosen, the password's
 * bytes are masked as one span.
 */
static const char *
url_userinfo_end(const char *rest)
{
	const char *auth_end = rest + strcspn(rest, "/?");
	const char *at = url_last_at(rest, auth_end);
	const char *later, *query, *from, *name;
	bool in_path, in_name, bad_auth;

	if (memchr(rest, ':', (size_t)(auth_end - rest)) == NULL)
		return at;
	later = strchr(auth_end, '@');
	if (later == NULL)
		return at;
	query = strchr(auth_end, '?');
	in_path = query == NULL || later < query;
	in_name = false;
	if (!in_path) {
		for (name = later; name > query && name[-1] != '&' && name[-1] != '?'; name--)
			;
		in_name = memchr(name, '=', (size_t)(later - name)) == NULL;
	}
	from = at ? at + 1 : rest;
	bad_auth = !url_hostport_ok(from, (size_t)(auth_end - from));
	if (!in_path && !in_name && !bad_auth)
		return at;
	return url_last_at(later, later + 1 + strcspn(later + 1, "/?"));
}

/* Split "host:port", "[v6]:port" or "host" into url->host and url->port. */
static int
url_parse_hostport(struct url_parse *up, const char *s, size_t len, struct db_url *url)
{
	const char *port = NULL, *host_end = s + len;
	const char *host = s;
	int rc;

	if (len == 0)
		return 0;
	if (s[0] == '[') {
		const char *close = memchr(s, ']', len);

		if (close == NULL)
			return url_fail(up, s, "unclosed '[' in host");
		host = s + 1;
		host_end = close;
		if (close + 1 < s + len) {
			if (close[1] != ':')
				return url_fail(up, close + 1, "junk after ']' in host");
			port = close + 2;
		}
	} else {
		const char *colon = memchr(s, ':', len);

		if (colon) {
			host_end = colon;
			port = colon + 1;
		}
	}
	if (memchr(host, '@', (size_t)(host_end - host)))
		return url_fail(up, s, "'@' in host");
	if (host_end > host &&
	    (rc = url_decode(up, host, (size_t)(host_end - host), false, "the host",
			     &url->host)) < 0)
		return rc;
	if (port) {
		long v = 0;
		const char *p;

		if (port == s + len)
			return url_fail(up, port, "empty port");
		for (p = port; p < s + len; p++) {
			if (!isdigit((unsigned char)*p))
				return url_fail(up, p, "port is not a number");
			v = v * 10 + (*p - '0');
			if (v > 65535)
				return url_fail(up, port, "port out of range");
		}
		if (v == 0)
			return url_fail(up, port, "port out of range");
		url->port = (int)v;
	}
	return 0;
}

/* The text with every secret span replaced by "***". */
static char *
url_masked(const struct url_parse *up)
{
	struct strbuf sb = STRBUF_INIT;
	size_t pos = 0, i;

	for (i = 0; i < up->n_spans; i++) {
		strbuf_add(&sb, up->text + pos, up->spans[i][0] - pos);
		strbuf_addstr(&sb, "***");
		pos = up->spans[i][1];
	}
	strbuf_addstr(&sb, up->text + pos);
	return strbuf_detach(&sb);
}

/* A scheme is letters, digits, '+', '-' and '.', and short. */
static bool
url_scheme_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > 40)
		return false;
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '+' && s[i] != '-' && s[i] != '.')
			return false;
	return true;
}

static int
url_parse_sqlite(struct url_parse *up, const char *rest, const char *query, struct db_url *url)
{
	size_t len = query ? (size_t)(query - rest) : strlen(rest);

	/* sqlite://host/path is not a thing: only sqlite:///path. */
	if (len > 0 && rest[0] != '/')
		return url_fail(up, rest, "SQLite URLs look like sqlite:///relative.db or "
			       "sqlite:////absolute/path.db");
	/* Nothing would persist: an empty path is a mistake, not a database. */
	if (len <= 1)
		return err_setf(up->err, DBPHASE_EBADINPUT,
				"the SQLite URL '%s://%.*s' names no file: write "
				"sqlite:///relative/path.db or sqlite:////absolute/path.db "
				"(sqlite:///:memory: for a database that is gone when dbphase "
				"ends)", up->scheme, (int)len, rest);
	return url_decode(up, rest + 1, len - 1, false, "the path", &url->database);
}

static int
url_parse_server(struct url_parse *up, const char *rest, struct db_url *url)
{
	const char *at = url_userinfo_end(rest);
	const char *auth_end, *path, *query;
	int rc;

	if (at) {
		const char *colon = memchr(rest, ':', (size_t)(at - rest));
		const char *user_end = colon ? colon : at;

		if (colon)
			url_secret(up, colon + 1, at);
		if ((rc = url_decode(up, rest, (size_t)(user_end - rest), false, "the user",
				     &url->user)) < 0)
			return rc;
		if (colon && (rc = url_decode(up, colon + 1, (size_t)(at - colon - 1), false,
					      "the password", &url->password)) < 0)
			return rc;
		if (url->user[0] == '\0') {
			free(url->user);
			url->user = NULL;
		}
		rest = at + 1;
	}
	auth_end = rest + strcspn(rest, "/?");
	if ((rc = url_parse_hostport(up, rest, (size_t)(auth_end - rest), url)) < 0)
		return rc;
	query = strchr(auth_end, '?');
	path = *auth_end == '/' ? auth_end + 1 : NULL;
	if (path) {
		size_t len = query ? (size_t)(query - path) : strlen(path);

		if (len > 0 && (rc = url_decode(up, path, len, false, "the database name",
						&url->database)) < 0)
			return rc;
	}
	if (query)
		return url_parse_query(up, query + 1, url);
	return 0;
}

/* Parse text into url; up->spans gets the secrets (the caller frees them). */
static int
url_parse(struct url_parse *up, const char *text, struct db_url *url)
{
	const char *sep, *rest, *query;
	char *scheme_base;
	int backend, rc;

	memset(url, 0, sizeof(*url));
	up->text = text;
	sep = strstr(text, "://");
	if (sep == NULL || !url_scheme_ok(text, (size_t)(sep - text)))
		return url_fail(up, NULL, "it does not start with a scheme:// (postgresql://, "
				"mysql://, mariadb:// or sqlite://)");
	url->scheme = xstrndup(text, (size_t)(sep - text));
	up->scheme = url->scheme;
	scheme_base = xstrndup(text, strcspn(url->scheme, "+"));
	for (char *p = scheme_base; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	backend = db_backend_from_name(scheme_base);
	free(scheme_base);
	if (backend < 0) {
		rc = err_setf(up->err, DBPHASE_EBADINPUT, "invalid database URL: unknown scheme "
			      "'%s' (use postgresql://, mysql://, mariadb:// or sqlite://)",
			      url->scheme);
		goto fail;
	}
	url->backend = (enum db_backend)backend;
	rest = sep + 3;
	if (url->backend == DB_BACKEND_SQLITE) {
		query = strchr(rest, '?');
		rc = url_parse_sqlite(up, rest, query, url);
		if (rc == 0 && query)
			rc = url_parse_query(up, query + 1, url);
	} else {
		rc = url_parse_server(up, rest, url);
	}
	if (rc < 0)
		goto fail;
	url->masked = url_masked(up);
	return 0;
fail:
	up->scheme = NULL;
	db_url_release(url);
	return rc;
}

int
db_url_parse(const char *text, struct db_url *url, struct dbphase_error *err)
{
	struct url_parse up = { .err = err };
	int rc = url_parse(&up, text, url);

	free(up.spans);
	return rc;
}

char *
db_url_mask(const char *text)
{
	struct url_parse up = { 0 };
	struct db_url url;
	char *masked;

	if (text == NULL)
		return xstrdup("");
	if (url_parse(&up, text, &url) < 0) {
		free(up.spans);
		return xstrdup("(a database URL that does not parse, not shown)");
	}
	masked = url.masked;
	url.masked = NULL;
	db_url_release(&url);
	free(up.spans);
	return masked;
}

void
db_url_scrub(char *text)
{
	struct url_parse up = { 0 };
	struct db_url url;
	size_t out = 0, pos = 0, i, len = strlen(text);
	const char *sep;

	if (url_parse(&up, text, &url) < 0) {
		/* Where its password is cannot be known: keep only the scheme. */
		free(up.spans);
		sep = strstr(text, "://");
		out = sep && url_scheme_ok(text, (size_t)(sep - text)) ? (size_t)(sep - text) + 3 : 0;
		if (len - out >= 3) {
			memcpy(text + out, "***", 3);
			out += 3;
		}
		memset(text + out, 0, len - out);
		return;
	}
	/* Each secret becomes "***" (or as many '*' as it had bytes, if fewer). */
	for (i = 0; i < up.n_spans; i++) {
		size_t start = up.spans[i][0], end = up.spans[i][1];
		size_t stars = end - start < 3 ? end - start : 3;

		memmove(text + out, text + pos, start - pos);
		out += start - pos;
		memset(text + out, '*', stars);
		out += stars;
		pos = end;
	}
	memmove(text + out, text + pos, len - pos);
	out += len - pos;
	memset(text + out, 0, len - out);
	db_url_release(&url);
	free(up.spans);
}
