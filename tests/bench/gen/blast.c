/* blast.c - `mwbench blast-server`: the cheapest chat fan-out server we can write, to
 * measure the generator against something faster than any real server. It speaks
 * just enough of the chat protocol for mwbench's fanout and ramp (upgrade, hello,
 * join -> ack, chat:message -> every member and an ack): no Lua, no history, no
 * presence, no heartbeat, no limits. Each room keeps one log of framed events; every
 * member owns an offset into it, and once per loop iteration each member with bytes
 * waiting gets one writev (its own acks, then the room's log from its offset). So the
 * frames are built once, never copied per member, and a busy loop writes in big
 * chunks: what a fan-out server can do at best on this machine. One thread, epoll,
 * 127.0.0.1 only, stops after --duration seconds (default 120). */
#define _GNU_SOURCE /* memmem, accept4 */
#include "blast.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bytes.h"
#include "clock.h"
#include "jscan.h"
#include "b64.h"
#include "base/sha1.h"

#define MAX_ROOMS 64

struct room {
    char name[64];
    struct bytes log;      /* framed events; members read from their offset */
    uint32_t *members;     /* connection indexes */
    uint32_t nmembers, cap;
    uint64_t seq;
};

struct bconn {
    int fd;
    bool ws, pending;
    int room;              /* -1: none */
    size_t log_off;        /* how much of its room's log it has written */
    char user[40];
    struct bytes in, out;  /* out: its own replies */
};

static struct bconn *conns;
static uint32_t nconns_cap;
static struct room rooms[MAX_ROOMS];
static int nrooms;
static uint32_t *pending;
static uint32_t npending;
static uint64_t next_conn = 1;

static void frame_head(struct bytes *b, size_t len)
{
    unsigned char h[4] = { 0x81, 0, 0, 0 };
    size_t hl = 2;
    if (len < 126) {
        h[1] = (unsigned char)len;
    } else {
        h[1] = 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        hl = 4;
    }
    bytes_append(b, h, hl);
}

static void mark_pending(uint32_t i)
{
    if (!conns[i].pending) {
        conns[i].pending = true;
        pending[npending++] = i;
    }
}

static void reply(uint32_t i, const char *text, size_t len)
{
    frame_head(&conns[i].out, len);
    bytes_append(&conns[i].out, text, len);
    mark_pending(i);
}

static int room_find(const char *name, size_t len)
{
    for (int r = 0; r < nrooms; r++)
        if (strlen(rooms[r].name) == len && memcmp(rooms[r].name, name, len) == 0)
            return r;
    if (nrooms == MAX_ROOMS || len >= sizeof rooms[0].name)
        return -1;
    memcpy(rooms[nrooms].name, name, len);
    rooms[nrooms].name[len] = '\0';
    return nrooms++;
}

static void room_leave(uint32_t i)
{
    struct bconn *c = &conns[i];
    if (c->room < 0)
        return;
    struct room *r = &rooms[c->room];
    for (uint32_t k = 0; k < r->nmembers; k++)
        if (r->members[k] == i) {
            r->members[k] = r->members[--r->nmembers];
            break;
        }
    c->room = -1;
}

