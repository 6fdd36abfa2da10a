/* test_redis.c - Redis URL parsing (redis.c), good and bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "redis/redis.h"

struct parsed {
    char host[64];
    int port, db;
    char *password;
    char err[256];
    int rc;
};

static struct parsed parse(const char *url)
{
    struct parsed p;
    memset(&p, 0, sizeof p);
    p.rc = mw_redis_parse_url(url, p.host, sizeof p.host, &p.port, &p.password, &p.db, p.err,
                              sizeof p.err);
    return p;
}

static void test_defaults(void **state)
{
    (void)state;
    struct parsed p = parse("redis://127.0.0.1");
    assert_int_equal(p.rc, 0);
    assert_string_equal(p.host, "127.0.0.1");
    assert_int_equal(p.port, 6379);
    assert_int_equal(p.db, 0);
    assert_null(p.password);
}

static void test_full_url(void **state)
{
    (void)state;
    struct parsed p = parse("redis://user:s3cret@cache.local:6380/2");
    assert_int_equal(p.rc, 0);
    assert_string_equal(p.host, "cache.local");
    assert_int_equal(p.port, 6380);
    assert_int_equal(p.db, 2);
    assert_string_equal(p.password, "s3cret");
    free(p.password);
    p = parse("redis://:only@127.0.0.1:7000");
    assert_int_equal(p.rc, 0);
    assert_string_equal(p.password, "only");
    assert_int_equal(p.port, 7000);
    free(p.password);
}

static void test_bad_urls(void **state)
{
    (void)state;
    static const struct { const char *url, *msg; } bad[] = {
        { "http://127.0.0.1", "starts with redis://" },
        { "rediss://127.0.0.1", "TLS" },
        { "redis://", "missing or too long host" },
        { "redis://:pw@:6379", "missing or too long host" },
        { "redis://h:0", "bad port" },
        { "redis://h:70000", "bad port" },
        { "redis://h:12x", "bad port" },
        { "redis://h:6379/x", "bad database number" },
        { "redis://h/-1", "bad database number" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct parsed p = parse(bad[i].url);
        assert_int_equal(p.rc, -1);
        assert_non_null(strstr(p.err, bad[i].msg));
        assert_null(p.password); /* nothing leaks on failure */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full_url),
        cmocka_unit_test(test_bad_urls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
