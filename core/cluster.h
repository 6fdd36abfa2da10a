/* cluster.h - presence across nodes and the node registry (docs/clustering.md), on top
 * of the Redis client. Only active with `redis:`.
 *
 * Keys (the {room} hash tag keeps one room's keys in one Redis Cluster slot):
 *   mw:pu:{room}  user -> that user's connections in the room, all nodes together
 *   mw:pc:{room}  "<node>|<user>" -> the user's connections there on that node
 *   mw:pm:{room}  user -> member metadata (JSON object text)
 *   mw:nr:<node>  set of rooms where the node holds presence
 *   mw:node:<id>  this node is alive (refreshed; expires when it dies)
 *   mw:nodes      set of node ids that registered */
#ifndef MW_CLUSTER_H
#define MW_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

/* Starts the registry timers (call once the Redis client started). */
void mw_cluster_start(const struct mw_config *cfg);
void mw_cluster_stop(void);
/* Presence goes through Redis (configured; events then follow cluster-wide counts). */
bool mw_cluster_active(void);
/* Redis came back (or up for the first time): re-register, rewrite our presence. */
void mw_cluster_on_up(void);

/* A connection of `user` joined / left `room` here. The presence:join/leave (or
 * count) event is sent once Redis answers, from the cluster-wide counts; while Redis
 * is down, from the local ones. meta may be NULL. */
int mw_cluster_join(const char *room, const char *user, const char *meta,
                    const char *except_conn, const struct mw_route_config *rc);
int mw_cluster_leave(const char *room, const char *user, const struct mw_route_config *rc);
/* (Both return -1 when Redis is down: the caller then decides from local counts.) */

/* The room's members across the cluster: calls cb(ud, json) with a JSON array text of
 * {user, ...meta, conns} (NULL when Redis failed). Returns -1 when it cannot ask
 * (Redis down): the caller falls back to the local list. */
typedef void (*mw_cluster_members_cb)(void *ud, const char *json, uint32_t count);
int mw_cluster_members(const char *room, uint32_t limit, mw_cluster_members_cb cb, void *ud);

struct mw_cluster_stats {
    uint64_t dead_nodes_cleaned, leaves_from_cleanup;
};
extern struct mw_cluster_stats mw_cluster_stats;

#endif
