/* store_memory.c - the memory backend of the store: a hash map of entries, each a JSON
 * text, a list of them, a hash of them or a timed queue, with TTLs and bounded size.
 *
 * Expiry is lazy (an expired key found by a request is removed first) plus an active
 * sweep every MW_STORE_SWEEP_MS, so a key that is never read again is freed too. The
 * sweep takes due keys from a min-heap on their deadlines. The heap is indexed (each
 * node knows its slot) rather than lazily invalidated: with lazy invalidation every TTL
 * refresh of a hot key (a rate limiter doing set(k, v, 60) per message) would leave a
 * stale heap node behind, growing the heap without bound until the old deadlines pass.
 * A timed queue keeps its items in the same kind of heap, on their due times.
 *
 * Requests complete before submit returns, except in deferred mode (a testing aid for
 * the path the Redis backend takes), where they are copied, queued, and executed in
 * order on the next loop iteration by a uv_idle handle. */
#include "store/store.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "base/map.h"
#include "base/util.h"

/* Accounting overhead per value or list element, so that a million one-byte list
 * elements are not counted as one megabyte. */
#define ITEM_OVERHEAD 16
#define NO_HEAP UINT32_MAX

struct item {
    size_t len;
    char text[];
};

/* A ring buffer of items; cap is 0 or a power of two. */
struct list {
    struct item **items;
    uint32_t cap, head, len;
};

/* A node of an indexed min-heap on (at, seq): it knows its slot, so that it can be
 * moved or removed in O(log n). */
struct hnode {
    uint64_t at, seq;
    uint32_t idx; /* NO_HEAP while in no heap */
};

struct heap {
    struct hnode **v;
    uint32_t len, cap;
};

/* A hash field; the fields map's key points at its name. */
struct hfield {
    struct item *val;
    size_t len;
    char name[];
};

/* A timed queue: a min-heap of items on (due, seq), and an index from an item's text
 * to its node, so that scheduling an item again moves it rather than adding it. */
struct qnode {
    struct hnode due; /* first; due.seq keeps items due at the same ms in FIFO order */
    size_t len;
    char text[];      /* the index's key */
};

struct queue {
    struct mw_map index; /* text -> struct qnode */
    struct heap heap;
    uint64_t seq;
};

enum { SCALAR, LIST, HASH, QUEUE };

struct entry {
    struct hnode exp; /* exp.at: the deadline on the store clock, 0 = never; in
                         mem.expiry while it has one */
    uint8_t type;
    size_t keylen;
    union {
        struct item *val;
        struct list list;
        struct mw_map hash; /* name -> struct hfield */
        struct queue *queue;
    } u;
    char key[]; /* the map's key points here */
};

struct pending {
    struct pending *next;
    struct mw_store_req req; /* key, value, field and token point into data */
    mw_store_cb cb;
    void *ud;
    char data[];
};

static struct {
    bool open, deferred;
    struct mw_map map;
    struct heap expiry;
    size_t max_keys, max_bytes;
    uint64_t bytes, expired_total;
    uint64_t (*clock)(void);
    struct pending *head, *tail;
    uv_timer_t *sweep_timer;
    uv_idle_t *idle;
} mem;

static uint64_t now_ms(void)
{
    return mem.clock ? mem.clock() : mw_now_ms();
}

/* ---- items and lists ---- */

static struct item *item_new(const char *text, size_t len)
{
    struct item *it = mw_malloc(sizeof *it + len + 1);
    it->len = len;
    memcpy(it->text, text, len);
    it->text[len] = '\0';
    return it;
}

static uint64_t item_cost(size_t len)
{
    return (uint64_t)len + ITEM_OVERHEAD;
}

/* Moves the items into a fresh array of newcap slots, in order from index 0. */
static void list_resize(struct list *l, uint32_t newcap)
{
    struct item **items = mw_malloc(newcap * sizeof *items);
    for (uint32_t i = 0; i < l->len; i++)
        items[i] = l->items[(l->head + i) & (l->cap - 1)];
    free(l->items);
    l->items = items;
    l->cap = newcap;
    l->head = 0;
}

static struct item *list_at(const struct list *l, uint32_t i)
{
    return l->items[(l->head + i) & (l->cap - 1)];
}

