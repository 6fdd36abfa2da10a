/* redis.c - Redis connections with reconnects, command routing and subscriptions.
 *
 * Every Redis server the client talks to is a node with two links: a command link (a
 * hiredis async context) and a subscriber link. One Redis (redis.url) is one node that
 * serves every slot. A Redis Cluster (redis.cluster) is the masters of the slot table
 * that CLUSTER SLOTS gives, asked of a seed first, then of any master on a MOVED, on a
 * link failure and every REFRESH_MS. A command goes to the master of its key's slot; a
 * MOVED moves the slot and resends, an ASK resends once after ASKING, at most
 * MAX_REDIRECTS times, then the caller gets a NULL reply ("unavailable").
 *
 * The subscriber link is no hiredis async context: hiredis 0.14 hands a push only to
 * a channel it saw subscribed with SUBSCRIBE, so it would drop every "smessage" of
 * sharded pub/sub (and assert on it in a context never subscribed). It is a uv_tcp_t
 * stream whose bytes hiredis's reply reader parses, carrying SUBSCRIBE to one Redis
 * or SSUBSCRIBE to the master of each channel's slot (one command per slot: Redis
 * refuses channels of several slots in one SSUBSCRIBE).
 *
 * hiredis's own libuv adapter is not used either: it drops poll errors, so a refused
 * connect or a connection reset (Redis killed with unread input) left a context deaf
 * for good. attach_loop hands such errors to hiredis, which then disconnects.
 *
 * A master counts as up once CLUSTER INFO says cluster_state:ok there (asked when its
 * link comes up and on every refresh): a restarted master answers CLUSTERDOWN for a
 * while, and the resync that follows `redis up` (cluster.c) must not be refused.
 * TRYAGAIN and CLUSTERDOWN replies are retried RETRY_LATER_MS later, within the same
 * MAX_REDIRECTS budget as redirections.
 *
 * Nodes live until mw_redis_stop; a node that no longer serves slots only loses its
 * connections. A node is freed once its timers, name lookups and hiredis context (all
 * of which may still call back) are gone. */
#include "redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "buf.h"
#include "log.h"
#include "map.h"
#include "redis_cluster.h"
#include "util.h"

#define BACKOFF_BASE_MS 100
#define BACKOFF_CAP_MS 10000
#define SUBSCRIBE_BATCH 100
/* A link not up (connected, handshake done) this long after its connect started is
 * retried: a connect that neither succeeds nor fails (a dropped SYN), a Redis that
 * accepts but does not answer. */
#define CONNECT_TIMEOUT_MS 1000
#define MAX_REDIRECTS 5
#define RETRY_LATER_MS 100      /* after TRYAGAIN or CLUSTERDOWN */
#define REFRESH_MS 5000         /* the periodic topology refresh */
#define REFRESH_SOON_MS 500     /* while a slot has no master, or one is not serving */
#define REFRESH_GAP_MS 200      /* between refreshes that events asked for */
#define REFRESH_TIMEOUT_MS 5000 /* a CLUSTER SLOTS unanswered this long is given up */
#define ASKED_KEEP_MS 30000     /* an ASK target without slots stays connected this long */

struct link;

/* One subscriber connection, freed in its close callback; link is NULL once the link
 * let go of it. */
struct stream {
    uv_tcp_t tcp;
    uv_connect_t connect;
    redisReader *reader;
    struct mw_buf out; /* commands not yet handed to uv_write */
    struct link *link;
    int handshake;     /* replies (AUTH, PING) still due before the link is up */
};

/* One connection of a node and its reconnect state. */
struct link {
    struct node *node;
    const char *name;      /* "command" or "subscriber" */
    bool subscriber;
    bool wanted;           /* keep it connected; else close it and do not retry */
    bool up;
    redisAsyncContext *ac; /* the command link's connection */
    struct stream *st;     /* the subscriber link's */
    uint32_t attempt;      /* consecutive failures, for the backoff */
    uv_timer_t retry;      /* the backoff, or the connect timeout while connecting */
    uv_getaddrinfo_t resolve;
    bool resolving;
};

struct node {
    struct node *next;
    char host[256];
    int port;
    char addr[272];     /* host:port, for logs */
    bool seed;
    uint32_t nslots;    /* slots it serves: a master when > 0 */
    bool serving;       /* CLUSTER INFO said cluster_state:ok, since its link came up */
    bool warned;        /* logged that it does not */
    bool state_asked;   /* a CLUSTER INFO is in flight */
    uint64_t asked_ms;  /* last ASK that named it */
    struct link cmd, sub;
    int holds;          /* timers, lookups and contexts that may still call back */
};

/* A channel kept subscribed. `on` is the node it was subscribed on (sent on its up
 * subscriber link), NULL while that is still to do. */
struct chan {
    char *name;
    int slot;
    struct node *on;
    bool confirmed; /* Redis answered the subscribe there */
};

static struct {
    bool configured, cluster, stopping, was_up;
    int db;
    char *password;
    struct mw_redis_hooks hooks;
    struct node *nodes;
    struct node *owner[MW_REDIS_SLOTS];
    uint32_t covered;  /* slots with an owner */
    struct mw_map channels; /* name -> struct chan */
    uint32_t unplaced; /* channels with on == NULL */
    /* Redis Cluster topology */
    bool need_seeds;   /* no usable table: connect the seeds to ask them */
    bool moved;        /* a MOVED changed the table since the last refresh logged it */
    bool refreshing, refresh_again;
    uint32_t refresh_seq, rr;
    uint64_t refresh_sent_ms, refresh_done_ms;
    uv_timer_t refresh;
    struct pending *later, **later_tail; /* commands to resend after RETRY_LATER_MS */
    uv_timer_t later_timer;
} R;

struct mw_redis_stats mw_redis_stats;

static void connect_link(struct link *l);
static void link_down(struct link *l, const char *why);
static void place_unplaced(void);
static void request_refresh(uint64_t delay_ms);
static void ask_state(struct node *n);

bool mw_redis_configured(void)
{
    return R.configured;
}

bool mw_redis_is_cluster(void)
{
    return R.configured && R.cluster;
}

