/*
 * tests/fuzz/fuzz-url.c - libFuzzer target for the database URL parser
 * (core/url.c, its public functions only): the input, as a C string, is
 * parsed and masked; a failure has a message, and nothing crashes or leaks.
 */
#include <stdlib.h>
#include <string.h>

#include "core/url.h"
#include "core/xmalloc.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	struct db_url url;
	char *text = xstrndup((const char *)data, size);
	char *masked;

	if (db_url_parse(text, &url, &err) == 0)
		db_url_release(&url);
	else if (err.message == NULL)
		abort();
	masked = db_url_mask(text);
	free(masked);
	err_release(&err);
	free(text);
	return 0;
}
