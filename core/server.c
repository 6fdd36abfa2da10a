/* server.c - one libuv loop driving libwebsockets (foreign loop): HTTP endpoints,
 * WebSocket routes, heartbeats, the per-iteration flush, signals and shutdown. */
#include "server.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libwebsockets.h>
#include <uv.h>

#include "api.h"
#include "broker.h"
#include "conn.h"
#include "history.h"
#include "http.h"
#include "ident.h"
#include "inbox.h"
#include "jsonw.h"
#include "listener.h"
#include "log.h"
#include "lua_api.h"
#include "presence.h"
#include "reload.h"
#include "room.h"
#include "script.h"
#include "session.h"
#include "store.h"
#include "typing.h"
#include "util.h"

struct mw_server mw_srv;

static struct lws_context *context;
static uv_prepare_t flush_hook;
static uv_timer_t heartbeat_timer, shutdown_timer;
static uv_signal_t sig_int, sig_term, sig_hup;
static struct mw_msg *ping_frame;
static uint64_t shutdown_started_ms;
static int given_fd = -1; /* a listening socket opened by the master (workers) */

/* What lws keeps per WebSocket: just our connection. */
struct session {
    struct mw_conn *conn;
    struct mw_http_req *http; /* an HTTP API call waiting for its body */
};

struct mw_route *mw_server_route(const char *path)
{
    for (size_t i = 0; i < mw_srv.nroutes; i++)
        if (strcmp(mw_srv.routes[i].cfg->path, path) == 0)
            return &mw_srv.routes[i];
    return NULL;
}

int mw_server_load_routes(const struct mw_config *cfg, const char *home, char *err, size_t errlen)
{
    mw_srv.cfg = cfg;
    mw_srv.home = home;
    mw_srv.nroutes = cfg->nroutes;
    mw_srv.routes = mw_calloc(cfg->nroutes, sizeof *mw_srv.routes);
    mw_script_slow_ms = cfg->slow_handler_ms;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        mw_srv.routes[i].cfg = &cfg->routes[i];
        mw_srv.routes[i].app = mw_app_new(&mw_srv.routes[i], home, err, errlen);
        if (!mw_srv.routes[i].app) {
            mw_server_unload_routes();
            return -1;
        }
    }
    return 0;
}

void mw_server_unload_routes(void)
{
    for (size_t i = 0; i < mw_srv.nroutes; i++)
        if (mw_srv.routes[i].app)
            mw_app_decref(mw_srv.routes[i].app);
    free(mw_srv.routes);
    mw_srv.routes = NULL;
    mw_srv.nroutes = 0;
}

/* ---- WebSocket side ---- */

static void send_hello(struct mw_conn *c)
{
    struct mw_buf b = { 0 };
    mw_buf_puts(&b, "{\"type\":\"hello\",\"data\":{\"conn\":");
    mw_jsonw_str(&b, c->id);
    mw_buf_puts(&b, ",\"node\":");
    mw_jsonw_str(&b, mw_srv.node_id);
    mw_buf_puts(&b, ",\"user\":");
    mw_jsonw_str(&b, c->user->id);
    mw_buf_printf(&b, ",\"heartbeat\":%g}}", (double)mw_srv.cfg->heartbeat_interval_ms / 1000.0);
    mw_conn_send_text(c, b.p, b.len);
    mw_buf_free(&b);
}

static void send_error(struct mw_conn *c, const char *code, const char *message)
{
    struct mw_buf b = { 0 };
    mw_buf_puts(&b, "{\"type\":\"error\",\"code\":");
    mw_jsonw_str(&b, code);
    mw_buf_puts(&b, ",\"message\":");
    mw_jsonw_str(&b, message);
    mw_buf_putc(&b, '}');
    mw_conn_send_text(c, b.p, b.len);
    mw_buf_free(&b);
}

/* The URI path of the upgrade request, without the query string. */
static int request_path(struct lws *wsi, char *buf, int len)
{
    int n = lws_hdr_copy(wsi, buf, len, WSI_TOKEN_GET_URI);
    if (n <= 0)
        return -1;
    char *q = strchr(buf, '?');
    if (q)
        *q = '\0';
    return 0;
}

