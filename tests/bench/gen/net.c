/* net.c - the generator's epoll loop and WebSocket client connections (see net.h). */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "bytes.h"
#include "clock.h"
#include "dscan.h"
#include "jscan.h"
#include "proc.h"
#include "wsc.h"

#define RBUF_SIZE (1 << 20)      /* one read takes at most this much */
#define MAX_EVENTS 4096          /* connections handled per epoll_wait */
#define OUT_LIMIT (1 << 20)      /* unsent bytes per connection before sends are skipped */
#define MAX_MESSAGE (16u << 20)  /* a reassembled message larger than this is an error */

static unsigned char rbuf[RBUF_SIZE];

/* ---- set-up and teardown ---- */

static const int close_codes[8] = { 1000, 1001, 1006, 1008, 1009, 1011, 4001, 0 };

const char *net_close_code_name(int i)
{
    static const char *names[8] = { "1000", "1001", "eof", "1008", "1009", "1011", "4001", "other" };
    return names[i];
}

static int close_slot(int code)
{
    for (int i = 0; i < 7; i++)
        if (close_codes[i] == code)
            return i;
    return 7;
}

int net_init(struct net *n, const struct net_opts *o, uint32_t nconns, uint32_t nrooms,
             const char *room_prefix)
{
    memset(n, 0, sizeof *n);
    n->o = *o;
    n->ep = epoll_create1(EPOLL_CLOEXEC);
    n->conns = calloc(nconns, sizeof *n->conns);
    n->rooms = calloc(nrooms, sizeof *n->rooms);
    n->room_ready = calloc(nrooms, sizeof *n->room_ready);
    n->pending = calloc(nconns, sizeof *n->pending);
    if (n->ep < 0 || !n->conns || !n->rooms || !n->room_ready || !n->pending)
        return -1;
    n->batch_ns = o->batch_auto ? 0 : o->batch_ns;
    n->fast_t = n->fast_seq = -1;
    n->nconns = nconns;
    n->nrooms = nrooms;
    for (uint32_t i = 0; i < nconns; i++) {
        n->conns[i].idx = i;
        n->conns[i].fd = -1;
    }
    for (uint32_t i = 0; i < nrooms; i++) {
        if (nrooms == 1)
            snprintf(n->rooms[i], sizeof n->rooms[i], "%s", room_prefix);
        else
            snprintf(n->rooms[i], sizeof n->rooms[i], "%s-%u", room_prefix, i);
    }
    hist_reset(&n->c.lat);
    hist_reset(&n->c.lat_user);
    clock_refresh();
    return 0;
}

void net_free(struct net *n)
{
    for (uint32_t i = 0; i < n->nconns; i++) {
        struct conn *c = &n->conns[i];
        if (c->fd >= 0)
            close(c->fd);
        bytes_free(&c->in);
        bytes_free(&c->out);
        bytes_free(&c->frag);
    }
    free(n->conns);
    free(n->rooms);
    free(n->room_ready);
    free(n->pending);
    if (n->ep >= 0)
        close(n->ep);
}

static void set_events(struct net *n, struct conn *c, bool out)
{
    struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c };
    if (out != c->want_out) {
        c->want_out = out;
        epoll_ctl(n->ep, EPOLL_CTL_MOD, c->fd, &ev);
    }
}

/* Remembers the first failure in words: "<kind>: <why>[ <strerror>]". */
static void fail_note(struct net *n, const char *kind, const char *why, int err)
{
    if (!n->fails.first[0])
        snprintf(n->fails.first, sizeof n->fails.first, "%s: %s%s%s", kind, why,
                 err ? " " : "", err ? strerror(err) : "");
}

