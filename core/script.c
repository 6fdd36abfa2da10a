/* script.c - LuaJIT states for route scripts and the coroutine scheduler.
 *
 * Every event (connect, message, disconnect) runs lua/moonwire/router.lua in a fresh
 * coroutine. A waiting API calls mw_co_wait and yields; whoever it waited for calls
 * mw_co_wake from the loop. Only this file calls lua_resume. */
#include "script.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>
#include <uv.h>

#include "conn.h"
#include "log.h"
#include "lua_api.h"
#include "lua_json.h"
#include "server.h"
#include "util.h"

#define APP_KEY "moonwire.app"

uint64_t mw_script_slow_ms = 100;

/* The coroutine being resumed right now, so that a waiting API can find its ref. */
static struct {
    struct mw_app *app;
    lua_State *co;
    int ref;
    bool waiting;
} current;

struct mw_app *mw_app_of(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, APP_KEY);
    struct mw_app *a = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return a;
}

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
    return 1;
}

/* Refuses new globals: apps keep state in locals (STYLE.md). */
static int global_newindex(lua_State *L)
{
    return luaL_error(L, "assignment to undeclared global '%s' (use local)",
                      lua_tostring(L, 2) ? lua_tostring(L, 2) : "?");
}

static void lock_globals(lua_State *L)
{
    lua_pushvalue(L, LUA_GLOBALSINDEX);
    lua_newtable(L);
    lua_pushcfunction(L, global_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
}

static void preload(lua_State *L, const char *name, lua_CFunction fn)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, fn);
    lua_setfield(L, -2, name);
    lua_pop(L, 2);
}

static void set_path(lua_State *L, const char *home, const char *script)
{
    char dir[4096], path[12288];
    snprintf(dir, sizeof dir, "%s", script);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    snprintf(path, sizeof path, "%s/lua/?.lua;%s/lua/?/init.lua;%s/?.lua;%s/?/init.lua", home,
             home, dir, dir);
    lua_getglobal(L, "package");
    lua_pushstring(L, path);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, "");
    lua_setfield(L, -2, "cpath");
    lua_pop(L, 1);
}

/* Runs the function on top of the stack with a traceback handler; leaves nresults. */
static int pcall_tb(lua_State *L, int nargs, int nresults)
{
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    int rc = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    return rc;
}

