/* lwsglue.h - libwebsockets on our loop, for plain HTTP: its context, and the one
 * protocol callback that translates lws events into calls to http.c. */
#ifndef MW_LWSGLUE_H
#define MW_LWSGLUE_H

struct lws_vhost;

/* Creates the context on the default loop (no listener of its own: ws.c adopts the
 * plain HTTP requests into the returned vhost). NULL on failure. */
struct lws_vhost *mw_lws_start(void);
/* Starts destroying it inside the running loop: every HTTP connection is closed
 * now, lws's handles close asynchronously. */
void mw_lws_stop(void);
/* After the loop ended: completes the destruction, frees what lws used. */
void mw_lws_free(void);

#endif
