/* server.h - the process: one libuv loop driving libwebsockets, routes, heartbeats,
 * the before-sleep flush, signals and shutdown. */
#ifndef MW_SERVER_H
#define MW_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct mw_app;

/* Handler run time histogram bounds (seconds, Prometheus `le`). */
#define MW_HANDLER_BUCKETS 10
extern const double mw_handler_bucket_le[MW_HANDLER_BUCKETS];

/* The wire protocol's error codes (lua_core.c), for errors.lua and the metrics. */
#define MW_NERROR_CODES 11
extern const char *const mw_error_codes[MW_NERROR_CODES];

/* Per-route counters for /metrics. */
struct mw_route_stats {
    uint64_t handler_buckets[MW_HANDLER_BUCKETS + 1]; /* last: +Inf */
    double handler_seconds;
    uint64_t messages_in, lua_errors, slow_handlers;
    uint64_t reloads, reload_failures;
    uint64_t errors[MW_NERROR_CODES]; /* error replies sent by the route, by code */
};

struct mw_route {
    const struct mw_route_config *cfg;
    struct mw_app *app; /* the script version serving new messages */
    struct mw_route_stats stats;
};

struct mw_server {
    const struct mw_config *cfg;
    const char *home;
    char node_id[72];
    struct mw_route *routes;
    size_t nroutes;
    bool shutting_down;
    uint64_t heartbeat_timeouts, rate_limited;
};

extern struct mw_server mw_srv;

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

struct mw_route *mw_server_route(const char *path);

/* A connection's life, shared by lws sockets and virtual connections (moonwire test):
 * opened (hello + the connect handler), one complete message, gone (the disconnect
 * handler, leave every room, free). */
struct mw_conn;
void mw_server_conn_opened(struct mw_conn *c);
void mw_server_conn_input(struct mw_conn *c, const char *payload, size_t len, bool binary);
void mw_server_conn_gone(struct mw_conn *c);

#endif
