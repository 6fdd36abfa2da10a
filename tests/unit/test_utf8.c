/* test_utf8.c - UTF-8 validation and the user id rule built on it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "ident.h"
#include "utf8.h"

#define CHECK(lit) mw_utf8_check(lit, sizeof(lit) - 1)

static void test_valid(void **state)
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
        cmocka_unit_test(test_invalid_at),
        cmocka_unit_test(test_user_id_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
