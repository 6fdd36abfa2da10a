/* ws.c - WebSocket connections on sockets of their own.
 *
 * Every accepted socket starts here (listener.c): its request head is looked at with
 * MSG_PEEK and, when it asks for a WebSocket upgrade of a route, the handshake, the
 * frames in (wsframe.c) and out, and the close handshake are ours; any other request
 * is handed to libwebsockets untouched (lwsglue.c serves plain HTTP). Peeking keeps
 * the bytes in the socket for lws: its adoption with bytes already read
 * (lws_adopt_socket_vhost_readbuf, 4.1) hands a POST body over wrong.
 *
 * Why not libwebsockets' own WebSocket role (4.1): it drops a ping while a pong is
 * pending, writes pongs and close frames outside the order of our raw writes, answers
 * no HTTP status when it refuses an upgrade, drops a handshake whose extension header
 * is 255 bytes or more, and keeps a connection with unsent output in
 * FLUSHING_BEFORE_CLOSE for as long as the peer does not read. Here every frame we
 * send, control frames included, goes through the connection's send queue in order,
 * all queued frames in one writev (runs of small frames copied into one piece: the
 * kernel's cost per iovec is more than the copy), writability asked for only when the
 * kernel did not take everything (shared/PERFORMANCE.md).
 *
 * The sockets are polled by an epoll instance of our own, itself one handle on the
 * libuv loop (as uSockets keeps its own): a socket costs one epoll_ctl when it is
 * accepted and none when it closes, where a uv_poll_t per socket cost 160 bytes and
 * five system calls per connection (libuv probes a new fd with an ADD and a DEL, sets
 * it non-blocking again, adds it, and deletes it at the close). */
#include "net/ws.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <libwebsockets.h>
#include <uv.h>

#include "base/buf.h"
#include "net/conn.h"
#include "base/buf.h"
#include "net/deflate.h"
#include "net/httphead.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "net/entry.h"
#include "base/sha1.h"
#include "base/util.h"
#include "net/wsframe.h"

#define HEAD_MAX 16384          /* a longer request head goes to libwebsockets as it is;
                                   room for a token of up to 8 KiB (auth.c) */
#define HEAD_TIMEOUT_MS 10000   /* to send the request head (slow clients, port scans) */
#define PEEK_RETRY_MS 5         /* a partial head is peeked again after this, then */
#define PEEK_RETRY_MAX_MS 640   /* twice as long each time without progress, up to this */
#define READ_BUF (64 * 1024)    /* one read per readiness, as libwebsockets did */
#define MAX_IOV 64
#define EVENTS_MAX 256          /* socket events taken per readiness of our epoll */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* Where runs of small frames are copied for one write (mw_sendq_iov): the loop
 * thread writes one connection at a time. */
static unsigned char tx_pack[MW_FLUSH_CHUNK];

enum phase {
    HEAD,  /* reading the request head */
    OPEN,  /* a WebSocket */
    DRAIN, /* our FIN is sent: reading until the peer's */
};

/* One socket. What only the request head needs and what only the WebSocket needs
 * share their memory: an idle connection holds 128 bytes here. */
struct ws {
    int fd;                   /* -1 once ended (a stale event is then ignored) */
    uint8_t phase;
    uint8_t events;           /* what the socket is registered for: EPOLLIN, EPOLLOUT */
    bool writable_wait;       /* the poll also waits for writability */
    bool close_queued;        /* our close frame (or close reply) is in the queue */
    bool peer_closed;         /* the peer's close frame came */
    bool fail;                /* a protocol failure: end right after our close frame */
    uint8_t pmd_wbits;        /* permessage-deflate: our frames' window; 0: off */
    uint16_t answer_len;      /* bytes of `answer` */
    struct mw_conn *conn;     /* while OPEN and the connection is not gone */
    struct ws *next, *prev;   /* every socket here (closed at exit); dead: the next */
    union {
        struct { /* HEAD */
            struct ws *hnext, *hprev; /* heads being read, oldest first (their timeout) */
            struct ws *wnext;         /* partial heads waiting to be peeked again */
            uint64_t deadline_ms;     /* its timeout */
            uint64_t retry_ms;        /* a partial head: when to peek again */
            uint32_t peeked;          /* bytes of the head seen so far */
            uint32_t backoff_ms;
            struct sockaddr_in6 peer; /* or a sockaddr_in, from accept (family 0: ask) */
        };
        struct { /* OPEN and DRAIN: zeroed when the head is done */
            char *answer;             /* the 101 not written yet: goes with the first frames */
            struct mw_wsrx rx;
            struct mw_inflate *inf;   /* a compressed message arriving in pieces */
            const char *why;          /* why an event refused a message (the close reason) */
        };
    };
};

