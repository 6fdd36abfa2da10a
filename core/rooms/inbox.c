/* inbox.c - per-user notification inboxes (inbox.h): ids, the memory backend, the
 * Redis backend, and live delivery through the broker.
 *
 * Memory: a map user -> box, a box an array of items oldest first. Bounds: inbox.size
 * items per box, inbox.ttl per item (expired items go when their box is touched, and
 * a few boxes are swept on every push so that abandoned ones do not stay forever), and
 * MW_INBOX_MEMORY_MAX_BYTES over all boxes.
 *
 * Redis: a user's inbox is the list mw:inbox:{USER} of item texts, oldest first. The
 * hash tag keeps one key per user whole on one Redis Cluster master; every operation
 * touches that one key, so it runs as one command or one script (atomic in Redis).
 * The key's TTL is reset to inbox.ttl on every push; items older than that inside a
 * live list are skipped when listed. Commands go through the store's raw call
 * (mw_store_redis_call), which keeps them on the store's pending list so that closing
 * the store completes them. Scripts are sent with EVAL: Redis caches them by hash, and
 * notifications are not a hot path that needs EVALSHA's saved bytes.
 *
 * An id is "<ms, 12 hex>-<process tag, 8 hex>-<counter, hex>": ordered by time, and
 * unique across nodes and restarts without asking anyone (the tag is random per
 * process). Item texts are written by us with the id first and ts second, so that both
 * can be read back without a JSON parser (in C and in the Redis scripts). */
#include "rooms/inbox.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "rooms/broker.h"
#include "base/buf.h"
#include "base/jsonw.h"
#include "base/ident.h"
#include "base/log.h"
#include "base/map.h"
#include "base/msg.h"
#include "store/store.h"
#include "base/util.h"

#define ID_LEN 48
#define KEY_PREFIX "mw:inbox:{"
#define SWEEP_PER_PUSH 4

struct item {
    char *text; /* {"id":ID,"ts":MS,"data":PAYLOAD} */
    size_t len;
    uint64_t ts;
    char id[ID_LEN];
};

struct box {
    char *user; /* the map key */
    struct item *items;
    uint32_t len, cap;
};

static struct {
    const struct mw_config *cfg;
    uint32_t size;
    uint64_t ttl_ms;
    size_t max_item;
    uint32_t tag;
    uint64_t counter;
    struct mw_map boxes;
    uint32_t sweep_at;
    struct mw_inbox_stats stats;
} ib = { .size = 100, .max_item = 4096 };

const char *mw_inbox_strerror(int err)
{
    switch (err) {
    case 0: return "ok";
    case MW_INBOX_EINVAL: return "invalid argument";
    case MW_INBOX_EUNAVAIL: return "unavailable";
    case MW_INBOX_EFULL: return "inbox memory full";
    default: return "unknown error";
    }
}

void mw_inbox_init(const struct mw_config *cfg)
{
    ib.cfg = cfg;
    ib.size = cfg->inbox_size ? cfg->inbox_size : 100;
    ib.ttl_ms = cfg->inbox_ttl_ms;
    ib.max_item = cfg->inbox_max_item ? cfg->inbox_max_item : 4096;
    ib.tag = (uint32_t)mw_random_u64();
}

static void box_free(struct box *b)
{
    for (uint32_t i = 0; i < b->len; i++)
        free(b->items[i].text);
    free(b->items);
    free(b->user);
    free(b);
}

void mw_inbox_free(void)
{
    for (uint32_t i = 0; i < ib.boxes.cap; i++)
        if (ib.boxes.slots[i].key)
            box_free(ib.boxes.slots[i].val);
    mw_map_free(&ib.boxes);
    ib.stats.users = ib.stats.items = ib.stats.bytes = 0;
}

const char *mw_inbox_user_error(const char *user, size_t len)
{
    return mw_user_id_error(user, len);
}

size_t mw_inbox_max_item(void)
{
    return ib.max_item;
}

void mw_inbox_stats(struct mw_inbox_stats *out)
{
    *out = ib.stats;
}

static bool on_redis(void)
{
    return mw_store_on_redis();
}

static bool expired(uint64_t ts, uint64_t now)
{
    return ib.ttl_ms && ts + ib.ttl_ms <= now;
}

