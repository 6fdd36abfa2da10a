/* context.h - the process's shared state that every layer reads: the configuration,
 * the node id, the routes and their counters (mw_srv). server/server.c owns it and fills
 * it in; it lives down here so that a module of a lower layer reads the node id or a
 * limit without including server/server.h. */
#ifndef MW_CONTEXT_H
#define MW_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/config.h"
#include "base/hist.h"

struct mw_app;

/* Bounds of the handler histogram (script.c) and of the ping round trip (server.c). */
extern const struct mw_hist_le mw_handler_le, mw_rtt_le;

/* The wire protocol's error codes (lua_core.c), for errors.lua and the metrics. */
#define MW_NERROR_CODES 11
extern const char *const mw_error_codes[MW_NERROR_CODES];

/* Per-route counters for /metrics. */
struct mw_route_stats {
    struct mw_hist handler; /* time on the loop per resume of a handler */
    struct mw_hist rtt;     /* heartbeat ping to pong */
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
    uint64_t too_big;          /* messages over limits.max_message (closed 1009) */
};

extern struct mw_server mw_srv;

/* The route of the admin page's WebSocket (apps/admin), mounted by the server itself
 * when API keys are configured. */
#define MW_ADMIN_ROUTE "/admin/ws"
/* The one room its clients join (apps/admin/main.lua); claimed by that route alone. */
#define MW_ADMIN_ROOM "moonwire:admin"

#endif
