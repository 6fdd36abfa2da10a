/* dscan.c - learning where a server puts a chat:message event's fields (see
 * dscan.h; the per-event reader is inline there). */
#include "dscan.h"

#include <string.h>

static const char TYPE_KV[] = "\"type\":\"chat:message\"";
static const char T_KEY[] = "\"t\":";
static const char SEQ_KEY[] = "\"seq\":";
#define TYPE_KV_LEN (sizeof TYPE_KV - 1) /* 21 */
#define T_KEY_LEN (sizeof T_KEY - 1)     /* 4 */
#define SEQ_KEY_LEN (sizeof SEQ_KEY - 1) /* 6 */

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
    next.head = ds__load8(p);
    next.learned = true;
    *d = next;
}
