/* redis_link.h - one connection to one Redis server, kept up: resolved with
 * uv_getaddrinfo, connected and handshaken (AUTH, SELECT, PING) asynchronously,
 * retried with exponential backoff and jitter, watched while up.
 *
 * A command link is a hiredis async context (redis_cmd.c sends on l->ac). A
 * subscriber link is no hiredis async context: hiredis 0.14 hands a push only to a
 * channel it saw subscribed with SUBSCRIBE, so it would drop every "smessage" of
 * sharded pub/sub (and assert on it in a context never subscribed). It is a uv_tcp_t
 * stream whose bytes hiredis's reply reader parses; its owner appends commands with
 * mw__redis_link_append and gets every reply through ops->push.
 *
 * The watchdog: while a link is up it sends a PING every timeout/2 and takes the
 * link down when one stays unanswered longer than the timeout (a Redis that hangs
 * keeps its TCP connection; only a reply deadline notices). It judges only after the
 * loop polled once more past the deadline, so that a loop that was busy does not
 * blame Redis for a reply waiting in the socket. Sockets have SO_KEEPALIVE too.
 *
 * Memory: a link lives inside its owner (redis_topo.c's node); after
 * mw__redis_link_stop, ops->released fires once nothing (timer, name lookup, hiredis
 * context) can call back any more, and only then may the owner free it. */
#ifndef MW_REDIS_LINK_H
#define MW_REDIS_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct redisAsyncContext;
struct redisReply;
struct mw__redis_link;
struct mw__redis_stream;

struct mw__redis_link_ops {
    /* Connected and handshaken. */
    void (*up)(struct mw__redis_link *l);
    /* The connection is gone (lost, failed, timed out, or closed because unwanted);
     * was_up: it had been up. A wanted link is retried after this returns. */
    void (*down)(struct mw__redis_link *l, bool was_up);
    /* Subscriber links: a reply after the handshake (not the watchdog's PONGs). */
    void (*push)(struct mw__redis_link *l, struct redisReply *r);
    /* After mw__redis_link_stop: nothing will call back any more. */
    void (*released)(struct mw__redis_link *l);
};

struct mw__redis_link {
    const struct mw__redis_link_ops *ops;
    void *owner;
    const char *host, *addr; /* the owner's strings; addr is host:port, for logs */
    int port;
    const char *name;        /* "command" or "subscriber" */
    bool subscriber;
    bool wanted;             /* keep it connected; else close it and do not retry */
    bool up;
    bool stopped;
    struct redisAsyncContext *ac;  /* the command link's connection */
    struct mw__redis_stream *st;   /* the subscriber link's */
    uint32_t attempt;        /* consecutive failures, for the backoff */
    uv_timer_t retry;        /* the backoff, or the deadline of a connect or close */
    uv_timer_t watch;        /* the watchdog, while up */
    uint64_t ping_sent_ms;   /* the watchdog's PING in flight, or 0 */
    uint64_t ping_last_ms;
    bool suspect;            /* its PING was overdue at the last look */
    uv_getaddrinfo_t resolve;
    bool resolving;
    int holds;               /* timers, lookups and contexts that may still call back */
};

struct mw__redis_link_params {
    const char *password; /* NULL: no AUTH; kept by the caller */
    int db;               /* SELECT on command links when not 0 */
    uint64_t timeout_ms;  /* reply deadline: the watchdog's, and connect + handshake */
    uint64_t backoff_cap_ms;
};
/* Settings for every link (once, before the first link connects). */
void mw__redis_link_setup(const struct mw__redis_link_params *p);

void mw__redis_link_init(struct mw__redis_link *l, const struct mw__redis_link_ops *ops,
                         void *owner, const char *host, int port, const char *addr,
                         const char *name, bool subscriber);
/* Connects it (and keeps it connected), or closes it without retrying. A command
 * link that was up still gets the replies of what it sent, within the timeout. */
void mw__redis_link_want(struct mw__redis_link *l, bool want);
/* Subscriber links: the owner found the connection broken (an unexpected reply):
 * down, then retried. */
void mw__redis_link_fail(struct mw__redis_link *l, const char *why);
/* For good: ops->released follows (never inside this call). */
void mw__redis_link_stop(struct mw__redis_link *l);

/* Subscriber links: appends a command (not sent before mw__redis_link_flush).
 * 0, or -1 when the link has no connection. */
int mw__redis_link_append(struct mw__redis_link *l, int argc, const char **argv,
                          const size_t *lens);
void mw__redis_link_flush(struct mw__redis_link *l);

/* Appends a command in RESP to b (lens NULL: C strings). */
struct mw_buf;
void mw__redis_resp_append(struct mw_buf *b, int argc, const char **argv, const size_t *lens);

#endif
