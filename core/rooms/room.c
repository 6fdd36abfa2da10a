/* room.c - room membership, the presence index, fan-out and the history ring. */
#include "rooms/room.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "base/util.h"

static struct mw_map rooms;
void (*mw_room_on_free)(struct mw_room *r);

/* Rooms without members that keep history, oldest idle first, and what they hold. */
static struct mw_room *idle_head, *idle_tail;
static size_t idle_bytes, hist_budget = 64u << 20;
static uint64_t hist_evicted;

#define FRAME_BYTES(m) (sizeof(struct mw_msg) + (m)->len)

void mw_room_set_history_budget(size_t bytes)
{
    hist_budget = bytes;
}

struct mw_room_history_stats mw_room_history_stats(void)
{
    return (struct mw_room_history_stats){ idle_bytes, hist_evicted };
}

static void idle_remove(struct mw_room *r)
{
    if (!r->idle)
        return;
    if (r->idle_prev)
        r->idle_prev->idle_next = r->idle_next;
    else
        idle_head = r->idle_next;
    if (r->idle_next)
        r->idle_next->idle_prev = r->idle_prev;
    else
        idle_tail = r->idle_prev;
    r->idle_prev = r->idle_next = NULL;
    r->idle = false;
    idle_bytes -= r->hbytes;
}

static void idle_append(struct mw_room *r)
{
    if (r->idle || !r->hbytes)
        return;
    r->idle = true;
    r->idle_prev = idle_tail;
    r->idle_next = NULL;
    if (idle_tail)
        idle_tail->idle_next = r;
    else
        idle_head = r;
    idle_tail = r;
    idle_bytes += r->hbytes;
}

/* Changes of what a room's history holds; an idle room's count in the total too. */
static void hist_add(struct mw_room *r, size_t n)
{
    r->hbytes += n;
    if (r->idle)
        idle_bytes += n;
}

static void hist_sub(struct mw_room *r, size_t n)
{
    r->hbytes -= n;
    if (r->idle)
        idle_bytes -= n;
}

static void hist_drop_oldest(struct mw_room *r)
{
    struct mw_history_entry *e = &r->hist[r->hhead];
    hist_sub(r, FRAME_BYTES(e->msg));
    mw_msg_decref(e->msg);
    r->hhead = (r->hhead + 1) % r->hcap;
    r->hlen--;
}

/* Drops the history of the longest idle rooms until idle history fits the budget,
 * sparing `keep` (whose history is being added to). Frees no room: callers may hold
 * any; the sweep frees those left empty. */
static void enforce_budget(struct mw_room *keep)
{
    struct mw_room *r = idle_head;
    while (idle_bytes > hist_budget && r) {
        struct mw_room *next = r->idle_next;
        if (r != keep) {
            while (r->hlen)
                hist_drop_oldest(r);
            idle_remove(r);
            hist_evicted++;
        }
        r = next;
    }
}
void (*mw_room_on_active)(struct mw_room *r, bool active);

const char *mw_room_name_error(const char *name, size_t len)
{
    if (len == 0 || len > 128)
        return "room must be 1..128 bytes";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return "room must not contain control characters";
    if (!mw_utf8_valid(name, len))
        return "room must be valid UTF-8";
    return NULL;
}

/* The room mw_room_find found last: a join, a leave and a publish each look the same
 * room up several times (presence, its events, history, the members list), and the
 * map's keyed hash is ~150 instructions a lookup. Forgotten when the room is freed. */
static struct mw_room *last_found;

struct mw_room *mw_room_find(const char *name)
{
    struct mw_room *r = last_found;
    if (r && strcmp(r->name, name) == 0)
        return r;
    r = mw_map_get(&rooms, name);
    if (r)
        last_found = r;
    return r;
}

void mw_room_foreach(void (*fn)(struct mw_room *r, void *ud), void *ud)
{
    for (uint32_t i = 0; i < rooms.cap; i++)
        if (rooms.slots[i].key)
            fn(rooms.slots[i].val, ud);
}

uint32_t mw_room_count(void)
{
    return rooms.len;
}

static struct mw_room *room_new(const char *name)
{
    struct mw_room *r = mw_calloc(1, sizeof *r);
    r->name = mw_strdup(name);
    /* The epoch names this incarnation of the room's history: a client holding a seq
     * from another epoch must reset (docs/protocol.md, "Recovery"). */
    mw_hex_str(r->epoch, mw_random_u64(), 12);
    mw_map_put(&rooms, r->name, r);
    return r;
}

