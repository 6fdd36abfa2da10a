/* msg.c - refcounted, pre-framed WebSocket messages. */
#include "base/msg.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

static size_t header_len(size_t len)
{
    return len < 126 ? 2 : len <= 0xffff ? 4 : 10;
}

struct mw_msg *mw_msg_new(int opcode, const void *payload, size_t len, unsigned flags)
{
    size_t hdr = header_len(len);
    struct mw_msg *m = mw_malloc(sizeof *m + hdr + len);
    unsigned char *h = m->data;

    m->refs = 1;
    m->z = NULL;
    m->len = (uint32_t)(hdr + len);
    m->hdr = (uint16_t)hdr;
    m->flags = (uint16_t)flags;
    h[0] = (unsigned char)(0x80 | (opcode & 0x0f));
    if (hdr == 2) {
        h[1] = (unsigned char)len;
    } else if (hdr == 4) {
        h[1] = 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    }
    if (len)
        memcpy(h + hdr, payload, len);
    return m;
}

void mw_msg_decref(struct mw_msg *m)
{
    mw_assert(m->refs > 0);
    if (--m->refs == 0) {
        if (m->z)
            mw_msg_decref(m->z);
        free(m);
    }
}