/* Ends c: counts the failure by the stage it was in, closes the socket. */
static void conn_die(struct net *n, struct conn *c, const char *why, int err)
{
    uint8_t st = c->state;
    if (st == C_DEAD || st == C_IDLE)
        return;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->failed_in = st;
    c->state = C_DEAD;
    c->want_out = false;
    c->corked = false;
    bytes_free(&c->in);
    bytes_free(&c->out);
    bytes_free(&c->frag);
    if (st != C_READY) {
        n->in_setup--;
        if (st == C_CONNECTING)
            n->fails.connect++;
        else if (st == C_UPGRADING)
            n->fails.upgrade++;
        else if (st == C_HELLO)
            n->fails.hello++;
        else
            n->fails.join++;
        fail_note(n, "set-up failed", why, err);
    } else if (c->slow) {
        n->slow_closed++;
    } else {
        n->room_ready[c->room]--;
        n->fails.closed_ready++;
        fail_note(n, "connection closed", why, err);
        if (n->on_dead)
            n->on_dead(n, c);
    }
}

void net_drop(struct net *n, struct conn *c)
{
    if (c->state == C_DEAD || c->state == C_IDLE)
        return;
    if (c->state == C_READY && !c->slow)
        n->room_ready[c->room]--;
    else if (c->state != C_READY)
        n->in_setup--;
    if (n->o.linger0) {
        struct linger l = { 1, 0 };
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    close(c->fd);
    c->fd = -1;
    c->state = C_DEAD;
    c->failed_in = 0;
    c->want_out = false;
    c->corked = false;
    bytes_free(&c->in);
    bytes_free(&c->out);
    bytes_free(&c->frag);
}

/* The node a connection talks to: with --port2, members alternate between two nodes
 * (publishers, the first connections, stay on the first). */
static int conn_port(const struct net *n, const struct conn *c)
{
    return n->o.port2 && (c->idx % 2) ? n->o.port2 : n->o.port;
}

void net_start(struct net *n, struct conn *c, uint32_t room)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)conn_port(n, c)),
                              .sin_addr = n->o.host };
    int one = 1;
    c->room = room;
    c->slow = false;
    c->state = C_CONNECTING;
    c->close_code = 0;
    c->t0 = now_ns();
    n->in_setup++;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        conn_die(n, c, "socket:", errno);
        return;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(c->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    if (n->slow_from && c->idx >= n->slow_from) {
        int small = 4096; /* before connect: the window stays small */
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    }
    if (n->o.sources > 1) {
        /* Several source addresses multiply the ephemeral ports we can use; the port
         * is chosen at connect time, per destination. */
        struct sockaddr_in src = { .sin_family = AF_INET };
        src.sin_addr.s_addr = htonl(0x7f000001u + c->idx % (uint32_t)n->o.sources);
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(c->fd, (struct sockaddr *)&src, sizeof src) < 0) {
            conn_die(n, c, "bind:", errno);
            return;
        }
    }
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
        conn_die(n, c, "connect:", errno);
        return;
    }
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
    c->want_out = true;
    epoll_ctl(n->ep, EPOLL_CTL_ADD, c->fd, &ev);
}

/* ---- writing ---- */

/* Writes what the kernel takes now and keeps the rest for EPOLLOUT. */
static void conn_write(struct net *n, struct conn *c, const void *p, size_t len)
{
    if (n->corked && c->state == C_READY) {
        if (!c->corked && !bytes_pending(&c->out)) {
            c->corked = true;
            n->pending[n->npending++] = c->idx;
        }
        bytes_append(&c->out, p, len);
        return;
    }
    if (!bytes_pending(&c->out) && c->state != C_CONNECTING) {
        ssize_t w = write(c->fd, p, len);
        if (w < 0 && errno != EAGAIN) {
            conn_die(n, c, "write:", errno);
            return;
        }
        if (w > 0) {
            p = (const char *)p + w;
            len -= (size_t)w;
        }
        if (!len)
            return;
    }
    bytes_append(&c->out, p, len);
    set_events(n, c, true);
}

static void on_writable(struct net *n, struct conn *c)
{
    while (bytes_pending(&c->out)) {
        ssize_t w = write(c->fd, c->out.p + c->out.off, bytes_pending(&c->out));
        if (w < 0) {
            if (errno != EAGAIN)
                conn_die(n, c, "write:", errno);
            return;
        }
        c->out.off += (size_t)w;
    }
    c->out.off = c->out.len = 0;
    set_events(n, c, false);
}

void net_cork(struct net *n)
{
    n->corked = true;
}

