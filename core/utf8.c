/* utf8.c - incremental UTF-8 validation with an ASCII fast path. */
#include "utf8.h"

#include <string.h>

/* The state packs what the next byte must be: the continuation bytes still needed
 * (bits 16..17) and the range the next one must fall in (lo: bits 8..15, hi: 0..7).
 * Only a sequence's first continuation byte has a narrower range than 80..BF. */
#define ST(need, lo, hi) ((uint32_t)(need) << 16 | (uint32_t)(lo) << 8 | (uint32_t)(hi))

bool mw_utf8_feed(mw_utf8_state *st, const unsigned char *p, size_t len)
{
    uint32_t s = *st;
    size_t i = 0;
    while (i < len) {
        if (s == 0) {
            /* ASCII, 8 bytes at a time: the common case of JSON text. */
            while (i + 8 <= len) {
                uint64_t w;
                memcpy(&w, p + i, 8);
                if (w & 0x8080808080808080ull)
                    break;
                i += 8;
            }
            if (i == len)
                break;
            unsigned char c = p[i++];
            if (c < 0x80)
                continue;
            if (c >= 0xc2 && c <= 0xdf)
                s = ST(1, 0x80, 0xbf);
            else if (c == 0xe0)
                s = ST(2, 0xa0, 0xbf); /* no overlongs */
            else if (c == 0xed)
                s = ST(2, 0x80, 0x9f); /* no surrogates */
            else if (c >= 0xe1 && c <= 0xef)
                s = ST(2, 0x80, 0xbf);
            else if (c == 0xf0)
                s = ST(3, 0x90, 0xbf);
            else if (c >= 0xf1 && c <= 0xf3)
                s = ST(3, 0x80, 0xbf);
            else if (c == 0xf4)
                s = ST(3, 0x80, 0x8f); /* nothing above U+10FFFF */
            else
                return false; /* 80..C1 and F5..FF never start a character */
            continue;
        }
        unsigned char c = p[i++];
        if (c < ((s >> 8) & 0xff) || c > (s & 0xff))
            return false;
        uint32_t need = (s >> 16) - 1;
        s = need ? ST(need, 0x80, 0xbf) : 0;
    }
    *st = s;
    return true;
}
