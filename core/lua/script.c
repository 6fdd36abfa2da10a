/* script.c - LuaJIT states for route scripts and the coroutine scheduler.
 *
 * Every event (connect, message, disconnect) runs lua/moonwire/router.lua in a fresh
 * coroutine. A waiting API calls mw_co_wait and yields; whoever it waited for calls
 * mw_co_wake from the loop. Only this file calls lua_resume. */
#include "lua/script.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>
#include <uv.h>

#include "net/conn.h"
#include "base/log.h"
#include "lua/lua_api.h"
#include "base/lua_json.h"
#include "base/lua_reg.h"
#include "base/context.h"
#include "net/session.h"
#include "net/session_redis.h"
#include "base/util.h"
#include "lua/watchdog.h"

uint64_t mw_script_slow_ms = 100;
const struct mw_hist_le mw_handler_le = {
    10, { 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5 },
};
static uint32_t nwaiting;

/* The coroutine being resumed right now, so that a waiting API can find its ref. */
static struct {
    struct mw_app *app;
    lua_State *co;
    int ref;
    const char *conn; /* the connection that started it, "" for none */
    char kind;        /* MW_RUN_* */
    bool waiting;
    struct mw_co_rec *rec; /* co's record (mw_co_rec), or NULL */
} current;

static struct mw_wait *waits; /* every waiting coroutine */

struct mw_app *mw_app_of(lua_State *L)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, MW_REG_APP);
    struct mw_app *a = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return a;
}

struct mw_co_rec *mw_co_rec(lua_State *L, bool create)
{
    if (!current.co || current.co != L)
        return NULL;
    if (!current.rec && create)
        current.rec = mw_calloc(1, sizeof *current.rec);
    return current.rec;
}

/* Forgets what the record holds, keeping its buffers for the next message. */
static void rec_clear(struct mw_co_rec *r)
{
    r->active = r->named = r->has_token = false;
}

static void rec_free(struct mw_co_rec *r)
{
    if (!r)
        return;
    mw_buf_free(&r->key);
    mw_buf_free(&r->id);
    mw_buf_free(&r->user);
    mw_buf_free(&r->sid);
    mw_buf_free(&r->token);
    free(r);
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

/* pcall_tb under the watchdog: code that runs too long fails with an error. */
static int watched_pcall(struct mw_app *a, lua_State *L, int nargs, int nresults)
{
    mw_watchdog_enter(L, a->vm, mw_now_us());
    int rc = pcall_tb(L, nargs, nresults);
    char where[160];
    if (mw_watchdog_leave(where, sizeof where))
        mw_log_error("lua stopped by the watchdog", "route=%s at=%s", a->route->cfg->path, where);
    return rc;
}

static void add_file(struct mw_app *a, const char *path)
{
    a->files = mw_realloc(a->files, (a->nfiles + 1) * sizeof *a->files);
    a->files[a->nfiles++] = mw_strdup(path);
}

/* package.loaders[2] replacement: finds a module on package.path like the standard
 * one, and records the file so that hot reload watches it. */
static int track_searcher(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchpath");
    lua_pushstring(L, name);
    lua_getfield(L, -3, "path");
    lua_call(L, 2, 2);
    if (lua_isnil(L, -2))
        return 1; /* the "no file ..." message */
    const char *path = lua_tostring(L, -2);
    if (luaL_loadfile(L, path) != 0)
        return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, path,
                          lua_tostring(L, -1));
    struct mw_app *a = mw_app_of(L);
    if (a)
        add_file(a, path);
    return 1;
}

static void install_searcher(lua_State *L)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaders");
    lua_pushcfunction(L, track_searcher);
    lua_rawseti(L, -2, 2);
    lua_pop(L, 2);
}

