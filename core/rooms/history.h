/* history.h - a room's sequence numbers and history (docs/protocol.md, "seq, ts,
 * history and epoch").
 *
 * On one node, the room's ring in room.c: seq, epoch and the last `history.size`
 * events in memory. Clustered, Redis: per room a hash mw:hm:{room} (seq, epoch) and a
 * stream mw:h:{room} whose entry ids are the seqs, written by one script that also
 * publishes the event, so that seq is cluster-wide, every node delivers in seq order,
 * and history survives a node restart. An epoch names one incarnation of a room's
 * history: when Redis loses it, the next read or publish starts a new epoch and
 * clients holding the old one are told to reset.
 *
 * Both calls complete through a callback that fires exactly once: before the call
 * returns (memory, or Redis known to be down) or later from the loop (Redis). */
#ifndef MW_HISTORY_H
#define MW_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/config.h"

/* What a read found. Everything it points to is valid only during the callback. */
struct mw_history_page {
    uint64_t seq;      /* the room's last seq */
    const char *epoch; /* "" when unknown: Redis is down */
    bool complete;     /* every event after `since` is in `events` */
    size_t n;
    const char *const *events; /* JSON texts, oldest first */
    const size_t *lens;
};

/* Errors passed to the callbacks. */
enum {
    MW_HISTORY_EUNAVAIL = -1, /* Redis is down or failed */
    MW_HISTORY_ENOROOM = -2,  /* one node: the room does not exist (no members, no history) */
    MW_HISTORY_EUNKNOWN = -3, /* publish: sent, but the reply was lost: every member may
                                 get it, or none */
};

/* err is 0 or MW_HISTORY_EUNAVAIL (page is then NULL). */
typedef void (*mw_history_read_cb)(void *ud, int err, const struct mw_history_page *page);
/* seq is 0 when the event could not be sequenced: with MW_HISTORY_EUNAVAIL it
 * reached this node's members only, without seq, and is not kept; with
 * MW_HISTORY_ENOROOM nobody got it; with MW_HISTORY_EUNKNOWN nothing is known (the
 * caller must not acknowledge it: a retry with the same token is safe). */
typedef void (*mw_history_publish_cb)(void *ud, int err, uint64_t seq);

/* The events after `since` that are still kept (history.size and history.ttl of
 * the route rc), with the room's seq and epoch. */
void mw_history_read(const char *room, uint64_t since, const struct mw_route_config *rc,
                     mw_history_read_cb cb, void *ud);

/* Publishes an event to every member of the room on every node, stamped with the
 * next seq and ts and kept in history. json[0..len) is the event as a JSON object
 * without seq and ts; msg_flags are the frame's (MW_MSG_*). cb may be NULL.
 *
 * Clustered, a node publishes only while Redis is up and it hears the room's channel
 * (it waits for a new subscription to be confirmed), so that its own members get what
 * it acknowledges. token (NULL: none) names the client message that publishes: a
 * publish with a token Redis saw in the last minute is not published again, and gets
 * the first one's seq (a retry after MW_HISTORY_EUNKNOWN). */
void mw_history_publish(const char *room, const struct mw_route_config *rc, const char *json,
                        size_t len, unsigned msg_flags, const char *token,
                        mw_history_publish_cb cb, void *ud);

/* Frees what publishes remember (shutdown). */
void mw_history_free(void);

#endif
