/* sendq.h - a connection's send queue: a ring of shared frame references, bounded in
 * bytes by its owner, with the coalescible-drop policy of `slow_consumer: drop` and
 * the queued frames laid out for one write.
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
/* Asks the CPU for the slot the next push writes (a broadcast does it a few members
 * ahead: each member's queue is a cache miss otherwise). */
static inline void mw_sendq_prefetch_tail(const struct mw_sendq *q)
{
    if (q->ring)
        __builtin_prefetch(&q->ring[(q->head + q->len) & (q->cap - 1)], 1);
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

/* Frames of at most this many bytes are copied together for a write (see
 * mw_sendq_iov): below it the kernel's cost per iovec outweighs the copy. */
#define MW_SENDQ_COPY_MAX 2048

/* The bytes queued from the head (the unwritten part of the head frame, then whole
 * frames), at most max bytes but always the first frame's, as at most maxiov iovecs.
 * Two or more small frames (<= MW_SENDQ_COPY_MAX) in a row are copied one after the
 * other into scratch (while scratch_cap lasts) and take one iovec; other frames are
 * pointed at where they lie. Under a backlog of small frames one write then takes up
 * to max bytes however many frames they are. Consumes nothing. Returns the iovec
 * count; *nbytes their total. */
int mw_sendq_iov(const struct mw_sendq *q, struct iovec *iov, int maxiov, size_t max,
                 unsigned char *scratch, size_t scratch_cap, size_t *nbytes);
/* n bytes went out: frames fully written are released, a partly written one is
 * remembered in off. Returns the number of frames completed. */
uint32_t mw_sendq_consume(struct mw_sendq *q, size_t n);

/* Frees the ring of an empty queue (idle connections keep no ring). */
void mw_sendq_trim(struct mw_sendq *q);

#endif
