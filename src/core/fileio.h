/*
 * core/fileio.h - reading a whole file into memory.
 */
#ifndef DBPHASE_CORE_FILEIO_H
#define DBPHASE_CORE_FILEIO_H

#include <stddef.h>

#include "core/error.h"

/*
 * Read the file at path: *out is NUL-terminated, *len its length (may be
 * NULL), and the caller frees *out.  On failure DBPHASE_EIO with
 * "cannot read 'path': reason", and errno still says why.
 */
int file_read_all(const char *path, char **out, size_t *len, struct dbphase_error *err);

#endif
