/*
 * plan/catalog.c - loading the operation catalog from its YAML files.
 */
#include "plan/catalog.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/excerpt.h"
#include "core/fileio.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"

static const char *const phase_names[PHASE__COUNT] = { "expand", "migrate", "contract" };

const char *
phase_name(enum phase phase)
{
	return (unsigned)phase < PHASE__COUNT ? phase_names[phase] : "?";
}

int
phase_from_name(const char *name)
{
	int i;

	for (i = 0; i < PHASE__COUNT; i++)
		if (strcmp(phase_names[i], name) == 0)
			return i;
	return -1;
}

static const struct {
	const char *name;
	enum param_kind kind;
} param_kinds[] = {
	{ "identifier", PARAM_IDENTIFIER },
	{ "table", PARAM_TABLE },
	{ "new_table", PARAM_NEW_TABLE },
	{ "column", PARAM_COLUMN },
	{ "new_column", PARAM_NEW_COLUMN },
	{ "columns", PARAM_COLUMNS },
	{ "column_def", PARAM_COLUMN_DEF },
	{ "column_defs", PARAM_COLUMN_DEFS },
	{ "type", PARAM_TYPE },
	{ "expr", PARAM_EXPR },
	{ "assignments", PARAM_ASSIGNMENTS },
	{ "string", PARAM_STRING },
	{ "bool", PARAM_BOOL },
	{ "phase", PARAM_PHASE },
	{ "sql", PARAM_SQL },
	{ "value", PARAM_VALUE },
};

static void
catalog_op_release(struct catalog_op *op)
{
	size_t i, j;
	int b;

	for (i = 0; i < op->n_params; i++)
		free(op->params[i].name);
	for (i = 0; i < op->n_steps; i++) {
		struct catalog_step *s = &op->steps[i];

		for (b = 0; b < DB_BACKEND__COUNT; b++) {
			for (j = 0; j < s->n_sql[b]; j++)
				free(s->sql[b][j]);
			free(s->sql[b]);
			for (j = 0; j < s->n_undo[b]; j++)
				free(s->undo[b][j]);
			free(s->undo[b]);
		}
		for (j = 0; j < s->n_when; j++)
			free(s->when[j]);
		free(s->when);
		free(s->reason);
		free(s->ex_table);
		free(s->bf_table);
		free(s->bf_set);
		free(s->bf_where);
		free(s->rb_table);
		free(s->rb_column);
		free(s->rb_not_null);
		free(s->rb_default);
		free(s->rb_drop_default);
		free(s->rb_undo_default);
	}
	free(op->params);
	free(op->steps);
	free(op->name);
	free(op->summary);
	free(op->source);
	memset(op, 0, sizeof(*op));
}

void
catalog_release(struct catalog *cat)
{
	size_t i;

	for (i = 0; i < cat->n_ops; i++)
		catalog_op_release(&cat->ops[i]);
	free(cat->ops);
	memset(cat, 0, sizeof(*cat));
}

const struct catalog_op *
catalog_find(const struct catalog *cat, const char *name)
{
	size_t i;

	for (i = 0; i < cat->n_ops; i++)
		if (strcmp(cat->ops[i].name, name) == 0)
			return &cat->ops[i];
	return NULL;
}

const struct catalog_param *
catalog_op_param(const struct catalog_op *op, const char *name)
{
	size_t i;

	for (i = 0; i < op->n_params; i++)
		if (strcmp(op->params[i].name, name) == 0)
			return &op->params[i];
	return NULL;
}

char *
catalog_names(const struct catalog *cat)
{
	struct strbuf sb = STRBUF_INIT;
	size_t i;

	for (i = 0; i < cat->n_ops; i++)
		strbuf_addf(&sb, "%s%s", i ? ", " : "", cat->ops[i].name);
	return strbuf_detach(&sb);
}

/* Check that map has only the listed keys (NULL-terminated). */
static int
check_keys(const struct ydoc *doc, const struct ynode *map, const char *const *keys,
	   const char *where, struct dbphase_error *err)
{
	size_t i;
	const char *const *k;

	for (i = 0; i < map->n; i++) {
		for (k = keys; *k; k++)
			if (strcmp(map->keys[i]->scalar, *k) == 0)
				break;
		if (*k == NULL)
			return ydoc_errorf(doc, map->keys[i], err,
					   "unknown key '" EXCERPT_FMT "' in %s",
					   EXCERPT(map->keys[i]->scalar), where);
	}
	return 0;
}

static int
load_params(const struct ydoc *doc, const struct ynode *node, struct catalog_op *op,
	    struct dbphase_error *err)
{
	static const char *const keys[] = { "kind", "required", NULL };
	size_t i, k;
	int rc;

