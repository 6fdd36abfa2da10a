/* server.h - the process: one libuv loop driving libwebsockets, routes, heartbeats,
 * the before-sleep flush, signals and shutdown. */
#ifndef MW_SERVER_H
#define MW_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "hist.h"

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

/* The route of the admin page's WebSocket (apps/admin), mounted by the server itself
 * when API keys are configured. */
#define MW_ADMIN_ROUTE "/admin/ws"

/* A request to open a connection, as a network transport presents it (the WebSocket
 * upgrade; an HTTP fallback would present the same). */
struct mw_open_req {
    const char *path;   /* the route's path: the request path without its query */
    const char *remote; /* peer address */
    void *tx;           /* passed to the lookups */
    /* Query parameter `name`: copied into buf (NUL-terminated, cut to len - 1).
     * Returns its length, or -1 when absent. */
    int (*query)(void *tx, const char *name, char *buf, size_t len);
    /* Request header by lower-case name ("authorization"), the same way. */
    int (*header)(void *tx, const char *name, char *buf, size_t len);
};

/* Whether it may open: 0, or the HTTP status to refuse it with and a few words why
 * in *why (404: no such route; 503: shutting down, or limits.max_connections). */
int mw_server_check_open(const struct mw_open_req *r, const char **why);
/* Opens it on transport tp (its object tx): the identity (the `user` parameter with
 * dev.user_param, the `session` parameter), then hello and the app's connect handler
 * (mw_server_conn_opened). NULL when there is no such route; the connection may be
 * closing already (a bad session id, an app that refused it). */
struct mw_transport;
struct mw_conn *mw_server_open(const struct mw_transport *tp, void *tx, const struct mw_open_req *r);

/* A connection's life, shared by every transport (WebSocket, simulated clients of
 * `moonwire test`): opened (hello + the connect handler), one complete message. Its
 * end (the disconnect handler, leaving every room) comes through conn.h's unlink. */
struct mw_conn;
void mw_server_conn_opened(struct mw_conn *c);
void mw_server_conn_input(struct mw_conn *c, const char *payload, size_t len, bool binary);
/* A pong came (payload p, n bytes): the peer is alive, and when it answers the
 * heartbeat's ping, the round trip goes into the route's histogram. */
void mw_server_conn_pong(struct mw_conn *c, const void *p, size_t n);

#endif
