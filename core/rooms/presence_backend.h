/* presence_backend.h - where presence counts live, behind one interface (the way the
 * store has memory and Redis backends): this node's rooms (presence_memory.c), or
 * Redis, shared by every node (presence_redis.c). presence.c turns what a backend
 * answers into presence events; backends never send events themselves.
 *
 * Calls complete through a callback that fires exactly once: before the call returns
 * (the memory backend: the call returns 1) or later from the loop (Redis: the call
 * returns 0). A call that returns -1 could not be made (Redis down) and never calls
 * back: presence.c then falls back to the memory backend.
 *
 * Redis keys (the {room} hash tag keeps one room's keys in one Redis Cluster slot):
 *   mw:pu:{room}  user -> that user's connections in the room, all nodes together
 *   mw:pc:{room}  "<node>|<user>" -> the user's connections there on that node
 *   mw:pm:{room}  user -> member metadata (JSON object text)
 *   mw:nr:<node>  set of rooms where the node holds presence ({mw}:nr:<node> in a
 *                 Redis Cluster, in the registry's slot) */
#ifndef MW_PRESENCE_BACKEND_H
#define MW_PRESENCE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A join or leave counted: the user's connections in the room on every node after it
 * (0: gone everywhere) and the room's users; announced: the backend published the
 * event to the other nodes itself (only this node's members are left to tell). err:
 * 0, or -1 when the outcome is unknown (the reply was lost). */
typedef void (*mw_presence_count_cb)(void *ud, int err, uint32_t user_conns, uint32_t users,
                                     bool announced);

/* The event a join (a user's first connection anywhere) or a leave (their last) is
 * announced with, for a backend that can publish it in the same step as it counts:
 * Redis then announces even when the node dies right after. payload is a
 * broker_wire.h payload for the room's channel (cmd: PUBLISH or SPUBLISH). No event
 * when the room's users (before a leave) are over threshold, or threshold is < 0. */
struct mw_presence_announce {
    const char *channel, *cmd;
    const char *payload;
    size_t len;
    long long threshold;
};

/* One member in a list or a diff. */
struct mw_presence_entry {
    const char *user;
    const char *meta; /* JSON object text, or NULL */
    uint32_t conns;
};

/* A room's members: entries (at most the limit asked) and the room's user count; n is
 * 0 and err -1 when the read failed. Everything is valid during the callback only. */
typedef void (*mw_presence_entries_cb)(void *ud, int err, const struct mw_presence_entry *e,
                                    size_t n, uint32_t users);

/* What a replace changed in a room: users gone everywhere, users now present that
 * were not, and the room's users after it. */
typedef void (*mw_presence_diff_cb)(void *ud, const char *room, int err,
                                    const struct mw_presence_entry *gone, size_t ngone,
                                    const struct mw_presence_entry *added, size_t nadded,
                                    uint32_t users);

/* The rooms where a node holds presence (n 0 and err -1 when the read failed). */
typedef void (*mw_presence_rooms_cb)(void *ud, int err, const char *const *rooms, size_t n);

struct mw_presence_backend {
    const char *name;
    /* One more connection of user in room; this node's room index already has it.
     * meta (may be NULL) replaces the member's metadata. */
    int (*join)(const char *room, const char *user, const char *meta,
                const struct mw_presence_announce *a, mw_presence_count_cb cb, void *ud);
    /* One connection of user less; the room index already lost it. */
    int (*leave)(const char *room, const char *user, const struct mw_presence_announce *a,
                 mw_presence_count_cb cb, void *ud);
    int (*list)(const char *room, uint32_t limit, mw_presence_entries_cb cb, void *ud);
};

extern const struct mw_presence_backend mw_presence_memory, mw_presence_redis;

/* Redis only, for the node registry's repairs (presence.c):
 * replace: node's part of room becomes this node's local presence there (node is
 * this node) or nothing (cleanup after a dead node); reports the diff. Keeps
 * mw:nr:<node> exact (adds the room, or removes it when the part is now empty).
 * rooms_of: the rooms of mw:nr:<node>. forget_node: deletes mw:nr:<node>.
 * dirty: rooms whose presence write failed since the last resync (the resync redoes
 * them, whether or not mw:nr:<node> still names them); resynced clears one. */
int mw_presence_redis_replace(const char *node, const char *room, bool cleanup,
                              mw_presence_diff_cb cb, void *ud);
int mw_presence_redis_rooms_of(const char *node, mw_presence_rooms_cb cb, void *ud);
void mw_presence_redis_forget_node(const char *node);
void mw_presence_redis_dirty(void (*fn)(const char *room, void *ud), void *ud);
void mw_presence_redis_resynced(const char *room);
/* The registry key prefix: "mw", or "{mw}" with a Redis Cluster (cluster.c). */
void mw_presence_redis_start(const char *registry_prefix);
void mw_presence_redis_stop(void);

#endif
