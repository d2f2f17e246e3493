/*
 * core/ydoc.h - a YAML document as a tree of nodes that remember where they
 * were written, so every later complaint can say path:line:column.
 *
 * Built on libyaml's event parser.  Anchors and aliases are refused (a
 * migration file is read by people; it should say what it means in place),
 * and so are duplicate keys in a mapping.
 */
#ifndef DBPHASE_CORE_YDOC_H
#define DBPHASE_CORE_YDOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

enum ynode_kind {
	YNODE_SCALAR,
	YNODE_MAP,
	YNODE_SEQ,
};

struct ynode {
	enum ynode_kind kind;
	int line;		/* 1-based */
	int col;		/* 1-based */
	char *scalar;		/* YNODE_SCALAR: the text; owned */
	bool plain;		/* YNODE_SCALAR: written without quotes */
	/*
	 * YNODE_SEQ: n items.  YNODE_MAP: n pairs, keys[i] -> items[i], in
	 * the order written; keys are scalars.
	 */
	struct ynode **items;
	struct ynode **keys;
	size_t n;
};

struct ydoc {
	char *path;		/* the name errors use; owned */
	struct ynode *root;	/* NULL for an empty document */
};

/*
 * Parse the file at path.  Errors (cannot read, YAML syntax, alias, duplicate
 * key, more than one document) are DBPHASE_EBADINPUT or DBPHASE_EIO with
 * "path:line:column: what is wrong".
 */
int ydoc_load_file(struct ydoc *doc, const char *path, struct dbphase_error *err);

/* Parse text; name stands in for the path in messages. */
int ydoc_load_string(struct ydoc *doc, const char *name, const char *text,
		     size_t len, struct dbphase_error *err);

void ydoc_release(struct ydoc *doc);

/* The value of key in a map node, or NULL (also NULL if map is not a map). */
const struct ynode *ynode_get(const struct ynode *map, const char *key);

/* The key node of the pair holding key (for positions), or NULL. */
const struct ynode *ynode_key(const struct ynode *map, const char *key);

/* Plain scalar "", "~", "null", "Null" or "NULL". */
bool ynode_is_null(const struct ynode *node);

/* Kind name for messages: "a string", "a mapping", "a list". */
const char *ynode_kind_name(const struct ynode *node);

/*
 * Typed reads of a scalar; on failure they set err to
 * "path:line:col: <what> must be <kind>" and return DBPHASE_EBADINPUT.
 * what names the field for the message (e.g. "'nullable'").
 */
int ynode_bool(const struct ydoc *doc, const struct ynode *node, const char *what,
	       bool *out, struct dbphase_error *err);
int ynode_int(const struct ydoc *doc, const struct ynode *node, const char *what,
	      int64_t *out, struct dbphase_error *err);
int ynode_str(const struct ydoc *doc, const struct ynode *node, const char *what,
	      const char **out, struct dbphase_error *err);

/* err = "path:line:col: message" at node (or at line 1 col 1 if node is NULL). */
int ydoc_errorf(const struct ydoc *doc, const struct ynode *node,
		struct dbphase_error *err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
