/* lwsglue.c - the libwebsockets context and its protocol callback: plain HTTP.
 *
 * WebSocket upgrades are ws.c's; every other request comes here from ws.c with the
 * bytes it read. The callback only translates: each lws event becomes one call into
 * http.c (health, metrics, static files, the API). What lws keeps per connection is
 * the pointer to our request. */
#include "http/lwsglue.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <libwebsockets.h>
#include <uv.h>

#include "base/buf.h"
#include "net/conn.h"
#include "http/http.h"
#include "base/log.h"
#include "http/sse.h"
#include "base/util.h"
#include "net/ws.h"

static struct lws_context *context;

/* What lws keeps per connection (its user_space). */
struct session {
    struct mw_http_req *http; /* an HTTP API call waiting for its body or its answer */
    struct mw_sse *sse;       /* the HTTP fallback: a stream, or a POST of frames */
};

/* ---- upgrades on kept-alive connections ----
 *
 * ws.c takes WebSocket upgrades on fresh connections; a proxy (nginx with upstream
 * keepalive) may send one on a connection that already carried plain HTTP, which lws
 * holds. Such a connection is taken back: its socket is duplicated, the request is
 * rebuilt from lws's parsed headers, lws is told the exchange is over, and in the
 * check phase of the same loop iteration lws drops its side the way it does at context
 * destruction, without shutdown(2) on the socket; ws.c then answers the upgrade on
 * the duplicate. */

/* lws 4.1 exports it without declaring it: with this reason it skips the shutdown of
 * the socket that a normal close does. */
void lws_close_free_wsi(struct lws *wsi, enum lws_close_status reason, const char *caller);

struct handback {
    struct handback *next;
    struct lws *wsi;  /* NULL once lws closed it on its own */
    int fd;           /* our duplicate of its socket */
    struct mw_buf head;
};

static struct handback *handbacks;
static uv_check_t handback_check;
static bool handback_ready;

static const struct {
    const char *name;
    enum lws_token_indexes token;
} upgrade_headers[] = {
    { "Host", WSI_TOKEN_HOST },
    { "Upgrade", WSI_TOKEN_UPGRADE },
    { "Connection", WSI_TOKEN_CONNECTION },
    { "Sec-WebSocket-Key", WSI_TOKEN_KEY },
    { "Sec-WebSocket-Version", WSI_TOKEN_VERSION },
    { "Sec-WebSocket-Protocol", WSI_TOKEN_PROTOCOL },
    { "Sec-WebSocket-Extensions", WSI_TOKEN_EXTENSIONS },
    { "Origin", WSI_TOKEN_ORIGIN },
    { "Authorization", WSI_TOKEN_HTTP_AUTHORIZATION },
    { "Cookie", WSI_TOKEN_HTTP_COOKIE },
    { "User-Agent", WSI_TOKEN_HTTP_USER_AGENT },
    { "X-Forwarded-For", WSI_TOKEN_X_FORWARDED_FOR },
};

/* Appends s percent-encoded but for unreserved characters (lws decoded it). */
static void put_encoded(struct mw_buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-._~", c))
            mw_buf_putc(b, (char)c);
        else
            mw_buf_printf(b, "%%%02X", c);
    }
}

/* The request as it came, from what lws parsed. Returns -1 when a part is too long. */
static int rebuild_head(struct lws *wsi, struct mw_buf *b)
{
    char v[4096];
    if (lws_hdr_copy(wsi, v, sizeof v, WSI_TOKEN_GET_URI) <= 0)
        return -1;
    mw_buf_puts(b, "GET ");
    mw_buf_puts(b, v);
    for (int i = 0; lws_hdr_copy_fragment(wsi, v, sizeof v, WSI_TOKEN_HTTP_URI_ARGS, i) > 0; i++) {
        char *eq = strchr(v, '=');
        mw_buf_putc(b, i ? '&' : '?');
        if (eq)
            *eq = '\0';
        put_encoded(b, v);
        if (eq) {
            mw_buf_putc(b, '=');
            put_encoded(b, eq + 1);
        }
    }
    mw_buf_puts(b, " HTTP/1.1\r\n");
    for (size_t i = 0; i < sizeof upgrade_headers / sizeof upgrade_headers[0]; i++) {
        int n = lws_hdr_total_length(wsi, upgrade_headers[i].token);
        if (n <= 0)
            continue;
        if (lws_hdr_copy(wsi, v, sizeof v, upgrade_headers[i].token) < 0)
            return -1;
        mw_buf_printf(b, "%s: %s\r\n", upgrade_headers[i].name, v);
    }
    mw_buf_puts(b, "\r\n");
    return 0;
}

static void on_handback_check(uv_check_t *h)
{
    uv_check_stop(h);
    while (handbacks) {
        struct handback *hb = handbacks;
        handbacks = hb->next;
        if (hb->wsi) {
            lws_close_free_wsi(hb->wsi, LWS_CLOSE_STATUS_NOSTATUS_CONTEXT_DESTROY, "to ws.c");
            mw_ws_adopt_upgrade(hb->fd, hb->head.p, hb->head.len);
        } else {
            close(hb->fd); /* lws ended the connection meanwhile */
        }
        mw_buf_free(&hb->head);
        free(hb);
    }
}

