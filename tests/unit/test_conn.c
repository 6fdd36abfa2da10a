/* test_conn.c - the duplicate-id window of a connection (conn.c): lookup states,
 * bounded reply storage and expiry beyond the window. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "conn.h"

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

/* At least the last MW_DEDUP_MIN ids stay; older ones go once past the time window. */
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
    for (struct mw_dedup_entry *e = c->dedup_head; e; e = e->next)
        e->ts_ms -= MW_DEDUP_WINDOW_MS + 1000; /* make them all old */
    mw_conn_dedup_begin(c, "n:new", &reply);      /* triggers the expiry */
    assert_int_equal(c->ndedup, MW_DEDUP_MIN + 1); /* trimmed to the minimum, plus "n:new" */
    assert_int_equal(mw_conn_dedup_begin(c, "n:0", &reply), MW_DEDUP_NEW);   /* forgotten */
    assert_int_equal(mw_conn_dedup_begin(c, "n:265", &reply), MW_DEDUP_DONE); /* recent */
    mw_conn_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_states),
        cmocka_unit_test(test_large_replies_are_not_kept),
        cmocka_unit_test(test_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
