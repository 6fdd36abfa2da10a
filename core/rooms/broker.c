/* broker.c - local fan-out plus Redis pub/sub between nodes.
 *
 * A room's channel is mw:room:<room>, a user's mw:user:<user>. With a Redis Cluster
 * they are mw:room:{<room>} and mw:user:{<user>}, sharded (SPUBLISH/SSUBSCRIBE): the
 * hash tag puts a room's channel in the slot of its presence keys (presence_redis.c),
 * so one master serves both.
 *
 * What goes over a channel is a broker_wire.h payload: the origin node, the frame
 * flags (coalescible or not, and ORIGIN_TOO), the user whose connections must not get
 * it (typing), then the event exactly as local members got it. The origin node skips
 * its own broadcasts (its members got them at once) unless ORIGIN_TOO is set:
 * sequenced events (history.c) reach every node, the origin included, through the
 * channel only. A user's channel also carries disconnects (POST /api/disconnect). */
#include "rooms/broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rooms/broker_wire.h"
#include "base/buf.h"
#include "rooms/cluster.h"
#include "base/ident.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "rooms/presence.h"
#include "redis/redis.h"
#include "rooms/room.h"
#include "base/context.h"
#include "net/session_redis.h"
#include "base/utf8.h"
#include "base/util.h"

#define ROOM_CHANNEL "mw:room:"
#define USER_CHANNEL "mw:user:"
#define NODE_CHANNEL "mw:node:"

uint64_t mw_broker_dropped, mw_broker_bad_payloads, mw_broker_invalid;
void (*mw_broker_on_presence)(const char *room, const char *user, bool join);
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

static void payload_head(struct mw_buf *b, char kind, unsigned flags,
                         const char *except_user, const char *subject)
{
    struct mw_wire w = {
        .kind = kind,
        .node = mw_srv.node_id,
        .node_len = strlen(mw_srv.node_id),
        .flags = flags,
        .except = except_user,
        .except_len = except_user ? strlen(except_user) : 0,
        .subject = subject,
        .subject_len = subject ? strlen(subject) : 0,
    };
    mw_wire_head(b, &w);
}

void mw_broker_payload_head(struct mw_buf *b, unsigned msg_flags, bool origin_too)
{
    payload_head(b, MW_WIRE_EVENT, msg_flags | (origin_too ? MW_WIRE_ORIGIN_TOO : 0), NULL,
                 NULL);
}

void mw_broker_presence_head(struct mw_buf *b, const char *user, bool join)
{
    payload_head(b, MW_WIRE_EVENT, join ? MW_WIRE_PRESENCE_JOIN : MW_WIRE_PRESENCE_LEAVE, NULL,
                 user);
}

void mw_broker_room_channel(const char *room, char *channel, size_t n, const char **publish_cmd)
{
    channel_name(channel, n, ROOM_CHANNEL, room);
    *publish_cmd = sharded ? "SPUBLISH" : "PUBLISH";
}

/* Publishes head + body on the channel of prefix/name; counts what Redis could not
 * take. 0, or -1 when Redis is down. */
static int publish_raw(const char *prefix, const char *name, struct mw_buf *payload)
{
    char ch[160];
    channel_name(ch, sizeof ch, prefix, name);
    const char *argv[] = { sharded ? "SPUBLISH" : "PUBLISH", ch, payload->p };
    size_t lens[] = { strlen(argv[0]), strlen(ch), payload->len };
    if (mw_redis_command(NULL, NULL, 3, argv, lens) == 0)
        return 0;
    mw_broker_dropped++; /* Redis down: local members got it, others cannot */
    return -1;
}

static void publish(const char *prefix, const char *name, const struct mw_msg *m,
                    unsigned flags, const struct mw_user *except_user, const char *subject)
{
    if (!clustered)
        return;
    size_t len;
    const char *json = mw_msg_payload(m, &len);
    struct mw_buf b = { 0 };
    payload_head(&b, MW_WIRE_EVENT, m->flags | flags, except_user ? except_user->id : NULL,
                 subject);
    mw_buf_append(&b, json, len);
    publish_raw(prefix, name, &b);
    mw_buf_free(&b);
}

