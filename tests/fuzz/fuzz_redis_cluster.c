/* fuzz_redis_cluster.c - the Redis Cluster parsers (core/redis/redis_cluster.c): the input
 * is read as RESP replies (hiredis's reader, as from a server); each one goes to the
 * CLUSTER SLOTS parser, an error reply to the MOVED/ASK parser, and the raw bytes to
 * the slot and redirect functions too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include "redis/redis_cluster.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_table(const struct mw_redis_slot_table *t)
{
    uint32_t covered = 0;
    for (int s = 0; s < MW_REDIS_SLOTS; s++) {
        if (t->owner[s] >= (int)t->nmasters)
            abort();
        covered += t->owner[s] >= 0;
    }
    if (covered != t->covered)
        abort();
}

/* Whether RESP in data announces an array of 10,000 elements or more: hiredis 0.14's
 * reader allocates the element pointers at once (`*323456789` is 2.5 GB). That is the
 * reader trusting its Redis server, not the parsers under test: such inputs are
 * skipped. */
static int huge_array(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        if (data[i] != '*')
            continue;
        size_t digits = 0;
        while (i + 1 + digits < size && data[i + 1 + digits] >= '0' && data[i + 1 + digits] <= '9')
            digits++;
        if (digits >= 5)
            return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    if (huge_array(data, size))
        return 0;
    int slot;
    struct mw_redis_addr to;
    redisReader *rd = redisReaderCreate();
    void *reply = NULL;
    if (!rd)
        return 0;
    redisReaderFeed(rd, (const char *)data, size);
    for (int i = 0; i < 8 && redisReaderGetReply(rd, &reply) == REDIS_OK && reply; i++) {
        redisReply *r = reply;
        if (r->type == REDIS_REPLY_ERROR)
            mw_redis_cluster_parse_redirect(r->str, r->len, &slot, &to);
        struct mw_redis_slot_table *t = mw_redis_cluster_table_parse(r, "127.0.0.1", err, sizeof err);
        if (t) {
            check_table(t);
            mw_redis_cluster_table_free(t);
        }
        freeReplyObject(reply);
        reply = NULL;
    }
    redisReaderFree(rd);
    if (mw_redis_cluster_parse_redirect((const char *)data, size, &slot, &to) != MW_REDIS_NO_REDIRECT &&
        (slot < 0 || slot >= MW_REDIS_SLOTS))
        abort();
    int ks = mw_redis_cluster_key_slot((const char *)data, size);
    if (ks < 0 || ks >= MW_REDIS_SLOTS)
        abort();
    return 0;
}
