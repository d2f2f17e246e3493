/*
 * core/config.c - read [database] connection and [dbphase] settings from
 * INI files the way oslo.config reads an OpenStack service's file.
 *
 * Design.  A file is read whole and split into lines by our own reader,
 * which follows oslo.config's (oslo_config/iniparser.py) rules, so that
 * any file a service accepts reads the same here:
 *   - lines of any length; a UTF-8 byte order mark at the start is skipped;
 *   - "[name]" opens a section; names are compared in lower case, except
 *     DEFAULT (oslo.config's _normalize_group_name);
 *   - a line whose first character is '#' or ';' is a comment; there are
 *     no comments after a value;
 *   - "key = value" or "key: value", split at whichever of '=' and ':'
 *     comes first; key and value lose surrounding blanks, and a value in
 *     matching quotes loses them;
 *   - an indented line continues the value before it (joined with a line
 *     break); a blank line ends it;
 *   - a key before any section, a continuation with no key before it, a
 *     section header without ']' and an empty key are errors.
 * Every value read is kept as an entry (section, key, value, path:line),
 * in reading order, across all the files loaded: a later entry wins.  The
 * settings are then resolved from the entries:
 *   - [database] connection, else a deprecated spelling ([sql] connection,
 *     [DEFAULT] sql_connection, [database] sql_connection), with a warning;
 *   - every key of [dbphase], through config_set;
 * each with $name / ${name} substitution as oslo.config does it: a name
 * is looked up in the value's own section, then in [DEFAULT]; ${group.name}
 * names another section; $$ and \$ are a dollar sign; a name no file sets
 * is left as written.
 *
 * [dbphase] keys come from one table, CONFIG_KEY_MAP, which also drives
 * config_init (defaults), config_set and config_keys.  Loading is all or
 * nothing: on error the caller's struct is unchanged.
 */
#include "core/config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/excerpt.h"
#include "core/fileio.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"

/* How deep one $name may lead to another before it is called a loop. */
#define SUBST_DEPTH_MAX 16

/*
 * X(name, type, default, min, max): every [dbphase] key.  STR keys have no
 * range and default to NULL.
 */
#define CONFIG_KEY_MAP(INT, STR)                                             \
	STR(repository)                                                      \
	INT(jobs, 4, 1, 256)                                                 \
	INT(batch_size, 1000, 1, 100000000)                                  \
	INT(max_batch_size, 100000, 1, 100000000)                            \
	INT(batch_time_ms, 100, 1, 600000)                                   \
	INT(max_rate, 0, 0, INT_MAX)                                         \
	INT(lock_timeout_ms, 2000, 1, 3600000)                               \
	INT(lock_wait_s, 300, 0, 86400)                                      \
	INT(reconnect_wait_s, 60, 0, 86400)                                  \
	INT(node_ttl_s, 300, 1, 2592000)

enum config_type {
	CONFIG_INT,
	CONFIG_STR,
};

struct config_key {
	const char *name;
	enum config_type type;
	size_t offset;
	int def;
	int min;
	int max;
};

