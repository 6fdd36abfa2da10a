/* redis_cluster.c - key slots, routing keys, redirections and CLUSTER SLOTS parsing. */
#include "redis/redis_cluster.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>

#include "base/util.h"

uint16_t mw_redis_cluster_crc16(const char *p, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint8_t)p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = crc & 0x8000 ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

int mw_redis_cluster_key_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        const char *from = open + 1, *end = key + len;
        const char *close = memchr(from, '}', (size_t)(end - from));
        if (close && close > from) { /* "{}" is no tag: the whole key counts */
            key = from;
            len = (size_t)(close - from);
        }
    }
    return mw_redis_cluster_crc16(key, len) & (MW_REDIS_SLOTS - 1);
}

/* Where a command's first key is, for the commands whose key is not argv[1]. */
enum key_at {
    KEY_NONE,     /* no key */
    KEY_ARG2,     /* OBJECT ENCODING key, BITOP AND dest ... */
    KEY_NUMKEYS1, /* ZUNION numkeys key ... */
    KEY_NUMKEYS2, /* EVAL script numkeys key ..., BLMPOP timeout numkeys key ... */
    KEY_STREAMS,  /* XREAD ... STREAMS key ... */
};

static const struct {
    const char *name;
    enum key_at at;
} key_rules[] = {
    { "PING", KEY_NONE },          { "ECHO", KEY_NONE },          { "INFO", KEY_NONE },
    { "TIME", KEY_NONE },          { "DBSIZE", KEY_NONE },        { "RANDOMKEY", KEY_NONE },
    { "SCRIPT", KEY_NONE },        { "FUNCTION", KEY_NONE },      { "CLUSTER", KEY_NONE },
    { "CONFIG", KEY_NONE },        { "COMMAND", KEY_NONE },       { "CLIENT", KEY_NONE },
    { "KEYS", KEY_NONE },          { "SCAN", KEY_NONE },          { "FLUSHALL", KEY_NONE },
    { "FLUSHDB", KEY_NONE },       { "WAIT", KEY_NONE },          { "PUBSUB", KEY_NONE },
    { "LASTSAVE", KEY_NONE },      { "SLOWLOG", KEY_NONE },       { "LATENCY", KEY_NONE },
    { "ROLE", KEY_NONE },          { "ACL", KEY_NONE },           { "MEMORY", KEY_ARG2 },
    { "OBJECT", KEY_ARG2 },        { "XINFO", KEY_ARG2 },         { "XGROUP", KEY_ARG2 },
    { "BITOP", KEY_ARG2 },         { "EVAL", KEY_NUMKEYS2 },      { "EVALSHA", KEY_NUMKEYS2 },
    { "EVAL_RO", KEY_NUMKEYS2 },   { "EVALSHA_RO", KEY_NUMKEYS2 }, { "FCALL", KEY_NUMKEYS2 },
    { "FCALL_RO", KEY_NUMKEYS2 },  { "BLMPOP", KEY_NUMKEYS2 },    { "BZMPOP", KEY_NUMKEYS2 },
    { "ZUNION", KEY_NUMKEYS1 },    { "ZINTER", KEY_NUMKEYS1 },    { "ZDIFF", KEY_NUMKEYS1 },
    { "ZINTERCARD", KEY_NUMKEYS1 }, { "SINTERCARD", KEY_NUMKEYS1 }, { "LMPOP", KEY_NUMKEYS1 },
    { "ZMPOP", KEY_NUMKEYS1 },     { "XREAD", KEY_STREAMS },      { "XREADGROUP", KEY_STREAMS },
};

static size_t arg_len(const char **argv, const size_t *lens, int i)
{
    return lens ? lens[i] : strlen(argv[i]);
}

static bool arg_is(const char **argv, const size_t *lens, int i, const char *word)
{
    size_t n = strlen(word);
    return arg_len(argv, lens, i) == n && strncasecmp(argv[i], word, n) == 0;
}

/* The first key when argv[numkeys_at] counts the keys that follow it. */
static int numkeys_key(int argc, const char **argv, const size_t *lens, int numkeys_at)
{
    char num[24];
    size_t n = numkeys_at < argc ? arg_len(argv, lens, numkeys_at) : 0;
    if (n == 0 || n >= sizeof num || numkeys_at + 1 >= argc)
        return -1;
    memcpy(num, argv[numkeys_at], n);
    num[n] = '\0';
    return strtol(num, NULL, 10) > 0 ? numkeys_at + 1 : -1;
}

int mw_redis_cluster_command_key(int argc, const char **argv, const size_t *lens,
                                 const char **key, size_t *keylen)
{
    int at = argc >= 2 ? 1 : -1;
    for (size_t i = 0; argc >= 1 && i < sizeof key_rules / sizeof key_rules[0]; i++) {
        if (!arg_is(argv, lens, 0, key_rules[i].name))
            continue;
        switch (key_rules[i].at) {
        case KEY_NONE:
            at = -1;
            break;
        case KEY_ARG2:
            at = argc >= 3 ? 2 : -1;
            break;
        case KEY_NUMKEYS1:
            at = numkeys_key(argc, argv, lens, 1);
            break;
        case KEY_NUMKEYS2:
            at = numkeys_key(argc, argv, lens, 2);
            break;
        case KEY_STREAMS:
            at = -1;
            for (int a = 1; a + 1 < argc; a++)
                if (arg_is(argv, lens, a, "STREAMS")) {
                    at = a + 1;
                    break;
                }
            break;
        }
        break;
    }
    if (at < 0)
        return -1;
    *key = argv[at];
    *keylen = arg_len(argv, lens, at);
    return 0;
}

