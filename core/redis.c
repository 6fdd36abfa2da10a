/* redis.c - hiredis async connections with reconnects, and pub/sub bookkeeping. */
#include "redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "log.h"
#include "map.h"
#include "util.h"

#define BACKOFF_BASE_MS 100
#define BACKOFF_CAP_MS 10000
#define SUBSCRIBE_BATCH 100
/* hiredis 0.14's libuv adapter ignores poll errors, so a refused connect is never
 * reported: a link not up this long after its connect started is retried. */
#define CONNECT_TIMEOUT_MS 1000

/* One connection and its reconnect state. */
struct link {
    const char *name;          /* "command" or "subscriber" */
    bool subscriber;
    redisAsyncContext *ac;
    bool up;
    uint32_t attempt;          /* consecutive failures, for the backoff */
    uv_timer_t retry;
    uv_getaddrinfo_t resolve;
    bool resolving;
};

static struct {
    bool configured, stopping, was_up;
    char host[256];
    int port, db;
    char *password;
    struct mw_redis_hooks hooks;
} R;

static struct link cmd_link = { .name = "command" };
static struct link sub_link = { .name = "subscriber", .subscriber = true };
static struct mw_map channels; /* channel -> its own key string */
struct mw_redis_stats mw_redis_stats;

static void connect_link(struct link *l);

static void on_retry(uv_timer_t *t)
{
    connect_link(t->data);
}

bool mw_redis_configured(void)
{
    return R.configured;
}

bool mw_redis_up(void)
{
    return cmd_link.up && sub_link.up;
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
    if (up == R.was_up)
        return;
    R.was_up = up;
    if (up) {
        mw_redis_stats.ups++;
        mw_log_info("redis up", "addr=%s:%d channels=%u", R.host, R.port, channels.len);
    } else {
        mw_redis_stats.downs++;
        mw_log_warn("redis down", "addr=%s:%d", R.host, R.port);
    }
    if (R.hooks.on_state)
        R.hooks.on_state(up);
}

/* Retries after BACKOFF_BASE_MS * 2^attempt (capped), +-50 % jitter, so that a fleet
 * of nodes does not reconnect in lockstep after a Redis restart. */
static void schedule_retry(struct link *l)
{
    if (R.stopping)
        return;
    uint64_t delay = BACKOFF_BASE_MS;
    for (uint32_t i = 0; i < l->attempt && delay < BACKOFF_CAP_MS; i++)
        delay *= 2;
    if (delay > BACKOFF_CAP_MS)
        delay = BACKOFF_CAP_MS;
    delay = delay / 2 + mw_random_u64() % (delay + 1);
    l->attempt++;
    l->retry.data = l;
    mw_log_debug("redis retry", "link=%s attempt=%u delay_ms=%llu", l->name, l->attempt,
                 (unsigned long long)delay);
    uv_timer_start(&l->retry, on_retry, delay, 0);
}

static void link_down(struct link *l, const char *why)
{
    bool was = l->up;
    l->up = false;
    l->ac = NULL; /* hiredis frees the context after the disconnect callback */
    if (was || l->attempt == 0)
        mw_log_warn("redis connection lost", "link=%s why=\"%s\"", l->name, why);
    report_state();
    schedule_retry(l);
}

/* ---- subscriber side ---- */

static void on_sub_reply(redisAsyncContext *ac, void *r, void *ud)
{
    (void)ac;
    (void)ud;
    redisReply *reply = r;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3)
        return;
    redisReply *kind = reply->element[0];
    if (kind->type != REDIS_REPLY_STRING || strcmp(kind->str, "message") != 0)
        return;
    redisReply *ch = reply->element[1], *payload = reply->element[2];
    if (ch->type != REDIS_REPLY_STRING || payload->type != REDIS_REPLY_STRING)
        return;
    mw_redis_stats.received++;
    if (R.hooks.on_message)
        R.hooks.on_message(ch->str, payload->str, (size_t)payload->len);
}

static void subscribe_cmd(const char *verb, const char **names, size_t n)
{
    if (!sub_link.ac || !n)
        return;
    const char **argv = mw_malloc((n + 1) * sizeof *argv);
    argv[0] = verb;
    memcpy(argv + 1, names, n * sizeof *names);
    redisAsyncCommandArgv(sub_link.ac, on_sub_reply, NULL, (int)n + 1, argv, NULL);
    free(argv);
}

/* After a (re)connect: every channel again, SUBSCRIBE_BATCH per command. */
static void resubscribe_all(void)
{
    const char *batch[SUBSCRIBE_BATCH];
    size_t n = 0;
    for (uint32_t i = 0; i < channels.cap; i++) {
        if (!channels.slots[i].key)
            continue;
        batch[n++] = channels.slots[i].key;
        if (n == SUBSCRIBE_BATCH) {
            subscribe_cmd("SUBSCRIBE", batch, n);
            n = 0;
        }
    }
    subscribe_cmd("SUBSCRIBE", batch, n);
}

void mw_redis_subscribe(const char *channel)
{
    if (mw_map_get(&channels, channel))
        return;
    char *key = mw_strdup(channel);
    mw_map_put(&channels, key, key);
    mw_redis_stats.channels = channels.len;
    if (sub_link.up)
        subscribe_cmd("SUBSCRIBE", &channel, 1);
}

void mw_redis_unsubscribe(const char *channel)
{
    char *key = mw_map_del(&channels, channel);
    if (!key)
        return;
    mw_redis_stats.channels = channels.len;
    if (sub_link.up)
        subscribe_cmd("UNSUBSCRIBE", &channel, 1);
    free(key);
}

/* ---- connecting ---- */

