/* test_deflate.c - permessage-deflate (deflate.c): the negotiation for every parameter
 * form a client may offer, frames compressed once and shared, inflation in pieces,
 * and the bounds on what a compressed message may inflate to. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "net/deflate.h"
#include "base/msg.h"

/* Negotiates one header value; returns the window (0: declined), *resp the answer. */
static int nego(const char *value, char *resp)
{
    const char *vals[1] = { value };
    size_t lens[1] = { strlen(value) };
    resp[0] = '\0';
    return mw_pmd_negotiate(vals, lens, 1, resp, 200);
}

static void test_negotiation(void **state)
{
    (void)state;
    char r[200];
    const char *plain = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
    assert_int_equal(nego("permessage-deflate", r), 15);
    assert_string_equal(r, plain);
    assert_int_equal(nego("permessage-deflate; client_max_window_bits", r), 15); /* browsers */
    assert_string_equal(r, plain);
    assert_int_equal(nego("PerMessage-Deflate ;client_no_context_takeover;client_max_window_bits=10", r), 15);
    assert_int_equal(nego("permessage-deflate; server_no_context_takeover", r), 15);
    assert_int_equal(nego("permessage-deflate; server_max_window_bits=9", r), 9);
    assert_string_equal(r, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                           "server_max_window_bits=9");
    assert_int_equal(nego("permessage-deflate; server_max_window_bits=\"10\"", r), 10);
    assert_int_equal(nego("permessage-deflate; server_max_window_bits=8", r), 8);
    assert_int_equal(nego("permessage-deflate; server_max_window_bits=15; server_no_context_takeover", r), 15);

    /* Declined: each of these makes the offer unacceptable. */
    static const char *const bad[] = {
        "x-webkit-deflate-frame",
        "permessage-deflate; server_max_window_bits",      /* a value is required */
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=08",
        "permessage-deflate; client_max_window_bits=20",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; unknown_param",
        "permessage-deflate; server_max_window_bits=\"10",
        "permessage-deflate x",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(nego(bad[i], r), 0);

    /* The first acceptable offer of a list wins (Autobahn 13.7 offers three, in more
     * than 255 bytes), and offers may come on several header lines. */
    assert_int_equal(nego("permessage-deflate; server_max_window_bits=7, "
                          "permessage-deflate; client_no_context_takeover; client_max_window_bits; "
                          "server_no_context_takeover; server_max_window_bits=9, "
                          "permessage-deflate; client_no_context_takeover", r), 9);
    const char *vals[2] = { "x-foo; a=1", "permessage-deflate; server_max_window_bits=12" };
    size_t lens[2] = { strlen(vals[0]), strlen(vals[1]) };
    assert_int_equal(mw_pmd_negotiate(vals, lens, 2, r, sizeof r), 12);
}

static const char text[] =
    "{\"type\":\"chat:message\",\"room\":\"lobby\",\"from\":\"ana\",\"data\":{\"text\":\"hello hello "
    "hello, this repeats itself, this repeats itself, this repeats itself\"},\"seq\":12}";

/* Inflates frame f's payload (RSV1 set) in pieces of `step` bytes; returns the length
 * in *out, or the error. */
static int inflate_frame(const struct mw_msg *f, size_t step, char **out, size_t *len, size_t max)
{
    size_t plen, cap = 0;
    const unsigned char *p = (const unsigned char *)mw_msg_payload(f, &plen);
    struct mw_inflate *st = NULL;
    *out = NULL;
    *len = 0;
    for (size_t at = 0;;) {
        size_t n = step && plen - at > step ? step : plen - at;
        int rc = mw_inflate_piece(&st, p + at, n, at + n == plen, out, len, &cap, max);
        at += n;
        if (rc || at == plen) {
            assert_null(st); /* freed after the last piece, or on an error */
            return rc;
        }
    }
}

/* A broadcast is compressed once: every connection with the usual window gets the
 * same compressed frame; it inflates back to the payload, in any split. */
static void test_compressed_once(void **state)
{
    (void)state;
    uint64_t before = mw_deflate_stats.deflated;
    struct mw_msg *m = mw_msg_new(MW_OP_TEXT, text, sizeof text - 1, 0);
    struct mw_msg *a = mw_deflate_frame(m, 15), *b = mw_deflate_frame(m, 15);
    assert_ptr_equal(a, b);
    assert_ptr_equal(m->z, a);
    assert_int_equal(mw_deflate_stats.deflated, before + 1);
    assert_int_equal(a->data[0], 0x80 | 0x40 | MW_OP_TEXT); /* FIN, RSV1 */
    assert_true(a->len < m->len);
    size_t steps[] = { 0, 1, 3, 10 };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        char *out;
        size_t len;
        assert_int_equal(inflate_frame(a, steps[i], &out, &len, 1 << 20), 0);
        assert_int_equal(len, sizeof text - 1);
        assert_memory_equal(out, text, len);
        free(out);
    }
    /* A smaller window: its own copy, not kept (only window 15 is shared). */
    struct mw_msg *small = mw_deflate_frame(m, 9);
    assert_ptr_not_equal(small, a);
    assert_ptr_equal(m->z, a);
    mw_msg_decref(small);
    mw_msg_decref(a);
    mw_msg_decref(b);
    mw_msg_decref(m); /* frees its compressed copy too (ASan checks) */
}

