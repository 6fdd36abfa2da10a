/* sendq.h - a connection's send queue: a ring of shared frame references, bounded in
 * bytes by its owner, with the coalescible-drop policy of `slow_consumer: drop` and
 * the gather of queued frames into one write.
 *
 * Leaf module (msg.h only): no sockets, no libwebsockets, unit-tested alone. A write
 * may take part of a frame: `off` remembers how much of the head frame is out, so a
 * transport that writes with writev() never copies. */
#ifndef MW_SENDQ_H
#define MW_SENDQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "base/msg.h"

struct mw_sendq {
    struct mw_msg **ring; /* NULL until the first push; freed by mw_sendq_trim */
    uint32_t head, len, cap; /* cap is 0 or a power of two */
    uint32_t off;            /* bytes of the head frame already written */
    size_t bytes;            /* bytes still to write (off excluded) */
};

/* Appends m (takes a new reference). */
void mw_sendq_push(struct mw_sendq *q, struct mw_msg *m);
/* The i-th queued frame from the head (i < len). */
static inline struct mw_msg *mw_sendq_at(const struct mw_sendq *q, uint32_t i)
{
    return q->ring[(q->head + i) & (q->cap - 1)];
}
/* Whether the head frame is partly written: it must then be finished before any
 * other frame, whatever is dropped. */
static inline bool mw_sendq_started(const struct mw_sendq *q)
{
    return q->off != 0;
}

/* Drops every frame (a connection being freed). */
void mw_sendq_clear(struct mw_sendq *q);
/* Drops every frame that has not started to go out (a slow consumer being closed:
 * the close frame follows a partly written frame, never cuts it). Returns the count. */
uint32_t mw_sendq_discard(struct mw_sendq *q);
/* `slow_consumer: drop`: removes queued frames flagged MW_MSG_COALESCE, oldest first,
 * until `need` more bytes fit under `limit`. Returns the number dropped; whether it
 * fits now is q->bytes + need <= limit. */
uint32_t mw_sendq_drop_coalescible(struct mw_sendq *q, size_t limit, size_t need);

/* Copies queued bytes from the head (the unwritten part of the head frame, then whole
 * frames) into buf, at most max bytes but always at least the first frame's bytes
 * (buf must hold them: see mw_sendq_gather_need). Consumes nothing. Returns the
 * byte count. */
size_t mw_sendq_gather(const struct mw_sendq *q, unsigned char *buf, size_t max);
/* How many bytes mw_sendq_gather(q, buf, max) writes. */
size_t mw_sendq_gather_need(const struct mw_sendq *q, size_t max);
/* The same bytes as iovecs pointing into the frames (at most maxiov). Returns the
 * iovec count; *nbytes their total. */
int mw_sendq_iov(const struct mw_sendq *q, struct iovec *iov, int maxiov, size_t max,
                 size_t *nbytes);
/* n bytes went out: frames fully written are released, a partly written one is
 * remembered in off. Returns the number of frames completed. */
uint32_t mw_sendq_consume(struct mw_sendq *q, size_t n);

/* Frees the ring of an empty queue (idle connections keep no ring). */
void mw_sendq_trim(struct mw_sendq *q);

#endif
