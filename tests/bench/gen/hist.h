/* hist.h - a latency histogram with ~1.6 % resolution (64 sub-buckets per power of
 * two, exact below 128 ns), constant memory, O(1) record. Leaf module. */
#ifndef MWB_HIST_H
#define MWB_HIST_H

#include <stdint.h>

#define HIST_SUB 64
#define HIST_BUCKETS (2 * HIST_SUB + 40 * HIST_SUB)

struct hist {
    uint64_t count, max, sum;
    uint64_t b[HIST_BUCKETS];
};

void hist_reset(struct hist *h);

/* Bucket of v: exact below 128, then 64 per power of two (the top 7 bits). */
static inline unsigned hist__bucket(uint64_t v)
{
    if (v < 2 * HIST_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* v in [2^e, 2^(e+1)), e >= 7 */
    unsigned idx = 2 * HIST_SUB + (e - 7) * HIST_SUB + (unsigned)((v >> (e - 6)) - HIST_SUB);
    return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

/* Records v (inline: it runs for every delivery). */
static inline void hist_add(struct hist *h, uint64_t v)
{
    h->b[hist__bucket(v)]++;
    h->count++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}
/* The value at quantile q (0..1): the midpoint of its bucket, 0 when empty. */
uint64_t hist_quantile(const struct hist *h, double q);

#endif
