/* sha1.c - SHA-1 of a short message (sha1.h), written from FIPS 180-4 section 6.1:
 * the handshake hashes 60 bytes per connection, and libwebsockets' byte-at-a-time
 * lws_SHA1 took 6,000 instructions of a handshake's ~100,000 for it. */
#include "base/sha1.h"

#include <string.h>

static inline uint32_t rol(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

static uint32_t load_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* One 64-byte block into the state h. Five rounds at a time name the working
 * variables in turn instead of moving them along. */
static void block(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[80];
    for (int t = 0; t < 16; t++)
        w[t] = load_be32(p + 4 * t);
    for (int t = 16; t < 80; t++)
        w[t] = rol(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
#define ROUND(a, b, c, d, e, f, k, t) (e += rol(a, 5) + (f) + (k) + w[t], b = rol(b, 30))
#define FIVE(F, k, t)                     \
    (ROUND(a, b, c, d, e, F(b, c, d), k, t), \
     ROUND(e, a, b, c, d, F(a, b, c), k, t + 1), \
     ROUND(d, e, a, b, c, F(e, a, b), k, t + 2), \
     ROUND(c, d, e, a, b, F(d, e, a), k, t + 3), \
     ROUND(b, c, d, e, a, F(c, d, e), k, t + 4))
#define CH(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))
#define PARITY(x, y, z) ((x) ^ (y) ^ (z))
#define MAJ(x, y, z) (((x) & (y)) | ((z) & ((x) | (y))))
    for (int t = 0; t < 20; t += 5)
        FIVE(CH, 0x5a827999, t);
    for (int t = 20; t < 40; t += 5)
        FIVE(PARITY, 0x6ed9eba1, t);
    for (int t = 40; t < 60; t += 5)
        FIVE(MAJ, 0x8f1bbcdc, t);
    for (int t = 60; t < 80; t += 5)
        FIVE(PARITY, 0xca62c1d6, t);
#undef ROUND
#undef FIVE
#undef CH
#undef PARITY
#undef MAJ
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

void mw_sha1(const void *data, size_t len, unsigned char out[20])
{
    uint32_t h[5] = { 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0 };
    const unsigned char *p = data;
    size_t left = len;
    for (; left >= 64; p += 64, left -= 64)
        block(h, p);
    /* The padding: 0x80, zeros, and the length in bits as 64-bit big-endian. */
    unsigned char tail[128] = { 0 };
    memcpy(tail, p, left);
    tail[left] = 0x80;
    size_t n = left < 56 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++)
        tail[n - 1 - i] = (unsigned char)(bits >> (8 * i));
    block(h, tail);
    if (n == 128)
        block(h, tail + 64);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (unsigned char)(h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(h[i] >> 8);
        out[4 * i + 3] = (unsigned char)h[i];
    }
}
