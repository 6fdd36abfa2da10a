/* broker.c - local fan-out plus Redis pub/sub between nodes.
 *
 * A room's channel is mw:room:<room>, a user's mw:user:<user>. With a Redis Cluster
 * they are mw:room:{<room>} and mw:user:{<user>}, sharded (SPUBLISH/SSUBSCRIBE): the
 * hash tag puts a room's channel in the slot of its presence keys (cluster.c), so one
 * master serves both.
 *
 * A published payload is "<node>\n<flags>\n<except_user>\n<event JSON>": the origin
 * node, the frame flags (coalescible or not, and ORIGIN_TOO) and the user whose
 * connections must not get it (typing), then the event exactly as local members got
 * it. The origin node skips its own broadcasts (its members got them at once) unless
 * ORIGIN_TOO is set: sequenced events (history.c) reach every node, the origin
 * included, through the channel only. */
#include "broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cluster.h"
#include "jsonw.h"
#include "log.h"
#include "redis.h"
#include "room.h"
#include "server.h"
#include "util.h"

#define ROOM_CHANNEL "mw:room:"
#define USER_CHANNEL "mw:user:"
#define NODE_CHANNEL "mw:node:"

/* A payload flag above the frame flags (MW_MSG_*). */
#define ORIGIN_TOO 0x100u

uint64_t mw_broker_dropped;
static bool clustered, sharded;

bool mw_broker_clustered(void)
{
    return clustered;
}

static void channel_name(char *out, size_t n, const char *prefix, const char *name)
{
    snprintf(out, n, sharded ? "%s{%s}" : "%s%s", prefix, name);
}

/* The room or user of a channel: what follows the prefix, inside the {} if sharded. */
static const char *channel_subject(const char *channel, const char *prefix, char *out, size_t n)
{
    const char *s = channel + strlen(prefix);
    size_t len = strlen(s);
    if (sharded) {
        if (len < 2 || s[0] != '{' || s[len - 1] != '}')
            return NULL;
        s++;
        len -= 2;
    }
    snprintf(out, n, "%.*s", (int)len, s);
    return out;
}

/* room.c / conn.c tell us when this node starts or stops having local members. */
static void on_room_active(struct mw_room *r, bool active)
{
    char ch[160];
    channel_name(ch, sizeof ch, ROOM_CHANNEL, r->name);
    if (active)
        mw_redis_subscribe(ch);
    else
        mw_redis_unsubscribe(ch);
}

static void on_user_active(const char *user, bool active)
{
    char ch[160];
    channel_name(ch, sizeof ch, USER_CHANNEL, user);
    if (active)
        mw_redis_subscribe(ch);
    else
        mw_redis_unsubscribe(ch);
}

static void payload_head(struct mw_buf *b, unsigned flags, const struct mw_user *except_user)
{
    mw_buf_printf(b, "%s\n%u\n%s\n", mw_srv.node_id, flags, except_user ? except_user->id : "");
}

void mw_broker_payload_head(struct mw_buf *b, unsigned msg_flags, bool origin_too)
{
    payload_head(b, msg_flags | (origin_too ? ORIGIN_TOO : 0), NULL);
}

void mw_broker_room_channel(const char *room, char *channel, size_t n, const char **publish_cmd)
{
    channel_name(channel, n, ROOM_CHANNEL, room);
    *publish_cmd = sharded ? "SPUBLISH" : "PUBLISH";
}

static void publish(const char *prefix, const char *name, const struct mw_msg *m,
                    const struct mw_user *except_user)
{
    if (!clustered)
        return;
    char ch[160];
    size_t len;
    const char *json = mw_msg_payload(m, &len);
    struct mw_buf b = { 0 };
    channel_name(ch, sizeof ch, prefix, name);
    payload_head(&b, m->flags, except_user);
    mw_buf_append(&b, json, len);
    const char *argv[] = { sharded ? "SPUBLISH" : "PUBLISH", ch, b.p };
    size_t lens[] = { strlen(argv[0]), strlen(ch), b.len };
    if (mw_redis_command(NULL, NULL, 3, argv, lens) < 0)
        mw_broker_dropped++; /* Redis down: local members got it, others cannot */
    mw_buf_free(&b);
}

uint32_t mw_broker_room(const char *room, struct mw_msg *m, const struct mw_conn *except,
                        const struct mw_user *except_user)
{
    struct mw_room *r = mw_room_find(room);
    uint32_t n = r ? mw_room_broadcast(r, m, except, except_user) : 0;
    publish(ROOM_CHANNEL, room, m, except_user);
    return n;
}

static uint32_t deliver_user(const char *user, struct mw_msg *m)
{
    struct mw_user *u = mw_user_find(user);
    uint32_t n = 0;
    for (struct mw_conn *c = u ? u->conns : NULL; c; c = c->user_next)
        n += mw_conn_send(c, m) == 0;
    return n;
}

uint32_t mw_broker_user(const char *user, struct mw_msg *m)
{
    uint32_t n = deliver_user(user, m);
    publish(USER_CHANNEL, user, m, NULL);
    return n;
}

void (*mw_broker_on_node)(const char *kind, const char *arg, const char *body, size_t len);

