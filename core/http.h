/* http.h - the plain HTTP side: /healthz, /readyz, /metrics, static files and the
 * bundled client /moonwire.js (SPEC section 8). */
#ifndef MW_HTTP_H
#define MW_HTTP_H

#include "config.h"

struct lws;

void mw_http_init(const struct mw_config *cfg, const char *home);
void mw_http_shutdown(void);
/* A request in progress (only POST bodies need state between callbacks). */
struct mw_http_req {
    char path[256];
    char *body;
    size_t len;
    int too_big;
};

/* LWS_CALLBACK_HTTP: returns what the callback must return. *req is allocated when a
 * body must be read first. */
int mw_http_request(struct lws *wsi, const char *uri, struct mw_http_req **req);
/* LWS_CALLBACK_HTTP_BODY and LWS_CALLBACK_HTTP_BODY_COMPLETION. */
int mw_http_body(struct mw_http_req *req, const char *in, size_t len);
int mw_http_body_done(struct lws *wsi, struct mw_http_req **req);
/* Frees *req (connection dropped). */
void mw_http_req_free(struct mw_http_req **req);

/* Sends a complete small response. */
int mw_http_reply(struct lws *wsi, int status, const char *ctype, const char *body, size_t len);

#endif
