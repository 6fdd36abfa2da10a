/* config.h - the YAML configuration (docs/config.md), parsed and validated.
 *
 * Leaf module: depends on libyaml and util only, so it is unit tested alone.
 * Every error names the source and the YAML line: "moonwire.yaml:7: unknown key 'foo'". */
#ifndef MW_CONFIG_H
#define MW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mw_route_protocol { MW_PROTO_JSON = 0, MW_PROTO_RAW = 1 };
enum mw_slow_policy { MW_SLOW_CLOSE = 0, MW_SLOW_DROP = 1 };
enum mw_log_format { MW_LOG_LOGFMT = 0, MW_LOG_JSON = 1 };

/* Most items `inbox.size` may keep per user: a backlog goes out as one frame. */
#define MW_CONFIG_MAX_INBOX 10000

#define MW_DEFAULT_HISTORY_SIZE 100

struct mw_route_config {
    char *path;               /* "/chat": starts with '/', no query, unique */
    char *script;             /* absolute (or home-resolved) path of the script */
    char *app;                /* bundled app name for "app:NAME", else NULL */
    int line;                 /* YAML line of the route, for later error messages */
    enum mw_route_protocol protocol;   /* `protocol: json|raw` (default json) */
    enum mw_slow_policy slow_consumer; /* `slow_consumer: close|drop` (default close) */
    bool compression;         /* `compression: bool`: permessage-deflate (default false) */
    uint32_t history_size;    /* `history: { size: N, ttl: DURATION }`; 0 = off (default 100) */
    uint64_t history_ttl_ms;  /* 0 = no time bound (default) */
    bool presence_events;     /* `presence: { events: bool, threshold: N }` (default true) */
    uint32_t presence_threshold; /* above it: presence:count instead of join/leave (default 100) */
    uint64_t hold_ttl_ms;     /* `hold_ttl` (reservations; default 2m) */
    char *options_json;       /* `options:` free-form map as a JSON object text; "{}" when absent */
    char **rooms;             /* `rooms:` room names its clients may join: exact, or a prefix
                                 ending in '*'; none = any (["*"]); authz.h */
    size_t nrooms;
    char *options_lines_json; /* where each part of it is in the file: [line, {key: [line,
                                 ...]}] (see config.c, json_value); NULL when absent */
    const char *source;       /* the config's source (cfg->source), for scripts' errors */
};

struct mw_config {
    char *source;             /* file path as given, or "<embedded>" */
    char *base_dir;           /* directory relative paths are resolved against */

    char *listen_host;        /* "127.0.0.1" */
    int listen_port;          /* 8080; 0 allowed (ephemeral, tests) */
    char *node_id;            /* NULL = generate at start */
    char *static_dir;         /* resolved docroot or NULL */
    int workers;              /* `workers: N` (default 1) */

    struct mw_route_config *routes;
    size_t nroutes;

    uint64_t heartbeat_interval_ms; /* 25s */
    uint64_t heartbeat_timeout_ms;  /* 10s */

    size_t max_message;       /* 64KiB */
    size_t send_queue;        /* 1MiB */
    double rate;              /* messages/s per connection, 50 */
    double burst;             /* 100 */
    uint32_t max_connections; /* 100000 */
    size_t socket_send_buffer; /* SO_SNDBUF of accepted sockets; 0: the kernel's autotuning */
    uint64_t slow_handler_ms; /* `limits.slow_handler` (default 100ms): log handlers slower */
    uint64_t handler_timeout_ms; /* `limits.handler_timeout` (1s): Lua code holding the loop
                                    longer is stopped (watchdog.h); 0 = never */
    uint32_t max_rooms;       /* `limits.max_rooms` (128): rooms per connection */
    uint32_t max_conns_per_ip;   /* `limits.max_connections_per_ip` (10000; 0 = no limit) */
    uint32_t max_conns_per_user; /* `limits.max_connections_per_user` (100; 0 = no limit) */
    size_t history_memory;    /* `limits.history_memory` (64MiB): history kept in memory for
                                 rooms without members; beyond it the oldest idle go first */
    size_t sessions_memory;   /* `limits.sessions_memory` (64MiB): id windows of detached
                                 sessions; beyond it the oldest go first */
    char **origins;           /* `origins:` allowed Origin headers of browser handshakes;
                                 none = any */
    size_t norigins;

