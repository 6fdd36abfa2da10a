/* expo.h - adding up Prometheus text pages (format 0.0.4) as metrics.c writes them.
 *
 * With `workers`, the page of the server is the sum of its workers' pages: a series
 * (a metric name with its labels, as written) that several pages hold gets the sum
 * of their values, which is right for counters, histograms and the gauges that
 * count things; what must not be added up is written with a `worker` label, so it
 * stays one series per worker. Leaf module. */
#ifndef MW_EXPO_H
#define MW_EXPO_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"

struct mw_expo;

struct mw_expo *mw_expo_new(void);
void mw_expo_free(struct mw_expo *e);

/* Adds the page text (len bytes) to e. Families and series keep the order in which
 * they first appeared; a family's HELP and TYPE are the first page's. With
 * counters_only, only counter and histogram families are added (what a worker that
 * ended leaves behind: its gauges described a process that is gone). Returns the
 * number of lines it could not read (skipped). */
int mw_expo_add(struct mw_expo *e, const char *text, size_t len, bool counters_only);

/* Appends the sum as a page to b: integers as integers, other values with 15
 * significant digits. */
void mw_expo_write(const struct mw_expo *e, struct mw_buf *b);

#endif
