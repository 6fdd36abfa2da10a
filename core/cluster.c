/* cluster.c - presence across nodes and the node registry, over Redis.
 *
 * One Lua script, REPLACE, keeps a room's cluster-wide presence consistent: it takes
 * out one node's contribution and puts in a new one (possibly none), and returns the
 * users that are gone everywhere. It serves a dead node's cleanup, a restarted node's
 * stale entries and the resync after a reconnect. JOIN and LEAVE adjust one user. */
#include "cluster.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "buf.h"
#include "conn.h"
#include "log.h"
#include "presence.h"
#include "redis.h"
#include "room.h"
#include "server.h"
#include "util.h"

/* KEYS pu pc pm; ARGV user, "<node>|<user>", meta ("" keeps it) -> {total, users} */
static const char JOIN_LUA[] =
    "redis.call('HINCRBY', KEYS[2], ARGV[2], 1)\n"
    "if ARGV[3] ~= '' then redis.call('HSET', KEYS[3], ARGV[1], ARGV[3]) end\n"
    "local t = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)\n"
    "return {t, redis.call('HLEN', KEYS[1])}\n";

/* KEYS pu pc pm; ARGV user, "<node>|<user>" -> {total, users} */
static const char LEAVE_LUA[] =
    "local c = redis.call('HINCRBY', KEYS[2], ARGV[2], -1)\n"
    "if c <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end\n"
    "local t = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)\n"
    "if t <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]); redis.call('HDEL', KEYS[3], ARGV[1]) end\n"
    "return {t, redis.call('HLEN', KEYS[1])}\n";

/* KEYS pu pc pm; ARGV "<node>|", then (user, conns, meta)... -> {users, gone...} */
static const char REPLACE_LUA[] =
    "local p, gone = ARGV[1], {}\n"
    "local all = redis.call('HGETALL', KEYS[2])\n"
    "for i = 1, #all, 2 do\n"
    "  local f = all[i]\n"
    "  if string.sub(f, 1, #p) == p then\n"
    "    local u = string.sub(f, #p + 1)\n"
    "    redis.call('HDEL', KEYS[2], f)\n"
    "    if redis.call('HINCRBY', KEYS[1], u, -tonumber(all[i + 1])) <= 0 then\n"
    "      redis.call('HDEL', KEYS[1], u); gone[#gone + 1] = u\n"
    "    end\n"
    "  end\n"
    "end\n"
    "for i = 2, #ARGV, 3 do\n"
    "  local u, c = ARGV[i], tonumber(ARGV[i + 1])\n"
    "  redis.call('HSET', KEYS[2], p .. u, c)\n"
    "  redis.call('HINCRBY', KEYS[1], u, c)\n"
    "  if ARGV[i + 2] ~= '' then redis.call('HSET', KEYS[3], u, ARGV[i + 2]) end\n"
    "end\n"
    "local out = {redis.call('HLEN', KEYS[1])}\n"
    "for _, u in ipairs(gone) do\n"
    "  if not redis.call('HGET', KEYS[1], u) then redis.call('HDEL', KEYS[3], u); out[#out + 1] = u end\n"
    "end\n"
    "return out\n";

struct mw_cluster_stats mw_cluster_stats;

static bool active, registered;
static const struct mw_config *config;
/* The registry's key prefix. With a Redis Cluster it is "{mw}": every registry key
 * (mw:nodes, mw:node:<id>, mw:nr:<node>, mw:clean:<id>) in one slot, so that a master
 * restarting empty loses all of them or none; split over masters, a lost
 * mw:node:<id> next to a kept mw:nodes looked like a dead node to the others. */
static const char *reg = "mw";
static char nodes_key[16] = "mw:nodes";

/* The registry key `kind` of `id`: "mw:node:<id>", "{mw}:nr:<id>"... */
static void reg_key(char *out, size_t n, const char *kind, const char *id)
{
    snprintf(out, n, "%s:%s:%s", reg, kind, id);
}

static uv_timer_t tick;
static uint64_t tick_ms;

bool mw_cluster_active(void)
{
    return active;
}

static void keys_for(const char *room, char pu[160], char pc[160], char pm[160])
{
    snprintf(pu, 160, "mw:pu:{%s}", room);
    snprintf(pc, 160, "mw:pc:{%s}", room);
    snprintf(pm, 160, "mw:pm:{%s}", room);
}

