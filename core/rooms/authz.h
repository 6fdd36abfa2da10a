/* authz.h - which rooms a connection may join (conn:join checks them in this order):
 * - its route's `rooms` patterns (an exact name, or a prefix ending in '*'; a route
 *   without them has "*"). A room matched by a more specific pattern of another route
 *   is that route's alone: with /reservations at "venue:*", a /chat client cannot join
 *   "venue:1", whatever /chat allows;
 * - limits.max_rooms per connection;
 * - the app's `can_join(conn, room)` hook, if it has one (lua_conn.c).
 * A refusal is the `forbidden` error. Server-side code (mw.rooms.*, the HTTP API)
 * reaches any room: it is trusted. */
#ifndef MW_AUTHZ_H
#define MW_AUTHZ_H

#include <stdint.h>

#include "base/config.h"

/* Learns the patterns of every route served (the config's, and the server's own
 * /admin/ws). */
void mw_authz_init(const struct mw_route_config *const *routes, size_t n);
void mw_authz_shutdown(void);

/* NULL when clients of route rc may join room (by the patterns), else why not. */
const char *mw_authz_room_error(const struct mw_route_config *rc, const char *room);

/* Joins refused, by reason, for /metrics. */
struct mw_authz_stats {
    uint64_t route, max_rooms, app;
};
extern struct mw_authz_stats mw_authz_stats;

#endif