static void room_free(struct mw_room *r)
{
    if (mw_room_on_free)
        mw_room_on_free(r);
    idle_remove(r);
    for (uint32_t i = 0; i < r->hlen; i++)
        mw_msg_decref(r->hist[(r->hhead + i) % r->hcap].msg);
    free(r->hist);
    free(r->members);
    mw_map_free(&r->presence);
    mw_map_free(&r->typing);
    mw_map_del(&rooms, r->name);
    if (last_found == r)
        last_found = NULL;
    free(r->name);
    free(r);
}

bool mw_room_maybe_free(struct mw_room *r)
{
    if (r->nmembers || r->hlen || r->typing.len)
        return false;
    room_free(r);
    return true;
}

void mw_room_free_all(void)
{
    uint32_t n = 0;
    struct mw_room **all = mw_malloc((rooms.len ? rooms.len : 1) * sizeof *all);
    for (uint32_t i = 0; i < rooms.cap; i++) /* collect first: freeing edits the map */
        if (rooms.slots[i].key)
            all[n++] = rooms.slots[i].val;
    for (uint32_t i = 0; i < n; i++) {
        struct mw_room *r = all[i];
        bool freed = false;
        while (r->nmembers && !freed)
            mw_room_leave(r->members[r->nmembers - 1], &freed);
        if (!freed)
            room_free(r);
    }
    free(all);
    mw_map_free(&rooms);
}

struct mw_member *mw_room_member(const struct mw_conn *c, const char *name)
{
    for (uint32_t i = 0; i < c->nrooms; i++)
        if (strcmp(c->rooms[i]->room->name, name) == 0)
            return c->rooms[i];
    return NULL;
}

static struct mw_presence *presence_add(struct mw_room *r, const char *user, const char *meta,
                                        bool *first)
{
    struct mw_presence *p = mw_map_get(&r->presence, user);
    *first = p == NULL;
    if (!p) {
        p = mw_calloc(1, sizeof *p);
        p->user = mw_strdup(user);
        mw_map_put(&r->presence, p->user, p);
    }
    if (meta) {
        free(p->meta_json);
        p->meta_json = mw_strdup(meta);
    }
    p->conns++;
    return p;
}

struct mw_member *mw_room_join(struct mw_conn *c, const char *name, const char *meta_json,
                               bool *first_for_user, bool *already)
{
    struct mw_member *m = mw_room_member(c, name);
    *already = m != NULL;
    *first_for_user = false;
    if (m) {
        if (meta_json) {
            free(m->presence->meta_json);
            m->presence->meta_json = mw_strdup(meta_json);
        }
        return m;
    }
    struct mw_room *r = mw_room_find(name);
    if (!r)
        r = room_new(name);

    m = mw_calloc(1, sizeof *m);
    m->room = r;
    m->conn = c;
    m->presence = presence_add(r, c->user->id, meta_json, first_for_user);
    if (r->nmembers == r->capmembers) {
        r->capmembers = r->capmembers ? r->capmembers * 2 : 4;
        r->members = mw_realloc(r->members, r->capmembers * sizeof *r->members);
    }
    m->room_idx = r->nmembers;
    r->members[r->nmembers++] = m;
    r->idle_since_ms = 0;
    idle_remove(r);
    if (r->nmembers == 1 && mw_room_on_active)
        mw_room_on_active(r, true);
    if (c->nrooms == c->caprooms) {
        c->caprooms = c->caprooms ? c->caprooms * 2 : 2;
        c->rooms = mw_realloc(c->rooms, c->caprooms * sizeof *c->rooms);
    }
    m->conn_idx = c->nrooms;
    c->rooms[c->nrooms++] = m;
    return m;
}

bool mw_room_leave(struct mw_member *m, bool *room_freed)
{
    struct mw_room *r = m->room;
    struct mw_conn *c = m->conn;
    struct mw_presence *p = m->presence;
    bool last = false;

    /* Swap-remove from both arrays, fixing the moved member's index. */
    r->members[m->room_idx] = r->members[--r->nmembers];
    r->members[m->room_idx]->room_idx = m->room_idx;
    c->rooms[m->conn_idx] = c->rooms[--c->nrooms];
    c->rooms[m->conn_idx]->conn_idx = m->conn_idx;

    if (--p->conns == 0) {
        mw_map_del(&r->presence, p->user);
        free(p->user);
        free(p->meta_json);
        free(p);
        last = true;
    }
    free(m);
    if (r->nmembers == 0) {
        r->idle_since_ms = mw_now_ms();
        if (mw_room_on_active)
            mw_room_on_active(r, false);
    }
    *room_freed = mw_room_maybe_free(r);
    if (!*room_freed && !r->nmembers) {
        idle_append(r);
        enforce_budget(r);
    }
    return last;
}