static struct lws_vhost *vhost;  /* plain HTTP goes there */
static int epfd = -1;            /* our epoll instance: every socket here */
static uv_poll_t ep_poll;        /* the loop's handle on it */
static bool dispatching;         /* handling a batch of events: frees wait for its end */
static struct ws *dead;          /* ended during a batch (through next) */
static struct ws *all;
static struct ws *heads, *heads_tail;
static struct ws *waiting; /* partial heads, not polled until their retry */
static uv_timer_t head_timer;
static bool started;
static unsigned char rbuf[READ_BUF];

static const struct mw_transport ws_transport;

/* ---- sockets ---- */

/* What w is polled for: 0 (not at all), EPOLLIN, or EPOLLIN | EPOLLOUT.
 * Level-triggered, like the uv_poll it replaces. */
static void set_events(struct ws *w, uint8_t ev)
{
    if (w->fd < 0 || w->events == ev)
        return;
    struct epoll_event e = { .events = ev, .data.ptr = w };
    int op = !w->events ? EPOLL_CTL_ADD : ev ? EPOLL_CTL_MOD : EPOLL_CTL_DEL;
    if (epoll_ctl(epfd, op, w->fd, &e) < 0)
        mw_log_warn("epoll_ctl failed", "fd=%d op=%d err=\"%s\"", w->fd, op, strerror(errno));
    w->events = ev;
}

/* Frees w now, or after the batch of events being handled (which may still name it). */
static void ws_free(struct ws *w)
{
    w->fd = -1;
    if (!dispatching) {
        free(w);
        return;
    }
    w->next = dead;
    dead = w;
}

static void heads_remove(struct ws *w)
{
    if (w->hprev)
        w->hprev->hnext = w->hnext;
    else if (heads == w)
        heads = w->hnext;
    else
        return; /* not on the list */
    if (w->hnext)
        w->hnext->hprev = w->hprev;
    else
        heads_tail = w->hprev;
    w->hnext = w->hprev = NULL;
}

static void waiting_remove(struct ws *w)
{
    for (struct ws **pp = &waiting; *pp; pp = &(*pp)->wnext) {
        if (*pp == w) {
            *pp = w->wnext;
            w->wnext = NULL;
            return;
        }
    }
}

static void list_remove(struct ws *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        all = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->next = w->prev = NULL;
    if (w->phase == HEAD) {
        heads_remove(w);
        waiting_remove(w);
    }
}

/* Ends the socket: reset (SO_LINGER 0: the kernel drops what it holds) or closed
 * (which also takes it out of our epoll), and the connection told its transport is
 * gone; w is freed (ws_free). */
