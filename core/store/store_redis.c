/* store_redis.c - the Redis backend of the store: every operation is one command on
 * redis.c's command connection, with the memory backend's semantics.
 *
 * Key k lives at "mw:s:" k, so app keys cannot collide with moonwire's own (mw:room:...)
 * and every store key hashes on its own in a Redis Cluster later. Values are the JSON
 * texts the binding produces: a number is "12", so INCRBY and INCRBYFLOAT work on it
 * from redis-cli too, and a string is "\"abc\"".
 *
 * Most operations map to one Redis command whose semantics already match (SET NX/XX,
 * PTTL, the list and hash commands; WRONGTYPE and OOM errors map to "wrong type" and
 * "no memory"). The others are small Lua scripts, run atomically by Redis: incr, which
 * must answer "not found" for a missing key or create it from init with its own TTL,
 * refuse every text that is no JSON number (INCRBYFLOAT takes "0x10" and "1e3" alike),
 * and write the result back the way the memory backend does; expire with ttl 0, which
 * PERSIST alone cannot tell apart from "not found"; cas and hcas, a compare and a write
 * that must not be split; and the timed queue (a sorted set scored by due time in ms),
 * whose schedule and due read the time from Redis (TIME): one clock for every node,
 * whatever their own clocks say. A script runs by EVALSHA once SCRIPT LOAD told us its SHA1,
 * by EVAL before that, and again by EVAL when Redis answers NOSCRIPT (it restarted and
 * lost its script cache; EVAL caches it again).
 *
 * Every request completes from the loop when its reply arrives, or at once with
 * "unavailable" while Redis is down. A request in flight is on the pending list, so
 * that closing the store completes it with "unavailable" at once; its record stays
 * allocated, detached, until hiredis hands the reply (or NULL) back for it. */
#include "store/store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "base/buf.h"
#include "base/log.h"
#include "redis/redis.h"
#include "base/util.h"

#define PREFIX_LEN (sizeof MW_STORE_REDIS_PREFIX - 1)
#define MAX_ARGS 10
#define MAX_SCRIPT_ARGS 5

/* incr(KEYS[1], n = ARGV[1], init = ARGV[2] ("" for none), init_ttl_ms = ARGV[3]):
 * the new value as the JSON text now stored, or an error code: 1 not found, 2 not a
 * number, 3 wrong type, 4 overflow. Numbers are read and written exactly as
 * mw__store_parse_number and mw__store_format_number do (the same C library calls
 * underneath: strtod, and "%.*g" at the shortest of 15..17 digits that reads back).
 * Redis 7 scripts see one frozen clock, so the TTL check and KEEPTTL agree. */
static const char incr_src[] =
    "local t = redis.call('TYPE', KEYS[1]).ok\n"
    "local v\n"
    "if t == 'none' then\n"
    "  if ARGV[2] == '' then return 1 end\n"
    "  v = tonumber(ARGV[2])\n"
    "elseif t ~= 'string' then\n"
    "  return 3\n"
    "else\n"
    "  local s = redis.call('GET', KEYS[1])\n"
    "  if #s >= 64 then return 2 end\n"
    "  local i = s:match('^-?0()') or s:match('^-?[1-9]%d*()')\n"
    "  if not i then return 2 end\n"
    "  i = s:match('^%.%d+()', i) or i\n"
    "  i = s:match('^[eE][-+]?%d+()', i) or i\n"
    "  if i ~= #s + 1 then return 2 end\n"
    "  v = tonumber(s)\n"
    "  if v == nil or v ~= v or v == math.huge or v == -math.huge then return 2 end\n"
    "end\n"
    "v = v + tonumber(ARGV[1])\n"
    "if v ~= v or v == math.huge or v == -math.huge then return 4 end\n"
    "local out\n"
    "if v == math.floor(v) and math.abs(v) < 9007199254740992 then\n"
    "  if v == 0 then v = 0 end\n"
    "  out = string.format('%.0f', v)\n"
    "else\n"
    "  for p = 15, 17 do\n"
    "    out = string.format('%.' .. p .. 'g', v)\n"
    "    if tonumber(out) == v then break end\n"
    "  end\n"
    "end\n"
    "if t ~= 'none' then\n"
    "  redis.call('SET', KEYS[1], out, 'KEEPTTL')\n"
    "elseif ARGV[3] ~= '0' then\n"
    "  redis.call('SET', KEYS[1], out, 'PX', ARGV[3])\n"
    "else\n"
    "  redis.call('SET', KEYS[1], out)\n"
    "end\n"
    "return out\n";

