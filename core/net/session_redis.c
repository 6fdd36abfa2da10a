/* session_redis.c - a named session's window in Redis (session_redis.h). */
#include "net/session_redis.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "base/buf.h"
#include "base/log.h"
#include "redis/redis.h"
#include "net/session.h"
#include "base/util.h"

#define POLL_MS 100 /* while another node runs the message */

/* KEYS w z; ARGV key lease_ms window_ms -> {"new"} | {"running"} | {"done", reply} */
static const char BEGIN_LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local v = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if v then\n"
    "  if string.sub(v, 1, 1) == 'd' then return {'done', string.sub(v, 2)} end\n"
    "  if tonumber(string.sub(v, 2)) > now then return {'running'} end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], ARGV[1], 'r' .. (now + tonumber(ARGV[2])))\n"
    "redis.call('ZADD', KEYS[2], now, ARGV[1])\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[3])\n"
    "redis.call('PEXPIRE', KEYS[2], ARGV[3])\n"
    "return {'new'}\n";

/* KEYS w z; ARGV key reply forget window_ms min_ids max_bytes reply_max -> 1 */
static const char END_LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local function drop(k)\n"
    "  local v = redis.call('HGET', KEYS[1], k)\n"
    "  if v and #v > 1 and string.sub(v, 1, 1) == 'd' then\n"
    "    redis.call('HINCRBY', KEYS[1], '', 1 - #v)\n"
    "  end\n"
    "  redis.call('HDEL', KEYS[1], k)\n"
    "  redis.call('ZREM', KEYS[2], k)\n"
    "end\n"
    "if ARGV[3] == '1' then drop(ARGV[1]); return 1 end\n"
    "local bytes, r = tonumber(redis.call('HGET', KEYS[1], '') or '0'), ARGV[2]\n"
    "if #r > tonumber(ARGV[7]) or bytes + #r > tonumber(ARGV[6]) then r = '' end\n"
    "drop(ARGV[1])\n"
    "redis.call('HSET', KEYS[1], ARGV[1], 'd' .. r)\n"
    "redis.call('ZADD', KEYS[2], now, ARGV[1])\n"
    "if #r > 0 then redis.call('HINCRBY', KEYS[1], '', #r) end\n"
    "local n, min = redis.call('ZCARD', KEYS[2]), tonumber(ARGV[5])\n"
    "if n > min then\n"
    "  local cut = now - tonumber(ARGV[4])\n"
    "  for _, k in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', cut, 'LIMIT', 0, n - min)) do\n"
    "    drop(k)\n"
    "  end\n"
    "end\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[4])\n"
    "redis.call('PEXPIRE', KEYS[2], ARGV[4])\n"
    "return 1\n";

static void keys_for(struct mw_buf *w, struct mw_buf *z, const char *user, const char *sid)
{
    mw_buf_printf(w, "mw:sw:{%s\x1f%s}", user, sid);
    mw_buf_printf(z, "mw:sz:{%s\x1f%s}", user, sid);
    mw_buf_putc(w, '\0');
    mw_buf_putc(z, '\0');
}

/* Runs script on the session's two keys with ARGV args. 0, or -1 (no callback). */
static int eval_session(const char *script, const char *user, const char *sid, int nargs,
                        const char **args, mw_redis_cb cb, void *ud)
{
    struct mw_buf w = { 0 }, z = { 0 };
    keys_for(&w, &z, user, sid);
    const char *argv[12] = { "EVAL", script, "2", w.p, z.p };
    for (int i = 0; i < nargs; i++)
        argv[5 + i] = args[i];
    int rc = mw_redis_command(cb, ud, 5 + nargs, argv, NULL);
    mw_buf_free(&w);
    mw_buf_free(&z);
    return rc;
}

/* A begin waiting for Redis, or polling while another node runs the message. */
struct begin {
    uv_timer_t timer; /* first: freed in its close callback */
    mw_session_redis_cb cb;
    void *ud;
    uint64_t deadline;
    char *user, *sid, *key;
    struct begin *prev, *next; /* on `polling` while its timer runs */
};

static struct begin *polling;

