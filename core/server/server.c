/* server.c - the process: one libuv loop (libwebsockets runs on it: lwsglue.c),
 * routes, what every connection goes through whatever its transport (opening,
 * identity, hello, the rate limit, leaving), the before-sleep hook, heartbeats,
 * signals and shutdown. */
#include "server/server.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "http/admin.h"
#include "net/admit.h"
#include "http/api.h"
#include "net/auth.h"
#include "rooms/authz.h"
#include "rooms/broker.h"
#include "net/conn.h"
#include "net/deflate.h"
#include "net/heartbeat.h"
#include "rooms/history.h"
#include "http/http.h"
#include "base/ident.h"
#include "rooms/inbox.h"
#include "base/jsonpeek.h"
#include "base/jsonw.h"
#include "net/listener.h"
#include "base/log.h"
#include "http/lwsglue.h"
#include "lua/lua_api.h"
#include "http/metrics.h"
#include "rooms/presence.h"
#include "lua/reload.h"
#include "rooms/room.h"
#include "lua/script.h"
#include "net/session.h"
#include "http/sse.h"
#include "store/store.h"
#include "rooms/typing.h"
#include "base/util.h"
#include "lua/watchdog.h"
#include "net/ws.h"

struct mw_server mw_srv;

/* The ?session= of a connection that waits for its token, joined once the token named
 * the user (sessions are per user). Kept as a connection attribute meanwhile (an
 * id of A-Z a-z 0-9 _ - only). */
#define WAIT_SESSION_ATTR "__wait_session"

static uv_prepare_t before_sleep;
static bool before_sleep_ready;
static uv_timer_t housekeeping_timer, shutdown_timer;
static uv_signal_t sig_int, sig_term, sig_hup;
static uint64_t shutdown_started_ms;
static int given_fd = -1; /* a listening socket opened by the master (workers) */

struct mw_route *mw_server_route(const char *path)
{
    for (size_t i = 0; i < mw_srv.nroutes; i++)
        if (strcmp(mw_srv.routes[i].cfg->path, path) == 0)
            return &mw_srv.routes[i];
    return NULL;
}

/* The admin page's feed (/admin, apps/admin): a route of its own whenever API keys
 * are configured and the config does not use its path. */
static struct mw_route_config admin_route;

static bool want_admin_route(const struct mw_config *cfg, const char *home)
{
    return cfg->napi_keys && home && !mw_config_route(cfg, MW_ADMIN_ROUTE);
}

static const struct mw_route_config *route_config(const struct mw_config *cfg, size_t i,
                                                  const char *home)
{
    if (i < cfg->nroutes)
        return &cfg->routes[i];
    if (!admin_route.path) {
        char script[4096];
        snprintf(script, sizeof script, "%s/apps/admin/main.lua", home);
        mw_config_route_defaults(&admin_route);
        admin_route.path = mw_strdup(MW_ADMIN_ROUTE);
        admin_route.app = mw_strdup("admin");
        admin_route.script = mw_strdup(script);
        admin_route.history_size = 0;
        admin_route.presence_events = false;
        /* Its room is its own: no other route's clients may join it (authz.h). */
        admin_route.rooms = mw_calloc(1, sizeof *admin_route.rooms);
        admin_route.rooms[0] = mw_strdup(MW_ADMIN_ROOM);
        admin_route.nrooms = 1;
    }
    return &admin_route;
}

