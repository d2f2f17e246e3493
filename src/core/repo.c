/*
 * core/repo.c - load a migration repository: repository.yaml, the numbered
 * files of versions/, the names under extensions/, and the phases/ folder.
 *
 * Checks run from the cheapest and widest to the narrowest, and the first
 * failure is returned: the folder layout, every file name in versions/,
 * version numbering (duplicates, then a missing first version or gap), then
 * each file's YAML and top-level structure in version order.  Nothing here
 * knows what an operation means; the planner checks each operation's kind
 * and fields against its catalog.
 *
 * Which folder is which when an extension is loaded: repository.yaml and
 * versions/ come from DIR/extensions/NAME (repo->dir), while extensions
 * (the names of DIR's extensions, siblings included) and phases_dir
 * (DIR/phases, the catalog additions of the whole repository) come from
 * DIR itself.
 */
#include "core/repo.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/excerpt.h"
#include "core/fileio.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"

#define REPO_DEFAULT_VERSION_TABLE "dbphase_version"

/* A versions/ entry whose name matched NNN_slug.yaml. */
struct version_file {
	int64_t version;
	char *name;	/* file name; owned */
	char *slug;	/* owned */
};

static int
sha256_compute(const void *data, size_t len, char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	unsigned int i;

	if (!EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL) || md_len != 32)
		return -1;
	for (i = 0; i < md_len; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 0x0f];
	}
	hex[64] = '\0';
	return 0;
}

char *
sha256_hex(const void *data, size_t len)
{
	char *hex = xmalloc(65);

	/*
	 * EVP_Digest with the built-in SHA-256 fails only when OpenSSL cannot
	 * allocate memory or its default provider is missing; like running out
	 * of memory in xmalloc, there is nothing sensible to carry on with.
	 */
	if (sha256_compute(data, len, hex) < 0)
		abort();
	return hex;
}

static bool
is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool
has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A SQL identifier dbphase accepts for its own tables. */
static bool
valid_identifier(const char *s)
{
	size_t i;

	if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return false;
	for (i = 1; s[i]; i++) {
		if (i >= 63)
			return false;
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	}
	return true;
}

/*
 * The sorted names of the folders under path (dot-names skipped).  A path
 * that does not exist gives an empty list.
 */
static int
list_subdirs(const char *path, char ***names, size_t *n, struct dbphase_error *err)
{
	struct dirent *de;
	size_t alloc = 0;
	char *sub;
	DIR *d;

	*names = NULL;
	*n = 0;
	d = opendir(path);
	if (d == NULL) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		return err_setf(err, DBPHASE_EIO, "cannot read folder '%s': %s", path,
				strerror(errno));
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		sub = xasprintf("%s/%s", path, de->d_name);
		if (is_dir(sub)) {
			XGROW(*names, *n, alloc);
			(*names)[(*n)++] = xstrdup(de->d_name);
		}
		free(sub);
	}
	closedir(d);
	if (*n > 1)
		qsort(*names, *n, sizeof(**names), cmp_str);
	return 0;
}

/* The attribute a backend's clients are read by when repository.yaml names none. */
static const char *const clients_default_attribute[DB_BACKEND__COUNT] = {
	[DB_BACKEND_POSTGRESQL] = "application_name",
	[DB_BACKEND_MYSQL] = "program_name",
};

static void
repo_clients_release(struct repo_clients *c)
{
	free(c->attribute);
	free(c->pattern);
	free(c->where);
	if (c->re) {
		regfree(c->re);
		free(c->re);
	}
	memset(c, 0, sizeof(*c));
}

/*
 * One backend's entry of 'clients': a pattern (over the backend's default
 * attribute) or a mapping of one attribute to its pattern.  The pattern is
 * compiled here, so that a bad one is a load error with its position.
 */