uint32_t mw_broker_room(const char *room, struct mw_msg *m, const struct mw_conn *except,
                        const struct mw_user *except_user)
{
    struct mw_room *r = mw_room_find(room);
    uint32_t n = r ? mw_room_broadcast(r, m, except, except_user) : 0;
    publish(ROOM_CHANNEL, room, m, 0, except_user, NULL);
    return n;
}

uint32_t mw_broker_presence(const char *room, struct mw_msg *m, const struct mw_conn *except,
                            const char *user, bool join)
{
    struct mw_room *r = mw_room_find(room);
    uint32_t n = r ? mw_room_broadcast(r, m, except, NULL) : 0;
    publish(ROOM_CHANNEL, room, m, join ? MW_WIRE_PRESENCE_JOIN : MW_WIRE_PRESENCE_LEAVE, NULL,
            user);
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
    publish(USER_CHANNEL, user, m, 0, NULL, NULL);
    return n;
}

void (*mw_broker_on_node)(const char *kind, const char *arg, const char *body, size_t len);

int mw_broker_node(const char *node, const char *kind, const char *arg, const char *body,
                   size_t len)
{
    if (!clustered)
        return MW_ENOENT;
    struct mw_buf b = { 0 };
    /* kind goes in the `except` field, arg in `subject` (broker_wire.h) */
    payload_head(&b, MW_WIRE_NODE, 0, kind, arg);
    mw_buf_append(&b, body, len);
    int rc = publish_raw(NODE_CHANNEL, node, &b) < 0 ? MW_EIO : 0;
    mw_buf_free(&b);
    return rc;
}

/* Closes the user's connections here. Returns how many. */
static uint32_t disconnect_local(const char *user, int code, const char *reason)
{
    uint32_t closed = 0;
    struct mw_user *u = mw_user_find(user);
    for (struct mw_conn *c = u ? u->conns : NULL; c; c = c->user_next) {
        if (mw_conn_is_open(c)) {
            mw_conn_close(c, code, reason);
            closed++;
        }
    }
    return closed;
}

uint32_t mw_broker_disconnect_user(const char *user, int code, const char *reason)
{
    uint32_t closed = disconnect_local(user, code, reason);
    if (clustered) {
        struct mw_buf b = { 0 };
        payload_head(&b, MW_WIRE_DISCONNECT, (unsigned)code, NULL, NULL);
        mw_buf_puts(&b, reason);
        publish_raw(USER_CHANNEL, user, &b);
        mw_buf_free(&b);
    }
    return closed;
}

static void on_bad_payload(const char *channel)
{
    mw_broker_bad_payloads++;
    mw_log_warn("broker payload refused", "channel=\"%s\"", channel);
}

/* Something another node addressed to this one: the kind is in `except`, the
 * argument in `subject`. */
static void on_node_message(const char *channel, const struct mw_wire *w)
{
    char kind[32], arg[256];
    if (w->kind != MW_WIRE_NODE || w->except_len >= sizeof kind || w->subject_len >= sizeof arg) {
        on_bad_payload(channel);
        return;
    }
    if (!mw_broker_on_node)
        return;
    memcpy(kind, w->except, w->except_len);
    kind[w->except_len] = '\0';
    memcpy(arg, w->subject, w->subject_len);
    arg[w->subject_len] = '\0';
    mw_broker_on_node(kind, arg, w->body, w->body_len);
}

/* A message from another node (or a sequenced event of ours): frame it once,
 * deliver to the local members. */
