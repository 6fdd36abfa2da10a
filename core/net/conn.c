/* conn.c - connections, users, the close state machine and the before-sleep work.
 *
 * The send path follows shared/PERFORMANCE.md: frames are shared references; a
 * connection with queued frames goes on the pending list; once per loop iteration
 * every pending connection is flushed by its transport (one write of all its frames).
 *
 * Closing follows Redis's unlinkClient + freeClientAsync (conn.h has the states): a
 * decision only marks and queues; the before-sleep hook unlinks (app code runs
 * there, never inside a transport callback) and frees; one timer ends transports
 * that outlive their close deadline, walking only the closing connections. */
#include "net/conn.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "base/log.h"
#include "net/session.h"
#include "base/util.h"

_Static_assert(offsetof(struct mw_conn, want_writable) < 64,
               "what a send touches fits the first 64 bytes of a connection");

struct mw_conn_limits mw_conn_limits = { 1 << 20, 50, 100, MW_CLOSE_GRACE_MS, MW_ZOMBIE_MS };
struct mw_conn_stats mw_conn_stats;

void (*mw_user_on_active)(const char *user, bool active);
void (*mw_conn_on_unlink)(struct mw_conn *c);

static struct mw_map conns_by_id;
/* The connection mw_conn_find found last: a handler looks the same one up several
 * times per message (each conn method), and the map's keyed hash is not free. */
static struct mw_conn *last_found;
static struct mw_map users_by_id;
static struct mw_conn *all_head;
static struct mw_conn *walk_next; /* where mw_conn_walk goes on; NULL: from all_head */
static struct mw_conn *pending_head;
static uint32_t nconns;
static uint64_t next_id = 1;

/* The hook's work: connections to unlink (or to abort, or gone), then to free. */
static struct mw_conn *work_head, *work_tail;
static struct mw_conn *free_head;

/* Timed lists, each in deadline order because its offset is constant: closing
 * connections (aborted at decision + MW_CLOSE_GRACE_MS), aborted ones (a zombie at
 * abort + MW_ZOMBIE_MS). */
enum { LIST_NONE, LIST_CLOSING, LIST_ABORTED };
struct clist {
    struct mw_conn *head, *tail;
};
static struct clist closing, aborted;
static uv_timer_t timer;
static bool timer_ready;

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

void mw_conn_set_user(struct mw_conn *c, const char *user_id)
{
    mw_assert(c->nrooms == 0); /* rooms and presence are keyed by user */
    user_detach(c);
    c->user = user_attach(c, user_id);
}

struct mw_user *mw_user_find(const char *id)
{
    return mw_map_get(&users_by_id, id);
}

/* ---- lists ---- */

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
    if (c->pending || !c->tx || !c->tp->flush)
        return;
    c->pending = true;
    c->pending_prev = NULL;
    c->pending_next = pending_head;
    if (pending_head)
        pending_head->pending_prev = c;
    pending_head = c;
}

void mw_conn_want_flush(struct mw_conn *c)
{
    pending_add(c);
}

static struct clist *list_of(const struct mw_conn *c)
{
    return c->list == LIST_CLOSING ? &closing : c->list == LIST_ABORTED ? &aborted : NULL;
}

static void clist_remove(struct mw_conn *c)
{
    struct clist *l = list_of(c);
    if (!l)
        return;
    if (c->closing_prev)
        c->closing_prev->closing_next = c->closing_next;
    else
        l->head = c->closing_next;
    if (c->closing_next)
        c->closing_next->closing_prev = c->closing_prev;
    else
        l->tail = c->closing_prev;
    c->closing_next = c->closing_prev = NULL;
    c->list = LIST_NONE;
}

static void arm_timer(void);

static void clist_append(struct mw_conn *c, int which, uint64_t deadline_ms)
{
    struct clist *l = which == LIST_CLOSING ? &closing : &aborted;
    clist_remove(c);
    c->list = (uint8_t)which;
    c->deadline_ms = deadline_ms;
    c->closing_next = NULL;
    c->closing_prev = l->tail;
    if (l->tail)
        l->tail->closing_next = c;
    else
        l->head = c;
    l->tail = c;
    arm_timer();
}

