/* conn.h - connections: identity, users, attributes, the bounded send queue, the
 * close state machine, and the work done once per loop iteration before it sleeps.
 *
 * A connection does not know how its bytes travel: a transport (struct mw_transport)
 * owns the I/O object (c->tx: ws.c's socket, a simulated test client, ...) and tells
 * the connection what happened to it. Adding a transport (an HTTP fallback) is writing
 * one of those tables, opening connections with mw_server_open (server.h) and handing
 * complete messages to mw_server_conn_input; nothing else changes. A transport that
 * does not speak WebSocket reads each queued frame's payload with mw_msg_payload and
 * ignores control frames (opcode >= 0x8: pings, pongs, close).
 *
 * Life of a connection (Redis's unlinkClient + freeClientAsync):
 *
 *   OPEN --close/kill/peer close/transport gone--> CLOSING
 *   CLOSING --before-sleep hook: unlink--> UNLINKED
 *   UNLINKED --transport ended (close handshake done, or aborted)--> GONE (freed)
 *
 * - Deciding to close (mw_conn_close, mw_conn_kill, mw_conn_peer_close,
 *   mw_conn_transport_gone) may happen anywhere: inside a transport callback, in a
 *   broadcast loop. It only marks the connection and queues it; nothing is freed.
 * - Unlinking happens in mw_conn_before_sleep, never inside a transport callback:
 *   the connection's waits are cancelled, the app's `disconnect` handler runs (once),
 *   it leaves presence, rooms and typing (mw_conn_on_unlink), and its user, session
 *   and id are detached. From then on nobody sees it; it holds only its transport and
 *   bounded buffers.
 * - The transport then ends: after the close handshake, or at the close deadline
 *   (MW_CLOSE_GRACE_MS after the decision) by an abort, which is issued once and
 *   never retried. A connection aborted and still not gone MW_ZOMBIE_MS later is
 *   counted as a zombie (a transport bug: the count should stay 0).
 *
 * Async code names a connection by its id (mw_conn_find), never by pointer: the id
 * stops resolving when the connection is unlinked. */
#ifndef MW_CONN_H
#define MW_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/map.h"
#include "base/msg.h"
#include "net/sendq.h"

struct mw_route;
struct mw_member;
struct mw_conn;

/* A user id and its connections on this node (several tabs = one user). */
struct mw_user {
    char *id;
    struct mw_conn *conns; /* list through conn->user_next */
    uint32_t nconns;
};

struct mw_attr {
    struct mw_attr *next;
    char *key;
    char *json; /* the value as JSON text */
};

/* Who ended a connection (the close log line). */
enum mw_close_by {
    MW_BY_NONE,
    MW_BY_SERVER, /* mw_conn_close: a close frame with our code */
    MW_BY_PEER,   /* the peer's close frame */
    MW_BY_KILL,   /* mw_conn_kill: dropped without a handshake */
    MW_BY_LOST,   /* the transport ended on its own */
};

enum mw_conn_state {
    MW_CONN_OPEN,     /* serving: can send, join, receive */
    MW_CONN_CLOSING,  /* close decided; unlinked at the next before-sleep hook */
    MW_CONN_UNLINKED, /* out of everything; its transport is ending */
    MW_CONN_GONE,     /* transport ended; freed at the end of the hook */
};

/* How frames reach the peer. Every function gets the connection; c->tx is the
 * transport's own object. None of them is called after the transport reported
 * mw_conn_transport_gone. */
struct mw_transport {
    const char *name; /* for logs: "ws", "test", ... */
    /* Optional: takes each frame at once instead of the send queue. */
    void (*deliver)(struct mw_conn *c, struct mw_msg *m);
    /* Optional: the frame to queue for m, as a new reference (a compressed copy made
     * once per message for every connection alike, or m itself). */
    struct mw_msg *(*frame)(struct mw_conn *c, struct mw_msg *m);
    /* Writes what it can of c->q now (c was pending). Returns -1 when the transport
     * failed: the connection is then killed. Sets c->close_sent once the close frame
     * went out. Optional when deliver is set. */
    int (*flush)(struct mw_conn *c);
    /* The server closes c with c->close_code / c->close_reason: queue the close frame
     * behind the frames already queued (or tell the peer otherwise). */
    void (*close)(struct mw_conn *c);
    /* Ends the transport now, without a handshake. Called once, from the
     * before-sleep hook or the close timer, never from inside the transport's own
     * callbacks. The transport calls mw_conn_transport_gone, possibly before this
     * returns. */
    void (*abort)(struct mw_conn *c);
};

struct mw_conn {
    /* What a send touches, in the first 64 bytes (one cache line where the allocator
     * aligns the struct to 64, as jemalloc does): a broadcast visits each member. */
    struct mw_sendq q;        /* bounded in bytes by limits.send_queue (sendq.h) */
    const struct mw_transport *tp;
    struct mw_conn *pending_next, *pending_prev; /* waiting for a flush */
    uint32_t msgs_out;
    uint8_t state;            /* enum mw_conn_state */
    bool slow_drop;           /* route's slow_consumer: drop */
    bool pending;             /* on the pending list */
    bool want_writable;       /* the transport waits for writability */

