/* redis_topo.c - Redis servers and the slot table (redis_topo.h). */
#include "redis/redis_topo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "base/log.h"
#include "redis/redis.h"
#include "redis/redis_cluster.h"
#include "base/util.h"

#define REFRESH_MS 5000         /* the periodic topology refresh */
#define REFRESH_SOON_MS 500     /* while a slot has no master, or one is not serving */
#define REFRESH_GAP_MS 200      /* between refreshes that events asked for */
#define REFRESH_TIMEOUT_MS 5000 /* a CLUSTER SLOTS unanswered this long is given up */
#define ASKED_KEEP_MS 30000     /* an ASK target without slots stays connected this long */

static struct {
    bool cluster, started, stopping;
    struct mw__redis_topo_hooks hooks;
    struct mw__redis_node *nodes;
    struct mw__redis_node *owner[MW_REDIS_SLOTS];
    uint32_t covered;  /* slots with an owner */
    bool need_seeds;   /* no usable table: connect the seeds to ask them */
    bool moved;        /* a MOVED changed the table since the last refresh logged it */
    bool refreshing, refresh_again;
    uint32_t refresh_seq, rr;
    uint64_t refresh_sent_ms, refresh_done_ms;
    uv_timer_t refresh;
} T;

bool mw__redis_topo_cluster(void)
{
    return T.cluster;
}

struct mw__redis_node *mw__redis_topo_nodes(void)
{
    return T.nodes;
}

struct mw__redis_node *mw__redis_topo_owner(int slot)
{
    return T.owner[T.cluster ? slot : 0];
}

uint32_t mw__redis_topo_covered(void)
{
    return T.covered;
}

uint32_t mw__redis_topo_masters(void)
{
    uint32_t k = 0;
    for (struct mw__redis_node *n = T.nodes; n; n = n->next)
        k += n->nslots > 0;
    return k;
}

bool mw__redis_topo_ready(void)
{
    if (!T.started || T.stopping || T.covered < MW_REDIS_SLOTS)
        return false;
    for (struct mw__redis_node *n = T.nodes; n; n = n->next)
        if (n->nslots && (!n->cmd.up || !n->sub.up || (T.cluster && !n->serving)))
            return false;
    return true;
}

static void changed(void)
{
    if (!T.stopping && T.hooks.changed)
        T.hooks.changed();
}

/* ---- nodes ---- */

struct mw__redis_node *mw__redis_topo_node(const char *host, int port)
{
    for (struct mw__redis_node *n = T.nodes; n; n = n->next)
        if (n->port == port && strcmp(n->host, host) == 0)
            return n;
    struct mw__redis_node *n = mw_calloc(1, sizeof *n);
    snprintf(n->host, sizeof n->host, "%s", host);
    n->port = port;
    snprintf(n->addr, sizeof n->addr, "%s:%d", host, port);
    mw__redis_link_init(&n->cmd, T.hooks.link_ops, n, n->host, port, n->addr, "command", false);
    mw__redis_link_init(&n->sub, T.hooks.link_ops, n, n->host, port, n->addr, "subscriber", true);
    n->next = T.nodes;
    T.nodes = n;
    return n;
}

static void set_owner(int slot, struct mw__redis_node *n)
{
    struct mw__redis_node *old = T.owner[slot];
    if (old == n)
        return;
    if (old)
        old->nslots--;
    else
        T.covered++;
    if (n)
        n->nslots++;
    else
        T.covered--;
    T.owner[slot] = n;
}

void mw__redis_topo_sync_links(void)
{
    uint64_t now = mw_now_ms();
    for (struct mw__redis_node *n = T.nodes; n; n = n->next) {
        bool asked = n->asked_ms && now - n->asked_ms < ASKED_KEEP_MS;
        mw__redis_link_want(&n->cmd, n->nslots || asked || (n->seed && T.need_seeds));
        mw__redis_link_want(&n->sub, n->nslots > 0);
    }
}

void mw__redis_topo_moved(int slot, struct mw__redis_node *to)
{
    T.moved |= T.owner[slot] != to;
    set_owner(slot, to);
    mw__redis_topo_refresh(0);
    mw__redis_topo_sync_links(); /* connects `to` when new */
}

