/* metrics.c - /metrics: one section per module, each from that module's stats, and
 * with `workers` one page for the whole server (the sum of the workers' pages). */
#include "http/metrics.h"

#include <inttypes.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include <uv.h>

#include "net/admit.h"
#include "http/api.h"
#include "net/auth.h"
#include "rooms/authz.h"
#include "rooms/broker.h"
#include "rooms/cluster.h"
#include "net/conn.h"
#include "net/deflate.h"
#include "http/expo.h"
#include "rooms/inbox.h"
#include "net/listener.h"
#include "base/log.h"
#include "redis/redis.h"
#include "rooms/room.h"
#include "lua/script.h"
#include "base/context.h"
#include "net/session.h"
#include "http/sse.h"
#include "store/store.h"
#include "lua/watchdog.h"

int mw_metrics_worker = -1;

/* ---- writing ---- */

/* Starts a family: its HELP and TYPE lines (every family has both). */
static void family(struct mw_buf *b, const char *name, const char *type, const char *help)
{
    mw_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample; labels like `state="open"` or NULL. */
static void sample(struct mw_buf *b, const char *name, const char *labels, uint64_t v)
{
    if (labels)
        mw_buf_printf(b, "%s{%s} %" PRIu64 "\n", name, labels, v);
    else
        mw_buf_printf(b, "%s %" PRIu64 "\n", name, v);
}

static void gauge(struct mw_buf *b, const char *name, const char *help, uint64_t v)
{
    family(b, name, "gauge", help);
    sample(b, name, NULL, v);
}

static void counter(struct mw_buf *b, const char *name, const char *help, uint64_t v)
{
    family(b, name, "counter", help);
    sample(b, name, NULL, v);
}

/* A gauge that describes one process, not a sum: with `workers`, it carries a
 * `worker` label so that the page of the whole server keeps each worker's value. */
static void gauge_per_process(struct mw_buf *b, const char *name, const char *help, uint64_t v)
{
    family(b, name, "gauge", help);
    if (mw_metrics_worker < 0) {
        sample(b, name, NULL, v);
    } else {
        char labels[32];
        snprintf(labels, sizeof labels, "worker=\"%d\"", mw_metrics_worker);
        sample(b, name, labels, v);
    }
}

/* The series of one histogram (after its family line): cumulative buckets, +Inf,
 * sum and count. `labels` like `route="/chat"`, or NULL. */
static void histogram(struct mw_buf *b, const char *name, const char *labels,
                      const struct mw_hist *h, const struct mw_hist_le *le)
{
    const char *sep = labels ? "," : "";
    labels = labels ? labels : "";
    uint64_t cum = 0;
    for (int k = 0; k < le->n; k++) {
        cum += h->counts[k];
        mw_buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %" PRIu64 "\n", name, labels, sep, le->le[k], cum);
    }
    cum += h->counts[le->n];
    mw_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, sep, cum);
    if (*labels) {
        mw_buf_printf(b, "%s_sum{%s} %.9g\n", name, labels, h->sum);
        mw_buf_printf(b, "%s_count{%s} %" PRIu64 "\n", name, labels, cum);
    } else {
        mw_buf_printf(b, "%s_sum %.9g\n%s_count %" PRIu64 "\n", name, h->sum, name, cum);
    }
}

/* ---- sections ---- */

static void closes(struct mw_buf *b)
{
    const struct mw_conn_stats *s = &mw_conn_stats;
    family(b, "moonwire_closes_total", "counter",
           "Connections whose close was decided, by who decided it (server: a close frame "
           "with our code; peer: its close frame; server-drop: dropped without a handshake; "
           "lost: the socket ended) and the close code (other: a peer's code outside "
           "1000..1015)");
    for (uint32_t i = 0; i < s->nclose_kinds; i++)
        mw_buf_printf(b, "moonwire_closes_total{by=\"%s\",code=\"%u\"} %" PRIu64 "\n",
                      mw_close_by_names[s->closes[i].by], s->closes[i].code, s->closes[i].n);
    for (int by = MW_BY_SERVER; by <= MW_BY_LOST; by++)
        if (s->closes_other[by])
            mw_buf_printf(b, "moonwire_closes_total{by=\"%s\",code=\"other\"} %" PRIu64 "\n",
                          mw_close_by_names[by], s->closes_other[by]);
}

