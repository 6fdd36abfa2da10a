/* map.c - string-keyed hash map.
 *
 * Keys are often chosen by clients (room names, message ids, user ids, session ids),
 * so the hash is keyed: SipHash-1-3 (one compression round per 8 bytes, three to
 * finish: the variant Rust's HashMap uses against hash flooding) with a random key drawn
 * at the first use, as Redis's dict does. With an unkeyed hash (this map used FNV-1a)
 * colliding keys are cheap to compute offline, and 100,000 of them turn every lookup
 * into a scan of all of them on the loop (docs/security.md has the figures).
 * SipHash-2-4 (libsodium's crypto_shorthash) cost a handshake ~20 lookups of ~180
 * instructions. */
#include "base/map.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "base/util.h"

static uint64_t k0, k1;
static bool keyed;

static void make_key(void)
{
    uint64_t k[2];
    if (sodium_init() < 0) /* no usable randomness: refuse to run with a known key */
        mw__assert_fail("sodium_init() == 0", __FILE__, __LINE__);
    randombytes_buf(k, sizeof k);
    k0 = k[0];
    k1 = k[1];
    keyed = true;
}

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                      \
    do {                                                                              \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                     \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                        \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                        \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                     \
    } while (0)

#ifndef SIP_C /* rounds per word and to finish (2 and 4 give SipHash-2-4, for a check) */
#define SIP_C 1
#define SIP_D 3
#endif

/* SipHash-1-3 of the NUL-terminated string s (little-endian words, as the reference
 * reads them; the build is for little-endian machines), the length in the last word. */
static uint64_t siphash13(const char *s)
{
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL,
             v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
    size_t len = strlen(s);
    const char *end = s + (len & ~(size_t)7);
    uint64_t m;
    for (; s < end; s += 8) {
        memcpy(&m, s, 8); /* little-endian (x86-64, arm64) */
        v3 ^= m;
        for (int r = 0; r < SIP_C; r++)
            SIPROUND;
        v0 ^= m;
    }
    m = (uint64_t)len << 56;
    switch (len & 7) {
    case 7: m |= (uint64_t)(unsigned char)s[6] << 48; /* fall through */
    case 6: m |= (uint64_t)(unsigned char)s[5] << 40; /* fall through */
    case 5: m |= (uint64_t)(unsigned char)s[4] << 32; /* fall through */
    case 4: m |= (uint64_t)(unsigned char)s[3] << 24; /* fall through */
    case 3: m |= (uint64_t)(unsigned char)s[2] << 16; /* fall through */
    case 2: m |= (uint64_t)(unsigned char)s[1] << 8; /* fall through */
    case 1: m |= (uint64_t)(unsigned char)s[0]; break;
    }
    v3 ^= m;
    for (int r = 0; r < SIP_C; r++)
        SIPROUND;
    v0 ^= m;
    v2 ^= 0xff;
    for (int r = 0; r < SIP_D; r++)
        SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static uint32_t hash_str(const char *s)
{
    if (!keyed)
        make_key();
    return (uint32_t)siphash13(s);
}

static int32_t find(const struct mw_map *m, const char *key, uint32_t h)
{
    if (!m->cap)
        return -1;
    uint32_t mask = m->cap - 1;
    for (uint32_t i = h & mask;; i = (i + 1) & mask) {
        const struct mw_map_slot *s = &m->slots[i];
        if (!s->key)
            return -1;
        if (s->hash == h && strcmp(s->key, key) == 0)
            return (int32_t)i;
    }
}

static void insert_slot(struct mw_map *m, const char *key, uint32_t h, void *val)
{
    uint32_t mask = m->cap - 1;
    uint32_t i = h & mask;
    while (m->slots[i].key)
        i = (i + 1) & mask;
    m->slots[i] = (struct mw_map_slot){ key, h, val };
    m->len++;
}

static void grow(struct mw_map *m)
{
    struct mw_map_slot *old = m->slots;
    uint32_t oldcap = m->cap;
    m->cap = oldcap ? oldcap * 2 : 8;
    m->slots = mw_calloc(m->cap, sizeof *m->slots);
    m->len = 0;
    for (uint32_t i = 0; i < oldcap; i++)
        if (old[i].key)
            insert_slot(m, old[i].key, old[i].hash, old[i].val);
    free(old);
}

void *mw_map_get(const struct mw_map *m, const char *key)
{
    int32_t i = find(m, key, hash_str(key));
    return i < 0 ? NULL : m->slots[i].val;
}

void *mw_map_put(struct mw_map *m, const char *key, void *val)
{
    uint32_t h = hash_str(key);
    int32_t i = find(m, key, h);
    if (i >= 0) {
        void *prev = m->slots[i].val;
        m->slots[i].key = key;
        m->slots[i].val = val;
        return prev;
    }
    if ((m->len + 1) * 4 > m->cap * 3)
        grow(m);
    insert_slot(m, key, h, val);
    return NULL;
}

void *mw_map_del(struct mw_map *m, const char *key)
{
    int32_t found = find(m, key, hash_str(key));
    if (found < 0)
        return NULL;
    uint32_t mask = m->cap - 1;
    uint32_t i = (uint32_t)found;
    void *val = m->slots[i].val;
    /* Backward-shift: move later entries of the probe run into the hole. */
    for (uint32_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
        uint32_t home = m->slots[j].hash & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i] = (struct mw_map_slot){ 0 };
    m->len--;
    return val;
}

void mw_map_free(struct mw_map *m)
{
    free(m->slots);
    *m = (struct mw_map){ 0 };
}