size_t mw_app_files(const struct mw_app *a, const char *const **files)
{
    *files = (const char *const *)a->files;
    return a->nfiles;
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

static void free_files(struct mw_app *a)
{
    for (size_t i = 0; i < a->nfiles; i++)
        free(a->files[i]);
    free(a->files);
    a->files = NULL;
    a->nfiles = 0;
}

/* The state every script runs in (standard libraries, package.path for home and the
 * script's directory, the moonwire modules, the router, globals locked), then the
 * script run at top level with its first result left on the stack. `testing` also
 * preloads moonwire.testing (moonwire test). Returns the app holding one reference,
 * or NULL with "file:line: message" in err. */
static struct mw_app *app_load(struct mw_route *route, const char *home, const char *script,
                               bool testing, char *err, size_t errlen)
{
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
    mw_json_lazy_install(L); /* before any module keeps its own pairs */
    a->vm = mw_watchdog_prepare(L);
    lua_pushlightuserdata(L, a);
    lua_rawseti(L, LUA_REGISTRYINDEX, MW_REG_APP);
    set_path(L, home, script);
    install_searcher(L);
    add_file(a, script);
    preload(L, "moonwire.json", luaopen_moonwire_json);
    preload(L, "moonwire.core", luaopen_moonwire_core);
    preload(L, "moonwire.conn", luaopen_moonwire_conn);
    preload(L, "moonwire.rooms", luaopen_moonwire_rooms);
    preload(L, "moonwire.store", luaopen_moonwire_store);
    preload(L, "moonwire.redis", luaopen_moonwire_redis);
    preload(L, "moonwire.timer", luaopen_moonwire_timer);
    preload(L, "moonwire.inbox", luaopen_moonwire_inbox);
    preload(L, "moonwire.admin", luaopen_moonwire_admin);
    if (testing)
        preload(L, "moonwire.testing", luaopen_moonwire_testing);

    lua_getglobal(L, "require");
    lua_pushstring(L, "moonwire.router");
    if (watched_pcall(a, L, 1, 1) != 0) {
        first_line(err, errlen, lua_tostring(L, -1));
        goto fail;
    }
    a->connect_ref = ref_router_fn(L, "connect");
    a->message_ref = ref_router_fn(L, route->cfg->protocol == MW_PROTO_RAW ? "raw" : "message");
    a->disconnect_ref = ref_router_fn(L, "disconnect");
    a->reload_ref = ref_router_fn(L, "reload");
    lua_pop(L, 1);

    lock_globals(L); /* from here on, also for the script's top level */
    if (luaL_loadfile(L, script) != 0) {
        first_line(err, errlen, lua_tostring(L, -1));
        goto fail;
    }
    if (watched_pcall(a, L, 0, 1) != 0) { /* the script's top level */
        first_line(err, errlen, lua_tostring(L, -1));
        goto fail;
    }
    a->app_ref = LUA_NOREF;
    return a;
fail:
    lua_close(L);
    free_files(a);
    free(a);
    return NULL;
}

struct mw_app *mw_app_new(struct mw_route *route, const char *home, char *err, size_t errlen)
{
    const char *script = route->cfg->script;
    struct mw_app *a = app_load(route, home, script, false, err, errlen);
    if (!a)
        return NULL;
    lua_State *L = a->L;
    lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
    lua_getfield(L, -1, "moonwire.router");
    lua_getfield(L, -1, "check_app");
    lua_pushvalue(L, -4);
    if (watched_pcall(a, L, 1, 1) != 0) {
        char msg[512];
        first_line(msg, sizeof msg, lua_tostring(L, -1));
        snprintf(err, errlen, "%s: %s", script, msg);
        mw_app_decref(a);
        return NULL;
    }
    lua_pop(L, 3);
    a->app_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return a;
}

struct mw_app *mw_app_new_test(struct mw_route *route, const char *home, const char *file,
                               char *err, size_t errlen)
{
    struct mw_app *a = app_load(route, home, file, true, err, errlen);
    if (a)
        lua_pop(a->L, 1); /* a test file registers tests; what it returns is ignored */
    return a;
}

void mw_app_decref(struct mw_app *a)
{
    if (--a->refs > 0)
        return;
    for (int i = 0; i < a->nspare; i++)
        rec_free(a->spare[i].rec);
    lua_close(a->L);
    free_files(a);
    free(a);
}

/* Time on the loop per resume: the histogram, and a warning for slow ones (a
 * runaway handler must not freeze the server silently). */
static void account(struct mw_app *a, uint64_t took_us, const char *conn)
{
    struct mw_route_stats *st = &a->route->stats;
    mw_hist_observe(&st->handler, &mw_handler_le, (double)took_us / 1e6);
    if (took_us >= mw_script_slow_ms * 1000) {
        st->slow_handlers++;
        mw_log_warn("slow handler", "route=%s conn=%s ms=%.1f", a->route->cfg->path,
                    conn[0] ? conn : "-", (double)took_us / 1000.0);
    }
}

uint32_t mw_script_waiting(void)
{
    return nwaiting;
}

/* A handler the watchdog stopped never got to its answer: the router's own error
 * path was stopped too. Answers for it as the router would have: a message gets
 * `internal` (with its id when it had one, recorded by core.dedup_begin, and that id
 * is closed in the session's window with this answer, so that a resend gets it
 * again); a connect handler's connection is closed with 1011. */
static void answer_stopped(struct mw_app *a, struct mw_co_rec *rec, const char *conn_id,
                           char kind)
{
    struct mw_conn *c = conn_id[0] ? mw_conn_find(conn_id) : NULL;
    lua_State *L = a->L;
    char err[128];
    if (kind == MW_RUN_CONNECT) {
        if (c && mw_conn_is_open(c))
            mw_conn_close(c, 1011, "internal error");
        return;
    }
    if (kind != MW_RUN_MESSAGE)
        return;
    bool active = rec && rec->active;
    int top = lua_gettop(L);
    lua_createtable(L, 0, 4);
    lua_pushliteral(L, "error");
    lua_setfield(L, -2, "type");
    if (active && mw_json_decode(L, rec->id.p, rec->id.len, err, sizeof err) == 0)
        lua_setfield(L, -2, "id");
    lua_pushliteral(L, "internal");
    lua_setfield(L, -2, "code");
    lua_pushliteral(L, "internal error");
    lua_setfield(L, -2, "message");
    struct mw_buf frame = { 0 };
    if (mw_json_encode(L, -1, &frame, err, sizeof err) == 0) {
        mw_buf_putc(&frame, '\0');
        if (active) {
            const char *key = rec->key.p, *user = rec->named ? rec->user.p : NULL,
                       *sid = rec->named ? rec->sid.p : NULL;
            struct mw_session *s = c ? c->session : NULL;
            if (!s && user && sid)
                s = mw_session_find(user, sid);
            if (s)
                mw_session_dedup_end(s, key, frame.p);
            if (user && sid) /* a named session: the cluster's window too */
                mw_session_redis_end(user, sid, key, frame.p, false);
            rec_clear(rec);
        }
        if (c && mw_conn_is_open(c))
            mw_conn_send_text(c, frame.p, frame.len - 1);
    }
    mw_buf_free(&frame);
    lua_settop(L, top);
}

/* Unpins a coroutine that is done, or keeps it for the next message: one that ran a
 * message handler to its end (a finished coroutine takes a new function like a new
 * one), with what lua_core.c keyed by it dropped. */
static void release(struct mw_app *a, lua_State *co, int ref, char kind, int st,
                    struct mw_co_rec *rec)
{
    if (st == 0 && kind == MW_RUN_MESSAGE && a->nspare < MW_SPARE_COROUTINES) {
        lua_settop(co, 0);
        if (rec)
            rec_clear(rec);
        a->spare[a->nspare].co = co;
        a->spare[a->nspare].ref = ref;
        a->spare[a->nspare].rec = rec;
        a->nspare++;
        return;
    }
    rec_free(rec);
    luaL_unref(a->L, LUA_REGISTRYINDEX, ref);
}

/* Resumes co under the watchdog; when it finishes (or fails), unpins it. */
static void resume(struct mw_app *a, lua_State *co, int ref, int nargs, const char *conn,
                   char kind, struct mw_co_rec *rec)
{
    typeof(current) saved = current;
    current.app = a;
    current.co = co;
    current.ref = ref;
    current.conn = conn;
    current.kind = kind;
    current.waiting = false;
    current.rec = rec;
    a->refs++; /* whatever the coroutine does, its state outlives this resume */

    uint64_t t0 = mw_now_us();
    mw_watchdog_enter(co, a->vm, t0);
    int st = lua_resume(co, nargs);
    char where[160];
    bool stopped = mw_watchdog_leave(where, sizeof where);
    uint64_t took = mw_now_us() - t0;
    bool waiting = current.waiting;
    rec = current.rec; /* made by the coroutine, or the one it had; a wait holds it */
    current = saved;
    account(a, took, conn);
    if (st == LUA_YIELD && waiting) {
        mw_app_decref(a); /* the wait holds its own reference */
        return;           /* pinned until mw_co_wake */
    }
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
        if (stopped) {
            mw_log_error("handler stopped by the watchdog", "route=%s conn=%s at=%s ms=%.0f",
                         a->route->cfg->path, conn[0] ? conn : "-", where, (double)took / 1000.0);
            answer_stopped(a, rec, conn, kind);
        }
    }
    release(a, co, ref, kind, st, rec);
    mw_app_decref(a);
}

