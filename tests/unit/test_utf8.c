/* test_utf8.c - incremental UTF-8 validation (utf8.c): the edge cases of RFC 3629
 * that Autobahn's 6.* cases probe, and every split of a sequence across pieces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "utf8.h"

static bool valid(const char *s, size_t n)
{
    return mw_utf8_valid((const unsigned char *)s, n);
}
#define V(lit) valid(lit, sizeof lit - 1)

static void test_valid(void **state)
{
    (void)state;
    assert_true(V(""));
    assert_true(V("plain ascii, longer than eight bytes at a time"));
    assert_true(V("\xc2\x80"));                 /* U+0080 */
    assert_true(V("\xdf\xbf"));                 /* U+07FF */
    assert_true(V("\xe0\xa0\x80"));             /* U+0800 */
    assert_true(V("\xed\x9f\xbf"));             /* U+D7FF */
    assert_true(V("\xee\x80\x80"));             /* U+E000 */
    assert_true(V("\xef\xbf\xbf"));             /* U+FFFF */
    assert_true(V("\xf0\x90\x80\x80"));         /* U+10000 */
    assert_true(V("\xf4\x8f\xbf\xbf"));         /* U+10FFFF */
    assert_true(V("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5")); /* κόσμε */
}

static void test_invalid(void **state)
{
    (void)state;
    assert_false(V("\x80"));                    /* a lone continuation byte */
    assert_false(V("\xc0\xaf"));                /* overlong '/' */
    assert_false(V("\xc1\xbf"));
    assert_false(V("\xe0\x9f\xbf"));            /* overlong */
    assert_false(V("\xf0\x8f\xbf\xbf"));        /* overlong */
    assert_false(V("\xed\xa0\x80"));            /* U+D800, a surrogate */
    assert_false(V("\xed\xbf\xbf"));            /* U+DFFF */
    assert_false(V("\xf4\x90\x80\x80"));        /* U+110000 */
    assert_false(V("\xf5\x80\x80\x80"));
    assert_false(V("\xfe"));
    assert_false(V("\xff"));
    assert_false(V("\xce\xba\xe1\xbd"));        /* cut short at the end */
    assert_false(V("\xe1\x80\x41"));            /* ASCII inside a sequence */
    assert_false(V("abcdefgh\xc2"));
    assert_false(V("abcdefghijklmnop\xc3\x28"));
}

/* Every split point of a multi-byte text gives the same answer, with the state
 * carried between the pieces; a bad byte fails in the piece that holds it. */
static void test_pieces(void **state)
{
    (void)state;
    const char *s = "a\xce\xba\xe1\xbd\xb9\xf0\x90\x8d\x88z";
    size_t n = strlen(s);
    for (size_t cut = 0; cut <= n; cut++) {
        mw_utf8_state st = 0;
        assert_true(mw_utf8_feed(&st, (const unsigned char *)s, cut));
        assert_true(mw_utf8_feed(&st, (const unsigned char *)s + cut, n - cut));
        assert_int_equal(st, 0);
    }
    mw_utf8_state st = 0;
    assert_true(mw_utf8_feed(&st, (const unsigned char *)"\xf4", 1));
    assert_int_not_equal(st, 0); /* a character is open */
    assert_false(mw_utf8_feed(&st, (const unsigned char *)"\x90", 1)); /* > U+10FFFF */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_pieces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
