/* http.h - the plain HTTP side: /healthz, /readyz, /metrics, static files and the
 * bundled client /moonwire.js (docs/operations.md). */
#ifndef MW_HTTP_H
#define MW_HTTP_H

#include "base/config.h"

struct lws;

void mw_http_init(const struct mw_config *cfg, const char *home);
void mw_http_shutdown(void);
struct mw_http_later;

/* A request in progress (only POST bodies need state between callbacks, and a call
 * that answers later needs it until it has answered). */
struct mw_http_req {
    char path[256];
    char *body;
    size_t len;
    int too_big;
    struct mw_http_later *later; /* set by mw_http_defer */
};

/* LWS_CALLBACK_HTTP: returns what the callback must return. *req is allocated when a
 * body must be read first. */
int mw_http_request(struct lws *wsi, const char *uri, struct mw_http_req **req);
/* LWS_CALLBACK_HTTP_BODY and LWS_CALLBACK_HTTP_BODY_COMPLETION. */
int mw_http_body(struct mw_http_req *req, const char *in, size_t len);
int mw_http_body_done(struct lws *wsi, struct mw_http_req **req);
/* Frees *req (connection dropped, or answered). A deferred answer still to come is
 * detached: mw_http_later_reply then only frees it. */
void mw_http_req_free(struct mw_http_req **req);

/* For an API call that must wait (for Redis) before it can answer: called during
 * mw_api_call, it keeps req alive past it. The answer comes with mw_http_later_reply
 * exactly once; the response is written when the socket is writable
 * (LWS_CALLBACK_HTTP_WRITEABLE -> mw_http_writable). Returns the handle. */
struct mw_http_later *mw_http_defer(struct mw_http_req *req, struct lws *wsi);
/* Answers with a JSON body (copied). Frees l when its request is gone already. */
void mw_http_later_reply(struct mw_http_later *l, int status, const char *json, size_t len);
/* LWS_CALLBACK_HTTP_WRITEABLE: writes a deferred answer that is ready. */
int mw_http_writable(struct lws *wsi, struct mw_http_req **req);

/* Sends a complete small response. */
int mw_http_reply(struct lws *wsi, int status, const char *ctype, const char *body, size_t len);
/* The same with a text/plain body. */
int mw_http_reply_text(struct lws *wsi, int status, const char *text);

/* A POST's body length, from its headers: 0 with *len set, or the status to refuse it
 * with and why: 411 for a chunked body or none announced (a body without a length
 * would be waited for until a timeout), 400 for a Content-Length that is not a
 * decimal number, 413 over max. */
int mw_http_body_length(struct lws *wsi, size_t max, size_t *len, const char **why);

#endif