static void connections(struct mw_buf *b)
{
    const struct mw_conn_stats *s = &mw_conn_stats;
    counter(b, "moonwire_listener_accepted_total",
            "TCP connections accepted (WebSocket upgrades and plain HTTP)", mw_listener_accepted);
    gauge(b, "moonwire_connections", "Connections holding a socket, in any state",
          mw_conn_count());
    counter(b, "moonwire_connections_opened_total", "Connections opened (after the upgrade)",
            s->opened);
    counter(b, "moonwire_connections_closed_total", "Connections ended and freed", s->closed);
    family(b, "moonwire_connections_by_state", "gauge",
           "Connections by state: open; closing (leaving rooms before the loop sleeps); "
           "unlinked (out of everything, the socket finishing its close)");
    sample(b, "moonwire_connections_by_state", "state=\"open\"", s->open);
    sample(b, "moonwire_connections_by_state", "state=\"closing\"", s->closing);
    sample(b, "moonwire_connections_by_state", "state=\"unlinked\"", s->unlinked);
    gauge(b, "moonwire_zombie_connections",
          "Connections aborted more than 2 s ago whose socket has not ended (should be 0)",
          s->zombies);
    closes(b);
    counter(b, "moonwire_close_timeouts_total",
            "Closes not completed within 3 s, ended by an abort", s->close_timeouts);
    counter(b, "moonwire_connection_aborts_total",
            "Sockets ended without a close handshake (dropped, or the close timed out)",
            s->aborts);
    counter(b, "moonwire_bytes_out_total", "Bytes written to connections, frame headers included",
            s->bytes_out);
    counter(b, "moonwire_writes_total", "Socket writes (one write carries many frames)", s->writes);
    counter(b, "moonwire_frames_out_total", "Frames queued to connections", s->frames_out);
    counter(b, "moonwire_slow_consumer_closes_total",
            "Connections closed because their send queue went over limits.send_queue",
            s->slow_closed);
    counter(b, "moonwire_send_queue_drops_total",
            "Coalescible frames dropped under slow_consumer: drop", s->dropped);
    counter(b, "moonwire_heartbeat_timeouts_total",
            "Connections dropped because they stayed silent past the heartbeat timeout",
            mw_srv.heartbeat_timeouts);
    counter(b, "moonwire_rate_limited_total", "Messages refused by the rate limit",
            mw_srv.rate_limited);
}

static void compression(struct mw_buf *b)
{
    const struct mw_deflate_stats *s = &mw_deflate_stats;
    family(b, "moonwire_deflate_frames_total", "counter",
           "permessage-deflate: frames compressed (once per message for all its recipients), "
           "or sent as they were because compressing did not make them smaller");
    sample(b, "moonwire_deflate_frames_total", "result=\"compressed\"", s->deflated);
    sample(b, "moonwire_deflate_frames_total", "result=\"not_smaller\"", s->not_smaller);
    family(b, "moonwire_deflate_bytes_total", "counter",
           "Payload bytes before (in) and after (out) compression");
    sample(b, "moonwire_deflate_bytes_total", "side=\"in\"", s->deflated_in);
    sample(b, "moonwire_deflate_bytes_total", "side=\"out\"", s->deflated_out);
    counter(b, "moonwire_inflated_messages_total", "Compressed client messages inflated",
            s->inflated);
    family(b, "moonwire_inflate_bytes_total", "counter",
           "Bytes of compressed client messages before (in) and after (out) inflating");
    sample(b, "moonwire_inflate_bytes_total", "side=\"in\"", s->inflated_in);
    sample(b, "moonwire_inflate_bytes_total", "side=\"out\"", s->inflated_out);
}

static void rooms_and_sessions(struct mw_buf *b)
{
    gauge(b, "moonwire_rooms", "Rooms in memory (with members or kept history)", mw_room_count());
    struct mw_session_stats ss = mw_session_stats();
    family(b, "moonwire_sessions", "gauge",
           "Named sessions: attached to a connection, or detached and kept for a resend");
    sample(b, "moonwire_sessions", "state=\"attached\"", ss.named - ss.detached);
    sample(b, "moonwire_sessions", "state=\"detached\"", ss.detached);
}

