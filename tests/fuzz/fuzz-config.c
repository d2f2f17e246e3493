/*
 * tests/fuzz/fuzz-config.c - libFuzzer target for the INI reader
 * (core/config.c): the input is a config file as oslo.config would read
 * it; it loads or fails with a message, never crashes or leaks.
 */
#include <stdlib.h>

#include "core/config.h"
#include "core/xmalloc.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct dbphase_config cfg;
	const char *dir = fuzz_scratch_dir();
	char *path = xasprintf("%s/fuzz.conf", dir);

	fuzz_write_file(dir, "fuzz.conf", data, size);
	config_init(&cfg);
	if (config_load_file(&cfg, path, &err) < 0 && err.message == NULL)
		abort();
	config_release(&cfg);
	err_release(&err);
	free(path);
	return 0;
}