	if (node == NULL)
		return 0;
	if (node->kind != YNODE_MAP)
		return ydoc_errorf(doc, node, err, "'params' must be a mapping");
	op->params = xcalloc(node->n, sizeof(*op->params));
	for (i = 0; i < node->n; i++) {
		const struct ynode *spec = node->items[i], *kind;
		struct catalog_param *p = &op->params[op->n_params++];
		const char *kname;

		p->name = xstrdup(node->keys[i]->scalar);
		if (spec->kind != YNODE_MAP)
			return ydoc_errorf(doc, spec, err, "parameter '%s' must be a mapping", p->name);
		if ((rc = check_keys(doc, spec, keys, "a parameter", err)) < 0)
			return rc;
		kind = ynode_get(spec, "kind");
		if (kind == NULL)
			return ydoc_errorf(doc, spec, err, "parameter '%s' has no 'kind'", p->name);
		if ((rc = ynode_str(doc, kind, "'kind'", &kname, err)) < 0)
			return rc;
		for (k = 0; k < sizeof(param_kinds) / sizeof(param_kinds[0]); k++)
			if (strcmp(param_kinds[k].name, kname) == 0)
				break;
		if (k == sizeof(param_kinds) / sizeof(param_kinds[0]))
			return ydoc_errorf(doc, kind, err, "unknown parameter kind '%s'", kname);
		p->kind = param_kinds[k].kind;
		if (ynode_get(spec, "required") &&
		    (rc = ynode_bool(doc, ynode_get(spec, "required"), "'required'",
				     &p->required, err)) < 0)
			return rc;
	}
	return 0;
}

/*
 * sql (or undo): {all|postgresql|mysql|sqlite: "stmt" or ["stmt", ...]}
 * into the per-backend arrays stmts, n and has.
 */
static int
load_step_sql(const struct ydoc *doc, const struct ynode *node, char **stmts[],
	      size_t n_stmts[], bool has[], struct dbphase_error *err)
{
	size_t i, j;
	int b, rc;

	if (node->kind != YNODE_MAP)
		return ydoc_errorf(doc, node, err,
				   "'sql' must map backends (all, postgresql, mysql, sqlite) to SQL");
	for (i = 0; i < node->n; i++) {
		const char *key = node->keys[i]->scalar;
		const struct ynode *v = node->items[i];
		int lo, hi;

		if (strcmp(key, "all") == 0) {
			lo = 0;
			hi = DB_BACKEND__COUNT - 1;
		} else if ((b = db_backend_from_name(key)) >= 0) {
			lo = hi = b;
		} else {
			return ydoc_errorf(doc, node->keys[i], err,
					   "unknown backend '%s'; expected all, postgresql, mysql or sqlite",
					   key);
		}
		for (b = lo; b <= hi; b++) {
			/* A backend named on its own wins over "all". */
			if (lo != hi && ynode_get(node, db_backend_name((enum db_backend)b)))
				continue;
			has[b] = true;
			if (v->kind == YNODE_SCALAR) {
				if (ynode_is_null(v))
					continue;
				stmts[b] = xcalloc(1, sizeof(char *));
				stmts[b][0] = xstrdup(v->scalar);
				n_stmts[b] = 1;
			} else if (v->kind == YNODE_SEQ) {
				stmts[b] = xcalloc(v->n ? v->n : 1, sizeof(char *));
				for (j = 0; j < v->n; j++) {
					const char *text;

					if ((rc = ynode_str(doc, v->items[j], "a statement", &text, err)) < 0)
						return rc;
					stmts[b][n_stmts[b]++] = xstrdup(text);
				}
			} else {
				return ydoc_errorf(doc, v, err,
						   "SQL must be a string or a list of strings");
			}
		}
	}
	return 0;
}

static int
load_steps(const struct ydoc *doc, const struct ynode *node, struct catalog_op *op,
	   struct dbphase_error *err)
{
	static const char *const keys[] = { "phase", "when", "reason", "sql", "backfill",
					    "rebuild", "atomic", "undo", "exercise", NULL };
	static const char *const bf_keys[] = { "table", "set", "where", NULL };
	static const char *const rb_keys[] = { "table", "column", "not_null", "default",
					       "drop_default", "undo_default", NULL };
	size_t i;
	int rc;

