/* presence.c - presence events on join and leave, and the repairs the node registry
 * asks for (presence.h). */
#include "rooms/presence.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "rooms/broker.h"
#include "base/config.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "base/map.h"
#include "rooms/presence_backend.h"
#include "base/context.h"
#include "rooms/typing.h"
#include "base/util.h"

#define COUNT_INTERVAL_MS 1000
#define RECONCILE_LIST_MAX 100000

/* What this node's members of a room have been told: the users present. */
struct view {
    char *room;
    struct mw_map users; /* user -> its own copy of the id */
};

static struct {
    bool clustered;
    const struct mw_config *cfg;
    struct mw_map views; /* room -> struct view, clustered only */
} PR;

static uv_timer_t count_timer;
static bool count_timer_ready;
static char **count_rooms; /* rooms waiting for a throttled presence:count */
static uint32_t ncount_rooms, capcount_rooms;

static void on_remote_presence(const char *room, const char *user, bool join);

void mw_presence_start(const struct mw_config *cfg, bool clustered)
{
    PR.cfg = cfg;
    PR.clustered = clustered;
    mw_broker_on_presence = clustered ? on_remote_presence : NULL;
}

/* Presence options for events no local connection caused (repairs): the first
 * route's. */
static const struct mw_route_config *repair_rc(void)
{
    return PR.cfg && PR.cfg->nroutes ? &PR.cfg->routes[0] : NULL;
}

/* ---- views ---- */

static void view_free(const char *room)
{
    struct view *v = mw_map_del(&PR.views, room);
    if (!v)
        return;
    for (uint32_t i = 0; i < v->users.cap; i++)
        if (v->users.slots[i].key)
            free(v->users.slots[i].val);
    mw_map_free(&v->users);
    free(v->room);
    free(v);
}

/* The room's view, created when the room has local members (NULL otherwise). */
static struct view *view_of(const char *room)
{
    struct view *v = mw_map_get(&PR.views, room);
    if (v || !PR.clustered)
        return v;
    struct mw_room *r = mw_room_find(room);
    if (!r || !r->nmembers)
        return NULL;
    v = mw_calloc(1, sizeof *v);
    v->room = mw_strdup(room);
    mw_map_put(&PR.views, v->room, v);
    return v;
}

static void view_set(const char *room, const char *user, bool present)
{
    struct view *v = view_of(room);
    if (!v)
        return;
    if (!present) {
        free(mw_map_del(&v->users, user));
    } else if (!mw_map_get(&v->users, user)) {
        char *id = mw_strdup(user);
        mw_map_put(&v->users, id, id);
    }
}

static void on_remote_presence(const char *room, const char *user, bool join)
{
    view_set(room, user, join);
}

/* ---- events ---- */

void mw_presence_member_json(struct mw_buf *b, const struct mw_presence *p)
{
    mw_buf_puts(b, "{\"user\":");
    mw_jsonw_str(b, p->user);
    size_t mlen = p->meta_json ? strlen(p->meta_json) : 0;
    if (mlen > 2) { /* splice the fields of {"name":"Ana"} */
        mw_buf_putc(b, ',');
        mw_buf_append(b, p->meta_json + 1, mlen - 2);
    }
    mw_buf_puts(b, ",\"conns\":");
    mw_buf_put_u64(b, p->conns);
    mw_buf_putc(b, '}');
}

/* By room name: the local room may be gone (its last local member left) while
 * members on other nodes still need the event. */
void mw_presence_list_json(struct mw_buf *b, const struct mw_room *r, uint32_t limit)
{
    uint32_t n = 0;
    mw_buf_putc(b, '[');
    for (uint32_t i = 0; r && i < r->presence.cap && n < limit; i++) {
        if (!r->presence.slots[i].key)
            continue;
        if (n++)
            mw_buf_putc(b, ',');
        mw_presence_member_json(b, r->presence.slots[i].val);
    }
    mw_buf_putc(b, ']');
}

