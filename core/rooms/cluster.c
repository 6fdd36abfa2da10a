/* cluster.c - the node registry (cluster.h).
 *
 * Every tick each node runs one script that refreshes its key (TTL 3 ticks), adds it
 * to the node set, creates the registry generation if Redis has none, and returns
 * the generation with every registered node and whether its key exists. A node whose
 * key is gone is dead: the first node to take its cleaner lock removes its presence
 * (presence.c), then releases the lock and takes it out of the set.
 *
 * Outages must not kill live nodes. While Redis was away every node's key may have
 * expired, and the nodes come back one by one (their reconnect backoff is capped at
 * half a tick): a node judges nobody until it has been up for a full registry period
 * (3 ticks) since its last reconnect. A node that was judged dead anyway (it stayed
 * away longer) finds a "cleaned" mark when it registers again and restores its
 * presence, which tells everybody its users are back.
 *
 * Redis may also come back empty. The generation then changes: every node puts the
 * nodes it knew back into the set, so that one that died meanwhile is still judged.
 *
 * After every outage, once every live node had time to write its presence again (a
 * registry period), each node compares what its members were told with Redis
 * (presence.c's reconcile) and tells them the difference: presence events published
 * while it could not hear them, and the users of a node that died while Redis had
 * nothing (it restarted empty). */
#include "rooms/cluster.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "base/log.h"
#include "base/map.h"
#include "rooms/presence.h"
#include "rooms/presence_backend.h"
#include "redis/redis.h"
#include "base/context.h"
#include "base/util.h"

#define TTL_TICKS 3
#define LOCK_TICKS 6        /* a cleaner that died mid-way is replaced after this */
#define CLEANED_MARK_MS 600000

/* KEYS nodes, node:<self>, gen; ARGV self, now, ttl_ms, new_gen, prefix, mark_ms ->
 * {gen, cleaned (0/1), id, alive, id, alive...} */
static const char REGISTER_LUA[] =
    "redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])\n"
    "redis.call('SADD', KEYS[1], ARGV[1])\n"
    "local gen = redis.call('GET', KEYS[3])\n"
    "if not gen then redis.call('SET', KEYS[3], ARGV[4]); gen = ARGV[4] end\n"
    "local mark = ARGV[5] .. ':cleaned:' .. ARGV[1]\n"
    "local out = {gen, redis.call('DEL', mark)}\n"
    "for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  out[#out + 1] = id\n"
    "  out[#out + 1] = redis.call('EXISTS', ARGV[5] .. ':node:' .. id)\n"
    "end\n"
    "return out\n";

