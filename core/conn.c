/* conn.c - connections, users, send queues and the pending-write flush.
 *
 * The send path follows shared/PERFORMANCE.md: frames are shared references; a
 * connection with queued frames goes on the pending list; once per loop iteration
 * every pending connection gets all its queued frames in one raw write, and asks
 * libwebsockets for a WRITEABLE callback only when the kernel did not take it all. */
#include "conn.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>
#include <uv.h>

#include "log.h"
#include "util.h"

#define FLUSH_CHUNK MW_FLUSH_CHUNK

struct mw_conn_limits mw_conn_limits = { 1 << 20, 50, 100 };
struct mw_conn_stats mw_conn_stats;

void (*mw_user_on_active)(const char *user, bool active);

static struct mw_map conns_by_id;
static struct mw_map users_by_id;
static struct mw_conn *all_head;
static struct mw_conn *pending_head;
static uint32_t nconns;
static uint64_t next_id = 1;

static uv_timer_t reaper; /* enforces close deadlines */
static bool reaper_ready;
static uint32_t nclosing;

static unsigned char *scratch; /* LWS_PRE + gathered frames */
static size_t scratch_cap;

/* ---- users ---- */

static struct mw_user *user_attach(struct mw_conn *c, const char *id)
{
    struct mw_user *u = mw_map_get(&users_by_id, id);
    if (!u) {
        u = mw_calloc(1, sizeof *u);
        u->id = mw_strdup(id);
        mw_map_put(&users_by_id, u->id, u);
        if (mw_user_on_active)
            mw_user_on_active(u->id, true);
    }
    c->user_next = u->conns;
    c->user_prev = NULL;
    if (u->conns)
        u->conns->user_prev = c;
    u->conns = c;
    u->nconns++;
    return u;
}

static void user_detach(struct mw_conn *c)
{
    struct mw_user *u = c->user;
    if (c->user_prev)
        c->user_prev->user_next = c->user_next;
    else
        u->conns = c->user_next;
    if (c->user_next)
        c->user_next->user_prev = c->user_prev;
    if (--u->nconns == 0) {
        if (mw_user_on_active)
            mw_user_on_active(u->id, false);
        mw_map_del(&users_by_id, u->id);
        free(u->id);
        free(u);
    }
    c->user = NULL;
}

struct mw_user *mw_user_find(const char *id)
{
    return mw_map_get(&users_by_id, id);
}

/* ---- lifecycle ---- */

struct mw_conn *mw_conn_new(struct lws *wsi, struct mw_route *route, const char *user_id,
                            const char *remote)
{
    struct mw_conn *c = mw_calloc(1, sizeof *c);
    char anon[32];

    snprintf(c->id, sizeof c->id, "%" PRIu64, next_id++);
    c->wsi = wsi;
    c->route = route;
    c->remote = mw_strdup(remote ? remote : "");
    if (!user_id || !*user_id) {
        snprintf(anon, sizeof anon, "anon-%012" PRIx64, (uint64_t)(mw_random_u64() & 0xffffffffffffull));
        user_id = anon;
    }
    c->user = user_attach(c, user_id);
    c->last_rx_ms = c->last_ping_ms = c->tokens_ms = mw_now_ms();
    c->tokens = mw_conn_limits.burst;

    mw_map_put(&conns_by_id, c->id, c);
    c->all_next = all_head;
    if (all_head)
        all_head->all_prev = c;
    all_head = c;
    nconns++;
    mw_conn_stats.opened++;
    return c;
}

struct mw_conn *mw_conn_new_virtual(struct mw_route *route, const char *user_id,
                                    mw_conn_sink_fn sink, void *ud)
{
    struct mw_conn *c = mw_conn_new(NULL, route, user_id, "virtual");
    c->sink = sink;
    c->sink_ud = ud;
    return c;
}

static void pending_remove(struct mw_conn *c)
{
    if (!c->pending)
        return;
    if (c->pending_prev)
        c->pending_prev->pending_next = c->pending_next;
    else
        pending_head = c->pending_next;
    if (c->pending_next)
        c->pending_next->pending_prev = c->pending_prev;
    c->pending_next = c->pending_prev = NULL;
    c->pending = false;
}

static void pending_add(struct mw_conn *c)
{
    if (c->pending)
        return;
    c->pending = true;
    c->pending_prev = NULL;
    c->pending_next = pending_head;
    if (pending_head)
        pending_head->pending_prev = c;
    pending_head = c;
}

static struct mw_msg *queue_pop(struct mw_conn *c)
{
    struct mw_msg *m = c->q[c->qhead];
    c->qhead = (c->qhead + 1) & (c->qcap - 1);
    c->qlen--;
    c->qbytes -= m->len;
    return m;
}

