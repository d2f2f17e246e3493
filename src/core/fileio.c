/*
 * core/fileio.c - reading a whole file into memory, for the loaders.
 */
#include "core/fileio.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/strbuf.h"

int
file_read_all(const char *path, char **out, size_t *len, struct dbphase_error *err)
{
	struct strbuf sb = STRBUF_INIT;
	FILE *f = fopen(path, "rb");
	size_t n;
	int saved, rc = 0;

	*out = NULL;
	if (f == NULL) {
		saved = errno;
		err_setf(err, DBPHASE_EIO, "cannot read '%s': %s", path, strerror(saved));
		errno = saved;
		return DBPHASE_EIO;
	}
	do {
		strbuf_grow(&sb, 8192);
		n = fread(sb.buf + sb.len, 1, sb.alloc - sb.len - 1, f);
		strbuf_setlen(&sb, sb.len + n);
	} while (n > 0);
	if (ferror(f)) {
		saved = errno ? errno : EIO;
		rc = err_setf(err, DBPHASE_EIO, "cannot read '%s': %s", path, strerror(saved));
		strbuf_release(&sb);
		fclose(f);
		errno = saved;
		return rc;
	}
	fclose(f);
	if (len)
		*len = sb.len;
	*out = strbuf_detach(&sb);
	return 0;
}
