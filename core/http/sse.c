/* sse.c - the HTTP fallback transport: Server-Sent Events down, POSTs up.
 *
 * For clients on networks that let plain HTTP through but not WebSocket
 * (docs/client.md says why this shape and not long-polling):
 *
 *   GET ROUTE?...&transport=sse opens a connection through the same open path as a
 *     WebSocket upgrade (identity, session, hello, the app's connect handler) and keeps
 *     the response open. Its first event names the stream (`event: mw:stream`); then
 *     every frame the connection is sent is one event (`data: FRAME`), a close is
 *     `event: mw:close` with {code, reason}, a server ping is a comment line.
 *   POST ROUTE?transport=sse&stream=ID carries the client's frames, one per line (JSON
 *     text has no raw newline). Each is handled exactly like a WebSocket message:
 *     max_message (1009), UTF-8 (1007), the rate limit, the app's handlers, acks.
 *
 * Heartbeats, the send queue and its slow-consumer rules belong to the connection,
 * whatever the transport: a stream is one more struct mw_transport (conn.h). A POST
 * that reaches another node or worker than its stream is handed to the stream's node
 * over Redis (sse_forward.c). */
#include "http/sse.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libwebsockets.h>
#include <uv.h>

#include "rooms/broker.h"
#include "base/buf.h"
#include "net/conn.h"
#include "http/http.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "base/map.h"
#include "net/entry.h"
#include "base/utf8.h"
#include "base/util.h"

/* A stream (GET) or a POST of frames; what lws keeps per HTTP connection. */
struct mw_sse {
    struct lws *wsi;
    struct mw_conn *c;       /* a stream's connection; NULL once its transport ended */
    uv_poll_t *watch;        /* a stream's socket (a dup of it): the client leaving */
    bool ending;             /* the close event is out: end the response */
    bool post;
    char id[MW_SSE_ID_MAX];  /* a stream's id, or the stream a POST names */
    char *body;              /* a POST's body so far */
    size_t len;
    bool too_big;
};

struct mw_sse_stats mw_sse_stats;

static struct mw_map streams;  /* id -> struct mw_sse, every open stream on this node */
static unsigned char *scratch; /* LWS_PRE + events being written */
static size_t scratch_cap;

/* ---- requests ---- */

static int req_query(void *tx, const char *name, char *buf, size_t len);

/* The value of query parameter name on wsi into buf; its length, or -1 (absent, or
 * longer than buf). */
static int query(struct lws *wsi, const char *name, char *buf, size_t len)
{
    int n = req_query(wsi, name, buf, len);
    return n >= 0 && (size_t)n < len ? n : -1;
}

bool mw_sse_wants(struct lws *wsi, const char *uri)
{
    char v[8];
    return mw_server_route(uri) && query(wsi, "transport", v, sizeof v) == 3 && strcmp(v, "sse") == 0;
}

static int reply(struct lws *wsi, int status, const char *text)
{
    if (status >= 400)
        mw_sse_stats.rejected++;
    return mw_http_reply_text(wsi, status, text);
}

/* ---- the open request, as the server's open path sees it (server.h) ---- */

/* A value copied cut into buf, as server.h's lookups give it: the whole length back. */
static int give_cut(const char *v, size_t n, char *buf, size_t len)
{
    size_t k = n < len ? n : len - 1;
    memcpy(buf, v, k);
    buf[k] = '\0';
    return n > INT_MAX ? INT_MAX : (int)n;
}

/* lws keeps each query argument URL-decoded as a fragment "name=value" with its
 * length, so a decoded %00 and a value longer than buf are both seen (server.h). */
static int req_query(void *tx, const char *name, char *buf, size_t len)
{
    size_t klen = strlen(name);
    for (int i = 0;; i++) {
        int n = lws_hdr_fragment_length(tx, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n <= 0)
            return -1;
        char *f = mw_malloc((size_t)n + 1);
        int got = lws_hdr_copy_fragment(tx, f, n + 1, WSI_TOKEN_HTTP_URI_ARGS, i);
        int rc = -1;
        if (got == n && (size_t)n > klen && !memcmp(f, name, klen) && f[klen] == '=')
            rc = give_cut(f + klen + 1, (size_t)n - klen - 1, buf, len);
        free(f);
        if (rc >= 0)
            return rc;
    }
}