/* Runs a script with KEYS pu pc pm of `room` and the given ARGV. */
static int eval3(const char *script, const char *room, int nargs, const char **args,
                 const size_t *arglens, mw_redis_cb cb, void *ud)
{
    char pu[160], pc[160], pm[160];
    keys_for(room, pu, pc, pm);
    int argc = 6 + nargs;
    const char **argv = mw_malloc((size_t)argc * sizeof *argv);
    size_t *lens = mw_malloc((size_t)argc * sizeof *lens);
    argv[0] = "EVAL";
    argv[1] = script;
    argv[2] = "3";
    argv[3] = pu;
    argv[4] = pc;
    argv[5] = pm;
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    for (int i = 0; i < nargs; i++) {
        argv[6 + i] = args[i];
        lens[6 + i] = arglens ? arglens[i] : strlen(args[i]);
    }
    int rc = mw_redis_command(cb, ud, argc, argv, lens);
    free(argv);
    free(lens);
    return rc;
}

static void simple(const char *a0, const char *a1, const char *a2)
{
    const char *argv[] = { a0, a1, a2 };
    mw_redis_command(NULL, NULL, a2 ? 3 : 2, argv, NULL);
}

/* ---- join / leave ---- */

struct change {
    char *room, *user, *meta;
    char except[24];
    const struct mw_route_config *rc;
};

static void change_free(struct change *ch)
{
    free(ch->room);
    free(ch->user);
    free(ch->meta);
    free(ch);
}

static bool reply_pair(redisReply *r, long long *total, long long *users)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_INTEGER) {
        if (r && r->type == REDIS_REPLY_ERROR)
            mw_log_error("cluster presence script failed", "err=\"%s\"", r->str);
        return false;
    }
    *total = r->element[0]->integer;
    *users = r->element[1]->integer;
    return true;
}

static void on_joined(void *ud, redisReply *r)
{
    struct change *ch = ud;
    long long total, users;
    if (reply_pair(r, &total, &users) && total == 1)
        mw__presence_emit_join(ch->room, ch->user, ch->meta, 1, ch->except, (uint32_t)users, ch->rc);
    change_free(ch);
}

static void on_left(void *ud, redisReply *r)
{
    struct change *ch = ud;
    long long total, users;
    if (reply_pair(r, &total, &users) && total <= 0)
        mw__presence_emit_leave(ch->room, ch->user, (uint32_t)users + 1, ch->rc);
    change_free(ch);
}

static struct change *change_new(const char *room, const char *user, const char *meta,
                                 const char *except, const struct mw_route_config *rc)
{
    struct change *ch = mw_calloc(1, sizeof *ch);
    ch->room = mw_strdup(room);
    ch->user = mw_strdup(user);
    ch->meta = meta ? mw_strdup(meta) : NULL;
    snprintf(ch->except, sizeof ch->except, "%s", except ? except : "");
    ch->rc = rc;
    return ch;
}

int mw_cluster_join(const char *room, const char *user, const char *meta,
                    const char *except_conn, const struct mw_route_config *rc)
{
    char field[320], nr[120];
    snprintf(field, sizeof field, "%s|%s", mw_srv.node_id, user);
    const char *args[] = { user, field, meta ? meta : "" };
    struct change *ch = change_new(room, user, meta, except_conn, rc);
    if (eval3(JOIN_LUA, room, 3, args, NULL, on_joined, ch) < 0) {
        change_free(ch);
        return -1; /* Redis down: the resync after the reconnect writes it */
    }
    reg_key(nr, sizeof nr, "nr", mw_srv.node_id);
    simple("SADD", nr, room);
    return 0;
}

int mw_cluster_leave(const char *room, const char *user, const struct mw_route_config *rc)
{
    char field[320];
    snprintf(field, sizeof field, "%s|%s", mw_srv.node_id, user);
    const char *args[] = { user, field };
    struct change *ch = change_new(room, user, NULL, NULL, rc);
    if (eval3(LEAVE_LUA, room, 2, args, NULL, on_left, ch) < 0) {
        change_free(ch);
        return -1;
    }
    return 0;
}

/* ---- members ---- */

struct members {
    mw_cluster_members_cb cb;
    void *ud;
    uint32_t limit;
    redisReply *totals; /* kept from the first reply (hiredis frees after the callback) */
    char **users;
    long long *conns;
    size_t n;
    bool failed;
};

static void on_totals(void *ud, redisReply *r)
{
    struct members *q = ud;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        q->failed = true;
        return;
    }
    q->n = r->elements / 2;
    q->users = mw_calloc(q->n ? q->n : 1, sizeof *q->users);
    q->conns = mw_calloc(q->n ? q->n : 1, sizeof *q->conns);
    for (size_t i = 0; i < q->n; i++) {
        q->users[i] = mw_strndup(r->element[2 * i]->str, (size_t)r->element[2 * i]->len);
        q->conns[i] = strtoll(r->element[2 * i + 1]->str, NULL, 10);
    }
}

static const char *meta_of(redisReply *r, const char *user)
{
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (strcmp(r->element[i]->str, user) == 0)
            return r->element[i + 1]->str;
    return NULL;
}

