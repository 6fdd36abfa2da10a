/* redis.c - the Redis client (redis.h): starts and stops it, wires its parts
 * together and tells the server whether it is up.
 *
 * The parts, one concern each:
 *   redis_uv.c      hiredis async contexts on the libuv loop
 *   redis_link.c    one connection kept up: connect, handshake, backoff, watchdog
 *   redis_topo.c    the Redis servers and the slot table (Redis Cluster topology)
 *   redis_sub.c     the channels kept subscribed, and the messages they bring
 *   redis_cmd.c     command routing: MOVED/ASK/TRYAGAIN, the in-flight bound
 *   redis_cluster.c the Redis Cluster protocol pieces that need no connection
 *
 * Links report to this file (link_ops); it tells the topology and the channel
 * registry, then re-evaluates "up": every slot has a master whose command and
 * subscriber links are up (and that serves, in a Redis Cluster), and every channel is
 * subscribed, confirmed again after a subscriber link came back. */
#include "redis/redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "base/log.h"
#include "redis/redis_cmd.h"
#include "redis/redis_link.h"
#include "redis/redis_sub.h"
#include "redis/redis_topo.h"
#include "base/util.h"

static struct {
    bool configured, stopping, was_up;
    char *password;
    struct mw_redis_hooks hooks;
} R;

struct mw_redis_stats mw_redis_stats;

bool mw_redis_configured(void)
{
    return R.configured;
}

bool mw_redis_is_cluster(void)
{
    return R.configured && mw__redis_topo_cluster();
}

bool mw_redis_up(void)
{
    return R.configured && !R.stopping && mw__redis_topo_ready() && mw__redis_sub_ready();
}

int mw_redis_parse_url(const char *url, char *host, size_t hostlen, int *port,
                       char **password, int *db, char *err, size_t errlen)
{
    const char *p = url;
    *port = 6379;
    *db = 0;
    *password = NULL;
    if (strncmp(p, "rediss://", 9) == 0) {
        snprintf(err, errlen, "%s: TLS (rediss://) is not supported by this build", url);
        return -1;
    }
    if (strncmp(p, "redis://", 8) != 0) {
        snprintf(err, errlen, "%s: a Redis URL starts with redis://", url);
        return -1;
    }
    p += 8;
    const char *at = strchr(p, '@');
    if (at) { /* [user]:password@ */
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        *password = mw_strndup(pw, (size_t)(at - pw));
        p = at + 1;
    }
    size_t n = strcspn(p, ":/");
    if (n == 0 || n >= hostlen) {
        snprintf(err, errlen, "%s: missing or too long host", url);
        goto fail;
    }
    memcpy(host, p, n);
    host[n] = '\0';
    p += n;
    if (*p == ':') {
        char *end;
        long v = strtol(p + 1, &end, 10);
        if (end == p + 1 || v < 1 || v > 65535 || (*end && *end != '/')) {
            snprintf(err, errlen, "%s: bad port", url);
            goto fail;
        }
        *port = (int)v;
        p = end;
    }
    if (*p == '/' && p[1]) {
        char *end;
        long v = strtol(p + 1, &end, 10);
        if (end == p + 1 || *end || v < 0 || v > 1000000) {
            snprintf(err, errlen, "%s: bad database number", url);
            goto fail;
        }
        *db = (int)v;
    }
    return 0;
fail:
    free(*password);
    *password = NULL;
    return -1;
}
/* ---- state ---- */

static void report_state(void)
{
    bool up = mw_redis_up();
    mw_redis_stats.masters = mw__redis_topo_masters();
    if (up == R.was_up || R.stopping)
        return;
    R.was_up = up;
    bool cluster = mw__redis_topo_cluster();
    struct mw__redis_node *first = mw__redis_topo_owner(0);
    if (up) {
        mw_redis_stats.ups++;
        if (cluster)
            mw_log_info("redis up", "masters=%u channels=%u", mw_redis_stats.masters,
                        mw__redis_sub_count());
        else
            mw_log_info("redis up", "addr=%s channels=%u", first ? first->addr : "-",
                        mw__redis_sub_count());
    } else {
        mw_redis_stats.downs++;
        if (cluster)
            mw_log_warn("redis down", "masters=%u covered_slots=%u", mw_redis_stats.masters,
                        mw__redis_topo_covered());
        else
            mw_log_warn("redis down", "addr=%s", first ? first->addr : "-");
    }
    if (R.hooks.on_state)
        R.hooks.on_state(up);
}

/* ---- what links tell ---- */

static void on_link_up(struct mw__redis_link *l)
{
    struct mw__redis_node *n = l->owner;
    mw__redis_topo_link_up(n, l->subscriber);
    if (l->subscriber)
        mw__redis_sub_link_up(n);
    report_state();
}