static int
load_clients_entry(struct repo *repo, const struct ydoc *doc, enum db_backend backend,
		   const struct ynode *value, struct dbphase_error *err)
{
	struct repo_clients *c = &repo->clients[backend];
	const char *name = db_backend_name(backend), *attribute, *pattern;
	const struct ynode *pnode = value;
	char *what, *msg;
	int rc;

	if (value->kind == YNODE_MAP) {
		if (value->n != 1)
			return ydoc_errorf(doc, value, err,
					   "'clients.%s' must map one connection attribute to its "
					   "pattern (e.g. '{%s: \"^shop-([0-9]+)$\"}'), not %zu of them",
					   name, clients_default_attribute[backend], value->n);
		attribute = value->keys[0]->scalar;
		pnode = value->items[0];
		if (backend == DB_BACKEND_POSTGRESQL && strcmp(attribute, "application_name") != 0)
			return ydoc_errorf(doc, value->keys[0], err,
					   "'clients.postgresql' reads 'application_name' (the one "
					   "attribute a PostgreSQL client names itself by), not '%s'",
					   attribute);
		/* performance_schema.session_connect_attrs.ATTR_NAME is varchar(32). */
		if (*attribute == '\0' || strlen(attribute) > 32)
			return ydoc_errorf(doc, value->keys[0], err,
					   "a connection attribute name has 1 to 32 characters, not "
					   "%zu", strlen(attribute));
	} else {
		attribute = clients_default_attribute[backend];
	}
	what = xasprintf("the pattern of 'clients.%s'", name);
	rc = ynode_str(doc, pnode, what, &pattern, err);
	free(what);
	if (rc < 0)
		return rc;
	if (*pattern == '\0' || ynode_is_null(pnode))
		return ydoc_errorf(doc, pnode, err, "the pattern of 'clients.%s' must not be "
				   "empty", name);
	c->re = xmalloc(sizeof(*c->re));
	if ((rc = regcomp(c->re, pattern, REG_EXTENDED)) != 0) {
		msg = xmalloc(regerror(rc, c->re, NULL, 0));
		regerror(rc, c->re, msg, regerror(rc, c->re, NULL, 0));
		free(c->re);
		c->re = NULL;
		rc = ydoc_errorf(doc, pnode, err, "bad regular expression in 'clients.%s' "
				 "(POSIX extended syntax): %s", name, msg);
		free(msg);
		return rc;
	}
	if (c->re->re_nsub < 1) {
		repo_clients_release(c);
		return ydoc_errorf(doc, pnode, err, "the pattern of 'clients.%s' has no group: "
				   "put the schema version in parentheses, e.g. "
				   "'^shop-([0-9]+)$'", name);
	}
	c->attribute = xstrdup(attribute);
	c->pattern = xstrdup(pattern);
	c->where = xasprintf("%s:%d:%d", doc->path, pnode->line, pnode->col);
	return 0;
}

/* 'clients': backend -> entry (load_clients_entry); null asks nothing. */
static int
load_clients(struct repo *repo, const struct ydoc *doc, const struct ynode *node,
	     struct dbphase_error *err)
{
	static const char expected[] = "expected postgresql or mysql (also spelled mariadb)";
	size_t i;
	int rc, backend;

	if (ynode_is_null(node))
		return 0;
	if (node->kind != YNODE_MAP)
		return ydoc_errorf(doc, node, err, "'clients' must be a mapping of backend to "
				   "pattern (%s), not %s", expected, ynode_kind_name(node));
	for (i = 0; i < node->n; i++) {
		const struct ynode *key = node->keys[i];

		backend = db_backend_from_name(key->scalar);
		if (backend == DB_BACKEND_SQLITE)
			return ydoc_errorf(doc, key, err, "'clients.%s': SQLite has no client "
					   "connections to read; remove it (nodes of a SQLite "
					   "database register instead: dbphase node register)",
					   key->scalar);
		if (backend < 0)
			return ydoc_errorf(doc, key, err, "unknown backend '%s' in 'clients'; %s",
					   key->scalar, expected);
		if (repo->clients[backend].attribute)
			return ydoc_errorf(doc, key, err, "'clients' names %s twice",
					   db_backend_name((enum db_backend)backend));
		if ((rc = load_clients_entry(repo, doc, (enum db_backend)backend, node->items[i],
					     err)) < 0)
			return rc;
	}
	return 0;
}

/*
 * Load DIR/repository.yaml if there is one: id, version_table, description,
 * clients.
 */
