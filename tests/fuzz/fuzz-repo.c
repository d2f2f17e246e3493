/*
 * tests/fuzz/fuzz-repo.c - libFuzzer target for the repository loader
 * (core/repo.c) and the planner behind it: the input is the second
 * migration of a small repository whose first creates a table, and it is
 * loaded, then planned for each backend.  Loading or planning may refuse
 * it, with a message; nothing may crash or leak.
 */
#include <stdlib.h>

#include "core/repo.h"
#include "fuzz.h"
#include "plan/catalog.h"
#include "plan/planner.h"

static const char first[] =
	"operations:\n"
	"  - create_table:\n"
	"      name: items\n"
	"      columns:\n"
	"        - {name: id, type: bigint, primary_key: true}\n"
	"        - {name: name, type: \"varchar(100)\"}\n"
	"        - {name: n, type: integer, nullable: false, default: 0}\n";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct catalog cat;
	static int have_cat;
	struct dbphase_error err = DBPHASE_ERROR_INIT;
	const char *dir = fuzz_scratch_dir();
	struct repo repo;
	int b;

	if (!have_cat) {
		if (catalog_load(&cat, NULL, &err) < 0)
			abort();
		have_cat = 1;
		fuzz_write_file(dir, "versions/001_first.yaml", (const uint8_t *)first,
				sizeof(first) - 1);
	}
	fuzz_write_file(dir, "versions/002_fuzz.yaml", data, size);
	if (repo_load(&repo, dir, NULL, &err) < 0) {
		if (err.message == NULL)
			abort();
		err_release(&err);
		return 0;
	}
	for (b = 0; b < DB_BACKEND__COUNT; b++) {
		struct plan plan;

		if (plan_build(&plan, &repo, &cat, (enum db_backend)b, &err) == 0)
			plan_release(&plan);
		else if (err.message == NULL)
			abort();
		err_release(&err);
	}
	repo_release(&repo);
	return 0;
}
