/* session.h - client sessions: the window of recent message ids (docs/protocol.md: a
 * repeated id is answered again with the first reply, and its handler never runs
 * twice).
 *
 * A connection opened with `?session=ID` shares its window with every connection of
 * the same user that names the same session, also after it closed, for as long as
 * the window keeps ids: a client that resends its unacked messages after a reconnect
 * has each processed once (issue 5, "resend until acked"). The window lives on the
 * node; behind a load balancer, route a session's reconnects to the same node. A
 * connection without `session` has a window of its own, made on its first id.
 *
 * The window: ids younger than MW_DEDUP_WINDOW_MS, and at least the last MW_DEDUP_MIN
 * ids whatever their age (their replies are dropped once older than the window: a
 * repeat is then acked without data, still never run twice). Replies are kept up to
 * MW_DEDUP_REPLY_MAX bytes each and MW_DEDUP_BYTES per session. */
#ifndef MW_SESSION_H
#define MW_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MW_DEDUP_MIN 256
#define MW_DEDUP_WINDOW_MS 60000
#define MW_DEDUP_REPLY_MAX 1024
#define MW_DEDUP_BYTES (16 * 1024)
/* Sessions kept after their last connection closed; beyond, the oldest go first. */
#define MW_SESSIONS_DETACHED_MAX 100000
#define MW_SESSION_ID_MAX 64

enum { MW_DEDUP_NEW = 0, MW_DEDUP_RUNNING = 1, MW_DEDUP_DONE = 2 };

struct mw_session;

/* NULL when sid[0..len) is a valid session id (1..64 of A-Z a-z 0-9 _ -), else why. */
const char *mw_session_id_error(const char *sid, size_t len);

/* The named session of user (created when absent), attached to one more connection;
 * sid NULL: a private one. */
struct mw_session *mw_session_attach(const char *user, const char *sid);
/* A connection let go of it: a private session is freed, a named one is kept while
 * its window holds ids. */
void mw_session_detach(struct mw_session *s);
/* The named session, attached or not, or NULL (for a reply whose connection closed
 * while its handler ran). */
struct mw_session *mw_session_find(const char *user, const char *sid);
const char *mw_session_sid(const struct mw_session *s); /* NULL when private */

/* MW_DEDUP_NEW (the id is now running), MW_DEDUP_RUNNING, or MW_DEDUP_DONE with the
 * kept reply frame text (*reply NULL when it was not kept). */
int mw_session_dedup_begin(struct mw_session *s, const char *key, const char **reply);
/* The id's handler finished with this reply frame (NULL: done, reply not kept). */
void mw_session_dedup_end(struct mw_session *s, const char *key, const char *reply);
/* The id's handler could not tell whether it took effect (`unavailable`): forget the
 * id, so that a repeat runs the handler again (which must itself be safe to repeat,
 * as rooms.publish is). */
void mw_session_dedup_forget(struct mw_session *s, const char *key);

/* Forgets what the window no longer needs in s (the heartbeat sweep, per connection). */
void mw_session_trim(struct mw_session *s, uint64_t now_ms);
/* The same for detached sessions; frees those left empty. */
void mw_session_sweep(uint64_t now_ms);
/* Frees every session (shutdown). */
void mw_session_free_all(void);

/* For tests and metrics: ids in the window, and bytes of kept replies. */
uint32_t mw_session_ids(const struct mw_session *s);
uint32_t mw_session_reply_bytes(const struct mw_session *s);

struct mw_session_stats {
    uint32_t named, detached;
    size_t detached_bytes;  /* held by detached sessions (limits.sessions_memory) */
    uint64_t evicted;       /* detached sessions dropped for the count or byte bound */
};

/* The byte bound of detached sessions (limits.sessions_memory, default 64MiB). */
void mw_session_set_budget(size_t bytes);
struct mw_session_stats mw_session_stats(void);

#endif
