/* lua_conn.c - the `conn` object handed to handlers (module moonwire.conn).
 *
 * A conn is a userdata holding the connection id; every method looks the connection
 * up, so a conn kept past its close is safe (methods then return nil, "closed").
 * Attributes live in C (conn.c) and survive script reloads. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "rooms/authz.h"
#include "net/conn.h"
#include "lua/lua_api.h"
#include "base/lua_json.h"
#include "rooms/presence.h"
#include "rooms/room.h"
#include "lua/script.h"
#include "base/context.h"
#include "base/utf8.h"
#include "base/util.h"

#define CONN_MT "moonwire.conn"
/* Registry keys (their addresses): the weak cache of conn userdata by connection,
 * and the ring that keeps the recently used ones from being collected. */
static char cache_key, ring_key;
#define RING_SIZE 4096
static uint32_t ring_next;

struct lconn {
    char id[24];
};

static struct mw_buf scratch;

struct mw_msg *mw_lua_to_msg(lua_State *L, int idx, bool binary, unsigned flags)
{
    char err[256];
    size_t len;
    if (lua_type(L, idx) == LUA_TSTRING) {
        const char *s = lua_tolstring(L, idx, &len);
        size_t bad = binary ? len : mw_utf8_check(s, len);
        if (bad < len) /* a browser would drop the connection on this frame */
            luaL_error(L, "invalid UTF-8 at byte %d of a text frame (send binary data as binary)",
                       (int)bad);
        return mw_msg_new(binary ? MW_OP_BINARY : MW_OP_TEXT, s, len, flags);
    }
    mw_buf_reset(&scratch);
    if (mw_json_encode(L, idx, &scratch, err, sizeof err) < 0)
        luaL_error(L, "cannot encode message: %s", err);
    struct mw_msg *m = mw_msg_new(MW_OP_TEXT, scratch.p, scratch.len, flags);
    if (scratch.cap > 1 << 20) /* do not keep a huge buffer after one big message */
        mw_buf_free(&scratch);
    return m;
}

const char *mw_lua_check_room(lua_State *L, int idx)
{
    size_t len;
    const char *room = luaL_checklstring(L, idx, &len);
    const char *why = mw_room_name_error(room, len);
    if (why)
        luaL_argerror(L, idx, why);
    return room;
}

/* The userdata goes in the ring of recently used ones: a weak cache alone loses it
 * at every collection, and a handler then paid for a new userdata each message. The
 * ring is bounded (idle connections keep nothing in Lua). Stack: [cache, ud]. */
static void keep_recent(lua_State *L)
{
    lua_pushlightuserdata(L, &ring_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, (int)(ring_next++ % RING_SIZE) + 1);
    lua_pop(L, 1);
}

void mw_lua_push_conn(lua_State *L, struct mw_conn *c)
{
    /* Keyed by the connection's address, checked by id: an address can be reused by
     * a later connection while an app still holds the old one's conn. */
    lua_pushlightuserdata(L, &cache_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_pushlightuserdata(L, c);
    lua_rawget(L, -2);
    struct lconn *u = lua_touserdata(L, -1);
    if (!u || strcmp(u->id, c->id) != 0) {
        lua_pop(L, 1);
        u = lua_newuserdata(L, sizeof *u);
        mw_strcopy(u->id, sizeof u->id, c->id);
        luaL_getmetatable(L, CONN_MT);
        lua_setmetatable(L, -2);
        lua_pushlightuserdata(L, c);
        lua_pushvalue(L, -2);
        lua_rawset(L, -4);
    }
    keep_recent(L);
    lua_remove(L, -2);
}

static struct lconn *check_lconn(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, CONN_MT);
}

struct mw_conn *mw_lua_check_conn(lua_State *L, int idx)
{
    return mw_conn_find(check_lconn(L, idx)->id);
}

/* The connection, only while it can still send and join (not closing or closed). */
static struct mw_conn *check_open_conn(lua_State *L, int idx)
{
    struct mw_conn *c = mw_lua_check_conn(L, idx);
    return c && mw_conn_is_open(c) ? c : NULL;
}

static int closed(lua_State *L)
{
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
}

