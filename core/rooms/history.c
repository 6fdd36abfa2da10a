/* history.c - seq and history of rooms: the memory ring (room.c) on one node, a Redis
 * Stream per room when clustered (history.h). */
#include "rooms/history.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "rooms/broker.h"
#include "base/buf.h"
#include "base/log.h"
#include "base/map.h"
#include "base/msg.h"
#include "redis/redis.h"
#include "rooms/room.h"
#include "base/util.h"

/* How long Redis keeps a room's seq and history after its last publish when the route
 * sets no longer history.ttl: as long as a room without members keeps it in memory. */
#define KEEP_MS MW_ROOM_IDLE_KEEP_MS

/* Both scripts start a new epoch (dropping any leftover stream) when the room has
 * none: never seen, expired, or lost by Redis. Stream entry ids are "<seq>-0", so a
 * read seeks straight to since + 1; each entry holds t (ts, ms) and e (the event). */
#define EPOCH_LUA                                                                    \
    "if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then\n"                 \
    "  redis.call('DEL', KEYS[2])\n"                                                 \
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"                                    \
    "end\n"

/* How long Redis remembers a publish token (the dedup window, at least): tokens live
 * in one hash per minute, the current and the previous one are looked at. */
#define TOKEN_BUCKET_MS 60000
#define TOKEN_KEEP_MS (3 * TOKEN_BUCKET_MS)

/* KEYS hm h; ARGV new_epoch keep_ms size ttl_ms ts event_head publish_cmd channel
 * payload_head token token_keep_ms tokens_now tokens_before -> {seq, epoch}, or
 * {seq, epoch, 1} for a token already published (nothing is published again). The
 * event is event_head (the JSON object without its closing brace, with a trailing
 * comma if it has fields) + seq and ts. Entries older than ttl (by their t) are
 * trimmed from the front, a few per publish.
 *
 * The token hashes (the room's hash tag: the same slot) are named in ARGV, not KEYS:
 * while the slot migrates, a script whose declared keys are not all on the target
 * yet is refused (TRYAGAIN), and token hashes are often absent. */
static const char PUBLISH_LUA[] =
    "if ARGV[10] ~= '' then\n"
    "  local s = redis.call('HGET', ARGV[12], ARGV[10]) or redis.call('HGET', ARGV[13], ARGV[10])\n"
    "  if s then return {tonumber(s), redis.call('HGET', KEYS[1], 'epoch') or '', 1} end\n"
    "end\n"
    EPOCH_LUA
    "local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)\n"
    "local ev = ARGV[6] .. '\"seq\":' .. seq .. ',\"ts\":' .. ARGV[5] .. '}'\n"
    "local size, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "if size > 0 then\n"
    "  redis.call('XADD', KEYS[2], 'MAXLEN', size, seq .. '-0', 't', ARGV[5], 'e', ev)\n"
    "  if ttl > 0 then\n"
    "    local cut, last = tonumber(ARGV[5]) - ttl, nil\n"
    "    for _, e in ipairs(redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 32)) do\n"
    "      if tonumber(e[2][2]) >= cut then break end\n"
    "      last = e[1]\n"
    "    end\n"
    "    if last then\n"
    "      redis.call('XTRIM', KEYS[2], 'MINID', (tonumber(string.match(last, '^%d+')) + 1) .. '-0')\n"
    "    end\n"
    "  end\n"
    "  redis.call('PEXPIRE', KEYS[2], ARGV[2])\n"
    "end\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "redis.call(ARGV[7], ARGV[8], ARGV[9] .. ev)\n"
    "if ARGV[10] ~= '' then\n"
    "  redis.call('HSET', ARGV[12], ARGV[10], seq)\n"
    "  redis.call('PEXPIRE', ARGV[12], ARGV[11])\n"
    "end\n"
    "return {seq, redis.call('HGET', KEYS[1], 'epoch')}\n";

/* KEYS hm h; ARGV new_epoch keep_ms since cut_ts -> {seq, epoch, complete, events...}:
 * the kept events (t >= cut_ts) after since, complete = 1 when the first of them is
 * since + 1 or nothing came after since. */