	if (node == NULL || node->kind != YNODE_SEQ)
		return ydoc_errorf(doc, node ? node : doc->root, err, "'steps' must be a list");
	op->steps = xcalloc(node->n, sizeof(*op->steps));
	for (i = 0; i < node->n; i++) {
		const struct ynode *st = node->items[i], *v;
		struct catalog_step *s = &op->steps[op->n_steps++];
		const char *text;
		int ph;

		s->line = st->line;
		s->atomic = true;
		if (st->kind != YNODE_MAP)
			return ydoc_errorf(doc, st, err, "a step must be a mapping");
		if ((rc = check_keys(doc, st, keys, "a step", err)) < 0)
			return rc;
		v = ynode_get(st, "phase");
		if (v == NULL)
			return ydoc_errorf(doc, st, err, "step has no 'phase'");
		if ((rc = ynode_str(doc, v, "'phase'", &text, err)) < 0)
			return rc;
		if ((ph = phase_from_name(text)) < 0)
			return ydoc_errorf(doc, v, err,
					   "unknown phase '%s'; expected expand, migrate or contract", text);
		s->phase = (enum phase)ph;
		if ((v = ynode_get(st, "when"))) {
			const struct ynode *const *items = v->kind == YNODE_SEQ ?
				(const struct ynode *const *)v->items : &v;
			size_t n = v->kind == YNODE_SEQ ? v->n : 1, k;

			s->when = xcalloc(n ? n : 1, sizeof(char *));
			for (k = 0; k < n; k++) {
				if ((rc = ynode_str(doc, items[k], "'when'", &text, err)) < 0)
					return rc;
				s->when[s->n_when++] = xstrdup(text);
			}
		}
		if ((v = ynode_get(st, "reason"))) {
			if ((rc = ynode_str(doc, v, "'reason'", &text, err)) < 0)
				return rc;
			s->reason = xstrdup(text);
		}
		if ((v = ynode_get(st, "atomic")) &&
		    (rc = ynode_bool(doc, v, "'atomic'", &s->atomic, err)) < 0)
			return rc;
		if (!!ynode_get(st, "sql") + !!ynode_get(st, "backfill") +
		    !!ynode_get(st, "rebuild") > 1)
			return ydoc_errorf(doc, st, err,
					   "a step has one of 'sql', 'backfill' or 'rebuild'");
		if ((v = ynode_get(st, "rebuild"))) {
			const struct ynode *f;

			s->action = STEP_REBUILD;
			if (v->kind != YNODE_MAP)
				return ydoc_errorf(doc, v, err, "'rebuild' must be a mapping");
			if ((rc = check_keys(doc, v, rb_keys, "'rebuild'", err)) < 0)
				return rc;
			if (!ynode_get(v, "table") || !ynode_get(v, "column"))
				return ydoc_errorf(doc, v, err, "'rebuild' needs 'table' and 'column'");
			if ((rc = ynode_str(doc, ynode_get(v, "table"), "'table'", &text, err)) < 0)
				return rc;
			s->rb_table = xstrdup(text);
			if ((rc = ynode_str(doc, ynode_get(v, "column"), "'column'", &text, err)) < 0)
				return rc;
			s->rb_column = xstrdup(text);
			if ((f = ynode_get(v, "not_null")) &&
			    (rc = ynode_str(doc, f, "'not_null'", &text, err)) == 0)
				s->rb_not_null = xstrdup(text);
			if (rc == 0 && (f = ynode_get(v, "default")) &&
			    (rc = ynode_str(doc, f, "'default'", &text, err)) == 0)
				s->rb_default = xstrdup(text);
			if (rc == 0 && (f = ynode_get(v, "drop_default")) &&
			    (rc = ynode_str(doc, f, "'drop_default'", &text, err)) == 0)
				s->rb_drop_default = xstrdup(text);
			if (rc == 0 && (f = ynode_get(v, "undo_default")) &&
			    (rc = ynode_str(doc, f, "'undo_default'", &text, err)) == 0)
				s->rb_undo_default = xstrdup(text);
			if (rc < 0)
				return rc;
		} else if ((v = ynode_get(st, "sql"))) {
			s->action = STEP_SQL;
			if ((rc = load_step_sql(doc, v, s->sql, s->n_sql, s->has_sql, err)) < 0)
				return rc;
			if ((v = ynode_get(st, "exercise"))) {
				if ((rc = ynode_str(doc, v, "'exercise'", &text, err)) < 0)
					return rc;
				s->ex_table = xstrdup(text);
			}
			if ((v = ynode_get(st, "undo"))) {
				if (s->phase != PHASE_EXPAND)
					return ydoc_errorf(doc, v, err, "'undo' is for expand steps: "
							   "downgrade takes back only expand");
				if ((rc = load_step_sql(doc, v, s->undo, s->n_undo, s->has_undo,
							err)) < 0)
					return rc;
			}
		} else if (ynode_get(st, "exercise")) {
			return ydoc_errorf(doc, ynode_get(st, "exercise"), err,
					   "'exercise' is for a step of 'sql' that creates triggers");
		} else if ((v = ynode_get(st, "backfill"))) {
			const struct ynode *f;

			s->action = STEP_BACKFILL;
			if (v->kind != YNODE_MAP)
				return ydoc_errorf(doc, v, err, "'backfill' must be a mapping");
			if ((rc = check_keys(doc, v, bf_keys, "'backfill'", err)) < 0)
				return rc;
			if (!(f = ynode_get(v, "table")) || !ynode_get(v, "set"))
				return ydoc_errorf(doc, v, err, "'backfill' needs 'table' and 'set'");
			if ((rc = ynode_str(doc, f, "'table'", &text, err)) < 0)
				return rc;
			s->bf_table = xstrdup(text);
			if ((rc = ynode_str(doc, ynode_get(v, "set"), "'set'", &text, err)) < 0)
				return rc;
			s->bf_set = xstrdup(text);
			if ((f = ynode_get(v, "where"))) {
				if ((rc = ynode_str(doc, f, "'where'", &text, err)) < 0)
					return rc;
				s->bf_where = xstrdup(text);
			}
		} else {
			return ydoc_errorf(doc, st, err, "step needs 'sql', 'backfill' or 'rebuild'");
		}
	}
	return 0;
}

