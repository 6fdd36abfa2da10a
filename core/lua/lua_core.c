/* lua_core.c - module moonwire.core: log, now, sleep, node id, route info and the
 * error report the router calls when a handler fails. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <uv.h>

#include "net/auth.h"
#include "base/buf.h"
#include "net/conn.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "lua/lua_api.h"
#include "base/lua_json.h"
#include "lua/script.h"
#include "redis/redis.h"
#include "net/session.h"
#include "net/session_redis.h"
#include "base/context.h"
#include "base/util.h"

/* A sleeping coroutine; on the sleepers list until woken or cancelled. */
struct sleeper {
    uv_timer_t timer; /* first: the close callback frees the struct */
    struct mw_wait wait;
    struct sleeper *next, *prev;
};

static struct sleeper *sleepers;

/* Appends ` key="value"`, the value escaped like a JSON string. */
static void logfmt_pair(struct mw_buf *b, const char *key, const char *v)
{
    mw_buf_printf(b, " %s=", key);
    mw_jsonw_str(b, v);
}

static const char *route_path(lua_State *L)
{
    struct mw_app *a = mw_app_of(L);
    return a ? a->route->cfg->path : "-";
}

/* core.log(level, msg [, fields]): fields is a table of key = value. */
static int l_log(lua_State *L)
{
    char err[128];
    int level = mw_log_level_parse(luaL_checkstring(L, 1));
    const char *msg = luaL_checkstring(L, 2);
    if (level < 0)
        return luaL_argerror(L, 1, "level must be debug, info, warn or error");
    if (level < mw_log_level)
        return 0;
    struct mw_buf b = { 0 }, v = { 0 };
    mw_buf_printf(&b, "route=%s", route_path(L));
    if (lua_istable(L, 3)) {
        mw_json_unlazy(L, 3);
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            if (lua_type(L, -2) == LUA_TSTRING) {
                mw_buf_reset(&v);
                int t = lua_type(L, -1);
                if (t == LUA_TSTRING || t == LUA_TNUMBER)
                    mw_buf_puts(&v, lua_tostring(L, -1));
                else if (mw_json_encode(L, lua_gettop(L), &v, err, sizeof err) < 0)
                    mw_buf_puts(&v, err);
                mw_buf_putc(&v, '\0');
                logfmt_pair(&b, lua_tostring(L, -2), v.p);
            }
            lua_pop(L, 1);
        }
    }
    mw_buf_putc(&b, '\0');
    mw__log(level, msg, "%s", b.p);
    mw_buf_free(&b);
    mw_buf_free(&v);
    return 0;
}

const char *const mw_error_codes[MW_NERROR_CODES] = {
    "bad_json", "bad_message", "unknown_type", "not_in_room", "forbidden", "unauthorized",
    "rate_limited", "conflict", "not_found", "unavailable", "internal",
};

/* core.error_codes() -> { code = true, ... }: the protocol's error codes. */
static int l_error_codes(lua_State *L)
{
    lua_createtable(L, 0, MW_NERROR_CODES);
    for (int i = 0; i < MW_NERROR_CODES; i++) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, mw_error_codes[i]);
    }
    return 1;
}

/* core.refused(conn, type, code): an error reply is going out; counted per route and
 * code for /metrics, and logged at debug level. */
static int l_refused(lua_State *L)
{
    struct mw_app *a = mw_app_of(L);
    struct mw_conn *c = lua_isuserdata(L, 1) ? mw_lua_check_conn(L, 1) : NULL;
    const char *type = luaL_optstring(L, 2, "-");
    const char *code = luaL_checkstring(L, 3);
    for (int i = 0; a && i < MW_NERROR_CODES; i++)
        if (strcmp(code, mw_error_codes[i]) == 0)
            a->route->stats.errors[i]++;
    mw_log_debug("message refused", "route=%s conn=%s type=%s code=%s", route_path(L),
                 c ? c->id : "-", type, code);
    return 0;
}