bool mw_redis_up(void)
{
    if (!R.configured || R.stopping || R.covered < MW_REDIS_SLOTS || R.unplaced)
        return false;
    for (struct node *n = R.nodes; n; n = n->next)
        if (n->nslots && (!n->cmd.up || !n->sub.up || (R.cluster && !n->serving)))
            return false;
    return true;
}

int mw_redis_parse_url(const char *url, char *host, size_t hostlen, int *port,
                       char **password, int *db, char *err, size_t errlen)
{
    const char *p = url;
    *port = 6379;
    *db = 0;
    *password = NULL;
    if (strncmp(p, "rediss://", 9) == 0) {
        snprintf(err, errlen, "%s: TLS (rediss://) is not supported by this build", url);
        return -1;
    }
    if (strncmp(p, "redis://", 8) != 0) {
        snprintf(err, errlen, "%s: a Redis URL starts with redis://", url);
        return -1;
    }
    p += 8;
    const char *at = strchr(p, '@');
    if (at) { /* [user]:password@ */
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        *password = mw_strndup(pw, (size_t)(at - pw));
        p = at + 1;
    }
    size_t n = strcspn(p, ":/");
    if (n == 0 || n >= hostlen) {
        snprintf(err, errlen, "%s: missing or too long host", url);
        goto fail;
    }
    memcpy(host, p, n);
    host[n] = '\0';
    p += n;
    if (*p == ':') {
        char *end;
        long v = strtol(p + 1, &end, 10);
        if (end == p + 1 || v < 1 || v > 65535 || (*end && *end != '/')) {
            snprintf(err, errlen, "%s: bad port", url);
            goto fail;
        }
        *port = (int)v;
        p = end;
    }
    if (*p == '/' && p[1]) {
        char *end;
        long v = strtol(p + 1, &end, 10);
        if (end == p + 1 || *end || v < 0 || v > 1000000) {
            snprintf(err, errlen, "%s: bad database number", url);
            goto fail;
        }
        *db = (int)v;
    }
    return 0;
fail:
    free(*password);
    *password = NULL;
    return -1;
}

/* ---- nodes ---- */

static void node_release(struct node *n)
{
    if (--n->holds == 0)
        free(n); /* only after mw_redis_stop closed its timers */
}

static void on_timer_closed(uv_handle_t *h)
{
    node_release(((struct link *)h->data)->node);
}

static void link_init(struct node *n, struct link *l, const char *name, bool subscriber)
{
    l->node = n;
    l->name = name;
    l->subscriber = subscriber;
    uv_timer_init(uv_default_loop(), &l->retry);
    l->retry.data = l;
    n->holds++;
}

/* The node at host:port, created (not connected) when new. */
static struct node *node_get(const char *host, int port)
{
    for (struct node *n = R.nodes; n; n = n->next)
        if (n->port == port && strcmp(n->host, host) == 0)
            return n;
    struct node *n = mw_calloc(1, sizeof *n);
    snprintf(n->host, sizeof n->host, "%s", host);
    n->port = port;
    snprintf(n->addr, sizeof n->addr, "%s:%d", host, port);
    link_init(n, &n->cmd, "command", false);
    link_init(n, &n->sub, "subscriber", true);
    n->next = R.nodes;
    R.nodes = n;
    return n;
}

static uint32_t count_masters(void)
{
    uint32_t k = 0;
    for (struct node *n = R.nodes; n; n = n->next)
        k += n->nslots > 0;
    return k;
}

/* ---- state ---- */

static void report_state(void)
{
    bool up = mw_redis_up();
    mw_redis_stats.masters = count_masters();
    if (up == R.was_up || R.stopping)
        return;
    R.was_up = up;
    if (up) {
        mw_redis_stats.ups++;
        if (R.cluster)
            mw_log_info("redis up", "masters=%u channels=%u", mw_redis_stats.masters,
                        R.channels.len);
        else
            mw_log_info("redis up", "addr=%s channels=%u", R.owner[0]->addr, R.channels.len);
    } else {
        mw_redis_stats.downs++;
        if (R.cluster)
            mw_log_warn("redis down", "masters=%u covered_slots=%u", mw_redis_stats.masters,
                        R.covered);
        else
            mw_log_warn("redis down", "addr=%s", R.owner[0]->addr);
    }
    if (R.hooks.on_state)
        R.hooks.on_state(up);
}

/* ---- links ---- */

static void on_retry(uv_timer_t *t)
{
    connect_link(t->data);
}

/* Retries after BACKOFF_BASE_MS * 2^attempt (capped), +-50 % jitter, so that a fleet
 * of nodes does not reconnect in lockstep after a Redis restart. */
static void schedule_retry(struct link *l)
{
    if (R.stopping || !l->wanted)
        return;
    uint64_t delay = BACKOFF_BASE_MS;
    for (uint32_t i = 0; i < l->attempt && delay < BACKOFF_CAP_MS; i++)
        delay *= 2;
    if (delay > BACKOFF_CAP_MS)
        delay = BACKOFF_CAP_MS;
    delay = delay / 2 + mw_random_u64() % (delay + 1);
    l->attempt++;
    mw_log_debug("redis retry", "link=%s addr=%s attempt=%u delay_ms=%llu", l->name,
                 l->node->addr, l->attempt, (unsigned long long)delay);
    uv_timer_start(&l->retry, on_retry, delay, 0);
}

/* Channels subscribed on n are to do again (its subscriber link is gone). */
static void unplace_node(struct node *n);

/* The link's connection is gone (its ac / st already cleared): report, then retry. */
static void link_down(struct link *l, const char *why)
{
    bool was = l->up;
    l->up = false;
    if (l->subscriber)
        unplace_node(l->node);
    else
        l->node->serving = l->node->state_asked = false;
    if (l->wanted && (was || l->attempt == 0))
        mw_log_warn("redis connection lost", "link=%s addr=%s why=\"%s\"", l->name,
                    l->node->addr, why);
    report_state();
    schedule_retry(l);
    if (R.cluster)
        request_refresh(0); /* a failover may have moved its slots */
}

static void link_ready(struct link *l)
{
    l->up = true;
    l->attempt = 0;
    uv_timer_stop(&l->retry); /* the connect timeout */
    if (l->subscriber) {
        place_unplaced(); /* queued before anything published after `up` */
    } else if (R.cluster) {
        ask_state(l->node);
        request_refresh(0); /* the first table, or a changed one after an outage */
    }
    report_state();
}

