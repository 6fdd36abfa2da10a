/* test_map.c - the string hash map: insert, replace, delete with backward shift. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "map.h"

static void test_put_get_replace(void **state)
{
    (void)state;
    struct mw_map m = { 0 };
    assert_null(mw_map_get(&m, "a"));
    assert_null(mw_map_put(&m, "a", (void *)1));
    assert_ptr_equal(mw_map_put(&m, "a", (void *)2), (void *)1);
    assert_ptr_equal(mw_map_get(&m, "a"), (void *)2);
    assert_int_equal(m.len, 1);
    mw_map_free(&m);
}

/* Many keys force growth and long probe runs; deleting every other key must keep the
 * rest reachable (the backward-shift deletion is what this guards). */
static void test_delete_keeps_probe_runs(void **state)
{
    (void)state;
    enum { N = 2000 };
    static char keys[N][16];
    struct mw_map m = { 0 };
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        mw_map_put(&m, keys[i], (void *)(intptr_t)(i + 1));
    }
    assert_int_equal(m.len, N);
    for (int i = 0; i < N; i += 2)
        assert_ptr_equal(mw_map_del(&m, keys[i]), (void *)(intptr_t)(i + 1));
    assert_int_equal(m.len, N / 2);
    for (int i = 0; i < N; i++) {
        void *v = mw_map_get(&m, keys[i]);
        if (i % 2)
            assert_ptr_equal(v, (void *)(intptr_t)(i + 1));
        else
            assert_null(v);
    }
    assert_null(mw_map_del(&m, "absent"));
    mw_map_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_replace),
        cmocka_unit_test(test_delete_keeps_probe_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
