/* lua_testing.c - module moonwire.testing: simulated clients for `moonwire test`.
 *
 * A client is a connection on a transport of its own (test_transport, conn.h): the
 * server runs it like a WebSocket (hello, the connect handler, messages, rooms,
 * disconnect), and every frame sent to it lands in the client's inbox here. next()
 * takes from the inbox and waits (mw_co_wait) only when it is empty.
 *
 * The transport runs inside the server's send path (a broadcast loop, a handler), so
 * it only queues. Waking a waiting next() is deferred to the loop (one idle handle):
 * test code never runs inside a broadcast. A connection the server closes goes the
 * way of every connection (unlinked and freed by the before-sleep hook).
 *
 * lua/moonwire/test.lua builds the test API (request, expect, assertions) on this. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <uv.h>

#include "base/buf.h"
#include "base/config.h"
#include "net/conn.h"
#include "base/ident.h"
#include "lua/lua_api.h"
#include "base/lua_json.h"
#include "lua/script.h"
#include "net/entry.h"
#include "server/testrun.h"
#include "base/util.h"

#define CLIENT_MT "moonwire.testing.client"
#define DEFAULT_TIMEOUT_S 1.0
#define MAX_TIMEOUT_S 86400.0

struct frame {
    struct frame *next;
    size_t len;
    bool binary;
    char data[];
};

struct waiter;

struct client {
    struct client *next, *prev; /* every client */
    struct mw_conn *conn;       /* NULL once the connection is gone */
    struct mw_app *app;         /* the test state that made it (no reference) */
    char id[24];
    char *user;
    bool raw;                   /* a raw route: payloads are not decoded */
    struct frame *head, *tail;  /* the inbox */
    struct waiter *waiter;      /* a next() waiting for the inbox */
    bool closed;                /* by the server or by the client */
    bool orphan;                /* its userdata was collected: free once gone */
    int close_code;
    char close_reason[64];
};

/* A next() waiting for a message, the close, or its timeout. */
struct waiter {
    uv_timer_t timer; /* first: the close callback frees the struct */
    struct mw_wait wait;
    struct client *cl;
};

/* The userdata: a box, because the client outlives it until its connection is gone. */
struct box {
    struct client *cl;
};

static struct client *clients;
static uv_idle_t kicker; /* runs the deferred work */
static bool kicker_ready;

/* The file being run (mw_lua_testing_run .. mw_lua_testing_end_file). */
static struct mw_app *cur_app;
static struct mw_test_counts *cur_counts;
static bool *cur_done;
static char cur_test[256];

/* ---- the inbox ---- */

static void inbox_push(struct client *cl, const char *p, size_t len, bool binary)
{
    struct frame *f = mw_malloc(sizeof *f + len);
    f->next = NULL;
    f->len = len;
    f->binary = binary;
    memcpy(f->data, p, len);
    if (cl->tail)
        cl->tail->next = f;
    else
        cl->head = f;
    cl->tail = f;
}

static struct frame *inbox_pop(struct client *cl)
{
    struct frame *f = cl->head;
    if (f) {
        cl->head = f->next;
        if (!cl->head)
            cl->tail = NULL;
    }
    return f;
}

static void inbox_clear(struct client *cl)
{
    struct frame *f;
    while ((f = inbox_pop(cl)))
        free(f);
}

/* Pushes what next() returns when it need not wait: the next message (a JSON frame
 * decoded; on raw routes the payload and whether it is binary), or nil, "closed",
 * code, reason once the inbox is empty and the connection closed. Returns the number
 * of values, 0 when there is nothing yet. */
static int push_next(lua_State *L, struct client *cl)
{
    char err[128];
    struct frame *f = inbox_pop(cl);
    if (f) {
        int n = 1;
        if (cl->raw || f->binary || mw_json_decode(L, f->data, f->len, err, sizeof err) < 0) {
            lua_pushlstring(L, f->data, f->len);
            lua_pushboolean(L, f->binary);
            n = 2;
        }
        free(f);
        return n;
    }
    if (!cl->closed)
        return 0;
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    lua_pushinteger(L, cl->close_code);
    lua_pushstring(L, cl->close_reason);
    return 4;
}

/* ---- clients ---- */

static void kick(void);

static void client_free(struct client *cl)
{
    mw_assert(!cl->conn && !cl->waiter);
    if (cl->prev)
        cl->prev->next = cl->next;
    else
        clients = cl->next;
    if (cl->next)
        cl->next->prev = cl->prev;
    inbox_clear(cl);
    free(cl->user);
    free(cl);
}

/* The connection goes away as when a client disconnects: the app's disconnect handler
 * runs and the connection leaves its rooms before this returns. Never from inside the
 * transport's callbacks. */
