/* expo.c - adding up Prometheus text pages: families and series in order of first
 * appearance, values summed per series. */
#define _GNU_SOURCE /* memrchr */
#include "http/expo.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/map.h"
#include "base/util.h"

struct series {
    char *key;      /* `name{labels}` as written */
    uint64_t isum;  /* while every value added was an integer */
    double fsum;
    bool integer;
};

struct family {
    char *name;
    char *help, *type; /* NULL until a page had them */
    struct series **series;
    size_t nseries, cap;
};

struct mw_expo {
    struct mw_map families, series;
    struct family **order;
    size_t nfamilies, cap;
};

struct mw_expo *mw_expo_new(void)
{
    return mw_calloc(1, sizeof(struct mw_expo));
}

void mw_expo_free(struct mw_expo *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->nfamilies; i++) {
        struct family *f = e->order[i];
        for (size_t k = 0; k < f->nseries; k++) {
            free(f->series[k]->key);
            free(f->series[k]);
        }
        free(f->series);
        free(f->name);
        free(f->help);
        free(f->type);
        free(f);
    }
    free(e->order);
    mw_map_free(&e->families);
    mw_map_free(&e->series);
    free(e);
}

static struct family *family_get(struct mw_expo *e, const char *name, size_t n)
{
    char *key = mw_strndup(name, n);
    struct family *f = mw_map_get(&e->families, key);
    if (f) {
        free(key);
        return f;
    }
    f = mw_calloc(1, sizeof *f);
    f->name = key;
    mw_map_put(&e->families, f->name, f);
    if (e->nfamilies == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 64;
        e->order = mw_realloc(e->order, e->cap * sizeof *e->order);
    }
    e->order[e->nfamilies++] = f;
    return f;
}

/* Counters and histograms: what keeps its meaning after the process that counted
 * it is gone. */
static bool adds_up_over_time(const struct family *f)
{
    return f->type && (strcmp(f->type, "counter") == 0 || strcmp(f->type, "histogram") == 0);
}

/* Whether a sample called name[0..n) belongs to family f (a histogram's or a
 * summary's _bucket, _sum and _count do). */
static bool belongs(const struct family *f, const char *name, size_t n)
{
    size_t fl = strlen(f->name);
    if (n < fl || memcmp(name, f->name, fl) != 0)
        return false;
    if (n == fl)
        return true;
    const char *suffix = name + fl;
    size_t sl = n - fl;
    return (sl == 7 && memcmp(suffix, "_bucket", 7) == 0) ||
           (sl == 4 && memcmp(suffix, "_sum", 4) == 0) ||
           (sl == 6 && memcmp(suffix, "_count", 6) == 0);
}

static void add_value(struct series *s, const char *v, size_t n)
{
    char tmp[64];
    if (n >= sizeof tmp)
        n = sizeof tmp - 1;
    memcpy(tmp, v, n);
    tmp[n] = 0;
    bool digits = n > 0 && n <= 19;
    for (size_t i = 0; i < n && digits; i++)
        digits = tmp[i] >= '0' && tmp[i] <= '9';
    double d = strtod(tmp, NULL);
    if (digits)
        s->isum += strtoull(tmp, NULL, 10);
    else
        s->integer = false;
    s->fsum += d;
}

/* A sample line: `name{labels} value` (no timestamps: metrics.c writes none). */
static int add_sample(struct mw_expo *e, struct family **cur, const char *p, size_t n,
                      bool counters_only)
{
    const char *sp = memrchr(p, ' ', n);
    if (!sp || sp == p || sp + 1 == p + n)
        return 1;
    size_t keylen = (size_t)(sp - p);
    size_t namelen = strcspn(p, "{ ");
    if (namelen > keylen)
        namelen = keylen;
    if (!*cur || !belongs(*cur, p, namelen))
        *cur = family_get(e, p, namelen); /* a sample without HELP/TYPE: untyped */
    if (counters_only && !adds_up_over_time(*cur))
        return 0;
    char *key = mw_strndup(p, keylen);
    struct series *s = mw_map_get(&e->series, key);
    if (s) {
        free(key);
    } else {
        struct family *f = *cur;
        s = mw_calloc(1, sizeof *s);
        s->key = key;
        s->integer = true;
        mw_map_put(&e->series, s->key, s);
        if (f->nseries == f->cap) {
            f->cap = f->cap ? f->cap * 2 : 8;
            f->series = mw_realloc(f->series, f->cap * sizeof *f->series);
        }
        f->series[f->nseries++] = s;
    }
    add_value(s, sp + 1, (size_t)(p + n - sp - 1));
    return 0;
}

/* `# HELP name text` or `# TYPE name type`: the family becomes the current one. */
static int add_meta(struct mw_expo *e, struct family **cur, const char *p, size_t n)
{
    bool help = n > 7 && memcmp(p, "# HELP ", 7) == 0;
    bool type = n > 7 && memcmp(p, "# TYPE ", 7) == 0;
    if (!help && !type)
        return 0; /* a comment */
    p += 7;
    n -= 7;
    const char *sp = memchr(p, ' ', n);
    size_t namelen = sp ? (size_t)(sp - p) : n;
    if (namelen == 0)
        return 1;
    struct family *f = family_get(e, p, namelen);
    const char *text = sp ? sp + 1 : p + n;
    size_t tlen = (size_t)(p + n - text);
    char **slot = help ? &f->help : &f->type;
    if (!*slot)
        *slot = mw_strndup(text, tlen);
    *cur = f;
    return 0;
}

int mw_expo_add(struct mw_expo *e, const char *text, size_t len, bool counters_only)
{
    struct family *cur = NULL;
    int bad = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (n > 0 && p[0] == '#')
            bad += add_meta(e, &cur, p, n);
        else if (n > 0)
            bad += add_sample(e, &cur, p, n, counters_only);
        p += n + 1;
    }
    return bad;
}

void mw_expo_write(const struct mw_expo *e, struct mw_buf *b)
{
    for (size_t i = 0; i < e->nfamilies; i++) {
        const struct family *f = e->order[i];
        if (f->nseries == 0 && !f->help && !f->type)
            continue;
        if (f->help)
            mw_buf_printf(b, "# HELP %s %s\n", f->name, f->help);
        if (f->type)
            mw_buf_printf(b, "# TYPE %s %s\n", f->name, f->type);
        for (size_t k = 0; k < f->nseries; k++) {
            const struct series *s = f->series[k];
            if (s->integer)
                mw_buf_printf(b, "%s %" PRIu64 "\n", s->key, s->isum);
            else
                mw_buf_printf(b, "%s %.15g\n", s->key, s->fsum);
        }
    }
}
