/* store.h - the store: one process-wide key/value and list store modeled on OpenResty's
 * ngx.shared.DICT, behind a backend interface (memory, or Redis with `redis:`) with the
 * same semantics for both.
 *
 * Values are JSON texts (the Redis backend stores the same text, so a number is "12"
 * and INCRBYFLOAT works on it). A key is 1..MW_STORE_MAX_KEY bytes without NUL. A key
 * holds a scalar value, a list, a hash (fields -> values) or a timed queue; an
 * operation for another kind fails with MW_STORE_EWRONGTYPE. TTLs are milliseconds,
 * 0 = no expiry.
 *
 * Compare-and-set: CAS and HCAS change a value only when it is still the text the
 * caller read (the "token"), or still absent; that is how several nodes change one
 * record without losing each other's writes. A timed queue hands each item whose time
 * has come to exactly one DUE caller, on the store's one clock (Redis's, clustered), so
 * that deadlines are acted on once however many nodes poll.
 *
 * Requests complete through a callback that fires exactly once: either before
 * mw_store_submit returns (the memory backend) or later from the loop (Redis, and the
 * memory backend's deferred mode). Callers must cope with both; lua_store.c does so by
 * yielding only when the request is still pending. */
#ifndef MW_STORE_H
#define MW_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MW_STORE_MAX_KEY 256
/* Longest hash field, and longest queue item (as JSON text). */
#define MW_STORE_MAX_FIELD 1024
/* Most items one DUE returns. */
#define MW_STORE_MAX_DUE 1000
/* Default memory backend bounds: over them, writes fail with MW_STORE_ENOMEM. */
#define MW_STORE_DEFAULT_MAX_KEYS 1000000u
#define MW_STORE_DEFAULT_MAX_BYTES ((size_t)64 << 20)
/* Longest TTL accepted (ms): about 31 years. */
#define MW_STORE_MAX_TTL_MS ((uint64_t)1000000000 * 1000)

enum mw_store_op {
    MW_STORE_GET,     /* -> value (NULL = no such key) */
    MW_STORE_SET,     /* value, ttl_ms -> ok; replaces a list too */
    MW_STORE_ADD,     /* value, ttl_ms -> ok | EEXIST */
    MW_STORE_REPLACE, /* value, ttl_ms -> ok | ENOTFOUND */
    MW_STORE_INCR,    /* n [, init, ttl_ms] -> num | ENOTFOUND | ENOTNUM | ERANGE */
    MW_STORE_DELETE,  /* -> ok (also when absent) */
    MW_STORE_EXPIRE,  /* ttl_ms (0 = persist) -> ok | ENOTFOUND */
    MW_STORE_TTL,     /* -> num: seconds left, 0 = no expiry | ENOTFOUND */
    MW_STORE_LPUSH,   /* value -> num: new length */
    MW_STORE_RPUSH,   /* value -> num: new length */
    MW_STORE_LPOP,    /* -> value (NULL = empty or no such key) */
    MW_STORE_RPOP,    /* -> value (NULL = empty or no such key) */
    MW_STORE_LLEN,    /* -> num (0 for no such key) */
    MW_STORE_LRANGE,  /* start, stop -> values: Redis LRANGE, 0-based, inclusive,
                         negative indices count from the end */
    MW_STORE_CAS,     /* token (or !has_token: must be absent), value (NULL: delete),
                         ttl_ms -> ok | ECHANGED | EWRONGTYPE */
    MW_STORE_HGET,    /* field -> value (NULL = no such field or key) */
    MW_STORE_HSET,    /* field, value -> ok */
    MW_STORE_HDEL,    /* field -> num: 1 removed, 0 absent; an emptied hash goes away */
    MW_STORE_HGETALL, /* -> values: field, value, field, value... (none: no such key) */
    MW_STORE_HCAS,    /* field, token (or !has_token), value (NULL: delete) -> ok |
                         ECHANGED | EWRONGTYPE */
    MW_STORE_SCHEDULE,   /* value = item, ttl_ms = delay -> ok; an item already queued
                            moves to the new time */
    MW_STORE_DUE,        /* count, ttl_ms = lease -> values: up to count items whose
                            time has come, earliest first; each is removed, or with a
                            lease queued again lease ms from now */
    MW_STORE_UNSCHEDULE, /* value = item -> ok | ENOTFOUND */
};

