/* api.h - the HTTP API for backends (docs/operations.md): POST /api/publish,
 * POST /api/notify, GET /api/rooms/{room}/presence, POST /api/disconnect; every call needs
 * `Authorization: Bearer <key>` with a key from `api.keys`. */
#ifndef MW_API_H
#define MW_API_H

#include <stddef.h>

#include "config.h"

struct lws;

#define MW_API_MAX_BODY (64 * 1024)

void mw_api_init(const struct mw_config *cfg);
void mw_api_shutdown(void);
/* Whether key is one of the configured API keys (compared in constant time). */
int mw_api_key_ok(const char *key);

/* Whether a method + path is an API call (path starts with /api/). */
int mw_api_is_call(const char *path);
/* Handles a complete call and writes the response, or defers it (mw_http_defer on
 * req, which is NULL for a GET: those answer at once). Returns what the lws callback
 * must return. */
struct mw_http_req;
int mw_api_call(struct lws *wsi, struct mw_http_req *req, const char *method, const char *path,
                const char *body, size_t len);

#endif
