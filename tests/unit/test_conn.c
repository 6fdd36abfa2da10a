/* test_conn.c - what the heartbeat sweep gives back from an idle connection (conn.c):
 * old replies of its id window and its empty send queue. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "conn.h"
#include "session.h"
#include "util.h"

#define FAKE_WSI ((struct lws *)(uintptr_t)0x1)

/* A quiet connection gives its old replies (the join ack) and its empty send queue
 * back at the heartbeat sweep; a repeat within the window still gets the first
 * reply. */
static void test_trim(void **state)
{
    (void)state;
    struct mw_conn *c = mw_conn_new(FAKE_WSI, NULL, "u", "127.0.0.1");
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
        cmocka_unit_test(test_trim),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