static int ref_router_fn(lua_State *L, const char *name)
{
    lua_getfield(L, -1, name);
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Copies the first line of a Lua error ("file:line: message") into err. */
static void first_line(char *err, size_t errlen, const char *msg)
{
    const char *nl = strchr(msg, '\n');
    size_t n = nl ? (size_t)(nl - msg) : strlen(msg);
    snprintf(err, errlen, "%.*s", (int)n, msg);
}

struct mw_app *mw_app_new(struct mw_route *route, const char *home, char *err, size_t errlen)
{
    const char *script = route->cfg->script;
    lua_State *L = luaL_newstate();
    if (!L) {
        snprintf(err, errlen, "%s: cannot create a Lua state", script);
        return NULL;
    }
    struct mw_app *a = mw_calloc(1, sizeof *a);
    a->L = L;
    a->route = route;
    a->refs = 1;
    luaL_openlibs(L);
    lua_pushlightuserdata(L, a);
    lua_setfield(L, LUA_REGISTRYINDEX, APP_KEY);
    set_path(L, home, script);
    preload(L, "moonwire.json", luaopen_moonwire_json);
    preload(L, "moonwire.core", luaopen_moonwire_core);
    preload(L, "moonwire.conn", luaopen_moonwire_conn);
    preload(L, "moonwire.rooms", luaopen_moonwire_rooms);

    lua_getglobal(L, "require");
    lua_pushstring(L, "moonwire.router");
    if (pcall_tb(L, 1, 1) != 0) {
        first_line(err, errlen, lua_tostring(L, -1));
        goto fail;
    }
    a->connect_ref = ref_router_fn(L, "connect");
    a->message_ref = ref_router_fn(L, route->cfg->protocol == MW_PROTO_RAW ? "raw" : "message");
    a->disconnect_ref = ref_router_fn(L, "disconnect");
    lua_pop(L, 1);

    if (luaL_loadfile(L, script) != 0) {
        first_line(err, errlen, lua_tostring(L, -1));
        goto fail;
    }
    if (pcall_tb(L, 0, 1) != 0) {
        first_line(err, errlen, lua_tostring(L, -1));
        goto fail;
    }
    lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
    lua_getfield(L, -1, "moonwire.router");
    lua_getfield(L, -1, "check_app");
    lua_pushvalue(L, -4);
    if (pcall_tb(L, 1, 1) != 0) {
        char msg[512];
        first_line(msg, sizeof msg, lua_tostring(L, -1));
        snprintf(err, errlen, "%s: %s", script, msg);
        goto fail;
    }
    lua_pop(L, 3);
    a->app_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lock_globals(L);
    return a;
fail:
    lua_close(L);
    free(a);
    return NULL;
}

void mw_app_decref(struct mw_app *a)
{
    if (--a->refs > 0)
        return;
    lua_close(a->L);
    free(a);
}

/* Resumes co; when it finishes (or fails), unpins it. */
static void resume(struct mw_app *a, lua_State *co, int ref, int nargs)
{
    typeof(current) saved = current;
    current.app = a;
    current.co = co;
    current.ref = ref;
    current.waiting = false;

    uint64_t t0 = mw_now_ms();
    int st = lua_resume(co, nargs);
    uint64_t took = mw_now_ms() - t0;
    bool waiting = current.waiting;
    current = saved;

    if (took >= mw_script_slow_ms) {
        a->route->stats.slow_handlers++;
        mw_log_warn("slow handler", "route=%s ms=%llu", a->route->cfg->path,
                    (unsigned long long)took);
    }
    if (st == LUA_YIELD && waiting)
        return; /* pinned until mw_co_wake */
    if (st == LUA_YIELD) {
        a->route->stats.lua_errors++;
        mw_log_error("lua error", "route=%s err=\"handler yielded outside a moonwire wait "
                     "(coroutine.yield at handler level)\"", a->route->cfg->path);
    } else if (st != 0) {
        a->route->stats.lua_errors++;
        luaL_traceback(a->L, co, lua_tostring(co, -1), 0);
        mw_log_error("lua error", "route=%s err=\"%s\"", a->route->cfg->path,
                     lua_tostring(a->L, -1));
        lua_pop(a->L, 1);
    }
    luaL_unref(a->L, LUA_REGISTRYINDEX, ref);
}

/* Starts the router function `fn_ref` in a new coroutine with (app, conn, ...). */
static lua_State *spawn(struct mw_app *a, int fn_ref, struct mw_conn *c, int *ref)
{
    lua_State *L = a->L;
    lua_State *co = lua_newthread(L);
    *ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_rawgeti(co, LUA_REGISTRYINDEX, fn_ref);
    lua_rawgeti(co, LUA_REGISTRYINDEX, a->app_ref);
    mw_lua_push_conn(co, c);
    return co;
}

void mw_script_connect(struct mw_conn *c)
{
    struct mw_app *a = c->route->app;
    int ref;
    lua_State *co = spawn(a, a->connect_ref, c, &ref);
    resume(a, co, ref, 2);
}

void mw_script_message(struct mw_conn *c, const char *payload, size_t len, bool binary)
{
    struct mw_app *a = c->route->app;
    int ref;
    lua_State *co = spawn(a, a->message_ref, c, &ref);
    lua_pushlstring(co, payload, len);
    lua_pushboolean(co, binary);
    resume(a, co, ref, 4);
}

void mw_script_disconnect(struct mw_conn *c)
{
    struct mw_app *a = c->route->app;
    int ref;
    lua_State *co = spawn(a, a->disconnect_ref, c, &ref);
    resume(a, co, ref, 2);
}

void mw_co_wait(lua_State *L, struct mw_wait *w)
{
    if (!current.co || current.co != L)
        luaL_error(L, "cannot wait here: only inside a handler's coroutine "
                      "(not at load time, not inside coroutine.wrap)");
    current.waiting = true;
    w->app = current.app;
    w->ref = current.ref;
    w->app->refs++;
}

lua_State *mw_co_thread(const struct mw_wait *w)
{
    lua_State *L = w->app->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, w->ref);
    lua_State *co = lua_tothread(L, -1);
    lua_pop(L, 1);
    return co;
}

void mw_co_wake(struct mw_wait *w, int nargs)
{
    struct mw_app *a = w->app;
    resume(a, mw_co_thread(w), w->ref, nargs);
    mw_app_decref(a);
}
