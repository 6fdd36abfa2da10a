/* redis.h - the Redis client (docs/clustering.md): commands and pub/sub over one Redis
 * (redis.url) or a Redis Cluster (redis.cluster), on the server's libuv loop,
 * reconnected with exponential backoff and jitter, watched by a PING with a reply
 * deadline. Never a blocking call: host names are resolved with uv_getaddrinfo,
 * connects and commands are asynchronous. redis.c tells how the parts fit.
 *
 * With a Redis Cluster, commands go to the master of their key's slot (MOVED and ASK
 * followed), and channels are sharded: SSUBSCRIBE on the master of the channel's slot,
 * SPUBLISH routed like a key. Callers name keys and channels with {hash tags} when
 * several must share a slot (a room's channel and its presence keys). */
#ifndef MW_REDIS_H
#define MW_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/hist.h"

struct redisReply;

/* A command's reply; reply is NULL when the connection went away first (or, with a
 * Redis Cluster, when the key's master could not be reached after a redirection). */
typedef void (*mw_redis_cb)(void *ud, struct redisReply *reply);

struct mw_redis_hooks {
    /* A message on a subscribed channel. */
    void (*on_message)(const char *channel, const char *payload, size_t len);
    /* Everything up (after every reconnect, once resubscribed), or something down. */
    void (*on_state)(bool up);
};

/* Parses redis://[:password@]host[:port][/db]. 0, or -1 with err set. */
int mw_redis_parse_url(const char *url, char *host, size_t hostlen, int *port,
                       char **password, int *db, char *err, size_t errlen);

struct mw_redis_options {
    uint64_t heartbeat_ms;   /* heartbeat.interval, for the default timeout */
    uint64_t timeout_ms;     /* redis.timeout (0: half the heartbeat, 500 ms..5 s) */
    uint32_t max_in_flight;  /* redis.max_in_flight per Redis server (0: 10000) */
    uint64_t backoff_cap_ms; /* longest reconnect backoff (0: 10 s; at least 200 ms) */
};

/* Starts connecting to one Redis (returns at once). 0, or -1 with err set. */
int mw_redis_start(const char *url, const struct mw_redis_hooks *hooks,
                   const struct mw_redis_options *o, char *err, size_t errlen);
/* Starts connecting to a Redis Cluster through any reachable seed URL; the masters are
 * found with CLUSTER SLOTS. 0, or -1 with err set (a bad URL, a database number). */
int mw_redis_start_cluster(char *const *urls, size_t nurls, const struct mw_redis_hooks *hooks,
                           const struct mw_redis_options *o, char *err, size_t errlen);
void mw_redis_stop(void);
bool mw_redis_configured(void);
/* Started with mw_redis_start_cluster: channels are sharded (SPUBLISH/SSUBSCRIBE). */
bool mw_redis_is_cluster(void);
/* Every slot has a master whose links are up (and answer: a watchdog PINGs them),
 * and every subscription is in place (confirmed again after a reconnect). */
bool mw_redis_up(void);

/* Sends a command (binary-safe arguments), routed by its key (argv[1] for most
 * commands, the first key of EVAL/EVALSHA, none for PING: any master). Returns 0, or
 * -1 when the key's Redis is down or has redis.max_in_flight commands waiting (the
 * callback is then never called). The callback never fires inside this call; it gets
 * NULL when the outcome is unknown (the link was lost after sending). cb may be
 * NULL. */
int mw_redis_command(mw_redis_cb cb, void *ud, int argc, const char **argv, const size_t *lens);
/* During a command's callback: whether the command was answered by the node an ASK
 * sent it to (its slot is being migrated). A script's sharded publish there reached
 * only that node's subscribers, not the channel's, which stay on the old master until
 * the migration ends: the caller publishes again through the slot's owner. */
bool mw_redis_reply_asked(void);
/* The same, routed by `key` (NULL: any master). One Redis ignores it. */
int mw_redis_command_key(const char *key, size_t keylen, mw_redis_cb cb, void *ud, int argc,
                         const char **argv, const size_t *lens);

/* Subscriptions the client keeps across reconnects and topology changes (resubscribed
 * in batches): SUBSCRIBE, or SSUBSCRIBE on the master of the channel's slot. */
void mw_redis_subscribe(const char *channel);
void mw_redis_unsubscribe(const char *channel);
/* Whether this node hears a kept channel now (its subscribe confirmed): 0 yes (no
 * callback); 1 not yet: cb(ud, true) once it is, cb(ud, false) if the subscriber link
 * of the channel's master goes or the channel is dropped first (never inside this
 * call); -1 when that link is down, the channel is not kept, or too many wait (no
 * callback). */
int mw_redis_when_subscribed(const char *channel, void (*cb)(void *ud, bool ok), void *ud);

struct mw_redis_stats {
    uint64_t ups, downs, published, received;
    uint64_t hung;    /* links taken down by the watchdog: Redis did not answer */
    uint64_t refused; /* commands refused: redis.max_in_flight were waiting */
    uint64_t moved, asked, topology_changes; /* Redis Cluster */
    uint32_t channels, masters;
    uint32_t in_flight;     /* commands sent and not answered yet, over every server */
    struct mw_hist command; /* from sending a command to its callback (redirects included) */
};
extern const struct mw_hist_le mw_redis_command_le;
extern struct mw_redis_stats mw_redis_stats;

#endif