void net_uncork(struct net *n)
{
    n->corked = false;
    for (uint32_t i = 0; i < n->npending; i++) {
        struct conn *c = &n->conns[n->pending[i]];
        if (!c->corked)
            continue;
        c->corked = false;
        if (c->state != C_DEAD && bytes_pending(&c->out) && !c->want_out) {
            on_writable(n, c);
            if (c->state != C_DEAD && bytes_pending(&c->out))
                set_events(n, c, true);
        }
    }
    n->npending = 0;
}

static void send_frame(struct net *n, struct conn *c, int opcode, const void *p, size_t len)
{
    unsigned char stack[1024];
    size_t need = wsc_frame_size(len);
    unsigned char *buf = need <= sizeof stack ? stack : malloc(need);
    if (!buf)
        abort();
    size_t fl = wsc_frame(buf, opcode, p, len);
    conn_write(n, c, buf, fl);
    if (buf != stack)
        free(buf);
}

static void on_connected(struct net *n, struct conn *c)
{
    int err = 0;
    socklen_t sl = sizeof err;
    char req[512], target[256];
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &sl);
    if (err) {
        conn_die(n, c, "connect:", err);
        return;
    }
    snprintf(target, sizeof target, "%s?user=u%llu", n->o.path,
             (unsigned long long)++n->user_serial);
    int len = wsc_request(req, sizeof req, inet_ntoa(n->o.host), conn_port(n, c), target,
                          c->accept, n->o.deflate);
    c->state = C_UPGRADING;
    set_events(n, c, false);
    conn_write(n, c, req, (size_t)len);
}

bool net_send_chat(struct net *n, struct conn *c, uint64_t seq, const char *pad)
{
    char msg[1024], id[32] = "";
    if (c->state != C_READY)
        return false;
    if (bytes_pending(&c->out) > OUT_LIMIT) {
        n->c.send_blocked++;
        return false;
    }
    if (n->o.ack)
        snprintf(id, sizeof id, ",\"id\":%llu", (unsigned long long)seq);
    uint64_t t = now_ns();
    int len = snprintf(msg, sizeof msg,
                       "{\"type\":\"chat:message\",\"room\":\"%s\"%s,\"data\":{\"t\":%llu,"
                       "\"seq\":%llu,\"pad\":\"%s\"}}",
                       n->rooms[c->room], id, (unsigned long long)t, (unsigned long long)seq, pad);
    if (len < 0 || (size_t)len >= sizeof msg)
        return false;
    n->c.sent++;
    n->c.expected += n->room_ready[c->room];
    if (!n->c.first_send_ns)
        n->c.first_send_ns = t;
    n->c.last_send_ns = t;
    send_frame(n, c, WS_TEXT, msg, (size_t)len);
    return true;
}