static int
load_repository_yaml(struct repo *repo, struct dbphase_error *err)
{
	static const char expected[] = "expected id, version_table, description, clients";
	struct ydoc doc = { NULL, NULL };
	const struct ynode *root, *key, *value;
	const char *s;
	struct stat st;
	char *path;
	size_t i;
	int rc = 0;

	path = xasprintf("%s/repository.yaml", repo->dir);
	if (stat(path, &st) < 0 && errno == ENOENT)
		goto out;
	if ((rc = ydoc_load_file(&doc, path, err)) < 0)
		goto out;
	root = doc.root;
	if (root == NULL || ynode_is_null(root))
		goto out;
	if (root->kind != YNODE_MAP) {
		rc = ydoc_errorf(&doc, root, err,
				 "repository.yaml must be a mapping (%s), not %s",
				 expected + strlen("expected "), ynode_kind_name(root));
		goto out;
	}
	for (i = 0; i < root->n; i++) {
		key = root->keys[i];
		value = root->items[i];
		if (strcmp(key->scalar, "id") == 0) {
			if ((rc = ynode_str(&doc, value, "'id'", &s, err)) < 0)
				goto out;
			if (*s == '\0' || ynode_is_null(value)) {
				rc = ydoc_errorf(&doc, value, err, "'id' must not be empty");
				goto out;
			}
			free(repo->id);
			repo->id = xstrdup(s);
		} else if (strcmp(key->scalar, "version_table") == 0) {
			if ((rc = ynode_str(&doc, value, "'version_table'", &s, err)) < 0)
				goto out;
			if (!valid_identifier(s)) {
				rc = ydoc_errorf(&doc, value, err,
						 "'version_table' must be a SQL identifier"
						 " (a letter or '_', then up to 62 letters, digits"
						 " or '_'), not '" EXCERPT_FMT "'", EXCERPT(s));
				goto out;
			}
			free(repo->version_table);
			repo->version_table = xstrdup(s);
		} else if (strcmp(key->scalar, "description") == 0) {
			if ((rc = ynode_str(&doc, value, "'description'", &s, err)) < 0)
				goto out;
		} else if (strcmp(key->scalar, "clients") == 0) {
			if ((rc = load_clients(repo, &doc, value, err)) < 0)
				goto out;
		} else {
			rc = ydoc_errorf(&doc, key, err,
					 "unknown key '" EXCERPT_FMT "' in repository.yaml; %s",
					 EXCERPT(key->scalar), expected);
			goto out;
		}
	}
out:
	ydoc_release(&doc);
	free(path);
	return rc;
}

/*
 * Split a versions/ file name "NNN_slug.yaml" (or .yml).  Returns false when
 * the name does not have that shape or NNN does not fit in an int64_t.
 */
