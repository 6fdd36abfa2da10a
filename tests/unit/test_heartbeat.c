/* test_heartbeat.c - the heartbeat (heartbeat.c) on simulated time: the walk's pace
 * visits every connection once per period whatever the slices' timing; pings of
 * connections that went quiet together are spread over the interval, one per
 * interval each; a peer that answers is kept, one that does not is dropped within
 * interval + timeout plus two periods; a busy connection is not pinged. The walk
 * (mw_conn_walk) survives connections freed under its cursor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "net/conn.h"
#include "net/heartbeat.h"
#include "base/log.h"
#include "server/server.h"
#include "base/util.h"

/* A simulated peer: what it got, and whether it answers pings. */
struct peer {
    struct mw_conn *c;
    bool mute;
    uint32_t pings;
    uint64_t first_ping_ms, killed_ms;
};

static uint64_t sim_now;     /* the simulated clock (ms) */
static uint32_t slice_pings; /* pings sent in the current slice */

static void peer_deliver(struct mw_conn *c, struct mw_msg *m)
{
    struct peer *p = c->tx;
    if ((m->data[0] & 0x0f) != MW_OP_PING)
        return;
    if (!p->pings)
        p->first_ping_ms = sim_now;
    p->pings++;
    slice_pings++;
    if (!p->mute)
        c->last_rx_ms = sim_now; /* the pong, at once */
}

static void peer_abort(struct mw_conn *c)
{
    struct peer *p = c->tx;
    p->killed_ms = sim_now;
    p->c = NULL;
    mw_conn_transport_gone(c);
}

static const struct mw_transport peer_tp = {
    .name = "peer", .deliver = peer_deliver, .abort = peer_abort,
};

static struct peer *peers;
static uint32_t npeers;

/* n connections opened now, with their moments given by the heartbeat. */
static void open_peers(uint32_t n)
{
    npeers = n;
    peers = calloc(n, sizeof *peers);
    for (uint32_t i = 0; i < n; i++) {
        char user[32];
        snprintf(user, sizeof user, "u%u", i);
        peers[i].c = mw_conn_new(&peer_tp, &peers[i], NULL, user, "127.0.0.1");
        mw_heartbeat_attach(peers[i].c);
    }
}

static int setup(void **state)
{
    (void)state;
    mw_conn_on_unlink = NULL;
    mw_conn_init();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (uint32_t i = 0; i < npeers; i++)
        if (peers[i].c)
            mw_conn_kill(peers[i].c, "test over");
    mw_conn_before_sleep();
    assert_int_equal(mw_conn_count(), 0);
    free(peers);
    peers = NULL;
    npeers = 0;
    mw_heartbeat_close();
    mw_conn_shutdown();
    uv_run(uv_default_loop(), UV_RUN_NOWAIT); /* the timers' close callbacks */
    return 0;
}

/* Runs the heartbeat from the simulated clock's now for ms, in slices of step ms,
 * with the before-sleep hook after each; returns the most pings in one slice. */
static uint32_t run_for(uint64_t ms, uint64_t step)
{
    uint32_t most = 0;
    for (uint64_t end = sim_now + ms; sim_now < end;) {
        sim_now += step;
        slice_pings = 0;
        mw_heartbeat_slice(sim_now);
        mw_conn_before_sleep();
        if (slice_pings > most)
            most = slice_pings;
    }
    return most;
}

/* Slices at uneven moments still add up to one visit per connection per period. */
static void test_pace_visits_each_once_per_period(void **state)
{
    (void)state;
    struct mw_heartbeat_pace p = { 1000, 0, 0 };
    static const uint64_t steps[] = { 7, 13, 3, 29, 1, 0, 50, 11 };
    uint64_t t = 0, total = 0;
    for (int i = 0; t < 3000; i = (i + 1) % 8) {
        uint64_t dt = steps[i];
        if (t + dt > 3000)
            dt = 3000 - t;
        t += dt;
        uint32_t b = mw_heartbeat_budget(&p, 1000, t);
        assert_true(b <= dt + 1); /* 1000 connections per 1000 ms: one per ms */
        total += b;
    }
    assert_int_equal(total, 3000); /* three rounds, to the connection */
    /* A loop held up longer than a period takes one whole round, not more. */
    assert_int_equal(mw_heartbeat_budget(&p, 1000, t + 5000), 1000);
    /* Slices: a period's share of one connection, within [10 ms, period]. */
    assert_int_equal(mw_heartbeat_slice_ms(&p, 0), 1000);
    assert_int_equal(mw_heartbeat_slice_ms(&p, 4), 250);
    assert_int_equal(mw_heartbeat_slice_ms(&p, 100000), MW_HEARTBEAT_SLICE_MS);
    assert_int_equal(mw_heartbeat_period_ms(25000, 10000), 2500);
    assert_int_equal(mw_heartbeat_period_ms(100, 100), 50);
    assert_int_equal(mw_heartbeat_quiet_ms(25000, 10000), 5000);
}

static int visits[8];
static void count_visit(struct mw_conn *c, void *arg)
{
    (void)arg;
    visits[((struct peer *)c->tx - peers)]++;
}

