/* lua_store.c - module moonwire.store: the store (store.h) for Lua.
 *
 * Each function checks its arguments (raising on wrong ones), encodes the value as
 * JSON and submits a request. The token of gets/hgets, which cas/hcas compare, is the
 * value's stored JSON text: opaque to scripts, exact for the backends. When the backend completes it at once (memory), the
 * results are returned directly without yielding; when it must wait (Redis, or the
 * memory backend's deferred mode), the handler's coroutine waits (mw_co_wait) and the
 * completion pushes the results on it and wakes it. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "base/buf.h"
#include "lua/lua_api.h"
#include "base/lua_json.h"
#include "lua/script.h"
#include "store/store.h"
#include "base/util.h"

/* Raises "file:line: store.<fn>: <message>" pointing at the Lua caller. */
static int arg_error(lua_State *L, const char *fn, const char *fmt, ...)
{
    va_list ap;
    luaL_where(L, 1);
    lua_pushfstring(L, "store.%s: ", fn);
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_concat(L, 3);
    return lua_error(L);
}

static void check_key(lua_State *L, const char *fn, struct mw_store_req *req)
{
    if (lua_type(L, 1) == LUA_TSTRING) {
        req->key = lua_tolstring(L, 1, &req->keylen);
        if (req->keylen >= 1 && req->keylen <= MW_STORE_MAX_KEY) {
            if (memchr(req->key, '\0', req->keylen))
                arg_error(L, fn, "key must not contain NUL bytes");
            return;
        }
    }
    arg_error(L, fn, "key must be a string of 1..%d bytes", MW_STORE_MAX_KEY);
}

/* A TTL argument in seconds (fractions allowed) -> ms, rounded up so that a positive
 * TTL never means "no expiry" (after rounding to whole microseconds, so that 0.29 s
 * is 290 ms and not 291 from the error of 0.29 * 1000). nil -> 0 when optional. */
static uint64_t check_ttl(lua_State *L, int idx, const char *fn, const char *name, bool optional)
{
    if (optional && lua_isnoneornil(L, idx))
        return 0;
    double secs = lua_type(L, idx) == LUA_TNUMBER ? lua_tonumber(L, idx) : -1;
    if (!(secs >= 0) || secs * 1000 > (double)MW_STORE_MAX_TTL_MS)
        arg_error(L, fn, "%s must be a number of seconds >= 0 (at most 1e9)", name);
    uint64_t us = (uint64_t)llround(secs * 1e6);
    return (us + 999) / 1000;
}

static void check_field(lua_State *L, int idx, const char *fn, struct mw_store_req *req)
{
    if (lua_type(L, idx) == LUA_TSTRING) {
        req->field = lua_tolstring(L, idx, &req->fieldlen);
        if (req->fieldlen >= 1 && req->fieldlen <= MW_STORE_MAX_FIELD &&
            !memchr(req->field, '\0', req->fieldlen))
            return;
    }
    arg_error(L, fn, "field must be a string of 1..%d bytes without NUL", MW_STORE_MAX_FIELD);
}

/* A cas token: nil (the value must be absent) or a string from gets/hgets. */
static void check_token(lua_State *L, int idx, const char *fn, struct mw_store_req *req)
{
    if (lua_isnoneornil(L, idx))
        return;
    if (lua_type(L, idx) != LUA_TSTRING)
        arg_error(L, fn, "token must be nil or a string from gets/hgets");
    req->token = lua_tolstring(L, idx, &req->tokenlen);
    req->has_token = true;
}

static double check_number(lua_State *L, int idx, const char *fn, const char *name)
{
    double v = lua_type(L, idx) == LUA_TNUMBER ? lua_tonumber(L, idx) : NAN;
    if (!isfinite(v))
        arg_error(L, fn, "%s must be a finite number", name);
    return v;
}

static int64_t check_index(lua_State *L, int idx, const char *fn, const char *name, int64_t def)
{
    if (lua_isnoneornil(L, idx))
        return def;
    double v = lua_type(L, idx) == LUA_TNUMBER ? lua_tonumber(L, idx) : NAN;
    if (!(v == floor(v) && fabs(v) < 9007199254740992.0))
        arg_error(L, fn, "%s must be an integer", name);
    return (int64_t)v;
}

/* Encodes the value at idx into b (kept on the Lua stack's caller until submit). */
static void check_value(lua_State *L, int idx, const char *fn, struct mw_buf *b,
                        struct mw_store_req *req)
{
    char err[256];
    if (lua_isnoneornil(L, idx)) {
        mw_buf_free(b);
        arg_error(L, fn, "value must not be nil");
    }
    if (mw_json_encode(L, idx, b, err, sizeof err) < 0) {
        mw_buf_free(b);
        arg_error(L, fn, "value cannot be stored: %s", err);
    }
    req->value = b->p;
    req->valuelen = b->len;
}