static void client_gone(struct client *cl)
{
    struct mw_conn *c = cl->conn;
    if (!c)
        return;
    if (!cl->closed) {
        cl->closed = true;
        cl->close_code = 1000;
    }
    cl->conn = NULL;
    mw_conn_drop(c);
    if (cl->waiter) /* another coroutine (a timer's) waits on it: tell it */
        kick();
}

static void on_waiter_closed(uv_handle_t *h)
{
    free(h);
}

/* Resumes the waiting next() of cl with the nargs values pushed on its thread. */
static void waiter_wake(struct client *cl, int nargs)
{
    struct waiter *w = cl->waiter;
    cl->waiter = NULL;
    w->cl = NULL;
    uv_close((uv_handle_t *)&w->timer, on_waiter_closed); /* w lives until its callback */
    mw_co_wake(&w->wait, nargs);
}

/* Resumes the waiting next() of cl with nil, why. */
static void waiter_fail(struct client *cl, const char *why)
{
    lua_State *co = mw_co_thread(&cl->waiter->wait);
    lua_pushnil(co);
    lua_pushstring(co, why);
    waiter_wake(cl, 2);
}

static void on_next_timeout(uv_timer_t *t)
{
    struct waiter *w = (struct waiter *)t;
    waiter_fail(w->cl, "timeout");
}

/* The deferred work, once per loop iteration while there is some: connections the
 * server closed go away, collected clients are freed, and a waiting next() gets its
 * message or the close. A wake runs test code that may change the list: every step
 * starts over. */
static void on_kick(uv_idle_t *h)
{
    for (;;) {
        struct client *cl = clients;
        while (cl && !(cl->orphan || (cl->waiter && (cl->head || cl->closed))))
            cl = cl->next;
        if (!cl) {
            uv_idle_stop(h);
            return;
        }
        if (cl->conn && cl->orphan) {
            client_gone(cl);
        } else if (cl->orphan) {
            client_free(cl);
        } else {
            int n = push_next(mw_co_thread(&cl->waiter->wait), cl);
            waiter_wake(cl, n);
        }
    }
}

static void kick(void)
{
    if (!kicker_ready) {
        uv_idle_init(uv_default_loop(), &kicker);
        kicker_ready = true;
    }
    if (!uv_is_active((uv_handle_t *)&kicker))
        uv_idle_start(&kicker, on_kick);
}

/* ---- the transport ---- */

/* A frame for the client: into its inbox. */
static void tp_deliver(struct mw_conn *c, struct mw_msg *msg)
{
    struct client *cl = c->tx;
    int op = msg->data[0] & 0x0f;
    if ((op != MW_OP_TEXT && op != MW_OP_BINARY) || cl->orphan)
        return; /* control frames are the transport's business */
    size_t len;
    const char *p = mw_msg_payload(msg, &len);
    inbox_push(cl, p, len, op == MW_OP_BINARY);
    if (cl->waiter)
        kick();
}

/* The server closed the connection (code 1006 when it dropped it): the client sees
 * the close at once, and the connection ends without a handshake. */
static void server_closed(struct mw_conn *c, int code)
{
    struct client *cl = c->tx;
    cl->closed = true;
    cl->close_code = code;
    snprintf(cl->close_reason, sizeof cl->close_reason, "%s", c->close_reason ? c->close_reason : "");
    cl->conn = NULL;
    mw_conn_transport_gone(c);
    kick();
}

static void tp_close(struct mw_conn *c)
{
    server_closed(c, c->close_code);
}

static void tp_abort(struct mw_conn *c)
{
    server_closed(c, 1006);
}

static const struct mw_transport test_transport = {
    .name = "test", .deliver = tp_deliver, .close = tp_close, .abort = tp_abort,
};

/* ---- the Lua side ---- */

/* Raises unless L belongs to the file whose tests are running (not at load time, not
 * after the file timed out). */
static void check_running(lua_State *L)
{
    if (!cur_app || mw_app_of(L) != cur_app)
        luaL_error(L, "simulated clients work only while the file's tests run "
                      "(not at load time, not after a time out)");
}

static struct client *check_client(lua_State *L, int idx)
{
    struct box *b = luaL_checkudata(L, idx, CLIENT_MT);
    mw_assert(b->cl);
    return b->cl;
}

/* testing.connect(path [, user]) -> client: a new connection to the route at path, as
 * user (anonymous without one). It has got hello and run the connect handler. */
