/* map.h - string-keyed hash map (open addressing, linear probing, backward-shift
 * deletion), hashed with SipHash under a random per-process key so that keys chosen
 * by clients cannot be made to collide. Keys are not copied: the entry's value owns its key, which must stay
 * valid and unchanged while the entry is in the map. Leaf module. */
#ifndef MW_MAP_H
#define MW_MAP_H

#include <stddef.h>
#include <stdint.h>

struct mw_map_slot {
    const char *key; /* NULL = empty */
    uint32_t hash;
    void *val;
};

struct mw_map {
    struct mw_map_slot *slots;
    uint32_t cap; /* 0 or a power of two */
    uint32_t len;
};

void *mw_map_get(const struct mw_map *m, const char *key);
/* Inserts or replaces; returns the previous value or NULL. */
void *mw_map_put(struct mw_map *m, const char *key, void *val);
/* Removes; returns the removed value or NULL. */
void *mw_map_del(struct mw_map *m, const char *key);
void mw_map_free(struct mw_map *m);

/* Iteration: for (uint32_t i = 0; i < m->cap; i++) if (m->slots[i].key) ... ; do not
 * insert or delete while iterating (collect first). */

#endif