/* Decodes a stored JSON text; a text that is not JSON (foreign data in Redis) reads as
 * nil, "bad value". Returns the number of values pushed. */
static int push_value(lua_State *L, const char *text, size_t len)
{
    char err[128];
    if (!text) {
        lua_pushnil(L);
        return 1;
    }
    if (mw_json_decode(L, text, len, err, sizeof err) < 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "bad value: %s", err);
        return 2;
    }
    return 1;
}

/* A value inside a list or hash: a text that is not JSON (foreign data in Redis) is
 * json.null, so that the array stays a sequence. */
static void push_element(lua_State *L, const struct mw_store_str *v)
{
    if (push_value(L, v->p, v->len) == 2) {
        lua_pop(L, 2);
        lua_pushlightuserdata(L, NULL);
    }
}

/* Pushes what the Lua function returns for res; returns how many values. */
static int push_result(lua_State *L, const struct mw_store_result *res)
{
    if (res->err) {
        bool boolean = res->err != MW_STORE_EUNAVAIL &&
                       (res->op == MW_STORE_ADD || res->op == MW_STORE_REPLACE ||
                        res->op == MW_STORE_EXPIRE || res->op == MW_STORE_CAS ||
                        res->op == MW_STORE_HCAS || res->op == MW_STORE_UNSCHEDULE);
        if (boolean)
            lua_pushboolean(L, 0);
        else
            lua_pushnil(L);
        lua_pushstring(L, mw_store_strerror(res->err));
        return 2;
    }
    switch (res->op) {
    case MW_STORE_GET:
    case MW_STORE_LPOP:
    case MW_STORE_RPOP:
    case MW_STORE_HGET:
        return push_value(L, res->value, res->valuelen);
    case MW_STORE_INCR:
    case MW_STORE_TTL:
    case MW_STORE_LPUSH:
    case MW_STORE_RPUSH:
    case MW_STORE_LLEN:
        lua_pushnumber(L, res->num);
        return 1;
    case MW_STORE_LRANGE:
    case MW_STORE_DUE:
        mw_json_push_array(L, (int)res->nvalues);
        for (size_t i = 0; i < res->nvalues; i++) {
            push_element(L, &res->values[i]);
            lua_rawseti(L, -2, (int)i + 1);
        }
        return 1;
    case MW_STORE_HGETALL:
        lua_createtable(L, 0, (int)(res->nvalues / 2));
        for (size_t i = 0; i + 1 < res->nvalues; i += 2) {
            lua_pushlstring(L, res->values[i].p, res->values[i].len);
            push_element(L, &res->values[i + 1]);
            lua_rawset(L, -3);
        }
        return 1;
    case MW_STORE_SET:
    case MW_STORE_ADD:
    case MW_STORE_REPLACE:
    case MW_STORE_DELETE:
    case MW_STORE_EXPIRE:
    case MW_STORE_CAS:
    case MW_STORE_HSET:
    case MW_STORE_HDEL:
    case MW_STORE_HCAS:
    case MW_STORE_SCHEDULE:
    case MW_STORE_UNSCHEDULE:
        lua_pushboolean(L, 1);
        return 1;
    }
    return 0;
}

static void on_done(void *ud, const struct mw_store_result *res)
{
    struct mw_co_call *c = ud;
    mw_co_call_done(c, push_result(mw_co_call_thread(c), res));
}

/* gets and hgets: the value, then its stored text as the token for cas. */
static void on_done_token(void *ud, const struct mw_store_result *res)
{
    struct mw_co_call *c = ud;
    lua_State *L = mw_co_call_thread(c);
    int n = push_result(L, res);
    if (n == 1 && res->value) {
        lua_pushlstring(L, res->value, res->valuelen);
        n = 2;
    }
    mw_co_call_done(c, n);
}

/* A call that may have to wait is refused where waiting is impossible (load time,
 * coroutine.wrap) before it can take effect: raises "cannot wait here". Run it before
 * anything that would need freeing. */
static void check_wait(lua_State *L)
{
    if (mw_store_may_defer())
        mw_co_check_wait(L);
}

/* Submits req and returns the Lua results (pushed by cb), yielding when the backend
 * must wait. `b` holds the encoded value, if any (the backend copies it before submit
 * returns); a caller that passes one ran check_wait first. */
static int run_cb(lua_State *L, struct mw_store_req *req, struct mw_buf *b, mw_store_cb cb)
{
    if (!b)
        check_wait(L);
    struct mw_co_call *c = mw_co_call_new(L);
    mw_store_submit(req, cb, c);
    if (b)
        mw_buf_free(b);
    return mw_co_call_finish(L, c);
}

