/* scen.c - the benchmark scenarios (see scen.h): set-up, paced sending, draining
 * and the result lines. */
#include "scen.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "net.h"
#include "proc.h"
#include "report.h"

#define MS(ns) ((double)(ns) / 1e6)

static char pad_text[1024];
static uint64_t next_seq = 1; /* message numbers, unique over the whole process */

/* ---- shared pieces ---- */

static int setup_net(struct net *n, const struct opts *o, uint32_t nconns, uint32_t nrooms,
                     const char *room, bool linger0)
{
    struct net_opts no = { .host = o->host, .port = o->port, .port2 = o->port2, .path = o->path,
                           .sources = o->sources, .ack = o->ack, .linger0 = linger0,
                           .deflate = o->deflate,
                           .batch_ns = (uint64_t)(o->batch_us * 1000), .batch_auto = o->batch_auto,
                           .check_parse = o->check_parse };
    uint32_t padlen = o->pad < sizeof pad_text ? o->pad : sizeof pad_text - 1;
    memset(pad_text, 'x', padlen);
    pad_text[padlen] = '\0';
    if (net_init(n, &no, nconns, nrooms, room) < 0) {
        fprintf(stderr, "mwbench: out of memory or epoll failed\n");
        return -1;
    }
    return 0;
}

/* Caps a connection count by the open-files limit, and says so. */
static uint32_t cap_conns(const struct opts *o, uint32_t want, bool *capped)
{
    *capped = want > o->max_conns;
    if (!*capped)
        return want;
    printf("warning: the open-files limit (%d) caps connections at %u (asked for %u)\n",
           o->nofile, o->max_conns, want);
    return o->max_conns;
}

/* Connection idx's room: below n->split, round-robin over the first split_rooms rooms;
 * from split on (idle connections beside the load), rooms of split_size after them. */
static uint32_t room_of(const struct net *n, uint32_t idx)
{
    if (!n->split || idx < n->split)
        return idx % (n->split ? n->split_rooms : n->nrooms);
    return n->split_rooms + (idx - n->split) / n->split_size;
}

/* Starts every connection that is not READY, at most o->inflight at a time, and waits
 * until each is READY or failed, or the set-up timeout. Returns how many are READY. */
static uint32_t setup_conns(struct net *n, const struct opts *o)
{
    uint64_t deadline = now_ns() + (uint64_t)(o->setup_timeout * 1e9);
    uint32_t next = 0, ready = 0;
    net_batching(n, false); /* a set-up waits on every answer: read at once */
    while (now_ns() < deadline) {
        while (next < n->nconns && n->in_setup < o->inflight) {
            struct conn *c = &n->conns[next++];
            if (c->state == C_IDLE || c->state == C_DEAD)
                net_start(n, c, room_of(n, c->idx));
        }
        if (next == n->nconns && !n->in_setup)
            break;
        net_poll(n, 5000000);
    }
    for (uint32_t i = 0; i < n->nconns; i++) {
        struct conn *c = &n->conns[i];
        if (c->state != C_READY && c->state != C_DEAD && c->state != C_IDLE) {
            static const char *stage[] = { "idle", "connect", "upgrade", "hello", "join" };
            if (!n->fails.first[0])
                snprintf(n->fails.first, sizeof n->fails.first,
                         "set-up timed out after %.0f s waiting for the %s", o->setup_timeout,
                         stage[c->state]);
            n->fails.timeout++;
            net_drop(n, c);
        }
        ready += c->state == C_READY;
    }
    net_batching(n, true);
    return ready;
}

/* Keeps handling events for `secs` (presence traffic after joins, idle holds). */
static void settle(struct net *n, double secs)
{
    uint64_t end = now_ns() + (uint64_t)(secs * 1e9);
    for (uint64_t t; (t = now_ns()) < end;)
        net_poll(n, (int64_t)(end - t));
}

/* The first `max` READY connections into who[]; returns how many. */
static uint32_t pick_ready(const struct net *n, uint32_t *who, uint32_t max)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < n->nconns && k < max; i++)
        if (n->conns[i].state == C_READY)
            who[k++] = i;
    return k;
}

