/* httphead.h - an HTTP/1.x request head, parsed in place: the request line, the
 * headers, and lookups (case-insensitive names, comma-separated tokens, URL-decoded
 * query parameters). For the WebSocket upgrade, which moonwire handles itself.
 *
 * Leaf module: no allocation, pointers into the caller's buffer. */
#ifndef MW_HTTPHEAD_H
#define MW_HTTPHEAD_H

#include <stdbool.h>
#include <stddef.h>

#define MW_HTTPHEAD_MAX_HEADERS 64

struct mw_httphead_field {
    const char *name, *value; /* value without surrounding blanks */
    size_t nlen, vlen;
};

struct mw_httphead {
    const char *method, *target; /* target: path and query as sent */
    size_t mlen, tlen, plen;     /* plen: the path's length (target up to '?') */
    int minor;                   /* HTTP/1.minor */
    size_t nfields;
    struct mw_httphead_field f[MW_HTTPHEAD_MAX_HEADERS];
    size_t len;                  /* bytes of the head, blank line included */
};

/* Parses buf[0..len). Returns 1 with *h filled when a complete head is there (the
 * bytes after h->len are the body or the first frames), 0 when more bytes are needed,
 * -1 when it is not an HTTP/1.x request head (or has more than
 * MW_HTTPHEAD_MAX_HEADERS headers). */
int mw_httphead_parse(struct mw_httphead *h, const char *buf, size_t len);

/* The first value of header `name` (any case), or NULL; *vlen is its length. */
const char *mw_httphead_get(const struct mw_httphead *h, const char *name, size_t *vlen);
/* How many times header `name` appears. */
size_t mw_httphead_count(const struct mw_httphead *h, const char *name);
/* Whether header `name`, as a comma-separated list over all its lines, holds token
 * `tok` (any case). */
bool mw_httphead_has_token(const struct mw_httphead *h, const char *name, const char *tok);
/* Query parameter `name`, URL-decoded (%XX, '+' as a space) into buf (NUL-terminated,
 * cut to len - 1). Returns its whole decoded length (more than len - 1 when it was
 * cut; more than strlen(buf) when it holds a decoded NUL), or -1 when absent. */
int mw_httphead_query(const struct mw_httphead *h, const char *name, char *buf, size_t len);

#endif
