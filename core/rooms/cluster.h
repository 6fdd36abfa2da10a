/* cluster.h - the node registry (docs/clustering.md): every node registers itself in
 * Redis with a TTL and checks the others; the first node to see a dead one removes its
 * presence (presence.c). Only active with `redis:`.
 *
 * Keys ("{mw}" instead of "mw" with a Redis Cluster: all in one slot, so that a
 * master restarting empty loses the whole registry or none of it):
 *   mw:nodes        set of node ids that registered
 *   mw:node:<id>    the node is alive (refreshed every tick; expires when it dies)
 *   mw:clean:<id>   the lock of the node cleaning <id> up
 *   mw:gen          the registry's generation: a new one means Redis lost the registry */
#ifndef MW_CLUSTER_H
#define MW_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "base/config.h"

/* The registry's tick: registration refresh and dead-node checks, a few per
 * heartbeat interval (half of it, within 250 ms..5 s). A node's key lives 3 ticks. */
uint64_t mw_cluster_tick_ms(const struct mw_config *cfg);

/* Starts the registry (call once the Redis client started). */
void mw_cluster_start(const struct mw_config *cfg);
void mw_cluster_stop(void);
/* The Redis client came up (or up again) / went down. */
void mw_cluster_on_state(bool up);

struct mw_cluster_stats {
    uint64_t dead_nodes_cleaned, registry_rebuilds;
};
extern struct mw_cluster_stats mw_cluster_stats;

#endif