/* persist(KEYS[1]): 1 when the key exists (its TTL, if any, is gone), else 0. */
static const char persist_src[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
    "redis.call('PERSIST', KEYS[1])\n"
    "return 1\n";

/* cas(KEYS[1], has_token, token, has_value, value, ttl_ms): 0 done, 1 changed, 3 wrong
 * type. A missing key is GET's false, which no token equals. */
static const char cas_src[] =
    "local t = redis.call('TYPE', KEYS[1]).ok\n"
    "if t ~= 'none' and t ~= 'string' then return 3 end\n"
    "local cur = t == 'string' and redis.call('GET', KEYS[1])\n"
    "if ARGV[1] == '1' then\n"
    "  if cur ~= ARGV[2] then return 1 end\n"
    "elseif cur then\n"
    "  return 1\n"
    "end\n"
    "if ARGV[3] == '0' then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "elseif ARGV[5] ~= '0' then\n"
    "  redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5])\n"
    "else\n"
    "  redis.call('SET', KEYS[1], ARGV[4])\n"
    "end\n"
    "return 0\n";

/* hcas(KEYS[1], field, has_token, token, has_value, value): as cas, on one field. */
static const char hcas_src[] =
    "local t = redis.call('TYPE', KEYS[1]).ok\n"
    "if t ~= 'none' and t ~= 'hash' then return 3 end\n"
    "local cur = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if ARGV[2] == '1' then\n"
    "  if cur ~= ARGV[3] then return 1 end\n"
    "elseif cur then\n"
    "  return 1\n"
    "end\n"
    "if ARGV[4] == '0' then\n"
    "  redis.call('HDEL', KEYS[1], ARGV[1])\n"
    "else\n"
    "  redis.call('HSET', KEYS[1], ARGV[1], ARGV[5])\n"
    "end\n"
    "return 0\n";

/* schedule(KEYS[1], item, delay_ms): 0, or 3 wrong type. */
static const char schedule_src[] =
    "local t = redis.call('TYPE', KEYS[1]).ok\n"
    "if t ~= 'none' and t ~= 'zset' then return 3 end\n"
    "local now = redis.call('TIME')\n"
    "local ms = now[1] * 1000 + math.floor(now[2] / 1000)\n"
    "redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), ARGV[1])\n"
    "return 0\n";

/* due(KEYS[1], count, lease_ms): the items whose time has come, earliest first, each
 * removed or (lease > 0) queued again lease ms from now; or 3 wrong type. */
static const char due_src[] =
    "local t = redis.call('TYPE', KEYS[1]).ok\n"
    "if t == 'none' then return {} end\n"
    "if t ~= 'zset' then return 3 end\n"
    "local now = redis.call('TIME')\n"
    "local ms = now[1] * 1000 + math.floor(now[2] / 1000)\n"
    "local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ms, 'LIMIT', 0, ARGV[1])\n"
    "local lease = tonumber(ARGV[2])\n"
    "for _, item in ipairs(items) do\n"
    "  if lease > 0 then\n"
    "    redis.call('ZADD', KEYS[1], ms + lease, item)\n"
    "  else\n"
    "    redis.call('ZREM', KEYS[1], item)\n"
    "  end\n"
    "end\n"
    "return items\n";

enum { SCRIPT_INCR, SCRIPT_PERSIST, SCRIPT_CAS, SCRIPT_HCAS, SCRIPT_SCHEDULE, SCRIPT_DUE,
       NSCRIPTS };

static struct script {
    const char *src;
    char sha[41];   /* "" until SCRIPT LOAD answered */
    bool loading;   /* SCRIPT LOAD in flight */
} scripts[NSCRIPTS] = {
    [SCRIPT_INCR] = { incr_src, "", false },
    [SCRIPT_PERSIST] = { persist_src, "", false },
    [SCRIPT_CAS] = { cas_src, "", false },
    [SCRIPT_HCAS] = { hcas_src, "", false },
    [SCRIPT_SCHEDULE] = { schedule_src, "", false },
    [SCRIPT_DUE] = { due_src, "", false },
};

/* One request in flight. */
struct rreq {
    struct rreq *next, *prev; /* on the pending list until completed */
    bool detached;            /* completed by rs_free: the reply is dropped */
    bool raw;                 /* mw_store_redis_call */
    bool retried;             /* a script already resent by EVAL after NOSCRIPT */
    int script;               /* SCRIPT_* or -1 */
    enum mw_store_op op;
    mw_store_cb cb;
    mw_store_redis_cb raw_cb;
    void *ud;
    /* A script's arguments, kept for the EVAL retry: ARGV, one after another in
     * argbuf, and the key. */
    int nargs;
    size_t arglen[MAX_SCRIPT_ARGS];
    struct mw_buf argbuf;
    size_t keylen;
    char key[];
};

static struct {
    bool open;
    struct rreq *head;
} rs;

/* ---- the pending list ---- */

static void pending_add(struct rreq *r)
{
    r->prev = NULL;
    r->next = rs.head;
    if (rs.head)
        rs.head->prev = r;
    rs.head = r;
}

static void pending_del(struct rreq *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        rs.head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->next = r->prev = NULL;
}

/* ---- replies -> results ---- */

static const char *op_name(enum mw_store_op op)
{
    static const char *const names[] = {
        [MW_STORE_GET] = "get",       [MW_STORE_SET] = "set",     [MW_STORE_ADD] = "add",
        [MW_STORE_REPLACE] = "replace", [MW_STORE_INCR] = "incr", [MW_STORE_DELETE] = "delete",
        [MW_STORE_EXPIRE] = "expire", [MW_STORE_TTL] = "ttl",     [MW_STORE_LPUSH] = "lpush",
        [MW_STORE_RPUSH] = "rpush",   [MW_STORE_LPOP] = "lpop",   [MW_STORE_RPOP] = "rpop",
        [MW_STORE_LLEN] = "llen",     [MW_STORE_LRANGE] = "lrange",   [MW_STORE_CAS] = "cas",
        [MW_STORE_HGET] = "hget",     [MW_STORE_HSET] = "hset",   [MW_STORE_HDEL] = "hdel",
        [MW_STORE_HGETALL] = "hgetall", [MW_STORE_HCAS] = "hcas",
        [MW_STORE_SCHEDULE] = "schedule", [MW_STORE_DUE] = "due",
        [MW_STORE_UNSCHEDULE] = "unschedule",
    };
    return (size_t)op < sizeof names / sizeof *names ? names[op] : "?";
}

/* A Redis error reply as a store error: WRONGTYPE and OOM have store meanings; any
 * other (LOADING, READONLY, MASTERDOWN, NOAUTH...) means Redis cannot serve us now. */
static int error_of(const redisReply *reply, enum mw_store_op op)
{
    if (strncmp(reply->str, "WRONGTYPE", 9) == 0)
        return MW_STORE_EWRONGTYPE;
    if (strncmp(reply->str, "OOM ", 4) == 0)
        return MW_STORE_ENOMEM;
    mw_log_warn("store redis error", "op=%s err=\"%s\"", op_name(op), reply->str);
    return MW_STORE_EUNAVAIL;
}

static int unexpected(const redisReply *reply, enum mw_store_op op)
{
    mw_log_warn("store redis unexpected reply", "op=%s type=%d", op_name(op), reply->type);
    return MW_STORE_EUNAVAIL;
}

/* A bulk string or nil as an optional value. */
static int take_value(const redisReply *reply, struct mw_store_result *res)
{
    if (reply->type == REDIS_REPLY_NIL)
        return 0;
    if (reply->type != REDIS_REPLY_STRING)
        return unexpected(reply, res->op);
    res->value = reply->str;
    res->valuelen = reply->len;
    return 0;
}

/* A script's status: 0 done, 1 changed, 3 wrong type. */
static int take_status(const redisReply *reply, struct mw_store_result *res)
{
    if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 0)
        return 0;
    if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 1)
        return MW_STORE_ECHANGED;
    if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 3)
        return MW_STORE_EWRONGTYPE;
    return unexpected(reply, res->op);
}