/* Puts c on the hook's work queue (once). */
static void enqueue_work(struct mw_conn *c)
{
    if (c->queued)
        return;
    c->queued = true;
    c->work_next = NULL;
    if (work_tail)
        work_tail->work_next = c;
    else
        work_head = c;
    work_tail = c;
}

/* ---- lifecycle ---- */

struct mw_conn *mw_conn_new(const struct mw_transport *tp, void *tx, struct mw_route *route,
                            const char *user_id, const char *remote)
{
    struct mw_conn *c = mw_calloc(1, sizeof *c);
    char anon[32];

    mw_u64_str(c->id, next_id++);
    c->tp = tp;
    c->tx = tx;
    c->route = route;
    c->remote = mw_strdup(remote ? remote : "");
    if (!user_id || !*user_id) {
        memcpy(anon, "anon-", 5);
        mw_hex_str(anon + 5, mw_random_u64(), 12);
        user_id = anon;
    }
    c->user = user_attach(c, user_id);
    c->opened_ms = c->last_rx_ms = c->last_ping_ms = c->tokens_ms = c->abuse_ms = mw_now_ms();
    c->tokens = mw_conn_limits.burst;
    c->state = MW_CONN_OPEN;

    mw_map_put(&conns_by_id, c->id, c);
    c->all_next = all_head;
    if (all_head)
        all_head->all_prev = c;
    all_head = c;
    nconns++;
    mw_conn_stats.opened++;
    mw_conn_stats.open++;
    return c;
}

const char *const mw_close_by_names[MW_BY_LOST + 1] = { "-", "server", "peer", "server-drop",
                                                         "lost" };

/* Counts the close decided for a connection (once: it is OPEN until then). */
static void count_close(int by, int code)
{
    struct mw_conn_stats *s = &mw_conn_stats;
    if (by == MW_BY_PEER && (code < 1000 || code > 1015)) {
        s->closes_other[by]++;
        return;
    }
    for (uint32_t i = 0; i < s->nclose_kinds; i++)
        if (s->closes[i].by == by && s->closes[i].code == code) {
            s->closes[i].n++;
            return;
        }
    if (s->nclose_kinds == MW_CLOSE_KINDS) {
        s->closes_other[by]++;
        return;
    }
    s->closes[s->nclose_kinds++] = (struct mw_close_count){ (uint8_t)by, (uint16_t)code, 1 };
}

static void set_reason(struct mw_conn *c, int by, int code, const char *reason)
{
    count_close(by, code);
    c->closed_by = (uint8_t)by;
    c->close_code = (uint16_t)code;
    free(c->close_reason);
    reason = reason ? reason : "";
    c->close_reason = mw_strndup(reason, strnlen(reason, 123)); /* what a close frame holds */
}

/* OPEN -> CLOSING: nobody can send to it or join it any more; the hook unlinks it. */
static void begin_closing(struct mw_conn *c)
{
    c->state = MW_CONN_CLOSING;
    mw_conn_stats.open--;
    mw_conn_stats.closing++;
    clist_append(c, LIST_CLOSING, mw_now_ms() + mw_conn_limits.close_grace_ms);
    enqueue_work(c);
}

void mw_conn_close(struct mw_conn *c, int code, const char *reason)
{
    if (c->state != MW_CONN_OPEN)
        return;
    set_reason(c, MW_BY_SERVER, code, reason);
    begin_closing(c);
    if (c->tx && c->tp->close)
        c->tp->close(c);
    pending_add(c);
}

void mw_conn_kill(struct mw_conn *c, const char *why)
{
    if (c->state == MW_CONN_GONE || c->kill)
        return;
    c->kill = true;
    if (c->state == MW_CONN_OPEN) {
        set_reason(c, MW_BY_KILL, 1006, why);
        begin_closing(c);
    } else {
        enqueue_work(c); /* unlinked already: the hook aborts it */
    }
    pending_remove(c);
}