static struct mw_msg *event_msg(const char *room, const char *type, const struct mw_buf *data,
                                unsigned flags)
{
    struct mw_buf b = { 0 };
    mw_jsonw_event(&b, type, room);
    mw_buf_append(&b, data->p, data->len);
    mw_buf_putc(&b, '}');
    struct mw_msg *m = mw_msg_new(MW_OP_TEXT, b.p, b.len, flags);
    mw_buf_free(&b);
    return m;
}

/* A presence:join or presence:leave of user: to every node, or (local_only) to this
 * node's members only. */
static void send_presence(const char *room, bool join, const char *user, struct mw_buf *data,
                          const struct mw_conn *except, bool local_only)
{
    struct mw_msg *m = event_msg(room, join ? "presence:join" : "presence:leave", data, 0);
    view_set(room, user, join);
    if (local_only) {
        struct mw_room *r = mw_room_find(room);
        if (r)
            mw_room_broadcast(r, m, except, NULL);
    } else {
        mw_broker_presence(room, m, except, user, join);
    }
    mw_msg_decref(m);
}

static void send_count(struct mw_room *r, bool local_only)
{
    struct mw_buf d = { 0 };
    mw_buf_puts(&d, "{\"count\":");
    mw_buf_put_u64(&d, PR.clustered ? r->cluster_users : r->presence.len);
    mw_buf_putc(&d, '}');
    struct mw_msg *m = event_msg(r->name, "presence:count", &d, MW_MSG_COALESCE);
    if (local_only)
        mw_room_broadcast(r, m, NULL, NULL);
    else
        mw_broker_room(r->name, m, NULL, NULL);
    mw_msg_decref(m);
    mw_buf_free(&d);
    r->count_sent_ms = mw_now_ms();
    r->count_pending = false;
}

static void on_count_timer(uv_timer_t *t)
{
    (void)t;
    uint64_t now = mw_now_ms(), next = 0;
    uint32_t kept = 0;
    for (uint32_t i = 0; i < ncount_rooms; i++) {
        struct mw_room *r = mw_room_find(count_rooms[i]);
        if (r && r->count_pending && now - r->count_sent_ms < COUNT_INTERVAL_MS) {
            uint64_t due = r->count_sent_ms + COUNT_INTERVAL_MS - now;
            next = next && next < due ? next : due;
            count_rooms[kept++] = count_rooms[i];
            continue;
        }
        if (r && r->count_pending && r->nmembers)
            send_count(r, false);
        free(count_rooms[i]);
    }
    ncount_rooms = kept;
    if (kept)
        uv_timer_start(&count_timer, on_count_timer, next ? next : 1, 0);
}

/* presence:count now, or once the one-second window since the last one ends. */
static void schedule_count(struct mw_room *r)
{
    uint64_t now = mw_now_ms();
    if (now - r->count_sent_ms >= COUNT_INTERVAL_MS) {
        send_count(r, false);
        return;
    }
    if (r->count_pending)
        return;
    r->count_pending = true;
    if (!count_timer_ready) {
        uv_timer_init(uv_default_loop(), &count_timer);
        count_timer_ready = true;
    }
    if (ncount_rooms == capcount_rooms) {
        capcount_rooms = capcount_rooms ? capcount_rooms * 2 : 8;
        count_rooms = mw_realloc(count_rooms, capcount_rooms * sizeof *count_rooms);
    }
    count_rooms[ncount_rooms++] = mw_strdup(r->name);
    if (!uv_is_active((uv_handle_t *)&count_timer))
        uv_timer_start(&count_timer, on_count_timer, r->count_sent_ms + COUNT_INTERVAL_MS - now, 0);
}

/* Whether a presence event would reach nobody: on a single node (clustered, every
 * event goes to Redis too), a room with no member here but `except`. The first to
 * join a room and the last to leave it have nobody to tell: no event is built. */
