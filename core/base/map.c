/* map.c - string-keyed hash map.
 *
 * Keys are often chosen by clients (room names, message ids, user ids, session ids),
 * so the hash is keyed: SipHash-2-4 (libsodium's crypto_shorthash) with a random key
 * drawn at the first use, as Redis's dict does. With an unkeyed hash (this map used
 * FNV-1a) colliding keys are cheap to compute offline, and 100,000 of them turn every
 * lookup into a scan of all of them on the loop (docs/security.md has the figures). */
#include "base/map.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "base/util.h"

static unsigned char key[crypto_shorthash_KEYBYTES];
static bool keyed;

static void make_key(void)
{
    if (sodium_init() < 0) /* no usable randomness: refuse to run with a known key */
        mw__assert_fail("sodium_init() == 0", __FILE__, __LINE__);
    randombytes_buf(key, sizeof key);
    keyed = true;
}

static uint32_t hash_str(const char *s)
{
    unsigned char out[crypto_shorthash_BYTES];
    uint32_t h;
    if (!keyed)
        make_key();
    crypto_shorthash(out, (const unsigned char *)s, strlen(s), key);
    memcpy(&h, out, sizeof h);
    return h;
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