void mw__redis_topo_asked(struct mw__redis_node *n)
{
    n->asked_ms = mw_now_ms();
    mw__redis_topo_sync_links();
}

void mw__redis_topo_link_up(struct mw__redis_node *n, bool subscriber)
{
    if (!subscriber && T.cluster) {
        mw__redis_topo_ask_state(n);
        mw__redis_topo_refresh(0); /* the first table, or a changed one after an outage */
    }
}

void mw__redis_topo_link_down(struct mw__redis_node *n, bool subscriber)
{
    if (!subscriber)
        n->serving = n->state_asked = false;
    if (T.cluster && !T.stopping)
        mw__redis_topo_refresh(0); /* a failover may have moved its slots */
}

/* ---- the slot table (Redis Cluster) ---- */

static void apply_table(const struct mw_redis_slot_table *t)
{
    if (t->covered == 0 && T.covered > 0) {
        /* A node that left the cluster (or was reset) knows no slots: ask another. */
        mw_log_warn("redis cluster topology refresh failed", "err=\"%s\"", "no slots");
        mw__redis_topo_refresh(REFRESH_SOON_MS);
        return;
    }
    struct mw__redis_node **by_index = mw_calloc(t->nmasters ? t->nmasters : 1, sizeof *by_index);
    bool table_changed = false;
    for (uint32_t i = 0; i < t->nmasters; i++)
        by_index[i] = mw__redis_topo_node(t->masters[i].ip, t->masters[i].port);
    for (int s = 0; s < MW_REDIS_SLOTS; s++) {
        struct mw__redis_node *n = t->owner[s] >= 0 ? by_index[t->owner[s]] : NULL;
        table_changed |= T.owner[s] != n;
        set_owner(s, n);
    }
    free(by_index);
    T.need_seeds = T.covered < MW_REDIS_SLOTS;
    mw__redis_topo_sync_links();
    if (T.hooks.table_applied)
        T.hooks.table_applied();
    mw_redis_stats.masters = mw__redis_topo_masters();
    if (table_changed || T.moved) { /* a MOVED may have told part of it first */
        T.moved = false;
        mw_redis_stats.topology_changes++;
        mw_log_info("redis cluster topology", "masters=%u covered_slots=%u",
                    mw_redis_stats.masters, T.covered);
    }
    if (T.covered < MW_REDIS_SLOTS)
        mw__redis_topo_refresh(REFRESH_SOON_MS);
    changed();
}

static void on_cluster_info(redisAsyncContext *ac, void *r, void *ud)
{
    struct mw__redis_node *n = ud;
    redisReply *reply = r;
    if (!reply || T.stopping || !ac->data || ac != n->cmd.ac)
        return; /* the link went away: link_down cleared state_asked */
    n->state_asked = false;
    bool ok = reply->type == REDIS_REPLY_STRING && strstr(reply->str, "cluster_state:ok");
    if (!ok) {
        if (!n->warned)
            mw_log_warn("redis cluster not serving", "addr=%s", n->addr);
        n->warned = true;
        mw__redis_topo_refresh(REFRESH_SOON_MS); /* look again soon */
    } else {
        n->warned = false;
    }
    if (ok != n->serving) {
        n->serving = ok;
        changed();
    }
}

void mw__redis_topo_ask_state(struct mw__redis_node *n)
{
    if (n->cmd.up && n->cmd.ac && !n->state_asked &&
        redisAsyncCommand(n->cmd.ac, on_cluster_info, n, "CLUSTER INFO") == REDIS_OK)
        n->state_asked = true;
}

/* Every master with an up link: whether it serves. Who did not, is asked again after
 * REFRESH_SOON_MS (on_cluster_info). */
static void ask_states(void)
{
    for (struct mw__redis_node *n = T.nodes; n; n = n->next)
        if (n->nslots)
            mw__redis_topo_ask_state(n);
}

struct refresh {
    uint32_t seq;
    struct mw__redis_node *asked;
};

static void on_slots(redisAsyncContext *ac, void *r, void *ud)
{
    (void)ac;
    struct refresh *q = ud;
    char err[256];
    if (T.stopping || q->seq != T.refresh_seq) { /* a later one was sent */
        free(q);
        return;
    }
    T.refreshing = false;
    T.refresh_done_ms = mw_now_ms();
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
    if (T.refresh_again) {
        T.refresh_again = false;
        mw__redis_topo_refresh(0);
    }
}

