/* test_redis_cluster.c - key slots, routing keys, MOVED/ASK and CLUSTER SLOTS parsing
 * (redis_cluster.c), against the Redis Cluster specification's values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "redis/redis_cluster.h"

static int slot_of(const char *key)
{
    return mw_redis_cluster_key_slot(key, strlen(key));
}

static void test_crc16_spec_vector(void **state)
{
    (void)state;
    /* The cluster spec's test vector for CRC16/XMODEM. */
    assert_int_equal(mw_redis_cluster_crc16("123456789", 9), 0x31C3);
    assert_int_equal(slot_of("123456789"), 12739);
    assert_int_equal(mw_redis_cluster_crc16("", 0), 0);
}

static void test_known_slots(void **state)
{
    (void)state;
    /* As CLUSTER KEYSLOT answers them. */
    assert_int_equal(slot_of("foo"), 12182);
    assert_int_equal(slot_of("bar"), 5061);
    assert_int_equal(slot_of("hello"), 866);
    assert_int_equal(slot_of(""), 0);
    for (int i = 0; i < 1000; i++) {
        char key[32];
        int n = snprintf(key, sizeof key, "key:%d", i);
        int s = mw_redis_cluster_key_slot(key, (size_t)n);
        assert_true(s >= 0 && s < MW_REDIS_SLOTS);
    }
}

static void test_hash_tags(void **state)
{
    (void)state;
    /* The examples of the cluster spec. */
    assert_int_equal(slot_of("{user1000}.following"), slot_of("user1000"));
    assert_int_equal(slot_of("{user1000}.followers"), slot_of("user1000"));
    assert_int_equal(slot_of("foo{}{bar}"), mw_redis_cluster_crc16("foo{}{bar}", 10) % 16384);
    assert_int_equal(slot_of("foo{{bar}}zap"), slot_of("{bar"));
    assert_int_equal(slot_of("foo{bar}{zap}"), slot_of("bar"));
    assert_int_equal(slot_of("no{close"), mw_redis_cluster_crc16("no{close", 8) % 16384);
    /* What moonwire relies on: a room's channel and presence keys share a slot. */
    assert_int_equal(slot_of("mw:room:{lobby}"), slot_of("mw:pu:{lobby}"));
    assert_int_equal(slot_of("mw:pc:{lobby}"), slot_of("mw:pm:{lobby}"));
    assert_int_equal(slot_of("mw:room:{lobby}"), slot_of("lobby"));
    /* Binary-safe: the length counts, not a NUL. */
    assert_int_equal(mw_redis_cluster_key_slot("a\0b", 3),
                     mw_redis_cluster_crc16("a\0b", 3) % 16384);
}

static const char *key_of(int argc, const char **argv)
{
    static char out[64];
    const char *key;
    size_t len;
    if (mw_redis_cluster_command_key(argc, argv, NULL, &key, &len) < 0)
        return NULL;
    snprintf(out, sizeof out, "%.*s", (int)len, key);
    return out;
}

#define KEY(...) key_of(sizeof((const char *[]){ __VA_ARGS__ }) / sizeof(const char *), \
                        (const char *[]){ __VA_ARGS__ })