static const struct {
    const char *name;
    enum lws_token_indexes token;
} known_headers[] = {
    { "authorization", WSI_TOKEN_HTTP_AUTHORIZATION },
    { "origin", WSI_TOKEN_ORIGIN },
    { "cookie", WSI_TOKEN_HTTP_COOKIE },
    { "user-agent", WSI_TOKEN_HTTP_USER_AGENT },
    { "x-forwarded-for", WSI_TOKEN_X_FORWARDED_FOR },
    { "host", WSI_TOKEN_HOST },
};

static int req_header(void *tx, const char *name, char *buf, size_t len)
{
    for (size_t i = 0; i < sizeof known_headers / sizeof known_headers[0]; i++) {
        if (strcmp(known_headers[i].name, name) != 0)
            continue;
        int n = lws_hdr_total_length(tx, known_headers[i].token);
        if (n <= 0)
            return -1;
        char *v = mw_malloc((size_t)n + 1);
        int got = lws_hdr_copy(tx, v, n + 1, known_headers[i].token);
        int rc = got < 0 ? -1 : give_cut(v, (size_t)got, buf, len);
        free(v);
        return rc;
    }
    char key[72];
    if (snprintf(key, sizeof key, "%s:", name) >= (int)sizeof key)
        return -1;
    int n = lws_hdr_custom_length(tx, key, (int)strlen(key));
    if (n <= 0)
        return -1;
    char *v = mw_malloc((size_t)n + 1);
    int got = lws_hdr_custom_copy(tx, v, n + 1, key, (int)strlen(key));
    int rc = got < 0 ? -1 : give_cut(v, (size_t)got, buf, len);
    free(v);
    return rc;
}

/* path and remote are the caller's buffers. */
static void open_req(struct lws *wsi, struct mw_open_req *r, const char *path, char *remote,
                     size_t remotelen)
{
    lws_get_peer_simple(wsi, remote, remotelen);
    r->path = path;
    r->remote = remote;
    r->tx = wsi;
    r->query = req_query;
    r->header = req_header;
}

/* ---- noticing that the client left ----
 * libwebsockets 4.1 does not read a socket while its HTTP response is in progress,
 * so it neither notices a client that closed the stream nor stops polling it: it
 * would spin on the readable socket forever. A poll handle on a duplicate of the
 * socket tells us in the same loop iteration when the client closed (or sent anything
 * at all, which a stream's client never does), and the stream is ended. (Turning
 * lws's rx flow off instead would stop the spin, but then lws 4.1 no longer delivers
 * WRITEABLE to the connection either.) */

static void on_watch_closed(uv_handle_t *h)
{
    close((int)(intptr_t)h->data);
    free(h);
}

static void watch_stop(struct mw_sse *s)
{
    if (!s->watch)
        return;
    uv_poll_stop(s->watch);
    int fd;
    uv_fileno((uv_handle_t *)s->watch, &fd);
    s->watch->data = (void *)(intptr_t)fd;
    uv_close((uv_handle_t *)s->watch, on_watch_closed);
    s->watch = NULL;
}

static void on_peer(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    struct mw_sse *s = h->data;
    watch_stop(s);
    if (s->c && s->c->state == MW_CONN_OPEN)
        mw_log_debug("sse client gone", "conn=%s", s->c->id);
    if (s->c)
        mw_conn_kill(s->c, "client closed the stream");
}

static void watch_start(struct mw_sse *s)
{
    int fd = dup(lws_get_socket_fd(s->wsi));
    if (fd < 0)
        return; /* then only a failed write or the heartbeat notices */
    s->watch = mw_malloc(sizeof *s->watch);
    if (uv_poll_init(uv_default_loop(), s->watch, fd) < 0) {
        free(s->watch);
        s->watch = NULL;
        close(fd);
        return;
    }
    s->watch->data = s;
    uv_poll_start(s->watch, UV_READABLE | UV_DISCONNECT, on_peer);
}

/* ---- the stream (GET) ---- */

/* "<node>.<32 hex digits>": which node holds it, and a secret only its client knows. */
static void new_stream_id(char *id, size_t n)
{
    unsigned char r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) { /* never short for 16 bytes */
        uint64_t a = mw_random_u64(), b = mw_random_u64();
        memcpy(r, &a, 8);
        memcpy(r + 8, &b, 8);
    }
    int k = snprintf(id, n, "%s.", mw_srv.node_id);
    for (size_t i = 0; i < sizeof r && k + 2 < (int)n; i++)
        k += snprintf(id + k, n - (size_t)k, "%02x", r[i]);
}

