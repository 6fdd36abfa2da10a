/* redis_link.c - one connection to one Redis server, kept up (redis_link.h). */
#include "redis/redis_link.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "base/buf.h"
#include "base/log.h"
#include "redis/redis.h"
#include "redis/redis_uv.h"
#include "base/util.h"

#define BACKOFF_BASE_MS 100
/* A link not up (connected, handshake done) this long after its connect started is
 * retried: a connect that neither succeeds nor fails (a dropped SYN), a Redis that
 * accepts but does not answer (one that hangs). At least the reply timeout. */
#define CONNECT_TIMEOUT_MIN_MS 1000

/* One subscriber connection, freed in its close callback; link is NULL once the link
 * let go of it. */
struct mw__redis_stream {
    uv_tcp_t tcp;
    uv_connect_t connect;
    redisReader *reader;
    struct mw_buf out; /* commands not yet handed to uv_write */
    struct mw__redis_link *link;
    int handshake;     /* replies (AUTH, PING) still due before the link is up */
};

static struct mw__redis_link_params P = { .timeout_ms = 1000, .backoff_cap_ms = 10000 };

static void connect_link(struct mw__redis_link *l);
static void link_lost(struct mw__redis_link *l, const char *why);

void mw__redis_link_setup(const struct mw__redis_link_params *p)
{
    P = *p;
}

static uint64_t connect_timeout(void)
{
    return P.timeout_ms > CONNECT_TIMEOUT_MIN_MS ? P.timeout_ms : CONNECT_TIMEOUT_MIN_MS;
}

void mw__redis_resp_append(struct mw_buf *b, int argc, const char **argv, const size_t *lens)
{
    mw_buf_printf(b, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++) {
        size_t n = lens ? lens[i] : strlen(argv[i]);
        mw_buf_printf(b, "$%zu\r\n", n);
        mw_buf_append(b, argv[i], n);
        mw_buf_append(b, "\r\n", 2);
    }
}

/* SO_KEEPALIVE with probes after a few idle seconds: a peer that vanished without a
 * FIN (a host down, a dropped route) is noticed by the kernel even when the watchdog
 * could not send (the PING sits in a full socket buffer). */
static void set_keepalive(int fd)
{
    int on = 1, idle = (int)(P.timeout_ms / 1000) + 1, intvl = 1, cnt = 3;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
}

/* ---- holds ---- */

static void release(struct mw__redis_link *l)
{
    mw_assert(l->holds > 0);
    if (--l->holds == 0 && l->stopped)
        l->ops->released(l);
}

static void on_handle_closed(uv_handle_t *h)
{
    release(h->data);
}

/* After stop: the retry timer, kept as a close deadline, is closed once. */
static void close_retry(struct mw__redis_link *l)
{
    if (!uv_is_closing((uv_handle_t *)&l->retry))
        uv_close((uv_handle_t *)&l->retry, on_handle_closed);
}

void mw__redis_link_init(struct mw__redis_link *l, const struct mw__redis_link_ops *ops,
                         void *owner, const char *host, int port, const char *addr,
                         const char *name, bool subscriber)
{
    memset(l, 0, sizeof *l);
    l->ops = ops;
    l->owner = owner;
    l->host = host;
    l->port = port;
    l->addr = addr;
    l->name = name;
    l->subscriber = subscriber;
    uv_timer_init(uv_default_loop(), &l->retry);
    uv_timer_init(uv_default_loop(), &l->watch);
    l->retry.data = l->watch.data = l;
    l->holds = 2;
}

/* ---- up and down ---- */

static void on_retry(uv_timer_t *t)
{
    connect_link(t->data);
}

/* Retries after BACKOFF_BASE_MS * 2^attempt (capped), +-50 % jitter, so that a fleet
 * of nodes does not reconnect in lockstep after a Redis restart. */
