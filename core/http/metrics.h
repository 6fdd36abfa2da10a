/* metrics.h - the /metrics page (Prometheus text format 0.0.4), assembled from each
 * module's counters and stats functions. A new metric goes here, next to the others
 * of its module, and into docs/operations.md. */
#ifndef MW_METRICS_H
#define MW_METRICS_H

#include "base/buf.h"

/* With `workers`: this worker's number (its `worker` label); -1 otherwise. */
extern int mw_metrics_worker;

/* Appends every metric to b: this process's, or with `workers` the whole server's. */
void mw_metrics_text(struct mw_buf *b);

/* With `workers: N` (workers.c). In the master, before the first fork: maps the
 * region the workers share their pages through (-1 when mmap fails). */
int mw_metrics_share(int nworkers);
/* In the master: worker k was forked / was reaped. */
void mw_metrics_worker_started(int k);
void mw_metrics_worker_ended(int k);
/* In worker k, once its loop exists (server.c): starts publishing its page, counting
 * on from what the previous worker k published last. No-op without a shared region. */
void mw_metrics_start(int worker);
/* Publishes the last page and stops (server.c, at shutdown). */
void mw_metrics_stop(void);

#endif
