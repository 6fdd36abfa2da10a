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
void hist_add(struct hist *h, uint64_t v);
/* The value at quantile q (0..1): the midpoint of its bucket, 0 when empty. */
uint64_t hist_quantile(const struct hist *h, double q);

#endif