static void on_message(const char *channel, const char *payload, size_t len)
{
    struct mw_wire w;
    char name[160], except[160], reason[128];
    if (mw_wire_decode(payload, len, &w) < 0 || w.except_len >= sizeof except) {
        on_bad_payload(channel);
        return;
    }
    if (strncmp(channel, NODE_CHANNEL, strlen(NODE_CHANNEL)) == 0) {
        on_node_message(channel, &w);
        return;
    }
    bool ours = w.node_len == strlen(mw_srv.node_id) &&
                memcmp(w.node, mw_srv.node_id, w.node_len) == 0;
    bool room = strncmp(channel, ROOM_CHANNEL, strlen(ROOM_CHANNEL)) == 0;
    bool user = !room && strncmp(channel, USER_CHANNEL, strlen(USER_CHANNEL)) == 0;
    const char *subject = channel_subject(channel, room ? ROOM_CHANNEL : USER_CHANNEL, name,
                                          sizeof name);
    if ((!room && !user) || !subject) {
        on_bad_payload(channel);
        return;
    }
    /* Nothing from Redis goes out unchecked: frames and close reasons are UTF-8. */
    if (!mw_utf8_valid(w.body, w.body_len)) {
        mw_broker_invalid++;
        mw_log_warn("invalid UTF-8 from Redis: dropped", "channel=\"%s\" bytes=%zu", channel,
                    w.body_len);
        return;
    }
    if (w.kind == MW_WIRE_DISCONNECT) {
        if (user && !ours) { /* ours: closed before publishing */
            snprintf(reason, sizeof reason, "%.*s", (int)w.body_len, w.body);
            disconnect_local(subject, (int)w.flags, reason);
        }
        return;
    }
    if (ours && !(w.flags & MW_WIRE_ORIGIN_TOO))
        return; /* our own broadcast: local members already have it */
    memcpy(except, w.except, w.except_len);
    except[w.except_len] = '\0';
    struct mw_msg *m = mw_msg_new(MW_OP_TEXT, w.body, w.body_len, w.flags & MW_MSG_COALESCE);
    if (room) {
        struct mw_room *r = mw_room_find(subject);
        unsigned p = w.flags & (MW_WIRE_PRESENCE_JOIN | MW_WIRE_PRESENCE_LEAVE);
        if (r && p && w.subject_len && w.subject_len < sizeof except && mw_broker_on_presence) {
            char who[160];
            memcpy(who, w.subject, w.subject_len);
            who[w.subject_len] = '\0';
            if (!mw_user_id_error(who, w.subject_len)) /* it goes into presence frames */
                mw_broker_on_presence(subject, who, p == MW_WIRE_PRESENCE_JOIN);
            else
                on_bad_payload(channel);
        }
        if (r)
            mw_room_broadcast(r, m, NULL, except[0] ? mw_user_find(except) : NULL);
    } else {
        deliver_user(subject, m);
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
    /* logged by redis.c, which also resubscribed every channel */
    mw_cluster_on_state(up);
    if (!up)
        return;
    if (was_up) /* back after an outage, not the first connect */
        mw_room_foreach(hint_resync, NULL);
    was_up = true;
}

int mw_broker_start(const struct mw_config *cfg, char *err, size_t errlen)
{
    struct mw_redis_hooks hooks = { on_message, on_state };
    /* Reconnects back off no longer than half a registry tick: a node must be back
     * (and registered) well before the others judge it dead (cluster.c). */
    struct mw_redis_options o = { cfg->heartbeat_interval_ms, cfg->redis_timeout_ms,
                                  cfg->redis_max_in_flight, mw_cluster_tick_ms(cfg) / 2 };
    if (cfg->redis_url) {
        if (mw_redis_start(cfg->redis_url, &hooks, &o, err, errlen) < 0)
            return -1;
    } else if (cfg->nredis_cluster) {
        if (mw_redis_start_cluster(cfg->redis_cluster, cfg->nredis_cluster, &hooks, &o, err,
                                   errlen) < 0)
            return -1;
        sharded = true;
    } else {
        return 0;
    }
    clustered = true;
    mw_presence_start(cfg, true);
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
    mw_session_redis_stop();
    mw_redis_stop();
    clustered = sharded = false;
}
