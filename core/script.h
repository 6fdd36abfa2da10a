/* script.h - route scripts: one LuaJIT state per loaded version of a route's script,
 * every handler in its own coroutine, and the one wait/wake pair that every waiting
 * Lua API (sleep, store, redis) uses. The only file that resumes coroutines. */
#ifndef MW_SCRIPT_H
#define MW_SCRIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

struct mw_conn;
struct mw_route;

struct mw_app {
    lua_State *L;
    struct mw_route *route;
    int refs;          /* the route's reference + one per waiting coroutine */
    int app_ref;       /* the table the script returned */
    int connect_ref, message_ref, disconnect_ref; /* router functions */
};

/* Creates a Lua state, loads lua/moonwire, runs the route's script. Returns the app,
 * or NULL with "file:line: message" in err. */
struct mw_app *mw_app_new(struct mw_route *route, const char *home, char *err, size_t errlen);
void mw_app_decref(struct mw_app *a);
/* The app a Lua state belongs to. */
struct mw_app *mw_app_of(lua_State *L);

/* Events from the server; each runs the router in a new coroutine. */
void mw_script_connect(struct mw_conn *c);
void mw_script_message(struct mw_conn *c, const char *payload, size_t len, bool binary);
void mw_script_disconnect(struct mw_conn *c);

/* A coroutine waiting for something. */
struct mw_wait {
    struct mw_app *app;
    int ref; /* registry ref pinning the coroutine */
};

/* Called by a waiting API from inside a handler: registers the running coroutine as
 * waiting (raises a Lua error when L is not a handler coroutine). The API then returns
 * lua_yield(L, 0) and later calls mw_co_wake exactly once. */
void mw_co_wait(lua_State *L, struct mw_wait *w);
/* The waiting coroutine's thread: push the results on it, then mw_co_wake. */
lua_State *mw_co_thread(const struct mw_wait *w);
/* Resumes it with nargs values pushed on its stack. */
void mw_co_wake(struct mw_wait *w, int nargs);

/* Slow handler threshold (ms) and counters. */
extern uint64_t mw_script_slow_ms;

#endif