static void test_command_keys(void **state)
{
    (void)state;
    assert_string_equal(KEY("GET", "k"), "k");
    assert_string_equal(KEY("set", "k", "v", "PX", "10"), "k");
    assert_string_equal(KEY("SPUBLISH", "mw:room:{a}", "hi"), "mw:room:{a}");
    assert_string_equal(KEY("PUBLISH", "ch", "hi"), "ch");
    assert_string_equal(KEY("EVAL", "return 1", "3", "a", "b", "c", "x"), "a");
    assert_string_equal(KEY("evalsha", "abc", "1", "k1"), "k1");
    assert_null(KEY("EVAL", "return 1", "0"));
    assert_null(KEY("EVAL", "return 1", "0", "not-a-key"));
    assert_null(KEY("PING"));
    assert_null(KEY("SCRIPT", "LOAD", "return 1"));
    assert_null(KEY("CLUSTER", "SLOTS"));
    assert_string_equal(KEY("OBJECT", "ENCODING", "k"), "k");
    assert_string_equal(KEY("ZUNION", "2", "a", "b"), "a");
    assert_string_equal(KEY("BLMPOP", "0", "1", "l", "LEFT"), "l");
    assert_string_equal(KEY("XREAD", "COUNT", "2", "STREAMS", "s1", "s2", "0", "0"), "s1");
    assert_null(KEY("XREAD", "COUNT", "2"));
    /* Lengths when given: the arguments need no NUL. */
    const char *argv[] = { "GETX", "key!" };
    size_t lens[] = { 3, 3 };
    const char *key;
    size_t len;
    assert_int_equal(mw_redis_cluster_command_key(2, argv, lens, &key, &len), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(key, "key", 3);
}

static void test_redirects(void **state)
{
    (void)state;
    struct mw_redis_addr to;
    int slot;
    const char *e = "MOVED 3999 127.0.0.1:6381";
    assert_int_equal(mw_redis_cluster_parse_redirect(e, strlen(e), &slot, &to), MW_REDIS_MOVED);
    assert_int_equal(slot, 3999);
    assert_string_equal(to.ip, "127.0.0.1");
    assert_int_equal(to.port, 6381);

    e = "ASK 12739 10.0.0.7:7002";
    assert_int_equal(mw_redis_cluster_parse_redirect(e, strlen(e), &slot, &to), MW_REDIS_ASK);
    assert_int_equal(slot, 12739);
    assert_string_equal(to.ip, "10.0.0.7");
    assert_int_equal(to.port, 7002);

    e = "MOVED 0 :7000"; /* Redis 7: the endpoint is the node that answered */
    assert_int_equal(mw_redis_cluster_parse_redirect(e, strlen(e), &slot, &to), MW_REDIS_MOVED);
    assert_int_equal(slot, 0);
    assert_string_equal(to.ip, "");
    assert_int_equal(to.port, 7000);

    e = "MOVED 16383 ::1:7001"; /* IPv6: the port follows the last colon */
    assert_int_equal(mw_redis_cluster_parse_redirect(e, strlen(e), &slot, &to), MW_REDIS_MOVED);
    assert_int_equal(slot, 16383);
    assert_string_equal(to.ip, "::1");
    assert_int_equal(to.port, 7001);

    static const char *const bad[] = {
        "ERR unknown command", "MOVED", "MOVED 16384 127.0.0.1:7000", "MOVED x 127.0.0.1:7000",
        "MOVED 1 127.0.0.1", "MOVED 1 127.0.0.1:0", "MOVED 1 127.0.0.1:70000",
        "MOVED 1 127.0.0.1:7x", "MOVED 1 127.0.0.1:", "MOVEDX 1 127.0.0.1:7000",
        "ASK 99999999999999999999 h:1", "TRYAGAIN Multiple keys request during rehashing of slot",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(mw_redis_cluster_parse_redirect(bad[i], strlen(bad[i]), &slot, &to),
                         MW_REDIS_NO_REDIRECT);
}

/* A reply as hiredis would hand it over, read from RESP text. */
static redisReply *reply_of(const char *resp)
{
    redisReader *rd = redisReaderCreate();
    void *r = NULL;
    assert_int_equal(redisReaderFeed(rd, resp, strlen(resp)), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &r), REDIS_OK);
    assert_non_null(r);
    redisReaderFree(rd);
    return r;
}

static void test_slot_table(void **state)
{
    (void)state;
    /* Three ranges, two masters (one of them twice), a replica, Redis 7's fourth
     * element (networking metadata) and an entry whose endpoint Redis did not know. */
    redisReply *r = reply_of(
        "*3\r\n"
        "*4\r\n:0\r\n:5460\r\n*4\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\naa\r\n*0\r\n"
        "*3\r\n$9\r\n127.0.0.1\r\n:7003\r\n$2\r\ndd\r\n"
        "*3\r\n:5461\r\n:10922\r\n*3\r\n$0\r\n\r\n:7001\r\n$2\r\nbb\r\n"
        "*3\r\n:10923\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\naa\r\n");
    char err[128];
    struct mw_redis_slot_table *t = mw_redis_cluster_table_parse(r, "10.1.2.3", err, sizeof err);
    assert_non_null(t);
    assert_int_equal(t->nmasters, 2);
    assert_int_equal(t->covered, MW_REDIS_SLOTS);
    assert_string_equal(t->masters[0].ip, "127.0.0.1");
    assert_int_equal(t->masters[0].port, 7000);
    assert_string_equal(t->masters[1].ip, "10.1.2.3");
    assert_int_equal(t->masters[1].port, 7001);
    assert_int_equal(t->owner[0], 0);
    assert_int_equal(t->owner[5460], 0);
    assert_int_equal(t->owner[5461], 1);
    assert_int_equal(t->owner[10922], 1);
    assert_int_equal(t->owner[10923], 0);
    assert_int_equal(t->owner[16383], 0);
    mw_redis_cluster_table_free(t);
    freeReplyObject(r);

    /* Slots no master serves (a cluster being set up, or a dead master's). */
    r = reply_of("*1\r\n*3\r\n:100\r\n:199\r\n*2\r\n$9\r\n127.0.0.1\r\n:7000\r\n");
    t = mw_redis_cluster_table_parse(r, "", err, sizeof err);
    assert_non_null(t);
    assert_int_equal(t->covered, 100);
    assert_int_equal(t->owner[99], -1);
    assert_int_equal(t->owner[100], 0);
    assert_int_equal(t->owner[199], 0);
    assert_int_equal(t->owner[200], -1);
    mw_redis_cluster_table_free(t);
    freeReplyObject(r);

    r = reply_of("*0\r\n"); /* not a cluster yet */
    t = mw_redis_cluster_table_parse(r, "", err, sizeof err);
    assert_non_null(t);
    assert_int_equal(t->covered, 0);
    assert_int_equal(t->nmasters, 0);
    mw_redis_cluster_table_free(t);
    freeReplyObject(r);
}

static void test_slot_table_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "-ERR This instance has cluster support disabled\r\n",
        "+OK\r\n",
        "*1\r\n:1\r\n",
        "*1\r\n*2\r\n:0\r\n:1\r\n",
        "*1\r\n*3\r\n:5\r\n:4\r\n*2\r\n$1\r\na\r\n:7000\r\n",     /* end before start */
        "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\na\r\n:7000\r\n", /* past the last slot */
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\na\r\n:0\r\n",        /* port 0 */
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$0\r\n\r\n:7000\r\n",      /* no address at all */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[128] = "";
        redisReply *r = reply_of(bad[i]);
        assert_null(mw_redis_cluster_table_parse(r, "", err, sizeof err));
        assert_true(err[0] != '\0');
        freeReplyObject(r);
    }
    char err[128] = "";
    assert_null(mw_redis_cluster_table_parse(NULL, "", err, sizeof err));
    assert_true(err[0] != '\0');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc16_spec_vector), cmocka_unit_test(test_known_slots),
        cmocka_unit_test(test_hash_tags),         cmocka_unit_test(test_command_keys),
        cmocka_unit_test(test_redirects),         cmocka_unit_test(test_slot_table),
        cmocka_unit_test(test_slot_table_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