/* The handshake's last reply (PING): the link is usable. */
static void on_ready(redisAsyncContext *ac, void *r, void *ud)
{
    struct link *l = ud;
    redisReply *reply = r;
    if (!reply || !ac->data || ac != l->ac)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        mw_log_error("redis handshake failed", "link=%s err=\"%s\"", l->name, reply->str);
        redisAsyncDisconnect(ac);
        return;
    }
    l->up = true;
    l->attempt = 0;
    uv_timer_stop(&l->retry); /* the connect timeout */
    if (l->subscriber)
        resubscribe_all(); /* queued before anything published after `up` */
    report_state();
}

static void on_handshake_step(redisAsyncContext *ac, void *r, void *ud)
{
    struct link *l = ud;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ERROR && ac->data && ac == l->ac) {
        mw_log_error("redis handshake failed", "link=%s err=\"%s\"", l->name, reply->str);
        redisAsyncDisconnect(ac);
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK && ac->data)
        link_down(ac->data, ac->errstr);
}

/* Queued right after the connect starts: hiredis 0.14's libuv adapter only notices
 * that a non-blocking connect finished (or failed) once a command wants to write. */
static void send_handshake(struct link *l)
{
    if (R.password)
        redisAsyncCommand(l->ac, on_handshake_step, l, "AUTH %s", R.password);
    if (R.db && !l->subscriber)
        redisAsyncCommand(l->ac, on_handshake_step, l, "SELECT %d", R.db);
    redisAsyncCommand(l->ac, on_ready, l, "PING");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct link *l = ac->data;
    if (!l)
        return; /* given up by on_connect_timeout */
    if (R.stopping) {
        l->ac = NULL;
        l->up = false;
        return;
    }
    link_down(l, status == REDIS_OK ? "closed" : ac->errstr);
}

static void on_connect_timeout(uv_timer_t *t)
{
    struct link *l = t->data;
    redisAsyncContext *ac = l->ac;
    if (!ac || l->up)
        return;
    ac->data = NULL; /* its callbacks, run by the free below, must not touch l */
    l->ac = NULL;
    redisAsyncFree(ac);
    link_down(l, "connect timed out");
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct link *l = req->data;
    char ip[64] = "";
    l->resolving = false;
    if (status == 0 && res)
        uv_ip4_name((struct sockaddr_in *)res->ai_addr, ip, sizeof ip);
    uv_freeaddrinfo(res);
    if (R.stopping)
        return;
    if (!ip[0]) {
        link_down(l, status ? uv_strerror(status) : "no address");
        return;
    }
    redisAsyncContext *ac = redisAsyncConnect(ip, R.port);
    if (!ac || ac->err) {
        link_down(l, ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        return;
    }
    ac->data = l;
    l->ac = ac;
    redisLibuvAttach(ac, uv_default_loop());
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    send_handshake(l);
    l->retry.data = l;
    uv_timer_start(&l->retry, on_connect_timeout, CONNECT_TIMEOUT_MS, 0);
}

static void connect_link(struct link *l)
{
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM };
    if (R.stopping || l->ac || l->resolving)
        return;
    l->resolve.data = l;
    l->resolving = true;
    int rc = uv_getaddrinfo(uv_default_loop(), &l->resolve, on_resolved, R.host, NULL, &hints);
    if (rc < 0) {
        l->resolving = false;
        link_down(l, uv_strerror(rc));
    }
}

int mw_redis_start(const char *url, const struct mw_redis_hooks *hooks, char *err, size_t errlen)
{
    if (mw_redis_parse_url(url, R.host, sizeof R.host, &R.port, &R.password, &R.db, err,
                           errlen) < 0)
        return -1;
    R.configured = true;
    R.hooks = *hooks;
    uv_timer_init(uv_default_loop(), &cmd_link.retry);
    uv_timer_init(uv_default_loop(), &sub_link.retry);
    connect_link(&cmd_link);
    connect_link(&sub_link);
    return 0;
}

void mw_redis_stop(void)
{
    if (!R.configured)
        return;
    R.stopping = true;
    struct link *links[] = { &cmd_link, &sub_link };
    for (int i = 0; i < 2; i++) {
        struct link *l = links[i];
        uv_timer_stop(&l->retry);
        uv_close((uv_handle_t *)&l->retry, NULL);
        if (l->resolving)
            uv_cancel((uv_req_t *)&l->resolve);
        if (l->ac)
            redisAsyncDisconnect(l->ac); /* pending callbacks get NULL replies */
    }
    for (uint32_t i = 0; i < channels.cap; i++)
        if (channels.slots[i].key)
            free(channels.slots[i].val);
    mw_map_free(&channels);
    free(R.password);
    R.password = NULL;
    R.configured = false;
}

/* ---- commands ---- */

struct pending {
    mw_redis_cb cb;
    void *ud;
};

static void on_reply(redisAsyncContext *ac, void *r, void *ud)
{
    (void)ac;
    struct pending *p = ud;
    if (p->cb)
        p->cb(p->ud, r);
    free(p);
}

int mw_redis_command(mw_redis_cb cb, void *ud, int argc, const char **argv, const size_t *lens)
{
    if (!cmd_link.up || !cmd_link.ac)
        return -1;
    struct pending *p = mw_malloc(sizeof *p);
    p->cb = cb;
    p->ud = ud;
    if (redisAsyncCommandArgv(cmd_link.ac, on_reply, p, argc, argv, lens) != REDIS_OK) {
        free(p);
        return -1;
    }
    if (argc > 0 && strcmp(argv[0], "PUBLISH") == 0)
        mw_redis_stats.published++;
    return 0;
}