static int open_stream(struct lws *wsi, const char *path, struct mw_sse *s)
{
    char remote[64];
    struct mw_open_req r;
    const char *why;
    open_req(wsi, &r, path, remote, sizeof remote);
    int status = mw_server_check_open(&r, &why);
    if (status)
        return reply(wsi, status, why);
    struct mw_route *route = mw_server_route(path);
    if (route->cfg->protocol != MW_PROTO_JSON)
        return reply(wsi, 400, "the HTTP fallback serves JSON routes only");

    /* Headers and the stream's name at once; frames follow as the connection is sent
     * them. No length: the response lasts as long as the connection. */
    unsigned char buf[LWS_PRE + 1024];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf;
    new_stream_id(s->id, sizeof s->id);
    if (lws_add_http_common_headers(wsi, 200, "text/event-stream", LWS_ILLEGAL_HTTP_CONTENT_LEN, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL, (const unsigned char *)"no-store", 8, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"x-accel-buffering:", (const unsigned char *)"no", 2, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    char first[192];
    int n = snprintf(first, sizeof first, "event: mw:stream\ndata: {\"stream\":\"%s\"}\n\n", s->id);
    memcpy(buf + LWS_PRE, first, (size_t)n);
    if (lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_HTTP) != n)
        return -1;
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0); /* it stays open: our heartbeat watches it */

    s->wsi = wsi;
    mw_map_put(&streams, s->id, s);
    s->c = mw_server_open(&mw_sse_transport, s, &r);
    if (!s->c) {
        mw_map_del(&streams, s->id);
        return -1;
    }
    mw_sse_stats.opened++;
    /* The request's headers were read: give their memory back for the stream's life.
     * (lws_http_mark_sse does this too, and logs an error for every HTTP/1 stream.) */
    lws_http_headers_detach(wsi);
    watch_start(s);
    return 0;
}

/* Appends one queued frame to out as events; returns the bytes it added. A frame
 * that has no event form (binary, pong) adds none. */
static size_t event_of(const struct mw_msg *m, unsigned char *out)
{
    size_t len, k = 0;
    const char *p = mw_msg_payload(m, &len);
    switch (m->data[0] & 0x0f) {
    case MW_OP_TEXT:
        /* One data line per line of the frame (the client joins them with "\n"). */
        for (size_t i = 0, from = 0; i <= len; i++) {
            if (i < len && p[i] != '\n' && p[i] != '\r')
                continue;
            memcpy(out + k, "data: ", 6);
            memcpy(out + k + 6, p + from, i - from);
            k += 6 + (i - from);
            out[k++] = '\n';
            from = i + 1;
        }
        out[k++] = '\n';
        return k;
    case MW_OP_PING: /* keeps proxies from timing the response out */
        memcpy(out, ":\n\n", 3);
        return 3;
    case MW_OP_CLOSE: {
        struct mw_buf b = { 0 };
        int code = len >= 2 ? ((unsigned char)p[0] << 8) | (unsigned char)p[1] : 1005;
        mw_buf_printf(&b, "event: mw:close\ndata: {\"code\":%d,\"reason\":", code);
        mw_jsonw_strn(&b, len > 2 ? p + 2 : "", len > 2 ? len - 2 : 0);
        mw_buf_puts(&b, "}\n\n");
        memcpy(out, b.p, b.len);
        k = b.len;
        mw_buf_free(&b);
        return k;
    }
    default:
        return 0;
    }
}

/* The most bytes event_of can make of m: every payload byte a line of its own. */
static size_t event_need(const struct mw_msg *m)
{
    size_t len;
    mw_msg_payload(m, &len);
    return 8 * len + 256;
}

static void want_writable(struct mw_conn *c, struct mw_sse *s)
{
    if (!c->want_writable) {
        c->want_writable = true;
        lws_callback_on_writable(s->wsi);
    }
}

/* Writes queued frames as events while the kernel takes them, MW_FLUSH_CHUNK at a
 * time; libwebsockets keeps what the kernel did not take and asks for WRITEABLE. */
