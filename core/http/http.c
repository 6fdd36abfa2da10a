/* http.c - health, readiness, metrics and static files. */
#include "http/http.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libwebsockets.h>

#include "http/api.h"
#include "base/log.h"
#include "base/buf.h"
#include "http/metrics.h"
#include "redis/redis.h"
#include "net/entry.h"
#include "base/util.h"

static char *docroot;     /* static: DIR, or NULL */
static char *client_js;   /* path of the bundled moonwire.js */
static char *admin_html;  /* path of the bundled admin page */

void mw_http_init(const struct mw_config *cfg, const char *home)
{
    char path[4096];
    docroot = cfg->static_dir ? mw_strdup(cfg->static_dir) : NULL;
    snprintf(path, sizeof path, "%s/examples/web/moonwire.js", home);
    client_js = mw_strdup(path);
    snprintf(path, sizeof path, "%s/examples/web/admin.html", home);
    admin_html = mw_strdup(path);
}

void mw_http_shutdown(void)
{
    free(docroot);
    free(client_js);
    free(admin_html);
    docroot = client_js = admin_html = NULL;
}

int mw_http_reply(struct lws *wsi, int status, const char *ctype, const char *body, size_t len)
{
    size_t cap = LWS_PRE + 1024 + len;
    unsigned char *buf = mw_malloc(cap);
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + cap;
    int rc = -1;

    if (lws_add_http_common_headers(wsi, (unsigned)status, ctype, len, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        goto out;
    if (len) {
        memcpy(buf + LWS_PRE, body, len);
        if (lws_write(wsi, buf + LWS_PRE, len, LWS_WRITE_HTTP_FINAL) != (int)len)
            goto out;
    }
    rc = lws_http_transaction_completed(wsi) ? -1 : 0;
out:
    free(buf);
    return rc;
}

int mw_http_reply_text(struct lws *wsi, int status, const char *text)
{
    return mw_http_reply(wsi, status, "text/plain; charset=utf-8", text, strlen(text));
}

int mw_http_body_length(struct lws *wsi, size_t max, size_t *len, const char **why)
{
    char v[32];
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
        *why = "chunked request bodies are not accepted: send a Content-Length";
        return 411;
    }
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0) {
        *why = "a POST needs a Content-Length";
        return 411;
    }
    int n = lws_hdr_copy(wsi, v, sizeof v, WSI_TOKEN_HTTP_CONTENT_LENGTH);
    if (n <= 0 || n > 19 || strspn(v, "0123456789") != (size_t)n) {
        *why = "Content-Length must be a decimal number";
        return 400;
    }
    *len = (size_t)strtoull(v, NULL, 10);
    if (*len > max) {
        *why = "the request body is over the size allowed";
        return 413;
    }
    return 0;
}

/* A plain request to a WebSocket route: 426 with the Upgrade header (RFC 9110) and a
 * line saying what to do, instead of a 404 that looks like a wrong path. */
