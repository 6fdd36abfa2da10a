/* utf8.h - UTF-8 validation (RFC 3629: no overlongs, no surrogates, nothing above
 * U+10FFFF), the rule for every text the server accepts or sends: whole texts (JSON
 * strings, ids, frames from Lua or Redis), and text that arrives in pieces (a
 * WebSocket text message validated frame by frame, failing at the first bad byte).
 *
 * Leaf module. */
#ifndef MW_UTF8_H
#define MW_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The state between pieces: 0 at a character boundary. */
typedef uint32_t mw_utf8_state;

/* Validates p[0..len) following state *st. Returns false at the first byte that
 * cannot be part of valid UTF-8 (the state is then meaningless); true otherwise, with
 * *st saying whether a character is still open (non-zero). */
bool mw_utf8_feed(mw_utf8_state *st, const unsigned char *p, size_t len);

/* Whether p[0..len) is complete, valid UTF-8. */
static inline bool mw_utf8_valid(const void *p, size_t len)
{
    mw_utf8_state st = 0;
    return mw_utf8_feed(&st, (const unsigned char *)p, len) && st == 0;
}

/* The length (1..4) of the valid sequence that starts at p (p < end), or 0. */
size_t mw_utf8_seq(const char *p, const char *end);

/* The offset of the first byte of s[0..len) that does not start a valid sequence (a
 * truncated sequence at the end counts), or len when all of it is valid. */
size_t mw_utf8_check(const char *s, size_t len);

#endif