enum mw_redis_redirect mw_redis_cluster_parse_redirect(const char *err, size_t len, int *slot,
                                                       struct mw_redis_addr *to)
{
    enum mw_redis_redirect kind;
    const char *p = err, *end = err + len;
    if (len > 6 && memcmp(p, "MOVED ", 6) == 0) {
        kind = MW_REDIS_MOVED;
        p += 6;
    } else if (len > 4 && memcmp(p, "ASK ", 4) == 0) {
        kind = MW_REDIS_ASK;
        p += 4;
    } else {
        return MW_REDIS_NO_REDIRECT;
    }
    long s = 0;
    const char *digits = p;
    while (p < end && *p >= '0' && *p <= '9' && s < MW_REDIS_SLOTS)
        s = s * 10 + (*p++ - '0');
    if (p == digits || s >= MW_REDIS_SLOTS || p >= end || *p != ' ')
        return MW_REDIS_NO_REDIRECT;
    const char *addr = ++p;
    while (end > addr && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    const char *colon = NULL; /* the last one: an IPv6 address has several */
    for (const char *q = addr; q < end; q++)
        if (*q == ':')
            colon = q;
    if (!colon || (size_t)(colon - addr) >= sizeof to->ip || colon + 1 >= end)
        return MW_REDIS_NO_REDIRECT;
    long port = 0;
    for (const char *q = colon + 1; q < end; q++) {
        if (*q < '0' || *q > '9' || port > 65535)
            return MW_REDIS_NO_REDIRECT;
        port = port * 10 + (*q - '0');
    }
    if (port < 1 || port > 65535)
        return MW_REDIS_NO_REDIRECT;
    memcpy(to->ip, addr, (size_t)(colon - addr));
    to->ip[colon - addr] = '\0';
    to->port = (int)port;
    *slot = (int)s;
    return kind;
}

/* The index of addr in t->masters, added when new. */
static int16_t master_index(struct mw_redis_slot_table *t, const char *ip, size_t iplen, int port)
{
    for (uint32_t i = 0; i < t->nmasters; i++)
        if (t->masters[i].port == port && strlen(t->masters[i].ip) == iplen &&
            memcmp(t->masters[i].ip, ip, iplen) == 0)
            return (int16_t)i;
    t->masters = mw_realloc(t->masters, (t->nmasters + 1) * sizeof *t->masters);
    struct mw_redis_addr *a = &t->masters[t->nmasters];
    memcpy(a->ip, ip, iplen);
    a->ip[iplen] = '\0';
    a->port = port;
    return (int16_t)t->nmasters++;
}

struct mw_redis_slot_table *mw_redis_cluster_table_parse(const struct redisReply *r,
                                                         const char *asked_ip, char *err,
                                                         size_t errlen)
{
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        snprintf(err, errlen, "%s", r && r->type == REDIS_REPLY_ERROR ? r->str : "not an array");
        return NULL;
    }
    struct mw_redis_slot_table *t = mw_calloc(1, sizeof *t);
    memset(t->owner, 0xff, sizeof t->owner); /* -1 everywhere */
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i], *m;
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            (m = e->element[2])->type != REDIS_REPLY_ARRAY || m->elements < 2 ||
            m->element[0]->type != REDIS_REPLY_STRING ||
            m->element[1]->type != REDIS_REPLY_INTEGER) {
            snprintf(err, errlen, "entry %zu: not [start, end, [ip, port, ...], ...]", i);
            goto fail;
        }
        long long from = e->element[0]->integer, to = e->element[1]->integer;
        long long port = m->element[1]->integer;
        if (from < 0 || to < from || to >= MW_REDIS_SLOTS || port < 1 || port > 65535) {
            snprintf(err, errlen, "entry %zu: bad slot range or port", i);
            goto fail;
        }
        const char *ip = m->element[0]->str;
        size_t iplen = (size_t)m->element[0]->len;
        if (iplen == 0 || (iplen == 1 && ip[0] == '?')) {
            ip = asked_ip;
            iplen = strlen(asked_ip);
        }
        if (iplen == 0 || iplen >= sizeof t->masters[0].ip) {
            snprintf(err, errlen, "entry %zu: bad address", i);
            goto fail;
        }
        int16_t idx = master_index(t, ip, iplen, (int)port);
        for (long long s = from; s <= to; s++) {
            t->covered += t->owner[s] < 0;
            t->owner[s] = idx;
        }
    }
    return t;
fail:
    mw_redis_cluster_table_free(t);
    return NULL;
}

void mw_redis_cluster_table_free(struct mw_redis_slot_table *t)
{
    if (!t)
        return;
    free(t->masters);
    free(t);
}