static bool
parse_file_name(const char *name, int64_t *version, char **slug)
{
	const char *p = name, *slug_start, *slug_end;
	int64_t v = 0;

	if (*p < '0' || *p > '9')
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (INT64_MAX - (*p - '0')) / 10)
			return false;
		v = v * 10 + (*p - '0');
	}
	if (*p++ != '_')
		return false;
	slug_start = p;
	for (; (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
	       (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'; p++)
		;
	slug_end = p;
	if (slug_end == slug_start || (strcmp(p, ".yaml") != 0 && strcmp(p, ".yml") != 0))
		return false;
	*version = v;
	*slug = xstrndup(slug_start, (size_t)(slug_end - slug_start));
	return true;
}

static int
cmp_version_file(const void *a, const void *b)
{
	const struct version_file *x = a, *y = b;

	if (x->version != y->version)
		return x->version < y->version ? -1 : 1;
	return strcmp(x->name, y->name);
}

static void
version_files_free(struct version_file *files, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(files[i].name);
		free(files[i].slug);
	}
	free(files);
}

/*
 * List versions/: every *.yaml and *.yml must be a file named NNN_slug;
 * other names are left alone (a README, an editor's backup).  The result
 * is sorted by version and checked for duplicates and gaps.
 */
static int
list_versions(const char *dir, struct version_file **out, size_t *out_n,
	      struct dbphase_error *err)
{
	struct version_file *files = NULL;
	size_t n = 0, alloc = 0, i;
	char *versions, *path = NULL;
	struct dirent *de;
	struct stat st;
	int64_t version;
	char *slug;
	DIR *d;
	int rc = 0;

	versions = xasprintf("%s/versions", dir);
	d = opendir(versions);
	if (d == NULL) {
		if (errno == ENOENT || errno == ENOTDIR)
			rc = err_setf(err, DBPHASE_EBADINPUT,
				      "'%s' is not a migration repository: no versions/ folder",
				      dir);
		else
			rc = err_setf(err, DBPHASE_EIO, "cannot read folder '%s': %s",
				      versions, strerror(errno));
		goto out;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' ||
		    !(has_suffix(de->d_name, ".yaml") || has_suffix(de->d_name, ".yml")))
			continue;
		free(path);
		path = xasprintf("%s/%s", versions, de->d_name);
		if (!parse_file_name(de->d_name, &version, &slug)) {
			rc = err_setf(err, DBPHASE_EBADINPUT,
				      "%s: bad migration file name; expected NNN_slug.yaml"
				      " (the version in digits, '_', then letters, digits,"
				      " '_' or '-')", path);
			goto out;
		}
		if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
			free(slug);
			rc = err_setf(err, DBPHASE_EBADINPUT, "%s: not a regular file", path);
			goto out;
		}
		XGROW(files, n, alloc);
		files[n].version = version;
		files[n].name = xstrdup(de->d_name);
		files[n].slug = slug;
		n++;
	}
	if (n > 1)
		qsort(files, n, sizeof(*files), cmp_version_file);
	for (i = 1; i < n; i++) {
		if (files[i].version == files[i - 1].version) {
			rc = err_setf(err, DBPHASE_EBADINPUT,
				      "%s/%s and %s/%s both have version %" PRId64,
				      versions, files[i - 1].name, versions, files[i].name,
				      files[i].version);
			goto out;
		}
	}
	if (n > 0 && files[0].version != 1) {
		rc = err_setf(err, DBPHASE_EBADINPUT,
			      "version 1 is missing: versions start at 1, but the first"
			      " is %s/%s (version %" PRId64 ")",
			      versions, files[0].name, files[0].version);
		goto out;
	}
	for (i = 1; i < n; i++) {
		if (files[i].version == files[i - 1].version + 1)
			continue;
		if (files[i].version == files[i - 1].version + 2)
			rc = err_setf(err, DBPHASE_EBADINPUT,
				      "version %" PRId64 " is missing: %s/%s is followed by %s/%s",
				      files[i - 1].version + 1, versions, files[i - 1].name,
				      versions, files[i].name);
		else
			rc = err_setf(err, DBPHASE_EBADINPUT,
				      "versions %" PRId64 " to %" PRId64 " are missing:"
				      " %s/%s is followed by %s/%s",
				      files[i - 1].version + 1, files[i].version - 1,
				      versions, files[i - 1].name, versions, files[i].name);
		goto out;
	}
out:
	if (d)
		closedir(d);
	free(path);
	free(versions);
	if (rc < 0) {
		version_files_free(files, n);
		files = NULL;
		n = 0;
	}
	*out = files;
	*out_n = n;
	return rc;
}

static void
migration_release(struct migration *m)
{
	free(m->slug);
	free(m->path);
	free(m->checksum);
	free(m->description);
	free(m->ops);
	ydoc_release(&m->doc);
	memset(m, 0, sizeof(*m));
}

/* Check that op is a one-key mapping and fill *out from it. */
static int
load_operation(struct migration *m, const struct ynode *op, struct migration_op *out,
	       struct dbphase_error *err)
{
	if (op->kind != YNODE_MAP)
		return ydoc_errorf(&m->doc, op, err,
				   "an operation must be a mapping with one key, its kind"
				   " (e.g. 'add_column: {...}'), not %s", ynode_kind_name(op));
	if (op->n == 0)
		return ydoc_errorf(&m->doc, op, err,
				   "an operation must be a mapping with one key, its kind"
				   " (e.g. 'add_column: {...}'), not an empty mapping");
	if (op->n > 1)
		return ydoc_errorf(&m->doc, op->keys[1], err,
				   "an operation has one key, its kind, but this one also"
				   " has '" EXCERPT_FMT "' after '" EXCERPT_FMT "'; start each"
				   " operation with its own '- '",
				   EXCERPT(op->keys[1]->scalar), EXCERPT(op->keys[0]->scalar));
	out->kind = op->keys[0]->scalar;
	out->node = op;
	out->args = op->items[0];
	return 0;
}

