/* ws.h - WebSocket connections over libwebsockets: the transport (conn.h) and the
 * handling of each WebSocket event, called by the protocol callback (lwsglue.c). */
#ifndef MW_WS_H
#define MW_WS_H

#include <stddef.h>

struct lws;
struct mw_conn;

/* LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: 0 lets the upgrade go on. */
int mw_ws_filter(struct lws *wsi);
/* LWS_CALLBACK_ESTABLISHED: the new connection, or NULL when lws must drop it. */
struct mw_conn *mw_ws_established(struct lws *wsi);
/* LWS_CALLBACK_RECEIVE: a piece of a message. Returns what the callback returns. */
int mw_ws_receive(struct mw_conn *c, struct lws *wsi, const char *in, size_t len);
/* LWS_CALLBACK_RECEIVE_PONG. */
void mw_ws_pong(struct mw_conn *c, void *in, size_t len);
/* LWS_CALLBACK_SERVER_WRITEABLE. */
int mw_ws_writable(struct mw_conn *c);
/* LWS_CALLBACK_WS_PEER_INITIATED_CLOSE with the close frame's payload. */
int mw_ws_peer_close(struct mw_conn *c, const unsigned char *in, size_t len);
/* LWS_CALLBACK_CLOSED: the wsi is going away. */
void mw_ws_closed(struct mw_conn *c);

/* Shared with the HTTP fallback (sse.c), which opens, closes and aborts its
 * connections the same way. */
struct mw_open_req;
/* The request on wsi (an upgrade or a plain HTTP request) as mw_server_open wants it;
 * path and remote are written to the caller's buffers. */
void mw_lws_open_req(struct lws *wsi, struct mw_open_req *r, char *path, size_t pathlen,
                     char *remote, size_t remotelen);
/* Queues a close frame with c->close_code / c->close_reason behind c's frames. */
void mw_ws_queue_close(struct mw_conn *c);
/* Ends wsi's socket now (reset) and has libwebsockets free it. */
void mw_lws_abort(struct lws *wsi);

/* Frees the write buffer (exit). */
void mw_ws_shutdown(void);

#endif