static const char READ_LUA[] =
    EPOCH_LUA
    "local m = redis.call('HMGET', KEYS[1], 'seq', 'epoch')\n"
    "local seq, since, cut = tonumber(m[1] or '0'), tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "local out = {seq, m[2], 1}\n"
    "if since >= seq then return out end\n"
    "out[3] = 0\n"
    "for _, e in ipairs(redis.call('XRANGE', KEYS[2], (since + 1) .. '-0', '+')) do\n"
    "  if tonumber(e[2][2]) >= cut then\n"
    "    if #out == 3 and tonumber(string.match(e[1], '^%d+')) == since + 1 then out[3] = 1 end\n"
    "    out[#out + 1] = e[2][4]\n"
    "  end\n"
    "end\n"
    "return out\n";

static void keys_for(const char *room, char hm[160], char h[160])
{
    snprintf(hm, 160, "mw:hm:{%s}", room);
    snprintf(h, 160, "mw:h:{%s}", room);
}

static void new_epoch(char out[20])
{
    snprintf(out, 20, "%012" PRIx64, (uint64_t)(mw_random_u64() & 0xffffffffffffull));
}

static uint64_t keep_ms(const struct mw_route_config *rc)
{
    return rc->history_ttl_ms > KEEP_MS ? rc->history_ttl_ms : KEEP_MS;
}

/* The publish-token hashes of the minute of ts and of the one before. */
static void token_keys(const char *room, uint64_t ts, char now[200], char before[200])
{
    uint64_t bucket = ts / TOKEN_BUCKET_MS;
    snprintf(now, 200, "mw:ht:{%.160s}:%" PRIu64, room, bucket);
    snprintf(before, 200, "mw:ht:{%.160s}:%" PRIu64, room, bucket - 1);
}

/* Runs a script over the room's two keys with the given ARGV. */
static int eval_room(const char *script, const char *room, int nargs, const char **args,
                     const size_t *arglens, mw_redis_cb cb, void *ud)
{
    char hm[160], h[160];
    keys_for(room, hm, h);
    const char *argv[24] = { "EVAL", script, "2", hm, h };
    size_t lens[24];
    for (int i = 0; i < 5; i++)
        lens[i] = strlen(argv[i]);
    for (int i = 0; i < nargs; i++) {
        argv[5 + i] = args[i];
        lens[5 + i] = arglens[i];
    }
    return mw_redis_command(cb, ud, 5 + nargs, argv, lens);
}

static bool is_int(const redisReply *r)
{
    return r->type == REDIS_REPLY_INTEGER;
}

static bool is_str(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING;
}

static void log_script_error(const char *what, const char *room, const redisReply *r)
{
    if (r && r->type == REDIS_REPLY_ERROR)
        mw_log_error("history script failed", "op=%s room=\"%s\" err=\"%s\"", what, room, r->str);
}

/* ---- read ---- */

struct read_call {
    mw_history_read_cb cb;
    void *ud;
    char room[160];
};

static void read_memory(const char *room, uint64_t since, mw_history_read_cb cb, void *ud)
{
    struct mw_room *r = mw_room_find(room);
    if (r)
        mw_room_history_expire(r, r->hist_ttl_ms, mw_wall_ms());
    uint32_t n = r ? r->hlen : 0, first = 0;
    while (first < n && r->hist[(r->hhead + first) % r->hcap].seq <= since)
        first++;
    const char **events = mw_malloc((n - first + 1) * sizeof *events);
    size_t *lens = mw_malloc((n - first + 1) * sizeof *lens);
    for (uint32_t i = first; i < n; i++)
        events[i - first] = mw_msg_payload(r->hist[(r->hhead + i) % r->hcap].msg, &lens[i - first]);
    /* Complete when the oldest kept event follows `since`, or nothing was published
     * after it at all. */
    uint64_t seq = r ? r->seq : 0;
    struct mw_history_page page = {
        .seq = seq,
        .epoch = r ? r->epoch : "",
        .complete = since >= seq || (n > 0 && r->hist[r->hhead].seq <= since + 1),
        .n = n - first,
        .events = events,
        .lens = lens,
    };
    cb(ud, 0, &page);
    free(events);
    free(lens);
}

