/* workers.h - `workers: N`: a master process supervising N server processes that
 * share the listening port (SO_REUSEPORT) and each other's rooms through Redis. */
#ifndef MW_WORKERS_H
#define MW_WORKERS_H

#include "base/config.h"

/* Runs the master: opens one listening socket per worker, forks the workers (each a
 * full node named "<node_id>-w<k>"), forwards SIGTERM/SIGINT/SIGHUP to them, restarts
 * one that dies unexpectedly (with backoff), and returns the exit code once all are
 * gone after a shutdown. Workers never return from it: they exit with the server's
 * code. Needs cfg->workers > 1 (config.c requires Redis for that). */
int mw_workers_run(struct mw_config *cfg, const char *home);

#endif