static int
catalog_parse(struct catalog *cat, const char *name, const char *text,
	      struct dbphase_error *err)
{
	static const char *const keys[] = { "operation", "summary", "params", "steps", NULL };
	struct ydoc doc = { 0 };
	struct catalog_op op = { 0 };
	const struct ynode *v;
	const char *s;
	size_t i, alloc;
	int rc;

	if ((rc = ydoc_load_string(&doc, name, text, strlen(text), err)) < 0)
		return rc;
	if (doc.root == NULL || doc.root->kind != YNODE_MAP) {
		rc = ydoc_errorf(&doc, doc.root, err, "a catalog file must be a mapping");
		goto out;
	}
	if ((rc = check_keys(&doc, doc.root, keys, "a catalog file", err)) < 0)
		goto out;
	if (!(v = ynode_get(doc.root, "operation"))) {
		rc = ydoc_errorf(&doc, doc.root, err, "no 'operation' name");
		goto out;
	}
	if ((rc = ynode_str(&doc, v, "'operation'", &s, err)) < 0)
		goto out;
	op.name = xstrdup(s);
	op.source = xstrdup(name);
	if ((v = ynode_get(doc.root, "summary")) &&
	    (rc = ynode_str(&doc, v, "'summary'", &s, err)) == 0)
		op.summary = xstrdup(s);
	if (rc < 0)
		goto out;
	if ((rc = load_params(&doc, ynode_get(doc.root, "params"), &op, err)) < 0 ||
	    (rc = load_steps(&doc, ynode_get(doc.root, "steps"), &op, err)) < 0)
		goto out;
	/* A later file replaces an operation of the same name. */
	for (i = 0; i < cat->n_ops; i++) {
		if (strcmp(cat->ops[i].name, op.name) == 0) {
			catalog_op_release(&cat->ops[i]);
			cat->ops[i] = op;
			memset(&op, 0, sizeof(op));
			goto out;
		}
	}
	alloc = cat->n_ops;
	XGROW(cat->ops, cat->n_ops, alloc);
	cat->ops[cat->n_ops++] = op;
	memset(&op, 0, sizeof(op));
out:
	catalog_op_release(&op);
	ydoc_release(&doc);
	return rc;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
catalog_load_dir(struct catalog *cat, const char *dir, struct dbphase_error *err)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, alloc = 0, i;
	int rc = 0;

	if (d == NULL)
		return err_setf(err, DBPHASE_EIO, "cannot read '%s'", dir);
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);

		if ((len > 5 && strcmp(de->d_name + len - 5, ".yaml") == 0) ||
		    (len > 4 && strcmp(de->d_name + len - 4, ".yml") == 0)) {
			XGROW(names, n, alloc);
			names[n++] = xstrdup(de->d_name);
		}
	}
	closedir(d);
	qsort(names, n, sizeof(char *), name_cmp);
	for (i = 0; i < n && rc == 0; i++) {
		char *path = xasprintf("%s/%s", dir, names[i]), *text = NULL;

		if ((rc = file_read_all(path, &text, NULL, err)) == 0)
			rc = catalog_parse(cat, path, text, err);
		free(text);
		free(path);
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

int
catalog_load(struct catalog *cat, const char *extra_dir, struct dbphase_error *err)
{
	size_t i;
	int rc;

	memset(cat, 0, sizeof(*cat));
	for (i = 0; i < catalog_builtin_count; i++) {
		rc = catalog_parse(cat, catalog_builtin[i].name, catalog_builtin[i].text, err);
		if (rc < 0)
			goto fail;
	}
	if (extra_dir && (rc = catalog_load_dir(cat, extra_dir, err)) < 0)
		goto fail;
	return 0;
fail:
	catalog_release(cat);
	return rc;
}