    char *redis_url;          /* NULL when absent */
    char **redis_cluster;     /* seed URLs, NULL-terminated count in nredis_cluster */
    size_t nredis_cluster;
    uint64_t redis_timeout_ms;     /* `redis.timeout`: reply deadline; 0 = from heartbeat */
    uint32_t redis_max_in_flight;  /* `redis.max_in_flight`: commands waiting per server */

    char *jwt_secret;         /* NULL when absent or empty */
    char *jwt_public_key;     /* `auth.jwt_public_key`: PEM text, or a PEM file's resolved path */
    int jwt_public_key_line;  /* its YAML line, for errors found when the key is loaded */
    char **jwt_algorithms;    /* `auth.algorithms`; none: every one the keys allow */
    size_t njwt_algorithms;
    char *jwt_issuer;         /* `auth.issuer`: the required `iss`, or NULL */
    char *jwt_audience;       /* `auth.audience`: required in `aud`, or NULL */
    uint64_t auth_leeway_ms;  /* `auth.leeway` (5s): clock skew allowed on exp and nbf */
    uint64_t auth_timeout_ms; /* `auth.timeout` (10s): for the first `auth` message */
    bool auth_required;

    char **api_keys;          /* empty strings dropped (an unset ${VAR}) */
    size_t napi_keys;

    uint32_t inbox_size;      /* `inbox: { size, ttl, max_item }`: items kept per user (100) */
    uint64_t inbox_ttl_ms;    /* an item's lifetime; 0 = until read or trimmed (168h) */
    size_t inbox_max_item;    /* largest notification payload, JSON bytes (4KiB) */

    bool hot_reload;          /* dev.hot_reload */
    bool user_param;          /* dev.user_param */

    int log_level;            /* MW_LOG_DEBUG.. from log.h: debug=0 info=1 warn=2 error=3 */
    enum mw_log_format log_format;
};

/* The embedded default (docs/config.md), as YAML text; paths in it are relative to
 * the bundled examples directory. */
extern const char mw_config_embedded_yaml[];

/* Parses YAML text. `source` names it in errors; `base_dir` resolves relative paths;
 * `home` resolves "app:NAME" scripts to HOME/apps/NAME/main.lua. Returns 0, or -1 with
 * a one-line "source:line: message" in err. On success *out is owned by the caller
 * (mw_config_free); on failure *out is left zeroed. */
int mw_config_parse(const char *yaml, size_t len, const char *source, const char *base_dir,
                    const char *home, struct mw_config *out, char *err, size_t errlen);

/* Reads and parses a file; base_dir is the file's directory. */
int mw_config_load_file(const char *path, const char *home, struct mw_config *out,
                        char *err, size_t errlen);

/* The embedded default, with base_dir = HOME/examples. */
int mw_config_load_embedded(const char *home, struct mw_config *out, char *err, size_t errlen);

void mw_config_free(struct mw_config *cfg);

/* "25s", "500ms", "2m", "1h", "1.5s"; a bare integer is seconds. 0 or -1. */
int mw_parse_duration(const char *s, uint64_t *ms);
/* "64KiB", "1MiB", "512", "1GiB", "10KB"(=10*1000). 0 or -1. */
int mw_parse_size(const char *s, size_t *bytes);

/* "HOST:PORT", "[IPV6]:PORT" or ":PORT" (0.0.0.0): replaces *host (freed) and *port.
 * 0, -1 when the form is wrong, -2 when the port is not 0..65535. */
int mw_parse_listen(const char *s, char **host, int *port);

/* A route's settings before its YAML is read (options_json allocated). */
void mw_config_route_defaults(struct mw_route_config *r);

/* Looks a route up by path; NULL if none. */
const struct mw_route_config *mw_config_route(const struct mw_config *cfg, const char *path);

#endif
