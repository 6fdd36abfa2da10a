/* httphead.c - an HTTP/1.x request head parsed in place. */
#include "net/httphead.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

/* RFC 9110's token characters: letters, digits and !#$%&'*+-.^_`|~ */
static const bool tchar[256] = {
    ['a' ... 'z'] = true, ['A' ... 'Z'] = true, ['0' ... '9'] = true,
    ['!'] = true, ['#'] = true, ['$'] = true, ['%'] = true, ['&'] = true, ['\''] = true,
    ['*'] = true, ['+'] = true, ['-'] = true, ['.'] = true, ['^'] = true, ['_'] = true,
    ['`'] = true, ['|'] = true, ['~'] = true,
};

static bool is_tchar(unsigned char c)
{
    return tchar[c];
}

/* The end of the line starting at p (at its "\r\n"), or NULL before one came. */
static const char *eol(const char *p, const char *end)
{
    while (p + 1 < end && (p = memchr(p, '\r', (size_t)(end - 1 - p))) != NULL) {
        if (p[1] == '\n')
            return p;
        p++;
    }
    return NULL;
}

static int request_line(struct mw_httphead *h, const char *p, const char *e)
{
    const char *sp = memchr(p, ' ', (size_t)(e - p));
    if (!sp || sp == p)
        return -1;
    for (const char *q = p; q < sp; q++)
        if (!is_tchar((unsigned char)*q))
            return -1;
    h->method = p;
    h->mlen = (size_t)(sp - p);
    p = sp + 1;
    sp = memchr(p, ' ', (size_t)(e - p));
    if (!sp || sp == p || *p != '/')
        return -1;
    for (const char *q = p; q < sp; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
            return -1;
    h->target = p;
    h->tlen = (size_t)(sp - p);
    const char *qm = memchr(p, '?', h->tlen);
    h->plen = qm ? (size_t)(qm - p) : h->tlen;
    p = sp + 1;
    if (e - p != 8 || memcmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' || p[7] > '9')
        return -1;
    h->minor = p[7] - '0';
    return 0;
}

int mw_httphead_parse(struct mw_httphead *h, const char *buf, size_t len)
{
    const char *p = buf, *end = buf + len;
    while (p + 1 < end && p[0] == '\r' && p[1] == '\n') /* RFC 9112: ignore leading CRLFs */
        p += 2;
    const char *e = eol(p, end);
    if (!e) {
        /* Not even the method yet: refuse what cannot become one (a TLS hello). */
        for (const char *q = p; q < end && *q != ' '; q++)
            if (!is_tchar((unsigned char)*q))
                return -1;
        return 0;
    }
    if (request_line(h, p, e) < 0)
        return -1;
    h->nfields = 0;
    for (p = e + 2;; p = e + 2) {
        e = eol(p, end);
        if (!e)
            return 0;
        if (e == p) {
            h->len = (size_t)(e + 2 - buf);
            return 1;
        }
        const char *colon = memchr(p, ':', (size_t)(e - p));
        if (!colon || colon == p || h->nfields == MW_HTTPHEAD_MAX_HEADERS)
            return -1;
        for (const char *q = p; q < colon; q++)
            if (!is_tchar((unsigned char)*q))
                return -1; /* also refuses obsolete line folding */
        const char *v = colon + 1, *ve = e;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        for (const char *q = v; q < ve; q++)
            if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f)
                return -1;
        struct mw_httphead_field *f = &h->f[h->nfields++];
        f->name = p;
        f->nlen = (size_t)(colon - p);
        f->value = v;
        f->vlen = (size_t)(ve - v);
    }
}

static bool name_is(const struct mw_httphead_field *f, const char *name)
{
    return strlen(name) == f->nlen && strncasecmp(f->name, name, f->nlen) == 0;
}

const char *mw_httphead_get(const struct mw_httphead *h, const char *name, size_t *vlen)
{
    for (size_t i = 0; i < h->nfields; i++) {
        if (name_is(&h->f[i], name)) {
            *vlen = h->f[i].vlen;
            return h->f[i].value;
        }
    }
    return NULL;
}

size_t mw_httphead_count(const struct mw_httphead *h, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < h->nfields; i++)
        n += name_is(&h->f[i], name);
    return n;
}

bool mw_httphead_has_token(const struct mw_httphead *h, const char *name, const char *tok)
{
    size_t tlen = strlen(tok);
    for (size_t i = 0; i < h->nfields; i++) {
        if (!name_is(&h->f[i], name))
            continue;
        const char *p = h->f[i].value, *end = p + h->f[i].vlen;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
                p++;
            const char *s = p;
            while (p < end && *p != ',')
                p++;
            const char *e = p;
            while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            if ((size_t)(e - s) == tlen && strncasecmp(s, tok, tlen) == 0)
                return true;
        }
    }
    return false;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* URL-decodes s[0..n) into buf (cut to len - 1, NUL-terminated); returns the length. */
/* Decodes into buf, cut to len - 1, and returns the whole decoded length: a caller
 * tells a value that did not fit (and one with a decoded NUL byte, against strlen)
 * from a short one. A user id cut to 128 bytes would be someone else's. */
static int decode(const char *s, size_t n, char *buf, size_t len)
{
    size_t o = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            c = (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
            i += 2;
        }
        if (o + 1 < len)
            buf[o++] = c;
        total++;
    }
    buf[o] = '\0';
    return total > INT32_MAX ? INT32_MAX : (int)total;
}

int mw_httphead_query(const struct mw_httphead *h, const char *name, char *buf, size_t len)
{
    size_t nlen = strlen(name);
    if (!len)
        return -1;
    buf[0] = '\0';
    if (h->plen == h->tlen)
        return -1;
    const char *p = h->target + h->plen + 1, *end = h->target + h->tlen;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        const char *ke = eq ? eq : e;
        if ((size_t)(ke - p) == nlen && memcmp(p, name, nlen) == 0) {
            const char *v = eq ? eq + 1 : e;
            return decode(v, (size_t)(e - v), buf, len);
        }
        p = e + 1;
    }
    return -1;
}
