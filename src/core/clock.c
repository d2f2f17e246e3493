/*
 * core/clock.c - the monotonic clock and sleeping (core/clock.h).
 */
#include "core/clock.h"

#include <time.h>

double
clock_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

double
clock_now_s(void)
{
	return clock_now_ms() / 1000.0;
}

void
clock_sleep_ms(double ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)((ms - (double)ts.tv_sec * 1000) * 1e6);
	nanosleep(&ts, NULL);
}