static int sse_flush(struct mw_conn *c)
{
    struct mw_sse *s = c->tx;
    if (c->want_writable)
        return 0;
    if (lws_partial_buffered(s->wsi)) {
        want_writable(c, s);
        return 0;
    }
    while (c->q.len) {
        size_t n = 0, frames = 0;
        for (uint32_t i = 0; i < c->q.len; i++) {
            struct mw_msg *m = mw_sendq_at(&c->q, i);
            size_t need = event_need(m);
            if (i > 0 && n + need > MW_FLUSH_CHUNK)
                break;
            if (LWS_PRE + n + need > scratch_cap) {
                scratch_cap = LWS_PRE + n + need + MW_FLUSH_CHUNK;
                scratch = mw_realloc(scratch, scratch_cap);
            }
            n += event_of(m, scratch + LWS_PRE + n);
            frames += m->len;
        }
        if (n && lws_write(s->wsi, scratch + LWS_PRE, n, LWS_WRITE_HTTP) != (int)n) {
            mw_log_debug("write failed", "conn=%s", c->id);
            return -1;
        }
        mw_sendq_consume(&c->q, frames);
        mw_conn_sent(c, n);
        if (lws_partial_buffered(s->wsi)) {
            want_writable(c, s);
            return 0;
        }
    }
    if (c->state != MW_CONN_OPEN && !c->kill && !c->close_sent) {
        /* The close event is out: nothing answers it over HTTP, so the response ends
         * here (the connection is `Connection: close`), from the next WRITEABLE
         * callback: lws ends a connection at once only from inside its callbacks. */
        c->close_sent = true;
        s->ending = true;
        lws_callback_on_writable(s->wsi);
    }
    return 0;
}

/* Queues the close behind what is queued (it goes out as the mw:close event). */
static void sse_close(struct mw_conn *c)
{
    unsigned char p[2 + 123];
    size_t rlen = strlen(c->close_reason);
    p[0] = (unsigned char)(c->close_code >> 8);
    p[1] = (unsigned char)c->close_code;
    memcpy(p + 2, c->close_reason, rlen);
    struct mw_msg *m = mw_msg_new(MW_OP_CLOSE, p, 2 + rlen, MW_MSG_CONTROL);
    mw_sendq_push(&c->q, m);
    mw_msg_decref(m);
}

/* Ends the stream for real: shutdown(2) makes lws's pending write fail at once (a
 * client that does not read would keep it flushing), SO_LINGER 0 drops what the kernel
 * holds; then lws frees the connection. */
static void sse_abort(struct mw_conn *c)
{
    struct mw_sse *s = c->tx;
    int fd = lws_get_socket_fd(s->wsi);
    if (fd >= 0) {
        struct linger lg = { 1, 0 };
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        shutdown(fd, SHUT_RDWR);
    }
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_SYNC);
}

const struct mw_transport mw_sse_transport = {
    .name = "sse", .flush = sse_flush, .close = sse_close, .abort = sse_abort,
};

/* ---- POSTs: the client's frames ---- */

/* Hands each line of body to c as one message, as a WebSocket would. */
static void feed(struct mw_conn *c, const char *body, size_t len)
{
    size_t max = mw_srv.cfg->max_message;
    const char *p = body, *end = body + len;
    c->last_rx_ms = mw_now_ms();
    while (p < end && mw_conn_is_open(c)) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl ? nl : end) - p);
        if (n && p[n - 1] == '\r')
            n--;
        if (n > max) {
            mw_log_info("message too big", "conn=%s size=%zu limit=%zu", c->id, n, max);
            mw_conn_close(c, 1009, "message too big");
        } else if (!mw_utf8_valid((const unsigned char *)p, n)) {
            mw_log_info("bad utf8", "conn=%s", c->id);
            mw_conn_close(c, 1007, "bad utf8");
        } else if (n) {
            mw_server_conn_input(c, p, n, false);
        }
        p = nl ? nl + 1 : end;
    }
}

/* The largest POST body: a few frames of the largest size a message may have. */
static size_t max_body(void)
{
    size_t m = mw_srv.cfg->max_message;
    return (m < 65536 ? 65536 : m) + 4096;
}

int mw_sse_deliver(const char *stream, const char *body, size_t len)
{
    struct mw_sse *s = mw_map_get(&streams, stream);
    if (!s || !s->c)
        return MW_ENOENT;
    mw_sse_stats.posts++;
    feed(s->c, body, len);
    return 0;
}

