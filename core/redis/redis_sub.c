/* redis_sub.c - channels kept subscribed (redis_sub.h). */
#include "redis/redis_sub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "base/log.h"
#include "base/map.h"
#include "redis/redis.h"
#include "redis/redis_cluster.h"
#include "redis/redis_topo.h"
#include "base/util.h"

#define SUBSCRIBE_BATCH 100
#define MAX_WAITERS 100000

/* A caller waiting for a channel's confirmation (mw__redis_sub_when_heard). */
struct waiter {
    struct waiter *next;
    void (*cb)(void *ud, bool ok);
    void *ud;
};

/* A channel kept subscribed. `on` is the node it was subscribed on (sent on its up
 * subscriber link), NULL while that is still to do. */
struct chan {
    char *name;
    int slot;
    struct mw__redis_node *on;
    bool confirmed; /* Redis answered the subscribe there */
    bool gating;    /* resubscribed after a link came up: readiness waits for it */
    struct waiter *waiters, **waiters_tail;
};

static struct {
    void (*on_message)(const char *channel, const char *payload, size_t len);
    struct mw_map channels; /* name -> struct chan */
    uint32_t unplaced;      /* channels with on == NULL */
    uint32_t regating;      /* channels gating and placed, not yet confirmed */
    uint32_t nwaiters;
    bool started;
} S;

bool mw__redis_sub_ready(void)
{
    return S.unplaced == 0 && S.regating == 0;
}

uint32_t mw__redis_sub_count(void)
{
    return S.channels.len;
}

static void changed(void)
{
    mw_redis_stats.channels = S.channels.len;
}

/* c is no longer subscribed where it was: to do again. */
static void unplace(struct chan *c)
{
    if (c->gating && !c->confirmed)
        S.regating--;
    S.unplaced++;
    c->on = NULL;
    c->gating = c->confirmed = false;
}

/* Calls the waiters of list w (taken off their channels first: a callback may
 * subscribe or unsubscribe) in order with ok, and frees them. */
static void run_waiters(struct waiter *w, bool ok)
{
    while (w) {
        struct waiter *next = w->next;
        S.nwaiters--;
        w->cb(w->ud, ok);
        free(w);
        w = next;
    }
}

/* Takes c's waiters off it: the list, to run. */
static struct waiter *take_waiters(struct chan *c)
{
    struct waiter *w = c->waiters;
    c->waiters = NULL;
    c->waiters_tail = &c->waiters;
    return w;
}

static void wake(struct chan *c, bool ok)
{
    run_waiters(take_waiters(c), ok);
}

static void confirm(struct chan *c)
{
    if (c->confirmed)
        return;
    c->confirmed = true;
    if (c->gating) {
        c->gating = false;
        S.regating--;
    }
}

int mw__redis_sub_when_heard(const char *channel, void (*cb)(void *ud, bool ok), void *ud)
{
    struct chan *c = S.started ? mw_map_get(&S.channels, channel) : NULL;
    if (!c)
        return -1;
    if (c->confirmed)
        return 0;
    /* Its subscribe is on its way, or will be as soon as the table says where. */
    struct mw__redis_node *o = c->on ? c->on : mw__redis_topo_owner(c->slot);
    if (!o || !o->sub.up || S.nwaiters >= MAX_WAITERS)
        return -1;
    struct waiter *w = mw_malloc(sizeof *w);
    w->next = NULL;
    w->cb = cb;
    w->ud = ud;
    *c->waiters_tail = w;
    c->waiters_tail = &w->next;
    S.nwaiters++;
    return 1;
}

static int by_slot(const void *a, const void *b)
{
    const struct chan *x = *(struct chan *const *)a, *y = *(struct chan *const *)b;
    return x->slot - y->slot;
}

/* Appends one (S)SUBSCRIBE of n channels to node's stream and marks them placed;
 * gating ones keep the client from being ready until confirmed. */
static void send_subscribe(struct mw__redis_node *node, struct chan **chans, size_t n, bool gate)
{
    const char **argv = mw_malloc((n + 1) * sizeof *argv);
    argv[0] = mw__redis_topo_cluster() ? "SSUBSCRIBE" : "SUBSCRIBE";
    for (size_t i = 0; i < n; i++) {
        struct chan *c = chans[i];
        argv[i + 1] = c->name;
        c->on = node;
        c->confirmed = false;
        c->gating = gate;
        S.regating += gate;
    }
    mw__redis_link_append(&node->sub, (int)n + 1, argv, NULL);
    S.unplaced -= (uint32_t)n;
    free(argv);
}