static void queue_clear(struct mw_conn *c)
{
    while (c->qlen)
        mw_msg_decref(queue_pop(c));
}

void mw_conn_free(struct mw_conn *c)
{
    mw_assert(c->nrooms == 0);
    if (c->closing)
        nclosing--;
    pending_remove(c);
    queue_clear(c);
    free(c->q);
    free(c->rooms);
    mw_map_del(&conns_by_id, c->id);
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else
        all_head = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
    nconns--;
    mw_conn_stats.closed++;
    user_detach(c);
    for (struct mw_attr *a = c->attrs, *n; a; a = n) {
        n = a->next;
        free(a->key);
        free(a->json);
        free(a);
    }
    while (c->dedup_head) {
        struct mw_dedup_entry *e = c->dedup_head;
        c->dedup_head = e->next;
        free(e->reply);
        free(e);
    }
    mw_map_free(&c->dedup);
    free(c->rx);
    free(c->remote);
    free(c->close_reason);
    free(c->claims_json);
    free(c);
    if (nconns == 0) {
        /* Give memory back after a load spike once everyone left. */
        free(scratch);
        scratch = NULL;
        scratch_cap = 0;
    }
}

struct mw_conn *mw_conn_find(const char *id)
{
    return mw_map_get(&conns_by_id, id);
}

struct mw_conn *mw_conn_first(void)
{
    return all_head;
}

uint32_t mw_conn_count(void)
{
    return nconns;
}

/* ---- send queue ---- */

static void queue_push(struct mw_conn *c, struct mw_msg *m)
{
    if (c->qlen == c->qcap) {
        uint32_t cap = c->qcap ? c->qcap * 2 : 8;
        struct mw_msg **q = mw_malloc(cap * sizeof *q);
        for (uint32_t i = 0; i < c->qlen; i++)
            q[i] = c->q[(c->qhead + i) & (c->qcap - 1)];
        free(c->q);
        c->q = q;
        c->qcap = cap;
        c->qhead = 0;
    }
    c->q[(c->qhead + c->qlen) & (c->qcap - 1)] = mw_msg_incref(m);
    c->qlen++;
    c->qbytes += m->len;
}

/* `slow_consumer: drop`: removes queued coalescible frames, oldest first, until
 * `need` more bytes fit. Returns true when they do. */
static bool drop_coalescible(struct mw_conn *c, size_t need)
{
    uint32_t mask = c->qcap - 1, kept = 0;
    for (uint32_t i = 0; i < c->qlen; i++) {
        struct mw_msg *m = c->q[(c->qhead + i) & mask];
        if ((m->flags & MW_MSG_COALESCE) && c->qbytes + need > mw_conn_limits.send_queue) {
            c->qbytes -= m->len;
            mw_msg_decref(m);
            mw_conn_stats.dropped++;
            continue;
        }
        c->q[(c->qhead + kept) & mask] = m;
        kept++;
    }
    c->qlen = kept;
    return c->qbytes + need <= mw_conn_limits.send_queue;
}

int mw_conn_send(struct mw_conn *c, struct mw_msg *m)
{
    if (!mw_conn_is_open(c))
        return MW_ECLOSED;
    if (c->sink) {
        mw_conn_stats.frames_out++;
        c->sink(c, m, 0, NULL);
        return 0;
    }
    if (c->qbytes + m->len > mw_conn_limits.send_queue && !(m->flags & MW_MSG_CONTROL)) {
        if (!(c->slow_drop && drop_coalescible(c, m->len))) {
            mw_conn_stats.slow_closed++;
            mw_log_warn("slow consumer", "conn=%s user=%s queued=%zu limit=%zu", c->id,
                        c->user->id, c->qbytes, mw_conn_limits.send_queue);
            queue_clear(c);
            mw_conn_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "slow consumer");
            return MW_EFULL;
        }
    }
    queue_push(c, m);
    pending_add(c);
    mw_conn_stats.frames_out++;
    return 0;
}

int mw_conn_send_text(struct mw_conn *c, const char *json, size_t len)
{
    struct mw_msg *m = mw_msg_new(MW_OP_TEXT, json, len, 0);
    int rc = mw_conn_send(c, m);
    mw_msg_decref(m);
    return rc;
}

/* Drops connections whose close did not complete in time: a peer that does not read
 * never receives the close frame either. Our own timer, because lws's timeouts are
 * only re-armed after some I/O on an idle libuv loop. */
static void on_reap(uv_timer_t *t)
{
    uint64_t now = mw_now_ms();
    for (struct mw_conn *c = all_head, *next; c; c = next) {
        next = c->all_next; /* a kill frees c */
        if (c->closing && c->wsi && now >= c->close_deadline_ms) {
            mw_log_info("close timed out", "conn=%s user=%s", c->id, c->user->id);
            mw_conn_kill(c);
        }
    }
    if (!nclosing)
        uv_timer_stop(t);
}

