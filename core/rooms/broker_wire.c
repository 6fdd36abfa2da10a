/* broker_wire.c - the node-to-node payload codec (broker_wire.h). */
#include "rooms/broker_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "mw1:"
#define MAX_FIELD 4096 /* no head field is longer: node ids, user ids, a number */

static void netstring(struct mw_buf *b, const char *p, size_t len)
{
    mw_buf_printf(b, "%zu:", len);
    mw_buf_append(b, p, len);
    mw_buf_putc(b, ',');
}

void mw_wire_head(struct mw_buf *b, const struct mw_wire *w)
{
    char flags[16];
    int n = snprintf(flags, sizeof flags, "%u", w->flags);
    mw_buf_puts(b, MAGIC);
    netstring(b, &w->kind, 1);
    netstring(b, w->node, w->node_len);
    netstring(b, flags, (size_t)n);
    netstring(b, w->except ? w->except : "", w->except ? w->except_len : 0);
    netstring(b, w->subject ? w->subject : "", w->subject ? w->subject_len : 0);
}

/* Reads one netstring at *p (before end). 0 with *s, *n set and *p past it, or -1. */
static int read_field(const char **p, const char *end, const char **s, size_t *n)
{
    const char *q = *p;
    size_t len = 0, digits = 0;
    while (q < end && *q >= '0' && *q <= '9') {
        len = len * 10 + (size_t)(*q++ - '0');
        if (++digits > 4 || len > MAX_FIELD)
            return -1;
    }
    if (!digits || q >= end || *q++ != ':' || (size_t)(end - q) < len + 1 || q[len] != ',')
        return -1;
    *s = q;
    *n = len;
    *p = q + len + 1;
    return 0;
}

int mw_wire_decode(const char *p, size_t len, struct mw_wire *w)
{
    const char *end = p + len, *kind, *flags;
    size_t klen, flen;
    memset(w, 0, sizeof *w);
    if (len < sizeof MAGIC - 1 || memcmp(p, MAGIC, sizeof MAGIC - 1) != 0)
        return -1;
    p += sizeof MAGIC - 1;
    if (read_field(&p, end, &kind, &klen) < 0 || klen != 1 ||
        read_field(&p, end, &w->node, &w->node_len) < 0 ||
        read_field(&p, end, &flags, &flen) < 0 ||
        read_field(&p, end, &w->except, &w->except_len) < 0 ||
        read_field(&p, end, &w->subject, &w->subject_len) < 0)
        return -1;
    if (*kind != MW_WIRE_EVENT && *kind != MW_WIRE_DISCONNECT && *kind != MW_WIRE_NODE)
        return -1;
    w->kind = *kind;
    if (flen < 1 || flen > 10)
        return -1;
    unsigned long v = 0;
    for (size_t i = 0; i < flen; i++) {
        if (flags[i] < '0' || flags[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(flags[i] - '0');
    }
    if (v > 0xffffffffUL)
        return -1;
    w->flags = (unsigned)v;
    w->body = p;
    w->body_len = (size_t)(end - p);
    return 0;
}