/* conn:send(msg [, binary]) -> true | nil, err */
static int l_send(lua_State *L)
{
    struct mw_conn *c = check_open_conn(L, 1);
    luaL_checkany(L, 2);
    if (!c)
        return closed(L);
    struct mw_msg *m = mw_lua_to_msg(L, 2, lua_toboolean(L, 3), 0);
    int rc = mw_conn_send(c, m);
    mw_msg_decref(m);
    if (rc < 0) {
        lua_pushnil(L);
        lua_pushstring(L, rc == MW_EFULL ? "slow consumer" : "closed");
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* conn:close([code [, reason]]) */
static int l_close(lua_State *L)
{
    struct mw_conn *c = check_open_conn(L, 1);
    int code = (int)luaL_optinteger(L, 2, 1000);
    size_t rlen;
    const char *reason = luaL_optlstring(L, 3, "", &rlen);
    if (code != 1000 && code != 1001 && code != 1008 && code != 1011 && (code < 3000 || code > 4999))
        luaL_argerror(L, 2, "close code must be 1000, 1001, 1008, 1011 or 3000..4999");
    if (rlen > 123)
        luaL_argerror(L, 3, "close reason must be at most 123 bytes");
    if (c)
        mw_conn_close(c, code, reason);
    return 0;
}

/* Encodes the member metadata table, dropping the keys the core owns. */
static const char *meta_json(lua_State *L, int idx, struct mw_buf *b)
{
    char err[256];
    if (lua_isnoneornil(L, idx))
        return NULL;
    luaL_checktype(L, idx, LUA_TTABLE);
    mw_json_unlazy(L, idx);
    lua_pushnil(L);
    if (!lua_next(L, idx)) { /* no metadata (the chat app's join without a name) */
        mw_buf_puts(b, "{}");
        mw_buf_putc(b, '\0');
        return b->p;
    }
    lua_pop(L, 2);
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), "user") &&
            strcmp(lua_tostring(L, -2), "conns")) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_settable(L, -4);
        } else {
            lua_pop(L, 1);
        }
    }
    if (mw_json_encode(L, -1, b, err, sizeof err) < 0)
        luaL_error(L, "conn:join: cannot encode member data: %s", err);
    lua_pop(L, 1);
    mw_buf_putc(b, '\0');
    return b->p[0] == '{' ? b->p : NULL;
}

/* conn:join(room [, meta]) -> true | nil, "closed" */
/* Raises the failure mw.fail(code, message) would (the client gets that error). */
static int raise_failure(lua_State *L, const char *code, const char *message)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
    lua_getfield(L, -1, "moonwire.errors");
    lua_getfield(L, -1, "fail");
    lua_pushstring(L, code);
    lua_pushstring(L, message);
    lua_call(L, 2, 0);
    return luaL_error(L, "%s: %s", code, message); /* not reached */
}

/* Whether c may join room (authz.h): the route's patterns, limits.max_rooms, then
 * the app's can_join(conn, room) hook with the conn at index 1. Raises forbidden. */
static void check_join(lua_State *L, struct mw_conn *c, const char *room)
{
    char msg[256];
    const char *why = mw_authz_room_error(c->route->cfg, room);
    if (why) {
        mw_authz_stats.route++;
        snprintf(msg, sizeof msg, "room '%.128s': %s", room, why);
        raise_failure(L, "forbidden", msg);
    }
    uint32_t max = mw_srv.cfg ? mw_srv.cfg->max_rooms : 0;
    if (max && c->nrooms >= max && !mw_room_member(c, room)) {
        mw_authz_stats.max_rooms++;
        snprintf(msg, sizeof msg, "at most %u rooms per connection (limits.max_rooms)", max);
        raise_failure(L, "forbidden", msg);
    }
    struct mw_app *a = mw_app_of(L);
    if (!a || a->app_ref == LUA_NOREF || a->app_ref == LUA_REFNIL)
        return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->app_ref);
    lua_getfield(L, -1, "can_join");
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 2);
        return;
    }
    lua_pushvalue(L, 1);
    lua_pushstring(L, room);
    lua_call(L, 2, 2);
    if (!lua_toboolean(L, -2)) {
        mw_authz_stats.app++;
        snprintf(msg, sizeof msg, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "not allowed to join this room");
        raise_failure(L, "forbidden", msg);
    }
    lua_pop(L, 3);
}

static int l_join(lua_State *L)
{
    struct mw_conn *c = check_open_conn(L, 1);
    const char *room = mw_lua_check_room(L, 2);
    if (!c)
        return closed(L);
    check_join(L, c, room); /* raises before anything is allocated */
    struct mw_buf b = { 0 };
    const char *meta = meta_json(L, 3, &b);
    if (!mw_conn_is_open(c)) { /* the app's hook closed it */
        mw_buf_free(&b);
        return closed(L);
    }
    mw_presence_join(c, room, meta, c->route->cfg);
    mw_buf_free(&b);
    lua_pushboolean(L, 1);
    return 1;
}

/* conn:leave(room) -> true when it was a member */
static int l_leave(lua_State *L)
{
    struct mw_conn *c = mw_lua_check_conn(L, 1);
    const char *room = mw_lua_check_room(L, 2);
    struct mw_member *m = c ? mw_room_member(c, room) : NULL;
    if (m)
        mw_presence_leave(m, c->route->cfg);
    lua_pushboolean(L, m != NULL);
    return 1;
}