bool mw_conn_peer_close(struct mw_conn *c, int code, const char *reason)
{
    c->peer_closed = true;
    if (c->state == MW_CONN_OPEN) {
        set_reason(c, MW_BY_PEER, code, reason);
        begin_closing(c);
        return false;
    }
    return c->close_sent;
}

void mw_conn_transport_gone(struct mw_conn *c)
{
    c->tx = NULL;
    c->want_writable = false;
    pending_remove(c);
    if (c->state == MW_CONN_OPEN) {
        set_reason(c, MW_BY_LOST, 1006, "connection lost");
        begin_closing(c);
    } else {
        enqueue_work(c);
    }
}

/* CLOSING -> UNLINKED: the app's disconnect handler runs and c leaves rooms,
 * presence and typing (mw_conn_on_unlink), then its user, session and id. */
static void unlink_conn(struct mw_conn *c)
{
    c->state = MW_CONN_UNLINKED;
    mw_conn_stats.closing--;
    mw_conn_stats.unlinked++;
    if (mw_conn_on_unlink)
        mw_conn_on_unlink(c);
    mw_assert(c->nrooms == 0);
    free(c->rooms);
    c->rooms = NULL;
    c->caprooms = 0;
    mw_map_del(&conns_by_id, c->id);
    if (last_found == c)
        last_found = NULL;
    c->gone_user = mw_strdup(c->user->id);
    user_detach(c);
    if (c->session)
        mw_session_detach(c->session);
    c->session = NULL;
    for (struct mw_attr *a = c->attrs, *n; a; a = n) {
        n = a->next;
        free(a->key);
        free(a->json);
        free(a);
    }
    c->attrs = NULL;
    free(c->rx);
    c->rx = NULL;
    c->rxlen = c->rxcap = 0;
}

/* Tells the transport to end now (once). */
static void abort_transport(struct mw_conn *c)
{
    if (c->aborted || !c->tx)
        return;
    c->aborted = true;
    mw_conn_stats.aborts++;
    pending_remove(c);
    clist_append(c, LIST_ABORTED, mw_now_ms() + mw_conn_limits.zombie_ms);
    c->tp->abort(c); /* may report the transport gone before it returns */
}

/* UNLINKED, transport ended -> GONE: freed at the end of the hook. */
static void become_gone(struct mw_conn *c)
{
    c->state = MW_CONN_GONE;
    mw_conn_stats.unlinked--;
    if (c->zombie)
        mw_conn_stats.zombies--;
    clist_remove(c);
    pending_remove(c);
    c->work_next = free_head;
    free_head = c;
}

/* The close line: who ended it, how, how long it lived and what it carried. */
static void log_closed(const struct mw_conn *c)
{
    const char *const *by = mw_close_by_names;
    if (MW_LOG_INFO < mw_log_level)
        return; /* nothing to format */
    uint64_t ms = mw_now_ms() - c->opened_ms;
    char reason[124];
    /* The peer's reason is untrusted: nothing in it may break the line. */
    snprintf(reason, sizeof reason, "%s", c->close_reason ? c->close_reason : "");
    for (char *r = reason; *r; r++)
        if ((unsigned char)*r < 0x20 || *r == '"' || *r == '\\')
            *r = '?';
    mw_log_info("conn closed",
                "conn=%s user=%s by=%s code=%u reason=\"%s\" duration_ms=%" PRIu64
                " msgs_in=%" PRIu32 " msgs_out=%" PRIu32 " bytes_in=%" PRIu64 " bytes_out=%" PRIu64
                "%s",
                c->id, c->gone_user ? c->gone_user : "-", by[c->closed_by], c->close_code,
                reason, ms, c->msgs_in, c->msgs_out, c->bytes_in,
                c->bytes_out, c->aborted ? " aborted=1" : "");
}

static void conn_free(struct mw_conn *c)
{
    log_closed(c);
    if (walk_next == c)
        walk_next = c->all_next;
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else
        all_head = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
    nconns--;
    mw_conn_stats.closed++;
    mw_sendq_clear(&c->q);
    mw_sendq_trim(&c->q);
    free(c->remote);
    free(c->close_reason);
    free(c->claims_json);
    free(c->gone_user);
    free(c);
}

