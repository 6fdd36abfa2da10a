/* api.c - the HTTP API: publish to a room, notify a user, read a room's presence,
 * disconnect a user, read a venue's reservations (answered by the app that has them).
 * Request and response bodies are JSON; api_body.c decodes and checks requests. */
#include "http/api.h"
#include "http/api_body.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "rooms/broker.h"
#include "base/buf.h"
#include "net/conn.h"
#include "rooms/history.h"
#include "http/http.h"
#include "rooms/inbox.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "base/ident.h"
#include "lua/lua_api.h"
#include "base/lua_json.h"
#include "rooms/presence.h"
#include "redis/redis.h"
#include "rooms/room.h"
#include "lua/script.h"
#include "base/context.h"
#include "base/util.h"

static const struct mw_config *config;

void mw_api_init(const struct mw_config *cfg)
{
    config = cfg;
}

void mw_api_shutdown(void)
{
    mw_api_body_shutdown();
}

int mw_api_is_call(const char *path)
{
    return strncmp(path, "/api/", 5) == 0;
}

static int reply_json(struct lws *wsi, int status, struct mw_buf *b)
{
    return mw_http_reply(wsi, status, "application/json", b->p, b->len);
}

struct mw_api_stats mw_api_stats;

static int reply_error(struct lws *wsi, int status, const char *code, const char *message)
{
    struct mw_buf b = { 0 };
    if (status == 401)
        mw_api_stats.unauthorized++;
    else if (status >= 400 && status < 500)
        mw_api_stats.refused++;
    mw_log_info("api refused", "status=%d code=%s", status, code);
    mw_buf_puts(&b, "{\"error\":");
    mw_jsonw_str(&b, code);
    mw_buf_puts(&b, ",\"message\":");
    mw_jsonw_str(&b, message);
    mw_buf_puts(&b, "}\n");
    int rc = reply_json(wsi, status, &b);
    mw_buf_free(&b);
    return rc;
}

/* The 401: what is missing, the keys in the config or the right one in the request. */
static int refuse_key(struct lws *wsi)
{
    if (!config || !config->napi_keys)
        return reply_error(wsi, 401, "unauthorized",
                           "no API keys are configured: add api: { keys: [...] } to the config");
    return reply_error(wsi, 401, "unauthorized", "missing or wrong API key (Authorization: Bearer KEY)");
}

int mw_api_precheck(struct lws *wsi, bool post)
{
    size_t len = 0;
    int rc;
    if (!mw_api_authorized(wsi)) {
        rc = refuse_key(wsi);
    } else if (!post) {
        return 1;
    } else {
        const char *why;
        int status = mw_http_body_length(wsi, MW_API_MAX_BODY, &len, &why);
        if (!status)
            return 1;
        rc = reply_error(wsi, status, "bad_message",
                         status == 413 ? "the request body is over 64KiB" : why);
    }
    return post ? -1 : rc; /* a body left unread would be taken for the next request */
}

/* Compares without an early exit, so response time does not leak the key. */
static int same_secret(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++)
        diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return diff == 0;
}

int mw_api_authorized(struct lws *wsi)
{
    char h[512];
    if (!config || !config->napi_keys)
        return 0;
    if (lws_hdr_copy(wsi, h, sizeof h, WSI_TOKEN_HTTP_AUTHORIZATION) <= 7 ||
        strncmp(h, "Bearer ", 7) != 0)
        return 0;
    return mw_api_key_ok(h + 7);
}

int mw_api_key_ok(const char *key)
{
    int ok = 0;
    for (size_t i = 0; config && i < config->napi_keys; i++)
        ok |= same_secret(key, config->api_keys[i]);
    return ok;
}

/* Parses the body of a call (api_body.h); on failure answers 400 and returns -1 with
 * *rc what the callback returns. */
static int parse_body(struct lws *wsi, enum mw_api_call call, const char *body, size_t len,
                      struct mw_api_request *req, int *rc)
{
    const char *code;
    char msg[256];
    if (mw_api_body_parse(call, body, len, mw_inbox_max_item(), req, &code, msg, sizeof msg) == 0)
        return 0;
    *rc = reply_error(wsi, 400, code, msg);
    return -1;
}

