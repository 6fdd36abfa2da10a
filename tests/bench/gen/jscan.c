/* jscan.c - a top-level JSON object walker (see jscan.h). It checks structure only as
 * far as it needs to find where each value ends. */
#include "jscan.h"

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

/* p is just after an opening quote; returns the closing quote or NULL. */
static const char *string_end(const char *p, const char *end)
{
    for (;;) {
        const char *q = memchr(p, '"', (size_t)(end - p));
        if (!q)
            return NULL;
        size_t bs = 0;
        while (q - bs > p && q[-1 - (ptrdiff_t)bs] == '\\')
            bs++;
        if (bs % 2 == 0)
            return q;
        p = q + 1;
    }
}

/* p is at '{' or '['; returns just past the matching bracket or NULL. */
static const char *container_end(const char *p, const char *end)
{
    int depth = 0;
    while (p < end) {
        char c = *p++;
        if (c == '"') {
            p = string_end(p, end);
            if (!p)
                return NULL;
            p++;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth == 0)
                return p;
        }
    }
    return NULL;
}

int js_iter_init(struct js_iter *it, const char *p, size_t n)
{
    const char *end = p + n;
    p = skip_ws(p, end);
    if (p == end || *p != '{')
        return -1;
    it->p = p + 1;
    it->end = end;
    return 0;
}

int js_next(struct js_iter *it, const char **key, size_t *klen, const char **val,
            size_t *vlen)
{
    const char *p = skip_ws(it->p, it->end), *end = it->end, *q;
    if (p < end && *p == ',')
        p = skip_ws(p + 1, end);
    if (p < end && *p == '}')
        return 0;
    if (p == end || *p != '"' || !(q = string_end(p + 1, end)))
        return -1;
    *key = p + 1;
    *klen = (size_t)(q - p - 1);
    p = skip_ws(q + 1, end);
    if (p == end || *p != ':')
        return -1;
    p = skip_ws(p + 1, end);
    if (p == end)
        return -1;
    if (*p == '"') {
        if (!(q = string_end(p + 1, end)))
            return -1;
        *val = p + 1;
        *vlen = (size_t)(q - p - 1);
        it->p = q + 1;
        return 1;
    }
    if (*p == '{' || *p == '[')
        q = container_end(p, end);
    else
        for (q = p; q < end && *q != ',' && *q != '}' && *q != ' ' && *q != '\n'; q++)
            ;
    if (!q || q == p)
        return -1;
    *val = p;
    *vlen = (size_t)(q - p);
    it->p = q;
    return 1;
}

bool js_int(const char *v, size_t n, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    int64_t x = 0;
    if (n && v[0] == '-') {
        neg = true;
        i = 1;
    }
    if (i == n || n - i > 18)
        return false;
    for (; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
        x = x * 10 + (v[i] - '0');
    }
    *out = neg ? -x : x;
    return true;
}
