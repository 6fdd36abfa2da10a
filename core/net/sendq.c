/* sendq.c - the send queue: a ring of frame references, partial writes, the layout of
 * a write. */
#include "net/sendq.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

static void grow(struct mw_sendq *q)
{
    uint32_t cap = q->cap ? q->cap * 2 : 8;
    struct mw_msg **ring = mw_malloc(cap * sizeof *ring);
    for (uint32_t i = 0; i < q->len; i++)
        ring[i] = mw_sendq_at(q, i);
    free(q->ring);
    q->ring = ring;
    q->cap = cap;
    q->head = 0;
}

void mw_sendq_push(struct mw_sendq *q, struct mw_msg *m)
{
    if (q->len == q->cap)
        grow(q);
    q->ring[(q->head + q->len) & (q->cap - 1)] = mw_msg_incref(m);
    q->len++;
    q->bytes += m->len;
}

/* Releases the head frame. */
static void pop(struct mw_sendq *q)
{
    struct mw_msg *m = q->ring[q->head];
    q->bytes -= m->len - q->off;
    q->off = 0;
    q->head = (q->head + 1) & (q->cap - 1);
    q->len--;
    mw_msg_decref(m);
}

void mw_sendq_clear(struct mw_sendq *q)
{
    while (q->len)
        pop(q);
}

uint32_t mw_sendq_discard(struct mw_sendq *q)
{
    uint32_t keep = q->off ? 1 : 0, n = 0;
    while (q->len > keep) { /* from the tail: the head may stay */
        uint32_t last = (q->head + q->len - 1) & (q->cap - 1);
        q->bytes -= q->ring[last]->len;
        mw_msg_decref(q->ring[last]);
        q->len--;
        n++;
    }
    return n;
}

uint32_t mw_sendq_drop_coalescible(struct mw_sendq *q, size_t limit, size_t need)
{
    uint32_t mask = q->cap - 1, kept = 0, dropped = 0;
    for (uint32_t i = 0; i < q->len; i++) {
        struct mw_msg *m = q->ring[(q->head + i) & mask];
        bool started = i == 0 && q->off;
        if ((m->flags & MW_MSG_COALESCE) && !started && q->bytes + need > limit) {
            q->bytes -= m->len;
            mw_msg_decref(m);
            dropped++;
            continue;
        }
        q->ring[(q->head + kept) & mask] = m;
        kept++;
    }
    q->len = kept;
    return dropped;
}

/* The bytes of the i-th frame still to write: *p and the length. */
static size_t piece(const struct mw_sendq *q, uint32_t i, const unsigned char **p)
{
    const struct mw_msg *m = mw_sendq_at(q, i);
    size_t skip = i == 0 ? q->off : 0;
    *p = m->data + skip;
    return m->len - skip;
}

static bool small(size_t n)
{
    return n <= MW_SENDQ_COPY_MAX;
}

int mw_sendq_iov(const struct mw_sendq *q, struct iovec *iov, int maxiov, size_t max,
                 unsigned char *scratch, size_t scratch_cap, size_t *nbytes)
{
    const unsigned char *p;
    size_t sum = 0, used = 0;
    int k = 0;
    bool run = false; /* iov[k - 1] is a run of frames copied into scratch */
    for (uint32_t i = 0; i < q->len; i++) {
        size_t n = piece(q, i, &p);
        if (i && sum + n > max)
            break;
        bool copy = small(n) && used + n <= scratch_cap;
        if (copy && run) {
            memcpy(scratch + used, p, n);
            iov[k - 1].iov_len += n;
            used += n;
            sum += n;
            continue;
        }
        if (k == maxiov)
            break;
        /* a run starts only where a second small frame follows: one frame alone
         * is written from where it lies */
        run = copy && i + 1 < q->len && small(mw_sendq_at(q, i + 1)->len);
        if (run) {
            memcpy(scratch + used, p, n);
            iov[k] = (struct iovec){ scratch + used, n };
            used += n;
        } else {
            iov[k] = (struct iovec){ (void *)p, n };
        }
        k++;
        sum += n;
    }
    *nbytes = sum;
    return k;
}

uint32_t mw_sendq_consume(struct mw_sendq *q, size_t n)
{
    uint32_t done = 0;
    while (n && q->len) {
        size_t left = q->ring[q->head]->len - q->off;
        if (n < left) {
            q->off += (uint32_t)n;
            q->bytes -= n;
            return done;
        }
        n -= left;
        pop(q);
        done++;
    }
    mw_assert(n == 0);
    return done;
}

void mw_sendq_trim(struct mw_sendq *q)
{
    if (q->len || !q->ring)
        return;
    free(q->ring);
    q->ring = NULL;
    q->cap = q->head = 0;
}
