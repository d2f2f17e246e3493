/*
 * core/url.c - database URL parsing and password masking.
 *
 * The grammar is the one SQLAlchemy and libpq users know:
 *   scheme[+driver]://[user[:password]@][host[:port]][/database][?k=v&...]
 * SQLite is special: everything after "sqlite://" up to '?' is a path, so
 * "sqlite:///a.db" is the relative file a.db and "sqlite:////a/b.db" the
 * absolute /a/b.db; "sqlite://" alone (or "sqlite:///:memory:") is memory.
 */
#include "core/url.h"

#include <ctype.h>
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

/* Percent-decode s[0..len) into a new string; NULL if an escape is bad. */
static char *
url_decode(const char *s, size_t len, bool plus_is_space)
{
	struct strbuf sb = STRBUF_INIT;
	size_t i;
	int hi, lo;

	for (i = 0; i < len; i++) {
		if (s[i] == '%') {
			if (i + 2 >= len) {
				strbuf_release(&sb);
				return NULL;
			}
			hi = hex_value((unsigned char)s[i + 1]);
			lo = hex_value((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0) {
				strbuf_release(&sb);
				return NULL;
			}
			strbuf_addch(&sb, hi * 16 + lo);
			i += 2;
		} else if (plus_is_space && s[i] == '+') {
			strbuf_addch(&sb, ' ');
		} else {
			strbuf_addch(&sb, s[i]);
		}
	}
	return strbuf_detach(&sb);
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

/* Find where the password of text starts and ends; false if it has none. */
static bool
url_password_span(const char *text, size_t *start, size_t *end)
{
	const char *auth, *at, *colon, *slash;

	auth = strstr(text, "://");
	if (auth == NULL)
		return false;
	auth += 3;
	slash = auth + strcspn(auth, "/?#");
	/* The last '@' before the path ends the userinfo (passwords may hold '@'). */
	at = NULL;
	for (const char *p = auth; p < slash; p++)
		if (*p == '@')
			at = p;
	if (at == NULL)
		return false;
	colon = memchr(auth, ':', (size_t)(at - auth));
	if (colon == NULL)
		return false;
	*start = (size_t)(colon + 1 - text);
	*end = (size_t)(at - text);
	return true;
}

char *
db_url_mask(const char *text)
{
	struct strbuf sb = STRBUF_INIT;
	size_t start, end;
	const char *q;

	if (text == NULL)
		return xstrdup("");
	if (!url_password_span(text, &start, &end)) {
		strbuf_addstr(&sb, text);
	} else {
		strbuf_add(&sb, text, start);
		strbuf_addstr(&sb, "***");
		strbuf_addstr(&sb, text + end);
	}
	/* libpq also takes ?password=...; mask that too. */
	q = strstr(sb.buf, "password=");
	while (q) {
		size_t off = (size_t)(q - sb.buf) + strlen("password=");
		size_t vlen = strcspn(sb.buf + off, "&#");
		struct strbuf out = STRBUF_INIT;

		if (off > strlen("password=") &&
		    sb.buf[off - strlen("password=") - 1] != '?' &&
		    sb.buf[off - strlen("password=") - 1] != '&') {
			q = strstr(sb.buf + off, "password=");
			continue;
		}
		strbuf_add(&out, sb.buf, off);
		strbuf_addstr(&out, "***");
		strbuf_addstr(&out, sb.buf + off + vlen);
		strbuf_release(&sb);
		sb = out;
		q = strstr(sb.buf + off + 3, "password=");
	}
	return strbuf_detach(&sb);
}

static int
url_fail(struct dbphase_error *err, const char *text, const char *why)
{
	char *masked = db_url_mask(text);
	int rc = err_setf(err, DBPHASE_EBADINPUT, "invalid database URL '%s': %s",
			  masked, why);

	free(masked);
	return rc;
}

static int
url_parse_query(const char *q, struct db_url *url, const char *text,
		struct dbphase_error *err)
{
	size_t alloc = 0;

	while (*q) {
		size_t len = strcspn(q, "&");
		const char *eq = memchr(q, '=', len);
		char *key, *value;

		if (len == 0) {
			q++;
			continue;
		}
		if (eq == NULL)
			return url_fail(err, text, "query parameter without '='");
		key = url_decode(q, (size_t)(eq - q), true);
		value = url_decode(eq + 1, len - (size_t)(eq + 1 - q), true);
		if (key == NULL || value == NULL) {
			free(key);
			free(value);
			return url_fail(err, text, "bad percent-escape in query");
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

/* Split "host:port", "[v6]:port" or "host" into url->host and url->port. */
static int
url_parse_hostport(const char *s, size_t len, struct db_url *url,
		   const char *text, struct dbphase_error *err)
{
	const char *port = NULL, *host_end = s + len;
	const char *host = s;

	if (len == 0)
		return 0;
	if (s[0] == '[') {
		const char *close = memchr(s, ']', len);

		if (close == NULL)
			return url_fail(err, text, "unclosed '[' in host");
		host = s + 1;
		host_end = close;
		if (close + 1 < s + len) {
			if (close[1] != ':')
				return url_fail(err, text, "junk after ']' in host");
			port = close + 2;
		}
	} else {
		const char *colon = memchr(s, ':', len);

		if (colon) {
			host_end = colon;
			port = colon + 1;
		}
	}
	if (host_end > host) {
		url->host = url_decode(host, (size_t)(host_end - host), false);
		if (url->host == NULL)
			return url_fail(err, text, "bad percent-escape in host");
	}
	if (port) {
		long v = 0;
		const char *p;

		if (port == s + len)
			return url_fail(err, text, "empty port");
		for (p = port; p < s + len; p++) {
			if (!isdigit((unsigned char)*p))
				return url_fail(err, text, "port is not a number");
			v = v * 10 + (*p - '0');
			if (v > 65535)
				return url_fail(err, text, "port out of range");
		}
		if (v == 0)
			return url_fail(err, text, "port out of range");
		url->port = (int)v;
	}
	return 0;
}

int
db_url_parse(const char *text, struct db_url *url, struct dbphase_error *err)
{
	const char *sep, *rest, *auth_end, *path, *query, *at;
	char *scheme_base;
	int backend, rc;

	memset(url, 0, sizeof(*url));
	sep = strstr(text, "://");
	if (sep == NULL || sep == text)
		return url_fail(err, text, "expected scheme://...");
	url->scheme = xstrndup(text, (size_t)(sep - text));
	scheme_base = xstrndup(text, strcspn(url->scheme, "+"));
	for (char *p = scheme_base; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	backend = db_backend_from_name(scheme_base);
	free(scheme_base);
	if (backend < 0) {
		rc = url_fail(err, text, "unknown scheme (use postgresql://, mysql://, mariadb:// or sqlite://)");
		goto fail;
	}
	url->backend = (enum db_backend)backend;
	rest = sep + 3;
	query = strchr(rest, '?');

	if (url->backend == DB_BACKEND_SQLITE) {
		size_t len = query ? (size_t)(query - rest) : strlen(rest);

		/* sqlite://host/path is not a thing: only sqlite:///path. */
		if (len > 0 && rest[0] != '/') {
			rc = url_fail(err, text, "SQLite URLs look like sqlite:///relative.db or sqlite:////absolute.db");
			goto fail;
		}
		if (len > 1) {
			url->database = url_decode(rest + 1, len - 1, false);
			if (url->database == NULL) {
				rc = url_fail(err, text, "bad percent-escape in path");
				goto fail;
			}
		} else {
			url->database = xstrdup(":memory:");
		}
	} else {
		auth_end = rest + strcspn(rest, "/?");
		path = *auth_end == '/' ? auth_end + 1 : NULL;
		at = NULL;
		for (const char *p = rest; p < auth_end; p++)
			if (*p == '@')
				at = p;
		if (at) {
			const char *colon = memchr(rest, ':', (size_t)(at - rest));
			const char *user_end = colon ? colon : at;

			url->user = url_decode(rest, (size_t)(user_end - rest), false);
			if (colon)
				url->password = url_decode(colon + 1,
							   (size_t)(at - colon - 1), false);
			if (url->user == NULL || (colon && url->password == NULL)) {
				rc = url_fail(err, text, "bad percent-escape in user or password");
				goto fail;
			}
			if (url->user[0] == '\0') {
				free(url->user);
				url->user = NULL;
			}
			rest = at + 1;
		}
		rc = url_parse_hostport(rest, (size_t)(auth_end - rest), url, text, err);
		if (rc < 0)
			goto fail;
		if (path) {
			size_t len = query ? (size_t)(query - path) : strlen(path);

			if (len > 0) {
				url->database = url_decode(path, len, false);
				if (url->database == NULL) {
					rc = url_fail(err, text, "bad percent-escape in database name");
					goto fail;
				}
			}
		}
	}
	if (query) {
		rc = url_parse_query(query + 1, url, text, err);
		if (rc < 0)
			goto fail;
	}
	return 0;
fail:
	db_url_release(url);
	return rc;
}