/* An array of bulk strings: lrange, due, hgetall. */
static int take_strings(const redisReply *reply, struct mw_store_result *res,
                        struct mw_store_str **vals)
{
    if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 3 && res->op == MW_STORE_DUE)
        return MW_STORE_EWRONGTYPE;
    if (reply->type != REDIS_REPLY_ARRAY)
        return unexpected(reply, res->op);
    if (reply->elements == 0)
        return 0;
    *vals = mw_malloc(reply->elements * sizeof **vals);
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        if (e->type != REDIS_REPLY_STRING)
            return unexpected(e, res->op);
        (*vals)[i] = (struct mw_store_str){ e->str, e->len };
    }
    res->values = *vals;
    res->nvalues = reply->elements;
    return 0;
}

static int take_incr(const redisReply *reply, struct mw_store_result *res)
{
    static const int codes[] = { 0, MW_STORE_ENOTFOUND, MW_STORE_ENOTNUM,
                                 MW_STORE_EWRONGTYPE, MW_STORE_ERANGE };
    if (reply->type == REDIS_REPLY_INTEGER && reply->integer >= 1 && reply->integer <= 4)
        return codes[reply->integer];
    if (reply->type == REDIS_REPLY_STRING &&
        mw__store_parse_number(reply->str, reply->len, &res->num) == 0)
        return 0;
    return unexpected(reply, res->op);
}

