/* presence_redis.c - presence counts in Redis, shared by every node
 * (presence_backend.h).
 *
 * Three Lua scripts keep a room's cluster-wide presence consistent, each atomic in
 * Redis: JOIN and LEAVE adjust one user; REPLACE takes out one node's part and puts
 * in a new one (possibly none) and reports who is gone everywhere and who is new. It
 * serves a dead node's cleanup, a restarted node's leftovers and the resync after a
 * reconnect. mw:nr:<node>, the rooms where a node holds presence, is kept exact: a
 * room is added on join and removed once the node's last member there left, so that
 * a resync after an outage finds every room the node ever had members in. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "base/log.h"
#include "base/map.h"
#include "rooms/presence_backend.h"
#include "redis/redis.h"
#include "rooms/room.h"
#include "base/context.h"
#include "base/util.h"

/* Both scripts announce what they count, in the same step (a node that dies right
 * after cannot leave the others unaware): ARGV[3..6] are threshold, publish_cmd,
 * channel and payload (presence_backend.h), the payload published when the user
 * arrived (joins) or is gone (leaves) and the room is not over the threshold. */
#define ANNOUNCE_LUA(cond, users)                                                      \
    "local pub = 0\n"                                                                  \
    "if " cond " and tonumber(ARGV[3]) >= 0 and " users " <= tonumber(ARGV[3]) then\n" \
    "  redis.call(ARGV[4], ARGV[5], ARGV[6]); pub = 1\n"                              \
    "end\n"

/* KEYS pu pc pm; ARGV user, "<node>|<user>", threshold, publish_cmd, channel, payload,
 * meta ("" keeps it) -> {total, users, announced} */
static const char JOIN_LUA[] =
    "redis.call('HINCRBY', KEYS[2], ARGV[2], 1)\n"
    "if ARGV[7] ~= '' then redis.call('HSET', KEYS[3], ARGV[1], ARGV[7]) end\n"
    "local t = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)\n"
    "local users = redis.call('HLEN', KEYS[1])\n"
    ANNOUNCE_LUA("t == 1", "users")
    "return {t, users, pub}\n";

/* KEYS pu pc pm; ARGV user, "<node>|<user>", threshold, publish_cmd, channel, payload
 * -> {total, users, announced} */
static const char LEAVE_LUA[] =
    "local c = redis.call('HINCRBY', KEYS[2], ARGV[2], -1)\n"
    "if c <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end\n"
    "local t = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)\n"
    "if t <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]); redis.call('HDEL', KEYS[3], ARGV[1]) end\n"
    "local users = redis.call('HLEN', KEYS[1])\n"
    ANNOUNCE_LUA("t <= 0", "users + 1")
    "return {t, users, pub}\n";

/* KEYS pu pc pm; ARGV "<node>|", then (user, conns, meta)... ->
 * {users, {gone...}, {user, meta, conns, ...}}: the users gone everywhere and the
 * users present now that were not before. */
static const char REPLACE_LUA[] =
    "local p, before, touched = ARGV[1], {}, {}\n"
    "local function touch(u)\n"
    "  if before[u] == nil then\n"
    "    before[u] = tonumber(redis.call('HGET', KEYS[1], u) or '0')\n"
    "    touched[#touched + 1] = u\n"
    "  end\n"
    "end\n"
    "local all = redis.call('HGETALL', KEYS[2])\n"
    "for i = 1, #all, 2 do\n"
    "  local f = all[i]\n"
    "  if string.sub(f, 1, #p) == p then\n"
    "    local u = string.sub(f, #p + 1)\n"
    "    touch(u)\n"
    "    redis.call('HDEL', KEYS[2], f)\n"
    "    if redis.call('HINCRBY', KEYS[1], u, -tonumber(all[i + 1])) <= 0 then\n"
    "      redis.call('HDEL', KEYS[1], u)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "for i = 2, #ARGV, 3 do\n"
    "  local u, c = ARGV[i], tonumber(ARGV[i + 1])\n"
    "  touch(u)\n"
    "  redis.call('HSET', KEYS[2], p .. u, c)\n"
    "  redis.call('HINCRBY', KEYS[1], u, c)\n"
    "  if ARGV[i + 2] ~= '' then redis.call('HSET', KEYS[3], u, ARGV[i + 2]) end\n"
    "end\n"
    "local gone, added = {}, {}\n"
    "for _, u in ipairs(touched) do\n"
    "  local now = tonumber(redis.call('HGET', KEYS[1], u) or '0')\n"
    "  if before[u] > 0 and now <= 0 then\n"
    "    redis.call('HDEL', KEYS[3], u); gone[#gone + 1] = u\n"
    "  elseif before[u] <= 0 and now > 0 then\n"
    "    added[#added + 1] = u\n"
    "    added[#added + 1] = redis.call('HGET', KEYS[3], u) or ''\n"
    "    added[#added + 1] = now\n"
    "  end\n"
    "end\n"
    "return {redis.call('HLEN', KEYS[1]), gone, added}\n";

