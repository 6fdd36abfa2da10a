/* redis_cluster.h - the parts of the Redis Cluster protocol that need no connection:
 * key slots (CRC16 and {hash tags}), the key a command is routed by, MOVED/ASK
 * redirections, and the slot table read from CLUSTER SLOTS. redis.c does the
 * connecting; this leaf module is unit tested alone (tests/unit/test_redis_cluster.c). */
#ifndef MW_REDIS_CLUSTER_H
#define MW_REDIS_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

struct redisReply;

#define MW_REDIS_SLOTS 16384

/* CRC16/XMODEM (polynomial 0x1021, initial value 0), the checksum of key slots. */
uint16_t mw_redis_cluster_crc16(const char *p, size_t len);

/* The slot (0..16383) of a key: CRC16 of the key, or of the part between its first
 * '{' and the next '}' when that part is not empty, mod 16384. */
int mw_redis_cluster_key_slot(const char *key, size_t len);

/* The key a command is routed by (argv[1] for most commands, the first key of
 * EVAL/EVALSHA/FCALL, the channel of PUBLISH/SPUBLISH). 0 with *key and *keylen set,
 * or -1 when the command has no key (PING, EVAL with no keys): any master serves it. */
int mw_redis_cluster_command_key(int argc, const char **argv, const size_t *lens,
                                 const char **key, size_t *keylen);

struct mw_redis_addr {
    char ip[64]; /* "" when Redis did not know the endpoint: the node that answered */
    int port;
};

enum mw_redis_redirect { MW_REDIS_NO_REDIRECT, MW_REDIS_MOVED, MW_REDIS_ASK };

/* Reads an error reply "MOVED <slot> <ip>:<port>" or "ASK <slot> <ip>:<port>".
 * Returns MW_REDIS_NO_REDIRECT for any other error text. */
enum mw_redis_redirect mw_redis_cluster_parse_redirect(const char *err, size_t len, int *slot,
                                                       struct mw_redis_addr *to);

/* Who serves which slot, as CLUSTER SLOTS told. */
struct mw_redis_slot_table {
    struct mw_redis_addr *masters; /* distinct, in order of first appearance */
    uint32_t nmasters;
    uint32_t covered;                /* slots with an owner */
    int16_t owner[MW_REDIS_SLOTS];   /* index into masters, or -1 */
};

/* Parses a CLUSTER SLOTS reply; a master entry with an empty or "?" endpoint gets
 * asked_ip (the node that answered). Returns a table the caller frees with
 * mw_redis_cluster_table_free, or NULL with err set. */
struct mw_redis_slot_table *mw_redis_cluster_table_parse(const struct redisReply *r,
                                                         const char *asked_ip, char *err,
                                                         size_t errlen);
void mw_redis_cluster_table_free(struct mw_redis_slot_table *t);

#endif
