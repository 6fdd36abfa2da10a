/* script.h - route scripts: one LuaJIT state per loaded version of a route's script,
 * every handler in its own coroutine, and the one wait/wake pair that every waiting
 * Lua API (sleep, store, redis) uses. The only file that resumes coroutines. */
#ifndef MW_SCRIPT_H
#define MW_SCRIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "base/buf.h"

struct mw_conn;
struct mw_route;

#define MW_SPARE_COROUTINES 16

struct mw_app {
    lua_State *L;
    struct mw_route *route;
    int refs;          /* the route's reference + one per waiting coroutine */
    int app_ref;       /* the table the script returned */
    int connect_ref, message_ref, disconnect_ref, reload_ref; /* router functions */
    char **files;      /* loaded from disk, for hot reload */
    size_t nfiles;
    void *vm;          /* the state's watchdog handle (watchdog.h) */
    /* Coroutines of message handlers that finished, kept for the next message: a
     * new one each time was a thread and its stack of garbage per message. */
    struct { lua_State *co; int ref; struct mw_co_rec *rec; } spare[MW_SPARE_COROUTINES];
    int nspare;
};

/* What a coroutine runs, for the answer when the watchdog stops it. */
enum { MW_RUN_OTHER = 0, MW_RUN_CONNECT = 1, MW_RUN_MESSAGE = 2 };

/* What the core keeps for a coroutine that answers a client message with an id
 * (lua_core.c), from core.dedup_begin until core.ack or core.dedup_end: in C, with the
 * coroutine (kept with it when it is reused, so its buffers are allocated once), not
 * in Lua tables and strings made per message. */
struct mw_co_rec {
    bool active;          /* an id is being answered: key and id are set */
    bool named;           /* ... in a named session: user and sid are set */
    bool has_token;       /* token is set (rooms.publish sends it along) */
    struct mw_buf key;    /* the id's key in the dedup windows, NUL-terminated */
    struct mw_buf id;     /* the id as JSON */
    struct mw_buf user, sid; /* the named session's user and id, NUL-terminated */
    struct mw_buf token;  /* the message token (history.h), NUL-terminated */
};
/* The record of coroutine L, created on first use with `create`; NULL when L is not
 * the coroutine being resumed (a coroutine.wrap inside a handler, a script's top
 * level), or without `create` when it has none. */
struct mw_co_rec *mw_co_rec(lua_State *L, bool create);

/* Creates a Lua state, loads lua/moonwire, runs the route's script. Returns the app,
 * or NULL with "file:line: message" in err. */
struct mw_app *mw_app_new(struct mw_route *route, const char *home, char *err, size_t errlen);
/* For `moonwire test`: a state made like mw_app_new's plus module moonwire.testing,
 * for route (a synthetic one the runner owns), running the test file at top level
 * (it registers its tests; no app is expected). NULL with "file:line: message" in err. */
struct mw_app *mw_app_new_test(struct mw_route *route, const char *home, const char *file,
                               char *err, size_t errlen);
void mw_app_decref(struct mw_app *a);
/* The app a Lua state belongs to. */
struct mw_app *mw_app_of(lua_State *L);

/* Events from the server; each runs the router in a coroutine of its own (a message
 * may get one that an earlier message's handler finished with). */
void mw_script_connect(struct mw_conn *c);
void mw_script_message(struct mw_conn *c, const char *payload, size_t len, bool binary);
void mw_script_disconnect(struct mw_conn *c);

/* A coroutine waiting for something. */
struct mw_wait {
    struct mw_app *app;
    int ref;            /* registry ref pinning the coroutine */
    char conn[24];      /* the connection whose message started it ("" for none) */
    char kind;          /* MW_RUN_* */
    struct mw_co_rec *rec; /* the coroutine's record, or NULL */
    /* Optional: releases what the wait holds (stops its timer...) without resuming,
     * when the connection closes first. Set it after mw_co_wait. Waits without one
     * are left to complete (a store reply comes soon). */
    void (*cancel)(struct mw_wait *w);
    struct mw_wait *next, *prev;
};

/* Called by a waiting API from inside a handler: registers the running coroutine as
 * waiting (raises a Lua error when L is not a handler coroutine). The API then returns
 * lua_yield(L, 0) and later calls mw_co_wake exactly once. */
void mw_co_wait(lua_State *L, struct mw_wait *w);
/* Raises the same error mw_co_wait would, without registering anything: call it
 * before allocating the struct that embeds the wait (w must not move once waiting). */
void mw_co_check_wait(lua_State *L);
/* Whether L could wait: it is the running handler's coroutine. */
bool mw_co_can_wait(lua_State *L);
/* Drops a waiting coroutine without resuming it (shutdown): unpins it, frees its
 * record and releases the app. */
void mw_co_drop(struct mw_wait *w);
/* The waiting coroutine's thread: push the results on it, then mw_co_wake. */
lua_State *mw_co_thread(const struct mw_wait *w);
/* Resumes it with nargs values pushed on its stack. */
void mw_co_wake(struct mw_wait *w, int nargs);

/* A Lua API call whose C side completes through a callback, either before it returns
 * (memory backends) or later from the loop (Redis): store, inbox, history. The API
 * allocates it with mw_co_call_new, starts the request with the call as the callback's
 * ud, and returns mw_co_call_finish(L, c). The completion pushes its results onto
 * mw_co_call_thread(c) and then calls mw_co_call_done(c, n). A request that may
 * complete later must only be started where waiting is possible (mw_co_check_wait
 * first, before anything that would need undoing). */
struct mw_co_call {
    lua_State *L;       /* the calling thread, while the request is being started */
    struct mw_wait wait;
    bool in_call;       /* the completion runs inside the API function */
    bool done;
    int nret;
};
struct mw_co_call *mw_co_call_new(lua_State *L);
lua_State *mw_co_call_thread(struct mw_co_call *c);
void mw_co_call_done(struct mw_co_call *c, int nret);
/* The results, when the request completed at once (c is freed); else the coroutine
 * waits for them (lua_yield). */
int mw_co_call_finish(lua_State *L, struct mw_co_call *c);
/* The calling coroutine's record (mw_co_rec), from the completion. */
struct mw_co_rec *mw_co_call_rec(struct mw_co_call *c);

/* Runs the function at registry ref fn_ref in a new coroutine of app a, belonging
 * to no connection (timers). */
void mw_script_run_ref(struct mw_app *a, int fn_ref);

/* Cancels the waits of coroutines started by messages of that connection (it
 * closed): a handler waiting forever must not outlive its connection. */
void mw_script_cancel_conn(const char *conn_id);

/* Compiles the route's script again into a fresh state. On success new events go to
 * it, its `reload` handler runs, and the old state is retired (its timers cancelled;
 * freed once its last waiting coroutine finishes). On failure the old code keeps
 * serving. Returns 0, or -1 with "file:line: message" in err. */
int mw_script_reload(struct mw_route *route, const char *home, char *err, size_t errlen);

/* Files the state loaded (the script and every module found through package.path):
 * what hot reload watches. */
size_t mw_app_files(const struct mw_app *a, const char *const **files);

/* Coroutines waiting right now (sleep, store, ...). */
uint32_t mw_script_waiting(void);

/* Slow handler threshold (ms) and counters. */
extern uint64_t mw_script_slow_ms;

#endif