/* core.report_error(conn, message, traceback): a failed handler, for the log only. */
static int l_report_error(lua_State *L)
{
    struct mw_app *a = mw_app_of(L);
    struct mw_conn *c = lua_isuserdata(L, 1) ? mw_lua_check_conn(L, 1) : NULL;
    const char *msg = luaL_optstring(L, 2, "?");
    const char *tb = luaL_optstring(L, 3, "");
    const char *type = luaL_optstring(L, 4, "-");
    struct mw_buf b = { 0 };
    if (a)
        a->route->stats.lua_errors++;
    mw_buf_printf(&b, "route=%s conn=%s type=%s", route_path(L), c ? c->id : "-", type);
    logfmt_pair(&b, "err", msg);
    logfmt_pair(&b, "traceback", tb);
    mw_buf_putc(&b, '\0');
    mw__log(MW_LOG_ERROR, "lua error", "%s", b.p);
    mw_buf_free(&b);
    return 0;
}

/* ---- a message with an id: the dedup windows, the message token, the ack ----
 * What the router's dedup_begin .. ack / dedup_end need between the calls (the key,
 * the id, the named session, the token) is kept in the coroutine's record
 * (struct mw_co_rec, script.h), in C. */

const char *mw_lua_message_token(lua_State *L)
{
    struct mw_co_rec *r = mw_co_rec(L, false);
    return r && r->has_token ? r->token.p : NULL;
}

/* Sets b to the NUL-terminated string s. */
static void buf_set(struct mw_buf *b, const char *s, size_t n)
{
    mw_buf_reset(b);
    mw_buf_append(b, s, n);
    mw_buf_putc(b, '\0');
}

/* Records the token of the message for the coroutine's record r: the session's name
 * when it has one (sid: it outlives the connection, and may move to another node),
 * else this node and connection. */
static void message_token(struct mw_co_rec *r, const char *user, const char *sid,
                          const char *conn_id, const char *key)
{
    const char *parts[3] = { sid ? user : mw_srv.node_id, sid ? sid : conn_id, key };
    struct mw_buf *b = &r->token;
    mw_buf_reset(b);
    mw_buf_putc(b, sid ? 's' : 'c');
    for (int i = 0; i < 3; i++) {
        mw_buf_putc(b, '\x1f');
        mw_buf_puts(b, parts[i]);
    }
    mw_buf_putc(b, '\0');
    r->has_token = true;
}

/* The key of id (the value at idx, a string or an integer: the router checked it) in
 * the session's window: "s:<id>", "n:<integer>", or "x:<hex>" for a string with NUL
 * bytes (the window is keyed by C strings: "a\0b" must not be "a"). Also its JSON. */
static void id_key(lua_State *L, int idx, struct mw_co_rec *r)
{
    char err[128];
    struct mw_buf *k = &r->key;
    mw_buf_reset(k);
    mw_buf_reset(&r->id);
    if (lua_type(L, idx) == LUA_TNUMBER) {
        lua_Number v = lua_tonumber(L, idx);
        if (!(v >= -9007199254740992.0 && v <= 9007199254740992.0) || v != floor(v))
            luaL_argerror(L, idx, "id must be a string or an integer");
        char num[24];
        mw_buf_puts(k, "n:");
        if (v < 0) {
            mw_buf_putc(k, '-');
            v = -v;
        }
        mw_buf_append(k, num, mw_u64_str(num, (uint64_t)v));
        if (mw_json_encode(L, idx, &r->id, err, sizeof err) < 0)
            luaL_argerror(L, idx, err);
    } else {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        if (memchr(s, '\0', n)) {
            static const char hex[] = "0123456789abcdef";
            mw_buf_puts(k, "x:");
            for (size_t i = 0; i < n; i++) {
                mw_buf_putc(k, hex[(unsigned char)s[i] >> 4]);
                mw_buf_putc(k, hex[(unsigned char)s[i] & 15]);
            }
        } else {
            mw_buf_puts(k, "s:");
            mw_buf_append(k, s, n);
        }
        if (mw_json_encode(L, idx, &r->id, err, sizeof err) < 0)
            luaL_argerror(L, idx, err);
    }
    mw_buf_putc(k, '\0');
}

/* Pushes dedup_begin's results. "done" with no reply: it was too large to keep (the
 * router acks without data). */
static int push_dedup(lua_State *L, int st, const char *reply)
{
    switch (st) {
    case MW_DEDUP_NEW: lua_pushliteral(L, "new"); break;
    case MW_DEDUP_RUNNING: lua_pushliteral(L, "running"); break;
    default: lua_pushliteral(L, "done"); break;
    }
    if (reply)
        lua_pushstring(L, reply);
    else
        lua_pushnil(L);
    return 2;
}