static void ws_end(struct ws *w, bool reset)
{
    struct mw_conn *c = w->conn;
    if (w->fd < 0)
        return;
    list_remove(w);
    if (reset) {
        struct linger lg = { 1, 0 };
        setsockopt(w->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(w->fd);
    w->fd = -1;
    if (w->phase != HEAD) {
        mw_wsrx_free(&w->rx);
        mw_inflate_free(&w->inf);
        free(w->answer);
    }
    w->conn = NULL;
    if (c)
        mw_conn_transport_gone(c);
    ws_free(w);
}

static void want_writable(struct ws *w, bool on)
{
    if (w->writable_wait == on || w->fd < 0)
        return;
    w->writable_wait = on;
    if (w->conn)
        w->conn->want_writable = on;
    set_events(w, EPOLLIN | (on ? EPOLLOUT : 0));
}

/* Our side is done (the close handshake, or a failure after our close frame): FIN
 * now, then read until the peer's FIN. The server ends the TCP connection first
 * (RFC 6455 7.1.1), and reading on avoids the reset a close() with unread data sends. */
static void finish(struct ws *w)
{
    if (w->phase != OPEN)
        return;
    w->phase = DRAIN;
    want_writable(w, false);
    shutdown(w->fd, SHUT_WR);
}

/* ---- writing ---- */

/* The part of the 101 answer the kernel took (n bytes of what was written): returns
 * what of n was the frames'. */
static size_t answer_sent(struct ws *w, size_t n)
{
    if (n < w->answer_len) { /* rare: a fresh socket takes a few hundred bytes */
        memmove(w->answer, w->answer + n, w->answer_len - n);
        w->answer_len -= (uint16_t)n;
        return 0;
    }
    n -= w->answer_len;
    free(w->answer);
    w->answer = NULL;
    w->answer_len = 0;
    return n;
}

/* Writes queued frames while the kernel takes them (writev: big frames from where they
 * lie, runs of small ones copied together), the 101 answer first while it waits.
 * Returns -1 when the socket failed. */
static int write_queue(struct ws *w, struct mw_conn *c)
{
    while (c->q.len || w->answer) {
        struct iovec iov[MAX_IOV];
        size_t total, pre = 0;
        if (w->answer) {
            iov[0] = (struct iovec){ w->answer, w->answer_len };
            pre = w->answer_len;
        }
        int k = mw_sendq_iov(&c->q, iov + (pre ? 1 : 0), MAX_IOV - 1, MW_FLUSH_CHUNK, tx_pack,
                             sizeof tx_pack, &total);
        k += pre ? 1 : 0;
        total += pre;
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)k };
        ssize_t n = sendmsg(w->fd, &mh, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                want_writable(w, true);
                return 0;
            }
            mw_log_debug("write failed", "conn=%s err=\"%s\"", c->id, strerror(errno));
            return -1;
        }
        size_t frames = pre ? answer_sent(w, (size_t)n) : (size_t)n;
        mw_sendq_consume(&c->q, frames);
        mw_conn_sent(c, frames);
        if ((size_t)n < total) {
            want_writable(w, true);
            return 0;
        }
    }
    want_writable(w, false);
    if (w->close_queued && !c->close_sent) { /* the close frame was the last one */
        c->close_sent = true;
        if (w->peer_closed || w->fail)
            finish(w);
    }
    return 0;
}

static int ws_flush(struct mw_conn *c)
{
    struct ws *w = c->tx;
    if (w->phase != OPEN || w->writable_wait)
        return 0; /* done writing, or the poll flushes once the kernel takes more */
    return write_queue(w, c);
}

/* Queues a close frame (code 0: an empty one) behind what is queued. */
static void queue_close(struct ws *w, struct mw_conn *c, int code, const char *reason)
{
    unsigned char p[2 + 123];
    size_t n = 0;
    if (code) {
        size_t rlen = strnlen(reason ? reason : "", 123);
        p[0] = (unsigned char)(code >> 8);
        p[1] = (unsigned char)code;
        memcpy(p + 2, reason, rlen);
        n = 2 + rlen;
    }
    struct mw_msg *m = mw_msg_new(MW_OP_CLOSE, p, n, MW_MSG_CONTROL);
    mw_sendq_push(&c->q, m);
    mw_msg_decref(m);
    w->close_queued = true;
    mw_conn_want_flush(c);
}

static void ws_close(struct mw_conn *c)
{
    queue_close(c->tx, c, c->close_code, c->close_reason);
}

static void ws_abort(struct mw_conn *c)
{
    ws_end(c->tx, true);
}

/* With permessage-deflate, the compressed copy every such connection shares. */
static struct mw_msg *ws_frame(struct mw_conn *c, struct mw_msg *m)
{
    struct ws *w = c->tx;
    return mw_deflate_frame(m, w->pmd_wbits);
}

/* Without compression a frame is queued as it is: no call per delivery. */
static const struct mw_transport ws_transport = {
    .name = "ws", .flush = ws_flush, .close = ws_close, .abort = ws_abort,
};
static const struct mw_transport ws_deflate_transport = {
    .name = "ws", .frame = ws_frame, .flush = ws_flush, .close = ws_close, .abort = ws_abort,
};

/* ---- frames in ---- */