/* KEYS clean:<id>, nodes, cleaned:<id>; ARGV self, id, mark_ms: after a cleanup. */
static const char CLEANED_LUA[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end\n"
    "redis.call('SREM', KEYS[2], ARGV[2])\n"
    "redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])\n"
    "return 1\n";

/* KEYS clean:<id>; ARGV self: a cleanup that failed gives its lock back. */
static const char UNLOCK_LUA[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
    "return 0\n";

struct known {
    char *id;
    bool seen;     /* in the set at the last registration */
    bool cleaning; /* we hold its lock and clean it up */
};

struct mw_cluster_stats mw_cluster_stats;

static struct {
    bool active;
    char reg[8];      /* "mw" or "{mw}" */
    uv_timer_t tick;
    uint64_t tick_ms, ttl_ms;
    uint64_t up_since;     /* monotonic ms of the last `redis up`; 0 while down */
    uint64_t reconcile_at; /* compare views with Redis then (0: no) */
    bool registering;      /* a registration is in flight */
    char gen[24];          /* the registry generation last seen ("" before) */
    struct mw_map known;   /* node id -> struct known, other nodes */
} G;

uint64_t mw_cluster_tick_ms(const struct mw_config *cfg)
{
    uint64_t t = cfg->heartbeat_interval_ms / 2;
    return t < 250 ? 250 : t > 5000 ? 5000 : t;
}

static void key(char *out, size_t n, const char *kind, const char *id)
{
    if (id)
        snprintf(out, n, "%s:%s:%s", G.reg, kind, id);
    else
        snprintf(out, n, "%s:%s", G.reg, kind);
}

/* 0, or -1 when it could not be sent (no callback then). */
static int eval(mw_redis_cb cb, void *ud, const char *script, int nkeys, const char **keys,
                int nargs, const char **args)
{
    const char *argv[16];
    char nk[4];
    int argc = 0;
    snprintf(nk, sizeof nk, "%d", nkeys);
    argv[argc++] = "EVAL";
    argv[argc++] = script;
    argv[argc++] = nk;
    for (int i = 0; i < nkeys; i++)
        argv[argc++] = keys[i];
    for (int i = 0; i < nargs; i++)
        argv[argc++] = args[i];
    return mw_redis_command(cb, ud, argc, argv, NULL);
}

static struct known *known_get(const char *id)
{
    struct known *k = mw_map_get(&G.known, id);
    if (!k) {
        k = mw_calloc(1, sizeof *k);
        k->id = mw_strdup(id);
        mw_map_put(&G.known, k->id, k);
    }
    return k;
}

static void known_forget(const char *id)
{
    struct known *k = mw_map_del(&G.known, id);
    if (k) {
        free(k->id);
        free(k);
    }
}

/* ---- cleaning a dead node up ---- */

static void on_cleaned(void *ud, bool ok)
{
    char *id = ud;
    char lock[200], nodes[64], mark[200], ms[24];
    struct known *k = mw_map_get(&G.known, id);
    if (k)
        k->cleaning = false;
    key(lock, sizeof lock, "clean", id);
    if (!G.active) {
        free(id);
        return;
    }
    if (ok) {
        key(nodes, sizeof nodes, "nodes", NULL);
        key(mark, sizeof mark, "cleaned", id);
        snprintf(ms, sizeof ms, "%d", CLEANED_MARK_MS);
        const char *keys[] = { lock, nodes, mark }, *args[] = { mw_srv.node_id, id, ms };
        eval(NULL, NULL, CLEANED_LUA, 3, keys, 3, args);
        mw_cluster_stats.dead_nodes_cleaned++;
        mw_log_info("cleaned up a dead node", "node=%s", id);
        known_forget(id);
    } else {
        const char *keys[] = { lock }, *args[] = { mw_srv.node_id };
        eval(NULL, NULL, UNLOCK_LUA, 1, keys, 1, args);
        mw_log_warn("dead node cleanup failed", "node=%s", id);
    }
    free(id);
}

/* The lock makes one cleaner per dead node, whichever node sees it first. */
static void on_lock(void *ud, redisReply *r)
{
    char *id = ud;
    struct known *k = G.active ? mw_map_get(&G.known, id) : NULL;
    if (k && r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0) {
        mw_log_warn("node is gone: removing its presence", "node=%s", id);
        k->cleaning = true;
        mw_presence_node_gone(id, on_cleaned, id);
        return;
    }
    free(id);
}

static void judge(struct known *k)
{
    char lock[200], ttl[24];
    if (k->cleaning)
        return;
    key(lock, sizeof lock, "clean", k->id);
    snprintf(ttl, sizeof ttl, "%" PRIu64, G.tick_ms * LOCK_TICKS);
    const char *argv[] = { "SET", lock, mw_srv.node_id, "NX", "PX", ttl };
    char *id = mw_strdup(k->id);
    if (mw_redis_command(on_lock, id, 6, argv, NULL) < 0)
        free(id);
}

/* ---- registering ---- */

/* Redis lost the registry (restarted empty, or failed over to a replica that had not
 * got it): put back every node we knew, so that one that died meanwhile is judged. */
static void rebuild(void)
{
    char nodes[64];
    key(nodes, sizeof nodes, "nodes", NULL);
    mw_cluster_stats.registry_rebuilds++;
    mw_log_warn("redis lost the node registry: rebuilding it", "known_nodes=%u", G.known.len);
    for (uint32_t i = 0; i < G.known.cap; i++) {
        struct known *k = G.known.slots[i].val;
        if (!G.known.slots[i].key)
            continue;
        const char *argv[] = { "SADD", nodes, k->id };
        mw_redis_command(NULL, NULL, 3, argv, NULL);
    }
    /* Once every live node wrote its presence again: tell our members who is gone. */
    G.reconcile_at = mw_now_ms() + G.ttl_ms;
}

static void on_registered(void *ud, redisReply *r)
{
    (void)ud;
    G.registering = false;
    if (!G.active || !r || r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_INTEGER) {
        if (r && r->type == REDIS_REPLY_ERROR)
            mw_log_error("node registry script failed", "err=\"%s\"", r->str);
        return;
    }
    const char *gen = r->element[0]->str;
    bool lost = G.gen[0] && strcmp(gen, G.gen) != 0;
    snprintf(G.gen, sizeof G.gen, "%s", gen);
    if (r->element[1]->integer) { /* another node took us for dead: we are back */
        mw_log_warn("this node was taken for dead: restoring its presence", "node=%s",
                    mw_srv.node_id);
        mw_presence_resync();
    }
    for (uint32_t i = 0; i < G.known.cap; i++)
        if (G.known.slots[i].key)
            ((struct known *)G.known.slots[i].val)->seen = false;
    bool judging = mw_now_ms() - G.up_since >= G.ttl_ms;
    for (size_t i = 2; i + 1 < r->elements; i += 2) {
        const redisReply *id = r->element[i], *alive = r->element[i + 1];
        if (id->type != REDIS_REPLY_STRING || alive->type != REDIS_REPLY_INTEGER ||
            strcmp(id->str, mw_srv.node_id) == 0)
            continue;
        struct known *k = known_get(id->str);
        k->seen = true;
        if (!alive->integer && judging)
            judge(k);
    }
    if (lost) {
        rebuild();
        return;
    }
    /* Out of the set without a lost registry: cleaned up (by us or another node). */
    char **gone = mw_malloc((G.known.len + 1) * sizeof *gone);
    uint32_t n = 0;
    for (uint32_t i = 0; i < G.known.cap; i++) {
        struct known *k = G.known.slots[i].val;
        if (G.known.slots[i].key && !k->seen && !k->cleaning)
            gone[n++] = k->id;
    }
    for (uint32_t i = 0; i < n; i++)
        known_forget(gone[i]);
    free(gone);
}

static void register_self(void)
{
    char nodes[64], self[200], gen_key[64], now[24], ttl[24], gen[24], ms[24];
    if (G.registering)
        return; /* the last one is still in flight: Redis is slow, not worth piling up */
    key(nodes, sizeof nodes, "nodes", NULL);
    key(self, sizeof self, "node", mw_srv.node_id);
    key(gen_key, sizeof gen_key, "gen", NULL);
    snprintf(now, sizeof now, "%" PRIu64, mw_wall_ms());
    snprintf(ttl, sizeof ttl, "%" PRIu64, G.ttl_ms);
    snprintf(gen, sizeof gen, "%016" PRIx64, mw_random_u64());
    snprintf(ms, sizeof ms, "%d", CLEANED_MARK_MS);
    const char *keys[] = { nodes, self, gen_key };
    const char *args[] = { mw_srv.node_id, now, ttl, gen, G.reg, ms };
    G.registering = eval(on_registered, NULL, REGISTER_LUA, 3, keys, 6, args) == 0;
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
    if (!G.up_since || !mw_redis_up())
        return;
    register_self();
    if (G.reconcile_at && mw_now_ms() >= G.reconcile_at) {
        G.reconcile_at = 0;
        mw_presence_reconcile();
    }
}

void mw_cluster_on_state(bool up)
{
    if (!G.active)
        return;
    if (!up) {
        G.up_since = 0;
        return;
    }
    bool again = G.gen[0] != '\0'; /* registered before: back after an outage */
    G.up_since = mw_now_ms();
    register_self();
    /* Redis may have lost everything (a restart) or kept old counts, and our members
     * came and went meanwhile: rewrite ours in every room we ever had members in. */
    mw_presence_resync();
    /* Presence events published while we could not hear them are lost for our
     * members: once every node had time to write its presence again, tell them the
     * difference. */
    if (again)
        G.reconcile_at = G.up_since + G.ttl_ms;
}

void mw_cluster_start(const struct mw_config *cfg)
{
    memset(&G, 0, sizeof G);
    G.active = true;
    snprintf(G.reg, sizeof G.reg, "%s", mw_redis_is_cluster() ? "{mw}" : "mw");
    mw_presence_redis_start(G.reg);
    G.tick_ms = mw_cluster_tick_ms(cfg);
    G.ttl_ms = G.tick_ms * TTL_TICKS;
    uv_timer_init(uv_default_loop(), &G.tick);
    uv_timer_start(&G.tick, on_tick, G.tick_ms, G.tick_ms);
}

void mw_cluster_stop(void)
{
    if (!G.active)
        return;
    G.active = false;
    uv_close((uv_handle_t *)&G.tick, NULL);
    for (uint32_t i = 0; i < G.known.cap; i++)
        if (G.known.slots[i].key) {
            struct known *k = G.known.slots[i].val;
            free(k->id);
            free(k);
        }
    mw_map_free(&G.known);
    mw_presence_redis_stop();
}
