/* lwsglue.c - the libwebsockets context and its protocol callback: plain HTTP.
 *
 * WebSocket upgrades are ws.c's; every other request comes here from ws.c with the
 * bytes it read. The callback only translates: each lws event becomes one call into
 * http.c (health, metrics, static files, the API). What lws keeps per connection is
 * the pointer to our request. */
#include "lwsglue.h"

#include <stdio.h>
#include <string.h>

#include <libwebsockets.h>
#include <uv.h>

#include "conn.h"
#include "http.h"
#include "log.h"

static struct lws_context *context;

/* What lws keeps per connection (its user_space). */
struct session {
    struct mw_http_req *http; /* an HTTP API call waiting for its body or its answer */
};

static int on_lws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len)
{
    struct session *s = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return mw_http_request(wsi, in, &s->http);
    case LWS_CALLBACK_HTTP_BODY:
        return mw_http_body(s->http, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return mw_http_body_done(wsi, &s->http);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (s && s->http && s->http->later) /* an API call that answers later */
            return mw_http_writable(wsi, &s->http);
        break;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (s)
            mw_http_req_free(&s->http);
        break;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        /* An upgrade on a kept-alive HTTP connection: WebSockets are ws.c's, on
         * connections of their own (browsers always open one). */
        mw_log_info("upgrade rejected", "reason=\"upgrade on a kept-alive HTTP connection\"%s", "");
        return 1;
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
}

void mw_lws_free(void)
{
    if (context) /* lws 4.1 with a foreign loop: the second call completes it */
        lws_context_destroy(context);
}