/* A piece of a compressed message: inflated into c->rx, handed over at its end. */
static int inflated_data(struct ws *w, struct mw_conn *c, int op, unsigned char *p, size_t n,
                         bool first, bool last)
{
    if (first) {
        c->rx_binary = op == MW_WS_BINARY;
        c->rxlen = 0;
    }
    int rc = mw_inflate_piece(&w->inf, p, n, last, &c->rx, &c->rxlen, &c->rxcap,
                              mw_srv.cfg->max_message);
    if (rc) {
        w->why = rc == MW_WS_TOO_BIG ? "message too big" : "invalid compressed data";
        return rc;
    }
    if (!last)
        return 0;
    size_t len = c->rxlen;
    c->rxlen = 0;
    if (!c->rx_binary && !mw_utf8_valid((unsigned char *)c->rx, len)) {
        w->why = "invalid UTF-8";
        return MW_WS_INVALID_DATA;
    }
    mw_server_conn_input(c, c->rx ? c->rx : "", len, c->rx_binary);
    free(c->rx); /* most connections never need it: keep idle memory small */
    c->rx = NULL;
    c->rxcap = 0;
    return 0;
}

static int on_data(void *ud, int op, bool compressed, unsigned char *p, size_t n, bool first,
                   bool last)
{
    struct ws *w = ud;
    struct mw_conn *c = w->conn;
    if (!c || !mw_conn_is_open(c))
        return 0; /* nothing is handled once the close is decided */
    c->last_rx_ms = mw_now_ms();
    if (compressed) /* RSV1: only once permessage-deflate was agreed */
        return inflated_data(w, c, op, p, n, first, last);
    if (first && last) { /* the common case: a whole message in one read, no copy */
        mw_server_conn_input(c, (const char *)p, n, op == MW_WS_BINARY);
        return 0;
    }
    if (first)
        c->rx_binary = op == MW_WS_BINARY;
    if (c->rxlen + n > c->rxcap) { /* geometric: many small fragments cost O(n) */
        size_t cap = c->rxcap ? c->rxcap * 2 : 1024;
        if (cap < c->rxlen + n)
            cap = c->rxlen + n;
        c->rx = mw_realloc(c->rx, cap);
        c->rxcap = cap;
    }
    if (n)
        memcpy(c->rx + c->rxlen, p, n);
    c->rxlen += n;
    if (last) {
        size_t len = c->rxlen;
        c->rxlen = 0;
        mw_server_conn_input(c, c->rx ? c->rx : "", len, c->rx_binary);
        if (c->rx) { /* most connections never fragment: keep idle memory small */
            free(c->rx);
            c->rx = NULL;
            c->rxcap = 0;
        }
    }
    return 0;
}

static int on_control(void *ud, int op, int code, unsigned char *p, size_t n)
{
    struct ws *w = ud;
    struct mw_conn *c = w->conn;
    if (!c)
        return 0;
    if (op == MW_WS_PONG) {
        mw_server_conn_pong(c, p, n);
    } else if (op == MW_WS_PING) {
        /* Answered through the queue: after what is queued, before what comes next. */
        struct mw_msg *m = mw_msg_new(MW_OP_PONG, p, n, MW_MSG_CONTROL);
        mw_conn_send(c, m); /* refused once we are closing: no pong after our close */
        mw_msg_decref(m);
    } else if (op == MW_WS_CLOSE) {
        char reason[124];
        snprintf(reason, sizeof reason, "%.*s", (int)n, (const char *)p);
        w->peer_closed = true;
        if (mw_conn_peer_close(c, code, reason))
            finish(w); /* it answered our close frame: the handshake is complete */
        else if (!w->close_queued)
            queue_close(w, c, code == 1005 ? 0 : code, reason); /* echo its code */
    }
    return 0;
}

static const struct mw_wsrx_events events = { on_data, on_control };

static void frames_in(struct ws *w, unsigned char *p, size_t n)
{
    const char *why;
    struct mw_conn *c = w->conn;
    if (w->fail || w->rx.closed)
        return;
    int code = mw_wsrx_feed(&w->rx, p, n, mw_srv.cfg->max_message, &events, w, &why);
    if (!code)
        return;
    /* Fail the connection (RFC 6455 7.1.7): our close frame, then the FIN, and no
     * more reading of what the peer sends. */
    w->fail = true;
    if (w->why)
        why = w->why;
    if (code == MW_WS_TOO_BIG)
        mw_log_info("message too big", "conn=%s limit=%zu", c->id, mw_srv.cfg->max_message);
    else
        mw_log_info("protocol error", "conn=%s code=%d why=\"%s\"", c->id, code, why);
    if (mw_conn_is_open(c))
        mw_conn_close(c, code, code == MW_WS_TOO_BIG ? "message too big" : why);
    else if (c->close_sent || !w->close_queued)
        finish(w);
}

