/* dscan.c - chat:message events read in place at a learned layout (see dscan.h).
 * Everything here runs for every delivery: fixed-size word compares instead of
 * memcmp calls, and numbers converted eight digits at a time. */
#include "dscan.h"

#include <string.h>

static const char TYPE_KV[] = "\"type\":\"chat:message\"";
static const char T_KEY[] = "\"t\":";
static const char SEQ_KEY[] = "\"seq\":";
#define TYPE_KV_LEN (sizeof TYPE_KV - 1) /* 21 */
#define T_KEY_LEN (sizeof T_KEY - 1)     /* 4 */
#define SEQ_KEY_LEN (sizeof SEQ_KEY - 1) /* 6 */

static inline uint64_t load8(const char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline uint32_t load4(const char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* key == p[0..klen) for the three keys above, in word compares (klen 4, 6 or 21). */
static inline bool key_at(const char *p, const char *key, size_t klen)
{
    if (klen == T_KEY_LEN)
        return load4(p) == load4(key);
    if (klen == SEQ_KEY_LEN)
        return load4(p) == load4(key) && load4(p + 2) == load4(key + 2);
    return load8(p) == load8(key) && load8(p + 8) == load8(key + 8) &&
           load8(p + 13) == load8(key + 13);
}

/* The place where `key` is found in p[0..n): at its offset from the start, else at
 * its offset from the end. Returns the byte after the key, or NULL. */
static inline const char *find_at(const char *p, size_t n, struct ds_place pl, const char *key,
                                  size_t klen)
{
    if (pl.from_start + klen <= n && key_at(p + pl.from_start, key, klen))
        return p + pl.from_start + klen;
    if (pl.from_end <= n && pl.from_end >= klen && key_at(p + n - pl.from_end, key, klen))
        return p + n - pl.from_end + klen;
    return NULL;
}

/* How many of the 8 bytes in w (first byte lowest) are ASCII digits before the first
 * byte that is not; w already has '0' xor-ed out (digits are bytes 0..9). A carry out
 * of a non-digit byte can only spoil the bytes after it, which are not looked at. */
static inline unsigned leading_digits(uint64_t w)
{
    uint64_t bad = (w | (w + 0x0606060606060606ull)) & 0xf0f0f0f0f0f0f0f0ull;
    return bad ? (unsigned)__builtin_ctzll(bad) / 8 : 8;
}

/* The value of the first k (1..8) digits of w (as leading_digits got it). */
static inline uint64_t digits_value(uint64_t w, unsigned k)
{
    uint64_t v = w << (8 * (8 - k)); /* right-align: leading zero digits */
    v = v * 10 + (v >> 8);           /* pairs of digits */
    return (((v & 0x000000ff000000ffull) * (100 + (1000000ull << 32))) +
            (((v >> 16) & 0x000000ff000000ffull) * (1 + (10000ull << 32)))) >> 32;
}

/* A plain integer of 1..15 digits at v, followed by ',' or '}', before end. */
static bool read_uint(const char *v, const char *end, int64_t *out)
{
    if (end - v < 16) { /* near the end of the payload: one digit at a time */
        int64_t x = 0;
        const char *s = v;
        while (v < end && (unsigned)(*v - '0') < 10 && v - s < 15)
            x = x * 10 + (*v++ - '0');
        if (v == s || v == end || (*v != ',' && *v != '}'))
            return false;
        *out = x;
        return true;
    }
    uint64_t a = load8(v) ^ 0x3030303030303030ull;
    unsigned ka = leading_digits(a);
    if (ka == 0)
        return false;
    uint64_t x = digits_value(a, ka);
    unsigned len = ka;
    if (ka == 8) {
        uint64_t b = load8(v + 8) ^ 0x3030303030303030ull;
        unsigned kb = leading_digits(b);
        if (kb == 8)
            return false;
        if (kb) {
            static const uint64_t pow10[8] = { 1, 10, 100, 1000, 10000, 100000, 1000000, 10000000 };
            x = x * pow10[kb] + digits_value(b, kb);
            len += kb;
        }
    }
    if (v[len] != ',' && v[len] != '}')
        return false;
    *out = (int64_t)x;
    return true;
}

/* Bytes of w equal to the byte in every lane of pat: a nonzero mask when there is one.
 * A flag may also be set in a byte above a true one (a borrow), never below. */
static inline uint64_t bytes_equal(uint64_t w, uint64_t pat)
{
    uint64_t v = w ^ pat;
    return (v - 0x0101010101010101ull) & ~v & 0x8080808080808080ull;
}

/* Whether a and b are members of one object: no brace between them. That tells
 * data's "seq" from the event's own "seq", which sits outside data. Eight bytes at a
 * time; the last word's bytes past b are masked out (a borrow only moves up). */
static inline bool same_object(const char *a, const char *b, const char *end)
{
    if (a > b) {
        const char *x = a;
        a = b;
        b = x;
    }
    for (; a < b; a += 8) {
        if (end - a < 8) {
            for (; a < b; a++)
                if (*a == '{' || *a == '}')
                    return false;
            return true;
        }
        uint64_t w = load8(a);
        uint64_t hit = bytes_equal(w, 0x7b7b7b7b7b7b7b7bull) | bytes_equal(w, 0x7d7d7d7d7d7d7d7dull);
        if (b - a < 8)
            hit &= (1ull << (8 * (b - a))) - 1;
        if (hit)
            return false;
    }
    return true;
}

bool ds_match(const struct dscan *d, const char *p, size_t n, int64_t *t, int64_t *seq)
{
    const char *tv, *sv, *end = p + n;
    if (!d->learned || n < 8 || load8(p) != d->head)
        return false;
    if (!find_at(p, n, d->type, TYPE_KV, TYPE_KV_LEN))
        return false;
    if (!(tv = find_at(p, n, d->t, T_KEY, T_KEY_LEN)) || !read_uint(tv, end, t))
        return false;
    if (!(sv = find_at(p, n, d->seq, SEQ_KEY, SEQ_KEY_LEN)) || !read_uint(sv, end, seq))
        return false;
    return same_object(tv, sv, end);
}

static bool place_of(const char *p, size_t n, const char *at, const char *key, size_t klen,
                     struct ds_place *pl)
{
    if (!at || at < p || at + klen > p + n || memcmp(at, key, klen) != 0)
        return false;
    pl->from_start = (uint32_t)(at - p);
    pl->from_end = (uint32_t)(p + n - at);
    return true;
}

void ds_learn(struct dscan *d, const char *p, size_t n, const char *type_key,
              const char *t_key, const char *seq_key)
{
    struct dscan next = { .hits = d->hits, .learns = d->learns + 1 };
    if (n < 8 || n > UINT32_MAX || !place_of(p, n, type_key, TYPE_KV, TYPE_KV_LEN, &next.type) ||
        !place_of(p, n, t_key, T_KEY, T_KEY_LEN, &next.t) ||
        !place_of(p, n, seq_key, SEQ_KEY, SEQ_KEY_LEN, &next.seq))
        return;
    next.head = load8(p);
    next.learned = true;
    *d = next;
}
