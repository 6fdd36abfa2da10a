/* test_conn.c - the connection's close state machine (conn.c): OPEN -> CLOSING ->
 * UNLINKED -> GONE through the before-sleep hook, the close deadline, aborts issued
 * once, zombies counted; and what the heartbeat sweep gives back from an idle
 * connection. A recording transport stands in for the network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "net/conn.h"
#include "net/session.h"
#include "base/util.h"

/* What the transport and the unlink hook saw. */
struct rec {
    int flushes, closes, aborts, unlinks;
    bool gone_on_abort; /* the transport ends inside abort (as libwebsockets does) */
    bool fail_flush;
};
static struct rec rec;

static int rec_flush(struct mw_conn *c)
{
    rec.flushes++;
    if (rec.fail_flush)
        return -1;
    bool had_close = c->state != MW_CONN_OPEN && c->q.len;
    mw_sendq_consume(&c->q, c->q.bytes); /* the kernel took everything */
    if (had_close)
        c->close_sent = true;
    return 0;
}

static void rec_close(struct mw_conn *c)
{
    rec.closes++;
    struct mw_msg *m = mw_msg_new(MW_OP_CLOSE, "\x03\xe8", 2, MW_MSG_CONTROL);
    mw_sendq_push(&c->q, m);
    mw_msg_decref(m);
}

static void rec_abort(struct mw_conn *c)
{
    rec.aborts++;
    if (rec.gone_on_abort)
        mw_conn_transport_gone(c);
}

static const struct mw_transport rec_tp = {
    .name = "rec", .flush = rec_flush, .close = rec_close, .abort = rec_abort,
};
static int tx_object;

static void on_unlink(struct mw_conn *c)
{
    rec.unlinks++;
    assert_non_null(c->user); /* the app's disconnect handler still sees its user */
    assert_ptr_equal(mw_conn_find(c->id), c);
}

static int setup(void **state)
{
    (void)state;
    memset(&rec, 0, sizeof rec);
    rec.gone_on_abort = true;
    mw_conn_on_unlink = on_unlink;
    mw_conn_limits.close_grace_ms = 30;
    mw_conn_limits.zombie_ms = 30;
    mw_conn_init();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mw_conn_shutdown();
    uv_run(uv_default_loop(), UV_RUN_NOWAIT); /* the timer's close callback */
    assert_int_equal(mw_conn_count(), 0);
    return 0;
}

static struct mw_conn *open_conn(const char *user)
{
    return mw_conn_new(&rec_tp, &tx_object, NULL, user, "127.0.0.1");
}