/* ---- the upgrade ---- */

static int head_query(void *tx, const char *name, char *buf, size_t len)
{
    return mw_httphead_query(tx, name, buf, len);
}

static int head_header(void *tx, const char *name, char *buf, size_t len)
{
    size_t vlen;
    const char *v = mw_httphead_get(tx, name, &vlen);
    if (!v || !len)
        return -1;
    size_t n = vlen < len - 1 ? vlen : len - 1;
    memcpy(buf, v, n);
    buf[n] = '\0';
    return (int)n;
}

static const char *status_text(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

/* The error code of a refusal's body, by HTTP status (the codes of docs/protocol.md). */
static const char *status_code(int status)
{
    switch (status) {
    case 401: return "unauthorized";
    case 403: return "forbidden";
    case 404: return "not_found";
    case 429: return "rate_limited";
    case 503: return "unavailable";
    default: return "bad_message";
    }
}

/* Refuses the upgrade with an HTTP status and {"error":CODE,"message":WHY}, then
 * closes. A 401 says how to authenticate (WWW-Authenticate: Bearer). */
static void refuse(struct ws *w, int status, const char *why, const char *extra)
{
    char resp[1024];
    struct mw_buf body = { 0 };
    mw_buf_puts(&body, "{\"error\":");
    mw_jsonw_str(&body, status_code(status));
    mw_buf_puts(&body, ",\"message\":");
    mw_jsonw_str(&body, why ? why : "refused");
    mw_buf_puts(&body, "}\n");
    if (status == 401 && !extra)
        extra = "WWW-Authenticate: Bearer\r\n";
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 %d %s\r\nServer: moonwire\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n%s\r\n%.*s",
                     status, status_text(status), body.len, extra ? extra : "", (int)body.len, body.p);
    mw_buf_free(&body);
    if (n > 0 && n < (int)sizeof resp && send(w->fd, resp, (size_t)n, MSG_NOSIGNAL) < 0)
        mw_log_debug("refusal not sent", "err=\"%s\"", strerror(errno));
    shutdown(w->fd, SHUT_WR);
    ws_end(w, false);
}

/* An IPv4 address in dotted decimal, as inet_ntop writes it (which costs a sprintf
 * per connection); "" if len is too small. */
static void ipv4_text(const struct in_addr *a, char *buf, size_t len)
{
    const unsigned char *b = (const unsigned char *)&a->s_addr;
    char tmp[INET_ADDRSTRLEN], *p = tmp;
    for (int i = 0; i < 4; i++) {
        if (i)
            *p++ = '.';
        if (b[i] >= 100)
            *p++ = (char)('0' + b[i] / 100);
        if (b[i] >= 10)
            *p++ = (char)('0' + b[i] / 10 % 10);
        *p++ = (char)('0' + b[i] % 10);
    }
    *p = '\0';
    if ((size_t)(p - tmp) < len)
        memcpy(buf, tmp, (size_t)(p - tmp) + 1);
}

/* The peer's address as text: the one accept gave, else asked for. */
static void remote_of(const struct ws *w, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    buf[0] = '\0';
    if (w->peer.sin6_family)
        memcpy(&ss, &w->peer, sizeof w->peer);
    else if (getpeername(w->fd, (struct sockaddr *)&ss, &sl) < 0)
        return;
    if (ss.ss_family == AF_INET)
        ipv4_text(&((struct sockaddr_in *)&ss)->sin_addr, buf, len);
    else if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, buf, (socklen_t)len);
}

static int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+' || ch == '-')
        return 62;
    if (ch == '/' || ch == '_')
        return 63;
    return -1;
}

/* base64 of 20 bytes: 28 characters and a NUL into out. */
static void b64_20(const unsigned char *in, char *out)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int o = 0;
    for (int i = 0; i < 18; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = al[v >> 18];
        out[o++] = al[(v >> 12) & 63];
        out[o++] = al[(v >> 6) & 63];
        out[o++] = al[v & 63];
    }
    uint32_t v = (uint32_t)in[18] << 16 | (uint32_t)in[19] << 8;
    out[o++] = al[v >> 18];
    out[o++] = al[(v >> 12) & 63];
    out[o++] = al[(v >> 6) & 63];
    out[o++] = '=';
    out[o] = '\0';
}

