/* jsonpeek.c - the top-level "id" of a JSON object, without decoding it. */
#include "base/jsonpeek.h"

#include <stdbool.h>
#include <string.h>

#define MAX_DEPTH 64 /* deeper values are not skipped: the peek gives up */

struct cur {
    const char *p, *end;
};

static void ws(struct cur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static bool hex4(const char *p, const char *end)
{
    if (end - p < 4)
        return false;
    for (int i = 0; i < 4; i++) {
        char h = p[i];
        if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F')))
            return false;
    }
    return true;
}

/* A string token at c->p (well-formed escapes, no raw control characters). */
static bool string(struct cur *c)
{
    if (c->p >= c->end || *c->p != '"')
        return false;
    for (c->p++; c->p < c->end; c->p++) {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '"') {
            c->p++;
            return true;
        }
        if (ch < 0x20)
            return false;
        if (ch != '\\')
            continue;
        if (++c->p >= c->end)
            return false;
        if (*c->p == 'u') {
            if (!hex4(c->p + 1, c->end))
                return false;
            c->p += 4;
        } else if (!*c->p || !strchr("\"\\/bfnrt", *c->p)) {
            return false;
        }
    }
    return false;
}

/* Any value: strings checked, the rest skipped by its shape (a number, a literal,
 * nested containers counted). */
static bool value(struct cur *c, int depth)
{
    ws(c);
    if (c->p >= c->end)
        return false;
    char ch = *c->p;
    if (ch == '"')
        return string(c);
    if (ch == '{' || ch == '[') {
        char close = ch == '{' ? '}' : ']';
        if (depth >= MAX_DEPTH)
            return false;
        c->p++;
        ws(c);
        if (c->p < c->end && *c->p == close) {
            c->p++;
            return true;
        }
        for (;;) {
            if (ch == '{') {
                ws(c);
                if (!string(c))
                    return false;
                ws(c);
                if (c->p >= c->end || *c->p++ != ':')
                    return false;
            }
            if (!value(c, depth + 1))
                return false;
            ws(c);
            if (c->p >= c->end)
                return false;
            if (*c->p == close) {
                c->p++;
                return true;
            }
            if (*c->p++ != ',')
                return false;
        }
    }
    const char *start = c->p;
    while (c->p < c->end && *c->p && strchr("+-.0123456789eEtruefalsn", *c->p))
        c->p++;
    return c->p > start;
}

/* Whether p[0..end) is exactly -?digits, at most 20 of them. */
static bool integer(const char *p, const char *end)
{
    if (p < end && *p == '-')
        p++;
    const char *d = p;
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    return p == end && p > d && p - d <= 20;
}

size_t mw_json_peek_id(const char *p, size_t len, const char **id)
{
    struct cur c = { p, p + len };
    ws(&c);
    if (c.p >= c.end || *c.p++ != '{')
        return 0;
    ws(&c);
    if (c.p < c.end && *c.p == '}')
        return 0;
    for (;;) {
        ws(&c);
        const char *key = c.p;
        if (!string(&c))
            return 0;
        bool is_id = c.p - key == 4 && memcmp(key, "\"id\"", 4) == 0;
        ws(&c);
        if (c.p >= c.end || *c.p++ != ':')
            return 0;
        ws(&c);
        const char *v = c.p;
        if (!value(&c, 1))
            return 0;
        if (is_id) {
            if (*v != '"' && !integer(v, c.p))
                return 0; /* not an id a reply can carry */
            *id = v;
            return (size_t)(c.p - v);
        }
        ws(&c);
        if (c.p >= c.end || *c.p == '}')
            return 0;
        if (*c.p++ != ',')
            return 0;
    }
}