static void list_push(struct list *l, struct item *it, bool left)
{
    if (l->len == l->cap)
        list_resize(l, l->cap ? l->cap * 2 : 4);
    if (left) {
        l->head = (l->head - 1) & (l->cap - 1);
        l->items[l->head] = it;
    } else {
        l->items[(l->head + l->len) & (l->cap - 1)] = it;
    }
    l->len++;
}

/* Removes and returns an end item; the list must not be empty. Shrinks a mostly empty
 * array so that a list that once was long does not keep its peak size. */
static struct item *list_pop(struct list *l, bool left)
{
    struct item *it;
    if (left) {
        it = l->items[l->head];
        l->head = (l->head + 1) & (l->cap - 1);
    } else {
        it = list_at(l, l->len - 1);
    }
    l->len--;
    if (l->cap > 16 && l->len < l->cap / 4)
        list_resize(l, l->cap / 2);
    return it;
}

/* A hash field and its value, and a queued item, as the bounds count them. */
static uint64_t field_cost(size_t namelen, size_t vallen)
{
    return (uint64_t)namelen + item_cost(vallen);
}

static uint64_t qnode_cost(size_t len)
{
    return item_cost(len) + ITEM_OVERHEAD;
}

static uint64_t value_cost(const struct entry *e)
{
    uint64_t n = 0;
    const struct mw_map *m;
    switch (e->type) {
    case SCALAR:
        return item_cost(e->u.val->len);
    case LIST:
        for (uint32_t i = 0; i < e->u.list.len; i++)
            n += item_cost(list_at(&e->u.list, i)->len);
        return n;
    case HASH:
        m = &e->u.hash;
        for (uint32_t i = 0; i < m->cap; i++) {
            const struct hfield *f = m->slots[i].val;
            if (m->slots[i].key)
                n += field_cost(f->len, f->val->len);
        }
        return n;
    default:
        for (uint32_t i = 0; i < e->u.queue->heap.len; i++)
            n += qnode_cost(((struct qnode *)e->u.queue->heap.v[i])->len);
        return n;
    }
}

static void value_free(struct entry *e)
{
    struct mw_map *m;
    switch (e->type) {
    case SCALAR:
        free(e->u.val);
        break;
    case LIST:
        for (uint32_t i = 0; i < e->u.list.len; i++)
            free(list_at(&e->u.list, i));
        free(e->u.list.items);
        break;
    case HASH:
        m = &e->u.hash;
        for (uint32_t i = 0; i < m->cap; i++) {
            struct hfield *f = m->slots[i].val;
            if (m->slots[i].key) {
                free(f->val);
                free(f);
            }
        }
        mw_map_free(m);
        break;
    default:
        for (uint32_t i = 0; i < e->u.queue->heap.len; i++)
            free(e->u.queue->heap.v[i]);
        mw_map_free(&e->u.queue->index);
        free(e->u.queue->heap.v);
        free(e->u.queue);
        break;
    }
    memset(&e->u, 0, sizeof e->u);
}

/* ---- indexed heaps: key deadlines and queued items ---- */

static bool before(const struct hnode *a, const struct hnode *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void heap_set(struct heap *h, uint32_t i, struct hnode *n)
{
    h->v[i] = n;
    n->idx = i;
}

static void heap_up(struct heap *h, uint32_t i)
{
    struct hnode *n = h->v[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!before(n, h->v[parent]))
            break;
        heap_set(h, i, h->v[parent]);
        i = parent;
    }
    heap_set(h, i, n);
}

static void heap_down(struct heap *h, uint32_t i)
{
    struct hnode *n = h->v[i];
    for (;;) {
        uint32_t child = 2 * i + 1;
        if (child >= h->len)
            break;
        if (child + 1 < h->len && before(h->v[child + 1], h->v[child]))
            child++;
        if (!before(h->v[child], n))
            break;
        heap_set(h, i, h->v[child]);
        i = child;
    }
    heap_set(h, i, n);
}

static void heap_push(struct heap *h, struct hnode *n)
{
    if (h->len == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->v = mw_realloc(h->v, h->cap * sizeof *h->v);
    }
    heap_set(h, h->len++, n);
    heap_up(h, n->idx);
}