/* A coroutine (a spare one, else a new one) running registry function fn_ref; *ref
 * pins it. */
static lua_State *spawn_fn(struct mw_app *a, int fn_ref, int *ref, struct mw_co_rec **rec)
{
    lua_State *L = a->L, *co;
    if (a->nspare) {
        a->nspare--;
        co = a->spare[a->nspare].co;
        *ref = a->spare[a->nspare].ref;
        *rec = a->spare[a->nspare].rec;
    } else {
        co = lua_newthread(L);
        *ref = luaL_ref(L, LUA_REGISTRYINDEX);
        *rec = NULL;
    }
    lua_rawgeti(co, LUA_REGISTRYINDEX, fn_ref);
    return co;
}

/* Starts the router function `fn_ref` in a new coroutine with (app, conn, ...). */
static lua_State *spawn(struct mw_app *a, int fn_ref, struct mw_conn *c, int *ref,
                        struct mw_co_rec **rec)
{
    lua_State *co = spawn_fn(a, fn_ref, ref, rec);
    lua_rawgeti(co, LUA_REGISTRYINDEX, a->app_ref);
    mw_lua_push_conn(co, c);
    return co;
}

static int get_field(lua_State *L)
{
    lua_gettable(L, 1);
    return 1;
}

/* Whether `app[name]` is set, as the router's `if not app.connect then return end`
 * sees it (protected: an app table may have an __index of its own). Without one the
 * router would do nothing, so connect and disconnect skip the coroutine: a third of
 * the Lua time per connection of an app like chat, which has neither. */