int mw_server_load_routes(const struct mw_config *cfg, const char *home, char *err, size_t errlen)
{
    mw_srv.cfg = cfg;
    mw_srv.home = home;
    mw_srv.nroutes = cfg->nroutes + want_admin_route(cfg, home);
    mw_srv.routes = mw_calloc(mw_srv.nroutes ? mw_srv.nroutes : 1, sizeof *mw_srv.routes);
    mw_script_slow_ms = cfg->slow_handler_ms;
    mw_watchdog_set_timeout(cfg->handler_timeout_ms);
    if (mw_auth_init(cfg, err, errlen) < 0) {
        mw_server_unload_routes();
        return -1;
    }
    mw_admit_init(cfg);
    mw_room_set_history_budget(cfg->history_memory);
    mw_session_set_budget(cfg->sessions_memory);
    for (size_t i = 0; i < mw_srv.nroutes; i++) {
        mw_srv.routes[i].cfg = route_config(cfg, i, home);
        mw_srv.routes[i].app = mw_app_new(&mw_srv.routes[i], home, err, errlen);
        if (!mw_srv.routes[i].app) {
            mw_server_unload_routes();
            return -1;
        }
    }
    const struct mw_route_config **rcs = mw_calloc(mw_srv.nroutes + 1, sizeof *rcs);
    for (size_t i = 0; i < mw_srv.nroutes; i++)
        rcs[i] = mw_srv.routes[i].cfg;
    mw_authz_init(rcs, mw_srv.nroutes);
    free(rcs);
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
    mw_auth_shutdown();
    mw_authz_shutdown();
    mw_admit_shutdown();
    free(admin_route.path);
    free(admin_route.app);
    free(admin_route.script);
    free(admin_route.options_json);
    for (size_t i = 0; i < admin_route.nrooms; i++)
        free(admin_route.rooms[i]);
    free(admin_route.rooms);
    memset(&admin_route, 0, sizeof admin_route);
}

/* ---- connections, whatever their transport ---- */

static void send_hello(struct mw_conn *c)
{
    struct mw_buf b = { 0 };
    mw_buf_reserve(&b, 256); /* room for the usual ids: allocated once, not grown */
    mw_buf_puts(&b, "{\"type\":\"hello\",\"data\":{\"conn\":");
    mw_jsonw_str(&b, c->id);
    mw_buf_puts(&b, ",\"node\":");
    mw_jsonw_str(&b, mw_srv.node_id);
    mw_buf_puts(&b, ",\"user\":");
    mw_jsonw_str(&b, c->user->id);
    static char tail[48]; /* the same for every connection: formatted once */
    static uint64_t tail_ms;
    if (!tail[0] || tail_ms != mw_srv.cfg->heartbeat_interval_ms) {
        tail_ms = mw_srv.cfg->heartbeat_interval_ms;
        snprintf(tail, sizeof tail, ",\"heartbeat\":%g}}", (double)tail_ms / 1000.0);
    }
    mw_buf_puts(&b, tail);
    mw_conn_send_text(c, b.p, b.len);
    mw_buf_free(&b);
}

/* An error frame; id (JSON text, idlen bytes) is the request's, or NULL. */
static void send_error(struct mw_conn *c, const char *id, size_t idlen, const char *code,
                       const char *message)
{
    struct mw_buf b = { 0 };
    mw_buf_puts(&b, "{\"type\":\"error\",");
    if (id) {
        mw_buf_puts(&b, "\"id\":");
        mw_buf_append(&b, id, idlen);
        mw_buf_putc(&b, ',');
    }
    mw_buf_puts(&b, "\"code\":");
    mw_jsonw_str(&b, code);
    mw_buf_puts(&b, ",\"message\":");
    mw_jsonw_str(&b, message);
    mw_buf_putc(&b, '}');
    mw_conn_send_text(c, b.p, b.len);
    mw_buf_free(&b);
}

int mw_server_check_open(const struct mw_open_req *r, const char **why)
{
    *why = NULL;
    if (mw_srv.shutting_down) {
        *why = "shutting down";
        return 503;
    }
    if (!mw_server_route(r->path)) {
        mw_log_info("upgrade rejected", "path=%s reason=\"no such route\"", r->path);
        *why = "no such route";
        return 404;
    }
    if (mw_conn_count() >= mw_srv.cfg->max_connections) {
        mw_log_warn("upgrade rejected", "path=%s reason=\"max_connections\"", r->path);
        *why = "max_connections";
        return 503;
    }
    struct mw_identity id = { 0 };
    int status = mw_admit_check(r, why); /* Origin, connections per address */
    if (!status)
        status = mw_auth_identify(r, &id, why); /* kept for the open that follows */
    if (!status)
        status = mw_admit_check_user(id.user, why);
    if (status)
        mw_log_info("upgrade rejected", "path=%s remote=%s status=%d reason=\"%s\"", r->path,
                    r->remote, status, *why);
    mw_identity_clear(&id);
    return status;
}

