/*
 * core/ydoc.c - build a position-carrying node tree from libyaml's events.
 *
 * Design: libyaml's event parser hands us start/end events for mappings and
 * sequences and one event per scalar or alias.  We keep our own stack of
 * open containers on the heap (never the C stack), attach every node to its
 * parent the moment it starts, so that on any error the whole partial tree
 * is reachable from doc->root and one recursive free releases it.  Each
 * container frame remembers, for a mapping, the key waiting for its value.
 *
 * Refused, with the position of the offending token:
 *   - aliases (at the alias) and anchors (at the anchor, when no alias used
 *     it first): a migration file says what it means in place;
 *   - a key that is not a scalar, and a key written twice in one mapping
 *     (at the second, naming the line of the first; checked when the
 *     mapping ends, by sorting its keys, so that a mapping of n keys costs
 *     n log n comparisons whatever the keys are);
 *   - a second document in the stream;
 *   - a string holding a NUL character (C strings would silently cut it);
 *   - nesting deeper than YDOC_MAX_DEPTH (keeps every recursive walk of
 *     the tree, here and in the planner, safe on hostile input).
 * libyaml's marks are 0-based; ynode line/col are 1-based.  Messages quote
 * names and values through core/excerpt.h, so their length is bounded.
 */
#include "core/ydoc.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/excerpt.h"
#include "core/fileio.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"

#define YDOC_MAX_DEPTH 256

struct ydoc_frame {
	struct ynode *node;
	struct ynode *pending_key;	/* MAP: key read, value not yet; owned */
	size_t items_alloc;
	size_t keys_alloc;
};

struct ydoc_builder {
	struct ydoc *doc;
	struct ydoc_frame *stack;
	size_t depth;
	size_t stack_alloc;
	int n_documents;
	/* The first anchor seen, reported if no alias is met before the end. */
	char *anchor;
	int anchor_line;
	int anchor_col;
};

static void
ynode_free(struct ynode *node)
{
	size_t i;

	if (node == NULL)
		return;
	for (i = 0; i < node->n; i++) {
		ynode_free(node->items[i]);
		if (node->keys)
			ynode_free(node->keys[i]);
	}
	free(node->items);
	free(node->keys);
	free(node->scalar);
	free(node);
}

static struct ynode *
ynode_new(enum ynode_kind kind, yaml_mark_t mark)
{
	struct ynode *node = XNEW(struct ynode);

	node->kind = kind;
	node->line = mark.line >= (size_t)INT_MAX ? INT_MAX : (int)mark.line + 1;
	node->col = mark.column >= (size_t)INT_MAX ? INT_MAX : (int)mark.column + 1;
	return node;
}

static int
ydoc_verror_at(const struct ydoc *doc, int line, int col,
	       struct dbphase_error *err, const char *fmt, va_list ap)
	__attribute__((format(printf, 5, 0)));

static int
ydoc_verror_at(const struct ydoc *doc, int line, int col,
	       struct dbphase_error *err, const char *fmt, va_list ap)
{
	char *msg = xvasprintf(fmt, ap);

	err_setf(err, DBPHASE_EBADINPUT, "%s:%d:%d: %s", doc->path, line, col, msg);
	free(msg);
	return DBPHASE_EBADINPUT;
}