    char id[24];              /* decimal, unique on this node */
    void *tx;                 /* the transport's object; NULL once it is gone */
    struct mw_route *route;
    struct mw_user *user;     /* NULL once unlinked */
    struct mw_conn *user_next, *user_prev;
    struct mw_conn *all_next, *all_prev;         /* every connection not yet freed */
    struct mw_conn *closing_next, *closing_prev; /* closing or aborted list (conn.c) */
    struct mw_conn *work_next;                   /* unlink queue, then free list */
    char *remote;             /* peer address */
    char *claims_json;        /* verified token claims, or NULL */
    uint64_t auth_exp_ms;     /* its token expires then (Unix ms; 0: none): closed 4001 */
    uint64_t auth_wait_ms;    /* waits for a first `auth` message until then (0: does not) */

    uint64_t opened_ms;
    uint64_t last_rx_ms;      /* last frame or pong from the peer */
    uint64_t last_ping_ms;
    uint64_t ping_us;         /* when the heartbeat's ping was queued; 0: none awaits */
    uint64_t deadline_ms;     /* closing: aborted then; aborted: a zombie then */

    /* Traffic, for the close log line (msgs_in, msgs_out too). */
    uint64_t bytes_in, bytes_out;

    /* Rooms this connection is in (struct mw_member is room.c's). */
    struct mw_member **rooms;
    uint32_t nrooms, caprooms;

    struct mw_attr *attrs;

    /* The window of recent message ids (session.c): a named session's (?session=),
     * or a private one made on the first id. */
    struct mw_session *session;

    /* Incoming message reassembly (only used for fragmented/partial frames). */
    char *rx;
    size_t rxlen, rxcap;
    bool rx_binary;
    uint32_t msgs_in;         /* traffic, with bytes_in and msgs_out */

    /* Token bucket (limits.rate / limits.burst), and the abuse count of rejected
     * messages (mw_conn_rate). */
    double tokens, abuse;
    uint64_t tokens_ms, abuse_ms;

    bool kill;                /* closing without a handshake: abort once unlinked */
    bool close_sent;          /* our close frame went out: waiting for the peer's */
    bool peer_closed;         /* the peer's close frame came */
    bool aborted;             /* the transport was told to end now */
    bool zombie;              /* aborted and still not gone after MW_ZOMBIE_MS */
    bool queued;              /* on the work queue of the before-sleep hook */
    uint8_t list;             /* which timed list it is on (conn.c) */
    uint8_t closed_by;        /* enum mw_close_by: who decided */
    uint16_t close_code;      /* ours, or the peer's when it closed first */
    char *close_reason;       /* set with close_code; most connections never need it */
    char *gone_user;          /* the user id, kept for the close log once unlinked */
};

/* Settings the conn module reads; set once at start by the server. */
struct mw_conn_limits {
    size_t send_queue;
    double rate, burst;
    uint32_t close_grace_ms; /* MW_CLOSE_GRACE_MS */
    uint32_t zombie_ms;      /* MW_ZOMBIE_MS */
};
extern struct mw_conn_limits mw_conn_limits;

/* Creates an OPEN connection on transport tp (its object tx); user_id NULL =
 * anonymous. */
struct mw_conn *mw_conn_new(const struct mw_transport *tp, void *tx, struct mw_route *route,
                            const char *user_id, const char *remote);
/* Whether it can still be sent to and joined. */
static inline bool mw_conn_is_open(const struct mw_conn *c)
{
    return c->state == MW_CONN_OPEN;
}

/* Called at unlink, before the connection leaves its user: the server runs the
 * app's disconnect handler and leaves rooms, presence and typing. */
extern void (*mw_conn_on_unlink)(struct mw_conn *c);
/* Called when a user gets their first connection on this node (true) or loses the
 * last (false): the broker subscribes to the user's channel meanwhile. */
extern void (*mw_user_on_active)(const char *user, bool active);

/* The OPEN or CLOSING connection with this id (not yet unlinked), or NULL. */
struct mw_conn *mw_conn_find(const char *id);
struct mw_user *mw_user_find(const char *id);
struct mw_conn *mw_conn_first(void); /* every connection not yet freed: c->all_next */
uint32_t mw_conn_count(void);        /* the same, counted (each holds a socket) */
/* A walk over every connection spread over many calls: visits the next `budget`
 * connections (at most all of them, each once) from where the previous call stopped,
 * going on from the first after the last. Connections opened meanwhile are visited
 * in the next round. visit may close or kill c (nothing is freed before the
 * before-sleep hook). Returns how many were visited. */
uint32_t mw_conn_walk(uint32_t budget, void (*visit)(struct mw_conn *c, void *arg), void *arg);

/* Queues a frame (takes a new reference). Returns 0; MW_ECLOSED when the connection
 * is not open; MW_EFULL when the queue bound was hit and the slow-consumer policy
 * closed the connection (close 1008). */
