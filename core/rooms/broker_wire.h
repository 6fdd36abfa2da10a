/* broker_wire.h - the payload of a message between nodes: one format and one codec
 * for everything published on a room or user channel (broker.c, and history.c whose
 * Redis script publishes sequenced events itself).
 *
 *   "mw1:" <kind> <node> <flags> <except> <subject> <body>
 *
 * where kind, node, flags, except and subject are netstrings ("<length>:<bytes>,", length in
 * decimal) and the body is the rest of the payload, unframed, so that a Redis script
 * can append an event to a head it was given:
 *   kind    "e" an event (body: its JSON text, framed as is for local members),
 *           "d" a disconnect of the channel's user (body: the close reason text),
 *           "n" a message to one node (on its own channel; mw_broker_node): except
 *           holds its kind ("sse"), subject its argument
 *   node    the origin node's id
 *   flags   decimal: an event's frame flags (MW_MSG_*) and MW_WIRE_ORIGIN_TOO; a
 *           disconnect's close code
 *   except  a user whose connections must not get the event (typing), or empty
 *   subject the user a presence:join or presence:leave event is about (flags say
 *           which), so that nodes follow presence without parsing events; or empty
 * No field is trusted to be free of any byte: a user id may hold newlines or '|'. */
#ifndef MW_BROKER_WIRE_H
#define MW_BROKER_WIRE_H

#include <stddef.h>

#include "base/buf.h"

#define MW_WIRE_EVENT 'e'
#define MW_WIRE_DISCONNECT 'd'
#define MW_WIRE_NODE 'n'
/* An event flag above the frame flags: the origin node delivers it from the channel
 * too (sequenced events, so that each node delivers them in seq order). */
#define MW_WIRE_ORIGIN_TOO 0x100u
/* The event is a presence:join / presence:leave of `subject`. */
#define MW_WIRE_PRESENCE_JOIN 0x200u
#define MW_WIRE_PRESENCE_LEAVE 0x400u

struct mw_wire {
    char kind;
    const char *node;
    size_t node_len;
    unsigned flags;
    const char *except;
    size_t except_len;
    const char *subject;
    size_t subject_len;
    const char *body; /* decode only: the rest of the payload */
    size_t body_len;
};

/* Appends the head (everything before the body) of w to b. */
void mw_wire_head(struct mw_buf *b, const struct mw_wire *w);
/* Parses p[0..len) into w, whose pointers then point into p. 0, or -1 when it is no
 * well-formed payload. */
int mw_wire_decode(const char *p, size_t len, struct mw_wire *w);

#endif