static int
ydoc_error_at(const struct ydoc *doc, int line, int col,
	      struct dbphase_error *err, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int
ydoc_error_at(const struct ydoc *doc, int line, int col,
	      struct dbphase_error *err, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = ydoc_verror_at(doc, line, col, err, fmt, ap);
	va_end(ap);
	return rc;
}

int
ydoc_errorf(const struct ydoc *doc, const struct ynode *node,
	    struct dbphase_error *err, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = ydoc_verror_at(doc, node ? node->line : 1, node ? node->col : 1, err, fmt, ap);
	va_end(ap);
	return rc;
}

/* 1-based line and column of byte offset off in text (for reader errors). */
static void
offset_position(const char *text, size_t len, size_t off, int *line, int *col)
{
	size_t i;

	*line = 1;
	*col = 1;
	for (i = 0; i < off && i < len; i++) {
		if (text[i] == '\n') {
			(*line)++;
			*col = 1;
		} else if (((unsigned char)text[i] & 0xc0) != 0x80) {
			(*col)++;
		}
	}
}

static int
parser_error(const struct ydoc *doc, const yaml_parser_t *parser,
	     const char *text, size_t len, struct dbphase_error *err)
{
	const char *problem = parser->problem ? parser->problem : "cannot parse YAML";
	int line, col;

	switch (parser->error) {
	case YAML_MEMORY_ERROR:
		return err_setf(err, DBPHASE_EERROR, "%s: out of memory while parsing YAML",
				doc->path);
	case YAML_READER_ERROR:
		offset_position(text, len, parser->problem_offset, &line, &col);
		if (parser->problem_value != -1)
			return ydoc_error_at(doc, line, col, err, "%s (byte 0x%02X)",
					     problem, (unsigned)parser->problem_value & 0xffu);
		return ydoc_error_at(doc, line, col, err, "%s", problem);
	default:
		break;
	}
	line = (int)parser->problem_mark.line + 1;
	col = (int)parser->problem_mark.column + 1;
	if (parser->context)
		return ydoc_error_at(doc, line, col, err, "%s (%s at line %d, column %d)",
				     problem, parser->context,
				     (int)parser->context_mark.line + 1,
				     (int)parser->context_mark.column + 1);
	return ydoc_error_at(doc, line, col, err, "%s", problem);
}

/*
 * Note the anchor of a node; anchors are refused at the end of the document
 * unless an alias (reported at the alias) comes first.
 */
static void
note_anchor(struct ydoc_builder *b, const yaml_char_t *anchor, yaml_mark_t mark)
{
	if (anchor == NULL || b->anchor != NULL)
		return;
	b->anchor = xstrdup((const char *)anchor);
	b->anchor_line = (int)mark.line + 1;
	b->anchor_col = (int)mark.column + 1;
}

/*
 * Attach node to the innermost open container (or make it the root).  Takes
 * ownership of node in every case.
 */
static int
attach(struct ydoc_builder *b, struct ynode *node, struct dbphase_error *err)
{
	struct ydoc_frame *f;
	struct ynode *parent;

	if (b->depth == 0) {
		b->doc->root = node;
		return 0;
	}
	f = &b->stack[b->depth - 1];
	parent = f->node;
	if (parent->kind == YNODE_SEQ) {
		XGROW(parent->items, parent->n, f->items_alloc);
		parent->items[parent->n++] = node;
		return 0;
	}
	if (f->pending_key == NULL) {
		if (node->kind != YNODE_SCALAR) {
			ydoc_errorf(b->doc, node, err,
				    "a mapping key must be a string, not %s",
				    ynode_kind_name(node));
			ynode_free(node);
			return DBPHASE_EBADINPUT;
		}
		f->pending_key = node;
		return 0;
	}
	XGROW(parent->items, parent->n, f->items_alloc);
	XGROW(parent->keys, parent->n, f->keys_alloc);
	parent->keys[parent->n] = f->pending_key;
	parent->items[parent->n] = node;
	parent->n++;
	f->pending_key = NULL;
	return 0;
}

/* A key of a mapping and where it was written among the mapping's keys. */
struct ydoc_key_ref {
	const struct ynode *key;
	size_t index;
};

static int
cmp_key_ref(const void *a, const void *b)
{
	const struct ydoc_key_ref *x = a, *y = b;
	int c = strcmp(x->key->scalar, y->key->scalar);

	if (c != 0)
		return c;
	return x->index < y->index ? -1 : x->index > y->index;
}

/*
 * Refuse a key written twice in map, at the earliest second writing, naming
 * the line of the first.  Sorting the keys (equal keys in the order
 * written) puts every repeat right after the key it repeats.
 */
static int
check_duplicate_keys(struct ydoc_builder *b, const struct ynode *map,
		     struct dbphase_error *err)
{
	struct ydoc_key_ref *refs;
	const struct ydoc_key_ref *first = NULL, *again = NULL;
	size_t i;

	if (map->n < 2)
		return 0;
	refs = xcalloc(map->n, sizeof(*refs));
	for (i = 0; i < map->n; i++) {
		refs[i].key = map->keys[i];
		refs[i].index = i;
	}
	qsort(refs, map->n, sizeof(*refs), cmp_key_ref);
	for (i = 1; i < map->n; i++) {
		if (strcmp(refs[i - 1].key->scalar, refs[i].key->scalar) != 0)
			continue;
		if (i >= 2 && strcmp(refs[i - 2].key->scalar, refs[i].key->scalar) == 0)
			continue;	/* a third writing: the second is earlier */
		if (again == NULL || refs[i].index < again->index) {
			first = &refs[i - 1];
			again = &refs[i];
		}
	}
	if (again != NULL)
		ydoc_errorf(b->doc, again->key, err,
			    "duplicate key '" EXCERPT_FMT "' (first written at line %d)",
			    EXCERPT(again->key->scalar), first->key->line);
	free(refs);
	return again != NULL ? DBPHASE_EBADINPUT : 0;
}

/* A new mapping or sequence: attach it, then open it. */
static int
open_container(struct ydoc_builder *b, enum ynode_kind kind, yaml_mark_t mark,
	       struct dbphase_error *err)
{
	struct ynode *node = ynode_new(kind, mark);
	struct ydoc_frame *f;
	int rc;

	if (b->depth >= YDOC_MAX_DEPTH) {
		ynode_free(node);
		return ydoc_error_at(b->doc, (int)mark.line + 1, (int)mark.column + 1, err,
				     "nested deeper than %d levels", YDOC_MAX_DEPTH);
	}
	if ((rc = attach(b, node, err)) < 0)
		return rc;
	XGROW(b->stack, b->depth, b->stack_alloc);
	f = &b->stack[b->depth++];
	memset(f, 0, sizeof(*f));
	f->node = node;
	return 0;
}

static int
add_scalar(struct ydoc_builder *b, const yaml_event_t *ev, struct dbphase_error *err)
{
	const char *value = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	struct ynode *node;

	if (memchr(value, '\0', len) != NULL)
		return ydoc_error_at(b->doc, (int)ev->start_mark.line + 1,
				     (int)ev->start_mark.column + 1, err,
				     "a string may not contain a NUL character");
	node = ynode_new(YNODE_SCALAR, ev->start_mark);
	node->scalar = xstrndup(value, len);
	node->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
		      ev->data.scalar.tag == NULL;
	return attach(b, node, err);
}

static int
handle_event(struct ydoc_builder *b, const yaml_event_t *ev, struct dbphase_error *err)
{
	int line = (int)ev->start_mark.line + 1;
	int col = (int)ev->start_mark.column + 1;
	struct ydoc_frame *f;
	const char *alias;

	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (++b->n_documents > 1)
			return ydoc_error_at(b->doc, line, col, err,
					     "a second document; the file must hold exactly one");
		return 0;
	case YAML_DOCUMENT_END_EVENT:
		if (b->anchor != NULL)
			return ydoc_error_at(b->doc, b->anchor_line, b->anchor_col, err,
					     "anchor '&" EXCERPT_FMT "' is not allowed; write"
					     " the value in place", EXCERPT(b->anchor));
		return 0;
	case YAML_ALIAS_EVENT:
		alias = (const char *)ev->data.alias.anchor;
		if (b->anchor != NULL && strcmp(b->anchor, alias) == 0)
			return ydoc_error_at(b->doc, line, col, err,
					     "alias '*" EXCERPT_FMT "' is not allowed; write the"
					     " value in place (anchor at line %d)",
					     EXCERPT(alias), b->anchor_line);
		return ydoc_error_at(b->doc, line, col, err,
				     "alias '*" EXCERPT_FMT "' is not allowed; write the value"
				     " in place", EXCERPT(alias));
	case YAML_SCALAR_EVENT:
		note_anchor(b, ev->data.scalar.anchor, ev->start_mark);
		return add_scalar(b, ev, err);
	case YAML_SEQUENCE_START_EVENT:
		note_anchor(b, ev->data.sequence_start.anchor, ev->start_mark);
		return open_container(b, YNODE_SEQ, ev->start_mark, err);
	case YAML_MAPPING_START_EVENT:
		note_anchor(b, ev->data.mapping_start.anchor, ev->start_mark);
		return open_container(b, YNODE_MAP, ev->start_mark, err);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		if (b->depth == 0)
			return 0;	/* cannot happen: libyaml balances them */
		f = &b->stack[--b->depth];
		ynode_free(f->pending_key);	/* cannot happen either */
		f->pending_key = NULL;
		if (f->node->kind == YNODE_MAP)
			return check_duplicate_keys(b, f->node, err);
		return 0;
	case YAML_NO_EVENT:
	case YAML_STREAM_START_EVENT:
	case YAML_STREAM_END_EVENT:
		return 0;
	}
	return 0;
}