int mw_conn_send(struct mw_conn *c, struct mw_msg *m);
/* Frames and queues a text payload. */
int mw_conn_send_text(struct mw_conn *c, const char *json, size_t len);

/* The server closes c: code and reason go in the close frame after the queued
 * frames. No-op unless OPEN. */
void mw_conn_close(struct mw_conn *c, int code, const char *reason);
/* The server drops c without a handshake (a dead peer, a failed write): unlinked
 * and aborted at the next before-sleep hook. Works in any state before GONE. */
void mw_conn_kill(struct mw_conn *c, const char *why);

/* Transport events. The peer's close frame came with code (0: none) and reason:
 * returns true when ours had gone out already (the handshake is complete: the
 * transport may end now). */
bool mw_conn_peer_close(struct mw_conn *c, int code, const char *reason);
/* The transport ended (the peer went away, or after an abort); c->tx is cleared.
 * c is freed by the next before-sleep hook, after it was unlinked. */
void mw_conn_transport_gone(struct mw_conn *c);
/* Unlinks and frees c now: for a transport that ended on its own, outside any
 * callback and broadcast (a simulated client closing in `moonwire test`). */
void mw_conn_drop(struct mw_conn *c);

/* The work done once per loop iteration before the loop sleeps: unlinks closing
 * connections, flushes pending ones (all queued frames in one write each, asking
 * for writability only when the kernel did not take everything), frees the gone. */
void mw_conn_before_sleep(void);
/* A connection whose transport can take more: flush it at the next hook. */
void mw_conn_want_flush(struct mw_conn *c);
/* The transport wrote n bytes of c's frames (counters). */
void mw_conn_sent(struct mw_conn *c, size_t n);
/* A complete message of n payload bytes came in (counters). */
void mw_conn_received(struct mw_conn *c, size_t n);

/* The rate limit for one incoming message: MW_RATE_OK (a token taken), or
 * MW_RATE_LIMITED when the connection is over limits.rate / limits.burst. Each
 * rejected message adds 1 to an abuse count that drains at `rate` per second; once it
 * passes MW_RATE_ABUSE_BURSTS x burst the answer is MW_RATE_ABUSE (sustained abuse:
 * the client ignores its rate_limited errors). */
enum { MW_RATE_OK, MW_RATE_LIMITED, MW_RATE_ABUSE };
#define MW_RATE_ABUSE_BURSTS 10
int mw_conn_rate(struct mw_conn *c, uint64_t now_ms);

/* Moves a connection that is in no room to another user (a first `auth` message
 * names the user of a connection that waited for it). */
void mw_conn_set_user(struct mw_conn *c, const char *user_id);

/* Attributes: set (json NULL deletes), get (NULL when absent). */
void mw_conn_attr_set(struct mw_conn *c, const char *key, const char *json);
const char *mw_conn_attr_get(const struct mw_conn *c, const char *key);

/* The connection's session (session.h): the named one it was opened with, else a
 * private one made now. */
struct mw_session *mw_conn_session(struct mw_conn *c);
/* Opens the connection in the user's session `sid` (right after mw_conn_new). */
void mw_conn_join_session(struct mw_conn *c, const char *sid);

/* Gives back what an idle connection no longer needs: ids older than the dedup
 * window (their replies) and an empty send queue. The heartbeat sweep calls it for
 * every connection. */
void mw_conn_trim(struct mw_conn *c, uint64_t now_ms);

/* Bytes of queued frames gathered into one write. */
#define MW_FLUSH_CHUNK (256 * 1024)
/* How long a close may take (flush, close frame, the peer's close frame) before the
 * transport is aborted. */
#define MW_CLOSE_GRACE_MS 3000
/* How long an aborted transport may take to end before it counts as a zombie. */
#define MW_ZOMBIE_MS 2000

/* Starts the close timer on the loop (serve and `moonwire test`). */
void mw_conn_init(void);
/* Unlinks and frees what is left whose transport ended, and stops the timer. */
void mw_conn_shutdown(void);

/* Closes counted by who decided and the close code (struct mw_conn_stats). */
#define MW_CLOSE_KINDS 32
struct mw_close_count {
    uint8_t by;    /* enum mw_close_by */
    uint16_t code;
    uint64_t n;
};

/* Counters and gauges for /metrics. */
struct mw_conn_stats {
    uint64_t opened, closed, frames_out, bytes_out, slow_closed, dropped, writes;
    uint64_t close_timeouts, aborts;
    uint32_t open, closing, unlinked, zombies; /* connections by state, now */
    /* Closes by (who, code), in order of first appearance. A code from the peer
     * outside 1000..1015, or any pair once the table is full, counts in
     * closes_other[by] instead, so that no peer can grow the table. */
    struct mw_close_count closes[MW_CLOSE_KINDS];
    uint32_t nclose_kinds;
    uint64_t closes_other[MW_BY_LOST + 1];
};
/* The `by` of the close log line and of the metric: "server", "peer", ... */
extern const char *const mw_close_by_names[MW_BY_LOST + 1];
extern struct mw_conn_stats mw_conn_stats;

#endif