static bool nobody_to_tell(const struct mw_room *r, const struct mw_conn *except)
{
    return !PR.clustered &&
           (!r || r->nmembers == 0 || (r->nmembers == 1 && r->members[0]->conn == except));
}

/* presence:join for a user's first connection in the room (or, above the route's
 * threshold, a throttled presence:count), from the given counts. */
static void emit_join(const char *room, const struct mw_presence_entry *e, const char *except_conn,
                      uint32_t users, const struct mw_route_config *rc, bool local_only)
{
    struct mw_room *r = mw_room_find(room);
    if (!rc || !rc->presence_events)
        return;
    if (users > rc->presence_threshold) {
        if (r) {
            r->cluster_users = users;
            if (local_only)
                send_count(r, true);
            else
                schedule_count(r);
        }
        return;
    }
    struct mw_conn *except = except_conn ? mw_conn_find(except_conn) : NULL;
    if (nobody_to_tell(r, except))
        return;
    struct mw_presence p = { (char *)e->user, (char *)e->meta, e->conns };
    struct mw_buf d = { 0 };
    mw_presence_member_json(&d, &p);
    send_presence(room, true, e->user, &d, except, local_only);
    mw_buf_free(&d);
}

/* The same for a user's last connection leaving; users_before counts them included. */
static void emit_leave(const char *room, const char *user, uint32_t users_before,
                       const struct mw_route_config *rc, bool local_only)
{
    struct mw_room *r = mw_room_find(room);
    if (!rc || !rc->presence_events)
        return;
    if (users_before > rc->presence_threshold) {
        if (r) {
            r->cluster_users = users_before - 1;
            if (local_only)
                send_count(r, true);
            else
                schedule_count(r);
        }
        return;
    }
    if (nobody_to_tell(r, NULL))
        return;
    struct mw_buf d = { 0 };
    mw_buf_puts(&d, "{\"user\":");
    mw_jsonw_str(&d, user);
    mw_buf_putc(&d, '}');
    send_presence(room, false, user, &d, NULL, local_only);
    mw_buf_free(&d);
}

/* ---- join and leave ---- */

/* A join or leave waiting for its counts. */
struct change {
    char *room, *user, *meta;
    char except[24];
    const struct mw_route_config *rc;
    bool leave;
    struct mw_buf event; /* the presence:join / presence:leave it may cause */
};

static void change_free(struct change *ch)
{
    free(ch->room);
    free(ch->user);
    free(ch->meta);
    mw_buf_free(&ch->event);
    free(ch);
}

static void on_counted(void *ud, int err, uint32_t user_conns, uint32_t users, bool announced);

/* The counts of this node's rooms (Redis is down, or its outcome unknown: the resync
 * repairs Redis later). */
static void count_here(struct change *ch)
{
    static const struct mw_presence_announce none = { "", "", "", 0, -1 };
    if (ch->leave)
        mw_presence_memory.leave(ch->room, ch->user, &none, on_counted, ch);
    else
        mw_presence_memory.join(ch->room, ch->user, ch->meta, &none, on_counted, ch);
}

static void on_counted(void *ud, int err, uint32_t user_conns, uint32_t users, bool announced)
{
    struct change *ch = ud;
    if (err) {
        count_here(ch);
        return;
    }
    bool now = ch->leave ? user_conns == 0 : user_conns == 1;
    if (now && announced) { /* Redis told the other nodes: ours are left to tell */
        struct mw_msg *m = mw_msg_new(MW_OP_TEXT, ch->event.p, ch->event.len, 0);
        struct mw_room *r = mw_room_find(ch->room);
        view_set(ch->room, ch->user, !ch->leave);
        if (r)
            mw_room_broadcast(r, m, ch->except[0] ? mw_conn_find(ch->except) : NULL, NULL);
        mw_msg_decref(m);
    } else if (now && ch->leave) {
        emit_leave(ch->room, ch->user, users + 1, ch->rc, false);
    } else if (now) {
        struct mw_presence_entry e = { ch->user, ch->meta, 1 };
        emit_join(ch->room, &e, ch->except, users, ch->rc, false);
    }
    change_free(ch);
}