static int on_filter(struct lws *wsi)
{
    char path[256];
    if (mw_srv.shutting_down)
        return 1;
    if (request_path(wsi, path, sizeof path) < 0 || !mw_server_route(path)) {
        mw_log_info("upgrade rejected", "path=%s reason=\"no such route\"", path);
        return 1;
    }
    if (mw_conn_count() >= mw_srv.cfg->max_connections) {
        mw_log_warn("upgrade rejected", "path=%s reason=\"max_connections\"", path);
        return 1;
    }
    return 0;
}

static int on_established(struct lws *wsi, struct session *s)
{
    char path[256], user[160] = "", remote[64] = "";
    request_path(wsi, path, sizeof path);
    struct mw_route *route = mw_server_route(path);
    if (!route)
        return -1;
    const char *bad_user = NULL;
    if (mw_srv.cfg->user_param) {
        /* lws_get_urlarg_by_name matches "name=" at the start of each argument. */
        const char *v = lws_get_urlarg_by_name(wsi, "user=", user, sizeof user);
        if (v && v != user)
            memmove(user, v, strlen(v) + 1);
        if (v && user[0])
            bad_user = mw_user_id_error(user, strlen(user));
        if (!v || bad_user)
            user[0] = '\0';
    }
    /* ?session=ID: this connection shares its window of message ids with the user's
     * earlier connections in that session (session.h). */
    char sid[MW_SESSION_ID_MAX + 16] = "";
    const char *sv = lws_get_urlarg_by_name(wsi, "session=", sid, sizeof sid);
    if (sv && sv != sid)
        memmove(sid, sv, strlen(sv) + 1);
    const char *bad_sid = sv ? mw_session_id_error(sid, strlen(sid)) : NULL;
    lws_get_peer_simple(wsi, remote, sizeof remote);
    struct mw_conn *c = mw_conn_new(wsi, route, user[0] ? user : NULL, remote);
    s->conn = c;
    if (sv && !bad_sid)
        mw_conn_join_session(c, sid);
    mw_server_conn_opened(c);
    if (bad_user) { /* the one user-id rule (ident.h) */
        mw_log_info("bad user id", "conn=%s", c->id);
        send_error(c, "bad_message", bad_user);
        mw_conn_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "bad user id");
    } else if (bad_sid) {
        mw_log_info("bad session id", "conn=%s", c->id);
        send_error(c, "bad_message", bad_sid);
        mw_conn_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "bad session id");
    }
    return 0;
}

void mw_server_conn_opened(struct mw_conn *c)
{
    struct mw_route *route = c->route;
    c->slow_drop = route->cfg->slow_consumer == MW_SLOW_DROP;
    mw_log_debug("conn open", "conn=%s route=%s user=%s remote=%s", c->id, route->cfg->path,
                 c->user->id, c->remote);
    if (route->cfg->protocol == MW_PROTO_JSON)
        send_hello(c);
    mw_script_connect(c);
}

/* Delivers a complete message to the route's script. */
void mw_server_conn_input(struct mw_conn *c, const char *p, size_t len, bool binary)
{
    struct mw_route *route = c->route;
    if (!mw_conn_take_token(c, mw_now_ms())) {
        mw_srv.rate_limited++;
        if (++c->rejected > mw_conn_limits.burst) {
            mw_log_warn("rate limit abuse", "conn=%s user=%s", c->id, c->user->id);
            mw_conn_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "rate limit");
        } else {
            send_error(c, "rate_limited", "too many messages; slow down");
        }
        return;
    }
    c->rejected = 0;
    route->stats.messages_in++;
    mw_script_message(c, p, len, binary);
}

static int on_receive(struct lws *wsi, struct mw_conn *c, const char *in, size_t len)
{
    size_t remaining = lws_remaining_packet_payload(wsi);
    bool final = lws_is_final_fragment(wsi);

    c->last_rx_ms = mw_now_ms();
    if (c->closing)
        return 0;
    if (c->rxlen + len + remaining > mw_srv.cfg->max_message) {
        mw_log_info("message too big", "conn=%s size>=%zu limit=%zu", c->id,
                    c->rxlen + len + remaining, mw_srv.cfg->max_message);
        const char *why = "message too big";
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)why, strlen(why));
        return -1;
    }
    if (c->rxlen == 0 && final) { /* the common case: one piece, no copy */
        mw_server_conn_input(c, in, len, lws_frame_is_binary(wsi));
        return 0;
    }
    if (c->rxlen == 0)
        c->rx_binary = lws_frame_is_binary(wsi);
    if (c->rxlen + len > c->rxcap) {
        c->rxcap = c->rxlen + len + remaining;
        c->rx = mw_realloc(c->rx, c->rxcap);
    }
    memcpy(c->rx + c->rxlen, in, len);
    c->rxlen += len;
    if (final) {
        size_t n = c->rxlen;
        c->rxlen = 0;
        mw_server_conn_input(c, c->rx, n, c->rx_binary);
        free(c->rx); /* most connections never fragment: keep idle memory small */
        c->rx = NULL;
        c->rxcap = 0;
    }
    return 0;
}

