/* hist.h - fixed-bucket histograms for /metrics: observing is a few compares and two
 * additions; metrics.c writes the buckets cumulative, in seconds, as Prometheus
 * expects. Leaf module. */
#ifndef MW_HIST_H
#define MW_HIST_H

#include <stdint.h>

#define MW_HIST_MAX 16

/* Upper bounds of the buckets, ascending, in seconds (the +Inf bucket is implied). */
struct mw_hist_le {
    int n;
    double le[MW_HIST_MAX];
};

struct mw_hist {
    uint64_t counts[MW_HIST_MAX + 1]; /* per bucket, not cumulative; [n]: above the last */
    double sum;                        /* of every observation, in seconds */
};

static inline void mw_hist_observe(struct mw_hist *h, const struct mw_hist_le *le, double secs)
{
    int b = 0;
    while (b < le->n && secs > le->le[b])
        b++;
    h->counts[b]++;
    h->sum += secs;
}

#endif
