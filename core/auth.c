/* auth.c - connection identity. */
#include "auth.h"

#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "util.h"

int mw_auth_query_arg(struct lws *wsi, const char *name, char *buf, size_t cap, size_t *len)
{
    int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
    if (total <= 0)
        return 0;
    /* Every fragment (one argument each) fits in the whole token. */
    size_t nl = strlen(name);
    char *frag = mw_malloc((size_t)total + 1);
    int rc = 0, n;
    for (int i = 0; (n = lws_hdr_copy_fragment(wsi, frag, total + 1, WSI_TOKEN_HTTP_URI_ARGS, i)) >= 0; i++) {
        if ((size_t)n <= nl || strncmp(frag, name, nl) != 0 || frag[nl] != '=')
            continue;
        size_t vlen = (size_t)n - nl - 1;
        if (vlen >= cap) {
            rc = -1;
        } else {
            memcpy(buf, frag + nl + 1, vlen);
            buf[vlen] = '\0';
            *len = vlen;
            rc = 1;
        }
        break;
    }
    free(frag);
    return rc;
}

int mw_auth_user_param(struct lws *wsi, char user[MW_USER_ID_MAX + 1], const char **why)
{
    size_t len = 0;
    user[0] = '\0';
    int rc = mw_auth_query_arg(wsi, "user", user, MW_USER_ID_MAX + 1, &len);
    if (rc == 0 || (rc == 1 && len == 0)) /* absent or empty: anonymous */
        return 0;
    *why = rc < 0 ? "user must be a string of 1..128 bytes" : mw_user_id_error(user, len);
    if (!*why)
        return 0;
    user[0] = '\0';
    return -1;
}
