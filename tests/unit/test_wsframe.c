/* test_wsframe.c - the WebSocket frame parser (wsframe.c): every split of the input
 * gives the same events; every protocol violation Autobahn's cases 1-7 and 9 probe
 * fails with the right close code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/wsframe.h"

/* ---- building client frames ---- */

static unsigned char wire[1 << 20];
static size_t wlen;

/* Appends one masked frame: b0 is FIN|RSV|opcode. */
static void frame(unsigned b0, const void *payload, size_t n)
{
    static const unsigned char mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
    unsigned char *w = wire + wlen;
    size_t h = 0;
    w[h++] = (unsigned char)b0;
    if (n < 126) {
        w[h++] = (unsigned char)(0x80 | n);
    } else if (n < 65536) {
        w[h++] = 0x80 | 126;
        w[h++] = (unsigned char)(n >> 8);
        w[h++] = (unsigned char)n;
    } else {
        w[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            w[h++] = (unsigned char)((uint64_t)n >> (8 * i));
    }
    memcpy(w + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < n; i++)
        w[h + i] = ((const unsigned char *)payload)[i] ^ mask[i & 3];
    wlen += h + n;
}

/* ---- what the parser reports ---- */

struct rec {
    char log[4096];  /* one line per event */
    unsigned char msg[1 << 20];
    size_t msglen;
    int pieces;
};
static struct rec rec;

static int on_data(void *ud, int op, bool compressed, unsigned char *p, size_t n, bool first,
                   bool last)
{
    (void)ud;
    rec.pieces++;
    if (first)
        rec.msglen = 0;
    memcpy(rec.msg + rec.msglen, p, n);
    rec.msglen += n;
    if (last) {
        size_t at = strlen(rec.log);
        snprintf(rec.log + at, sizeof rec.log - at, "%s%s:%.*s\n", op == MW_WS_TEXT ? "text" : "binary",
                 compressed ? "+z" : "", (int)(rec.msglen > 40 ? 40 : rec.msglen), rec.msg);
    }
    return 0;
}

static int on_control(void *ud, int op, int code, unsigned char *p, size_t n)
{
    (void)ud;
    size_t at = strlen(rec.log);
    snprintf(rec.log + at, sizeof rec.log - at, "%s:%d:%.*s\n",
             op == MW_WS_PING ? "ping" : op == MW_WS_PONG ? "pong" : "close", code, (int)n, p);
    return 0;
}

static const struct mw_wsrx_events events = { on_data, on_control };

/* Feeds wire[] in pieces of `step` bytes (0: all at once) into a fresh parser.
 * Returns the close code (0 when fine); *why its words. */
static int run(size_t step, bool rsv1, uint64_t max, const char **why)
{
    static unsigned char copy[sizeof wire];
    struct mw_wsrx rx = { 0 };
    rx.allow_rsv1 = rsv1;
    memset(&rec, 0, sizeof rec);
    memcpy(copy, wire, wlen); /* payload is unmasked in place */
    *why = NULL;
    int rc = 0;
    for (size_t at = 0; at < wlen && !rc;) {
        size_t n = step && wlen - at > step ? step : wlen - at;
        rc = mw_wsrx_feed(&rx, copy + at, n, max, &events, NULL, why);
        at += n;
    }
    mw_wsrx_free(&rx);
    return rc;
}

static int parse(const char **why)
{
    return run(0, false, 1 << 20, why);
}

static void reset(void)
{
    wlen = 0;
}

/* ---- tests ---- */

/* Messages, fragments with control frames between them, empty frames: the same
 * events for every split of the bytes, a byte at a time included. */
static void test_splits_give_the_same_events(void **state)
{
    (void)state;
    const char *why;
    static char big[70000];
    memset(big, 'b', sizeof big);
    reset();
    frame(0x81, "hello", 5);
    frame(0x01, "", 0);              /* an empty first fragment */
    frame(0x00, "fra", 3);
    frame(0x89, "p1", 2);            /* a ping between fragments */
    frame(0x00, "g", 1);
    frame(0x8a, "", 0);              /* an empty pong */
    frame(0x80, "ments", 5);
    frame(0x82, "\x00\x01\x02", 3);
    frame(0x82, big, sizeof big);    /* a 64-bit length */
    frame(0x81, big, 300);           /* a 16-bit length */
    frame(0x81, "", 0);              /* an empty message */
    frame(0x88, "\x03\xe8" "bye", 5);
    const char *expect = "text:hello\nping:0:p1\npong:0:\ntext:fragments\nbinary:\nbinary:"
                         "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\ntext:"
                         "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\ntext:\nclose:1000:bye\n";
    size_t steps[] = { 0, 1, 2, 3, 7, 13, 1000, 65536 };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        assert_int_equal(run(steps[i], false, 1 << 20, &why), 0);
        assert_string_equal(rec.log, expect);
    }
}

/* A whole message in one feed comes as one piece; across feeds, in pieces. */
static void test_pieces(void **state)
{
    (void)state;
    struct mw_wsrx rx = { 0 };
    const char *why;
    reset();
    frame(0x81, "abcdef", 6);
    memset(&rec, 0, sizeof rec);
    assert_int_equal(mw_wsrx_feed(&rx, wire, wlen, 100, &events, NULL, &why), 0);
    assert_string_equal(rec.log, "text:abcdef\n");
    assert_int_equal(rec.pieces, 1);
    reset();
    frame(0x81, "abcdef", 6);
    memset(&rec, 0, sizeof rec);
    assert_int_equal(mw_wsrx_feed(&rx, wire, 9, 100, &events, NULL, &why), 0); /* header + 3 */
    assert_int_equal(rec.pieces, 1);
    assert_string_equal(rec.log, "");
    assert_int_equal(mw_wsrx_feed(&rx, wire + 9, wlen - 9, 100, &events, NULL, &why), 0);
    assert_int_equal(rec.pieces, 2);
    assert_string_equal(rec.log, "text:abcdef\n");
    mw_wsrx_free(&rx);
}