/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE to "websocket": 1 (lws goes on as after an
 * answered request, and reads nothing more: the client waits for our 101), or -1. */
static int take_upgrade(struct lws *wsi)
{
    struct handback *hb = mw_calloc(1, sizeof *hb);
    hb->fd = fcntl(lws_get_socket_fd(wsi), F_DUPFD_CLOEXEC, 0);
    if (hb->fd < 0 || rebuild_head(wsi, &hb->head) < 0) {
        if (hb->fd >= 0)
            close(hb->fd);
        mw_buf_free(&hb->head);
        free(hb);
        return -1;
    }
    mw_log_debug("upgrade taken from lws", "fd=%d", hb->fd);
    hb->wsi = wsi;
    hb->next = handbacks;
    handbacks = hb;
    if (!handback_ready) {
        uv_check_init(uv_default_loop(), &handback_check);
        uv_unref((uv_handle_t *)&handback_check);
        handback_ready = true;
    }
    uv_check_start(&handback_check, on_handback_check);
    return 1;
}

/* lws is freeing a connection: a hand-back still waiting must not touch it. (Not
 * kept in the session: lws replaces the user_space when it rebinds the protocol at
 * the end of each exchange.) */
static void forget_handback(struct lws *wsi)
{
    for (struct handback *hb = handbacks; hb; hb = hb->next)
        if (hb->wsi == wsi)
            hb->wsi = NULL;
}

static int on_lws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len)
{
    struct session *s = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        if (mw_sse_wants(wsi, in))
            return mw_sse_request(wsi, in, &s->sse);
        return mw_http_request(wsi, in, &s->http);
    case LWS_CALLBACK_HTTP_BODY:
        if (s->sse)
            return mw_sse_body(s->sse, in, len);
        return mw_http_body(s->http, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (s->sse)
            return mw_sse_body_done(wsi, &s->sse);
        return mw_http_body_done(wsi, &s->http);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (s && s->sse)
            return mw_sse_writable(s->sse);
        if (s && s->http && s->http->later) /* an API call that answers later */
            return mw_http_writable(wsi, &s->http);
        break;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (s) {
            mw_http_req_free(&s->http);
            mw_sse_closed(&s->sse);
        }
        break;
    case LWS_CALLBACK_WSI_DESTROY:
        forget_handback(wsi);
        break;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        if (in && strcasecmp(in, "websocket") == 0)
            return take_upgrade(wsi);
        return -1; /* no other upgrade is spoken here */
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return 1; /* never: WebSocket upgrades are taken at CONFIRM_UPGRADE */
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* lws's read buffer, shared by its connections: one read of a request body takes
 * this much at most. */
#define SERV_BUF (64 * 1024)

static const struct lws_protocols protocols[] = {
    { "moonwire", on_lws, sizeof(struct session), 0, 0, NULL, 0 },
    { NULL, NULL, 0, 0, 0, NULL, 0 }
};

static void on_lws_log(int level, const char *line)
{
    /* lws 4.1 logs every adoption with read bytes at error level. */
    if (strstr(line, "calling service") || strstr(line, "deferring handling ah"))
        return;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", line);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    mw_log(level & LLL_ERR ? MW_LOG_ERROR : MW_LOG_WARN, "libwebsockets", "detail=\"%s\"", msg);
}

struct lws_vhost *mw_lws_start(void)
{
    static const lws_retry_bo_t no_validity = { 0 }; /* our heartbeat replaces lws's timer */
    static void *foreign_loops[1];
    struct lws_context_creation_info info;

    lws_set_log_level(LLL_ERR, on_lws_log);
    memset(&info, 0, sizeof info);
    foreign_loops[0] = uv_default_loop();
    info.foreign_loops = foreign_loops;
    info.options = LWS_SERVER_OPTION_LIBUV;
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* listener.c accepts and adopts */
    info.protocols = protocols;
    info.retry_and_idle_policy = &no_validity;
    info.gid = (gid_t)-1;
    info.uid = (uid_t)-1;
    info.vhost_name = "moonwire";
    info.server_string = "moonwire";
    info.timeout_secs = 10;
    info.pt_serv_buf_size = SERV_BUF;
    info.pcontext = &context; /* lws clears it when destruction completes */
    context = lws_create_context(&info);
    return context ? lws_get_vhost_by_name(context, "moonwire") : NULL;
}

void mw_lws_stop(void)
{
    if (context)
        lws_context_destroy(context);
    if (handback_ready) {
        on_handback_check(&handback_check); /* their wsis are gone: closes the fds */
        uv_close((uv_handle_t *)&handback_check, NULL);
        handback_ready = false;
    }
}

void mw_lws_free(void)
{
    if (context) /* lws 4.1 with a foreign loop: the second call completes it */
        lws_context_destroy(context);
}
