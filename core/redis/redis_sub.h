/* redis_sub.h - the channels this node keeps subscribed, across reconnects and
 * topology changes: SUBSCRIBE on one Redis, SSUBSCRIBE on the master of each
 * channel's slot in a Redis Cluster, on that node's subscriber link. Resubscribing is
 * pipelined: SUBSCRIBE_BATCH channels per command (one slot per command in a
 * cluster: Redis refuses channels of several slots in one SSUBSCRIBE), one write per
 * master, not one round trip per channel.
 *
 * A channel is "confirmed" once Redis answered its subscribe. After a subscriber
 * link came back, the client is not ready (mw__redis_sub_ready) until every channel
 * it had is confirmed again: a node that published before it hears the channel would
 * ack events its own members never get. */
#ifndef MW_REDIS_SUB_H
#define MW_REDIS_SUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct redisReply;
struct mw__redis_node;

/* on_message: a message on a subscribed channel. */
void mw__redis_sub_start(void (*on_message)(const char *channel, const char *payload, size_t len));
void mw__redis_sub_stop(void);

void mw__redis_sub_subscribe(const char *channel);
void mw__redis_sub_unsubscribe(const char *channel);

/* Whether this node hears the channel now: 0 when it is subscribed and confirmed
 * (no callback); 1 when the confirmation is on its way: cb(ud, true) once it came, or
 * cb(ud, false) if the subscriber link of its master goes, the channel is dropped, or
 * the client stops first; -1 when the channel is not kept, its master's subscriber
 * link is not up, or too many wait (no callback). */
int mw__redis_sub_when_heard(const char *channel, void (*cb)(void *ud, bool ok), void *ud);

/* Every channel placed and, after a subscriber link came back, confirmed again. */
bool mw__redis_sub_ready(void);
/* Channels kept, for metrics. */
uint32_t mw__redis_sub_count(void);

/* The client tells: n's subscriber link is up / down; a reply on it; a new table. */
void mw__redis_sub_link_up(struct mw__redis_node *n);
void mw__redis_sub_link_down(struct mw__redis_node *n);
void mw__redis_sub_push(struct mw__redis_node *n, struct redisReply *r);
void mw__redis_sub_table_applied(void);

#endif