static void on_read(void *ud, redisReply *r)
{
    struct read_call *rc = ud;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3 || !is_int(r->element[0]) ||
        !is_str(r->element[1]) || !is_int(r->element[2])) {
        log_script_error("read", rc->room, r);
        rc->cb(rc->ud, MW_HISTORY_EUNAVAIL, NULL);
        free(rc);
        return;
    }
    size_t n = r->elements - 3;
    const char **events = mw_malloc((n + 1) * sizeof *events);
    size_t *lens = mw_malloc((n + 1) * sizeof *lens);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = r->element[3 + i];
        if (is_str(e)) {
            events[k] = e->str;
            lens[k++] = e->len;
        }
    }
    struct mw_history_page page = {
        .seq = (uint64_t)r->element[0]->integer,
        .epoch = r->element[1]->str,
        .complete = r->element[2]->integer == 1,
        .n = k,
        .events = events,
        .lens = lens,
    };
    rc->cb(rc->ud, 0, &page);
    free(events);
    free(lens);
    free(rc);
}

void mw_history_read(const char *room, uint64_t since, const struct mw_route_config *rc,
                     mw_history_read_cb cb, void *ud)
{
    if (!mw_broker_clustered()) {
        read_memory(room, since, cb, ud);
        return;
    }
    char epoch[20], keep[24], since_s[24], cut[24];
    new_epoch(epoch);
    snprintf(keep, sizeof keep, "%" PRIu64, keep_ms(rc));
    snprintf(since_s, sizeof since_s, "%" PRIu64, since);
    uint64_t now = mw_wall_ms(), ttl = rc->history_ttl_ms;
    snprintf(cut, sizeof cut, "%" PRIu64, ttl && ttl < now ? now - ttl : 0);
    const char *args[] = { epoch, keep, since_s, cut };
    size_t lens[] = { strlen(epoch), strlen(keep), strlen(since_s), strlen(cut) };
    struct read_call *call = mw_calloc(1, sizeof *call);
    call->cb = cb;
    call->ud = ud;
    snprintf(call->room, sizeof call->room, "%s", room);
    if (eval_room(READ_LUA, room, 4, args, lens, on_read, call) < 0) {
        free(call);
        cb(ud, MW_HISTORY_EUNAVAIL, NULL);
    }
}

/* ---- publish ---- */

/* The event without its closing brace, ready for more fields: what the publish
 * script and stamp() complete with seq and ts. */
static void event_head(struct mw_buf *b, const char *json, size_t len)
{
    mw_buf_append(b, json, len - 1);
    if (len > 2)
        mw_buf_putc(b, ',');
}

/* The event with seq and ts spliced in before its closing brace. */
static void stamp(struct mw_buf *b, const char *json, size_t len, uint64_t seq, uint64_t ts)
{
    mw_buf_reserve(b, len + 48); /* one allocation: the event, seq and ts */
    event_head(b, json, len);
    if (seq) {
        mw_buf_puts(b, "\"seq\":");
        mw_buf_put_u64(b, seq);
        mw_buf_putc(b, ',');
    }
    mw_buf_puts(b, "\"ts\":");
    mw_buf_put_u64(b, ts);
    mw_buf_putc(b, '}');
}

/* Tokens whose publish has an unknown outcome: Redis may still run it (a Redis that
 * hung runs what it had read once it resumes). Until a retry went through Redis, a
 * publish with such a token must not take the local path (the event would then reach
 * this node's members twice): it is answered "unknown" again. Bounded; entries expire
 * with the tokens Redis keeps. */
#define UNKNOWN_MAX 100000

static struct mw_map unknown; /* token -> struct unknown */

struct unknown {
    uint64_t until; /* monotonic ms */
    char token[];
};

static void unknown_sweep(uint64_t now)
{
    char **old = mw_malloc((unknown.len + 1) * sizeof *old);
    uint32_t n = 0;
    for (uint32_t i = 0; i < unknown.cap; i++) {
        struct unknown *u = unknown.slots[i].val;
        if (unknown.slots[i].key && u->until <= now)
            old[n++] = u->token;
    }
    for (uint32_t i = 0; i < n; i++)
        free(mw_map_del(&unknown, old[i]));
    free(old);
}