static void on_metas(void *ud, redisReply *r)
{
    struct members *q = ud;
    if (q->failed || !r) {
        q->cb(q->ud, NULL, 0);
    } else {
        struct mw_buf b = { 0 };
        mw_buf_putc(&b, '[');
        for (size_t i = 0; i < q->n && i < q->limit; i++) {
            struct mw_presence p = { q->users[i], (char *)meta_of(r, q->users[i]),
                                     (uint32_t)q->conns[i] };
            if (i)
                mw_buf_putc(&b, ',');
            mw_presence_member_json(&b, &p);
        }
        mw_buf_puts(&b, "]");
        mw_buf_putc(&b, '\0');
        q->cb(q->ud, b.p, (uint32_t)q->n);
        mw_buf_free(&b);
    }
    for (size_t i = 0; i < q->n; i++)
        free(q->users[i]);
    free(q->users);
    free(q->conns);
    free(q);
}

int mw_cluster_members(const char *room, uint32_t limit, mw_cluster_members_cb cb, void *ud)
{
    char pu[160], pc[160], pm[160];
    if (!active || !mw_redis_up())
        return -1;
    keys_for(room, pu, pc, pm);
    struct members *q = mw_calloc(1, sizeof *q);
    q->cb = cb;
    q->ud = ud;
    q->limit = limit;
    const char *a1[] = { "HGETALL", pu }, *a2[] = { "HGETALL", pm };
    if (mw_redis_command(on_totals, q, 2, a1, NULL) < 0) {
        free(q);
        return -1;
    }
    if (mw_redis_command(on_metas, q, 2, a2, NULL) < 0) { /* cannot happen right after */
        q->failed = true;
        on_metas(q, NULL);
    }
    return 0;
}

/* ---- replacing a node's contribution ---- */

struct replace {
    char *room;
    char *node; /* whose contribution; for logs */
    bool cleanup;
};

static void on_replaced(void *ud, redisReply *r)
{
    struct replace *x = ud;
    mw_log_debug("presence replaced", "node=%s room=%s cleanup=%d reply_type=%d gone=%zu", x->node,
                 x->room, x->cleanup, r ? r->type : -1,
                 r && r->type == REDIS_REPLY_ARRAY && r->elements ? r->elements - 1 : 0);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_INTEGER) {
        uint32_t users = (uint32_t)r->element[0]->integer;
        for (size_t i = 1; i < r->elements; i++) {
            if (r->element[i]->type != REDIS_REPLY_STRING)
                continue;
            /* No local connection caused this: use the first route's presence
             * options. */
            const struct mw_route_config *rc = config && config->nroutes ? &config->routes[0] : NULL;
            if (rc)
                mw__presence_emit_leave(x->room, r->element[i]->str, users + 1, rc);
            if (x->cleanup)
                mw_cluster_stats.leaves_from_cleanup++;
        }
    } else if (r && r->type == REDIS_REPLY_ERROR) {
        mw_log_error("cluster presence script failed", "err=\"%s\"", r->str);
    }
    free(x->room);
    free(x->node);
    free(x);
}

/* Replaces node's contribution to room by this node's local presence there (none
 * when cleaning up after a node). */
static void replace_room(const char *node, const char *room, bool cleanup)
{
    char prefix[100];
    snprintf(prefix, sizeof prefix, "%s|", node);
    struct mw_room *r = cleanup ? NULL : mw_room_find(room);
    uint32_t users = r ? r->presence.len : 0;
    int n = 0;
    const char **args = mw_malloc((1 + 3 * (size_t)users) * sizeof *args);
    char (*counts)[12] = mw_calloc(users ? users : 1, sizeof *counts);
    args[n++] = prefix;
    for (uint32_t i = 0, k = 0; r && i < r->presence.cap; i++) {
        struct mw_presence *p = r->presence.slots[i].val;
        if (!r->presence.slots[i].key)
            continue;
        snprintf(counts[k], sizeof counts[k], "%u", p->conns);
        args[n++] = p->user;
        args[n++] = counts[k++];
        args[n++] = p->meta_json ? p->meta_json : "";
    }
    struct replace *x = mw_calloc(1, sizeof *x);
    x->room = mw_strdup(room);
    x->node = mw_strdup(node);
    x->cleanup = cleanup;
    if (eval3(REPLACE_LUA, room, n, args, NULL, on_replaced, x) < 0) {
        free(x->room);
        free(x->node);
        free(x);
    }
    free(counts);
    free(args);
}

static void resync_room(struct mw_room *r, void *ud)
{
    const char *nr = ud;
    if (!r->nmembers)
        return;
    replace_room(mw_srv.node_id, r->name, false);
    simple("SADD", nr, r->name);
}