/* Runtime failures of a request: 0 or one of these; mw_store_strerror names them with
 * the strings the Lua API returns. */
enum {
    MW_STORE_EEXIST = -1,      /* "exists": add on a present key */
    MW_STORE_ENOTFOUND = -2,   /* "not found" */
    MW_STORE_ENOTNUM = -3,     /* "not a number": incr on a value that is no number */
    MW_STORE_EWRONGTYPE = -4,  /* "wrong type": list op on a scalar, or the reverse */
    MW_STORE_ENOMEM = -5,      /* "no memory": over the store's bounds */
    MW_STORE_EUNAVAIL = -6,    /* "unavailable": backend down or store closed */
    MW_STORE_EINVAL = -7,      /* "invalid argument": bad key or TTL from C */
    MW_STORE_ERANGE = -8,      /* "overflow": incr result is not a finite number */
    MW_STORE_ECHANGED = -9,    /* "changed": cas on a value that is not the token */
};
const char *mw_store_strerror(int err);

/* A request. Every pointer is borrowed for the duration of mw_store_submit: a backend
 * that completes later copies what it needs. */
struct mw_store_req {
    enum mw_store_op op;
    const char *key;
    size_t keylen;
    const char *value; /* JSON text: set, add, replace, lpush, rpush, hset, cas, hcas
                          (NULL there: delete); the item of schedule and unschedule */
    size_t valuelen;
    uint64_t ttl_ms;   /* set, add, replace, expire, cas; incr: TTL of a key created
                          from init; schedule: delay; due: lease (0 = remove) */
    double n;          /* incr: increment */
    double init;       /* incr: value of a missing key before the increment */
    bool has_init;
    int64_t start, stop; /* lrange */
    const char *field; /* hget, hset, hdel, hcas: 1..MW_STORE_MAX_FIELD bytes, no NUL */
    size_t fieldlen;
    const char *token; /* cas, hcas: the text the value must still be */
    size_t tokenlen;
    bool has_token;    /* false: the key (field) must be absent */
    uint32_t count;    /* due: most items, 1..MW_STORE_MAX_DUE */
};

struct mw_store_str {
    const char *p;
    size_t len;
};

/* A completed request. Everything it points to is valid only during the callback. */
struct mw_store_result {
    enum mw_store_op op;
    int err;                 /* 0 or MW_STORE_E* */
    const char *value;       /* get, lpop, rpop: JSON text, or NULL for nil */
    size_t valuelen;
    double num;              /* incr: new value; ttl: seconds left; lpush/rpush/llen:
                                length; hdel: fields removed */
    const struct mw_store_str *values; /* lrange, due; hgetall: field, value pairs */
    size_t nvalues;
};

/* Fires exactly once per submitted request; res is never NULL. */
typedef void (*mw_store_cb)(void *ud, const struct mw_store_result *res);

struct mw_store_stats {
    uint64_t keys;          /* live keys (expired ones not yet swept included) */
    uint64_t bytes;         /* accounted bytes of keys and values */
    uint64_t expired_total; /* keys removed because their TTL passed */
};

/* A backend: the store's state lives behind these. */
struct mw_store_backend {
    const char *name;
    /* Runs a validated request; returns 1 when cb already ran, 0 when it will run
     * later from the loop. A backend that cannot reach its server (Redis down)
     * completes every request with MW_STORE_EUNAVAIL, at once or later. */
    int (*submit)(const struct mw_store_req *req, mw_store_cb cb, void *ud);
    /* Whether submit may return 0 right now (Redis: always). */
    bool (*may_defer)(void);
    void (*stats)(struct mw_store_stats *out);
    /* Completes every pending request with MW_STORE_EUNAVAIL (its callbacks may submit
     * again: the store is closed by then and answers those at once), then frees
     * everything; handles finish closing on the next loop run. */
    void (*free)(void);
};