/* Sec-WebSocket-Accept for the key: base64(SHA-1(key + GUID)), 28 characters into
 * out (29 bytes). Returns false when the key is not the base64 of 16 bytes (22
 * characters of either alphabet and "=="). */
static bool accept_key(const char *key, size_t klen, char *out)
{
    unsigned char sha[20];
    if (klen != 24 || key[22] != '=' || key[23] != '=')
        return false;
    for (int i = 0; i < 22; i++)
        if (b64_value((unsigned char)key[i]) < 0)
            return false;
    char in[24 + sizeof WS_GUID];
    memcpy(in, key, 24);
    memcpy(in + 24, WS_GUID, sizeof WS_GUID - 1);
    mw_sha1(in, 24 + sizeof WS_GUID - 1, sha);
    b64_20(sha, out);
    return true;
}

/* What RFC 6455 4.2.1 asks of the request: 0, or the status to refuse it with, a few
 * words why and a header line for the answer. Sets the accept key and whether the
 * client asked for our sub-protocol. */
static int check_upgrade(const struct mw_httphead *h, char *accept, size_t alen, bool *proto,
                         const char **why, const char **extra)
{
    size_t vlen;
    const char *v;
    *extra = NULL;
    *why = "not a WebSocket upgrade: GET with Connection: Upgrade expected";
    if (h->mlen != 3 || memcmp(h->method, "GET", 3) != 0 || h->minor < 1 ||
        !mw_httphead_has_token(h, "connection", "upgrade"))
        return 400;
    v = mw_httphead_get(h, "sec-websocket-version", &vlen);
    if (!v || vlen != 2 || memcmp(v, "13", 2) != 0) {
        *why = "WebSocket version 13 only";
        *extra = "Sec-WebSocket-Version: 13\r\n";
        return 426;
    }
    v = mw_httphead_get(h, "sec-websocket-key", &vlen);
    *why = "missing or malformed Sec-WebSocket-Key";
    if (!v || alen < 29 || !accept_key(v, vlen, accept))
        return 400;
    /* lws refused any sub-protocol but its one: so do we. */
    *proto = mw_httphead_get(h, "sec-websocket-protocol", &vlen) != NULL;
    *why = "unsupported sub-protocol: only moonwire, or none";
    if (*proto && !mw_httphead_has_token(h, "sec-websocket-protocol", "moonwire"))
        return 400;
    *why = "no such route";
    if (h->plen >= 256)
        return 404;
    *why = NULL;
    return 0;
}

/* permessage-deflate, when the client offers it in an acceptable form: the response's
 * header value goes in ext, and RSV1 is allowed from then on. */
static void negotiate(struct ws *w, const struct mw_httphead *h, char *ext, size_t extlen)
{
    const char *vals[MW_HTTPHEAD_MAX_HEADERS];
    size_t lens[MW_HTTPHEAD_MAX_HEADERS], n = 0;
    for (size_t i = 0; i < h->nfields; i++) {
        if (h->f[i].nlen == 24 && strncasecmp(h->f[i].name, "sec-websocket-extensions", 24) == 0) {
            vals[n] = h->f[i].value;
            lens[n++] = h->f[i].vlen;
        }
    }
    int wbits = mw_pmd_negotiate(vals, lens, n, ext, extlen);
    w->pmd_wbits = (uint8_t)wbits;
    w->rx.allow_rsv1 = wbits > 0;
}

/* A complete head that asks for a WebSocket (h->len bytes of buf[0..len); the rest
 * is the first frames). */
