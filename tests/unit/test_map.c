/* test_map.c - the string hash map: insert, replace, delete with backward shift. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/map.h"

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

/* ---- colliding keys ---- */

/* FNV-1a, the unkeyed hash this map used: the attack below is computed against it. */
static uint32_t fnv1a(uint32_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

#define BLOCKS 17                 /* 2^17 = 131072 colliding names */
#define BLOCK 6                   /* FNV-1a is nearly injective on shorter strings */
#define NAME_LEN (BLOCKS * BLOCK)

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* Two different 6-letter strings a, b that take FNV-1a from state h to one state
 * (returned): a birthday search over random strings, ~2^16.5 tries. */
static uint32_t colliding_pair(uint32_t h, char a[BLOCK], char b[BLOCK])
{
    enum { SLOTS = 1 << 20 };
    struct seen { uint32_t state; char s[BLOCK]; bool used; };
    struct seen *t = calloc(SLOTS, sizeof *t);
    assert_non_null(t);
    for (uint32_t tries = 0; tries < 8 * SLOTS / 10; tries++) {
        char s[BLOCK];
        for (int i = 0; i < BLOCK; i++)
            s[i] = (char)('a' + next_rand() % 26);
        uint32_t st = fnv1a(h, s, BLOCK);
        uint32_t i = (st * 2654435761u) >> 12; /* FNV's low bits cluster */
        while (t[i].used && t[i].state != st)
            i = (i + 1) & (SLOTS - 1);
        if (t[i].used && memcmp(t[i].s, s, BLOCK) != 0) {
            memcpy(a, t[i].s, BLOCK);
            memcpy(b, s, BLOCK);
            free(t);
            return st;
        }
        t[i].used = true;
        t[i].state = st;
        memcpy(t[i].s, s, BLOCK);
    }
    fail_msg("no FNV-1a collision found");
    return 0;
}

/* 100,000 room names of 102 characters with one and the same FNV-1a hash (each a
 * choice of one string of each pair): with the old hash they all fell in one probe
 * run, and each lookup compared against all of them. With the keyed hash the mean
 * distance from a key's home slot stays that of random keys (about 2.5 at this map's
 * 3/4 load); it would be ~50,000 for the colliding run. */
static void test_colliding_keys_spread(void **state)
{
    (void)state;
    enum { N = 100000 };
    char pairs[BLOCKS][2][BLOCK];
    uint32_t h = 2166136261u;
    for (int i = 0; i < BLOCKS; i++)
        h = colliding_pair(h, pairs[i][0], pairs[i][1]);
    char (*names)[NAME_LEN + 1] = malloc((size_t)N * sizeof *names);
    assert_non_null(names);
    for (uint32_t k = 0; k < N; k++) {
        for (int i = 0; i < BLOCKS; i++)
            memcpy(names[k] + i * BLOCK, pairs[i][(k >> i) & 1], BLOCK);
        names[k][NAME_LEN] = '\0';
        assert_int_equal(fnv1a(2166136261u, names[k], NAME_LEN), h); /* the attack works */
    }

    struct mw_map m = { 0 };
    for (uint32_t k = 0; k < N; k++)
        assert_null(mw_map_put(&m, names[k], (void *)(uintptr_t)(k + 1)));
    assert_int_equal(m.len, N);
    uint64_t displaced = 0;
    uint32_t mask = m.cap - 1;
    for (uint32_t i = 0; i < m.cap; i++)
        if (m.slots[i].key)
            displaced += (i - (m.slots[i].hash & mask)) & mask;
    double mean = (double)displaced / N;
    printf("# mean distance from the home slot: %.2f (%u keys, %u slots)\n", mean, N, m.cap);
    assert_true(mean < 8.0);
    for (uint32_t k = 0; k < N; k += 7)
        assert_ptr_equal(mw_map_get(&m, names[k]), (void *)(uintptr_t)(k + 1));
    mw_map_free(&m);
    free(names);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_replace),
        cmocka_unit_test(test_delete_keeps_probe_runs),
        cmocka_unit_test(test_colliding_keys_spread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
