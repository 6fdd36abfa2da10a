/* inbox.h - per-user notification inboxes (the notify app, docs/protocol.md): what a
 * server sends a user must not be lost while the user is offline.
 *
 * An inbox holds the user's unread items, oldest first, each the JSON object
 * {"id":ID,"ts":MS,"data":PAYLOAD}. It keeps at most `inbox.size` items (a push over
 * the bound drops the oldest) for at most `inbox.ttl` each. It lives in memory, or in
 * Redis with the store (`redis:`), so that every node sees one inbox and it survives
 * a node's restart.
 *
 * A push stores the item, then sends {"type":"notify","data":ITEM} to every connection
 * of the user on every node (broker.c's user channel); a read removes items by id and
 * sends {"type":"notify:read","data":{"ids":[...]}} the same way, so that every device
 * of the user agrees on what is unread.
 *
 * Requests complete through a callback that fires exactly once, before the call
 * returns (memory, or a failure known at once) or later from the loop (Redis), as
 * with the store (store.h). */
#ifndef MW_INBOX_H
#define MW_INBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/config.h"

#define MW_INBOX_MAX_USER 128 /* bytes of a user id */
#define MW_INBOX_MAX_IDS 100  /* ids per read */
#define MW_INBOX_MAX_ID 64    /* bytes of an id given to read (ours are ~30) */
/* The memory backend's bound on all inboxes together: a push over it fails. */
#define MW_INBOX_MEMORY_MAX_BYTES ((size_t)64 << 20)

/* Runtime failures: 0 or one of these. */
enum {
    MW_INBOX_EINVAL = -1,   /* "invalid argument": bad user, payload over max_item */
    MW_INBOX_EUNAVAIL = -2, /* "unavailable": Redis down, or the inbox closed */
    MW_INBOX_EFULL = -3,    /* "inbox memory full": the memory backend's bound */
};
const char *mw_inbox_strerror(int err);

/* A completed request; what it points to is valid only during the callback. */
struct mw_inbox_result {
    int err;
    const char *id;   /* push: the new item's id */
    const char *json; /* list: a JSON array of items, oldest first; read: a JSON array */
    size_t len;       /* of the ids that were removed, in inbox order */
};

/* Fires exactly once per request; res is never NULL. */
typedef void (*mw_inbox_cb)(void *ud, const struct mw_inbox_result *res);

/* Takes the bounds from cfg (it must outlive the inbox). The backend follows the
 * store: Redis when the store is open on Redis, else memory. */
void mw_inbox_init(const struct mw_config *cfg);
/* Frees the memory backend's items. Requests in flight on Redis complete with
 * "unavailable" when the store closes (mw_store_free). Idempotent. */
void mw_inbox_free(void);

/* Why a user id is not acceptable (1..MW_INBOX_MAX_USER bytes, no control
 * characters), or NULL. */
const char *mw_inbox_user_error(const char *user, size_t len);
/* The largest payload a push accepts (bytes of JSON). */
size_t mw_inbox_max_item(void);

/* Stores data (a valid JSON text, borrowed for the call) as a new item and delivers
 * it live. Returns 1 when cb already ran, 0 when it will run later. */
int mw_inbox_push(const char *user, const char *data, size_t len, mw_inbox_cb cb, void *ud);
/* The user's unread items. Returns as mw_inbox_push. */
int mw_inbox_list(const char *user, mw_inbox_cb cb, void *ud);
/* Removes the items with these ids (ids[i] of lens[i] bytes; at most MW_INBOX_MAX_IDS,
 * each 1..MW_INBOX_MAX_ID bytes, else EINVAL) and tells every device of the user which
 * ones went (nothing is sent when none did). Returns as mw_inbox_push. */
int mw_inbox_read(const char *user, const char *const *ids, const size_t *lens, size_t nids,
                  mw_inbox_cb cb, void *ud);

/* Counters for /metrics: users, items and bytes held by the memory backend (zero on
 * Redis), and since start: items pushed, read (removed by a read), trimmed (dropped
 * by the size bound) and pushes that failed (Redis down, memory full). */
struct mw_inbox_stats {
    size_t users, items, bytes;
    uint64_t pushed, read, trimmed, failed;
};
void mw_inbox_stats(struct mw_inbox_stats *out);

#endif