/* Parse and check one migration file; m->version/slug/path are set. */
static int
load_migration(struct migration *m, struct dbphase_error *err)
{
	static const char expected[] = "expected description, operations";
	const struct ynode *root, *key, *value, *ops = NULL, *ops_key = NULL;
	const char *s, *reason;
	char *text = NULL;
	char hex[65];
	size_t len = 0, i;
	int rc;

	if ((rc = file_read_all(m->path, &text, &len, err)) < 0)
		goto out;
	if (sha256_compute(text, len, hex) < 0) {
		reason = ERR_reason_error_string(ERR_get_error());
		rc = err_setf(err, DBPHASE_EERROR, "%s: cannot compute its SHA-256: %s",
			      m->path, reason ? reason : "OpenSSL error");
		goto out;
	}
	m->checksum = xstrdup(hex);
	if ((rc = ydoc_load_string(&m->doc, m->path, text, len, err)) < 0)
		goto out;
	root = m->doc.root;
	if (root == NULL || ynode_is_null(root)) {
		rc = ydoc_errorf(&m->doc, NULL, err,
				 "empty migration; expected a mapping with 'operations'");
		goto out;
	}
	if (root->kind != YNODE_MAP) {
		rc = ydoc_errorf(&m->doc, root, err,
				 "a migration must be a mapping with 'operations', not %s",
				 ynode_kind_name(root));
		goto out;
	}
	for (i = 0; i < root->n; i++) {
		key = root->keys[i];
		value = root->items[i];
		if (strcmp(key->scalar, "description") == 0) {
			if (ynode_is_null(value))
				continue;
			if ((rc = ynode_str(&m->doc, value, "'description'", &s, err)) < 0)
				goto out;
			m->description = xstrdup(s);
		} else if (strcmp(key->scalar, "operations") == 0) {
			ops_key = key;
			ops = value;
		} else {
			rc = ydoc_errorf(&m->doc, key, err,
					 "unknown key '" EXCERPT_FMT "' in migration; %s",
					 EXCERPT(key->scalar), expected);
			goto out;
		}
	}
	if (ops_key == NULL) {
		rc = ydoc_errorf(&m->doc, root, err,
				 "migration has no 'operations'; expected a list of operations");
		goto out;
	}
	if (ops->kind != YNODE_SEQ) {
		rc = ydoc_errorf(&m->doc, ynode_is_null(ops) ? ops_key : ops, err,
				 "'operations' must be a list of operations, not %s",
				 ynode_kind_name(ops));
		goto out;
	}
	if (ops->n == 0) {
		rc = ydoc_errorf(&m->doc, ops, err,
				 "'operations' is empty; a migration has at least one operation");
		goto out;
	}
	m->ops = xcalloc(ops->n, sizeof(*m->ops));
	for (i = 0; i < ops->n; i++) {
		if ((rc = load_operation(m, ops->items[i], &m->ops[i], err)) < 0)
			goto out;
	}
	m->n_ops = ops->n;
out:
	free(text);
	return rc;
}

/* The default id: the last component of dir, or of its real path. */
static char *
default_id(const char *dir)
{
	const char *base = strrchr(dir, '/');
	char *real, *id;

	base = base ? base + 1 : dir;
	if (*base != '\0' && strcmp(base, ".") != 0 && strcmp(base, "..") != 0)
		return xstrdup(base);
	real = realpath(dir, NULL);
	if (real == NULL)
		return xstrdup("dbphase");
	base = strrchr(real, '/');
	base = base ? base + 1 : real;
	id = xstrdup(*base ? base : "dbphase");
	free(real);
	return id;
}

