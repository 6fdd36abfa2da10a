/* test_sha1.c - SHA-1 (sha1.c) against the FIPS 180 / RFC 3174 test vectors, every
 * padding boundary against libwebsockets' lws_SHA1, and RFC 6455's handshake
 * example. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <libwebsockets.h>

#include "base/sha1.h"

static void hex(const unsigned char *d, char *out)
{
    for (int i = 0; i < 20; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static void check(const char *msg, size_t len, const char *want)
{
    unsigned char d[20];
    char got[41];
    mw_sha1(msg, len, d);
    hex(d, got);
    assert_string_equal(got, want);
}

static void test_vectors(void **state)
{
    (void)state;
    check("abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d");
    check("", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    check(two, strlen(two), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    /* RFC 6455 1.3: the example key with the GUID. */
    const char *ws = "dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    check(ws, strlen(ws), "b37a4f2cc0624f1690f64606cf385945b2bec4ea");
}

/* Every length from 0 to 200 (the padding's one- and two-block cases, and several
 * whole blocks) against another implementation. */
static void test_lengths_against_lws(void **state)
{
    (void)state;
    unsigned char msg[200], a[20], b[20];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (unsigned char)(i * 7 + 3);
    for (size_t len = 0; len <= sizeof msg; len++) {
        mw_sha1(msg, len, a);
        lws_SHA1(msg, len, b);
        assert_memory_equal(a, b, 20);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_lengths_against_lws),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
