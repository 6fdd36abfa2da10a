/* lua_rooms.c - rooms, presence and typing for Lua (module moonwire.rooms). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "rooms/broker.h"
#include "net/conn.h"
#include "rooms/history.h"
#include "base/ident.h"
#include "base/log.h"
#include "lua/lua_api.h"
#include "base/lua_json.h"
#include "rooms/presence.h"
#include "redis/redis.h"
#include "rooms/room.h"
#include "lua/script.h"
#include "base/context.h"
#include "rooms/typing.h"
#include "base/util.h"

#define PRESENCE_LIST_MAX 1000

/* rooms.broadcast(room, msg [, except_conn]) -> recipients */
static int l_broadcast(lua_State *L)
{
    const char *name = mw_lua_check_room(L, 1);
    luaL_checkany(L, 2);
    struct mw_conn *except = lua_isnoneornil(L, 3) ? NULL : mw_lua_check_conn(L, 3);
    struct mw_msg *m = mw_lua_to_msg(L, 2, false, 0);
    lua_pushinteger(L, mw_broker_room(name, m, except, NULL));
    mw_msg_decref(m);
    return 1;
}

struct published {
    int err;
    uint64_t seq;
};

static int push_published(lua_State *L, const struct published *p)
{
    if (p->err == 0) {
        lua_pushnumber(L, (lua_Number)p->seq);
        return 1;
    }
    lua_pushnil(L);
    lua_pushstring(L, p->err == MW_HISTORY_ENOROOM   ? "no such room"
                      : p->err == MW_HISTORY_EUNKNOWN ? "unknown"
                                                      : "unavailable");
    return 2;
}

static void on_published(void *ud, int err, uint64_t seq)
{
    struct published p = { err, seq };
    struct mw_co_call *c = ud;
    mw_co_call_done(c, push_published(mw_co_call_thread(c), &p));
}

/* rooms.publish(room, event) -> seq: stamps the event with the room's next seq and
 * ts, keeps it in history (the route's `history`) and sends it to every member, on
 * every node. Clustered, seq comes from Redis (the handler waits); while Redis is
 * down it returns nil, "unavailable": the event reached this node's members only,
 * without seq; when the Redis reply was lost, nil, "unknown": nothing can be
 * promised (the handler should fail with `unavailable`: the client's retry of the
 * same message id is not published twice). */