static void schedule_retry(struct mw__redis_link *l)
{
    if (l->stopped || !l->wanted)
        return;
    uint64_t delay = BACKOFF_BASE_MS;
    for (uint32_t i = 0; i < l->attempt && delay < P.backoff_cap_ms; i++)
        delay *= 2;
    if (delay > P.backoff_cap_ms)
        delay = P.backoff_cap_ms;
    delay = delay / 2 + mw_random_u64() % (delay + 1);
    l->attempt++;
    mw_log_debug("redis retry", "link=%s addr=%s attempt=%u delay_ms=%llu", l->name, l->addr,
                 l->attempt, (unsigned long long)delay);
    uv_timer_start(&l->retry, on_retry, delay, 0);
}

/* The link's connection is gone (its ac / st already cleared): report, then retry. */
static void link_lost(struct mw__redis_link *l, const char *why)
{
    bool was = l->up;
    l->up = false;
    uv_timer_stop(&l->watch);
    if (l->stopped)
        return;
    if (l->wanted && (was || l->attempt == 0))
        mw_log_warn("redis connection lost", "link=%s addr=%s why=\"%s\"", l->name, l->addr, why);
    l->ops->down(l, was);
    schedule_retry(l);
}

static void on_watch(uv_timer_t *t);

static void link_ready(struct mw__redis_link *l)
{
    l->up = true;
    l->attempt = 0;
    l->ping_sent_ms = 0;
    l->ping_last_ms = mw_now_ms();
    l->suspect = false;
    uv_timer_stop(&l->retry); /* the connect timeout */
    uint64_t tick = P.timeout_ms / 4 ? P.timeout_ms / 4 : 1;
    uv_timer_start(&l->watch, on_watch, tick, tick);
    l->ops->up(l);
}

/* ---- the subscriber link: a TCP stream and hiredis's reply reader ---- */

static void on_stream_closed(uv_handle_t *h)
{
    struct mw__redis_stream *s = h->data;
    redisReaderFree(s->reader);
    mw_buf_free(&s->out);
    free(s);
}

/* Lets go of the link's stream; it is freed once closed. */
static void stream_drop(struct mw__redis_link *l)
{
    struct mw__redis_stream *s = l->st;
    if (!s)
        return;
    l->st = NULL;
    s->link = NULL;
    uv_close((uv_handle_t *)&s->tcp, on_stream_closed);
}

static void sub_fail(struct mw__redis_link *l, const char *why)
{
    stream_drop(l);
    link_lost(l, why);
}

struct write_req {
    uv_write_t req;
    struct mw_buf buf;
};

static void on_written(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct mw__redis_stream *s = req->handle->data;
    if (status < 0 && s->link)
        sub_fail(s->link, uv_strerror(status));
    mw_buf_free(&w->buf);
    free(w);
}

/* Hands the commands appended to s->out to the socket. */
static void stream_flush(struct mw__redis_stream *s)
{
    if (!s->out.len)
        return;
    struct write_req *w = mw_calloc(1, sizeof *w);
    w->buf = s->out;
    memset(&s->out, 0, sizeof s->out);
    uv_buf_t b = uv_buf_init(w->buf.p, (unsigned)w->buf.len);
    int rc = uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, on_written);
    if (rc < 0) {
        mw_buf_free(&w->buf);
        free(w);
        if (s->link)
            sub_fail(s->link, uv_strerror(rc));
    }
}

int mw__redis_link_append(struct mw__redis_link *l, int argc, const char **argv,
                          const size_t *lens)
{
    if (!l->st)
        return -1;
    mw__redis_resp_append(&l->st->out, argc, argv, lens);
    return 0;
}

void mw__redis_link_flush(struct mw__redis_link *l)
{
    if (l->st)
        stream_flush(l->st);
}

/* The watchdog's PONG: "+PONG" on a connection without subscriptions, ["pong", ""]
 * on one with. */
static bool is_pong(const redisReply *r)
{
    if (r->type == REDIS_REPLY_STATUS)
        return strcmp(r->str, "PONG") == 0;
    return r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
           r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "pong") == 0;
}

