/* ws.c - WebSocket connections over libwebsockets: the upgrade as a struct
 * mw_open_req, message reassembly, and the transport that writes our pre-framed
 * frames raw (shared/PERFORMANCE.md: all queued frames in one write). */
#include "ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libwebsockets.h>

#include "conn.h"
#include "log.h"
#include "rxpage.h"
#include "server.h"
#include "util.h"

static unsigned char *scratch; /* LWS_PRE + gathered frames */
static size_t scratch_cap;

/* ---- the transport ---- */

static void want_writable(struct mw_conn *c)
{
    if (!c->want_writable) {
        c->want_writable = true;
        lws_callback_on_writable(c->tx);
    }
}

/* Writes queued frames while the kernel takes them: each gather of up to
 * MW_FLUSH_CHUNK bytes is one raw write; libwebsockets keeps what the kernel did not
 * take and asks for WRITEABLE. */
static int ws_flush(struct mw_conn *c)
{
    struct lws *wsi = c->tx;
    if (c->want_writable || c->peer_closed)
        return 0;
    if (lws_partial_buffered(wsi)) {
        want_writable(c);
        return 0;
    }
    while (c->q.len) {
        size_t n = mw_sendq_gather_need(&c->q, MW_FLUSH_CHUNK);
        if (LWS_PRE + n > scratch_cap) {
            scratch_cap = LWS_PRE + (n > MW_FLUSH_CHUNK ? n : MW_FLUSH_CHUNK);
            scratch = mw_realloc(scratch, scratch_cap);
        }
        mw_sendq_gather(&c->q, scratch + LWS_PRE, MW_FLUSH_CHUNK);
        if (lws_write(wsi, scratch + LWS_PRE, n, LWS_WRITE_RAW) < 0) {
            mw_log_debug("write failed", "conn=%s", c->id);
            return -1;
        }
        mw_sendq_consume(&c->q, n); /* lws took it all, buffering what the kernel did not */
        mw_conn_sent(c, n);
        if (lws_partial_buffered(wsi)) {
            want_writable(c);
            return 0;
        }
    }
    if (c->state != MW_CONN_OPEN && !c->kill)
        c->close_sent = true; /* the close frame was the last one queued */
    return 0;
}

/* Queues the close frame behind what is queued: our own frame, through the same raw
 * writes as data, so it can never overtake a message. */
void mw_ws_queue_close(struct mw_conn *c)
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

static void ws_abort(struct mw_conn *c)
{
    mw_lws_abort(c->tx);
}

/* Ends the connection for real: shutdown(2) makes libwebsockets' pending write fail
 * at once (a peer that does not read would otherwise keep it flushing forever), and
 * SO_LINGER 0 has the kernel drop what it still holds and reset the connection. */
void mw_lws_abort(struct lws *wsi)
{
    int fd = lws_get_socket_fd(wsi);
    if (fd >= 0) {
        struct linger lg = { 1, 0 };
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        shutdown(fd, SHUT_RDWR);
    }
    lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_SYNC);
}

static const struct mw_transport ws_transport = {
    .name = "ws", .flush = ws_flush, .close = mw_ws_queue_close, .abort = ws_abort,
};

/* ---- the upgrade request ---- */

/* The URI path of the upgrade request, without the query string. */
static int request_path(struct lws *wsi, char *buf, int len)
{
    int n = lws_hdr_copy(wsi, buf, len, WSI_TOKEN_GET_URI);
    if (n <= 0)
        return -1;
    char *q = strchr(buf, '?');
    if (q)
        *q = '\0';
    return 0;
}

static int req_query(void *tx, const char *name, char *buf, size_t len)
{
    char key[72];
    if (len < 2 || snprintf(key, sizeof key, "%s=", name) >= (int)sizeof key)
        return -1;
    /* lws_get_urlarg_by_name matches "name=" at the start of each argument and
     * returns a pointer into buf past it. */
    const char *v = lws_get_urlarg_by_name(tx, key, buf, (int)len);
    if (!v) {
        buf[0] = '\0'; /* lws may have left another argument there */
        return -1;
    }
    if (v != buf)
        memmove(buf, v, strlen(v) + 1);
    return (int)strlen(buf);
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
    { "sec-websocket-protocol", WSI_TOKEN_PROTOCOL },
    { "sec-websocket-extensions", WSI_TOKEN_EXTENSIONS },
    { "host", WSI_TOKEN_HOST },
};

