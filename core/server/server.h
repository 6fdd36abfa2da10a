/* server.h - the process: one libuv loop driving libwebsockets, routes, heartbeats,
 * the before-sleep flush, signals and shutdown. */
#ifndef MW_SERVER_H
#define MW_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/config.h"
#include "base/context.h"
#include "net/entry.h"

/* Loads every route's script; on failure writes "file:line: message" to err. Used by
 * `serve` (before listening) and `check`. */
int mw_server_load_routes(const struct mw_config *cfg, const char *home, char *err, size_t errlen);
void mw_server_unload_routes(void);

/* The server state without a socket: limits, node id, store, routes (used by `serve`
 * before it listens, and by `moonwire test`). Returns 0, or -1 with err set. */
int mw_server_prepare(const struct mw_config *cfg, const char *home, char *err, size_t errlen);
/* Stops what the subsystems keep on the loop (timers, store, watchers). */
void mw_server_release(void);
/* Frees rooms and routes and closes the loop; after mw_server_release. */
void mw_server_teardown(void);

/* Serve on this listening socket (a worker's, opened by the master) instead of opening
 * one from cfg->listen. */
void mw_server_use_socket(int fd);
/* Runs until SIGINT/SIGTERM. Returns the process exit code. */
int mw_server_run(const struct mw_config *cfg, const char *home);

#endif
