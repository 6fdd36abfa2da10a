/* api.h - the HTTP API for backends (docs/operations.md): POST /api/publish,
 * POST /api/notify, GET /api/rooms/{room}/presence, POST /api/disconnect; every call needs
 * `Authorization: Bearer <key>` with a key from `api.keys`. */
#ifndef MW_API_H
#define MW_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/config.h"

struct lws;

#define MW_API_MAX_BODY (64 * 1024)

/* Counters for /metrics: calls refused for the key (401), and for their request
 * (other 4xx: bad body, length, method, path). */
struct mw_api_stats {
    uint64_t unauthorized, refused;
};
extern struct mw_api_stats mw_api_stats;

void mw_api_init(const struct mw_config *cfg);
void mw_api_shutdown(void);
/* Whether key is one of the configured API keys (compared in constant time). */
int mw_api_key_ok(const char *key);

/* Whether a method + path is an API call (path starts with /api/). */
int mw_api_is_call(const char *path);
/* Whether the request carries one of the API keys (Authorization: Bearer KEY). */
int mw_api_authorized(struct lws *wsi);
/* What can be checked before a body is read: the key, then for a POST a Content-Length
 * of at most MW_API_MAX_BODY (lws 4.1 decodes no chunked request body, and without a
 * length it would wait for 100 MiB). Returns 1 when the call may go on; else it has
 * answered (401, 411, 400, 413) and returns what the lws callback must return: a POST
 * closes the connection, since its unread body would be taken for the next request. */
int mw_api_precheck(struct lws *wsi, bool post);
/* Handles a complete call and writes the response, or defers it (mw_http_defer on
 * req, which is NULL for a GET: those answer at once). Returns what the lws callback
 * must return. */
struct mw_http_req;
int mw_api_call(struct lws *wsi, struct mw_http_req *req, const char *method, const char *path,
                const char *body, size_t len);

#endif