static int req_header(void *tx, const char *name, char *buf, size_t len)
{
    for (size_t i = 0; i < sizeof known_headers / sizeof known_headers[0]; i++) {
        if (strcmp(known_headers[i].name, name) != 0)
            continue;
        if (lws_hdr_total_length(tx, known_headers[i].token) <= 0)
            return -1;
        int n = lws_hdr_copy(tx, buf, (int)len, known_headers[i].token);
        return n < 0 ? -1 : n;
    }
    char key[72];
    if (snprintf(key, sizeof key, "%s:", name) >= (int)sizeof key)
        return -1;
    int n = lws_hdr_custom_copy(tx, buf, (int)len, key, (int)strlen(key));
    return n < 0 ? -1 : n;
}

/* The request as the server's open path sees it (server.h); path and remote live in
 * the caller's buffers. */
void mw_lws_open_req(struct lws *wsi, struct mw_open_req *r, char *path, size_t pathlen,
                     char *remote, size_t remotelen)
{
    if (request_path(wsi, path, (int)pathlen) < 0)
        path[0] = '\0';
    lws_get_peer_simple(wsi, remote, remotelen);
    r->path = path;
    r->remote = remote;
    r->tx = wsi;
    r->query = req_query;
    r->header = req_header;
}

int mw_ws_filter(struct lws *wsi)
{
    char path[256], remote[64];
    struct mw_open_req r;
    const char *why;
    mw_lws_open_req(wsi, &r, path, sizeof path, remote, sizeof remote);
    return mw_server_check_open(&r, &why) != 0;
}

struct mw_conn *mw_ws_established(struct lws *wsi)
{
    char path[256], remote[64];
    struct mw_open_req r;
    mw_lws_open_req(wsi, &r, path, sizeof path, remote, sizeof remote);
    return mw_server_open(&ws_transport, wsi, &r);
}

/* ---- events ---- */

int mw_ws_receive(struct mw_conn *c, struct lws *wsi, const char *in, size_t len)
{
    size_t remaining = lws_remaining_packet_payload(wsi);
    bool final = lws_is_final_fragment(wsi);
    size_t max = mw_srv.cfg->max_message;

    c->last_rx_ms = mw_now_ms();
    if (!mw_conn_is_open(c))
        return 0; /* nothing is handled once the close is decided */
    if (c->rxlen + len + remaining > max) {
        mw_log_info("message too big", "conn=%s size>=%zu limit=%zu", c->id,
                    c->rxlen + len + remaining, max);
        mw_conn_close(c, 1009, "message too big");
        return 0;
    }
    if (c->rxlen == 0 && final) { /* the common case: one piece, no copy */
        mw_server_conn_input(c, in, len, lws_frame_is_binary(wsi));
        return 0;
    }
    if (c->rxlen == 0)
        c->rx_binary = lws_frame_is_binary(wsi);
    if (c->rxlen + len > c->rxcap) {
        c->rxcap = c->rxlen + len + remaining;
        c->rx = mw_realloc(c->rx, c->rxcap);
    }
    memcpy(c->rx + c->rxlen, in, len);
    c->rxlen += len;
    if (final) {
        size_t n = c->rxlen;
        c->rxlen = 0;
        mw_server_conn_input(c, c->rx, n, c->rx_binary);
        free(c->rx); /* most connections never fragment: keep idle memory small */
        c->rx = NULL;
        c->rxcap = 0;
    }
    return 0;
}

void mw_ws_pong(struct mw_conn *c, void *in, size_t len)
{
    if (c)
        c->last_rx_ms = mw_now_ms();
    mw_rxpage_release(in, len);
}

int mw_ws_writable(struct mw_conn *c)
{
    if (!c || !c->tx)
        return 0;
    c->want_writable = false;
    return ws_flush(c);
}

/* The peer's close frame: answered by libwebsockets when the peer closed first;
 * when ours went out first, the handshake is complete and lws may end the
 * connection (-1). */
int mw_ws_peer_close(struct mw_conn *c, const unsigned char *in, size_t len)
{
    char reason[124] = "";
    int code = len >= 2 ? (in[0] << 8) | in[1] : 1005; /* 1005: no code given */
    if (len > 2)
        snprintf(reason, sizeof reason, "%.*s", (int)(len - 2), (const char *)in + 2);
    mw_sendq_discard(&c->q); /* nothing may follow the close reply */
    return mw_conn_peer_close(c, code, reason) ? -1 : 0;
}

void mw_ws_closed(struct mw_conn *c)
{
    if (c)
        mw_conn_transport_gone(c);
}

void mw_ws_shutdown(void)
{
    free(scratch);
    scratch = NULL;
    scratch_cap = 0;
}