uint32_t mw_room_broadcast(struct mw_room *r, struct mw_msg *msg, const struct mw_conn *except,
                           const struct mw_user *except_user)
{
    uint32_t n = 0, nm = r->nmembers;
    struct mw_member **m = r->members;
    /* A send may close a slow consumer, but closing never removes a membership
     * synchronously (that happens in the close callback), so the array is stable.
     * In a big room every member's connection is a cache miss: ask for them ahead
     * (the member 8 ahead, its connection 4 ahead, the slot its queue writes 2 ahead). */
    for (uint32_t i = 0; i < nm; i++) {
        if (i + 8 < nm)
            __builtin_prefetch(m[i + 8]);
        if (i + 4 < nm)
            __builtin_prefetch(m[i + 4]->conn);
        if (i + 2 < nm)
            mw_sendq_prefetch_tail(&m[i + 2]->conn->q);
        struct mw_conn *c = m[i]->conn;
        if (c == except || (except_user && c->user == except_user))
            continue;
        if (mw_conn_send(c, msg) == 0)
            n++;
    }
    return n;
}

void mw_room_history_expire(struct mw_room *r, uint64_t ttl_ms, uint64_t now_ms)
{
    while (ttl_ms && r->hlen && r->hist[r->hhead].ts + ttl_ms < now_ms)
        hist_drop_oldest(r);
    if (!r->hlen)
        idle_remove(r);
}

uint32_t mw_room_sweep(uint64_t wall_ms, uint64_t now_ms, uint64_t idle_keep_ms)
{
    struct mw_room **idle = NULL;
    uint32_t n = 0, cap = 0, freed = 0;
    for (uint32_t i = 0; i < rooms.cap; i++) { /* collect first: freeing edits the map */
        struct mw_room *r = rooms.slots[i].val;
        if (!rooms.slots[i].key || r->nmembers)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            idle = mw_realloc(idle, cap * sizeof *idle);
        }
        idle[n++] = r;
    }
    for (uint32_t i = 0; i < n; i++) {
        struct mw_room *r = idle[i];
        mw_room_history_expire(r, r->hist_ttl_ms, wall_ms);
        if (!r->hist_ttl_ms && r->idle_since_ms && now_ms - r->idle_since_ms >= idle_keep_ms)
            mw_room_history_expire(r, 1, UINT64_MAX); /* everything */
        freed += mw_room_maybe_free(r);
    }
    free(idle);
    enforce_budget(NULL);
    return freed;
}

uint64_t mw_room_next_seq(struct mw_room *r)
{
    return ++r->seq;
}

void mw_room_history_push(struct mw_room *r, struct mw_msg *msg, uint64_t seq, uint64_t ts,
                          uint32_t keep)
{
    if (!keep)
        return;
    if (keep != r->hcap) { /* first use, or the size changed: re-ring, keeping the newest */
        struct mw_history_entry *h = mw_calloc(keep, sizeof *h);
        uint32_t drop = r->hlen > keep ? r->hlen - keep : 0, n = 0;
        for (uint32_t i = 0; i < r->hlen; i++) {
            struct mw_history_entry *e = &r->hist[(r->hhead + i) % r->hcap];
            if (i < drop) {
                hist_sub(r, FRAME_BYTES(e->msg));
                mw_msg_decref(e->msg);
            } else {
                h[n++] = *e;
            }
        }
        free(r->hist);
        hist_sub(r, (size_t)r->hcap * sizeof *h);
        hist_add(r, (size_t)keep * sizeof *h);
        r->hist = h;
        r->hcap = keep;
        r->hhead = 0;
        r->hlen = n;
    }
    if (r->hlen == r->hcap)
        hist_drop_oldest(r);
    r->hist[(r->hhead + r->hlen) % r->hcap] =
        (struct mw_history_entry){ mw_msg_incref(msg), seq, ts };
    r->hlen++;
    hist_add(r, FRAME_BYTES(msg));
    if (!r->nmembers) { /* published into a room nobody is in */
        idle_append(r);
        enforce_budget(r);
    }
}
