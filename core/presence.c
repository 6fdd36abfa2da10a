/* presence.c - presence events on join and leave. */
#include "presence.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "broker.h"
#include "cluster.h"
#include "config.h"
#include "jsonw.h"
#include "typing.h"
#include "util.h"

#define COUNT_INTERVAL_MS 1000

static uv_timer_t count_timer;
static bool count_timer_ready;
static char **count_rooms; /* rooms waiting for a throttled presence:count */
static uint32_t ncount_rooms, capcount_rooms;

void mw_presence_member_json(struct mw_buf *b, const struct mw_presence *p)
{
    mw_buf_puts(b, "{\"user\":");
    mw_jsonw_str(b, p->user);
    size_t mlen = p->meta_json ? strlen(p->meta_json) : 0;
    if (mlen > 2) { /* splice the fields of {"name":"Ana"} */
        mw_buf_putc(b, ',');
        mw_buf_append(b, p->meta_json + 1, mlen - 2);
    }
    mw_buf_printf(b, ",\"conns\":%" PRIu32 "}", p->conns);
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

static void send_event(const char *room, const char *type, struct mw_buf *data,
                       const struct mw_conn *except, unsigned flags)
{
    struct mw_buf b = { 0 };
    mw_jsonw_event(&b, type, room);
    mw_buf_append(&b, data->p, data->len);
    mw_buf_putc(&b, '}');
    struct mw_msg *m = mw_msg_new(MW_OP_TEXT, b.p, b.len, flags);
    mw_broker_room(room, m, except, NULL);
    mw_msg_decref(m);
    mw_buf_free(&b);
}

static void send_count(struct mw_room *r)
{
    struct mw_buf d = { 0 };
    mw_buf_printf(&d, "{\"count\":%" PRIu32 "}",
                  mw_cluster_active() ? r->cluster_users : r->presence.len);
    send_event(r->name, "presence:count", &d, NULL, MW_MSG_COALESCE);
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
            send_count(r);
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
        send_count(r);
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

void mw__presence_emit_join(const char *room, const char *user, const char *meta,
                            uint32_t conns, const char *except_conn, uint32_t users,
                            const struct mw_route_config *rc)
{
    struct mw_room *r = mw_room_find(room);
    if (!rc->presence_events)
        return;
    if (users > rc->presence_threshold) {
        if (r) {
            r->cluster_users = users;
            schedule_count(r);
        }
        return;
    }
    struct mw_presence p = { (char *)user, (char *)meta, conns };
    struct mw_buf d = { 0 };
    mw_presence_member_json(&d, &p);
    send_event(room, "presence:join", &d, except_conn ? mw_conn_find(except_conn) : NULL, 0);
    mw_buf_free(&d);
}

void mw__presence_emit_leave(const char *room, const char *user, uint32_t users_before,
                             const struct mw_route_config *rc)
{
    struct mw_room *r = mw_room_find(room);
    if (!rc->presence_events)
        return;
    if (users_before > rc->presence_threshold) {
        if (r) {
            r->cluster_users = users_before - 1;
            schedule_count(r);
        }
        return;
    }
    struct mw_buf d = { 0 };
    mw_buf_puts(&d, "{\"user\":");
    mw_jsonw_str(&d, user);
    mw_buf_putc(&d, '}');
    send_event(room, "presence:leave", &d, NULL, 0);
    mw_buf_free(&d);
}

struct mw_member *mw_presence_join(struct mw_conn *c, const char *room, const char *meta_json,
                                   const struct mw_route_config *rc)
{
    bool first, already;
    struct mw_member *m = mw_room_join(c, room, meta_json, &first, &already);
    if (already)
        return m;
    /* Clustered: the event follows the user's connections on every node. */
    if (mw_cluster_active() && mw_cluster_join(room, c->user->id, meta_json, c->id, rc) == 0)
        return m;
    if (first)
        mw__presence_emit_join(room, c->user->id, m->presence->meta_json, m->presence->conns,
                               c->id, m->room->presence.len, rc);
    return m;
}

void mw_presence_leave(struct mw_member *m, const struct mw_route_config *rc)
{
    struct mw_room *r = m->room;
    char *user = mw_strdup(m->conn->user->id);
    char *room = mw_strdup(r->name);
    bool freed;

    if (m->presence->conns == 1)
        mw_typing_stop_user(r, user);
    uint32_t users_before = r->presence.len;
    bool last = mw_room_leave(m, &freed);
    if (!(mw_cluster_active() && mw_cluster_leave(room, user, rc) == 0) && last)
        mw__presence_emit_leave(room, user, users_before, rc);
    free(room);
    free(user);
}

void mw_presence_leave_all(struct mw_conn *c, const struct mw_route_config *rc)
{
    while (c->nrooms)
        mw_presence_leave(c->rooms[c->nrooms - 1], rc);
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
}
