/* map.c - string-keyed hash map. */
#include "map.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
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
