/* test_buf.c - the byte buffer (buf.c): decimal integers without printf, against
 * printf's own digits at the edges; scratch buffers kept from call to call. */
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

/* A scratch buffer is handed out emptied, keeps its memory between uses, is never
 * handed out twice at once (a re-entered user gets its spare), and one grown past
 * 64 KiB is given back to the allocator. */
static void test_scratch(void **state)
{
    (void)state;
    static struct mw_scratch s;
    struct mw_buf spare, spare2;
    struct mw_buf *b = mw_scratch_take(&s, &spare);
    assert_ptr_equal(b, &s.b);
    mw_buf_puts(b, "first use");
    char *mem = b->p;
    struct mw_buf *again = mw_scratch_take(&s, &spare2); /* re-entered: the spare */
    assert_ptr_equal(again, &spare2);
    assert_int_equal(again->len, 0);
    mw_buf_puts(again, "inner");
    mw_scratch_give(&s, again);
    assert_null(spare2.p); /* the spare is freed */
    assert_int_equal(b->len, 9); /* the outer user's text is untouched */
    assert_memory_equal(b->p, "first use", 9);
    mw_scratch_give(&s, b);
    b = mw_scratch_take(&s, &spare);
    assert_ptr_equal(b, &s.b);
    assert_int_equal(b->len, 0);
    assert_ptr_equal(b->p, mem); /* the same memory, no new allocation */
    mw_buf_reserve(b, 100 * 1024);
    mw_scratch_give(&s, b);
    assert_null(s.b.p); /* grown past 64 KiB: freed */
    assert_int_equal(s.taken, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_u64_matches_printf),
        cmocka_unit_test(test_scratch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