int
ydoc_load_string(struct ydoc *doc, const char *name, const char *text,
		 size_t len, struct dbphase_error *err)
{
	struct ydoc_builder b;
	yaml_parser_t parser;
	yaml_event_t ev;
	bool done = false;
	size_t i;
	int rc = 0;

	doc->path = xstrdup(name);
	doc->root = NULL;
	memset(&b, 0, sizeof(b));
	b.doc = doc;
	if (!yaml_parser_initialize(&parser)) {
		rc = err_setf(err, DBPHASE_EERROR, "%s: cannot start the YAML parser", name);
		goto out;
	}
	if (text == NULL)
		len = 0;
	yaml_parser_set_input_string(&parser, (const unsigned char *)(text ? text : ""), len);
	while (!done) {
		if (!yaml_parser_parse(&parser, &ev)) {
			rc = parser_error(doc, &parser, text, len, err);
			break;
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		rc = handle_event(&b, &ev, err);
		yaml_event_delete(&ev);
		if (rc < 0)
			break;
	}
	yaml_parser_delete(&parser);
out:
	for (i = 0; i < b.depth; i++)
		ynode_free(b.stack[i].pending_key);
	free(b.stack);
	free(b.anchor);
	if (rc < 0)
		ydoc_release(doc);
	return rc;
}

int
ydoc_load_file(struct ydoc *doc, const char *path, struct dbphase_error *err)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	doc->path = NULL;
	doc->root = NULL;
	if ((rc = file_read_all(path, &text, &len, err)) < 0)
		return rc;
	rc = ydoc_load_string(doc, path, text, len, err);
	free(text);
	return rc;
}

