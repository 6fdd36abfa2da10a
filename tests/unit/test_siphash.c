/* test_siphash.c - the map's keyed hash (core/base/map.c) is SipHash: the same code
 * built with 2 and 4 rounds gives what libsodium's crypto_shorthash (SipHash-2-4)
 * gives for the same key, for every length around the 8-byte words; so with 1 and 3
 * rounds (what the server runs) it is SipHash-1-3. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define SIP_C 2
#define SIP_D 4
#include "../../core/base/map.c"

static void test_matches_siphash24(void **state)
{
    (void)state;
    make_key();
    unsigned char k[crypto_shorthash_KEYBYTES];
    memcpy(k, &k0, 8);
    memcpy(k + 8, &k1, 8);
    char s[80];
    for (int round = 0; round < 200; round++) {
        for (size_t n = 0; n < sizeof s; n++) {
            for (size_t i = 0; i < n; i++)
                s[i] = (char)(1 + randombytes_uniform(255)); /* any byte but NUL */
            s[n] = '\0';
            unsigned char out[crypto_shorthash_BYTES];
            crypto_shorthash(out, (const unsigned char *)s, n, k);
            uint64_t want;
            memcpy(&want, out, sizeof want);
            assert_true(siphash13(s) == want);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_siphash24),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