/* Counts the change. Clustered, Redis publishes its event in the same step when the
 * user arrives or is gone everywhere, so that a node stopping or dying right after
 * cannot leave the other nodes unaware. */
static void count(struct change *ch)
{
    if (!PR.clustered) {
        count_here(ch);
        return;
    }
    struct mw_buf d = { 0 }, payload = { 0 };
    char channel[160];
    struct mw_presence_announce a = { channel, NULL, NULL, 0, -1 };
    if (ch->leave) {
        mw_buf_puts(&d, "{\"user\":");
        mw_jsonw_str(&d, ch->user);
        mw_buf_putc(&d, '}');
    } else {
        struct mw_presence p = { ch->user, ch->meta, 1 };
        mw_presence_member_json(&d, &p);
    }
    mw_jsonw_event(&ch->event, ch->leave ? "presence:leave" : "presence:join", ch->room);
    mw_buf_append(&ch->event, d.p, d.len);
    mw_buf_putc(&ch->event, '}');
    mw_broker_presence_head(&payload, ch->user, !ch->leave);
    mw_buf_append(&payload, ch->event.p, ch->event.len);
    mw_broker_room_channel(ch->room, channel, sizeof channel, &a.cmd);
    a.payload = payload.p;
    a.len = payload.len;
    if (ch->rc && ch->rc->presence_events)
        a.threshold = ch->rc->presence_threshold;
    int st = ch->leave ? mw_presence_redis.leave(ch->room, ch->user, &a, on_counted, ch)
                       : mw_presence_redis.join(ch->room, ch->user, ch->meta, &a, on_counted, ch);
    mw_buf_free(&d);
    mw_buf_free(&payload);
    if (st < 0)
        count_here(ch);
}

struct mw_member *mw_presence_join(struct mw_conn *c, const char *room, const char *meta_json,
                                   const struct mw_route_config *rc)
{
    bool first, already;
    struct mw_member *m = mw_room_join(c, room, meta_json, &first, &already);
    if (already)
        return m;
    struct change *ch = mw_calloc(1, sizeof *ch);
    ch->room = mw_strdup(room);
    ch->user = mw_strdup(c->user->id);
    ch->meta = m->presence->meta_json ? mw_strdup(m->presence->meta_json) : NULL;
    mw_strcopy(ch->except, sizeof ch->except, c->id);
    ch->rc = rc;
    count(ch);
    return m;
}

void mw_presence_leave(struct mw_member *m, const struct mw_route_config *rc)
{
    struct mw_room *r = m->room;
    struct change *ch = mw_calloc(1, sizeof *ch);
    ch->room = mw_strdup(r->name);
    ch->user = mw_strdup(m->conn->user->id);
    ch->rc = rc;
    ch->leave = true;
    bool freed;
    if (m->presence->conns == 1)
        mw_typing_stop_user(r, ch->user);
    mw_room_leave(m, &freed);
    if (freed || !r->nmembers)
        view_free(ch->room);
    count(ch);
}

void mw_presence_leave_all(struct mw_conn *c, const struct mw_route_config *rc)
{
    while (c->nrooms)
        mw_presence_leave(c->rooms[c->nrooms - 1], rc);
}

/* ---- lists ---- */

struct list_call {
    mw_presence_list_cb cb;
    void *ud;
    char room[];
};