static int l_in_room(lua_State *L)
{
    struct mw_conn *c = mw_lua_check_conn(L, 1);
    const char *room = mw_lua_check_room(L, 2);
    lua_pushboolean(L, c && mw_room_member(c, room));
    return 1;
}

static int l_rooms(lua_State *L)
{
    struct mw_conn *c = mw_lua_check_conn(L, 1);
    mw_json_push_array(L, c ? (int)c->nrooms : 0);
    for (uint32_t i = 0; c && i < c->nrooms; i++) {
        lua_pushstring(L, c->rooms[i]->room->name);
        lua_rawseti(L, -2, (int)i + 1);
    }
    return 1;
}

/* conn:set(key, value): any JSON-encodable value; nil deletes. */
static int l_set(lua_State *L)
{
    char err[256];
    struct mw_conn *c = mw_lua_check_conn(L, 1);
    const char *key = luaL_checkstring(L, 2);
    if (!c)
        return closed(L);
    if (lua_isnoneornil(L, 3)) {
        mw_conn_attr_set(c, key, NULL);
    } else {
        struct mw_buf b = { 0 };
        if (mw_json_encode(L, 3, &b, err, sizeof err) < 0) {
            mw_buf_free(&b);
            return luaL_error(L, "conn:set('%s'): %s", key, err);
        }
        mw_buf_putc(&b, '\0');
        mw_conn_attr_set(c, key, b.p);
        mw_buf_free(&b);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_get(lua_State *L)
{
    char err[256];
    struct mw_conn *c = mw_lua_check_conn(L, 1);
    const char *key = luaL_checkstring(L, 2);
    const char *json = c ? mw_conn_attr_get(c, key) : NULL;
    if (!json || mw_json_decode(L, json, strlen(json), err, sizeof err) < 0)
        lua_pushnil(L);
    return 1;
}

static int l_tostring(lua_State *L)
{
    lua_pushfstring(L, "conn(%s)", check_lconn(L, 1)->id);
    return 1;
}

/* Fields: id, user, remote, route, claims, closed; anything else is a method. */
static int l_index(lua_State *L)
{
    struct lconn *u = check_lconn(L, 1);
    const char *k = luaL_checkstring(L, 2);
    if (strcmp(k, "id") == 0) {
        lua_pushstring(L, u->id);
        return 1;
    }
    /* The connection is looked up for the fields only: a method call (conn:send)
     * looks it up itself. */
    bool field = strcmp(k, "user") == 0 || strcmp(k, "remote") == 0 || strcmp(k, "route") == 0 ||
                 strcmp(k, "claims") == 0 || strcmp(k, "closed") == 0;
    struct mw_conn *c = field ? mw_conn_find(u->id) : NULL;
    if (!field) {
        lua_pushvalue(L, 2);
        lua_rawget(L, lua_upvalueindex(1));
    } else if (strcmp(k, "user") == 0) {
        if (c)
            lua_pushstring(L, c->user->id);
        else
            lua_pushnil(L);
    } else if (strcmp(k, "remote") == 0) {
        if (c)
            lua_pushstring(L, c->remote);
        else
            lua_pushnil(L);
    } else if (strcmp(k, "route") == 0) {
        if (c)
            lua_pushstring(L, c->route->cfg->path);
        else
            lua_pushnil(L);
    } else if (strcmp(k, "claims") == 0) { /* the verified token's claims, or nil */
        char err[128];
        if (!c || !c->claims_json ||
            mw_json_decode(L, c->claims_json, strlen(c->claims_json), err, sizeof err) < 0)
            lua_pushnil(L);
    } else {
        lua_pushboolean(L, !c || !mw_conn_is_open(c));
    }
    return 1;
}

int luaopen_moonwire_conn(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "send", l_send },       { "close", l_close }, { "join", l_join },
        { "leave", l_leave },     { "in_room", l_in_room }, { "rooms", l_rooms },
        { "set", l_set },         { "get", l_get },     { NULL, NULL },
    };
    /* Weak cache: one userdata per live connection, so conns work as table keys. */
    lua_pushlightuserdata(L, &cache_key);
    lua_newtable(L);
    lua_newtable(L);
    lua_pushliteral(L, "v");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
    lua_pushlightuserdata(L, &ring_key);
    lua_newtable(L); /* grows with use, to RING_SIZE */
    lua_rawset(L, LUA_REGISTRYINDEX);

    luaL_newmetatable(L, CONN_MT);
    lua_newtable(L);
    luaL_register(L, NULL, methods);
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, l_index, 1);
    lua_setfield(L, -3, "__index");
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, -3, "__tostring");
    return 1; /* the methods table: apps may add helpers to it */
}