static void heap_remove(struct heap *h, struct hnode *n)
{
    uint32_t i = n->idx;
    if (i == NO_HEAP)
        return;
    n->idx = NO_HEAP;
    struct hnode *last = h->v[--h->len];
    if (last == n)
        return;
    heap_set(h, i, last);
    heap_up(h, i);
    heap_down(h, last->idx);
}

/* After n->at or n->seq changed. */
static void heap_fix(struct heap *h, struct hnode *n)
{
    heap_up(h, n->idx);
    heap_down(h, n->idx);
}

static struct entry *entry_of(struct hnode *n)
{
    return (struct entry *)((char *)n - offsetof(struct entry, exp));
}

/* Sets the deadline (0 = none) and keeps the expiry heap in step. */
static void set_expiry(struct entry *e, uint64_t at)
{
    e->exp.at = at;
    if (!at)
        heap_remove(&mem.expiry, &e->exp);
    else if (e->exp.idx != NO_HEAP)
        heap_fix(&mem.expiry, &e->exp);
    else
        heap_push(&mem.expiry, &e->exp);
}

static uint64_t deadline(uint64_t now, uint64_t ttl_ms)
{
    return ttl_ms ? now + ttl_ms : 0;
}

/* ---- entries ---- */

static struct entry *entry_new(const char *key, size_t keylen, int type)
{
    struct entry *e = mw_calloc(1, sizeof *e + keylen + 1);
    memcpy(e->key, key, keylen);
    e->keylen = keylen;
    e->type = (uint8_t)type;
    e->exp.idx = NO_HEAP;
    mw_map_put(&mem.map, e->key, e);
    mem.bytes += keylen;
    return e;
}

static void entry_delete(struct entry *e)
{
    mw_map_del(&mem.map, e->key);
    heap_remove(&mem.expiry, &e->exp);
    mem.bytes -= e->keylen + value_cost(e);
    value_free(e);
    free(e);
}

static void entry_expire(struct entry *e)
{
    mem.expired_total++;
    entry_delete(e);
}

/* The live entry for key, removing it first if its TTL has passed. */
static struct entry *lookup(const char *key, uint64_t now)
{
    struct entry *e = mw_map_get(&mem.map, key);
    if (e && e->exp.at && e->exp.at <= now) {
        entry_expire(e);
        return NULL;
    }
    return e;
}

static size_t sweep_at(uint64_t now, size_t budget)
{
    size_t n = 0;
    while (n < budget && mem.expiry.len && mem.expiry.v[0]->at <= now) {
        entry_expire(entry_of(mem.expiry.v[0]));
        n++;
    }
    return n;
}

size_t mw_store_memory_sweep(size_t budget)
{
    return mem.open ? sweep_at(now_ms(), budget) : 0;
}

/* Whether new_keys more keys and delta more bytes fit; when they do not, expired keys
 * are swept first (the entries a request holds are live at `now`, so none of them is
 * freed by it). */
static bool fits(size_t new_keys, int64_t delta, uint64_t now)
{
    for (int pass = 0; pass < 2; pass++) {
        bool keys_ok = mem.map.len + new_keys <= mem.max_keys;
        bool bytes_ok = delta <= 0 || mem.bytes + (uint64_t)delta <= mem.max_bytes;
        if (keys_ok && bytes_ok)
            return true;
        if (pass == 0 && sweep_at(now, MW_STORE_SWEEP_BUDGET) == 0)
            break;
    }
    return false;
}

/* Stores text as the scalar value of key (e: its live entry or NULL), replacing a
 * list. The TTL becomes ttl_ms, or stays as it was when keep_ttl. */
static int put_scalar(struct entry *e, const char *key, size_t keylen, const char *text,
                      size_t len, uint64_t ttl_ms, bool keep_ttl, uint64_t now)
{
    uint64_t cost = item_cost(len);
    if (e) {
        if (!fits(0, (int64_t)cost - (int64_t)value_cost(e), now))
            return MW_STORE_ENOMEM;
        mem.bytes -= value_cost(e);
        value_free(e);
        e->type = SCALAR;
    } else {
        if (!fits(1, (int64_t)(keylen + cost), now))
            return MW_STORE_ENOMEM;
        e = entry_new(key, keylen, SCALAR);
    }
    e->u.val = item_new(text, len);
    mem.bytes += cost;
    if (!keep_ttl)
        set_expiry(e, deadline(now, ttl_ms));
    return 0;
}