static void on_sub_reply(struct mw__redis_stream *s, redisReply *r)
{
    struct mw__redis_link *l = s->link;
    if (s->handshake > 0) {
        if (r->type == REDIS_REPLY_ERROR) {
            mw_log_error("redis handshake failed", "link=%s addr=%s err=\"%s\"", l->name, l->addr,
                         r->str);
            sub_fail(l, "handshake failed");
        } else if (--s->handshake == 0) {
            link_ready(l);
        }
        return;
    }
    if (l->ping_sent_ms && is_pong(r)) {
        l->ping_sent_ms = 0;
        l->suspect = false;
        return;
    }
    l->ops->push(l, r);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static char chunk[65536]; /* parsed before the next read: one buffer for all */
    (void)h;
    (void)hint;
    *buf = uv_buf_init(chunk, sizeof chunk);
}

static void on_stream_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
    struct mw__redis_stream *s = h->data;
    if (!s->link || nread == 0)
        return;
    if (nread < 0) {
        sub_fail(s->link, nread == UV_EOF ? "closed" : uv_strerror((int)nread));
        return;
    }
    if (redisReaderFeed(s->reader, buf->base, (size_t)nread) != REDIS_OK) {
        sub_fail(s->link, "protocol error");
        return;
    }
    while (s->link) {
        void *r = NULL;
        if (redisReaderGetReply(s->reader, &r) != REDIS_OK) {
            sub_fail(s->link, "protocol error");
            return;
        }
        if (!r)
            break;
        on_sub_reply(s, r);
        freeReplyObject(r);
    }
}

static void on_stream_connected(uv_connect_t *req, int status)
{
    struct mw__redis_stream *s = req->handle->data;
    struct mw__redis_link *l = s->link;
    if (!l)
        return; /* given up meanwhile */
    if (status < 0) {
        sub_fail(l, uv_strerror(status));
        return;
    }
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&s->tcp, &fd) == 0)
        set_keepalive(fd);
    uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_stream_read);
    if (P.password) {
        const char *auth[] = { "AUTH", P.password };
        mw__redis_resp_append(&s->out, 2, auth, NULL);
        s->handshake++;
    }
    const char *ping[] = { "PING" };
    mw__redis_resp_append(&s->out, 1, ping, NULL);
    s->handshake++;
    stream_flush(s);
}

static void sub_open(struct mw__redis_link *l, const char *ip)
{
    struct sockaddr_in sa;
    if (uv_ip4_addr(ip, l->port, &sa) < 0) {
        link_lost(l, "bad address");
        return;
    }
    struct mw__redis_stream *s = mw_calloc(1, sizeof *s);
    s->reader = redisReaderCreate();
    s->link = l;
    uv_tcp_init(uv_default_loop(), &s->tcp);
    s->tcp.data = s;
    l->st = s;
    int rc = uv_tcp_connect(&s->connect, &s->tcp, (const struct sockaddr *)&sa,
                            on_stream_connected);
    if (rc < 0)
        sub_fail(l, uv_strerror(rc));
}

/* ---- the command link: a hiredis async context ---- */

/* The handshake's last reply (PING): the link is usable. */
static void on_ready(redisAsyncContext *ac, void *r, void *ud)
{
    struct mw__redis_link *l = ud;
    redisReply *reply = r;
    if (!reply || !ac->data || ac != l->ac)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        mw_log_error("redis handshake failed", "link=%s addr=%s err=\"%s\"", l->name, l->addr,
                     reply->str);
        redisAsyncDisconnect(ac);
        return;
    }
    link_ready(l);
}

static void on_handshake_step(redisAsyncContext *ac, void *r, void *ud)
{
    struct mw__redis_link *l = ud;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ERROR && ac->data && ac == l->ac) {
        mw_log_error("redis handshake failed", "link=%s addr=%s err=\"%s\"", l->name, l->addr,
                     reply->str);
        redisAsyncDisconnect(ac);
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct mw__redis_link *l = ac->data;
    if (!l)
        return;
    if (status == REDIS_OK) {
        set_keepalive(ac->c.fd);
        return;
    }
    l->ac = NULL; /* hiredis frees the context after this callback, */
    ((redisAsyncContext *)ac)->data = NULL; /* and on_disconnect must not count it twice */
    link_lost(l, ac->errstr);
    release(l);
}