static int l_connect(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t ulen = 0;
    const char *user = luaL_optlstring(L, 2, NULL, &ulen);
    check_running(L);
    const char *bad = user ? mw_user_id_error(user, ulen) : NULL;
    if (bad)
        return luaL_argerror(L, 2, bad);
    struct mw_route *route = mw_server_route(path);
    if (!route)
        return luaL_error(L, "no route '%s' in the config", path);
    if (mw_conn_count() >= mw_srv.cfg->max_connections)
        return luaL_error(L, "limits.max_connections (%u) reached",
                          (unsigned)mw_srv.cfg->max_connections);

    struct box *b = lua_newuserdata(L, sizeof *b);
    b->cl = NULL;
    luaL_getmetatable(L, CLIENT_MT);
    lua_setmetatable(L, -2);
    struct client *cl = mw_calloc(1, sizeof *cl);
    cl->next = clients;
    if (clients)
        clients->prev = cl;
    clients = cl;
    b->cl = cl;
    cl->app = mw_app_of(L);
    cl->raw = route->cfg->protocol == MW_PROTO_RAW;
    cl->conn = mw_conn_new(&test_transport, cl, route, user, "virtual");
    snprintf(cl->id, sizeof cl->id, "%s", cl->conn->id);
    cl->user = mw_strdup(cl->conn->user->id);
    mw_server_conn_opened(cl->conn); /* hello and the connect handler (which may close it) */
    return 1;
}

/* client:send(msg [, binary]) -> true | nil, "closed". A table is sent as JSON, a
 * string as is; the app handles it like a message from the network. */
static int l_send(lua_State *L)
{
    struct client *cl = check_client(L, 1);
    bool binary = lua_toboolean(L, 3);
    luaL_checkany(L, 2);
    check_running(L);
    struct mw_buf b = { 0 };
    const char *p;
    size_t len;
    if (lua_type(L, 2) == LUA_TSTRING) {
        p = lua_tolstring(L, 2, &len);
    } else {
        char err[256];
        if (mw_json_encode(L, 2, &b, err, sizeof err) < 0) {
            mw_buf_free(&b);
            return luaL_error(L, "cannot encode message: %s", err);
        }
        p = b.p;
        len = b.len;
    }
    if (!cl->conn || cl->closed) {
        mw_buf_free(&b);
        lua_pushnil(L);
        lua_pushliteral(L, "closed");
        return 2;
    }
    if (len > mw_srv.cfg->max_message) /* what the socket layer does with a big one */
        mw_conn_close(cl->conn, 1009, "message too big");
    else
        mw_server_conn_input(cl->conn, p, len, binary);
    mw_buf_free(&b);
    lua_pushboolean(L, 1);
    return 1;
}

/* client:next([seconds]) -> msg | nil, "timeout" | nil, "closed", code, reason.
 * The next message received (decoded from JSON; raw routes: payload, is_binary),
 * waiting up to seconds (default 1; 0 = do not wait). */
static int l_next(lua_State *L)
{
    struct client *cl = check_client(L, 1);
    lua_Number secs = luaL_optnumber(L, 2, DEFAULT_TIMEOUT_S);
    if (!(secs >= 0) || secs > MAX_TIMEOUT_S)
        return luaL_argerror(L, 2, "seconds must be between 0 and 86400");
    check_running(L);
    int n = push_next(L, cl);
    if (n)
        return n;
    if (secs == 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "timeout");
        return 2;
    }
    if (cl->waiter)
        return luaL_error(L, "client %s: another coroutine is waiting in next()", cl->id);
    mw_co_check_wait(L); /* raises outside the test's coroutine: allocate only after it */
    struct waiter *w = mw_calloc(1, sizeof *w);
    mw_co_wait(L, &w->wait);
    w->cl = cl;
    cl->waiter = w;
    uv_timer_init(uv_default_loop(), &w->timer);
    uv_timer_start(&w->timer, on_next_timeout, (uint64_t)llround(secs * 1000.0), 0);
    return lua_yield(L, 0);
}

/* client:close() -> true if it was open. The client disconnects: the app's disconnect
 * handler runs and the connection leaves its rooms before this returns. */
static int l_close(lua_State *L)
{
    struct client *cl = check_client(L, 1);
    bool was_open = cl->conn && !cl->closed;
    client_gone(cl);
    lua_pushboolean(L, was_open);
    return 1;
}

/* Fields: id, user, closed, close_code and close_reason (nil while open); methods. */
static int l_index(lua_State *L)
{
    struct client *cl = check_client(L, 1);
    const char *k = luaL_checkstring(L, 2);
    if (strcmp(k, "id") == 0)
        lua_pushstring(L, cl->id);
    else if (strcmp(k, "user") == 0)
        lua_pushstring(L, cl->user);
    else if (strcmp(k, "closed") == 0)
        lua_pushboolean(L, cl->closed);
    else if (strcmp(k, "close_code") == 0 && cl->closed)
        lua_pushinteger(L, cl->close_code);
    else if (strcmp(k, "close_reason") == 0 && cl->closed)
        lua_pushstring(L, cl->close_reason);
    else
        lua_getfield(L, lua_upvalueindex(1), k);
    return 1;
}