/* Fills res from a reply that is not an error. */
static int take_reply(const redisReply *reply, struct mw_store_result *res,
                      struct mw_store_str **vals)
{
    switch (res->op) {
    case MW_STORE_GET:
    case MW_STORE_LPOP:
    case MW_STORE_RPOP:
    case MW_STORE_HGET:
        return take_value(reply, res);
    case MW_STORE_CAS:
    case MW_STORE_HCAS:
    case MW_STORE_SCHEDULE:
        return take_status(reply, res);
    case MW_STORE_HSET:
        return reply->type == REDIS_REPLY_INTEGER ? 0 : unexpected(reply, res->op);
    case MW_STORE_HDEL:
        if (reply->type != REDIS_REPLY_INTEGER)
            return unexpected(reply, res->op);
        res->num = (double)reply->integer;
        return 0;
    case MW_STORE_UNSCHEDULE: /* ZREM: 1 removed, 0 not queued */
        if (reply->type != REDIS_REPLY_INTEGER)
            return unexpected(reply, res->op);
        return reply->integer == 1 ? 0 : MW_STORE_ENOTFOUND;
    case MW_STORE_LRANGE:
    case MW_STORE_HGETALL:
    case MW_STORE_DUE:
        return take_strings(reply, res, vals);
    case MW_STORE_SET:
    case MW_STORE_ADD:
    case MW_STORE_REPLACE:
        if (reply->type == REDIS_REPLY_STATUS)
            return 0;
        if (reply->type == REDIS_REPLY_NIL && res->op != MW_STORE_SET)
            return res->op == MW_STORE_ADD ? MW_STORE_EEXIST : MW_STORE_ENOTFOUND;
        return unexpected(reply, res->op);
    case MW_STORE_INCR:
        return take_incr(reply, res);
    case MW_STORE_DELETE:
        return reply->type == REDIS_REPLY_INTEGER ? 0 : unexpected(reply, res->op);
    case MW_STORE_EXPIRE: /* PEXPIRE or the persist script: 1 done, 0 no such key */
        if (reply->type != REDIS_REPLY_INTEGER)
            return unexpected(reply, res->op);
        return reply->integer == 1 ? 0 : MW_STORE_ENOTFOUND;
    case MW_STORE_TTL: /* PTTL: -2 no such key, -1 no expiry */
        if (reply->type != REDIS_REPLY_INTEGER)
            return unexpected(reply, res->op);
        if (reply->integer == -2)
            return MW_STORE_ENOTFOUND;
        res->num = reply->integer < 0 ? 0 : (double)reply->integer / 1000.0;
        return 0;
    case MW_STORE_LPUSH:
    case MW_STORE_RPUSH:
    case MW_STORE_LLEN:
        if (reply->type != REDIS_REPLY_INTEGER)
            return unexpected(reply, res->op);
        res->num = (double)reply->integer;
        return 0;
    }
    return unexpected(reply, res->op);
}

