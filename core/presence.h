/* presence.h - presence events for rooms: presence:join / presence:leave per user,
 * or, above the route's threshold, presence:count at most once per second
 * (docs/protocol.md, "The chat app"). The index itself lives in room.c. */
#ifndef MW_PRESENCE_H
#define MW_PRESENCE_H

#include <stdbool.h>

#include "buf.h"
#include "room.h"

struct mw_route_config;

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

/* Sends presence:join (or, above the route's threshold, a throttled presence:count)
 * for a user's first connection in the room, from the given counts (local ones, or
 * cluster-wide ones from cluster.c). */
void mw__presence_emit_join(const char *room, const char *user, const char *meta,
                            uint32_t conns, const char *except_conn, uint32_t users,
                            const struct mw_route_config *rc);
/* The same for a user's last connection leaving; users_before counts them included. */
void mw__presence_emit_leave(const char *room, const char *user, uint32_t users_before,
                             const struct mw_route_config *rc);

/* Stops the throttle timer (shutdown). */
void mw_presence_shutdown(void);

#endif