/* Sends `rate` messages per second for `secs`, round-robin over who[], each stamped
 * with the time it is written. Catches up after a stall in bursts of at most 4096.
 * While reads are batched (a busy generator) it wakes at most every SEND_QUANTUM_NS
 * and writes what is due then, one write per connection. */
#define SEND_QUANTUM_NS 200000
static void paced_send(struct net *n, const uint32_t *who, uint32_t nwho, double rate,
                       double secs)
{
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)(secs * 1e9), done = 0, rr = 0;
    n->c.interval_ns = (uint64_t)(1e9 / rate);
    for (;;) {
        uint64_t now = now_ns();
        if (now >= end || !nwho)
            break;
        uint64_t due = (uint64_t)((double)(now - t0) * rate / 1e9) + 1;
        net_cork(n);
        for (uint32_t burst = 0; done < due && burst < 4096; burst++, done++) {
            /* How late this send is: a generator that cannot keep its schedule sends
             * in bursts, and the server's latency for a burst is partly ours. */
            uint64_t at = t0 + (uint64_t)((double)done * 1e9 / rate);
            hist_add(&n->c.send_lag, now > at ? now - at : 0);
            net_send_chat(n, &n->conns[who[rr++ % nwho]], next_seq++, pad_text);
        }
        net_uncork(n);
        int64_t wait = 0;
        if (done >= due) {
            uint64_t next = t0 + (uint64_t)((double)done * 1e9 / rate);
            if (n->batch_ns && next < now + SEND_QUANTUM_NS)
                next = now + SEND_QUANTUM_NS;
            next = next < end ? next : end;
            wait = next > now ? (int64_t)(next - now) : 0;
        }
        net_poll(n, wait < 50000000 ? wait : 50000000);
    }
}

static bool drained(const struct net *n, bool ack)
{
    return n->c.delivered >= n->c.expected && (!ack || n->c.acked + n->c.errors >= n->c.sent);
}

/* Waits for the deliveries and acks of what was sent, at most `secs` after the last
 * send: a server that drops messages shows loss instead of hanging the run. */
static void drain(struct net *n, const struct opts *o, double secs)
{
    uint64_t end = now_ns() + (uint64_t)(secs * 1e9);
    for (uint64_t t; !drained(n, o->ack) && (t = now_ns()) < end;)
        net_poll(n, (int64_t)(end - t) < 10000000 ? (int64_t)(end - t) : 10000000);
}

/* Waits until nothing arrived for 300 ms (at most 5 s): the backlog of an overloaded
 * step must not spill into the next one. */
static void quiesce(struct net *n)
{
    uint64_t end = now_ns() + 5000000000u, last = now_ns(), frames = n->frames_in;
    for (uint64_t t; (t = now_ns()) < end && t - last < 300000000;) {
        net_poll(n, 20000000);
        if (n->frames_in != frames) {
            frames = n->frames_in;
            last = now_ns();
        }
    }
}

static uint64_t setup_failures(const struct fails *f)
{
    return f->connect + f->upgrade + f->hello + f->join + f->timeout;
}

static void kv_fails(const struct net *n)
{
    const struct fails *f = &n->fails;
    kv_u64("conn_failed", setup_failures(f));
    kv_u64("closed", f->closed_ready);
    const uint64_t by_stage[] = { f->connect, f->upgrade, f->hello, f->join, f->timeout };
    const char *stage_key[] = { "fail_connect", "fail_upgrade", "fail_hello", "fail_join",
                                "fail_timeout" };
    for (int i = 0; i < 5; i++)
        if (by_stage[i])
            kv_u64(stage_key[i], by_stage[i]);
    for (int i = 0; i < 8; i++)
        if (f->by_code[i]) {
            char k[32];
            snprintf(k, sizeof k, "close_%s", net_close_code_name(i));
            kv_u64(k, f->by_code[i]);
        }
    if (f->first[0])
        kv_str("first_failure", f->first);
}

/* How the generator read: read() calls, bytes and deliveries per read, the longest
 * read interval in force (latency may read up to it high), and the share of events
 * read in place (dscan) rather than through the JSON walk. */
