/* dscan.h - finds data.t and data.seq of a chat:message event without walking its JSON.
 *
 * At millions of deliveries per second the generator has ~10 ns per event. A server
 * writes every event of a run with one layout (its own key order, compact JSON); the
 * layout moves only when a number gains a digit or a name is longer. So the generic
 * walk (jscan) handles an event once and teaches dscan where the `"type"` key, data's
 * `"t"` key and data's `"seq"` key sit, counted from both ends of the payload; later
 * events are checked at those places (the first 8 bytes, then each key's bytes, and no
 * brace between data's two members) and their two numbers read in place, 8 digits at
 * a time. Anything that does not match exactly goes back to the generic walk, which
 * learns the new layout. Leaf module; ds_match is inline (it runs for every event). */
#ifndef MWB_DSCAN_H
#define MWB_DSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Where one key's opening quote sits: offset from the start and back from the end. */
struct ds_place {
    uint32_t from_start, from_end;
};

struct dscan {
    bool learned;
    uint64_t head;          /* the payload's first 8 bytes */
    struct ds_place type, t, seq;
    uint64_t hits, learns;  /* events read in place; layouts learned */
};

/* Learns the layout of the chat:message event p[0..n), given the opening quotes of its
 * "type" key and of data's "t" and "seq" keys (pointers into p). Learns nothing when
 * the event is not compact JSON at those places. */
void ds_learn(struct dscan *d, const char *p, size_t n, const char *type_key,
              const char *t_key, const char *seq_key);

/* ---- the per-event part ---- */

static inline uint64_t ds__load8(const char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline uint32_t ds__load4(const char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* "type":"chat:message" (21 bytes) at p, in three word compares. */
static inline bool ds__type_at(const char *p)
{
    static const char kv[] = "\"type\":\"chat:message\"";
    return ds__load8(p) == ds__load8(kv) && ds__load8(p + 8) == ds__load8(kv + 8) &&
           ds__load8(p + 13) == ds__load8(kv + 13);
}

static inline bool ds__t_at(const char *p)
{
    return ds__load4(p) == ds__load4("\"t\":");
}

static inline bool ds__seq_at(const char *p)
{
    return ds__load4(p) == ds__load4("\"seq") && ds__load4(p + 2) == ds__load4("eq\":");
}

/* The place where a key of klen bytes passing `at` is, in p[0..n): its offset from the
 * start, else its offset from the end. Returns the key's first byte, or NULL. */
static inline const char *ds__find(const char *p, size_t n, struct ds_place pl, size_t klen,
                                   bool (*at)(const char *))
{
    if (pl.from_start + klen <= n && at(p + pl.from_start))
        return p + pl.from_start;
    if (pl.from_end <= n && pl.from_end >= klen && at(p + n - pl.from_end))
        return p + n - pl.from_end;
    return NULL;
}

/* How many of the 8 bytes of w (first byte lowest, '0' xor-ed out so digits are 0..9)
 * are digits before the first that is not. A carry out of a non-digit byte can only
 * spoil the bytes after it, which are not looked at. */
static inline unsigned ds__digits(uint64_t w)
{
    uint64_t bad = (w | (w + 0x0606060606060606ull)) & 0xf0f0f0f0f0f0f0f0ull;
    return bad ? (unsigned)__builtin_ctzll(bad) >> 3 : 8;
}

/* The value of the first k (1..8) digits of w. */
static inline uint64_t ds__value(uint64_t w, unsigned k)
{
    uint64_t v = w << (8 * (8 - k)); /* right-align: leading zero digits */
    v = v * 10 + (v >> 8);           /* pairs of digits */
    return (((v & 0x000000ff000000ffull) * (100 + (1000000ull << 32))) +
            (((v >> 16) & 0x000000ff000000ffull) * (1 + (10000ull << 32)))) >> 32;
}

/* A plain integer of 1..15 digits at v followed by ',' or '}'; v has at least 16
 * readable bytes. Returns the byte after the digits, or NULL. */
static inline const char *ds__uint(const char *v, int64_t *out)
{
    static const uint64_t pow10[8] = { 1, 10, 100, 1000, 10000, 100000, 1000000, 10000000 };
    uint64_t a = ds__load8(v) ^ 0x3030303030303030ull;
    unsigned k = ds__digits(a);
    uint64_t x;
    if (k < 8) {
        if (!k)
            return NULL;
        x = ds__value(a, k);
    } else {
        uint64_t b = ds__load8(v + 8) ^ 0x3030303030303030ull;
        unsigned kb = ds__digits(b);
        if (kb == 8)
            return NULL;
        x = ds__value(a, 8);
        if (kb)
            x = x * pow10[kb] + ds__value(b, kb);
        k += kb;
    }
    if (v[k] != ',' && v[k] != '}')
        return NULL;
    *out = (int64_t)x;
    return v + k;
}

/* The same near the end of the payload (fewer than 16 bytes left): a digit at a time. */
static inline const char *ds__uint_short(const char *v, const char *end, int64_t *out)
{
    int64_t x = 0;
    const char *s = v;
    while (v < end && (unsigned)(*v - '0') < 10 && v - s < 15)
        x = x * 10 + (*v++ - '0');
    if (v == s || v == end || (*v != ',' && *v != '}'))
        return NULL;
    *out = x;
    return v;
}

/* Whether [a, b) holds no brace: data's two members are in one object, so data's
 * "seq" is not the event's own (which sits outside data). */
static inline bool ds__no_brace(const char *a, const char *b)
{
    for (; a < b; a++)
        if ((*a | 2) == '\x7f' || *a == '{') /* '}' is 0x7d, DEL 0x7f (never between) */
            return false;
    return true;
}

/* Reads t and seq of the chat:message event p[0..n) at the learned places. Returns
 * true when every check passed, false when the generic walk must handle it. */
static inline bool ds_match(const struct dscan *d, const char *p, size_t n, int64_t *t,
                            int64_t *seq)
{
    const char *tk, *sk, *tv, *sv;
    if (!d->learned || n < 24 || ds__load8(p) != d->head)
        return false;
    if (!ds__find(p, n, d->type, 21, ds__type_at) || !(tk = ds__find(p, n, d->t, 4, ds__t_at)) ||
        !(sk = ds__find(p, n, d->seq, 6, ds__seq_at)))
        return false;
    const char *end = p + n; /* ds__uint reads 16 bytes */
    tv = tk + 20 <= end ? ds__uint(tk + 4, t) : ds__uint_short(tk + 4, end, t);
    sv = sk + 22 <= end ? ds__uint(sk + 6, seq) : ds__uint_short(sk + 6, end, seq);
    if (!tv || !sv)
        return false;
    /* between the first member's value and the second member's key */
    return tk < sk ? ds__no_brace(tv, sk) : ds__no_brace(sv, tk);
}

#endif
