/* hist.c - log-linear latency histogram (see hist.h). */
#include "hist.h"

#include <string.h>

void hist_reset(struct hist *h)
{
    memset(h, 0, sizeof *h);
}

/* The lowest value of bucket i and its width. */
static uint64_t bucket_low(unsigned i, uint64_t *width)
{
    if (i < 2 * HIST_SUB) {
        *width = 1;
        return i;
    }
    unsigned e = (i - 2 * HIST_SUB) / HIST_SUB + 7, sub = (i - 2 * HIST_SUB) % HIST_SUB;
    unsigned shift = e - 6;
    *width = 1ull << shift;
    return (uint64_t)(HIST_SUB + sub) << shift;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
    if (!h->count)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t w, lo = bucket_low(i, &w);
            uint64_t mid = lo + w / 2;
            return mid < h->max ? mid : h->max;
        }
    }
    return h->max;
}