/* The id and ts of an item text we wrote; false for anything else. */
static bool parse_item(const char *p, size_t len, const char **id, size_t *idlen, uint64_t *ts)
{
    static const char head[] = "{\"id\":\"";
    if (len < sizeof head || memcmp(p, head, sizeof head - 1) != 0)
        return false;
    const char *s = p + sizeof head - 1, *end = p + len;
    const char *q = memchr(s, '"', (size_t)(end - s));
    if (!q || end - q < 8 || memcmp(q, "\",\"ts\":", 7) != 0)
        return false;
    *id = s;
    *idlen = (size_t)(q - s);
    uint64_t v = 0;
    for (q += 7; q < end && *q >= '0' && *q <= '9'; q++)
        v = v * 10 + (uint64_t)(*q - '0');
    *ts = v;
    return true;
}

/* ---- live delivery ---- */

static void deliver(const char *user, struct mw_buf *event)
{
    struct mw_msg *m = mw_msg_new(MW_OP_TEXT, event->p, event->len, 0);
    mw_broker_user(user, m);
    mw_msg_decref(m);
}

static void deliver_item(const char *user, const char *item, size_t len)
{
    struct mw_buf b = { 0 };
    mw_buf_puts(&b, "{\"type\":\"notify\",\"data\":");
    mw_buf_append(&b, item, len);
    mw_buf_putc(&b, '}');
    deliver(user, &b);
    mw_buf_free(&b);
}

/* ids: the JSON array of the ids that went; nothing is sent for an empty one. */
static void deliver_read(const char *user, const char *ids, size_t len)
{
    if (len <= 2)
        return;
    struct mw_buf b = { 0 };
    mw_buf_puts(&b, "{\"type\":\"notify:read\",\"data\":{\"ids\":");
    mw_buf_append(&b, ids, len);
    mw_buf_puts(&b, "}}");
    deliver(user, &b);
    mw_buf_free(&b);
}

static int done(mw_inbox_cb cb, void *ud, int err, const char *id, const struct mw_buf *json)
{
    struct mw_inbox_result res = { .err = err, .id = id };
    if (json) {
        res.json = json->p;
        res.len = json->len;
    }
    cb(ud, &res);
    return 1;
}

/* ---- memory ---- */

static void drop_items(struct box *b, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        ib.stats.bytes -= b->items[i].len;
        free(b->items[i].text);
    }
    memmove(b->items, b->items + n, (b->len - n) * sizeof *b->items);
    b->len -= n;
    ib.stats.items -= n;
}

static void drop_expired(struct box *b, uint64_t now)
{
    uint32_t n = 0;
    while (n < b->len && expired(b->items[n].ts, now))
        n++;
    if (n)
        drop_items(b, n);
}

/* The user's box with its expired items gone; NULL when there is none left. */
static struct box *box_get(const char *user, uint64_t now)
{
    struct box *b = mw_map_get(&ib.boxes, user);
    if (!b)
        return NULL;
    drop_expired(b, now);
    if (b->len)
        return b;
    mw_map_del(&ib.boxes, b->user);
    box_free(b);
    ib.stats.users--;
    return NULL;
}

/* A few slots per push: frees the boxes nobody touched until all their items
 * expired. */
static void sweep(uint64_t now)
{
    if (!ib.ttl_ms || !ib.boxes.cap)
        return;
    for (int k = 0; k < SWEEP_PER_PUSH; k++) {
        uint32_t i = ib.sweep_at++ & (ib.boxes.cap - 1);
        if (ib.boxes.slots[i].key)
            box_get(ib.boxes.slots[i].key, now);
    }
}