static void mark_closing(struct mw_conn *c)
{
    c->closing = true;
    c->close_deadline_ms = mw_now_ms() + MW_CLOSE_GRACE_MS;
    nclosing++;
    if (!reaper_ready) {
        uv_timer_init(uv_default_loop(), &reaper);
        uv_unref((uv_handle_t *)&reaper);
        reaper_ready = true;
    }
    if (!uv_is_active((uv_handle_t *)&reaper))
        uv_timer_start(&reaper, on_reap, 250, 250);
}

void mw_conn_shutdown(void)
{
    if (reaper_ready)
        uv_close((uv_handle_t *)&reaper, NULL);
    reaper_ready = false;
}

void mw_conn_close(struct mw_conn *c, int code, const char *reason)
{
    if (!mw_conn_is_open(c))
        return;
    if (c->sink) { /* its owner sees the close and tears it down */
        c->closing = true;
        c->sink(c, NULL, code, reason ? reason : "");
        return;
    }
    mark_closing(c);
    c->close_code = (uint16_t)code;
    free(c->close_reason);
    reason = reason ? reason : "";
    c->close_reason = mw_strndup(reason, strnlen(reason, 63)); /* as the old 64-byte field */
    pending_add(c);
}

void mw_conn_kill(struct mw_conn *c)
{
    if (c->sink) {
        mw_conn_close(c, 1006, "killed");
        return;
    }
    if (!c->wsi)
        return;
    if (!c->closing)
        mark_closing(c);
    c->close_code = 0;
    queue_clear(c);
    pending_remove(c);
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_SYNC);
}

bool mw_conn_take_token(struct mw_conn *c, uint64_t now_ms)
{
    double rate = mw_conn_limits.rate, burst = mw_conn_limits.burst;
    if (rate <= 0)
        return true;
    c->tokens += (double)(now_ms - c->tokens_ms) * rate / 1000.0;
    c->tokens_ms = now_ms;
    if (c->tokens > burst)
        c->tokens = burst;
    if (c->tokens < 1.0)
        return false;
    c->tokens -= 1.0;
    return true;
}

/* ---- attributes ---- */

void mw_conn_attr_set(struct mw_conn *c, const char *key, const char *json)
{
    struct mw_attr **pp = &c->attrs;
    for (; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->key, key) == 0)
            break;
    }
    struct mw_attr *a = *pp;
    if (!json) {
        if (a) {
            *pp = a->next;
            free(a->key);
            free(a->json);
            free(a);
        }
        return;
    }
    if (!a) {
        a = mw_calloc(1, sizeof *a);
        a->key = mw_strdup(key);
        *pp = a;
    }
    free(a->json);
    a->json = mw_strdup(json);
}

const char *mw_conn_attr_get(const struct mw_conn *c, const char *key)
{
    for (const struct mw_attr *a = c->attrs; a; a = a->next)
        if (strcmp(a->key, key) == 0)
            return a->json;
    return NULL;
}

/* ---- duplicate ids ---- */