static void unknown_add(const char *token)
{
    uint64_t now = mw_now_ms();
    if (!token[0] || mw_map_get(&unknown, token))
        return;
    if (unknown.len >= UNKNOWN_MAX)
        unknown_sweep(now);
    if (unknown.len >= UNKNOWN_MAX)
        return;
    size_t n = strlen(token) + 1;
    struct unknown *u = mw_malloc(sizeof *u + n);
    u->until = now + TOKEN_KEEP_MS;
    memcpy(u->token, token, n);
    mw_map_put(&unknown, u->token, u);
}

static bool unknown_has(const char *token)
{
    struct unknown *u = token[0] ? mw_map_get(&unknown, token) : NULL;
    if (u && u->until <= mw_now_ms()) {
        free(mw_map_del(&unknown, token));
        return false;
    }
    return u != NULL;
}

void mw_history_free(void)
{
    for (uint32_t i = 0; i < unknown.cap; i++)
        if (unknown.slots[i].key)
            free(unknown.slots[i].val);
    mw_map_free(&unknown);
    memset(&unknown, 0, sizeof unknown);
}

/* A publish on its way: everything the script needs, kept while it waits for the
 * room's channel to be heard. */
struct publish_call {
    mw_history_publish_cb cb;
    void *ud;
    unsigned flags;
    uint64_t ts;
    char room[160];
    char *json;  /* the event without seq and ts, for the local fallback */
    size_t len;
    char *token; /* "" for none */
    char epoch[20], keep[24], size[16], ttl[24], ts_s[24], channel[160], token_keep[24];
    const char *cmd;
    struct mw_buf head, phead;
};

static void publish_call_free(struct publish_call *pc)
{
    mw_buf_free(&pc->head);
    mw_buf_free(&pc->phead);
    free(pc->json);
    free(pc->token);
    free(pc);
}

/* Without Redis to sequence it: this node's members only, no seq, not kept. */
static void publish_local(const char *room, const char *json, size_t len, unsigned flags)
{
    struct mw_buf b = { 0 };
    stamp(&b, json, len, 0, mw_wall_ms());
    struct mw_room *r = mw_room_find(room);
    struct mw_msg *m = mw_msg_new(MW_OP_TEXT, b.p, b.len, flags);
    if (r)
        mw_room_broadcast(r, m, NULL, NULL);
    mw_msg_decref(m);
    mw_buf_free(&b);
    mw_broker_dropped++;
}

/* Redis is down, or this node cannot hear the room: the outage behaviour (unless an
 * earlier try of the same message may still be published by Redis). */
static void publish_call_local(struct publish_call *pc)
{
    if (unknown_has(pc->token)) {
        if (pc->cb)
            pc->cb(pc->ud, MW_HISTORY_EUNKNOWN, 0);
        publish_call_free(pc);
        return;
    }
    publish_local(pc->room, pc->json, pc->len, pc->flags);
    if (pc->cb)
        pc->cb(pc->ud, MW_HISTORY_EUNAVAIL, 0);
    publish_call_free(pc);
}

/* The script ran on the node an ASK sent it to (its slot is being migrated): its
 * publish reached that node's subscribers only. Publish the stamped event again, on
 * the channel's master. */
static void republish(const struct publish_call *pc, uint64_t seq)
{
    struct mw_buf b = { 0 };
    mw_buf_append(&b, pc->phead.p, pc->phead.len);
    stamp(&b, pc->json, pc->len, seq, pc->ts);
    const char *argv[] = { pc->cmd, pc->channel, b.p };
    size_t lens[] = { strlen(pc->cmd), strlen(pc->channel), b.len };
    if (mw_redis_command(NULL, NULL, 3, argv, lens) < 0)
        mw_broker_dropped++;
    mw_buf_free(&b);
}

static void on_published(void *ud, redisReply *r)
{
    struct publish_call *pc = ud;
    uint64_t seq = 0;
    if (r && r->type == REDIS_REPLY_ARRAY && (r->elements == 2 || r->elements == 3) &&
        is_int(r->element[0]))
        seq = (uint64_t)r->element[0]->integer;
    if (seq && r->elements == 2)
        mw_redis_stats.published++; /* the script published it (3 elements: done before) */
    if (seq && r->elements == 2 && mw_redis_reply_asked())
        republish(pc, seq);
    else if (r)
        log_script_error("publish", pc->room, r);
    else
        mw_log_warn("publish outcome unknown", "room=\"%s\" why=\"the Redis reply was lost\"",
                    pc->room);
    /* No reply, or an error: nothing can be promised (a retry with the token is safe). */
    if (seq)
        free(mw_map_del(&unknown, pc->token));
    else
        unknown_add(pc->token);
    if (pc->cb)
        pc->cb(pc->ud, seq ? 0 : MW_HISTORY_EUNKNOWN, seq);
    publish_call_free(pc);
}

