/*
 * tests/fuzz/fuzz.c - the scratch folder and file writing of fuzz.h.
 */
#include "fuzz.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/xmalloc.h"

static char *scratch;

static int
remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
scratch_remove(void)
{
	nftw(scratch, remove_one, 16, FTW_DEPTH | FTW_PHYS);
	free(scratch);
}

const char *
fuzz_scratch_dir(void)
{
	const char *tmp = getenv("TMPDIR");

	if (scratch == NULL) {
		scratch = xasprintf("%s/dbphase-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
		if (mkdtemp(scratch) == NULL) {
			perror("mkdtemp");
			abort();
		}
		atexit(scratch_remove);
	}
	return scratch;
}

void
fuzz_write_file(const char *dir, const char *relpath, const uint8_t *data, size_t size)
{
	char *path = xasprintf("%s/%s", dir, relpath);
	char *p;
	FILE *f;

	for (p = path + strlen(dir) + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		mkdir(path, 0700);
		*p = '/';
	}
	f = fopen(path, "wb");
	if (f == NULL || (size > 0 && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
		perror(path);
		abort();
	}
	free(path);
}