/* A named session's message being looked up in Redis (session_redis.h). */
struct dedup_call {
    struct mw_co_call *call;
    char *user, *sid, *key;
};

static void on_dedup_redis(void *ud, int st, const char *reply)
{
    struct dedup_call *d = ud;
    lua_State *co = mw_co_call_thread(d->call);
    struct mw_co_rec *r = mw_co_call_rec(d->call);
    struct mw_session *s = mw_session_find(d->user, d->sid);
    if (st == MW_DEDUP_DONE && s) /* done on another node: this window keeps it too */
        mw_session_dedup_end(s, d->key, reply);
    if (r && st == MW_DEDUP_NEW)
        message_token(r, d->user, d->sid, NULL, d->key);
    else if (r) /* the handler will not run: no answer for the watchdog to give */
        r->active = false;
    mw_co_call_done(d->call, push_dedup(co, st, reply));
    free(d->user);
    free(d->sid);
    free(d->key);
    free(d);
}

/* core.dedup_begin(conn, id) -> "new" | "running" | "done", reply: opens message id's
 * entry in the connection's session window. With "new", the coroutine's record keeps
 * the id, its key and the session (named ones by user and id: core.ack and
 * core.dedup_end find it even after the connection is gone) until the answer.
 * Clustered, a message new to a named session's window here is looked up in Redis
 * (the coroutine waits): the client may have sent it to another node before. */
static int l_dedup_begin(lua_State *L)
{
    struct mw_conn *c = mw_lua_check_conn(L, 1);
    int t = lua_type(L, 2);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        luaL_argerror(L, 2, "id must be a string or an integer");
    struct mw_co_rec *r = mw_co_rec(L, true);
    struct mw_co_rec scratch = { 0 }; /* outside a handler's coroutine: nothing kept */
    struct mw_co_rec *k = r ? r : &scratch;
    id_key(L, 2, k);
    const char *key = k->key.p, *reply = NULL;
    struct mw_session *s = c ? mw_conn_session(c) : NULL;
    int st = s ? mw_session_dedup_begin(s, key, &reply) : MW_DEDUP_NEW;
    const char *sid = s ? mw_session_sid(s) : NULL;
    if (r) {
        /* The id the watchdog answers if the handler never returns (kept while Redis
         * is asked too: forgotten if the message turns out to be done). */
        r->active = st == MW_DEDUP_NEW && c;
        r->named = r->active && sid;
        r->has_token = false;
        if (r->named) {
            buf_set(&r->user, c->user->id, strlen(c->user->id));
            buf_set(&r->sid, sid, strlen(sid));
        }
    }
    if (st == MW_DEDUP_NEW && sid && mw_redis_configured() && mw_co_can_wait(L)) {
        struct dedup_call *d = mw_calloc(1, sizeof *d);
        d->call = mw_co_call_new(L);
        d->user = mw_strdup(c->user->id);
        d->sid = mw_strdup(sid);
        d->key = mw_strdup(key);
        if (mw_session_redis_begin(d->user, d->sid, d->key, on_dedup_redis, d) == 0) {
            mw_buf_free(&scratch.key);
            mw_buf_free(&scratch.id);
            return mw_co_call_finish(L, d->call);
        }
        free(d->call);
        free(d->user);
        free(d->sid);
        free(d->key);
        free(d);
    }
    if (r && s && st == MW_DEDUP_NEW)
        message_token(r, c->user->id, sid, c->id, key);
    if (!r) {
        mw_buf_free(&scratch.key);
        mw_buf_free(&scratch.id);
    }
    return push_dedup(L, st, reply);
}

/* Closes the coroutine's message entry in the dedup windows with its reply frame
 * (NUL-terminated), or, with forget (an `unavailable` answer), takes the id out
 * instead, so that the client's retry runs the handler again. c may be NULL (closed
 * while the handler ran): the record names the session then. */