/* ---- operations ---- */

static int do_incr(const struct mw_store_req *req, const char *key, uint64_t now, double *out)
{
    struct entry *e = lookup(key, now);
    double v;
    if (!e) {
        if (!req->has_init)
            return MW_STORE_ENOTFOUND;
        v = req->init;
    } else if (e->type != SCALAR) {
        return MW_STORE_EWRONGTYPE;
    } else if (mw__store_parse_number(e->u.val->text, e->u.val->len, &v) < 0) {
        return MW_STORE_ENOTNUM;
    }
    v += req->n;
    if (!isfinite(v))
        return MW_STORE_ERANGE;
    char text[32];
    int len = mw__store_format_number(v, text);
    int err = put_scalar(e, key, req->keylen, text, (size_t)len, req->ttl_ms, e != NULL, now);
    *out = v;
    return err;
}

static int do_push(const struct mw_store_req *req, const char *key, uint64_t now, double *out)
{
    struct entry *e = lookup(key, now);
    uint64_t cost = item_cost(req->valuelen);
    if (e && e->type != LIST)
        return MW_STORE_EWRONGTYPE;
    if (!fits(e ? 0 : 1, (int64_t)(cost + (e ? 0 : req->keylen)), now))
        return MW_STORE_ENOMEM;
    if (!e)
        e = entry_new(key, req->keylen, LIST);
    list_push(&e->u.list, item_new(req->value, req->valuelen), req->op == MW_STORE_LPUSH);
    mem.bytes += cost;
    *out = e->u.list.len;
    return 0;
}

/* Completes a pop: the item is handed to cb, then freed; an emptied list goes away. */
static void do_pop(const struct mw_store_req *req, const char *key, uint64_t now,
                   mw_store_cb cb, void *ud)
{
    struct mw_store_result res = { .op = req->op };
    struct entry *e = lookup(key, now);
    struct item *it = NULL;
    if (e && e->type != LIST) {
        res.err = MW_STORE_EWRONGTYPE;
    } else if (e) {
        it = list_pop(&e->u.list, req->op == MW_STORE_LPOP);
        mem.bytes -= item_cost(it->len);
        if (e->u.list.len == 0)
            entry_delete(e);
        res.value = it->text;
        res.valuelen = it->len;
    }
    cb(ud, &res);
    free(it);
}

/* Redis LRANGE: 0-based, inclusive, negative indices from the end, clamped. */
static void do_lrange(const struct mw_store_req *req, const char *key, uint64_t now,
                      mw_store_cb cb, void *ud)
{
    struct mw_store_result res = { .op = req->op };
    struct entry *e = lookup(key, now);
    struct mw_store_str *vals = NULL;
    if (e && e->type != LIST) {
        res.err = MW_STORE_EWRONGTYPE;
    } else if (e) {
        int64_t len = e->u.list.len, start = req->start, stop = req->stop;
        if (start < 0)
            start += len;
        if (stop < 0)
            stop += len;
        if (start < 0)
            start = 0;
        if (stop >= len)
            stop = len - 1;
        if (start <= stop) {
            res.nvalues = (size_t)(stop - start + 1);
            vals = mw_malloc(res.nvalues * sizeof *vals);
            for (size_t i = 0; i < res.nvalues; i++) {
                struct item *it = list_at(&e->u.list, (uint32_t)(start + (int64_t)i));
                vals[i] = (struct mw_store_str){ it->text, it->len };
            }
            res.values = vals;
        }
    }
    cb(ud, &res);
    free(vals);
}

/* The live entry for key in *out (NULL: none). Returns 0, or MW_STORE_EWRONGTYPE when
 * it holds another kind of value than `type`. */
static int lookup_as(const char *key, uint64_t now, int type, struct entry **out)
{
    struct entry *e = lookup(key, now);
    *out = e;
    return e && e->type != type ? MW_STORE_EWRONGTYPE : 0;
}

/* Whether cur (a value, or NULL for none) is what a cas request expects: its token,
 * byte for byte, or nothing when it has none. */
static bool matches(const struct mw_store_req *req, const struct item *cur)
{
    if (!req->has_token)
        return cur == NULL;
    return cur && cur->len == req->tokenlen && memcmp(cur->text, req->token, cur->len) == 0;
}

