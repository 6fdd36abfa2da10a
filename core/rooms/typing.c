/* typing.c - typing indicator state per room and user, with one timer per typer. */
#include "rooms/typing.h"

#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "rooms/broker.h"
#include "base/jsonw.h"
#include "base/util.h"

struct typing {
    uv_timer_t timer; /* first: the close callback frees the struct */
    char *user;
    char *room;
    uint64_t sent_ms; /* last typing:true broadcast */
};

static void broadcast(struct mw_room *r, const char *user, int typing)
{
    struct mw_buf b = { 0 };
    mw_jsonw_event(&b, "typing", r->name);
    mw_buf_puts(&b, "{\"user\":");
    mw_jsonw_str(&b, user);
    mw_buf_puts(&b, typing ? ",\"typing\":true}}" : ",\"typing\":false}}");
    struct mw_msg *m = mw_msg_new(MW_OP_TEXT, b.p, b.len, MW_MSG_COALESCE);
    mw_broker_room(r->name, m, NULL, mw_user_find(user));
    mw_msg_decref(m);
    mw_buf_free(&b);
}

static void on_closed(uv_handle_t *h)
{
    struct typing *t = (struct typing *)h;
    free(t->user);
    free(t->room);
    free(t);
}

static void remove_entry(struct mw_room *r, struct typing *t)
{
    mw_map_del(&r->typing, t->user);
    uv_close((uv_handle_t *)&t->timer, on_closed);
}

static void on_timeout(uv_timer_t *timer)
{
    struct typing *t = (struct typing *)timer;
    struct mw_room *r = mw_room_find(t->room);
    if (!r)
        return;
    broadcast(r, t->user, 0);
    remove_entry(r, t);
    mw_room_maybe_free(r);
}

void mw_typing_start(struct mw_room *r, struct mw_conn *c)
{
    uint64_t now = mw_now_ms();
    struct typing *t = mw_map_get(&r->typing, c->user->id);
    if (!t) {
        t = mw_calloc(1, sizeof *t);
        t->user = mw_strdup(c->user->id);
        t->room = mw_strdup(r->name);
        uv_timer_init(uv_default_loop(), &t->timer);
        mw_map_put(&r->typing, t->user, t);
    }
    if (!t->sent_ms || now - t->sent_ms >= MW_TYPING_THROTTLE_MS) {
        broadcast(r, t->user, 1);
        t->sent_ms = now;
    }
    uv_timer_start(&t->timer, on_timeout, MW_TYPING_TIMEOUT_MS, 0);
}

void mw_typing_stop_user(struct mw_room *r, const char *user)
{
    struct typing *t = mw_map_get(&r->typing, user);
    if (!t)
        return;
    broadcast(r, t->user, 0);
    remove_entry(r, t);
}

static void on_room_free(struct mw_room *r)
{
    for (uint32_t i = 0; i < r->typing.cap; i++)
        if (r->typing.slots[i].key)
            uv_close((uv_handle_t *)&((struct typing *)r->typing.slots[i].val)->timer, on_closed);
}

void mw_typing_init(void)
{
    mw_room_on_free = on_room_free;
}