void net_set_slow(struct net *n, struct conn *c)
{
    struct epoll_event ev = { .events = 0, .data.ptr = c };
    if (c->state != C_READY || c->slow)
        return;
    c->slow = true;
    n->room_ready[c->room]--;
    c->want_out = false;
    epoll_ctl(n->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

uint64_t net_slow_check(struct net *n, double secs)
{
    uint64_t end = now_ns() + (uint64_t)(secs * 1e9);
    for (uint32_t i = 0; i < n->nconns; i++) {
        struct conn *c = &n->conns[i];
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (c->slow && c->state == C_READY)
            epoll_ctl(n->ep, EPOLL_CTL_MOD, c->fd, &ev);
    }
    for (uint64_t t; (t = now_ns()) < end;) {
        uint32_t open = 0;
        for (uint32_t i = 0; i < n->nconns; i++)
            open += n->conns[i].slow && n->conns[i].state == C_READY;
        if (!open)
            break;
        net_poll(n, 10000000);
    }
    return n->slow_closed;
}

void net_batching(struct net *n, bool on)
{
    n->batch_off = !on;
    if (n->o.batch_auto) { /* start from 0 again: the measured part adapts afresh */
        n->batch_ns = 0;
        n->win_wall_ns = 0;
    }
}

void net_counters_reset(struct net *n, uint64_t seq_lo)
{
    memset(&n->c, 0, offsetof(struct counters, lat));
    hist_reset(&n->c.lat);
    hist_reset(&n->c.lat_user);
    hist_reset(&n->c.send_lag);
    n->c.seq_lo = seq_lo;
}

/* ---- frames in ---- */

/* Counts one delivery of message seq sent at t (our clock), read at `now`. */
static void delivered(struct net *n, int64_t t, int64_t seq, uint64_t now)
{
    if ((uint64_t)seq < n->c.seq_lo) {
        n->c.late++;
        return;
    }
    uint64_t rx = n->rx_ns ? n->rx_ns : now;
    n->c.delivered++;
    n->c.last_rx_ns = now;
    hist_add(&n->c.lat, rx > (uint64_t)t ? rx - (uint64_t)t : 0);
    hist_add(&n->c.lat_user, now > (uint64_t)t ? now - (uint64_t)t : 0);
}

/* data of a chat:message event (the generic walk). Teaches dscan the event's layout. */
static void on_delivery(struct net *n, const char *ev, size_t evlen, const char *type_key,
                        const char *data, size_t len, uint64_t now)
{
    struct js_iter it;
    const char *k, *v, *t_key = NULL, *seq_key = NULL;
    size_t kl, vl;
    int64_t t = -1, seq = -1;
    if (js_iter_init(&it, data, len) < 0) {
        n->c.other++;
        return;
    }
    while (js_next(&it, &k, &kl, &v, &vl) > 0) {
        if (js_eq(k, kl, "t") && js_int(v, vl, &t))
            t_key = k - 1;
        else if (js_eq(k, kl, "seq") && js_int(v, vl, &seq))
            seq_key = k - 1;
    }
    if (t < 0 || seq < 0) {
        n->c.other++;
        return;
    }
    if (n->fast_t < 0) {
        ds_learn(&n->ds, ev, evlen, type_key, t_key, seq_key);
    } else if (n->fast_t != t || n->fast_seq != seq) { /* --check-parse */
        fprintf(stderr, "mwbench: --check-parse: read in place t=%lld seq=%lld, the JSON walk "
                "says t=%lld seq=%lld in: %.*s\n", (long long)n->fast_t, (long long)n->fast_seq,
                (long long)t, (long long)seq, (int)evlen, ev);
        abort();
    } else {
        n->fast_t = -1; /* confirmed */
    }
    delivered(n, t, seq, now);
}

static void send_join(struct net *n, struct conn *c)
{
    char msg[128];
    int len = snprintf(msg, sizeof msg, "{\"type\":\"join\",\"room\":\"%s\",\"id\":0}",
                       n->rooms[c->room]);
    c->state = C_JOINING;
    send_frame(n, c, WS_TEXT, msg, (size_t)len);
}

static void on_reply(struct net *n, struct conn *c, bool ok, const char *id, size_t idl,
                     const char *code, size_t codel)
{
    int64_t v = -1;
    if (id)
        js_int(id, idl, &v);
    if (v == 0 && c->state == C_JOINING) {
        if (!ok) {
            char why[96];
            snprintf(why, sizeof why, "join error %.*s", (int)(codel < 40 ? codel : 40), code);
            conn_die(n, c, why, 0);
            return;
        }
        c->state = C_READY;
        n->in_setup--;
        n->ready_total++;
        n->room_ready[c->room]++;
        if (n->on_ready)
            n->on_ready(n, c);
        return;
    }
    if (ok) {
        n->c.acked++;
        return;
    }
    n->c.errors++;
    if (!n->c.first_error[0])
        snprintf(n->c.first_error, sizeof n->c.first_error, "%.*s",
                 (int)(codel < 60 ? codel : 60), code ? code : "?");
}

/* One complete text message from the server, through the generic JSON walk. */
static void on_text_walk(struct net *n, struct conn *c, const char *p, size_t len, uint64_t now)
{
    struct js_iter it;
    const char *k, *v, *type = NULL, *id = NULL, *data = NULL, *code = NULL, *type_key = NULL;
    size_t kl, vl, typel = 0, idl = 0, datal = 0, codel = 0;
    if (js_iter_init(&it, p, len) < 0) {
        n->c.other++;
        return;
    }
    while (js_next(&it, &k, &kl, &v, &vl) > 0) {
        if (js_eq(k, kl, "type"))
            type = v, typel = vl, type_key = k - 1;
        else if (js_eq(k, kl, "data"))
            data = v, datal = vl;
        else if (js_eq(k, kl, "id"))
            id = v, idl = vl;
        else if (js_eq(k, kl, "code"))
            code = v, codel = vl;
    }
    if (!type || c->slow)
        n->c.other++;
    else if (js_eq(type, typel, "chat:message") && data)
        on_delivery(n, p, len, type_key, data, datal, now);
    else if (js_eq(type, typel, "ack"))
        on_reply(n, c, true, id, idl, NULL, 0);
    else if (js_eq(type, typel, "error"))
        on_reply(n, c, false, id, idl, code, codel);
    else if (js_eq(type, typel, "hello") && c->state == C_HELLO)
        send_join(n, c);
    else
        n->c.other++;
}

/* One complete text message: a chat:message read in place when its layout is known
 * (dscan), anything else through the JSON walk. */
static void on_text(struct net *n, struct conn *c, const char *p, size_t len, uint64_t now)
{
    int64_t t = 0, seq = 0;
    n->frames_in++;
    if (!c->slow && ds_match(&n->ds, p, len, &t, &seq)) {
        n->ds.hits++;
        if (!n->o.check_parse) {
            delivered(n, t, seq, now);
            return;
        }
        n->fast_t = t; /* --check-parse: on_delivery compares with the walk */
        n->fast_seq = seq;
    } else {
        n->fast_t = n->fast_seq = -1;
    }
    on_text_walk(n, c, p, len, now);
    if (n->fast_t >= 0 && c->state != C_DEAD) {
        fprintf(stderr, "mwbench: --check-parse: read in place as a delivery, the JSON walk "
                "says it is none: %.*s\n", (int)len, p);
        abort();
    }
}

/* A compressed message (permessage-deflate, no context takeover: each on its own),
 * inflated into a buffer kept for the next one. NULL when it is not valid. */
static const char *inflate_msg(struct net *n, const unsigned char *p, size_t len, size_t *out)
{
    static z_stream z;
    static bool ready;
    static unsigned char *buf;
    static size_t cap;
    static const unsigned char trailer[4] = { 0x00, 0x00, 0xff, 0xff };
    if (!ready) {
        if (inflateInit2(&z, -15) != Z_OK)
            return NULL;
        ready = true;
    }
    inflateReset(&z);
    size_t at = 0;
    for (int pass = 0; pass < 2; pass++) {
        z.next_in = (Bytef *)(pass ? trailer : p);
        z.avail_in = (uInt)(pass ? sizeof trailer : len);
        while (z.avail_in) {
            if (at == cap) {
                cap = cap ? cap * 2 : 4096;
                if (cap > MAX_MESSAGE)
                    return NULL;
                buf = realloc(buf, cap);
                if (!buf)
                    return NULL;
            }
            z.next_out = buf + at;
            z.avail_out = (uInt)(cap - at);
            int rc = inflate(&z, Z_SYNC_FLUSH);
            at = cap - z.avail_out;
            if (rc != Z_OK && rc != Z_BUF_ERROR)
                return NULL;
            if (rc == Z_BUF_ERROR && z.avail_out)
                break;
        }
    }
    n->inflated++;
    *out = at;
    return (const char *)buf;
}

static void on_frame(struct net *n, struct conn *c, const struct wsc_frame *f,
                     const unsigned char *p, uint64_t now)
{
    if (f->rsv1) { /* the server never fragments what it compresses */
        size_t len;
        const char *text = f->fin && f->opcode == WS_TEXT ? inflate_msg(n, p, f->len, &len) : NULL;
        if (!text)
            conn_die(n, c, "bad compressed frame", 0);
        else
            on_text(n, c, text, len, now);
        return;
    }
    switch (f->opcode) {
    case WS_PING:
        send_frame(n, c, WS_PONG, p, f->len);
        return;
    case WS_PONG:
        return;
    case WS_CLOSE: {
        int code = f->len >= 2 ? (p[0] << 8 | p[1]) : 1005;
        char why[32];
        c->close_code = (uint16_t)code;
        n->fails.by_code[close_slot(code)]++;
        snprintf(why, sizeof why, "close %d", code);
        conn_die(n, c, why, 0);
        return;
    }
    default:
        break;
    }
    if (f->fin && f->opcode != WS_CONT && !bytes_pending(&c->frag)) {
        if (f->opcode == WS_TEXT)
            on_text(n, c, (const char *)p, f->len, now);
        else
            n->c.other++;
        return;
    }
    if (bytes_pending(&c->frag) + f->len > MAX_MESSAGE) {
        conn_die(n, c, "message too big", 0);
        return;
    }
    bytes_append(&c->frag, p, f->len);
    if (f->fin) {
        on_text(n, c, (const char *)c->frag.p + c->frag.off, bytes_pending(&c->frag), now);
        if (c->state != C_DEAD)
            c->frag.off = c->frag.len = 0;
    }
}

/* Handles the frames in p[0..len); returns the bytes consumed (a partial frame stays),
 * or len when c died on the way. */
static size_t consume(struct net *n, struct conn *c, const unsigned char *p, size_t len,
                      uint64_t now)
{
    size_t off = 0;
    if (c->state == C_UPGRADING) {
        int h = wsc_response((const char *)p, len, c->accept);
        if (h <= 0) {
            if (h < 0)
                conn_die(n, c, "bad upgrade answer", 0);
            return h < 0 ? len : 0;
        }
        c->state = C_HELLO;
        off = (size_t)h;
    }
    while (off < len) {
        /* The common frame inline: final, unmasked text under 64 KiB, no message
         * being reassembled. */
        const unsigned char *h = p + off;
        if (len - off >= 4 && h[0] == 0x81 && h[1] <= 126 && !bytes_pending(&c->frag)) {
            size_t hl = h[1] < 126 ? 2 : 4;
            size_t pl = h[1] < 126 ? h[1] : (size_t)h[2] << 8 | h[3];
            if (len - off < hl + pl)
                break;
            on_text(n, c, (const char *)h + hl, pl, now);
            off += hl + pl;
            if (c->state == C_DEAD)
                return len;
            continue;
        }
        struct wsc_frame f;
        int r = wsc_parse(p + off, len - off, &f);
        if (r < 0) {
            conn_die(n, c, "bad frame", 0);
            return len;
        }
        if (r == 0)
            break;
        on_frame(n, c, &f, p + off + f.hdr, now);
        off += f.hdr + f.len;
        if (c->state == C_DEAD)
            return len;
    }
    return off;
}

/* read() that also returns when the kernel queued the last byte read (SO_TIMESTAMPNS),
 * on now_ns()'s scale: latency is measured to arrival at our socket, so a busy
 * generator does not add its own queueing to the server's latency. *rx is 0 when the
 * kernel gave no timestamp. */
static ssize_t read_stamped(int fd, void *buf, size_t cap, uint64_t now, uint64_t *rx)
{
    union {
        char b[CMSG_SPACE(sizeof(struct timespec))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { buf, cap };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                         .msg_controllen = sizeof ctl.b };
    ssize_t r = recvmsg(fd, &mh, 0);
    *rx = 0;
    if (r <= 0)
        return r;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(cm), sizeof ts);
            *rx = clock_from_realtime(&ts, now);
        }
    }
    return r;
}