int mw_broker_node(const char *node, const char *kind, const char *arg, const char *body,
                   size_t len)
{
    if (!clustered)
        return MW_ENOENT;
    char ch[160];
    struct mw_buf b = { 0 };
    channel_name(ch, sizeof ch, NODE_CHANNEL, node);
    mw_buf_printf(&b, "%s\n%s\n", kind, arg);
    mw_buf_append(&b, body, len);
    const char *argv[] = { sharded ? "SPUBLISH" : "PUBLISH", ch, b.p };
    size_t lens[] = { strlen(argv[0]), strlen(ch), b.len };
    int rc = mw_redis_command(NULL, NULL, 3, argv, lens) < 0 ? MW_EIO : 0;
    mw_buf_free(&b);
    return rc;
}

/* "<kind>\n<arg>\n<body>" addressed to this node. */
static void on_node_message(const char *payload, size_t len)
{
    const char *end = payload + len, *kind = payload, *nl = memchr(kind, '\n', len);
    if (!nl || !mw_broker_on_node)
        return;
    const char *arg = nl + 1, *nl2 = memchr(arg, '\n', (size_t)(end - arg));
    if (!nl2)
        return;
    char k[32], a[256];
    snprintf(k, sizeof k, "%.*s", (int)(nl - kind), kind);
    snprintf(a, sizeof a, "%.*s", (int)(nl2 - arg), arg);
    mw_broker_on_node(k, a, nl2 + 1, (size_t)(end - nl2 - 1));
}

/* An event from another node: frame it once, deliver to the local members. */
static void on_message(const char *channel, const char *payload, size_t len)
{
    if (strncmp(channel, NODE_CHANNEL, strlen(NODE_CHANNEL)) == 0)
        return on_node_message(payload, len);
    const char *end = payload + len, *p = payload;
    const char *node = p, *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl)
        return;
    bool ours = (size_t)(nl - node) == strlen(mw_srv.node_id) &&
                memcmp(node, mw_srv.node_id, (size_t)(nl - node)) == 0;
    p = nl + 1;
    unsigned flags = (unsigned)strtoul(p, NULL, 10);
    if (ours && !(flags & ORIGIN_TOO))
        return; /* our own broadcast: local members already have it */
    if (!(nl = memchr(p, '\n', (size_t)(end - p))))
        return;
    p = nl + 1;
    if (!(nl = memchr(p, '\n', (size_t)(end - p))))
        return;
    char except[160];
    snprintf(except, sizeof except, "%.*s", (int)(nl - p), p);
    p = nl + 1;
    struct mw_msg *m = mw_msg_new(MW_OP_TEXT, p, (size_t)(end - p), flags & MW_MSG_COALESCE);
    char name[160];
    if (strncmp(channel, ROOM_CHANNEL, strlen(ROOM_CHANNEL)) == 0) {
        struct mw_room *r = channel_subject(channel, ROOM_CHANNEL, name, sizeof name)
                                ? mw_room_find(name) : NULL;
        if (r)
            mw_room_broadcast(r, m, NULL, except[0] ? mw_user_find(except) : NULL);
    } else if (strncmp(channel, USER_CHANNEL, strlen(USER_CHANNEL)) == 0) {
        if (channel_subject(channel, USER_CHANNEL, name, sizeof name))
            deliver_user(name, m);
    }
    mw_msg_decref(m);
}

/* Tells a room's local members that they may have missed events: while this node's
 * link to Redis was down, other nodes went on publishing into it. */
static void hint_resync(struct mw_room *r, void *ud)
{
    (void)ud;
    if (!r->nmembers)
        return;
    struct mw_buf b = { 0 };
    mw_buf_puts(&b, "{\"type\":\"resync\",\"room\":");
    mw_jsonw_str(&b, r->name);
    mw_buf_putc(&b, '}');
    struct mw_msg *m = mw_msg_new(MW_OP_TEXT, b.p, b.len, 0);
    mw_room_broadcast(r, m, NULL, NULL);
    mw_msg_decref(m);
    mw_buf_free(&b);
}

static void on_state(bool up)
{
    static bool was_up;
    if (!up)
        return;
    /* logged by redis.c, which also resubscribed every channel */
    mw_cluster_on_up();
    if (was_up) /* back after an outage, not the first connect */
        mw_room_foreach(hint_resync, NULL);
    was_up = true;
}

int mw_broker_start(const struct mw_config *cfg, char *err, size_t errlen)
{
    struct mw_redis_hooks hooks = { on_message, on_state };
    if (cfg->redis_url) {
        if (mw_redis_start(cfg->redis_url, &hooks, err, errlen) < 0)
            return -1;
    } else if (cfg->nredis_cluster) {
        if (mw_redis_start_cluster(cfg->redis_cluster, cfg->nredis_cluster, &hooks, err,
                                   errlen) < 0)
            return -1;
        sharded = true;
    } else {
        return 0;
    }
    clustered = true;
    mw_cluster_start(cfg);
    mw_room_on_active = on_room_active;
    mw_user_on_active = on_user_active;
    char ch[160]; /* what other nodes address to this one */
    channel_name(ch, sizeof ch, NODE_CHANNEL, mw_srv.node_id);
    mw_redis_subscribe(ch);
    return 0;
}

void mw_broker_stop(void)
{
    if (!clustered)
        return;
    mw_room_on_active = NULL;
    mw_user_on_active = NULL;
    mw_cluster_stop();
    mw_redis_stop();
    clustered = sharded = false;
}