static void on_link_down(struct mw__redis_link *l, bool was_up)
{
    (void)was_up;
    struct mw__redis_node *n = l->owner;
    if (l->subscriber)
        mw__redis_sub_link_down(n);
    mw__redis_topo_link_down(n, l->subscriber);
    report_state();
}

static void on_link_push(struct mw__redis_link *l, redisReply *r)
{
    mw__redis_sub_push(l->owner, r);
    report_state(); /* a confirmation may complete a resubscription */
}

static void on_link_released(struct mw__redis_link *l)
{
    mw__redis_topo_node_released(l->owner);
}

static const struct mw__redis_link_ops link_ops = {
    .up = on_link_up,
    .down = on_link_down,
    .push = on_link_push,
    .released = on_link_released,
};

static const struct mw__redis_topo_hooks topo_hooks = {
    .link_ops = &link_ops,
    .changed = report_state,
    .table_applied = mw__redis_sub_table_applied,
};

/* ---- subscriptions ---- */

void mw_redis_subscribe(const char *channel)
{
    if (R.configured && !R.stopping)
        mw__redis_sub_subscribe(channel);
}

void mw_redis_unsubscribe(const char *channel)
{
    if (R.configured)
        mw__redis_sub_unsubscribe(channel);
}

int mw_redis_when_subscribed(const char *channel, void (*cb)(void *ud, bool ok), void *ud)
{
    if (!R.configured || R.stopping)
        return -1;
    return mw__redis_sub_when_heard(channel, cb, ud);
}

/* ---- start and stop ---- */

/* The reply deadline: redis.timeout, else half the heartbeat interval, within
 * 500 ms..5 s. */
static uint64_t timeout_of(const struct mw_redis_options *o)
{
    if (o->timeout_ms)
        return o->timeout_ms;
    uint64_t t = o->heartbeat_ms / 2;
    return t < 500 ? 500 : t > 5000 ? 5000 : t;
}

static void begin(const struct mw_redis_hooks *hooks, const struct mw_redis_options *o,
                  bool cluster, int db)
{
    R.configured = true;
    R.stopping = false;
    R.was_up = false;
    R.hooks = *hooks;
    memset(&mw_redis_stats, 0, sizeof mw_redis_stats);
    uint64_t timeout = timeout_of(o);
    uint64_t cap = o->backoff_cap_ms ? o->backoff_cap_ms : 10000;
    struct mw__redis_link_params lp = { R.password, db, timeout, cap < 200 ? 200 : cap };
    mw__redis_link_setup(&lp);
    mw__redis_topo_start(cluster, &topo_hooks);
    mw__redis_sub_start(hooks->on_message);
    mw__redis_cmd_start(o->max_in_flight);
}

int mw_redis_start(const char *url, const struct mw_redis_hooks *hooks,
                   const struct mw_redis_options *o, char *err, size_t errlen)
{
    char host[256];
    int port, db;
    if (mw_redis_parse_url(url, host, sizeof host, &port, &R.password, &db, err, errlen) < 0)
        return -1;
    begin(hooks, o, false, db);
    mw__redis_topo_single(host, port);
    return 0;
}

int mw_redis_start_cluster(char *const *urls, size_t nurls, const struct mw_redis_hooks *hooks,
                           const struct mw_redis_options *o, char *err, size_t errlen)
{
    char (*hosts)[256] = mw_calloc(nurls ? nurls : 1, sizeof *hosts);
    int *ports = mw_calloc(nurls ? nurls : 1, sizeof *ports);
    char *password = NULL;
    int rc = -1;
    if (!nurls) {
        snprintf(err, errlen, "redis.cluster: no seed URL");
        goto out;
    }
    for (size_t i = 0; i < nurls; i++) {
        char *pw;
        int db;
        if (mw_redis_parse_url(urls[i], hosts[i], sizeof hosts[i], &ports[i], &pw, &db, err,
                               errlen) < 0)
            goto out;
        if (pw && !password)
            password = pw;
        else
            free(pw);
        if (db) {
            snprintf(err, errlen, "%s: a Redis Cluster has database 0 only", urls[i]);
            goto out;
        }
    }
    R.password = password;
    password = NULL;
    begin(hooks, o, true, 0);
    for (size_t i = 0; i < nurls; i++)
        mw__redis_topo_seed(hosts[i], ports[i]);
    mw__redis_topo_sync_links();
    rc = 0;
out:
    free(password);
    free(hosts);
    free(ports);
    return rc;
}

void mw_redis_stop(void)
{
    if (!R.configured)
        return;
    R.stopping = true;
    mw__redis_cmd_stop();
    mw__redis_topo_stop();
    mw__redis_sub_stop();
    free(R.password);
    R.password = NULL;
    R.configured = false;
}