/* POST /api/publish {room, type, data} -> {seq, delivered}: a sequenced event, kept
 * in the room's history when the room keeps one. */
/* The answer of a call whose backend completes at once (memory) or later (Redis):
 * the first member of that call's struct, which is heap-allocated. */
struct answer {
    struct lws *wsi;             /* while answering at once */
    struct mw_http_later *later; /* once deferred */
    bool answered;               /* at once, with rc */
    int rc;                      /* what the lws callback returns then */
};

/* From the completion: answers now, or through the deferred answer and then frees
 * the call (nobody else holds it any more). */
static void answer(struct answer *a, int status, struct mw_buf *b)
{
    if (a->later) {
        mw_http_later_reply(a->later, status, b->p, b->len);
        free(a);
        return;
    }
    a->rc = reply_json(a->wsi, status, b);
    a->answered = true;
}

/* After starting the backend request: what the lws callback returns. Either the
 * completion answered already (the call is freed), or the answer is deferred. */
static int answer_finish(struct answer *a, struct mw_http_req *req)
{
    if (a->answered) {
        int rc = a->rc;
        free(a);
        return rc;
    }
    a->later = mw_http_defer(req, a->wsi);
    return 0;
}

/* A POST /api/publish waiting for its seq (from Redis when clustered). */
struct publish_call {
    struct answer a; /* first */
    uint32_t local;  /* this node's member connections */
};

static void on_api_published(void *ud, int err, uint64_t seq)
{
    struct publish_call *pc = ud;
    struct mw_buf b = { 0 };
    int status = 200;
    if (err == MW_HISTORY_EUNAVAIL) { /* Redis went down after the check */
        status = 503;
        mw_buf_puts(&b, "{\"error\":\"unavailable\",\"message\":\"Redis is down: "
                        "delivered to this node's members only, without seq\"}\n");
    } else if (err == MW_HISTORY_EUNKNOWN) {
        status = 503;
        mw_buf_puts(&b, "{\"error\":\"unavailable\",\"message\":\"the Redis reply was "
                        "lost: the event may or may not have been published\"}\n");
    } else {
        mw_buf_printf(&b, "{\"seq\":%" PRIu64 ",\"delivered\":%" PRIu32 "}\n", seq,
                      err ? 0 : pc->local);
    }
    answer(&pc->a, status, &b);
    mw_buf_free(&b);
}

/* POST /api/publish {room, type, data?} -> {seq, delivered}: a sequenced event, kept in
 * the room's history and sent to its members on every node, like mw.rooms.publish.
 * Clustered, it answers once Redis gave the seq, and 503 without sending anything
 * while Redis is down. `delivered` counts this node's member connections. */
static int api_publish(struct lws *wsi, struct mw_http_req *req, const char *body, size_t len)
{
    struct mw_api_request pr;
    int rc;
    if (parse_body(wsi, MW_API_PUBLISH, body, len, &pr, &rc) < 0)
        return rc;
    if (mw_broker_clustered() && !mw_redis_up()) {
        mw_api_request_free(&pr);
        return reply_error(wsi, 503, "unavailable", "Redis is down: nothing was published, retry later");
    }
    const char *room = pr.room;
    /* Kept like the route that last published in the room keeps it (rooms are one
     * namespace across routes), else with the default history size. */
    struct mw_room *r = mw_room_find(room);
    struct mw_route_config hist = {
        .history_size = r && r->hcap ? r->hcap : MW_DEFAULT_HISTORY_SIZE,
        .history_ttl_ms = r ? r->hist_ttl_ms : 0,
    };
    struct publish_call *pc = mw_calloc(1, sizeof *pc);
    pc->a.wsi = wsi;
    pc->local = r ? r->nmembers : 0;
    mw_history_publish(room, &hist, pr.json.p, pr.json.len, 0, NULL, on_api_published, pc);
    mw_api_request_free(&pr);
    return answer_finish(&pc->a, req);
}

/* A POST /api/notify waiting for the inbox. */
struct notify_call {
    struct answer a;                  /* first */
    char user[MW_INBOX_MAX_USER + 1]; /* for the log */
};