/* Runs the work queue until it is empty: unlinks closing connections (their app
 * code may close others, which join the queue), aborts the killed ones, and moves
 * those whose transport ended to the free list. */
static void process_work(void)
{
    while (work_head) {
        struct mw_conn *c = work_head;
        work_head = c->work_next;
        if (!work_head)
            work_tail = NULL;
        c->queued = false;
        if (c->state == MW_CONN_CLOSING)
            unlink_conn(c);
        if (c->state != MW_CONN_UNLINKED)
            continue;
        if (c->tx && c->kill)
            abort_transport(c); /* may queue c again, gone */
        else if (!c->tx)
            become_gone(c);
    }
}

static void flush_pending(void)
{
    while (pending_head) {
        struct mw_conn *c = pending_head;
        pending_remove(c);
        if (c->tx && c->tp->flush(c) < 0)
            mw_conn_kill(c, "write failed");
    }
}

void mw_conn_before_sleep(void)
{
    do {
        process_work();
        flush_pending(); /* a failed write queues more work */
    } while (work_head);
    while (free_head) {
        struct mw_conn *c = free_head;
        free_head = c->work_next;
        conn_free(c);
    }
}

void mw_conn_drop(struct mw_conn *c)
{
    c->tx = NULL;
    if (c->state == MW_CONN_OPEN) {
        set_reason(c, MW_BY_PEER, 1000, "");
        begin_closing(c);
    }
    enqueue_work(c);
    mw_conn_before_sleep();
}

/* ---- the close timer ---- */

/* Aborts connections past their close deadline (a peer that does not read never gets
 * the close frame either) and counts aborted ones that did not end as zombies. Walks
 * only what is due. */
static void on_timer(uv_timer_t *t)
{
    (void)t;
    uint64_t now = mw_now_ms();
    while (closing.head && closing.head->deadline_ms <= now) {
        struct mw_conn *c = closing.head;
        clist_remove(c);
        if (!c->tx || c->state != MW_CONN_UNLINKED)
            continue; /* ended, or gone through the hook already */
        mw_conn_stats.close_timeouts++;
        mw_log_info("close timed out", "conn=%s user=%s close_sent=%d", c->id,
                    c->gone_user ? c->gone_user : "-", c->close_sent);
        abort_transport(c);
    }
    while (aborted.head && aborted.head->deadline_ms <= now) {
        struct mw_conn *c = aborted.head;
        clist_remove(c);
        if (!c->tx)
            continue;
        c->zombie = true;
        mw_conn_stats.zombies++;
        mw_log_warn("zombie connection", "conn=%s transport=%s", c->id, c->tp->name);
    }
    arm_timer();
}

static void arm_timer(void)
{
    if (!timer_ready)
        return;
    uint64_t due = 0;
    if (closing.head)
        due = closing.head->deadline_ms;
    if (aborted.head && (!due || aborted.head->deadline_ms < due))
        due = aborted.head->deadline_ms;
    if (!due) {
        uv_timer_stop(&timer);
        return;
    }
    uint64_t now = mw_now_ms();
    uv_timer_start(&timer, on_timer, due > now ? due - now : 0, 0);
}

void mw_conn_init(void)
{
    if (timer_ready)
        return;
    uv_timer_init(uv_default_loop(), &timer);
    uv_unref((uv_handle_t *)&timer);
    timer_ready = true;
    arm_timer();
}

void mw_conn_shutdown(void)
{
    mw_conn_before_sleep();
    if (timer_ready)
        uv_close((uv_handle_t *)&timer, NULL);
    timer_ready = false;
}

/* ---- lookups ---- */

struct mw_conn *mw_conn_find(const char *id)
{
    struct mw_conn *c = last_found;
    if (c && strcmp(c->id, id) == 0)
        return c;
    c = mw_map_get(&conns_by_id, id);
    if (c)
        last_found = c;
    return c;
}