static const struct config_key config_table[] = {
#define CONFIG_INT_ROW(name, def, min, max) \
	{ #name, CONFIG_INT, offsetof(struct dbphase_config, name), def, min, max },
#define CONFIG_STR_ROW(name) \
	{ #name, CONFIG_STR, offsetof(struct dbphase_config, name), 0, 0, 0 },
	CONFIG_KEY_MAP(CONFIG_INT_ROW, CONFIG_STR_ROW)
#undef CONFIG_INT_ROW
#undef CONFIG_STR_ROW
};

const char *const config_keys[] = {
#define CONFIG_INT_NAME(name, def, min, max) #name,
#define CONFIG_STR_NAME(name) #name,
	CONFIG_KEY_MAP(CONFIG_INT_NAME, CONFIG_STR_NAME)
#undef CONFIG_INT_NAME
#undef CONFIG_STR_NAME
	NULL
};

#define CONFIG_N_KEYS (sizeof(config_table) / sizeof(config_table[0]))

static int *
int_field(struct dbphase_config *cfg, const struct config_key *k)
{
	return (int *)(void *)((char *)cfg + k->offset);
}

static char **
str_field(struct dbphase_config *cfg, const struct config_key *k)
{
	return (char **)(void *)((char *)cfg + k->offset);
}

/* The [dbphase] settings and the connection back to their defaults. */
static void
config_defaults(struct dbphase_config *cfg)
{
	size_t i;

	free(cfg->connection);
	free(cfg->connection_from);
	free(cfg->connection_warning);
	cfg->connection = cfg->connection_from = cfg->connection_warning = NULL;
	for (i = 0; i < CONFIG_N_KEYS; i++) {
		if (config_table[i].type == CONFIG_INT) {
			*int_field(cfg, &config_table[i]) = config_table[i].def;
		} else {
			free(*str_field(cfg, &config_table[i]));
			*str_field(cfg, &config_table[i]) = NULL;
		}
	}
}

void
config_init(struct dbphase_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	config_defaults(cfg);
}

static void
entries_release(struct dbphase_config *cfg)
{
	size_t i;

	for (i = 0; i < cfg->n_entries; i++) {
		free(cfg->entries[i].section);
		free(cfg->entries[i].key);
		free(cfg->entries[i].value);
		free(cfg->entries[i].where);
	}
	free(cfg->entries);
	cfg->entries = NULL;
	cfg->n_entries = cfg->alloc_entries = 0;
}

void
config_release(struct dbphase_config *cfg)
{
	if (cfg == NULL)
		return;
	config_defaults(cfg);
	entries_release(cfg);
	config_init(cfg);
}

/* dst = a deep copy of src. */
static void
config_copy(struct dbphase_config *dst, const struct dbphase_config *src)
{
	size_t i;
	char **s;

	*dst = *src;
	dst->connection = xstrdup_or_null(src->connection);
	dst->connection_from = xstrdup_or_null(src->connection_from);
	dst->connection_warning = xstrdup_or_null(src->connection_warning);
	for (i = 0; i < CONFIG_N_KEYS; i++) {
		if (config_table[i].type != CONFIG_STR)
			continue;
		s = str_field(dst, &config_table[i]);
		*s = xstrdup_or_null(*s);
	}
	dst->entries = src->n_entries ? xcalloc(src->n_entries, sizeof(*dst->entries)) : NULL;
	dst->alloc_entries = src->n_entries;
	for (i = 0; i < src->n_entries; i++) {
		dst->entries[i] = src->entries[i];
		dst->entries[i].section = xstrdup(src->entries[i].section);
		dst->entries[i].key = xstrdup(src->entries[i].key);
		dst->entries[i].value = xstrdup(src->entries[i].value);
		dst->entries[i].where = xstrdup(src->entries[i].where);
	}
}

/* Replace cfg by tmp (moved, not copied). */
static void
config_replace(struct dbphase_config *cfg, struct dbphase_config *tmp)
{
	config_release(cfg);
	*cfg = *tmp;
	memset(tmp, 0, sizeof(*tmp));
	config_init(tmp);
}

static const struct config_key *
config_lookup(const char *name)
{
	size_t i;

	for (i = 0; i < CONFIG_N_KEYS; i++)
		if (strcmp(config_table[i].name, name) == 0)
			return &config_table[i];
	return NULL;
}

/* Parse a decimal int in [min, max]; false if text is anything else. */
static bool
parse_int(const char *text, int min, int max, int *out)
{
	const char *p = text;
	long long v = 0;
	bool negative = false;

	if (*p == '-' || *p == '+')
		negative = *p++ == '-';
	if (*p == '\0')
		return false;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (*p - '0');
		if (v > (long long)INT_MAX + 1)
			return false;
	}
	if (negative)
		v = -v;
	if (v < min || v > max)
		return false;
	*out = (int)v;
	return true;
}

int
config_set(struct dbphase_config *cfg, const char *key, const char *value,
	   const char *where, struct dbphase_error *err)
{
	const struct config_key *k = config_lookup(key);
	struct strbuf names = STRBUF_INIT;
	char **s;
	size_t i;

	if (k == NULL) {
		for (i = 0; i < CONFIG_N_KEYS; i++)
			strbuf_addf(&names, "%s%s", i ? ", " : "", config_table[i].name);
		err_setf(err, DBPHASE_EBADINPUT,
			 "%s: unknown key '" EXCERPT_FMT "' in [dbphase]; expected one of: %s",
			 where, EXCERPT(key), names.buf);
		strbuf_release(&names);
		return DBPHASE_EBADINPUT;
	}
	if (value == NULL)
		value = "";
	switch (k->type) {
	case CONFIG_INT:
		if (!parse_int(value, k->min, k->max, int_field(cfg, k)))
			return err_setf(err, DBPHASE_EBADINPUT,
					"%s: '%s' must be an integer from %d to %d, not '" EXCERPT_FMT "'",
					where, k->name, k->min, k->max, EXCERPT(value));
		return 0;
	case CONFIG_STR:
		s = str_field(cfg, k);
		free(*s);
		*s = *value ? xstrdup(value) : NULL;
		return 0;
	}
	return 0;
}

/* ---- reading a file: oslo.config's line rules ---------------------------- */

/* oslo.config compares section names in lower case, except DEFAULT. */
static char *
section_name(const char *name, size_t len)
{
	char *out = xstrndup(name, len);
	char *p;

	if (strcmp(out, "DEFAULT") != 0)
		for (p = out; *p; p++)
			*p = (char)tolower((unsigned char)*p);
	return out;
}

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* The value being read: its key, its lines so far, where it started. */
struct pending {
	char *key;
	struct strbuf value;
	int line;
	int last_line;
};

static void
add_entry(struct dbphase_config *cfg, const char *path, const char *section,
	  struct pending *p)
{
	struct config_entry *e;

	XGROW(cfg->entries, cfg->n_entries, cfg->alloc_entries);
	e = &cfg->entries[cfg->n_entries++];
	e->section = xstrdup(section);
	e->key = p->key;
	e->value = strbuf_detach(&p->value);
	e->where = xasprintf("%s:%d", path, p->line);
	e->continued_to = p->last_line > p->line ? p->last_line : 0;
	p->key = NULL;
	strbuf_init(&p->value);
}

/*
 * Read text (len bytes, from path) into cfg's entries.  The errors are
 * those oslo.config raises for the whole file.
 */
static int
read_entries(struct dbphase_config *cfg, const char *path, const char *text, size_t len,
	     struct dbphase_error *err)
{
	struct pending p = { .key = NULL, .value = STRBUF_INIT };
	const char *ls = text, *end = text + len, *le, *b, *e, *sep, *eq, *colon;
	char *section = NULL;
	int lineno = 0, rc = 0;

	if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
		ls += 3;
	while (ls < end && rc == 0) {
		lineno++;
		le = memchr(ls, '\n', (size_t)(end - ls));
		if (le == NULL)
			le = end;
		if (memchr(ls, '\0', (size_t)(le - ls)) != NULL) {
			rc = err_setf(err, DBPHASE_EBADINPUT,
				      "%s:%d: NUL byte in the file; not a text file", path, lineno);
			break;
		}
		b = ls;
		e = le;
		ls = le < end ? le + 1 : end;
		while (e > b && is_blank(e[-1]))
			e--;
		if (b == e) {			/* a blank line ends a value */
			if (p.key)
				add_entry(cfg, path, section, &p);
			continue;
		}
		if (*b == ' ' || *b == '\t') {	/* more of the value before */
			if (p.key == NULL) {
				rc = err_setf(err, DBPHASE_EBADINPUT, "%s:%d: an indented line"
					      " continues no value", path, lineno);
				break;
			}
			while (b < e && is_blank(*b))
				b++;
			strbuf_addch(&p.value, '\n');
			strbuf_add(&p.value, b, (size_t)(e - b));
			p.last_line = lineno;
			continue;
		}
		if (p.key)
			add_entry(cfg, path, section, &p);
		if (*b == '[') {
			if (e[-1] != ']' || e - b <= 2) {
				rc = err_setf(err, DBPHASE_EBADINPUT, "%s:%d: %s", path, lineno,
					      e[-1] != ']' ? "a section header must end with ']'"
							   : "a section header needs a name");
				break;
			}
			free(section);
			section = section_name(b + 1, (size_t)(e - b - 2));
			continue;
		}
		if (*b == '#' || *b == ';')
			continue;
		eq = memchr(b, '=', (size_t)(e - b));
		colon = memchr(b, ':', (size_t)(e - b));
		sep = eq == NULL || (colon != NULL && colon < eq) ? colon : eq;
		if (sep == NULL) {
			rc = err_setf(err, DBPHASE_EBADINPUT, "%s:%d: expected 'key = value',"
				      " '[section]' or a comment", path, lineno);
			break;
		}
		if (section == NULL) {
			rc = err_setf(err, DBPHASE_EBADINPUT, "%s:%d: a value before any"
				      " [section]", path, lineno);
			break;
		}
		{
			const char *kb = b, *ke = sep, *vb = sep + 1, *ve = e;

			while (ke > kb && is_blank(ke[-1]))
				ke--;
			if (ke == kb) {
				rc = err_setf(err, DBPHASE_EBADINPUT, "%s:%d: a value with no key",
					      path, lineno);
				break;
			}
			while (vb < ve && is_blank(*vb))
				vb++;
			if (ve - vb >= 2 && (*vb == '"' || *vb == '\'') && ve[-1] == *vb) {
				vb++;
				ve--;
			}
			p.key = xstrndup(kb, (size_t)(ke - kb));
			strbuf_add(&p.value, vb, (size_t)(ve - vb));
			p.line = p.last_line = lineno;
		}
	}
	if (rc == 0 && p.key)
		add_entry(cfg, path, section, &p);
	free(p.key);
	strbuf_release(&p.value);
	free(section);
	return rc;
}

/* ---- resolving the settings from the entries ---------------------------- */

/* The last entry of section/key, or NULL. */
static const struct config_entry *
find_entry(const struct dbphase_config *cfg, const char *section, const char *key)
{
	size_t i;

	for (i = cfg->n_entries; i-- > 0;)
		if (strcmp(cfg->entries[i].section, section) == 0 &&
		    strcmp(cfg->entries[i].key, key) == 0)
			return &cfg->entries[i];
	return NULL;
}

/* What $name (name of len bytes) stands for in section, or NULL. */
static const struct config_entry *
lookup_name(const struct dbphase_config *cfg, const char *section, const char *name,
	    size_t len)
{
	const struct config_entry *e = NULL;
	const char *dot = memchr(name, '.', len);
	char *key;

	if (dot != NULL) {
		char *group = section_name(name, (size_t)(dot - name));

		key = xstrndup(dot + 1, len - (size_t)(dot - name) - 1);
		e = find_entry(cfg, group, key);
		free(group);
		free(key);
	}
	key = xstrndup(name, len);
	if (e == NULL && dot == NULL)
		e = find_entry(cfg, section, key);
	if (e == NULL)
		e = find_entry(cfg, "DEFAULT", key);
	free(key);
	return e;
}

static bool
is_name_start(char c)
{
	return c == '_' || isalpha((unsigned char)c);
}

static bool
is_name_char(char c)
{
	return c == '_' || c == '.' || isalnum((unsigned char)c);
}

/* out = value with its $names replaced; e is the entry it came from. */
static int
substitute(const struct dbphase_config *cfg, const struct config_entry *e, const char *value,
	   int depth, struct strbuf *out, struct dbphase_error *err)
{
	const char *p = value, *name;
	const struct config_entry *found;
	size_t len;
	bool braced;
	int rc;

	while (*p) {
		if (*p == '\\' && p[1] == '$') {
			strbuf_addch(out, '$');
			p += 2;
			continue;
		}
		if (*p != '$') {
			strbuf_addch(out, *p++);
			continue;
		}
		if (p[1] == '$') {
			strbuf_addch(out, '$');
			p += 2;
			continue;
		}
		braced = p[1] == '{';
		name = p + 1 + braced;
		len = 0;
		if (is_name_start(name[0]))
			for (len = 1; is_name_char(name[len]); len++)
				;
		if (len == 0 || (braced && name[len] != '}') ||
		    (found = lookup_name(cfg, e->section, name, len)) == NULL) {
			strbuf_addch(out, *p++);	/* left as written */
			continue;
		}
		if (depth >= SUBST_DEPTH_MAX)
			return err_setf(err, DBPHASE_EBADINPUT, "%s: '$%.*s' in the value of"
					" '" EXCERPT_FMT "' leads to itself", e->where,
					(int)(len < EXCERPT_MAX ? len : EXCERPT_MAX), name, EXCERPT(e->key));
		if ((rc = substitute(cfg, found, found->value, depth + 1, out, err)) < 0)
			return rc;
		p = name + len + braced;
	}
	return 0;
}

/* *out = e's value, substituted; an error names e's line. */
static int
entry_value(const struct dbphase_config *cfg, const struct config_entry *e, char **out,
	    struct dbphase_error *err)
{
	struct strbuf sb = STRBUF_INIT;
	int rc;

	if (e->continued_to)
		return err_setf(err, DBPHASE_EBADINPUT, "%s: the value of '" EXCERPT_FMT "' in [%s]"
				" goes on over indented lines (to line %d); write it on one line",
				e->where, EXCERPT(e->key), e->section, e->continued_to);
	if ((rc = substitute(cfg, e, e->value, 0, &sb, err)) < 0) {
		strbuf_release(&sb);
		return rc;
	}
	*out = strbuf_detach(&sb);
	return 0;
}

/* oslo.db's older names of [database] connection, most recent first. */
static const struct {
	const char *section, *key;
} deprecated_connection[] = {
	{ "sql", "connection" },
	{ "DEFAULT", "sql_connection" },
	{ "database", "sql_connection" },
};

static int
resolve_connection(struct dbphase_config *cfg, struct dbphase_error *err)
{
	const struct config_entry *e = find_entry(cfg, "database", "connection"), *d;
	size_t i;
	char *v;
	int rc;

	/* As in oslo.config, the current name in any file beats an old one. */
	for (i = 0; e == NULL && i < sizeof(deprecated_connection) / sizeof(deprecated_connection[0]); i++)
		if ((d = find_entry(cfg, deprecated_connection[i].section,
				    deprecated_connection[i].key)) != NULL)
			e = d;
	if (e == NULL)
		return 0;
	if ((rc = entry_value(cfg, e, &v, err)) < 0)
		return rc;
	if (*v == '\0') {
		free(v);
		return 0;
	}
	cfg->connection = v;
	cfg->connection_from = xasprintf("[%s] %s at %s", e->section, e->key, e->where);
	if (strcmp(e->section, "database") != 0 || strcmp(e->key, "connection") != 0)
		cfg->connection_warning = xasprintf("%s: [%s] %s is deprecated; write"
						    " [database] connection", e->where,
						    e->section, e->key);
	return 0;
}

/* Every setting again from the entries. */
static int
config_resolve(struct dbphase_config *cfg, struct dbphase_error *err)
{
	size_t i;
	char *v;
	int rc;

	config_defaults(cfg);
	if ((rc = resolve_connection(cfg, err)) < 0)
		return rc;
	for (i = 0; i < cfg->n_entries; i++) {
		const struct config_entry *e = &cfg->entries[i];

		if (strcmp(e->section, "dbphase") != 0)
			continue;
		if ((rc = entry_value(cfg, e, &v, err)) < 0)
			return rc;
		rc = config_set(cfg, e->key, v, e->where, err);
		free(v);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int
config_load_text(struct dbphase_config *cfg, const char *path, const char *text, size_t len,
		 struct dbphase_error *err)
{
	struct dbphase_config tmp;
	int rc;

	config_copy(&tmp, cfg);
	if ((rc = read_entries(&tmp, path, text, len, err)) == 0 &&
	    (rc = config_resolve(&tmp, err)) == 0)
		config_replace(cfg, &tmp);
	config_release(&tmp);
	return rc;
}

int
config_load_file(struct dbphase_config *cfg, const char *path,
		 struct dbphase_error *err)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	/* A config file that cannot be read is a configuration error. */
	if (file_read_all(path, &text, &len, err) < 0)
		return err_setf(err, DBPHASE_EBADINPUT, "cannot read config file '%s': %s", path,
				strerror(errno));
	rc = config_load_text(cfg, path, text, len, err);
	free(text);
	return rc;
}
static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
config_load_dir(struct dbphase_config *cfg, const char *dir,
		struct dbphase_error *err)
{
	struct dbphase_config tmp;
	char **names = NULL, *path;
	size_t n = 0, alloc = 0, i, len;
	struct dirent *de;
	struct stat st;
	DIR *d;
	int rc = 0;

	d = opendir(dir);
	if (d == NULL)
		return err_setf(err, errno == ENOENT || errno == ENOTDIR ?
				DBPHASE_EBADINPUT : DBPHASE_EIO,
				"cannot read config folder '%s': %s", dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len <= 5 || strcmp(de->d_name + len - 5, ".conf") != 0)
			continue;
		path = xasprintf("%s/%s", dir, de->d_name);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			XGROW(names, n, alloc);
			names[n++] = path;
		} else {
			free(path);
		}
	}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof(*names), cmp_str);

	config_copy(&tmp, cfg);
	for (i = 0; i < n; i++)
		if ((rc = config_load_file(&tmp, names[i], err)) < 0)
			break;
	if (rc == 0)
		config_replace(cfg, &tmp);
	config_release(&tmp);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}
