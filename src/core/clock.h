/*
 * core/clock.h - the monotonic clock and sleeping, for every layer that
 * times a statement, a batch, a lock wait or a backoff.
 */
#ifndef DBPHASE_CORE_CLOCK_H
#define DBPHASE_CORE_CLOCK_H

/* Milliseconds on CLOCK_MONOTONIC (an arbitrary origin): for intervals only. */
double clock_now_ms(void);

/* Seconds on the same clock. */
double clock_now_s(void);

/* Sleep ms milliseconds (nothing for ms <= 0); a signal may end it early. */
void clock_sleep_ms(double ms);

#endif