static int do_cas(const struct mw_store_req *req, const char *key, uint64_t now)
{
    struct entry *e;
    int err = lookup_as(key, now, SCALAR, &e);
    if (err)
        return err;
    if (!matches(req, e ? e->u.val : NULL))
        return MW_STORE_ECHANGED;
    if (req->value)
        return put_scalar(e, key, req->keylen, req->value, req->valuelen, req->ttl_ms, false,
                          now);
    if (e)
        entry_delete(e);
    return 0;
}

/* ---- hashes ---- */

static struct hfield *hash_field(struct entry *e, const char *name)
{
    return e ? mw_map_get(&e->u.hash, name) : NULL;
}

/* Sets field `name` of the hash at key (e: its live entry, or NULL) to text. */
static int hash_put(struct entry *e, const struct mw_store_req *req, const char *key,
                    const char *name, uint64_t now)
{
    struct hfield *f = hash_field(e, name);
    uint64_t cost = f ? item_cost(req->valuelen) : field_cost(req->fieldlen, req->valuelen);
    uint64_t old = f ? item_cost(f->val->len) : 0;
    if (!fits(e ? 0 : 1, (int64_t)cost - (int64_t)old + (int64_t)(e ? 0 : req->keylen), now))
        return MW_STORE_ENOMEM;
    if (!e)
        e = entry_new(key, req->keylen, HASH);
    if (f) {
        free(f->val);
    } else {
        f = mw_malloc(sizeof *f + req->fieldlen + 1);
        memcpy(f->name, name, req->fieldlen + 1);
        f->len = req->fieldlen;
        mw_map_put(&e->u.hash, f->name, f);
    }
    f->val = item_new(req->value, req->valuelen);
    mem.bytes += cost;
    mem.bytes -= old;
    return 0;
}

/* Removes field f of the hash e; an emptied hash goes away, as in Redis. */
static void hash_remove(struct entry *e, struct hfield *f)
{
    mw_map_del(&e->u.hash, f->name);
    mem.bytes -= field_cost(f->len, f->val->len);
    free(f->val);
    free(f);
    if (e->u.hash.len == 0)
        entry_delete(e);
}

/* hget, hset, hdel and hcas. */
static int do_hash(const struct mw_store_req *req, const char *key, uint64_t now,
                   struct mw_store_result *res)
{
    char name[MW_STORE_MAX_FIELD + 1];
    memcpy(name, req->field, req->fieldlen);
    name[req->fieldlen] = '\0';
    struct entry *e;
    int err = lookup_as(key, now, HASH, &e);
    if (err)
        return err;
    struct hfield *f = hash_field(e, name);
    switch (req->op) {
    case MW_STORE_HGET:
        if (f) {
            res->value = f->val->text;
            res->valuelen = f->val->len;
        }
        return 0;
    case MW_STORE_HDEL:
        res->num = f != NULL;
        if (f)
            hash_remove(e, f);
        return 0;
    case MW_STORE_HCAS:
        if (!matches(req, f ? f->val : NULL))
            return MW_STORE_ECHANGED;
        if (!req->value) {
            if (f)
                hash_remove(e, f);
            return 0;
        }
        return hash_put(e, req, key, name, now);
    default: /* MW_STORE_HSET */
        return hash_put(e, req, key, name, now);
    }
}

static void do_hgetall(const struct mw_store_req *req, const char *key, uint64_t now,
                       mw_store_cb cb, void *ud)
{
    struct mw_store_result res = { .op = req->op };
    struct mw_store_str *vals = NULL;
    struct entry *e;
    res.err = lookup_as(key, now, HASH, &e);
    if (e && !res.err) {
        const struct mw_map *m = &e->u.hash;
        vals = mw_malloc(2 * (size_t)m->len * sizeof *vals);
        for (uint32_t i = 0; i < m->cap; i++) {
            const struct hfield *f = m->slots[i].val;
            if (!m->slots[i].key)
                continue;
            vals[res.nvalues++] = (struct mw_store_str){ f->name, f->len };
            vals[res.nvalues++] = (struct mw_store_str){ f->val->text, f->val->len };
        }
        res.values = vals;
    }
    cb(ud, &res);
    free(vals);
}

/* ---- timed queues ---- */