static void upgrade(struct ws *w, struct mw_httphead *h, char *buf, size_t len)
{
    char path[256], remote[64], accept[40];
    const char *why, *extra;
    bool proto = false;
    int status = check_upgrade(h, accept, sizeof accept, &proto, &why, &extra);
    if (status) {
        mw_log_info("upgrade rejected", "status=%d reason=\"%s\"", status, why);
        refuse(w, status, why, extra);
        return;
    }
    memcpy(path, h->target, h->plen);
    path[h->plen] = '\0';
    remote_of(w, remote, sizeof remote);
    struct mw_open_req req = { path, remote, h, head_query, head_header };
    if ((status = mw_server_check_open(&req, &why))) {
        refuse(w, status, why, NULL);
        return;
    }
    /* The head is done: its memory becomes the WebSocket's. */
    heads_remove(w);
    memset(&w->answer, 0, sizeof *w - offsetof(struct ws, answer));
    w->phase = OPEN;
    char ext[160] = "";
    if (mw_server_route(path)->cfg->compression)
        negotiate(w, h, ext, sizeof ext);

    /* Written with the first frames (hello, and the answers to frames that came with
     * the request): one system call fewer per connection. */
    struct mw_buf b = { 0 };
    mw_buf_reserve(&b, 256);
    mw_buf_puts(&b, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Accept: ");
    mw_buf_puts(&b, accept);
    mw_buf_puts(&b, "\r\n");
    if (proto)
        mw_buf_puts(&b, "Sec-WebSocket-Protocol: moonwire\r\n");
    if (ext[0]) {
        mw_buf_puts(&b, "Sec-WebSocket-Extensions: ");
        mw_buf_puts(&b, ext);
        mw_buf_puts(&b, "\r\n");
    }
    mw_buf_puts(&b, "\r\n");
    w->answer = b.p;
    w->answer_len = (uint16_t)b.len;
    w->conn = mw_server_open(w->pmd_wbits ? &ws_deflate_transport : &ws_transport, w, &req);
    if (!w->conn) {
        ws_end(w, true);
        return;
    }
    mw_conn_want_flush(w->conn); /* a raw route sends no hello */
    if (len > h->len) /* frames that came with the request */
        frames_in(w, (unsigned char *)buf + h->len, len - h->len);
}

/* Plain HTTP: to libwebsockets, out of our epoll first (two pollers must never
 * watch one socket). Nothing was read from it. */
static void hand_to_lws(struct ws *w)
{
    int fd = w->fd;
    list_remove(w);
    set_events(w, 0);
    ws_free(w);
    if (!started) /* shutting down: lws is going away */
        close(fd);
    else if (!lws_adopt_socket_vhost(vhost, fd))
        mw_log_debug("adopt failed", "fd=%d", fd); /* lws closed it */
}

static void arm_head_timer(void);

/* A head not complete yet: peek again later, the longer the less it moves (the
 * unread bytes keep the socket readable, so it cannot just wait for the poll). */
static void wait_for_more(struct ws *w, size_t seen)
{
    uint32_t delay = seen > w->peeked ? PEEK_RETRY_MS : w->backoff_ms * 2;
    w->peeked = (uint32_t)seen;
    w->backoff_ms = delay < PEEK_RETRY_MAX_MS ? delay : PEEK_RETRY_MAX_MS;
    w->retry_ms = mw_now_ms() + w->backoff_ms;
    set_events(w, 0);
    w->wnext = waiting;
    waiting = w;
    arm_head_timer();
}

/* The request head, peeked: an upgrade is consumed and taken, anything else goes to
 * libwebsockets with every byte still in the socket. */
static void head_in(struct ws *w)
{
    ssize_t n = recv(w->fd, rbuf, HEAD_MAX, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        ws_end(w, n < 0);
        return;
    }
    struct mw_httphead h;
    int rc = mw_httphead_parse(&h, (const char *)rbuf, (size_t)n);
    if (rc == 0 && n < HEAD_MAX) {
        wait_for_more(w, (size_t)n);
        return;
    }
    if (rc != 1 || !mw_httphead_has_token(&h, "upgrade", "websocket")) {
        hand_to_lws(w); /* plain HTTP, or anything lws may answer better */
        return;
    }
    if (recv(w->fd, rbuf, (size_t)n, 0) != n) { /* what was peeked is there */
        ws_end(w, true);
        return;
    }
    upgrade(w, &h, (char *)rbuf, (size_t)n);
}

/* ---- the poll ---- */

static void on_readable(struct ws *w)
{
    if (w->phase == HEAD) {
        head_in(w);
        return;
    }
    ssize_t n = recv(w->fd, rbuf, sizeof rbuf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) { /* the peer's FIN, or an error: the socket is done */
        ws_end(w, n < 0);
        return;
    }
    if (w->phase == OPEN && w->conn)
        frames_in(w, rbuf, (size_t)n);
    /* DRAIN: discarded */
}

/* One socket's events: an error (a reset by the peer, mostly) ends it; what is
 * writable is written before what is readable is read. */
static void on_socket(struct ws *w, uint32_t ev)
{
    if (ev & EPOLLERR) {
        ws_end(w, false); /* the kernel has nothing left to drop */
        return;
    }
    if ((ev & EPOLLOUT) && w->conn && w->phase == OPEN && write_queue(w, w->conn) < 0) {
        mw_conn_kill(w->conn, "write failed");
        want_writable(w, false);
    }
    if ((ev & (EPOLLIN | EPOLLHUP)) && w->fd >= 0)
        on_readable(w);
}

/* Our epoll is readable: a batch of socket events. A socket ended while handling the
 * batch may still have events in it: its struct lives (fd -1) until the end. */
static void on_epoll(uv_poll_t *h, int status, int events)
{
    (void)h;
    (void)status;
    (void)events;
    struct epoll_event ev[EVENTS_MAX];
    int n = epoll_wait(epfd, ev, EVENTS_MAX, 0);
    dispatching = true;
    for (int i = 0; i < n; i++) {
        struct ws *w = ev[i].data.ptr;
        if (w->fd >= 0)
            on_socket(w, ev[i].events);
    }
    dispatching = false;
    while (dead) {
        struct ws *w = dead;
        dead = w->next;
        free(w);
    }
}

/* ---- heads that take too long, and partial heads ---- */

static void on_head_timer(uv_timer_t *t)
{
    (void)t;
    uint64_t now = mw_now_ms();
    while (heads && heads->deadline_ms <= now) {
        mw_log_debug("request head timed out", "fd=%d", heads->fd);
        ws_end(heads, true); /* removes it from heads */
    }
    for (struct ws **pp = &waiting; *pp;) {
        struct ws *w = *pp;
        if (w->retry_ms > now) {
            pp = &w->wnext;
            continue;
        }
        *pp = w->wnext; /* poll it again: its bytes make it readable at once */
        w->wnext = NULL;
        set_events(w, EPOLLIN);
    }
    arm_head_timer();
}

static void arm_head_timer(void)
{
    uint64_t due = heads ? heads->deadline_ms : 0;
    for (struct ws *w = waiting; w; w = w->wnext)
        if (!due || w->retry_ms < due)
            due = w->retry_ms;
    if (!due) {
        uv_timer_stop(&head_timer);
        return;
    }
    uint64_t now = mw_now_ms();
    uv_timer_start(&head_timer, on_head_timer, due > now ? due - now : 0, 0);
}

/* ---- public ---- */

void mw_ws_start(struct lws_vhost *vh)
{
    vhost = vh;
    epfd = epoll_create1(EPOLL_CLOEXEC);
    mw_assert(epfd >= 0);
    uv_poll_init(uv_default_loop(), &ep_poll, epfd);
    uv_poll_start(&ep_poll, UV_READABLE, on_epoll);
    uv_timer_init(uv_default_loop(), &head_timer);
    uv_unref((uv_handle_t *)&head_timer);
    started = true;
}

static struct ws *ws_new(int fd)
{
    struct ws *w = mw_calloc(1, sizeof *w);
    w->fd = fd;
    w->phase = HEAD;
    w->deadline_ms = mw_now_ms() + HEAD_TIMEOUT_MS;
    set_events(w, EPOLLIN);
    w->next = all;
    if (all)
        all->prev = w;
    all = w;
    return w;
}

void mw_ws_accept(int fd, const struct sockaddr *peer, unsigned peerlen)
{
    struct ws *w = ws_new(fd);
    if (peerlen <= sizeof w->peer)
        memcpy(&w->peer, peer, peerlen);
    w->hprev = heads_tail;
    if (heads_tail)
        heads_tail->hnext = w;
    else
        heads = w;
    heads_tail = w;
    if (heads == w)
        arm_head_timer();
}

void mw_ws_adopt_upgrade(int fd, const char *head, size_t len)
{
    struct ws *w = ws_new(fd);
    struct mw_httphead h;
    char *copy = mw_malloc(len); /* upgrade() unmasks frames in place: ours to write */
    memcpy(copy, head, len);
    if (mw_httphead_parse(&h, copy, len) == 1)
        upgrade(w, &h, copy, len);
    else
        ws_end(w, true);
    free(copy);
}

static void on_epoll_closed(uv_handle_t *h)
{
    (void)h;
    close(epfd);
    epfd = -1;
}

void mw_ws_stop(void)
{
    while (all)
        ws_end(all, false);
    if (started) {
        uv_close((uv_handle_t *)&head_timer, NULL);
        uv_close((uv_handle_t *)&ep_poll, on_epoll_closed);
    }
    started = false;
}