void
ydoc_release(struct ydoc *doc)
{
	if (doc == NULL)
		return;
	ynode_free(doc->root);
	free(doc->path);
	doc->root = NULL;
	doc->path = NULL;
}

const struct ynode *
ynode_key(const struct ynode *map, const char *key)
{
	size_t i;

	if (map == NULL || map->kind != YNODE_MAP)
		return NULL;
	for (i = 0; i < map->n; i++)
		if (strcmp(map->keys[i]->scalar, key) == 0)
			return map->keys[i];
	return NULL;
}

const struct ynode *
ynode_get(const struct ynode *map, const char *key)
{
	size_t i;

	if (map == NULL || map->kind != YNODE_MAP)
		return NULL;
	for (i = 0; i < map->n; i++)
		if (strcmp(map->keys[i]->scalar, key) == 0)
			return map->items[i];
	return NULL;
}

bool
ynode_is_null(const struct ynode *node)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };
	size_t i;

	if (node == NULL || node->kind != YNODE_SCALAR || !node->plain)
		return false;
	for (i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
		if (strcmp(node->scalar, nulls[i]) == 0)
			return true;
	return false;
}

const char *
ynode_kind_name(const struct ynode *node)
{
	if (node == NULL)
		return "nothing";
	switch (node->kind) {
	case YNODE_SCALAR:
		return ynode_is_null(node) ? "null" : "a string";
	case YNODE_MAP:
		return "a mapping";
	case YNODE_SEQ:
		return "a list";
	}
	return "unknown";
}

/*
 * Describe what was found, for "must be X, not Y": a scalar is quoted,
 * anything else is its kind name.  Returns an allocated string.
 */
static char *
found_text(const struct ynode *node)
{
	if (node != NULL && node->kind == YNODE_SCALAR && !ynode_is_null(node))
		return xasprintf("'" EXCERPT_FMT "'", EXCERPT(node->scalar));
	return xstrdup(ynode_kind_name(node));
}

static int
type_error(const struct ydoc *doc, const struct ynode *node, const char *what,
	   const char *kind, struct dbphase_error *err)
{
	char *found = found_text(node);

	ydoc_errorf(doc, node, err, "%s must be %s, not %s", what, kind, found);
	free(found);
	return DBPHASE_EBADINPUT;
}

int
ynode_bool(const struct ydoc *doc, const struct ynode *node, const char *what,
	   bool *out, struct dbphase_error *err)
{
	static const struct {
		const char *text;
		bool value;
	} words[] = {
		{ "true", true }, { "True", true }, { "TRUE", true },
		{ "yes", true }, { "Yes", true }, { "YES", true },
		{ "false", false }, { "False", false }, { "FALSE", false },
		{ "no", false }, { "No", false }, { "NO", false },
	};
	size_t i;

	if (node != NULL && node->kind == YNODE_SCALAR && node->plain) {
		for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
			if (strcmp(node->scalar, words[i].text) == 0) {
				*out = words[i].value;
				return 0;
			}
		}
	}
	return type_error(doc, node, what, "true or false", err);
}

int
ynode_int(const struct ydoc *doc, const struct ynode *node, const char *what,
	  int64_t *out, struct dbphase_error *err)
{
	const char *s;
	bool negative = false;
	uint64_t limit, v = 0;
	unsigned digit;

	if (node == NULL || node->kind != YNODE_SCALAR || !node->plain)
		return type_error(doc, node, what, "an integer", err);
	s = node->scalar;
	if (*s == '-' || *s == '+')
		negative = *s++ == '-';
	if (*s == '\0')
		return type_error(doc, node, what, "an integer", err);
	limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return type_error(doc, node, what, "an integer", err);
		digit = (unsigned)(*s - '0');
		if (v > (limit - digit) / 10)
			return ydoc_errorf(doc, node, err,
					   "%s must be an integer from %" PRId64 " to %" PRId64
					   ", not '" EXCERPT_FMT "'", what, INT64_MIN, INT64_MAX,
					   EXCERPT(node->scalar));
		v = v * 10 + digit;
	}
	if (negative)
		*out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	else
		*out = (int64_t)v;
	return 0;
}

int
ynode_str(const struct ydoc *doc, const struct ynode *node, const char *what,
	  const char **out, struct dbphase_error *err)
{
	if (node == NULL || node->kind != YNODE_SCALAR)
		return type_error(doc, node, what, "a string", err);
	*out = node->scalar;
	return 0;
}