struct mw_conn *mw_server_open(const struct mw_transport *tp, void *tx, const struct mw_open_req *r)
{
    char sid[MW_SESSION_ID_MAX + 1] = "";
    struct mw_identity id;
    const char *why;
    struct mw_route *route = mw_server_route(r->path);
    if (!route)
        return NULL;
    /* Who it is: as the handshake's check found (kept), else found now. */
    if (!mw_auth_take(r->tx, &id) && mw_auth_identify(r, &id, &why) != 0) {
        mw_log_info("upgrade rejected", "path=%s remote=%s reason=\"%s\"", r->path, r->remote, why);
        return NULL;
    }
    /* The admin page proves itself with an API key (admin:auth) and has no token to
     * give: auth.required does not make it wait for one. */
    if (id.kind == MW_ID_WAIT && route->cfg == &admin_route)
        id.kind = MW_ID_ANON;
    /* ?session=ID: this connection shares its window of message ids with the user's
     * earlier connections in that session (session.h). */
    int sidlen = r->query(r->tx, "session", sid, sizeof sid);
    const char *bad_sid = sidlen >= 0 ? mw_session_id_error(sid, (size_t)sidlen) : NULL;
    struct mw_conn *c = mw_conn_new(tp, tx, route, id.user[0] ? id.user : NULL, r->remote);
    mw_admit_opened(c->remote); /* until on_unlink */
    c->claims_json = id.claims_json; /* the connection owns them now */
    c->auth_exp_ms = id.exp_ms;
    if (sidlen >= 0 && !bad_sid && id.kind == MW_ID_WAIT)
        mw_conn_attr_set(c, WAIT_SESSION_ATTR, sid); /* a session is the user's: after auth */
    else if (sidlen >= 0 && !bad_sid)
        mw_conn_join_session(c, sid);
    if (id.kind == MW_ID_WAIT) {
        /* auth.required and no token yet: nothing is served until an `auth` message
         * names the user (mw_server_conn_input). */
        c->auth_wait_ms = mw_now_ms() + mw_auth_wait_ms();
        mw_log_info("conn waits for auth", "conn=%s route=%s remote=%s", c->id, route->cfg->path, c->remote);
    } else {
        mw_server_conn_opened(c);
    }
    if (bad_sid) {
        mw_log_info("bad session id", "conn=%s", c->id);
        send_error(c, NULL, 0, "bad_message", bad_sid);
        mw_conn_close(c, 1008, "bad session id");
    }
    return c;
}

void mw_server_conn_opened(struct mw_conn *c)
{
    struct mw_route *route = c->route;
    c->slow_drop = route->cfg->slow_consumer == MW_SLOW_DROP;
    mw_heartbeat_attach(c);
    mw_log_info("conn open", "conn=%s route=%s user=%s remote=%s transport=%s", c->id,
                route->cfg->path, c->user->id, c->remote, c->tp->name);
    if (route->cfg->protocol == MW_PROTO_JSON)
        send_hello(c);
    mw_script_connect(c);
}

/* Delivers a complete message to the route's script. */
/* The first message of a connection that waits for its token: an `auth` message opens
 * it (hello, the connect handler, then the ack with the user); anything else, or a
 * token that is not valid, closes it 4001. */