static void on_keep(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop (the close timer) for about ms, with the hook after each turn. */
static void run_for(uint64_t ms)
{
    uv_timer_t keep; /* the conn timer is unref'd: this one keeps the loop turning */
    uv_timer_init(uv_default_loop(), &keep);
    uv_timer_start(&keep, on_keep, ms, 0);
    while (uv_run(uv_default_loop(), UV_RUN_ONCE))
        mw_conn_before_sleep();
    mw_conn_before_sleep();
    uv_close((uv_handle_t *)&keep, NULL);
    uv_run(uv_default_loop(), UV_RUN_NOWAIT);
}

/* A close queues the close frame behind the data, unlinks at the hook (once), and
 * ends when the peer answers: no abort, no timeout. */
static void test_close_handshake(void **state)
{
    (void)state;
    struct mw_conn *c = open_conn("ana");
    char id[24];
    snprintf(id, sizeof id, "%s", c->id);
    assert_int_equal(mw_conn_send_text(c, "{}", 2), 0);
    mw_conn_close(c, 1000, "bye");
    assert_int_equal(c->state, MW_CONN_CLOSING);
    assert_false(mw_conn_is_open(c));
    assert_int_equal(mw_conn_send_text(c, "{}", 2), MW_ECLOSED);
    assert_int_equal(rec.closes, 1);
    assert_int_equal(c->q.len, 2); /* the data, then the close frame */
    assert_int_equal(rec.unlinks, 0); /* never inside the caller */
    assert_int_equal(mw_conn_stats.closing, 1);

    mw_conn_before_sleep();
    assert_int_equal(rec.unlinks, 1);
    assert_int_equal(c->state, MW_CONN_UNLINKED);
    assert_null(mw_conn_find(id));
    assert_null(mw_user_find("ana"));
    assert_true(c->close_sent);
    assert_int_equal(mw_conn_stats.unlinked, 1);

    mw_conn_close(c, 1008, "again"); /* no-op: decided already */
    assert_int_equal(rec.closes, 1);
    assert_true(mw_conn_peer_close(c, 1000, "")); /* the handshake is complete */
    mw_conn_transport_gone(c);
    mw_conn_before_sleep();
    assert_int_equal(mw_conn_count(), 0);
    assert_int_equal(rec.unlinks, 1);
    assert_int_equal(rec.aborts, 0);
    assert_int_equal(mw_conn_stats.unlinked, 0);
    assert_int_equal(mw_conn_stats.closing, 0);
}

/* A peer that never answers: the transport is aborted at the deadline, once, and the
 * connection is freed when the transport reports it ended. */
static void test_deadline_aborts_once(void **state)
{
    (void)state;
    uint64_t timeouts = mw_conn_stats.close_timeouts;
    struct mw_conn *c = open_conn("bob");
    mw_conn_close(c, 1008, "slow consumer");
    mw_conn_before_sleep();
    assert_int_equal(rec.aborts, 0);
    run_for(100);
    assert_int_equal(rec.aborts, 1);
    assert_int_equal(mw_conn_stats.close_timeouts, timeouts + 1);
    assert_int_equal(mw_conn_count(), 0);
}

/* A transport that does not end after its abort counts as a zombie, is never aborted
 * twice, and stops counting once it ends. */
static void test_zombie_counted_never_reaborted(void **state)
{
    (void)state;
    rec.gone_on_abort = false;
    struct mw_conn *c = open_conn("zed");
    mw_conn_kill(c, "heartbeat timeout");
    assert_int_equal(rec.unlinks, 0);
    mw_conn_before_sleep();
    assert_int_equal(rec.unlinks, 1);
    assert_int_equal(rec.aborts, 1); /* a kill aborts right after the unlink */
    run_for(150);
    assert_int_equal(rec.aborts, 1);
    assert_int_equal(mw_conn_stats.zombies, 1);
    assert_true(c->zombie);
    mw_conn_transport_gone(c);
    mw_conn_before_sleep();
    assert_int_equal(mw_conn_stats.zombies, 0);
    assert_int_equal(mw_conn_count(), 0);
}

/* Every way to end at once in one iteration: one unlink, one disconnect. */
static void test_every_end_at_once_unlinks_once(void **state)
{
    (void)state;
    struct mw_conn *c = open_conn("eve");
    mw_conn_close(c, 4001, "unauthorized");
    mw_conn_kill(c, "write failed");
    assert_false(mw_conn_peer_close(c, 1000, ""));
    mw_conn_transport_gone(c);
    mw_conn_kill(c, "again");
    mw_conn_before_sleep();
    assert_int_equal(rec.unlinks, 1);
    assert_int_equal(rec.aborts, 0); /* the transport ended by itself */
    assert_int_equal(mw_conn_count(), 0);
}

/* The peer closes first: no close frame of ours is queued by the conn module (the
 * transport answers), and the connection is unlinked at the hook. */
static void test_peer_close_and_lost_transport(void **state)
{
    (void)state;
    struct mw_conn *a = open_conn("p1"), *b = open_conn("p2");
    assert_false(mw_conn_peer_close(a, 1001, "going away"));
    assert_int_equal(a->close_code, 1001);
    mw_conn_transport_gone(b);
    assert_int_equal(b->close_code, 1006);
    assert_int_equal(rec.closes, 0);
    mw_conn_before_sleep();
    assert_int_equal(rec.unlinks, 2);
    assert_int_equal(mw_conn_count(), 1); /* a waits for its transport to end */
    mw_conn_transport_gone(a);
    mw_conn_before_sleep();
    assert_int_equal(mw_conn_count(), 0);
}

/* A failed write kills the connection inside the hook; it is unlinked in the same
 * hook and never flushed again. */
static void test_failed_write_kills(void **state)
{
    (void)state;
    struct mw_conn *c = open_conn("fw");
    rec.fail_flush = true;
    assert_int_equal(mw_conn_send_text(c, "{}", 2), 0);
    mw_conn_before_sleep();
    assert_int_equal(rec.flushes, 1);
    assert_int_equal(rec.unlinks, 1);
    assert_int_equal(rec.aborts, 1);
    assert_int_equal(mw_conn_count(), 0);
}

/* Over the send-queue bound: the slow consumer is closed 1008, its queued frames are
 * dropped and the close frame is all that is left to write. */
static void test_slow_consumer(void **state)
{
    (void)state;
    size_t saved = mw_conn_limits.send_queue;
    mw_conn_limits.send_queue = 100;
    struct mw_conn *c = open_conn("slow");
    struct mw_msg *m = mw_msg_new(MW_OP_TEXT, "0123456789012345678901234567890123456789", 40, 0);
    assert_int_equal(mw_conn_send(c, m), 0);
    assert_int_equal(mw_conn_send(c, m), 0);
    assert_int_equal(mw_conn_send(c, m), MW_EFULL);
    assert_int_equal(c->state, MW_CONN_CLOSING);
    assert_int_equal(c->close_code, 1008);
    assert_int_equal(c->q.len, 1);
    assert_int_equal(mw_sendq_at(&c->q, 0)->data[0] & 0x0f, MW_OP_CLOSE);
    mw_msg_decref(m);
    mw_conn_limits.send_queue = saved;
    mw_conn_kill(c, "test over");
    mw_conn_before_sleep();
    assert_int_equal(mw_conn_count(), 0);
}

/* A quiet connection gives its old replies (the join ack) and its empty send queue
 * back at the heartbeat sweep; a repeat within the window still gets the first
 * reply. */
static void test_trim(void **state)
{
    (void)state;
    struct mw_conn *c = open_conn("u");
    const char *reply;
    assert_null(c->session); /* made on the first id */
    struct mw_session *s = mw_conn_session(c);
    mw_session_dedup_begin(s, "n:0", &reply);
    mw_session_dedup_end(s, "n:0", "{\"type\":\"ack\",\"id\":0,\"data\":{\"room\":\"r\"}}");
    mw_conn_trim(c, mw_now_ms() + MW_DEDUP_WINDOW_MS - 1000); /* still within the window */
    assert_int_equal(mw_session_dedup_begin(s, "n:0", &reply), MW_DEDUP_DONE);
    assert_non_null(reply);
    mw_conn_trim(c, mw_now_ms() + MW_DEDUP_WINDOW_MS + 1000);
    assert_int_equal(mw_session_reply_bytes(s), 0);
    assert_int_equal(mw_session_dedup_begin(s, "n:0", &reply), MW_DEDUP_DONE);
    assert_null(reply);

    /* The send queue: freed once empty, allocated again by the next send. */
    assert_null(c->q.ring);
    assert_int_equal(mw_conn_send_text(c, "{}", 2), 0);
    assert_non_null(c->q.ring);
    mw_conn_trim(c, mw_now_ms()); /* not empty: kept */
    assert_non_null(c->q.ring);
    mw_conn_before_sleep(); /* flushed */
    assert_int_equal(c->q.len, 0);
    mw_conn_trim(c, mw_now_ms());
    assert_null(c->q.ring);
    mw_conn_kill(c, "test over");
    mw_conn_before_sleep();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_close_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_aborts_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zombie_counted_never_reaborted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_end_at_once_unlinks_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_close_and_lost_transport, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_write_kills, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_consumer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