static void store(struct mw_buf *b)
{
    struct mw_store_stats s = { 0 };
    if (mw_store_on_redis())
        return; /* the keys are in Redis, which counts them itself */
    mw_store_stats(&s);
    gauge(b, "moonwire_store_memory_keys", "Keys in the memory store (expired ones not yet swept "
          "included)", s.keys);
    gauge(b, "moonwire_store_memory_bytes", "Bytes of keys and values in the memory store",
          s.bytes);
    counter(b, "moonwire_store_memory_expired_total",
            "Keys removed from the memory store because their TTL passed", s.expired_total);
}

static void redis(struct mw_buf *b)
{
    const struct mw_redis_stats *s = &mw_redis_stats;
    if (!mw_redis_configured())
        return;
    gauge_per_process(b, "moonwire_redis_up",
                      "1 while Redis is up and every subscription is in place", mw_redis_up());
    family(b, "moonwire_redis_transitions_total", "counter", "Redis went up or down");
    sample(b, "moonwire_redis_transitions_total", "to=\"up\"", s->ups);
    sample(b, "moonwire_redis_transitions_total", "to=\"down\"", s->downs);
    gauge(b, "moonwire_redis_channels", "Room and user channels subscribed to", s->channels);
    counter(b, "moonwire_broker_published_total", "Events published to other nodes",
            s->published);
    counter(b, "moonwire_broker_received_total", "Events received from other nodes", s->received);
    gauge(b, "moonwire_redis_commands_in_flight",
          "Commands sent to Redis and not answered yet (redis.max_in_flight caps each server)",
          s->in_flight);
    family(b, "moonwire_redis_command_seconds", "histogram",
           "From sending a command to Redis to its answer (redirects included), or to its "
           "failure when the connection was lost");
    histogram(b, "moonwire_redis_command_seconds", NULL, &s->command, &mw_redis_command_le);
    counter(b, "moonwire_redis_watchdog_timeouts_total",
            "Redis links closed because a PING went unanswered for redis.timeout", s->hung);
    counter(b, "moonwire_redis_refused_total",
            "Commands refused because redis.max_in_flight were waiting for that Redis",
            s->refused);
    counter(b, "moonwire_cluster_dead_nodes_cleaned_total",
            "Dead nodes whose presence this node removed", mw_cluster_stats.dead_nodes_cleaned);
    counter(b, "moonwire_cluster_registry_rebuilds_total",
            "Times Redis came back without the node registry", mw_cluster_stats.registry_rebuilds);
    if (mw_redis_is_cluster()) {
        gauge_per_process(b, "moonwire_redis_cluster_masters", "Redis Cluster masters known",
                          s->masters);
        family(b, "moonwire_redis_cluster_redirects_total", "counter",
               "MOVED and ASK redirects followed");
        sample(b, "moonwire_redis_cluster_redirects_total", "kind=\"moved\"", s->moved);
        sample(b, "moonwire_redis_cluster_redirects_total", "kind=\"ask\"", s->asked);
        counter(b, "moonwire_redis_cluster_topology_changes_total",
                "Slot maps that differed from the previous one", s->topology_changes);
    }
    counter(b, "moonwire_broker_dropped_total",
            "Events that could not be published while Redis was down", mw_broker_dropped);
    counter(b, "moonwire_broker_bad_payloads_total",
            "Messages on room or user channels that were no moonwire payload",
            mw_broker_bad_payloads);
}

