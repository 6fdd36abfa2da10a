/* utf8.h - UTF-8 validation (RFC 3629: shortest form only, no surrogates, nothing
 * above U+10FFFF), the rule for every text the server accepts or sends. Leaf module. */
#ifndef MW_UTF8_H
#define MW_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* The length (1..4) of the valid sequence that starts at p (p < end), or 0. */
size_t mw_utf8_seq(const char *p, const char *end);

/* The offset of the first byte of s[0..len) that does not start a valid sequence (a
 * truncated sequence at the end counts), or len when all of it is valid. */
size_t mw_utf8_check(const char *s, size_t len);

static inline bool mw_utf8_valid(const char *s, size_t len)
{
    return mw_utf8_check(s, len) == len;
}

#endif
