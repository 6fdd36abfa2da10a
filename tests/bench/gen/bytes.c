/* bytes.c - growable byte buffers (see bytes.h). */
#include "bytes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bytes_reserve(struct bytes *b, size_t more)
{
    if (b->off && b->off == b->len)
        b->off = b->len = 0;
    if (b->len + more <= b->cap)
        return;
    if (b->off) { /* compact before growing */
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->len + more <= b->cap)
            return;
    }
    size_t cap = b->cap ? b->cap : 512;
    while (cap < b->len + more)
        cap *= 2;
    b->p = realloc(b->p, cap);
    if (!b->p) {
        perror("mwbench: realloc");
        abort();
    }
    b->cap = cap;
}

void bytes_append(struct bytes *b, const void *p, size_t n)
{
    bytes_reserve(b, n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

void bytes_free(struct bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}