static int mem_push(const char *user, struct item *it, mw_inbox_cb cb, void *ud)
{
    sweep(it->ts);
    struct box *b = box_get(user, it->ts);
    if (ib.stats.bytes + it->len > MW_INBOX_MEMORY_MAX_BYTES) {
        free(it->text);
        ib.stats.failed++;
        mw_log_warn("inbox full", "user=%s bytes=%zu", user, ib.stats.bytes);
        return done(cb, ud, MW_INBOX_EFULL, NULL, NULL);
    }
    if (!b) {
        b = mw_calloc(1, sizeof *b);
        b->user = mw_strdup(user);
        mw_map_put(&ib.boxes, b->user, b);
        ib.stats.users++;
    }
    if (b->len == ib.size) { /* full: the oldest goes */
        drop_items(b, 1);
        ib.stats.trimmed++;
    }
    if (b->len == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 8;
        if (b->cap > ib.size)
            b->cap = ib.size;
        b->items = mw_realloc(b->items, b->cap * sizeof *b->items);
    }
    b->items[b->len++] = *it;
    ib.stats.items++;
    ib.stats.bytes += it->len;
    ib.stats.pushed++;
    deliver_item(user, it->text, it->len);
    return done(cb, ud, 0, it->id, NULL);
}

static int mem_list(const char *user, mw_inbox_cb cb, void *ud)
{
    struct box *b = box_get(user, mw_wall_ms());
    struct mw_buf out = { 0 };
    mw_buf_putc(&out, '[');
    for (uint32_t i = 0; b && i < b->len; i++) {
        if (i)
            mw_buf_putc(&out, ',');
        mw_buf_append(&out, b->items[i].text, b->items[i].len);
    }
    mw_buf_putc(&out, ']');
    done(cb, ud, 0, NULL, &out);
    mw_buf_free(&out);
    return 1;
}

static bool wanted(const char *id, const char *const *ids, const size_t *lens, size_t nids)
{
    size_t len = strlen(id);
    for (size_t i = 0; i < nids; i++)
        if (lens[i] == len && memcmp(ids[i], id, len) == 0)
            return true;
    return false;
}

static int mem_read(const char *user, const char *const *ids, const size_t *lens, size_t nids,
                    mw_inbox_cb cb, void *ud)
{
    struct box *b = box_get(user, mw_wall_ms());
    struct mw_buf out = { 0 };
    mw_buf_putc(&out, '[');
    uint32_t kept = 0, gone = 0;
    for (uint32_t i = 0; b && i < b->len; i++) {
        struct item *it = &b->items[i];
        if (!wanted(it->id, ids, lens, nids)) {
            b->items[kept++] = *it;
            continue;
        }
        mw_buf_puts(&out, gone++ ? ",\"" : "\"");
        mw_buf_puts(&out, it->id);
        mw_buf_putc(&out, '"');
        ib.stats.bytes -= it->len;
        free(it->text);
    }
    mw_buf_putc(&out, ']');
    if (b) {
        b->len = kept;
        ib.stats.items -= gone;
        ib.stats.read += gone;
        box_get(user, 0); /* frees it when empty */
    }
    deliver_read(user, out.p, out.len);
    done(cb, ud, 0, NULL, &out);
    mw_buf_free(&out);
    return 1;
}

/* ---- Redis ---- */

/* push(KEYS[1], item = ARGV[1], size = ARGV[2], ttl_ms = ARGV[3] ("0": none)): the
 * number of old items trimmed. */
static const char push_src[] =
    "local n = redis.call('RPUSH', KEYS[1], ARGV[1])\n"
    "local over = n - tonumber(ARGV[2])\n"
    "if over > 0 then redis.call('LTRIM', KEYS[1], over, -1) end\n"
    "if ARGV[3] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end\n"
    "if over > 0 then return over end\n"
    "return 0\n";

/* read(KEYS[1], ids = ARGV): removes the items with those ids; returns their ids in
 * inbox order. An item's id is the string its text starts with (we wrote it). */
static const char read_src[] =
    "local want = {}\n"
    "for i = 1, #ARGV do want[ARGV[i]] = true end\n"
    "local gone = {}\n"
    "for _, it in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do\n"
    "  local id = string.match(it, '^{\"id\":\"([^\"]*)\"')\n"
    "  if id and want[id] then\n"
    "    redis.call('LREM', KEYS[1], 1, it)\n"
    "    want[id] = nil\n"
    "    gone[#gone + 1] = id\n"
    "  end\n"
    "end\n"
    "return gone\n";

enum rop { R_PUSH, R_LIST, R_READ };