static void test_protocol_errors(void **state)
{
    (void)state;
    const char *why;
    static const struct {
        unsigned b0;
        const char *payload;
        size_t n;
        int code;
    } cases[] = {
        { 0xc1, "x", 1, 1002 },           /* RSV1 without permessage-deflate */
        { 0xa1, "x", 1, 1002 },           /* RSV2 */
        { 0x91, "x", 1, 1002 },           /* RSV3 */
        { 0x83, "x", 1, 1002 },           /* reserved opcodes */
        { 0x87, "x", 1, 1002 },
        { 0x8b, "x", 1, 1002 },
        { 0x8f, "x", 1, 1002 },
        { 0x09, "x", 1, 1002 },           /* a fragmented ping */
        { 0x80, "x", 1, 1002 },           /* a continuation without a message */
        { 0x81, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80", 14, 1007 },
        { 0x81, "\xc0\xaf", 2, 1007 },
        { 0x88, "\x03", 1, 1002 },        /* a close payload of 1 byte */
        { 0x88, "\x03\xe7", 2, 1002 },    /* 999 */
        { 0x88, "\x03\xed", 2, 1002 },    /* 1005 */
        { 0x88, "\x03\xee", 2, 1002 },    /* 1006 */
        { 0x88, "\x03\xf4", 2, 1002 },    /* 1012 */
        { 0x88, "\x07\xd0", 2, 1002 },    /* 2000 */
        { 0x88, "\x13\x88", 2, 1002 },    /* 5000 */
        { 0x88, "\x03\xe8\xff", 3, 1007 }, /* a reason that is not UTF-8 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        reset();
        frame(cases[i].b0, cases[i].payload, cases[i].n);
        assert_int_equal(parse(&why), cases[i].code);
        assert_non_null(why);
    }
    char ping[126];
    memset(ping, 'p', sizeof ping);
    reset();
    frame(0x89, ping, 126); /* a control frame over 125 bytes */
    assert_int_equal(parse(&why), 1002);
    reset();
    frame(0x01, "a", 1);
    frame(0x81, "b", 1); /* a new message inside a fragmented one */
    assert_int_equal(parse(&why), 1002);
    reset();
    frame(0x01, "a", 1);
    frame(0xc0, "b", 1); /* RSV1 on a continuation, even with deflate */
    assert_int_equal(run(0, true, 100, &why), 1002);
    reset();
    frame(0xc1, "z", 1); /* RSV1 on a first frame with deflate: compressed */
    assert_int_equal(run(0, true, 100, &why), 0);
    assert_string_equal(rec.log, "text+z:z\n");
    /* An unmasked frame. */
    unsigned char raw[] = { 0x81, 0x01, 'x' };
    struct mw_wsrx rx = { 0 };
    assert_int_equal(mw_wsrx_feed(&rx, raw, sizeof raw, 100, &events, NULL, &why), 1002);
    /* A 64-bit length with its top bit set. */
    unsigned char huge[] = { 0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4 };
    struct mw_wsrx rx2 = { 0 };
    assert_int_equal(mw_wsrx_feed(&rx2, huge, sizeof huge, 100, &events, NULL, &why), 1002);
}

/* Invalid UTF-8 fails in the fragment that holds it, before the message ends. */
static void test_utf8_fails_fast(void **state)
{
    (void)state;
    const char *why;
    reset();
    frame(0x01, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 11);
    frame(0x00, "\xf4\x90\x80\x80", 4); /* above U+10FFFF */
    frame(0x00, "fine", 4);
    frame(0x80, "", 0);
    assert_int_equal(parse(&why), 1007);
    reset();
    frame(0x01, "\xce", 1); /* a character cut by the end of the message */
    frame(0x80, "", 0);
    assert_int_equal(parse(&why), 1007);
    reset();
    frame(0x01, "\xce", 1); /* ... or completed in the next fragment */
    frame(0x80, "\xba", 1);
    assert_int_equal(parse(&why), 0);
    assert_string_equal(rec.log, "text:\xce\xba\n");
}

/* The size bound counts the message over its fragments, and fails on the header,
 * before the payload comes. */
static void test_too_big(void **state)
{
    (void)state;
    const char *why;
    static char data[200];
    memset(data, 'x', sizeof data);
    reset();
    frame(0x82, data, 100);
    assert_int_equal(run(0, false, 100, &why), 0);
    reset();
    frame(0x02, data, 60);
    frame(0x80, data, 41);
    assert_int_equal(run(0, false, 100, &why), 1009);
    assert_string_equal(rec.log, "");
    reset();
    frame(0x82, data, 200);
    wlen = 2 + 2 + 4; /* only the header arrived */
    assert_int_equal(run(0, false, 100, &why), 1009);
}

/* Nothing counts after the peer's close frame, in the same feed or later. */
static void test_nothing_after_close(void **state)
{
    (void)state;
    const char *why;
    reset();
    frame(0x81, "before", 6);
    frame(0x88, "", 0);
    frame(0x81, "after", 5);
    frame(0x89, "ping", 4);
    frame(0xc1, "junk", 4);
    assert_int_equal(parse(&why), 0);
    assert_string_equal(rec.log, "text:before\nclose:1005:\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_splits_give_the_same_events),
        cmocka_unit_test(test_pieces),
        cmocka_unit_test(test_protocol_errors),
        cmocka_unit_test(test_utf8_fails_fast),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_nothing_after_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