static void queue_put(struct queue *q, struct qnode *n, uint64_t due)
{
    n->due.at = due;
    n->due.seq = q->seq++;
    if (n->due.idx == NO_HEAP)
        heap_push(&q->heap, &n->due);
    else
        heap_fix(&q->heap, &n->due);
}

/* Removes node n from the queue e (it stays allocated); an emptied queue goes away. */
static void queue_take(struct entry *e, struct qnode *n)
{
    struct queue *q = e->u.queue;
    heap_remove(&q->heap, &n->due);
    mw_map_del(&q->index, n->text);
    mem.bytes -= qnode_cost(n->len);
    if (q->heap.len == 0)
        entry_delete(e);
}

/* The queue at key (*e, NULL when absent) and the node of the request's item in it
 * (*n, NULL when it is not queued). Returns 0 or MW_STORE_EWRONGTYPE. */
static int queue_lookup(const struct mw_store_req *req, const char *key, uint64_t now,
                        struct entry **e, struct qnode **n)
{
    char text[MW_STORE_MAX_FIELD + 1];
    memcpy(text, req->value, req->valuelen);
    text[req->valuelen] = '\0';
    int err = lookup_as(key, now, QUEUE, e);
    *n = *e && !err ? mw_map_get(&(*e)->u.queue->index, text) : NULL;
    return err;
}

static int do_schedule(const struct mw_store_req *req, const char *key, uint64_t now)
{
    struct entry *e;
    struct qnode *n;
    int err = queue_lookup(req, key, now, &e, &n);
    if (err)
        return err;
    if (!n) {
        uint64_t cost = qnode_cost(req->valuelen) + (e ? 0 : req->keylen);
        if (!fits(e ? 0 : 1, (int64_t)cost, now))
            return MW_STORE_ENOMEM;
        if (!e) {
            e = entry_new(key, req->keylen, QUEUE);
            e->u.queue = mw_calloc(1, sizeof *e->u.queue);
        }
        n = mw_malloc(sizeof *n + req->valuelen + 1);
        n->due.idx = NO_HEAP;
        n->len = req->valuelen;
        memcpy(n->text, req->value, req->valuelen);
        n->text[req->valuelen] = '\0';
        mw_map_put(&e->u.queue->index, n->text, n);
        mem.bytes += qnode_cost(n->len);
    }
    queue_put(e->u.queue, n, now + req->ttl_ms);
    return 0;
}

/* Hands out up to count items whose time has come, earliest first: removed, or with a
 * lease queued again lease ms from now (so that they come back if their taker dies
 * before it unschedules them). */
static void do_due(const struct mw_store_req *req, const char *key, uint64_t now,
                   mw_store_cb cb, void *ud)
{
    struct mw_store_result res = { .op = req->op };
    struct mw_store_str *vals = NULL;
    struct qnode **taken = NULL;
    struct entry *e;
    res.err = lookup_as(key, now, QUEUE, &e);
    if (e && !res.err) {
        struct queue *q = e->u.queue;
        taken = mw_malloc(req->count * sizeof *taken);
        while (res.nvalues < req->count && q->heap.len && q->heap.v[0]->at <= now) {
            struct qnode *n = (struct qnode *)q->heap.v[0];
            heap_remove(&q->heap, &n->due);
            taken[res.nvalues++] = n;
        }
        vals = mw_malloc((res.nvalues ? res.nvalues : 1) * sizeof *vals);
        for (size_t i = 0; i < res.nvalues; i++) {
            struct qnode *n = taken[i];
            vals[i] = (struct mw_store_str){ n->text, n->len };
            if (req->ttl_ms) { /* leased: back in the queue */
                queue_put(q, n, now + req->ttl_ms);
            } else { /* out of the index and the accounts now, freed after cb */
                mw_map_del(&q->index, n->text);
                mem.bytes -= qnode_cost(n->len);
            }
        }
        if (q->heap.len == 0)
            entry_delete(e);
        res.values = vals;
    }
    cb(ud, &res);
    if (!req->ttl_ms)
        for (size_t i = 0; i < res.nvalues; i++)
            free(taken[i]);
    free(taken);
    free(vals);
}

static int do_unschedule(const struct mw_store_req *req, const char *key, uint64_t now)
{
    struct entry *e;
    struct qnode *n;
    int err = queue_lookup(req, key, now, &e, &n);
    if (err)
        return err;
    if (!n)
        return MW_STORE_ENOTFOUND;
    queue_take(e, n);
    free(n);
    return 0;
}

