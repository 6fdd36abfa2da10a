/* test_utf8.c - UTF-8 validation (utf8.c): the edge cases of RFC 3629 that Autobahn's
 * 6.* cases probe, every split of a sequence across pieces, the offset of the first
 * bad byte, and the user id rule built on it (ident.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "base/ident.h"
#include "base/utf8.h"

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

#define CHECK(lit) mw_utf8_check(lit, sizeof(lit) - 1)

static void test_check_valid(void **state)
{
    (void)state;
    assert_int_equal(CHECK(""), 0);
    assert_int_equal(CHECK("plain ascii, longer than eight bytes"), 36);
    assert_int_equal(CHECK("caf\xc3\xa9"), 5);                  /* U+00E9 */
    assert_int_equal(CHECK("\xe2\x82\xac"), 3);                 /* U+20AC */
    assert_int_equal(CHECK("\xed\x9f\xbf"), 3);                 /* U+D7FF, last before surrogates */
    assert_int_equal(CHECK("\xee\x80\x80"), 3);                 /* U+E000 */
    assert_int_equal(CHECK("\xf0\x9f\x98\x80"), 4);             /* U+1F600 */
    assert_int_equal(CHECK("\xf4\x8f\xbf\xbf"), 4);             /* U+10FFFF */
    assert_int_equal(mw_utf8_check("a\0b", 3), 3);              /* NUL is valid UTF-8 */
}

static void test_invalid_at(void **state)
{
    (void)state;
    assert_int_equal(CHECK("abc\x80"), 3);                      /* lone continuation */
    assert_int_equal(CHECK("\xc0\xaf"), 0);                     /* overlong '/' */
    assert_int_equal(CHECK("\xc1\xbf"), 0);
    assert_int_equal(CHECK("\xe0\x9f\xbf"), 0);                 /* overlong 3-byte */
    assert_int_equal(CHECK("\xf0\x8f\xbf\xbf"), 0);             /* overlong 4-byte */
    assert_int_equal(CHECK("ok\xed\xa0\x80"), 2);               /* U+D800 surrogate */
    assert_int_equal(CHECK("\xed\xbf\xbf"), 0);                 /* U+DFFF */
    assert_int_equal(CHECK("\xf4\x90\x80\x80"), 0);             /* above U+10FFFF */
    assert_int_equal(CHECK("\xf5\x80\x80\x80"), 0);
    assert_int_equal(CHECK("\xff\xfe"), 0);
    assert_int_equal(CHECK("12345678\xe2\x82"), 8);             /* truncated at the end */
    assert_int_equal(CHECK("\xe2\x28\xa1"), 0);                 /* bad continuation */
    assert_int_equal(CHECK("\xc3\xa9\xc3"), 2);
}

static void test_user_id_rule(void **state)
{
    (void)state;
    char long_id[130];
    memset(long_id, 'u', sizeof long_id);
    assert_null(mw_user_id_error("ana", 3));
    assert_null(mw_user_id_error("ana bob", 7));
    assert_null(mw_user_id_error("\xc3\xa9\xc2\xa0", 4));       /* U+00E9, U+00A0 (not a control) */
    assert_null(mw_user_id_error(long_id, 128));
    assert_non_null(mw_user_id_error(long_id, 129));
    assert_non_null(mw_user_id_error("", 0));
    assert_non_null(mw_user_id_error("a\0b", 3));
    assert_non_null(mw_user_id_error("a\tb", 3));
    assert_non_null(mw_user_id_error("a\x7f", 2));
    assert_non_null(mw_user_id_error("a\xc2\x85", 3));          /* U+0085, a C1 control */
    assert_non_null(mw_user_id_error("\xff\xfe", 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_pieces),
        cmocka_unit_test(test_check_valid),
        cmocka_unit_test(test_invalid_at),
        cmocka_unit_test(test_user_id_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