static int run(lua_State *L, struct mw_store_req *req, struct mw_buf *b)
{
    return run_cb(L, req, b, on_done);
}

static int l_get(lua_State *L)
{
    struct mw_store_req req = { .op = MW_STORE_GET };
    check_key(L, "get", &req);
    return run(L, &req, NULL);
}

/* gets(k) -> value, token */
static int l_gets(lua_State *L)
{
    struct mw_store_req req = { .op = MW_STORE_GET };
    check_key(L, "gets", &req);
    return run_cb(L, &req, NULL, on_done_token);
}

/* cas(k, token, value [, ttl]): value nil deletes. */
static int l_cas(lua_State *L)
{
    struct mw_store_req req = { .op = MW_STORE_CAS };
    struct mw_buf b = { 0 };
    check_key(L, "cas", &req);
    check_token(L, 2, "cas", &req);
    req.ttl_ms = check_ttl(L, 4, "cas", "ttl", true);
    check_wait(L);
    if (!lua_isnoneornil(L, 3))
        check_value(L, 3, "cas", &b, &req);
    return run(L, &req, &b);
}

/* set/add/replace(k, v [, ttl]); set with a nil value deletes. */
static int put(lua_State *L, enum mw_store_op op, const char *fn)
{
    struct mw_store_req req = { .op = op };
    struct mw_buf b = { 0 };
    check_key(L, fn, &req);
    req.ttl_ms = check_ttl(L, 3, fn, "ttl", true);
    if (op == MW_STORE_SET && lua_isnoneornil(L, 2)) {
        req.op = MW_STORE_DELETE;
        return run(L, &req, NULL);
    }
    check_wait(L);
    check_value(L, 2, fn, &b, &req);
    return run(L, &req, &b);
}

static int l_set(lua_State *L)
{
    return put(L, MW_STORE_SET, "set");
}

static int l_add(lua_State *L)
{
    return put(L, MW_STORE_ADD, "add");
}

static int l_replace(lua_State *L)
{
    return put(L, MW_STORE_REPLACE, "replace");
}

/* incr(k, n [, init [, init_ttl]]) */
static int l_incr(lua_State *L)
{
    struct mw_store_req req = { .op = MW_STORE_INCR };
    check_key(L, "incr", &req);
    req.n = check_number(L, 2, "incr", "n");
    if (!lua_isnoneornil(L, 3)) {
        req.init = check_number(L, 3, "incr", "init");
        req.has_init = true;
        req.ttl_ms = check_ttl(L, 4, "incr", "init_ttl", true);
    }
    return run(L, &req, NULL);
}

static int l_delete(lua_State *L)
{
    struct mw_store_req req = { .op = MW_STORE_DELETE };
    check_key(L, "delete", &req);
    return run(L, &req, NULL);
}

static int l_expire(lua_State *L)
{
    struct mw_store_req req = { .op = MW_STORE_EXPIRE };
    check_key(L, "expire", &req);
    req.ttl_ms = check_ttl(L, 2, "expire", "ttl", false);
    return run(L, &req, NULL);
}

static int l_ttl(lua_State *L)
{
    struct mw_store_req req = { .op = MW_STORE_TTL };
    check_key(L, "ttl", &req);
    return run(L, &req, NULL);
}

static int push(lua_State *L, enum mw_store_op op, const char *fn)
{
    struct mw_store_req req = { .op = op };
    struct mw_buf b = { 0 };
    check_key(L, fn, &req);
    check_wait(L);
    check_value(L, 2, fn, &b, &req);
    return run(L, &req, &b);
}

static int l_lpush(lua_State *L)
{
    return push(L, MW_STORE_LPUSH, "lpush");
}

static int l_rpush(lua_State *L)
{
    return push(L, MW_STORE_RPUSH, "rpush");
}

/* ---- hashes ---- */

static int l_hget(lua_State *L)
{
    struct mw_store_req req = { .op = MW_STORE_HGET };
    check_key(L, "hget", &req);
    check_field(L, 2, "hget", &req);
    return run(L, &req, NULL);
}

static int l_hgets(lua_State *L)
{
    struct mw_store_req req = { .op = MW_STORE_HGET };
    check_key(L, "hgets", &req);
    check_field(L, 2, "hgets", &req);
    return run_cb(L, &req, NULL, on_done_token);
}

static int l_hset(lua_State *L)
{
    struct mw_store_req req = { .op = MW_STORE_HSET };
    struct mw_buf b = { 0 };
    check_key(L, "hset", &req);
    check_field(L, 2, "hset", &req);
    if (lua_isnoneornil(L, 3)) { /* like set: nil deletes */
        req.op = MW_STORE_HDEL;
        return run(L, &req, NULL);
    }
    check_wait(L);
    check_value(L, 3, "hset", &b, &req);
    return run(L, &req, &b);
}