/* KEYS pu pm -> {HGETALL pu, HGETALL pm}: one round trip, one consistent view. */
static const char LIST_LUA[] =
    "return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2])}\n";

static struct {
    char reg[8];        /* "mw" or "{mw}" */
    struct mw_map dirty; /* room -> its name (owned) */
} P;

static void keys_for(const char *room, char pu[160], char pc[160], char pm[160])
{
    snprintf(pu, 160, "mw:pu:{%s}", room);
    snprintf(pc, 160, "mw:pc:{%s}", room);
    snprintf(pm, 160, "mw:pm:{%s}", room);
}

static void nr_key(char out[200], const char *node)
{
    snprintf(out, 200, "%s:nr:%s", P.reg, node);
}

/* Runs a script with KEYS pu pc pm of `room` (or pu pm: nkeys 2) and the given ARGV
 * (lens NULL: C strings). */
static int eval_room(const char *script, const char *room, int nkeys, int nargs,
                     const char **args, const size_t *lens, mw_redis_cb cb, void *ud)
{
    char pu[160], pc[160], pm[160];
    keys_for(room, pu, pc, pm);
    int argc = 3 + nkeys + nargs, k = 0;
    const char **argv = mw_malloc((size_t)argc * sizeof *argv);
    size_t *argl = mw_malloc((size_t)argc * sizeof *argl);
    argv[k++] = "EVAL";
    argv[k++] = script;
    argv[k++] = nkeys == 3 ? "3" : "2";
    argv[k++] = pu;
    if (nkeys == 3)
        argv[k++] = pc;
    argv[k++] = pm;
    for (int i = 0; i < k; i++)
        argl[i] = strlen(argv[i]);
    for (int i = 0; i < nargs; i++, k++) {
        argv[k] = args[i];
        argl[k] = lens ? lens[i] : strlen(args[i]);
    }
    int rc = mw_redis_command(cb, ud, argc, argv, argl);
    free(argv);
    free(argl);
    return rc;
}

static void simple(const char *a0, const char *a1, const char *a2)
{
    const char *argv[] = { a0, a1, a2 };
    mw_redis_command(NULL, NULL, a2 ? 3 : 2, argv, NULL);
}

static void mark_dirty(const char *room)
{
    if (!mw_map_get(&P.dirty, room)) {
        char *name = mw_strdup(room);
        mw_map_put(&P.dirty, name, name);
    }
}

void mw_presence_redis_resynced(const char *room)
{
    free(mw_map_del(&P.dirty, room));
}

void mw_presence_redis_dirty(void (*fn)(const char *room, void *ud), void *ud)
{
    /* collect first: fn may resync (and so clear) rooms */
    uint32_t n = 0;
    char **rooms = mw_malloc((P.dirty.len + 1) * sizeof *rooms);
    for (uint32_t i = 0; i < P.dirty.cap; i++)
        if (P.dirty.slots[i].key)
            rooms[n++] = mw_strdup(P.dirty.slots[i].key);
    for (uint32_t i = 0; i < n; i++) {
        fn(rooms[i], ud);
        free(rooms[i]);
    }
    free(rooms);
}