static void inbox(struct mw_buf *b)
{
    struct mw_inbox_stats s;
    mw_inbox_stats(&s);
    family(b, "moonwire_inbox_items_total", "counter",
           "Inbox items pushed, read (removed by notify:read) and trimmed (over inbox.size)");
    sample(b, "moonwire_inbox_items_total", "event=\"pushed\"", s.pushed);
    sample(b, "moonwire_inbox_items_total", "event=\"read\"", s.read);
    sample(b, "moonwire_inbox_items_total", "event=\"trimmed\"", s.trimmed);
    counter(b, "moonwire_inbox_push_failures_total",
            "Inbox pushes refused (Redis down, memory inbox full)", s.failed);
    gauge(b, "moonwire_inbox_memory_users", "Users with items in the memory inbox (0 with Redis)",
          s.users);
    gauge(b, "moonwire_inbox_memory_items", "Items in the memory inbox (0 with Redis)", s.items);
    gauge(b, "moonwire_inbox_memory_bytes", "Bytes in the memory inbox (0 with Redis)", s.bytes);
}

/* The HTTP fallback (sse.c). */
static void sse(struct mw_buf *b)
{
    const struct mw_sse_stats *s = &mw_sse_stats;
    counter(b, "moonwire_sse_streams_total",
            "HTTP fallback streams opened (counted in moonwire_connections* too)", s->opened);
    family(b, "moonwire_sse_posts_total", "counter",
           "Fallback POSTs delivered to a stream of this node, or forwarded to its node");
    sample(b, "moonwire_sse_posts_total", "result=\"delivered\"", s->posts);
    sample(b, "moonwire_sse_posts_total", "result=\"forwarded\"", s->forwarded);
    counter(b, "moonwire_sse_rejected_total", "Fallback requests refused", s->rejected);
}

/* `route="PATH"` for route i, the path escaped as a label value (a route path may
 * hold any character but spaces, '?' and '#'). */
static const char *route_label(size_t i, char *buf, size_t len)
{
    const char *p = mw_srv.routes[i].cfg->path;
    size_t n = (size_t)snprintf(buf, len, "route=\"");
    for (; *p && n + 4 < len; p++) {
        if (*p == '"' || *p == '\\')
            buf[n++] = '\\';
        buf[n++] = *p == '\n' ? 'n' : *p;
    }
    buf[n++] = '"';
    buf[n] = 0;
    return buf;
}

#define ROUTE_LABEL_MAX 600

/* A per-route counter: the uint64_t at `field` of every route's stats. */
static void route_counter(struct mw_buf *b, const char *name, const char *help, size_t field)
{
    char l[ROUTE_LABEL_MAX];
    family(b, name, "counter", help);
    for (size_t i = 0; i < mw_srv.nroutes; i++) {
        const char *st = (const char *)&mw_srv.routes[i].stats;
        uint64_t v;
        memcpy(&v, st + field, sizeof v);
        sample(b, name, route_label(i, l, sizeof l), v);
    }
}

/* A per-route histogram: the struct mw_hist at `field` of every route's stats. */
static void route_histogram(struct mw_buf *b, const char *name, const char *help, size_t field,
                            const struct mw_hist_le *le)
{
    char l[ROUTE_LABEL_MAX];
    family(b, name, "histogram", help);
    for (size_t i = 0; i < mw_srv.nroutes; i++) {
        const char *st = (const char *)&mw_srv.routes[i].stats;
        histogram(b, name, route_label(i, l, sizeof l),
                  (const struct mw_hist *)(const void *)(st + field), le);
    }
}

