/* admin.c - what the admin page shows about this node: connections by route,
 * transport and state, the busiest rooms with their members, Redis, the fallback's
 * counters, and the last warnings, errors and reloads. Built on demand as one JSON
 * event; the bundled admin app (apps/admin) sends it to the page over a WebSocket. */
#include "http/admin.h"

#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "net/conn.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "redis/redis.h"
#include "rooms/room.h"
#include "base/context.h"
#include "http/sse.h"
#include "base/util.h"

#define TOP_ROOMS 25

static uint64_t started_ms;

void mw_admin_init(void)
{
    started_ms = mw_wall_ms();
}

/* Connections of one route, counted by transport and state. */
struct route_count {
    uint32_t ws, sse, other;
    uint32_t state[4]; /* enum mw_conn_state */
};

static void connections(struct mw_buf *b)
{
    size_t n = mw_srv.nroutes;
    struct route_count *rc = mw_calloc(n ? n : 1, sizeof *rc);
    for (struct mw_conn *c = mw_conn_first(); c; c = c->all_next) {
        size_t i = (size_t)(c->route - mw_srv.routes);
        if (i >= n)
            continue;
        const char *tp = c->tp ? c->tp->name : "";
        if (!strcmp(tp, "ws"))
            rc[i].ws++;
        else if (!strcmp(tp, "sse"))
            rc[i].sse++;
        else
            rc[i].other++;
        if (c->state < 4)
            rc[i].state[c->state]++;
    }
    mw_buf_printf(b, "\"connections\":{\"total\":%" PRIu32 ",\"routes\":[", mw_conn_count());
    for (size_t i = 0; i < n; i++) {
        const struct mw_route *r = &mw_srv.routes[i];
        mw_buf_puts(b, i ? ",{\"route\":" : "{\"route\":");
        mw_jsonw_str(b, r->cfg->path);
        mw_buf_printf(b, ",\"ws\":%" PRIu32 ",\"sse\":%" PRIu32 ",\"open\":%" PRIu32
                      ",\"closing\":%" PRIu32 ",\"unlinked\":%" PRIu32
                      ",\"messages_in\":%" PRIu64 ",\"lua_errors\":%" PRIu64
                      ",\"reloads\":%" PRIu64 ",\"reload_failures\":%" PRIu64 "}",
                      rc[i].ws, rc[i].sse, rc[i].state[MW_CONN_OPEN], rc[i].state[MW_CONN_CLOSING],
                      rc[i].state[MW_CONN_UNLINKED], r->stats.messages_in, r->stats.lua_errors,
                      r->stats.reloads, r->stats.reload_failures);
    }
    mw_buf_puts(b, "]}");
    free(rc);
}

/* The TOP_ROOMS rooms with the most connections here, kept sorted, biggest first. */
struct top {
    struct mw_room *r[TOP_ROOMS];
    uint32_t n, total;
};

static void consider(struct mw_room *r, void *ud)
{
    struct top *t = ud;
    t->total++;
    if (!r->nmembers)
        return;
    uint32_t i = t->n < TOP_ROOMS ? t->n++ : TOP_ROOMS - 1;
    if (i == TOP_ROOMS - 1 && t->r[i] && t->r[i]->nmembers >= r->nmembers)
        return;
    for (; i > 0 && t->r[i - 1]->nmembers < r->nmembers; i--)
        t->r[i] = t->r[i - 1];
    t->r[i] = r;
}

static void rooms(struct mw_buf *b)
{
    struct top t = { 0 };
    mw_room_foreach(consider, &t);
    mw_buf_printf(b, "\"rooms\":{\"total\":%" PRIu32 ",\"top\":[", t.total);
    for (uint32_t i = 0; i < t.n; i++) {
        struct mw_room *r = t.r[i];
        mw_buf_puts(b, i ? ",{\"room\":" : "{\"room\":");
        mw_jsonw_str(b, r->name);
        mw_buf_printf(b, ",\"connections\":%" PRIu32 ",\"users\":%" PRIu32 ",\"seq\":%" PRIu64 ",\"members\":[",
                      r->nmembers, r->presence.len, r->seq);
        /* Who is here (presence), the first few users. */
        uint32_t shown = 0;
        for (uint32_t k = 0; k < r->presence.cap && shown < 12; k++) {
            if (!r->presence.slots[k].key)
                continue;
            if (shown++)
                mw_buf_putc(b, ',');
            mw_jsonw_str(b, r->presence.slots[k].key);
        }
        mw_buf_puts(b, "]}");
    }
    mw_buf_puts(b, "]}");
}

static void add_line(void *ud, const char *line)
{
    struct mw_buf *b = ud;
    if (b->p[b->len - 1] != '[')
        mw_buf_putc(b, ',');
    mw_jsonw_str(b, line);
}

void mw_admin_snapshot(struct mw_buf *b)
{
    mw_buf_puts(b, "{\"type\":\"admin:snapshot\",\"data\":{\"node\":");
    mw_jsonw_str(b, mw_srv.node_id);
    mw_buf_printf(b, ",\"pid\":%d,\"version\":", (int)getpid());
    mw_jsonw_str(b, MW_VERSION);
    mw_buf_printf(b, ",\"ts\":%" PRIu64 ",\"uptime_ms\":%" PRIu64 ",", mw_wall_ms(),
                  started_ms ? mw_wall_ms() - started_ms : 0);
    connections(b);
    mw_buf_putc(b, ',');
    rooms(b);
    mw_buf_printf(b, ",\"redis\":{\"configured\":%s,\"up\":%s}",
                  mw_redis_configured() ? "true" : "false", mw_redis_up() ? "true" : "false");
    mw_buf_printf(b, ",\"sse\":{\"streams\":%" PRIu64 ",\"posts\":%" PRIu64 ",\"forwarded\":%" PRIu64
                  ",\"rejected\":%" PRIu64 "}", mw_sse_stats.opened, mw_sse_stats.posts,
                  mw_sse_stats.forwarded, mw_sse_stats.rejected);
    mw_buf_printf(b, ",\"heartbeat_timeouts\":%" PRIu64 ",\"rate_limited\":%" PRIu64,
                  mw_srv.heartbeat_timeouts, mw_srv.rate_limited);
    mw_buf_puts(b, ",\"recent\":[");
    mw_log_recent(add_line, b);
    mw_buf_puts(b, "]}}");
}