/* ---- the subscriber link: a TCP stream and hiredis's reply reader ---- */

static void on_stream_closed(uv_handle_t *h)
{
    struct stream *s = h->data;
    redisReaderFree(s->reader);
    mw_buf_free(&s->out);
    free(s);
}

/* Lets go of the link's stream; it is freed once closed. */
static void stream_drop(struct link *l)
{
    struct stream *s = l->st;
    if (!s)
        return;
    l->st = NULL;
    s->link = NULL;
    uv_close((uv_handle_t *)&s->tcp, on_stream_closed);
}

static void sub_fail(struct link *l, const char *why)
{
    stream_drop(l);
    link_down(l, why);
}

/* Appends a command in RESP to b. */
static void resp_append(struct mw_buf *b, int argc, const char **argv, const size_t *lens)
{
    mw_buf_printf(b, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++) {
        size_t n = lens ? lens[i] : strlen(argv[i]);
        mw_buf_printf(b, "$%zu\r\n", n);
        mw_buf_append(b, argv[i], n);
        mw_buf_append(b, "\r\n", 2);
    }
}

struct write_req {
    uv_write_t req;
    struct mw_buf buf;
};

static void on_written(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct stream *s = req->handle->data;
    if (status < 0 && s->link)
        sub_fail(s->link, uv_strerror(status));
    mw_buf_free(&w->buf);
    free(w);
}

/* Hands the commands appended to s->out to the socket. */
static void stream_flush(struct stream *s)
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

static void flush_all(void)
{
    for (struct node *n = R.nodes; n; n = n->next)
        if (n->sub.st)
            stream_flush(n->sub.st);
}

static void deliver(redisReply *r)
{
    redisReply *ch = r->element[1], *payload = r->element[2];
    if (ch->type != REDIS_REPLY_STRING || payload->type != REDIS_REPLY_STRING)
        return;
    mw_redis_stats.received++;
    if (R.hooks.on_message)
        R.hooks.on_message(ch->str, payload->str, (size_t)payload->len);
}

/* Redis unsubscribed a channel we did not give up: with sharded pub/sub, its slot
 * moved to another master. Subscribe it again where the table says; a stale table
 * gets a MOVED, which sub_error follows. */
static void on_kicked(struct node *n, const char *channel)
{
    struct chan *c = mw_map_get(&R.channels, channel);
    if (!c || c->on != n || !c->confirmed)
        return; /* the answer to our own SUNSUBSCRIBE */
    c->on = NULL;
    c->confirmed = false;
    R.unplaced++;
    mw_log_debug("redis channel moved", "channel=%s addr=%s", channel, n->addr);
    request_refresh(0);
    place_unplaced();
    report_state();
}

static void set_owner(int slot, struct node *n);
static void sync_links(void);

/* An error on a subscriber link: a MOVED for a slot whose channels we sent to a node
 * that no longer serves it, or something that a fresh connection may cure. */
static void sub_error(struct link *l, redisReply *r)
{
    struct mw_redis_addr to;
    int slot;
    if (R.cluster &&
        mw_redis_cluster_parse_redirect(r->str, (size_t)r->len, &slot, &to) == MW_REDIS_MOVED) {
        struct node *from = l->node, *n = node_get(to.ip[0] ? to.ip : from->host, to.port);
        mw_redis_stats.moved++;
        mw_log_debug("redis moved", "slot=%d addr=%s link=subscriber", slot, n->addr);
        R.moved |= R.owner[slot] != n;
        set_owner(slot, n);
        sync_links();
        for (uint32_t i = 0; i < R.channels.cap; i++) {
            struct chan *c = R.channels.slots[i].val;
            if (R.channels.slots[i].key && c->slot == slot && c->on == from) {
                c->on = NULL;
                c->confirmed = false;
                R.unplaced++;
            }
        }
        request_refresh(0);
        place_unplaced();
        report_state();
        return;
    }
    mw_log_error("redis subscribe failed", "addr=%s err=\"%s\"", l->node->addr, r->str);
    sub_fail(l, "subscribe failed");
}

static void on_push(struct link *l, redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR) {
        sub_error(l, r);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
        return; /* a PONG */
    const char *kind = r->element[0]->str, *channel = r->element[1]->str;
    if (r->elements >= 3 && (strcmp(kind, "message") == 0 || strcmp(kind, "smessage") == 0)) {
        deliver(r);
    } else if (strcmp(kind, "subscribe") == 0 || strcmp(kind, "ssubscribe") == 0) {
        struct chan *c = mw_map_get(&R.channels, channel);
        if (c && c->on == l->node)
            c->confirmed = true;
    } else if (strcmp(kind, "sunsubscribe") == 0) {
        on_kicked(l->node, channel);
    }
}

static void on_sub_reply(struct stream *s, redisReply *r)
{
    struct link *l = s->link;
    if (s->handshake > 0) {
        if (r->type == REDIS_REPLY_ERROR) {
            mw_log_error("redis handshake failed", "link=%s addr=%s err=\"%s\"", l->name,
                         l->node->addr, r->str);
            sub_fail(l, "handshake failed");
        } else if (--s->handshake == 0) {
            link_ready(l);
        }
        return;
    }
    on_push(l, r);
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
    struct stream *s = h->data;
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
    struct stream *s = req->handle->data;
    struct link *l = s->link;
    if (!l)
        return; /* given up meanwhile */
    if (status < 0) {
        sub_fail(l, uv_strerror(status));
        return;
    }
    uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_stream_read);
    if (R.password) {
        const char *auth[] = { "AUTH", R.password };
        resp_append(&s->out, 2, auth, NULL);
        s->handshake++;
    }
    const char *ping[] = { "PING" };
    resp_append(&s->out, 1, ping, NULL);
    s->handshake++;
    stream_flush(s);
}

static void sub_open(struct link *l, const char *ip)
{
    struct sockaddr_in sa;
    if (uv_ip4_addr(ip, l->node->port, &sa) < 0) {
        link_down(l, "bad address");
        return;
    }
    struct stream *s = mw_calloc(1, sizeof *s);
    s->reader = redisReaderCreate();
    s->link = l;
    uv_tcp_init(uv_default_loop(), &s->tcp);
    s->tcp.data = s;
    l->st = s;
    int rc = uv_tcp_connect(&s->connect, &s->tcp, (const struct sockaddr *)&sa,
                            on_stream_connected);
    if (rc < 0) {
        sub_fail(l, uv_strerror(rc));
        return;
    }
}

