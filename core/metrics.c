/* metrics.c - /metrics: one section per module, each from that module's stats. */
#include "metrics.h"

#include <inttypes.h>
#include <stddef.h>
#include <string.h>

#include "broker.h"
#include "cluster.h"
#include "conn.h"
#include "deflate.h"
#include "inbox.h"
#include "redis.h"
#include "room.h"
#include "script.h"
#include "server.h"
#include "session.h"
#include "sse.h"

/* ---- writing ---- */

static void type_line(struct mw_buf *b, const char *name, const char *type)
{
    mw_buf_printf(b, "# TYPE %s %s\n", name, type);
}

/* One sample; labels like `state="open"` or NULL. */
static void sample(struct mw_buf *b, const char *name, const char *labels, uint64_t v)
{
    if (labels)
        mw_buf_printf(b, "%s{%s} %" PRIu64 "\n", name, labels, v);
    else
        mw_buf_printf(b, "%s %" PRIu64 "\n", name, v);
}

static void gauge(struct mw_buf *b, const char *name, uint64_t v)
{
    type_line(b, name, "gauge");
    sample(b, name, NULL, v);
}

static void counter(struct mw_buf *b, const char *name, uint64_t v)
{
    type_line(b, name, "counter");
    sample(b, name, NULL, v);
}

/* ---- sections ---- */

static void connections(struct mw_buf *b)
{
    const struct mw_conn_stats *s = &mw_conn_stats;
    gauge(b, "moonwire_connections", mw_conn_count());
    counter(b, "moonwire_connections_opened_total", s->opened);
    counter(b, "moonwire_connections_closed_total", s->closed);
    type_line(b, "moonwire_connections_by_state", "gauge");
    sample(b, "moonwire_connections_by_state", "state=\"open\"", s->open);
    sample(b, "moonwire_connections_by_state", "state=\"closing\"", s->closing);
    sample(b, "moonwire_connections_by_state", "state=\"unlinked\"", s->unlinked);
    gauge(b, "moonwire_zombie_connections", s->zombies);
    counter(b, "moonwire_close_timeouts_total", s->close_timeouts);
    counter(b, "moonwire_bytes_out_total", s->bytes_out);
    counter(b, "moonwire_writes_total", s->writes);
    counter(b, "moonwire_frames_out_total", s->frames_out);
    counter(b, "moonwire_slow_consumer_closes_total", s->slow_closed);
    counter(b, "moonwire_send_queue_drops_total", s->dropped);
    counter(b, "moonwire_heartbeat_timeouts_total", mw_srv.heartbeat_timeouts);
    counter(b, "moonwire_rate_limited_total", mw_srv.rate_limited);
}

static void compression(struct mw_buf *b)
{
    const struct mw_deflate_stats *s = &mw_deflate_stats;
    type_line(b, "moonwire_deflate_frames_total", "counter");
    sample(b, "moonwire_deflate_frames_total", "result=\"compressed\"", s->deflated);
    sample(b, "moonwire_deflate_frames_total", "result=\"not_smaller\"", s->not_smaller);
    type_line(b, "moonwire_deflate_bytes_total", "counter");
    sample(b, "moonwire_deflate_bytes_total", "side=\"in\"", s->deflated_in);
    sample(b, "moonwire_deflate_bytes_total", "side=\"out\"", s->deflated_out);
    counter(b, "moonwire_inflated_messages_total", s->inflated);
    type_line(b, "moonwire_inflate_bytes_total", "counter");
    sample(b, "moonwire_inflate_bytes_total", "side=\"in\"", s->inflated_in);
    sample(b, "moonwire_inflate_bytes_total", "side=\"out\"", s->inflated_out);
}

static void rooms_and_sessions(struct mw_buf *b)
{
    gauge(b, "moonwire_rooms", mw_room_count());
    struct mw_session_stats ss = mw_session_stats();
    type_line(b, "moonwire_sessions", "gauge");
    sample(b, "moonwire_sessions", "state=\"attached\"", ss.named - ss.detached);
    sample(b, "moonwire_sessions", "state=\"detached\"", ss.detached);
}

static void redis(struct mw_buf *b)
{
    const struct mw_redis_stats *s = &mw_redis_stats;
    if (!mw_redis_configured())
        return;
    gauge(b, "moonwire_redis_up", (uint64_t)mw_redis_up());
    type_line(b, "moonwire_redis_transitions_total", "counter");
    sample(b, "moonwire_redis_transitions_total", "to=\"up\"", s->ups);
    sample(b, "moonwire_redis_transitions_total", "to=\"down\"", s->downs);
    gauge(b, "moonwire_redis_channels", s->channels);
    counter(b, "moonwire_broker_published_total", s->published);
    counter(b, "moonwire_broker_received_total", s->received);
    counter(b, "moonwire_redis_watchdog_timeouts_total", s->hung);
    counter(b, "moonwire_redis_refused_total", s->refused);
    counter(b, "moonwire_cluster_dead_nodes_cleaned_total", mw_cluster_stats.dead_nodes_cleaned);
    counter(b, "moonwire_cluster_registry_rebuilds_total", mw_cluster_stats.registry_rebuilds);
    if (mw_redis_is_cluster()) {
        gauge(b, "moonwire_redis_cluster_masters", s->masters);
        type_line(b, "moonwire_redis_cluster_redirects_total", "counter");
        sample(b, "moonwire_redis_cluster_redirects_total", "kind=\"moved\"", s->moved);
        sample(b, "moonwire_redis_cluster_redirects_total", "kind=\"ask\"", s->asked);
        counter(b, "moonwire_redis_cluster_topology_changes_total", s->topology_changes);
    }
    counter(b, "moonwire_broker_dropped_total", mw_broker_dropped);
    counter(b, "moonwire_broker_bad_payloads_total", mw_broker_bad_payloads);
}

