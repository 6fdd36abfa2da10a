/* bytes.h - a growable byte buffer consumed from the front (partial frames, unsent
 * bytes). Leaf module. */
#ifndef MWB_BYTES_H
#define MWB_BYTES_H

#include <stddef.h>

struct bytes {
    unsigned char *p;
    size_t len, cap, off; /* off: bytes already consumed from the front */
};

/* Makes room for `more` bytes after len (compacting first); aborts when out of memory. */
void bytes_reserve(struct bytes *b, size_t more);
void bytes_append(struct bytes *b, const void *p, size_t n);
/* Frees the memory; the buffer is empty and usable again. */
void bytes_free(struct bytes *b);

static inline size_t bytes_pending(const struct bytes *b)
{
    return b->len - b->off;
}

#endif
