/* lua_timer.c - module moonwire.timer: after(seconds, fn) and every(seconds, fn).
 *
 * Each firing runs fn in a new coroutine of the app that created the timer, so a
 * timer callback may wait (sleep, store) like a handler. A timer keeps its app state
 * alive; hot reload cancels the retired state's timers (the new script starts its own). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <uv.h>

#include "lua/lua_api.h"
#include "base/map.h"
#include "lua/script.h"
#include "base/util.h"

#define TIMER_MT "moonwire.timer"

struct timer {
    uv_timer_t handle; /* first: the close callback frees the struct */
    struct mw_app *app;
    int fn_ref;
    char id[24];
    bool repeat;
};

static struct mw_map timers; /* id -> struct timer, while pending */
static uint64_t next_id = 1;

static void on_closed(uv_handle_t *h)
{
    free(h);
}

/* Stops and releases a timer (not from inside its own callback's resume). */
static void timer_end(struct timer *t)
{
    mw_map_del(&timers, t->id);
    uv_timer_stop(&t->handle);
    luaL_unref(t->app->L, LUA_REGISTRYINDEX, t->fn_ref);
    mw_app_decref(t->app);
    uv_close((uv_handle_t *)&t->handle, on_closed);
}

static void on_fire(uv_timer_t *h)
{
    struct timer *t = (struct timer *)h;
    struct mw_app *a = t->app;
    int fn_ref = t->fn_ref;
    if (t->repeat) {
        mw_script_run_ref(a, fn_ref); /* may cancel t: it is looked up again by id */
        return;
    }
    /* One-shot: detach first so that the callback sees it as done. */
    a->refs++;
    t->fn_ref = LUA_NOREF;
    timer_end(t);
    mw_script_run_ref(a, fn_ref);
    luaL_unref(a->L, LUA_REGISTRYINDEX, fn_ref);
    mw_app_decref(a);
}

static int start(lua_State *L, bool repeat)
{
    lua_Number secs = luaL_checknumber(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    if (!(secs >= 0) || secs > 86400 * 365)
        return luaL_argerror(L, 1, "seconds must be between 0 and one year");
    if (repeat && secs < 0.001)
        return luaL_argerror(L, 1, "an every() interval must be at least 0.001 s");
    struct mw_app *a = mw_app_of(L);
    if (!a)
        return luaL_error(L, "timers need a running app");
    struct timer *t = mw_calloc(1, sizeof *t);
    t->app = a;
    a->refs++;
    t->repeat = repeat;
    snprintf(t->id, sizeof t->id, "%llu", (unsigned long long)next_id++);
    lua_pushvalue(L, 2);
    t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    uint64_t ms = (uint64_t)llround(secs * 1000.0);
    uv_timer_init(uv_default_loop(), &t->handle);
    uv_timer_start(&t->handle, on_fire, ms, repeat ? ms : 0);
    mw_map_put(&timers, t->id, t);

    char *id = lua_newuserdata(L, sizeof t->id);
    snprintf(id, sizeof t->id, "%s", t->id);
    luaL_getmetatable(L, TIMER_MT);
    lua_setmetatable(L, -2);
    return 1;
}

/* timer.after(seconds, fn) -> handle */
static int l_after(lua_State *L)
{
    return start(L, false);
}

/* timer.every(seconds, fn) -> handle */
static int l_every(lua_State *L)
{
    return start(L, true);
}

/* handle:cancel() -> true when it was still pending */
static int l_cancel(lua_State *L)
{
    const char *id = luaL_checkudata(L, 1, TIMER_MT);
    struct timer *t = mw_map_get(&timers, id);
    if (t)
        timer_end(t);
    lua_pushboolean(L, t != NULL);
    return 1;
}

static int l_pending(lua_State *L)
{
    const char *id = luaL_checkudata(L, 1, TIMER_MT);
    lua_pushboolean(L, mw_map_get(&timers, id) != NULL);
    return 1;
}

/* Cancels every timer of an app (hot reload retired it, or shutdown). */
void mw_lua_timer_cancel_app(struct mw_app *a)
{
    struct timer **mine = mw_malloc((timers.len ? timers.len : 1) * sizeof *mine);
    uint32_t n = 0;
    for (uint32_t i = 0; i < timers.cap; i++) /* collect first: ending edits the map */
        if (timers.slots[i].key && (!a || ((struct timer *)timers.slots[i].val)->app == a))
            mine[n++] = timers.slots[i].val;
    for (uint32_t i = 0; i < n; i++)
        timer_end(mine[i]);
    free(mine);
    if (!a)
        mw_map_free(&timers);
}

int luaopen_moonwire_timer(lua_State *L)
{
    static const luaL_Reg fns[] = { { "after", l_after }, { "every", l_every }, { NULL, NULL } };
    static const luaL_Reg methods[] = { { "cancel", l_cancel }, { "pending", l_pending },
                                        { NULL, NULL } };
    luaL_newmetatable(L, TIMER_MT);
    lua_newtable(L);
    luaL_register(L, NULL, methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    lua_newtable(L);
    luaL_register(L, NULL, fns);
    return 1;
}
