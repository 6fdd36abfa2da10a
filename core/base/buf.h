/* buf.h - growable byte buffer used by encoders and the framing code. */
#ifndef MW_BUF_H
#define MW_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>

struct mw_buf {
    char *p;
    size_t len;
    size_t cap;
};

/* Grows the buffer to take `extra` more bytes (the slow path of mw_buf_reserve). */
void mw__buf_grow(struct mw_buf *b, size_t extra);

/* Ensures room for `extra` more bytes; aborts on allocation failure. Inline, like
 * append and putc: the JSON writers call them per token. */
static inline void mw_buf_reserve(struct mw_buf *b, size_t extra)
{
    if (b->len + extra > b->cap)
        mw__buf_grow(b, extra);
}

static inline void mw_buf_append(struct mw_buf *b, const void *data, size_t n)
{
    if (!n)
        return;
    mw_buf_reserve(b, n);
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static inline void mw_buf_putc(struct mw_buf *b, char c)
{
    mw_buf_reserve(b, 1);
    b->p[b->len++] = c;
}
/* Appends printf-formatted text. */
void mw_buf_printf(struct mw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends v in decimal (no printf: ten times cheaper on the per-message path). */
void mw_buf_put_u64(struct mw_buf *b, uint64_t v);
static inline void mw_buf_puts(struct mw_buf *b, const char *s) { mw_buf_append(b, s, strlen(s)); }
static inline void mw_buf_reset(struct mw_buf *b) { b->len = 0; }
void mw_buf_free(struct mw_buf *b);

/* A buffer a function keeps from call to call (per message: no allocation and no
 * growth once it is big enough). mw_scratch_take gives it, emptied, or `spare` when
 * it is taken already (the function re-entered, or an error jumped past its
 * mw_scratch_give: then every later call uses its spare, correct but allocating);
 * mw_scratch_give hands it back (and frees a spare, or a scratch grown past 64 KiB). */
struct mw_scratch {
    struct mw_buf b;
    int taken;
};
struct mw_buf *mw_scratch_take(struct mw_scratch *s, struct mw_buf *spare);
void mw_scratch_give(struct mw_scratch *s, struct mw_buf *b);

/* Reads a whole file into a malloc'd, NUL-terminated buffer (*len without the NUL);
 * NULL with errno set. */
char *mw_read_file(const char *path, size_t *len);

#endif