/* ---- hiredis on the loop ---- */

/* hiredis's libuv adapter (adapters/libuv.h), except for poll errors. */
struct poller {
    redisAsyncContext *ac; /* NULL once hiredis let go of it */
    uv_poll_t poll;
    int events;
    bool closing;
};

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct poller *p = h->data;
    if (status < 0) {
        /* libuv stopped the watcher on POLLERR: a connect that failed, or a reset.
         * hiredis meets the error when it checks the connect or reads, and
         * disconnects (callbacks get NULL, then on_connect / on_disconnect). */
        if (p->ac && !(p->ac->c.flags & REDIS_CONNECTED))
            redisAsyncHandleWrite(p->ac);
        else if (p->ac)
            redisAsyncHandleRead(p->ac);
        if (p->ac && p->events) /* no error after all: watch again */
            uv_poll_start(&p->poll, p->events, on_poll);
        return;
    }
    if (p->ac && (events & UV_READABLE))
        redisAsyncHandleRead(p->ac);
    if (p->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->ac);
}

static void poll_update(struct poller *p, int add, int del)
{
    p->events = (p->events | add) & ~del;
    if (p->events)
        uv_poll_start(&p->poll, p->events, on_poll);
    else
        uv_poll_stop(&p->poll);
}

static void ev_add_read(void *ud)
{
    poll_update(ud, UV_READABLE, 0);
}

static void ev_del_read(void *ud)
{
    poll_update(ud, 0, UV_READABLE);
}

static void ev_add_write(void *ud)
{
    poll_update(ud, UV_WRITABLE, 0);
}

static void ev_del_write(void *ud)
{
    poll_update(ud, 0, UV_WRITABLE);
}

static void on_poller_closed(uv_handle_t *h)
{
    free(h->data);
}

static void ev_cleanup(void *ud)
{
    struct poller *p = ud;
    if (p->closing) /* hiredis may clean up twice while freeing a context */
        return;
    p->closing = true;
    p->ac = NULL;
    uv_close((uv_handle_t *)&p->poll, on_poller_closed);
}

static int attach_loop(redisAsyncContext *ac)
{
    struct poller *p = mw_calloc(1, sizeof *p);
    if (uv_poll_init(uv_default_loop(), &p->poll, ac->c.fd) != 0) {
        free(p);
        return -1;
    }
    p->poll.data = p;
    p->ac = ac;
    ac->ev.data = p;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    return 0;
}

/* ---- the command link: a hiredis async context ---- */

/* The handshake's last reply (PING): the link is usable. */
static void on_ready(redisAsyncContext *ac, void *r, void *ud)
{
    struct link *l = ud;
    redisReply *reply = r;
    if (!reply || !ac->data || ac != l->ac)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        mw_log_error("redis handshake failed", "link=%s addr=%s err=\"%s\"", l->name,
                     l->node->addr, reply->str);
        redisAsyncDisconnect(ac);
        return;
    }
    link_ready(l);
}

static void on_handshake_step(redisAsyncContext *ac, void *r, void *ud)
{
    struct link *l = ud;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ERROR && ac->data && ac == l->ac) {
        mw_log_error("redis handshake failed", "link=%s addr=%s err=\"%s\"", l->name,
                     l->node->addr, reply->str);
        redisAsyncDisconnect(ac);
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct link *l = ac->data;
    if (status == REDIS_OK || !l)
        return;
    l->ac = NULL; /* hiredis frees the context after this callback, */
    ((redisAsyncContext *)ac)->data = NULL; /* and on_disconnect must not count it twice */
    link_down(l, ac->errstr);
    node_release(l->node);
}

/* Queued right after the connect starts: hiredis 0.14 only notices that a
 * non-blocking connect finished (or failed) once a command wants to write. */
static void send_handshake(struct link *l)
{
    if (R.password)
        redisAsyncCommand(l->ac, on_handshake_step, l, "AUTH %s", R.password);
    if (R.db)
        redisAsyncCommand(l->ac, on_handshake_step, l, "SELECT %d", R.db);
    redisAsyncCommand(l->ac, on_ready, l, "PING");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct link *l = ac->data;
    if (!l)
        return; /* given up by on_connect_timeout or link_close */
    struct node *n = l->node;
    l->ac = NULL; /* hiredis frees the context after this callback */
    if (R.stopping || !l->wanted)
        l->up = false;
    else
        link_down(l, status == REDIS_OK ? "closed" : ac->errstr);
    node_release(n);
}

/* Frees a context that is not up; its pending callbacks get NULL replies. */
static void cmd_abandon(struct link *l)
{
    redisAsyncContext *ac = l->ac;
    ac->data = NULL; /* its callbacks, run by the free below, must not touch l */
    l->ac = NULL;
    redisAsyncFree(ac);
    node_release(l->node);
}

