/* conn.h - WebSocket connections: identity, users, attributes, the bounded send
 * queue and the flush of pending connections once per loop iteration.
 *
 * Async code names a connection by its id (mw_conn_find), never by pointer: a
 * connection is freed when libwebsockets reports it closed. */
#ifndef MW_CONN_H
#define MW_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "map.h"
#include "msg.h"

struct lws;
struct mw_route;
struct mw_member;

/* A user id and its connections on this node (several tabs = one user). */
struct mw_user {
    char *id;
    struct mw_conn *conns; /* list through conn->user_next */
    uint32_t nconns;
};

/* A client message id seen recently, and the reply it got (SPEC section 4: a repeated
 * id within the window is answered again without running the handler twice). */
struct mw_dedup_entry {
    struct mw_dedup_entry *next; /* oldest first */
    char *reply;      /* the ack/error frame text, when kept */
    uint64_t ts_ms;
    bool done;
    char key[];       /* "s:<string id>" or "n:<integer id>"; one allocation with it */
};

/* The window: every id of the last MW_DEDUP_WINDOW_MS, however many (at least
 * MW_DEDUP_MIN fit: ids are never dropped by count; limits.rate bounds them). Older
 * ones are forgotten when the connection sends a new id and by the heartbeat sweep
 * (mw_conn_trim), so a quiet connection does not keep its join ack for ever. Replies
 * are kept up to MW_DEDUP_REPLY_MAX bytes each and MW_DEDUP_BYTES per connection; a
 * repeat of an id whose reply was not kept is acked without data (still never run
 * twice). Up to MW_DEDUP_LIST ids are looked up in the list; the map exists only
 * beyond that (an 8-slot map costs more than the entries of an idle connection). */
#define MW_DEDUP_MIN 256
#define MW_DEDUP_WINDOW_MS 60000
#define MW_DEDUP_REPLY_MAX 1024
#define MW_DEDUP_BYTES (16 * 1024)
#define MW_DEDUP_LIST 8

struct mw_attr {
    struct mw_attr *next;
    char *key;
    char *json; /* the value as JSON text */
};

struct mw_conn;
/* Where a virtual connection's frames go (moonwire test): msg, or NULL with a close
 * code and reason when the server closes it. */
typedef void (*mw_conn_sink_fn)(struct mw_conn *c, const struct mw_msg *msg, int close_code,
                                const char *reason);

struct mw_conn {
    char id[24];              /* decimal, unique on this node */
    struct lws *wsi;          /* NULL once libwebsockets closed it (and for virtual ones) */
    mw_conn_sink_fn sink;     /* set for virtual connections, which have no socket */
    void *sink_ud;
    struct mw_route *route;
    struct mw_user *user;
    struct mw_conn *user_next, *user_prev;
    struct mw_conn *all_next, *all_prev;         /* every open connection */
    struct mw_conn *pending_next, *pending_prev; /* waiting for a flush */
    char *remote;             /* peer address */
    char *claims_json;        /* verified token claims, or NULL */

    uint64_t last_rx_ms;      /* last frame or pong from the peer */
    uint64_t last_ping_ms;
    uint64_t close_deadline_ms; /* closing: dropped if still open then */

    /* Send queue: a ring of frame references, bounded in bytes by limits.send_queue;
     * allocated on the first send, freed by mw_conn_trim once empty. */
    struct mw_msg **q;
    uint32_t qhead, qlen, qcap;
    size_t qbytes;

    /* Rooms this connection is in (struct mw_member is room.c's). */
    struct mw_member **rooms;
    uint32_t nrooms, caprooms;

    struct mw_attr *attrs;

    struct mw_map dedup;          /* key -> entry, only beyond MW_DEDUP_LIST entries */
    struct mw_dedup_entry *dedup_head, *dedup_tail;
    uint32_t ndedup;
    uint32_t dedup_bytes;         /* kept reply bytes */

    /* Incoming message reassembly (only used for fragmented/partial frames). */
    char *rx;
    size_t rxlen, rxcap;
    bool rx_binary;

    /* Token bucket (limits.rate / limits.burst). */
    double tokens;
    uint64_t tokens_ms;
    uint32_t rejected;        /* consecutive rate-limited messages */

    bool slow_drop;           /* route's slow_consumer: drop */
    bool pending;             /* on the pending list */
    bool want_writable;       /* asked lws for a WRITEABLE callback */
    bool closing;             /* close requested: stop queueing */
    bool close_started;       /* close frame handed to libwebsockets */
    uint16_t close_code;
    char *close_reason;       /* set by mw_conn_close: most connections never need it */
};