static void first_auth(struct mw_conn *c, const char *p, size_t len)
{
    const char *id = NULL, *code = "unauthorized", *why = NULL;
    size_t idlen = mw_json_peek_id(p, len, &id);
    char *token = NULL;
    size_t tlen = 0;
    if (mw_auth_parse_message(p, len, &token, &tlen, &why) == 0 &&
        mw_auth_message(c, token, tlen, &code, &why) == 0) {
        free(token);
        if (mw_admit_user_over(c->user->id)) {
            why = "too many connections for this user (limits.max_connections_per_user)";
            mw_log_info("auth refused", "conn=%s remote=%s reason=\"%s\"", c->id, c->remote, why);
            send_error(c, idlen ? id : NULL, idlen, "rate_limited", why);
            mw_conn_close(c, 1008, "too many connections");
            return;
        }
        mw_log_info("conn authenticated", "conn=%s user=%s", c->id, c->user->id);
        const char *sid = mw_conn_attr_get(c, WAIT_SESSION_ATTR);
        if (sid) {
            mw_conn_join_session(c, sid);
            mw_conn_attr_set(c, WAIT_SESSION_ATTR, NULL);
        }
        mw_server_conn_opened(c);
        if (idlen) {
            struct mw_buf b = { 0 };
            mw_buf_puts(&b, "{\"type\":\"ack\",\"id\":");
            mw_buf_append(&b, id, idlen);
            mw_buf_puts(&b, ",\"data\":{\"user\":");
            mw_jsonw_str(&b, c->user->id);
            mw_buf_printf(&b, ",\"exp\":%" PRIu64 "}}", c->auth_exp_ms / 1000);
            mw_conn_send_text(c, b.p, b.len);
            mw_buf_free(&b);
        }
        return;
    }
    free(token);
    mw_log_info("auth refused", "conn=%s remote=%s reason=\"%s\"", c->id, c->remote, why);
    send_error(c, idlen ? id : NULL, idlen, code, why);
    c->auth_wait_ms = 0;
    mw_conn_close(c, 4001, "authentication failed");
}

void mw_server_conn_input(struct mw_conn *c, const char *p, size_t len, bool binary)
{
    struct mw_route *route = c->route;
    mw_conn_received(c, len);
    int rate = mw_conn_rate(c, mw_now_ms());
    if (rate != MW_RATE_OK) {
        /* Refused unparsed, but answered with the request's id when it has one, so
         * that the client knows which request to send again. */
        const char *id = NULL;
        size_t idlen = 0;
        if (route->cfg->protocol == MW_PROTO_JSON && !binary)
            idlen = mw_json_peek_id(p, len, &id);
        mw_srv.rate_limited++;
        send_error(c, idlen ? id : NULL, idlen, "rate_limited", "too many messages; slow down");
        if (rate == MW_RATE_ABUSE) {
            mw_log_warn("rate limit abuse", "conn=%s user=%s", c->id, c->user->id);
            mw_conn_close(c, 1008, "rate limit");
        }
        return;
    }
    route->stats.messages_in++;
    if (c->auth_wait_ms) {
        first_auth(c, p, len);
        return;
    }
    mw_script_message(c, p, len, binary);
}

/* The connection left (unlink, conn.h): the app's disconnect handler, then rooms,
 * presence and typing. */
static void on_unlink(struct mw_conn *c)
{
    mw_log_debug("conn unlinked", "conn=%s user=%s", c->id, c->user->id);
    mw_script_disconnect(c);
    mw_presence_leave_all(c, c->route->cfg);
    mw_admit_gone(c->remote);
}

/* ---- loop hooks ---- */

static void on_before_sleep(uv_prepare_t *h)
{
    (void)h;
    mw_conn_before_sleep();
}

/* What is not per connection (heartbeat.c visits those): idle rooms and their
 * history, detached sessions past their window. */
static void on_housekeeping(uv_timer_t *t)
{
    (void)t;
    uint64_t now = mw_now_ms();
    mw_room_sweep(mw_wall_ms(), now, MW_ROOM_IDLE_KEEP_MS);
    mw_session_sweep(now);
}

const struct mw_hist_le mw_rtt_le = {
    14, { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 },
};

