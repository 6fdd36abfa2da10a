/* net.h - the generator's connections: one epoll loop, non-blocking sockets, the
 * upgrade, hello and join of each client, and the frames that come back.
 *
 * A connection goes CONNECTING -> UPGRADING -> HELLO -> JOINING -> READY; it ends
 * DEAD, with the stage it failed in recorded. Scenarios drive it: they start
 * connections, run net_poll() in their own loop, send, and read the counters. */
#ifndef MWB_NET_H
#define MWB_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#include "bytes.h"
#include "dscan.h"
#include "hist.h"

enum conn_state { C_IDLE, C_CONNECTING, C_UPGRADING, C_HELLO, C_JOINING, C_READY, C_DEAD };

struct conn {
    int fd;
    uint32_t idx;
    uint32_t room;          /* index into net.rooms */
    uint8_t state;
    uint8_t failed_in;      /* the state it died in */
    bool want_out;          /* EPOLLOUT registered */
    bool corked;            /* in net.pending */
    bool slow;              /* a slow reader: not read, not counted (net_set_slow) */
    uint16_t close_code;    /* from the server's close frame */
    uint64_t t0;            /* when its set-up started (ns) */
    char accept[29];
    struct bytes in, out, frag;
};

/* Failure counters, by stage. */
struct fails {
    uint64_t connect, upgrade, hello, join, closed_ready; /* closed_ready: dropped once READY */
    uint64_t timeout;   /* set-up did not finish in time */
    uint64_t by_code[8]; /* server close codes, see net_close_code_name */
    char first[160];    /* the first failure, in words */
};

/* Counters of the measured part of a run. */
struct counters {
    uint64_t sent, acked, errors, expected, delivered, late, other;
    uint64_t send_blocked;  /* sends skipped: the server did not read our earlier bytes */
    uint64_t first_send_ns, last_send_ns, last_rx_ns;
    uint64_t seq_lo;        /* deliveries of seq below this belong to an earlier step */
    uint64_t interval_ns;   /* between two sends at the paced rate */
    uint64_t reads, read_bytes; /* read() calls that returned bytes, and the bytes */
    uint64_t batch_max_ns;  /* the longest read interval in force (latency reads up to it high) */
    char first_error[96];
    struct hist lat;        /* send -> arrival at our socket (kernel timestamp) */
    struct hist lat_user;   /* send -> our read() returned: includes our own delays */
    struct hist send_lag;   /* how late each send was against its schedule */
};

struct net_opts {
    struct in_addr host;
    int port;
    int port2;              /* when set, odd-numbered connections go to this node */
    const char *path;
    int sources;            /* source addresses 127.0.0.1 .. 127.0.0.<sources> */
    bool ack;               /* send messages with an id (the server acks each) */
    bool linger0;           /* close with RST: no TIME_WAIT on our side */
    bool deflate;           /* offer permessage-deflate, inflate compressed frames */
    uint64_t batch_ns;      /* read at most every this long (0: as soon as bytes arrive); with
                             * batch_auto, the longest interval adapt may choose */
    bool batch_auto;        /* adapt the read interval to our CPU use */
    bool check_parse;       /* check every event read in place against the JSON walk */
};

struct net {
    struct net_opts o;
    int ep;
    struct conn *conns;
    uint32_t nconns;
    char (*rooms)[40];      /* room names */
    uint32_t *room_ready;   /* READY members per room */
    uint32_t nrooms;
    uint32_t in_setup;      /* connections between CONNECTING and READY */
    uint32_t split, split_rooms, split_size; /* see room_of in scen.c (0: no split) */
    uint64_t ready_total;   /* connections that reached READY */
    struct fails fails;
    struct counters c;
    /* Called when a connection becomes READY and when a READY one dies. */
    void (*on_ready)(struct net *n, struct conn *c);
    void (*on_dead)(struct net *n, struct conn *c);
    uint64_t user_serial;   /* makes user names unique across reconnects */
    uint64_t frames_in;     /* text messages received, ever */
    uint64_t last_poll_ns;
    uint32_t slow_from;     /* connections from this index get a tiny receive buffer */
    uint64_t slow_closed;   /* slow readers the server closed */
    uint64_t rx_ns;         /* kernel arrival time of the bytes being handled, 0 unknown */
    uint64_t inflated;      /* compressed messages received */
    struct dscan ds;        /* where chat:message events keep t and seq */
    int64_t fast_t, fast_seq; /* the event read in place, for --check-parse; -1 none */
    uint64_t batch_ns;      /* the read interval now in force */
    uint64_t next_read_ns;  /* when the next epoll_wait may run (batching) */
    uint64_t win_wall_ns;   /* the window of adapt_batch: its start, and our CPU then */
    int64_t win_cpu_ns;
    bool corked;            /* writes wait in conn.out until net_uncork */
    bool batch_off;         /* net_batching(false): auto batching held at 0 */
    uint32_t *pending;      /* connections with writes waiting while corked */
    uint32_t npending;
};

/* Sets up the table of nconns connections and nrooms room names (name i is
 * prefix or prefix-i when there are several). Returns -1 on failure. */
int net_init(struct net *n, const struct net_opts *o, uint32_t nconns, uint32_t nrooms,
             const char *room_prefix);
void net_free(struct net *n);
/* Starts connection c (IDLE or DEAD) towards READY in room `room`. */
void net_start(struct net *n, struct conn *c, uint32_t room);
/* Closes c now (no close handshake) and leaves it DEAD without counting a failure. */
void net_drop(struct net *n, struct conn *c);
/* Waits up to timeout_ns for events and handles them. */
void net_poll(struct net *n, int64_t timeout_ns);
/* Sends one chat:message with data {t, seq, pad} in c's room. Returns false when
 * skipped (the connection's unsent bytes are over the bound). */
bool net_send_chat(struct net *n, struct conn *c, uint64_t seq, const char *pad);
/* Between net_cork and net_uncork writes only queue; net_uncork makes one write per
 * connection with everything queued (several messages due at once, one syscall). */
void net_cork(struct net *n);
void net_uncork(struct net *n);
/* Makes READY connection c a slow reader: it stops reading (its bytes pile up in the
 * server) and leaves the expected counts. */
void net_set_slow(struct net *n, struct conn *c);
/* Reads every slow reader again for up to `secs` and returns how many the server had
 * closed (close frame or end of stream). */
uint64_t net_slow_check(struct net *n, double secs);
/* Lets the automatic read interval adapt (on) or holds it at 0 (off: set-ups and
 * handshakes, which wait on every answer); either way it starts again from 0. A fixed
 * --read-batch-us is not affected. */
void net_batching(struct net *n, bool on);
/* Resets the measured counters; deliveries of seq < seq_lo count as late. */
void net_counters_reset(struct net *n, uint64_t seq_lo);
/* The name of close-code slot i of fails.by_code, and the slot of a code. */
const char *net_close_code_name(int i);

#endif