static void cmd_open(struct link *l, const char *ip)
{
    redisAsyncContext *ac = redisAsyncConnect(ip, l->node->port);
    if (!ac || ac->err) {
        link_down(l, ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        return;
    }
    ac->data = l;
    l->ac = ac;
    l->node->holds++;
    if (attach_loop(ac) < 0) {
        cmd_abandon(l);
        link_down(l, "cannot poll the socket");
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    send_handshake(l);
}

/* ---- connecting either link ---- */

static void on_connect_timeout(uv_timer_t *t)
{
    struct link *l = t->data;
    if (l->up)
        return;
    if (l->ac)
        cmd_abandon(l);
    else if (l->st)
        stream_drop(l);
    else
        return;
    link_down(l, "connect timed out");
}

static void open_link(struct link *l, const char *ip)
{
    if (l->subscriber)
        sub_open(l, ip);
    else
        cmd_open(l, ip);
    if (l->ac || l->st)
        uv_timer_start(&l->retry, on_connect_timeout, CONNECT_TIMEOUT_MS, 0);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct link *l = req->data;
    struct node *n = l->node;
    char ip[64] = "";
    l->resolving = false;
    if (status == 0 && res)
        uv_ip4_name((struct sockaddr_in *)res->ai_addr, ip, sizeof ip);
    uv_freeaddrinfo(res);
    if (!R.stopping && l->wanted) {
        if (!ip[0])
            link_down(l, status ? uv_strerror(status) : "no address");
        else
            open_link(l, ip);
    }
    node_release(n);
}

static void connect_link(struct link *l)
{
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM };
    struct in_addr ip;
    if (R.stopping || !l->wanted || l->ac || l->st || l->resolving)
        return;
    if (uv_inet_pton(AF_INET, l->node->host, &ip) == 0) { /* cluster nodes are IPs */
        open_link(l, l->node->host);
        return;
    }
    l->resolve.data = l;
    l->resolving = true;
    l->node->holds++;
    int rc = uv_getaddrinfo(uv_default_loop(), &l->resolve, on_resolved, l->node->host, NULL,
                            &hints);
    if (rc < 0) {
        l->resolving = false;
        l->node->holds--;
        link_down(l, uv_strerror(rc));
    }
}

/* Closes a link nobody needs any more (its node serves no slot): no retry. A command
 * link that is up still gets the replies of what it sent (MOVED, most likely). */
static void link_close(struct link *l)
{
    bool was = l->up;
    uv_timer_stop(&l->retry);
    l->up = false;
    l->attempt = 0;
    if (l->subscriber) {
        stream_drop(l);
        if (was)
            unplace_node(l->node);
        return;
    }
    l->node->serving = l->node->state_asked = false;
    if (l->ac && was)
        redisAsyncDisconnect(l->ac);
    else if (l->ac)
        cmd_abandon(l);
}

static void link_want(struct link *l, bool want)
{
    if (l->wanted == want)
        return;
    l->wanted = want;
    if (want)
        connect_link(l);
    else
        link_close(l);
}

/* Connects every master (and the seeds while no table is usable), closes the rest. */
static void sync_links(void)
{
    uint64_t now = mw_now_ms();
    for (struct node *n = R.nodes; n; n = n->next) {
        bool asked = n->asked_ms && now - n->asked_ms < ASKED_KEEP_MS;
        link_want(&n->cmd, n->nslots || asked || (n->seed && R.need_seeds));
        link_want(&n->sub, n->nslots > 0);
    }
}

/* ---- subscriptions ---- */

static void unplace_node(struct node *n)
{
    for (uint32_t i = 0; i < R.channels.cap; i++) {
        struct chan *c = R.channels.slots[i].val;
        if (R.channels.slots[i].key && c->on == n) {
            c->on = NULL;
            c->confirmed = false;
            R.unplaced++;
        }
    }
}

static int by_slot(const void *a, const void *b)
{
    const struct chan *x = *(struct chan *const *)a, *y = *(struct chan *const *)b;
    return x->slot - y->slot;
}

/* Appends one (S)SUBSCRIBE of n channels to node's stream and marks them placed. */
static void send_subscribe(struct node *node, struct chan **chans, size_t n)
{
    const char **argv = mw_malloc((n + 1) * sizeof *argv);
    argv[0] = R.cluster ? "SSUBSCRIBE" : "SUBSCRIBE";
    for (size_t i = 0; i < n; i++) {
        argv[i + 1] = chans[i]->name;
        chans[i]->on = node;
        chans[i]->confirmed = false;
    }
    resp_append(&node->sub.st->out, (int)n + 1, argv, NULL);
    R.unplaced -= (uint32_t)n;
    free(argv);
}

/* Subscribes every channel still to do whose master's subscriber link is up:
 * SUBSCRIBE_BATCH channels per command, and with a Redis Cluster one slot per command
 * (all of them pipelined: one write per master, not one round trip per channel). */
static void place_unplaced(void)
{
    if (!R.unplaced)
        return;
    struct chan **todo = mw_malloc(R.unplaced * sizeof *todo);
    size_t n = 0;
    for (uint32_t i = 0; i < R.channels.cap && n < R.unplaced; i++) {
        struct chan *c = R.channels.slots[i].val;
        if (!R.channels.slots[i].key || c->on)
            continue;
        struct node *o = R.owner[c->slot];
        if (o && o->sub.up)
            todo[n++] = c;
    }
    if (R.cluster)
        qsort(todo, n, sizeof *todo, by_slot);
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && j - i < SUBSCRIBE_BATCH; j++)
            if (R.cluster && todo[j]->slot != todo[i]->slot)
                break;
        send_subscribe(R.owner[todo[i]->slot], todo + i, j - i);
    }
    free(todo);
    flush_all();
}

/* After the table changed: every channel whose slot has a new master leaves the old
 * one (if it can still hear us) and is subscribed on the new one. */
static void move_channels(void)
{
    for (uint32_t i = 0; i < R.channels.cap; i++) {
        struct chan *c = R.channels.slots[i].val;
        if (!R.channels.slots[i].key || !c->on || c->on == R.owner[c->slot])
            continue;
        if (c->on->sub.up) {
            const char *argv[] = { "SUNSUBSCRIBE", c->name };
            resp_append(&c->on->sub.st->out, 2, argv, NULL);
        }
        c->on = NULL;
        c->confirmed = false;
        R.unplaced++;
    }
    place_unplaced(); /* flushes the SUNSUBSCRIBEs too */
}

void mw_redis_subscribe(const char *channel)
{
    if (!R.configured || R.stopping || mw_map_get(&R.channels, channel))
        return;
    struct chan *c = mw_calloc(1, sizeof *c);
    c->name = mw_strdup(channel);
    c->slot = R.cluster ? mw_redis_cluster_key_slot(channel, strlen(channel)) : 0;
    mw_map_put(&R.channels, c->name, c);
    mw_redis_stats.channels = R.channels.len;
    R.unplaced++;
    struct node *o = R.owner[c->slot];
    if (o && o->sub.up) {
        send_subscribe(o, &c, 1);
        stream_flush(o->sub.st);
    }
}

void mw_redis_unsubscribe(const char *channel)
{
    struct chan *c = R.configured ? mw_map_del(&R.channels, channel) : NULL;
    if (!c)
        return;
    mw_redis_stats.channels = R.channels.len;
    if (!c->on) {
        R.unplaced--;
    } else if (c->on->sub.up) {
        const char *argv[] = { R.cluster ? "SUNSUBSCRIBE" : "UNSUBSCRIBE", channel };
        resp_append(&c->on->sub.st->out, 2, argv, NULL);
        stream_flush(c->on->sub.st);
    }
    free(c->name);
    free(c);
}