static void on_readable(struct net *n, struct conn *c)
{
    ssize_t r;
    uint64_t now = now_ns(), rx;
    size_t have = bytes_pending(&c->in);
    if (c->state == C_UPGRADING || have > RBUF_SIZE / 2) {
        /* The handshake, or a message too large for rbuf: read behind it. */
        bytes_reserve(&c->in, 64 * 1024);
        r = read_stamped(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len, now, &rx);
        if (r <= 0)
            goto eof;
        n->rx_ns = rx;
        n->c.reads++;
        n->c.read_bytes += (uint64_t)r;
        c->in.len += (size_t)r;
        size_t used = consume(n, c, c->in.p + c->in.off, bytes_pending(&c->in), now);
        if (c->state != C_DEAD) {
            c->in.off += used;
            if (!bytes_pending(&c->in))
                bytes_free(&c->in); /* most connections never need it again */
        }
        return;
    }
    /* Everything the kernel has, in one read, behind the partial frame kept from the
     * last one; the frames are handled where they lie. */
    r = read_stamped(c->fd, rbuf + have, RBUF_SIZE - have, now, &rx);
    if (r <= 0)
        goto eof;
    n->rx_ns = rx;
    n->c.reads++;
    n->c.read_bytes += (uint64_t)r;
    if (have) {
        memcpy(rbuf, c->in.p + c->in.off, have);
        c->in.off = c->in.len = 0;
    }
    size_t total = have + (size_t)r;
    size_t used = consume(n, c, rbuf, total, now);
    if (c->state != C_DEAD && used < total)
        bytes_append(&c->in, rbuf + used, total - used);
    return;
eof:
    if (r < 0 && errno == EAGAIN)
        return;
    n->fails.by_code[close_slot(1006)]++;
    conn_die(n, c, r == 0 ? "server closed the TCP connection" : "read:", r == 0 ? 0 : errno);
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
    nanosleep(&ts, NULL);
}

