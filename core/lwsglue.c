/* lwsglue.c - the libwebsockets context and its protocol callback.
 *
 * The callback only translates: each lws event becomes one call into http.c (plain
 * HTTP: health, metrics, static files, the API) or ws.c (WebSocket connections). What
 * lws keeps per connection is the pointer to our object. */
#include "lwsglue.h"

#include <stdio.h>
#include <string.h>

#include <libwebsockets.h>
#include <uv.h>

#include "conn.h"
#include "http.h"
#include "log.h"
#include "rxpage.h"
#include "sse.h"
#include "ws.h"

static struct lws_context *context;

/* What lws keeps per connection (its user_space). */
struct session {
    struct mw_conn *conn;     /* a WebSocket's connection */
    struct mw_http_req *http; /* an HTTP API call waiting for its body or its answer */
    struct mw_sse *sse;       /* the HTTP fallback: a stream, or a POST of frames */
};

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
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return mw_ws_filter(wsi);
    case LWS_CALLBACK_ESTABLISHED:
        s->conn = mw_ws_established(wsi);
        return s->conn ? 0 : -1;
    case LWS_CALLBACK_RECEIVE:
        return s->conn ? mw_ws_receive(s->conn, wsi, in, len) : -1;
    case LWS_CALLBACK_RECEIVE_PONG:
        mw_ws_pong(s->conn, in, len);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return mw_ws_writable(s->conn);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        return s->conn ? mw_ws_peer_close(s->conn, in, len) : -1;
    case LWS_CALLBACK_CLOSED:
        mw_ws_closed(s->conn);
        s->conn = NULL;
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* At most this much per send(): with 0, lws caps each send at rx_buffer_size and keeps
 * the rest of a gathered flush for a WRITEABLE callback (an epoll_ctl round trip). */
#define TX_PACKET (MW_FLUSH_CHUNK + 1024)

static const struct lws_protocols protocols[] = {
    { "moonwire", on_lws, sizeof(struct session), MW_RX_BUFFER, 0, NULL, TX_PACKET },
    { NULL, NULL, 0, 0, 0, NULL, 0 }
};

static void on_lws_log(int level, const char *line)
{
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
    mw_rxpage_install();
    memset(&info, 0, sizeof info);
    foreign_loops[0] = uv_default_loop();
    info.foreign_loops = foreign_loops;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8;
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* listener.c accepts and adopts */
    info.protocols = protocols;
    info.retry_and_idle_policy = &no_validity;
    info.gid = (gid_t)-1;
    info.uid = (uid_t)-1;
    info.vhost_name = "moonwire";
    info.server_string = "moonwire";
    info.timeout_secs = 10;
    info.pt_serv_buf_size = MW_RX_BUFFER;
    info.pcontext = &context; /* lws clears it when destruction completes */
    context = lws_create_context(&info);
    return context ? lws_get_vhost_by_name(context, "moonwire") : NULL;
}

void mw_lws_stop(void)
{
    if (context)
        lws_context_destroy(context);
}

void mw_lws_free(void)
{
    if (context) /* lws 4.1 with a foreign loop: the second call completes it */
        lws_context_destroy(context);
    mw_rxpage_free_all();
    mw_ws_shutdown();
}
