/* lua_inbox.c - module moonwire.inbox: users' notification inboxes (inbox.h) for Lua.
 *
 *   inbox.push(user, data) -> id | nil, err      stores and delivers live
 *   inbox.list(user)       -> items | nil, err   unread, oldest first: {id, ts, data}
 *   inbox.read(user, ids)  -> ids | nil, err     removes; returns the ids that went
 *
 * Wrong arguments raise; runtime failures ("unavailable": Redis down) return nil, err.
 * Like moonwire.store, a call returns at once when the inbox answers at once (memory)
 * and yields the handler's coroutine while Redis answers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "base/buf.h"
#include "rooms/inbox.h"
#include "lua/lua_api.h"
#include "base/lua_json.h"
#include "lua/script.h"
#include "store/store.h"
#include "base/util.h"

static const char *check_user(lua_State *L, const char *fn)
{
    size_t len;
    const char *user = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &len) : NULL;
    const char *why = user ? mw_inbox_user_error(user, len) : "user must be a string";
    if (why || strlen(user) != len)
        luaL_error(L, "inbox.%s: %s", fn, why ? why : "user must not contain NUL bytes");
    return user;
}

/* Pushes the results for res: the id (push), the decoded JSON array (list, read), or
 * nil and the error. */
static int push_result(lua_State *L, const struct mw_inbox_result *res)
{
    char err[128];
    if (res->err) {
        lua_pushnil(L);
        lua_pushstring(L, mw_inbox_strerror(res->err));
        return 2;
    }
    if (res->id) {
        lua_pushstring(L, res->id);
        return 1;
    }
    if (mw_json_decode(L, res->json, res->len, err, sizeof err) < 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "bad inbox data: %s", err);
        return 2;
    }
    return 1;
}

static void on_done(void *ud, const struct mw_inbox_result *res)
{
    struct mw_co_call *c = ud;
    mw_co_call_done(c, push_result(mw_co_call_thread(c), res));
}

/* Refuses to start what cannot finish where waiting is impossible (load time). */
static void check_wait(lua_State *L)
{
    if (mw_store_on_redis())
        mw_co_check_wait(L);
}

enum op { PUSH, LIST, READ };

struct args {
    const char *user;
    struct mw_buf data;                 /* push */
    const char *ids[MW_INBOX_MAX_IDS];  /* read */
    size_t lens[MW_INBOX_MAX_IDS];
    size_t nids;
};

/* Runs the request, returning its Lua results at once or yielding until Redis
 * answers. */
static int run(lua_State *L, enum op op, struct args *a)
{
    struct mw_co_call *c = mw_co_call_new(L);
    switch (op) {
    case PUSH: mw_inbox_push(a->user, a->data.p, a->data.len, on_done, c); break;
    case LIST: mw_inbox_list(a->user, on_done, c); break;
    default: mw_inbox_read(a->user, a->ids, a->lens, a->nids, on_done, c); break;
    }
    mw_buf_free(&a->data);
    return mw_co_call_finish(L, c);
}

static int l_push(lua_State *L)
{
    char err[256];
    struct args a = { .user = check_user(L, "push") };
    if (lua_isnoneornil(L, 2))
        return luaL_error(L, "inbox.push: data must not be nil");
    check_wait(L);
    if (mw_json_encode(L, 2, &a.data, err, sizeof err) < 0) {
        mw_buf_free(&a.data);
        return luaL_error(L, "inbox.push: data cannot be encoded: %s", err);
    }
    if (a.data.len > mw_inbox_max_item()) {
        size_t len = a.data.len;
        mw_buf_free(&a.data);
        return luaL_error(L, "inbox.push: data is %d bytes of JSON, over inbox.max_item (%d)",
                          (int)len, (int)mw_inbox_max_item());
    }
    return run(L, PUSH, &a);
}

static int l_list(lua_State *L)
{
    struct args a = { .user = check_user(L, "list") };
    check_wait(L);
    return run(L, LIST, &a);
}

/* ids: an array of strings or integers (integers as their decimal text). */
static int l_read(lua_State *L)
{
    struct args a = { .user = check_user(L, "read") };
    luaL_checktype(L, 2, LUA_TTABLE);
    size_t n = lua_objlen(L, 2);
    if (n > MW_INBOX_MAX_IDS)
        return luaL_error(L, "inbox.read: at most %d ids at a time", MW_INBOX_MAX_IDS);
    lua_settop(L, 2);
    lua_createtable(L, (int)n, 0); /* 3: the id texts, alive until the request is sent */
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, 2, (int)i + 1);
        double v = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : NAN;
        if (v == floor(v) && fabs(v) < 9007199254740992.0) {
            char num[32];
            snprintf(num, sizeof num, "%.0f", v);
            lua_pop(L, 1);
            lua_pushstring(L, num);
        } else if (lua_type(L, -1) != LUA_TSTRING) {
            return luaL_error(L, "inbox.read: ids must be strings or integers");
        }
        a.ids[i] = lua_tolstring(L, -1, &a.lens[i]);
        if (a.lens[i] < 1 || a.lens[i] > MW_INBOX_MAX_ID)
            return luaL_error(L, "inbox.read: an id must be 1..%d bytes", MW_INBOX_MAX_ID);
        lua_rawseti(L, 3, (int)i + 1);
    }
    a.nids = n;
    check_wait(L);
    return run(L, READ, &a);
}

int luaopen_moonwire_inbox(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "push", l_push }, { "list", l_list }, { "read", l_read }, { NULL, NULL },
    };
    lua_newtable(L);
    luaL_register(L, NULL, fns);
    return 1;
}