static int l_tostring(lua_State *L)
{
    struct client *cl = check_client(L, 1);
    lua_pushfstring(L, "client(%s %s)", cl->id, cl->user);
    return 1;
}

/* A collected client whose connection is still open disconnects from the loop. */
static int l_gc(lua_State *L)
{
    struct box *b = luaL_checkudata(L, 1, CLIENT_MT);
    struct client *cl = b->cl;
    if (!cl)
        return 0;
    b->cl = NULL;
    if (cl->conn) {
        cl->orphan = true;
        inbox_clear(cl);
        kick();
    } else {
        client_free(cl);
    }
    return 0;
}

/* testing.begin(name): a test starts (named in the runner's timeout report). */
static int l_begin(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    check_running(L);
    snprintf(cur_test, sizeof cur_test, "%s", name);
    return 0;
}

/* testing.result(ok) -> the test's number, or nil when the file has ended. */
static int l_result(lua_State *L)
{
    bool ok = lua_toboolean(L, 1);
    if (!cur_app || mw_app_of(L) != cur_app) {
        lua_pushnil(L);
        return 1;
    }
    if (ok)
        cur_counts->passed++;
    else
        cur_counts->failed++;
    cur_test[0] = '\0';
    lua_pushinteger(L, cur_counts->passed + cur_counts->failed);
    return 1;
}

/* testing.done(): run_all finished; the runner moves on (it checks after each loop
 * iteration, or right after mw_lua_testing_run when nothing waited). */
static int l_done(lua_State *L)
{
    if (cur_app && mw_app_of(L) == cur_app)
        *cur_done = true;
    return 0;
}

/* testing.running() -> whether this state's file is still the one being run. */
static int l_running(lua_State *L)
{
    lua_pushboolean(L, cur_app && mw_app_of(L) == cur_app);
    return 1;
}

int luaopen_moonwire_testing(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "send", l_send }, { "next", l_next }, { "close", l_close }, { NULL, NULL },
    };
    static const luaL_Reg fns[] = {
        { "connect", l_connect }, { "begin", l_begin },     { "result", l_result },
        { "done", l_done },       { "running", l_running }, { NULL, NULL },
    };
    luaL_newmetatable(L, CLIENT_MT);
    lua_newtable(L);
    luaL_register(L, NULL, methods);
    lua_pushcclosure(L, l_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    lua_newtable(L);
    luaL_register(L, NULL, fns);
    return 1;
}

/* ---- the runner's hooks (testrun.h) ---- */

int mw_lua_testing_run(struct mw_app *a, struct mw_test_counts *counts, bool *done,
                       char *err, size_t errlen)
{
    lua_State *L = a->L;
    cur_app = a;
    cur_counts = counts;
    cur_done = done;
    cur_test[0] = '\0';
    lua_getglobal(L, "require");
    lua_pushliteral(L, "moonwire.test");
    if (lua_pcall(L, 1, 1, 0) != 0) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    lua_getfield(L, -1, "run_all");
    if (!lua_isfunction(L, -1)) {
        snprintf(err, errlen, "moonwire.test has no run_all function");
        lua_pop(L, 2);
        return -1;
    }
    int ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
    mw_script_run_ref(a, ref); /* the coroutine holds the function from here on */
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    return 0;
}

const char *mw_lua_testing_current(void)
{
    return cur_test;
}

void mw_lua_testing_end_file(void)
{
    struct mw_app *a = cur_app;
    cur_app = NULL;
    cur_counts = NULL;
    cur_done = NULL;
    if (!a)
        return;
    for (;;) { /* a wake runs test code: start over after each step */
        struct client *cl = clients;
        while (cl && !(cl->app == a && (cl->waiter || cl->conn)))
            cl = cl->next;
        if (!cl)
            break;
        if (cl->waiter)
            waiter_fail(cl, "abandoned");
        else
            client_gone(cl);
    }
}

void mw_lua_testing_shutdown(void)
{
    mw_lua_testing_end_file();
    for (struct client *cl = clients; cl; cl = cl->next)
        if (cl->waiter) /* none by now: every file ended; kept safe anyway */
            waiter_fail(cl, "abandoned");
    for (struct client *cl = clients; cl; cl = cl->next)
        client_gone(cl);
    /* The collected ones go now; the others when their state closes (their __gc). */
    for (struct client *cl = clients, *next; cl; cl = next) {
        next = cl->next;
        if (cl->orphan)
            client_free(cl);
    }
    if (kicker_ready) {
        uv_close((uv_handle_t *)&kicker, NULL);
        kicker_ready = false;
    }
}
