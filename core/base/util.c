/* util.c - allocation that aborts on failure, error strings, clocks. */
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

const char *mw_strerror(int err)
{
    switch (err) {
    case MW_OK: return "ok";
    case MW_ENOMEM: return "out of memory";
    case MW_EINVAL: return "invalid argument";
    case MW_ENOENT: return "not found";
    case MW_EEXIST: return "already exists";
    case MW_ECLOSED: return "connection closed";
    case MW_EFULL: return "queue full";
    case MW_EIO: return "i/o error";
    default: return "unknown error";
    }
}

static void oom(size_t n)
{
    fprintf(stderr, "moonwire: out of memory allocating %zu bytes\n", n);
    abort();
}

void *mw_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *mw_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *mw_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *mw_strdup(const char *s)
{
    return s ? mw_strndup(s, strlen(s)) : NULL;
}

char *mw_strndup(const char *s, size_t n)
{
    char *d = mw_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

uint64_t mw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t mw_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t mw_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void mw__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "moonwire: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}

static uint64_t rand_state[2];

void mw_random_reseed(void)
{
    rand_state[0] = rand_state[1] = 0; /* the next call asks the kernel again */
}

uint64_t mw_random_u64(void)
{
    uint64_t *s = rand_state;
    if (!s[0] && !s[1]) {
        if (getrandom(s, sizeof s, 0) != (ssize_t)sizeof s || (!s[0] && !s[1])) {
            s[0] = mw_wall_ms() ^ 0x9e3779b97f4a7c15ull;
            s[1] = (uint64_t)getpid() << 32 ^ mw_now_ms();
        }
    }
    uint64_t x = s[0], y = s[1]; /* xorshift128+ */
    s[0] = y;
    x ^= x << 23;
    s[1] = x ^ y ^ (x >> 17) ^ (y >> 26);
    return s[1] + y;
}

size_t mw_strcopy(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
    return n;
}

size_t mw_u64_str(char *out, uint64_t v)
{
    char tmp[20], *p = tmp + sizeof tmp;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    size_t n = (size_t)(tmp + sizeof tmp - p);
    memcpy(out, p, n);
    out[n] = '\0';
    return n;
}

size_t mw_hex_str(char *out, uint64_t v, int digits)
{
    static const char hexd[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--, v >>= 4)
        out[i] = hexd[v & 15];
    out[digits] = '\0';
    return (size_t)digits;
}