/* One Redis request in flight; the store's pending list holds it. */
struct rcall {
    enum rop op;
    mw_inbox_cb cb;
    void *ud;
    char user[MW_INBOX_MAX_USER + 1];
    char id[ID_LEN];
    char *item; /* push: delivered live once stored */
    size_t itemlen;
};

static void key_of(char *out, size_t n, const char *user)
{
    snprintf(out, n, KEY_PREFIX "%s}", user);
}

static int reply_error(const struct rcall *r, const redisReply *reply)
{
    static const char *const ops[] = { "push", "list", "read" };
    if (!reply)
        return MW_INBOX_EUNAVAIL;
    if (reply->type == REDIS_REPLY_ERROR)
        mw_log_warn("inbox redis error", "op=%s user=%s err=\"%s\"", ops[r->op], r->user, reply->str);
    else
        mw_log_warn("inbox redis unexpected reply", "op=%s user=%s type=%d", ops[r->op], r->user,
                    reply->type);
    return MW_INBOX_EUNAVAIL;
}

static void on_push_reply(struct rcall *r, redisReply *reply)
{
    if (!reply || reply->type != REDIS_REPLY_INTEGER) {
        ib.stats.failed++;
        done(r->cb, r->ud, reply_error(r, reply), NULL, NULL);
        return;
    }
    ib.stats.pushed++;
    ib.stats.trimmed += (uint64_t)reply->integer;
    deliver_item(r->user, r->item, r->itemlen);
    done(r->cb, r->ud, 0, r->id, NULL);
}

static void on_list_reply(struct rcall *r, redisReply *reply)
{
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        done(r->cb, r->ud, reply_error(r, reply), NULL, NULL);
        return;
    }
    uint64_t now = mw_wall_ms();
    struct mw_buf out = { 0 };
    size_t n = 0;
    mw_buf_putc(&out, '[');
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        const char *id;
        size_t idlen;
        uint64_t ts;
        if (e->type != REDIS_REPLY_STRING || !parse_item(e->str, e->len, &id, &idlen, &ts) ||
            expired(ts, now))
            continue; /* not ours, or too old: never shown */
        if (n++)
            mw_buf_putc(&out, ',');
        mw_buf_append(&out, e->str, e->len);
    }
    mw_buf_putc(&out, ']');
    done(r->cb, r->ud, 0, NULL, &out);
    mw_buf_free(&out);
}

static void on_read_reply(struct rcall *r, redisReply *reply)
{
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        done(r->cb, r->ud, reply_error(r, reply), NULL, NULL);
        return;
    }
    struct mw_buf out = { 0 };
    mw_buf_putc(&out, '[');
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        if (e->type != REDIS_REPLY_STRING)
            continue;
        if (out.len > 1)
            mw_buf_putc(&out, ',');
        mw_jsonw_strn(&out, e->str, e->len);
        ib.stats.read++;
    }
    mw_buf_putc(&out, ']');
    deliver_read(r->user, out.p, out.len);
    done(r->cb, r->ud, 0, NULL, &out);
    mw_buf_free(&out);
}

static void on_reply(void *ud, redisReply *reply)
{
    struct rcall *r = ud;
    switch (r->op) {
    case R_PUSH: on_push_reply(r, reply); break;
    case R_LIST: on_list_reply(r, reply); break;
    case R_READ: on_read_reply(r, reply); break;
    }
    free(r->item);
    free(r);
}

static struct rcall *rcall_new(enum rop op, const char *user, mw_inbox_cb cb, void *ud)
{
    struct rcall *r = mw_calloc(1, sizeof *r);
    r->op = op;
    r->cb = cb;
    r->ud = ud;
    snprintf(r->user, sizeof r->user, "%s", user);
    return r;
}

/* Sends r's command; on failure (Redis down) completes it at once. */
static int send(struct rcall *r, int argc, const char **argv, const size_t *lens)
{
    if (mw_store_redis_call(on_reply, r, argc, argv, lens) == 0)
        return 0;
    ib.stats.failed += r->op == R_PUSH;
    done(r->cb, r->ud, MW_INBOX_EUNAVAIL, NULL, NULL);
    free(r->item);
    free(r);
    return 1;
}

