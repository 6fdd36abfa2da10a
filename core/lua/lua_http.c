/* lua_http.c - HTTP API calls answered by an app: `app:api(name, fn)` handlers (the
 * reservations app's venue snapshot, GET /api/venues/{venue}).
 *
 * A call runs router.api in a new coroutine of the app's state (mw_script_run_ref),
 * like a timer: it may wait on the store. The router always answers through `done`, a
 * C closure over a userdata that fires the C callback once; if the coroutine is
 * dropped without answering (shutdown while it waits), the userdata's __gc answers 503
 * so that the HTTP request is never left without an answer. */

#include <lauxlib.h>

#include "lua/lua_api.h"
#include "base/lua_json.h"
#include "lua/script.h"

#define CALL_MT "moonwire.http_call"

struct http_call {
    mw_lua_http_cb cb;
    void *ud;
    bool fired;
};

static void fire(struct http_call *hc, int status, const char *body, size_t len)
{
    if (hc->fired)
        return;
    hc->fired = true;
    hc->cb(hc->ud, status, body, len);
}

/* done(status, body) */
static int l_done(lua_State *L)
{
    struct http_call *hc = lua_touserdata(L, lua_upvalueindex(1));
    int status = (int)luaL_checkinteger(L, 1);
    size_t len;
    const char *body = luaL_checklstring(L, 2, &len);
    fire(hc, status, body, len);
    return 0;
}

static int l_gc(lua_State *L)
{
    static const char body[] = "{\"error\":\"unavailable\",\"message\":\"the server is "
                               "shutting down\"}\n";
    fire(luaL_checkudata(L, 1, CALL_MT), 503, body, sizeof body - 1);
    return 0;
}

/* Pushes router.<name> of a's state. */
static void push_router_fn(lua_State *L, const char *name)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
    lua_getfield(L, -1, "moonwire.router");
    lua_getfield(L, -1, name);
    lua_replace(L, -3);
    lua_pop(L, 1);
}

bool mw_lua_http_has(struct mw_app *a, const char *name)
{
    lua_State *L = a->L;
    int top = lua_gettop(L);
    push_router_fn(L, "has_api");
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->app_ref);
    lua_pushstring(L, name);
    bool has = lua_pcall(L, 2, 1, 0) == 0 && lua_toboolean(L, -1);
    lua_settop(L, top);
    return has;
}

void mw_lua_http_call(struct mw_app *a, const char *name, const char *args_json,
                      size_t args_len, mw_lua_http_cb cb, void *ud)
{
    char err[256];
    lua_State *L = a->L;
    int top = lua_gettop(L);
    push_router_fn(L, "api_call"); /* api_call(app, name, args, done) -> function */
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->app_ref);
    lua_pushstring(L, name);
    if (mw_json_decode(L, args_json, args_len, err, sizeof err) < 0)
        lua_newtable(L); /* our own text: cannot happen */
    struct http_call *hc = lua_newuserdata(L, sizeof *hc);
    hc->cb = cb;
    hc->ud = ud;
    hc->fired = false;
    if (luaL_newmetatable(L, CALL_MT)) {
        lua_pushcfunction(L, l_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    lua_pushcclosure(L, l_done, 1);
    lua_call(L, 4, 1);
    int ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_settop(L, top);
    mw_script_run_ref(a, ref); /* the coroutine holds the function from here on */
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
}