static bool app_has(struct mw_app *a, const char *name)
{
    lua_State *L = a->L;
    lua_pushcfunction(L, get_field);
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->app_ref);
    lua_pushstring(L, name);
    mw_watchdog_enter(L, a->vm, mw_now_us());
    bool has = lua_pcall(L, 2, 1, 0) != 0 || lua_toboolean(L, -1);
    mw_watchdog_leave(NULL, 0);
    lua_pop(L, 1);
    return has; /* on an error, let the router run and report it */
}

void mw_script_connect(struct mw_conn *c)
{
    struct mw_app *a = c->route->app;
    int ref;
    struct mw_co_rec *rec;
    if (!app_has(a, "connect"))
        return;
    lua_State *co = spawn(a, a->connect_ref, c, &ref, &rec);
    resume(a, co, ref, 2, c->id, MW_RUN_CONNECT, rec);
}

void mw_script_message(struct mw_conn *c, const char *payload, size_t len, bool binary)
{
    struct mw_app *a = c->route->app;
    int ref;
    struct mw_co_rec *rec;
    lua_State *co = spawn(a, a->message_ref, c, &ref, &rec);
    if (c->route->cfg->protocol == MW_PROTO_RAW) {
        lua_pushlstring(co, payload, len);
        lua_pushboolean(co, binary);
        resume(a, co, ref, 4, c->id, MW_RUN_MESSAGE, rec);
        return;
    }
    /* JSON: the router gets the decoded message (its data lazy), or nil and why
     * not, and whether it is an object (valid JSON is one when its first byte past
     * white space is '{': the router need not ask Lua); the frame's text never
     * becomes a Lua string. */
    char err[128];
    bool object = false;
    if (binary) {
        lua_pushnil(co);
        lua_pushnil(co);
    } else if (mw_json_decode_message(co, payload, len, err, sizeof err) < 0) {
        lua_pushnil(co);
        lua_pushstring(co, err);
    } else {
        lua_pushnil(co);
        size_t i = 0;
        while (i < len && (payload[i] == ' ' || payload[i] == '\t' || payload[i] == '\n' ||
                           payload[i] == '\r'))
            i++;
        object = i < len && payload[i] == '{';
    }
    lua_pushboolean(co, binary);
    lua_pushboolean(co, object);
    resume(a, co, ref, 6, c->id, MW_RUN_MESSAGE, rec);
}

void mw_script_disconnect(struct mw_conn *c)
{
    struct mw_app *a = c->route->app;
    int ref;
    /* In a named session the handlers run to the end: their replies are kept for the
     * client's resend after it reconnects (session.h). */
    if (!c->session || !mw_session_sid(c->session))
        mw_script_cancel_conn(c->id);
    if (!app_has(a, "disconnect"))
        return;
    struct mw_co_rec *rec;
    lua_State *co = spawn(a, a->disconnect_ref, c, &ref, &rec);
    resume(a, co, ref, 2, "", MW_RUN_OTHER, rec); /* may wait past the close: belongs to no connection */
}