/* What is not worth it or not allowed goes as it is. */
static void test_sent_as_is(void **state)
{
    (void)state;
    unsigned char noise[300];
    srand(7);
    for (size_t i = 0; i < sizeof noise; i++)
        noise[i] = (unsigned char)rand();
    struct mw_msg *m = mw_msg_new(MW_OP_BINARY, noise, sizeof noise, 0);
    struct mw_msg *f = mw_deflate_frame(m, 15);
    assert_ptr_equal(f, m);
    assert_true(m->flags & MW_MSG_PLAIN);
    mw_msg_decref(f);
    f = mw_deflate_frame(m, 15); /* remembered: not tried again */
    assert_ptr_equal(f, m);
    mw_msg_decref(f);
    mw_msg_decref(m);
    struct mw_msg *ping = mw_msg_new(MW_OP_PING, text, 100, MW_MSG_CONTROL);
    f = mw_deflate_frame(ping, 15);
    assert_ptr_equal(f, ping);
    mw_msg_decref(f);
    mw_msg_decref(ping);
}

/* Window 8: zlib's smallest raw window is 9, so the frame uses only distance-1 matches,
 * which a peer with a 256-byte window decodes. */
static void test_window_8(void **state)
{
    (void)state;
    char big[4000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[i % 36];
    struct mw_msg *m = mw_msg_new(MW_OP_TEXT, big, sizeof big, 0);
    struct mw_msg *f = mw_deflate_frame(m, 8);
    size_t plen;
    const unsigned char *p = (const unsigned char *)mw_msg_payload(f, &plen);
    unsigned char in[8192], out[8192];
    memcpy(in, p, plen);
    memcpy(in + plen, "\x00\x00\xff\xff", 4);
    z_stream z = { 0 };
    assert_int_equal(inflateInit2(&z, -8), Z_OK);
    z.next_in = in;
    z.avail_in = (uInt)plen + 4;
    z.next_out = out;
    z.avail_out = sizeof out;
    int rc = inflate(&z, Z_SYNC_FLUSH);
    assert_true(rc == Z_OK || rc == Z_STREAM_END);
    assert_int_equal(sizeof out - z.avail_out, sizeof big);
    assert_memory_equal(out, big, sizeof big);
    inflateEnd(&z);
    mw_msg_decref(f);
    mw_msg_decref(m);
}

/* A message that inflates past the bound fails with 1009 without inflating it all;
 * data that is not deflate fails with 1007. */
static void test_inflate_bounds(void **state)
{
    (void)state;
    static char zeros[1 << 20];
    struct mw_msg *m = mw_msg_new(MW_OP_BINARY, zeros, sizeof zeros, 0);
    struct mw_msg *f = mw_deflate_frame(m, 15);
    assert_true(f->len < 20000); /* a 1 MiB bomb in a few KiB */
    char *out;
    size_t len;
    assert_int_equal(inflate_frame(f, 0, &out, &len, 64 * 1024), 1009);
    assert_true(len <= 64 * 1024 + 1);
    free(out);
    assert_int_equal(inflate_frame(f, 0, &out, &len, sizeof zeros), 0);
    assert_int_equal(len, sizeof zeros);
    free(out);
    mw_msg_decref(f);
    mw_msg_decref(m);

    struct mw_msg *junk = mw_msg_new(MW_OP_BINARY, "\xff\xff\xff\xff\xff", 5, 0);
    assert_int_equal(inflate_frame(junk, 0, &out, &len, 1000), 1007);
    free(out);
    mw_msg_decref(junk);
}

static int teardown(void **state)
{
    (void)state;
    mw_deflate_shutdown();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_negotiation),
        cmocka_unit_test(test_compressed_once),
        cmocka_unit_test(test_sent_as_is),
        cmocka_unit_test(test_window_8),
        cmocka_unit_test(test_inflate_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