/* Subscribes every channel still to do whose master's subscriber link is up, all
 * pipelined. gate: after a subscriber link came up (not when a slot moved: the
 * client stays ready meanwhile, as when a new channel is added). */
static void place_unplaced(bool gate)
{
    if (!S.unplaced)
        return;
    bool cluster = mw__redis_topo_cluster();
    struct chan **todo = mw_malloc(S.unplaced * sizeof *todo);
    size_t n = 0;
    for (uint32_t i = 0; i < S.channels.cap && n < S.unplaced; i++) {
        struct chan *c = S.channels.slots[i].val;
        if (!S.channels.slots[i].key || c->on)
            continue;
        struct mw__redis_node *o = mw__redis_topo_owner(c->slot);
        if (o && o->sub.up)
            todo[n++] = c;
    }
    if (cluster)
        qsort(todo, n, sizeof *todo, by_slot);
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && j - i < SUBSCRIBE_BATCH; j++)
            if (cluster && todo[j]->slot != todo[i]->slot)
                break;
        send_subscribe(mw__redis_topo_owner(todo[i]->slot), todo + i, j - i, gate);
    }
    free(todo);
    for (struct mw__redis_node *o = mw__redis_topo_nodes(); o; o = o->next)
        mw__redis_link_flush(&o->sub);
}

/* Every channel subscribed on n, or on n in `slot` (>= 0), is to do again. */
static void unplace_node(struct mw__redis_node *n, int slot)
{
    for (uint32_t i = 0; i < S.channels.cap; i++) {
        struct chan *c = S.channels.slots[i].val;
        if (S.channels.slots[i].key && c->on == n && (slot < 0 || c->slot == slot))
            unplace(c);
    }
}

/* n's subscriber link is gone: who waits to hear one of its channels gets false
 * (collected first: a waiter's callback may change the channel set). */
static void fail_waiters(struct mw__redis_node *n)
{
    if (!S.nwaiters)
        return;
    struct waiter *all = NULL, **tail = &all;
    for (uint32_t i = 0; i < S.channels.cap; i++) {
        struct chan *c = S.channels.slots[i].val;
        if (!S.channels.slots[i].key || !c->waiters || mw__redis_topo_owner(c->slot) != n)
            continue;
        struct waiter **last = c->waiters_tail;
        *tail = take_waiters(c);
        tail = last;
    }
    run_waiters(all, false);
}

void mw__redis_sub_link_up(struct mw__redis_node *n)
{
    (void)n;
    place_unplaced(true); /* queued before anything published after `up` */
}

void mw__redis_sub_link_down(struct mw__redis_node *n)
{
    unplace_node(n, -1);
    fail_waiters(n);
}

/* After the table changed: every channel whose slot has a new master leaves the old
 * one (if it can still hear us) and is subscribed on the new one. */
void mw__redis_sub_table_applied(void)
{
    for (uint32_t i = 0; i < S.channels.cap; i++) {
        struct chan *c = S.channels.slots[i].val;
        if (!S.channels.slots[i].key || !c->on || c->on == mw__redis_topo_owner(c->slot))
            continue;
        if (c->on->sub.up) {
            const char *argv[] = { "SUNSUBSCRIBE", c->name };
            mw__redis_link_append(&c->on->sub, 2, argv, NULL);
        }
        unplace(c);
    }
    place_unplaced(false); /* flushes the SUNSUBSCRIBEs too */
}

/* ---- replies on subscriber links ---- */

/* Redis unsubscribed a channel we did not give up: with sharded pub/sub, its slot
 * moved to another master. Subscribe it again where the table says; a stale table
 * gets a MOVED, which sub_error follows. */
static void on_kicked(struct mw__redis_node *n, const char *channel)
{
    struct chan *c = mw_map_get(&S.channels, channel);
    if (!c || c->on != n || !c->confirmed)
        return; /* the answer to our own SUNSUBSCRIBE */
    unplace(c);
    mw_log_debug("redis channel moved", "channel=%s addr=%s", channel, n->addr);
    mw__redis_topo_refresh(0);
    place_unplaced(false);
}