/* ---- the slot table (Redis Cluster) ---- */

static void set_owner(int slot, struct node *n)
{
    struct node *old = R.owner[slot];
    if (old == n)
        return;
    if (old)
        old->nslots--;
    else
        R.covered++;
    if (n)
        n->nslots++;
    else
        R.covered--;
    R.owner[slot] = n;
}

static void apply_table(const struct mw_redis_slot_table *t)
{
    if (t->covered == 0 && R.covered > 0) {
        /* A node that left the cluster (or was reset) knows no slots: ask another. */
        mw_log_warn("redis cluster topology refresh failed", "err=\"%s\"", "no slots");
        request_refresh(REFRESH_SOON_MS);
        return;
    }
    struct node **by_index = mw_calloc(t->nmasters ? t->nmasters : 1, sizeof *by_index);
    bool changed = false;
    for (uint32_t i = 0; i < t->nmasters; i++)
        by_index[i] = node_get(t->masters[i].ip, t->masters[i].port);
    for (int s = 0; s < MW_REDIS_SLOTS; s++) {
        struct node *n = t->owner[s] >= 0 ? by_index[t->owner[s]] : NULL;
        changed |= R.owner[s] != n;
        set_owner(s, n);
    }
    free(by_index);
    R.need_seeds = R.covered < MW_REDIS_SLOTS;
    sync_links();
    move_channels();
    mw_redis_stats.masters = count_masters();
    if (changed || R.moved) { /* a MOVED may have told part of it first */
        R.moved = false;
        mw_redis_stats.topology_changes++;
        mw_log_info("redis cluster topology", "masters=%u covered_slots=%u",
                    mw_redis_stats.masters, R.covered);
    }
    if (R.covered < MW_REDIS_SLOTS)
        request_refresh(REFRESH_SOON_MS);
    report_state();
}

/* Every master with an up link: whether it serves. Who did not, is asked again after
 * REFRESH_SOON_MS (on_cluster_info). */
static void ask_states(void)
{
    for (struct node *n = R.nodes; n; n = n->next)
        if (n->nslots)
            ask_state(n);
}

static void on_cluster_info(redisAsyncContext *ac, void *r, void *ud)
{
    struct node *n = ud;
    redisReply *reply = r;
    if (!reply || R.stopping || !ac->data || ac != n->cmd.ac)
        return; /* the link went away: link_down cleared state_asked */
    n->state_asked = false;
    bool ok = reply->type == REDIS_REPLY_STRING && strstr(reply->str, "cluster_state:ok");
    if (!ok) {
        if (!n->warned)
            mw_log_warn("redis cluster not serving", "addr=%s", n->addr);
        n->warned = true;
        request_refresh(REFRESH_SOON_MS); /* look again soon */
    } else {
        n->warned = false;
    }
    if (ok != n->serving) {
        n->serving = ok;
        report_state();
    }
}

/* Asks a master whether it serves (cluster_state:ok), once at a time. */
static void ask_state(struct node *n)
{
    if (n->cmd.up && n->cmd.ac && !n->state_asked &&
        redisAsyncCommand(n->cmd.ac, on_cluster_info, n, "CLUSTER INFO") == REDIS_OK)
        n->state_asked = true;
}

struct refresh {
    uint32_t seq;
    struct node *asked;
};

static void on_slots(redisAsyncContext *ac, void *r, void *ud)
{
    (void)ac;
    struct refresh *q = ud;
    char err[256];
    if (R.stopping || q->seq != R.refresh_seq) { /* a later one was sent */
        free(q);
        return;
    }
    R.refreshing = false;
    R.refresh_done_ms = mw_now_ms();
    if (r) {
        struct mw_redis_slot_table *t = mw_redis_cluster_table_parse(r, q->asked->host, err,
                                                                     sizeof err);
        if (t)
            apply_table(t);
        else
            mw_log_warn("redis cluster topology refresh failed", "addr=%s err=\"%s\"",
                        q->asked->addr, err);
        mw_redis_cluster_table_free(t);
    }
    free(q);
    if (R.refresh_again) {
        R.refresh_again = false;
        request_refresh(0);
    }
}

/* A node to ask CLUSTER SLOTS: the masters in turn, else any seed that is up. */
static struct node *refresh_source(void)
{
    uint32_t masters = 0, others = 0;
    for (struct node *n = R.nodes; n; n = n->next)
        if (n->cmd.up && n->cmd.ac) {
            masters += n->nslots > 0;
            others += n->nslots == 0;
        }
    bool any = masters == 0;
    uint32_t k = masters ? masters : others;
    if (!k)
        return NULL;
    k = R.rr++ % k;
    for (struct node *n = R.nodes; n; n = n->next)
        if (n->cmd.up && n->cmd.ac && (any || n->nslots > 0) && k-- == 0)
            return n;
    return NULL;
}

static void on_refresh_timer(uv_timer_t *t)
{
    (void)t;
    uint64_t now = mw_now_ms();
    if (R.refreshing && now - R.refresh_sent_ms < REFRESH_TIMEOUT_MS) {
        R.refresh_again = true;
        return;
    }
    R.refreshing = false;
    R.refresh_done_ms = now;
    struct node *n = refresh_source();
    if (!n) { /* nothing is up: the seeds, once one is, ask again (link_ready) */
        if (!R.need_seeds) {
            R.need_seeds = true;
            sync_links();
        }
        return;
    }
    struct refresh *q = mw_malloc(sizeof *q);
    q->seq = ++R.refresh_seq;
    q->asked = n;
    if (redisAsyncCommand(n->cmd.ac, on_slots, q, "CLUSTER SLOTS") != REDIS_OK) {
        free(q);
        return;
    }
    R.refreshing = true;
    R.refresh_sent_ms = now;
    ask_states();
}

/* Refreshes the table in delay_ms (or sooner, if already due sooner), but not sooner
 * than REFRESH_GAP_MS after the last refresh, so that a burst of MOVED replies or
 * failures asks once; then every REFRESH_MS. */
