/* room.h - rooms: membership of connections, the user-level presence index (several
 * connections of one user = one member), fan-out, and the in-memory history ring.
 *
 * Room names are one namespace across routes. A room exists while it
 * has members or kept history. Membership is O(1) both ways: each struct mw_member
 * knows its index in the room's array and in the connection's array. */
#ifndef MW_ROOM_H
#define MW_ROOM_H

#include <stdbool.h>
#include <stdint.h>

#include "net/conn.h"
#include "base/map.h"
#include "base/msg.h"

/* A user present in a room. */
struct mw_presence {
    char *user;
    char *meta_json; /* extra member fields as a JSON object text ({"name":"Ana"}), or NULL */
    uint32_t conns;  /* this user's connections in the room */
};

struct mw_member {
    struct mw_room *room;
    struct mw_conn *conn;
    struct mw_presence *presence;
    uint32_t room_idx;
    uint32_t conn_idx;
};

struct mw_history_entry {
    struct mw_msg *msg; /* the framed event */
    uint64_t seq;
    uint64_t ts;        /* wall ms */
};

struct mw_room {
    char *name;
    struct mw_member **members;
    uint32_t nmembers, capmembers;
    struct mw_map presence; /* user id -> struct mw_presence */

    /* History: a ring of the last `hcap` published events; seq increases per room. */
    uint64_t seq;
    char epoch[20];
    struct mw_history_entry *hist;
    uint32_t hhead, hlen, hcap;
    uint64_t hist_ttl_ms;  /* the publishing route's history.ttl (0: none) */
    uint64_t idle_since_ms; /* monotonic time the last member left (0: has members) */
    size_t hbytes;         /* what the history holds: frames and the ring */
    struct mw_room *idle_prev, *idle_next; /* idle with history: oldest first */
    bool idle;             /* on that list */

    struct mw_map typing;   /* user id -> typing state (typing.c) */
    uint64_t count_sent_ms; /* presence:count throttle (presence.c) */
    uint32_t cluster_users; /* users in the room on every node, last seen (cluster.c) */
    bool count_pending;
};

/* The room-name rule (docs/protocol.md): NULL when name[0..len) is valid, else why not. */
const char *mw_room_name_error(const char *name, size_t len);

struct mw_room *mw_room_find(const char *name);
/* Calls fn for every room (fn must not create or free rooms). */
void mw_room_foreach(void (*fn)(struct mw_room *r, void *ud), void *ud);
uint32_t mw_room_count(void);

/* Adds c to the room (created when absent). meta_json (may be NULL) replaces the
 * user's member metadata when given. Returns the membership; *first_for_user says
 * whether the user was not present before; *already that c was a member already. */
struct mw_member *mw_room_join(struct mw_conn *c, const char *name, const char *meta_json,
                               bool *first_for_user, bool *already);

/* Removes a membership. Returns true when it was the user's last connection in the
 * room (the presence entry is gone). The room is freed if empty and without history:
 * `*room_freed` tells the caller not to touch it. */
bool mw_room_leave(struct mw_member *m, bool *room_freed);

/* The membership of c in the named room, or NULL. */
struct mw_member *mw_room_member(const struct mw_conn *c, const char *name);

/* Queues msg to every member except `except` (may be NULL) and, when except_user is
 * set, every connection of that user. Returns the number of recipients. */
uint32_t mw_room_broadcast(struct mw_room *r, struct mw_msg *msg, const struct mw_conn *except,
                           const struct mw_user *except_user);

/* Assigns the next seq; with keep > 0 also appends msg to the history ring, keeping at
 * most `keep` entries. Returns the seq. */
uint64_t mw_room_next_seq(struct mw_room *r);
void mw_room_history_push(struct mw_room *r, struct mw_msg *msg, uint64_t seq, uint64_t ts,
                          uint32_t keep);

/* Drops history entries older than ttl_ms (0: no time bound). */
void mw_room_history_expire(struct mw_room *r, uint64_t ttl_ms, uint64_t now_ms);

/* How long a room without members keeps its history when the route sets no
 * history.ttl: what bounds memory when many rooms come and go. */
#define MW_ROOM_IDLE_KEEP_MS (24ull * 3600 * 1000)

/* Expires the history of rooms without members (their ttl, or MW_ROOM_IDLE_KEEP_MS
 * of idleness) and frees the rooms left empty. Returns how many were freed. */
uint32_t mw_room_sweep(uint64_t wall_ms, uint64_t now_ms, uint64_t idle_keep_ms);

/* The byte budget of history kept for rooms without members (limits.history_memory,
 * default 64MiB): beyond it the history of the room idle the longest goes first (the
 * room itself goes at the next sweep). Checked whenever idle history grows. */
void mw_room_set_history_budget(size_t bytes);
struct mw_room_history_stats {
    size_t idle_bytes;  /* history held by rooms without members */
    uint64_t evicted;   /* idle rooms whose history went for the budget */
};
struct mw_room_history_stats mw_room_history_stats(void);

/* Frees a room if it has no members and no history. Returns true when freed. */
bool mw_room_maybe_free(struct mw_room *r);

/* Frees every room (shutdown). */
void mw_room_free_all(void);

/* Hooks other modules set to release their per-room state (typing timers). */
extern void (*mw_room_on_free)(struct mw_room *r);
/* Called when the room gets its first local member (true) or loses its last (false):
 * the broker subscribes to the room's channel meanwhile. */
extern void (*mw_room_on_active)(struct mw_room *r, bool active);

#endif
