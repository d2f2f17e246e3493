/*
 * core/config.c - read [database] connection and [dbphase] settings from
 * INI files with inih, the way oslo.config reads an OpenStack service's file.
 *
 * Design: Debian builds inih with a 200-byte line buffer on the stack, and
 * inih splits a longer line without a word, shifting every later line
 * number and turning the tail into a line of its own.  A line fits when its
 * bytes, line break included, are at most INI_LINE_MAX (199).  So the file
 * is read here, scanned line by line with inih's own rules for what starts
 * a section, and then:
 *   - a long line inside [database] or [dbphase] (or a long header that
 *     opens one of them) is an error at its line;
 *   - a long line anywhere else (OpenStack's logging format strings in
 *     [DEFAULT]) becomes an empty line, which keeps the line numbers;
 * and inih parses the cleaned text through a reader that counts lines, so
 * every value and every error knows its line.
 *
 * [dbphase] keys come from one table, CONFIG_KEY_MAP, which also drives
 * config_init (defaults), config_set and config_keys.  Section names are
 * case-sensitive, as in oslo.config.  Like oslo.config, a value written in
 * matching quotes loses them.  Loading is all or nothing: on error the
 * caller's struct is unchanged.
 */
#include "core/config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <ini.h>
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

/* The longest line, line break included, that inih reads whole. */
#define INI_LINE_MAX 199

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

/* What the pre-scan learnt about a line, for the handler. */
enum line_kind {
	LINE_OTHER,
	LINE_CONTINUATION,	/* an indented line continuing the previous value */
};

struct ini_ctx {
	const char *path;
	struct dbphase_config *cfg;
	struct dbphase_error *err;
	/* The reader's position in the cleaned text. */
	const char *text;
	size_t len;
	size_t pos;
	int lineno;		/* line of the text last handed to inih */
	bool at_line_start;
	unsigned char *kinds;	/* enum line_kind per line, 1-based */
	size_t n_lines;
	int err_line;		/* line of the handler's first error, or 0 */
};

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

void
config_init(struct dbphase_config *cfg)
{
	size_t i;

	memset(cfg, 0, sizeof(*cfg));
	for (i = 0; i < CONFIG_N_KEYS; i++) {
		if (config_table[i].type == CONFIG_INT)
			*int_field(cfg, &config_table[i]) = config_table[i].def;
		else
			*str_field(cfg, &config_table[i]) = NULL;
	}
}

void
config_release(struct dbphase_config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	free(cfg->connection);
	free(cfg->connection_from);
	for (i = 0; i < CONFIG_N_KEYS; i++)
		if (config_table[i].type == CONFIG_STR)
			free(*str_field(cfg, &config_table[i]));
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
	for (i = 0; i < CONFIG_N_KEYS; i++) {
		if (config_table[i].type != CONFIG_STR)
			continue;
		s = str_field(dst, &config_table[i]);
		*s = xstrdup_or_null(*s);
	}
}