static void kv_reads(const struct net *n)
{
    const struct counters *c = &n->c;
    kv_u64("reads", c->reads);
    kv_f("bytes_per_read", c->reads ? (double)c->read_bytes / (double)c->reads : 0, 0);
    kv_f("deliveries_per_read", c->reads ? (double)c->delivered / (double)c->reads : 0, 1);
    kv_f("read_batch_max_us", (double)c->batch_max_ns / 1e3, 0);
}

static void kv_latency(const struct hist *h)
{
    kv_f("p50_ms", MS(hist_quantile(h, 0.50)), 3);
    kv_f("p99_ms", MS(hist_quantile(h, 0.99)), 3);
    kv_f("p999_ms", MS(hist_quantile(h, 0.999)), 3);
    kv_f("max_ms", MS(h->max), 3);
}

static uint64_t loss_of(const struct counters *c)
{
    return c->expected > c->delivered ? c->expected - c->delivered : 0;
}

static double deliveries_per_s(const struct counters *c)
{
    if (c->last_rx_ns <= c->first_send_ns)
        return 0;
    return (double)c->delivered * 1e9 / (double)(c->last_rx_ns - c->first_send_ns);
}

/* Whether sends went out in bursts: late by more than 1 ms and by more than the time
 * between two sends (a send a little late but alone is harmless). */
static bool bursty(const struct counters *c)
{
    uint64_t lag = hist_quantile(&c->send_lag, 0.99);
    return lag > 1000000 && lag > c->interval_ns;
}

/* The delivery part of a result line, and the human summary after it. */
static void report_delivery(const struct net *n, const struct opts *o, const struct snap *a,
                            const struct snap *b)
{
    const struct counters *c = &n->c;
    uint64_t loss = loss_of(c);
    double self, server;
    kv_u64("sent", c->sent);
    if (o->ack)
        kv_u64("acked", c->acked);
    kv_u64("errors", c->errors);
    kv_u64("expected", c->expected);
    kv_u64("delivered", c->delivered);
    kv_u64("loss", loss);
    kv_f("loss_pct", c->expected ? 100.0 * (double)loss / (double)c->expected : 0, 3);
    kv_u64("late", c->late);
    kv_u64("send_blocked", c->send_blocked);
    if (o->deflate)
        kv_u64("inflated", n->inflated);
    kv_f("deliveries_per_s", deliveries_per_s(c), 0);
    kv_latency(&c->lat);
    kv_f("user_p50_ms", MS(hist_quantile(&c->lat_user, 0.50)), 3);
    kv_f("user_p99_ms", MS(hist_quantile(&c->lat_user, 0.99)), 3);
    kv_f("send_lag_p99_ms", MS(hist_quantile(&c->send_lag, 0.99)), 3);
    kv_u64("send_bursty", bursty(c));
    kv_reads(n);
    kv_cpu(a, b);
    kv_fails(n);
    if (c->first_error[0])
        kv_str("first_error", c->first_error);
    kv_print();
    snap_cpu(a, b, &self, &server);
    printf("# %s %s: %llu sent, %llu/%llu delivered (loss %llu), %.0f deliveries/s, "
           "latency p50 %.3f p99 %.3f p99.9 %.3f max %.3f ms\n",
           o->scenario, o->label, (unsigned long long)c->sent, (unsigned long long)c->delivered,
           (unsigned long long)c->expected, (unsigned long long)loss, deliveries_per_s(c),
           MS(hist_quantile(&c->lat, 0.5)), MS(hist_quantile(&c->lat, 0.99)),
           MS(hist_quantile(&c->lat, 0.999)), MS(c->lat.max));
    printf("# latency to our read() (adds the generator's own delays): p50 %.3f p99 %.3f ms; "
           "sends behind schedule: p99 %.3f max %.3f ms\n",
           MS(hist_quantile(&c->lat_user, 0.5)), MS(hist_quantile(&c->lat_user, 0.99)),
           MS(hist_quantile(&c->send_lag, 0.99)), MS(c->send_lag.max));
    printf("# cpu: generator %.0f%%, server %s%.0f%%\n", self, server < 0 ? "(unknown) " : "",
           server < 0 ? 0 : server);
    if (self >= GEN_SATURATED_PCT)
        printf("warning: generator CPU %.0f%% >= %.0f%%: the generator is saturated, the "
               "server's numbers are a lower bound\n", self, GEN_SATURATED_PCT);
    if (bursty(c))
        printf("warning: the generator fell behind its send schedule (p99 %.1f ms late, "
               "sends due every %.3f ms): messages went out in bursts, which the latency "
               "figures include\n", MS(hist_quantile(&c->send_lag, 0.99)), MS(c->interval_ns));
    if (setup_failures(&n->fails) || n->fails.closed_ready)
        printf("# failures: %llu connections failed to set up, %llu closed during the run "
               "(%s)\n", (unsigned long long)setup_failures(&n->fails),
               (unsigned long long)n->fails.closed_ready, n->fails.first);
    if (c->errors)
        printf("# errors: %llu error replies (first: %s)\n", (unsigned long long)c->errors,
               c->first_error);
}

