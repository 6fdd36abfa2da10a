/* lwsglue.h - libwebsockets on our loop: its context, and the one protocol callback
 * that translates lws events into calls to the HTTP side (http.c) and the WebSocket
 * connections (ws.c). */
#ifndef MW_LWSGLUE_H
#define MW_LWSGLUE_H

struct lws_vhost;

/* Creates the context on the default loop (no listener of its own: listener.c
 * adopts sockets into the returned vhost). NULL on failure. */
struct lws_vhost *mw_lws_start(void);
/* Starts destroying it inside the running loop: every connection is closed now
 * (LWS_CALLBACK_CLOSED), lws's handles close asynchronously. */
void mw_lws_stop(void);
/* After the loop ended: completes the destruction, frees what lws used. */
void mw_lws_free(void);

#endif