static struct mw_dedup_entry *dedup_find(const struct mw_conn *c, const char *key)
{
    if (c->dedup.cap)
        return mw_map_get(&c->dedup, key);
    for (struct mw_dedup_entry *e = c->dedup_head; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

/* Forgets ids older than the window, oldest first; frees the map with the last. */
static void dedup_expire(struct mw_conn *c, uint64_t now)
{
    while (c->dedup_head && now - c->dedup_head->ts_ms > MW_DEDUP_WINDOW_MS) {
        struct mw_dedup_entry *e = c->dedup_head;
        c->dedup_head = e->next;
        if (!c->dedup_head)
            c->dedup_tail = NULL;
        if (c->dedup.cap)
            mw_map_del(&c->dedup, e->key);
        if (e->reply)
            c->dedup_bytes -= (uint32_t)strlen(e->reply);
        free(e->reply);
        free(e);
        c->ndedup--;
    }
    if (!c->ndedup && c->dedup.cap)
        mw_map_free(&c->dedup);
}

int mw_conn_dedup_begin(struct mw_conn *c, const char *key, const char **reply)
{
    uint64_t now = mw_now_ms();
    dedup_expire(c, now); /* first: an id older than the window counts as new */
    struct mw_dedup_entry *e = dedup_find(c, key);
    *reply = NULL;
    if (e) {
        *reply = e->reply;
        return e->done ? MW_DEDUP_DONE : MW_DEDUP_RUNNING;
    }
    size_t klen = strlen(key);
    e = mw_malloc(sizeof *e + klen + 1);
    e->next = NULL;
    e->reply = NULL;
    e->done = false;
    e->ts_ms = now;
    memcpy(e->key, key, klen + 1);
    if (c->dedup_tail)
        c->dedup_tail->next = e;
    else
        c->dedup_head = e;
    c->dedup_tail = e;
    c->ndedup++;
    if (c->dedup.cap) {
        mw_map_put(&c->dedup, e->key, e);
    } else if (c->ndedup > MW_DEDUP_LIST) { /* a busy connection: index them */
        for (struct mw_dedup_entry *x = c->dedup_head; x; x = x->next)
            mw_map_put(&c->dedup, x->key, x);
    }
    return MW_DEDUP_NEW;
}

void mw_conn_dedup_end(struct mw_conn *c, const char *key, const char *reply)
{
    struct mw_dedup_entry *e = dedup_find(c, key);
    if (!e || e->done)
        return;
    e->done = true;
    size_t len = strlen(reply);
    if (len <= MW_DEDUP_REPLY_MAX && c->dedup_bytes + len <= MW_DEDUP_BYTES) {
        e->reply = mw_strdup(reply);
        c->dedup_bytes += (uint32_t)len;
    }
}

void mw_conn_trim(struct mw_conn *c, uint64_t now_ms)
{
    dedup_expire(c, now_ms);
    if (!c->qlen && c->q) {
        free(c->q);
        c->q = NULL;
        c->qcap = 0;
        c->qhead = 0;
    }
}

/* ---- flushing ---- */

static void request_writable(struct mw_conn *c)
{
    if (!c->want_writable) {
        c->want_writable = true;
        lws_callback_on_writable(c->wsi);
    }
}

/* Gathers up to FLUSH_CHUNK bytes of queued frames (at least one frame) into the
 * scratch buffer; returns the byte count and the frame count in *nframes. */
static size_t gather(struct mw_conn *c, uint32_t *nframes)
{
    size_t n = 0;
    uint32_t k = 0;
    while (k < c->qlen) {
        struct mw_msg *m = c->q[(c->qhead + k) & (c->qcap - 1)];
        if (k && n + m->len > FLUSH_CHUNK)
            break;
        if (LWS_PRE + n + m->len > scratch_cap) {
            scratch_cap = LWS_PRE + n + m->len > FLUSH_CHUNK + LWS_PRE
                              ? LWS_PRE + n + m->len : FLUSH_CHUNK + LWS_PRE;
            scratch = mw_realloc(scratch, scratch_cap);
        }
        memcpy(scratch + LWS_PRE + n, m->data, m->len);
        n += m->len;
        k++;
    }
    *nframes = k;
    return n;
}

/* Writes queued frames while the kernel takes them. Returns -1 when the connection
 * failed and must be dropped. */
static int flush_one(struct mw_conn *c)
{
    if (!c->wsi || c->want_writable)
        return 0;
    if (lws_partial_buffered(c->wsi)) {
        request_writable(c);
        return 0;
    }
    while (c->qlen) {
        uint32_t k;
        size_t n = gather(c, &k);
        int w = lws_write(c->wsi, scratch + LWS_PRE, n, LWS_WRITE_RAW);
        while (k--)
            mw_msg_decref(queue_pop(c));
        if (w < 0) {
            mw_log_debug("write failed", "conn=%s", c->id);
            return -1;
        }
        mw_conn_stats.writes++;
        mw_conn_stats.bytes_out += n;
        if (lws_partial_buffered(c->wsi)) {
            request_writable(c);
            return 0;
        }
    }
    return 0;
}

/* Starts the close handshake with the requested code once everything queued went
 * out. Outside lws callbacks only: a -1 from WRITEABLE would drop the connection
 * without the close frame (libwebsockets 4.1). */
static void start_close(struct mw_conn *c)
{
    c->close_started = true;
    mw_log_debug("close started", "conn=%s code=%u", c->id, c->close_code);
    const char *why = c->close_reason ? c->close_reason : "";
    lws_close_reason(c->wsi, (enum lws_close_status)c->close_code, (unsigned char *)why,
                     strlen(why));
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
}

void mw_conn_flush_pending(void)
{
    while (pending_head) {
        struct mw_conn *c = pending_head;
        pending_remove(c);
        if (flush_one(c) < 0)
            mw_conn_kill(c);
        else if (c->closing && c->close_code && !c->close_started && !c->qlen &&
                 !lws_partial_buffered(c->wsi))
            start_close(c); /* may free c */
    }
}

int mw_conn_on_writable(struct mw_conn *c)
{
    c->want_writable = false;
    if (c->close_started)
        return 0;
    if (c->qlen) {
        if (flush_one(c) < 0)
            return -1;
        if (c->want_writable || c->qlen)
            return 0;
    }
    if (c->closing && c->close_code)
        pending_add(c); /* drained: the flush hook starts the close */
    return 0;
}