static bool has_local_members(const char *room)
{
    struct mw_room *r = mw_room_find(room);
    return r && r->nmembers > 0;
}

/* ---- join and leave ---- */

struct count_call {
    mw_presence_count_cb cb;
    void *ud;
    bool leave;
    char room[];
};

static void on_counted(void *ud, redisReply *r)
{
    struct count_call *c = ud;
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements >= 3 &&
              r->element[0]->type == REDIS_REPLY_INTEGER &&
              r->element[1]->type == REDIS_REPLY_INTEGER &&
              r->element[2]->type == REDIS_REPLY_INTEGER;
    if (!ok) {
        if (r && r->type == REDIS_REPLY_ERROR)
            mw_log_error("cluster presence script failed", "err=\"%s\"", r->str);
        mark_dirty(c->room); /* the outcome is unknown: the next resync rewrites it */
        c->cb(c->ud, -1, 0, 0, false);
        free(c);
        return;
    }
    long long total = r->element[0]->integer, users = r->element[1]->integer;
    /* After an ASK the script's publish reached the wrong shard: presence.c sends it */
    bool announced = r->element[2]->integer == 1 && !mw_redis_reply_asked();
    if (c->leave && !has_local_members(c->room)) { /* the node's last member left */
        char nr[200];
        nr_key(nr, mw_srv.node_id);
        simple("SREM", nr, c->room);
    }
    c->cb(c->ud, 0, total > 0 ? (uint32_t)total : 0, users > 0 ? (uint32_t)users : 0, announced);
    free(c);
}

static struct count_call *count_call(const char *room, bool leave, mw_presence_count_cb cb,
                                     void *ud)
{
    size_t n = strlen(room) + 1;
    struct count_call *c = mw_malloc(sizeof *c + n);
    c->cb = cb;
    c->ud = ud;
    c->leave = leave;
    memcpy(c->room, room, n);
    return c;
}

/* JOIN or LEAVE with its announcement. */
static int count_send(const char *script, const char *room, const char *user, const char *meta,
                      const struct mw_presence_announce *a, struct count_call *c)
{
    char field[320], threshold[24];
    snprintf(field, sizeof field, "%s|%s", mw_srv.node_id, user);
    snprintf(threshold, sizeof threshold, "%lld", a->threshold);
    const char *args[] = { user, field, threshold, a->cmd, a->channel, a->payload,
                           meta ? meta : "" };
    size_t lens[] = { strlen(user), strlen(field), strlen(threshold), strlen(a->cmd),
                      strlen(a->channel), a->len, meta ? strlen(meta) : 0 };
    return eval_room(script, room, 3, c->leave ? 6 : 7, args, lens, on_counted, c);
}

static int redis_join(const char *room, const char *user, const char *meta,
                      const struct mw_presence_announce *a, mw_presence_count_cb cb, void *ud)
{
    char nr[200];
    struct count_call *c = count_call(room, false, cb, ud);
    if (count_send(JOIN_LUA, room, user, meta, a, c) < 0) {
        free(c);
        mark_dirty(room); /* Redis down: the resync after the reconnect writes it */
        return -1;
    }
    nr_key(nr, mw_srv.node_id);
    simple("SADD", nr, room);
    return 0;
}

static int redis_leave(const char *room, const char *user, const struct mw_presence_announce *a,
                       mw_presence_count_cb cb, void *ud)
{
    struct count_call *c = count_call(room, true, cb, ud);
    if (count_send(LEAVE_LUA, room, user, NULL, a, c) < 0) {
        free(c);
        mark_dirty(room);
        return -1;
    }
    return 0;
}

/* ---- members ---- */

struct list_call {
    mw_presence_entries_cb cb;
    void *ud;
    uint32_t limit;
};

static bool is_hash_reply(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2)
        return false;
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type != REDIS_REPLY_STRING)
            return false;
    return true;
}