/* Selects the backend the next mw_store_init opens: Redis when on (`serve` with
 * `redis:`, before mw_server_prepare), else memory (the default: `moonwire test` and
 * `moonwire check` always use it). */
void mw_store_use_redis(bool on);
/* Opens the store on the default loop: the selected backend (MOONWIRE_STORE_DEFERRED=1
 * in the environment turns on the memory backend's deferred mode, a testing aid). Does
 * nothing while open; the first request opens it too, so scripts compiled by
 * `moonwire check` can use it. */
void mw_store_init(void);
/* Closes the store: pending requests complete with MW_STORE_EUNAVAIL, later ones get
 * it at once. Idempotent. Run the loop afterwards so that its handles finish closing. */
void mw_store_free(void);

/* Validates and runs a request (see the op list for what each one reports). Returns
 * 1 when cb already ran (invalid requests complete at once with MW_STORE_EINVAL, a
 * closed store with MW_STORE_EUNAVAIL), 0 when it will run later from the loop. */
int mw_store_submit(const struct mw_store_req *req, mw_store_cb cb, void *ud);

/* Whether a request submitted now may complete later. A caller that cannot wait (Lua
 * at load time) checks this first instead of submitting what it cannot finish. */
bool mw_store_may_defer(void);

/* Whether the store is on Redis (mw_store_use_redis): its neighbours that keep data
 * of their own (inbox.c) follow it there, through mw_store_redis_call, which fails
 * while the store is closed. */
bool mw_store_on_redis(void);

/* Counters for metrics (zeros while the store is closed). */
void mw_store_stats(struct mw_store_stats *out);

/* Shared by backends: a stored text is a number if it is a JSON number; returns 0 and
 * sets *out, or -1. mw__store_format_number writes v as JSON (as lua_json.c does:
 * integers below 2^53 without a fraction) and returns its length; v must be finite. */
int mw__store_parse_number(const char *s, size_t len, double *out);
int mw__store_format_number(double v, char buf[32]);

/* The memory backend (store_memory.c). */
extern const struct mw_store_backend mw_store_memory;
void mw__store_memory_open(void);
/* Testing aids. deferred: complete requests on the next loop iteration (the code path
 * the Redis backend takes). clock: NULL restores the monotonic clock. limits: 0 means
 * the default. All three reset when the store is freed. sweep: one active-expiry pass of at most `budget` keys; returns how many
 * it removed (the sweep timer runs it every MW_STORE_SWEEP_MS). */
void mw_store_memory_set_deferred(int on);
void mw_store_memory_set_clock(uint64_t (*now_ms)(void));
void mw_store_memory_set_limits(size_t max_keys, size_t max_bytes);
size_t mw_store_memory_sweep(size_t budget);

/* The Redis backend (store_redis.c): key k is MW_STORE_REDIS_PREFIX k, on redis.c's
 * command connection. It may open before that connection is up: until then, and
 * whenever it is down, requests complete at once with MW_STORE_EUNAVAIL. */
#define MW_STORE_REDIS_PREFIX "mw:s:"
extern const struct mw_store_backend mw_store_redis;
void mw__store_redis_open(void);

/* A raw command for mw.redis.call (lua_redis.c), kept with the store's pending requests
 * so that closing the store completes it too. Returns 0, and cb fires later exactly
 * once: with the reply, or NULL when the connection went away or the store closed
 * first. Returns -1 at once, cb never firing, when Redis is down or the store is not
 * open on Redis. The reply is a hiredis redisReply, valid during the callback. */
struct redisReply;
typedef void (*mw_store_redis_cb)(void *ud, struct redisReply *reply);
int mw_store_redis_call(mw_store_redis_cb cb, void *ud, int argc, const char **argv,
                        const size_t *lens);

#define MW_STORE_SWEEP_MS 100
#define MW_STORE_SWEEP_BUDGET 10000

#endif