/* The walk goes on where it stopped, wraps around, never visits anyone twice in one
 * call, and survives the connection under its cursor being freed. */
static void test_walk_resumes_and_survives_frees(void **state)
{
    (void)state;
    open_peers(8);
    assert_int_equal(mw_conn_walk(3, count_visit, NULL), 3);
    assert_int_equal(mw_conn_walk(3, count_visit, NULL), 3);
    assert_int_equal(mw_conn_walk(2, count_visit, NULL), 2);
    for (int i = 0; i < 8; i++)
        assert_int_equal(visits[i], 1); /* one round in three calls */
    memset(visits, 0, sizeof visits);
    assert_int_equal(mw_conn_walk(100, count_visit, NULL), 8); /* at most everyone */
    for (int i = 0; i < 8; i++)
        assert_int_equal(visits[i], 1);

    /* Free the connection the walk would visit next, and its neighbour. */
    memset(visits, 0, sizeof visits);
    mw_conn_walk(3, count_visit, NULL);
    int gone = 0;
    for (int i = 0; i < 8; i++) {
        if (!visits[i] && peers[i].c && gone < 2) {
            mw_conn_kill(peers[i].c, "test");
            gone++;
        }
    }
    mw_conn_before_sleep(); /* unlinked, aborted, freed */
    assert_int_equal(mw_conn_count(), 6);
    memset(visits, 0, sizeof visits);
    assert_int_equal(mw_conn_walk(6, count_visit, NULL), 6);
    for (int i = 0; i < 8; i++)
        assert_int_equal(visits[i], peers[i].c ? 1 : 0);
}

/* 2000 connections opened at once and quiet: each is pinged once per interval, and
 * the pings go out spread over it (about 20 per 10 ms slice), not in one slice. Every
 * peer answers, so nobody is dropped. */
static void test_pings_spread_over_the_interval(void **state)
{
    (void)state;
    mw_heartbeat_start(1000, 1000); /* period 250 ms, quiet after 500 ms */
    sim_now = mw_now_ms();
    open_peers(2000);
    uint64_t t0 = sim_now;
    uint64_t timeouts = mw_srv.heartbeat_timeouts;
    run_for(1500, 10); /* everyone's first ping */
    uint32_t most = run_for(5000, 10);
    /* 2000 per 1000 ms is 20 per slice on average; all in one slice was the stall. */
    assert_true(most <= 60);
    for (uint32_t i = 0; i < npeers; i++) {
        assert_non_null(peers[i].c);
        assert_true(peers[i].pings >= 5 && peers[i].pings <= 7); /* 6.5 s, one per second */
        /* A quiet connection's first ping: after interval + quiet + a period at most. */
        assert_true(peers[i].first_ping_ms - t0 <= 1000 + 500 + 250 + 10);
    }
    assert_int_equal(mw_srv.heartbeat_timeouts, timeouts);
}

/* A peer that answers nothing is dropped once silent for interval + timeout, within
 * two periods after that; those that answer stay. */
static void test_dead_peers_dropped_in_time(void **state)
{
    (void)state;
    mw_heartbeat_start(1000, 600); /* period 150 ms, quiet after 300 ms */
    sim_now = mw_now_ms();
    open_peers(300);
    for (uint32_t i = 0; i < npeers; i += 3)
        peers[i].mute = true;
    uint64_t t0 = sim_now;
    uint64_t timeouts = mw_srv.heartbeat_timeouts;
    run_for(4000, 10);
    for (uint32_t i = 0; i < npeers; i++) {
        if (peers[i].mute) {
            assert_null(peers[i].c);
            assert_true(peers[i].pings >= 1); /* it had its chance */
            uint64_t silent = peers[i].killed_ms - t0;
            assert_true(silent >= 1600);
            /* A period late, a little more while a third of the connections leave
             * (the round slows with the count); never the old sweep's min / 2. */
            assert_true(silent <= 1600 + 2 * 150);
        } else {
            assert_non_null(peers[i].c);
            assert_int_equal(peers[i].killed_ms, 0);
        }
    }
    assert_int_equal(mw_srv.heartbeat_timeouts, timeouts + 100);
}

/* A connection that keeps talking is never pinged; one that stops is. */
static void test_busy_connection_not_pinged(void **state)
{
    (void)state;
    mw_heartbeat_start(1000, 1000);
    sim_now = mw_now_ms();
    open_peers(2);
    for (int i = 0; i < 40; i++) { /* 4 s of a message every 100 ms */
        peers[0].c->last_rx_ms = sim_now;
        run_for(100, 10);
    }
    assert_int_equal(peers[0].pings, 0);
    assert_true(peers[1].pings >= 3);
    run_for(2000, 10);
    assert_true(peers[0].pings >= 1);
    assert_non_null(peers[0].c);
}

int main(void)
{
    mw_log_set(MW_LOG_WARN, 0); /* a line per closed connection otherwise */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pace_visits_each_once_per_period),
        cmocka_unit_test_setup_teardown(test_walk_resumes_and_survives_frees, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pings_spread_over_the_interval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_peers_dropped_in_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_connection_not_pinged, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