/* Calls r's callback for reply (NULL: "unavailable"). */
static void complete(struct rreq *r, redisReply *reply)
{
    if (r->raw) {
        r->raw_cb(r->ud, reply);
        return;
    }
    struct mw_store_result res = { .op = r->op };
    struct mw_store_str *vals = NULL;
    if (!reply)
        res.err = MW_STORE_EUNAVAIL;
    else if (reply->type == REDIS_REPLY_ERROR)
        res.err = error_of(reply, r->op);
    else
        res.err = take_reply(reply, &res, &vals);
    if (res.err) { /* nothing half-filled reaches the caller */
        struct mw_store_result failed = { .op = r->op, .err = res.err };
        res = failed;
    }
    r->cb(r->ud, &res);
    free(vals);
}

/* ---- sending ---- */

static int send_script(struct rreq *r);

static void rreq_free(struct rreq *r)
{
    mw_buf_free(&r->argbuf);
    free(r);
}

static void on_reply(void *ud, redisReply *reply)
{
    struct rreq *r = ud;
    if (r->detached) {
        rreq_free(r);
        return;
    }
    if (reply && reply->type == REDIS_REPLY_ERROR && r->script >= 0 && !r->retried &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        r->retried = true; /* Redis lost its script cache: EVAL caches the script again */
        if (send_script(r) == 0)
            return;
        reply = NULL; /* went down meanwhile */
    }
    pending_del(r);
    complete(r, reply);
    rreq_free(r);
}

static void on_script_loaded(void *ud, redisReply *reply)
{
    struct script *s = ud;
    s->loading = false;
    if (reply && reply->type == REDIS_REPLY_STRING && reply->len == 40)
        memcpy(s->sha, reply->str, 41);
}

/* Runs r's script: EVALSHA when its SHA1 is known and this is no retry, else EVAL
 * (which also makes Redis cache it), asking for the SHA1 once meanwhile. */
static int send_script(struct rreq *r)
{
    struct script *s = &scripts[r->script];
    const char *argv[MAX_ARGS];
    size_t lens[MAX_ARGS];
    int argc = 0;
    bool by_sha = s->sha[0] && !r->retried;
    if (!s->sha[0] && !s->loading) {
        const char *load[] = { "SCRIPT", "LOAD", s->src };
        size_t load_lens[] = { 6, 4, strlen(s->src) };
        s->loading = mw_redis_command(on_script_loaded, s, 3, load, load_lens) == 0;
    }
    argv[argc] = by_sha ? "EVALSHA" : "EVAL";
    lens[argc] = strlen(argv[argc]);
    argc++;
    argv[argc] = by_sha ? s->sha : s->src;
    lens[argc++] = strlen(by_sha ? s->sha : s->src);
    argv[argc] = "1";
    lens[argc++] = 1;
    argv[argc] = r->key;
    lens[argc++] = r->keylen;
    const char *p = r->argbuf.p;
    for (int i = 0; i < r->nargs; i++) {
        argv[argc] = p ? p : "";
        lens[argc++] = r->arglen[i];
        p += r->arglen[i];
    }
    return mw_redis_command(on_reply, r, argc, argv, lens);
}