static void inbox(struct mw_buf *b)
{
    struct mw_inbox_stats s;
    mw_inbox_stats(&s);
    type_line(b, "moonwire_inbox_items_total", "counter");
    sample(b, "moonwire_inbox_items_total", "event=\"pushed\"", s.pushed);
    sample(b, "moonwire_inbox_items_total", "event=\"read\"", s.read);
    sample(b, "moonwire_inbox_items_total", "event=\"trimmed\"", s.trimmed);
    counter(b, "moonwire_inbox_push_failures_total", s.failed);
    gauge(b, "moonwire_inbox_memory_items", s.items);
    gauge(b, "moonwire_inbox_memory_bytes", s.bytes);
}

/* The HTTP fallback (sse.c). */
static void sse(struct mw_buf *b)
{
    const struct mw_sse_stats *s = &mw_sse_stats;
    counter(b, "moonwire_sse_streams_total", s->opened);
    type_line(b, "moonwire_sse_posts_total", "counter");
    sample(b, "moonwire_sse_posts_total", "result=\"delivered\"", s->posts);
    sample(b, "moonwire_sse_posts_total", "result=\"forwarded\"", s->forwarded);
    counter(b, "moonwire_sse_rejected_total", s->rejected);
}

/* A per-route counter: the uint64_t at `field` of every route's stats. */
static void route_counter(struct mw_buf *b, const char *name, size_t field)
{
    type_line(b, name, "counter");
    for (size_t i = 0; i < mw_srv.nroutes; i++) {
        const char *st = (const char *)&mw_srv.routes[i].stats;
        uint64_t v;
        memcpy(&v, st + field, sizeof v);
        mw_buf_printf(b, "%s{route=\"%s\"} %" PRIu64 "\n", name, mw_srv.routes[i].cfg->path, v);
    }
}

static void handler_histogram(struct mw_buf *b)
{
    type_line(b, "moonwire_handler_seconds", "histogram");
    for (size_t i = 0; i < mw_srv.nroutes; i++) {
        const struct mw_route_stats *st = &mw_srv.routes[i].stats;
        const char *path = mw_srv.routes[i].cfg->path;
        uint64_t cum = 0;
        for (int k = 0; k < MW_HANDLER_BUCKETS; k++) {
            cum += st->handler_buckets[k];
            mw_buf_printf(b, "moonwire_handler_seconds_bucket{route=\"%s\",le=\"%g\"} %" PRIu64 "\n",
                          path, mw_handler_bucket_le[k], cum);
        }
        cum += st->handler_buckets[MW_HANDLER_BUCKETS];
        mw_buf_printf(b, "moonwire_handler_seconds_bucket{route=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
                      path, cum);
        mw_buf_printf(b, "moonwire_handler_seconds_sum{route=\"%s\"} %g\n", path, st->handler_seconds);
        mw_buf_printf(b, "moonwire_handler_seconds_count{route=\"%s\"} %" PRIu64 "\n", path, cum);
    }
}

static void routes(struct mw_buf *b)
{
    route_counter(b, "moonwire_messages_in_total", offsetof(struct mw_route_stats, messages_in));
    route_counter(b, "moonwire_lua_errors_total", offsetof(struct mw_route_stats, lua_errors));
    mw_buf_puts(b, "# TYPE moonwire_errors_total counter\n");
    for (size_t i = 0; i < mw_srv.nroutes; i++)
        for (int k = 0; k < MW_NERROR_CODES; k++)
            if (mw_srv.routes[i].stats.errors[k])
                mw_buf_printf(b, "moonwire_errors_total{route=\"%s\",code=\"%s\"} %" PRIu64 "\n",
                              mw_srv.routes[i].cfg->path, mw_error_codes[k],
                              mw_srv.routes[i].stats.errors[k]);
    gauge(b, "moonwire_lua_waiting", mw_script_waiting());
    handler_histogram(b);
    type_line(b, "moonwire_reloads_total", "counter");
    for (size_t i = 0; i < mw_srv.nroutes; i++) {
        const struct mw_route *r = &mw_srv.routes[i];
        mw_buf_printf(b, "moonwire_reloads_total{route=\"%s\",result=\"ok\"} %" PRIu64 "\n"
                         "moonwire_reloads_total{route=\"%s\",result=\"failed\"} %" PRIu64 "\n",
                      r->cfg->path, r->stats.reloads, r->cfg->path, r->stats.reload_failures);
    }
    route_counter(b, "moonwire_slow_handlers_total", offsetof(struct mw_route_stats, slow_handlers));
}

void mw_metrics_text(struct mw_buf *b)
{
    connections(b);
    compression(b);
    rooms_and_sessions(b);
    redis(b);
    inbox(b);
    sse(b);
    routes(b);
}
