/*
 * cli/progress.c - progress bars and periodic progress lines.
 */
#include "cli/progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/xmalloc.h"

#define BAR_WIDTH 24

void
progress_init(struct progress *p, bool tty)
{
	memset(p, 0, sizeof(*p));
	p->tty = tty;
}

void
progress_release(struct progress *p)
{
	size_t i;

	progress_clear(p);
	for (i = 0; i < p->n; i++) {
		free(p->bars[i].id);
		free(p->bars[i].table);
	}
	free(p->bars);
	memset(p, 0, sizeof(*p));
}

static struct progress_bar *
find(struct progress *p, const char *id)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (strcmp(p->bars[i].id, id) == 0)
			return &p->bars[i];
	return NULL;
}

/* "1m05s", "12s", "--" for an ETA. */
static void
format_eta(double s, char *buf, size_t n)
{
	if (s < 0 || s > 360000)
		snprintf(buf, n, "--");
	else if (s >= 60)
		snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
	else
		snprintf(buf, n, "%ds", (int)s);
}

static void
describe(const struct progress_bar *b, double now, bool bar, FILE *f)
{
	double elapsed = now - b->started, rate = elapsed > 0 ? (double)b->done / elapsed : 0;
	double frac = b->total ? (double)b->done / (double)b->total : 0;
	char eta[16];

	if (frac > 1)
		frac = 1;
	format_eta(rate > 0 && b->total > b->done ? (double)(b->total - b->done) / rate :
		   b->total ? 0 : -1, eta, sizeof(eta));
	if (b->total == 0 && b->done == 0) {
		/* A statement, not a walk over rows: how long it has run. */
		fprintf(f, bar ? "  %-16s %-16.16s running for %.0f s\033[K\n" :
			"  %s %s: running for %.0f s\n", b->id, b->table, elapsed);
		return;
	}
	if (bar) {
		int filled = (int)(frac * BAR_WIDTH);

		fprintf(f, "  %-16s %-16.16s [%.*s%*s] %llu/~%llu rows %7.0f rows/s ETA %s\033[K\n",
			b->id, b->table, filled, "########################", BAR_WIDTH - filled, "",
			(unsigned long long)b->done, (unsigned long long)b->total, rate, eta);
	} else {
		fprintf(f, "  %s %s: %llu of ~%llu rows (%.0f%%), %.0f rows/s, ETA %s\n", b->id,
			b->table, (unsigned long long)b->done, (unsigned long long)b->total,
			frac * 100, rate, eta);
	}
}

void
progress_clear(struct progress *p)
{
	if (p->tty && p->drawn > 0) {
		fprintf(stderr, "\033[%dA\033[J", p->drawn);
		fflush(stderr);
	}
	p->drawn = 0;
}

static void
redraw(struct progress *p)
{
	double now = clock_now_s();
	size_t i;

	if (p->tty) {
		progress_clear(p);
		for (i = 0; i < p->n; i++)
			describe(&p->bars[i], now, true, stderr);
		p->drawn = (int)p->n;
		fflush(stderr);
		return;
	}
	if (now - p->last_line < 5)
		return;
	for (i = 0; i < p->n; i++)
		describe(&p->bars[i], now, false, stderr);
	p->last_line = now;
}

void
progress_start(struct progress *p, const char *id, const char *table)
{
	struct progress_bar *b;

	if (find(p, id))
		return;
	XGROW(p->bars, p->n, p->alloc);
	b = &p->bars[p->n++];
	b->id = xstrdup(id);
	b->table = xstrdup(table ? table : "");
	b->done = b->total = 0;
	b->started = clock_now_s();
	if (p->last_line == 0)
		p->last_line = b->started;	/* the first line comes after 5 seconds */
}

void
progress_update(struct progress *p, const char *id, uint64_t done, uint64_t total)
{
	struct progress_bar *b = find(p, id);

	if (b == NULL)
		return;
	b->done = done;
	b->total = total > done ? total : done;
	redraw(p);
}

void
progress_finish(struct progress *p, const char *id)
{
	struct progress_bar *b = find(p, id);
	size_t i;

	if (b == NULL)
		return;
	progress_clear(p);
	i = (size_t)(b - p->bars);
	free(b->id);
	free(b->table);
	memmove(&p->bars[i], &p->bars[i + 1], (p->n - i - 1) * sizeof(*b));
	p->n--;
}