static int l_publish(lua_State *L)
{
    char err[256];
    const char *name = mw_lua_check_room(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    struct mw_app *a = mw_app_of(L);
    static struct mw_scratch scratch; /* mw_history_publish copies the text */
    struct mw_buf spare, *b = mw_scratch_take(&scratch, &spare);
    if (mw_json_encode(L, 2, b, err, sizeof err) < 0) {
        mw_scratch_give(&scratch, b);
        return luaL_error(L, "rooms.publish: cannot encode the event: %s", err);
    }
    if (b->len < 2 || b->p[0] != '{') {
        mw_scratch_give(&scratch, b);
        return luaL_argerror(L, 2, "the event must be an object (a table with fields)");
    }
    if (mw_broker_clustered() && !mw_co_can_wait(L)) { /* load time: nobody can wait */
        mw_history_publish(name, a->route->cfg, b->p, b->len, 0, NULL, NULL, NULL);
        mw_scratch_give(&scratch, b);
        lua_pushnil(L);
        lua_pushliteral(L, "pending");
        return 2;
    }
    struct mw_co_call *c = mw_co_call_new(L);
    mw_history_publish(name, a->route->cfg, b->p, b->len, 0, mw_lua_message_token(L),
                       on_published, c);
    mw_scratch_give(&scratch, b);
    return mw_co_call_finish(L, c);
}

struct page_result {
    int err;
    const struct mw_history_page *page;
};

static int push_page(lua_State *L, const struct page_result *pr)
{
    char err[256];
    if (pr->err) {
        lua_pushnil(L);
        lua_pushliteral(L, "unavailable");
        return 2;
    }
    const struct mw_history_page *p = pr->page;
    mw_json_push_array(L, (int)p->n);
    for (size_t i = 0; i < p->n; i++) { /* checked, decoded only if the app looks */
        if (mw_json_decode_lazy(L, p->events[i], p->lens[i], err, sizeof err) < 0) {
            mw_log_error("corrupt history entry", "err=\"%s\"", err);
            lua_pushnil(L);
        }
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_pushboolean(L, p->complete);
    lua_pushnumber(L, (lua_Number)p->seq);
    lua_pushstring(L, p->epoch);
    return 4;
}

static void on_page(void *ud, int err, const struct mw_history_page *page)
{
    struct page_result pr = { err, page };
    struct mw_co_call *c = ud;
    mw_co_call_done(c, push_page(mw_co_call_thread(c), &pr));
}

/* rooms.history(room [, since]) -> events (oldest first) with seq > since, complete,
 * seq, epoch. complete is false when some events after `since` are no longer kept
 * (trimmed by history.size or history.ttl), so the client must reset rather than
 * merge; seq and epoch are the room's. Clustered, read from Redis (the handler
 * waits); nil, "unavailable" while Redis is down. */
static int l_history(lua_State *L)
{
    const char *name = mw_lua_check_room(L, 1);
    lua_Number since = luaL_optnumber(L, 2, 0);
    if (since < 0 || since != floor(since) || since > 9007199254740992.0)
        return luaL_argerror(L, 2, "since must be a non-negative integer");
    if (mw_broker_clustered())
        mw_co_check_wait(L);
    struct mw_co_call *c = mw_co_call_new(L);
    mw_history_read(name, (uint64_t)since, mw_app_of(L)->route->cfg, on_page, c);
    return mw_co_call_finish(L, c);
}

/* rooms.info(room) -> {connections, users} on this node, or nil. seq and epoch come
 * with rooms.history: clustered they live in Redis. */
static int l_info(lua_State *L)
{
    struct mw_room *r = mw_room_find(mw_lua_check_room(L, 1));
    if (!r) {
        lua_pushnil(L);
        return 1;
    }
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, r->nmembers);
    lua_setfield(L, -2, "connections");
    lua_pushinteger(L, r->presence.len);
    lua_setfield(L, -2, "users");
    return 1;
}

/* Pushes the local members of a room (at most limit) and their count: an array of
 * lazy objects, each member's JSON, decoded only if Lua looks. */
static int push_local_presence(lua_State *L, const char *room, lua_Integer limit)
{
    struct mw_room *r = mw_room_find(room);
    uint32_t total = r ? r->presence.len : 0, n = 0;
    struct mw_buf b = { 0 };
    mw_json_push_array(L, (int)(total < limit ? total : limit));
    for (uint32_t i = 0; r && i < r->presence.cap && n < limit; i++) {
        if (!r->presence.slots[i].key)
            continue;
        b.len = 0;
        mw_presence_member_json(&b, r->presence.slots[i].val);
        mw_json_push_lazy_object(L, b.p, b.len);
        lua_rawseti(L, -2, (int)++n);
    }
    mw_buf_free(&b);
    lua_pushinteger(L, total);
    return 2;
}

/* A presence list being read from Redis by a waiting handler. */
struct presence_wait {
    struct mw_wait wait;
    char room[129];
    lua_Integer limit;
};

static void on_cluster_members(void *ud, const char *json, size_t len, uint32_t count)
{
    char err[256];
    struct presence_wait *pw = ud;
    lua_State *co = mw_co_thread(&pw->wait);
    int n;
    if (json && mw_json_decode_lazy(co, json, len, err, sizeof err) == 0) {
        lua_pushinteger(co, count);
        n = 2;
    } else { /* Redis failed meanwhile: this node's view is the best there is */
        n = push_local_presence(co, pw->room, pw->limit);
    }
    mw_co_wake(&pw->wait, n);
    free(pw);
}

/* rooms.presence(room [, limit]) -> members array, count. Clustered, the members of
 * every node (the handler waits for Redis); else, or while Redis is down, this
 * node's. */
static int l_presence(lua_State *L)
{
    const char *room = mw_lua_check_room(L, 1);
    lua_Integer limit = luaL_optinteger(L, 2, PRESENCE_LIST_MAX);
    if (limit < 0 || limit > PRESENCE_LIST_MAX)
        limit = PRESENCE_LIST_MAX;
    if (!mw_broker_clustered() || !mw_redis_up())
        return push_local_presence(L, room, limit);
    mw_co_check_wait(L);
    struct presence_wait *pw = mw_calloc(1, sizeof *pw);
    snprintf(pw->room, sizeof pw->room, "%s", room);
    pw->limit = limit;
    if (mw_presence_list_cluster(room, (uint32_t)limit, on_cluster_members, pw) < 0) {
        free(pw);
        return push_local_presence(L, room, limit);
    }
    mw_co_wait(L, &pw->wait);
    return lua_yield(L, 0);
}

static struct mw_room *member_room(lua_State *L, struct mw_conn **c)
{
    *c = mw_lua_check_conn(L, 1);
    const char *name = mw_lua_check_room(L, 2);
    struct mw_member *m = *c ? mw_room_member(*c, name) : NULL;
    return m ? m->room : NULL;
}

/* rooms.typing(conn, room, on) -> true | nil, "not_in_room" */
static int l_typing(lua_State *L)
{
    struct mw_conn *c;
    struct mw_room *r = member_room(L, &c);
    luaL_checkany(L, 3);
    if (!r) {
        lua_pushnil(L);
        lua_pushliteral(L, "not_in_room");
        return 2;
    }
    if (lua_toboolean(L, 3))
        mw_typing_start(r, c);
    else
        mw_typing_stop_user(r, c->user->id);
    lua_pushboolean(L, 1);
    return 1;
}

/* rooms.send_user(user, msg) -> connections reached on this node (other nodes get
 * it too when clustered) */
static int l_send_user(lua_State *L)
{
    size_t len;
    const char *user = luaL_checklstring(L, 1, &len);
    const char *bad = mw_user_id_error(user, len);
    if (bad)
        return luaL_argerror(L, 1, bad);
    luaL_checkany(L, 2);
    struct mw_msg *m = mw_lua_to_msg(L, 2, false, 0);
    lua_pushinteger(L, mw_broker_user(user, m));
    mw_msg_decref(m);
    return 1;
}

int luaopen_moonwire_rooms(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "broadcast", l_broadcast }, { "publish", l_publish }, { "history", l_history },
        { "info", l_info },           { "presence", l_presence }, { "typing", l_typing },
        { "send_user", l_send_user }, { NULL, NULL },
    };
    lua_newtable(L);
    luaL_register(L, NULL, fns);
    return 1;
}