/* A node to ask CLUSTER SLOTS: the masters in turn, else any seed that is up. */
static struct mw__redis_node *refresh_source(void)
{
    uint32_t masters = 0, others = 0;
    for (struct mw__redis_node *n = T.nodes; n; n = n->next)
        if (n->cmd.up && n->cmd.ac) {
            masters += n->nslots > 0;
            others += n->nslots == 0;
        }
    bool any = masters == 0;
    uint32_t k = masters ? masters : others;
    if (!k)
        return NULL;
    k = T.rr++ % k;
    for (struct mw__redis_node *n = T.nodes; n; n = n->next)
        if (n->cmd.up && n->cmd.ac && (any || n->nslots > 0) && k-- == 0)
            return n;
    return NULL;
}

static void on_refresh_timer(uv_timer_t *t)
{
    (void)t;
    uint64_t now = mw_now_ms();
    if (T.refreshing && now - T.refresh_sent_ms < REFRESH_TIMEOUT_MS) {
        T.refresh_again = true;
        return;
    }
    T.refreshing = false;
    T.refresh_done_ms = now;
    struct mw__redis_node *n = refresh_source();
    if (!n) { /* nothing is up: the seeds, once one is, ask again (link_up) */
        if (!T.need_seeds) {
            T.need_seeds = true;
            mw__redis_topo_sync_links();
        }
        return;
    }
    struct refresh *q = mw_malloc(sizeof *q);
    q->seq = ++T.refresh_seq;
    q->asked = n;
    if (redisAsyncCommand(n->cmd.ac, on_slots, q, "CLUSTER SLOTS") != REDIS_OK) {
        free(q);
        return;
    }
    T.refreshing = true;
    T.refresh_sent_ms = now;
    ask_states();
}

/* Not sooner than REFRESH_GAP_MS after the last refresh, so that a burst of MOVED
 * replies or failures asks once; then every REFRESH_MS. */
void mw__redis_topo_refresh(uint64_t delay_ms)
{
    if (!T.cluster || T.stopping)
        return;
    uint64_t now = mw_now_ms(), at = T.refresh_done_ms + REFRESH_GAP_MS;
    if (at > now + delay_ms)
        delay_ms = at - now;
    if (uv_is_active((uv_handle_t *)&T.refresh) && uv_timer_get_due_in(&T.refresh) <= delay_ms)
        return;
    uv_timer_start(&T.refresh, on_refresh_timer, delay_ms, REFRESH_MS);
}

/* ---- start and stop ---- */

void mw__redis_topo_start(bool cluster, const struct mw__redis_topo_hooks *h)
{
    memset(&T, 0, sizeof T);
    T.cluster = cluster;
    T.started = true;
    T.hooks = *h;
    if (cluster) {
        T.need_seeds = true;
        uv_timer_init(uv_default_loop(), &T.refresh);
        mw__redis_topo_refresh(REFRESH_MS); /* the periodic one; a seed up asks at once */
    }
}

void mw__redis_topo_single(const char *host, int port)
{
    struct mw__redis_node *n = mw__redis_topo_node(host, port);
    n->seed = true;
    for (int s = 0; s < MW_REDIS_SLOTS; s++)
        set_owner(s, n);
    mw__redis_topo_sync_links();
}

void mw__redis_topo_seed(const char *host, int port)
{
    mw__redis_topo_node(host, port)->seed = true;
}

void mw__redis_topo_node_released(struct mw__redis_node *n)
{
    if (++n->released == 2)
        free(n);
}

void mw__redis_topo_stop(void)
{
    if (!T.started)
        return;
    T.stopping = true;
    if (T.cluster)
        uv_close((uv_handle_t *)&T.refresh, NULL);
    struct mw__redis_node *n = T.nodes, *next;
    T.nodes = NULL;
    memset(T.owner, 0, sizeof T.owner);
    T.covered = 0;
    for (; n; n = next) {
        next = n->next;
        mw__redis_link_stop(&n->cmd);
        mw__redis_link_stop(&n->sub);
    }
    T.started = false;
}