static struct rreq *rreq_new(const struct mw_store_req *req, mw_store_cb cb, void *ud)
{
    struct rreq *r = mw_calloc(1, sizeof *r + PREFIX_LEN + req->keylen + 1);
    r->op = req->op;
    r->cb = cb;
    r->ud = ud;
    r->script = -1;
    memcpy(r->key, MW_STORE_REDIS_PREFIX, PREFIX_LEN);
    memcpy(r->key + PREFIX_LEN, req->key, req->keylen);
    r->keylen = PREFIX_LEN + req->keylen;
    return r;
}

/* Appends a script argument (ARGV[nargs + 1]). */
static void arg_add(struct rreq *r, const char *p, size_t n)
{
    mw_assert(r->nargs < MAX_SCRIPT_ARGS);
    mw_buf_append(&r->argbuf, p, n);
    r->arglen[r->nargs++] = n;
}

static void arg_str(struct rreq *r, const char *s)
{
    arg_add(r, s, strlen(s));
}

static void arg_double(struct rreq *r, double v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.17g", v);
    arg_str(r, buf);
}

static void arg_u64(struct rreq *r, uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    arg_str(r, buf);
}

/* cas and hcas: whether a token is expected and which, whether a value is written
 * (else: delete) and which. */
static void args_cas(struct rreq *r, const struct mw_store_req *req)
{
    arg_str(r, req->has_token ? "1" : "0");
    arg_add(r, req->has_token ? req->token : "", req->has_token ? req->tokenlen : 0);
    arg_str(r, req->value ? "1" : "0");
    arg_add(r, req->value ? req->value : "", req->value ? req->valuelen : 0);
}

/* Sends req's command for r. Returns 0, or -1 when Redis is down. */
static int send_req(struct rreq *r, const struct mw_store_req *req)
{
    const char *argv[MAX_ARGS];
    size_t lens[MAX_ARGS];
    int argc = 0;
    char ttl[24], start[24], stop[24];
#define ARG(p, n) (argv[argc] = (p), lens[argc] = (n), argc++)
#define ARGS(s) ARG((s), strlen(s))

    switch (req->op) {
    case MW_STORE_INCR:
        r->script = SCRIPT_INCR;
        arg_double(r, req->n);
        if (req->has_init)
            arg_double(r, req->init);
        else
            arg_str(r, "");
        arg_u64(r, req->has_init ? req->ttl_ms : 0);
        return send_script(r);
    case MW_STORE_CAS:
        r->script = SCRIPT_CAS;
        args_cas(r, req);
        arg_u64(r, req->ttl_ms);
        return send_script(r);
    case MW_STORE_HCAS:
        r->script = SCRIPT_HCAS;
        arg_add(r, req->field, req->fieldlen);
        args_cas(r, req);
        return send_script(r);
    case MW_STORE_SCHEDULE:
        r->script = SCRIPT_SCHEDULE;
        arg_add(r, req->value, req->valuelen);
        arg_u64(r, req->ttl_ms);
        return send_script(r);
    case MW_STORE_DUE:
        r->script = SCRIPT_DUE;
        arg_u64(r, req->count);
        arg_u64(r, req->ttl_ms);
        return send_script(r);
    case MW_STORE_HGET:
    case MW_STORE_HDEL:
        ARGS(req->op == MW_STORE_HGET ? "HGET" : "HDEL");
        ARG(r->key, r->keylen);
        ARG(req->field, req->fieldlen);
        break;
    case MW_STORE_HSET:
        ARGS("HSET");
        ARG(r->key, r->keylen);
        ARG(req->field, req->fieldlen);
        ARG(req->value, req->valuelen);
        break;
    case MW_STORE_UNSCHEDULE:
        ARGS("ZREM");
        ARG(r->key, r->keylen);
        ARG(req->value, req->valuelen);
        break;
    case MW_STORE_EXPIRE:
        if (req->ttl_ms == 0) {
            r->script = SCRIPT_PERSIST;
            return send_script(r);
        }
        snprintf(ttl, sizeof ttl, "%" PRIu64, req->ttl_ms);
        ARGS("PEXPIRE");
        ARG(r->key, r->keylen);
        ARGS(ttl);
        break;
    case MW_STORE_SET:
    case MW_STORE_ADD:
    case MW_STORE_REPLACE:
        ARGS("SET");
        ARG(r->key, r->keylen);
        ARG(req->value, req->valuelen);
        if (req->op != MW_STORE_SET)
            ARGS(req->op == MW_STORE_ADD ? "NX" : "XX");
        if (req->ttl_ms) {
            snprintf(ttl, sizeof ttl, "%" PRIu64, req->ttl_ms);
            ARGS("PX");
            ARGS(ttl);
        }
        break;
    case MW_STORE_LPUSH:
    case MW_STORE_RPUSH:
        ARGS(req->op == MW_STORE_LPUSH ? "LPUSH" : "RPUSH");
        ARG(r->key, r->keylen);
        ARG(req->value, req->valuelen);
        break;
    case MW_STORE_LRANGE:
        snprintf(start, sizeof start, "%" PRId64, req->start);
        snprintf(stop, sizeof stop, "%" PRId64, req->stop);
        ARGS("LRANGE");
        ARG(r->key, r->keylen);
        ARGS(start);
        ARGS(stop);
        break;
    case MW_STORE_GET:
    case MW_STORE_DELETE:
    case MW_STORE_TTL:
    case MW_STORE_LPOP:
    case MW_STORE_RPOP:
    case MW_STORE_LLEN:
    case MW_STORE_HGETALL: {
        static const char *const names[] = {
            [MW_STORE_GET] = "GET",   [MW_STORE_DELETE] = "DEL", [MW_STORE_TTL] = "PTTL",
            [MW_STORE_LPOP] = "LPOP", [MW_STORE_RPOP] = "RPOP",  [MW_STORE_LLEN] = "LLEN",
            [MW_STORE_HGETALL] = "HGETALL",
        };
        ARGS(names[req->op]);
        ARG(r->key, r->keylen);
        break;
    }
    }
#undef ARGS
#undef ARG
    return mw_redis_command(on_reply, r, argc, argv, lens);
}

