/* util.h - allocation that aborts on failure, error codes, time. */
#ifndef MW_UTIL_H
#define MW_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Error codes: 0 or a negative MW_E* value; mw_strerror() names them. */
enum {
    MW_OK = 0,
    MW_ENOMEM = -1,
    MW_EINVAL = -2,
    MW_ENOENT = -3,
    MW_EEXIST = -4,
    MW_ECLOSED = -5,
    MW_EFULL = -6,
    MW_EIO = -7,
};
const char *mw_strerror(int err);

void *mw_malloc(size_t n);
void *mw_calloc(size_t n, size_t size);
void *mw_realloc(void *p, size_t n);
char *mw_strdup(const char *s);
char *mw_strndup(const char *s, size_t n);

/* Strings without printf (a few per connection or message: snprintf costs ~800
 * instructions a call). mw_strcopy copies src into dst[0..cap), cut to cap - 1 bytes,
 * NUL-terminated, and returns the length; mw_u64_str writes v in decimal into out (21
 * bytes are enough), mw_hex_str as `digits` lower-case hex digits (the low ones);
 * both NUL-terminate and return the length. */
size_t mw_strcopy(char *dst, size_t cap, const char *src);
size_t mw_u64_str(char *out, uint64_t v);
size_t mw_hex_str(char *out, uint64_t v, int digits);

/* A fast non-cryptographic random number (seeded from the kernel once). */
uint64_t mw_random_u64(void);
/* Forgets the state (a forked worker must not repeat its siblings' numbers). */
void mw_random_reseed(void);

/* Milliseconds from a monotonic clock / from the Unix epoch. */
uint64_t mw_now_ms(void);
uint64_t mw_now_us(void);
uint64_t mw_wall_ms(void);

#define mw_assert(cond) \
    do { if (!(cond)) mw__assert_fail(#cond, __FILE__, __LINE__); } while (0)
void mw__assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

#endif