/* Queued right after the connect starts: hiredis 0.14 only notices that a
 * non-blocking connect finished (or failed) once a command wants to write. */
static void send_handshake(struct mw__redis_link *l)
{
    if (P.password)
        redisAsyncCommand(l->ac, on_handshake_step, l, "AUTH %s", P.password);
    if (P.db)
        redisAsyncCommand(l->ac, on_handshake_step, l, "SELECT %d", P.db);
    redisAsyncCommand(l->ac, on_ready, l, "PING");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct mw__redis_link *l = ac->data;
    if (!l)
        return; /* given up by cmd_abandon */
    l->ac = NULL; /* hiredis frees the context after this callback */
    if (l->stopped) {
        close_retry(l);
    } else if (!l->wanted) {
        l->up = false;
        uv_timer_stop(&l->watch);
        uv_timer_stop(&l->retry);
    } else {
        link_lost(l, status == REDIS_OK ? "closed" : ac->errstr);
    }
    release(l);
}

/* Frees the context now: its pending callbacks get NULL replies (inside this call;
 * never call it from a hiredis callback). */
static void cmd_abandon(struct mw__redis_link *l)
{
    redisAsyncContext *ac = l->ac;
    ac->data = NULL; /* its callbacks, run by the free below, must not touch l */
    l->ac = NULL;
    redisAsyncFree(ac);
    release(l);
}