/* Runs a validated request now and calls cb. */
static void execute(const struct mw_store_req *req, mw_store_cb cb, void *ud)
{
    char key[MW_STORE_MAX_KEY + 1];
    memcpy(key, req->key, req->keylen);
    key[req->keylen] = '\0';
    uint64_t now = now_ms();
    struct mw_store_result res = { .op = req->op };
    struct entry *e;

    switch (req->op) {
    case MW_STORE_GET:
        e = lookup(key, now);
        if (e && e->type != SCALAR) {
            res.err = MW_STORE_EWRONGTYPE;
        } else if (e) {
            res.value = e->u.val->text;
            res.valuelen = e->u.val->len;
        }
        break;
    case MW_STORE_SET:
    case MW_STORE_ADD:
    case MW_STORE_REPLACE:
        e = lookup(key, now);
        if (req->op == MW_STORE_ADD && e)
            res.err = MW_STORE_EEXIST;
        else if (req->op == MW_STORE_REPLACE && !e)
            res.err = MW_STORE_ENOTFOUND;
        else
            res.err = put_scalar(e, key, req->keylen, req->value, req->valuelen, req->ttl_ms,
                                 false, now);
        break;
    case MW_STORE_INCR:
        res.err = do_incr(req, key, now, &res.num);
        break;
    case MW_STORE_DELETE:
        e = lookup(key, now);
        if (e)
            entry_delete(e);
        break;
    case MW_STORE_EXPIRE:
        e = lookup(key, now);
        if (e)
            set_expiry(e, deadline(now, req->ttl_ms));
        else
            res.err = MW_STORE_ENOTFOUND;
        break;
    case MW_STORE_TTL:
        e = lookup(key, now);
        if (e)
            res.num = e->exp.at ? (double)(e->exp.at - now) / 1000.0 : 0;
        else
            res.err = MW_STORE_ENOTFOUND;
        break;
    case MW_STORE_LPUSH:
    case MW_STORE_RPUSH:
        res.err = do_push(req, key, now, &res.num);
        break;
    case MW_STORE_LPOP:
    case MW_STORE_RPOP:
        do_pop(req, key, now, cb, ud);
        return;
    case MW_STORE_LLEN:
        e = lookup(key, now);
        if (e && e->type != LIST)
            res.err = MW_STORE_EWRONGTYPE;
        else
            res.num = e ? e->u.list.len : 0;
        break;
    case MW_STORE_LRANGE:
        do_lrange(req, key, now, cb, ud);
        return;
    case MW_STORE_CAS:
        res.err = do_cas(req, key, now);
        break;
    case MW_STORE_HGET:
    case MW_STORE_HSET:
    case MW_STORE_HDEL:
    case MW_STORE_HCAS:
        res.err = do_hash(req, key, now, &res);
        break;
    case MW_STORE_HGETALL:
        do_hgetall(req, key, now, cb, ud);
        return;
    case MW_STORE_SCHEDULE:
        res.err = do_schedule(req, key, now);
        break;
    case MW_STORE_DUE:
        do_due(req, key, now, cb, ud);
        return;
    case MW_STORE_UNSCHEDULE:
        res.err = do_unschedule(req, key, now);
        break;
    }
    cb(ud, &res);
}

/* ---- deferred mode ---- */

static void on_idle(uv_idle_t *h)
{
    /* Only the batch queued before this iteration: a callback that submits again
     * waits for the next one, as it would for a Redis reply. */
    struct pending *p = mem.head;
    mem.head = mem.tail = NULL;
    while (p) {
        struct pending *next = p->next;
        if (mem.open) {
            execute(&p->req, p->cb, p->ud);
        } else { /* a callback closed the store: the rest of the batch is refused */
            struct mw_store_result res = { .op = p->req.op, .err = MW_STORE_EUNAVAIL };
            p->cb(p->ud, &res);
        }
        free(p);
        p = next;
    }
    if (mem.open && !mem.head)
        uv_idle_stop(h);
}

/* Copies n bytes of s to *at and returns the copy (NULL stays NULL). */
static const char *copy_to(char **at, const char *s, size_t n)
{
    if (!s)
        return NULL;
    char *p = memcpy(*at, s, n);
    *at += n;
    return p;
}

