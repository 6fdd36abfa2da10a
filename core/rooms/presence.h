/* presence.h - presence events for rooms: presence:join / presence:leave per user,
 * or, above the route's threshold, presence:count at most once per second
 * (docs/protocol.md, "The chat app"). The index itself lives in room.c; the counts across nodes in a
 * backend (presence_backend.h): Redis when clustered, this node's rooms otherwise
 * and while Redis is down.
 *
 * Clustered, presence.c also keeps, per local room, the users this node's members
 * have been told are present (its "view"), so that after Redis lost its data it can
 * tell them who is gone (mw_presence_reconcile). The node registry (cluster.c) drives
 * the repairs: mw_presence_resync, mw_presence_node_gone, mw_presence_reconcile. */
#ifndef MW_PRESENCE_H
#define MW_PRESENCE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "rooms/room.h"

struct mw_config;
struct mw_route_config;

/* Clustered: counts and lists go to Redis (the broker calls it when it starts). */
void mw_presence_start(const struct mw_config *cfg, bool clustered);

/* Joins c to the room and tells the others. Returns the membership. */
struct mw_member *mw_presence_join(struct mw_conn *c, const char *room, const char *meta_json,
                                   const struct mw_route_config *rc);
/* Leaves one room: stops the user's typing if this was their last connection there,
 * tells the others. */
void mw_presence_leave(struct mw_member *m, const struct mw_route_config *rc);
/* Leaves every room (disconnect). */
void mw_presence_leave_all(struct mw_conn *c, const struct mw_route_config *rc);

/* Appends a member object {"user":U,...meta,"conns":N}. */
void mw_presence_member_json(struct mw_buf *b, const struct mw_presence *p);
/* Appends a JSON array of at most `limit` members of r (NULL: an empty room). */
void mw_presence_list_json(struct mw_buf *b, const struct mw_room *r, uint32_t limit);

/* The room's members on every node: cb(ud, json, len, count) later with a JSON array
 * of at most `limit` members, or json NULL when Redis failed meanwhile. -1 (no
 * callback) when not clustered or Redis is down: the caller lists this node's. */
typedef void (*mw_presence_list_cb)(void *ud, const char *json, size_t len, uint32_t count);
int mw_presence_list_cluster(const char *room, uint32_t limit, mw_presence_list_cb cb, void *ud);

/* Repairs, after the node registry's judgement (cluster.c):
 * resync: rewrites this node's presence in every room it ever had members in (its
 * rooms now, the rooms Redis lists for it, the rooms whose writes failed), telling
 * every node who is gone and who is back.
 * node_gone: removes a dead node's presence and tells its leaves; done(ud, ok) after.
 * reconcile: compares what this node's members were told with Redis and tells them
 * the difference (after Redis lost data: users of a node that died meanwhile). */
void mw_presence_resync(void);
void mw_presence_node_gone(const char *node, void (*done)(void *ud, bool ok), void *ud);
void mw_presence_reconcile(void);

/* Stops the throttle timer, frees the views (shutdown). */
void mw_presence_shutdown(void);

#endif