static void dedup_finish(struct mw_co_rec *r, struct mw_conn *c, const char *reply, bool forget)
{
    if (!r || !r->active)
        return;
    const char *key = r->key.p, *user = r->named ? r->user.p : NULL,
               *sid = r->named ? r->sid.p : NULL;
    struct mw_session *s = c ? c->session : NULL;
    if (!s && user && sid) /* the connection closed while the handler ran */
        s = mw_session_find(user, sid);
    if (s && forget)
        mw_session_dedup_forget(s, key);
    else if (s)
        mw_session_dedup_end(s, key, reply);
    if (user && sid) /* a named session: the cluster's window too */
        mw_session_redis_end(user, sid, key, reply, forget);
    r->active = r->named = r->has_token = false;
}

/* core.dedup_end(conn, reply_frame_text [, forget]): the answer to the message that
 * core.dedup_begin opened in this coroutine, when it is not an ack. */
static int l_dedup_end(lua_State *L)
{
    struct mw_conn *c = mw_lua_check_conn(L, 1);
    const char *reply = luaL_checkstring(L, 2);
    dedup_finish(mw_co_rec(L, false), c, reply, lua_toboolean(L, 3));
    return 0;
}

/* core.ack(conn, id, data) -> true | nil, err: a handler's success, in one step: the
 * frame {"type":"ack","id":..,"data":..} (data left out when nil: what json.encode
 * writes for that table), the dedup windows closed with it (the entry core.dedup_begin
 * opened in this coroutine), and the frame sent if the connection is still open. On
 * an encoding error nothing is kept or sent. */
static int l_ack(lua_State *L)
{
    struct mw_conn *c = mw_lua_check_conn(L, 1);
    struct mw_co_rec *r = mw_co_rec(L, false);
    char err[256];
    static struct mw_scratch scratch; /* the window and the frame copy the text */
    struct mw_buf spare, *b = mw_scratch_take(&scratch, &spare);
    mw_buf_reserve(b, 512); /* a join's ack with a few members: allocated once, not grown */
    mw_buf_puts(b, "{\"type\":\"ack\",\"id\":");
    if (r && r->active)
        mw_buf_append(b, r->id.p, r->id.len); /* the id, encoded by dedup_begin */
    else if (mw_json_encode(L, 2, b, err, sizeof err) < 0)
        goto fail;
    if (!lua_isnoneornil(L, 3)) {
        mw_buf_puts(b, ",\"data\":");
        if (mw_json_encode_member(L, 3, b, err, sizeof err) < 0)
            goto fail;
    }
    mw_buf_putc(b, '}');
    mw_buf_putc(b, '\0');
    dedup_finish(r, c, b->p, false);
    if (c && mw_conn_is_open(c)) {
        struct mw_msg *m = mw_msg_new(MW_OP_TEXT, b->p, b->len - 1, 0);
        mw_conn_send(c, m); /* a slow consumer is closed by the send queue itself */
        mw_msg_decref(m);
    }
    mw_scratch_give(&scratch, b);
    lua_pushboolean(L, 1);
    return 1;
fail:
    mw_scratch_give(&scratch, b);
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
}

/* core.auth(conn, token) -> {user, exp} | nil, code, message: an `auth` message that
 * refreshes the connection's token (auth.h). */
static int l_auth(lua_State *L)
{
    struct mw_conn *c = mw_lua_check_conn(L, 1);
    size_t len;
    const char *token = luaL_checklstring(L, 2, &len), *code, *why;
    if (!c || !mw_conn_is_open(c)) {
        lua_pushnil(L);
        lua_pushliteral(L, "unauthorized");
        lua_pushliteral(L, "closed");
        return 3;
    }
    if (mw_auth_message(c, token, len, &code, &why) < 0) {
        mw_log_info("auth refused", "conn=%s user=%s reason=\"%s\"", c->id, c->user->id, why);
        lua_pushnil(L);
        lua_pushstring(L, code);
        lua_pushstring(L, why);
        return 3;
    }
    mw_log_debug("token refreshed", "conn=%s user=%s", c->id, c->user->id);
    lua_createtable(L, 0, 2);
    lua_pushstring(L, c->user->id);
    lua_setfield(L, -2, "user");
    lua_pushnumber(L, (lua_Number)(c->auth_exp_ms / 1000));
    lua_setfield(L, -2, "exp");
    return 1;
}

/* core.hot_reload() -> whether dev.hot_reload is on (dev:watch is served only then). */
static int l_hot_reload(lua_State *L)
{
    lua_pushboolean(L, mw_srv.cfg && mw_srv.cfg->hot_reload);
    return 1;
}