static int strict_rc(const struct opts *o, const struct net *n, bool deliveries)
{
    if (!o->strict)
        return 0;
    bool bad = setup_failures(&n->fails) || n->fails.closed_ready || n->c.errors ||
               (deliveries && (loss_of(&n->c) || !n->c.delivered));
    if (bad)
        printf("strict: FAILED (loss, errors or failed connections)\n");
    return bad;
}

static void kv_head(const struct opts *o)
{
    kv_begin("result");
    kv_str("scenario", o->scenario);
    kv_str("label", o->label);
}

/* Connects and joins for fanout/chat: returns READY count, 0 after reporting. */
static uint32_t connect_all(struct net *n, const struct opts *o, uint32_t want)
{
    uint64_t t0 = now_ns();
    uint32_t ready = setup_conns(n, o);
    printf("# %s %s: %u/%u connections joined in %.2f s\n", o->scenario, o->label, ready,
           want, (double)(now_ns() - t0) / 1e9);
    if (!ready) {
        kv_head(o);
        kv_u64("ready", 0);
        kv_fails(n);
        kv_print();
        printf("error: no connection could be set up (%s)\n", n->fails.first);
    }
    return ready;
}

/* ---- fanout ---- */

int scen_fanout(const struct opts *o)
{
    struct net n;
    struct snap a, b;
    bool capped;
    uint32_t members = cap_conns(o, o->members, &capped);
    uint32_t slow = o->slow_readers < members ? o->slow_readers : 0;
    if (setup_net(&n, o, members, 1, "bench", false) < 0)
        return 1;
    n.slow_from = members - slow;
    uint32_t ready = connect_all(&n, o, members);
    if (!ready) {
        net_free(&n);
        return 1;
    }
    settle(&n, o->settle);
    for (uint32_t i = members - slow; i < members; i++)
        net_set_slow(&n, &n.conns[i]);
    uint32_t *who = calloc(members, sizeof *who);
    uint32_t pubs = pick_ready(&n, who, o->publishers < members - slow ? o->publishers : 1);
    snap_take(&a, o->pid);
    net_counters_reset(&n, next_seq);
    paced_send(&n, who, pubs, o->rate, o->duration);
    snap_take(&b, o->pid); /* CPU over the sending: a long drain would dilute it */
    drain(&n, o, o->drain);
    kv_head(o);
    kv_u64("members", members);
    kv_u64("ready", ready);
    kv_u64("publishers", pubs);
    kv_f("rate", o->rate, 1);
    kv_f("duration_s", o->duration, 1);
    kv_f("offered_dps", o->rate * ready, 0);
    kv_u64("capped_by_nofile", capped);
    if (slow) {
        uint64_t closed = net_slow_check(&n, 5);
        kv_u64("slow_readers", slow);
        kv_u64("slow_closed", closed);
        printf("# slow readers: %llu of %u closed by the server\n", (unsigned long long)closed,
               slow);
    }
    report_delivery(&n, o, &a, &b);
    int rc = strict_rc(o, &n, true);
    free(who);
    net_free(&n);
    return rc;
}

/* ---- chat ---- */

