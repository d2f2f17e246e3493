/*
 * tests/fuzz/fuzz.h - what the libFuzzer targets share: a scratch folder
 * made once per process, and writing one input into a file in it.
 */
#ifndef DBPHASE_TESTS_FUZZ_H
#define DBPHASE_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A folder of this process's own (removed at exit); never NULL. */
const char *fuzz_scratch_dir(void);

/* Write size bytes to dir/relpath (folders made on the way); aborts on error. */
void fuzz_write_file(const char *dir, const char *relpath, const uint8_t *data, size_t size);

#endif