/* An extension name is one folder name: no '/', not "." or "..". */
static bool
valid_extension_name(const char *name)
{
	return *name != '\0' && strchr(name, '/') == NULL &&
	       strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

int
repo_list_extensions(const char *dir, char ***names, size_t *n, struct dbphase_error *err)
{
	char *path = xasprintf("%s/extensions", dir);
	size_t i, kept = 0;
	int rc = list_subdirs(path, names, n, err);

	/* Only folders that are repositories: they have versions/. */
	for (i = 0; rc == 0 && i < *n; i++) {
		char *versions = xasprintf("%s/%s/versions", path, (*names)[i]);

		if (valid_extension_name((*names)[i]) && is_dir(versions))
			(*names)[kept++] = (*names)[i];
		else
			free((*names)[i]);
		free(versions);
	}
	if (rc == 0)
		*n = kept;
	free(path);
	return rc;
}

int
repo_load(struct repo *repo, const char *dir, const char *extension,
	  struct dbphase_error *err)
{
	struct version_file *files = NULL;
	size_t n_files = 0, i, len;
	char *top = NULL, *path = NULL;
	int rc = 0;

	memset(repo, 0, sizeof(*repo));
	/* Drop trailing slashes so that messages read "dir/versions/...". */
	len = strlen(dir);
	while (len > 1 && dir[len - 1] == '/')
		len--;
	top = xstrndup(dir, len);

	if (extension != NULL) {
		path = xasprintf("%s/extensions/%s", top, extension);
		if (!valid_extension_name(extension) || !is_dir(path)) {
			rc = err_setf(err, DBPHASE_EBADINPUT,
				      "no extension '" EXCERPT_FMT "' in '%s/extensions'",
				      EXCERPT(extension), top);
			goto out;
		}
		repo->dir = path;
		path = NULL;
		repo->extension = xstrdup(extension);
	} else {
		repo->dir = xstrdup(top);
	}
	if ((rc = list_versions(repo->dir, &files, &n_files, err)) < 0)
		goto out;
	repo->id = default_id(repo->dir);
	repo->version_table = xstrdup(REPO_DEFAULT_VERSION_TABLE);
	if ((rc = load_repository_yaml(repo, err)) < 0)
		goto out;
	if (extension != NULL) {
		/* The main repository's id names the extension's state row. */
		struct repo main_repo;

		memset(&main_repo, 0, sizeof(main_repo));
		main_repo.dir = top;
		main_repo.id = default_id(top);
		main_repo.version_table = xstrdup(REPO_DEFAULT_VERSION_TABLE);
		rc = load_repository_yaml(&main_repo, err);
		repo->parent_id = main_repo.id;
		free(main_repo.version_table);
		free(main_repo.extension);
		for (i = 0; i < DB_BACKEND__COUNT; i++)
			repo_clients_release(&main_repo.clients[i]);
		if (rc < 0)
			goto out;
	}

	repo->migrations = xcalloc(n_files ? n_files : 1, sizeof(*repo->migrations));
	for (i = 0; i < n_files; i++) {
		struct migration *m = &repo->migrations[i];

		m->version = files[i].version;
		m->slug = files[i].slug;
		files[i].slug = NULL;
		m->path = xasprintf("%s/versions/%s", repo->dir, files[i].name);
		repo->n_migrations++;
		if ((rc = load_migration(m, err)) < 0)
			goto out;
	}

	path = xasprintf("%s/extensions", top);
	if ((rc = list_subdirs(path, &repo->extensions, &repo->n_extensions, err)) < 0)
		goto out;
	free(path);
	path = xasprintf("%s/phases", top);
	if (is_dir(path)) {
		repo->phases_dir = path;
		path = NULL;
	}
out:
	version_files_free(files, n_files);
	free(path);
	free(top);
	if (rc < 0)
		repo_release(repo);
	return rc;
}

void
repo_release(struct repo *repo)
{
	size_t i;

	if (repo == NULL)
		return;
	for (i = 0; i < repo->n_migrations; i++)
		migration_release(&repo->migrations[i]);
	free(repo->migrations);
	for (i = 0; i < repo->n_extensions; i++)
		free(repo->extensions[i]);
	free(repo->extensions);
	free(repo->dir);
	free(repo->id);
	free(repo->extension);
	free(repo->parent_id);
	free(repo->version_table);
	free(repo->phases_dir);
	for (i = 0; i < DB_BACKEND__COUNT; i++)
		repo_clients_release(&repo->clients[i]);
	memset(repo, 0, sizeof(*repo));
}

const struct repo_clients *
repo_clients_for(const struct repo *repo, enum db_backend backend)
{
	if ((unsigned)backend >= DB_BACKEND__COUNT || repo->clients[backend].attribute == NULL)
		return NULL;
	return &repo->clients[backend];
}

int64_t
repo_latest(const struct repo *repo)
{
	if (repo->n_migrations == 0)
		return 0;
	return repo->migrations[repo->n_migrations - 1].version;
}

const struct migration *
repo_migration(const struct repo *repo, int64_t version)
{
	const struct migration *m;

	/* Versions are 1..n without gaps once loaded. */
	if (version < 1 || (uint64_t)version > repo->n_migrations)
		return NULL;
	m = &repo->migrations[version - 1];
	return m->version == version ? m : NULL;
}

char *
repo_state_key(const struct repo *repo)
{
	if (repo->extension)
		return xasprintf("%s/%s", repo->parent_id ? repo->parent_id : "", repo->extension);
	return xstrdup(repo->id);
}
