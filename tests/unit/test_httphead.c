/* test_httphead.c - the request-head parser of the WebSocket upgrade (httphead.c):
 * complete and partial heads, lookups, malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "net/httphead.h"

static const char upgrade[] =
    "GET /chat?user=ana%20b&session=s1&flag&x=a+b HTTP/1.1\r\n"
    "Host: 127.0.0.1:8080\r\n"
    "Upgrade: websocket\r\n"
    "Connection: keep-alive,  Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "sec-websocket-version: 13\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "Sec-WebSocket-Extensions: x-other  \r\n"
    "\r\n"
    "\x81\x85";

static void test_upgrade_head(void **state)
{
    (void)state;
    struct mw_httphead h;
    size_t vlen;
    char buf[64];
    assert_int_equal(mw_httphead_parse(&h, upgrade, sizeof upgrade - 1), 1);
    assert_int_equal(h.len, sizeof upgrade - 1 - 2); /* the frame bytes follow */
    assert_int_equal(h.mlen, 3);
    assert_memory_equal(h.method, "GET", 3);
    assert_int_equal(h.plen, 5);
    assert_memory_equal(h.target, "/chat", 5);
    assert_int_equal(h.minor, 1);
    assert_int_equal(h.nfields, 7);
    const char *v = mw_httphead_get(&h, "SEC-WEBSOCKET-VERSION", &vlen);
    assert_non_null(v);
    assert_int_equal(vlen, 2);
    assert_memory_equal(v, "13", 2);
    assert_null(mw_httphead_get(&h, "origin", &vlen));
    assert_int_equal(mw_httphead_count(&h, "sec-websocket-extensions"), 2);
    v = mw_httphead_get(&h, "sec-websocket-extensions", &vlen);
    assert_int_equal(vlen, strlen("permessage-deflate; client_max_window_bits"));
    assert_true(mw_httphead_has_token(&h, "connection", "upgrade"));
    assert_true(mw_httphead_has_token(&h, "Connection", "KEEP-ALIVE"));
    assert_false(mw_httphead_has_token(&h, "connection", "close"));
    assert_true(mw_httphead_has_token(&h, "upgrade", "WebSocket"));
    assert_true(mw_httphead_has_token(&h, "sec-websocket-extensions", "x-other"));

    assert_int_equal(mw_httphead_query(&h, "user", buf, sizeof buf), 5);
    assert_string_equal(buf, "ana b");
    assert_int_equal(mw_httphead_query(&h, "session", buf, sizeof buf), 2);
    assert_string_equal(buf, "s1");
    assert_int_equal(mw_httphead_query(&h, "flag", buf, sizeof buf), 0);
    assert_int_equal(mw_httphead_query(&h, "x", buf, sizeof buf), 3);
    assert_string_equal(buf, "a b");
    assert_int_equal(mw_httphead_query(&h, "use", buf, sizeof buf), -1);
    assert_string_equal(buf, "");
    assert_int_equal(mw_httphead_query(&h, "user", buf, 4), 5); /* cut, the whole length */
    assert_string_equal(buf, "ana");
}

/* Every prefix of a head asks for more; none is taken for complete. */
static void test_partial(void **state)
{
    (void)state;
    struct mw_httphead h;
    size_t full = strlen(upgrade) - 2;
    for (size_t n = 0; n < full; n++)
        assert_int_equal(mw_httphead_parse(&h, upgrade, n), 0);
    assert_int_equal(mw_httphead_parse(&h, upgrade, full), 1);
}

static void test_bad_heads(void **state)
{
    (void)state;
    struct mw_httphead h;
    static const char *const bad[] = {
        "GET /chat HTTP/2.0\r\n\r\n",
        "GET chat HTTP/1.1\r\n\r\n",
        "GET /ch at HTTP/1.1\r\n\r\n",
        "G(T /chat HTTP/1.1\r\n\r\n",
        "GET /chat HTTP/1.1\r\nNo-Colon\r\n\r\n",
        "GET /chat HTTP/1.1\r\n: empty\r\n\r\n",
        "GET /chat HTTP/1.1\r\nBad Name: x\r\n\r\n",
        "GET /chat HTTP/1.1\r\nFolded: a\r\n b\r\n\r\n",
        "GET /chat HTTP/1.1\r\nCtl: a\x01b\r\n\r\n",
        "\x16\x03\x01\x02", /* a TLS hello: refused before any line ends */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(mw_httphead_parse(&h, bad[i], strlen(bad[i])), -1);
    char many[8192];
    size_t n = (size_t)snprintf(many, sizeof many, "GET / HTTP/1.1\r\n");
    for (int i = 0; i <= MW_HTTPHEAD_MAX_HEADERS; i++)
        n += (size_t)snprintf(many + n, sizeof many - n, "X-%d: v\r\n", i);
    n += (size_t)snprintf(many + n, sizeof many - n, "\r\n");
    assert_int_equal(mw_httphead_parse(&h, many, n), -1);
    /* Leading empty lines are allowed (RFC 9112). */
    assert_int_equal(mw_httphead_parse(&h, "\r\nGET / HTTP/1.0\r\n\r\n", 20), 1);
    assert_int_equal(h.minor, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upgrade_head),
        cmocka_unit_test(test_partial),
        cmocka_unit_test(test_bad_heads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