static void request_refresh(uint64_t delay_ms)
{
    if (!R.cluster || R.stopping)
        return;
    uint64_t now = mw_now_ms(), at = R.refresh_done_ms + REFRESH_GAP_MS;
    if (at > now + delay_ms)
        delay_ms = at - now;
    if (uv_is_active((uv_handle_t *)&R.refresh) && uv_timer_get_due_in(&R.refresh) <= delay_ms)
        return;
    uv_timer_start(&R.refresh, on_refresh_timer, delay_ms, REFRESH_MS);
}

/* ---- commands ---- */

/* One command in flight. With a Redis Cluster it keeps its formatted text, to resend
 * it where a MOVED or ASK points. */
struct pending {
    mw_redis_cb cb;
    void *ud;
    char *cmd;
    size_t len;
    int slot;      /* of its key, or -1 */
    bool pubsub;   /* PUBLISH or SPUBLISH */
    int redirects; /* redirections and retries so far */
    struct pending *next; /* on R.later */
};

static void pending_free(struct pending *p)
{
    if (p->cmd)
        redisFreeCommand(p->cmd);
    free(p);
}

static void on_reply(redisAsyncContext *ac, void *r, void *ud);

/* Follows a MOVED or ASK error. 0: resent (the callback comes later); 1: it cannot
 * be followed (answer NULL); -1: not a redirection. */
static int redirect(struct pending *p, redisAsyncContext *ac, redisReply *reply)
{
    struct mw_redis_addr to;
    int slot;
    enum mw_redis_redirect kind =
        mw_redis_cluster_parse_redirect(reply->str, (size_t)reply->len, &slot, &to);
    if (kind == MW_REDIS_NO_REDIRECT)
        return -1;
    struct link *from = ac->data;
    if (++p->redirects > MAX_REDIRECTS) {
        mw_log_warn("redis cluster redirect limit", "slot=%d redirects=%d", slot, MAX_REDIRECTS);
        return 1;
    }
    if (!to.ip[0] && !from)
        return 1;
    struct node *n = node_get(to.ip[0] ? to.ip : from->node->host, to.port);
    if (kind == MW_REDIS_MOVED) {
        mw_redis_stats.moved++;
        mw_log_debug("redis moved", "slot=%d addr=%s link=command", slot, n->addr);
        R.moved |= R.owner[slot] != n;
        set_owner(slot, n);
        request_refresh(0);
    } else {
        mw_redis_stats.asked++;
        mw_log_debug("redis ask", "slot=%d addr=%s", slot, n->addr);
        n->asked_ms = mw_now_ms();
    }
    sync_links(); /* connects n when new: its context takes commands while connecting */
    report_state();
    if (!n->cmd.ac)
        return 1;
    if (kind == MW_REDIS_ASK && redisAsyncCommand(n->cmd.ac, NULL, NULL, "ASKING") != REDIS_OK)
        return 1;
    if (redisAsyncFormattedCommand(n->cmd.ac, on_reply, p, p->cmd, p->len) != REDIS_OK)
        return 1;
    return 0;
}

/* A master that takes the command now: its link is up and, in a Redis Cluster, it
 * serves (a restarted master answers CLUSTERDOWN for a while). Sharded pub/sub is
 * served in a cluster that is down (cluster-allow-pubsubshard-when-down), so an
 * SPUBLISH only needs the link. */
static bool usable(const struct node *n, bool pubsub)
{
    return n && n->cmd.up && n->cmd.ac && (!R.cluster || pubsub || n->serving);
}

/* The node a command goes to: the master of `slot`, or for -1 (no key) any usable
 * master, in turn. NULL when there is none, or it is not usable: fail fast. */
static struct node *route(int slot, bool pubsub)
{
    if (!R.cluster || slot >= 0) {
        struct node *n = R.owner[R.cluster ? slot : 0];
        return usable(n, pubsub) ? n : NULL;
    }
    uint32_t k = 0;
    for (struct node *n = R.nodes; n; n = n->next)
        k += n->nslots && usable(n, pubsub);
    if (!k)
        return NULL;
    k = R.rr++ % k;
    for (struct node *n = R.nodes; n; n = n->next)
        if (n->nslots && usable(n, pubsub) && k-- == 0)
            return n;
    return NULL;
}

/* Sends p to the node serving its slot now. 0, or -1 when that node is not up. */
static int resend(struct pending *p)
{
    struct node *n = route(p->slot, p->pubsub);
    if (!n)
        return -1;
    return redisAsyncFormattedCommand(n->cmd.ac, on_reply, p, p->cmd, p->len) == REDIS_OK ? 0 : -1;
}

static void on_later(uv_timer_t *t)
{
    (void)t;
    struct pending *p = R.later;
    R.later = NULL;
    R.later_tail = &R.later;
    while (p) {
        struct pending *next = p->next;
        if (resend(p) < 0) {
            if (p->cb)
                p->cb(p->ud, NULL);
            pending_free(p);
        }
        p = next;
    }
}

/* Resends p after RETRY_LATER_MS (in order). 0, or 1 when its budget is spent. */
static int retry_later(struct pending *p, redisReply *reply)
{
    if (++p->redirects > MAX_REDIRECTS) {
        mw_log_warn("redis cluster retry limit", "slot=%d err=\"%s\"", p->slot, reply->str);
        return 1;
    }
    p->next = NULL;
    *R.later_tail = p;
    R.later_tail = &p->next;
    if (!uv_is_active((uv_handle_t *)&R.later_timer))
        uv_timer_start(&R.later_timer, on_later, RETRY_LATER_MS, 0);
    return 0;
}

static bool is_transient(const redisReply *reply)
{
    return strncmp(reply->str, "TRYAGAIN", 8) == 0 || strncmp(reply->str, "CLUSTERDOWN", 11) == 0;
}

static void on_reply(redisAsyncContext *ac, void *r, void *ud)
{
    struct pending *p = ud;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ERROR && p->cmd && !R.stopping) {
        int rc = redirect(p, ac, reply);
        if (rc < 0 && is_transient(reply)) {
            struct link *l = ac->data;
            if (l && strncmp(reply->str, "CLUSTERDOWN", 11) == 0)
                ask_state(l->node); /* stop routing to it if it says so */
            rc = retry_later(p, reply); /* a migration or a cluster that is settling */
        }
        if (rc == 0)
            return;
        if (rc > 0) {
            reply = NULL; /* the key's master is out of reach: "unavailable" */
            report_state();
        }
    }
    if (p->cb)
        p->cb(p->ud, reply);
    pending_free(p);
}

