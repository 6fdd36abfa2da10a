/* sse.h - the HTTP fallback transport (Server-Sent Events down, POSTs up): a
 * connection for clients whose network blocks WebSocket, the same in every other
 * way (sse.c explains the wire format; docs/client.md why this shape). */
#ifndef MW_SSE_H
#define MW_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lws;
struct mw_sse;

/* A stream id: "<node id>.<32 hex digits>". */
#define MW_SSE_ID_MAX 112

extern const struct mw_transport mw_sse_transport;

/* Whether an HTTP request for uri is for the fallback (a route, ?transport=sse). */
bool mw_sse_wants(struct lws *wsi, const char *uri);
/* LWS_CALLBACK_HTTP for such a request: a GET opens a stream, a POST's body (frames)
 * follows. *out is what lws keeps for it. Returns what the callback returns. */
int mw_sse_request(struct lws *wsi, const char *uri, struct mw_sse **out);
/* LWS_CALLBACK_HTTP_BODY and LWS_CALLBACK_HTTP_BODY_COMPLETION of a POST. */
int mw_sse_body(struct mw_sse *s, const char *in, size_t len);
int mw_sse_body_done(struct lws *wsi, struct mw_sse **s);
/* LWS_CALLBACK_HTTP_WRITEABLE of a stream. */
int mw_sse_writable(struct mw_sse *s);
/* LWS_CALLBACK_CLOSED_HTTP: a stream's transport ended; frees *s. */
void mw_sse_closed(struct mw_sse **s);

/* Frames for the local stream `stream` (a POST's body): 0, or MW_ENOENT. */
int mw_sse_deliver(const char *stream, const char *body, size_t len);
/* A POST for a stream of another node: sent to that node over Redis. 0, MW_ENOENT
 * (no such node here, or not clustered), MW_EIO (Redis down). */
int mw_sse_forward(const char *stream, const char *body, size_t len);

/* Starts taking forwarded POSTs (after the broker started). */
void mw_sse_init(void);
void mw_sse_shutdown(void);

struct mw_sse_stats {
    uint64_t opened;    /* streams opened */
    uint64_t posts;     /* POSTs delivered to a local stream (forwarded ones included) */
    uint64_t forwarded; /* POSTs handed to another node */
    uint64_t rejected;  /* requests answered 4xx/5xx */
};
extern struct mw_sse_stats mw_sse_stats;

#endif
