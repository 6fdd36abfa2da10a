/* entry.h - what a transport (net/ws.c, http/sse.c, the simulated clients of
 * `moonwire test`) calls on the server: may a connection open, open it, its input and
 * pongs. server/server.c defines these; they are declared here so that a transport
 * does not include server/server.h. */
#ifndef MW_ENTRY_H
#define MW_ENTRY_H

#include <stdbool.h>
#include <stddef.h>

#include "base/context.h"

struct mw_route *mw_server_route(const char *path);

/* A request to open a connection, as a network transport presents it (the WebSocket
 * upgrade; an HTTP fallback would present the same). */
struct mw_open_req {
    const char *path;   /* the route's path: the request path without its query */
    const char *remote; /* peer address */
    void *tx;           /* passed to the lookups */
    /* Query parameter `name`: copied into buf (NUL-terminated, cut to len - 1).
     * Returns its whole length, or -1 when absent: more than len - 1 when it was cut,
     * and more than strlen(buf) when it holds a NUL byte (a decoded %00). */
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