/* An error on a subscriber link: a MOVED for a slot whose channels we sent to a node
 * that no longer serves it, or something that a fresh connection may cure. */
static void sub_error(struct mw__redis_node *from, redisReply *r)
{
    struct mw_redis_addr to;
    int slot;
    if (mw__redis_topo_cluster() &&
        mw_redis_cluster_parse_redirect(r->str, (size_t)r->len, &slot, &to) == MW_REDIS_MOVED) {
        struct mw__redis_node *n = mw__redis_topo_node(to.ip[0] ? to.ip : from->host, to.port);
        mw_redis_stats.moved++;
        mw_log_debug("redis moved", "slot=%d addr=%s link=subscriber", slot, n->addr);
        mw__redis_topo_moved(slot, n);
        unplace_node(from, slot);
        place_unplaced(false);
        return;
    }
    mw_log_error("redis subscribe failed", "addr=%s err=\"%s\"", from->addr, r->str);
    mw__redis_link_fail(&from->sub, "subscribe failed");
}

void mw__redis_sub_push(struct mw__redis_node *n, redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR) {
        sub_error(n, r);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = r->element[0]->str, *channel = r->element[1]->str;
    if (r->elements >= 3 && (strcmp(kind, "message") == 0 || strcmp(kind, "smessage") == 0)) {
        redisReply *payload = r->element[2];
        if (payload->type != REDIS_REPLY_STRING)
            return;
        mw_redis_stats.received++;
        if (S.on_message)
            S.on_message(channel, payload->str, (size_t)payload->len);
    } else if (strcmp(kind, "subscribe") == 0 || strcmp(kind, "ssubscribe") == 0) {
        struct chan *c = mw_map_get(&S.channels, channel);
        if (c && c->on == n) {
            confirm(c);
            if (c->waiters)
                wake(c, true);
        }
    } else if (strcmp(kind, "sunsubscribe") == 0) {
        on_kicked(n, channel);
    }
}

/* ---- the channel set ---- */

void mw__redis_sub_subscribe(const char *channel)
{
    if (!S.started || mw_map_get(&S.channels, channel))
        return;
    struct chan *c = mw_calloc(1, sizeof *c);
    c->name = mw_strdup(channel);
    c->slot = mw__redis_topo_cluster() ? mw_redis_cluster_key_slot(channel, strlen(channel)) : 0;
    c->waiters_tail = &c->waiters;
    mw_map_put(&S.channels, c->name, c);
    changed();
    S.unplaced++;
    struct mw__redis_node *o = mw__redis_topo_owner(c->slot);
    if (o && o->sub.up) {
        send_subscribe(o, &c, 1, false);
        mw__redis_link_flush(&o->sub);
    }
}

static void chan_free(struct chan *c)
{
    wake(c, false);
    free(c->name);
    free(c);
}

void mw__redis_sub_unsubscribe(const char *channel)
{
    struct chan *c = S.started ? mw_map_del(&S.channels, channel) : NULL;
    if (!c)
        return;
    changed();
    if (!c->on) {
        S.unplaced--;
    } else {
        if (c->gating && !c->confirmed)
            S.regating--;
        if (c->on->sub.up) {
            const char *argv[] = { mw__redis_topo_cluster() ? "SUNSUBSCRIBE" : "UNSUBSCRIBE",
                                   channel };
            mw__redis_link_append(&c->on->sub, 2, argv, NULL);
            mw__redis_link_flush(&c->on->sub);
        }
    }
    chan_free(c);
}

void mw__redis_sub_start(void (*on_message)(const char *channel, const char *payload, size_t len))
{
    memset(&S, 0, sizeof S);
    S.on_message = on_message;
    S.started = true;
}

void mw__redis_sub_stop(void)
{
    S.started = false; /* waiters called below cannot change the set */
    for (uint32_t i = 0; i < S.channels.cap; i++)
        if (S.channels.slots[i].key)
            chan_free(S.channels.slots[i].val);
    mw_map_free(&S.channels);
    memset(&S, 0, sizeof S);
}
