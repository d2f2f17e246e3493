/*
 * core/embedded.h - files compiled into the binary (tools/embed.py): the
 * operation catalog (phases/) and dbphase's own DDL (schemas/).
 */
#ifndef DBPHASE_CORE_EMBEDDED_H
#define DBPHASE_CORE_EMBEDDED_H

#include <stddef.h>

struct embedded_file {
	const char *name;	/* "phases/add_column.yaml" */
	const char *text;
};

/* The file of that name in a table of n entries, or NULL. */
const struct embedded_file *embedded_find(const struct embedded_file *files, size_t n,
					  const char *name);

#endif
