/* ws.h - WebSocket connections on sockets of their own: every accepted socket comes
 * here first; a WebSocket upgrade of a route becomes a connection (conn.h) whose
 * transport is ours, anything else goes to libwebsockets (lwsglue.c). */
#ifndef MW_WS_H
#define MW_WS_H

#include <stddef.h>

struct lws_vhost;
struct sockaddr;

/* Starts the module; plain HTTP requests are handed to vh. */
void mw_ws_start(struct lws_vhost *vh);
/* Takes an accepted, non-blocking socket and its peer's address (peerlen bytes, as
 * accept gave them): reads its request head (for at most 10 s), then upgrades it or
 * hands it over. */
void mw_ws_accept(int fd, const struct sockaddr *peer, unsigned peerlen);
/* Takes a socket whose request head (an upgrade) was read by someone else (lws, on a
 * kept-alive connection): head[0..len) is that request; answered at once. */
void mw_ws_adopt_upgrade(int fd, const char *head, size_t len);
/* Ends every socket still here (shutdown): their connections see their transport
 * gone. */
void mw_ws_stop(void);

#endif
