/* test_session.c - sessions and their windows of recent message ids (session.c):
 * lookup states, bounded reply storage, expiry beyond the window, named sessions that
 * outlive their connections, and the session id rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "net/session.h"
#include "base/util.h"

static void test_states(void **state)
{
    (void)state;
    struct mw_session *s = mw_session_attach("u", NULL);
    const char *reply;
    assert_int_equal(mw_session_dedup_begin(s, "n:1", &reply), MW_DEDUP_NEW);
    assert_int_equal(mw_session_dedup_begin(s, "n:1", &reply), MW_DEDUP_RUNNING);
    mw_session_dedup_end(s, "n:1", "{\"type\":\"ack\",\"id\":1}");
    assert_int_equal(mw_session_dedup_begin(s, "n:1", &reply), MW_DEDUP_DONE);
    assert_string_equal(reply, "{\"type\":\"ack\",\"id\":1}");
    assert_int_equal(mw_session_dedup_begin(s, "s:1", &reply), MW_DEDUP_NEW); /* "1" is not 1 */
    mw_session_detach(s); /* private: freed (LeakSanitizer checks) */
}

/* Replies are kept only while small: a large one (a join ack with history) is not. */
static void test_large_replies_are_not_kept(void **state)
{
    (void)state;
    struct mw_session *s = mw_session_attach("u", NULL);
    static char big[MW_DEDUP_REPLY_MAX + 2];
    memset(big, 'x', sizeof big - 1);
    const char *reply = "?";
    mw_session_dedup_begin(s, "n:1", &reply);
    mw_session_dedup_end(s, "n:1", big);
    assert_int_equal(mw_session_dedup_begin(s, "n:1", &reply), MW_DEDUP_DONE);
    assert_null(reply);
    assert_int_equal(mw_session_reply_bytes(s), 0);

    /* The per-session total is bounded too. */
    static char mid[MW_DEDUP_REPLY_MAX];
    memset(mid, 'y', sizeof mid - 1);
    char key[16];
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof key, "n:%d", 100 + i);
        mw_session_dedup_begin(s, key, &reply);
        mw_session_dedup_end(s, key, mid);
    }
    assert_true(mw_session_reply_bytes(s) <= MW_DEDUP_BYTES);
    assert_int_equal(mw_session_dedup_begin(s, "n:139", &reply), MW_DEDUP_DONE);
    assert_null(reply); /* over the total: kept as done, without its reply */
    mw_session_detach(s);
}

/* Every id of the window stays, however many. Beyond the window the last
 * MW_DEDUP_MIN ids are still known (never run twice) but give back their replies;
 * older ones are forgotten and count as new. */
static void test_window(void **state)
{
    (void)state;
    struct mw_session *s = mw_session_attach("u", NULL);
    const char *reply;
    char key[16];
    for (int i = 0; i < MW_DEDUP_MIN + 10; i++) {
        snprintf(key, sizeof key, "n:%d", i);
        assert_int_equal(mw_session_dedup_begin(s, key, &reply), MW_DEDUP_NEW);
        mw_session_dedup_end(s, key, "{}");
    }
    assert_int_equal(mw_session_ids(s), MW_DEDUP_MIN + 10); /* all within 60 s: all kept */
    assert_int_equal(mw_session_dedup_begin(s, "n:0", &reply), MW_DEDUP_DONE);
    assert_string_equal(reply, "{}");

    mw_session_trim(s, mw_now_ms() + MW_DEDUP_WINDOW_MS + 1000);
    assert_int_equal(mw_session_ids(s), MW_DEDUP_MIN);
    assert_int_equal(mw_session_reply_bytes(s), 0);
    assert_int_equal(mw_session_dedup_begin(s, "n:10", &reply), MW_DEDUP_DONE);
    assert_null(reply); /* known, acked without data */
    assert_int_equal(mw_session_dedup_begin(s, "n:9", &reply), MW_DEDUP_NEW); /* forgotten */
    mw_session_detach(s);
}

/* A named session is shared by the user's connections that name it, and outlives
 * them while its window holds ids: a reconnect finds the ids sent before. */
static void test_named(void **state)
{
    (void)state;
    const char *reply;
    struct mw_session *a = mw_session_attach("ana", "tab1");
    struct mw_session *b = mw_session_attach("ana", "tab1");
    assert_ptr_equal(a, b);
    assert_ptr_not_equal(mw_session_attach("bob", "tab1"), a); /* per user */
    mw_session_detach(mw_session_find("bob", "tab1"));         /* empty: freed at once */
    assert_null(mw_session_find("bob", "tab1"));
    assert_string_equal(mw_session_sid(a), "tab1");

    assert_int_equal(mw_session_dedup_begin(a, "s:m1", &reply), MW_DEDUP_NEW);
    mw_session_detach(a);
    mw_session_detach(b); /* the connection dropped before the reply */
    assert_int_equal(mw_session_stats().detached, 1);
    struct mw_session *kept = mw_session_find("ana", "tab1");
    assert_non_null(kept);
    mw_session_dedup_end(kept, "s:m1", "{\"type\":\"ack\",\"id\":\"m1\"}");

    struct mw_session *again = mw_session_attach("ana", "tab1"); /* the reconnect */
    assert_ptr_equal(again, kept);
    assert_int_equal(mw_session_stats().detached, 0);
    assert_int_equal(mw_session_dedup_begin(again, "s:m1", &reply), MW_DEDUP_DONE);
    assert_string_equal(reply, "{\"type\":\"ack\",\"id\":\"m1\"}");
    mw_session_detach(again);

    mw_session_sweep(mw_now_ms()); /* within the window: kept */
    assert_non_null(mw_session_find("ana", "tab1"));
    mw_session_sweep(mw_now_ms() + MW_DEDUP_WINDOW_MS + 1);
    assert_null(mw_session_find("ana", "tab1"));
    assert_int_equal(mw_session_stats().detached, 0);
    mw_session_free_all();
}

static void test_id_rule(void **state)
{
    (void)state;
    assert_null(mw_session_id_error("a", 1));
    assert_null(mw_session_id_error("Tab_1-x", 7));
    char max[MW_SESSION_ID_MAX + 1];
    memset(max, 'z', sizeof max);
    assert_null(mw_session_id_error(max, MW_SESSION_ID_MAX));
    assert_non_null(mw_session_id_error(max, MW_SESSION_ID_MAX + 1));
    assert_non_null(mw_session_id_error("", 0));
    assert_non_null(mw_session_id_error("a b", 3));
    assert_non_null(mw_session_id_error("a\x1f" "b", 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_states),
        cmocka_unit_test(test_large_replies_are_not_kept),
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_named),
        cmocka_unit_test(test_id_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