/* ---- the backend ---- */

static int rs_submit(const struct mw_store_req *req, mw_store_cb cb, void *ud)
{
    struct rreq *r = rreq_new(req, cb, ud);
    if (send_req(r, req) < 0) { /* down: fail fast, nothing was sent */
        rreq_free(r);
        struct mw_store_result res = { .op = req->op, .err = MW_STORE_EUNAVAIL };
        cb(ud, &res);
        return 1;
    }
    pending_add(r);
    return 0;
}

int mw_store_redis_call(mw_store_redis_cb cb, void *ud, int argc, const char **argv,
                        const size_t *lens)
{
    if (!rs.open)
        return -1;
    struct rreq *r = mw_calloc(1, sizeof *r);
    r->raw = true;
    r->raw_cb = cb;
    r->ud = ud;
    r->script = -1;
    if (mw_redis_command(on_reply, r, argc, argv, lens) < 0) {
        rreq_free(r);
        return -1;
    }
    pending_add(r);
    return 0;
}

static bool rs_may_defer(void)
{
    return true;
}

/* Counters the node cannot know without asking Redis (INFO keyspace has them). */
static void rs_stats(struct mw_store_stats *out)
{
    (void)out;
}

void mw__store_redis_open(void)
{
    mw_assert(!rs.open);
    rs.open = true;
}

static void rs_free(void)
{
    rs.open = false; /* first: callbacks below may call again */
    while (rs.head) {
        struct rreq *r = rs.head;
        pending_del(r);
        r->detached = true; /* freed by on_reply when hiredis lets go of it */
        complete(r, NULL);
    }
}

const struct mw_store_backend mw_store_redis = {
    .name = "redis",
    .submit = rs_submit,
    .may_defer = rs_may_defer,
    .stats = rs_stats,
    .free = rs_free,
};
