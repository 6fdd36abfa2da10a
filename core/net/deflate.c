/* deflate.c - permessage-deflate without context takeover, on zlib. */
#include "net/deflate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

#include "base/util.h"

#define LEVEL 1          /* real-time traffic: the fastest level; JSON still shrinks well */
#define TRAILER_LEN 4    /* 00 00 ff ff, left out of every message (RFC 7692 7.2.1) */
#define MIN_PAYLOAD 32   /* below this, deflate hardly ever makes a message smaller */

struct mw_deflate_stats mw_deflate_stats;

/* ---- negotiation ---- */

/* One parameter of an offer: name[0..nlen) and value[0..vlen) (vlen -1: none). */
struct param {
    const char *name, *value;
    size_t nlen;
    int vlen;
};

static const char *skip_ows(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* A token at *pp; returns its length (0: none). */
static size_t token(const char **pp, const char *end)
{
    const char *p = *pp;
    while (p < end && is_tchar(*p))
        p++;
    size_t n = (size_t)(p - *pp);
    *pp = p;
    return n;
}

static bool name_is(const char *s, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(s, name, n) == 0;
}

/* A window size 8..15 as written (no leading zero); -1 when it is not one. */
static int wbits_of(const char *v, int vlen)
{
    if (vlen == 1 && v[0] >= '8' && v[0] <= '9')
        return v[0] - '0';
    if (vlen == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
        return 10 + v[1] - '0';
    return -1;
}

/* Parses one extension of a list at *pp (up to a top-level ',' or end): whether it is
 * an acceptable permessage-deflate offer, and its server_max_window_bits (15 when not
 * asked). Leaves *pp after the extension. */
static bool offer(const char **pp, const char *end, int *wbits)
{
    const char *p = skip_ows(*pp, end), *name = p;
    size_t nlen = token(&p, end);
    bool ok = nlen && name_is(name, nlen, "permessage-deflate");
    bool seen_snct = false, seen_cnct = false, seen_smwb = false, seen_cmwb = false;
    *wbits = 15;
    for (;;) {
        p = skip_ows(p, end);
        if (p == end || *p == ',')
            break;
        if (*p != ';') { /* garbage: skip to the next extension */
            ok = false;
            while (p < end && *p != ',')
                p++;
            break;
        }
        p = skip_ows(p + 1, end);
        struct param prm = { p, NULL, 0, -1 };
        prm.nlen = token(&p, end);
        p = skip_ows(p, end);
        if (p < end && *p == '=') {
            p = skip_ows(p + 1, end);
            bool quoted = p < end && *p == '"';
            if (quoted)
                p++;
            prm.value = p;
            size_t vlen = token(&p, end);
            prm.vlen = (int)vlen;
            if (quoted && (p == end || *p++ != '"'))
                ok = false;
        }
        if (!prm.nlen) {
            ok = false;
        } else if (name_is(prm.name, prm.nlen, "server_no_context_takeover")) {
            ok = ok && !seen_snct && prm.vlen < 0;
            seen_snct = true;
        } else if (name_is(prm.name, prm.nlen, "client_no_context_takeover")) {
            ok = ok && !seen_cnct && prm.vlen < 0;
            seen_cnct = true;
        } else if (name_is(prm.name, prm.nlen, "server_max_window_bits")) {
            *wbits = prm.vlen < 0 ? -1 : wbits_of(prm.value, prm.vlen);
            ok = ok && !seen_smwb && *wbits > 0;
            seen_smwb = true;
        } else if (name_is(prm.name, prm.nlen, "client_max_window_bits")) {
            ok = ok && !seen_cmwb && (prm.vlen < 0 || wbits_of(prm.value, prm.vlen) > 0);
            seen_cmwb = true;
        } else {
            ok = false; /* an unknown parameter: decline this offer */
        }
    }
    if (p < end && *p == ',')
        p++;
    *pp = p;
    return ok;
}

int mw_pmd_negotiate(const char *const *vals, const size_t *lens, size_t n, char *resp,
                     size_t resplen)
{
    for (size_t i = 0; i < n; i++) {
        const char *p = vals[i], *end = vals[i] + lens[i];
        while (p < end) {
            int wbits;
            if (!offer(&p, end, &wbits))
                continue;
            if (wbits < 15)
                snprintf(resp, resplen, "permessage-deflate; server_no_context_takeover; "
                                        "client_no_context_takeover; server_max_window_bits=%d", wbits);
            else
                snprintf(resp, resplen, "permessage-deflate; server_no_context_takeover; "
                                        "client_no_context_takeover");
            return wbits;
        }
    }
    return 0;
}

/* ---- compressing ---- */

static z_stream *deflaters[16]; /* one per window, made on first use */
static unsigned char *zbuf;
static size_t zcap;

static z_stream *deflater(int wbits)
{
    if (!deflaters[wbits]) {
        z_stream *z = mw_calloc(1, sizeof *z);
        /* zlib cannot make a raw stream with an 8-bit window (it uses 9): with RLE every
         * match is at distance 1, which any window holds. */
        int rc = deflateInit2(z, LEVEL, Z_DEFLATED, -(wbits < 9 ? 9 : wbits), 8,
                              wbits < 9 ? Z_RLE : Z_DEFAULT_STRATEGY);
        mw_assert(rc == Z_OK);
        deflaters[wbits] = z;
    }
    return deflaters[wbits];
}

/* The payload of m compressed with window wbits: a new frame, or NULL when it would
 * not be smaller. */
static struct mw_msg *deflated_copy(const struct mw_msg *m, int wbits)
{
    size_t plen;
    const char *payload = mw_msg_payload(m, &plen);
    z_stream *z = deflater(wbits);
    size_t bound = deflateBound(z, plen) + 16;
    if (bound > zcap) {
        zcap = bound;
        zbuf = mw_realloc(zbuf, zcap);
    }
    deflateReset(z);
    z->next_in = (Bytef *)payload;
    z->avail_in = (uInt)plen;
    z->next_out = zbuf;
    z->avail_out = (uInt)zcap;
    int rc = deflate(z, Z_SYNC_FLUSH);
    mw_assert(rc == Z_OK && z->avail_in == 0 && z->avail_out > 0);
    size_t out = zcap - z->avail_out;
    mw_assert(out >= TRAILER_LEN);
    out -= TRAILER_LEN;
    if (out >= plen)
        return NULL;
    struct mw_msg *c = mw_msg_new(m->data[0] & 0x0f, zbuf, out, m->flags & ~MW_MSG_PLAIN);
    c->data[0] |= 0x40; /* RSV1: compressed */
    mw_deflate_stats.deflated++;
    mw_deflate_stats.deflated_in += plen;
    mw_deflate_stats.deflated_out += out;
    return c;
}

struct mw_msg *mw_deflate_frame(struct mw_msg *m, int wbits)
{
    int op = m->data[0] & 0x0f;
    if ((op != MW_OP_TEXT && op != MW_OP_BINARY) || (m->flags & MW_MSG_PLAIN) ||
        (m->data[0] & 0x40) || m->len - m->hdr < MIN_PAYLOAD)
        return mw_msg_incref(m);
    if (wbits == 15 && m->z) /* made once, for every recipient */
        return mw_msg_incref(m->z);
    struct mw_msg *c = deflated_copy(m, wbits);
    if (!c) {
        mw_deflate_stats.not_smaller++;
        m->flags |= MW_MSG_PLAIN;
        return mw_msg_incref(m);
    }
    if (wbits == 15) /* kept with m: the usual window, the one broadcasts share */
        m->z = mw_msg_incref(c);
    return c;
}

/* ---- inflating ---- */

struct mw_inflate {
    z_stream z;
    struct mw_inflate *next; /* the spare list */
    size_t in;
    bool ended; /* the client closed the deflate stream (BFINAL): the rest is ignored */
};

static struct mw_inflate *spare; /* a few reset streams, kept for the next message */
static int nspare;

static struct mw_inflate *inflater(void)
{
    struct mw_inflate *st = spare;
    if (st) {
        spare = st->next;
        nspare--;
        inflateReset(&st->z);
    } else {
        st = mw_calloc(1, sizeof *st);
        int rc = inflateInit2(&st->z, -15); /* any client window fits in ours */
        mw_assert(rc == Z_OK);
    }
    st->in = 0;
    st->ended = false;
    return st;
}

void mw_inflate_free(struct mw_inflate **stp)
{
    struct mw_inflate *st = *stp;
    if (!st)
        return;
    *stp = NULL;
    if (nspare < 4) {
        st->next = spare;
        spare = st;
        nspare++;
        return;
    }
    inflateEnd(&st->z);
    free(st);
}

/* Inflates in[0..n) into *out; returns 0, 1009 or 1007. */
static int run(struct mw_inflate *st, const unsigned char *in, size_t n, char **out, size_t *len,
               size_t *cap, size_t max)
{
    st->z.next_in = (Bytef *)in;
    st->z.avail_in = (uInt)n;
    while (st->z.avail_in && !st->ended) {
        if (*len == *cap) {
            if (*cap >= max + 1)
                return 1009;
            size_t c = *cap ? *cap * 2 : 1024;
            *cap = c > max + 1 ? max + 1 : c; /* one byte over max tells it went over */
            *out = mw_realloc(*out, *cap);
        }
        st->z.next_out = (Bytef *)*out + *len;
        st->z.avail_out = (uInt)(*cap - *len);
        int rc = inflate(&st->z, Z_SYNC_FLUSH);
        *len = *cap - st->z.avail_out;
        if (*len > max)
            return 1009;
        if (rc == Z_STREAM_END)
            st->ended = true;
        else if (rc == Z_BUF_ERROR && st->z.avail_out)
            break; /* needs input that is not there yet */
        else if (rc != Z_OK && rc != Z_BUF_ERROR)
            return 1007;
    }
    return 0;
}

int mw_inflate_piece(struct mw_inflate **stp, const unsigned char *in, size_t n, bool last,
                     char **out, size_t *len, size_t *cap, size_t max)
{
    static const unsigned char trailer[TRAILER_LEN] = { 0x00, 0x00, 0xff, 0xff };
    if (!*stp)
        *stp = inflater();
    struct mw_inflate *st = *stp;
    int rc = run(st, in, n, out, len, cap, max);
    if (!rc && last)
        rc = run(st, trailer, TRAILER_LEN, out, len, cap, max);
    st->in += n;
    if (rc || last) {
        if (!rc) {
            mw_deflate_stats.inflated++;
            mw_deflate_stats.inflated_in += st->in;
            mw_deflate_stats.inflated_out += *len;
        }
        mw_inflate_free(stp);
    }
    return rc;
}

void mw_deflate_shutdown(void)
{
    for (int i = 0; i < 16; i++) {
        if (deflaters[i]) {
            deflateEnd(deflaters[i]);
            free(deflaters[i]);
            deflaters[i] = NULL;
        }
    }
    free(zbuf);
    zbuf = NULL;
    zcap = 0;
    while (spare) {
        struct mw_inflate *st = spare;
        spare = st->next;
        inflateEnd(&st->z);
        free(st);
    }
    nspare = 0;
}