static void on_list(void *ud, redisReply *r)
{
    struct list_call *q = ud;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !is_hash_reply(r->element[0]) ||
        !is_hash_reply(r->element[1])) {
        if (r && r->type == REDIS_REPLY_ERROR)
            mw_log_error("cluster presence script failed", "err=\"%s\"", r->str);
        q->cb(q->ud, -1, NULL, 0, 0);
        free(q);
        return;
    }
    const redisReply *totals = r->element[0], *metas = r->element[1];
    struct mw_map meta = { 0 };
    for (size_t i = 0; i < metas->elements; i += 2)
        mw_map_put(&meta, metas->element[i]->str, metas->element[i + 1]->str);
    size_t users = totals->elements / 2, n = users < q->limit ? users : q->limit;
    struct mw_presence_entry *e = mw_malloc((n + 1) * sizeof *e);
    for (size_t i = 0; i < n; i++) {
        const char *user = totals->element[2 * i]->str;
        long long conns = strtoll(totals->element[2 * i + 1]->str, NULL, 10);
        e[i] = (struct mw_presence_entry){ user, mw_map_get(&meta, user),
                                           conns > 0 ? (uint32_t)conns : 0 };
    }
    q->cb(q->ud, 0, e, n, (uint32_t)users);
    free(e);
    mw_map_free(&meta);
    free(q);
}

static int redis_list(const char *room, uint32_t limit, mw_presence_entries_cb cb, void *ud)
{
    if (!mw_redis_up())
        return -1;
    struct list_call *q = mw_calloc(1, sizeof *q);
    q->cb = cb;
    q->ud = ud;
    q->limit = limit;
    if (eval_room(LIST_LUA, room, 2, 0, NULL, NULL, on_list, q) < 0) {
        free(q);
        return -1;
    }
    return 0;
}

const struct mw_presence_backend mw_presence_redis = {
    .name = "redis",
    .join = redis_join,
    .leave = redis_leave,
    .list = redis_list,
};

/* ---- repairs: replace a node's part, the node's room set ---- */

struct replace_call {
    mw_presence_diff_cb cb;
    void *ud;
    bool cleanup, mine;
    char *node;
    char room[];
};

static bool parse_diff(const redisReply *r, struct mw_presence_entry **gone, size_t *ngone,
                       struct mw_presence_entry **added, size_t *nadded, uint32_t *users)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_ARRAY ||
        r->element[2]->type != REDIS_REPLY_ARRAY || r->element[2]->elements % 3)
        return false;
    const redisReply *g = r->element[1], *a = r->element[2];
    *users = r->element[0]->integer > 0 ? (uint32_t)r->element[0]->integer : 0;
    *gone = mw_calloc(g->elements + 1, sizeof **gone);
    *added = mw_calloc(a->elements / 3 + 1, sizeof **added);
    *ngone = *nadded = 0;
    for (size_t i = 0; i < g->elements; i++)
        if (g->element[i]->type == REDIS_REPLY_STRING)
            (*gone)[(*ngone)++] = (struct mw_presence_entry){ g->element[i]->str, NULL, 0 };
    for (size_t i = 0; i + 2 < a->elements; i += 3) {
        const redisReply *u = a->element[i], *m = a->element[i + 1], *c = a->element[i + 2];
        if (u->type != REDIS_REPLY_STRING || m->type != REDIS_REPLY_STRING ||
            c->type != REDIS_REPLY_INTEGER)
            continue;
        (*added)[(*nadded)++] = (struct mw_presence_entry){ u->str, m->len ? m->str : NULL,
                                                            c->integer > 0 ? (uint32_t)c->integer : 0 };
    }
    return true;
}