struct mw_conn *mw_conn_first(void)
{
    return all_head;
}

uint32_t mw_conn_count(void)
{
    return nconns;
}

uint32_t mw_conn_walk(uint32_t budget, void (*visit)(struct mw_conn *c, void *arg), void *arg)
{
    uint32_t n = 0;
    if (budget > nconns)
        budget = nconns; /* nobody twice in one call */
    while (n < budget) {
        struct mw_conn *c = walk_next ? walk_next : all_head;
        walk_next = c->all_next; /* taken before the visit: c stays allocated till the hook */
        visit(c, arg);
        n++;
    }
    return n;
}

/* ---- sending ---- */

int mw_conn_send(struct mw_conn *c, struct mw_msg *m)
{
    size_t limit = mw_conn_limits.send_queue;
    if (c->state != MW_CONN_OPEN)
        return MW_ECLOSED;
    c->msgs_out++;
    mw_conn_stats.frames_out++;
    if (c->tp->deliver) {
        c->tp->deliver(c, m);
        return 0;
    }
    struct mw_msg *f = c->tp->frame ? c->tp->frame(c, m) : mw_msg_incref(m);
    if (c->q.bytes + f->len > limit && !(f->flags & MW_MSG_CONTROL)) {
        if (c->slow_drop)
            mw_conn_stats.dropped += mw_sendq_drop_coalescible(&c->q, limit, f->len);
        if (c->q.bytes + f->len > limit) {
            mw_msg_decref(f);
            mw_conn_stats.slow_closed++;
            mw_log_warn("slow consumer", "conn=%s user=%s queued=%zu limit=%zu", c->id,
                        c->user->id, c->q.bytes, limit);
            mw_sendq_discard(&c->q);
            mw_conn_close(c, 1008, "slow consumer");
            return MW_EFULL;
        }
    }
    mw_sendq_push(&c->q, f);
    mw_msg_decref(f);
    pending_add(c);
    return 0;
}

int mw_conn_send_text(struct mw_conn *c, const char *json, size_t len)
{
    struct mw_msg *m = mw_msg_new(MW_OP_TEXT, json, len, 0);
    int rc = mw_conn_send(c, m);
    mw_msg_decref(m);
    return rc;
}

void mw_conn_received(struct mw_conn *c, size_t n)
{
    c->msgs_in++;
    c->bytes_in += n;
}

void mw_conn_sent(struct mw_conn *c, size_t n)
{
    c->bytes_out += n;
    mw_conn_stats.bytes_out += n;
    mw_conn_stats.writes++;
}

int mw_conn_rate(struct mw_conn *c, uint64_t now_ms)
{
    double rate = mw_conn_limits.rate, burst = mw_conn_limits.burst;
    if (rate <= 0)
        return MW_RATE_OK;
    c->tokens += (double)(now_ms - c->tokens_ms) * rate / 1000.0;
    c->tokens_ms = now_ms;
    if (c->tokens > burst)
        c->tokens = burst;
    if (c->tokens >= 1.0) {
        c->tokens -= 1.0;
        return MW_RATE_OK;
    }
    c->abuse -= (double)(now_ms - c->abuse_ms) * rate / 1000.0;
    c->abuse_ms = now_ms;
    if (c->abuse < 0)
        c->abuse = 0;
    c->abuse += 1.0;
    return c->abuse > MW_RATE_ABUSE_BURSTS * burst ? MW_RATE_ABUSE : MW_RATE_LIMITED;
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

struct mw_session *mw_conn_session(struct mw_conn *c)
{
    if (!c->session)
        c->session = mw_session_attach(c->user->id, NULL);
    return c->session;
}

void mw_conn_join_session(struct mw_conn *c, const char *sid)
{
    mw_assert(!c->session);
    c->session = mw_session_attach(c->user->id, sid);
}

void mw_conn_trim(struct mw_conn *c, uint64_t now_ms)
{
    if (c->session)
        mw_session_trim(c->session, now_ms);
    mw_sendq_trim(&c->q);
}
