/* clock.c - monotonic time since start, and real-time stamps converted to it. */
#include "clock.h"

static uint64_t base;         /* CLOCK_MONOTONIC ns at the first call, minus one */
static int64_t rt_offset_ns;  /* CLOCK_REALTIME - CLOCK_MONOTONIC */
static uint64_t rt_offset_at;

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t t = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    if (!base)
        base = t - 1;
    return t - base;
}

/* Refreshed often: NTP may slew the real-time clock during a run. */
void clock_refresh(void)
{
    struct timespec rt, mono;
    uint64_t now = now_ns();
    if (rt_offset_at && now - rt_offset_at < 100000000)
        return;
    clock_gettime(CLOCK_MONOTONIC, &mono);
    clock_gettime(CLOCK_REALTIME, &rt);
    rt_offset_ns = ((int64_t)rt.tv_sec - mono.tv_sec) * 1000000000 + (rt.tv_nsec - mono.tv_nsec);
    rt_offset_at = now;
}

uint64_t clock_from_realtime(const struct timespec *ts, uint64_t now)
{
    int64_t mono = (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec - rt_offset_ns;
    int64_t t = mono - (int64_t)base;
    return t > 0 && (uint64_t)t <= now ? (uint64_t)t : now;
}
