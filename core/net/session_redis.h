/* session_redis.h - the window of a named session in Redis when clustered: a client
 * that moves to another node (its node stopped or died) and resends a message finds
 * it there, so that it is processed once cluster-wide.
 *
 * Per session two keys with the session's hash tag (one Redis Cluster slot):
 *   mw:sw:{<user>\x1f<sid>}  message key -> "r<until ms>" (running) or "d<reply>"
 *                            (done; the reply frame, or nothing when too large);
 *                            field "" holds the bytes of replies kept
 *   mw:sz:{<user>\x1f<sid>}  message key -> when it was first seen (ms)
 * Bounded like the node's window (session.h): ids younger than the window and at
 * least the last MW_DEDUP_MIN, replies up to MW_DEDUP_REPLY_MAX bytes each and
 * MW_DEDUP_BYTES per session; both keys expire a window after the last id. Times are
 * Redis's (TIME), so nodes' clocks do not matter.
 *
 * A message another node is still running ("r", within its lease) is waited for: the
 * answer is its reply once it is done, or the lease runs out and this node takes it
 * over (a node that died mid-way). */
#ifndef MW_SESSION_REDIS_H
#define MW_SESSION_REDIS_H

#include <stdbool.h>

/* How long a node may run a message before another may take it over. */
#define MW_SESSION_LEASE_MS 5000

/* state: MW_DEDUP_NEW (run it: marked running in Redis, or Redis failed: this node's
 * window decides alone) or MW_DEDUP_DONE with the reply (NULL when not kept). */
typedef void (*mw_session_redis_cb)(void *ud, int state, const char *reply);

/* Asks Redis about message `key` of the session. 0: cb fires later (never inside the
 * call); -1: Redis is not there (no callback). */
int mw_session_redis_begin(const char *user, const char *sid, const char *key,
                           mw_session_redis_cb cb, void *ud);
/* The message's handler finished with reply (forget: it answered `unavailable`,
 * take the id out so that a retry runs again). Fire and forget. */
void mw_session_redis_end(const char *user, const char *sid, const char *key, const char *reply,
                          bool forget);

/* Redis is stopping: begins waiting for another node's run complete now (NEW). */
void mw_session_redis_stop(void);

#endif