static int redis_push(const char *user, struct item *it, mw_inbox_cb cb, void *ud)
{
    struct rcall *r = rcall_new(R_PUSH, user, cb, ud);
    char key[MW_INBOX_MAX_USER + 16], size[16], ttl[24];
    memcpy(r->id, it->id, sizeof r->id);
    r->item = it->text;
    r->itemlen = it->len;
    key_of(key, sizeof key, user);
    snprintf(size, sizeof size, "%" PRIu32, ib.size);
    snprintf(ttl, sizeof ttl, "%" PRIu64, ib.ttl_ms);
    const char *argv[] = { "EVAL", push_src, "1", key, it->text, size, ttl };
    size_t lens[] = { 4, sizeof push_src - 1, 1, strlen(key), it->len, strlen(size), strlen(ttl) };
    return send(r, 7, argv, lens);
}

static int redis_list(const char *user, mw_inbox_cb cb, void *ud)
{
    struct rcall *r = rcall_new(R_LIST, user, cb, ud);
    char key[MW_INBOX_MAX_USER + 16];
    key_of(key, sizeof key, user);
    const char *argv[] = { "LRANGE", key, "0", "-1" };
    size_t lens[] = { 6, strlen(key), 1, 2 };
    return send(r, 4, argv, lens);
}

static int redis_read(const char *user, const char *const *ids, const size_t *lens, size_t nids,
                      mw_inbox_cb cb, void *ud)
{
    struct rcall *r = rcall_new(R_READ, user, cb, ud);
    char key[MW_INBOX_MAX_USER + 16];
    const char *argv[4 + MW_INBOX_MAX_IDS];
    size_t alens[4 + MW_INBOX_MAX_IDS];
    key_of(key, sizeof key, user);
    argv[0] = "EVAL";
    alens[0] = 4;
    argv[1] = read_src;
    alens[1] = sizeof read_src - 1;
    argv[2] = "1";
    alens[2] = 1;
    argv[3] = key;
    alens[3] = strlen(key);
    for (size_t i = 0; i < nids; i++) {
        argv[4 + i] = ids[i];
        alens[4 + i] = lens[i];
    }
    return send(r, 4 + (int)nids, argv, alens);
}

/* ---- the front ---- */

static int invalid(mw_inbox_cb cb, void *ud)
{
    return done(cb, ud, MW_INBOX_EINVAL, NULL, NULL);
}

int mw_inbox_push(const char *user, const char *data, size_t len, mw_inbox_cb cb, void *ud)
{
    if (mw_inbox_user_error(user, user ? strlen(user) : 0) || !data || !len || len > ib.max_item)
        return invalid(cb, ud);
    struct item it = { .ts = mw_wall_ms() };
    snprintf(it.id, sizeof it.id, "%012" PRIx64 "-%08" PRIx32 "-%" PRIx64, it.ts, ib.tag,
             ++ib.counter);
    struct mw_buf b = { 0 };
    mw_buf_printf(&b, "{\"id\":\"%s\",\"ts\":%" PRIu64 ",\"data\":", it.id, it.ts);
    mw_buf_append(&b, data, len);
    mw_buf_putc(&b, '}');
    it.text = b.p; /* the item owns the buffer from here */
    it.len = b.len;
    return on_redis() ? redis_push(user, &it, cb, ud) : mem_push(user, &it, cb, ud);
}

int mw_inbox_list(const char *user, mw_inbox_cb cb, void *ud)
{
    if (mw_inbox_user_error(user, user ? strlen(user) : 0))
        return invalid(cb, ud);
    return on_redis() ? redis_list(user, cb, ud) : mem_list(user, cb, ud);
}

int mw_inbox_read(const char *user, const char *const *ids, const size_t *lens, size_t nids,
                  mw_inbox_cb cb, void *ud)
{
    if (mw_inbox_user_error(user, user ? strlen(user) : 0) || nids > MW_INBOX_MAX_IDS)
        return invalid(cb, ud);
    for (size_t i = 0; i < nids; i++)
        if (!ids[i] || lens[i] < 1 || lens[i] > MW_INBOX_MAX_ID)
            return invalid(cb, ud);
    return on_redis() ? redis_read(user, ids, lens, nids, cb, ud)
                      : mem_read(user, ids, lens, nids, cb, ud);
}