static void routes(struct mw_buf *b)
{
    char l[ROUTE_LABEL_MAX];
    route_counter(b, "moonwire_messages_in_total",
                  "Messages handed to the route's script (after the rate limit)",
                  offsetof(struct mw_route_stats, messages_in));
    route_counter(b, "moonwire_lua_errors_total", "Lua errors in the route's handlers",
                  offsetof(struct mw_route_stats, lua_errors));
    family(b, "moonwire_errors_total", "counter",
           "Error replies sent by the route, by code (a code appears once it occurred)");
    for (size_t i = 0; i < mw_srv.nroutes; i++)
        for (int k = 0; k < MW_NERROR_CODES; k++)
            if (mw_srv.routes[i].stats.errors[k])
                mw_buf_printf(b, "moonwire_errors_total{%s,code=\"%s\"} %" PRIu64 "\n",
                              route_label(i, l, sizeof l), mw_error_codes[k],
                              mw_srv.routes[i].stats.errors[k]);
    gauge(b, "moonwire_lua_waiting", "Coroutines waiting right now (sleep, store, Redis)",
          mw_script_waiting());
    route_histogram(b, "moonwire_handler_seconds",
                    "Time on the loop per handler run (each resume of a coroutine)",
                    offsetof(struct mw_route_stats, handler), &mw_handler_le);
    route_histogram(b, "moonwire_ping_rtt_seconds",
                    "Heartbeat ping to pong, on connections quiet for heartbeat.interval "
                    "(network round trip plus time queued behind other frames)",
                    offsetof(struct mw_route_stats, rtt), &mw_rtt_le);
    family(b, "moonwire_reloads_total", "counter", "Hot reloads of the route's script, by result");
    for (size_t i = 0; i < mw_srv.nroutes; i++) {
        const struct mw_route_stats *st = &mw_srv.routes[i].stats;
        route_label(i, l, sizeof l);
        mw_buf_printf(b, "moonwire_reloads_total{%s,result=\"ok\"} %" PRIu64 "\n"
                         "moonwire_reloads_total{%s,result=\"failed\"} %" PRIu64 "\n",
                      l, st->reloads, l, st->reload_failures);
    }
    route_counter(b, "moonwire_slow_handlers_total",
                  "Handler runs longer than limits.slow_handler without yielding",
                  offsetof(struct mw_route_stats, slow_handlers));
}

/* Hostile input and the limits (docs/security.md): what was refused, stopped,
 * evicted, and the memory the byte budgets bound. */
static void security(struct mw_buf *b)
{
    family(b, "moonwire_connections_refused_total", "counter",
           "Handshakes refused: origin (not in origins), per_ip, per_user (connection limits)");
    sample(b, "moonwire_connections_refused_total", "reason=\"origin\"", mw_admit_stats.origin);
    sample(b, "moonwire_connections_refused_total", "reason=\"per_ip\"", mw_admit_stats.per_ip);
    sample(b, "moonwire_connections_refused_total", "reason=\"per_user\"", mw_admit_stats.per_user);
    family(b, "moonwire_auth_total", "counter",
           "Tokens verified, refused or refreshed; connections closed 4001 because their token "
           "expired or no auth message came in time (wait_timeout)");
    sample(b, "moonwire_auth_total", "result=\"verified\"", mw_auth_stats.verified);
    sample(b, "moonwire_auth_total", "result=\"refused\"", mw_auth_stats.refused);
    sample(b, "moonwire_auth_total", "result=\"refreshed\"", mw_auth_stats.refreshed);
    sample(b, "moonwire_auth_total", "result=\"expired\"", mw_auth_stats.expired);
    sample(b, "moonwire_auth_total", "result=\"wait_timeout\"", mw_auth_stats.wait_timeouts);
    family(b, "moonwire_joins_refused_total", "counter",
           "conn:join refused by the route's rooms (route), limits.max_rooms, or the app's "
           "can_join (app)");
    sample(b, "moonwire_joins_refused_total", "reason=\"route\"", mw_authz_stats.route);
    sample(b, "moonwire_joins_refused_total", "reason=\"max_rooms\"", mw_authz_stats.max_rooms);
    sample(b, "moonwire_joins_refused_total", "reason=\"app\"", mw_authz_stats.app);
    counter(b, "moonwire_messages_too_big_total",
            "Messages over limits.max_message (the connection closed 1009)", mw_srv.too_big);
    counter(b, "moonwire_lua_stopped_total",
            "Lua calls stopped by the watchdog (limits.handler_timeout)", mw_watchdog_stopped);
    family(b, "moonwire_api_refused_total", "counter",
           "HTTP API calls refused for the key (key) or the request: length, body, method, "
           "path (request)");
    sample(b, "moonwire_api_refused_total", "reason=\"key\"", mw_api_stats.unauthorized);
    sample(b, "moonwire_api_refused_total", "reason=\"request\"", mw_api_stats.refused);
    family(b, "moonwire_invalid_utf8_total", "counter",
           "Payloads from Redis dropped for text that is not UTF-8");
    sample(b, "moonwire_invalid_utf8_total", "source=\"redis\"", mw_broker_invalid);
    struct mw_room_history_stats hs = mw_room_history_stats();
    gauge(b, "moonwire_history_idle_bytes",
          "History held for rooms without members (bounded by limits.history_memory)",
          hs.idle_bytes);
    counter(b, "moonwire_history_evicted_total",
            "Rooms without members that lost their history to limits.history_memory", hs.evicted);
    struct mw_session_stats ss = mw_session_stats();
    gauge(b, "moonwire_sessions_detached_bytes",
          "Memory of detached sessions (bounded by limits.sessions_memory)", ss.detached_bytes);
    counter(b, "moonwire_sessions_evicted_total",
            "Detached sessions dropped for limits.sessions_memory or the count bound", ss.evicted);
}

