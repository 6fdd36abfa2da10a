/* clock.h - the generator's time: nanoseconds of CLOCK_MONOTONIC since the first call
 * (small enough to travel in JSON as an exact integer), and the conversion of the
 * kernel's real-time receive timestamps onto that scale. Leaf module. */
#ifndef MWB_CLOCK_H
#define MWB_CLOCK_H

#include <stdint.h>
#include <time.h>

uint64_t now_ns(void);
/* Re-reads the real-time minus monotonic offset when it is over 100 ms old. */
void clock_refresh(void);
/* A CLOCK_REALTIME timestamp on now_ns()'s scale, at most `now`. */
uint64_t clock_from_realtime(const struct timespec *ts, uint64_t now);

#endif
