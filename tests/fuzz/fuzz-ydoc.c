/*
 * tests/fuzz/fuzz-ydoc.c - libFuzzer target for the YAML loader
 * (core/ydoc.c): any bytes must load or fail with a message, never crash,
 * leak or take quadratic time; every node of a loaded tree is then read
 * through the typed accessors and the lookups.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/ydoc.h"
#include "fuzz.h"

static void
walk(const struct ydoc *doc, const struct ynode *node, int depth)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	const char *s;
	int64_t i;
	bool b;
	size_t k;

	if (node == NULL || depth > 300)
		return;
	ynode_bool(doc, node, "'x'", &b, &err);
	ynode_int(doc, node, "'x'", &i, &err);
	ynode_str(doc, node, "'x'", &s, &err);
	(void)ynode_kind_name(node);
	err_release(&err);
	for (k = 0; k < node->n; k++) {
		if (node->kind == YNODE_MAP) {
			walk(doc, node->keys[k], depth + 1);
			(void)ynode_get(node, node->keys[k]->scalar);
		}
		walk(doc, node->items[k], depth + 1);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct ydoc doc;

	if (ydoc_load_string(&doc, "fuzz.yaml", (const char *)data, size, &err) == 0) {
		walk(&doc, doc.root, 0);
		ydoc_release(&doc);
	} else if (err.message == NULL) {
		abort();	/* every failure says why */
	}
	err_release(&err);
	return 0;
}