/* This process's page. */
static void local_page(struct mw_buf *b)
{
    connections(b);
    compression(b);
    rooms_and_sessions(b);
    store(b);
    redis(b);
    inbox(b);
    sse(b);
    routes(b);
    security(b);
}

/* ---- workers: one page for the whole server ----
 *
 * With `workers: N` a scrape reaches whichever worker the kernel hands the
 * connection to, so every worker answers for all of them: the master maps one
 * shared region before it forks; each worker publishes its page into its own slot
 * every PUBLISH_MS and whenever it answers a scrape; the answer is the sum of every
 * slot (expo.c). Each slot has one writer (its worker) and two buffers: the page
 * goes into the one readers are not told about, then `gen` moves on; a reader copies
 * the newest and retries if `gen` moved meanwhile. A worker that dies mid-write
 * leaves the previous page intact.
 *
 * Counters must not go back when a worker is restarted (Prometheus would read a
 * reset of the whole sum): a new worker adds the counters and histograms of the
 * last page in its slot (every earlier incarnation's) to every page it publishes.
 * While a slot's worker is not running (the master clears `alive` when it reaps
 * it), only its counters count: its gauges described a process that is gone. */

#define PUBLISH_MS 1000
#define SLOT_BYTES (1u << 20) /* per buffer; untouched pages of the mapping cost nothing */

struct slot {
    uint64_t gen;     /* pages published; buf[gen & 1] is the newest */
    uint32_t len[2];
    uint32_t alive;   /* 1 from the worker's first page until the master reaped it */
    uint64_t starts;  /* written by the master */
};

static struct slot *slots;  /* the shared region: nslots headers, then the buffers */
static char *bufs;
static int nslots;
static struct mw_buf inherited; /* this worker's slot as its previous incarnation left it */
static uv_timer_t publish_timer;
static bool publishing, too_big_logged;

static char *slot_buf(int k, int which)
{
    return bufs + ((size_t)k * 2 + (size_t)which) * SLOT_BYTES;
}

int mw_metrics_share(int nworkers)
{
    size_t hdr = ((size_t)nworkers * sizeof(struct slot) + 4095) & ~(size_t)4095;
    size_t size = hdr + (size_t)nworkers * 2 * SLOT_BYTES;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED)
        return -1;
    slots = p;
    bufs = (char *)p + hdr;
    nslots = nworkers;
    return 0;
}

void mw_metrics_worker_started(int k)
{
    __atomic_fetch_add(&slots[k].starts, 1, __ATOMIC_RELAXED);
}

void mw_metrics_worker_ended(int k)
{
    __atomic_store_n(&slots[k].alive, 0, __ATOMIC_RELEASE);
}

/* Copies slot k's newest page into out; false when its worker kept writing. */
static bool read_slot(int k, struct mw_buf *out)
{
    for (int tries = 0; tries < 100; tries++) {
        uint64_t gen = __atomic_load_n(&slots[k].gen, __ATOMIC_ACQUIRE);
        uint32_t len = slots[k].len[gen & 1];
        mw_buf_reset(out);
        if (gen == 0)
            return true; /* nothing published yet */
        mw_buf_append(out, slot_buf(k, (int)(gen & 1)), len < SLOT_BYTES ? len : SLOT_BYTES);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&slots[k].gen, __ATOMIC_RELAXED) == gen)
            return true;
        sched_yield();
    }
    return false;
}

/* Publishes this worker's page (its own figures plus what earlier incarnations
 * counted) into its slot. */