void mw_server_conn_pong(struct mw_conn *c, const void *p, size_t n)
{
    c->last_rx_ms = mw_now_ms();
    /* Our ping's payload: an unsolicited pong (a client's own heartbeat) is no answer. */
    size_t len = sizeof MW_HEARTBEAT_PING - 1;
    if (!c->ping_us || n != len || memcmp(p, MW_HEARTBEAT_PING, n) != 0)
        return;
    /* From queueing the ping: the network's round trip, plus the time the ping
     * waited behind queued frames and the pong waited for the loop. */
    mw_hist_observe(&c->route->stats.rtt, &mw_rtt_le, (double)(mw_now_us() - c->ping_us) / 1e6);
    c->ping_us = 0;
}

/* ---- shutdown ---- */

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Destroys lws inside the running loop (every connection's transport ends now; lws's
 * handles close asynchronously), then closes our own handles so that uv_run returns
 * once everything has closed. What connections are left are unlinked and freed by
 * mw_server_release. */
static void finish(void)
{
    mw_listener_stop();
    mw_ws_stop();
    mw_lws_stop();
    mw_metrics_stop();
    mw_heartbeat_close();
    close_handle((uv_handle_t *)&housekeeping_timer);
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
     * all come back at once (docs/protocol.md, "reconnect"). */
    for (struct mw_conn *c = mw_conn_first(); c && batch < 500; c = c->all_next) {
        if (!mw_conn_is_open(c) || !c->tx)
            continue;
        char hint[96];
        int n = snprintf(hint, sizeof hint, "{\"type\":\"reconnect\",\"data\":{\"after_ms\":%" PRIu64 "}}",
                         1000 + mw_random_u64() % 4000);
        if (c->route->cfg->protocol == MW_PROTO_JSON)
            mw_conn_send_text(c, hint, (size_t)n);
        mw_conn_close(c, 1001, "server shutting down");
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
    mw_heartbeat_stop();
    uv_timer_stop(&housekeeping_timer);
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
    /* The work done once per loop iteration (conn.h), for `serve` and `moonwire test`
     * alike: unref'd, it never keeps the loop alive by itself. */
    mw_conn_on_unlink = on_unlink;
    mw_conn_init();
    uv_prepare_init(uv_default_loop(), &before_sleep);
    uv_prepare_start(&before_sleep, on_before_sleep);
    uv_unref((uv_handle_t *)&before_sleep);
    before_sleep_ready = true;
    return mw_server_load_routes(cfg, home, err, errlen);
}

void mw_server_release(void)
{
    mw_conn_shutdown(); /* the disconnect handlers of what is left, while all works */
    if (before_sleep_ready)
        close_handle((uv_handle_t *)&before_sleep);
    before_sleep_ready = false;
    mw_broker_stop();
    mw_history_free();
    mw_presence_shutdown();
    mw_store_free(); /* pending store calls complete with "unavailable" */
    mw_inbox_free();
    mw_lua_core_shutdown();
    mw_lua_timer_cancel_app(NULL);
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
    mw_sse_init();
    mw_admin_init();
    signal(SIGPIPE, SIG_IGN);
    struct lws_vhost *vh = mw_lws_start();
    if (!vh) {
        /* Tearing a half-made context down on a foreign loop crashes inside lws. */
        mw_log_error("cannot start libwebsockets", "%s", "");
        fflush(stderr);
        _exit(1);
    }
    mw_ws_start(vh);
    mw_listener_start(fd, cfg->socket_send_buffer);
    mw_heartbeat_start(cfg->heartbeat_interval_ms, cfg->heartbeat_timeout_ms);
    uint64_t tick = mw_heartbeat_period_ms(cfg->heartbeat_interval_ms, cfg->heartbeat_timeout_ms);
    uv_timer_init(loop, &housekeeping_timer);
    uv_timer_start(&housekeeping_timer, on_housekeeping, tick, tick);
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
    mw_lws_free();
    mw_deflate_shutdown();
    mw_server_teardown();
    mw_http_shutdown();
    mw_sse_shutdown();
    mw_api_shutdown();
    mw_log_info("stopped", "%s", "");
    mw_log_recent_free();
    return 0;
}
