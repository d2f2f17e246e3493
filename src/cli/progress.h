/*
 * cli/progress.h - live progress of the migrate phase's running steps: on a
 * terminal one bar per step (table, rows done of the estimate, rate, ETA),
 * redrawn in place on stderr; otherwise a line per running step every 5
 * seconds.  (JSON lines come from the event printer instead.)
 */
#ifndef DBPHASE_CLI_PROGRESS_H
#define DBPHASE_CLI_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct progress_bar {
	char *id;		/* "v003.migrate.1"; owned */
	char *table;		/* owned */
	uint64_t done;
	uint64_t total;
	double started;		/* seconds, monotonic */
};

struct progress {
	bool tty;
	struct progress_bar *bars;
	size_t n;
	size_t alloc;
	int drawn;		/* lines of bars on screen */
	double last_line;	/* when the last non-terminal lines were printed */
};

void progress_init(struct progress *p, bool tty);
void progress_release(struct progress *p);

/* A step starts, moves, finishes. */
void progress_start(struct progress *p, const char *id, const char *table);
void progress_update(struct progress *p, const char *id, uint64_t done, uint64_t total);
void progress_finish(struct progress *p, const char *id);

/* Take the bars off the screen before printing something else. */
void progress_clear(struct progress *p);

#endif
