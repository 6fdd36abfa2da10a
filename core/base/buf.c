/* buf.c - growable byte buffer. */
#include "base/buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "base/util.h"

void mw__buf_grow(struct mw_buf *b, size_t extra)
{
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra)
        cap *= 2;
    b->p = mw_realloc(b->p, cap);
    b->cap = cap;
}

void mw_buf_printf(struct mw_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    mw_buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void mw_buf_put_u64(struct mw_buf *b, uint64_t v)
{
    char tmp[20], *p = tmp + sizeof tmp;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    mw_buf_append(b, p, (size_t)(tmp + sizeof tmp - p));
}

void mw_buf_free(struct mw_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

char *mw_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct mw_buf b = { 0 };
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        mw_buf_append(&b, chunk, n);
    int failed = ferror(f), saved = errno;
    fclose(f);
    if (failed) {
        mw_buf_free(&b);
        errno = saved ? saved : EIO;
        return NULL;
    }
    *len = b.len;
    mw_buf_putc(&b, '\0');
    return b.p;
}

struct mw_buf *mw_scratch_take(struct mw_scratch *s, struct mw_buf *spare)
{
    *spare = (struct mw_buf){ 0 };
    if (s->taken)
        return spare;
    s->taken = 1;
    s->b.len = 0;
    return &s->b;
}

void mw_scratch_give(struct mw_scratch *s, struct mw_buf *b)
{
    if (b != &s->b) {
        mw_buf_free(b);
        return;
    }
    s->taken = 0;
    if (b->cap > 64 * 1024)
        mw_buf_free(b);
}
