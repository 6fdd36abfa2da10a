/* heartbeat.h - pings for quiet connections and drops for dead ones, spread over time.
 *
 * A timer visits a slice of the connections at a time (mw_conn_walk), as many as make
 * one round over all of them per period (min(interval, timeout) / 4). At each visit a
 * connection silent for interval + timeout is dropped, and an idle one gives back
 * what it no longer needs (mw_conn_trim). Pings go by each connection's own moment,
 * once per interval, set at random when it opened: at that moment a connection that
 * has been quiet for min(interval, timeout) / 2 or more gets a ping. So a quiet
 * connection is pinged once per interval, after at most interval + that much
 * silence, with its pong due well before the drop; and the pings of thousands of
 * connections that went quiet together go out spread over the interval, a few dozen
 * per loop iteration, not all in one (which stalled every other connection for the
 * ~10 us a ping costs, times the connections). */
#ifndef MW_HEARTBEAT_H
#define MW_HEARTBEAT_H

#include <stdint.h>

/* The walk's pace: how many connections to visit at a time so that every one is
 * visited once per period_ms, whatever the moments the timer actually fires at. */
struct mw_heartbeat_pace {
    uint64_t period_ms;
    uint64_t last_ms; /* when the previous slice was taken */
    uint64_t carry;   /* what the previous slices' division left (connection-ms) */
};

/* The connections to visit at now_ms, out of n (0..n). */
uint32_t mw_heartbeat_budget(struct mw_heartbeat_pace *p, uint32_t n, uint64_t now_ms);
/* The time until the next slice for n connections: a period's share of one
 * connection, at least MW_HEARTBEAT_SLICE_MS, at most the period. */
uint64_t mw_heartbeat_slice_ms(const struct mw_heartbeat_pace *p, uint32_t n);
/* The period for an interval and a timeout (ms): min / 4, at least 50 ms. */
uint64_t mw_heartbeat_period_ms(uint64_t interval_ms, uint64_t timeout_ms);
/* The silence after which a connection is pinged at its moment: min / 2. */
uint64_t mw_heartbeat_quiet_ms(uint64_t interval_ms, uint64_t timeout_ms);

#define MW_HEARTBEAT_SLICE_MS 10
/* The payload of our pings: a pong carrying it answers one (the round-trip time). */
#define MW_HEARTBEAT_PING "mw"

/* Starts the timer on the default loop. stop: no more pings nor drops (shutdown);
 * close: closes the timer (the loop can end) and lets go of the ping frame. */
void mw_heartbeat_start(uint64_t interval_ms, uint64_t timeout_ms);
void mw_heartbeat_stop(void);
void mw_heartbeat_close(void);
/* One slice as the timer takes it at now_ms: returns the connections visited. */
uint32_t mw_heartbeat_slice(uint64_t now_ms);
/* Gives a new connection its moment in the interval (after mw_heartbeat_start). */
struct mw_conn;
void mw_heartbeat_attach(struct mw_conn *c);

#endif