int scen_chat(const struct opts *o)
{
    struct net n;
    struct snap a, b;
    bool capped;
    uint32_t want = cap_conns(o, o->rooms * o->room_members + o->idle, &capped);
    uint32_t idle = want > o->rooms * o->room_members ? want - o->rooms * o->room_members : 0;
    uint32_t idle_rooms = (idle + o->room_size - 1) / o->room_size;
    if (setup_net(&n, o, want, o->rooms + idle_rooms, "chat", false) < 0)
        return 1;
    if (idle) { /* the idle ones in rooms of their own, after the chat rooms */
        n.split = want - idle;
        n.split_rooms = o->rooms;
        n.split_size = o->room_size;
    }
    uint32_t ready = connect_all(&n, o, want);
    if (!ready) {
        net_free(&n);
        return 1;
    }
    settle(&n, o->settle);
    uint32_t *who = calloc(want, sizeof *who);
    uint32_t nwho = 0; /* the senders: the chat connections, the first want - idle */
    for (uint32_t i = 0; i < want - idle; i++)
        if (n.conns[i].state == C_READY)
            who[nwho++] = i;
    uint32_t idle_ready = ready - nwho;
    double rate = o->msg_rate * nwho;
    snap_take(&a, o->pid);
    net_counters_reset(&n, next_seq);
    paced_send(&n, who, nwho, rate, o->duration);
    snap_take(&b, o->pid); /* CPU over the sending: a long drain would dilute it */
    drain(&n, o, o->drain);
    kv_head(o);
    kv_u64("rooms", o->rooms);
    kv_u64("room_members", o->room_members);
    kv_u64("ready", ready);
    kv_u64("idle", idle);
    kv_u64("idle_ready", idle_ready);
    kv_f("msg_rate", o->msg_rate, 2);
    kv_f("rate", rate, 1);
    kv_f("duration_s", o->duration, 1);
    kv_u64("capped_by_nofile", capped);
    report_delivery(&n, o, &a, &b);
    int rc = strict_rc(o, &n, true);
    free(who);
    net_free(&n);
    return rc;
}

/* ---- idle ---- */

int scen_idle(const struct opts *o)
{
    struct net n;
    bool capped;
    uint32_t want = cap_conns(o, o->conns, &capped);
    uint32_t nrooms = (want + o->room_size - 1) / o->room_size;
    if (setup_net(&n, o, want, nrooms ? nrooms : 1, "idle", false) < 0)
        return 1;
    long rss0 = o->pid > 0 ? proc_rss_kib(o->pid) : -1;
    uint64_t t0 = now_ns();
    uint32_t ready = setup_conns(&n, o);
    double setup_s = (double)(now_ns() - t0) / 1e9;
    settle(&n, o->duration);
    long rss1 = o->pid > 0 ? proc_rss_kib(o->pid) : -1;
    bool known = rss0 >= 0 && rss1 >= 0 && ready;
    double per = known ? (double)(rss1 - rss0) * 1024.0 / ready : 0;
    kv_head(o);
    kv_u64("conns", want);
    kv_u64("ready", ready);
    kv_u64("room_size", o->room_size);
    kv_f("hold_s", o->duration, 1);
    kv_u64("capped_by_nofile", capped);
    if (known) {
        kv_u64("rss_before_kib", (uint64_t)rss0);
        kv_u64("rss_after_kib", (uint64_t)rss1);
        kv_f("bytes_per_conn", per, 0);
        kv_f("kib_per_conn", per / 1024.0, 2);
    } else {
        kv_str("bytes_per_conn", "-");
    }
    kv_f("setup_per_s", setup_s > 0 ? ready / setup_s : 0, 0);
    kv_fails(&n);
    kv_print();
    printf("# idle %s: %u/%u connections held %.1f s; set-up %.0f/s", o->label, ready, want,
           o->duration, setup_s > 0 ? ready / setup_s : 0);
    if (known)
        printf("; server RSS %ld -> %ld KiB: %.0f bytes (%.2f KiB) per connection%s\n", rss0,
               rss1, per, per / 1024.0,
               per < 0 ? " (negative: the server gave memory back; measure on a fresh server)" : "");
    else
        printf("; server pid unknown: no memory figure (give --pid)\n");
    int rc = strict_rc(o, &n, false) || (o->strict && !ready);
    net_free(&n);
    return rc;
}

/* ---- connect ---- */

static void on_connect_ready(struct net *n, struct conn *c)
{
    hist_add(&n->c.lat, now_ns() - c->t0);
    n->c.delivered++; /* completed handshake + hello + join */
    net_drop(n, c);
}