static void enqueue(const struct mw_store_req *req, mw_store_cb cb, void *ud)
{
    size_t vlen = req->value ? req->valuelen : 0, flen = req->field ? req->fieldlen : 0;
    size_t tlen = req->token ? req->tokenlen : 0;
    struct pending *p = mw_malloc(sizeof *p + req->keylen + vlen + flen + tlen);
    char *at = p->data;
    p->next = NULL;
    p->req = *req;
    p->cb = cb;
    p->ud = ud;
    p->req.key = copy_to(&at, req->key, req->keylen);
    p->req.value = copy_to(&at, req->value, vlen);
    p->req.field = copy_to(&at, req->field, flen);
    p->req.token = copy_to(&at, req->token, tlen);
    if (mem.tail)
        mem.tail->next = p;
    else
        mem.head = p;
    mem.tail = p;
    uv_idle_start(mem.idle, on_idle);
}

/* ---- the backend ---- */

static int mem_submit(const struct mw_store_req *req, mw_store_cb cb, void *ud)
{
    if (mem.deferred) {
        enqueue(req, cb, ud);
        return 0;
    }
    execute(req, cb, ud);
    return 1;
}

static bool mem_may_defer(void)
{
    return mem.deferred;
}

static void mem_stats(struct mw_store_stats *out)
{
    out->keys = mem.map.len;
    out->bytes = mem.bytes;
    out->expired_total = mem.expired_total;
}

static void on_sweep(uv_timer_t *t)
{
    (void)t;
    mw_store_memory_sweep(MW_STORE_SWEEP_BUDGET);
}

static void on_closed(uv_handle_t *h)
{
    free(h);
}

void mw__store_memory_open(void)
{
    mw_assert(!mem.open);
    mem.open = true;
    if (!mem.max_keys)
        mem.max_keys = MW_STORE_DEFAULT_MAX_KEYS;
    if (!mem.max_bytes)
        mem.max_bytes = MW_STORE_DEFAULT_MAX_BYTES;
    uv_loop_t *loop = uv_default_loop();
    mem.sweep_timer = mw_calloc(1, sizeof *mem.sweep_timer);
    uv_timer_init(loop, mem.sweep_timer);
    uv_timer_start(mem.sweep_timer, on_sweep, MW_STORE_SWEEP_MS, MW_STORE_SWEEP_MS);
    uv_unref((uv_handle_t *)mem.sweep_timer); /* never keeps the loop alive by itself */
    mem.idle = mw_calloc(1, sizeof *mem.idle);
    uv_idle_init(loop, mem.idle);
}

static void mem_free(void)
{
    while (mem.head) { /* callbacks may queue more: the store refuses them (closed) */
        struct pending *p = mem.head;
        mem.head = p->next;
        if (!mem.head)
            mem.tail = NULL;
        struct mw_store_result res = { .op = p->req.op, .err = MW_STORE_EUNAVAIL };
        p->cb(p->ud, &res);
        free(p);
    }
    uv_close((uv_handle_t *)mem.sweep_timer, on_closed);
    uv_close((uv_handle_t *)mem.idle, on_closed);
    for (uint32_t i = 0; i < mem.map.cap; i++) {
        struct entry *e = mem.map.slots[i].val;
        if (mem.map.slots[i].key) {
            value_free(e);
            free(e);
        }
    }
    mw_map_free(&mem.map);
    free(mem.expiry.v);
    memset(&mem, 0, sizeof mem);
}

void mw_store_memory_set_deferred(int on)
{
    mem.deferred = on != 0;
}

void mw_store_memory_set_clock(uint64_t (*fn)(void))
{
    mem.clock = fn;
}

void mw_store_memory_set_limits(size_t max_keys, size_t max_bytes)
{
    mem.max_keys = max_keys ? max_keys : MW_STORE_DEFAULT_MAX_KEYS;
    mem.max_bytes = max_bytes ? max_bytes : MW_STORE_DEFAULT_MAX_BYTES;
}

const struct mw_store_backend mw_store_memory = {
    .name = "memory",
    .submit = mem_submit,
    .may_defer = mem_may_defer,
    .stats = mem_stats,
    .free = mem_free,
};