static int l_hdel(lua_State *L)
{
    struct mw_store_req req = { .op = MW_STORE_HDEL };
    check_key(L, "hdel", &req);
    check_field(L, 2, "hdel", &req);
    return run(L, &req, NULL);
}

/* hcas(k, field, token, value): value nil deletes the field. */
static int l_hcas(lua_State *L)
{
    struct mw_store_req req = { .op = MW_STORE_HCAS };
    struct mw_buf b = { 0 };
    check_key(L, "hcas", &req);
    check_field(L, 2, "hcas", &req);
    check_token(L, 3, "hcas", &req);
    check_wait(L);
    if (!lua_isnoneornil(L, 4))
        check_value(L, 4, "hcas", &b, &req);
    return run(L, &req, &b);
}

/* ---- timed queues ---- */

/* An item: any value but nil, at most MW_STORE_MAX_FIELD bytes as JSON. */
static void check_item(lua_State *L, int idx, const char *fn, struct mw_buf *b,
                       struct mw_store_req *req)
{
    if (lua_isnoneornil(L, idx))
        arg_error(L, fn, "item must not be nil");
    check_value(L, idx, fn, b, req);
    if (b->len > MW_STORE_MAX_FIELD) {
        mw_buf_free(b);
        arg_error(L, fn, "item must be at most %d bytes as JSON", MW_STORE_MAX_FIELD);
    }
}

/* schedule(q, item, delay) */
static int l_schedule(lua_State *L)
{
    struct mw_store_req req = { .op = MW_STORE_SCHEDULE };
    struct mw_buf b = { 0 };
    check_key(L, "schedule", &req);
    req.ttl_ms = check_ttl(L, 3, "schedule", "delay", false);
    check_wait(L);
    check_item(L, 2, "schedule", &b, &req);
    return run(L, &req, &b);
}

/* due(q [, limit [, lease]]) */
static int l_due(lua_State *L)
{
    struct mw_store_req req = { .op = MW_STORE_DUE };
    check_key(L, "due", &req);
    int64_t limit = check_index(L, 2, "due", "limit", 100);
    if (limit < 1 || limit > MW_STORE_MAX_DUE)
        arg_error(L, "due", "limit must be an integer of 1..%d", MW_STORE_MAX_DUE);
    req.count = (uint32_t)limit;
    req.ttl_ms = check_ttl(L, 3, "due", "lease", true);
    return run(L, &req, NULL);
}

static int l_unschedule(lua_State *L)
{
    struct mw_store_req req = { .op = MW_STORE_UNSCHEDULE };
    struct mw_buf b = { 0 };
    check_key(L, "unschedule", &req);
    check_wait(L);
    check_item(L, 2, "unschedule", &b, &req);
    return run(L, &req, &b);
}

static int key_only(lua_State *L, enum mw_store_op op, const char *fn)
{
    struct mw_store_req req = { .op = op };
    check_key(L, fn, &req);
    return run(L, &req, NULL);
}

static int l_hgetall(lua_State *L)
{
    return key_only(L, MW_STORE_HGETALL, "hgetall");
}

static int l_lpop(lua_State *L)
{
    return key_only(L, MW_STORE_LPOP, "lpop");
}

static int l_rpop(lua_State *L)
{
    return key_only(L, MW_STORE_RPOP, "rpop");
}

static int l_llen(lua_State *L)
{
    return key_only(L, MW_STORE_LLEN, "llen");
}

/* lrange(k [, start [, stop]]): Redis indices, defaults 0 and -1 (the whole list). */
static int l_lrange(lua_State *L)
{
    struct mw_store_req req = { .op = MW_STORE_LRANGE };
    check_key(L, "lrange", &req);
    req.start = check_index(L, 2, "lrange", "start", 0);
    req.stop = check_index(L, 3, "lrange", "stop", -1);
    return run(L, &req, NULL);
}

int luaopen_moonwire_store(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "get", l_get },       { "set", l_set },       { "add", l_add },
        { "replace", l_replace }, { "incr", l_incr },   { "delete", l_delete },
        { "expire", l_expire }, { "ttl", l_ttl },       { "lpush", l_lpush },
        { "rpush", l_rpush },   { "lpop", l_lpop },     { "rpop", l_rpop },
        { "llen", l_llen },     { "lrange", l_lrange }, { "gets", l_gets },
        { "cas", l_cas },       { "hget", l_hget },     { "hgets", l_hgets },
        { "hset", l_hset },     { "hdel", l_hdel },     { "hcas", l_hcas },
        { "hgetall", l_hgetall }, { "schedule", l_schedule }, { "due", l_due },
        { "unschedule", l_unschedule }, { NULL, NULL },
    };
    lua_newtable(L);
    luaL_register(L, NULL, fns);
    return 1;
}