/* ---- the registry ---- */

struct cleanup {
    char *node;
};

static void on_dead_rooms(void *ud, redisReply *r)
{
    struct cleanup *c = ud;
    char nr[120];
    if (r && r->type == REDIS_REPLY_ARRAY) {
        bool self = strcmp(c->node, mw_srv.node_id) == 0;
        for (size_t i = 0; i < r->elements; i++)
            replace_room(c->node, r->element[i]->str, true);
        reg_key(nr, sizeof nr, "nr", c->node);
        simple("DEL", nr, NULL);
        if (self) { /* a previous run under our id; we stay registered */
            if (r->elements)
                mw_log_info("cleared presence left by a previous run", "node=%s rooms=%zu",
                            c->node, r->elements);
        } else {
            simple("SREM", nodes_key, c->node);
            mw_cluster_stats.dead_nodes_cleaned++;
            mw_log_info("cleaned up a dead node", "node=%s rooms=%zu", c->node, r->elements);
        }
    }
    free(c->node);
    free(c);
}

static void cleanup_node(const char *node)
{
    char nr[120];
    reg_key(nr, sizeof nr, "nr", node);
    struct cleanup *c = mw_calloc(1, sizeof *c);
    c->node = mw_strdup(node);
    const char *argv[] = { "SMEMBERS", nr };
    if (mw_redis_command(on_dead_rooms, c, 2, argv, NULL) < 0) {
        free(c->node);
        free(c);
    }
}

/* The lock makes one cleaner per dead node, whichever node sees it first. */
static void on_lock(void *ud, redisReply *r)
{
    char *node = ud;
    if (r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0) {
        mw_log_warn("node is gone: removing its presence", "node=%s", node);
        cleanup_node(node);
    }
    free(node);
}

static void on_alive(void *ud, redisReply *r)
{
    char *node = ud;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
        char lock[120], ttl[24];
        reg_key(lock, sizeof lock, "clean", node);
        snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)(tick_ms * 20));
        const char *argv[] = { "SET", lock, mw_srv.node_id, "NX", "PX", ttl };
        if (mw_redis_command(on_lock, node, 6, argv, NULL) == 0)
            return;
    }
    free(node);
}

static void on_nodes(void *ud, redisReply *r)
{
    (void)ud;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const char *node = r->element[i]->str;
        if (strcmp(node, mw_srv.node_id) == 0)
            continue;
        char key[120];
        reg_key(key, sizeof key, "node", node);
        const char *argv[] = { "EXISTS", key };
        char *copy = mw_strdup(node);
        if (mw_redis_command(on_alive, copy, 2, argv, NULL) < 0)
            free(copy);
    }
}

static void heartbeat(void)
{
    char key[120], ttl[24], now[24];
    reg_key(key, sizeof key, "node", mw_srv.node_id);
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)(tick_ms * 3));
    snprintf(now, sizeof now, "%llu", (unsigned long long)mw_wall_ms());
    const char *set[] = { "SET", key, now, "PX", ttl };
    mw_redis_command(NULL, NULL, 5, set, NULL);
    simple("SADD", nodes_key, mw_srv.node_id);
    const char *members[] = { "SMEMBERS", nodes_key };
    mw_redis_command(on_nodes, NULL, 2, members, NULL);
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
    if (mw_redis_up())
        heartbeat();
}

void mw_cluster_on_up(void)
{
    if (!active)
        return;
    if (!registered) {
        /* A previous run under this node id may have left presence behind. */
        cleanup_node(mw_srv.node_id);
        registered = true;
    } else {
        /* Redis may have lost everything (a restart) or kept old counts: rewrite ours. */
        char nr[120];
        reg_key(nr, sizeof nr, "nr", mw_srv.node_id);
        mw_room_foreach(resync_room, nr);
    }
    heartbeat();
}

void mw_cluster_start(const struct mw_config *cfg)
{
    config = cfg;
    active = true;
    reg = mw_redis_is_cluster() ? "{mw}" : "mw";
    snprintf(nodes_key, sizeof nodes_key, "%s:nodes", reg);
    /* Registration refresh and dead-node checks: a few per heartbeat interval, so that
     * a crashed node's members vanish "within a few heartbeats". */
    tick_ms = cfg->heartbeat_interval_ms / 2;
    if (tick_ms < 250)
        tick_ms = 250;
    if (tick_ms > 5000)
        tick_ms = 5000;
    uv_timer_init(uv_default_loop(), &tick);
    uv_timer_start(&tick, on_tick, tick_ms, tick_ms);
}

void mw_cluster_stop(void)
{
    if (!active)
        return;
    active = false;
    uv_close((uv_handle_t *)&tick, NULL);
}