static void polling_add(struct begin *b)
{
    b->prev = NULL;
    b->next = polling;
    if (polling)
        polling->prev = b;
    polling = b;
}

static void polling_del(struct begin *b)
{
    if (b->prev)
        b->prev->next = b->next;
    else
        polling = b->next;
    if (b->next)
        b->next->prev = b->prev;
    b->prev = b->next = NULL;
}

static void on_begin_closed(uv_handle_t *h)
{
    struct begin *b = (struct begin *)h;
    free(b->user);
    free(b->sid);
    free(b->key);
    free(b);
}

static void begin_done(struct begin *b, int state, const char *reply)
{
    b->cb(b->ud, state, reply);
    uv_close((uv_handle_t *)&b->timer, on_begin_closed);
}

static int send_begin(struct begin *b);

static void on_poll(uv_timer_t *t)
{
    struct begin *b = (struct begin *)t;
    polling_del(b);
    if (send_begin(b) < 0) /* Redis went away: this node's window decides */
        begin_done(b, MW_DEDUP_NEW, NULL);
}

static void on_begin(void *ud, redisReply *r)
{
    struct begin *b = ud;
    const char *state = r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
                                r->element[0]->type == REDIS_REPLY_STRING
                            ? r->element[0]->str : NULL;
    if (state && strcmp(state, "done") == 0 && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_STRING) {
        begin_done(b, MW_DEDUP_DONE, r->element[1]->len ? r->element[1]->str : NULL);
    } else if (state && strcmp(state, "running") == 0 && mw_now_ms() < b->deadline) {
        uv_timer_start(&b->timer, on_poll, POLL_MS, 0); /* another node has it */
        polling_add(b);
    } else {
        if (r && r->type == REDIS_REPLY_ERROR)
            mw_log_error("session script failed", "err=\"%s\"", r->str);
        begin_done(b, MW_DEDUP_NEW, NULL); /* ours now (or Redis failed: ours alone) */
    }
}

static int send_begin(struct begin *b)
{
    char lease[24], window[24];
    snprintf(lease, sizeof lease, "%d", MW_SESSION_LEASE_MS);
    snprintf(window, sizeof window, "%d", MW_DEDUP_WINDOW_MS);
    const char *args[] = { b->key, lease, window };
    return eval_session(BEGIN_LUA, b->user, b->sid, 3, args, on_begin, b);
}

int mw_session_redis_begin(const char *user, const char *sid, const char *key,
                           mw_session_redis_cb cb, void *ud)
{
    if (!mw_redis_configured())
        return -1;
    struct begin *b = mw_calloc(1, sizeof *b);
    uv_timer_init(uv_default_loop(), &b->timer);
    b->cb = cb;
    b->ud = ud;
    b->deadline = mw_now_ms() + MW_SESSION_LEASE_MS + 1000;
    b->user = mw_strdup(user);
    b->sid = mw_strdup(sid);
    b->key = mw_strdup(key);
    if (send_begin(b) < 0) {
        uv_close((uv_handle_t *)&b->timer, on_begin_closed);
        return -1;
    }
    return 0;
}

void mw_session_redis_stop(void)
{
    while (polling) {
        struct begin *b = polling;
        polling_del(b);
        uv_timer_stop(&b->timer);
        begin_done(b, MW_DEDUP_NEW, NULL);
    }
}

void mw_session_redis_end(const char *user, const char *sid, const char *key, const char *reply,
                          bool forget)
{
    char window[24], min[16], max_bytes[24], reply_max[24];
    if (!mw_redis_configured())
        return;
    snprintf(window, sizeof window, "%d", MW_DEDUP_WINDOW_MS);
    snprintf(min, sizeof min, "%d", MW_DEDUP_MIN);
    snprintf(max_bytes, sizeof max_bytes, "%d", MW_DEDUP_BYTES);
    snprintf(reply_max, sizeof reply_max, "%d", MW_DEDUP_REPLY_MAX);
    const char *args[] = { key, reply ? reply : "", forget ? "1" : "0", window, min, max_bytes,
                           reply_max };
    eval_session(END_LUA, user, sid, 7, args, NULL, NULL);
}