/* Settings the conn module reads; set once at start by the server. */
struct mw_conn_limits {
    size_t send_queue;
    double rate, burst;
};
extern struct mw_conn_limits mw_conn_limits;

/* Creates a connection for a freshly upgraded wsi; user_id NULL = anonymous. */
struct mw_conn *mw_conn_new(struct lws *wsi, struct mw_route *route, const char *user_id,
                            const char *remote);
/* A connection without a socket: every frame sent to it goes to sink at once. */
struct mw_conn *mw_conn_new_virtual(struct mw_route *route, const char *user_id,
                                    mw_conn_sink_fn sink, void *ud);
/* Whether it can still be sent to and joined (not closing, not closed). */
static inline bool mw_conn_is_open(const struct mw_conn *c)
{
    return (c->wsi || c->sink) && !c->closing;
}
/* Frees it after the caller left its rooms; drops queued frames. */
void mw_conn_free(struct mw_conn *c);

/* Called when a user gets their first connection on this node (true) or loses the
 * last (false): the broker subscribes to the user's channel meanwhile. */
extern void (*mw_user_on_active)(const char *user, bool active);

struct mw_conn *mw_conn_find(const char *id);
struct mw_user *mw_user_find(const char *id);
struct mw_conn *mw_conn_first(void); /* iterate with c->all_next */
uint32_t mw_conn_count(void);

/* Queues a frame (takes a new reference). Returns 0; MW_ECLOSED when the connection
 * is closing; MW_EFULL when the queue bound was hit and the slow-consumer policy
 * closed the connection (close 1008). */
int mw_conn_send(struct mw_conn *c, struct mw_msg *m);
/* Frames and queues a text payload. */
int mw_conn_send_text(struct mw_conn *c, const char *json, size_t len);

/* Asks for a close with code and reason after queued frames are written. */
void mw_conn_close(struct mw_conn *c, int code, const char *reason);
/* Drops the connection now, without a close handshake (dead peer). The close callback
 * runs before this returns and frees c: call it only outside libwebsockets callbacks
 * (timers, the flush hook), and do not touch c afterwards. */
void mw_conn_kill(struct mw_conn *c);

/* Takes one token; false when the connection is over its rate. */
bool mw_conn_take_token(struct mw_conn *c, uint64_t now_ms);

/* Attributes: set (json NULL deletes), get (NULL when absent). */
void mw_conn_attr_set(struct mw_conn *c, const char *key, const char *json);
const char *mw_conn_attr_get(const struct mw_conn *c, const char *key);

enum { MW_DEDUP_NEW = 0, MW_DEDUP_RUNNING = 1, MW_DEDUP_DONE = 2 };
/* Looks a client message id up. NEW: recorded as running, go ahead. RUNNING: the first
 * one is still being handled (its reply will come). DONE: *reply is what it got, or
 * NULL when that reply was too large to keep. */
int mw_conn_dedup_begin(struct mw_conn *c, const char *key, const char **reply);
/* Records the reply frame text of a handled id. */
void mw_conn_dedup_end(struct mw_conn *c, const char *key, const char *reply);

/* Gives back what an idle connection no longer needs: ids older than the dedup
 * window (with their replies) and an empty send queue. The heartbeat sweep calls it
 * for every connection. */
void mw_conn_trim(struct mw_conn *c, uint64_t now_ms);

/* Flushes every pending connection: all queued frames in one write each; asks for
 * writability only when the kernel did not take everything. Called once per loop
 * iteration (before the loop sleeps). */
void mw_conn_flush_pending(void);
/* The WRITEABLE callback. Returns -1 when lws should close the connection now. */
int mw_conn_on_writable(struct mw_conn *c);

/* Bytes of queued frames gathered into one write. */
#define MW_FLUSH_CHUNK (256 * 1024)

/* How long a requested close may take (flush, close frame, acknowledgement) before
 * the connection is dropped. */
#define MW_CLOSE_GRACE_MS 3000

/* Stops the close-deadline timer (shutdown). */
void mw_conn_shutdown(void);

/* Counters for metrics. */
struct mw_conn_stats {
    uint64_t opened, closed, frames_out, bytes_out, slow_closed, dropped, writes;
};
extern struct mw_conn_stats mw_conn_stats;

#endif
