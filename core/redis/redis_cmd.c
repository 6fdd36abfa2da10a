/* redis_cmd.c - command routing (redis_cmd.h). */
#include "redis/redis_cmd.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "base/log.h"
#include "redis/redis.h"
#include "redis/redis_cluster.h"
#include "redis/redis_topo.h"
#include "base/util.h"

#define MAX_REDIRECTS 5
#define RETRY_LATER_MS 100 /* after TRYAGAIN or CLUSTERDOWN */

/* One command in flight. It keeps its formatted text, to resend it where a MOVED or
 * ASK points. */
struct pending {
    mw_redis_cb cb;
    void *ud;
    char *cmd;
    size_t len;
    int slot;      /* of its key, or -1 */
    bool pubsub;   /* PUBLISH or SPUBLISH */
    int redirects; /* redirections and retries so far */
    uint64_t sent_us; /* first sent, for the latency histogram */
    bool asked;    /* last sent after an ASK */
    struct mw__redis_node *on; /* where it was sent (NULL while waiting to resend) */
    struct pending *next;      /* on C.later */
};

static struct {
    bool started;
    bool reply_asked; /* during a callback: its command was answered after an ASK */
    uint32_t max_in_flight;
    struct pending *later, **later_tail; /* commands to resend after RETRY_LATER_MS */
    uint32_t nlater;
    uv_timer_t later_timer;
} C;

static void on_reply(redisAsyncContext *ac, void *r, void *ud);

const struct mw_hist_le mw_redis_command_le = {
    16, { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
          2.5, 5, 10 },
};

static void pending_free(struct pending *p)
{
    if (p->cmd)
        redisFreeCommand(p->cmd);
    free(p);
}

/* A master that takes the command now: its link is up, it has room, and in a Redis
 * Cluster it serves (a restarted master answers CLUSTERDOWN for a while). Sharded
 * pub/sub is served in a cluster that is down (cluster-allow-pubsubshard-when-down),
 * so an SPUBLISH only needs the link. */
static bool usable(const struct mw__redis_node *n, bool pubsub)
{
    return n && n->cmd.up && n->cmd.ac && n->inflight < C.max_in_flight &&
           (!mw__redis_topo_cluster() || pubsub || n->serving);
}

/* The node a command goes to: the master of `slot`, or for -1 (no key) any usable
 * master, in turn. NULL when there is none, or it is not usable: fail fast. */
static struct mw__redis_node *route(int slot, bool pubsub)
{
    static uint32_t rr;
    if (!mw__redis_topo_cluster() || slot >= 0) {
        struct mw__redis_node *n = mw__redis_topo_owner(slot < 0 ? 0 : slot);
        return usable(n, pubsub) ? n : NULL;
    }
    uint32_t k = 0;
    for (struct mw__redis_node *n = mw__redis_topo_nodes(); n; n = n->next)
        k += n->nslots && usable(n, pubsub);
    if (!k)
        return NULL;
    k = rr++ % k;
    for (struct mw__redis_node *n = mw__redis_topo_nodes(); n; n = n->next)
        if (n->nslots && usable(n, pubsub) && k-- == 0)
            return n;
    return NULL;
}

/* Sends p on n's command link. 0, or -1. */
static int send_on(struct pending *p, struct mw__redis_node *n)
{
    if (redisAsyncFormattedCommand(n->cmd.ac, on_reply, p, p->cmd, p->len) != REDIS_OK)
        return -1;
    p->on = n;
    n->inflight++;
    mw_redis_stats.in_flight++;
    return 0;
}

/* Sends p to the node serving its slot now. 0, or -1 when that node is not usable. */
static int resend(struct pending *p)
{
    struct mw__redis_node *n = route(p->slot, p->pubsub);
    p->asked = false;
    return n ? send_on(p, n) : -1;
}

/* Follows a MOVED or ASK error. 0: resent (the callback comes later); 1: it cannot
 * be followed (answer NULL); -1: not a redirection. */
static int redirect(struct pending *p, struct mw__redis_node *from, redisReply *reply)
{
    struct mw_redis_addr to;
    int slot;
    enum mw_redis_redirect kind =
        mw_redis_cluster_parse_redirect(reply->str, (size_t)reply->len, &slot, &to);
    if (kind == MW_REDIS_NO_REDIRECT)
        return -1;
    if (++p->redirects > MAX_REDIRECTS) {
        mw_log_warn("redis cluster redirect limit", "slot=%d redirects=%d", slot, MAX_REDIRECTS);
        return 1;
    }
    if (!to.ip[0] && !from)
        return 1;
    struct mw__redis_node *n = mw__redis_topo_node(to.ip[0] ? to.ip : from->host, to.port);
    if (kind == MW_REDIS_MOVED) {
        mw_redis_stats.moved++;
        mw_log_debug("redis moved", "slot=%d addr=%s link=command", slot, n->addr);
        mw__redis_topo_moved(slot, n); /* connects n when new: it takes commands meanwhile */
    } else {
        mw_redis_stats.asked++;
        mw_log_debug("redis ask", "slot=%d addr=%s", slot, n->addr);
        mw__redis_topo_asked(n);
    }
    if (!n->cmd.ac || n->inflight >= C.max_in_flight)
        return 1;
    if (kind == MW_REDIS_ASK && redisAsyncCommand(n->cmd.ac, NULL, NULL, "ASKING") != REDIS_OK)
        return 1;
    p->asked = kind == MW_REDIS_ASK;
    return send_on(p, n) == 0 ? 0 : 1;
}