void mw_script_run_ref(struct mw_app *a, int fn_ref)
{
    int ref;
    struct mw_co_rec *rec;
    lua_State *co = spawn_fn(a, fn_ref, &ref, &rec);
    resume(a, co, ref, 0, "", MW_RUN_OTHER, rec);
}

static void wait_unlink(struct mw_wait *w)
{
    nwaiting--;
    if (w->prev)
        w->prev->next = w->next;
    else
        waits = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->next = w->prev = NULL;
}

bool mw_co_can_wait(lua_State *L)
{
    return current.co && current.co == L;
}

void mw_co_check_wait(lua_State *L)
{
    if (!mw_co_can_wait(L))
        luaL_error(L, "cannot wait here: only inside a handler's coroutine "
                      "(not at load time, not inside coroutine.wrap)");
}

void mw_co_wait(lua_State *L, struct mw_wait *w)
{
    mw_co_check_wait(L);
    current.waiting = true;
    w->app = current.app;
    w->ref = current.ref;
    w->kind = current.kind;
    w->rec = current.rec;
    snprintf(w->conn, sizeof w->conn, "%s", current.conn);
    w->cancel = NULL;
    w->prev = NULL;
    w->next = waits;
    if (waits)
        waits->prev = w;
    waits = w;
    nwaiting++;
    w->app->refs++;
}

struct mw_co_call *mw_co_call_new(lua_State *L)
{
    struct mw_co_call *c = mw_calloc(1, sizeof *c);
    c->L = L;
    c->in_call = true;
    return c;
}

struct mw_co_rec *mw_co_call_rec(struct mw_co_call *c)
{
    return c->in_call ? mw_co_rec(c->L, true) : c->wait.rec;
}

lua_State *mw_co_call_thread(struct mw_co_call *c)
{
    return c->in_call ? c->L : mw_co_thread(&c->wait);
}

void mw_co_call_done(struct mw_co_call *c, int nret)
{
    if (c->in_call) { /* completed at once: the results go straight to the caller */
        c->done = true;
        c->nret = nret;
        return;
    }
    mw_co_wake(&c->wait, nret);
    free(c);
}

int mw_co_call_finish(lua_State *L, struct mw_co_call *c)
{
    c->in_call = false;
    if (c->done) {
        int n = c->nret;
        free(c);
        return n;
    }
    mw_co_wait(L, &c->wait); /* the API checked that it can wait: this cannot raise */
    return lua_yield(L, 0);
}

void mw_script_cancel_conn(const char *conn_id)
{
    struct mw_wait *w = waits, *next;
    for (; w; w = next) {
        next = w->next;
        if (!w->cancel || strcmp(w->conn, conn_id) != 0)
            continue;
        struct mw_app *a = w->app;
        int ref = w->ref;
        struct mw_co_rec *rec = w->rec;
        wait_unlink(w);
        w->cancel(w); /* may free w */
        rec_free(rec);
        luaL_unref(a->L, LUA_REGISTRYINDEX, ref);
        mw_app_decref(a);
    }
}

void mw_co_drop(struct mw_wait *w)
{
    struct mw_app *a = w->app;
    rec_free(w->rec);
    w->rec = NULL;
    luaL_unref(a->L, LUA_REGISTRYINDEX, w->ref);
    mw_app_decref(a);
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
    char conn[sizeof w->conn];
    memcpy(conn, w->conn, sizeof conn);
    wait_unlink(w);
    resume(a, mw_co_thread(w), w->ref, nargs, conn, w->kind, w->rec);
    mw_app_decref(a);
}

int mw_script_reload(struct mw_route *route, const char *home, char *err, size_t errlen)
{
    struct mw_app *fresh = mw_app_new(route, home, err, errlen);
    if (!fresh)
        return -1;
    struct mw_app *old = route->app;
    route->app = fresh;
    mw_lua_timer_cancel_app(old); /* the new script starts its own */
    mw_app_decref(old);           /* freed once its waiting coroutines are done */
    int ref;
    struct mw_co_rec *rec;
    lua_State *co = spawn_fn(fresh, fresh->reload_ref, &ref, &rec);
    lua_rawgeti(co, LUA_REGISTRYINDEX, fresh->app_ref);
    resume(fresh, co, ref, 1, "", MW_RUN_OTHER, rec);
    return 0;
}