static void publish(void)
{
    struct mw_buf local = { 0 }, page = { 0 };
    local_page(&local);
    struct mw_expo *e = mw_expo_new();
    mw_expo_add(e, local.p, local.len, false);
    mw_expo_add(e, inherited.p, inherited.len, true);
    mw_expo_write(e, &page);
    mw_expo_free(e);
    size_t n = page.len;
    if (n > SLOT_BYTES) {
        /* Whole families only: a cut histogram would be wrong. */
        n = SLOT_BYTES;
        while (n > 0 && !(page.p[n - 1] == '\n' && n + 7 <= page.len &&
                          memcmp(page.p + n, "# HELP ", 7) == 0))
            n--;
        if (!too_big_logged)
            mw_log_warn("metrics page too big to share", "bytes=%zu kept=%zu", page.len, n);
        too_big_logged = true;
    }
    struct slot *s = &slots[mw_metrics_worker];
    uint64_t gen = s->gen; /* ours: nobody else writes it */
    int next = (int)((gen + 1) & 1);
    /* The buffer was the newest before our last page: readers of it must see that
     * page's `gen` before any byte we write now. */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    memcpy(slot_buf(mw_metrics_worker, next), page.p, n);
    s->len[next] = (uint32_t)n;
    __atomic_store_n(&s->gen, gen + 1, __ATOMIC_RELEASE);
    __atomic_store_n(&s->alive, 1, __ATOMIC_RELEASE);
    mw_buf_free(&local);
    mw_buf_free(&page);
}

static void on_publish(uv_timer_t *t)
{
    (void)t;
    publish();
}

/* The workers themselves: which are running, how often each was started again. */
static void workers_page(struct mw_buf *b)
{
    family(b, "moonwire_worker_up", "gauge", "1 while the worker runs (workers: N)");
    for (int k = 0; k < nslots; k++)
        mw_buf_printf(b, "moonwire_worker_up{worker=\"%d\"} %u\n", k,
                      __atomic_load_n(&slots[k].alive, __ATOMIC_ACQUIRE));
    family(b, "moonwire_worker_restarts_total", "counter",
           "Times the master started the worker again after it died");
    for (int k = 0; k < nslots; k++) {
        uint64_t starts = __atomic_load_n(&slots[k].starts, __ATOMIC_RELAXED);
        mw_buf_printf(b, "moonwire_worker_restarts_total{worker=\"%d\"} %" PRIu64 "\n", k,
                      starts ? starts - 1 : 0);
    }
}

void mw_metrics_start(int worker)
{
    if (!slots || worker < 0 || worker >= nslots)
        return;
    mw_metrics_worker = worker;
    /* Whatever the previous incarnation published last (everything before it). */
    if (!read_slot(worker, &inherited))
        mw_buf_reset(&inherited);
    uv_timer_init(uv_default_loop(), &publish_timer);
    uv_timer_start(&publish_timer, on_publish, 0, PUBLISH_MS);
    uv_unref((uv_handle_t *)&publish_timer);
    publishing = true;
}

void mw_metrics_stop(void)
{
    if (!publishing)
        return;
    publish(); /* the last figures, for the sum after this worker ends */
    publishing = false;
    uv_close((uv_handle_t *)&publish_timer, NULL);
    mw_buf_free(&inherited);
}

void mw_metrics_text(struct mw_buf *b)
{
    if (!publishing) {
        local_page(b);
        return;
    }
    publish();
    struct mw_expo *e = mw_expo_new();
    struct mw_buf page = { 0 };
    for (int k = 0; k < nslots; k++) {
        bool alive = __atomic_load_n(&slots[k].alive, __ATOMIC_ACQUIRE);
        if (read_slot(k, &page))
            mw_expo_add(e, page.p, page.len, !alive);
        else
            mw_log_warn("metrics of a worker skipped: busy slot", "worker=%d", k);
    }
    mw_buf_reset(&page);
    workers_page(&page);
    mw_expo_add(e, page.p, page.len, false);
    mw_expo_write(e, b);
    mw_expo_free(e);
    mw_buf_free(&page);
}