static int reply_upgrade_required(struct lws *wsi, const char *path)
{
    char body[512];
    int n = snprintf(body, sizeof body,
                     "%.256s is a WebSocket endpoint: connect with a WebSocket client "
                     "(ws://HOST%.256s), not with a plain HTTP request\n", path, path);
    size_t len = n < (int)sizeof body ? (size_t)n : sizeof body - 1;
    unsigned char buf[LWS_PRE + 1024 + sizeof body];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf;
    mw_log_info("upgrade required", "path=%s", path);
    if (lws_add_http_common_headers(wsi, 426, "text/plain; charset=utf-8", len, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_UPGRADE, (const unsigned char *)"websocket",
                                     9, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"Upgrade",
                                     7, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    memcpy(buf + LWS_PRE, body, len);
    if (lws_write(wsi, buf + LWS_PRE, len, LWS_WRITE_HTTP_FINAL) != (int)len)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static const char *mime_of(const char *path)
{
    static const struct { const char *ext, *mime; } types[] = {
        { ".html", "text/html; charset=utf-8" }, { ".js", "text/javascript; charset=utf-8" },
        { ".css", "text/css; charset=utf-8" },   { ".json", "application/json" },
        { ".svg", "image/svg+xml" },             { ".png", "image/png" },
        { ".ico", "image/x-icon" },              { ".txt", "text/plain; charset=utf-8" },
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].mime;
    return "application/octet-stream";
}

static int serve_file(struct lws *wsi, const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
        return mw_http_reply_text(wsi, 404, "not found\n");
    int n = lws_serve_http_file(wsi, path, mime_of(path), NULL, 0);
    if (n < 0 || (n > 0 && lws_http_transaction_completed(wsi)))
        return -1;
    return 0;
}

int mw_http_request(struct lws *wsi, const char *uri, struct mw_http_req **req)
{
    if (mw_api_is_call(uri)) {
        bool post = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
        int pre = mw_api_precheck(wsi, post); /* the key before any body is read */
        if (pre != 1)
            return pre;
        if (post) { /* the body comes next */
            *req = mw_calloc(1, sizeof **req);
            snprintf((*req)->path, sizeof (*req)->path, "%s", uri);
            return 0;
        }
        /* A GET may answer later too (a cluster-wide presence list waits for Redis). */
        struct mw_http_req *r = mw_calloc(1, sizeof *r);
        int rc = mw_api_call(wsi, r, "GET", uri, NULL, 0);
        if (r->later && rc == 0) {
            *req = r;
            return 0;
        }
        mw_http_req_free(&r);
        return rc;
    }
    if (strcmp(uri, "/healthz") == 0)
        return mw_http_reply_text(wsi, 200, "ok\n");
    if (strcmp(uri, "/readyz") == 0) {
        if (mw_srv.shutting_down)
            return mw_http_reply_text(wsi, 503, "shutting down\n");
        /* Up means both connections work and every subscription is back in place. */
        if (mw_redis_configured() && !mw_redis_up())
            return mw_http_reply_text(wsi, 503, "redis down\n");
        return mw_http_reply_text(wsi, 200, "ready\n");
    }
    if (strcmp(uri, "/metrics") == 0) {
        struct mw_buf b = { 0 };
        mw_metrics_text(&b);
        int rc = mw_http_reply(wsi, 200, "text/plain; version=0.0.4", b.p, b.len);
        mw_buf_free(&b);
        return rc;
    }
    if (strcmp(uri, "/moonwire.js") == 0)
        return serve_file(wsi, client_js);
    /* The admin page asks for the key itself; without keys it has nothing to show. */
    if (strcmp(uri, "/admin") == 0)
        return mw_server_route(MW_ADMIN_ROUTE) ? serve_file(wsi, admin_html)
                                               : mw_http_reply_text(wsi, 404, "the admin page needs api.keys in the config\n");
    if (mw_server_route(uri))
        return reply_upgrade_required(wsi, uri);
    if (!docroot || strstr(uri, "..") || uri[0] != '/')
        return mw_http_reply_text(wsi, 404, "not found\n");
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", docroot, uri,
             uri[strlen(uri) - 1] == '/' ? "index.html" : "");
    return serve_file(wsi, path);
}

int mw_http_body(struct mw_http_req *req, const char *in, size_t len)
{
    if (!req)
        return -1;
    if (!len) /* lws announces an explicit Content-Length: 0 with (NULL, 0) */
        return 0;
    if (req->len + len > MW_API_MAX_BODY) {
        req->too_big = 1;
        return 0;
    }
    req->body = mw_realloc(req->body, req->len + len + 1);
    memcpy(req->body + req->len, in, len);
    req->len += len;
    req->body[req->len] = '\0';
    return 0;
}

int mw_http_body_done(struct lws *wsi, struct mw_http_req **req)
{
    struct mw_http_req *r = *req;
    if (!r)
        return -1;
    /* Answering may complete the transaction, and lws may then free the session that
     * holds *req: take the request out of it first. */
    *req = NULL;
    static const char too_big[] =
        "{\"error\":\"bad_message\",\"message\":\"the request body is over 64KiB\"}\n";
    int rc = r->too_big ? mw_http_reply(wsi, 413, "application/json", too_big, sizeof too_big - 1)
                        : mw_api_call(wsi, r, "POST", r->path, r->body, r->len);
    if (r->later && rc == 0) {
        *req = r; /* deferred: nothing was written, the session is intact */
        return 0;
    }
    mw_http_req_free(&r);
    return rc;
}

/* A deferred answer: owned by its request until answered, then by whichever of the
 * two goes last (the request closing first leaves it `gone`). */
struct mw_http_later {
    struct lws *wsi;
    bool gone;     /* the request went away: the answer is dropped */
    bool answered; /* status and body are set */
    int status;
    char *body;
    size_t len;
};

struct mw_http_later *mw_http_defer(struct mw_http_req *req, struct lws *wsi)
{
    mw_assert(!req->later);
    req->later = mw_calloc(1, sizeof *req->later);
    req->later->wsi = wsi;
    return req->later;
}

static void later_free(struct mw_http_later *l)
{
    free(l->body);
    free(l);
}

void mw_http_later_reply(struct mw_http_later *l, int status, const char *json, size_t len)
{
    mw_assert(!l->answered);
    if (l->gone) {
        later_free(l);
        return;
    }
    l->answered = true;
    l->status = status;
    l->body = mw_malloc(len + 1);
    memcpy(l->body, json, len);
    l->len = len;
    lws_callback_on_writable(l->wsi);
}

int mw_http_writable(struct lws *wsi, struct mw_http_req **req)
{
    struct mw_http_req *r = *req;
    if (!r || !r->later || !r->later->answered)
        return 0;
    *req = NULL; /* as in mw_http_body_done: the session may go while we answer */
    int rc = mw_http_reply(wsi, r->later->status, "application/json", r->later->body,
                           r->later->len);
    mw_http_req_free(&r);
    return rc;
}

void mw_http_req_free(struct mw_http_req **req)
{
    struct mw_http_req *r = *req;
    if (!r)
        return;
    *req = NULL;
    if (r->later && !r->later->answered)
        r->later->gone = true; /* its completion frees it */
    else if (r->later)
        later_free(r->later);
    free(r->body);
    free(r);
}