static void on_later(uv_timer_t *t)
{
    (void)t;
    struct pending *p = C.later;
    C.later = NULL;
    C.later_tail = &C.later;
    C.nlater = 0;
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
    if (++p->redirects > MAX_REDIRECTS || C.nlater >= C.max_in_flight) {
        mw_log_warn("redis cluster retry limit", "slot=%d err=\"%s\"", p->slot, reply->str);
        return 1;
    }
    p->next = NULL;
    *C.later_tail = p;
    C.later_tail = &p->next;
    C.nlater++;
    if (!uv_is_active((uv_handle_t *)&C.later_timer))
        uv_timer_start(&C.later_timer, on_later, RETRY_LATER_MS, 0);
    return 0;
}

static bool is_transient(const redisReply *reply)
{
    return strncmp(reply->str, "TRYAGAIN", 8) == 0 || strncmp(reply->str, "CLUSTERDOWN", 11) == 0;
}

static void on_reply(redisAsyncContext *ac, void *r, void *ud)
{
    (void)ac;
    struct pending *p = ud;
    redisReply *reply = r;
    struct mw__redis_node *from = p->on;
    mw_assert(from && from->inflight > 0);
    from->inflight--;
    mw_redis_stats.in_flight--;
    p->on = NULL;
    if (reply && reply->type == REDIS_REPLY_ERROR && mw__redis_topo_cluster() && C.started) {
        int rc = redirect(p, from, reply);
        if (rc < 0 && is_transient(reply)) {
            if (strncmp(reply->str, "CLUSTERDOWN", 11) == 0)
                mw__redis_topo_ask_state(from); /* stop routing to it if it says so */
            rc = retry_later(p, reply); /* a migration or a cluster that is settling */
        }
        if (rc == 0)
            return;
        if (rc > 0)
            reply = NULL; /* the key's master is out of reach: "unavailable" */
    }
    mw_hist_observe(&mw_redis_stats.command, &mw_redis_command_le,
                    (double)(mw_now_us() - p->sent_us) / 1e6);
    C.reply_asked = p->asked;
    if (p->cb)
        p->cb(p->ud, reply);
    C.reply_asked = false;
    pending_free(p);
}

bool mw_redis_reply_asked(void)
{
    return C.reply_asked;
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
    if (!C.started || argc < 1)
        return -1;
    int slot = key && mw__redis_topo_cluster() ? mw_redis_cluster_key_slot(key, keylen) : -1;
    bool publish = is_publish(argc, argv, lens);
    struct mw__redis_node *n = route(slot, publish);
    if (!n) {
        struct mw__redis_node *o = slot >= 0 || !mw__redis_topo_cluster() ? mw__redis_topo_owner(slot < 0 ? 0 : slot) : NULL;
        if (o && o->cmd.up && o->inflight >= C.max_in_flight)
            mw_redis_stats.refused++;
        return -1;
    }
    struct pending *p = mw_calloc(1, sizeof *p);
    p->cb = cb;
    p->ud = ud;
    p->slot = slot;
    p->pubsub = publish;
    int len = redisFormatCommandArgv(&p->cmd, argc, argv, lens);
    if (len < 0) {
        free(p);
        return -1;
    }
    p->len = (size_t)len;
    p->sent_us = mw_now_us();
    if (send_on(p, n) < 0) {
        pending_free(p);
        return -1;
    }
    if (!mw__redis_topo_cluster()) { /* nothing redirects it: hiredis has its copy */
        redisFreeCommand(p->cmd);
        p->cmd = NULL;
    }
    if (publish)
        mw_redis_stats.published++;
    return 0;
}

int mw_redis_command(mw_redis_cb cb, void *ud, int argc, const char **argv, const size_t *lens)
{
    const char *key = NULL;
    size_t keylen = 0;
    if (mw__redis_topo_cluster() &&
        mw_redis_cluster_command_key(argc, argv, lens, &key, &keylen) < 0)
        key = NULL;
    return mw_redis_command_key(key, keylen, cb, ud, argc, argv, lens);
}

void mw__redis_cmd_start(uint32_t max_in_flight)
{
    C.started = true;
    C.max_in_flight = max_in_flight ? max_in_flight : 10000;
    C.later = NULL;
    C.later_tail = &C.later;
    C.nlater = 0;
    uv_timer_init(uv_default_loop(), &C.later_timer);
}

void mw__redis_cmd_stop(void)
{
    if (!C.started)
        return;
    C.started = false;
    uv_close((uv_handle_t *)&C.later_timer, NULL);
    while (C.later) { /* waiting for a retry: unavailable */
        struct pending *p = C.later;
        C.later = p->next;
        if (p->cb)
            p->cb(p->ud, NULL);
        pending_free(p);
    }
    C.nlater = 0;
}