static void on_notified(void *ud, const struct mw_inbox_result *res)
{
    struct notify_call *nc = ud;
    struct mw_buf b = { 0 };
    int status = 200;
    if (res->err == 0) {
        mw_buf_puts(&b, "{\"id\":");
        mw_jsonw_str(&b, res->id);
        mw_buf_puts(&b, "}\n");
    } else {
        /* Invalid input was refused before the push; what is left is the backend. */
        status = 503;
        mw_log_warn("api notify failed", "user=%s err=\"%s\"", nc->user, mw_inbox_strerror(res->err));
        mw_buf_puts(&b, "{\"error\":\"unavailable\",\"message\":");
        mw_jsonw_str(&b, res->err == MW_INBOX_EFULL ? "the inbox memory is full"
                                                    : "the inbox is unavailable (Redis down)");
        mw_buf_puts(&b, "}\n");
    }
    answer(&nc->a, status, &b);
    mw_buf_free(&b);
}

/* POST /api/notify {user, data} -> {id}: into the user's inbox, and live to every
 * connection of the user. Answers once the item is stored (with Redis, after Redis
 * said so), 503 when it cannot be. */
static int api_notify(struct lws *wsi, struct mw_http_req *req, const char *body, size_t len)
{
    struct mw_api_request nr;
    int rc;
    if (parse_body(wsi, MW_API_NOTIFY, body, len, &nr, &rc) < 0)
        return rc;
    struct notify_call *nc = mw_calloc(1, sizeof *nc);
    nc->a.wsi = wsi;
    snprintf(nc->user, sizeof nc->user, "%s", nr.user);
    mw_inbox_push(nr.user, nr.json.p, nr.json.len, on_notified, nc);
    mw_api_request_free(&nr);
    return answer_finish(&nc->a, req);
}

/* The body of a presence answer. */
static void presence_body(struct mw_buf *b, const char *room, const char *members_json,
                          size_t members_len, uint32_t count)
{
    mw_buf_puts(b, "{\"room\":");
    mw_jsonw_str(b, room);
    mw_buf_puts(b, ",\"members\":");
    mw_buf_append(b, members_json, members_len);
    mw_buf_printf(b, ",\"count\":%" PRIu32 "}\n", count);
}

static void local_presence(struct mw_buf *b, const char *room)
{
    struct mw_room *r = mw_room_find(room);
    struct mw_buf members = { 0 };
    mw_presence_list_json(&members, r, 1000);
    presence_body(b, room, members.p, members.len, r ? r->presence.len : 0);
    mw_buf_free(&members);
}

/* A presence list being read from Redis for a deferred answer. */
struct presence_call {
    struct mw_http_later *later;
    char room[129];
};

static void on_cluster_presence(void *ud, const char *json, size_t len, uint32_t count)
{
    struct presence_call *pc = ud;
    struct mw_buf b = { 0 };
    if (json)
        presence_body(&b, pc->room, json, len, count);
    else /* Redis failed meanwhile: this node's view is the best there is */
        local_presence(&b, pc->room);
    mw_http_later_reply(pc->later, 200, b.p, b.len);
    mw_buf_free(&b);
    free(pc);
}

/* GET /api/rooms/{room}/presence -> {room, members, count}: the members on every node
 * when clustered (at most 1000 listed), this node's while Redis is down. */
static int api_presence(struct lws *wsi, struct mw_http_req *req, const char *path)
{
    const char *start = path + strlen("/api/rooms/");
    const char *end = strstr(start, "/presence");
    if (!end || strcmp(end, "/presence") != 0 || end == start || end - start > 128)
        return reply_error(wsi, 404, "not_found", "no such API endpoint");
    char room[129];
    snprintf(room, sizeof room, "%.*s", (int)(end - start), start);
    const char *bad = mw_room_name_error(room, strlen(room));
    if (bad)
        return reply_error(wsi, 400, "bad_message", bad);
    if (req) {
        struct presence_call *pc = mw_calloc(1, sizeof *pc);
        snprintf(pc->room, sizeof pc->room, "%s", room);
        if (mw_presence_list_cluster(room, 1000, on_cluster_presence, pc) == 0) {
            pc->later = mw_http_defer(req, wsi);
            return 0;
        }
        free(pc);
    }
    struct mw_buf b = { 0 };
    local_presence(&b, room);
    int rc = reply_json(wsi, 200, &b);
    mw_buf_free(&b);
    return rc;
}

