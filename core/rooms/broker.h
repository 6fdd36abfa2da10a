/* broker.h - rooms and users across nodes (docs/clustering.md). Without `redis:` it is
 * the local fan-out only. With Redis, a room is a channel this node subscribes to
 * while it has local members, and a user one while they have local connections; every
 * broadcast goes to local members at once and is published for the other nodes,
 * tagged with this node's id so that no node delivers its own broadcast twice. */
#ifndef MW_BROKER_H
#define MW_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/config.h"
#include "net/conn.h"
#include "base/msg.h"

/* Starts the Redis client when configured. 0, or -1 with err set. */
int mw_broker_start(const struct mw_config *cfg, char *err, size_t errlen);
void mw_broker_stop(void);

/* Sends a framed event to every member of the room on every node, except the
 * connection `except` (local) and every connection of `except_user` (all nodes).
 * Returns the local recipients. */
uint32_t mw_broker_room(const char *room, struct mw_msg *m, const struct mw_conn *except,
                        const struct mw_user *except_user);

/* A presence:join (join) or presence:leave event about `user`, sent like
 * mw_broker_room: other nodes learn whom it is about without parsing it
 * (mw_broker_on_presence). */
uint32_t mw_broker_presence(const char *room, struct mw_msg *m, const struct mw_conn *except,
                            const char *user, bool join);
/* The payload head of such an event, for a Redis script that publishes it itself
 * (presence_redis.c): append the event JSON. */
void mw_broker_presence_head(struct mw_buf *b, const char *user, bool join);
/* Set by presence.c: a presence event about `user` from another node reached this
 * node's members of `room`. */
extern void (*mw_broker_on_presence)(const char *room, const char *user, bool join);

/* Every connection of a user on every node. Returns the local recipients. */
uint32_t mw_broker_user(const char *user, struct mw_msg *m);

/* Closes every connection of the user with code and reason, here at once and on
 * every other node once the disconnect reaches them. Returns the local ones. */
uint32_t mw_broker_disconnect_user(const char *user, int code, const char *reason);

/* Sends `body` to node `node` of the cluster, tagged kind and arg (at most 255
 * bytes, no newline): mw_broker_on_node gets them there. 0 once it is on its way;
 * MW_ENOENT when not clustered, MW_EIO when Redis is down. Fire-and-forget: a node
 * that is gone gets nothing. */
int mw_broker_node(const char *node, const char *kind, const char *arg, const char *body,
                   size_t len);
/* Set by the module that handles a kind (sse.c): called for what other nodes sent
 * to this one. */
extern void (*mw_broker_on_node)(const char *kind, const char *arg, const char *body, size_t len);

/* Clustered: Redis is configured. */
bool mw_broker_clustered(void);

/* For an event that a Redis script publishes (history.c): the room's channel and the
 * command (PUBLISH or SPUBLISH), and the payload head to put before the event JSON.
 * Such an event is delivered by every node from the channel, its origin included, so
 * that each node delivers a room's sequenced events in seq order. */
void mw_broker_room_channel(const char *room, char *channel, size_t n, const char **publish_cmd);
void mw_broker_payload_head(struct mw_buf *b, unsigned msg_flags, bool origin_too);

/* Events published to other nodes that could not be (Redis down); payloads from the
 * channels that were no well-formed broker_wire.h payload; and well-formed ones whose
 * text was not UTF-8 (dropped: nothing from Redis goes out unchecked). */
extern uint64_t mw_broker_dropped, mw_broker_bad_payloads, mw_broker_invalid;

#endif