static bool is_publish(int argc, const char **argv, const size_t *lens)
{
    size_t n = argc > 0 ? (lens ? lens[0] : strlen(argv[0])) : 0;
    return (n == 7 && strncasecmp(argv[0], "PUBLISH", 7) == 0) ||
           (n == 8 && strncasecmp(argv[0], "SPUBLISH", 8) == 0);
}

int mw_redis_command_key(const char *key, size_t keylen, mw_redis_cb cb, void *ud, int argc,
                         const char **argv, const size_t *lens)
{
    if (!R.configured || R.stopping || argc < 1)
        return -1;
    int slot = key && R.cluster ? mw_redis_cluster_key_slot(key, keylen) : -1;
    bool publish = is_publish(argc, argv, lens);
    struct node *n = route(slot, publish);
    if (!n)
        return -1;
    struct pending *p = mw_calloc(1, sizeof *p);
    p->cb = cb;
    p->ud = ud;
    p->slot = slot;
    p->pubsub = publish;
    int rc;
    if (R.cluster) {
        int len = redisFormatCommandArgv(&p->cmd, argc, argv, lens);
        if (len < 0) {
            free(p);
            return -1;
        }
        p->len = (size_t)len;
        rc = redisAsyncFormattedCommand(n->cmd.ac, on_reply, p, p->cmd, p->len);
    } else {
        rc = redisAsyncCommandArgv(n->cmd.ac, on_reply, p, argc, argv, lens);
    }
    if (rc != REDIS_OK) {
        pending_free(p);
        return -1;
    }
    if (publish)
        mw_redis_stats.published++;
    return 0;
}

int mw_redis_command(mw_redis_cb cb, void *ud, int argc, const char **argv, const size_t *lens)
{
    const char *key = NULL;
    size_t keylen = 0;
    if (R.cluster && mw_redis_cluster_command_key(argc, argv, lens, &key, &keylen) < 0)
        key = NULL;
    return mw_redis_command_key(key, keylen, cb, ud, argc, argv, lens);
}

/* ---- start and stop ---- */

static void begin(const struct mw_redis_hooks *hooks, bool cluster)
{
    R.configured = true;
    R.stopping = false;
    R.was_up = false;
    R.cluster = cluster;
    R.hooks = *hooks;
    memset(&mw_redis_stats, 0, sizeof mw_redis_stats);
}

int mw_redis_start(const char *url, const struct mw_redis_hooks *hooks, char *err, size_t errlen)
{
    char host[256];
    int port;
    if (mw_redis_parse_url(url, host, sizeof host, &port, &R.password, &R.db, err, errlen) < 0)
        return -1;
    begin(hooks, false);
    struct node *n = node_get(host, port);
    n->seed = true;
    for (int s = 0; s < MW_REDIS_SLOTS; s++)
        set_owner(s, n);
    sync_links();
    return 0;
}

int mw_redis_start_cluster(char *const *urls, size_t nurls, const struct mw_redis_hooks *hooks,
                           char *err, size_t errlen)
{
    char (*hosts)[256] = mw_calloc(nurls ? nurls : 1, sizeof *hosts);
    int *ports = mw_calloc(nurls ? nurls : 1, sizeof *ports);
    char *password = NULL;
    int rc = -1;
    if (!nurls) {
        snprintf(err, errlen, "redis.cluster: no seed URL");
        goto out;
    }
    for (size_t i = 0; i < nurls; i++) {
        char *pw;
        int db;
        if (mw_redis_parse_url(urls[i], hosts[i], sizeof hosts[i], &ports[i], &pw, &db, err,
                               errlen) < 0)
            goto out;
        if (pw && !password)
            password = pw;
        else
            free(pw);
        if (db) {
            snprintf(err, errlen, "%s: a Redis Cluster has database 0 only", urls[i]);
            goto out;
        }
    }
    begin(hooks, true);
    R.password = password;
    password = NULL;
    R.db = 0;
    R.need_seeds = true;
    uv_timer_init(uv_default_loop(), &R.refresh);
    uv_timer_init(uv_default_loop(), &R.later_timer);
    R.later = NULL;
    R.later_tail = &R.later;
    for (size_t i = 0; i < nurls; i++)
        node_get(hosts[i], ports[i])->seed = true;
    sync_links();
    request_refresh(REFRESH_MS); /* the periodic one; a seed that comes up asks at once */
    rc = 0;
out:
    free(password);
    free(hosts);
    free(ports);
    return rc;
}

/* Stops a link for good. A command link that is up gets its pending replies first
 * (its callbacks fire later, with the replies or NULL); the node is freed after. */
static void link_stop(struct link *l)
{
    uv_timer_stop(&l->retry);
    uv_close((uv_handle_t *)&l->retry, on_timer_closed);
    if (l->resolving)
        uv_cancel((uv_req_t *)&l->resolve);
    stream_drop(l);
    if (l->ac && l->up)
        redisAsyncDisconnect(l->ac);
    else if (l->ac)
        cmd_abandon(l);
    l->up = false;
}

void mw_redis_stop(void)
{
    if (!R.configured)
        return;
    R.stopping = true;
    if (R.cluster) {
        uv_close((uv_handle_t *)&R.refresh, NULL);
        uv_close((uv_handle_t *)&R.later_timer, NULL);
        while (R.later) { /* waiting for a retry: unavailable */
            struct pending *p = R.later;
            R.later = p->next;
            if (p->cb)
                p->cb(p->ud, NULL);
            pending_free(p);
        }
    }
    struct node *n = R.nodes, *next;
    R.nodes = NULL;
    for (; n; n = next) {
        next = n->next;
        link_stop(&n->cmd);
        link_stop(&n->sub);
    }
    memset(R.owner, 0, sizeof R.owner);
    R.covered = 0;
    for (uint32_t i = 0; i < R.channels.cap; i++)
        if (R.channels.slots[i].key) {
            struct chan *c = R.channels.slots[i].val;
            free(c->name);
            free(c);
        }
    mw_map_free(&R.channels);
    memset(&R.channels, 0, sizeof R.channels);
    R.unplaced = 0;
    free(R.password);
    R.password = NULL;
    R.configured = false;
}
