/* test_conn.c - the duplicate-id window of a connection (conn.c): lookup states,
 * bounded reply storage, expiry beyond the window, and the idle trim. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "conn.h"
#include "util.h"

#define FAKE_WSI ((struct lws *)(uintptr_t)0x1)

static void test_states(void **state)
{
    (void)state;
    struct mw_conn *c = mw_conn_new(FAKE_WSI, NULL, "u", "127.0.0.1");
    const char *reply;
    assert_int_equal(mw_conn_dedup_begin(c, "n:1", &reply), MW_DEDUP_NEW);
    assert_int_equal(mw_conn_dedup_begin(c, "n:1", &reply), MW_DEDUP_RUNNING);
    mw_conn_dedup_end(c, "n:1", "{\"type\":\"ack\",\"id\":1}");
    assert_int_equal(mw_conn_dedup_begin(c, "n:1", &reply), MW_DEDUP_DONE);
    assert_string_equal(reply, "{\"type\":\"ack\",\"id\":1}");
    assert_int_equal(mw_conn_dedup_begin(c, "s:1", &reply), MW_DEDUP_NEW); /* "1" is not 1 */
    mw_conn_free(c);
}

/* Replies are kept only while small: a large one (a join ack with history) would
 * otherwise stay with an idle connection for ever. */
static void test_large_replies_are_not_kept(void **state)
{
    (void)state;
    struct mw_conn *c = mw_conn_new(FAKE_WSI, NULL, "u", "127.0.0.1");
    static char big[MW_DEDUP_REPLY_MAX + 2];
    memset(big, 'x', sizeof big - 1);
    const char *reply = "?";
    mw_conn_dedup_begin(c, "n:1", &reply);
    mw_conn_dedup_end(c, "n:1", big);
    assert_int_equal(mw_conn_dedup_begin(c, "n:1", &reply), MW_DEDUP_DONE);
    assert_null(reply);
    assert_int_equal(c->dedup_bytes, 0);

    /* The per-connection total is bounded too. */
    static char mid[MW_DEDUP_REPLY_MAX];
    memset(mid, 'y', sizeof mid - 1);
    char key[16];
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof key, "n:%d", 100 + i);
        mw_conn_dedup_begin(c, key, &reply);
        mw_conn_dedup_end(c, key, mid);
    }
    assert_true(c->dedup_bytes <= MW_DEDUP_BYTES);
    assert_int_equal(mw_conn_dedup_begin(c, "n:139", &reply), MW_DEDUP_DONE);
    assert_null(reply); /* over the total: kept as done, without its reply */
    mw_conn_free(c);
}

/* Every id of the window stays, however many; older ones are forgotten when a new id
 * comes, and then count as new (the handler runs again). */
static void test_window(void **state)
{
    (void)state;
    struct mw_conn *c = mw_conn_new(FAKE_WSI, NULL, "u", "127.0.0.1");
    const char *reply;
    char key[16];
    for (int i = 0; i < MW_DEDUP_MIN + 10; i++) {
        snprintf(key, sizeof key, "n:%d", i);
        mw_conn_dedup_begin(c, key, &reply);
        mw_conn_dedup_end(c, key, "{}");
    }
    assert_int_equal(c->ndedup, MW_DEDUP_MIN + 10); /* all within 60 s: all kept */
    assert_int_equal(mw_conn_dedup_begin(c, "n:0", &reply), MW_DEDUP_DONE);
    assert_string_equal(reply, "{}");
    for (struct mw_dedup_entry *e = c->dedup_head; e; e = e->next)
        if (strcmp(e->key, "n:265") != 0)
            e->ts_ms -= MW_DEDUP_WINDOW_MS + 1000; /* all old but the last */
    mw_conn_dedup_begin(c, "n:new", &reply);      /* triggers the expiry */
    assert_int_equal(c->ndedup, 2);               /* "n:265" and "n:new" */
    assert_int_equal(mw_conn_dedup_begin(c, "n:0", &reply), MW_DEDUP_NEW);   /* forgotten */
    assert_int_equal(mw_conn_dedup_begin(c, "n:265", &reply), MW_DEDUP_DONE); /* recent */
    mw_conn_free(c);
}

/* A quiet connection gives its old ids (the join ack) and its empty send queue back
 * at the heartbeat sweep; a repeat within the window still gets the first reply. */
static void test_trim(void **state)
{
    (void)state;
    struct mw_conn *c = mw_conn_new(FAKE_WSI, NULL, "u", "127.0.0.1");
    const char *reply;
    char key[16];
    mw_conn_dedup_begin(c, "n:0", &reply);
    mw_conn_dedup_end(c, "n:0", "{\"type\":\"ack\",\"id\":0,\"data\":{\"room\":\"r\"}}");
    uint64_t t0 = c->dedup_head->ts_ms;

    mw_conn_trim(c, t0 + MW_DEDUP_WINDOW_MS); /* still within the window */
    assert_int_equal(mw_conn_dedup_begin(c, "n:0", &reply), MW_DEDUP_DONE);
    assert_string_equal(reply, "{\"type\":\"ack\",\"id\":0,\"data\":{\"room\":\"r\"}}");

    mw_conn_trim(c, t0 + MW_DEDUP_WINDOW_MS + 1);
    assert_int_equal(c->ndedup, 0);
    assert_int_equal(c->dedup_bytes, 0);
    assert_null(c->dedup_head);
    assert_int_equal(mw_conn_dedup_begin(c, "n:0", &reply), MW_DEDUP_NEW); /* runs again */

    /* Past MW_DEDUP_LIST ids they are indexed by a map, which goes with the last. */
    for (int i = 1; i <= MW_DEDUP_LIST + 4; i++) {
        snprintf(key, sizeof key, "s:%d", i);
        assert_int_equal(mw_conn_dedup_begin(c, key, &reply), MW_DEDUP_NEW);
        mw_conn_dedup_end(c, key, "{}");
    }
    assert_true(c->dedup.cap > 0);
    assert_int_equal(mw_conn_dedup_begin(c, "s:3", &reply), MW_DEDUP_DONE);
    assert_int_equal(mw_conn_dedup_begin(c, "n:0", &reply), MW_DEDUP_RUNNING);
    mw_conn_trim(c, mw_now_ms() + MW_DEDUP_WINDOW_MS + 1);
    assert_int_equal(c->ndedup, 0);
    assert_int_equal(c->dedup.cap, 0);

    /* The send queue: freed once empty, allocated again by the next send. */
    assert_null(c->q);
    assert_int_equal(mw_conn_send_text(c, "{}", 2), 0);
    assert_non_null(c->q);
    mw_conn_trim(c, mw_now_ms()); /* not empty: kept */
    assert_non_null(c->q);
    assert_int_equal(c->qlen, 1);
    mw_msg_decref(c->q[c->qhead]); /* as if flushed */
    c->qlen = 0;
    c->qbytes = 0;
    mw_conn_trim(c, mw_now_ms());
    assert_null(c->q);
    assert_int_equal(mw_conn_send_text(c, "{}", 2), 0);
    assert_int_equal(c->qlen, 1);
    mw_conn_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_states),
        cmocka_unit_test(test_large_replies_are_not_kept),
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_trim),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
