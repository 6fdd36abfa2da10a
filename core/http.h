/* http.h - the plain HTTP side: /healthz, /readyz, /metrics, static files and the
 * bundled client /moonwire.js (SPEC section 8). */
#ifndef MW_HTTP_H
#define MW_HTTP_H

#include "config.h"

struct lws;

void mw_http_init(const struct mw_config *cfg, const char *home);
void mw_http_shutdown(void);
/* The LWS_CALLBACK_HTTP handler: returns what the callback must return. */
int mw_http_request(struct lws *wsi, const char *uri);

#endif
