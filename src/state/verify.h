/*
 * state/verify.h - proof before contract: every column that the versions
 * about to be contracted derive from another (plan/check.h) is compared
 * with its source, row by row, in chunks by primary key (exec/verify.h).
 * Contract runs it first and refuses on any difference, naming the table,
 * the two sides and the first differing keys; `dbphase verify` runs it on
 * its own.  --skip-verify skips it, with a warning, recorded in history.
 *
 * Which versions: those in (contract, target].  The first of them may have
 * a contract that already started (a step recorded, or on MariaDB a step
 * whose DDL committed before its record, seen as a compared column gone)
 * and dropped what one side reads: its checks are skipped, with a warning,
 * as they ran when that contract started.  In any other version a compared
 * column that is gone is an error.
 */
#ifndef DBPHASE_STATE_VERIFY_H
#define DBPHASE_STATE_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "plan/planner.h"
#include "state/machine.h"
#include "state/state.h"

/* Differing keys named per comparison. */
#define VERIFY_MAX_KEYS 5

struct verify_result {
	const struct plan_check *check;	/* borrowed from the plan */
	uint64_t rows;			/* rows compared */
	unsigned chunks;
	uint64_t differing;		/* rows where the two sides differ */
	char **keys;			/* the first differing keys, "id=42"; owned */
	size_t n_keys;
	char *skipped;			/* why it was not compared, or NULL; owned */
};

struct verify_report {
	int64_t after;			/* versions in (after, upto] */
	int64_t upto;
	struct verify_result *results;
	size_t n;
	size_t n_differ;		/* results with a difference */
};

/*
 * Compare every check of the versions in (after, upto].  Differences are
 * not an error: they are in rep (n_differ).  Emits MACHINE_VERIFY_* events
 * through o->event.  DBPHASE_EINTERRUPTED when stopped by a signal.
 */
int verify_versions(struct state *st, const struct plan *plan, int64_t after, int64_t upto,
		    const struct machine_opts *o, struct verify_report *rep,
		    struct dbphase_error *err);

void verify_report_release(struct verify_report *rep);

/* The differences as one sentence per differing check, '; '-joined; owned. */
char *verify_report_differences(const struct verify_report *rep);

/*
 * The contract gate's part: verify (contract, target], DBPHASE_EREFUSED
 * naming the differences; with o->skip_verify a warning instead, also
 * appended to *forced (for the history).
 */
int verify_gate(struct state *st, const struct plan *plan, const struct state_versions *v,
		int64_t target, const struct machine_opts *o, char **forced,
		struct dbphase_error *err);

#endif
