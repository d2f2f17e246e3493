/*
 * core/embedded.c - lookup in the tables of embedded files.
 */
#include "core/embedded.h"

#include <string.h>

const struct embedded_file *
embedded_find(const struct embedded_file *files, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(files[i].name, name) == 0)
			return &files[i];
	return NULL;
}