static void on_closed(struct session *s)
{
    struct mw_conn *c = s->conn;
    if (!c)
        return;
    s->conn = NULL;
    c->wsi = NULL;
    mw_server_conn_gone(c);
}

void mw_server_conn_gone(struct mw_conn *c)
{
    mw_log_debug("conn closed", "conn=%s user=%s", c->id, c->user->id);
    c->sink = NULL;
    mw_script_disconnect(c);
    mw_presence_leave_all(c, c->route->cfg);
    mw_conn_free(c);
}

static void release_rx_page(void *in, size_t len);

static int on_lws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len)
{
    struct session *s = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return mw_http_request(wsi, in, &s->http);
    case LWS_CALLBACK_HTTP_BODY:
        return mw_http_body(s->http, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return mw_http_body_done(wsi, &s->http);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (s && s->http && s->http->later) /* an API call that answers later */
            return mw_http_writable(wsi, &s->http);
        break;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (s)
            mw_http_req_free(&s->http);
        break;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return on_filter(wsi);
    case LWS_CALLBACK_ESTABLISHED:
        return on_established(wsi, s);
    case LWS_CALLBACK_RECEIVE:
        return s->conn ? on_receive(wsi, s->conn, in, len) : -1;
    case LWS_CALLBACK_RECEIVE_PONG:
        if (s->conn)
            s->conn->last_rx_ms = mw_now_ms();
        release_rx_page(in, len);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return s->conn ? mw_conn_on_writable(s->conn) : 0;
    case LWS_CALLBACK_CLOSED:
        on_closed(s);
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* How much lws reads from a connection per readiness: one read of at most
 * min(rx_buffer_size, pt_serv_buf_size). At 4 KiB a publisher got ~17 messages in per
 * loop iteration, and an iteration with 1000 recipients takes milliseconds. It is also
 * the size of the per-connection buffer lws reassembles payload in (allocated at the
 * upgrade; only touched pages are resident: +0.25 KiB per idle connection measured). */
#define RX_BUFFER (64 * 1024)
/* At most this much per send(): with 0, lws caps each send at rx_buffer_size and keeps
 * the rest of a gathered flush for a WRITEABLE callback (an epoll_ctl round trip). */
#define TX_PACKET (MW_FLUSH_CHUNK + 1024)
/* What lws allocates for that buffer (lib/roles/ws: rx_buffer_size + LWS_PRE + 4). */
#define RX_UBUF_SIZE (RX_BUFFER + LWS_PRE + 4)
#define PAGE 4096

static const struct lws_protocols protocols[] = {
    { "moonwire", on_lws, sizeof(struct session), RX_BUFFER, 0, NULL, TX_PACKET },
    { NULL, NULL, 0, 0, 0, NULL, 0 }
};

/* ---- loop hooks ---- */

static void on_flush(uv_prepare_t *h)
{
    (void)h;
    mw_conn_flush_pending();
}

/* One sweep over every connection: ping the quiet ones, drop the dead ones, and give
 * back what idle ones no longer need (old dedup ids, empty send queues). */
static void on_heartbeat(uv_timer_t *t)
{
    (void)t;
    uint64_t now = mw_now_ms();
    mw_room_sweep(mw_wall_ms(), now, MW_ROOM_IDLE_KEEP_MS);
    mw_session_sweep(now);
    uint64_t interval = mw_srv.cfg->heartbeat_interval_ms;
    uint64_t deadline = interval + mw_srv.cfg->heartbeat_timeout_ms;
    for (struct mw_conn *c = mw_conn_first(), *next; c; c = next) {
        next = c->all_next; /* a kill frees c */
        mw_conn_trim(c, now); /* what an idle connection no longer needs */
        if (!c->wsi || c->closing)
            continue;
        uint64_t idle = now - c->last_rx_ms;
        if (idle >= deadline) {
            mw_srv.heartbeat_timeouts++;
            mw_log_info("heartbeat timeout", "conn=%s user=%s idle_ms=%" PRIu64, c->id,
                        c->user->id, idle);
            mw_conn_kill(c);
        } else if (idle >= interval && now - c->last_ping_ms >= interval) {
            c->last_ping_ms = now;
            mw_conn_send(c, ping_frame);
        }
    }
}

/* ---- shutdown ---- */

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Destroys lws inside the running loop (its handles close asynchronously; the loop
 * completes the destruction and clears `context`), then closes our own handles so
 * that uv_run returns once everything has closed. */
static void finish(void)
{
    mw_listener_stop();
    if (context)
        lws_context_destroy(context);
    close_handle((uv_handle_t *)&flush_hook);
    close_handle((uv_handle_t *)&heartbeat_timer);
    close_handle((uv_handle_t *)&shutdown_timer);
    close_handle((uv_handle_t *)&sig_int);
    close_handle((uv_handle_t *)&sig_term);
    close_handle((uv_handle_t *)&sig_hup);
    mw_server_release();
}

static void on_shutdown_tick(uv_timer_t *t)
{
    (void)t;
    uint32_t batch = 0;
    /* Close in batches with a reconnect hint spread over time, so that clients do not
     * all come back at once (SPEC section 10). */
    for (struct mw_conn *c = mw_conn_first(); c && batch < 500; c = c->all_next) {
        if (c->closing || !c->wsi)
            continue;
        char hint[96];
        int n = snprintf(hint, sizeof hint, "{\"type\":\"reconnect\",\"data\":{\"after_ms\":%" PRIu64 "}}",
                         1000 + mw_random_u64() % 4000);
        if (c->route->cfg->protocol == MW_PROTO_JSON)
            mw_conn_send_text(c, hint, (size_t)n);
        mw_conn_close(c, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down");
        batch++;
    }
    if (mw_conn_count() == 0 || mw_now_ms() - shutdown_started_ms > 3000)
        finish();
}

static void begin_shutdown(int signum)
{
    if (mw_srv.shutting_down) {
        mw_log_warn("second signal: exiting now", "signal=%d", signum);
        finish();
        return;
    }
    mw_srv.shutting_down = true;
    shutdown_started_ms = mw_now_ms();
    mw_listener_stop(); /* other workers (or a restarted server) take new clients */
    mw_log_info("shutting down", "signal=%d connections=%" PRIu32, signum, mw_conn_count());
    uv_timer_stop(&heartbeat_timer);
    uv_timer_start(&shutdown_timer, on_shutdown_tick, 0, 20);
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    if (signum == SIGHUP) {
        mw_reload_all("SIGHUP");
        return;
    }
    begin_shutdown(signum);
}

static void on_lws_log(int level, const char *line)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", line);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    mw_log(level & LLL_ERR ? MW_LOG_ERROR : MW_LOG_WARN, "libwebsockets", "detail=\"%s\"", msg);
}

/* libwebsockets' allocations. One kind is special: the per-connection rx buffer
 * (rx_buffer_size + LWS_PRE + 4 bytes, allocated at the upgrade). Data frames are
 * parsed in place in the shared read buffer, but control frames are collected in it,
 * so the pong answering our heartbeat ping makes its first page resident: +4 KiB per
 * idle connection after the first heartbeat (measured: 2.7 -> 6.7 KiB per idle
 * connection). These buffers come from our own slots instead: page-aligned, whole
 * pages, in large anonymous mappings that are resident only where touched, so that
 * the pong callback can give its page back (release_rx_page) and so that they cost
 * no allocator metadata (jemalloc keeps ~250 B per 80 KiB extent). */
#define RX_SLOT (((size_t)RX_UBUF_SIZE + PAGE - 1) & ~(size_t)(PAGE - 1))
#define RX_CHUNK_SLOTS 1024 /* 68 MiB of address space per mapping */

struct rx_chunk {
    struct rx_chunk *next;
    unsigned char *base;
};
static struct rx_chunk *rx_chunks;
static unsigned char **rx_free; /* free slots, a stack */
static size_t rx_nfree, rx_capfree;

static bool rx_owns(const void *p)
{
    if ((uintptr_t)p & (PAGE - 1)) /* every slot is page-aligned */
        return false;
    for (const struct rx_chunk *k = rx_chunks; k; k = k->next)
        if ((const unsigned char *)p >= k->base &&
            (const unsigned char *)p < k->base + RX_SLOT * RX_CHUNK_SLOTS)
            return true;
    return false;
}

static void *rx_get(void)
{
    if (!rx_nfree) {
        void *m = mmap(NULL, RX_SLOT * RX_CHUNK_SLOTS, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED)
            return NULL; /* lws fails that connection */
        struct rx_chunk *k = mw_malloc(sizeof *k);
        k->base = m;
        k->next = rx_chunks;
        rx_chunks = k;
        rx_capfree += RX_CHUNK_SLOTS;
        rx_free = mw_realloc(rx_free, rx_capfree * sizeof *rx_free);
        for (size_t i = RX_CHUNK_SLOTS; i-- > 0;) /* lowest address on top */
            rx_free[rx_nfree++] = k->base + i * RX_SLOT;
    }
    return rx_free[--rx_nfree];
}

static void rx_put(void *p)
{
    /* Whatever the connection touched (control frames, pieces of large messages)
     * goes back to the kernel; the next connection starts with zero pages. */
    madvise(p, RX_SLOT, MADV_DONTNEED);
    rx_free[rx_nfree++] = p;
}

/* At exit, once libwebsockets has freed every buffer; with any still out (lws would
 * free it later) the mappings stay. */
static void rx_pool_free(void)
{
    if (rx_nfree != rx_capfree)
        return;
    while (rx_chunks) {
        struct rx_chunk *k = rx_chunks;
        rx_chunks = k->next;
        munmap(k->base, RX_SLOT * RX_CHUNK_SLOTS);
        free(k);
    }
    free(rx_free);
    rx_free = NULL;
    rx_nfree = rx_capfree = 0;
}

static void *lws_alloc(void *ptr, size_t size, const char *reason)
{
    (void)reason; /* compiled out of this libwebsockets build */
    if (ptr && rx_owns(ptr)) {
        void *q = NULL;
        if (size) { /* not done by lws 4.1; kept correct anyway */
            q = malloc(size);
            if (!q)
                return NULL;
            memcpy(q, ptr, size < RX_SLOT ? size : RX_SLOT);
        }
        rx_put(ptr);
        return q;
    }
    if (!size) {
        free(ptr);
        return NULL;
    }
    if (!ptr && size == RX_UBUF_SIZE)
        return rx_get();
    return realloc(ptr, size);
}

/* Called with the payload of a pong: libwebsockets 4.1 hands over rx_ubuf + LWS_PRE
 * (checked against the allocations above). The frame is complete and nothing else is
 * kept in that buffer between frames (no extensions), so its touched pages can go:
 * the kernel gives a zero page on the next touch. */
static void release_rx_page(void *in, size_t len)
{
#if LWS_LIBRARY_VERSION_MAJOR == 4 && LWS_LIBRARY_VERSION_MINOR == 1
    unsigned char *buf = (unsigned char *)in - LWS_PRE;
    if (((uintptr_t)buf & (PAGE - 1)) == 0 && LWS_PRE + len <= RX_BUFFER)
        madvise(buf, (LWS_PRE + len + PAGE - 1) & ~(size_t)(PAGE - 1), MADV_DONTNEED);
#else
    (void)in;
    (void)len;
#endif
}

static struct lws_context *create_context(const struct mw_config *cfg)
{
    lws_set_allocator(lws_alloc);
    static const lws_retry_bo_t no_validity = { 0 }; /* our heartbeat replaces lws's timer */
    static void *foreign_loops[1];
    struct lws_context_creation_info info;

    memset(&info, 0, sizeof info);
    foreign_loops[0] = uv_default_loop();
    info.foreign_loops = foreign_loops;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8;
    (void)cfg;
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* listener.c accepts and adopts */
    info.protocols = protocols;
    info.retry_and_idle_policy = &no_validity;
    info.gid = (gid_t)-1;
    info.uid = (uid_t)-1;
    info.vhost_name = "moonwire";
    info.server_string = "moonwire";
    info.timeout_secs = 10;
    info.pt_serv_buf_size = RX_BUFFER;
    info.pcontext = &context; /* lws clears it when destruction completes */
    return lws_create_context(&info);
}

int mw_server_prepare(const struct mw_config *cfg, const char *home, char *err, size_t errlen)
{
    mw_conn_limits.send_queue = cfg->send_queue;
    mw_conn_limits.rate = cfg->rate;
    mw_conn_limits.burst = cfg->burst;
    mw_typing_init();
    if (cfg->node_id)
        snprintf(mw_srv.node_id, sizeof mw_srv.node_id, "%s", cfg->node_id);
    else
        snprintf(mw_srv.node_id, sizeof mw_srv.node_id, "node-%08" PRIx64,
                 (uint64_t)(mw_random_u64() & 0xffffffffu));
    mw_store_init();
    mw_inbox_init(cfg);
    return mw_server_load_routes(cfg, home, err, errlen);
}

void mw_server_release(void)
{
    mw_broker_stop();
    mw_history_free();
    mw_presence_shutdown();
    mw_store_free(); /* pending store calls complete with "unavailable" */
    mw_inbox_free();
    mw_lua_core_shutdown();
    mw_lua_timer_cancel_app(NULL);
    mw_conn_shutdown();
    mw_reload_shutdown();
}

void mw_server_teardown(void)
{
    uv_loop_t *loop = uv_default_loop();
    mw_room_free_all();
    mw_session_free_all();
    mw_server_unload_routes();
    uv_run(loop, UV_RUN_DEFAULT); /* close callbacks of timers the scripts left */
    if (uv_loop_close(loop) != 0)
        mw_log_warn("loop not empty at exit", "%s", "");
}

void mw_server_use_socket(int fd)
{
    given_fd = fd;
}

int mw_server_run(const struct mw_config *cfg, const char *home)
{
    uv_loop_t *loop = uv_default_loop();
    char err[1024];
    int port = cfg->listen_port;
    int fd = given_fd;

    if (fd < 0)
        fd = mw_listen_open(cfg->listen_host, cfg->listen_port, false, &port, err, sizeof err);
    if (fd < 0) {
        mw_log_error("cannot listen", "addr=%s:%d detail=\"%s\"", cfg->listen_host,
                     cfg->listen_port, err);
        return 1;
    }
    mw_http_init(cfg, home);
    mw_api_init(cfg);
    /* The store follows Redis (single or cluster); `moonwire test` keeps memory. */
    mw_store_use_redis(cfg->redis_url != NULL || cfg->nredis_cluster > 0);
    if (mw_server_prepare(cfg, home, err, sizeof err) < 0 ||
        mw_broker_start(cfg, err, sizeof err) < 0) {
        fprintf(stderr, "moonwire: %s\n", err);
        close(fd);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    lws_set_log_level(LLL_ERR, on_lws_log);
    context = create_context(cfg);
    struct lws_vhost *vh = context ? lws_get_vhost_by_name(context, "moonwire") : NULL;
    if (!context || !vh) {
        /* Tearing a half-made context down on a foreign loop crashes inside lws. */
        mw_log_error("cannot start libwebsockets", "%s", "");
        fflush(stderr);
        _exit(1);
    }
    mw_listener_start(fd, vh);
    /* With a payload: libwebsockets 4.1 does not report empty pongs to the callback,
     * so an empty ping's answer would never count as traffic. */
    ping_frame = mw_msg_new(MW_OP_PING, "mw", 2, MW_MSG_CONTROL);

    uv_prepare_init(loop, &flush_hook);
    uv_prepare_start(&flush_hook, on_flush);
    uint64_t tick = cfg->heartbeat_interval_ms < cfg->heartbeat_timeout_ms
                        ? cfg->heartbeat_interval_ms : cfg->heartbeat_timeout_ms;
    tick = tick / 2 > 50 ? tick / 2 : 50;
    uv_timer_init(loop, &heartbeat_timer);
    uv_timer_start(&heartbeat_timer, on_heartbeat, tick, tick);
    uv_timer_init(loop, &shutdown_timer);
    uv_signal_init(loop, &sig_int);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_init(loop, &sig_term);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_init(loop, &sig_hup);
    uv_signal_start(&sig_hup, on_signal, SIGHUP);

    mw_reload_init(cfg->hot_reload, home);
    mw_log_info("listening", "addr=%s:%d node=%s routes=%zu version=%s", cfg->listen_host,
                port, mw_srv.node_id, cfg->nroutes, MW_VERSION);
    /* Runs until finish() closed every handle (lws's included). */
    uv_run(loop, UV_RUN_DEFAULT);
    if (context) /* lws 4.1 with a foreign loop: the second call completes it */
        lws_context_destroy(context);
    rx_pool_free();
    mw_server_teardown();
    mw_msg_decref(ping_frame);
    mw_http_shutdown();
    mw_api_shutdown();
    mw_log_info("stopped", "%s", "");
    return 0;
}
