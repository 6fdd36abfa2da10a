/* jscan.h - walks the top-level members of a JSON object without building anything:
 * the generator only needs a few fields of each frame (type, id, data.t, data.seq)
 * and must read millions of frames per second. Leaf module. */
#ifndef MWB_JSCAN_H
#define MWB_JSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct js_iter {
    const char *p, *end;
};

/* Starts at the '{' of an object (leading spaces allowed). Returns -1 if none. */
int js_iter_init(struct js_iter *it, const char *p, size_t n);
/* Next member: key (without quotes, escapes left as they are) and raw value text
 * (a string value without its quotes). Returns 1, 0 at the end, -1 when malformed. */
int js_next(struct js_iter *it, const char **key, size_t *klen, const char **val,
            size_t *vlen);
/* Parses an integer value; returns false when it is not one. */
bool js_int(const char *v, size_t n, int64_t *out);

static inline bool js_eq(const char *s, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n == l && memcmp(s, lit, l) == 0;
}

#endif
