/* presence_memory.c - presence counts from this node's rooms (presence_backend.h):
 * without Redis, and while Redis is down. Every call completes at once. */
#include <stdlib.h>

#include "rooms/presence_backend.h"
#include "rooms/room.h"
#include "base/util.h"

static void counts(const char *room, const char *user, mw_presence_count_cb cb, void *ud)
{
    struct mw_room *r = mw_room_find(room);
    struct mw_presence *p = r ? mw_map_get(&r->presence, user) : NULL;
    cb(ud, 0, p ? p->conns : 0, r ? r->presence.len : 0, false);
}

static int mem_join(const char *room, const char *user, const char *meta,
                    const struct mw_presence_announce *a, mw_presence_count_cb cb, void *ud)
{
    (void)meta; /* the room index has it */
    (void)a;    /* presence.c announces */
    counts(room, user, cb, ud);
    return 1;
}

static int mem_leave(const char *room, const char *user, const struct mw_presence_announce *a,
                     mw_presence_count_cb cb, void *ud)
{
    (void)a;
    counts(room, user, cb, ud);
    return 1;
}

static int mem_list(const char *room, uint32_t limit, mw_presence_entries_cb cb, void *ud)
{
    struct mw_room *r = mw_room_find(room);
    uint32_t n = 0, total = r ? r->presence.len : 0;
    struct mw_presence_entry *e = mw_malloc((total < limit ? total : limit) * sizeof *e + 1);
    for (uint32_t i = 0; r && i < r->presence.cap && n < limit; i++) {
        struct mw_presence *p = r->presence.slots[i].val;
        if (r->presence.slots[i].key)
            e[n++] = (struct mw_presence_entry){ p->user, p->meta_json, p->conns };
    }
    cb(ud, 0, e, n, total);
    free(e);
    return 1;
}

const struct mw_presence_backend mw_presence_memory = {
    .name = "memory",
    .join = mem_join,
    .leave = mem_leave,
    .list = mem_list,
};
