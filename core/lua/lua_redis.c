/* lua_redis.c - module moonwire.redis: call(cmd, ...), raw Redis commands for apps.
 *
 * A call goes out on the server's command connection (through the store's Redis
 * backend, which answers it "unavailable" when the server stops) and the handler's
 * coroutine waits for the reply, like the store's calls do. Arguments are strings or
 * numbers; the reply comes back as Lua values. A Redis error reply is a runtime
 * failure, returned as nil, message; only bad arguments raise.
 *
 * The connection is shared by every handler of the node (and by the store), so the
 * commands that would change it for everyone or hold it up are refused: pub/sub,
 * MULTI/EXEC/WATCH (other handlers' commands would land inside the transaction),
 * SELECT, AUTH, HELLO, blocking pops and the like. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>
#include <lauxlib.h>

#include "lua/lua_api.h"
#include "base/lua_json.h"
#include "redis/redis.h"
#include "lua/script.h"
#include "store/store.h"
#include "base/util.h"

/* One call in flight; freed when the reply (or its absence) resumed the caller. */
struct call {
    struct mw_wait wait;
};

/* Commands refused, with the reason shown in the error. */
static const struct {
    const char *name, *why;
} refused[] = {
#define SHARED "it would change the connection every handler shares"
#define BLOCKS "it would hold up the connection every handler shares"
    { "SUBSCRIBE", SHARED },  { "PSUBSCRIBE", SHARED }, { "SSUBSCRIBE", SHARED },
    { "UNSUBSCRIBE", SHARED }, { "PUNSUBSCRIBE", SHARED }, { "SUNSUBSCRIBE", SHARED },
    { "MONITOR", SHARED },    { "SYNC", SHARED },       { "PSYNC", SHARED },
    { "REPLCONF", SHARED },   { "QUIT", SHARED },       { "RESET", SHARED },
    { "HELLO", SHARED },      { "AUTH", SHARED },       { "SELECT", SHARED },
    { "MULTI", "use EVAL for atomic multi-command work" },
    { "EXEC", "use EVAL for atomic multi-command work" },
    { "DISCARD", "use EVAL for atomic multi-command work" },
    { "WATCH", "use EVAL for atomic multi-command work" },
    { "UNWATCH", "use EVAL for atomic multi-command work" },
    { "BLPOP", BLOCKS },      { "BRPOP", BLOCKS },      { "BRPOPLPUSH", BLOCKS },
    { "BLMOVE", BLOCKS },     { "BLMPOP", BLOCKS },     { "BZPOPMIN", BLOCKS },
    { "BZPOPMAX", BLOCKS },   { "BZMPOP", BLOCKS },     { "WAIT", BLOCKS },
    { "WAITAOF", BLOCKS },
#undef SHARED
#undef BLOCKS
};

/* Why the command (arguments 1..argc, all strings by now) may not run here, or NULL. */
static const char *why_refused(lua_State *L, int argc)
{
    const char *cmd = lua_tostring(L, 1);
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
        if (strcasecmp(cmd, refused[i].name) == 0)
            return refused[i].why;
    const char *sub = argc > 1 ? lua_tostring(L, 2) : "";
    if (strcasecmp(cmd, "CLIENT") == 0 &&
        (strcasecmp(sub, "REPLY") == 0 || strcasecmp(sub, "PAUSE") == 0))
        return "it would change the connection every handler shares";
    if (strcasecmp(cmd, "XREAD") == 0 || strcasecmp(cmd, "XREADGROUP") == 0)
        for (int i = 2; i <= argc; i++)
            if (strcasecmp(lua_tostring(L, i), "BLOCK") == 0)
                return "it would hold up the connection every handler shares";
    return NULL;
}

/* Replaces the number at idx by its text: integers without a fraction (Redis reads
 * "3", not "3.0" or "3e+00", as an integer), others with the fewest digits (15..17)
 * that read back exactly, so 0.1 goes as "0.1" and not "0.10000000000000001". */
