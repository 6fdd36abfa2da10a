/* utf8.c - UTF-8 validation, incremental and whole, with an ASCII fast path: most
 * text the server sees is ASCII, and this check runs on every frame it sends. */
#include "base/utf8.h"

#include <string.h>

/* The state packs what the next byte must be: the continuation bytes still needed
 * (bits 16..17) and the range the next one must fall in (lo: bits 8..15, hi: 0..7).
 * Only a sequence's first continuation byte has a narrower range than 80..BF. */
#define ST(need, lo, hi) ((uint32_t)(need) << 16 | (uint32_t)(lo) << 8 | (uint32_t)(hi))

/* The state after lead byte c (0 for ASCII), or ~0u when c starts no character. */
static uint32_t lead(unsigned char c)
{
    if (c < 0x80)
        return 0;
    if (c >= 0xc2 && c <= 0xdf)
        return ST(1, 0x80, 0xbf);
    if (c == 0xe0)
        return ST(2, 0xa0, 0xbf); /* no overlongs */
    if (c == 0xed)
        return ST(2, 0x80, 0x9f); /* no surrogates */
    if (c >= 0xe1 && c <= 0xef)
        return ST(2, 0x80, 0xbf);
    if (c == 0xf0)
        return ST(3, 0x90, 0xbf);
    if (c >= 0xf1 && c <= 0xf3)
        return ST(3, 0x80, 0xbf);
    if (c == 0xf4)
        return ST(3, 0x80, 0x8f); /* nothing above U+10FFFF */
    return ~0u;                   /* 80..C1 and F5..FF never start a character */
}

/* The state after continuation byte c in state s, or ~0u when c does not fit. */
static uint32_t next(uint32_t s, unsigned char c)
{
    if (c < ((s >> 8) & 0xff) || c > (s & 0xff))
        return ~0u;
    uint32_t need = (s >> 16) - 1;
    return need ? ST(need, 0x80, 0xbf) : 0;
}

/* Skips ASCII from i, 8 bytes at a time: the common case of JSON text. */
static size_t skip_ascii(const unsigned char *p, size_t i, size_t len)
{
    while (i + 8 <= len) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w & 0x8080808080808080ull)
            break;
        i += 8;
    }
    return i;
}

bool mw_utf8_feed(mw_utf8_state *st, const unsigned char *p, size_t len)
{
    uint32_t s = *st;
    size_t i = 0;
    while (i < len) {
        if (s == 0 && (i = skip_ascii(p, i, len)) == len)
            break;
        unsigned char c = p[i++];
        s = s == 0 ? lead(c) : next(s, c);
        if (s == ~0u)
            return false;
    }
    *st = s;
    return true;
}

size_t mw_utf8_seq(const char *s, const char *e)
{
    const unsigned char *p = (const unsigned char *)s, *end = (const unsigned char *)e;
    uint32_t st = lead(p[0]);
    size_t n = 1;
    while (st != 0 && st != ~0u && p + n < end)
        st = next(st, p[n++]);
    return st == 0 ? n : 0;
}

size_t mw_utf8_check(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        if ((i = skip_ascii(p, i, len)) == len)
            break;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = mw_utf8_seq(s + i, s + len);
        if (!n)
            return i;
        i += n;
    }
    return len;
}