static int post_done(struct lws *wsi, struct mw_sse *s)
{
    struct mw_sse *to = mw_map_get(&streams, s->id);
    if (s->too_big) {
        mw_log_info("message too big", "stream=%s size>%zu", s->id, max_body());
        if (to && to->c)
            mw_conn_close(to->c, 1009, "message too big");
        return reply(wsi, 413, "the POST is over the size a message may have");
    }
    if (mw_sse_deliver(s->id, s->body ? s->body : "", s->len) == 0)
        return mw_http_reply_text(wsi, 204, "");
    /* Not here: the stream may live on another node (or worker) of the cluster. */
    int rc = mw_sse_forward(s->id, s->body ? s->body : "", s->len);
    if (rc == 0) {
        mw_sse_stats.forwarded++;
        return mw_http_reply_text(wsi, 204, "");
    }
    mw_log_info("sse post rejected", "stream=%.64s reason=\"%s\"", s->id,
                rc == MW_EIO ? "cluster unavailable" : "no such stream");
    return reply(wsi, rc == MW_EIO ? 503 : 404, rc == MW_EIO ? "unavailable" : "no such stream");
}

int mw_sse_forward(const char *stream, const char *body, size_t len)
{
    const char *dot = strrchr(stream, '.');
    size_t n = dot ? (size_t)(dot - stream) : 0;
    char node[sizeof mw_srv.node_id];
    if (!n || n >= sizeof node)
        return MW_ENOENT;
    memcpy(node, stream, n);
    node[n] = '\0';
    if (strcmp(node, mw_srv.node_id) == 0)
        return MW_ENOENT; /* ours, and gone */
    return mw_broker_node(node, "sse", stream, body, len);
}

static void on_node(const char *kind, const char *arg, const char *body, size_t len)
{
    if (strcmp(kind, "sse") == 0 && mw_sse_deliver(arg, body, len) < 0)
        mw_log_debug("sse post for a gone stream", "stream=%.64s", arg);
}

void mw_sse_init(void)
{
    mw_broker_on_node = on_node;
}

/* ---- the protocol callback's calls ---- */

int mw_sse_request(struct lws *wsi, const char *uri, struct mw_sse **out)
{
    struct mw_sse *s = mw_calloc(1, sizeof *s);
    s->wsi = wsi;
    *out = s;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0) { /* frames follow as the body */
        s->post = true;
        if (query(wsi, "stream", s->id, sizeof s->id) <= 0)
            s->id[0] = '\0'; /* answered 400 once the body is in */
        /* No length, or chunked: answered now, not after lws waited for the body. A
         * body over max_message is read (and dropped) to close its stream 1009. */
        size_t len;
        const char *why;
        int status = mw_http_body_length(wsi, SIZE_MAX, &len, &why);
        if (status) {
            mw_log_info("sse post rejected", "stream=%.64s reason=\"%s\"", s->id, why);
            reply(wsi, status, why);
            return -1; /* the connection closes: its unread body is no next request */
        }
        return 0;
    }
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
        return reply(wsi, 405, "GET opens a stream, POST sends to one");
    return open_stream(wsi, uri, s);
}

int mw_sse_body(struct mw_sse *s, const char *in, size_t len)
{
    if (!s || !s->post)
        return -1;
    if (s->too_big || s->len + len > max_body()) {
        s->too_big = true;
        return 0;
    }
    s->body = mw_realloc(s->body, s->len + len + 1);
    memcpy(s->body + s->len, in, len);
    s->len += len;
    return 0;
}

int mw_sse_body_done(struct lws *wsi, struct mw_sse **sp)
{
    struct mw_sse *s = *sp;
    if (!s || !s->post)
        return -1;
    *sp = NULL; /* answering may end the transaction and free lws's session */
    int rc = s->id[0] ? post_done(wsi, s) : reply(wsi, 400, "stream is required");
    free(s->body);
    free(s);
    return rc;
}

int mw_sse_writable(struct mw_sse *s)
{
    if (s->ending)
        return -1; /* lws closes it; CLOSED_HTTP follows */
    if (s->post || !s->c)
        return 0;
    s->c->want_writable = false;
    return sse_flush(s->c);
}

void mw_sse_closed(struct mw_sse **sp)
{
    struct mw_sse *s = *sp;
    if (!s)
        return;
    *sp = NULL;
    if (!s->post) {
        watch_stop(s);
        mw_map_del(&streams, s->id);
        if (s->c)
            mw_conn_transport_gone(s->c);
    }
    free(s->body);
    free(s);
}

void mw_sse_shutdown(void)
{
    mw_broker_on_node = NULL;
    mw_map_free(&streams);
    free(scratch);
    scratch = NULL;
    scratch_cap = 0;
}
