/* msg.h - a WebSocket frame built once and shared by every recipient.
 *
 * Server frames are unmasked, so header + payload are the same bytes for every
 * connection: a broadcast encodes and frames once, then queues a reference per
 * recipient (docs/performance.md). Leaf module. */
#ifndef MW_MSG_H
#define MW_MSG_H

#include <stddef.h>
#include <stdint.h>

enum {
    MW_OP_TEXT = 0x1,
    MW_OP_BINARY = 0x2,
    MW_OP_CLOSE = 0x8,
    MW_OP_PING = 0x9,
    MW_OP_PONG = 0xA,
};

/* Flags: what a slow-consumer policy may do with a queued frame, and what
 * permessage-deflate found. */
enum {
    MW_MSG_COALESCE = 1 << 0, /* may be dropped under `slow_consumer: drop` (typing, counts) */
    MW_MSG_CONTROL = 1 << 1,  /* control frame: never dropped */
    MW_MSG_PLAIN = 1 << 2,    /* compression did not make it smaller (deflate.c) */
};

struct mw_msg {
    uint32_t refs;
    uint32_t len;   /* header + payload bytes */
    uint16_t hdr;   /* header bytes; payload starts at data + hdr */
    uint16_t flags;
    struct mw_msg *z; /* its compressed frame, made once (deflate.c), or NULL */
    unsigned char data[];
};

/* Returns a new frame (FIN set) holding a copy of payload, with one reference owned
 * by the caller. */
struct mw_msg *mw_msg_new(int opcode, const void *payload, size_t len, unsigned flags);

static inline struct mw_msg *mw_msg_incref(struct mw_msg *m)
{
    m->refs++;
    return m;
}

void mw_msg_decref(struct mw_msg *m);

static inline const char *mw_msg_payload(const struct mw_msg *m, size_t *len)
{
    *len = m->len - m->hdr;
    return (const char *)m->data + m->hdr;
}

#endif