static int l_now(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)mw_wall_ms());
    return 1;
}

static int l_node_id(lua_State *L)
{
    lua_pushstring(L, mw_srv.node_id[0] ? mw_srv.node_id : "-");
    return 1;
}

/* core.route() -> {path, protocol, history_size, hold_ttl_ms, options, options_lines,
 * source}: options_lines and source say where the options are in the config file
 * (nil when they are not from one). */
static int l_route(lua_State *L)
{
    char err[256];
    struct mw_app *a = mw_app_of(L);
    const struct mw_route_config *rc = a->route->cfg;
    lua_createtable(L, 0, 7);
    lua_pushstring(L, rc->path);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, rc->protocol == MW_PROTO_RAW ? "raw" : "json");
    lua_setfield(L, -2, "protocol");
    lua_pushinteger(L, rc->history_size);
    lua_setfield(L, -2, "history_size");
    lua_pushnumber(L, (lua_Number)rc->hold_ttl_ms);
    lua_setfield(L, -2, "hold_ttl_ms");
    const char *opts = rc->options_json ? rc->options_json : "{}";
    if (mw_json_decode(L, opts, strlen(opts), err, sizeof err) < 0)
        lua_newtable(L);
    lua_setfield(L, -2, "options");
    const char *lines = rc->options_lines_json;
    if (lines && mw_json_decode(L, lines, strlen(lines), err, sizeof err) == 0)
        lua_setfield(L, -2, "options_lines");
    if (rc->source) {
        lua_pushstring(L, rc->source);
        lua_setfield(L, -2, "source");
    }
    return 1;
}

static void sleeper_unlink(struct sleeper *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        sleepers = s->next;
    if (s->next)
        s->next->prev = s->prev;
}

static void on_sleeper_closed(uv_handle_t *h)
{
    free(h);
}

static void on_wake(uv_timer_t *t)
{
    struct sleeper *s = (struct sleeper *)t;
    sleeper_unlink(s);
    uv_close((uv_handle_t *)&s->timer, on_sleeper_closed);
    mw_co_wake(&s->wait, 0);
}

/* The connection closed while its handler slept. */
static void cancel_sleep(struct mw_wait *w)
{
    struct sleeper *s = (struct sleeper *)((char *)w - offsetof(struct sleeper, wait));
    sleeper_unlink(s);
    uv_close((uv_handle_t *)&s->timer, on_sleeper_closed);
}

/* core.sleep(seconds): yields the handler's coroutine; other work goes on. */
static int l_sleep(lua_State *L)
{
    lua_Number secs = luaL_checknumber(L, 1);
    if (!(secs >= 0) || secs > 86400 * 365)
        return luaL_argerror(L, 1, "seconds must be between 0 and one year");
    mw_co_check_wait(L); /* raises outside a handler: allocate only after it */
    struct sleeper *s = mw_calloc(1, sizeof *s);
    mw_co_wait(L, &s->wait);
    s->wait.cancel = cancel_sleep;
    uv_timer_init(uv_default_loop(), &s->timer);
    uv_timer_start(&s->timer, on_wake, (uint64_t)llround(secs * 1000.0), 0);
    s->next = sleepers;
    if (sleepers)
        sleepers->prev = s;
    sleepers = s;
    return lua_yield(L, 0);
}

void mw_lua_core_shutdown(void)
{
    while (sleepers) {
        struct sleeper *s = sleepers;
        sleeper_unlink(s);
        uv_close((uv_handle_t *)&s->timer, on_sleeper_closed);
        mw_co_drop(&s->wait);
    }
}

int luaopen_moonwire_core(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "log", l_log },     { "report_error", l_report_error }, { "now", l_now },
        { "sleep", l_sleep }, { "node_id", l_node_id },           { "route", l_route },
        { "dedup_begin", l_dedup_begin }, { "dedup_end", l_dedup_end }, { "ack", l_ack },
        { "auth", l_auth },
        { "hot_reload", l_hot_reload }, { "error_codes", l_error_codes }, { "refused", l_refused },
        { NULL, NULL },
    };
    lua_newtable(L);
    luaL_register(L, NULL, fns);
    return 1;
}