int scen_connect(const struct opts *o)
{
    struct net n;
    struct snap a, b;
    bool capped;
    uint32_t slots = cap_conns(o, o->concurrency, &capped);
    if (setup_net(&n, o, slots, slots, "conn", true) < 0)
        return 1;
    n.on_ready = on_connect_ready;
    net_batching(&n, false); /* handshakes wait on every answer: read at once */
    net_counters_reset(&n, 0);
    snap_take(&a, o->pid);
    uint64_t end = a.wall_ns + (uint64_t)(o->duration * 1e9);
    while (now_ns() < end) {
        for (uint32_t i = 0; i < slots; i++)
            if (n.conns[i].state == C_IDLE || n.conns[i].state == C_DEAD)
                net_start(&n, &n.conns[i], i);
        net_poll(&n, 1000000);
    }
    snap_take(&b, o->pid);
    double wall = (double)(b.wall_ns - a.wall_ns) / 1e9;
    double srv_s = a.server_ns >= 0 && b.server_ns >= 0 ? (double)(b.server_ns - a.server_ns) / 1e9 : -1;
    uint64_t done = n.c.delivered;
    for (uint32_t i = 0; i < slots; i++)
        net_drop(&n, &n.conns[i]); /* in flight at the end: not counted either way */
    kv_head(o);
    kv_u64("concurrency", slots);
    kv_f("duration_s", wall, 2);
    kv_u64("completed", done);
    kv_f("connects_per_s", done / wall, 0);
    if (srv_s > 0)
        kv_f("connects_per_server_cpu_s", done / srv_s, 0);
    kv_latency(&n.c.lat);
    kv_cpu(&a, &b);
    kv_fails(&n);
    kv_print();
    double self, server;
    snap_cpu(&a, &b, &self, &server);
    printf("# connect %s: %llu handshake+hello+join in %.1f s = %.0f/s", o->label,
           (unsigned long long)done, wall, done / wall);
    if (srv_s > 0)
        printf(", %.0f per server CPU-second (server %.0f%%)", done / srv_s, server);
    printf("; p50 %.3f p99 %.3f ms; generator %.0f%%\n", MS(hist_quantile(&n.c.lat, 0.5)),
           MS(hist_quantile(&n.c.lat, 0.99)), self);
    if (self >= GEN_SATURATED_PCT)
        printf("warning: generator CPU %.0f%% >= %.0f%%: the generator is saturated, the "
               "server's numbers are a lower bound\n", self, GEN_SATURATED_PCT);
    int rc = o->strict && (!done || setup_failures(&n.fails));
    if (rc)
        printf("strict: FAILED (no completed connection, or failures)\n");
    net_free(&n);
    return rc;
}

/* ---- ramp ---- */

struct step {
    double rate, dps, p50, p99, gen, srv, other;
    uint64_t loss, errors, closed, blocked;
    bool pass;
    const char *why;
};

static void ramp_step(struct net *n, const struct opts *o, uint32_t *who, double rate,
                      struct step *s)
{
    struct snap a, b;
    uint32_t ready = pick_ready(n, who, n->nconns);
    if (ready < n->nconns) { /* replace connections an earlier step lost */
        setup_conns(n, o);
        settle(n, o->settle);
    }
    uint32_t pubs = pick_ready(n, who, o->publishers);
    uint64_t closed0 = n->fails.closed_ready;
    snap_take(&a, o->pid);
    net_counters_reset(n, next_seq);
    paced_send(n, who, pubs, rate, o->ramp_step);
    snap_take(&b, o->pid);
    drain(n, o, o->drain);
    quiesce(n);
    memset(s, 0, sizeof *s);
    s->rate = rate;
    s->dps = deliveries_per_s(&n->c);
    s->p50 = MS(hist_quantile(&n->c.lat, 0.5));
    s->p99 = MS(hist_quantile(&n->c.lat, 0.99));
    snap_cpu(&a, &b, &s->gen, &s->srv);
    s->other = snap_other(&a, &b);
    s->loss = loss_of(&n->c);
    s->errors = n->c.errors;
    s->closed = n->fails.closed_ready - closed0;
    s->blocked = n->c.send_blocked;
    s->why = s->closed ? "closed" : s->loss ? "loss" : s->errors ? "errors"
           : s->blocked ? "send_blocked" : s->p99 > o->ramp_p99_ms ? "p99" : NULL;
    s->pass = !s->why && n->c.delivered;
    if (!s->pass && !s->why)
        s->why = "nothing delivered";
    kv_begin("step");
    kv_str("label", o->label);
    kv_f("rate", rate, 1);
    kv_f("offered_dps", rate * pick_ready(n, who, n->nconns), 0);
    kv_f("deliveries_per_s", s->dps, 0);
    kv_f("p50_ms", s->p50, 3);
    kv_f("p99_ms", s->p99, 3);
    kv_u64("loss", s->loss);
    kv_u64("errors", s->errors);
    kv_u64("closed", s->closed);
    kv_f("gen_cpu_pct", s->gen, 0);
    kv_f("server_cpu_pct", s->srv, 0);
    kv_f("other_cpu_pct", s->other, 0);
    kv_str("pass", s->pass ? "yes" : s->why);
    kv_print();
}