static void cmd_open(struct mw__redis_link *l, const char *ip)
{
    redisAsyncContext *ac = redisAsyncConnect(ip, l->port);
    if (!ac || ac->err) {
        link_lost(l, ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        return;
    }
    ac->data = l;
    l->ac = ac;
    l->holds++;
    if (mw__redis_uv_attach(ac) < 0) {
        cmd_abandon(l);
        link_lost(l, "cannot poll the socket");
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    send_handshake(l);
}

/* ---- the watchdog ---- */

static void on_pong(redisAsyncContext *ac, void *r, void *ud)
{
    struct mw__redis_link *l = ud;
    if (r && ac->data && ac == l->ac) {
        l->ping_sent_ms = 0;
        l->suspect = false;
    }
}

/* Takes a link whose Redis stopped answering down now: its commands in flight get
 * NULL replies ("unavailable"), then it is retried. */
static void link_hung(struct mw__redis_link *l, uint64_t waited_ms)
{
    char why[64];
    snprintf(why, sizeof why, "no reply within %llu ms", (unsigned long long)waited_ms);
    mw_redis_stats.hung++;
    if (l->subscriber) {
        sub_fail(l, why);
        return;
    }
    mw_log_warn("redis connection lost", "link=%s addr=%s why=\"%s\"", l->name, l->addr, why);
    l->attempt = 1; /* logged: link_lost must not log it again */
    bool was = l->up;
    l->up = false;
    uv_timer_stop(&l->watch);
    l->ops->down(l, was); /* first: the callbacks below must see the link down */
    if (l->ac)
        cmd_abandon(l);
    schedule_retry(l);
}

static void on_watch(uv_timer_t *t)
{
    struct mw__redis_link *l = t->data;
    uint64_t now = mw_now_ms();
    if (!l->up)
        return;
    if (l->ping_sent_ms) {
        if (now - l->ping_sent_ms <= P.timeout_ms)
            return;
        if (l->suspect) /* overdue before the last poll too: Redis does not answer */
            link_hung(l, now - l->ping_sent_ms);
        else
            l->suspect = true;
        return;
    }
    if (now - l->ping_last_ms < P.timeout_ms / 2)
        return;
    l->ping_last_ms = now;
    if (l->subscriber) {
        const char *ping[] = { "PING" };
        if (mw__redis_link_append(l, 1, ping, NULL) == 0) {
            l->ping_sent_ms = now;
            stream_flush(l->st);
        }
    } else if (l->ac && redisAsyncCommand(l->ac, on_pong, l, "PING") == REDIS_OK) {
        l->ping_sent_ms = now;
    }
}

/* ---- connecting either link ---- */

/* The connect, or a graceful close, did not finish within its deadline. */
static void on_deadline(uv_timer_t *t)
{
    struct mw__redis_link *l = t->data;
    if (l->up)
        return;
    bool had = l->ac || l->st;
    if (l->ac)
        cmd_abandon(l);
    else if (l->st)
        stream_drop(l);
    if (l->stopped) {
        close_retry(l);
        return;
    }
    if (had && l->wanted)
        link_lost(l, "connect timed out");
}

static void open_link(struct mw__redis_link *l, const char *ip)
{
    if (l->subscriber)
        sub_open(l, ip);
    else
        cmd_open(l, ip);
    if (l->ac || l->st)
        uv_timer_start(&l->retry, on_deadline, connect_timeout(), 0);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct mw__redis_link *l = req->data;
    char ip[64] = "";
    l->resolving = false;
    if (status == 0 && res)
        uv_ip4_name((struct sockaddr_in *)res->ai_addr, ip, sizeof ip);
    uv_freeaddrinfo(res);
    if (!l->stopped && l->wanted) {
        if (!ip[0])
            link_lost(l, status ? uv_strerror(status) : "no address");
        else
            open_link(l, ip);
    }
    release(l);
}

static void connect_link(struct mw__redis_link *l)
{
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM };
    struct in_addr ip;
    if (l->stopped || !l->wanted || l->ac || l->st || l->resolving)
        return;
    if (uv_inet_pton(AF_INET, l->host, &ip) == 0) { /* cluster nodes are IPs */
        open_link(l, l->host);
        return;
    }
    l->resolve.data = l;
    l->resolving = true;
    l->holds++;
    int rc = uv_getaddrinfo(uv_default_loop(), &l->resolve, on_resolved, l->host, NULL, &hints);
    if (rc < 0) {
        l->resolving = false;
        l->holds--;
        link_lost(l, uv_strerror(rc));
    }
}

/* Closes a link nobody needs any more: no retry. A command link that is up still
 * gets the replies of what it sent (MOVED, most likely), within the deadline. */
static void link_close(struct mw__redis_link *l)
{
    bool was = l->up;
    uv_timer_stop(&l->retry);
    uv_timer_stop(&l->watch);
    l->up = false;
    l->attempt = 0;
    if (l->subscriber) {
        stream_drop(l);
    } else if (l->ac && was) {
        redisAsyncDisconnect(l->ac);
        if (l->ac) /* still waiting for replies: not forever */
            uv_timer_start(&l->retry, on_deadline, P.timeout_ms, 0);
    } else if (l->ac) {
        cmd_abandon(l);
    }
    l->ops->down(l, was);
}

void mw__redis_link_want(struct mw__redis_link *l, bool want)
{
    if (l->wanted == want || l->stopped)
        return;
    l->wanted = want;
    if (want)
        connect_link(l);
    else
        link_close(l);
}

void mw__redis_link_fail(struct mw__redis_link *l, const char *why)
{
    mw_assert(l->subscriber);
    sub_fail(l, why);
}

/* A command link that is up gets the replies of what it sent (within the timeout,
 * its callbacks fire later); anything else is given up now. */
void mw__redis_link_stop(struct mw__redis_link *l)
{
    if (l->stopped)
        return;
    bool was = l->up;
    l->stopped = true;
    l->up = false;
    uv_timer_stop(&l->retry);
    uv_timer_stop(&l->watch);
    uv_close((uv_handle_t *)&l->watch, on_handle_closed);
    if (l->resolving)
        uv_cancel((uv_req_t *)&l->resolve);
    stream_drop(l);
    if (l->ac && was)
        redisAsyncDisconnect(l->ac); /* may free it at once (nothing pending) */
    else if (l->ac)
        cmd_abandon(l);
    if (l->ac) /* the retry timer is the close's deadline, and closed after it */
        uv_timer_start(&l->retry, on_deadline, P.timeout_ms, 0);
    else
        close_retry(l);
}
