/* redis_topo.h - who serves which slot: the Redis servers the client talks to
 * ("nodes", each with a command link and a subscriber link) and the slot table.
 *
 * One Redis (redis.url) is one node that owns every slot. A Redis Cluster
 * (redis.cluster) is the masters of the table CLUSTER SLOTS gives, asked of a seed
 * first, then of any master on a MOVED, on a link failure and every REFRESH_MS. A
 * master counts as serving once CLUSTER INFO says cluster_state:ok there (asked when
 * its link comes up and on every refresh): a restarted master answers CLUSTERDOWN for
 * a while, and the resync that follows `redis up` must not be refused.
 *
 * Nodes live until mw__redis_topo_stop; a node that no longer serves slots only
 * loses its connections. A node is freed once both its links are released. */
#ifndef MW_REDIS_TOPO_H
#define MW_REDIS_TOPO_H

#include <stdbool.h>
#include <stdint.h>

#include "redis/redis_link.h"

struct mw__redis_node {
    struct mw__redis_node *next;
    char host[256];
    int port;
    char addr[272];     /* host:port, for logs */
    bool seed;
    uint32_t nslots;    /* slots it serves: a master when > 0 */
    bool serving;       /* CLUSTER INFO said cluster_state:ok, since its link came up */
    bool warned;        /* logged that it does not */
    bool state_asked;   /* a CLUSTER INFO is in flight */
    uint64_t asked_ms;  /* last ASK that named it */
    uint32_t inflight;  /* commands sent on cmd, not answered yet (redis_cmd.c) */
    uint32_t released;  /* links released after stop: freed at 2 */
    struct mw__redis_link cmd, sub;
};

struct mw__redis_topo_hooks {
    const struct mw__redis_link_ops *link_ops; /* for every node's links */
    void (*changed)(void);       /* the table, a link or a master's state changed */
    void (*table_applied)(void); /* a new table: channels follow it */
};

/* cluster: a Redis Cluster (slots from CLUSTER SLOTS); else one Redis, added with
 * mw__redis_topo_single. */
void mw__redis_topo_start(bool cluster, const struct mw__redis_topo_hooks *h);
void mw__redis_topo_single(const char *host, int port);
void mw__redis_topo_seed(const char *host, int port);
/* Stops every link; nodes are freed once their links let go. */
void mw__redis_topo_stop(void);

bool mw__redis_topo_cluster(void);
struct mw__redis_node *mw__redis_topo_nodes(void); /* iterate with ->next */
struct mw__redis_node *mw__redis_topo_owner(int slot);
uint32_t mw__redis_topo_covered(void);
uint32_t mw__redis_topo_masters(void);
/* Every slot has a master whose two links are up and, in a Redis Cluster, that
 * serves. */
bool mw__redis_topo_ready(void);

/* The node at host:port, created (not connected) when new. */
struct mw__redis_node *mw__redis_topo_node(const char *host, int port);
/* A MOVED said `to` serves `slot` now: the table follows at once, a full refresh
 * soon. */
void mw__redis_topo_moved(int slot, struct mw__redis_node *to);
/* An ASK named n: keep its command link for a while. */
void mw__redis_topo_asked(struct mw__redis_node *n);
/* Connects every master (and seeds while no table is usable), closes the rest. */
void mw__redis_topo_sync_links(void);
/* Asks a master whether it serves (CLUSTER INFO), once at a time. */
void mw__redis_topo_ask_state(struct mw__redis_node *n);
/* A refresh of the table in delay_ms (or sooner if due sooner), then periodic. */
void mw__redis_topo_refresh(uint64_t delay_ms);

/* The links' released op (through the client): frees a node once both let go. */
void mw__redis_topo_node_released(struct mw__redis_node *n);

/* The client tells of its links. */
void mw__redis_topo_link_up(struct mw__redis_node *n, bool subscriber);
void mw__redis_topo_link_down(struct mw__redis_node *n, bool subscriber);

#endif