static void number_to_string(lua_State *L, int idx)
{
    double v = lua_tonumber(L, idx);
    char buf[32];
    if (isnan(v))
        luaL_error(L, "redis.call: argument #%d is NaN", idx);
    if (v == floor(v) && v >= -9223372036854775808.0 && v < 9223372036854775808.0) {
        snprintf(buf, sizeof buf, "%lld", (long long)v);
    } else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, sizeof buf, "%.*g", prec, v);
            if (strtod(buf, NULL) == v)
                break;
        }
    }
    lua_pushstring(L, buf);
    lua_replace(L, idx);
}

/* Pushes reply as a Lua value: status and bulk strings as strings, integers as
 * numbers, arrays as json.array tables (nil elements as json.null, error elements as
 * { err = message }), nil as nil. A top-level error pushes nil and the message.
 * Returns how many values it pushed. */
static int push_reply(lua_State *L, const redisReply *reply, bool top)
{
    luaL_checkstack(L, 4, "redis.call: reply too deep");
    switch (reply->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        lua_pushlstring(L, reply->str, reply->len);
        return 1;
    case REDIS_REPLY_INTEGER:
        lua_pushnumber(L, (lua_Number)reply->integer);
        return 1;
    case REDIS_REPLY_ARRAY:
        mw_json_push_array(L, (int)reply->elements);
        for (size_t i = 0; i < reply->elements; i++) {
            push_reply(L, reply->element[i], false);
            lua_rawseti(L, -2, (int)i + 1);
        }
        return 1;
    case REDIS_REPLY_ERROR:
        if (top) {
            lua_pushnil(L);
            lua_pushlstring(L, reply->str, reply->len);
            return 2;
        }
        lua_createtable(L, 0, 1);
        lua_pushlstring(L, reply->str, reply->len);
        lua_setfield(L, -2, "err");
        return 1;
    case REDIS_REPLY_NIL:
    default:
        if (top)
            lua_pushnil(L);
        else
            lua_pushlightuserdata(L, NULL); /* json.null keeps the array a sequence */
        return 1;
    }
}

static void on_reply(void *ud, struct redisReply *reply)
{
    struct call *c = ud;
    lua_State *co = mw_co_thread(&c->wait);
    int n;
    if (reply) {
        n = push_reply(co, reply, true);
    } else {
        lua_pushnil(co);
        lua_pushliteral(co, "unavailable");
        n = 2;
    }
    mw_co_wake(&c->wait, n);
    free(c);
}

/* redis.call(cmd, ...) -> the reply | nil, err */
static int l_call(lua_State *L)
{
    int argc = lua_gettop(L);
    if (argc < 1 || lua_type(L, 1) != LUA_TSTRING || lua_objlen(L, 1) == 0)
        return luaL_error(L, "redis.call: the command must be a non-empty string");
    for (int i = 2; i <= argc; i++) {
        int t = lua_type(L, i);
        if (t == LUA_TNUMBER)
            number_to_string(L, i);
        else if (t != LUA_TSTRING)
            return luaL_error(L, "redis.call: argument #%d must be a string or a number, not %s",
                              i, lua_typename(L, t));
    }
    const char *why = why_refused(L, argc);
    if (why)
        return luaL_error(L, "redis.call: %s is not available here: %s", lua_tostring(L, 1), why);
    mw_co_check_wait(L); /* raises where waiting is impossible: before allocating */
    if (!mw_redis_configured())
        return luaL_error(L, "redis.call: no redis configured");
    const char **argv = mw_malloc((size_t)argc * sizeof *argv);
    size_t *lens = mw_malloc((size_t)argc * sizeof *lens);
    for (int i = 1; i <= argc; i++)
        argv[i - 1] = lua_tolstring(L, i, &lens[i - 1]);
    struct call *c = mw_calloc(1, sizeof *c);
    int rc = mw_store_redis_call(on_reply, c, argc, argv, lens);
    free(argv);
    free(lens);
    if (rc < 0) { /* Redis down: fail fast, like the store */
        free(c);
        lua_pushnil(L);
        lua_pushliteral(L, "unavailable");
        return 2;
    }
    mw_co_wait(L, &c->wait);
    return lua_yield(L, 0);
}

int luaopen_moonwire_redis(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "call", l_call },
        { NULL, NULL },
    };
    lua_newtable(L);
    luaL_register(L, NULL, fns);
    return 1;
}