static void on_listed(void *ud, int err, const struct mw_presence_entry *e, size_t n,
                      uint32_t users)
{
    struct list_call *q = ud;
    if (err) {
        q->cb(q->ud, NULL, 0, 0);
        free(q);
        return;
    }
    struct mw_buf b = { 0 };
    mw_buf_putc(&b, '[');
    for (size_t i = 0; i < n; i++) {
        struct mw_presence p = { (char *)e[i].user, (char *)e[i].meta, e[i].conns };
        if (i)
            mw_buf_putc(&b, ',');
        mw_presence_member_json(&b, &p);
        view_set(q->room, e[i].user, true); /* the asker is told they are present */
    }
    mw_buf_putc(&b, ']');
    q->cb(q->ud, b.p, b.len, users);
    mw_buf_free(&b);
    free(q);
}

int mw_presence_list_cluster(const char *room, uint32_t limit, mw_presence_list_cb cb, void *ud)
{
    if (!PR.clustered)
        return -1;
    size_t len = strlen(room) + 1;
    struct list_call *q = mw_malloc(sizeof *q + len);
    q->cb = cb;
    q->ud = ud;
    memcpy(q->room, room, len);
    if (mw_presence_redis.list(room, limit, on_listed, q) < 0) {
        free(q);
        return -1;
    }
    return 0;
}

/* ---- repairs ---- */

/* Tells every node what a replace changed in a room. */
static void announce_diff(const char *room, const struct mw_presence_entry *gone, size_t ngone,
                          const struct mw_presence_entry *added, size_t nadded, uint32_t users)
{
    const struct mw_route_config *rc = repair_rc();
    for (size_t i = 0; i < ngone; i++)
        emit_leave(room, gone[i].user, users + (uint32_t)(ngone - i), rc, false);
    for (size_t i = 0; i < nadded; i++)
        emit_join(room, &added[i], NULL, users, rc, false);
}

static void on_resynced(void *ud, const char *room, int err, const struct mw_presence_entry *gone,
                        size_t ngone, const struct mw_presence_entry *added, size_t nadded,
                        uint32_t users)
{
    (void)ud;
    if (!err)
        announce_diff(room, gone, ngone, added, nadded, users);
}

static void resync_room(const char *room, void *ud)
{
    struct mw_map *done = ud;
    if (mw_map_get(done, room))
        return;
    char *name = mw_strdup(room);
    mw_map_put(done, name, name);
    mw_presence_redis_replace(mw_srv.node_id, room, false, on_resynced, NULL);
}

static void resync_local(struct mw_room *r, void *ud)
{
    if (r->nmembers)
        resync_room(r->name, ud);
}

static void on_own_rooms(void *ud, int err, const char *const *rooms, size_t n)
{
    (void)ud;
    struct mw_map done = { 0 };
    if (err)
        return; /* Redis went down again: the next `up` resyncs */
    for (size_t i = 0; i < n; i++)
        resync_room(rooms[i], &done);
    mw_room_foreach(resync_local, &done);
    mw_presence_redis_dirty(resync_room, &done);
    for (uint32_t i = 0; i < done.cap; i++)
        if (done.slots[i].key)
            free(done.slots[i].val);
    mw_map_free(&done);
}

void mw_presence_resync(void)
{
    if (PR.clustered)
        mw_presence_redis_rooms_of(mw_srv.node_id, on_own_rooms, NULL);
}

/* A dead node's cleanup: one replace per room, then its room set goes. */
struct gone {
    char *node;
    void (*done)(void *ud, bool ok);
    void *ud;
    uint32_t pending;
    bool failed, listed;
};

static void gone_finish(struct gone *g)
{
    if (!g->failed)
        mw_presence_redis_forget_node(g->node);
    g->done(g->ud, !g->failed);
    free(g->node);
    free(g);
}

static void on_dead_room(void *ud, const char *room, int err, const struct mw_presence_entry *gone,
                         size_t ngone, const struct mw_presence_entry *added, size_t nadded,
                         uint32_t users)
{
    struct gone *g = ud;
    if (err)
        g->failed = true;
    else
        announce_diff(room, gone, ngone, added, nadded, users);
    if (--g->pending == 0 && g->listed)
        gone_finish(g);
}