static void on_app_answer(void *ud, int status, const char *body, size_t len)
{
    struct answer *a = ud;
    struct mw_buf b = { 0 };
    mw_buf_append(&b, body, len);
    answer(a, status, &b);
    mw_buf_free(&b);
}

/* GET /api/venues/{venue} -> the venue's snapshot, as the reservations app's `join`
 * acks it: answered by the first route (in config order) whose app has a `venue` api
 * handler, with args {venue}. The app validates the venue id. */
static int api_venue(struct lws *wsi, struct mw_http_req *req, const char *path)
{
    const char *venue = path + strlen("/api/venues/");
    size_t len = strlen(venue);
    if (len == 0 || len > 128 || strchr(venue, '/'))
        return reply_error(wsi, 404, "not_found", "no such API endpoint");
    struct mw_app *app = NULL;
    for (size_t i = 0; i < mw_srv.nroutes && !app; i++)
        if (mw_srv.routes[i].app && mw_lua_http_has(mw_srv.routes[i].app, "venue"))
            app = mw_srv.routes[i].app;
    if (!app)
        return reply_error(wsi, 404, "not_found",
                           "no route serves venues (mount app:reservations)");
    struct mw_buf args = { 0 };
    mw_buf_puts(&args, "{\"venue\":");
    mw_jsonw_str(&args, venue);
    mw_buf_puts(&args, "}");
    struct answer *a = mw_calloc(1, sizeof *a);
    a->wsi = wsi;
    mw_lua_http_call(app, "venue", args.p, args.len, on_app_answer, a);
    mw_buf_free(&args);
    return answer_finish(a, req);
}

/* POST /api/disconnect {user} -> {closed}: closes every connection of the user with
 * 4003 "disconnected by server", on every node; `closed` counts this node's. */
static int api_disconnect(struct lws *wsi, const char *body, size_t len)
{
    struct mw_api_request dr;
    int rc;
    if (parse_body(wsi, MW_API_DISCONNECT, body, len, &dr, &rc) < 0)
        return rc;
    const char *user = dr.user;
    uint32_t closed = mw_broker_disconnect_user(user, 4003, "disconnected by server");
    mw_log_info("api disconnect", "user=%s closed=%" PRIu32, user, closed);
    struct mw_buf b = { 0 };
    mw_buf_printf(&b, "{\"closed\":%" PRIu32 "}\n", closed);
    rc = reply_json(wsi, 200, &b);
    mw_buf_free(&b);
    return rc;
}

int mw_api_call(struct lws *wsi, struct mw_http_req *req, const char *method, const char *path,
                const char *body, size_t len)
{
    if (!mw_api_authorized(wsi))
        return refuse_key(wsi);
    int post = strcmp(method, "POST") == 0;
    if (strcmp(path, "/api/publish") == 0)
        return post && req ? api_publish(wsi, req, body, len)
                    : reply_error(wsi, 405, "bad_message", "use POST");
    if (strcmp(path, "/api/notify") == 0)
        return post && req ? api_notify(wsi, req, body, len)
                           : reply_error(wsi, 405, "bad_message", "use POST");
    if (strcmp(path, "/api/disconnect") == 0)
        return post ? api_disconnect(wsi, body, len)
                    : reply_error(wsi, 405, "bad_message", "use POST");
    if (strncmp(path, "/api/rooms/", 11) == 0)
        return !post ? api_presence(wsi, req, path)
                     : reply_error(wsi, 405, "bad_message", "use GET");
    if (strncmp(path, "/api/venues/", 12) == 0)
        return !post && req ? api_venue(wsi, req, path)
                            : reply_error(wsi, 405, "bad_message", "use GET");
    return reply_error(wsi, 404, "not_found", "no such API endpoint");
}