/* Adapts the read interval to our own CPU use, measured over windows of >= 20 ms:
 * above BUSY_HIGH it grows (bigger, cheaper reads), below BUSY_LOW it shrinks back
 * towards 0 (every read as soon as bytes arrive: the most exact latency). */
#define BUSY_HIGH 0.55
#define BUSY_LOW 0.30
static void adapt_batch(struct net *n, uint64_t now)
{
    if (!n->o.batch_auto || n->batch_off || now - n->win_wall_ns < 20000000)
        return;
    int64_t cpu = self_thread_cpu_ns();
    double busy = (double)(cpu - n->win_cpu_ns) / (double)(now - n->win_wall_ns);
    if (n->win_wall_ns) {
        if (busy > BUSY_HIGH)
            n->batch_ns = n->batch_ns * 3 / 2 + 100000;
        else if (busy < BUSY_LOW)
            n->batch_ns = n->batch_ns < 100000 ? 0 : n->batch_ns * 2 / 3;
        if (n->batch_ns > n->o.batch_ns)
            n->batch_ns = n->o.batch_ns;
    }
    n->win_wall_ns = now;
    n->win_cpu_ns = cpu;
}

void net_poll(struct net *n, int64_t timeout_ns)
{
    static struct epoll_event evs[MAX_EVENTS];
    uint64_t now = now_ns();
    if (n->batch_ns) {
        /* Read at most every batch_ns, so that bytes pile up in the sockets and each
         * read takes many frames. Latency is taken from the kernel's arrival stamp of
         * the last bytes of each read: a frame that arrived earlier in the interval
         * reads up to batch_ns high. */
        if (now < n->next_read_ns) {
            uint64_t nap = n->next_read_ns - now;
            if (timeout_ns >= 0 && (uint64_t)timeout_ns < nap) {
                sleep_ns((uint64_t)timeout_ns);
                return;
            }
            sleep_ns(nap);
        }
        timeout_ns = 0;
    }
    struct timespec ts = { (time_t)(timeout_ns / 1000000000), (long)(timeout_ns % 1000000000) };
    /* Nanosecond timeouts: sends are paced without busy-waiting between them. */
    int k = epoll_pwait2(n->ep, evs, MAX_EVENTS, timeout_ns < 0 ? NULL : &ts, NULL);
    clock_refresh();
    now = now_ns();
    n->next_read_ns = now + n->batch_ns;
    if (n->batch_ns > n->c.batch_max_ns)
        n->c.batch_max_ns = n->batch_ns;
    for (int i = 0; i < k; i++) {
        struct conn *c = evs[i].data.ptr;
        uint32_t e = evs[i].events;
        if (c->state == C_DEAD || c->fd < 0)
            continue;
        if (c->state == C_CONNECTING) {
            if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                on_connected(n, c);
            continue;
        }
        if (e & (EPOLLIN | EPOLLERR | EPOLLHUP))
            on_readable(n, c);
        if (c->state != C_DEAD && (e & EPOLLOUT))
            on_writable(n, c);
    }
    adapt_batch(n, now_ns());
}
