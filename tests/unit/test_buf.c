/* test_buf.c - the byte buffer (buf.c): decimal integers without printf, against
 * printf's own digits at the edges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/buf.h"

static void test_put_u64_matches_printf(void **state)
{
    (void)state;
    static const uint64_t cases[] = { 0, 1, 9, 10, 99, 100, 12345, 4294967295u, 4294967296u,
                                      9007199254740993ull, 10000000000000000000ull, UINT64_MAX };
    struct mw_buf b = { 0 }, want = { 0 };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mw_buf_putc(&b, '[');
        mw_buf_put_u64(&b, cases[i]);
        mw_buf_putc(&b, ']');
        mw_buf_printf(&want, "[%" PRIu64 "]", cases[i]);
    }
    assert_int_equal(b.len, want.len);
    assert_memory_equal(b.p, want.p, b.len);
    mw_buf_free(&b);
    mw_buf_free(&want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_u64_matches_printf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