int scen_ramp(const struct opts *o)
{
    struct net n;
    struct step s, best = { 0 }, fail = { 0 };
    bool capped;
    uint32_t members = cap_conns(o, o->members, &capped);
    if (setup_net(&n, o, members, 1, "bench", false) < 0)
        return 1;
    uint32_t ready = connect_all(&n, o, members);
    if (!ready) {
        net_free(&n);
        return 1;
    }
    settle(&n, o->settle);
    uint32_t *who = calloc(members, sizeof *who);
    uint64_t deadline = now_ns() + 400000000000u; /* the whole ramp: 400 s at most */
    uint32_t steps = 0;
    double rate = o->ramp_start;
    for (; steps < o->ramp_steps && rate <= o->max_rate && now_ns() < deadline; steps++) {
        ramp_step(&n, o, who, rate, &s);
        if (!s.pass && !s.closed && !s.loss && rate <= o->ramp_start * o->ramp_factor) {
            /* The first steps fail only when the machine stalled (the rates are far
             * below any server's ceiling): try once more before calling it a ceiling. */
            ramp_step(&n, o, who, rate, &s);
            steps++;
        }
        if (!s.pass) {
            fail = s;
            break;
        }
        best = s;
        rate *= o->ramp_factor;
    }
    double lo = best.rate, hi = fail.rate;
    for (uint32_t i = 0; fail.why && lo > 0 && i < o->ramp_bisect && now_ns() < deadline; i++) {
        ramp_step(&n, o, who, sqrt(lo * hi), &s);
        steps++;
        if (s.pass) {
            best = s;
            lo = s.rate;
        } else {
            hi = s.rate;
        }
    }
    kv_head(o);
    kv_u64("members", members);
    kv_u64("publishers", o->publishers);
    kv_f("p99_target_ms", o->ramp_p99_ms, 1);
    kv_u64("steps", steps);
    kv_f("best_rate", best.rate, 1);
    kv_f("best_dps", best.dps, 0);
    kv_f("best_p50_ms", best.p50, 3);
    kv_f("best_p99_ms", best.p99, 3);
    kv_f("gen_cpu_pct", best.gen, 0);
    kv_f("server_cpu_pct", best.srv, 0);
    kv_f("other_cpu_pct", best.other, 0);
    kv_u64("gen_saturated", best.gen >= GEN_SATURATED_PCT);
    kv_f("fail_rate", fail.rate, 1);
    kv_str("fail_why", fail.why ? fail.why : "none");
    kv_fails(&n);
    kv_print();
    printf("# ramp %s: highest passing rate %.0f msg/s -> %.0f deliveries/s (p99 %.3f ms); "
           "first failure at %.0f msg/s: %s\n", o->label, best.rate, best.dps, best.p99,
           fail.rate, fail.why ? fail.why : "none (max rate or step limit reached)");
    if (best.gen >= GEN_SATURATED_PCT)
        printf("warning: generator CPU %.0f%% >= %.0f%% at the best step: the ceiling is the "
               "generator's, the server's is at least this\n", best.gen, GEN_SATURATED_PCT);
    int rc = o->strict && best.rate <= 0;
    free(who);
    net_free(&n);
    return rc;
}