static void on_message(uint32_t i, const char *p, size_t n)
{
    struct js_iter it;
    const char *k, *v, *type = NULL, *room = NULL, *id = NULL, *data = NULL;
    size_t kl, vl, typel = 0, rooml = 0, idl = 0, datal = 0;
    char buf[1024];
    if (js_iter_init(&it, p, n) < 0)
        return;
    while (js_next(&it, &k, &kl, &v, &vl) > 0) {
        if (js_eq(k, kl, "type"))
            type = v, typel = vl;
        else if (js_eq(k, kl, "room"))
            room = v, rooml = vl;
        else if (js_eq(k, kl, "id"))
            id = v, idl = vl;
        else if (js_eq(k, kl, "data"))
            data = v, datal = vl;
    }
    if (!type || !room || idl > 40)
        return;
    int r = room_find(room, rooml);
    if (r < 0)
        return;
    struct room *rm = &rooms[r];
    if (js_eq(type, typel, "join")) {
        struct bconn *c = &conns[i];
        if (c->room != r) {
            room_leave(i);
            if (rm->nmembers == rm->cap) {
                rm->cap = rm->cap ? rm->cap * 2 : 64;
                rm->members = realloc(rm->members, rm->cap * sizeof *rm->members);
                if (!rm->members)
                    abort();
            }
            rm->members[rm->nmembers++] = i;
            c->room = r;
            c->log_off = rm->log.len; /* only what is sent from now on */
        }
        int len = snprintf(buf, sizeof buf, "{\"type\":\"ack\",\"id\":%.*s,\"data\":{\"room\":\"%s\","
                           "\"members\":[],\"history\":[],\"seq\":%llu,\"epoch\":\"blast\"}}",
                           (int)idl, id ? id : "0", rm->name, (unsigned long long)rm->seq);
        reply(i, buf, (size_t)len);
    } else if (js_eq(type, typel, "chat:message") && data && datal < 800 && conns[i].room == r) {
        uint64_t seq = ++rm->seq;
        int len = snprintf(buf, sizeof buf, "{\"type\":\"chat:message\",\"room\":\"%s\",\"from\":\"%s\","
                           "\"seq\":%llu,\"ts\":0,\"data\":%.*s}", rm->name, conns[i].user,
                           (unsigned long long)seq, (int)datal, data);
        frame_head(&rm->log, (size_t)len);
        bytes_append(&rm->log, buf, (size_t)len);
        for (uint32_t m = 0; m < rm->nmembers; m++)
            mark_pending(rm->members[m]);
        if (id) {
            len = snprintf(buf, sizeof buf, "{\"type\":\"ack\",\"id\":%.*s,\"data\":{\"seq\":%llu}}",
                           (int)idl, id, (unsigned long long)seq);
            reply(i, buf, (size_t)len);
        }
    }
}

static void conn_close(int ep, uint32_t i)
{
    struct bconn *c = &conns[i];
    room_leave(i);
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    bytes_free(&c->in);
    bytes_free(&c->out);
    c->fd = -1;
    c->ws = false;
}

/* The upgrade: 101 with the accept key, then hello. */
static bool upgrade(uint32_t i)
{
    struct bconn *c = &conns[i];
    char *head = (char *)c->in.p + c->in.off, *end;
    size_t n = bytes_pending(&c->in);
    char *key = NULL, *user, resp[256], accept[32], kbuf[96], hello[160];
    unsigned char dig[20];
    if (!(end = memmem(head, n, "\r\n\r\n", 4)))
        return n < 8192;
    *end = '\0';
    for (char *l = head; l && *l; l = strstr(l, "\r\n") ? strstr(l, "\r\n") + 2 : NULL)
        if (strncasecmp(l, "Sec-WebSocket-Key:", 18) == 0) {
            key = l + 18;
            while (*key == ' ')
                key++;
            break;
        }
    if (!key)
        return false;
    size_t kl = strcspn(key, "\r\n");
    snprintf(kbuf, sizeof kbuf, "%.*s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", (int)kl, key);
    mw_sha1(kbuf, strlen(kbuf), dig);
    mwb_base64(dig, sizeof dig, accept);
    user = strstr(head, "user=");
    snprintf(c->user, sizeof c->user, "%.*s", user ? (int)strcspn(user + 5, " &\r\n") : 4,
             user ? user + 5 : "anon");
    int len = snprintf(resp, sizeof resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept);
    bytes_append(&c->out, resp, (size_t)len);
    len = snprintf(hello, sizeof hello, "{\"type\":\"hello\",\"data\":{\"conn\":\"%llu\",\"node\":"
                   "\"blast\",\"user\":\"%s\",\"heartbeat\":0}}", (unsigned long long)next_conn++,
                   c->user);
    reply(i, hello, (size_t)len);
    c->in.off += (size_t)(end + 4 - head);
    c->ws = true;
    return true;
}

/* Client frames: masked; unmasked in place. Returns false on a close or a bad frame. */
static bool frames(uint32_t i)
{
    struct bconn *c = &conns[i];
    for (;;) {
        unsigned char *p = c->in.p + c->in.off;
        size_t n = bytes_pending(&c->in), len, h = 2;
        if (n < 2)
            return true;
        if (!(p[1] & 0x80))
            return false;
        len = p[1] & 0x7f;
        if (len == 126) {
            if (n < 4)
                return true;
            len = (size_t)p[2] << 8 | p[3];
            h = 4;
        } else if (len == 127) {
            return false;
        }
        if (n < h + 4 + len)
            return true;
        unsigned char *mask = p + h, *pl = p + h + 4;
        for (size_t k = 0; k < len; k++)
            pl[k] ^= mask[k & 3];
        int op = p[0] & 0x0f;
        c->in.off += h + 4 + len;
        if (op == 0x8)
            return false;
        if (op == 0x1)
            on_message(i, (const char *)pl, len);
    }
}