static void on_dead_rooms(void *ud, int err, const char *const *rooms, size_t n)
{
    struct gone *g = ud;
    g->failed = err != 0;
    for (size_t i = 0; i < n; i++) {
        if (mw_presence_redis_replace(g->node, rooms[i], true, on_dead_room, g) == 0)
            g->pending++;
        else
            g->failed = true;
    }
    g->listed = true;
    if (g->pending == 0)
        gone_finish(g);
    else if (n)
        mw_log_info("removing a dead node's presence", "node=%s rooms=%zu", g->node, n);
}

void mw_presence_node_gone(const char *node, void (*done)(void *ud, bool ok), void *ud)
{
    struct gone *g = mw_calloc(1, sizeof *g);
    g->node = mw_strdup(node);
    g->done = done;
    g->ud = ud;
    if (!PR.clustered || mw_presence_redis_rooms_of(node, on_dead_rooms, g) < 0) {
        g->failed = true;
        g->listed = true;
        gone_finish(g);
    }
}

/* One room's view against Redis: what its members were told and what is. */
static void on_reconcile_list(void *ud, int err, const struct mw_presence_entry *e, size_t n,
                              uint32_t users)
{
    char *room = ud;
    struct view *v = err ? NULL : mw_map_get(&PR.views, room);
    struct mw_room *r = mw_room_find(room);
    const struct mw_route_config *rc = repair_rc();
    if (v && r && rc && rc->presence_events) {
        struct mw_map now = { 0 };
        for (size_t i = 0; i < n; i++)
            mw_map_put(&now, e[i].user, (void *)&e[i]);
        uint32_t told = 0, stale = 0;
        char **gone = mw_malloc((v->users.len + 1) * sizeof *gone);
        for (uint32_t i = 0; i < v->users.cap; i++)
            if (v->users.slots[i].key && !mw_map_get(&now, v->users.slots[i].key))
                gone[stale++] = mw_strdup(v->users.slots[i].key);
        for (uint32_t i = 0; i < stale; i++) {
            emit_leave(room, gone[i], users + stale - i, rc, true);
            free(gone[i]);
        }
        for (size_t i = 0; i < n; i++) {
            v = mw_map_get(&PR.views, room);
            if (v && !mw_map_get(&v->users, e[i].user)) {
                emit_join(room, &e[i], NULL, users, rc, true);
                told++;
            }
        }
        if (stale || told)
            mw_log_info("presence view repaired", "room=%s left=%u joined=%u", room, stale, told);
        free(gone);
        mw_map_free(&now);
    }
    free(room);
}

static void reconcile_room(struct mw_room *r, void *ud)
{
    (void)ud;
    if (!r->nmembers || !mw_map_get(&PR.views, r->name))
        return;
    char *room = mw_strdup(r->name);
    if (mw_presence_redis.list(room, RECONCILE_LIST_MAX, on_reconcile_list, room) < 0)
        free(room);
}

void mw_presence_reconcile(void)
{
    if (PR.clustered)
        mw_room_foreach(reconcile_room, NULL);
}

void mw_presence_shutdown(void)
{
    for (uint32_t i = 0; i < ncount_rooms; i++)
        free(count_rooms[i]);
    free(count_rooms);
    count_rooms = NULL;
    ncount_rooms = capcount_rooms = 0;
    if (count_timer_ready) {
        uv_close((uv_handle_t *)&count_timer, NULL);
        count_timer_ready = false;
    }
    while (PR.views.len) {
        for (uint32_t i = 0; i < PR.views.cap; i++)
            if (PR.views.slots[i].key) {
                view_free(PR.views.slots[i].key);
                break;
            }
    }
    mw_map_free(&PR.views);
    memset(&PR.views, 0, sizeof PR.views);
    mw_broker_on_presence = NULL;
}