/* Replace cfg by tmp (moved, not copied). */
static void
config_replace(struct dbphase_config *cfg, struct dbphase_config *tmp)
{
	config_release(cfg);
	*cfg = *tmp;
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

/* inih's inline-comment rule: ';' after whitespace starts a comment. */
static const char *
find_chars_or_comment(const char *s, const char *end, const char *chars)
{
	bool was_space = false;

	while (s < end && !strchr(chars, *s) && !(was_space && *s == ';')) {
		was_space = isspace((unsigned char)*s);
		s++;
	}
	return s;
}

static bool
section_is_read(const char *name, size_t len)
{
	return (len == 8 && memcmp(name, "database", 8) == 0) ||
	       (len == 7 && memcmp(name, "dbphase", 7) == 0);
}

/* How inih reads a line (ini_parse_stream's branches, in its order). */
enum ini_line {
	INI_BLANK,		/* empty or a comment */
	INI_CONTINUATION,	/* indented, after a name: more of its value */
	INI_SECTION,		/* [name] */
	INI_PAIR,		/* name = value or name: value */
	INI_BAD,		/* inih reports a parse error here */
};

/*
 * Classify the line [ls, le) (no line break) as inih would, given whether
 * a name was read before it in the section.  For INI_SECTION, *name and
 * *name_len give the section name; for INI_PAIR, *name_len is the length
 * of the key.
 */
static enum ini_line
classify_line(const char *ls, const char *le, bool first, bool prev_name,
	      const char **name, size_t *name_len)
{
	const char *start = ls, *end = le, *q;

	if (first && le - ls >= 3 && memcmp(ls, "\xEF\xBB\xBF", 3) == 0)
		start += 3;
	while (start < end && isspace((unsigned char)*start))
		start++;
	while (end > start && isspace((unsigned char)end[-1]))
		end--;
	if (start == end || *start == ';' || *start == '#')
		return INI_BLANK;
	if (prev_name && start > ls)
		return INI_CONTINUATION;
	if (*start == '[') {
		q = find_chars_or_comment(start + 1, end, "]");
		if (q == end || *q != ']')
			return INI_BAD;
		*name = start + 1;
		*name_len = (size_t)(q - *name);
		return INI_SECTION;
	}
	q = find_chars_or_comment(start, end, "=:");
	if (q == end || *q == ';')
		return INI_BAD;
	while (q > start && isspace((unsigned char)q[-1]))
		q--;
	*name = start;
	*name_len = (size_t)(q - start);
	return INI_PAIR;
}

/*
 * Copy text into *out, blanking the long lines of sections dbphase does not
 * read, and fill ctx->kinds.  Follows inih's reading of each line so that
 * the section each line belongs to is the one inih will see.
 */
static int
clean_text(struct ini_ctx *ctx, const char *text, size_t len, struct strbuf *out,
	   struct dbphase_error *err)
{
	const char *ls = text, *le, *name = NULL;
	const char *nul = memchr(text, '\0', len);
	bool in_read = false, prev_name = false, target_read, has_nl;
	size_t n_lines = 1, i, bytes, name_len = 0;
	enum ini_line kind;
	int lineno = 0;

	for (i = 0; i < len; i++)
		if (text[i] == '\n')
			n_lines++;
	ctx->kinds = xcalloc(n_lines + 1, 1);
	ctx->n_lines = n_lines;
	while (ls < text + len) {
		lineno++;
		le = memchr(ls, '\n', (size_t)(text + len - ls));
		has_nl = le != NULL;
		if (le == NULL)
			le = text + len;
		bytes = (size_t)(le - ls) + (has_nl ? 1 : 0);
		if (nul != NULL && nul < ls + bytes)
			return err_setf(err, DBPHASE_EBADINPUT,
					"%s:%d: NUL byte in the file; not a text file",
					ctx->path, lineno);
		kind = classify_line(ls, le, lineno == 1, prev_name, &name, &name_len);
		target_read = kind == INI_SECTION && section_is_read(name, name_len);
		if (bytes > INI_LINE_MAX) {
			if (in_read || target_read)
				return err_setf(err, DBPHASE_EBADINPUT,
						"%s:%d: line is longer than %d bytes, which the"
						" INI parser cannot read",
						ctx->path, lineno, INI_LINE_MAX);
			/* An empty line instead: inih's state does not move. */
			if (has_nl)
				strbuf_addch(out, '\n');
			ls += bytes;
			continue;
		}
		switch (kind) {
		case INI_CONTINUATION:
			ctx->kinds[lineno] = LINE_CONTINUATION;
			break;
		case INI_SECTION:
			in_read = target_read;
			prev_name = false;
			break;
		case INI_PAIR:
			prev_name = name_len > 0;
			break;
		case INI_BLANK:
		case INI_BAD:
			break;
		}
		strbuf_add(out, ls, bytes);
		ls += bytes;
	}
	return 0;
}

/* fgets for the cleaned text, counting lines as it goes. */
static char *
config_ini_reader(char *str, int num, void *stream)
{
	struct ini_ctx *ctx = stream;
	size_t left = ctx->len - ctx->pos, n = 0;

	if (left == 0 || num < 2)
		return NULL;
	if (ctx->at_line_start)
		ctx->lineno++;
	while (n < (size_t)num - 1 && n < left) {
		str[n] = ctx->text[ctx->pos + n];
		if (str[n++] == '\n')
			break;
	}
	str[n] = '\0';
	ctx->pos += n;
	ctx->at_line_start = str[n - 1] == '\n';
	return str;
}

/* A value in matching single or double quotes loses them (oslo.config). */
static char *
unquote(const char *value)
{
	size_t len = strlen(value);

	if (len >= 2 && (value[0] == '"' || value[0] == '\'') && value[len - 1] == value[0])
		return xstrndup(value + 1, len - 2);
	return xstrdup(value);
}

static int
config_ini_handler(void *user, const char *section, const char *name, const char *value)
{
	struct ini_ctx *ctx = user;
	bool database = strcmp(section, "database") == 0;
	char *where = NULL, *v = NULL;
	int rc = 0;

	if (ctx->err_line != 0)
		return 1;
	if (!database && strcmp(section, "dbphase") != 0)
		return 1;
	if (database && strcmp(name, "connection") != 0)
		return 1;
	where = xasprintf("%s:%d", ctx->path, ctx->lineno);
	if (ctx->lineno > 0 && (size_t)ctx->lineno <= ctx->n_lines &&
	    ctx->kinds[ctx->lineno] == LINE_CONTINUATION) {
		rc = err_setf(ctx->err, DBPHASE_EBADINPUT,
			      "%s: the value of '" EXCERPT_FMT "' in [%s] goes on over an indented"
			      " line; write it on one line", where, EXCERPT(name), section);
		goto out;
	}
	v = unquote(value);
	if (database) {
		free(ctx->cfg->connection);
		free(ctx->cfg->connection_from);
		ctx->cfg->connection = NULL;
		ctx->cfg->connection_from = NULL;
		if (*v) {
			ctx->cfg->connection = v;
			ctx->cfg->connection_from = where;
			v = NULL;
			where = NULL;
		}
	} else {
		rc = config_set(ctx->cfg, name, v, where, ctx->err);
	}
out:
	if (rc < 0)
		ctx->err_line = ctx->lineno;
	free(where);
	free(v);
	return rc < 0 ? 0 : 1;
}

int
config_load_file(struct dbphase_config *cfg, const char *path,
		 struct dbphase_error *err)
{
	struct strbuf clean = STRBUF_INIT;
	struct dbphase_config tmp;
	struct ini_ctx ctx;
	char *text = NULL;
	size_t len = 0;
	int rc = 0, line;

	memset(&ctx, 0, sizeof(ctx));
	config_copy(&tmp, cfg);
	/* A config file that cannot be read is a configuration error. */
	if (file_read_all(path, &text, &len, err) < 0) {
		rc = err_setf(err, DBPHASE_EBADINPUT, "cannot read config file '%s': %s", path,
			      strerror(errno));
		goto out;
	}
	ctx.path = path;
	ctx.cfg = &tmp;
	ctx.err = err;
	if ((rc = clean_text(&ctx, text, len, &clean, err)) < 0)
		goto out;
	ctx.text = clean.buf;
	ctx.len = clean.len;
	ctx.at_line_start = true;
	line = ini_parse_stream(config_ini_reader, &ctx, config_ini_handler, &ctx);
	if (line < 0) {
		rc = err_setf(err, DBPHASE_EERROR, "%s: the INI parser failed (%d)", path, line);
	} else if (line > 0 && line == ctx.err_line) {
		rc = DBPHASE_EBADINPUT;	/* the handler's error, already in err */
	} else if (line > 0) {
		rc = err_setf(err, DBPHASE_EBADINPUT, "%s:%d: cannot parse line", path, line);
	} else {
		config_replace(cfg, &tmp);
	}
out:
	config_release(&tmp);
	strbuf_release(&clean);
	free(ctx.kinds);
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