/* One writev per member with bytes waiting: its replies, then its room's log. */
static void flush(int ep)
{
    uint32_t n = npending, *list = pending + nconns_cap; /* a snapshot: writes re-add */
    memcpy(list, pending, n * sizeof *list);
    npending = 0;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = list[k];
        struct bconn *c = &conns[i];
        c->pending = false;
        if (c->fd < 0)
            continue;
        struct iovec iov[2];
        int cnt = 0;
        struct room *r = c->room >= 0 ? &rooms[c->room] : NULL;
        size_t own = bytes_pending(&c->out), logn = r ? r->log.len - c->log_off : 0;
        if (own)
            iov[cnt++] = (struct iovec){ c->out.p + c->out.off, own };
        if (logn)
            iov[cnt++] = (struct iovec){ r->log.p + c->log_off, logn };
        if (!cnt)
            continue;
        ssize_t w = writev(c->fd, iov, cnt);
        if (w < 0) {
            if (errno != EAGAIN)
                conn_close(ep, i);
            else
                mark_pending(i);
            continue;
        }
        size_t a = (size_t)w < own ? (size_t)w : own;
        c->out.off += a;
        if (bytes_pending(&c->out) == 0)
            c->out.off = c->out.len = 0;
        c->log_off += (size_t)w - a;
        if ((size_t)w < own + logn)
            mark_pending(i); /* the rest next iteration */
    }
}

/* Drops the part of each room's log that every member has written. */
static void trim_logs(void)
{
    for (int r = 0; r < nrooms; r++) {
        struct room *rm = &rooms[r];
        size_t low = rm->log.len;
        for (uint32_t m = 0; m < rm->nmembers; m++)
            if (conns[rm->members[m]].log_off < low)
                low = conns[rm->members[m]].log_off;
        if (!low)
            continue;
        memmove(rm->log.p, rm->log.p + low, rm->log.len - low);
        rm->log.len -= low;
        for (uint32_t m = 0; m < rm->nmembers; m++)
            conns[rm->members[m]].log_off -= low;
    }
}

int blast_run(int port, double duration)
{
    int one = 1;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(0x7f000001u) };
    socklen_t sl = sizeof sa;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 1024) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0) {
        perror("mwbench blast-server");
        return 1;
    }
    nconns_cap = 65536;
    conns = calloc(nconns_cap, sizeof *conns);
    pending = calloc(nconns_cap * 2, sizeof *pending);
    if (!conns || !pending)
        abort();
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = UINT32_MAX };
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    printf("blast-server listening on 127.0.0.1:%d pid=%d\n", ntohs(sa.sin_port), (int)getpid());
    fflush(stdout);
    uint64_t end = now_ns() + (uint64_t)(duration * 1e9);
    static struct epoll_event evs[4096];
    static unsigned char rb[256 * 1024];
    while (now_ns() < end) {
        int k = epoll_wait(ep, evs, 4096, npending ? 1 : 100);
        for (int e = 0; e < k; e++) {
            uint32_t i = evs[e].data.u32;
            if (i == UINT32_MAX) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if ((uint32_t)fd >= nconns_cap) {
                        close(fd);
                        continue;
                    }
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conns[fd] = (struct bconn){ .fd = fd, .room = -1 };
                    struct epoll_event ce = { .events = EPOLLIN, .data.u32 = (uint32_t)fd };
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ce);
                }
                continue;
            }
            struct bconn *c = &conns[i];
            ssize_t r = read(c->fd, rb, sizeof rb);
            if (r <= 0) {
                if (r == 0 || errno != EAGAIN)
                    conn_close(ep, i);
                continue;
            }
            bytes_append(&c->in, rb, (size_t)r);
            if ((!c->ws && !upgrade(i)) || (c->ws && !frames(i))) {
                conn_close(ep, i);
                continue;
            }
            if (!bytes_pending(&c->in))
                c->in.off = c->in.len = 0;
        }
        flush(ep);
        trim_logs();
    }
    return 0;
}