static void on_replaced(void *ud, redisReply *r)
{
    struct replace_call *x = ud;
    struct mw_presence_entry *gone = NULL, *added = NULL;
    size_t ngone = 0, nadded = 0;
    uint32_t users = 0;
    bool ok = parse_diff(r, &gone, &ngone, &added, &nadded, &users);
    if (!ok) {
        if (r && r->type == REDIS_REPLY_ERROR)
            mw_log_error("cluster presence script failed", "err=\"%s\"", r->str);
        if (x->mine)
            mark_dirty(x->room);
    } else if (!x->cleanup) {
        char nr[200];
        nr_key(nr, x->node);
        simple(has_local_members(x->room) ? "SADD" : "SREM", nr, x->room);
        if (x->mine)
            mw_presence_redis_resynced(x->room);
    }
    mw_log_debug("presence replaced", "node=%s room=%s cleanup=%d ok=%d gone=%zu added=%zu",
                 x->node, x->room, x->cleanup, ok, ngone, nadded);
    if (x->cb)
        x->cb(x->ud, x->room, ok ? 0 : -1, gone, ngone, added, nadded, users);
    free(gone);
    free(added);
    free(x->node);
    free(x);
}

int mw_presence_redis_replace(const char *node, const char *room, bool cleanup,
                              mw_presence_diff_cb cb, void *ud)
{
    char prefix[100];
    bool mine = strcmp(node, mw_srv.node_id) == 0;
    snprintf(prefix, sizeof prefix, "%s|", node);
    struct mw_room *r = cleanup || !mine ? NULL : mw_room_find(room);
    uint32_t users = r ? r->presence.len : 0;
    int n = 0;
    const char **args = mw_malloc((1 + 3 * (size_t)users) * sizeof *args);
    char (*counts)[12] = mw_calloc(users ? users : 1, sizeof *counts);
    args[n++] = prefix;
    for (uint32_t i = 0, k = 0; r && i < r->presence.cap; i++) {
        struct mw_presence *p = r->presence.slots[i].val;
        if (!r->presence.slots[i].key)
            continue;
        snprintf(counts[k], sizeof counts[k], "%" PRIu32, p->conns);
        args[n++] = p->user;
        args[n++] = counts[k++];
        args[n++] = p->meta_json ? p->meta_json : "";
    }
    size_t len = strlen(room) + 1;
    struct replace_call *x = mw_malloc(sizeof *x + len);
    x->cb = cb;
    x->ud = ud;
    x->cleanup = cleanup;
    x->mine = mine;
    x->node = mw_strdup(node);
    memcpy(x->room, room, len);
    int rc = eval_room(REPLACE_LUA, room, 3, n, args, NULL, on_replaced, x);
    if (rc < 0) {
        free(x->node);
        free(x);
    }
    free(counts);
    free(args);
    return rc;
}

struct rooms_call {
    mw_presence_rooms_cb cb;
    void *ud;
};

static void on_rooms(void *ud, redisReply *r)
{
    struct rooms_call *q = ud;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        q->cb(q->ud, -1, NULL, 0);
        free(q);
        return;
    }
    const char **rooms = mw_malloc((r->elements + 1) * sizeof *rooms);
    size_t n = 0;
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            rooms[n++] = r->element[i]->str;
    q->cb(q->ud, 0, rooms, n);
    free(rooms);
    free(q);
}

int mw_presence_redis_rooms_of(const char *node, mw_presence_rooms_cb cb, void *ud)
{
    char nr[200];
    nr_key(nr, node);
    struct rooms_call *q = mw_malloc(sizeof *q);
    q->cb = cb;
    q->ud = ud;
    const char *argv[] = { "SMEMBERS", nr };
    if (mw_redis_command(on_rooms, q, 2, argv, NULL) < 0) {
        free(q);
        return -1;
    }
    return 0;
}

void mw_presence_redis_forget_node(const char *node)
{
    char nr[200];
    nr_key(nr, node);
    simple("DEL", nr, NULL);
}

void mw_presence_redis_start(const char *registry_prefix)
{
    snprintf(P.reg, sizeof P.reg, "%s", registry_prefix);
}

void mw_presence_redis_stop(void)
{
    for (uint32_t i = 0; i < P.dirty.cap; i++)
        if (P.dirty.slots[i].key)
            free(P.dirty.slots[i].val);
    mw_map_free(&P.dirty);
    memset(&P.dirty, 0, sizeof P.dirty);
}
