/* redis.h - the Redis client (SPEC section 7): two hiredis async connections on the
 * server's libuv loop, one for commands and one for pub/sub, reconnected with
 * exponential backoff and jitter. Never a blocking call: host names are resolved with
 * uv_getaddrinfo, connects and commands are asynchronous. */
#ifndef MW_REDIS_H
#define MW_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct redisReply;

/* A command's reply; reply is NULL when the connection went away first. */
typedef void (*mw_redis_cb)(void *ud, struct redisReply *reply);

struct mw_redis_hooks {
    /* A message on a subscribed channel. */
    void (*on_message)(const char *channel, const char *payload, size_t len);
    /* Both connections up (after every reconnect, once resubscribed), or one down. */
    void (*on_state)(bool up);
};

/* Parses redis://[:password@]host[:port][/db]. 0, or -1 with err set. */
int mw_redis_parse_url(const char *url, char *host, size_t hostlen, int *port,
                       char **password, int *db, char *err, size_t errlen);

/* Starts connecting (returns at once). */
int mw_redis_start(const char *url, const struct mw_redis_hooks *hooks, char *err, size_t errlen);
void mw_redis_stop(void);
bool mw_redis_configured(void);
/* Both connections are up and every subscription is in place. */
bool mw_redis_up(void);

/* Sends a command (binary-safe arguments). Returns 0, or -1 when Redis is down (the
 * callback is then never called). cb may be NULL. */
int mw_redis_command(mw_redis_cb cb, void *ud, int argc, const char **argv, const size_t *lens);

/* Subscriptions the client keeps across reconnects (resubscribed in batches). */
void mw_redis_subscribe(const char *channel);
void mw_redis_unsubscribe(const char *channel);

struct mw_redis_stats {
    uint64_t ups, downs, published, received;
    uint32_t channels;
};
extern struct mw_redis_stats mw_redis_stats;

#endif