static void publish_send(struct publish_call *pc)
{
    char t1[200], t2[200];
    token_keys(pc->room, pc->ts, t1, t2);
    const char *args[] = { pc->epoch, pc->keep, pc->size, pc->ttl, pc->ts_s, pc->head.p,
                           pc->cmd, pc->channel, pc->phead.p, pc->token, pc->token_keep, t1, t2 };
    size_t lens[] = { strlen(pc->epoch), strlen(pc->keep), strlen(pc->size), strlen(pc->ttl),
                      strlen(pc->ts_s), pc->head.len, strlen(pc->cmd), strlen(pc->channel),
                      pc->phead.len, strlen(pc->token), strlen(pc->token_keep), strlen(t1),
                      strlen(t2) };
    if (eval_room(PUBLISH_LUA, pc->room, 13, args, lens, on_published, pc) < 0)
        publish_call_local(pc);
}

static void on_heard(void *ud, bool ok)
{
    struct publish_call *pc = ud;
    if (ok)
        publish_send(pc);
    else
        publish_call_local(pc);
}

void mw_history_publish(const char *room, const struct mw_route_config *rc, const char *json,
                        size_t len, unsigned msg_flags, const char *token,
                        mw_history_publish_cb cb, void *ud)
{
    uint64_t ts = mw_wall_ms();
    if (!mw_broker_clustered()) {
        struct mw_room *r = mw_room_find(room);
        uint64_t seq = 0;
        if (r) {
            seq = mw_room_next_seq(r);
            r->hist_ttl_ms = rc->history_ttl_ms;
            mw_room_history_expire(r, r->hist_ttl_ms, ts);
            static struct mw_scratch scratch; /* the message copies the text */
            struct mw_buf spare, *b = mw_scratch_take(&scratch, &spare);
            stamp(b, json, len, seq, ts);
            struct mw_msg *m = mw_msg_new(MW_OP_TEXT, b->p, b->len, msg_flags);
            mw_scratch_give(&scratch, b);
            mw_room_history_push(r, m, seq, ts, rc->history_size);
            mw_room_broadcast(r, m, NULL, NULL);
            mw_msg_decref(m);
        }
        if (cb)
            cb(ud, r ? 0 : MW_HISTORY_ENOROOM, seq);
        return;
    }
    struct publish_call *pc = mw_calloc(1, sizeof *pc);
    pc->cb = cb;
    pc->ud = ud;
    pc->flags = msg_flags;
    pc->ts = ts;
    snprintf(pc->room, sizeof pc->room, "%s", room);
    pc->json = mw_strndup(json, len);
    pc->len = len;
    pc->token = mw_strdup(token ? token : "");
    new_epoch(pc->epoch);
    snprintf(pc->keep, sizeof pc->keep, "%" PRIu64, keep_ms(rc));
    snprintf(pc->size, sizeof pc->size, "%" PRIu32, rc->history_size);
    snprintf(pc->ttl, sizeof pc->ttl, "%" PRIu64, rc->history_ttl_ms);
    snprintf(pc->ts_s, sizeof pc->ts_s, "%" PRIu64, ts);
    snprintf(pc->token_keep, sizeof pc->token_keep, "%d", TOKEN_KEEP_MS);
    mw_broker_room_channel(room, pc->channel, sizeof pc->channel, &pc->cmd);
    event_head(&pc->head, json, len);
    mw_broker_payload_head(&pc->phead, msg_flags, true);
    /* Our members get it from the channel: publish once this node hears it (per room:
     * with a Redis Cluster, rooms on the masters that are up keep working). */
    struct mw_room *r = mw_room_find(room);
    int heard = r && r->nmembers ? mw_redis_when_subscribed(pc->channel, on_heard, pc) : 0;
    if (heard == 0)
        publish_send(pc);
    else if (heard < 0)
        publish_call_local(pc);
}
