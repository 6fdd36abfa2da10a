/* metrics.h - the /metrics page (Prometheus text format 0.0.4), assembled from each
 * module's counters and stats functions. A new metric goes here, next to the others
 * of its module, and into docs/operations.md. */
#ifndef MW_METRICS_H
#define MW_METRICS_H

#include "buf.h"

/* With `workers`: this worker's number (its `worker` label); -1 otherwise. */
extern int mw_metrics_worker;

/* Appends every metric to b. */
void mw_metrics_text(struct mw_buf *b);

#endif
