/* test_broker_wire.c - the node-to-node payload codec (broker_wire.c): round trips,
 * ids holding any byte, and every way a payload can be malformed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "rooms/broker_wire.h"

static struct mw_buf encode(char kind, const char *node, unsigned flags, const char *except,
                            const char *body)
{
    struct mw_buf b = { 0 };
    struct mw_wire w = { kind, node, strlen(node), flags, except, except ? strlen(except) : 0,
                         except, except ? strlen(except) : 0, NULL, 0 };
    mw_wire_head(&b, &w);
    mw_buf_puts(&b, body);
    return b;
}

static void test_round_trip(void **state)
{
    (void)state;
    struct mw_buf b = encode(MW_WIRE_EVENT, "node-a", 1 | MW_WIRE_ORIGIN_TOO, "ana",
                             "{\"type\":\"typing\"}");
    assert_memory_equal(b.p, "mw1:1:e,6:node-a,3:257,3:ana,3:ana,{\"type\":\"typing\"}", b.len);
    struct mw_wire w;
    assert_int_equal(mw_wire_decode(b.p, b.len, &w), 0);
    assert_int_equal(w.kind, MW_WIRE_EVENT);
    assert_int_equal(w.node_len, 6);
    assert_memory_equal(w.node, "node-a", 6);
    assert_int_equal(w.flags, 1 | MW_WIRE_ORIGIN_TOO);
    assert_int_equal(w.except_len, 3);
    assert_memory_equal(w.except, "ana", 3);
    assert_int_equal(w.subject_len, 3);
    assert_memory_equal(w.subject, "ana", 3);
    assert_int_equal(w.body_len, strlen("{\"type\":\"typing\"}"));
    assert_memory_equal(w.body, "{\"type\":\"typing\"}", w.body_len);
    mw_buf_free(&b);
}

/* The old newline-separated head let a user id with a newline shift the fields. */
static void test_any_byte_in_ids(void **state)
{
    (void)state;
    const char *user = "a\nb,3:x,\r|:";
    struct mw_buf b = encode(MW_WIRE_EVENT, "n\n1", 0, user, "{}");
    struct mw_wire w;
    assert_int_equal(mw_wire_decode(b.p, b.len, &w), 0);
    assert_int_equal(w.node_len, 3);
    assert_memory_equal(w.node, "n\n1", 3);
    assert_int_equal(w.except_len, strlen(user));
    assert_memory_equal(w.except, user, w.except_len);
    assert_int_equal(w.subject_len, strlen(user));
    assert_memory_equal(w.subject, user, w.subject_len);
    assert_int_equal(w.body_len, 2);
    mw_buf_free(&b);
}

static void test_disconnect_and_empty(void **state)
{
    (void)state;
    struct mw_buf b = encode(MW_WIRE_DISCONNECT, "n", 4003, NULL, "");
    struct mw_wire w;
    assert_int_equal(mw_wire_decode(b.p, b.len, &w), 0);
    assert_int_equal(w.kind, MW_WIRE_DISCONNECT);
    assert_int_equal(w.flags, 4003);
    assert_int_equal(w.except_len, 0);
    assert_int_equal(w.body_len, 0);
    mw_buf_free(&b);
}

/* A message to one node: its kind and argument ride in except and subject. */
static void test_node_message(void **state)
{
    (void)state;
    struct mw_buf b = encode(MW_WIRE_NODE, "n1", 0, "sse", "line\n");
    struct mw_wire w;
    assert_int_equal(mw_wire_decode(b.p, b.len, &w), 0);
    assert_int_equal(w.kind, MW_WIRE_NODE);
    assert_int_equal(w.except_len, 3);
    assert_memory_equal(w.except, "sse", 3);
    assert_int_equal(w.body_len, 5);
    mw_buf_free(&b);
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "mw1",
        "mw2:1:e,1:n,1:0,0:,0:,{}",    /* another version */
        "mw1:1:e,1:n,1:0,0:,{}",       /* no subject (a head of an older draft) */
        "node\n0\n\n{}",               /* the old format */
        "mw1:1:x,1:n,1:0,0:,0:,{}",       /* unknown kind */
        "mw1:2:ee,1:n,1:0,0:,0:,{}",      /* kind of two bytes */
        "mw1:1:e,1:n,1:0,0:,0:{}",        /* no comma after a field */
        "mw1:1:e,9:n,1:0,0:,0:,{}",       /* a length past the end */
        "mw1:1:e,1:n,0:,0:,0:,{}",        /* empty flags */
        "mw1:1:e,1:n,2:1a,0:,0:,{}",      /* flags not a number */
        "mw1:1:e,1:n,11:99999999999,0:,0:,{}", /* flags too long */
        "mw1:1:e,1:n,10:9999999999,0:,0:,{}",  /* flags over 32 bits */
        "mw1:1:e,1:n,1:0,",            /* no except field */
        "mw1:1:e,:n,1:0,0:,0:,{}",        /* no length */
        "mw1:1:e,99999:n,1:0,0:,0:,{}",   /* a length too large */
        "mw1:1:e,-1:n,1:0,0:,0:,{}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct mw_wire w;
        if (mw_wire_decode(bad[i], strlen(bad[i]), &w) != -1)
            fail_msg("accepted %s", bad[i]);
    }
    /* every prefix of a good payload's head is refused */
    struct mw_buf b = encode(MW_WIRE_EVENT, "node-a", 0, "ana", "");
    for (size_t n = 0; n < b.len; n++) {
        struct mw_wire w;
        assert_int_equal(mw_wire_decode(b.p, n, &w), -1);
    }
    mw_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_any_byte_in_ids),
        cmocka_unit_test(test_disconnect_and_empty),
        cmocka_unit_test(test_node_message),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests_name("broker wire format", tests, NULL, NULL);
}
